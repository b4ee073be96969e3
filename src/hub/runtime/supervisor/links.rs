//! The supervisor's links: taking a handover over as a link, settling double connections, the
//! pairing decision, and what happens when a link reaches data exchange or ends.

use std::net::IpAddr;
use std::time::Instant;

use tokio::sync::oneshot;

use super::Supervisor;
use super::state::{Ending, LastFailure, LinkHandle, PendingAnswer, Presence, Replacement};
use super::visible::{failure_of, reason_of};
use crate::ShipId;
use crate::hub::callbacks::{CallbackEvent, PairingDecision, PairingRequest};
use crate::hub::runtime::address_book::{DEFAULT_SHIP_PATH, DialCandidate};
use crate::hub::runtime::arbitration::{self, Arbitration, LinkFacts};
use crate::hub::runtime::clock::now;
use crate::hub::runtime::handover::{
    Handover, LinkCommand, LinkEnd, LinkEvent, LinkId, LinkSetup, LinkStart,
};
use crate::hub::runtime::inbound::Delivery;
use crate::hub::runtime::inbox::{Inbox, inbox};
use crate::hub::runtime::link;
use crate::hub::runtime::shared::Direction;
use crate::hub::trust::PairedPeer;
use crate::protocol::{self, CloseReason, ConnectionParams, ConnectionState, Role, Trust};

impl Supervisor {
    /// Takes over a connection of this peer (accepted or dialled) as a new link: builds its
    /// protocol engine, spawns its task and settles a double connection it makes.
    pub(super) fn take_over(
        &mut self,
        handover: Handover,
        direction: Direction,
        dialled: Option<DialCandidate>,
    ) {
        let id = self.next_link;
        self.next_link += 1;
        self.auto_accept();
        // A peer that is not paired is a stranger: it keeps its strangers' slot until it is
        // paired, gets the shorter timers, and meets the PIN limits that span peers. Under
        // auto-accept with a PIN requirement it is trusted for the handshake but paired only
        // once its PIN is verified.
        let stranger = self.pairing.is_none();
        let provisional =
            stranger && direction == Direction::Incoming && self.shared.auto_accept_after_pin();
        let trust = if stranger && !provisional {
            Trust::Pending
        } else {
            Trust::Trusted
        };
        let Handover {
            socket,
            mut permits,
            remote,
            started,
        } = handover;
        let stranger_slot = permits.stranger.take().filter(|_| stranger);
        let tls_suite = socket.tls_suite();
        let guard = stranger.then(|| remote.ip());
        let (start, inbox) = self.link_start(id, direction, trust, started, guard);
        let (state, detail) = (start.engine.state(), start.engine.detailed_state());
        self.shared.tracker.spawn(link::run(socket, permits, start));
        // Room for this one link only: a peer mostly has one, and `push` would make room for
        // four (a kilobyte per supervisor that holds a connection).
        self.links.reserve_exact(1);
        self.links.push(LinkHandle {
            id,
            direction,
            started,
            remote,
            tls_suite,
            dialled,
            inbox,
            state,
            detail: Some(detail),
            completed: false,
            ending: Ending::Open,
            ponged: true,
            awaiting_trust: trust == Trust::Pending,
            restricted: false,
            stranger: stranger_slot,
            guarded: stranger,
            provisional,
        });
        if self.stopping() {
            // Admitted just before the stop: run it only to close it.
            self.close_link(id, CloseReason::Unspecific);
            return;
        }
        self.arbitrate();
    }

    /// With auto-accept on and no PIN requirement, a peer that is not paired is paired as its
    /// connection is taken over (before any SHIP message). With a PIN requirement it is paired
    /// once its PIN is verified (`provisional` links), so a key that never knew the PIN is
    /// never stored.
    fn auto_accept(&mut self) {
        let auto = self.pairing.is_none() && self.shared.auto_accept_pairs_at_once();
        if auto {
            self.pairing = Some(self.shared.pairings.change(self.ski, |_| {}));
        }
    }

