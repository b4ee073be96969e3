//! The Subject Key Identifier (SKI) that names every SHIP node.
//!
//! SHIP (§12.1) identifies a node by the SKI of its self-signed certificate: the SHA-1 hash of
//! the 65-byte uncompressed P-256 public point (RFC 5280 §4.2.1.2, method 1). Its text form is
//! 40 lowercase hex characters. Users copy SKIs from device web pages, often grouped with spaces,
//! dashes or colons and in upper case, so parsing ignores those separators and the case.
//!
//! `Ord` compares the raw bytes; SHIP's double-connection rule (§12.2.3) lets the node with the
//! bigger SKI decide which connection survives, and comparing bytes is the same as comparing the
//! lowercase hex strings.

use std::fmt;
use std::str::FromStr;

/// A 20-byte SHIP Subject Key Identifier.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ski([u8; 20]);

impl Ski {
    /// Length of a SKI in bytes.
    pub const LEN: usize = 20;

    /// Wraps 20 raw bytes.
    pub const fn from_bytes(bytes: [u8; 20]) -> Self {
        Ski(bytes)
    }

    /// Builds a SKI from a slice, which must be exactly 20 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SkiParseError> {
        let arr: [u8; 20] = bytes.try_into().map_err(|_| SkiParseError::WrongLength {
            digits: bytes.len() * 2,
        })?;
        Ok(Ski(arr))
    }

    /// The SKI of a P-256 public key given as the 65-byte uncompressed point (`04 ‖ X ‖ Y`):
    /// SHA-1 over those bytes.
    pub fn of_public_key(uncompressed_point: &[u8]) -> Self {
        Ski(crate::crypto::sha1(uncompressed_point))
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

impl fmt::Display for Ski {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One write of 40 digits (formatting each byte with `{:02x}` costs 20 trips through
        // the formatting machinery; SKIs are printed for every event and log line).
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 40];
        for (i, b) in self.0.iter().enumerate() {
            text[2 * i] = HEX[usize::from(b >> 4)];
            text[2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
        // Only ASCII hex digits were written.
        f.pad(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Ski {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ski({self})")
    }
}

/// Why a text could not be parsed as a [`Ski`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SkiParseError {
    /// A character that is neither a hex digit nor an ignored separator (space, `-`, `:`).
    #[error("invalid character {character:?} at byte {position} of a SKI (expected hex digits)")]
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its byte offset in the input.
        position: usize,
    },
    /// The number of hex digits is not 40.
    #[error("a SKI has 40 hex digits, found {digits}")]
    WrongLength {
        /// How many hex digits were found.
        digits: usize,
    },
}

impl FromStr for Ski {
    type Err = SkiParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 20];
        let mut digits = 0usize;
        for (position, character) in s.char_indices() {
            let value = match character {
                ' ' | '-' | ':' | '\t' => continue,
                c => c.to_digit(16).ok_or(SkiParseError::InvalidCharacter {
                    character,
                    position,
                })?,
            };
            if digits < 40 {
                out[digits / 2] |= (value as u8) << if digits.is_multiple_of(2) { 4 } else { 0 };
            }
            digits += 1;
        }
        if digits != 40 {
            return Err(SkiParseError::WrongLength { digits });
        }
        Ok(Ski(out))
    }
}

impl serde::Serialize for Ski {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Ski {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn display_is_40_lowercase_hex() {
        let ski = Ski::from_bytes([0xAB; 20]);
        assert_eq!(ski.to_string(), "ab".repeat(20));
    }

    #[test]
    fn parse_accepts_grouped_upper_case() {
        let plain: Ski = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        let grouped: Ski = "0123 4567-89AB:CDEF 0123 4567 89ab cdef 0123 4567"
            .parse()
            .unwrap();
        assert_eq!(plain, grouped);
    }

    #[test]
    fn parse_rejects_bad_input_with_typed_errors() {
        assert_eq!(
            "0123".parse::<Ski>(),
            Err(SkiParseError::WrongLength { digits: 4 })
        );
        assert_eq!(
            "g123456789abcdef0123456789abcdef01234567".parse::<Ski>(),
            Err(SkiParseError::InvalidCharacter {
                character: 'g',
                position: 0
            })
        );
        assert_eq!(
            "0123456789abcdef0123456789abcdef0123456789".parse::<Ski>(),
            Err(SkiParseError::WrongLength { digits: 42 })
        );
        assert!(matches!(
            "0123456789abcdef0123456789abcdef0123456é".parse::<Ski>(),
            Err(SkiParseError::InvalidCharacter {
                character: 'é', ..
            })
        ));
    }

    #[test]
    fn ord_matches_hex_string_order() {
        let a: Ski = "00ff000000000000000000000000000000000000".parse().unwrap();
        let b: Ski = "0100000000000000000000000000000000000000".parse().unwrap();
        assert!(a < b);
        assert!(a.to_string() < b.to_string());
    }

    #[test]
    fn ski_of_public_key_is_sha1() {
        // SHA-1("abc") = a9993e36 4706816a ba3e2571 7850c26c 9cd0d89d
        assert_eq!(
            Ski::of_public_key(b"abc").to_string(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    proptest! {
        #[test]
        fn parse_of_format_is_identity(bytes in any::<[u8; 20]>()) {
            let ski = Ski::from_bytes(bytes);
            prop_assert_eq!(ski.to_string().parse::<Ski>().unwrap(), ski);
            prop_assert_eq!(ski.to_string().to_uppercase().parse::<Ski>().unwrap(), ski);
        }

        #[test]
        fn parse_never_panics(s in ".{0,80}") {
            let _ = s.parse::<Ski>();
        }

        #[test]
        fn ord_agrees_with_text(a in any::<[u8; 20]>(), b in any::<[u8; 20]>()) {
            let (a, b) = (Ski::from_bytes(a), Ski::from_bytes(b));
            prop_assert_eq!(a.cmp(&b), a.to_string().cmp(&b.to_string()));
        }
    }
}
