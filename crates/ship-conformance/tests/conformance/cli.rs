//! The `ship-conformance` binary itself: usage errors, the SKI list, and a short real run (JSON
//! report) against an in-process hub on loopback.

use ship_test_support::common;

use std::process::Command;

use ship_conformance::ToolIdentities;
use ship_conformance::identities::LISTENER;

const BIN: &str = env!("CARGO_BIN_EXE_ship-conformance");

#[test]
fn a_malformed_target_is_a_usage_error() {
    let out = Command::new(BIN)
        .args(["--target", "not-a-target@x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--target"));
}

#[test]
fn print_skis_lists_every_identity_on_stdout_and_keeps_them() {
    let dir = tempfile::tempdir().unwrap();
    let dut = common::identity("dut").ski();
    let run = || {
        let out = Command::new(BIN)
            .arg("--identity-dir")
            .arg(dir.path())
            .args(["--target", &dut.to_string(), "--print-skis"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = run();
    let identities = ToolIdentities::load_or_create(dir.path(), Some(dut)).unwrap();
    // One `SKI NAME` per line on stdout, nothing else (for scripts).
    let expected: Vec<String> = identities
        .trusted()
        .iter()
        .map(|(name, ski)| format!("{ski} {name}"))
        .collect();
    assert_eq!(first.lines().collect::<Vec<_>>(), expected);
    assert!(identities.get(LISTENER).unwrap().ski() < dut);
    assert_eq!(run(), first, "identities are kept in --identity-dir");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_run_against_ship_hub_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let dut = common::identity("dut");
    let identities = ToolIdentities::load_or_create(dir.path(), Some(dut.ski())).unwrap();
    let recorder = common::Recorder::new();
    let hub = common::start(common::loopback_config(dut, "cli-dut", &recorder)).await;
    for (_, ski) in identities.trusted() {
        hub.pair(ski).unwrap();
    }
    let target = format!("{}@{}", hub.local_ski(), hub.local_addr());
    let out = tokio::process::Command::new(BIN)
        .arg("--identity-dir")
        .arg(dir.path())
        .args([
            "--target",
            &target,
            "--only",
            "CMI_001,AM_001,ROLE_002",
            "--json",
        ])
        .args(["--ship-id", "cli-dut"])
        .output()
        .await
        .unwrap();
    hub.shutdown().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let verdicts: Vec<(String, String)> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["verdict"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            ("TC_SHIP_ROLE_002".to_owned(), "not_applicable".to_owned()),
            ("TC_SHIP_CMI_001".to_owned(), "pass".to_owned()),
            ("TC_SHIP_AM_001".to_owned(), "pass".to_owned()),
        ]
    );
    assert_eq!(report["format_version"], 2);
    assert_eq!(report["ship_version"]["offered"], "1.1");
    // ship-hub selects 1.0 (the lower of both) to the tool's 1.1.
    assert_eq!(
        report["ship_version"]["dut_selected"],
        serde_json::json!(["1.0"])
    );
}
