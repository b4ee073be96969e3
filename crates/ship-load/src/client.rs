//! The client side of one SHIP connection, as any SHIP peer would see it: TCP + mutual TLS +
//! WebSocket from `transport::dial`, and the sans-IO `protocol::Connection` as the client role
//! driven over the socket. Nothing here knows the target is a ship-hub.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use ship_hub::protocol::{
    CloseCause, CloseReason, Connection, ConnectionParams, ConnectionState, Event, ProtocolConfig,
    Role, Transmit, Trust,
};
use ship_hub::transport::{
    self, ShipSocket, ShipTls, SocketEvent, TransportError, WebSocketError, WsOptions,
};
use ship_hub::{ShipId, Ski};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// Why a connection attempt (or a held connection) failed, as the JSON result counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Failure {
    /// TCP connect failed (refused, no ports, too many files).
    TcpConnect,
    /// TLS failed (alert, wrong SKI, reset during the handshake).
    Tls,
    /// The server answered the upgrade with HTTP 503 (its connection cap).
    Refused503,
    /// Any other WebSocket failure.
    WebSocket,
    /// The SHIP handshake ended with an error or a denial.
    Protocol,
    /// The peer closed or the socket ended before Completed (or while held).
    Closed,
    /// The load tool's own deadline for the step passed.
    Timeout,
}

impl Failure {
    fn of_transport(error: &TransportError) -> Failure {
        match error {
            TransportError::Io(_) => Failure::TcpConnect,
            TransportError::Tls(_) => Failure::Tls,
            TransportError::WebSocket(WebSocketError::ServiceUnavailable) => Failure::Refused503,
            _ => Failure::WebSocket,
        }
    }

    fn of_close(cause: &CloseCause) -> Failure {
        match cause {
            CloseCause::TransportClosed | CloseCause::RemoteClosed { .. } => Failure::Closed,
            _ => Failure::Protocol,
        }
    }
}

/// Where and as whom to connect.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) addr: SocketAddr,
    pub(crate) ski: Ski,
    pub(crate) path: String,
    pub(crate) ws: WsOptions,
    pub(crate) protocol: ProtocolConfig,
    /// Limit for TCP + TLS + WebSocket + SHIP handshake together.
    pub(crate) handshake_timeout: Duration,
}

/// A SHIP connection in data exchange.
pub(crate) struct Session {
    socket: ShipSocket<TcpStream>,
    connection: Connection,
    inbox: VecDeque<Vec<u8>>,
    completed: bool,
    closed: Option<CloseCause>,
    socket_open: bool,
}

/// Dials `target` with `tls` and runs the SHIP handshake (client role, trusting the target) until
/// Completed. Returns the session and how long it took from the TCP connect.
pub(crate) async fn connect(
    tls: &ShipTls,
    ship_id: ShipId,
    target: &Target,
) -> Result<(Session, Duration), Failure> {
    let started = Instant::now();
    let work = async {
        let socket = transport::dial(tls, target.addr, target.ski, &target.path, &target.ws)
            .await
            .map_err(|error| {
                tracing::debug!(%error, "dial failed");
                Failure::of_transport(&error)
            })?;
        let connection = Connection::new(
            ConnectionParams {
                role: Role::Client,
                local_ship_id: ship_id,
                trust: Trust::Trusted,
                known_peer_ship_id: None,
                config: target.protocol.clone(),
            },
            Instant::now(),
        );
        let mut session = Session {
            socket,
            connection,
            inbox: VecDeque::new(),
            completed: false,
            closed: None,
            socket_open: true,
        };
        while !session.completed {
            session.step(None).await?;
        }
        Ok(session)
    };
    let session = tokio::time::timeout(target.handshake_timeout, work)
        .await
        .map_err(|_| Failure::Timeout)??;
    Ok((session, started.elapsed()))
}

impl Session {
    /// Sends what the engine queued and collects its events. Fails once the connection ended.
    async fn flush(&mut self) -> Result<(), Failure> {
        while let Some(transmit) = self.connection.poll_transmit() {
            match transmit {
                Transmit::Message(bytes) => {
                    if self.socket_open && self.socket.send(bytes).await.is_err() {
                        self.socket_open = false;
                        self.connection.handle_transport_closed(Instant::now());
                    }
                }
                Transmit::Close { code, reason } => {
                    if self.socket_open {
                        let _ = self.socket.close(code, &reason).await;
                        self.socket_open = false;
                    }
                }
            }
        }
        while let Some(event) = self.connection.poll_event() {
            match event {
                Event::StateChanged {
                    state: ConnectionState::Completed,
                    ..
                } => self.completed = true,
                Event::Data(payload) => self.inbox.push_back(payload),
                Event::Closed(cause) => self.closed = Some(cause),
                _ => {}
            }
        }
        match &self.closed {
            Some(cause) => Err(Failure::of_close(cause)),
            None if !self.socket_open => {
                self.connection.handle_transport_closed(Instant::now());
                Err(Failure::Closed)
            }
            None => Ok(()),
        }
    }

    /// Flushes, then waits for one input (a message, the engine's timer, or `stop`) and feeds it.
    /// Returns `Ok(false)` when `stop` fired.
    async fn step(&mut self, stop: Option<&CancellationToken>) -> Result<bool, Failure> {
        self.flush().await?;
        let timeout = self.connection.poll_timeout();
        let sleep = async {
            match timeout {
                Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
                None => std::future::pending().await,
            }
        };
        let stopped = async {
            match stop {
                Some(token) => token.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = stopped => return Ok(false),
            event = self.socket.next_event() => match event {
                Ok(SocketEvent::Message(bytes)) => {
                    self.connection.handle_message(&bytes, Instant::now())
                }
                Ok(SocketEvent::Pong(_)) => {}
                Ok(SocketEvent::Closed { .. }) | Err(_) => {
                    self.socket_open = false;
                    self.connection.handle_transport_closed(Instant::now());
                }
                Ok(_) => {}
            },
            _ = sleep => self.connection.handle_timeout(Instant::now()),
        }
        self.flush().await?;
        Ok(true)
    }

    /// Sends `payload` (JSON) as a SHIP data message.
    pub(crate) async fn send_data(&mut self, payload: &[u8]) -> Result<(), Failure> {
        self.connection
            .send_data(payload, Instant::now())
            .map_err(|_| Failure::Protocol)?;
        self.flush().await
    }

    /// Waits for the next data message from the peer.
    pub(crate) async fn next_data(&mut self) -> Result<Vec<u8>, Failure> {
        loop {
            if let Some(payload) = self.inbox.pop_front() {
                return Ok(payload);
            }
            self.step(None).await?;
        }
    }

    /// Keeps the connection in data exchange (answering pings, honouring the engine's timers)
    /// until `stop` fires. Data that arrives is dropped.
    pub(crate) async fn hold(&mut self, stop: &CancellationToken) -> Result<(), Failure> {
        while self.step(Some(stop)).await? {
            self.inbox.clear();
        }
        Ok(())
    }

    /// Closes gracefully (SHIP connectionClose, then the WebSocket close), within `limit`.
    pub(crate) async fn close(mut self, limit: Duration) {
        self.connection
            .close(CloseReason::Unspecific, Instant::now());
        let _ = tokio::time::timeout(limit, async {
            while !self.connection.is_closed() {
                if self.step(None).await.is_err() {
                    break;
                }
            }
        })
        .await;
    }
}
