//! How the application hears about peers: the [`Callbacks`] trait and the thread that calls it.
//!
//! Every call is made from one dispatcher task, fed by a queue that the supervisors append to.
//! That gives three guarantees:
//!
//! * calls for one SKI arrive in the order things happened (one queue, one consumer);
//! * no call is made while any lock of the hub is held, and a callback may call any
//!   [`crate::hub::Hub`] method — the methods never wait for the dispatcher;
//! * a slow callback delays later callbacks, never the protocol: connections keep running.
//!   Callbacks run on the tokio runtime, so one that has slow work to do (asking a user on a
//!   terminal, writing a database) should hand it to a thread or `spawn_blocking` and return.
//!   A panicking callback is caught and logged; the dispatcher carries on.
//!
//! Received data is bounded (docs/architecture.md, "Backpressure"): each queued payload holds
//! its bytes against the peer's inbound budget until its callback returned, or — with
//! [`Callbacks::data_delivered`] — until the application drops the [`Delivery`]. A peer whose
//! budget is used up is not read from until the application catches up; so the queue holds at
//! most the budgets' worth of data, and data never overtakes the other calls of its peer.
//!
//! (A task rather than an OS thread keeps the whole hub on tokio's clock, so tests can run it
//! under paused, virtual time.)
//!
//! The same dispatcher feeds the async event streams of [`crate::hub::Hub::events`]: each
//! stream gets every happening the callbacks get, in the same order, as a [`HubEvent`]. A
//! stream is bounded like the callbacks: its data events hold their peers' budgets until they
//! are dropped, and at most [`crate::hub::Limits::max_queued_events`] other events wait in it; beyond that
//! they are dropped and the stream says how many with [`HubEvent::Lagged`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

use crate::discovery::VisibleService;
use crate::hub::errors::EndCause;
use crate::hub::metrics::AdmissionCap;
use crate::hub::runtime::inbound::{Delivery, InboundTotal};
use crate::hub::trust::TrustStoreError;
use crate::protocol::{ConnectionState, DetailedState, Pin};
use crate::{ShipId, Ski};

/// Extra information with a state change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateDetail {
    /// The detailed protocol state (docs/ship.md §6) of the connection behind the change,
    /// where there is one.
    pub detailed: Option<DetailedState>,
    /// For [`ConnectionState::Error`] and [`ConnectionState::RemoteDeniedTrust`]: what happened,
    /// typed. Its `Display` says it in words for people (`failure.to_string()`).
    pub failure: Option<EndCause>,
}

/// What the hub knows about a peer that asks to be trusted.
///
/// Only [`PairingRequest::ski`] is proven: the peer's TLS handshake showed it holds the key
/// behind it. [`PairingRequest::address`] is where the connection came from. The rest comes from
/// the peer's mDNS announcement for that SKI (when the hub has a discovery and sees one), and an
/// announcement is a claim anyone on the LAN can make: show the name, brand and model to help a
/// person recognise the device, but let the person compare the SKI before trusting it.
///
/// More fields may be added; build one with [`PairingRequest::new`] (for example to test an
/// application's callbacks).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PairingRequest {
    /// The SKI its certificate proved.
    pub ski: Ski,
    /// The address it connected from.
    pub address: std::net::SocketAddr,
    /// Its SHIP ID, when known at the time of the request: the one it proved on an earlier
    /// connection to this hub (its `accessMethods`), else the one its mDNS record announces.
    /// A peer sends its `accessMethods` only after the pairing step, so for a stranger this is
    /// normally the announced one. Only a proven SHIP ID is stored with the pairing.
    pub ship_id: Option<ShipId>,
    /// The mDNS instance name its service is announced under, without the service type
    /// (`Garage wallbox`, not `Garage wallbox._ship._tcp.local.`).
    pub instance_name: Option<String>,
    /// The brand its mDNS record announces (TXT `brand`).
    pub brand: Option<String>,
    /// The model its mDNS record announces (TXT `model`).
    pub model: Option<String>,
    /// The device type its mDNS record announces (TXT `type`, e.g. `EVSE`, `HeatPump`).
    pub device_type: Option<String>,
    /// The serial number its mDNS record announces (TXT `serial`).
    pub serial: Option<String>,
}

impl PairingRequest {
    /// A request from `ski` at `address` with no other details.
    pub fn new(ski: Ski, address: std::net::SocketAddr) -> Self {
        PairingRequest {
            ski,
            address,
            ship_id: None,
            instance_name: None,
            brand: None,
            model: None,
            device_type: None,
            serial: None,
        }
    }

