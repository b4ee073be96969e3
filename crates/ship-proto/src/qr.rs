//! The SHIP installation QR code (SHIP Requirements for Installation Process §3.1).
//!
//! A device prints (or shows on its display) one line of text as a QR code, so an installer
//! scans its identity instead of typing 40 hex digits:
//!
//! ```text
//! SHIP;SKI:<ski>;ID:<ship id>;[PIN:<pin>;]BRAND:<brand>;TYPE:<type>;MODEL:<model>;
//! SERIAL:<serial>;CAT:<categories>;ENDSHIP;
//! ```
//!
//! The rules this module applies, reading and writing:
//!
//! * The text starts with `SHIP;` (surrounding whitespace, such as the line end a scanner
//!   appends, is ignored). `ENDSHIP;` closes it; it is optional on input because codes printed
//!   before the marker existed are in the field. Only whitespace may follow it.
//! * Fields are `KEY:VALUE;`. A `;` always ends a field: the grammar has no escape, so no value
//!   can contain one, and the writer refuses such a value. The first `:` ends the key; later
//!   ones belong to the value (a SHIP ID such as `i:12345_u:abc` has two). Whitespace around
//!   keys and values is ignored, so a value cannot start or end with whitespace either.
//! * Keys are upper case. Keys this module does not know (later versions add some, e.g.
//!   `NOMINALPOWER`) are skipped, not rejected. A known key given twice is an error: two
//!   readers taking different copies of `SKI` would trust different devices.
//! * `SKI` (mandatory): 40 hex digits; spaces (and `-`) between them are ignored. Written upper
//!   case in groups of four, as the specification prints it.
//! * `ID` (mandatory): the SHIP ID, 1 to 63 bytes (see [`ShipId`]).
//! * `PIN` (present when the device requires one): 8 to 16 hex digits, the length of a SHIP
//!   PIN; spaces are ignored. The digits are kept as given (a peer may compare them byte for
//!   byte) and written in groups of four. A [`QrPin`] never appears in `Debug` output or in an
//!   error.
//! * `BRAND`, `TYPE`, `MODEL`, `SERIAL`: at most 32 bytes each, like the matching mDNS TXT
//!   values (`docs/ship.md` §9); no control characters. An empty value reads as absent.
//! * `CAT`: the device categories, comma-separated numbers from 1 to 255 (the TXT `cat`
//!   numbering: 2 is an energy management system).
//! * `FPH256` (SHIP Pairing Service): the SHA-256 fingerprint of the device's certificate, 64
//!   hex digits (spaces ignored, either case; written upper case without spaces).
//! * `SPSEC` (SHIP Pairing Service): the pairing secret printed with an energy manager, hex
//!   digits (see [`PairingSecret`]). Like the PIN, it never appears in `Debug` output or in an
//!   error.
//! * The whole text is at most [`ShipQr::MAX_TEXT_LEN`] bytes: more does not fit a QR code.

use std::fmt;
use std::str::FromStr;

use crate::pairing_service::{Fingerprint, PairingSecret, SecretError};
use crate::{ShipId, ShipIdError, Ski, SkiParseError};

/// The contents of a SHIP installation QR code. `Display` writes the text, `FromStr` reads it;
/// every value of this type writes a text that reads back to the same value.
#[derive(Clone, PartialEq, Eq)]
pub struct ShipQr {
    ski: Ski,
    ship_id: ShipId,
    pin: Option<QrPin>,
    brand: Option<QrText>,
    device_type: Option<QrText>,
    model: Option<QrText>,
    serial: Option<QrText>,
    categories: Vec<u8>,
    fingerprint: Option<Fingerprint>,
    pairing_secret: Option<PairingSecret>,
}

/// A PIN as carried by the QR code: 8 to 16 hex digits, kept as given without the spaces.
/// `Debug` does not show it; [`QrPin::expose`] does.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct QrPin(String);

/// A descriptive value (`BRAND`, `TYPE`, `MODEL`, `SERIAL`), validated for the QR text.
#[derive(Clone, Debug, PartialEq, Eq)]
struct QrText(String);

