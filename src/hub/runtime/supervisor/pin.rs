//! The supervisor's side of PIN verification (SHIP §13.4.4.3): which PIN a new link sends and
//! requires, the peer's wrong-PIN count and penalty kept across its connections, the hub's
//! limits that span peers for a peer that is not paired (`hub::pin_guard`), pairing a
//! provisional (auto-accepted) peer once its PIN is verified, and asking the application for a
//! PIN.

use std::net::IpAddr;
use std::time::Instant;

use tokio::sync::oneshot;

use super::Supervisor;
use crate::hub::callbacks::{CallbackEvent, PinDecision, PinRequest};
use crate::hub::runtime::clock::now;
use crate::hub::runtime::handover::{LinkCommand, LinkEvent, LinkId};
use crate::protocol::{Pin, PinParams, PinRequirement};

/// What the supervisor remembers about PINs for its peer.
#[derive(Default)]
pub(super) struct PinMemory {
    /// The peer's consecutive wrong PINs, over all its connections since the hub started: a
    /// reconnection does not reset the escalating penalty.
    attempts: u32,
    /// The penalty running for the peer: a new connection starts `busy` until then.
    penalty_until: Option<Instant>,
    /// The application is being asked for a PIN for this link.
    pub(super) answer: Option<(LinkId, oneshot::Receiver<PinDecision>)>,
    /// The link waiting for [`crate::hub::Hub::enter_pin`] (the application said `Ask`).
    waiting: Option<LinkId>,
    /// The PIN the application gave: stored with the pairing once the peer accepts it.
    given: Option<Pin>,
}

impl Supervisor {
    /// The PIN side of a new link: our requirement, the PIN to send (the one the application
    /// gave last, else the one stored for the peer, else the configured default), and
    /// the peer's earlier wrong PINs. For a peer that is not paired (`guard`: the address its
    /// connection came from) the count and the penalty are at least those of the hub's limits
    /// per source address and in all.
    pub(super) fn pin_params(&self, guard: Option<IpAddr>) -> PinParams {
        let config = &self.shared.config;
        let mut params = PinParams::new(config.pin_requirement.clone());
        params.peer_pin = self
            .pin
            .given
            .clone()
            .or_else(|| self.pairing.as_ref().and_then(|p| p.pin.clone()))
            .or_else(|| config.default_peer_pin.clone());
        params.failed_attempts = self.pin.attempts;
        params.penalty_until = self.pin.penalty_until;
        if let Some(ip) = guard
            && config.pin_requirement != PinRequirement::None
        {
            let spanning = self.shared.pin_guard.start(ip, now());
            params.failed_attempts = params.failed_attempts.max(spanning.attempts);
            params.penalty_until = params.penalty_until.max(spanning.until());
            if spanning.address_until.is_some() {
                self.shared.metrics.pin_held(false);
            }
            if spanning.in_all_until.is_some() {
                self.shared.metrics.pin_held(true);
            }
        }
        params
    }

    pub(super) fn handle_pin_event(&mut self, id: LinkId, event: LinkEvent) {
        match event {
            LinkEvent::PinRequested { rejected } => self.ask_pin(id, rejected),
            LinkEvent::PinAccepted => {
                if let (Some(pin), Some(mut peer)) = (self.pin.given.clone(), self.pairing.clone())
                    && peer.pin.as_ref() != Some(&pin)
                {
                    peer.pin = Some(pin);
                    self.pairing = Some(peer.clone());
                    self.store(peer);
                }
            }
            LinkEvent::PinVerified => {
                self.shared.metrics.pin_attempt(true);
                self.pin.attempts = 0;
                self.pin.penalty_until = None;
                if let Some(link) = self.link_mut(id) {
                    let (guarded, provisional, ip) =
                        (link.guarded, link.provisional, link.remote.ip());
                    link.provisional = false;
                    if guarded {
                        self.shared.pin_guard.verified(ip);
                    }
                    if provisional {
                        // Auto-accept with a PIN: the key proved it knows the PIN, so it is
                        // paired now (stored, then its strangers' slot is given back).
                        self.accept_now();
                    }
                }
                self.shared
                    .callbacks
                    .push(CallbackEvent::PinVerified(self.ski));
            }
            LinkEvent::PinAttemptFailed { attempts, penalty } => {
                self.shared.metrics.pin_attempt(false);
                let now = now();
                self.pin.attempts = attempts;
                if let Some(penalty) = penalty {
                    self.pin.penalty_until = Some(now + penalty);
                }
                self.spanning_penalty(id, now, penalty.map(|p| now + p));
                self.shared
                    .callbacks
                    .push(CallbackEvent::PinAttemptFailed(self.ski, attempts, penalty));
            }
            LinkEvent::Restricted(restricted) => {
                if let Some(link) = self.link_mut(id) {
                    link.restricted = restricted;
                }
            }
            _ => {}
        }
    }

