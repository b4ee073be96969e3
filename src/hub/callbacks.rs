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

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

use crate::discovery::VisibleService;
use crate::hub::DisconnectReason;
use crate::hub::config::Limits;
use crate::hub::inbound::{Delivery, InboundTotal};
use crate::protocol::{ConnectionState, DetailedState};
use crate::{ShipId, Ski};

/// Extra information with a state change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateDetail {
    /// The detailed protocol state (docs/ship.md §6) of the connection behind the change,
    /// where there is one.
    pub detailed: Option<DetailedState>,
    /// For [`ConnectionState::Error`] and [`ConnectionState::RemoteDeniedTrust`]: what happened.
    pub error: Option<String>,
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
    fn disconnected(&self, ski: Ski, reason: &DisconnectReason) {
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
}

/// Callbacks that do nothing and refuse every pairing request.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCallbacks;

impl Callbacks for NoCallbacks {}

/// One queued call.
pub(crate) enum CallbackEvent {
    StateChanged(Ski, ConnectionState, StateDetail),
    Connected(Ski, Option<ShipId>),
    Disconnected(Ski, DisconnectReason),
    PairingRequested(PairingRequest, oneshot::Sender<PairingDecision>),
    DataReceived(Delivery),
    ShipIdLearned(Ski, ShipId),
    VisibleServices(Vec<VisibleService>),
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
}

/// Starts the dispatcher task (call inside a tokio runtime). It ends at [`CallbackEvent::Stop`]
/// or when every [`CallbackQueue`] is dropped; `done` fires then.
pub(crate) fn start_dispatcher(
    callbacks: Arc<dyn Callbacks>,
    limits: &Limits,
) -> (CallbackQueue, oneshot::Receiver<()>) {
    let inbound = InboundTotal::new(limits.max_inbound_bytes_total);
    let (tx, mut rx) = mpsc::unbounded_channel::<CallbackEvent>();
    let (done_tx, done_rx) = oneshot::channel();
    tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
            if matches!(event, CallbackEvent::Stop) {
                break;
            }
            let result = catch_unwind(AssertUnwindSafe(|| dispatch(&*callbacks, event)));
            if result.is_err() {
                tracing::error!("an application callback panicked; continuing");
            }
        }
        let _ = done_tx.send(());
    });
    (CallbackQueue { tx, inbound }, done_rx)
}

fn dispatch(callbacks: &dyn Callbacks, event: CallbackEvent) {
    match event {
        CallbackEvent::StateChanged(ski, state, detail) => {
            callbacks.state_changed(ski, state, &detail)
        }
        CallbackEvent::Connected(ski, ship_id) => callbacks.connected(ski, ship_id.as_ref()),
        CallbackEvent::Disconnected(ski, reason) => callbacks.disconnected(ski, &reason),
        CallbackEvent::PairingRequested(request, answer) => {
            let decision = callbacks.pairing_requested(&request);
            let _ = answer.send(decision);
        }
        CallbackEvent::DataReceived(delivery) => callbacks.data_delivered(delivery),
        CallbackEvent::ShipIdLearned(ski, ship_id) => callbacks.ship_id_learned(ski, &ship_id),
        CallbackEvent::VisibleServices(services) => callbacks.visible_services_changed(&services),
        CallbackEvent::Stop => {}
    }
}
