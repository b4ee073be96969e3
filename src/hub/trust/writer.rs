//! The hub's trust writer: applies what the supervisors learn about paired peers (SHIP ID, last
//! address, last seen) to the trust store, in the background, in batches, and without wearing
//! out the disk.
//!
//! Every reconnect of a peer brings a new `last_seen`. Writing each one would replace the store
//! file (two fsyncs) per reconnect, for a value only shown to the user: so `last_seen` is
//! written at most once per peer per [`HubTimers::last_seen_write_interval`] (default 10 min),
//! unless the same update changes something else of the record anyway. A learnt SHIP ID or a
//! new last address is always written at once.
//!
//! [`HubTimers::last_seen_write_interval`]: crate::hub::HubTimers::last_seen_write_interval

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{PairedPeer, TrustStore, TrustStoreError};
use crate::Ski;

/// Most pairing updates applied in one trust-store call.
const MAX_TRUST_BATCH: usize = 1024;

/// Applies pairing updates in order, in batches, off the runtime's worker threads. Ends at
/// shutdown once the queue is empty.
pub(crate) async fn run(
    trust: Arc<dyn TrustStore>,
    mut queue: mpsc::UnboundedReceiver<PairedPeer>,
    stop: CancellationToken,
    last_seen_interval: Duration,
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
        // Everything queued meanwhile goes in the same batch, the latest update per SKI (each is
        // a whole record, sent in order): a file store then writes once, not once per update
        // (docs/performance.md).
        let mut batch = BTreeMap::new();
        batch.insert(peer.ski, peer);
        while batch.len() < MAX_TRUST_BATCH
            && let Ok(next) = queue.try_recv()
        {
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

/// Takes into `stored` what the hub learnt (`update`'s SHIP ID and last address when it has
/// them; its `last_seen` when due, see the module documentation). The name is the user's and
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
