//! mDNS discovery for real, over loopback inside a private network namespace.
//!
//! Every test here creates `mdns-sd` daemons, which join multicast on every interface that is up.
//! They are therefore ignored in a plain `cargo test` and run by the project's test command
//! inside `unshare -n` after `tests/netns-setup.sh` (see docs/discovery.md, "Running the
//! namespace tests"). Each test first checks that it really is in a private namespace and fails
//! loudly otherwise.

use crate::common::assert_private_namespace;
use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ship_hub::discovery::{
    Announcement, DeviceCategories, Discovery, DiscoveryEvent, InstanceName, InterfaceSelection,
    MdnsConfig, MdnsDiscovery, ShipTxt, TxtField, TxtValue, VisibleService,
};
use ship_hub::{ShipId, Ski};

/// Upper bound for anything to show up; a failure bound, not a timing claim.
const PATIENCE: Duration = Duration::from_secs(30);

/// The tests share the namespace's loopback: run them one at a time so that one test's
/// records do not show up in another's and the shared CPU is not swamped.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn ski(byte: u8) -> Ski {
    let mut bytes = [byte; 20];
    // Make SKIs of different tests differ in their first 8 hex digits (the default name).
    bytes[1] = 0x5a;
    Ski::from_bytes(bytes)
}

fn txt(ski: Ski, id: &str) -> ShipTxt {
    let mut txt = ShipTxt::new(ShipId::new(id).unwrap(), ski);
    txt.brand = Some(TxtValue::new(TxtField::Brand, "Acme").unwrap());
    txt.model = Some(TxtValue::new(TxtField::Model, "Gateway").unwrap());
    txt.device_type = Some(TxtValue::new(TxtField::DeviceType, "EnergyManagementSystem").unwrap());
    txt.categories = DeviceCategories::new(vec![2]).unwrap();
    txt
}

fn start(own: Ski) -> MdnsDiscovery {
    MdnsDiscovery::new(MdnsConfig::new(own)).expect("start mDNS discovery")
}

/// Waits until `condition` holds for the visible list of `discovery`; returns the elapsed time.
async fn wait_for(
    discovery: &dyn Discovery,
    what: &str,
    condition: impl Fn(&[VisibleService]) -> bool,
) -> Duration {
    let started = Instant::now();
    let mut events = discovery.subscribe();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if condition(&discovery.visible()) {
            return started.elapsed();
        }
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(_) => continue,
            Err(_) => panic!(
                "gave up waiting for: {what}; visible: {:#?}",
                discovery.visible()
            ),
        }
    }
}

fn find(visible: &[VisibleService], ski: Ski) -> Option<&VisibleService> {
    visible.iter().find(|s| s.ski == ski)
}

async fn with_timeout<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future)
        .await
        .expect("operation timed out")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via .ci/test"]
