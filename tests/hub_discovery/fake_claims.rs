//! Fake mDNS claims of a paired SKI (docs/robustness.md, rows 54a–54c): anyone on the LAN can
//! announce a paired device's SKI at addresses that accept TCP and then stay silent. Audit
//! finding: the registry kept 4 records per SKI and the hub 8 addresses per peer, each evicting
//! the stalest, and dialled 8 candidates at a time for 10 s each; ten fakes announced around the
//! real device pushed it out, and the hub made black-hole dials forever.
//!
//! On the in-memory LAN under the paused clock (times are virtual): the paired peer B (at
//! 10.0.0.200) knows no address of A, so only A's dial can connect them; its record and the
//! fakes' records are injected into A's discovery.

use super::*;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use ship_hub::hub::Hub;

/// Fake hosts that accept TCP and never send a byte, counting what A does to them.
#[derive(Default)]
struct Fakes {
    /// Connections accepted per fake host.
    accepted: Mutex<std::collections::HashMap<IpAddr, usize>>,
    /// Connections open right now, over all fakes, and the most at once.
    open: AtomicUsize,
    max_open: AtomicUsize,
}

impl Fakes {
    /// Starts a silent listener at each of `hosts` and announces it as a claim of `ski`.
    async fn announce(
        self: &Arc<Self>,
        net: &MemoryLan,
        mdns: &InMemoryLan,
        ski: Ski,
        hosts: impl IntoIterator<Item = u8>,
    ) {
        for host in hosts {
            let address = lan_addr(host);
            let mut listener = net.host(address.ip()).bind(address).await.unwrap();
            let fakes = self.clone();
            tokio::spawn(async move {
                while let Ok((mut io, _)) = listener.accept().await {
                    *fakes
                        .accepted
                        .lock()
                        .unwrap()
                        .entry(address.ip())
                        .or_default() += 1;
                    let open = fakes.open.fetch_add(1, Ordering::SeqCst) + 1;
                    fakes.max_open.fetch_max(open, Ordering::SeqCst);
                    let fakes = fakes.clone();
                    tokio::spawn(async move {
                        // Silent: read (and drop) until the dialler gives up.
                        use tokio::io::AsyncReadExt;
                        let mut sink = [0u8; 1024];
                        while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
                        fakes.open.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
            mdns.inject(claim(&format!("fake-{host}"), ski, address));
        }
    }

    fn accepted(&self) -> Vec<usize> {
        self.accepted.lock().unwrap().values().copied().collect()
    }

    fn max_open(&self) -> usize {
        self.max_open.load(Ordering::SeqCst)
    }
}

/// A (10.0.0.1, paired with B, with an in-memory discovery) and B (10.0.0.200, paired with A,
/// not announced yet), each with its recorder.
async fn pair_of_hubs(
    net: &MemoryLan,
    mdns: &InMemoryLan,
) -> (
    Hub,
    Arc<Recorder>,
    Ski,
    Ski,
    Arc<Recorder>,
    ship_hub::identity::Identity,
) {
    let (ida, idb) = (identity("a"), identity("b"));
    let (a_ski, b_ski) = (ida.ski(), idb.ski());
    let ra = Recorder::new();
    let mut ca = lan_config(net, 1, ida, &ra);
    ca.discovery = Some(Arc::new(mdns.attach(a_ski, vec![lan_addr(1).ip()])));
    let a = start(ca).await;
    a.pair(b_ski).unwrap();
    // A follows its discovery before anything is announced.
    tokio::time::sleep(Duration::from_millis(100)).await;
    (a, ra, a_ski, b_ski, Recorder::new(), idb)
}

/// B starts at 10.0.0.200, paired with A; it knows no address of A.
async fn start_b(
    net: &MemoryLan,
    idb: ship_hub::identity::Identity,
    rb: &Arc<Recorder>,
    a_ski: Ski,
) -> Hub {
    let b = start(lan_config(net, 200, idb, rb)).await;
    b.pair(a_ski).unwrap();
    b
}

/// The fakes (100) are announced right after the real peer, before A's first dial: the claims
/// that pushed the real one out. A dials the fresh real claim at once and connects.
#[test]
fn a_hundred_silent_fakes_announced_right_after_the_paired_peer_never_starve_it() {
    paused_runtime().block_on(async {
        let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
        let (a, ra, a_ski, b_ski, rb, idb) = pair_of_hubs(&net, &mdns).await;
        let b = start_b(&net, idb, &rb, a_ski).await;
        let fakes = Arc::new(Fakes::default());
        let announced = tokio::time::Instant::now();
        mdns.inject(claim("real", b_ski, lan_addr(200)));
        fakes.announce(&net, &mdns, b_ski, 20..120).await;
        assert!(
            ra.wait_for(Duration::from_secs(120), |s| *s == Seen::Connected(b_ski))
                .await,
            "never connected; A's visible record of B: {:?}",
            a.visible_services()
        );
        eprintln!(
            "connected {:?} (virtual) after the real announcement; 100 fakes announced after it; \
             fake connections {}",
            announced.elapsed(),
            fakes.accepted().iter().sum::<usize>()
        );
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// 100 fakes announced first: A's dial is busy with silent candidates when the real peer
/// announces itself. Its claim, the latest, is taken next (untried claims are taken from both
/// ends of the order they were learnt in), and a silent candidate makes room for it once it has
/// been silent for `dial_answer_timeout` (1 s): no fake makes it wait for a handshake timeout
/// (10 s). At most `max_dials_in_flight` (64) sockets are open at once, and every fake is
/// dialled at most once.
#[test]
fn the_paired_peer_announced_after_a_hundred_silent_fakes_is_dialled_within_the_answer_timeout() {
    paused_runtime().block_on(async {
        let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
        let (a, ra, a_ski, b_ski, rb, idb) = pair_of_hubs(&net, &mdns).await;
        let fakes = Arc::new(Fakes::default());
        fakes.announce(&net, &mdns, b_ski, 20..120).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(fakes.max_open() > 0, "A is not dialling the fakes");

        let b = start_b(&net, idb, &rb, a_ski).await;
        let announced = tokio::time::Instant::now();
        mdns.inject(claim("real", b_ski, lan_addr(200)));
        assert!(
            ra.wait_for(Duration::from_secs(120), |s| *s == Seen::Connected(b_ski))
                .await
        );
        let took = announced.elapsed();
        eprintln!(
            "connected {took:?} (virtual) after the real announcement, 100 fakes first; at most \
             {} fake sockets open at once",
            fakes.max_open()
        );
        // Behaviour, not speed: it waited at most for a silent candidate's answer timeout (1 s)
        // and a stagger step (250 ms), never for a fake's handshake timeout (10 s).
        assert!(took <= Duration::from_millis(1250), "took {took:?}");
        assert!(
            fakes.max_open() <= 64,
            "{} sockets at once",
            fakes.max_open()
        );
        assert!(
            fakes.accepted().iter().all(|n| *n <= 1),
            "a fake dialled twice"
        );
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// The real peer announces while it is down, among 100 silent fakes: A's first attempt tries
/// every claim, and every one fails (the real one refused, the fakes silent): all demoted. B then
/// comes up at its address without announcing again; A's next attempts still try every demoted
/// claim and connect. After a disconnect, A redials B's proven address first and no fake is
/// dialled again.
#[test]
fn failed_claims_are_demoted_and_still_tried_and_the_proven_address_goes_first() {
    paused_runtime().block_on(async {
        let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
        let (a, ra, a_ski, b_ski, rb, idb) = pair_of_hubs(&net, &mdns).await;
        mdns.inject(claim("real", b_ski, lan_addr(200)));
        let fakes = Arc::new(Fakes::default());
        fakes.announce(&net, &mdns, b_ski, 20..120).await;
        // The first attempt fails: every fake silent, B not there.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while fakes.accepted().len() < 100 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not every fake was tried"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            fakes.max_open() <= 64,
            "{} sockets at once",
            fakes.max_open()
        );

        let b = start_b(&net, idb, &rb, a_ski).await;
        let up = tokio::time::Instant::now();
        assert!(
            ra.wait_for(Duration::from_secs(120), |s| *s == Seen::Connected(b_ski))
                .await,
            "the real peer, demoted with the fakes, was never tried again"
        );
        eprintln!(
            "connected {:?} (virtual) after B came up; fake connections {}",
            up.elapsed(),
            fakes.accepted().iter().sum::<usize>()
        );
        let dialled = fakes.accepted().iter().sum::<usize>();

        // The proven address goes first: a redial reaches B before any fake is dialled again.
        a.disconnect(b_ski).unwrap();
        assert!(
            ra.wait_for(
                Duration::from_secs(60),
                |s| matches!(s, Seen::Disconnected(k, _) if *k == b_ski)
            )
            .await
        );
        let connected = ra.count(|s| *s == Seen::Connected(b_ski));
        assert!(
            ra.wait_for(Duration::from_secs(60), |_| ra
                .count(|s| *s == Seen::Connected(b_ski))
                > connected)
                .await,
            "not reconnected"
        );
        assert_eq!(
            fakes.accepted().iter().sum::<usize>(),
            dialled,
            "a fake was dialled before the proven address"
        );
        a.shutdown().await;
        b.shutdown().await;
    });
}

/// The real peer and 100 fakes claim B's SKI before A pairs it: A's discovery keeps only the
/// newest 4 records of a SKI, and before the fix the pairing fed only those to the supervisor
/// (the real one long pushed out). Pairing makes the SKI preferred, and the discovery reports
/// every record of it again (as mdns-sd does when browsing again): each reaches A's address
/// book, and A connects.
#[test]
fn a_peer_paired_while_a_hundred_fakes_claim_its_ski_is_still_found() {
    paused_runtime().block_on(async {
        let (net, mdns) = (MemoryLan::new(), InMemoryLan::new());
        let (ida, idb) = (identity("a"), identity("b"));
        let (a_ski, b_ski) = (ida.ski(), idb.ski());
        let (ra, rb) = (Recorder::new(), Recorder::new());
        let mut ca = lan_config(&net, 1, ida, &ra);
        ca.discovery = Some(Arc::new(mdns.attach(a_ski, vec![lan_addr(1).ip()])));
        let a = start(ca).await;
        let b = start_b(&net, idb, &rb, a_ski).await;
        mdns.inject(claim("real", b_ski, lan_addr(200)));
        let fakes = Arc::new(Fakes::default());
        fakes.announce(&net, &mdns, b_ski, 20..120).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let visible = a.visible_services();
        assert!(
            !visible[0].dial_order.contains(&lan_addr(200)),
            "the real record should have been pushed out of A's visible list: {:?}",
            visible[0].dial_order
        );

        let paired = tokio::time::Instant::now();
        a.pair(b_ski).unwrap();
        assert!(
            ra.wait_for(Duration::from_secs(120), |s| *s == Seen::Connected(b_ski))
                .await,
            "the real claim, pushed out of the registry before the pairing, was never dialled"
        );
        eprintln!(
            "connected {:?} (virtual) after pairing; fake connections {}",
            paired.elapsed(),
            fakes.accepted().iter().sum::<usize>()
        );
        a.shutdown().await;
        b.shutdown().await;
    });
}
