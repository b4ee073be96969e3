//! Process tests of the `ship-gateway` commands that do not need a running gateway, and of every
//! bad input: each asserts the exit status and the one-line error. Loopback only, `--no-mdns`.

mod gateway_support;

use std::net::TcpListener;

use gateway_support::*;
use serde_json::Value;

#[test]
fn ski_creates_the_identity_once_and_prints_the_same_ski_every_time() {
    let tmp = tempdir();
    let dir = tmp.path().join("fresh/nested");
    let first = ski_of(&dir);
    assert_eq!(first.len(), 40);
    assert!(
        first
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    assert_eq!(ski_of(&dir), first);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "key.pem is readable by others: {mode:o}");
    let json = gateway(&dir, &["--json", "ski"]);
    assert_ok(&json);
    let value: Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(value["ski"], first.as_str());
}

#[test]
fn pair_list_and_unpair_edit_the_store_when_no_gateway_runs() {
    let tmp = tempdir();
    let dir = tmp.path();
    let output = gateway(
        dir,
        &[
            "pair",
            "0101 0101 0101 0101 0101 0101 0101 0101 0101 0101",
            "--ship-id",
            "Wallbox-1",
            "--name",
            "Garage wallbox",
            "--address",
            "127.0.0.1:4712",
        ],
    );
    assert_ok(&output);
    assert!(stdout(&output).contains(OTHER_SKI));
    // A second pair with only a new name keeps the rest.
    assert_ok(&gateway(dir, &["pair", OTHER_SKI, "--name", "Wallbox"]));

    let list = gateway(dir, &["list"]);
    assert_ok(&list);
    let text = stdout(&list);
    assert!(
        text.contains(OTHER_SKI) && text.contains("Wallbox-1"),
        "{text}"
    );
    assert!(
        text.contains("127.0.0.1:4712") && text.contains("never"),
        "{text}"
    );
    let json = gateway(dir, &["--json", "list"]);
    assert_ok(&json);
    let rows: Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(rows[0]["ski"], OTHER_SKI);
    assert_eq!(rows[0]["ship_id"], "Wallbox-1");
    assert_eq!(rows[0]["name"], "Wallbox");
    assert_eq!(rows[0]["last_address"], "127.0.0.1:4712");
    assert_eq!(rows[0]["last_seen"], Value::Null);

    assert_ok(&gateway(dir, &["unpair", OTHER_SKI]));
    let json = gateway(dir, &["--json", "list"]);
    assert_eq!(stdout(&json).trim(), "[]");
    assert!(stdout(&gateway(dir, &["list"])).contains("no paired peers"));
}

#[test]
fn a_malformed_ski_is_a_one_line_usage_error() {
    let tmp = tempdir();
    for args in [
        &["pair", "xyz"][..],
        &["pair", "0101"][..],
        &["unpair", "g101010101010101010101010101010101010101"][..],
        &["send", "12345", "{}"][..],
    ] {
        let output = gateway(tmp.path(), args);
        assert_one_line_error(&output, 2, "SKI");
    }
    assert!(!tmp.path().join("pairings.json").exists());
}

#[test]
fn other_bad_arguments_are_one_line_usage_errors() {
    let tmp = tempdir();
    for (args, needle) in [
        (&["run", "--port", "70000"][..], "--port"),
        (&["discover", "--seconds", "soon"][..], "--seconds"),
        (&["pair", OTHER_SKI, "--ship-id", ""][..], "--ship-id"),
        (&["frobnicate"][..], "frobnicate"),
    ] {
        assert_one_line_error(&gateway(tmp.path(), args), 2, needle);
    }
}

#[test]
fn unpairing_a_peer_that_is_not_paired_fails() {
    let tmp = tempdir();
    assert_ok(&gateway(tmp.path(), &["pair", OTHER_SKI]));
    let before = std::fs::read(tmp.path().join("pairings.json")).unwrap();
    let output = gateway(
        tmp.path(),
        &["unpair", "0202020202020202020202020202020202020202"],
    );
    assert_one_line_error(&output, 1, "is not paired");
    assert_eq!(
        std::fs::read(tmp.path().join("pairings.json")).unwrap(),
        before
    );
}

#[test]
fn pairing_with_the_own_ski_is_refused() {
    let tmp = tempdir();
    let own = ski_of(tmp.path());
    assert_one_line_error(&gateway(tmp.path(), &["pair", &own]), 1, "own SKI");
    let peer = format!("{own}@127.0.0.1:4711");
    assert_one_line_error(
        &gateway(
            tmp.path(),
            &["run", "--no-mdns", "--port", "0", "--peer", &peer],
        ),
        1,
        "own SKI",
    );
}

#[test]
fn a_corrupt_trust_store_is_reported_and_never_overwritten() {
    let tmp = tempdir();
    let store = tmp.path().join("pairings.json");
    for content in [
        "",
        "{\"version\":1,\"peers\":[",
        "{\"version\":7,\"peers\":[]}",
    ] {
        std::fs::write(&store, content).unwrap();
        for args in [
            &["list"][..],
            &["pair", OTHER_SKI][..],
            &["unpair", OTHER_SKI][..],
            &["run", "--no-mdns", "--bind", "127.0.0.1", "--port", "0"][..],
        ] {
            let output = gateway(tmp.path(), args);
            assert_one_line_error(&output, 1, "pairings.json");
            assert_eq!(
                std::fs::read_to_string(&store).unwrap(),
                content,
                "{args:?}"
            );
        }
    }
}

