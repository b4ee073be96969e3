//! The SHIP TXT record (§7.3.2): encoding for our announcement and parsing of peers'.
//!
//! Sending: keys go out in the order of §7.3.2, `txtvers=1` first, then `id`, `path`, `ski`,
//! `brand`, `model`, `type`, `register`, and the optional `serial` and `cat`. The 32-byte limits
//! of brand/model/type/serial and of `path` (TC_SHIP_MDNS_001) are enforced when a value is
//! built ([`TxtValue::new`], [`ServicePath::new`]), with a typed error, never by truncation.
//!
//! Receiving: strict on the mandatory keys (`txtvers=1`, `id`, `path`, `ski`, `register`): a
//! record missing one, or carrying an invalid one, is refused with a [`TxtError`] and the
//! service is not made visible, because the Hub could not dial or identify it. Lenient on
//! everything a peer can get wrong without harm:
//!
//! * order: Avahi hands TXT items out in reverse order, so order is ignored;
//! * key case: keys compare case-insensitively (RFC 6763 §6.4);
//! * duplicate keys: the first occurrence wins and later ones are ignored, as RFC 6763 §6.4
//!   demands of clients (mdns-sd applies the same rule before we see the record, so any other
//!   choice here would behave differently on the wire than in tests);
//! * optional keys (`brand`, `model`, `type`, `serial`, `cat`): TC_SHIP_MDNS_001 only checks
//!   them "if present", so a missing one is `None`; an invalid one (over 32 bytes, not UTF-8,
//!   unparsable category) is dropped with a debug trace instead of hiding a dialable peer;
//! * unknown keys are ignored.
//!
//! The `ski` in a TXT record is a claim. The TLS handshake proves it (see `docs/discovery.md`).

use std::fmt;
use std::str::FromStr;

use crate::text::Quoted;
use crate::{ShipId, ShipIdError, Ski, SkiParseError};

/// The DNS-SD service type of SHIP nodes (§7.3).
pub const SERVICE_TYPE: &str = "_ship._tcp.local.";

/// The only TXT record version this crate reads and writes (`txtvers=1`, §7.3.2).
pub const TXT_VERSION: &str = "1";

/// Why a TXT record or a TXT value was refused.
///
/// A message that quotes the peer's value shows it by the library's policy for peer text
/// ([`crate::text::Quoted`]: escaped, cut after 64 characters); the `found` fields hold the
/// exact value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TxtError {
    /// A mandatory key (`txtvers`, `id`, `path`, `ski`, `register`) is absent.
    #[error("mandatory TXT key `{key}` is missing (SHIP §7.3.2)")]
    Missing {
        /// The missing key.
        key: &'static str,
    },
    /// A mandatory key is present without a value (`key` instead of `key=value`).
    #[error("TXT key `{key}` has no value")]
    NoValue {
        /// The key.
        key: &'static str,
    },
    /// A value is not UTF-8.
    #[error("the value of TXT key `{key}` is not UTF-8")]
    NotUtf8 {
        /// The key.
        key: &'static str,
    },
    /// `txtvers` is not `1`.
    #[error("unsupported TXT record version txtvers={} (only 1 is known)", Quoted(.found))]
    UnsupportedVersion {
        /// The version found.
        found: String,
    },
    /// `id` is not a valid SHIP ID.
    #[error("invalid SHIP ID in TXT key `id`: {0}")]
    InvalidShipId(#[source] ShipIdError),
    /// `ski` is not 40 hex digits.
    #[error("invalid SKI in TXT key `ski`: {0}")]
    InvalidSki(#[source] SkiParseError),
    /// `register` is neither `true` nor `false`.
    #[error("TXT key `register` must be `true` or `false`, found {}", Quoted(.found))]
    InvalidRegister {
        /// The value found.
        found: String,
    },
    /// A value exceeds its byte limit.
    #[error("the value of TXT key `{key}` is {len} bytes long, at most {max} are allowed")]
    TooLong {
        /// The key.
        key: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value contains a control character.
    #[error("the value of TXT key `{key}` contains a control character")]
    ControlCharacter {
        /// The key.
        key: &'static str,
    },
    /// `path` does not contain a `/` (TC_SHIP_MDNS_001).
    #[error("TXT key `path` must contain a `/`, found {}", Quoted(.found))]
    InvalidPath {
        /// The value found.
        found: String,
    },
    /// An entry of `cat` is not a number from 1 to 255.
    #[error(
        "TXT key `cat` must be a comma-separated list of category numbers, found {}",
        Quoted(.found)
    )]
    InvalidCategory {
        /// The value found.
        found: String,
    },
    /// Raw TXT RDATA whose length bytes run past its end.
    #[error("malformed TXT RDATA: an entry of {len} bytes at offset {offset} runs past the end")]
    MalformedRdata {
        /// Offset of the length byte.
        offset: usize,
        /// The announced entry length.
        len: usize,
    },
}

