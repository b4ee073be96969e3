//! Process tests of `ship-gateway run`: configuration, shutdown, the control socket, pairing
//! requests (refused, asked on a terminal, auto-accepted), and, in a private network namespace,
//! mDNS (`discover`, defaults). Loopback only (`--bind 127.0.0.1 --port 0`, `--no-mdns`) except
//! the `#[ignore]`d namespace tests, which `bash .ci/test` runs.

use crate::gateway_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use gateway_support::*;
use serde_json::Value;

#[test]
fn run_from_a_config_file_prints_its_address_and_stops_in_phases_on_sigterm() {
    let tmp = tempdir();
    let data = tmp.path().join("data");
    let config = tmp.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nbind = \"127.0.0.1\"\nport = 0\nmdns = false\n\n[device]\n\
             ship_id = \"Gateway-Test-1\"\nbrand = \"Test\"\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    // Human-readable by default: "HH:MM:SS listening on 127.0.0.1:PORT (SKI …, SHIP ID …)".
    let rest = first
        .split_once(" listening on 127.0.0.1:")
        .expect(&first)
        .1;
    let port: u16 = rest.split_whitespace().next().unwrap().parse().unwrap();
    assert_ne!(port, 0);
    assert!(first.contains("SHIP ID Gateway-Test-1"), "{first}");
    assert!(data.join("control.sock").exists());
    assert!(data.join("cert.pem").exists());
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(
        rest.iter().any(|l| l.contains("SIGTERM: shutting down")),
        "{rest:?}"
    );
    assert!(rest.last().unwrap().contains("stopped after"), "{rest:?}");
    assert!(!data.join("control.sock").exists());
}

#[test]
fn a_second_gateway_on_the_same_data_dir_is_refused() {
    let tmp = tempdir();
    let mut first = Running::start(tmp.path(), &[]);
    first.address();
    let output = gateway(
        tmp.path(),
        &["run", "--no-mdns", "--bind", "127.0.0.1", "--port", "0"],
    );
    assert_one_line_error(&output, 1, "already running");
    assert!(first.terminate().success());
}

#[test]
fn pair_and_unpair_reach_a_running_gateway_through_its_control_socket() {
    let tmp = tempdir();
    let mut running = Running::start(tmp.path(), &[]);
    running.address();
    let output = gateway(
        tmp.path(),
        &[
            "pair",
            OTHER_SKI,
            "--name",
            "Heat pump",
            "--address",
            "127.0.0.1:9",
        ],
    );
    assert_ok(&output);
    assert!(
        stdout(&output).contains("running gateway dials it now at 127.0.0.1:9"),
        "{}",
        stdout(&output)
    );
    running.wait_for("paired", |v| {
        v["event"] == "paired" && v["ski"] == OTHER_SKI
    });
    // Without an address nothing dials: the answer says what will happen instead.
    let no_address = "0404040404040404040404040404040404040404";
    let output = gateway(tmp.path(), &["pair", no_address]);
    assert_ok(&output);
    assert!(
        stdout(&output).contains("no address is known yet")
            && !stdout(&output).contains("dials it now"),
        "{}",
        stdout(&output)
    );
    // The gateway now tries to reach it (nothing listens there).
    running.wait_for("state", |v| v["event"] == "state" && v["ski"] == OTHER_SKI);
    let listed = stdout(&gateway(tmp.path(), &["--json", "list"]));
    assert!(listed.contains("Heat pump"), "{listed}");

    let unknown = "0303030303030303030303030303030303030303";
    assert_one_line_error(
        &gateway(tmp.path(), &["unpair", unknown]),
        1,
        "is not paired",
    );
    assert_one_line_error(
        &gateway(tmp.path(), &["send", OTHER_SKI, "{}"]),
        1,
        "not connected",
    );
    assert_ok(&gateway(tmp.path(), &["unpair", OTHER_SKI]));
    assert_ok(&gateway(tmp.path(), &["unpair", no_address]));
    running.wait_for("unpaired", |v| {
        v["event"] == "unpaired" && v["ski"] == OTHER_SKI
    });
    assert_eq!(stdout(&gateway(tmp.path(), &["--json", "list"])), "");
    assert!(running.terminate().success());
}

#[test]
fn an_unknown_peer_is_refused_when_there_is_no_terminal() {
    let tmp = tempdir();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_ski = ski_of(&a_dir);
    let b_ski = ski_of(&b_dir);
    let mut a = Running::start(&a_dir, &[]);
    let address = a.address();
    let peer = format!("{a_ski}@{address}");
    let mut b = Running::start(&b_dir, &["--peer", &peer]);
    let request = a.wait_for("pairing_requested", |v| v["event"] == "pairing_requested");
    assert_eq!(request["ski"], b_ski.as_str());
    assert_eq!(request["decision"], "refused");
    // Finding (issue 23): under the packaged service the refusal said nothing else. It says how
    // to pair the device: `pair` as the gateway's user (on this data dir), the console, `ask`.
    let reason = request["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!(
            "ship-gateway --data-dir {} pair {b_ski}",
            a_dir.display()
        )) && reason.contains("console")
            && reason.contains("ask = true"),
        "{request}"
    );
    assert_refused(&mut b, &a_ski);
    assert_eq!(stdout(&gateway(&a_dir, &["--json", "list"])), "");
    assert!(b.terminate().success());
    assert!(a.terminate().success());
}

