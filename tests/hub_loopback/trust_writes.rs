//! How often a running hub rewrites its trust store while a paired peer keeps reconnecting
//! (real loopback sockets, a `FileTrustStore` on disk): `last_seen` is written at most once per
//! `HubTimers::last_seen_write_interval`, so reconnects cost no writes once the peer is known.

use ship_test_support::common;
use ship_test_support::harness;

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::{Stage, Victim, WAIT, advance, connect};
use ship_hub::hub::{FileTrustStore, PairedPeer, TrustStore};

use common::{Seen, identity};

/// How many times the peer reconnects.
const RECONNECTS: usize = 500;

/// Waits until the stored record of `ski` satisfies `f` (the trust writer works in the
/// background).
async fn wait_for_record(
    store: &FileTrustStore,
    ski: ship_hub::Ski,
    f: impl Fn(&PairedPeer) -> bool,
) {
    let started = Instant::now();
    while !store.get(&ski).unwrap().as_ref().is_some_and(&f) {
        assert!(
            started.elapsed() < WAIT,
            "the record of {ski} never got there"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_peer_reconnecting_500_times_rewrites_the_store_only_at_its_first_connection() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(FileTrustStore::new(dir.path().join("pairings.json")));
    let peer = identity("reconnecting");
    let ski = peer.ski();
    store.upsert(PairedPeer::new(ski)).unwrap();
    let trust: Arc<dyn TrustStore> = store.clone();
    let victim = Victim::start_with(move |config| config.trust_store = trust).await;
    let reconnect = |n: usize| {
        let (victim, peer) = (&victim, &peer);
        async move {
            let mut socket = connect(victim, peer).await;
            advance(&mut socket, Stage::DataExchange).await;
            assert!(
                victim
                    .rec
                    .wait_for(WAIT, |s| *s == Seen::Connected(ski))
                    .await
            );
            drop(socket);
            let ended = |s: &Seen| matches!(s, Seen::Disconnected(k, _) if *k == ski);
            let waited = Instant::now();
            while victim.rec.count(ended) < n {
                assert!(waited.elapsed() < WAIT, "connection {n} never ended");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    // The first connection of each peer is written (SHIP ID, address, last seen).
    let friend = victim.friend.local_ski();
    wait_for_record(&store, friend, |p| {
        p.ship_id.is_some() && p.last_seen.is_some()
    })
    .await;
    let at_start = store.writes();
    reconnect(1).await;
    wait_for_record(&store, ski, |p| {
        p.ship_id.is_some() && p.last_seen.is_some()
    })
    .await;
    // Let the trust writer apply whatever else was queued.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let first = store.writes() - at_start;

    let started = Instant::now();
    let before = store.writes();
    for n in 2..=RECONNECTS {
        reconnect(n).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let writes = store.writes() - before;
    eprintln!(
        "first connection: {first} rewrites of the trust store; then {} reconnects over {:?}: \
         {writes} rewrites ({} fsyncs)",
        RECONNECTS - 1,
        started.elapsed(),
        2 * writes
    );
    assert!(first >= 1, "the first connection was never written");
    assert_eq!(writes, 0, "reconnects rewrote the trust store");
    victim.assert_serving().await;
    victim.stop().await;
}
