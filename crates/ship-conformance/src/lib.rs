//! `ship-conformance`: the SHIP test tool, played over real TLS + WebSocket against any SHIP
//! endpoint (the device under test, DUT). Each case of the catalogue
//! (`docs/conformance.md`, SHIP TestSpecification TC_SHIP_*) is a scripted, deliberately
//! misbehaving peer: hand-built CMI bytes, silence, wrong messages in each state,
//! whitespace-padded JSON, prolongation rounds, forged certificates, a second connection.
//!
//! [`run`] is the whole tool as a library function, so the binary (`src/main.rs`)
//! and the test suite use the same code. The tool reaches the DUT two ways:
//!
//! * [`ToolConfig::target`]: the tool dials the DUT (the DUT is the SHIP server). Every such
//!   case uses its own connection and its own identity and they run concurrently
//!   ([`ToolConfig::parallel`] at once, long cases first).
//! * [`ToolConfig::listener`]: the DUT dials the tool (the DUT is the SHIP client), presenting
//!   the [`identities::LISTENER`] identity. These cases run one after another.
//!
//! Each case reports [`Verdict::Pass`], [`Verdict::Fail`] with the observed evidence (bytes,
//! timings), [`Verdict::Deviation`] (a harmless departure from the letter of the case, with the
//! evidence), or [`Verdict::NotApplicable`] with the declaration that makes it so
//! ([`Declarations`]).
//!
//! The tool negotiates as a SHIP 1.1 device ([`ToolConfig::ship_version`]) and accepts every
//! version SHIP allows a DUT to announce; the report names the versions seen. A DUT that trusts
//! one remote SKI and takes one connection at a time is played with
//! [`ToolConfig::single_identity`] and [`ToolConfig::case_gap`].
//!
//! After the catalogue's cases the report carries one tool check of its own, [`TLS_SUITES`]:
//! which TLS cipher suites the DUT accepts (one handshake-only probe per suite); it fails a DUT
//! without SHIP §9's mandatory `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256`.

pub mod accept_anything;
mod cases;
pub mod catalog;
pub mod identities;
mod lenient;
mod peer;
pub mod report;
mod script;
mod spoof;
mod tls_suites;
mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use ship_hub::protocol::message::ProtocolVersion;
use ship_hub::transport::{ShipTls, TlsOptions, WsOptions, accept_websocket, dial};
use ship_hub::{ShipId, Ski};

pub use accept_anything::AcceptAnything;
pub use catalog::{CASES, CaseInfo, Lane};
pub use identities::ToolIdentities;
pub use report::{CaseReport, REPORT_FORMAT_VERSION, Report, ShipVersions, Verdict};
pub use tls_suites::TLS_SUITES;

use peer::{Peer, Step};

/// The DUT as the tool dials it: `SKI@HOST:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The DUT's SKI (the tool aborts the TLS handshake if another one answers).
    pub ski: Ski,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The WebSocket path (`/ship/` by default, the mDNS TXT `path`).
    pub path: String,
}

/// Why a target string could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TargetParseError {
    /// No `@` between SKI and address.
    #[error("expected SKI@HOST:PORT, got {0:?}")]
    Form(String),
    /// The SKI part is not 40 hex characters.
    #[error("invalid SKI in target: {0}")]
    Ski(String),
    /// The address part is not `IP:PORT`.
    #[error("invalid address in target {0:?} (expected IP:PORT, e.g. 127.0.0.1:4711)")]
    Address(String),
}

impl std::str::FromStr for Target {
    type Err = TargetParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (ski, addr) = text
            .split_once('@')
            .ok_or_else(|| TargetParseError::Form(text.to_owned()))?;
        let ski = ski
            .parse()
            .map_err(|e: ship_hub::SkiParseError| TargetParseError::Ski(e.to_string()))?;
        let (addr, path) = match addr.find('/') {
            Some(i) => (&addr[..i], &addr[i..]),
            None => (addr, "/ship/"),
        };
        let addr = addr
            .parse()
            .map_err(|_| TargetParseError::Address(addr.to_owned()))?;
        Ok(Target {
            ski,
            addr,
            path: path.to_owned(),
        })
    }
}

