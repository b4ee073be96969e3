//! The trust store: which SKIs the user paired with, kept across restarts and crashes.
//!
//! SHIP (§12.2, §13.4.4 "trust") only lets a connection reach data exchange when the remote SKI
//! is trusted. ship-hub's trust comes from the user pairing a device (typing or approving its
//! SKI); the [`TrustStore`] remembers those pairings, plus what the hub learnt about each peer
//! (its SHIP ID, a name, where it was last reached and when), so that after a restart the hub
//! can redial every paired peer at once without waiting for an mDNS sighting (§8).
//!
//! Two implementations:
//!
//! * [`MemoryTrustStore`] — a map, for tests and for applications that persist pairings
//!   themselves.
//! * [`FileTrustStore`] — one human-readable JSON file, replaced atomically on every change (write
//!   a temporary file beside it, fsync it, rename it over the old one, fsync the directory), so a
//!   crash or power cut at any moment leaves either the old or the new file, never a torn one.
//!   A file that cannot be read as a trust store is reported with its path and is never
//!   overwritten: losing every pairing silently is worse than refusing to start.
//!
//! The methods are synchronous and may touch the disk. The hub calls them where blocking for a
//! few milliseconds is acceptable (at start-up, or through `tokio::task::spawn_blocking`), never
//! directly on an async worker in the middle of a connection.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::{ShipId, Ski};

/// What the hub remembers about one paired peer.
///
/// Only `ski` decides trust; the other fields are hints the hub keeps up to date (the SHIP ID to
/// detect a mismatch, §13.4.6; the last address to redial without mDNS, §8).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PairedPeer {
    /// The SKI the user trusted (§12.1).
    pub ski: Ski,
    /// The SHIP ID the peer announced, once known.
    pub ship_id: Option<ShipId>,
    /// A human name for the peer (from mDNS or given by the user).
    pub name: Option<String>,
    /// The address of the last successful connection to the peer (for an incoming connection
    /// the hub should store the peer's listening address, not its ephemeral source port).
    pub last_address: Option<SocketAddr>,
    /// When the peer was last connected. [`FileTrustStore`] keeps whole seconds since the Unix
    /// epoch (earlier times are stored as the epoch).
    pub last_seen: Option<SystemTime>,
}

impl PairedPeer {
    /// A pairing with nothing known yet but the SKI.
    pub fn new(ski: Ski) -> Self {
        PairedPeer {
            ski,
            ship_id: None,
            name: None,
            last_address: None,
            last_seen: None,
        }
    }
}

/// Durable storage of pairings.
///
/// Object safe (`Box<dyn TrustStore>`, `Arc<dyn TrustStore>`), `Send + Sync`. Every method may
/// block on disk I/O; see the module documentation for where the hub calls them. Implementations
/// serialize concurrent writers themselves.
pub trait TrustStore: Send + Sync {
    /// Every pairing, sorted by SKI.
    fn load_all(&self) -> Result<Vec<PairedPeer>, TrustStoreError>;

    /// The pairing of `ski`, if the user paired it.
    fn get(&self, ski: &Ski) -> Result<Option<PairedPeer>, TrustStoreError>;

    /// Adds the pairing, or replaces the stored record of the same SKI.
    fn upsert(&self, peer: PairedPeer) -> Result<(), TrustStoreError>;

    /// Removes the pairing of `ski`; returns whether it existed.
    fn remove(&self, ski: &Ski) -> Result<bool, TrustStoreError>;

    /// Replaces the stored records of those `peers` that are still paired; a SKI that is not
    /// stored (unpaired meanwhile) stays unpaired. The hub's background updates (last address,
    /// last seen, SHIP ID) arrive here in batches. The default applies them one by one; a store
    /// that can should apply them in one write ([`FileTrustStore`] does).
    fn update_existing(&self, peers: Vec<PairedPeer>) -> Result<(), TrustStoreError> {
        for peer in peers {
            if self.get(&peer.ski)?.is_some() {
                self.upsert(peer)?;
            }
        }
        Ok(())
    }
}

