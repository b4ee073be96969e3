//! The Hub's configuration: identity, addresses, limits and every timer, with the SHIP
//! specification's values as defaults.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::ShipId;
use crate::discovery::{DeviceCategories, Discovery, InstanceName, ServicePath, TxtValue};
use crate::hub::backoff::BackoffTiers;
use crate::hub::callbacks::{Callbacks, NoCallbacks};
use crate::hub::net::{Network, TcpNetwork};
use crate::hub::pairing_config::PairingServiceConfig;
use crate::hub::trust::{MemoryTrustStore, TrustStore};
use crate::identity::Identity;
use crate::protocol::{Pin, PinRequirement, ProtocolConfig};
use crate::transport::{TlsOptions, WsOptions};

/// The TCP port ship-hub listens on unless told otherwise (the port ship-go's examples use).
pub const DEFAULT_PORT: u16 = 4711;

/// Limits on what the Hub admits (architecture.md: "a slow or hostile peer costs one bounded
/// task, never the hub").
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// Live connections (any state after the WebSocket upgrade), incoming and outgoing together.
    /// An incoming connection beyond it gets HTTP 503 at the upgrade (§10 / docs/ship.md
    /// §3); an outgoing dial beyond it fails with a typed error. Default 10.
    pub max_connections: usize,
    /// Live incoming connections of peers that are not paired (pairing requests, unknown SKIs).
    /// They count against `max_connections` too, and beyond this many they get HTTP 503, so
    /// strangers can never take the slots paired peers need (with the defaults, at least 8 of
    /// the 10 stay for paired peers). A connection holds its slot until its peer is paired (then
    /// it is given back at once, the connection goes on) or the connection ends. Default 2.
    pub max_unpaired_connections: usize,
    /// Incoming strangers' connections from one source address (IP) at once, counted like
    /// `max_unpaired_connections` (from the WebSocket upgrade until the connection ends). Beyond
    /// it the upgrade gets HTTP 503, so one host cannot hold every pairing slot. Default 1.
    pub max_unpaired_per_address: usize,
    /// How long an incoming connection of a peer that is not paired may take to send its CMI
    /// after the WebSocket upgrade: the protocol's CMI timer (`ProtocolConfig::cmi_timeout`)
    /// for such connections is the shorter of the two. SHIP permits 10–30 s (§13.4.3).
    /// Default 10 s.
    pub unpaired_cmi_timeout: Duration,
    /// Backstop deadline, from TCP accept to SHIP Completed, for an incoming connection of a
    /// peer that was not paired when it arrived (instead of `handshake_deadline`). A pairing
    /// request waits in hello `pending` for the user's decision; the hello timers end it after
    /// `T_hello_init` (120 s) unless the stranger keeps asking for prolongation, which this cuts
    /// off. It also applies if the user approves late: the handshake must still finish within
    /// it (the peer, now paired, reconnects otherwise). Default 4 min (`T_hello_init` plus one
    /// `T_hello_inc`).
    pub unpaired_handshake_deadline: Duration,
    /// Incoming connections in their TLS + WebSocket handshake at once, including
    /// `reserved_handshakes`. A TCP connection beyond it is closed at once, before any TLS
    /// work. Default 32.
    pub max_handshakes_in_progress: usize,
    /// Of `max_handshakes_in_progress`, this many are kept for connections from addresses of
    /// paired peers, so that strangers that fill every other slot cannot lock paired peers
    /// out. These addresses are the ones a peer proved or was configured with: its stored last
    /// address, configured addresses, the source of its last completed connection (not mDNS
    /// sightings: anyone can announce any address). A paired peer connecting from elsewhere
    /// takes an ordinary slot. Default 8.
    pub reserved_handshakes: usize,
    /// Incoming connections in their TLS + WebSocket handshake at once from one source address
    /// (IP). A TCP connection beyond it is closed at once, before any TLS work. Default 8: one
    /// hostile host cannot take more than a third of the open slots, while a host that runs
    /// several SHIP nodes, or a conformance tester running its cases in parallel (six at once),
    /// still gets through.
    pub max_handshakes_per_address: usize,
    /// How long an incoming connection may take, from TCP accept, to deliver its complete TLS
    /// ClientHello (a few hundred bytes, sent at once by every TLS client). A connection that
    /// stays silent longer is closed, freeing its handshake slot long before
    /// `transport_handshake_timeout`. Default 2 s.
    pub client_hello_timeout: Duration,
    /// Deadline for TLS + WebSocket of one connection, incoming or outgoing (for an incoming
    /// one it includes `client_hello_timeout`). Default 10 s.
    pub transport_handshake_timeout: Duration,
    /// Backstop deadline from TCP accept/dial to SHIP Completed. The protocol's own timers
    /// (CMI 30 s, hello 120 s + prolongations) end most handshakes earlier; this bounds a peer
    /// that keeps prolonging forever. Default 10 min (`unpaired_handshake_deadline` for
    /// strangers).
    pub handshake_deadline: Duration,
    /// Outgoing data messages queued per connection before [`crate::hub::Hub::send_data`]
    /// reports back-pressure. Default 256.
    pub max_queued_data: usize,
    /// Candidate addresses one dial attempt has in TCP/TLS/WebSocket at once (the attempt
    /// races them; the first verified one wins and the others are cancelled): the sockets one
    /// peer's dial may hold. Anyone can announce a paired SKI at addresses that accept TCP and
    /// then stay silent; with 64 at once and [`Limits::dial_answer_timeout`], 100 such fakes
    /// are all tried within about 2.5 s. Default 64 (sockets of one peer's dial, a few KiB
    /// each).
    pub max_dials_in_flight: usize,
    /// How long a dial candidate may stay silent (no TCP connection, or not a byte in answer to
    /// our TLS ClientHello, which a SHIP server answers within milliseconds) before it is given
    /// up, and demoted, to make room for a candidate waiting for a place in the attempt. A
    /// candidate that nothing waits for gets the whole `transport_handshake_timeout`, so a
    /// slow peer alone is never cut short. Default 1 s.
    pub dial_answer_timeout: Duration,
    /// Addresses learnt from mDNS records kept per peer, current and withdrawn together. Each
    /// is a claim (anyone can announce any SKI): the hub tries every one, demotes those whose
    /// dial failed and evicts those first, then the stalest untried ones; the last successful
    /// and configured addresses are always kept besides. Bounds the memory fake announcements
    /// of a paired SKI can cost. Default 128.
    pub max_discovered_addresses: usize,
    /// Received data bytes of one peer that may wait inside the hub and in the application (a
    /// [`crate::hub::Delivery`] not yet dropped) before the hub stops reading that peer's
    /// socket, so TCP flow control slows the peer down (docs/architecture.md, "Backpressure").
    /// Each message counts 256 bytes on top of its payload. A peer with nothing queued may
    /// always send one more message, so the real bound is this or one message
    /// ([`crate::transport::WsOptions::max_message_size`]), whichever is larger. Default 1 MiB:
    /// ten messages of the default maximum size, far more than a SPINE exchange has in flight.
    pub max_inbound_bytes_per_peer: usize,
    /// The same for all peers together: a backstop when `max_connections` is raised. Beyond it,
    /// each peer may still have one message queued (so none is starved by the others). Default
    /// 16 MiB: room for the default 10 connections' full budgets, about 2 % of a 1 GB board.
    pub max_inbound_bytes_total: usize,
    /// How long a connection may be left unread because its peer's inbound budget is used up,
    /// counted from when a keepalive ping of ours went out unanswered (or from when reading
    /// stopped, if later), before it is closed with
    /// [`crate::hub::EndCause::Backpressure`]: the peer's pong (or its close) cannot be
    /// seen behind unread data, and an application that consumes nothing for this long cannot
    /// serve the peer. While the application makes progress the link reads again and the
    /// keepalive is not held against the peer for the time it was not read. Default 60 s (the
    /// keepalive's own dead-peer window with the default timers).
    pub max_inbound_stall: Duration,
    /// Events other than data that may wait in one [`crate::hub::HubEvents`] stream that is not
    /// read; beyond it they are dropped and the stream says how many
    /// ([`crate::hub::HubEvent::Lagged`]). Data events are bounded by the inbound budgets
    /// instead and never dropped. Default 4,096.
    pub max_queued_events: usize,
    /// Refusals by the admission caps above are reported to the application
    /// ([`crate::hub::Callbacks::admission_refused`]) at most once per source address per this
    /// interval (the report counts the refusals in between). Default 60 s.
    pub refusal_report_interval: Duration,
    /// At most this many refusal reports per `refusal_report_interval` in all, however many
    /// source addresses are refused (an attacker with many addresses costs this many reports,
    /// not one per address); the rest are only counted
    /// ([`crate::hub::MetricsSnapshot::refusals`]). Default 16.
    pub max_refusal_reports: usize,
    /// With a PIN requirement ([`HubConfig::pin_requirement`]): source addresses whose wrong
    /// PINs are remembered across keys, so that a key that is not paired starts where the
    /// last key from its address left off (the escalating penalty of
    /// [`ProtocolConfig::pin_penalty_short`] and `pin_penalty_long` applies per source
    /// address, not only per key). Beyond it the address remembered longest ago is forgotten;
    /// the limit on wrong PINs in all still holds. Default 1,024.
    pub max_pin_sources: usize,
    /// How long a source address's wrong PINs are remembered after its last one. Default 1 h.
    pub pin_source_memory: Duration,
    /// With a PIN requirement: wrong PINs that keys that are not paired may send in all, at
    /// once, before every such key's PIN input is held `busy`; one more is allowed per
    /// `wrong_pin_interval_in_all` (a token bucket). This bounds guessing from many addresses
    /// (with many keys) together. Paired keys are never held by it: a device that is paired
    /// (by a person, or by sending the PIN once) keeps only its own per-key penalty.
    /// Default 10.
    pub max_wrong_pins_in_all: u32,
    /// See `max_wrong_pins_in_all`. Default 30 s: at most two wrong PINs a minute, on average,
    /// from every unpaired key together.
    pub wrong_pin_interval_in_all: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 10,
            max_unpaired_connections: 2,
            max_unpaired_per_address: 1,
            unpaired_cmi_timeout: Duration::from_secs(10),
            unpaired_handshake_deadline: Duration::from_secs(240),
            max_handshakes_in_progress: 32,
            reserved_handshakes: 8,
            max_handshakes_per_address: 8,
            client_hello_timeout: Duration::from_secs(2),
            transport_handshake_timeout: Duration::from_secs(10),
            handshake_deadline: Duration::from_secs(600),
            max_queued_data: 256,
            max_dials_in_flight: 64,
            dial_answer_timeout: Duration::from_secs(1),
            max_discovered_addresses: 128,
            max_inbound_bytes_per_peer: 1024 * 1024,
            max_inbound_bytes_total: 16 * 1024 * 1024,
            max_inbound_stall: Duration::from_secs(60),
            max_queued_events: 4096,
            refusal_report_interval: Duration::from_secs(60),
            max_refusal_reports: 16,
            max_pin_sources: 1024,
            pin_source_memory: Duration::from_secs(3600),
            max_wrong_pins_in_all: 10,
            wrong_pin_interval_in_all: Duration::from_secs(30),
        }
    }
}

