//! The bytes the tool sends, built by hand (type byte + EEBus JSON, docs/ship.md §5) so that
//! a bug in our own encoder cannot hide a bug in the DUT, and so that deliberately wrong
//! messages are possible.

use ship_hub::protocol::message::ProtocolVersion;

/// The valid CMI `00 00` (§13.4.3).
pub(crate) const CMI: &[u8] = &[0x00, 0x00];
/// A CMI sent with the CONTROL type byte (TC_SHIP_CMI_001/002).
pub(crate) const CMI_CONTROL_TYPED: &[u8] = &[0x01, 0x00];
/// A CMI with `CmiHead` 1 (TC_SHIP_CMI_005/006).
pub(crate) const CMI_HEAD_1: &[u8] = &[0x00, 0x01];
/// A data type byte without a value (TC_SHIP_MSG_001).
pub(crate) const DATA_WITHOUT_VALUE: &[u8] = &[0x02];
/// An unknown type byte (TC_SHIP_MSG_002).
pub(crate) const UNKNOWN_TYPE: &[u8] = &[0xFF, 0x00];

fn control(json: &str) -> Vec<u8> {
    let mut bytes = vec![0x01];
    bytes.extend_from_slice(json.as_bytes());
    bytes
}

/// `connectionHello` `ready` with `waiting`.
pub(crate) fn hello_ready(waiting_ms: u32) -> Vec<u8> {
    control(&format!(
        r#"{{"connectionHello":[{{"phase":"ready"}},{{"waiting":{waiting_ms}}}]}}"#
    ))
}

/// `connectionHello` `pending` with `prolongationRequest: true` (TC_SHIP_HELLO_002).
pub(crate) fn hello_prolongation_request() -> Vec<u8> {
    control(r#"{"connectionHello":[{"phase":"pending"},{"prolongationRequest":true}]}"#)
}

/// `connectionHello` `pending` with `waiting` and no prolongation request (TC_SHIP_HELLO_004).
pub(crate) fn hello_pending(waiting_ms: u32) -> Vec<u8> {
    control(&format!(
        r#"{{"connectionHello":[{{"phase":"pending"}},{{"waiting":{waiting_ms}}}]}}"#
    ))
}

fn handshake(kind: &str, version: ProtocolVersion) -> Vec<u8> {
    let ProtocolVersion { major, minor } = version;
    control(&format!(
        r#"{{"messageProtocolHandshake":[{{"handshakeType":"{kind}"}},{{"version":[{{"major":{major}}},{{"minor":{minor}}}]}},{{"formats":[{{"format":["JSON-UTF8"]}}]}}]}}"#
    ))
}

/// `messageProtocolHandshake` `announceMax` `version` / JSON-UTF8 (PAR_testToolShipVersion).
pub(crate) fn announce_max(version: ProtocolVersion) -> Vec<u8> {
    handshake("announceMax", version)
}

/// `messageProtocolHandshake` `select` `version` / JSON-UTF8.
pub(crate) fn select(version: ProtocolVersion) -> Vec<u8> {
    handshake("select", version)
}

/// `connectionPinState` `none`.
pub(crate) fn pin_none() -> Vec<u8> {
    control(r#"{"connectionPinState":[{"pinState":"none"}]}"#)
}

/// `connectionPinState` `required` with `inputPermission` `ok` (the tool requires a PIN).
pub(crate) fn pin_required() -> Vec<u8> {
    control(r#"{"connectionPinState":[{"pinState":"required"},{"inputPermission":"ok"}]}"#)
}

/// `connectionPinState` `pinOk`.
pub(crate) fn pin_ok() -> Vec<u8> {
    control(r#"{"connectionPinState":[{"pinState":"pinOk"}]}"#)
}

/// `connectionPinInput` with `pin` (encoded by the codec: the PIN is only ever on the wire).
pub(crate) fn pin_input(pin: &ship_hub::protocol::Pin) -> Vec<u8> {
    ship_hub::protocol::codec::encode(&ship_hub::protocol::ShipMessage::ConnectionPinInput(
        ship_hub::protocol::message::ConnectionPinInput {
            pin: Some(pin.clone()),
        },
    ))
}

/// `accessMethodsRequest`.
pub(crate) fn access_methods_request() -> Vec<u8> {
    control(r#"{"accessMethodsRequest":[]}"#)
}

/// `accessMethodsRequest` with SP, HT, LF and CR before and after every `{ } [ ] : ,`
/// (TC_SHIP_MSG_003).
pub(crate) fn access_methods_request_padded() -> Vec<u8> {
    let pad = " \t\n\r";
    let plain = r#"{"accessMethodsRequest":[{}]}"#;
    let mut json = String::new();
    for c in plain.chars() {
        if "{}[]:,".contains(c) {
            json.push_str(pad);
            json.push(c);
            json.push_str(pad);
        } else {
            json.push(c);
        }
    }
    control(&json)
}

/// `accessMethods` with our SHIP ID.
pub(crate) fn access_methods(ship_id: &str) -> Vec<u8> {
    control(&format!(r#"{{"accessMethods":[{{"id":"{ship_id}"}}]}}"#))
}

/// A SHIP `data` message carrying a SPINE read of `function` (TC_SHIP_AMDATA_001/002).
pub(crate) fn spine_read(function: &str, counter: u64) -> Vec<u8> {
    let mut bytes = vec![0x02];
    bytes.extend_from_slice(
        format!(
            r#"{{"data":[{{"header":[{{"protocolId":"ee1.0"}}]}},{{"payload":{{"datagram":[{{"header":[{{"specificationVersion":"1.3.0"}},{{"addressSource":[{{"entity":[0]}},{{"feature":0}}]}},{{"addressDestination":[{{"entity":[0]}},{{"feature":0}}]}},{{"msgCounter":{counter}}},{{"cmdClassifier":"read"}}]}},{{"payload":[{{"cmd":[[{{"{function}":[]}}]]}}]}}]}}}}]}}"#
        )
        .as_bytes(),
    );
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use ship_hub::protocol::codec::decode;
    use ship_hub::protocol::message::ShipMessage;

    #[test]
    fn every_hand_built_message_decodes() {
        for bytes in [
            hello_ready(60_000),
            hello_prolongation_request(),
            hello_pending(120_000),
            announce_max(ProtocolVersion { major: 1, minor: 1 }),
            select(ProtocolVersion { major: 1, minor: 0 }),
            pin_none(),
            access_methods_request(),
            access_methods("tool"),
            spine_read("nodeManagementDetailedDiscoveryData", 1),
        ] {
            decode(&bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&bytes)));
        }
    }

    #[test]
    fn padded_request_has_whitespace_around_every_token_and_decodes() {
        let bytes = access_methods_request_padded();
        let text = String::from_utf8(bytes[1..].to_vec()).unwrap();
        assert!(text.starts_with(" \t\n\r{ \t\n\r"));
        assert_eq!(decode(&bytes).unwrap(), ShipMessage::AccessMethodsRequest);
    }
}
