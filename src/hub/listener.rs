//! The accept loop: admits TCP connections, runs TLS and the WebSocket upgrade, and hands each
//! connection to the supervisor of the SKI its certificate proved. It never waits for a
//! connection's handshake itself: each admitted connection gets its own bounded task.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use super::Shared;
use super::link::{now, runner};
use super::metrics::FailureCause;
use super::net::{BoxIo, Listener};
use super::supervisor::{Command, NewLink};
use crate::transport;

/// Accepts until the hub's accept token is cancelled (shutdown phase 1).
pub(crate) async fn accept_loop(shared: Arc<Shared>, mut listener: Box<dyn Listener>) {
    loop {
        let accepted = tokio::select! {
            _ = shared.stop_accepting.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((tcp, remote)) => {
                let Ok(permit) = shared.handshakes.clone().try_acquire_owned() else {
                    tracing::debug!(%remote, "too many handshakes in progress: dropping");
                    shared.metrics.failure(FailureCause::RefusedByCap);
                    continue;
                };
                shared
                    .tracker
                    .spawn(admit(shared.clone(), tcp, remote, permit));
            }
            Err(error) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    tracing::debug!("listener stopped");
}

/// TLS + WebSocket for one incoming connection, within the transport handshake timeout.
async fn admit(
    shared: Arc<Shared>,
    tcp: BoxIo,
    remote: SocketAddr,
    handshake_permit: OwnedSemaphorePermit,
) {
    shared.metrics.incoming_accepted();
    let started = now();
    let work = async {
        let (tls, ski) = shared.tls.accept(tcp).await?;
        if ski == shared.local_ski {
            return Err(AdmitError::OwnSki);
        }
        // A peer we have not paired takes one of the few unpaired slots as well, so strangers
        // (pairing requests, floods of unknown SKIs) can never hold the slots paired peers need.
        let paired = matches!(shared.trust.get(&ski), Ok(Some(_)));
        let mut permits = None;
        let socket = transport::accept_websocket(tls, &shared.config.websocket, || {
            let unpaired = if paired {
                None
            } else {
                match shared.unpaired.clone().try_acquire_owned() {
                    Ok(permit) => Some(permit),
                    Err(_) => return false,
                }
            };
            permits = shared
                .connections
                .clone()
                .try_acquire_owned()
                .ok()
                .map(|connection| (connection, unpaired));
            permits.is_some()
        })
        .await?;
        let permit = permits.ok_or(AdmitError::Full)?;
        Ok::<_, AdmitError>((socket, ski, permit))
    };
    let outcome = tokio::select! {
        _ = shared.stop_accepting.cancelled() => return,
        outcome = tokio::time::timeout(shared.config.limits.transport_handshake_timeout, work) => outcome,
    };
    drop(handshake_permit);
    let (socket, ski, permit) = match outcome {
        Ok(Ok(admitted)) => admitted,
        Ok(Err(error)) => {
            tracing::debug!(%remote, %error, "incoming connection refused");
            shared.metrics.failure(error.cause());
            return;
        }
        Err(_) => {
            tracing::debug!(%remote, "incoming connection: TLS + WebSocket timed out");
            shared.metrics.failure(FailureCause::HandshakeTimeout);
            return;
        }
    };
    let runner = runner(socket, permit);
    let _ = shared.route(
        ski,
        Command::Incoming(NewLink {
            runner,
            remote,
            started,
        }),
    );
}

#[derive(Debug, thiserror::Error)]
enum AdmitError {
    #[error("the peer presented our own SKI")]
    OwnSki,
    #[error("connection limit reached (answered 503)")]
    Full,
    #[error(transparent)]
    Transport(#[from] transport::TransportError),
}

impl AdmitError {
    fn cause(&self) -> FailureCause {
        match self {
            AdmitError::OwnSki => FailureCause::Tls,
            AdmitError::Full => FailureCause::RefusedByCap,
            AdmitError::Transport(error) => super::dial::transport_cause(error),
        }
    }
}
