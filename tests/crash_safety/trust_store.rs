//! Crash safety of `FileTrustStore`: a writer process killed with SIGKILL at random moments never
//! leaves a corrupt, empty or half-written trust store, and never loses a pairing it was not
//! changing.
//!
//! The writer is this same test binary, re-run as a child process with `--exact
//! trust_store::writer_process_reports_each_step_and_leaves_the_model_state` and the environment variable
//! `SHIP_HUB_TRUST_WRITER_PATH` set; without the variable that test checks the writer's loop
//! in-process (so it is an honest test in every run, never an empty one). `Child::kill` is SIGKILL on Unix and TerminateProcess on Windows:
//! either way the writer gets no chance to clean up.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ship_hub::hub::{FileTrustStore, PairedPeer, TrustStore};
use ship_hub::{ShipId, Ski};

/// Path of the store file the child writes to.
const WRITER_PATH_VAR: &str = "SHIP_HUB_TRUST_WRITER_PATH";
/// Step the child starts at (the file holds the state after the step before it).
const WRITER_START_VAR: &str = "SHIP_HUB_TRUST_WRITER_START";
/// Prefix of the child's progress lines on stdout (libtest prints its own lines there too).
const LINE_PREFIX: &str = "TRUST-WRITER";

/// How often the parent kills the writer.
const KILLS: usize = 250;

/// A pairing made before any write cycle; the writer never touches it.
fn sentinel() -> PairedPeer {
    let mut peer = PairedPeer::new(Ski::from_bytes([0x5e; 20]));
    peer.ship_id = Some(ShipId::new("sentinel-ship-id").unwrap());
    peer.name = Some("paired before the crashes".into());
    peer.last_address = Some(SocketAddr::from(([10, 0, 0, 1], 4712)));
    peer.last_seen = Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    peer
}

fn churn_peer(byte: u8, step: u64) -> PairedPeer {
    let mut peer = PairedPeer::new(Ski::from_bytes([byte; 20]));
    peer.ship_id = Some(ShipId::new(format!("churn-{byte}-{step}")).unwrap());
    // Names of varying length make successive files differ in size too.
    peer.name = Some("x".repeat((step % 97) as usize));
    peer.last_seen = Some(UNIX_EPOCH + Duration::from_secs(step));
    peer
}

const X: u8 = 0x11;
const Y: u8 = 0xee;

/// The one mutation of `step` (steps start at 1): a four-step cycle that pairs X, pairs Y,
/// unpairs X, unpairs Y. Every step changes the file.
fn apply(store: &dyn TrustStore, step: u64) {
    match step % 4 {
        1 => store.upsert(churn_peer(X, step)).unwrap(),
        2 => store.upsert(churn_peer(Y, step)).unwrap(),
        3 => assert!(store.remove(&Ski::from_bytes([X; 20])).unwrap()),
        _ => assert!(store.remove(&Ski::from_bytes([Y; 20])).unwrap()),
    }
}

/// The store's content after `step` steps (0 = only the sentinel).
fn state_after(step: u64) -> Vec<PairedPeer> {
    let mut peers = vec![sentinel()];
    let cycle_start = step - step % 4;
    match step % 4 {
        1 => peers.push(churn_peer(X, cycle_start + 1)),
        2 => {
            peers.push(churn_peer(X, cycle_start + 1));
            peers.push(churn_peer(Y, cycle_start + 2));
        }
        3 => peers.push(churn_peer(Y, cycle_start + 2)),
        _ => {}
    }
    peers.sort_by_key(|p| p.ski);
    peers
}

#[test]
fn the_step_model_changes_the_content_at_every_step() {
    for step in 1..20 {
        assert_ne!(state_after(step), state_after(step - 1), "step {step}");
    }
}

#[test]
fn the_step_model_matches_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileTrustStore::new(dir.path().join("trust.json"));
    store.upsert(sentinel()).unwrap();
    for step in 1..=9 {
        apply(&store, step);
        assert_eq!(store.load_all().unwrap(), state_after(step), "step {step}");
    }
}

/// The writer's loop: opens the store at `path`, reports `ready`, then for each step from `start`
/// reports `begin N`, applies the step and reports `end N`. Runs forever when `steps` is `None`
/// (the child process of the kill test), else for that many steps.
fn writer_loop(path: &Path, start: u64, steps: Option<u64>, out: &mut dyn Write) {
    let store = FileTrustStore::open(path.to_path_buf()).expect("the store opens");
    writeln!(out, "{LINE_PREFIX} ready").unwrap();
    out.flush().unwrap();
    let mut step = start;
    while steps.is_none_or(|n| step < start + n) {
        writeln!(out, "{LINE_PREFIX} begin {step}").unwrap();
        out.flush().unwrap();
        apply(&store, step);
        writeln!(out, "{LINE_PREFIX} end {step}").unwrap();
        out.flush().unwrap();
        step += 1;
    }
}

