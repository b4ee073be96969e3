//! Lenient parsing of a peer's certificate: only the SKI and the public key are taken from it.
//!
//! SHIP trusts a peer per SKI (§12.1), never per certificate authority, and the TLS handshake
//! signature proves that the peer holds the private key. Everything else in the certificate
//! is irrelevant to SHIP, and some deployed devices get it wrong: Elli wallboxes encode the
//! BasicConstraints BOOLEAN TRUE as `0x01`, which strict DER parsers (Go's, webpki's) reject.
//! This parser therefore walks only the path it needs (tbsCertificate → SubjectPublicKeyInfo,
//! extensions → SubjectKeyIdentifier) and ignores the contents of everything else.
//!
//! What it does insist on (docs/ship.md §1): a P-256 key, a 20-byte SKI, and an SKI equal
//! to SHA-1 of the 65-byte public point. Without the last check anyone could present any SKI.

use super::der::{Reader, tag};
use crate::Ski;

/// `1.2.840.10045.2.1` (id-ecPublicKey), DER content octets.
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// `1.2.840.10045.3.1.7` (prime256v1 / secp256r1), DER content octets.
const OID_PRIME256V1: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// `2.5.29.14` (id-ce-subjectKeyIdentifier), DER content octets.
const OID_SUBJECT_KEY_IDENTIFIER: &[u8] = &[0x55, 0x1D, 0x0E];

/// Length of an uncompressed P-256 point (`04 ‖ X ‖ Y`).
pub const P256_POINT_LEN: usize = 65;

/// What SHIP needs from a peer certificate.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The SKI from the SubjectKeyIdentifier extension, verified to be SHA-1 of
    /// [`public_key`](Self::public_key).
    pub ski: Ski,
    /// The 65-byte uncompressed P-256 public point (`04 ‖ X ‖ Y`).
    pub public_key: [u8; P256_POINT_LEN],
}

impl std::fmt::Debug for PeerCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerCertificate")
            .field("ski", &self.ski)
            .finish_non_exhaustive()
    }
}

/// Why a certificate was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateError {
    /// The bytes are not a DER X.509 certificate (truncated, garbage, or wrong structure).
    #[error("malformed certificate: {reason}")]
    Malformed {
        /// What was wrong, for the log.
        reason: &'static str,
    },
    /// The public key is not an EC key on P-256, which SHIP (§9) requires.
    #[error("the certificate's public key is not an ECDSA P-256 key (SHIP requires P-256)")]
    UnsupportedKey,
    /// The P-256 public key is not a 65-byte uncompressed point.
    #[error(
        "the certificate's P-256 public key is not an uncompressed 65-byte point (found {length} bytes)"
    )]
    InvalidPublicKey {
        /// Length of the key found.
        length: usize,
    },
    /// The certificate has no SubjectKeyIdentifier extension: SHIP (§12.1) names a node by it.
    #[error("the certificate has no SubjectKeyIdentifier extension, which SHIP requires")]
    MissingSki,
    /// The SubjectKeyIdentifier is not 20 bytes long.
    #[error("the certificate's SubjectKeyIdentifier is {length} bytes long; SHIP requires 20")]
    SkiWrongLength {
        /// Length found.
        length: usize,
    },
    /// The SubjectKeyIdentifier is not SHA-1 of the certificate's own public key.
    #[error(
        "the certificate claims SKI {claimed} but SHA-1 of its public key is {computed}: \
         the SKI is not bound to the key (certificates made by ship-go before mid-2024 hashed \
         the private key and must be regenerated)"
    )]
    SkiNotBoundToKey {
        /// The SKI written in the certificate.
        claimed: Ski,
        /// SHA-1 of the certificate's public point.
        computed: Ski,
    },
}

fn malformed(reason: &'static str) -> CertificateError {
    CertificateError::Malformed { reason }
}

/// Extracts the SKI and the P-256 public key from a DER certificate, leniently (see the module
/// documentation), and checks that the SKI is SHA-1 of the public key (docs/ship.md §1).
///
/// Never panics, whatever the input.
pub fn parse_peer_certificate(der: &[u8]) -> Result<PeerCertificate, CertificateError> {
    let (public_key, claimed) = extract_key_and_ski(der)?;
    let computed = Ski::of_public_key(&public_key);
    if claimed != computed {
        return Err(CertificateError::SkiNotBoundToKey { claimed, computed });
    }
    Ok(PeerCertificate {
        ski: claimed,
        public_key,
    })
}

