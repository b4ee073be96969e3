//! One link: the task that runs one connection to a peer once its supervisor took it over. It
//! pumps bytes between the connection's [`ShipSocket`] and the sans-IO [`protocol::Connection`],
//! keeps the connection alive with WebSocket pings, and reports to its supervisor.
//!
//! The task owns the socket and the protocol state; its supervisor talks to it only through its
//! inbox (commands, and the application's data) and hears from it only through the event
//! channel. When the task ends it sends exactly one [`LinkEvent::Ended`] and drops its admission permits, so a connection slot
//! is free again the moment the connection is gone.
//!
//! Full duplex: a write the peer does not take yet is one branch of the task's `select!`
//! ([`SocketWriter::poll_send`]), so while it waits the link goes on reading, obeying commands
//! and keeping its timers. Outgoing bytes stay bounded: the link takes the next frame (from the
//! engine, or the next payload from the application's queue) only once the last is out, and it
//! stops reading while a second frame waits behind the one in flight (a peer that sends
//! requests but takes no answers cannot make them pile up). A write that takes no bytes for
//! `keepalive_timeout` ends the link like a missing pong.
//!
//! Backpressure (docs/architecture.md): every data payload read is charged to the peer's inbound
//! budget and the charge travels with it to the application. While the budget is used up the
//! link does not read its socket (TCP flow control then holds the sender back); it keeps
//! writing, keeps its timers and obeys commands. Its keepalive is not held against the peer for
//! the time it did not read; but a peer it could not read for `stall_limit` while a ping of ours
//! is unanswered is closed as [`LinkEnd::Backpressure`].

use std::future::poll_fn;
use std::task::{Context, Poll, Waker};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::clock::{now, sleep_until_opt};
use super::handover::{LinkCommand, LinkEnd, LinkEvent, LinkId, LinkSetup, LinkStart, Permits};
use super::inbox::InboxReceiver;
use crate::hub::net::BoxIo;
use crate::protocol::{self, CloseCause, CloseReason, ConnectionState, Event, Transmit};
use crate::transport::{
    Outgoing, ShipSocket, SocketEvent, SocketReader, SocketWriter, TransportError,
};

/// Runs one link until it ends. `permits` (the connection's admission permits) are dropped when
/// it returns.
///
/// Not an `async fn`: the task's future holds the [`LinkTask`] alone, not also the parts it was
/// built from (an `async fn` keeps its arguments for the whole run), and [`LinkTask::finish`]
/// works on it in place. A held connection's task is the largest allocation of a link
/// (docs/performance.md, "Memory per held connection").
pub(crate) fn run(
    socket: ShipSocket<BoxIo>,
    permits: Permits,
    start: LinkStart,
) -> impl Future<Output = ()> + Send + 'static {
    let mut link = LinkTask::new(socket, start);
    async move {
        loop {
            link.pump_writes().await;
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
        link.finish().await;
        link.close(permits);
    }
}

/// What a frame in flight is, for what its completion means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    /// A SHIP message from the engine.
    Message,
    /// A WebSocket ping of ours (keepalive, or the supervisor's liveness check).
    Ping,
    /// The WebSocket close frame, the engine's last transmit.
    Close,
}

/// The frame the socket is sending, and since when (the write bound counts from then).
struct Write {
    frame: Outgoing,
    sending: Sending,
    since: Instant,
}

