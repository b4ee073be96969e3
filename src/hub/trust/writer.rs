//! The hub's trust writer: persists the hub's pairing changes (see
//! [`crate::hub::runtime::pairings`]) to the trust store, in order, in the background, in
//! batches, and without wearing out the disk: pairings stored and removed (by the application
//! or by the hub's own decisions) and what the supervisors learn about paired peers (SHIP ID,
//! last address, last seen).
//!
//! Every reconnect of a peer brings a new `last_seen`. Writing each one would replace the store
//! file (two fsyncs) per reconnect, for a value only shown to the user: so `last_seen` is
//! written at most once per peer per [`HubTimers::last_seen_write_interval`] (default 10 min),
//! unless the same update changes something else of the record anyway. A learnt SHIP ID or a
//! new last address is always written, in the next batch: updates are collected for
//! [`HubTimers::trust_write_delay`] (default 1 s) and applied together, so a burst of
//! handshakes rewrites a file store about once per delay.
//!
//! [`HubTimers::last_seen_write_interval`]: crate::hub::HubTimers::last_seen_write_interval
//! [`HubTimers::trust_write_delay`]: crate::hub::HubTimers::trust_write_delay

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::{PairedPeer, TrustStore, TrustStoreError};
use crate::Ski;

/// One change for the trust writer, in the order the index took it.
#[derive(Debug)]
pub(crate) enum TrustWrite {
    /// A pairing made or changed (by the application, or by the hub's own decision): the
    /// whole record, stored as it is ([`crate::hub::TrustStore::upsert`]).
    Store(PairedPeer),
    /// A pairing removed ([`crate::hub::TrustStore::remove`]).
    Remove(Ski),
    /// What a supervisor learnt about a paired peer (SHIP ID, last address, last seen, an
    /// accepted PIN): merged into the stored record if it still exists
    /// ([`crate::hub::TrustStore::update_existing`]), `last_seen` at most once per interval.
    Learned(PairedPeer),
    /// Answer once everything queued before is applied: `Err` with the first write that
    /// failed since the previous answer.
    Saved(oneshot::Sender<Result<(), TrustStoreError>>),
}

/// What one batch holds: pairings stored and removed, in order; what the supervisors learnt
/// (the latest per SKI); who waits for the answer.
#[derive(Default)]
struct Batch {
    ordered: Vec<TrustWrite>,
    learned: BTreeMap<Ski, PairedPeer>,
    answers: Vec<oneshot::Sender<Result<(), TrustStoreError>>>,
}

impl Batch {
    /// Takes `write` in; `true` if someone waits for this batch (apply it now).
    fn push(&mut self, write: TrustWrite) -> bool {
        match write {
            TrustWrite::Learned(peer) => {
                self.learned.insert(peer.ski, peer);
            }
            TrustWrite::Saved(answer) => {
                self.answers.push(answer);
                return true;
            }
            other => self.ordered.push(other),
        }
        false
    }
}

/// Applies the hub's pairing changes in order, in batches, off the runtime's worker threads:
/// once a change arrives, everything that arrives within `delay` goes into the same batch (the
/// latest learnt update per SKI, so learnt updates rewrite a file store about once per delay).
/// A batch someone waits for ([`TrustWrite::Saved`]) is applied at once. A failed write is
/// logged, given to `report` (the application's `trust_store_failed`) and to the next waiter.
/// Ends at shutdown once the queue is empty; at shutdown a pending batch is applied at once.
pub(crate) async fn run(
    trust: Arc<dyn TrustStore>,
    mut queue: mpsc::UnboundedReceiver<TrustWrite>,
    stop: CancellationToken,
    last_seen_interval: Duration,
    delay: Duration,
    report: impl Fn(&TrustStoreError) + Send + 'static,
) {
    let mut failed: Option<TrustStoreError> = None;
    loop {
        let write = tokio::select! {
            biased;
            write = queue.recv() => match write {
                Some(write) => write,
                None => return,
            },
            _ = stop.cancelled() => match queue.try_recv() {
                Ok(write) => write,
                Err(_) => return,
            },
        };
        let mut batch = Batch::default();
        let mut now = batch.push(write);
        let deadline = tokio::time::Instant::now() + delay;
        while !now {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                // Before the queue: a queue that never runs dry must not hold the batch back.
                _ = tokio::time::sleep_until(deadline) => break,
                next = queue.recv() => match next {
                    Some(next) => now = batch.push(next),
                    None => break,
                },
            }
        }
        while !now && let Ok(next) = queue.try_recv() {
            now = batch.push(next);
        }
        let answers = std::mem::take(&mut batch.answers);
        let trust = trust.clone();
        let result =
            tokio::task::spawn_blocking(move || apply_batch(&*trust, batch, last_seen_interval))
                .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                tracing::warn!(%error, "could not update the trust store");
                report(&error);
                failed.get_or_insert(error);
            }
            Err(error) => tracing::warn!(%error, "trust store update panicked"),
        }
        if !answers.is_empty() {
            // Told to every waiter of this batch; the next waiter hears only of later failures.
            let failure = failed.take();
            for answer in answers {
                let _ = answer.send(match failure.as_ref() {
                    Some(error) => Err(error.duplicate()),
                    None => Ok(()),
                });
            }
        }
    }
}

