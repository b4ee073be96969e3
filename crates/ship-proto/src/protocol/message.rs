//! The SHIP message model (§13.4, wire form in [`super::codec`]).
//!
//! Every SHIP message is one WebSocket binary message: a type byte ([`MessageType`], §13.4.1)
//! followed by a value. For the CMI (§13.4.3) the value is one byte, the `CmiHead`; for every
//! other message it is UTF-8 JSON naming exactly one message ([`ShipMessage`]).
//!
//! The types here hold the values only; [`super::codec`] owns the bytes. Optional fields are
//! `Option`s so that a decoded message says exactly what the peer sent (a `ready` hello without
//! `waiting` is legal on the wire but matters to TC_SHIP_HELLO_003).

use serde_json::value::RawValue;

/// The first byte of every SHIP message (§13.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
#[non_exhaustive]
pub enum MessageType {
    /// `0`: connection mode initialisation (CMI, §13.4.3).
    Init = 0,
    /// `1`: connection data preparation (hello, protocol handshake, PIN, access methods).
    Control = 1,
    /// `2`: connection data exchange (§13.4.5).
    Data = 2,
    /// `3`: connection termination (§13.4.7).
    End = 3,
}

impl MessageType {
    /// The type byte for `byte`, if it is one of the four SHIP defines.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            0 => Some(Self::Init),
            1 => Some(Self::Control),
            2 => Some(Self::Data),
            3 => Some(Self::End),
            _ => None,
        }
    }

    /// The byte on the wire.
    pub fn as_byte(self) -> u8 {
        self as u8
    }
}

/// One complete SHIP message (§13.4.3–§13.4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShipMessage {
    /// The CMI `00 00` (§13.4.3): type [`MessageType::Init`], `CmiHead` 0.
    Cmi,
    /// `connectionHello` (§13.4.4.1).
    ConnectionHello(ConnectionHello),
    /// `messageProtocolHandshake` (§13.4.4.2).
    ProtocolHandshake(ProtocolHandshake),
    /// `messageProtocolHandshakeError` (§13.4.4.2).
    ProtocolHandshakeError(ProtocolHandshakeError),
    /// `connectionPinState` (§13.4.4.3).
    ConnectionPinState(ConnectionPinState),
    /// `connectionPinInput` (§13.4.4.3): a PIN for the peer to verify.
    ConnectionPinInput(ConnectionPinInput),
    /// `connectionPinError` (§13.4.4.3): the PIN received was wrong.
    ConnectionPinError(ConnectionPinError),
    /// `accessMethodsRequest` (§13.4.6): an empty object.
    AccessMethodsRequest,
    /// `accessMethods` (§13.4.6).
    AccessMethods(AccessMethods),
    /// `data` (§13.4.5).
    Data(Data),
    /// `connectionClose` (§13.4.7).
    ConnectionClose(ConnectionClose),
}

impl ShipMessage {
    /// The type byte this message travels with.
    pub fn message_type(&self) -> MessageType {
        match self {
            ShipMessage::Cmi => MessageType::Init,
            ShipMessage::Data(_) => MessageType::Data,
            ShipMessage::ConnectionClose(_) => MessageType::End,
            _ => MessageType::Control,
        }
    }

    /// What kind of message this is, for "expected X, got Y" errors and logs.
    pub fn kind(&self) -> MessageKind {
        match self {
            ShipMessage::Cmi => MessageKind::Cmi,
            ShipMessage::ConnectionHello(_) => MessageKind::ConnectionHello,
            ShipMessage::ProtocolHandshake(h) => match h.handshake_type {
                HandshakeType::AnnounceMax => MessageKind::AnnounceMax,
                HandshakeType::Select => MessageKind::Select,
            },
            ShipMessage::ProtocolHandshakeError(_) => MessageKind::ProtocolHandshakeError,
            ShipMessage::ConnectionPinState(_) => MessageKind::ConnectionPinState,
            ShipMessage::ConnectionPinInput(_) => MessageKind::ConnectionPinInput,
            ShipMessage::ConnectionPinError(_) => MessageKind::ConnectionPinError,
            ShipMessage::AccessMethodsRequest => MessageKind::AccessMethodsRequest,
            ShipMessage::AccessMethods(_) => MessageKind::AccessMethods,
            ShipMessage::Data(_) => MessageKind::Data,
            ShipMessage::ConnectionClose(_) => MessageKind::ConnectionClose,
        }
    }
}

