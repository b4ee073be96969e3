//! The hub's pairings in memory ([`Pairings`]): loaded from the trust store once at start,
//! changed only by the hub itself (the application's calls, its own decisions, what the
//! supervisors learn), and written back by the trust writer in the background.
//!
//! Admission, routing, sightings and every [`crate::hub::Hub`] call read and change this index
//! only, so none of them waits for the disk: a slow or failing store delays nothing but its own
//! write. Each change is queued for the writer while the index's lock is held, so the writer
//! applies them in the order the index took them (an unpair is never undone by an earlier
//! pairing written late). What the application must know is on disk, it awaits with
//! [`crate::hub::Hub::pairings_saved`].

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};

use crate::Ski;
use crate::hub::trust::writer::TrustWrite;
use crate::hub::trust::{PairedPeer, TrustStoreError};
use crate::sync::lock;

/// The pairings, by SKI, and the queue to the trust writer.
pub(crate) struct Pairings {
    peers: Mutex<HashMap<Ski, PairedPeer>>,
    writes: mpsc::UnboundedSender<TrustWrite>,
}

impl Pairings {
    /// The index of `stored` (the store's content at start); changes go to `writes`.
    pub(crate) fn new(stored: Vec<PairedPeer>, writes: mpsc::UnboundedSender<TrustWrite>) -> Self {
        Pairings {
            peers: Mutex::new(stored.into_iter().map(|p| (p.ski, p)).collect()),
            writes,
        }
    }

    /// The pairing of `ski`, if it is paired.
    pub(crate) fn get(&self, ski: &Ski) -> Option<PairedPeer> {
        lock(&self.peers).get(ski).cloned()
    }

    /// Whether `ski` is paired.
    pub(crate) fn contains(&self, ski: &Ski) -> bool {
        lock(&self.peers).contains_key(ski)
    }

    /// Every pairing, sorted by SKI.
    pub(crate) fn all(&self) -> Vec<PairedPeer> {
        let mut all: Vec<PairedPeer> = lock(&self.peers).values().cloned().collect();
        all.sort_by_key(|p| p.ski);
        all
    }

    /// Every paired SKI.
    pub(crate) fn skis(&self) -> Vec<Ski> {
        lock(&self.peers).keys().copied().collect()
    }

    /// Changes the pairing of `ski` (a new one if it has none) with `change`, and queues it to
    /// be stored. Returns the record as it is now.
    pub(crate) fn change(&self, ski: Ski, change: impl FnOnce(&mut PairedPeer)) -> PairedPeer {
        let mut peers = lock(&self.peers);
        let peer = peers.entry(ski).or_insert_with(|| PairedPeer::new(ski));
        self.store(ski, peer, change)
    }

    /// Changes the pairing of `ski` with `change` if `ski` is paired (never pairs it), and
    /// queues it to be stored. Returns the record as it is now, or `None` if not paired.
    pub(crate) fn change_existing(
        &self,
        ski: Ski,
        change: impl FnOnce(&mut PairedPeer),
    ) -> Option<PairedPeer> {
        let mut peers = lock(&self.peers);
        let peer = peers.get_mut(&ski)?;
        Some(self.store(ski, peer, change))
    }

    /// Applies `change` to `peer` (the record of `ski`, under the index's lock) and queues it:
    /// under the lock, so the writer sees the changes in the index's order.
    fn store(
        &self,
        ski: Ski,
        peer: &mut PairedPeer,
        change: impl FnOnce(&mut PairedPeer),
    ) -> PairedPeer {
        change(peer);
        peer.ski = ski;
        let peer = peer.clone();
        let _ = self.writes.send(TrustWrite::Store(peer.clone()));
        peer
    }

    /// Removes the pairing of `ski` and queues the removal; returns whether it was paired.
    pub(crate) fn remove(&self, ski: &Ski) -> bool {
        let mut peers = lock(&self.peers);
        let existed = peers.remove(ski).is_some();
        if existed {
            let _ = self.writes.send(TrustWrite::Remove(*ski));
        }
        existed
    }

