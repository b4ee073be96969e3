//! Each ship-conformance case can fail: run against a fake device with exactly the defect the
//! case exists to catch (`conformance_fake::Sabotage`), the verdict is `fail` with the right
//! evidence. Cases that wait a minute or more are `#[ignore]`d (run by `.ci/test`).

use crate::fake as conformance_fake;

use std::sync::Arc;
use std::time::Duration;

use conformance_fake::{FakeDut, Sabotage};
use ship_conformance::{
    CaseReport, Declarations, Report, TLS_SUITES, Target, ToolConfig, ToolIdentities, Verdict, run,
};
use ship_hub::ShipId;

/// Runs `case` against a fake device with `sabotage`; `listen` lets the device dial the tool.
async fn run_against(
    case: &str,
    sabotage: Sabotage,
    listen: bool,
    declare: impl FnOnce(&mut Declarations),
) -> CaseReport {
    let report = run_report(case, sabotage, listen, |tool| {
        declare(&mut tool.declarations)
    })
    .await;
    report.case(case).expect("the case ran").clone()
}

/// Runs the cases `only` against a fake device with `sabotage` (`listen`: the device dials the
/// tool) and returns the whole report. `adjust` changes the tool's configuration last (the
/// declarations: the fake's SHIP ID, PAR_queryAccessMethods, a revoke hook).
pub(crate) async fn run_report(
    only: &str,
    sabotage: Sabotage,
    listen: bool,
    adjust: impl FnOnce(&mut ToolConfig),
) -> Report {
    let listener = if listen {
        Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
    } else {
        None
    };
    let dial = listener.as_ref().map(|l| l.local_addr().unwrap());
    let dut = FakeDut::start(sabotage, dial).await;
    let identities = ToolIdentities::generate(Some(dut.identity.ski())).unwrap();
    let mut tool = ToolConfig::new(identities);
    tool.target = Some(Target {
        ski: dut.identity.ski(),
        addr: dut.addr,
        path: "/ship/".into(),
    });
    tool.listener = listener;
    tool.only = only.into();
    tool.dial_wait = Duration::from_secs(30);
    let mut declarations = Declarations::default();
    declarations.ship_id = Some(ShipId::new("fake-dut").unwrap());
    declarations.queries_access_methods = true;
    let revoke = dut.revoke.clone();
    declarations.revoke_trust = Some(Arc::new(move |ski| revoke.revoke(ski)));
    tool.declarations = declarations;
    adjust(&mut tool);
    run(tool).await
}

pub(crate) fn assert_fails(report: &CaseReport, evidence: &str) {
    assert_fails_with_one_of(report, &[evidence]);
}

/// Fail, with evidence containing one of `evidence` (for defects whose symptom depends on which
/// of two equal timers fires first).
fn assert_fails_with_one_of(report: &CaseReport, evidence: &[&str]) {
    assert_eq!(
        report.verdict,
        Verdict::Fail,
        "{}: expected fail: {:?}",
        report.id,
        report.evidence
    );
    assert!(
        report
            .evidence
            .iter()
            .any(|e| evidence.iter().any(|wanted| e.contains(wanted))),
        "{}: no evidence containing one of {evidence:?}: {:?}",
        report.id,
        report.evidence
    );
}

/// The lenient fake ignores the wrong message; its own 10 s protocol-handshake timer then
/// sends error 1 just as the tool's 10 s wait for error 2 ends. Either observation is the right
/// failure.
const IGNORED_WRONG_MESSAGE: &[&str] = &[
    "no messageProtocolHandshakeError within 10",
    "error 1 (expected 2)",
];

async fn fails(case: &str, sabotage: Sabotage, listen: bool, evidence: &str) {
    let report = run_against(case, sabotage, listen, |_| {}).await;
    assert_fails(&report, evidence);
}

fn early_cmi_timeout() -> Sabotage {
    Sabotage {
        cmi_timeout: Duration::from_secs(3),
        ..Sabotage::default()
    }
}

const STAY_OPEN: &str = "closed while the connection had to stay open";

