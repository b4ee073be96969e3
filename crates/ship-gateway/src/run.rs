//! `ship-gateway run`: the long-running gateway, as [`Gateway`].
//!
//! [`Gateway::start`] is a sequence of named steps, each of which may fail with a one-line
//! error before anything is announced: [`open_data_dir`], [`pairing_service`], the event log,
//! [`bind_http`], the event bus, [`decider`], [`discovery`], [`store_static_peers`],
//! [`start_hub`] (with the hub's event stream), [`start_prompt`]; then, with the hub running,
//! [`follow_hub`] (the one task that reads the hub's events), [`say_warnings`],
//! [`serve_control`], [`serve_http`], the `listening` event and [`pair_static_peers`].
//! [`Gateway::stop`] cancels the one shutdown token the servers watch, shuts the hub down,
//! waits for the events task to write the hub's last events and writes its own.

use ship_hub::hub::PairedPeer;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ship_hub::discovery::{Discovery, InterfaceSelection, MdnsConfig, MdnsDiscovery};
use ship_hub::hub::{
    AcceptRequests, DeviceInfo, Hub, HubConfig, HubError, HubEvents, HubTimers, RequestPairing,
    TrustStore,
};
use ship_hub::identity::Identity;
use ship_hub::pairing_service::PairingSecret;
use ship_hub::{ShipId, Ski};
use tokio_util::sync::CancellationToken;

use crate::api::auth::{Access, Auth};
use crate::api::bus::{BusLimits, EventBus};
use crate::api::live::Live;
use crate::api::{self, ApiState};
use crate::control::{self, ControlServer, SocketFront};
use crate::data_dir::{self, DataDir};
use crate::device::{default_ship_id, device_info};
use crate::error::GatewayError;
use crate::events::{Event, EventLog};
use crate::hub_events::{Decider, Follower, Notes};
use crate::pairing_request::PairingRequests;
use crate::prompt::{self, PairingPrompt};
use crate::serve::Serving;
use crate::settings::{Settings, StaticPeer};
use crate::store::{FileLock, LockedTrustStore};

/// How long `run` waits for a `pair`/`unpair` that is editing the store to let go of the gateway
/// lock before concluding that another gateway runs.
const LOCK_PATIENCE: Duration = Duration::from_secs(3);

/// A running gateway: its hub, its event log, its HTTP API and control socket.
///
/// Start it with [`Gateway::start`] (inside a tokio runtime) and end it with [`Gateway::stop`];
/// the `ship-gateway run` command does that around SIGINT and SIGTERM.
pub struct Gateway {
    hub: Hub,
    log: Arc<EventLog>,
    /// The one task that reads the hub's events ([`follow_hub`]); it ends after the hub's
    /// shutdown, once every event is written.
    events: tokio::task::JoinHandle<()>,
    /// Cancelled by [`Gateway::stop`]: the HTTP API and the control socket stop serving.
    shutdown: CancellationToken,
    /// The HTTP API's fronts (TCP, the control socket).
    servers: Vec<Serving>,
    /// The control socket, removed at the stop (`None`: it could not be bound).
    control_path: Option<PathBuf>,
    http: Option<SocketAddr>,
    data_dir: PathBuf,
    /// Held while the gateway runs: the data directory is served.
    _running: FileLock,
}

/// How a stop went ([`Gateway::stop`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StopReport {
    /// Every connection to a peer closed within the hub's shutdown deadline.
    pub connections_closed_in_time: bool,
    /// How long the stop took, from [`Gateway::stop`] until the last event was written (or
    /// its time was up).
    pub elapsed: Duration,
}

/// What [`open_data_dir`] yields: the data directory and what it holds.
struct Home {
    dir: DataDir,
    running: FileLock,
    identity: Identity,
    trust: Arc<LockedTrustStore>,
    ship_id: ShipId,
}

/// The HTTP API's listener, its address and its credentials ([`bind_http`]).
struct HttpFront {
    listener: tokio::net::TcpListener,
    address: SocketAddr,
    auth: Arc<Auth>,
}

