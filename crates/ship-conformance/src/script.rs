//! The well-behaved parts of the handshake (§13.4), as steps the cases combine before they
//! misbehave. "dialled" steps play the SHIP client (the DUT is the server); "accepted" steps
//! play the SHIP server (the DUT dialled the tool).

use std::time::Duration;

use super::identities::ToolIdentities;
use super::peer::{Peer, Step};
use super::wire;
use ship_hub::protocol::message::{
    ConnectionHello, HandshakeType, HelloPhase, ProtocolHandshake, ShipMessage,
};

/// The generic response wait of the test tool (ECT `WaitFor`).
pub(crate) const WAIT: Duration = Duration::from_secs(10);
/// The `waiting` the tool announces in its own `ready`.
pub(crate) const TOOL_WAITING_MS: u32 = 60_000;

pub(crate) fn is_cmi(m: &ShipMessage) -> bool {
    matches!(m, ShipMessage::Cmi)
}

pub(crate) fn is_handshake(m: &ShipMessage, kind: HandshakeType) -> bool {
    matches!(m, ShipMessage::ProtocolHandshake(h) if h.handshake_type == kind)
}

pub(crate) fn is_pin_state(m: &ShipMessage) -> bool {
    matches!(m, ShipMessage::ConnectionPinState(_))
}

pub(crate) fn is_am_request(m: &ShipMessage) -> bool {
    matches!(m, ShipMessage::AccessMethodsRequest)
}

pub(crate) fn is_am_reply(m: &ShipMessage) -> bool {
    matches!(m, ShipMessage::AccessMethods(_))
}

/// Client CMI: send `00 00`, expect `00 00`.
pub(crate) async fn cmi_dialled(peer: &mut Peer) -> Step<()> {
    peer.send(wire::CMI).await?;
    peer.expect("CMI 00 00", WAIT, is_cmi).await.map(|_| ())
}

/// Server CMI: expect the DUT's `00 00`, answer `00 00`.
pub(crate) async fn cmi_accepted(peer: &mut Peer) -> Step<()> {
    peer.expect("the DUT's CMI 00 00", WAIT, is_cmi).await?;
    peer.send(wire::CMI).await
}

/// Expects the DUT's hello `ready` (the DUT trusts the tool) and returns it.
pub(crate) async fn expect_ready(peer: &mut Peer) -> Step<ConnectionHello> {
    match peer
        .expect("connectionHello", WAIT, |m| {
            matches!(m, ShipMessage::ConnectionHello(_))
        })
        .await?
    {
        ShipMessage::ConnectionHello(hello) if hello.phase == HelloPhase::Ready => Ok(hello),
        ShipMessage::ConnectionHello(hello) => Err(format!(
            "the DUT's hello is {:?}, not ready: does it trust the tool's SKI?",
            hello.phase
        )),
        _ => unreachable_message(),
    }
}

fn unreachable_message<T>() -> Step<T> {
    Err("internal: unexpected message kind".to_owned())
}

/// Both hellos `ready`.
pub(crate) async fn hello(peer: &mut Peer) -> Step<ConnectionHello> {
    let theirs = expect_ready(peer).await?;
    peer.send(&wire::hello_ready(TOOL_WAITING_MS)).await?;
    Ok(theirs)
}

/// Checks a `select`/`announceMax` offers 1.0 (or less) with `JSON-UTF8`.
pub(crate) fn check_version(h: &ProtocolHandshake, exact: bool) -> Step<()> {
    let v = h.version;
    let ok_version = if exact {
        v.major == 1 && v.minor == 0
    } else {
        (v.major, v.minor) <= (1, 0) && v.major >= 1
    };
    if !ok_version {
        return Err(format!(
            "version {}.{} (expected {}1.0)",
            v.major,
            v.minor,
            if exact { "" } else { "≤ " }
        ));
    }
    if !h.formats.iter().any(|f| f == ProtocolHandshake::JSON_UTF8) {
        return Err(format!("formats {:?} lack JSON-UTF8", h.formats));
    }
    Ok(())
}

/// Client side of the protocol handshake: announceMax → select (checked) → echo.
pub(crate) async fn protocol_dialled(peer: &mut Peer) -> Step<()> {
    peer.send(&wire::announce_max()).await?;
    let select = peer
        .expect("select", WAIT, |m| is_handshake(m, HandshakeType::Select))
        .await?;
    if let ShipMessage::ProtocolHandshake(h) = &select {
        check_version(h, false).map_err(|e| format!("the DUT's select: {e}"))?;
    }
    peer.send(&wire::select()).await
}

/// Server side of the protocol handshake: expect announceMax (checked) → select → echo.
pub(crate) async fn protocol_accepted(peer: &mut Peer) -> Step<()> {
    let announce = peer
        .expect("announceMax", WAIT, |m| {
            is_handshake(m, HandshakeType::AnnounceMax)
        })
        .await?;
    if let ShipMessage::ProtocolHandshake(h) = &announce {
        check_version(h, true).map_err(|e| format!("the DUT's announceMax: {e}"))?;
    }
    peer.send(&wire::select()).await?;
    let echo = peer
        .expect("the select echo", WAIT, |m| {
            is_handshake(m, HandshakeType::Select)
        })
        .await?;
    if let ShipMessage::ProtocolHandshake(h) = &echo {
        check_version(h, true).map_err(|e| format!("the DUT's select echo: {e}"))?;
    }
    Ok(())
}

/// PIN: expect the DUT's state, send `none`.
pub(crate) async fn pin(peer: &mut Peer) -> Step<ShipMessage> {
    let state = peer
        .expect("connectionPinState", WAIT, is_pin_state)
        .await?;
    peer.send(&wire::pin_none()).await?;
    Ok(state)
}

/// Answers the DUT's `accessMethodsRequest` with the tool's SHIP ID for identity `name`.
pub(crate) async fn answer_am_request(peer: &mut Peer, name: &str) -> Step<()> {
    peer.expect("the DUT's accessMethodsRequest", WAIT, is_am_request)
        .await?;
    peer.send(&wire::access_methods(&ToolIdentities::ship_id(name)))
        .await
}

/// Sends an `accessMethodsRequest` (`bytes`) and expects the `accessMethods` reply.
pub(crate) async fn am_round_trip(peer: &mut Peer, bytes: &[u8]) -> Step<ShipMessage> {
    peer.send(bytes).await?;
    peer.expect("accessMethods", WAIT, is_am_reply).await
}

/// CMI, hello, protocol handshake and PIN as the dialling side: data exchange is reached. The
/// DUT's own access-methods request is left unanswered (the caller decides).
pub(crate) async fn to_data_exchange_dialled(peer: &mut Peer) -> Step<()> {
    cmi_dialled(peer).await?;
    hello(peer).await?;
    protocol_dialled(peer).await?;
    pin(peer).await.map(|_| ())
}