/// Hub-level timers (the protocol's own timers live in [`ProtocolConfig`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HubTimers {
    /// WebSocket ping interval on an established connection. Default 50 s (ship-go's value).
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is declared dead. A dead peer is
    /// therefore detected within `keepalive_interval + keepalive_timeout` (default 60 s, the
    /// value ship-go uses).
    pub keepalive_timeout: Duration,
    /// How long the node with the smaller SKI leaves a double connection to the bigger-SKI node
    /// before settling it itself (§12.2.3, docs/ship.md §7). Default 3 s.
    pub double_connection_grace: Duration,
    /// Reconnect delays for paired peers (§8).
    pub reconnect: BackoffTiers,
    /// Overall deadline of [`crate::hub::Hub::shutdown`]. Default 5 s.
    pub shutdown_deadline: Duration,
    /// A paired peer's `last_seen` is written to the trust store at most once per this interval
    /// (unless the same update changes the peer's SHIP ID or last address, which are written at
    /// once), so that a peer that reconnects often does not rewrite the store each time: an SD
    /// card must last years. Default 10 min. Zero writes every change of `last_seen` (in the
    /// store's precision: whole seconds for [`crate::hub::FileTrustStore`]).
    pub last_seen_write_interval: Duration,
    /// How long the trust writer collects pairing updates before it applies them in one batch
    /// (one [`crate::hub::TrustStore::update_existing`] call: for
    /// [`crate::hub::FileTrustStore`], one rewrite of the file however many peers changed).
    /// A burst of handshakes then costs one write per delay instead of one per handful of
    /// handshakes; shutdown applies what is pending at once. What is lost by a crash within the
    /// delay is only these hints (last address, SHIP ID, last seen), never a pairing. Default 1 s.
    pub trust_write_delay: Duration,
    /// Least time between two `visible_services_changed` callbacks: changes in between are
    /// coalesced into one call with the latest list (a burst of announcements costs one list
    /// per interval). Default 1 s.
    pub visible_services_interval: Duration,
    /// Delay between the starts of the first two candidate addresses of one dial attempt
    /// (happy-eyeballs style): the best candidate gets this long to win alone. After that the
    /// delay is this divided by the number of candidates in flight (250, 125, 83, … ms), since
    /// each one that stays silent makes waiting for the others less worthwhile; a failure
    /// starts the next candidate at once. Default 250 ms.
    pub dial_stagger: Duration,
}

