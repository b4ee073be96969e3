//! PIN verification (SHIP §13.4.4.3) against the `eebus` crate, both ways and both directions:
//! an eebus node that requires a PIN pairs with our hub (which sends the PIN stored for it), and
//! our hub requiring a PIN pairs with an eebus node that knows it; data then flows both ways.
//! With a wrong PIN no data exchange opens on the requiring side. Included by
//! tests/interop_eebus/main.rs.

use eebus::ship::{HandshakeConfig, PinRequirement as TheirPinRequirement};
use ship_hub::hub::HubConfig;
use ship_hub::protocol::{Pin, PinRequirement};

use super::*;

const PIN: &str = "5555AAAAFF";

/// An eebus node (trusting our hub) with this PIN side.
fn their_node(hub: &Hub, requirement: TheirPinRequirement, peer_pin: Option<&str>) -> Node {
    eebus_node(EebusTrust::with([theirs(hub.local_ski())])).handshake_config(HandshakeConfig {
        pin: requirement,
        peer_pin: peer_pin.map(str::to_owned),
        ..HandshakeConfig::default()
    })
}

async fn pin_hub(adjust: impl FnOnce(&mut HubConfig)) -> (Hub, Arc<Recorder>) {
    let recorder = Recorder::new();
    let mut config = loopback_config(identity("ship-hub"), OUR_SHIP_ID, &recorder);
    adjust(&mut config);
    (start(config).await, recorder)
}

/// They require a PIN; we send the one stored for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eebus_requiring_a_pin_pairs_with_our_hub_both_directions() {
    trace_from_env();
    for we_dial in [false, true] {
        let (hub, recorder) = pin_hub(|_| {}).await;
        let node = their_node(&hub, TheirPinRequirement::Required(PIN.into()), None);
        let their_ski = ours(node.ski());
        hub.pair(their_ski).unwrap();
        hub.set_peer_pin(their_ski, Some(Pin::new(PIN).unwrap()))
            .unwrap();
        let connection = if we_dial {
            let node = Arc::new(node);
            let listener = node.listen("127.0.0.1:0").await.unwrap();
            hub.add_address(their_ski, listener.local_addr().unwrap())
                .unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            tokio::time::timeout(WAIT, node.accept(stream)).await
        } else {
            tokio::time::timeout(WAIT, node.connect(hub.local_addr())).await
        }
        .expect("in time")
        .expect("their side reaches data exchange: our PIN was accepted");
        let mut their = TheirSide::drive(connection);
        wait_connected(&hub, &recorder, their_ski).await;
        exchange_data(&hub, &recorder, &mut their, their_ski).await;
        hub.shutdown().await;
    }
}

/// We require a PIN; they send it from their configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_hub_requiring_a_pin_pairs_with_eebus_both_directions() {
    trace_from_env();
    for we_dial in [false, true] {
        let (hub, recorder) = pin_hub(|c| {
            c.pin_requirement = PinRequirement::Required(Pin::new(PIN).unwrap());
        })
        .await;
        let node = their_node(&hub, TheirPinRequirement::None, Some(PIN));
        let their_ski = ours(node.ski());
        hub.pair(their_ski).unwrap();
        let connection = if we_dial {
            let node = Arc::new(node);
            let listener = node.listen("127.0.0.1:0").await.unwrap();
            hub.add_address(their_ski, listener.local_addr().unwrap())
                .unwrap();
            let (stream, _) = listener.accept().await.unwrap();
            tokio::time::timeout(WAIT, node.accept(stream)).await
        } else {
            tokio::time::timeout(WAIT, node.connect(hub.local_addr())).await
        }
        .expect("in time")
        .expect("their side reaches data exchange");
        let mut their = TheirSide::drive(connection);
        // Our side opens only once their PIN was verified.
        wait_connected(&hub, &recorder, their_ski).await;
        exchange_data(&hub, &recorder, &mut their, their_ski).await;
        hub.shutdown().await;
    }
}

/// They send a wrong PIN: our hub never reaches data exchange with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eebus_with_a_wrong_pin_does_not_reach_data_exchange_with_our_hub() {
    trace_from_env();
    let (hub, recorder) = pin_hub(|c| {
        c.pin_requirement = PinRequirement::Required(Pin::new(PIN).unwrap());
    })
    .await;
    let node = their_node(&hub, TheirPinRequirement::None, Some("12345678"));
    let their_ski = ours(node.ski());
    hub.pair(their_ski).unwrap();
    // Their own requirement (none) is met, so their side opens; ours must not.
    let connection = tokio::time::timeout(WAIT, node.connect(hub.local_addr()))
        .await
        .expect("in time")
        .expect("their side opens");
    let _their = TheirSide::drive(connection);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_ne!(hub.connection_state(their_ski), ConnectionState::Completed);
    assert!(
        !recorder.all().contains(&Seen::Connected(their_ski)),
        "{:?}",
        recorder.all()
    );
    hub.shutdown().await;
}

/// We send a wrong PIN to an eebus node that requires one: their side never opens, and our
/// application is asked again (the default answer refuses, which closes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_wrong_pin_does_not_open_an_eebus_node_that_requires_one() {
    trace_from_env();
    let (hub, recorder) = pin_hub(|c| {
        c.default_peer_pin = Some(Pin::new("12345678").unwrap());
    })
    .await;
    let node = their_node(&hub, TheirPinRequirement::Required(PIN.into()), None);
    let their_ski = ours(node.ski());
    hub.pair(their_ski).unwrap();
    let result = tokio::time::timeout(WAIT, node.connect(hub.local_addr()))
        .await
        .expect("in time");
    assert!(result.is_err(), "their side must not open with a wrong PIN");
    assert!(!recorder.all().contains(&Seen::Connected(their_ski)));
    hub.shutdown().await;
}
