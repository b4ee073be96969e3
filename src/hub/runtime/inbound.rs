//! The inbound data budget: how many bytes of received data may wait inside the hub (and in the
//! application, while it holds a [`Delivery`]) before links stop reading their sockets.
//!
//! A link charges every data payload it reads to its peer's [`PeerBudget`] (and through it to
//! the hub-wide [`InboundTotal`]); the charge travels with the payload through the supervisor and
//! the callback queue and is released when the application is done with it (the [`Delivery`]
//! or its [`DeliveryToken`] is dropped). A link whose peer is over budget does not read its
//! socket until charges are released, so TCP flow control pushes back on the sender instead of
//! the hub's memory growing. See the "Backpressure" section of `docs/architecture.md`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::Ski;

/// Bookkeeping bytes charged per message on top of its payload, so that many tiny messages are
/// bounded too (a queued message also costs its event, queue slot and vector header).
pub(crate) const PER_MESSAGE_CHARGE: usize = 256;

/// The hub-wide count of charged inbound bytes, and the signal links wait on while over budget.
#[derive(Debug)]
pub(crate) struct InboundTotal {
    used: AtomicUsize,
    peak: AtomicUsize,
    limit: usize,
    released: Notify,
}

impl InboundTotal {
    pub(crate) fn new(limit: usize) -> Arc<InboundTotal> {
        Arc::new(InboundTotal {
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            limit,
            released: Notify::new(),
        })
    }

    /// Bytes charged now, hub-wide.
    pub(crate) fn queued(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The most bytes ever charged at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Fires (for every waiter) whenever charged bytes are released anywhere.
    pub(crate) fn released(&self) -> &Notify {
        &self.released
    }
}

/// One peer's share: its charged bytes and its limit.
#[derive(Debug)]
pub(crate) struct PeerBudget {
    used: AtomicUsize,
    limit: usize,
    total: Arc<InboundTotal>,
}

impl PeerBudget {
    pub(crate) fn new(limit: usize, total: Arc<InboundTotal>) -> Arc<PeerBudget> {
        Arc::new(PeerBudget {
            used: AtomicUsize::new(0),
            limit,
            total,
        })
    }

    /// May the link read one more message of up to `message` bytes? Yes while both this peer's
    /// and the hub's charged bytes stay within their limits after it; and always when nothing of
    /// this peer's is queued, so every peer progresses (one message at a time) even when the
    /// others hold the whole hub-wide budget or a limit is below one message.
    pub(crate) fn may_read(&self, message: usize) -> bool {
        let used = self.used.load(Ordering::Relaxed);
        let message = message.saturating_add(PER_MESSAGE_CHARGE);
        used == 0
            || (used.saturating_add(message) <= self.limit
                && self.total.queued().saturating_add(message) <= self.total.limit)
    }

    /// Bytes of this peer's charged now.
    pub(crate) fn queued(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(crate) fn total(&self) -> &Arc<InboundTotal> {
        &self.total
    }

    /// Charges `payload` (plus the per-message bookkeeping) until the returned charge is dropped.
    pub(crate) fn charge(self: &Arc<Self>, payload: usize) -> Charge {
        let bytes = payload.saturating_add(PER_MESSAGE_CHARGE);
        self.used.fetch_add(bytes, Ordering::Relaxed);
        let now = self.total.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.total.peak.fetch_max(now, Ordering::Relaxed);
        Charge {
            budget: self.clone(),
            bytes,
        }
    }
}

/// Bytes charged to a peer's budget; released (and waiting links woken) when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<PeerBudget>,
    bytes: usize,
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::Relaxed);
        self.budget
            .total
            .used
            .fetch_sub(self.bytes, Ordering::Relaxed);
        self.budget.total.released.notify_waiters();
    }
}

/// A received data message handed to the application: the payload and the share of the peer's
/// inbound budget it holds.
///
/// While a `Delivery` (or the [`DeliveryToken`] split off it) is alive, its bytes count against
/// the peer's [`crate::hub::Limits::max_inbound_bytes_per_peer`] and the hub's
/// [`crate::hub::Limits::max_inbound_bytes_total`]; when the budget is used up the hub stops
/// reading that peer's socket. Dropping it tells the hub the application is done with the
/// message. An application that consumes data asynchronously keeps the `Delivery` (or its token)
/// until it has processed the message, and so slows the peer down to its own pace.
///
/// Clones share the payload and the charge: the budget is released when the last clone (and
/// token) is gone. The hub hands one to [`crate::hub::Callbacks::data_delivered`] and one to each
/// [`crate::hub::HubEvents`] stream, so a stream that is not read holds its peers back as a
/// callback that keeps its deliveries would.
#[derive(Debug, Clone)]
pub struct Delivery {
    ski: Ski,
    payload: Arc<Vec<u8>>,
    charge: Arc<Charge>,
}

