//! Protocol handshake (§13.4.4.2) and PIN (§13.4.4.3): PROT_001..006, PIN_001.

use std::time::Duration;

use super::super::Ctx;
use super::super::peer::{Peer, Step};
use super::super::script::{self, WAIT, is_am_reply, is_handshake, is_pin_state, version_text};
use super::super::wire;
use super::{Outcome, accepted, dialled};
use ship_hub::protocol::message::{
    ConnectionPinState, HandshakeErrorCode, HandshakeType, PinState, ShipMessage,
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

/// TC_SHIP_PROT_001: announceMax (the tool's version) → `select` (JSON-UTF8, SHIP 1.x, version
/// ≤ offered); echo → PIN state.
pub(crate) async fn prot_001(ctx: &Ctx) -> Outcome {
    let offered = version_text(ctx.ship_version);
    dialled(ctx, "prot_001", async |peer: &mut Peer| {
        script::cmi_dialled(peer).await?;
        script::hello(peer).await?;
        let selected = script::protocol_dialled(ctx, peer).await?;
        peer.expect("connectionPinState", WAIT, is_pin_state)
            .await?;
        Ok(format!(
            "offered {offered}; the DUT selected {}/JSON-UTF8; PIN state after the echo",
            version_text(selected)
        ))
    })
    .await
}

/// TC_SHIP_PROT_002: the DUT (client) announces its SHIP version (1.0 or 1.1, any 1.x) with
/// JSON-UTF8; the tool selects the lower of both; the DUT echoes that `select` identically;
/// then PIN state.
pub(crate) async fn prot_002(ctx: &Ctx) -> Outcome {
    accepted(ctx, async |peer: &mut Peer| {
        script::cmi_accepted(peer).await?;
        script::hello(peer).await?;
        let (announced, selected) = script::protocol_accepted(ctx, peer).await?;
        peer.expect("connectionPinState", WAIT, is_pin_state)
            .await?;
        Ok(format!(
            "the DUT announced SHIP {}/JSON-UTF8; the tool selected {}; identical select echo; \
             PIN state",
            version_text(announced),
            version_text(selected)
        ))
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
        script::protocol_dialled(ctx, peer).await?;
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
