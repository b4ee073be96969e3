//! [`FileTrustStore`]: the pairings in one JSON file, replaced atomically on every change.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{PairedPeer, TrustStore, TrustStoreError, lock};
use crate::protocol::Pin;
use crate::safe_file;
use crate::{ShipId, Ski};

/// The version of the file format written and read by [`FileTrustStore`].
pub(super) const FORMAT_VERSION: u64 = 1;

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
    /// Paired through the SHIP Pairing Service.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    paired_by_service: bool,
    /// The PIN sent to the peer (SHIP §13.4.4.3); absent in files written before PINs existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pin: Option<String>,
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
            paired_by_service: peer.paired_by_service,
            pin: peer.pin.as_ref().map(|pin| pin.reveal().to_owned()),
        }
    }

    fn into_peer(self) -> Result<PairedPeer, RecordError> {
        let ski = self.ski;
        let last_address = match self.last_address {
            None => None,
            Some(text) => Some(
                text.parse::<SocketAddr>()
                    .map_err(|source| RecordError::LastAddress { ski, text, source })?,
            ),
        };
        let last_seen = match self.last_seen {
            None => None,
            Some(secs) => Some(
                UNIX_EPOCH
                    .checked_add(Duration::from_secs(secs))
                    .ok_or(RecordError::LastSeen { ski, secs })?,
            ),
        };
        let pin = match self.pin {
            None => None,
            Some(text) => Some(Pin::new(&text).map_err(|source| RecordError::Pin { ski, source })?),
        };
        Ok(PairedPeer {
            ski: self.ski,
            ship_id: self.ship_id,
            name: self.name,
            last_address,
            last_seen,
            paired_by_service: self.paired_by_service,
            pin,
        })
    }
}

/// Why a peer's record in the file is not a pairing (said in [`TrustStoreError::Corrupt`]).
#[derive(Debug, thiserror::Error)]
enum RecordError {
    /// `last_address` is not a socket address.
    #[error("peer {ski}: last_address {text:?} is not an address: {source}")]
    LastAddress {
        ski: Ski,
        text: String,
        source: std::net::AddrParseError,
    },
    /// `last_seen` is beyond what the system time holds.
    #[error("peer {ski}: last_seen {secs} is out of range")]
    LastSeen { ski: Ski, secs: u64 },
    /// `pin` is not a SHIP PIN. The error names the peer, never the PIN.
    #[error("peer {ski}: pin is not valid: {source}")]
    Pin {
        ski: Ski,
        source: crate::protocol::PinError,
    },
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
/// is created anew (exclusively), fsynced and renamed over the file, and then the directory is
/// fsynced; a temporary file left by a crash is removed by the next write. Neither the file nor
/// its temporary file is ever opened through a symbolic link: a link at either path is refused
/// with [`TrustStoreError::Symlink`] and left alone, as is its target. A write happens only when
/// a record changes as the file keeps it (`last_seen` in whole seconds); [`FileTrustStore::writes`]
/// counts them. One process owns a store file: writers in that process are serialized by a mutex
/// (held only around the synchronous file operations), writers in different processes are not.
///
/// The file stays the truth even if the user edits it while the hub runs: every operation first
/// looks at the file's metadata (size, modification and change times, inode; one `stat`) and
/// parses the file again only when that changed since the store last read or wrote it;
/// otherwise it answers from the contents it holds in memory. After its own write the store
/// keeps what it wrote under the new file's metadata, so its own writes never cost a parse
/// ([`FileTrustStore::parses`] counts the parses). A lookup therefore costs one `stat` and a
/// map lookup whatever the number of pairings; only a change costs O(number of pairings)
/// (the whole file is rewritten), which is why the hub batches its updates and writes
/// `last_seen` rarely (see docs/performance.md for what that costs with 10,000 pairings). (Parsing on every call made each
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
    /// How many times the file was replaced.
    writes: AtomicU64,
    /// How many times the file was parsed.
    parses: AtomicU64,
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
            writes: AtomicU64::new(0),
            parses: AtomicU64::new(0),
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

    /// How many times this store replaced its file so far (a diagnostic: each replacement
    /// costs two fsyncs, of the temporary file and of the directory, which is what wears out an
    /// SD card). Changes that left every record as stored write nothing and are not counted.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// How many times this store read and parsed its file so far (a diagnostic): once when it
    /// is opened and then only when another process or an editor changed the file. Lookups
    /// and this store's own writes parse nothing.
    pub fn parses(&self) -> u64 {
        self.parses.load(Ordering::Relaxed)
    }

