//! The command line (clap): subcommands and flags. See `docs/gateway.md` for the manual.
//!
//! The types are public for the `ship-gateway` binary (`main.rs`), which parses them and hands
//! them to [`crate::execute`] or, for `run`, to [`crate::Settings::resolve`].

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ship_hub::{ShipId, Ski};

/// SHIP (EEBus) gateway: pairs with and stays connected to energy devices.
#[derive(Debug, Parser)]
#[command(name = "ship-gateway", version)]
pub struct Cli {
    /// Where the identity (cert.pem, key.pem) and pairings (pairings.json) are kept.
    /// Default: /var/lib/ship-gateway as root, else $XDG_DATA_HOME/ship-gateway or
    /// ~/.local/share/ship-gateway.
    #[arg(long, value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Machine-readable output: one JSON object per line on stdout.
    #[arg(long, global = true)]
    pub json: bool,
    /// More diagnostics on stderr: -v info, -vv debug, -vvv trace. Overrides RUST_LOG.
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Only errors on stderr (the event lines on stdout are unchanged). Overrides RUST_LOG.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    /// The subcommand (`run` when none is given).
    pub command: Option<Command>,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway: listen for SHIP peers, announce over mDNS and keep paired peers connected.
    Run(Box<RunArgs>),
    /// Print this gateway's SKI (creates the identity on first use; the same SKI every later run).
    Ski,
    /// List the SHIP services visible on the LAN (mDNS), then exit.
    Discover {
        /// How long to listen for announcements.
        #[arg(long, default_value_t = 5, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=3600))]
        seconds: u64,
    },
    /// Show this gateway's SHIP installation QR code (SKI, SHIP ID, brand, type, model, serial)
    /// for an installer to scan, and its text.
    Qr(Box<QrArgs>),
    /// Trust a peer: store its SKI as paired (a running gateway dials it at once).
    Pair(Box<PairArgs>),
    /// Remove a pairing (a running gateway closes the connection and stops dialling it).
    Unpair {
        /// The peer's SKI.
        ski: Ski,
    },
    /// List paired peers with their last address and when they were last seen.
    List,
    /// The running gateway: its devices with their live state, waiting pairing requests
    /// (`--json`: one object, as `GET /api/v1/status`, `peers` and `requests`).
    Status,
    /// A live view of the running gateway (states, pairing requests, recent errors), drawn
    /// again whenever something happens; until the gateway stops or Ctrl-C.
    Watch,
    /// Approve a waiting pairing request. The running gateway lets requests wait when it asks
    /// on its terminal, serves the console (`--http`), or runs with `--ask` (`ask = true`);
    /// otherwise it refuses them at once and says how to pair the device (`pair SKI`).
    Approve {
        /// The requesting device's SKI.
        ski: Ski,
    },
    /// Deny a waiting pairing request: the device is then refused without asking until it is
    /// paired (`remember_denial_secs`).
    Deny {
        /// The requesting device's SKI.
        ski: Ski,
    },
    /// Close the connections to a peer (it stays paired and is dialled again).
    Disconnect {
        /// The peer's SKI.
        ski: Ski,
    },
    /// Print a one-time login link for the running gateway's web console (`--http`): opened
    /// within two minutes, it logs the browser in without the token.
    Console,
    /// Send one data message (a JSON SPINE payload) to a connected peer through the running
    /// gateway.
    Send {
        /// The peer's SKI.
        ski: Ski,
        /// The payload: any JSON value.
        payload: String,
    },
}

