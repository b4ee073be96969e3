//! The test support shared by every crate of the ship-hub workspace: one tree instead of files
//! included by path into each test binary. Not published; only the workspace's tests, examples
//! and benchmarks depend on it.
//!
//! * [`common`]: a recording [`ship_hub::Callbacks`] implementation, identities and hub builders
//!   for loopback and for the in-memory LAN, the namespace check of the mDNS tests.
//! * [`harness`]: the victim hub of the hostile-input tests and scripted SHIP clients.
//! * [`AcceptAnything`]: the rustls verifier that accepts anything, for deliberately
//!   non-conformant peers (ship-conformance's, re-exported).
//! * [`discovery_spoof`]: an mDNS spoofer that registers thousands of `_ship._tcp` services.
//! * [`conformance_expect`]: what a ship-conformance run against ship-hub must report.
//! * [`pin_attack`]: a PIN guesser that makes a new key every few guesses (loopback only).
//! * [`stores`]: a trust store that hangs or fails its writes on demand.

pub mod common;
pub mod conformance_expect;
pub mod discovery_spoof;
pub mod harness;
pub mod pin_attack;
pub mod stores;

pub use ship_conformance::AcceptAnything;
