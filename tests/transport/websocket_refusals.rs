//! WebSocket upgrades and frames that must be refused, each with its own error.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};

use ship_hub::Ski;
use ship_hub::transport::{
    ShipTls, SocketEvent, TlsStream, TransportError, WebSocketError, WsOptions, accept_websocket,
    connect_websocket, dial,
};
use tokio::net::TcpStream;

use super::{accept_one, accept_tls, connect_tls, identity, listener, ship_tls};

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
    ship_test_support::harness::assert_503(dialled, "a dial to a full hub");
}
