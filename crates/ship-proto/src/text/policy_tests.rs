//! The policy for peer text ([`crate::text`]), checked on every type and message that carries
//! text a peer chose: bidi overrides and isolates, zero-width characters, the byte-order mark,
//! newlines and escape sequences, and overlong values. Each shows no hostile character raw, its
//! exact value stays available, and a quoted value is cut. (The runtime's own types, instance
//! names and WebSocket errors, are checked the same way in ship-hub.)

use super::tests::HOSTILE;
use super::{QUOTE_MAX_CHARS, needs_escape};
use crate::ShipId;
use crate::pairing_service::SignedRequest;
use crate::protocol::codec::decode;
use crate::protocol::{CloseCause, DecodeError};
use crate::txt::{DeviceCategories, ServicePath, ShipTxt, TxtError, TxtField, TxtValue};

/// `shown` contains no character the policy escapes, and `escape` in its escaped form.
#[track_caller]
fn shows_escaped(shown: &str, escape: &str) {
    assert!(
        !shown.chars().any(needs_escape),
        "raw hostile character in {shown:?}"
    );
    assert!(shown.contains(escape), "{escape} not in {shown:?}");
}

/// The invisible characters (everything of [`HOSTILE`] but the controls, which the protocol
/// types refuse).
fn invisible() -> impl Iterator<Item = (char, &'static str)> {
    HOSTILE.into_iter().filter(|(c, _)| !c.is_control())
}

#[test]
fn ship_ids_keep_the_exact_value_and_display_escaped() {
    for (c, escape) in invisible() {
        let text = format!("EVSE{c}-1");
        let id = ShipId::new(text.clone()).unwrap();
        assert_eq!(id.as_str(), text, "exact value");
        shows_escaped(&id.to_string(), &format!("EVSE{escape}-1"));
        // Serialised (trust store, JSON): the exact value.
        assert_eq!(serde_json::to_value(&id).unwrap(), text.as_str());
    }
    for control in ['\n', '\r', '\u{1b}', '\u{85}'] {
        assert!(ShipId::new(format!("a{control}b")).is_err(), "{control:?}");
    }
    let error = ShipId::new("\u{202e}".repeat(30)).unwrap_err();
    assert_eq!(
        error.to_string(),
        "a SHIP ID is at most 63 bytes, this one has 90"
    );
    assert_eq!(ShipId::new("a\\b").unwrap().to_string(), "a\\\\b");
}

#[test]
fn txt_values_and_paths_keep_the_exact_value_and_display_escaped() {
    for (c, escape) in invisible() {
        let text = format!("Wall{c}box/");
        let value = TxtValue::new(TxtField::Brand, text.clone()).unwrap();
        assert_eq!(value.as_str(), text);
        shows_escaped(&value.to_string(), escape);
        let path = ServicePath::new(text.clone()).unwrap();
        assert_eq!(path.as_str(), text);
        shows_escaped(&path.to_string(), escape);
    }
    assert_eq!(
        TxtValue::new(TxtField::Model, "a\nb"),
        Err(TxtError::ControlCharacter { key: "model" })
    );
    assert!(ServicePath::new("/a\n").is_err());
    let overlong = "\u{200b}".repeat(11);
    assert_eq!(
        TxtValue::new(TxtField::Brand, overlong.clone())
            .unwrap_err()
            .to_string(),
        "the value of TXT key `brand` is 33 bytes long, at most 32 are allowed"
    );
    assert!(ServicePath::new(format!("/{overlong}")).is_err());
}

/// A TXT record whose mandatory keys are valid except `key`, which is `value`.
fn record_with(key: &str, value: &str) -> Result<ShipTxt, TxtError> {
    let mut pairs = vec![
        ("txtvers", "1".to_owned()),
        ("id", "Demo-1".to_owned()),
        ("path", "/ship/".to_owned()),
        ("ski", "0".repeat(40)),
        ("register", "false".to_owned()),
        ("cat", "1".to_owned()),
    ];
    for pair in &mut pairs {
        if pair.0 == key {
            pair.1 = value.to_owned();
        }
    }
    ShipTxt::from_properties(
        pairs
            .iter()
            .map(|(k, v)| (*k, Some(v.as_bytes())))
            .collect::<Vec<_>>(),
    )
}

