//! Unit tests of the trust stores.

use super::*;
use std::fs;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

fn ski(n: u8) -> Ski {
    Ski::from_bytes([n; 20])
}

fn full_peer(n: u8) -> PairedPeer {
    let mut peer = PairedPeer::new(ski(n));
    peer.ship_id = Some(ShipId::new(format!("Device-{n}")).unwrap());
    peer.name = Some(format!("Device {n} \"quoted\" ünïcode"));
    peer.last_address = Some(SocketAddr::from(([192, 168, 1, n], 4712)));
    peer.last_seen = Some(UNIX_EPOCH + Duration::from_secs(1_795_000_000 + u64::from(n)));
    peer
}

fn stores() -> (tempfile::TempDir, Vec<Box<dyn TrustStore>>) {
    let dir = tempfile::tempdir().unwrap();
    let file = FileTrustStore::new(dir.path().join("trust.json"));
    (dir, vec![Box::new(MemoryTrustStore::new()), Box::new(file)])
}

#[test]
fn both_stores_upsert_get_replace_and_remove() {
    let (_dir, stores) = stores();
    for store in stores {
        assert!(store.load_all().unwrap().is_empty());
        assert_eq!(store.get(&ski(1)).unwrap(), None);
        store.upsert(full_peer(3)).unwrap();
        store.upsert(PairedPeer::new(ski(1))).unwrap();
        store.upsert(full_peer(2)).unwrap();
        let skis: Vec<_> = store.load_all().unwrap().iter().map(|p| p.ski).collect();
        assert_eq!(skis, [ski(1), ski(2), ski(3)], "sorted by SKI");
        assert_eq!(store.get(&ski(2)).unwrap(), Some(full_peer(2)));

        let mut renamed = full_peer(2);
        renamed.name = Some("renamed".into());
        store.upsert(renamed.clone()).unwrap();
        assert_eq!(store.get(&ski(2)).unwrap(), Some(renamed));
        assert_eq!(store.load_all().unwrap().len(), 3);

        assert!(store.remove(&ski(2)).unwrap());
        assert!(!store.remove(&ski(2)).unwrap());
        assert_eq!(store.get(&ski(2)).unwrap(), None);
        assert_eq!(store.load_all().unwrap().len(), 2);
    }
}

#[test]
fn a_missing_file_is_an_empty_store_and_nothing_is_created_by_reading() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.json");
    let store = FileTrustStore::open(&path).unwrap();
    assert!(store.load_all().unwrap().is_empty());
    assert!(!store.remove(&ski(1)).unwrap());
    assert!(!path.exists());
}

#[test]
fn pairings_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.json");
    let store = FileTrustStore::open(&path).unwrap();
    store.upsert(full_peer(9)).unwrap();
    store.upsert(full_peer(4)).unwrap();
    drop(store);
    let reopened = FileTrustStore::open(&path).unwrap();
    assert_eq!(
        reopened.load_all().unwrap(),
        vec![full_peer(4), full_peer(9)]
    );
    assert!(!dir.path().join(".trust.json.tmp").exists());
}

#[test]
fn the_file_is_versioned_sorted_and_human_readable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.json");
    let store = FileTrustStore::new(&path);
    store.upsert(PairedPeer::new(ski(0xbb))).unwrap();
    store.upsert(full_peer(0x0a)).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let expected = r#"{
  "version": 1,
  "peers": [
    {
      "ski": "0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a",
      "ship_id": "Device-10",
      "name": "Device 10 \"quoted\" ünïcode",
      "last_address": "192.168.1.10:4712",
      "last_seen": 1795000010
    },
    {
      "ski": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
    }
  ]
}
"#;
    assert_eq!(text, expected);
}

#[test]
fn ipv6_scope_id_survives_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileTrustStore::new(dir.path().join("trust.json"));
    let mut peer = PairedPeer::new(ski(1));
    let link_local = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x1, 0x2, 0x3, 0x4);
    peer.last_address = Some(SocketAddr::V6(SocketAddrV6::new(link_local, 4712, 0, 3)));
    store.upsert(peer.clone()).unwrap();
    assert_eq!(store.get(&ski(1)).unwrap(), Some(peer));
}

