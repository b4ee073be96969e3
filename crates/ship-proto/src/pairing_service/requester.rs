//! The requesting device's side (the control unit, "devZ"): when its request is on the air
//! (SHIP Pairing Service TS 1.0.0 §4.2).
//!
//! The request is announced from the moment it is configured (the energy manager cannot trust
//! us before it has heard it), stays up across connection interruptions, and is withdrawn for
//! good once one connection to the energy manager has held for [`DEFAULT_SETTLE_AFTER`]
//! (configurable). An interruption restarts that clock from zero.

use std::time::Duration;

use super::record::SignedRequest;

/// How long a connection must hold before the request is withdrawn: 15 minutes (§4.2).
pub const DEFAULT_SETTLE_AFTER: Duration = Duration::from_secs(15 * 60);

/// The requesting side's state machine. Sans-IO: the caller passes the time (any monotonic
/// origin) and carries out the announcement.
#[derive(Debug, Clone)]
pub struct Requester {
    signed: SignedRequest,
    settle_after: Duration,
    state: State,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Announcing { connected_since: Option<Duration> },
    Settled,
}

impl Requester {
    /// A configured request: on the air from now until settled.
    pub fn new(signed: SignedRequest, settle_after: Duration) -> Self {
        Requester {
            signed,
            settle_after,
            state: State::Announcing {
                connected_since: None,
            },
        }
    }

    /// A request that settled in an earlier run: never announced again.
    pub fn settled(signed: SignedRequest) -> Self {
        Requester {
            signed,
            settle_after: DEFAULT_SETTLE_AFTER,
            state: State::Settled,
        }
    }

    /// The signed request (the TXT record).
    pub fn signed(&self) -> &SignedRequest {
        &self.signed
    }

    /// Whether the request should be on the air.
    pub fn is_announcing(&self) -> bool {
        matches!(self.state, State::Announcing { .. })
    }

    /// Whether it was withdrawn for good.
    pub fn is_settled(&self) -> bool {
        self.state == State::Settled
    }

    /// A connection with the energy manager reached data exchange at `now`. A later call while
    /// one is already counted keeps the earlier start (a second connection does not reset it).
    pub fn on_connected(&mut self, now: Duration) {
        if let State::Announcing { connected_since } = &mut self.state
            && connected_since.is_none()
        {
            *connected_since = Some(now);
        }
    }

    /// The (last) connection with the energy manager ended: the clock stops and restarts from
    /// zero on the next connection.
    pub fn on_disconnected(&mut self) {
        if let State::Announcing { connected_since } = &mut self.state {
            *connected_since = None;
        }
    }

    /// When [`Requester::handle_timeout`] should be called next, if at all.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match self.state {
            State::Announcing {
                connected_since: Some(since),
            } => Some(since + self.settle_after),
            _ => None,
        }
    }

    /// Advances the clock; returns `true` when the request settled just now (withdraw it).
    pub fn handle_timeout(&mut self, now: Duration) -> bool {
        match self.poll_timeout() {
            Some(at) if now >= at => {
                self.state = State::Settled;
                true
            }
            _ => false,
        }
    }

    /// Withdraws the request for good at once (e.g. the energy manager was unpaired).
    /// Returns whether it was on the air.
    pub fn withdraw(&mut self) -> bool {
        let was = self.is_announcing();
        self.state = State::Settled;
        was
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::annex_a;
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn announced_from_the_start_and_settled_after_15_minutes_of_one_connection() {
        let (request, secret) = annex_a();
        let mut r = Requester::new(
            super::super::digest::sign(&request, &secret),
            DEFAULT_SETTLE_AFTER,
        );
        assert!(r.is_announcing());
        assert_eq!(r.poll_timeout(), None);
        r.on_connected(secs(0));
        assert_eq!(r.poll_timeout(), Some(secs(900)));
        // Interrupted after 10 minutes: still announcing, the clock restarts.
        assert!(!r.handle_timeout(secs(600)));
        r.on_disconnected();
        assert!(!r.handle_timeout(secs(2000)));
        assert!(r.is_announcing());
        r.on_connected(secs(2000));
        r.on_connected(secs(2500));
        assert_eq!(
            r.poll_timeout(),
            Some(secs(2900)),
            "a second link does not reset"
        );
        assert!(!r.handle_timeout(secs(2899)));
        assert!(r.handle_timeout(secs(2900)));
        assert!(r.is_settled());
        r.on_connected(secs(3000));
        assert_eq!(r.poll_timeout(), None);
        assert!(!r.handle_timeout(secs(9000)));
    }

    #[test]
    fn a_settled_request_is_never_announced() {
        let (request, secret) = annex_a();
        let mut r = Requester::settled(super::super::digest::sign(&request, &secret));
        assert!(!r.is_announcing());
        r.on_connected(secs(0));
        assert!(!r.handle_timeout(secs(5000)));
        assert!(!r.withdraw());
    }
}
