//! Unit tests of the address book.

use super::*;
use std::net::{Ipv6Addr, SocketAddrV6};

fn ski(n: u8) -> Ski {
    Ski::from_bytes([n; 20])
}

fn v4(last: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([192, 168, 1, last], port))
}

fn link_local(scope: u32, port: u16) -> SocketAddr {
    let ip = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x1, 0x2, 0x3, 0x4);
    SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope))
}

fn global_v6(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), port))
}

fn addresses(book: &AddressBook, ski: &Ski) -> Vec<SocketAddr> {
    book.dial_candidates(ski)
        .iter()
        .map(|c| c.address)
        .collect()
}

/// Records a sighting with the host name `<instance>.local`; returns how many addresses it
/// holds.
fn sight(
    book: &mut AddressBook,
    ski: Ski,
    instance: &str,
    addresses: impl IntoIterator<Item = SocketAddr>,
    path: &str,
) -> Result<usize, AddressError> {
    book.record_sighting(ski, instance, &format!("{instance}.local"), addresses, path)
        .map(|recorded| recorded.addresses)
}

fn discovered(instance: &str) -> AddressSource {
    AddressSource::Discovered {
        instance: instance.into(),
    }
}

fn withdrawn(instance: &str) -> AddressSource {
    AddressSource::Withdrawn {
        instance: instance.into(),
    }
}

#[test]
fn an_unknown_peer_has_no_candidates() {
    let book = AddressBook::new();
    assert!(book.dial_candidates(&ski(1)).is_empty());
    assert_eq!(book.last_successful(&ski(1)), None);
    assert!(!book.contains(&ski(1)));
}

#[test]
fn a_sighting_gives_its_addresses_with_the_txt_path() {
    let mut book = AddressBook::new();
    let n = sight(&mut book, ski(1), "wallbox", [v4(5, 4712)], "/ship/v2/").unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        book.dial_candidates(&ski(1)),
        vec![DialCandidate {
            address: v4(5, 4712),
            path: "/ship/v2/".into(),
            source: discovered("wallbox"),
            host: Some("wallbox.local".into()),
        }]
    );
}

#[test]
fn order_is_successful_then_static_then_discovered_then_withdrawn() {
    let mut book = AddressBook::new();
    sight(&mut book, ski(1), "old", [v4(30, 4712)], "/ship/").unwrap();
    book.withdraw_instance("old");
    sight(&mut book, ski(1), "mdns", [v4(20, 4712)], "/ship/").unwrap();
    book.add_static(ski(1), v4(10, 4712), "/ship/").unwrap();
    book.record_dialled(ski(1), v4(1, 4712), "/ship/").unwrap();
    let sources: Vec<_> = book
        .dial_candidates(&ski(1))
        .into_iter()
        .map(|c| (c.address, c.source))
        .collect();
    assert_eq!(
        sources,
        vec![
            (v4(1, 4712), AddressSource::LastDialled),
            (v4(10, 4712), AddressSource::Static),
            (v4(20, 4712), discovered("mdns")),
            (v4(30, 4712), withdrawn("old")),
        ]
    );
}

#[test]
fn each_address_appears_once_under_its_best_source() {
    let mut book = AddressBook::new();
    sight(
        &mut book,
        ski(1),
        "mdns",
        [v4(1, 4712), v4(1, 4712)],
        "/ship/",
    )
    .unwrap();
    book.add_static(ski(1), v4(1, 4712), "/ship/").unwrap();
    book.add_static(ski(1), v4(1, 4712), "/ship/").unwrap();
    book.record_dialled(ski(1), v4(1, 4712), "/ship/").unwrap();
    let candidates = book.dial_candidates(&ski(1));
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].source, AddressSource::LastDialled);
}

#[test]
fn an_expired_record_never_leaves_a_connected_peer_without_an_address() {
    let mut book = AddressBook::new();
    sight(&mut book, ski(1), "wallbox", [v4(5, 4712)], "/ship/").unwrap();
    book.record_dialled(ski(1), v4(5, 4712), "/ship/").unwrap();
    assert_eq!(book.withdraw_instance("wallbox"), Some(ski(1)));
    let candidates = book.dial_candidates(&ski(1));
    assert_eq!(candidates.len(), 1);
    assert_eq!(candidates[0].address, v4(5, 4712));
    assert_eq!(candidates[0].source, AddressSource::LastDialled);
}

