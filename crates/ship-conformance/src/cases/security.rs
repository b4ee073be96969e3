//! SEC_001/002 (§9, §12.1): certificates whose SKI is not SHA-1 of their key. The DUT must abort
//! the TLS handshake, as server (the tool dials) and as client (the DUT dials the tool).
//!
//! A DUT that completes the handshake is not necessarily insecure: the tool goes on to the SHIP
//! hello and tells apart a DUT that then refuses the peer (it derives the SKI from the key, so
//! the forged claim gains nothing: verdict `deviation`) from one that answers hello `ready` to
//! a claimed SKI it trusts (it believed the forged SKI: `fail`, a security failure).
//!
//! Over the network the DUT only ever dials SKIs it knows, and it dials the tool's listener
//! expecting [`LISTENER`]'s SKI. So the server half of both cases presents a certificate that
//! claims exactly that SKI with a fresh key: only a DUT that checks the SKI against the key
//! refuses it (a DUT that checks only "is this the SKI I expected" accepts it).

use super::super::identities::LISTENER;
use super::super::peer::{Peer, Step};
use super::super::report::Verdict;
use super::super::script;
use super::super::spoof::{self, ForgedCertificate};
use super::super::{Ctx, TRANSPORT_TIMEOUT};
use super::Outcome;
use ship_hub::protocol::message::{HelloPhase, ShipMessage};

fn needs_both(ctx: &Ctx) -> Option<Outcome> {
    if ctx.target.is_none() || ctx.listener.is_none() {
        return Some(Outcome::not_applicable(
            "needs --target and --listen (the case tests the DUT as TLS server and as TLS client)",
        ));
    }
    None
}

/// What the DUT did with a forged certificate, in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// It aborted the TLS handshake, as SHIP requires.
    Aborted,
    /// It completed the TLS handshake, then refused the peer (closed, or hello not `ready`): it
    /// did not believe the certificate's SKI claim. A deviation from SHIP, not a security
    /// failure.
    Refused,
    /// It completed the TLS handshake and answered hello `ready`: it believed the claim. The
    /// security failure the case exists to catch.
    Believed,
}

/// What the forged certificate claims, for the evidence.
struct Claim<'a> {
    forged: &'a ForgedCertificate,
    /// The claimed SKI is one the DUT trusts (a paired tool SKI): only then does hello `ready`
    /// vs. refusal show whether the DUT believed the claim or computed the SKI from the key.
    trusted: bool,
}

/// After a completed TLS handshake: the SHIP conversation up to the DUT's hello, and what it
/// shows. `dut_is_server`: the tool dialled.
async fn after_tls(
    peer: Step<Peer>,
    dut_is_server: bool,
    part: &str,
    claim: &Claim<'_>,
    evidence: &mut Vec<String>,
) -> Part {
    let forged = claim.forged;
    let side = if dut_is_server { "client" } else { "server" };
    evidence.push(format!(
        "({part}) tool as {side}, certificate SKI {} but key hash {}: the DUT completed the TLS \
         handshake; the tool goes on to its hello",
        forged.claimed, forged.actual
    ));
    let reaction: Step<ShipMessage> = match peer {
        Err(e) => Err(e),
        Ok(mut peer) => {
            let reaction = async {
                if dut_is_server {
                    script::cmi_dialled(&mut peer).await?;
                } else {
                    script::cmi_accepted(&mut peer).await?;
                }
                peer.expect("connectionHello", script::WAIT, |m| {
                    matches!(m, ShipMessage::ConnectionHello(_))
                })
                .await
            }
            .await;
            peer.finish().await;
            evidence.extend(peer.take_log());
            reaction
        }
    };
    let refused = match reaction {
        Ok(ShipMessage::ConnectionHello(hello)) if hello.phase == HelloPhase::Ready => {
            let trust = if claim.trusted {
                "it believed the forged SKI (a tool SKI it trusts), although the certificate's \
                 key is another one"
                    .to_owned()
            } else {
                "it trusts a peer whose certificate claims an SKI bound to no key and never \
                 paired"
                    .to_owned()
            };
            evidence.push(format!(
                "FAIL ({part}) SECURITY: the DUT completed the TLS handshake with a {side} \
                 certificate claiming SKI {} whose key hashes to {}, then answered hello ready: \
                 {trust}",
                forged.claimed, forged.actual
            ));
            return Part::Believed;
        }
        Ok(ShipMessage::ConnectionHello(hello)) => format!("hello {}", hello.phase.as_str()),
        Ok(_) => "an unexpected message".to_owned(),
        Err(why) => why,
    };
    let meaning = if claim.trusted {
        "it did not believe the forged SKI (consistent with computing the SKI from the key): \
         not a security failure"
    } else {
        "the claimed SKI is not one the DUT trusts, so this part cannot show whether it checks \
         the key (SEC_002 and part (2) can)"
    };
    evidence.push(format!(
        "DEVIATION ({part}): the DUT completed the TLS handshake with a {side} certificate \
         claiming SKI {} whose key hashes to {}, then refused the peer ({refused}); {meaning}; \
         SHIP requires it to abort the TLS handshake",
        forged.claimed, forged.actual
    ));
    Part::Refused
}

