//! The supervisor: one task per remote SKI that owns everything about that peer.
//!
//! It owns the peer's dial loop (wait for the backoff delay → dial → take the connection over
//! as a link → decide whether and when to redial), its links (normally one, two while a double
//! connection is settled), the double-connection arbitration, the pairing decision in progress,
//! and the state the application sees. Nothing else mutates any of it: the listener, the
//! [`crate::hub::Hub`] handle and discovery only send [`Command`]s (connections come as
//! [`Command::Incoming`] handovers), so no lock is held across an await and no state change can
//! be missed (architecture.md).
//!
//! Its state is grouped by concern in `state.rs`: a [`LinkHandle`] per link, the dial loop's
//! [`DialState`], the [`DoubleConnection`] settling, the [`Presence`] the application was told
//! (with the [`Replacement`] awaited), the [`PendingAnswer`] to a pairing question, and its
//! [`Lifecycle`].
//!
//! # What the application sees
//!
//! The visible state is derived from the supervisor's state by a pure function
//! (`visible::derive`), not copied from one link: any link in data exchange → Completed;
//! otherwise the newest live link's state; otherwise Initiated while a dial runs, Queued for a
//! paired peer waiting to be dialled, None for anything else. A completed link that is replaced
//! by its twin (double connection, zombie) keeps the peer "connected" until the twin completes —
//! no `disconnected`, no second `connected` (docs/ship.md §7 rule 5).

mod links;
mod pin;
mod state;
mod visible;

use std::net::SocketAddr;
use std::sync::Arc;

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, watch};

use super::address_book::{AddressBook, DEFAULT_SHIP_PATH};
use super::clock::sleep_until_opt;
use super::dial::{Dialled, Race, RaceEvent};
use super::handover::{Command, Handover, LinkCommand, LinkEvent, LinkId, SightingRecord};
use super::inbound::PeerBudget;
use super::inbox::Room;
use super::shared::{Direction, PeerEntry, PeerStatus, Shared};
use crate::hub::backoff::Backoff;
use crate::hub::callbacks::PairingDecision;
use crate::hub::errors::{DialError, EndCause, HubError};
use crate::hub::trust::PairedPeer;
use crate::protocol::{CloseReason, ConnectionState};
use crate::sync::lock;
use crate::{ShipId, Ski};
use state::{
    DialState, DoubleConnection, Ending, LastFailure, Lifecycle, LinkHandle, Outgoing,
    PendingAnswer, Presence,
};

/// Delivers a command to the supervisor of `ski`, creating the supervisor on first sight.
pub(crate) fn route(shared: &Arc<Shared>, ski: Ski, command: Command) -> Result<(), HubError> {
    if ski == shared.local_ski {
        return Err(HubError::OwnSki(ski));
    }
    let mut registry = lock(&shared.registry);
    let command = Box::new(command);
    let command = match registry.get(&ski) {
        Some(entry) => match entry.commands.send(command) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::SendError(command)) => {
                registry.remove(&ski);
                command
            }
        },
        None => command,
    };
    if shared.stop.is_cancelled() {
        return Err(HubError::ShutDown);
    }
    let (commands_tx, commands_rx) = mpsc::unbounded_channel();
    let (data_tx, data_rx) = mpsc::channel(shared.config.limits.max_queued_data.max(1));
    let (status_tx, status_rx) = watch::channel(PeerStatus {
        state: ConnectionState::None,
        connected: false,
        ship_id: None,
        pending_request: false,
        connections: Vec::new(),
    });
    let seed = {
        use rand::Rng;
        lock(&shared.seeds).next_u64()
    };
    let supervisor = Supervisor::new(ski, shared.clone(), commands_rx, status_tx, data_rx, seed);
    let _ = commands_tx.send(command);
    registry.insert(
        ski,
        PeerEntry {
            commands: commands_tx,
            status: status_rx,
            data: data_tx,
        },
    );
    shared.tracker.spawn(supervisor.run());
    Ok(())
}