#[test]
fn a_withdrawn_sighting_stays_as_a_last_resort() {
    let mut book = AddressBook::new();
    sight(
        &mut book,
        ski(1),
        "wallbox",
        [v4(5, 4712), global_v6(4712)],
        "/x/",
    )
    .unwrap();
    book.withdraw_instance("wallbox");
    let candidates = book.dial_candidates(&ski(1));
    assert_eq!(
        candidates,
        vec![
            DialCandidate {
                address: v4(5, 4712),
                path: "/x/".into(),
                source: withdrawn("wallbox"),
                host: Some("wallbox.local".into()),
            },
            DialCandidate {
                address: global_v6(4712),
                path: "/x/".into(),
                source: withdrawn("wallbox"),
                host: Some("wallbox.local".into()),
            },
        ]
    );
    // Seen again: back to a current sighting, not listed twice; what it no longer announces
    // stays withdrawn.
    sight(&mut book, ski(1), "wallbox", [v4(5, 4712)], "/x/").unwrap();
    let sources: Vec<_> = book
        .dial_candidates(&ski(1))
        .into_iter()
        .map(|c| c.source)
        .collect();
    assert_eq!(sources, vec![discovered("wallbox"), withdrawn("wallbox")]);
}

#[test]
fn withdrawn_addresses_are_bounded_newest_first() {
    let mut book = AddressBook::with_max_discovered(8);
    for i in 0..20u8 {
        let instance = format!("instance-{i}");
        sight(&mut book, ski(1), &instance, [v4(i + 1, 4712)], "/ship/").unwrap();
        book.withdraw_instance(&instance);
    }
    let got = addresses(&book, &ski(1));
    let expected: Vec<_> = (0..8u8).map(|i| v4(20 - i, 4712)).collect();
    assert_eq!(got, expected);
}

#[test]
fn static_addresses_survive_every_discovery_event() {
    let mut book = AddressBook::new();
    book.add_static(ski(1), v4(9, 4711), "/ship/").unwrap();
    sight(&mut book, ski(1), "wallbox", [v4(5, 4712)], "/ship/").unwrap();
    book.withdraw_instance("wallbox");
    sight(&mut book, ski(1), "wallbox", std::iter::empty(), "/ship/").unwrap();
    assert_eq!(addresses(&book, &ski(1))[0], v4(9, 4711));
    book.clear_static(&ski(1));
    assert_eq!(addresses(&book, &ski(1)), vec![v4(5, 4712)]);
}

#[test]
fn an_incoming_connection_from_a_new_ip_is_dialled_at_the_known_port() {
    let mut book = AddressBook::new();
    sight(&mut book, ski(1), "wallbox", [v4(5, 4712)], "/ship/").unwrap();
    book.record_dialled(ski(1), v4(5, 4712), "/ship/").unwrap();
    book.withdraw_instance("wallbox");
    // The peer got a new address and connected to us from an ephemeral port.
    book.record_incoming(ski(1), v4(77, 51234)).unwrap();
    let candidates = book.dial_candidates(&ski(1));
    assert_eq!(candidates[0].address, v4(77, 4712));
    assert_eq!(candidates[0].source, AddressSource::LastIncoming);
    assert_eq!(candidates[1].address, v4(5, 4712));
    assert_eq!(book.last_successful(&ski(1)), Some(candidates[0].clone()));
    // A later successful dial is the most recent success again.
    book.record_dialled(ski(1), v4(5, 4712), "/ship/").unwrap();
    assert_eq!(addresses(&book, &ski(1)), vec![v4(5, 4712), v4(77, 4712)]);
}

#[test]
fn an_incoming_connection_without_a_known_port_gives_no_candidate_yet() {
    let mut book = AddressBook::new();
    book.record_incoming(ski(1), v4(77, 51234)).unwrap();
    assert!(book.contains(&ski(1)));
    assert!(book.dial_candidates(&ski(1)).is_empty());
    sight(&mut book, ski(1), "wallbox", [v4(5, 4712)], "/ship/").unwrap();
    assert_eq!(addresses(&book, &ski(1)), vec![v4(77, 4712), v4(5, 4712)]);
}

