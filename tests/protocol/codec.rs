//! Golden wire bytes for every message of docs/ship.md §5, and the decoder's tolerance
//! (plain JSON, whitespace around every token — TC_SHIP_MSG_003 —, trailing NUL bytes).

use serde_json::value::RawValue;
use ship_hub::protocol::codec::{self, DecodeError};
use ship_hub::protocol::message::*;

fn hello(phase: HelloPhase, waiting: Option<u32>, prolongation: Option<bool>) -> ShipMessage {
    ShipMessage::ConnectionHello(ConnectionHello {
        phase,
        waiting,
        prolongation_request: prolongation,
    })
}

fn spine_payload() -> &'static str {
    r#"{"datagram":[{"header":[{"specificationVersion":"1.3.0"},{"addressSource":[{"device":"d:_i:1"}]},{"msgCounter":1},{"cmdClassifier":"read"}]},{"payload":[{"cmd":[[{"nodeManagementDetailedDiscoveryData":[]}]]}]}]}"#
}

/// (message, type byte, JSON text) for every line of §5.
fn golden() -> Vec<(ShipMessage, u8, String)> {
    vec![
        (
            hello(HelloPhase::Ready, Some(60000), None),
            1,
            r#"{"connectionHello":[{"phase":"ready"},{"waiting":60000}]}"#.into(),
        ),
        (
            hello(HelloPhase::Pending, Some(60000), None),
            1,
            r#"{"connectionHello":[{"phase":"pending"},{"waiting":60000}]}"#.into(),
        ),
        (
            hello(HelloPhase::Pending, None, Some(true)),
            1,
            r#"{"connectionHello":[{"phase":"pending"},{"prolongationRequest":true}]}"#.into(),
        ),
        (
            hello(HelloPhase::Aborted, None, None),
            1,
            r#"{"connectionHello":[{"phase":"aborted"}]}"#.into(),
        ),
        (
            ShipMessage::ProtocolHandshake(ProtocolHandshake::ship_1_0(HandshakeType::AnnounceMax)),
            1,
            r#"{"messageProtocolHandshake":[{"handshakeType":"announceMax"},{"version":[{"major":1},{"minor":0}]},{"formats":[{"format":["JSON-UTF8"]}]}]}"#.into(),
        ),
        (
            ShipMessage::ProtocolHandshake(ProtocolHandshake::ship_1_0(HandshakeType::Select)),
            1,
            r#"{"messageProtocolHandshake":[{"handshakeType":"select"},{"version":[{"major":1},{"minor":0}]},{"formats":[{"format":["JSON-UTF8"]}]}]}"#.into(),
        ),
        (
            ShipMessage::ProtocolHandshakeError(ProtocolHandshakeError {
                error: HandshakeErrorCode::Timeout,
            }),
            1,
            r#"{"messageProtocolHandshakeError":[{"error":1}]}"#.into(),
        ),
        (
            ShipMessage::ConnectionPinState(ConnectionPinState {
                pin_state: PinState::None,
                input_permission: None,
            }),
            1,
            r#"{"connectionPinState":[{"pinState":"none"}]}"#.into(),
        ),
        (
            ShipMessage::AccessMethodsRequest,
            1,
            r#"{"accessMethodsRequest":[]}"#.into(),
        ),
        (
            ShipMessage::AccessMethods(AccessMethods {
                id: Some("Demo-EVSE-234567890".into()),
            }),
            1,
            r#"{"accessMethods":[{"id":"Demo-EVSE-234567890"}]}"#.into(),
        ),
        (
            ShipMessage::Data(Data {
                protocol_id: "ee1.0".into(),
                payload: RawValue::from_string(spine_payload().into()).unwrap(),
                extension: None,
            }),
            2,
            format!(
                r#"{{"data":[{{"header":[{{"protocolId":"ee1.0"}}]}},{{"payload":{}}}]}}"#,
                spine_payload()
            ),
        ),
        (
            ShipMessage::ConnectionClose(ConnectionClose {
                phase: ClosePhase::Announce,
                max_time: Some(500),
                reason: Some(CloseReason::Unspecific),
            }),
            3,
            r#"{"connectionClose":[{"phase":"announce"},{"maxTime":500},{"reason":"unspecific"}]}"#.into(),
        ),
        (
            ShipMessage::ConnectionClose(ConnectionClose {
                phase: ClosePhase::Confirm,
                max_time: None,
                reason: None,
            }),
            3,
            r#"{"connectionClose":[{"phase":"confirm"}]}"#.into(),
        ),
    ]
}