impl Default for HubTimers {
    fn default() -> Self {
        HubTimers {
            keepalive_interval: Duration::from_secs(50),
            keepalive_timeout: Duration::from_secs(10),
            double_connection_grace: Duration::from_secs(3),
            reconnect: BackoffTiers::default(),
            shutdown_deadline: Duration::from_secs(5),
            last_seen_write_interval: Duration::from_secs(600),
            trust_write_delay: Duration::from_secs(1),
            visible_services_interval: Duration::from_secs(1),
            dial_stagger: Duration::from_millis(250),
        }
    }
}

/// What the hub announces about itself over mDNS (SHIP §7.3.2); the SHIP ID, SKI and `register`
/// come from the rest of the configuration.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct DeviceInfo {
    /// The instance name; `None` = a name unique on the LAN derived from the model and SKI.
    pub instance_name: Option<InstanceName>,
    /// The WebSocket path announced (TXT `path`). Default `/ship/`. The listener accepts any path.
    pub path: ServicePath,
    /// TXT `brand` (at most 32 bytes).
    pub brand: Option<TxtValue>,
    /// TXT `model` (at most 32 bytes).
    pub model: Option<TxtValue>,
    /// TXT `type` (at most 32 bytes).
    pub device_type: Option<TxtValue>,
    /// TXT `serial` (at most 32 bytes).
    pub serial: Option<TxtValue>,
    /// TXT `cat`: device categories.
    pub categories: DeviceCategories,
}