#[test]
fn ipv4_mapped_addresses_count_as_ipv4() {
    let mut book = AddressBook::new();
    sight(&mut book, ski(1), "wallbox", [v4(5, 4712)], "/ship/").unwrap();
    let mapped: SocketAddr = "[::ffff:192.168.1.5]:50000".parse().unwrap();
    book.record_incoming(ski(1), mapped).unwrap();
    assert_eq!(addresses(&book, &ski(1)), vec![v4(5, 4712)]);
}

#[test]
fn within_a_sighting_ipv4_then_global_ipv6_then_link_local() {
    let mut book = AddressBook::new();
    sight(
        &mut book,
        ski(1),
        "wallbox",
        [link_local(3, 4712), global_v6(4712), v4(5, 4712)],
        "/ship/",
    )
    .unwrap();
    assert_eq!(
        addresses(&book, &ski(1)),
        vec![v4(5, 4712), global_v6(4712), link_local(3, 4712)]
    );
}

#[test]
fn link_local_addresses_keep_their_scope_and_differ_by_it() {
    let mut book = AddressBook::new();
    sight(
        &mut book,
        ski(1),
        "wallbox",
        [link_local(2, 4712), link_local(3, 4712)],
        "/ship/",
    )
    .unwrap();
    let got = addresses(&book, &ski(1));
    assert_eq!(got, vec![link_local(2, 4712), link_local(3, 4712)]);
    match got[1] {
        SocketAddr::V6(v6) => assert_eq!(v6.scope_id(), 3),
        other => panic!("{other}"),
    }
}

#[test]
fn claims_are_tried_in_the_order_learnt_and_announcing_again_does_not_move_one_ahead() {
    let mut book = AddressBook::new();
    sight(&mut book, ski(1), "a", [v4(1, 4712)], "/ship/").unwrap();
    sight(&mut book, ski(1), "b", [v4(2, 4712)], "/ship/").unwrap();
    assert_eq!(addresses(&book, &ski(1)), vec![v4(1, 4712), v4(2, 4712)]);
    // Announced again (a fake can re-announce as often as it likes): no move.
    sight(&mut book, ski(1), "b", [v4(2, 4712)], "/ship/").unwrap();
    assert_eq!(addresses(&book, &ski(1)), vec![v4(1, 4712), v4(2, 4712)]);
    // A new address of an instance is a new claim; the old one is withdrawn.
    sight(&mut book, ski(1), "a", [v4(3, 4712)], "/ship/").unwrap();
    assert_eq!(
        addresses(&book, &ski(1)),
        vec![v4(2, 4712), v4(3, 4712), v4(1, 4712)]
    );
    assert_eq!(book.dial_candidates(&ski(1))[2].source, withdrawn("a"));
}

#[test]
fn untried_claims_are_taken_from_both_ends_of_the_order_learnt() {
    // A real claim with fakes announced before it and in reaction to it.
    let mut book = AddressBook::new();
    for i in 1..=3u8 {
        sight(
            &mut book,
            ski(1),
            &format!("before-{i}"),
            [v4(i, 4712)],
            "/ship/",
        )
        .unwrap();
    }
    sight(
        &mut book,
        ski(1),
        "real",
        [v4(100, 4712), global_v6(4712)],
        "/ship/",
    )
    .unwrap();
    let order = |book: &AddressBook| addresses(book, &ski(1));
    // The real one is the latest: second.
    assert_eq!(
        order(&book),
        vec![
            v4(1, 4712),
            v4(100, 4712),
            global_v6(4712),
            v4(2, 4712),
            v4(3, 4712)
        ]
    );
    for i in 10..=12u8 {
        sight(
            &mut book,
            ski(1),
            &format!("after-{i}"),
            [v4(i, 4712)],
            "/ship/",
        )
        .unwrap();
    }
    // Earliest, latest, second earliest, second latest, …
    assert_eq!(
        order(&book),
        vec![
            v4(1, 4712),
            v4(12, 4712),
            v4(2, 4712),
            v4(11, 4712),
            v4(3, 4712),
            v4(10, 4712),
            v4(100, 4712),
            global_v6(4712),
        ]
    );
    // Alone with fakes announced in reaction to it, the real claim is first.
    let mut book = AddressBook::new();
    sight(&mut book, ski(1), "real", [v4(100, 4712)], "/ship/").unwrap();
    for i in 1..=100u8 {
        sight(
            &mut book,
            ski(1),
            &format!("after-{i}"),
            [v4(i, 4712)],
            "/ship/",
        )
        .unwrap();
    }
    assert_eq!(order(&book)[0], v4(100, 4712));
}

