//! The data directory: where the identity, the pairings, the locks and the control socket live.
//!
//! ```text
//! <data dir>/cert.pem, key.pem     this gateway's identity (key mode 0600)
//! <data dir>/pairings.json         the trust store (FileTrustStore format, version 1)
//! <data dir>/.pairings.json.lock   advisory lock around every trust-store change
//! <data dir>/gateway.lock          held by the running gateway for its whole life
//! <data dir>/control.sock          the running gateway's control socket (mode 0600)
//! <data dir>/ship_id               this gateway's SHIP ID, chosen at the first `run`
//! <data dir>/http-token            the HTTP API's own token (mode 0600), made at the first
//!                                  `run --http` without `http_token_file`
//! <data dir>/pairing-request       our SHIP Pairing Service request (mode 0600), if one was made
//! ```
//!
//! The directory must belong to the running user and be writable by nobody else; none of these
//! files (nor their temporary files) is ever opened through a symbolic link.
//!
//! One exception: root may *read* the data dir of another user (the packaged service's
//! `/var/lib/ship-gateway`, owned by `ship-gateway`): `ski`, `list`, `qr`, `status` and the
//! commands that only talk to the running gateway work, and nothing is written there (a file
//! root created would be unreadable for the service). Whatever would write (`run`, creating an
//! identity, storing a SHIP ID, `pair` without a running gateway) is refused with the command to
//! run instead, as the directory's owner (`sudo -u ship-gateway ship-gateway …`).

use std::fs;
use std::path::{Path, PathBuf};

use ship_hub::ShipId;
use ship_hub::identity::{CertificateSubject, Identity};

use crate::error::GatewayError;
use crate::store::LockedTrustStore;

/// The system data directory (the Debian package's `StateDirectory`).
const SYSTEM_DATA_DIR: &str = "/var/lib/ship-gateway";

/// The default data directory: `$STATE_DIRECTORY` under systemd (`StateDirectory=`),
/// `/var/lib/ship-gateway` as root or as the user that owns it (the packaged service's
/// `ship-gateway` user), otherwise `$XDG_DATA_HOME/ship-gateway` or `~/.local/share/ship-gateway`.
pub(crate) fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("STATE_DIRECTORY").filter(|d| !d.is_empty()) {
        // systemd may list several directories separated by ':'; the first is ours.
        let first = dir
            .to_string_lossy()
            .split(':')
            .next()
            .unwrap_or("")
            .to_owned();
        if !first.is_empty() {
            return PathBuf::from(first);
        }
    }
    if is_root() || owned_by_me(Path::new(SYSTEM_DATA_DIR)) {
        return PathBuf::from(SYSTEM_DATA_DIR);
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("ship-gateway");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/ship-gateway"),
        None => PathBuf::from("ship-gateway-data"),
    }
}

/// The name of the user with `uid` in `/etc/passwd`, if it has one.
pub(crate) fn user_name(uid: u32) -> Option<String> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let found: u32 = fields.nth(1)?.parse().ok()?;
        (found == uid && !name.is_empty()).then(|| name.to_owned())
    })
}