/// Why a text is not a SHIP QR code, or why a value cannot be written into one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QrError {
    /// The text is longer than any QR code holds.
    #[error("a SHIP QR code is at most {max} bytes, this text has {len}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
        /// [`ShipQr::MAX_TEXT_LEN`].
        max: usize,
    },
    /// The text does not start with `SHIP;`.
    #[error("not a SHIP QR code: the text does not start with \"SHIP;\"")]
    NotShip,
    /// A field is not `KEY:VALUE` (no `:`, or nothing before it).
    #[error("field {index} of the QR code is not KEY:VALUE")]
    MalformedField {
        /// The field's position, 1 for the first field after `SHIP;`.
        index: usize,
    },
    /// A known key appears twice.
    #[error("the QR code has two {key} fields")]
    DuplicateKey {
        /// The key.
        key: &'static str,
    },
    /// Something other than whitespace follows `ENDSHIP;`.
    #[error("the QR code has text after ENDSHIP;")]
    TextAfterEnd,
    /// No `SKI` field.
    #[error("the QR code has no SKI field")]
    MissingSki,
    /// No `ID` field.
    #[error("the QR code has no ID (SHIP ID) field")]
    MissingId,
    /// The `SKI` is not 40 hex digits.
    #[error("the QR code's SKI is invalid: {0}")]
    Ski(SkiParseError),
    /// The `ID` is not a valid SHIP ID.
    #[error("the QR code's ID is invalid: {0}")]
    ShipId(ShipIdError),
    /// The `PIN` is not 8 to 16 hex digits. The error does not repeat the PIN.
    #[error("the QR code's PIN is invalid: {0}")]
    Pin(QrPinError),
    /// A value is longer than its key allows.
    #[error("the QR code's {key} is at most {max} bytes, this one has {len}")]
    FieldTooLong {
        /// The key.
        key: &'static str,
        /// The value's length in bytes.
        len: usize,
        /// The most the key allows.
        max: usize,
    },
    /// A value holds a character the QR text cannot carry there: `;` (it would end the field)
    /// or a control character.
    #[error("the QR code's {key} must not contain {character:?}")]
    ForbiddenCharacter {
        /// The key.
        key: &'static str,
        /// The offending character.
        character: char,
    },
    /// A value to be written starts or ends with whitespace, which a reader drops.
    #[error("the QR code's {key} must not start or end with whitespace")]
    EdgeWhitespace {
        /// The key.
        key: &'static str,
    },
    /// A `CAT` entry is not a number from 1 to 255.
    #[error("the QR code's CAT must be numbers from 1 to 255 separated by commas")]
    InvalidCategory,
    /// The `FPH256` (certificate fingerprint) is not 64 hex digits.
    #[error("the QR code's FPH256 (certificate fingerprint) is not 64 hex digits")]
    Fingerprint,
    /// The `SPSEC` (pairing secret) is invalid. The error does not repeat the secret.
    #[error("the QR code's SPSEC (pairing secret) is invalid: {0}")]
    PairingSecret(SecretError),
}

/// Why a text is not a [`QrPin`]. Neither variant carries the PIN's digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QrPinError {
    /// A character other than a hex digit or a space.
    #[error("character {position} is not a hex digit")]
    NotHex {
        /// Its position (1 for the first character).
        position: usize,
    },
    /// Fewer than 8 or more than 16 hex digits.
    #[error("a PIN has 8 to 16 hex digits, found {digits}")]
    WrongLength {
        /// How many hex digits were found.
        digits: usize,
    },
}

impl QrPin {
    /// The fewest hex digits.
    pub const MIN_DIGITS: usize = 8;
    /// The most hex digits.
    pub const MAX_DIGITS: usize = 16;

