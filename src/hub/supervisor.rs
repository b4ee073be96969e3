//! The supervisor: one task per remote SKI that owns everything about that peer.
//!
//! It owns the peer's dial loop (wait for the backoff delay → dial → run the connection → decide
//! whether and when to redial), its live links (normally one, two while a double connection is
//! settled), the double-connection arbitration, the pairing decision in progress, and the state
//! the application sees. Nothing else mutates any of it: the listener, the [`super::Hub`]
//! handle and discovery only send [`Command`]s, so no lock is held across an await and no state
//! change can be missed (architecture.md).
//!
//! # What the application sees
//!
//! The visible state is derived from the links, not copied from one of them: any link in data
//! exchange → Completed; otherwise the newest live link's state; otherwise Initiated while a dial
//! runs, Queued for a paired peer waiting to be dialled, None for anything else. A completed link
//! that is replaced by its twin (double connection, zombie) keeps the peer "connected" until the
//! twin completes — no `disconnected`, no second `connected` (ship-protocol.md §7 rule 5).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::sleep_until;

use super::Shared;
use super::arbitration::{self, Arbitration, LinkFacts};
use super::backoff::Backoff;
use super::callbacks::{CallbackEvent, PairingRequest, StateDetail};
use super::dial::{self, DialAddress, DialError, Dialled};
use super::link::{LinkChannels, LinkCommand, LinkEnd, LinkEvent, LinkId, LinkSetup, now};
use super::trust::PairedPeer;
use super::{ConnectionInfo, Direction, DisconnectReason, PeerStatus};
use crate::protocol::{
    self, CloseReason, ConnectionParams, ConnectionState, DetailedState, Role, Trust,
};
use crate::{ShipId, Ski};

/// At most this many addresses are kept per peer.
const MAX_ADDRESSES: usize = 8;

/// Starts a link task once the supervisor has built its protocol engine and channels. Erases
/// the socket type, so links over TCP, in-memory duplex streams or a simulated network are all
/// supervised alike.
pub(crate) type LinkRunner = Box<dyn FnOnce(LinkStart) -> BoxFuture<'static, ()> + Send>;

/// Everything a link task needs from its supervisor.
pub(crate) struct LinkStart {
    pub(crate) connection: protocol::Connection,
    pub(crate) setup: LinkSetup,
    pub(crate) commands: mpsc::UnboundedReceiver<LinkCommand>,
    pub(crate) data: mpsc::Receiver<Vec<u8>>,
    pub(crate) events: mpsc::UnboundedSender<(LinkId, LinkEvent)>,
}

/// A connection that finished TLS + WebSocket and now belongs to this peer.
pub(crate) struct NewLink {
    pub(crate) runner: LinkRunner,
    pub(crate) remote: SocketAddr,
    /// When its TCP connection was accepted or dialled: "most recent" in §12.2.3.
    pub(crate) started: Instant,
}

/// What the rest of the hub asks of a supervisor.
pub(crate) enum Command {
    /// The listener admitted a connection whose certificate proved this SKI.
    Incoming(NewLink),
    /// A client certificate with this SKI arrived on a connection whose TLS handshake is still
    /// running: the bigger-SKI side settles a double connection now (§7 rule 1).
    ClientCertificateSeen,
    /// The peer is paired now (stored in the trust store already).
    Paired(PairedPeer),
    /// The pairing was removed (from the trust store already).
    Unpaired,
    /// The user refused the pending pairing request.
    Deny,
    /// Close the peer's connections (a paired peer is redialled by the backoff rules).
    Disconnect,
    /// An address to dial this peer at.
    Address(DialAddress),
}

struct Link {
    id: LinkId,
    direction: Direction,
    started: Instant,
    remote: SocketAddr,
    channels: LinkChannels,
    state: ConnectionState,
    detail: Option<DetailedState>,
    completed: bool,
    /// A close was requested (arbitration, unpair, disconnect, shutdown).
    closing: bool,
    /// Answered the last arbitration ping.
    ponged: bool,
    /// Waiting for a user decision (hello pending).
    awaiting_trust: bool,
}

