//! The in-memory discovery the Hub tests use: announce, see, withdraw, lose, expire, merge.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use ship_hub::discovery::{
    Announcement, Discovery, DiscoveryEvent, InMemoryLan, InstanceName, ShipTxt, Sighting,
};
use ship_hub::{ShipId, Ski};
use tokio::sync::broadcast::error::TryRecvError;

fn ski(byte: u8) -> Ski {
    Ski::from_bytes([byte; 20])
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn txt(byte: u8) -> ShipTxt {
    ShipTxt::new(ShipId::new(format!("node-{byte}")).unwrap(), ski(byte))
}

fn drain(events: &mut tokio::sync::broadcast::Receiver<DiscoveryEvent>) -> Vec<DiscoveryEvent> {
    let mut out = Vec::new();
    loop {
        match events.try_recv() {
            Ok(event) => out.push(event),
            Err(TryRecvError::Empty) => return out,
            Err(other) => panic!("event channel: {other}"),
        }
    }
}

#[tokio::test]
async fn announce_is_seen_and_withdraw_is_lost() {
    let lan = InMemoryLan::new();
    let a = lan.attach(ski(1), vec![ip(1)]);
    let b = lan.attach(ski(2), vec![ip(2)]);
    let mut b_events = b.subscribe();

    a.announce(Announcement::new(txt(1), 4711)).unwrap();
    let events = drain(&mut b_events);
    let [DiscoveryEvent::Seen(seen)] = &events[..] else {
        panic!("expected one Seen, got {events:?}");
    };
    assert_eq!(seen.ski, ski(1));
    assert_eq!(seen.txt, txt(1));
    assert_eq!(seen.path(), "/ship/");
    assert_eq!(
        seen.addresses,
        BTreeSet::from([SocketAddr::new(ip(1), 4711)])
    );
    assert_eq!(b.visible(), vec![seen.clone()]);
    assert_eq!(b.visible_service(&ski(1)).as_ref(), Some(seen));

    a.withdraw().await.unwrap();
    assert_eq!(drain(&mut b_events), vec![DiscoveryEvent::Lost(ski(1))]);
    assert!(b.visible().is_empty());
    assert!(lan.instances().is_empty());
    // Withdrawing twice is harmless.
    a.withdraw().await.unwrap();
}

#[tokio::test]
async fn own_ski_is_not_visible_to_ourselves() {
    let lan = InMemoryLan::new();
    let a = lan.attach(ski(1), vec![ip(1)]);
    let mut a_events = a.subscribe();
    a.announce(Announcement::new(txt(1), 4711)).unwrap();
    assert!(a.visible().is_empty());
    assert!(drain(&mut a_events).is_empty());
    assert_eq!(lan.instances().len(), 1);
}

#[tokio::test]
async fn a_late_member_sees_records_already_on_the_lan() {
    let lan = InMemoryLan::new();
    let a = lan.attach(ski(1), vec![ip(1)]);
    a.announce(Announcement::new(txt(1), 4711)).unwrap();
    let late = lan.attach(ski(3), vec![ip(3)]);
    assert_eq!(late.visible().len(), 1);
}

#[tokio::test]
async fn expiry_simulates_the_ttl_running_out() {
    let lan = InMemoryLan::new();
    let a = lan.attach(ski(1), vec![ip(1)]);
    let b = lan.attach(ski(2), vec![ip(2)]);
    let announcement = Announcement::new(txt(1), 4711);
    let instance = format!("{}._ship._tcp.local.", announcement.instance_name);
    a.announce(announcement).unwrap();
    let mut b_events = b.subscribe();
    assert!(lan.expire(&instance));
    assert_eq!(drain(&mut b_events), vec![DiscoveryEvent::Lost(ski(1))]);
    assert!(b.visible().is_empty());
    assert!(!lan.expire(&instance));

    a.announce(Announcement::new(txt(1), 4711)).unwrap();
    assert_eq!(lan.expire_ski(&ski(1)), 1);
    assert!(b.visible().is_empty());
}

#[tokio::test]
async fn a_crashed_node_stays_visible_until_expired() {
    let lan = InMemoryLan::new();
    let a = lan.attach(ski(1), vec![ip(1)]);
    let b = lan.attach(ski(2), vec![ip(2)]);
    a.announce(Announcement::new(txt(1), 4711)).unwrap();
    drop(a);
    assert_eq!(b.visible().len(), 1);
    assert_eq!(lan.expire_ski(&ski(1)), 1);
    assert!(b.visible().is_empty());
}

#[tokio::test]
async fn sightings_of_one_ski_merge_across_addresses() {
    let lan = InMemoryLan::new();
    let a = lan.attach(ski(1), vec![ip(1), ip(11)]);
    let b = lan.attach(ski(2), vec![ip(2)]);
    a.announce(Announcement::new(txt(1), 4711)).unwrap();
    // The same node heard under a second record on another interface.
    let link_local = "[fe80::1%4]:4711".parse::<SocketAddr>().unwrap();
    lan.inject(Sighting {
        instance: "node-1 (wlan)._ship._tcp.local.".into(),
        host: "node-1.local.".into(),
        txt: txt(1),
        addresses: BTreeSet::from([link_local]),
    });
    let visible = b.visible();
    assert_eq!(visible.len(), 1);
    assert_eq!(
        visible[0].addresses,
        BTreeSet::from([
            SocketAddr::new(ip(1), 4711),
            SocketAddr::new(ip(11), 4711),
            link_local
        ])
    );
    assert_eq!(visible[0].instances.len(), 2);
    let SocketAddr::V6(v6) = link_local else {
        unreachable!()
    };
    assert_eq!(v6.scope_id(), 4);

    assert!(lan.expire("node-1 (wlan)._ship._tcp.local."));
    assert_eq!(b.visible()[0].addresses.len(), 2);
}

#[tokio::test]
async fn reannounce_with_register_changed_is_seen_as_an_update() {
    let lan = InMemoryLan::new();
    let a = lan.attach(ski(1), vec![ip(1)]);
    let b = lan.attach(ski(2), vec![ip(2)]);
    let mut announced = txt(1);
    a.announce(Announcement::new(announced.clone(), 4711))
        .unwrap();
    let mut b_events = b.subscribe();
    announced.register = true;
    a.announce(Announcement::new(announced.clone(), 4711))
        .unwrap();
    let events = drain(&mut b_events);
    // Never reported as lost in between.
    let [DiscoveryEvent::Seen(seen)] = &events[..] else {
        panic!("expected one Seen, got {events:?}");
    };
    assert!(seen.txt.register);
    assert_eq!(lan.instances().len(), 1);
}

#[tokio::test]
async fn default_names_differ_and_a_taken_name_is_renamed() {
    let lan = InMemoryLan::new();
    let a = lan.attach(ski(1), vec![ip(1)]);
    let b = lan.attach(ski(2), vec![ip(2)]);
    let c = lan.attach(ski(3), vec![ip(3)]);
    let (a_ann, b_ann) = (
        Announcement::new(txt(1), 4711),
        Announcement::new(txt(2), 4711),
    );
    assert_ne!(a_ann.instance_name, b_ann.instance_name);
    a.announce(a_ann).unwrap();
    b.announce(b_ann).unwrap();
    assert_eq!(c.visible().len(), 2);

    let name = InstanceName::new("Gateway").unwrap();
    a.announce(Announcement::new(txt(1), 4711).with_instance_name(name.clone()))
        .unwrap();
    let mut b_events = b.subscribe();
    b.announce(Announcement::new(txt(2), 4711).with_instance_name(name))
        .unwrap();
    let renamed: Vec<_> = drain(&mut b_events)
        .into_iter()
        .filter(|e| matches!(e, DiscoveryEvent::Renamed { .. }))
        .collect();
    assert_eq!(
        renamed,
        vec![DiscoveryEvent::Renamed {
            from: "Gateway".into(),
            to: "Gateway (2)".into()
        }]
    );
    assert_eq!(
        b.announced_instance().as_deref(),
        Some("Gateway (2)._ship._tcp.local.")
    );
    let visible = c.visible();
    assert_eq!(visible.len(), 2);
    assert_eq!(visible[0].instances, vec!["Gateway._ship._tcp.local."]);
    assert_eq!(visible[1].instances, vec!["Gateway (2)._ship._tcp.local."]);
}

#[tokio::test]
async fn works_as_a_shared_trait_object() {
    let lan = InMemoryLan::new();
    let a: Arc<dyn Discovery> = Arc::new(lan.attach(ski(1), vec![ip(1)]));
    let b: Arc<dyn Discovery> = Arc::new(lan.attach(ski(2), vec![ip(2)]));
    let task = {
        let a = a.clone();
        tokio::spawn(async move { a.announce(Announcement::new(txt(1), 4711)) })
    };
    task.await.unwrap().unwrap();
    assert_eq!(b.visible().len(), 1);
}

/// A SKI made from a number (distinct for every `n` below 2^32).
fn numbered_ski(n: u32) -> Ski {
    let mut bytes = [0xa5; 20];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    Ski::from_bytes(bytes)
}

fn spoofed(n: u32, ski: Ski) -> Sighting {
    Sighting {
        instance: format!("spoof-{n}._ship._tcp.local."),
        host: format!("spoof-{n}.local."),
        txt: ShipTxt::new(ShipId::new(format!("spoof-{n}")).unwrap(), ski),
        addresses: BTreeSet::from([SocketAddr::new(
            IpAddr::V4(Ipv4Addr::from(0x0a64_0000 + n)),
            4711,
        )]),
    }
}

/// Finding: 10,000 spoofed announcements were all kept (and every sighting rebuilt the whole
/// list). The registry keeps at most 1,000 services and 4 instances per SKI (the defaults),
/// evicting the stalest, so the newest sightings are the ones visible.
#[tokio::test]
async fn a_burst_of_10000_announcements_is_capped_keeping_the_newest() {
    let lan = InMemoryLan::new();
    let node = lan.attach(ski(1), vec![ip(1)]);
    let started = std::time::Instant::now();
    for n in 0..10_000 {
        lan.inject(spoofed(n, numbered_ski(n)));
    }
    // Ten instances claiming one SKI.
    let claimed = ski(9);
    for n in 10_000..10_010 {
        lan.inject(spoofed(n, claimed));
    }
    let elapsed = started.elapsed();
    let visible = node.visible();
    assert!(visible.len() <= 1000, "{} services visible", visible.len());
    let service = node
        .visible_service(&claimed)
        .expect("the newest SKI is visible");
    assert_eq!(service.instances.len(), 4, "{:?}", service.instances);
    assert!(
        service
            .instances
            .contains(&"spoof-10009._ship._tcp.local.".to_owned())
    );
    assert!(node.visible_service(&numbered_ski(9_999)).is_some());
    assert!(node.visible_service(&numbered_ski(0)).is_none());
    eprintln!("10,010 sightings applied in {elapsed:?}");
}
