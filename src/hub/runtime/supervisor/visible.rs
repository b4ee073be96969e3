//! What the application sees of the peer: the derived state, `connected` / `disconnected`, and
//! the grace given to a replacement connection (docs/connection-lifecycle.md).
//!
//! The state shown is a pure function of the supervisor's state ([`derive`]): any link in data
//! exchange → Completed; connected while a replacement is underway → still Completed; otherwise
//! the newest live link's state; otherwise the last failure, once; otherwise Initiated while a
//! dial runs, Queued for a paired peer waiting to be dialled, None for anything else.

use std::time::Instant;

use super::Supervisor;
use super::state::{DialState, LastFailure, LinkHandle, Presence};
use crate::hub::callbacks::{CallbackEvent, StateDetail};
use crate::hub::errors::EndCause;
use crate::hub::runtime::handover::LinkEnd;
use crate::hub::runtime::shared::ConnectionInfo;
use crate::protocol::{ConnectionState, DetailedState};

/// One link, as the visible-state derivation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LinkView {
    pub(super) state: ConnectionState,
    pub(super) detail: Option<DetailedState>,
    /// Reached data exchange.
    pub(super) completed: bool,
    /// A close was requested.
    pub(super) closing: bool,
    /// When its TCP connection started: the newest live link speaks for the peer.
    pub(super) started: Instant,
}

/// Everything the visible state is derived from.
#[derive(Debug, Clone, Copy)]
pub(super) struct VisibleInputs<'a> {
    pub(super) links: &'a [LinkView],
    /// The state the application was shown last.
    pub(super) shown: ConnectionState,
    /// The application was told `connected` (and not `disconnected` since).
    pub(super) connected: bool,
    /// A replacement connection is awaited (see [`Presence::Replacing`]).
    pub(super) replacing: bool,
    /// How the last link or dial failed, not shown yet.
    pub(super) last_failure: Option<&'a LastFailure>,
    /// A dial attempt runs.
    pub(super) dialling: bool,
    /// The peer is paired and the supervisor is not stopping: it waits to be dialled.
    pub(super) queued: bool,
}

/// What the application should see now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Visible {
    pub(super) state: ConnectionState,
    pub(super) detail: StateDetail,
    /// The last failure was looked at (shown now, or not worth showing): forget it, so that it
    /// is shown once.
    pub(super) failure_consumed: bool,
    /// The peer reached data exchange and the application has not been told `connected` yet.
    pub(super) becomes_connected: bool,
}

/// The visible state, from the supervisor's state alone (no I/O, no clock).
pub(super) fn derive(inputs: &VisibleInputs<'_>) -> Visible {
    let visible = |state: ConnectionState, detailed, failure: Option<EndCause>, consumed| Visible {
        state,
        detail: StateDetail { detailed, failure },
        failure_consumed: consumed,
        becomes_connected: state == ConnectionState::Completed && !inputs.connected,
    };
    let live = || inputs.links.iter().filter(|l| !l.closing);
    if let Some(link) = live().find(|l| l.completed) {
        return visible(ConnectionState::Completed, link.detail, None, false);
    }
    if inputs.connected && (!inputs.links.is_empty() || inputs.replacing) {
        // A replacement is in its handshake: stay connected.
        return visible(ConnectionState::Completed, None, None, false);
    }
    if let Some(link) = live().max_by_key(|l| l.started) {
        if matches!(
            link.state,
            ConnectionState::RemoteDeniedTrust | ConnectionState::Error
        ) {
            // The handshake ended and the link is closing. For the end of hello, whether the
            // peer said no or went away is known when the link ends; for an error, its cause
            // (the engine reports the state before the cause). Either is said then, once, in
            // words: an `Error` is never shown without its cause.
            return visible(inputs.shown, link.detail, None, false);
        }
        return visible(link.state, link.detail, None, false);
    }
    let consumed = inputs.last_failure.is_some();
    if let Some(last) = inputs.last_failure
        && last.failure.state() != inputs.shown
    {
        let failure = Some(last.failure.clone());
        return visible(last.failure.state(), last.detailed, failure, true);
    }
    if inputs.dialling {
        return visible(ConnectionState::Initiated, None, None, consumed);
    }
    if inputs.queued {
        return visible(ConnectionState::Queued, None, None, consumed);
    }
    visible(ConnectionState::None, None, None, consumed)
}