fn wire(type_byte: u8, json: &str) -> Vec<u8> {
    let mut bytes = vec![type_byte];
    bytes.extend_from_slice(json.as_bytes());
    bytes
}

/// Plain JSON: every single-key-object array that stands for an object becomes an object.
/// (Done on the parsed value, for the test only.)
fn to_plain(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Array(items)
            if !items.is_empty()
                && items
                    .iter()
                    .all(|i| matches!(i, Value::Object(m) if m.len() == 1)) =>
        {
            let mut map = serde_json::Map::new();
            for item in items {
                if let Value::Object(m) = item {
                    for (k, v) in m {
                        map.insert(k, to_plain(v));
                    }
                }
            }
            Value::Object(map)
        }
        Value::Array(items) if items.is_empty() => Value::Object(Default::default()),
        Value::Array(items) => Value::Array(items.into_iter().map(to_plain).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, to_plain(v))).collect())
        }
        other => other,
    }
}

/// Whitespace (SP, HT, LF, CR) before and after every `{ } [ ] : ,` (TC_SHIP_MSG_003).
fn pad(json: &str) -> String {
    let mut out = String::new();
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '}' | '[' | ']' | ':' | ',' => {
                out.push_str(" \t\n\r");
                out.push(c);
                out.push_str("\r\n\t ");
            }
            c => out.push(c),
        }
    }
    out
}

#[test]
fn cmi_is_00_00() {
    assert_eq!(codec::encode(&ShipMessage::Cmi), vec![0x00, 0x00]);
    assert_eq!(codec::decode(&[0x00, 0x00]), Ok(ShipMessage::Cmi));
}

#[test]
fn every_message_encodes_to_the_golden_bytes() {
    for (message, type_byte, json) in golden() {
        assert_eq!(
            String::from_utf8_lossy(&codec::encode(&message)),
            String::from_utf8_lossy(&wire(type_byte, &json)),
        );
        assert_eq!(message.message_type().as_byte(), type_byte);
    }
}

#[test]
fn every_golden_message_decodes_back() {
    for (message, type_byte, json) in golden() {
        assert_eq!(
            codec::decode(&wire(type_byte, &json)),
            Ok(message),
            "{json}"
        );
    }
}

#[test]
fn plain_json_decodes() {
    for (message, type_byte, json) in golden() {
        let plain = to_plain(serde_json::from_str(&json).unwrap()).to_string();
        let decoded =
            codec::decode(&wire(type_byte, &plain)).unwrap_or_else(|e| panic!("{plain}: {e}"));
        // The payload is passed through; compare it in its own (plain) form.
        if let ShipMessage::Data(data) = &decoded {
            assert_eq!(data.protocol_id, "ee1.0");
            continue;
        }
        assert_eq!(decoded, message, "{plain}");
    }
}

#[test]
fn plain_json_examples_decode() {
    assert_eq!(
        codec::decode(b"\x01{\"connectionHello\":{\"phase\":\"ready\",\"waiting\":60000}}"),
        Ok(hello(HelloPhase::Ready, Some(60000), None))
    );
    assert_eq!(
        codec::decode(b"\x01{\"accessMethodsRequest\":{}}"),
        Ok(ShipMessage::AccessMethodsRequest)
    );
}

#[test]
fn whitespace_around_every_token_decodes_tc_ship_msg_003() {
    for (message, type_byte, json) in golden() {
        let padded = pad(&json);
        let decoded =
            codec::decode(&wire(type_byte, &padded)).unwrap_or_else(|e| panic!("{padded:?}: {e}"));
        if let (ShipMessage::Data(got), ShipMessage::Data(_)) = (&decoded, &message) {
            // the payload keeps the peer's own whitespace inside it
            assert_eq!(
                got.payload.get(),
                pad(spine_payload()).trim_matches([' ', '\t', '\r', '\n'])
            );
            continue;
        }
        assert_eq!(decoded, message, "{padded:?}");
    }
}

#[test]
fn trailing_nul_bytes_decode() {
    for (message, type_byte, json) in golden() {
        let mut bytes = wire(type_byte, &json);
        bytes.push(0);
        assert_eq!(codec::decode(&bytes), Ok(message.clone()));
        bytes.extend_from_slice(&[0, 0]);
        assert_eq!(codec::decode(&bytes), Ok(message));
    }
}

