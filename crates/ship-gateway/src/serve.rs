//! One accept loop for both fronts of the HTTP API, the TCP listener (`--http`) and the control
//! socket: [`serve`] accepts until the gateway's shutdown token is cancelled, then closes the
//! listener, lets each connection finish the request in flight (hyper's graceful shutdown: an
//! idle connection closes at once) and, at the stop's deadline, drops the connections that are
//! still busy. Every connection task ends by itself; none is aborted.
//!
//! What a front does with a connection (admission, credentials, deadlines) is its [`Front`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A listener [`serve`] accepts on.
pub(crate) trait Listener: Send + 'static {
    /// An accepted connection.
    type Io: Send + 'static;
    /// Who connected.
    type Addr: Send + 'static;
    /// The next connection.
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Io, Self::Addr)>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    type Addr = std::net::SocketAddr;
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Io, Self::Addr)>> + Send {
        tokio::net::TcpListener::accept(self)
    }
}

impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    type Addr = tokio::net::unix::SocketAddr;
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Io, Self::Addr)>> + Send {
        tokio::net::UnixListener::accept(self)
    }
}

/// The two stages of a stop, as a connection sees them.
#[derive(Clone)]
pub(crate) struct Stop {
    /// The gateway stops: finish the request in flight, take no other.
    pub(crate) graceful: CancellationToken,
    /// The stop's deadline passed: end now.
    pub(crate) now: CancellationToken,
}

/// What a front does with one accepted connection.
pub(crate) trait Front<L: Listener>: Send + Sync + 'static {
    /// Serves `io` (from `addr`) until it ends or `stop` says so; `None` when the connection
    /// was refused (answered and closed) at once.
    fn connection(
        self: &Arc<Self>,
        io: L::Io,
        addr: L::Addr,
        stop: Stop,
    ) -> Option<impl Future<Output = ()> + Send + 'static>;
}

/// A running [`serve`]: its stop.
pub(crate) struct Serving {
    /// Cancelled when the connections still busy must end.
    now: CancellationToken,
    done: tokio::task::JoinHandle<()>,
}

impl Serving {
    /// Waits until the listener is closed and every connection ended: those still busy after
    /// `grace` are dropped then. Call after the shutdown token was cancelled.
    pub(crate) async fn finish(self, grace: Duration) {
        let mut done = self.done;
        if tokio::time::timeout(grace, &mut done).await.is_err() {
            self.now.cancel();
            let _ = done.await;
        }
    }
}

/// Accepts on `listener` with `front` until `shutdown` is cancelled (see the module).
pub(crate) fn serve<L, F>(listener: L, front: Arc<F>, shutdown: CancellationToken) -> Serving
where
    L: Listener,
    F: Front<L>,
{
    let stop = Stop {
        graceful: shutdown,
        now: CancellationToken::new(),
    };
    let now = stop.now.clone();
    let done = tokio::spawn(async move {
        let connections = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                () = stop.graceful.cancelled() => break,
                accepted = listener.accept() => accepted,
            };
            match accepted {
                Ok((io, addr)) => {
                    if let Some(connection) = front.connection(io, addr, stop.clone()) {
                        connections.spawn(connection);
                    }
                    // Let the new connection read what it may already have sent before the next
                    // one is admitted (and could take its place).
                    tokio::task::yield_now().await;
                }
                Err(error) => {
                    // Out of file descriptors, say: try again shortly rather than spin.
                    tracing::warn!(%error, "HTTP API: accept failed");
                    tokio::select! {
                        () = stop.graceful.cancelled() => break,
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
            }
        }
        // Closed: a new connection is refused from here on.
        drop(listener);
        connections.close();
        connections.wait().await;
    });
    Serving { now, done }
}

/// Drives one hyper connection under `stop`: to its end, or, once the gateway stops, through
/// hyper's graceful shutdown (the request in flight is answered) until the deadline.
pub(crate) async fn drive<I, S>(
    connection: hyper::server::conn::http1::Connection<I, S>,
    stop: &Stop,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::ResBody: 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = stop.graceful.cancelled() => {}
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection => {}
        () = stop.now.cancelled() => {}
    }
}
