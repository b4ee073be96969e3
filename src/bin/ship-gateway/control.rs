//! How `pair`, `unpair` and `send` reach a running gateway: a unix socket in the data dir.
//!
//! * The running gateway holds an exclusive `flock` on `gateway.lock` for its whole life and
//!   serves `control.sock` (mode 0600: only its owner may control it).
//! * A command first tries to take `gateway.lock` shared, without waiting. If it gets it, no
//!   gateway runs: it keeps the lock (so no gateway starts in the middle) and edits
//!   `pairings.json` itself, under the trust store's own lock. If it does not, a gateway runs:
//!   the command sends one JSON line over the socket and the gateway applies it through its hub
//!   (so a new pairing is dialled at once and an unpaired peer is disconnected at once), then
//!   answers with one JSON line.
//!
//! Either way every change goes through [`crate::store::LockedTrustStore`], so two processes
//! never interleave their read-modify-write cycles, and the atomic replace of the file means a
//! killed writer leaves the old or the new store, never a torn one.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use ship_hub::hub::{Hub, HubError, TrustStore};
use ship_hub::protocol::Pin;
use ship_hub::{ShipId, Ski};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};

use crate::data_dir::DataDir;
use crate::error::GatewayError;
use crate::events::{Event, EventLog};
use crate::store::{FileLock, LockedTrustStore};

/// A request to the running gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub(crate) enum Request {
    /// Trust a peer and dial it.
    Pair {
        ski: Ski,
        ship_id: Option<ShipId>,
        name: Option<String>,
        address: Option<SocketAddr>,
        /// The PIN the peer requires (absent in requests of older clients).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pin: Option<SecretPin>,
    },
    /// Remove a pairing and disconnect.
    Unpair { ski: Ski },
    /// Send a data message to a connected peer.
    Send { ski: Ski, payload: String },
}

/// A PIN on the control socket: its text on the wire (checked when used), never in `Debug`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct SecretPin(pub(crate) String);

impl std::fmt::Debug for SecretPin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The gateway's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Response {
    pub(crate) ok: bool,
    pub(crate) message: String,
}

/// How a command reached the store.
pub(crate) enum Reach {
    /// A gateway runs and answered.
    Running(Response),
    /// No gateway runs; the lock keeps one from starting until it is dropped.
    NotRunning(FileLock),
}

/// The largest request read from the socket.
const MAX_REQUEST: u64 = 1 << 20;

/// How long a command waits for a gateway that holds its lock but has not opened its socket yet.
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);

