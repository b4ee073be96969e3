//! Random fault schedules against two or three hubs on the simulated LAN (`MemoryLan`) under
//! tokio's paused clock: the real hub code over in-memory pipes, with partitions (black holes),
//! connection latency, restarts, crashes, local disconnects and crossing dials, all drawn from
//! one seed, so every run of a seed is the same run.
//!
//! After the last fault (and a final heal), the invariants must hold:
//! * every pair of hubs is connected again within `RECONNECT_BOUND` of virtual time (keepalive
//!   detection 60 s + the last backoff tier 20 s + 5 s for handshake latency and the
//!   double-connection grace);
//! * at most one connection per SKI pair, and both sides agree: `Hub::connections` shows one
//!   Completed connection on each side, in opposite directions, still after the grace period;
//! * shutdown leaks nothing: `tasks_aborted == 0` and `connections_closed_in_time`.
//!
//! 2,000 schedules are spread over four test functions. A failing schedule panics with its seed
//! and steps; `FAULT_SEED=<seed> cargo test --test faults_schedules` replays just that seed.

use ship_hub::hub::PairedPeer;
use ship_test_support::common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{Recorder, lan_addr, lan_config, paused_runtime, start};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ship_hub::hub::{BackoffTier, BackoffTiers, Direction, Hub, MemoryLan, MemoryTrustStore};
use ship_hub::identity::Identity;
use ship_hub::protocol::ConnectionState;

/// Keepalive detection (50 s + 10 s) + last backoff tier (20 s) + 5 s handshake and grace.
const RECONNECT_BOUND: Duration = Duration::from_secs(85);

/// Fixed P-256 keys (PKCS#8), so the hosts' SKIs, and with them every double-connection
/// decision, are the same in every run of a seed.
const KEYS: [&str; 3] = [
    "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgknNg1HwlD+Kgxyk/
iJrC4BvnGXtwTDEdT/bbZ9/Ig2qhRANCAAQ5/Ihxt+1TQOl3SuRJRGXeYyX+F9jW
jito1ZW/rhBAHrkCa5W29a+GqU79QFeqBd1BPIgIKP6JhvJCSekxPRI0
-----END PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgNUGTmY19Q7y5+k7f
HddW1KbbvO0jR8h5WZENzrJx5Q+hRANCAATAS5/5NGy/A87riraIZoRwUHtIeTOq
Q6r/ipp6l8U7MLnph/tju/ytLRUJ8+8v+wtz1aaeDK5KggxFM4jblpU9
-----END PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgngF3vYl0fESsZmCU
NURZjOhej09yFKepuAd6gGxAwjKhRANCAART6ZOLQKdrHeNPQCQpRnZ6ZVupPt/R
fp/ED4pTvHeojhhAd4WrTQTJCajY7bvctKwkhAJd55RYJxIu32l4vyfq
-----END PRIVATE KEY-----",
];

/// Identities reused by every schedule (each schedule has its own LAN and trust stores). The
/// seed decides which host gets which identity.
fn identities() -> &'static [Identity; 3] {
    static POOL: OnceLock<[Identity; 3]> = OnceLock::new();
    POOL.get_or_init(|| KEYS.map(fixed_identity))
}

fn fixed_identity(pem: &str) -> Identity {
    let key = rcgen::KeyPair::from_pem(pem).unwrap();
    let ski = ship_hub::Ski::of_public_key(key.public_key_raw());
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(ski.as_bytes().to_vec());
    let cert = params.self_signed(&key).unwrap();
    Identity::from_der(cert.der().to_vec(), key.serialize_der()).unwrap()
}

/// One fault, after a wait.
#[derive(Debug, Clone)]
enum Fault {
    /// Black-holes every connection between two hosts and refuses new ones.
    Partition(usize, usize),
    /// Removes every partition (black-holed connections stay dead, like TCP).
    Heal,
    /// Graceful shutdown, then a start with the same identity and trust store.
    Restart(usize),
    /// Power loss (`lan.crash`, hub dropped with `shutdown`), back after `down`.
    Crash(usize, Duration),
    /// The application closes one connection locally (the peer stays paired: redial).
    Disconnect(usize, usize),
}

#[derive(Debug, Clone)]
struct Schedule {
    hosts: usize,
    latency: Option<Duration>,
    crossing_tier: bool,
    steps: Vec<(Duration, Fault)>,
}

