//! PIN verification (§13.4.4.3), both roles: each side announces its requirement in
//! `connectionPinState`; a side that requires (or accepts) a PIN receives it in
//! `connectionPinInput` and answers `pinOk` or `connectionPinError`; wrong PINs cost an
//! escalating penalty ([`super::pin_penalty`]) during which input is `busy`.
//!
//! Data exchange opens when this node's own requirement is met (none, optional, or the PIN
//! verified) and the peer's is (none, optional, or `pinOk` for the PIN we sent). A peer whose
//! PIN is optional gets data exchange at once and stays *restricted* until it sent the PIN; PIN
//! messages are then handled in data exchange too.

use std::time::Instant;

use super::codec::DecodeError;
use super::connection::{Connection, PinSide, Stage};
use super::event::{CloseCause, Event};
use super::message::{
    ConnectionPinError, ConnectionPinInput, ConnectionPinState, MessageKind, PinInputPermission,
    PinState, ShipMessage,
};
use super::pin::{Pin, PinParams, PinRequirement, pin_penalty};
use super::state::DetailedState;
use super::timer::Timer;

impl Connection {
    /// Sets this connection's PIN side (our requirement, the PIN we send, the peer's earlier
    /// wrong PINs). Call it before the PIN step, normally right after [`Connection::new`];
    /// without it the connection requires no PIN and has none to send.
    pub fn set_pin(&mut self, params: PinParams) {
        self.pin = PinSide::new(params);
    }

    /// The application gives the PIN to send to the peer (after [`Event::PinRequested`], or
    /// ahead of time). It is sent as soon as the peer accepts input.
    pub fn enter_pin(&mut self, pin: Pin, now: Instant) {
        self.pin.peer_pin = Some(pin);
        self.pin.asked = false;
        self.pin.rejected = false;
        if matches!(self.stage, Stage::Pin | Stage::DataExchange(_)) {
            self.offer_pin(now);
            self.restart_pin_wait(now);
        }
    }

    /// The application has no PIN for the peer. While the peer requires one in the PIN step
    /// the connection fails with [`CloseCause::PinRequired`]; otherwise nothing happens.
    pub fn refuse_pin(&mut self, _now: Instant) {
        self.pin.asked = false;
        if matches!(self.stage, Stage::Pin) && self.pin.peer_state == Some(PinState::Required) {
            self.enter(DetailedState::PinCheckError);
            self.fail(CloseCause::PinRequired(PinState::Required));
        }
    }

    /// Our PIN requirement is optional and the peer has not sent the PIN (yet): data flows,
    /// but the application should treat the peer as restricted (§13.4.4.3).
    pub fn peer_restricted(&self) -> bool {
        matches!(self.pin.requirement, PinRequirement::Optional(_)) && !self.pin.verified
    }

    /// The peer's consecutive wrong PINs, including those of earlier connections.
    pub fn pin_attempts(&self) -> u32 {
        self.pin.attempts
    }

    /// Holds this node's PIN input `busy` until `until`: a penalty decided outside this
    /// connection (an application that limits guessing over several connections, keys or
    /// source addresses together). It works like the connection's own penalty: no PIN is
    /// verified until then, the peer is told `busy` (now, or when the PIN step starts), `ok`
    /// when it ends, and the PIN step's no-progress timer is paused meanwhile. A penalty that
    /// runs as long or longer already, a verified PIN, no PIN requirement, or a time not in the
    /// future change nothing.
    pub fn hold_pin_input(&mut self, until: Instant, now: Instant) {
        if until <= now
            || self.pin.verified
            || self.pin.requirement == PinRequirement::None
            || self
                .pin
                .penalty_until
                .is_some_and(|running| running >= until)
        {
            return;
        }
        let was_active = self.pin.penalty_active(now);
        self.pin.penalty_until = Some(until);
        if !matches!(self.stage, Stage::Pin | Stage::DataExchange(_)) {
            // Before the PIN step: `start_pin` announces it.
            return;
        }
        self.timers.set(Timer::PinPenalty, until);
        self.timers.stop(Timer::PinWait);
        if !was_active {
            self.enter_pin_detail(DetailedState::PinCheckBusyInit);
            self.send_own_pin_state(now);
        }
    }

    // ----- the PIN step -----------------------------------------------------------------------

