//! Protocol handshake (§13.4.4.2) and PIN (§13.4.4.3): PROT_001..006, PIN_001.

use std::time::Duration;

use super::super::Ctx;
use super::super::peer::{Peer, Step};
use super::super::script::{self, WAIT, is_am_reply, is_handshake, is_pin_state};
use super::super::wire;
use super::{Outcome, accepted, dialled};
use ship_hub::protocol::message::{
    ConnectionPinState, HandshakeErrorCode, HandshakeType, PinState, ProtocolHandshake, ShipMessage,
};

/// PROT_003/004: the tool waits up to 12 s for `error` 1.
const ERROR_TIMEOUT_WAIT: Duration = Duration::from_secs(12);
/// After a handshake error the ECT allows 2 s for the close.
const CLOSE_AFTER_ERROR: Duration = Duration::from_secs(2);

/// Expects `messageProtocolHandshakeError` with `code` within `within`, then the close.
async fn error_then_close(
    peer: &mut Peer,
    code: HandshakeErrorCode,
    within: Duration,
) -> Step<String> {
    let message = peer
        .expect("messageProtocolHandshakeError", within, |m| {
            matches!(m, ShipMessage::ProtocolHandshakeError(_))
        })
        .await?;
    let ShipMessage::ProtocolHandshakeError(error) = message else {
        return Err("internal: not an error".into());
    };
    if error.error != code {
        return Err(format!(
            "error {} (expected {})",
            error.error.as_u8(),
            code.as_u8()
        ));
    }
    let at = peer.elapsed();
    peer.expect_closed(CLOSE_AFTER_ERROR).await?;
    Ok(format!(
        "error={} at {:.1} s, closed ≤ 2 s later",
        code.as_u8(),
        at.as_secs_f64()
    ))
}

/// TC_SHIP_PROT_001: announceMax → `select` (JSON-UTF8, version ≤ offered); echo → PIN state.
pub(crate) async fn prot_001(ctx: &Ctx) -> Outcome {
    dialled(ctx, "prot_001", async |peer: &mut Peer| {
        script::cmi_dialled(peer).await?;
        script::hello(peer).await?;
        script::protocol_dialled(peer).await?;
        peer.expect("connectionPinState", WAIT, is_pin_state)
            .await?;
        Ok("select 1.0/JSON-UTF8; PIN state after the echo".into())
    })
    .await
}

/// TC_SHIP_PROT_002: the DUT (client) announces 1.0/JSON-UTF8; echoes the tool's `select`
/// identically; then PIN state.
pub(crate) async fn prot_002(ctx: &Ctx) -> Outcome {
    accepted(ctx, async |peer: &mut Peer| {
        script::cmi_accepted(peer).await?;
        script::hello(peer).await?;
        let announce = peer
            .expect("announceMax", WAIT, |m| {
                is_handshake(m, HandshakeType::AnnounceMax)
            })
            .await?;
        if let ShipMessage::ProtocolHandshake(h) = &announce {
            script::check_version(h, true).map_err(|e| format!("announceMax: {e}"))?;
        }
        peer.send(&wire::select()).await?;
        let echo = peer
            .expect("the select echo", WAIT, |m| {
                is_handshake(m, HandshakeType::Select)
            })
            .await?;
        let sent =
            ShipMessage::ProtocolHandshake(ProtocolHandshake::ship_1_0(HandshakeType::Select));
        if echo != sent {
            return Err(format!("the echo {echo:?} differs from the select sent"));
        }
        peer.expect("connectionPinState", WAIT, is_pin_state)
            .await?;
        Ok("announceMax 1.0/JSON-UTF8; identical select echo; PIN state".into())
    })
    .await
}

/// TC_SHIP_PROT_003: the tool is silent after hello → `error` 1, close.
pub(crate) async fn prot_003(ctx: &Ctx) -> Outcome {
    dialled(ctx, "prot_003", async |peer: &mut Peer| {
        script::cmi_dialled(peer).await?;
        script::hello(peer).await?;
        error_then_close(peer, HandshakeErrorCode::Timeout, ERROR_TIMEOUT_WAIT).await
    })
    .await
}

/// TC_SHIP_PROT_004: the DUT (client) sent announceMax; the tool is silent → `error` 1, close.
pub(crate) async fn prot_004(ctx: &Ctx) -> Outcome {
    accepted(ctx, async |peer: &mut Peer| {
        script::cmi_accepted(peer).await?;
        script::hello(peer).await?;
        peer.expect("announceMax", WAIT, |m| {
            is_handshake(m, HandshakeType::AnnounceMax)
        })
        .await?;
        error_then_close(peer, HandshakeErrorCode::Timeout, ERROR_TIMEOUT_WAIT).await
    })
    .await
}

/// TC_SHIP_PROT_005: hello `ready` again in the protocol handshake → `error` 2, close.
pub(crate) async fn prot_005(ctx: &Ctx) -> Outcome {
    dialled(ctx, "prot_005", async |peer: &mut Peer| {
        script::cmi_dialled(peer).await?;
        script::hello(peer).await?;
        peer.send(&wire::hello_ready(script::TOOL_WAITING_MS))
            .await?;
        error_then_close(peer, HandshakeErrorCode::UnexpectedMessage, WAIT).await
    })
    .await
}

/// TC_SHIP_PROT_006: after the DUT's announceMax the tool sends hello `ready` → `error` 2.
pub(crate) async fn prot_006(ctx: &Ctx) -> Outcome {
    accepted(ctx, async |peer: &mut Peer| {
        script::cmi_accepted(peer).await?;
        script::hello(peer).await?;
        peer.expect("announceMax", WAIT, |m| {
            is_handshake(m, HandshakeType::AnnounceMax)
        })
        .await?;
        peer.send(&wire::hello_ready(script::TOOL_WAITING_MS))
            .await?;
        error_then_close(peer, HandshakeErrorCode::UnexpectedMessage, WAIT).await
    })
    .await
}

/// TC_SHIP_PIN_001: PIN `none` both ways → data exchange (an AM request is answered).
pub(crate) async fn pin_001(ctx: &Ctx) -> Outcome {
    dialled(ctx, "pin_001", async |peer: &mut Peer| {
        script::cmi_dialled(peer).await?;
        script::hello(peer).await?;
        script::protocol_dialled(peer).await?;
        let state = script::pin(peer).await?;
        match state {
            ShipMessage::ConnectionPinState(ConnectionPinState {
                pin_state: PinState::None,
                ..
            }) => {}
            other => return Err(format!("PIN state {other:?}, expected none")),
        }
        peer.send(&wire::access_methods_request()).await?;
        peer.expect("accessMethods", WAIT, is_am_reply).await?;
        Ok("pinState none both ways; accessMethods answered".into())
    })
    .await
}