fn draw_schedule(seed: u64) -> Schedule {
    let mut rng = StdRng::seed_from_u64(seed);
    let hosts = if rng.random_bool(0.5) { 2 } else { 3 };
    let latency = rng
        .random_bool(0.7)
        .then(|| Duration::from_millis(rng.random_range(1..=200)));
    let crossing_tier = rng.random_bool(0.5);
    let pair = |rng: &mut StdRng| {
        let a = rng.random_range(0..hosts);
        let b = (a + rng.random_range(1..hosts)) % hosts;
        (a, b)
    };
    let steps = (0..rng.random_range(1..=6))
        .map(|_| {
            let wait = if rng.random_bool(0.2) {
                Duration::ZERO
            } else {
                Duration::from_millis(rng.random_range(0..40_000))
            };
            let fault = match rng.random_range(0..10) {
                0..=2 => {
                    let (a, b) = pair(&mut rng);
                    Fault::Partition(a, b)
                }
                3 => Fault::Heal,
                4 | 5 => Fault::Restart(rng.random_range(0..hosts)),
                6 | 7 => Fault::Crash(
                    rng.random_range(0..hosts),
                    Duration::from_millis(rng.random_range(0..30_000)),
                ),
                _ => {
                    let (a, b) = pair(&mut rng);
                    Fault::Disconnect(a, b)
                }
            };
            (wait, fault)
        })
        .collect();
    Schedule {
        hosts,
        latency,
        crossing_tier,
        steps,
    }
}

fn ip(host: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, host as u8 + 1))
}

/// One host: its identity, its trust store (kept across restarts) and its running hub.
struct Node {
    identity: Identity,
    trust: Arc<MemoryTrustStore>,
    hub: Hub,
    lives: u64,
}

struct World {
    lan: MemoryLan,
    nodes: Vec<Node>,
    crossing_tier: bool,
    seed: u64,
}

impl World {
    async fn boot(
        &self,
        host: usize,
        identity: Identity,
        trust: Arc<MemoryTrustStore>,
        life: u64,
    ) -> Hub {
        let recorder = Recorder::new();
        let mut config = lan_config(&self.lan, host as u8 + 1, identity, &recorder);
        config.trust_store = trust;
        config.rng_seed = Some(
            self.seed
                .wrapping_mul(31)
                .wrapping_add(host as u64 * 7 + life),
        );
        if self.crossing_tier {
            let tier = |lo, hi| {
                BackoffTier::new(Duration::from_secs(lo), Duration::from_secs(hi)).unwrap()
            };
            config.timers.reconnect =
                BackoffTiers::new(vec![tier(0, 0), tier(3, 10), tier(10, 20)]).unwrap();
        }
        start(config).await
    }

    async fn restart(&mut self, host: usize, down: Option<Duration>) {
        let old = self.nodes[host].hub.clone();
        if down.is_some() {
            self.lan.crash(ip(host));
        }
        old.shutdown().await;
        drop(old);
        if let Some(down) = down {
            tokio::time::sleep(down).await;
        }
        let node = &self.nodes[host];
        let (identity, trust, life) = (node.identity.clone(), node.trust.clone(), node.lives + 1);
        let hub = self.boot(host, identity, trust, life).await;
        // Static addresses are configuration, not stored pairings: a restarted application
        // gives them again (as ship-gateway does with --peer). Without them a peer that was
        // never connected (no last address) and has no mDNS could not be dialled.
        for (other, node) in self.nodes.iter().enumerate() {
            if other != host {
                hub.add_address(node.identity.ski(), lan_addr(other as u8 + 1))
                    .unwrap();
            }
        }
        let node = &mut self.nodes[host];
        node.hub = hub;
        node.lives = life;
    }