#[tokio::test]
async fn role_001_fails_when_the_server_closes_before_7s() {
    fails("TC_SHIP_ROLE_001", early_cmi_timeout(), false, STAY_OPEN).await;
}

#[tokio::test]
async fn role_002_fails_when_the_client_closes_before_7s() {
    fails("TC_SHIP_ROLE_002", early_cmi_timeout(), true, STAY_OPEN).await;
}

#[tokio::test]
async fn role_003_fails_when_the_device_cannot_be_server_and_client_at_once() {
    let sabotage = Sabotage {
        one_connection_at_a_time: true,
        ..Sabotage::default()
    };
    fails(
        "TC_SHIP_ROLE_003",
        sabotage,
        true,
        "FAIL: A (DUT as server)",
    )
    .await;
}

#[tokio::test]
#[ignore = "long: run via .ci/test"]
async fn conn_001_fails_when_the_device_keeps_the_older_connection() {
    let sabotage = Sabotage {
        one_connection_at_a_time: true,
        cmi_timeout: Duration::from_secs(60),
        ..Sabotage::default()
    };
    fails(
        "TC_SHIP_CONN_001",
        sabotage,
        true,
        "kept the older connection A open for 30 s",
    )
    .await;
}

#[tokio::test]
async fn sec_001_fails_when_the_device_trusts_an_unbound_ski() {
    let report = run_against("TC_SHIP_SEC_001", Sabotage::default(), true, |_| {}).await;
    assert_fails(
        &report,
        "FAIL (1) SECURITY: the DUT completed the TLS handshake",
    );
    assert_fails(&report, "bound to no key and never paired");
    assert_fails(
        &report,
        "FAIL (2) SECURITY: the DUT completed the TLS handshake",
    );
}

#[tokio::test]
async fn sec_002_fails_when_the_device_believes_a_forged_paired_ski() {
    let report = run_against("TC_SHIP_SEC_002", Sabotage::default(), true, |_| {}).await;
    assert_fails(
        &report,
        "FAIL (1) SECURITY: the DUT completed the TLS handshake",
    );
    assert_fails(&report, "it believed the forged SKI");
    assert_fails(
        &report,
        "FAIL (2) SECURITY: the DUT completed the TLS handshake",
    );
}

fn deaf() -> Sabotage {
    Sabotage {
        deaf_after_bad_bytes: true,
        ..Sabotage::default()
    }
}

#[tokio::test]
async fn msg_001_fails_when_an_empty_data_message_breaks_access_methods() {
    fails("TC_SHIP_MSG_001", deaf(), false, "no accessMethods within").await;
}

#[tokio::test]
async fn msg_002_fails_when_an_unknown_type_breaks_access_methods() {
    fails("TC_SHIP_MSG_002", deaf(), false, "no accessMethods within").await;
}

#[tokio::test]
async fn msg_003_fails_when_whitespace_is_not_tolerated() {
    let sabotage = Sabotage {
        strict_whitespace: true,
        ..Sabotage::default()
    };
    fails(
        "TC_SHIP_MSG_003",
        sabotage,
        false,
        "no accessMethods within",
    )
    .await;
}

fn silent_on_bad_cmi() -> Sabotage {
    Sabotage {
        no_cmi_on_bad_first: true,
        ..Sabotage::default()
    }
}

#[tokio::test]
async fn cmi_001_fails_when_the_server_closes_without_its_own_cmi() {
    fails(
        "TC_SHIP_CMI_001",
        silent_on_bad_cmi(),
        false,
        "closed without sending its own CMI",
    )
    .await;
}

#[tokio::test]
async fn cmi_005_fails_when_the_server_closes_without_its_own_cmi() {
    fails(
        "TC_SHIP_CMI_005",
        silent_on_bad_cmi(),
        false,
        "closed without sending its own CMI",
    )
    .await;
}

fn talkative() -> Sabotage {
    Sabotage {
        keeps_talking_after_bad_cmi: true,
        ..Sabotage::default()
    }
}

#[tokio::test]
async fn cmi_002_fails_when_the_client_talks_on_after_a_bad_cmi_reply() {
    fails(
        "TC_SHIP_CMI_002",
        talkative(),
        true,
        "after the bad CMI reply",
    )
    .await;
}

