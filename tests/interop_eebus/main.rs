//! Interoperability with an implementation nobody here wrote: the `eebus` crate (crates.io,
//! dev-dependency) against our [`Hub`], over TCP on 127.0.0.1 with OS-chosen ports.
//!
//! Direction 1: an `eebus::runtime::Node` dials our Hub (which pre-trusts its SKI).
//! Direction 2: our Hub dials an `eebus::runtime::Node` (which pre-trusts our SKI).
//! In both, each side must reach data exchange and data must flow both ways: raw SHIP data
//! messages (asserted byte for byte) and a typed SPINE datagram (asserted by value on their
//! side, byte for byte on ours). See docs/interop.md.

use ship_hub::hub::PairedPeer;
use ship_test_support::common;

/// PIN verification against the eebus crate.
mod interop_eebus_pin;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Recorder, Seen, identity, loopback_config, start};
use eebus::cert::{self as eebus_cert, CertParams};
use eebus::model::{self as spine, Datagram, MsgCounter};
use eebus::runtime::{Node, PendingPeer, ShipConnection, TrustReporter, TrustStore as EebusTrust};
use eebus::ship::{
    AbortReason, ConnectionClose, ConnectionClosePhase, ConnectionCloseReason, Data, DataMessage,
    EndMessage, Header as ShipHeader, ProtocolId, ShipMessage, Ski as EebusSki, spine_datagram,
    spine_message,
};
use eebus::tls::ShipTls;
use ship_hub::Ski;
use ship_hub::hub::{Direction, Hub, MemoryTrustStore, PairingDecision, TrustStore as _};
use ship_hub::protocol::{ConnectionState, ShipMessage as ShipMessageOurs};
use ship_hub::transport::TlsSuite;
use tokio::sync::{mpsc, oneshot};

/// Generous: a handshake on a loaded 2-core machine takes well under a second.
const WAIT: Duration = Duration::from_secs(20);

/// The SHIP ID the eebus node uses (their SHIP ID form, `i:<PEN>_u:<id>`).
const THEIR_SHIP_ID: &str = "i:99999_u:eebus-interop";

/// The SHIP ID our hub uses.
const OUR_SHIP_ID: &str = "ship-hub-interop";

/// Both stacks log through `tracing`; `RUST_LOG=debug` shows the two handshakes side by side.
fn trace_from_env() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// An eebus node with a fresh identity made by their own certificate code.
fn eebus_node(trust: EebusTrust) -> Node {
    let identity = eebus_cert::self_signed(CertParams::new(THEIR_SHIP_ID)).expect("eebus identity");
    Node::new(THEIR_SHIP_ID, ShipTls::new(identity), trust)
}

fn ours(ski: EebusSki) -> Ski {
    Ski::from_bytes(*ski.as_bytes())
}

fn theirs(ski: Ski) -> EebusSki {
    EebusSki::from_bytes(*ski.as_bytes())
}

/// A SHIP data message (`protocolId` `ee1.0`) with an arbitrary JSON payload, built with
/// their message types.
fn their_data_message(payload: serde_json::Value) -> ShipMessage {
    ShipMessage::Data(DataMessage::Data(Data {
        header: Some(ShipHeader {
            protocol_id: Some(ProtocolId("ee1.0".into())),
        }),
        payload: Some(payload),
        extension: None,
    }))
}

/// A SPINE datagram built with their model: a read with a message counter.
fn their_datagram(counter: u64) -> Datagram {
    Datagram {
        header: Some(spine::Header {
            specification_version: Some(spine::SpecificationVersion::from("1.3.0")),
            msg_counter: Some(MsgCounter(counter)),
            cmd_classifier: Some(spine::CmdClassifier::Read),
            ..Default::default()
        }),
        payload: Some(Default::default()),
    }
}

/// What the eebus side's driver reports to the test.
#[derive(Debug)]
enum TheirEvent {
    /// A SHIP data message arrived.
    Data(DataMessage),
    /// Their connection ended: the `connectionClose` they received (Debug form), or their error.
    Ended(String),
}

/// What the test asks the eebus side's driver to do.
enum TheirCommand {
    Send(ShipMessage, oneshot::Sender<Result<(), String>>),
    PeerShipId(oneshot::Sender<Option<String>>),
}

/// The eebus side of one connection, driven the way their own `runtime::Hub` drives its links:
/// one task reads with the cancel-safe `ShipConnection::next_message`, feeds every message to
/// their SHIP state machine (`handle_message` + `flush`, which answers our control messages
/// such as `accessMethodsRequest` and `connectionClose`) and forwards data messages; sends go
/// through the same task.
struct TheirSide {
    peer: EebusSki,
    commands: mpsc::Sender<TheirCommand>,
    events: mpsc::UnboundedReceiver<TheirEvent>,
}

impl TheirSide {
    fn drive(mut connection: ShipConnection) -> TheirSide {
        let peer = connection.peer();
        let (commands, mut command_rx) = mpsc::channel::<TheirCommand>(8);
        let (event_tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let end = loop {
                tokio::select! {
                    command = command_rx.recv() => match command {
                        Some(TheirCommand::Send(message, done)) => {
                            let sent = connection.send_ship(&message).await;
                            let _ = done.send(sent.map_err(|e| e.to_string()));
                        }
                        Some(TheirCommand::PeerShipId(answer)) => {
                            let _ = answer.send(connection.peer_ship_id().map(str::to_owned));
                        }
                        None => break "the test dropped the driver".to_owned(),
                    },
                    message = connection.next_message() => {
                        let message = match message {
                            Ok(message) => message,
                            Err(error) => break format!("their read failed: {error}"),
                        };
                        if let Err(error) = connection.handle_message(&message) {
                            break format!("their state machine refused: {error}");
                        }
                        if let Err(error) = connection.flush().await {
                            break format!("their flush failed: {error}");
                        }
                        match message {
                            ShipMessage::Data(data) => {
                                let _ = event_tx.send(TheirEvent::Data(data));
                            }
                            ShipMessage::End(end) => break format!("{end:?}"),
                            _ => {}
                        }
                    }
                }
            };
            let _ = event_tx.send(TheirEvent::Ended(end));
        });
        TheirSide {
            peer,
            commands,
            events,
        }
    }

    async fn send(&self, message: ShipMessage) {
        let (done, result) = oneshot::channel();
        self.commands
            .send(TheirCommand::Send(message, done))
            .await
            .expect("their driver runs");
        result
            .await
            .expect("their driver answers")
            .expect("their send");
    }

    async fn peer_ship_id(&self) -> Option<String> {
        let (answer, result) = oneshot::channel();
        self.commands
            .send(TheirCommand::PeerShipId(answer))
            .await
            .expect("their driver runs");
        result.await.expect("their driver answers")
    }

    /// The next event, within [`WAIT`].
    async fn next_event(&mut self) -> TheirEvent {
        match tokio::time::timeout(WAIT, self.events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("their driver is gone"),
            Err(_) => panic!("nothing happened on their side within {WAIT:?}"),
        }
    }

    /// The next data message they received.
    async fn next_data(&mut self) -> DataMessage {
        match self.next_event().await {
            TheirEvent::Data(data) => data,
            TheirEvent::Ended(why) => panic!("their connection ended: {why}"),
        }
    }

    /// How their connection ended (skipping data still in flight).
    async fn ended(&mut self) -> String {
        loop {
            if let TheirEvent::Ended(why) = self.next_event().await {
                return why;
            }
        }
    }
}

