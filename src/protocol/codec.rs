//! The SHIP wire form: type byte + EEBus JSON (§13.4.1, §13.4.3, ship-protocol.md §5).
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

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::message::{
    AccessMethods, ClosePhase, CloseReason, ConnectionClose, ConnectionHello, ConnectionPinState,
    Data, DataExtension, HandshakeErrorCode, HandshakeType, HelloPhase, MessageType,
    PinInputPermission, PinState, ProtocolHandshake, ProtocolHandshakeError, ProtocolVersion,
    ShipMessage,
};

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
    #[error("CMI must be `00 00`, got `00` followed by {0:02x?}")]
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
    #[error("unknown SHIP message {0:?}")]
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

// ---------------------------------------------------------------------------------------------
// Decoding

/// Decodes one complete SHIP message (one WebSocket binary message).
pub fn decode(bytes: &[u8]) -> Result<ShipMessage, DecodeError> {
    let (&type_byte, value) = bytes.split_first().ok_or(DecodeError::Empty)?;
    let message_type =
        MessageType::from_byte(type_byte).ok_or(DecodeError::UnknownType(type_byte))?;
    if message_type == MessageType::Init {
        return match value {
            [0x00] => Ok(ShipMessage::Cmi),
            [] => Err(DecodeError::MissingValue(MessageType::Init)),
            other => Err(DecodeError::InvalidCmi(other.to_vec())),
        };
    }
    let end = value.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let value = &value[..end];
    if value
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Err(DecodeError::MissingValue(message_type));
    }
    let text = std::str::from_utf8(value).map_err(|_| DecodeError::NotUtf8)?;
    let root: &RawValue =
        serde_json::from_str(text).map_err(|e| DecodeError::Json(e.to_string()))?;
    let top = Fields::parse(root, "message").map_err(|_| DecodeError::NotAMessage)?;
    let [(name, body)] = top.0.as_slice() else {
        return Err(DecodeError::NotAMessage);
    };
    let message = match name.as_ref() {
        "connectionHello" => ShipMessage::ConnectionHello(decode_hello(body)?),
        "messageProtocolHandshake" => ShipMessage::ProtocolHandshake(decode_handshake(body)?),
        "messageProtocolHandshakeError" => {
            ShipMessage::ProtocolHandshakeError(decode_handshake_error(body)?)
        }
        "connectionPinState" => ShipMessage::ConnectionPinState(decode_pin_state(body)?),
        "accessMethodsRequest" => {
            Fields::parse(body, "accessMethodsRequest")?;
            ShipMessage::AccessMethodsRequest
        }
        "accessMethods" => ShipMessage::AccessMethods(decode_access_methods(body)?),
        "data" => ShipMessage::Data(decode_data(body)?),
        "connectionClose" => ShipMessage::ConnectionClose(decode_close(body)?),
        other => return Err(DecodeError::UnknownMessage(other.to_owned())),
    };
    let expected = message.message_type();
    if expected != message_type {
        return Err(DecodeError::WrongType {
            message: message_name(&message),
            expected: expected.as_byte(),
            found: type_byte,
        });
    }
    Ok(message)
}

fn message_name(message: &ShipMessage) -> &'static str {
    match message {
        ShipMessage::Cmi => "CMI",
        ShipMessage::ConnectionHello(_) => "connectionHello",
        ShipMessage::ProtocolHandshake(_) => "messageProtocolHandshake",
        ShipMessage::ProtocolHandshakeError(_) => "messageProtocolHandshakeError",
        ShipMessage::ConnectionPinState(_) => "connectionPinState",
        ShipMessage::AccessMethodsRequest => "accessMethodsRequest",
        ShipMessage::AccessMethods(_) => "accessMethods",
        ShipMessage::Data(_) => "data",
        ShipMessage::ConnectionClose(_) => "connectionClose",
    }
}