/// A link's task: its connection, its channels and where its keepalive and backpressure stand.
struct LinkTask {
    reader: SocketReader<BoxIo>,
    writer: SocketWriter<BoxIo>,
    /// The sans-IO protocol engine.
    engine: protocol::Connection,
    setup: LinkSetup,
    /// Commands from the supervisor and the application's data.
    inbox: InboxReceiver<LinkCommand>,
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
    /// The frame in flight: handed to the socket, not yet all out.
    writing: Option<Write>,
    /// The engine's next transmit, taken out while a frame is in flight so the link knows more
    /// waits: until the frame in flight is out, nothing more is read (what the peer sends next
    /// could only add to it).
    queued: Option<Transmit>,
    /// A ping is due and waits for the frame in flight.
    ping_wanted: bool,
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
            inbox,
            events,
        } = start;
        let next_ping = Instant::now() + setup.keepalive_interval;
        let (reader, writer) = socket.split();
        LinkTask {
            reader,
            writer,
            engine,
            setup,
            inbox,
            events,
            cause: None,
            end: None,
            socket_open: true,
            transport_reported: false,
            commands_open: true,
            completed: false,
            restricted: false,
            writing: None,
            queued: None,
            ping_wanted: false,
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

    /// Step 1: sends what can be sent without waiting, in order: the frame in flight, then the
    /// next (a due ping first, then the engine's transmits), until one has to wait for the peer.
    async fn pump_writes(&mut self) {
        poll_fn(|cx| {
            self.pump(cx);
            Poll::Ready(())
        })
        .await;
    }

    fn pump(&mut self, cx: &mut Context<'_>) {
        loop {
            if self.feed_if_more_follow(cx) {
                continue;
            }
            if let Some(write) = self.writing.as_mut() {
                match self.writer.poll_send(cx, &mut write.frame) {
                    Poll::Ready(result) => self.sent(result.is_ok()),
                    Poll::Pending => {
                        if self.queued.is_none() {
                            self.queued = self.engine.poll_transmit();
                        }
                        return;
                    }
                }
            }
            if !self.socket_open {
                // Nothing can go out any more (the engine learns the transport closed).
                self.ping_wanted = false;
                self.queued = None;
                while self.engine.poll_transmit().is_some() {}
                return;
            }
            let Some(write) = self.next_write(true) else {
                return;
            };
            self.writing = Some(write);
        }
    }

    /// When the frame in flight is a SHIP message that has not gone out yet and the engine has
    /// another message ready, hands the frame to the WebSocket without a flush and returns true:
    /// the flush of the last message of the batch writes them all at once (one TLS record, one
    /// system call) instead of one write per message. A ping or close frame is sent alone.
    fn feed_if_more_follow(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(write) = self.writing.as_mut() else {
            return false;
        };
        if write.sending != Sending::Message || !write.frame.is_unsent() || self.ping_wanted {
            return false;
        }
        if self.queued.is_none() {
            self.queued = self.engine.poll_transmit();
        }
        if !matches!(self.queued, Some(Transmit::Message(_))) {
            return false;
        }
        match self.writer.poll_feed(cx, &mut write.frame) {
            Poll::Ready(result) => {
                self.sent(result.is_ok());
                true
            }
            Poll::Pending => false,
        }
    }

    /// The next frame to send: a due ping (if `ping`), else the engine's next transmit.
    fn next_write(&mut self, ping: bool) -> Option<Write> {
        let (frame, sending) = if ping && self.ping_wanted {
            self.ping_wanted = false;
            (Outgoing::ping(Vec::new()), Sending::Ping)
        } else {
            match self.queued.take().or_else(|| self.engine.poll_transmit())? {
                Transmit::Message(bytes) => (Outgoing::binary(bytes), Sending::Message),
                Transmit::Close { code, reason } => {
                    (Outgoing::close(code, &reason), Sending::Close)
                }
            }
        };
        Some(Write {
            frame,
            sending,
            since: Instant::now(),
        })
    }

    /// The frame in flight is out (`ok`) or the socket failed.
    fn sent(&mut self, ok: bool) {
        let Some(write) = self.writing.take() else {
            return;
        };
        match (write.sending, ok) {
            (Sending::Close, _) => self.socket_open = false,
            (_, false) => {
                self.socket_open = false;
                self.engine.handle_transport_closed(now());
            }
            (Sending::Ping, true) => {
                if self.pong_deadline.is_none() {
                    self.ping_sent = Some(Instant::now());
                    self.pong_deadline = Some(Instant::now() + self.setup.keepalive_timeout);
                }
            }
            (Sending::Message, true) => {}
        }
    }

    /// A ping is due or on its way out.
    fn ping_pending(&self) -> bool {
        self.ping_wanted
            || self
                .writing
                .as_ref()
                .is_some_and(|write| write.sending == Sending::Ping)
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

    /// Backpressure: whether the peer's budget lets the socket be read now (handshake messages
    /// are never held back), keeping `paused_since` and the pong deadline in step. Registering
    /// `released` for the release signal before the second look means a release in between
    /// cannot be missed.
    fn budget_readable(
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

    /// When the link gives up on its peer, and why: a peer it cannot read (budget used up)
    /// while a ping is owed, or a write that took no bytes for the keepalive timeout, whichever
    /// comes first.
    fn give_up_at(&self) -> Option<(Instant, LinkEnd)> {
        let stall = match (self.paused_since, self.ping_sent) {
            (Some(paused), Some(sent)) => Some((
                paused.max(sent) + self.setup.stall_limit,
                LinkEnd::Backpressure,
            )),
            _ => None,
        };
        let write = self.writing.as_ref().map(|write| {
            (
                write.since + self.setup.keepalive_timeout,
                LinkEnd::KeepaliveTimeout,
            )
        });
        match (stall, write) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    /// Step 3: waits for the next thing to happen — the frame in flight going out, the socket,
    /// a command, outgoing data, a timer, the abort — and handles it.
    async fn wait_and_handle(&mut self) {
        let budget = self.setup.budget.clone();
        let released = budget.total().released().notified();
        tokio::pin!(released);
        let budget_readable = self.budget_readable(released.as_mut());
        // Reading goes on while a frame is in flight, but not while another waits behind it.
        let readable = budget_readable && self.queued.is_none();
        let give_up = self.give_up_at();
        let writing = self.writing.is_some();
        let idle = !writing && self.completed;
        let may_ping = self.completed && self.pong_deadline.is_none() && !self.ping_pending();
        let abort = self.setup.abort.clone();
        let timers = Timers([
            self.engine.poll_timeout().map(Instant::from_std),
            (!self.completed).then(|| Instant::from_std(self.setup.handshake_deadline)),
            may_ping.then_some(self.next_ping),
            self.pong_deadline.filter(|_| self.paused_since.is_none()),
        ]);
        let (writer, write) = (&self.writer, &mut self.writing);
        tokio::select! {
            biased;
            _ = abort.cancelled() => {
                self.end = Some(LinkEnd::Aborted);
            }
            _ = &mut released, if !budget_readable => {}
            result = poll_fn(|cx| match write.as_mut() {
                Some(write) => writer.poll_send(cx, &mut write.frame),
                None => Poll::Pending,
            }), if writing => self.sent(result.is_ok()),
            _ = sleep_until_opt(give_up.as_ref().map(|(at, _)| *at)) => {
                if let Some((_, end)) = give_up {
                    if matches!(end, LinkEnd::Backpressure) {
                        tracing::debug!(
                            queued = self.setup.budget.queued(),
                            "inbound budget used up for the stall limit with a ping unanswered: \
                             closing"
                        );
                    } else {
                        tracing::debug!("the peer took no bytes for the keepalive timeout");
                    }
                    self.end = Some(end);
                }
            }
            event = self.reader.next_event(), if readable => {
                self.on_socket_event(event);
                self.read_ahead();
            }
            command = poll_fn(|cx| self.inbox.poll_command(cx)), if self.commands_open => {
                self.obey(command)
            }
            // The next payload only once the last frame is out: the application's queue
            // (`max_queued_data`) is what holds outgoing data back.
            payload = poll_fn(|cx| self.inbox.poll_data(cx)), if idle => {
                if let Some(payload) = payload
                    && let Err(error) = self.engine.send_data(&payload, now())
                {
                    tracing::debug!(%error, "dropping outgoing data");
                }
            }
            _ = sleep_until_opt(timers.next()) => self.timer_due(timers),
        }
    }

    /// What the socket delivered.
    fn on_socket_event(&mut self, event: Result<SocketEvent, TransportError>) {
        match event {
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
        }
    }

    /// Takes in the messages that arrived with the one just read, up to [`READ_AHEAD`], as
    /// long as they are already here (decrypted or in the socket's buffer, no waiting) and the
    /// link may read: the engine answers them all before the link writes, so answers to
    /// messages that came together leave together (one write instead of one per message).
    fn read_ahead(&mut self) {
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..READ_AHEAD {
            // What the last message did (data charged to the budget, data exchange open) counts
            // for whether the next may be read.
            self.report_events();
            let budget = &self.setup.budget;
            let may_read = self.socket_open
                && !self.concluded()
                && self.queued.is_none()
                && self.end.is_none()
                && (!self.completed || budget.may_read(self.setup.max_message));
            if !may_read {
                return;
            }
            // A pending poll leaves the noop waker registered with the socket; the link's next
            // wait polls the socket again with its own.
            let next = std::pin::pin!(self.reader.next_event()).poll(&mut cx);
            match next {
                Poll::Ready(event) => self.on_socket_event(event),
                Poll::Pending => return,
            }
        }
    }

    /// One of the timers of [`Timers`] is due: handles the first due in their order.
    fn timer_due(&mut self, timers: Timers) {
        match timers.first_due(Instant::now()) {
            Some(Timer::Engine) => self.engine.handle_timeout(now()),
            Some(Timer::HandshakeDeadline) => self.end = Some(LinkEnd::HandshakeDeadline),
            Some(Timer::Ping) => {
                // Sent once the frame in flight is out; the pong is owed from then.
                self.next_ping = Instant::now() + self.setup.keepalive_interval;
                self.ping_wanted = true;
            }
            Some(Timer::Pong) => self.end = Some(LinkEnd::KeepaliveTimeout),
            None => {}
        }
    }

    /// A command from the supervisor (`None`: the supervisor is gone, so close politely).
    fn obey(&mut self, command: Option<LinkCommand>) {
        match command {
            Some(LinkCommand::Approve) => self.engine.approve_trust(now()),
            Some(LinkCommand::Deny) => self.engine.deny_trust(now()),
            Some(LinkCommand::EnterPin(pin)) => self.engine.enter_pin(pin, now()),
            Some(LinkCommand::RefusePin) => self.engine.refuse_pin(now()),
            Some(LinkCommand::HoldPin(until)) => self.engine.hold_pin_input(until, now()),
            Some(LinkCommand::Close(reason)) => {
                // Data the application queued before the close goes out first (§13.4.7).
                if self.completed {
                    while let Some(payload) = self.inbox.try_data() {
                        if let Err(error) = self.engine.send_data(&payload, now()) {
                            tracing::debug!(%error, "dropping outgoing data at close");
                        }
                    }
                }
                self.engine.close(reason, now());
            }
            Some(LinkCommand::Ping) => {
                if !self.ping_pending() {
                    self.ping_wanted = true;
                }
            }
            None => {
                self.commands_open = false;
                self.engine.close(CloseReason::Unspecific, now());
            }
        }
    }

    /// Sends the frame in flight and the engine's last transmits (its close frame), each bounded
    /// like any write: the engine concluded, so nothing is read any more.
    async fn drain_writes(&mut self) {
        loop {
            if self.writing.is_none() {
                self.writing = self.next_write(false);
            }
            let Some(write) = self.writing.as_mut() else {
                return;
            };
            let writer = &self.writer;
            let send = poll_fn(|cx| writer.poll_send(cx, &mut write.frame));
            match unstalled(&self.setup, send).await {
                Ok(result) => self.sent(result.is_ok()),
                Err(stall) => {
                    self.end = Some(stall);
                    return;
                }
            }
            if !self.socket_open {
                return;
            }
        }
    }

    /// Step 4: sends the engine's last frames and closes what is left of the socket.
    async fn finish(&mut self) {
        if self.end.is_none() && self.socket_open {
            self.drain_writes().await;
        }
        if matches!(self.end, Some(LinkEnd::HandshakeDeadline)) && self.socket_open {
            let close = self.writer.close(4001, "handshake deadline");
            let _ = unstalled(&self.setup, close).await;
        }
    }

    /// Step 5: drops the socket, frees the admission permits and reports the link's end, the
    /// last event it sends.
    fn close(self, permits: Permits) {
        let LinkTask {
            reader,
            writer,
            events,
            setup,
            mut end,
            mut cause,
            ..
        } = self;
        let end = end.take().unwrap_or_else(|| {
            LinkEnd::Protocol(cause.take().unwrap_or(CloseCause::TransportClosed))
        });
        drop((reader, writer));
        drop(permits);
        let _ = events.send((setup.id, LinkEvent::Ended(Box::new(end))));
    }
}

/// How many messages that arrived together with one the link read it takes in before it writes
/// the answers ([`LinkTask::read_ahead`]).
const READ_AHEAD: usize = 8;

/// The link's timers other than its give-up time, in the order they are served when several
/// are due at once: the engine's timeout, the handshake deadline, the next keepalive ping, the
/// pong deadline (`None`: not running). One sleep waits for the earliest of them instead of one
/// per timer: a smaller task and fewer timer registrations per wait.
#[derive(Debug, Clone, Copy)]
struct Timers([Option<Instant>; 4]);

/// Which of [`Timers`] fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    Engine,
    HandshakeDeadline,
    Ping,
    Pong,
}

impl Timers {
    const ORDER: [Timer; 4] = [
        Timer::Engine,
        Timer::HandshakeDeadline,
        Timer::Ping,
        Timer::Pong,
    ];

    /// When the earliest runs out.
    fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// The first in order that is due at `now`; else the earliest (a sleep for it ended, so it
    /// is due whatever `now` says).
    fn first_due(&self, now: Instant) -> Option<Timer> {
        let due = Self::ORDER
            .iter()
            .zip(self.0)
            .find(|(_, at)| at.is_some_and(|at| at <= now));
        let earliest = || {
            let next = self.next()?;
            Self::ORDER
                .iter()
                .zip(self.0)
                .find(|(_, at)| *at == Some(next))
        };
        due.or_else(earliest).map(|(timer, _)| *timer)
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{Timer, Timers};

    #[test]
    fn the_one_sleep_waits_for_the_earliest_timer_and_none_without_timers() {
        let t0 = Instant::now();
        let at = |ms| Some(t0 + Duration::from_millis(ms));
        assert_eq!(Timers([None; 4]).next(), None);
        assert_eq!(Timers([at(30), None, at(10), at(20)]).next(), at(10));
    }

    #[test]
    fn timers_due_together_are_served_in_their_order_and_a_fired_sleep_always_names_one() {
        let t0 = Instant::now();
        let at = |ms| Some(t0 + Duration::from_millis(ms));
        let timers = Timers([at(20), at(10), at(10), at(5)]);
        // All due: the engine's timeout first, as the order says.
        assert_eq!(
            timers.first_due(t0 + Duration::from_millis(20)),
            Some(Timer::Engine)
        );
        // Deadline and ping due at the same instant: the deadline first.
        let timers = Timers([at(20), at(10), at(10), None]);
        assert_eq!(
            timers.first_due(t0 + Duration::from_millis(10)),
            Some(Timer::HandshakeDeadline)
        );
        assert_eq!(
            Timers([None, None, at(10), at(15)]).first_due(t0 + Duration::from_millis(15)),
            Some(Timer::Ping)
        );
        assert_eq!(
            Timers([None, None, None, at(15)]).first_due(t0 + Duration::from_millis(15)),
            Some(Timer::Pong)
        );
        // The clock read after the sleep ended is before every timer: the earliest is served.
        assert_eq!(
            Timers([at(20), None, at(10), None]).first_due(t0),
            Some(Timer::Ping)
        );
        assert_eq!(Timers([None; 4]).first_due(t0), None);
    }
}