/// The kinds of SHIP message, as named in "expected X, got Y".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageKind {
    /// The CMI `00 00`.
    Cmi,
    /// `connectionHello`.
    ConnectionHello,
    /// `messageProtocolHandshake` with `handshakeType` `announceMax`.
    AnnounceMax,
    /// `messageProtocolHandshake` with `handshakeType` `select`.
    Select,
    /// `messageProtocolHandshakeError`.
    ProtocolHandshakeError,
    /// `connectionPinState`.
    ConnectionPinState,
    /// `connectionPinInput`.
    ConnectionPinInput,
    /// `connectionPinError`.
    ConnectionPinError,
    /// `accessMethodsRequest`.
    AccessMethodsRequest,
    /// `accessMethods`.
    AccessMethods,
    /// `data`.
    Data,
    /// `connectionClose`.
    ConnectionClose,
    /// Bytes that do not decode to any SHIP message.
    Undecodable,
}

impl std::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MessageKind::Cmi => "CMI",
            MessageKind::ConnectionHello => "connectionHello",
            MessageKind::AnnounceMax => "messageProtocolHandshake announceMax",
            MessageKind::Select => "messageProtocolHandshake select",
            MessageKind::ProtocolHandshakeError => "messageProtocolHandshakeError",
            MessageKind::ConnectionPinState => "connectionPinState",
            MessageKind::ConnectionPinInput => "connectionPinInput",
            MessageKind::ConnectionPinError => "connectionPinError",
            MessageKind::AccessMethodsRequest => "accessMethodsRequest",
            MessageKind::AccessMethods => "accessMethods",
            MessageKind::Data => "data",
            MessageKind::ConnectionClose => "connectionClose",
            MessageKind::Undecodable => "undecodable bytes",
        })
    }
}

/// `connectionHello` (§13.4.4.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionHello {
    /// `phase`.
    pub phase: HelloPhase,
    /// `waiting`: milliseconds the sender will still wait for the peer.
    pub waiting: Option<u32>,
    /// `prolongationRequest`: the sender asks the peer to extend its wait (§13.4.4.1.3).
    pub prolongation_request: Option<bool>,
}

/// `phase` of a `connectionHello` (§13.4.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HelloPhase {
    /// `pending`: a user has yet to decide whether to trust the peer.
    Pending,
    /// `ready`: the sender trusts the peer.
    Ready,
    /// `aborted`: the sender ends the handshake (trust denied or timed out).
    Aborted,
}

impl HelloPhase {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            HelloPhase::Pending => "pending",
            HelloPhase::Ready => "ready",
            HelloPhase::Aborted => "aborted",
        }
    }
}

/// `messageProtocolHandshake` (§13.4.4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolHandshake {
    /// `handshakeType`.
    pub handshake_type: HandshakeType,
    /// `version`.
    pub version: ProtocolVersion,
    /// `formats.format`: the message formats, e.g. `JSON-UTF8`.
    pub formats: Vec<String>,
}

impl ProtocolHandshake {
    /// The message format every SHIP 1.0 node supports (§13.4.4.2).
    pub const JSON_UTF8: &'static str = "JSON-UTF8";

    /// SHIP 1.0 with format `JSON-UTF8`, of the given type.
    pub fn ship_1_0(handshake_type: HandshakeType) -> Self {
        ProtocolHandshake {
            handshake_type,
            version: ProtocolVersion { major: 1, minor: 0 },
            formats: vec![Self::JSON_UTF8.to_owned()],
        }
    }
}

/// `handshakeType` of a `messageProtocolHandshake` (§13.4.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeType {
    /// `announceMax`: the client offers the highest version it supports.
    AnnounceMax,
    /// `select`: the server's choice, echoed by the client.
    Select,
}

impl HandshakeType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            HandshakeType::AnnounceMax => "announceMax",
            HandshakeType::Select => "select",
        }
    }
}

/// `version` of a `messageProtocolHandshake`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion {
    /// `major`.
    pub major: u16,
    /// `minor`.
    pub minor: u16,
}

/// `messageProtocolHandshakeError` (§13.4.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProtocolHandshakeError {
    /// `error`.
    pub error: HandshakeErrorCode,
}

/// The `error` values of `messageProtocolHandshakeError` (§13.4.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeErrorCode {
    /// `0`: reserved.
    Rfu,
    /// `1`: a wait timer expired.
    Timeout,
    /// `2`: a message that the state does not expect.
    UnexpectedMessage,
    /// `3`: no common version or format, or a `select` that differs from the offer.
    SelectionMismatch,
    /// Any other value, kept as received.
    Other(u8),
}

impl HandshakeErrorCode {
    /// The number on the wire.
    pub fn as_u8(self) -> u8 {
        match self {
            HandshakeErrorCode::Rfu => 0,
            HandshakeErrorCode::Timeout => 1,
            HandshakeErrorCode::UnexpectedMessage => 2,
            HandshakeErrorCode::SelectionMismatch => 3,
            HandshakeErrorCode::Other(n) => n,
        }
    }