/// The members of one model object, from either a JSON object or an EEBus array of
/// single-key objects (members of all array elements merged; for a repeated name the first one found is used).
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Fields<'a> {
    fn parse(raw: &'a RawValue, message: &'static str) -> Result<Self, DecodeError> {
        let text = raw.get();
        let invalid = |detail: &str| DecodeError::InvalidField {
            message,
            field: "(object)",
            detail: detail.to_owned(),
        };
        match text.as_bytes().first() {
            Some(b'{') => Ok(Fields(members(text).map_err(|e| invalid(&e))?)),
            Some(b'[') => {
                let elements: Vec<&'a RawValue> =
                    serde_json::from_str(text).map_err(|e| invalid(&e.to_string()))?;
                let mut all = Vec::new();
                for element in elements {
                    if !element.get().starts_with('{') {
                        return Err(invalid("array element is not an object"));
                    }
                    all.extend(members(element.get()).map_err(|e| invalid(&e))?);
                }
                Ok(Fields(all))
            }
            _ => Err(invalid("expected an object or an array of objects")),
        }
    }

    fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
    }

    fn require(
        &self,
        message: &'static str,
        field: &'static str,
    ) -> Result<&'a RawValue, DecodeError> {
        self.get(field)
            .ok_or(DecodeError::MissingField { message, field })
    }
}

fn members(text: &str) -> Result<Vec<(Cow<'_, str>, &RawValue)>, String> {
    serde_json::from_str::<Members<'_>>(text)
        .map(|m| m.0)
        .map_err(|e| e.to_string())
}

/// The members of one JSON object in document order, keys borrowed where possible.
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some((Key(key), value)) = map.next_entry::<Key<'de>, &'de RawValue>()? {
                    members.push((key, value));
                }
                Ok(Members(members))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

/// An object key, borrowed from the input unless it contains escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

fn scalar<'a, T: Deserialize<'a>>(
    raw: &'a RawValue,
    message: &'static str,
    field: &'static str,
) -> Result<T, DecodeError> {
    serde_json::from_str(raw.get()).map_err(|e| DecodeError::InvalidField {
        message,
        field,
        detail: e.to_string(),
    })
}

fn optional<'a, T: Deserialize<'a>>(
    fields: &Fields<'a>,
    message: &'static str,
    field: &'static str,
) -> Result<Option<T>, DecodeError> {
    fields
        .get(field)
        .map(|raw| scalar(raw, message, field))
        .transpose()
}

fn name_of<T: Copy>(
    raw: &RawValue,
    message: &'static str,
    field: &'static str,
    choices: &[(&str, T)],
) -> Result<T, DecodeError> {
    let text: String = scalar(raw, message, field)?;
    choices
        .iter()
        .find(|(name, _)| *name == text)
        .map(|(_, value)| *value)
        .ok_or_else(|| DecodeError::InvalidField {
            message,
            field,
            detail: format!("unknown value {text:?}"),
        })
}

fn decode_hello(body: &RawValue) -> Result<ConnectionHello, DecodeError> {
    const M: &str = "connectionHello";
    let fields = Fields::parse(body, M)?;
    let phase = name_of(
        fields.require(M, "phase")?,
        M,
        "phase",
        &[
            ("pending", HelloPhase::Pending),
            ("ready", HelloPhase::Ready),
            ("aborted", HelloPhase::Aborted),
        ],
    )?;
    Ok(ConnectionHello {
        phase,
        waiting: optional(&fields, M, "waiting")?,
        prolongation_request: optional(&fields, M, "prolongationRequest")?,
    })
}

