//! Dialling a SHIP peer: TCP, then TLS expecting the peer's SKI, then the WebSocket upgrade,
//! retrying without the path as ship-go does.

use std::net::SocketAddr;

use tokio::net::TcpStream;

use super::error::TransportError;
use super::socket::ShipSocket;
use super::tls::ShipTls;
use super::websocket::{WsOptions, connect_websocket};
use crate::Ski;

/// Dials `addr` by IP: TCP, TLS expecting `expected` (SNI is
/// [`FALLBACK_SERVER_NAME`](super::FALLBACK_SERVER_NAME)), WebSocket upgrade on `path`. See
/// [`dial_host`].
pub async fn dial(
    tls: &ShipTls,
    addr: SocketAddr,
    expected: Ski,
    path: &str,
    ws: &WsOptions,
) -> Result<ShipSocket<TcpStream>, TransportError> {
    dial_host(tls, addr, "", expected, path, ws).await
}

/// Dials `addr`, sending `host_name` (e.g. the mDNS host name; empty for none) as SNI and in
/// the WebSocket URL `wss://host_name:port/path`.
///
/// If the server refuses the upgrade on `path` with HTTP 404 or 400, dials again (new TCP and
/// TLS connection) and upgrades on `/`, as ship-go does (docs/ship.md §3).
pub async fn dial_host(
    tls: &ShipTls,
    addr: SocketAddr,
    host_name: &str,
    expected: Ski,
    path: &str,
    ws: &WsOptions,
) -> Result<ShipSocket<TcpStream>, TransportError> {
    match dial_once(tls, addr, host_name, expected, path, ws).await {
        Err(error) if error.is_path_rejected() && path != "/" && !path.is_empty() => {
            tracing::debug!(%addr, path, %error, "WebSocket path refused; retrying with /");
            dial_once(tls, addr, host_name, expected, "/", ws).await
        }
        other => other,
    }
}

async fn dial_once(
    tls: &ShipTls,
    addr: SocketAddr,
    host_name: &str,
    expected: Ski,
    path: &str,
    ws: &WsOptions,
) -> Result<ShipSocket<TcpStream>, TransportError> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let stream = tls.connect(tcp, host_name, expected).await?;
    let ip = addr.ip().to_string();
    let host = if host_name.is_empty() {
        ip.as_str()
    } else {
        host_name
    };
    connect_websocket(stream, host, addr.port(), path, ws).await
}
