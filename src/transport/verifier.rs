//! SHIP certificate verifiers for rustls (docs/ship.md §2).
//!
//! SHIP peers use self-signed certificates and are trusted per SKI by the hub, so no chain is
//! built and no certificate authority is consulted. What the verifiers do check:
//!
//! * the certificate parses leniently and its SKI is SHA-1 of its P-256 key
//!   ([`parse_peer_certificate`]);
//! * on the dialling side, the SKI is the one we dialled for (else the handshake aborts with
//!   [`TlsError::UnexpectedSki`](super::TlsError::UnexpectedSki), before any WebSocket byte);
//! * the handshake signature verifies with that key (proof of possession), using ring directly
//!   because webpki would refuse certificates such as Elli's.
//!
//! Validity dates are deliberately not checked: SHIP certificates are long-lived, devices often
//! have no reliable clock, and the trust decision is the SKI.

use std::fmt;
use std::sync::Arc;

use ring::signature::{ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA384_ASN1, UnparsedPublicKey};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

use super::error::VerifierRejection;
use crate::Ski;
use crate::identity::parse_peer_certificate;

/// Called with a client's SKI from inside the client-certificate verifier, before the TLS
/// handshake completes.
pub type ClientCertificateObserver = Arc<dyn Fn(Ski) + Send + Sync>;

/// Verifies a handshake signature with the certificate's P-256 key.
///
/// TLS 1.3 binds the curve to the scheme, so only `ecdsa_secp256r1_sha256` is accepted there;
/// TLS 1.2 does not, so a P-256 key signing with SHA-384 is accepted too.
fn verify_signature(
    message: &[u8],
    certificate: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    tls13: bool,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    let peer = parse_peer_certificate(certificate)
        .map_err(|e| VerifierRejection::Certificate(e).into_rustls())?;
    let algorithm = match dss.scheme {
        SignatureScheme::ECDSA_NISTP256_SHA256 => &ECDSA_P256_SHA256_ASN1,
        SignatureScheme::ECDSA_NISTP384_SHA384 if !tls13 => &ECDSA_P256_SHA384_ASN1,
        _ => {
            return Err(rustls::Error::PeerMisbehaved(
                rustls::PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme,
            ));
        }
    };
    UnparsedPublicKey::new(algorithm, &peer.public_key)
        .verify(message, dss.signature())
        .map(|()| HandshakeSignatureValid::assertion())
        .map_err(|_| rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature))
}

fn schemes() -> Vec<SignatureScheme> {
    vec![
        SignatureScheme::ECDSA_NISTP256_SHA256,
        SignatureScheme::ECDSA_NISTP384_SHA384,
    ]
}

/// The dialling side's verifier: accepts exactly the server whose SKI we dialled for.
#[derive(Debug)]
pub(crate) struct ExpectedServer {
    pub(crate) expected: Ski,
}

impl ServerCertVerifier for ExpectedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let peer = parse_peer_certificate(end_entity)
            .map_err(|e| VerifierRejection::Certificate(e).into_rustls())?;
        if peer.ski != self.expected {
            tracing::warn!(expected = %self.expected, got = %peer.ski, "server presented an unexpected SKI");
            return Err(VerifierRejection::UnexpectedSki {
                expected: self.expected,
                got: peer.ski,
            }
            .into_rustls());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(message, cert, dss, false)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_signature(message, cert, dss, true)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes()
    }
}

/// The accepting side's verifier: requires a client certificate, accepts any well-formed SHIP
/// certificate (whether the SKI is trusted is the hub's decision, after the handshake) and
/// tells the observer the SKI early: as soon as the client's CertificateVerify signature has
/// been checked, i.e. once the client has proven it holds the key, but before the handshake
/// completes. A client that merely copies another node's certificate never reaches the
/// observer.
pub(crate) struct AnyShipClient {
    pub(crate) observer: Option<ClientCertificateObserver>,
}

impl fmt::Debug for AnyShipClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyShipClient")
            .field("observer", &self.observer.is_some())
            .finish()
    }
}

impl ClientCertVerifier for AnyShipClient {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        parse_peer_certificate(end_entity)
            .map_err(|e| VerifierRejection::Certificate(e).into_rustls())?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verified(verify_signature(message, cert, dss, false)?, cert)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verified(verify_signature(message, cert, dss, true)?, cert)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes()
    }
}

impl AnyShipClient {
    /// Reports the SKI of a client whose signature has just verified.
    fn verified(
        &self,
        valid: HandshakeSignatureValid,
        cert: &CertificateDer<'_>,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        if let Some(observer) = &self.observer {
            let peer = parse_peer_certificate(cert)
                .map_err(|e| VerifierRejection::Certificate(e).into_rustls())?;
            observer(peer.ski);
        }
        Ok(valid)
    }
}
