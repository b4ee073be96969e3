//! CMI (§13.4.3) and the role cases ROLE_001/002: what happens before and at the first message.

use std::time::Duration;

use super::super::Ctx;
use super::super::peer::{Incoming, Peer, Step, show};
use super::super::script::{self, WAIT, is_cmi};
use super::super::wire;
use super::{Outcome, accepted, dialled};
use ship_hub::protocol::message::ShipMessage;

/// The catalogue's "still open 7 s after TLS without CMI".
const OPEN_BEFORE_CMI: Duration = Duration::from_secs(7);
/// CMI_003/004: closed within a further 25 s.
const CLOSE_AFTER_SILENCE: Duration = Duration::from_secs(25);
/// CMI_001/005: the ECT allows 10 s for the close after a CMI reject.
const CLOSE_AFTER_CMI_REJECT: Duration = Duration::from_secs(10);

/// TC_SHIP_ROLE_001: the tool (client) is silent 7 s, then sends CMI → CMI, then hello.
pub(crate) async fn role_001(ctx: &Ctx) -> Outcome {
    dialled(ctx, "role_001", async |peer: &mut Peer| {
        peer.stays_open(OPEN_BEFORE_CMI).await?;
        script::cmi_dialled(peer).await?;
        script::expect_ready(peer).await?;
        Ok("open at 7 s without CMI; CMI answered, then hello".into())
    })
    .await
}

/// TC_SHIP_ROLE_002: the DUT dials and sends CMI; the tool waits 7 s → open; CMI → hello.
pub(crate) async fn role_002(ctx: &Ctx) -> Outcome {
    accepted(ctx, async |peer: &mut Peer| {
        peer.expect("the DUT's CMI 00 00", WAIT, is_cmi).await?;
        peer.stays_open(OPEN_BEFORE_CMI).await?;
        peer.send(wire::CMI).await?;
        script::expect_ready(peer).await?;
        Ok("open 7 s after its CMI; hello after the tool's CMI".into())
    })
    .await
}

/// TC_SHIP_CMI_001 (`01 00`) / TC_SHIP_CMI_005 (`00 01`): the DUT (server) first sends its own
/// CMI `00 00`, then closes.
pub(crate) async fn cmi_wrong_first(ctx: &Ctx, name: &str, control_typed: bool) -> Outcome {
    let stimulus = if control_typed {
        wire::CMI_CONTROL_TYPED
    } else {
        wire::CMI_HEAD_1
    };
    dialled(ctx, name, async |peer: &mut Peer| {
        peer.send(stimulus).await?;
        match peer.next(WAIT).await {
            Some(Incoming::Message(bytes)) if bytes == wire::CMI => {}
            Some(Incoming::Message(bytes)) => {
                return Err(format!(
                    "first message is {}, not the DUT's own CMI 00 00",
                    show(&bytes)
                ));
            }
            Some(Incoming::Closed(_)) => {
                return Err("closed without sending its own CMI 00 00 first".into());
            }
            None => return Err("no CMI 00 00 within 10 s".into()),
        }
        let after = peer.expect_closed(CLOSE_AFTER_CMI_REJECT).await?;
        if !after.is_empty() {
            peer.note(format!(
                "(sent {} more message(s) before closing)",
                after.len()
            ));
        }
        Ok("own CMI 00 00 first, then closed".into())
    })
    .await
}

/// TC_SHIP_CMI_002 (`01 00`) / TC_SHIP_CMI_006 (`00 01`): the DUT (client) gets a bad CMI reply
/// and closes without sending anything further.
pub(crate) async fn cmi_wrong_reply(ctx: &Ctx, control_typed: bool) -> Outcome {
    let stimulus = if control_typed {
        wire::CMI_CONTROL_TYPED
    } else {
        wire::CMI_HEAD_1
    };
    accepted(ctx, async |peer: &mut Peer| {
        peer.expect("the DUT's CMI 00 00", WAIT, is_cmi).await?;
        peer.send(stimulus).await?;
        match peer.next(WAIT).await {
            Some(Incoming::Closed(_)) => Ok("closed without sending anything further".into()),
            Some(Incoming::Message(bytes)) => Err(format!(
                "sent {} after the bad CMI reply (must send nothing further and close)",
                show(&bytes)
            )),
            None => Err("did not close within 10 s of the bad CMI reply".into()),
        }
    })
    .await
}

/// TC_SHIP_CMI_003: the tool sends nothing: open at 7 s, closed within the next 25 s.
pub(crate) async fn cmi_003(ctx: &Ctx) -> Outcome {
    dialled(ctx, "cmi_003", async |peer: &mut Peer| {
        silent_then_closed(peer).await
    })
    .await
}

/// TC_SHIP_CMI_004: the DUT (client) sends CMI, the tool is silent: open at 7 s, closed within
/// the next 25 s.
pub(crate) async fn cmi_004(ctx: &Ctx) -> Outcome {
    accepted(ctx, async |peer: &mut Peer| {
        peer.expect("the DUT's CMI 00 00", WAIT, is_cmi).await?;
        silent_then_closed(peer).await
    })
    .await
}

async fn silent_then_closed(peer: &mut Peer) -> Step<String> {
    let wait = OPEN_BEFORE_CMI.saturating_sub(peer.elapsed());
    peer.stays_open(wait).await?;
    let before = peer.expect_closed(CLOSE_AFTER_SILENCE).await?;
    if let Some(bytes) = before.iter().find(|b| {
        !matches!(
            ship_hub::protocol::codec::decode(b),
            Ok(ShipMessage::Cmi) | Ok(ShipMessage::ConnectionClose(_))
        )
    }) {
        peer.note(format!("(sent {} while waiting for CMI)", show(bytes)));
    }
    Ok(format!(
        "open at 7 s, closed at {:.1} s (≤ 32 s)",
        peer.elapsed().as_secs_f64()
    ))
}