#[test]
fn auto_accept_warns_loudly_and_trusts_an_unknown_peer() {
    let tmp = tempdir();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_ski = ski_of(&a_dir);
    let b_ski = ski_of(&b_dir);
    let mut a = Running::start(&a_dir, &["--auto-accept"]);
    let listening = a.event("listening");
    assert_eq!(listening["auto_accept"], true);
    let warning = a.event("warning");
    assert!(warning["message"].as_str().unwrap().contains("auto-accept"));
    let peer = format!("{a_ski}@{}", listening["address"].as_str().unwrap());
    let mut b = Running::start(&b_dir, &["--peer", &peer]);
    let connected = a.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == b_ski.as_str()
    });
    assert_eq!(
        connected["tls_suite"],
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    );
    b.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == a_ski.as_str()
    });
    assert!(b.terminate().success());
    assert!(a.terminate().success());
    let stderr = a.stderr_lines().join("\n");
    assert!(
        stderr.contains("WARNING") && stderr.contains("auto-accept"),
        "{stderr}"
    );
}

/// The `connected` event names the TLS cipher suite the connection negotiated: SHIP's
/// mandatory CBC suite when one gateway offers only that (`--tls-suites`), on both sides.
#[test]
fn the_connected_event_names_the_negotiated_tls_suite() {
    const CBC: &str = "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256";
    let tmp = tempdir();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_ski = ski_of(&a_dir);
    let b_ski = ski_of(&b_dir);
    let mut a = Running::start(&a_dir, &["--auto-accept"]);
    let peer = format!("{a_ski}@{}", a.address());
    let mut b = Running::start(&b_dir, &["--peer", &peer, "--tls-suites", CBC]);
    let on_a = a.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == b_ski.as_str()
    });
    let on_b = b.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == a_ski.as_str()
    });
    assert_eq!(on_a["tls_suite"], CBC, "{on_a}");
    assert_eq!(on_b["tls_suite"], CBC, "{on_b}");
    assert!(b.terminate().success());
    assert!(a.terminate().success());
}

/// `discover` lists a gateway that announces itself over mDNS. Needs a private network
/// namespace (mDNS joins multicast on every interface that is up).
#[test]
#[ignore = "needs a private network namespace: run via .ci/test"]
fn discover_lists_a_gateway_announced_over_mdns() {
    let _turn = ship_test_support::common::MULTICAST.blocking_read();
    assert_private_namespace();
    let tmp = tempdir();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_ski = ski_of(&a_dir);
    let mut a = Command::new(BIN)
        .arg("--data-dir")
        .arg(&a_dir)
        .args([
            "run",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--json",
            "--name",
            "Discover Me",
        ])
        .args([
            "--brand",
            "TestBrand",
            "--model",
            "TestModel",
            "--type",
            "Gateway",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut found = None;
    for _ in 0..5 {
        let output = gateway(&b_dir, &["--json", "discover", "--seconds", "3"]);
        assert_ok(&output);
        let rows: Value = json_lines(&output);
        if let Some(row) = rows
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["ski"] == a_ski.as_str())
        {
            found = Some(row.clone());
            break;
        }
    }
    let _ = a.kill();
    let _ = a.wait();
    let row = found.expect("the gateway was never discovered");
    assert_eq!(row["name"], "Discover Me");
    assert_eq!(row["brand"], "TestBrand");
    assert_eq!(row["model"], "TestModel");
    assert_eq!(row["type"], "Gateway");
    assert_eq!(row["register"], false);
}

/// Starts a gateway on a terminal and a second one that dials it as an unknown peer; answers the
/// terminal's question with `answer`. Returns both, after the pairing request was asked.
fn ask_on_terminal(dir: &Path, answer: &str) -> (OnTerminal, Running, String, String) {
    let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
    let a_ski = ski_of(&a_dir);
    let b_ski = ski_of(&b_dir);
    let mut a = OnTerminal::start(&a_dir);
    let listening = a.wait_for("listening", |v| v["event"] == "listening");
    let peer = format!("{a_ski}@{}", listening["address"].as_str().unwrap());
    let b = Running::start(&b_dir, &["--peer", &peer]);
    let request = a.wait_for("pairing_requested", |v| v["event"] == "pairing_requested");
    assert_eq!(request["ski"], b_ski.as_str());
    assert_eq!(request["decision"], "asking");
    // An answer counts only once its question is on the screen.
    a.wait_question(&b_ski);
    a.answer(answer);
    (a, b, a_ski, b_ski)
}

/// Finding: 20 short-lived strangers queued 20 questions, all answered "too late". A request
/// whose peer left is not asked (or, if it is on the screen, announced as ended), and the next
/// live request is asked and can be approved.
#[test]
fn on_a_terminal_a_request_that_ended_is_dropped_and_the_next_live_one_is_asked() {
    let tmp = tempdir();
    let a_dir = tmp.path().join("a");
    let a_ski = ski_of(&a_dir);
    let mut a = OnTerminal::start(&a_dir);
    let listening = a.wait_for("listening", |v| v["event"] == "listening");
    let peer = format!("{a_ski}@{}", listening["address"].as_str().unwrap());
    for n in 0..3 {
        let dir = tmp.path().join(format!("stranger{n}"));
        let ski = ski_of(&dir);
        let stranger = Running::start(&dir, &["--peer", &peer]);
        a.wait_question(&ski);
        // The stranger leaves while its question is on the screen.
        drop(stranger);
        let grouped = grouped(&ski);
        a.wait_line("the ended notice", |l| {
            l.contains("the device gave up") && l.contains(&grouped)
        });
    }
    let live_dir = tmp.path().join("live");
    let live_ski = ski_of(&live_dir);
    let mut live = Running::start(&live_dir, &["--peer", &peer]);
    a.wait_question(&live_ski);
    a.answer("y\n");
    a.wait_for("paired", |v| {
        v["event"] == "paired" && v["ski"] == live_ski.as_str() && v["by"] == "prompt"
    });
    live.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == a_ski.as_str()
    });
    let too_late: Vec<&Value> = a
        .seen
        .iter()
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.contains("too late"))
        })
        .collect();
    assert!(too_late.is_empty(), "{too_late:#?}");
}