/// Why the trust store could not be read or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustStoreError {
    /// The operating system refused an operation on the file or its directory.
    #[error("cannot {operation} the trust store {}: {source}", path.display())]
    Io {
        /// The file (or temporary file, or directory) concerned.
        path: PathBuf,
        /// What was being done: "read", "write", "sync", "rename", …
        operation: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// The file exists but is not a valid trust store. It was left untouched.
    #[error(
        "the trust store {} is corrupt ({detail}); it was left untouched: repair it or move it \
         away to start with no pairings",
        path.display()
    )]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line and column where the JSON parser knows them.
        detail: String,
    },
    /// The file was written by a version of ship-hub with a format this one does not read. It was
    /// left untouched.
    #[error(
        "the trust store {} has format version {found}; this build reads version {}: it was left \
         untouched",
        path.display(),
        FORMAT_VERSION
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version found in the file, as written there.
        found: String,
    },
}

impl TrustStoreError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            TrustStoreError::Io { path, .. }
            | TrustStoreError::Corrupt { path, .. }
            | TrustStoreError::UnsupportedVersion { path, .. } => path,
        }
    }
}

/// Recovers the data of a poisoned mutex: every critical section here leaves the data valid
/// before anything can panic.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A trust store in memory, for tests and for applications that keep pairings elsewhere.
#[derive(Debug, Default)]
pub struct MemoryTrustStore {
    peers: Mutex<BTreeMap<Ski, PairedPeer>>,
}

impl MemoryTrustStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl TrustStore for MemoryTrustStore {
    fn load_all(&self) -> Result<Vec<PairedPeer>, TrustStoreError> {
        Ok(lock(&self.peers).values().cloned().collect())
    }

    fn get(&self, ski: &Ski) -> Result<Option<PairedPeer>, TrustStoreError> {
        Ok(lock(&self.peers).get(ski).cloned())
    }

    fn upsert(&self, peer: PairedPeer) -> Result<(), TrustStoreError> {
        lock(&self.peers).insert(peer.ski, peer);
        Ok(())
    }

    fn remove(&self, ski: &Ski) -> Result<bool, TrustStoreError> {
        Ok(lock(&self.peers).remove(ski).is_some())
    }
}

/// The version of the file format written and read by [`FileTrustStore`].
const FORMAT_VERSION: u64 = 1;

/// The file, version 1: `{"version":1,"peers":[…]}` with peers sorted by SKI.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileV1 {
    version: u64,
    peers: Vec<RecordV1>,
}

/// One peer in the file. Absent optional fields are left out.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordV1 {
    ski: Ski,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ship_id: Option<ShipId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    /// `Display` form, which keeps an IPv6 scope id (`[fe80::1%2]:4712`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_address: Option<String>,
    /// Whole seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_seen: Option<u64>,
}

impl RecordV1 {
    fn from_peer(peer: &PairedPeer) -> Self {
        RecordV1 {
            ski: peer.ski,
            ship_id: peer.ship_id.clone(),
            name: peer.name.clone(),
            last_address: peer.last_address.map(|a| a.to_string()),
            last_seen: peer.last_seen.map(|t| {
                t.duration_since(UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0)
            }),
        }
    }

    fn into_peer(self) -> Result<PairedPeer, String> {
        let last_address = match self.last_address {
            None => None,
            Some(text) => Some(text.parse::<SocketAddr>().map_err(|e| {
                format!(
                    "peer {}: last_address {text:?} is not an address: {e}",
                    self.ski
                )
            })?),
        };
        let last_seen = match self.last_seen {
            None => None,
            Some(secs) => Some(
                UNIX_EPOCH
                    .checked_add(Duration::from_secs(secs))
                    .ok_or_else(|| {
                        format!("peer {}: last_seen {secs} is out of range", self.ski)
                    })?,
            ),
        };
        Ok(PairedPeer {
            ski: self.ski,
            ship_id: self.ship_id,
            name: self.name,
            last_address,
            last_seen,
        })
    }
}