    /// The code for a number on the wire.
    pub fn from_u8(n: u8) -> Self {
        match n {
            0 => HandshakeErrorCode::Rfu,
            1 => HandshakeErrorCode::Timeout,
            2 => HandshakeErrorCode::UnexpectedMessage,
            3 => HandshakeErrorCode::SelectionMismatch,
            n => HandshakeErrorCode::Other(n),
        }
    }
}

/// `connectionPinState` (§13.4.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionPinState {
    /// `pinState`.
    pub pin_state: PinState,
    /// `inputPermission`.
    pub input_permission: Option<PinInputPermission>,
}

/// `pinState` (§13.4.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PinState {
    /// `required`: the sender requires a PIN before data exchange.
    Required,
    /// `optional`: the sender accepts a PIN but does not require one.
    Optional,
    /// `pinOk`: the sender has accepted the PIN it was given.
    PinOk,
    /// `none`: no PIN; what deployed devices send.
    None,
}

impl PinState {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PinState::Required => "required",
            PinState::Optional => "optional",
            PinState::PinOk => "pinOk",
            PinState::None => "none",
        }
    }
}

/// `inputPermission` of a `connectionPinState` (§13.4.4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PinInputPermission {
    /// `busy`.
    Busy,
    /// `ok`.
    Ok,
}

impl PinInputPermission {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            PinInputPermission::Busy => "busy",
            PinInputPermission::Ok => "ok",
        }
    }
}

/// `connectionPinInput` (§13.4.4.3). Its `Debug` form never shows the PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionPinInput {
    /// `pin`; `None` when the peer sent text that is no valid PIN (8–16 hex digits), which is
    /// verified as a wrong PIN.
    pub pin: Option<super::pin::Pin>,
}

/// `connectionPinError` (§13.4.4.3): the receiver of a `connectionPinInput` found it wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionPinError {
    /// `error`: `1` is the one value SHIP defines (wrong PIN).
    pub error: u8,
}

impl ConnectionPinError {
    /// `error` 1: wrong PIN.
    pub const WRONG_PIN: ConnectionPinError = ConnectionPinError { error: 1 };
}

/// `accessMethods` (§13.4.6). Only `id` is modelled; `dnsSd_mDns` and `dns` are skipped when
/// decoding (ship-hub is reached through mDNS only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessMethods {
    /// `id`: the sender's SHIP ID, as announced in mDNS (§7.3.2).
    pub id: Option<String>,
}

/// `data` (§13.4.5). Two `Data` are equal when their payload texts are identical.
#[derive(Debug, Clone)]
pub struct Data {
    /// `header.protocolId`, `ee1.0` for SPINE.
    pub protocol_id: String,
    /// `payload`: opaque JSON, passed through byte for byte.
    pub payload: Box<RawValue>,
    /// `extension`, optional.
    pub extension: Option<DataExtension>,
}

impl PartialEq for Data {
    fn eq(&self, other: &Self) -> bool {
        self.protocol_id == other.protocol_id
            && self.payload.get() == other.payload.get()
            && self.extension == other.extension
    }
}

impl Eq for Data {}

impl Data {
    /// The `protocolId` of SPINE payloads.
    pub const SPINE_PROTOCOL_ID: &'static str = "ee1.0";
}

/// `extension` of a `data` message (§13.4.5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataExtension {
    /// `extensionId`.
    pub extension_id: Option<String>,
    /// `binary` (hex text).
    pub binary: Option<String>,
    /// `string`.
    pub string: Option<String>,
}

/// `connectionClose` (§13.4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionClose {
    /// `phase`.
    pub phase: ClosePhase,
    /// `maxTime`: milliseconds the announcer waits for the confirm.
    pub max_time: Option<u32>,
    /// `reason`.
    pub reason: Option<CloseReason>,
}

/// `phase` of a `connectionClose` (§13.4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClosePhase {
    /// `announce`: the sender wants to close.
    Announce,
    /// `confirm`: the answer to an announce.
    Confirm,
}

impl ClosePhase {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClosePhase::Announce => "announce",
            ClosePhase::Confirm => "confirm",
        }
    }
}

/// `reason` of a `connectionClose` (§13.4.7); also what the application passes to
/// [`super::Connection::close`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// `unspecific`.
    Unspecific,
    /// `removedConnection`: the sender no longer trusts the peer (unpaired).
    RemovedConnection,
}

impl CloseReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Unspecific => "unspecific",
            CloseReason::RemovedConnection => "removedConnection",
        }
    }
}
