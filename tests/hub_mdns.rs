//! Two hubs with real mDNS discovery (mdns-sd) inside a private network namespace: found by
//! announcement only, paired, data exchanged; withdrawal at shutdown; default names.
//!
//! These tests create mDNS daemons, so they are `#[ignore]`d in a plain `cargo test` and run for
//! real by the README's test command (`bash .ci/test`), which runs the suite inside a network
//! namespace that has only loopback. Each test first checks that it is in such a namespace and
//! fails (never skips) otherwise.

mod common;
mod discovery_spoof;

use std::sync::Arc;
use std::time::Duration;

use common::{Recorder, Seen, assert_private_namespace, identity, loopback_config, start};
use discovery_spoof::{Announcer, Spoofer, rss_kib};
use ship_hub::discovery::{MdnsConfig, MdnsDiscovery};

const PATIENCE: Duration = Duration::from_secs(30);

fn mdns(ski: ship_hub::Ski) -> Arc<MdnsDiscovery> {
    assert_private_namespace();
    Arc::new(MdnsDiscovery::new(MdnsConfig::new(ski)).expect("mDNS daemon"))
}

async fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    f()
}

/// Two hubs with no static addresses find each other over mDNS, pair (each pre-trusts the
/// other's SKI), reach Completed and exchange data. After one shuts down, its withdrawn
/// announcement leaves the other's visible list. Both use default instance names and both are
/// visible.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via `bash .ci/test`"]
async fn two_hubs_discover_pair_and_exchange_data_over_mdns() {
    let (ida, idb) = (identity("a"), identity("b"));
    let (a_ski, b_ski) = (ida.ski(), idb.ski());
    let (ra, rb) = (Recorder::new(), Recorder::new());
    let mut ca = loopback_config(ida, "mdns-node-a", &ra);
    ca.discovery = Some(mdns(a_ski));
    let mut cb = loopback_config(idb, "mdns-node-b", &rb);
    cb.discovery = Some(mdns(b_ski));
    let a = start(ca).await;
    let b = start(cb).await;
    a.pair(b_ski, None).unwrap();
    b.pair(a_ski, None).unwrap();

    // Default names: both visible to each other.
    assert!(
        wait_until(PATIENCE, || a
            .visible_services()
            .iter()
            .any(|s| s.ski == b_ski))
        .await
    );
    assert!(
        wait_until(PATIENCE, || b
            .visible_services()
            .iter()
            .any(|s| s.ski == a_ski))
        .await
    );
    assert!(
        ra.wait_for(PATIENCE, |s| *s == Seen::Connected(b_ski))
            .await,
        "{:?}",
        ra.all()
    );
    assert!(
        rb.wait_for(PATIENCE, |s| *s == Seen::Connected(a_ski))
            .await,
        "{:?}",
        rb.all()
    );
    a.send_data(b_ski, br#"{"over":"mdns"}"#).unwrap();
    assert!(
        rb.wait_for(PATIENCE, |s| *s
            == Seen::Data(a_ski, br#"{"over":"mdns"}"#.to_vec()))
            .await
    );

    let report = b.shutdown().await;
    assert!(report.announcement_withdrawn, "{report:?}");
    assert!(
        wait_until(PATIENCE, || !a
            .visible_services()
            .iter()
            .any(|s| s.ski == b_ski))
        .await,
        "B's withdrawn announcement is still visible to A"
    );
    a.shutdown().await;
}

/// Two hubs with default settings and the same model name are both visible to a third.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via `bash .ci/test`"]
async fn two_hubs_with_default_names_are_both_visible() {
    let observer_id = identity("observer");
    let observer_ski = observer_id.ski();
    let ro = Recorder::new();
    let mut co = loopback_config(observer_id, "observer", &ro);
    co.discovery = Some(mdns(observer_ski));
    let observer = start(co).await;
    let mut hubs = Vec::new();
    let mut skis = Vec::new();
    for i in 0..2 {
        let id = identity("gateway");
        skis.push(id.ski());
        let r = Recorder::new();
        let mut config = loopback_config(id, &format!("gateway-{i}"), &r);
        config.discovery = Some(mdns(skis[i]));
        hubs.push(start(config).await);
    }
    assert!(
        wait_until(PATIENCE, || {
            let visible: Vec<_> = observer.visible_services().iter().map(|s| s.ski).collect();
            skis.iter().all(|ski| visible.contains(ski))
        })
        .await,
        "visible: {:?}",
        observer.visible_services()
    );
    for hub in hubs {
        hub.shutdown().await;
    }
    observer.shutdown().await;
}

/// Finding: a burst of 10,000 spoofed `_ship._tcp` announcements made mdns-sd close our browse
/// subscription ("event channel full"); the visible list was cleared and never refilled, so a
/// paired peer known only by mDNS was never dialled. Here a spoofer daemon announces 10,000
/// services while A runs. A's discovery must keep up (its list ends full, at the cap of
/// 1,000), report it coalesced, and connect a paired peer that announces itself afterwards. B
/// auto-accepts, has not paired A and has no discovery, so only A's dial (from A's discovery)
/// can connect them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via `bash .ci/test`"]
async fn a_paired_peer_is_connected_after_a_burst_of_10000_spoofed_services() {
    let (ida, idb) = (identity("a"), identity("b"));
    let (a_ski, b_ski) = (ida.ski(), idb.ski());
    let (ra, rb) = (Recorder::new(), Recorder::new());
    let discovery_a = mdns(a_ski);
    let mut ca = loopback_config(ida, "burst-node-a", &ra);
    ca.discovery = Some(discovery_a.clone());
    let a = start(ca).await;
    a.pair(b_ski, None).unwrap();
    let rss_before = rss_kib();
    let since_start = std::time::Instant::now();

    let (spoofer, registering) = tokio::task::spawn_blocking(|| Spoofer::burst(10_000))
        .await
        .unwrap();
    let burst_end = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(60), || a.visible_services().len()
            >= 1000)
        .await,
        "A's discovery fell behind: it sees {} services, {} re-subscriptions",
        a.visible_services().len(),
        discovery_a.resubscriptions()
    );
    let filled = burst_end.elapsed();

    // B announces itself from a daemon that does not browse: a fresh browsing daemon would
    // first digest the spoofer's 10,000 records itself, which measures mdns-sd, not A.
    let mut cb = loopback_config(idb, "burst-node-b", &rb);
    cb.auto_accept = true;
    let b = start(cb).await;
    let announced = std::time::Instant::now();
    let announcer = Announcer::announce("burst-node-b", b_ski, b.local_addr().port());
    assert!(
        ra.wait_for(Duration::from_secs(60), |s| *s == Seen::Connected(b_ski))
            .await,
        "paired peer not connected after the burst; A sees {} services (B among them: {}), \
         state {:?}, {} re-subscriptions",
        a.visible_services().len(),
        a.visible_services().iter().any(|s| s.ski == b_ski),
        a.connection_state(b_ski),
        discovery_a.resubscriptions()
    );
    let connected = announced.elapsed();
    let visible = a.visible_services().len();
    let reports = ra.count(|s| matches!(s, Seen::Visible(_)));
    let elapsed = since_start.elapsed();
    let rss_after = rss_kib();
    eprintln!(
        "burst: 10,000 announced by the spoofer in {registering:?}; A's list full \
         ({visible} services) {filled:?} after the last one; paired peer connected \
         {connected:?} after its announcement; {} re-subscriptions; {reports} visible_services \
         reports in {elapsed:?}; RSS {rss_before} KiB -> {rss_after} KiB (whole test process: \
         A, B and the spoofer's daemon with its 10,000 services)",
        discovery_a.resubscriptions(),
    );
    assert!(visible <= 1000, "{visible} visible");
    // Coalesced: at most one report per second (plus the first), not one per sighting.
    assert!(
        reports as u64 <= elapsed.as_secs() + 2,
        "{reports} reports in {elapsed:?}"
    );
    drop((spoofer, announcer));
    b.shutdown().await;
    a.shutdown().await;
}