    /// Adds what `service` (the visible service with the request's SKI) announces. A SHIP ID
    /// already set (a proven one) is kept.
    pub(crate) fn with_service(mut self, service: &VisibleService) -> Self {
        let text = |value: &Option<crate::discovery::TxtValue>| {
            value.as_ref().map(|v| v.as_str().to_owned())
        };
        if self.ship_id.is_none() {
            self.ship_id = Some(service.txt.id.clone());
        }
        self.instance_name = service.instances.first().map(|instance| {
            instance
                .strip_suffix(crate::discovery::SERVICE_TYPE)
                .and_then(|name| name.strip_suffix('.'))
                .unwrap_or(instance)
                .to_owned()
        });
        self.brand = text(&service.txt.brand);
        self.model = text(&service.txt.model);
        self.device_type = text(&service.txt.device_type);
        self.serial = text(&service.txt.serial);
        self
    }
}

/// The application's answer to a pairing request ([`Callbacks::pairing_requested`]).
///
/// More answers may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PairingDecision {
    /// Trust the peer now. Exactly what [`crate::hub::Hub::approve`] does: the pairing is
    /// written to the trust store (so it survives a restart), then the peer's hello turns
    /// `ready` and the connection goes on to data exchange. If the trust store cannot be
    /// written, nothing is paired: the error is logged and the request keeps waiting as with
    /// [`PairingDecision::Ask`], so `approve` or `deny` can still settle it.
    Accept,
    /// Refuse the peer now. Exactly what [`crate::hub::Hub::deny`] does: hello `aborted`, the
    /// connection closes, nothing is stored; the peer sees that it was refused
    /// (RemoteDeniedTrust).
    Refuse,
    /// Let the peer wait (hello `pending`) for a decision made later with
    /// [`crate::hub::Hub::approve`] or [`crate::hub::Hub::deny`] — for example a person asked
    /// on a screen. If nobody decides before the hello wait ends, the connection ends unpaired.
    Ask,
}

/// The peer requires a PIN from this node (SHIP §13.4.4.3) and the hub has none to send (none
/// stored for its SKI, no [`crate::hub::HubConfig::default_peer_pin`]), or the peer rejected
/// the one sent. The PIN itself is never part of a request or event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PinRequest {
    /// The peer.
    pub ski: Ski,
    /// Its SHIP ID, if known.
    pub ship_id: Option<ShipId>,
    /// The peer answered the PIN we sent with `connectionPinError` (a wrong PIN).
    pub rejected: bool,
}

/// The application's answer to a [`PinRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinDecision {
    /// Send this PIN now. If the peer accepts it, it is stored with the pairing.
    Pin(Pin),
    /// There is no PIN: the connection fails (the peer requires one).
    Refuse,
    /// Ask later: the connection waits (up to `ProtocolConfig::pin_wait`) for
    /// [`crate::hub::Hub::enter_pin`] or [`crate::hub::Hub::refuse_pin`].
    Ask,
}

/// Incoming connections from one source address were refused by an admission cap
/// ([`Callbacks::admission_refused`]). Reported at most once per source address per
/// [`crate::hub::Limits::refusal_report_interval`] and at most
/// [`crate::hub::Limits::max_refusal_reports`] times per interval in all, so that a flood of
/// refused connections costs a few reports, never one per connection; every refusal is counted
/// in [`crate::hub::MetricsSnapshot::refusals`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AdmissionRefusal {
    /// Where the connections came from.
    pub address: std::net::IpAddr,
    /// The cap that refused the latest of them.
    pub cap: AdmissionCap,
    /// Connections from `address` refused since its last report, this one included.
    pub refused: u64,
}

