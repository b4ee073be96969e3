//! Dialling a peer: TCP, then TLS expecting the peer's SKI, then the WebSocket upgrade, over every
//! known address in turn.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use super::Shared;
use super::address_book::DialCandidate;
use super::link::runner;
use super::metrics::FailureCause;
use super::net::BoxIo;
use super::supervisor::LinkRunner;
use crate::Ski;
use crate::transport::{self, TransportError};

/// A dial that reached a WebSocket: ready to run as a link.
pub(crate) struct Dialled {
    pub(crate) runner: LinkRunner,
    /// The candidate that worked (its address and path are remembered for the next dial).
    pub(crate) candidate: DialCandidate,
    pub(crate) started: Instant,
}

/// Why a dial failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DialError {
    /// No address is known for the peer.
    #[error("no address known for the peer")]
    NoAddress,
    /// The hub already holds its maximum number of connections.
    #[error("connection limit reached ({0} connections)")]
    ConnectionLimit(usize),
    /// TCP, TLS or WebSocket failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// TCP + TLS + WebSocket took longer than the transport handshake timeout.
    #[error("TLS + WebSocket handshake timed out")]
    Timeout,
    /// The dial was cancelled (shutdown, unpair, or the peer dialled us first).
    #[error("dial cancelled")]
    Cancelled,
}

impl DialError {
    pub(crate) fn cause(&self) -> FailureCause {
        match self {
            DialError::ConnectionLimit(_) => FailureCause::RefusedByCap,
            DialError::Transport(error) => transport_cause(error),
            DialError::Timeout => FailureCause::HandshakeTimeout,
            DialError::NoAddress | DialError::Cancelled => FailureCause::Other,
        }
    }
}

/// Dials `ski` at each candidate address in turn; the first that completes TCP + TLS (with the
/// expected SKI) + WebSocket wins.
pub(crate) async fn dial(
    shared: Arc<Shared>,
    ski: Ski,
    candidates: Vec<DialCandidate>,
    hosts: HashMap<IpAddr, String>,
) -> Result<Dialled, DialError> {
    if candidates.is_empty() {
        return Err(DialError::NoAddress);
    }
    let limit = shared.config.limits.max_connections;
    let permit = shared
        .connections
        .clone()
        .try_acquire_owned()
        .map_err(|_| DialError::ConnectionLimit(limit))?;
    let mut last = DialError::NoAddress;
    for candidate in candidates {
        let started = super::link::now();
        let host = hosts
            .get(&candidate.address.ip())
            .cloned()
            .unwrap_or_else(|| transport::FALLBACK_SERVER_NAME.to_owned());
        let attempt = dial_once(&shared, candidate.address, &host, ski, &candidate.path);
        match tokio::time::timeout(shared.config.limits.transport_handshake_timeout, attempt).await
        {
            Ok(Ok(socket)) => {
                let runner = runner(socket, permit);
                return Ok(Dialled {
                    runner,
                    candidate,
                    started,
                });
            }
            Ok(Err(error)) => {
                tracing::debug!(%ski, addr = %candidate.address, %error, "dial attempt failed");
                last = DialError::Transport(error);
            }
            Err(_) => last = DialError::Timeout,
        }
    }
    Err(last)
}

/// TCP (through the hub's [`super::net::Network`]) + TLS expecting `ski` + WebSocket at `path`.
/// Like ship-go, a server that answers the upgrade at `path` with an HTTP error is tried once
/// more at `/`.
async fn dial_once(
    shared: &Shared,
    addr: SocketAddr,
    host: &str,
    ski: Ski,
    path: &str,
) -> Result<transport::ShipSocket<BoxIo>, TransportError> {
    let mut path = path.to_owned();
    loop {
        let io = shared
            .config
            .network
            .connect(addr)
            .await
            .map_err(TransportError::from)?;
        let tls = shared.tls.connect(io, host, ski).await?;
        match transport::connect_websocket(tls, host, addr.port(), &path, &shared.config.websocket)
            .await
        {
            Err(error) if error.is_path_rejected() && path != "/" => {
                tracing::debug!(%addr, ?path, %error, "WebSocket upgrade refused: retrying at /");
                path = "/".to_owned();
            }
            result => return result,
        }
    }
}

/// The metrics cause of a transport failure.
pub(crate) fn transport_cause(error: &TransportError) -> FailureCause {
    match error {
        TransportError::Tls(_) => FailureCause::Tls,
        // We answered 503 ourselves: our connection cap, not a WebSocket failure.
        TransportError::WebSocket(crate::transport::WebSocketError::Refused) => {
            FailureCause::RefusedByCap
        }
        TransportError::WebSocket(_) => FailureCause::WebSocket,
        _ => FailureCause::Other,
    }
}
