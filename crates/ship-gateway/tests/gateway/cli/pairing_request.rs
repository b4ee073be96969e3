//! `pair --pairing-service` (the gateway as the SHIP Pairing Service's control unit) without
//! mDNS: every bad input, the request stored while no gateway runs, withdrawn by `unpair`,
//! and what a gateway without mDNS does with one. (The pairing itself, over mDNS with an `eebus`
//! energy manager, is in `pairing_service.rs`.)

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::gateway_support::*;
use serde_json::Value;

const SECRET: &str = "7A37DCF81BDB50F8E92CFA4160CCB3DE";
const FP: &str = "2CC72E781F7A7D2A08D50196C50FEDF0F7BA583F43F76C8C0DDEC9EEF0D005B4";
const EM: &str = "0a0b0c0d0e0f101112131415161718191a1b1c1d";

fn qr(extra: &str) -> String {
    format!("SHIP;SKI:{EM};ID:i:1_u:em;BRAND:Acme;MODEL:EM 1;{extra}ENDSHIP;")
}

fn with_stdin(dir: &Path, args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

fn secret_file(dir: &Path, content: &str) -> String {
    let path = dir.join("em-secret");
    std::fs::write(&path, content).unwrap();
    path.to_str().unwrap().to_owned()
}

/// Every bad input is a one-line error that stores nothing and never shows the secret.
#[test]
fn bad_pairing_service_requests_are_one_line_errors_and_store_nothing() {
    let tmp = tempdir();
    let dir = &tmp.path().join("data");
    let good = secret_file(tmp.path(), &format!("{SECRET}\n"));
    let bad_file = tmp.path().join("bad-secret");
    std::fs::write(&bad_file, "SECRETSECRET-not-hex\n").unwrap();
    let bad = bad_file.to_str().unwrap();
    let fph = format!("FPH256:{FP};");
    let with_fp = qr(&fph);
    let with_secret = qr(&format!("{fph}SPSEC:{SECRET};"));
    let own_dir = tmp.path().join("own");
    let own = ski_of(&own_dir);
    let no_fp = qr("");
    let other_fp = "AB".repeat(32);
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (
            vec!["pair", "--pairing-service", "--qr", &with_fp],
            1,
            "pairing secret: --secret-file",
        ),
        (
            vec![
                "pair",
                "--pairing-service",
                "--qr",
                &no_fp,
                "--secret-file",
                &good,
            ],
            1,
            "fingerprint",
        ),
        (
            vec![
                "pair",
                "--pairing-service",
                EM,
                "--fingerprint",
                FP,
                "--secret-file",
                &good,
            ],
            1,
            "SHIP ID",
        ),
        (
            vec!["pair", "--pairing-service", "--qr", &with_secret],
            1,
            "`--qr -`",
        ),
        (
            vec![
                "pair",
                "--pairing-service",
                "--qr",
                &with_fp,
                "--secret-file",
                bad,
            ],
            1,
            "bad-secret",
        ),
        (
            vec![
                "pair",
                "--pairing-service",
                "--qr",
                &with_fp,
                "--secret-file",
                &good,
                "--fingerprint",
                &other_fp,
            ],
            1,
            "differ",
        ),
        (
            vec![
                "pair",
                "--pairing-service",
                "--qr",
                &with_fp,
                "--secret-file",
                &good,
                "--settle-after",
                "0",
            ],
            1,
            "at least 1",
        ),
        (
            vec!["pair", EM, "--secret-file", &good],
            2,
            "--pairing-service",
        ),
        (
            vec!["pair", EM, "--fingerprint", FP],
            2,
            "--pairing-service",
        ),
    ];
    for (args, code, needle) in &cases {
        let output = gateway(dir, args);
        assert_one_line_error(&output, *code, needle);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !stderr.contains(SECRET) && !stderr.contains("SECRETSECRET"),
            "{stderr}"
        );
        assert!(!dir.join("pairing-request").exists(), "{args:?}");
        assert!(!dir.join("pairings.json").exists(), "{args:?}");
    }
    // The secret twice (in the code read from stdin and in a file).
    let output = with_stdin(
        dir,
        &[
            "pair",
            "--pairing-service",
            "--qr",
            "-",
            "--secret-file",
            &good,
        ],
        &format!("{with_secret}\n"),
    );
    assert_one_line_error(&output, 1, "give it once");
    // The gateway's own SKI.
    let output = gateway(
        &own_dir,
        &[
            "pair",
            "--pairing-service",
            &own,
            "--ship-id",
            "x",
            "--fingerprint",
            FP,
            "--secret-file",
            &good,
        ],
    );
    assert_one_line_error(&output, 1, "own SKI");
    assert!(!dir.join("pairing-request").exists());
}

