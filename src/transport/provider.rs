//! The rustls [`CryptoProvider`] ship-hub's TLS runs on: *ring*'s cipher suites and key
//! exchange groups, assembled from their parts.
//!
//! rustls 0.23.48 deprecated `rustls::crypto::ring::default_provider()` (its post-quantum key
//! exchange is aws-lc-rs only), and every embedder's build printed the warning. SHIP uses
//! secp256r1 (docs/tls.md), so nothing is lost: the provider is built here from what rustls and
//! rustls-webpki still publish for *ring*: the cipher suites, the key exchange groups, the
//! signature verification algorithms, the key loader; and *ring*'s random numbers.

use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::crypto::{
    CryptoProvider, GetRandomFailed, KeyProvider, SecureRandom, SupportedKxGroup,
    WebPkiSupportedAlgorithms,
};
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::SigningKey;
use rustls::{SupportedCipherSuite, crypto::ring as ring_provider};
use webpki::ring as algorithms;

/// A *ring*-backed provider with these cipher suites and key exchange groups (in this order of
/// preference), without rustls's deprecated `ring::default_provider()`.
pub fn ring_provider(
    cipher_suites: Vec<SupportedCipherSuite>,
    kx_groups: Vec<&'static dyn SupportedKxGroup>,
) -> CryptoProvider {
    CryptoProvider {
        cipher_suites,
        kx_groups,
        signature_verification_algorithms: SIGNATURE_ALGORITHMS,
        secure_random: &RingRandom,
        key_provider: &RingKeys,
    }
}

/// The ECDSA algorithms of *ring*'s own provider (the only ones SHIP certificates use): P-256
/// and P-384 keys, SHA-256 and SHA-384.
static SIGNATURE_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        algorithms::ECDSA_P256_SHA256,
        algorithms::ECDSA_P256_SHA384,
        algorithms::ECDSA_P384_SHA256,
        algorithms::ECDSA_P384_SHA384,
    ],
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[algorithms::ECDSA_P384_SHA384, algorithms::ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[algorithms::ECDSA_P256_SHA256, algorithms::ECDSA_P384_SHA256],
        ),
    ],
};

/// *ring*'s system random numbers.
#[derive(Debug)]
struct RingRandom;

impl SecureRandom for RingRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        use ring::rand::SecureRandom as _;
        ring::rand::SystemRandom::new()
            .fill(buf)
            .map_err(|_| GetRandomFailed)
    }
}

/// Loads private keys with *ring* (ECDSA, Ed25519, RSA).
#[derive(Debug)]
struct RingKeys;

impl KeyProvider for RingKeys {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, rustls::Error> {
        ring_provider::sign::any_supported_type(&key_der)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_provider_signs_with_a_ship_key_and_fills_random_bytes() {
        let identity = crate::identity::Identity::generate(&crate::identity::CertificateSubject {
            common_name: "provider".into(),
            organization: String::new(),
            country: String::new(),
        })
        .unwrap();
        let provider = ring_provider(
            vec![ring_provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
            vec![ring_provider::kx_group::SECP256R1],
        );
        let key = provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(
                identity.private_key_der().to_vec().into(),
            ))
            .unwrap();
        assert!(
            key.choose_scheme(&[SignatureScheme::ECDSA_NISTP256_SHA256])
                .is_some()
        );
        let mut bytes = [0u8; 32];
        provider.secure_random.fill(&mut bytes).unwrap();
        assert_ne!(bytes, [0u8; 32]);
    }
}