/// Part (1): the tool dials with `forged`; the DUT must not complete the handshake.
async fn as_client(ctx: &Ctx, claim: &Claim<'_>, evidence: &mut Vec<String>) -> Part {
    let Some(target) = &ctx.target else {
        return Part::Aborted;
    };
    let forged = claim.forged;
    let tls = match forged.dial(target.addr).await {
        Err(error) => {
            evidence.push(format!(
                "(1) tool as client, certificate SKI {} but key hash {}: DUT aborted TLS ({error})",
                forged.claimed, forged.actual
            ));
            return Part::Aborted;
        }
        Ok(tls) => tls,
    };
    let peer = tokio::time::timeout(
        TRANSPORT_TIMEOUT,
        spoof::websocket_client(tls, target.addr, &target.path),
    )
    .await
    .map_err(|_| "the WebSocket upgrade timed out".to_owned())
    .and_then(|ws| ws.map_err(|e| format!("the WebSocket upgrade failed: {e}")))
    .map(|ws| Peer::raw(ws, "(1)"));
    after_tls(peer, true, "1", claim, evidence).await
}

/// Part (2): the DUT dials the tool, which presents a certificate claiming the listener's SKI.
async fn as_server(ctx: &Ctx, evidence: &mut Vec<String>) -> Option<Part> {
    let Some(listener_ski) = ctx.ski_of(LISTENER) else {
        evidence.push("FAIL: no listener identity".into());
        return None;
    };
    let forged = match ForgedCertificate::claiming(listener_ski) {
        Ok(forged) => forged,
        Err(e) => {
            evidence.push(format!("FAIL: could not forge a certificate: {e}"));
            return None;
        }
    };
    let tcp = match ctx.accept_tcp().await {
        Ok(tcp) => tcp,
        Err(e) => {
            evidence.push(format!("FAIL (2): {e}"));
            return None;
        }
    };
    let handshake = tokio::time::timeout(script::WAIT, forged.accept(tcp)).await;
    match handshake {
        Ok(Err(error)) => {
            evidence.push(format!(
                "(2) tool as server, certificate SKI {} but key hash {}: DUT aborted TLS ({error})",
                forged.claimed, forged.actual
            ));
            Some(Part::Aborted)
        }
        Err(_) => {
            evidence.push(
                "(2) tool as server: the DUT stopped the TLS handshake (no Finished within 10 s)"
                    .into(),
            );
            Some(Part::Aborted)
        }
        Ok(Ok(tls)) => {
            let peer = tokio::time::timeout(TRANSPORT_TIMEOUT, spoof::websocket_server(tls))
                .await
                .map_err(|_| "the WebSocket upgrade timed out".to_owned())
                .and_then(|ws| ws.map_err(|e| format!("the WebSocket upgrade failed: {e}")))
                .map(|ws| Peer::raw(ws, "(2)"));
            let claim = Claim {
                forged: &forged,
                trusted: true,
            };
            Some(after_tls(peer, false, "2", &claim, evidence).await)
        }
    }
}

/// The verdict from both parts: a believed forgery fails, a refusal after TLS deviates.
fn verdict(evidence: Vec<String>, parts: &[Option<Part>]) -> Outcome {
    let verdict = if parts
        .iter()
        .any(|p| matches!(p, None | Some(Part::Believed)))
    {
        Verdict::Fail
    } else if parts.contains(&Some(Part::Refused)) {
        Verdict::Deviation
    } else {
        Verdict::Pass
    };
    Outcome { verdict, evidence }
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
    let claim = Claim {
        forged: &forged,
        trusted: false,
    };
    let client = as_client(ctx, &claim, &mut evidence).await;
    let server = as_server(ctx, &mut evidence).await;
    verdict(evidence, &[Some(client), server])
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
                return verdict(evidence, &[None]);
            }
        }
        Err(e) => return Outcome::fail(format!("the genuine SKI_T1 could not connect: {e}")),
    }
    // A DUT that takes one connection at a time must have let go of the genuine one.
    tokio::time::sleep(ctx.case_gap).await;
    let forged = match ForgedCertificate::claiming(t1) {
        Ok(forged) => forged,
        Err(e) => return Outcome::fail(format!("could not forge a certificate: {e}")),
    };
    let claim = Claim {
        forged: &forged,
        trusted: true,
    };
    let client = as_client(ctx, &claim, &mut evidence).await;
    let server = as_server(ctx, &mut evidence).await;
    verdict(evidence, &[Some(client), server])
}
