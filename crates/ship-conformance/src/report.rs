//! The conformance report: one [`CaseReport`] per case, readable by a person (a Markdown table)
//! and by a machine (JSON, see [`Report::to_json`]). The JSON is described by the JSON Schema
//! `crates/ship-conformance/report.schema.json`; its `format_version` ([`REPORT_FORMAT_VERSION`])
//! changes whenever a field or a value is removed or changes meaning, or a value is added to an
//! enumeration (`verdict`); adding a field keeps it.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use ship_hub::protocol::message::ProtocolVersion;

/// The version of the JSON report format: 2 (1 had no `deviation` verdict, no
/// `single_identity` and no `ship_version`).
pub const REPORT_FORMAT_VERSION: u32 = 2;

/// The outcome of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// The DUT behaved as the case requires.
    Pass,
    /// The DUT did not; the evidence says what was observed.
    Fail,
    /// The DUT departed from the letter of the case in a way the evidence shows to be harmless:
    /// TC_SHIP_SEC_001/002 when the DUT completed the TLS handshake with a forged certificate
    /// but then refused the peer (it derives the SKI from the key) instead of aborting the
    /// handshake. Not a failure (exit code 0) unless `--strict`.
    Deviation,
    /// The case does not apply to this DUT or this run; the evidence names the declaration or
    /// the missing option that makes it so.
    NotApplicable,
}

impl Verdict {
    /// `pass`, `fail` or `n/a`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Deviation => "deviation",
            Verdict::NotApplicable => "n/a",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one case found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseReport {
    /// The case ID, e.g. `TC_SHIP_CMI_001`.
    pub id: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The observations behind the verdict, in order: bytes sent and received, timings relative
    /// to the end of the TLS/WebSocket handshake of the case's connection.
    pub evidence: Vec<String>,
    /// Wall-clock time the case took, in milliseconds.
    pub duration_ms: u64,
}

impl CaseReport {
    /// A report with `verdict` and `evidence`, duration filled in later.
    pub(crate) fn new(id: &str, verdict: Verdict, evidence: Vec<String>) -> Self {
        CaseReport {
            id: id.to_owned(),
            verdict,
            evidence,
            duration_ms: 0,
        }
    }

    /// The duration as a [`Duration`].
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.duration_ms)
    }
}

/// `major.minor`.
pub(crate) fn version_text(version: ProtocolVersion) -> String {
    format!("{}.{}", version.major, version.minor)
}

/// The SHIP versions of the run's protocol handshakes, as `major.minor`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ShipVersions {
    /// The version the tool offered (its `announceMax`, and the highest it selects).
    pub offered: String,
    /// Every version the DUT announced as SHIP client (`announceMax`), in order of first sight.
    pub dut_announced: Vec<String>,
    /// Every version the DUT selected as SHIP server (`select`), in order of first sight.
    pub dut_selected: Vec<String>,
}

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// What was tested: `SKI@HOST:PORT` and/or the listening address.
    pub target: String,
    /// The version of this report format ([`REPORT_FORMAT_VERSION`]).
    pub format_version: u32,
    /// The run used one tool identity for every case (`--single-identity`).
    pub single_identity: bool,
    /// The SHIP versions offered and seen.
    pub ship_version: ShipVersions,
    /// One entry per case run, in catalogue order, then the tool's own checks
    /// ([`TLS_SUITES`](super::TLS_SUITES)).
    pub cases: Vec<CaseReport>,
    /// Wall-clock time of the whole run, in milliseconds.
    pub duration_ms: u64,
}

/// How many evidence entries (the last ones) the Markdown table shows per case.
const TABLE_EVIDENCE: usize = 3;

/// Start marker of the generated section in `docs/conformance.md`.
pub const REPORT_BEGIN: &str = "<!-- ship-conformance report: begin (generated, do not edit) -->";
/// End marker of the generated section in `docs/conformance.md`.
pub const REPORT_END: &str = "<!-- ship-conformance report: end -->";