#[test]
fn data_payload_passes_through_byte_for_byte() {
    let payload = r#"{ "datagram" : [ {"a":"[{ not a field }]"} , 1.50, "x\u0041" ] }"#;
    let bytes = wire(
        2,
        &format!(r#"{{"data":[{{"header":[{{"protocolId":"ee1.0"}}]}},{{"payload":{payload}}}]}}"#),
    );
    let ShipMessage::Data(data) = codec::decode(&bytes).unwrap() else {
        panic!("not data")
    };
    assert_eq!(data.payload.get(), payload);
    assert_eq!(codec::encode(&ShipMessage::Data(data)), bytes);
}

#[test]
fn data_extension_round_trips() {
    let message = ShipMessage::Data(Data {
        protocol_id: "ee1.0".into(),
        payload: RawValue::from_string("{}".into()).unwrap(),
        extension: Some(DataExtension {
            extension_id: Some("ext".into()),
            binary: Some("00ff".into()),
            string: Some("s\"q".into()),
        }),
    });
    let bytes = codec::encode(&message);
    assert_eq!(
        String::from_utf8_lossy(&bytes[1..]),
        r#"{"data":[{"header":[{"protocolId":"ee1.0"}]},{"payload":{}},{"extension":[{"extensionId":"ext"},{"binary":"00ff"},{"string":"s\"q"}]}]}"#
    );
    assert_eq!(codec::decode(&bytes), Ok(message));
}

#[test]
fn bad_input_gets_typed_errors() {
    assert_eq!(codec::decode(&[]), Err(DecodeError::Empty));
    assert_eq!(
        codec::decode(&[0xFF, 0x00]),
        Err(DecodeError::UnknownType(0xFF))
    );
    assert_eq!(
        codec::decode(&[0x02]),
        Err(DecodeError::MissingValue(MessageType::Data))
    );
    assert_eq!(
        codec::decode(&[0x02, 0x00]),
        Err(DecodeError::MissingValue(MessageType::Data))
    );
    assert_eq!(
        codec::decode(&[0x00, 0x01]),
        Err(DecodeError::InvalidCmi(vec![1]))
    );
    assert_eq!(
        codec::decode(&[0x00]),
        Err(DecodeError::MissingValue(MessageType::Init))
    );
    assert_eq!(
        codec::decode(&[0x01, 0x00]),
        Err(DecodeError::MissingValue(MessageType::Control))
    );
    assert_eq!(codec::decode(b"\x01\xff\xfe"), Err(DecodeError::NotUtf8));
    assert!(matches!(codec::decode(b"\x01{"), Err(DecodeError::Json(_))));
    assert_eq!(codec::decode(b"\x01{}"), Err(DecodeError::NotAMessage));
    assert_eq!(codec::decode(b"\x01[1]"), Err(DecodeError::NotAMessage));
    assert_eq!(
        codec::decode(b"\x01{\"bogus\":[]}"),
        Err(DecodeError::UnknownMessage("bogus".into()))
    );
    assert!(matches!(
        codec::decode(b"\x02{\"connectionHello\":[{\"phase\":\"ready\"}]}"),
        Err(DecodeError::WrongType {
            expected: 1,
            found: 2,
            ..
        })
    ));
    assert_eq!(
        codec::decode(b"\x01{\"connectionHello\":[{\"waiting\":1}]}"),
        Err(DecodeError::MissingField {
            message: "connectionHello",
            field: "phase"
        })
    );
    assert!(matches!(
        codec::decode(b"\x01{\"connectionHello\":[{\"phase\":\"maybe\"}]}"),
        Err(DecodeError::InvalidField { field: "phase", .. })
    ));
    assert!(matches!(
        codec::decode(b"\x01{\"connectionHello\":[{\"phase\":\"ready\"},{\"waiting\":-1}]}"),
        Err(DecodeError::InvalidField {
            field: "waiting",
            ..
        })
    ));
    assert!(matches!(
        codec::decode(b"\x01{\"connectionHello\":\"ready\"}"),
        Err(DecodeError::InvalidField { .. })
    ));
}

#[test]
fn unknown_fields_are_skipped() {
    assert_eq!(
        codec::decode(
            b"\x01{\"accessMethods\":[{\"id\":\"x\"},{\"dnsSd_mDns\":[]},{\"future\":7}]}"
        ),
        Ok(ShipMessage::AccessMethods(AccessMethods {
            id: Some("x".into())
        }))
    );
}

#[test]
fn strings_are_escaped() {
    let message = ShipMessage::AccessMethods(AccessMethods {
        id: Some("a\"b\\c\u{1}ü".into()),
    });
    let bytes = codec::encode(&message);
    assert_eq!(
        &bytes[1..],
        "{\"accessMethods\":[{\"id\":\"a\\\"b\\\\c\\u0001ü\"}]}".as_bytes()
    );
    assert_eq!(codec::decode(&bytes), Ok(message));
}
