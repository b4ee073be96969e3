//! Process tests of the `ship-gateway` commands that do not need a running gateway, and of every
//! bad input: each asserts the exit status and the one-line error. Loopback only, `--no-mdns`.

use std::net::TcpListener;

use crate::gateway_support::*;
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
    let value: Value = json_line(&json);
    assert_eq!(value["ski"], first.as_str());
    // The certificate's fingerprint, for the SHIP Pairing Service: SHA-256 of cert.pem's DER.
    let identity = ship_hub::identity::Identity::load(&dir).unwrap();
    assert_eq!(
        value["fingerprint"],
        ship_hub::pairing_service::Fingerprint::of_certificate(identity.certificate_der())
            .to_string()
            .as_str()
    );
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
    let rows: Value = json_lines(&json);
    assert_eq!(rows[0]["ski"], OTHER_SKI);
    assert_eq!(rows[0]["ship_id"], "Wallbox-1");
    assert_eq!(rows[0]["name"], "Wallbox");
    assert_eq!(rows[0]["last_address"], "127.0.0.1:4712");
    assert_eq!(rows[0]["last_seen_ms"], Value::Null);
    assert_eq!(rows[0]["state"], Value::Null, "no gateway runs");

    assert_ok(&gateway(dir, &["unpair", OTHER_SKI]));
    let json = gateway(dir, &["--json", "list"]);
    assert_eq!(stdout(&json), "", "no peer: no line");
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

/// `qr` draws this gateway's installation code with half blocks; a QR decoder reads the picture
/// back to the text printed under it, and that text names this gateway: its SKI, the SHIP ID
/// `run` uses, and what it announces over mDNS.
#[test]
fn qr_shows_a_code_that_decodes_to_this_gateways_identity() {
    use ship_hub::ShipQr;
    let tmp = tempdir();
    let dir = tmp.path();
    let ski = ski_of(dir);
    let text = qr_text_of(dir, &["--serial", "0042"]);
    let code: ShipQr = text.parse().unwrap();
    assert_eq!(code.ski().to_string(), ski);
    assert_eq!(
        code.ship_id().as_str(),
        format!("ship-gateway-{}", &ski[..12])
    );
    assert_eq!(code.brand(), Some("ship-hub"));
    assert_eq!(code.device_type(), Some("EnergyManagementSystem"));
    assert_eq!(code.model(), Some("ship-gateway"));
    assert_eq!(code.serial(), Some("0042"));
    assert_eq!(code.categories(), &[2]);
    assert!(code.pin().is_none());
    assert!(
        text.starts_with("SHIP;SKI:") && text.ends_with(";ENDSHIP;"),
        "{text}"
    );
    // Drawn the other way round for light terminals, it reads the same.
    assert_eq!(qr_text_of(dir, &["--serial", "0042", "--invert"]), text);
    let json = gateway(dir, &["--json", "qr", "--serial", "0042"]);
    assert_ok(&json);
    let value: Value = json_line(&json);
    assert_eq!(value["text"], text.as_str());
}

/// `qr --svg FILE` writes an SVG whose squares decode to the printed text.
#[test]
fn qr_svg_decodes_to_the_printed_text() {
    let tmp = tempdir();
    let dir = tmp.path();
    let svg = dir.join("code.svg");
    let output = gateway(dir, &["qr", "--svg", svg.to_str().unwrap()]);
    assert_ok(&output);
    let out = stdout(&output);
    let text = out.lines().last().unwrap();
    assert!(text.starts_with("SHIP;SKI:"), "{out}");
    let image = std::fs::read_to_string(&svg).unwrap();
    assert_eq!(decode_modules(&modules_of_svg(&image)), text);
}

