//! Verdicts that must not wrong a real device: each test plays a fake device that behaves as a
//! real stack was seen to, and asserts the verdict and the words the report gives it.
//!
//! * SHIP 1.1 devices pass the protocol handshake; the report says which version each side used.
//! * Reasons say what was received: a close announce with an invalid reason, a misspelt hello.
//! * SEC_001/002: completing TLS with a forged certificate and then refusing the peer is a
//!   `deviation`; believing the forged SKI is the `fail` (security).
//! * Single-identity devices: one tool identity, one connection at a time, a pause between
//!   cases.
//! * A device that never asks for access methods fails only the cases about that; SPINE
//!   replies are matched to their request by `msgCounterReference`.

use std::time::Duration;

use crate::fake::{Sabotage, Spine};
use crate::selftest::{assert_fails, assert_passes, run_report};
use ship_conformance::{Report, SHIP_1_0, Verdict};

fn case<'a>(report: &'a Report, id: &str) -> &'a ship_conformance::CaseReport {
    report
        .case(id)
        .unwrap_or_else(|| panic!("{id} did not run: {}", report.to_markdown()))
}

fn ship_1_1() -> Sabotage {
    Sabotage {
        announce_version: (1, 1),
        max_version: (1, 1),
        ..Sabotage::default()
    }
}

// ----- item 1: SHIP 1.1 -------------------------------------------------------------------------

/// A SHIP 1.1 device announces 1.1 as client: PROT_002 and ROLE_003 pass (they failed with
/// "announceMax: version 1.1 (expected 1.0)"), the tool selects 1.1 (the lower of both), and the
/// report names the versions.
#[tokio::test]
async fn a_ship_1_1_device_passes_the_protocol_handshake_and_the_report_names_its_version() {
    let report = run_report("PROT_001,PROT_002,ROLE_003", ship_1_1(), true, |_| {}).await;
    for id in ["TC_SHIP_PROT_001", "TC_SHIP_PROT_002", "TC_SHIP_ROLE_003"] {
        assert_passes(case(&report, id));
    }
    let prot_002 = case(&report, "TC_SHIP_PROT_002");
    assert!(
        prot_002
            .evidence
            .last()
            .unwrap()
            .contains("the DUT announced SHIP 1.1/JSON-UTF8; the tool selected 1.1"),
        "{:?}",
        prot_002.evidence
    );
    assert_eq!(report.ship_version.offered, "1.1");
    assert_eq!(report.ship_version.dut_announced, ["1.1"]);
    assert_eq!(report.ship_version.dut_selected, ["1.1"]);
    assert!(
        report
            .to_markdown()
            .contains("the tool offered 1.1; the DUT announced 1.1 (as client) and selected 1.1")
    );
}

/// `--ship-version 1.0` pins the tool to 1.0: the 1.1 device then selects 1.0 (as server) and
/// is selected 1.0 (as client), and passes.
#[tokio::test]
async fn the_tool_pinned_to_1_0_negotiates_1_0_with_a_1_1_device() {
    let report = run_report("PROT_001,PROT_002", ship_1_1(), true, |tool| {
        tool.ship_version = SHIP_1_0;
    })
    .await;
    assert_passes(case(&report, "TC_SHIP_PROT_001"));
    assert_passes(case(&report, "TC_SHIP_PROT_002"));
    assert_eq!(report.ship_version.offered, "1.0");
    assert_eq!(report.ship_version.dut_announced, ["1.1"]);
    assert_eq!(report.ship_version.dut_selected, ["1.0"]);
}

/// A server that selects a version above the tool's offer fails PROT_001, with both versions.
#[tokio::test]
async fn prot_001_fails_a_select_above_the_offer() {
    let sabotage = Sabotage {
        selects_version: Some((1, 1)),
        ..Sabotage::default()
    };
    let report = run_report("PROT_001", sabotage, false, |tool| {
        tool.ship_version = SHIP_1_0;
    })
    .await;
    assert_fails(
        case(&report, "TC_SHIP_PROT_001"),
        "the DUT's select: version 1.1 (expected 1.x, at most the offered 1.0)",
    );
}

// ----- item 2: exact reasons --------------------------------------------------------------------