#[test]
fn an_instance_that_now_announces_another_ski_moves_to_it() {
    let mut book = AddressBook::new();
    sight(&mut book, ski(1), "wallbox", [v4(5, 4712)], "/ship/").unwrap();
    sight(&mut book, ski(2), "wallbox", [v4(6, 4712)], "/ship/").unwrap();
    assert_eq!(
        book.dial_candidates(&ski(1))[0].source,
        withdrawn("wallbox")
    );
    assert_eq!(book.dial_candidates(&ski(2))[0].address, v4(6, 4712));
    assert_eq!(book.withdraw_instance("wallbox"), Some(ski(2)));
    assert_eq!(book.withdraw_instance("wallbox"), None);
}

#[test]
fn undialable_addresses_are_typed_errors() {
    let mut book = AddressBook::new();
    let cases = [
        (SocketAddr::from(([0, 0, 0, 0], 4712)), "Unspecified"),
        (v4(5, 0), "PortZero"),
        (SocketAddr::from(([224, 0, 0, 251], 5353)), "NotUnicast"),
        (SocketAddr::from(([255, 255, 255, 255], 4712)), "NotUnicast"),
        (link_local(0, 4712), "LinkLocalWithoutScope"),
    ];
    for (address, kind) in cases {
        let error = book.add_static(ski(1), address, "/ship/").unwrap_err();
        assert!(
            format!("{error:?}").starts_with(kind),
            "{address}: {error:?}"
        );
        assert!(book.record_dialled(ski(1), address, "/ship/").is_err());
    }
    assert_eq!(
        book.add_static(ski(1), v4(5, 4712), "ship"),
        Err(AddressError::BadPath {
            path: "ship".into()
        })
    );
    assert!(book.record_incoming(ski(1), link_local(0, 5000)).is_err());
    // In a sighting, undialable addresses are left out and the rest is kept.
    let n = sight(
        &mut book,
        ski(1),
        "w",
        [link_local(0, 4712), v4(5, 4712)],
        "/ship/",
    )
    .unwrap();
    assert_eq!(n, 1);
    assert!(sight(&mut book, ski(1), "w", [v4(5, 4712)], "ship").is_err());
    assert_eq!(addresses(&book, &ski(1)), vec![v4(5, 4712)]);
}

#[test]
fn forget_removes_everything_about_a_peer() {
    let mut book = AddressBook::new();
    book.add_static(ski(1), v4(9, 4711), "/ship/").unwrap();
    sight(&mut book, ski(1), "wallbox", [v4(5, 4712)], "/ship/").unwrap();
    sight(&mut book, ski(2), "other", [v4(6, 4712)], "/ship/").unwrap();
    book.forget(&ski(1));
    assert!(!book.contains(&ski(1)));
    assert!(book.dial_candidates(&ski(1)).is_empty());
    assert_eq!(book.skis().collect::<Vec<_>>(), vec![&ski(2)]);
    assert_eq!(book.withdraw_instance("wallbox"), None);
}

#[derive(Debug, Clone)]
enum Op {
    Dialled(u8, u8),
    Incoming(u8, u8),
    Static(u8, u8),
    Sighting(u8, u8, Vec<u8>),
    Withdraw(u8),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    let peer = 0u8..3;
    let host = 0u8..6;
    prop_oneof![
        (peer.clone(), host.clone()).prop_map(|(p, h)| Op::Dialled(p, h)),
        (peer.clone(), host.clone()).prop_map(|(p, h)| Op::Incoming(p, h)),
        (peer.clone(), host.clone()).prop_map(|(p, h)| Op::Static(p, h)),
        (peer, 0u8..3, proptest::collection::vec(host, 0..4))
            .prop_map(|(p, i, hs)| Op::Sighting(p, i, hs)),
        (0u8..3).prop_map(Op::Withdraw),
    ]
}