/// The supervisor of one peer; see the module documentation. Its state is grouped by concern:
/// the dial loop ([`DialState`]), double connections ([`DoubleConnection`]), what the
/// application is shown ([`Presence`], `shown`, `last_failure`), the pairing decision
/// ([`PendingAnswer`], `accepting`) and its own life ([`Lifecycle`]).
pub(crate) struct Supervisor {
    ski: Ski,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Box<Command>>,
    status: watch::Sender<PeerStatus>,
    /// The application's data to the peer.
    outgoing: Outgoing,
    /// The peer's inbound data budget, shared by its links (docs/architecture.md).
    inbound: Arc<PeerBudget>,
    pairing: Option<PairedPeer>,
    peer_ship_id: Option<ShipId>,
    /// Every address known for this peer (one SKI's book), with the SNI host names of the
    /// addresses mDNS records claimed.
    addresses: AddressBook,
    links: Vec<LinkHandle>,
    next_link: LinkId,
    link_events_tx: mpsc::UnboundedSender<(LinkId, LinkEvent)>,
    link_events: mpsc::UnboundedReceiver<(LinkId, LinkEvent)>,
    backoff: Backoff,
    rng: StdRng,
    dial: DialState,
    /// The next dial goes out without a backoff delay (a fresh pairing by the user).
    dial_soon: bool,
    double: DoubleConnection,
    /// The application is being asked whether to pair the peer.
    pending_answer: Option<PendingAnswer>,
    /// The state the application was shown last.
    shown: ConnectionState,
    presence: Presence,
    /// The last link or dial ended with this (shown once as Error / RemoteDeniedTrust).
    last_failure: Option<LastFailure>,
    lifecycle: Lifecycle,
    /// PIN verification: attempts, penalty, the application's PIN (SHIP §13.4.4.3).
    pin: pin::PinMemory,
}

impl Supervisor {
    /// A supervisor for `ski`, fed by `commands`, publishing to `status`; `data` is the
    /// application's data to the peer; `seed` seeds its backoff jitter.
    pub(crate) fn new(
        ski: Ski,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Box<Command>>,
        status: watch::Sender<PeerStatus>,
        data: mpsc::Receiver<Vec<u8>>,
        seed: u64,
    ) -> Self {
        // Unbounded in count, bounded in bytes: every data event holds its charge against
        // `inbound`, and a link produces only a handful of other events per connection.
        let (link_events_tx, link_events) = mpsc::unbounded_channel();
        let inbound = PeerBudget::new(
            shared.config.limits.max_inbound_bytes_per_peer,
            shared.callbacks.inbound().clone(),
        );
        let backoff = Backoff::new(shared.config.timers.reconnect.clone());
        let addresses =
            AddressBook::with_max_discovered(shared.config.limits.max_discovered_addresses);
        Supervisor {
            ski,
            peer_ship_id: None,
            pairing: None,
            shared,
            commands,
            status,
            outgoing: Outgoing {
                queue: data,
                held: None,
            },
            inbound,
            addresses,
            links: Vec::new(),
            next_link: 0,
            link_events_tx,
            link_events,
            backoff,
            rng: StdRng::seed_from_u64(seed),
            dial: DialState::Idle,
            dial_soon: false,
            double: DoubleConnection::default(),
            pending_answer: None,
            shown: ConnectionState::None,
            presence: Presence::Absent,
            last_failure: None,
            lifecycle: Lifecycle::Serving,
            pin: pin::PinMemory::default(),
        }
    }

