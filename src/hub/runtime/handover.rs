//! What the hub's tasks hand each other, in one module below all of them: a connection that
//! finished TLS + WebSocket, handed by the listener or a dial to the supervisor of its peer
//! ([`Handover`]); the commands a supervisor takes ([`Command`]); and what a supervisor and one
//! of its links say to each other ([`LinkStart`], [`LinkCommand`], [`LinkEvent`], [`LinkEnd`]).
//!
//! Words used throughout the hub: a **connection** is one TCP + TLS + WebSocket connection to a
//! peer; a **handover** is such a connection on its way to its supervisor; a **link** is the task
//! that runs one connection's SHIP protocol once its supervisor took it over (`hub::link`); and a
//! **link handle** is the supervisor's record of one of its links.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;

use super::admission::UnpairedSlot;
use super::inbound::{Charge, PeerBudget};
use super::inbox::InboxReceiver;
use crate::ShipId;
use crate::hub::errors::EndCause;
use crate::hub::net::BoxIo;
use crate::hub::trust::PairedPeer;
use crate::protocol::{self, CloseCause, CloseReason, ConnectionState, DetailedState, Pin};
use crate::transport::ShipSocket;

/// A connection that finished TLS + WebSocket, on its way to the supervisor of the SKI its
/// certificate proved. Every transport the hub runs over (TCP, the in-memory network of tests)
/// comes as a [`BoxIo`] stream, so a handover is one concrete type whoever made it.
pub(crate) struct Handover {
    /// The WebSocket, over TLS, over the network's stream.
    pub(crate) socket: ShipSocket<BoxIo>,
    /// The admission permits the connection holds for as long as it lives.
    pub(crate) permits: Permits,
    /// The peer's address.
    pub(crate) remote: SocketAddr,
    /// When its TCP connection was accepted or dialled: "most recent" in §12.2.3.
    pub(crate) started: Instant,
}

/// What a connection holds: a connection slot for as long as it lives, and for an incoming
/// connection from a peer that is not paired, one of the strangers' slots until the peer is
/// paired. The supervisor takes the stranger's slot out as it takes the connection over and
/// keeps it in the link's handle: it is given back the moment the peer is paired (approved,
/// `pair`ed, accepted, or its PIN verified under auto-accept), or when the link ends. The
/// connection slot goes to the link task and is dropped with it, so it is free again the
/// moment the connection is gone.
pub(crate) struct Permits {
    /// One of [`crate::hub::Limits::max_connections`]. Held for its drop.
    pub(crate) _connection: OwnedSemaphorePermit,
    /// A stranger's slot (incoming connections of unpaired peers only).
    pub(crate) stranger: Option<UnpairedSlot>,
}

/// What the rest of the hub asks of a supervisor.
pub(crate) enum Command {
    /// The listener admitted a connection whose certificate proved this SKI.
    Incoming(Handover),
    /// A client certificate with this SKI arrived on a connection whose TLS handshake is still
    /// running: the bigger-SKI side settles a double connection now (§7 rule 1).
    ClientCertificateSeen,
    /// The peer is paired now (stored in the trust store already). `dial_now`: the user just
    /// paired it, so the first dial goes out at once; pairings restored at start-up take the
    /// first backoff tier instead, so that a restarted hub does not dial every peer at once.
    Paired { peer: PairedPeer, dial_now: bool },
    /// The pairing was removed (from the trust store already).
    Unpaired,
    /// The user refused the pending pairing request.
    Deny,
    /// Close the peer's connections (a paired peer is redialled by the backoff rules).
    Disconnect,
    /// The application's PIN for the peer (SHIP §13.4.4.3).
    EnterPin(crate::protocol::Pin),
    /// The application has no PIN for the peer.
    RefusePin,
    /// A configured address to dial this peer at (with the WebSocket path).
    StaticAddress(SocketAddr, String),
    /// Discovery sees the peer: each record claiming its SKI (oldest first).
    Sighting(Vec<SightingRecord>),
    /// Discovery lost the peer's announcement. Its addresses stay as a last resort (§8).
    SightingLost,
}

/// One mDNS record claiming a peer's SKI, as the supervisor's address book takes it.
#[derive(Debug, Clone)]
pub(crate) struct SightingRecord {
    /// The full instance name.
    pub(crate) instance: String,
    /// The host name to send as SNI at its addresses.
    pub(crate) host: String,
    /// Its addresses, in the order to try them.
    pub(crate) addresses: Vec<SocketAddr>,
    /// Its TXT `path`.
    pub(crate) path: String,
}

/// Identifies one link within its supervisor.
pub(crate) type LinkId = u64;

