//! The SHIP gateway a Raspberry Pi runs, as a library: the `ship-gateway` binary (`main.rs`) is
//! a thin command line over it.
//!
//! * [`Settings`]: everything `run` needs (the configuration file merged with the flags,
//!   checked), built and tested without a process.
//! * [`Gateway`]: a running gateway. [`Gateway::start`] opens the data directory, starts the
//!   hub, the event log, the terminal prompt, the HTTP API and the control socket;
//!   [`Gateway::stop`] stops all of it through one shutdown token.
//! * [`execute`]: the other subcommands (`ski`, `qr`, `pair`, `status`, ...).
//!
//! See `docs/gateway.md` for the manual, the configuration file, the JSON event schema and the
//! systemd unit, and `docs/architecture.md` for how the gateway is put together.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod api;
pub mod cli;
mod client;
mod commands;
mod control;
mod data_dir;
mod device;
mod discover;
mod error;
mod escape;
mod events;
mod hub_events;
mod pairing_request;
mod prompt;
mod qr;
mod run;
mod secrets;
mod serve;
mod settings;
mod status;
mod store;
mod throttle;

use std::path::PathBuf;

pub use error::GatewayError;
pub use run::{Gateway, StopReport};
pub use settings::{Settings, one_line};

use cli::{Command, PairArgs};

/// Runs one subcommand other than `run` (`ski`, `discover`, `qr`, `pair`, `unpair`, `list`,
/// `status`, `watch`, `approve`, `deny`, `disconnect`, `console`, `send`) on the data directory
/// `data_dir` (`None`: the default one), its output as JSON lines with `json`.
///
/// `run` is [`Gateway::start`] with [`Settings::resolve`]; given here it is a usage error.
pub fn execute(
    command: Command,
    data_dir: Option<PathBuf>,
    json: bool,
) -> Result<(), GatewayError> {
    match command {
        Command::Run(_) => Err(GatewayError::Usage(
            "run is started with Gateway::start (see --help)".into(),
        )),
        Command::Ski => commands::ski(data_dir, json),
        Command::Discover { seconds } => discover::discover(data_dir, seconds, json),
        Command::Qr(args) => qr::show(data_dir, *args, json),
        Command::Pair(args) if args.pairing_service => pairing_request::pair(data_dir, *args),
        Command::Pair(args) => match *args {
            PairArgs {
                qr: Some(text),
                name,
                address,
                ..
            } => qr::pair(data_dir, &text, name, address),
            PairArgs {
                ski: Some(ski),
                ship_id,
                name,
                address,
                pin,
                ..
            } => commands::pair(data_dir, ski, ship_id, name, address, pin),
            PairArgs { .. } => Err(GatewayError::Usage(
                "pair needs a SKI or --qr (see --help)".into(),
            )),
        },
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