/// A close announce with a reason SHIP does not define fails TERM_001 with that reason, not with
/// "closed before sending connectionClose announce".
#[tokio::test]
async fn term_001_names_an_invalid_close_reason() {
    let sabotage = Sabotage {
        close_reason: "User close",
        ..Sabotage::default()
    };
    let report = run_report("TERM_001", sabotage, false, |_| {}).await;
    let term = case(&report, "TC_SHIP_TERM_001");
    assert_fails(
        term,
        "FAIL: announce with invalid reason 'User close' (SHIP allows 'unspecific' or \
         'removedConnection'); then the DUT closed",
    );
    assert!(
        !term
            .evidence
            .iter()
            .any(|e| e.contains("closed before sending")),
        "{:?}",
        term.evidence
    );
}

/// An undecodable message is reported by what was received (escaped) and why it was refused,
/// in the failure it caused.
#[tokio::test]
async fn an_undecodable_message_is_reported_by_what_was_received() {
    let sabotage = Sabotage {
        garbled_hello: true,
        ..Sabotage::default()
    };
    let report = run_report("HELLO_001", sabotage, false, |_| {}).await;
    assert_fails(
        case(&report, "TC_SHIP_HELLO_001"),
        "the DUT closed before sending connectionHello",
    );
    assert_fails(
        case(&report, "TC_SHIP_HELLO_001"),
        "meanwhile it sent 1 undecodable message(s): t=",
    );
    assert_fails(
        case(&report, "TC_SHIP_HELLO_001"),
        r#"← 01 {"connectionHello":[{"phase":"redy"},{"waiting":120000}]} (connectionHello: invalid phase: unknown value "redy")"#,
    );
}

// ----- item 3: forged certificates --------------------------------------------------------------

/// A device whose TLS completes with a forged certificate but which then computes the SKI from
/// the key (hello `pending` as server, a close as client) deviates from SEC_001/002; it does not
/// fail them. (A device that believes the forged SKI fails: `selftest::sec_00*`.)
#[tokio::test]
async fn sec_cases_deviate_when_the_device_refuses_the_forged_ski_after_tls() {
    let sabotage = Sabotage {
        ski_from_key_after_tls: true,
        ..Sabotage::default()
    };
    let report = run_report("SEC_001,SEC_002", sabotage, true, |_| {}).await;
    for id in ["TC_SHIP_SEC_001", "TC_SHIP_SEC_002"] {
        let sec = case(&report, id);
        assert_eq!(sec.verdict, Verdict::Deviation, "{id}: {:?}", sec.evidence);
        let evidence = sec.evidence.join("\n");
        assert!(!evidence.contains("FAIL"), "{id}: {evidence}");
        assert!(
            evidence.contains("DEVIATION (1): the DUT completed the TLS handshake")
                && evidence.contains("then refused the peer (hello pending)")
                && evidence.contains("DEVIATION (2): the DUT completed the TLS handshake")
                && evidence.contains("SHIP requires it to abort the TLS handshake"),
            "{id}: {evidence}"
        );
    }
    // Where the claimed SKI is a trusted one, the refusal shows that the claim was not believed.
    let sec_002 = case(&report, "TC_SHIP_SEC_002").evidence.join("\n");
    assert!(
        sec_002.contains("it did not believe the forged SKI (consistent with computing the SKI from the key): not a security failure"),
        "{sec_002}"
    );
    assert!(report.passed() && !report.passed_strictly());
}

// ----- item 4: single-identity devices ----------------------------------------------------------

/// Trusts one SKI, takes one connection at a time. Its own dials to the tool take that one
/// connection only once their TLS handshake completed: a dial the tool leaves unanswered (it
/// refuses the device's dials while a case dials) must not make the device refuse the case's
/// connection. (A device whose unanswered dial does block it can still refuse a case's
/// connection that arrives in the same moment: docs/conformance.md, single-identity mode.)
fn single_connection_single_ski() -> Sabotage {
    Sabotage {
        trusts_one_ski: true,
        one_connection_at_a_time: true,
        busy_while_dialling: false,
        ..Sabotage::default()
    }
}

const SINGLE_CASES: &str = "CMI_001,HELLO_001,PROT_001,PROT_002,ROLE_002,ROLE_003,AM_001,TERM_001";