/// Applies one batch: the pairings stored and removed, in order (each tried even if one
/// before failed), then what was learnt, in one [`apply`]. The first failure is returned.
fn apply_batch(
    trust: &dyn TrustStore,
    batch: Batch,
    last_seen_interval: Duration,
) -> Result<(), TrustStoreError> {
    let mut first = None;
    for write in batch.ordered {
        let result = match write {
            TrustWrite::Store(peer) => trust.upsert(peer),
            TrustWrite::Remove(ski) => trust.remove(&ski).map(drop),
            TrustWrite::Learned(_) | TrustWrite::Saved(_) => Ok(()),
        };
        if let Err(error) = result {
            first.get_or_insert(error);
        }
    }
    if !batch.learned.is_empty()
        && let Err(error) = apply(trust, &batch.learned, last_seen_interval)
    {
        first.get_or_insert(error);
    }
    first.map_or(Ok(()), Err)
}
/// Applies one batch (the latest update per SKI) to the pairings that still exist, in one
/// atomic [`TrustStore::update_existing`] call: a pairing removed meanwhile stays removed.
pub(crate) fn apply(
    trust: &dyn TrustStore,
    batch: &BTreeMap<Ski, PairedPeer>,
    last_seen_interval: Duration,
) -> Result<(), TrustStoreError> {
    let skis: Vec<Ski> = batch.keys().copied().collect();
    trust.update_existing(&skis, &mut |stored| {
        if let Some(update) = batch.get(&stored.ski) {
            merge(stored, update, last_seen_interval);
        }
    })
}

/// Takes into `stored` what the hub learnt (`update`'s SHIP ID, last address and accepted PIN
/// when it has them; its `last_seen` when due, see the module documentation). The name is the user's and
/// stays as stored.
fn merge(stored: &mut PairedPeer, update: &PairedPeer, last_seen_interval: Duration) {
    let mut changed = false;
    if update.ship_id.is_some() && update.ship_id != stored.ship_id {
        stored.ship_id = update.ship_id.clone();
        changed = true;
    }
    if update.last_address.is_some() && update.last_address != stored.last_address {
        stored.last_address = update.last_address;
        changed = true;
    }
    // A PIN the peer accepted (entered by the application) is kept for the next connection.
    if update.pin.is_some() && update.pin != stored.pin {
        stored.pin = update.pin.clone();
        changed = true;
    }
    if let Some(seen) = update.last_seen {
        let due = stored
            .last_seen
            .is_none_or(|previous| distance(previous, seen) >= last_seen_interval);
        if due || changed {
            stored.last_seen = Some(seen);
        }
    }
}

/// How far apart two wall-clock times are, in either direction (the clock may have been set
/// back since `last_seen` was stored).
fn distance(a: SystemTime, b: SystemTime) -> Duration {
    b.duration_since(a)
        .or_else(|_| a.duration_since(b))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::FileTrustStore;
    use std::net::SocketAddr;

    /// Updates of 100 peers arriving in two bursts 50 ms apart, within the delay: one batch, so
    /// the file is written once, with every update in it. (Batching only what was queued at the
    /// moment wrote it twice.)
    #[tokio::test]
    async fn updates_arriving_within_the_delay_are_written_in_one_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileTrustStore::new(dir.path().join("trust.json")));
        let skis: Vec<Ski> = (1..=100u8).map(|n| Ski::from_bytes([n; 20])).collect();
        for ski in &skis {
            store.upsert(PairedPeer::new(*ski)).unwrap();
        }
        let before = store.writes();
        let (queue, receiver) = mpsc::unbounded_channel();
        let writer = tokio::spawn(run(
            store.clone(),
            receiver,
            CancellationToken::new(),
            Duration::from_secs(600),
            Duration::from_secs(5),
            |_: &TrustStoreError| {},
        ));
        let update = |ski: Ski, n: usize| {
            let mut peer = PairedPeer::new(ski);
            peer.last_address = Some(SocketAddr::from(([192, 168, 1, 1], 4000 + n as u16)));
            peer
        };
        for (n, ski) in skis.iter().enumerate().take(50) {
            queue.send(TrustWrite::Learned(update(*ski, n))).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        for (n, ski) in skis.iter().enumerate().skip(50) {
            queue.send(TrustWrite::Learned(update(*ski, n))).unwrap();
        }
        drop(queue);
        writer.await.unwrap();
        assert_eq!(store.writes() - before, 1, "100 updates, one write");
        for (n, ski) in skis.iter().enumerate() {
            assert_eq!(
                store.get(ski).unwrap().unwrap().last_address,
                update(*ski, n).last_address
            );
        }
    }

    /// At shutdown a pending batch is applied at once, not after the delay.
    #[tokio::test]
    async fn a_stop_applies_the_pending_batch_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(FileTrustStore::new(dir.path().join("trust.json")));
        let ski = Ski::from_bytes([7; 20]);
        store.upsert(PairedPeer::new(ski)).unwrap();
        let (queue, receiver) = mpsc::unbounded_channel();
        let stop = CancellationToken::new();
        let writer = tokio::spawn(run(
            store.clone(),
            receiver,
            stop.clone(),
            Duration::from_secs(600),
            Duration::from_secs(3600),
            |_: &TrustStoreError| {},
        ));
        let mut peer = PairedPeer::new(ski);
        peer.last_address = Some(SocketAddr::from(([192, 168, 1, 1], 4712)));
        queue.send(TrustWrite::Learned(peer.clone())).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .expect("the writer ends at once")
            .unwrap();
        assert_eq!(store.get(&ski).unwrap(), Some(peer));
    }
}
