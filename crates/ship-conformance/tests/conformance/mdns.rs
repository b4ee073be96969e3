//! TC_SHIP_MDNS_001 over real mDNS: ship-conformance browses `_ship._tcp` and checks the DUT's
//! TXT record. mDNS is multicast, so these tests run only inside a private network namespace
//! (`bash .ci/test`); each checks that first and fails, never skips, otherwise.

use ship_test_support::common;

use std::sync::Arc;

use common::{Recorder, assert_private_namespace, identity, loopback_config, start};
use ship_conformance::{Target, ToolConfig, ToolIdentities, Verdict, run};
use ship_hub::discovery::{DeviceCategories, MdnsConfig, MdnsDiscovery};

async fn mdns_verdict(target: Target) -> ship_conformance::CaseReport {
    let mut tool = ToolConfig::new(ToolIdentities::generate(Some(target.ski)).unwrap());
    tool.target = Some(target);
    tool.mdns = true;
    tool.only = "MDNS_001".into();
    run(tool).await.case("TC_SHIP_MDNS_001").unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via `bash .ci/test`"]
async fn ship_hub_announces_a_conforming_txt_record() {
    assert_private_namespace();
    let id = identity("dut");
    let ski = id.ski();
    let recorder = Recorder::new();
    let mut config = loopback_config(id, "mdns-conformance-dut", &recorder);
    config.device.categories = DeviceCategories::new(vec![2]).unwrap();
    config.discovery = Some(Arc::new(
        MdnsDiscovery::new(MdnsConfig::new(ski)).expect("mDNS daemon"),
    ));
    let hub = start(config).await;
    let report = mdns_verdict(Target {
        ski,
        addr: hub.local_addr(),
        path: "/ship/".into(),
    })
    .await;
    hub.shutdown().await;
    assert_eq!(report.verdict, Verdict::Pass, "{:?}", report.evidence);
}

/// The case can fail: a record with `txtvers=2`, no `register` and an over-long `brand`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via `bash .ci/test`"]
async fn a_nonconforming_txt_record_fails() {
    assert_private_namespace();
    let ski = identity("bad").ski();
    let daemon = ship_test_support::discovery_spoof::OwnedDaemon::new();
    let long_brand = "b".repeat(40);
    let ski_text = ski.to_string();
    let properties = [
        ("txtvers", "2"),
        ("id", "bad-device"),
        ("path", "/ship/"),
        ("ski", ski_text.as_str()),
        ("brand", long_brand.as_str()),
        ("cat", "2"),
    ];
    let info = mdns_sd::ServiceInfo::new(
        "_ship._tcp.local.",
        "bad device",
        "bad-device.local.",
        "127.0.0.1",
        4711,
        &properties[..],
    )
    .unwrap();
    daemon.register(info).unwrap();
    let report = mdns_verdict(Target {
        ski,
        addr: "127.0.0.1:4711".parse().unwrap(),
        path: "/ship/".into(),
    })
    .await;
    drop(daemon);
    assert_eq!(report.verdict, Verdict::Fail, "{:?}", report.evidence);
    for problem in ["txtvers", "register missing", "brand longer than 32 bytes"] {
        assert!(
            report.evidence.iter().any(|e| e.contains(problem)),
            "{problem}: {:?}",
            report.evidence
        );
    }
}
