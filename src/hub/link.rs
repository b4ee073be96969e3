//! One link: the task that runs one connection to a peer once its supervisor took it over. It
//! pumps bytes between the connection's [`ShipSocket`] and the sans-IO [`protocol::Connection`],
//! keeps the connection alive with WebSocket pings, and reports to its supervisor.
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

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::clock::{now, sleep_until_opt};
use super::handover::{LinkCommand, LinkEnd, LinkEvent, LinkId, LinkSetup, LinkStart, Permits};
use super::net::BoxIo;
use crate::protocol::{self, CloseCause, CloseReason, ConnectionState, Event, Transmit};
use crate::transport::{ShipSocket, SocketEvent};

/// Runs one link until it ends. `permits` (the connection's admission permits) are dropped when
/// it returns.
pub(crate) async fn run(socket: ShipSocket<BoxIo>, permits: Permits, start: LinkStart) {
    let mut link = LinkTask::new(socket, start);
    loop {
        link.send_transmits().await;
        link.report_events();
        if link.concluded() {
            break;
        }
        if !link.socket_open {
            // The transport is gone but the engine has not concluded yet: tell it, once.
            if link.transport_reported {
                break;
            }
            link.transport_reported = true;
            link.engine.handle_transport_closed(now());
            continue;
        }
        link.wait_and_handle().await;
    }
    link.finish(permits).await;
}

/// A link's task: its connection, its channels and where its keepalive and backpressure stand.
struct LinkTask {
    socket: ShipSocket<BoxIo>,
    /// The sans-IO protocol engine.
    engine: protocol::Connection,
    setup: LinkSetup,
    commands: mpsc::UnboundedReceiver<LinkCommand>,
    data: mpsc::Receiver<Vec<u8>>,
    events: mpsc::UnboundedSender<(LinkId, LinkEvent)>,
    /// How the engine said the connection closed.
    cause: Option<CloseCause>,
    /// Why the task ends, when the hub (not the engine) decided it.
    end: Option<LinkEnd>,
    socket_open: bool,
    /// The engine was told the transport closed.
    transport_reported: bool,
    commands_open: bool,
    /// Data exchange is open: data flows and keepalive pings run.
    completed: bool,
    /// The peer's restriction last reported (our PIN optional, not sent yet).
    restricted: bool,
    next_ping: Instant,
    pong_deadline: Option<Instant>,
    /// When the last keepalive ping went out (its pong still owed).
    ping_sent: Option<Instant>,
    /// Since when the socket has been left unread because the peer's budget is used up.
    paused_since: Option<Instant>,
}

impl LinkTask {
    fn new(socket: ShipSocket<BoxIo>, start: LinkStart) -> Self {
        let LinkStart {
            engine,
            setup,
            commands,
            data,
            events,
        } = start;
        let next_ping = Instant::now() + setup.keepalive_interval;
        LinkTask {
            socket,
            engine,
            setup,
            commands,
            data,
            events,
            cause: None,
            end: None,
            socket_open: true,
            transport_reported: false,
            commands_open: true,
            completed: false,
            restricted: false,
            next_ping,
            pong_deadline: None,
            ping_sent: None,
            paused_since: None,
        }
    }

    /// Tells the supervisor.
    fn report(&self, event: LinkEvent) {
        let _ = self.events.send((self.setup.id, event));
    }

