//! Data exchange: MSG_001..003, AM_001, AMDATA_001..004, TERM_001 (§13.4.5–§13.4.7). Every case
//! first reaches data exchange as the dialling side.

use std::time::Duration;

use tokio::time::Instant;

use super::super::Ctx;
use super::super::lenient;
use super::super::peer::{Incoming, Peer, Step};
use super::super::script::{self, WAIT, is_am_reply, is_am_request};
use super::super::wire;
use super::{Outcome, dialled};
use ship_hub::ShipId;
use ship_hub::protocol::codec::decode;
use ship_hub::protocol::message::{AccessMethods, ClosePhase, ShipMessage};

/// MSG_001/002: how long the tool watches after the bad bytes.
const BAD_BYTES_WINDOW: Duration = Duration::from_secs(3);
/// AMDATA_002: the tool answers the DUT's request this late.
const LATE_AM_ANSWER: Duration = Duration::from_secs(8);
/// AMDATA_003: the AM reply must come within 8 s.
const AM_REPLY_WHILE_SPINE_PENDING: Duration = Duration::from_secs(8);
/// AMDATA_004: the observation window.
const NO_AM_REQUEST_WINDOW: Duration = Duration::from_secs(120);
/// TERM_001: the close must come by `maxTime` + 2 s.
const CLOSE_SLACK: Duration = Duration::from_secs(2);

/// Reaches data exchange; from then on every access-methods request of the DUT is answered at
/// once, whenever it comes. The tool does not wait for one: that the DUT asks (and when) is what
/// AMDATA_002/004 are about, not the cases that use this set-up.
async fn established(ctx: &Ctx, peer: &mut Peer, name: &str) -> Step<()> {
    script::to_data_exchange_dialled(ctx, peer).await?;
    peer.answer_access_methods(wire::access_methods(&ctx.ship_id_of(name)))
        .await
}

/// TC_SHIP_MSG_001 (`02`) / TC_SHIP_MSG_002 (`FF 00`): closed, or ignored and AM still answered.
pub(crate) async fn msg_bad_bytes(ctx: &Ctx, name: &str, empty_data: bool) -> Outcome {
    let stimulus = if empty_data {
        wire::DATA_WITHOUT_VALUE
    } else {
        wire::UNKNOWN_TYPE
    };
    dialled(ctx, name, async |peer: &mut Peer| {
        established(ctx, peer, name).await?;
        peer.send(stimulus).await?;
        let deadline = Instant::now() + BAD_BYTES_WINDOW;
        loop {
            match peer
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                None => break,
                Some(Incoming::Closed(_)) => {
                    return Ok("the DUT closed (permitted)".into());
                }
                Some(Incoming::Message(_)) => {}
            }
        }
        script::am_round_trip(peer, &wire::access_methods_request()).await?;
        Ok("ignored; accessMethods still answered".into())
    })
    .await
}

/// TC_SHIP_MSG_003: a whitespace-padded AM request is answered.
pub(crate) async fn msg_003(ctx: &Ctx) -> Outcome {
    dialled(ctx, "msg_003", async |peer: &mut Peer| {
        established(ctx, peer, "msg_003").await?;
        script::am_round_trip(peer, &wire::access_methods_request_padded()).await?;
        Ok("padded accessMethodsRequest answered".into())
    })
    .await
}

/// TC_SHIP_AM_001: `accessMethods` carries the DUT's SHIP ID.
pub(crate) async fn am_001(ctx: &Ctx) -> Outcome {
    let declared = ctx.declarations.ship_id.clone();
    dialled(ctx, "am_001", async |peer: &mut Peer| {
        established(ctx, peer, "am_001").await?;
        let reply = script::am_round_trip(peer, &wire::access_methods_request()).await?;
        let ShipMessage::AccessMethods(AccessMethods { id }) = reply else {
            return Err("internal: not accessMethods".into());
        };
        let id = id.ok_or("accessMethods without id")?;
        ShipId::new(id.clone()).map_err(|e| format!("id {id:?} is not a SHIP ID: {e}"))?;
        match declared {
            Some(expected) if expected.as_str() != id => Err(format!(
                "id {id:?} differs from the declared SHIP ID {:?}",
                expected.as_str()
            )),
            Some(_) => Ok(format!("id {id:?} = the declared SHIP ID")),
            None => Ok(format!(
                "id {id:?} is a valid SHIP ID (no SHIP ID declared to compare with)"
            )),
        }
    })
    .await
}

/// The `msgCounter`s of the burst's two SPINE reads (distinct from anything a DUT's own first
/// messages are likely to reference).
const BURST_READS: [(&str, u64); 2] = [
    ("nodeManagementDetailedDiscoveryData", 4711),
    ("nodeManagementUseCaseData", 4712),
];

/// The AMDATA burst: SPINE read, AM request, SPINE read.
async fn burst(peer: &mut Peer) -> Step<()> {
    let [(first, c1), (second, c2)] = BURST_READS;
    peer.send(&wire::spine_read(first, c1)).await?;
    peer.send(&wire::access_methods_request()).await?;
    peer.send(&wire::spine_read(second, c2)).await
}

