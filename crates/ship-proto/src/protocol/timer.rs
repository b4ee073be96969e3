//! Timers as data: one [`Timer`] enum and a deadline table (after quinn-proto).

use std::time::Instant;

/// Every timer of the SHIP handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Timer {
    /// Waiting for the CMI (§13.4.3).
    Cmi,
    /// Our wait for the peer's hello `ready` (`T_hello_init`, extended by `T_hello_inc`).
    HelloWait,
    /// While pending: when to send our prolongation request (§13.4.4.1.3).
    HelloProlongationRequest,
    /// While pending: waiting for the answer to our prolongation request.
    HelloProlongationReply,
    /// A protocol-handshake wait (§13.4.4.2).
    ProtocolHandshake,
    /// Waiting for the peer's `connectionPinState` (§13.4.4.3).
    PinState,
    /// The PIN step made no progress for [`super::ProtocolConfig::pin_wait`] (§13.4.4.3).
    PinWait,
    /// Our penalty for the peer's wrong PINs ends: PIN input is `ok` again (§13.4.4.3).
    PinPenalty,
    /// Waiting for the answer to our `accessMethodsRequest` (§13.4.6).
    AccessMethods,
    /// Between our hello `aborted` and the close.
    AbortClose,
    /// Waiting for the `connectionClose` confirm (§13.4.7).
    CloseConfirm,
}

impl Timer {
    const ALL: [Timer; 11] = [
        Timer::Cmi,
        Timer::HelloWait,
        Timer::HelloProlongationRequest,
        Timer::HelloProlongationReply,
        Timer::ProtocolHandshake,
        Timer::PinState,
        Timer::PinWait,
        Timer::PinPenalty,
        Timer::AccessMethods,
        Timer::AbortClose,
        Timer::CloseConfirm,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Timer::Cmi => "CMI",
            Timer::HelloWait => "hello wait",
            Timer::HelloProlongationRequest => "hello prolongation request",
            Timer::HelloProlongationReply => "hello prolongation reply",
            Timer::ProtocolHandshake => "protocol handshake",
            Timer::PinState => "PIN state",
            Timer::PinWait => "PIN step",
            Timer::PinPenalty => "PIN penalty",
            Timer::AccessMethods => "access methods",
            Timer::AbortClose => "abort close",
            Timer::CloseConfirm => "close confirm",
        })
    }
}

/// The deadline of every running timer.
#[derive(Debug, Clone, Default)]
pub(crate) struct TimerTable {
    deadlines: [Option<Instant>; Timer::ALL.len()],
}

impl TimerTable {
    pub(crate) fn set(&mut self, timer: Timer, deadline: Instant) {
        self.deadlines[timer.index()] = Some(deadline);
    }

    pub(crate) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    pub(crate) fn get(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    pub(crate) fn clear(&mut self) {
        self.deadlines = Default::default();
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// The timer with the earliest deadline at or before `now`, removed from the table.
    pub(crate) fn take_expired(&mut self, now: Instant) -> Option<Timer> {
        let timer = Timer::ALL
            .into_iter()
            .filter(|t| self.get(*t).is_some_and(|d| d <= now))
            .min_by_key(|t| self.get(*t))?;
        self.stop(timer);
        Some(timer)
    }
}
