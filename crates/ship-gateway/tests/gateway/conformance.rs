//! ship-conformance against ship-hub on loopback: every applicable case must pass.
//!
//! The DUT is an in-process [`Hub`] configured like the gateway: its own SHIP ID, pre-paired with
//! every tool SKI, the tool's listener paired with its address so the hub dials it. Runs minutes
//! of real time (HELLO_002 ≈ 3 min), hence `#[ignore]`; `.ci/test` runs it.
//!
//! `SHIP_CONFORMANCE_REPORT=$PWD/docs/conformance.md cargo test -p ship-gateway --test gateway
//! conformance::ship_hub_passes_every -- --ignored` (from the repository's root; the path must
//! be absolute, tests run in the crate's directory) also writes the report into
//! docs/conformance.md.
//!
//! The same run against a `ship-gateway` process (the product users install) is
//! `ship_gateway_passes_every_applicable_case`: its data dir is prepared with `ship-gateway pair`
//! for every tool identity (the tool's listener with its address, so the gateway dials it), then
//! `ship-gateway run --no-mdns` is started; trust is revoked for TERM_001 with
//! `ship-gateway unpair`, which reaches the running gateway through its control socket. Both long
//! runs live in this one test binary (the gateway's, which can start the gateway process) so
//! that they run side by side. `SHIP_CONFORMANCE_REPORT=$PWD/docs/conformance.md cargo test -p
//! ship-gateway --test gateway conformance::ship_gateway -- --ignored` writes the gateway's
//! report into docs/conformance.md.

use crate::gateway_support;

use gateway_support::common;

use std::process::{Command, Stdio};
use std::sync::Arc;

use gateway_support::{BIN, Running, assert_ok, gateway, ski_of, tempdir};
use ship_conformance::identities::LISTENER;
use ship_conformance::{Declarations, Target, ToolConfig, ToolIdentities, Verdict, run};
use ship_hub::hub::{Hub, PairedPeer};
use ship_hub::{ShipId, Ski};

use ship_test_support::conformance_expect;

/// A hub like the gateway's, trusting every tool identity; returns it and the tool config.
pub async fn hub_and_tool(ship_id: &str) -> (Hub, ToolConfig) {
    hub_and_tool_with(ship_id, |_| {}).await
}

/// [`hub_and_tool`] with the hub's configuration adjusted.
pub async fn hub_and_tool_with(
    ship_id: &str,
    adjust: impl FnOnce(&mut ship_hub::hub::HubConfig),
) -> (Hub, ToolConfig) {
    let dut = common::identity("dut");
    let identities = ToolIdentities::generate(Some(dut.ski())).expect("tool identities");
    let recorder = common::Recorder::new();
    // Default limits (10 connections), as the gateway runs: the tool's 6 dialling cases plus
    // the listen lane's up to 2 connections fit.
    let mut config = common::loopback_config(dut, ship_id, &recorder);
    adjust(&mut config);
    let hub = common::start(config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let listen_addr = listener.local_addr().unwrap();
    for (name, ski) in identities.trusted() {
        let address = (name == LISTENER).then_some(listen_addr);
        let peer = match address {
            Some(address) => PairedPeer::new(ski).with_address(address),
            None => PairedPeer::new(ski),
        };
        hub.pair(peer).expect("pair");
    }
    let mut tool = ToolConfig::new(identities);
    tool.target = Some(Target {
        ski: hub.local_ski(),
        addr: hub.local_addr(),
        path: "/ship/".into(),
    });
    tool.listener = Some(listener);
    let mut declarations = Declarations::default();
    declarations.ship_id = Some(ShipId::new(ship_id).unwrap());
    declarations.queries_access_methods = true;
    let revoker = hub.clone();
    declarations.revoke_trust = Some(Arc::new(move |ski| {
        revoker.unpair(ski).expect("unpair");
    }));
    tool.declarations = declarations;
    (hub, tool)
}

/// ship-hub passes ship-hub's own PIN cases: requiring a PIN (EXT_PIN_001/002) and sending
/// the PIN the tool requires (EXT_PIN_003).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ship_hub_passes_the_pin_cases() {
    use ship_hub::protocol::{Pin, PinRequirement};
    const DUT_PIN: &str = "0123 4567 89AB";
    const TOOL_PIN: &str = "FEDCBA98";
    let (hub, mut tool) = hub_and_tool_with("ship-hub-pin-dut", |c| {
        c.pin_requirement = PinRequirement::Required(Pin::new(DUT_PIN).unwrap());
    })
    .await;
    tool.only = "EXT_PIN_001,EXT_PIN_002".into();
    tool.declarations.dut_pin = Some(Pin::new(DUT_PIN).unwrap());
    let mut report = run(tool).await;
    hub.shutdown().await;
    let (hub, mut tool) = hub_and_tool_with("ship-hub-pin-dut", |c| {
        c.default_peer_pin = Some(Pin::new(TOOL_PIN).unwrap());
    })
    .await;
    tool.only = "EXT_PIN_003".into();
    tool.declarations.tool_pin = Some(Pin::new(TOOL_PIN).unwrap());
    report.cases.extend(run(tool).await.cases);
    hub.shutdown().await;
    assert_eq!(report.cases.len(), 3);
    for case in &report.cases {
        assert_eq!(
            case.verdict,
            Verdict::Pass,
            "{}: {:?}",
            case.id,
            case.evidence
        );
        let evidence = format!("{:?}", case.evidence);
        assert!(!evidence.contains("0123456789AB") && !evidence.contains(TOOL_PIN));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run via .ci/test"]
async fn ship_hub_passes_every_applicable_case() {
    let (hub, tool) = hub_and_tool("ship-hub-conformance-dut").await;
    let report = run(tool).await;
    hub.shutdown().await;
    if let Ok(path) = std::env::var("SHIP_CONFORMANCE_REPORT") {
        report
            .write_into_markdown(std::path::Path::new(&path))
            .expect("write the report");
    }
    conformance_expect::assert_every_applicable_case_passes(&report);
}

/// The sub-second cases in which the tool dials, so a plain `cargo test` exercises the tool
/// against ship-hub too (`SHIP_CONFORMANCE_ONLY=CMI,PROT` picks others).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ship_hub_passes_the_quick_cases() {
    let (hub, mut tool) = hub_and_tool("ship-hub-conformance-dut").await;
    tool.only = std::env::var("SHIP_CONFORMANCE_ONLY").unwrap_or_else(|_| {
        "CMI_001,CMI_005,HELLO_001,PROT_001,PROT_005,TC_SHIP_PIN_001,TERM_001,AM_001,MSG_003,AMDATA_001,\
         TLS_SUITES"
            .into()
    });
    let report = run(tool).await;
    hub.shutdown().await;
    let table = report.to_markdown();
    println!("{table}");
    assert!(!report.cases.is_empty());
    for case in &report.cases {
        assert_eq!(
            case.verdict,
            Verdict::Pass,
            "{}: {:?}\n{table}",
            case.id,
            case.evidence
        );
    }
}

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