/// The SHIP Pairing Service as configured ([`pairing_service`]): the secret of requests this
/// gateway accepts, the replay guard, and our own request.
struct PairingSetup {
    secret: Option<PairingSecret>,
    replay_history: Vec<[u8; 32]>,
    requests: Arc<PairingRequests>,
    requested: Option<RequestPairing>,
}

impl Gateway {
    /// Starts a gateway with `settings`: takes the data directory (its lock, identity,
    /// pairings and SHIP ID), starts the hub, the event log and, as configured, the terminal
    /// prompt, the HTTP API and the control socket, and says `listening`. Call inside a tokio
    /// runtime. Every failure (a taken port, a bad secret file, another gateway on the data
    /// directory) is a [`GatewayError`] before anything is announced.
    pub async fn start(settings: Settings) -> Result<Gateway, GatewayError> {
        let home = open_data_dir(&settings).await?;
        let ski = home.identity.ski();
        let device = device_info(&settings)?;
        // Checked before anything starts: a bad secret file (or a corrupt replay guard beside the
        // identity) is a one-line error.
        let (secret, replay_history) = read_pairing_setup(&settings, &home.dir)?;
        let log = Arc::new(
            EventLog::new(settings.json).map_err(|source| GatewayError::Io {
                what: "starting the event writer".into(),
                source,
            })?,
        );
        let pairing = pairing_service(&settings, &home, secret, replay_history, &log)?;
        // What the gateway knows beyond the hub (live states, waiting requests, cooling-off).
        let live = Arc::new(Live::new(settings.cooling_off, settings.remember_denial));
        // The HTTP API: its token and its socket before anything else starts, so that a bad
        // token file or a taken port is a clear error at once.
        let http = bind_http(&settings, &home.dir, &log).await?;
        // The event stream of the API (HTTP and control socket: `watch`).
        let bus = EventBus::new(BusLimits::default());
        if http.is_some() {
            bus.keep_history();
        }
        log.publish_to(bus.clone());
        let notes = Arc::new(Notes::default());
        let decider = decider(&settings, &live, &notes, &http);
        let discovery = discovery(&settings, ski)?;
        let stored_peers = store_static_peers(&settings, &home.trust).await;
        let (hub, hub_events) =
            start_hub(&settings, &home, device, discovery, decider, &pairing).await?;
        let prompt = match start_prompt(&settings, &hub, &log, &live) {
            Ok(prompt) => prompt,
            Err(error) => {
                hub.shutdown().await;
                return Err(error);
            }
        };
        let events = follow_hub(
            &settings, &home, &hub, hub_events, &log, prompt, &live, &pairing, &http, notes,
        );
        say_warnings(&settings, &log);

        let shutdown = CancellationToken::new();
        let started_at = std::time::Instant::now();
        let qr = qr_of(ski, &home.ship_id, &settings);
        let http_auth = http
            .as_ref()
            .map(|front| (front.address, front.auth.clone()));
        let api_state = |access: Access, conns: Option<Arc<api::conns::Conns>>| {
            Arc::new(ApiState {
                hub: hub.clone(),
                log: log.clone(),
                live: live.clone(),
                bus: bus.clone(),
                ship_id: home.ship_id.clone(),
                started: started_at,
                limits: settings.http_limits,
                access,
                auth: http_auth.as_ref().map(|(_, auth)| auth.clone()),
                http: http_auth.as_ref().map(|(address, _)| *address),
                streams: Arc::new(tokio::sync::Semaphore::new(
                    settings.http_limits.event_streams,
                )),
                conns,
                qr: qr.clone(),
                pairing_request: pairing.requests.clone(),
                mdns: settings.mdns,
                shutdown: shutdown.clone(),
            })
        };
        let mut servers = Vec::new();
        let control_path =
            serve_control(&settings, &home.dir, &log, &shutdown, &mut servers, || {
                api_state(Access::Socket, None)
            });
        let http_address = http.map(|front| {
            let conns = api::conns(&settings.http_limits);
            serve_http(
                front,
                api_state(Access::Http, Some(conns)),
                &shutdown,
                &mut servers,
            )
        });

        log.emit(Event::Listening {
            http: http_address,
            address: hub.local_addr(),
            ski: ski.to_string(),
            ship_id: home.ship_id.to_string(),
            data_dir: home.dir.path().display().to_string(),
            mdns: settings.mdns,
            auto_accept: settings.auto_accept,
        });
        pairing.requests.announced_at_start(&hub);
        pair_static_peers(&hub, &log, stored_peers).await;
        Ok(Gateway {
            hub,
            log,
            events,
            shutdown,
            servers,
            control_path,
            http: http_address,
            data_dir: home.dir.path().to_owned(),
            _running: home.running,
        })
    }

