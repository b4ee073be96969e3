//! TLS handshakes that must fail, each with its own error; SNI and resumption.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyIdMethod, KeyPair};
use rustls::SignatureScheme;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use ship_hub::Ski;
use ship_hub::identity::CertificateError;
use ship_hub::transport::{
    FALLBACK_SERVER_NAME, ShipTls, TlsError, TlsOptions, TlsStream, TransportError, WsOptions, dial,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{accept_one, accept_tls, connect_tls, identity, listener, ship_tls};

#[tokio::test]
async fn unexpected_ski_aborts_during_tls_before_any_websocket_byte() {
    for offer_tls13 in [false, true] {
        let mut options = TlsOptions::default();
        options.offer_tls13 = offer_tls13;
        let server_id = identity("server");
        let client_id = identity("client");
        let wrong = identity("someone-else").ski();
        let server_tls = ShipTls::new(&server_id, options.clone()).unwrap();
        let client_tls = ShipTls::new(&client_id, options).unwrap();
        let (listener, addr) = listener().await;
        let ws = WsOptions::default();
        let (accepted, dialled) = tokio::join!(
            accept_one(&listener, &server_tls, &ws),
            dial(&client_tls, addr, wrong, "/ship/", &ws)
        );
        match dialled {
            Err(TransportError::Tls(TlsError::UnexpectedSki { expected, got })) => {
                assert_eq!(expected, wrong);
                assert_eq!(got, server_id.ski());
            }
            other => panic!("expected UnexpectedSki (tls13: {offer_tls13}), got {other:?}"),
        }
        // The server never completed TLS, so it never reached the HTTP upgrade.
        match accepted {
            Err(TransportError::Tls(TlsError::AlertReceived(_))) => {}
            Err(other) => panic!("expected a TLS alert on the server, got {other:?}"),
            Ok(_) => panic!("the server completed the handshake with a refused client"),
        }
    }
}

use ship_test_support::AcceptAnything;

fn raw_client_builder()
-> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    rustls::ClientConfig::builder_with_provider(Arc::new(ship_hub::transport::ring_provider(
        rustls::crypto::ring::DEFAULT_CIPHER_SUITES.to_vec(),
        rustls::crypto::ring::DEFAULT_KX_GROUPS.to_vec(),
    )))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(AcceptAnything::EVERY_SCHEME))
}

/// Runs a raw rustls client against a SHIP server and returns the server's result.
async fn server_result_against(
    client: rustls::ClientConfig,
) -> Result<(TlsStream<TcpStream>, Ski), TransportError> {
    let server_id = identity("server");
    let server_tls = ship_tls(&server_id);
    let (listener, addr) = listener().await;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let client = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("ship-node.local").unwrap();
        let result = connector.connect(name, tcp).await;
        if let Ok(mut stream) = result {
            // Under TLS 1.2 the refusal arrives in the handshake; make sure we see it anyway.
            let mut buf = [0u8; 1];
            let _ = stream.read(&mut buf).await;
        }
    };
    let (accepted, ()) = tokio::join!(accept_tls(&listener, &server_tls), client);
    accepted
}