/// What a supervisor tells a link.
#[derive(Debug)]
pub(crate) enum LinkCommand {
    /// The user trusts the peer (hello pending → ready).
    Approve,
    /// The user or the application refuses the peer (hello aborted).
    Deny,
    /// Close gracefully (connectionClose announce, wait for confirm up to maxTime).
    Close(CloseReason),
    /// Send a WebSocket ping now and report the pong (double-connection liveness check).
    Ping,
    /// The PIN to send to the peer (§13.4.4.3).
    EnterPin(Pin),
    /// No PIN for the peer: a peer that requires one is refused.
    RefusePin,
    /// Hold our PIN input `busy` until then: a penalty of the hub's limits that span peers
    /// (per source address, in all).
    HoldPin(Instant),
}

/// What a link tells its supervisor.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    /// The engine's state changed.
    State(ConnectionState, DetailedState),
    /// The peer told its SHIP ID.
    PeerShipId(ShipId),
    /// A data payload and its charge against the peer's inbound budget.
    Data(Vec<u8>, Charge),
    /// A pong arrived (after [`LinkCommand::Ping`] or a keepalive ping).
    Pong,
    /// The peer requires a PIN we do not have (or rejected ours).
    PinRequested { rejected: bool },
    /// The peer accepted our PIN.
    PinAccepted,
    /// The peer sent our PIN correctly.
    PinVerified,
    /// The peer sent a wrong PIN.
    PinAttemptFailed {
        attempts: u32,
        penalty: Option<Duration>,
    },
    /// Whether the peer is restricted (our PIN is optional and it sent none yet) changed.
    Restricted(bool),
    /// The link is gone; nothing follows. Boxed to keep the event small: a supervisor's event
    /// queue allocates room for 32 events up front (docs/performance.md).
    Ended(Box<LinkEnd>),
}

/// Why a link ended.
#[derive(Debug, Clone)]
pub(crate) enum LinkEnd {
    /// The protocol engine closed, with its cause.
    Protocol(CloseCause),
    /// No pong within the keepalive timeout.
    KeepaliveTimeout,
    /// The handshake did not reach Completed within the hub's backstop deadline.
    HandshakeDeadline,
    /// The hub's shutdown deadline passed and the link was dropped without a SHIP close.
    Aborted,
    /// The peer's inbound budget stayed used up (the application did not consume its data) for
    /// the stall limit while a ping of ours was unanswered: it could not be served.
    Backpressure,
}

/// The cause the application hears for a link's end, as far as the end alone tells it: a
/// dropped link is the hub's shutdown ([`EndCause::Shutdown`]). Whether a close was ours
/// ([`EndCause::Local`]) or the end of hello ([`EndCause::Hello`]) the supervisor knows.
impl From<LinkEnd> for EndCause {
    fn from(end: LinkEnd) -> Self {
        match end {
            LinkEnd::Protocol(cause) => EndCause::Protocol(cause),
            LinkEnd::KeepaliveTimeout => EndCause::KeepaliveTimeout,
            LinkEnd::HandshakeDeadline => EndCause::HandshakeDeadline,
            LinkEnd::Aborted => EndCause::Shutdown,
            LinkEnd::Backpressure => EndCause::Backpressure,
        }
    }
}

/// Parameters of a link's task.
pub(crate) struct LinkSetup {
    /// The link's id, with which its events are tagged.
    pub(crate) id: LinkId,
    /// How often data exchange is kept alive with a WebSocket ping.
    pub(crate) keepalive_interval: Duration,
    /// How long a ping's pong (or a write) may take before the link is dead.
    pub(crate) keepalive_timeout: Duration,
    /// The backstop: data exchange must be open by then.
    pub(crate) handshake_deadline: Instant,
    /// Fired by the hub when its shutdown deadline passed: drop the socket at once.
    pub(crate) abort: CancellationToken,
    /// The peer's inbound data budget (shared by its links).
    pub(crate) budget: Arc<PeerBudget>,
    /// The largest data message the socket accepts (what one more read may cost).
    pub(crate) max_message: usize,
    /// How long the link may leave its socket unread for backpressure while a ping is owed.
    pub(crate) stall_limit: Duration,
}

/// Everything a link task needs from its supervisor besides its connection: its protocol engine,
/// its parameters and its channels.
pub(crate) struct LinkStart {
    /// The sans-IO protocol engine, set up for this connection (role, trust, PIN).
    pub(crate) engine: protocol::Connection,
    /// Timers, limits and the abort token.
    pub(crate) setup: LinkSetup,
    /// Commands from the supervisor, and the data the application sends to the peer.
    pub(crate) inbox: InboxReceiver<LinkCommand>,
    /// Events to the supervisor, tagged with the link's id.
    pub(crate) events: mpsc::UnboundedSender<(LinkId, LinkEvent)>,
}
