//! `run`'s settings: the TOML file (`--config`) merged with the flags (a flag wins).
//!
//! ```toml
//! data_dir = "/var/lib/ship-gateway"
//! bind = "0.0.0.0"
//! port = 4711
//! mdns = true
//! interfaces = ["eth0"]
//! auto_accept = false
//! json = false
//! prompt = true
//! peers = []   # "SKI@HOST:PORT"; stored as a pairing at the first start
//! ask = false   # pairing requests wait for `approve`/`deny` without a terminal
//! cooling_off_secs = 600   # a device unpaired is refused without asking this long
//! remember_denial_secs = 0   # a device denied is refused without asking this long; 0 = until paired
//! http = "127.0.0.1:4780"   # the HTTP API and console; off when absent
//! http_token_file = "/etc/ship-gateway/http-token"   # required unless `http` is loopback
//! tls_suites = ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"]
//! pairing_secret_file = "/etc/ship-gateway/pairing-secret"
//! pin_file = "/etc/ship-gateway/pin"   # this gateway's PIN (8-16 hex digits), mode 0640
//! pin = ""             # the same inline: only in a file no other user can read; "" = none
//! pin_optional = false # with a PIN: data flows at once, the peer is restricted until it sends it
//!
//! [device]
//! name = "ship-gateway"
//! brand = "ship-hub"
//! model = "gateway"
//! serial = "0001"
//! type = "EnergyManagementSystem"
//! ship_id = "ship-gateway-0001"
//!
//! [limits]
//! max_connections = 10
//! max_handshakes = 32
//! max_handshakes_per_address = 8
//! max_unpaired = 2
//! max_unpaired_per_address = 1
//! max_inbound_bytes_per_peer = 1048576
//! max_inbound_bytes_total = 16777216
//! max_message_bytes = 102400
//! control_connections = 16
//! control_idle_timeout_secs = 30
//! http_connections = 64
//! http_untrusted_connections = 16
//! http_untrusted_per_address = 8
//! http_header_timeout_secs = 10
//! http_body_timeout_secs = 10
//! http_event_streams = 8
//! http_session_secs = 43200
//! http_login_link_secs = 120
//! http_free_failures = 5
//! http_failure_delay_max_secs = 60
//! ```

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use ship_hub::hub::config::Limits;
use ship_hub::protocol::{Pin, PinRequirement};
use ship_hub::transport::{TlsSuite, parse_tls_suites};
use ship_hub::{ShipId, Ski};

use crate::api::HttpLimits;
use crate::api::attempts::AttemptLimits;
use crate::api::auth::AuthLimits;
use crate::cli::RunArgs;
use crate::control::{ControlLimits, DEFAULT_CONTROL_CONNECTIONS, DEFAULT_CONTROL_IDLE_TIMEOUT};
use crate::error::GatewayError;

/// Default of `cooling_off_secs`: ten minutes of quiet after an unpair or a deny.
pub(crate) const DEFAULT_COOLING_OFF_SECS: u64 = 600;

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    bind: Option<IpAddr>,
    port: Option<u16>,
    mdns: Option<bool>,
    #[serde(default)]
    interfaces: Vec<String>,
    auto_accept: Option<bool>,
    json: Option<bool>,
    prompt: Option<bool>,
    #[serde(default)]
    peers: Vec<String>,
    tls_suites: Option<Vec<String>>,
    pairing_secret_file: Option<PathBuf>,
    pin: Option<String>,
    pin_file: Option<PathBuf>,
    pin_optional: Option<bool>,
    http: Option<SocketAddr>,
    http_token_file: Option<PathBuf>,
    ask: Option<bool>,
    cooling_off_secs: Option<u64>,
    remember_denial_secs: Option<u64>,
    #[serde(default)]
    device: DeviceSection,
    #[serde(default)]
    limits: LimitsSection,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceSection {
    name: Option<String>,
    brand: Option<String>,
    model: Option<String>,
    serial: Option<String>,
    #[serde(rename = "type")]
    device_type: Option<String>,
    ship_id: Option<ShipId>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_connections: Option<usize>,
    max_handshakes: Option<usize>,
    max_handshakes_per_address: Option<usize>,
    max_unpaired: Option<usize>,
    max_unpaired_per_address: Option<usize>,
    max_inbound_bytes_per_peer: Option<usize>,
    max_inbound_bytes_total: Option<usize>,
    max_message_bytes: Option<usize>,
    control_connections: Option<usize>,
    control_idle_timeout_secs: Option<u64>,
    http_connections: Option<usize>,
    http_untrusted_connections: Option<usize>,
    http_untrusted_per_address: Option<usize>,
    http_header_timeout_secs: Option<u64>,
    http_body_timeout_secs: Option<u64>,
    http_event_streams: Option<usize>,
    http_session_secs: Option<u64>,
    http_login_link_secs: Option<u64>,
    http_free_failures: Option<u32>,
    http_failure_delay_max_secs: Option<u64>,
}

/// A peer given on the command line or in the file: trusted and dialled at `address`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StaticPeer {
    pub(crate) ski: Ski,
    pub(crate) address: SocketAddr,
}