#[test]
fn last_seen_is_kept_in_whole_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileTrustStore::new(dir.path().join("trust.json"));
    let mut peer = PairedPeer::new(ski(1));
    peer.last_seen = Some(UNIX_EPOCH + Duration::from_millis(1_795_000_000_999));
    store.upsert(peer).unwrap();
    let stored = store.get(&ski(1)).unwrap().unwrap();
    assert_eq!(
        stored.last_seen,
        Some(UNIX_EPOCH + Duration::from_secs(1_795_000_000))
    );
}

/// Writes `content` as the store file, then checks that opening, reading and writing all fail
/// with an error naming the file, and that the file is unchanged afterwards.
fn assert_refused_and_untouched(content: &str) -> TrustStoreError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.json");
    fs::write(&path, content).unwrap();
    let store = FileTrustStore::new(&path);
    let error = FileTrustStore::open(&path).unwrap_err();
    assert_eq!(error.path(), path);
    assert!(
        error.to_string().contains(&*path.to_string_lossy()),
        "{error}"
    );
    assert!(store.load_all().is_err());
    assert!(store.get(&ski(1)).is_err());
    assert!(store.upsert(PairedPeer::new(ski(1))).is_err());
    assert!(store.remove(&ski(1)).is_err());
    assert_eq!(fs::read_to_string(&path).unwrap(), content);
    error
}

#[test]
fn corrupt_files_are_typed_errors_and_never_overwritten() {
    let good_ski = "0101010101010101010101010101010101010101";
    for content in [
        "",
        "\n",
        "{\"version\":1,\"peers\":[",
        "[1,2]",
        "{\"peers\":[]}",
        "{\"version\":1}",
        "{\"version\":1,\"peers\":[{\"ski\":\"abc\"}]}",
        "{\"version\":1,\"peers\":[],\"extra\":true}",
        &format!("{{\"version\":1,\"peers\":[{{\"ski\":\"{good_ski}\",\"colour\":1}}]}}"),
        &format!(
            "{{\"version\":1,\"peers\":[{{\"ski\":\"{good_ski}\",\"last_address\":\"nowhere\"}}]}}"
        ),
        &format!("{{\"version\":1,\"peers\":[{{\"ski\":\"{good_ski}\",\"ship_id\":\"\"}}]}}"),
        &format!(
            "{{\"version\":1,\"peers\":[{{\"ski\":\"{good_ski}\"}},{{\"ski\":\"{good_ski}\"}}]}}"
        ),
    ] {
        let error = assert_refused_and_untouched(content);
        assert!(
            matches!(error, TrustStoreError::Corrupt { .. }),
            "{content:?} gave {error:?}"
        );
    }
}

