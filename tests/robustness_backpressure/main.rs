//! Backpressure end to end (docs/architecture.md, "Backpressure"): paired peers send 100 KiB
//! data messages as fast as they can into a hub whose application consumes slowly. The hub's
//! memory stays bounded (the bytes queued inside it never exceed the inbound budgets, RSS stays
//! low) because it stops reading the peers' sockets, and once the application catches up every
//! message has arrived, complete and in order.
//!
//! The sending hubs are patient (long keepalive timeout): a sender that is held back for seconds
//! by TCP flow control must not give up, so that the test sees every message through. (A real
//! device may close such a connection itself; what it had sent until then still arrives.)

use ship_hub::hub::PairedPeer;
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
use ship_hub::hub::{Callbacks, Delivery, EndCause};
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
    fn disconnected(&self, ski: Ski, reason: &EndCause) {
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
        victim.pair(peer.local_ski()).unwrap();
        peer.pair(PairedPeer::new(victim.local_ski()).with_address(victim.local_addr()))
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
    fn disconnected(&self, _: Ski, reason: &EndCause) {
        self.calls.lock().unwrap().push(None);
        self.reasons.lock().unwrap().push(match reason {
            EndCause::Backpressure => "Backpressure".to_owned(),
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
    victim.pair(peer.local_ski()).unwrap();
    peer.pair(PairedPeer::new(victim.local_ski()).with_address(victim.local_addr()))
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

/// An application that can stop consuming: while paused it keeps every delivery it gets (its
/// bytes stay charged to the peer's budget); resumed, it lets go of them and of every later one
/// at once. It records the sequence number of each message in the order of the calls.
#[derive(Default)]
struct Pausable {
    paused: AtomicBool,
    held: Mutex<Vec<Delivery>>,
    received: Mutex<Vec<Option<u64>>>,
    connected: AtomicUsize,
    disconnects: Mutex<Vec<String>>,
}

impl Pausable {
    fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.held.lock().unwrap().clear();
    }

    fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

impl Callbacks for Pausable {
    fn connected(&self, _: Ski, _: Option<&ShipId>) {
        self.connected.fetch_add(1, Ordering::SeqCst);
    }
    fn disconnected(&self, _: Ski, reason: &EndCause) {
        self.disconnects.lock().unwrap().push(reason.to_string());
    }
    fn data_delivered(&self, delivery: Delivery) {
        let seq = small_seq(delivery.payload());
        self.received.lock().unwrap().push(seq);
        if self.paused.load(Ordering::SeqCst) {
            self.held.lock().unwrap().push(delivery);
        }
    }
}

/// Size of the messages of the mutual flood: small, so that the test moves many of them
/// through TLS and WebSocket quickly in a debug build.
const SMALL_PAYLOAD_SIZE: usize = 4 * 1024;

/// Message `seq` of the mutual flood: `{"seq":N,"pad":"…"}`, [`SMALL_PAYLOAD_SIZE`] bytes.
fn small_payload(seq: u64) -> Vec<u8> {
    let mut bytes = format!(r#"{{"seq":{seq},"pad":""#).into_bytes();
    let pad = SMALL_PAYLOAD_SIZE - bytes.len() - 2;
    bytes.extend(std::iter::repeat_n(b'a' + (seq % 26) as u8, pad));
    bytes.extend_from_slice(br#""}"#);
    bytes
}

/// The number of a message that is exactly [`small_payload`]`(seq)`, else `None`.
fn small_seq(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes.get(..30)?).ok()?;
    let seq = text
        .strip_prefix(r#"{"seq":"#)?
        .split(',')
        .next()?
        .parse()
        .ok()?;
    (bytes == small_payload(seq).as_slice()).then_some(seq)
}

/// Two hubs flood each other while neither application consumes anything. Each stops reading
/// once its peer's budget is used up, so each one's writes wait for the other: both links hold
/// a write the peer does not take. Then both applications resume. A link that wrote outside its
/// `select!` read nothing while its write waited, so neither side ever read again and both links
/// ended at the write bound (`keepalive_timeout`) with data lost; a full-duplex link reads on
/// while its write waits. Asserted: no disconnect, one connection throughout, every message
/// delivered once, complete and in order, in both directions. Run with the default keepalive
/// (no ping during the pause) and with a ping every second (pings fall due while the writes
/// wait, and go out behind them). In-memory LAN on tokio's paused clock: the same run every
/// time.
#[test]
fn two_hubs_that_hold_each_other_back_resume_without_closing_or_losing_anything() {
    common::paused_runtime().block_on(hold_each_other_back(None));
    common::paused_runtime().block_on(hold_each_other_back(Some(Duration::from_secs(1))));
}

async fn hold_each_other_back(keepalive_interval: Option<Duration>) {
    use common::{lan_addr, lan_config, ordered_identities};
    use ship_hub::hub::MemoryLan;

    /// Messages each hub sends: 1.2 MiB, many times the budget, the pipe and the queue.
    const MESSAGES: u64 = 300;
    let lan = MemoryLan::new();
    let (a_id, b_id) = ordered_identities();
    let (a_ski, b_ski) = (a_id.ski(), b_id.ski());
    let apps = [Arc::new(Pausable::default()), Arc::new(Pausable::default())];
    let mut hubs = Vec::new();
    for (host, (identity, app)) in [(1u8, (a_id, &apps[0])), (2, (b_id, &apps[1]))] {
        let mut config = lan_config(&lan, host, identity, &Recorder::new());
        config.callbacks = app.clone();
        config.limits.max_inbound_bytes_per_peer = 64 * 1024;
        config.limits.max_queued_data = 8;
        if let Some(interval) = keepalive_interval {
            config.timers.keepalive_interval = interval;
        }
        hubs.push(start(config).await);
    }
    let (a, b) = (hubs[0].clone(), hubs[1].clone());
    // One side dials (no crossing dials to settle).
    a.pair(PairedPeer::new(b_ski).with_address(lan_addr(2)))
        .unwrap();
    b.pair(a_ski).unwrap();
    let connected = tokio::time::Instant::now() + Duration::from_secs(30);
    while apps
        .iter()
        .any(|app| app.connected.load(Ordering::SeqCst) == 0)
    {
        assert!(tokio::time::Instant::now() < connected, "not connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for app in &apps {
        app.paused.store(true, Ordering::SeqCst);
    }
    let failures_before = [a.metrics().failures, b.metrics().failures];

    // Both flood; `send_data` says Backpressure once the link's queue is full.
    let sender = |from: ship_hub::hub::Hub, to: Ski| {
        tokio::spawn(async move {
            let mut seq = 0;
            while seq < MESSAGES {
                match from.send_data(to, &small_payload(seq)) {
                    Ok(()) => seq += 1,
                    Err(ship_hub::hub::HubError::Backpressure(_)) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    Err(error) => panic!("sending: {error}"),
                }
            }
        })
    };
    let senders = [sender(a.clone(), b_ski), sender(b.clone(), a_ski)];

    // Held back for 5 s (within the 10-s write bound: both are patient peers).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let held: Vec<usize> = apps.iter().map(|app| app.count()).collect();
    assert!(
        held.iter().all(|&n| (n as u64) < MESSAGES / 2),
        "the budgets did not hold the floods back: {held:?} of {MESSAGES} read"
    );
    for app in &apps {
        assert!(
            app.disconnects.lock().unwrap().is_empty(),
            "{:?}",
            app.disconnects
        );
        app.resume();
    }

    let drained = tokio::time::Instant::now() + Duration::from_secs(60);
    while apps.iter().any(|app| (app.count() as u64) < MESSAGES) {
        assert!(
            tokio::time::Instant::now() < drained,
            "after resuming: {:?} of {MESSAGES} messages arrived; disconnects {:?} / {:?}",
            apps.iter().map(|app| app.count()).collect::<Vec<_>>(),
            apps[0].disconnects.lock().unwrap(),
            apps[1].disconnects.lock().unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for sender in senders {
        sender.await.unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for ((app, before), (hub, peer)) in apps
        .iter()
        .zip(failures_before)
        .zip([(&a, b_ski), (&b, a_ski)])
    {
        let received = app.received.lock().unwrap().clone();
        assert!(
            received.iter().copied().eq((0..MESSAGES).map(Some)),
            "not 0..{MESSAGES} once each, in order: {} messages, first wrong at {:?}",
            received.len(),
            received
                .iter()
                .zip(0..)
                .position(|(got, want)| *got != Some(want))
        );
        assert!(
            app.disconnects.lock().unwrap().is_empty(),
            "{:?}",
            app.disconnects
        );
        assert_eq!(app.connected.load(Ordering::SeqCst), 1, "connected again");
        assert_eq!(hub.connections(peer).len(), 1);
        assert_eq!(hub.metrics().failures, before, "a failure during the flood");
        assert_eq!(hub.metrics().inbound_queued_bytes, 0);
    }
    for hub in hubs {
        let report = hub.shutdown().await;
        assert_eq!(report.tasks_aborted, 0, "{report:?}");
    }
}

/// A trusted peer stops reading (the victim's write to it waits) and then sends 10,000 pings.
/// The victim's link reads on while its write waits (full duplex), and the WebSocket answers
/// every ping it reads with a pong in its write buffer, behind the waiting write. That buffer is
/// bounded (the message limit + 192 KiB: docs/robustness.md), so the pongs cannot pile up: once
/// the peer reads again it gets at most a write buffer's worth of them (plus what the TLS layer
/// buffers), not one per ping. The link stays up. In-memory LAN (a 64 KiB pipe, no kernel
/// buffers to absorb pongs) on tokio's paused clock: the same run every time.
#[test]
fn pings_from_a_peer_that_does_not_read_cannot_pile_up_pongs() {
    common::paused_runtime().block_on(pings_without_reading());
}

async fn pings_without_reading() {
    use common::{Seen, lan_addr, lan_config};
    use ship_hub::hub::MemoryLan;
    use ship_hub::hub::Network;
    use ship_hub::transport::{SocketEvent, WsOptions, connect_websocket};
    use ship_test_support::harness::{Stage, advance, tls};

    const PINGS: usize = 10_000;
    /// A pong of a 125-byte ping: 2 bytes of header (a server's frames are not masked) + payload.
    const PONG_BYTES: usize = 127;
    /// The victim's write-buffer bound with the default 100 KiB message limit, plus the 64 KiB
    /// of ciphertext rustls may hold.
    const BOUND: usize = (128 + 100 + 64) * 1024 + 64 * 1024;
    let lan = MemoryLan::new();
    let rec = Recorder::new();
    let mut config = lan_config(&lan, 1, identity("victim"), &rec);
    config.limits.max_queued_data = 16;
    config.timers.keepalive_timeout = Duration::from_secs(600);
    let victim = start(config).await;
    let peer = identity("sloth");
    victim.pair(peer.ski()).unwrap();
    let io = lan
        .host(lan_addr(2).ip())
        .connect(lan_addr(1))
        .await
        .unwrap();
    let stream = tls(&peer)
        .connect(io, "", victim.local_ski())
        .await
        .unwrap();
    let mut socket = connect_websocket(stream, "10.0.0.1", 4711, "/ship/", &WsOptions::default())
        .await
        .unwrap();
    advance(&mut socket, Stage::DataExchange).await;
    assert!(
        rec.wait_for(Duration::from_secs(10), |s| *s
            == Seen::Connected(peer.ski()))
            .await
    );
    // The victim sends until its queue is full: its link waits in a write.
    let payload = format!(r#"{{"blob":"{}"}}"#, "x".repeat(60_000));
    let mut sent = 0;
    while victim.send_data(peer.ski(), payload.as_bytes()).is_ok() {
        sent += 1;
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    for _ in 0..PINGS {
        tokio::time::timeout(Duration::from_secs(10), socket.ping(vec![b'p'; 125]))
            .await
            .expect("the victim reads pings while its write waits")
            .unwrap();
    }
    // Read everything: the data the victim queued, with the pongs that waited behind it.
    let (mut data, mut pongs) = (0, 0);
    while data < sent {
        let event = tokio::time::timeout(Duration::from_secs(10), socket.next_event())
            .await
            .unwrap_or_else(|_| panic!("{data} of {sent} messages, {pongs} pongs"))
            .unwrap();
        match event {
            SocketEvent::Message(bytes) if bytes.windows(7).any(|w| w == br#"{"blob""#) => {
                data += 1;
            }
            SocketEvent::Message(_) => {}
            SocketEvent::Pong(_) => pongs += 1,
            other => panic!("{other:?}"),
        }
    }
    println!("PONGS: {pongs} pongs for {PINGS} pings behind {sent} messages");
    assert!(
        pongs * PONG_BYTES <= BOUND,
        "{pongs} pongs ({} bytes) waited in the victim's buffers",
        pongs * PONG_BYTES
    );
    assert_eq!(
        rec.count(|s| matches!(s, Seen::Disconnected(..))),
        0,
        "{:?}",
        rec.all()
    );
    drop(socket);
    victim.shutdown().await;
}