    /// The gateway's hub.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Where the hub listens for SHIP peers.
    pub fn local_addr(&self) -> SocketAddr {
        self.hub.local_addr()
    }

    /// Where the HTTP API is served, if it is.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    /// The data directory the gateway serves.
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// Stops the gateway: says `stopping` (with `why`, e.g. `SIGTERM`), stops the HTTP API and
    /// the control socket, shuts the hub down (phased: peers are told, within the hub's
    /// shutdown deadline) and says `stopped`. The last events get what is left of the shutdown
    /// deadline to be written: a stdout nobody reads never keeps the gateway from stopping.
    pub async fn stop(self, why: &str) -> StopReport {
        let signalled = std::time::Instant::now();
        self.log.emit(Event::Stopping { signal: why.into() });
        // The fronts close their listeners and finish the requests in flight while the hub
        // shuts down; what is still busy at the shutdown deadline is dropped.
        self.shutdown.cancel();
        if let Some(path) = &self.control_path {
            let _ = std::fs::remove_file(path);
        }
        let deadline = HubTimers::default().shutdown_deadline;
        let servers = futures_util::future::join_all(
            self.servers
                .into_iter()
                .map(|server| server.finish(deadline.saturating_sub(signalled.elapsed()))),
        );
        let (report, _) = tokio::join!(self.hub.shutdown(), servers);
        // The hub's last events (its peers' last states) are written before `stopped`.
        let _ =
            tokio::time::timeout(deadline.saturating_sub(signalled.elapsed()), self.events).await;
        // A PIN question on the screen turned the terminal's echo off: back on before we go.
        prompt::restore_terminal();
        self.log.emit(Event::Stopped {
            connections_closed_in_time: report.connections_closed_in_time,
            elapsed_ms: report.elapsed.as_millis(),
        });
        let left = deadline.saturating_sub(signalled.elapsed());
        let log = self.log.clone();
        let _ =
            tokio::task::spawn_blocking(move || log.flush(left.max(Duration::from_millis(100))))
                .await;
        StopReport {
            connections_closed_in_time: report.connections_closed_in_time,
            elapsed: signalled.elapsed(),
        }
    }
}

/// Step: opens the data directory (it must be writable), takes the gateway lock, loads or
/// creates the identity, the pairings and the SHIP ID, and refuses a static peer with our own
/// SKI.
async fn open_data_dir(settings: &Settings) -> Result<Home, GatewayError> {
    let dir = DataDir::open(settings.data_dir.clone(), true)?;
    dir.writable("`run`")?;
    let running = take_gateway_lock(&dir).await?;
    let name = settings.device.name.as_deref().unwrap_or("ship-gateway");
    let identity = dir.identity(&data_dir::subject(name, &settings.device.brand))?;
    let ski = identity.ski();
    let trust = Arc::new(dir.trust_store()?);
    let ship_id = dir.ship_id(settings.device.ship_id.as_ref(), || default_ship_id(ski))?;
    if settings.peers.iter().any(|peer| peer.ski == ski) {
        return Err(GatewayError::OwnSki(ski));
    }
    Ok(Home {
        dir,
        running,
        identity,
        trust,
        ship_id,
    })
}