/// A record that is not a pairing names the peer and the field in the error's words.
#[test]
fn a_bad_record_says_which_peer_and_field() {
    let good_ski = "0101010101010101010101010101010101010101";
    for (record, words) in [
        (
            r#""last_address":"nowhere""#,
            format!(
                "peer {good_ski}: last_address \"nowhere\" is not an address: invalid socket \
                 address syntax"
            ),
        ),
        (
            &format!(r#""last_seen":{}"#, u64::MAX),
            format!("peer {good_ski}: last_seen {} is out of range", u64::MAX),
        ),
    ] {
        let content = format!("{{\"version\":1,\"peers\":[{{\"ski\":\"{good_ski}\",{record}}}]}}");
        let error = assert_refused_and_untouched(&content);
        let TrustStoreError::Corrupt { detail, .. } = &error else {
            panic!("{content:?} gave {error:?}");
        };
        assert_eq!(detail, &words);
    }
}

#[test]
fn unknown_versions_are_typed_errors_and_never_overwritten() {
    for (content, found) in [
        ("{\"version\":2,\"peers\":[]}", "2"),
        ("{\"version\":0,\"peers\":[]}", "0"),
        ("{\"version\":\"1\",\"peers\":[]}", "\"1\""),
        ("{\"version\":1.5,\"peers\":[]}", "1.5"),
    ] {
        match assert_refused_and_untouched(content) {
            TrustStoreError::UnsupportedVersion { found: f, .. } => assert_eq!(f, found),
            other => panic!("{content:?} gave {other:?}"),
        }
    }
}

#[test]
fn a_missing_directory_is_an_io_error_naming_the_operation() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("trust.json");
    let store = FileTrustStore::new(&path);
    let error = store.upsert(PairedPeer::new(ski(1))).unwrap_err();
    assert!(
        matches!(
            error,
            TrustStoreError::Io {
                operation: "create",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_stale_temporary_file_from_a_crash_is_ignored_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.json");
    let store = FileTrustStore::new(&path);
    store.upsert(full_peer(1)).unwrap();
    fs::write(dir.path().join(".trust.json.tmp"), "{\"version\":1,\"pe").unwrap();
    assert_eq!(store.load_all().unwrap(), vec![full_peer(1)]);
    store.upsert(full_peer(2)).unwrap();
    assert_eq!(store.load_all().unwrap(), vec![full_peer(1), full_peer(2)]);
    assert!(!dir.path().join(".trust.json.tmp").exists());
}

#[test]
fn concurrent_writers_in_one_process_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn TrustStore> = Arc::new(FileTrustStore::new(dir.path().join("t.json")));
    let threads: Vec<_> = (0..8u8)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..10u8 {
                    store.upsert(full_peer(t * 10 + i)).unwrap();
                }
                // Each thread removes its own first pairing again.
                assert!(store.remove(&ski(t * 10)).unwrap());
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let skis: Vec<_> = store.load_all().unwrap().iter().map(|p| p.ski).collect();
    let expected: Vec<_> = (0..80u8).filter(|n| n % 10 != 0).map(ski).collect();
    assert_eq!(skis, expected);
}

#[test]
fn changes_made_to_the_file_while_the_store_is_open_are_seen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.json");
    let store = FileTrustStore::open(&path).unwrap();
    store.upsert(full_peer(1)).unwrap();
    assert_eq!(store.get(&ski(1)).unwrap(), Some(full_peer(1)));

    // Another writer replaces the file (write a new file and rename: a new inode).
    let other = FileTrustStore::open(&path).unwrap();
    other.upsert(full_peer(2)).unwrap();
    assert_eq!(store.get(&ski(2)).unwrap(), Some(full_peer(2)));

    // An edit in place (same inode, other length) that drops peer 1.
    let text = fs::read_to_string(&path).unwrap();
    let edited = FileTrustStore::new(dir.path().join("scratch.json"));
    edited.upsert(full_peer(2)).unwrap();
    let only_two = fs::read_to_string(edited.path()).unwrap();
    assert_ne!(text.len(), only_two.len());
    fs::write(&path, only_two).unwrap();
    assert_eq!(store.get(&ski(1)).unwrap(), None);
    assert_eq!(store.load_all().unwrap(), vec![full_peer(2)]);

    // The file removed: an empty store.
    fs::remove_file(&path).unwrap();
    assert_eq!(store.get(&ski(2)).unwrap(), None);
}

#[test]
fn a_file_corrupted_after_it_was_read_is_reported_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.json");
    let store = FileTrustStore::open(&path).unwrap();
    store.upsert(full_peer(1)).unwrap();
    assert!(store.get(&ski(1)).unwrap().is_some());
    fs::write(&path, "{ not json").unwrap();
    assert!(matches!(
        store.get(&ski(1)),
        Err(TrustStoreError::Corrupt { .. })
    ));
    assert!(store.upsert(full_peer(2)).is_err());
    assert_eq!(fs::read_to_string(&path).unwrap(), "{ not json");
}

/// `update_existing` with every record replaced by `full_peer`.
fn replace_with_full(store: &dyn TrustStore, skis: &[Ski]) {
    store
        .update_existing(skis, &mut |peer| *peer = full_peer(peer.ski.as_bytes()[0]))
        .unwrap();
}

