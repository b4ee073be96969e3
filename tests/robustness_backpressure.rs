//! Backpressure end to end (docs/architecture.md, "Backpressure"): paired peers send 100 KiB
//! data messages as fast as they can into a hub whose application consumes slowly. The hub's
//! memory stays bounded (the bytes queued inside it never exceed the inbound budgets, RSS stays
//! low) because it stops reading the peers' sockets, and once the application catches up every
//! message has arrived, complete and in order.
//!
//! The sending hubs are patient (long keepalive timeout): a sender that is held back for seconds
//! by TCP flow control must not give up, so that the test sees every message through. (A real
//! device may close such a connection itself; what it had sent until then still arrives.)

use ship_test_support::common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    FLOOD_PAYLOAD_SIZE, Recorder, flood_payload, flood_seq, identity, loopback_config, spawn_flood,
    start,
};
use ship_hub::Ski;
use ship_hub::hub::{Callbacks, Delivery, DisconnectReason};
use ship_hub::{ShipId, protocol::ConnectionState};
use tokio::sync::mpsc;

/// How the slow application consumes data.
#[derive(Clone, Copy, Debug)]
enum Consume {
    /// `data_received` itself takes the time (a slow callback).
    InCallback,
    /// `data_delivered` hands the [`Delivery`] to a consumer task, which holds it while it works.
    Async,
}

/// The slow application: checks every message and records its sequence number per peer.
struct Slow {
    mode: Consume,
    delay_ms: AtomicU64,
    deliveries: mpsc::UnboundedSender<Delivery>,
    connected: AtomicUsize,
    disconnects: Mutex<Vec<(Ski, String)>>,
    received: Mutex<HashMap<Ski, Vec<u64>>>,
    damaged: AtomicUsize,
}

impl Slow {
    fn record(&self, ski: Ski, bytes: &[u8]) {
        match flood_seq(bytes) {
            Some(seq) => {
                self.received
                    .lock()
                    .unwrap()
                    .entry(ski)
                    .or_default()
                    .push(seq);
            }
            _ => {
                self.damaged.fetch_add(1, Ordering::SeqCst);
            }
        }
    }

    fn count(&self, ski: &Ski) -> u64 {
        self.received
            .lock()
            .unwrap()
            .get(ski)
            .map_or(0, |v| v.len() as u64)
    }
}