/// A `connectionClose` announce (§13.4.7) in their message types, as their
/// `Handshake::close` builds it.
fn their_close_announce(max_time: Duration) -> ShipMessage {
    ShipMessage::End(EndMessage::ConnectionClose(ConnectionClose {
        phase: Some(ConnectionClosePhase::Announce),
        max_time: Some(u32::try_from(max_time.as_millis()).unwrap()),
        reason: Some(ConnectionCloseReason::Unspecific),
    }))
}

/// The protocolId and payload of a data message, as their types hold them.
fn parts(message: &DataMessage) -> (Option<String>, serde_json::Value) {
    let DataMessage::Data(data) = message;
    let protocol = data
        .header
        .as_ref()
        .and_then(|h| h.protocol_id.as_ref())
        .map(|p| p.0.clone());
    (protocol, data.payload.clone().expect("a payload"))
}

/// The payload our hub sends raw: compact, keys in sorted order, so that any conforming JSON
/// re-serialisation (theirs holds it as a `serde_json::Value`) reproduces it byte for byte.
const OUR_RAW: &str =
    r#"{"datagram":[{"header":[{"msgCounter":7}]},{"payload":[]}],"x-note":"from ship-hub, é ✓"}"#;

/// Their raw payload, as JSON they build and serialise themselves.
fn their_raw() -> serde_json::Value {
    serde_json::json!({"from": "eebus", "list": [1, 2.5, -3, true, null], "nested": {"k": "v \"q\""}})
}

/// Runs the data exchange on an established pair: raw data both ways, then a SPINE datagram
/// both ways.
async fn exchange_data(hub: &Hub, recorder: &Arc<Recorder>, their: &mut TheirSide, their_ski: Ski) {
    assert_eq!(
        ours(their.peer),
        hub.local_ski(),
        "their connection is to our hub"
    );
    let peer = their_ski;

    // Ours → theirs, raw: their payload value is exactly what we sent, and so are its bytes.
    hub.send_data(peer, OUR_RAW.as_bytes()).expect("our send");
    let (protocol, received) = parts(&their.next_data().await);
    assert_eq!(protocol.as_deref(), Some("ee1.0"), "our protocolId");
    assert_eq!(
        received,
        serde_json::from_str::<serde_json::Value>(OUR_RAW).unwrap()
    );
    assert_eq!(serde_json::to_string(&received).unwrap(), OUR_RAW);

    // Theirs → ours, raw: our callback gets the payload bytes they put on the wire.
    let payload = their_raw();
    their.send(their_data_message(payload.clone())).await;
    let expected = serde_json::to_vec(&payload).unwrap();
    assert!(
        recorder
            .wait_for(WAIT, |s| *s == Seen::Data(peer, expected.clone()))
            .await,
        "{:?}",
        recorder.all()
    );

    // Theirs → ours, SPINE: the message their `ShipConnection::send(&Datagram)` sends
    // (`eebus::ship::spine_message`), byte for byte as their own encoder writes the payload.
    let datagram = their_datagram(41);
    their.send(spine_message(&datagram).unwrap()).await;
    let expected = serde_json::to_vec(&spine::to_json_value(&datagram).unwrap()).unwrap();
    assert!(
        recorder
            .wait_for(WAIT, |s| *s == Seen::Data(peer, expected.clone()))
            .await,
        "{:?}",
        recorder.all()
    );

    // Ours → theirs, SPINE: their decoder (`eebus::ship::spine_datagram`, what their
    // `ShipConnection::recv` returns) reads what we send as the same datagram.
    let datagram = their_datagram(42);
    let bytes = serde_json::to_vec(&spine::to_json_value(&datagram).unwrap()).unwrap();
    hub.send_data(peer, &bytes).expect("our SPINE send");
    let decoded = spine_datagram(&their.next_data().await).expect("their SPINE decoder");
    assert_eq!(decoded, Some(datagram));
}

/// Our hub (recording callbacks) on 127.0.0.1, OS-chosen port.
async fn our_hub() -> (Hub, Arc<Recorder>) {
    let recorder = Recorder::new();
    let hub = start(loopback_config(
        identity("ship-hub"),
        OUR_SHIP_ID,
        &recorder,
    ))
    .await;
    (hub, recorder)
}

/// The directions of our hub's live connections to `ski`.
fn directions(hub: &Hub, ski: Ski) -> Vec<Direction> {
    hub.connections(ski).iter().map(|c| c.direction).collect()
}

/// Waits until our hub reports `ski` in data exchange, and checks the state agrees.
async fn wait_connected(hub: &Hub, recorder: &Recorder, ski: Ski) {
    assert!(
        recorder
            .wait_for(WAIT, |s| *s == Seen::Connected(ski))
            .await,
        "{:?}",
        recorder.all()
    );
    assert_eq!(hub.connection_state(ski), ConnectionState::Completed);
}

/// Waits until our hub learned `ski`'s SHIP ID from its `accessMethods` (§13.4.6).
async fn wait_ship_id(recorder: &Recorder, ski: Ski, ship_id: &str) {
    assert!(
        recorder
            .wait_for(
                WAIT,
                |s| matches!(s, Seen::ShipId(k, id) if *k == ski && id.as_str() == ship_id)
            )
            .await,
        "{:?}",
        recorder.all()
    );
}