impl Supervisor {
    /// The last connection is gone and no replacement is underway: report it and redial.
    pub(super) fn connection_lost(&mut self, reason: EndCause) {
        self.double.grace_until = None;
        let (was_connected, reason) = match std::mem::replace(&mut self.presence, Presence::Absent)
        {
            Presence::Absent => (false, reason),
            Presence::Connected => (true, reason),
            Presence::Replacing(replacement) => (true, replacement.reason),
        };
        if was_connected {
            self.shared
                .callbacks
                .push(CallbackEvent::Disconnected(self.ski, reason));
            self.status.send_modify(|s| s.connected = false);
            self.tell_pairing_service(false);
        }
        // Redial (paired peers only, §8).
        if self.pairing.is_some() && !self.stopping() && self.links.is_empty() {
            if self.double.settled && self.we_decide() {
                self.redial_after_settling();
            } else {
                self.schedule_dial();
            }
        }
        // Links still closing (reported before they ended) decide the redial when the last of
        // them ends: a settled double connection is remembered until then.
        if self.links.is_empty() {
            self.double.settled = false;
        }
    }

    /// Arbitration left nothing (two rules, crossing clocks): not a failure to back off from
    /// (§7 rule 3). An incoming connection that replaced ours and is still in its TLS handshake
    /// is the replacement: dial only if it has not arrived when its handshake time is up (one
    /// replacement, not a third connection).
    fn redial_after_settling(&mut self) {
        if !self.dial.is_idle() {
            return;
        }
        let now = tokio::time::Instant::now();
        let at = match self.double.incoming_seen {
            Some(seen) if self.incoming_in_tls() => {
                seen + self.shared.config.limits.transport_handshake_timeout
            }
            _ => now,
        };
        self.dial = DialState::Waiting(at.max(now));
    }

    /// The replacement did not complete in time.
    pub(super) fn replacement_expired(&mut self) {
        let Presence::Replacing(replacement) =
            std::mem::replace(&mut self.presence, Presence::Connected)
        else {
            return;
        };
        if !self.links.iter().any(|l| l.completed && !l.closing()) {
            self.connection_lost(replacement.reason);
        }
    }

    /// A client certificate with this SKI arrived lately: an incoming connection is in its TLS
    /// handshake.
    pub(super) fn incoming_in_tls(&self) -> bool {
        self.double
            .incoming_seen
            .is_some_and(|at| at.elapsed() <= self.shared.config.limits.transport_handshake_timeout)
    }

    /// Tells the Pairing Service (if configured) whether the peer is connected now.
    fn tell_pairing_service(&self, connected: bool) {
        if let Some(service) = &self.shared.pairing_service {
            service.presence_changed(self.ski, connected);
        }
    }

