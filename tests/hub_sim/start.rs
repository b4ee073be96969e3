//! Starting a hub: a start that fails leaves nothing behind. (That a slow or hanging trust store
//! stalls nothing is in hub_loopback's `pairings` tests: the hub no longer reads the store
//! after its start.)

use ship_test_support::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::{Recorder, Seen, identity, lan_addr, lan_config, loopback_config, paused_runtime};
use futures_util::future::BoxFuture;
use ship_hub::Ski;
use ship_hub::discovery::{
    Announcement, Discovery, DiscoveryError, DiscoveryEvent, VisibleService,
};
use ship_hub::hub::{Hub, HubError, MemoryLan, PairedPeer};
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
        a.pair(b_ski).unwrap();
        b.pair(PairedPeer::new(a_ski).with_address(lan_addr(1)))
            .unwrap();
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