    /// Step 1: everything the engine wants sent, in order. A write the peer does not take
    /// within the keepalive timeout ends the link.
    async fn send_transmits(&mut self) {
        while let Some(transmit) = self.engine.poll_transmit() {
            match transmit {
                Transmit::Message(bytes) if self.socket_open => {
                    match unstalled(&self.setup, self.socket.send(bytes)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(_)) => {
                            self.socket_open = false;
                            self.engine.handle_transport_closed(now());
                        }
                        Err(stall) => {
                            self.end = Some(stall);
                            break;
                        }
                    }
                }
                Transmit::Message(_) => {}
                Transmit::Close { code, reason } => {
                    if self.socket_open {
                        let close = self.socket.close(code, &reason);
                        if let Err(stall) = unstalled(&self.setup, close).await {
                            self.end = Some(stall);
                        }
                        self.socket_open = false;
                    }
                }
            }
        }
    }

    /// Step 2: everything that happened, to the supervisor (and whether the peer's restriction
    /// changed).
    fn report_events(&mut self) {
        while let Some(event) = self.engine.poll_event() {
            match event {
                Event::StateChanged { state, detail } => {
                    if state == ConnectionState::Completed {
                        self.completed = true;
                    }
                    self.report(LinkEvent::State(state, detail));
                }
                Event::PeerShipId(ship_id) => self.report(LinkEvent::PeerShipId(ship_id)),
                Event::Data(payload) => {
                    // Data from the peer proves data exchange is open (before Completed while
                    // our access-methods request is unanswered): we may send too.
                    self.completed = true;
                    let charge = self.setup.budget.charge(payload.len());
                    self.report(LinkEvent::Data(payload, charge));
                }
                Event::PinRequested { rejected } => {
                    self.report(LinkEvent::PinRequested { rejected });
                }
                Event::PinAccepted => self.report(LinkEvent::PinAccepted),
                Event::PinVerified => self.report(LinkEvent::PinVerified),
                Event::PinAttemptFailed { attempts, penalty } => {
                    self.report(LinkEvent::PinAttemptFailed { attempts, penalty });
                }
                Event::Closed(c) => self.cause = Some(c),
            }
        }
        if self.engine.peer_restricted() != self.restricted {
            self.restricted = !self.restricted;
            self.report(LinkEvent::Restricted(self.restricted));
        }
    }

    /// The engine closed, or the hub decided the link ends.
    fn concluded(&self) -> bool {
        self.engine.is_closed() || self.end.is_some()
    }

    /// Backpressure: whether the socket may be read now (handshake messages are never held
    /// back), keeping `paused_since` and the pong deadline in step. Registering `released` for
    /// the release signal before the second look means a release in between cannot be missed.
    fn readable(
        &mut self,
        released: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    ) -> bool {
        let budget = &self.setup.budget;
        let mut readable = !self.completed || budget.may_read(self.setup.max_message);
        if !readable {
            released.enable();
            readable = budget.may_read(self.setup.max_message);
        }
        match (readable, self.paused_since) {
            (false, None) => self.paused_since = Some(Instant::now()),
            (true, Some(since)) => {
                // The pong may have waited behind unread data: the time we did not read is
                // not the peer's.
                self.paused_since = None;
                if let Some(deadline) = self.pong_deadline.as_mut() {
                    *deadline += since.elapsed();
                }
            }
            _ => {}
        }
        readable
    }

    /// When the link gives up on a peer it cannot read (budget used up) while a ping is owed.
    fn stall_deadline(&self) -> Option<Instant> {
        match (self.paused_since, self.ping_sent) {
            (Some(paused), Some(sent)) => Some(paused.max(sent) + self.setup.stall_limit),
            _ => None,
        }
    }

    /// Step 3: waits for the next thing to happen — the socket, a command, outgoing data, a
    /// timer, the abort — and handles it.
    async fn wait_and_handle(&mut self) {
        let timeout = self.engine.poll_timeout().map(Instant::from_std);
        let deadline = Instant::from_std(self.setup.handshake_deadline);
        let budget = self.setup.budget.clone();
        let released = budget.total().released().notified();
        tokio::pin!(released);
        let readable = self.readable(released.as_mut());
        let stall_deadline = self.stall_deadline();
        let abort = self.setup.abort.clone();
        tokio::select! {
            biased;
            _ = abort.cancelled() => {
                self.end = Some(LinkEnd::Aborted);
            }
            _ = &mut released, if !readable => {}
            _ = sleep_until_opt(stall_deadline) => {
                tracing::debug!(
                    queued = self.setup.budget.queued(),
                    "inbound budget used up for the stall limit with a ping unanswered: closing"
                );
                self.end = Some(LinkEnd::Backpressure);
            }
            event = self.socket.next_event(), if readable => match event {
                Ok(SocketEvent::Message(bytes)) => self.engine.handle_message(&bytes, now()),
                Ok(SocketEvent::Pong(_)) => {
                    self.pong_deadline = None;
                    self.ping_sent = None;
                    self.report(LinkEvent::Pong);
                }
                Ok(SocketEvent::Closed { .. }) | Err(_) => {
                    self.socket_open = false;
                    self.engine.handle_transport_closed(now());
                }
            },
            command = self.commands.recv(), if self.commands_open => self.obey(command).await,
            payload = self.data.recv(), if self.completed => {
                if let Some(payload) = payload
                    && let Err(error) = self.engine.send_data(&payload, now())
                {
                    tracing::debug!(%error, "dropping outgoing data");
                }
            }
            _ = sleep_until_opt(timeout) => self.engine.handle_timeout(now()),
            _ = sleep_until(deadline), if !self.completed => {
                self.end = Some(LinkEnd::HandshakeDeadline);
            }
            _ = sleep_until(self.next_ping), if self.completed && self.pong_deadline.is_none() => {
                self.keepalive_ping().await;
            }
            _ = sleep_until_opt(self.pong_deadline), if self.paused_since.is_none() => {
                self.end = Some(LinkEnd::KeepaliveTimeout);
            }
        }
    }

    /// A command from the supervisor (`None`: the supervisor is gone, so close politely).
    async fn obey(&mut self, command: Option<LinkCommand>) {
        match command {
            Some(LinkCommand::Approve) => self.engine.approve_trust(now()),
            Some(LinkCommand::Deny) => self.engine.deny_trust(now()),
            Some(LinkCommand::EnterPin(pin)) => self.engine.enter_pin(pin, now()),
            Some(LinkCommand::RefusePin) => self.engine.refuse_pin(now()),
            Some(LinkCommand::HoldPin(until)) => self.engine.hold_pin_input(until, now()),
            Some(LinkCommand::Close(reason)) => {
                // Data the application queued before the close goes out first (§13.4.7).
                if self.completed {
                    while let Ok(payload) = self.data.try_recv() {
                        if let Err(error) = self.engine.send_data(&payload, now()) {
                            tracing::debug!(%error, "dropping outgoing data at close");
                        }
                    }
                }
                self.engine.close(reason, now());
            }
            Some(LinkCommand::Ping) => {
                let ping = self.socket.ping(Vec::new());
                if matches!(unstalled(&self.setup, ping).await, Ok(Ok(())))
                    && self.pong_deadline.is_none()
                {
                    self.ping_sent = Some(Instant::now());
                    self.pong_deadline = Some(Instant::now() + self.setup.keepalive_timeout);
                }
            }
            None => {
                self.commands_open = false;
                self.engine.close(CloseReason::Unspecific, now());
            }
        }
    }

    /// The keepalive interval passed in data exchange: ping, and expect the pong within the
    /// keepalive timeout.
    async fn keepalive_ping(&mut self) {
        self.next_ping = Instant::now() + self.setup.keepalive_interval;
        match unstalled(&self.setup, self.socket.ping(Vec::new())).await {
            Ok(Ok(())) => {
                self.ping_sent = Some(Instant::now());
                self.pong_deadline = Some(Instant::now() + self.setup.keepalive_timeout);
            }
            Ok(Err(_)) => {}
            Err(stall) => self.end = Some(stall),
        }
    }

    /// Step 4: closes what is left of the socket, frees the admission permits and reports the
    /// link's end, the last event it sends.
    async fn finish(mut self, permits: Permits) {
        if matches!(self.end, Some(LinkEnd::HandshakeDeadline)) && self.socket_open {
            let close = self.socket.close(4001, "handshake deadline");
            let _ = unstalled(&self.setup, close).await;
        }
        let end = self.end.take().unwrap_or_else(|| {
            LinkEnd::Protocol(self.cause.take().unwrap_or(CloseCause::TransportClosed))
        });
        let LinkTask {
            socket,
            events,
            setup,
            ..
        } = self;
        drop(socket);
        drop(permits);
        let _ = events.send((setup.id, LinkEvent::Ended(Box::new(end))));
    }
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
