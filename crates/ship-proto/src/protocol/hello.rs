//! Hello (§13.4.4.1): ready/pending, prolongation and abort.
//!
//! * Our wait for the peer ([`Timer::HelloWait`]) starts at `T_hello_init`. A received
//!   prolongation request *extends* the running deadline by `T_hello_inc` (it does not restart
//!   it; TC_SHIP_HELLO_002) and is answered with our phase and `waiting` = the remaining time.
//! * While we are pending, each `waiting` the peer sends tells us its deadline; we send our
//!   prolongation request when its remaining wait reaches `T_hello_prolong_thr_inc` (at once
//!   when it is already below), and give up if no answer arrives within
//!   `T_hello_prolong_waiting_gap`. A peer wait below `T_hello_prolong_min` cannot be prolonged
//!   in time: we abort.
//! * A `pending` without `prolongationRequest` while we are ready is ignored (HELLO_004).
//! * Abort: hello `aborted`, then the WebSocket close 4452 after the abort delay. The side that
//!   receives `aborted` leaves the close to the aborting side and closes itself only after twice
//!   the abort delay.

use std::time::{Duration, Instant};

use super::codec::DecodeError;
use super::config::{Role, Trust};
use super::connection::{Connection, Hello, LocalHello, Stage, millis};
use super::event::CloseCause;
use super::message::{
    ConnectionHello, HandshakeType, HelloPhase, MessageKind, ProtocolHandshake, ShipMessage,
};
use super::state::{ConnectionState, DetailedState};
use super::timer::Timer;

impl Connection {
    /// CMI done: send our hello and wait for the peer's.
    pub(super) fn start_hello(&mut self, now: Instant) {
        if self.denied_before_hello {
            return self.abort_hello(CloseCause::LocalDeniedTrust, ConnectionState::None, now);
        }
        self.timers
            .set(Timer::HelloWait, now + self.config.hello_init);
        let local = match self.trust {
            Trust::Pending => LocalHello::Pending,
            _ => LocalHello::Ready,
        };
        let (init, listen, phase) = match local {
            LocalHello::Ready => (
                DetailedState::HelloReadyInit,
                DetailedState::HelloReadyListen,
                HelloPhase::Ready,
            ),
            LocalHello::Pending => (
                DetailedState::HelloPendingInit,
                DetailedState::HelloPendingListen,
                HelloPhase::Pending,
            ),
        };
        self.enter(init);
        self.send_hello(phase, now);
        self.enter(listen);
        self.stage = Stage::ExpectHello(Hello {
            local,
            peer_ready: false,
        });
    }

    pub(super) fn on_hello(
        &mut self,
        mut hello: Hello,
        received: Result<ShipMessage, DecodeError>,
        now: Instant,
    ) {
        let message = match received {
            Ok(ShipMessage::ConnectionHello(message)) => message,
            other => return self.reject(MessageKind::ConnectionHello, other),
        };
        match message.phase {
            HelloPhase::Aborted => {
                // The aborting side closes (§13.4.4.1); we close only if it does not.
                self.enter(DetailedState::HelloRemoteAbortDone);
                self.timers.clear();
                self.timers
                    .set(Timer::AbortClose, now + 2 * self.config.abort_close_delay);
                self.stage = Stage::AbortDelay {
                    cause: CloseCause::RemoteDeniedTrust,
                    state: ConnectionState::RemoteDeniedTrust,
                    detail: DetailedState::HelloRemoteAbortDone,
                };
            }
            HelloPhase::Ready => {
                hello.peer_ready = true;
                match hello.local {
                    LocalHello::Ready => self.hello_ok(now),
                    LocalHello::Pending => {
                        self.timers.stop(Timer::HelloProlongationReply);
                        self.stage = Stage::ExpectHello(hello);
                        if let Some(waiting) = message.waiting {
                            self.schedule_prolongation(waiting, now);
                        }
                    }
                }
            }
            HelloPhase::Pending => {
                hello.peer_ready = false;
                self.stage = Stage::ExpectHello(hello);
                if message.prolongation_request == Some(true) {
                    self.prolong(hello, now);
                } else if hello.local == LocalHello::Pending {
                    if let Some(waiting) = message.waiting {
                        self.schedule_prolongation(waiting, now);
                    }
                } else {
                    tracing::debug!("hello pending without prolongation request ignored");
                }
            }
        }
    }

    /// A prolongation request arrived: extend our wait by `T_hello_inc` and answer.
    fn prolong(&mut self, hello: Hello, now: Instant) {
        let deadline = self.timers.get(Timer::HelloWait).unwrap_or(now) + self.config.hello_inc;
        self.timers.set(Timer::HelloWait, deadline);
        let phase = match hello.local {
            LocalHello::Ready => HelloPhase::Ready,
            LocalHello::Pending => HelloPhase::Pending,
        };
        self.send_hello(phase, now);
    }

