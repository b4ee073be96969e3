//! SEC_001/002 (§9, §12.1): certificates whose SKI is not SHA-1 of their key. The DUT must abort
//! the TLS handshake, as server (the tool dials) and as client (the DUT dials the tool).
//!
//! Over the network the DUT only ever dials SKIs it knows, and it dials the tool's listener
//! expecting [`LISTENER`]'s SKI. So the server half of both cases presents a certificate that
//! claims exactly that SKI with a fresh key: only a DUT that checks the SKI against the key
//! refuses it (a DUT that checks only "is this the SKI I expected" accepts it).

use super::super::Ctx;
use super::super::identities::LISTENER;
use super::super::report::Verdict;
use super::super::script;
use super::super::spoof::ForgedCertificate;
use super::Outcome;

fn needs_both(ctx: &Ctx) -> Option<Outcome> {
    if ctx.target.is_none() || ctx.listener.is_none() {
        return Some(Outcome::not_applicable(
            "needs --target and --listen (the case tests the DUT as TLS server and as TLS client)",
        ));
    }
    None
}

/// Part (1): the tool dials with `forged`; the DUT must not complete the handshake.
async fn as_client(ctx: &Ctx, forged: &ForgedCertificate, evidence: &mut Vec<String>) -> bool {
    let Some(target) = &ctx.target else {
        return false;
    };
    match forged.dial(target.addr).await {
        Err(error) => {
            evidence.push(format!(
                "(1) tool as client, certificate SKI {} but key hash {}: DUT aborted TLS ({error})",
                forged.claimed, forged.actual
            ));
            true
        }
        Ok(()) => {
            evidence.push(format!(
                "FAIL (1): the DUT completed the TLS handshake with a client certificate claiming SKI {} whose key hashes to {}",
                forged.claimed, forged.actual
            ));
            false
        }
    }
}

/// Part (2): the DUT dials the tool, which presents a certificate claiming the listener's SKI.
async fn as_server(ctx: &Ctx, evidence: &mut Vec<String>) -> bool {
    let Some(listener_ski) = ctx.ski_of(LISTENER) else {
        evidence.push("FAIL: no listener identity".into());
        return false;
    };
    let forged = match ForgedCertificate::claiming(listener_ski) {
        Ok(forged) => forged,
        Err(e) => {
            evidence.push(format!("FAIL: could not forge a certificate: {e}"));
            return false;
        }
    };
    let tcp = match ctx.accept_tcp().await {
        Ok(tcp) => tcp,
        Err(e) => {
            evidence.push(format!("FAIL (2): {e}"));
            return false;
        }
    };
    let handshake = tokio::time::timeout(script::WAIT, forged.accept(tcp)).await;
    match handshake {
        Ok(Err(error)) => {
            evidence.push(format!(
                "(2) tool as server, certificate SKI {} but key hash {}: DUT aborted TLS ({error})",
                forged.claimed, forged.actual
            ));
            true
        }
        Err(_) => {
            evidence.push(
                "(2) tool as server: the DUT stopped the TLS handshake (no Finished within 10 s)"
                    .into(),
            );
            true
        }
        Ok(Ok(())) => {
            evidence.push(format!(
                "FAIL (2): the DUT completed the TLS handshake with a server certificate claiming SKI {} whose key hashes to {}",
                forged.claimed, forged.actual
            ));
            false
        }
    }
}

fn verdict(evidence: Vec<String>, ok: bool) -> Outcome {
    Outcome {
        verdict: if ok { Verdict::Pass } else { Verdict::Fail },
        evidence,
    }
}

/// TC_SHIP_SEC_001: a certificate whose SKI is bound to no key.
pub(crate) async fn sec_001(ctx: &Ctx) -> Outcome {
    if let Some(outcome) = needs_both(ctx) {
        return outcome;
    }
    let forged = match ForgedCertificate::unbound() {
        Ok(forged) => forged,
        Err(e) => return Outcome::fail(format!("could not forge a certificate: {e}")),
    };
    let mut evidence = Vec::new();
    let client_ok = as_client(ctx, &forged, &mut evidence).await;
    let server_ok = as_server(ctx, &mut evidence).await;
    verdict(evidence, client_ok && server_ok)
}

/// TC_SHIP_SEC_002: after pairing with SKI_T1, a new key whose certificate claims SKI_T1.
pub(crate) async fn sec_002(ctx: &Ctx) -> Outcome {
    if let Some(outcome) = needs_both(ctx) {
        return outcome;
    }
    let Some(t1) = ctx.ski_of("sec_002") else {
        return Outcome::fail("no sec_002 identity");
    };
    let mut evidence = Vec::new();
    // The pairing: the genuine T1 reaches hello `ready` (the DUT trusts T1).
    match ctx.dial("sec_002", "genuine").await {
        Ok(mut peer) => {
            let result = async {
                script::cmi_dialled(&mut peer).await?;
                script::expect_ready(&mut peer).await
            }
            .await;
            peer.finish().await;
            evidence.extend(peer.take_log());
            if let Err(e) = result {
                evidence.push(format!("FAIL: the genuine SKI_T1 {t1} is not trusted: {e}"));
                return verdict(evidence, false);
            }
        }
        Err(e) => return Outcome::fail(format!("the genuine SKI_T1 could not connect: {e}")),
    }
    let forged = match ForgedCertificate::claiming(t1) {
        Ok(forged) => forged,
        Err(e) => return Outcome::fail(format!("could not forge a certificate: {e}")),
    };
    let client_ok = as_client(ctx, &forged, &mut evidence).await;
    let server_ok = as_server(ctx, &mut evidence).await;
    verdict(evidence, client_ok && server_ok)
}