    /// A wrong PIN on link `id`: for a peer that is not paired, counted by the hub's limits
    /// that span peers; if they owe a longer penalty than the link's own (`own`), the link is
    /// held `busy` until then.
    fn spanning_penalty(&mut self, id: LinkId, now: Instant, own: Option<Instant>) {
        let Some(link) = self.links.iter().find(|l| l.id == id && l.guarded) else {
            return;
        };
        let after = self.shared.pin_guard.wrong(link.remote.ip(), now);
        let Some(until) = after.until().filter(|until| Some(*until) > own) else {
            return;
        };
        self.shared
            .metrics
            .pin_held(after.in_all_until == Some(until));
        let _ = link.inbox.command(LinkCommand::HoldPin(until));
    }

    fn ask_pin(&mut self, id: LinkId, rejected: bool) {
        if rejected {
            // A PIN the peer refused is not offered again, wherever it came from.
            self.pin.given = None;
        }
        let (answer_tx, answer_rx) = oneshot::channel();
        self.shared.callbacks.push(CallbackEvent::PinRequested(
            PinRequest {
                ski: self.ski,
                ship_id: self.peer_ship_id.clone(),
                rejected,
            },
            answer_tx,
        ));
        self.pin.answer = Some((id, answer_rx));
        self.pin.waiting = None;
    }

    pub(super) fn pin_answered(&mut self, id: LinkId, decision: PinDecision) {
        self.pin.answer = None;
        match decision {
            PinDecision::Pin(pin) => self.give_pin(id, pin),
            PinDecision::Ask => self.pin.waiting = Some(id),
            _ => self.send_pin_command(id, LinkCommand::RefusePin),
        }
    }

    /// [`crate::hub::Hub::enter_pin`]: for the link waiting for it, else offered to the live
    /// links and kept for the next one.
    pub(super) fn pin_entered(&mut self, pin: Pin) {
        let target = self
            .pin
            .waiting
            .take()
            .or_else(|| self.pin.answer.take().map(|(id, _)| id));
        match target {
            Some(id) => self.give_pin(id, pin),
            None => {
                // Ahead of time, or for a peer whose PIN is optional: every live link takes it
                // if its peer accepts input now; later links start with it.
                self.pin.given = Some(pin.clone());
                let ids: Vec<LinkId> = self.live_links().map(|l| l.id).collect();
                for id in ids {
                    self.send_pin_command(id, LinkCommand::EnterPin(pin.clone()));
                }
            }
        }
    }

    /// [`crate::hub::Hub::refuse_pin`].
    pub(super) fn pin_refused(&mut self) {
        let target = self
            .pin
            .waiting
            .take()
            .or_else(|| self.pin.answer.take().map(|(id, _)| id));
        if let Some(id) = target {
            self.send_pin_command(id, LinkCommand::RefusePin);
        }
    }

    fn give_pin(&mut self, id: LinkId, pin: Pin) {
        self.pin.given = Some(pin.clone());
        self.send_pin_command(id, LinkCommand::EnterPin(pin));
    }

    fn send_pin_command(&mut self, id: LinkId, command: LinkCommand) {
        if let Some(link) = self.link_mut(id) {
            let _ = link.inbox.command(command);
        }
    }
}

/// Waits for the application's answer to a PIN question (a dropped question counts as
/// `Refuse`).
pub(super) async fn wait_pin_answer(
    pending: &mut Option<(LinkId, oneshot::Receiver<PinDecision>)>,
) -> Option<(LinkId, PinDecision)> {
    match pending {
        Some((id, rx)) => {
            let answer = rx.await.unwrap_or(PinDecision::Refuse);
            Some((*id, answer))
        }
        None => std::future::pending().await,
    }
}
