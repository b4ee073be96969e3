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
//! twin completes — no `disconnected`, no second `connected` (docs/ship.md §7 rule 5).

mod links;
mod pin;
mod visible;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use futures_util::future::BoxFuture;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::Shared;
use super::address_book::{AddressBook, AddressSource, DEFAULT_SHIP_PATH, DialCandidate};
use super::arbitration::{self, Arbitration, LinkFacts};
use super::backoff::Backoff;
use super::callbacks::{CallbackEvent, Failure, PairingDecision, PairingRequest, StateDetail};
use super::dial::{self, DialError, Dialled};
use super::inbound::PeerBudget;
use super::link::{
    LinkChannels, LinkCommand, LinkEnd, LinkEvent, LinkId, LinkSetup, now, sleep_until_opt,
};
use super::trust::PairedPeer;
use super::{ConnectionInfo, Direction, DisconnectReason, PeerStatus};
use crate::protocol::{
    self, CloseReason, ConnectionParams, ConnectionState, DetailedState, Role, Trust,
};
use crate::transport::TlsSuite;
use crate::{ShipId, Ski};

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
    /// The negotiated TLS cipher suite.
    pub(crate) tls_suite: Option<TlsSuite>,
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
    /// The peer is paired now (stored in the trust store already). `dial_now`: the user just
    /// paired it, so the first dial goes out at once; pairings restored at start-up take the
    /// first backoff tier instead, so that a restarted hub does not dial every peer at once.
    Paired { peer: PairedPeer, dial_now: bool },
    /// The pairing was removed (from the trust store already).
    Unpaired,
    /// The user refused the pending pairing request.
    Deny,
    /// Close the peer's connections (a paired peer is redialled by the backoff rules).
    Disconnect,
    /// The application's PIN for the peer (SHIP §13.4.4.3).
    EnterPin(crate::protocol::Pin),
    /// The application has no PIN for the peer.
    RefusePin,
    /// A configured address to dial this peer at (with the WebSocket path).
    StaticAddress(SocketAddr, String),
    /// Discovery sees the peer: its instance, host name (for SNI), addresses and TXT path.
    Sighting {
        instance: String,
        host: String,
        addresses: Vec<SocketAddr>,
        path: String,
    },
    /// Discovery lost the peer's announcement. Its addresses stay as a last resort (§8).
    SightingLost,
}