/// True for a SHIP `data` message whose SPINE datagram answers the read with `msg_counter`
/// (`msgCounterReference`, with `cmdClassifier` `reply` or `result`).
fn answers(m: &ShipMessage, msg_counter: u64) -> bool {
    let ShipMessage::Data(data) = m else {
        return false;
    };
    matches!(
        lenient::spine_reference(data.payload.get()),
        (Some(reference), Some(classifier))
            if reference == msg_counter && (classifier == "reply" || classifier == "result")
    )
}

/// Expects the replies to the burst's two SPINE reads, matched by `msgCounterReference`, when
/// the DUT declares a SPINE application. Other data messages (the DUT's own reads,
/// notifications, replies to something else) are not replies.
async fn spine_replies(peer: &mut Peer, answers_spine: bool, by: Instant) -> Step<&'static str> {
    if !answers_spine {
        return Ok("SPINE replies not required (declared: no SPINE application)");
    }
    for (function, counter) in BURST_READS {
        peer.expect(
            &format!("the SPINE reply to the {function} read (msgCounterReference {counter})"),
            by.saturating_duration_since(Instant::now()),
            |m| answers(m, counter),
        )
        .await?;
    }
    Ok("both SPINE replies (matched by msgCounterReference)")
}

/// TC_SHIP_AMDATA_001: data + AM request + data back to back → all answered within 10 s.
pub(crate) async fn amdata_001(ctx: &Ctx) -> Outcome {
    let spine = ctx.declarations.answers_spine;
    dialled(ctx, "amdata_001", async |peer: &mut Peer| {
        established(ctx, peer, "amdata_001").await?;
        let by = Instant::now() + WAIT;
        burst(peer).await?;
        peer.expect("accessMethods", WAIT, is_am_reply).await?;
        let spine = spine_replies(peer, spine, by).await?;
        Ok(format!("accessMethods within 10 s; {spine}"))
    })
    .await
}

/// TC_SHIP_AMDATA_002: the tool answers the DUT's own AM request 8 s late; its burst is answered
/// within 10 s all the same.
pub(crate) async fn amdata_002(ctx: &Ctx) -> Outcome {
    if !ctx.declarations.queries_access_methods {
        return Outcome::not_applicable("PAR_queryAccessMethods=no (declared)");
    }
    let spine = ctx.declarations.answers_spine;
    dialled(ctx, "amdata_002", async |peer: &mut Peer| {
        script::to_data_exchange_dialled(ctx, peer).await?;
        peer.expect("the DUT's accessMethodsRequest", WAIT, is_am_request)
            .await?;
        let by = Instant::now() + WAIT;
        burst(peer).await?;
        peer.stays_open(LATE_AM_ANSWER).await?;
        peer.send(&wire::access_methods(&ctx.ship_id_of("amdata_002")))
            .await?;
        peer.expect(
            "accessMethods",
            by.saturating_duration_since(Instant::now()),
            is_am_reply,
        )
        .await?;
        let spine = spine_replies(peer, spine, by).await?;
        peer.stays_open(Duration::from_secs(1)).await?;
        Ok(format!(
            "accessMethods within 10 s although the DUT's request was answered after 8 s; {spine}"
        ))
    })
    .await
}

/// TC_SHIP_AMDATA_003: while the DUT's SPINE read is unanswered, an AM request is answered.
pub(crate) async fn amdata_003(ctx: &Ctx) -> Outcome {
    if !ctx.declarations.client_detailed_discovery {
        return Outcome::not_applicable(
            "PAR_clientDetailedDiscoverySupported=no (declared: no SPINE application sends reads)",
        );
    }
    dialled(ctx, "amdata_003", async |peer: &mut Peer| {
        established(ctx, peer, "amdata_003").await?;
        peer.expect("the DUT's SPINE read", WAIT, |m| {
            matches!(m, ShipMessage::Data(_))
        })
        .await?;
        peer.send(&wire::access_methods_request()).await?;
        peer.expect("accessMethods", AM_REPLY_WHILE_SPINE_PENDING, is_am_reply)
            .await?;
        peer.send(&wire::spine_read("nodeManagementDetailedDiscoveryData", 9))
            .await?;
        peer.stays_open(Duration::from_secs(2)).await?;
        Ok(
            "accessMethods within 8 s while the SPINE read was pending; up after the late reply"
                .into(),
        )
    })
    .await
}

/// TC_SHIP_AMDATA_004: a DUT that does not query access methods sends no request for 120 s.
pub(crate) async fn amdata_004(ctx: &Ctx) -> Outcome {
    if ctx.declarations.queries_access_methods {
        return Outcome::not_applicable(
            "PAR_queryAccessMethods=yes (declared): the case applies only to DUTs that never ask",
        );
    }
    dialled(ctx, "amdata_004", async |peer: &mut Peer| {
        script::to_data_exchange_dialled(ctx, peer).await?;
        let deadline = Instant::now() + NO_AM_REQUEST_WINDOW;
        loop {
            if peer.has_kept(is_am_request) {
                return Err("the DUT sent an accessMethodsRequest".into());
            }
            match peer
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
            {
                None => break,
                Some(Incoming::Closed(reason)) => {
                    return Err(format!("the DUT closed ({reason})"));
                }
                Some(Incoming::Message(bytes)) => {
                    if matches!(decode(&bytes), Ok(ShipMessage::AccessMethodsRequest)) {
                        return Err("the DUT sent an accessMethodsRequest".into());
                    }
                }
            }
        }
        Ok("no accessMethodsRequest in 120 s; connection up".into())
    })
    .await
}