    /// True when every pair has exactly one live, Completed, not-closing connection on each
    /// side, and the two sides hold the same connection (opposite directions).
    fn settled(&self) -> Result<(), String> {
        for (i, a) in self.nodes.iter().enumerate() {
            for (j, b) in self.nodes.iter().enumerate() {
                if i >= j {
                    continue;
                }
                let on_a = a.hub.connections(b.identity.ski());
                let on_b = b.hub.connections(a.identity.ski());
                let one = |links: &[ship_hub::hub::ConnectionInfo]| {
                    links.len() == 1
                        && links[0].state == ConnectionState::Completed
                        && !links[0].closing
                };
                if !one(&on_a) || !one(&on_b) {
                    return Err(format!("host {i} holds {on_a:?}; host {j} holds {on_b:?}"));
                }
                let opposite = matches!(
                    (on_a[0].direction, on_b[0].direction),
                    (Direction::Incoming, Direction::Outgoing)
                        | (Direction::Outgoing, Direction::Incoming)
                );
                if !opposite {
                    return Err(format!(
                        "host {i} and {j} hold different connections: {on_a:?} / {on_b:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Runs one schedule; returns the virtual time from the last fault until every pair was
/// connected again, and the double-connection replacements the final hubs counted.
async fn run_schedule(seed: u64, schedule: Schedule) -> (Duration, u64) {
    let lan = match schedule.latency {
        Some(max) => MemoryLan::with_latency(seed, max),
        None => MemoryLan::new(),
    };
    let mut order: Vec<usize> = (0..3).collect();
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED);
    for i in (1..3).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let mut world = World {
        lan,
        nodes: Vec::new(),
        crossing_tier: schedule.crossing_tier,
        seed,
    };
    for (host, &slot) in order.iter().enumerate().take(schedule.hosts) {
        let identity = identities()[slot].clone();
        let trust = Arc::new(MemoryTrustStore::default());
        let hub = world.boot(host, identity.clone(), trust.clone(), 0).await;
        world.nodes.push(Node {
            identity,
            trust,
            hub,
            lives: 0,
        });
    }
    // Everyone pairs with everyone at the same instant: crossing dials.
    for a in 0..schedule.hosts {
        for b in 0..schedule.hosts {
            if a != b {
                let ski = world.nodes[b].identity.ski();
                world.nodes[a]
                    .hub
                    .pair(PairedPeer::new(ski).with_address(lan_addr(b as u8 + 1)))
                    .unwrap();
            }
        }
    }

    for (wait, fault) in &schedule.steps {
        tokio::time::sleep(*wait).await;
        match *fault {
            Fault::Partition(a, b) => world.lan.partition(ip(a), ip(b)),
            Fault::Heal => world.lan.heal(),
            Fault::Restart(h) => world.restart(h, None).await,
            Fault::Crash(h, down) => world.restart(h, Some(down)).await,
            Fault::Disconnect(a, b) => {
                let ski = world.nodes[b].identity.ski();
                let _ = world.nodes[a].hub.disconnect(ski);
            }
        }
    }
    world.lan.heal();
    let last_fault = tokio::time::Instant::now();

    // A black-holed connection still looks Completed until keepalive detects it (at most
    // 60 s after its partition began), so "settled" counts only if it holds continuously from
    // some instant to the end of the bound plus the grace period: the pairs reconnected at
    // that instant, which must lie within the bound.
    let end = last_fault + RECONNECT_BOUND + Duration::from_secs(5);
    let mut settled_since: Option<tokio::time::Instant> = None;
    let mut last_state = String::new();
    while tokio::time::Instant::now() <= end {
        match world.settled() {
            Ok(()) => {
                settled_since.get_or_insert_with(tokio::time::Instant::now);
            }
            Err(state) => {
                settled_since = None;
                last_state = state;
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let Some(since) = settled_since else {
        panic!("not reconnected and stable {RECONNECT_BOUND:?} after the last fault: {last_state}");
    };
    let reconnected = since - last_fault;
    assert!(
        reconnected <= RECONNECT_BOUND,
        "reconnected only {reconnected:?} after the last fault"
    );

    let replacements = world
        .nodes
        .iter()
        .map(|n| n.hub.metrics().double_connection_replacements)
        .sum();
    for (host, node) in world.nodes.iter().enumerate() {
        let report = node.hub.shutdown().await;
        assert_eq!(report.tasks_aborted, 0, "host {host}: {report:?}");
        assert!(report.connections_closed_in_time, "host {host}: {report:?}");
    }
    (reconnected, replacements)
}

/// The seeds to run: `FAULT_SEED` replays one, otherwise `range`.
fn seeds(range: std::ops::Range<u64>) -> Vec<u64> {
    match std::env::var("FAULT_SEED") {
        Ok(seed) => vec![seed.parse().expect("FAULT_SEED is a number")],
        Err(_) => range.collect(),
    }
}

fn run_seeds(range: std::ops::Range<u64>) {
    identities();
    let (mut slowest, mut replacements, mut runs) = (Duration::ZERO, 0, 0);
    for seed in seeds(range.clone()) {
        let schedule = draw_schedule(seed);
        let shown = schedule.clone();
        let outcome =
            std::panic::catch_unwind(|| paused_runtime().block_on(run_schedule(seed, schedule)));
        if let Ok((reconnected, replaced)) = outcome {
            slowest = slowest.max(reconnected);
            replacements += replaced;
            runs += 1;
            continue;
        }
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!(
                "fault schedule seed {seed} failed: {message}\nschedule: {shown:?}\n\
                 replay: FAULT_SEED={seed} cargo test --test faults_schedules"
            );
        }
    }
    println!(
        "FAULTS seeds {range:?}: {runs} schedules passed; slowest reconnection after the last \
         fault {slowest:?} (virtual); {replacements} double-connection replacements"
    );
}

#[test]
fn fault_schedules_seeds_0_to_499() {
    run_seeds(0..500);
}

#[test]
fn fault_schedules_seeds_500_to_999() {
    run_seeds(500..1000);
}

#[test]
fn fault_schedules_seeds_1000_to_1499() {
    run_seeds(1000..1500);
}

#[test]
fn fault_schedules_seeds_1500_to_1999() {
    run_seeds(1500..2000);
}
