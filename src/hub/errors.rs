//! How things go wrong, as the application hears it: why a dial or a connection ended
//! ([`EndCause`], with a failed dial's [`DialError`]), what a [`crate::hub::Hub`] method refuses
//! ([`HubError`]) and why an address cannot be dialled ([`AddressError`]). A leaf of the hub:
//! these types name nothing else of it except the trust store's and the metrics' own types.

use std::net::SocketAddr;
use std::sync::Arc;

use super::metrics::FailureCause;
use super::trust::TrustStoreError;
use crate::Ski;
use crate::protocol::{CloseCause, ConnectionState};
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

/// Why a dial or a connection ended: the one cause the application hears, in
/// [`crate::hub::StateDetail::failure`] (a failure shown as the peer's state) and in
/// [`crate::hub::Callbacks::disconnected`] / [`crate::hub::HubEvent::Disconnected`] (why a
/// connected peer is no longer connected).
///
/// The detail is nested where there is more to say: a dial's [`DialError`], the protocol
/// engine's [`CloseCause`]. `Display` gives the words for people (the gateway prints them);
/// match on the variants instead of the words. What the hub's metrics count it as is a
/// [`FailureCause`].
///
/// Two values are equal when they are the same kind with equal contents; two dial failures are
/// equal only when they are the same failure (the same `Arc`), as transport errors carry
/// operating-system and TLS errors that cannot be compared.
///
/// More causes may be added; match with a wildcard arm.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum EndCause {
    /// We closed the connection (disconnect, unpair, a graceful shutdown). Only a
    /// disconnect's reason, never a failure.
    Local,
    /// The hub's shutdown deadline passed and the connection was dropped without a SHIP close.
    /// Only a disconnect's reason, never a failure.
    Shutdown,
    /// A dial failed before SHIP began: no address, the connection cap, TCP, TLS or WebSocket.
    /// As a disconnect's reason: the connection was being replaced (the peer restarted, or a
    /// double connection was settled) and the dial that should have replaced it failed.
    Dial(Arc<DialError>),
    /// The SHIP connection ended with this cause: the peer closed, a protocol error, a
    /// timeout, …
    Protocol(CloseCause),
    /// The handshake ended while we waited in hello for the peer to confirm trust
    /// ([`ConnectionState::RemoteDeniedTrust`]), with this cause: an explicit denial
    /// ([`CloseCause::RemoteDeniedTrust`], hello `aborted`), or no answer: the peer closed
    /// ([`CloseCause::RemoteClosed`]) or vanished ([`CloseCause::TransportClosed`]).
    Hello(CloseCause),
    /// No pong within the keepalive timeout (or the peer took no bytes of a write for as
    /// long): the peer or the network is gone.
    KeepaliveTimeout,
    /// The application did not consume the peer's data: its inbound budget stayed used up for
    /// [`crate::hub::Limits::max_inbound_stall`] while a ping was unanswered
    /// (docs/architecture.md, "Backpressure").
    Backpressure,
    /// The handshake of a connection did not reach data exchange within
    /// [`crate::hub::Limits::handshake_deadline`].
    HandshakeDeadline,
}

impl PartialEq for EndCause {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (EndCause::Dial(a), EndCause::Dial(b)) => Arc::ptr_eq(a, b),
            (EndCause::Protocol(a), EndCause::Protocol(b))
            | (EndCause::Hello(a), EndCause::Hello(b)) => a == b,
            (EndCause::Local, EndCause::Local)
            | (EndCause::Shutdown, EndCause::Shutdown)
            | (EndCause::KeepaliveTimeout, EndCause::KeepaliveTimeout)
            | (EndCause::Backpressure, EndCause::Backpressure)
            | (EndCause::HandshakeDeadline, EndCause::HandshakeDeadline) => true,
            _ => false,
        }
    }
}

impl Eq for EndCause {}

impl EndCause {
    /// The state the application sees for it as a failure: RemoteDeniedTrust for the end of
    /// hello and for a denial, Error otherwise.
    pub(crate) fn state(&self) -> ConnectionState {
        match self {
            EndCause::Hello(_) => ConnectionState::RemoteDeniedTrust,
            EndCause::Protocol(cause) if cause.is_remote_denied_trust() => {
                ConnectionState::RemoteDeniedTrust
            }
            _ => ConnectionState::Error,
        }
    }