/// eebus announces SHIP 1.1 when it dials and accepts 1.0 when it is dialled; either way the
/// connection settles on what we speak, SHIP 1.0 with `JSON-UTF8` (§13.4.4.2).
fn assert_agreed(connection: &ShipConnection) {
    assert_eq!(
        connection.ship_version(),
        Some(eebus::ship::ShipVersion::V1_0)
    );
    assert_eq!(connection.message_format(), Some("JSON-UTF8"));
}

/// Direction 1 set up: an eebus node that trusts our hub dials it; our hub pre-trusts the
/// node's SKI. Returns their side, driven, once both ends are in data exchange.
async fn eebus_dials_us(hub: &Hub, recorder: &Recorder) -> (TheirSide, Ski) {
    let node = eebus_node(EebusTrust::with([theirs(hub.local_ski())]));
    let their_ski = ours(node.ski());
    hub.pair(their_ski).expect("pair");
    let connection = tokio::time::timeout(WAIT, node.connect(hub.local_addr()))
        .await
        .expect("their dial in time")
        .expect("their dial reaches data exchange");
    assert_eq!(
        ours(connection.peer()),
        hub.local_ski(),
        "they identified us by our SKI"
    );
    assert!(connection.is_open(), "their SHIP layer is in data exchange");
    assert_agreed(&connection);
    let their = TheirSide::drive(connection);
    wait_connected(hub, recorder, their_ski).await;
    assert_eq!(directions(hub, their_ski), vec![Direction::Incoming]);
    (their, their_ski)
}

/// An eebus node listening on 127.0.0.1 (OS-chosen port), accepting one connection with
/// `accept_reporting` (pending peers go to the returned channel).
#[allow(clippy::type_complexity)]
async fn eebus_listening(
    trust: EebusTrust,
) -> (
    Arc<Node>,
    SocketAddr,
    tokio::task::JoinHandle<Result<ShipConnection, eebus::runtime::ConnectionError>>,
    mpsc::UnboundedReceiver<PendingPeer>,
) {
    let node = Arc::new(eebus_node(trust));
    let listener = node.listen("127.0.0.1:0").await.expect("their listener");
    let address = listener.local_addr().unwrap();
    let (pending_tx, pending) = mpsc::unbounded_channel();
    let acceptor = {
        let node = node.clone();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("a TCP connection");
            let report: TrustReporter = Box::new(move |peer| {
                let _ = pending_tx.send(peer);
            });
            node.accept_reporting(stream, Some(report)).await
        })
    };
    (node, address, acceptor, pending)
}

/// Direction 2 set up: our hub dials an eebus node that trusts our SKI. Returns their side,
/// driven, once both ends are in data exchange.
async fn we_dial_eebus(hub: &Hub, recorder: &Recorder) -> (TheirSide, Ski) {
    let trust = EebusTrust::with([theirs(hub.local_ski())]);
    let (node, address, acceptor, _pending) = eebus_listening(trust).await;
    let their_ski = ours(node.ski());
    hub.pair(PairedPeer::new(their_ski).with_address(address))
        .expect("pair with an address");
    let connection = tokio::time::timeout(WAIT, acceptor)
        .await
        .expect("their accept in time")
        .unwrap()
        .expect("their accept reaches data exchange");
    assert_eq!(
        ours(connection.peer()),
        hub.local_ski(),
        "they identified us by our SKI"
    );
    assert!(connection.is_open(), "their SHIP layer is in data exchange");
    assert_agreed(&connection);
    let their = TheirSide::drive(connection);
    wait_connected(hub, recorder, their_ski).await;
    assert_eq!(directions(hub, their_ski), vec![Direction::Outgoing]);
    (their, their_ski)
}

/// Direction 1: the eebus node dials our hub, which pre-trusts its SKI; both reach data
/// exchange, data flows both ways, and each learns the other's SHIP ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eebus_dials_our_hub_and_data_flows_both_ways() {
    trace_from_env();
    let (hub, recorder) = our_hub().await;
    let (mut their, their_ski) = eebus_dials_us(&hub, &recorder).await;
    exchange_data(&hub, &recorder, &mut their, their_ski).await;
    assert_eq!(their.peer_ship_id().await.as_deref(), Some(OUR_SHIP_ID));
    wait_ship_id(&recorder, their_ski, THEIR_SHIP_ID).await;
    hub.shutdown().await;
}

/// Direction 2: our hub dials the eebus node, which pre-trusts our SKI; both reach data
/// exchange, data flows both ways, and each learns the other's SHIP ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_hub_dials_eebus_and_data_flows_both_ways() {
    trace_from_env();
    let (hub, recorder) = our_hub().await;
    let (mut their, their_ski) = we_dial_eebus(&hub, &recorder).await;
    exchange_data(&hub, &recorder, &mut their, their_ski).await;
    assert_eq!(their.peer_ship_id().await.as_deref(), Some(OUR_SHIP_ID));
    wait_ship_id(&recorder, their_ski, THEIR_SHIP_ID).await;
    hub.shutdown().await;
}

/// Both directions with our hub restricted to each suite eebus offers (AES_128_GCM, AES_256_GCM,
/// CHACHA20_POLY1305; eebus has no CBC suite): a restricted hub can only have used that suite, and
/// the full SHIP handshake and data both ways complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eebus_and_our_hub_restricted_to_each_aead_suite_exchange_data() {
    trace_from_env();
    for suite in [
        TlsSuite::Aes128GcmSha256,
        TlsSuite::Aes256GcmSha384,
        TlsSuite::Chacha20Poly1305Sha256,
    ] {
        for they_dial in [true, false] {
            let recorder = Recorder::new();
            let mut config = loopback_config(identity("ship-hub"), OUR_SHIP_ID, &recorder);
            config.tls.cipher_suites = Some(vec![suite]);
            let hub = start(config).await;
            let (mut their, their_ski) = if they_dial {
                eebus_dials_us(&hub, &recorder).await
            } else {
                we_dial_eebus(&hub, &recorder).await
            };
            exchange_data(&hub, &recorder, &mut their, their_ski).await;
            hub.shutdown().await;
        }
    }
}

/// Our shutdown announces `connectionClose` (§13.4.7) and eebus confirms it: they see our
/// announce, and our shutdown reports every connection closed in time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_shutdown_is_a_confirmed_close_for_eebus() {
    trace_from_env();
    let (hub, recorder) = our_hub().await;
    let (mut their, _their_ski) = eebus_dials_us(&hub, &recorder).await;
    let report = hub.shutdown().await;
    let end = their.ended().await;
    assert!(
        end.contains("Announce"),
        "they saw our connectionClose announce: {end}"
    );
    assert!(report.connections_closed_in_time, "{report:?}");
    assert_eq!(report.tasks_aborted, 0, "{report:?}");
}

