//! `ship-gateway run`: the long-running gateway.

use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use ship_hub::discovery::{
    DeviceCategories, Discovery, InstanceName, InterfaceSelection, MdnsConfig, MdnsDiscovery,
    TxtField, TxtValue,
};
use ship_hub::hub::{AcceptRequests, DeviceInfo, Hub, HubConfig, HubError, HubTimers, TrustStore};
use ship_hub::identity::Identity;
use ship_hub::pairing_service::PairingSecret;
use ship_hub::{ShipId, Ski};

use crate::api::auth::{Access, Auth};
use crate::api::bus::{BusLimits, EventBus};
use crate::api::live::Live;
use crate::api::{self, ApiState};
use crate::callbacks::GatewayCallbacks;
use crate::control::{self, ControlServer};
use crate::data_dir::{self, DataDir};
use crate::error::GatewayError;
use crate::events::{Event, EventLog};
use crate::prompt;
use crate::settings::RunSettings;
use crate::store::{FileLock, LockedTrustStore};

/// How long `run` waits for a `pair`/`unpair` that is editing the store to let go of the gateway
/// lock before concluding that another gateway runs.
const LOCK_PATIENCE: Duration = Duration::from_secs(3);

/// Runs the gateway until SIGINT or SIGTERM.
pub(crate) fn run(settings: RunSettings) -> Result<(), GatewayError> {
    let dir = DataDir::open(settings.data_dir.clone(), true)?;
    dir.writable("`run`")?;
    let _running = take_gateway_lock(&dir)?;
    let name = settings.device.name.as_deref().unwrap_or("ship-gateway");
    let identity = dir.identity(&data_dir::subject(name, &settings.device.brand))?;
    let ski = identity.ski();
    let trust = Arc::new(dir.trust_store()?);
    let ship_id = dir.ship_id(settings.device.ship_id.as_ref(), || default_ship_id(ski))?;
    for peer in &settings.peers {
        if peer.ski == ski {
            return Err(GatewayError::OwnSki(ski));
        }
    }
    let device = device_info(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| GatewayError::Io {
            what: "starting the tokio runtime".into(),
            source,
        })?;
    runtime.block_on(serve(settings, dir, identity, ship_id, trust, device))
}

/// The SHIP ID a gateway takes at its first start when none is configured.
pub(crate) fn default_ship_id(ski: Ski) -> Result<ShipId, GatewayError> {
    ShipId::new(format!("ship-gateway-{}", &ski.to_string()[..12]))
        .map_err(|e| GatewayError::Setting(e.to_string()))
}

/// The device categories the gateway announces (TXT `cat`, QR `CAT`): an energy management
/// system (2).
pub(crate) const DEVICE_CATEGORIES: [u8; 1] = [2];

