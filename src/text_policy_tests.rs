//! The policy for peer text ([`crate::text`], from ship-proto, which checks its own types) on
//! the runtime's types that carry text a peer chose: mDNS instance names and WebSocket errors.
//! Each keeps the exact value, shows no hostile character raw, and a quoted value is cut.

use crate::discovery::InstanceName;
use crate::text::needs_escape;
use crate::transport::WebSocketError;

/// Hostile characters: bidi override and isolate, zero-width space and joiner, byte-order mark,
/// line separator; each with the escape it is shown as.
fn hostile() -> impl Iterator<Item = (char, String)> {
    [
        '\u{202e}', '\u{2066}', '\u{200b}', '\u{200d}', '\u{feff}', '\u{2028}',
    ]
    .into_iter()
    .map(|c| (c, format!("\\u{{{:x}}}", c as u32)))
}

/// `shown` contains no character the policy escapes, and `escape` in its escaped form.
#[track_caller]
fn shows_escaped(shown: &str, escape: &str) {
    let raw = shown.chars().any(needs_escape);
    assert!(
        !raw && shown.contains(escape),
        "{shown:?}: {escape} missing or a raw hostile character"
    );
}

#[test]
fn instance_names_keep_the_exact_value_and_display_escaped() {
    for (c, escape) in hostile() {
        let text = format!("Wall{c}box/");
        let name = InstanceName::new(text.clone()).unwrap();
        assert_eq!(name.as_str(), text);
        shows_escaped(&name.to_string(), &escape);
    }
    assert!(InstanceName::new("a\nb").is_err());
    assert!(InstanceName::new("\u{202e}".repeat(22)).is_err());
}

#[test]
fn websocket_errors_quote_peer_values_escaped_and_cut() {
    for (c, escape) in hostile().chain([('\n', "\\n".to_owned()), ('\u{1b}', "\\x1b".to_owned())]) {
        let value = format!("v{c}");
        let error = WebSocketError::WrongSubprotocol(value.clone());
        shows_escaped(&error.to_string(), &format!("\"v{escape}\""));
        let error = WebSocketError::Protocol(format!("bad header {value}"));
        shows_escaped(&error.to_string(), &format!("v{escape}"));
    }
    let shown = WebSocketError::WrongSubprotocol("s".repeat(8_000)).to_string();
    assert!(shown.len() < 200, "{shown}");
    let shown = WebSocketError::Protocol("p".repeat(8_000)).to_string();
    assert!(shown.len() < 300, "{shown}");
}
