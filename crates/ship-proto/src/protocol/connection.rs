//! [`Connection`]: the public face of the sans-IO handshake machine, its queues and its close
//! bookkeeping. The per-state message handling lives in `handshake.rs` and `hello.rs`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde_json::value::RawValue;

use crate::ShipId;

use super::codec;
use super::config::{ConnectionParams, ProtocolConfig, Role, Trust};
use super::event::{CloseCause, Event, PeerCloseReason, SendDataError, Transmit};
use super::message::{
    ClosePhase, CloseReason, ConnectionClose, Data, PinState, ProtocolHandshake, ShipMessage,
};
use super::pin::{Pin, PinParams, PinRequirement};
use super::state::{ConnectionState, DetailedState};
use super::timer::{Timer, TimerTable};

/// One SHIP connection's handshake and data exchange, without IO, clock or randomness.
///
/// See the [module documentation](super) for the call order.
#[derive(Debug)]
pub struct Connection {
    pub(super) role: Role,
    pub(super) local_ship_id: ShipId,
    pub(super) trust: Trust,
    pub(super) known_peer_ship_id: Option<ShipId>,
    pub(super) config: ProtocolConfig,
    pub(super) stage: Stage,
    app_state: ConnectionState,
    detail: DetailedState,
    pub(super) timers: TimerTable,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    pub(super) peer_ship_id: Option<ShipId>,
    /// Set once the final [`Transmit::Close`] was polled or the transport closed.
    closed: bool,
    /// The application denied trust before hello started: hello opens with `aborted`.
    pub(super) denied_before_hello: bool,
    /// PIN verification (§13.4.4.3).
    pub(super) pin: PinSide,
}

/// The handshake stage, named for what it waits for; each holds only its own data.
#[derive(Debug)]
pub(super) enum Stage {
    /// Server: the client's CMI. Client: the server's CMI reply (§13.4.3).
    ExpectCmi,
    /// The peer's hello (§13.4.4.1).
    ExpectHello(Hello),
    /// Server: the client's `announceMax` (§13.4.4.2).
    ExpectAnnounceMax,
    /// Client: the server's `select`.
    ExpectSelect,
    /// Server: the client's echo of our `select`.
    ExpectSelectEcho { selected: ProtocolHandshake },
    /// The PIN step (§13.4.4.3): the peer's `connectionPinState`, then PINs either way until
    /// both requirements are met (`pin_check.rs`).
    Pin,
    /// Data exchange (§13.4.5), access methods in parallel (§13.4.6).
    DataExchange(AccessMethodsProgress),
    /// We announced the close and wait for the confirm (§13.4.7).
    ExpectCloseConfirm { reason: CloseReason },
    /// Hello was aborted (by us: we close after the abort delay; by the peer: we give it
    /// twice that delay to close first).
    AbortDelay {
        cause: CloseCause,
        state: ConnectionState,
        detail: DetailedState,
    },
    /// Nothing more happens.
    Closed,
}

/// Our side and the peer's side of hello.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hello {
    pub(super) local: LocalHello,
    pub(super) peer_ready: bool,
}

/// Our hello phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LocalHello {
    Ready,
    Pending,
}

/// Whether the peer has answered our `accessMethodsRequest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AccessMethodsProgress {
    Requested,
    Answered,
}

/// The PIN bookkeeping of one connection (kept after the PIN step for optional PINs).
#[derive(Debug, Default)]
pub(super) struct PinSide {
    /// This node's requirement.
    pub(super) requirement: PinRequirement,
    /// The peer sent our PIN.
    pub(super) verified: bool,
    /// The PIN we send when the peer asks for one.
    pub(super) peer_pin: Option<Pin>,
    /// The peer's consecutive wrong PINs.
    pub(super) attempts: u32,
    /// Our penalty runs until then: input is `busy`.
    pub(super) penalty_until: Option<Instant>,
    /// The peer's last PIN state, once one arrived.
    pub(super) peer_state: Option<PinState>,
    /// The peer announced `inputPermission` `busy`.
    pub(super) peer_busy: bool,
    /// A PIN of ours awaits the peer's verdict.
    pub(super) sent: bool,
    /// The application was asked for a PIN and has not answered.
    pub(super) asked: bool,
    /// The peer rejected the last PIN we sent.
    pub(super) rejected: bool,
}