/// Takes the lock that marks this data dir as served by a running gateway.
fn take_gateway_lock(dir: &DataDir) -> Result<FileLock, GatewayError> {
    let path = dir.gateway_lock_path();
    let started = std::time::Instant::now();
    loop {
        match FileLock::try_acquire(&path, true) {
            Ok(Some(lock)) => return Ok(lock),
            Ok(None) if started.elapsed() < LOCK_PATIENCE => {
                std::thread::sleep(Duration::from_millis(50));
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

fn device_info(settings: &RunSettings) -> Result<DeviceInfo, GatewayError> {
    let device = &settings.device;
    let value = |field: TxtField, text: &str| {
        TxtValue::new(field, text).map_err(|e| GatewayError::Setting(format!("device {e}")))
    };
    let mut info = DeviceInfo::default();
    if let Some(name) = &device.name {
        info.instance_name = Some(
            InstanceName::new(name.clone())
                .map_err(|e| GatewayError::Setting(format!("device name: {e}")))?,
        );
    }
    info.brand = Some(value(TxtField::Brand, &device.brand)?);
    info.model = Some(value(TxtField::Model, &device.model)?);
    info.device_type = Some(value(TxtField::DeviceType, &device.device_type)?);
    if let Some(serial) = &device.serial {
        info.serial = Some(value(TxtField::Serial, serial)?);
    }
    // TXT `cat` must be present (TC_SHIP_MDNS_001): the gateway announces itself as an energy
    // management system (category 2, SHIP §7.3.2).
    info.categories = DeviceCategories::new(DEVICE_CATEGORIES.to_vec())
        .map_err(|e| GatewayError::Setting(format!("device categories: {e}")))?;
    Ok(info)
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

async fn serve(
    settings: RunSettings,
    dir: DataDir,
    identity: Identity,
    ship_id: ShipId,
    trust: Arc<LockedTrustStore>,
    device: DeviceInfo,
) -> Result<(), GatewayError> {
    let ski = identity.ski();
    // Checked before anything starts: a bad secret file (or a corrupt replay guard beside the
    // identity) is a one-line error.
    let (pairing_secret, replay_history) = match &settings.pairing_secret_file {
        Some(path) => {
            let secret = read_pairing_secret(path)?;
            // The Pairing Service's replay guard, kept across restarts.
            let history = dir.replay_history()?;
            if !settings.mdns {
                return Err(GatewayError::Setting(format!(
                    "pairing_secret_file {} needs mDNS (the SHIP Pairing Service runs over it)",
                    path.display()
                )));
            }
            (Some(secret), history)
        }
        None => (None, Vec::new()),
    };
    // Before anything is announced: a signal that arrives once `listening` is out must start the
    // phased shutdown, not kill the process.
    let signals = Signals::install().map_err(|source| GatewayError::Io {
        what: "installing the SIGINT/SIGTERM handlers".into(),
        source,
    })?;
    let log = Arc::new(
        EventLog::new(settings.json).map_err(|source| GatewayError::Io {
            what: "starting the event writer".into(),
            source,
        })?,
    );
    let hub_cell: Arc<OnceLock<Hub>> = Arc::new(OnceLock::new());
    // Our own SHIP Pairing Service request (this gateway as the control unit), if one is stored.
    let (pairing_request, requested) = crate::pairing_request::PairingRequests::start(
        &dir,
        &trust,
        settings.mdns,
        log.clone(),
        hub_cell.clone(),
    )?;
    // What the gateway knows beyond the hub (live states, waiting requests, cooling-off).
    let live = Arc::new(Live::new(settings.cooling_off, settings.remember_denial));
    let prompt = if settings.prompt && !settings.auto_accept && std::io::stdin().is_terminal() {
        Some(
            prompt::start(hub_cell.clone(), log.clone(), live.clone()).map_err(|source| {
                GatewayError::Io {
                    what: "starting the pairing prompt".into(),
                    source,
                }
            })?,
        )
    } else {
        None
    };
    // The HTTP API: its token and its socket before anything else starts, so that a bad token
    // file or a taken port is a clear error at once.
    let http = match settings.http {
        Some(address) => {
            let auth = Auth::configure(
                settings.http_token_file.as_deref(),
                &dir,
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
            Some((listener, address, Arc::new(auth)))
        }
        None => None,
    };
    // The event stream of the API (HTTP and control socket: `watch`).
    let bus = EventBus::new(BusLimits::default());
    if http.is_some() {
        bus.keep_history();
    }
    log.publish_to(bus.clone());
    let callbacks = Arc::new(GatewayCallbacks {
        log: log.clone(),
        hub: hub_cell.clone(),
        prompt,
        auto_accept: settings.auto_accept,
        echo: settings.echo,
        replay_file: pairing_secret.is_some().then(|| dir.replay_history_path()),
        live: live.clone(),
        ask_over_http: (http.is_some() || settings.ask) && !settings.auto_accept,
        last_visible: Default::default(),
        pairing_request: pairing_request.clone(),
        pin_warnings: crate::throttle::Throttle::new(
            crate::callbacks::PIN_WARNING_INTERVAL,
            crate::callbacks::PIN_WARNINGS_PER_INTERVAL,
        ),
        trust: trust.clone(),
        command: data_dir::command_for(dir.path()),
    });
    let discovery: Option<Arc<dyn Discovery>> = if settings.mdns {
        let mut config = MdnsConfig::new(ski);
        if !settings.interfaces.is_empty() {
            check_interfaces(&settings.interfaces)?;
            config.interfaces = InterfaceSelection::Names(settings.interfaces.clone());
        }
        Some(Arc::new(
            MdnsDiscovery::new(config).map_err(|e| GatewayError::Mdns(e.to_string()))?,
        ))
    } else {
        None
    };

    let binds: Vec<SocketAddr> = match settings.bind {
        Some(ip) => vec![SocketAddr::new(ip, settings.port)],
        None => vec![
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), settings.port),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), settings.port),
        ],
    };
    // Static peers are stored before the hub starts and listens: one that dials as soon as the
    // listener is up (a first start) is trusted at once instead of refused.
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
    let mut started = None;
    for (index, bind) in binds.iter().enumerate() {
        let mut config = HubConfig::new(identity.clone(), ship_id.clone());
        config.bind = *bind;
        config.device = device.clone();
        config.discovery = discovery.clone();
        config.auto_accept = settings.auto_accept;
        config.pin_requirement = settings.pin_requirement.clone();
        config.trust_store = trust.clone();
        config.callbacks = callbacks.clone();
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
        config.pairing_service.accept = pairing_secret.clone().map(|secret| {
            let mut accept = AcceptRequests::new(secret);
            accept.replay_history = replay_history.clone();
            accept
        });
        config.pairing_service.request = requested.clone();
        match Hub::start(config).await {
            Ok(hub) => {
                started = Some(hub);
                break;
            }
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
    let Some(hub) = started else {
        return Err(GatewayError::Setting("no address to listen on".into()));
    };
    let _ = hub_cell.set(hub.clone());

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

    let started_at = std::time::Instant::now();
    let qr = qr_of(ski, &ship_id, &settings);
    let http_auth = http
        .as_ref()
        .map(|(_, address, auth)| (*address, auth.clone()));
    let http_limits = settings.http_limits;
    let mdns = settings.mdns;
    let api_state = |access: Access, conns: Option<Arc<api::conns::Conns>>| {
        Arc::new(ApiState {
            hub: hub.clone(),
            trust: trust.clone(),
            log: log.clone(),
            live: live.clone(),
            bus: bus.clone(),
            ship_id: ship_id.clone(),
            started: started_at,
            limits: http_limits,
            access,
            auth: http_auth.as_ref().map(|(_, auth)| auth.clone()),
            http: http_auth.as_ref().map(|(address, _)| *address),
            streams: Arc::new(tokio::sync::Semaphore::new(http_limits.event_streams)),
            conns,
            qr: qr.clone(),
            pairing_request: pairing_request.clone(),
            mdns,
        })
    };

    // The control socket: the API for the command line (pair, unpair, send, list, status,
    // watch, approve, deny, disconnect while running). Without it the gateway still runs; those
    // commands then fail with a clear error.
    let control_path = dir.control_path();
    let control_task = match control::bind(&control_path) {
        Ok(listener) => {
            let server = Arc::new(ControlServer {
                limits: settings.control,
                api: api::router(api_state(Access::Socket, None)),
            });
            Some(tokio::spawn(server.serve(listener)))
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
    };

    let http_task = http.map(|(listener, address, _)| {
        let conns = api::conns(&http_limits);
        (
            address,
            tokio::spawn(api::serve(listener, api_state(Access::Http, Some(conns)))),
        )
    });

    log.emit(Event::Listening {
        http: http_task.as_ref().map(|(address, _)| *address),
        address: hub.local_addr(),
        ski: ski.to_string(),
        ship_id: ship_id.to_string(),
        data_dir: dir.path().display().to_string(),
        mdns: settings.mdns,
        auto_accept: settings.auto_accept,
    });
    pairing_request.announced_at_start();

    for (peer, stored) in stored_peers {
        let hub_for_peer = hub.clone();
        // The hub already trusts it (it read the store at start); this adds the configured
        // address, which is dialled first.
        let outcome = match stored {
            Ok(Ok(new)) => tokio::task::spawn_blocking(move || {
                hub_for_peer
                    .pair_at(peer.ski, None, Some(peer.address))
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

    let signal = signals.wait().await;
    let signalled = std::time::Instant::now();
    log.emit(Event::Stopping {
        signal: signal.into(),
    });
    if let Some((_, task)) = http_task {
        task.abort();
    }
    if let Some(task) = control_task {
        task.abort();
        let _ = std::fs::remove_file(&control_path);
    }
    let report = hub.shutdown().await;
    // A PIN question on the screen turned the terminal's echo off: back on before we go.
    prompt::restore_terminal();
    log.emit(Event::Stopped {
        connections_closed_in_time: report.connections_closed_in_time,
        elapsed_ms: report.elapsed.as_millis(),
    });
    // The last lines get what is left of the shutdown deadline (at least a moment): a stdout
    // nobody reads never keeps the gateway from exiting (docs/gateway.md, "Output").
    let left = HubTimers::default()
        .shutdown_deadline
        .saturating_sub(signalled.elapsed());
    let log_for_flush = log.clone();
    let _ = tokio::task::spawn_blocking(move || {
        log_for_flush.flush(left.max(Duration::from_millis(100)))
    })
    .await;
    Ok(())
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
fn qr_of(ski: ship_hub::Ski, ship_id: &ShipId, settings: &RunSettings) -> Option<(String, String)> {
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

/// SIGINT and SIGTERM, caught from installation on.
struct Signals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Waits for either and names it.
    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "SIGINT",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}
