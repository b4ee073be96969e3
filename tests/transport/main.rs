//! SHIP TLS and WebSocket transport on loopback (127.0.0.1:0 only).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

use ship_hub::Ski;
use ship_hub::identity::{CertificateSubject, Identity};
use ship_hub::transport::{
    ShipSocket, ShipTls, SocketEvent, TlsOptions, TlsStream, TransportError, WsOptions,
    accept_websocket, connect_websocket, dial,
};
use tokio::net::{TcpListener, TcpStream};

mod openssl;
mod suites;
mod tls_refusals;
mod websocket_refusals;

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

/// The hub spawns these futures on a multi-threaded runtime: they must be `Send` (a compile-time
/// check; the functions below only need to type-check).
#[test]
fn handles_and_futures_are_send() {
    fn is_send<T: Send>(_: &T) {}
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<ShipTls>();
    is_send_sync::<TransportError>();

    async fn upgrade<S>(tls: &ShipTls, stream: S, ws: &WsOptions) -> Result<(), TransportError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    {
        let (stream, _) = tls.accept(stream).await?;
        let mut socket = accept_websocket(stream, ws, || true).await?;
        socket.next_event().await?;
        socket.send(Vec::new()).await?;
        socket.close(1000, "").await
    }
    fn check(tls: &ShipTls, ws: &WsOptions, stream: tokio::io::DuplexStream, ski: Ski) {
        is_send(&upgrade(tls, stream, ws));
        is_send(&dial(
            tls,
            "127.0.0.1:1".parse().unwrap(),
            ski,
            "/ship/",
            ws,
        ));
    }
    let _ = check;
}
