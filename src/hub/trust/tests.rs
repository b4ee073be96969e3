//! Unit tests of the trust stores.

use super::*;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::Arc;

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

#[test]
fn batched_updates_replace_only_pairings_that_still_exist() {
    let (_dir, stores) = stores();
    for store in stores {
        store.upsert(PairedPeer::new(ski(1))).unwrap();
        store.upsert(PairedPeer::new(ski(2))).unwrap();
        store
            .update_existing(vec![full_peer(1), full_peer(3), full_peer(2)])
            .unwrap();
        assert_eq!(store.load_all().unwrap(), vec![full_peer(1), full_peer(2)]);
        // Nothing to change: no error, nothing added.
        store.update_existing(vec![full_peer(1)]).unwrap();
        store.update_existing(Vec::new()).unwrap();
        assert_eq!(store.load_all().unwrap().len(), 2);
    }
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
    store
        .update_existing(vec![full_peer(1), full_peer(2), full_peer(3)])
        .unwrap();
    // Written by renaming a new file into place.
    assert_ne!(inode(&path), before);
    assert_eq!(
        FileTrustStore::open(&path).unwrap().load_all().unwrap(),
        vec![full_peer(1), full_peer(2), full_peer(3)]
    );
    assert!(!dir.path().join(".trust.json.tmp").exists());
}
