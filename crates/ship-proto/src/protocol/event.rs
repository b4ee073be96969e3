//! What a [`super::Connection`] hands back: transmits, events, close causes and errors.

use crate::ShipId;

use super::codec::DecodeError;
use super::message::{CloseReason, HandshakeErrorCode, MessageKind, PinState, ProtocolVersion};
use super::state::{ConnectionState, DetailedState};
use super::timer::Timer;

/// Something the driver must do on the WebSocket, in order. Deliberately exhaustive: a driver
/// has to handle every variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// Send one binary WebSocket message.
    Message(Vec<u8>),
    /// Send a WebSocket close frame with this code and reason, then end the connection.
    Close {
        /// The WebSocket close code (4452 hello aborted, 4450 SHIP ID mismatch, 4001 error,
        /// 1000 after a graceful `connectionClose`).
        code: u16,
        /// Human-readable reason (at most 123 bytes).
        reason: String,
    },
}

/// Something the application should hear about, in order.
///
/// Deliberately not `#[non_exhaustive]`: a runtime must act on every event the engine emits
/// (a PIN request left unanswered stalls the connection until its timer ends), so a new event
/// is a breaking change that stops every runtime's build at its `match` rather than falling
/// into a catch-all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The state changed (emitted for every detailed state entered).
    StateChanged {
        /// The application state.
        state: ConnectionState,
        /// The detailed protocol state.
        detail: DetailedState,
    },
    /// The peer told us its SHIP ID in `accessMethods` (§13.4.6); emitted once.
    PeerShipId(ShipId),
    /// A data payload (SPINE JSON) exactly as the peer sent it (§13.4.5).
    Data(Vec<u8>),
    /// The peer requires a PIN from us (§13.4.4.3) and we have none to send, or the one we sent
    /// was wrong (`rejected`). Answer with [`super::Connection::enter_pin`] or
    /// [`super::Connection::refuse_pin`]; until then the PIN step waits (at most
    /// [`super::ProtocolConfig::pin_wait`]).
    PinRequested {
        /// The peer answered our PIN with `connectionPinError`.
        rejected: bool,
    },
    /// The peer accepted the PIN we sent (`pinOk`).
    PinAccepted,
    /// The peer sent our PIN correctly: it is no longer restricted.
    PinVerified,
    /// The peer sent a wrong PIN.
    PinAttemptFailed {
        /// Its consecutive wrong PINs so far (across connections, see
        /// [`super::PinParams::failed_attempts`]).
        attempts: u32,
        /// The penalty that now runs (`inputPermission` `busy`), if any.
        penalty: Option<std::time::Duration>,
    },
    /// The connection ended. Emitted exactly once, as the last event.
    Closed(CloseCause),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CloseCause {
    /// A wait ran out.
    #[error("timed out waiting ({0})")]
    Timeout(Timer),
    /// The peer sent hello `aborted` (§13.4.4.1).
    #[error("the peer denied trust (hello aborted)")]
    RemoteDeniedTrust,
    /// The application denied trust while hello was running.
    #[error("trust denied locally (hello aborted)")]
    LocalDeniedTrust,
    /// A valid message the current state does not accept.
    #[error("unexpected message: expected {expected}, got {got}")]
    UnexpectedMessage {
        /// What the state waits for.
        expected: MessageKind,
        /// What arrived.
        got: MessageKind,
    },
    /// Bytes that are no SHIP message, where the handshake needs one.
    #[error("undecodable message: {0}")]
    Decode(DecodeError),
    /// The protocol handshake found no common version/format, or a `select` that differs
    /// from the offer (§13.4.4.2).
    #[error("protocol selection mismatch (version {}.{}, formats {formats:?})", version.major, version.minor)]
    SelectionMismatch {
        /// The version the peer sent.
        version: ProtocolVersion,
        /// The formats the peer sent.
        formats: Vec<String>,
    },
    /// The peer sent `messageProtocolHandshakeError`.
    #[error("the peer reported a protocol handshake error ({0:?})")]
    RemoteHandshakeError(HandshakeErrorCode),
    /// The peer requires a PIN (§13.4.4.3) and none was given: the application refused
    /// ([`super::Connection::refuse_pin`]).
    #[error("the peer requires PIN verification (pinState {}) and no PIN was given", .0.as_str())]
    PinRequired(PinState),
    /// The peer's hello wait is below `T_hello_prolong_min`: it cannot be prolonged in time.
    #[error("the peer's hello wait ({waiting_ms} ms) is too short to prolong")]
    PeerWaitTooShort {
        /// The `waiting` it sent.
        waiting_ms: u32,
    },
    /// The peer's `accessMethods` has no `id` or an invalid one.
    /// (The message quotes the value escaped and cut, [`crate::text::Quoted`]; the field holds
    /// it exactly.)
    #[error("the peer sent an invalid SHIP ID {}", quoted_or_none(.0))]
    InvalidShipId(Option<String>),
    /// The peer's SHIP ID differs from the one stored for its SKI (close 4450).
    #[error("SHIP id mismatch: stored {stored}, received {received}")]
    ShipIdMismatch {
        /// The stored SHIP ID.
        stored: ShipId,
        /// What the peer sent.
        received: ShipId,
    },
    /// The peer announced the close (§13.4.7); we confirmed.
    #[error("closed by the peer ({})", no_reason_or(.reason))]
    RemoteClosed {
        /// The reason it gave, as received (one SHIP does not define is kept too).
        reason: Option<PeerCloseReason>,
    },
    /// We closed on the application's request (§13.4.7).
    #[error("closed locally ({})", .0.as_str())]
    LocalClose(CloseReason),
    /// The transport ended under us.
    #[error("the transport closed")]
    TransportClosed,
}