/// A device that trusts one remote SKI and takes one connection at a time passes every case
/// that can be played with one identity in `--single-identity` mode; ROLE_003 is not applicable
/// ("needs two identities"); TERM_001 runs last (it revokes the one trusted identity). With an
/// identity per case, the same device fails.
#[tokio::test]
async fn single_identity_mode_plays_a_device_that_trusts_one_ski() {
    let report = run_report(SINGLE_CASES, single_connection_single_ski(), true, |tool| {
        tool.single_identity = true;
        tool.identities = tool.identities.clone().single();
        tool.case_gap = Some(Duration::from_millis(500));
    })
    .await;
    assert!(report.single_identity);
    for c in &report.cases {
        let expected = if c.id == "TC_SHIP_ROLE_003" {
            Verdict::NotApplicable
        } else {
            Verdict::Pass
        };
        assert_eq!(c.verdict, expected, "{}: {:?}", c.id, c.evidence);
    }
    let role_003 = case(&report, "TC_SHIP_ROLE_003");
    assert!(
        role_003.evidence[0].starts_with("not applicable: needs two identities"),
        "{:?}",
        role_003.evidence
    );

    // The same device, one identity per case: every identity after the first is not trusted.
    let report = run_report(
        "CMI_001,HELLO_001,PROT_001,AM_001",
        single_connection_single_ski(),
        false,
        |_| {},
    )
    .await;
    assert!(report.count(Verdict::Fail) >= 2, "{}", report.to_markdown());
}

fn closes_slowly() -> Sabotage {
    Sabotage {
        one_connection_at_a_time: true,
        slow_close: Duration::from_secs(1),
        ..Sabotage::default()
    }
}

/// A device that holds its one connection 1 s after a close refuses a case that dials at once;
/// `--case-gap 2` lets every case through.
#[tokio::test]
async fn case_gap_lets_a_device_that_closes_slowly_take_every_case() {
    const CASES: &str = "CMI_001,HELLO_001,PROT_001";
    let without = run_report(CASES, closes_slowly(), false, |tool| {
        tool.single_identity = true;
        tool.case_gap = Some(Duration::ZERO);
    })
    .await;
    assert!(
        without.count(Verdict::Fail) >= 1,
        "{}",
        without.to_markdown()
    );
    let with = run_report(CASES, closes_slowly(), false, |tool| {
        tool.single_identity = true;
        tool.case_gap = Some(Duration::from_secs(2));
    })
    .await;
    for c in &with.cases {
        assert_passes(c);
    }
}

// ----- item 5: access methods and SPINE replies -------------------------------------------------

/// A device that never sends its own accessMethodsRequest passes every case that is not about
/// it (they failed for that alone); AMDATA_002, which is about it, still requires it.
#[tokio::test]
async fn a_device_that_never_asks_for_access_methods_fails_only_the_case_about_it() {
    let sabotage = Sabotage {
        never_requests_am: true,
        ..Sabotage::default()
    };
    let report = run_report(
        "MSG_001,MSG_002,MSG_003,AM_001,AMDATA_001,AMDATA_002,TERM_001,TC_SHIP_PIN_001",
        sabotage,
        false,
        |_| {},
    )
    .await;
    for c in &report.cases {
        if c.id == "TC_SHIP_AMDATA_002" {
            assert_fails(c, "no the DUT's accessMethodsRequest within");
        } else {
            assert_passes(c);
        }
    }
}

/// AMDATA_001 with a SPINE application declared: data messages that are not replies to the
/// burst's reads (the device's own reads) do not count; replies that reference the reads'
/// msgCounter do.
#[tokio::test]
async fn amdata_001_matches_spine_replies_by_msg_counter_reference() {
    let declare = |tool: &mut ship_conformance::ToolConfig| tool.declarations.answers_spine = true;
    let own_reads = Sabotage {
        spine: Spine::OwnReadsOnly,
        ..Sabotage::default()
    };
    let report = run_report("AMDATA_001", own_reads, false, declare).await;
    assert_fails(
        case(&report, "TC_SHIP_AMDATA_001"),
        "no the SPINE reply to the nodeManagementDetailedDiscoveryData read (msgCounterReference 4711)",
    );
    let replies = Sabotage {
        spine: Spine::Replies,
        ..Sabotage::default()
    };
    let report = run_report("AMDATA_001", replies, false, declare).await;
    assert_passes(case(&report, "TC_SHIP_AMDATA_001"));
    assert!(
        case(&report, "TC_SHIP_AMDATA_001")
            .evidence
            .last()
            .unwrap()
            .contains("matched by msgCounterReference")
    );
}
