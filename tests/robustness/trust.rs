//! Trust on real loopback sockets (SHIP §13.4.4.1, docs/ship.md §1): an untrusted SKI never
//! receives or delivers a data message, whatever it sends; with auto-accept off nothing is
//! paired without an explicit decision. Each test ends by checking the paired friend is served.

use ship_test_support::common;
use ship_test_support::harness;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use harness::{Victim, WAIT, connect, msg};
use ship_hub::Ski;
use ship_hub::hub::{HubError, MemoryTrustStore, TrustStore};
use ship_hub::protocol::ConnectionState;
use ship_hub::transport::{ShipSocket, SocketEvent};
use tokio::net::TcpStream;

use common::{Seen, identity};

/// Sends `script` (ignoring send errors once the victim closed) and collects what the victim
/// sent until it ended the connection.
async fn run_script(socket: &mut ShipSocket<TcpStream>, script: &[Vec<u8>]) -> Vec<Vec<u8>> {
    for bytes in script {
        if socket.send(bytes.clone()).await.is_err() {
            break;
        }
    }
    harness::ending(socket).await.1
}

/// Scripts of an untrusted client that tries to reach data exchange without hello OK.
fn scripts() -> Vec<(&'static str, Vec<Vec<u8>>)> {
    let data = || msg::data(r#"{"sneaky":1}"#);
    vec![
        ("data right after CMI", vec![msg::cmi(), data()]),
        (
            "skips hello",
            vec![
                msg::cmi(),
                msg::announce_max(),
                msg::select(),
                msg::pin_none(),
                msg::access_methods_request(),
                msg::access_methods("intruder"),
                data(),
            ],
        ),
        (
            "hello ready then everything",
            vec![
                msg::cmi(),
                msg::hello_ready(),
                msg::announce_max(),
                msg::select(),
                msg::pin_none(),
                msg::access_methods_request(),
                msg::access_methods("intruder"),
                data(),
            ],
        ),
        (
            "every message type",
            vec![
                msg::cmi(),
                msg::hello_ready(),
                msg::hello_pending(),
                msg::hello_prolong(),
                msg::announce_max(),
                msg::select(),
                msg::handshake_error(),
                msg::pin_none(),
                msg::access_methods_request(),
                msg::access_methods("intruder"),
                data(),
                msg::close_confirm(),
                vec![0xFF, 0],
                vec![2],
                msg::close_announce(),
            ],
        ),
        ("data only", vec![data(), data(), data()]),
    ]
}

fn is_data(bytes: &[u8]) -> bool {
    bytes.first() == Some(&2)
}

async fn untrusted_never_exchanges_data(let_wait: bool) {
    let victim = Victim::start().await;
    victim.rec.let_wait.store(let_wait, Ordering::SeqCst);
    for (name, script) in scripts() {
        let intruder = identity("intruder");
        let ski = intruder.ski();
        let mut socket = connect(&victim, &intruder).await;
        // The victim's application tries to send to it the whole time.
        let sent = victim.hub.send_data(ski, br#"{"secret":1}"#);
        assert!(
            matches!(sent, Err(HubError::NotConnected(_))),
            "{name}: {sent:?}"
        );
        let received = run_script(&mut socket, &script).await;
        assert!(
            !received.iter().any(|m| is_data(m)),
            "{name}: the untrusted client received data"
        );
        assert_eq!(victim.data_from(ski), 0, "{name}: data delivered");
        assert_eq!(
            victim.rec.count(|s| *s == Seen::Connected(ski)),
            0,
            "{name}"
        );
        assert_ne!(victim.hub.connection_state(ski), ConnectionState::Completed);
    }
    victim.assert_serving().await;
    victim.stop().await;
}

/// The application refuses pairing requests (the default answer): no script gets data through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_ski_never_exchanges_data_when_refused() {
    untrusted_never_exchanges_data(false).await;
}

/// The application lets requests wait for the user (hello pending): still no data either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_ski_never_exchanges_data_while_pending() {
    untrusted_never_exchanges_data(true).await;
}

