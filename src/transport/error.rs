//! Errors of the transport layer: one public enum per sub-layer, no rustls or tungstenite types.

use std::io;

use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::http::StatusCode;

use crate::Ski;
use crate::identity::CertificateError;

/// Anything that can go wrong below the SHIP handshake: TCP, TLS (§9) or WebSocket (§10).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The byte stream failed (connection refused or reset, unexpected end of stream …).
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The TLS handshake or a TLS record failed.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// The WebSocket upgrade or a WebSocket frame failed.
    #[error("WebSocket: {0}")]
    WebSocket(#[from] WebSocketError),
}

/// Why a TLS handshake with a SHIP peer failed (docs/ship.md §2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The server presented a certificate with another SKI than the one we dialled for.
    /// Detected inside the handshake, before any WebSocket byte is sent.
    #[error("the peer's SKI is {got}, but {expected} was expected")]
    UnexpectedSki {
        /// The SKI we dialled for.
        expected: Ski,
        /// The SKI in the certificate the peer presented.
        got: Ski,
    },
    /// The client presented no certificate; SHIP requires mutual authentication (§9).
    #[error("the client presented no certificate; SHIP requires mutual TLS")]
    NoClientCertificate,
    /// The peer's certificate is not a usable SHIP certificate.
    #[error("the peer's certificate was refused: {0}")]
    Certificate(#[from] CertificateError),
    /// The peer offered none of the cipher suites we support.
    #[error(
        "no cipher suite in common: SHIP peers must offer TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 \
         or TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (unless restricted by the tls_suites setting; \
         the CCM_8 suite is not supported)"
    )]
    NoCommonCipherSuite,
    /// The peer is incompatible in another way (protocol version, curves, signature schemes).
    #[error("the peer is incompatible: {0}")]
    Incompatible(String),
    /// The handshake signature does not verify with the certificate's public key: the peer
    /// does not hold the key of the certificate it presented.
    #[error("the peer's handshake signature does not verify with its certificate's key")]
    BadSignature,
    /// The peer aborted the handshake with a TLS alert (e.g. it refused our certificate).
    #[error("the peer sent the TLS alert {0}")]
    AlertReceived(String),
    /// The peer sent bytes that are not TLS (plain HTTP, garbage) or a malformed record.
    #[error("the peer did not speak TLS or sent a malformed TLS message: {0}")]
    InvalidMessage(String),
    /// The name to send as SNI is not a valid DNS name.
    #[error("{0:?} cannot be sent as a TLS server name")]
    InvalidServerName(String),
    /// The TLS configuration could not be built from this identity.
    #[error("cannot build the TLS configuration: {0}")]
    Configuration(String),
    /// Any other TLS failure.
    #[error("{0}")]
    Other(String),
}

/// Why the WebSocket layer failed (docs/ship.md §3).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebSocketError {
    /// The other side did not request/echo the `ship` subprotocol (§10.2).
    #[error("the peer did not negotiate the WebSocket subprotocol \"ship\"")]
    MissingSubprotocol,
    /// The other side requested or echoed a subprotocol other than `ship` (the message quotes
    /// it escaped and cut, [`crate::text::Quoted`]; the field holds it exactly).
    #[error(
        "the peer negotiated the WebSocket subprotocol {}, not \"ship\"",
        crate::text::Quoted(.0)
    )]
    WrongSubprotocol(String),
    /// A text frame arrived; SHIP messages are binary frames only.
    #[error("the peer sent a text frame; SHIP uses binary frames only")]
    TextFrame,
    /// A message larger than the configured maximum arrived.
    #[error("the peer sent a message of {size} bytes, more than the maximum of {max} bytes")]
    MessageTooLarge {
        /// Size of the message (as far as known).
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The server answered the upgrade with HTTP 503: it is at capacity.
    #[error("the server is at capacity (HTTP 503)")]
    ServiceUnavailable,
    /// The server answered the upgrade with another HTTP status.
    #[error("the server refused the WebSocket upgrade with HTTP {0}")]
    Http(u16),
    /// We refused an incoming upgrade because we are at capacity (HTTP 503 sent).
    #[error("refused the WebSocket upgrade with HTTP 503: at capacity")]
    Refused,
    /// The connection is closed; nothing more can be sent or received.
    #[error("the WebSocket connection is closed")]
    Closed,
    /// The stream ended without a WebSocket close handshake.
    #[error("the connection ended without a WebSocket close")]
    ResetWithoutClose,
    /// Any other WebSocket protocol violation (the WebSocket library's message, which may
    /// quote what the peer sent, shown escaped and cut: [`crate::text`]).
    #[error(
        "WebSocket protocol violation: {}",
        crate::text::escaped_message(.0, crate::text::MESSAGE_MAX_CHARS)
    )]
    Protocol(String),
}

impl TransportError {
    /// The peer's SKI differed from the one we dialled for.
    pub fn is_unexpected_ski(&self) -> bool {
        matches!(self, TransportError::Tls(TlsError::UnexpectedSki { .. }))
    }

    /// The server answered the WebSocket upgrade with HTTP 404 or 400: the path was wrong.
    /// ship-go retries such a dial with the path `/`; [`dial`](super::dial) does too.
    pub fn is_path_rejected(&self) -> bool {
        matches!(
            self,
            TransportError::WebSocket(WebSocketError::Http(404 | 400))
        )
    }

    /// The server is at capacity (HTTP 503 at the upgrade); try again later.
    pub fn is_service_unavailable(&self) -> bool {
        matches!(
            self,
            TransportError::WebSocket(WebSocketError::ServiceUnavailable)
        )
    }
}