#[tokio::test]
async fn cmi_006_fails_when_the_client_talks_on_after_a_bad_cmi_reply() {
    fails(
        "TC_SHIP_CMI_006",
        talkative(),
        true,
        "after the bad CMI reply",
    )
    .await;
}

#[tokio::test]
async fn cmi_003_fails_when_the_server_closes_before_7s() {
    fails("TC_SHIP_CMI_003", early_cmi_timeout(), false, STAY_OPEN).await;
}

#[tokio::test]
#[ignore = "long: run via .ci/test"]
async fn cmi_003_fails_when_the_server_never_closes() {
    let sabotage = Sabotage {
        cmi_timeout: Duration::from_secs(60),
        ..Sabotage::default()
    };
    fails(
        "TC_SHIP_CMI_003",
        sabotage,
        false,
        "did not close within 25.0 s",
    )
    .await;
}

#[tokio::test]
async fn cmi_004_fails_when_the_client_closes_before_7s() {
    fails("TC_SHIP_CMI_004", early_cmi_timeout(), true, STAY_OPEN).await;
}

#[tokio::test]
async fn hello_001_fails_when_the_device_does_not_trust_the_tool() {
    let sabotage = Sabotage {
        hello_pending: true,
        ..Sabotage::default()
    };
    fails("TC_SHIP_HELLO_001", sabotage, false, "not ready").await;
}

#[tokio::test]
#[ignore = "long: run via .ci/test"]
async fn hello_002_fails_when_prolongation_restarts_the_timer() {
    let sabotage = Sabotage {
        restarts_hello_timer: true,
        ..Sabotage::default()
    };
    fails(
        "TC_SHIP_HELLO_002",
        sabotage,
        false,
        "the timer was restarted, not extended",
    )
    .await;
}

#[tokio::test]
async fn hello_003_fails_without_waiting() {
    let sabotage = Sabotage {
        hello_without_waiting: true,
        ..Sabotage::default()
    };
    fails(
        "TC_SHIP_HELLO_003",
        sabotage,
        false,
        "ready carries no waiting",
    )
    .await;
}

#[tokio::test]
async fn hello_004_fails_when_pending_is_answered_with_abort() {
    let sabotage = Sabotage {
        aborts_on_pending: true,
        ..Sabotage::default()
    };
    fails("TC_SHIP_HELLO_004", sabotage, false, STAY_OPEN).await;
}

#[tokio::test]
async fn prot_001_fails_when_the_selected_format_is_not_json_utf8() {
    let sabotage = Sabotage {
        select_format: "JSON-XML",
        ..Sabotage::default()
    };
    fails("TC_SHIP_PROT_001", sabotage, false, "lack JSON-UTF8").await;
}

#[tokio::test]
async fn prot_002_fails_when_the_client_announces_another_version() {
    let sabotage = Sabotage {
        announce_version: (2, 0),
        ..Sabotage::default()
    };
    fails(
        "TC_SHIP_PROT_002",
        sabotage,
        true,
        "announceMax: version 2.0",
    )
    .await;
}

fn slow() -> Sabotage {
    Sabotage {
        slow_handshake_timeout: true,
        ..Sabotage::default()
    }
}

#[tokio::test]
async fn prot_003_fails_without_a_timeout_error() {
    fails(
        "TC_SHIP_PROT_003",
        slow(),
        false,
        "no messageProtocolHandshakeError within 12",
    )
    .await;
}

#[tokio::test]
async fn prot_004_fails_without_a_timeout_error() {
    fails(
        "TC_SHIP_PROT_004",
        slow(),
        true,
        "no messageProtocolHandshakeError within 12",
    )
    .await;
}

fn lenient() -> Sabotage {
    Sabotage {
        ignores_wrong_message: true,
        ..Sabotage::default()
    }
}

#[tokio::test]
async fn prot_005_fails_when_a_wrong_message_is_ignored() {
    let report = run_against("TC_SHIP_PROT_005", lenient(), false, |_| {}).await;
    assert_fails_with_one_of(&report, IGNORED_WRONG_MESSAGE);
}