/// eebus announces `connectionClose` (§13.4.7, their message types); our hub confirms it and
/// tells the application the peer is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eebus_close_announce_is_confirmed_and_reported_by_our_hub() {
    trace_from_env();
    let (hub, recorder) = our_hub().await;
    let (mut their, their_ski) = we_dial_eebus(&hub, &recorder).await;
    their
        .send(their_close_announce(Duration::from_secs(2)))
        .await;
    let end = their.ended().await;
    assert!(
        end.contains("Confirm"),
        "our hub answered with a confirm: {end}"
    );
    assert!(
        recorder
            .wait_for(
                WAIT,
                |s| matches!(s, Seen::Disconnected(k, _) if *k == their_ski)
            )
            .await,
        "{:?}",
        recorder.all()
    );
    hub.unpair(their_ski).unwrap();
    hub.shutdown().await;
}

/// An eebus node our hub does not know dials it: the application is asked, says no, and eebus
/// sees its handshake aborted by the peer (hello `aborted`, §13.4.4.1); nothing connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_eebus_node_refused_by_our_application() {
    trace_from_env();
    let (hub, recorder) = our_hub().await;
    let node = eebus_node(EebusTrust::with([theirs(hub.local_ski())]));
    let their_ski = ours(node.ski());
    let result = tokio::time::timeout(WAIT, node.connect(hub.local_addr()))
        .await
        .expect("their dial ends in time");
    match result {
        Err(eebus::runtime::ConnectionError::Aborted(AbortReason::PeerAborted)) => {}
        other => panic!("expected their handshake aborted by us, got {other:?}"),
    }
    assert_eq!(
        recorder.count(|s| *s == Seen::PairingRequested(their_ski)),
        1,
        "{:?}",
        recorder.all()
    );
    assert_eq!(recorder.count(|s| matches!(s, Seen::Connected(_))), 0);
    hub.shutdown().await;
}

/// An eebus node our hub does not know dials it; our application lets it wait (hello
/// `pending`), then approves: both reach data exchange and data flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eebus_waits_in_our_pending_hello_until_we_approve() {
    trace_from_env();
    let (hub, recorder) = our_hub().await;
    recorder.let_wait.store(true, Ordering::SeqCst);
    let node = eebus_node(EebusTrust::with([theirs(hub.local_ski())]));
    let their_ski = ours(node.ski());
    let address = hub.local_addr();
    let dial = tokio::spawn(async move { node.connect(address).await });
    assert!(
        recorder
            .wait_for(WAIT, |s| *s
                == Seen::State(their_ski, ConnectionState::ReceivedPairingRequest))
            .await,
        "{:?}",
        recorder.all()
    );
    hub.approve(their_ski).expect("approve");
    let connection = tokio::time::timeout(WAIT, dial)
        .await
        .expect("their dial ends in time")
        .unwrap()
        .expect("their dial reaches data exchange after our approval");
    let mut their = TheirSide::drive(connection);
    wait_connected(&hub, &recorder, their_ski).await;
    exchange_data(&hub, &recorder, &mut their, their_ski).await;
    hub.shutdown().await;
}

/// An eebus node our hub does not know dials it; our application accepts it at once
/// (`PairingDecision::Accept`, no `approve`): both reach data exchange, data flows, and the
/// pairing is in our trust store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_eebus_node_accepted_at_once_by_our_application() {
    trace_from_env();
    let recorder = Recorder::new();
    *recorder.decision.lock().unwrap() = Some(PairingDecision::Accept);
    let trust = Arc::new(MemoryTrustStore::default());
    let mut config = loopback_config(identity("ship-hub"), OUR_SHIP_ID, &recorder);
    config.trust_store = trust.clone();
    let hub = start(config).await;
    let node = eebus_node(EebusTrust::with([theirs(hub.local_ski())]));
    let their_ski = ours(node.ski());
    let connection = tokio::time::timeout(WAIT, node.connect(hub.local_addr()))
        .await
        .expect("their dial ends in time")
        .expect("their dial reaches data exchange on our immediate acceptance");
    let mut their = TheirSide::drive(connection);
    wait_connected(&hub, &recorder, their_ski).await;
    exchange_data(&hub, &recorder, &mut their, their_ski).await;
    assert_eq!(
        recorder.count(|s| *s == Seen::PairingRequested(their_ski)),
        1
    );
    hub.pairings_saved().await.unwrap();
    assert!(trust.get(&their_ski).unwrap().is_some(), "not stored");
    hub.shutdown().await;
}

/// Our hub dials an eebus node that does not know it yet: eebus reports a pending peer with
/// our SKI (its hello `pending`), its user approves through its trust store, and both reach
/// data exchange.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_hub_waits_in_eebus_pending_hello_until_they_approve() {
    trace_from_env();
    let (hub, recorder) = our_hub().await;
    let trust = EebusTrust::new();
    let (node, address, acceptor, mut pending) = eebus_listening(trust.clone()).await;
    let their_ski = ours(node.ski());
    hub.pair(PairedPeer::new(their_ski).with_address(address))
        .expect("pair with an address");
    let asking = tokio::time::timeout(WAIT, pending.recv())
        .await
        .expect("eebus reports a pending peer in time")
        .expect("a pending peer");
    assert_eq!(
        ours(asking.ski),
        hub.local_ski(),
        "the pending peer is our hub, by SKI"
    );
    assert_ne!(hub.connection_state(their_ski), ConnectionState::Completed);
    trust.trust(asking.ski);
    let connection = tokio::time::timeout(WAIT, acceptor)
        .await
        .expect("their accept ends in time")
        .unwrap()
        .expect("their accept reaches data exchange after their approval");
    let mut their = TheirSide::drive(connection);
    wait_connected(&hub, &recorder, their_ski).await;
    exchange_data(&hub, &recorder, &mut their, their_ski).await;
    hub.shutdown().await;
}