impl CloseCause {
    /// A wait ran out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, CloseCause::Timeout(_))
    }

    /// Which wait ran out.
    pub fn timer(&self) -> Option<Timer> {
        match self {
            CloseCause::Timeout(timer) => Some(*timer),
            _ => None,
        }
    }

    /// The peer denied trust.
    pub fn is_remote_denied_trust(&self) -> bool {
        matches!(self, CloseCause::RemoteDeniedTrust)
    }

    /// We denied trust.
    pub fn is_local_denied_trust(&self) -> bool {
        matches!(self, CloseCause::LocalDeniedTrust)
    }

    /// The peer's SHIP ID differs from the stored one.
    pub fn is_ship_id_mismatch(&self) -> bool {
        matches!(self, CloseCause::ShipIdMismatch { .. })
    }

    /// A protocol violation by the peer (unexpected or undecodable message, mismatch).
    pub fn is_protocol_violation(&self) -> bool {
        matches!(
            self,
            CloseCause::UnexpectedMessage { .. }
                | CloseCause::Decode(_)
                | CloseCause::SelectionMismatch { .. }
                | CloseCause::InvalidShipId(_)
        )
    }

    /// An orderly end (`connectionClose` either way).
    pub fn is_graceful(&self) -> bool {
        matches!(
            self,
            CloseCause::RemoteClosed { .. } | CloseCause::LocalClose(_)
        )
    }
}

/// The `reason` of a peer's `connectionClose` announce, as received (§13.4.7).
///
/// SHIP defines two reasons ([`CloseReason`]); a peer may send another (a real device sends
/// "User close"). Such an announce is accepted all the same — confirmed, and the connection
/// closed — and its reason is kept exactly as received: [`PeerCloseReason::Unknown`] holds the
/// text, and `Display` shows it quoted and escaped ([`crate::text::Quoted`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerCloseReason {
    /// A reason SHIP defines.
    Known(CloseReason),
    /// Any other value, exactly as received (a JSON string's text; any other JSON value as its
    /// JSON text).
    Unknown(String),
}

impl PeerCloseReason {
    /// The reason, if it is one SHIP defines.
    pub fn known(&self) -> Option<CloseReason> {
        match self {
            PeerCloseReason::Known(reason) => Some(*reason),
            PeerCloseReason::Unknown(_) => None,
        }
    }

    /// The reason as the peer sent it: the wire name of a known one, the exact text of another.
    pub fn as_received(&self) -> &str {
        match self {
            PeerCloseReason::Known(reason) => reason.as_str(),
            PeerCloseReason::Unknown(text) => text,
        }
    }
}

impl From<CloseReason> for PeerCloseReason {
    fn from(reason: CloseReason) -> Self {
        PeerCloseReason::Known(reason)
    }
}

/// A known reason by its wire name; another as `unknown reason "…"`, quoted and escaped.
impl std::fmt::Display for PeerCloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerCloseReason::Known(reason) => f.write_str(reason.as_str()),
            PeerCloseReason::Unknown(text) => {
                write!(f, "unknown reason {}", crate::text::Quoted(text))
            }
        }
    }
}

/// A peer's close reason as an error message shows it, or "no reason".
fn no_reason_or(reason: &Option<PeerCloseReason>) -> String {
    match reason {
        Some(reason) => reason.to_string(),
        None => "no reason".to_owned(),
    }
}

/// Why [`super::Connection::send_data`] refused a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendDataError {
    /// The payload is not one JSON value.
    #[error("data payload is not JSON: {0}")]
    NotJson(String),
    /// Data exchange has not started (PIN step not done, §13.4.5).
    #[error("data exchange has not started (state {0:?})")]
    NotReady(ConnectionState),
    /// The connection is closing or closed.
    #[error("the connection is closing or closed")]
    Closed,
}

/// A peer's optional value as an error message quotes it ([`crate::text::Quoted`]).
fn quoted_or_none(value: &Option<String>) -> String {
    match value {
        Some(value) => crate::text::Quoted(value).to_string(),
        None => "(none)".to_owned(),
    }
}