    /// Validates a PIN: hex digits, spaces between them ignored.
    pub fn new(text: &str) -> Result<QrPin, QrPinError> {
        let mut digits = String::with_capacity(Self::MAX_DIGITS);
        let mut count = 0usize;
        for (index, character) in text.chars().enumerate() {
            match character {
                ' ' => {}
                c if c.is_ascii_hexdigit() => {
                    count += 1;
                    if count <= Self::MAX_DIGITS {
                        digits.push(c);
                    }
                }
                _ => {
                    return Err(QrPinError::NotHex {
                        position: index + 1,
                    });
                }
            }
        }
        if !(Self::MIN_DIGITS..=Self::MAX_DIGITS).contains(&count) {
            return Err(QrPinError::WrongLength { digits: count });
        }
        Ok(QrPin(digits))
    }

    /// The PIN's hex digits as given, without spaces. Handle with care: this is the secret.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for QrPin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QrPin(<redacted>)")
    }
}

impl FromStr for QrPin {
    type Err = QrPinError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        QrPin::new(s)
    }
}

/// The keys this module reads, with the names used in errors.
const SKI: &str = "SKI";
const ID: &str = "ID";
const PIN: &str = "PIN";
const BRAND: &str = "BRAND";
const TYPE: &str = "TYPE";
const MODEL: &str = "MODEL";
const SERIAL: &str = "SERIAL";
const CAT: &str = "CAT";
const FPH256: &str = "FPH256";
const SPSEC: &str = "SPSEC";

/// Reads `FPH256`: 64 hex digits, spaces ignored, either case.
fn read_fingerprint(value: &str) -> Result<Fingerprint, QrError> {
    let digits: String = value
        .chars()
        .filter(|c| *c != ' ')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    digits.parse().map_err(|_| QrError::Fingerprint)
}

impl QrText {
    /// The most bytes of `BRAND`, `TYPE`, `MODEL` and `SERIAL`.
    const MAX_LEN: usize = 32;

    fn new(key: &'static str, value: &str) -> Result<QrText, QrError> {
        check_value(key, value)?;
        if value.len() > Self::MAX_LEN {
            return Err(QrError::FieldTooLong {
                key,
                len: value.len(),
                max: Self::MAX_LEN,
            });
        }
        Ok(QrText(value.to_owned()))
    }
}

/// What every written value must satisfy to read back unchanged.
fn check_value(key: &'static str, value: &str) -> Result<(), QrError> {
    if let Some(character) = value.chars().find(|&c| c == ';' || c.is_control()) {
        return Err(QrError::ForbiddenCharacter { key, character });
    }
    if value.trim() != value {
        return Err(QrError::EdgeWhitespace { key });
    }
    Ok(())
}

/// An optional descriptive value read from the text: empty means absent.
fn read_text(key: &'static str, value: &str) -> Result<Option<QrText>, QrError> {
    if value.is_empty() {
        Ok(None)
    } else {
        QrText::new(key, value).map(Some)
    }
}

fn read_categories(value: &str) -> Result<Vec<u8>, QrError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|entry| match entry.trim().parse::<u8>() {
            Ok(0) | Err(_) => Err(QrError::InvalidCategory),
            Ok(n) => Ok(n),
        })
        .collect()
}

impl ShipQr {
    /// The most bytes a QR code holds (version 40, error correction level L, byte mode); a
    /// longer text cannot have come from one and is refused before it is looked at.
    pub const MAX_TEXT_LEN: usize = 2953;

    /// A code with the two mandatory fields. Fails if the SHIP ID cannot be written into the
    /// text (it contains `;` or starts or ends with whitespace).
    pub fn new(ski: Ski, ship_id: ShipId) -> Result<ShipQr, QrError> {
        check_value(ID, ship_id.as_str())?;
        Ok(ShipQr {
            ski,
            ship_id,
            pin: None,
            brand: None,
            device_type: None,
            model: None,
            serial: None,
            categories: Vec::new(),
            fingerprint: None,
            pairing_secret: None,
        })
    }

    /// Sets `FPH256`, the fingerprint of the device's certificate (SHIP Pairing Service).
    pub fn with_fingerprint(mut self, fingerprint: Fingerprint) -> ShipQr {
        self.fingerprint = Some(fingerprint);
        self
    }

    /// Sets `SPSEC`, the device's pairing secret (SHIP Pairing Service). The text then
    /// contains the secret.
    pub fn with_pairing_secret(mut self, secret: PairingSecret) -> ShipQr {
        self.pairing_secret = Some(secret);
        self
    }