/// The entry point of the kill test's child process (with `SHIP_HUB_TRUST_WRITER_PATH` set it
/// becomes the endless writer). Run as an ordinary test, it runs the same loop for eight steps
/// in a temporary directory and checks its progress lines and the store it leaves.
#[test]
fn writer_process_reports_each_step_and_leaves_the_model_state() {
    if let Some(path) = std::env::var_os(WRITER_PATH_VAR) {
        let start: u64 = std::env::var(WRITER_START_VAR)
            .expect("start step")
            .parse()
            .expect("start step is a number");
        writer_loop(Path::new(&path), start, None, &mut std::io::stdout().lock());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.json");
    FileTrustStore::new(path.clone())
        .upsert(sentinel())
        .unwrap();
    let mut out = Vec::new();
    writer_loop(&path, 1, Some(8), &mut out);
    let lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let mut expected = vec![format!("{LINE_PREFIX} ready")];
    for step in 1..=8 {
        expected.push(format!("{LINE_PREFIX} begin {step}"));
        expected.push(format!("{LINE_PREFIX} end {step}"));
    }
    assert_eq!(lines, expected);
    assert_eq!(
        FileTrustStore::new(path).load_all().unwrap(),
        state_after(8)
    );
}

/// What the parent learnt from one child's progress lines.
#[derive(Debug, Default)]
struct Progress {
    ready: bool,
    last_begun: Option<u64>,
    last_ended: Option<u64>,
}

fn record(progress: &mut Progress, line: &str) {
    let mut words = line.split_whitespace();
    match (
        words.next(),
        words.next().map(|n| n.parse::<u64>().unwrap()),
    ) {
        (Some("ready"), None) => progress.ready = true,
        (Some("begin"), Some(n)) => progress.last_begun = Some(n),
        (Some("end"), Some(n)) => progress.last_ended = Some(n),
        other => panic!("unexpected line from the writer: {other:?}"),
    }
}

/// The writer process; killed when dropped, so a failing assertion leaves no writer behind.
struct Writer(std::process::Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_writer(path: &Path, start: u64) -> (Writer, mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "trust_store::writer_process_reports_each_step_and_leaves_the_model_state",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(WRITER_PATH_VAR, path)
        .env(WRITER_START_VAR, start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // libtest prints "test writer_process_… ... " without a newline before the
            // child's first line, so the prefix need not start the line.
            if let Some(at) = line.find(LINE_PREFIX)
                && lines_tx
                    .send(line[at + LINE_PREFIX.len()..].trim().to_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    (Writer(child), lines_rx)
}

#[test]
fn a_writer_killed_at_random_never_corrupts_the_store() {
    // A new kill schedule each run; SHIP_HUB_KILL_SEED replays a failing one.
    let seed = match std::env::var("SHIP_HUB_KILL_SEED") {
        Ok(text) => text.parse().expect("SHIP_HUB_KILL_SEED is a number"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    };
    eprintln!("kill schedule seed {seed} (replay with SHIP_HUB_KILL_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.json");
    FileTrustStore::open(&path)
        .unwrap()
        .upsert(sentinel())
        .unwrap();

    // Steps completed so far; the file holds `state_after(done)`.
    let mut done = 0u64;
    let mut killed_mid_write = 0usize;
    // Of those, how many left the new content (the rename had happened).
    let mut mid_write_new = 0usize;
    for kill in 0..KILLS {
        let (mut writer, lines) = spawn_writer(&path, done + 1);
        let mut progress = Progress::default();
        let line = lines
            .recv_timeout(Duration::from_secs(30))
            .expect("the writer starts");
        record(&mut progress, &line);
        assert!(progress.ready, "the writer's first line is {line:?}");
        std::thread::sleep(Duration::from_micros(rng.random_range(0..20_000)));
        writer.0.kill().unwrap(); // SIGKILL on Unix: no chance to clean up
        let status = writer.0.wait().unwrap();
        assert!(!status.success(), "the writer ended on its own: {status}");
        // The reader thread ends at EOF once the child is gone.
        while let Ok(line) = lines.recv() {
            record(&mut progress, &line);
        }

        let bytes = std::fs::read(&path).unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap_or_else(|e| {
            panic!(
                "kill {kill}: the file is not JSON ({e}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        let found = FileTrustStore::open(&path)
            .and_then(|store| store.load_all())
            .unwrap_or_else(|e| panic!("kill {kill}: {e}"));
        assert!(
            found.contains(&sentinel()),
            "kill {kill}: the sentinel pairing was lost"
        );

        // Either the write in flight happened or it did not; nothing else is acceptable.
        done = match (progress.last_begun, progress.last_ended) {
            (None, _) => {
                assert_eq!(found, state_after(done), "kill {kill} before any write");
                done
            }
            (Some(begun), ended) if ended == Some(begun) => {
                assert_eq!(found, state_after(begun), "kill {kill} after step {begun}");
                begun
            }
            (Some(begun), _) => {
                killed_mid_write += 1;
                if found == state_after(begun) {
                    mid_write_new += 1;
                    begun
                } else {
                    assert_eq!(
                        found,
                        state_after(begun - 1),
                        "kill {kill} during step {begun}"
                    );
                    begun - 1
                }
            }
        };
    }
    eprintln!(
        "{KILLS} kills, {killed_mid_write} during a write ({mid_write_new} of them after the \
         rename), {done} steps written; seed {seed}"
    );
    assert!(
        killed_mid_write > 0,
        "no kill landed during a write, so the test proved nothing"
    );
}

/// How many unpair/update races each store is put through.
const RACES: usize = 500;

/// One unpair racing the hub's background updates of the same pairing, `races` times: a thread
/// applies `update_existing` to the peer in a loop (a new `last_seen` each time, like a peer that
/// keeps reconnecting) while the main thread pairs the peer and removes it again at a random
/// moment. Once the updater went through two more updates, the pairing must still be gone.
/// Returns how many removals were undone.
fn resurrections(store: std::sync::Arc<dyn TrustStore>, races: usize, seed: u64) -> usize {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let mut rng = StdRng::seed_from_u64(seed);
    let ski = Ski::from_bytes([0x42; 20]);
    let stop = AtomicBool::new(false);
    let updates = AtomicU64::new(0);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut seconds = 1_000;
            while !stop.load(Ordering::Relaxed) {
                seconds += 1;
                let seen = UNIX_EPOCH + Duration::from_secs(seconds);
                store
                    .update_existing(&[ski], &mut |peer| peer.last_seen = Some(seen))
                    .unwrap();
                updates.fetch_add(1, Ordering::Relaxed);
            }
        });
        let wait_for_updates = |n: u64| {
            let target = updates.load(Ordering::Relaxed) + n;
            while updates.load(Ordering::Relaxed) < target {
                std::thread::yield_now();
            }
        };
        let mut undone = 0;
        for race in 0..races {
            store.upsert(PairedPeer::new(ski)).unwrap();
            wait_for_updates(1);
            std::thread::sleep(Duration::from_micros(rng.random_range(0..300)));
            assert!(
                store.remove(&ski).unwrap(),
                "race {race}: the pairing was there"
            );
            // The update in flight at the removal, and a whole one after it.
            wait_for_updates(2);
            if store.get(&ski).unwrap().is_some() {
                undone += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
        undone
    })
}

#[test]
fn an_unpair_racing_background_updates_is_never_undone_in_500_races() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // In memory where there is a tmpfs: the race is about locking, and each of the thousands
    // of writes would otherwise wait for a disk's fsync.
    let dir = tempfile::tempdir_in("/dev/shm")
        .or_else(|_| tempfile::tempdir())
        .unwrap();
    let memory: std::sync::Arc<dyn TrustStore> =
        std::sync::Arc::new(ship_hub::hub::MemoryTrustStore::new());
    let file: std::sync::Arc<dyn TrustStore> =
        std::sync::Arc::new(FileTrustStore::new(dir.path().join("trust.json")));
    let memory_undone = resurrections(memory, RACES, seed);
    let file_undone = resurrections(file, RACES, seed);
    eprintln!(
        "{RACES} unpair/update races each (seed {seed}): {memory_undone} resurrections in \
         MemoryTrustStore, {file_undone} in FileTrustStore"
    );
    assert_eq!((memory_undone, file_undone), (0, 0));
}

/// A pairing made by the SHIP Pairing Service keeps its flag across a reload of the file, and the
/// flag is left out of the file for every other pairing (older files read unchanged).
#[test]
fn the_pairing_service_flag_round_trips_and_is_absent_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pairings.json");
    let store = FileTrustStore::open(&path).unwrap();
    let mut by_service = PairedPeer::new(Ski::from_bytes([1; 20]));
    by_service.paired_by_service = true;
    store.upsert(by_service.clone()).unwrap();
    store
        .upsert(PairedPeer::new(Ski::from_bytes([2; 20])))
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches("paired_by_service").count(), 1, "{text}");
    let reloaded = FileTrustStore::open(&path).unwrap().load_all().unwrap();
    assert_eq!(reloaded[0], by_service);
    assert!(!reloaded[1].paired_by_service);
}
