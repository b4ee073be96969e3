//! The transport under SHIP: mutual TLS (SHIP §9, ship-protocol.md §2) and the WebSocket layer
//! (SHIP §10, ship-protocol.md §3).
//!
//! Everything is generic over the byte stream (`S: AsyncRead + AsyncWrite + Unpin + Send`), so
//! tokio TCP, `tokio::io::duplex` and simulated networks all work. The usual flow:
//!
//! * accepting: [`ShipTls::accept`] → [`accept_websocket`] → [`ShipSocket`];
//! * dialling: [`dial`] (TCP + [`ShipTls::connect`] + [`connect_websocket`], with ship-go's
//!   retry without the path).

mod dial;
mod error;
mod tls;
mod verifier;
mod websocket;

pub use dial::{dial, dial_host};
pub use error::{TlsError, TransportError, WebSocketError};
pub use tls::{FALLBACK_SERVER_NAME, ShipTls, TlsOptions, TlsStream};
pub use verifier::ClientCertificateObserver;
pub use websocket::{
    DEFAULT_MAX_MESSAGE_SIZE, SHIP_SUBPROTOCOL, ShipSocket, SocketEvent, WsOptions,
    accept_websocket, connect_websocket,
};