struct Link {
    id: LinkId,
    direction: Direction,
    started: Instant,
    remote: SocketAddr,
    tls_suite: Option<TlsSuite>,
    /// For a link we dialled: the candidate that worked.
    dialled: Option<DialCandidate>,
    channels: LinkChannels,
    state: ConnectionState,
    detail: Option<DetailedState>,
    completed: bool,
    /// A close was requested (arbitration, unpair, disconnect, shutdown).
    closing: bool,
    /// Closed by us because a newer connection of this SKI replaces it: one still in its TLS
    /// handshake when we decided (§7 rule 1), so not yet a link of this supervisor.
    replaced: bool,
    /// Answered the last arbitration ping.
    ponged: bool,
    /// Waiting for a user decision (hello pending).
    awaiting_trust: bool,
    /// Our PIN is optional and the peer has not sent it (SHIP §13.4.4.3).
    restricted: bool,
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

/// How the last link or dial failed, shown once as the visible state (see `visible.rs`); the
/// state and the words follow from the failure.
#[derive(Debug, Clone)]
pub(super) struct LastFailure {
    pub(super) failure: Failure,
    /// The detailed state the link's handshake ended in.
    pub(super) detailed: Option<DetailedState>,
}

pub(crate) struct Supervisor {
    ski: Ski,
    shared: Arc<Shared>,
    commands: mpsc::UnboundedReceiver<Box<Command>>,
    status: watch::Sender<PeerStatus>,
    data_rx: mpsc::Receiver<Vec<u8>>,
    held: Option<Vec<u8>>,
    /// The peer's inbound data budget, shared by its links (docs/architecture.md).
    inbound: Arc<PeerBudget>,
    pairing: Option<PairedPeer>,
    peer_ship_id: Option<ShipId>,
    /// Every address known for this peer (one SKI's book).
    addresses: AddressBook,
    /// DNS-form host names (SNI) of discovered addresses.
    hosts: HashMap<IpAddr, String>,
    links: Vec<Link>,
    next_link: LinkId,
    link_events_tx: mpsc::UnboundedSender<(LinkId, LinkEvent)>,
    link_events: mpsc::UnboundedReceiver<(LinkId, LinkEvent)>,
    backoff: Backoff,
    rng: StdRng,
    dial: Dial,
    grace_deadline: Option<tokio::time::Instant>,
    pending_answer: Option<(LinkId, oneshot::Receiver<PairingDecision>)>,
    /// The application accepted a pairing request: its pairing is being stored (on the
    /// blocking pool, as the trust store may touch the disk); the peer is paired once it is.
    accepting: Option<JoinHandle<Result<PairedPeer, super::HubError>>>,
    visible: Visible,
    /// The last link ended with this (shown once as Error / RemoteDeniedTrust).
    last_failure: Option<LastFailure>,
    /// A double connection was settled lately: if that leaves no connection, the bigger-SKI
    /// side redials at once (§7 rule 3).
    settled_double: bool,
    /// A connection in data exchange ended while a replacement was underway: until this
    /// deadline the peer stays "connected"; the reason is reported if the replacement fails.
    replacing: Option<(tokio::time::Instant, DisconnectReason)>,
    /// When a client certificate with this SKI last arrived (an incoming TLS handshake).
    incoming_seen: Option<tokio::time::Instant>,
    /// The next dial goes out without a backoff delay (a fresh pairing by the user).
    dial_soon: bool,
    /// Hands fresh sightings to the running dial attempt, which tries them next.
    dial_feed: Option<mpsc::UnboundedSender<Vec<(DialCandidate, String)>>>,
    stopping: bool,
    /// PIN verification: attempts, penalty, the application's PIN (SHIP §13.4.4.3).
    pin: pin::PinMemory,
}

impl Link {
    /// An unknown peer waits in hello `pending` for the user's decision.
    fn is_pairing_request(&self) -> bool {
        self.awaiting_trust
            && !self.closing
            && self.state == ConnectionState::ReceivedPairingRequest
    }
}

impl Supervisor {
    pub(crate) fn new(
        ski: Ski,
        shared: Arc<Shared>,
        commands: mpsc::UnboundedReceiver<Box<Command>>,
        status: watch::Sender<PeerStatus>,
        data_rx: mpsc::Receiver<Vec<u8>>,
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
            data_rx,
            held: None,
            inbound,
            addresses,
            hosts: HashMap::new(),
            links: Vec::new(),
            next_link: 0,
            link_events_tx,
            link_events,
            backoff,
            rng: StdRng::seed_from_u64(seed),
            dial: Dial::Idle,
            grace_deadline: None,
            pending_answer: None,
            accepting: None,
            visible: Visible {
                state: ConnectionState::None,
                connected: false,
            },
            last_failure: None,
            settled_double: false,
            replacing: None,
            incoming_seen: None,
            dial_soon: false,
            dial_feed: None,
            stopping: false,
            pin: pin::PinMemory::default(),
        }
    }