    /// While pending: plan our prolongation request before the peer's wait runs out.
    fn schedule_prolongation(&mut self, waiting_ms: u32, now: Instant) {
        let waiting = Duration::from_millis(waiting_ms.into());
        if waiting < self.config.hello_prolong_min {
            return self.abort_hello(
                CloseCause::PeerWaitTooShort { waiting_ms },
                ConnectionState::Error,
                now,
            );
        }
        let at = now + waiting.saturating_sub(self.config.hello_prolong_threshold);
        self.timers.set(Timer::HelloProlongationRequest, at);
    }

    /// The application approved while we were pending.
    pub(super) fn become_ready(&mut self, mut hello: Hello, now: Instant) {
        hello.local = LocalHello::Ready;
        self.timers.stop(Timer::HelloProlongationRequest);
        self.timers.stop(Timer::HelloProlongationReply);
        self.enter(DetailedState::HelloReadyInit);
        self.send_hello(HelloPhase::Ready, now);
        if hello.peer_ready {
            self.hello_ok(now);
        } else {
            self.enter(DetailedState::HelloReadyListen);
            self.stage = Stage::ExpectHello(hello);
        }
    }

    /// Both sides are ready: on to the protocol handshake (§13.4.4.2).
    fn hello_ok(&mut self, now: Instant) {
        self.timers.stop(Timer::HelloWait);
        self.timers.stop(Timer::HelloProlongationRequest);
        self.timers.stop(Timer::HelloProlongationReply);
        self.enter(DetailedState::HelloOk);
        self.timers
            .set(Timer::ProtocolHandshake, now + self.config.handshake_wait);
        match self.role {
            Role::Client => {
                self.enter(DetailedState::ProtHClientInit);
                self.send(&ShipMessage::ProtocolHandshake(
                    ProtocolHandshake::ship_1_0(HandshakeType::AnnounceMax),
                ));
                self.enter(DetailedState::ProtHClientListenChoice);
                self.stage = Stage::ExpectSelect;
            }
            Role::Server => {
                self.enter(DetailedState::ProtHServerInit);
                self.enter(DetailedState::ProtHServerListenProposal);
                self.stage = Stage::ExpectAnnounceMax;
            }
        }
    }

    /// Sends hello `aborted`, then closes after the abort delay with `cause` and `state`.
    pub(super) fn abort_hello(&mut self, cause: CloseCause, state: ConnectionState, now: Instant) {
        self.send(&ShipMessage::ConnectionHello(ConnectionHello {
            phase: HelloPhase::Aborted,
            waiting: None,
            prolongation_request: None,
        }));
        self.enter(DetailedState::HelloAbort);
        self.timers.clear();
        self.timers
            .set(Timer::AbortClose, now + self.config.abort_close_delay);
        self.stage = Stage::AbortDelay {
            cause,
            state,
            detail: DetailedState::HelloAbortDone,
        };
    }

    /// A hello timer fired.
    pub(super) fn on_hello_timer(&mut self, timer: Timer, hello: Hello, now: Instant) {
        match timer {
            Timer::HelloWait => {
                self.enter(match hello.local {
                    LocalHello::Ready => DetailedState::HelloReadyTimeout,
                    LocalHello::Pending => DetailedState::HelloPendingTimeout,
                });
                self.abort_hello(CloseCause::Timeout(timer), ConnectionState::Error, now);
            }
            Timer::HelloProlongationRequest => {
                self.send(&ShipMessage::ConnectionHello(ConnectionHello {
                    phase: HelloPhase::Pending,
                    waiting: None,
                    prolongation_request: Some(true),
                }));
                self.timers.set(
                    Timer::HelloProlongationReply,
                    now + self.config.hello_prolong_waiting_gap,
                );
                self.stage = Stage::ExpectHello(hello);
            }
            Timer::HelloProlongationReply => {
                self.enter(DetailedState::HelloPendingTimeout);
                self.abort_hello(CloseCause::Timeout(timer), ConnectionState::Error, now);
            }
            _ => self.stage = Stage::ExpectHello(hello),
        }
    }

    /// Our hello in `phase`; `waiting` is always the remaining time of our wait (HELLO_003).
    fn send_hello(&mut self, phase: HelloPhase, now: Instant) {
        let remaining = self
            .timers
            .get(Timer::HelloWait)
            .map_or(Duration::ZERO, |deadline| {
                deadline.saturating_duration_since(now)
            });
        self.send(&ShipMessage::ConnectionHello(ConnectionHello {
            phase,
            waiting: Some(millis(remaining)),
            prolongation_request: None,
        }));
    }
}
