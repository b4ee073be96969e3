//! The WebSocket layer of SHIP (SHIP §10, docs/ship.md §3).
//!
//! * The upgrade requires the subprotocol `ship`, and the server echoes it.
//! * SHIP messages are binary frames; a text frame is a protocol error (closed with 1003).
//! * Messages above [`WsOptions::max_message_size`] are refused (closed with 1009).
//! * An accepting hub that is full answers the upgrade with HTTP 503 (`admit` returns false).
//! * Pings from the peer are answered by the WebSocket library; [`ShipSocket::ping`] sends
//!   our own keepalive pings and `SocketEvent::Pong` reports the answers.

use std::borrow::Cow;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode, header};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use super::error::{TransportError, WebSocketError, from_tungstenite};
use super::socket::ShipSocket;
use super::tls::TlsStream;

/// The WebSocket subprotocol SHIP requires (§10.2).
pub const SHIP_SUBPROTOCOL: &str = "ship";

/// Default maximum size of one incoming SHIP message: 100 KiB, the cap ship-go applies, so a
/// message we accept is one a ship-go peer could have sent.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 100 * 1024;

/// Choices in the WebSocket layer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WsOptions {
    /// The largest incoming message (and frame) accepted, in bytes; a bigger one closes the
    /// connection with 1009 and [`WebSocketError::MessageTooLarge`]. It also sizes the bound
    /// of the write buffer (this size plus 192 KiB), so an outgoing message bigger than that
    /// cannot be sent (the hub sends none bigger than this size).
    pub max_message_size: usize,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// Capacity of a WebSocket's read buffer, in bytes. tungstenite's default (128 KiB) is zeroed
/// in full on every read, so each idle connection kept 128 KiB resident and every read paid a
/// 128 KiB memset (docs/performance.md). The buffer lives as long as the connection and is
/// refilled from the TLS layer's own buffer of decrypted data, so a smaller one costs copies
/// within the process, not reads from the network: 512 bytes hold a SHIP handshake message
/// (ours are under 200 bytes) in one read, and a larger message (up to
/// [`WsOptions::max_message_size`]) still arrives, over more reads (docs/performance.md,
/// "Memory per held connection").
const READ_BUFFER_SIZE: usize = 512;

/// tungstenite's write-buffer threshold (its default): frames are collected up to this size
/// before they are written, and every flush writes them all.
const WRITE_BUFFER_SIZE: usize = 128 * 1024;

/// Room in the write buffer beyond one message of ours, for tungstenite's automatic pong and
/// close replies.
const WRITE_BUFFER_SPARE: usize = 64 * 1024;

impl WsOptions {
    fn config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_SIZE)
            .write_buffer_size(WRITE_BUFFER_SIZE)
            .max_write_buffer_size(self.max_write_buffer_size())
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }

    /// The most the write buffer may hold. The hub's link keeps reading while one of its
    /// messages waits for a peer that does not read, and tungstenite answers each ping it reads
    /// by appending a pong to the write buffer: unbounded, a peer that stops reading and keeps
    /// pinging would grow it without end. Bounded, a pong that does not fit waits in
    /// tungstenite's single reply slot (a newer one replaces it). The bound leaves room for the
    /// write-buffer threshold, one message of the size this socket accepts (the hub sends no
    /// bigger one, `Hub::send_data` refuses it) and the replies; a frame that would not fit is
    /// refused with a WebSocket error.
    fn max_write_buffer_size(&self) -> usize {
        WRITE_BUFFER_SIZE
            .saturating_add(self.max_message_size)
            .saturating_add(WRITE_BUFFER_SPARE)
    }
}

/// Why the server refused an upgrade, remembered across the handshake callback.
enum Refusal {
    MissingSubprotocol,
    WrongSubprotocol(String),
    Full,
}

fn error_response(status: StatusCode, text: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(text.to_owned()));
    *response.status_mut() = status;
    response
}