/// A trust store in one JSON file, replaced atomically on every change.
///
/// The file looks like this (peers sorted by SKI, absent fields left out):
///
/// ```json
/// {
///   "version": 1,
///   "peers": [
///     {
///       "ski": "0123456789abcdef0123456789abcdef01234567",
///       "ship_id": "Wallbox-1234",
///       "name": "Garage wallbox",
///       "last_address": "192.168.1.20:4712",
///       "last_seen": 1795000000
///     }
///   ]
/// }
/// ```
///
/// A missing file is an empty store (created by the first pairing, with mode 0600 on Unix; its
/// directory must exist). A file that is not valid JSON,
/// does not match the format, lists a SKI twice or carries another version is an error naming the
/// file, and is never overwritten. Writes go to `.<file name>.tmp` in the same directory, which
/// is fsynced and renamed over the file, and then the directory is fsynced; a temporary file left
/// by a crash is simply overwritten by the next write. One process owns a store file: writers in
/// that process are serialized by a mutex (held only around the synchronous file operations),
/// writers in different processes are not.
///
/// The file stays the truth even if the user edits it while the hub runs: every operation first
/// looks at the file's metadata (size, modification and change times, inode) and parses the
/// file again only when that changed since the store last read it (or after its own write);
/// otherwise it answers from the contents it parsed then. (Parsing on every call made each
/// lookup cost O(number of peers): a hub with 2,000 pairings needed 6 s to start; see
/// docs/performance.md.) An in-place edit that keeps the size and lands within the file
/// system's timestamp granularity of the store's last read could go unseen until the next
/// change; editors that write a new file and rename it (most do) change the inode and are
/// always seen.
#[derive(Debug)]
pub struct FileTrustStore {
    path: PathBuf,
    write_lock: Mutex<()>,
    /// The contents last read or written, with the file's stamp at that moment.
    cache: Mutex<Option<(FileStamp, Peers)>>,
}

/// Parsed contents of a store file, shared between the cache and readers.
type Peers = Arc<BTreeMap<Ski, PairedPeer>>;

/// What identifies one version of the file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    unix: (u64, u64, i64, i64),
}

impl FileStamp {
    fn of(metadata: &fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            unix: (
                metadata.dev(),
                metadata.ino(),
                metadata.ctime(),
                metadata.ctime_nsec(),
            ),
        }
    }
}

