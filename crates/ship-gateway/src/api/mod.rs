//! The gateway's HTTP API (`/api/v1/…`, `/metrics`), served on TCP when `--http ADDR` is given
//! (docs/gateway.md, "HTTP API"), and on the control socket. One router; the handlers are in
//! `routes.rs`, the access rules (token, sessions, same origin) in `auth.rs`.
//!
//! Bounds (docs/gateway.md, "Bounds"): the connection slots of `conns.rs` (untrusted ones
//! capped in all and per source address, the oldest closed to make room; a share kept for
//! requests with a valid credential), request headers within [`HttpLimits::header_timeout`]
//! (also between two requests of a connection), request bodies of at most
//! [`HttpLimits::max_body`] bytes read within [`HttpLimits::body_timeout`] of their headers on
//! every route, at most [`HttpLimits::event_streams`] event streams, each holding at most one
//! batch of events (`bus.rs`), and small kernel socket buffers.

pub(crate) mod attempts;
pub(crate) mod auth;
pub(crate) mod bus;
pub(crate) mod conns;
pub(crate) mod live;
mod metrics;
mod pairing_request;
mod prefixed;
mod routes;
pub(crate) use routes::PeerView;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use ship_hub::ShipId;
use ship_hub::hub::Hub;

use crate::events::EventLog;
use auth::{Access, Auth, Peer, Verdict};
use bus::EventBus;
use conns::{ConnLimits, Conns};
use live::Live;

/// Limits of the HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HttpLimits {
    /// Connections served at once, of every kind. Default 64.
    pub(crate) max_connections: usize,
    /// Of those, connections that have not shown a valid credential (yet): new ones, and
    /// those of the login form. Default 16; the rest (48) is kept for requests with a valid
    /// token or session.
    pub(crate) untrusted_connections: usize,
    /// Untrusted connections from one source address (an IPv4 address, an IPv6 /64).
    /// Default 8.
    pub(crate) untrusted_per_address: usize,
    /// Time a client has to send a request's headers, counted from the connection or the end
    /// of its previous request (a slow or idle client is closed). Default 10 s.
    pub(crate) header_timeout: Duration,
    /// Largest request body in bytes (a SPINE payload is at most about 100 KiB). Default
    /// 256 KiB.
    pub(crate) max_body: usize,
    /// Time a client has to send a request's body, counted from its headers. Default 10 s.
    pub(crate) body_timeout: Duration,
    /// Event streams (`GET /api/v1/events`) open at once. Default 8.
    pub(crate) event_streams: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 64,
            untrusted_connections: 16,
            untrusted_per_address: 8,
            header_timeout: Duration::from_secs(10),
            max_body: 256 * 1024,
            body_timeout: Duration::from_secs(10),
            event_streams: 8,
        }
    }
}

impl HttpLimits {
    fn conn_limits(&self) -> ConnLimits {
        let untrusted = self
            .untrusted_connections
            .clamp(1, self.max_connections.max(1));
        ConnLimits {
            untrusted,
            per_address: self.untrusted_per_address.clamp(1, untrusted),
            authorized: self.max_connections.saturating_sub(untrusted),
        }
    }
}

/// The kernel's send and receive buffers of an HTTP connection (a client that does not read an
/// event stream holds at most this much in the kernel, and a sender at most this much unread).
const SOCKET_BUFFER: u32 = 64 * 1024;

/// The most bytes hyper buffers of one connection (request headers must fit).
const CONNECTION_BUFFER: usize = 16 * 1024;

/// What every handler reaches.
pub(crate) struct ApiState {
    pub(crate) hub: Hub,
    pub(crate) log: Arc<EventLog>,
    pub(crate) live: Arc<Live>,
    pub(crate) bus: Arc<EventBus>,
    pub(crate) ship_id: ShipId,
    pub(crate) started: Instant,
    pub(crate) limits: HttpLimits,
    /// The listener this router serves.
    pub(crate) access: Access,
    /// The credentials of the TCP listener, when one is served (the control socket makes login
    /// links with them).
    pub(crate) auth: Option<Arc<Auth>>,
    /// Where the TCP listener is, when one is served.
    pub(crate) http: Option<SocketAddr>,
    /// The event streams open now (at most [`HttpLimits::event_streams`]).
    pub(crate) streams: Arc<tokio::sync::Semaphore>,
    /// The TCP listener's connection slots (for `/metrics`).
    pub(crate) conns: Option<Arc<Conns>>,
    /// This gateway's SHIP installation QR code: its text and an SVG picture of it.
    pub(crate) qr: Option<(String, String)>,
    /// Our own SHIP Pairing Service request (this gateway as the control unit).
    pub(crate) pairing_request: Arc<crate::pairing_request::PairingRequests>,
    /// mDNS discovery is on (`false` with `--no-mdns`): the console then says so instead of
    /// "no devices visible".
    pub(crate) mdns: bool,
    /// The gateway's shutdown: event streams end when it is cancelled.
    pub(crate) shutdown: tokio_util::sync::CancellationToken,
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

/// The answer to a body that could not be read: too large, too late, or cut off.
pub(crate) fn body_error(error: axum::Error, limit: usize) -> ApiError {
    use std::error::Error as _;
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.is::<LateBody>() {
            return ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                "the request body did not arrive in time",
            );
        }
        source = cause.source();
    }
    let too_large = error.to_string().contains("length limit");
    if too_large {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {limit} bytes"),
        );
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        format!("the request body could not be read: {error}"),
    )
}

/// The error of a body that was not complete by its deadline.
#[derive(Debug)]
pub(crate) struct LateBody;

impl std::fmt::Display for LateBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for LateBody {}

