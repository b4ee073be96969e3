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
//! pin = ""             # this gateway's PIN (8-16 hex digits): peers must send it; "" = none
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
//! ```

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use ship_hub::hub::config::Limits;
use ship_hub::protocol::{Pin, PinRequirement};
use ship_hub::transport::{TlsSuite, parse_tls_suites};
use ship_hub::{ShipId, Ski};

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

/// Everything `run` needs, resolved.
#[derive(Debug, Clone)]
pub(crate) struct RunSettings {
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
    /// The token file of the HTTP API.
    pub(crate) http_token_file: Option<PathBuf>,
    /// Pairing requests wait for `approve`/`deny` without a terminal.
    pub(crate) ask: bool,
    /// How long a device a person unpaired is refused without asking.
    pub(crate) cooling_off: Duration,
    /// How long a device a person denied is refused without asking (`None`: until a person
    /// pairs it).
    pub(crate) remember_denial: Option<Duration>,
}

impl RunSettings {
    /// Reads `--config` (if given) and applies the flags over it.
    pub(crate) fn resolve(
        args: RunArgs,
        data_dir: Option<PathBuf>,
        json: bool,
    ) -> Result<RunSettings, GatewayError> {
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
        let pin = match args.pin.as_deref().or(file.pin.as_deref()) {
            None | Some("") => None,
            // The error never repeats the text (it is a secret).
            Some(text) => {
                Some(Pin::new(text).map_err(|e| GatewayError::Setting(format!("pin: {e}")))?)
            }
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
        Ok(RunSettings {
            pin_requirement,
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

fn read_file(path: &PathBuf) -> Result<FileConfig, GatewayError> {
    let error = |reason: String| GatewayError::Config {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(e.to_string()))?;
    toml::from_str(&text).map_err(|e| error(one_line(&e.to_string())))
}

/// Joins a multi-line message (toml shows the offending line under the message) into one line.
pub(crate) fn one_line(text: &str) -> String {
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
        let settings = RunSettings::resolve(
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
        let settings = RunSettings::resolve(args(&[]), None, false).unwrap();
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
        let settings = RunSettings::resolve(
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
        RunSettings::resolve(args(&[]), None, false)
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
            let error = RunSettings::resolve(args(&[flag, "0"]), None, false).unwrap_err();
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
        let settings = RunSettings::resolve(args(&["--config", path]), None, false).unwrap();
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
        let settings = RunSettings::resolve(args(&flags), None, false).unwrap();
        assert_eq!(settings.control.max_connections, 2);
        assert_eq!(settings.control.idle_timeout, Duration::from_secs(1));
        for zero in [
            ["--control-connections", "0"],
            ["--control-idle-timeout", "0"],
        ] {
            assert!(
                RunSettings::resolve(args(&zero), None, false).is_err(),
                "{zero:?}"
            );
        }
    }

    /// Resolves `text` as the `--config` file, with no flags.
    fn resolve_text(text: &str) -> Result<RunSettings, GatewayError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, text).unwrap();
        RunSettings::resolve(args(&["--config", file.to_str().unwrap()]), None, false)
    }

    /// The settings that have a fixed default, as text, to compare two resolutions.
    fn defaults_of(s: &RunSettings) -> String {
        format!(
            "{} {} {} {} {} {} {} {} {:?} {:?} {:?} {} {:?} {} {:?} {} {:?} {:?} {:?}",
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
        )
    }

    const PACKAGED: &str = include_str!("../debian/config.toml");

    /// The packaged /etc/ship-gateway/config.toml changes nothing, and each of its commented
    /// lines shows the real default: uncommenting all of them still gives the defaults.
    #[test]
    fn the_packaged_config_lists_every_key_with_its_default() {
        let plain = RunSettings::resolve(args(&[]), None, false).unwrap();
        let packaged = resolve_text(PACKAGED).unwrap();
        assert_eq!(defaults_of(&packaged), defaults_of(&plain));
        assert!(packaged.peers.is_empty() && packaged.device.ship_id.is_none());
        let uncommented: String = PACKAGED
            .lines()
            .map(|line| match line.strip_prefix("# ") {
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
        ] {
            assert!(
                uncommented
                    .lines()
                    .any(|l| l.starts_with(&format!("{key} = "))),
                "{key} missing from debian/config.toml"
            );
        }
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
        let from_file = RunSettings::resolve(args(&["--config", path]), None, false).unwrap();
        assert_eq!(from_file.tls_suites, Some(vec![TlsSuite::Aes128CbcSha256]));
        let flag = RunSettings::resolve(
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
            let error = RunSettings::resolve(args(&["--tls-suites", bad]), None, false);
            assert!(matches!(error, Err(GatewayError::Setting(_))), "{bad:?}");
        }
        assert_eq!(
            RunSettings::resolve(args(&[]), None, false)
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
        let flag = RunSettings::resolve(args(&["--pin", "0123abcd"]), None, false).unwrap();
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
}