/// Sends `request` to the running gateway, or reports that none runs (see the module docs).
pub(crate) fn reach(dir: &DataDir, request: &Request) -> Result<Reach, GatewayError> {
    let lock_path = dir.gateway_lock_path();
    let lock = FileLock::try_acquire(&lock_path, false).map_err(|source| GatewayError::Io {
        what: format!("locking {}", lock_path.display()),
        source,
    })?;
    if let Some(lock) = lock {
        return Ok(Reach::NotRunning(lock));
    }
    let path = dir.control_path();
    let error = |reason: String| GatewayError::Control {
        path: path.clone(),
        reason,
    };
    let started = Instant::now();
    let stream = loop {
        match UnixStream::connect(&path) {
            Ok(stream) => break stream,
            Err(e) if started.elapsed() < CONNECT_PATIENCE => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(error(format!("the gateway holds its lock but: {e}"))),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| error(e.to_string()))?;
    let mut line = serde_json::to_string(request).map_err(|e| error(e.to_string()))?;
    line.push('\n');
    // A busy gateway answers and closes before it reads: the write may then fail, but its answer
    // is waiting to be read.
    let written = (&stream).write_all(line.as_bytes());
    let mut answer = String::new();
    let read = BufReader::new(&stream).read_line(&mut answer);
    match (written, read) {
        (_, Ok(n)) if n > 0 => {}
        (Err(e), _) | (Ok(()), Err(e)) => return Err(error(e.to_string())),
        (Ok(()), Ok(_)) => return Err(error("the gateway closed without an answer".into())),
    }
    let response: Response = serde_json::from_str(answer.trim())
        .map_err(|e| error(format!("unreadable answer {answer:?}: {e}")))?;
    Ok(Reach::Running(response))
}

/// How many control connections the gateway serves at once, and how long each may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ControlLimits {
    /// Connections served at once; one beyond it gets a one-line error and is closed at once.
    pub(crate) max_connections: usize,
    /// How long a client may take to send its request; then it gets a one-line error and is
    /// closed.
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

/// The running gateway's side: serves requests until the task is dropped.
pub(crate) struct ControlServer {
    pub(crate) hub: Hub,
    pub(crate) trust: Arc<LockedTrustStore>,
    pub(crate) log: Arc<EventLog>,
    pub(crate) limits: ControlLimits,
    /// Where an unpair starts the peer's cooling-off and a pair ends it.
    pub(crate) live: Arc<crate::api::live::Live>,
    /// The HTTP API, served on the same socket to requests that start like HTTP (`status`,
    /// `watch`, `approve`, `deny`, `disconnect` use it).
    pub(crate) api: Option<axum::Router>,
}

/// Stores a pairing with its extras (SHIP ID, name, address, the PIN to send) and hands it to the hub, which
/// dials it when it knows an address. Blocking (the store touches the disk). Used by the
/// control socket and the HTTP API.
pub(crate) fn store_and_pair(
    trust: &LockedTrustStore,
    hub: &Hub,
    ski: Ski,
    ship_id: Option<ShipId>,
    name: Option<String>,
    address: Option<SocketAddr>,
    pin: Option<Pin>,
) -> Result<ship_hub::hub::PairedPeer, GatewayError> {
    if ski == hub.local_ski() {
        return Err(GatewayError::OwnSki(ski));
    }
    // Store the extras first: pair_at hands the stored record to the peer's supervisor.
    let peer = trust.store_pairing(ski, ship_id.clone(), name, address, pin)?;
    hub.pair_at(ski, ship_id, address)?;
    Ok(peer)
}

/// What a new pairing leads to, said as it will happen: the gateway dials only an address it
/// knows (given, stored, or seen over mDNS); otherwise it waits for the device.
pub(crate) fn what_happens_next(hub: &Hub, peer: &ship_hub::hub::PairedPeer) -> String {
    let ski = peer.ski;
    if hub.connection_state(ski) == ship_hub::protocol::ConnectionState::Completed {
        return format!("paired {ski}; it is connected");
    }
    if let Some(address) = peer.last_address {
        return format!("paired {ski}; the running gateway dials it now at {address}");
    }
    if hub.visible_services().iter().any(|s| s.ski == ski) {
        return format!(
            "paired {ski}; the running gateway dials it now (its address is known from mDNS)"
        );
    }
    format!(
        "paired {ski}; no address is known yet: it is trusted when it connects, and dialled as \
         soon as mDNS shows it (or give `--address HOST:PORT`)"
    )
}

/// The answer to a client that sent no request in time.
fn idle_answer(idle_timeout: std::time::Duration) -> Response {
    Response {
        ok: false,
        message: format!("no request within {} s: closed", idle_timeout.as_secs_f64()),
    }
}

/// Writes `response` as one line without waiting: the socket is fresh, so its buffer has room;
/// a client that made it full gets nothing.
fn answer_now(stream: &tokio::net::UnixStream, response: &Response) {
    if let Ok(mut text) = serde_json::to_string(response) {
        text.push('\n');
        let _ = stream.try_write(text.as_bytes());
    }
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

impl ControlServer {
    /// Accepts connections, one request each. At most [`ControlLimits::max_connections`] are
    /// served at once, and each must send its request within [`ControlLimits::idle_timeout`]:
    /// silent clients cannot hold file descriptors the gateway needs for its peers.
    pub(crate) async fn serve(self: Arc<Self>, listener: tokio::net::UnixListener) {
        let slots = Arc::new(tokio::sync::Semaphore::new(self.limits.max_connections));
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, for example: do not spin.
                    tracing::warn!(%error, "control socket: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                answer_now(
                    &stream,
                    &Response {
                        ok: false,
                        message: format!(
                            "the gateway is busy: {} control connections are open; try again",
                            self.limits.max_connections
                        ),
                    },
                );
                continue;
            };
            let server = self.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let idle_timeout = server.limits.idle_timeout;
                let started = tokio::time::Instant::now();
                let mut stream = stream;
                // The first byte tells the two protocols apart: a JSON line starts with `{`,
                // an HTTP request with its method.
                let mut first = [0u8; 1];
                let read = tokio::time::timeout(idle_timeout, stream.read(&mut first)).await;
                match read {
                    Err(_elapsed) => {
                        answer_now(&stream, &idle_answer(idle_timeout));
                        return;
                    }
                    Ok(Ok(0)) | Ok(Err(_)) => return,
                    Ok(Ok(_)) => {}
                }
                if first[0].is_ascii_uppercase()
                    && let Some(router) = &server.api
                {
                    let left = idle_timeout.saturating_sub(started.elapsed());
                    crate::api::serve_socket_connection(
                        stream,
                        first.to_vec(),
                        router.clone(),
                        left.max(std::time::Duration::from_millis(1)),
                    )
                    .await;
                    return;
                }
                let mut line = String::new();
                let mut reader =
                    tokio::io::BufReader::new(crate::api::Prefixed::new(first.to_vec(), stream));
                let read = {
                    let mut limited = (&mut reader).take(MAX_REQUEST);
                    let left = idle_timeout.saturating_sub(started.elapsed());
                    tokio::time::timeout(left, limited.read_line(&mut line)).await
                };
                let response = match read {
                    Err(_elapsed) => {
                        answer_now(reader.get_ref().inner(), &idle_answer(idle_timeout));
                        return;
                    }
                    Ok(Ok(_)) => match serde_json::from_str::<Request>(line.trim()) {
                        Ok(request) => server.handle(request).await,
                        Err(e) => Response {
                            ok: false,
                            message: format!("bad request: {e}"),
                        },
                    },
                    Ok(Err(e)) => Response {
                        ok: false,
                        message: format!("bad request: {e}"),
                    },
                };
                if let Ok(mut text) = serde_json::to_string(&response) {
                    text.push('\n');
                    let write = reader.get_mut().write_all(text.as_bytes());
                    let _ = tokio::time::timeout(idle_timeout, write).await;
                }
            });
        }
    }

    async fn handle(&self, request: Request) -> Response {
        let result = match request {
            Request::Pair {
                ski,
                ship_id,
                name,
                address,
                pin,
            } => self.pair(ski, ship_id, name, address, pin).await,
            Request::Unpair { ski } => self.unpair(ski).await,
            Request::Send { ski, payload } => self.send(ski, payload),
        };
        match result {
            Ok(message) => Response { ok: true, message },
            Err(message) => Response { ok: false, message },
        }
    }

    async fn pair(
        &self,
        ski: Ski,
        ship_id: Option<ShipId>,
        name: Option<String>,
        address: Option<SocketAddr>,
        pin: Option<SecretPin>,
    ) -> Result<String, String> {
        let pin = pin
            .map(|p| Pin::new(&p.0).map_err(|e| format!("--pin: {e}")))
            .transpose()?;
        let trust = self.trust.clone();
        let hub = self.hub.clone();
        let peer = tokio::task::spawn_blocking(move || {
            store_and_pair(&trust, &hub, ski, ship_id, name, address, pin)
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        self.live.end_cooling(&ski);
        self.log.emit(Event::Paired {
            ski: ski.to_string(),
            by: "pair command".into(),
        });
        Ok(what_happens_next(&self.hub, &peer))
    }

    async fn unpair(&self, ski: Ski) -> Result<String, String> {
        let trust = self.trust.clone();
        let hub = self.hub.clone();
        tokio::task::spawn_blocking(move || {
            if trust.get(&ski).map_err(|e| e.to_string())?.is_none() {
                return Err(GatewayError::NotPaired(ski).to_string());
            }
            hub.unpair(ski).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| e.to_string())??;
        self.live.forget(&ski);
        self.log.emit(Event::Unpaired {
            ski: ski.to_string(),
        });
        Ok(format!(
            "unpaired {ski}; the running gateway disconnected it"
        ))
    }

    fn send(&self, ski: Ski, payload: String) -> Result<String, String> {
        match self.hub.send_data(ski, payload.as_bytes()) {
            Ok(()) => {
                self.log.emit(Event::DataSent {
                    ski: ski.to_string(),
                    bytes: payload.len(),
                });
                Ok(format!("sent {} bytes to {ski}", payload.len()))
            }
            Err(HubError::NotConnected(_)) => Err(format!("{ski} is not connected")),
            Err(e @ HubError::PayloadTooLarge { .. }) => Err(format!("{e}; nothing was sent")),
            Err(e) => Err(e.to_string()),
        }
    }
}
