//! Crash safety of the identity files: a process killed with SIGKILL at any instant while it
//! creates (or replaces) `cert.pem` and `key.pem` leaves a directory from which the next start
//! succeeds, with either the previous complete identity or a complete new one.
//!
//! The process is this same test binary, re-run as a child with `--exact
//! identity::identity_writer_reports_each_step` and `SHIP_HUB_IDENTITY_WRITER_DIR` set; without the
//! variable that test runs the child's loop in-process for a few steps (an honest test in every
//! run, never an empty one). `Child::kill` is SIGKILL on Unix: the child gets no chance to clean
//! up.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ship_hub::Ski;
use ship_hub::identity::{CertificateSubject, Identity};

/// The directory the child works in.
const DIR_VAR: &str = "SHIP_HUB_IDENTITY_WRITER_DIR";
/// What the child does: `create` (first starts, each in a new sub-directory `<n>`) or `replace`
/// (saves a new identity over the one in the directory, again and again).
const MODE_VAR: &str = "SHIP_HUB_IDENTITY_WRITER_MODE";
/// The first step number of the child.
const START_VAR: &str = "SHIP_HUB_IDENTITY_WRITER_START";
/// Prefix of the child's progress lines on stdout (libtest prints its own lines there too).
const LINE_PREFIX: &str = "IDENTITY-WRITER";

/// Kills per mode.
const KILLS: usize = 150;

fn subject() -> CertificateSubject {
    CertificateSubject {
        common_name: "Crash-Test".into(),
        organization: "ship-hub".into(),
        country: "DE".into(),
    }
}

/// The child's loop from step `start`, for `steps` steps or forever. Each step reports
/// `begin N [SKI]`, writes, and reports `end N SKI`.
fn writer_loop(dir: &Path, mode: &str, start: u64, steps: Option<u64>, out: &mut dyn Write) {
    writeln!(out, "{LINE_PREFIX} ready").unwrap();
    out.flush().unwrap();
    let mut step = start;
    while steps.is_none_or(|n| step < start + n) {
        let ski = match mode {
            "create" => {
                writeln!(out, "{LINE_PREFIX} begin {step} -").unwrap();
                out.flush().unwrap();
                Identity::load_or_create(&dir.join(step.to_string()), &subject())
                    .unwrap()
                    .ski()
            }
            "replace" => {
                let identity = Identity::generate(&subject()).unwrap();
                writeln!(out, "{LINE_PREFIX} begin {step} {}", identity.ski()).unwrap();
                out.flush().unwrap();
                identity.save(dir).unwrap();
                identity.ski()
            }
            other => panic!("unknown mode {other}"),
        };
        writeln!(out, "{LINE_PREFIX} end {step} {ski}").unwrap();
        out.flush().unwrap();
        step += 1;
    }
}

/// The entry point of the child process (with `SHIP_HUB_IDENTITY_WRITER_DIR` set it runs
/// forever). Run as an ordinary test, it runs both loops for three steps and checks the lines and
/// the identities they leave.
#[test]
fn identity_writer_reports_each_step() {
    if let Some(dir) = std::env::var_os(DIR_VAR) {
        let mode = std::env::var(MODE_VAR).expect("mode");
        let start = std::env::var(START_VAR).expect("start").parse().unwrap();
        writer_loop(
            Path::new(&dir),
            &mode,
            start,
            None,
            &mut std::io::stdout().lock(),
        );
        return;
    }
    for mode in ["create", "replace"] {
        let dir = tempfile::tempdir().unwrap();
        let mut out = Vec::new();
        writer_loop(dir.path(), mode, 1, Some(3), &mut out);
        let mut progress = Progress::default();
        for line in String::from_utf8(out).unwrap().lines() {
            record(
                &mut progress,
                line.strip_prefix(LINE_PREFIX).unwrap().trim(),
            );
        }
        assert!(progress.ready);
        let (step, ski) = progress.ended.unwrap();
        assert_eq!(step, 3);
        let loaded = match mode {
            "create" => Identity::load(&dir.path().join("3")).unwrap(),
            _ => Identity::load(dir.path()).unwrap(),
        };
        assert_eq!(loaded.ski(), ski);
    }
}

#[derive(Debug, Default)]
struct Progress {
    ready: bool,
    /// The last step begun, with the SKI it writes when the child knows it beforehand.
    begun: Option<(u64, Option<Ski>)>,
    ended: Option<(u64, Ski)>,
}

fn record(progress: &mut Progress, line: &str) {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["ready"] => progress.ready = true,
        ["begin", step, ski] => {
            progress.begun = Some((step.parse().unwrap(), ski.parse().ok()));
        }
        ["end", step, ski] => progress.ended = Some((step.parse().unwrap(), ski.parse().unwrap())),
        other => panic!("unexpected line from the writer: {other:?}"),
    }
}