/// Everything a [`crate::hub::Hub`] is started with.
///
/// Build it with [`HubConfig::new`] and adjust the public fields; every field has the
/// specification's value (or a documented choice) as default.
#[non_exhaustive]
pub struct HubConfig {
    /// This node's certificate and key.
    pub identity: Identity,
    /// This node's SHIP ID (announced in mDNS and in `accessMethods`).
    pub ship_id: ShipId,
    /// Where to listen. Default `0.0.0.0:4711`; port 0 picks a free port.
    pub bind: SocketAddr,
    /// What is announced over mDNS.
    pub device: DeviceInfo,
    /// How the hub announces itself and finds peers; `None` = no discovery (peers are dialled
    /// at addresses given with [`crate::hub::Hub::pair`] or [`crate::hub::Hub::add_address`]).
    pub discovery: Option<Arc<dyn Discovery>>,
    /// Admission limits.
    pub limits: Limits,
    /// Hub timers.
    pub timers: HubTimers,
    /// The SHIP protocol's timers.
    pub protocol: ProtocolConfig,
    /// TLS choices.
    pub tls: TlsOptions,
    /// WebSocket choices (maximum message size).
    pub websocket: WsOptions,
    /// Accept every unknown peer without asking (SHIP's `register=true`). Off by default: the
    /// specification forbids it, because anyone on the LAN can then pair with the node. See
    /// `docs/pairing.md`. While it is on, every incoming peer is paired as its connection is
    /// admitted, so the strangers' caps (`Limits::max_unpaired_connections`,
    /// `Limits::max_unpaired_per_address`) do not apply to it; `Limits::max_connections` and
    /// the handshake caps still do. With a [`HubConfig::pin_requirement`], a new peer is
    /// trusted for the handshake at once but paired (stored) only once it sent the PIN: until
    /// then it is a stranger (the caps above apply, and the PIN limits per source address and
    /// in all), and nothing is stored for a key that never sent the PIN.
    pub auto_accept: bool,
    /// Where pairings are kept. Default: in memory only.
    pub trust_store: Arc<dyn TrustStore>,
    /// This node's PIN requirement (SHIP §13.4.4.3): whether peers must send a PIN before data
    /// exchange. Default none (what deployed devices use). See docs/pairing.md, "PIN
    /// verification"; the penalty for wrong PINs is in [`ProtocolConfig`].
    pub pin_requirement: PinRequirement,
    /// The PIN sent to a peer that requires one when no PIN is stored for its SKI
    /// ([`crate::hub::PairedPeer::pin`]). Default none: the application is asked
    /// ([`crate::hub::Callbacks::pin_requested`]).
    pub default_peer_pin: Option<Pin>,
    /// The application's callbacks. Default: none.
    pub callbacks: Arc<dyn Callbacks>,
    /// The byte streams: TCP by default, an in-memory network in tests.
    pub network: Arc<dyn Network>,
    /// Seed of the hub's random numbers (reconnect jitter). `None` seeds from the OS.
    pub rng_seed: Option<u64>,
    /// The SHIP Pairing Service roles (needs `discovery`). Default: off.
    pub pairing_service: PairingServiceConfig,
}