#[test]
fn batched_updates_replace_only_pairings_that_still_exist() {
    let (_dir, stores) = stores();
    for store in stores {
        store.upsert(PairedPeer::new(ski(1))).unwrap();
        store.upsert(PairedPeer::new(ski(2))).unwrap();
        replace_with_full(&*store, &[ski(1), ski(3), ski(2)]);
        assert_eq!(store.load_all().unwrap(), vec![full_peer(1), full_peer(2)]);
        // Nothing to change: no error, nothing added.
        replace_with_full(&*store, &[ski(1)]);
        replace_with_full(&*store, &[]);
        assert_eq!(store.load_all().unwrap().len(), 2);
        // An update cannot move a record to another SKI.
        store
            .update_existing(&[ski(1)], &mut |peer| peer.ski = ski(9))
            .unwrap();
        assert_eq!(store.get(&ski(9)).unwrap(), None);
        assert_eq!(store.get(&ski(1)).unwrap(), Some(full_peer(1)));
    }
}

#[test]
fn an_update_within_the_same_second_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileTrustStore::new(dir.path().join("trust.json"));
    store.upsert(full_peer(1)).unwrap();
    assert_eq!(store.writes(), 1);
    let stored = full_peer(1).last_seen.unwrap();
    for nanos in [1, 999_999_999] {
        store
            .update_existing(&[ski(1)], &mut |peer| {
                peer.last_seen = Some(stored + Duration::from_nanos(nanos));
            })
            .unwrap();
        let mut same = full_peer(1);
        same.last_seen = Some(stored + Duration::from_nanos(nanos));
        store.upsert(same).unwrap();
    }
    assert_eq!(store.writes(), 1, "nothing changed in whole seconds");
    store
        .update_existing(&[ski(1)], &mut |peer| {
            peer.last_seen = Some(stored + Duration::from_secs(1));
        })
        .unwrap();
    assert_eq!(store.writes(), 2);
}

#[test]
#[cfg(unix)]
fn a_batch_lands_in_the_file_and_leaves_no_temporary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.json");
    let store = FileTrustStore::open(&path).unwrap();
    for n in 1..=3 {
        store.upsert(PairedPeer::new(ski(n))).unwrap();
    }
    let inode = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(p).unwrap().ino()
    };
    let before = inode(&path);
    replace_with_full(&store, &[ski(1), ski(2), ski(3)]);
    // Written by renaming a new file into place.
    assert_ne!(inode(&path), before);
    assert_eq!(
        FileTrustStore::open(&path).unwrap().load_all().unwrap(),
        vec![full_peer(1), full_peer(2), full_peer(3)]
    );
    assert!(!dir.path().join(".trust.json.tmp").exists());
}

/// What a supervisor sends to the trust writer after reconnect number `n` of peer 1, one
/// reconnect every 1.5 s of wall-clock time (with nanoseconds, as `SystemTime::now()` has them).
fn reconnect_update(n: u64) -> PairedPeer {
    let mut peer = full_peer(1);
    peer.last_seen = Some(
        UNIX_EPOCH
            + Duration::from_secs(1_795_000_000)
            + Duration::from_millis(1_500) * n as u32
            + Duration::from_nanos(123_456_789),
    );
    peer
}

#[test]
fn five_hundred_reconnects_write_last_seen_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileTrustStore::new(dir.path().join("trust.json"));
    store.upsert(PairedPeer::new(ski(1))).unwrap();
    let before = store.writes();
    let interval = Duration::from_secs(600);
    for n in 0..500 {
        let batch = BTreeMap::from([(ski(1), reconnect_update(n))]);
        writer::apply(&store, &batch, interval).unwrap();
    }
    let writes = store.writes() - before;
    // 500 reconnects over 750 s: the first one (SHIP ID, address and last seen learnt), and
    // last seen once more after 600 s.
    eprintln!(
        "500 reconnects over 750 s: {writes} writes of the store, {} fsyncs",
        2 * writes
    );
    assert_eq!(writes, 2);
    let stored = store.get(&ski(1)).unwrap().unwrap();
    let last = reconnect_update(499).last_seen.unwrap();
    assert!(last.duration_since(stored.last_seen.unwrap()).unwrap() < interval);
    assert_eq!(stored.last_address, full_peer(1).last_address);
    assert_eq!(stored.ship_id, full_peer(1).ship_id);
}