    /// The supervisor's task. Returns when the peer needs no owner any more (not paired, no
    /// link) or the hub shut down.
    pub(crate) async fn run(mut self) {
        self.load_pairing().await;
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
            let dial_wait = match &self.dial {
                Dial::Waiting(at) => Some(*at),
                _ => None,
            };
            let active_data = self.active_link().map(|l| l.channels.data.clone());
            let stop = self.shared.stop.clone();
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(command) => self.handle_command(*command),
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
                stored = join_accepting(&mut self.accepting) => self.acceptance_stored(stored),
                Some((id, decision)) = pin::wait_pin_answer(&mut self.pin.answer) => {
                    self.pin_answered(id, decision)
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

    /// Learns the peer's pairing before any other command is handled. A supervisor created by
    /// a pairing (restored at start, or made by the user) gets the record with that command;
    /// any other reads it from the trust store, here on the blocking pool, never in
    /// [`super::Shared::route`]: that holds the registry lock, and a slow trust store must not
    /// stall every other peer's routing and the [`super::Hub`] methods.
    async fn load_pairing(&mut self) {
        let first = self.commands.try_recv().ok();
        if !first
            .as_deref()
            .is_some_and(|command| matches!(command, Command::Paired { .. }))
        {
            self.read_pairing().await;
        }
        if let Some(command) = first {
            self.handle_command(*command);
        }
    }

    async fn read_pairing(&mut self) {
        let trust = self.shared.trust.clone();
        let ski = self.ski;
        let read = tokio::task::spawn_blocking(move || trust.get(&ski));
        let pairing = tokio::select! {
            result = read => match result {
                Ok(Ok(pairing)) => pairing,
                Ok(Err(error)) => {
                    tracing::warn!(%ski, %error, "could not read the pairing");
                    None
                }
                Err(error) => {
                    tracing::warn!(%ski, %error, "reading the pairing panicked");
                    None
                }
            },
            _ = self.shared.abort.cancelled() => None,
        };
        let Some(peer) = pairing else {
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

    fn handle_command(&mut self, command: Command) {
        match command {
            Command::Incoming(new) => {
                // The TLS handshake that was announced early has become this link.
                self.incoming_seen = None;
                self.add_link(new, Direction::Incoming, None);
            }
            Command::ClientCertificateSeen => {
                self.incoming_seen = Some(tokio::time::Instant::now());
                if self.we_decide() && self.live_links().count() > 0 {
                    tracing::debug!(ski = %self.ski, "second connection in TLS: closing the older");
                    self.cancel_dial();
                    let older: Vec<LinkId> = self.live_links().map(|l| l.id).collect();
                    for id in older {
                        if let Some(link) = self.link_mut(id) {
                            link.replaced = true;
                        }
                        self.close_link(id, CloseReason::Unspecific);
                    }
                    self.settled_double = true;
                    self.shared.metrics.double_connection_replaced();
                }
            }
            Command::Paired { peer, dial_now } => self.paired(peer, dial_now),
            Command::Unpaired => {
                self.pairing = None;
                // A later pairing starts afresh (the device may have been replaced).
                self.peer_ship_id = None;
                self.cancel_dial();
                self.backoff.reset();
                let ids: Vec<LinkId> = self.links.iter().map(|l| l.id).collect();
                for id in ids {
                    self.close_link(id, CloseReason::RemovedConnection);
                }
            }
            Command::Deny => {
                let waiting = self.links_awaiting_trust();
                for id in waiting {
                    self.deny_link(id);
                }
            }
            Command::EnterPin(pin) => self.pin_entered(pin),
            Command::RefusePin => self.pin_refused(),
            Command::Disconnect => {
                let ids: Vec<LinkId> = self.live_links().map(|l| l.id).collect();
                for id in ids {
                    self.close_link(id, CloseReason::Unspecific);
                }
            }
            Command::StaticAddress(address, path) => {
                if let Err(error) = self.addresses.add_static(self.ski, address, &path) {
                    tracing::warn!(ski = %self.ski, %error, "static address not usable");
                }
                self.schedule_dial();
            }
            Command::Sighting {
                instance,
                host,
                addresses,
                path,
            } => {
                for address in &addresses {
                    self.hosts.insert(address.ip(), host.clone());
                }
                if let Err(error) = self
                    .addresses
                    .record_sighting(self.ski, &instance, addresses, &path)
                {
                    tracing::debug!(ski = %self.ski, %error, "sighting not usable");
                }
                self.feed_running_dial(&instance, &host);
                self.schedule_dial();
            }
            Command::SightingLost => {
                let instances: Vec<String> = self
                    .addresses
                    .dial_candidates(&self.ski)
                    .into_iter()
                    .filter_map(|c| match c.source {
                        AddressSource::Discovered { instance } => Some(instance),
                        _ => None,
                    })
                    .collect();
                for instance in instances {
                    self.addresses.withdraw_instance(&instance);
                }
            }
        }
        self.publish_addresses();
        self.refresh_visible();
    }

    // ----- dialling ---------------------------------------------------------------------

    /// Schedules the next dial of a paired peer. Without an address to dial (a peer that only
    /// ever dialled in: the address it came from has no listening port) nothing is scheduled:
    /// the peer waits quietly in Queued until an address is learnt (a sighting, a static
    /// address, a pairing with a last address), which calls this again.
    fn schedule_dial(&mut self) {
        if self.stopping
            || self.pairing.is_none()
            || self.addresses.dial_candidates(&self.ski).is_empty()
            || !matches!(self.dial, Dial::Idle)
            || self.live_links().count() > 0
        {
            return;
        }
        let delay = if std::mem::take(&mut self.dial_soon) {
            std::time::Duration::ZERO
        } else {
            self.backoff.next_delay(&mut self.rng)
        };
        self.dial = Dial::Waiting(tokio::time::Instant::now() + delay);
    }

    fn start_dial(&mut self) {
        if self.live_links().count() > 0 || self.pairing.is_none() || self.stopping {
            self.dial = Dial::Idle;
            return;
        }
        let candidates = self.addresses.dial_candidates(&self.ski);
        if candidates.is_empty() {
            // Nothing to dial (see `schedule_dial`): not a failure.
            self.dial = Dial::Idle;
            return;
        }
        let shared = self.shared.clone();
        let ski = self.ski;
        self.shared.metrics.dial_attempt();
        let (feed, more) = mpsc::unbounded_channel();
        self.dial_feed = Some(feed);
        let handle = self.shared.tracker.spawn(dial::dial(
            shared,
            ski,
            candidates,
            self.hosts.clone(),
            more,
        ));
        self.dial = Dial::Running(handle);
    }

    /// A running dial attempt also tries the addresses of a fresh sighting, next.
    fn feed_running_dial(&self, instance: &str, host: &str) {
        let (Dial::Running(_), Some(feed)) = (&self.dial, &self.dial_feed) else {
            return;
        };
        let fresh: Vec<(DialCandidate, String)> = self
            .addresses
            .dial_candidates(&self.ski)
            .into_iter()
            .filter(
                |c| matches!(&c.source, AddressSource::Discovered { instance: i } if i == instance),
            )
            .map(|c| (c, host.to_owned()))
            .collect();
        if !fresh.is_empty() {
            let _ = feed.send(fresh);
        }
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
                let new = NewLink {
                    runner: dialled.runner,
                    remote: dialled.candidate.address,
                    tls_suite: dialled.tls_suite,
                    started: dialled.started,
                };
                self.add_link(new, Direction::Outgoing, Some(dialled.candidate));
            }
            Err(error) => {
                tracing::debug!(ski = %self.ski, %error, "dial failed");
                let error = Arc::new(error);
                let failure = Failure::Dial(error.clone());
                self.shared.metrics.failure(failure.metric());
                self.last_failure = Some(LastFailure {
                    failure,
                    detailed: None,
                });
                if self.replacing.is_some() && self.links.is_empty() && !self.incoming_in_tls() {
                    self.connection_lost(DisconnectReason::Dial(error));
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
        // An acceptance being stored makes the peer paired: wait for it (unless stopping).
        let idle = self.links.is_empty()
            && matches!(self.dial, Dial::Idle)
            && (self.stopping || (self.pairing.is_none() && self.accepting.is_none()));
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
    /// close does not lose data that was accepted by [`super::Hub::send_data`].
    fn flush_data_to(&mut self, id: LinkId) {
        let Some(link) = self.links.iter().find(|l| l.id == id) else {
            return;
        };
        let sender = link.channels.data.clone();
        for payload in self
            .held
            .take()
            .into_iter()
            .chain(std::iter::from_fn(|| self.data_rx.try_recv().ok()))
        {
            if sender.try_send(payload).is_err() {
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

    fn live_links(&self) -> impl Iterator<Item = &Link> {
        self.links.iter().filter(|l| !l.closing)
    }

    fn link_mut(&mut self, id: LinkId) -> Option<&mut Link> {
        self.links.iter_mut().find(|l| l.id == id)
    }

    /// The newest live link in data exchange: where outgoing data goes.
    fn active_link(&self) -> Option<&Link> {
        self.live_links()
            .filter(|l| l.completed)
            .max_by_key(|l| l.started)
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

/// The application's answer; a refusal if none will come (the callback panicked, or the
/// dispatcher stopped).
async fn wait_answer(
    pending: &mut Option<(LinkId, oneshot::Receiver<PairingDecision>)>,
) -> Option<(LinkId, PairingDecision)> {
    match pending {
        Some((id, rx)) => {
            let answer = rx.await.unwrap_or(PairingDecision::Refuse);
            Some((*id, answer))
        }
        None => std::future::pending().await,
    }
}

async fn join_accepting(
    accepting: &mut Option<JoinHandle<Result<PairedPeer, super::HubError>>>,
) -> Result<PairedPeer, String> {
    match accepting {
        Some(handle) => match handle.await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(error) => Err(format!("storing the pairing panicked: {error}")),
        },
        None => std::future::pending().await,
    }
}

async fn reserve(sender: Option<&mpsc::Sender<Vec<u8>>>) -> Option<mpsc::Permit<'_, Vec<u8>>> {
    match sender {
        Some(sender) => sender.reserve().await.ok(),
        None => std::future::pending().await,
    }
}