/// Which TXT key a [`TxtValue`] is meant for; decides its key name in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TxtField {
    /// `brand`: the manufacturer.
    Brand,
    /// `model`: the device model.
    Model,
    /// `type`: the device type, e.g. `EnergyManagementSystem`.
    DeviceType,
    /// `serial`: the serial number.
    Serial,
}

impl TxtField {
    /// The TXT key.
    pub const fn key(self) -> &'static str {
        match self {
            TxtField::Brand => "brand",
            TxtField::Model => "model",
            TxtField::DeviceType => "type",
            TxtField::Serial => "serial",
        }
    }
}

/// A short TXT value: at most [`TxtValue::MAX_LEN`] bytes of UTF-8 without control characters
/// (`brand`, `model`, `type`, `serial`; §7.3.2, TC_SHIP_MDNS_001).
///
/// A peer's value is shown by the library's policy for peer text ([`crate::text`]):
/// [`as_str`](Self::as_str) is the exact value, `Display` escapes invisible characters (bidi
/// controls, zero-width characters) and backslashes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TxtValue(String);

impl TxtValue {
    /// Maximum length in bytes.
    pub const MAX_LEN: usize = 32;

    /// Validates a value for `field`.
    pub fn new(field: TxtField, value: impl Into<String>) -> Result<Self, TxtError> {
        let value = value.into();
        check_short(field.key(), &value)?;
        Ok(TxtValue(value))
    }

    /// The exact text (`Display` shows it escaped).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TxtValue {
    /// The value with invisible characters and backslashes escaped ([`crate::text::Escaped`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&crate::text::Escaped(&self.0), f)
    }
}

impl fmt::Debug for TxtValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// The WebSocket path of a SHIP node (TXT `path`, §7.3.2): contains a `/`, at most 32 bytes
/// (TC_SHIP_MDNS_001). ship-hub serves `/ship/`. [`as_str`](Self::as_str) is the exact path
/// (dial with that); `Display` escapes invisible characters ([`crate::text`]).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePath(String);

impl ServicePath {
    /// Maximum length in bytes.
    pub const MAX_LEN: usize = 32;

    /// Validates a path.
    pub fn new(path: impl Into<String>) -> Result<Self, TxtError> {
        let path = path.into();
        check_short("path", &path)?;
        if !path.contains('/') {
            return Err(TxtError::InvalidPath { found: path });
        }
        Ok(ServicePath(path))
    }

    /// The exact text (`Display` shows it escaped).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ServicePath {
    /// `/ship/`, the path ship-hub and most SHIP nodes serve.
    fn default() -> Self {
        ServicePath("/ship/".to_owned())
    }
}

impl fmt::Display for ServicePath {
    /// The path with invisible characters and backslashes escaped ([`crate::text::Escaped`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&crate::text::Escaped(&self.0), f)
    }
}

impl fmt::Debug for ServicePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

