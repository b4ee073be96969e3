//! Shared helpers of the hub tests: a recording [`Callbacks`] implementation and node builders.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ship_hub::hub::{
    Callbacks, EndCause, Hub, HubConfig, MemoryLan, PairingDecision, PairingRequest, StateDetail,
};
use ship_hub::identity::{CertificateSubject, Identity};
use ship_hub::protocol::ConnectionState;
use ship_hub::{ShipId, Ski};
use tokio::sync::Notify;

/// Tests that create mDNS daemons share their test binary's network namespace, so one multicast
/// domain. A test that floods it (thousands of announcements) takes this lock for writing and
/// runs alone; the others take it for reading and run side by side. Otherwise a goodbye packet
/// dropped by a full socket buffer leaves another test's peer visible until its TTL expires.
pub static MULTICAST: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// One thing the application was told.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    State(Ski, ConnectionState),
    Connected(Ski),
    Disconnected(Ski, String),
    PairingRequested(Ski),
    Data(Ski, Vec<u8>),
    ShipId(Ski, ShipId),
    /// The visible services, by SKI.
    Visible(Vec<Ski>),
    /// A SHIP Pairing Service event.
    PairingService(ship_hub::hub::PairingServiceEvent),
}

/// Runs inside `Recorder::pairing_requested`.
pub type OnPairingRequested = Box<dyn Fn(&PairingRequest) + Send + Sync>;

/// Records every callback, with the (virtual) time it arrived.
#[derive(Default)]
pub struct Recorder {
    pub seen: Mutex<Vec<(tokio::time::Instant, Seen)>>,
    pub changed: Notify,
    /// What `pairing_requested` answers when `decision` is not set: `Ask` if true, else
    /// `Refuse`.
    pub let_wait: AtomicBool,
    /// What `pairing_requested` answers, if set.
    pub decision: Mutex<Option<PairingDecision>>,
    /// Every pairing request, as the callback got it.
    pub requests: Mutex<Vec<PairingRequest>>,
    /// Runs inside `pairing_requested` (to test re-entrancy).
    pub on_pairing_requested: OnceLock<OnPairingRequested>,
    /// Runs inside `connected` (to test re-entrancy).
    pub on_connected: OnceLock<Box<dyn Fn(Ski) + Send + Sync>>,
    /// Every state change with its detail, in order.
    pub details: Mutex<Vec<(Ski, ConnectionState, StateDetail)>>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Recorder::default())
    }

    fn push(&self, seen: Seen) {
        self.seen
            .lock()
            .unwrap()
            .push((tokio::time::Instant::now(), seen));
        self.changed.notify_waiters();
    }

    pub fn all(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// The details of every change of `ski` into `state`.
    pub fn details_of(&self, ski: Ski, state: ConnectionState) -> Vec<StateDetail> {
        self.details
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, st, _)| *s == ski && *st == state)
            .map(|(_, _, d)| d.clone())
            .collect()
    }

    pub fn timed(&self) -> Vec<(tokio::time::Instant, Seen)> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self, pred: impl Fn(&Seen) -> bool) -> usize {
        self.all().iter().filter(|s| pred(s)).count()
    }

    /// Waits until `pred` holds for some recorded item, at most `limit`.
    pub async fn wait_for(&self, limit: Duration, pred: impl Fn(&Seen) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.changed.notified();
            if self.all().iter().any(&pred) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.all().iter().any(&pred);
            }
        }
    }
}

impl Callbacks for Recorder {
    fn state_changed(&self, ski: Ski, state: ConnectionState, detail: &StateDetail) {
        self.details
            .lock()
            .unwrap()
            .push((ski, state, detail.clone()));
        self.push(Seen::State(ski, state));
    }
    fn connected(&self, ski: Ski, _ship_id: Option<&ShipId>) {
        self.push(Seen::Connected(ski));
        if let Some(f) = self.on_connected.get() {
            f(ski);
        }
    }
    fn disconnected(&self, ski: Ski, reason: &EndCause) {
        self.push(Seen::Disconnected(ski, reason.to_string()));
    }
    fn pairing_requested(&self, request: &PairingRequest) -> PairingDecision {
        self.requests.lock().unwrap().push(request.clone());
        self.push(Seen::PairingRequested(request.ski));
        if let Some(f) = self.on_pairing_requested.get() {
            f(request);
        }
        match *self.decision.lock().unwrap() {
            Some(decision) => decision,
            None if self.let_wait.load(Ordering::SeqCst) => PairingDecision::Ask,
            None => PairingDecision::Refuse,
        }
    }
    fn data_received(&self, ski: Ski, payload: &[u8]) {
        self.push(Seen::Data(ski, payload.to_vec()));
    }
    fn ship_id_learned(&self, ski: Ski, ship_id: &ShipId) {
        self.push(Seen::ShipId(ski, ship_id.clone()));
    }
    fn visible_services_changed(&self, services: &[ship_hub::discovery::VisibleService]) {
        self.push(Seen::Visible(services.iter().map(|s| s.ski).collect()));
    }
    fn pairing_service(&self, event: &ship_hub::hub::PairingServiceEvent) {
        self.push(Seen::PairingService(event.clone()));
    }
}

