//! The README's worked example ("Test your own SHIP device"), run exactly as written: the shell
//! block between the `worked example` markers, with `ship-conformance` and `ship-gateway` on
//! `PATH`, in an empty directory. Its report must show every case it selects passing.
//!
//! `ship-gateway` is another package's binary: it is taken from beside `ship-conformance` in
//! the target directory, where `cargo test --all-targets` (and so `bash .ci/test`) builds it.
//! Hence `#[ignore]`: a plain `cargo test -p ship-conformance` does not build it. Run alone with
//! `cargo build -p ship-gateway && cargo test -p ship-conformance --test conformance readme --
//! --include-ignored`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ship-conformance");
const README: &str = include_str!("../../../../README.md");
const BEGIN: &str = "<!-- worked example: begin -->";
const END: &str = "<!-- worked example: end -->";

/// The shell commands of the README's worked example.
fn worked_example() -> String {
    let start = README.find(BEGIN).expect("README has the worked example") + BEGIN.len();
    let end = README[start..].find(END).expect("its end marker") + start;
    let block = README[start..end].trim();
    let body = block
        .strip_prefix("```sh")
        .and_then(|b| b.strip_suffix("```"))
        .expect("one ```sh block between the markers");
    body.trim().to_owned()
}

#[test]
#[ignore = "needs the ship-gateway binary beside ship-conformance: run via .ci/test"]
fn the_readme_worked_example_runs_as_written_and_passes() {
    let gateway = Path::new(BIN).with_file_name("ship-gateway");
    assert!(
        gateway.exists(),
        "{} is not built: `cargo build -p ship-gateway` (bash .ci/test builds it)",
        gateway.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::os::unix::fs::symlink(BIN, bin.join("ship-conformance")).unwrap();
    std::os::unix::fs::symlink(&gateway, bin.join("ship-gateway")).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = worked_example();
    assert!(script.contains("ship-conformance") && script.contains("--json > report.json"));
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .current_dir(&work)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A bound, not a timing claim: the example takes a few seconds.
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the worked example did not finish within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", out.status);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(work.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["format_version"],
        ship_conformance::REPORT_FORMAT_VERSION
    );
    let cases = report["cases"].as_array().unwrap();
    let ids: Vec<&str> = cases.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "TC_SHIP_CMI_001",
            "TC_SHIP_HELLO_001",
            "TC_SHIP_PROT_001",
            "TC_SHIP_PIN_001",
            "TC_SHIP_TERM_001",
            "TC_SHIP_AM_001",
            "TC_SHIP_AMDATA_001",
            "TLS_SUITES",
        ]
    );
    for case in cases {
        assert_eq!(case["verdict"], "pass", "{case:#}");
    }
    // The gateway was stopped by the script's trap (its control socket is gone with it).
    let log = std::fs::read_to_string(work.join("gw.log")).unwrap();
    assert!(log.contains("stopped"), "{log}");
}