/// The hub's admission limits and inbound data budgets (`ship_hub::hub::config::Limits`), each
/// `None` when neither the flag nor the file sets it (the library's default applies).
#[derive(Debug, Clone, Default)]
pub(crate) struct Admission {
    pub(crate) max_handshakes_per_address: Option<usize>,
    pub(crate) max_unpaired: Option<usize>,
    pub(crate) max_unpaired_per_address: Option<usize>,
    pub(crate) max_inbound_bytes_per_peer: Option<usize>,
    pub(crate) max_inbound_bytes_total: Option<usize>,
}

impl Admission {
    /// Sets what was configured in `limits`, keeping the library's default for the rest.
    pub(crate) fn apply(&self, limits: &mut Limits) {
        let set = |field: &mut usize, value: Option<usize>| {
            if let Some(n) = value {
                *field = n;
            }
        };
        set(
            &mut limits.max_handshakes_per_address,
            self.max_handshakes_per_address,
        );
        set(&mut limits.max_unpaired_connections, self.max_unpaired);
        set(
            &mut limits.max_unpaired_per_address,
            self.max_unpaired_per_address,
        );
        set(
            &mut limits.max_inbound_bytes_per_peer,
            self.max_inbound_bytes_per_peer,
        );
        set(
            &mut limits.max_inbound_bytes_total,
            self.max_inbound_bytes_total,
        );
    }
}

/// What the device announces and writes into its certificate.
#[derive(Debug, Clone)]
pub(crate) struct Device {
    /// The mDNS instance name and certificate CN; `None` = a name unique on the LAN derived from
    /// the model and the SKI (CN `ship-gateway`).
    pub(crate) name: Option<String>,
    pub(crate) brand: String,
    pub(crate) model: String,
    pub(crate) serial: Option<String>,
    pub(crate) device_type: String,
    pub(crate) ship_id: Option<ShipId>,
}

/// Everything `run` needs, resolved: the configuration file merged with the flags, checked.
/// Build it with [`Settings::from_command_line`] or [`Settings::resolve`]; start a gateway with
/// it with [`crate::Gateway::start`].
#[derive(Debug, Clone)]
pub struct Settings {
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) bind: Option<IpAddr>,
    pub(crate) port: u16,
    pub(crate) mdns: bool,
    pub(crate) interfaces: Vec<String>,
    pub(crate) auto_accept: bool,
    pub(crate) json: bool,
    pub(crate) prompt: bool,
    pub(crate) echo: bool,
    pub(crate) peers: Vec<StaticPeer>,
    pub(crate) device: Device,
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_handshakes: Option<usize>,
    /// The hub's admission limits and inbound budgets (`None` = the library's default).
    pub(crate) admission: Admission,
    pub(crate) max_message_bytes: Option<usize>,
    /// The TLS 1.2 cipher suites to offer; `None` = every suite (the library's default).
    pub(crate) tls_suites: Option<Vec<TlsSuite>>,
    /// The control socket's limits (connections at once, idle timeout).
    pub(crate) control: ControlLimits,
    /// The file with the SHIP Pairing Service secret; `None` = the service is off.
    pub(crate) pairing_secret_file: Option<PathBuf>,
    /// This gateway's PIN requirement (SHIP §13.4.4.3). Redacted in `Debug`.
    pub(crate) pin_requirement: PinRequirement,
    /// Where to serve the HTTP API (`None`: not served).
    pub(crate) http: Option<SocketAddr>,
    /// The token file of the HTTP API (`None`: the gateway's own, in the data dir).
    pub(crate) http_token_file: Option<PathBuf>,
    /// The HTTP server's connection slots, deadlines and event streams.
    pub(crate) http_limits: HttpLimits,
    /// Sessions, login links and the delay of failed attempts.
    pub(crate) auth_limits: AuthLimits,
    /// Warnings to log at the start (a secret given on the command line).
    pub(crate) warnings: Vec<String>,
    /// Pairing requests wait for `approve`/`deny` without a terminal.
    pub(crate) ask: bool,
    /// How long a device a person unpaired is refused without asking.
    pub(crate) cooling_off: Duration,
    /// How long a device a person denied is refused without asking (`None`: until a person
    /// pairs it).
    pub(crate) remember_denial: Option<Duration>,
}

