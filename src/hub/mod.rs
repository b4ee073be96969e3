//! The Hub: every peer, its pairing, its connections, and what the application sees of them.
//!
//! * [`Hub`] — the handle: start, pair/unpair, approve/deny, send data, shutdown.
//! * one supervisor task per remote SKI owns that peer's dial loop, links, double-connection
//!   arbitration and visible state (`runtime::supervisor`); one link task per connection drives
//!   the sans-IO protocol engine over the socket (`runtime::link`); the listener only admits
//!   (`runtime::listener`). The tasks and their shared state are in `runtime`, none of it
//!   public; the modules beside it are the hub's public face.
//! * [`Callbacks`] — how the application hears about it all; [`Hub::events`] — the same as an
//!   async stream of [`HubEvent`]s.
//! * [`TrustStore`] — where pairings live; [`Backoff`] — reconnect delays (§8).

pub mod backoff;
pub mod callbacks;
pub mod config;
mod errors;
mod handle;
#[cfg(test)]
mod layering;
pub mod metrics;
pub mod net;
pub mod pairing_config;
mod runtime;
pub mod trust;

pub use backoff::{Backoff, BackoffConfigError, BackoffTier, BackoffTiers};
pub use callbacks::{
    AdmissionRefusal, Callbacks, DecideLater, HubEvent, HubEvents, NoCallbacks, PairingDecision,
    PairingRequest, PinDecision, PinRequest, StateDetail,
};
pub use config::{DeviceInfo, HubConfig, HubTimers, Limits};
pub use errors::{AddressError, DialError, EndCause, HubError};
pub use handle::{Hub, ShutdownReport};
pub use metrics::{
    AdmissionCap, FailureCause, FailureCounts, HandshakeTimeSummary, MetricsSnapshot, PinCounts,
    RefusalCounts,
};
#[cfg(any(test, feature = "test-util"))]
pub use net::{MemoryLan, MemoryNetwork};
pub use net::{Network, TcpNetwork};
pub use pairing_config::{
    AcceptRequests, PairingServiceConfig, PairingServiceEvent, RequestPairing,
};
pub use runtime::inbound::{Delivery, DeliveryToken};
pub use runtime::shared::{ConnectionInfo, Direction};
pub use trust::{FileTrustStore, MemoryTrustStore, PairedPeer, TrustStore, TrustStoreError};
