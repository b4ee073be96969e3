//! The cases the tool runs (docs/conformance.md), and how each needs the network.

/// How a case reaches the DUT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Lane {
    /// The tool dials the DUT (`--target`) with a case-specific identity; such cases run
    /// concurrently.
    Dial,
    /// The case needs the DUT to dial the tool (`--listen`). The DUT dials one identity, so these
    /// cases run one after the other, each taking the DUT's next connection.
    Listen,
    /// mDNS browsing (`--mdns`), no SHIP connection.
    Mdns,
}

/// One case of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct CaseInfo {
    /// The ID, e.g. `TC_SHIP_CMI_001`.
    pub id: &'static str,
    /// How it reaches the DUT.
    pub lane: Lane,
    /// Roughly how long it runs against a conforming DUT with default timers, in seconds (used
    /// to start long cases first).
    pub seconds: u32,
}

const fn case(id: &'static str, lane: Lane, seconds: u32) -> CaseInfo {
    CaseInfo { id, lane, seconds }
}

/// All 33 cases of the catalogue, in catalogue order, then ship-hub's 3 PIN cases (`EXT_PIN_*`). Listen-lane cases are in the order they run.
pub const CASES: &[CaseInfo] = &[
    case("TC_SHIP_MDNS_001", Lane::Mdns, 10),
    case("TC_SHIP_CONN_001", Lane::Listen, 5),
    case("TC_SHIP_ROLE_001", Lane::Dial, 8),
    case("TC_SHIP_ROLE_002", Lane::Listen, 8),
    case("TC_SHIP_ROLE_003", Lane::Listen, 2),
    case("TC_SHIP_SEC_001", Lane::Listen, 2),
    case("TC_SHIP_SEC_002", Lane::Listen, 2),
    case("TC_SHIP_MSG_001", Lane::Dial, 4),
    case("TC_SHIP_MSG_002", Lane::Dial, 4),
    case("TC_SHIP_MSG_003", Lane::Dial, 1),
    case("TC_SHIP_CMI_001", Lane::Dial, 1),
    case("TC_SHIP_CMI_002", Lane::Listen, 1),
    case("TC_SHIP_CMI_003", Lane::Dial, 30),
    case("TC_SHIP_CMI_004", Lane::Listen, 30),
    case("TC_SHIP_CMI_005", Lane::Dial, 1),
    case("TC_SHIP_CMI_006", Lane::Listen, 1),
    case("TC_SHIP_HELLO_001", Lane::Dial, 1),
    case("TC_SHIP_HELLO_002", Lane::Dial, 170),
    case("TC_SHIP_HELLO_003", Lane::Dial, 122),
    case("TC_SHIP_HELLO_004", Lane::Dial, 31),
    case("TC_SHIP_PROT_001", Lane::Dial, 1),
    case("TC_SHIP_PROT_002", Lane::Listen, 1),
    case("TC_SHIP_PROT_003", Lane::Dial, 11),
    case("TC_SHIP_PROT_004", Lane::Listen, 11),
    case("TC_SHIP_PROT_005", Lane::Dial, 1),
    case("TC_SHIP_PROT_006", Lane::Listen, 1),
    case("TC_SHIP_PIN_001", Lane::Dial, 1),
    case("TC_SHIP_TERM_001", Lane::Dial, 2),
    case("TC_SHIP_AM_001", Lane::Dial, 1),
    case("TC_SHIP_AMDATA_001", Lane::Dial, 1),
    case("TC_SHIP_AMDATA_002", Lane::Dial, 9),
    case("TC_SHIP_AMDATA_003", Lane::Dial, 10),
    case("TC_SHIP_AMDATA_004", Lane::Dial, 120),
    // ship-hub's own PIN cases (SHIP §13.4.4.3; not in the test specification's catalogue).
    case("EXT_PIN_001", Lane::Dial, 1),
    case("EXT_PIN_002", Lane::Dial, 3),
    case("EXT_PIN_003", Lane::Dial, 1),
];

/// The order in which listen-lane cases run: cases whose connection reaches data exchange are
/// spread between the failing ones, because a DUT backs off longer after each failed connection
/// and resets its backoff after a completed one (docs/ship.md §8).
pub(crate) const LISTEN_ORDER: &[&str] = &[
    "TC_SHIP_ROLE_002",
    "TC_SHIP_CMI_002",
    "TC_SHIP_PROT_002",
    "TC_SHIP_CMI_006",
    "TC_SHIP_ROLE_003",
    "TC_SHIP_PROT_004",
    "TC_SHIP_CONN_001",
    "TC_SHIP_PROT_006",
    "TC_SHIP_CMI_004",
    "TC_SHIP_SEC_001",
    "TC_SHIP_SEC_002",
];

/// True when `id` matches the `--only` pattern: a comma-separated list of case-insensitive
/// substrings (`CMI`, `HELLO_00`, `TC_SHIP_SEC_001`); an empty pattern matches everything.
pub fn matches(pattern: &str, id: &str) -> bool {
    let id = id.to_ascii_uppercase();
    let mut parts = pattern
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .peekable();
    if parts.peek().is_none() {
        return true;
    }
    parts.any(|p| id.contains(&p.to_ascii_uppercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogue_has_33_distinct_cases_and_every_listen_case_is_ordered() {
        assert_eq!(
            CASES
                .iter()
                .filter(|c| c.id.starts_with("TC_SHIP_"))
                .count(),
            33
        );
        assert_eq!(CASES.len(), 36);
        let mut ids: Vec<_> = CASES.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 36);
        for case in CASES.iter().filter(|c| c.lane == Lane::Listen) {
            assert!(LISTEN_ORDER.contains(&case.id), "{}", case.id);
        }
        assert_eq!(
            LISTEN_ORDER.len(),
            CASES.iter().filter(|c| c.lane == Lane::Listen).count()
        );
    }

    #[test]
    fn only_pattern_is_a_case_insensitive_substring_list() {
        assert!(matches("", "TC_SHIP_CMI_001"));
        assert!(matches("cmi", "TC_SHIP_CMI_001"));
        assert!(matches("hello_002, cmi_00", "TC_SHIP_CMI_001"));
        assert!(!matches("HELLO", "TC_SHIP_CMI_001"));
    }
}