    /// Protocol handshake done: announce our requirement and wait for the peer's.
    pub(super) fn start_pin(&mut self, now: Instant) {
        self.timers.stop(Timer::ProtocolHandshake);
        self.enter(DetailedState::PinCheckInit);
        if let Some(until) = self.pin.penalty_until.filter(|u| *u > now) {
            // A penalty from an earlier connection still runs.
            self.timers.set(Timer::PinPenalty, until);
        } else {
            self.pin.penalty_until = None;
        }
        self.send_own_pin_state(now);
        self.timers
            .set(Timer::PinState, now + self.config.handshake_wait);
        self.enter(DetailedState::PinCheckListen);
        self.stage = Stage::Pin;
    }

    /// A message in the PIN step.
    pub(super) fn on_pin_step(&mut self, received: Result<ShipMessage, DecodeError>, now: Instant) {
        self.stage = Stage::Pin;
        match received {
            Ok(ShipMessage::ConnectionPinState(state)) => self.on_peer_pin_state(state, now),
            Ok(ShipMessage::ConnectionPinInput(input)) => self.on_pin_input(input, now),
            Ok(ShipMessage::ConnectionPinError(error)) => self.on_pin_error(error, now),
            // The peer's own requirement may be met already (it opened data exchange while
            // ours is not): answer what must be answered, drop its data until we open.
            Ok(ShipMessage::AccessMethodsRequest) if self.pin.peer_state.is_some() => {
                self.answer_access_methods();
            }
            Ok(ShipMessage::Data(_)) if self.pin.peer_state.is_some() => {
                tracing::debug!("data before our PIN requirement is met dropped");
            }
            Err(error) if self.pin.peer_state.is_some() => {
                tracing::debug!(?error, "undecodable message in the PIN step ignored");
            }
            other => self.reject(MessageKind::ConnectionPinState, other),
        }
        self.try_open(now);
    }

    /// A PIN message in data exchange: handled while a PIN is in play (an optional PIN may
    /// arrive late), otherwise unexpected. Returns whether it was handled.
    pub(super) fn on_pin_in_data_exchange(&mut self, message: &ShipMessage, now: Instant) -> bool {
        if !self.pin.in_play() {
            return false;
        }
        match message {
            ShipMessage::ConnectionPinState(state) => self.on_peer_pin_state(*state, now),
            ShipMessage::ConnectionPinInput(input) => self.on_pin_input(input.clone(), now),
            ShipMessage::ConnectionPinError(error) => self.on_pin_error(*error, now),
            _ => return false,
        }
        true
    }

    fn on_peer_pin_state(&mut self, state: ConnectionPinState, now: Instant) {
        self.timers.stop(Timer::PinState);
        self.pin.peer_state = Some(state.pin_state);
        self.pin.peer_busy = state.input_permission == Some(PinInputPermission::Busy);
        match state.pin_state {
            PinState::Required | PinState::Optional => {
                // A requirement (again) means no verdict on a PIN of ours is pending: a peer
                // in its penalty answers input with `busy` and does not verify it.
                self.pin.sent = false;
                if self.pin.peer_busy {
                    self.enter_pin_detail(DetailedState::PinCheckBusyWait);
                } else {
                    self.offer_pin(now);
                }
            }
            PinState::PinOk => {
                if std::mem::take(&mut self.pin.sent) {
                    self.emit(Event::PinAccepted);
                    self.enter_pin_detail(DetailedState::PinAskOk);
                }
            }
            PinState::None => {}
        }
        self.restart_pin_wait(now);
    }

    /// Sends our PIN if the peer takes one now; asks the application when the peer requires
    /// one we do not have.
    fn offer_pin(&mut self, _now: Instant) {
        let Some(peer) = self.pin.peer_state else {
            return;
        };
        if !matches!(peer, PinState::Required | PinState::Optional)
            || self.pin.peer_busy
            || self.pin.sent
        {
            return;
        }
        if let Some(pin) = self.pin.peer_pin.clone() {
            self.send(&ShipMessage::ConnectionPinInput(ConnectionPinInput {
                pin: Some(pin),
            }));
            self.pin.sent = true;
            self.enter_pin_detail(DetailedState::PinAskProcess);
        } else if (peer == PinState::Required || self.pin.rejected) && !self.pin.asked {
            self.pin.asked = true;
            self.enter_pin_detail(DetailedState::PinAskInit);
            self.emit(Event::PinRequested {
                rejected: self.pin.rejected,
            });
        }
    }