/// Regression for the refusal above, without sockets or timing: a server connection whose
/// application denies trust while CMI is still running (the usual case in the hub, whose
/// pairing callback answers before the peer's CMI arrives) still tells the peer in SHIP terms,
/// CMI answered, then hello `aborted` (§13.4.4.1), then the 4452 close after the abort delay,
/// instead of a bare close that eebus reports as `ConnectionError::Closed`.
#[test]
fn denial_before_cmi_is_sent_as_hello_aborted() {
    use ship_hub::ShipId;
    use ship_hub::protocol::message::{ConnectionHello, HelloPhase};
    use ship_hub::protocol::{
        CloseCause, Connection, ConnectionParams, Event, ProtocolConfig, Role, Transmit, Trust,
        codec,
    };

    let start = std::time::Instant::now();
    let config = ProtocolConfig::default();
    let abort_delay = config.abort_close_delay;
    let mut connection = Connection::new(
        ConnectionParams {
            role: Role::Server,
            local_ship_id: ShipId::new(OUR_SHIP_ID).unwrap(),
            trust: Trust::Pending,
            known_peer_ship_id: None,
            config,
        },
        start,
    );
    connection.deny_trust(start);
    assert!(
        connection.poll_transmit().is_none(),
        "nothing before the peer's CMI"
    );
    assert!(!connection.is_closed());

    connection.handle_message(&[0x00, 0x00], start);
    let mut sent = Vec::new();
    while let Some(Transmit::Message(bytes)) = connection.poll_transmit() {
        sent.push(codec::decode(&bytes).expect("our own message decodes"));
    }
    assert_eq!(
        sent,
        vec![
            ShipMessageOurs::Cmi,
            ShipMessageOurs::ConnectionHello(ConnectionHello {
                phase: HelloPhase::Aborted,
                waiting: None,
                prolongation_request: None,
            }),
        ]
    );

    connection.handle_timeout(start + abort_delay);
    match connection.poll_transmit() {
        Some(Transmit::Close { code, .. }) => assert_eq!(code, 4452),
        other => panic!("expected the 4452 close, got {other:?}"),
    }
    let closed = std::iter::from_fn(|| connection.poll_event())
        .find_map(|event| match event {
            Event::Closed(cause) => Some(cause),
            _ => None,
        })
        .expect("a Closed event");
    assert_eq!(closed, CloseCause::LocalDeniedTrust);
}

/// Both sans-IO state machines fed to each other in memory (no socket, no clock), in both
/// roles: every message each side produces is accepted by the other's decoder and state
/// machine, both reach data exchange on SHIP 1.0 / `JSON-UTF8` (eebus announces 1.1, we select
/// the lower), and the access-methods exchange carries each SHIP ID across.
#[test]
fn sans_io_handshakes_agree_in_both_roles() {
    use eebus::ship::{Event as TheirHandshakeEvent, Handshake, HandshakeConfig, ShipVersion};
    use ship_hub::ShipId;
    use ship_hub::protocol::{
        Connection, ConnectionParams, Event, ProtocolConfig, Role, Transmit, Trust,
    };

    for our_role in [Role::Client, Role::Server] {
        let now = std::time::Instant::now();
        let mut ours = Connection::new(
            ConnectionParams {
                role: our_role,
                local_ship_id: ShipId::new(OUR_SHIP_ID).unwrap(),
                trust: Trust::Trusted,
                known_peer_ship_id: None,
                config: ProtocolConfig::default(),
            },
            now,
        );
        let config = HandshakeConfig {
            ship_id: Some(THEIR_SHIP_ID.into()),
            ..HandshakeConfig::default()
        };
        let their_role = match our_role {
            Role::Client => eebus::ship::Role::Server,
            _ => eebus::ship::Role::Client,
        };
        let level = eebus::ship::TrustLevel::USER_VERIFIED;
        let mut theirs = Handshake::new(
            their_role,
            config,
            eebus::ship::Trust::Trusted(level),
            Duration::ZERO,
        );

        let mut their_events = Vec::new();
        let mut our_events = Vec::new();
        // Shuttle messages until neither side has anything more to say.
        let pump = |ours: &mut Connection,
                    theirs: &mut Handshake,
                    their_events: &mut Vec<TheirHandshakeEvent>,
                    our_events: &mut Vec<Event>| {
            loop {
                let mut moved = false;
                while let Some(transmit) = ours.poll_transmit() {
                    moved = true;
                    let Transmit::Message(bytes) = transmit else {
                        panic!("we closed: {transmit:?}");
                    };
                    let message = ShipMessage::decode(&bytes).expect("they decode our message");
                    theirs
                        .handle_message(message, Duration::ZERO)
                        .expect("their state machine takes it");
                }
                while let Some(message) = theirs.poll_transmit() {
                    moved = true;
                    ours.handle_message(&message.encode().expect("they encode"), now);
                }
                their_events.extend(std::iter::from_fn(|| theirs.poll_event()));
                our_events.extend(std::iter::from_fn(|| ours.poll_event()));
                if !moved {
                    break;
                }
            }
        };
        pump(&mut ours, &mut theirs, &mut their_events, &mut our_events);
        assert!(theirs.is_ready_for_data(), "{our_role:?}: {their_events:?}");
        assert_eq!(theirs.ship_version(), Some(ShipVersion::V1_0));
        assert!(
            their_events.iter().any(|e| matches!(
                e,
                TheirHandshakeEvent::Ready { version, format }
                    if *version == ShipVersion::V1_0 && format == "JSON-UTF8"
            )),
            "{our_role:?}: {their_events:?}"
        );
        assert_eq!(
            ours.state(),
            ConnectionState::Completed,
            "{our_role:?}: {our_events:?}"
        );
        assert_eq!(
            ours.peer_ship_id().map(|id| id.as_str()),
            Some(THEIR_SHIP_ID)
        );

        // Their access-methods request (their runtime sends it once data exchange opens).
        theirs.request_access_methods();
        pump(&mut ours, &mut theirs, &mut their_events, &mut our_events);
        let learned = their_events.iter().find_map(|e| match e {
            TheirHandshakeEvent::PeerAccessMethods(methods) => methods.id.clone(),
            _ => None,
        });
        assert_eq!(learned.as_deref(), Some(OUR_SHIP_ID), "{our_role:?}");
        assert!(
            !their_events
                .iter()
                .any(|e| matches!(e, TheirHandshakeEvent::Aborted(_))),
            "{our_role:?}: {their_events:?}"
        );
    }
}

