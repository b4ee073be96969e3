//! The `TLS_SUITES` tool check: which of the TLS 1.2 cipher suites SHIP §9 names the DUT accepts.
//! Not a case of the test specification's catalogue; the tool adds it to the report after the
//! catalogue cases (select it with `--only TLS_SUITES`).
//!
//! One probe per suite: a TCP connection and a TLS handshake with a client that offers only
//! that suite (and expects the DUT's SKI), then the connection is dropped, before any WebSocket
//! or SHIP message. The check fails when the DUT does not accept the suite SHIP §9 makes
//! mandatory, `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256`; the other suites are reported, not
//! required. It runs after every other case has finished, so that its handshakes (with a
//! trusted tool identity) cannot disturb a case in progress.

use tokio::net::TcpStream;

use super::cases::Outcome;
use super::report::Verdict;
use super::{Ctx, TRANSPORT_TIMEOUT};
use ship_hub::transport::{FALLBACK_SERVER_NAME, ShipTls, TlsOptions, TlsSuite};

/// The ID of the check in the report.
pub const TLS_SUITES: &str = "TLS_SUITES";

/// The suite SHIP §9 makes mandatory.
const MANDATORY: TlsSuite = TlsSuite::Aes128CbcSha256;

/// The tool identity the probes present (trusted by the DUT; its cases are over by then).
const PROBE_IDENTITY: &str = "cmi_001";

/// Runs one probe per suite of [`TlsSuite::ALL`].
pub(crate) async fn tls_suites(ctx: &Ctx) -> Outcome {
    let target = match ctx.target() {
        Ok(target) => target,
        Err(why) => return Outcome::not_applicable(why),
    };
    let Some(identity) = ctx.identities.get(ctx.identity_name(PROBE_IDENTITY)) else {
        return Outcome {
            verdict: Verdict::Fail,
            evidence: vec![format!("the tool has no identity {PROBE_IDENTITY:?}")],
        };
    };
    let mut evidence = Vec::new();
    let mut offered = Vec::new();
    for suite in TlsSuite::ALL {
        let mut options = TlsOptions::default();
        options.cipher_suites = Some(vec![suite]);
        let probe = async {
            let tls = ShipTls::new(identity, options).map_err(|e| e.to_string())?;
            let tcp = TcpStream::connect(target.addr)
                .await
                .map_err(|e| format!("TCP connect failed: {e}"))?;
            let stream = tls
                .connect(tcp, FALLBACK_SERVER_NAME, target.ski)
                .await
                .map_err(|e| e.to_string())?;
            Ok::<_, String>(stream.tls_suite())
        };
        match tokio::time::timeout(TRANSPORT_TIMEOUT, probe).await {
            Ok(Ok(Some(negotiated))) if negotiated == suite => {
                evidence.push(format!("{}: accepted", suite.name()));
                offered.push(suite);
            }
            Ok(Ok(other)) => evidence.push(format!(
                "{}: handshake completed with another suite ({other:?})",
                suite.name()
            )),
            Ok(Err(error)) => evidence.push(format!("{}: refused ({error})", suite.name())),
            Err(_) => evidence.push(format!(
                "{}: handshake timed out after {} s",
                suite.name(),
                TRANSPORT_TIMEOUT.as_secs()
            )),
        }
    }
    let names: Vec<&str> = offered.iter().map(|s| s.name()).collect();
    let verdict = if offered.contains(&MANDATORY) {
        evidence.push(format!("the DUT accepts: {}", names.join(", ")));
        Verdict::Pass
    } else {
        evidence.push(format!(
            "the DUT does not accept the mandatory {} (SHIP §9); it accepts: {}",
            MANDATORY.name(),
            if names.is_empty() {
                "none of the SHIP suites".to_owned()
            } else {
                names.join(", ")
            }
        ));
        Verdict::Fail
    };
    Outcome { verdict, evidence }
}
