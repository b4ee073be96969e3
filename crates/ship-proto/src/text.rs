//! How the library shows text a peer chose: one policy for every peer-supplied string.
//!
//! A peer chooses its SHIP ID, the values of its mDNS TXT record (`id`, `path`, `brand`,
//! `model`, `type`, `serial`, ...), its mDNS instance name and host name, and every value an
//! error message may quote (a wrong `txtvers`, an unknown message name, an invalid SHIP ID in
//! `accessMethods`, a WebSocket subprotocol it offered, ...). Shown raw, such text can start a
//! forged line (a newline followed by something that looks like a log line or an event), move
//! the cursor (escape sequences), reorder what follows it so that a SKI next to it reads
//! differently (bidi overrides such as U+202E), or make two different names look the same
//! (zero-width characters such as U+200B).
//!
//! **The policy: keep the exact value, show it escaped.**
//!
//! * **Refused** is only what the protocol itself bounds: lengths (a SHIP ID at most 63 bytes,
//!   a TXT value at most 32), an empty SHIP ID, text that is not UTF-8, and control characters
//!   in SHIP IDs, TXT values and instance names. Invisible format characters (bidi controls,
//!   zero-width characters) are *not* refused: refusing them would hide a device (its TXT `id`
//!   is mandatory), close its connections (its `accessMethods` id) or make a trust store
//!   written by an earlier version unreadable, for a character that is harmless once shown
//!   escaped.
//! * **Kept exactly**: the value as the peer sent it stays available, unchanged, for comparing,
//!   storing and sending: `as_str()` of [`crate::ShipId`], [`crate::txt::TxtValue`] and
//!   [`crate::txt::ServicePath`] (and of the runtime's instance names), the fields of the error
//!   types that carry a found value, and the public `String` fields that carry a peer's names
//!   and values (the runtime's pairing requests, sightings, visible services, discovery and
//!   pairing-service events). JSON made from these carries the exact text (serde escapes what
//!   JSON does not allow raw).
//! * **Shown escaped**: everything the library formats for people — the `Display` of those
//!   types, every error message that quotes a peer's value, the error text of the runtime's
//!   connection states and the library's log lines — shows every character
//!   [`needs_escape`] names as a visible escape (`\n`, `\x1b`, `\u{202e}`, `\u{200b}`), a
//!   backslash as `\\` so that an escape cannot be forged, and a value quoted inside an error
//!   message ([`Quoted`]) in quotes, cut after [`QUOTE_MAX_CHARS`] characters. An application
//!   that shows one of the raw `String` fields shows it through [`Escaped`], as `ship-gateway`
//!   does.
//!
//! `Debug` shows the exact value in Rust's own escaped form.

use std::borrow::Cow;
use std::fmt::{self, Write};

/// How many characters of a peer's value an error message quotes (see [`Quoted`]).
pub const QUOTE_MAX_CHARS: usize = 64;

/// How many characters of a parser's message (which may quote a peer's text) an error keeps.
pub const MESSAGE_MAX_CHARS: usize = 200;

/// Whether `c` is shown escaped: control characters (C0, DEL, C1), the characters of Unicode's
/// "format" category that a terminal or a browser does not show as themselves (bidi controls
/// U+202A–U+202E and U+2066–U+2069, the marks U+200E/U+200F/U+061C, zero-width characters
/// U+200B–U+200D, U+2060 and the byte-order mark U+FEFF, the soft hyphen U+00AD, tag
/// characters, …) and the line and paragraph separators U+2028/U+2029.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{890}'..='\u{891}'
                | '\u{8e2}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{110bd}'
                | '\u{110cd}'
                | '\u{13430}'..='\u{1343f}'
                | '\u{1bca0}'..='\u{1bca3}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0001}'
                | '\u{e0020}'..='\u{e007f}'
        )
}

/// Whether `text` is shown exactly as it is (nothing in it is escaped).
pub fn is_plain(text: &str) -> bool {
    !text.chars().any(|c| c == '\\' || needs_escape(c))
}

/// `text` as [`Escaped`] shows it: borrowed when nothing needs escaping.
pub fn escape(text: &str) -> Cow<'_, str> {
    if is_plain(text) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(Escaped(text).to_string())
    }
}

/// Displays a string with every character [`needs_escape`] names as a visible escape (`\n`,
/// `\r`, `\t`, `\x1b` for the other ASCII controls, `\u{202e}` for the rest) and a backslash
/// as `\\`. Everything else, non-ASCII letters included, is shown as it is. Honours width and
/// alignment (`{:<20}`), so it fits into tables.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if is_plain(self.0) {
            return f.pad(self.0);
        }
        let mut out = String::with_capacity(self.0.len() + 8);
        for c in self.0.chars() {
            push_escaped(&mut out, c)?;
        }
        f.pad(&out)
    }
}

/// Displays a peer's value quoted inside a message: in double quotes, escaped as [`Escaped`]
/// does (a `"` inside as `\"`), and cut after [`QUOTE_MAX_CHARS`] characters with `…` before
/// the closing quote, so that an overlong value cannot flood a log line.
#[derive(Debug, Clone, Copy)]
pub struct Quoted<'a>(pub &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = String::with_capacity(self.0.len().min(QUOTE_MAX_CHARS * 2) + 4);
        out.push('"');
        let mut chars = self.0.chars();
        for c in chars.by_ref().take(QUOTE_MAX_CHARS) {
            match c {
                '"' => out.push_str("\\\""),
                c => push_escaped(&mut out, c)?,
            }
        }
        if chars.next().is_some() {
            out.push('…');
        }
        out.push('"');
        f.pad(&out)
    }
}