/// With no gateway running: the request is stored (the secret read from stdin, the energy
/// manager paired with the code's SHIP ID and name), `list` shows it pending, a request to
/// another energy manager is refused while it is pending, the same one is replaced, and
/// `unpair` removes it.
#[test]
fn a_request_is_stored_without_a_gateway_and_unpair_withdraws_it() {
    let tmp = tempdir();
    let dir = &tmp.path().join("data");
    let output = with_stdin(
        dir,
        &[
            "pair",
            "--pairing-service",
            "--qr",
            &qr(&format!("FPH256:{FP};")),
            "--secret-file",
            "-",
        ],
        &format!("{SECRET}\n"),
    );
    assert_ok(&output);
    assert!(stdout(&output).contains("announces it when it runs"));
    let rows = json_lines(&gateway(dir, &["--json", "list"]));
    assert_eq!(rows[0]["ski"], EM);
    assert_eq!(rows[0]["ship_id"], "i:1_u:em");
    assert_eq!(rows[0]["name"], "Acme EM 1");
    assert_eq!(rows[0]["pairing_request"]["state"], "pending");
    assert_eq!(rows[0]["pairing_request"]["fingerprint"], FP);
    let text = stdout(&gateway(dir, &["list"]));
    assert!(text.contains("not announced yet"), "{text}");
    let pairings = std::fs::read_to_string(dir.join("pairings.json")).unwrap();
    assert!(!pairings.contains(SECRET));

    let good = secret_file(tmp.path(), SECRET);
    let other = [
        "pair",
        "--pairing-service",
        OTHER_SKI,
        "--ship-id",
        "other",
        "--fingerprint",
        FP,
        "--secret-file",
        &good,
    ];
    assert_one_line_error(&gateway(dir, &other), 1, &format!("unpair {EM}"));
    let again = gateway(
        dir,
        &[
            "pair",
            "--pairing-service",
            EM,
            "--ship-id",
            "i:1_u:em",
            "--fingerprint",
            &FP.to_lowercase(),
            "--secret-file",
            &good,
        ],
    );
    assert_ok(&again);

    let output = gateway(dir, &["unpair", EM]);
    assert_ok(&output);
    assert!(stdout(&output).contains("withdrew the SHIP Pairing Service request"));
    assert!(!dir.join("pairing-request").exists());
    assert_ok(&gateway(dir, &other));
}

