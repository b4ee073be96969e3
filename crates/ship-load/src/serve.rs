//! `ship-load serve`: a Hub to aim the load at — pre-paired with the SKIs in a file, limits
//! raised, optionally echoing data and greeting each peer from its `connected` callback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::Serialize;
use ship_hub::hub::{
    Callbacks, FileTrustStore, Hub, HubConfig, MemoryTrustStore, PairedPeer, TrustStore,
};
use ship_hub::identity::{CertificateSubject, Identity};
use ship_hub::{ShipId, Ski};

use crate::identities::read_skis;

/// Options of `serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// File of SKIs to pre-pair (one per line, e.g. `skis.txt` from `ship-load identities`).
    #[arg(long)]
    skis: Option<PathBuf>,
    /// Where to listen (loopback only).
    #[arg(long, default_value = "127.0.0.1:0")]
    bind: SocketAddr,
    /// Directory of the hub's own identity (created if missing); default: a fresh one.
    #[arg(long)]
    identity: Option<PathBuf>,
    /// Connection cap (`Limits::max_connections`).
    #[arg(long, default_value_t = 20_000)]
    max_connections: usize,
    /// Handshakes in progress at once (`Limits::max_handshakes_in_progress`).
    #[arg(long, default_value_t = 512)]
    max_handshakes: usize,
    /// Keepalive ping interval in seconds (the hub's default is 50).
    #[arg(long, default_value_t = 50)]
    keepalive_secs: u64,
    /// Send every data message back to its sender.
    #[arg(long)]
    echo: bool,
    /// Send `{"greeting":true}` to each peer from the `connected` callback.
    #[arg(long)]
    greet: bool,
    /// Accept unknown peers without asking (instead of, or besides, `--skis`).
    #[arg(long)]
    auto_accept: bool,
    /// Keep pairings in this file (FileTrustStore) instead of in memory.
    #[arg(long)]
    trust_file: Option<PathBuf>,
    /// Print a metrics line to stderr this often (seconds; 0 = never).
    #[arg(long, default_value_t = 0)]
    stats_secs: u64,
    /// TLS 1.2 cipher suites to offer, comma-separated IANA or OpenSSL names (e.g.
    /// `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256`); default: all four SHIP suites.
    #[arg(long, value_name = "SUITES")]
    tls_suites: Option<String>,
}

/// What the target callbacks do.
struct ServeCallbacks {
    hub: OnceLock<Hub>,
    echo: bool,
    greet: bool,
    connected: AtomicU64,
    disconnected: AtomicU64,
    data: AtomicU64,
}

