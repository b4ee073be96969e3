//! Memory check (issue 8): connect/disconnect cycles against a Hub over real TCP on 127.0.0.1
//! leave its task count exactly where it started and its resident memory within a stated bound.
//!
//! The client side is a plain SHIP client: `transport::dial` and the sans-IO
//! `protocol::Connection` in the client role, closing gracefully (connectionClose) each time.
//! RSS is that of the test process, so it covers the client side too; the bound is generous on
//! purpose (allocator caches, thread stacks) and still far below a leak of one connection per
//! cycle (about 28 KiB each, 27 MiB over 1,000 cycles: docs/performance.md).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ship_hub::hub::{Hub, HubConfig, MemoryTrustStore, PairedPeer, TrustStore};
use ship_hub::identity::{CertificateSubject, Identity};
use ship_hub::protocol::{
    CloseReason, Connection, ConnectionParams, ConnectionState, Event, ProtocolConfig, Role,
    Transmit, Trust,
};
use ship_hub::transport::{self, ShipSocket, ShipTls, SocketEvent, TlsOptions, WsOptions};
use ship_hub::{ShipId, Ski};
use tokio::net::TcpStream;

/// Growth of the process RSS allowed over all cycles.
const RSS_BOUND_KIB: u64 = 16 * 1024;
/// Deadline of one cycle (dial, handshake, close).
const CYCLE_LIMIT: Duration = Duration::from_secs(20);

fn identity(name: &str) -> Identity {
    Identity::generate(&CertificateSubject {
        common_name: name.into(),
        organization: "perf-memory".into(),
        country: "DE".into(),
    })
    .expect("identity")
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Sends what the engine queued; returns the events it emitted.
async fn pump(socket: &mut ShipSocket<TcpStream>, connection: &mut Connection) -> Vec<Event> {
    while let Some(transmit) = connection.poll_transmit() {
        match transmit {
            Transmit::Message(bytes) => {
                if socket.send(bytes).await.is_err() {
                    connection.handle_transport_closed(Instant::now());
                }
            }
            Transmit::Close { code, reason } => {
                let _ = socket.close(code, &reason).await;
            }
        }
    }
    std::iter::from_fn(|| connection.poll_event()).collect()
}

/// Feeds the next socket event or timer into the engine.
async fn feed(socket: &mut ShipSocket<TcpStream>, connection: &mut Connection) {
    let timer = connection.poll_timeout();
    tokio::select! {
        event = socket.next_event() => match event {
            Ok(SocketEvent::Message(bytes)) => connection.handle_message(&bytes, Instant::now()),
            Ok(_) => {}
            Err(_) => connection.handle_transport_closed(Instant::now()),
        },
        _ = async {
            match timer {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        } => connection.handle_timeout(Instant::now()),
    }
}

/// One cycle: dial, SHIP handshake to Completed, graceful close until the engine is closed.
async fn cycle(tls: &ShipTls, hub: &Hub, ship_id: &ShipId) {
    let mut socket = transport::dial(
        tls,
        hub.local_addr(),
        hub.local_ski(),
        "/ship/",
        &WsOptions::default(),
    )
    .await
    .expect("dial");
    let mut connection = Connection::new(
        ConnectionParams {
            role: Role::Client,
            local_ship_id: ship_id.clone(),
            trust: Trust::Trusted,
            known_peer_ship_id: None,
            config: ProtocolConfig::default(),
        },
        Instant::now(),
    );
    loop {
        let events = pump(&mut socket, &mut connection).await;
        assert!(
            !connection.is_closed(),
            "closed before Completed: {events:?}"
        );
        if events.iter().any(|e| {
            matches!(
                e,
                Event::StateChanged {
                    state: ConnectionState::Completed,
                    ..
                }
            )
        }) {
            break;
        }
        feed(&mut socket, &mut connection).await;
    }
    connection.close(CloseReason::Unspecific, Instant::now());
    loop {
        pump(&mut socket, &mut connection).await;
        if connection.is_closed() {
            break;
        }
        feed(&mut socket, &mut connection).await;
    }
}

/// Waits (bounded) until the hub's task count is `expected` and no peer is connected.
async fn settle(hub: &Hub, expected: usize) -> usize {
    for _ in 0..200 {
        if hub.task_count() == expected && hub.connected_peers().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    hub.task_count()
}

async fn cycles_leave_no_trace(cycles: usize) {
    let identities: Vec<Identity> = (0..4).map(|i| identity(&format!("client-{i}"))).collect();
    let skis: Vec<Ski> = identities.iter().map(Identity::ski).collect();
    let clients: Vec<(ShipTls, ShipId)> = identities
        .iter()
        .enumerate()
        .map(|(i, identity)| {
            let tls = ShipTls::new(identity, TlsOptions::default()).expect("tls");
            (tls, ShipId::new(format!("perf-client-{i}")).unwrap())
        })
        .collect();
    let trust = Arc::new(MemoryTrustStore::new());
    for ski in &skis {
        trust.upsert(PairedPeer::new(*ski)).unwrap();
    }
    let mut config = HubConfig::new(identity("hub"), ShipId::new("perf-hub").unwrap());
    config.bind = ([127, 0, 0, 1], 0).into();
    config.trust_store = trust;
    let hub = Hub::start(config).await.expect("hub starts");

    // Warm up: allocator arenas, runtime threads, one supervisor per client exist from the start.
    let warmup = 20;
    for i in 0..warmup {
        let (tls, ship_id) = &clients[i % clients.len()];
        tokio::time::timeout(CYCLE_LIMIT, cycle(tls, &hub, ship_id))
            .await
            .expect("warm-up cycle in time");
    }
    let idle_tasks = settle(&hub, 1 + 1 + clients.len()).await;
    // listener + trust writer + one supervisor per paired client
    assert_eq!(idle_tasks, 1 + 1 + clients.len(), "tasks after warm-up");
    let rss_before = rss_kib();

    for i in 0..cycles {
        let (tls, ship_id) = &clients[i % clients.len()];
        tokio::time::timeout(CYCLE_LIMIT, cycle(tls, &hub, ship_id))
            .await
            .unwrap_or_else(|_| panic!("cycle {i} did not finish within {CYCLE_LIMIT:?}"));
    }
    let tasks_after = settle(&hub, idle_tasks).await;
    let rss_after = rss_kib();
    let metrics = hub.metrics();
    assert_eq!(metrics.handshakes_completed, (warmup + cycles) as u64);
    assert_eq!(tasks_after, idle_tasks, "task count after {cycles} cycles");
    assert!(hub.connected_peers().is_empty());
    assert!(
        rss_after <= rss_before + RSS_BOUND_KIB,
        "RSS grew from {rss_before} KiB to {rss_after} KiB over {cycles} cycles (bound: +{RSS_BOUND_KIB} KiB)"
    );
    eprintln!(
        "{cycles} cycles: tasks {idle_tasks} -> {tasks_after}, RSS {rss_before} KiB -> {rss_after} KiB"
    );
    let report = hub.shutdown().await;
    assert!(report.connections_closed_in_time);
    assert_eq!(hub.task_count(), 0);
}

/// 1,000 cycles: task count exact, RSS within the bound. (About 4 s in a debug build.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_connect_disconnect_cycles_leave_tasks_and_rss_where_they_started() {
    cycles_leave_no_trace(1_000).await;
}