/// A SPINE device in their model: one CEM entity with a generic client feature.
fn spine_engine(unique: &str) -> eebus::spine::Engine {
    use eebus::model::{DeviceType, EntityType, FeatureType, Role as SpineRole};
    use eebus::spine::{Engine, LocalDevice, LocalEntity, LocalFeature};

    let mut device = LocalDevice::new("i:99999", unique, DeviceType::EnergyManagementSystem)
        .expect("a valid device address");
    device
        .add_entity(
            LocalEntity::new([1], EntityType::CEM).with_feature(LocalFeature::new(
                1,
                FeatureType::Generic,
                SpineRole::Client,
            )),
        )
        .expect("an entity");
    Engine::new(device)
}

/// The next payload our hub delivered from `ski` after the first `*seen` ones (unbounded:
/// the caller puts a deadline around it). Cancel-safe: `*seen` moves only on success.
async fn next_data_from(recorder: &Recorder, ski: Ski, seen: &mut usize) -> Vec<u8> {
    let index = *seen;
    let nth = || {
        recorder
            .all()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Data(k, bytes) if k == ski => Some(bytes),
                _ => None,
            })
            .nth(index)
    };
    loop {
        let changed = recorder.changed.notified();
        if let Some(bytes) = nth() {
            *seen += 1;
            return bytes;
        }
        changed.await;
    }
}

/// Their full runtime (`eebus::runtime::Hub` with a SPINE `Engine`) dials our hub (which
/// pre-trusts it). See [`spine_discovery_through_our_hub`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eebus_runtime_hub_dials_us_and_spine_discovery_completes_both_ways() {
    spine_discovery_through_our_hub(true).await;
}

/// Our hub dials their full runtime (`eebus::runtime::Hub` listening, trusting our SKI). See
/// [`spine_discovery_through_our_hub`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_hub_dials_eebus_runtime_hub_and_spine_discovery_completes_both_ways() {
    spine_discovery_through_our_hub(false).await;
}

/// Our hub is the SHIP transport for a SPINE device kept in their model on our side, so the
/// bytes in both directions are produced and consumed by their SPINE engines: their runtime's
/// two opening reads (detailed discovery, use cases) reach us and are answered, our read of
/// their detailed discovery is answered, and each side ends up having discovered the other
/// device (their runtime's `PeerDiscovered` needs both its opening reads answered).
async fn spine_discovery_through_our_hub(they_dial: bool) {
    use eebus::model::Function;
    use eebus::runtime::{Hub as EebusHub, HubEvent};
    use eebus::spine::{device_address, node_management};

    trace_from_env();
    let (hub, recorder) = our_hub().await;
    let node = eebus_node(EebusTrust::with([theirs(hub.local_ski())]));
    let their_ski = ours(node.ski());
    let their_device = device_address("i:99999", "eebus-side").unwrap();
    let our_device = device_address("i:99999", "ship-hub-side").unwrap();

    // Their runtime, driven by their own event loop in a task of its own.
    let mut their_hub = EebusHub::new(node, spine_engine("eebus-side"));
    if they_dial {
        hub.pair(their_ski).expect("pair");
        their_hub.dial(hub.local_addr());
    } else {
        let address = their_hub
            .listen("127.0.0.1:0")
            .await
            .expect("their listener");
        hub.pair(PairedPeer::new(their_ski).with_address(address))
            .expect("pair with an address");
    }
    let (event_tx, mut their_events) = mpsc::unbounded_channel();
    let their_loop = tokio::spawn(async move {
        while let Ok(event) = their_hub.next().await {
            if event_tx.send(event).is_err() {
                break;
            }
        }
    });
    let mut next_their_event = async || {
        tokio::time::timeout(WAIT, their_events.recv())
            .await
            .expect("an event from their hub in time")
            .expect("their hub loop runs")
    };

    // Both runtimes report the connection.
    loop {
        match next_their_event().await {
            HubEvent::Connected { ski, version } => {
                assert_eq!(ours(ski), hub.local_ski());
                assert_eq!(version, Some(eebus::ship::ShipVersion::V1_0));
                break;
            }
            HubEvent::HandshakeFailed { error, .. } => panic!("their handshake failed: {error}"),
            _ => {}
        }
    }
    wait_connected(&hub, &recorder, their_ski).await;

    // Our side's SPINE device (their model, our transport) reads their detailed discovery.
    let started = tokio::time::Instant::now();
    let mut our_spine = spine_engine("ship-hub-side");
    let our_read = our_spine.read(
        &node_management(&their_device),
        &node_management(&our_device),
        Function::NodeManagementDetailedDiscoveryData,
        Duration::ZERO,
    );
    while let Some(datagram) = our_spine.poll_transmit() {
        let bytes = serde_json::to_vec(&spine::to_json_value(&datagram).unwrap()).unwrap();
        hub.send_data(their_ski, &bytes).expect("our send");
    }

    // Everything their runtime sends us goes into our SPINE device and its answers go back,
    // until our device has its read answered and knows theirs, and their runtime reports the
    // device behind our hub as discovered (both of its opening reads answered).
    let mut seen = 0;
    let mut answered_our_read = false;
    let mut discovered_by_them = false;
    let exchange = async {
        while !(answered_our_read && our_spine.peer(&their_device).is_some() && discovered_by_them)
        {
            tokio::select! {
                event = their_events.recv() => match event.expect("their hub loop runs") {
                    HubEvent::PeerDiscovered { ski, device } => {
                        assert_eq!(ours(ski), hub.local_ski());
                        assert_eq!(device, our_device);
                        discovered_by_them = true;
                    }
                    HubEvent::Disconnected { reason, .. } => panic!("they disconnected: {reason:?}"),
                    _ => {}
                },
                bytes = next_data_from(&recorder, their_ski, &mut seen) => {
                    let value: serde_json::Value =
                        serde_json::from_slice(&bytes).expect("JSON from them");
                    let datagram = spine::from_json_value(value).expect("a SPINE datagram");
                    // Byte for byte: what we delivered is exactly their encoder's output.
                    assert_eq!(
                        serde_json::to_vec(&spine::to_json_value(&datagram).unwrap()).unwrap(),
                        bytes
                    );
                    let header = datagram.header.clone().expect("a SPINE header");
                    if header.msg_counter_reference == Some(our_read) {
                        answered_our_read = true;
                    }
                    our_spine.handle_datagram(&datagram, started.elapsed());
                    while let Some(answer) = our_spine.poll_transmit() {
                        let bytes =
                            serde_json::to_vec(&spine::to_json_value(&answer).unwrap()).unwrap();
                        hub.send_data(their_ski, &bytes).expect("our answer");
                    }
                }
            }
        }
    };
    tokio::time::timeout(WAIT, exchange)
        .await
        .expect("the SPINE discovery completes on both sides in time");
    their_loop.abort();
    hub.shutdown().await;
}