/// The application's view of the hub. Every method has a default that does nothing (or, for
/// [`Callbacks::pairing_requested`], refuses), so an application implements only what it needs.
///
/// See the module documentation for the threading guarantees.
pub trait Callbacks: Send + Sync + 'static {
    /// The connection state of `ski` as the application sees it changed (one of the ten
    /// states of docs/ship.md §6). A connection that merely lost a double-connection
    /// arbitration produces no change.
    fn state_changed(&self, ski: Ski, state: ConnectionState, detail: &StateDetail) {
        let _ = (ski, state, detail);
    }

    /// `ski` reached data exchange (SHIP Completed). Not repeated when a double connection is
    /// replaced by its twin.
    fn connected(&self, ski: Ski, ship_id: Option<&ShipId>) {
        let _ = (ski, ship_id);
    }

    /// `ski`, previously reported as connected, has no connection in data exchange any more.
    fn disconnected(&self, ski: Ski, reason: &EndCause) {
        let _ = (ski, reason);
    }

    /// An unpaired peer connected and asks to be trusted (its hello is `pending`): decide now
    /// ([`PairingDecision::Accept`], [`PairingDecision::Refuse`]) or later
    /// ([`PairingDecision::Ask`], then [`crate::hub::Hub::approve`] or
    /// [`crate::hub::Hub::deny`]). The default refuses.
    ///
    /// The request is already pending when this is called (the peer's state is
    /// [`ConnectionState::ReceivedPairingRequest`], reported by
    /// [`Callbacks::state_changed`] before this call), so `approve` and `deny` work from inside
    /// the callback too. Asking a person takes time: return `Ask` and ask on another thread.
    fn pairing_requested(&self, request: &PairingRequest) -> PairingDecision {
        let _ = request;
        PairingDecision::Refuse
    }

    /// A data message (its SPINE payload, byte for byte as received) arrived from `ski`. The
    /// peer's inbound budget is released for it when this returns.
    fn data_received(&self, ski: Ski, payload: &[u8]) {
        let _ = (ski, payload);
    }

    /// A data message arrived, owned: its bytes stay charged to the peer's inbound budget until
    /// `delivery` (or the [`crate::hub::DeliveryToken`] of [`Delivery::into_parts`]) is dropped.
    /// An application that consumes data asynchronously keeps it until it has processed the
    /// message: the hub then reads no more from that peer than the budget allows, without any
    /// callback blocking. The default calls [`Callbacks::data_received`] and drops it.
    fn data_delivered(&self, delivery: Delivery) {
        self.data_received(delivery.ski(), delivery.payload());
    }

    /// The SHIP services visible on the LAN changed (deduplicated by SKI, sorted by SKI, never
    /// this hub itself). Only called when the hub has a discovery. Coalesced: the first change
    /// is reported at once, later ones at most once per
    /// [`crate::hub::HubTimers::visible_services_interval`] with the latest list.
    fn visible_services_changed(&self, services: &[VisibleService]) {
        let _ = services;
    }

    /// The peer's SHIP ID became known (from its `accessMethods`).
    fn ship_id_learned(&self, ski: Ski, ship_id: &ShipId) {
        let _ = (ski, ship_id);
    }

    /// Something happened in the SHIP Pairing Service (only with
    /// [`crate::hub::HubConfig::pairing_service`] set).
    fn pairing_service(&self, event: &crate::hub::PairingServiceEvent) {
        let _ = event;
    }

    /// The peer requires a PIN we do not have (see [`PinRequest`]). The default refuses; an
    /// application that asks a person returns [`PinDecision::Ask`] and calls
    /// [`crate::hub::Hub::enter_pin`] when the PIN is typed.
    fn pin_requested(&self, request: &PinRequest) -> PinDecision {
        let _ = request;
        PinDecision::Refuse
    }

    /// The peer sent this node's PIN correctly (`HubConfig::pin_requirement`): a peer of an
    /// optional PIN is no longer restricted.
    fn pin_verified(&self, ski: Ski) {
        let _ = ski;
    }

    /// The peer sent a wrong PIN: its `attempts`-th in a row, and the penalty now running
    /// (docs/pairing.md, "PIN verification"). For a peer that is not paired, `attempts` counts
    /// on from the earlier wrong PINs of its source address (other keys' included), as its
    /// penalty does.
    fn pin_attempt_failed(&self, ski: Ski, attempts: u32, penalty: Option<Duration>) {
        let _ = (ski, attempts, penalty);
    }

    /// Incoming connections were refused by an admission cap (HTTP 503 at the upgrade, or the
    /// TCP connection closed before TLS): say so to a person, who may otherwise see nothing at
    /// all (a device that cannot pair because the strangers' slots are taken). Rate-limited
    /// per source address and in all ([`AdmissionRefusal`]).
    fn admission_refused(&self, refusal: &AdmissionRefusal) {
        let _ = refusal;
    }

    /// The hub could not write its pairing changes to the trust store (the disk is full, read
    /// only, gone). The pairings stay in effect in the hub's memory and are written with their
    /// next change; until then a restart loses them: say so to a person. Once per failed
    /// batch of writes (see [`crate::hub::Hub::pairings_saved`]).
    fn trust_store_failed(&self, error: &TrustStoreError) {
        let _ = error;
    }
}