enum Dial {
    Idle,
    Waiting(tokio::time::Instant),
    Running(JoinHandle<Result<Dialled, DialError>>),
}

/// The application-visible view, as last reported.
struct Visible {
    state: ConnectionState,
    connected: bool,
}

pub(crate) struct Supervisor {
    ski: Ski,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Command>,
    status: watch::Sender<PeerStatus>,
    data_rx: mpsc::Receiver<Vec<u8>>,
    held: Option<Vec<u8>>,
    pairing: Option<PairedPeer>,
    peer_ship_id: Option<ShipId>,
    addresses: Vec<DialAddress>,
    links: Vec<Link>,
    next_link: LinkId,
    link_events_tx: mpsc::UnboundedSender<(LinkId, LinkEvent)>,
    link_events: mpsc::UnboundedReceiver<(LinkId, LinkEvent)>,
    backoff: Backoff,
    rng: StdRng,
    dial: Dial,
    grace_deadline: Option<tokio::time::Instant>,
    pending_answer: Option<(LinkId, oneshot::Receiver<bool>)>,
    visible: Visible,
    /// The last link ended with this (shown once as Error / RemoteDeniedTrust).
    last_failure: Option<(ConnectionState, String)>,
    /// A double connection was settled lately: if that leaves no connection, the bigger-SKI
    /// side redials at once (§7 rule 3).
    settled_double: bool,
    /// A connection in data exchange ended while a replacement was underway: until this
    /// deadline the peer stays "connected"; the reason is reported if the replacement fails.
    replacing: Option<(tokio::time::Instant, DisconnectReason)>,
    /// When a client certificate with this SKI last arrived (an incoming TLS handshake).
    incoming_seen: Option<tokio::time::Instant>,
    stopping: bool,
}

impl Supervisor {
    pub(crate) fn new(
        ski: Ski,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Command>,
        status: watch::Sender<PeerStatus>,
        data_rx: mpsc::Receiver<Vec<u8>>,
        seed: u64,
    ) -> Self {
        let pairing = shared.trust.get(&ski).ok().flatten();
        let mut addresses = Vec::new();
        if let Some(address) = pairing.as_ref().and_then(|p| p.last_address) {
            addresses.push(DialAddress::last_known(address));
        }
        let (link_events_tx, link_events) = mpsc::unbounded_channel();
        let backoff = Backoff::new(shared.config.timers.reconnect.clone());
        Supervisor {
            ski,
            peer_ship_id: pairing.as_ref().and_then(|p| p.ship_id.clone()),
            pairing,
            shared,
            commands,
            status,
            data_rx,
            held: None,
            addresses,
            links: Vec::new(),
            next_link: 0,
            link_events_tx,
            link_events,
            backoff,
            rng: StdRng::seed_from_u64(seed),
            dial: Dial::Idle,
            grace_deadline: None,
            pending_answer: None,
            visible: Visible { state: ConnectionState::None, connected: false },
            last_failure: None,
            settled_double: false,
            replacing: None,
            incoming_seen: None,
            stopping: false,
        }
    }

