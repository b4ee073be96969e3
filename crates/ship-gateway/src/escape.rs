//! Text a peer chose (an mDNS instance name, a TXT value, a SHIP ID, an error that quotes what a
//! peer sent), made safe to show to a person.
//!
//! The rules are the library's, the one policy for peer text (`ship_hub::text`): every control
//! character and every invisible format character (bidi controls, zero-width characters, line
//! and paragraph separators) is shown as a visible escape (`\n`, `\x1b`, `\u{202e}`), a
//! backslash as `\\`, everything else as it is. Printed raw, such text could move the cursor,
//! clear the screen, start a forged line (a newline followed by something that looks like an
//! event) or reorder what follows it (a bidi override) and so hide the SKI the user must
//! compare.
//!
//! JSON output needs none of this: it carries the exact text (serde_json escapes the control
//! characters JSON does not allow raw).

pub(crate) use ship_hub::text::Escaped;

/// The escaped form of `text`, as a new string.
pub(crate) fn escaped(text: &str) -> String {
    ship_hub::text::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gateway shows what the library's policy shows (its own tests cover the characters).
    #[test]
    fn the_gateway_escapes_by_the_library_policy() {
        let hostile = "Wallbox\n12:00 {\"event\":\"connected\"}\x1b[2J\u{202e}\u{200b}\\";
        assert_eq!(
            escaped(hostile),
            "Wallbox\\n12:00 {\"event\":\"connected\"}\\x1b[2J\\u{202e}\\u{200b}\\\\"
        );
        assert_eq!(format!("[{:<6}]", Escaped("a\nb")), "[a\\nb  ]");
        assert_eq!(escaped("Wärmepumpe"), "Wärmepumpe");
    }
}
