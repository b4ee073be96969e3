//! The hub's tasks and the state they share: nothing here is public. The [`super::Hub`] handle
//! starts them and talks to them through [`handover`] commands and the [`shared`] maps.
//!
//! * `listener` accepts, `admission` decides whether a connection may start its handshake,
//!   `dial` connects out from the `address_book`'s candidates;
//! * one `supervisor` task per peer owns its links, double-connection `arbitration` and
//!   visible state; one `link` task per connection drives the protocol engine;
//! * `inbound` budgets received data, `sightings` feeds mDNS sightings to supervisors,
//!   `pin_guard` limits PIN attempts, `pairing_agent` runs the Pairing Service exchanges,
//!   `clock` is the one time source (paused in tests);
//! * `pairings` is the pairings in memory, read and changed by all of them without the disk
//!   (the trust writer persists the changes in the background).

pub(crate) mod address_book;
pub(crate) mod admission;
pub(crate) mod arbitration;
pub(crate) mod clock;
pub(crate) mod dial;
pub(crate) mod handover;
pub(crate) mod inbound;
pub(crate) mod inbox;
pub(crate) mod link;
pub(crate) mod listener;
pub(crate) mod pairing_agent;
pub(crate) mod pairings;
pub(crate) mod pin_guard;
pub(crate) mod shared;
pub(crate) mod sightings;
pub(crate) mod supervisor;