impl FileTrustStore {
    /// A store in the file at `path`. Touches nothing yet; see [`FileTrustStore::open`].
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileTrustStore {
            path: path.into(),
            write_lock: Mutex::new(()),
            cache: Mutex::new(None),
        }
    }

    /// A store in the file at `path`, checked by reading it once: a corrupt or unsupported file
    /// is reported now rather than at the first pairing.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, TrustStoreError> {
        let store = Self::new(path);
        store.read()?;
        Ok(store)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file a write goes through.
    fn temp_path(&self) -> PathBuf {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "trust-store".to_owned());
        self.path.with_file_name(format!(".{name}.tmp"))
    }

    fn io_error(path: &Path, operation: &'static str, source: io::Error) -> TrustStoreError {
        TrustStoreError::Io {
            path: path.to_owned(),
            operation,
            source,
        }
    }

    fn corrupt(&self, detail: impl Into<String>) -> TrustStoreError {
        TrustStoreError::Corrupt {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    /// The file's current stamp; `None` if it does not exist.
    fn stamp(&self) -> Result<Option<FileStamp>, TrustStoreError> {
        match fs::metadata(&self.path) {
            Ok(metadata) => Ok(Some(FileStamp::of(&metadata))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Self::io_error(&self.path, "read", e)),
        }
    }

    /// The whole file, validated: from the cache while the file's stamp is unchanged.
    fn read(&self) -> Result<Peers, TrustStoreError> {
        let Some(stamp) = self.stamp()? else {
            *lock(&self.cache) = None;
            return Ok(Arc::new(BTreeMap::new()));
        };
        if let Some((cached, peers)) = lock(&self.cache).as_ref()
            && *cached == stamp
        {
            return Ok(peers.clone());
        }
        let bytes = match fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Arc::new(BTreeMap::new())),
            Err(e) => return Err(Self::io_error(&self.path, "read", e)),
        };
        let peers = Arc::new(self.parse(&bytes)?);
        // Cached under the stamp taken before reading: if the file changed in between, the next
        // call sees a different stamp and reads again.
        *lock(&self.cache) = Some((stamp, peers.clone()));
        Ok(peers)
    }

    fn parse(&self, bytes: &[u8]) -> Result<BTreeMap<Ski, PairedPeer>, TrustStoreError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(self.corrupt("the file is empty"));
        }
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| self.corrupt(format!("not JSON: {e}")))?;
        let version = value
            .as_object()
            .ok_or_else(|| self.corrupt("the top level is not a JSON object"))?
            .get("version")
            .ok_or_else(|| self.corrupt("no \"version\" field"))?;
        if version.as_u64() != Some(FORMAT_VERSION) {
            return Err(TrustStoreError::UnsupportedVersion {
                path: self.path.clone(),
                found: version.to_string(),
            });
        }
        let file: FileV1 =
            serde_json::from_value(value).map_err(|e| self.corrupt(e.to_string()))?;
        let mut peers = BTreeMap::new();
        for record in file.peers {
            let ski = record.ski;
            let peer = record.into_peer().map_err(|detail| self.corrupt(detail))?;
            if peers.insert(ski, peer).is_some() {
                return Err(self.corrupt(format!("peer {ski} is listed twice")));
            }
        }
        Ok(peers)
    }

    /// Replaces the file with `peers`, atomically (see the type's documentation).
    fn write(&self, peers: &BTreeMap<Ski, PairedPeer>) -> Result<(), TrustStoreError> {
        let file = FileV1 {
            version: FORMAT_VERSION,
            peers: peers.values().map(RecordV1::from_peer).collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| Self::io_error(&self.path, "encode", io::Error::other(e)))?;
        bytes.push(b'\n');

        let temp = self.temp_path();
        let result = Self::write_synced(&temp, &bytes)
            .and_then(|()| {
                fs::rename(&temp, &self.path).map_err(|e| Self::io_error(&temp, "rename", e))
            })
            .and_then(|()| self.sync_directory());
        // The next read parses what was written (normalised as the file holds it, e.g.
        // `last_seen` in whole seconds) and caches it.
        *lock(&self.cache) = None;
        if result.is_err() {
            // Best effort: the old file is intact; do not leave a half-written temporary behind.
            let _ = fs::remove_file(&temp);
        }
        result
    }

    fn write_synced(temp: &Path, bytes: &[u8]) -> Result<(), TrustStoreError> {
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(temp)
            .map_err(|e| Self::io_error(temp, "create", e))?;
        file.write_all(bytes)
            .map_err(|e| Self::io_error(temp, "write", e))?;
        file.sync_all().map_err(|e| Self::io_error(temp, "sync", e))
    }

    /// Makes the rename durable: on POSIX file systems the new directory entry is only on disk
    /// once the directory itself is synced.
    fn sync_directory(&self) -> Result<(), TrustStoreError> {
        #[cfg(unix)]
        {
            let dir = match self.path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| Self::io_error(&self.path, "sync the directory of", e))?;
        }
        Ok(())
    }
}

impl TrustStore for FileTrustStore {
    fn load_all(&self) -> Result<Vec<PairedPeer>, TrustStoreError> {
        Ok(self.read()?.values().cloned().collect())
    }

    fn get(&self, ski: &Ski) -> Result<Option<PairedPeer>, TrustStoreError> {
        Ok(self.read()?.get(ski).cloned())
    }

    fn upsert(&self, peer: PairedPeer) -> Result<(), TrustStoreError> {
        let _writer = lock(&self.write_lock);
        let peers = self.read()?;
        if peers.get(&peer.ski) == Some(&peer) {
            return Ok(());
        }
        let mut peers = BTreeMap::clone(&peers);
        peers.insert(peer.ski, peer);
        self.write(&peers)
    }

    /// One read and at most one write for the whole batch.
    fn update_existing(&self, updates: Vec<PairedPeer>) -> Result<(), TrustStoreError> {
        let _writer = lock(&self.write_lock);
        let stored = self.read()?;
        let mut peers = BTreeMap::clone(&stored);
        let mut changed = false;
        for peer in updates {
            if let Some(record) = peers.get_mut(&peer.ski)
                && *record != peer
            {
                *record = peer;
                changed = true;
            }
        }
        if changed { self.write(&peers) } else { Ok(()) }
    }

    fn remove(&self, ski: &Ski) -> Result<bool, TrustStoreError> {
        let _writer = lock(&self.write_lock);
        let peers = self.read()?;
        if !peers.contains_key(ski) {
            return Ok(false);
        }
        let mut peers = BTreeMap::clone(&peers);
        peers.remove(ski);
        self.write(&peers)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
