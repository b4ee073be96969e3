//! The state the hub's tasks share ([`Shared`]), and what each supervisor publishes about its
//! peer ([`PeerStatus`], [`ConnectionInfo`]) for the [`crate::hub::Hub`] handle to read without
//! asking it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::admission::Admission;
use super::handover::Command;
use super::pairings::Pairings;
use super::pin_guard::PinGuard;
use crate::discovery::PairingSighting;
use crate::hub::callbacks::CallbackQueue;
use crate::hub::config::HubConfig;
use crate::hub::errors::HubError;
use crate::hub::metrics::HubMetrics;
use crate::hub::pairing_config::AcceptRequests;
use crate::hub::trust::PairedPeer;
use crate::pairing_service::{Fingerprint, Receiver, Requester};
use crate::protocol::{ConnectionState, PinRequirement};
use crate::sync::lock;
use crate::transport::{ShipTls, TlsSuite};
use crate::{ShipId, Ski};

/// What a supervisor publishes about its peer, read by [`crate::hub::Hub`] methods without asking it.
#[derive(Debug, Clone)]
pub(crate) struct PeerStatus {
    /// The state the application sees.
    pub(crate) state: ConnectionState,
    /// The application was told `connected` (and not `disconnected` since).
    pub(crate) connected: bool,
    /// The peer's SHIP ID, once known.
    pub(crate) ship_id: Option<ShipId>,
    /// A pairing request of the peer waits for the user's decision.
    pub(crate) pending_request: bool,
    /// The peer's connections, for [`crate::hub::Hub::connections`].
    pub(crate) connections: Vec<ConnectionInfo>,
}

/// Which side opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Direction {
    /// The peer dialled us (we are the SHIP server).
    Incoming,
    /// We dialled the peer (we are the SHIP client).
    Outgoing,
}

/// One live connection to a peer, as [`crate::hub::Hub::connections`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConnectionInfo {
    /// Who opened it.
    pub direction: Direction,
    /// The peer's address.
    pub remote: SocketAddr,
    /// The connection's own protocol state.
    pub state: ConnectionState,
    /// A close was requested (it is on its way out).
    pub closing: bool,
    /// The TLS 1.2 cipher suite negotiated on this connection (`None` only if the TLS stack
    /// reported none, e.g. TLS 1.3, which SHIP peers do not speak).
    pub tls_suite: Option<TlsSuite>,
    /// This node's PIN is optional (`HubConfig::pin_requirement`) and the peer has not sent it:
    /// data flows, but the application should restrict what the peer may do (SHIP §13.4.4.3).
    pub pin_restricted: bool,
}

/// The registry's entry for one peer: how to reach its supervisor.
pub(crate) struct PeerEntry {
    /// Boxed: a queue allocates room for 32 entries up front, and `Command`'s largest variants
    /// made that about 3.8 KiB per peer (docs/performance.md).
    pub(crate) commands: mpsc::UnboundedSender<Box<Command>>,
    pub(crate) status: watch::Receiver<PeerStatus>,
    pub(crate) data: mpsc::Sender<Vec<u8>>,
}

/// State shared by the hub's tasks. Locks inside are short and never held across an await or
/// a callback.
pub(crate) struct Shared {
    pub(crate) config: HubConfig,
    pub(crate) local_ski: Ski,
    pub(crate) tls: ShipTls,
    pub(crate) registry: Mutex<HashMap<Ski, PeerEntry>>,
    /// The pairings in memory: every read and change of a pairing at run time goes here, never
    /// to the disk (the trust writer persists the changes).
    pub(crate) pairings: Pairings,
    pub(crate) callbacks: CallbackQueue,
    pub(crate) connections: Arc<Semaphore>,
    /// Handshake and strangers' slots of incoming connections, and the addresses of paired
    /// peers that may take the reserved handshake slots.
    pub(crate) admission: Admission,
    pub(crate) metrics: HubMetrics,
    pub(crate) tracker: TaskTracker,
    /// Shutdown phase 1: the listener and admissions stop.
    pub(crate) stop_accepting: CancellationToken,
    /// Shutdown phases 3–4: supervisors cancel dials and close their links.
    pub(crate) stop: CancellationToken,
    /// The shutdown deadline passed: links drop their sockets at once.
    pub(crate) abort: CancellationToken,
    pub(crate) auto_accept: AtomicBool,
    /// The limits on PIN guessing that span peers (per source address, in all).
    pub(crate) pin_guard: PinGuard,
    /// Seeds for the supervisors' random number generators (backoff jitter).
    pub(crate) seeds: Mutex<rand::rngs::StdRng>,
    /// The SHIP Pairing Service, when configured.
    pub(crate) pairing_service: Option<ServiceState>,
}

impl Shared {
    /// Auto-accept is on and pairs a new peer as its connection is admitted: only without a
    /// PIN requirement. With one, a new peer is paired once it sent the PIN
    /// ([`Shared::auto_accept_after_pin`]).
    pub(crate) fn auto_accept_pairs_at_once(&self) -> bool {
        self.auto_accept.load(Ordering::Relaxed)
            && self.config.pin_requirement == PinRequirement::None
    }

    /// Auto-accept is on and this node requires a PIN: a new peer is trusted for the handshake
    /// at once but paired (stored) only once it sent the PIN; until then it is a stranger
    /// (docs/pairing.md, "Auto-accept").
    pub(crate) fn auto_accept_after_pin(&self) -> bool {
        self.auto_accept.load(Ordering::Relaxed)
            && self.config.pin_requirement != PinRequirement::None
    }

    /// Pairs `ski` because its pairing request was accepted ([`crate::hub::Hub::approve`], or
    /// the application's [`crate::hub::PairingDecision::Accept`]): its pairing if it has one,
    /// else a new one, with `ship_id` (the SHIP ID it proved, if any) filled in when the record
    /// has none. In the index before the peer is told, and queued for the trust writer: a
    /// pairing accepted either way is stored alike.
    pub(crate) fn store_approval(&self, ski: Ski, ship_id: Option<ShipId>) -> PairedPeer {
        self.pairings.change(ski, |peer| {
            if peer.ship_id.is_none() {
                peer.ship_id = ship_id;
            }
        })
    }

    /// The status the supervisor of `ski` published last, if it has one.
    pub(crate) fn status(&self, ski: &Ski) -> Option<PeerStatus> {
        let registry = lock(&self.registry);
        registry.get(ski).map(|entry| entry.status.borrow().clone())
    }
}

impl Shared {
    /// Delivers a command to the existing supervisor of `ski` (never creates one: that is
    /// [`crate::hub::runtime::supervisor::route`]).
    pub(crate) fn route_existing(&self, ski: Ski, command: Command) -> Result<(), HubError> {
        let registry = lock(&self.registry);
        match registry.get(&ski) {
            Some(entry) => entry
                .commands
                .send(Box::new(command))
                .map_err(|_| HubError::NotConnected(ski)),
            None => Err(HubError::NotConnected(ski)),
        }
    }
}

/// The hub's Pairing Service state (shared by the hub's tasks; its tasks are in
/// `runtime::pairing_agent`). Present whenever the hub has a discovery, so that a request can be
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
