//! Interoperability with an implementation nobody here wrote: the `eebus` crate (crates.io,
//! dev-dependency) against our [`Hub`], over TCP on 127.0.0.1 with OS-chosen ports.
//!
//! Direction 1: an `eebus::runtime::Node` dials our Hub (which pre-trusts its SKI).
//! Direction 2: our Hub dials an `eebus::runtime::Node` (which pre-trusts our SKI).
//! In both, each side must reach data exchange and data must flow both ways: raw SHIP data
//! messages (asserted byte for byte) and a typed SPINE datagram (asserted by value on their
//! side, byte for byte on ours). See docs/interop.md.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{Recorder, Seen, identity, loopback_config, start};
use eebus::cert::{self as eebus_cert, CertParams};
use eebus::model::{self as spine, Datagram, MsgCounter};
use eebus::runtime::{Node, ShipConnection, TrustStore as EebusTrust};
use eebus::ship::{
    Data, DataMessage, Header as ShipHeader, ProtocolId, ShipMessage, Ski as EebusSki,
    spine_datagram, spine_message,
};
use eebus::tls::ShipTls;
use ship_hub::Ski;
use ship_hub::hub::Hub;
use ship_hub::protocol::ConnectionState;
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
    let mut datagram = Datagram::default();
    datagram.header = Some(spine::Header {
        specification_version: Some(spine::SpecificationVersion::from("1.3.0")),
        msg_counter: Some(MsgCounter(counter)),
        cmd_classifier: Some(spine::CmdClassifier::Read),
        ..Default::default()
    });
    datagram.payload = Some(Default::default());
    datagram
}

/// What the eebus side's driver reports to the test.
#[derive(Debug)]
enum TheirEvent {
    /// A SHIP data message arrived.
    Data(DataMessage),
    /// Their connection ended (with their error, or our `connectionClose`).
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
/// such as `accessMethodsRequest`) and forwards data messages; sends go through the same task.
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
                            let _ = done.send(connection.send_ship(&message).await.map_err(|e| e.to_string()));
                        }
                        Some(TheirCommand::PeerShipId(answer)) => {
                            let _ = answer.send(connection.peer_ship_id().map(str::to_owned));
                        }
                        None => break "test finished".to_owned(),
                    },
                    message = connection.next_message() => {
                        let message = match message {
                            Ok(message) => message,
                            Err(error) => break format!("their read: {error}"),
                        };
                        if let Err(error) = connection.handle_message(&message) {
                            break format!("their state machine: {error}");
                        }
                        if let Err(error) = connection.flush().await {
                            break format!("their flush: {error}");
                        }
                        match message {
                            ShipMessage::Data(data) => {
                                let _ = event_tx.send(TheirEvent::Data(data));
                            }
                            ShipMessage::End(end) => break format!("connectionClose from us: {end:?}"),
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

    /// The next data message they received, within [`WAIT`].
    async fn next_data(&mut self) -> DataMessage {
        match tokio::time::timeout(WAIT, self.events.recv()).await {
            Ok(Some(TheirEvent::Data(data))) => data,
            Ok(Some(TheirEvent::Ended(why))) => panic!("their connection ended: {why}"),
            Ok(None) => panic!("their driver is gone"),
            Err(_) => panic!("no data message reached them within {WAIT:?}"),
        }
    }
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

/// Direction 1: the eebus node dials our hub, which pre-trusts its SKI; both reach data
/// exchange and data flows both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eebus_dials_our_hub_and_data_flows_both_ways() {
    trace_from_env();
    let recorder = Recorder::new();
    let hub = start(loopback_config(
        identity("ship-hub"),
        OUR_SHIP_ID,
        &recorder,
    ))
    .await;
    let their_trust = EebusTrust::new();
    their_trust.trust(theirs(hub.local_ski()));
    let node = eebus_node(their_trust);
    let their_ski = ours(node.ski());
    hub.pair(their_ski, None).expect("pair");

    let connection = tokio::time::timeout(WAIT, node.connect(hub.local_addr()))
        .await
        .expect("their dial in time")
        .expect("their dial reaches data exchange");
    assert_eq!(
        ours(connection.peer()),
        hub.local_ski(),
        "they identified our hub by its SKI"
    );
    assert!(connection.is_open());
    let mut their = TheirSide::drive(connection);
    assert!(
        recorder
            .wait_for(WAIT, |s| *s == Seen::Connected(their_ski))
            .await,
        "{:?}",
        recorder.all()
    );
    assert_eq!(hub.connection_state(their_ski), ConnectionState::Completed);

    exchange_data(&hub, &recorder, &mut their, their_ski).await;

    // Each side learned the other's SHIP ID through accessMethods (§13.4.6).
    assert_eq!(their.peer_ship_id().await.as_deref(), Some(OUR_SHIP_ID));
    assert!(
        recorder
            .wait_for(WAIT, |s| matches!(s, Seen::ShipId(k, id) if *k == their_ski && id.as_str() == THEIR_SHIP_ID))
            .await,
        "{:?}",
        recorder.all()
    );
    hub.shutdown().await;
}

/// Direction 2: our hub dials the eebus node, which pre-trusts our SKI; both reach data
/// exchange and data flows both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_hub_dials_eebus_and_data_flows_both_ways() {
    trace_from_env();
    let recorder = Recorder::new();
    let hub = start(loopback_config(
        identity("ship-hub"),
        OUR_SHIP_ID,
        &recorder,
    ))
    .await;
    let their_trust = EebusTrust::new();
    their_trust.trust(theirs(hub.local_ski()));
    let node = Arc::new(eebus_node(their_trust));
    let listener = node.listen("127.0.0.1:0").await.expect("their listener");
    let address: SocketAddr = listener.local_addr().unwrap();
    let their_ski = ours(node.ski());

    let acceptor = {
        let node = node.clone();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.expect("a TCP connection");
            node.accept(stream).await
        })
    };
    hub.pair_at(their_ski, None, Some(address))
        .expect("pair_at");

    let connection = tokio::time::timeout(WAIT, acceptor)
        .await
        .expect("their accept in time")
        .unwrap()
        .expect("their accept reaches data exchange");
    assert_eq!(
        ours(connection.peer()),
        hub.local_ski(),
        "they identified our hub by its SKI"
    );
    assert!(connection.is_open());
    let mut their = TheirSide::drive(connection);
    assert!(
        recorder
            .wait_for(WAIT, |s| *s == Seen::Connected(their_ski))
            .await,
        "{:?}",
        recorder.all()
    );
    assert_eq!(hub.connection_state(their_ski), ConnectionState::Completed);

    exchange_data(&hub, &recorder, &mut their, their_ski).await;

    assert_eq!(their.peer_ship_id().await.as_deref(), Some(OUR_SHIP_ID));
    assert!(
        recorder
            .wait_for(WAIT, |s| matches!(s, Seen::ShipId(k, id) if *k == their_ski && id.as_str() == THEIR_SHIP_ID))
            .await,
        "{:?}",
        recorder.all()
    );
    hub.shutdown().await;
}