async fn two_discoveries_see_each_other_with_txt_and_addresses() {
    let _serial = SERIAL.lock().await;
    assert_private_namespace();
    let (a_ski, b_ski) = (ski(0xa1), ski(0xb1));
    let a = start(a_ski);
    let b = start(b_ski);
    let a_txt = txt(a_ski, "acme-gateway-a");
    let b_txt = txt(b_ski, "acme-gateway-b");
    a.announce(Announcement::new(a_txt.clone(), 4711)).unwrap();
    b.announce(Announcement::new(b_txt.clone(), 4712)).unwrap();

    let took = wait_for(&b, "b sees a", |v| find(v, a_ski).is_some()).await;
    eprintln!("measure: sighting took {took:?}");
    wait_for(&a, "a sees b", |v| find(v, b_ski).is_some()).await;
    // Addresses may arrive in several answers: wait for the loopback one.
    let a_at = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4711);
    wait_for(&b, "b sees a at 127.0.0.1:4711", |v| {
        find(v, a_ski).is_some_and(|s| s.addresses.contains(&a_at))
    })
    .await;

    let seen_by_b = b.visible_service(&a_ski).unwrap();
    eprintln!("a seen by b at {:?}", seen_by_b.addresses);
    assert_eq!(seen_by_b.txt, a_txt);
    assert_eq!(seen_by_b.path(), "/ship/");
    assert!(seen_by_b.addresses.iter().all(|addr| addr.port() == 4711));
    assert_eq!(a.visible_service(&b_ski).unwrap().txt, b_txt);

    // Own records are heard but never visible.
    assert!(find(&a.visible(), a_ski).is_none());
    assert!(find(&b.visible(), b_ski).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via .ci/test"]
async fn withdrawn_announcement_disappears_from_the_other_side() {
    let _serial = SERIAL.lock().await;
    assert_private_namespace();
    let (a_ski, b_ski) = (ski(0xa2), ski(0xb2));
    let a = start(a_ski);
    let b = start(b_ski);
    a.announce(Announcement::new(txt(a_ski, "withdraw-a"), 4721))
        .unwrap();
    wait_for(&b, "b sees a", |v| find(v, a_ski).is_some()).await;

    let mut events = b.subscribe();
    let started = Instant::now();
    with_timeout(a.withdraw()).await.unwrap();
    let took = wait_for(&b, "a gone from b", |v| find(v, a_ski).is_none()).await;
    eprintln!(
        "measure: goodbye took {took:?} (withdraw returned after {:?})",
        started.elapsed() - took
    );
    let mut lost = false;
    while let Ok(event) = events.try_recv() {
        lost |= event == DiscoveryEvent::Lost(a_ski);
    }
    assert!(lost, "b reported no Lost event for a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via .ci/test"]
async fn two_instances_with_default_names_are_both_visible() {
    let _serial = SERIAL.lock().await;
    assert_private_namespace();
    let (a_ski, b_ski, watcher_ski) = (ski(0xa3), ski(0xb3), ski(0xc3));
    let a = start(a_ski);
    let b = start(b_ski);
    let watcher = start(watcher_ski);
    // Same SHIP-unrelated settings: only the SKI differs.
    let a_ann = Announcement::new(txt(a_ski, "default-a"), 4731);
    let b_ann = Announcement::new(txt(b_ski, "default-b"), 4732);
    assert_ne!(a_ann.instance_name, b_ann.instance_name);
    let (a_name, b_name) = (a_ann.instance_name.clone(), b_ann.instance_name.clone());
    a.announce(a_ann).unwrap();
    b.announce(b_ann).unwrap();
    wait_for(&watcher, "both visible", |v| {
        find(v, a_ski).is_some() && find(v, b_ski).is_some()
    })
    .await;
    let ours: Vec<VisibleService> = watcher
        .visible()
        .into_iter()
        .filter(|s| s.ski == a_ski || s.ski == b_ski)
        .collect();
    assert_eq!(ours.len(), 2);
    assert_ne!(ours[0].instances, ours[1].instances);
    // Neither had to be renamed: the default names already differ.
    assert_eq!(
        a.announced_instance().unwrap(),
        format!("{}._ship._tcp.local.", a_name)
    );
    assert_eq!(
        b.announced_instance().unwrap(),
        format!("{}._ship._tcp.local.", b_name)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via .ci/test"]
async fn conflicting_instance_names_are_resolved_and_both_visible() {
    let _serial = SERIAL.lock().await;
    assert_private_namespace();
    let (a_ski, b_ski, watcher_ski) = (ski(0xa4), ski(0xb4), ski(0xc4));
    let watcher = start(watcher_ski);
    let a = start(a_ski);
    let b = start(b_ski);
    let name = InstanceName::new("Same Name").unwrap();
    a.announce(Announcement::new(txt(a_ski, "conflict-a"), 4741).with_instance_name(name.clone()))
        .unwrap();
    wait_for(&watcher, "a visible", |v| find(v, a_ski).is_some()).await;
    let mut b_events = b.subscribe();
    b.announce(Announcement::new(txt(b_ski, "conflict-b"), 4742).with_instance_name(name))
        .unwrap();
    wait_for(&watcher, "both visible", |v| {
        find(v, a_ski).is_some() && find(v, b_ski).is_some()
    })
    .await;
    let a_seen = watcher.visible_service(&a_ski).unwrap();
    let b_seen = watcher.visible_service(&b_ski).unwrap();
    assert_ne!(a_seen.instances, b_seen.instances);
    assert_eq!(
        a_seen.instances,
        vec!["Same Name._ship._tcp.local.".to_owned()]
    );
    let mut renamed = None;
    while let Ok(event) = b_events.try_recv() {
        if let DiscoveryEvent::Renamed { to, .. } = event {
            renamed = Some(to);
        }
    }
    assert_eq!(renamed.as_deref(), b.announced_instance().as_deref());
    assert_eq!(Some(b_seen.instances[0].clone()), b.announced_instance());

    // The goodbye of the renamed announcement removes it, and only it.
    with_timeout(b.withdraw()).await.unwrap();
    wait_for(&watcher, "b gone", |v| find(v, b_ski).is_none()).await;
    assert!(watcher.visible_service(&a_ski).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via .ci/test"]
async fn reannounce_with_register_changed_is_seen_by_the_other_side() {
    let _serial = SERIAL.lock().await;
    assert_private_namespace();
    let (a_ski, b_ski) = (ski(0xa5), ski(0xb5));
    let a = start(a_ski);
    let b = start(b_ski);
    let mut a_txt = txt(a_ski, "reannounce-a");
    a.announce(Announcement::new(a_txt.clone(), 4751)).unwrap();
    wait_for(&b, "b sees a with register=false", |v| {
        find(v, a_ski).is_some_and(|s| !s.txt.register)
    })
    .await;
    let mut b_events = b.subscribe();
    a_txt.register = true;
    a.announce(Announcement::new(a_txt.clone(), 4751)).unwrap();
    let took = wait_for(&b, "b sees a with register=true", |v| {
        find(v, a_ski).is_some_and(|s| s.txt.register)
    })
    .await;
    eprintln!("measure: re-announce took {took:?}");
    assert_eq!(b.visible_service(&a_ski).unwrap().txt, a_txt);
    // An update, never a loss in between.
    while let Ok(event) = b_events.try_recv() {
        assert_ne!(event, DiscoveryEvent::Lost(a_ski));
    }
}

/// A veth pair made by a test inside the private namespace, deleted again on drop.
struct VethPair {
    name: &'static str,
}

impl VethPair {
    fn create(name: &'static str, peer: &'static str) -> Self {
        // No duplicate address detection: link-local addresses are usable at once.
        for scope in ["default", "all"] {
            std::fs::write(format!("/proc/sys/net/ipv6/conf/{scope}/accept_dad"), "0")
                .expect("disable IPv6 DAD in the test namespace");
        }
        let ip = |args: &[&str]| {
            let status = std::process::Command::new("ip")
                .args(args)
                .status()
                .expect("run `ip` (install iproute2)");
            assert!(status.success(), "ip {args:?} failed");
        };
        ip(&["link", "add", name, "type", "veth", "peer", "name", peer]);
        ip(&["link", "set", name, "up"]);
        ip(&["link", "set", peer, "up"]);
        VethPair { name }
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", self.name])
            .status();
    }
}

/// The interface index of `name`, once it has an IPv6 link-local address (from
/// `/proc/self/net/if_inet6`, which follows the namespace unlike `/sys`).
async fn link_local_index(name: &str) -> u32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let table = std::fs::read_to_string("/proc/self/net/if_inet6").unwrap_or_default();
        for line in table.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // address, index (hex), prefix length, scope (0x20 = link), flags, name
            if let [address, index, _, _, _, interface] = fields[..]
                && interface == name
                && address.starts_with("fe80")
            {
                return u32::from_str_radix(index, 16).expect("hex interface index");
            }
        }
        assert!(
            Instant::now() < deadline,
            "{name} got no link-local address"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via .ci/test"]
async fn ipv6_link_local_addresses_keep_their_scope_id() {
    let _serial = SERIAL.lock().await;
    assert_private_namespace();
    let _veth = VethPair::create("shipt0", "shipt1");
    let scopes = BTreeSet::from([
        link_local_index("shipt0").await,
        link_local_index("shipt1").await,
    ]);
    let (a_ski, b_ski) = (ski(0xa6), ski(0xb6));
    let a = start(a_ski);
    let b = start(b_ski);
    a.announce(Announcement::new(txt(a_ski, "link-local-a"), 4761))
        .unwrap();
    wait_for(&b, "b sees a at a scoped link-local address", |v| {
        find(v, a_ski).is_some_and(|s| {
            s.addresses.iter().any(|addr| match addr {
                SocketAddr::V6(v6) => {
                    v6.ip().is_unicast_link_local() && scopes.contains(&v6.scope_id())
                }
                SocketAddr::V4(_) => false,
            })
        })
    })
    .await;
    let seen = b.visible_service(&a_ski).unwrap();
    eprintln!("a seen by b at {:?}", seen.addresses);
    for addr in &seen.addresses {
        if let SocketAddr::V6(v6) = addr
            && v6.ip().is_unicast_link_local()
        {
            assert!(
                scopes.contains(&v6.scope_id()),
                "unscoped link-local {addr}"
            );
        }
    }
}

/// Browses with a bare `mdns-sd` daemon to look at the record as it came off the wire.
fn raw_browser() -> (
    ship_test_support::discovery_spoof::OwnedDaemon,
    mdns_sd::Receiver<mdns_sd::ServiceEvent>,
) {
    let daemon = ship_test_support::discovery_spoof::OwnedDaemon::new();
    let events = daemon.browse("_ship._tcp.local.").expect("browse");
    (daemon, events)
}

async fn next_raw<T>(receiver: &mdns_sd::Receiver<T>) -> T {
    tokio::time::timeout(PATIENCE, receiver.recv_async())
        .await
        .expect("timed out waiting for a raw mDNS event")
        .expect("raw mDNS daemon stopped")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via .ci/test"]
async fn txtvers_is_the_first_txt_string_on_the_wire() {
    let _serial = SERIAL.lock().await;
    assert_private_namespace();
    let a_ski = ski(0xa7);
    let a = start(a_ski);
    let (raw, events) = raw_browser();
    let mut a_txt = txt(a_ski, "wire-order-a");
    a_txt.serial = Some(TxtValue::new(TxtField::Serial, "SN-1").unwrap());
    a.announce(Announcement::new(a_txt, 4771)).unwrap();
    let keys = loop {
        if let mdns_sd::ServiceEvent::ServiceResolved(resolved) = next_raw(&events).await {
            // Only ours: the previous test's responder may still answer for a moment after it
            // was dropped (seen once in the full suite: a record without `serial`).
            if resolved
                .txt_properties
                .get_property_val_str("ski")
                .is_none_or(|ski| ski != a_ski.to_string())
            {
                continue;
            }
            // mdns-sd keeps the wire order of the TXT strings when decoding.
            break resolved
                .txt_properties
                .iter()
                .map(|p| p.key().to_owned())
                .collect::<Vec<_>>();
        }
    };
    assert_eq!(
        keys,
        [
            "txtvers", "id", "path", "ski", "brand", "model", "type", "register", "serial", "cat"
        ]
    );
    drop(raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via .ci/test"]
async fn a_record_with_a_bad_txt_is_refused_and_not_visible() {
    let _serial = SERIAL.lock().await;
    assert_private_namespace();
    let b = start(ski(0xb8));
    let mut b_events = b.subscribe();
    let raw = ship_test_support::discovery_spoof::OwnedDaemon::new();
    let properties = [
        ("txtvers", "2".to_owned()),
        ("id", "bad-version".to_owned()),
        ("path", "/ship/".to_owned()),
        ("ski", ski(0xa8).to_string()),
        ("register", "false".to_owned()),
    ];
    let info = mdns_sd::ServiceInfo::new(
        "_ship._tcp.local.",
        "bad-version",
        "bad-version.local.",
        (),
        4781,
        &properties[..],
    )
    .unwrap()
    .enable_addr_auto();
    raw.register(info).unwrap();
    let error = with_timeout(async {
        loop {
            if let Ok(DiscoveryEvent::Refused { instance, error }) = b_events.recv().await
                && instance.starts_with("bad-version.")
            {
                return error;
            }
        }
    })
    .await;
    assert_eq!(
        error,
        ship_hub::discovery::TxtError::UnsupportedVersion { found: "2".into() }
    );
    assert!(b.visible_service(&ski(0xa8)).is_none());
    drop(raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via .ci/test"]
async fn interfaces_selected_by_name_or_address_see_each_other() {
    let _serial = SERIAL.lock().await;
    assert_private_namespace();
    let (a_ski, b_ski) = (ski(0xa9), ski(0xb9));
    let mut a_config = MdnsConfig::new(a_ski);
    a_config.interfaces = InterfaceSelection::Names(vec!["lo".into()]);
    let mut b_config = MdnsConfig::new(b_ski);
    b_config.interfaces = InterfaceSelection::Addresses(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    let a = MdnsDiscovery::new(a_config).unwrap();
    let b = MdnsDiscovery::new(b_config).unwrap();
    a.announce(Announcement::new(txt(a_ski, "by-name-a"), 4791))
        .unwrap();
    b.announce(Announcement::new(txt(b_ski, "by-address-b"), 4792))
        .unwrap();
    let a_at = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4791);
    let b_at = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 4792);
    wait_for(&b, "b sees a on lo", |v| {
        find(v, a_ski).is_some_and(|s| s.addresses.contains(&a_at))
    })
    .await;
    wait_for(&a, "a sees b on lo", |v| {
        find(v, b_ski).is_some_and(|s| s.addresses.contains(&b_at))
    })
    .await;
}

/// While a paired (preferred) SKI is missing, the discovery browses again every
/// `missing_peer_requery`; each browse replaces the daemon's subscription, and what is visible
/// stays visible and what is announced later is still seen. Once nothing preferred is missing,
/// it stops browsing again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a private network namespace: run via .ci/test"]
async fn a_missing_paired_peer_makes_discovery_browse_again_without_losing_anything() {
    let _serial = SERIAL.lock().await;
    assert_private_namespace();
    let (a_ski, b_ski, c_ski) = (ski(0xa9), ski(0xb9), ski(0xc9));
    let mut config = MdnsConfig::new(a_ski);
    config.missing_peer_requery = Some(Duration::from_millis(300));
    let a = MdnsDiscovery::new(config).expect("start mDNS discovery");
    a.set_preferred(vec![c_ski]);
    let b = start(b_ski);
    b.announce(Announcement::new(txt(b_ski, "requery-b"), 4791))
        .unwrap();
    wait_for(&a, "a sees b", |v| find(v, b_ski).is_some()).await;

    with_timeout(async {
        while a.requeries() < 3 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        find(&a.visible(), b_ski).is_some(),
        "b lost by browsing again"
    );

    // The missing peer appears after those browses: the fresh subscription reports it.
    let c = start(c_ski);
    c.announce(Announcement::new(txt(c_ski, "requery-c"), 4792))
        .unwrap();
    wait_for(&a, "a sees c", |v| find(v, c_ski).is_some()).await;
    assert!(find(&a.visible(), b_ski).is_some());

    // Nothing preferred is missing now: no more browsing again. The browse thread looks every
    // 300 ms: once a look has passed (a browse decided just before c arrived is counted by
    // then), a full second must not move the count.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let settled = a.requeries();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(a.requeries(), settled, "browsed again with nothing missing");
    assert_eq!(a.resubscriptions(), 0);
}