/// Host 0 is undialable (link-local without scope); the others are fine.
fn host(h: u8) -> SocketAddr {
    match h {
        0 => link_local(0, 4712),
        1 => link_local(1, 4712),
        h => v4(h, 4712),
    }
}

proptest::proptest! {
    #[test]
    fn a_peer_once_reachable_always_has_distinct_dialable_candidates(
        ops in proptest::collection::vec(op(), 0..60)
    ) {
        let mut book = AddressBook::new();
        let mut reachable = [false; 3];
        for op in ops {
            match op {
                Op::Dialled(p, h) => {
                    reachable[p as usize] |=
                        book.record_dialled(ski(p), host(h), "/ship/").is_ok();
                }
                Op::Incoming(p, h) => {
                    let _ = book.record_incoming(ski(p), host(h));
                }
                Op::Static(p, h) => {
                    reachable[p as usize] |=
                        book.add_static(ski(p), host(h), "/ship/").is_ok();
                }
                Op::Sighting(p, i, hs) => {
                    let n = sight(&mut book, ski(p), &format!("i{i}"), hs.into_iter().map(host), "/s/")
                        .unwrap();
                    reachable[p as usize] |= n > 0;
                }
                Op::Withdraw(i) => {
                    book.withdraw_instance(&format!("i{i}"));
                }
            }
            for p in 0..3u8 {
                let candidates = book.dial_candidates(&ski(p));
                proptest::prop_assert!(
                    !reachable[p as usize] || !candidates.is_empty(),
                    "peer {} lost every address", p
                );
                for (k, c) in candidates.iter().enumerate() {
                    proptest::prop_assert!(check_dialable(c.address).is_ok());
                    proptest::prop_assert!(
                        candidates[..k].iter().all(|o| o.address != c.address),
                        "{} listed twice", c.address
                    );
                }
            }
        }
    }
}

#[test]
fn discovered_addresses_are_capped_never_the_successful_or_static() {
    let mut book = AddressBook::with_max_discovered(4);
    book.record_dialled(ski(1), v4(200, 4711), "/ship/")
        .unwrap();
    book.add_static(ski(1), v4(201, 4711), "/ship/").unwrap();
    // Ten claims, one address each, none tried yet: the first four wait for their turn and
    // keep their places.
    for i in 0..10u8 {
        let n = sight(
            &mut book,
            ski(1),
            &format!("fake-{i}"),
            [v4(i + 1, 4712)],
            "/ship/",
        )
        .unwrap();
        assert_eq!(n, usize::from(i < 4));
    }
    assert_eq!(
        addresses(&book, &ski(1)),
        vec![
            v4(200, 4711),
            v4(201, 4711),
            v4(1, 4712),
            v4(4, 4712),
            v4(2, 4712),
            v4(3, 4712)
        ]
    );
    // Once they were tried and failed, one sighting with many addresses takes their places,
    // at most four of them.
    for i in 1..=4u8 {
        book.record_failure(&ski(1), v4(i, 4712));
    }
    let many: Vec<_> = (20..40u8).map(|i| v4(i, 4712)).collect();
    assert_eq!(sight(&mut book, ski(1), "many", many, "/ship/").unwrap(), 4);
    let got = addresses(&book, &ski(1));
    assert_eq!(got.len(), 6, "{got:?}");
    assert_eq!(
        &got[2..],
        &[v4(20, 4712), v4(21, 4712), v4(22, 4712), v4(23, 4712)]
    );
}

