//! The SHIP ID: a node's application-level identifier.
//!
//! A node announces its SHIP ID in the mDNS TXT record (`id`, §7.3.2) and again in the
//! `accessMethods` message (§13.4.6). The conformance test TC_SHIP_MDNS_001 requires it to be at
//! most 63 bytes; it must not be empty. A SHIP ID stored for a SKI that later arrives different
//! closes the connection with 4450 ("SHIP id mismatch").

use std::fmt;
use std::str::FromStr;

/// A validated SHIP ID: 1 to 63 bytes of UTF-8 without control characters.
///
/// A peer chooses its SHIP ID, so it is shown by the library's policy for peer text
/// ([`crate::text`]): [`as_str`](Self::as_str) is the exact value (compare, store and send
/// that), while `Display` shows invisible characters as escapes (`\u{202e}` for a bidi
/// override, `\u{200b}` for a zero-width space) and a backslash as `\\`, so that printing a
/// SHIP ID never reorders or hides what is printed next to it.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShipId(String);

impl ShipId {
    /// Maximum length in bytes (TC_SHIP_MDNS_001).
    pub const MAX_LEN: usize = 63;

    /// Validates and wraps a SHIP ID.
    pub fn new(id: impl Into<String>) -> Result<Self, ShipIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(ShipIdError::Empty);
        }
        if id.len() > Self::MAX_LEN {
            return Err(ShipIdError::TooLong { len: id.len() });
        }
        if let Some(character) = id.chars().find(|c| c.is_control()) {
            return Err(ShipIdError::ControlCharacter { character });
        }
        Ok(ShipId(id))
    }

    /// The exact text, as the peer sent it (for comparing, storing, sending; show it with
    /// `Display`, which escapes invisible characters).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ShipId {
    /// The SHIP ID with invisible characters and backslashes escaped ([`crate::text::Escaped`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&crate::text::Escaped(&self.0), f)
    }
}

impl fmt::Debug for ShipId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ShipId({:?})", self.0)
    }
}

impl FromStr for ShipId {
    type Err = ShipIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ShipId::new(s)
    }
}

/// Why a text is not a valid [`ShipId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShipIdError {
    /// The SHIP ID is empty.
    #[error("a SHIP ID must not be empty")]
    Empty,
    /// Longer than [`ShipId::MAX_LEN`] bytes.
    #[error("a SHIP ID is at most 63 bytes, this one has {len}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Contains a control character.
    #[error("a SHIP ID must not contain control characters (found {character:?})")]
    ControlCharacter {
        /// The offending character.
        character: char,
    },
}

impl serde::Serialize for ShipId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for ShipId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ShipId::new(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_typical_ids() {
        assert_eq!(
            ShipId::new("Demo-EVSE-234567890").unwrap().as_str(),
            "Demo-EVSE-234567890"
        );
        assert!(ShipId::new("x".repeat(63)).is_ok());
    }

    #[test]
    fn rejects_empty_long_and_control() {
        assert_eq!(ShipId::new(""), Err(ShipIdError::Empty));
        assert_eq!(
            ShipId::new("x".repeat(64)),
            Err(ShipIdError::TooLong { len: 64 })
        );
        assert_eq!(
            ShipId::new("a\nb"),
            Err(ShipIdError::ControlCharacter { character: '\n' })
        );
    }
}