/// Callbacks that do nothing and refuse every pairing request.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCallbacks;

impl Callbacks for NoCallbacks {}

/// Callbacks that leave every decision to later: pairing requests wait
/// ([`PairingDecision::Ask`]) and PIN requests wait ([`PinDecision::Ask`]) for
/// [`crate::hub::Hub::approve`] / [`crate::hub::Hub::deny`] / [`crate::hub::Hub::enter_pin`].
/// For an application that follows [`crate::hub::Hub::events`] and decides there.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecideLater;

impl Callbacks for DecideLater {
    fn pairing_requested(&self, _request: &PairingRequest) -> PairingDecision {
        PairingDecision::Ask
    }

    fn pin_requested(&self, _request: &PinRequest) -> PinDecision {
        PinDecision::Ask
    }
}

/// One happening, as a [`crate::hub::HubEvents`] stream yields it: the same as the
/// [`Callbacks`] method of the same name, with the same arguments.
///
/// More kinds may be added; match with a wildcard arm.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum HubEvent {
    /// [`Callbacks::state_changed`].
    StateChanged {
        /// The peer.
        ski: Ski,
        /// Its new state.
        state: ConnectionState,
        /// The detailed state and, for a failure, what happened.
        detail: StateDetail,
    },
    /// [`Callbacks::connected`].
    Connected {
        /// The peer.
        ski: Ski,
        /// Its SHIP ID, when known.
        ship_id: Option<ShipId>,
    },
    /// [`Callbacks::disconnected`].
    Disconnected {
        /// The peer.
        ski: Ski,
        /// Why.
        reason: EndCause,
    },
    /// [`Callbacks::pairing_requested`], with the answer the callbacks gave: with
    /// [`PairingDecision::Ask`] (see [`DecideLater`]) the request waits for
    /// [`crate::hub::Hub::approve`] or [`crate::hub::Hub::deny`].
    PairingRequested {
        /// Who asks.
        request: PairingRequest,
        /// What the callbacks answered.
        decision: PairingDecision,
    },
    /// [`Callbacks::data_delivered`]: a data message. Its bytes stay charged to the peer's
    /// inbound budget until this event (and every clone of the [`Delivery`]) is dropped.
    Data(Delivery),
    /// [`Callbacks::ship_id_learned`].
    ShipIdLearned {
        /// The peer.
        ski: Ski,
        /// Its SHIP ID.
        ship_id: ShipId,
    },
    /// [`Callbacks::pin_requested`], with the answer the callbacks gave (see
    /// [`HubEvent::PairingRequested`]).
    PinRequested {
        /// The request.
        request: PinRequest,
        /// What the callbacks answered.
        decision: PinDecision,
    },
    /// [`Callbacks::pin_verified`].
    PinVerified {
        /// The peer.
        ski: Ski,
    },
    /// [`Callbacks::pin_attempt_failed`].
    PinAttemptFailed {
        /// The peer.
        ski: Ski,
        /// Its wrong PINs in a row.
        attempts: u32,
        /// The penalty now running.
        penalty: Option<Duration>,
    },
    /// [`Callbacks::visible_services_changed`].
    VisibleServices(Vec<VisibleService>),
    /// [`Callbacks::admission_refused`].
    AdmissionRefused(AdmissionRefusal),
    /// [`Callbacks::pairing_service`].
    PairingService(crate::hub::PairingServiceEvent),
    /// [`Callbacks::trust_store_failed`].
    TrustStoreFailed(Arc<TrustStoreError>),
    /// The stream was not read fast enough: this many events (never data) were dropped
    /// before this one ([`crate::hub::Limits::max_queued_events`]). Read the current state from the
    /// [`crate::hub::Hub`] (`connection_state`, `connected_peers`, `visible_services`).
    Lagged {
        /// How many were dropped.
        missed: u64,
    },
}

impl HubEvent {
    fn is_data(&self) -> bool {
        matches!(self, HubEvent::Data(_))
    }
}

/// An async stream of [`HubEvent`]s ([`crate::hub::Hub::events`]). It ends after the hub shut
/// down and every event before that was read. Dropping it unsubscribes.
///
/// Read it with [`HubEvents::next`], or as a `futures` `Stream`.
#[derive(Debug)]
pub struct HubEvents {
    rx: mpsc::UnboundedReceiver<HubEvent>,
    /// Events other than data waiting in `rx`.
    queued: Arc<AtomicUsize>,
}