/// Operator callback that revokes the DUT's trust in a tool SKI (TC_SHIP_TERM_001).
pub type RevokeTrust = Arc<dyn Fn(Ski) + Send + Sync>;

/// What the DUT declares about itself (the PICS / PAR_* values of the test specification).
/// They decide which cases apply; the defaults describe a SHIP node without a SPINE
/// application, such as ship-hub on its own.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct Declarations {
    /// The DUT's SHIP ID (its mDNS `id`); TC_SHIP_AM_001 compares the `accessMethods` `id` with
    /// it. Without it, the case checks only that the `id` is a valid SHIP ID.
    pub ship_id: Option<ShipId>,
    /// The DUT answers SPINE reads (it has a SPINE application). Without it, the SPINE replies
    /// of TC_SHIP_AMDATA_001/002 are not required.
    pub answers_spine: bool,
    /// PAR_queryAccessMethods: the DUT sends its own `accessMethodsRequest` (AMDATA_002 applies,
    /// AMDATA_004 does not).
    pub queries_access_methods: bool,
    /// PAR_clientDetailedDiscoverySupported: the DUT sends a SPINE detailed-discovery read
    /// after the handshake (AMDATA_003).
    pub client_detailed_discovery: bool,
    /// PAR_initiateClose: how the tester makes the DUT revoke its trust in a tool SKI
    /// (TC_SHIP_TERM_001; the command line's `--revoke-command`). `None`: the case is not
    /// applicable.
    pub revoke_trust: Option<RevokeTrust>,
    /// `--dut-pin`: the DUT requires this PIN from its peers (SHIP §13.4.4.3): EXT_PIN_001
    /// (the right PIN opens data exchange) and EXT_PIN_002 (a wrong one is refused) apply.
    /// The catalogue's cases expect a DUT without a PIN requirement.
    pub dut_pin: Option<ship_hub::protocol::Pin>,
    /// `--tool-pin`: the DUT was given this PIN for the tool: EXT_PIN_003 (the tool requires
    /// a PIN and the DUT sends this one) applies.
    pub tool_pin: Option<ship_hub::protocol::Pin>,
}

impl std::fmt::Debug for Declarations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Declarations")
            .field("ship_id", &self.ship_id)
            .field("answers_spine", &self.answers_spine)
            .field("queries_access_methods", &self.queries_access_methods)
            .field("client_detailed_discovery", &self.client_detailed_discovery)
            .field("revoke_trust", &self.revoke_trust.is_some())
            .field("dut_pin", &self.dut_pin)
            .field("tool_pin", &self.tool_pin)
            .finish()
    }
}