impl Delivery {
    pub(crate) fn new(ski: Ski, payload: Vec<u8>, charge: Charge) -> Delivery {
        Delivery {
            ski,
            payload: Arc::new(payload),
            charge: Arc::new(charge),
        }
    }

    /// The peer that sent it.
    pub fn ski(&self) -> Ski {
        self.ski
    }

    /// The SPINE payload, byte for byte as received.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Takes the payload out and keeps the budget charged until the token is dropped (for an
    /// application that stores or forwards the bytes and finishes with them later, or that
    /// needs only a small summary of the message but must hold the peer back until that is out).
    /// The bytes are copied only if another clone of this delivery is still alive.
    pub fn into_parts(self) -> (Vec<u8>, DeliveryToken) {
        let payload = Arc::try_unwrap(self.payload).unwrap_or_else(|shared| (*shared).clone());
        (
            payload,
            DeliveryToken {
                ski: self.ski,
                _charge: self.charge,
            },
        )
    }
}

/// The budget share of a [`Delivery`] whose payload was taken: released when dropped.
#[derive(Debug)]
pub struct DeliveryToken {
    ski: Ski,
    _charge: Arc<Charge>,
}

impl DeliveryToken {
    /// The peer whose budget it holds.
    pub fn ski(&self) -> Ski {
        self.ski
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_charge_released_with_the_last_of_them() {
        let total = InboundTotal::new(10_000);
        let peer = PeerBudget::new(1_000, total.clone());
        let ski = Ski::from_bytes([2; 20]);
        let first = Delivery::new(ski, vec![7; 100], peer.charge(100));
        let second = first.clone();
        assert_eq!(peer.queued(), 100 + PER_MESSAGE_CHARGE, "charged once");
        let (copied, token) = first.into_parts();
        assert_eq!(copied, vec![7; 100], "copied: the clone still shares it");
        drop(token);
        assert_eq!(
            peer.queued(),
            100 + PER_MESSAGE_CHARGE,
            "the clone still holds it"
        );
        let (payload, token) = second.into_parts();
        assert_eq!(payload, vec![7; 100]);
        drop(token);
        assert_eq!(peer.queued(), 0);
        assert_eq!(total.queued(), 0);
    }

    #[test]
    fn charges_are_released_when_the_delivery_or_its_token_is_dropped() {
        let total = InboundTotal::new(10_000);
        let peer = PeerBudget::new(1_000, total.clone());
        let ski = Ski::from_bytes([1; 20]);
        let first = Delivery::new(ski, vec![0; 300], peer.charge(300));
        assert_eq!(peer.queued(), 300 + PER_MESSAGE_CHARGE);
        assert_eq!(total.queued(), 300 + PER_MESSAGE_CHARGE);
        let (payload, token) = first.into_parts();
        drop(payload);
        assert_eq!(peer.queued(), 300 + PER_MESSAGE_CHARGE);
        drop(token);
        assert_eq!(peer.queued(), 0);
        assert_eq!(total.queued(), 0);
        assert_eq!(total.peak(), 300 + PER_MESSAGE_CHARGE);
    }

    #[test]
    fn a_peer_reads_while_within_its_and_the_hub_wide_limit_and_always_when_empty() {
        let total = InboundTotal::new(2_000);
        let a = PeerBudget::new(1_000, total.clone());
        let b = PeerBudget::new(1_000, total.clone());
        assert!(
            a.may_read(100_000),
            "an empty peer always reads one message"
        );
        let held = a.charge(300);
        assert!(a.may_read(100));
        assert!(!a.may_read(500), "over the peer's limit");
        let big = b.charge(1_300);
        assert!(!b.may_read(0), "b is over its own limit");
        assert!(
            !a.may_read(100),
            "within a's limit but over the hub-wide one"
        );
        drop(big);
        assert!(a.may_read(100));
        drop(held);
        assert_eq!(total.queued(), 0);
    }
}