/// With auto-accept off, a well-behaved unknown peer waits in ReceivedPairingRequest: no
/// pairing is stored and no data flows until the application decides; when the victim's hello
/// wait runs out the connection ends, still unpaired. Only `approve` pairs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_accept_off_pairs_only_on_an_explicit_decision() {
    let trust = Arc::new(MemoryTrustStore::default());
    let store = trust.clone();
    let victim = Victim::start_with(move |c| {
        c.trust_store = store;
        c.protocol.hello_init = Duration::from_secs(2);
    })
    .await;
    assert!(!victim.hub.auto_accept());
    victim.rec.let_wait.store(true, Ordering::SeqCst);
    let newcomer = identity("newcomer");
    let ski = newcomer.ski();

    // 1. Nobody decides: the request is shown, then the wait ends; nothing stored.
    let mut socket = connect(&victim, &newcomer).await;
    socket.send(msg::cmi()).await.unwrap();
    socket.send(msg::hello_ready()).await.unwrap();
    let request = Seen::State(ski, ConnectionState::ReceivedPairingRequest);
    assert!(victim.rec.wait_for(WAIT, |s| *s == request).await);
    assert!(trust.get(&ski).unwrap().is_none());
    let received = harness::ending(&mut socket).await.1;
    assert!(!received.iter().any(|m| is_data(m)));
    assert!(
        victim.hub.pairing(ski).is_none(),
        "paired without a decision"
    );
    victim.hub.pairings_saved().await.unwrap();
    assert!(
        trust.get(&ski).unwrap().is_none(),
        "stored without a decision"
    );
    assert_eq!(victim.rec.count(|s| *s == Seen::Connected(ski)), 0);

    // 2. The user approves the next request: now (and only now) it is paired and connected.
    let mut socket = connect(&victim, &newcomer).await;
    socket.send(msg::cmi()).await.unwrap();
    socket.send(msg::hello_ready()).await.unwrap();
    let requests = |v: &Victim| v.rec.count(|s| *s == Seen::PairingRequested(ski));
    assert!(victim.rec.wait_for(WAIT, |_| requests(&victim) == 2).await);
    victim.hub.approve(ski).unwrap();
    expect_ready(&mut socket).await;
    socket.send(msg::announce_max()).await.unwrap();
    harness::expect_message(&mut socket, "select").await;
    socket.send(msg::select()).await.unwrap();
    socket.send(msg::pin_none()).await.unwrap();
    socket.send(msg::access_methods_request()).await.unwrap();
    harness::expect_message(&mut socket, "accessMethodsRequest").await;
    socket
        .send(msg::access_methods("newcomer-1"))
        .await
        .unwrap();
    assert!(
        victim
            .rec
            .wait_for(WAIT, |s| *s == Seen::Connected(ski))
            .await,
        "{:?}",
        victim.rec.all()
    );
    victim.hub.pairings_saved().await.unwrap();
    assert!(trust.get(&ski).unwrap().is_some());
    victim.assert_serving().await;
    drop(socket);
    victim.stop().await;
}

/// Waits for the victim's hello `ready` (sent after the user approved).
async fn expect_ready(socket: &mut ShipSocket<TcpStream>) {
    tokio::time::timeout(WAIT, async {
        loop {
            match socket.next_event().await {
                Ok(SocketEvent::Message(m)) if String::from_utf8_lossy(&m).contains("ready") => {
                    return;
                }
                Ok(SocketEvent::Message(_) | SocketEvent::Pong(_)) => {}
                other => panic!("ended before hello ready: {other:?}"),
            }
        }
    })
    .await
    .expect("hello ready after approve");
}

/// A SKI that was paired and then unpaired is untrusted again: its reconnect gets no data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaired_ski_is_untrusted_again() {
    let victim = Victim::start().await;
    let former = identity("former");
    let ski: Ski = former.ski();
    victim.hub.pair(ski).unwrap();
    let mut socket = connect(&victim, &former).await;
    harness::advance(&mut socket, harness::Stage::DataExchange).await;
    assert!(
        victim
            .rec
            .wait_for(WAIT, |s| *s == Seen::Connected(ski))
            .await
    );
    victim.hub.unpair(ski).unwrap();
    let _ = harness::ending(&mut socket).await;
    let mut socket = connect(&victim, &former).await;
    let received = run_script(&mut socket, &scripts()[2].1).await;
    assert!(!received.iter().any(|m| is_data(m)));
    assert_eq!(victim.data_from(ski), 0);
    victim.assert_serving().await;
    victim.stop().await;
}

/// With auto-accept on, every peer is paired as it arrives, so the strangers' caps
/// (`max_unpaired_connections` 2, `max_unpaired_per_address` 1) do not hold its connection
/// back: five newcomers from one address all reach data exchange and stay connected at once
/// (before, the second got HTTP 503 at the upgrade). The hub keeps serving its paired friend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_accept_lets_more_newcomers_than_the_strangers_caps_connect_at_once() {
    let victim = Victim::start_with(|c| c.auto_accept = true).await;
    let mut held = Vec::new();
    for n in 0..5 {
        let newcomer = identity(&format!("auto-{n}"));
        let ski = newcomer.ski();
        let mut socket = connect(&victim, &newcomer).await;
        harness::advance(&mut socket, harness::Stage::DataExchange).await;
        assert!(
            victim
                .rec
                .wait_for(WAIT, |s| *s == Seen::Connected(ski))
                .await,
            "newcomer {n}: {:?}",
            victim.rec.all()
        );
        held.push(socket);
    }
    assert_eq!(victim.hub.connected_peers().len(), 6);
    victim.assert_serving().await;
    drop(held);
    victim.stop().await;
}
