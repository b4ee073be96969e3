//! ship-hub's own PIN cases (SHIP §13.4.4.3), not in the test specification's catalogue:
//! EXT_PIN_001 a DUT that requires a PIN opens data exchange after the right one, EXT_PIN_002 it
//! refuses a wrong one, EXT_PIN_003 a DUT sends the PIN the tool requires.

use std::time::Duration;

use super::super::Ctx;
use super::super::peer::{Peer, Step};
use super::super::script::{self, WAIT, is_am_reply, is_am_request, is_pin_state};
use super::super::wire;
use super::{Outcome, dialled};
use ship_hub::protocol::Pin;
use ship_hub::protocol::message::{ConnectionPinState, PinInputPermission, PinState, ShipMessage};

/// How long the tool watches for a `pinOk` that must not come after a wrong PIN.
const NO_PIN_OK_WATCH: Duration = Duration::from_secs(2);

fn is_pin_ok(m: &ShipMessage) -> bool {
    matches!(m, ShipMessage::ConnectionPinState(s) if s.pin_state == PinState::PinOk)
}

/// Through the protocol handshake; expects the DUT to require a PIN with input `ok`; sends the
/// tool's own `none`.
async fn to_pin_required(ctx: &Ctx, peer: &mut Peer) -> Step<()> {
    script::cmi_dialled(peer).await?;
    script::hello(peer).await?;
    script::protocol_dialled(ctx, peer).await?;
    match peer
        .expect("connectionPinState", WAIT, is_pin_state)
        .await?
    {
        ShipMessage::ConnectionPinState(ConnectionPinState {
            pin_state: PinState::Required | PinState::Optional,
            input_permission: Some(PinInputPermission::Ok) | None,
        }) => {}
        other => {
            return Err(format!(
                "PIN state {other:?}: expected required (or optional) with input ok, as \
                 declared with --dut-pin"
            ));
        }
    }
    peer.send(&wire::pin_none()).await
}

/// A PIN that differs from `pin` in its last digit.
fn wrong_pin(pin: &Pin) -> Pin {
    let mut digits = pin.reveal().to_owned();
    let last = digits.pop().unwrap_or('0');
    digits.push(if last == '0' { '1' } else { '0' });
    Pin::new(&digits).unwrap_or_else(|_| pin.clone())
}

/// EXT_PIN_001: the DUT requires a PIN; the right one is answered `pinOk` and data exchange
/// follows (an access-methods request is answered).
pub(crate) async fn ext_pin_001(ctx: &Ctx) -> Outcome {
    let Some(pin) = ctx.declarations.dut_pin.clone() else {
        return Outcome::not_applicable("needs --dut-pin (the DUT requires a PIN)");
    };
    dialled(ctx, "ext_pin_001", async move |peer: &mut Peer| {
        to_pin_required(ctx, peer).await?;
        peer.send(&wire::pin_input(&pin)).await?;
        let answer = peer
            .expect("pinState pinOk", WAIT, |m| {
                is_pin_ok(m) || matches!(m, ShipMessage::ConnectionPinError(_))
            })
            .await?;
        if !is_pin_ok(&answer) {
            return Err("the right PIN was answered with connectionPinError".into());
        }
        peer.send(&wire::access_methods_request()).await?;
        peer.expect("accessMethods", WAIT, is_am_reply).await?;
        Ok(
            "PIN required with input ok; the right PIN answered pinOk; accessMethods answered"
                .into(),
        )
    })
    .await
}

/// EXT_PIN_002: a wrong PIN is answered with `connectionPinError`, never `pinOk`.
pub(crate) async fn ext_pin_002(ctx: &Ctx) -> Outcome {
    let Some(pin) = ctx.declarations.dut_pin.clone() else {
        return Outcome::not_applicable("needs --dut-pin (the DUT requires a PIN)");
    };
    dialled(ctx, "ext_pin_002", async move |peer: &mut Peer| {
        to_pin_required(ctx, peer).await?;
        peer.send(&wire::pin_input(&wrong_pin(&pin))).await?;
        let answer = peer
            .expect("connectionPinError or pinOk", WAIT, |m| {
                is_pin_ok(m) || matches!(m, ShipMessage::ConnectionPinError(_))
            })
            .await?;
        if is_pin_ok(&answer) {
            return Err("a wrong PIN was answered pinOk".into());
        }
        match peer.expect("pinOk", NO_PIN_OK_WATCH, is_pin_ok).await {
            Ok(_) => Err("pinOk after a wrong PIN".into()),
            Err(_) => Ok("a wrong PIN answered with connectionPinError; no pinOk".into()),
        }
    })
    .await
}

/// EXT_PIN_003: the tool requires a PIN; the DUT sends the declared one, and opens data
/// exchange after the tool's `pinOk` (its access-methods request arrives).
pub(crate) async fn ext_pin_003(ctx: &Ctx) -> Outcome {
    let Some(pin) = ctx.declarations.tool_pin.clone() else {
        return Outcome::not_applicable("needs --tool-pin (the DUT knows a PIN for the tool)");
    };
    dialled(ctx, "ext_pin_003", async move |peer: &mut Peer| {
        script::cmi_dialled(peer).await?;
        script::hello(peer).await?;
        script::protocol_dialled(ctx, peer).await?;
        peer.expect("connectionPinState", WAIT, is_pin_state)
            .await?;
        peer.send(&wire::pin_required()).await?;
        let input = peer
            .expect("connectionPinInput", WAIT, |m| {
                matches!(m, ShipMessage::ConnectionPinInput(_))
            })
            .await?;
        let ShipMessage::ConnectionPinInput(input) = input else {
            return Err("internal: not a PIN input".into());
        };
        if !input.pin.as_ref().is_some_and(|p| pin.matches(p)) {
            // Never print the PIN the DUT sent.
            return Err("the DUT sent a PIN that is not the one declared with --tool-pin".into());
        }
        peer.send(&wire::pin_ok()).await?;
        peer.expect("the DUT's accessMethodsRequest", WAIT, is_am_request)
            .await?;
        Ok("the DUT sent the declared PIN; data exchange after pinOk".into())
    })
    .await
}
