//! The Hub over real TCP on 127.0.0.1 (OS-chosen ports): pairing, pairing requests, data both
//! ways, the connection cap, silent clients, re-entrant callbacks, unpair and shutdown; the
//! event stream; how often the trust store is rewritten (`trust_writes`).

use ship_hub::hub::PairedPeer;
use ship_test_support::{common, harness};

/// PIN verification between two hubs (in-memory LAN, paused clock).
mod hub_pin;

/// `Hub::events`, the async event stream.
mod hub_events;

/// How often a running hub rewrites its trust store while a peer keeps reconnecting.
mod trust_writes;

/// Pairings in memory: nothing at run time waits for the trust store.
mod pairings;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Recorder, Seen, identity, loopback_config, start};
use ship_hub::hub::{Hub, HubError, MemoryTrustStore, TrustStore};
use ship_hub::protocol::ConnectionState;
use ship_hub::transport::{self, ShipTls, TlsOptions, TlsSuite, WsOptions};

const WAIT: Duration = Duration::from_secs(20);

/// Two hubs that trust each other (one knows the other's address) pair and exchange data both
/// ways; the SHIP IDs are learned and stored.
#[tokio::test]
async fn two_hubs_pair_and_exchange_data_both_ways() {
    let (ra, rb) = (Recorder::new(), Recorder::new());
    let trust_a = Arc::new(MemoryTrustStore::default());
    let mut ca = loopback_config(identity("a"), "node-a", &ra);
    ca.trust_store = trust_a.clone();
    let a = start(ca).await;
    let b = start(loopback_config(identity("b"), "node-b", &rb)).await;
    b.pair(a.local_ski()).unwrap();
    a.pair(PairedPeer::new(b.local_ski()).with_address(b.local_addr()))
        .unwrap();

    assert!(
        ra.wait_for(WAIT, |s| *s == Seen::Connected(b.local_ski()))
            .await,
        "{:?}",
        ra.all()
    );
    assert!(
        rb.wait_for(WAIT, |s| *s == Seen::Connected(a.local_ski()))
            .await,
        "{:?}",
        rb.all()
    );
    assert_eq!(a.connected_peers().len(), 1);
    assert_eq!(
        a.connection_state(b.local_ski()),
        ConnectionState::Completed
    );

    a.send_data(
        b.local_ski(),
        br#"{"datagram":[{"header":[]},{"payload":[]}]}"#,
    )
    .unwrap();
    b.send_data(a.local_ski(), br#"{"hello":"from b"}"#)
        .unwrap();
    assert!(
        rb.wait_for(WAIT, |s| *s
            == Seen::Data(
                a.local_ski(),
                br#"{"datagram":[{"header":[]},{"payload":[]}]}"#.to_vec()
            ))
        .await
    );
    assert!(
        ra.wait_for(WAIT, |s| *s
            == Seen::Data(b.local_ski(), br#"{"hello":"from b"}"#.to_vec()))
            .await
    );
    assert!(
        ra.wait_for(
            WAIT,
            |s| matches!(s, Seen::ShipId(k, id) if *k == b.local_ski() && id.as_str() == "node-b")
        )
        .await
    );
    // The trust store is updated in the background: wait for it.
    a.pairings_saved().await.unwrap();
    let mut stored = trust_a.get(&b.local_ski()).unwrap().expect("paired");
    for _ in 0..100 {
        if stored.ship_id.is_some() && stored.last_address.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        stored = trust_a.get(&b.local_ski()).unwrap().expect("paired");
    }
    assert_eq!(stored.ship_id.as_ref().map(|s| s.as_str()), Some("node-b"));
    assert_eq!(stored.last_address, Some(b.local_addr()));

    assert!(matches!(
        a.send_data(b.local_ski(), b"not json"),
        Err(HubError::InvalidPayload(_))
    ));
    a.shutdown().await;
    b.shutdown().await;
}

/// By default an unknown peer's pairing request is refused: the dialler sees RemoteDeniedTrust
/// and the refusing hub never reaches data exchange with it.
#[tokio::test]
async fn pairing_request_refused_when_the_callback_says_no() {
    let (ra, rb) = (Recorder::new(), Recorder::new());
    let a = start(loopback_config(identity("a"), "node-a", &ra)).await;
    let b = start(loopback_config(identity("b"), "node-b", &rb)).await;
    a.pair(PairedPeer::new(b.local_ski()).with_address(b.local_addr()))
        .unwrap();
    assert!(
        rb.wait_for(WAIT, |s| *s == Seen::PairingRequested(a.local_ski()))
            .await
    );
    assert!(
        ra.wait_for(WAIT, |s| *s
            == Seen::State(b.local_ski(), ConnectionState::RemoteDeniedTrust))
            .await,
        "{:?}",
        ra.all()
    );
    assert_eq!(rb.count(|s| matches!(s, Seen::Connected(_))), 0);
    assert!(b.connected_peers().is_empty());
    a.shutdown().await;
    b.shutdown().await;
}

/// A dials B, which does not know A and lets it wait: returns once B shows the pairing request.
struct PendingRequest {
    a: Hub,
    b: Hub,
    ra: Arc<Recorder>,
    rb: Arc<Recorder>,
    trust_b: Arc<MemoryTrustStore>,
}

async fn pending_request() -> PendingRequest {
    let (ra, rb) = (Recorder::new(), Recorder::new());
    rb.let_wait.store(true, Ordering::SeqCst);
    let trust_b = Arc::new(MemoryTrustStore::default());
    let a = start(loopback_config(identity("a"), "node-a", &ra)).await;
    let mut cb = loopback_config(identity("b"), "node-b", &rb);
    cb.trust_store = trust_b.clone();
    let b = start(cb).await;
    a.pair(PairedPeer::new(b.local_ski()).with_address(b.local_addr()))
        .unwrap();
    let request = Seen::State(a.local_ski(), ConnectionState::ReceivedPairingRequest);
    assert!(rb.wait_for(WAIT, |s| *s == request).await, "{:?}", rb.all());
    PendingRequest {
        a,
        b,
        ra,
        rb,
        trust_b,
    }
}

/// A pending request is approved by the user: both sides complete and the approving side stores
/// the pairing.
#[tokio::test]
async fn pending_pairing_request_then_approve() {
    let PendingRequest {
        a,
        b,
        ra,
        rb,
        trust_b,
    } = pending_request().await;
    assert_eq!(
        b.connection_state(a.local_ski()),
        ConnectionState::ReceivedPairingRequest
    );
    b.approve(a.local_ski()).unwrap();
    assert!(
        rb.wait_for(WAIT, |s| *s == Seen::Connected(a.local_ski()))
            .await,
        "{:?}",
        rb.all()
    );
    assert!(
        ra.wait_for(WAIT, |s| *s == Seen::Connected(b.local_ski()))
            .await,
        "{:?}",
        ra.all()
    );
    b.pairings_saved().await.unwrap();
    assert!(trust_b.get(&a.local_ski()).unwrap().is_some());
    assert!(matches!(
        b.approve(a.local_ski()),
        Err(HubError::NoPendingRequest(_))
    ));
    a.shutdown().await;
    b.shutdown().await;
}

/// A pending request is denied by the user: the dialler sees RemoteDeniedTrust, nothing is stored.
#[tokio::test]
async fn pending_pairing_request_then_deny() {
    let PendingRequest {
        a,
        b,
        ra,
        rb,
        trust_b,
    } = pending_request().await;
    b.deny(a.local_ski()).unwrap();
    assert!(
        ra.wait_for(WAIT, |s| *s
            == Seen::State(b.local_ski(), ConnectionState::RemoteDeniedTrust))
            .await,
        "{:?}",
        ra.all()
    );
    b.pairings_saved().await.unwrap();
    assert!(trust_b.get(&a.local_ski()).unwrap().is_none());
    assert_eq!(rb.count(|s| matches!(s, Seen::Connected(_))), 0);
    a.shutdown().await;
    b.shutdown().await;
}

/// A callback that calls back into the hub (state, send, connected peers) does not deadlock.
#[tokio::test]
async fn callback_calling_back_into_the_hub() {
    let (ra, rb) = (Recorder::new(), Recorder::new());
    let a = start(loopback_config(identity("a"), "node-a", &ra)).await;
    let b = start(loopback_config(identity("b"), "node-b", &rb)).await;
    let a_handle: Hub = a.clone();
    // What the callback saw, asserted below: a panic inside a callback is caught by the hub.
    let observed = Arc::new(std::sync::Mutex::new(None));
    let record = observed.clone();
    let _ = ra.on_connected.set(Box::new(move |ski| {
        let state = a_handle.connection_state(ski);
        let peers = a_handle.connected_peers().len();
        let sent = a_handle.send_data(ski, br#"{"from":"callback"}"#).is_ok();
        let _ = a_handle.metrics();
        *record.lock().unwrap() = Some((state, peers, sent));
    }));
    b.pair(a.local_ski()).unwrap();
    a.pair(PairedPeer::new(b.local_ski()).with_address(b.local_addr()))
        .unwrap();
    assert!(
        rb.wait_for(WAIT, |s| *s
            == Seen::Data(a.local_ski(), br#"{"from":"callback"}"#.to_vec()))
            .await,
        "{:?}",
        rb.all()
    );
    assert_eq!(
        *observed.lock().unwrap(),
        Some((ConnectionState::Completed, 1, true)),
        "state, connected peers and send_data as seen inside on_connected"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// The 11th incoming connection gets HTTP 503 while the 10 admitted ones keep exchanging data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eleventh_incoming_connection_gets_503_and_the_ten_keep_working() {
    let rs = Recorder::new();
    let server = start(loopback_config(identity("server"), "server", &rs)).await;
    let mut clients = Vec::new();
    for i in 0..10 {
        let rc = Recorder::new();
        let client = start(loopback_config(
            identity("client"),
            &format!("client-{i}"),
            &rc,
        ))
        .await;
        server.pair(client.local_ski()).unwrap();
        client
            .pair(PairedPeer::new(server.local_ski()).with_address(server.local_addr()))
            .unwrap();
        assert!(
            rc.wait_for(WAIT, |s| *s == Seen::Connected(server.local_ski()))
                .await,
            "client {i}: {:?}",
            rc.all()
        );
        clients.push((client, rc));
    }
    assert!(
        rs.wait_for(WAIT, |_| rs.count(|s| matches!(s, Seen::Connected(_)))
            == 10)
            .await
    );
    assert_eq!(server.connected_peers().len(), 10);

    // The 11th: a raw dial, so the 503 itself is visible.
    let extra = identity("extra");
    server.pair(extra.ski()).unwrap();
    harness::expect_503(
        &extra,
        server.local_addr(),
        server.local_ski(),
        "the 11th connection",
    )
    .await;

    for (i, (client, rc)) in clients.iter().enumerate() {
        let payload = format!(r#"{{"n":{i}}}"#);
        server
            .send_data(client.local_ski(), payload.as_bytes())
            .unwrap();
        assert!(
            rc.wait_for(WAIT, |s| *s
                == Seen::Data(server.local_ski(), payload.as_bytes().to_vec()))
                .await
        );
    }
    for (client, _) in &clients {
        client.shutdown().await;
    }
    server.shutdown().await;
}

/// 200 TCP clients that never speak are dropped at the transport handshake deadline; a paired
/// peer connected meanwhile is unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tcp_clients_are_dropped_at_the_deadline_and_paired_peers_are_unaffected() {
    let (ra, rb) = (Recorder::new(), Recorder::new());
    let mut ca = loopback_config(identity("a"), "node-a", &ra);
    ca.limits.transport_handshake_timeout = Duration::from_secs(2);
    ca.limits.max_handshakes_in_progress = 300;
    // All from 127.0.0.1: lift the per-address cap too, so that each is held to the deadline.
    ca.limits.max_handshakes_per_address = 300;
    let a = start(ca).await;
    let b = start(loopback_config(identity("b"), "node-b", &rb)).await;
    a.pair(b.local_ski()).unwrap();
    b.pair(PairedPeer::new(a.local_ski()).with_address(a.local_addr()))
        .unwrap();
    assert!(
        ra.wait_for(WAIT, |s| *s == Seen::Connected(b.local_ski()))
            .await
    );

    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(
            tokio::net::TcpStream::connect(a.local_addr())
                .await
                .unwrap(),
        );
    }
    // Each silent client is closed by the hub: reading gives EOF (or a reset).
    let started = std::time::Instant::now();
    for mut stream in silent {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(30), stream.read(&mut buf))
            .await
            .expect("closed by the hub before 30 s")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    assert!(started.elapsed() < Duration::from_secs(30));
    b.send_data(a.local_ski(), br#"{"still":"here"}"#).unwrap();
    assert!(
        ra.wait_for(WAIT, |s| *s
            == Seen::Data(b.local_ski(), br#"{"still":"here"}"#.to_vec()))
            .await
    );
    assert_eq!(ra.count(|s| matches!(s, Seen::Disconnected(..))), 0);
    a.shutdown().await;
    b.shutdown().await;
}

/// Unpairing while the peer is mid-handshake (pending for the user on the other side) closes the
/// connection and stops redialling.
#[tokio::test]
async fn unpair_during_a_handshake_closes_and_stops_redialling() {
    let (ra, rb) = (Recorder::new(), Recorder::new());
    rb.let_wait.store(true, Ordering::SeqCst);
    let a = start(loopback_config(identity("a"), "node-a", &ra)).await;
    let b = start(loopback_config(identity("b"), "node-b", &rb)).await;
    a.pair(PairedPeer::new(b.local_ski()).with_address(b.local_addr()))
        .unwrap();
    assert!(
        rb.wait_for(WAIT, |s| *s == Seen::PairingRequested(a.local_ski()))
            .await
    );
    a.unpair(b.local_ski()).unwrap();
    assert!(
        ra.wait_for(WAIT, |s| *s
            == Seen::State(b.local_ski(), ConnectionState::None))
            .await,
        "{:?}",
        ra.all()
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert!(a.connections(b.local_ski()).is_empty());
    assert_eq!(
        rb.count(|s| *s == Seen::PairingRequested(a.local_ski())),
        1,
        "redialled after unpair"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// Shutdown in the middle of a handshake and of data exchange ends within its deadline; the
/// connected peer sees a SHIP close (a disconnect with the peer's close, not a keepalive timeout).
#[tokio::test]
async fn shutdown_mid_handshake_and_data_is_graceful_and_bounded() {
    let (ra, rb, rc) = (Recorder::new(), Recorder::new(), Recorder::new());
    rc.let_wait.store(true, Ordering::SeqCst);
    let a = start(loopback_config(identity("a"), "node-a", &ra)).await;
    let b = start(loopback_config(identity("b"), "node-b", &rb)).await;
    let c = start(loopback_config(identity("c"), "node-c", &rc)).await;
    b.pair(a.local_ski()).unwrap();
    a.pair(PairedPeer::new(b.local_ski()).with_address(b.local_addr()))
        .unwrap();
    a.pair(PairedPeer::new(c.local_ski()).with_address(c.local_addr()))
        .unwrap();
    assert!(
        rb.wait_for(WAIT, |s| *s == Seen::Connected(a.local_ski()))
            .await
    );
    assert!(
        ra.wait_for(WAIT, |s| *s == Seen::Connected(b.local_ski()))
            .await
    );
    assert!(
        rc.wait_for(WAIT, |s| *s == Seen::PairingRequested(a.local_ski()))
            .await
    );
    for i in 0..20 {
        a.send_data(b.local_ski(), format!(r#"{{"i":{i}}}"#).as_bytes())
            .unwrap();
    }
    let report = a.shutdown().await;
    assert!(report.connections_closed_in_time, "{report:?}");
    assert_eq!(report.tasks_aborted, 0);
    // A correctness bound, not a speed claim: the configured overall deadline (5 s by default)
    // plus slack for a loaded machine; the graceful closes above prove nothing was cut short.
    assert!(report.elapsed <= Duration::from_secs(5 + 2), "{report:?}");
    assert!(
        rb.wait_for(
            WAIT,
            |s| matches!(s, Seen::Disconnected(k, _) if *k == a.local_ski())
        )
        .await
    );
    let reason = rb.all().into_iter().find_map(|s| match s {
        Seen::Disconnected(_, reason) => Some(reason),
        _ => None,
    });
    assert!(!reason.unwrap().contains("keepalive"));
    // The data sent before the shutdown arrived (flushed before the close).
    assert!(
        rb.wait_for(WAIT, |s| *s
            == Seen::Data(a.local_ski(), br#"{"i":19}"#.to_vec()))
            .await
    );
    b.shutdown().await;
    c.shutdown().await;
}

/// A hub refuses a connection that presents its own SKI, and pairing with itself.
#[tokio::test]
async fn own_ski_is_refused() {
    let ra = Recorder::new();
    let me = identity("me");
    let twin = me.clone();
    let a = start(loopback_config(me, "node-a", &ra)).await;
    assert!(matches!(a.pair(a.local_ski()), Err(HubError::OwnSki(_))));
    let tls = ShipTls::new(&twin, TlsOptions::default()).unwrap();
    let result = transport::dial(
        &tls,
        a.local_addr(),
        a.local_ski(),
        "/ship/",
        &WsOptions::default(),
    )
    .await;
    assert!(
        result.is_err(),
        "a connection with our own SKI must not be admitted"
    );
    a.shutdown().await;
}

/// Two hubs that trust each other (A knows B's address), once both report the other connected.
async fn connected_pair() -> (Hub, Hub, Arc<Recorder>, Arc<Recorder>) {
    let (ra, rb) = (Recorder::new(), Recorder::new());
    let a = start(loopback_config(identity("a"), "node-a", &ra)).await;
    let b = start(loopback_config(identity("b"), "node-b", &rb)).await;
    b.pair(a.local_ski()).unwrap();
    a.pair(PairedPeer::new(b.local_ski()).with_address(b.local_addr()))
        .unwrap();
    assert!(
        ra.wait_for(WAIT, |s| *s == Seen::Connected(b.local_ski()))
            .await
    );
    assert!(
        rb.wait_for(WAIT, |s| *s == Seen::Connected(a.local_ski()))
            .await
    );
    (a, b, ra, rb)
}

/// `disconnect` closes the connection gracefully on both sides; the pairing stays, so the peer is
/// redialled by the first backoff tier (0–3 s) and connected again.
#[tokio::test]
async fn disconnect_closes_gracefully_and_the_paired_peer_is_redialled() {
    let (a, b, ra, rb) = connected_pair().await;
    a.disconnect(b.local_ski()).unwrap();
    assert!(ra.wait_for(WAIT, |s| matches!(s, Seen::Disconnected(k, r) if *k == b.local_ski() && r.contains("locally"))).await, "{:?}", ra.all());
    assert!(
        rb.wait_for(
            WAIT,
            |s| matches!(s, Seen::Disconnected(k, _) if *k == a.local_ski())
        )
        .await
    );
    assert!(
        ra.wait_for(WAIT, |_| ra.count(|s| *s == Seen::Connected(b.local_ski()))
            == 2)
            .await,
        "{:?}",
        ra.all()
    );
    assert!(matches!(
        a.disconnect(ship_hub::Ski::from_bytes([7; 20])),
        Err(HubError::NotConnected(_))
    ));
    a.shutdown().await;
    b.shutdown().await;
}

/// Dropping the last handle without `shutdown` stops the hub: the port is released and the
/// peer sees the connection end.
#[tokio::test]
async fn dropping_the_last_handle_stops_the_hub() {
    let (a, b, _ra, rb) = connected_pair().await;
    let a_addr = a.local_addr();
    drop(a);
    assert!(
        rb.wait_for(WAIT, |s| matches!(s, Seen::Disconnected(..)))
            .await,
        "{:?}",
        rb.all()
    );
    // The listener is gone: the port can be bound again.
    let mut rebound = false;
    for _ in 0..100 {
        if std::net::TcpListener::bind(a_addr).is_ok() {
            rebound = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(rebound, "the dropped hub still holds {a_addr}");
    b.shutdown().await;
}

/// `start` fails with a typed error when the port is taken.
#[tokio::test]
async fn start_fails_with_a_typed_error_when_the_port_is_taken() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut config = loopback_config(identity("a"), "node-a", &Recorder::new());
    config.bind = taken.local_addr().unwrap();
    match Hub::start(config).await {
        Err(HubError::Bind { addr, .. }) => assert_eq!(addr, taken.local_addr().unwrap()),
        other => panic!("expected a bind error, got {other:?}"),
    }
}

/// Strangers cannot take the slots paired peers need: with two unknown peers waiting for a
/// decision (the default `max_unpaired_connections`), a third unknown SKI gets 503, while a
/// paired peer still connects and exchanges data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_peers_cannot_take_the_slots_of_paired_peers() {
    let rs = Recorder::new();
    rs.let_wait.store(true, Ordering::SeqCst);
    let mut config = loopback_config(identity("server"), "server", &rs);
    // Every stranger dials from 127.0.0.1: allow both strangers' slots to one address, so that
    // the cap in all is what refuses the third (the per-address cap is tested in
    // tests/robustness/websocket.rs).
    config.limits.max_unpaired_per_address = 2;
    let server = start(config).await;
    let mut strangers = Vec::new();
    for i in 0..2 {
        let r = Recorder::new();
        let stranger = start(loopback_config(
            identity("stranger"),
            &format!("stranger-{i}"),
            &r,
        ))
        .await;
        stranger
            .pair(PairedPeer::new(server.local_ski()).with_address(server.local_addr()))
            .unwrap();
        let ski = stranger.local_ski();
        assert!(
            rs.wait_for(WAIT, |s| *s == Seen::PairingRequested(ski))
                .await
        );
        strangers.push(stranger);
    }
    let third = identity("third");
    harness::expect_503(
        &third,
        server.local_addr(),
        server.local_ski(),
        "a third stranger",
    )
    .await;

    let rp = Recorder::new();
    let paired = start(loopback_config(identity("paired"), "paired", &rp)).await;
    server.pair(paired.local_ski()).unwrap();
    paired
        .pair(PairedPeer::new(server.local_ski()).with_address(server.local_addr()))
        .unwrap();
    assert!(
        rp.wait_for(WAIT, |s| *s == Seen::Connected(server.local_ski()))
            .await,
        "{:?}",
        rp.all()
    );
    paired
        .send_data(server.local_ski(), br#"{"paired":true}"#)
        .unwrap();
    assert!(rs.wait_for(WAIT, |s| matches!(s, Seen::Data(..))).await);
    for hub in strangers.into_iter().chain([paired, server]) {
        hub.shutdown().await;
    }
}

/// Issue 23, bug 1: an approved connection kept its strangers' slot until it ended, so with the
/// default caps (2 in all, 1 per address) the second new device from the same address, and the
/// third from anywhere, got HTTP 503 for as long as the first ones stayed connected. Now a
/// connection gives its slot back the moment its peer is paired: four new devices, all from
/// 127.0.0.1, approved one after another, all end Completed and stay connected.
#[tokio::test]
async fn new_devices_approved_one_after_another_all_pair_with_the_default_caps() {
    let rs = Recorder::new();
    rs.let_wait.store(true, Ordering::SeqCst);
    let server = start(loopback_config(identity("server"), "server", &rs)).await;
    let mut devices = Vec::new();
    for i in 0..4 {
        let rd = Recorder::new();
        let device = start(loopback_config(
            identity(&format!("device-{i}")),
            &format!("device-{i}"),
            &rd,
        ))
        .await;
        device
            .pair(PairedPeer::new(server.local_ski()).with_address(server.local_addr()))
            .unwrap();
        let ski = device.local_ski();
        assert!(
            rs.wait_for(WAIT, |s| *s == Seen::PairingRequested(ski))
                .await,
            "device {i} never asked: {:?}, {:?}",
            server.metrics().failures,
            rd.all()
        );
        // Approved, or (every other one) paired by SKI while its request waits.
        if i % 2 == 0 {
            server.approve(ski).unwrap();
        } else {
            server.pair(ski).unwrap();
        }
        assert!(
            rd.wait_for(WAIT, |s| *s == Seen::Connected(server.local_ski()))
                .await,
            "device {i}: {:?}",
            rd.all()
        );
        devices.push((device, rd));
    }
    for (device, _) in &devices {
        assert_eq!(
            server.connection_state(device.local_ski()),
            ConnectionState::Completed
        );
    }
    assert_eq!(server.connected_peers().len(), 4);
    assert!(
        devices
            .iter()
            .all(|(_, rd)| rd.count(|s| matches!(s, Seen::Disconnected(..))) == 0)
    );
    for (device, _) in devices {
        device.shutdown().await;
    }
    server.shutdown().await;
}

/// A refusal by an admission cap reaches the application (callbacks and event stream) at most
/// once per source address and interval, with the count in between, and is counted by cap.
#[tokio::test]
async fn a_refusal_by_a_cap_is_reported_once_per_source_and_counted_by_cap() {
    use ship_hub::hub::{AdmissionCap, HubEvent};
    let rs = Recorder::new();
    rs.let_wait.store(true, Ordering::SeqCst);
    let server = start(loopback_config(identity("server"), "server", &rs)).await;
    let mut events = server.events();
    // A stranger waits for a decision: it holds the one strangers' slot of 127.0.0.1.
    let rw = Recorder::new();
    let waiting = start(loopback_config(identity("waiting"), "waiting", &rw)).await;
    waiting
        .pair(PairedPeer::new(server.local_ski()).with_address(server.local_addr()))
        .unwrap();
    assert!(
        rs.wait_for(WAIT, |s| *s == Seen::PairingRequested(waiting.local_ski()))
            .await
    );
    // Three more strangers from the same address: each gets 503.
    for i in 0..3 {
        harness::expect_503(
            &identity("refused"),
            server.local_addr(),
            server.local_ski(),
            &format!("stranger {i}"),
        )
        .await;
    }
    // Counted once the server's admission task ends, just after the client read the 503.
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.metrics().refusals.total() < 3 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let metrics = server.metrics();
    assert_eq!(metrics.refusals.unpaired_per_address, 3, "{metrics:?}");
    assert_eq!(metrics.refusals.total(), 3);
    assert_eq!(metrics.failures.refused_by_cap, 3);
    // One report (the first refusal); the next would come a minute later with the count.
    let report = loop {
        match tokio::time::timeout(WAIT, events.next()).await {
            Ok(Some(HubEvent::AdmissionRefused(report))) => break report,
            Ok(Some(_)) => {}
            other => panic!("no refusal reported: {other:?}"),
        }
    };
    assert_eq!(report.address, std::net::IpAddr::from([127, 0, 0, 1]));
    assert_eq!(report.cap, AdmissionCap::UnpairedPerAddress);
    assert_eq!(report.refused, 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Some(event) = events.try_next() {
        assert!(
            !matches!(event, HubEvent::AdmissionRefused(_)),
            "a second report within the interval: {event:?}"
        );
    }
    waiting.shutdown().await;
    server.shutdown().await;
}

/// The full SHIP handshake and data both ways over SHIP §9's mandatory suite alone: two hubs
/// restricted to `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256`, and a default hub with a CBC-only hub
/// in both dial directions (the only suite they share is CBC); two default hubs for contrast.
/// Each side's `Hub::connections` reports the negotiated suite: CBC, or AES_128_GCM for the
/// default pair.
#[tokio::test]
async fn hubs_restricted_to_the_cbc_suite_pair_and_exchange_data() {
    let cbc = Some(vec![TlsSuite::Aes128CbcSha256]);
    for (a_suites, b_suites, negotiated) in [
        (cbc.clone(), cbc.clone(), TlsSuite::Aes128CbcSha256),
        (None, cbc.clone(), TlsSuite::Aes128CbcSha256),
        (cbc.clone(), None, TlsSuite::Aes128CbcSha256),
        (None, None, TlsSuite::Aes128GcmSha256),
    ] {
        let what = format!("A {a_suites:?}, B {b_suites:?}");
        let (ra, rb) = (Recorder::new(), Recorder::new());
        let mut ca = loopback_config(identity("a"), "node-a", &ra);
        ca.tls.cipher_suites = a_suites;
        let mut cb = loopback_config(identity("b"), "node-b", &rb);
        cb.tls.cipher_suites = b_suites;
        let a = start(ca).await;
        let b = start(cb).await;
        b.pair(a.local_ski()).unwrap();
        a.pair(PairedPeer::new(b.local_ski()).with_address(b.local_addr()))
            .unwrap();
        for (recorder, peer) in [(&ra, b.local_ski()), (&rb, a.local_ski())] {
            assert!(
                recorder
                    .wait_for(WAIT, |s| *s == Seen::Connected(peer))
                    .await,
                "{what}: {:?}",
                recorder.all()
            );
        }
        for (hub, peer) in [(&a, b.local_ski()), (&b, a.local_ski())] {
            let suites: Vec<_> = hub.connections(peer).iter().map(|c| c.tls_suite).collect();
            assert!(
                !suites.is_empty() && suites.iter().all(|s| *s == Some(negotiated)),
                "{what}: {suites:?}"
            );
        }
        let big = format!("{{\"fill\":\"{}\"}}", "x".repeat(20_000)).into_bytes();
        a.send_data(b.local_ski(), &big).unwrap();
        b.send_data(a.local_ski(), br#"{"hello":"from b"}"#)
            .unwrap();
        assert!(
            rb.wait_for(WAIT, |s| *s == Seen::Data(a.local_ski(), big.clone()))
                .await,
            "{what}"
        );
        assert!(
            ra.wait_for(WAIT, |s| *s
                == Seen::Data(b.local_ski(), br#"{"hello":"from b"}"#.to_vec()))
                .await,
            "{what}"
        );
        a.shutdown().await;
        b.shutdown().await;
    }
}

/// A failed dial reaches the application typed: `StateDetail::failure` is `EndCause::Dial` with
/// the `DialError` (here a refused TCP connection), and its words are the dial error's.
#[tokio::test]
async fn a_failed_dial_reaches_the_application_typed() {
    use ship_hub::hub::{DialError, EndCause};
    let ra = Recorder::new();
    let a = start(loopback_config(identity("a"), "node-a", &ra)).await;
    // A port nobody listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let nobody = identity("nobody").ski();
    a.pair(PairedPeer::new(nobody).with_address(closed))
        .unwrap();
    assert!(
        ra.wait_for(WAIT, |s| *s == Seen::State(nobody, ConnectionState::Error))
            .await,
        "{:?}",
        ra.all()
    );
    let detail = ra.details_of(nobody, ConnectionState::Error)[0].clone();
    let Some(failure @ EndCause::Dial(error)) = &detail.failure else {
        panic!("{detail:?}")
    };
    assert!(matches!(**error, DialError::Transport(_)), "{error:?}");
    assert_eq!(failure.to_string(), error.to_string());
    a.shutdown().await;
}
