//! `ship-conformance`: plays the SHIP test tool against a SHIP endpoint over real TLS +
//! WebSocket and reports every case of the catalogue as pass / fail / not applicable.
//!
//! ```text
//! ship-conformance --identity-dir ./tool-ids --target SKI --print-skis   # what the DUT must trust
//! ship-conformance --identity-dir ./tool-ids --target SKI@192.0.2.10:4711 --listen 4712 \
//!     --ship-id Demo-EVSE-1 --queries-access-methods --json > report.json
//! ```
//!
//! The device under test must trust every SKI printed (it pairs with the tool's identities), and
//! for `--listen` it must dial the `listener` identity at this host's port. Exit code: 0 when no
//! case failed (with `--strict`: and none deviated), 1 otherwise, 2 for a usage error.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use ship_conformance::identities::LISTENER;
use ship_conformance::{Declarations, Target, ToolConfig, ToolIdentities, run};
use ship_hub::{ShipId, Ski};

/// The SHIP conformance tester (TC_SHIP_* over the network).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The DUT to dial: SKI@HOST:PORT[/path] (path defaults to /ship/). A bare SKI only tells the
    /// tool the DUT's SKI (for --print-skis).
    #[arg(long)]
    target: Option<String>,
    /// Listen for the DUT's dials on PORT (all interfaces) or IP:PORT.
    #[arg(long)]
    listen: Option<String>,
    /// Keep the tool's identities here (created on first use), so the DUT trusts them once.
    #[arg(long)]
    identity_dir: Option<PathBuf>,
    /// Print the SKIs the DUT must trust on stdout, one `SKI NAME` per line, and exit.
    #[arg(long)]
    print_skis: bool,
    /// Use one tool identity (`listener`) for every case, one case at a time: for a DUT that
    /// trusts exactly one remote SKI and takes one connection at a time. Cases that need two
    /// identities are not applicable; TC_SHIP_TERM_001 runs last.
    #[arg(long)]
    single_identity: bool,
    /// Seconds to pause after each case before the next (lets a DUT that closes slowly finish).
    /// Default: 0, or 2 with --single-identity.
    #[arg(long, value_name = "SECONDS")]
    case_gap: Option<f64>,
    /// The SHIP version the tool offers in the protocol handshake: 1.1 (default, as a SHIP 1.1
    /// device) or 1.0.
    #[arg(long, value_name = "VERSION", default_value = "1.1")]
    ship_version: String,
    /// Exit code 1 also when a case deviated (e.g. SEC_001/002: TLS completed with a forged
    /// certificate, the peer refused afterwards).
    #[arg(long)]
    strict: bool,
    /// Run only the cases whose ID contains one of these comma-separated substrings.
    #[arg(long, default_value = "")]
    only: String,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the table into the generated section of this Markdown file
    /// (docs/conformance.md).
    #[arg(long)]
    report_markdown: Option<PathBuf>,
    /// Declared: the DUT's SHIP ID (AM_001 compares the accessMethods id with it).
    #[arg(long)]
    ship_id: Option<String>,
    /// Declared: the DUT answers SPINE reads (AMDATA_001/002 then require the SPINE replies).
    #[arg(long)]
    answers_spine: bool,
    /// Declared: PAR_queryAccessMethods=yes (the DUT sends its own accessMethodsRequest).
    #[arg(long)]
    queries_access_methods: bool,
    /// Declared: PAR_clientDetailedDiscoverySupported=yes (AMDATA_003).
    #[arg(long)]
    client_detailed_discovery: bool,
    /// Declared: PAR_initiateClose=yes. A shell command that makes the DUT revoke its trust in
    /// the SKI given in $SHIP_SKI (TC_SHIP_TERM_001).
    #[arg(long)]
    revoke_command: Option<String>,
    /// Declared: the DUT requires this PIN (8-16 hex digits) from its peers (EXT_PIN_001/002).
    /// Without the flag, SHIP_CONFORMANCE_DUT_PIN in the environment is used (preferable: a
    /// command line is visible to other users).
    #[arg(long)]
    dut_pin: Option<String>,
    /// Declared: the DUT was given this PIN for the tool, which then requires it (EXT_PIN_003).
    /// Without the flag, SHIP_CONFORMANCE_TOOL_PIN in the environment is used.
    #[arg(long)]
    tool_pin: Option<String>,
    /// How many dialling cases run at once (each holds one connection to the DUT).
    #[arg(long, default_value_t = 6)]
    parallel: usize,
    /// Browse mDNS for TC_SHIP_MDNS_001. Only inside a private network namespace.
    #[arg(long)]
    mdns: bool,
}

fn fail(message: String) -> ExitCode {
    eprintln!("ship-conformance: {message}");
    ExitCode::from(2)
}

fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    text.parse()
        .map_err(|_| format!("--listen {text:?}: expected PORT or IP:PORT"))
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();

    let (target, dut_ski) = match args.target.as_deref() {
        None => (None, None),
        Some(text) if !text.contains('@') => match text.parse::<Ski>() {
            Ok(ski) => (None, Some(ski)),
            Err(e) => return fail(format!("--target {text:?}: {e}")),
        },
        Some(text) => match text.parse::<Target>() {
            Ok(target) => {
                let ski = target.ski;
                (Some(target), Some(ski))
            }
            Err(e) => return fail(format!("--target: {e}")),
        },
    };
    let identities = match &args.identity_dir {
        Some(dir) => ToolIdentities::load_or_create(dir, dut_ski),
        None => ToolIdentities::generate(dut_ski),
    };
    let identities = match identities {
        Ok(identities) if args.single_identity => identities.single(),
        Ok(identities) => identities,
        Err(e) => return fail(format!("tool identities: {e}")),
    };
    let ship_version = match ship_conformance::parse_ship_version(&args.ship_version) {
        Ok(version) => version,
        Err(e) => return fail(format!("--ship-version: {e}")),
    };
    let case_gap = match args.case_gap {
        None => None,
        Some(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => {
            Some(std::time::Duration::from_secs_f64(s))
        }
        Some(s) => return fail(format!("--case-gap {s}: expected 0 to 3600 seconds")),
    };
    if args.print_skis {
        // Machine-readable: one `SKI NAME` per line.
        for (name, ski) in identities.trusted() {
            println!("{ski} {name}");
        }
        return ExitCode::SUCCESS;
    }
    eprintln!("The DUT must trust these tool SKIs:");
    for (name, ski) in identities.trusted() {
        let note = if name == LISTENER {
            " (dialled by the DUT for --listen; smaller than the DUT's SKI)"
        } else {
            ""
        };
        eprintln!("  {ski}  {name}{note}");
    }

    let listener = match args.listen.as_deref().map(listen_addr) {
        None => None,
        Some(Err(e)) => return fail(e),
        Some(Ok(addr)) => match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => Some(listener),
            Err(e) => return fail(format!("cannot listen on {addr}: {e}")),
        },
    };
    let mut declarations = Declarations::default();
    if let Some(id) = &args.ship_id {
        match ShipId::new(id.clone()) {
            Ok(id) => declarations.ship_id = Some(id),
            Err(e) => return fail(format!("--ship-id: {e}")),
        }
    }
    let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let dut_pin = args
        .dut_pin
        .clone()
        .or_else(|| from_env("SHIP_CONFORMANCE_DUT_PIN"));
    let tool_pin = args
        .tool_pin
        .clone()
        .or_else(|| from_env("SHIP_CONFORMANCE_TOOL_PIN"));
    for (flag, text, slot) in [
        ("--dut-pin", &dut_pin, &mut declarations.dut_pin),
        ("--tool-pin", &tool_pin, &mut declarations.tool_pin),
    ] {
        if let Some(text) = text {
            match text.parse() {
                Ok(pin) => *slot = Some(pin),
                Err(e) => return fail(format!("{flag}: {e}")),
            }
        }
    }
    declarations.answers_spine = args.answers_spine;
    declarations.queries_access_methods = args.queries_access_methods;
    declarations.client_detailed_discovery = args.client_detailed_discovery;
    if let Some(command) = args.revoke_command.clone() {
        declarations.revoke_trust = Some(Arc::new(move |ski: Ski| {
            // Its output goes to stderr: stdout is the report's.
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(&command)
                .env("SHIP_SKI", ski.to_string())
                .stdin(std::process::Stdio::null())
                .stdout(std::io::stderr())
                .status();
            if !matches!(status, Ok(s) if s.success()) {
                tracing::warn!(?status, "--revoke-command failed");
            }
        }));
    }

    let mut config = ToolConfig::new(identities);
    config.target = target;
    config.listener = listener;
    config.only = args.only.clone();
    config.declarations = declarations;
    config.parallel = args.parallel;
    config.mdns = args.mdns;
    config.ship_version = ship_version;
    config.single_identity = args.single_identity;
    config.case_gap = case_gap;
    let report = run(config).await;

    if args.json {
        println!("{}", report.to_json());
    } else {
        println!("{}", report.to_markdown());
    }
    if let Some(path) = &args.report_markdown
        && let Err(e) = report.write_into_markdown(path)
    {
        return fail(format!("writing {}: {e}", path.display()));
    }
    let passed = if args.strict {
        report.passed_strictly()
    } else {
        report.passed()
    };
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