    /// The supervisor's task. Returns when the peer needs no owner any more (not paired, no
    /// link) or the hub shut down.
    pub(crate) async fn run(mut self) {
        self.load_pairing();
        if self.shared.stop.is_cancelled() {
            self.begin_stop();
        }
        self.schedule_dial();
        self.publish_addresses();
        loop {
            self.refresh_visible();
            if self.try_retire() {
                return;
            }
            let dial_due = self.dial.due();
            let replacement_due = self.presence.replacement_deadline();
            let active_data = self.active_link().map(|l| l.inbox.room());
            let stop = self.shared.stop.clone();
            let stopping = self.stopping();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.handle_command(*command),
                    None => return,
                },
                Some((id, event)) = self.link_events.recv() => self.handle_link_event(id, event),
                _ = sleep_until_opt(dial_due) => self.start_dial(),
                event = race(&mut self.dial, &self.addresses) => self.race_event(event),
                _ = sleep_until_opt(self.double.grace_until) => self.grace_expired(),
                _ = sleep_until_opt(replacement_due) => self.replacement_expired(),
                Some((id, answer)) = wait_answer(&mut self.pending_answer) => {
                    self.pairing_answered(id, answer)
                }
                Some((id, decision)) = pin::wait_pin_answer(&mut self.pin.answer) => {
                    self.pin_answered(id, decision)
                }
                payload = self.outgoing.queue.recv(),
                    if self.outgoing.held.is_none() && active_data.is_some() =>
                {
                    self.outgoing.held = payload;
                }
                ready = room(active_data.as_ref()), if self.outgoing.held.is_some() => {
                    // Room (the link only takes payloads out meanwhile), or the link is gone and
                    // the payload with it.
                    if let (true, Some(room), Some(payload)) =
                        (ready, &active_data, self.outgoing.held.take())
                    {
                        let _ = room.try_data(payload);
                    }
                }
                _ = stop.cancelled(), if !stopping => self.begin_stop(),
            }
        }
    }

    /// Learns the peer's pairing before any other command is handled. A supervisor created by
    /// a pairing (restored at start, or made by the user) gets the record with that command;
    /// any other looks it up in the hub's pairings in memory (never the trust store).
    fn load_pairing(&mut self) {
        let first = self.commands.try_recv().ok();
        if !first
            .as_deref()
            .is_some_and(|command| matches!(command, Command::Paired { .. }))
        {
            self.read_pairing();
        }
        if let Some(command) = first {
            self.handle_command(*command);
        }
    }

    fn read_pairing(&mut self) {
        let ski = self.ski;
        let Some(peer) = self.shared.pairings.get(&ski) else {
            return;
        };
        if let Some(address) = peer.last_address {
            let _ = self
                .addresses
                .record_dialled(ski, address, DEFAULT_SHIP_PATH);
        }
        self.peer_ship_id = peer.ship_id.clone();
        self.pairing = Some(peer);
    }

    // ----- commands ---------------------------------------------------------------------

    /// One command from the rest of the hub, then the addresses and the visible state are
    /// published again.
    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Incoming(handover) => self.incoming(handover),
            Command::ClientCertificateSeen => self.client_certificate_seen(),
            Command::Paired { peer, dial_now } => self.paired(peer, dial_now),
            Command::Unpaired => self.unpaired(),
            Command::Deny => self.deny_waiting(),
            Command::EnterPin(pin) => self.pin_entered(pin),
            Command::RefusePin => self.pin_refused(),
            Command::Disconnect => self.close_live_links(),
            Command::StaticAddress(address, path) => self.static_address(address, &path),
            Command::Sighting(records) => self.sighting(records),
            Command::SightingLost => self.sighting_lost(),
        }
        self.publish_addresses();
        self.refresh_visible();
    }

    /// The listener admitted a connection of this peer: the TLS handshake that was announced
    /// early (if it was) has become this link.
    fn incoming(&mut self, handover: Handover) {
        self.double.incoming_seen = None;
        self.take_over(handover, Direction::Incoming, None);
    }

    /// A connection of this peer is in its TLS handshake. The bigger-SKI side settles a double
    /// connection now: the older links close, replaced by the incoming one (§7 rule 1).
    fn client_certificate_seen(&mut self) {
        self.double.incoming_seen = Some(tokio::time::Instant::now());
        if !self.we_decide() || self.live_links().count() == 0 {
            return;
        }
        tracing::debug!(ski = %self.ski, "second connection in TLS: closing the older");
        self.cancel_dial();
        let older: Vec<LinkId> = self.live_links().map(|l| l.id).collect();
        for id in older {
            self.close_link(id, CloseReason::Unspecific);
            if let Some(link) = self.link_mut(id) {
                link.ending = Ending::Replaced;
            }
        }
        self.double.settled = true;
        self.shared.metrics.double_connection_replaced();
    }

    /// The pairing was removed: every link closes and nothing is dialled any more.
    fn unpaired(&mut self) {
        self.pairing = None;
        // A later pairing starts afresh (the device may have been replaced).
        self.peer_ship_id = None;
        self.cancel_dial();
        self.backoff.reset();
        self.dial_soon = false;
        let ids: Vec<LinkId> = self.links.iter().map(|l| l.id).collect();
        for id in ids {
            self.close_link(id, CloseReason::RemovedConnection);
        }
    }

    /// The user refused the waiting pairing request.
    fn deny_waiting(&mut self) {
        for id in self.links_awaiting_trust() {
            self.deny_link(id);
        }
    }

    /// Closes every live link (a paired peer is redialled by the backoff rules).
    fn close_live_links(&mut self) {
        let ids: Vec<LinkId> = self.live_links().map(|l| l.id).collect();
        for id in ids {
            self.close_link(id, CloseReason::Unspecific);
        }
    }

    /// A configured address to dial the peer at.
    fn static_address(&mut self, address: SocketAddr, path: &str) {
        if let Err(error) = self.addresses.add_static(self.ski, address, path) {
            tracing::warn!(ski = %self.ski, %error, "static address not usable");
        }
        self.schedule_dial();
    }

    /// Discovery sees the peer: each record's addresses are learnt (a running dial tries a new
    /// one next). A claim never tried before is worth a dial now: a waiting dial goes out at
    /// once instead of after its backoff delay, so a fresh sighting is always tried promptly,
    /// whatever fake claims were tried before it.
    fn sighting(&mut self, records: Vec<SightingRecord>) {
        let mut new = 0;
        for record in records {
            match self.addresses.record_sighting(
                self.ski,
                &record.instance,
                &record.host,
                record.addresses,
                &record.path,
            ) {
                Ok(recorded) => new += recorded.new,
                Err(error) => tracing::debug!(ski = %self.ski, %error, "sighting not usable"),
            }
        }
        self.schedule_dial();
        if new > 0 {
            self.dial_fresh_now();
        }
    }

    /// A waiting dial goes out now (a never-tried address was learnt). Not while a connection
    /// of the peer is in its TLS handshake: that is the replacement a settled double connection
    /// waits for, and a dial now would make a third connection.
    fn dial_fresh_now(&mut self) {
        if let DialState::Waiting(at) = self.dial {
            let now = tokio::time::Instant::now();
            if at > now && !self.incoming_in_tls() {
                self.dial = DialState::Waiting(now);
            }
        }
    }

    /// Discovery lost the peer: its discovered addresses are withdrawn (they stay as a last
    /// resort, §8).
    fn sighting_lost(&mut self) {
        self.addresses.withdraw_all(&self.ski);
    }

    // ----- dialling ---------------------------------------------------------------------

    /// Schedules the next dial of a paired peer. Without an address to dial (a peer that only
    /// ever dialled in: the address it came from has no listening port) nothing is scheduled:
    /// the peer waits quietly in Queued until an address is learnt (a sighting, a static
    /// address, a pairing with a last address), which calls this again.
    fn schedule_dial(&mut self) {
        if self.stopping()
            || self.pairing.is_none()
            || self.addresses.dial_candidates(&self.ski).is_empty()
            || !self.dial.is_idle()
            || self.live_links().count() > 0
        {
            return;
        }
        let delay = if std::mem::take(&mut self.dial_soon) {
            std::time::Duration::ZERO
        } else {
            self.backoff.next_delay(&mut self.rng)
        };
        self.dial = DialState::Waiting(tokio::time::Instant::now() + delay);
    }

    /// The waiting dial is due: start an attempt that races the candidate addresses.
    fn start_dial(&mut self) {
        if self.live_links().count() > 0 || self.pairing.is_none() || self.stopping() {
            self.dial = DialState::Idle;
            return;
        }
        if self.addresses.dial_candidates(&self.ski).is_empty() {
            // Nothing to dial (see `schedule_dial`): not a failure.
            self.dial = DialState::Idle;
            return;
        }
        self.shared.metrics.dial_attempt();
        match Race::new(self.shared.clone(), self.ski) {
            Ok(race) => self.dial = DialState::Running(Box::new(race)),
            Err(error) => self.dial_finished(Err(error)),
        }
    }

    /// What the running attempt reports: a failed candidate is demoted in the book (the attempt
    /// goes on), a connection or the attempt's failure ends it.
    fn race_event(&mut self, event: RaceEvent) {
        match event {
            RaceEvent::Failed(candidate) => {
                self.addresses.record_failure(&self.ski, candidate.address);
            }
            RaceEvent::Won(dialled) => self.dial_finished(Ok(*dialled)),
            RaceEvent::Exhausted(error) => self.dial_finished(Err(error)),
        }
    }

    fn cancel_dial(&mut self) {
        self.dial = DialState::Idle;
    }

    /// The dial attempt ended: its connection becomes a link, or its failure is shown and the
    /// next dial scheduled (or, while a replacement was awaited, the peer is disconnected).
    fn dial_finished(&mut self, result: Result<Dialled, DialError>) {
        self.dial = DialState::Idle;
        match result {
            Ok(dialled) => {
                self.take_over(
                    dialled.handover,
                    Direction::Outgoing,
                    Some(dialled.candidate),
                );
            }
            Err(error) => {
                tracing::debug!(ski = %self.ski, %error, "dial failed");
                let failure = EndCause::from(error);
                self.shared.metrics.failure(failure.metric());
                self.last_failure = Some(LastFailure {
                    failure: failure.clone(),
                    detailed: None,
                });
                if self.presence.replacing() && self.links.is_empty() && !self.incoming_in_tls() {
                    self.connection_lost(failure);
                } else {
                    self.schedule_dial();
                }
            }
        }
        self.refresh_visible();
    }

    // ----- shutdown ---------------------------------------------------------------------

    fn stopping(&self) -> bool {
        self.lifecycle == Lifecycle::Stopping
    }

    /// The hub shuts down: no more dials, every link closes.
    fn begin_stop(&mut self) {
        self.lifecycle = Lifecycle::Stopping;
        self.cancel_dial();
        self.double.grace_until = None;
        let ids: Vec<LinkId> = self.links.iter().map(|l| l.id).collect();
        for id in ids {
            self.close_link(id, CloseReason::Unspecific);
        }
    }

    /// Leaves the registry when nothing is left to own. Holding the registry lock while checking
    /// the command queue makes this race-free: senders only send while holding the same lock.
    fn try_retire(&mut self) -> bool {
        // An acceptance being stored makes the peer paired: wait for it (unless stopping).
        let idle = self.links.is_empty()
            && self.dial.is_idle()
            && (self.stopping() || self.pairing.is_none());
        if !idle {
            return false;
        }
        let mut registry = lock(&self.shared.registry);
        if !self.commands.is_empty() {
            return false;
        }
        registry.remove(&self.ski);
        drop(registry);
        self.commands.close();
        self.shared.admission.known.publish(self.ski, []);
        true
    }

    // ----- helpers ----------------------------------------------------------------------

    /// Tells admission where this peer may connect from (only while it is paired): connections
    /// from there may take the handshake slots reserved for paired peers.
    fn publish_addresses(&self) {
        let ips = match self.pairing {
            Some(_) => self.addresses.proven_ips(&self.ski),
            None => Vec::new(),
        };
        self.shared.admission.known.publish(self.ski, ips);
    }

    /// Moves every payload the application queued to link `id` (before it is closed), so the
    /// close does not lose data that was accepted by [`crate::hub::Hub::send_data`].
    fn flush_data_to(&mut self, id: LinkId) {
        let Some(link) = self.links.iter().find(|l| l.id == id) else {
            return;
        };
        let sender = link.inbox.room();
        let Outgoing { queue, held } = &mut self.outgoing;
        for payload in held
            .take()
            .into_iter()
            .chain(std::iter::from_fn(|| queue.try_recv().ok()))
        {
            if sender.try_data(payload).is_err() {
                tracing::warn!(ski = %self.ski, "outgoing queue full at close: data dropped");
            }
        }
    }

    /// Links whose peer waits for a trust decision.
    fn links_awaiting_trust(&self) -> Vec<LinkId> {
        self.links
            .iter()
            .filter(|l| l.awaiting_trust)
            .map(|l| l.id)
            .collect()
    }

    /// The bigger-SKI node decides double connections (§12.2.3).
    fn we_decide(&self) -> bool {
        self.shared.local_ski > self.ski
    }

    fn live_links(&self) -> impl Iterator<Item = &LinkHandle> {
        self.links.iter().filter(|l| !l.closing())
    }

    fn link_mut(&mut self, id: LinkId) -> Option<&mut LinkHandle> {
        self.links.iter_mut().find(|l| l.id == id)
    }

    /// The newest live link in data exchange: where outgoing data goes.
    fn active_link(&self) -> Option<&LinkHandle> {
        self.live_links()
            .filter(|l| l.completed)
            .max_by_key(|l| l.started)
    }
}

/// The running attempt's next event; never while no attempt runs.
async fn race(dial: &mut DialState, book: &AddressBook) -> RaceEvent {
    match dial {
        DialState::Running(race) => race.next(book).await,
        _ => std::future::pending().await,
    }
}

/// The application's answer; a refusal if none will come (the callback panicked, or the
/// dispatcher stopped).
async fn wait_answer(pending: &mut Option<PendingAnswer>) -> Option<(LinkId, PairingDecision)> {
    match pending {
        Some(PendingAnswer { link, answer }) => {
            let decision = answer.await.unwrap_or(PairingDecision::Refuse);
            Some((*link, decision))
        }
        None => std::future::pending().await,
    }
}

/// Waits until the active link's inbox has room for a payload (`true`) or the link is gone
/// (`false`); forever without an active link.
async fn room(room: Option<&Room<LinkCommand>>) -> bool {
    match room {
        Some(room) => std::future::poll_fn(|cx| room.poll_room(cx)).await,
        None => std::future::pending().await,
    }
}
