//! Hostile WebSocket input on real loopback sockets (SHIP §10): upgrades without or with the
//! wrong subprotocol, plain HTTPS, text, oversize and fragmented frames, the connection cap,
//! silence, a slow-loris upgrade and a ping flood. Each test ends by checking that the victim
//! hub still exchanges data with its paired friend. The table is in docs/robustness.md.

use ship_test_support::common;
use ship_test_support::harness;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use harness::{Victim, WAIT, connect, failures, msg, tls, wait_failure};
use ship_hub::hub::FailureCause;
use ship_hub::identity::Identity;
use ship_hub::transport::WsOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use common::{Seen, identity};

/// A tungstenite client over SHIP TLS, to send what `ShipSocket` never sends.
async fn raw_websocket(
    victim: &Victim,
    who: &Identity,
    subprotocol: Option<&str>,
) -> Result<
    tokio_tungstenite::WebSocketStream<ship_hub::transport::TlsStream<TcpStream>>,
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let tcp = TcpStream::connect(victim.addr()).await.unwrap();
    let stream = tls(who)
        .connect(tcp, "127.0.0.1", victim.ski())
        .await
        .unwrap();
    let mut request = format!("wss://127.0.0.1:{}/ship/", victim.addr().port())
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

async fn http_status(victim: &Victim, subprotocol: Option<&str>) -> u16 {
    let who = identity("upgrader");
    victim.hub.pair(who.ski()).unwrap();
    match raw_websocket(victim, &who, subprotocol).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("expected an HTTP refusal, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn upgrade_without_subprotocol_gets_400() {
    let victim = Victim::start().await;
    let before = failures(&victim, FailureCause::WebSocket);
    assert_eq!(http_status(&victim, None).await, 400);
    wait_failure(&victim, FailureCause::WebSocket, before).await;
    victim.assert_serving().await;
    victim.stop().await;
}

#[tokio::test]
async fn upgrade_with_wrong_subprotocol_gets_400() {
    let victim = Victim::start().await;
    let before = failures(&victim, FailureCause::WebSocket);
    assert_eq!(http_status(&victim, Some("chat, ship2")).await, 400);
    wait_failure(&victim, FailureCause::WebSocket, before).await;
    victim.assert_serving().await;
    victim.stop().await;
}

#[tokio::test]
async fn plain_https_request_without_upgrade_is_refused() {
    let victim = Victim::start().await;
    let who = identity("browser");
    let before = failures(&victim, FailureCause::WebSocket);
    let tcp = TcpStream::connect(victim.addr()).await.unwrap();
    let mut stream = tls(&who)
        .connect(tcp, "127.0.0.1", victim.ski())
        .await
        .unwrap();
    stream
        .write_all(b"GET /ship/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, stream.read_to_end(&mut answer))
        .await
        .expect("closed");
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 4"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    wait_failure(&victim, FailureCause::WebSocket, before).await;
    victim.assert_serving().await;
    victim.stop().await;
}

/// Reads the raw client until the victim's close frame; returns its code.
async fn close_code(
    ws: &mut tokio_tungstenite::WebSocketStream<ship_hub::transport::TlsStream<TcpStream>>,
) -> Option<u16> {
    tokio::time::timeout(WAIT, async {
        while let Some(message) = ws.next().await {
            match message {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
        None
    })
    .await
    .expect("the victim closes within the failure bound")
}

#[tokio::test]
async fn text_frame_is_closed_with_1003() {
    let victim = Victim::start().await;
    let who = identity("texter");
    victim.hub.pair(who.ski()).unwrap();
    let mut ws = raw_websocket(&victim, &who, Some("ship")).await.unwrap();
    ws.send(Message::Text("\u{0}\u{0}".into())).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(1003));
    victim.assert_serving().await;
    victim.stop().await;
}

#[tokio::test]
async fn oversize_frame_is_closed_with_1009() {
    let victim = Victim::start().await;
    let who = identity("big");
    victim.hub.pair(who.ski()).unwrap();
    let mut ws = raw_websocket(&victim, &who, Some("ship")).await.unwrap();
    let _ = ws.send(Message::Binary(vec![2u8; 200 * 1024].into())).await;
    assert_eq!(close_code(&mut ws).await, Some(1009));
    victim.assert_serving().await;
    victim.stop().await;
}

/// A CMI split over two fragments (RFC 6455 §5.4) is one SHIP message: the victim answers it.
#[tokio::test]
async fn fragmented_message_within_the_limit_is_reassembled() {
    let victim = Victim::start().await;
    let who = identity("fragments");
    victim.hub.pair(who.ski()).unwrap();
    let mut ws = raw_websocket(&victim, &who, Some("ship")).await.unwrap();
    ws.send(Message::Frame(Frame::message(
        vec![0u8],
        OpCode::Data(Data::Binary),
        false,
    )))
    .await
    .unwrap();
    ws.send(Message::Frame(Frame::message(
        vec![0u8],
        OpCode::Data(Data::Continue),
        true,
    )))
    .await
    .unwrap();
    let answer = tokio::time::timeout(WAIT, ws.next())
        .await
        .expect("an answer")
        .expect("open")
        .expect("a message");
    assert_eq!(answer, Message::Binary(vec![0u8, 0].into()));
    victim.assert_serving().await;
    victim.stop().await;
}

/// Fragments each below the limit that add up to more than it: closed with 1009.
#[tokio::test]
async fn fragmented_message_over_the_limit_is_closed_with_1009() {
    let victim = Victim::start().await;
    let who = identity("fragments");
    victim.hub.pair(who.ski()).unwrap();
    let mut ws = raw_websocket(&victim, &who, Some("ship")).await.unwrap();
    let piece = vec![2u8; 40 * 1024];
    let _ = ws
        .send(Message::Frame(Frame::message(
            piece.clone(),
            OpCode::Data(Data::Binary),
            false,
        )))
        .await;
    for _ in 0..3 {
        let _ = ws
            .send(Message::Frame(Frame::message(
                piece.clone(),
                OpCode::Data(Data::Continue),
                false,
            )))
            .await;
    }
    assert_eq!(close_code(&mut ws).await, Some(1009));
    victim.assert_serving().await;
    victim.stop().await;
}

/// With the connection cap reached (the friend holds the only slot) a trusted peer's upgrade
/// gets HTTP 503, and the friend keeps its connection.
#[tokio::test]
async fn connection_over_the_cap_gets_503() {
    let victim = Victim::start_with(|c| c.limits.max_connections = 1).await;
    let who = identity("one-too-many");
    victim.hub.pair(who.ski()).unwrap();
    let before = failures(&victim, FailureCause::RefusedByCap);
    harness::expect_503(
        &who,
        victim.addr(),
        victim.ski(),
        "a connection over the cap",
    )
    .await;
    wait_failure(&victim, FailureCause::RefusedByCap, before).await;
    victim.assert_serving().await;
    victim.stop().await;
}

/// A trusted peer that completes TLS and the upgrade and then never sends the CMI is closed
/// by the CMI timer (§13.4.3).
#[tokio::test]
async fn silent_peer_after_the_upgrade_is_closed_by_the_cmi_timer() {
    let victim = Victim::start_with(|c| c.protocol.cmi_timeout = Duration::from_secs(1)).await;
    let who = identity("silent");
    victim.hub.pair(who.ski()).unwrap();
    let mut socket = connect(&victim, &who).await;
    let (ending, _) = harness::ending(&mut socket).await;
    assert!(
        matches!(
            ending,
            harness::Ending::Closed(Some(4001)) | harness::Ending::Dropped
        ),
        "{ending:?}"
    );
    victim.assert_serving().await;
    victim.stop().await;
}

/// Slow loris: TLS done, then the HTTP upgrade request one byte every 50 ms. The transport
/// deadline (here 1 s) covers TLS and the upgrade together: dropped, counted as a timeout.
#[tokio::test]
async fn slow_loris_upgrade_is_dropped_at_the_transport_deadline() {
    let victim = Victim::start_with(|c| {
        c.limits.transport_handshake_timeout = Duration::from_secs(1);
    })
    .await;
    let who = identity("loris");
    victim.hub.pair(who.ski()).unwrap();
    let before = failures(&victim, FailureCause::HandshakeTimeout);
    let tcp = TcpStream::connect(victim.addr()).await.unwrap();
    let mut stream = tls(&who)
        .connect(tcp, "127.0.0.1", victim.ski())
        .await
        .unwrap();
    let request =
        b"GET /ship/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                    Sec-WebSocket-Protocol: ship\r\n\r\n";
    let trickle = async {
        for byte in request.iter().cycle().take(10_000) {
            if stream.write_all(&[*byte]).await.is_err() || stream.flush().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(WAIT, trickle)
        .await
        .expect("the victim cuts the trickle within the failure bound");
    wait_failure(&victim, FailureCause::HandshakeTimeout, before).await;
    victim.assert_serving().await;
    victim.stop().await;
}

/// 10,000 WebSocket pings from a trusted peer in data exchange: answered by the WebSocket
/// layer (which may coalesce pongs to pings still unanswered), the link stays up (a data
/// message afterwards is delivered), the friend is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_flood_is_answered_and_the_link_stays_up() {
    let victim = Victim::start().await;
    let who = identity("pinger");
    victim.hub.pair(who.ski()).unwrap();
    let mut socket = connect(&victim, &who).await;
    harness::advance(&mut socket, harness::Stage::DataExchange).await;
    let (mut reader, writer) = socket.split();
    let (pong_tx, mut pong_rx) = tokio::sync::mpsc::unbounded_channel();
    let pongs = tokio::spawn(async move {
        loop {
            match reader.next_event().await {
                Ok(ship_hub::transport::SocketEvent::Pong(_)) => {
                    let _ = pong_tx.send(());
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    for i in 0..10_000u32 {
        writer.ping(i.to_be_bytes().to_vec()).await.unwrap();
    }
    writer
        .send(msg::data(r#"{"after":"pings"}"#))
        .await
        .unwrap();
    assert!(
        victim
            .rec
            .wait_for(WAIT, |s| *s
                == Seen::Data(who.ski(), br#"{"after":"pings"}"#.to_vec()))
            .await,
        "the link did not survive the ping flood"
    );
    tokio::time::timeout(WAIT, pong_rx.recv())
        .await
        .expect("pongs within the failure bound")
        .expect("at least one pong");
    victim.assert_serving().await;
    pongs.abort();
    victim.stop().await;
}

/// Strangers' slots are limited per source address (`max_unpaired_per_address`, default 1):
/// a second unknown key from 127.0.0.2 that, like the first, never sends its CMI gets HTTP 503,
/// while an unknown key from 127.0.0.3 is still admitted. (Before: the two from one address
/// held both strangers' slots and the third was refused.)
#[tokio::test]
async fn second_stranger_from_one_address_gets_503_while_another_address_is_admitted() {
    let victim = Victim::start().await;
    let (a, b, c) = (
        identity("stranger-a"),
        identity("stranger-b"),
        identity("stranger-c"),
    );
    let _first = harness::connect_from(&victim, &a, [127, 0, 0, 2])
        .await
        .expect("the first stranger from 127.0.0.2 is admitted");
    let before = failures(&victim, FailureCause::RefusedByCap);
    harness::assert_503(
        harness::connect_from(&victim, &b, [127, 0, 0, 2]).await,
        "a second stranger from 127.0.0.2",
    );
    wait_failure(&victim, FailureCause::RefusedByCap, before).await;
    let _other = harness::connect_from(&victim, &c, [127, 0, 0, 3])
        .await
        .expect("a stranger from another address is admitted");
    victim.assert_serving().await;
    victim.stop().await;
}

/// A stranger that completes TLS and the upgrade and then never sends its CMI is closed at the
/// strangers' CMI deadline (`unpaired_cmi_timeout`, here 1 s), not the protocol's 30 s, so it
/// frees its strangers' slot early.
#[tokio::test]
async fn silent_stranger_is_closed_at_the_unpaired_cmi_deadline() {
    let victim = Victim::start_with(|c| {
        c.limits.unpaired_cmi_timeout = Duration::from_secs(1);
    })
    .await;
    let who = identity("silent-stranger");
    let started = std::time::Instant::now();
    let mut socket = harness::connect_from(&victim, &who, [127, 0, 0, 2])
        .await
        .expect("admitted");
    let (ending, _) = harness::ending(&mut socket).await;
    let closed_in = started.elapsed();
    println!("SILENT STRANGER: closed after {closed_in:?} (unpaired CMI deadline 1 s)");
    assert!(
        matches!(
            ending,
            harness::Ending::Closed(Some(4001)) | harness::Ending::Dropped
        ),
        "{ending:?}"
    );
    assert!(closed_in < Duration::from_secs(10), "{closed_in:?}");
    // Its slot is free again: another stranger from the same address is admitted.
    let again = identity("next-stranger");
    tokio::time::timeout(WAIT, async {
        while harness::connect_from(&victim, &again, [127, 0, 0, 2])
            .await
            .is_err()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the slot is given back");
    victim.assert_serving().await;
    victim.stop().await;
}

/// A stranger waiting in hello `pending` for the user's decision (the application lets it
/// wait) holds its strangers' slot at most `unpaired_handshake_deadline` (here 2 s) from TCP
/// accept, then is closed with 4001, however long the hello timers would let it wait (120 s,
/// more with prolongations).
#[tokio::test]
async fn stranger_waiting_for_the_user_is_closed_at_the_unpaired_handshake_deadline() {
    let victim = Victim::start_with(|c| {
        c.limits.unpaired_handshake_deadline = Duration::from_secs(2);
    })
    .await;
    victim
        .rec
        .let_wait
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let who = identity("waiting-stranger");
    let started = std::time::Instant::now();
    let mut socket = harness::connect_from(&victim, &who, [127, 0, 0, 2])
        .await
        .expect("admitted");
    socket.send(msg::cmi()).await.unwrap();
    harness::expect_message(&mut socket, "").await;
    socket.send(msg::hello_ready()).await.unwrap();
    harness::expect_message(&mut socket, "pending").await;
    assert!(
        victim
            .rec
            .wait_for(WAIT, |s| *s == Seen::PairingRequested(who.ski()))
            .await
    );
    let (ending, _) = harness::ending(&mut socket).await;
    let closed_in = started.elapsed();
    println!("PENDING STRANGER: closed after {closed_in:?} (unpaired handshake deadline 2 s)");
    assert_eq!(ending, harness::Ending::Closed(Some(4001)));
    assert!(closed_in < Duration::from_secs(15), "{closed_in:?}");
    victim.assert_serving().await;
    victim.stop().await;
}

/// A JSON string payload of exactly `len` bytes.
fn string_payload(len: usize) -> String {
    format!("\"{}\"", "a".repeat(len - 2))
}

/// Finding: `send_data` accepted a payload whose data message was bigger than the peer's message
/// limit (100 KiB by default), so the peer closed the connection with 1009. The largest payload
/// that fits (the limit minus the SHIP framing of the data message) is delivered; one byte more
/// is refused with the typed error before it is queued, and the connection stays up.
#[tokio::test]
async fn a_payload_over_the_message_limit_is_refused_before_it_is_queued() {
    use ship_hub::hub::HubError;
    use ship_hub::protocol::ShipMessage;
    use ship_hub::protocol::codec::encode;
    use ship_hub::protocol::message::Data;

    let victim = Victim::start().await;
    let limit = WsOptions::default().max_message_size;
    let friend = victim.friend.local_ski();
    // The framing of a data message around its payload, from the encoder itself.
    let framing = encode(&ShipMessage::Data(Data {
        protocol_id: Data::SPINE_PROTOCOL_ID.to_owned(),
        payload: serde_json::value::RawValue::from_string("0".into()).unwrap(),
        extension: None,
    }))
    .len()
        - 1;
    let largest = string_payload(limit - framing);
    victim.hub.send_data(friend, largest.as_bytes()).unwrap();
    let expected = largest.clone().into_bytes();
    let ski = victim.ski();
    assert!(
        victim
            .friend_rec
            .wait_for(WAIT, |s| *s == Seen::Data(ski, expected.clone()))
            .await,
        "the largest payload was not delivered"
    );
    let over = string_payload(limit - framing + 1);
    match victim.hub.send_data(friend, over.as_bytes()) {
        Err(HubError::PayloadTooLarge {
            size,
            limit: max_payload,
            message_limit,
        }) => {
            assert_eq!(size, over.len());
            assert_eq!(max_payload, largest.len());
            assert_eq!(message_limit, limit);
        }
        other => panic!("{other:?}"),
    }
    // The figure of the finding: 122,882 bytes.
    let finding = string_payload(122_882);
    assert!(matches!(
        victim.hub.send_data(friend, finding.as_bytes()),
        Err(HubError::PayloadTooLarge { size: 122_882, .. })
    ));
    victim.assert_serving().await;
    victim.stop().await;
}
