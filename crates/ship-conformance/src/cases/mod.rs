//! One function per catalogue case. Each returns an [`Outcome`]: the verdict and the evidence
//! (the connection log plus the observation that decided it).

mod cmi;
mod double;
mod exchange;
mod hello;
mod mdns;
mod pin;
mod prot;
mod security;

use super::Ctx;
use super::peer::{Peer, Step};
use super::report::Verdict;

/// The evidence of a case that is not applicable in single-identity mode.
pub(crate) const NEEDS_TWO_IDENTITIES: &str = "not applicable: needs two identities";

/// The case that makes the DUT revoke its trust in a tool identity (run last with one identity).
pub(crate) const REVOKES_TRUST: &str = "TC_SHIP_TERM_001";

/// What a case found.
pub(crate) struct Outcome {
    pub(crate) verdict: Verdict,
    pub(crate) evidence: Vec<String>,
}

impl Outcome {
    pub(crate) fn not_applicable(why: impl Into<String>) -> Self {
        Outcome {
            verdict: Verdict::NotApplicable,
            evidence: vec![why.into()],
        }
    }

    fn fail(why: impl Into<String>) -> Self {
        Outcome {
            verdict: Verdict::Fail,
            evidence: vec![why.into()],
        }
    }

    /// From a script's result: `Ok` passes with `pass_note`, `Err` fails with the observation;
    /// the connection's log comes first either way.
    fn from_steps(log: Vec<String>, result: Step<String>) -> Self {
        let mut evidence = log;
        match result {
            Ok(note) => {
                evidence.push(note);
                Outcome {
                    verdict: Verdict::Pass,
                    evidence,
                }
            }
            Err(why) => {
                evidence.push(format!("FAIL: {why}"));
                Outcome {
                    verdict: Verdict::Fail,
                    evidence,
                }
            }
        }
    }
}

/// Runs `script` on a connection the tool dials as identity `name`, then closes it.
async fn dialled<F>(ctx: &Ctx, name: &str, script: F) -> Outcome
where
    F: AsyncFnOnce(&mut Peer) -> Step<String>,
{
    if ctx.target.is_none() {
        return Outcome::not_applicable("needs --target (the tool dials the DUT)");
    }
    let mut peer = match ctx.dial(name, "").await {
        Ok(peer) => peer,
        Err(why) => return Outcome::fail(why),
    };
    let result = script(&mut peer).await;
    peer.finish().await;
    Outcome::from_steps(peer.take_log(), result)
}

/// Runs `script` on the DUT's next connection to the tool's listener, then closes it.
async fn accepted<F>(ctx: &Ctx, script: F) -> Outcome
where
    F: AsyncFnOnce(&mut Peer) -> Step<String>,
{
    if ctx.listener.is_none() {
        return Outcome::not_applicable("needs --listen (the DUT dials the tool)");
    }
    let mut peer = match ctx.accept_dut("").await {
        Ok(peer) => peer,
        Err(why) => return Outcome::fail(why),
    };
    let result = script(&mut peer).await;
    peer.finish().await;
    Outcome::from_steps(peer.take_log(), result)
}

/// Runs case `id`.
pub(crate) async fn run_case(ctx: &Ctx, id: &str) -> Outcome {
    match id {
        "TC_SHIP_MDNS_001" => mdns::mdns_001(ctx).await,
        "TC_SHIP_CONN_001" => double::conn_001(ctx).await,
        "TC_SHIP_ROLE_001" => cmi::role_001(ctx).await,
        "TC_SHIP_ROLE_002" => cmi::role_002(ctx).await,
        "TC_SHIP_ROLE_003" => double::role_003(ctx).await,
        "TC_SHIP_SEC_001" => security::sec_001(ctx).await,
        "TC_SHIP_SEC_002" => security::sec_002(ctx).await,
        "TC_SHIP_MSG_001" => exchange::msg_bad_bytes(ctx, "msg_001", true).await,
        "TC_SHIP_MSG_002" => exchange::msg_bad_bytes(ctx, "msg_002", false).await,
        "TC_SHIP_MSG_003" => exchange::msg_003(ctx).await,
        "TC_SHIP_CMI_001" => cmi::cmi_wrong_first(ctx, "cmi_001", true).await,
        "TC_SHIP_CMI_002" => cmi::cmi_wrong_reply(ctx, true).await,
        "TC_SHIP_CMI_003" => cmi::cmi_003(ctx).await,
        "TC_SHIP_CMI_004" => cmi::cmi_004(ctx).await,
        "TC_SHIP_CMI_005" => cmi::cmi_wrong_first(ctx, "cmi_005", false).await,
        "TC_SHIP_CMI_006" => cmi::cmi_wrong_reply(ctx, false).await,
        "TC_SHIP_HELLO_001" => hello::hello_001(ctx).await,
        "TC_SHIP_HELLO_002" => hello::hello_002(ctx).await,
        "TC_SHIP_HELLO_003" => hello::hello_003(ctx).await,
        "TC_SHIP_HELLO_004" => hello::hello_004(ctx).await,
        "TC_SHIP_PROT_001" => prot::prot_001(ctx).await,
        "TC_SHIP_PROT_002" => prot::prot_002(ctx).await,
        "TC_SHIP_PROT_003" => prot::prot_003(ctx).await,
        "TC_SHIP_PROT_004" => prot::prot_004(ctx).await,
        "TC_SHIP_PROT_005" => prot::prot_005(ctx).await,
        "TC_SHIP_PROT_006" => prot::prot_006(ctx).await,
        "TC_SHIP_PIN_001" => prot::pin_001(ctx).await,
        "TC_SHIP_TERM_001" => exchange::term_001(ctx).await,
        "TC_SHIP_AM_001" => exchange::am_001(ctx).await,
        "TC_SHIP_AMDATA_001" => exchange::amdata_001(ctx).await,
        "TC_SHIP_AMDATA_002" => exchange::amdata_002(ctx).await,
        "TC_SHIP_AMDATA_003" => exchange::amdata_003(ctx).await,
        "TC_SHIP_AMDATA_004" => exchange::amdata_004(ctx).await,
        "EXT_PIN_001" => pin::ext_pin_001(ctx).await,
        "EXT_PIN_002" => pin::ext_pin_002(ctx).await,
        "EXT_PIN_003" => pin::ext_pin_003(ctx).await,
        other => Outcome::fail(format!("unknown case {other}")),
    }
}