#[test]
fn a_failed_claim_is_demoted_behind_every_untried_one_and_announcing_it_again_does_not_help() {
    let mut book = AddressBook::new();
    book.record_dialled(ski(1), v4(100, 4711), "/ship/")
        .unwrap();
    for i in 1..=3u8 {
        sight(
            &mut book,
            ski(1),
            &format!("fake-{i}"),
            [v4(i, 4712)],
            "/ship/",
        )
        .unwrap();
    }
    // The newest fake fails twice, the oldest once.
    book.record_failure(&ski(1), v4(3, 4712));
    book.record_failure(&ski(1), v4(3, 4712));
    book.record_failure(&ski(1), v4(1, 4712));
    assert!(book.is_demoted(&ski(1), v4(3, 4712)));
    // Re-announced: still demoted.
    sight(&mut book, ski(1), "fake-3", [v4(3, 4712)], "/ship/").unwrap();
    // A fresh claim goes before the demoted ones.
    sight(&mut book, ski(1), "real", [v4(50, 4712)], "/ship/").unwrap();
    assert_eq!(
        addresses(&book, &ski(1)),
        vec![
            v4(100, 4711), // proven: first, whatever failed
            v4(2, 4712),   // untried: the earliest, the latest
            v4(50, 4712),
            v4(1, 4712), // demoted: fewest failures first
            v4(3, 4712),
        ]
    );
    // The proven address failing keeps its place.
    book.record_failure(&ski(1), v4(100, 4711));
    assert_eq!(addresses(&book, &ski(1))[0], v4(100, 4711));
    // A claim that worked is no longer demoted.
    book.record_dialled(ski(1), v4(3, 4712), "/ship/").unwrap();
    assert!(!book.is_demoted(&ski(1), v4(3, 4712)));
    assert_eq!(addresses(&book, &ski(1))[0], v4(3, 4712));
}

#[test]
fn among_demoted_claims_the_one_that_failed_longest_ago_comes_first() {
    let mut book = AddressBook::new();
    for i in 1..=3u8 {
        sight(
            &mut book,
            ski(1),
            &format!("fake-{i}"),
            [v4(i, 4712)],
            "/ship/",
        )
        .unwrap();
    }
    for i in [2u8, 1, 3] {
        book.record_failure(&ski(1), v4(i, 4712));
    }
    assert_eq!(
        addresses(&book, &ski(1)),
        vec![v4(2, 4712), v4(1, 4712), v4(3, 4712)]
    );
}

#[test]
fn demoted_claims_are_evicted_before_any_untried_one() {
    let mut book = AddressBook::with_max_discovered(4);
    // The real claim first, then three fakes that are tried and fail.
    sight(&mut book, ski(1), "real", [v4(200, 4712)], "/ship/").unwrap();
    for i in 1..=3u8 {
        sight(
            &mut book,
            ski(1),
            &format!("fake-{i}"),
            [v4(i, 4712)],
            "/ship/",
        )
        .unwrap();
        book.record_failure(&ski(1), v4(i, 4712));
    }
    // Three fresh fakes take the places of the demoted ones, not of the untried real claim.
    for i in 10..13u8 {
        sight(
            &mut book,
            ski(1),
            &format!("fake-{i}"),
            [v4(i, 4712)],
            "/ship/",
        )
        .unwrap();
    }
    assert_eq!(
        addresses(&book, &ski(1)),
        vec![v4(200, 4712), v4(12, 4712), v4(10, 4712), v4(11, 4712)]
    );
    // Once every claim waits for its first dial, a new one finds no room (the limit of the
    // bound): the real claim, learnt first, keeps its place and goes first.
    assert_eq!(
        sight(&mut book, ski(1), "fake-13", [v4(13, 4712)], "/ship/").unwrap(),
        0
    );
    assert_eq!(book.claims(&ski(1)), 4);
    assert_eq!(addresses(&book, &ski(1))[0], v4(200, 4712));
}

#[test]
fn a_flood_of_claims_stays_within_the_bound() {
    let mut book = AddressBook::with_max_discovered(128);
    book.record_dialled(ski(1), v4(250, 4711), "/ship/")
        .unwrap();
    for n in 0..10_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + n);
        let address = SocketAddr::from((ip, 4712));
        book.record_sighting(
            ski(1),
            &format!("fake-{n}"),
            "fake.local",
            [address],
            "/ship/",
        )
        .unwrap();
        if n % 3 == 0 {
            book.record_failure(&ski(1), address);
        }
        assert!(book.claims(&ski(1)) <= 128);
    }
    assert_eq!(addresses(&book, &ski(1))[0], v4(250, 4711));
    assert_eq!(book.dial_candidates(&ski(1)).len(), 129);
}