#[test]
fn txt_errors_quote_peer_values_escaped_and_cut() {
    // (An invalid optional key such as `cat` is dropped, not an error: see below.)
    for key in ["txtvers", "register", "path"] {
        for (c, escape) in HOSTILE {
            let value = format!("x{c}y");
            let shown = record_with(key, &value).unwrap_err().to_string();
            if c.is_control() && key == "path" {
                // Refused for the control character, without quoting the value.
                assert!(!shown.chars().any(needs_escape), "{shown:?}");
            } else {
                shows_escaped(&shown, &format!("x{escape}y"));
            }
        }
        // An overlong value (a TXT entry holds up to 255 bytes): cut after 64 characters (a
        // `path` is refused for its length, without quoting it).
        let error = record_with(key, &"q".repeat(250)).unwrap_err();
        let shown = error.to_string();
        assert!(
            shown.contains(&format!("\"{}…\"", "q".repeat(QUOTE_MAX_CHARS)))
                || (key == "path" && !shown.contains('q')),
            "{key}: {shown}"
        );
        assert!(shown.len() < 200, "{key}: {shown}");
    }
    // A `cat` value (ignored in a record, refused by `DeviceCategories::parse`).
    for (c, escape) in HOSTILE {
        let shown = DeviceCategories::parse(&format!("1,{c}"))
            .unwrap_err()
            .to_string();
        shows_escaped(&shown, &format!("1,{escape}"));
    }
    let shown = DeviceCategories::parse(&"9".repeat(250))
        .unwrap_err()
        .to_string();
    assert!(shown.len() < 200, "{shown}");
    assert!(record_with("cat", "x\u{202e}").is_ok());
    // The error keeps the exact value.
    assert_eq!(
        record_with("register", "y\u{202e}s").unwrap_err(),
        TxtError::InvalidRegister {
            found: "y\u{202e}s".to_owned()
        }
    );
    // The `id` goes through ShipId: control characters refused, the invisible ones kept.
    assert!(matches!(
        record_with("id", "a\nb"),
        Err(TxtError::InvalidShipId(_))
    ));
    let txt = record_with("id", "a\u{202e}b").unwrap();
    assert_eq!(txt.id.as_str(), "a\u{202e}b");
    assert_eq!(txt.id.to_string(), "a\\u{202e}b");
}

#[test]
fn protocol_errors_quote_peer_values_escaped_and_cut() {
    for (c, escape) in HOSTILE {
        let id = format!("id{c}");
        let cause = CloseCause::InvalidShipId(Some(id.clone()));
        shows_escaped(&cause.to_string(), &format!("\"id{escape}\""));
        assert_eq!(
            cause,
            CloseCause::InvalidShipId(Some(id)),
            "exact value kept"
        );

        // A message name SHIP does not define.
        let json = serde_json::json!({ format!("bogus{c}"): {} }).to_string();
        let error = decode(&[[1u8].as_slice(), json.as_bytes()].concat()).unwrap_err();
        assert!(matches!(error, DecodeError::UnknownMessage(_)), "{error:?}");
        shows_escaped(&error.to_string(), &format!("bogus{escape}"));

        // An unknown value of a named field (the hello phase), quoted.
        let json = serde_json::json!({"connectionHello": [{"phase": format!("ready{c}")}]});
        let error = decode(&[[1u8].as_slice(), json.to_string().as_bytes()].concat());
        let shown = error.unwrap_err().to_string();
        shows_escaped(&shown, &format!("ready{escape}"));

        // A JSON parser's message quoting the peer's text (a string where a number belongs;
        // the parser quotes it in Rust's escaped form) and naming it (an unknown variant).
        let json = serde_json::json!({"connectionHello": [{"phase": "ready"}, {"waiting": format!("1{c}")}]});
        let error = decode(&[[1u8].as_slice(), json.to_string().as_bytes()].concat());
        let shown = error.unwrap_err().to_string();
        assert!(!shown.chars().any(needs_escape), "{shown:?}");
        assert!(shown.contains("\"1\\"), "{shown:?}");
    }
    // Overlong: a 10,000-character SHIP ID, message name and CMI.
    let long = "w".repeat(10_000);
    let shown = CloseCause::InvalidShipId(Some(long.clone())).to_string();
    assert!(shown.len() < 200, "{shown}");
    let json = serde_json::json!({ long.clone(): {} }).to_string();
    let shown = decode(&[[1u8].as_slice(), json.as_bytes()].concat())
        .unwrap_err()
        .to_string();
    assert!(shown.len() < 200, "{shown}");
    let shown = decode(&[vec![0u8; 2], vec![7u8; 10_000]].concat())
        .unwrap_err()
        .to_string();
    assert!(shown.len() < 200, "{shown}");
}

#[test]
fn pairing_record_errors_quote_peer_values_escaped_and_cut() {
    for (c, escape) in HOSTILE {
        let value = format!("v{c}");
        let pairs = vec![
            ("txtvers".to_owned(), "1".to_owned()),
            ("parType".to_owned(), value),
        ];
        let error = SignedRequest::from_pairs(&pairs).unwrap_err();
        shows_escaped(&error.to_string(), &format!("v{escape}"));
    }
}
