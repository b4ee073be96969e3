//! Starting a hub and creating its per-peer supervisors: a start that fails leaves nothing
//! behind, and a slow trust store never stalls the hub's registry.

use ship_test_support::common;

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::{Recorder, Seen, identity, lan_addr, lan_config, loopback_config, paused_runtime};
use futures_util::future::BoxFuture;
use ship_hub::Ski;
use ship_hub::discovery::{
    Announcement, Discovery, DiscoveryError, DiscoveryEvent, VisibleService,
};
use ship_hub::hub::{
    Hub, HubError, MemoryLan, MemoryTrustStore, PairedPeer, TrustStore, TrustStoreError,
};
use tokio::sync::broadcast;

/// A discovery whose announcement always fails (as an mDNS daemon that refuses it would): the
/// last step of `Hub::start` that can fail.
struct RefusingDiscovery;

impl Discovery for RefusingDiscovery {
    fn announce(&self, _announcement: Announcement) -> Result<(), DiscoveryError> {
        Err(DiscoveryError::Daemon("refused by the test".into()))
    }
    fn withdraw(&self) -> BoxFuture<'_, Result<(), DiscoveryError>> {
        Box::pin(async { Ok(()) })
    }
    fn announced_instance(&self) -> Option<String> {
        None
    }
    fn subscribe(&self) -> broadcast::Receiver<DiscoveryEvent> {
        broadcast::channel(1).1
    }
    fn visible(&self) -> Vec<VisibleService> {
        Vec::new()
    }
    fn visible_service(&self, _ski: &Ski) -> Option<VisibleService> {
        None
    }
}

/// A start that fails at its last fallible step (the announcement) leaves no task running (no
/// task holds the configuration any more) and its address free: a second hub binds it and
/// serves a peer there.
#[test]
fn failed_start_leaves_no_task_and_frees_the_address() {
    paused_runtime().block_on(async {
        let lan = MemoryLan::new();
        let rec = Recorder::new();
        let mut config = lan_config(&lan, 1, identity("first"), &rec);
        config.discovery = Some(Arc::new(RefusingDiscovery));
        let error = Hub::start(config).await.unwrap_err();
        assert!(matches!(error, HubError::Discovery(_)), "{error}");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(
            Arc::strong_count(&rec),
            1,
            "a task of the failed start still holds its configuration"
        );

        let (ra, rb) = (Recorder::new(), Recorder::new());
        let (a_id, b_id) = (identity("second"), identity("peer"));
        let (a_ski, b_ski) = (a_id.ski(), b_id.ski());
        let a = Hub::start(lan_config(&lan, 1, a_id, &ra))
            .await
            .expect("the address of the failed start is free");
        let b = common::start(lan_config(&lan, 2, b_id, &rb)).await;
        a.pair(b_ski, None).unwrap();
        b.pair_at(a_ski, None, Some(lan_addr(1))).unwrap();
        assert!(
            ra.wait_for(Duration::from_secs(10), |s| *s == Seen::Connected(b_ski))
                .await
        );
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// The same on real TCP: the port a failed start bound is free again when `start` returns.
#[tokio::test]
async fn failed_start_frees_its_tcp_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rec = Recorder::new();
    let mut config = loopback_config(identity("tcp"), "tcp", &rec);
    config.bind = SocketAddr::from(([127, 0, 0, 1], port));
    config.discovery = Some(Arc::new(RefusingDiscovery));
    let error = Hub::start(config).await.unwrap_err();
    assert!(matches!(error, HubError::Discovery(_)), "{error}");
    std::net::TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("port {port} still taken after a failed start: {e}"));
}

/// A trust store whose reads of one SKI block until released (a slow disk, a network file
/// system).
struct SlowReads {
    inner: MemoryTrustStore,
    slow: Ski,
    entered: tokio::sync::mpsc::UnboundedSender<()>,
    released: Mutex<bool>,
    release: Condvar,
}

impl SlowReads {
    fn release(&self) {
        *self.released.lock().unwrap() = true;
        self.release.notify_all();
    }
}

impl TrustStore for SlowReads {
    fn load_all(&self) -> Result<Vec<PairedPeer>, TrustStoreError> {
        self.inner.load_all()
    }
    fn get(&self, ski: &Ski) -> Result<Option<PairedPeer>, TrustStoreError> {
        if *ski == self.slow {
            let _ = self.entered.send(());
            let mut released = self.released.lock().unwrap();
            while !*released {
                released = self.release.wait(released).unwrap();
            }
        }
        self.inner.get(ski)
    }
    fn upsert(&self, peer: PairedPeer) -> Result<(), TrustStoreError> {
        self.inner.upsert(peer)
    }
    fn remove(&self, ski: &Ski) -> Result<bool, TrustStoreError> {
        self.inner.remove(ski)
    }
    fn update_existing(
        &self,
        skis: &[Ski],
        update: &mut dyn FnMut(&mut PairedPeer),
    ) -> Result<(), TrustStoreError> {
        self.inner.update_existing(skis, update)
    }
}

/// Releases the slow reads when the test ends, passed or failed, so no thread stays blocked.
struct ReleaseOnDrop(Arc<SlowReads>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// While the trust store takes forever to read the pairing of one SKI, the first sight of
/// that SKI (which creates its supervisor) does not hold up the hub: the `Hub` methods return
/// and another peer is paired, dialled and connected meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_trust_store_read_does_not_block_other_peers() {
    let lan = MemoryLan::new();
    let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel();
    let slow_ski = identity("slow").ski();
    let store = Arc::new(SlowReads {
        inner: MemoryTrustStore::default(),
        slow: slow_ski,
        entered: entered_tx,
        released: Mutex::new(false),
        release: Condvar::new(),
    });
    let _release = ReleaseOnDrop(store.clone());
    let (ra, rb) = (Recorder::new(), Recorder::new());
    let (a_id, b_id) = (identity("a"), identity("b"));
    let (a_ski, b_ski) = (a_id.ski(), b_id.ski());
    let mut config = lan_config(&lan, 1, a_id, &ra);
    config.trust_store = store.clone();
    let a = common::start(config).await;
    let b = common::start(lan_config(&lan, 2, b_id, &rb)).await;
    b.pair(a_ski, None).unwrap();

    // First sight of the slow SKI: an address for it. Off the runtime, since it may block.
    let runtime = tokio::runtime::Handle::current();
    let first_sight = {
        let (a, runtime) = (a.clone(), runtime.clone());
        std::thread::spawn(move || {
            let _runtime = runtime.enter();
            a.add_address(slow_ski, lan_addr(9))
        })
    };
    tokio::time::timeout(Duration::from_secs(20), entered.recv())
        .await
        .expect("the slow SKI's pairing is read");

    // Meanwhile: the other methods, and another peer's routing.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    {
        let a = a.clone();
        std::thread::spawn(move || {
            let _runtime = runtime.enter();
            let _ = a.connected_peers();
            let _ = a.connection_state(b_ski);
            let paired = a.pair_at(b_ski, None, Some(lan_addr(2)));
            let _ = done_tx.send(paired);
        });
    }
    let answered =
        tokio::task::spawn_blocking(move || done_rx.recv_timeout(Duration::from_secs(10)))
            .await
            .unwrap();
    let paired = answered.expect("Hub methods blocked while the trust store read one pairing");
    paired.unwrap();
    assert!(
        ra.wait_for(Duration::from_secs(20), |s| *s == Seen::Connected(b_ski))
            .await,
        "{:?}",
        ra.all()
    );

    store.release();
    first_sight.join().unwrap().unwrap();
    a.shutdown().await;
    b.shutdown().await;
}
