//! [`TestStore`]: a trust store with switches, for the tests of what a hub does when its disk
//! hangs or refuses to write.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use ship_hub::Ski;
use ship_hub::hub::{MemoryTrustStore, PairedPeer, TrustStore, TrustStoreError};

/// A [`MemoryTrustStore`] behind two switches: a gate that holds every call but `load_all` until
/// [`TestStore::open`] (a disk that hangs), and upserts that fail naming a file (a read-only or
/// full disk). Counts the loads and reads a hub makes.
#[derive(Default)]
pub struct TestStore {
    /// The pairings, reachable without the gate (to set up and to check a test).
    pub inner: MemoryTrustStore,
    closed: Mutex<bool>,
    opened: Condvar,
    failing: Option<PathBuf>,
    loads: AtomicUsize,
    reads: AtomicUsize,
}

impl TestStore {
    /// A store whose every call after `load_all` waits until [`TestStore::open`].
    pub fn hanging() -> TestStore {
        TestStore {
            closed: Mutex::new(true),
            ..TestStore::default()
        }
    }

    /// A store whose upserts fail with an I/O error (permission denied) naming `path`.
    pub fn failing_upserts(path: impl Into<PathBuf>) -> TestStore {
        TestStore {
            failing: Some(path.into()),
            ..TestStore::default()
        }
    }

    /// Lets every waiting and later call through.
    pub fn open(&self) {
        *self.closed.lock().unwrap() = false;
        self.opened.notify_all();
    }

    /// How many times `load_all` was called.
    pub fn loads(&self) -> usize {
        self.loads.load(Ordering::SeqCst)
    }

    /// How many times `get` was called.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    fn pass(&self) {
        let mut closed = self.closed.lock().unwrap();
        while *closed {
            closed = self.opened.wait(closed).unwrap();
        }
    }
}

impl TrustStore for TestStore {
    fn load_all(&self) -> Result<Vec<PairedPeer>, TrustStoreError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        self.inner.load_all()
    }

    fn get(&self, ski: &Ski) -> Result<Option<PairedPeer>, TrustStoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.pass();
        self.inner.get(ski)
    }

    fn upsert(&self, peer: PairedPeer) -> Result<(), TrustStoreError> {
        self.pass();
        match &self.failing {
            Some(path) => Err(TrustStoreError::Io {
                path: path.clone(),
                operation: "write",
                source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            }),
            None => self.inner.upsert(peer),
        }
    }

    fn remove(&self, ski: &Ski) -> Result<bool, TrustStoreError> {
        self.pass();
        self.inner.remove(ski)
    }

    fn update_existing(
        &self,
        skis: &[Ski],
        update: &mut dyn FnMut(&mut PairedPeer),
    ) -> Result<(), TrustStoreError> {
        self.pass();
        self.inner.update_existing(skis, update)
    }
}
