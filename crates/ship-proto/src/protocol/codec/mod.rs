//! The SHIP wire form: type byte + EEBus JSON (§13.4.1, §13.4.3, docs/ship.md §5).
//!
//! **Encoding** writes exactly the form EEBus peers send: every JSON object becomes an array of
//! single-key objects in field order, `{}` becomes `[]`, arrays stay arrays, no whitespace.
//!
//! **Decoding** is structural, not string replacement (ship-go rewrites `[{` to `{` and so
//! corrupts payloads that contain that text). Wherever the model expects an object, the decoder
//! accepts either a JSON object or an array of objects whose members are merged, so the EEBus
//! form and plain JSON both decode. serde_json accepts SP/HT/LF/CR around every token, which is
//! what TC_SHIP_MSG_003 sends; trailing NUL bytes (some devices append `0x00`) are stripped.
//! Unknown fields are skipped (newer peers may add some); anything else that does not fit the
//! model is a typed [`DecodeError`], never a panic. A `data` payload is kept as the exact bytes
//! the peer sent ([`RawValue`]).

mod decode;
mod encode;

pub use decode::decode;
pub(crate) use decode::lenient_close_announce;
pub use encode::{data_message_len, encode, encode_into};

#[cfg(doc)]
use serde_json::value::RawValue;

use super::message::{MessageType, ShipMessage};

/// The CMI bytes (§13.4.3): type [`MessageType::Init`], `CmiHead` 0.
pub const CMI: [u8; 2] = [0x00, 0x00];

/// Why bytes are not a SHIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Zero bytes: not even a type byte.
    #[error("empty SHIP message (no type byte)")]
    Empty,
    /// The type byte is not one of 0..=3 (TC_SHIP_MSG_002 sends `FF 00`).
    #[error("unknown SHIP message type byte {0:#04x}")]
    UnknownType(u8),
    /// A type byte without a value (TC_SHIP_MSG_001 sends `02`).
    #[error("SHIP message of type {0:?} has no value")]
    MissingValue(MessageType),
    /// An init message that is not exactly `00 00` (TC_SHIP_CMI_005 sends `00 01`).
    #[error("CMI must be `00 00`, got `00` followed by {}", hex_prefix(.0))]
    InvalidCmi(Vec<u8>),
    /// The value is not UTF-8.
    #[error("SHIP message value is not UTF-8")]
    NotUtf8,
    /// The value is not JSON.
    #[error("SHIP message value is not JSON: {0}")]
    Json(String),
    /// The JSON does not name exactly one message.
    #[error("SHIP message value must be an object naming exactly one message")]
    NotAMessage,
    /// The JSON names a message SHIP does not define.
    /// (The message quotes the name escaped and cut, [`crate::text::Quoted`]; the field holds
    /// it exactly.)
    #[error("unknown SHIP message {}", crate::text::Quoted(.0))]
    UnknownMessage(String),
    /// A known message sent with the wrong type byte.
    #[error("{message} must be sent with type byte {expected}, got {found}")]
    WrongType {
        /// The message name.
        message: &'static str,
        /// The type byte it must have.
        expected: u8,
        /// The type byte it had.
        found: u8,
    },
    /// A mandatory field is absent.
    #[error("{message}: missing field {field}")]
    MissingField {
        /// The message or object name.
        message: &'static str,
        /// The field name.
        field: &'static str,
    },
    /// A field has a value the model does not allow.
    #[error("{message}: invalid {field}: {detail}")]
    InvalidField {
        /// The message or object name.
        message: &'static str,
        /// The field name.
        field: &'static str,
        /// What is wrong.
        detail: String,
    },
}

/// At most the first 16 bytes, in hex (a peer may send many more).
fn hex_prefix(bytes: &[u8]) -> String {
    let shown = &bytes[..bytes.len().min(16)];
    let more = if bytes.len() > shown.len() {
        format!(" … ({} bytes)", bytes.len())
    } else {
        String::new()
    };
    format!("{shown:02x?}{more}")
}

fn message_name(message: &ShipMessage) -> &'static str {
    match message {
        ShipMessage::Cmi => "CMI",
        ShipMessage::ConnectionHello(_) => "connectionHello",
        ShipMessage::ProtocolHandshake(_) => "messageProtocolHandshake",
        ShipMessage::ProtocolHandshakeError(_) => "messageProtocolHandshakeError",
        ShipMessage::ConnectionPinState(_) => "connectionPinState",
        ShipMessage::ConnectionPinInput(_) => "connectionPinInput",
        ShipMessage::ConnectionPinError(_) => "connectionPinError",
        ShipMessage::AccessMethodsRequest => "accessMethodsRequest",
        ShipMessage::AccessMethods(_) => "accessMethods",
        ShipMessage::Data(_) => "data",
        ShipMessage::ConnectionClose(_) => "connectionClose",
    }
}