/// The code takes the [device] section of `--config` and the SHIP ID stored at the first start,
/// like `run`; a different `--ship-id` later is refused rather than shown.
#[test]
fn qr_follows_the_config_file_and_the_stored_ship_id() {
    use ship_hub::ShipQr;
    let tmp = tempdir();
    let dir = tmp.path();
    let config = dir.join("gateway.toml");
    std::fs::write(
        &config,
        "[device]\nbrand = \"FileBrand\"\nmodel = \"FileModel\"\ntype = \"HeatPump\"\n\
         serial = \"S-1\"\nship_id = \"i:4711_u:gw-file\"\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let code: ShipQr = qr_text_of(dir, &["--config", config]).parse().unwrap();
    assert_eq!(code.brand(), Some("FileBrand"));
    assert_eq!(code.model(), Some("FileModel"));
    assert_eq!(code.device_type(), Some("HeatPump"));
    assert_eq!(code.serial(), Some("S-1"));
    assert_eq!(code.ship_id().as_str(), "i:4711_u:gw-file");
    // A flag wins over the file, as for `run`.
    let code: ShipQr = qr_text_of(dir, &["--config", config, "--brand", "FlagBrand"])
        .parse()
        .unwrap();
    assert_eq!(code.brand(), Some("FlagBrand"));
    // The SHIP ID was stored: without the file the code still carries it.
    let code: ShipQr = qr_text_of(dir, &[]).parse().unwrap();
    assert_eq!(code.ship_id().as_str(), "i:4711_u:gw-file");
    let output = gateway(dir, &["qr", "--ship-id", "another"]);
    assert_one_line_error(&output, 1, "another");
}

/// Finding (issue 23): with `pin` configured the code left the PIN out, although the SHIP QR
/// format requires it when the device requires one. It carries it (and the picture decodes to
/// the same text).
#[test]
fn qr_carries_the_pin_the_gateway_requires() {
    use ship_hub::ShipQr;
    let tmp = tempdir();
    let config = tmp.path().join("gateway.toml");
    // A config with a secret must not be readable by every user (docs/gateway.md, "Secrets").
    write_secret(&config, "pin = \"5555 AAAA FF\"\n");
    let text = qr_text_of(tmp.path(), &["--config", config.to_str().unwrap()]);
    let code: ShipQr = text.parse().unwrap();
    assert_eq!(code.pin().map(|p| p.expose()), Some("5555AAAAFF"), "{text}");
    // Without a PIN setting there is none in the code.
    let code: ShipQr = qr_text_of(tmp.path(), &[]).parse().unwrap();
    assert!(code.pin().is_none());
}

/// `pair --qr` stores the code's SKI, its SHIP ID, its PIN and, without `--name`, its brand and
/// model as the name. The PIN is never printed.
#[test]
fn pair_from_a_qr_code_stores_its_ski_ship_id_and_name() {
    let tmp = tempdir();
    let dir = tmp.path();
    let text = "SHIP;SKI:0101 0101 0101 0101 0101 0101 0101 0101 0101 0101;ID:i:1_u:wb-7;\
                PIN:1234 5678;BRAND:Acme;TYPE:ChargingStation;MODEL:WB 11;NOMINALPOWER:0,11000;\
                ENDSHIP;\n";
    let output = gateway(dir, &["pair", "--qr", text]);
    assert_ok(&output);
    let out = stdout(&output);
    assert!(out.contains(&format!("paired {OTHER_SKI}")), "{out}");
    assert!(
        !out.contains("12345678") && !out.contains("1234 5678"),
        "{out}"
    );
    let list = gateway(dir, &["--json", "list"]);
    let rows: Value = json_lines(&list);
    assert_eq!(rows[0]["ski"], OTHER_SKI);
    assert_eq!(rows[0]["ship_id"], "i:1_u:wb-7");
    assert_eq!(rows[0]["name"], "Acme WB 11");
    assert_eq!(rows[0]["pin_stored"], true, "the code's PIN is stored");
    let stored = std::fs::read_to_string(dir.join("pairings.json")).unwrap();
    assert!(stored.contains("\"pin\": \"12345678\""), "{stored}");
    // With --name and --address, those win and are stored too.
    let output = gateway(
        dir,
        &[
            "pair",
            "--qr",
            text,
            "--name",
            "garage",
            "--address",
            "127.0.0.1:4711",
        ],
    );
    assert_ok(&output);
    let list = gateway(dir, &["--json", "list"]);
    let rows: Value = json_lines(&list);
    assert_eq!(rows[0]["name"], "garage");
    assert_eq!(rows[0]["last_address"], "127.0.0.1:4711");
}

/// Every bad code or QR setting is one line on stderr, changes nothing, and never repeats a PIN.
#[test]
fn bad_qr_codes_and_settings_are_one_line_errors() {
    let tmp = tempdir();
    let dir = tmp.path();
    let own = ski_of(dir);
    let ski = "0202 0202 0202 0202 0202 0202 0202 0202 0202 0202";
    for (text, needle) in [
        ("nonsense".to_owned(), "does not start with \"SHIP;\""),
        ("SHIP;ID:x;ENDSHIP;".to_owned(), "no SKI"),
        (format!("SHIP;SKI:{ski};ENDSHIP;"), "no ID"),
        ("SHIP;SKI:0202;ID:x;".to_owned(), "40 hex digits"),
        (format!("SHIP;SKI:{ski};ID:x;SKI:{ski};"), "two SKI"),
        (format!("SHIP;SKI:{ski};ID:x;PIN:ABCDEF1;"), "PIN"),
        (format!("SHIP;SKI:{ski};ID:x;PIN:ABCDEF12Q;"), "PIN"),
        (
            format!("SHIP;SKI:{ski};ID:x;BRAND:{};", "b".repeat(40)),
            "BRAND",
        ),
        (
            format!("SHIP;SKI:{ski};ID:x;ENDSHIP;MORE:1;"),
            "after ENDSHIP",
        ),
        (
            format!("SHIP;SKI:{ski};ID:x;{};", "y".repeat(3000)),
            "at most 2953 bytes",
        ),
        (format!("SHIP;SKI:{own};ID:x;"), "own SKI"),
    ] {
        let output = gateway(dir, &["pair", "--qr", &text]);
        assert_one_line_error(&output, 1, needle);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("ABCDEF"), "the PIN was repeated: {stderr}");
    }
    assert!(!dir.join("pairings.json").exists());
    assert_one_line_error(
        &gateway(dir, &["pair", OTHER_SKI, "--qr", "SHIP;"]),
        2,
        "--qr",
    );
    assert_one_line_error(
        &gateway(dir, &["pair", "--qr", "SHIP;", "--ship-id", "x"]),
        2,
        "--qr",
    );
    for (flag, value, needle) in [
        ("--brand", "a;b", "BRAND must not contain ';'"),
        ("--model", &"m".repeat(33)[..], "MODEL is at most 32 bytes"),
    ] {
        assert_one_line_error(&gateway(dir, &["qr", flag, value]), 1, needle);
    }
}