impl Callbacks for Slow {
    fn connected(&self, _: Ski, _: Option<&ShipId>) {
        self.connected.fetch_add(1, Ordering::SeqCst);
    }
    fn disconnected(&self, ski: Ski, reason: &DisconnectReason) {
        self.disconnects
            .lock()
            .unwrap()
            .push((ski, reason.to_string()));
    }
    fn state_changed(&self, _: Ski, _: ConnectionState, _: &ship_hub::hub::StateDetail) {}
    fn data_received(&self, ski: Ski, bytes: &[u8]) {
        self.record(ski, bytes);
        let delay = self.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
    }
    fn data_delivered(&self, delivery: Delivery) {
        match self.mode {
            Consume::InCallback => self.data_received(delivery.ski(), delivery.payload()),
            Consume::Async => {
                let _ = self.deliveries.send(delivery);
            }
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

struct Flood {
    peers: usize,
    secs: u64,
    delay_ms: u64,
    mode: Consume,
    per_peer: usize,
    /// If set: RSS may grow by at most the budgets plus this margin (MiB) for buffers and the
    /// allocator (the sending hubs live in this process too). Always: RSS at most 64 MiB.
    margin_mib: Option<u64>,
}

/// RSS is the whole process's: the floods run one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs the flood and checks everything; prints the figures.
async fn flood(f: Flood) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let (tx, mut rx) = mpsc::unbounded_channel::<Delivery>();
    let slow = Arc::new(Slow {
        mode: f.mode,
        delay_ms: AtomicU64::new(f.delay_ms),
        deliveries: tx,
        connected: AtomicUsize::new(0),
        disconnects: Mutex::new(Vec::new()),
        received: Mutex::new(HashMap::new()),
        damaged: AtomicUsize::new(0),
    });
    // The asynchronous consumer: holds each delivery (and so its budget) while it "works".
    let consumer = {
        let slow = slow.clone();
        tokio::spawn(async move {
            while let Some(delivery) = rx.recv().await {
                slow.record(delivery.ski(), delivery.payload());
                let delay = slow.delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                }
                drop(delivery);
            }
        })
    };
    let mut config = loopback_config(identity("victim"), "victim", &Recorder::new());
    config.callbacks = slow.clone();

    config.limits.max_inbound_bytes_per_peer = f.per_peer;
    let victim = start(config).await;
    let mut peers = Vec::new();
    for i in 0..f.peers {
        let mut config = loopback_config(identity("peer"), &format!("peer-{i}"), &Recorder::new());
        config.limits.max_queued_data = 4;
        config.timers.keepalive_timeout = Duration::from_secs(600);
        let peer = start(config).await;
        victim.pair(peer.local_ski(), None).unwrap();
        peer.pair_at(victim.local_ski(), None, Some(victim.local_addr()))
            .unwrap();
        peers.push(peer);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while slow.connected.load(Ordering::SeqCst) < f.peers {
        assert!(Instant::now() < deadline, "the peers did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rss_before = rss_kib();

    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for peer in &peers {
        senders.push(spawn_flood(peer.clone(), victim.local_ski(), stop.clone()));
    }
    let started = Instant::now();
    let (mut max_rss, mut max_queued) = (rss_before, 0u64);
    while started.elapsed() < Duration::from_secs(f.secs) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        max_rss = max_rss.max(rss_kib());
        max_queued = max_queued.max(victim.metrics().inbound_queued_bytes);
    }
    stop.store(true, Ordering::SeqCst);
    let mut sent = Vec::new();
    for sender in senders {
        sent.push(sender.await.unwrap());
    }
    let consumed_during = peers
        .iter()
        .map(|p| slow.count(&p.local_ski()))
        .sum::<u64>();
    // The application catches up.
    slow.delay_ms.store(0, Ordering::SeqCst);
    let drain_started = Instant::now();
    let drain_deadline = drain_started + Duration::from_secs(120 + f.peers as u64 * 30);
    for (peer, &n) in peers.iter().zip(&sent) {
        while slow.count(&peer.local_ski()) < n {
            assert!(
                Instant::now() < drain_deadline,
                "{} of {n} messages arrived",
                slow.count(&peer.local_ski())
            );
            max_rss = max_rss.max(rss_kib());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let drained = drain_started.elapsed();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_after = rss_kib();
    let metrics = victim.metrics();
    println!(
        "BACKPRESSURE {} peers x {} s, {:?} consumer {} ms/message, budget {} KiB/peer: sent {:?} \
         messages ({} consumed during the flood); drained in {drained:?}; RSS {rss_before} KiB \
         -> max {max_rss} KiB -> after {rss_after} KiB; inbound queued max {} KiB (peak {} KiB)",
        f.peers,
        f.secs,
        f.mode,
        f.delay_ms,
        f.per_peer / 1024,
        sent,
        consumed_during,
        max_queued / 1024,
        metrics.inbound_queued_peak_bytes / 1024,
    );

    assert_eq!(slow.damaged.load(Ordering::SeqCst), 0, "damaged messages");
    for (peer, &n) in peers.iter().zip(&sent) {
        let got = slow.received.lock().unwrap()[&peer.local_ski()].clone();
        assert!(
            got.iter().copied().eq(0..n),
            "peer {}: not 0..{n} in order (got {} messages)",
            peer.local_ski(),
            got.len()
        );
    }
    assert!(
        slow.disconnects.lock().unwrap().is_empty(),
        "{:?}",
        slow.disconnects.lock().unwrap()
    );
    assert!(sent.iter().all(|&n| n > 0), "a peer sent nothing: {sent:?}");
    // The budget: per peer at most its limit or one message, whichever is larger.
    let bound = (f.peers * f.per_peer.max(FLOOD_PAYLOAD_SIZE + 256)) as u64;
    assert!(
        metrics.inbound_queued_peak_bytes <= bound,
        "{} bytes queued inside the hub, budget {bound}",
        metrics.inbound_queued_peak_bytes
    );
    // RSS: the budgets plus a margin for buffers and the allocator (the senders live in this
    // process too).
    if let Some(margin) = f.margin_mib {
        assert!(
            max_rss.saturating_sub(rss_before) <= bound / 1024 + margin * 1024,
            "RSS grew by {} KiB (budgets {} KiB, margin {margin} MiB)",
            max_rss - rss_before,
            bound / 1024
        );
    }
    assert!(
        max_rss <= 64 * 1024,
        "RSS reached {max_rss} KiB (bound 64 MiB)"
    );
    assert_eq!(metrics.inbound_queued_bytes, 0, "budget not released");

    for peer in &peers {
        peer.shutdown().await;
    }
    let report = victim.shutdown().await;
    assert_eq!(report.tasks_aborted, 0, "{report:?}");
    drop(victim);
    consumer.abort();
}

/// Three peers flood for 5 s into a callback that takes 500 ms per message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_callback_holds_flooding_peers_back_and_loses_nothing() {
    flood(Flood {
        peers: 3,
        secs: 5,
        delay_ms: 500,
        mode: Consume::InCallback,
        per_peer: 1024 * 1024,
        margin_mib: Some(8),
    })
    .await;
}

/// The same with an asynchronous consumer that holds each [`Delivery`] while it works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_consumer_holding_deliveries_holds_flooding_peers_back() {
    flood(Flood {
        peers: 3,
        secs: 3,
        delay_ms: 200,
        mode: Consume::Async,
        per_peer: 256 * 1024,
        margin_mib: Some(8),
    })
    .await;
}

/// The target of docs/robustness.md: ten peers flood for `FLOOD_SECS` seconds (default 60) while
/// the application takes 1 s per message; RSS stays within 64 MiB and, once the application
/// catches up, every message has arrived complete and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run via .ci/test"]
async fn ten_peers_flood_a_consumer_taking_one_second_per_message() {
    let secs = std::env::var("FLOOD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    flood(Flood {
        peers: 10,
        secs,
        delay_ms: 1000,
        mode: Consume::Async,
        per_peer: 1024 * 1024,
        margin_mib: None,
    })
    .await;
}

/// An application that takes every delivery and never lets go of one.
#[derive(Default)]
struct Stuck {
    held: Mutex<Vec<Delivery>>,
    /// `Some(seq)` per delivery, `None` for the disconnect, in the order of the calls.
    calls: Mutex<Vec<Option<u64>>>,
    reasons: Mutex<Vec<String>>,
    connected: AtomicUsize,
}

impl Callbacks for Stuck {
    fn connected(&self, _: Ski, _: Option<&ShipId>) {
        self.connected.fetch_add(1, Ordering::SeqCst);
    }
    fn disconnected(&self, _: Ski, reason: &DisconnectReason) {
        self.calls.lock().unwrap().push(None);
        self.reasons.lock().unwrap().push(match reason {
            DisconnectReason::Backpressure => "Backpressure".to_owned(),
            other => other.to_string(),
        });
    }
    fn data_delivered(&self, delivery: Delivery) {
        let seq = flood_seq(delivery.payload());
        self.calls
            .lock()
            .unwrap()
            .push(Some(seq.unwrap_or(u64::MAX)));
        self.held.lock().unwrap().push(delivery);
    }
}

/// An application that consumes nothing: the peer is held back, and once our ping has waited
/// behind its unread data for `max_inbound_stall` (here 2 s, keepalive every 1 s) the connection
/// is closed with the typed reason `Backpressure` (counted in the metrics). Everything read
/// before arrives, complete and in order, before the `disconnected` call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_takes_nothing_gets_its_peer_closed_for_backpressure() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let stuck = Arc::new(Stuck::default());
    let mut config = loopback_config(identity("victim"), "victim", &Recorder::new());
    config.callbacks = stuck.clone();
    config.limits.max_inbound_bytes_per_peer = 256 * 1024;
    config.limits.max_inbound_stall = Duration::from_secs(2);
    config.timers.keepalive_interval = Duration::from_secs(1);
    let victim = start(config).await;
    let mut config = loopback_config(identity("peer"), "peer", &Recorder::new());
    config.limits.max_queued_data = 4;
    config.timers.keepalive_timeout = Duration::from_secs(600);
    let peer = start(config).await;
    victim.pair(peer.local_ski(), None).unwrap();
    peer.pair_at(victim.local_ski(), None, Some(victim.local_addr()))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stuck.connected.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the peer did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let (peer, stop, target) = (peer.clone(), stop.clone(), victim.local_ski());
        tokio::spawn(async move {
            let mut seq = 0u64;
            while !stop.load(Ordering::SeqCst) {
                match peer.send_data(target, &flood_payload(seq)) {
                    Ok(()) => seq += 1,
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while stuck.reasons.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "not closed for backpressure");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closed_after = started.elapsed();
    stop.store(true, Ordering::SeqCst);
    sender.await.unwrap();
    let calls = stuck.calls.lock().unwrap().clone();
    let metrics = victim.metrics();
    println!(
        "STALL: closed after {closed_after:?}; {} deliveries held; reasons {:?}; metrics {:?}",
        stuck.held.lock().unwrap().len(),
        stuck.reasons.lock().unwrap(),
        metrics.failures
    );
    assert_eq!(stuck.reasons.lock().unwrap()[0], "Backpressure");
    assert!(metrics.failures.backpressure >= 1, "{:?}", metrics.failures);
    let first_disconnect = calls.iter().position(Option::is_none).unwrap();
    let delivered: Vec<u64> = calls[..first_disconnect]
        .iter()
        .flatten()
        .copied()
        .collect();
    assert!(!delivered.is_empty());
    assert!(
        delivered.iter().copied().eq(0..delivered.len() as u64),
        "{delivered:?}"
    );
    assert!(
        metrics.inbound_queued_peak_bytes <= 256 * 1024,
        "{} bytes queued",
        metrics.inbound_queued_peak_bytes
    );
    // Letting go releases the budget.
    stuck.held.lock().unwrap().clear();
    assert_eq!(victim.metrics().inbound_queued_bytes, 0);
    peer.shutdown().await;
    victim.shutdown().await;
}