/// A request body that fails with [`LateBody`] once `deadline` has passed: every route, the
/// login form included, reads bodies bounded in time. `done` says whether it was read to its
/// end.
struct Deadline<B> {
    inner: B,
    sleep: std::pin::Pin<Box<tokio::time::Sleep>>,
    done: Arc<std::sync::atomic::AtomicBool>,
}

impl<B> http_body::Body for Deadline<B>
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        use std::task::Poll;
        if let Poll::Ready(frame) = std::pin::Pin::new(&mut self.inner).poll_frame(cx) {
            if frame.is_none() || self.inner.is_end_stream() {
                self.done.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(LateBody)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `request` with `inner`, its body bounded in time (complete within `timeout` from
/// now). An answer given before the body was read to its end (a refusal, a body too large or
/// too late) says `Connection: close`: the rest of the body is not read, so the connection
/// cannot carry another request, and a client must not reuse it.
async fn call_with_deadline<B>(
    inner: &hyper_util::service::TowerToHyperService<axum::Router>,
    request: axum::http::Request<B>,
    timeout: Duration,
) -> Result<Response, std::convert::Infallible>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<axum::BoxError>,
{
    let sleep = Box::pin(tokio::time::sleep(timeout));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(
        http_body::Body::is_end_stream(request.body()),
    ));
    let request = request.map(|inner| {
        Body::new(Deadline {
            inner,
            sleep,
            done: done.clone(),
        })
    });
    let mut response = hyper::service::Service::call(inner, request).await?;
    if !done.load(std::sync::atomic::Ordering::Relaxed) {
        response.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    Ok(response)
}

fn connection_builder(header_timeout: Duration) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(CONNECTION_BUFFER);
    builder
}

/// Serves the API on one connection of the control socket, whose first bytes (`prefix`) were
/// already read (to see that the client is not silent): they are put back in front.
pub(crate) async fn serve_socket_connection(
    stream: tokio::net::UnixStream,
    prefix: Vec<u8>,
    router: axum::Router,
    header_timeout: Duration,
    body_timeout: Duration,
    stop: &crate::serve::Stop,
) {
    use hyper_util::rt::TokioIo;
    use hyper_util::service::TowerToHyperService;
    let io = prefixed::Prefixed::new(prefix, stream);
    let inner = Arc::new(TowerToHyperService::new(router));
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let inner = inner.clone();
            async move { call_with_deadline(&inner, request, body_timeout).await }
        });
    let connection = connection_builder(header_timeout).serve_connection(TokioIo::new(io), service);
    crate::serve::drive(connection, stop).await;
}

/// The router (for the control socket, which serves it itself).
pub(crate) fn router(state: Arc<ApiState>) -> axum::Router {
    routes::router(state)
}

/// Binds the TCP listener at `address`, with small socket buffers (the accepted connections
/// inherit them).
pub(crate) async fn bind(address: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(SOCKET_BUFFER)?;
    socket.set_recv_buffer_size(SOCKET_BUFFER)?;
    socket.bind(address)?;
    socket.listen(1024)
}

/// The connection slots of a TCP listener served with `limits`.
pub(crate) fn conns(limits: &HttpLimits) -> Arc<Conns> {
    Arc::new(Conns::new(limits.conn_limits()))
}

/// The TCP front of the API (`--http`): connection slots per credential and source address
/// (`conns.rs`), each request judged on its headers (`auth.rs`).
struct TcpFront {
    router: axum::Router,
    auth: Arc<Auth>,
    conns: Arc<Conns>,
    limits: HttpLimits,
}

impl crate::serve::Front<tokio::net::TcpListener> for TcpFront {
    fn connection(
        self: &Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
        stop: crate::serve::Stop,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        use hyper_util::rt::TokioIo;
        use hyper_util::service::TowerToHyperService;
        let admitted = self.conns.admit(peer.ip());
        let (conns, auth, limits) = (self.conns.clone(), self.auth.clone(), self.limits);
        let inner = Arc::new(TowerToHyperService::new(self.router.clone()));
        let id = admitted.id;
        Some(async move {
            let service = {
                let conns = conns.clone();
                hyper::service::service_fn(
                    move |mut request: hyper::Request<hyper::body::Incoming>| {
                        // Classified on its headers: a valid credential takes an authorized slot.
                        let verdict = auth.judge(request.headers(), conns::Source::of(peer.ip()));
                        if verdict == Verdict::Authorized {
                            conns.authorize(id);
                        } else {
                            conns.distrust(id);
                        }
                        request.extensions_mut().insert(verdict);
                        request.extensions_mut().insert(Peer(peer));
                        let inner = inner.clone();
                        async move { call_with_deadline(&inner, request, limits.body_timeout).await }
                    },
                )
            };
            let connection = connection_builder(limits.header_timeout)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = crate::serve::drive(connection, &stop) => {}
                () = admitted.evicted.notified() => {}
            }
            conns.leave(id);
        })
    }
}

/// Serves the API on `listener` until `shutdown` is cancelled ([`crate::serve`]).
/// `state.auth` and `state.conns` must be set.
pub(crate) fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<ApiState>,
    shutdown: tokio_util::sync::CancellationToken,
) -> Option<crate::serve::Serving> {
    let (Some(auth), Some(conns)) = (state.auth.clone(), state.conns.clone()) else {
        return None;
    };
    // Failures of sources that stopped guessing are said once a minute.
    {
        let auth = auth.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(attempts::REPORT_EVERY);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    _ = every.tick() => auth.report_overdue(),
                }
            }
        });
    }
    let front = Arc::new(TcpFront {
        router: routes::router(state.clone()),
        auth,
        conns,
        limits: state.limits,
    });
    Some(crate::serve::serve(listener, front, shutdown))
}