fn decode_handshake(body: &RawValue) -> Result<ProtocolHandshake, DecodeError> {
    const M: &str = "messageProtocolHandshake";
    let fields = Fields::parse(body, M)?;
    let handshake_type = name_of(
        fields.require(M, "handshakeType")?,
        M,
        "handshakeType",
        &[
            ("announceMax", HandshakeType::AnnounceMax),
            ("select", HandshakeType::Select),
        ],
    )?;
    let version = Fields::parse(fields.require(M, "version")?, "version")?;
    let version = ProtocolVersion {
        major: scalar(version.require("version", "major")?, "version", "major")?,
        minor: scalar(version.require("version", "minor")?, "version", "minor")?,
    };
    let formats = Fields::parse(fields.require(M, "formats")?, "formats")?;
    let formats: Vec<String> = scalar(formats.require("formats", "format")?, "formats", "format")?;
    Ok(ProtocolHandshake {
        handshake_type,
        version,
        formats,
    })
}

fn decode_handshake_error(body: &RawValue) -> Result<ProtocolHandshakeError, DecodeError> {
    const M: &str = "messageProtocolHandshakeError";
    let fields = Fields::parse(body, M)?;
    let code: u8 = scalar(fields.require(M, "error")?, M, "error")?;
    Ok(ProtocolHandshakeError {
        error: HandshakeErrorCode::from_u8(code),
    })
}

fn decode_pin_state(body: &RawValue) -> Result<ConnectionPinState, DecodeError> {
    const M: &str = "connectionPinState";
    let fields = Fields::parse(body, M)?;
    let pin_state = name_of(
        fields.require(M, "pinState")?,
        M,
        "pinState",
        &[
            ("required", PinState::Required),
            ("optional", PinState::Optional),
            ("pinOk", PinState::PinOk),
            ("none", PinState::None),
        ],
    )?;
    let input_permission = fields
        .get("inputPermission")
        .map(|raw| {
            name_of(
                raw,
                M,
                "inputPermission",
                &[
                    ("busy", PinInputPermission::Busy),
                    ("ok", PinInputPermission::Ok),
                ],
            )
        })
        .transpose()?;
    Ok(ConnectionPinState {
        pin_state,
        input_permission,
    })
}

fn decode_access_methods(body: &RawValue) -> Result<AccessMethods, DecodeError> {
    const M: &str = "accessMethods";
    let fields = Fields::parse(body, M)?;
    Ok(AccessMethods {
        id: optional(&fields, M, "id")?,
    })
}

fn decode_data(body: &RawValue) -> Result<Data, DecodeError> {
    const M: &str = "data";
    let fields = Fields::parse(body, M)?;
    let header = Fields::parse(fields.require(M, "header")?, "header")?;
    let protocol_id: String = scalar(
        header.require("header", "protocolId")?,
        "header",
        "protocolId",
    )?;
    let payload = fields.require(M, "payload")?.to_owned();
    let extension = match fields.get("extension") {
        None => None,
        Some(raw) => {
            const E: &str = "extension";
            let ext = Fields::parse(raw, E)?;
            Some(DataExtension {
                extension_id: optional(&ext, E, "extensionId")?,
                binary: optional(&ext, E, "binary")?,
                string: optional(&ext, E, "string")?,
            })
        }
    };
    Ok(Data {
        protocol_id,
        payload,
        extension,
    })
}

fn decode_close(body: &RawValue) -> Result<ConnectionClose, DecodeError> {
    const M: &str = "connectionClose";
    let fields = Fields::parse(body, M)?;
    let phase = name_of(
        fields.require(M, "phase")?,
        M,
        "phase",
        &[
            ("announce", ClosePhase::Announce),
            ("confirm", ClosePhase::Confirm),
        ],
    )?;
    let reason = fields
        .get("reason")
        .map(|raw| {
            name_of(
                raw,
                M,
                "reason",
                &[
                    ("unspecific", CloseReason::Unspecific),
                    ("removedConnection", CloseReason::RemovedConnection),
                ],
            )
        })
        .transpose()?;
    Ok(ConnectionClose {
        phase,
        max_time: optional(&fields, M, "maxTime")?,
        reason,
    })
}

// ---------------------------------------------------------------------------------------------
// Encoding

/// Encodes a message in the EEBus form, type byte first.
pub fn encode(message: &ShipMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(96);
    encode_into(message, &mut out);
    out
}