/// Starts `run` with human-readable output (no `--json`); its stdout lines arrive on the channel.
fn start_human(
    dir: &Path,
    extra: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .arg("--data-dir")
        .arg(dir)
        .args(["run", "--bind", "127.0.0.1", "--port", "0"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        // Split at '\n' only, so a raw '\r' or escape sequence stays visible to the assertions.
        for line in BufReader::new(out).split(b'\n').map_while(Result::ok) {
            if tx
                .send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    (child, rx)
}

/// Waits for a human line matching `f`; returns every line seen so far.
fn human_line(
    lines: &std::sync::mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    f: impl Fn(&str) -> bool,
) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let done = f(&line);
                seen.push(line);
                if done {
                    return;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no such line; saw {seen:#?}");
}

/// A character a terminal does not print as itself (see crates/ship-gateway/src/escape.rs).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Finding: a peer's SHIP ID (it may carry bidi overrides) was printed raw in the human log. It
/// is shown escaped; the JSON log keeps it exact.
#[test]
fn the_human_log_shows_a_peer_ship_id_escaped() {
    let tmp = tempdir();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_ski = ski_of(&a_dir);
    let b_ski = ski_of(&b_dir);
    let hostile = "Evil\u{202e}gnp.exe\u{2066}\u{200b}";
    let (mut a, lines) = start_human(&a_dir, &["--no-mdns", "--auto-accept"]);
    let mut seen = Vec::new();
    human_line(&lines, &mut seen, |l| l.contains("listening on 127.0.0.1:"));
    let address = seen[0]
        .split("listening on ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    let mut b = Running::start(
        &b_dir,
        &[
            "--ship-id",
            hostile,
            "--peer",
            &format!("{a_ski}@{address}"),
        ],
    );
    human_line(&lines, &mut seen, |l| {
        l.contains(&format!("{b_ski} connected"))
    });
    b.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == a_ski.as_str()
    });
    let _ = a.kill();
    let _ = a.wait();
    for line in &seen {
        assert!(
            !line.chars().any(is_hidden),
            "raw control or format character in {line:?}"
        );
    }
    let ship_id = seen
        .iter()
        .find(|l| l.contains(&format!("{b_ski} has SHIP ID")))
        .unwrap();
    assert!(
        ship_id.ends_with("has SHIP ID Evil\\u{202e}gnp.exe\\u{2066}\\u{200b}"),
        "{ship_id}"
    );
    // The JSON log of the same kind of event keeps the exact text.
    let mut a_json = Running::start(&a_dir, &["--auto-accept"]);
    let address = a_json.address();
    drop(b);
    let mut b = Running::start(
        &b_dir,
        &[
            "--ship-id",
            hostile,
            "--peer",
            &format!("{a_ski}@{address}"),
        ],
    );
    let event = a_json.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == b_ski.as_str()
    });
    assert_eq!(event["ship_id"], hostile);
    b.wait_for("connected", |v| v["event"] == "connected");
}