    /// Adds the PIN the device requires.
    pub fn with_pin(mut self, pin: QrPin) -> ShipQr {
        self.pin = Some(pin);
        self
    }

    /// Sets `BRAND` (at most 32 bytes).
    pub fn with_brand(mut self, brand: &str) -> Result<ShipQr, QrError> {
        self.brand = Some(QrText::new(BRAND, brand)?);
        Ok(self)
    }

    /// Sets `TYPE`, the device type (at most 32 bytes).
    pub fn with_device_type(mut self, device_type: &str) -> Result<ShipQr, QrError> {
        self.device_type = Some(QrText::new(TYPE, device_type)?);
        Ok(self)
    }

    /// Sets `MODEL` (at most 32 bytes).
    pub fn with_model(mut self, model: &str) -> Result<ShipQr, QrError> {
        self.model = Some(QrText::new(MODEL, model)?);
        Ok(self)
    }

    /// Sets `SERIAL` (at most 32 bytes).
    pub fn with_serial(mut self, serial: &str) -> Result<ShipQr, QrError> {
        self.serial = Some(QrText::new(SERIAL, serial)?);
        Ok(self)
    }

    /// Sets `CAT`, the device categories (numbers from 1 to 255; empty = no `CAT` field).
    pub fn with_categories(mut self, categories: Vec<u8>) -> Result<ShipQr, QrError> {
        if categories.contains(&0) {
            return Err(QrError::InvalidCategory);
        }
        self.categories = categories;
        Ok(self)
    }

    /// The device's SKI.
    pub fn ski(&self) -> Ski {
        self.ski
    }

    /// The device's SHIP ID.
    pub fn ship_id(&self) -> &ShipId {
        &self.ship_id
    }

    /// The device's PIN, if the code carries one.
    pub fn pin(&self) -> Option<&QrPin> {
        self.pin.as_ref()
    }

    /// `BRAND`, if present.
    pub fn brand(&self) -> Option<&str> {
        self.brand.as_ref().map(|t| t.0.as_str())
    }

    /// `TYPE`, if present.
    pub fn device_type(&self) -> Option<&str> {
        self.device_type.as_ref().map(|t| t.0.as_str())
    }

    /// `MODEL`, if present.
    pub fn model(&self) -> Option<&str> {
        self.model.as_ref().map(|t| t.0.as_str())
    }

    /// `SERIAL`, if present.
    pub fn serial(&self) -> Option<&str> {
        self.serial.as_ref().map(|t| t.0.as_str())
    }

    /// `CAT`: the device categories (empty if absent).
    pub fn categories(&self) -> &[u8] {
        &self.categories
    }

    /// `FPH256`: the fingerprint of the device's certificate, if the code carries it.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.fingerprint
    }

    /// `SPSEC`: the device's pairing secret, if the code carries it.
    pub fn pairing_secret(&self) -> Option<&PairingSecret> {
        self.pairing_secret.as_ref()
    }
}

/// Writes hex digits in groups of four separated by spaces.
fn write_grouped(f: &mut fmt::Formatter<'_>, hex: &str) -> fmt::Result {
    for (i, c) in hex.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            f.write_str(" ")?;
        }
        write!(f, "{c}")?;
    }
    Ok(())
}

impl fmt::Display for ShipQr {
    /// The QR text, in the specification's order, closed by `ENDSHIP;`. It contains the PIN
    /// and the pairing secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SHIP;SKI:")?;
        write_grouped(f, &self.ski.to_string().to_ascii_uppercase())?;
        write!(f, ";ID:{};", self.ship_id.as_str())?;
        if let Some(pin) = &self.pin {
            f.write_str("PIN:")?;
            write_grouped(f, &pin.0)?;
            f.write_str(";")?;
        }
        for (key, value) in [
            (BRAND, &self.brand),
            (TYPE, &self.device_type),
            (MODEL, &self.model),
            (SERIAL, &self.serial),
        ] {
            if let Some(value) = value {
                write!(f, "{key}:{};", value.0)?;
            }
        }
        if !self.categories.is_empty() {
            f.write_str("CAT:")?;
            for (i, n) in self.categories.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                write!(f, "{n}")?;
            }
            f.write_str(";")?;
        }
        if let Some(fingerprint) = &self.fingerprint {
            write!(f, "{FPH256}:{fingerprint};")?;
        }
        if let Some(secret) = &self.pairing_secret {
            write!(f, "{SPSEC}:{};", secret.reveal_hex())?;
        }
        f.write_str("ENDSHIP;")
    }
}

