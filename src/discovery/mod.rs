//! Discovery: announcing ourselves and seeing other SHIP nodes over mDNS/DNS-SD (SHIP §7).
//!
//! The Hub holds an `Arc<dyn Discovery>`. It [`announce`](Discovery::announce)s its own service
//! (again whenever something in it changes, e.g. `register`), [`withdraw`](Discovery::withdraw)s
//! it at shutdown (goodbye), and learns about peers from [`DiscoveryEvent`]s and from the
//! [`visible`](Discovery::visible) snapshot.
//!
//! Two implementations:
//!
//! * `MdnsDiscovery` (feature `mdns`, on by default): the real thing, on `mdns-sd`. Creating one joins multicast groups on
//!   network interfaces: tests must run it inside a private network namespace (see
//!   `docs/discovery.md`, "Running the namespace tests").
//! * `InMemoryLan` / `InMemoryDiscovery` (feature `test-util`): several discoveries attached to
//!   one simulated LAN, with expiry on command, for Hub tests.
//!
//! The pure parts, usable on their own: the TXT codec ([`ShipTxt`], from `ship-proto`) and the
//! registry of visible services ([`VisibleServices`]).
//!
//! Security: the `ski` of a TXT record is only a claim. A dial to a sighted address must
//! expect that SKI and TLS must enforce it (SHIP §9, `docs/discovery.md`).

#[cfg(feature = "mdns")]
mod mdns;
#[cfg(any(test, feature = "test-util"))]
mod memory;
mod registry;
mod service;
#[cfg(any(feature = "mdns", test, feature = "test-util"))]
mod shared;
mod shippairing;

#[cfg(feature = "mdns")]
pub use mdns::{InterfaceSelection, MdnsConfig, MdnsDiscovery};
#[cfg(any(test, feature = "test-util"))]
pub use memory::{InMemoryDiscovery, InMemoryLan};
pub use registry::{DiscoveryLimits, VisibleServices};
pub use service::{
    Announcement, DiscoveryEvent, InstanceName, InstanceNameError, Sighting, VisibleService,
    dialable_address,
};
pub use ship_proto::txt::{
    DeviceCategories, SERVICE_TYPE, ServicePath, ShipTxt, TXT_VERSION, TxtError, TxtField, TxtValue,
};
pub use shippairing::{PAIRING_EVENT_CAPACITY, PairingAnnouncement, PairingEvent, PairingSighting};

use futures_util::future::BoxFuture;
use tokio::sync::broadcast;

use crate::Ski;

/// Why a discovery operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The mDNS daemon refused or failed (its message).
    #[error("mDNS daemon: {0}")]
    Daemon(String),
    /// The discovery was shut down.
    #[error("the discovery has been shut down")]
    Closed,
    /// This implementation does not carry the SHIP Pairing Service.
    #[error("this discovery does not support the SHIP Pairing Service")]
    Unsupported,
}

/// Announces our SHIP service and reports the SHIP services visible on the LAN (SHIP §7).
///
/// Object-safe; share it as `Arc<dyn Discovery>`.
///
/// To follow the visible services without missing a change, call
/// [`subscribe`](Discovery::subscribe) first, then [`visible`](Discovery::visible), then apply
/// events. If the receiver lags ([`broadcast::error::RecvError::Lagged`]), take a new
/// `visible()` snapshot.
pub trait Discovery: Send + Sync {
    /// Announces our service, or replaces the current announcement (re-announce, e.g. after
    /// `register` changed). Returns once the announcement is handed to the implementation;
    /// announcing on the network continues in the background.
    fn announce(&self, announcement: Announcement) -> Result<(), DiscoveryError>;

    /// Withdraws our announcement (mDNS goodbye, TTL 0). The future ends once the goodbye has
    /// been sent (or there was nothing to withdraw).
    fn withdraw(&self) -> BoxFuture<'_, Result<(), DiscoveryError>>;

    /// The full instance name (`<name>._ship._tcp.local.`) we announce under, `None` when not
    /// announced. It differs from the name asked for after a name conflict was resolved
    /// ([`DiscoveryEvent::Renamed`]).
    fn announced_instance(&self) -> Option<String>;

    /// A new receiver of [`DiscoveryEvent`]s from now on.
    fn subscribe(&self) -> broadcast::Receiver<DiscoveryEvent>;

    /// The visible services, sorted by SKI, without our own.
    fn visible(&self) -> Vec<VisibleService>;

    /// One visible service: where `ski` can be dialled and with which path.
    fn visible_service(&self, ski: &Ski) -> Option<VisibleService>;

    /// Replaces the SKIs whose records are never evicted to make room for others (the hub
    /// passes its paired peers; see [`DiscoveryLimits`]). The default does nothing.
    fn set_preferred(&self, skis: Vec<Ski>) {
        let _ = skis;
    }

    /// Announces a SHIP Pairing Service request (`_shippairing._tcp`), replacing the one
    /// announced before. The default: [`DiscoveryError::Unsupported`].
    fn announce_pairing(&self, announcement: PairingAnnouncement) -> Result<(), DiscoveryError> {
        let _ = announcement;
        Err(DiscoveryError::Unsupported)
    }

    /// Withdraws our Pairing Service request, if one is announced (the goodbye is sent in the
    /// background). The default does nothing.
    fn withdraw_pairing(&self) -> Result<(), DiscoveryError> {
        Ok(())
    }

    /// A new receiver of the Pairing Service requests heard on the LAN (browsing for them
    /// starts on the first call). The default: [`DiscoveryError::Unsupported`].
    fn subscribe_pairing(&self) -> Result<broadcast::Receiver<PairingEvent>, DiscoveryError> {
        Err(DiscoveryError::Unsupported)
    }
}