fn check_short(key: &'static str, value: &str) -> Result<(), TxtError> {
    if value.len() > TxtValue::MAX_LEN {
        return Err(TxtError::TooLong {
            key,
            len: value.len(),
            max: TxtValue::MAX_LEN,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(TxtError::ControlCharacter { key });
    }
    Ok(())
}

/// The content of a SHIP TXT record (§7.3.2).
///
/// Every field is valid by construction: the limits live in the field types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct ShipTxt {
    /// `id`: the SHIP ID (at most 63 bytes).
    pub id: ShipId,
    /// `path`: the WebSocket path to dial, e.g. `/ship/`.
    pub path: ServicePath,
    /// `ski`: the SKI the node claims (TLS proves it).
    pub ski: Ski,
    /// `brand`.
    pub brand: Option<TxtValue>,
    /// `model`.
    pub model: Option<TxtValue>,
    /// `type`: the device type.
    pub device_type: Option<TxtValue>,
    /// `register`: true = the node accepts unknown peers without a user (the specification
    /// forbids that mode; ship-hub always announces `false` unless told otherwise).
    pub register: bool,
    /// `serial`.
    pub serial: Option<TxtValue>,
    /// `cat`: device categories. Empty = no `cat` key.
    pub categories: DeviceCategories,
}

impl ShipTxt {
    /// A record with the mandatory keys, path `/ship/`, `register=false` and no optional keys.
    pub fn new(id: ShipId, ski: Ski) -> Self {
        ShipTxt {
            id,
            path: ServicePath::default(),
            ski,
            brand: None,
            model: None,
            device_type: None,
            register: false,
            serial: None,
            categories: DeviceCategories::default(),
        }
    }

    /// The key/value pairs in the order of §7.3.2 (`txtvers` first).
    pub fn to_properties(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("txtvers", TXT_VERSION.to_owned()),
            ("id", self.id.as_str().to_owned()),
            ("path", self.path.as_str().to_owned()),
            ("ski", self.ski.to_string()),
        ];
        for (field, value) in [
            (TxtField::Brand, &self.brand),
            (TxtField::Model, &self.model),
            (TxtField::DeviceType, &self.device_type),
        ] {
            if let Some(value) = value {
                out.push((field.key(), value.as_str().to_owned()));
            }
        }
        out.push(("register", self.register.to_string()));
        if let Some(serial) = &self.serial {
            out.push((TxtField::Serial.key(), serial.as_str().to_owned()));
        }
        if !self.categories.is_empty() {
            out.push(("cat", self.categories.encode()));
        }
        out
    }

    /// The record as DNS TXT RDATA: one length-prefixed `key=value` string per key, in the order
    /// of [`ShipTxt::to_properties`].
    pub fn to_rdata(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in self.to_properties() {
            let entry = format!("{key}={value}");
            // Every value is bounded (id 63, cat 251, others 32 bytes): an entry fits 255 bytes.
            out.push(u8::try_from(entry.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(entry.as_bytes());
        }
        out
    }

    /// Parses DNS TXT RDATA (length-prefixed strings, RFC 6763 §6.1).
    pub fn from_rdata(rdata: &[u8]) -> Result<Self, TxtError> {
        let mut entries: Vec<(&str, Option<&[u8]>)> = Vec::new();
        let mut offset = 0;
        while offset < rdata.len() {
            let len = usize::from(rdata[offset]);
            let start = offset + 1;
            let end = start + len;
            let Some(entry) = rdata.get(start..end) else {
                return Err(TxtError::MalformedRdata { offset, len });
            };
            offset = end;
            if entry.is_empty() {
                continue;
            }
            let (key, value) = match entry.iter().position(|&b| b == b'=') {
                Some(eq) => (&entry[..eq], Some(&entry[eq + 1..])),
                None => (entry, None),
            };
            // A key that is not UTF-8 cannot be one of ours: skip it like any unknown key.
            if let Ok(key) = std::str::from_utf8(key) {
                entries.push((key, value));
            }
        }
        Self::from_properties(entries)
    }

    /// Parses key/value pairs as a TXT record delivers them: any order, keys compared
    /// case-insensitively, first occurrence of a key wins, `None` for a key without `=`.
    pub fn from_properties<'a, I>(properties: I) -> Result<Self, TxtError>
    where
        I: IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    {
        let mut found = Found::default();
        for (key, value) in properties {
            found.offer(key, value);
        }
        found.into_txt()
    }
}

/// The first occurrence of each known key.
#[derive(Default)]
struct Found<'a> {
    slots: [Option<Option<&'a [u8]>>; KEYS.len()],
}

const KEYS: [&str; 10] = [
    "txtvers", "id", "path", "ski", "brand", "model", "type", "register", "serial", "cat",
];

impl<'a> Found<'a> {
    fn offer(&mut self, key: &str, value: Option<&'a [u8]>) {
        if let Some(index) = KEYS.iter().position(|k| k.eq_ignore_ascii_case(key)) {
            // RFC 6763 §6.4: later occurrences of a key are ignored.
            self.slots[index].get_or_insert(value);
        }
    }

    fn slot(&self, key: &'static str) -> Option<Option<&'a [u8]>> {
        let index = KEYS.iter().position(|k| *k == key)?;
        self.slots[index]
    }

    fn mandatory(&self, key: &'static str) -> Result<&'a str, TxtError> {
        let value = self
            .slot(key)
            .ok_or(TxtError::Missing { key })?
            .ok_or(TxtError::NoValue { key })?;
        std::str::from_utf8(value).map_err(|_| TxtError::NotUtf8 { key })
    }

    fn optional(&self, field: TxtField) -> Option<TxtValue> {
        let key = field.key();
        let value = self.slot(key)??;
        let parsed = std::str::from_utf8(value)
            .map_err(|_| TxtError::NotUtf8 { key })
            .and_then(|text| TxtValue::new(field, text));
        match parsed {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::debug!(%error, "ignoring an invalid optional TXT value");
                None
            }
        }
    }

    fn categories(&self) -> DeviceCategories {
        let Some(Some(value)) = self.slot("cat") else {
            return DeviceCategories::default();
        };
        match std::str::from_utf8(value)
            .ok()
            .and_then(|text| DeviceCategories::parse(text).ok())
        {
            Some(list) => list,
            None => {
                tracing::debug!(cat = ?String::from_utf8_lossy(value), "ignoring an invalid TXT `cat`");
                DeviceCategories::default()
            }
        }
    }

    fn into_txt(self) -> Result<ShipTxt, TxtError> {
        let version = self.mandatory("txtvers")?;
        if version != TXT_VERSION {
            return Err(TxtError::UnsupportedVersion {
                found: version.to_owned(),
            });
        }
        let id = ShipId::new(self.mandatory("id")?).map_err(TxtError::InvalidShipId)?;
        let path = ServicePath::new(self.mandatory("path")?)?;
        let ski = Ski::from_str(self.mandatory("ski")?).map_err(TxtError::InvalidSki)?;
        let register = parse_register(self.mandatory("register")?)?;
        Ok(ShipTxt {
            id,
            path,
            ski,
            brand: self.optional(TxtField::Brand),
            model: self.optional(TxtField::Model),
            device_type: self.optional(TxtField::DeviceType),
            register,
            serial: self.optional(TxtField::Serial),
            categories: self.categories(),
        })
    }
}

/// `true`/`false`; ASCII case is ignored (harmless leniency: the meaning is unambiguous).
fn parse_register(value: &str) -> Result<bool, TxtError> {
    if value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(TxtError::InvalidRegister {
            found: value.to_owned(),
        })
    }
}

/// The device categories of TXT `cat` (§7.3.2): 1 grid connection hub, 2 energy management
/// system, 3 e-mobility, 4 HVAC, 5 inverter, 6 domestic appliance, 7 metering. Numbers from 1
/// to 255 (later versions may define more), in the order given. The encoded `cat=...` string
/// must fit one TXT string (255 bytes).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct DeviceCategories(Vec<u8>);

impl DeviceCategories {
    /// The longest encoded list: a TXT string is at most 255 bytes, minus `cat=`.
    pub const MAX_ENCODED_LEN: usize = 255 - 4;

    /// Validates a list.
    pub fn new(categories: Vec<u8>) -> Result<Self, TxtError> {
        let list = DeviceCategories(categories);
        let encoded = list.encode();
        if list.0.contains(&0) {
            return Err(TxtError::InvalidCategory { found: encoded });
        }
        if encoded.len() > Self::MAX_ENCODED_LEN {
            return Err(TxtError::TooLong {
                key: "cat",
                len: encoded.len(),
                max: Self::MAX_ENCODED_LEN,
            });
        }
        Ok(list)
    }

    /// Parses a `cat` value such as `1,2` (spaces around entries are tolerated).
    pub fn parse(value: &str) -> Result<Self, TxtError> {
        let invalid = || TxtError::InvalidCategory {
            found: value.to_owned(),
        };
        let list = value
            .split(',')
            .map(|entry| entry.trim().parse::<u8>().map_err(|_| invalid()))
            .collect::<Result<Vec<u8>, TxtError>>()?;
        DeviceCategories::new(list)
    }

    /// The comma-separated form, e.g. `1,2`.
    pub fn encode(&self) -> String {
        let list: Vec<String> = self.0.iter().map(u8::to_string).collect();
        list.join(",")
    }

    /// The category numbers.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }

    /// Whether there are none (then no `cat` key is sent).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
