//! Encoding in the EEBus form: objects as arrays of single-key objects, in field order.

use std::sync::OnceLock;

use serde_json::value::RawValue;

use super::super::message::{Data, ShipMessage};
use super::{CMI, message_name};

/// The length in bytes of the encoded SPINE data message (protocol `ee1.0`, no extension) that
/// carries `payload`: the payload is written verbatim, so this is a fixed framing plus its
/// length. What a peer's message-size limit applies to.
pub fn data_message_len(payload: &RawValue) -> usize {
    static FRAMING: OnceLock<usize> = OnceLock::new();
    let framing = *FRAMING.get_or_init(|| {
        let one_byte = RawValue::from_string("0".to_owned()).expect("0 is JSON");
        encode(&ShipMessage::Data(Data {
            protocol_id: Data::SPINE_PROTOCOL_ID.to_owned(),
            payload: one_byte,
            extension: None,
        }))
        .len()
            - 1
    });
    framing + payload.get().len()
}

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
        ShipMessage::ConnectionPinInput(input) => object(out, |o| {
            if let Some(pin) = &input.pin {
                o.string("pin", pin.reveal());
            }
        }),
        ShipMessage::ConnectionPinError(error) => object(out, |o| {
            o.number("error", error.error.into());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_message_len_is_the_length_of_the_encoded_message() {
        for payload in [
            "0",
            "{}",
            r#"{"datagram":[{"header":[]},{"payload":[]}]}"#,
            "\"\\n\"",
        ] {
            let raw = RawValue::from_string(payload.to_owned()).unwrap();
            let encoded = encode(&ShipMessage::Data(Data {
                protocol_id: Data::SPINE_PROTOCOL_ID.to_owned(),
                payload: raw.clone(),
                extension: None,
            }));
            assert_eq!(data_message_len(&raw), encoded.len(), "{payload}");
        }
    }
}
