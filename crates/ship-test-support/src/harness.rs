//! The victim of the hostile-input tests: a hub on 127.0.0.1 with a paired friend hub connected
//! to it, and scripted SHIP clients built from `ship_hub::transport`.
//!
//! Every hostile-input test ends with [`Victim::assert_serving`]: the friend and the victim
//! exchange data both ways after the hostile input, and the friend never saw a disconnect.

use ship_hub::hub::PairedPeer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ship_hub::Ski;
use ship_hub::hub::{FailureCause, Hub, HubConfig, ShutdownReport};
use ship_hub::identity::Identity;
use ship_hub::transport::{self, ShipSocket, ShipTls, SocketEvent, TlsOptions, WsOptions};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::common::{Recorder, Seen, identity, loopback_config, start};

/// Failure bound for anything the tests wait for (never a timing claim).
pub const WAIT: Duration = Duration::from_secs(20);

/// The hub under attack, and a paired friend that must keep being served.
pub struct Victim {
    pub hub: Hub,
    pub rec: Arc<Recorder>,
    pub friend: Hub,
    pub friend_rec: Arc<Recorder>,
    counter: AtomicU64,
}

impl Victim {
    /// A victim with every default.
    pub async fn start() -> Victim {
        Victim::start_with(|_| {}).await
    }