/// Walks the certificate and returns the public point and the claimed SKI, without checking
/// that they belong together.
fn extract_key_and_ski(der: &[u8]) -> Result<([u8; P256_POINT_LEN], Ski), CertificateError> {
    let mut outer = Reader::new(der);
    let certificate = outer.expect(tag::SEQUENCE, "certificate is not a SEQUENCE")?;
    let mut certificate = Reader::new(certificate);
    let tbs = certificate.expect(tag::SEQUENCE, "tbsCertificate is not a SEQUENCE")?;
    let mut tbs = Reader::new(tbs);

    if tbs.peek_tag() == Some(tag::CONTEXT_0) {
        tbs.skip()?; // version
    }
    tbs.expect(tag::INTEGER, "serial number is not an INTEGER")?;
    tbs.expect(tag::SEQUENCE, "signature algorithm is not a SEQUENCE")?;
    tbs.expect(tag::SEQUENCE, "issuer is not a SEQUENCE")?;
    tbs.expect(tag::SEQUENCE, "validity is not a SEQUENCE")?;
    tbs.expect(tag::SEQUENCE, "subject is not a SEQUENCE")?;
    let spki = tbs.expect(tag::SEQUENCE, "subjectPublicKeyInfo is not a SEQUENCE")?;
    let public_key = parse_spki(spki)?;

    let mut ski = None;
    while !tbs.is_empty() {
        let element = tbs.read()?;
        if element.tag == tag::CONTEXT_3 {
            ski = find_ski(element.value)?;
        }
        // [1] issuerUniqueID and [2] subjectUniqueID are skipped.
    }
    let ski = ski.ok_or(CertificateError::MissingSki)?;
    Ok((public_key, ski))
}

fn parse_spki(spki: &[u8]) -> Result<[u8; P256_POINT_LEN], CertificateError> {
    let mut spki = Reader::new(spki);
    let algorithm = spki.expect(tag::SEQUENCE, "key algorithm is not a SEQUENCE")?;
    let mut algorithm = Reader::new(algorithm);
    let key_type = algorithm.expect(tag::OID, "key algorithm is not an OID")?;
    if key_type != OID_EC_PUBLIC_KEY {
        return Err(CertificateError::UnsupportedKey);
    }
    let curve = algorithm
        .read()
        .map_err(|_| CertificateError::UnsupportedKey)?;
    if curve.tag != tag::OID || curve.value != OID_PRIME256V1 {
        return Err(CertificateError::UnsupportedKey);
    }
    let bits = spki.expect(tag::BIT_STRING, "public key is not a BIT STRING")?;
    let (&unused_bits, point) = bits
        .split_first()
        .ok_or(malformed("empty public key BIT STRING"))?;
    if unused_bits != 0 {
        return Err(malformed("public key BIT STRING has unused bits"));
    }
    if point.first() != Some(&0x04) {
        return Err(CertificateError::InvalidPublicKey {
            length: point.len(),
        });
    }
    point
        .try_into()
        .map_err(|_| CertificateError::InvalidPublicKey {
            length: point.len(),
        })
}

/// Looks through `[3] { SEQUENCE OF Extension }` for the SubjectKeyIdentifier.
fn find_ski(explicit: &[u8]) -> Result<Option<Ski>, CertificateError> {
    let mut explicit = Reader::new(explicit);
    let extensions = explicit.expect(tag::SEQUENCE, "extensions are not a SEQUENCE")?;
    let mut extensions = Reader::new(extensions);
    while !extensions.is_empty() {
        let extension = extensions.expect(tag::SEQUENCE, "extension is not a SEQUENCE")?;
        let mut extension = Reader::new(extension);
        let oid = extension.expect(tag::OID, "extension id is not an OID")?;
        if extension.peek_tag() == Some(tag::BOOLEAN) {
            extension.skip()?; // `critical`, whatever its encoding
        }
        let value =
            extension.expect(tag::OCTET_STRING, "extension value is not an OCTET STRING")?;
        if oid != OID_SUBJECT_KEY_IDENTIFIER {
            continue;
        }
        let key_identifier = Reader::new(value).expect(
            tag::OCTET_STRING,
            "SubjectKeyIdentifier is not an OCTET STRING",
        )?;
        let ski =
            Ski::from_slice(key_identifier).map_err(|_| CertificateError::SkiWrongLength {
                length: key_identifier.len(),
            })?;
        return Ok(Some(ski));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = parse_peer_certificate(&bytes);
        }

        #[test]
        fn random_sequences_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut der = vec![0x30, 0x82, (body.len() >> 8) as u8, body.len() as u8];
            der.extend_from_slice(&body);
            let _ = parse_peer_certificate(&der);
        }
    }

    #[test]
    fn empty_input_is_malformed() {
        assert!(matches!(
            parse_peer_certificate(&[]),
            Err(CertificateError::Malformed { .. })
        ));
    }
}
