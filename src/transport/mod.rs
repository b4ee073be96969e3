//! The transport under SHIP: mutual TLS (SHIP §9, docs/ship.md §2) and the WebSocket layer
//! (SHIP §10, docs/ship.md §3).
//!
//! Everything is generic over the byte stream (`S: AsyncRead + AsyncWrite + Unpin + Send`), so
//! tokio TCP, `tokio::io::duplex` and simulated networks all work. The usual flow:
//!
//! * accepting: [`ShipTls::accept`] → [`accept_websocket`] → [`ShipSocket`];
//! * dialling: [`dial`] (TCP + [`ShipTls::connect`] + [`connect_websocket`], with ship-go's
//!   retry without the path).
//!
//! Neither the TLS handshake nor the WebSocket upgrade has a timeout of its own: a peer that
//! stops sending stalls it forever, so callers wrap them in `tokio::time::timeout` (the hub
//! bounds every pending handshake).
//!
//! [`ShipSocket`] serves both directions: a connection task can drive it from one task with
//! `tokio::select!`, using [`ShipSocket::next_event`] (cancel-safe) as a branch and calling
//! [`ShipSocket::send`] / [`ShipSocket::ping`] / [`ShipSocket::close`] (not cancel-safe) from
//! the branch handlers, or [`ShipSocket::split`] it into a [`SocketReader`] and a
//! [`SocketWriter`] for two tasks. After any error from it, drop the socket.

mod cbc;
mod dial;
mod error;
mod provider;
mod socket;
mod suites;
mod tls;
mod verifier;
mod websocket;

pub use dial::{dial, dial_host};
pub use error::{TlsError, TransportError, WebSocketError};
pub use provider::ring_provider;
pub(crate) use socket::Outgoing;
pub use socket::{ShipSocket, SocketEvent, SocketReader, SocketWriter};
pub use suites::{TlsSuite, UnknownTlsSuite, parse_tls_suites};
pub use tls::{FALLBACK_SERVER_NAME, IncomingTls, ShipTls, TlsOptions, TlsStream};
pub use verifier::ClientCertificateObserver;
pub use websocket::{
    DEFAULT_MAX_MESSAGE_SIZE, SHIP_SUBPROTOCOL, WsOptions, accept_websocket, connect_websocket,
};
