//! The gateway's HTTP API (`/api/v1/…`, `/metrics`), served on TCP when `--http ADDR` is given
//! (docs/gateway.md, "HTTP API"). One router; the handlers are in `routes.rs`, the access rules
//! (loopback, token, same origin) in `auth.rs`.
//!
//! Bounds: at most [`HttpLimits::max_connections`] connections at once (one more is closed at
//! once), request headers within [`HttpLimits::header_timeout`], request bodies of at most
//! [`HttpLimits::max_body`] bytes read within [`HttpLimits::body_timeout`]; the event stream is
//! bounded by its ring (`bus.rs`).

pub(crate) mod auth;
pub(crate) mod bus;
pub(crate) mod live;
mod metrics;
mod pairing_request;
mod prefixed;
mod routes;
pub(crate) use routes::PeerView;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use ship_hub::ShipId;
use ship_hub::hub::Hub;

use crate::events::EventLog;
use crate::store::LockedTrustStore;
use auth::Access;
use bus::EventBus;
use live::Live;

/// Limits of the HTTP server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HttpLimits {
    /// Connections served at once. Default 64.
    pub(crate) max_connections: usize,
    /// Time a client has to send a request's headers (a slow client is closed). Default 10 s.
    pub(crate) header_timeout: Duration,
    /// Largest request body in bytes (a SPINE payload is at most about 100 KiB). Default
    /// 256 KiB.
    pub(crate) max_body: usize,
    /// Time a client has to send a request's body. Default 10 s.
    pub(crate) body_timeout: Duration,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            max_body: 256 * 1024,
            body_timeout: Duration::from_secs(10),
        }
    }
}

/// What every handler reaches.
pub(crate) struct ApiState {
    pub(crate) hub: Hub,
    pub(crate) trust: Arc<LockedTrustStore>,
    pub(crate) log: Arc<EventLog>,
    pub(crate) live: Arc<Live>,
    pub(crate) bus: Arc<EventBus>,
    pub(crate) ship_id: ShipId,
    pub(crate) started: Instant,
    pub(crate) limits: HttpLimits,
    pub(crate) access: Access,
    /// This gateway's SHIP installation QR code: its text and an SVG picture of it.
    pub(crate) qr: Option<(String, String)>,
    /// Our own SHIP Pairing Service request (this gateway as the control unit).
    pub(crate) pairing_request: Arc<crate::pairing_request::PairingRequests>,
}

/// An error answer: `{"code": "...", "message": "..."}` with a 4xx (or 5xx for a failure of
/// the gateway itself, e.g. its disk). `code` is stable; `message` is for people.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(ErrorBody {
                code: self.code,
                message: &self.message,
            }),
        )
            .into_response()
    }
}

/// Serves the API on one connection of the control socket, whose first bytes (`prefix`) were
/// already read (to see that the client is not silent): they are put back in front.
pub(crate) async fn serve_socket_connection(
    stream: tokio::net::UnixStream,
    prefix: Vec<u8>,
    router: axum::Router,
    header_timeout: Duration,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let io = prefixed::Prefixed::new(prefix, stream);
    let _ = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(router))
        .await;
}

/// The router (for the control socket, which serves it itself).
pub(crate) fn router(state: Arc<ApiState>) -> axum::Router {
    routes::router(state)
}

/// Serves the API on `listener` until the task is dropped.
pub(crate) async fn serve(listener: tokio::net::TcpListener, state: Arc<ApiState>) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let router = routes::router(state.clone());
    let slots = Arc::new(tokio::sync::Semaphore::new(state.limits.max_connections));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors or similar: try again shortly rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(router.clone());
        let header_timeout = state.limits.header_timeout;
        tokio::spawn(async move {
            let _slot = slot;
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