/// Finding: mDNS instance names and TXT values with newlines and escape sequences reached the
/// terminal raw in `discover` and in the human log, where they could forge lines. Announces
/// such a service (from this test, with mdns-sd: ship-hub itself refuses to announce one) in a
/// private network namespace.
#[test]
#[ignore = "needs a private network namespace: run via .ci/test"]
fn peer_supplied_mdns_names_are_escaped_in_discover_and_the_human_log() {
    let _turn = ship_test_support::common::MULTICAST.blocking_read();
    assert_private_namespace();
    let tmp = tempdir();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let hostile = "Evil\n{\"event\":\"connected\"}\x1b[2J\u{202e}";
    let ski = "0505050505050505050505050505050505050505";
    let daemon = ship_test_support::discovery_spoof::OwnedDaemon::new();
    let properties = [
        ("txtvers", "1"),
        ("id", "Evil-1"),
        ("path", "/ship/"),
        ("ski", ski),
        ("register", "false"),
        ("brand", "Br\u{202e}and"),
        ("model", "Mo\u{200b}del"),
        ("type", "EV\u{2066}SE"),
    ];
    let info = mdns_sd::ServiceInfo::new(
        "_ship._tcp.local.",
        hostile,
        "evil-host.local.",
        "127.0.0.1",
        4999,
        &properties[..],
    )
    .unwrap();
    daemon.register(info).unwrap();

    // The human log of a running gateway: the `visible` line.
    let (mut a, lines) = start_human(&a_dir, &[]);
    let mut seen = Vec::new();
    human_line(&lines, &mut seen, |l| l.contains(&ski[..12]));
    let _ = a.kill();
    let _ = a.wait();
    for line in &seen {
        assert!(
            !line.chars().any(is_hidden),
            "raw control or format character in {line:?}"
        );
    }
    let visible = seen.iter().find(|l| l.contains(&ski[..12])).unwrap();
    assert!(
        visible.contains("Evil\\n{\"event\":\"connected\"}\\x1b[2J\\u{202e}"),
        "{visible}"
    );

    // `discover`, as a table and as JSON.
    let mut table = None;
    for _ in 0..5 {
        let output = gateway(&b_dir, &["discover", "--seconds", "3"]);
        assert_ok(&output);
        if stdout(&output).contains(ski) {
            table = Some(output.stdout);
            break;
        }
    }
    let table =
        String::from_utf8(table.expect("the hostile service was never discovered")).unwrap();
    // No forged line: the instance name's `{"event"…` stays inside its row.
    let rows_with_it: Vec<&str> = table.lines().filter(|l| l.contains("{\"event\"")).collect();
    assert_eq!(rows_with_it.len(), 1, "{table:?}");
    assert!(rows_with_it[0].contains(ski), "{table:?}");
    for line in table.lines() {
        assert!(
            !line.chars().any(is_hidden),
            "raw control or format character in {line:?}"
        );
    }
    for shown in [
        "Evil\\n{\"event\":\"connected\"}\\x1b[2J\\u{202e}",
        "Br\\u{202e}and",
        "Mo\\u{200b}del",
        "EV\\u{2066}SE",
    ] {
        assert!(table.contains(shown), "{shown} not in {table}");
    }
    let output = gateway(&b_dir, &["--json", "discover", "--seconds", "3"]);
    assert_ok(&output);
    let rows: Value = json_lines(&output);
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ski"] == ski)
        .expect("the hostile service in the JSON output");
    assert_eq!(row["name"], hostile, "JSON keeps the exact text");
    assert_eq!(row["brand"], "Br\u{202e}and");
    drop(daemon);
}

