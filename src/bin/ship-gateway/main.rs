//! `ship-gateway`: the SHIP gateway a Raspberry Pi runs.
//!
//! Subcommands so far: `ski` (print this node's SKI, creating the identity on first use) and
//! `run` (listen for SHIP peers, log each peer's SKI and state). See `docs/gateway.md`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use ship_hub::hub::{
    Callbacks, DisconnectReason, FileTrustStore, Hub, HubConfig, PairingRequest, StateDetail,
};
use ship_hub::identity::{CertificateSubject, Identity};
use ship_hub::protocol::ConnectionState;
use ship_hub::{ShipId, Ski};

#[derive(Parser)]
#[command(
    name = "ship-gateway",
    version,
    about = "SHIP (EEBus) gateway: pairs with and stays connected to energy devices"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Commands>,
}

#[derive(Subcommand)]
enum Commands {
    /// Print this gateway's SKI (creates the identity on first use; the same SKI every later run).
    Ski {
        /// Where the identity and pairings are kept.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Run the gateway: listen for SHIP peers and keep paired peers connected.
    Run {
        /// Where the identity and pairings are kept.
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// TCP port to listen on.
        #[arg(long, default_value_t = ship_hub::hub::config::DEFAULT_PORT)]
        port: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Commands::Run {
        data_dir: None,
        port: ship_hub::hub::config::DEFAULT_PORT,
    });
    let result = match command {
        Commands::Ski { data_dir } => ski(data_dir),
        Commands::Run { data_dir, port } => run(data_dir, port),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ship-gateway: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The default data directory: `/var/lib/ship-gateway` for a system service (root), otherwise
/// `$XDG_DATA_HOME/ship-gateway` or `~/.local/share/ship-gateway`.
fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/ship-gateway");
    }
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("ship-gateway");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".local/share/ship-gateway"),
        None => PathBuf::from("ship-gateway-data"),
    }
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.uid() == 0
        })
        .unwrap_or(false)
}

fn identity(data_dir: &std::path::Path) -> Result<Identity, String> {
    let subject = CertificateSubject {
        common_name: "ship-gateway".into(),
        organization: "ship-hub".into(),
        country: "DE".into(),
    };
    Identity::load_or_create(data_dir, &subject)
        .map_err(|e| format!("identity in {}: {e}", data_dir.display()))
}

fn ski(data_dir: Option<PathBuf>) -> Result<(), String> {
    let data_dir = data_dir.unwrap_or_else(default_data_dir);
    let identity = identity(&data_dir)?;
    println!("{}", identity.ski());
    Ok(())
}

fn run(data_dir: Option<PathBuf>, port: u16) -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,ship_hub=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let data_dir = data_dir.unwrap_or_else(default_data_dir);
    let identity = identity(&data_dir)?;
    let ski = identity.ski();
    let ship_id = ShipId::new(format!("ship-gateway-{}", &ski.to_string()[..12]))
        .map_err(|e| e.to_string())?;
    let trust = FileTrustStore::open(data_dir.join("pairings.json"))
        .map_err(|e| format!("trust store: {e}"))?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| format!("tokio runtime: {e}"))?;
    runtime.block_on(async move {
        let mut config = HubConfig::new(identity, ship_id.clone());
        config.bind = std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, port));
        config.trust_store = Arc::new(trust);
        config.callbacks = Arc::new(Log);
        let hub = match Hub::start(config).await {
            Ok(hub) => hub,
            Err(_) => {
                // No IPv6 on this host: fall back to IPv4.
                let mut config = HubConfig::new(
                    Identity::load(&data_dir).map_err(|e| e.to_string())?,
                    ship_id.clone(),
                );
                config.bind = std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, port));
                config.trust_store = Arc::new(
                    FileTrustStore::open(data_dir.join("pairings.json"))
                        .map_err(|e| format!("trust store: {e}"))?,
                );
                config.callbacks = Arc::new(Log);
                Hub::start(config).await.map_err(|e| e.to_string())?
            }
        };
        println!(
            "ship-gateway: SKI {ski}, SHIP ID {ship_id}, listening on {}",
            hub.local_addr()
        );
        wait_for_signal().await;
        let report = hub.shutdown().await;
        tracing::info!(?report, "shut down");
        Ok::<(), String>(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Logs what happens to peers.
struct Log;

impl Callbacks for Log {
    fn state_changed(&self, ski: Ski, state: ConnectionState, detail: &StateDetail) {
        match &detail.error {
            Some(error) => tracing::info!(%ski, ?state, %error, "state"),
            None => tracing::info!(%ski, ?state, "state"),
        }
    }
    fn connected(&self, ski: Ski, ship_id: Option<&ShipId>) {
        tracing::info!(%ski, ship_id = ship_id.map(|s| s.as_str()), "connected");
    }
    fn disconnected(&self, ski: Ski, reason: &DisconnectReason) {
        tracing::info!(%ski, %reason, "disconnected");
    }
    fn pairing_requested(&self, request: &PairingRequest) -> bool {
        tracing::info!(ski = %request.ski, address = %request.address, "pairing requested by an unknown peer: refused (pair it with `ship-gateway pair`)");
        false
    }
    fn data_received(&self, ski: Ski, payload: &[u8]) {
        tracing::info!(%ski, bytes = payload.len(), "data");
    }
}