    /// The protocol engine, parameters and channels of a new link `id`, and the supervisor's
    /// ends of its command and data channels. A stranger (`guard`: the address it came from)
    /// gets less time: a short CMI wait and a shorter backstop (admission); and its PIN step
    /// starts where the PIN limits that span peers stand for its address.
    fn link_start(
        &self,
        id: LinkId,
        direction: Direction,
        trust: Trust,
        started: Instant,
        guard: Option<IpAddr>,
    ) -> (LinkStart, Inbox<LinkCommand>) {
        let role = match direction {
            Direction::Incoming => Role::Server,
            Direction::Outgoing => Role::Client,
        };
        let limits = &self.shared.config.limits;
        let mut config = self.shared.config.protocol.clone();
        let mut handshake_deadline = limits.handshake_deadline;
        if guard.is_some() {
            config.cmi_timeout = config.cmi_timeout.min(limits.unpaired_cmi_timeout);
            handshake_deadline = handshake_deadline.min(limits.unpaired_handshake_deadline);
        }
        let mut engine = protocol::Connection::new(
            ConnectionParams {
                role,
                local_ship_id: self.shared.config.ship_id.clone(),
                trust,
                known_peer_ship_id: self.peer_ship_id.clone(),
                config,
            },
            now(),
        );
        engine.set_pin(self.pin_params(guard));
        let (inbox, inbox_rx) = inbox(limits.max_queued_data);
        let setup = LinkSetup {
            id,
            keepalive_interval: self.shared.config.timers.keepalive_interval,
            keepalive_timeout: self.shared.config.timers.keepalive_timeout,
            handshake_deadline: started + handshake_deadline,
            abort: self.shared.abort.clone(),
            budget: self.inbound.clone(),
            max_message: self.shared.config.websocket.max_message_size,
            stall_limit: limits.max_inbound_stall,
        };
        let start = LinkStart {
            engine,
            setup,
            inbox: inbox_rx,
            events: self.link_events_tx.clone(),
        };
        (start, inbox)
    }

    /// What the arbitration needs to know about the live links.
    fn link_facts(&self) -> Vec<LinkFacts> {
        self.live_links()
            .map(|l| LinkFacts {
                id: l.id,
                started: l.started,
                completed: l.completed,
                answered_ping: l.ponged,
            })
            .collect()
    }

