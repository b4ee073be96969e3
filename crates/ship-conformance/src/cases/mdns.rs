//! MDNS_001 (SHIP §7.3.2, SRIP 2.2): the DUT's `_ship._tcp` TXT record, as browsed.
//!
//! mDNS is multicast: the browse runs only with `--mdns`, and only inside a private network
//! namespace (docs/testing.md) — the case refuses to start a daemon when a real interface exists.

use std::time::Duration;

use mdns_sd::{ServiceDaemon, ServiceEvent};

use super::super::Ctx;
use super::super::report::Verdict;
use super::Outcome;

const SERVICE_TYPE: &str = "_ship._tcp.local.";
const BROWSE_FOR: Duration = Duration::from_secs(10);

/// Interfaces other than loopback and the test veths (`shipt*`).
fn foreign_interfaces() -> Vec<String> {
    std::fs::read_to_string("/proc/self/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(|name| name.trim().to_owned())
        .filter(|name| name != "lo" && !name.starts_with("shipt"))
        .collect()
}

/// Checks one TXT record (key → raw value) against SHIP §7.3.2; returns the violations.
pub(crate) fn txt_violations(txt: &[(String, Option<Vec<u8>>)]) -> Vec<String> {
    let mut problems = Vec::new();
    let get = |key: &str| -> Option<Result<String, String>> {
        txt.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| {
                String::from_utf8(v.clone().unwrap_or_default())
                    .map_err(|_| format!("{key} is not UTF-8"))
            })
    };
    let mut required = |key: &str, check: &dyn Fn(&str) -> Option<String>| match get(key) {
        None => problems.push(format!("{key} missing")),
        Some(Err(e)) => problems.push(e),
        Some(Ok(v)) => {
            if let Some(p) = check(&v) {
                problems.push(format!("{key}={v:?}: {p}"));
            }
        }
    };
    required("txtvers", &|v| (v != "1").then(|| "must be \"1\"".into()));
    required("id", &|v| {
        (v.is_empty() || v.len() > 63).then(|| "must be 1..=63 bytes".into())
    });
    required("path", &|v| {
        (!v.contains('/') || v.len() > 32).then(|| "must contain \"/\" and be ≤ 32 bytes".into())
    });
    required("ski", &|v| {
        (v.len() != 40 || !v.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| "must be 40 hex characters".into())
    });
    required("register", &|v| {
        (v != "true" && v != "false").then(|| "must be \"true\" or \"false\"".into())
    });
    required("cat", &|v| {
        (v.is_empty() || !v.split(',').all(|c| c.trim().parse::<u8>().is_ok()))
            .then(|| "must be a comma-separated list of category numbers".into())
    });
    for key in ["brand", "model", "type"] {
        match get(key) {
            Some(Err(e)) => problems.push(e),
            Some(Ok(v)) if v.len() > 32 => problems.push(format!("{key} longer than 32 bytes")),
            _ => {}
        }
    }
    problems
}

/// TC_SHIP_MDNS_001.
pub(crate) async fn mdns_001(ctx: &Ctx) -> Outcome {
    if !ctx.mdns {
        return Outcome::not_applicable(
            "needs --mdns, run inside a private network namespace with the DUT (docs/testing.md)",
        );
    }
    let Some(target) = ctx.target.clone() else {
        return Outcome::not_applicable("needs --target (to know which SKI to look for)");
    };
    let foreign = foreign_interfaces();
    if !foreign.is_empty() {
        return Outcome::fail(format!(
            "refusing to browse mDNS: interfaces {foreign:?} exist, this is not a private network namespace"
        ));
    }
    let want = target.ski.to_string();
    let found = tokio::task::spawn_blocking(move || {
        let daemon = ServiceDaemon::new().map_err(|e| e.to_string())?;
        let events = daemon.browse(SERVICE_TYPE).map_err(|e| e.to_string())?;
        let deadline = std::time::Instant::now() + BROWSE_FOR;
        let mut result = Err(format!(
            "no {SERVICE_TYPE} instance with ski={want} within {} s",
            BROWSE_FOR.as_secs()
        ));
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match events.recv_timeout(left) {
                Ok(ServiceEvent::ServiceResolved(resolved)) => {
                    let txt: Vec<(String, Option<Vec<u8>>)> = resolved
                        .txt_properties
                        .iter()
                        .map(|p| (p.key().to_owned(), p.val().map(<[u8]>::to_vec)))
                        .collect();
                    let ski = txt
                        .iter()
                        .find(|(k, _)| k == "ski")
                        .and_then(|(_, v)| v.clone())
                        .map(|v| String::from_utf8_lossy(&v).to_ascii_lowercase());
                    if ski.as_deref() == Some(want.as_str()) {
                        result = Ok((resolved.fullname.clone(), txt));
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        let _ = daemon.shutdown();
        result
    })
    .await
    .unwrap_or_else(|e| Err(e.to_string()));
    match found {
        Err(e) => Outcome::fail(e),
        Ok((name, txt)) => {
            let shown: Vec<String> = txt
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        String::from_utf8_lossy(v.as_deref().unwrap_or_default())
                    )
                })
                .collect();
            let mut evidence = vec![format!("{name}: {}", shown.join(" "))];
            let problems = txt_violations(&txt);
            let verdict = if problems.is_empty() {
                evidence.push("TXT conforms to SHIP §7.3.2".into());
                Verdict::Pass
            } else {
                evidence.extend(problems.into_iter().map(|p| format!("FAIL: {p}")));
                Verdict::Fail
            };
            Outcome { verdict, evidence }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txt(pairs: &[(&str, &str)]) -> Vec<(String, Option<Vec<u8>>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn a_conforming_record_has_no_violations_and_each_rule_is_checked() {
        let good = [
            ("txtvers", "1"),
            ("id", "Demo-EVSE-1"),
            ("path", "/ship/"),
            ("ski", "00112233445566778899aabbccddeeff00112233"),
            ("register", "false"),
            ("cat", "2,3"),
        ];
        assert!(txt_violations(&txt(&good)).is_empty());
        let bad = [
            ("txtvers", "2"),
            ("path", "ship"),
            ("ski", "xyz"),
            ("register", "yes"),
            ("brand", &"b".repeat(33)),
        ];
        let problems = txt_violations(&txt(&bad));
        for key in [
            "txtvers",
            "id missing",
            "path",
            "ski",
            "register",
            "cat missing",
            "brand",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(key)),
                "{key}: {problems:?}"
            );
        }
    }
}
