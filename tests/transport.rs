//! SHIP TLS and WebSocket transport on loopback (127.0.0.1:0 only).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyIdMethod, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use ship_hub::Ski;
use ship_hub::identity::{CertificateError, CertificateSubject, Identity};
use ship_hub::transport::{
    FALLBACK_SERVER_NAME, ShipSocket, ShipTls, SocketEvent, TlsError, TlsOptions, TlsStream,
    TransportError, WebSocketError, WsOptions, accept_websocket, connect_websocket, dial,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn identity(name: &str) -> Identity {
    Identity::generate(&CertificateSubject {
        common_name: name.into(),
        organization: "Test".into(),
        country: "DE".into(),
    })
    .unwrap()
}

fn ship_tls(identity: &Identity) -> ShipTls {
    ShipTls::new(identity, TlsOptions::default()).unwrap()
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Accepts one connection: TLS, then the WebSocket upgrade.
async fn accept_one(
    listener: &TcpListener,
    tls: &ShipTls,
    ws: &WsOptions,
) -> Result<(ShipSocket<TcpStream>, Ski), TransportError> {
    let (tcp, _) = listener.accept().await.unwrap();
    let (stream, ski) = tls.accept(tcp).await?;
    let socket = accept_websocket(stream, ws, || true).await?;
    Ok((socket, ski))
}

/// Accepts one connection and runs only the TLS handshake.
async fn accept_tls(
    listener: &TcpListener,
    tls: &ShipTls,
) -> Result<(TlsStream<TcpStream>, Ski), TransportError> {
    let (tcp, _) = listener.accept().await.unwrap();
    tls.accept(tcp).await
}

/// Dials with TLS only.
async fn connect_tls(
    addr: SocketAddr,
    tls: &ShipTls,
    expected: Ski,
) -> Result<TlsStream<TcpStream>, TransportError> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    tls.connect(tcp, "127.0.0.1", expected).await
}

/// Exchanges messages, a ping and a close over an established pair.
async fn exercise(server: &mut ShipSocket<TcpStream>, client: &mut ShipSocket<TcpStream>) {
    client.send(vec![0, 0]).await.unwrap();
    assert_eq!(
        server.next_event().await.unwrap(),
        SocketEvent::Message(vec![0, 0])
    );
    server.send(b"\x01{\"x\":1}".to_vec()).await.unwrap();
    assert_eq!(
        client.next_event().await.unwrap(),
        SocketEvent::Message(b"\x01{\"x\":1}".to_vec())
    );
    client.ping(b"keepalive".to_vec()).await.unwrap();
    // The server answers the ping while it waits for its next event; once the pong arrived,
    // the server's wait is dropped (next_event is cancel-safe).
    tokio::select! {
        event = server.next_event() => panic!("unexpected server event {event:?}"),
        pong = client.next_event() => {
            assert_eq!(pong.unwrap(), SocketEvent::Pong(b"keepalive".to_vec()));
        }
    }
    server.close(4500, "User close").await.unwrap();
    assert_eq!(
        client.next_event().await.unwrap(),
        SocketEvent::Closed {
            code: Some(4500),
            reason: "User close".into()
        }
    );
}

#[tokio::test]
async fn mutual_tls_and_websocket_over_loopback_in_both_roles() {
    let a = identity("node-a");
    let b = identity("node-b");
    let (tls_a, tls_b) = (ship_tls(&a), ship_tls(&b));
    let ws = WsOptions::default();
    for (server_id, server_tls, client_id, client_tls) in
        [(&a, &tls_a, &b, &tls_b), (&b, &tls_b, &a, &tls_a)]
    {
        let (listener, addr) = listener().await;
        let (accepted, dialled) = tokio::join!(
            accept_one(&listener, server_tls, &ws),
            dial(client_tls, addr, server_id.ski(), "/ship/", &ws)
        );
        let (mut server, client_ski) = accepted.unwrap();
        let mut client = dialled.unwrap();
        assert_eq!(client_ski, client_id.ski());
        assert_eq!(server.peer_ski(), client_id.ski());
        assert_eq!(client.peer_ski(), server_id.ski());
        for socket in [&server, &client] {
            assert_eq!(socket.protocol_version(), Some("TLSv1_2"));
            assert_eq!(
                socket.cipher_suite(),
                Some("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
            );
        }
        exercise(&mut server, &mut client).await;
    }
}

#[tokio::test]
async fn tls13_is_negotiated_when_both_sides_offer_it() {
    let a = identity("a");
    let b = identity("b");
    let mut options = TlsOptions::default();
    options.offer_tls13 = true;
    let server_tls = ShipTls::new(&a, options.clone()).unwrap();
    let client_tls = ShipTls::new(&b, options).unwrap();
    let (listener, addr) = listener().await;
    let ws = WsOptions::default();
    let (accepted, dialled) = tokio::join!(
        accept_one(&listener, &server_tls, &ws),
        dial(&client_tls, addr, a.ski(), "/ship/", &ws)
    );
    let (mut server, client_ski) = accepted.unwrap();
    let mut client = dialled.unwrap();
    assert_eq!(client_ski, b.ski());
    assert_eq!(client.protocol_version(), Some("TLSv1_3"));
    exercise(&mut server, &mut client).await;

    // A TLS 1.3 node still talks to a default (TLS 1.2 only) node.
    let plain = identity("plain");
    let plain_tls = ship_tls(&plain);
    let (listener, addr) = self::listener().await;
    let (accepted, dialled) = tokio::join!(
        accept_one(&listener, &plain_tls, &ws),
        dial(&client_tls, addr, plain.ski(), "/ship/", &ws)
    );
    accepted.unwrap();
    assert_eq!(dialled.unwrap().protocol_version(), Some("TLSv1_2"));
}

#[tokio::test]
async fn elli_fixture_completes_a_real_handshake_in_both_roles() {
    let elli = Identity::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/elli")).unwrap();
    let other = identity("controller");
    let (elli_tls, other_tls) = (ship_tls(&elli), ship_tls(&other));
    let ws = WsOptions::default();
    for (server_id, server_tls, client_id, client_tls) in [
        (&elli, &elli_tls, &other, &other_tls),
        (&other, &other_tls, &elli, &elli_tls),
    ] {
        let (listener, addr) = listener().await;
        let (accepted, dialled) = tokio::join!(
            accept_one(&listener, server_tls, &ws),
            dial(client_tls, addr, server_id.ski(), "/ship/", &ws)
        );
        let (mut server, client_ski) = accepted.unwrap();
        let mut client = dialled.unwrap();
        assert_eq!(client_ski, client_id.ski());
        exercise(&mut server, &mut client).await;
    }
}

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

/// Accepts any server certificate: for test clients that are deliberately not SHIP-conformant.
#[derive(Debug)]
struct AcceptAnyServer;

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        vec![SignatureScheme::ECDSA_NISTP256_SHA256]
    }
}

