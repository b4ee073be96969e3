//! The data directory: where the identity, the pairings, the locks and the control socket live.
//!
//! ```text
//! <data dir>/cert.pem, key.pem     this gateway's identity (key mode 0600)
//! <data dir>/pairings.json         the trust store (FileTrustStore format, version 1)
//! <data dir>/.pairings.json.lock   advisory lock around every trust-store change
//! <data dir>/gateway.lock          held by the running gateway for its whole life
//! <data dir>/control.sock          the running gateway's control socket (mode 0600)
//! ```

use std::fs;
use std::path::{Path, PathBuf};

use ship_hub::identity::{CertificateSubject, Identity};

use crate::error::GatewayError;
use crate::store::LockedTrustStore;

/// The default data directory: `/var/lib/ship-gateway` for a system service (root), otherwise
/// `$XDG_DATA_HOME/ship-gateway` or `~/.local/share/ship-gateway`.
pub(crate) fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/ship-gateway");
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("ship-gateway");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/ship-gateway"),
        None => PathBuf::from("ship-gateway-data"),
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// A checked data directory.
#[derive(Debug, Clone)]
pub(crate) struct DataDir {
    path: PathBuf,
}

impl DataDir {
    /// Uses `path` (or the default), creating it (mode 0700) when `create` and it is missing.
    /// Fails when it is not a directory or cannot be read.
    pub(crate) fn open(path: Option<PathBuf>, create: bool) -> Result<DataDir, GatewayError> {
        let path = path.unwrap_or_else(default_data_dir);
        let error = |reason: String| GatewayError::DataDir {
            path: path.clone(),
            reason,
        };
        match fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(error("exists but is not a directory".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                use std::os::unix::fs::DirBuilderExt;
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&path)
                    .map_err(|e| error(format!("cannot create it: {e}")))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(error(
                    "does not exist (run `ship-gateway run` or `ship-gateway ski` once)".into(),
                ));
            }
            Err(e) => return Err(error(e.to_string())),
        }
        fs::read_dir(&path).map_err(|e| error(format!("cannot read it: {e}")))?;
        Ok(DataDir { path })
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The identity, created on first use.
    pub(crate) fn identity(&self, subject: &CertificateSubject) -> Result<Identity, GatewayError> {
        Identity::load_or_create(&self.path, subject).map_err(|source| GatewayError::Identity {
            dir: self.path.clone(),
            source,
        })
    }

    /// The identity if one exists (never creates one).
    pub(crate) fn existing_identity(&self) -> Result<Option<Identity>, GatewayError> {
        Identity::load_existing(&self.path).map_err(|source| GatewayError::Identity {
            dir: self.path.clone(),
            source,
        })
    }

    /// The trust store, checked once (a corrupt file is an error, never overwritten).
    pub(crate) fn trust_store(&self) -> Result<LockedTrustStore, GatewayError> {
        Ok(LockedTrustStore::open(
            self.path.join("pairings.json"),
            self.path.join(".pairings.json.lock"),
        )?)
    }

    /// The lock the running gateway holds.
    pub(crate) fn gateway_lock_path(&self) -> PathBuf {
        self.path.join("gateway.lock")
    }

    /// The running gateway's control socket.
    pub(crate) fn control_path(&self) -> PathBuf {
        self.path.join("control.sock")
    }
}

/// The subject written into a new certificate.
pub(crate) fn subject(name: &str, brand: &str) -> CertificateSubject {
    CertificateSubject {
        common_name: name.to_owned(),
        organization: brand.to_owned(),
        country: "DE".into(),
    }
}