/// The child; killed when dropped, so a failing assertion leaves no process behind.
struct Writer(std::process::Child);

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_writer(dir: &Path, mode: &str, start: u64) -> (Writer, mpsc::Receiver<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "identity::identity_writer_reports_each_step",
            "--nocapture",
        ])
        .args(["--test-threads", "1"])
        .env(DIR_VAR, dir)
        .env(MODE_VAR, mode)
        .env(START_VAR, start.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
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

/// Runs one child, kills it after `delay` of writing, and returns what it reported.
fn run_and_kill(dir: &Path, mode: &str, start: u64, delay: Duration) -> Progress {
    let (mut writer, lines) = spawn_writer(dir, mode, start);
    let mut progress = Progress::default();
    let line = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the writer starts");
    record(&mut progress, &line);
    assert!(progress.ready, "the writer's first line is {line:?}");
    std::thread::sleep(delay);
    writer.0.kill().unwrap();
    let status = writer.0.wait().unwrap();
    assert!(!status.success(), "the writer ended on its own: {status}");
    while let Ok(line) = lines.recv() {
        record(&mut progress, &line);
    }
    progress
}

/// What a kill left on disk besides a complete pair of files: the figure that shows the kills
/// landed inside a write.
fn leftovers(dir: &Path) -> bool {
    let has = |name: &str| dir.join(name).exists();
    has("cert.pem.tmp") || has("key.pem.tmp") || has("cert.pem") != has("key.pem")
}

fn seed() -> u64 {
    match std::env::var("SHIP_HUB_KILL_SEED") {
        Ok(text) => text.parse().expect("SHIP_HUB_KILL_SEED is a number"),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    }
}

/// How long one step takes in a child here (a whole identity creation or replacement, the
/// slowest of three), so that the kills spread over whole steps on any machine.
fn step_time(mode: &str) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    if mode == "replace" {
        Identity::load_or_create(dir.path(), &subject()).unwrap();
    }
    (0..3)
        .map(|n| {
            let started = Instant::now();
            writer_loop(dir.path(), mode, n, Some(1), &mut std::io::sink());
            started.elapsed()
        })
        .max()
        .unwrap()
}

#[test]
fn a_first_start_killed_at_150_instants_always_restarts() {
    let seed = seed();
    eprintln!("kill schedule seed {seed} (replay with SHIP_HUB_KILL_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let span = step_time("create") * 3;
    let base = tempfile::tempdir().unwrap();
    let (mut mid_write, mut left_files, mut kept, mut fresh) = (0, 0, 0, 0);
    let mut next = 1;
    for kill in 0..KILLS {
        let delay = Duration::from_micros(rng.random_range(0..span.as_micros() as u64));
        let progress = run_and_kill(base.path(), "create", next, delay);
        let Some((begun, _)) = progress.begun else {
            continue;
        };
        let interrupted: PathBuf = base.path().join(begun.to_string());
        let finished = progress.ended.filter(|(step, _)| *step == begun);
        if finished.is_none() {
            mid_write += 1;
            left_files += usize::from(leftovers(&interrupted));
        }
        // The next start in that directory.
        let restarted = Identity::load_or_create(&interrupted, &subject())
            .unwrap_or_else(|e| panic!("kill {kill} (seed {seed}): the restart failed: {e}"));
        match finished {
            Some((_, ski)) => {
                assert_eq!(
                    restarted.ski(),
                    ski,
                    "kill {kill}: a reported identity changed"
                );
                kept += 1;
            }
            None => fresh += 1,
        }
        assert_eq!(
            Identity::load(&interrupted).unwrap().ski(),
            restarted.ski(),
            "kill {kill}: the restart's identity was kept"
        );
        next = begun + 1;
    }
    eprintln!(
        "{KILLS} kills over {span:?}: {mid_write} during a creation ({left_files} of them left \
         partial files behind, each recovered), {kept} after it; {fresh} restarts made or \
         completed the identity; seed {seed}"
    );
    assert!(mid_write > 0, "no kill landed during a creation");
}

#[test]
fn a_replacement_killed_at_150_instants_leaves_the_old_or_the_new_identity() {
    let seed = seed();
    eprintln!("kill schedule seed {seed} (replay with SHIP_HUB_KILL_SEED={seed})");
    let mut rng = StdRng::seed_from_u64(seed);
    let span = step_time("replace") * 3;
    let dir = tempfile::tempdir().unwrap();
    let mut current = Identity::load_or_create(dir.path(), &subject())
        .unwrap()
        .ski();
    let (mut mid_write, mut old_kept, mut new_written) = (0, 0, 0);
    let mut next = 1;
    for kill in 0..KILLS {
        let delay = Duration::from_micros(rng.random_range(0..span.as_micros() as u64));
        let progress = run_and_kill(dir.path(), "replace", next, delay);
        // Identities completed before the kill.
        if let Some((step, ski)) = progress.ended {
            current = ski;
            next = step + 1;
        }
        let in_flight = match progress.begun {
            Some((step, ski)) if progress.ended.is_none_or(|(ended, _)| ended < step) => {
                mid_write += 1;
                next = step + 1;
                ski
            }
            _ => None,
        };
        let restarted = Identity::load_or_create(dir.path(), &subject())
            .unwrap_or_else(|e| panic!("kill {kill} (seed {seed}): the restart failed: {e}"))
            .ski();
        if restarted == current {
            old_kept += 1;
        } else if Some(restarted) == in_flight {
            new_written += 1;
            current = restarted;
        } else {
            panic!(
                "kill {kill} (seed {seed}): neither the previous identity {current} nor the one \
                 being written ({in_flight:?}) but {restarted}"
            );
        }
    }
    eprintln!(
        "{KILLS} kills over {span:?}: {mid_write} during a replacement; the restart found the \
         previous identity {old_kept} times and the new one {new_written} times; seed {seed}"
    );
    assert!(mid_write > 0, "no kill landed during a replacement");
}
