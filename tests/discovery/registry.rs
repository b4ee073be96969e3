//! The registry of visible services: merging per SKI, own-SKI filtering, stable order, events.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};

use ship_hub::discovery::{
    DiscoveryEvent, DiscoveryLimits, ShipTxt, Sighting, VisibleServices, dialable_address,
};
use ship_hub::{ShipId, Ski};

fn ski(byte: u8) -> Ski {
    Ski::from_bytes([byte; 20])
}

fn sighting(instance: &str, ski: Ski, addresses: &[SocketAddr]) -> Sighting {
    Sighting {
        instance: format!("{instance}._ship._tcp.local."),
        host: format!("{instance}.local."),
        txt: ShipTxt::new(ShipId::new(format!("id-{instance}")).unwrap(), ski),
        addresses: addresses.iter().copied().collect(),
    }
}

fn v4(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)), port)
}

#[test]
fn a_new_sighting_is_seen_and_a_repeat_is_silent() {
    let mut registry = VisibleServices::new(None);
    let events = registry.observe(sighting("a", ski(1), &[v4(1, 4711)]));
    assert!(matches!(&events[..], [DiscoveryEvent::Seen(s)] if s.ski == ski(1)));
    assert!(
        registry
            .observe(sighting("a", ski(1), &[v4(1, 4711)]))
            .is_empty()
    );
    let visible = registry.list();
    assert_eq!(visible.len(), 1);
    assert_eq!(visible[0].path(), "/ship/");
    assert_eq!(visible[0].addresses, BTreeSet::from([v4(1, 4711)]));
}

#[test]
fn our_own_ski_is_never_visible() {
    let mut registry = VisibleServices::new(Some(ski(7)));
    assert!(
        registry
            .observe(sighting("me", ski(7), &[v4(7, 1)]))
            .is_empty()
    );
    assert!(registry.list().is_empty());
    assert!(registry.get(&ski(7)).is_none());
}

#[test]
fn sightings_of_one_ski_merge_addresses_and_instances() {
    let mut registry = VisibleServices::new(None);
    registry.observe(sighting("a-eth", ski(1), &[v4(1, 4711)]));
    let link_local = dialable_address("fe80::1".parse().unwrap(), 3, 4711);
    let events = registry.observe(sighting("a-wlan", ski(1), &[v4(2, 4711), link_local]));
    let [DiscoveryEvent::Seen(merged)] = &events[..] else {
        panic!("expected one Seen, got {events:?}");
    };
    assert_eq!(
        merged.addresses,
        BTreeSet::from([v4(1, 4711), v4(2, 4711), link_local])
    );
    assert_eq!(
        merged.instances,
        vec![
            "a-eth._ship._tcp.local.".to_owned(),
            "a-wlan._ship._tcp.local.".to_owned()
        ]
    );
    // The newest sighting's TXT wins.
    assert_eq!(merged.txt.id.as_str(), "id-a-wlan");
    assert_eq!(registry.list().len(), 1);

    // Losing one record keeps the SKI visible with what remains.
    let events = registry.forget("a-wlan._ship._tcp.local.");
    let [DiscoveryEvent::Seen(rest)] = &events[..] else {
        panic!("expected one Seen, got {events:?}");
    };
    assert_eq!(rest.addresses, BTreeSet::from([v4(1, 4711)]));
    assert_eq!(rest.txt.id.as_str(), "id-a-eth");

    // Losing the last one loses the SKI.
    assert_eq!(
        registry.forget("a-eth._ship._tcp.local."),
        vec![DiscoveryEvent::Lost(ski(1))]
    );
    assert!(registry.list().is_empty());
    assert!(registry.forget("a-eth._ship._tcp.local.").is_empty());
}

#[test]
fn a_new_sighting_of_an_instance_replaces_its_addresses() {
    let mut registry = VisibleServices::new(None);
    registry.observe(sighting("a", ski(1), &[v4(1, 4711)]));
    registry.observe(sighting("a", ski(1), &[v4(9, 4711)]));
    assert_eq!(
        registry.get(&ski(1)).unwrap().addresses,
        BTreeSet::from([v4(9, 4711)])
    );
}

#[test]
fn an_instance_that_changes_its_ski_loses_the_old_one() {
    let mut registry = VisibleServices::new(None);
    registry.observe(sighting("a", ski(1), &[v4(1, 4711)]));
    let events = registry.observe(sighting("a", ski(2), &[v4(1, 4711)]));
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], DiscoveryEvent::Lost(ski(1)));
    assert!(matches!(&events[1], DiscoveryEvent::Seen(s) if s.ski == ski(2)));
}