/// Everything one run needs.
#[derive(Debug)]
#[non_exhaustive]
pub struct ToolConfig {
    /// The DUT to dial, if any.
    pub target: Option<Target>,
    /// Where the DUT dials the tool, if anywhere (bound by the caller so that the address can
    /// be given to the DUT first).
    pub listener: Option<TcpListener>,
    /// The tool's identities; the DUT must trust [`ToolIdentities::trusted`].
    pub identities: ToolIdentities,
    /// `--only`: see [`catalog::matches`].
    pub only: String,
    /// What the DUT declares.
    pub declarations: Declarations,
    /// How many dial-lane cases run at once (each holds one connection to the DUT).
    pub parallel: usize,
    /// Browse mDNS for TC_SHIP_MDNS_001. Only inside a private network namespace.
    pub mdns: bool,
    /// How long a listen-lane case waits for the DUT to dial (ROLE_003 allows 5 min).
    pub dial_wait: Duration,
    /// The SHIP version the tool offers (`announceMax` as client) and selects at most (as
    /// server): [`SHIP_1_1`] by default, as a SHIP 1.1 device negotiates; [`SHIP_1_0`] pins
    /// the tool to 1.0 (`--ship-version 1.0`).
    pub ship_version: ProtocolVersion,
    /// `--single-identity`: every case uses the one tool identity [`identities::LISTENER`], for
    /// a DUT that trusts exactly one remote SKI and takes one connection at a time. Cases run
    /// one after another (never two connections at once), TC_SHIP_TERM_001 last (it makes the
    /// DUT revoke its trust in that identity); cases that need two identities at once are not
    /// applicable. While a case in which the tool dials runs (and in the pause before it), the
    /// DUT's own dials to the listener are refused at once (TCP closed before TLS), so that they
    /// cannot hold the DUT's one connection.
    pub single_identity: bool,
    /// `--case-gap`: a pause after each case before the lane's next one, so that a DUT that
    /// closes slowly is not still busy when the next case dials. `None`: 0 s, or
    /// [`SINGLE_IDENTITY_CASE_GAP`] with [`single_identity`](Self::single_identity).
    pub case_gap: Option<Duration>,
}

/// SHIP 1.0, the version of SHIP TS 1.0.x.
pub const SHIP_1_0: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };
/// SHIP 1.1, the highest version the tool knows and offers by default.
pub const SHIP_1_1: ProtocolVersion = ProtocolVersion { major: 1, minor: 1 };

/// The default pause between cases in single-identity mode.
pub const SINGLE_IDENTITY_CASE_GAP: Duration = Duration::from_secs(2);

/// Why a `--ship-version` could not be parsed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected a SHIP version 1.0 or 1.1 (MAJOR.MINOR), got {0:?}")]
pub struct ShipVersionParseError(String);

/// Parses a SHIP version the tool can offer: `1.0` or `1.1`.
pub fn parse_ship_version(text: &str) -> Result<ProtocolVersion, ShipVersionParseError> {
    match text.trim() {
        "1.0" => Ok(SHIP_1_0),
        "1.1" => Ok(SHIP_1_1),
        _ => Err(ShipVersionParseError(text.to_owned())),
    }
}

impl ToolConfig {
    /// A configuration with `identities` and defaults: no target, no listener, every case,
    /// default declarations, 6 cases at once (with the listen lane's up to 2 connections this
    /// stays within a DUT's typical cap of 10 connections), no mDNS, 5 min dial wait.
    pub fn new(identities: ToolIdentities) -> Self {
        ToolConfig {
            target: None,
            listener: None,
            identities,
            only: String::new(),
            declarations: Declarations::default(),
            parallel: 6,
            mdns: false,
            dial_wait: Duration::from_secs(300),
            ship_version: SHIP_1_1,
            single_identity: false,
            case_gap: None,
        }
    }
}

/// The versions seen in the protocol handshakes of one run.
#[derive(Debug, Default)]
struct SeenVersions {
    /// Every `announceMax` version of the DUT (as client), in order, without repeats.
    announced: Vec<ProtocolVersion>,
    /// Every `select` version of the DUT (as server), in order, without repeats.
    selected: Vec<ProtocolVersion>,
}

/// Shared state of one run.
pub(crate) struct Ctx {
    target: Option<Target>,
    listener: Option<tokio::sync::Mutex<TcpListener>>,
    identities: ToolIdentities,
    declarations: Declarations,
    mdns: bool,
    dial_wait: Duration,
    /// Set when the DUT once failed to dial within `dial_wait`: later listen-lane cases then fail
    /// at once instead of waiting again.
    never_dialled: std::sync::atomic::AtomicBool,
    ship_version: ProtocolVersion,
    single_identity: bool,
    /// The pause between cases (also inside a case, between two connections one after the
    /// other to a DUT that may take one at a time).
    case_gap: Duration,
    seen: std::sync::Mutex<SeenVersions>,
}

