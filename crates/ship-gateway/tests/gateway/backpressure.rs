//! The real `ship-gateway` process under output pressure (docs/gateway.md, "Output"):
//!
//! * its stdout is never read: it still completes a new peer's TLS + SHIP handshake, answers a
//!   control-socket `send`, and exits on SIGTERM within the shutdown deadline;
//! * paired peers flood it with 100 KiB data messages while its stdout is read slowly: its RSS
//!   stays bounded (the peers are held back by TCP flow control), and once the reader catches up
//!   every message has been reported, and echoed back complete and in order.
//!
//! The peers are library hubs in this process; loopback only.

use crate::gateway_support;
use ship_hub::hub::PairedPeer;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gateway_support::common::{
    FLOOD_PAYLOAD_SIZE, Recorder, Seen, flood_seq, identity, loopback_config, spawn_flood, start,
};
use gateway_support::{assert_ok, gateway, run_command, ski_of, tempdir};
use serde_json::Value;
use ship_hub::hub::{Callbacks, HubError};
use ship_hub::{ShipId, Ski};

/// Failure bound for anything awaited (never a timing claim).
const WAIT: Duration = Duration::from_secs(30);
/// The gateway's shutdown deadline (the hub's default, 5 s) plus slack for a loaded machine.
const EXIT_BOUND: Duration = Duration::from_secs(10);
/// A `run --json` process, killed when dropped.
struct Gateway {
    child: Child,
}

impl Gateway {
    /// Starts the gateway with stdout piped; returns it, its address and its stdout (after the
    /// `listening` line).
    fn start(
        dir: &Path,
        extra: &[&str],
        workers: Option<usize>,
    ) -> (Gateway, SocketAddr, BufReader<std::process::ChildStdout>) {
        let mut command = run_command(dir, &[], extra);
        if let Some(n) = workers {
            command.env("TOKIO_WORKER_THREADS", n.to_string());
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ship-gateway run");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        let listening: Value = serde_json::from_str(&first).expect(&first);
        assert_eq!(listening["event"], "listening", "{first}");
        let address = listening["address"].as_str().unwrap().parse().unwrap();
        (Gateway { child }, address, stdout)
    }

    fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }

    /// Sends SIGTERM; the exit status if it exits within `limit`.
    fn terminate_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends small data messages from `hub` to `to` until `stop` or the connection is gone,
/// waiting out the hub's own back-pressure; returns how many the hub accepted.
async fn send_small(hub: ship_hub::hub::Hub, to: Ski, stop: Arc<AtomicBool>) -> u64 {
    let mut sent = 0;
    while !stop.load(Ordering::SeqCst) {
        match hub.send_data(to, format!(r#"{{"n":{sent}}}"#).as_bytes()) {
            Ok(()) => sent += 1,
            Err(HubError::Backpressure(_)) => tokio::time::sleep(Duration::from_millis(2)).await,
            Err(HubError::NotConnected(_)) => break,
            Err(error) => panic!("sending: {error}"),
        }
    }
    sent
}

/// Stdout piped into a process that never reads (this test holds the pipe and never reads it
/// after `listening`) while a paired peer keeps sending small data messages: the pipe fills,
/// then the peer's inbound budget (its `data` lines wait for stdout), so the gateway stops
/// reading that peer. Still a control-socket `send` is answered at once, a new peer completes
/// its handshake and receives a control `send`, and SIGTERM ends the gateway within the
/// shutdown deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_whose_stdout_is_never_read_keeps_serving_and_obeys_sigterm() {
    let tmp = tempdir();
    let dir = tmp.path().to_owned();
    let gw: Ski = ski_of(&dir).parse().unwrap();
    let (a_id, b_id) = (identity("a"), identity("b"));
    let (a_ski, b_ski) = (a_id.ski(), b_id.ski());
    assert_ok(&gateway(&dir, &["pair", &a_ski.to_string()]));
    assert_ok(&gateway(&dir, &["pair", &b_ski.to_string()]));
    let (mut running, address, stdout) = Gateway::start(&dir, &[], None);
    // `stdout` stays open and is never read again.

    let a_rec = Recorder::new();
    let mut config = loopback_config(a_id, "a", &a_rec);
    // Patient: held back by TCP flow control, it does not give up.
    config.timers.keepalive_timeout = Duration::from_secs(600);
    let a = start(config).await;
    a.pair(PairedPeer::new(gw).with_address(address)).unwrap();
    assert!(a_rec.wait_for(WAIT, |s| *s == Seen::Connected(gw)).await);
    // Lines of ~100 bytes: a pipe buffer (64 KiB) holds some 600, the peer's budget (1 MiB at
    // 256 bytes of bookkeeping per message) some 3,800 more.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = tokio::spawn(send_small(a.clone(), gw, stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;

    // A control-socket `send` is answered at once (today's bound: well under the client's 30 s).
    let started = Instant::now();
    let (send_dir, to) = (dir.clone(), a_ski.to_string());
    let send = tokio::task::spawn_blocking(move || {
        gateway(&send_dir, &["send", &to, r#"{"via":"control"}"#])
    });
    let output = tokio::time::timeout(Duration::from_secs(15), send)
        .await
        .expect("control send answered within 15 s")
        .unwrap();
    let took = started.elapsed();
    assert_ok(&output);
    // (Not asserted: that the flooding peer receives it. That peer's own link may be blocked in
    // a write the gateway does not read, and a link does not read while it writes; delivery is
    // checked below with the new peer, which is not held back.)

    // A new peer completes TLS + SHIP.
    let b_rec = Recorder::new();
    let b = start(loopback_config(b_id, "b", &b_rec)).await;
    let dialled = Instant::now();
    b.pair(PairedPeer::new(gw).with_address(address)).unwrap();
    assert!(
        b_rec
            .wait_for(Duration::from_secs(20), |s| *s == Seen::Connected(gw))
            .await,
        "a new peer did not complete its handshake"
    );
    let handshake = dialled.elapsed();
    // The gateway still sends: a control `send` to the new peer is delivered.
    let (send_dir, to) = (dir.clone(), b_ski.to_string());
    let send = tokio::task::spawn_blocking(move || {
        gateway(&send_dir, &["send", &to, r#"{"via":"control"}"#])
    });
    let output = tokio::time::timeout(Duration::from_secs(15), send)
        .await
        .expect("control send answered within 15 s")
        .unwrap();
    assert_ok(&output);
    assert!(
        b_rec
            .wait_for(WAIT, |s| *s
                == Seen::Data(gw, br#"{"via":"control"}"#.to_vec()))
            .await,
        "the new peer did not receive the control send"
    );

    assert_eq!(
        a_rec.count(|s| matches!(s, Seen::Disconnected(..))),
        0,
        "the flooding peer was dropped"
    );

    // SIGTERM: out within the deadline.
    let stopping = Instant::now();
    let status = running
        .terminate_within(EXIT_BOUND)
        .expect("the gateway did not exit on SIGTERM");
    let exited = stopping.elapsed();
    stop.store(true, Ordering::SeqCst);
    let accepted = flood.await.unwrap();
    println!(
        "BLOCKED STDOUT: {accepted} small messages accepted by the flooding peer; control send \
         answered in {took:?}, new peer connected in {handshake:?}, SIGTERM exit after \
         {exited:?} ({status:?})"
    );
    assert!(status.success(), "{status:?}");
    drop(stdout);
    a.shutdown().await;
    b.shutdown().await;
}

/// Shrinks the pipe between the gateway's stdout and the slow reader to one page (about 37
/// lines): a default pipe (64 KiB, some 600 `data` lines) would absorb 60 MB of data before
/// the reader's pace mattered.
fn shrink_pipe(stdout: &std::process::ChildStdout) {
    use std::os::fd::AsRawFd;
    // SAFETY: fcntl on a file descriptor this process owns for the duration of the call.
    let result = unsafe { libc::fcntl(stdout.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
    assert!(
        result >= 4096,
        "F_SETPIPE_SZ: {}",
        std::io::Error::last_os_error()
    );
}

/// A flooding peer's application: records the sequence numbers of the echoes it gets back.
#[derive(Default)]
struct Flooder {
    connected: AtomicBool,
    echoed: Mutex<Vec<u64>>,
    damaged: AtomicUsize,
}

impl Callbacks for Flooder {
    fn connected(&self, _: Ski, _: Option<&ShipId>) {
        self.connected.store(true, Ordering::SeqCst);
    }
    fn data_received(&self, _: Ski, bytes: &[u8]) {
        match flood_seq(bytes) {
            Some(seq) => self.echoed.lock().unwrap().push(seq),
            _ => {
                self.damaged.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// What the slow reader of the gateway's stdout saw.
#[derive(Default)]
struct Seen2 {
    /// `data` events per SKI: their byte counts, in order.
    data: HashMap<String, Vec<u64>>,
    warnings: Vec<String>,
}

/// `peers` paired library hubs send 100 KiB messages as fast as they can for `secs` seconds
/// into a gateway (`--echo`) whose stdout is read one `data` line per `line_ms`; afterwards the
/// reader catches up. Returns the gateway's RSS in KiB: (baseline, max during the flood, max
/// while the reader catches up).
async fn gateway_flood(peers: usize, secs: u64, line_ms: u64) -> (u64, u64, u64) {
    // One flood at a time: they measure memory and drain times on a shared machine.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _alone = ONE_AT_A_TIME.lock().await;
    let tmp = tempdir();
    let dir = tmp.path().to_owned();
    let gw: Ski = ski_of(&dir).parse().unwrap();
    let ids: Vec<_> = (0..peers).map(|i| identity(&format!("peer-{i}"))).collect();
    for id in &ids {
        assert_ok(&gateway(&dir, &["pair", &id.ski().to_string()]));
    }
    // Four runtime threads, as on a four-core board: one slow writer must not be able to hide
    // a missing bound by stalling the whole runtime.
    // Every peer dials from 127.0.0.1 at once: let the handshakes of all of them in (on a LAN
    // they come from as many hosts), so that no refusal (a `warning` since refusals are
    // reported) gets into a test of the output's backpressure.
    let (mut running, address, stdout) = Gateway::start(
        &dir,
        &["--echo", "--max-handshakes-per-address", "32"],
        Some(4),
    );
    shrink_pipe(stdout.get_ref());
    let delay = Arc::new(AtomicU64::new(line_ms));
    let seen = Arc::new(Mutex::new(Seen2::default()));
    {
        let (delay, seen) = (delay.clone(), seen.clone());
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { break };
                let value: Value = serde_json::from_str(&line).unwrap();
                let mut seen = seen.lock().unwrap();
                match value["event"].as_str() {
                    Some("data") => {
                        seen.data
                            .entry(value["ski"].as_str().unwrap().to_owned())
                            .or_default()
                            .push(value["bytes"].as_u64().unwrap());
                        drop(seen);
                        let ms = delay.load(Ordering::SeqCst);
                        if ms > 0 {
                            std::thread::sleep(Duration::from_millis(ms));
                        }
                    }
                    Some("warning") | Some("events_dropped") => seen.warnings.push(line),
                    _ => {}
                }
            }
        });
    }
    let rss_before = running.rss_kib();
    let mut hubs = Vec::new();
    let mut apps = Vec::new();
    for (i, id) in ids.into_iter().enumerate() {
        let app = Arc::new(Flooder::default());
        let mut config = loopback_config(id, &format!("peer-{i}"), &Recorder::new());
        config.callbacks = app.clone();
        config.limits.max_queued_data = 4;
        // Patient senders: held back by TCP flow control for seconds, they do not give up.
        config.timers.keepalive_timeout = Duration::from_secs(600);
        let hub = start(config).await;
        hub.pair(PairedPeer::new(gw).with_address(address)).unwrap();
        hubs.push(hub);
        apps.push(app);
    }
    let deadline = Instant::now() + WAIT;
    while !apps.iter().all(|a| a.connected.load(Ordering::SeqCst)) {
        assert!(Instant::now() < deadline, "the peers did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    for hub in &hubs {
        senders.push(spawn_flood(hub.clone(), gw, stop.clone()));
    }
    let started = Instant::now();
    let mut max_rss = rss_before;
    while started.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        max_rss = max_rss.max(running.rss_kib());
    }
    stop.store(true, Ordering::SeqCst);
    let mut sent = Vec::new();
    for sender in senders {
        sent.push(sender.await.unwrap());
    }
    let reported_during: usize = seen.lock().unwrap().data.values().map(Vec::len).sum();
    delay.store(0, Ordering::SeqCst);
    let drain_started = Instant::now();
    let drain_deadline = drain_started + Duration::from_secs(120 + peers as u64 * 30);
    let mut max_rss_drain = max_rss;
    for ((hub, app), &n) in hubs.iter().zip(&apps).zip(&sent) {
        let ski = hub.local_ski().to_string();
        loop {
            let reported = seen.lock().unwrap().data.get(&ski).map_or(0, Vec::len) as u64;
            let echoed = app.echoed.lock().unwrap().len() as u64;
            if reported >= n && echoed >= n {
                break;
            }
            assert!(
                Instant::now() < drain_deadline,
                "{ski}: {reported} reported, {echoed} echoed of {n}; warnings {:?}",
                seen.lock().unwrap().warnings
            );
            max_rss_drain = max_rss_drain.max(running.rss_kib());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let drained = drain_started.elapsed();
    let rss_after = running.rss_kib();
    println!(
        "GATEWAY FLOOD {peers} peers x {secs} s, stdout reader {line_ms} ms per data line: sent \
         {sent:?} messages ({reported_during} reported during the flood); drained in \
         {drained:?}; gateway RSS {rss_before} KiB -> max {max_rss} KiB (while draining max \
         {max_rss_drain} KiB) -> after {rss_after} KiB"
    );
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(seen.warnings.is_empty(), "{:?}", seen.warnings);
    for ((hub, app), &n) in hubs.iter().zip(&apps).zip(&sent) {
        let ski = hub.local_ski().to_string();
        let bytes = &seen.data[&ski];
        assert_eq!(bytes.len() as u64, n, "{ski}: every message reported once");
        assert!(
            bytes.iter().all(|&b| b == FLOOD_PAYLOAD_SIZE as u64),
            "{ski}: sizes"
        );
        let echoed = app.echoed.lock().unwrap().clone();
        assert!(
            echoed.iter().copied().eq(0..n),
            "{ski}: echoes not 0..{n} in order ({} echoes)",
            echoed.len()
        );
        assert_eq!(app.damaged.load(Ordering::SeqCst), 0);
    }
    assert!(sent.iter().all(|&n| n > 0), "a peer sent nothing: {sent:?}");
    for hub in &hubs {
        hub.shutdown().await;
    }
    assert!(running.terminate_within(EXIT_BOUND).is_some());
    (rss_before, max_rss, max_rss_drain)
}

/// Three peers flood a gateway whose stdout reader takes 200 ms per `data` line, for 8 s: the
/// gateway's RSS grows by no more than the three peers' inbound budgets (1 MiB each; a waiting
/// `data` line carries its payload and holds the budget), the event history of the API's event
/// stream (2 MiB, `api/bus.rs`), plus a margin for buffers and the allocator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_stdout_reader_holds_flooding_peers_back() {
    let (before, flood, drain) = gateway_flood(3, 8, 200).await;
    let bound = before + 3 * 1024 + 2 * 1024 + 12 * 1024;
    assert!(
        flood <= bound,
        "gateway RSS {flood} KiB during the flood (started at {before} KiB, bound {bound} KiB)"
    );
    assert!(
        drain <= 64 * 1024,
        "gateway RSS {drain} KiB while catching up"
    );
}

/// The target of docs/robustness.md against the real binary: ten peers flood for `FLOOD_SECS`
/// seconds (default 60) while stdout is read one `data` line per second; the gateway's RSS stays
/// within 64 MiB and every message arrives, complete and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run via .ci/test"]
async fn ten_peers_flood_a_gateway_whose_stdout_takes_one_second_per_line() {
    let secs = std::env::var("FLOOD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let (_, flood, drain) = gateway_flood(10, secs, 1000).await;
    assert!(
        flood <= 64 * 1024,
        "gateway RSS reached {flood} KiB during the flood"
    );
    assert!(
        drain <= 64 * 1024,
        "gateway RSS reached {drain} KiB while catching up"
    );
}
