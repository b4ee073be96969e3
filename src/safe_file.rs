//! Opening the files ship-hub keeps (identity, trust store and their temporary files) without
//! ever following a symbolic link.
//!
//! Whoever can plant a symbolic link where ship-hub writes a temporary file could otherwise have
//! the private key written into a file of their choosing, or have an unrelated file truncated.
//! So every open here refuses a link in the last path component (`O_NOFOLLOW` on Unix), and a
//! temporary file is always a new file (`O_EXCL`): a stale regular file left by a crash is
//! removed first (unlinking removes a link itself, never its target), anything else in its place
//! is refused.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// The marker inside an [`io::Error`] for a path that is a symbolic link and was not followed.
#[derive(Debug)]
struct SymlinkRefused;

impl std::fmt::Display for SymlinkRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refusing to follow a symbolic link")
    }
}

impl std::error::Error for SymlinkRefused {}

fn symlink_refused() -> io::Error {
    io::Error::other(SymlinkRefused)
}

/// Whether `error` says that a path was a symbolic link that was not followed (found before
/// opening, or `ELOOP` from an `O_NOFOLLOW` open that raced with its creation).
pub(crate) fn is_symlink_refusal(error: &io::Error) -> bool {
    #[cfg(unix)]
    if error.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) {
        return true;
    }
    error
        .get_ref()
        .is_some_and(|inner| inner.is::<SymlinkRefused>())
}

/// Adds `O_NOFOLLOW` on Unix.
fn no_follow(options: &mut OpenOptions) -> &mut OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // The flag's bits fit in an i32 on every Unix (it is a small positive constant).
        options.custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    options
}

/// Opens (creating it with mode 0600 if needed) the lock file at `path`, never through a
/// symbolic link, and takes an exclusive `flock` on it, waiting for another holder. The lock is
/// held until the returned file is dropped. A `flock` belongs to the open file, so two handles
/// of one process exclude each other too: never take it twice on one path in one call chain.
pub(crate) fn lock_exclusive(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = no_follow(&mut options).open(path)?;
    file.lock()?;
    Ok(file)
}

/// Whether `path` itself (not what it may point to) is a symbolic link. A missing path is not.
pub(crate) fn is_symlink(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(metadata) => Ok(metadata.file_type().is_symlink()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `path` exists as a directory entry of its own (a dangling link exists too).
pub(crate) fn entry_exists(path: &Path) -> io::Result<bool> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Opens `path` for reading, refusing a symbolic link.
pub(crate) fn open_read(path: &Path) -> io::Result<File> {
    if is_symlink(path)? {
        return Err(symlink_refused());
    }
    no_follow(OpenOptions::new().read(true)).open(path)
}

/// Reads the whole of `path`, refusing a symbolic link.
pub(crate) fn read(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    open_read(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Creates `path` as a new file with `mode` (Unix permissions, applied regardless of the umask)
/// for writing. A regular file already there (a temporary file left by a crash) is removed
/// first; a symbolic link or anything else that is not a regular file is refused and left
/// alone. The creation itself is exclusive and does not follow links, so a link planted between
/// the check and the creation makes it fail rather than be followed.
pub(crate) fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.file_type().is_symlink() => return Err(symlink_refused()),
        Ok(metadata) if metadata.is_file() => fs::remove_file(path)?,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "something that is not a regular file is in the way",
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let file = no_follow(&mut options).open(path)?;
    #[cfg(unix)]
    {
        // The mode given to open() is filtered by the umask.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    Ok(file)
}

/// Fsyncs the directory holding `path`, which makes a rename into it durable (on POSIX file
/// systems the new directory entry is only on disk once the directory itself is synced).
pub(crate) fn sync_parent(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_planted_link_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "precious").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let error = create_new(&link, 0o600).unwrap_err();
        assert!(is_symlink_refusal(&error), "{error:?}");
        let error = read(&link).unwrap_err();
        assert!(is_symlink_refusal(&error), "{error:?}");
        assert_eq!(fs::read_to_string(&target).unwrap(), "precious");
        assert!(is_symlink(&link).unwrap());
    }

    #[test]
    fn a_stale_regular_file_is_replaced_with_the_mode_asked_for() {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stale.tmp");
        fs::write(&path, "left by a crash").unwrap();
        create_new(&path, 0o600).unwrap().write_all(b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn an_o_nofollow_open_of_a_link_is_a_refusal() {
        let dir = tempfile::tempdir().unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &link).unwrap();
        // Bypass the check before the open: the flag alone must refuse.
        let error = no_follow(OpenOptions::new().write(true).create(true))
            .open(&link)
            .unwrap_err();
        assert!(is_symlink_refusal(&error), "{error:?}");
        assert!(!dir.path().join("nowhere").exists());
    }
}