    /// The supervisor's task. Returns when the peer needs no owner any more (not paired, no
    /// link) or the hub shut down.
    pub(crate) async fn run(mut self) {
        if self.stopping_now() {
            self.begin_stop();
        }
        self.schedule_dial();
        loop {
            self.refresh_visible();
            if self.try_retire() {
                return;
            }
            let dial_wait = match &self.dial {
                Dial::Waiting(at) => Some(*at),
                _ => None,
            };
            let active_data = self.active_link().map(|l| l.channels.data.clone());
            let stop = self.shared.stop.clone();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.handle_command(command),
                    None => return,
                },
                Some((id, event)) = self.link_events.recv() => self.handle_link_event(id, event),
                _ = sleep_until_opt(dial_wait) => self.start_dial(),
                result = join_dial(&mut self.dial) => self.dial_finished(result),
                _ = sleep_until_opt(self.grace_deadline) => self.grace_expired(),
                _ = sleep_until_opt(self.replacing.as_ref().map(|r| r.0)) => self.replacement_expired(),
                Some((id, answer)) = wait_answer(&mut self.pending_answer) => {
                    self.pairing_answered(id, answer)
                }
                payload = self.data_rx.recv(), if self.held.is_none() && active_data.is_some() => {
                    self.held = payload;
                }
                permit = reserve(active_data.as_ref()), if self.held.is_some() => {
                    if let (Some(permit), Some(payload)) = (permit, self.held.take()) {
                        permit.send(payload);
                    }
                }
                _ = stop.cancelled(), if !self.stopping => self.begin_stop(),
            }
        }
    }

    fn stopping_now(&self) -> bool {
        self.shared.stop.is_cancelled()
    }

    // ----- commands ---------------------------------------------------------------------

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Incoming(new) => {
                // The connection whose client certificate was seen is past TLS now: it no longer
                // counts as a replacement in its TLS handshake (otherwise its own end, within
                // `transport_handshake_timeout` of its accept, would wait for a replacement that
                // never comes instead of reporting the disconnect).
                self.incoming_seen = None;
                self.add_link(new, Direction::Incoming)
            }
            Command::ClientCertificateSeen => {
                self.incoming_seen = Some(tokio::time::Instant::now());
                if self.we_decide() && self.live_links().count() > 0 {
                    tracing::debug!(ski = %self.ski, "second connection in TLS: closing the older");
                    self.cancel_dial();
                    let older: Vec<LinkId> = self.live_links().map(|l| l.id).collect();
                    for id in older {
                        self.close_link(id, CloseReason::Unspecific);
                    }
                    self.settled_double = true;
                    self.shared.metrics.record_replacement();
                }
            }
            Command::Paired(peer) => {
                if let Some(address) = peer.last_address {
                    self.add_address(DialAddress::last_known(address));
                }
                if peer.ship_id.is_some() {
                    self.peer_ship_id = peer.ship_id.clone();
                }
                self.pairing = Some(peer);
                let waiting: Vec<LinkId> =
                    self.links.iter().filter(|l| l.awaiting_trust).map(|l| l.id).collect();
                for id in waiting {
                    self.approve_link(id);
                }
                self.schedule_dial();
            }
            Command::Unpaired => {
                self.pairing = None;
                self.cancel_dial();
                self.backoff.reset();
                let ids: Vec<LinkId> = self.links.iter().map(|l| l.id).collect();
                for id in ids {
                    self.close_link(id, CloseReason::RemovedConnection);
                }
            }
            Command::Deny => {
                let waiting: Vec<LinkId> =
                    self.links.iter().filter(|l| l.awaiting_trust).map(|l| l.id).collect();
                for id in waiting {
                    self.deny_link(id);
                }
            }
            Command::Disconnect => {
                let ids: Vec<LinkId> = self.live_links().map(|l| l.id).collect();
                for id in ids {
                    self.close_link(id, CloseReason::Unspecific);
                }
            }
            Command::Address(address) => {
                self.add_address(address);
                self.schedule_dial();
            }
        }
        self.refresh_visible();
    }

    fn add_address(&mut self, address: DialAddress) {
        if let Some(existing) = self.addresses.iter_mut().find(|a| a.addr == address.addr) {
            existing.merge(address);
        } else {
            // Newest first within its rank (the sort below is stable).
            self.addresses.insert(0, address);
        }
        self.addresses.sort_by_key(|a| a.rank());
        // Bound the list (a peer that changes its address often): keep the best-ranked.
        self.addresses.truncate(MAX_ADDRESSES);
    }

    // ----- links ------------------------------------------------------------------------

    fn add_link(&mut self, new: NewLink, direction: Direction) {
        if self.stopping {
            // Admitted just before the stop: run it only to close it.
        }
        let id = self.next_link;
        self.next_link += 1;
        let trusted = self.pairing.is_some();
        let auto = !trusted && self.shared.auto_accept.load(std::sync::atomic::Ordering::Relaxed);
        if auto {
            let peer = PairedPeer::new(self.ski);
            match self.shared.trust.upsert(peer.clone()) {
                Ok(()) => self.pairing = Some(peer),
                Err(error) => tracing::warn!(%error, "auto-accept: could not store the pairing"),
            }
        }
        let trust = if self.pairing.is_some() { Trust::Trusted } else { Trust::Pending };
        let role = match direction {
            Direction::Incoming => Role::Server,
            Direction::Outgoing => Role::Client,
        };
        let connection = protocol::Connection::new(
            ConnectionParams {
                role,
                local_ship_id: self.shared.config.ship_id.clone(),
                trust,
                known_peer_ship_id: self.peer_ship_id.clone(),
                config: self.shared.config.protocol.clone(),
            },
            now(),
        );
        let initial_state = connection.state();
        let initial_detail = connection.detailed_state();
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (data_tx, data_rx) = mpsc::channel(self.shared.config.limits.max_queued_data.max(1));
        let setup = LinkSetup {
            id,
            keepalive_interval: self.shared.config.timers.keepalive_interval,
            keepalive_timeout: self.shared.config.timers.keepalive_timeout,
            handshake_deadline: new.started + self.shared.config.limits.handshake_deadline,
            abort: self.shared.abort.clone(),
        };
        let future = (new.runner)(LinkStart {
            connection,
            setup,
            commands: commands_rx,
            data: data_rx,
            events: self.link_events_tx.clone(),
        });
        self.shared.tracker.spawn(future);
        self.links.push(Link {
            id,
            direction,
            started: new.started,
            remote: new.remote,
            channels: LinkChannels { commands: commands_tx, data: data_tx },
            state: initial_state,
            detail: Some(initial_detail),
            completed: false,
            closing: false,
            ponged: true,
            awaiting_trust: trust == Trust::Pending,
        });
        if self.stopping {
            self.close_link(id, CloseReason::Unspecific);
            return;
        }
        if trust == Trust::Pending {
            let (answer_tx, answer_rx) = oneshot::channel();
            self.shared.callbacks.push(CallbackEvent::PairingRequested(
                PairingRequest { ski: self.ski, address: new.remote },
                answer_tx,
            ));
            self.pending_answer = Some((id, answer_rx));
        }
        self.arbitrate(id);
    }

    /// A new link `new` exists next to older live ones: settle it (§12.2.3, ship-protocol.md §7).
    fn arbitrate(&mut self, new: LinkId) {
        let facts: Vec<LinkFacts> = self
            .live_links()
            .map(|l| LinkFacts { id: l.id, started: l.started, completed: l.completed, answered_ping: l.ponged })
            .collect();
        if facts.len() < 2 {
            return;
        }
        self.shared.metrics.record_replacement();
        self.settled_double = true;
        let _ = new;
        match arbitration::on_new_link(self.shared.local_ski, self.ski, &facts) {
            Arbitration::Close(ids) => {
                for id in ids {
                    self.close_link(id, CloseReason::Unspecific);
                }
            }
            Arbitration::PingAndWait(ids) => {
                for id in ids {
                    if let Some(link) = self.link_mut(id) {
                        link.ponged = false;
                        let _ = link.channels.commands.send(LinkCommand::Ping);
                    }
                }
                self.grace_deadline = Some(
                    tokio::time::Instant::now() + self.shared.config.timers.double_connection_grace,
                );
            }
        }
    }

    fn grace_expired(&mut self) {
        self.grace_deadline = None;
        let facts: Vec<LinkFacts> = self
            .live_links()
            .map(|l| LinkFacts { id: l.id, started: l.started, completed: l.completed, answered_ping: l.ponged })
            .collect();
        for id in arbitration::after_grace(&facts) {
            self.close_link(id, CloseReason::Unspecific);
        }
        self.refresh_visible();
    }

    fn approve_link(&mut self, id: LinkId) {
        if let Some(link) = self.link_mut(id) {
            link.awaiting_trust = false;
            let _ = link.channels.commands.send(LinkCommand::Approve);
        }
        if self.pending_answer.as_ref().is_some_and(|(pending, _)| *pending == id) {
            self.pending_answer = None;
        }
    }

    fn deny_link(&mut self, id: LinkId) {
        if let Some(link) = self.link_mut(id) {
            link.awaiting_trust = false;
            link.closing = true;
            let _ = link.channels.commands.send(LinkCommand::Deny);
        }
        if self.pending_answer.as_ref().is_some_and(|(pending, _)| *pending == id) {
            self.pending_answer = None;
        }
    }

    fn pairing_answered(&mut self, id: LinkId, may_wait: bool) {
        self.pending_answer = None;
        if !may_wait && self.links.iter().any(|l| l.id == id && l.awaiting_trust) {
            self.deny_link(id);
        }
        self.refresh_visible();
    }

    fn close_link(&mut self, id: LinkId, reason: CloseReason) {
        if self.active_link().is_some_and(|l| l.id == id) {
            self.flush_data_to(id);
        }
        if let Some(link) = self.link_mut(id) {
            if !link.closing {
                link.closing = true;
                let _ = link.channels.commands.send(LinkCommand::Close(reason));
            }
        }
    }

    fn handle_link_event(&mut self, id: LinkId, event: LinkEvent) {
        match event {
            LinkEvent::State(state, detail) => {
                if let Some(link) = self.link_mut(id) {
                    link.state = state;
                    link.detail = Some(detail);
                    if state == ConnectionState::Completed {
                        link.completed = true;
                    }
                }
                if state == ConnectionState::Completed {
                    self.link_completed(id);
                }
            }
            LinkEvent::PeerShipId(ship_id) => self.ship_id_learned(ship_id),
            LinkEvent::Data(payload) => {
                if self.links.iter().any(|l| l.id == id && l.completed) {
                    self.shared.callbacks.push(CallbackEvent::DataReceived(self.ski, payload));
                }
            }
            LinkEvent::Pong => {
                if let Some(link) = self.link_mut(id) {
                    link.ponged = true;
                }
            }
            LinkEvent::Ended(end) => self.link_ended(id, end),
        }
        self.refresh_visible();
    }

    fn link_completed(&mut self, id: LinkId) {
        self.replacing = None;
        self.backoff.reset();
        self.last_failure = None;
        let Some(link) = self.links.iter().find(|l| l.id == id) else { return };
        let started = link.started;
        self.shared.metrics.record_completed(now().saturating_duration_since(started));
        // Remember where we reached the peer: the dialled address, or the peer's IP with the
        // port it is known to listen on.
        let reached = match link.direction {
            Direction::Outgoing => Some(link.remote),
            Direction::Incoming => self
                .addresses
                .first()
                .map(|a| SocketAddr::new(link.remote.ip(), a.addr.port())),
        };
        if let Some(mut peer) = self.pairing.clone() {
            if let Some(address) = reached {
                peer.last_address = Some(address);
                self.add_address(DialAddress::last_known(address));
            }
            peer.last_seen = Some(std::time::SystemTime::now());
            if self.peer_ship_id.is_some() {
                peer.ship_id = self.peer_ship_id.clone();
            }
            self.pairing = Some(peer.clone());
            self.store(peer);
        }
    }

    fn ship_id_learned(&mut self, ship_id: ShipId) {
        if self.peer_ship_id.as_ref() == Some(&ship_id) {
            return;
        }
        self.peer_ship_id = Some(ship_id.clone());
        self.status.send_modify(|s| s.ship_id = Some(ship_id.clone()));
        if let Some(mut peer) = self.pairing.clone() {
            peer.ship_id = Some(ship_id.clone());
            self.pairing = Some(peer.clone());
            self.store(peer);
        }
        self.shared.callbacks.push(CallbackEvent::ShipIdLearned(self.ski, ship_id));
    }

    /// Persists a pairing update without blocking the runtime on the file system (the hub's
    /// trust writer applies updates one at a time, in order).
    fn store(&self, peer: PairedPeer) {
        self.shared.store_later(peer);
    }

    fn link_ended(&mut self, id: LinkId, end: LinkEnd) {
        let Some(index) = self.links.iter().position(|l| l.id == id) else { return };
        let link = self.links.remove(index);
        if self.pending_answer.as_ref().is_some_and(|(pending, _)| *pending == id) {
            self.pending_answer = None;
        }
        let failure = failure_of(&end, link.closing);
        if let Some(cause) = &failure {
            self.shared.metrics.record_failure(cause.0);
        }
        let reason = reason_of(&end, link.closing);
        if self.links.iter().any(|l| l.completed && !l.closing) {
            // A twin in data exchange lives on: this one merely lost the arbitration.
            return;
        }
        if self.visible.connected && !self.stopping {
            let replacement_underway = self.live_links().count() > 0
                || (!link.closing
                    && (matches!(self.dial, Dial::Running(_)) || self.incoming_in_tls()));
            if link.completed && replacement_underway {
                // The peer replaced this connection (double connection settled by the
                // bigger-SKI side, or a restarted peer): it stays "connected" while the
                // replacement completes its handshake (§7 rule 5).
                let deadline = tokio::time::Instant::now()
                    + self.shared.config.limits.transport_handshake_timeout
                    + self.shared.config.protocol.handshake_wait * 4;
                self.replacing = Some((deadline, reason));
                return;
            }
            if self.replacing.is_some() && replacement_underway {
                return;
            }
        }
        if !self.links.is_empty() {
            return;
        }
        if let Some((state, text)) = failure.map(|f| (f.1, f.2)) {
            self.last_failure = Some((state, text));
        }
        self.connection_lost(reason);
    }

    /// The last connection is gone and no replacement is underway: report it and redial.
    fn connection_lost(&mut self, reason: DisconnectReason) {
        self.grace_deadline = None;
        let reason = self.replacing.take().map_or(reason, |(_, first)| first);
        if self.visible.connected {
            self.visible.connected = false;
            self.shared.callbacks.push(CallbackEvent::Disconnected(self.ski, reason));
            self.status.send_modify(|s| s.connected = false);
        }
        // Redial (paired peers only, §8).
        if self.pairing.is_some() && !self.stopping && self.links.is_empty() {
            if self.settled_double && self.we_decide() {
                // Arbitration left nothing (two rules, crossing clocks): not a failure to back
                // off from (§7 rule 3).
                if matches!(self.dial, Dial::Idle) {
                    self.dial = Dial::Waiting(tokio::time::Instant::now());
                }
            } else {
                self.schedule_dial();
            }
        }
        self.settled_double = false;
    }

    /// The replacement did not complete in time.
    fn replacement_expired(&mut self) {
        if let Some((_, reason)) = self.replacing.take() {
            if !self.links.iter().any(|l| l.completed && !l.closing) {
                self.replacing = Some((tokio::time::Instant::now(), reason.clone()));
                self.connection_lost(reason);
            }
        }
    }

    /// A client certificate with this SKI arrived lately: an incoming connection is in its TLS
    /// handshake.
    fn incoming_in_tls(&self) -> bool {
        self.incoming_seen.is_some_and(|at| {
            at.elapsed() <= self.shared.config.limits.transport_handshake_timeout
        })
    }

    // ----- dialling ---------------------------------------------------------------------

    fn schedule_dial(&mut self) {
        if self.stopping
            || self.pairing.is_none()
            || self.addresses.is_empty()
            || !matches!(self.dial, Dial::Idle)
            || self.live_links().count() > 0
        {
            return;
        }
        let delay = self.backoff.next_delay(&mut self.rng);
        self.dial = Dial::Waiting(tokio::time::Instant::now() + delay);
    }

    fn start_dial(&mut self) {
        if self.live_links().count() > 0 || self.pairing.is_none() || self.stopping {
            self.dial = Dial::Idle;
            return;
        }
        let shared = self.shared.clone();
        let ski = self.ski;
        let candidates = self.addresses.clone();
        self.shared.metrics.record_dial_attempt();
        let handle = self.shared.tracker.spawn(dial::dial(shared, ski, candidates));
        self.dial = Dial::Running(handle);
    }

    fn cancel_dial(&mut self) {
        if let Dial::Running(handle) = &self.dial {
            handle.abort();
        }
        self.dial = Dial::Idle;
    }

    fn dial_finished(&mut self, result: Result<Dialled, DialError>) {
        self.dial = Dial::Idle;
        match result {
            Ok(dialled) => {
                let new = NewLink { runner: dialled.runner, remote: dialled.remote, started: dialled.started };
                self.add_link(new, Direction::Outgoing);
            }
            Err(error) => {
                tracing::debug!(ski = %self.ski, %error, "dial failed");
                self.shared.metrics.record_failure(error.cause());
                self.last_failure = Some((ConnectionState::Error, error.to_string()));
                if self.replacing.is_some() && self.links.is_empty() && !self.incoming_in_tls() {
                    self.connection_lost(DisconnectReason::Error(error.to_string()));
                } else {
                    self.schedule_dial();
                }
            }
        }
        self.refresh_visible();
    }

    // ----- shutdown ---------------------------------------------------------------------

    fn begin_stop(&mut self) {
        self.stopping = true;
        self.cancel_dial();
        self.grace_deadline = None;
        let ids: Vec<LinkId> = self.links.iter().map(|l| l.id).collect();
        for id in ids {
            self.close_link(id, CloseReason::Unspecific);
        }
    }

    /// Leaves the registry when nothing is left to own. Holding the registry lock while checking
    /// the command queue makes this race-free: senders only send while holding the same lock.
    fn try_retire(&mut self) -> bool {
        let idle = self.links.is_empty()
            && matches!(self.dial, Dial::Idle)
            && (self.pairing.is_none() || self.stopping);
        if !idle {
            return false;
        }
        let mut registry = self.shared.registry.lock().expect("registry lock");
        if !self.commands.is_empty() {
            return false;
        }
        registry.remove(&self.ski);
        drop(registry);
        self.commands.close();
        true
    }

    // ----- the visible state ------------------------------------------------------------

    fn refresh_visible(&mut self) {
        let (state, detail) = self.derive_state();
        if state != self.visible.state {
            self.visible.state = state;
            self.shared.callbacks.push(CallbackEvent::StateChanged(self.ski, state, detail));
            let pending = self.links.iter().any(|l| l.awaiting_trust);
            self.status.send_modify(|s| {
                s.state = state;
                s.pending_request = pending;
            });
        } else {
            let pending = self.links.iter().any(|l| l.awaiting_trust);
            self.status.send_if_modified(|s| {
                let changed = s.pending_request != pending;
                s.pending_request = pending;
                changed
            });
        }
        let links: Vec<ConnectionInfo> = self
            .links
            .iter()
            .map(|l| ConnectionInfo {
                direction: l.direction,
                remote: l.remote,
                state: l.state,
                closing: l.closing,
            })
            .collect();
        self.status.send_if_modified(|s| {
            let changed = s.links != links;
            s.links = links;
            changed
        });
        if state == ConnectionState::Completed && !self.visible.connected {
            self.visible.connected = true;
            self.status.send_modify(|s| s.connected = true);
            self.shared
                .callbacks
                .push(CallbackEvent::Connected(self.ski, self.peer_ship_id.clone()));
        }
    }

    fn derive_state(&mut self) -> (ConnectionState, StateDetail) {
        let detail = |detailed: Option<DetailedState>, error: Option<String>| StateDetail { detailed, error };
        if let Some(link) = self.links.iter().find(|l| l.completed && !l.closing) {
            return (ConnectionState::Completed, detail(link.detail, None));
        }
        if self.visible.connected && (!self.links.is_empty() || self.replacing.is_some()) {
            // A replacement is in its handshake: stay connected.
            return (ConnectionState::Completed, detail(None, None));
        }
        if let Some(link) = self.links.iter().filter(|l| !l.closing).max_by_key(|l| l.started) {
            let state = if link.awaiting_trust {
                ConnectionState::ReceivedPairingRequest
            } else {
                link.state
            };
            return (state, detail(link.detail, None));
        }
        if let Some((state, text)) = self.last_failure.take() {
            if state != self.visible.state {
                return (state, detail(None, Some(text)));
            }
        }
        if matches!(self.dial, Dial::Running(_)) {
            return (ConnectionState::Initiated, detail(None, None));
        }
        if self.pairing.is_some() && !self.stopping {
            return (ConnectionState::Queued, detail(None, None));
        }
        (ConnectionState::None, detail(None, None))
    }

    // ----- helpers ----------------------------------------------------------------------

    /// Moves every payload the application queued to link `id` (before it is closed), so the
    /// close does not lose data that was accepted by [`super::Hub::send_data`].
    fn flush_data_to(&mut self, id: LinkId) {
        let Some(link) = self.links.iter().find(|l| l.id == id) else { return };
        let sender = link.channels.data.clone();
        for payload in self.held.take().into_iter().chain(std::iter::from_fn(|| self.data_rx.try_recv().ok())) {
            if sender.try_send(payload).is_err() {
                tracing::warn!(ski = %self.ski, "outgoing queue full at close: data dropped");
            }
        }
    }

    /// The bigger-SKI node decides double connections (§12.2.3).
    fn we_decide(&self) -> bool {
        self.shared.local_ski > self.ski
    }

    fn live_links(&self) -> impl Iterator<Item = &Link> {
        self.links.iter().filter(|l| !l.closing)
    }

    fn link_mut(&mut self, id: LinkId) -> Option<&mut Link> {
        self.links.iter_mut().find(|l| l.id == id)
    }

    /// The newest live link in data exchange: where outgoing data goes.
    fn active_link(&self) -> Option<&Link> {
        self.live_links().filter(|l| l.completed).max_by_key(|l| l.started)
    }
}