/// Step: reads the Pairing Service's secret and replay guard when `pairing_secret_file` is set
/// (it needs mDNS).
fn read_pairing_setup(
    settings: &Settings,
    dir: &DataDir,
) -> Result<(Option<PairingSecret>, Vec<[u8; 32]>), GatewayError> {
    let Some(path) = &settings.pairing_secret_file else {
        return Ok((None, Vec::new()));
    };
    let secret = read_pairing_secret(path)?;
    // The Pairing Service's replay guard, kept across restarts.
    let history = dir.replay_history()?;
    if !settings.mdns {
        return Err(GatewayError::Setting(format!(
            "pairing_secret_file {} needs mDNS (the SHIP Pairing Service runs over it)",
            path.display()
        )));
    }
    Ok((Some(secret), history))
}

/// Step: the SHIP Pairing Service: what it accepts, and our own stored request (this gateway
/// as the control unit), if any.
fn pairing_service(
    settings: &Settings,
    home: &Home,
    secret: Option<PairingSecret>,
    replay_history: Vec<[u8; 32]>,
    log: &Arc<EventLog>,
) -> Result<PairingSetup, GatewayError> {
    let (requests, requested) =
        PairingRequests::start(&home.dir, &home.trust, settings.mdns, log.clone())?;
    Ok(PairingSetup {
        secret,
        replay_history,
        requests,
        requested,
    })
}

/// Whether the terminal prompt asks about pairing requests and PINs: stdin is a terminal,
/// prompting is on and auto-accept is off.
fn prompting(settings: &Settings) -> bool {
    use std::io::IsTerminal;
    settings.prompt && !settings.auto_accept && std::io::stdin().is_terminal()
}

/// Step: the terminal prompt for pairing requests and PINs, when [`prompting`].
fn start_prompt(
    settings: &Settings,
    hub: &Hub,
    log: &Arc<EventLog>,
    live: &Arc<Live>,
) -> Result<Option<std::sync::mpsc::Sender<PairingPrompt>>, GatewayError> {
    if !prompting(settings) {
        return Ok(None);
    }
    prompt::start(hub.clone(), log.clone(), live.clone())
        .map(Some)
        .map_err(|source| GatewayError::Io {
            what: "starting the pairing prompt".into(),
            source,
        })
}

/// Step: the HTTP API's credentials and bound listener, when `http` is set.
async fn bind_http(
    settings: &Settings,
    dir: &DataDir,
    log: &Arc<EventLog>,
) -> Result<Option<HttpFront>, GatewayError> {
    let Some(address) = settings.http else {
        return Ok(None);
    };
    let auth = Auth::configure(
        settings.http_token_file.as_deref(),
        dir,
        settings.auth_limits,
        log.clone(),
    )?;
    let listener = api::bind(address)
        .await
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AddrInUse => GatewayError::PortInUse { addr: address },
            _ => GatewayError::Io {
                what: format!("serving the HTTP API on {address}"),
                source,
            },
        })?;
    let address = listener.local_addr().unwrap_or(address);
    Ok(Some(HttpFront {
        listener,
        address,
        auth: Arc::new(auth),
    }))
}

/// Step: the hub's callbacks: the [`Decider`] of pairing and PIN requests, which answers from
/// the gateway's own state and never calls the hub.
fn decider(
    settings: &Settings,
    live: &Arc<Live>,
    notes: &Arc<Notes>,
    http: &Option<HttpFront>,
) -> Arc<Decider> {
    Arc::new(Decider {
        live: live.clone(),
        auto_accept: settings.auto_accept,
        asking: prompting(settings) || ask_over_http(settings, http),
        notes: notes.clone(),
    })
}

/// Pairing requests wait for a decision over the API (the console, `approve`) even without a
/// terminal.
fn ask_over_http(settings: &Settings, http: &Option<HttpFront>) -> bool {
    (http.is_some() || settings.ask) && !settings.auto_accept
}