impl Callbacks for ServeCallbacks {
    fn connected(&self, ski: Ski, _ship_id: Option<&ShipId>) {
        self.connected.fetch_add(1, Ordering::Relaxed);
        if self.greet
            && let Some(hub) = self.hub.get()
            && let Err(error) = hub.send_data(ski, br#"{"greeting":true}"#)
        {
            tracing::warn!(%ski, %error, "greeting not sent");
        }
    }

    fn disconnected(&self, _ski: Ski, _reason: &ship_hub::hub::EndCause) {
        self.disconnected.fetch_add(1, Ordering::Relaxed);
    }

    fn data_received(&self, ski: Ski, payload: &[u8]) {
        self.data.fetch_add(1, Ordering::Relaxed);
        if self.echo
            && let Some(hub) = self.hub.get()
            && let Err(error) = hub.send_data(ski, payload)
        {
            tracing::debug!(%ski, %error, "echo not sent");
        }
    }
}

/// The line `serve` prints once it listens.
#[derive(Serialize)]
struct Ready {
    pid: u32,
    addr: SocketAddr,
    ski: Ski,
    /// `SKI@addr`, ready for `ship-load run --target`.
    target: String,
    paired: usize,
    nofile_limit: u64,
}

#[derive(Serialize)]
struct Stats {
    connected_peers: usize,
    callbacks_connected: u64,
    callbacks_disconnected: u64,
    data_received: u64,
    metrics: ship_hub::hub::MetricsSnapshot,
}

pub(crate) async fn serve(args: ServeArgs, nofile_limit: u64) -> Result<(), String> {
    let subject = CertificateSubject {
        common_name: "ship-load-target".into(),
        organization: "ship-load".into(),
        country: "DE".into(),
    };
    let identity = match &args.identity {
        Some(dir) => Identity::load_or_create(dir, &subject),
        None => Identity::generate(&subject),
    }
    .map_err(|e| e.to_string())?;
    let skis = match &args.skis {
        Some(path) => read_skis(path).map_err(|e| e.to_string())?,
        None => Vec::new(),
    };
    // SKIs already in the file keep their records; the others are added in one write.
    let trust: Arc<dyn TrustStore> = match &args.trust_file {
        Some(path) => {
            let store = FileTrustStore::open(path).map_err(|e| e.to_string())?;
            let stored: std::collections::BTreeSet<Ski> = store
                .load_all()
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|peer| peer.ski)
                .collect();
            store
                .upsert_many(
                    skis.iter()
                        .filter(|ski| !stored.contains(ski))
                        .map(|ski| PairedPeer::new(*ski)),
                )
                .map_err(|e| e.to_string())?;
            Arc::new(store)
        }
        None => {
            let store = MemoryTrustStore::new();
            for ski in &skis {
                store
                    .upsert(PairedPeer::new(*ski))
                    .map_err(|e| e.to_string())?;
            }
            Arc::new(store)
        }
    };
    let callbacks = Arc::new(ServeCallbacks {
        hub: OnceLock::new(),
        echo: args.echo,
        greet: args.greet,
        connected: AtomicU64::new(0),
        disconnected: AtomicU64::new(0),
        data: AtomicU64::new(0),
    });
    let mut config = HubConfig::new(
        identity,
        ShipId::new("ship-load-target").map_err(|e| e.to_string())?,
    );
    config.bind = args.bind;
    config.limits.max_connections = args.max_connections;
    config.limits.max_handshakes_in_progress = args.max_handshakes;
    // Every load client connects from loopback: one address must be allowed the whole load.
    config.limits.max_handshakes_per_address = args.max_handshakes;
    config.limits.max_unpaired_per_address = config.limits.max_unpaired_connections;
    config.timers.keepalive_interval = Duration::from_secs(args.keepalive_secs.max(1));
    config.auto_accept = args.auto_accept;
    config.tls.cipher_suites = crate::run::tls_suites(args.tls_suites.as_deref())?;
    config.trust_store = trust;
    config.callbacks = callbacks.clone();
    let hub = Hub::start(config).await.map_err(|e| e.to_string())?;
    let _ = callbacks.hub.set(hub.clone());
    let ready = Ready {
        pid: std::process::id(),
        addr: hub.local_addr(),
        ski: hub.local_ski(),
        target: format!("{}@{}", hub.local_ski(), hub.local_addr()),
        paired: skis.len(),
        nofile_limit,
    };
    println!(
        "{}",
        serde_json::to_string(&ready).map_err(|e| e.to_string())?
    );

    let stats = |hub: &Hub| Stats {
        connected_peers: hub.connected_peers().len(),
        callbacks_connected: callbacks.connected.load(Ordering::Relaxed),
        callbacks_disconnected: callbacks.disconnected.load(Ordering::Relaxed),
        data_received: callbacks.data.load(Ordering::Relaxed),
        metrics: hub.metrics(),
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    let period = Duration::from_secs(args.stats_secs.max(1));
    let mut ticker = tokio::time::interval(period);
    ticker.tick().await;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = ticker.tick(), if args.stats_secs > 0 => {
                if let Ok(line) = serde_json::to_string(&stats(&hub)) {
                    eprintln!("{line}");
                }
            }
        }
    }
    let report = hub.shutdown().await;
    if let Ok(line) = serde_json::to_string(&stats(&hub)) {
        println!("{line}");
    }
    tracing::info!(?report, "target shut down");
    Ok(())
}

/// `ship-load pairings`: writes `out` (a new [`FileTrustStore`] file) pairing the first `count`
/// SKIs of `skis`, each with the SHIP ID `run` announces for it and `last_seen` a day ago.
pub(crate) fn write_pairings(
    skis: &std::path::Path,
    count: Option<usize>,
    out: &std::path::Path,
) -> Result<(), String> {
    if out.exists() {
        return Err(format!("{} exists already", out.display()));
    }
    let skis = read_skis(skis).map_err(|e| e.to_string())?;
    let count = count.unwrap_or(skis.len()).min(skis.len());
    let day_ago = std::time::SystemTime::now() - Duration::from_secs(86_400);
    let mut peers = Vec::with_capacity(count);
    for (i, ski) in skis.iter().take(count).enumerate() {
        let mut peer = PairedPeer::new(*ski);
        peer.ship_id = Some(ShipId::new(format!("ship-load-{i}")).map_err(|e| e.to_string())?);
        peer.last_seen = Some(day_ago);
        peers.push(peer);
    }
    let started = std::time::Instant::now();
    let store = FileTrustStore::open(out).map_err(|e| e.to_string())?;
    store.upsert_many(peers).map_err(|e| e.to_string())?;
    let bytes = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    println!(
        "{}",
        serde_json::json!({
            "pairings": count,
            "file": out,
            "bytes": bytes,
            "write_seconds": started.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}
