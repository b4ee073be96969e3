//! The trust store shared between processes: [`ship_hub::hub::FileTrustStore`] behind an
//! advisory file lock.
//!
//! `FileTrustStore` replaces its file atomically, so a crash never leaves a torn file, and it
//! serializes writers inside one process. Two processes (a running gateway and a `ship-gateway
//! pair`) could still interleave their read-modify-write cycles and lose one update, or share
//! its temporary file. Every operation here therefore holds an exclusive `flock` on
//! `.pairings.json.lock`; reads need none (the file is replaced atomically). The kernel drops the lock when a process dies, so a
//! `kill -9` in the middle of a write never leaves the store locked.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use ship_hub::hub::{FileTrustStore, PairedPeer, TrustStore, TrustStoreError};
use ship_hub::{ShipId, Ski};

/// A [`FileTrustStore`] whose every operation holds a cross-process advisory lock.
#[derive(Debug)]
pub(crate) struct LockedTrustStore {
    inner: FileTrustStore,
    lock_path: PathBuf,
}

/// An advisory lock, released on drop (or when the process dies).
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    /// Opens (creating) `path` and locks it, waiting for other holders.
    pub(crate) fn acquire(path: &Path, exclusive: bool) -> std::io::Result<FileLock> {
        let file = open_lock_file(path)?;
        if exclusive {
            file.lock()?;
        } else {
            file.lock_shared()?;
        }
        Ok(FileLock { _file: file })
    }

    /// Like [`FileLock::acquire`] without waiting: `Ok(None)` when someone else holds it.
    pub(crate) fn try_acquire(path: &Path, exclusive: bool) -> std::io::Result<Option<FileLock>> {
        let file = open_lock_file(path)?;
        let result = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match result {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// Opens (creating, mode 0600) the lock file `path`, never through a symbolic link: a link
/// planted there is an error naming it, and its target is neither created nor touched.
fn open_lock_file(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let refused = || {
        std::io::Error::other(format!(
            "{} is a symbolic link: refusing to follow it (lock files must be regular files; \
             remove the link)",
            path.display()
        ))
    };
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(refused());
    }
    // The flag's bits fit in an i32 (a small positive constant).
    let no_follow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(no_follow)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
                refused()
            } else {
                e
            }
        })
}