/// Timeout for the TLS + WebSocket handshakes of one tool connection.
const TRANSPORT_TIMEOUT: Duration = Duration::from_secs(10);

impl Ctx {
    /// The identity a case's `name` stands for: itself, or the one identity in single-identity
    /// mode.
    fn identity_name<'a>(&self, name: &'a str) -> &'a str {
        if self.single_identity {
            identities::LISTENER
        } else {
            name
        }
    }

    fn tls(&self, name: &str) -> Step<ShipTls> {
        let name = self.identity_name(name);
        let identity = self
            .identities
            .get(name)
            .ok_or_else(|| format!("the tool has no identity {name:?}"))?;
        ShipTls::new(identity, TlsOptions::default()).map_err(|e| e.to_string())
    }

    fn ski_of(&self, name: &str) -> Option<Ski> {
        self.identities
            .get(self.identity_name(name))
            .map(|i| i.ski())
    }

    /// The SHIP ID the tool announces in `accessMethods` as identity `name` (one per identity:
    /// a DUT may store the SHIP ID per SKI and refuse another one later).
    fn ship_id_of(&self, name: &str) -> String {
        ToolIdentities::ship_id(self.identity_name(name))
    }

    /// Records the DUT's `announceMax` version.
    fn saw_announce(&self, version: ProtocolVersion) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.announced.contains(&version) {
            seen.announced.push(version);
        }
    }

    /// Records the DUT's `select` version.
    fn saw_select(&self, version: ProtocolVersion) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.selected.contains(&version) {
            seen.selected.push(version);
        }
    }

    /// Runs `case` while refusing the DUT's dials to the listener (single-identity mode: a DUT
    /// that takes one connection at a time must not spend it on a dial nobody answers).
    async fn refusing_dials<T>(&self, case: impl std::future::Future<Output = T>) -> T {
        let Some(listener) = &self.listener else {
            return case.await;
        };
        let listener = listener.lock().await;
        let mut case = std::pin::pin!(case);
        loop {
            tokio::select! {
                out = &mut case => return out,
                accepted = listener.accept() => {
                    if let Ok((tcp, peer)) = accepted {
                        tracing::debug!(%peer, "the DUT's dial refused while a dial case runs");
                        drop(tcp);
                    }
                }
            }
        }
    }

    fn target(&self) -> Step<&Target> {
        self.target
            .as_ref()
            .ok_or_else(|| "no --target given".to_owned())
    }

    /// Dials the DUT as identity `name`: TCP, TLS, WebSocket.
    async fn dial(&self, name: &str, label: &'static str) -> Step<Peer> {
        let target = self.target()?;
        let tls = self.tls(name)?;
        let socket = tokio::time::timeout(
            TRANSPORT_TIMEOUT,
            dial(
                &tls,
                target.addr,
                target.ski,
                &target.path,
                &WsOptions::default(),
            ),
        )
        .await
        .map_err(|_| format!("dialling {} timed out", target.addr))?
        .map_err(|e| format!("dialling {} failed: {e}", target.addr))?;
        Ok(Peer::new(socket, label))
    }

    /// Waits for the DUT's next TCP connection to the listener.
    async fn accept_tcp(&self) -> Step<TcpStream> {
        let listener = self
            .listener
            .as_ref()
            .ok_or_else(|| "no --listen given".to_owned())?
            .lock()
            .await;
        let never = "the DUT did not dial the tool within";
        if self.never_dialled.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(format!(
                "{never} {} s (in an earlier case)",
                self.dial_wait.as_secs()
            ));
        }
        let (tcp, _) = tokio::time::timeout(self.dial_wait, listener.accept())
            .await
            .map_err(|_| {
                self.never_dialled
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                format!("{never} {} s", self.dial_wait.as_secs())
            })?
            .map_err(|e| format!("accept failed: {e}"))?;
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    /// TLS + WebSocket server side on a connection the DUT dialled, as the listener identity.
    async fn upgrade(&self, tcp: TcpStream, label: &'static str) -> Step<Peer> {
        let tls = self.tls(identities::LISTENER)?;
        let handshake = async {
            let (stream, _) = tls.accept(tcp).await.map_err(|e| e.to_string())?;
            accept_websocket(stream, &WsOptions::default(), || true)
                .await
                .map_err(|e| e.to_string())
        };
        let socket = tokio::time::timeout(TRANSPORT_TIMEOUT, handshake)
            .await
            .map_err(|_| "TLS/WebSocket handshake with the dialling DUT timed out".to_owned())?
            .map_err(|e| format!("TLS/WebSocket handshake with the dialling DUT failed: {e}"))?;
        Ok(Peer::new(socket, label))
    }

    /// Waits for the DUT to dial and upgrades the connection.
    async fn accept_dut(&self, label: &'static str) -> Step<Peer> {
        let tcp = self.accept_tcp().await?;
        self.upgrade(tcp, label).await
    }
}

