//! CMI (§13.4.3), protocol handshake (§13.4.4.2), PIN state (§13.4.4.3), data exchange with
//! access methods (§13.4.5, §13.4.6) and the close confirm (§13.4.7); the one "unexpected
//! message" path; timer dispatch.

use std::time::Instant;

use crate::ShipId;

use super::codec::DecodeError;
use super::config::Role;
use super::connection::{AccessMethodsProgress, Connection, Stage};
use super::event::{CloseCause, Event};
use super::message::{
    AccessMethods, ClosePhase, CloseReason, ConnectionClose, Data, HandshakeErrorCode,
    HandshakeType, MessageKind, ProtocolHandshake, ProtocolHandshakeError, ProtocolVersion,
    ShipMessage,
};
use super::state::{ConnectionState, DetailedState};
use super::timer::Timer;

impl Connection {
    // ----- CMI, §13.4.3 ---------------------------------------------------------------------

    pub(super) fn on_cmi(&mut self, received: Result<ShipMessage, DecodeError>, now: Instant) {
        if !matches!(received, Ok(ShipMessage::Cmi)) {
            return self.reject(MessageKind::Cmi, received);
        }
        self.timers.stop(Timer::Cmi);
        match self.role {
            Role::Client => self.enter(DetailedState::CmiClientEvaluate),
            Role::Server => {
                self.enter(DetailedState::CmiServerEvaluate);
                self.send(&ShipMessage::Cmi);
            }
        }
        self.start_hello(now);
    }

    // ----- protocol handshake, §13.4.4.2 ----------------------------------------------------

    pub(super) fn on_announce_max(
        &mut self,
        received: Result<ShipMessage, DecodeError>,
        now: Instant,
    ) {
        match received {
            Ok(ShipMessage::ProtocolHandshake(offer))
                if offer.handshake_type == HandshakeType::AnnounceMax =>
            {
                let json = offer
                    .formats
                    .iter()
                    .any(|f| f == ProtocolHandshake::JSON_UTF8);
                if offer.version.major < 1 || !json {
                    return self.selection_mismatch(offer);
                }
                let selected = ProtocolHandshake::ship_1_0(HandshakeType::Select);
                self.send(&ShipMessage::ProtocolHandshake(selected.clone()));
                self.timers
                    .set(Timer::ProtocolHandshake, now + self.config.handshake_wait);
                self.enter(DetailedState::ProtHServerListenConfirm);
                self.stage = Stage::ExpectSelectEcho { selected };
            }
            Ok(ShipMessage::ProtocolHandshakeError(error)) => self.remote_handshake_error(error),
            other => self.reject(MessageKind::AnnounceMax, other),
        }
    }

    pub(super) fn on_select(&mut self, received: Result<ShipMessage, DecodeError>, now: Instant) {
        match received {
            Ok(ShipMessage::ProtocolHandshake(choice))
                if choice.handshake_type == HandshakeType::Select =>
            {
                let ours = ProtocolHandshake::ship_1_0(HandshakeType::Select);
                if choice.version != (ProtocolVersion { major: 1, minor: 0 })
                    || choice.formats != ours.formats
                {
                    return self.selection_mismatch(choice);
                }
                self.send(&ShipMessage::ProtocolHandshake(choice));
                self.enter(DetailedState::ProtHClientOk);
                self.start_pin(now);
            }
            Ok(ShipMessage::ProtocolHandshakeError(error)) => self.remote_handshake_error(error),
            other => self.reject(MessageKind::Select, other),
        }
    }

    pub(super) fn on_select_echo(
        &mut self,
        selected: ProtocolHandshake,
        received: Result<ShipMessage, DecodeError>,
        now: Instant,
    ) {
        match received {
            Ok(ShipMessage::ProtocolHandshake(echo))
                if echo.handshake_type == HandshakeType::Select =>
            {
                if echo != selected {
                    return self.selection_mismatch(echo);
                }
                self.enter(DetailedState::ProtHServerOk);
                self.start_pin(now);
            }
            Ok(ShipMessage::ProtocolHandshakeError(error)) => self.remote_handshake_error(error),
            other => self.reject(MessageKind::Select, other),
        }
    }

    fn selection_mismatch(&mut self, handshake: ProtocolHandshake) {
        self.send_handshake_error(HandshakeErrorCode::SelectionMismatch);
        self.fail(CloseCause::SelectionMismatch {
            version: handshake.version,
            formats: handshake.formats,
        });
    }

    fn remote_handshake_error(&mut self, error: ProtocolHandshakeError) {
        self.fail(CloseCause::RemoteHandshakeError(error.error));
    }

    fn send_handshake_error(&mut self, error: HandshakeErrorCode) {
        self.send(&ShipMessage::ProtocolHandshakeError(
            ProtocolHandshakeError { error },
        ));
    }

    // ----- PIN, §13.4.4.3: pin_check.rs -----------------------------------------------------

    // ----- data exchange and access methods, §13.4.5, §13.4.6 -------------------------------

    /// PIN done: data may flow; ask for the peer's access methods, once.
    pub(super) fn start_access_methods(&mut self, now: Instant) {
        self.enter(DetailedState::AccessMethodsRequest);
        self.send(&ShipMessage::AccessMethodsRequest);
        self.timers
            .set(Timer::AccessMethods, now + self.config.access_methods_wait);
        self.stage = Stage::DataExchange(AccessMethodsProgress::Requested);
    }