/// The terminal's question names the device as its mDNS record announces it (name, brand,
/// model, type) next to the SKI; the `pairing_requested` event carries the name. Needs a
/// private network namespace.
#[test]
#[ignore = "needs a private network namespace: run via .ci/test"]
fn on_a_terminal_the_question_shows_the_announced_name_brand_and_model_and_approval_stores_the_name()
 {
    let _turn = ship_test_support::common::MULTICAST.blocking_read();
    assert_private_namespace();
    let tmp = tempdir();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_ski = ski_of(&a_dir);
    let b_ski = ski_of(&b_dir);
    let mut a = OnTerminal::start_with_mdns(&a_dir);
    let listening = a.wait_for("listening", |v| v["event"] == "listening");
    let a_address = listening["address"].as_str().unwrap().to_owned();
    let mut b = Command::new(BIN)
        .arg("--data-dir")
        .arg(&b_dir)
        .args(["run", "--bind", "127.0.0.1", "--port", "0", "--json"])
        .args(["--name", "Garage wallbox", "--brand", "TestBrand"])
        .args(["--model", "TestModel", "--type", "EVSE"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // A sees B's announcement before B dials it.
    a.wait_for("B visible", |v| {
        v["event"] == "visible_services"
            && v["services"]
                .as_array()
                .is_some_and(|s| s.iter().any(|row| row["ski"] == b_ski.as_str()))
    });
    let mut paired = false;
    for _ in 0..50 {
        if gateway(&b_dir, &["pair", &a_ski, "--address", &a_address])
            .status
            .success()
        {
            paired = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(paired, "B never took the pairing with A");
    let request = a.wait_for("pairing_requested", |v| v["event"] == "pairing_requested");
    assert_eq!(request["ski"], b_ski.as_str());
    assert_eq!(request["name"], "Garage wallbox");
    assert_eq!(request["decision"], "asking");
    a.wait_line("the question", |l| {
        l.contains("Pairing request from Garage wallbox (TestBrand TestModel, EVSE) at")
    });
    a.wait_question(&b_ski);
    a.answer("y\n");
    a.wait_for("paired", |v| {
        v["event"] == "paired" && v["ski"] == b_ski.as_str() && v["by"] == "prompt"
    });
    // The announced name is stored with the pairing (the hub writes it in the background).
    let store = a_dir.join("pairings.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let stored_name = loop {
        let text = std::fs::read_to_string(&store).unwrap_or_default();
        let stored: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let name = stored["peers"]
            .as_array()
            .and_then(|peers| peers.iter().find(|p| p["ski"] == b_ski.as_str()))
            .map(|p| p["name"].clone());
        if name.as_ref().is_some_and(|n| !n.is_null()) || std::time::Instant::now() > deadline {
            break name;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(
        stored_name,
        Some(Value::from("Garage wallbox")),
        "{store:?}"
    );
    let _ = b.kill();
    let _ = b.wait();
}

#[test]
fn on_a_terminal_the_user_approves_a_pairing_request() {
    let tmp = tempdir();
    let (mut a, mut b, a_ski, b_ski) = ask_on_terminal(tmp.path(), "y\n");
    a.wait_for("paired", |v| {
        v["event"] == "paired" && v["ski"] == b_ski.as_str() && v["by"] == "prompt"
    });
    a.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == b_ski.as_str()
    });
    b.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == a_ski.as_str()
    });
    let listed = stdout(&gateway(&tmp.path().join("a"), &["--json", "list"]));
    assert!(listed.contains(&b_ski), "{listed}");
}

#[test]
fn on_a_terminal_the_user_refuses_a_pairing_request() {
    let tmp = tempdir();
    let (mut a, mut b, a_ski, b_ski) = ask_on_terminal(tmp.path(), "n\n");
    // A person's decision: an info line, not a warning.
    a.wait_for("the denial", |v| {
        v["event"] == "info"
            && v["message"]
                .as_str()
                .unwrap()
                .contains(&format!("denied {b_ski}"))
    });
    assert_refused(&mut b, &a_ski);
    assert!(
        !a.seen.iter().any(|v| v["event"] == "connected"),
        "{:#?}",
        a.seen
    );
    let listed = stdout(&gateway(&tmp.path().join("a"), &["--json", "list"]));
    assert!(!listed.contains(&b_ski), "{listed}");
}

/// The README's first command, `ship-gateway run`, on defaults on a fresh machine: it creates
/// the default data dir and the identity and announces itself over mDNS. The one setting
/// overridden is the port (`--port 0`: tests never use a fixed port). As root the default data
/// dir is /var/lib/ship-gateway: the test mounts a fresh tmpfs there in a private mount
/// namespace; otherwise it points XDG_DATA_HOME at a temporary directory.
#[test]
#[ignore = "needs a private network namespace: run via .ci/test"]
fn run_on_defaults_creates_the_data_dir_and_announces_itself() {
    let _turn = ship_test_support::common::MULTICAST.blocking_read();
    assert_private_namespace();
    let tmp = tempdir();
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    let mut command = if root {
        let mut c = Command::new("unshare");
        c.args(["-m", "sh", "-c"]).arg(format!(
            "mount -t tmpfs tmpfs /var/lib && exec {BIN} run --port 0 --json"
        ));
        c
    } else {
        let mut c = Command::new(BIN);
        c.env("XDG_DATA_HOME", tmp.path())
            .args(["run", "--port", "0", "--json"]);
        c
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a listening line").unwrap();
    let listening: Value = serde_json::from_str(&first).unwrap();
    let expected_dir = if root {
        PathBuf::from("/var/lib/ship-gateway")
    } else {
        tmp.path().join("ship-gateway")
    };
    assert_eq!(listening["event"], "listening");
    assert_eq!(listening["data_dir"], expected_dir.to_str().unwrap());
    assert_eq!(listening["mdns"], true);
    assert_eq!(listening["auto_accept"], false);
    let address: std::net::SocketAddr = listening["address"].as_str().unwrap().parse().unwrap();
    assert!(address.ip().is_unspecified(), "{address}");
    // Announced: a discover in the same namespace sees it.
    let ski = listening["ski"].as_str().unwrap().to_owned();
    let mut seen = false;
    for _ in 0..5 {
        let output = gateway(
            &tmp.path().join("other"),
            &["--json", "discover", "--seconds", "3"],
        );
        assert_ok(&output);
        if stdout(&output).contains(&ski) {
            seen = true;
            break;
        }
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(child.wait().unwrap().success());
    assert!(seen, "the default gateway was not discovered");
    assert!(rest.last().unwrap().contains("\"stopped\""), "{rest:?}");
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Finding: the control socket had no idle timeout and no cap, so silent clients held file
/// descriptors until the gateway could not accept peers. 100 silent clients: 16 are served (the
/// cap), the other 84 get `503 busy` at once, the 16 get `408 idle_timeout` after the idle
/// timeout and are closed, and a normal request works again.
#[test]
fn silent_control_clients_are_capped_and_closed_after_the_idle_timeout() {
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    const IDLE_SECS: u64 = 3;
    let tmp = tempdir();
    let mut running = Running::start(
        tmp.path(),
        &["--control-idle-timeout", &IDLE_SECS.to_string()],
    );
    running.address();
    let pid = running.child.id();
    let baseline = open_fds(pid);
    let socket = tmp.path().join("control.sock");
    let started = std::time::Instant::now();
    let (tx, rx) = std::sync::mpsc::channel();
    for n in 0..100 {
        let mut stream = UnixStream::connect(&socket).unwrap();
        let opened = std::time::Instant::now();
        let tx = tx.clone();
        std::thread::spawn(move || {
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            let mut answer = String::new();
            let result = stream.read_to_string(&mut answer).map(|_| answer);
            let _ = tx.send((n, result, opened.elapsed()));
        });
    }
    drop(tx);
    let connected_in = started.elapsed();
    assert!(
        connected_in < std::time::Duration::from_secs(IDLE_SECS),
        "connecting 100 clients took {connected_in:?}, longer than the idle timeout"
    );
    let mut refused = Vec::new();
    while refused.len() < 84 {
        let (n, answer, after) = rx
            .recv_timeout(PATIENCE)
            .expect("84 clients refused at once");
        let answer = answer.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 503 ") && answer.contains(r#""code":"busy""#),
            "{answer:?}"
        );
        refused.push((n, after));
    }
    // The refused ones are closed: only the 16 served ones hold descriptors.
    let during = open_fds(pid);
    assert!(
        during <= baseline + 16 + 2,
        "{during} fds open, {baseline} before"
    );
    // A request now gets a clear one-line error (the gateway is busy) ...
    assert_one_line_error(&gateway(tmp.path(), &["pair", OTHER_SKI]), 1, "busy");
    // ... and the 16 silent ones are closed after the idle timeout.
    let mut idle = Vec::new();
    for (n, answer, after) in rx.iter() {
        let answer = answer.unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 408 ")
                && answer.contains(r#""code":"idle_timeout""#)
                && answer.contains("no request within"),
            "{answer:?}"
        );
        idle.push((n, after));
    }
    assert_eq!(idle.len(), 16, "{idle:?}");
    let slowest = idle.iter().map(|(_, after)| *after).max().unwrap();
    let fastest = idle.iter().map(|(_, after)| *after).min().unwrap();
    assert!(
        fastest
            >= std::time::Duration::from_secs(IDLE_SECS) - std::time::Duration::from_millis(100)
    );
    println!(
        "100 silent control clients: 84 refused at once, 16 closed after {fastest:?}..{slowest:?} (idle timeout {IDLE_SECS} s); fds {baseline} -> {during}"
    );
    // A normal request works again.
    assert_ok(&gateway(tmp.path(), &["pair", OTHER_SKI]));
    running.wait_for("paired", |v| {
        v["event"] == "paired" && v["ski"] == OTHER_SKI
    });
    assert_one_line_error(
        &gateway(tmp.path(), &["send", OTHER_SKI, "{}"]),
        1,
        "not connected",
    );
    let after = open_fds(pid);
    assert!(after <= baseline + 2, "{after} fds open, {baseline} before");
    assert!(running.terminate().success());
}

/// Finding: control `send` accepted a 122,882-byte message, which the peer (100 KiB limit) can
/// only answer by closing the connection. `send` refuses a payload whose data message exceeds the
/// limit with a one-line error before anything is queued; the largest payload that fits is
/// delivered, and the connection stays up.
#[test]
fn send_refuses_a_payload_over_the_message_limit_and_delivers_the_largest_that_fits() {
    use ship_hub::protocol::ShipMessage;
    use ship_hub::protocol::codec::encode;
    use ship_hub::protocol::message::Data;
    let tmp = tempdir();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_ski = ski_of(&a_dir);
    let b_ski = ski_of(&b_dir);
    let mut a = Running::start(&a_dir, &["--auto-accept"]);
    let peer = format!("{a_ski}@{}", a.address());
    let mut b = Running::start(&b_dir, &["--peer", &peer]);
    a.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == b_ski.as_str()
    });
    b.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == a_ski.as_str()
    });

    let string = |len: usize| format!("\"{}\"", "a".repeat(len - 2));
    let too_big = gateway(&a_dir, &["send", &b_ski, &string(122_882)]);
    assert_one_line_error(&too_big, 1, "the data payload is 122882 bytes");
    assert_one_line_error(&too_big, 1, "102400");
    assert!(
        !a.seen.iter().any(|v| v["event"] == "data_sent"),
        "{:#?}",
        a.seen
    );

    let framing = encode(&ShipMessage::Data(Data {
        protocol_id: Data::SPINE_PROTOCOL_ID.to_owned(),
        payload: serde_json::value::RawValue::from_string("0".into()).unwrap(),
        extension: None,
    }))
    .len()
        - 1;
    let largest = 100 * 1024 - framing;
    assert_one_line_error(
        &gateway(&a_dir, &["send", &b_ski, &string(largest + 1)]),
        1,
        "more than",
    );
    assert_ok(&gateway(&a_dir, &["send", &b_ski, &string(largest)]));
    b.wait_for("data", |v| {
        v["event"] == "data" && v["ski"] == a_ski.as_str() && v["bytes"] == largest
    });
    assert!(
        !b.seen
            .iter()
            .chain(a.seen.iter())
            .any(|v| v["event"] == "disconnected"),
        "{:#?} {:#?}",
        a.seen,
        b.seen
    );
    assert!(b.terminate().success());
    assert!(a.terminate().success());
}