    /// Derives the visible state and publishes what changed: `state_changed`, the status the
    /// [`crate::hub::Hub`] reads (state, pending request, connections), `connected`.
    pub(super) fn refresh_visible(&mut self) {
        let inputs = |links: &[LinkView]| {
            derive(&VisibleInputs {
                links,
                shown: self.shown,
                connected: self.presence.connected(),
                replacing: self.presence.replacing(),
                last_failure: self.last_failure.as_ref(),
                dialling: self.dial.is_running(),
                queued: self.pairing.is_some() && !self.stopping(),
            })
        };
        let visible = with_views(&self.links, inputs);
        if visible.failure_consumed {
            self.last_failure = None;
        }
        let state = visible.state;
        let pending = self.links.iter().any(LinkHandle::is_pairing_request);
        if state != self.shown {
            self.shown = state;
            self.shared.callbacks.push(CallbackEvent::StateChanged(
                self.ski,
                state,
                visible.detail,
            ));
            self.status.send_modify(|s| {
                s.state = state;
                s.pending_request = pending;
            });
        } else {
            self.status.send_if_modified(|s| {
                let changed = s.pending_request != pending;
                s.pending_request = pending;
                changed
            });
        }
        self.publish_connections();
        if visible.becomes_connected {
            self.presence = Presence::Connected;
            self.status.send_modify(|s| s.connected = true);
            self.tell_pairing_service(true);
            self.shared.callbacks.push(CallbackEvent::Connected(
                self.ski,
                self.peer_ship_id.clone(),
            ));
        }
    }

    /// Publishes the peer's connections for [`crate::hub::Hub::connections`], if they changed.
    ///
    /// Runs after every event of the supervisor, so it compares in place and builds the list
    /// only when it changed (docs/performance.md, "Fewer allocations per handshake").
    fn publish_connections(&self) {
        let info = |l: &LinkHandle| ConnectionInfo {
            direction: l.direction,
            remote: l.remote,
            state: l.state,
            closing: l.closing(),
            tls_suite: l.tls_suite,
            pin_restricted: l.restricted,
        };
        self.status.send_if_modified(|s| {
            let same = s.connections.len() == self.links.len()
                && s.connections
                    .iter()
                    .zip(&self.links)
                    .all(|(shown, link)| *shown == info(link));
            if !same {
                s.connections = self.links.iter().map(info).collect();
            }
            !same
        });
    }
}

/// Calls `f` with the views of `links`, on the stack for the usual one or two links:
/// [`Supervisor::refresh_visible`] runs after every event of a supervisor, and a vector per call
/// was most of a handshake's allocations in the hub (docs/performance.md).
fn with_views<R>(links: &[LinkHandle], f: impl FnOnce(&[LinkView]) -> R) -> R {
    match links {
        [] => f(&[]),
        [a] => f(&[a.view()]),
        [a, b] => f(&[a.view(), b.view()]),
        more => f(&more.iter().map(LinkHandle::view).collect::<Vec<_>>()),
    }
}

/// How a link's end shows to the application, if it is a failure. `ended_in` is the state the
/// link's handshake ended in: `RemoteDeniedTrust` when it ended while we waited in hello for
/// the peer ([`EndCause::Hello`]: a denial, a close without an answer, or a lost connection).
pub(super) fn failure_of(
    end: &LinkEnd,
    closed_by_us: bool,
    ended_in: ConnectionState,
) -> Option<EndCause> {
    match end {
        // Dropped at the shutdown deadline, or closed by us: not a failure.
        LinkEnd::Aborted => None,
        LinkEnd::Protocol(_) if closed_by_us => None,
        LinkEnd::Protocol(cause) if ended_in == ConnectionState::RemoteDeniedTrust => {
            Some(EndCause::Hello(cause.clone()))
        }
        // An orderly connectionClose by the peer: not a failure.
        LinkEnd::Protocol(cause) if cause.is_graceful() => None,
        end => Some(end.clone().into()),
    }
}

