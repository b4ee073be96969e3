//! The hub's pairings live in memory: admission, routing, `pair`, `approve` and `unpair` never
//! wait for the trust store, which is written in the background, in order; `pairings_saved`
//! waits for the disk and reports a store that failed. Real loopback sockets.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ship_hub::Ski;
use ship_hub::hub::{HubError, MemoryTrustStore, PairedPeer, TrustStore, TrustStoreError};
use ship_test_support::common::{Recorder, Seen, identity, loopback_config, start};
use ship_test_support::stores::TestStore;

const WAIT: Duration = Duration::from_secs(20);

/// With the store hanging from the start on: a peer paired before the start is admitted and
/// connects, a new peer's request is approved and it connects, another is paired and unpaired;
/// the hub never reads the store after loading it, and `pairings_saved` waits until the store
/// has taken every change, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_routing_and_approve_never_wait_for_a_hanging_trust_store() {
    let known = identity("known");
    let newcomer = identity("newcomer");
    let store = Arc::new(TestStore::hanging());
    store.inner.upsert(PairedPeer::new(known.ski())).unwrap();
    let rec = Recorder::new();
    rec.let_wait.store(true, Ordering::SeqCst);
    let mut config = loopback_config(identity("hub"), "hub", &rec);
    config.trust_store = store.clone();
    let hub = start(config).await;
    assert_eq!(hub.pairings(), [PairedPeer::new(known.ski())]);

    // The peer paired before the start dials in: admitted from memory.
    let rk = Recorder::new();
    let k = start(loopback_config(known, "known", &rk)).await;
    k.pair(PairedPeer::new(hub.local_ski()).with_address(hub.local_addr()))
        .unwrap();
    let k_ski = k.local_ski();
    assert!(
        rec.wait_for(WAIT, |s| *s == Seen::Connected(k_ski)).await,
        "{:?}",
        rec.all()
    );

    // A new peer asks to be paired; approving it returns at once and it connects.
    let rn = Recorder::new();
    let n = start(loopback_config(newcomer, "newcomer", &rn)).await;
    n.pair(PairedPeer::new(hub.local_ski()).with_address(hub.local_addr()))
        .unwrap();
    let n_ski = n.local_ski();
    assert!(
        rec.wait_for(WAIT, |s| *s == Seen::PairingRequested(n_ski))
            .await
    );
    hub.approve(n_ski).unwrap();
    assert!(
        rec.wait_for(WAIT, |s| *s == Seen::Connected(n_ski)).await,
        "{:?}",
        rec.all()
    );
    assert!(hub.pairing(n_ski).is_some());

    // Paired and unpaired again: the last word is the unpair.
    let gone = Ski::from_bytes([0x5a; 20]);
    hub.pair(PairedPeer::new(gone).with_name("short-lived"))
        .unwrap();
    hub.unpair(gone).unwrap();
    assert_eq!(hub.pairing(gone), None);

    // Nothing reached the disk yet, and nothing waited for it.
    assert_eq!(store.reads(), 0, "a read after start");
    assert_eq!(store.loads(), 1);
    assert_eq!(store.inner.get(&n_ski).unwrap(), None);
    let saved = tokio::spawn({
        let hub = hub.clone();
        async move { hub.pairings_saved().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!saved.is_finished(), "saved while the store hangs");

    store.open();
    saved.await.unwrap().unwrap();
    assert!(
        store.inner.get(&n_ski).unwrap().is_some(),
        "approval stored"
    );
    assert_eq!(store.inner.get(&gone).unwrap(), None, "unpair stored last");
    assert!(store.inner.get(&k_ski).unwrap().is_some());
    assert_eq!(store.reads(), 0);
    k.shutdown().await;
    n.shutdown().await;
    hub.shutdown().await;
}

/// A failed write keeps the pairing in the hub's memory, is reported to the next
/// `pairings_saved` (with the file), once, and to the application as an event.
#[tokio::test]
async fn a_failed_write_is_reported_to_the_next_waiter_once_and_as_an_event() {
    let rec = Recorder::new();
    let mut config = loopback_config(identity("hub"), "hub", &rec);
    config.trust_store = Arc::new(TestStore::failing_upserts("/nowhere/pairings.json"));
    let (hub, mut events) = ship_hub::hub::Hub::start_with_events(config).await.unwrap();
    let ski = Ski::from_bytes([0x42; 20]);
    hub.pair(PairedPeer::new(ski).with_name("Heat pump"))
        .unwrap();
    assert_eq!(
        hub.pairing(ski).and_then(|p| p.name).as_deref(),
        Some("Heat pump")
    );
    match hub.pairings_saved().await {
        Err(HubError::TrustStore(TrustStoreError::Io { path, .. })) => {
            assert_eq!(path, std::path::Path::new("/nowhere/pairings.json"));
        }
        other => panic!("{other:?}"),
    }
    hub.pairings_saved().await.expect("reported once");
    let reported = tokio::time::timeout(WAIT, async {
        loop {
            match events.next().await {
                Some(ship_hub::hub::HubEvent::TrustStoreFailed(error)) => break error,
                Some(_) => {}
                None => panic!("the stream ended without the failure"),
            }
        }
    })
    .await
    .expect("the failure is an event");
    assert_eq!(
        reported.path(),
        std::path::Path::new("/nowhere/pairings.json")
    );
    hub.shutdown().await;
    assert!(matches!(
        hub.pairings_saved().await,
        Err(HubError::ShutDown)
    ));
}

/// Pairing again with some fields keeps the others; `paired_by_service` and the stored name
/// are not lost to a later `pair` of the SKI alone; an address is refused before anything is
/// stored when it cannot be dialled.
#[tokio::test]
async fn pairing_again_fills_in_and_keeps_what_is_stored() {
    let rec = Recorder::new();
    let store = Arc::new(MemoryTrustStore::default());
    let mut config = loopback_config(identity("hub"), "hub", &rec);
    config.trust_store = store.clone();
    let hub = start(config).await;
    let ski = Ski::from_bytes([0x17; 20]);
    hub.pair(PairedPeer::new(ski).with_name("Wallbox")).unwrap();
    hub.pair(ski).unwrap();
    let id = ship_hub::ShipId::new("WB-7").unwrap();
    hub.pair(PairedPeer::new(ski).with_ship_id(id.clone()))
        .unwrap();
    let unusable = "0.0.0.0:4712".parse().unwrap();
    assert!(matches!(
        hub.pair(PairedPeer::new(Ski::from_bytes([0x18; 20])).with_address(unusable)),
        Err(HubError::Address(_))
    ));
    assert_eq!(hub.pairing(Ski::from_bytes([0x18; 20])), None);
    assert!(matches!(
        hub.pair(hub.local_ski()),
        Err(HubError::OwnSki(_))
    ));
    hub.pairings_saved().await.unwrap();
    let stored = store.get(&ski).unwrap().unwrap();
    assert_eq!(stored.name.as_deref(), Some("Wallbox"));
    assert_eq!(stored.ship_id, Some(id));
    assert_eq!(hub.pairing(ski), Some(stored));
    assert_eq!(hub.pairings().len(), 1);
    hub.shutdown().await;
}