/// SHIP data exchange starts when the PIN step is done (§13.4.5); the access-methods exchange
/// runs alongside and must not hold data back (docs/ship.md §4 step 5, TC_SHIP_AMDATA_001).
/// eebus's runtime sends its opening SPINE reads at exactly that moment, before it reads (and
/// answers) our `accessMethodsRequest`. Here their connection sends two data messages first and
/// only then starts answering control messages: our application gets both, in order, after
/// `connected`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_sent_before_answering_our_access_methods_request_is_delivered() {
    trace_from_env();
    let (hub, recorder) = our_hub().await;
    let node = eebus_node(EebusTrust::with([theirs(hub.local_ski())]));
    let their_ski = ours(node.ski());
    hub.pair(their_ski).expect("pair");
    let mut connection = tokio::time::timeout(WAIT, node.connect(hub.local_addr()))
        .await
        .expect("their dial in time")
        .expect("their dial reaches data exchange");
    // Nothing has been read on their side yet, so our accessMethodsRequest is unanswered.
    let first = serde_json::json!({"early": 1});
    let second = serde_json::json!({"early": 2});
    connection
        .send_ship(&their_data_message(first.clone()))
        .await
        .expect("their send");
    connection
        .send_ship(&their_data_message(second.clone()))
        .await
        .expect("their send");
    let _their = TheirSide::drive(connection);
    wait_connected(&hub, &recorder, their_ski).await;
    let [first, second] = [first, second].map(|v| serde_json::to_vec(&v).unwrap());
    assert!(
        recorder
            .wait_for(WAIT, |s| *s == Seen::Data(their_ski, second.clone()))
            .await,
        "{:?}",
        recorder.all()
    );
    let order: Vec<Seen> = recorder
        .all()
        .into_iter()
        .filter(|s| matches!(s, Seen::Connected(_) | Seen::Data(..)))
        .collect();
    assert_eq!(
        order,
        vec![
            Seen::Connected(their_ski),
            Seen::Data(their_ski, first),
            Seen::Data(their_ski, second)
        ]
    );
    hub.shutdown().await;
}

/// The installation QR code we write (every field of the specification's grammar, a PIN, a
/// structured SHIP ID) is read by the `eebus` crate's `ShipQr` to the same values.
#[test]
fn our_qr_code_text_is_read_by_eebus() {
    use ship_hub::ShipId;
    use ship_hub::qr::{QrPin, ShipQr};
    let ski: Ski = "00ff10ee20dd30cc40bb50aa6099708880779066".parse().unwrap();
    let written = ShipQr::new(ski, ShipId::new("i:4711_u:gw-0001").unwrap())
        .unwrap()
        .with_pin(QrPin::new("0a1b2c3d4e5f").unwrap())
        .with_brand("ship-hub")
        .unwrap()
        .with_device_type("EnergyManagementSystem")
        .unwrap()
        .with_model("ship-gateway")
        .unwrap()
        .with_serial("0001")
        .unwrap()
        .with_categories(vec![2])
        .unwrap();
    let text = written.to_string();
    let read: eebus::ship::ShipQr = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(ours(read.ski), ski, "{text}");
    assert_eq!(
        read.id.as_ref().map(|id| id.as_str()),
        Some("i:4711_u:gw-0001")
    );
    assert_eq!(read.pin.as_deref(), Some("0a1b2c3d4e5f"));
    assert_eq!(read.brand.as_deref(), Some("ship-hub"));
    assert_eq!(read.device_type.as_deref(), Some("EnergyManagementSystem"));
    assert_eq!(read.model.as_deref(), Some("ship-gateway"));
    assert_eq!(read.serial.as_deref(), Some("0001"));
    let categories: Vec<u8> = read.categories.iter().map(|c| c.number()).collect();
    assert_eq!(categories, [2]);
    assert!(read.unknown.is_empty(), "{:?}", read.unknown);
}

/// The code the `eebus` crate writes (with a key we do not know, `NOMINALPOWER`) is read by ours
/// to the same values; the unknown key is skipped.
#[test]
fn eebus_qr_code_text_is_read_by_ours() {
    use ship_hub::qr::ShipQr;
    let ski: Ski = "9a8b7c6d5e4f30211203f4e5d6c7b8a990817263".parse().unwrap();
    let mut theirs_qr =
        eebus::ship::ShipQr::new(theirs(ski), eebus::ship::ShipId::new("12345", "heatpump-7"));
    theirs_qr.pin = Some("89ABCDEF".into());
    theirs_qr.brand = Some("ExampleBrand".into());
    theirs_qr.device_type = Some("HeatPump".into());
    theirs_qr.model = Some("HP 9".into());
    theirs_qr.serial = Some("SN-42".into());
    theirs_qr.categories = vec![
        eebus::ship::DeviceCategory::Hvac,
        eebus::ship::DeviceCategory::MeteringDevice,
    ];
    theirs_qr.nominal_power = Some((0, 9000));
    let text = theirs_qr.to_payload();
    let read: ShipQr = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(read.ski(), ski);
    assert_eq!(read.ship_id().as_str(), "i:12345_u:heatpump-7");
    assert_eq!(read.pin().map(|p| p.expose()), Some("89ABCDEF"));
    assert_eq!(read.brand(), Some("ExampleBrand"));
    assert_eq!(read.device_type(), Some("HeatPump"));
    assert_eq!(read.model(), Some("HP 9"));
    assert_eq!(read.serial(), Some("SN-42"));
    assert_eq!(read.categories(), &[4, 7]);
    // And what we write back is still read by them to the same identity.
    let again: eebus::ship::ShipQr = read.to_string().parse().unwrap();
    assert_eq!(again.ski, theirs_qr.ski);
    assert_eq!(again.id, theirs_qr.id);
    assert_eq!(again.pin, theirs_qr.pin);
}