/// Why the peer is no longer connected, if the link's end is the end of its connection.
pub(super) fn reason_of(end: LinkEnd, closed_by_us: bool) -> EndCause {
    match end {
        LinkEnd::Protocol(_) if closed_by_us => EndCause::Local,
        end => end.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn link(state: ConnectionState, started_ms: u64) -> LinkView {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        LinkView {
            state,
            detail: None,
            completed: state == ConnectionState::Completed,
            closing: false,
            started: *BASE.get_or_init(Instant::now) + Duration::from_millis(started_ms),
        }
    }

    /// Nothing at all: no link, not connected, no failure, no dial, not paired.
    fn inputs(links: &[LinkView]) -> VisibleInputs<'_> {
        VisibleInputs {
            links,
            shown: ConnectionState::None,
            connected: false,
            replacing: false,
            last_failure: None,
            dialling: false,
            queued: false,
        }
    }

    fn keepalive_failure() -> LastFailure {
        LastFailure {
            failure: EndCause::KeepaliveTimeout,
            detailed: None,
        }
    }

    #[test]
    fn a_link_in_data_exchange_makes_the_peer_completed_and_connected() {
        let links = [
            link(ConnectionState::Completed, 0),
            link(ConnectionState::Initiated, 5),
        ];
        let visible = derive(&inputs(&links));
        assert_eq!(visible.state, ConnectionState::Completed);
        assert!(visible.becomes_connected);
        let visible = derive(&VisibleInputs {
            connected: true,
            ..inputs(&links)
        });
        assert!(!visible.becomes_connected, "connected is reported once");
    }

    #[test]
    fn a_closing_link_does_not_count() {
        let mut closing = link(ConnectionState::Completed, 0);
        closing.closing = true;
        let visible = derive(&VisibleInputs {
            queued: true,
            ..inputs(&[closing])
        });
        assert_eq!(visible.state, ConnectionState::Queued);
    }

    #[test]
    fn a_connected_peer_stays_completed_while_its_replacement_shakes_hands() {
        let links = [link(ConnectionState::Initiated, 0)];
        let visible = derive(&VisibleInputs {
            connected: true,
            ..inputs(&links)
        });
        assert_eq!(visible.state, ConnectionState::Completed);
        assert!(!visible.becomes_connected);
        // No link yet (the replacement is still in TLS), but one is awaited.
        let visible = derive(&VisibleInputs {
            connected: true,
            replacing: true,
            ..inputs(&[])
        });
        assert_eq!(visible.state, ConnectionState::Completed);
    }

    #[test]
    fn otherwise_the_newest_live_link_speaks_for_the_peer() {
        let links = [
            link(ConnectionState::ReceivedPairingRequest, 0),
            link(ConnectionState::Initiated, 7),
        ];
        assert_eq!(derive(&inputs(&links)).state, ConnectionState::Initiated);
    }

    #[test]
    fn a_hello_that_ended_keeps_the_shown_state_until_the_link_ends() {
        let links = [link(ConnectionState::RemoteDeniedTrust, 0)];
        let visible = derive(&VisibleInputs {
            shown: ConnectionState::Trusted,
            ..inputs(&links)
        });
        assert_eq!(visible.state, ConnectionState::Trusted);
    }

    /// Finding (issue 23): a link's engine reports `Error` before its cause, so the peer was
    /// shown `Error` with no words (`list`: `last_error: null`). The state is held until the
    /// link ends and its failure, with the cause, is shown.
    #[test]
    fn an_error_is_shown_when_the_link_ends_with_its_cause_not_before() {
        let links = [link(ConnectionState::Error, 0)];
        let visible = derive(&VisibleInputs {
            shown: ConnectionState::Pin,
            ..inputs(&links)
        });
        assert_eq!(visible.state, ConnectionState::Pin);
        let failure = LastFailure {
            failure: EndCause::Protocol(crate::protocol::CloseCause::PinRequired(
                crate::protocol::message::PinState::Required,
            )),
            detailed: None,
        };
        let visible = derive(&VisibleInputs {
            shown: ConnectionState::Pin,
            last_failure: Some(&failure),
            queued: true,
            ..inputs(&[])
        });
        assert_eq!(visible.state, ConnectionState::Error);
        assert!(visible.detail.failure.unwrap().to_string().contains("PIN"));
    }

    #[test]
    fn the_last_failure_is_shown_once_with_its_words() {
        let failure = keepalive_failure();
        let visible = derive(&VisibleInputs {
            last_failure: Some(&failure),
            queued: true,
            ..inputs(&[])
        });
        assert_eq!(visible.state, ConnectionState::Error);
        assert_eq!(visible.detail.failure, Some(EndCause::KeepaliveTimeout));
        assert_eq!(
            visible.detail.failure.unwrap().to_string(),
            "no pong within the keepalive timeout"
        );
        assert!(visible.failure_consumed);
        // Already shown: consumed, and the peer moves on.
        let visible = derive(&VisibleInputs {
            shown: ConnectionState::Error,
            last_failure: Some(&failure),
            queued: true,
            ..inputs(&[])
        });
        assert_eq!(visible.state, ConnectionState::Queued);
        assert!(visible.failure_consumed);
    }

    #[test]
    fn a_failure_waits_while_a_link_is_alive() {
        let failure = keepalive_failure();
        let links = [link(ConnectionState::Initiated, 0)];
        let visible = derive(&VisibleInputs {
            last_failure: Some(&failure),
            ..inputs(&links)
        });
        assert_eq!(visible.state, ConnectionState::Initiated);
        assert!(!visible.failure_consumed);
    }

    #[test]
    fn without_links_a_dial_is_initiated_a_paired_peer_queued_else_none() {
        let dialling = derive(&VisibleInputs {
            dialling: true,
            queued: true,
            ..inputs(&[])
        });
        assert_eq!(dialling.state, ConnectionState::Initiated);
        let queued = derive(&VisibleInputs {
            queued: true,
            ..inputs(&[])
        });
        assert_eq!(queued.state, ConnectionState::Queued);
        let none = derive(&inputs(&[]));
        assert_eq!(none.state, ConnectionState::None);
        assert!(!none.failure_consumed && !none.becomes_connected);
        assert_eq!(none.detail.failure, None);
    }

    /// A link's end as a failure and as a disconnect's reason: the hub's own closes are no
    /// failure, the end of hello is `Hello`, an orderly close by the peer only a reason.
    #[test]
    fn a_links_end_is_a_failure_and_a_reason() {
        use crate::protocol::{CloseCause, CloseReason};
        let error = ConnectionState::Error;
        let denied = ConnectionState::RemoteDeniedTrust;
        let lost = LinkEnd::Protocol(CloseCause::TransportClosed);
        let graceful = LinkEnd::Protocol(CloseCause::RemoteClosed { reason: None });
        let ours = LinkEnd::Protocol(CloseCause::LocalClose(CloseReason::Unspecific));
        assert_eq!(
            failure_of(&lost, false, error),
            Some(EndCause::Protocol(CloseCause::TransportClosed))
        );
        assert_eq!(
            failure_of(&lost, false, denied),
            Some(EndCause::Hello(CloseCause::TransportClosed))
        );
        assert_eq!(failure_of(&lost, true, error), None);
        assert_eq!(failure_of(&graceful, false, error), None);
        assert_eq!(failure_of(&LinkEnd::Aborted, false, error), None);
        assert_eq!(
            failure_of(&LinkEnd::KeepaliveTimeout, true, error),
            Some(EndCause::KeepaliveTimeout)
        );
        assert_eq!(
            failure_of(&LinkEnd::Backpressure, false, error),
            Some(EndCause::Backpressure)
        );
        assert_eq!(
            failure_of(&LinkEnd::HandshakeDeadline, false, error),
            Some(EndCause::HandshakeDeadline)
        );

        assert_eq!(reason_of(ours, true), EndCause::Local);
        assert_eq!(
            reason_of(graceful, false),
            EndCause::Protocol(CloseCause::RemoteClosed { reason: None })
        );
        assert_eq!(reason_of(LinkEnd::Aborted, true), EndCause::Shutdown);
        assert_eq!(
            reason_of(LinkEnd::KeepaliveTimeout, false),
            EndCause::KeepaliveTimeout
        );
    }
}