    /// What the metrics count it as; only an explicit denial is a trust denial. (A local close
    /// and a shutdown are never counted as failures; they would be `Other`.)
    pub(crate) fn metric(&self) -> FailureCause {
        match self {
            EndCause::Dial(error) => error.cause(),
            EndCause::Hello(cause) | EndCause::Protocol(cause)
                if cause.is_remote_denied_trust() =>
            {
                FailureCause::TrustDenied
            }
            EndCause::Hello(CloseCause::RemoteClosed { .. } | CloseCause::TransportClosed)
            | EndCause::KeepaliveTimeout
            | EndCause::Local
            | EndCause::Shutdown => FailureCause::Other,
            EndCause::Protocol(cause) if cause.is_timeout() => FailureCause::HandshakeTimeout,
            EndCause::Hello(_) | EndCause::Protocol(_) => FailureCause::Protocol,
            EndCause::Backpressure => FailureCause::Backpressure,
            EndCause::HandshakeDeadline => FailureCause::HandshakeTimeout,
        }
    }
}

impl std::fmt::Display for EndCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndCause::Local => f.write_str("closed locally"),
            EndCause::Shutdown => f.write_str("hub shut down"),
            EndCause::Dial(error) => write!(f, "{error}"),
            EndCause::Protocol(cause) => write!(f, "{cause}"),
            EndCause::Hello(CloseCause::RemoteDeniedTrust) => f.write_str(
                "the other device refused to trust us (hello aborted: its user or its policy \
                 said no)",
            ),
            EndCause::Hello(CloseCause::RemoteClosed { reason }) => write!(
                f,
                "the other device closed the connection ({}) before confirming trust: no \
                 answer, not a refusal",
                reason
                    .as_ref()
                    .map_or("no reason given".to_owned(), ToString::to_string)
            ),
            EndCause::Hello(CloseCause::TransportClosed) => f.write_str(
                "the connection was lost while we waited for the other device to confirm \
                 trust: no answer, not a refusal (it may have crashed, restarted or lost its \
                 network)",
            ),
            EndCause::Hello(other) => write!(f, "{other}"),
            EndCause::KeepaliveTimeout => f.write_str("no pong within the keepalive timeout"),
            EndCause::Backpressure => f.write_str(
                "closed for backpressure: the application did not consume the peer's data",
            ),
            EndCause::HandshakeDeadline => f.write_str("handshake deadline passed"),
        }
    }
}

/// Its `Display` already says the dial's error: the source is the dial error's own source.
impl std::error::Error for EndCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            EndCause::Dial(error) => error.source(),
            _ => None,
        }
    }
}

impl From<Arc<DialError>> for EndCause {
    fn from(error: Arc<DialError>) -> Self {
        EndCause::Dial(error)
    }
}

impl From<DialError> for EndCause {
    fn from(error: DialError) -> Self {
        EndCause::Dial(Arc::new(error))
    }
}

impl From<CloseCause> for EndCause {
    /// The SHIP connection ended with `cause` ([`EndCause::Protocol`]).
    fn from(cause: CloseCause) -> Self {
        EndCause::Protocol(cause)
    }
}