/// The SHIP Pairing Service fields of the code (`FPH256`, the certificate fingerprint, and
/// `SPSEC`, the pairing secret) in both directions: what the `eebus` crate writes, ours reads
/// to the same values, and what ours writes, theirs reads.
#[test]
fn pairing_service_fields_of_the_qr_code_are_read_both_ways() {
    use ship_hub::pairing_service::{Fingerprint, PairingSecret};
    use ship_hub::qr::ShipQr;
    const FP: &str = "C74B7855D3479415F62CC01E5F6D9A93EBC676057D85417ADA16FD1384338943";
    const SECRET: &str = "7A37DCF81BDB50F8E92CFA4160CCB3DE";
    let ski: Ski = "9a8b7c6d5e4f30211203f4e5d6c7b8a990817263".parse().unwrap();
    let mut theirs_qr =
        eebus::ship::ShipQr::new(theirs(ski), eebus::ship::ShipId::new("46925", "their-em"));
    theirs_qr.certificate_fingerprint = Some(FP.parse().unwrap());
    theirs_qr.pairing_secret = Some(SECRET.into());
    let text = theirs_qr.to_payload();
    let read: ShipQr = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(read.fingerprint(), Some(FP.parse::<Fingerprint>().unwrap()));
    assert_eq!(
        read.pairing_secret(),
        Some(&PairingSecret::from_hex(SECRET).unwrap())
    );
    let again: eebus::ship::ShipQr = read.to_string().parse().unwrap();
    assert_eq!(
        again.certificate_fingerprint,
        theirs_qr.certificate_fingerprint
    );
    assert_eq!(again.pairing_secret.as_deref(), Some(SECRET));
    assert_eq!(again.ski, theirs_qr.ski);
}

// ---- SHIP Pairing Service, record level (both directions) ----------------------------------

mod pairing_records {
    use eebus::ship::Fingerprint as TheirFingerprint;
    use eebus::ship::pairing::{
        PairingAnnouncement, PairingError, PairingRequest as TheirRequest,
        PairingSecret as TheirSecret, Receiver as TheirReceiver,
    };
    use ship_hub::ShipId;
    use ship_hub::pairing_service::{
        Fingerprint, Nonce, PairingRequest, PairingSecret, Receiver, ReceiverConfig, Refusal,
        SignedRequest, UnitReachability, sign,
    };
    use std::time::Duration;

    const SECRET: &str = "7A37DCF81BDB50F8E92CFA4160CCB3DE";
    const DEV_A_ID: &str = "i:983327_u:C8277H008F-3";
    const DEV_Z_ID: &str = "i:46925_u:43652bk-2-gt1";

    fn fingerprints() -> (Fingerprint, Fingerprint) {
        (
            Fingerprint::of_certificate(b"devA certificate"),
            Fingerprint::of_certificate(b"devZ certificate"),
        )
    }

    fn their_fp(fp: Fingerprint) -> TheirFingerprint {
        fp.to_string().parse().unwrap()
    }

    fn our_receiver() -> Receiver {
        let (a, _) = fingerprints();
        Receiver::new(ReceiverConfig::new(
            ShipId::new(DEV_A_ID).unwrap(),
            a,
            PairingSecret::from_hex(SECRET).unwrap(),
        ))
    }

    fn props(pairs: &[(String, String)]) -> Vec<(&str, Option<&[u8]>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_bytes())))
            .collect()
    }

    fn their_announcement(nonce: &str, secret: &str) -> PairingAnnouncement {
        let (a, z) = fingerprints();
        TheirRequest::new(
            DEV_A_ID,
            their_fp(a),
            DEV_Z_ID,
            their_fp(z),
            nonce.parse().unwrap(),
        )
        .sign(&TheirSecret::from_hex(secret).unwrap())
        .unwrap()
    }

    fn our_signed(nonce: Nonce, secret: &str) -> SignedRequest {
        let (a, z) = fingerprints();
        sign(
            &PairingRequest::new(
                ShipId::new(DEV_A_ID).unwrap(),
                a,
                ShipId::new(DEV_Z_ID).unwrap(),
                z,
                nonce,
            ),
            &PairingSecret::from_hex(secret).unwrap(),
        )
    }

    /// Their control unit's announcement (`PairingAnnouncement::to_pairs`) is read and verified
    /// by our receiver, which then trusts their certificate's fingerprint; the same record
    /// again is a replay.
    #[test]
    fn their_announcement_is_verified_by_our_receiver_once() {
        let pairs = their_announcement("BDCEE427FA7208DF3C1F2A749BA6F4D4", SECRET).to_pairs();
        let mut ours = our_receiver();
        let request = ours
            .evaluate(props(&pairs), UnitReachability::NoUnit, Duration::ZERO)
            .expect("their record verifies with our code");
        assert_eq!(request.trust_fingerprint, fingerprints().1);
        assert_eq!(request.trust_id.as_str(), DEV_Z_ID);
        assert_eq!(
            ours.evaluate(props(&pairs), UnitReachability::NoUnit, Duration::ZERO),
            Err(Refusal::Replay)
        );
        // Our writer produces their record byte for byte from the same fields.
        let read = SignedRequest::from_pairs(&pairs).unwrap();
        assert_eq!(read.to_pairs(), pairs);
    }

    /// Their announcement signed with another secret is refused by our receiver.
    #[test]
    fn their_announcement_with_a_wrong_secret_is_refused_by_ours() {
        let pairs = their_announcement(
            "BDCEE427FA7208DF3C1F2A749BA6F4D4",
            "00000000000000000000000000000000",
        )
        .to_pairs();
        assert_eq!(
            our_receiver().evaluate(props(&pairs), UnitReachability::NoUnit, Duration::ZERO),
            Err(Refusal::DigestMismatch)
        );
    }

    /// Our signed request (`SignedRequest::to_pairs`) is read by their
    /// `PairingAnnouncement::from_pairs` and accepted by their `Receiver`, once.
    #[test]
    fn our_request_is_verified_by_their_receiver_once() {
        let pairs = our_signed(Nonce::random(), SECRET).to_pairs();
        let parsed = PairingAnnouncement::from_pairs(&pairs).expect("their reader takes ours");
        assert_eq!(
            parsed.to_pairs(),
            pairs,
            "their writer gives back our record"
        );
        let (a, z) = fingerprints();
        let mut theirs = TheirReceiver::new(
            DEV_A_ID,
            their_fp(a),
            TheirSecret::from_hex(SECRET).unwrap(),
        );
        let request = theirs
            .evaluate(&pairs)
            .expect("their receiver accepts ours");
        assert_eq!(request.trust_par, their_fp(z));
        assert_eq!(theirs.evaluate(&pairs), Err(PairingError::Replay));
        let wrong = our_signed(Nonce::random(), "11111111111111111111111111111111").to_pairs();
        assert_eq!(theirs.evaluate(&wrong), Err(PairingError::DigestMismatch));
    }
}