/// The `connectionClose` reasons SHIP defines.
const CLOSE_REASONS: &[&str] = &["unspecific", "removedConnection"];

/// What is wrong with a `connectionClose` the codec refused, from its fields as sent; `None`
/// when the bytes are no `connectionClose`.
fn invalid_close(bytes: &[u8]) -> Option<String> {
    let fields = lenient::close_fields(bytes)?;
    let phase = fields.phase.as_deref().unwrap_or("(none)");
    let what = match phase {
        "announce" => "announce",
        "confirm" => "confirm",
        other => return Some(format!("connectionClose with invalid phase '{other}'")),
    };
    if let Some(reason) = &fields.reason
        && !CLOSE_REASONS.contains(&reason.as_str())
    {
        return Some(format!(
            "{what} with invalid reason '{reason}' (SHIP allows 'unspecific' or 'removedConnection')"
        ));
    }
    if let Some(max_time) = &fields.max_time
        && max_time.parse::<u32>().is_err()
    {
        return Some(format!("{what} with invalid maxTime {max_time}"));
    }
    None
}

/// TC_SHIP_TERM_001: the DUT revokes trust → `connectionClose` announce with reason and
/// `maxTime`; unconfirmed, it closes by `maxTime` + 2 s.
pub(crate) async fn term_001(ctx: &Ctx) -> Outcome {
    let Some(revoke) = ctx.declarations.revoke_trust.clone() else {
        return Outcome::not_applicable(
            "PAR_initiateClose=no: no way to make the DUT revoke trust was declared; supply one \
             with --revoke-command 'CMD', a shell command that makes the DUT revoke its trust in \
             the SKI given in $SHIP_SKI (its command line, web API, …)",
        );
    };
    let Some(ski) = ctx.ski_of("term_001") else {
        return Outcome::fail("no term_001 identity");
    };
    dialled(ctx, "term_001", async |peer: &mut Peer| {
        established(ctx, peer, "term_001").await?;
        peer.note(format!("tester revokes the DUT's trust in {ski}"));
        revoke(ski);
        let already_refused = peer.undecodable().len();
        let message = match peer
            .expect(
                "connectionClose announce",
                WAIT,
                |m| matches!(m, ShipMessage::ConnectionClose(c) if c.phase == ClosePhase::Announce),
            )
            .await
        {
            Ok(message) => message,
            Err(why) => {
                // An announce the codec refused is still an announce: say what was wrong with
                // it rather than that none came.
                let invalid = peer.undecodable()[already_refused..]
                    .iter()
                    .find_map(|bytes| invalid_close(bytes));
                return Err(match invalid {
                    Some(invalid) => match peer.closed_reason() {
                        Some(closed) => format!("{invalid}; then the DUT closed ({closed})"),
                        None => format!(
                            "{invalid}; the connection was still open {:.1} s later",
                            WAIT.as_secs_f64()
                        ),
                    },
                    None => why,
                });
            }
        };
        let announced = Instant::now();
        let ShipMessage::ConnectionClose(close) = message else {
            return Err("internal: not connectionClose".into());
        };
        let max_time = close.max_time.ok_or("announce without maxTime")?;
        let reason = close.reason.ok_or("announce without a reason")?;
        peer.expect_closed(Duration::from_millis(u64::from(max_time)) + CLOSE_SLACK)
            .await?;
        Ok(format!(
            "announce reason {} maxTime {max_time} ms; closed {:.2} s later without confirm",
            reason.as_str(),
            announced.elapsed().as_secs_f64()
        ))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::invalid_close;

    #[test]
    fn an_invalid_close_says_what_is_wrong() {
        let close = |json: &str| [&[3u8][..], json.as_bytes()].concat();
        assert_eq!(
            invalid_close(&close(
                r#"{"connectionClose":[{"phase":"announce"},{"maxTime":500},{"reason":"User close"}]}"#
            ))
            .as_deref(),
            Some("announce with invalid reason 'User close' (SHIP allows 'unspecific' or 'removedConnection')")
        );
        assert_eq!(
            invalid_close(&close(r#"{"connectionClose":[{"phase":"bye"}]}"#)).as_deref(),
            Some("connectionClose with invalid phase 'bye'")
        );
        assert_eq!(
            invalid_close(&close(
                r#"{"connectionClose":[{"phase":"announce"},{"maxTime":"soon"}]}"#
            ))
            .as_deref(),
            Some("announce with invalid maxTime soon")
        );
        assert_eq!(
            invalid_close(&close(r#"{"accessMethodsRequest":[]}"#)),
            None
        );
    }
}