    fn on_pin_error(&mut self, error: ConnectionPinError, now: Instant) {
        if !std::mem::take(&mut self.pin.sent) {
            tracing::debug!(
                error = error.error,
                "connectionPinError without a PIN of ours pending ignored"
            );
            return;
        }
        tracing::debug!(error = error.error, "the peer rejected our PIN");
        // Sending the same PIN again cannot help: ask for another.
        self.pin.peer_pin = None;
        self.pin.rejected = true;
        self.pin.asked = false;
        self.offer_pin(now);
        self.restart_pin_wait(now);
    }

    fn on_pin_input(&mut self, input: ConnectionPinInput, now: Instant) {
        let Some(expected) = self.pin.requirement.pin().cloned() else {
            tracing::debug!("a PIN arrived but we require none: ignored");
            return;
        };
        if self.pin.verified {
            tracing::debug!("a PIN arrived after ours was verified: ignored");
            return;
        }
        if self.pin.penalty_active(now) {
            // Not verified while the penalty runs: the answer is `busy` again.
            self.send_own_pin_state(now);
            return;
        }
        if input.pin.as_ref().is_some_and(|pin| expected.matches(pin)) {
            self.pin.verified = true;
            self.pin.attempts = 0;
            self.pin.penalty_until = None;
            self.timers.stop(Timer::PinPenalty);
            self.send(&ShipMessage::ConnectionPinState(ConnectionPinState {
                pin_state: PinState::PinOk,
                input_permission: None,
            }));
            self.emit(Event::PinVerified);
            self.restart_pin_wait(now);
            return;
        }
        self.pin.attempts = self.pin.attempts.saturating_add(1);
        self.send(&ShipMessage::ConnectionPinError(
            ConnectionPinError::WRONG_PIN,
        ));
        let penalty = pin_penalty(self.pin.attempts, &self.config);
        self.emit(Event::PinAttemptFailed {
            attempts: self.pin.attempts,
            penalty,
        });
        match penalty {
            Some(penalty) => {
                self.pin.penalty_until = Some(now + penalty);
                self.timers.set(Timer::PinPenalty, now + penalty);
                self.timers.stop(Timer::PinWait);
                self.enter_pin_detail(DetailedState::PinCheckBusyInit);
                self.send_own_pin_state(now);
            }
            None => self.restart_pin_wait(now),
        }
    }

    /// Our penalty is over: input is `ok` again.
    pub(super) fn on_pin_penalty_over(&mut self, now: Instant) {
        self.pin.penalty_until = None;
        if self.pin.verified || self.pin.requirement == PinRequirement::None {
            return;
        }
        self.send_own_pin_state(now);
        self.enter_pin_detail(DetailedState::PinCheckListen);
        self.restart_pin_wait(now);
    }

    fn send_own_pin_state(&mut self, now: Instant) {
        let pin_state = self.pin.own_state();
        let input_permission = match pin_state {
            PinState::Required | PinState::Optional => Some(if self.pin.penalty_active(now) {
                PinInputPermission::Busy
            } else {
                PinInputPermission::Ok
            }),
            _ => None,
        };
        self.send(&ShipMessage::ConnectionPinState(ConnectionPinState {
            pin_state,
            input_permission,
        }));
    }

    /// Restarts the PIN step's no-progress timer (only in the PIN step, and not while our
    /// penalty runs: its end restarts it).
    fn restart_pin_wait(&mut self, now: Instant) {
        if matches!(self.stage, Stage::Pin) && !self.pin.penalty_active(now) {
            self.timers.set(Timer::PinWait, now + self.config.pin_wait);
        }
    }

    /// A PIN detailed state, entered only during the PIN step (in data exchange the
    /// application state stays Completed).
    fn enter_pin_detail(&mut self, detail: DetailedState) {
        if matches!(self.stage, Stage::Pin) {
            self.enter(detail);
        }
    }

    /// Opens data exchange once both requirements are met.
    fn try_open(&mut self, now: Instant) {
        if !matches!(self.stage, Stage::Pin) {
            return;
        }
        let Some(peer) = self.pin.peer_state else {
            return;
        };
        let own_met =
            !matches!(self.pin.requirement, PinRequirement::Required(_)) || self.pin.verified;
        let peer_met = peer != PinState::Required;
        if !(own_met && peer_met) {
            return;
        }
        self.timers.stop(Timer::PinState);
        self.timers.stop(Timer::PinWait);
        if peer == PinState::Optional && !self.pin.sent {
            self.enter(DetailedState::PinAskRestricted);
        }
        self.enter(DetailedState::PinCheckOk);
        self.start_access_methods(now);
    }
}
