//! The digest: HMAC-SHA256 over the signed fields, keyed with the secret and the nonce
//! (SHIP Pairing Service TS 1.0.0 §7).
//!
//! * The message is the ten signed `key=value` pairs, each followed by `;`, in the record's
//!   order (`txtvers=1;parType=fpSha256;forId=…;…;alg=hmacSha256;`). It covers both certificate
//!   fingerprints, so a device in the middle cannot put its own certificate in the request.
//! * The key is the secret's bytes followed by the nonce's 16 bytes.
//! * Verification compares in constant time.

use std::fmt;

use subtle::ConstantTimeEq;

use super::record::{PairingRequest, SignedRequest};

/// The most bytes a secret may have. Secrets printed with devices are 16 bytes.
pub const MAX_SECRET_LEN: usize = 64;

/// The pairing secret printed with a device (in hex, e.g. `7A37DCF81BDB50F8E92CFA4160CCB3DE`).
///
/// Never printed: `Debug` shows `PairingSecret(<redacted>)`. Its bytes are overwritten when it
/// is dropped. Equality is constant time.
#[derive(Clone)]
pub struct PairingSecret(Vec<u8>);

/// Why a pairing secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Empty.
    #[error("the pairing secret is empty")]
    Empty,
    /// Longer than [`MAX_SECRET_LEN`] bytes.
    #[error("the pairing secret has {len} bytes, at most {MAX_SECRET_LEN} are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Not hexadecimal (or an odd number of digits).
    #[error("the pairing secret is not hexadecimal (two digits per byte; spaces allowed)")]
    NotHex,
}

impl PairingSecret {
    /// Wraps raw bytes (1 to [`MAX_SECRET_LEN`]).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, SecretError> {
        let bytes = bytes.into();
        match bytes.len() {
            0 => Err(SecretError::Empty),
            len if len > MAX_SECRET_LEN => Err(SecretError::TooLong { len }),
            _ => Ok(PairingSecret(bytes)),
        }
    }

    /// Reads the printed hex form; either case, whitespace and `-` ignored.
    pub fn from_hex(text: &str) -> Result<Self, SecretError> {
        let digits: Vec<u8> = text
            .bytes()
            .filter(|b| !b.is_ascii_whitespace() && *b != b'-')
            .collect();
        if !digits.len().is_multiple_of(2) {
            return Err(SecretError::NotHex);
        }
        let mut bytes = Vec::with_capacity(digits.len() / 2);
        for pair in digits.chunks_exact(2) {
            let text = std::str::from_utf8(pair).map_err(|_| SecretError::NotHex)?;
            bytes.push(u8::from_str_radix(text, 16).map_err(|_| SecretError::NotHex)?);
        }
        Self::new(bytes)
    }

    /// The secret in its printed form: upper-case hex digits. Handle with care: this is the
    /// secret itself (for storing it where only its owner reads it, or writing a QR code).
    pub fn reveal_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02X}")).collect()
    }

    fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl PartialEq for PairingSecret {
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len() && bool::from(self.0.ct_eq(&other.0))
    }
}

impl Eq for PairingSecret {}

impl fmt::Debug for PairingSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairingSecret(<redacted>)")
    }
}

impl Drop for PairingSecret {
    fn drop(&mut self) {
        self.0.iter_mut().for_each(|b| *b = 0);
    }
}

/// The message the digest covers (§7.4).
pub fn digest_message(request: &PairingRequest) -> String {
    let mut message = String::with_capacity(320);
    for (key, value) in request.signed_pairs() {
        message.push_str(key);
        message.push('=');
        message.push_str(&value);
        message.push(';');
    }
    message
}

/// The digest of `request` under `secret`.
pub fn digest(request: &PairingRequest, secret: &PairingSecret) -> [u8; 32] {
    let mut key = Vec::with_capacity(secret.as_bytes().len() + 16);
    key.extend_from_slice(secret.as_bytes());
    key.extend_from_slice(request.nonce.as_bytes());
    let digest = crate::crypto::hmac_sha256(&key, digest_message(request).as_bytes());
    key.iter_mut().for_each(|b| *b = 0);
    digest
}

/// Signs `request`: the record the requesting device announces.
pub fn sign(request: &PairingRequest, secret: &PairingSecret) -> SignedRequest {
    SignedRequest {
        digest: digest(request, secret),
        request: request.clone(),
    }
}

/// Whether `signed` carries the digest `secret` gives (constant time).
pub fn verify(signed: &SignedRequest, secret: &PairingSecret) -> bool {
    bool::from(digest(&signed.request, secret).ct_eq(&signed.digest))
}

#[cfg(test)]
mod tests {
    use super::super::record::upper_hex;
    use super::super::tests::{ANNEX_A_DIGEST, annex_a};
    use super::*;
    use crate::pairing_service::Fingerprint;

    #[test]
    fn the_message_is_the_one_annex_a_gives() {
        let (request, _) = annex_a();
        assert_eq!(
            digest_message(&request),
            "txtvers=1;parType=fpSha256;forId=i:983327_u:C8277H008F-3;\
             forPar=C74B7855D3479415F62CC01E5F6D9A93EBC676057D85417ADA16FD1384338943;\
             trustId=i:46925_u:43652bk-2-gt1;\
             trustPar=2CC72E781F7A7D2A08D50196C50FEDF0F7BA583F43F76C8C0DDEC9EEF0D005B4;\
             trustCurve=secp256r1;type=addCu;trustNonce=BDCEE427FA7208DF3C1F2A749BA6F4D4;\
             alg=hmacSha256;"
        );
    }

    #[test]
    fn the_digest_is_annex_a_test_vector() {
        let (request, secret) = annex_a();
        assert_eq!(upper_hex(&digest(&request, &secret)), ANNEX_A_DIGEST);
        assert!(verify(&sign(&request, &secret), &secret));
    }

    #[test]
    fn a_wrong_secret_or_a_substituted_certificate_fails() {
        let (request, secret) = annex_a();
        let signed = sign(&request, &secret);
        let wrong = PairingSecret::from_hex("00000000000000000000000000000000").unwrap();
        assert!(!verify(&signed, &wrong));
        let mut swapped = signed.clone();
        swapped.request.trust_fingerprint = Fingerprint::from_bytes([7; 32]);
        assert!(!verify(&swapped, &secret));
        let mut other_nonce = signed;
        other_nonce.request.nonce = crate::pairing_service::Nonce::from_bytes([1; 16]);
        assert!(!verify(&other_nonce, &secret));
    }

    #[test]
    fn secrets_are_parsed_strictly_and_never_printed() {
        let secret = PairingSecret::from_hex("7a37 dcf8-1bdb50f8e92cfa4160ccb3de\n").unwrap();
        assert_eq!(
            secret,
            PairingSecret::from_hex("7A37DCF81BDB50F8E92CFA4160CCB3DE").unwrap()
        );
        assert_eq!(format!("{secret:?}"), "PairingSecret(<redacted>)");
        assert_eq!(PairingSecret::from_hex(""), Err(SecretError::Empty));
        assert_eq!(PairingSecret::from_hex("ABC"), Err(SecretError::NotHex));
        assert_eq!(PairingSecret::from_hex("ZZ"), Err(SecretError::NotHex));
        assert_eq!(
            PairingSecret::from_hex(&"AB".repeat(65)),
            Err(SecretError::TooLong { len: 65 })
        );
    }
}