fn raw_client_builder()
-> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnyServer))
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
    let provider = rustls::crypto::ring::default_provider();
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

/// Upgrades with a hand-made tungstenite client, to send what ShipSocket never sends.
async fn raw_websocket_client(
    addr: SocketAddr,
    tls: &ShipTls,
    expected: Ski,
    subprotocol: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let stream = connect_tls(addr, tls, expected).await.unwrap();
    let mut request = format!("wss://127.0.0.1:{}/ship/", addr.port())
        .into_client_request()
        .unwrap();
    if let Some(protocol) = subprotocol {
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", protocol.parse().unwrap());
    }
    tokio_tungstenite::client_async(request, stream)
        .await
        .map(|(ws, _)| ws)
}

async fn upgrade_with(subprotocol: Option<&str>) -> (TransportError, u16) {
    let server_id = identity("server");
    let client_id = identity("client");
    let (server_tls, client_tls) = (ship_tls(&server_id), ship_tls(&client_id));
    let (listener, addr) = listener().await;
    let ws = WsOptions::default();
    let (accepted, dialled) = tokio::join!(
        accept_one(&listener, &server_tls, &ws),
        raw_websocket_client(addr, &client_tls, server_id.ski(), subprotocol)
    );
    let status = match dialled {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {other:?}"),
    };
    (accepted.expect_err("the server refused"), status)
}