impl Settings {
    /// The settings of `ship-gateway run ARGS…`: `args` are what follows `run` on the command
    /// line (its flags, and the global `--data-dir` and `--json`), e.g.
    /// `["--data-dir", "/tmp/gw", "--no-mdns", "--port", "0"]`. The configuration file named by
    /// `--config` is read and the flags applied over it, as [`Settings::resolve`] does; a
    /// command line that cannot be parsed is [`GatewayError::Usage`].
    pub fn from_command_line<I, T>(args: I) -> Result<Settings, GatewayError>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::Parser;
        let argv = ["ship-gateway".into(), "run".into()]
            .into_iter()
            .chain(args.into_iter().map(Into::into));
        let cli = crate::cli::Cli::try_parse_from(argv)
            .map_err(|error| GatewayError::Usage(crate::cli::usage_line(&error.to_string())))?;
        match cli.command {
            Some(crate::cli::Command::Run(args)) => {
                Settings::resolve(*args, cli.data_dir, cli.json)
            }
            _ => Err(GatewayError::Usage(
                "not the flags of `run` (see --help)".into(),
            )),
        }
    }

    /// The data directory (`None`: the default one, [`Settings::resolve`] leaves it to the
    /// gateway).
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data_dir.as_deref()
    }

    /// The SHIP port (0: one the system picks).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the SHIP listener binds (`None`: every address, IPv6 and IPv4).
    pub fn bind(&self) -> Option<IpAddr> {
        self.bind
    }

    /// Whether mDNS (announcing and discovery) is on.
    pub fn mdns(&self) -> bool {
        self.mdns
    }

    /// Where the HTTP API is served (`None`: it is not).
    pub fn http(&self) -> Option<SocketAddr> {
        self.http
    }

    /// Whether the events are JSON lines (else text for people).
    pub fn json(&self) -> bool {
        self.json
    }

    /// Reads `--config` (if given) and applies the flags over it.
    pub fn resolve(
        args: RunArgs,
        data_dir: Option<PathBuf>,
        json: bool,
    ) -> Result<Settings, GatewayError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut peers = Vec::new();
        for text in file.peers.iter().chain(args.peers.iter()) {
            let peer = parse_peer(text)?;
            if !peers.contains(&peer) {
                peers.push(peer);
            }
        }
        let limit = |flag: Option<usize>, file: Option<usize>, name: &str| match flag.or(file) {
            Some(0) => Err(GatewayError::Setting(format!("{name} must be at least 1"))),
            other => Ok(other),
        };
        let tls_suites = match (&args.tls_suites, &file.tls_suites) {
            (Some(flag), _) => Some(flag.clone()),
            (None, Some(list)) => Some(list.join(",")),
            (None, None) => None,
        }
        .map(|text| match parse_tls_suites(&text) {
            Ok(suites) if suites.is_empty() => Err(GatewayError::Setting(
                "tls_suites must name at least one suite".into(),
            )),
            Ok(suites) => Ok(suites),
            Err(e) => Err(GatewayError::Setting(e.to_string())),
        })
        .transpose()?;
        let mut warnings = Vec::new();
        let pin_file = args.pin_file.as_ref().or(file.pin_file.as_ref());
        let inline_pin = file.pin.as_deref().filter(|p| !p.is_empty());
        if let (Some(config), Some(_)) = (&args.config, inline_pin) {
            refuse_a_readable_pin(config)?;
        }
        let pin_text = match (args.pin.as_deref(), pin_file, inline_pin) {
            (Some(_), Some(_), _) | (_, Some(_), Some(_)) => {
                return Err(GatewayError::Setting(
                    "give the PIN once: pin_file, or pin (--pin), not both".into(),
                ));
            }
            (Some(text), None, _) => {
                if !text.is_empty() {
                    warnings.push(
                        "the PIN given with --pin can be read by every user of this machine (in the process \
                         list): keep it in pin_file instead (docs/gateway.md, \"Secrets\")"
                            .to_owned(),
                    );
                }
                Some(text.to_owned())
            }
            (None, Some(path), _) => {
                let text = crate::secrets::read(path, "pin_file")?;
                if text.trim().is_empty() {
                    return Err(GatewayError::Setting(format!(
                        "pin_file {} is empty: write the PIN (8 to 16 hex digits) into it, or \
                         remove the pin_file setting",
                        path.display()
                    )));
                }
                Some(text.trim().to_owned())
            }
            (None, None, inline) => inline.map(str::to_owned),
        };
        let pin = match pin_text.as_deref() {
            None | Some("") => None,
            // The error never repeats the text (it is a secret).
            Some(text) => {
                Some(Pin::new(text).map_err(|e| GatewayError::Setting(format!("pin: {e}")))?)
            }
        };
        let secs = |value: Option<u64>, default: u64, name: &str| match value {
            Some(0) => Err(GatewayError::Setting(format!(
                "{name} must be at least 1 second"
            ))),
            other => Ok(Duration::from_secs(other.unwrap_or(default))),
        };
        let http_defaults = HttpLimits::default();
        let http_limits = HttpLimits {
            max_connections: limit(None, file.limits.http_connections, "http_connections")?
                .unwrap_or(http_defaults.max_connections),
            untrusted_connections: limit(
                None,
                file.limits.http_untrusted_connections,
                "http_untrusted_connections",
            )?
            .unwrap_or(http_defaults.untrusted_connections),
            untrusted_per_address: limit(
                None,
                file.limits.http_untrusted_per_address,
                "http_untrusted_per_address",
            )?
            .unwrap_or(http_defaults.untrusted_per_address),
            header_timeout: secs(
                file.limits.http_header_timeout_secs,
                http_defaults.header_timeout.as_secs(),
                "http_header_timeout_secs",
            )?,
            max_body: http_defaults.max_body,
            body_timeout: secs(
                file.limits.http_body_timeout_secs,
                http_defaults.body_timeout.as_secs(),
                "http_body_timeout_secs",
            )?,
            event_streams: limit(None, file.limits.http_event_streams, "http_event_streams")?
                .unwrap_or(http_defaults.event_streams),
        };
        if http_limits.untrusted_connections >= http_limits.max_connections {
            return Err(GatewayError::Setting(format!(
                "http_untrusted_connections ({}) must be less than http_connections ({}): the \
                 rest is kept for requests with a valid token or session",
                http_limits.untrusted_connections, http_limits.max_connections
            )));
        }
        let auth_defaults = AuthLimits::default();
        let auth_limits = AuthLimits {
            session: secs(
                file.limits.http_session_secs,
                auth_defaults.session.as_secs(),
                "http_session_secs",
            )?,
            link: secs(
                file.limits.http_login_link_secs,
                auth_defaults.link.as_secs(),
                "http_login_link_secs",
            )?,
            attempts: AttemptLimits {
                free: file
                    .limits
                    .http_free_failures
                    .unwrap_or(auth_defaults.attempts.free),
                max_delay: secs(
                    file.limits.http_failure_delay_max_secs,
                    auth_defaults.attempts.max_delay.as_secs(),
                    "http_failure_delay_max_secs",
                )?,
            },
        };
        let pin_optional = args.pin_optional || file.pin_optional.unwrap_or(false);
        let pin_requirement = match pin {
            None if pin_optional => {
                return Err(GatewayError::Setting(
                    "pin_optional needs a pin (8 to 16 hex digits)".into(),
                ));
            }
            None => PinRequirement::None,
            Some(pin) if pin_optional => PinRequirement::Optional(pin),
            Some(pin) => PinRequirement::Required(pin),
        };
        Ok(Settings {
            pin_requirement,
            http_limits,
            auth_limits,
            warnings,
            data_dir: data_dir.or(file.data_dir),
            bind: args.bind.or(file.bind),
            port: args
                .port
                .or(file.port)
                .unwrap_or(ship_hub::hub::config::DEFAULT_PORT),
            mdns: !args.no_mdns && file.mdns.unwrap_or(true),
            interfaces: if args.interfaces.is_empty() {
                file.interfaces
            } else {
                args.interfaces
            },
            auto_accept: args.auto_accept || file.auto_accept.unwrap_or(false),
            json: json || file.json.unwrap_or(false),
            prompt: !args.no_prompt && file.prompt.unwrap_or(true),
            echo: args.echo,
            peers,
            device: Device {
                name: args.name.or(file.device.name),
                brand: args
                    .brand
                    .or(file.device.brand)
                    .unwrap_or_else(|| "ship-hub".into()),
                model: args
                    .model
                    .or(file.device.model)
                    .unwrap_or_else(|| "ship-gateway".into()),
                serial: args.serial.or(file.device.serial),
                device_type: args
                    .device_type
                    .or(file.device.device_type)
                    .unwrap_or_else(|| "EnergyManagementSystem".into()),
                ship_id: args.ship_id.or(file.device.ship_id),
            },
            max_connections: limit(
                args.max_connections,
                file.limits.max_connections,
                "max_connections",
            )?,
            max_handshakes: limit(
                args.max_handshakes,
                file.limits.max_handshakes,
                "max_handshakes",
            )?,
            admission: Admission {
                max_handshakes_per_address: limit(
                    args.max_handshakes_per_address,
                    file.limits.max_handshakes_per_address,
                    "max_handshakes_per_address",
                )?,
                max_unpaired: limit(args.max_unpaired, file.limits.max_unpaired, "max_unpaired")?,
                max_unpaired_per_address: limit(
                    args.max_unpaired_per_address,
                    file.limits.max_unpaired_per_address,
                    "max_unpaired_per_address",
                )?,
                max_inbound_bytes_per_peer: limit(
                    args.max_inbound_bytes_per_peer,
                    file.limits.max_inbound_bytes_per_peer,
                    "max_inbound_bytes_per_peer",
                )?,
                max_inbound_bytes_total: limit(
                    args.max_inbound_bytes_total,
                    file.limits.max_inbound_bytes_total,
                    "max_inbound_bytes_total",
                )?,
            },
            max_message_bytes: limit(
                args.max_message_bytes,
                file.limits.max_message_bytes,
                "max_message_bytes",
            )?,
            tls_suites,
            pairing_secret_file: args.pairing_secret_file.or(file.pairing_secret_file),
            http: args.http.or(file.http),
            http_token_file: args.http_token_file.or(file.http_token_file),
            ask: args.ask || file.ask.unwrap_or(false),
            cooling_off: Duration::from_secs(
                args.cooling_off
                    .or(file.cooling_off_secs)
                    .unwrap_or(DEFAULT_COOLING_OFF_SECS),
            ),
            remember_denial: match args.remember_denial.or(file.remember_denial_secs) {
                None | Some(0) => None,
                Some(secs) => Some(Duration::from_secs(secs)),
            },
            control: ControlLimits {
                max_connections: limit(
                    args.control_connections,
                    file.limits.control_connections,
                    "control_connections",
                )?
                .unwrap_or(DEFAULT_CONTROL_CONNECTIONS),
                idle_timeout: match args
                    .control_idle_timeout
                    .or(file.limits.control_idle_timeout_secs)
                {
                    Some(0) => {
                        return Err(GatewayError::Setting(
                            "control_idle_timeout must be at least 1 second".into(),
                        ));
                    }
                    Some(secs) => Duration::from_secs(secs),
                    None => DEFAULT_CONTROL_IDLE_TIMEOUT,
                },
            },
        })
    }
}

