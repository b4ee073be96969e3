//! `ship-gateway`: the SHIP gateway a Raspberry Pi runs.
//!
//! Subcommands: `run` (the gateway), `ski`, `qr`, `discover`, `pair`, `unpair`, `list`, `send`,
//! `status`, `watch`, `approve`, `deny`, `disconnect`, `console`. See `docs/gateway.md` for the manual, the configuration file, the JSON event schema and the
//! systemd unit.
//!
//! Every failure is one line on stderr (`ship-gateway: <what went wrong>`) and a non-zero exit
//! status: 2 for a command line that cannot be parsed, 1 for everything else.
#![forbid(unsafe_code)]

mod api;
mod callbacks;
mod cli;
mod client;
mod commands;
mod control;
mod data_dir;
mod discover;
mod error;
mod escape;
mod events;
mod pairing_request;
mod prompt;
mod qr;
mod run;
mod secrets;
mod settings;
mod status;
mod store;
mod throttle;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use cli::{Cli, Command};
use error::GatewayError;
use settings::{RunSettings, one_line};

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

/// A command-line error as one line: clap's first line, with the items it lists below a line
/// that ends in `:` (the missing arguments, say) brought up into it.
fn usage_line(text: &str) -> String {
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
        Command::Run(args) => run::run(RunSettings::resolve(*args, data_dir, json)?),
        Command::Ski => commands::ski(data_dir, json),
        Command::Discover { seconds } => discover::discover(data_dir, seconds, json),
        Command::Qr(args) => qr::show(data_dir, *args, json),
        Command::Pair {
            pairing_service: true,
            ski,
            ship_id,
            qr,
            name,
            address,
            pin,
            secret_file,
            fingerprint,
            settle_after,
        } => pairing_request::pair(
            data_dir,
            pairing_request::PairArgs {
                ski,
                ship_id,
                qr,
                name,
                address,
                pin,
                secret_file,
                fingerprint,
                settle_after,
            },
        ),
        Command::Pair {
            qr: Some(text),
            name,
            address,
            ..
        } => qr::pair(data_dir, &text, name, address),
        Command::Pair {
            ski: Some(ski),
            ship_id,
            name,
            address,
            qr: None,
            pin,
            ..
        } => commands::pair(data_dir, ski, ship_id, name, address, pin),
        Command::Pair { .. } => Err(GatewayError::Usage(
            "pair needs a SKI or --qr (see --help)".into(),
        )),
        Command::Unpair { ski } => commands::unpair(data_dir, ski),
        Command::List => commands::list(data_dir, json),
        Command::Status => status::status(data_dir, json),
        Command::Watch => status::watch(data_dir, json),
        Command::Approve { ski } => status::decide(data_dir, ski, true),
        Command::Deny { ski } => status::decide(data_dir, ski, false),
        Command::Disconnect { ski } => status::disconnect(data_dir, ski),
        Command::Console => status::console(data_dir, json),
        Command::Send { ski, payload } => commands::send(data_dir, ski, payload),
    }
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
