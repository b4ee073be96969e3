//! One connection to a peer: the task that pumps bytes between a [`ShipSocket`] and the sans-IO
//! [`protocol::Connection`], keeps the connection alive with WebSocket pings, and reports to its
//! supervisor.
//!
//! The task owns the socket and the protocol state; its supervisor talks to it only through a
//! command channel and hears from it only through the event channel. When the task ends it
//! sends exactly one [`LinkEvent::Ended`] and drops its admission permits, so a connection slot
//! is free again the moment the connection is gone.
//!
//! Backpressure (docs/architecture.md): every data payload read is charged to the peer's inbound
//! budget and the charge travels with it to the application. While the budget is used up the
//! link does not read its socket (TCP flow control then holds the sender back); it keeps
//! writing, keeps its timers and obeys commands. Its keepalive is not held against the peer for
//! the time it did not read; but a peer it could not read for `stall_limit` while a ping of ours
//! is unanswered is closed as [`LinkEnd::Backpressure`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio::time::sleep_until;
use tokio_util::sync::CancellationToken;

use super::inbound::{Charge, PeerBudget};
use crate::ShipId;
use crate::protocol::{
    self, CloseCause, CloseReason, ConnectionState, DetailedState, Event, Pin, Transmit,
};
use crate::transport::{ShipSocket, SocketEvent};

/// Identifies one link within its supervisor.
pub(crate) type LinkId = u64;

/// What a supervisor tells a link.
#[derive(Debug)]
pub(crate) enum LinkCommand {
    /// The user trusts the peer (hello pending → ready).
    Approve,
    /// The user or the application refuses the peer (hello aborted).
    Deny,
    /// Close gracefully (connectionClose announce, wait for confirm up to maxTime).
    Close(CloseReason),
    /// Send a WebSocket ping now and report the pong (double-connection liveness check).
    Ping,
    /// The PIN to send to the peer (§13.4.4.3).
    EnterPin(Pin),
    /// No PIN for the peer: a peer that requires one is refused.
    RefusePin,
}

/// What a link tells its supervisor.
#[derive(Debug)]
pub(crate) enum LinkEvent {
    State(ConnectionState, DetailedState),
    PeerShipId(ShipId),
    /// A data payload and its charge against the peer's inbound budget.
    Data(Vec<u8>, Charge),
    /// A pong arrived (after [`LinkCommand::Ping`] or a keepalive ping).
    Pong,
    /// The peer requires a PIN we do not have (or rejected ours).
    PinRequested {
        rejected: bool,
    },
    /// The peer accepted our PIN.
    PinAccepted,
    /// The peer sent our PIN correctly.
    PinVerified,
    /// The peer sent a wrong PIN.
    PinAttemptFailed {
        attempts: u32,
        penalty: Option<Duration>,
    },
    /// Whether the peer is restricted (our PIN is optional and it sent none yet) changed.
    Restricted(bool),
    /// The link is gone; nothing follows. Boxed to keep the event small: a supervisor's event
    /// queue allocates room for 32 events up front (docs/performance.md).
    Ended(Box<LinkEnd>),
}

/// Why a link ended.
#[derive(Debug, Clone)]
pub(crate) enum LinkEnd {
    /// The protocol engine closed, with its cause.
    Protocol(CloseCause),
    /// No pong within the keepalive timeout.
    KeepaliveTimeout,
    /// The handshake did not reach Completed within the hub's backstop deadline.
    HandshakeDeadline,
    /// The hub's shutdown deadline passed and the link was dropped without a SHIP close.
    Aborted,
    /// The peer's inbound budget stayed used up (the application did not consume its data) for
    /// the stall limit while a ping of ours was unanswered: it could not be served.
    Backpressure,
}

/// Parameters of a link's task.
pub(crate) struct LinkSetup {
    pub(crate) id: LinkId,
    pub(crate) keepalive_interval: Duration,
    pub(crate) keepalive_timeout: Duration,
    pub(crate) handshake_deadline: Instant,
    /// Fired by the hub when its shutdown deadline passed: drop the socket at once.
    pub(crate) abort: CancellationToken,
    /// The peer's inbound data budget (shared by its links).
    pub(crate) budget: Arc<PeerBudget>,
    /// The largest data message the socket accepts (what one more read may cost).
    pub(crate) max_message: usize,
    /// How long the link may leave its socket unread for backpressure while a ping is owed.
    pub(crate) stall_limit: Duration,
}

/// The channels a supervisor keeps for one link.
pub(crate) struct LinkChannels {
    pub(crate) commands: mpsc::UnboundedSender<LinkCommand>,
    pub(crate) data: mpsc::Sender<Vec<u8>>,
}