/// Step: the one task that reads the hub's events (`crate::hub_events`) and feeds the event
/// log, the live state of the API and the console, the terminal prompt and our own Pairing
/// Service request.
#[allow(clippy::too_many_arguments)]
fn follow_hub(
    settings: &Settings,
    home: &Home,
    hub: &Hub,
    events: HubEvents,
    log: &Arc<EventLog>,
    prompt: Option<std::sync::mpsc::Sender<PairingPrompt>>,
    live: &Arc<Live>,
    pairing: &PairingSetup,
    http: &Option<HttpFront>,
    notes: Arc<Notes>,
) -> tokio::task::JoinHandle<()> {
    let follower = Follower {
        hub: hub.clone(),
        log: log.clone(),
        prompt,
        echo: settings.echo,
        replay_file: pairing
            .secret
            .is_some()
            .then(|| home.dir.replay_history_path()),
        live: live.clone(),
        ask_over_http: ask_over_http(settings, http),
        last_visible: Default::default(),
        pairing_request: pairing.requests.clone(),
        pin_warnings: crate::throttle::Throttle::new(
            crate::hub_events::PIN_WARNING_INTERVAL,
            crate::hub_events::PIN_WARNINGS_PER_INTERVAL,
        ),
        command: data_dir::command_for(home.dir.path()),
        notes,
    };
    tokio::spawn(crate::hub_events::follow(follower, events))
}

/// Step: mDNS discovery, unless it is off (`--no-mdns`); refuses an interface that does not
/// exist.
fn discovery(settings: &Settings, ski: Ski) -> Result<Option<Arc<dyn Discovery>>, GatewayError> {
    if !settings.mdns {
        return Ok(None);
    }
    let mut config = MdnsConfig::new(ski);
    if !settings.interfaces.is_empty() {
        check_interfaces(&settings.interfaces)?;
        config.interfaces = InterfaceSelection::Names(settings.interfaces.clone());
    }
    Ok(Some(Arc::new(
        MdnsDiscovery::new(config).map_err(|e| GatewayError::Mdns(e.to_string()))?,
    )))
}

/// A static peer and whether storing it made a new pairing (or why it could not be stored).
type StoredPeer = (
    StaticPeer,
    Result<Result<bool, GatewayError>, tokio::task::JoinError>,
);

/// Step: stores the static peers before the hub starts and listens: one that dials as soon as
/// the listener is up (a first start) is trusted at once instead of refused.
async fn store_static_peers(settings: &Settings, trust: &Arc<LockedTrustStore>) -> Vec<StoredPeer> {
    let mut stored_peers = Vec::new();
    for peer in settings.peers.clone() {
        let trust_for_peer = trust.clone();
        let stored = tokio::task::spawn_blocking(move || -> Result<bool, GatewayError> {
            let known = trust_for_peer.get(&peer.ski)?.is_some();
            trust_for_peer.merge(peer.ski, |p| p.last_address = Some(peer.address))?;
            Ok(!known)
        })
        .await;
        stored_peers.push((peer, stored));
    }
    stored_peers
}

/// Step: starts the hub on the configured address, or on `[::]` and else `0.0.0.0` (a host
/// without IPv6), with its event stream (subscribed before anything happens).
async fn start_hub(
    settings: &Settings,
    home: &Home,
    device: DeviceInfo,
    discovery: Option<Arc<dyn Discovery>>,
    decider: Arc<Decider>,
    pairing: &PairingSetup,
) -> Result<(Hub, HubEvents), GatewayError> {
    let binds: Vec<SocketAddr> = match settings.bind {
        Some(ip) => vec![SocketAddr::new(ip, settings.port)],
        None => vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), settings.port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), settings.port),
        ],
    };
    for (index, bind) in binds.iter().enumerate() {
        let mut config = HubConfig::new(home.identity.clone(), home.ship_id.clone());
        config.bind = *bind;
        config.device = device.clone();
        config.discovery = discovery.clone();
        config.auto_accept = settings.auto_accept;
        config.pin_requirement = settings.pin_requirement.clone();
        config.trust_store = home.trust.clone();
        config.callbacks = decider.clone();
        // The gateway's one event stream never drops an event (what the callbacks' queue gave
        // before): its data events hold their peers' inbound budgets, and the other events are
        // few per connection and written (or coalesced) by the event log at once.
        config.limits.max_queued_events = usize::MAX;
        if let Some(n) = settings.max_connections {
            config.limits.max_connections = n;
        }
        if let Some(n) = settings.max_handshakes {
            config.limits.max_handshakes_in_progress = n;
        }
        settings.admission.apply(&mut config.limits);
        if let Some(n) = settings.max_message_bytes {
            config.websocket.max_message_size = n;
        }
        config.tls.cipher_suites = settings.tls_suites.clone();
        config.pairing_service.accept = pairing.secret.clone().map(|secret| {
            let mut accept = AcceptRequests::new(secret);
            accept.replay_history = pairing.replay_history.clone();
            accept
        });
        config.pairing_service.request = pairing.requested.clone();
        match Hub::start_with_events(config).await {
            Ok(started) => return Ok(started),
            Err(HubError::Bind { addr, source })
                if source.kind() == std::io::ErrorKind::AddrInUse =>
            {
                return Err(GatewayError::PortInUse { addr });
            }
            // No IPv6 on this host: try the next (IPv4) address.
            Err(HubError::Bind { .. }) if index + 1 < binds.len() => continue,
            Err(error) => return Err(error.into()),
        }
    }
    Err(GatewayError::Setting("no address to listen on".into()))
}