fn client_with_certificate(params: CertificateParams) -> rustls::ClientConfig {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = params.self_signed(&key).unwrap();
    raw_client_builder()
        .with_client_auth_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap()
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let result = server_result_against(raw_client_builder().with_no_client_auth()).await;
    assert!(
        matches!(
            result,
            Err(TransportError::Tls(TlsError::NoClientCertificate))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn client_certificate_without_ski_is_refused() {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::NoCa;
    let result = server_result_against(client_with_certificate(params)).await;
    assert!(
        matches!(
            result,
            Err(TransportError::Tls(TlsError::Certificate(
                CertificateError::MissingSki
            )))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn client_certificate_with_ski_not_bound_to_its_key_is_refused() {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_identifier_method = KeyIdMethod::PreSpecified(vec![0x42; 20]);
    let result = server_result_against(client_with_certificate(params)).await;
    assert!(
        matches!(
            result,
            Err(TransportError::Tls(TlsError::Certificate(
                CertificateError::SkiNotBoundToKey { .. }
            )))
        ),
        "{result:?}"
    );
}

/// Presents someone else's certificate while signing with its own key.
#[derive(Debug)]
struct StolenCertificate(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for StolenCertificate {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn client_presenting_a_certificate_it_has_no_key_for_fails_and_is_not_observed() {
    let victim = identity("victim");
    let thief = identity("thief");
    let provider = ship_hub::transport::ring_provider(
        rustls::crypto::ring::DEFAULT_CIPHER_SUITES.to_vec(),
        rustls::crypto::ring::DEFAULT_KX_GROUPS.to_vec(),
    );
    let thief_key = provider
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            thief.private_key_der().to_vec(),
        )))
        .unwrap();
    let stolen = rustls::sign::CertifiedKey::new(
        vec![CertificateDer::from(victim.certificate_der().to_vec())],
        thief_key,
    );
    let client = raw_client_builder()
        .with_client_cert_resolver(Arc::new(StolenCertificate(Arc::new(stolen))));

    let observed = Arc::new(Mutex::new(Vec::new()));
    let seen = observed.clone();
    let server_id = identity("server");
    let server_tls = ship_tls(&server_id)
        .with_client_certificate_observer(Arc::new(move |ski| seen.lock().unwrap().push(ski)));
    let (listener, addr) = listener().await;
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let client = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let _ = connector
            .connect(ServerName::try_from("x.local").unwrap(), tcp)
            .await;
    };
    let (accepted, ()) = tokio::join!(accept_tls(&listener, &server_tls), client);
    assert!(
        matches!(accepted, Err(TransportError::Tls(TlsError::BadSignature))),
        "{accepted:?}"
    );
    assert!(observed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn observer_sees_the_client_ski_before_the_handshake_completes() {
    let server_id = identity("server");
    let client_id = identity("client");
    let accepted_flag = Arc::new(AtomicBool::new(false));
    let observed = Arc::new(Mutex::new(Vec::new()));
    let (flag, seen) = (accepted_flag.clone(), observed.clone());
    let server_tls = ship_tls(&server_id).with_client_certificate_observer(Arc::new(move |ski| {
        seen.lock()
            .unwrap()
            .push((ski, flag.load(Ordering::SeqCst)));
    }));
    let client_tls = ship_tls(&client_id);
    let (listener, addr) = listener().await;
    let server = async {
        let result = accept_tls(&listener, &server_tls).await;
        accepted_flag.store(true, Ordering::SeqCst);
        result
    };
    let (accepted, connected) =
        tokio::join!(server, connect_tls(addr, &client_tls, server_id.ski()));
    accepted.unwrap();
    connected.unwrap();
    assert_eq!(*observed.lock().unwrap(), vec![(client_id.ski(), false)]);
}

#[tokio::test]
async fn plain_tcp_garbage_on_the_tls_port_is_not_tls() {
    let server_id = identity("server");
    let server_tls = ship_tls(&server_id);
    let (listener, addr) = listener().await;
    let client = async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /ship/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tcp.read_to_end(&mut buf).await;
    };
    let (accepted, ()) = tokio::join!(accept_tls(&listener, &server_tls), client);
    assert!(
        matches!(
            accepted,
            Err(TransportError::Tls(TlsError::InvalidMessage(_)))
        ),
        "{accepted:?}"
    );
}

/// A TLS 1.2 ClientHello offering only TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (0xC0AE), which SHIP
/// lists but says SHOULD NOT be used, and TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA (0xC009), which it
/// does not list.
fn ccm_only_client_hello() -> Vec<u8> {
    let mut extensions = Vec::new();
    // supported_groups: secp256r1
    extensions.extend_from_slice(&[0x00, 0x0A, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17]);
    // ec_point_formats: uncompressed
    extensions.extend_from_slice(&[0x00, 0x0B, 0x00, 0x02, 0x01, 0x00]);
    // signature_algorithms: ecdsa_secp256r1_sha256
    extensions.extend_from_slice(&[0x00, 0x0D, 0x00, 0x04, 0x00, 0x02, 0x04, 0x03]);
    let mut body = vec![0x03, 0x03]; // TLS 1.2
    body.extend_from_slice(&[0x5A; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0x00, 0x04, 0xC0, 0x09, 0xC0, 0xAE]);
    body.extend_from_slice(&[0x01, 0x00]); // null compression
    body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    body.extend_from_slice(&extensions);
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test]
async fn client_offering_only_ccm_8_gets_a_named_error() {
    let server_id = identity("server");
    let server_tls = ship_tls(&server_id);
    let (listener, addr) = listener().await;
    let client = async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&ccm_only_client_hello()).await.unwrap();
        let mut buf = Vec::new();
        let _ = tcp.read_to_end(&mut buf).await;
        buf
    };
    let (accepted, answer) = tokio::join!(accept_tls(&listener, &server_tls), client);
    let error = accepted.expect_err("the handshake fails");
    assert!(
        matches!(error, TransportError::Tls(TlsError::NoCommonCipherSuite)),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"),
        "{error}"
    );
    // The server answered with a fatal alert record (content type 21).
    assert_eq!(answer.first(), Some(&0x15));
}

#[tokio::test]
async fn client_sends_a_dns_form_sni_when_dialling_an_ip() {
    let client_id = identity("client");
    let client_tls = ship_tls(&client_id);
    let (listener, addr) = listener().await;
    let server = async {
        let (tcp, _) = listener.accept().await.unwrap();
        let start = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), tcp)
            .await
            .unwrap();
        start.client_hello().server_name().map(str::to_owned)
    };
    let client = async {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let _ = client_tls
            .connect(tcp, &addr.ip().to_string(), Ski::from_bytes([0; 20]))
            .await;
    };
    let (sni, ()) = tokio::join!(server, client);
    assert_eq!(sni.as_deref(), Some(FALLBACK_SERVER_NAME));
}

#[tokio::test]
async fn server_never_resumes_a_session() {
    // A client that would resume if it could (default rustls resumption, one shared config).
    let client_id = identity("client");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        client_id.private_key_der().to_vec(),
    ));
    let client = Arc::new(
        raw_client_builder()
            .with_client_auth_cert(
                vec![CertificateDer::from(client_id.certificate_der().to_vec())],
                key,
            )
            .unwrap(),
    );
    let server_id = identity("server");
    let server_tls = ship_tls(&server_id);
    let (listener, addr) = listener().await;
    for _ in 0..2 {
        let connector = tokio_rustls::TlsConnector::from(client.clone());
        let client = async {
            let tcp = TcpStream::connect(addr).await.unwrap();
            connector
                .connect(ServerName::try_from("x.local").unwrap(), tcp)
                .await
                .unwrap()
        };
        let (accepted, stream) = tokio::join!(accept_tls(&listener, &server_tls), client);
        accepted.unwrap();
        assert_eq!(
            stream.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Full)
        );
    }
}

#[tokio::test]
async fn client_never_resumes_a_session() {
    // A server that would resume if asked (rustls defaults: session cache, TLS 1.2 session ids).
    let server_id = identity("server");
    let server_config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(ship_hub::transport::ring_provider(
            rustls::crypto::ring::DEFAULT_CIPHER_SUITES.to_vec(),
            rustls::crypto::ring::DEFAULT_KX_GROUPS.to_vec(),
        )))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(server_id.certificate_der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                server_id.private_key_der().to_vec(),
            )),
        )
        .unwrap(),
    );
    let client_tls = ship_tls(&identity("client"));
    let (listener, addr) = listener().await;
    for _ in 0..2 {
        let acceptor = tokio_rustls::TlsAcceptor::from(server_config.clone());
        let server = async {
            let (tcp, _) = listener.accept().await.unwrap();
            acceptor.accept(tcp).await.unwrap()
        };
        let (stream, connected) =
            tokio::join!(server, connect_tls(addr, &client_tls, server_id.ski()));
        connected.unwrap();
        assert_eq!(
            stream.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Full)
        );
    }
}