/// Runs one link until it ends. `permits` (admission permits) are dropped when it returns.
pub(crate) async fn run_link<S, P>(
    mut socket: ShipSocket<S>,
    mut connection: protocol::Connection,
    setup: LinkSetup,
    mut commands: mpsc::UnboundedReceiver<LinkCommand>,
    mut data: mpsc::Receiver<Vec<u8>>,
    events: mpsc::UnboundedSender<(LinkId, LinkEvent)>,
    permits: P,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let id = setup.id;
    let report = |event: LinkEvent| {
        let _ = events.send((id, event));
    };
    let mut cause: Option<CloseCause> = None;
    let mut end: Option<LinkEnd> = None;
    let mut socket_open = true;
    let mut transport_reported = false;
    let mut commands_open = true;
    let mut completed = false;
    let mut restricted = false;
    let mut next_ping = tokio::time::Instant::now() + setup.keepalive_interval;
    let mut pong_deadline: Option<tokio::time::Instant> = None;
    // When the last keepalive ping went out (its pong still owed).
    let mut ping_sent: Option<tokio::time::Instant> = None;
    // Since when the socket has been left unread because the peer's budget is used up.
    let mut paused_since: Option<tokio::time::Instant> = None;

    loop {
        // 1. Everything the engine wants sent, in order.
        while let Some(transmit) = connection.poll_transmit() {
            match transmit {
                Transmit::Message(bytes) if socket_open => {
                    match unstalled(&setup, socket.send(bytes)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => {
                            socket_open = false;
                            connection.handle_transport_closed(now());
                        }
                        Err(stall) => {
                            end = Some(stall);
                            break;
                        }
                    }
                }
                Transmit::Message(_) => {}
                Transmit::Close { code, reason } => {
                    if socket_open {
                        if let Err(stall) = unstalled(&setup, socket.close(code, &reason)).await {
                            end = Some(stall);
                        }
                        socket_open = false;
                    }
                }
            }
        }
        // 2. Everything that happened, to the supervisor.
        while let Some(event) = connection.poll_event() {
            match event {
                Event::StateChanged { state, detail } => {
                    if state == ConnectionState::Completed {
                        completed = true;
                    }
                    report(LinkEvent::State(state, detail));
                }
                Event::PeerShipId(ship_id) => report(LinkEvent::PeerShipId(ship_id)),
                Event::Data(payload) => {
                    // Data from the peer proves data exchange is open (before Completed while
                    // our access-methods request is unanswered): we may send too.
                    completed = true;
                    let charge = setup.budget.charge(payload.len());
                    report(LinkEvent::Data(payload, charge));
                }
                Event::PinRequested { rejected } => {
                    report(LinkEvent::PinRequested { rejected });
                }
                Event::PinAccepted => report(LinkEvent::PinAccepted),
                Event::PinVerified => report(LinkEvent::PinVerified),
                Event::PinAttemptFailed { attempts, penalty } => {
                    report(LinkEvent::PinAttemptFailed { attempts, penalty });
                }
                Event::Closed(c) => cause = Some(c),
            }
        }
        if connection.peer_restricted() != restricted {
            restricted = !restricted;
            report(LinkEvent::Restricted(restricted));
        }
        if connection.is_closed() || end.is_some() {
            break;
        }
        if !socket_open {
            // The transport is gone but the engine has not concluded yet: tell it, once.
            if transport_reported {
                break;
            }
            transport_reported = true;
            connection.handle_transport_closed(now());
            continue;
        }

        let timeout = connection
            .poll_timeout()
            .map(tokio::time::Instant::from_std);
        let deadline = tokio::time::Instant::from_std(setup.handshake_deadline);
        // Backpressure: read only while the peer's budget has room (handshake messages are never
        // held back). Registering for the release signal before the second look means a release
        // in between cannot be missed.
        let released = setup.budget.total().released().notified();
        tokio::pin!(released);
        let mut readable = !completed || setup.budget.may_read(setup.max_message);
        if !readable {
            released.as_mut().enable();
            readable = setup.budget.may_read(setup.max_message);
        }
        match (readable, paused_since) {
            (false, None) => paused_since = Some(tokio::time::Instant::now()),
            (true, Some(since)) => {
                // The pong may have waited behind unread data: the time we did not read is
                // not the peer's.
                paused_since = None;
                if let Some(deadline) = pong_deadline.as_mut() {
                    *deadline += since.elapsed();
                }
            }
            _ => {}
        }
        let stall_deadline = match (paused_since, ping_sent) {
            (Some(paused), Some(sent)) => Some(paused.max(sent) + setup.stall_limit),
            _ => None,
        };
        tokio::select! {
            biased;
            _ = setup.abort.cancelled() => {
                end = Some(LinkEnd::Aborted);
            }
            _ = &mut released, if !readable => {}
            _ = sleep_until_opt(stall_deadline) => {
                tracing::debug!(
                    queued = setup.budget.queued(),
                    "inbound budget used up for the stall limit with a ping unanswered: closing"
                );
                end = Some(LinkEnd::Backpressure);
            }
            event = socket.next_event(), if readable => match event {
                Ok(SocketEvent::Message(bytes)) => connection.handle_message(&bytes, now()),
                Ok(SocketEvent::Pong(_)) => {
                    pong_deadline = None;
                    ping_sent = None;
                    report(LinkEvent::Pong);
                }
                Ok(SocketEvent::Closed { .. }) | Err(_) => {
                    socket_open = false;
                    connection.handle_transport_closed(now());
                }
            },
            command = commands.recv(), if commands_open => match command {
                Some(LinkCommand::Approve) => connection.approve_trust(now()),
                Some(LinkCommand::Deny) => connection.deny_trust(now()),
                Some(LinkCommand::EnterPin(pin)) => connection.enter_pin(pin, now()),
                Some(LinkCommand::RefusePin) => connection.refuse_pin(now()),
                Some(LinkCommand::Close(reason)) => {
                    // Data the application queued before the close goes out first (§13.4.7).
                    if completed {
                        while let Ok(payload) = data.try_recv() {
                            if let Err(error) = connection.send_data(&payload, now()) {
                                tracing::debug!(%error, "dropping outgoing data at close");
                            }
                        }
                    }
                    connection.close(reason, now());
                }
                Some(LinkCommand::Ping) => {
                    if matches!(unstalled(&setup, socket.ping(Vec::new())).await, Ok(Ok(())))
                        && pong_deadline.is_none()
                    {
                        ping_sent = Some(tokio::time::Instant::now());
                        pong_deadline =
                            Some(tokio::time::Instant::now() + setup.keepalive_timeout);
                    }
                }
                None => {
                    // The supervisor is gone: close politely.
                    commands_open = false;
                    connection.close(CloseReason::Unspecific, now());
                }
            },
            payload = data.recv(), if completed => {
                if let Some(payload) = payload
                    && let Err(error) = connection.send_data(&payload, now())
                {
                    tracing::debug!(%error, "dropping outgoing data");
                }
            }
            _ = sleep_until_opt(timeout) => connection.handle_timeout(now()),
            _ = sleep_until(deadline), if !completed => {
                end = Some(LinkEnd::HandshakeDeadline);
            }
            _ = sleep_until(next_ping), if completed && pong_deadline.is_none() => {
                next_ping = tokio::time::Instant::now() + setup.keepalive_interval;
                match unstalled(&setup, socket.ping(Vec::new())).await {
                    Ok(Ok(())) => {
                        ping_sent = Some(tokio::time::Instant::now());
                        pong_deadline =
                            Some(tokio::time::Instant::now() + setup.keepalive_timeout);
                    }
                    Ok(Err(_)) => {}
                    Err(stall) => end = Some(stall),
                }
            }
            _ = sleep_until_opt(pong_deadline), if paused_since.is_none() => {
                end = Some(LinkEnd::KeepaliveTimeout);
            }
        }
    }

    if matches!(end, Some(LinkEnd::HandshakeDeadline)) && socket_open {
        let _ = unstalled(&setup, socket.close(4001, "handshake deadline")).await;
    }
    drop(socket);
    drop(permits);
    let end =
        end.unwrap_or_else(|| LinkEnd::Protocol(cause.unwrap_or(CloseCause::TransportClosed)));
    report(LinkEvent::Ended(Box::new(end)));
}

/// Runs one write to the socket unless the hub aborts first or the peer takes no data for
/// `keepalive_timeout` (a peer that stops reading is as dead as one that stops answering pings:
/// without this a full socket buffer would hold the link, its permit and the shutdown forever).
async fn unstalled<F: std::future::Future>(
    setup: &LinkSetup,
    write: F,
) -> Result<F::Output, LinkEnd> {
    tokio::select! {
        biased;
        _ = setup.abort.cancelled() => Err(LinkEnd::Aborted),
        _ = tokio::time::sleep(setup.keepalive_timeout) => Err(LinkEnd::KeepaliveTimeout),
        output = write => Ok(output),
    }
}

/// The current instant, in the clock tokio uses (so paused test time drives the engine too).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

pub(crate) async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Wraps an established socket as a link runner for a supervisor. `permit` (the connection's
/// admission permit) lives as long as the link task.
pub(crate) fn runner<S, P>(socket: ShipSocket<S>, permit: P) -> super::supervisor::LinkRunner
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    P: Send + 'static,
{
    Box::new(move |start| {
        Box::pin(run_link(
            socket,
            start.connection,
            start.setup,
            start.commands,
            start.data,
            start.events,
            permit,
        ))
    })
}