    /// Adds or replaces every record of `peers` with one write of the file (none if every
    /// record is already stored as given): what [`TrustStore::upsert`] does for one record, for
    /// importing many pairings at once (N upserts would rewrite the file N times).
    pub fn upsert_many(
        &self,
        peers: impl IntoIterator<Item = PairedPeer>,
    ) -> Result<(), TrustStoreError> {
        let _writer = lock(&self.write_lock);
        let stored = self.read()?;
        let mut updated = BTreeMap::clone(&stored);
        let mut changed = false;
        for peer in peers {
            let peer = as_stored(&peer);
            if updated.get(&peer.ski) != Some(&peer) {
                updated.insert(peer.ski, peer);
                changed = true;
            }
        }
        if changed { self.write(updated) } else { Ok(()) }
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
        if safe_file::is_symlink_refusal(&source) {
            return TrustStoreError::Symlink {
                path: path.to_owned(),
            };
        }
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
        match fs::symlink_metadata(&self.path) {
            Ok(metadata) if metadata.file_type().is_symlink() => Err(TrustStoreError::Symlink {
                path: self.path.clone(),
            }),
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
        let bytes = match safe_file::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Arc::new(BTreeMap::new())),
            Err(e) => return Err(Self::io_error(&self.path, "read", e)),
        };
        self.parses.fetch_add(1, Ordering::Relaxed);
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
            let peer = record
                .into_peer()
                .map_err(|error| self.corrupt(error.to_string()))?;
            if peers.insert(ski, peer).is_some() {
                return Err(self.corrupt(format!("peer {ski} is listed twice")));
            }
        }
        Ok(peers)
    }

    /// Replaces the file with `peers` (records as [`as_stored`] keeps them), atomically (see the
    /// type's documentation), and keeps `peers` as the contents of the new file.
    fn write(&self, peers: BTreeMap<Ski, PairedPeer>) -> Result<(), TrustStoreError> {
        let file = FileV1 {
            version: FORMAT_VERSION,
            peers: peers.values().map(RecordV1::from_peer).collect(),
        };
        let mut bytes = serde_json::to_vec_pretty(&file)
            .map_err(|e| Self::io_error(&self.path, "encode", io::Error::other(e)))?;
        bytes.push(b'\n');

        let temp = self.temp_path();
        let created = Self::write_synced(&temp, &bytes);
        if let Err(TrustStoreError::Symlink { .. }) = created {
            // Not ours: leave the link alone.
            return created.map(drop);
        }
        let result = created
            .and_then(|file| {
                fs::rename(&temp, &self.path).map_err(|e| Self::io_error(&temp, "rename", e))?;
                Ok(file)
            })
            .and_then(|file| {
                safe_file::sync_parent(&self.path)
                    .map_err(|e| Self::io_error(&self.path, "sync the directory of", e))?;
                Ok(file)
            });
        self.writes.fetch_add(1, Ordering::Relaxed);
        // What was written stays the contents in memory, under the stamp of the file just
        // written, taken from the open file itself after the rename (which changes its ctime):
        // if anyone replaced the path since, the path's stamp differs (another inode) and the
        // next call parses their file. Without this, every write cost the next lookup a parse
        // of the whole file (docs/performance.md).
        *lock(&self.cache) = match &result {
            Ok(file) => file
                .metadata()
                .ok()
                .map(|metadata| (FileStamp::of(&metadata), Arc::new(peers))),
            Err(_) => None,
        };
        let result = result.map(drop);
        if result.is_err() {
            // Best effort: the old file is intact; do not leave a half-written temporary behind
            // (removing a path never follows a link).
            let _ = fs::remove_file(&temp);
        }
        result
    }

    /// Writes `bytes` into a new file `temp` (mode 0600; never through a symbolic link) and
    /// fsyncs it; returns it still open.
    fn write_synced(temp: &Path, bytes: &[u8]) -> Result<fs::File, TrustStoreError> {
        let mut file =
            safe_file::create_new(temp, 0o600).map_err(|e| Self::io_error(temp, "create", e))?;
        file.write_all(bytes)
            .map_err(|e| Self::io_error(temp, "write", e))?;
        file.sync_all()
            .map_err(|e| Self::io_error(temp, "sync", e))?;
        Ok(file)
    }
}

/// `peer` as the file keeps it: `last_seen` in whole seconds, earlier than the epoch as the
/// epoch. Comparing at this precision is what keeps an unchanged record from being written
/// again.
fn as_stored(peer: &PairedPeer) -> PairedPeer {
    let mut peer = peer.clone();
    peer.last_seen = peer.last_seen.map(|t| {
        UNIX_EPOCH + Duration::from_secs(t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()))
    });
    peer
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
        let peer = as_stored(&peer);
        if peers.get(&peer.ski) == Some(&peer) {
            return Ok(());
        }
        let mut peers = BTreeMap::clone(&peers);
        peers.insert(peer.ski, peer);
        self.write(peers)
    }

    /// One read and at most one write for the whole batch, under the same lock as `remove`.
    fn update_existing(
        &self,
        skis: &[Ski],
        update: &mut dyn FnMut(&mut PairedPeer),
    ) -> Result<(), TrustStoreError> {
        let _writer = lock(&self.write_lock);
        let stored = self.read()?;
        let mut peers = BTreeMap::clone(&stored);
        let mut changed = false;
        for ski in skis {
            if let Some(record) = peers.get_mut(ski) {
                let mut updated = record.clone();
                update(&mut updated);
                updated.ski = *ski;
                let updated = as_stored(&updated);
                if updated != *record {
                    *record = updated;
                    changed = true;
                }
            }
        }
        if changed { self.write(peers) } else { Ok(()) }
    }

    fn remove(&self, ski: &Ski) -> Result<bool, TrustStoreError> {
        let _writer = lock(&self.write_lock);
        let peers = self.read()?;
        if !peers.contains_key(ski) {
            return Ok(false);
        }
        let mut peers = BTreeMap::clone(&peers);
        peers.remove(ski);
        self.write(peers)?;
        Ok(true)
    }
}
