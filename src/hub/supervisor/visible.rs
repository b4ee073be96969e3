//! What the application sees of the peer: the derived state, `connected` / `disconnected`, and
//! the grace given to a replacement connection (docs/connection-lifecycle.md).

use super::*;

impl Supervisor {
    /// The last connection is gone and no replacement is underway: report it and redial.
    pub(super) fn connection_lost(&mut self, reason: DisconnectReason) {
        self.grace_deadline = None;
        let reason = self.replacing.take().map_or(reason, |(_, first)| first);
        if self.visible.connected {
            self.visible.connected = false;
            self.shared
                .callbacks
                .push(CallbackEvent::Disconnected(self.ski, reason));
            self.status.send_modify(|s| s.connected = false);
            crate::hub::pairing_service::link_changed(&self.shared, self.ski, false);
        }
        // Redial (paired peers only, §8).
        if self.pairing.is_some() && !self.stopping && self.links.is_empty() {
            if self.settled_double && self.we_decide() {
                // Arbitration left nothing (two rules, crossing clocks): not a failure to back
                // off from (§7 rule 3).
                // An incoming connection that replaced ours and is still in its TLS handshake
                // is the replacement: dial only if it has not arrived when its handshake time
                // is up (one replacement, not a third connection).
                if matches!(self.dial, Dial::Idle) {
                    let now = tokio::time::Instant::now();
                    let at = match self.incoming_seen {
                        Some(seen) if self.incoming_in_tls() => {
                            seen + self.shared.config.limits.transport_handshake_timeout
                        }
                        _ => now,
                    };
                    self.dial = Dial::Waiting(at.max(now));
                }
            } else {
                self.schedule_dial();
            }
        }
        self.settled_double = false;
    }

    /// The replacement did not complete in time.
    pub(super) fn replacement_expired(&mut self) {
        if let Some((_, reason)) = self.replacing.take()
            && !self.links.iter().any(|l| l.completed && !l.closing)
        {
            self.connection_lost(reason);
        }
    }

    /// A client certificate with this SKI arrived lately: an incoming connection is in its TLS
    /// handshake.
    pub(super) fn incoming_in_tls(&self) -> bool {
        self.incoming_seen
            .is_some_and(|at| at.elapsed() <= self.shared.config.limits.transport_handshake_timeout)
    }

    pub(super) fn refresh_visible(&mut self) {
        let (state, detail) = self.next_visible_state();
        if state != self.visible.state {
            self.visible.state = state;
            self.shared
                .callbacks
                .push(CallbackEvent::StateChanged(self.ski, state, detail));
            let pending = self.links.iter().any(|l| l.is_pairing_request());
            self.status.send_modify(|s| {
                s.state = state;
                s.pending_request = pending;
            });
        } else {
            let pending = self.links.iter().any(|l| l.is_pairing_request());
            self.status.send_if_modified(|s| {
                let changed = s.pending_request != pending;
                s.pending_request = pending;
                changed
            });
        }
        let links: Vec<ConnectionInfo> = self
            .links
            .iter()
            .map(|l| ConnectionInfo {
                direction: l.direction,
                remote: l.remote,
                state: l.state,
                closing: l.closing,
                tls_suite: l.tls_suite,
                pin_restricted: l.restricted,
            })
            .collect();
        self.status.send_if_modified(|s| {
            let changed = s.links != links;
            s.links = links;
            changed
        });
        if state == ConnectionState::Completed && !self.visible.connected {
            self.visible.connected = true;
            self.status.send_modify(|s| s.connected = true);
            crate::hub::pairing_service::link_changed(&self.shared, self.ski, true);
            self.shared.callbacks.push(CallbackEvent::Connected(
                self.ski,
                self.peer_ship_id.clone(),
            ));
        }
    }

    /// The state the application should see now. Derived from the links, the dial and the
    /// pairing, except that the last link's failure is consumed here: it is shown once, then the
    /// peer moves on to Queued or None.
    pub(super) fn next_visible_state(&mut self) -> (ConnectionState, StateDetail) {
        let detail = |detailed: Option<DetailedState>, failure: Option<Failure>| StateDetail {
            detailed,
            error: failure.as_ref().map(ToString::to_string),
            failure,
        };
        if let Some(link) = self.links.iter().find(|l| l.completed && !l.closing) {
            return (ConnectionState::Completed, detail(link.detail, None));
        }
        if self.visible.connected && (!self.links.is_empty() || self.replacing.is_some()) {
            // A replacement is in its handshake: stay connected.
            return (ConnectionState::Completed, detail(None, None));
        }
        if let Some(link) = self
            .links
            .iter()
            .filter(|l| !l.closing)
            .max_by_key(|l| l.started)
        {
            if link.state == ConnectionState::RemoteDeniedTrust {
                // The handshake ended in hello and the link is closing: whether the peer said
                // no or went away is known when the link ends; it is said then, once, in words.
                return (self.visible.state, detail(link.detail, None));
            }
            return (link.state, detail(link.detail, None));
        }
        if let Some(last) = self.last_failure.take()
            && last.failure.state() != self.visible.state
        {
            return (
                last.failure.state(),
                detail(last.detailed, Some(last.failure)),
            );
        }
        if matches!(self.dial, Dial::Running(_)) {
            return (ConnectionState::Initiated, detail(None, None));
        }
        if self.pairing.is_some() && !self.stopping {
            return (ConnectionState::Queued, detail(None, None));
        }
        (ConnectionState::None, detail(None, None))
    }
}

/// How a link's end shows to the application, if it is a failure. `ended_in` is the state the
/// link's handshake ended in: `RemoteDeniedTrust` when it ended while we waited in hello for
/// the peer ([`Failure::Hello`]: a denial, a close without an answer, or a lost connection).
pub(super) fn failure_of(
    end: &LinkEnd,
    closed_by_us: bool,
    ended_in: ConnectionState,
) -> Option<Failure> {
    match end {
        LinkEnd::Aborted => None,
        LinkEnd::KeepaliveTimeout => Some(Failure::KeepaliveTimeout),
        LinkEnd::Backpressure => Some(Failure::Backpressure),
        LinkEnd::HandshakeDeadline => Some(Failure::HandshakeDeadline),
        LinkEnd::Protocol(_) if closed_by_us => None,
        LinkEnd::Protocol(cause) if ended_in == ConnectionState::RemoteDeniedTrust => {
            Some(Failure::Hello(cause.clone()))
        }
        // An orderly connectionClose by the peer: not a failure.
        LinkEnd::Protocol(cause) if cause.is_graceful() => None,
        LinkEnd::Protocol(cause) => Some(Failure::Protocol(cause.clone())),
    }
}

pub(super) fn reason_of(end: &LinkEnd, closed_by_us: bool) -> DisconnectReason {
    match end {
        LinkEnd::Aborted => DisconnectReason::Shutdown,
        LinkEnd::KeepaliveTimeout => DisconnectReason::KeepaliveTimeout,
        LinkEnd::Backpressure => DisconnectReason::Backpressure,
        LinkEnd::HandshakeDeadline => DisconnectReason::HandshakeDeadline,
        LinkEnd::Protocol(_) if closed_by_us => DisconnectReason::Local,
        LinkEnd::Protocol(cause) => DisconnectReason::Protocol(cause.clone()),
    }
}