impl PinSide {
    pub(super) fn new(params: PinParams) -> Self {
        PinSide {
            requirement: params.requirement,
            peer_pin: params.peer_pin,
            attempts: params.failed_attempts,
            penalty_until: params.penalty_until,
            ..PinSide::default()
        }
    }

    /// Our `pinState`.
    pub(super) fn own_state(&self) -> PinState {
        match self.requirement {
            PinRequirement::None => PinState::None,
            _ if self.verified => PinState::PinOk,
            PinRequirement::Required(_) => PinState::Required,
            PinRequirement::Optional(_) => PinState::Optional,
        }
    }

    pub(super) fn penalty_active(&self, now: Instant) -> bool {
        self.penalty_until.is_some_and(|until| until > now)
    }

    /// Whether PIN messages belong to this connection at all (otherwise, in data exchange, they
    /// are unexpected as before PIN verification existed).
    pub(super) fn in_play(&self) -> bool {
        self.requirement != PinRequirement::None
            || matches!(
                self.peer_state,
                Some(PinState::Required | PinState::Optional | PinState::PinOk)
            )
    }
}

impl Connection {
    /// Starts a connection. A client queues its CMI at once (§13.4.3); both roles start the
    /// CMI timer.
    pub fn new(params: ConnectionParams, now: Instant) -> Self {
        let mut connection = Connection {
            role: params.role,
            local_ship_id: params.local_ship_id,
            trust: params.trust,
            known_peer_ship_id: params.known_peer_ship_id,
            config: params.config,
            stage: Stage::ExpectCmi,
            app_state: ConnectionState::Initiated,
            detail: DetailedState::CmiInitStart,
            timers: TimerTable::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            peer_ship_id: None,
            closed: false,
            denied_before_hello: false,
            pin: PinSide::default(),
        };
        connection
            .timers
            .set(Timer::Cmi, now + connection.config.cmi_timeout);
        match connection.role {
            Role::Client => {
                connection.enter(DetailedState::CmiClientSend);
                connection.send(&ShipMessage::Cmi);
                connection.enter(DetailedState::CmiClientWait);
            }
            Role::Server => connection.enter(DetailedState::CmiServerWait),
        }
        connection
    }

    /// Feeds one complete WebSocket binary message from the peer.
    ///
    /// A `connectionClose` `announce` is accepted even where the codec refuses it for a value
    /// SHIP does not define (a reason such as "User close", a `maxTime` that is no number): the
    /// peer wants to close, so we confirm and close, and report the reason as received
    /// ([`super::PeerCloseReason`]).
    pub fn handle_message(&mut self, message: &[u8], now: Instant) {
        let received = codec::decode(message);
        let announce = match &received {
            Ok(ShipMessage::ConnectionClose(ConnectionClose {
                phase: ClosePhase::Announce,
                reason,
                ..
            })) => Some(reason.map(PeerCloseReason::Known)),
            Ok(_) => None,
            Err(_) => codec::lenient_close_announce(message),
        };
        if let Some(reason) = announce
            && self.on_close_announce(reason)
        {
            return;
        }
        let stage = std::mem::replace(&mut self.stage, Stage::Closed);
        match stage {
            Stage::Closed | Stage::AbortDelay { .. } => {
                tracing::debug!(?received, "message after the end of the handshake ignored");
                self.stage = stage;
            }
            Stage::ExpectCmi => self.on_cmi(received, now),
            Stage::ExpectHello(hello) => self.on_hello(hello, received, now),
            Stage::ExpectAnnounceMax => self.on_announce_max(received, now),
            Stage::ExpectSelect => self.on_select(received, now),
            Stage::ExpectSelectEcho { selected } => self.on_select_echo(selected, received, now),
            Stage::Pin => self.on_pin_step(received, now),
            Stage::DataExchange(progress) => self.on_data_exchange(progress, received, now),
            Stage::ExpectCloseConfirm { reason } => self.on_close_confirm(reason, received),
        }
    }