/// `pair --qr -` reads the code from stdin (a scanner that types, or a pipe: no PIN in the shell
/// history); more than one code's worth is refused and stores nothing.
#[test]
fn pair_from_a_qr_code_on_stdin() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let tmp = tempdir();
    let dir = tmp.path();
    let pipe = |input: Vec<u8>| {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(dir)
            .args(["pair", "--qr", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        // The gateway may stop reading early (too long): a broken pipe is fine.
        let _ = stdin.write_all(&input);
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let too_long = format!(
        "SHIP;SKI:{OTHER_SKI};ID:x;X:{};",
        "y".repeat(ship_hub::ShipQr::MAX_TEXT_LEN)
    );
    assert_one_line_error(&pipe(too_long.into_bytes()), 1, "more than one QR code");
    assert_one_line_error(&pipe(vec![0xff, 0xfe]), 1, "not UTF-8");
    assert!(!dir.join("pairings.json").exists());
    let output = pipe(format!("SHIP;SKI:{OTHER_SKI};ID:i:1_u:from-stdin;ENDSHIP;\n").into_bytes());
    assert_ok(&output);
    let list = gateway(dir, &["--json", "list"]);
    let rows: Value = json_lines(&list);
    assert_eq!(rows[0]["ski"], OTHER_SKI);
    assert_eq!(rows[0]["ship_id"], "i:1_u:from-stdin");
}

/// `--pairing-secret-file` (the SHIP Pairing Service): a missing file, a file that is not a hex
/// secret, and a good one without mDNS are each one-line errors naming the file (never its
/// content), and the gateway does not start.
#[test]
fn a_bad_pairing_secret_file_is_a_one_line_error() {
    let tmp = tempdir();
    let dir = tmp.path().join("data");
    let missing = tmp.path().join("no-such-secret");
    let bad = tmp.path().join("bad-secret");
    write_secret(&bad, "not hex: s3cr3t-value\n");
    let good = tmp.path().join("secret");
    write_secret(&good, "7A37DCF81BDB50F8E92CFA4160CCB3DE\n");
    for (file, needle) in [
        (&missing, "no-such-secret"),
        (&bad, "not hexadecimal"),
        (&good, "needs mDNS"),
    ] {
        let output = run_command(
            &dir,
            &[],
            &["--pairing-secret-file", file.to_str().unwrap()],
        )
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
        assert_one_line_error(&output, 1, needle);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(file.file_name().unwrap().to_str().unwrap()),
            "{stderr}"
        );
        assert!(
            !stderr.contains("s3cr3t") && !stderr.contains("7A37DC"),
            "{stderr}"
        );
        assert!(
            output.stdout.is_empty(),
            "the gateway started: {:?}",
            stdout(&output)
        );
    }
}

/// A corrupt SHIP Pairing Service replay guard (`pairing-replay` in the data directory) is a
/// one-line error naming the file, not an empty guard (which would let a recorded announcement
/// be honoured again).
#[test]
fn a_corrupt_pairing_replay_file_is_a_one_line_error() {
    let tmp = tempdir();
    let dir = tmp.path().join("data");
    ski_of(&dir);
    std::fs::write(dir.join("pairing-replay"), "not a digest\n").unwrap();
    let secret = tmp.path().join("secret");
    write_secret(&secret, "7A37DCF81BDB50F8E92CFA4160CCB3DE\n");
    let output = run_command(
        &dir,
        &[],
        &["--pairing-secret-file", secret.to_str().unwrap()],
    )
    .stdin(std::process::Stdio::null())
    .output()
    .unwrap();
    assert_one_line_error(&output, 1, "pairing-replay");
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
    let rows = json_lines(&list);
    assert_eq!(rows[0]["pin_stored"], true);
}

/// Finding (issue 23): `approve --help` named only `--http` and `--ask`, not the terminal (and
/// not what happens otherwise).
#[test]
fn approve_help_names_every_way_a_request_waits() {
    let tmp = tempdir();
    let output = gateway(tmp.path(), &["approve", "--help"]);
    assert_ok(&output);
    let help = stdout(&output);
    for needle in ["terminal", "--http", "--ask", "ask = true", "pair SKI"] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}
