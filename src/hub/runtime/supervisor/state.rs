//! The supervisor's state, as types whose shape rules out what cannot happen: a dial either
//! waits, runs (with the feed for fresh sightings) or does not exist; a replacement exists only
//! while the peer is shown connected; a pairing answer belongs to one link.

use std::net::SocketAddr;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::visible::LinkView;
use crate::hub::callbacks::PairingDecision;
use crate::hub::errors::EndCause;
use crate::hub::runtime::address_book::DialCandidate;
use crate::hub::runtime::admission::UnpairedSlot;
use crate::hub::runtime::dial::Race;
use crate::hub::runtime::handover::{LinkCommand, LinkId};
use crate::hub::runtime::inbox::Inbox;
use crate::hub::runtime::shared::Direction;
use crate::protocol::{ConnectionState, DetailedState};
use crate::transport::TlsSuite;

/// The supervisor's record of one of its links: what it knows of the link task (its state, its
/// flags for arbitration, trust and PIN) and the channels to it.
pub(super) struct LinkHandle {
    pub(super) id: LinkId,
    pub(super) direction: Direction,
    /// When its TCP connection was accepted or dialled.
    pub(super) started: Instant,
    pub(super) remote: SocketAddr,
    pub(super) tls_suite: Option<TlsSuite>,
    /// For a link we dialled: the candidate that worked.
    pub(super) dialled: Option<DialCandidate>,
    /// Commands and the application's data to the link task.
    pub(super) inbox: Inbox<LinkCommand>,
    /// The link's protocol state, as last reported.
    pub(super) state: ConnectionState,
    pub(super) detail: Option<DetailedState>,
    /// Reached data exchange.
    pub(super) completed: bool,
    /// Whether a close was asked of it, and why.
    pub(super) ending: Ending,
    /// Answered the last arbitration ping.
    pub(super) ponged: bool,
    /// Waiting for a user decision (hello pending).
    pub(super) awaiting_trust: bool,
    /// Our PIN is optional and the peer has not sent it (SHIP §13.4.4.3).
    pub(super) restricted: bool,
    /// One of the strangers' slots (an incoming connection of a peer that is not paired):
    /// given back the moment the peer is paired, or with the handle when the link ends.
    pub(super) stranger: Option<UnpairedSlot>,
    /// The peer is not paired (it was not when this connection came in, and has not been
    /// since): the hub's PIN limits that span peers (per source address, in all) apply to it.
    pub(super) guarded: bool,
    /// Auto-accepted while this node requires a PIN: trusted for the handshake, paired (stored)
    /// once its PIN is verified.
    pub(super) provisional: bool,
}

/// Whether a link is on its way out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// Not asked to close.
    Open,
    /// A close was requested (arbitration, unpair, disconnect, shutdown, a refusal).
    Closing,
    /// Closed by us because a newer connection of this SKI replaces it: one still in its TLS
    /// handshake when we decided (§7 rule 1), so not yet a link of this supervisor.
    Replaced,
}

impl LinkHandle {
    /// A close was requested.
    pub(super) fn closing(&self) -> bool {
        self.ending != Ending::Open
    }

    /// An unknown peer waits in hello `pending` for the user's decision.
    pub(super) fn is_pairing_request(&self) -> bool {
        self.awaiting_trust
            && !self.closing()
            && self.state == ConnectionState::ReceivedPairingRequest
    }

    /// What the visible-state derivation looks at.
    pub(super) fn view(&self) -> LinkView {
        LinkView {
            state: self.state,
            detail: self.detail,
            completed: self.completed,
            closing: self.closing(),
            started: self.started,
        }
    }
}

/// The peer's dial loop: wait for the backoff delay → dial → (a link runs) → decide when to
/// dial again.
pub(super) enum DialState {
    /// No dial planned.
    Idle,
    /// The next dial goes out at this instant.
    Waiting(tokio::time::Instant),
    /// A dial attempt runs (the supervisor polls it with the peer's address book).
    Running(Box<Race>),
}

impl DialState {
    /// No dial planned.
    pub(super) fn is_idle(&self) -> bool {
        matches!(self, DialState::Idle)
    }

    /// A dial attempt runs.
    pub(super) fn is_running(&self) -> bool {
        matches!(self, DialState::Running { .. })
    }

    /// When a waiting dial goes out.
    pub(super) fn due(&self) -> Option<tokio::time::Instant> {
        match self {
            DialState::Waiting(at) => Some(*at),
            _ => None,
        }
    }
}

/// Where the settling of double connections stands (§12.2.3, docs/ship.md §7).
#[derive(Default)]
pub(super) struct DoubleConnection {
    /// The smaller-SKI side pinged the older links: it decides when this grace period ends.
    pub(super) grace_until: Option<tokio::time::Instant>,
    /// A double connection was settled lately: if that leaves no connection, the bigger-SKI
    /// side redials at once (§7 rule 3).
    pub(super) settled: bool,
    /// When a client certificate with this SKI last arrived (an incoming TLS handshake).
    pub(super) incoming_seen: Option<tokio::time::Instant>,
}

/// Whether the application sees the peer connected.
pub(super) enum Presence {
    /// Not connected: `connected` was never reported, or `disconnected` followed it.
    Absent,
    /// Connected: the application heard `connected`.
    Connected,
    /// Still connected for the application while a replacement completes its handshake: a
    /// connection in data exchange ended while another was underway (§7 rule 5).
    Replacing(Replacement),
}

/// A replacement underway: until `deadline` the peer stays connected; `reason` (the first
/// connection's end) is reported if the replacement fails.
pub(super) struct Replacement {
    pub(super) deadline: tokio::time::Instant,
    pub(super) reason: EndCause,
}

impl Presence {
    /// The application was told `connected` (and not `disconnected` since).
    pub(super) fn connected(&self) -> bool {
        !matches!(self, Presence::Absent)
    }

    /// A replacement is awaited.
    pub(super) fn replacing(&self) -> bool {
        matches!(self, Presence::Replacing(_))
    }

    /// When the replacement's grace ends.
    pub(super) fn replacement_deadline(&self) -> Option<tokio::time::Instant> {
        match self {
            Presence::Replacing(replacement) => Some(replacement.deadline),
            _ => None,
        }
    }
}

/// The application is being asked whether to pair the peer of `link`.
pub(super) struct PendingAnswer {
    pub(super) link: LinkId,
    pub(super) answer: oneshot::Receiver<PairingDecision>,
}

/// Where the supervisor is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lifecycle {
    /// Dials, admits and keeps links.
    Serving,
    /// The hub shuts down: no dial, every link closing, retire when they are gone.
    Stopping,
}

/// How the last link or dial failed, shown once as the visible state (see `visible.rs`); the
/// state and the words follow from the failure.
#[derive(Debug, Clone)]
pub(super) struct LastFailure {
    pub(super) failure: EndCause,
    /// The detailed state the link's handshake ended in.
    pub(super) detailed: Option<DetailedState>,
}

/// The application's data on its way to the active link: the queue the [`crate::hub::Hub`]
/// fills, and one payload taken from it that waits for room in the link's queue.
pub(super) struct Outgoing {
    pub(super) queue: mpsc::Receiver<Vec<u8>>,
    pub(super) held: Option<Vec<u8>>,
}