/// Flags of `run`. Every flag overrides the same setting of `--config`.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// A TOML configuration file (see docs/gateway.md for its keys).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The IP address to listen on. Default: every address ([::], or 0.0.0.0 without IPv6).
    #[arg(long, value_name = "IP")]
    pub bind: Option<IpAddr>,
    /// The TCP port to listen on (0 = any free port; the address is printed). Default 4711.
    #[arg(long, value_name = "PORT")]
    pub port: Option<u16>,
    /// Device name: the certificate's CN and the mDNS instance name.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Brand announced over mDNS (at most 32 bytes).
    #[arg(long, value_name = "BRAND")]
    pub brand: Option<String>,
    /// Model announced over mDNS (at most 32 bytes).
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Serial number announced over mDNS (at most 32 bytes).
    #[arg(long, value_name = "SERIAL")]
    pub serial: Option<String>,
    /// Device type announced over mDNS, e.g. EnergyManagementSystem (at most 32 bytes).
    #[arg(long = "type", value_name = "TYPE")]
    pub device_type: Option<String>,
    /// This gateway's SHIP ID. Default: ship-gateway-<first 12 hex digits of the SKI>.
    #[arg(long, value_name = "ID")]
    pub ship_id: Option<ShipId>,
    /// A static peer: trusted and dialled at HOST:PORT (repeatable).
    #[arg(long = "peer", value_name = "SKI@HOST:PORT")]
    pub peers: Vec<String>,
    /// Do not use mDNS (no announcement, no browsing): only static peers and incoming
    /// connections.
    #[arg(long)]
    pub no_mdns: bool,
    /// Use only this network interface for mDNS (repeatable). Default: every interface.
    #[arg(long = "interface", value_name = "NAME")]
    pub interfaces: Vec<String>,
    /// Most live connections at once (further incoming ones get HTTP 503).
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Most incoming TLS/WebSocket handshakes in progress at once.
    #[arg(long, value_name = "N")]
    pub max_handshakes: Option<usize>,
    /// After a person unpaired a device, its pairing requests are refused without asking for
    /// this many seconds (it still trusts us and redials). 0 = never. Default 600.
    #[arg(long, value_name = "SECS")]
    pub cooling_off: Option<u64>,
    /// After a person denied a device, its pairing requests are refused without asking (one
    /// line each) for this many seconds. 0 (the default) = until a person pairs it.
    #[arg(long, value_name = "SECS")]
    pub remember_denial: Option<u64>,
    /// Let pairing requests wait (up to their hello timeout) for `ship-gateway approve`/`deny`
    /// even without a terminal or `--http` (a gateway run as a service).
    #[arg(long)]
    pub ask: bool,
    /// Serve the HTTP API and the web console on this address, e.g. `127.0.0.1:4780`
    /// (docs/gateway.md, "HTTP API"). Off by default. Every request needs the token (or a
    /// session): `--http-token-file`'s, else the gateway's own in DATA_DIR/http-token.
    #[arg(long, value_name = "ADDR:PORT")]
    pub http: Option<std::net::SocketAddr>,
    /// A file holding the token (one line, at least 16 characters) that every HTTP request
    /// must carry (`Authorization: Bearer TOKEN`, or the console's login); readable by the
    /// gateway's user or group only. Default: DATA_DIR/http-token, made at the first start.
    #[arg(long, value_name = "FILE")]
    pub http_token_file: Option<std::path::PathBuf>,
    /// Most incoming TLS/WebSocket handshakes in progress at once from one source address.
    /// Default 8.
    #[arg(long, value_name = "N")]
    pub max_handshakes_per_address: Option<usize>,
    /// Most live incoming connections of peers that are not paired (pairing requests).
    /// Default 2.
    #[arg(long, value_name = "N")]
    pub max_unpaired: Option<usize>,
    /// Most live incoming connections of unpaired peers from one source address. Default 1.
    #[arg(long, value_name = "N")]
    pub max_unpaired_per_address: Option<usize>,
    /// Received data bytes of one peer that may wait unconsumed before the gateway stops
    /// reading that peer (docs/architecture.md, "Backpressure"). Default 1 MiB.
    #[arg(long, value_name = "BYTES")]
    pub max_inbound_bytes_per_peer: Option<usize>,
    /// The same for all peers together. Default 16 MiB.
    #[arg(long, value_name = "BYTES")]
    pub max_inbound_bytes_total: Option<usize>,
    /// Largest incoming SHIP message in bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_message_bytes: Option<usize>,
    /// TLS 1.2 cipher suites to offer and accept, comma-separated IANA or OpenSSL names, e.g.
    /// `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256`. Default: all four SHIP suites, preferring
    /// AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305, then AES_128_CBC (docs/tls.md).
    #[arg(long, value_name = "SUITES")]
    pub tls_suites: Option<String>,
    /// Most control-socket connections (the command line's requests to this gateway) served
    /// at once; one more is answered `503 busy` and closed. Default 16.
    #[arg(long, value_name = "N")]
    pub control_connections: Option<usize>,
    /// Seconds a control-socket client may take to start its request before it is answered
    /// `408 idle_timeout` and closed. Default 30.
    #[arg(long, value_name = "SECS")]
    pub control_idle_timeout: Option<u64>,
    /// A file holding the SHIP Pairing Service secret printed with this gateway (hex): devices
    /// that know it pair themselves over mDNS, without a `pair` command (docs/pairing.md,
    /// "The SHIP Pairing Service"). Needs mDNS. Default: the service is off.
    #[arg(long, value_name = "FILE")]
    pub pairing_secret_file: Option<std::path::PathBuf>,
    /// This gateway's PIN (8 to 16 hex digits): peers must send it before data exchange (SHIP
    /// PIN verification, docs/pairing.md). Prefer `--pin-file` (or `pin_file`): a command line
    /// is visible to other users.
    #[arg(long, value_name = "PIN")]
    pub pin: Option<String>,
    /// A file holding this gateway's PIN (8 to 16 hex digits), readable by the gateway's user or
    /// group only (a file every user can read is refused).
    #[arg(long, value_name = "FILE", conflicts_with = "pin")]
    pub pin_file: Option<std::path::PathBuf>,
    /// With --pin: data flows at once, the peer stays restricted until it sent the PIN.
    #[arg(long)]
    pub pin_optional: bool,
    /// DANGEROUS: trust every peer that connects, without asking (SHIP register=true). Anyone on
    /// the LAN can then pair with this gateway. See docs/pairing.md.
    #[arg(long)]
    pub auto_accept: bool,
    /// Never ask on the terminal: refuse every unknown peer (pair it with `ship-gateway pair`).
    #[arg(long)]
    pub no_prompt: bool,
    /// Test aid: answer every data message with the same payload.
    #[arg(long, hide = true)]
    pub echo: bool,
}