#[tokio::test]
async fn prot_006_fails_when_a_wrong_message_is_ignored() {
    let report = run_against("TC_SHIP_PROT_006", lenient(), true, |_| {}).await;
    assert_fails_with_one_of(&report, IGNORED_WRONG_MESSAGE);
}

#[tokio::test]
async fn pin_001_fails_when_a_pin_is_required() {
    let sabotage = Sabotage {
        pin_state: "required",
        ..Sabotage::default()
    };
    fails("TC_SHIP_PIN_001", sabotage, false, "expected none").await;
}

#[tokio::test]
async fn term_001_fails_when_the_device_never_closes_after_its_announce() {
    let sabotage = Sabotage {
        never_closes_after_announce: true,
        ..Sabotage::default()
    };
    fails(
        "TC_SHIP_TERM_001",
        sabotage,
        false,
        "did not close within 2.5 s",
    )
    .await;
}

#[tokio::test]
async fn am_001_fails_when_the_id_is_not_the_declared_ship_id() {
    let sabotage = Sabotage {
        ship_id: "somebody-else",
        ..Sabotage::default()
    };
    fails(
        "TC_SHIP_AM_001",
        sabotage,
        false,
        "differs from the declared SHIP ID",
    )
    .await;
}

#[tokio::test]
async fn amdata_001_fails_when_an_am_request_after_data_is_dropped() {
    let sabotage = Sabotage {
        am_after_data_dropped: true,
        ..Sabotage::default()
    };
    fails(
        "TC_SHIP_AMDATA_001",
        sabotage,
        false,
        "no accessMethods within",
    )
    .await;
}

#[tokio::test]
async fn amdata_002_fails_when_the_device_gives_up_on_its_own_request_too_early() {
    let sabotage = Sabotage {
        am_wait: Duration::from_secs(5),
        ..Sabotage::default()
    };
    fails("TC_SHIP_AMDATA_002", sabotage, false, STAY_OPEN).await;
}

#[tokio::test]
async fn amdata_003_fails_when_a_declared_spine_read_never_comes() {
    let report = run_against("TC_SHIP_AMDATA_003", Sabotage::default(), false, |d| {
        d.client_detailed_discovery = true;
    })
    .await;
    assert_fails(&report, "no the DUT's SPINE read within");
}

#[tokio::test]
#[ignore = "long: run via .ci/test"]
async fn amdata_004_fails_when_a_device_declared_not_to_query_does() {
    let report = run_against("TC_SHIP_AMDATA_004", Sabotage::default(), false, |d| {
        d.queries_access_methods = false;
    })
    .await;
    assert_fails(&report, "the DUT sent an accessMethodsRequest");
}

#[tokio::test]
async fn cases_that_need_an_option_are_not_applicable_with_the_reason() {
    let report = run_against("TC_SHIP_MDNS_001", Sabotage::default(), false, |_| {}).await;
    assert_eq!(report.verdict, Verdict::NotApplicable);
    assert!(
        report.evidence[0].contains("--mdns"),
        "{:?}",
        report.evidence
    );
    let report = run_against("TC_SHIP_TERM_001", Sabotage::default(), false, |d| {
        d.revoke_trust = None;
    })
    .await;
    assert_eq!(report.verdict, Verdict::NotApplicable);
    assert!(report.evidence[0].contains("PAR_initiateClose"));
    // It says how to supply the command.
    assert!(
        report.evidence[0].contains("--revoke-command 'CMD'")
            && report.evidence[0].contains("$SHIP_SKI"),
        "{:?}",
        report.evidence
    );
}

#[tokio::test]
async fn a_device_that_never_dials_fails_the_listen_cases_without_waiting_again() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let identities = ToolIdentities::generate(None).unwrap();
    let mut tool = ToolConfig::new(identities);
    tool.listener = Some(listener);
    tool.only = "ROLE_002,CMI_002".into();
    tool.dial_wait = Duration::from_secs(1);
    let report = run(tool).await;
    let first = report.case("TC_SHIP_ROLE_002").unwrap();
    let second = report.case("TC_SHIP_CMI_002").unwrap();
    assert_fails(first, "did not dial the tool within 1 s");
    assert_fails(second, "(in an earlier case)");
}