/// PIN verification (SHIP §13.4.4.3) through the gateway: B requires a PIN (`--pin`); A, on a
/// terminal, has none, so it asks. A wrong PIN is rejected by B and A asks again, saying so; the
/// right one connects both, and A stores it with the pairing. No event carries the PIN.
#[test]
fn on_a_terminal_a_pin_the_peer_requires_is_asked_again_after_a_wrong_one_and_stored() {
    const PIN: &str = "5555AAAAFF";
    const WRONG: &str = "12345678";
    let tmp = tempdir();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_ski = ski_of(&a_dir);
    let b_ski = ski_of(&b_dir);
    assert_ok(&gateway(&a_dir, &["pair", &b_ski]));
    let mut a = OnTerminal::start(&a_dir);
    let listening = a.wait_for("listening", |v| v["event"] == "listening");
    let peer = format!("{a_ski}@{}", listening["address"].as_str().unwrap());
    let mut b = Running::start(&b_dir, &["--peer", &peer, "--pin", PIN]);
    let grouped_b = grouped(&b_ski);
    a.wait_line("the PIN question", |l| l.contains(&grouped_b));
    a.wait_line("the PIN question", |l| l.contains("requires a PIN"));
    a.answer(&format!("{WRONG}\n"));
    a.wait_line("the second PIN question", |l| {
        l.contains("The PIN sent was wrong")
    });
    a.answer("5555 aaaa ff\n");
    a.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == b_ski.as_str()
    });
    b.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == a_ski.as_str()
    });
    b.wait_for("the wrong-PIN warning", |v| {
        v["message"]
            .as_str()
            .is_some_and(|m| m.contains("sent a wrong PIN (1 in a row)"))
    });
    // Stored for the next connection (the trust writer batches: give it a moment).
    let pairings = a_dir.join("pairings.json");
    let mut stored = String::new();
    for _ in 0..100 {
        stored = std::fs::read_to_string(&pairings).unwrap_or_default();
        if stored.contains("\"pin\"") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(stored.to_ascii_uppercase().contains(PIN), "{stored}");
    let events = format!("{:?} {:?}", a.seen, b.seen).to_ascii_uppercase();
    assert!(!events.contains(PIN) && !events.contains(WRONG), "{events}");
}