/// A message that may carry a peer's text somewhere inside (e.g. a parser's error, which quotes
/// the value it did not expect), with every character [`needs_escape`] names escaped and cut
/// after `max_chars` characters (with `…`). Backslashes stay single: a message is not a value
/// to read back, and a parser's own escapes (`"1\u{202e}"`) stay readable.
pub fn escaped_message(message: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(message.len().min(max_chars * 2));
    let mut chars = message.chars();
    for c in chars.by_ref().take(max_chars) {
        match c {
            '\\' => out.push(c),
            c => {
                // Writing to a String cannot fail.
                let _ = push_escaped(&mut out, c);
            }
        }
    }
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

fn push_escaped(out: &mut String, c: char) -> fmt::Result {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if needs_escape(c) && c.is_ascii() => write!(out, "\\x{:02x}", c as u32)?,
        c if needs_escape(c) => write!(out, "\\u{{{:x}}}", c as u32)?,
        c => out.push(c),
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Hostile characters every peer-supplied string type is tested with: bidi overrides and
    /// isolates, zero-width characters, the byte-order mark, newlines and other controls. Each
    /// with the escape it is shown as.
    pub(crate) const HOSTILE: [(char, &str); 16] = [
        ('\u{202e}', "\\u{202e}"),
        ('\u{202d}', "\\u{202d}"),
        ('\u{202a}', "\\u{202a}"),
        ('\u{2066}', "\\u{2066}"),
        ('\u{2069}', "\\u{2069}"),
        ('\u{200b}', "\\u{200b}"),
        ('\u{200c}', "\\u{200c}"),
        ('\u{200d}', "\\u{200d}"),
        ('\u{200e}', "\\u{200e}"),
        ('\u{200f}', "\\u{200f}"),
        ('\u{2060}', "\\u{2060}"),
        ('\u{feff}', "\\u{feff}"),
        ('\u{2028}', "\\u{2028}"),
        ('\n', "\\n"),
        ('\r', "\\r"),
        ('\u{1b}', "\\x1b"),
    ];

    #[test]
    fn control_characters_become_visible_escapes() {
        let hostile = "Wallbox\n12:00:00 {\"event\":\"connected\"}\x1b[2J\r\t\x07\x7f\u{9b}";
        let shown = Escaped(hostile).to_string();
        assert_eq!(
            shown,
            "Wallbox\\n12:00:00 {\"event\":\"connected\"}\\x1b[2J\\r\\t\\x07\\x7f\\u{9b}"
        );
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }

    #[test]
    fn bidi_overrides_zero_width_and_separators_are_escaped() {
        for (c, shown) in HOSTILE {
            assert!(needs_escape(c), "{c:?}");
            assert_eq!(
                Escaped(&format!("a{c}b")).to_string(),
                format!("a{shown}b"),
                "{c:?}"
            );
        }
        for (c, shown) in [('\u{ad}', "\\u{ad}"), ('\u{e0041}', "\\u{e0041}")] {
            assert_eq!(Escaped(&format!("a{c}b")).to_string(), format!("a{shown}b"));
        }
    }

    #[test]
    fn backslashes_are_doubled_so_escapes_cannot_be_forged() {
        assert_eq!(Escaped("a\\nb").to_string(), "a\\\\nb");
        assert_ne!(Escaped("a\\nb").to_string(), Escaped("a\nb").to_string());
        assert_eq!(
            escape("x\\u{202e}").as_ref(),
            "x\\\\u{202e}",
            "a literal escape is not the escape of U+202E"
        );
    }

    #[test]
    fn ordinary_text_is_shown_as_it_is() {
        for text in [
            "Garage wallbox",
            "Wärmepumpe Küche",
            "充電器",
            "ship-gateway-0123",
            "",
        ] {
            assert!(is_plain(text));
            assert_eq!(Escaped(text).to_string(), text);
            assert!(matches!(escape(text), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn width_and_alignment_apply_to_the_escaped_text() {
        assert_eq!(format!("[{:<6}]", Escaped("a\nb")), "[a\\nb  ]");
        assert_eq!(format!("[{:>4}]", Escaped("ab")), "[  ab]");
    }

    #[test]
    fn quoted_values_are_escaped_quoted_and_cut() {
        assert_eq!(Quoted("yes").to_string(), "\"yes\"");
        assert_eq!(
            Quoted("a\"b\u{202e}c\n").to_string(),
            "\"a\\\"b\\u{202e}c\\n\""
        );
        let long = "x".repeat(1_000);
        let shown = Quoted(&long).to_string();
        assert_eq!(shown, format!("\"{}…\"", "x".repeat(QUOTE_MAX_CHARS)));
        let exact = "y".repeat(QUOTE_MAX_CHARS);
        assert_eq!(Quoted(&exact).to_string(), format!("\"{exact}\""));
    }

    #[test]
    fn messages_are_escaped_and_cut() {
        assert_eq!(
            escaped_message("unknown variant `a\u{202e}b`", 100),
            "unknown variant `a\\u{202e}b`"
        );
        assert_eq!(
            escaped_message(&"z".repeat(50), 10),
            format!("{}…", "z".repeat(10))
        );
        assert_eq!(
            escaped_message("a \"1\\u{202e}\"", 100),
            "a \"1\\u{202e}\"",
            "a parser's own escapes stay as they are"
        );
    }
}

#[cfg(test)]
mod policy_tests;