/// `TLS_SUITES` fails a device that does not accept SHIP §9's mandatory CBC suite: the fake
/// device's TLS offers only `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`. The probes still report
/// that it accepts GCM and refuses the other three.
#[tokio::test]
async fn tls_suites_fails_a_device_restricted_to_gcm() {
    let report = run_against(TLS_SUITES, Sabotage::default(), false, |_| {}).await;
    assert_fails(
        &report,
        "does not accept the mandatory TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    );
    let evidence = report.evidence.join("\n");
    assert!(
        evidence.contains("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256: accepted"),
        "{evidence}"
    );
    for refused in [
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384: refused",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256: refused",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: refused",
    ] {
        assert!(evidence.contains(refused), "{refused}: {evidence}");
    }
}

// ----- ship-hub's PIN cases (SHIP §13.4.4.3) ----------------------------------------------------

const FAKE_PIN: &str = "5555AAAAFF";

fn requiring_pin() -> Sabotage {
    Sabotage {
        requires_pin: Some(FAKE_PIN),
        ..Sabotage::default()
    }
}

async fn pin_case(case: &str, sabotage: Sabotage, dut_pin: bool, tool_pin: bool) -> CaseReport {
    run_against(case, sabotage, false, |d| {
        if dut_pin {
            d.dut_pin = Some(FAKE_PIN.parse().unwrap());
        }
        if tool_pin {
            d.tool_pin = Some(FAKE_PIN.parse().unwrap());
        }
    })
    .await
}

pub(crate) fn assert_passes(report: &CaseReport) {
    assert_eq!(
        report.verdict,
        Verdict::Pass,
        "{}: {:?}",
        report.id,
        report.evidence
    );
}

#[tokio::test]
async fn ext_pin_cases_pass_against_a_conforming_fake_and_need_their_declaration() {
    assert_passes(&pin_case("EXT_PIN_001", requiring_pin(), true, false).await);
    assert_passes(&pin_case("EXT_PIN_002", requiring_pin(), true, false).await);
    let sends = Sabotage {
        sends_pin: Some(FAKE_PIN),
        ..Sabotage::default()
    };
    assert_passes(&pin_case("EXT_PIN_003", sends, false, true).await);
    for case in ["EXT_PIN_001", "EXT_PIN_002", "EXT_PIN_003"] {
        let report = pin_case(case, Sabotage::default(), false, false).await;
        assert_eq!(report.verdict, Verdict::NotApplicable, "{case}");
    }
}

#[tokio::test]
async fn ext_pin_001_fails_when_the_device_requires_no_pin() {
    let report = pin_case("EXT_PIN_001", Sabotage::default(), true, false).await;
    assert_fails(&report, "expected required");
}

#[tokio::test]
async fn ext_pin_001_fails_when_the_device_rejects_the_right_pin() {
    let sabotage = Sabotage {
        rejects_every_pin: true,
        ..requiring_pin()
    };
    let report = pin_case("EXT_PIN_001", sabotage, true, false).await;
    assert_fails(
        &report,
        "the right PIN was answered with connectionPinError",
    );
}

#[tokio::test]
async fn ext_pin_002_fails_when_the_device_accepts_a_wrong_pin() {
    let sabotage = Sabotage {
        accepts_any_pin: true,
        ..requiring_pin()
    };
    let report = pin_case("EXT_PIN_002", sabotage, true, false).await;
    assert_fails(&report, "a wrong PIN was answered pinOk");
}

#[tokio::test]
async fn ext_pin_003_fails_when_the_device_sends_a_wrong_pin_or_none() {
    let wrong = Sabotage {
        sends_pin: Some("12345678"),
        ..Sabotage::default()
    };
    let report = pin_case("EXT_PIN_003", wrong, false, true).await;
    assert_fails(&report, "not the one declared");
    assert!(
        !format!("{:?}", report.evidence).contains("12345678"),
        "the report never shows a PIN: {:?}",
        report.evidence
    );
    let report = pin_case("EXT_PIN_003", Sabotage::default(), false, true).await;
    assert_fails(&report, "connectionPinInput");
}
