//! ship-load: a SHIP load generator and a Hub to aim it at (loopback only).
//!
//! * `ship-load identities --dir D --count N` — generate (or reuse) N client identities in `D`
//!   and write their SKIs to `D/skis.txt`.
//! * `ship-load serve --skis D/skis.txt [--echo] [--greet]` — a Hub pre-paired with those SKIs,
//!   limits raised; prints `{"pid":…,"addr":…,"ski":…,"target":"SKI@addr"}` and runs until
//!   SIGINT/SIGTERM, then prints its final counters.
//! * `ship-load pairings --skis D/skis.txt --count N --out pairings.json` — a trust-store file
//!   pairing those SKIs (to start a `ship-gateway` or `serve --trust-file` with N pairings).
//! * `ship-load run --target SKI@127.0.0.1:PORT --count N --concurrency C …` — N clients do the
//!   full SHIP handshake (TCP, mutual TLS, WebSocket, CMI → hello → protocol → PIN → access
//!   methods) with the sans-IO `protocol::Connection` as the client, then optionally data round
//!   trips and holding the connections; prints one JSON result.
//!
//! See `docs/performance.md` for the measurements and the commands that produced them.
#![forbid(unsafe_code)]

mod client;
mod identities;
mod run;
mod serve;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "ship-load",
    about = "SHIP load generator and target (loopback only)"
)]
struct Cli {
    /// Tokio worker threads (default: one per core).
    #[arg(long, global = true)]
    workers: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate or reuse client identities and write their SKIs to DIR/skis.txt.
    Identities {
        /// Cache directory.
        #[arg(long, default_value = "target/ship-load-identities")]
        dir: PathBuf,
        /// How many.
        #[arg(long)]
        count: usize,
    },
    /// Run a Hub to measure (pre-paired SKIs, raised limits).
    Serve(serve::ServeArgs),
    /// Write a trust-store file (e.g. a gateway's pairings.json) pairing the first COUNT SKIs
    /// of a file, each with the SHIP ID `run` announces for it and a `last_seen` one day ago
    /// (as after a restart: every peer's first reconnect writes its `last_seen`).
    Pairings {
        /// File of SKIs (`skis.txt` from `identities`).
        #[arg(long)]
        skis: PathBuf,
        /// How many of them (default: all).
        #[arg(long)]
        count: Option<usize>,
        /// The file to write (must not exist yet).
        #[arg(long)]
        out: PathBuf,
    },
    /// Connect clients to a target and print one JSON result.
    Run(run::RunArgs),
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force.
fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or_else(|error| {
        eprintln!("ship-load: could not raise RLIMIT_NOFILE: {error}");
        rlimit::getrlimit(rlimit::Resource::NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(0)
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHIP_LOAD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let nofile = raise_nofile();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(workers) = cli.workers {
        builder.worker_threads(workers.max(1));
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("ship-load: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Identities { dir, count } => {
                let started = std::time::Instant::now();
                let identities =
                    identities::load_or_generate(&dir, count).map_err(|e| e.to_string())?;
                println!(
                    "{}",
                    serde_json::json!({
                        "identities": identities.len(),
                        "skis": dir.join(identities::SKIS_FILE),
                        "seconds": started.elapsed().as_secs_f64(),
                    })
                );
                Ok(())
            }
            Command::Serve(args) => serve::serve(args, nofile).await,
            Command::Pairings { skis, count, out } => serve::write_pairings(&skis, count, &out),
            Command::Run(args) => run::run(args, nofile).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ship-load: {error}");
            ExitCode::FAILURE
        }
    }
}
