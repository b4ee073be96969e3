//! `ship-gateway`: the SHIP gateway a Raspberry Pi runs.
//!
//! Subcommands: `run` (the gateway), `ski`, `qr`, `discover`, `pair`, `unpair`, `list`, `send`,
//! `status`, `watch`, `approve`, `deny`, `disconnect`, `console`. See `docs/gateway.md` for the manual, the configuration file, the JSON event schema and the
//! systemd unit.
//!
//! Every failure is one line on stderr (`ship-gateway: <what went wrong>`) and a non-zero exit
//! status: 2 for a command line that cannot be parsed, 1 for everything else.
#![forbid(unsafe_code)]

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use ship_gateway::cli::{Cli, Command, usage_line};
use ship_gateway::{Gateway, GatewayError, Settings, one_line};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => match error.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => error.exit(),
            _ => return fail(&GatewayError::Usage(usage_line(&error.to_string()))),
        },
    };
    match execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail(&error),
    }
}

fn fail(error: &GatewayError) -> ExitCode {
    eprintln!("ship-gateway: {}", one_line(&error.to_string()));
    ExitCode::from(error.exit_code())
}

fn execute(cli: Cli) -> Result<(), GatewayError> {
    let Cli {
        data_dir,
        json,
        verbose,
        quiet,
        command,
    } = cli;
    init_logging(verbose, quiet);
    match command.unwrap_or_else(|| Command::Run(Box::default())) {
        Command::Run(args) => run(Settings::resolve(*args, data_dir, json)?),
        command => ship_gateway::execute(command, data_dir, json),
    }
}

/// `run`: starts the gateway and stops it at SIGINT or SIGTERM.
fn run(settings: Settings) -> Result<(), GatewayError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|source| GatewayError::Io {
            what: "starting the tokio runtime".into(),
            source,
        })?;
    runtime.block_on(async {
        // Before anything is announced: a signal that arrives once `listening` is out must
        // start the phased shutdown, not kill the process.
        let signals = Signals::install().map_err(|source| GatewayError::Io {
            what: "installing the SIGINT/SIGTERM handlers".into(),
            source,
        })?;
        let gateway = Gateway::start(settings).await?;
        let signal = signals.wait().await;
        gateway.stop(signal).await;
        Ok(())
    })
}

/// Diagnostics (the library's `tracing` output) on stderr. The level: `-q` errors only, `-v` info,
/// `-vv` debug, `-vvv` trace; without either flag `RUST_LOG` (e.g. `ship_hub=debug`), else
/// warnings. Colour only when stderr is a terminal (and `NO_COLOR` is unset), so a log file or
/// the journal never gets escape codes.
fn init_logging(verbose: u8, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => Some("error"),
        (false, 0) => None,
        (false, 1) => Some("info"),
        (false, 2) => Some("debug"),
        (false, _) => Some("trace"),
    };
    let filter = match level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
    };
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .try_init();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn usage_error(args: &[&str]) -> String {
        let error = Cli::try_parse_from(args).expect_err("a usage error");
        usage_line(&error.to_string())
    }

    #[test]
    fn a_missing_argument_is_named_in_the_one_line_error() {
        assert_eq!(
            usage_error(&["ship-gateway", "pair"]),
            "the following required arguments were not provided: <SKI> (see --help)"
        );
    }

    #[test]
    fn a_one_line_clap_error_is_kept_as_it_is() {
        let line = usage_error(&["ship-gateway", "pair", "--frobnicate"]);
        assert!(
            line.starts_with("unexpected argument '--frobnicate' found")
                && line.ends_with(" (see --help)"),
            "{line}"
        );
        assert_eq!(line.lines().count(), 1);
    }
}