#[test]
fn a_data_dir_that_is_not_a_directory_is_reported() {
    let tmp = tempdir();
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    for args in [
        &["ski"][..],
        &["list"][..],
        &["pair", OTHER_SKI][..],
        &["unpair", OTHER_SKI][..],
        &["send", OTHER_SKI, "{}"][..],
        &["run", "--no-mdns", "--port", "0"][..],
    ] {
        assert_one_line_error(&gateway(&file, args), 1, "not a directory");
    }
    // A data dir below a file cannot be created.
    assert_one_line_error(&gateway(&file.join("sub"), &["ski"]), 1, "Not a directory");
    // list and unpair do not create a missing data dir.
    let missing = tmp.path().join("missing");
    assert_one_line_error(&gateway(&missing, &["list"]), 1, "does not exist");
    assert!(!missing.exists());
}

#[test]
fn a_corrupt_or_half_identity_is_reported_and_kept() {
    let tmp = tempdir();
    let dir = tmp.path();
    ski_of(dir);
    std::fs::write(dir.join("cert.pem"), "garbage").unwrap();
    assert_one_line_error(&gateway(dir, &["ski"]), 1, "cert.pem");
    assert_one_line_error(
        &gateway(
            dir,
            &["run", "--no-mdns", "--bind", "127.0.0.1", "--port", "0"],
        ),
        1,
        "cert.pem",
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("cert.pem")).unwrap(),
        "garbage"
    );
    std::fs::remove_file(dir.join("cert.pem")).unwrap();
    assert_one_line_error(
        &gateway(dir, &["ski"]),
        1,
        "refusing to create a new identity",
    );
    assert!(!dir.join("cert.pem").exists());
}

#[test]
fn a_port_in_use_is_reported() {
    let tmp = tempdir();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = gateway(
        tmp.path(),
        &["run", "--no-mdns", "--bind", "127.0.0.1", "--port", &port],
    );
    assert_one_line_error(&output, 1, "in use");
    assert!(!tmp.path().join("control.sock").exists());
}

#[test]
fn bad_static_peers_and_config_files_are_reported() {
    let tmp = tempdir();
    let dir = tmp.path();
    for (peer, needle) in [
        ("nonsense", "SKI@HOST:PORT"),
        ("0101@127.0.0.1:1", "40 hex digits"),
        (&format!("{OTHER_SKI}@127.0.0.1")[..], "HOST:PORT"),
    ] {
        let output = gateway(dir, &["run", "--no-mdns", "--port", "0", "--peer", peer]);
        assert_one_line_error(&output, 1, needle);
    }
    let config = dir.join("gateway.toml");
    for (content, needle) in [
        ("port = \"many\"", "gateway.toml"),
        ("colour = 1", "colour"),
        (
            "[device]\nbrand = \"a brand name that is far longer than thirty-two bytes\"",
            "brand",
        ),
        ("[limits]\nmax_connections = 0", "max_connections"),
    ] {
        std::fs::write(&config, content).unwrap();
        let output = gateway(dir, &["run", "--config", config.to_str().unwrap()]);
        assert_one_line_error(&output, 1, needle);
    }
    let output = gateway(dir, &["run", "--config", "/nonexistent/gateway.toml"]);
    assert_one_line_error(&output, 1, "/nonexistent/gateway.toml");
}

#[test]
fn send_needs_a_running_gateway_and_a_json_payload() {
    let tmp = tempdir();
    ski_of(tmp.path());
    assert_one_line_error(
        &gateway(tmp.path(), &["send", OTHER_SKI, "{\"a\":1}"]),
        1,
        "no ship-gateway is running",
    );
    assert_one_line_error(
        &gateway(tmp.path(), &["send", OTHER_SKI, "not json"]),
        1,
        "not JSON",
    );
}

/// `pair --pin` stores the PIN a device requires with its pairing (SHIP PIN verification);
/// `list` says a PIN is stored, never which; a text that is no PIN is a one-line error that
/// does not repeat it, and stores nothing.
#[test]
fn pair_with_a_pin_stores_it_and_a_bad_pin_is_refused() {
    let tmp = tempdir();
    let dir = tmp.path();
    let output = gateway(dir, &["pair", OTHER_SKI, "--pin", "SECRET-1"]);
    assert_one_line_error(&output, 1, "--pin");
    assert!(!String::from_utf8_lossy(&output.stderr).contains("SECRET"));
    assert!(!dir.join("pairings.json").exists());

    assert_ok(&gateway(dir, &["pair", OTHER_SKI, "--pin", "5555 AAAA FF"]));
    let stored = std::fs::read_to_string(dir.join("pairings.json")).unwrap();
    assert!(stored.contains("\"pin\": \"5555AAAAFF\""), "{stored}");
    let list = gateway(dir, &["--json", "list"]);
    assert_ok(&list);
    let text = stdout(&list);
    assert!(!text.contains("5555"), "{text}");
    let rows: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(rows[0]["pin_stored"], true);
}