impl fmt::Debug for ShipQr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShipQr")
            .field("ski", &self.ski)
            .field("ship_id", &self.ship_id)
            .field("pin", &self.pin)
            .field("brand", &self.brand())
            .field("device_type", &self.device_type())
            .field("model", &self.model())
            .field("serial", &self.serial())
            .field("categories", &self.categories)
            .field("fingerprint", &self.fingerprint)
            .field("pairing_secret", &self.pairing_secret)
            .finish()
    }
}

/// Stores `value` in `slot` unless the key was already seen.
fn once<T>(slot: &mut Option<T>, key: &'static str, value: T) -> Result<(), QrError> {
    if slot.is_some() {
        return Err(QrError::DuplicateKey { key });
    }
    *slot = Some(value);
    Ok(())
}

impl FromStr for ShipQr {
    type Err = QrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > Self::MAX_TEXT_LEN {
            return Err(QrError::TooLong {
                len: text.len(),
                max: Self::MAX_TEXT_LEN,
            });
        }
        let body = text.trim().strip_prefix("SHIP;").ok_or(QrError::NotShip)?;
        let mut ski = None;
        let mut ship_id = None;
        let mut pin = None;
        // The optional text fields: the outer Option marks "seen", the inner one "non-empty".
        let mut brand = None;
        let mut device_type = None;
        let mut model = None;
        let mut serial = None;
        let mut categories = None;
        let mut fingerprint = None;
        let mut pairing_secret = None;
        let mut ended = false;
        for (i, field) in body.split(';').enumerate() {
            let field = field.trim();
            if ended {
                if field.is_empty() {
                    continue;
                }
                return Err(QrError::TextAfterEnd);
            }
            if field.is_empty() {
                continue;
            }
            if field == "ENDSHIP" {
                ended = true;
                continue;
            }
            let malformed = QrError::MalformedField { index: i + 1 };
            let (key, value) = field.split_once(':').ok_or(malformed.clone())?;
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err(malformed);
            }
            match key {
                SKI => once(&mut ski, SKI, value.parse().map_err(QrError::Ski)?)?,
                ID => once(
                    &mut ship_id,
                    ID,
                    ShipId::new(value).map_err(QrError::ShipId)?,
                )?,
                PIN => once(&mut pin, PIN, QrPin::new(value).map_err(QrError::Pin)?)?,
                BRAND => once(&mut brand, BRAND, read_text(BRAND, value)?)?,
                TYPE => once(&mut device_type, TYPE, read_text(TYPE, value)?)?,
                MODEL => once(&mut model, MODEL, read_text(MODEL, value)?)?,
                SERIAL => once(&mut serial, SERIAL, read_text(SERIAL, value)?)?,
                CAT => once(&mut categories, CAT, read_categories(value)?)?,
                FPH256 => once(&mut fingerprint, FPH256, read_fingerprint(value)?)?,
                SPSEC => once(
                    &mut pairing_secret,
                    SPSEC,
                    PairingSecret::from_hex(value).map_err(QrError::PairingSecret)?,
                )?,
                // A key of a later version (or a vendor's): skipped.
                _ => {}
            }
        }
        Ok(ShipQr {
            ski: ski.ok_or(QrError::MissingSki)?,
            ship_id: ship_id.ok_or(QrError::MissingId)?,
            pin,
            brand: brand.flatten(),
            device_type: device_type.flatten(),
            model: model.flatten(),
            serial: serial.flatten(),
            categories: categories.unwrap_or_default(),
            fingerprint,
            pairing_secret,
        })
    }
}

#[cfg(test)]
mod tests;