    /// A victim whose configuration `adjust` may change; returns once the friend is connected.
    pub async fn start_with(adjust: impl FnOnce(&mut HubConfig)) -> Victim {
        let rec = Recorder::new();
        let friend_rec = Recorder::new();
        let mut config = loopback_config(identity("victim"), "victim", &rec);
        adjust(&mut config);
        let hub = start(config).await;
        let friend = start(loopback_config(identity("friend"), "friend", &friend_rec)).await;
        hub.pair(friend.local_ski()).unwrap();
        friend
            .pair(PairedPeer::new(hub.local_ski()).with_address(hub.local_addr()))
            .unwrap();
        let (hub_ski, friend_ski) = (hub.local_ski(), friend.local_ski());
        assert!(
            rec.wait_for(WAIT, |s| *s == Seen::Connected(friend_ski))
                .await,
            "{:?}",
            rec.all()
        );
        assert!(
            friend_rec
                .wait_for(WAIT, |s| *s == Seen::Connected(hub_ski))
                .await
        );
        Victim {
            hub,
            rec,
            friend,
            friend_rec,
            counter: AtomicU64::new(0),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.hub.local_addr()
    }

    pub fn ski(&self) -> Ski {
        self.hub.local_ski()
    }

    /// The paired friend exchanges data with the victim both ways, and neither side ever saw
    /// the other disconnect.
    pub async fn assert_serving(&self) {
        let n = self.counter.fetch_add(1, Ordering::SeqCst);
        let (hub_ski, friend_ski) = (self.hub.local_ski(), self.friend.local_ski());
        let to_victim = format!(r#"{{"toVictim":{n}}}"#).into_bytes();
        let to_friend = format!(r#"{{"toFriend":{n}}}"#).into_bytes();
        self.friend.send_data(hub_ski, &to_victim).unwrap();
        self.hub.send_data(friend_ski, &to_friend).unwrap();
        assert!(
            self.rec
                .wait_for(WAIT, |s| *s == Seen::Data(friend_ski, to_victim.clone()))
                .await,
            "the victim no longer receives from its paired friend: {:?}",
            self.rec.all()
        );
        assert!(
            self.friend_rec
                .wait_for(WAIT, |s| *s == Seen::Data(hub_ski, to_friend.clone()))
                .await,
            "the friend no longer receives from the victim"
        );
        assert_eq!(
            self.rec
                .count(|s| matches!(s, Seen::Disconnected(k, _) if *k == friend_ski)),
            0,
            "{:?}",
            self.rec.all()
        );
        assert_eq!(
            self.friend_rec
                .count(|s| matches!(s, Seen::Disconnected(..))),
            0
        );
    }

    /// Data the victim's application received from `ski`.
    pub fn data_from(&self, ski: Ski) -> usize {
        self.rec
            .count(|s| matches!(s, Seen::Data(k, _) if *k == ski))
    }

    /// Shuts both hubs down and returns the victim's report, checked for leaks.
    pub async fn stop(self) -> ShutdownReport {
        self.friend.shutdown().await;
        let report = self.hub.shutdown().await;
        assert_eq!(report.tasks_aborted, 0, "{report:?}");
        report
    }
}

/// Waits until the victim counted one more failure of `cause` than `before`.
pub async fn wait_failure(victim: &Victim, cause: FailureCause, before: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while victim.hub.metrics().failures.get(cause) <= before {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {cause:?} failure counted: {:?}",
            victim.hub.metrics()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn failures(victim: &Victim, cause: FailureCause) -> u64 {
    victim.hub.metrics().failures.get(cause)
}

/// A SHIP TLS configuration for `identity`.
pub fn tls(identity: &Identity) -> ShipTls {
    ShipTls::new(identity, TlsOptions::default()).unwrap()
}

/// TLS + WebSocket to the victim as `identity`.
pub async fn connect(victim: &Victim, identity: &Identity) -> ShipSocket<TcpStream> {
    transport::dial(
        &tls(identity),
        victim.addr(),
        victim.ski(),
        "/ship/",
        &WsOptions::default(),
    )
    .await
    .expect("TLS + WebSocket to the victim")
}

/// A TCP connection to the victim from the loopback address `source`. All of 127.0.0.0/8 is
/// loopback on Linux, so binding the client to 127.0.0.2, 127.0.0.3 … lets a test play several
/// hosts (the victim and its friend are on 127.0.0.1).
pub async fn tcp_from(victim: &Victim, source: [u8; 4]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let tcp = socket.connect(victim.addr()).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp
}

/// TLS + WebSocket to the victim as `identity`, from the loopback address `source`.
pub async fn connect_from(
    victim: &Victim,
    identity: &Identity,
    source: [u8; 4],
) -> Result<ShipSocket<TcpStream>, transport::TransportError> {
    let tcp = tcp_from(victim, source).await;
    let stream = tls(identity).connect(tcp, "", victim.ski()).await?;
    transport::connect_websocket(
        stream,
        "127.0.0.1",
        victim.addr().port(),
        "/ship/",
        &WsOptions::default(),
    )
    .await
}

/// Asserts that a connection attempt was refused with HTTP 503 at the WebSocket upgrade (a
/// connection cap or a per-address cap); `what` names the attempt in the failure message.
/// Returns the error for further checks.
pub fn assert_503<T>(
    result: Result<T, transport::TransportError>,
    what: &str,
) -> transport::TransportError {
    let Err(error) = result else {
        panic!("{what} was admitted; expected HTTP 503 at the upgrade");
    };
    assert!(
        error.is_service_unavailable(),
        "{what}: expected HTTP 503 at the upgrade, got {error}"
    );
    error
}

/// Dials the node at `addr`, which must prove `ski`, as `identity` (TLS + WebSocket on
/// `/ship/`) and asserts it answers HTTP 503 at the upgrade; see [`assert_503`].
pub async fn expect_503(
    identity: &Identity,
    addr: SocketAddr,
    ski: Ski,
    what: &str,
) -> transport::TransportError {
    let result = transport::dial(&tls(identity), addr, ski, "/ship/", &WsOptions::default()).await;
    assert_503(result, what)
}

/// How a hostile connection ended, as its client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// A WebSocket close frame with this code.
    Closed(Option<u16>),
    /// The transport ended without a close frame (reset or EOF).
    Dropped,
}

/// Reads until the victim ends the connection; returns how, and the messages before it.
pub async fn ending(socket: &mut ShipSocket<TcpStream>) -> (Ending, Vec<Vec<u8>>) {
    let mut messages = Vec::new();
    let result = tokio::time::timeout(WAIT, async {
        loop {
            match socket.next_event().await {
                Ok(SocketEvent::Message(bytes)) => messages.push(bytes),
                Ok(SocketEvent::Pong(_)) => {}
                Ok(SocketEvent::Closed { code, .. }) => return Ending::Closed(code),
                Ok(_) => {}
                Err(_) => return Ending::Dropped,
            }
        }
    })
    .await
    .expect("the victim ends a hostile connection within the failure bound");
    (result, messages)
}

/// Reads messages until one contains `needle`; panics if the connection ends first.
pub async fn expect_message<S>(socket: &mut ShipSocket<S>, needle: &str) -> Vec<u8>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let found = tokio::time::timeout(WAIT, async {
        loop {
            match socket.next_event().await {
                Ok(SocketEvent::Message(bytes)) => {
                    if contains(&bytes, needle.as_bytes()) {
                        return bytes;
                    }
                }
                Ok(SocketEvent::Pong(_)) => {}
                other => panic!("connection ended while waiting for {needle}: {other:?}"),
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("no {needle} within the failure bound"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// SHIP messages as bytes (docs/ship.md §5): the type byte, then EEBus JSON.
pub mod msg {
    fn control(json: &str) -> Vec<u8> {
        let mut out = vec![1u8];
        out.extend_from_slice(json.as_bytes());
        out
    }

    pub fn cmi() -> Vec<u8> {
        vec![0, 0]
    }
    pub fn hello_ready() -> Vec<u8> {
        control(r#"{"connectionHello":[{"phase":"ready"},{"waiting":60000}]}"#)
    }
    pub fn hello_pending() -> Vec<u8> {
        control(r#"{"connectionHello":[{"phase":"pending"},{"waiting":60000}]}"#)
    }
    pub fn hello_prolong() -> Vec<u8> {
        control(r#"{"connectionHello":[{"phase":"pending"},{"prolongationRequest":true}]}"#)
    }
    pub fn hello_aborted() -> Vec<u8> {
        control(r#"{"connectionHello":[{"phase":"aborted"}]}"#)
    }
    pub fn hello_waiting(phase: &str, waiting: &str) -> Vec<u8> {
        control(&format!(
            r#"{{"connectionHello":[{{"phase":"{phase}"}},{{"waiting":{waiting}}}]}}"#
        ))
    }
    fn handshake(kind: &str) -> Vec<u8> {
        control(&format!(
            r#"{{"messageProtocolHandshake":[{{"handshakeType":"{kind}"}},{{"version":[{{"major":1}},{{"minor":0}}]}},{{"formats":[{{"format":["JSON-UTF8"]}}]}}]}}"#
        ))
    }
    pub fn announce_max() -> Vec<u8> {
        handshake("announceMax")
    }
    pub fn select() -> Vec<u8> {
        handshake("select")
    }
    pub fn handshake_error() -> Vec<u8> {
        control(r#"{"messageProtocolHandshakeError":[{"error":2}]}"#)
    }
    pub fn pin_none() -> Vec<u8> {
        control(r#"{"connectionPinState":[{"pinState":"none"}]}"#)
    }
    pub fn access_methods_request() -> Vec<u8> {
        control(r#"{"accessMethodsRequest":[]}"#)
    }
    pub fn access_methods(id: &str) -> Vec<u8> {
        control(&format!(r#"{{"accessMethods":[{{"id":"{id}"}}]}}"#))
    }
    pub fn data(payload: &str) -> Vec<u8> {
        let mut out = vec![2u8];
        out.extend_from_slice(
            format!(
                r#"{{"data":[{{"header":[{{"protocolId":"ee1.0"}}]}},{{"payload":{payload}}}]}}"#
            )
            .as_bytes(),
        );
        out
    }
    pub fn close_announce() -> Vec<u8> {
        let mut out = vec![3u8];
        out.extend_from_slice(
            br#"{"connectionClose":[{"phase":"announce"},{"maxTime":500},{"reason":"unspecific"}]}"#,
        );
        out
    }
    pub fn close_confirm() -> Vec<u8> {
        let mut out = vec![3u8];
        out.extend_from_slice(br#"{"connectionClose":[{"phase":"confirm"}]}"#);
        out
    }
}

/// How far a scripted trusted client drives the SHIP handshake with the victim (the victim is
/// the server, §13.4): each stage is the victim's state when the script stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Nothing sent yet: the victim waits for the CMI.
    ExpectCmi,
    /// CMI exchanged: the victim waits for our hello.
    ExpectHello,
    /// Hello OK: the victim waits for `announceMax`.
    ExpectAnnounceMax,
    /// `select` received: the victim waits for our echo.
    ExpectSelectEcho,
    /// Protocol handshake done: the victim waits for our PIN state.
    ExpectPinState,
    /// Data exchange (the victim's access-methods request answered).
    DataExchange,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::ExpectCmi,
        Stage::ExpectHello,
        Stage::ExpectAnnounceMax,
        Stage::ExpectSelectEcho,
        Stage::ExpectPinState,
        Stage::DataExchange,
    ];
}

/// Drives a trusted client's handshake with the victim up to `stage`.
pub async fn advance<S>(socket: &mut ShipSocket<S>, stage: Stage)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    if stage == Stage::ExpectCmi {
        return;
    }
    socket.send(msg::cmi()).await.unwrap();
    expect_message(socket, "").await; // the victim's CMI
    if stage == Stage::ExpectHello {
        return;
    }
    socket.send(msg::hello_ready()).await.unwrap();
    expect_message(socket, "connectionHello").await;
    if stage == Stage::ExpectAnnounceMax {
        return;
    }
    socket.send(msg::announce_max()).await.unwrap();
    expect_message(socket, "select").await;
    if stage == Stage::ExpectSelectEcho {
        return;
    }
    socket.send(msg::select()).await.unwrap();
    if stage == Stage::ExpectPinState {
        return;
    }
    socket.send(msg::pin_none()).await.unwrap();
    expect_message(socket, "connectionPinState").await;
    socket.send(msg::access_methods_request()).await.unwrap();
    expect_message(socket, "accessMethodsRequest").await;
    socket.send(msg::access_methods("hostile-1")).await.unwrap();
    expect_message(socket, "accessMethods\"").await;
}
