//! The PIN of SHIP's PIN verification (§13.4.4.3): the [`Pin`] secret, this node's
//! [`PinRequirement`], what a [`super::Connection`] is started with ([`PinParams`]) and the
//! escalating penalty for wrong PINs ([`pin_penalty`]). The message handling lives in
//! `pin_check.rs`; docs/pairing.md ("PIN verification") explains it for installers.

use std::time::{Duration, Instant};

use subtle::ConstantTimeEq;

use super::config::ProtocolConfig;

/// A SHIP PIN: 8 to 16 hexadecimal digits (§13.4.4.3; the installation QR code prints it in
/// groups of four, which [`Pin::new`] accepts).
///
/// The PIN is a secret: its `Debug` form is `Pin(<redacted>)`, it has no `Display`, and no
/// error, event or log line of ship-hub contains it. [`Pin::reveal`] is the one way to read it.
///
/// Two PINs that differ only in the case of their letters are the same PIN when this node
/// verifies one ([`Pin::matches`]); the text is sent exactly as it was given, because other
/// implementations may compare byte for byte.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pin(String);

/// Why text is not a [`Pin`]. Never contains the text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PinError {
    /// Fewer than 8 or more than 16 digits (spaces not counted).
    #[error("a SHIP PIN has 8 to 16 hexadecimal digits, this one has {0}")]
    Length(usize),
    /// A character that is neither a hexadecimal digit nor a space.
    #[error("a SHIP PIN has only hexadecimal digits (0-9, A-F); character {0} is not one")]
    NotHex(usize),
}

impl Pin {
    /// The fewest digits a PIN has.
    pub const MIN_DIGITS: usize = 8;
    /// The most digits a PIN has.
    pub const MAX_DIGITS: usize = 16;

    /// Checks `text` (spaces are removed first, so `5555 AAAA FF` is `5555AAAAFF`).
    pub fn new(text: &str) -> Result<Pin, PinError> {
        let mut digits = String::with_capacity(text.len().min(Self::MAX_DIGITS));
        for (i, c) in text.chars().enumerate() {
            match c {
                ' ' => {}
                c if c.is_ascii_hexdigit() => digits.push(c),
                _ => return Err(PinError::NotHex(i + 1)),
            }
        }
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&digits.len()) {
            return Err(PinError::Length(digits.len()));
        }
        Ok(Pin(digits))
    }

    /// The digits, as given. Handle with care: this is the secret.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Whether `other` is this PIN (letters in either case), in time independent of where
    /// they differ.
    pub fn matches(&self, other: &Pin) -> bool {
        let ours = self.0.to_ascii_uppercase();
        let theirs = other.0.to_ascii_uppercase();
        ours.len() == theirs.len() && bool::from(ours.as_bytes().ct_eq(theirs.as_bytes()))
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(<redacted>)")
    }
}

impl std::str::FromStr for Pin {
    type Err = PinError;

    fn from_str(text: &str) -> Result<Pin, PinError> {
        Pin::new(text)
    }
}

/// Whether this node demands a PIN from its peers before data exchange (§13.4.4.3).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PinRequirement {
    /// No PIN (`pinState` `none`): what deployed devices use. The default.
    #[default]
    None,
    /// Data exchange starts only after the peer sent this PIN (`required`).
    Required(Pin),
    /// Data exchange starts at once, but the peer stays *restricted* until it sent this PIN
    /// (`optional`): [`super::Connection::peer_restricted`] tells the application.
    Optional(Pin),
}

impl PinRequirement {
    /// The PIN the peer has to send, if any.
    pub fn pin(&self) -> Option<&Pin> {
        match self {
            PinRequirement::None => None,
            PinRequirement::Required(pin) | PinRequirement::Optional(pin) => Some(pin),
        }
    }
}

/// The PIN side of a connection, set with [`super::Connection::set_pin`] before the PIN step.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PinParams {
    /// This node's requirement. Default: none.
    pub requirement: PinRequirement,
    /// The PIN to send when the peer requires one (or accepts one). Without it the connection
    /// asks the application ([`super::Event::PinRequested`]) when the peer requires a PIN.
    pub peer_pin: Option<Pin>,
    /// Wrong PINs this peer sent before, on earlier connections: the penalty escalates across
    /// reconnections (the hub keeps the count per SKI).
    pub failed_attempts: u32,
    /// A penalty still running from an earlier connection: until then PIN input is `busy`.
    pub penalty_until: Option<Instant>,
}

impl PinParams {
    /// This requirement and nothing else.
    pub fn new(requirement: PinRequirement) -> Self {
        PinParams {
            requirement,
            ..PinParams::default()
        }
    }
}

/// The penalty owed after the peer's `attempts`-th consecutive wrong PIN (§13.4.4.3): none for
/// the first [`ProtocolConfig::pin_penalty_short_after`]` - 1` wrong PINs; from that many on,
/// [`ProtocolConfig::pin_penalty_short`] each; from [`ProtocolConfig::pin_penalty_long_after`]
/// on, [`ProtocolConfig::pin_penalty_long`] each. With the defaults: 1st and 2nd wrong PIN
/// free, 3rd to 5th 15 s each, 6th and every later one 90 s each. During a penalty the node
/// announces `inputPermission` `busy` and verifies no PIN.
pub fn pin_penalty(attempts: u32, config: &ProtocolConfig) -> Option<Duration> {
    if attempts >= config.pin_penalty_long_after {
        Some(config.pin_penalty_long)
    } else if attempts >= config.pin_penalty_short_after {
        Some(config.pin_penalty_short)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_accepts_8_to_16_hex_digits_with_spaces() {
        assert_eq!(Pin::new("5555 AAAA FF").unwrap().reveal(), "5555AAAAFF");
        assert!(Pin::new("0123abcd").is_ok());
        assert!(Pin::new("0123456789abcdef").is_ok());
        assert_eq!(Pin::new("1234567"), Err(PinError::Length(7)));
        assert_eq!(Pin::new("0123456789abcdef0"), Err(PinError::Length(17)));
        assert_eq!(Pin::new("1234567g"), Err(PinError::NotHex(8)));
        assert_eq!(Pin::new(""), Err(PinError::Length(0)));
    }

    #[test]
    fn pin_debug_and_errors_never_show_the_digits() {
        let pin = Pin::new("DEADBEEF42").unwrap();
        let printed = format!(
            "{pin:?} {:?} {:?}",
            PinRequirement::Required(pin.clone()),
            PinParams {
                peer_pin: Some(pin.clone()),
                ..PinParams::default()
            }
        );
        assert!(!printed.contains("DEADBEEF"), "{printed}");
        assert!(printed.contains("<redacted>"));
        let error = Pin::new("DEADBEEF42X").unwrap_err();
        assert!(!error.to_string().contains("DEADBEEF"));
    }

    #[test]
    fn pins_match_in_either_case_only_when_equal() {
        let pin = Pin::new("abcdef01").unwrap();
        assert!(pin.matches(&Pin::new("ABCDEF01").unwrap()));
        assert!(!pin.matches(&Pin::new("ABCDEF02").unwrap()));
        assert!(!pin.matches(&Pin::new("ABCDEF012").unwrap()));
    }

    #[test]
    fn s13_4_4_3_penalty_escalates_3_then_6() {
        let config = ProtocolConfig::default();
        let penalties: Vec<_> = (1..=8).map(|n| pin_penalty(n, &config)).collect();
        let s = |secs| Some(Duration::from_secs(secs));
        assert_eq!(
            penalties,
            vec![None, None, s(15), s(15), s(15), s(90), s(90), s(90)]
        );
    }
}