impl Report {
    /// The case with `id`, if it was run.
    pub fn case(&self, id: &str) -> Option<&CaseReport> {
        self.cases.iter().find(|c| c.id == id)
    }

    /// How many cases have `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.cases.iter().filter(|c| c.verdict == verdict).count()
    }

    /// True when no case failed (deviations allowed): exit code 0.
    pub fn passed(&self) -> bool {
        self.count(Verdict::Fail) == 0
    }

    /// True when no case failed and none deviated (`--strict`).
    pub fn passed_strictly(&self) -> bool {
        self.passed() && self.count(Verdict::Deviation) == 0
    }

    /// The report as pretty-printed JSON (the machine-readable form).
    pub fn to_json(&self) -> String {
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The report as a Markdown table (the human-readable form).
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let deviations = match self.count(Verdict::Deviation) {
            0 => String::new(),
            n => format!("{n} deviation, "),
        };
        let list = |versions: &[String]| match versions {
            [] => "—".to_owned(),
            _ => versions.join(", "),
        };
        out.push_str(&format!(
            "Target: `{}` — {} pass, {} fail, {deviations}{} not applicable, {:.0} s wall clock{}. \
             SHIP version: the tool offered {}; the DUT announced {} (as client) and selected {} \
             (as server). Evidence: the last {TABLE_EVIDENCE} observations per case (`--json` \
             has all); t = seconds since the case's connection was established.\n\n",
            self.target,
            self.count(Verdict::Pass),
            self.count(Verdict::Fail),
            self.count(Verdict::NotApplicable),
            Duration::from_millis(self.duration_ms).as_secs_f64(),
            if self.single_identity {
                ", one tool identity"
            } else {
                ""
            },
            self.ship_version.offered,
            list(&self.ship_version.dut_announced),
            list(&self.ship_version.dut_selected),
        ));
        out.push_str("| case | verdict | time | evidence |\n|---|---|---|---|\n");
        for case in &self.cases {
            // The table shows the deciding observations (the last ones); the JSON has all.
            let skip = case.evidence.len().saturating_sub(TABLE_EVIDENCE);
            let mut evidence = case.evidence[skip..]
                .iter()
                .map(|e| e.replace('|', "\\|"))
                .collect::<Vec<_>>()
                .join("; ");
            if skip > 0 {
                evidence = format!("… {evidence}");
            }
            out.push_str(&format!(
                "| {} | {} | {:.1} s | {} |\n",
                case.id,
                case.verdict,
                case.duration().as_secs_f64(),
                evidence
            ));
        }
        out
    }

    /// Replaces the generated section of `path` (between [`REPORT_BEGIN`] and [`REPORT_END`])
    /// with this report's table; appends the section if the markers are missing.
    pub fn write_into_markdown(&self, path: &Path) -> std::io::Result<()> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let section = format!("{REPORT_BEGIN}\n{}{REPORT_END}", self.to_markdown());
        let updated = match (text.find(REPORT_BEGIN), text.find(REPORT_END)) {
            (Some(begin), Some(end)) if end > begin => format!(
                "{}{section}{}",
                &text[..begin],
                &text[end + REPORT_END.len()..]
            ),
            _ => format!("{}\n{section}\n", text.trim_end()),
        };
        std::fs::write(path, updated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        Report {
            target: "x".into(),
            format_version: REPORT_FORMAT_VERSION,
            single_identity: false,
            ship_version: ShipVersions {
                offered: "1.1".into(),
                dut_announced: vec!["1.0".into()],
                dut_selected: vec![],
            },
            cases: vec![CaseReport::new(
                "TC_SHIP_CMI_001",
                Verdict::Pass,
                vec!["a|b".into()],
            )],
            duration_ms: 1000,
        }
    }

    #[test]
    fn markdown_escapes_pipes_and_json_names_verdicts() {
        let report = sample();
        assert!(
            report
                .to_markdown()
                .contains("| TC_SHIP_CMI_001 | pass | 0.0 s | a\\|b |")
        );
        assert!(report.to_json().contains("\"verdict\": \"pass\""));
    }

    /// Every verdict, as the JSON names it (the match fails to compile when one is added).
    fn every_verdict() -> Vec<String> {
        let all = [
            Verdict::Pass,
            Verdict::Fail,
            Verdict::Deviation,
            Verdict::NotApplicable,
        ];
        for v in all {
            match v {
                Verdict::Pass | Verdict::Fail | Verdict::Deviation | Verdict::NotApplicable => {}
            }
        }
        all.iter()
            .map(|v| {
                serde_json::to_value(v)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }

    /// Checks `value` against `schema` (the subset of JSON Schema the report's schema uses), and
    /// that every field of `value` is described and required: the schema and the code cannot
    /// drift apart.
    fn check(
        schema: &serde_json::Value,
        value: &serde_json::Value,
        at: &str,
        errors: &mut Vec<String>,
    ) {
        use serde_json::Value;
        if let Some(constant) = schema.get("const")
            && constant != value
        {
            errors.push(format!("{at}: {value} is not {constant}"));
        }
        if let Some(Value::Array(choices)) = schema.get("enum")
            && !choices.contains(value)
        {
            errors.push(format!("{at}: {value} is not one of {choices:?}"));
        }
        let kind_ok = match schema.get("type").and_then(Value::as_str) {
            Some("object") => value.is_object(),
            Some("array") => value.is_array(),
            Some("string") => value.is_string(),
            Some("boolean") => value.is_boolean(),
            Some("integer") => value.is_u64() || value.is_i64(),
            _ => true,
        };
        if !kind_ok {
            errors.push(format!("{at}: {value} is not of type {:?}", schema["type"]));
        }
        if let (Some(Value::Object(properties)), Value::Object(fields)) =
            (schema.get("properties"), value)
        {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            for key in fields.keys() {
                if !properties.contains_key(key) || !required.contains(&key.as_str()) {
                    errors.push(format!(
                        "{at}.{key}: not described (and required) in the schema"
                    ));
                }
            }
            for key in properties.keys() {
                match fields.get(key) {
                    Some(field) => check(&properties[key], field, &format!("{at}.{key}"), errors),
                    None => errors.push(format!("{at}.{key}: in the schema, not in the report")),
                }
            }
        }
        if let (Some(items), Value::Array(values)) = (schema.get("items"), value) {
            for (i, item) in values.iter().enumerate() {
                check(items, item, &format!("{at}[{i}]"), errors);
            }
        }
    }

    #[test]
    fn the_json_report_matches_its_versioned_schema() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../report.schema.json")).unwrap();
        assert_eq!(
            schema["properties"]["format_version"]["const"],
            REPORT_FORMAT_VERSION
        );
        assert_eq!(
            schema["$id"],
            format!("ship-conformance-report-{REPORT_FORMAT_VERSION}")
        );
        let verdicts = &schema["properties"]["cases"]["items"]["properties"]["verdict"]["enum"];
        assert_eq!(verdicts, &serde_json::json!(every_verdict()));
        let mut report = sample();
        for (i, v) in [Verdict::Fail, Verdict::Deviation, Verdict::NotApplicable]
            .into_iter()
            .enumerate()
        {
            let mut case = CaseReport::new(&format!("TC_SHIP_X_{i}"), v, vec!["e".into()]);
            case.duration_ms = 5;
            report.cases.push(case);
        }
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        let mut errors = Vec::new();
        check(&schema, &json, "report", &mut errors);
        assert!(errors.is_empty(), "{errors:#?}");
    }

    #[test]
    fn the_generated_section_is_replaced_not_duplicated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.md");
        std::fs::write(&path, "# title\n").unwrap();
        sample().write_into_markdown(&path).unwrap();
        sample().write_into_markdown(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches(REPORT_BEGIN).count(), 1);
        assert!(text.starts_with("# title\n"));
    }
}