/// A running gateway without mDNS refuses a request (the service runs over mDNS) and stores
/// nothing; a request stored before is not announced by it (a warning says why) and stays
/// stored; a stored request whose energy manager is no longer paired is dropped at start.
#[test]
fn without_mdns_a_request_is_refused_or_kept_for_later() {
    let tmp = tempdir();
    let dir = &tmp.path().join("data");
    let good = secret_file(tmp.path(), SECRET);
    let args = [
        "pair",
        "--pairing-service",
        EM,
        "--ship-id",
        "i:1_u:em",
        "--fingerprint",
        FP,
        "--secret-file",
        &good,
    ];
    {
        let mut running = Running::start(dir, &[]);
        running.event("listening");
        assert_one_line_error(&gateway(dir, &args), 1, "without mDNS");
        assert!(!dir.join("pairing-request").exists());
        let rows = json_lines(&gateway(dir, &["--json", "list"]));
        assert_eq!(rows, Value::Array(vec![]));
        assert!(running.terminate().success());
    }
    assert_ok(&gateway(dir, &args));
    {
        let mut running = Running::start(dir, &[]);
        let warning = running.wait_for("warning", |v| {
            v["event"] == "warning"
                && v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("not announced") && m.contains("mDNS"))
        });
        assert!(!warning.to_string().contains(SECRET));
        let status = json_line(&gateway(dir, &["--json", "status"]));
        assert_eq!(status["status"]["pairing_request"]["state"], "pending");
        assert!(
            !running
                .seen
                .iter()
                .any(|v| v["event"] == "pairing_request_announced")
        );
        assert!(running.terminate().success());
    }
    assert!(dir.join("pairing-request").exists());
    // The energy manager's pairing removed behind the gateway's back (not with `unpair`).
    std::fs::remove_file(dir.join("pairings.json")).unwrap();
    let mut running = Running::start(dir, &[]);
    let withdrawn = running.event("pairing_request_withdrawn");
    assert_eq!(withdrawn["ski"], EM);
    assert!(!dir.join("pairing-request").exists());
    assert!(running.terminate().success());
}

/// `POST /api/v1/pairing-request` (what `pair --pairing-service` sends to a running gateway):
/// each bad field is a 400 with its stable code and a message that never repeats the secret;
/// a good request to a gateway without mDNS is a 409 `no_mdns` and stores nothing.
#[test]
fn the_api_refuses_bad_pairing_requests_with_stable_codes() {
    let tmp = tempdir();
    let dir = &tmp.path().join("data");
    let mut running = Running::start(dir, &["--http", "127.0.0.1:0"]);
    let listening = running.event("listening");
    let url = format!(
        "http://{}/api/v1/pairing-request",
        listening["http"].as_str().unwrap()
    );
    let own = listening["ski"].as_str().unwrap().to_owned();
    // Every TCP listener needs the token; the gateway made its own in the data directory.
    let bearer = format!(
        "Bearer {}",
        std::fs::read_to_string(dir.join("http-token"))
            .unwrap()
            .trim()
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let post = |body: &Value| -> (u16, Value) {
        let mut answer = agent
            .post(&url)
            .header("Authorization", &bearer)
            .content_type("application/json")
            .send(body.to_string())
            .unwrap();
        let text = answer.body_mut().read_to_string().unwrap();
        (
            answer.status().as_u16(),
            serde_json::from_str(&text).unwrap(),
        )
    };
    let good = serde_json::json!({
        "ski": EM, "ship_id": "i:1_u:em", "fingerprint": FP, "secret": SECRET,
    });
    let with = |key: &str, value: Value| {
        let mut body = good.clone();
        body[key] = value;
        body
    };
    for (body, code) in [
        (with("ski", "xyz".into()), "bad_ski"),
        (with("ski", own.clone().into()), "own_ski"),
        (with("ship_id", "".into()), "bad_ship_id"),
        (with("fingerprint", "AB".into()), "bad_fingerprint"),
        (with("secret", "SECRETSECRETzz".into()), "bad_secret"),
        (with("address", "nowhere".into()), "bad_address"),
        (with("name", "two\nlines".into()), "bad_name"),
        (with("pin", "12".into()), "bad_pin"),
        (with("settle_after_s", 0.into()), "bad_settle_after"),
        (with("surprise", 1.into()), "bad_request"),
        (serde_json::json!({"ski": EM}), "bad_request"),
    ] {
        let (status, answer) = post(&body);
        assert_eq!(
            (status, answer["code"].as_str()),
            (400, Some(code)),
            "{body} {answer}"
        );
        assert!(!answer.to_string().contains("SECRETSECRET"), "{answer}");
    }
    let (status, answer) = post(&good);
    assert_eq!(
        (status, answer["code"].as_str()),
        (409, Some("no_mdns")),
        "{answer}"
    );
    assert!(!dir.join("pairing-request").exists());
    assert!(!answer.to_string().contains(SECRET));
    assert!(running.terminate().success());
}