    /// Takes what a supervisor learnt (`update`'s SHIP ID, last address, accepted PIN when it
    /// has them, and its `last_seen`) into the pairing, if `update.ski` is still paired, and
    /// queues it for the writer. The name is the user's and stays.
    pub(crate) fn learned(&self, update: PairedPeer) {
        let mut peers = lock(&self.peers);
        let Some(peer) = peers.get_mut(&update.ski) else {
            return;
        };
        // The learnt fields only: the name and `paired_by_service` are not the supervisor's.
        peer.merge(PairedPeer {
            name: None,
            paired_by_service: false,
            ..update.clone()
        });
        let _ = self.writes.send(TrustWrite::Learned(update));
    }

    /// A receiver of the answer once every change queued so far is applied (see
    /// [`TrustWrite::Saved`]); `None` if the writer has ended (the hub shut down).
    pub(crate) fn saved(&self) -> Option<oneshot::Receiver<Result<(), TrustStoreError>>> {
        let (answer, receiver) = oneshot::channel();
        self.writes.send(TrustWrite::Saved(answer)).ok()?;
        Some(receiver)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ski(n: u8) -> Ski {
        Ski::from_bytes([n; 20])
    }

    fn drain(queue: &mut mpsc::UnboundedReceiver<TrustWrite>) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(write) = queue.try_recv() {
            seen.push(match write {
                TrustWrite::Store(p) => format!("store {}", p.ski),
                TrustWrite::Remove(s) => format!("remove {s}"),
                TrustWrite::Learned(p) => format!("learned {}", p.ski),
                TrustWrite::Saved(_) => "saved".to_owned(),
            });
        }
        seen
    }

    #[test]
    fn every_change_is_queued_in_the_order_the_index_took_it() {
        let (writes, mut queue) = mpsc::unbounded_channel();
        let pairings = Pairings::new(vec![PairedPeer::new(ski(1))], writes);
        assert!(pairings.contains(&ski(1)));
        let made = pairings.change(ski(2), |p| p.name = Some("Heat pump".into()));
        assert_eq!(made.name.as_deref(), Some("Heat pump"));
        let mut learnt = PairedPeer::new(ski(2));
        learnt.last_address = Some(([192, 168, 1, 9], 4712).into());
        learnt.name = Some("not the user's".into());
        pairings.learned(learnt);
        assert!(pairings.remove(&ski(2)));
        assert!(!pairings.remove(&ski(2)), "removed once");
        // What a supervisor learns about a peer no longer paired is dropped, not re-created.
        pairings.learned(PairedPeer::new(ski(2)));
        assert_eq!(
            drain(&mut queue),
            [
                format!("store {}", ski(2)),
                format!("learned {}", ski(2)),
                format!("remove {}", ski(2)),
            ]
        );
        assert_eq!(pairings.skis(), [ski(1)]);
    }

    #[test]
    fn what_is_learnt_keeps_the_users_name_and_fills_in_the_rest() {
        let (writes, _queue) = mpsc::unbounded_channel();
        let pairings = Pairings::new(Vec::new(), writes);
        pairings.change(ski(3), |p| p.name = Some("Wallbox".into()));
        let mut learnt = PairedPeer::new(ski(3));
        learnt.name = Some("announced".into());
        learnt.ship_id = Some(crate::ShipId::new("WB-1").unwrap());
        learnt.last_seen = Some(std::time::SystemTime::UNIX_EPOCH);
        pairings.learned(learnt);
        let peer = pairings.get(&ski(3)).unwrap();
        assert_eq!(peer.name.as_deref(), Some("Wallbox"));
        assert_eq!(peer.ship_id.unwrap().as_str(), "WB-1");
        assert_eq!(peer.last_seen, Some(std::time::SystemTime::UNIX_EPOCH));
        assert_eq!(pairings.all().len(), 1);
    }
}