/// Step: the warnings of the settings (a secret on the command line) and of auto-accept.
fn say_warnings(settings: &Settings, log: &EventLog) {
    for message in &settings.warnings {
        log.emit(Event::Warning {
            message: message.clone(),
        });
    }
    if settings.auto_accept {
        let message = "auto-accept is ON: every device that connects is trusted without asking; \
                       anyone on this network can pair with this gateway (see docs/pairing.md)";
        eprintln!("ship-gateway: WARNING: {message}");
        log.emit(Event::Warning {
            message: message.into(),
        });
    }
}

/// Step: the control socket: the API for the command line (pair, unpair, send, list, status,
/// watch, approve, deny, disconnect while running). Without it the gateway still runs; those
/// commands then fail with a clear error (said in a warning). Returns the socket's path when it
/// is served.
fn serve_control(
    settings: &Settings,
    dir: &DataDir,
    log: &EventLog,
    shutdown: &CancellationToken,
    servers: &mut Vec<Serving>,
    state: impl FnOnce() -> Arc<ApiState>,
) -> Option<PathBuf> {
    let control_path = dir.control_path();
    match control::bind(&control_path) {
        Ok(listener) => {
            let front = SocketFront::new(ControlServer {
                limits: settings.control,
                api: api::router(state()),
            });
            servers.push(crate::serve::serve(listener, front, shutdown.clone()));
            Some(control_path)
        }
        Err(error) => {
            log.emit(Event::Warning {
                message: format!(
                    "{error}: the command line (pair, unpair, send, status, watch, ...) \
                     cannot reach this gateway"
                ),
            });
            None
        }
    }
}

/// Step: serves the HTTP API on its bound listener; returns its address.
fn serve_http(
    front: HttpFront,
    state: Arc<ApiState>,
    shutdown: &CancellationToken,
    servers: &mut Vec<Serving>,
) -> SocketAddr {
    servers.extend(api::serve(front.listener, state, shutdown.clone()));
    front.address
}

/// Step: adds the static peers' configured addresses to the hub (it already trusts them: it
/// read the store at start), which dials them first; a static peer that became a pairing now
/// is said, one that could not be stored is a warning.
async fn pair_static_peers(hub: &Hub, log: &EventLog, stored_peers: Vec<StoredPeer>) {
    for (peer, stored) in stored_peers {
        let hub_for_peer = hub.clone();
        let outcome = match stored {
            Ok(Ok(new)) => tokio::task::spawn_blocking(move || {
                hub_for_peer
                    .pair(PairedPeer::new(peer.ski).with_address(peer.address))
                    .map(|()| new)
                    .map_err(GatewayError::from)
            })
            .await
            .unwrap_or_else(|e| Err(GatewayError::Setting(e.to_string()))),
            Ok(Err(error)) => Err(error),
            Err(error) => Err(GatewayError::Setting(error.to_string())),
        };
        match outcome {
            Ok(true) => {
                log.emit(Event::Paired {
                    ski: peer.ski.to_string(),
                    by: "--peer".into(),
                });
                // Never silently: a static peer becomes a stored pairing that outlives the
                // flag or the configuration file it came from (docs/gateway.md).
                log.emit(Event::Warning {
                    message: format!(
                        "static peer {} is now paired (stored in pairings.json): it stays \
                         trusted and dialled after you remove it from the flags or the \
                         configuration file; `ship-gateway unpair {}` removes it",
                        peer.ski, peer.ski
                    ),
                });
            }
            Ok(false) => {}
            // One static peer that cannot be stored must not take the others down.
            Err(error) => log.emit(Event::Warning {
                message: format!("static peer {}: {error}", peer.ski),
            }),
        }
    }
}