/// `pair --pin` through a running gateway (no terminal): the PIN reaches the hub with the
/// pairing, and the gateway connects to a gateway that requires it.
#[test]
fn pair_with_a_pin_through_a_running_gateway_connects_to_a_peer_that_requires_it() {
    const PIN: &str = "0123456789ABCDEF";
    let tmp = tempdir();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_ski = ski_of(&a_dir);
    let b_ski = ski_of(&b_dir);
    assert_ok(&gateway(&b_dir, &["pair", &a_ski]));
    let mut b = Running::start(&b_dir, &["--pin", PIN]);
    let b_address = b.address();
    let mut a = Running::start(&a_dir, &[]);
    a.wait_for("listening", |v| v["event"] == "listening");
    assert_ok(&gateway(
        &a_dir,
        &["pair", &b_ski, "--address", &b_address, "--pin", PIN],
    ));
    a.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == b_ski.as_str()
    });
    b.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == a_ski.as_str()
    });
    let events = format!("{:?} {:?}", a.seen, b.seen);
    assert!(!events.contains(PIN), "{events}");
}

/// Finding (a new user): `--interface eth7` (no such interface) was accepted silently and the
/// gateway was invisible. It is refused, naming the interfaces that exist. In the namespace, so
/// that the old behaviour (an mDNS daemon started) could never reach a real network.
#[test]
#[ignore = "needs a private network namespace: run via .ci/test"]
fn an_interface_that_does_not_exist_is_refused_with_the_list_of_those_that_do() {
    let _turn = ship_test_support::common::MULTICAST.blocking_read();
    gateway_support::common::assert_private_namespace();
    let tmp = tempdir();
    let output = gateway(
        tmp.path(),
        &[
            "run",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--interface",
            "eth7",
        ],
    );
    assert_one_line_error(&output, 1, "no network interface \"eth7\"");
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(text.contains("(it has: lo)"), "{text}");
    // Finding (issue 23): the list came from /sys/class/net, which in a network namespace shows
    // the host's interfaces: `--interface eth0` was accepted in a namespace that has only `lo`
    // (and mDNS then ran on nothing). Every interface sysfs shows but this namespace lacks is
    // refused.
    let here = std::fs::read_to_string("/proc/self/net/dev").unwrap();
    let host_only: Vec<String> = std::fs::read_dir("/sys/class/net")
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| !here.contains(&format!("{name}:")))
                .collect()
        })
        .unwrap_or_default();
    println!("interfaces sysfs shows that this namespace lacks: {host_only:?}");
    for name in host_only {
        let mut child = Command::new(BIN)
            .arg("--data-dir")
            .arg(tmp.path())
            .args([
                "run",
                "--bind",
                "127.0.0.1",
                "--port",
                "0",
                "--interface",
                &name,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("--interface {name} (not in this namespace) was accepted");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("no network interface \"{name}\"")),
            "{stderr}"
        );
    }
}

/// Drains what the terminal showed so far (for a moment), into `seen_lines`.
fn drain_terminal(a: &mut OnTerminal, quiet_for: std::time::Duration) {
    while let Ok(line) = a.lines.recv_timeout(quiet_for) {
        a.seen_lines.push(line);
    }
    while let Ok(value) = a.events.try_recv() {
        a.seen.push(value);
    }
}

/// Finding (issue 23): a device that requires a PIN first asked to be trusted; once `pair`
/// satisfied that request, the hub asked for the PIN and the terminal dropped the question (a
/// duplicate of the trust question on the screen): the connection sat in `Pin` until its wait
/// ran out. Now the PIN question is asked at once, names the device by its stored name, the PIN
/// is not echoed, the trust question's end is said truthfully, and no WARNING is printed.
#[test]
fn on_a_terminal_the_pin_question_follows_a_pairing_request_satisfied_by_pair() {
    const PIN: &str = "5555AAAAFF";
    let tmp = tempdir();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_ski = ski_of(&a_dir);
    let b_ski = ski_of(&b_dir);
    let mut a = OnTerminal::start(&a_dir);
    let listening = a.wait_for("listening", |v| v["event"] == "listening");
    let peer = format!("{a_ski}@{}", listening["address"].as_str().unwrap());
    let mut b = Running::start(&b_dir, &["--peer", &peer, "--pin", PIN]);
    a.wait_question(&b_ski);
    // Satisfied elsewhere while the trust question is on the screen. `pair` says that the
    // waiting connection goes on (it said "no address is known yet" before).
    let paired = gateway(&a_dir, &["pair", &b_ski, "--name", "Cellar heat pump"]);
    assert_ok(&paired);
    assert!(
        stdout(&paired).contains("its connection, which waited for this, goes on now"),
        "{}",
        stdout(&paired)
    );
    a.wait_line("the PIN question", |l| {
        l.contains("The device Cellar heat pump at")
    });
    a.wait_line("the PIN question", |l| l.contains("requires a PIN"));
    a.answer(&format!("{PIN}\n"));
    a.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == b_ski.as_str()
    });
    b.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == a_ski.as_str()
    });
    drain_terminal(&mut a, std::time::Duration::from_millis(300));
    let shown = a.seen_lines.join("\n");
    assert!(
        shown.contains("was satisfied: the device was paired with `ship-gateway pair`"),
        "{shown}"
    );
    assert!(
        !shown.to_ascii_uppercase().contains(PIN),
        "the PIN was echoed: {shown}"
    );
    assert!(
        a.seen.iter().any(|v| v["event"] == "info"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.contains(&format!("PIN for {b_ski} sent")))),
        "{:#?}",
        a.seen
    );
    let warnings: Vec<&Value> = a.seen.iter().filter(|v| v["event"] == "warning").collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}

