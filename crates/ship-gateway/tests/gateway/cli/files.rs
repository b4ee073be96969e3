//! The `ship-gateway` process and its data directory as an attacker with write access to it
//! (or to files in it) would find them: an insecure directory is refused naming the fix, and
//! no file is ever written or read through a planted symbolic link.

use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;

use crate::gateway_support::*;

const VICTIM_TEXT: &str = "someone else's file";

/// A data dir holding a link `name` to a file `victim` outside it.
fn planted(tmp: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = tmp.join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let victim = tmp.join("victim");
    std::fs::write(&victim, VICTIM_TEXT).unwrap();
    symlink(&victim, dir.join(name)).unwrap();
    (dir, victim)
}

#[test]
fn a_world_writable_data_dir_is_refused_with_the_fix() {
    let tmp = tempdir();
    let dir = tmp.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    for args in [&["ski"][..], &["pair", OTHER_SKI], &["list"]] {
        let output = gateway(&dir, args);
        assert_one_line_error(&output, 1, &format!("chmod 700 {}", dir.display()));
    }
    assert!(!dir.join("key.pem").exists());
    assert!(!dir.join("pairings.json").exists());
}

#[test]
fn links_planted_in_the_data_dir_are_never_followed() {
    for (name, args) in [
        ("key.pem.tmp", &["ski"][..]),
        ("cert.pem.tmp", &["ski"]),
        ("key.pem", &["ski"]),
        ("cert.pem", &["ski"]),
        (".pairings.json.tmp", &["pair", OTHER_SKI]),
        ("pairings.json", &["pair", OTHER_SKI]),
        (".pairings.json.lock", &["pair", OTHER_SKI]),
    ] {
        let tmp = tempdir();
        let (dir, victim) = planted(tmp.path(), name);
        let output = gateway(&dir, args);
        assert_one_line_error(&output, 1, "symbolic link");
        assert_one_line_error(&output, 1, name);
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            VICTIM_TEXT,
            "{name}: the link's target was changed"
        );
        assert!(
            std::fs::symlink_metadata(dir.join(name))
                .unwrap()
                .file_type()
                .is_symlink(),
            "{name}: the link was replaced"
        );
    }
}
