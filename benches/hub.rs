//! Hub-level benchmarks over the in-memory network (`MemoryLan`: tokio duplex pipes, no TCP):
//! a client connecting to a Hub through TLS + WebSocket + the full SHIP handshake to Completed
//! and closing again, and a data round trip through the Hub's echoing callback.
//!
//! `cargo bench --bench hub -- --warm-up-time 1 --measurement-time 5`

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use ship_hub::hub::net::BoxIo;
use ship_hub::hub::{
    Callbacks, Hub, HubConfig, MemoryLan, MemoryTrustStore, Network, PairedPeer, TrustStore,
};
use ship_hub::identity::{CertificateSubject, Identity};
use ship_hub::protocol::{
    CloseReason, Connection, ConnectionParams, ConnectionState, Event, ProtocolConfig, Role,
    Transmit, Trust,
};
use ship_hub::transport::{
    ShipSocket, ShipTls, SocketEvent, TlsOptions, WsOptions, connect_websocket,
};
use ship_hub::{ShipId, Ski};

fn identity(name: &str) -> Identity {
    Identity::generate(&CertificateSubject {
        common_name: name.into(),
        organization: "Bench".into(),
        country: "DE".into(),
    })
    .expect("identity")
}

/// Echoes every data message back to its sender.
#[derive(Default)]
struct Echo {
    hub: OnceLock<Hub>,
}

impl Callbacks for Echo {
    fn data_received(&self, ski: Ski, payload: &[u8]) {
        if let Some(hub) = self.hub.get() {
            let _ = hub.send_data(ski, payload);
        }
    }
}

/// A SHIP client over the in-memory network, driving the sans-IO engine.
struct Client {
    socket: ShipSocket<BoxIo>,
    connection: Connection,
}

impl Client {
    async fn connect(
        network: &dyn Network,
        tls: &ShipTls,
        hub: SocketAddr,
        hub_ski: Ski,
        ship_id: &ShipId,
    ) -> Client {
        let io = network.connect(hub).await.expect("connect");
        let stream = tls.connect(io, "", hub_ski).await.expect("tls");
        let socket = connect_websocket(
            stream,
            "10.0.0.1",
            hub.port(),
            "/ship/",
            &WsOptions::default(),
        )
        .await
        .expect("websocket");
        let connection = Connection::new(
            ConnectionParams {
                role: Role::Client,
                local_ship_id: ship_id.clone(),
                trust: Trust::Trusted,
                known_peer_ship_id: None,
                config: ProtocolConfig::default(),
            },
            Instant::now(),
        );
        let mut client = Client { socket, connection };
        client
            .run_until(|e| {
                matches!(
                    e,
                    Event::StateChanged {
                        state: ConnectionState::Completed,
                        ..
                    }
                )
            })
            .await;
        client
    }

    /// Pumps until an event matches (panics if the connection closes first).
    async fn run_until(&mut self, wanted: impl Fn(&Event) -> bool) -> Event {
        loop {
            while let Some(transmit) = self.connection.poll_transmit() {
                match transmit {
                    Transmit::Message(bytes) => self.socket.send(bytes).await.expect("send"),
                    Transmit::Close { code, reason } => {
                        let _ = self.socket.close(code, &reason).await;
                    }
                }
            }
            while let Some(event) = self.connection.poll_event() {
                if wanted(&event) {
                    return event;
                }
                assert!(!matches!(event, Event::Closed(_)), "closed: {event:?}");
            }
            match self.socket.next_event().await {
                Ok(SocketEvent::Message(bytes)) => {
                    self.connection.handle_message(&bytes, Instant::now())
                }
                Ok(_) => {}
                Err(_) => self.connection.handle_transport_closed(Instant::now()),
            }
        }
    }

    async fn close(mut self) {
        self.connection
            .close(CloseReason::Unspecific, Instant::now());
        self.run_until(|e| matches!(e, Event::Closed(_))).await;
        while let Some(Transmit::Close { code, reason }) = self.connection.poll_transmit() {
            let _ = self.socket.close(code, &reason).await;
        }
    }
}

fn hub_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let lan = MemoryLan::new();
    let hub_ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let client_net = lan.host(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    let client_id = identity("client");
    let client_tls = ShipTls::new(&client_id, TlsOptions::default()).expect("tls");
    let ship_id = ShipId::new("bench-client").unwrap();
    let trust = Arc::new(MemoryTrustStore::new());
    trust.upsert(PairedPeer::new(client_id.ski())).unwrap();
    let echo = Arc::new(Echo::default());
    let mut config = HubConfig::new(identity("hub"), ShipId::new("bench-hub").unwrap());
    config.bind = SocketAddr::new(hub_ip, 4711);
    config.network = Arc::new(lan.host(hub_ip));
    config.trust_store = trust;
    config.callbacks = echo.clone();
    let hub = runtime.block_on(Hub::start(config)).expect("hub");
    let _ = echo.hub.set(hub.clone());
    let (addr, hub_ski) = (hub.local_addr(), hub.local_ski());

    let mut group = c.benchmark_group("hub_memory_lan");
    group.bench_function("connect_handshake_close", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let client =
                    Client::connect(&client_net, &client_tls, addr, hub_ski, &ship_id).await;
                client.close().await;
            })
        })
    });
    let mut client = runtime.block_on(Client::connect(
        &client_net,
        &client_tls,
        addr,
        hub_ski,
        &ship_id,
    ));
    let payload = br#"{"datagram":[{"header":[{"msgCounter":1}]},{"payload":[{"cmd":[]}]}]}"#;
    group.bench_function("data_round_trip_via_callback", |b| {
        b.iter(|| {
            runtime.block_on(async {
                client
                    .connection
                    .send_data(payload, Instant::now())
                    .expect("send");
                client.run_until(|e| matches!(e, Event::Data(_))).await;
            })
        })
    });
    group.finish();
    runtime.block_on(async {
        client.close().await;
        hub.shutdown().await;
    });
}

criterion_group!(benches, hub_benches);
criterion_main!(benches);
