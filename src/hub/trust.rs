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
//! The methods are synchronous and may touch the disk. The hub reads the store once, at start
//! ([`TrustStore::load_all`]), into an index in memory; from then on the hub's pairings are that
//! index, and every change (the application's [`crate::hub::Hub::pair`], `unpair`, `approve`,
//! `set_peer_pin`; the hub's own decisions; what it learns about a peer) is written back by one
//! background task, in order, through `tokio::task::spawn_blocking`. Admission, routing and
//! approval never touch the disk. So while a hub runs, change its pairings through the hub, not
//! in the store behind its back: a change written to the store directly is not seen until the
//! next start (the gateway's command line goes through the running gateway for that reason).

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::protocol::Pin;
use crate::sync::lock;
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
    /// Paired through the SHIP Pairing Service (the control unit the energy-manager side
    /// trusted from a verified request; at most one at a time). Default `false`.
    pub paired_by_service: bool,
    /// The PIN to send when the peer requires one (SHIP §13.4.4.3): given by the user, or
    /// stored once the peer accepted a PIN the application entered. Redacted in `Debug`.
    pub pin: Option<Pin>,
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
            paired_by_service: false,
            pin: None,
        }
    }

    /// With the SHIP ID the peer is known by.
    #[must_use]
    pub fn with_ship_id(mut self, ship_id: ShipId) -> Self {
        self.ship_id = Some(ship_id);
        self
    }

    /// With a human name.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// With an address to dial the peer at ([`crate::hub::Hub::pair`] dials it as a configured
    /// address).
    #[must_use]
    pub fn with_address(mut self, address: SocketAddr) -> Self {
        self.last_address = Some(address);
        self
    }

    /// With the PIN to send when the peer requires one.
    #[must_use]
    pub fn with_pin(mut self, pin: Pin) -> Self {
        self.pin = Some(pin);
        self
    }

    /// Takes into this (stored) record what `given` sets, as [`crate::hub::Hub::pair`] does:
    /// each field that is set replaces the stored one, an empty one keeps it;
    /// `paired_by_service` stays set once set. The SKI stays this record's.
    pub fn merge(&mut self, given: PairedPeer) {
        let PairedPeer {
            ski: _,
            ship_id,
            name,
            last_address,
            last_seen,
            paired_by_service,
            pin,
        } = given;
        if ship_id.is_some() {
            self.ship_id = ship_id;
        }
        if name.is_some() {
            self.name = name;
        }
        if last_address.is_some() {
            self.last_address = last_address;
        }
        if last_seen.is_some() {
            self.last_seen = last_seen;
        }
        self.paired_by_service |= paired_by_service;
        if pin.is_some() {
            self.pin = pin;
        }
    }
}

impl From<Ski> for PairedPeer {
    /// A pairing with nothing known yet but the SKI ([`PairedPeer::new`]).
    fn from(ski: Ski) -> Self {
        PairedPeer::new(ski)
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

    /// Changes stored pairings in place: calls `update` on the stored record of every SKI in
    /// `skis` that is paired, and keeps what it leaves there (it must not change the SKI).
    ///
    /// The whole call is one step that no other change to the store can interleave with: a
    /// [`TrustStore::remove`] happens wholly before it (the SKI is then skipped) or wholly after
    /// it. A SKI that is not stored is skipped, so an update never re-creates a pairing that was
    /// removed (an unpair is never undone by a late update). A store that persists its records
    /// writes only when a record changed as it stores it ([`FileTrustStore`] compares
    /// `last_seen` in whole seconds, as it keeps it), at most once per call.
    ///
    /// This is how the hub applies its background updates (last address, last seen, SHIP ID),
    /// in batches. (A `get` followed by an `upsert` is no substitute: a removal between the two
    /// would be undone.)
    fn update_existing(
        &self,
        skis: &[Ski],
        update: &mut dyn FnMut(&mut PairedPeer),
    ) -> Result<(), TrustStoreError>;
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
    /// The file (or its temporary file) is a symbolic link. Links are never followed, so that
    /// nobody who can plant one can have the store written into a file of their choosing; the
    /// link and its target were left untouched.
    #[error(
        "refusing to follow the symbolic link {}: the trust store and its temporary file must be \
         regular files (remove the link, and keep the directory writable only by its owner)",
        path.display()
    )]
    Symlink {
        /// The link.
        path: PathBuf,
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
    /// The same error once more, for a second waiter (`io::Error` is not `Clone`: its kind and
    /// message are kept).
    pub(crate) fn duplicate(&self) -> TrustStoreError {
        match self {
            TrustStoreError::Io {
                path,
                operation,
                source,
            } => TrustStoreError::Io {
                path: path.clone(),
                operation,
                source: io::Error::new(source.kind(), source.to_string()),
            },
            TrustStoreError::Corrupt { path, detail } => TrustStoreError::Corrupt {
                path: path.clone(),
                detail: detail.clone(),
            },
            TrustStoreError::Symlink { path } => TrustStoreError::Symlink { path: path.clone() },
            TrustStoreError::UnsupportedVersion { path, found } => {
                TrustStoreError::UnsupportedVersion {
                    path: path.clone(),
                    found: found.clone(),
                }
            }
        }
    }

    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            TrustStoreError::Io { path, .. }
            | TrustStoreError::Corrupt { path, .. }
            | TrustStoreError::UnsupportedVersion { path, .. }
            | TrustStoreError::Symlink { path } => path,
        }
    }
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

    /// Under the one lock that also guards `remove`.
    fn update_existing(
        &self,
        skis: &[Ski],
        update: &mut dyn FnMut(&mut PairedPeer),
    ) -> Result<(), TrustStoreError> {
        let mut peers = lock(&self.peers);
        for ski in skis {
            if let Some(record) = peers.get_mut(ski) {
                update(record);
                record.ski = *ski;
            }
        }
        Ok(())
    }
}

mod file;
pub(crate) mod writer;

use file::FORMAT_VERSION;
pub use file::FileTrustStore;

#[cfg(test)]
mod tests;