#[test]
fn a_new_address_or_ship_id_is_written_at_once_and_the_name_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileTrustStore::new(dir.path().join("trust.json"));
    let mut paired = full_peer(1);
    paired.name = Some("named by the user".into());
    store.upsert(paired).unwrap();
    let interval = Duration::from_secs(600);
    let mut update = full_peer(1);
    update.name = Some("a stale copy of the name".into());
    update.last_address = Some(SocketAddr::from(([192, 168, 7, 7], 4712)));
    update.last_seen = Some(full_peer(1).last_seen.unwrap() + Duration::from_secs(5));
    let before = store.writes();
    writer::apply(
        &store,
        &BTreeMap::from([(ski(1), update.clone())]),
        interval,
    )
    .unwrap();
    assert_eq!(store.writes(), before + 1);
    let stored = store.get(&ski(1)).unwrap().unwrap();
    assert_eq!(stored.last_address, update.last_address);
    assert_eq!(
        stored.last_seen, update.last_seen,
        "written along with the address"
    );
    assert_eq!(stored.name.as_deref(), Some("named by the user"));

    update.ship_id = Some(ShipId::new("Renamed-Device").unwrap());
    writer::apply(
        &store,
        &BTreeMap::from([(ski(1), update.clone())]),
        interval,
    )
    .unwrap();
    assert_eq!(store.writes(), before + 2);
    assert_eq!(store.get(&ski(1)).unwrap().unwrap().ship_id, update.ship_id);

    // A pairing removed meanwhile stays removed.
    assert!(store.remove(&ski(1)).unwrap());
    writer::apply(&store, &BTreeMap::from([(ski(1), update)]), interval).unwrap();
    assert_eq!(store.get(&ski(1)).unwrap(), None);
}

#[test]
fn a_zero_interval_writes_every_new_second_and_a_clock_set_back_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileTrustStore::new(dir.path().join("trust.json"));
    store.upsert(full_peer(1)).unwrap();
    let before = store.writes();
    for n in 0..4 {
        writer::apply(
            &store,
            &BTreeMap::from([(ski(1), reconnect_update(n))]),
            Duration::ZERO,
        )
        .unwrap();
    }
    // 0 s, 1.5 s, 3 s, 4.5 s: four different whole seconds.
    assert_eq!(store.writes() - before, 4);
    let mut back = full_peer(1);
    back.last_seen = Some(UNIX_EPOCH + Duration::from_secs(1_000_000_000));
    writer::apply(
        &store,
        &BTreeMap::from([(ski(1), back.clone())]),
        Duration::from_secs(600),
    )
    .unwrap();
    assert_eq!(
        store.get(&ski(1)).unwrap().unwrap().last_seen,
        back.last_seen
    );
}

/// A store in `dir/trust.json` with a symbolic link planted at `dir/name`, pointing to a file
/// of someone else's: every write (and, for a link in place of the store, every read) fails
/// naming the link, and the other file is untouched.
#[test]
#[cfg(unix)]
fn links_planted_at_the_store_or_its_temporary_file_are_never_followed() {
    for name in [".trust.json.tmp", "trust.json"] {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "someone else's file").unwrap();
        let link = dir.path().join(name);
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let store = FileTrustStore::new(dir.path().join("trust.json"));
        let results = [
            store.upsert(full_peer(1)).map(|_| ()),
            store.remove(&ski(1)).map(|_| ()),
            store.update_existing(&[ski(1)], &mut |_| {}),
        ];
        for result in results {
            if name == ".trust.json.tmp" && result.is_ok() {
                // Nothing to write: nothing touched.
                continue;
            }
            let error = result.unwrap_err();
            assert!(
                matches!(error, TrustStoreError::Symlink { .. }),
                "{name}: {error:?}"
            );
            assert!(
                error.to_string().contains("symbolic link"),
                "{name}: {error}"
            );
            assert_eq!(error.path(), link, "{name}");
        }
        if name == "trust.json" {
            assert!(store.get(&ski(1)).is_err());
            assert!(FileTrustStore::open(store.path()).is_err());
        }
        assert_eq!(
            fs::read_to_string(&victim).unwrap(),
            "someone else's file",
            "{name}"
        );
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}