/// The reason a SHIP verifier refused a certificate, carried through rustls inside
/// `rustls::CertificateError::Other` and recovered by [`from_tls_io`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum VerifierRejection {
    #[error("unexpected SKI {got}, expected {expected}")]
    UnexpectedSki { expected: Ski, got: Ski },
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

impl VerifierRejection {
    pub(crate) fn into_rustls(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
            std::sync::Arc::new(self),
        )))
    }
}

/// Maps an I/O error from tokio-rustls (which wraps rustls errors in `io::Error`) to ours.
pub(crate) fn from_tls_io(error: io::Error) -> TransportError {
    match error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => TransportError::Tls(from_rustls(tls)),
        None => TransportError::Io(error),
    }
}

pub(crate) fn from_rustls(error: &rustls::Error) -> TlsError {
    use rustls::{CertificateError as Cert, Error, PeerIncompatible};
    match error {
        Error::InvalidCertificate(Cert::Other(other)) => {
            match other.0.downcast_ref::<VerifierRejection>() {
                Some(VerifierRejection::UnexpectedSki { expected, got }) => {
                    TlsError::UnexpectedSki {
                        expected: *expected,
                        got: *got,
                    }
                }
                Some(VerifierRejection::Certificate(e)) => TlsError::Certificate(e.clone()),
                None => TlsError::Other(error.to_string()),
            }
        }
        Error::InvalidCertificate(Cert::BadSignature) => TlsError::BadSignature,
        Error::NoCertificatesPresented => TlsError::NoClientCertificate,
        Error::PeerIncompatible(PeerIncompatible::NoCipherSuitesInCommon) => {
            TlsError::NoCommonCipherSuite
        }
        Error::PeerIncompatible(other) => TlsError::Incompatible(format!("{other:?}")),
        Error::AlertReceived(alert) => TlsError::AlertReceived(format!("{alert:?}")),
        Error::InvalidMessage(detail) => TlsError::InvalidMessage(format!("{detail:?}")),
        Error::InappropriateMessage { .. } | Error::InappropriateHandshakeMessage { .. } => {
            TlsError::InvalidMessage(error.to_string())
        }
        other => TlsError::Other(other.to_string()),
    }
}

/// Maps a tungstenite error to ours.
pub(crate) fn from_tungstenite(error: tungstenite::Error) -> TransportError {
    use tungstenite::Error;
    use tungstenite::error::{CapacityError, ProtocolError, SubProtocolError};
    let ws = match error {
        Error::Io(io) => return from_tls_io(io),
        Error::ConnectionClosed | Error::AlreadyClosed => WebSocketError::Closed,
        Error::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
            WebSocketError::MessageTooLarge {
                size,
                max: max_size,
            }
        }
        Error::Http(response) => match response.status() {
            StatusCode::SERVICE_UNAVAILABLE => WebSocketError::ServiceUnavailable,
            status => WebSocketError::Http(status.as_u16()),
        },
        Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
            WebSocketError::ResetWithoutClose
        }
        Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(
            SubProtocolError::NoSubProtocol,
        )) => WebSocketError::MissingSubprotocol,
        Error::Protocol(ProtocolError::SecWebSocketSubProtocolError(other)) => {
            WebSocketError::WrongSubprotocol(other.to_string())
        }
        other => WebSocketError::Protocol(other.to_string()),
    };
    TransportError::WebSocket(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through_tokio_rustls(error: rustls::Error) -> TransportError {
        from_tls_io(io::Error::new(io::ErrorKind::InvalidData, error))
    }

    #[test]
    fn verifier_rejections_survive_the_trip_through_rustls() {
        let expected = Ski::from_bytes([1; 20]);
        let got = Ski::from_bytes([2; 20]);
        let error =
            through_tokio_rustls(VerifierRejection::UnexpectedSki { expected, got }.into_rustls());
        assert!(error.is_unexpected_ski());
        let error = through_tokio_rustls(
            VerifierRejection::Certificate(CertificateError::MissingSki).into_rustls(),
        );
        assert!(matches!(
            error,
            TransportError::Tls(TlsError::Certificate(CertificateError::MissingSki))
        ));
    }

    #[test]
    fn rustls_failures_map_to_named_errors() {
        let no_suites = through_tokio_rustls(rustls::Error::PeerIncompatible(
            rustls::PeerIncompatible::NoCipherSuitesInCommon,
        ));
        assert!(matches!(
            no_suites,
            TransportError::Tls(TlsError::NoCommonCipherSuite)
        ));
        assert!(
            no_suites
                .to_string()
                .contains("TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256")
        );
        assert!(matches!(
            through_tokio_rustls(rustls::Error::NoCertificatesPresented),
            TransportError::Tls(TlsError::NoClientCertificate)
        ));
        assert!(matches!(
            through_tokio_rustls(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadSignature
            )),
            TransportError::Tls(TlsError::BadSignature)
        ));
        let plain = from_tls_io(io::Error::from(io::ErrorKind::UnexpectedEof));
        assert!(matches!(plain, TransportError::Io(_)));
    }

    #[test]
    fn path_rejection_is_404_or_400() {
        assert!(TransportError::from(WebSocketError::Http(404)).is_path_rejected());
        assert!(TransportError::from(WebSocketError::Http(400)).is_path_rejected());
        assert!(!TransportError::from(WebSocketError::Http(500)).is_path_rejected());
        assert!(TransportError::from(WebSocketError::ServiceUnavailable).is_service_unavailable());
    }
}
