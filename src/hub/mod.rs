//! The hub: pairs with SHIP peers and keeps them connected.
//!
//! This module holds the hub's self-contained building blocks:
//!
//! * [`backoff`] — reconnect delays for paired peers (§8).
//! * [`trust`] — the durable record of pairings (trust store).
//! * [`address_book`] — every address known per peer and the order to dial them (§8).
//! * [`metrics`] — lock-free counters of dials, handshakes and failures, and their snapshot.

pub mod address_book;
pub mod backoff;
pub mod metrics;
pub mod trust;

pub use address_book::{
    AddressBook, AddressError, AddressSource, DEFAULT_SHIP_PATH, DialCandidate,
};
pub use backoff::{Backoff, BackoffConfigError, BackoffTier, BackoffTiers};
pub use metrics::{FailureCause, FailureCounts, HandshakeTimeSummary, HubMetrics, MetricsSnapshot};
pub use trust::{FileTrustStore, MemoryTrustStore, PairedPeer, TrustStore, TrustStoreError};