/// Why an address was not taken: it cannot be dialled ([`HubError::Address`]), or an announced
/// record's WebSocket path is not a path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
    /// 0.0.0.0 or :: cannot be dialled.
    #[error("{address} is unspecified and cannot be dialled")]
    Unspecified {
        /// The address given.
        address: SocketAddr,
    },
    /// Port 0 cannot be dialled.
    #[error("{address} has port 0 and cannot be dialled")]
    PortZero {
        /// The address given.
        address: SocketAddr,
    },
    /// A multicast or broadcast address is not a peer.
    #[error("{address} is a multicast or broadcast address, not a peer")]
    NotUnicast {
        /// The address given.
        address: SocketAddr,
    },
    /// An IPv6 link-local address needs a scope id (zone index, e.g. `%eth0` / `%2`).
    #[error("{address} is IPv6 link-local without a scope id (write it as [fe80::…%2]:port)")]
    LinkLocalWithoutScope {
        /// The address given.
        address: SocketAddr,
    },
    /// A WebSocket path must start with `/` (the `path` of an mDNS record; the hub's methods
    /// always use `/ship/`).
    #[error("WebSocket path {path:?} does not start with '/'")]
    BadPath {
        /// The path given.
        path: String,
    },
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
    Address(#[from] AddressError),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Timer;

    /// The words people read (the gateway prints them as a peer's `error` and a disconnect's
    /// `reason`), one per cause.
    #[test]
    fn every_cause_says_what_happened_in_words() {
        let cases = [
            (EndCause::Local, "closed locally"),
            (EndCause::Shutdown, "hub shut down"),
            (
                EndCause::from(DialError::NoAddress),
                "no address known for the peer",
            ),
            (
                EndCause::from(CloseCause::Timeout(Timer::AccessMethods)),
                "timed out waiting (access methods)",
            ),
            (
                EndCause::Hello(CloseCause::RemoteDeniedTrust),
                "the other device refused to trust us (hello aborted: its user or its policy said \
                 no)",
            ),
            (
                EndCause::Hello(CloseCause::RemoteClosed { reason: None }),
                "the other device closed the connection (no reason given) before confirming \
                 trust: no answer, not a refusal",
            ),
            (
                EndCause::Hello(CloseCause::TransportClosed),
                "the connection was lost while we waited for the other device to confirm trust: \
                 no answer, not a refusal (it may have crashed, restarted or lost its network)",
            ),
            (
                EndCause::Hello(CloseCause::Timeout(Timer::HelloWait)),
                "timed out waiting (hello wait)",
            ),
            (
                EndCause::KeepaliveTimeout,
                "no pong within the keepalive timeout",
            ),
            (
                EndCause::Backpressure,
                "closed for backpressure: the application did not consume the peer's data",
            ),
            (EndCause::HandshakeDeadline, "handshake deadline passed"),
        ];
        for (cause, words) in cases {
            assert_eq!(cause.to_string(), words, "{cause:?}");
        }
    }

    #[test]
    fn dial_failures_are_equal_only_when_they_are_the_same_failure() {
        let failure = EndCause::from(DialError::Cancelled);
        assert_eq!(failure, failure.clone());
        assert_ne!(failure, EndCause::from(DialError::Cancelled));
        assert_eq!(
            EndCause::Protocol(CloseCause::TransportClosed),
            EndCause::from(CloseCause::TransportClosed)
        );
        assert_ne!(
            EndCause::Protocol(CloseCause::TransportClosed),
            EndCause::Hello(CloseCause::TransportClosed)
        );
        assert_eq!(EndCause::Local, EndCause::Local);
        assert_ne!(EndCause::Local, EndCause::Shutdown);
    }

    #[test]
    fn the_end_of_hello_and_a_denial_show_as_remote_denied_trust() {
        let denied = [
            EndCause::Hello(CloseCause::TransportClosed),
            EndCause::Hello(CloseCause::RemoteDeniedTrust),
            EndCause::Protocol(CloseCause::RemoteDeniedTrust),
        ];
        for cause in denied {
            assert_eq!(
                cause.state(),
                ConnectionState::RemoteDeniedTrust,
                "{cause:?}"
            );
        }
        let errors = [
            EndCause::Protocol(CloseCause::TransportClosed),
            EndCause::from(DialError::NoAddress),
            EndCause::KeepaliveTimeout,
            EndCause::Backpressure,
            EndCause::HandshakeDeadline,
        ];
        for cause in errors {
            assert_eq!(cause.state(), ConnectionState::Error, "{cause:?}");
        }
    }

    /// Only an explicit denial counts as a trust denial; the end of hello without an answer is
    /// not one.
    #[test]
    fn the_metrics_count_each_cause_in_its_bucket() {
        let cases = [
            (
                EndCause::from(DialError::ConnectionLimit(1)),
                FailureCause::RefusedByCap,
            ),
            (
                EndCause::Hello(CloseCause::RemoteDeniedTrust),
                FailureCause::TrustDenied,
            ),
            (
                EndCause::Protocol(CloseCause::RemoteDeniedTrust),
                FailureCause::TrustDenied,
            ),
            (
                EndCause::Hello(CloseCause::RemoteClosed { reason: None }),
                FailureCause::Other,
            ),
            (
                EndCause::Hello(CloseCause::TransportClosed),
                FailureCause::Other,
            ),
            (
                EndCause::Hello(CloseCause::Timeout(Timer::HelloWait)),
                FailureCause::Protocol,
            ),
            (
                EndCause::Protocol(CloseCause::Timeout(Timer::AccessMethods)),
                FailureCause::HandshakeTimeout,
            ),
            (
                EndCause::Protocol(CloseCause::TransportClosed),
                FailureCause::Protocol,
            ),
            (EndCause::KeepaliveTimeout, FailureCause::Other),
            (EndCause::Backpressure, FailureCause::Backpressure),
            (EndCause::HandshakeDeadline, FailureCause::HandshakeTimeout),
        ];
        for (cause, bucket) in cases {
            assert_eq!(cause.metric(), bucket, "{cause:?}");
        }
    }
}
