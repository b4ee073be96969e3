//! Files that hold secrets: the PIN (`pin_file`), the SHIP Pairing Service secret
//! (`pairing_secret_file`) and the HTTP API's token (`http_token_file`). docs/gateway.md,
//! "Secrets".
//!
//! Such a file must not be readable or writable by every user: the gateway refuses to start
//! with one that is (mode `o+r` or `o+w`), with a one-line error naming the fix. Readable by its
//! group is fine, and is how the Debian package installs them (`root:ship-gateway`, mode
//! 0640): the service's group reads them, nobody else does. An error never shows the content.

use std::path::Path;

use crate::error::GatewayError;

/// Reads the secret file `path` (`what` names the setting in errors), refusing one that every
/// user may read or change.
pub(crate) fn read(path: &Path, what: &str) -> Result<String, GatewayError> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let mut file = std::fs::File::open(path).map_err(|source| GatewayError::Io {
        what: format!("reading {what} {}", path.display()),
        source,
    })?;
    // The mode of the file opened (a link is followed: /etc may link it elsewhere).
    let meta = file.metadata().map_err(|source| GatewayError::Io {
        what: format!("reading {what} {}", path.display()),
        source,
    })?;
    check_mode(path, what, meta.mode())?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|source| GatewayError::Io {
            what: format!("reading {what} {}", path.display()),
            source,
        })?;
    Ok(text)
}

/// Refuses a mode that lets every user read or change the file.
pub(crate) fn check_mode(path: &Path, what: &str, mode: u32) -> Result<(), GatewayError> {
    let mode = mode & 0o7777;
    if mode & 0o006 == 0 {
        return Ok(());
    }
    let how = match (mode & 0o004 != 0, mode & 0o002 != 0) {
        (true, true) => "readable and writable",
        (true, false) => "readable",
        _ => "writable",
    };
    Err(GatewayError::Setting(format!(
        "{what} {} is {how} by every user (mode {mode:o}): refusing to use a secret others can \
         see or change; fix it with `chmod o-rwx {}` (the service reads it as its user or group: \
         e.g. `chown root:ship-gateway` and mode 640)",
        path.display(),
        path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_secret_file_readable_or_writable_by_everyone_is_refused_naming_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pin");
        std::fs::write(&file, "SECRET-PIN").unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o640, true),
            (0o660, true),
            (0o644, false),
            (0o602, false),
            (0o604, false),
        ] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            let result = read(&file, "pin_file");
            match result {
                Ok(text) => {
                    assert!(ok, "mode {mode:o} accepted");
                    assert_eq!(text, "SECRET-PIN");
                }
                Err(error) => {
                    assert!(!ok, "mode {mode:o} refused: {error}");
                    let text = error.to_string();
                    assert!(
                        text.contains("pin_file")
                            && text.contains("chmod o-rwx")
                            && !text.contains("SECRET"),
                        "{text}"
                    );
                }
            }
        }
    }
}
