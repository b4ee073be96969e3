//! The conformance report: one [`CaseReport`] per case, readable by a person (a Markdown table)
//! and by a machine (JSON, see [`Report::to_json`]). The format is stable: fields are only ever
//! added.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

/// The outcome of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verdict {
    /// The DUT behaved as the case requires.
    Pass,
    /// The DUT did not; the evidence says what was observed.
    Fail,
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

/// The whole run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// What was tested: `SKI@HOST:PORT` and/or the listening address.
    pub target: String,
    /// The version of this report format (`1`); fields are only ever added.
    pub format_version: u32,
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

    /// True when no case failed.
    pub fn passed(&self) -> bool {
        self.count(Verdict::Fail) == 0
    }

    /// The report as pretty-printed JSON (the machine-readable form).
    pub fn to_json(&self) -> String {
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The report as a Markdown table (the human-readable form).
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "Target: `{}` — {} pass, {} fail, {} not applicable, {:.0} s wall clock. \
             Evidence: the last {TABLE_EVIDENCE} observations per case (`--json` has all); \
             t = seconds since the case's connection was established.\n\n",
            self.target,
            self.count(Verdict::Pass),
            self.count(Verdict::Fail),
            self.count(Verdict::NotApplicable),
            Duration::from_millis(self.duration_ms).as_secs_f64()
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
            format_version: 1,
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