/// Flags of `pair`: a SKI (or `--qr`), and with `--pairing-service` what the SHIP Pairing
/// Service needs.
#[derive(Debug, Args, Default)]
pub struct PairArgs {
    /// The peer's SKI: 40 hex digits (spaces, '-' and ':' are ignored).
    #[arg(required_unless_present = "qr")]
    pub ski: Option<Ski>,
    /// The peer's SHIP ID, if known (a different one later closes with 4450).
    #[arg(long, value_name = "ID")]
    pub ship_id: Option<ShipId>,
    /// The text of the peer's SHIP installation QR code (`SHIP;SKI:…;ID:…;…ENDSHIP;`), as a
    /// scanner reads it: pairs its SKI and stores its SHIP ID. Instead of SKI and --ship-id.
    /// `-` reads the text from stdin (keeps a PIN out of the shell history).
    #[arg(long, value_name = "TEXT", conflicts_with_all = ["ski", "ship_id"])]
    pub qr: Option<String>,
    /// A name for the peer, shown by `list`.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Where to dial the peer (when mDNS does not find it).
    #[arg(long, value_name = "HOST:PORT")]
    pub address: Option<String>,
    /// The PIN the peer requires (8 to 16 hex digits, from its label), stored with the
    /// pairing and sent when the peer asks (SHIP PIN verification, docs/pairing.md). `-`
    /// reads it from stdin, keeping it off the command line.
    #[arg(long, value_name = "PIN")]
    pub pin: Option<String>,
    /// Ask the peer, an energy manager, to trust this gateway through the SHIP Pairing
    /// Service with the secret printed with it (this gateway is the control unit;
    /// docs/pairing.md, "ship-gateway as the control unit"). Needs its SHIP ID and its
    /// certificate's fingerprint: from --qr (ID, FPH256), or --ship-id and --fingerprint.
    #[arg(long)]
    pub pairing_service: bool,
    /// With --pairing-service: a file holding the energy manager's pairing secret (hex);
    /// `-` reads it from stdin (not echoed on a terminal). Not needed when the QR code
    /// read with `--qr -` carries it (SPSEC). Never give the secret on the command line.
    #[arg(long, value_name = "FILE", requires = "pairing_service")]
    pub secret_file: Option<PathBuf>,
    /// With --pairing-service: the SHA-256 fingerprint of the energy manager's certificate
    /// (64 hex digits), when its QR code does not carry it (FPH256).
    #[arg(long, value_name = "HEX", requires = "pairing_service")]
    pub fingerprint: Option<String>,
    /// With --pairing-service: seconds one connection must hold before the request is
    /// withdrawn for good. Default 900 (the specification's 15 minutes).
    #[arg(long, value_name = "SECS", requires = "pairing_service")]
    pub settle_after: Option<u64>,
}

/// Flags of `qr`. The device settings are those of `run` (same flags, same `--config`), so the
/// code shows what the running gateway announces.
#[derive(Debug, Args, Default)]
pub struct QrArgs {
    /// Also write the code as an SVG image to FILE (instead of drawing it on the terminal).
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Draw the dark modules as blocks: for a terminal with dark text on a light background.
    /// Default: the light modules are blocks, for light text on a dark background.
    #[arg(long)]
    pub invert: bool,
    /// The configuration file `run` uses (its [device] section fills the code).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// As for `run`: the device name (the certificate's CN when the identity is created).
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// As for `run`: BRAND (at most 32 bytes).
    #[arg(long, value_name = "BRAND")]
    pub brand: Option<String>,
    /// As for `run`: MODEL (at most 32 bytes).
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// As for `run`: SERIAL (at most 32 bytes).
    #[arg(long, value_name = "SERIAL")]
    pub serial: Option<String>,
    /// As for `run`: TYPE, e.g. EnergyManagementSystem (at most 32 bytes).
    #[arg(long = "type", value_name = "TYPE")]
    pub device_type: Option<String>,
    /// As for `run`: this gateway's SHIP ID (stored at first use, like `run` does).
    #[arg(long, value_name = "ID")]
    pub ship_id: Option<ShipId>,
}

/// A command-line error as one line: clap's first line, with the items it lists below a line
/// that ends in `:` (the missing arguments, say) brought up into it.
pub fn usage_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines
        .next()
        .unwrap_or("invalid command line")
        .trim_start_matches("error: ");
    let mut line = first.to_owned();
    if first.ends_with(':') {
        let items: Vec<&str> = lines
            .take_while(|l| l.starts_with(char::is_whitespace) && !l.trim().is_empty())
            .map(str::trim)
            .collect();
        line.push(' ');
        line.push_str(&items.join(", "));
    }
    format!("{line} (see --help)")
}
