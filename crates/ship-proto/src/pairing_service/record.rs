//! The `_shippairing._tcp` TXT record: typed fields, the writer and a strict reader.
//!
//! Wire form (SHIP Pairing Service TS 1.0.0 §5.4): eleven `key=value` strings, `txtvers=1`
//! first, then `parType`, `forId`, `forPar`, `trustId`, `trustPar`, `trustCurve`, `type`,
//! `trustNonce`, `alg` and `digest`. The reader:
//!
//! * requires `txtvers=1` as the first string;
//! * looks keys up case-insensitively (RFC 6763 §6.4) and takes the first occurrence of a key
//!   (RFC 6763 §6.4 again), ignoring keys it does not know;
//! * refuses a record with more than [`MAX_KEYS`] strings or more than [`MAX_RECORD_LEN`] bytes
//!   before looking at any value, so a huge record costs one length check;
//! * refuses every malformed field with a [`RecordError`] naming the field.
//!
//! The digest is *not* checked here: that needs the secret ([`super::digest`]).

use std::fmt;
use std::str::FromStr;

use crate::{ShipId, ShipIdError};

/// The DNS-SD service type of the Pairing Service, with the domain.
pub const SERVICE_TYPE: &str = "_shippairing._tcp.local.";

/// The most TXT strings a record may have. A valid record has eleven; the rest is room for keys
/// a later version may add (which are ignored).
pub const MAX_KEYS: usize = 32;

/// The most bytes (keys and values together) a record may have. A valid record has about 420.
pub const MAX_RECORD_LEN: usize = 2048;

/// `parType`: the only parameter type, a SHA-256 fingerprint of the DER certificate.
pub const PAR_TYPE: &str = "fpSha256";
/// `type`: the only request type, "add a control unit".
pub const REQUEST_TYPE: &str = "addCu";
/// `alg`: the only digest algorithm.
pub const ALGORITHM: &str = "hmacSha256";
/// The curves `trustCurve` may name.
pub const CURVES: [&str; 3] = ["secp256r1", "brainpoolP256r1", "brainpoolP384r1"];

/// Why a `_shippairing._tcp` TXT record was refused. Every variant names what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// More than [`MAX_KEYS`] strings.
    #[error("the TXT record has {count} strings, at most {MAX_KEYS} are read")]
    TooManyKeys {
        /// How many it had.
        count: usize,
    },
    /// More than [`MAX_RECORD_LEN`] bytes.
    #[error("the TXT record has {len} bytes, at most {MAX_RECORD_LEN} are read")]
    TooLong {
        /// Its size in bytes (keys and values).
        len: usize,
    },
    /// The first string is not `txtvers=1`.
    #[error("the first TXT string must be txtvers=1")]
    Version,
    /// A mandatory key is absent.
    #[error("the TXT record has no `{0}` key")]
    Missing(&'static str),
    /// A key is present without a value (`key` alone).
    #[error("`{0}` has no value")]
    NoValue(&'static str),
    /// A value is not UTF-8.
    #[error("`{0}` is not UTF-8")]
    NotUtf8(&'static str),
    /// A fixed-value key (`parType`, `type`, `alg`, `trustCurve`) has a value this version
    /// does not define.
    #[error("`{field}` has the unsupported value {}", crate::text::Quoted(.value))]
    Unsupported {
        /// The key.
        field: &'static str,
        /// The value (at most 64 characters of it; the message shows it escaped,
        /// [`crate::text::Quoted`]).
        value: String,
    },
    /// `forPar`, `trustPar`, `trustNonce` or `digest` is not the uppercase hex of the right
    /// length.
    #[error("`{field}` must be {digits} uppercase hexadecimal digits")]
    Hex {
        /// The key.
        field: &'static str,
        /// How many digits it must have.
        digits: usize,
    },
    /// `forId` or `trustId` is not a SHIP ID.
    #[error("`{field}` is not a SHIP ID: {error}")]
    ShipId {
        /// The key.
        field: &'static str,
        /// Why.
        error: ShipIdError,
    },
}

/// The SHA-256 fingerprint of a DER-encoded certificate: what the Pairing Service identifies a
/// certificate by (`forPar`, `trustPar`). On the wire: 64 uppercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of_certificate(der: &[u8]) -> Self {
        Fingerprint(crate::crypto::sha256(der))
    }

    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Fingerprint(bytes)
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&upper_hex(&self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

impl FromStr for Fingerprint {
    type Err = RecordError;

    /// Reads 64 uppercase hex digits (the wire form). The error names `forPar`; the record
    /// reader names the field it read.
    fn from_str(s: &str) -> Result<Self, RecordError> {
        strict_hex::<32>(s, "forPar").map(Fingerprint)
    }
}

/// The 128-bit nonce the requesting device chooses for each request (`trustNonce`). On the
/// wire: 32 uppercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Nonce([u8; 16]);

impl Nonce {
    /// Wraps raw bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Nonce(bytes)
    }

    /// A fresh nonce from the operating system's random generator.
    pub fn random() -> Self {
        Nonce(crate::crypto::random())
    }

    /// The raw bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&upper_hex(&self.0))
    }
}

impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({self})")
    }
}

impl FromStr for Nonce {
    type Err = RecordError;

    /// Reads 32 uppercase hex digits.
    fn from_str(s: &str) -> Result<Self, RecordError> {
        strict_hex::<16>(s, "trustNonce").map(Nonce)
    }
}

