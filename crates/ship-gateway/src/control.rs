//! How the command line reaches a running gateway: a unix socket in the data dir that serves
//! the gateway's HTTP API (the same routes as `--http`, without the token: the socket's mode
//! already restricts it to the gateway's owner; it alone makes one-time login links for the
//! console, `ship-gateway console`). A request's body must arrive within the idle timeout of
//! its headers.
//!
//! * The running gateway holds an exclusive `flock` on `gateway.lock` for its whole life and
//!   serves `control.sock` (mode 0600).
//! * A command first tries to take `gateway.lock` shared, without waiting (`crate::client`). If
//!   it gets it, no gateway runs: `pair` and `unpair` keep the lock (so no gateway starts in the
//!   middle) and edit `pairings.json` themselves, under the trust store's own lock. If it does
//!   not, a gateway runs: the command sends one HTTP request over the socket and the gateway
//!   applies it through its hub (so a new pairing is dialled at once and an unpaired peer is
//!   disconnected at once).
//!
//! Either way every change goes through [`crate::store::LockedTrustStore`], so two processes
//! never interleave their read-modify-write cycles, and the atomic replace of the file means a
//! killed writer leaves the old or the new store, never a torn one.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::error::GatewayError;

/// How many control connections the gateway serves at once, and how long each may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ControlLimits {
    /// Connections served at once; one beyond it is answered `503 busy` and closed at once.
    pub(crate) max_connections: usize,
    /// How long a client may take to start its request; then it is answered
    /// `408 idle_timeout` and closed (and the HTTP server gives it as long again for the rest of
    /// its headers).
    pub(crate) idle_timeout: Duration,
}

impl Default for ControlLimits {
    fn default() -> Self {
        ControlLimits {
            max_connections: DEFAULT_CONTROL_CONNECTIONS,
            idle_timeout: DEFAULT_CONTROL_IDLE_TIMEOUT,
        }
    }
}

/// Default of [`ControlLimits::max_connections`].
pub(crate) const DEFAULT_CONTROL_CONNECTIONS: usize = 16;

/// Default of [`ControlLimits::idle_timeout`].
pub(crate) const DEFAULT_CONTROL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The running gateway's side: the API on the socket ([`SocketFront`] serves it).
pub(crate) struct ControlServer {
    pub(crate) limits: ControlLimits,
    /// The HTTP API (`crate::api`), with socket access rules.
    pub(crate) api: axum::Router,
}

/// An HTTP error answer written without waiting, before any request was read: the socket is
/// fresh, so its buffer has room; a client that made it full gets nothing.
fn answer_now(stream: &tokio::net::UnixStream, status: &str, code: &str, message: &str) {
    let body = serde_json::json!({ "code": code, "message": message }).to_string();
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nConnection: close\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(text.as_bytes());
}

/// Binds the control socket at `path` (replacing a stale one: the caller holds the gateway
/// lock, so no other gateway uses it).
pub(crate) fn bind(path: &Path) -> Result<tokio::net::UnixListener, GatewayError> {
    use std::os::unix::fs::PermissionsExt;
    let error = |source| GatewayError::Io {
        what: format!("control socket {}", path.display()),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(error(e)),
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(error)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(error)?;
    Ok(listener)
}

/// Accepts connections (through [`crate::serve`]). At most [`ControlLimits::max_connections`]
/// are served at once (one more gets `503 busy` and is closed at once), and each must send its
/// request headers within [`ControlLimits::idle_timeout`] (else `408 idle_timeout`): silent
/// clients cannot hold file descriptors the gateway needs for its peers.
pub(crate) struct SocketFront {
    server: ControlServer,
    slots: Arc<tokio::sync::Semaphore>,
}

impl SocketFront {
    /// The front of `server`.
    pub(crate) fn new(server: ControlServer) -> Arc<SocketFront> {
        Arc::new(SocketFront {
            slots: Arc::new(tokio::sync::Semaphore::new(server.limits.max_connections)),
            server,
        })
    }
}

impl crate::serve::Front<tokio::net::UnixListener> for SocketFront {
    fn connection(
        self: &Arc<Self>,
        stream: tokio::net::UnixStream,
        _addr: tokio::net::unix::SocketAddr,
        stop: crate::serve::Stop,
    ) -> Option<impl std::future::Future<Output = ()> + Send + 'static> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            answer_now(
                &stream,
                "503 Service Unavailable",
                "busy",
                &format!(
                    "the gateway is busy: {} control connections are open; try again",
                    self.server.limits.max_connections
                ),
            );
            return None;
        };
        let api = self.server.api.clone();
        let idle_timeout = self.server.limits.idle_timeout;
        Some(async move {
            let _slot = slot;
            // hyper closes a connection whose headers are late without a word: wait for the
            // first byte here to tell a silent client why it is closed.
            let mut stream = stream;
            let mut first = [0u8; 1];
            let read = tokio::select! {
                read = tokio::time::timeout(idle_timeout, stream.read(&mut first)) => read,
                // The gateway stops: nothing was asked yet, nothing to finish.
                () = stop.graceful.cancelled() => return,
            };
            match read {
                Err(_elapsed) => answer_now(
                    &stream,
                    "408 Request Timeout",
                    "idle_timeout",
                    &format!("no request within {} s: closed", idle_timeout.as_secs_f64()),
                ),
                Ok(Ok(0)) | Ok(Err(_)) => {}
                Ok(Ok(_)) => {
                    crate::api::serve_socket_connection(
                        stream,
                        first.to_vec(),
                        api,
                        idle_timeout,
                        idle_timeout,
                        &stop,
                    )
                    .await;
                }
            }
        })
    }
}