impl HubEvents {
    /// The next event; `None` once the hub has shut down and everything before was read.
    pub async fn next(&mut self) -> Option<HubEvent> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_next(&mut self) -> Option<HubEvent> {
        let event = self.rx.try_recv().ok()?;
        self.taken(&event);
        Some(event)
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<HubEvent>> {
        let polled = self.rx.poll_recv(cx);
        if let Poll::Ready(Some(event)) = &polled {
            self.taken(event);
        }
        polled
    }

    fn taken(&self, event: &HubEvent) {
        if !event.is_data() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl futures_util::Stream for HubEvents {
    type Item = HubEvent;

    fn poll_next(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<HubEvent>> {
        self.get_mut().poll_event(cx)
    }
}

/// The dispatcher's side of one [`HubEvents`] stream.
pub(crate) struct Subscriber {
    tx: mpsc::UnboundedSender<HubEvent>,
    queued: Arc<AtomicUsize>,
    /// Events dropped since the last one sent (said with the next [`HubEvent::Lagged`]).
    missed: u64,
}

/// A new stream and its subscription, to hand to the dispatcher.
pub(crate) fn subscription() -> (Subscriber, HubEvents) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (
        Subscriber {
            tx,
            queued: queued.clone(),
            missed: 0,
        },
        HubEvents { rx, queued },
    )
}

impl Subscriber {
    /// Queues `event` unless the stream is full (then it is counted as missed); returns whether
    /// the stream is still there.
    fn offer(&mut self, event: HubEvent, cap: usize) -> bool {
        if event.is_data() {
            // Bounded by the inbound budgets, which the delivery holds.
            return self.tx.send(event).is_ok();
        }
        if self.queued.load(Ordering::Acquire) >= cap {
            self.missed += 1;
            return !self.tx.is_closed();
        }
        if self.missed > 0 {
            let missed = std::mem::take(&mut self.missed);
            self.queued.fetch_add(1, Ordering::AcqRel);
            if self.tx.send(HubEvent::Lagged { missed }).is_err() {
                return false;
            }
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        self.tx.send(event).is_ok()
    }
}

/// One queued call.
pub(crate) enum CallbackEvent {
    StateChanged(Ski, ConnectionState, StateDetail),
    Connected(Ski, Option<ShipId>),
    Disconnected(Ski, EndCause),
    PairingRequested(PairingRequest, oneshot::Sender<PairingDecision>),
    DataReceived(Delivery),
    ShipIdLearned(Ski, ShipId),
    PinRequested(PinRequest, oneshot::Sender<PinDecision>),
    PinVerified(Ski),
    PinAttemptFailed(Ski, u32, Option<Duration>),
    VisibleServices(Vec<VisibleService>),
    AdmissionRefused(AdmissionRefusal),
    PairingService(crate::hub::PairingServiceEvent),
    TrustStoreFailed(Arc<TrustStoreError>),
    /// A new event stream: it gets every event queued after this.
    Subscribe(Subscriber),
    /// The hub shut down: deliver what is queued before this, then end the thread.
    Stop,
}

/// The sending side of the callback queue. Cloned into every supervisor.
#[derive(Clone)]
pub(crate) struct CallbackQueue {
    tx: mpsc::UnboundedSender<CallbackEvent>,
    inbound: Arc<InboundTotal>,
}

impl CallbackQueue {
    /// The hub-wide inbound data budget (each supervisor's peer budget draws on it).
    pub(crate) fn inbound(&self) -> &Arc<InboundTotal> {
        &self.inbound
    }

    /// Queues a call. Never blocks; a call after the dispatcher stopped is dropped.
    pub(crate) fn push(&self, event: CallbackEvent) {
        let _ = self.tx.send(event);
    }

    /// A new event stream. After the dispatcher stopped it ends at once.
    pub(crate) fn subscribe(&self) -> HubEvents {
        let (subscriber, events) = subscription();
        self.push(CallbackEvent::Subscribe(subscriber));
        events
    }
}

/// Starts the dispatcher task (call inside a tokio runtime). It ends at [`CallbackEvent::Stop`]
/// or when every [`CallbackQueue`] is dropped; `done` fires then. `max_inbound_bytes_total`
/// bounds the received data of all peers together; each event stream holds at most
/// `max_queued_events` other events ([`crate::hub::Limits`]).
pub(crate) fn start_dispatcher(
    callbacks: Arc<dyn Callbacks>,
    max_inbound_bytes_total: usize,
    max_queued_events: usize,
) -> (CallbackQueue, oneshot::Receiver<()>) {
    let inbound = InboundTotal::new(max_inbound_bytes_total);
    let cap = max_queued_events.max(1);
    let (tx, mut rx) = mpsc::unbounded_channel::<CallbackEvent>();
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut streams: Vec<Subscriber> = Vec::new();
        while let Some(event) = rx.recv().await {
            match event {
                CallbackEvent::Stop => break,
                CallbackEvent::Subscribe(subscriber) => streams.push(subscriber),
                event => {
                    if let Some(event) = dispatch(&*callbacks, event, !streams.is_empty()) {
                        publish(&mut streams, event, cap);
                    }
                }
            }
        }
        // Dropping the subscribers ends their streams once they are read.
        drop(streams);
        let _ = done_tx.send(());
    });
    (CallbackQueue { tx, inbound }, done_rx)
}

/// Offers `event` to every stream, dropping the ones that are gone.
fn publish(streams: &mut Vec<Subscriber>, event: HubEvent, cap: usize) {
    // A clone is cheap: a data event's payload and charge are shared (`Delivery`).
    streams.retain_mut(|stream| stream.offer(event.clone(), cap));
}

/// Runs `call`, catching a panic (logged; the dispatcher carries on).
fn guarded<T>(call: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(call)) {
        Ok(value) => Some(value),
        Err(_) => {
            tracing::error!("an application callback panicked; continuing");
            None
        }
    }
}

/// Calls the callback for `event`; returns the event for the streams when `streams` is set.
fn dispatch(callbacks: &dyn Callbacks, event: CallbackEvent, streams: bool) -> Option<HubEvent> {
    match event {
        CallbackEvent::StateChanged(ski, state, detail) => {
            guarded(|| callbacks.state_changed(ski, state, &detail));
            streams.then_some(HubEvent::StateChanged { ski, state, detail })
        }
        CallbackEvent::Connected(ski, ship_id) => {
            guarded(|| callbacks.connected(ski, ship_id.as_ref()));
            streams.then_some(HubEvent::Connected { ski, ship_id })
        }
        CallbackEvent::Disconnected(ski, reason) => {
            guarded(|| callbacks.disconnected(ski, &reason));
            streams.then_some(HubEvent::Disconnected { ski, reason })
        }
        CallbackEvent::PairingRequested(request, answer) => {
            let decision = guarded(|| callbacks.pairing_requested(&request))?;
            let _ = answer.send(decision);
            streams.then_some(HubEvent::PairingRequested { request, decision })
        }
        CallbackEvent::DataReceived(delivery) => {
            let copy = streams.then(|| delivery.clone());
            guarded(|| callbacks.data_delivered(delivery));
            copy.map(HubEvent::Data)
        }
        CallbackEvent::ShipIdLearned(ski, ship_id) => {
            guarded(|| callbacks.ship_id_learned(ski, &ship_id));
            streams.then_some(HubEvent::ShipIdLearned { ski, ship_id })
        }
        CallbackEvent::PinRequested(request, answer) => {
            let decision = guarded(|| callbacks.pin_requested(&request))?;
            let _ = answer.send(decision.clone());
            streams.then_some(HubEvent::PinRequested { request, decision })
        }
        CallbackEvent::PinVerified(ski) => {
            guarded(|| callbacks.pin_verified(ski));
            streams.then_some(HubEvent::PinVerified { ski })
        }
        CallbackEvent::PinAttemptFailed(ski, attempts, penalty) => {
            guarded(|| callbacks.pin_attempt_failed(ski, attempts, penalty));
            streams.then_some(HubEvent::PinAttemptFailed {
                ski,
                attempts,
                penalty,
            })
        }
        CallbackEvent::VisibleServices(services) => {
            guarded(|| callbacks.visible_services_changed(&services));
            streams.then_some(HubEvent::VisibleServices(services))
        }
        CallbackEvent::AdmissionRefused(refusal) => {
            guarded(|| callbacks.admission_refused(&refusal));
            streams.then_some(HubEvent::AdmissionRefused(refusal))
        }
        CallbackEvent::PairingService(event) => {
            guarded(|| callbacks.pairing_service(&event));
            streams.then_some(HubEvent::PairingService(event))
        }
        CallbackEvent::TrustStoreFailed(error) => {
            guarded(|| callbacks.trust_store_failed(&error));
            streams.then_some(HubEvent::TrustStoreFailed(error))
        }
        CallbackEvent::Subscribe(_) | CallbackEvent::Stop => None,
    }
}