    pub(super) fn on_data_exchange(
        &mut self,
        progress: AccessMethodsProgress,
        received: Result<ShipMessage, DecodeError>,
        now: Instant,
    ) {
        self.stage = Stage::DataExchange(progress);
        if let Ok(message) = &received
            && self.on_pin_in_data_exchange(message, now)
        {
            return;
        }
        match received {
            Err(error) => tracing::debug!(?error, "undecodable message in data exchange ignored"),
            Ok(ShipMessage::Data(data)) => self.deliver(data),
            Ok(ShipMessage::AccessMethodsRequest) => self.answer_access_methods(),
            Ok(ShipMessage::AccessMethods(methods)) => self.on_access_methods(progress, methods),
            Ok(ShipMessage::ConnectionClose(_)) => {
                tracing::debug!("connectionClose confirm without announce ignored");
            }
            Ok(other) => self.reject(MessageKind::Data, Ok(other)),
        }
    }

    fn deliver(&mut self, data: Data) {
        if data.protocol_id == Data::SPINE_PROTOCOL_ID {
            self.emit(Event::Data(data.payload.get().as_bytes().to_vec()));
        } else {
            tracing::debug!(protocol_id = ?data.protocol_id, "data with unknown protocolId ignored");
        }
    }

    pub(super) fn answer_access_methods(&mut self) {
        let id = self.local_ship_id.as_str().to_owned();
        self.send(&ShipMessage::AccessMethods(AccessMethods { id: Some(id) }));
    }

    fn on_access_methods(&mut self, progress: AccessMethodsProgress, methods: AccessMethods) {
        let Some(received) = methods.id.as_deref().and_then(|id| ShipId::new(id).ok()) else {
            return self.fail(CloseCause::InvalidShipId(methods.id));
        };
        let stored = self
            .peer_ship_id
            .as_ref()
            .or(self.known_peer_ship_id.as_ref());
        if let Some(stored) = stored
            && *stored != received
        {
            let stored = stored.clone();
            return self.fail(CloseCause::ShipIdMismatch { stored, received });
        }
        if progress == AccessMethodsProgress::Answered {
            return;
        }
        self.timers.stop(Timer::AccessMethods);
        self.peer_ship_id = Some(received.clone());
        self.emit(Event::PeerShipId(received));
        self.enter(DetailedState::Approved);
        self.enter(DetailedState::Complete);
        self.stage = Stage::DataExchange(AccessMethodsProgress::Answered);
    }

    // ----- close, §13.4.7 -------------------------------------------------------------------

    pub(super) fn on_close_confirm(
        &mut self,
        reason: CloseReason,
        received: Result<ShipMessage, DecodeError>,
    ) {
        self.stage = Stage::ExpectCloseConfirm { reason };
        match received {
            Ok(ShipMessage::ConnectionClose(ConnectionClose {
                phase: ClosePhase::Confirm,
                ..
            })) => self.finish(CloseCause::LocalClose(reason), ConnectionState::None, None),
            Ok(ShipMessage::Data(data)) => self.deliver(data),
            Ok(ShipMessage::AccessMethodsRequest) => self.answer_access_methods(),
            other => tracing::debug!(?other, "message while closing ignored"),
        }
    }

    // ----- the one unexpected-message path --------------------------------------------------

    /// "Expected X, got Y": answers as the state requires (the server's CMI; error 2 in the
    /// protocol handshake) and closes with an error.
    pub(super) fn reject(
        &mut self,
        expected: MessageKind,
        received: Result<ShipMessage, DecodeError>,
    ) {
        let cause = match received {
            Ok(message) => CloseCause::UnexpectedMessage {
                expected,
                got: message.kind(),
            },
            Err(error) => CloseCause::Decode(error),
        };
        tracing::debug!(?cause, "unexpected message");
        match expected {
            // TC_SHIP_CMI_001/005: the server sends its own CMI first.
            MessageKind::Cmi if self.role == Role::Server => self.send(&ShipMessage::Cmi),
            // TC_SHIP_PROT_005/006.
            MessageKind::AnnounceMax | MessageKind::Select => {
                self.send_handshake_error(HandshakeErrorCode::UnexpectedMessage);
            }
            _ => {}
        }
        self.fail(cause);
    }

    // ----- timers ---------------------------------------------------------------------------

    pub(super) fn on_timer(&mut self, timer: Timer, now: Instant) {
        let stage = std::mem::replace(&mut self.stage, Stage::Closed);
        match (timer, stage) {
            (_, Stage::ExpectHello(hello)) => self.on_hello_timer(timer, hello, now),
            (Timer::ProtocolHandshake, stage) => {
                self.stage = stage;
                self.enter(DetailedState::ProtHTimeout);
                self.send_handshake_error(HandshakeErrorCode::Timeout);
                self.fail(CloseCause::Timeout(timer));
            }
            (
                Timer::AbortClose,
                Stage::AbortDelay {
                    cause,
                    state,
                    detail,
                },
            ) => self.finish(cause, state, Some(detail)),
            (Timer::CloseConfirm, Stage::ExpectCloseConfirm { reason }) => {
                self.finish(CloseCause::LocalClose(reason), ConnectionState::None, None);
            }
            (Timer::PinPenalty, stage) => {
                self.stage = stage;
                self.on_pin_penalty_over(now);
            }
            (Timer::Cmi | Timer::PinState | Timer::PinWait | Timer::AccessMethods, _) => {
                self.fail(CloseCause::Timeout(timer));
            }
            (_, stage) => {
                tracing::debug!(%timer, "stale timer ignored");
                self.stage = stage;
            }
        }
    }
}