    /// A link was added next to older live ones: settle it (§12.2.3, docs/ship.md §7).
    pub(super) fn arbitrate(&mut self) {
        let facts = self.link_facts();
        if facts.len() < 2 {
            return;
        }
        self.shared.metrics.double_connection_replaced();
        self.double.settled = true;
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
                        let _ = link.inbox.command(LinkCommand::Ping);
                    }
                }
                self.double.grace_until = Some(
                    tokio::time::Instant::now() + self.shared.config.timers.double_connection_grace,
                );
            }
        }
    }

    pub(super) fn grace_expired(&mut self) {
        self.double.grace_until = None;
        let facts = self.link_facts();
        for id in arbitration::after_grace(&facts) {
            self.close_link(id, CloseReason::Unspecific);
        }
        self.refresh_visible();
    }

    /// The unknown peer on link `id` reached hello `pending`: ask the application for its
    /// decision. Asking at hello (not at admission) means a refusal goes out as hello
    /// `aborted`, so the peer learns it was refused (RemoteDeniedTrust) instead of seeing a drop.
    ///
    /// The request is published first (state ReceivedPairingRequest, `pending_request`), then
    /// the application is asked: so it hears `state_changed` before `pairing_requested`, and a
    /// [`crate::hub::Hub::approve`] or `deny` made from inside the callback finds the request.
    /// The answer comes back through `pending_answer`, made before the question is queued: an
    /// immediate answer cannot arrive before this supervisor is ready for it.
    pub(super) fn ask_application(&mut self, id: LinkId) {
        let Some(link) = self.links.iter().find(|l| l.id == id) else {
            return;
        };
        if !link.awaiting_trust || self.pending_answer.as_ref().is_some_and(|p| p.link == id) {
            return;
        }
        let remote = link.remote;
        self.refresh_visible();
        let mut request = PairingRequest::new(self.ski, remote);
        request.ship_id = self.peer_ship_id.clone();
        if let Some(service) = self
            .shared
            .config
            .discovery
            .as_ref()
            .and_then(|d| d.visible_service(&self.ski))
        {
            request = request.with_service(&service);
        }
        let (answer_tx, answer_rx) = oneshot::channel();
        self.shared
            .callbacks
            .push(CallbackEvent::PairingRequested(request, answer_tx));
        self.pending_answer = Some(PendingAnswer {
            link: id,
            answer: answer_rx,
        });
    }

    pub(super) fn approve_link(&mut self, id: LinkId) {
        if let Some(link) = self.link_mut(id) {
            link.awaiting_trust = false;
            let _ = link.inbox.command(LinkCommand::Approve);
        }
        self.forget_answer(id);
    }

    pub(super) fn deny_link(&mut self, id: LinkId) {
        if let Some(link) = self.link_mut(id) {
            link.awaiting_trust = false;
            link.ending = Ending::Closing;
            let _ = link.inbox.command(LinkCommand::Deny);
        }
        self.forget_answer(id);
    }

    /// The application answered the pairing request of link `id` (an answer that comes after
    /// the request was settled another way — `approve`, `deny`, the link's end — is moot).
    pub(super) fn pairing_answered(&mut self, id: LinkId, decision: PairingDecision) {
        self.pending_answer = None;
        if !self.links.iter().any(|l| l.id == id && l.awaiting_trust) {
            return;
        }
        match decision {
            // What `Hub::approve` does: store, then treat it as `Command::Paired`
            // (`acceptance_stored`).
            PairingDecision::Accept => self.accept_now(),
            // What `Hub::deny` does.
            PairingDecision::Refuse => self.deny_link(id),
            PairingDecision::Ask => {}
        }
        self.refresh_visible();
    }

    /// The peer is paired now (stored already): a waiting pairing request is approved.
    pub(super) fn paired(&mut self, peer: PairedPeer, dial_now: bool) {
        // An immediate dial is asked for a peer not yet reached; for one that is connected it
        // would only skip the backoff of the redial after this connection ends.
        self.dial_soon |= dial_now && !self.presence.connected();
        if let Some(address) = peer.last_address {
            let _ = self
                .addresses
                .record_dialled(self.ski, address, DEFAULT_SHIP_PATH);
        }
        if peer.ship_id.is_some() {
            self.peer_ship_id = peer.ship_id.clone();
        }
        self.pairing = Some(peer);
        // The peer is no stranger any more: its connections give their strangers' slots back
        // now, not when they end (a paired device stays connected for days).
        for link in &mut self.links {
            link.stranger = None;
            link.provisional = false;
            link.guarded = false;
        }
        let waiting = self.links_awaiting_trust();
        for id in waiting {
            self.approve_link(id);
        }
        self.schedule_dial();
    }

    /// Pairs the peer the application accepted (or whose provisional link's verified PIN earned
    /// it), through `Shared::store_approval`, the code `Hub::approve` uses: in the hub's index
    /// at once (the trust writer stores it in the background), then its waiting request is
    /// approved, as after `Hub::approve`.
    pub(super) fn accept_now(&mut self) {
        let peer = self
            .shared
            .store_approval(self.ski, self.peer_ship_id.clone());
        self.paired(peer, false);
        // A connection may have reached data exchange before the decision: remember where the
        // peer was reached, as at completion.
        if self.active_link().is_some() {
            self.store_reached();
        }
        self.publish_addresses();
        self.refresh_visible();
    }

    pub(super) fn close_link(&mut self, id: LinkId, reason: CloseReason) {
        if self.active_link().is_some_and(|l| l.id == id) {
            self.flush_data_to(id);
        }
        if let Some(link) = self.link_mut(id)
            && !link.closing()
        {
            link.ending = Ending::Closing;
            let _ = link.inbox.command(LinkCommand::Close(reason));
        }
    }

    pub(super) fn handle_link_event(&mut self, id: LinkId, event: LinkEvent) {
        match event {
            LinkEvent::State(state, detail) => {
                if let Some(link) = self.link_mut(id) {
                    link.state = state;
                    link.detail = Some(detail);
                }
                if state == ConnectionState::Completed {
                    self.data_exchange_open(id);
                }
                if state == ConnectionState::ReceivedPairingRequest {
                    self.ask_application(id);
                }
            }
            LinkEvent::PeerShipId(ship_id) => self.ship_id_learned(ship_id),
            LinkEvent::Data(payload, charge) => {
                // The engine delivers data only after hello (both sides trust each other) and the
                // PIN step. Data may come before Completed, while our access-methods request is
                // still unanswered (eebus sends its first SPINE reads then): it proves data
                // exchange is open, so the peer is reported connected first, and the data is
                // delivered at once, never held back (§13.4.6, TC_SHIP_AMDATA_001/002).
                if self.links.iter().any(|l| l.id == id && !l.awaiting_trust) {
                    self.data_exchange_open(id);
                    self.refresh_visible();
                    self.shared
                        .callbacks
                        .push(CallbackEvent::DataReceived(Delivery::new(
                            self.ski, payload, charge,
                        )));
                }
            }
            LinkEvent::Pong => {
                if let Some(link) = self.link_mut(id) {
                    link.ponged = true;
                }
            }
            LinkEvent::Ended(end) => self.link_ended(id, *end),
            event => self.handle_pin_event(id, event),
        }
        self.refresh_visible();
    }

    /// Link `id` is in data exchange (its engine reached Completed, or the peer's data proves
    /// it): once per link.
    fn data_exchange_open(&mut self, id: LinkId) {
        match self.link_mut(id) {
            Some(link) if !link.completed => link.completed = true,
            _ => return,
        }
        self.link_completed(id);
    }

    /// Link `id` reached data exchange: a replacement is over, backoff and failure are reset,
    /// a pending request for an immediate dial is fulfilled, and where the peer was reached is
    /// remembered with its pairing.
    fn link_completed(&mut self, id: LinkId) {
        if self.presence.replacing() {
            self.presence = Presence::Connected;
        }
        self.backoff.reset();
        self.last_failure = None;
        // A request for an immediate dial (`pair`) is fulfilled by this connection: the redial
        // after it ends waits its backoff delay like any other.
        self.dial_soon = false;
        let Some(link) = self.links.iter().find(|l| l.id == id) else {
            return;
        };
        let started = link.started;
        self.shared
            .metrics
            .handshake_completed(now().saturating_duration_since(started));
        // Remember where we reached the peer: the dialled address, or (incoming) the peer's IP
        // with its last known listening port.
        match (&link.direction, &link.dialled) {
            (Direction::Outgoing, Some(candidate)) => {
                let _ = self
                    .addresses
                    .record_dialled(self.ski, candidate.address, &candidate.path);
            }
            _ => {
                let _ = self.addresses.record_incoming(self.ski, link.remote);
            }
        }
        self.publish_addresses();
        self.store_reached();
    }

    /// Stores with the pairing (if the peer is paired) where it was reached last, when, and its
    /// SHIP ID.
    fn store_reached(&mut self) {
        let reached = self.addresses.last_successful(&self.ski).map(|c| c.address);
        if let Some(mut peer) = self.pairing.clone() {
            if let Some(address) = reached {
                peer.last_address = Some(address);
            }
            peer.last_seen = Some(std::time::SystemTime::now());
            if self.peer_ship_id.is_some() {
                peer.ship_id = self.peer_ship_id.clone();
            }
            self.pairing = Some(peer.clone());
            self.store(peer);
        }
    }

    pub(super) fn ship_id_learned(&mut self, ship_id: ShipId) {
        if self.peer_ship_id.as_ref() == Some(&ship_id) {
            return;
        }
        self.peer_ship_id = Some(ship_id.clone());
        self.status
            .send_modify(|s| s.ship_id = Some(ship_id.clone()));
        if let Some(mut peer) = self.pairing.clone() {
            peer.ship_id = Some(ship_id.clone());
            self.pairing = Some(peer.clone());
            self.store(peer);
        }
        self.shared
            .callbacks
            .push(CallbackEvent::ShipIdLearned(self.ski, ship_id));
    }

    /// Takes what the supervisor learnt about its paired peer into the hub's pairings (the
    /// trust writer persists it in the background, in order; nothing if it was unpaired
    /// meanwhile).
    pub(super) fn store(&self, peer: PairedPeer) {
        self.shared.pairings.learned(peer);
    }

    /// Link `id` ended. Unless a twin in data exchange lives on or a replacement is underway,
    /// the peer lost its connection: its failure is shown and it is redialled.
    ///
    /// While the application sees the peer connected, the report is not held back for links
    /// that are only closing (a refused connection, the loser of a double connection): the
    /// link that was in data exchange, live, when it ended was the peer's connection, and
    /// `disconnected` carries its reason at once. A closing link that reached data exchange
    /// (closed by us: `disconnect`, shutdown, replaced) is still waited for when the link that
    /// ended was not the live connection, so its own end gives the reason.
    pub(super) fn link_ended(&mut self, id: LinkId, end: LinkEnd) {
        let Some(index) = self.links.iter().position(|l| l.id == id) else {
            return;
        };
        let link = self.links.remove(index);
        self.forget_answer(id);
        let failure = failure_of(&end, link.closing(), link.state);
        if let Some(failure) = &failure {
            self.shared.metrics.failure(failure.metric());
        }
        let reason = reason_of(end, link.closing());
        if self.links.iter().any(|l| l.completed && !l.closing()) {
            // A twin in data exchange lives on: this one merely lost the arbitration.
            return;
        }
        if self.presence.connected() && !self.stopping() {
            let underway = self.replacement_underway(&link);
            if link.completed && underway {
                // The peer replaced this connection (double connection settled by the
                // bigger-SKI side, or a restarted peer): it stays "connected" while the
                // replacement completes its handshake (§7 rule 5).
                let deadline = tokio::time::Instant::now()
                    + self.shared.config.limits.transport_handshake_timeout
                    + self.shared.config.protocol.handshake_wait * 4;
                self.presence = Presence::Replacing(Replacement { deadline, reason });
                return;
            }
            if self.presence.replacing() && underway {
                return;
            }
        }
        // The ended link was the peer's live connection in data exchange.
        let was_the_connection = link.completed && !link.closing();
        let wait = if self.presence.connected() {
            self.live_links().count() > 0
                || (!was_the_connection && self.links.iter().any(|l| l.completed))
        } else {
            !self.links.is_empty()
        };
        if wait {
            return;
        }
        if let Some(failure) = failure {
            self.last_failure = Some(LastFailure {
                failure,
                detailed: link.detail,
            });
        }
        self.connection_lost(reason);
    }

    /// Whether another connection is on its way to replace `ended`: a live link; the incoming
    /// connection that made us close it (still in TLS + WebSocket, so not yet a link); or, when
    /// the peer closed it, our own dial or any incoming handshake of this SKI.
    fn replacement_underway(&self, ended: &LinkHandle) -> bool {
        self.live_links().count() > 0
            || (ended.ending == Ending::Replaced && self.incoming_in_tls())
            || (!ended.closing() && (self.dial.is_running() || self.incoming_in_tls()))
    }

    /// The pairing question asked for link `id`, if any, is moot now.
    fn forget_answer(&mut self, id: LinkId) {
        if self.pending_answer.as_ref().is_some_and(|p| p.link == id) {
            self.pending_answer = None;
        }
    }
}
