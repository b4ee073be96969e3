//! A lenient reading of SHIP messages the codec refused, and of SPINE headers the codec does not
//! interpret: enough to say *what* the DUT sent (`connectionClose` with reason "User close")
//! instead of only that it was undecodable, and to match a SPINE reply to its request.
//!
//! Both JSON forms are read: EEBus (every object an array of single-key objects, docs/ship.md §5)
//! and plain JSON.

use serde_json::{Map, Value};

/// `value` as one object: a JSON object itself, or an array of objects merged in order (the
/// EEBus form).
fn object(value: &Value) -> Option<Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map.clone()),
        Value::Array(items) => {
            let mut merged = Map::new();
            for item in items {
                let Value::Object(map) = item else {
                    return None;
                };
                merged.extend(map.clone());
            }
            Some(merged)
        }
        _ => None,
    }
}

/// The JSON of a SHIP message (after the type byte, trailing NULs removed), parsed.
fn json(bytes: &[u8]) -> Option<Value> {
    let value = bytes.get(1..)?;
    let end = value.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    serde_json::from_slice(&value[..end]).ok()
}

/// The message a SHIP message names (its single top-level key) and its body.
pub(crate) fn message(bytes: &[u8]) -> Option<(String, Value)> {
    let top = object(&json(bytes)?)?;
    if top.len() != 1 {
        return None;
    }
    top.into_iter().next()
}

/// The fields of a `connectionClose`, as sent (whatever their values).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct CloseFields {
    /// `phase`, as text.
    pub(crate) phase: Option<String>,
    /// `maxTime`, as JSON text.
    pub(crate) max_time: Option<String>,
    /// `reason`, as text (JSON text if it is not a string).
    pub(crate) reason: Option<String>,
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The fields of a `connectionClose` the codec refused, if the bytes are one.
pub(crate) fn close_fields(bytes: &[u8]) -> Option<CloseFields> {
    let (name, body) = message(bytes)?;
    if name != "connectionClose" {
        return None;
    }
    let fields = object(&body)?;
    Some(CloseFields {
        phase: fields.get("phase").map(text),
        max_time: fields.get("maxTime").map(text),
        reason: fields.get("reason").map(text),
    })
}

/// The header of a SPINE datagram carried in a SHIP `data` payload: (`msgCounterReference`,
/// `cmdClassifier`), when present.
pub(crate) fn spine_reference(payload: &str) -> (Option<u64>, Option<String>) {
    let header = serde_json::from_str::<Value>(payload)
        .ok()
        .and_then(|p| object(&p))
        .and_then(|p| p.get("datagram").and_then(object))
        .and_then(|d| d.get("header").and_then(object));
    let Some(header) = header else {
        return (None, None);
    };
    (
        header.get("msgCounterReference").and_then(Value::as_u64),
        header.get("cmdClassifier").map(text),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_with_an_invalid_reason_is_read_in_both_forms() {
        let eebus = b"\x03{\"connectionClose\":[{\"phase\":\"announce\"},{\"maxTime\":500},{\"reason\":\"User close\"}]}\0";
        let plain = b"\x03{\"connectionClose\":{\"phase\":\"announce\",\"maxTime\":500,\"reason\":\"User close\"}}";
        for bytes in [&eebus[..], &plain[..]] {
            assert_eq!(
                close_fields(bytes),
                Some(CloseFields {
                    phase: Some("announce".into()),
                    max_time: Some("500".into()),
                    reason: Some("User close".into()),
                })
            );
        }
        assert_eq!(close_fields(b"\x01{\"accessMethodsRequest\":[]}"), None);
        assert_eq!(close_fields(b"\x03not json"), None);
    }

    #[test]
    fn spine_reply_header_gives_reference_and_classifier() {
        let eebus = r#"{"datagram":[{"header":[{"specificationVersion":"1.3.0"},{"msgCounter":5},{"msgCounterReference":1},{"cmdClassifier":"reply"}]},{"payload":[]}]}"#;
        assert_eq!(spine_reference(eebus), (Some(1), Some("reply".into())));
        let plain =
            r#"{"datagram":{"header":{"msgCounter":6,"cmdClassifier":"read"},"payload":{}}}"#;
        assert_eq!(spine_reference(plain), (None, Some("read".into())));
        assert_eq!(spine_reference("[]"), (None, None));
    }
}