/// A fresh identity (P-256 key generation is cheap).
pub fn identity(name: &str) -> Identity {
    Identity::generate(&CertificateSubject {
        common_name: name.into(),
        organization: "ship-hub tests".into(),
        country: "DE".into(),
    })
    .expect("identity")
}

/// Two identities ordered by SKI: (smaller, bigger).
pub fn ordered_identities() -> (Identity, Identity) {
    let a = identity("a");
    let b = identity("b");
    if a.ski() < b.ski() { (a, b) } else { (b, a) }
}

/// A config for a hub on the in-memory LAN at 10.0.0.`host`:4711.
pub fn lan_config(
    lan: &MemoryLan,
    host: u8,
    identity: Identity,
    recorder: &Arc<Recorder>,
) -> HubConfig {
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, host));
    let ship_id = ShipId::new(format!("test-node-{host}")).unwrap();
    let mut config = HubConfig::new(identity, ship_id);
    config.bind = SocketAddr::new(ip, 4711);
    config.network = Arc::new(lan.host(ip));
    config.callbacks = recorder.clone();
    config.rng_seed = Some(u64::from(host));
    config
}

pub fn lan_addr(host: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, host)), 4711)
}

/// A config for a hub on 127.0.0.1 with an OS-chosen port.
pub fn loopback_config(identity: Identity, name: &str, recorder: &Arc<Recorder>) -> HubConfig {
    let mut config = HubConfig::new(identity, ShipId::new(name).unwrap());
    config.bind = SocketAddr::from(([127, 0, 0, 1], 0));
    config.callbacks = recorder.clone();
    config
}

/// Starts a hub, panicking with the error.
pub async fn start(config: HubConfig) -> Hub {
    Hub::start(config).await.expect("hub starts")
}

/// Fails (never skips) unless the only interfaces are loopback and veths made for the tests
/// (`shipt*`): a test that creates an mDNS daemon must run in a private network namespace.
pub fn assert_private_namespace() {
    let dev = std::fs::read_to_string("/proc/self/net/dev").expect("read /proc/self/net/dev");
    let foreign: Vec<String> = dev
        .lines()
        .skip(2)
        .filter_map(|line| line.split(':').next())
        .map(|name| name.trim().to_owned())
        .filter(|name| name != "lo" && !name.starts_with("shipt"))
        .collect();
    assert!(
        foreign.is_empty(),
        "refusing to start an mDNS daemon: interfaces {foreign:?} exist, so this is not a \
         private network namespace. Run the suite with `bash .ci/test`, or: unshare -n sh -c \
         'tests/netns-setup.sh && cargo test -- --include-ignored'"
    );
}

/// A single-threaded runtime on tokio's paused clock: every timer runs in virtual time.
pub fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
}

/// Size of one flood message: just under the default 100 KiB message limit, framing included.
pub const FLOOD_PAYLOAD_SIZE: usize = 100 * 1024 - 256;

/// Flood message number `seq`: `{"seq":N,"pad":"…"}`, exactly [`FLOOD_PAYLOAD_SIZE`] bytes, its
/// padding a letter that changes with `seq`, so the receiver can check order and completeness.
pub fn flood_payload(seq: u64) -> Vec<u8> {
    let mut bytes = format!(r#"{{"seq":{seq},"pad":""#).into_bytes();
    let pad = FLOOD_PAYLOAD_SIZE - bytes.len() - 2;
    bytes.extend(std::iter::repeat_n(b'a' + (seq % 26) as u8, pad));
    bytes.extend_from_slice(br#""}"#);
    bytes
}

/// The number of a flood message that is exactly [`flood_payload`]`(seq)`, else `None`.
pub fn flood_seq(bytes: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(bytes.get(..40)?).ok()?;
    let seq = text
        .strip_prefix(r#"{"seq":"#)?
        .split(',')
        .next()?
        .parse()
        .ok()?;
    (bytes == flood_payload(seq).as_slice()).then_some(seq)
}

/// Sends flood messages 0, 1, 2, … from `hub` to `target` as fast as `send_data` takes them
/// (waiting 2 ms on backpressure) until `stop`; returns how many were accepted.
pub fn spawn_flood(hub: Hub, target: Ski, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let mut seq = 0u64;
        let mut next = flood_payload(0);
        while !stop.load(Ordering::SeqCst) {
            match hub.send_data(target, &next) {
                Ok(()) => {
                    seq += 1;
                    next = flood_payload(seq);
                }
                Err(ship_hub::hub::HubError::Backpressure(_)) => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Err(error) => panic!("sending: {error}"),
            }
        }
        seq
    })
}
