//! Forged certificates for TC_SHIP_SEC_001/002 and a raw TLS 1.2 client and server that present
//! them. ship-hub's own `ShipTls` refuses to carry such a certificate (it checks that the SKI is
//! SHA-1 of the key), so the tool builds these rustls configurations itself. They verify
//! nothing about the DUT: the only question is whether the DUT completes the handshake.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyIdMethod, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::crypto::{CryptoProvider, ring as ring_provider};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SignatureScheme};
use tokio::net::TcpStream;

use ship_hub::Ski;
use ship_hub::transport::FALLBACK_SERVER_NAME;

use super::peer::RawWebSocket;
use crate::accept_anything::AcceptAnything;

/// A certificate whose SubjectKeyIdentifier claims `claimed` while its key is fresh: the SKI is
/// not SHA-1 of the public key (built with rcgen's `KeyIdMethod::PreSpecified`).
pub(crate) struct ForgedCertificate {
    key: Arc<CertifiedKey>,
    /// The SKI the certificate claims.
    pub(crate) claimed: Ski,
    /// SHA-1 of its real public key.
    pub(crate) actual: Ski,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ship_hub::transport::ring_provider(
        vec![ring_provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
        vec![ring_provider::kx_group::SECP256R1],
    ))
}

impl ForgedCertificate {
    /// Creates a certificate claiming `claimed`.
    pub(crate) fn claiming(claimed: Ski) -> Result<Self, String> {
        let key_pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(|e| e.to_string())?;
        let actual = Ski::of_public_key(key_pair.public_key_raw());
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "ship-conformance forged");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.key_identifier_method = KeyIdMethod::PreSpecified(claimed.as_bytes().to_vec());
        let certificate = params.self_signed(&key_pair).map_err(|e| e.to_string())?;
        let signing_key = provider()
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                key_pair.serialize_der(),
            )))
            .map_err(|e| e.to_string())?;
        let key = Arc::new(CertifiedKey::new(
            vec![certificate.der().clone()],
            signing_key,
        ));
        Ok(ForgedCertificate {
            key,
            claimed,
            actual,
        })
    }

    /// A random SKI claim, bound to no key (TC_SHIP_SEC_001).
    pub(crate) fn unbound() -> Result<Self, String> {
        use ring::rand::SecureRandom as _;
        let mut bytes = [0u8; 20];
        ring::rand::SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "no system randomness".to_owned())?;
        Self::claiming(Ski::from_bytes(bytes))
    }

    /// Dials `addr` presenting the forged certificate as TLS 1.2 client. `Ok` means the DUT
    /// completed the handshake (with TLS 1.2 the client finishes only after the server's
    /// Finished, which the server sends only after accepting the client certificate).
    pub(crate) async fn dial(
        &self,
        addr: std::net::SocketAddr,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let mut config = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything::SHIP))
            .with_client_cert_resolver(Arc::new(Present(self.key.clone())));
        config.resumption = rustls::client::Resumption::disabled();
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("TCP connect: {e}"))?;
        let name = ServerName::try_from(FALLBACK_SERVER_NAME).map_err(|e| e.to_string())?;
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())
    }

    /// Runs the TLS 1.2 server side on `tcp` presenting the forged certificate. `Ok` means the
    /// DUT (the client) completed the handshake, i.e. accepted the certificate.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::server::TlsStream<TcpStream>, String> {
        let config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS12])
            .map_err(|e| e.to_string())?
            .with_client_cert_verifier(Arc::new(AcceptAnything::SHIP))
            .with_cert_resolver(Arc::new(Present(self.key.clone())));
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())
    }
}

/// The WebSocket upgrade (subprotocol `ship`) as client on a TLS connection the tool built.
pub(crate) async fn websocket_client(
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    addr: std::net::SocketAddr,
    path: &str,
) -> Result<RawWebSocket, String> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    let mut request = format!("wss://{addr}{path}")
        .into_client_request()
        .map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("ship"));
    let (ws, _) = tokio_tungstenite::client_async(request, tokio_rustls::TlsStream::Client(tls))
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

/// The WebSocket upgrade (subprotocol `ship`) as server on a TLS connection the tool built.
pub(crate) async fn websocket_server(
    tls: tokio_rustls::server::TlsStream<TcpStream>,
) -> Result<RawWebSocket, String> {
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    // The callback's signature (and its large error type) is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |_: &Request, mut response: Response| {
        response
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("ship"));
        Ok(response)
    };
    tokio_tungstenite::accept_hdr_async(tokio_rustls::TlsStream::Server(tls), callback)
        .await
        .map_err(|e| e.to_string())
}

#[derive(Debug)]
struct Present(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for Present {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

impl rustls::server::ResolvesServerCert for Present {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ship_hub::identity::parse_peer_certificate;

    #[test]
    fn forged_certificate_claims_the_ski_but_hashes_to_another() {
        let claimed = Ski::from_bytes([7; 20]);
        let forged = ForgedCertificate::claiming(claimed).unwrap();
        assert_ne!(forged.actual, claimed);
        let der = forged.key.cert[0].as_ref().to_vec();
        let error = parse_peer_certificate(&der).unwrap_err();
        assert!(error.to_string().contains(&claimed.to_string()), "{error}");
    }
}
