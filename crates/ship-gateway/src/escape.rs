//! Text a peer chose (an mDNS instance name, a TXT value, a SHIP ID, an error that quotes what a
//! peer sent), made safe to show to a person.
//!
//! Printed raw, such text could move the cursor, clear the screen, start a forged line (a
//! newline followed by something that looks like an event) or reorder what follows it (a bidi
//! override) and so hide the SKI the user must compare. [`Escaped`] shows every character a
//! terminal would not print as itself as a visible escape instead: `\n`, `\r`, `\t`, `\x1b`
//! (other C0 controls and DEL), `\u{9b}` (C1 controls), `\u{202e}` (bidi controls and other
//! invisible format characters, line and paragraph separators). A backslash becomes `\\`, so
//! the escaped text reads back unambiguously. Everything else, including non-ASCII letters,
//! is shown as it is.
//!
//! JSON output needs none of this: it carries the exact text (serde_json escapes the control
//! characters JSON does not allow raw).

use std::fmt::{self, Write};

/// Displays a string with every control and invisible format character escaped (see the
/// module docs). Honours width and alignment (`{:<20}`), so it fits into tables.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.chars().any(|c| c == '\\' || needs_escape(c)) {
            return f.pad(self.0);
        }
        let mut out = String::with_capacity(self.0.len() + 8);
        for c in self.0.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if needs_escape(c) && c.is_ascii() => write!(out, "\\x{:02x}", c as u32)?,
                c if needs_escape(c) => write!(out, "\\u{{{:x}}}", c as u32)?,
                c => out.push(c),
            }
        }
        f.pad(&out)
    }
}

/// The escaped form of `text`, as a new string.
pub(crate) fn escaped(text: &str) -> String {
    Escaped(text).to_string()
}

/// Control characters (C0, DEL, C1) and the characters of Unicode's "format" category that a
/// terminal does not show (bidi controls, zero-width characters, …), plus the line and paragraph
/// separators.
fn needs_escape(c: char) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_visible_escapes() {
        let hostile = "Wallbox\n12:00:00 {\"event\":\"connected\"}\x1b[2J\r\t\x07\x7f\u{9b}";
        let shown = escaped(hostile);
        assert_eq!(
            shown,
            "Wallbox\\n12:00:00 {\"event\":\"connected\"}\\x1b[2J\\r\\t\\x07\\x7f\\u{9b}"
        );
        assert!(!shown.chars().any(char::is_control), "{shown:?}");
    }

    #[test]
    fn bidi_overrides_and_invisible_characters_are_escaped() {
        for (c, shown) in [
            ('\u{202a}', "\\u{202a}"),
            ('\u{202e}', "\\u{202e}"),
            ('\u{2066}', "\\u{2066}"),
            ('\u{2069}', "\\u{2069}"),
            ('\u{200b}', "\\u{200b}"),
            ('\u{200f}', "\\u{200f}"),
            ('\u{2028}', "\\u{2028}"),
            ('\u{feff}', "\\u{feff}"),
            ('\u{ad}', "\\u{ad}"),
            ('\u{e0041}', "\\u{e0041}"),
        ] {
            assert_eq!(escaped(&format!("a{c}b")), format!("a{shown}b"), "{c:?}");
        }
    }

    #[test]
    fn backslashes_are_doubled_so_escapes_cannot_be_forged() {
        assert_eq!(escaped("a\\nb"), "a\\\\nb");
        assert_ne!(escaped("a\\nb"), escaped("a\nb"));
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
            assert_eq!(escaped(text), text);
        }
    }

    #[test]
    fn width_and_alignment_apply_to_the_escaped_text() {
        assert_eq!(format!("[{:<6}]", Escaped("a\nb")), "[a\\nb  ]");
        assert_eq!(format!("[{:>4}]", Escaped("ab")), "[  ab]");
    }
}
