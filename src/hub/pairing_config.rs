//! The SHIP Pairing Service in the hub, both roles, over the hub's
//! [`Discovery`](crate::discovery::Discovery): its settings and the events it reports (`docs/pairing.md`, "The SHIP Pairing Service";
//! the sans-IO rules are in [`crate::pairing_service`]; the hub's tasks that run it are in
//! `runtime::pairing_agent`).
//!
//! * **Energy-manager side** ([`AcceptRequests`]): the hub browses `_shippairing._tcp` and
//!   evaluates every request for it with the secret printed with this device. A verified request
//!   names the fingerprint of the control unit's certificate; when a TLS client presenting that
//!   certificate connects, its SKI is stored as paired (flagged `paired_by_service`) before any
//!   SHIP message, and the connection goes on like that of any paired peer. At most one control
//!   unit is paired through the service: a newer one replaces it (it is unpaired) when it
//!   connects. While that unit is connected, or was in the last
//!   [`AcceptRequests::replaceable_after`], requests are not processed.
//! * **Device side** ([`RequestPairing`]): the hub pairs the energy manager's SKI, announces the
//!   signed request from start-up (or from [`crate::hub::Hub::request_pairing`] on) until a
//!   connection to the energy manager has held for [`RequestPairing::settle_after`], then
//!   withdraws it and reports [`PairingServiceEvent::RequestSettled`] (persist that: a settled
//!   request is configured with [`RequestPairing::settled`] and never announced again). One
//!   request at a time: a newer one replaces it.
//!
//! Hostile input costs little and is bounded: a request for another node is dropped after one
//! string comparison; a re-announcement of a record already evaluated under the same instance is
//! skipped ([`AcceptRequests::max_tracked_requests`] instances remembered); at most one HMAC is
//! computed per new record; refusals are reported to the application at most once per
//! [`AcceptRequests::refusal_report_interval`].
//! What an application configures for the SHIP Pairing Service, and what it is told.

use std::time::Duration;

use crate::pairing_service::{
    DEFAULT_REPLACEABLE_AFTER, DEFAULT_REPLAY_CAPACITY, DEFAULT_SETTLE_AFTER, Fingerprint,
    PairingSecret, Refusal,
};
use crate::{ShipId, Ski};

/// The Pairing Service roles a hub takes. Default: neither.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PairingServiceConfig {
    /// The energy-manager side: verify announced requests with this device's secret.
    pub accept: Option<AcceptRequests>,
    /// The device side: ask an energy manager to trust this node (or later, with
    /// [`crate::hub::Hub::request_pairing`]).
    pub request: Option<RequestPairing>,
}

/// The energy-manager side's settings.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AcceptRequests {
    /// The secret printed with this device.
    pub secret: PairingSecret,
    /// Honoured digests remembered against replays. Default 64 (the specification asks for at
    /// least 10).
    pub replay_capacity: usize,
    /// The digests honoured in earlier runs, oldest first, as
    /// [`crate::hub::Hub::pairing_replay_history`] gave them: persist that after each
    /// [`PairingServiceEvent::RequestAccepted`] and pass it back here, so that a recorded
    /// announcement is refused after a restart too. Default: empty.
    pub replay_history: Vec<[u8; 32]>,
    /// How long the control unit paired through the service must have been out of SHIP message
    /// exchange before another request is processed. Default 15 min.
    pub replaceable_after: Duration,
    /// Announced instances whose last record is remembered, so that a re-announcement of the
    /// same record is not evaluated (nor reported) again. Default 64; beyond it the oldest is
    /// forgotten (its next re-announcement is evaluated again, and refused as a replay).
    pub max_tracked_requests: usize,
    /// Least time between two [`PairingServiceEvent::RequestRefused`] reports (the refusals in
    /// between are only logged at debug level), so a flood of bad requests cannot flood the
    /// application. Default 1 s.
    pub refusal_report_interval: Duration,
}

impl AcceptRequests {
    /// The specification's defaults, with this secret.
    pub fn new(secret: PairingSecret) -> Self {
        AcceptRequests {
            secret,
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
            replay_history: Vec::new(),
            replaceable_after: DEFAULT_REPLACEABLE_AFTER,
            max_tracked_requests: 64,
            refusal_report_interval: Duration::from_secs(1),
        }
    }
}

/// The device side's settings: the energy manager to be trusted by (from its QR code) and its
/// secret.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestPairing {
    /// The energy manager's SHIP ID (`forId`).
    pub energy_manager_id: ShipId,
    /// Its SKI: the hub pairs it (trusts it and dials it when found).
    pub energy_manager_ski: Ski,
    /// Its certificate's fingerprint (`forPar`).
    pub energy_manager_fingerprint: Fingerprint,
    /// Its secret.
    pub secret: PairingSecret,
    /// How long one connection must hold before the request is withdrawn. Default 15 min.
    pub settle_after: Duration,
    /// The request settled in an earlier run: it is not announced again, and the energy
    /// manager is not paired again at start (an unpair made since sticks). Default `false`.
    pub settled: bool,
}

impl RequestPairing {
    /// A request with the specification's defaults.
    pub fn new(
        energy_manager_id: ShipId,
        energy_manager_ski: Ski,
        energy_manager_fingerprint: Fingerprint,
        secret: PairingSecret,
    ) -> Self {
        RequestPairing {
            energy_manager_id,
            energy_manager_ski,
            energy_manager_fingerprint,
            secret,
            settle_after: DEFAULT_SETTLE_AFTER,
            settled: false,
        }
    }
}

/// What the Pairing Service reports to the application
/// ([`crate::hub::Callbacks::pairing_service`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PairingServiceEvent {
    /// A request for this node verified: the certificate with `fingerprint` is paired when it
    /// connects.
    RequestAccepted {
        /// The full mDNS instance name of the request.
        instance: String,
        /// The requesting device's SHIP ID.
        ship_id: ShipId,
        /// Its certificate's fingerprint.
        fingerprint: Fingerprint,
    },
    /// A request for this node was refused (wrong secret, replay, malformed, a unit reachable).
    RequestRefused {
        /// The full mDNS instance name of the request.
        instance: String,
        /// Why.
        error: Refusal,
    },
    /// A peer was paired through the service: it is in the trust store now.
    PairedByService {
        /// Its SKI.
        ski: Ski,
        /// Its SHIP ID, from the request.
        ship_id: ShipId,
        /// The control unit it replaced (unpaired), if any.
        displaced: Option<Ski>,
    },
    /// Our own request was withdrawn for good (a connection held long enough). Persist it and
    /// configure [`RequestPairing::settled`] from then on.
    RequestSettled,
}
