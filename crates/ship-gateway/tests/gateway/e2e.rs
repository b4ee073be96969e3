//! End to end: two `ship-gateway run` processes on loopback (`--no-mdns`, port 0) pair through
//! static peers and the control socket, exchange data, survive a `kill -9` of one of them and a
//! restart, and keep both trust stores intact; and two gateways pair by scanning each other's
//! installation QR code.

use crate::gateway_support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use ship_hub::Ski;
use ship_hub::hub::{FileTrustStore, TrustStore};

use crate::gateway_support::BIN;
/// How long to wait for the first connection (handshake on a loaded machine).
const PATIENCE: Duration = Duration::from_secs(30);
/// The reconnect bound after a restart: the last backoff tier (10–20 s, docs/ship.md §8)
/// plus slack for a loaded machine. The restarted side dials at once (first tier 0–3 s).
const RECONNECT_BOUND: Duration = Duration::from_secs(25);

fn gateway(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ski_of(dir: &Path) -> String {
    let output = gateway(dir, &["ski"]);
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A running `ship-gateway run --json`, killed when dropped.
struct Running {
    child: Child,
    events: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Running {
    fn start(dir: &Path, port: &str, extra: &[&str]) -> Running {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args([
                "run",
                "--no-mdns",
                "--bind",
                "127.0.0.1",
                "--port",
                port,
                "--json",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, events) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("stdout line is not JSON: {line:?}: {e}"));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            events,
            seen: Vec::new(),
        }
    }

    /// Waits up to `limit` for a new event matching `f` (events already seen are not looked at
    /// again, so the same kind of event can be awaited twice).
    fn next(&mut self, limit: Duration, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(value) => {
                    self.seen.push(value.clone());
                    if f(&value) {
                        return value;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("no {what} within {limit:?}; saw {:#?}", self.seen);
    }

    fn address(&mut self) -> String {
        let event = self.next(PATIENCE, "listening", |v| v["event"] == "listening");
        event["address"].as_str().unwrap().to_owned()
    }

    fn connected(&mut self, limit: Duration, peer: &str) {
        self.next(limit, "connected", |v| {
            v["event"] == "connected" && v["ski"] == peer
        });
    }

    fn data(&mut self, peer: &str, bytes: usize) {
        self.next(PATIENCE, "data", |v| {
            v["event"] == "data" && v["ski"] == peer && v["bytes"] == bytes
        });
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        // Everything up to the last event is out.
        while let Ok(value) = self.events.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(value);
        }
        assert_eq!(
            self.seen.last().map(|v| v["event"].clone()),
            Some(Value::from("stopped"))
        );
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn paired(dir: &Path) -> Vec<Ski> {
    let store = FileTrustStore::open(dir.join("pairings.json"))
        .unwrap_or_else(|e| panic!("trust store of {}: {e}", dir.display()));
    store
        .load_all()
        .unwrap()
        .into_iter()
        .map(|p| p.ski)
        .collect()
}

fn send(dir: &Path, peer: &str, payload: &str) {
    let output = gateway(dir, &["send", peer, payload]);
    assert!(output.status.success(), "{output:?}");
}

#[test]
fn two_gateways_pair_exchange_data_and_come_back_after_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_ski = ski_of(&a_dir);
    let b_ski = ski_of(&b_dir);

    // A runs; B is paired on A through A's control socket; B starts with A as a static peer.
    let mut a = Running::start(&a_dir, "0", &[]);
    let a_address = a.address();
    let output = gateway(&a_dir, &["pair", &b_ski, "--name", "gateway b"]);
    assert!(output.status.success(), "{output:?}");
    let a_peer = format!("{a_ski}@{a_address}");
    let mut b = Running::start(&b_dir, "0", &["--peer", &a_peer, "--echo"]);
    let b_address = b.address();
    let b_port = b_address.rsplit(':').next().unwrap().to_owned();
    a.connected(PATIENCE, &b_ski);
    b.connected(PATIENCE, &a_ski);

    // Data both ways: A → B, and B's echo back to A.
    let payload = r#"{"datagram":[{"header":[{"msgCounter":1}]}]}"#;
    send(&a_dir, &b_ski, payload);
    b.data(&a_ski, payload.len());
    a.data(&b_ski, payload.len());

    // kill -9 B: A notices, both trust stores are intact.
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    a.next(PATIENCE, "disconnected", |v| {
        v["event"] == "disconnected" && v["ski"] == b_ski.as_str()
    });
    assert_eq!(paired(&b_dir), vec![a_ski.parse().unwrap()]);
    assert_eq!(paired(&a_dir), vec![b_ski.parse().unwrap()]);

    // Restart B on its port: the pair is back within the reconnect bound, data flows again.
    let restarted = Instant::now();
    let mut b = Running::start(&b_dir, &b_port, &["--peer", &a_peer, "--echo"]);
    assert_eq!(b.address(), b_address);
    a.connected(RECONNECT_BOUND, &b_ski);
    b.connected(RECONNECT_BOUND, &a_ski);
    eprintln!("reconnected {:?} after the restart", restarted.elapsed());
    let payload = r#"{"after":"restart"}"#;
    send(&a_dir, &b_ski, payload);
    b.data(&a_ski, payload.len());
    a.data(&b_ski, payload.len());

    assert!(b.terminate().success());
    assert!(a.terminate().success());
    assert_eq!(paired(&b_dir), vec![a_ski.parse().unwrap()]);
    assert_eq!(paired(&a_dir), vec![b_ski.parse().unwrap()]);
    // The peer's SHIP ID was learnt and kept.
    let list = gateway(&a_dir, &["--json", "list"]);
    let rows: Value = gateway_support::json_lines(&list);
    assert_eq!(
        rows[0]["ship_id"],
        format!("ship-gateway-{}", &b_ski[..12]).as_str()
    );
    assert_eq!(rows[0]["name"], "gateway b");
    assert!(rows[0]["last_seen_ms"].is_u64(), "{rows}");
}

/// The installer's way: each gateway shows its QR code (`qr`, read back from the terminal
/// picture by a QR decoder), the other pairs from it (`pair --qr`: on A through its control
/// socket while it runs, on B in the store with the address to dial), and the two connect with
/// no SKI typed. The SHIP ID stored from the code is the one the peer then presents (a different
/// one would have closed the connection with 4450).
#[test]
fn two_gateways_pair_from_each_others_qr_codes_and_connect() {
    let tmp = tempfile::tempdir().unwrap();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_text = gateway_support::qr_text_of(&a_dir, &[]);
    let b_text = gateway_support::qr_text_of(&b_dir, &[]);
    let (a_ski, b_ski) = (ski_of(&a_dir), ski_of(&b_dir));

    let mut a = Running::start(&a_dir, "0", &[]);
    let a_address = a.address();
    let output = gateway(&a_dir, &["pair", "--qr", &b_text]);
    assert!(output.status.success(), "{output:?}");
    let output = gateway(&b_dir, &["pair", "--qr", &a_text, "--address", &a_address]);
    assert!(output.status.success(), "{output:?}");
    let mut b = Running::start(&b_dir, "0", &["--echo"]);
    a.connected(PATIENCE, &b_ski);
    b.connected(PATIENCE, &a_ski);
    let payload = r#"{"paired":"by QR code"}"#;
    send(&a_dir, &b_ski, payload);
    b.data(&a_ski, payload.len());
    a.data(&b_ski, payload.len());

    assert!(b.terminate().success());
    assert!(a.terminate().success());
    for (dir, peer_ski) in [(&a_dir, &b_ski), (&b_dir, &a_ski)] {
        let list = gateway(dir, &["--json", "list"]);
        let rows: Value = gateway_support::json_lines(&list);
        assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
        assert_eq!(rows[0]["ski"], peer_ski.as_str());
        assert_eq!(
            rows[0]["ship_id"],
            format!("ship-gateway-{}", &peer_ski[..12]).as_str()
        );
        assert_eq!(rows[0]["name"], "ship-hub ship-gateway");
        assert!(rows[0]["last_seen_ms"].is_u64(), "{rows}");
    }
}
