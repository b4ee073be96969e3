//! What a full ship-conformance run against ship-hub must report (shared by the in-process and
//! the gateway-process runs).

use ship_conformance::{Report, Verdict};

/// The cases that do not apply to ship-hub, and why.
pub const NOT_APPLICABLE: &[&str] = &[
    "TC_SHIP_MDNS_001", // needs --mdns in a namespace: crates/ship-conformance/tests/conformance/mdns.rs
    "TC_SHIP_AMDATA_003", // PAR_clientDetailedDiscoverySupported=no (no SPINE application)
    "TC_SHIP_AMDATA_004", // PAR_queryAccessMethods=yes: ship-hub queries access methods
    // ship-hub's own PIN cases need --dut-pin / --tool-pin (crates/ship-gateway/tests/gateway/conformance.rs runs them
    // against a hub that requires a PIN).
    "EXT_PIN_001",
    "EXT_PIN_002",
    "EXT_PIN_003",
];

/// All 33 catalogue cases, ship-hub's 3 PIN cases and the tool's `TLS_SUITES` check ran; every applicable one passed (ship-hub
/// accepts all four SHIP suites, the mandatory CBC one included), the others were declared not
/// applicable.
pub fn assert_every_applicable_case_passes(report: &Report) {
    let table = report.to_markdown();
    assert_eq!(report.cases.len(), 37, "{table}");
    assert_eq!(
        report.cases.last().map(|c| c.id.as_str()),
        Some(ship_conformance::TLS_SUITES),
        "{table}"
    );
    for case in &report.cases {
        let expected = if NOT_APPLICABLE.contains(&case.id.as_str()) {
            Verdict::NotApplicable
        } else {
            Verdict::Pass
        };
        assert_eq!(
            case.verdict, expected,
            "{}: {:?}\n{table}",
            case.id, case.evidence
        );
    }
}
