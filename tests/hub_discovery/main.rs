//! The Hub fed by the in-memory discovery, on a simulated LAN under tokio's paused clock:
//! peers found by announcement only, expired records, TXT records that lie about the SKI, and
//! (in `hub_discovery/pairing_decision.rs`) the application's pairing decision.

use ship_hub::hub::PairedPeer;
use ship_test_support::common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::{Recorder, Seen, identity, lan_addr, lan_config, paused_runtime, start};
use ship_hub::discovery::{InMemoryLan, ShipTxt, Sighting};
use ship_hub::hub::{MemoryLan, MemoryTrustStore, Network, TrustStore};
use ship_hub::protocol::ConnectionState;
use ship_hub::{ShipId, Ski};

/// Two hubs with no static addresses find each other through announcements only, pair (each
/// trusts the other's SKI) and exchange data; the application sees the visible services.
#[test]
fn hubs_found_by_announcement_pair_and_exchange_data() {
    paused_runtime().block_on(async {
        let net = MemoryLan::new();
        let mdns = InMemoryLan::new();
        let (ida, idb) = (identity("a"), identity("b"));
        let (a_ski, b_ski) = (ida.ski(), idb.ski());
        let (ra, rb) = (Recorder::new(), Recorder::new());
        let mut ca = lan_config(&net, 1, ida, &ra);
        ca.discovery = Some(Arc::new(mdns.attach(a_ski, vec![lan_addr(1).ip()])));
        let mut cb = lan_config(&net, 2, idb, &rb);
        cb.discovery = Some(Arc::new(mdns.attach(b_ski, vec![lan_addr(2).ip()])));
        let a = start(ca).await;
        let b = start(cb).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            a.visible_services()
                .iter()
                .map(|s| s.ski)
                .collect::<Vec<_>>(),
            vec![b_ski]
        );
        b.pair(a_ski).unwrap();
        a.pair(b_ski).unwrap();
        assert!(
            ra.wait_for(Duration::from_secs(10), |s| *s == Seen::Connected(b_ski))
                .await,
            "{:?}",
            ra.all()
        );
        assert!(
            rb.wait_for(Duration::from_secs(10), |s| *s == Seen::Connected(a_ski))
                .await
        );
        a.send_data(b_ski, br#"{"x":1}"#).unwrap();
        assert!(
            rb.wait_for(Duration::from_secs(5), |s| *s
                == Seen::Data(a_ski, br#"{"x":1}"#.to_vec()))
                .await
        );
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// A paired peer whose mDNS record expired (and who comes back without announcing) is redialled
/// at its last known address.
#[test]
fn paired_peer_with_expired_record_is_still_redialled() {
    paused_runtime().block_on(async {
        let net = MemoryLan::new();
        let mdns = InMemoryLan::new();
        let (ida, idb) = (identity("a"), identity("b"));
        let (a_ski, b_ski) = (ida.ski(), idb.ski());
        let b_key = idb.clone();
        let b_trust = Arc::new(MemoryTrustStore::default());
        let (ra, rb) = (Recorder::new(), Recorder::new());
        let mut ca = lan_config(&net, 1, ida, &ra);
        ca.discovery = Some(Arc::new(mdns.attach(a_ski, vec![lan_addr(1).ip()])));
        let mut cb = lan_config(&net, 2, idb, &rb);
        cb.discovery = Some(Arc::new(mdns.attach(b_ski, vec![lan_addr(2).ip()])));
        cb.trust_store = b_trust.clone();
        let a = start(ca).await;
        let b = start(cb).await;
        b.pair(a_ski).unwrap();
        a.pair(b_ski).unwrap();
        assert!(
            ra.wait_for(Duration::from_secs(10), |s| *s == Seen::Connected(b_ski))
                .await
        );

        // B goes away; its record expires; A no longer sees it.
        b.shutdown().await;
        mdns.expire_ski(&b_ski);
        assert!(
            ra.wait_for(
                Duration::from_secs(60),
                |s| matches!(s, Seen::Disconnected(k, _) if *k == b_ski)
            )
            .await
        );
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert!(a.visible_services().is_empty());

        // B comes back at the same address, without any announcement.
        let rb2 = Recorder::new();
        let mut cb2 = lan_config(&net, 2, b_key, &rb2);
        cb2.trust_store = b_trust;
        let b2 = start(cb2).await;
        let before = ra.count(|s| *s == Seen::Connected(b_ski));
        tokio::time::sleep(Duration::from_secs(21)).await;
        assert_eq!(
            ra.count(|s| *s == Seen::Connected(b_ski)),
            before + 1,
            "{:?}",
            ra.all()
        );
        assert_eq!(a.connection_state(b_ski), ConnectionState::Completed);
        a.shutdown().await;
        b2.shutdown().await;
    });
}

/// A record that claims SKI X at the address of a node whose certificate proves SKI Y: the dial
/// expects X, TLS refuses Y, and it is never connected; dials follow the backoff tiers (no storm).
#[test]
fn peer_whose_txt_ski_lies_is_never_connected() {
    paused_runtime().block_on(async {
        let net = MemoryLan::new();
        let mdns = InMemoryLan::new();
        let (ida, liar) = (identity("a"), identity("liar"));
        let claimed = identity("claimed").ski();
        let a_ski = ida.ski();
        let (ra, rl) = (Recorder::new(), Recorder::new());
        let mut ca = lan_config(&net, 1, ida, &ra);
        ca.discovery = Some(Arc::new(mdns.attach(a_ski, vec![lan_addr(1).ip()])));
        let a = start(ca).await;
        let mut cl = lan_config(&net, 2, liar, &rl);
        cl.auto_accept = true;
        let _liar = start(cl).await;
        // The lie: an announcement of `claimed` at the liar's address.
        mdns.inject(Sighting {
            instance: "liar._ship._tcp.local.".into(),
            host: "liar.local.".into(),
            txt: ShipTxt::new(ShipId::new("liar").unwrap(), claimed),
            addresses: BTreeSet::from([lan_addr(2)]),
        });
        a.pair(claimed).unwrap();
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert_eq!(ra.count(|s| matches!(s, Seen::Connected(_))), 0);
        assert_ne!(a.connection_state(claimed), ConnectionState::Completed);
        let dials = ra.count(|s| *s == Seen::State(claimed, ConnectionState::Initiated));
        // 60 s of tiers 0–3, 3–10, 10–20, ...: between 3 and 7 attempts.
        assert!((3..=7).contains(&dials), "{dials} dials in 60 s");
        assert!(a.metrics().failures.total() >= dials as u64);
        a.shutdown().await;
    });
}

/// The application hears about visible services through `visible_services_changed`
/// (deduplicated, sorted by SKI, never itself), and `set_auto_accept` re-announces with the new
/// `register` flag, which the other side sees.
#[test]
fn visible_services_are_reported_and_register_changes_are_reannounced() {
    paused_runtime().block_on(async {
        let net = MemoryLan::new();
        let mdns = InMemoryLan::new();
        let (ida, idb, idc) = (identity("a"), identity("b"), identity("c"));
        let (a_ski, b_ski, c_ski) = (ida.ski(), idb.ski(), idc.ski());
        let (ra, rb, rc) = (Recorder::new(), Recorder::new(), Recorder::new());
        let mut ca = lan_config(&net, 1, ida, &ra);
        ca.discovery = Some(Arc::new(mdns.attach(a_ski, vec![lan_addr(1).ip()])));
        let mut cb = lan_config(&net, 2, idb, &rb);
        cb.discovery = Some(Arc::new(mdns.attach(b_ski, vec![lan_addr(2).ip()])));
        let mut cc = lan_config(&net, 3, idc, &rc);
        cc.discovery = Some(Arc::new(mdns.attach(c_ski, vec![lan_addr(3).ip()])));
        let a = start(ca).await;
        let b = start(cb).await;
        let c = start(cc).await;
        let mut others = vec![b_ski, c_ski];
        others.sort();
        assert!(
            ra.wait_for(Duration::from_secs(5), |s| *s
                == Seen::Visible(others.clone()))
                .await,
            "{:?}",
            ra.all()
        );
        assert!(!a.visible_services()[0].txt.register);
        assert!(!a.auto_accept());

        b.set_auto_accept(true).unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let seen_b = a
            .visible_services()
            .into_iter()
            .find(|s| s.ski == b_ski)
            .unwrap();
        assert!(seen_b.txt.register, "re-announcement not seen");
        a.shutdown().await;
        b.shutdown().await;
        c.shutdown().await;
    });
}

/// With auto-accept on, an unknown peer is paired without asking the application (and stored);
/// with it off (the default), nothing is paired without an explicit decision.
#[test]
fn auto_accept_pairs_unknown_peers_only_when_switched_on() {
    paused_runtime().block_on(async {
        let net = MemoryLan::new();
        let (ida, idb) = (identity("a"), identity("b"));
        let (a_ski, b_ski) = (ida.ski(), idb.ski());
        let (ra, rb) = (Recorder::new(), Recorder::new());
        let trust_b = Arc::new(MemoryTrustStore::default());
        let a = start(lan_config(&net, 1, ida, &ra)).await;
        let mut cb = lan_config(&net, 2, idb, &rb);
        cb.trust_store = trust_b.clone();
        let b = start(cb).await;
        // Off: A's pairing request is refused (the recorder says no), nothing stored.
        a.pair(PairedPeer::new(b_ski).with_address(lan_addr(2)))
            .unwrap();
        assert!(
            rb.wait_for(Duration::from_secs(10), |s| *s
                == Seen::PairingRequested(a_ski))
                .await
        );
        b.pairings_saved().await.unwrap();
        assert!(trust_b.get(&a_ski).unwrap().is_none());
        assert_eq!(rb.count(|s| matches!(s, Seen::Connected(_))), 0);
        // On: the next dial is accepted without a question.
        b.set_auto_accept(true).unwrap();
        let asked = rb.count(|s| matches!(s, Seen::PairingRequested(_)));
        assert!(
            rb.wait_for(Duration::from_secs(60), |s| *s == Seen::Connected(a_ski))
                .await,
            "{:?}",
            rb.all()
        );
        assert_eq!(rb.count(|s| matches!(s, Seen::PairingRequested(_))), asked);
        b.pairings_saved().await.unwrap();
        assert!(trust_b.get(&a_ski).unwrap().is_some());
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// A SKI made from a number (distinct for every `n` below 2^32).
fn numbered_ski(n: u32) -> Ski {
    let mut bytes = [0x5a; 20];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    Ski::from_bytes(bytes)
}

/// An announcement of `ski` under instance `name` at `address`.
fn claim(name: &str, ski: Ski, address: SocketAddr) -> Sighting {
    Sighting {
        instance: format!("{name}._ship._tcp.local."),
        host: format!("{name}.local."),
        txt: ShipTxt::new(ShipId::new(name).unwrap(), ski),
        addresses: BTreeSet::from([address]),
    }
}

/// Announces `count` services with distinct SKIs (at unreachable addresses) in batches of
/// `batch`, `pause` apart.
async fn spoof_burst(mdns: &InMemoryLan, count: u32, batch: u32, pause: Duration) {
    for n in 0..count {
        let address = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a64_0000 + n)), 4711);
        mdns.inject(claim(&format!("spoof-{n}"), numbered_ski(n), address));
        if (n + 1) % batch == 0 {
            tokio::time::sleep(pause).await;
        }
    }
}

/// Finding: every sighting produced a `visible_services_changed` callback with the whole list.
/// During a burst of 1,000 announcements over one second the application gets at most one
/// callback per second (the default interval), and the last one carries the final list.
#[test]
fn visible_services_callbacks_are_coalesced_during_a_burst() {
    paused_runtime().block_on(async {
        let net = MemoryLan::new();
        let mdns = InMemoryLan::new();
        let ida = identity("a");
        let a_ski = ida.ski();
        let ra = Recorder::new();
        let mut ca = lan_config(&net, 1, ida, &ra);
        ca.discovery = Some(Arc::new(mdns.attach(a_ski, vec![lan_addr(1).ip()])));
        let a = start(ca).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = ra.count(|s| matches!(s, Seen::Visible(_)));
        spoof_burst(&mdns, 1000, 10, Duration::from_millis(10)).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let reports: Vec<usize> = ra
            .all()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Visible(skis) => Some(skis.len()),
                _ => None,
            })
            .skip(before)
            .collect();
        // A one-second burst and the tail: at most three reports.
        assert!(
            !reports.is_empty() && reports.len() <= 3,
            "{} reports",
            reports.len()
        );
        assert_eq!(reports.last(), Some(&1000));
        assert_eq!(a.visible_services().len(), 1000);
        a.shutdown().await;
    });
}

/// Finding: a burst of 10,000 spoofed announcements disabled discovery. After the burst the
/// hub keeps at most 1,000 visible services, and a paired peer that announces itself afterwards
/// is connected within 10 s.
#[test]
fn a_paired_peer_announced_after_a_10000_service_burst_is_connected() {
    paused_runtime().block_on(async {
        let net = MemoryLan::new();
        let mdns = InMemoryLan::new();
        let (ida, idb) = (identity("a"), identity("b"));
        let (a_ski, b_ski) = (ida.ski(), idb.ski());
        let (ra, rb) = (Recorder::new(), Recorder::new());
        let mut ca = lan_config(&net, 1, ida, &ra);
        ca.discovery = Some(Arc::new(mdns.attach(a_ski, vec![lan_addr(1).ip()])));
        let a = start(ca).await;
        a.pair(b_ski).unwrap();
        let wall = std::time::Instant::now();
        spoof_burst(&mdns, 10_000, 100, Duration::from_millis(10)).await;
        let burst_wall = wall.elapsed();
        assert!(a.visible_services().len() <= 1000);

        let mut cb = lan_config(&net, 2, idb, &rb);
        cb.discovery = Some(Arc::new(mdns.attach(b_ski, vec![lan_addr(2).ip()])));
        let b = start(cb).await;
        b.pair(a_ski).unwrap();
        let announced = tokio::time::Instant::now();
        assert!(
            ra.wait_for(Duration::from_secs(10), |s| *s == Seen::Connected(b_ski))
                .await,
            "not connected within 10 s of the announcement"
        );
        let visible_reports = ra.count(|s| matches!(s, Seen::Visible(_)));
        eprintln!(
            "burst of 10,000 applied in {burst_wall:?} (wall); connected {:?} (virtual) after \
             the announcement; {visible_reports} visible_services reports",
            announced.elapsed()
        );
        assert!(a.visible_services().len() <= 1000);
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// A host at 10.0.0.`host`:4711 that accepts TCP connections and never sends a byte.
async fn silent_host(net: &MemoryLan, host: u8) {
    let mut listener = net
        .host(lan_addr(host).ip())
        .bind(lan_addr(host))
        .await
        .unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((io, _)) = listener.accept().await {
            held.push(io);
        }
    });
}

/// Finding: ten fake claims of a paired SKI at addresses that accept TCP and stay silent were
/// dialled one after another (10 s each). The fakes announce first; once the real peer
/// announces itself it is connected within 2 s (its claim, the latest learnt, is taken next:
/// untried claims go from both ends of the order learnt).
#[test]
fn ten_silent_fakes_announced_first_do_not_delay_the_paired_peer() {
    paused_runtime().block_on(async {
        let net = MemoryLan::new();
        let mdns = InMemoryLan::new();
        let (ida, idb) = (identity("a"), identity("b"));
        let (a_ski, b_ski) = (ida.ski(), idb.ski());
        let (ra, rb) = (Recorder::new(), Recorder::new());
        let mut ca = lan_config(&net, 1, ida, &ra);
        ca.discovery = Some(Arc::new(mdns.attach(a_ski, vec![lan_addr(1).ip()])));
        let a = start(ca).await;
        a.pair(b_ski).unwrap();
        for host in 20..30 {
            silent_host(&net, host).await;
            mdns.inject(claim(&format!("fake-{host}"), b_ski, lan_addr(host)));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;

        // The real peer sorts after every fake (10.0.0.200). It knows no address of A, so only
        // A's dial can connect them; its announcement is injected.
        let b = start(lan_config(&net, 200, idb, &rb)).await;
        b.pair(a_ski).unwrap();
        mdns.inject(claim("real", b_ski, lan_addr(200)));
        let announced = tokio::time::Instant::now();
        assert!(
            ra.wait_for(Duration::from_secs(120), |s| *s == Seen::Connected(b_ski))
                .await
        );
        let took = announced.elapsed();
        eprintln!("connected {took:?} (virtual) after the real announcement, 10 fakes");
        assert!(took <= Duration::from_secs(2), "took {took:?}");
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// Three silent fakes announced after the real peer: the registry lists the real one last (the
/// oldest sighting), but the hub tries untried claims from both ends of the order it learnt
/// them in, so the real one, learnt first, is dialled first; connected within 2 s of the
/// pairing.
#[test]
fn silent_fakes_announced_after_the_paired_peer_do_not_delay_it() {
    paused_runtime().block_on(async {
        let net = MemoryLan::new();
        let mdns = InMemoryLan::new();
        let (ida, idb) = (identity("a"), identity("b"));
        let (a_ski, b_ski) = (ida.ski(), idb.ski());
        let (ra, rb) = (Recorder::new(), Recorder::new());
        let mut ca = lan_config(&net, 1, ida, &ra);
        ca.discovery = Some(Arc::new(mdns.attach(a_ski, vec![lan_addr(1).ip()])));
        let a = start(ca).await;
        // B knows no address of A, so only A's dial can connect them.
        let b = start(lan_config(&net, 200, idb, &rb)).await;
        b.pair(a_ski).unwrap();
        mdns.inject(claim("real", b_ski, lan_addr(200)));
        for host in 20..23 {
            silent_host(&net, host).await;
            mdns.inject(claim(&format!("fake-{host}"), b_ski, lan_addr(host)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // A sees the fakes first in the dial order: the real peer is the oldest sighting.
        let order = a.visible_services()[0].dial_order.clone();
        assert_eq!(order.last(), Some(&lan_addr(200)), "{order:?}");
        let paired = tokio::time::Instant::now();
        a.pair(b_ski).unwrap();
        assert!(
            ra.wait_for(Duration::from_secs(120), |s| *s == Seen::Connected(b_ski))
                .await
        );
        let took = paired.elapsed();
        eprintln!("connected {took:?} (virtual) after pairing, 3 fakes newer than the peer");
        assert!(took <= Duration::from_secs(2), "took {took:?}");
        a.shutdown().await;
        b.shutdown().await;
    });
}

mod pairing_decision;

mod fake_claims;

// ---- The SHIP Pairing Service, both roles, on the in-memory LAN ----------------------------

mod pairing_service {
    use super::*;
    use ship_hub::discovery::PairingSighting;
    use ship_hub::hub::{AcceptRequests, PairingServiceEvent, RequestPairing};
    use ship_hub::identity::Identity;
    use ship_hub::pairing_service::{
        Fingerprint, Nonce, PairingRequest, PairingSecret, Refusal, sign,
    };

    const SECRET: &str = "7A37DCF81BDB50F8E92CFA4160CCB3DE";
    const WAIT: Duration = Duration::from_secs(30);

    fn secret() -> PairingSecret {
        PairingSecret::from_hex(SECRET).unwrap()
    }

    fn fingerprint(identity: &Identity) -> Fingerprint {
        Fingerprint::of_certificate(identity.certificate_der())
    }

    struct Node {
        hub: ship_hub::hub::Hub,
        recorder: Arc<Recorder>,
        ski: Ski,
        trust: Arc<MemoryTrustStore>,
    }

    /// The energy manager at 10.0.0.1 with the printed secret.
    async fn energy_manager(net: &MemoryLan, mdns: &InMemoryLan, id: Identity) -> Node {
        let ski = id.ski();
        let recorder = Recorder::new();
        let trust = Arc::new(MemoryTrustStore::default());
        let mut config = lan_config(net, 1, id, &recorder);
        config.discovery = Some(Arc::new(mdns.attach(ski, vec![lan_addr(1).ip()])));
        config.trust_store = trust.clone();
        config.pairing_service.accept = Some(AcceptRequests::new(secret()));
        Node {
            hub: start(config).await,
            recorder,
            ski,
            trust,
        }
    }

    /// A device at 10.0.0.`host` asking the energy manager `em` to trust it.
    async fn device(
        net: &MemoryLan,
        mdns: &InMemoryLan,
        host: u8,
        id: Identity,
        em: &Identity,
        secret: PairingSecret,
    ) -> Node {
        let ski = id.ski();
        let recorder = Recorder::new();
        let trust = Arc::new(MemoryTrustStore::default());
        let mut config = lan_config(net, host, id, &recorder);
        config.discovery = Some(Arc::new(mdns.attach(ski, vec![lan_addr(host).ip()])));
        config.trust_store = trust.clone();
        config.pairing_service.request = Some(RequestPairing::new(
            ShipId::new("test-node-1").unwrap(),
            em.ski(),
            fingerprint(em),
            secret,
        ));
        Node {
            hub: start(config).await,
            recorder,
            ski,
            trust,
        }
    }

    fn paired_by_service(seen: &Seen, ski: Ski) -> bool {
        matches!(seen, Seen::PairingService(PairingServiceEvent::PairedByService { ski: s, .. }) if *s == ski)
    }

    fn refused(seen: &Seen) -> Option<Refusal> {
        match seen {
            Seen::PairingService(PairingServiceEvent::RequestRefused { error, .. }) => {
                Some(error.clone())
            }
            _ => None,
        }
    }

    /// A signed record for the energy manager `em` (SHIP ID `test-node-1`) asking it to trust
    /// `trusted`, as a sighting under `instance`.
    fn record(
        em: &Identity,
        trusted: &Identity,
        secret: &PairingSecret,
        instance: &str,
    ) -> PairingSighting {
        let signed = sign(
            &PairingRequest::new(
                ShipId::new("test-node-1").unwrap(),
                fingerprint(em),
                ShipId::new("some-unit").unwrap(),
                fingerprint(trusted),
                Nonce::random(),
            ),
            secret,
        );
        sighting(instance, &signed.to_pairs())
    }

    fn sighting(instance: &str, pairs: &[(String, String)]) -> PairingSighting {
        PairingSighting::new(
            format!("{instance}._shippairing._tcp.local."),
            pairs.iter().map(|(k, v)| (k.as_str(), Some(v.as_bytes()))),
        )
    }

    /// Done means: two ship-hub nodes pair through the Pairing Service, no `pair` command on
    /// the energy manager: the device announces, the energy manager verifies and trusts the
    /// device's certificate when it connects (stored, flagged), both reach data exchange, and
    /// the device's request is withdrawn once the connection has held 15 minutes.
    #[test]
    fn two_hubs_pair_through_the_pairing_service_and_the_request_settles() {
        paused_runtime().block_on(async {
            let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
            let (em_id, dev_id) = (identity("em"), identity("device"));
            let em_key = em_id.clone();
            let em = energy_manager(&net, &mdns, em_id).await;
            let dev = device(&net, &mdns, 2, dev_id, &em_key, secret()).await;
            assert!(dev.hub.pairing_request_announced());
            assert_eq!(mdns.pairing_instances().len(), 1);

            assert!(
                em.recorder
                    .wait_for(WAIT, |s| paired_by_service(s, dev.ski))
                    .await,
                "{:?}",
                em.recorder.all()
            );
            assert!(
                em.recorder
                    .wait_for(WAIT, |s| *s == Seen::Connected(dev.ski))
                    .await
            );
            assert!(
                dev.recorder
                    .wait_for(WAIT, |s| *s == Seen::Connected(em.ski))
                    .await
            );
            em.hub.pairings_saved().await.unwrap();
            dev.hub.pairings_saved().await.unwrap();
            let stored = em.trust.get(&dev.ski).unwrap().expect("stored as paired");
            assert!(stored.paired_by_service);
            assert!(dev.trust.get(&em.ski).unwrap().is_some());
            em.hub
                .send_data(dev.ski, br#"{"via":"pairing service"}"#)
                .unwrap();
            assert!(
                dev.recorder
                    .wait_for(WAIT, |s| *s
                        == Seen::Data(em.ski, br#"{"via":"pairing service"}"#.to_vec()))
                    .await
            );

            // Still announced before 15 minutes, withdrawn after.
            tokio::time::sleep(Duration::from_secs(14 * 60)).await;
            assert!(dev.hub.pairing_request_announced());
            assert!(
                dev.recorder
                    .wait_for(Duration::from_secs(120), |s| *s
                        == Seen::PairingService(PairingServiceEvent::RequestSettled))
                    .await
            );
            assert!(!dev.hub.pairing_request_announced());
            assert!(
                mdns.pairing_instances().is_empty(),
                "withdrawn from the LAN"
            );
            assert_eq!(
                em.recorder.count(|s| matches!(s, Seen::Disconnected(..))),
                0
            );
            dev.hub.shutdown().await;
            em.hub.shutdown().await;
        });
    }

    /// A verified record honoured once; the same record announced again (under another
    /// instance) is refused as a replay and trusts nothing more.
    #[test]
    fn a_replayed_announcement_is_refused() {
        paused_runtime().block_on(async {
            let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
            let em_id = identity("em");
            let em_key = em_id.clone();
            let em = energy_manager(&net, &mdns, em_id).await;
            let unit = identity("unit");
            let original = record(&em_key, &unit, &secret(), "unit");
            mdns.inject_pairing(original.clone());
            assert!(
                em.recorder
                    .wait_for(WAIT, |s| matches!(
                        s,
                        Seen::PairingService(PairingServiceEvent::RequestAccepted { .. })
                    ))
                    .await
            );
            mdns.expire_pairing(&original.instance);
            let mut replay = original.clone();
            replay.instance = "captured._shippairing._tcp.local.".into();
            mdns.inject_pairing(replay);
            assert!(
                em.recorder
                    .wait_for(WAIT, |s| refused(s) == Some(Refusal::Replay))
                    .await,
                "{:?}",
                em.recorder.all()
            );
            // The very same instance re-announcing after a withdrawal: a replay too.
            tokio::time::sleep(Duration::from_secs(2)).await;
            mdns.inject_pairing(original);
            assert!(
                em.recorder
                    .wait_for(WAIT, |s| refused(s) == Some(Refusal::Replay))
                    .await
            );
            assert_eq!(
                em.recorder.count(|s| matches!(
                    s,
                    Seen::PairingService(PairingServiceEvent::RequestAccepted { .. })
                )),
                1
            );
            em.hub.shutdown().await;
        });
    }

    /// The replay guard survives a restart when the application persists
    /// `Hub::pairing_replay_history` and passes it back as `AcceptRequests::replay_history`:
    /// the record honoured in the first run is refused as a replay in the second.
    #[test]
    fn the_replay_guard_survives_a_restart_with_the_history_restored() {
        paused_runtime().block_on(async {
            let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
            let em_id = identity("em");
            let em_key = em_id.clone();
            let em = energy_manager(&net, &mdns, em_id.clone()).await;
            let original = record(&em_key, &identity("unit"), &secret(), "unit");
            mdns.inject_pairing(original.clone());
            assert!(
                em.recorder
                    .wait_for(WAIT, |s| matches!(
                        s,
                        Seen::PairingService(PairingServiceEvent::RequestAccepted { .. })
                    ))
                    .await
            );
            let history = em.hub.pairing_replay_history();
            assert_eq!(history.len(), 1);
            em.hub.shutdown().await;
            mdns.expire_pairing(&original.instance);

            // Second run, same identity, history restored.
            let recorder = Recorder::new();
            let mut config = lan_config(&net, 1, em_id, &recorder);
            let ski = em_key.ski();
            config.discovery = Some(Arc::new(mdns.attach(ski, vec![lan_addr(1).ip()])));
            let mut accept = AcceptRequests::new(secret());
            accept.replay_history = history;
            config.pairing_service.accept = Some(accept);
            let hub = start(config).await;
            mdns.inject_pairing(original);
            assert!(
                recorder
                    .wait_for(WAIT, |s| refused(s) == Some(Refusal::Replay))
                    .await,
                "{:?}",
                recorder.all()
            );
            assert_eq!(
                recorder.count(|s| matches!(
                    s,
                    Seen::PairingService(PairingServiceEvent::RequestAccepted { .. })
                )),
                0
            );
            hub.shutdown().await;
        });
    }

    /// A device with the wrong secret is refused (reported as a digest mismatch) and never
    /// trusted; its connection attempts stay those of a stranger.
    #[test]
    fn a_device_with_the_wrong_secret_is_not_trusted() {
        paused_runtime().block_on(async {
            let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
            let (em_id, dev_id) = (identity("em"), identity("device"));
            let em_key = em_id.clone();
            let em = energy_manager(&net, &mdns, em_id).await;
            let wrong = PairingSecret::from_hex("00112233445566778899AABBCCDDEEFF").unwrap();
            let dev = device(&net, &mdns, 2, dev_id, &em_key, wrong).await;
            assert!(
                em.recorder
                    .wait_for(WAIT, |s| refused(s) == Some(Refusal::DigestMismatch))
                    .await,
                "{:?}",
                em.recorder.all()
            );
            tokio::time::sleep(Duration::from_secs(60)).await;
            assert!(em.trust.get(&dev.ski).unwrap().is_none());
            assert_eq!(em.recorder.count(|s| *s == Seen::Connected(dev.ski)), 0);
            dev.hub.shutdown().await;
            em.hub.shutdown().await;
        });
    }

    /// Hostile input: 2,000 announcements (malformed, huge, wrong digest, for other nodes)
    /// while a peer paired through the service is connected: the peer keeps being served,
    /// nothing is trusted, and the application hears at most one refusal per second.
    #[test]
    fn a_flood_of_bad_announcements_costs_the_paired_peer_nothing() {
        paused_runtime().block_on(async {
            let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
            let (em_id, dev_id) = (identity("em"), identity("device"));
            let em_key = em_id.clone();
            let em = energy_manager(&net, &mdns, em_id).await;
            let dev = device(&net, &mdns, 2, dev_id, &em_key, secret()).await;
            assert!(
                em.recorder
                    .wait_for(WAIT, |s| *s == Seen::Connected(dev.ski))
                    .await
            );
            let stranger = identity("stranger");
            let wrong = PairingSecret::from_hex("FF").unwrap();
            let started = tokio::time::Instant::now();
            for i in 0..2000u32 {
                let mut pairs = record(&em_key, &stranger, &wrong, "x").properties;
                match i % 4 {
                    0 => {}                                                  // wrong digest
                    1 => pairs.truncate(5),                                  // missing keys
                    2 => pairs.push(("pad".into(), Some(vec![b'p'; 9000]))), // huge
                    _ => pairs[2].1 = Some(b"someone-else".to_vec()),        // not for us
                }
                mdns.inject_pairing(PairingSighting {
                    instance: format!("flood-{i}._shippairing._tcp.local."),
                    properties: pairs,
                });
                if i % 100 == 0 {
                    em.hub
                        .send_data(dev.ski, format!("{{\"i\":{i}}}").as_bytes())
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            }
            assert!(
                dev.recorder
                    .wait_for(WAIT, |s| *s == Seen::Data(em.ski, b"{\"i\":1900}".to_vec()))
                    .await,
                "the paired peer is still served"
            );
            let elapsed = started.elapsed();
            let reports = em.recorder.count(|s| refused(s).is_some());
            let allowed = elapsed.as_secs() as usize + 2;
            assert!(
                reports <= allowed,
                "{reports} refusals reported in {elapsed:?}"
            );
            em.hub.pairings_saved().await.unwrap();
            assert!(
                em.trust.load_all().unwrap().len() == 1,
                "nothing else trusted"
            );
            assert_eq!(
                em.recorder.count(|s| matches!(s, Seen::Disconnected(..))),
                0
            );
            dev.hub.shutdown().await;
            em.hub.shutdown().await;
        });
    }

    /// A device with a discovery but no request configured, at 10.0.0.`host`.
    async fn plain_device(net: &MemoryLan, mdns: &InMemoryLan, host: u8, id: Identity) -> Node {
        let ski = id.ski();
        let recorder = Recorder::new();
        let trust = Arc::new(MemoryTrustStore::default());
        let mut config = lan_config(net, host, id, &recorder);
        config.discovery = Some(Arc::new(mdns.attach(ski, vec![lan_addr(host).ip()])));
        config.trust_store = trust.clone();
        Node {
            hub: start(config).await,
            recorder,
            ski,
            trust,
        }
    }

    fn request_to(em: &Identity, secret: PairingSecret) -> RequestPairing {
        RequestPairing::new(
            ShipId::new("test-node-1").unwrap(),
            em.ski(),
            fingerprint(em),
            secret,
        )
    }

    fn settled_reports(node: &Node) -> usize {
        node.recorder
            .count(|s| *s == Seen::PairingService(PairingServiceEvent::RequestSettled))
    }

    /// `Hub::request_pairing` at run time, as an installer would correct a mistyped secret: the
    /// first request (wrong secret) is refused by the energy manager; the second replaces it
    /// (one record on the LAN), is verified, the device is paired through the service and
    /// connects, and after 15 minutes of that connection the request settles: reported once
    /// (the replaced one never), and withdrawn from the LAN.
    #[test]
    fn a_request_made_at_run_time_replaces_the_last_one_pairs_and_settles() {
        paused_runtime().block_on(async {
            let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
            let (em_id, dev_id) = (identity("em"), identity("device"));
            let em_key = em_id.clone();
            let em = energy_manager(&net, &mdns, em_id).await;
            let dev = plain_device(&net, &mdns, 2, dev_id).await;
            assert!(!dev.hub.pairing_request_announced());
            assert!(mdns.pairing_instances().is_empty());

            let wrong = PairingSecret::from_hex("00112233445566778899AABBCCDDEEFF").unwrap();
            dev.hub.request_pairing(request_to(&em_key, wrong)).unwrap();
            assert!(dev.hub.pairing_request_announced());
            dev.hub.pairings_saved().await.unwrap();
            assert!(
                dev.trust.get(&em.ski).unwrap().is_some(),
                "the energy manager is paired"
            );
            assert!(
                em.recorder
                    .wait_for(WAIT, |s| refused(s) == Some(Refusal::DigestMismatch))
                    .await,
                "{:?}",
                em.recorder.all()
            );
            tokio::time::sleep(Duration::from_secs(2)).await;
            dev.hub
                .request_pairing(request_to(&em_key, secret()))
                .unwrap();
            assert_eq!(mdns.pairing_instances().len(), 1, "replaced, not added");
            assert!(
                em.recorder
                    .wait_for(WAIT, |s| paired_by_service(s, dev.ski))
                    .await,
                "{:?}",
                em.recorder.all()
            );
            assert!(
                dev.recorder
                    .wait_for(WAIT, |s| *s == Seen::Connected(em.ski))
                    .await,
                "{:?}",
                dev.recorder.all()
            );
            tokio::time::sleep(Duration::from_secs(14 * 60)).await;
            assert!(dev.hub.pairing_request_announced());
            assert_eq!(settled_reports(&dev), 0);
            assert!(
                dev.recorder
                    .wait_for(Duration::from_secs(120), |s| *s
                        == Seen::PairingService(PairingServiceEvent::RequestSettled))
                    .await
            );
            assert!(!dev.hub.pairing_request_announced());
            assert!(mdns.pairing_instances().is_empty(), "withdrawn");
            tokio::time::sleep(Duration::from_secs(60 * 60)).await;
            assert_eq!(
                settled_reports(&dev),
                1,
                "the replaced request never settles"
            );
            dev.hub.shutdown().await;
            em.hub.shutdown().await;
        });
    }

    /// A request made while the energy manager is connected already (the two were paired by
    /// their SKIs): that connection counts from the request on, so it settles 15 minutes later
    /// without any reconnection.
    #[test]
    fn a_request_made_while_connected_settles_on_that_connection() {
        paused_runtime().block_on(async {
            let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
            let (em_id, dev_id) = (identity("em"), identity("device"));
            let em_key = em_id.clone();
            let em = energy_manager(&net, &mdns, em_id).await;
            let dev = plain_device(&net, &mdns, 2, dev_id).await;
            em.hub.pair(dev.ski).unwrap();
            dev.hub.pair(em.ski).unwrap();
            assert!(
                dev.recorder
                    .wait_for(WAIT, |s| *s == Seen::Connected(em.ski))
                    .await
            );
            let made = tokio::time::Instant::now();
            dev.hub
                .request_pairing(request_to(&em_key, secret()))
                .unwrap();
            assert!(
                dev.recorder
                    .wait_for(Duration::from_secs(16 * 60), |s| *s
                        == Seen::PairingService(PairingServiceEvent::RequestSettled))
                    .await,
                "{:?}",
                dev.recorder.all()
            );
            assert!(made.elapsed() >= Duration::from_secs(15 * 60));
            assert!(made.elapsed() < Duration::from_secs(15 * 60 + 5));
            assert_eq!(
                dev.recorder.count(|s| matches!(s, Seen::Disconnected(..))),
                0
            );
            dev.hub.shutdown().await;
            em.hub.shutdown().await;
        });
    }

    /// Unpairing the energy manager withdraws a request made at run time at once.
    #[test]
    fn unpairing_the_energy_manager_withdraws_a_run_time_request() {
        paused_runtime().block_on(async {
            let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
            let em_id = identity("em");
            let dev = plain_device(&net, &mdns, 2, identity("device")).await;
            dev.hub
                .request_pairing(request_to(&em_id, secret()))
                .unwrap();
            assert_eq!(mdns.pairing_instances().len(), 1);
            dev.hub.unpair(em_id.ski()).unwrap();
            assert!(!dev.hub.pairing_request_announced());
            assert!(mdns.pairing_instances().is_empty());
            tokio::time::sleep(Duration::from_secs(60 * 60)).await;
            assert_eq!(settled_reports(&dev), 0);
            dev.hub.shutdown().await;
        });
    }

    /// Bad requests are typed errors that change nothing: without a discovery, for the hub's
    /// own SKI; a request made earlier stays on the air.
    #[test]
    fn a_bad_run_time_request_is_a_typed_error_and_changes_nothing() {
        paused_runtime().block_on(async {
            let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
            let recorder = Recorder::new();
            let lonely = start(lan_config(&net, 3, identity("lonely"), &recorder)).await;
            let em_id = identity("em");
            assert!(matches!(
                lonely.request_pairing(request_to(&em_id, secret())),
                Err(ship_hub::hub::HubError::Discovery(_))
            ));
            let dev_id = identity("device");
            let dev_key = dev_id.clone();
            let dev = plain_device(&net, &mdns, 2, dev_id).await;
            dev.hub
                .request_pairing(request_to(&em_id, secret()))
                .unwrap();
            let own = request_to(&dev_key, secret());
            assert!(matches!(
                dev.hub.request_pairing(own),
                Err(ship_hub::hub::HubError::OwnSki(_))
            ));
            assert!(dev.hub.pairing_request_announced());
            assert_eq!(mdns.pairing_instances().len(), 1);
            lonely.shutdown().await;
            dev.hub.shutdown().await;
        });
    }

    /// A request configured as settled (it settled in an earlier run) announces nothing and
    /// does not pair the energy manager again: an unpair made since sticks across the restart.
    /// (Before the fix the hub paired the energy manager again at every start.)
    #[test]
    fn a_settled_request_does_not_pair_the_energy_manager_again_at_start() {
        paused_runtime().block_on(async {
            let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
            let em_id = identity("em");
            let dev_id = identity("device");
            let ski = dev_id.ski();
            let recorder = Recorder::new();
            let trust = Arc::new(MemoryTrustStore::default());
            let mut config = lan_config(&net, 2, dev_id, &recorder);
            config.discovery = Some(Arc::new(mdns.attach(ski, vec![lan_addr(2).ip()])));
            config.trust_store = trust.clone();
            let mut request = request_to(&em_id, secret());
            request.settled = true;
            config.pairing_service.request = Some(request);
            let hub = start(config).await;
            assert!(!hub.pairing_request_announced());
            assert!(mdns.pairing_instances().is_empty());
            assert!(
                trust.get(&em_id.ski()).unwrap().is_none(),
                "the unpaired energy manager was paired again"
            );
            hub.shutdown().await;
        });
    }

    /// The replacement rules: while the unit paired through the service is connected, or was
    /// within 15 minutes, another device's request is refused (busy); once the unit has been
    /// unreachable for 15 minutes the waiting request is processed, and the new device
    /// replaces (unpairs) the old one when it connects.
    #[test]
    fn a_reachable_unit_is_not_replaced_and_an_unreachable_one_is_after_15_minutes() {
        paused_runtime().block_on(async {
            let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
            let (em_id, old_id, new_id) = (identity("em"), identity("old"), identity("new"));
            let em_key = em_id.clone();
            let em = energy_manager(&net, &mdns, em_id).await;
            let old = device(&net, &mdns, 2, old_id, &em_key, secret()).await;
            assert!(
                em.recorder
                    .wait_for(WAIT, |s| *s == Seen::Connected(old.ski))
                    .await
            );
            let new = device(&net, &mdns, 3, new_id, &em_key, secret()).await;
            assert!(
                em.recorder
                    .wait_for(WAIT, |s| matches!(refused(s), Some(Refusal::Busy { .. })))
                    .await,
                "{:?}",
                em.recorder.all()
            );
            // The old unit goes away; 14 minutes later the request is still not processed.
            old.hub.shutdown().await;
            assert!(
                em.recorder
                    .wait_for(
                        WAIT,
                        |s| matches!(s, Seen::Disconnected(ski, _) if *ski == old.ski)
                    )
                    .await
            );
            let gone = tokio::time::Instant::now();
            tokio::time::sleep(Duration::from_secs(14 * 60)).await;
            assert_eq!(em.recorder.count(|s| paired_by_service(s, new.ski)), 0);
            assert!(
                em.recorder
                    .wait_for(Duration::from_secs(10 * 60), |s| paired_by_service(
                        s, new.ski
                    ))
                    .await,
                "{:?}",
                em.recorder.all()
            );
            assert!(gone.elapsed() >= Duration::from_secs(15 * 60));
            assert!(em.recorder.all().iter().any(|s| *s
                == Seen::PairingService(PairingServiceEvent::PairedByService {
                    ski: new.ski,
                    ship_id: ShipId::new("test-node-3").unwrap(),
                    displaced: Some(old.ski),
                })));
            em.hub.pairings_saved().await.unwrap();
            assert!(
                em.trust.get(&old.ski).unwrap().is_none(),
                "the old unit is unpaired"
            );
            assert!(
                em.recorder
                    .wait_for(WAIT, |s| *s == Seen::Connected(new.ski))
                    .await
            );
            new.hub.shutdown().await;
            em.hub.shutdown().await;
        });
    }
}
