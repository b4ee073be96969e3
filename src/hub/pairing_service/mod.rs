//! The SHIP Pairing Service in the hub, both roles, over the hub's
//! [`Discovery`](crate::discovery::Discovery) (`docs/pairing.md`, "The SHIP Pairing Service";
//! the sans-IO rules are in [`crate::pairing_service`]).
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

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::discovery::PairingSighting;
use crate::pairing_service::{Fingerprint, Receiver, Requester};
use crate::{ShipId, Ski};

mod config;

pub use config::{AcceptRequests, PairingServiceConfig, PairingServiceEvent, RequestPairing};

/// Locks `mutex`, also when a panic poisoned it (the state stays consistent: every change
/// is made in one go under the lock).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// The hub's Pairing Service state (shared by the hub's tasks; its tasks are in
/// `hub::pairing_runtime`). Present whenever the hub has a discovery, so that a request can be
/// made at run time.
pub(crate) struct ServiceState {
    pub(crate) started: tokio::time::Instant,
    pub(crate) accept: Option<Mutex<AcceptState>>,
    /// Wakes the request follower when the unit's reachability changed.
    pub(crate) unit_changed: Notify,
    /// Our own request (device side), if one was made. Replaced as a whole by a newer one; the
    /// lock is never held while a requester's lock is taken the other way round (this one
    /// first, then the requester's).
    pub(crate) request: Mutex<Option<Arc<RequestState>>>,
}

pub(crate) struct AcceptState {
    pub(crate) receiver: Receiver,
    pub(crate) config: AcceptRequests,
    /// The last verified request, waiting for its certificate to connect.
    pub(crate) pending: Option<Pending>,
    /// The control unit paired through the service.
    pub(crate) unit: Option<Ski>,
    pub(crate) unit_connected: bool,
    /// When the unit was last in message exchange (since `started`; zero: the hub's start).
    pub(crate) unit_last_exchange: Duration,
    /// Instance → hash of the last record evaluated from it, oldest first.
    pub(crate) evaluated: VecDeque<(String, u64)>,
    /// Requests refused only because the unit was reachable: evaluated again once it has been
    /// unreachable for `replaceable_after` (a record that does not change is not reported
    /// again by mDNS). Bounded by `max_tracked_requests`.
    pub(crate) deferred: VecDeque<PairingSighting>,
    pub(crate) last_report: Option<tokio::time::Instant>,
}

impl AcceptState {
    /// When the deferred requests are to be evaluated again (since `started`).
    pub(crate) fn recheck_at(&self) -> Option<Duration> {
        if self.deferred.is_empty() || self.unit_connected {
            return None;
        }
        Some(match self.unit {
            None => Duration::ZERO,
            Some(_) => self.unit_last_exchange + self.config.replaceable_after,
        })
    }
}

pub(crate) struct Pending {
    pub(crate) fingerprint: Fingerprint,
    pub(crate) ship_id: ShipId,
}

pub(crate) struct RequestState {
    pub(crate) target: Ski,
    pub(crate) requester: Mutex<Requester>,
    pub(crate) changed: Notify,
}

impl ServiceState {
    /// Time since the hub started, the service's clock.
    pub(crate) fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// The replay guard's digests, oldest first (empty without the energy-manager side).
    pub(crate) fn replay_history(&self) -> Vec<[u8; 32]> {
        self.accept.as_ref().map_or_else(Vec::new, |accept| {
            lock(accept).receiver.guard().entries().copied().collect()
        })
    }

    /// Our own request, if one was made.
    pub(crate) fn current_request(&self) -> Option<Arc<RequestState>> {
        lock(&self.request).clone()
    }

    /// Whether our own request is on the air.
    pub(crate) fn announcing(&self) -> bool {
        self.current_request()
            .is_some_and(|r| lock(&r.requester).is_announcing())
    }

    /// A peer's connection state as the application sees it changed.
    pub(crate) fn presence_changed(&self, ski: Ski, connected: bool) {
        let now = self.now();
        if let Some(accept) = self.accept.as_ref() {
            let mut state = lock(accept);
            if state.unit == Some(ski) {
                state.unit_connected = connected;
                state.unit_last_exchange = now;
                drop(state);
                self.unit_changed.notify_one();
            }
        }
        if let Some(request) = self.current_request()
            && request.target == ski
        {
            let mut requester = lock(&request.requester);
            if connected {
                requester.on_connected(now);
            } else {
                requester.on_disconnected();
            }
            drop(requester);
            request.changed.notify_one();
        }
    }
}
