//! The hub's trust writer: applies what the supervisors learn about paired peers (SHIP ID, last
//! address, last seen) to the trust store, in the background, in batches, and without wearing
//! out the disk.
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

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{PairedPeer, TrustStore, TrustStoreError};
use crate::Ski;

/// Applies pairing updates in order, in batches, off the runtime's worker threads: once an
/// update arrives, everything that arrives within `delay` goes into the same batch (the latest
/// update per SKI, so a batch holds at most one record per paired peer). Ends at shutdown once
/// the queue is empty; at shutdown a pending batch is applied at once.
pub(crate) async fn run(
    trust: Arc<dyn TrustStore>,
    mut queue: mpsc::UnboundedReceiver<PairedPeer>,
    stop: CancellationToken,
    last_seen_interval: Duration,
    delay: Duration,
) {
    loop {
        let peer = tokio::select! {
            biased;
            peer = queue.recv() => match peer {
                Some(peer) => peer,
                None => return,
            },
            _ = stop.cancelled() => match queue.try_recv() {
                Ok(peer) => peer,
                Err(_) => return,
            },
        };
        // Each update is a whole record, sent in order: the latest per SKI wins. A file store
        // then rewrites its file once per batch, not once per update (docs/performance.md).
        let mut batch = BTreeMap::new();
        batch.insert(peer.ski, peer);
        let deadline = tokio::time::Instant::now() + delay;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                // Before the queue: a queue that never runs dry must not hold the batch back.
                _ = tokio::time::sleep_until(deadline) => break,
                next = queue.recv() => match next {
                    Some(next) => {
                        batch.insert(next.ski, next);
                    }
                    None => break,
                },
            }
        }
        while let Ok(next) = queue.try_recv() {
            batch.insert(next.ski, next);
        }
        let trust = trust.clone();
        let result =
            tokio::task::spawn_blocking(move || apply(&*trust, &batch, last_seen_interval)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not update the trust store"),
            Err(error) => tracing::warn!(%error, "trust store update panicked"),
        }
    }
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
        ));
        let update = |ski: Ski, n: usize| {
            let mut peer = PairedPeer::new(ski);
            peer.last_address = Some(SocketAddr::from(([192, 168, 1, 1], 4000 + n as u16)));
            peer
        };
        for (n, ski) in skis.iter().enumerate().take(50) {
            queue.send(update(*ski, n)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        for (n, ski) in skis.iter().enumerate().skip(50) {
            queue.send(update(*ski, n)).unwrap();
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
        ));
        let mut peer = PairedPeer::new(ski);
        peer.last_address = Some(SocketAddr::from(([192, 168, 1, 1], 4712)));
        queue.send(peer.clone()).unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), writer)
            .await
            .expect("the writer ends at once")
            .unwrap();
        assert_eq!(store.get(&ski).unwrap(), Some(peer));
    }
}