/// A pairing request before it is signed: who asks (`trust*`) to be trusted by whom (`for*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingRequest {
    /// The SHIP ID of the device asked to trust (the energy manager).
    pub for_id: ShipId,
    /// The fingerprint of its certificate.
    pub for_fingerprint: Fingerprint,
    /// The SHIP ID of the device asking to be trusted (the control unit).
    pub trust_id: ShipId,
    /// The fingerprint of its certificate: what the energy manager will trust.
    pub trust_fingerprint: Fingerprint,
    /// The curve of its key; one of [`CURVES`]. SHIP certificates use `secp256r1`.
    pub trust_curve: &'static str,
    /// The nonce chosen for this request.
    pub nonce: Nonce,
}

impl PairingRequest {
    /// A request over a `secp256r1` certificate (the only curve SHIP certificates use).
    pub fn new(
        for_id: ShipId,
        for_fingerprint: Fingerprint,
        trust_id: ShipId,
        trust_fingerprint: Fingerprint,
        nonce: Nonce,
    ) -> Self {
        PairingRequest {
            for_id,
            for_fingerprint,
            trust_id,
            trust_fingerprint,
            trust_curve: CURVES[0],
            nonce,
        }
    }

    /// The ten signed `key=value` pairs, in the order the digest covers them.
    pub(crate) fn signed_pairs(&self) -> [(&'static str, String); 10] {
        [
            ("txtvers", "1".to_owned()),
            ("parType", PAR_TYPE.to_owned()),
            ("forId", self.for_id.as_str().to_owned()),
            ("forPar", self.for_fingerprint.to_string()),
            ("trustId", self.trust_id.as_str().to_owned()),
            ("trustPar", self.trust_fingerprint.to_string()),
            ("trustCurve", self.trust_curve.to_owned()),
            ("type", REQUEST_TYPE.to_owned()),
            ("trustNonce", self.nonce.to_string()),
            ("alg", ALGORITHM.to_owned()),
        ]
    }
}

/// A signed request: the whole TXT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The request.
    pub request: PairingRequest,
    /// The HMAC-SHA256 digest over it, 64 uppercase hex digits on the wire.
    pub digest: [u8; 32],
}

impl SignedRequest {
    /// The TXT record, in the order the specification fixes (`txtvers` first, `digest` last).
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = self
            .request
            .signed_pairs()
            .into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect();
        pairs.push(("digest".to_owned(), upper_hex(&self.digest)));
        pairs
    }

    /// Reads a TXT record given as `(key, value)` strings, in wire order (`None`: a key
    /// without `=`). See the module documentation for the rules.
    pub fn from_properties<'a, I>(properties: I) -> Result<Self, RecordError>
    where
        I: IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    {
        let mut pairs: Vec<(&str, Option<&[u8]>)> = Vec::new();
        let mut len = 0usize;
        for (key, value) in properties {
            if pairs.len() == MAX_KEYS {
                return Err(RecordError::TooManyKeys {
                    count: MAX_KEYS + 1,
                });
            }
            len += key.len() + value.map_or(0, <[u8]>::len);
            if len > MAX_RECORD_LEN {
                return Err(RecordError::TooLong { len });
            }
            pairs.push((key, value));
        }
        match pairs.first() {
            Some((key, Some(b"1"))) if key.eq_ignore_ascii_case("txtvers") => {}
            _ => return Err(RecordError::Version),
        }
        let get = |field: &'static str| -> Result<&str, RecordError> {
            let (_, value) = pairs
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(field))
                .ok_or(RecordError::Missing(field))?;
            let value = value.ok_or(RecordError::NoValue(field))?;
            std::str::from_utf8(value).map_err(|_| RecordError::NotUtf8(field))
        };
        let fixed = |field: &'static str, allowed: &[&'static str]| {
            let value = get(field)?;
            allowed
                .iter()
                .copied()
                .find(|a| *a == value)
                .ok_or_else(|| RecordError::Unsupported {
                    field,
                    value: value.chars().take(64).collect(),
                })
        };
        let ship_id = |field: &'static str| {
            ShipId::new(get(field)?).map_err(|error| RecordError::ShipId { field, error })
        };
        fixed("parType", &[PAR_TYPE])?;
        fixed("type", &[REQUEST_TYPE])?;
        fixed("alg", &[ALGORITHM])?;
        let trust_curve = fixed("trustCurve", &CURVES)?;
        let request = PairingRequest {
            for_id: ship_id("forId")?,
            for_fingerprint: Fingerprint(strict_hex(get("forPar")?, "forPar")?),
            trust_id: ship_id("trustId")?,
            trust_fingerprint: Fingerprint(strict_hex(get("trustPar")?, "trustPar")?),
            trust_curve,
            nonce: Nonce(strict_hex(get("trustNonce")?, "trustNonce")?),
        };
        let digest = strict_hex(get("digest")?, "digest")?;
        Ok(SignedRequest { request, digest })
    }

    /// [`SignedRequest::from_properties`] over owned strings.
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Self, RecordError> {
        Self::from_properties(pairs.iter().map(|(k, v)| (k.as_str(), Some(v.as_bytes()))))
    }
}

/// Reads exactly `2 * N` uppercase hex digits.
fn strict_hex<const N: usize>(s: &str, field: &'static str) -> Result<[u8; N], RecordError> {
    let error = RecordError::Hex {
        field,
        digits: 2 * N,
    };
    let bytes = s.as_bytes();
    if bytes.len() != 2 * N {
        return Err(error);
    }
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let (Some(hi), Some(lo)) = (digit(pair[0]), digit(pair[1])) else {
            return Err(error);
        };
        out[i] = hi << 4 | lo;
    }
    Ok(out)
}

/// Uppercase hex of `bytes`.
pub(crate) fn upper_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

#[cfg(test)]
#[path = "record_tests.rs"]
mod tests;