/// The structural property behind a per-handshake cost independent of the number of pairings
/// (docs/performance.md): lookups answer from memory while the file is unchanged, the store's
/// own writes (a pairing, a batch of 100 updates, a removal) leave it parsing nothing, a batch
/// writes the file once, and a change by another process is still seen, with one parse.
#[test]
fn lookups_and_own_writes_never_parse_the_file_and_a_batch_writes_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.json");
    let store = FileTrustStore::open(&path).unwrap();
    let skis: Vec<Ski> = (1..=100).map(ski).collect();
    for &ski in &skis {
        store.upsert(PairedPeer::new(ski)).unwrap();
    }
    for _ in 0..10 {
        for ski in &skis {
            assert!(store.get(ski).unwrap().is_some());
        }
    }
    let parses = store.parses();
    let writes = store.writes();
    replace_with_full(&store, &skis);
    assert_eq!(
        store.writes(),
        writes + 1,
        "a batch of 100 updates writes once"
    );
    for &ski in &skis {
        assert_eq!(store.get(&ski).unwrap(), Some(full_peer(ski.as_bytes()[0])));
    }
    assert!(store.remove(&ski(100)).unwrap());
    assert_eq!(store.get(&ski(100)).unwrap(), None);
    assert_eq!(store.load_all().unwrap().len(), 99);
    assert_eq!(
        store.parses(),
        parses,
        "lookups after the store's own writes parsed the file"
    );
    // What the store holds in memory is what the file holds.
    let fresh = FileTrustStore::open(&path).unwrap();
    assert_eq!(fresh.load_all().unwrap(), store.load_all().unwrap());

    // Another process changes the file: the next lookup sees it, with one parse.
    fresh.upsert(full_peer(200)).unwrap();
    assert_eq!(store.get(&ski(200)).unwrap(), Some(full_peer(200)));
    assert_eq!(store.parses(), parses + 1);
    assert!(store.get(&ski(1)).unwrap().is_some());
    assert_eq!(store.parses(), parses + 1);
}

#[test]
fn upsert_many_writes_once_and_nothing_when_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileTrustStore::open(dir.path().join("trust.json")).unwrap();
    store.upsert(full_peer(1)).unwrap();
    let peers: Vec<PairedPeer> = (1..=50).map(full_peer).collect();
    store.upsert_many(peers.clone()).unwrap();
    assert_eq!(store.writes(), 2);
    assert_eq!(store.load_all().unwrap(), peers);
    store.upsert_many(peers.clone()).unwrap();
    assert_eq!(store.writes(), 2, "nothing changed");
    let reopened = FileTrustStore::open(store.path()).unwrap();
    assert_eq!(reopened.load_all().unwrap(), peers);
}

#[test]
fn a_peer_pin_survives_the_file_and_old_files_without_it_load() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trust.json");
    // A file written before PINs existed.
    let old = format!(
        "{{\"version\":1,\"peers\":[{{\"ski\":\"{}\",\"ship_id\":\"Device-1\"}}]}}",
        "01".repeat(20)
    );
    fs::write(&path, &old).unwrap();
    let store = FileTrustStore::open(&path).unwrap();
    let mut peer = store.get(&ski(1)).unwrap().expect("old record loads");
    assert_eq!(peer.pin, None);
    peer.pin = Some(Pin::new("5555 AAAA FF").unwrap());
    store.upsert(peer.clone()).unwrap();
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"pin\": \"5555AAAAFF\""), "{text}");
    let reopened = FileTrustStore::open(&path).unwrap();
    assert_eq!(reopened.get(&ski(1)).unwrap(), Some(peer.clone()));
    assert!(
        !format!("{peer:?}").contains("5555AAAAFF"),
        "Debug redacts the PIN"
    );
}

#[test]
fn an_invalid_pin_in_the_file_is_a_typed_error_that_does_not_show_it() {
    let content = format!(
        "{{\"version\":1,\"peers\":[{{\"ski\":\"{}\",\"pin\":\"SECRET-NOT-HEX\"}}]}}",
        "01".repeat(20)
    );
    let error = assert_refused_and_untouched(&content);
    let text = error.to_string();
    assert!(text.contains("pin is not valid"), "{text}");
    assert!(!text.contains("SECRET"), "{text}");
}