/// Finding (issue 23): a paired device that requires a PIN the gateway does not have was
/// refused at once without a terminal; `pair SKI --pin -` could only help its next connection.
/// Now its connection waits in `Pin`, `status` shows the wait and how to answer, and `pair SKI
/// --pin -` answers that very connection at once.
#[test]
fn pair_with_a_pin_answers_a_connection_that_waits_for_it_and_status_shows_the_wait() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    const PIN: &str = "0123 4567 89AB";
    let tmp = tempdir();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_ski = ski_of(&a_dir);
    let b_ski = ski_of(&b_dir);
    assert_ok(&gateway(&a_dir, &["pair", &b_ski, "--name", "Wallbox"]));
    let mut a = Running::start(&a_dir, &[]);
    let peer = format!("{a_ski}@{}", a.address());
    let mut b = Running::start(&b_dir, &["--peer", &peer, "--pin", PIN]);
    let asked = a.wait_for("pin_requested", |v| {
        v["event"] == "pin_requested" && v["ski"] == b_ski.as_str()
    });
    assert_eq!(asked["name"], "Wallbox");
    assert!(
        asked["answer"]
            .as_str()
            .is_some_and(|m| m.contains(&format!("pair {b_ski} --pin -"))),
        "{asked}"
    );
    let view: Value =
        serde_json::from_str(stdout(&gateway(&a_dir, &["--json", "status"])).trim()).unwrap();
    assert!(view["peers"][0]["pin_request"].is_object(), "{view}");
    assert_eq!(view["status"]["counters"]["pin_requests"], 1, "{view}");
    let human = stdout(&gateway(&a_dir, &["status"]));
    assert!(
        human.contains("PIN REQUEST: Wallbox")
            && human.contains(&format!("ship-gateway pair {b_ski} --pin -")),
        "{human}"
    );
    let mut pair = Command::new(BIN)
        .arg("--data-dir")
        .arg(&a_dir)
        .args(["pair", &b_ski, "--pin", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    pair.stdin
        .take()
        .unwrap()
        .write_all(format!("{PIN}\n").as_bytes())
        .unwrap();
    let output = pair.wait_with_output().unwrap();
    assert_ok(&output);
    assert!(
        stdout(&output).contains("the PIN went to its connection"),
        "{}",
        stdout(&output)
    );
    a.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == b_ski.as_str()
    });
    b.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == a_ski.as_str()
    });
    // The connection that waited is the one that connected: no failure in between.
    let failed: Vec<&Value> = a
        .seen
        .iter()
        .filter(|v| v["event"] == "state" && v["ski"] == b_ski.as_str() && v["state"] == "Error")
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let events = format!("{:?}", a.seen).to_ascii_uppercase();
    assert!(!events.contains("0123456789AB"), "{events}");
}

/// Finding (issue 23): a pairing request approved with `ship-gateway approve` while its question
/// was on the terminal was announced as "the device gave up" with a WARNING, and the `paired`
/// event said "approved over the HTTP API". Both say what happened.
#[test]
fn on_a_terminal_a_request_approved_with_the_approve_command_is_said_so() {
    let tmp = tempdir();
    let (a_dir, b_dir) = (tmp.path().join("a"), tmp.path().join("b"));
    let a_ski = ski_of(&a_dir);
    let b_ski = ski_of(&b_dir);
    let mut a = OnTerminal::start(&a_dir);
    let listening = a.wait_for("listening", |v| v["event"] == "listening");
    let peer = format!("{a_ski}@{}", listening["address"].as_str().unwrap());
    let mut b = Running::start(&b_dir, &["--peer", &peer]);
    a.wait_question(&b_ski);
    assert_ok(&gateway(&a_dir, &["approve", &b_ski]));
    a.wait_line("the notice", |l| {
        l.contains(&grouped(&b_ski)) && l.contains("was approved with `ship-gateway approve`")
    });
    a.wait_for("paired", |v| {
        v["event"] == "paired" && v["ski"] == b_ski.as_str() && v["by"] == "approve command"
    });
    b.wait_for("connected", |v| {
        v["event"] == "connected" && v["ski"] == a_ski.as_str()
    });
    drain_terminal(&mut a, std::time::Duration::from_millis(300));
    let warnings: Vec<&Value> = a.seen.iter().filter(|v| v["event"] == "warning").collect();
    assert!(warnings.is_empty(), "{warnings:#?}");
}