/// Runs every selected case and returns the report.
pub async fn run(config: ToolConfig) -> Report {
    let started = Instant::now();
    let mut target_text = Vec::new();
    if let Some(target) = &config.target {
        target_text.push(format!("{}@{}{}", target.ski, target.addr, target.path));
    }
    if let Some(listener) = &config.listener
        && let Ok(addr) = listener.local_addr()
    {
        target_text.push(format!("listening on {addr}"));
    }
    let only = config.only.clone();
    let single = config.single_identity;
    let parallel = if single { 1 } else { config.parallel.max(1) };
    let gap = config.case_gap.unwrap_or(if single {
        SINGLE_IDENTITY_CASE_GAP
    } else {
        Duration::ZERO
    });
    let ctx = Arc::new(Ctx {
        target: config.target,
        listener: config.listener.map(tokio::sync::Mutex::new),
        identities: config.identities,
        declarations: config.declarations,
        mdns: config.mdns,
        dial_wait: config.dial_wait,
        never_dialled: std::sync::atomic::AtomicBool::new(false),
        ship_version: config.ship_version,
        single_identity: single,
        case_gap: gap,
        seen: std::sync::Mutex::new(SeenVersions::default()),
    });
    let selected: Vec<&CaseInfo> = CASES
        .iter()
        .filter(|c| catalog::matches(&only, c.id))
        .collect();
    let with_tls_suites = catalog::matches(&only, TLS_SUITES);

    let mut by_id: HashMap<String, CaseReport> = HashMap::new();
    if single {
        // One connection at a time: every case in one sequence, TERM_001 after everything else
        // (it makes the DUT revoke its trust in the tool's only identity).
        let (last, order): (Vec<&CaseInfo>, Vec<&CaseInfo>) = selected
            .iter()
            .copied()
            .partition(|c| c.id == cases::REVOKES_TRUST);
        let mut first = true;
        for case in order.into_iter().map(|c| c.id).chain(
            with_tls_suites
                .then_some(TLS_SUITES)
                .into_iter()
                .chain(last.into_iter().map(|c| c.id)),
        ) {
            let pause = if first { Duration::ZERO } else { gap };
            first = false;
            let lane = CASES.iter().find(|c| c.id == case).map(|c| c.lane);
            let report = if lane == Some(Lane::Listen) {
                tokio::time::sleep(pause).await;
                timed(&ctx, case).await
            } else {
                // The pause too: a dial of the DUT's left waiting through it would occupy the
                // DUT's one connection just when the case dials.
                ctx.refusing_dials(async {
                    tokio::time::sleep(pause).await;
                    timed(&ctx, case).await
                })
                .await
            };
            by_id.insert(report.id.clone(), report);
        }
    } else {
        let mut tasks = tokio::task::JoinSet::new();
        // Listen lane: one task, cases in order.
        let listen: Vec<&'static str> = catalog::LISTEN_ORDER
            .iter()
            .copied()
            .filter(|id| selected.iter().any(|c| c.id == *id))
            .collect();
        {
            let ctx = ctx.clone();
            tasks.spawn(async move {
                let mut out = Vec::new();
                for (i, id) in listen.into_iter().enumerate() {
                    if i > 0 {
                        tokio::time::sleep(gap).await;
                    }
                    out.push(timed(&ctx, id).await);
                }
                out
            });
        }
        // Dial and mDNS lanes: concurrently, long cases first.
        let mut others: Vec<&CaseInfo> = selected
            .iter()
            .copied()
            .filter(|c| c.lane != Lane::Listen)
            .collect();
        others.sort_by_key(|c| std::cmp::Reverse(c.seconds));
        let permits = Arc::new(Semaphore::new(parallel));
        for case in others {
            let ctx = ctx.clone();
            let permits = permits.clone();
            let id = case.id;
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let report = timed(&ctx, id).await;
                // The gap holds the permit: the next case of this slot starts after it.
                tokio::time::sleep(gap).await;
                vec![report]
            });
        }
        while let Some(result) = tasks.join_next().await {
            match result {
                Ok(reports) => {
                    for report in reports {
                        by_id.insert(report.id.clone(), report);
                    }
                }
                Err(error) => tracing::error!(%error, "a conformance case task failed"),
            }
        }
        // The tool's own check, after every case (its probes use a trusted tool identity).
        if with_tls_suites {
            let report = timed(&ctx, TLS_SUITES).await;
            by_id.insert(report.id.clone(), report);
        }
    }
    let mut cases: Vec<CaseReport> = selected
        .iter()
        .map(|c| {
            by_id.remove(c.id).unwrap_or_else(|| {
                CaseReport::new(
                    c.id,
                    Verdict::Fail,
                    vec!["the case's task ended without a report (panic)".into()],
                )
            })
        })
        .collect();
    cases.extend(by_id.remove(TLS_SUITES));
    let seen = std::mem::take(&mut *ctx.seen.lock().unwrap_or_else(|e| e.into_inner()));
    Report {
        target: target_text.join(", "),
        format_version: REPORT_FORMAT_VERSION,
        single_identity: single,
        ship_version: ShipVersions {
            offered: report::version_text(ctx.ship_version),
            dut_announced: seen
                .announced
                .into_iter()
                .map(report::version_text)
                .collect(),
            dut_selected: seen
                .selected
                .into_iter()
                .map(report::version_text)
                .collect(),
        },
        cases,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

async fn timed(ctx: &Ctx, id: &'static str) -> CaseReport {
    let started = Instant::now();
    tracing::info!(case = id, "case started");
    // Boxed: the cases' state machines are large, and in single-identity mode they run inside
    // `run`'s own future rather than in tasks of their own.
    let outcome = if id == TLS_SUITES {
        Box::pin(tls_suites::tls_suites(ctx)).await
    } else {
        Box::pin(cases::run_case(ctx, id)).await
    };
    let mut report = CaseReport::new(id, outcome.verdict, outcome.evidence);
    report.duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(case = id, verdict = %report.verdict, "case done");
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parses_ski_address_and_optional_path() {
        let ski = "00112233445566778899aabbccddeeff00112233";
        let t: Target = format!("{ski}@127.0.0.1:4711").parse().unwrap();
        assert_eq!(t.addr, SocketAddr::from(([127, 0, 0, 1], 4711)));
        assert_eq!(t.path, "/ship/");
        let t: Target = format!("{ski}@127.0.0.1:4711/").parse().unwrap();
        assert_eq!(t.path, "/");
        assert!(matches!(
            "nope".parse::<Target>(),
            Err(TargetParseError::Form(_))
        ));
        assert!(matches!(
            format!("{ski}@host").parse::<Target>(),
            Err(TargetParseError::Address(_))
        ));
    }
}
