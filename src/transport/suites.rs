//! The TLS 1.2 cipher suites a SHIP node offers (SHIP §9), by name.

use std::fmt;
use std::str::FromStr;

use rustls::SupportedCipherSuite;
use rustls::crypto::ring::cipher_suite as ring_suites;

use super::cbc;

/// A TLS 1.2 cipher suite SHIP permits (all ECDHE with ECDSA certificates on secp256r1).
///
/// [`TlsSuite::ALL`] is the default offer, in server preference order. The CCM_8 suites are
/// deliberately absent (SHIP's installation requirements say they SHOULD NOT be used).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TlsSuite {
    /// `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256` (rustls).
    Aes128GcmSha256,
    /// `TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384` (rustls).
    Aes256GcmSha384,
    /// `TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256` (rustls).
    Chacha20Poly1305Sha256,
    /// `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256`, mandatory in SHIP §9 (ship-hub's own
    /// implementation, see `docs/tls.md`).
    Aes128CbcSha256,
}

impl TlsSuite {
    /// Every suite, in the order a server prefers them and a client offers them: the AEAD suites
    /// first, so that a peer able to do GCM never gets CBC.
    pub const ALL: [TlsSuite; 4] = [
        TlsSuite::Aes128GcmSha256,
        TlsSuite::Aes256GcmSha384,
        TlsSuite::Chacha20Poly1305Sha256,
        TlsSuite::Aes128CbcSha256,
    ];

    /// The IANA name, e.g. `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256`.
    pub fn name(self) -> &'static str {
        match self {
            TlsSuite::Aes128GcmSha256 => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            TlsSuite::Aes256GcmSha384 => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            TlsSuite::Chacha20Poly1305Sha256 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
            TlsSuite::Aes128CbcSha256 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        }
    }

    /// The OpenSSL name, e.g. `ECDHE-ECDSA-AES128-SHA256` (as `openssl s_client -cipher` takes
    /// it).
    pub fn openssl_name(self) -> &'static str {
        match self {
            TlsSuite::Aes128GcmSha256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
            TlsSuite::Aes256GcmSha384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
            TlsSuite::Chacha20Poly1305Sha256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
            TlsSuite::Aes128CbcSha256 => "ECDHE-ECDSA-AES128-SHA256",
        }
    }

    /// The rustls cipher suite.
    pub fn rustls_suite(self) -> SupportedCipherSuite {
        match self {
            TlsSuite::Aes128GcmSha256 => ring_suites::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TlsSuite::Aes256GcmSha384 => ring_suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TlsSuite::Chacha20Poly1305Sha256 => {
                ring_suites::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            }
            TlsSuite::Aes128CbcSha256 => cbc::TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
        }
    }

    /// The suite with this rustls identifier, if it is one of ours.
    pub fn from_rustls(suite: rustls::CipherSuite) -> Option<TlsSuite> {
        TlsSuite::ALL
            .into_iter()
            .find(|ours| ours.rustls_suite().suite() == suite)
    }
}

impl fmt::Display for TlsSuite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the [`TlsSuite`]s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown TLS cipher suite {0:?}; known: TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, \
     TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, \
     TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 (or their OpenSSL names)"
)]
pub struct UnknownTlsSuite(pub String);

impl FromStr for TlsSuite {
    type Err = UnknownTlsSuite;

    /// Takes the IANA name or the OpenSSL name, in any letter case.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let wanted = text.trim();
        TlsSuite::ALL
            .into_iter()
            .find(|suite| {
                suite.name().eq_ignore_ascii_case(wanted)
                    || suite.openssl_name().eq_ignore_ascii_case(wanted)
            })
            .ok_or_else(|| UnknownTlsSuite(text.to_owned()))
    }
}

/// Parses a comma-separated list such as `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
/// TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256` (spaces allowed, duplicates dropped).
pub fn parse_tls_suites(text: &str) -> Result<Vec<TlsSuite>, UnknownTlsSuite> {
    let mut suites = Vec::new();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let suite: TlsSuite = part.parse()?;
        if !suites.contains(&suite) {
            suites.push(suite);
        }
    }
    Ok(suites)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_both_spellings() {
        for suite in TlsSuite::ALL {
            assert_eq!(suite.name().parse::<TlsSuite>(), Ok(suite));
            assert_eq!(suite.openssl_name().parse::<TlsSuite>(), Ok(suite));
            assert_eq!(suite.name().to_lowercase().parse::<TlsSuite>(), Ok(suite));
            assert_eq!(suite.to_string(), suite.name());
            assert_eq!(
                format!("{:?}", suite.rustls_suite().suite()),
                suite.name(),
                "our name is rustls' name"
            );
            assert_eq!(
                TlsSuite::from_rustls(suite.rustls_suite().suite()),
                Some(suite)
            );
        }
        assert!(
            "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"
                .parse::<TlsSuite>()
                .is_err()
        );
        assert!("".parse::<TlsSuite>().is_err());
    }

    #[test]
    fn a_list_parses_in_order_without_duplicates() {
        let list = parse_tls_suites(
            " TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256, ECDHE-ECDSA-AES128-GCM-SHA256,\
             tls_ecdhe_ecdsa_with_aes_128_cbc_sha256 ",
        )
        .unwrap();
        assert_eq!(list, [TlsSuite::Aes128CbcSha256, TlsSuite::Aes128GcmSha256]);
        assert_eq!(
            parse_tls_suites("TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8"),
            Err(UnknownTlsSuite(
                "TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8".to_owned()
            ))
        );
    }
}