    /// Fires every timer whose deadline is at or before `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(timer) = self.timers.take_expired(now) {
            self.on_timer(timer, now);
        }
    }

    /// The socket ended under us: nothing more can be sent. Emits [`Event::Closed`] unless it
    /// was already emitted.
    pub fn handle_transport_closed(&mut self, _now: Instant) {
        if self.closed {
            return;
        }
        let stage = std::mem::replace(&mut self.stage, Stage::Closed);
        match stage {
            Stage::Closed => {}
            Stage::AbortDelay {
                cause,
                state,
                detail,
            } => self.finish(cause, state, Some(detail)),
            Stage::ExpectHello(_) => self.finish(
                CloseCause::TransportClosed,
                ConnectionState::RemoteDeniedTrust,
                None,
            ),
            Stage::ExpectCloseConfirm { reason } => {
                self.finish(CloseCause::LocalClose(reason), ConnectionState::None, None);
            }
            Stage::DataExchange(_) => {
                self.finish(CloseCause::TransportClosed, ConnectionState::None, None);
            }
            _ => self.fail(CloseCause::TransportClosed),
        }
        self.transmits.clear();
        self.closed = true;
    }

    /// The application trusts the peer: while hello is pending we switch to `ready`
    /// (§13.4.4.1); before hello, we will start `ready`. Otherwise nothing happens.
    pub fn approve_trust(&mut self, now: Instant) {
        let stage = std::mem::replace(&mut self.stage, Stage::Closed);
        match stage {
            Stage::ExpectCmi => {
                self.trust = Trust::Trusted;
                self.stage = stage;
            }
            Stage::ExpectHello(hello) if hello.local == LocalHello::Pending => {
                self.trust = Trust::Trusted;
                self.become_ready(hello, now);
            }
            stage => self.stage = stage,
        }
    }

    /// The application does not trust the peer: during hello we send `aborted` and close
    /// with 4452 after [`ProtocolConfig::abort_close_delay`]; before hello (CMI still
    /// running) the same happens as soon as hello starts, so the peer is told in SHIP terms
    /// (§13.4.4.1) rather than seeing a bare close; after hello we announce the close with
    /// `removedConnection` (TC_SHIP_TERM_001).
    pub fn deny_trust(&mut self, now: Instant) {
        let stage = std::mem::replace(&mut self.stage, Stage::Closed);
        match stage {
            Stage::ExpectCmi => {
                self.denied_before_hello = true;
                self.stage = stage;
            }
            Stage::ExpectHello(_) => {
                self.abort_hello(CloseCause::LocalDeniedTrust, ConnectionState::None, now)
            }
            stage => {
                self.stage = stage;
                self.close(CloseReason::RemovedConnection, now);
            }
        }
    }

    /// Queues a data message (§13.4.5) with `payload` (JSON text, usually SPINE) as its
    /// `payload`, verbatim. Data may flow once the PIN step is done, also while our
    /// access-methods request is still unanswered (TC_SHIP_AMDATA_002).
    pub fn send_data(&mut self, payload: &[u8], _now: Instant) -> Result<(), SendDataError> {
        match self.stage {
            Stage::DataExchange(_) => {}
            Stage::ExpectCloseConfirm { .. } | Stage::AbortDelay { .. } | Stage::Closed => {
                return Err(SendDataError::Closed);
            }
            _ => return Err(SendDataError::NotReady(self.app_state)),
        }
        let text = std::str::from_utf8(payload)
            .map_err(|_| SendDataError::NotJson("not UTF-8".to_owned()))?;
        let payload: Box<RawValue> =
            serde_json::from_str(text).map_err(|e| SendDataError::NotJson(e.to_string()))?;
        self.send(&ShipMessage::Data(Data {
            protocol_id: Data::SPINE_PROTOCOL_ID.to_owned(),
            payload,
            extension: None,
        }));
        Ok(())
    }

    /// Closes gracefully (§13.4.7): everything queued so far is transmitted first, then
    /// `connectionClose` `announce` with `maxTime` = [`ProtocolConfig::close_max_time`]; the
    /// WebSocket close follows on the peer's confirm or when `maxTime` has passed. Before the
    /// CMI is done there is no SHIP channel yet: the connection closes at once.
    pub fn close(&mut self, reason: CloseReason, now: Instant) {
        match self.stage {
            Stage::Closed | Stage::AbortDelay { .. } | Stage::ExpectCloseConfirm { .. } => {}
            Stage::ExpectCmi => {
                self.finish(CloseCause::LocalClose(reason), ConnectionState::None, None)
            }
            _ => {
                let max_time = self.config.close_max_time;
                self.send(&ShipMessage::ConnectionClose(ConnectionClose {
                    phase: ClosePhase::Announce,
                    max_time: Some(millis(max_time)),
                    reason: Some(reason),
                }));
                self.timers.clear();
                self.timers.set(Timer::CloseConfirm, now + max_time);
                self.stage = Stage::ExpectCloseConfirm { reason };
            }
        }
    }

    /// The next thing to do on the WebSocket, in order.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let transmit = self.transmits.pop_front()?;
        if matches!(transmit, Transmit::Close { .. }) {
            self.closed = true;
            self.transmits.clear();
        }
        Some(transmit)
    }

    /// When to call [`Connection::handle_timeout`] next: the earliest running timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        self.timers.next()
    }

    /// The next event for the application, in order.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The application state.
    pub fn state(&self) -> ConnectionState {
        self.app_state
    }

    /// The detailed protocol state.
    pub fn detailed_state(&self) -> DetailedState {
        self.detail
    }

    /// The peer's SHIP ID, once its `accessMethods` arrived.
    pub fn peer_ship_id(&self) -> Option<&ShipId> {
        self.peer_ship_id.as_ref()
    }

    /// Our role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// True once nothing more will happen: the final [`Transmit::Close`] was polled or the
    /// transport closed.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    // -----------------------------------------------------------------------------------------
    // plumbing shared by the handlers

    /// Enters a detailed state and emits the change.
    pub(super) fn enter(&mut self, detail: DetailedState) {
        self.set_state(detail.connection_state(), detail);
    }

    fn set_state(&mut self, state: ConnectionState, detail: DetailedState) {
        if (state, detail) != (self.app_state, self.detail) {
            self.app_state = state;
            self.detail = detail;
            self.events.push_back(Event::StateChanged { state, detail });
        }
    }

    pub(super) fn send(&mut self, message: &ShipMessage) {
        tracing::trace!(kind = %message.kind(), "send");
        self.transmits
            .push_back(Transmit::Message(codec::encode(message)));
    }

    pub(super) fn emit(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// Ends with an error: state Error, WebSocket close 4001 (4450 for a SHIP ID mismatch).
    pub(super) fn fail(&mut self, cause: CloseCause) {
        self.finish(cause, ConnectionState::Error, Some(DetailedState::Error));
    }

    /// Ends the connection: stops all timers, reports the final state, queues the WebSocket
    /// close and emits [`Event::Closed`].
    pub(super) fn finish(
        &mut self,
        cause: CloseCause,
        state: ConnectionState,
        detail: Option<DetailedState>,
    ) {
        tracing::debug!(?cause, "connection ends");
        self.timers.clear();
        self.stage = Stage::Closed;
        self.set_state(state, detail.unwrap_or(self.detail));
        let mut reason = cause.to_string();
        truncate_to(&mut reason, 123);
        self.transmits.push_back(Transmit::Close {
            code: close_code(&cause),
            reason,
        });
        self.events.push_back(Event::Closed(cause));
    }

    /// A `connectionClose` `announce` arrived. Returns whether it was handled here.
    fn on_close_announce(&mut self, reason: Option<PeerCloseReason>) -> bool {
        let confirm = ShipMessage::ConnectionClose(ConnectionClose {
            phase: ClosePhase::Confirm,
            max_time: None,
            reason: None,
        });
        let (cause, state) = match &self.stage {
            Stage::ExpectCmi | Stage::Closed | Stage::AbortDelay { .. } => return false,
            Stage::ExpectCloseConfirm { reason } => {
                (CloseCause::LocalClose(*reason), ConnectionState::None)
            }
            Stage::ExpectHello(_) => (
                CloseCause::RemoteClosed { reason },
                ConnectionState::RemoteDeniedTrust,
            ),
            _ => (CloseCause::RemoteClosed { reason }, ConnectionState::None),
        };
        self.send(&confirm);
        self.finish(cause, state, None);
        true
    }
}

/// The WebSocket close code for a cause (docs/ship.md §3).
fn close_code(cause: &CloseCause) -> u16 {
    match cause {
        CloseCause::RemoteClosed { .. }
        | CloseCause::LocalClose(_)
        | CloseCause::RemoteDeniedTrust
        | CloseCause::TransportClosed => 1000,
        CloseCause::ShipIdMismatch { .. } => 4450,
        CloseCause::LocalDeniedTrust
        | CloseCause::PeerWaitTooShort { .. }
        | CloseCause::Timeout(
            Timer::HelloWait | Timer::HelloProlongationRequest | Timer::HelloProlongationReply,
        ) => 4452,
        _ => 4001,
    }
}

fn truncate_to(text: &mut String, max: usize) {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

/// A duration in whole milliseconds, saturating at `u32::MAX`.
pub(super) fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}