/// Whether `error` is [`open_lock_file`]'s refusal of a symbolic link.
fn is_link_refusal(path: &Path, error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::Other
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

impl LockedTrustStore {
    /// The store in `path`, locked through `lock_path`; the file is read once to report
    /// corruption now.
    pub(crate) fn open(path: PathBuf, lock_path: PathBuf) -> Result<Self, TrustStoreError> {
        let store = LockedTrustStore {
            inner: FileTrustStore::new(path),
            lock_path,
        };
        store.load_all()?;
        Ok(store)
    }

    /// Runs `f` on the file while holding the lock: a read-modify-write cycle that no other
    /// process can interleave with.
    pub(crate) fn locked<T>(
        &self,
        exclusive: bool,
        f: impl FnOnce(&FileTrustStore) -> Result<T, TrustStoreError>,
    ) -> Result<T, TrustStoreError> {
        let _lock = FileLock::acquire(&self.lock_path, exclusive).map_err(|source| {
            if is_link_refusal(&self.lock_path, &source) {
                TrustStoreError::Symlink {
                    path: self.lock_path.clone(),
                }
            } else {
                TrustStoreError::Io {
                    path: self.lock_path.clone(),
                    operation: "lock",
                    source,
                }
            }
        })?;
        f(&self.inner)
    }

    /// Stores a pairing with the extras that are given (SHIP ID, name, last address, the PIN to
    /// send), keeping what is stored for the others: `pair` with or without a running gateway.
    pub(crate) fn store_pairing(
        &self,
        ski: Ski,
        ship_id: Option<ShipId>,
        name: Option<String>,
        address: Option<std::net::SocketAddr>,
        pin: Option<ship_hub::protocol::Pin>,
    ) -> Result<PairedPeer, TrustStoreError> {
        let mut given = PairedPeer::new(ski);
        given.ship_id = ship_id;
        given.name = name;
        given.last_address = address;
        given.pin = pin;
        self.merge(ski, |peer| peer.merge(given))
    }

    /// Adds or updates a pairing, keeping what is already stored where `update` leaves a field
    /// empty. Returns the stored record.
    pub(crate) fn merge(
        &self,
        ski: Ski,
        update: impl FnOnce(&mut PairedPeer),
    ) -> Result<PairedPeer, TrustStoreError> {
        self.locked(true, |store| {
            let mut peer = store.get(&ski)?.unwrap_or_else(|| PairedPeer::new(ski));
            update(&mut peer);
            store.upsert(peer.clone())?;
            Ok(peer)
        })
    }
}

impl TrustStore for LockedTrustStore {
    // Reads take no lock: the file is only ever replaced by an atomic rename, so a reader sees
    // the old or the new store. (This also lets a user who may read but not write the data dir
    // run `list`.)
    fn load_all(&self) -> Result<Vec<PairedPeer>, TrustStoreError> {
        self.inner.load_all()
    }

    fn get(&self, ski: &Ski) -> Result<Option<PairedPeer>, TrustStoreError> {
        self.inner.get(ski)
    }

    fn upsert(&self, peer: PairedPeer) -> Result<(), TrustStoreError> {
        self.locked(true, |s| s.upsert(peer))
    }

    fn remove(&self, ski: &Ski) -> Result<bool, TrustStoreError> {
        self.locked(true, |s| s.remove(ski))
    }

    /// Under the same lock as `remove` (in this process and in any other), so a background
    /// update never re-creates a pairing that an `unpair` removed.
    fn update_existing(
        &self,
        skis: &[Ski],
        update: &mut dyn FnMut(&mut PairedPeer),
    ) -> Result<(), TrustStoreError> {
        self.locked(true, |s| s.update_existing(skis, update))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::time::{Duration, UNIX_EPOCH};

    /// `unpair` racing the hub's background last-seen updates of the same peer, 500 times: a
    /// thread applies `update_existing` in a loop (as the hub's trust writer does while the peer
    /// reconnects) while the peer is paired and removed again at moments that move through the
    /// loop. Once the updater went through two more updates, the pairing must still be gone.
    #[test]
    fn an_unpair_racing_last_seen_updates_is_never_undone_in_500_races() {
        // In memory where there is a tmpfs: the race is about locking, and each of the thousands
        // of writes would otherwise wait for a disk's fsync.
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .unwrap();
        let store = LockedTrustStore::open(
            dir.path().join("pairings.json"),
            dir.path().join(".pairings.json.lock"),
        )
        .unwrap();
        let ski = Ski::from_bytes([0x42; 20]);
        let stop = AtomicBool::new(false);
        let updates = AtomicU64::new(0);
        let undone = std::thread::scope(|scope| {
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
            for race in 0..500u64 {
                store.upsert(PairedPeer::new(ski)).unwrap();
                wait_for_updates(1);
                std::thread::sleep(Duration::from_micros(race * 7 % 500));
                assert!(store.remove(&ski).unwrap(), "race {race}");
                wait_for_updates(2);
                if store.get(&ski).unwrap().is_some() {
                    undone += 1;
                }
            }
            stop.store(true, Ordering::Relaxed);
            undone
        });
        eprintln!("500 unpair/last-seen races: {undone} unpairs undone");
        assert_eq!(undone, 0, "unpairs undone by a background update");
    }

    /// The gateway's store forwards a batch as one locked `update_existing`: 200 peers' updates
    /// write the file once, and neither lookups nor its own writes parse the file again; a
    /// change by another process (the CLI's `pair`) is seen by the next lookup, with one parse.
    #[test]
    fn a_batch_writes_once_and_lookups_parse_only_after_another_process_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pairings.json");
        let lock = dir.path().join(".pairings.json.lock");
        let store = LockedTrustStore::open(path.clone(), lock.clone()).unwrap();
        let skis: Vec<Ski> = (0..200u8).map(|n| Ski::from_bytes([n; 20])).collect();
        store
            .locked(true, |s| {
                s.upsert_many(skis.iter().map(|ski| PairedPeer::new(*ski)))
            })
            .unwrap();
        let (writes, parses) = (store.inner.writes(), store.inner.parses());
        let seen = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        store
            .update_existing(&skis, &mut |peer| peer.last_seen = Some(seen))
            .unwrap();
        assert_eq!(store.inner.writes(), writes + 1, "200 updates, one write");
        for ski in &skis {
            assert_eq!(store.get(ski).unwrap().unwrap().last_seen, Some(seen));
        }
        assert_eq!(store.inner.parses(), parses, "lookups parsed the file");

        let cli = LockedTrustStore::open(path, lock).unwrap();
        let newcomer = Ski::from_bytes([0xee; 20]);
        cli.merge(newcomer, |_| {}).unwrap();
        assert!(store.get(&newcomer).unwrap().is_some());
        assert_eq!(store.inner.parses(), parses + 1);
        assert!(store.get(&skis[0]).unwrap().is_some());
        assert_eq!(store.inner.parses(), parses + 1);
    }

    /// A link planted at `.pairings.json.lock` or `gateway.lock` (pointing to a file that does not
    /// exist yet, or to someone else's): every locked operation fails naming it, and the link's
    /// target is neither created nor changed.
    #[test]
    fn links_planted_at_the_lock_files_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let lock_path = dir.path().join(".pairings.json.lock");
        let missing = dir.path().join("created-by-following");
        std::os::unix::fs::symlink(&missing, &lock_path).unwrap();
        let store =
            LockedTrustStore::open(dir.path().join("pairings.json"), lock_path.clone()).unwrap();
        for error in [
            store
                .upsert(PairedPeer::new(Ski::from_bytes([1; 20])))
                .unwrap_err(),
            store.remove(&Ski::from_bytes([1; 20])).unwrap_err(),
            store.update_existing(&[], &mut |_| {}).unwrap_err(),
            store.merge(Ski::from_bytes([1; 20]), |_| {}).unwrap_err(),
        ] {
            assert!(
                matches!(error, TrustStoreError::Symlink { .. }),
                "{error:?}"
            );
            assert_eq!(error.path(), lock_path);
        }
        assert!(!missing.exists());
        assert!(!dir.path().join("pairings.json").exists());

        let gateway_lock = dir.path().join("gateway.lock");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "someone else's file").unwrap();
        std::os::unix::fs::symlink(&victim, &gateway_lock).unwrap();
        for exclusive in [true, false] {
            let error = FileLock::try_acquire(&gateway_lock, exclusive)
                .err()
                .expect("refused");
            assert!(error.to_string().contains("symbolic link"), "{error}");
            assert!(error.to_string().contains("gateway.lock"), "{error}");
        }
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "someone else's file"
        );
    }
}
