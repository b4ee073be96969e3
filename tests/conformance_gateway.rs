//! ship-conformance against a `ship-gateway` process on loopback: every applicable case must
//! pass (issue 7). The gateway is the product users install, so this is the run that counts;
//! `tests/conformance_hub.rs` runs the same cases against an in-process Hub.
//!
//! The gateway's data dir is prepared with `ship-gateway pair` for every tool identity (the
//! tool's listener with its address, so the gateway dials it), then `ship-gateway run --no-mdns`
//! is started; trust is revoked for TERM_001 with `ship-gateway unpair`, which reaches the
//! running gateway through its control socket. Runs minutes of real time (HELLO_002 ≈ 3 min),
//! hence `#[ignore]`; `.ci/test` runs it.
//!
//! `SHIP_CONFORMANCE_REPORT=docs/conformance.md cargo test --test conformance_gateway --
//! --ignored` also writes the report into docs/conformance.md.

mod gateway_support;

use std::process::{Command, Stdio};
use std::sync::Arc;

use gateway_support::{BIN, Running, assert_ok, gateway, ski_of, tempdir};
use ship_hub::conformance::identities::LISTENER;
use ship_hub::conformance::{Declarations, Target, ToolConfig, ToolIdentities, run};
use ship_hub::{ShipId, Ski};

#[path = "support/conformance_expect.rs"]
mod conformance_expect;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run via .ci/test"]
async fn ship_gateway_passes_every_applicable_case() {
    let dir = tempdir();
    let dut_ski: Ski = ski_of(dir.path()).parse().expect("a SKI");
    let identities = ToolIdentities::generate(Some(dut_ski)).expect("tool identities");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let listen_addr = listener.local_addr().unwrap();
    for (name, ski) in identities.trusted() {
        let ski = ski.to_string();
        let address = listen_addr.to_string();
        let mut args = vec!["pair", ski.as_str()];
        if name == LISTENER {
            args.extend(["--address", address.as_str()]);
        }
        assert_ok(&gateway(dir.path(), &args));
    }
    let mut gateway_process = Running::start(dir.path(), &[]);
    let listening = gateway_process.event("listening");
    let addr = listening["address"].as_str().unwrap().parse().unwrap();
    let ship_id = listening["ship_id"].as_str().unwrap().to_owned();

    let mut tool = ToolConfig::new(identities);
    tool.target = Some(Target {
        ski: dut_ski,
        addr,
        path: "/ship/".into(),
    });
    tool.listener = Some(listener);
    let mut declarations = Declarations::default();
    declarations.ship_id = Some(ShipId::new(ship_id).unwrap());
    declarations.queries_access_methods = true;
    let data_dir = dir.path().to_owned();
    declarations.revoke_trust = Some(Arc::new(move |ski: Ski| {
        let status = Command::new(BIN)
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["unpair", &ski.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .expect("run ship-gateway unpair");
        assert!(status.success(), "ship-gateway unpair failed");
    }));
    tool.declarations = declarations;

    let report = run(tool).await;
    if let Ok(path) = std::env::var("SHIP_CONFORMANCE_REPORT") {
        report
            .write_into_markdown(std::path::Path::new(&path))
            .expect("write the report");
    }
    let status = gateway_process.terminate();
    assert!(
        status.success(),
        "the gateway exits cleanly on SIGTERM: {status}"
    );
    conformance_expect::assert_every_applicable_case_passes(&report);
}
