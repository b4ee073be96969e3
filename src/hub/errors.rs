//! How things go wrong, as the application hears it: why a dial failed ([`DialError`]), why a
//! connected peer is no longer connected ([`DisconnectReason`]) and what a [`crate::hub::Hub`]
//! method refuses ([`HubError`]). A leaf of the hub: these types name nothing else of it except
//! the trust store's and the metrics' own types.

use std::net::SocketAddr;
use std::sync::Arc;

use super::metrics::FailureCause;
use super::trust::TrustStoreError;
use crate::Ski;
use crate::protocol::CloseCause;
use crate::transport::TransportError;

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
    /// The address sent nothing within [`crate::hub::Limits::dial_answer_timeout`] (no TCP
    /// connection, or no answer to our TLS ClientHello) and was given up for another candidate
    /// waiting for its place.
    #[error("no answer within the dial answer timeout")]
    NoAnswer,
    /// The dial was cancelled (shutdown, unpair, or the peer dialled us first).
    #[error("dial cancelled")]
    Cancelled,
}

impl DialError {
    /// What the metrics count it as.
    pub(crate) fn cause(&self) -> FailureCause {
        match self {
            DialError::ConnectionLimit(_) => FailureCause::RefusedByCap,
            DialError::Transport(error) => transport_cause(error),
            DialError::Timeout | DialError::NoAnswer => FailureCause::HandshakeTimeout,
            DialError::NoAddress | DialError::Cancelled => FailureCause::Other,
        }
    }
}

/// Why a connected peer is no longer connected.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// We closed it (disconnect, unpair).
    Local,
    /// The hub shut down.
    Shutdown,
    /// No pong within the keepalive timeout: the peer or the network is gone.
    KeepaliveTimeout,
    /// The application did not consume the peer's data: its inbound budget stayed used up for
    /// [`crate::hub::Limits::max_inbound_stall`] while a ping was unanswered
    /// (docs/architecture.md, "Backpressure").
    Backpressure,
    /// The SHIP connection ended, with the protocol's cause (the peer closed, a timeout, …).
    Protocol(CloseCause),
    /// The handshake of a connection did not reach data exchange within
    /// [`crate::hub::Limits::handshake_deadline`].
    HandshakeDeadline,
    /// The connection was being replaced (the peer restarted, or a double connection was
    /// settled) and the dial that should have replaced it failed.
    Dial(Arc<DialError>),
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisconnectReason::Local => f.write_str("closed locally"),
            DisconnectReason::Shutdown => f.write_str("hub shut down"),
            DisconnectReason::KeepaliveTimeout => f.write_str("keepalive timeout"),
            DisconnectReason::Backpressure => {
                f.write_str("closed for backpressure: the application did not consume its data")
            }
            DisconnectReason::Protocol(cause) => write!(f, "{cause}"),
            DisconnectReason::HandshakeDeadline => f.write_str("handshake deadline"),
            DisconnectReason::Dial(error) => write!(f, "{error}"),
        }
    }
}

/// Errors of [`crate::hub::Hub`] methods.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The TLS configuration could not be built from the identity.
    #[error("TLS setup failed: {0}")]
    Tls(#[source] crate::transport::TransportError),
    /// The SKI is this hub's own (a node never pairs with or connects to itself).
    #[error("{0} is this hub's own SKI")]
    OwnSki(Ski),
    /// The peer is not in data exchange.
    #[error("peer {0} is not connected")]
    NotConnected(Ski),
    /// The peer is not paired.
    #[error("peer {0} is not paired")]
    NotPaired(Ski),
    /// No pairing request from this peer is waiting for a decision.
    #[error("no pairing request from {0} is pending")]
    NoPendingRequest(Ski),
    /// The peer's outgoing queue is full (it does not read fast enough).
    #[error("the outgoing queue to {0} is full")]
    Backpressure(Ski),
    /// The payload is not JSON.
    #[error("the data payload is not valid JSON: {0}")]
    InvalidPayload(String),
    /// The data message carrying the payload would be larger than a peer accepts (the
    /// WebSocket message limit, [`crate::transport::WsOptions::max_message_size`], 100 KiB by
    /// default, assumed for the peer too): refused before it is queued.
    #[error(
        "the data payload is {size} bytes, more than the {limit} bytes a data message can carry \
         (messages are limited to {message_limit} bytes, SHIP framing included)"
    )]
    PayloadTooLarge {
        /// The payload's size in bytes (as sent: without surrounding whitespace).
        size: usize,
        /// The largest payload accepted, in bytes.
        limit: usize,
        /// The limit on the whole message, in bytes.
        message_limit: usize,
    },
    /// The trust store failed.
    #[error(transparent)]
    TrustStore(#[from] TrustStoreError),
    /// The address cannot be dialled (unspecified, port 0, multicast, link-local without scope).
    #[error("address not usable: {0}")]
    Address(String),
    /// The discovery refused the announcement.
    #[error("discovery: {0}")]
    Discovery(crate::discovery::DiscoveryError),
    /// The hub is shutting down or shut down.
    #[error("the hub is shut down")]
    ShutDown,
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
