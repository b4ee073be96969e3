//! Codec and handshake-machine micro-benchmarks.
//!
//! `cargo bench --bench protocol -- --warm-up-time 1 --measurement-time 3`

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::value::RawValue;
use ship_hub::ShipId;
use ship_hub::protocol::codec;
use ship_hub::protocol::message::*;
use ship_hub::protocol::{
    Connection, ConnectionParams, ConnectionState, ProtocolConfig, Role, Transmit, Trust,
};

fn messages() -> Vec<(&'static str, ShipMessage)> {
    let spine = r#"{"datagram":[{"header":[{"specificationVersion":"1.3.0"},{"addressSource":[{"device":"d:_i:1"},{"entity":[0]},{"feature":0}]},{"addressDestination":[{"device":"d:_i:2"},{"entity":[0]},{"feature":0}]},{"msgCounter":1},{"cmdClassifier":"read"}]},{"payload":[{"cmd":[[{"nodeManagementDetailedDiscoveryData":[]}]]}]}]}"#;
    vec![
        ("cmi", ShipMessage::Cmi),
        (
            "hello_ready",
            ShipMessage::ConnectionHello(ConnectionHello {
                phase: HelloPhase::Ready,
                waiting: Some(60000),
                prolongation_request: None,
            }),
        ),
        (
            "announce_max",
            ShipMessage::ProtocolHandshake(ProtocolHandshake::ship_1_0(HandshakeType::AnnounceMax)),
        ),
        (
            "handshake_error",
            ShipMessage::ProtocolHandshakeError(ProtocolHandshakeError {
                error: HandshakeErrorCode::Timeout,
            }),
        ),
        (
            "pin_state",
            ShipMessage::ConnectionPinState(ConnectionPinState {
                pin_state: PinState::None,
                input_permission: None,
            }),
        ),
        ("access_methods_request", ShipMessage::AccessMethodsRequest),
        (
            "access_methods",
            ShipMessage::AccessMethods(AccessMethods {
                id: Some("Demo-EVSE-234567890".into()),
            }),
        ),
        (
            "data_spine",
            ShipMessage::Data(Data {
                protocol_id: "ee1.0".into(),
                payload: RawValue::from_string(spine.into()).unwrap(),
                extension: None,
            }),
        ),
        (
            "close_announce",
            ShipMessage::ConnectionClose(ConnectionClose {
                phase: ClosePhase::Announce,
                max_time: Some(500),
                reason: Some(CloseReason::Unspecific),
            }),
        ),
    ]
}

fn codec_benches(c: &mut Criterion) {
    let mut encode = c.benchmark_group("encode");
    for (name, message) in messages() {
        encode.bench_function(name, |b| b.iter(|| codec::encode(black_box(&message))));
    }
    encode.finish();
    let mut decode = c.benchmark_group("decode");
    for (name, message) in messages() {
        let bytes = codec::encode(&message);
        decode.bench_function(name, |b| {
            b.iter(|| codec::decode(black_box(&bytes)).unwrap())
        });
    }
    decode.finish();
}

fn params(role: Role, id: &str) -> ConnectionParams {
    ConnectionParams {
        role,
        local_ship_id: ShipId::new(id).unwrap(),
        trust: Trust::Trusted,
        known_peer_ship_id: None,
        config: ProtocolConfig::default(),
    }
}

/// CMI to Completed on both sides, all in memory.
fn handshake(now: Instant) -> (Connection, Connection) {
    let mut client = Connection::new(params(Role::Client, "Client"), now);
    let mut server = Connection::new(params(Role::Server, "Server"), now);
    let mut to_server = VecDeque::new();
    let mut to_client = VecDeque::new();
    loop {
        while let Some(Transmit::Message(m)) = client.poll_transmit() {
            to_server.push_back(m);
        }
        while let Some(Transmit::Message(m)) = server.poll_transmit() {
            to_client.push_back(m);
        }
        if to_server.is_empty() && to_client.is_empty() {
            break;
        }
        while let Some(m) = to_server.pop_front() {
            server.handle_message(&m, now);
        }
        while let Some(m) = to_client.pop_front() {
            client.handle_message(&m, now);
        }
    }
    while client.poll_event().is_some() {}
    while server.poll_event().is_some() {}
    (client, server)
}

fn machine_benches(c: &mut Criterion) {
    let now = Instant::now();
    let (client, server) = handshake(now);
    assert_eq!(client.state(), ConnectionState::Completed);
    assert_eq!(server.state(), ConnectionState::Completed);
    c.bench_function("handshake/full_pump_in_memory", |b| {
        b.iter(|| handshake(black_box(now)))
    });

    let (mut client, mut server) = handshake(now);
    let payload = br#"{"datagram":[{"header":[{"msgCounter":7}]},{"payload":[{"cmd":[[]]}]}]}"#;
    c.bench_function("data/send_and_receive", |b| {
        b.iter(|| {
            client.send_data(black_box(payload), now).unwrap();
            if let Some(Transmit::Message(m)) = client.poll_transmit() {
                server.handle_message(&m, now);
            }
            server.poll_event()
        })
    });
}

criterion_group!(benches, codec_benches, machine_benches);
criterion_main!(benches);