/// Refuses a configuration file with an inline `pin` that every user may read (the packaged one
/// is mode 0644: a PIN belongs in `pin_file`).
fn refuse_a_readable_pin(path: &std::path::Path) -> Result<(), GatewayError> {
    use std::os::unix::fs::MetadataExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| GatewayError::Config {
            path: path.to_owned(),
            reason: e.to_string(),
        })?
        .mode()
        & 0o7777;
    if mode & 0o004 == 0 {
        return Ok(());
    }
    Err(GatewayError::Config {
        path: path.to_owned(),
        reason: format!(
            "holds a pin and every user can read it (mode {mode:o}): put the PIN into a file \
             only the service can read and name it with pin_file (docs/gateway.md, \"Secrets\"), \
             or `chmod o-r {}`",
            path.display()
        ),
    })
}

fn read_file(path: &PathBuf) -> Result<FileConfig, GatewayError> {
    let error = |reason: String| GatewayError::Config {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    toml::from_str(&text).map_err(|e| error(one_line(&e.to_string())))
}

/// Joins a multi-line message (toml shows the offending line under the message) into one line.
pub fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses `SKI@HOST:PORT`.
pub(crate) fn parse_peer(text: &str) -> Result<StaticPeer, GatewayError> {
    let bad = |reason: String| GatewayError::Setting(format!("invalid peer {text:?}: {reason}"));
    let (ski, address) = text
        .split_once('@')
        .ok_or_else(|| bad("expected SKI@HOST:PORT".into()))?;
    let ski: Ski = ski.parse().map_err(|e| bad(format!("{e}")))?;
    let address = resolve_address(address).map_err(bad)?;
    Ok(StaticPeer { ski, address })
}

/// Resolves `HOST:PORT` (an IP address or a name) to the first address found.
pub(crate) fn resolve_address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    let mut found = text
        .to_socket_addrs()
        .map_err(|e| format!("{text:?} is not HOST:PORT ({e})"))?;
    found
        .next()
        .ok_or_else(|| format!("{text:?} resolves to no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SKI: &str = "0101010101010101010101010101010101010101";

    fn args(flags: &[&str]) -> RunArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            run: RunArgs,
        }
        let mut argv = vec!["run"];
        argv.extend_from_slice(flags);
        Wrapper::parse_from(argv).run
    }

    #[test]
    fn a_peer_is_ski_at_host_and_port() {
        let peer = parse_peer(&format!("{SKI}@127.0.0.1:4712")).unwrap();
        assert_eq!(peer.ski.to_string(), SKI);
        assert_eq!(peer.address, "127.0.0.1:4712".parse().unwrap());
        let v6 = parse_peer(&format!("{SKI}@[::1]:4712")).unwrap();
        assert_eq!(v6.address, "[::1]:4712".parse().unwrap());
        for bad in [
            SKI,
            "@127.0.0.1:1",
            &format!("{SKI}@"),
            &format!("{SKI}@127.0.0.1"),
        ] {
            assert!(parse_peer(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_override_the_file_and_peers_are_combined() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(
            &file,
            format!(
                "port = 1000\nmdns = false\npeers = [\"{SKI}@127.0.0.1:1\"]\n[device]\nbrand = \
                 \"FileBrand\"\nmodel = \"FileModel\"\n[limits]\nmax_connections = 3\n"
            ),
        )
        .unwrap();
        let other = "0202020202020202020202020202020202020202";
        let settings = Settings::resolve(
            args(&[
                "--config",
                file.to_str().unwrap(),
                "--port",
                "2000",
                "--brand",
                "FlagBrand",
                "--peer",
                &format!("{other}@127.0.0.1:2"),
                "--peer",
                &format!("{SKI}@127.0.0.1:1"),
            ]),
            None,
            false,
        )
        .unwrap();
        assert_eq!(settings.port, 2000);
        assert!(!settings.mdns);
        assert_eq!(settings.device.brand, "FlagBrand");
        assert_eq!(settings.device.model, "FileModel");
        assert_eq!(settings.max_connections, Some(3));
        let peers: Vec<String> = settings.peers.iter().map(|p| p.ski.to_string()).collect();
        assert_eq!(peers, [SKI, other], "file first, duplicates dropped");
    }

    #[test]
    fn defaults_without_a_file() {
        let settings = Settings::resolve(args(&[]), None, false).unwrap();
        assert_eq!(settings.port, ship_hub::hub::config::DEFAULT_PORT);
        assert!(settings.mdns && settings.prompt && !settings.auto_accept && !settings.json);
        assert_eq!(settings.bind, None);
        assert_eq!(settings.device.name, None);
        assert_eq!(settings.control.max_connections, 16);
        assert_eq!(settings.control.idle_timeout, Duration::from_secs(30));
    }

    #[test]
    fn admission_limits_from_the_file_and_the_flags_reach_the_hub_limits() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(
            &file,
            "[limits]\nmax_handshakes_per_address = 3\nmax_unpaired = 5\n\
             max_unpaired_per_address = 4\nmax_inbound_bytes_per_peer = 2000\n",
        )
        .unwrap();
        let settings = Settings::resolve(
            args(&[
                "--config",
                file.to_str().unwrap(),
                "--max-handshakes-per-address",
                "32",
                "--max-inbound-bytes-total",
                "9000",
            ]),
            None,
            false,
        )
        .unwrap();
        let mut limits = Limits::default();
        settings.admission.apply(&mut limits);
        assert_eq!(limits.max_handshakes_per_address, 32, "the flag wins");
        assert_eq!(limits.max_unpaired_connections, 5);
        assert_eq!(limits.max_unpaired_per_address, 4);
        assert_eq!(limits.max_inbound_bytes_per_peer, 2000);
        assert_eq!(limits.max_inbound_bytes_total, 9000);
        // Not configured: the library's defaults stay.
        let defaults = Limits::default();
        let mut untouched = Limits::default();
        Settings::resolve(args(&[]), None, false)
            .unwrap()
            .admission
            .apply(&mut untouched);
        assert_eq!(
            untouched.max_handshakes_per_address,
            defaults.max_handshakes_per_address
        );
        assert_eq!(
            untouched.max_unpaired_connections,
            defaults.max_unpaired_connections
        );
        for flag in ["--max-unpaired", "--max-handshakes-per-address"] {
            let error = Settings::resolve(args(&[flag, "0"]), None, false).unwrap_err();
            assert!(error.to_string().contains("must be at least 1"), "{error}");
        }
    }

    #[test]
    fn control_socket_limits_from_the_file_and_the_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(
            &file,
            "[limits]\ncontrol_connections = 4\ncontrol_idle_timeout_secs = 7\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let settings = Settings::resolve(args(&["--config", path]), None, false).unwrap();
        assert_eq!(settings.control.max_connections, 4);
        assert_eq!(settings.control.idle_timeout, Duration::from_secs(7));
        let flags = [
            "--config",
            path,
            "--control-connections",
            "2",
            "--control-idle-timeout",
            "1",
        ];
        let settings = Settings::resolve(args(&flags), None, false).unwrap();
        assert_eq!(settings.control.max_connections, 2);
        assert_eq!(settings.control.idle_timeout, Duration::from_secs(1));
        for zero in [
            ["--control-connections", "0"],
            ["--control-idle-timeout", "0"],
        ] {
            assert!(
                Settings::resolve(args(&zero), None, false).is_err(),
                "{zero:?}"
            );
        }
    }

    /// Resolves `text` as the `--config` file (mode 0600), with no flags.
    fn resolve_text(text: &str) -> Result<Settings, GatewayError> {
        resolve_mode(text, 0o600)
    }

    /// Resolves `text` as the `--config` file with `mode`, with no flags.
    fn resolve_mode(text: &str, mode: u32) -> Result<Settings, GatewayError> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, text).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        Settings::resolve(args(&["--config", file.to_str().unwrap()]), None, false)
    }

    /// Finding (audit, round 3): the PIN sat in a configuration file every user could read.
    #[test]
    fn a_pin_is_kept_in_a_file_only_the_service_can_read() {
        use std::os::unix::fs::PermissionsExt;
        // Inline, in a file every user can read: refused, naming pin_file, never the PIN.
        let error = resolve_mode("pin = \"5555AAAAFF\"\n", 0o644)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("pin_file") && error.contains("mode 644") && !error.contains("5555"),
            "{error}"
        );
        // The packaged file (0644) without a PIN is fine.
        assert!(resolve_mode(PACKAGED, 0o644).is_ok());
        // pin_file: mode 0640 (group-readable, as the package installs it) is accepted.
        let dir = tempfile::tempdir().unwrap();
        let pin = dir.path().join("pin");
        std::fs::write(&pin, "5555AAAAFF\n").unwrap();
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o640)).unwrap();
        let text = format!("pin_file = \"{}\"\n", pin.display());
        let settings = resolve_mode(&text, 0o644).unwrap();
        assert!(matches!(
            settings.pin_requirement,
            PinRequirement::Required(_)
        ));
        let flag =
            Settings::resolve(args(&["--pin-file", pin.to_str().unwrap()]), None, false).unwrap();
        assert!(matches!(flag.pin_requirement, PinRequirement::Required(_)));
        // Readable by everyone: refused.
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = resolve_mode(&text, 0o644).unwrap_err().to_string();
        assert!(error.contains("readable by every user"), "{error}");
        // Empty, or given twice: refused.
        std::fs::write(&pin, "").unwrap();
        std::fs::set_permissions(&pin, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            resolve_mode(&text, 0o644)
                .unwrap_err()
                .to_string()
                .contains("is empty")
        );
        let twice = format!("{text}pin = \"5555AAAAFF\"\n");
        assert!(
            resolve_mode(&twice, 0o600)
                .unwrap_err()
                .to_string()
                .contains("not both")
        );
        // On the command line: accepted, with a warning (every user sees a command line).
        let flag = Settings::resolve(args(&["--pin", "0123abcd"]), None, false).unwrap();
        assert!(
            flag.warnings.iter().any(|w| w.contains("--pin")),
            "{:?}",
            flag.warnings
        );
    }

    #[test]
    fn http_limits_from_the_file() {
        let settings = resolve_text(
            "[limits]\nhttp_connections = 10\nhttp_untrusted_connections = 4\n\
             http_untrusted_per_address = 2\nhttp_header_timeout_secs = 3\n\
             http_body_timeout_secs = 4\nhttp_event_streams = 1\nhttp_session_secs = 60\n\
             http_login_link_secs = 30\nhttp_free_failures = 0\n\
             http_failure_delay_max_secs = 9\n",
        )
        .unwrap();
        let http = settings.http_limits;
        assert_eq!(
            (
                http.max_connections,
                http.untrusted_connections,
                http.untrusted_per_address,
                http.event_streams
            ),
            (10, 4, 2, 1)
        );
        assert_eq!(http.header_timeout, Duration::from_secs(3));
        assert_eq!(http.body_timeout, Duration::from_secs(4));
        let auth = settings.auth_limits;
        assert_eq!(auth.session, Duration::from_secs(60));
        assert_eq!(auth.link, Duration::from_secs(30));
        assert_eq!(auth.attempts.free, 0);
        assert_eq!(auth.attempts.max_delay, Duration::from_secs(9));
        for bad in [
            "[limits]\nhttp_untrusted_connections = 64\n",
            "[limits]\nhttp_session_secs = 0\n",
            "[limits]\nhttp_connections = 0\n",
        ] {
            assert!(resolve_text(bad).is_err(), "{bad}");
        }
    }

    /// The settings that have a fixed default, as text, to compare two resolutions.
    fn defaults_of(s: &Settings) -> String {
        format!(
            "{} {} {} {} {} {} {} {} {:?} {:?} {:?} {} {:?} {} {:?} {} {:?} {:?} {:?} {:?} {:?}",
            s.port,
            s.mdns,
            s.auto_accept,
            s.json,
            s.prompt,
            s.device.brand,
            s.device.model,
            s.device.device_type,
            s.max_connections
                .unwrap_or(ship_hub::hub::Limits::default().max_connections),
            s.max_handshakes
                .unwrap_or(ship_hub::hub::Limits::default().max_handshakes_in_progress),
            s.max_message_bytes
                .unwrap_or(ship_hub::transport::DEFAULT_MAX_MESSAGE_SIZE),
            s.control.max_connections,
            s.control.idle_timeout,
            s.peers.len(),
            s.pin_requirement,
            s.ask,
            s.cooling_off,
            s.remember_denial,
            {
                let mut limits = Limits::default();
                s.admission.apply(&mut limits);
                (
                    limits.max_handshakes_per_address,
                    limits.max_unpaired_connections,
                    limits.max_unpaired_per_address,
                    limits.max_inbound_bytes_per_peer,
                    limits.max_inbound_bytes_total,
                )
            },
            s.http_limits,
            s.auth_limits,
        )
    }

    const PACKAGED: &str = include_str!("../debian/config.toml");

    /// The packaged /etc/ship-gateway/config.toml changes nothing, and each of its commented
    /// lines shows the real default: uncommenting all of them still gives the defaults.
    #[test]
    fn the_packaged_config_lists_every_key_with_its_default() {
        let plain = Settings::resolve(args(&[]), None, false).unwrap();
        let packaged = resolve_text(PACKAGED).unwrap();
        assert_eq!(defaults_of(&packaged), defaults_of(&plain));
        assert!(packaged.peers.is_empty() && packaged.device.ship_id.is_none());
        let uncommented: String = PACKAGED
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                // pin_file names a file this machine does not have (resolving reads it).
                Some(rest) if rest.starts_with("pin_file = ") => line,
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(key, _)| {
                        key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    }) =>
                {
                    rest
                }
                _ => line,
            })
            .map(|line| format!("{line}\n"))
            .collect();
        let all = resolve_text(&uncommented).unwrap();
        assert_eq!(defaults_of(&all), defaults_of(&plain));
        // Every key the file format knows appears, so none is undocumented there.
        for key in [
            "data_dir",
            "bind",
            "port",
            "mdns",
            "interfaces",
            "auto_accept",
            "json",
            "prompt",
            "peers",
            "tls_suites",
            "pairing_secret_file",
            "pin",
            "pin_optional",
            "ask",
            "cooling_off_secs",
            "remember_denial_secs",
            "http",
            "http_token_file",
            "max_handshakes_per_address",
            "max_unpaired",
            "max_unpaired_per_address",
            "max_inbound_bytes_per_peer",
            "max_inbound_bytes_total",
            "name",
            "brand",
            "model",
            "serial",
            "type",
            "ship_id",
            "max_connections",
            "max_handshakes",
            "max_message_bytes",
            "control_connections",
            "control_idle_timeout_secs",
            "http_connections",
            "http_untrusted_connections",
            "http_untrusted_per_address",
            "http_header_timeout_secs",
            "http_body_timeout_secs",
            "http_event_streams",
            "http_session_secs",
            "http_login_link_secs",
            "http_free_failures",
            "http_failure_delay_max_secs",
        ] {
            assert!(
                uncommented
                    .lines()
                    .any(|l| l.starts_with(&format!("{key} = "))),
                "{key} missing from debian/config.toml"
            );
        }
        assert!(
            PACKAGED
                .lines()
                .any(|l| l.starts_with("# pin_file = \"/etc/ship-gateway/pin\"")),
            "pin_file missing from debian/config.toml"
        );
    }

    /// The example configuration in the repository is valid and means what it says.
    #[test]
    fn the_example_config_parses() {
        let example = resolve_text(include_str!("../../../examples/gateway.toml")).unwrap();
        assert_eq!(example.bind, Some("0.0.0.0".parse().unwrap()));
        assert_eq!(example.interfaces, ["eth0"]);
        assert!(example.json && example.mdns && !example.auto_accept);
        assert_eq!(example.device.name.as_deref(), Some("Basement gateway"));
    }

    #[test]
    fn tls_suites_from_the_file_or_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("g.toml");
        std::fs::write(
            &file,
            "tls_suites = [\"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256\"]\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();
        let from_file = Settings::resolve(args(&["--config", path]), None, false).unwrap();
        assert_eq!(from_file.tls_suites, Some(vec![TlsSuite::Aes128CbcSha256]));
        let flag = Settings::resolve(
            args(&[
                "--config",
                path,
                "--tls-suites",
                "ECDHE-ECDSA-AES128-GCM-SHA256, TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
            ]),
            None,
            false,
        )
        .unwrap();
        assert_eq!(
            flag.tls_suites,
            Some(vec![TlsSuite::Aes128GcmSha256, TlsSuite::Aes128CbcSha256])
        );
        for bad in ["TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", ",", ""] {
            let error = Settings::resolve(args(&["--tls-suites", bad]), None, false);
            assert!(matches!(error, Err(GatewayError::Setting(_))), "{bad:?}");
        }
        assert_eq!(
            Settings::resolve(args(&[]), None, false)
                .unwrap()
                .tls_suites,
            None
        );
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        assert_eq!(one_line("a\n  | b\n\n c \n"), "a | b c");
    }

    #[test]
    fn pin_from_the_file_or_the_flag_and_never_in_errors() {
        let required = resolve_text("pin = \"5555 AAAA FF\"\n").unwrap();
        assert!(matches!(
            required.pin_requirement,
            PinRequirement::Required(_)
        ));
        assert!(!format!("{required:?}").contains("5555"));
        let optional = resolve_text("pin = \"5555AAAAFF\"\npin_optional = true\n").unwrap();
        assert!(matches!(
            optional.pin_requirement,
            PinRequirement::Optional(_)
        ));
        let flag = Settings::resolve(args(&["--pin", "0123abcd"]), None, false).unwrap();
        assert!(matches!(flag.pin_requirement, PinRequirement::Required(_)));
        let error = resolve_text("pin = \"SECRETxx1\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("pin") && !error.contains("SECRET"),
            "{error}"
        );
        assert!(resolve_text("pin_optional = true\n").is_err());
        assert_eq!(
            resolve_text("pin = \"\"\n").unwrap().pin_requirement,
            PinRequirement::None
        );
    }

    /// The library's entry: `run`'s flags as a list, resolved without a process.
    #[test]
    fn from_the_command_line_with_defaults_and_getters() {
        let settings = Settings::from_command_line(["--data-dir", "/tmp/gw"]).unwrap();
        assert_eq!(settings.data_dir(), Some(std::path::Path::new("/tmp/gw")));
        assert_eq!(settings.port(), ship_hub::hub::config::DEFAULT_PORT);
        assert_eq!(settings.bind(), None);
        assert!(settings.mdns() && !settings.json());
        assert_eq!(settings.http(), None);
        assert_eq!(settings.http_limits, HttpLimits::default());
        assert_eq!(
            settings.cooling_off,
            Duration::from_secs(DEFAULT_COOLING_OFF_SECS)
        );
        let loopback = Settings::from_command_line([
            "--no-mdns",
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--http",
            "127.0.0.1:0",
            "--json",
        ])
        .unwrap();
        assert_eq!(loopback.data_dir(), None);
        assert_eq!(loopback.port(), 0);
        assert_eq!(loopback.bind(), Some(IpAddr::from([127, 0, 0, 1])));
        assert!(!loopback.mdns() && loopback.json());
        assert_eq!(loopback.http(), Some("127.0.0.1:0".parse().unwrap()));
    }

    #[test]
    fn from_the_command_line_refuses_bad_flags_and_values_with_typed_errors() {
        let usage = Settings::from_command_line(["--frobnicate"]).unwrap_err();
        assert!(
            matches!(&usage, GatewayError::Usage(line) if line.contains("--frobnicate")),
            "{usage:?}"
        );
        assert_eq!(usage.exit_code(), 2);
        let port = Settings::from_command_line(["--port", "70000"]).unwrap_err();
        assert!(matches!(port, GatewayError::Usage(_)), "{port:?}");
        let zero = Settings::from_command_line(["--max-connections", "0"]).unwrap_err();
        assert!(
            matches!(&zero, GatewayError::Setting(m) if m.contains("max_connections")),
            "{zero:?}"
        );
        assert_eq!(zero.exit_code(), 1);
        let peer = Settings::from_command_line(["--peer", "nonsense"]).unwrap_err();
        assert!(matches!(peer, GatewayError::Setting(_)), "{peer:?}");
        let missing = Settings::from_command_line(["--config", "/nonexistent/ship-gateway.toml"])
            .unwrap_err();
        assert!(
            matches!(missing, GatewayError::Config { .. }),
            "{missing:?}"
        );
    }
}
