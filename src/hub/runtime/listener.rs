//! The accept loop: admits TCP connections, runs TLS and the WebSocket upgrade, and hands each
//! connection to the supervisor of the SKI its certificate proved. It never waits for a
//! connection's handshake itself: each admitted connection gets its own bounded task. What may
//! be admitted is decided by [`super::admission`].

use std::net::SocketAddr;
use std::sync::Arc;

use super::admission::{HandshakeSlot, Refusal};
use super::clock::now;
use super::handover::{Command, Handover, Permits};
use super::pairing_agent;
use super::shared::Shared;
use super::supervisor::route;
use crate::hub::callbacks::CallbackEvent;
use crate::hub::errors::transport_cause;
use crate::hub::metrics::FailureCause;
use crate::hub::net::{BoxIo, Listener};
use crate::transport;

/// Accepts until the hub's accept token is cancelled (shutdown phase 1).
pub(crate) async fn accept_loop(shared: Arc<Shared>, mut listener: Box<dyn Listener>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.stop_accepting.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, remote)) => match shared.admission.handshake(remote.ip()) {
                Ok(slot) => {
                    shared
                        .tracker
                        .spawn(admit(shared.clone(), tcp, remote, slot));
                }
                Err(refusal) => {
                    // Dropping the stream closes it before any TLS work.
                    tracing::debug!(%remote, %refusal, "incoming connection dropped");
                    refused(&shared, remote, refusal);
                }
            },
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    tracing::debug!("listener stopped");
}

/// TLS + WebSocket for one incoming connection: the ClientHello within the client-hello
/// timeout, everything within the transport handshake timeout.
async fn admit(shared: Arc<Shared>, tcp: BoxIo, remote: SocketAddr, slot: HandshakeSlot) {
    shared.metrics.incoming_accepted();
    let started = now();
    let limits = &shared.config.limits;
    let work = async {
        let hello = tokio::time::timeout(
            limits.client_hello_timeout,
            shared.tls.read_client_hello(tcp),
        )
        .await
        .map_err(|_| AdmitError::NoClientHello)??;
        slot.spoke();
        let (tls, ski) = hello.accept().await?;
        if ski == shared.local_ski {
            return Err(AdmitError::OwnSki);
        }
        // A peer we have not paired takes one of the few strangers' slots as well, so strangers
        // (pairing requests, floods of unknown SKIs) can never hold the slots paired peers need,
        // and one address cannot hold all of them; its supervisor gives the slot back once the
        // peer is paired. With auto-accept on and no PIN required there are no strangers: the
        // peer's supervisor pairs it as it admits the connection, before any SHIP message, so
        // it counts as paired from the start (`max_connections` still bounds it). With a PIN
        // it is paired only once it sent the PIN: a stranger until then.
        // A certificate a verified Pairing Service request named is paired here, before any
        // SHIP message (docs/pairing.md, "The SHIP Pairing Service").
        let paired = shared.auto_accept_pairs_at_once()
            || shared.pairings.contains(&ski)
            || tls
                .peer_certificate()
                .is_some_and(|certificate| pairing_agent::claim(&shared, ski, certificate));
        // Set by the upgrade callback: the room taken, or why there was none.
        let mut room = None;
        let upgraded = transport::accept_websocket(tls, &shared.config.websocket, || {
            let taken = admit_upgrade(&shared, remote, paired);
            let admitted = taken.is_ok();
            room = Some(taken);
            admitted
        })
        .await;
        match (upgraded, room) {
            (Ok(socket), Some(Ok(permits))) => Ok((socket, ski, permits)),
            (Err(_), Some(Err(refusal))) => Err(AdmitError::Full(refusal)),
            (Err(error), _) => Err(AdmitError::Transport(error)),
            // Not reached: the upgrade succeeds only once the callback found room.
            (Ok(_), _) => Err(AdmitError::Full(Refusal::Connections)),
        }
    };
    let outcome = tokio::select! {
        _ = shared.stop_accepting.cancelled() => return,
        () = slot.evicted() => {
            tracing::debug!(%remote, "silent incoming connection dropped for a newer one from its address");
            shared.metrics.failure(FailureCause::HandshakeTimeout);
            return;
        }
        outcome = tokio::time::timeout(limits.transport_handshake_timeout, work) => outcome,
    };
    let reserved = slot.reserved;
    drop(slot);
    let (socket, ski, permits) = match outcome {
        Ok(Ok(admitted)) => admitted,
        Ok(Err(AdmitError::Full(refusal))) => {
            tracing::debug!(%remote, %refusal, reserved, "incoming connection refused (503)");
            refused(&shared, remote, refusal);
            return;
        }
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, reserved, "incoming connection refused");
            shared.metrics.failure(error.cause());
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, reserved, "incoming connection: TLS + WebSocket timed out");
            shared.metrics.failure(FailureCause::HandshakeTimeout);
            return;
        }
    };
    let _ = route(
        &shared,
        ski,
        Command::Incoming(Handover {
            socket,
            permits,
            remote,
            started,
        }),
    );
}

/// An incoming connection from `remote` was refused by `cap`: counted, and reported to the
/// application when a report is due (rate-limited per source and in all).
fn refused(shared: &Shared, remote: SocketAddr, cap: Refusal) {
    shared.metrics.refused(cap);
    if let Some(report) = shared.admission.reports.refused(remote.ip(), cap, now()) {
        shared
            .callbacks
            .push(CallbackEvent::AdmissionRefused(report));
    }
}

/// Room for an upgraded connection from `remote`, taken at once or not at all (HTTP 503).
fn admit_upgrade(shared: &Shared, remote: SocketAddr, paired: bool) -> Result<Permits, Refusal> {
    let unpaired = if paired {
        None
    } else {
        Some(shared.admission.unpaired(remote.ip())?)
    };
    let connection = shared
        .connections
        .clone()
        .try_acquire_owned()
        .map_err(|_| Refusal::Connections)?;
    Ok(Permits {
        _connection: connection,
        stranger: unpaired,
    })
}

#[derive(Debug, thiserror::Error)]
enum AdmitError {
    #[error("no complete TLS ClientHello within the client-hello timeout")]
    NoClientHello,
    #[error("the peer presented our own SKI")]
    OwnSki,
    #[error("{0} (answered 503)")]
    Full(Refusal),
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
}

impl AdmitError {
    fn cause(&self) -> FailureCause {
        match self {
            AdmitError::NoClientHello => FailureCause::HandshakeTimeout,
            AdmitError::OwnSki => FailureCause::Tls,
            AdmitError::Full(_) => FailureCause::RefusedByCap,
            AdmitError::Transport(error) => transport_cause(error),
        }
    }
}