/// Takes the lock that marks this data dir as served by a running gateway.
async fn take_gateway_lock(dir: &DataDir) -> Result<FileLock, GatewayError> {
    let path = dir.gateway_lock_path();
    let started = std::time::Instant::now();
    loop {
        match FileLock::try_acquire(&path, true) {
            Ok(Some(lock)) => return Ok(lock),
            Ok(None) if started.elapsed() < LOCK_PATIENCE => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(None) => return Err(GatewayError::AlreadyRunning(dir.path().to_owned())),
            Err(source) => {
                return Err(GatewayError::Io {
                    what: format!("locking {}", path.display()),
                    source,
                });
            }
        }
    }
}

/// Reads the SHIP Pairing Service secret (hex; whitespace and `-` ignored) from a secret file
/// (`crate::secrets`: refused when every user may read it). The error names the file, never its
/// content.
fn read_pairing_secret(path: &std::path::Path) -> Result<PairingSecret, GatewayError> {
    let text = crate::secrets::read(path, "pairing_secret_file")?;
    PairingSecret::from_hex(&text).map_err(|error| {
        GatewayError::Setting(format!("pairing_secret_file {}: {error}", path.display()))
    })
}

/// Refuses an `--interface` that does not exist (mDNS would otherwise run on no interface at all
/// and the gateway would be invisible without a word), naming the ones that do. The list is this
/// process's network namespace's (`/proc/self/net/dev`): `/sys/class/net` shows the namespace
/// that mounted sysfs, which inside a container or a test namespace is the host's. Where neither
/// can be read (not Linux), the names are passed on unchecked.
fn check_interfaces(names: &[String]) -> Result<(), GatewayError> {
    let Some(mut existing) = namespace_interfaces() else {
        return Ok(());
    };
    existing.sort();
    match names.iter().find(|name| !existing.contains(name)) {
        None => Ok(()),
        Some(missing) => Err(GatewayError::Setting(format!(
            "there is no network interface \"{}\" on this machine (it has: {})",
            crate::escape::Escaped(missing),
            existing.join(", ")
        ))),
    }
}

/// The network interfaces of this process's network namespace.
fn namespace_interfaces() -> Option<Vec<String>> {
    if let Ok(text) = std::fs::read_to_string("/proc/self/net/dev") {
        // Two header lines, then `  NAME: counters…` per interface.
        return Some(
            text.lines()
                .skip(2)
                .filter_map(|line| line.split_once(':'))
                .map(|(name, _)| name.trim().to_owned())
                .filter(|name| !name.is_empty())
                .collect(),
        );
    }
    let entries = std::fs::read_dir("/sys/class/net").ok()?;
    Some(
        entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
    )
}

/// This gateway's QR code (text, SVG) for the console; `None` (with a warning on stderr) if
/// its device values cannot be written into one.
fn qr_of(ski: ship_hub::Ski, ship_id: &ShipId, settings: &Settings) -> Option<(String, String)> {
    let text = match crate::qr::code_of(
        ski,
        ship_id.clone(),
        &settings.device,
        &settings.pin_requirement,
    ) {
        Ok(code) => code.to_string(),
        Err(error) => {
            tracing::warn!("the console shows no QR code: {error}");
            return None;
        }
    };
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some((text, crate::qr::svg_of(&code)))
}