/// How a link's end shows to the application, if it is a failure: (metrics cause, visible state,
/// text).
fn failure_of(
    end: &LinkEnd,
    closed_by_us: bool,
) -> Option<(super::metrics::FailureCause, ConnectionState, String)> {
    use super::metrics::FailureCause;
    match end {
        LinkEnd::Aborted => None,
        LinkEnd::KeepaliveTimeout => Some((
            FailureCause::Other,
            ConnectionState::Error,
            "no pong within the keepalive timeout".into(),
        )),
        LinkEnd::HandshakeDeadline => Some((
            FailureCause::HandshakeTimeout,
            ConnectionState::Error,
            "handshake deadline passed".into(),
        )),
        LinkEnd::Protocol(cause) if closed_by_us => {
            let _ = cause;
            None
        }
        LinkEnd::Protocol(cause) => {
            if cause.is_remote_denied_trust() {
                Some((FailureCause::TrustDenied, ConnectionState::RemoteDeniedTrust, cause.to_string()))
            } else if cause.is_timeout() {
                Some((FailureCause::HandshakeTimeout, ConnectionState::Error, cause.to_string()))
            } else {
                Some((FailureCause::Protocol, ConnectionState::Error, cause.to_string()))
            }
        }
    }
}

fn reason_of(end: &LinkEnd, closed_by_us: bool) -> DisconnectReason {
    match end {
        LinkEnd::Aborted => DisconnectReason::Shutdown,
        LinkEnd::KeepaliveTimeout => DisconnectReason::KeepaliveTimeout,
        LinkEnd::HandshakeDeadline => DisconnectReason::Error("handshake deadline".into()),
        LinkEnd::Protocol(_) if closed_by_us => DisconnectReason::Local,
        LinkEnd::Protocol(cause) => DisconnectReason::Protocol(cause.clone()),
    }
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn join_dial(dial: &mut Dial) -> Result<Dialled, DialError> {
    match dial {
        Dial::Running(handle) => match handle.await {
            Ok(result) => result,
            Err(_) => Err(DialError::Cancelled),
        },
        _ => std::future::pending().await,
    }
}

async fn wait_answer(pending: &mut Option<(LinkId, oneshot::Receiver<bool>)>) -> Option<(LinkId, bool)> {
    match pending {
        Some((id, rx)) => {
            let answer = rx.await.unwrap_or(false);
            Some((*id, answer))
        }
        None => std::future::pending().await,
    }
}

async fn reserve(
    sender: Option<&mpsc::Sender<Vec<u8>>>,
) -> Option<mpsc::Permit<'_, Vec<u8>>> {
    match sender {
        Some(sender) => sender.reserve().await.ok(),
        None => std::future::pending().await,
    }
}