#[test]
fn the_visible_list_is_sorted_by_ski() {
    let mut registry = VisibleServices::new(None);
    for (name, byte) in [("z", 3), ("a", 9), ("m", 1)] {
        registry.observe(sighting(name, ski(byte), &[v4(byte, 1)]));
    }
    let order: Vec<Ski> = registry.list().iter().map(|s| s.ski).collect();
    assert_eq!(order, vec![ski(1), ski(3), ski(9)]);
}

#[test]
fn clear_loses_every_ski() {
    let mut registry = VisibleServices::new(None);
    registry.observe(sighting("a", ski(1), &[v4(1, 1)]));
    registry.observe(sighting("b", ski(2), &[v4(2, 1)]));
    registry.observe(sighting("b2", ski(2), &[v4(3, 1)]));
    assert_eq!(
        registry.clear(),
        vec![DiscoveryEvent::Lost(ski(1)), DiscoveryEvent::Lost(ski(2))]
    );
    assert!(registry.list().is_empty());
}

#[test]
fn link_local_ipv6_keeps_its_scope_and_others_do_not() {
    let link_local: Ipv6Addr = "fe80::1234".parse().unwrap();
    assert_eq!(
        dialable_address(IpAddr::V6(link_local), 7, 4711),
        SocketAddr::V6(SocketAddrV6::new(link_local, 4711, 0, 7))
    );
    let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
    assert_eq!(
        dialable_address(IpAddr::V6(global), 7, 4711),
        SocketAddr::V6(SocketAddrV6::new(global, 4711, 0, 0))
    );
    assert_eq!(
        dialable_address(IpAddr::V4(Ipv4Addr::LOCALHOST), 7, 1),
        v4_local(1)
    );
}

fn v4_local(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

#[test]
fn instances_per_ski_are_capped_evicting_the_stalest() {
    let limits = {
        let mut l = DiscoveryLimits::default();
        l.max_instances_per_ski = 2;
        l
    };
    let mut registry = VisibleServices::with_limits(None, limits);
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        registry.observe(sighting(name, ski(1), &[v4(i as u8 + 1, 1)]));
    }
    let merged = registry.get(&ski(1)).unwrap();
    assert_eq!(
        merged.instances,
        vec![
            "b._ship._tcp.local.".to_owned(),
            "c._ship._tcp.local.".to_owned()
        ]
    );
    // The newest instance's addresses come first in the dial order.
    assert_eq!(merged.dial_order, vec![v4(3, 1), v4(2, 1)]);
    assert_eq!(registry.instance_count(), 2);
}

#[test]
fn a_flood_of_strangers_never_evicts_a_preferred_ski() {
    let limits = {
        let mut l = DiscoveryLimits::default();
        l.max_instances = 10;
        l
    };
    let mut registry = VisibleServices::with_limits(None, limits);
    registry.set_preferred(vec![ski(1)]);
    registry.observe(sighting("paired", ski(1), &[v4(1, 1)]));
    let mut lost = Vec::new();
    for n in 0..100u8 {
        let events = registry.observe(sighting(
            &format!("s{n}"),
            ski(n.wrapping_add(2)),
            &[v4(n, 2)],
        ));
        lost.extend(
            events
                .into_iter()
                .filter(|e| matches!(e, DiscoveryEvent::Lost(_))),
        );
    }
    assert!(
        registry.get(&ski(1)).is_some(),
        "the preferred SKI was evicted"
    );
    assert_eq!(registry.instance_count(), 10);
    assert!(!lost.contains(&DiscoveryEvent::Lost(ski(1))));
    // The newest strangers are the ones kept.
    assert!(registry.contains_instance("s99._ship._tcp.local."));
    assert!(!registry.contains_instance("s0._ship._tcp.local."));
    // No longer preferred: it is the stalest and goes first when room is needed.
    assert!(registry.set_preferred(Vec::new()).is_empty());
    let events = registry.observe(sighting("late", ski(200), &[v4(200, 2)]));
    assert!(events.contains(&DiscoveryEvent::Lost(ski(1))), "{events:?}");
    assert!(registry.get(&ski(1)).is_none());
}

#[test]
fn a_preferred_ski_without_a_record_is_missing_until_seen() {
    let mut registry = VisibleServices::new(None);
    assert!(!registry.preferred_missing(), "nothing preferred");
    registry.observe(sighting("stranger", ski(9), &[v4(9, 1)]));
    registry.set_preferred(vec![ski(1), ski(2)]);
    assert!(registry.preferred_missing());
    registry.observe(sighting("one", ski(1), &[v4(1, 1)]));
    assert!(registry.preferred_missing(), "ski(2) is still missing");
    registry.observe(sighting("two", ski(2), &[v4(2, 1)]));
    assert!(!registry.preferred_missing());
    registry.forget("two._ship._tcp.local.");
    assert!(registry.preferred_missing(), "ski(2) said goodbye");
    registry.set_preferred(vec![ski(1)]);
    assert!(!registry.preferred_missing(), "ski(2) is no longer paired");
}
