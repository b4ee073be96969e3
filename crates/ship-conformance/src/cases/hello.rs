//! Hello (§13.4.4.1): HELLO_001..004, with the DUT as SHIP server.

use std::time::Duration;

use tokio::time::Instant;

use super::super::Ctx;
use super::super::peer::{Peer, is_hello};
use super::super::script::{self, WAIT, is_handshake};
use super::super::wire;
use super::{Outcome, dialled};
use ship_hub::protocol::message::{HandshakeType, HelloPhase, ShipMessage};

/// HELLO_002: the tool's first prolongation request comes 45 s after the DUT's `ready`.
const FIRST_PROLONGATION_AFTER: Duration = Duration::from_secs(45);
/// HELLO_002: after each answered request the tool waits 60 s.
const WAIT_AFTER_PROLONGATION: Duration = Duration::from_secs(60);
/// HELLO_002: PAR_helloProlongationCount.
const PROLONGATION_ROUNDS: usize = 2;
/// The smallest `T_hello_inc` SHIP permits (60–240 s): a prolongation must extend the running
/// wait by at least this much (less a second for the network).
const MIN_EXTENSION_MS: i64 = 59_000;
/// HELLO_003: the permitted range of `waiting` in the DUT's `ready`.
const WAITING_RANGE_MS: std::ops::RangeInclusive<u32> = 58_000..=240_000;
/// HELLO_003: the DUT must have aborted and closed by `waiting` + 2 s.
const ABORT_SLACK: Duration = Duration::from_secs(2);
/// HELLO_004: the tool sends `ready` 30 s after its ignored `pending`.
const READY_AFTER_PENDING: Duration = Duration::from_secs(30);

/// After both `ready`: announceMax → the DUT (server) answers `select`.
async fn enters_protocol_handshake(ctx: &Ctx, peer: &mut Peer) -> Result<(), String> {
    peer.send(&wire::announce_max(ctx.ship_version)).await?;
    let select = peer
        .expect("select (protocol handshake)", WAIT, |m| {
            is_handshake(m, HandshakeType::Select)
        })
        .await?;
    if let ShipMessage::ProtocolHandshake(h) = &select {
        ctx.saw_select(h.version);
    }
    Ok(())
}

/// TC_SHIP_HELLO_001: `ready` both ways → protocol handshake.
pub(crate) async fn hello_001(ctx: &Ctx) -> Outcome {
    dialled(ctx, "hello_001", async |peer: &mut Peer| {
        script::cmi_dialled(peer).await?;
        script::hello(peer).await?;
        enters_protocol_handshake(ctx, peer).await?;
        Ok("ready/ready, then select to the tool's announceMax".into())
    })
    .await
}

/// TC_SHIP_HELLO_002: prolongation requests extend the DUT's running wait.
pub(crate) async fn hello_002(ctx: &Ctx) -> Outcome {
    dialled(ctx, "hello_002", async |peer: &mut Peer| {
        script::cmi_dialled(peer).await?;
        let first = script::expect_ready(peer).await?;
        let mut announced = first
            .waiting
            .ok_or("the DUT's ready carries no waiting")?;
        let mut announced_at = Instant::now();
        peer.stays_open(FIRST_PROLONGATION_AFTER).await?;
        for round in 1..=PROLONGATION_ROUNDS {
            let remaining =
                i64::from(announced) - announced_at.elapsed().as_millis() as i64;
            peer.send(&wire::hello_prolongation_request()).await?;
            let reply = peer
                .expect("the hello answering the prolongation request", WAIT, |m| {
                    matches!(m, ShipMessage::ConnectionHello(_))
                })
                .await?;
            let ShipMessage::ConnectionHello(reply) = reply else {
                return Err("internal: not a hello".into());
            };
            if reply.phase != HelloPhase::Ready {
                return Err(format!(
                    "round {round}: answered with phase {:?}, not ready",
                    reply.phase
                ));
            }
            let waiting = reply
                .waiting
                .ok_or_else(|| format!("round {round}: the answer carries no waiting"))?;
            peer.note(format!(
                "round {round}: remaining before the request ≈ {remaining} ms, answered waiting {waiting} ms"
            ));
            if i64::from(waiting) < remaining + MIN_EXTENSION_MS {
                return Err(format!(
                    "round {round}: waiting {waiting} ms < remaining {remaining} ms + T_hello_inc (≥ 60 s): \
                     the timer was restarted, not extended"
                ));
            }
            announced = waiting;
            announced_at = Instant::now();
            peer.stays_open(WAIT_AFTER_PROLONGATION).await?;
        }
        peer.send(&wire::hello_ready(script::TOOL_WAITING_MS)).await?;
        enters_protocol_handshake(ctx, peer).await?;
        Ok(format!(
            "{PROLONGATION_ROUNDS} prolongations extended the wait; open throughout; protocol handshake after ready"
        ))
    })
    .await
}

/// TC_SHIP_HELLO_003: `waiting` present and in range; silence → `aborted` and close by
/// `waiting` + 2 s.
pub(crate) async fn hello_003(ctx: &Ctx) -> Outcome {
    dialled(ctx, "hello_003", async |peer: &mut Peer| {
        script::cmi_dialled(peer).await?;
        let ready = script::expect_ready(peer).await?;
        let received = Instant::now();
        let waiting = ready.waiting.ok_or("the DUT's ready carries no waiting")?;
        if !WAITING_RANGE_MS.contains(&waiting) {
            return Err(format!("waiting {waiting} ms outside 58000..=240000"));
        }
        let deadline = received + Duration::from_millis(u64::from(waiting)) + ABORT_SLACK;
        peer.expect(
            "hello aborted",
            deadline.saturating_duration_since(Instant::now()),
            |m| is_hello(m, HelloPhase::Aborted),
        )
        .await?;
        peer.expect_closed(deadline.saturating_duration_since(Instant::now()))
            .await?;
        Ok(format!(
            "waiting {waiting} ms; aborted and closed {:.1} s after ready (≤ waiting + 2 s)",
            received.elapsed().as_secs_f64()
        ))
    })
    .await
}

/// TC_SHIP_HELLO_004: `pending` without prolongation request is ignored.
pub(crate) async fn hello_004(ctx: &Ctx) -> Outcome {
    dialled(ctx, "hello_004", async |peer: &mut Peer| {
        script::cmi_dialled(peer).await?;
        script::expect_ready(peer).await?;
        peer.send(&wire::hello_pending(120_000)).await?;
        peer.stays_open(READY_AFTER_PENDING).await?;
        if peer.has_kept(|m| is_hello(m, HelloPhase::Aborted)) {
            return Err("the DUT aborted after the pending hello".into());
        }
        peer.send(&wire::hello_ready(script::TOOL_WAITING_MS))
            .await?;
        enters_protocol_handshake(ctx, peer).await?;
        Ok("pending ignored for 30 s; protocol handshake after ready".into())
    })
    .await
}