#[tokio::test]
async fn upgrade_without_subprotocol_is_refused() {
    let (error, status) = upgrade_with(None).await;
    assert!(
        matches!(
            error,
            TransportError::WebSocket(WebSocketError::MissingSubprotocol)
        ),
        "{error:?}"
    );
    assert_eq!(status, 400);
}

#[tokio::test]
async fn upgrade_with_wrong_subprotocol_is_refused() {
    let (error, status) = upgrade_with(Some("chat, superchat")).await;
    match error {
        TransportError::WebSocket(WebSocketError::WrongSubprotocol(offered)) => {
            assert_eq!(offered, "chat, superchat")
        }
        other => panic!("expected WrongSubprotocol, got {other:?}"),
    }
    assert_eq!(status, 400);
}

#[tokio::test]
async fn server_that_does_not_echo_ship_is_refused_by_the_client() {
    let server_id = identity("server");
    let client_id = identity("client");
    let (server_tls, client_tls) = (ship_tls(&server_id), ship_tls(&client_id));
    let (listener, addr) = listener().await;
    let server = async {
        let (stream, _) = accept_tls(&listener, &server_tls).await.unwrap();
        // A plain WebSocket server: no subprotocol in its answer.
        let _ = tokio_tungstenite::accept_async(stream).await;
    };
    let client = async {
        let stream = connect_tls(addr, &client_tls, server_id.ski())
            .await
            .unwrap();
        connect_websocket(
            stream,
            "127.0.0.1",
            addr.port(),
            "/ship/",
            &WsOptions::default(),
        )
        .await
    };
    let ((), dialled) = tokio::join!(server, client);
    assert!(
        matches!(
            dialled,
            Err(TransportError::WebSocket(
                WebSocketError::MissingSubprotocol
            ))
        ),
        "{dialled:?}"
    );
}

#[tokio::test]
async fn text_frame_is_a_protocol_error_closed_with_1003() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let server_id = identity("server");
    let client_id = identity("client");
    let (server_tls, client_tls) = (ship_tls(&server_id), ship_tls(&client_id));
    let (listener, addr) = listener().await;
    let ws = WsOptions::default();
    let (accepted, dialled) = tokio::join!(
        accept_one(&listener, &server_tls, &ws),
        raw_websocket_client(addr, &client_tls, server_id.ski(), Some("ship"))
    );
    let (mut server, _) = accepted.unwrap();
    let mut client = dialled.unwrap();
    client
        .send(Message::Text("{\"connectionHello\":[]}".into()))
        .await
        .unwrap();
    let error = server.next_event().await.unwrap_err();
    assert!(
        matches!(error, TransportError::WebSocket(WebSocketError::TextFrame)),
        "{error:?}"
    );
    match client.next().await {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(u16::from(frame.code), 1003),
        other => panic!("expected a close frame, got {other:?}"),
    }
}

