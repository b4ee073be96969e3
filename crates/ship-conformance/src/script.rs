//! The well-behaved parts of the handshake (§13.4), as steps the cases combine before they
//! misbehave. "dialled" steps play the SHIP client (the DUT is the server); "accepted" steps
//! play the SHIP server (the DUT dialled the tool).

use std::time::Duration;

use super::Ctx;
use super::peer::{Peer, Step};
use super::wire;
use ship_hub::protocol::message::{
    ConnectionHello, HandshakeType, HelloPhase, ProtocolHandshake, ProtocolVersion, ShipMessage,
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

pub(crate) use super::report::version_text;

fn check_formats(h: &ProtocolHandshake) -> Step<()> {
    if !h.formats.iter().any(|f| f == ProtocolHandshake::JSON_UTF8) {
        return Err(format!("formats {:?} lack JSON-UTF8", h.formats));
    }
    Ok(())
}

/// Checks the DUT's `announceMax`: a SHIP version (major 1: SHIP defines no other major
/// version; every minor version, 1.0 and 1.1 as deployed and any later one, since minor
/// versions are backwards compatible and the server selects the lower of both) with `JSON-UTF8`.
pub(crate) fn check_announce(h: &ProtocolHandshake) -> Step<()> {
    if h.version.major != 1 {
        return Err(format!(
            "version {} (SHIP defines major version 1 only: 1.0, 1.1)",
            version_text(h.version)
        ));
    }
    check_formats(h)
}

/// Checks the DUT's `select` to the tool's `announceMax` of `offered`: major 1, not above the
/// offer, `JSON-UTF8`.
pub(crate) fn check_select(h: &ProtocolHandshake, offered: ProtocolVersion) -> Step<()> {
    if h.version.major != 1 || h.version > offered {
        return Err(format!(
            "version {} (expected 1.x, at most the offered {})",
            version_text(h.version),
            version_text(offered)
        ));
    }
    check_formats(h)
}

/// Client side of the protocol handshake: announceMax (the tool's version) → select (checked,
/// recorded) → the identical select echoed. Returns the selected version.
pub(crate) async fn protocol_dialled(ctx: &Ctx, peer: &mut Peer) -> Step<ProtocolVersion> {
    peer.send(&wire::announce_max(ctx.ship_version)).await?;
    let select = peer
        .expect("select", WAIT, |m| is_handshake(m, HandshakeType::Select))
        .await?;
    let ShipMessage::ProtocolHandshake(h) = &select else {
        return unreachable_message();
    };
    ctx.saw_select(h.version);
    check_select(h, ctx.ship_version).map_err(|e| format!("the DUT's select: {e}"))?;
    peer.send(&wire::select(h.version)).await?;
    Ok(h.version)
}

/// Server side of the protocol handshake: expect announceMax (checked, recorded) → select the
/// lower of the DUT's and the tool's version → the echo must be identical. Returns (announced,
/// selected).
pub(crate) async fn protocol_accepted(
    ctx: &Ctx,
    peer: &mut Peer,
) -> Step<(ProtocolVersion, ProtocolVersion)> {
    let announce = peer
        .expect("announceMax", WAIT, |m| {
            is_handshake(m, HandshakeType::AnnounceMax)
        })
        .await?;
    let ShipMessage::ProtocolHandshake(h) = &announce else {
        return unreachable_message();
    };
    ctx.saw_announce(h.version);
    check_announce(h).map_err(|e| format!("the DUT's announceMax: {e}"))?;
    let announced = h.version;
    let selected = announced.min(ctx.ship_version);
    peer.send(&wire::select(selected)).await?;
    let echo = peer
        .expect("the select echo", WAIT, |m| {
            is_handshake(m, HandshakeType::Select)
        })
        .await?;
    let sent = ShipMessage::ProtocolHandshake(ProtocolHandshake {
        handshake_type: HandshakeType::Select,
        version: selected,
        formats: vec![ProtocolHandshake::JSON_UTF8.to_owned()],
    });
    if echo != sent {
        return Err(format!(
            "the select echo {echo:?} differs from the select {} sent",
            version_text(selected)
        ));
    }
    Ok((announced, selected))
}

/// PIN: expect the DUT's state, send `none`.
pub(crate) async fn pin(peer: &mut Peer) -> Step<ShipMessage> {
    let state = peer
        .expect("connectionPinState", WAIT, is_pin_state)
        .await?;
    peer.send(&wire::pin_none()).await?;
    Ok(state)
}

/// Sends an `accessMethodsRequest` (`bytes`) and expects the `accessMethods` reply.
pub(crate) async fn am_round_trip(peer: &mut Peer, bytes: &[u8]) -> Step<ShipMessage> {
    peer.send(bytes).await?;
    peer.expect("accessMethods", WAIT, is_am_reply).await
}

/// CMI, hello, protocol handshake and PIN as the dialling side: data exchange is reached. The
/// DUT's own access-methods request is left unanswered (the caller decides).
pub(crate) async fn to_data_exchange_dialled(ctx: &Ctx, peer: &mut Peer) -> Step<()> {
    cmi_dialled(peer).await?;
    hello(peer).await?;
    protocol_dialled(ctx, peer).await?;
    pin(peer).await.map(|_| ())
}