impl HubConfig {
    /// A configuration with every default, for this identity and SHIP ID.
    pub fn new(identity: Identity, ship_id: ShipId) -> Self {
        HubConfig {
            identity,
            ship_id,
            bind: SocketAddr::from((Ipv4Addr::UNSPECIFIED, DEFAULT_PORT)),
            device: DeviceInfo::default(),
            discovery: None,
            limits: Limits::default(),
            timers: HubTimers::default(),
            protocol: ProtocolConfig::default(),
            tls: TlsOptions::default(),
            websocket: WsOptions::default(),
            auto_accept: false,
            trust_store: Arc::new(MemoryTrustStore::default()),
            pin_requirement: PinRequirement::None,
            default_peer_pin: None,
            callbacks: Arc::new(NoCallbacks),
            network: Arc::new(TcpNetwork),
            rng_seed: None,
            pairing_service: PairingServiceConfig::default(),
        }
    }
}

impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConfig")
            .field("ski", &self.identity.ski())
            .field("ship_id", &self.ship_id)
            .field("bind", &self.bind)
            .field("device", &self.device)
            .field("discovery", &self.discovery.is_some())
            .field("limits", &self.limits)
            .field("timers", &self.timers)
            .field("auto_accept", &self.auto_accept)
            .field("pin_requirement", &self.pin_requirement)
            .field("default_peer_pin", &self.default_peer_pin)
            .finish_non_exhaustive()
    }
}