/// How a person reaches the gateway that runs on `dir` from a shell: `ship-gateway`, with
/// `sudo -u USER` when it runs as a service user (under systemd), and with `--data-dir DIR`
/// when `dir` is not that user's default. Used in the hints the gateway prints ("run `… pair
/// SKI`").
pub(crate) fn command_for(dir: &Path) -> String {
    let uid = rustix::process::geteuid().as_raw();
    let service = std::env::var_os("INVOCATION_ID").is_some()
        || std::env::var_os("STATE_DIRECTORY").is_some();
    let mut command = match user_name(uid) {
        Some(user) if service && uid != 0 => format!("sudo -u {user} ship-gateway"),
        _ => "ship-gateway".to_owned(),
    };
    let same = |a: &Path, b: &Path| match (fs::canonicalize(a), fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    // The service user's own default is /var/lib/ship-gateway (it owns it).
    let default = if service {
        PathBuf::from(SYSTEM_DATA_DIR)
    } else {
        default_data_dir()
    };
    if !same(dir, &default) {
        command.push_str(&format!(" --data-dir {}", dir.display()));
    }
    command
}

fn owned_by_me(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(path), fs::metadata("/proc/self")) {
        (Ok(dir), Ok(me)) => dir.is_dir() && dir.uid() == me.uid(),
        _ => false,
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
    /// Root reads the data dir of this other user: nothing may be written there.
    foreign: Option<String>,
}

impl DataDir {
    /// Uses `path` (or the default), creating it (mode 0700) when `create` and it is missing.
    /// Fails when it is not a directory or cannot be read, and refuses it
    /// ([`GatewayError::InsecureDataDir`]) when it is not owned by the running user or is
    /// writable by its group or by everyone.
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
        let foreign = check_private(&path)?;
        Ok(DataDir { path, foreign })
    }

    /// When root reads another user's data dir: an error saying that `what` would write there,
    /// and the command to run instead as its owner.
    pub(crate) fn writable(&self, what: &str) -> Result<(), GatewayError> {
        match &self.foreign {
            None => Ok(()),
            Some(_) => Err(self.refusal(what)),
        }
    }

    fn refusal(&self, what: &str) -> GatewayError {
        let owner = self.foreign.as_deref().unwrap_or("its owner");
        GatewayError::DataDir {
            path: self.path.clone(),
            reason: format!(
                "belongs to the user {owner}, and {what} would write there as root (the files \
                 would then be unreadable for {owner}); run it as {owner}: `{}`",
                as_owner(owner)
            ),
        }
    }

    /// Root reads another user's data dir (nothing may be written there).
    pub(crate) fn is_foreign(&self) -> bool {
        self.foreign.is_some()
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The identity, created on first use (read only, never created, in another user's data
    /// dir read by root).
    pub(crate) fn identity(&self, subject: &CertificateSubject) -> Result<Identity, GatewayError> {
        if self.is_foreign() {
            return match self.existing_identity()? {
                Some(identity) => Ok(identity),
                None => Err(self.refusal("creating the identity")),
            };
        }
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

    /// This gateway's SHIP ID: the one stored in `ship_id`, or, on the first run, `given` (else
    /// `derived`), which is then stored. A `given` one that differs from the stored one is an
    /// error naming both: peers pinned the stored one and would close with 4450.
    pub(crate) fn ship_id(
        &self,
        given: Option<&ShipId>,
        derived: impl FnOnce() -> Result<ShipId, GatewayError>,
    ) -> Result<ShipId, GatewayError> {
        let path = self.path.join("ship_id");
        let error = |reason: String| GatewayError::DataDir {
            path: path.clone(),
            reason,
        };
        match read_no_follow(&path) {
            Ok(text) => {
                let stored: ShipId = text.trim().parse().map_err(|e| {
                    error(format!("is not a valid SHIP ID ({e}); fix or remove it"))
                })?;
                match given {
                    Some(given) if *given != stored => Err(GatewayError::Setting(format!(
                        "SHIP ID {given:?} differs from the stored SHIP ID {:?} ({}): \
                         paired devices know this gateway by the stored one; drop the \
                         ship_id setting, or remove that file to change it (every peer must \
                         then be paired again)",
                        stored.as_str(),
                        path.display(),
                        given = given.as_str(),
                    ))),
                    _ => Ok(stored),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let id = match given {
                    Some(id) => id.clone(),
                    None => derived()?,
                };
                if self.is_foreign() {
                    // Read by root: the SHIP ID the owner's first `run` will store, unstored.
                    return Ok(id);
                }
                write_new(
                    &self.path.join(".ship_id.tmp"),
                    &path,
                    &format!("{}\n", id.as_str()),
                )
                .map_err(|e| error(format!("cannot store the SHIP ID: {e}")))?;
                Ok(id)
            }
            Err(e) => Err(error(format!("cannot read it: {e}"))),
        }
    }

    /// The HTTP API's own token, used when no `http_token_file` is given: read from
    /// `http-token`, or made there (256 random bits as 64 hex digits, mode 0600) when missing.
    /// Returns the token and the file.
    pub(crate) fn http_token(&self) -> Result<(String, PathBuf), GatewayError> {
        let path = self.path.join("http-token");
        let error = |reason: String| GatewayError::DataDir {
            path: path.clone(),
            reason,
        };
        match read_no_follow(&path) {
            Ok(text) => Ok((text.trim().to_owned(), path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let token = crate::api::auth::random_hex(32)
                    .map_err(|()| error("no random numbers from the system".into()))?;
                write_new(
                    &self.path.join(".http-token.tmp"),
                    &path,
                    &format!("{token}\n"),
                )
                .map_err(|e| error(format!("cannot store the HTTP token: {e}")))?;
                Ok((token, path))
            }
            Err(e) => Err(error(format!("cannot read it: {e}"))),
        }
    }

    /// The running gateway's control socket.
    pub(crate) fn control_path(&self) -> PathBuf {
        self.path.join("control.sock")
    }

    /// Where the SHIP Pairing Service's replay guard is kept: `pairing-replay`, one honoured
    /// digest per line (64 hex digits), oldest first.
    pub(crate) fn replay_history_path(&self) -> PathBuf {
        self.path.join("pairing-replay")
    }

    /// Where the gateway's own SHIP Pairing Service request is kept (`pairing-request`, mode
    /// 0600; see `crate::pairing_request`).
    pub(crate) fn pairing_request_path(&self) -> PathBuf {
        self.path.join("pairing-request")
    }

    /// The digests stored in [`DataDir::replay_history_path`] (none if the file does not exist).
    pub(crate) fn replay_history(&self) -> Result<Vec<[u8; 32]>, GatewayError> {
        let path = self.replay_history_path();
        let text = match read_no_follow(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(GatewayError::DataDir {
                    path,
                    reason: format!("cannot read it: {e}"),
                });
            }
        };
        text.lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(|line| {
                line.parse::<ship_hub::pairing_service::Fingerprint>()
                    .map(|digest| *digest.as_bytes())
                    .map_err(|_| GatewayError::DataDir {
                        path: path.clone(),
                        reason: "is corrupt (a line is not 64 uppercase hex digits); fix or \
                                 remove it"
                            .into(),
                    })
            })
            .collect()
    }
}

/// Replaces the replay-guard file at `path` (crash-safe) with `entries`.
pub(crate) fn store_replay_history(path: &Path, entries: &[[u8; 32]]) -> std::io::Result<()> {
    let text: String = entries
        .iter()
        .map(|digest| {
            format!(
                "{}\n",
                ship_hub::pairing_service::Fingerprint::from_bytes(*digest)
            )
        })
        .collect();
    write_new(&path.with_file_name(".pairing-replay.tmp"), path, &text)
}

/// Reads `path`, refusing to follow a symbolic link there (`ELOOP`).
pub(crate) fn read_no_follow(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut text = String::new();
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?
        .read_to_string(&mut text)?;
    Ok(text)
}

/// Writes `text` to `path` crash-safely: into `temporary`, created new (`O_EXCL`, so never
/// through a link; one left by a crash is removed first), fsynced, then renamed over `path`.
pub(crate) fn write_new(temporary: &Path, path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match fs::remove_file(temporary) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    fs::rename(temporary, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// `sudo -u OWNER ship-gateway <the arguments of this command>`, quoted for a shell.
fn as_owner(owner: &str) -> String {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .map(|arg| {
            if !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./:=@,+".contains(c))
            {
                arg
            } else {
                format!("'{}'", arg.replace('\'', "'\\''"))
            }
        })
        .collect();
    format!("sudo -u {owner} ship-gateway {}", args.join(" "))
        .trim_end()
        .to_owned()
}

/// Refuses a directory that someone other than the running user could change: one owned by
/// another user, or writable by its group or by everyone. Whoever can write into the data dir
/// can replace files there, or plant links where the gateway writes (the library never follows
/// them, but the pairings and the identity would still be theirs to change).
///
/// Root may read another user's directory (`Some(owner)`: nothing is written there); anyone
/// else is told to run the command as its owner, never to take the directory over.
fn check_private(path: &Path) -> Result<Option<String>, GatewayError> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::metadata(path).map_err(|e| GatewayError::DataDir {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let me = rustix::process::geteuid().as_raw();
    let shown = path.display();
    let insecure = |problem: String, fix: String| GatewayError::InsecureDataDir {
        path: path.to_owned(),
        problem,
        fix,
    };
    let mut foreign = None;
    if meta.uid() != me {
        let owner = user_name(meta.uid()).unwrap_or_else(|| meta.uid().to_string());
        if me != 0 {
            return Err(insecure(
                format!(
                    "belongs to the user {owner} (uid {}), not to the running user (uid {me})",
                    meta.uid()
                ),
                as_owner(&owner),
            ));
        }
        foreign = Some(owner);
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "its group and by everyone",
            (true, false) => "its group",
            _ => "everyone",
        };
        return Err(insecure(
            format!("is writable by {who} (mode {mode:o})"),
            format!("chmod 700 {shown}"),
        ));
    }
    Ok(foreign)
}

/// The subject written into a new certificate.
pub(crate) fn subject(name: &str, brand: &str) -> CertificateSubject {
    CertificateSubject {
        common_name: name.to_owned(),
        organization: brand.to_owned(),
        country: "DE".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn refusal(path: &Path) -> (String, String) {
        match DataDir::open(Some(path.to_owned()), false) {
            Err(GatewayError::InsecureDataDir { problem, fix, .. }) => (problem, fix),
            other => panic!("{}: {other:?}", path.display()),
        }
    }

    #[test]
    fn a_group_or_world_writable_data_dir_is_refused_naming_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        for (mode, who) in [
            (0o777, "its group and by everyone"),
            (0o770, "its group"),
            (0o702, "everyone"),
        ] {
            fs::create_dir_all(&dir).unwrap();
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            let (problem, fix) = refusal(&dir);
            assert!(problem.contains(who), "{mode:o}: {problem}");
            assert_eq!(fix, format!("chmod 700 {}", dir.display()));
            let message = DataDir::open(Some(dir.clone()), true)
                .unwrap_err()
                .to_string();
            assert!(message.contains("chmod 700"), "{message}");
        }
        for mode in [0o700, 0o755, 0o750] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            DataDir::open(Some(dir.clone()), false).unwrap();
        }
    }

    /// Finding (issue 23): the fix offered for a data dir of another user was `chown <me> …`:
    /// as root on the packaged service's directory that is `chown 0 /var/lib/ship-gateway`,
    /// which breaks the service. Root reads such a directory (and writes nothing there); anyone
    /// else is told to run the command as its owner.
    #[test]
    fn a_data_dir_of_another_user_is_read_by_root_and_otherwise_refused_naming_its_owner() {
        let me = rustix::process::geteuid().as_raw();
        let tmp = tempfile::tempdir().unwrap();
        if me == 0 {
            let theirs = tmp.path().join("theirs");
            fs::create_dir(&theirs).unwrap();
            fs::set_permissions(&theirs, fs::Permissions::from_mode(0o700)).unwrap();
            let dir = match std::os::unix::fs::chown(&theirs, Some(65534), None) {
                Ok(()) => theirs,
                // Root of a user namespace that maps no other user (`unshare --map-root-user`:
                // the test command of a non-root user). There, files of unmapped users show as
                // the overflow user 65534, and `/` is one of them.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    use std::os::unix::fs::MetadataExt;
                    let owner = fs::metadata("/").unwrap().uid();
                    assert_ne!(owner, me, "a user namespace that maps only root, as root");
                    PathBuf::from("/")
                }
                Err(e) => panic!("chown: {e}"),
            };
            let before = fs::read_dir(&dir).unwrap().count();
            let opened = DataDir::open(Some(dir.clone()), false).unwrap();
            assert!(opened.is_foreign());
            let refused = opened.writable("pair").unwrap_err().to_string();
            assert!(
                refused.contains("sudo -u") && !refused.contains("chown"),
                "{refused}"
            );
            let identity = opened.identity(&subject("x", "y")).unwrap_err().to_string();
            assert!(identity.contains("sudo -u"), "{identity}");
            assert_eq!(
                fs::read_dir(&dir).unwrap().count(),
                before,
                "nothing written"
            );
        } else {
            // `/` belongs to root.
            let (problem, fix) = refusal(Path::new("/"));
            assert!(problem.contains("belongs to the user root"), "{problem}");
            assert!(fix.starts_with("sudo -u root ship-gateway"), "{fix}");
        }
    }

    #[test]
    fn a_new_data_dir_is_private_and_accepted() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        DataDir::open(Some(dir.clone()), true).unwrap();
        let mode = fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