/// Runs the server side of the WebSocket upgrade on a TLS stream (§10.2).
///
/// The client must offer the subprotocol `ship` (else HTTP 400 and
/// [`WebSocketError::MissingSubprotocol`] / [`WebSocketError::WrongSubprotocol`]); then
/// `admit` is asked, during the upgrade, whether there is room for this connection: `false`
/// answers HTTP 503 and returns [`WebSocketError::Refused`]. Any request path is accepted.
pub async fn accept_websocket<S>(
    tls: TlsStream<S>,
    options: &WsOptions,
    admit: impl FnOnce() -> bool,
) -> Result<ShipSocket<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let peer_ski = tls.peer_ski();
    // Boxed so the handshake callback is `Unpin` whatever `admit` is.
    let admit = Box::new(admit);
    let mut refusal = None;
    // The callback's signature (and its large error type) is tungstenite's.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| {
        let offered: Vec<String> = request
            .headers()
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(|token| token.trim().to_owned())
            .filter(|token| !token.is_empty())
            .collect();
        if offered.is_empty() {
            refusal = Some(Refusal::MissingSubprotocol);
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "SHIP requires the WebSocket subprotocol \"ship\"",
            ));
        }
        if !offered.iter().any(|token| token == SHIP_SUBPROTOCOL) {
            refusal = Some(Refusal::WrongSubprotocol(offered.join(", ")));
            return Err(error_response(
                StatusCode::BAD_REQUEST,
                "SHIP requires the WebSocket subprotocol \"ship\"",
            ));
        }
        if !admit() {
            refusal = Some(Refusal::Full);
            return Err(error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "this SHIP node is at capacity",
            ));
        }
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SHIP_SUBPROTOCOL),
        );
        Ok(response)
    };
    let result =
        tokio_tungstenite::accept_hdr_async_with_config(tls, callback, Some(options.config()))
            .await;
    match (result, refusal) {
        (Ok(inner), _) => Ok(ShipSocket::new(inner, peer_ski, options.max_message_size)),
        (Err(_), Some(Refusal::MissingSubprotocol)) => {
            Err(WebSocketError::MissingSubprotocol.into())
        }
        (Err(_), Some(Refusal::WrongSubprotocol(offered))) => {
            Err(WebSocketError::WrongSubprotocol(offered).into())
        }
        (Err(_), Some(Refusal::Full)) => Err(WebSocketError::Refused.into()),
        (Err(error), None) => Err(from_tungstenite(error)),
    }
}

/// Runs the client side of the WebSocket upgrade to `wss://host:port/path` with the
/// subprotocol `ship` (§10.2). The server must echo `ship`.
///
/// An HTTP refusal is reported as [`WebSocketError::ServiceUnavailable`] (503) or
/// [`WebSocketError::Http`]; [`TransportError::is_path_rejected`] tells whether ship-go's retry
/// with the path `/` applies (it needs a new TLS connection: [`dial`](super::dial) does that).
pub async fn connect_websocket<S>(
    tls: TlsStream<S>,
    host: &str,
    port: u16,
    path: &str,
    options: &WsOptions,
) -> Result<ShipSocket<S>, TransportError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let peer_ski = tls.peer_ski();
    let host = host.trim_end_matches('.');
    let host: Cow<'_, str> = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]").into()
    } else {
        host.into()
    };
    let path = if path.starts_with('/') {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("/{path}"))
    };
    let url = format!("wss://{host}:{port}{path}");
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| WebSocketError::Protocol(format!("invalid URL {url}: {e}")))?;
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SHIP_SUBPROTOCOL),
    );
    let (inner, _response) =
        tokio_tungstenite::client_async_with_config(request, tls, Some(options.config()))
            .await
            .map_err(from_tungstenite)?;
    tracing::debug!(peer = %peer_ski, %url, "WebSocket connected");
    Ok(ShipSocket::new(inner, peer_ski, options.max_message_size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_buffer_is_small_but_messages_may_be_large() {
        let config = WsOptions::default().config();
        assert_eq!(config.read_buffer_size, READ_BUFFER_SIZE);
        assert!(config.max_message_size > Some(READ_BUFFER_SIZE));
    }

    #[test]
    fn default_message_cap_is_ship_gos_100_kib() {
        assert_eq!(WsOptions::default().max_message_size, 100 * 1024);
    }
}
