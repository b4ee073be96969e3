//! `ship-gateway pair` writers killed with SIGKILL at arbitrary moments, and writers running at
//! once: the trust store is always the old or the new one, never corrupt, empty or missing a
//! pairing that a finished writer reported.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ship_hub::Ski;
use ship_hub::hub::{FileTrustStore, TrustStore};

use crate::gateway_support::BIN;

fn ski(n: u32) -> Ski {
    let mut bytes = [0xa5u8; 20];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    Ski::from_bytes(bytes)
}

/// The SKIs in the store, read with the library's strict reader (a torn file is an error).
fn stored(dir: &Path) -> BTreeSet<Ski> {
    let store = FileTrustStore::open(dir.join("pairings.json"))
        .unwrap_or_else(|e| panic!("the trust store is unreadable: {e}"));
    store
        .load_all()
        .unwrap()
        .into_iter()
        .map(|p| p.ski)
        .collect()
}

/// A store of `n` peers written in one go (so that each later write takes a while).
fn prefill(dir: &Path, n: u32) -> BTreeSet<Ski> {
    let skis: BTreeSet<Ski> = (1_000_000..1_000_000 + n).map(ski).collect();
    let peers: Vec<String> = skis
        .iter()
        .map(|s| {
            format!(
                "{{\"ski\":\"{s}\",\"ship_id\":\"Prefilled-{s}\",\"name\":\"a prefilled peer with \
                 a long name to make the file bigger\",\"last_address\":\"192.168.1.1:4712\"}}"
            )
        })
        .collect();
    std::fs::write(
        dir.join("pairings.json"),
        format!("{{\"version\":1,\"peers\":[{}]}}", peers.join(",")),
    )
    .unwrap();
    assert_eq!(stored(dir), skis);
    skis
}

#[test]
fn sigkill_during_pair_leaves_the_old_or_the_new_store_250_times() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut current = prefill(dir, 300);
    // How long one whole `pair` takes here (the slowest of three), so that the kills can be
    // spread over its whole life on any machine.
    let whole = (0..3u32)
        .map(|k| {
            let started = Instant::now();
            let status = Command::new(BIN)
                .arg("--data-dir")
                .arg(dir)
                .args(["pair", &ski(5000 + k).to_string()])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            current.insert(ski(5000 + k));
            started.elapsed()
        })
        .max()
        .unwrap();
    let span = u64::try_from(whole.as_micros() * 5 / 4).unwrap().max(1);
    let started = Instant::now();
    let (mut old_kept, mut new_written) = (0, 0);
    for i in 0..250u32 {
        let new = ski(i);
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(["pair", &new.to_string(), "--name", &format!("peer {i}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Spread the kills over the process's life: start-up, lock, read, write, fsync, rename.
        let delay = Duration::from_micros(u64::from(i.wrapping_mul(7919)) % span);
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let after = stored(dir);
        let mut with_new = current.clone();
        with_new.insert(new);
        if after == current {
            old_kept += 1;
        } else if after == with_new {
            new_written += 1;
            current = with_new;
        } else {
            panic!(
                "kill {i}: the store is neither the old one ({} peers) nor the new one; it has {} \
                 peers",
                current.len(),
                after.len()
            );
        }
    }
    eprintln!(
        "250 kills spread over {whole:?} (one whole pair) took {:?}: old store kept {old_kept} \
         times, new store written {new_written} times",
        started.elapsed()
    );
    // No lock is left behind by a killed writer: a normal pair and list still work.
    let output = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(["pair", &ski(9999).to_string()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    current.insert(ski(9999));
    assert_eq!(stored(dir), current);
}

#[test]
fn pair_processes_running_at_once_lose_no_pairing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut expected = prefill(dir, 50);
    let children: Vec<_> = (0..24u32)
        .map(|i| {
            expected.insert(ski(i));
            Command::new(BIN)
                .arg("--data-dir")
                .arg(dir)
                .args(["pair", &ski(i).to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    assert_eq!(stored(dir), expected);
    // And unpairs at once, interleaved with more pairs.
    let children: Vec<_> = (0..24u32)
        .map(|i| {
            let (command, target) = if i % 2 == 0 {
                expected.remove(&ski(i));
                ("unpair", ski(i))
            } else {
                expected.insert(ski(100 + i));
                ("pair", ski(100 + i))
            };
            Command::new(BIN)
                .arg("--data-dir")
                .arg(dir)
                .args([command, &target.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
    }
    assert_eq!(stored(dir), expected);
}