/// Appends the encoding of `message` to `out`.
pub fn encode_into(message: &ShipMessage, out: &mut Vec<u8>) {
    if let ShipMessage::Cmi = message {
        out.extend_from_slice(&CMI);
        return;
    }
    out.push(message.message_type().as_byte());
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(message_name(message).as_bytes());
    out.extend_from_slice(b"\":");
    match message {
        ShipMessage::Cmi => {}
        ShipMessage::ConnectionHello(hello) => object(out, |o| {
            o.string("phase", hello.phase.as_str());
            if let Some(waiting) = hello.waiting {
                o.number("waiting", waiting.into());
            }
            if let Some(request) = hello.prolongation_request {
                o.raw(
                    "prolongationRequest",
                    if request { "true" } else { "false" },
                );
            }
        }),
        ShipMessage::ProtocolHandshake(handshake) => object(out, |o| {
            o.string("handshakeType", handshake.handshake_type.as_str());
            o.object("version", |v| {
                v.number("major", handshake.version.major.into());
                v.number("minor", handshake.version.minor.into());
            });
            o.object("formats", |f| {
                f.field("format", |out| {
                    out.push(b'[');
                    for (i, format) in handshake.formats.iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        write_string(out, format);
                    }
                    out.push(b']');
                });
            });
        }),
        ShipMessage::ProtocolHandshakeError(error) => object(out, |o| {
            o.number("error", error.error.as_u8().into());
        }),
        ShipMessage::ConnectionPinState(pin) => object(out, |o| {
            o.string("pinState", pin.pin_state.as_str());
            if let Some(permission) = pin.input_permission {
                o.string("inputPermission", permission.as_str());
            }
        }),
        ShipMessage::AccessMethodsRequest => object(out, |_| {}),
        ShipMessage::AccessMethods(methods) => object(out, |o| {
            if let Some(id) = &methods.id {
                o.string("id", id);
            }
        }),
        ShipMessage::Data(data) => object(out, |o| {
            o.object("header", |h| h.string("protocolId", &data.protocol_id));
            o.raw("payload", data.payload.get());
            if let Some(extension) = &data.extension {
                o.object("extension", |e| {
                    if let Some(id) = &extension.extension_id {
                        e.string("extensionId", id);
                    }
                    if let Some(binary) = &extension.binary {
                        e.string("binary", binary);
                    }
                    if let Some(string) = &extension.string {
                        e.string("string", string);
                    }
                });
            }
        }),
        ShipMessage::ConnectionClose(close) => object(out, |o| {
            o.string("phase", close.phase.as_str());
            if let Some(max_time) = close.max_time {
                o.number("maxTime", max_time.into());
            }
            if let Some(reason) = close.reason {
                o.string("reason", reason.as_str());
            }
        }),
    }
    out.push(b'}');
}

/// Writes one model object as an EEBus array of single-key objects.
fn object(out: &mut Vec<u8>, body: impl FnOnce(&mut EebusObject<'_>)) {
    out.push(b'[');
    let mut object = EebusObject { out, first: true };
    body(&mut object);
    out.push(b']');
}

struct EebusObject<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl EebusObject<'_> {
    fn field(&mut self, name: &str, value: impl FnOnce(&mut Vec<u8>)) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'{');
        write_string(self.out, name);
        self.out.push(b':');
        value(self.out);
        self.out.push(b'}');
    }

    fn string(&mut self, name: &str, value: &str) {
        self.field(name, |out| write_string(out, value));
    }

    fn number(&mut self, name: &str, value: u64) {
        self.field(name, |out| {
            out.extend_from_slice(value.to_string().as_bytes())
        });
    }

    fn raw(&mut self, name: &str, value: &str) {
        self.field(name, |out| out.extend_from_slice(value.as_bytes()));
    }

    fn object(&mut self, name: &str, body: impl FnOnce(&mut EebusObject<'_>)) {
        self.field(name, |out| object(out, body));
    }
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}