#[tokio::test]
async fn oversize_message_is_refused_and_closed_with_1009() {
    let server_id = identity("server");
    let client_id = identity("client");
    let (server_tls, client_tls) = (ship_tls(&server_id), ship_tls(&client_id));
    let (listener, addr) = listener().await;
    let mut small = WsOptions::default();
    small.max_message_size = 1024;
    let large = WsOptions::default();
    let (accepted, dialled) = tokio::join!(
        accept_one(&listener, &server_tls, &small),
        dial(&client_tls, addr, server_id.ski(), "/ship/", &large)
    );
    let (mut server, _) = accepted.unwrap();
    let mut client = dialled.unwrap();
    client.send(vec![2; 1024]).await.unwrap();
    assert_eq!(
        server.next_event().await.unwrap(),
        SocketEvent::Message(vec![2; 1024])
    );
    client.send(vec![2; 4096]).await.unwrap();
    match server.next_event().await {
        Err(TransportError::WebSocket(WebSocketError::MessageTooLarge { size, max })) => {
            assert_eq!(max, 1024);
            assert!(size > 1024);
        }
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
    match client.next_event().await.unwrap() {
        SocketEvent::Closed { code, .. } => assert_eq!(code, Some(1009)),
        other => panic!("expected the server's close, got {other:?}"),
    }
}

#[tokio::test]
async fn full_hub_answers_503_at_the_upgrade() {
    let server_id = identity("server");
    let client_id = identity("client");
    let (server_tls, client_tls) = (ship_tls(&server_id), ship_tls(&client_id));
    let (listener, addr) = listener().await;
    let ws = WsOptions::default();
    let asked = AtomicBool::new(false);
    let server = async {
        let (stream, _) = accept_tls(&listener, &server_tls).await.unwrap();
        accept_websocket(stream, &ws, || {
            asked.store(true, Ordering::SeqCst);
            false
        })
        .await
    };
    let (accepted, dialled) = tokio::join!(
        server,
        dial(&client_tls, addr, server_id.ski(), "/ship/", &ws)
    );
    assert!(asked.load(Ordering::SeqCst));
    assert!(
        matches!(
            accepted,
            Err(TransportError::WebSocket(WebSocketError::Refused))
        ),
        "{accepted:?}"
    );
    let error = dialled.unwrap_err();
    assert!(error.is_service_unavailable(), "{error:?}");
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

/// A TLS 1.2 ClientHello offering only TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 (0xC023) and
/// TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8 (0xC0AE), the suites SHIP lists besides GCM.
fn cbc_and_ccm_only_client_hello() -> Vec<u8> {
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
    body.extend_from_slice(&[0x00, 0x04, 0xC0, 0x23, 0xC0, 0xAE]);
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
async fn client_offering_only_cbc_and_ccm_suites_gets_a_named_error() {
    let server_id = identity("server");
    let server_tls = ship_tls(&server_id);
    let (listener, addr) = listener().await;
    let client = async {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(&cbc_and_ccm_only_client_hello())
            .await
            .unwrap();
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
            .contains("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"),
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
async fn dial_retries_without_the_path_after_404() {
    use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
    let server_id = identity("server");
    let client_id = identity("client");
    let (server_tls, client_tls) = (ship_tls(&server_id), ship_tls(&client_id));
    let (listener, addr) = listener().await;
    let ws = WsOptions::default();
    let seen_paths = Mutex::new(Vec::new());
    let server = async {
        // First connection: a server that only serves "/" refuses "/ship/" with 404.
        let (stream, _) = accept_tls(&listener, &server_tls).await.unwrap();
        #[allow(clippy::result_large_err)] // tungstenite's callback signature
        let refuse = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
            seen_paths
                .lock()
                .unwrap()
                .push(request.uri().path().to_owned());
            if request.uri().path() == "/" {
                Ok(response)
            } else {
                let mut refusal = ErrorResponse::new(None);
                *refusal.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::NOT_FOUND;
                Err(refusal)
            }
        };
        assert!(
            tokio_tungstenite::accept_hdr_async(stream, refuse)
                .await
                .is_err()
        );
        // Second connection: a new TCP + TLS connection on "/".
        let (mut socket, _) = accept_one(&listener, &server_tls, &ws).await.unwrap();
        socket.next_event().await.unwrap()
    };
    let client = async {
        let mut socket = dial(&client_tls, addr, server_id.ski(), "/ship/", &ws)
            .await
            .unwrap();
        socket.send(vec![0, 0]).await.unwrap();
        socket
    };
    let (event, _socket) = tokio::join!(server, client);
    assert_eq!(event, SocketEvent::Message(vec![0, 0]));
    assert_eq!(seen_paths.lock().unwrap().as_slice(), ["/ship/"]);
}

#[tokio::test]
async fn works_over_an_in_memory_duplex_stream() {
    let a = identity("a");
    let b = identity("b");
    let (tls_a, tls_b) = (ship_tls(&a), ship_tls(&b));
    let ws = WsOptions::default();
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = async {
        let (stream, _) = tls_a.accept(server_io).await?;
        accept_websocket(stream, &ws, || true).await
    };
    let client = async {
        let stream = tls_b.connect(client_io, "b.local", a.ski()).await?;
        connect_websocket(stream, "a.local", 4711, "/ship/", &ws).await
    };
    let (server, client) = tokio::join!(server, client);
    let (mut server, mut client) = (server.unwrap(), client.unwrap());
    client.send(vec![0, 0]).await.unwrap();
    assert_eq!(
        server.next_event().await.unwrap(),
        SocketEvent::Message(vec![0, 0])
    );
    assert_eq!(server.peer_ski(), b.ski());
}

#[tokio::test]
async fn records_limited_to_1024_bytes_still_carry_large_messages() {
    let a = identity("a");
    let b = identity("b");
    let mut options = TlsOptions::default();
    options.max_fragment_size = Some(1024);
    let server_tls = ShipTls::new(&a, options.clone()).unwrap();
    let client_tls = ShipTls::new(&b, options).unwrap();
    let (listener, addr) = listener().await;
    let ws = WsOptions::default();
    let (accepted, dialled) = tokio::join!(
        accept_one(&listener, &server_tls, &ws),
        dial(&client_tls, addr, a.ski(), "/ship/", &ws)
    );
    let (mut server, _) = accepted.unwrap();
    let mut client = dialled.unwrap();
    let message: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    client.send(message.clone()).await.unwrap();
    assert_eq!(
        server.next_event().await.unwrap(),
        SocketEvent::Message(message.clone())
    );
    server.send(message.clone()).await.unwrap();
    assert_eq!(
        client.next_event().await.unwrap(),
        SocketEvent::Message(message)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_halves_read_and_write_from_different_tasks() {
    let a = identity("a");
    let b = identity("b");
    let (tls_a, tls_b) = (ship_tls(&a), ship_tls(&b));
    let (listener, addr) = listener().await;
    let ws = WsOptions::default();
    let (accepted, dialled) = tokio::join!(
        accept_one(&listener, &tls_a, &ws),
        dial(&tls_b, addr, a.ski(), "/ship/", &ws)
    );
    let (server, _) = accepted.unwrap();
    let mut client = dialled.unwrap();
    let (mut reader, writer) = server.split();
    assert_eq!(reader.peer_ski(), b.ski());
    assert_eq!(writer.peer_ski(), b.ski());

    // The reader waits in its own task while the writer sends from this one.
    let reading = tokio::spawn(async move {
        let mut received = Vec::new();
        loop {
            match reader.next_event().await.unwrap() {
                SocketEvent::Message(m) => received.push(m),
                SocketEvent::Closed { code, .. } => {
                    assert_eq!(code, Some(1000));
                    return received;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    });
    for i in 0..10u8 {
        writer.send(vec![2, i]).await.unwrap();
    }
    for i in 0..10u8 {
        assert_eq!(
            client.next_event().await.unwrap(),
            SocketEvent::Message(vec![2, i])
        );
        client.send(vec![1, i]).await.unwrap();
    }
    // The reader task answers the client's ping through the shared connection.
    client.ping(b"p".to_vec()).await.unwrap();
    assert_eq!(
        client.next_event().await.unwrap(),
        SocketEvent::Pong(b"p".to_vec())
    );
    client.close(1000, "done").await.unwrap();
    let received = reading.await.unwrap();
    let expected: Vec<Vec<u8>> = (0..10u8).map(|i| vec![1, i]).collect();
    assert_eq!(received, expected);
    // The server's close reply.
    assert!(matches!(
        client.next_event().await.unwrap(),
        SocketEvent::Closed {
            code: Some(1000),
            ..
        }
    ));
}

#[tokio::test]
async fn client_never_resumes_a_session() {
    // A server that would resume if asked (rustls defaults: session cache, TLS 1.2 session ids).
    let server_id = identity("server");
    let server_config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
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
