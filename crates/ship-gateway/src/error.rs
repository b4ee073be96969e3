//! The gateway's errors. Each one is printed as one line (`ship-gateway: <message>`) and ends the
//! process with a non-zero status; none of them is a panic.

use std::path::PathBuf;

use ship_hub::Ski;
use ship_hub::hub::{HubError, TrustStoreError};
use ship_hub::identity::IdentityError;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The command line could not be parsed (clap's first line).
    #[error("{0}")]
    Usage(String),
    /// The data directory cannot be created, read or used.
    #[error("data dir {}: {reason}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data directory could be changed by someone else than the running user, who could
    /// then plant links to have the private key or the pairings written where they choose.
    #[error("data dir {} {problem}: refusing to use it; fix it with `{fix}`", path.display())]
    InsecureDataDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong ("is writable by its group", "is owned by uid 1001, not by uid 0", …).
        problem: String,
        /// The command that fixes it.
        fix: String,
    },
    /// The identity in the data directory cannot be loaded or created.
    #[error("identity in {}: {source}", dir.display())]
    Identity {
        /// The data directory.
        dir: PathBuf,
        /// The library's error.
        source: IdentityError,
    },
    /// The trust store failed (it is never overwritten when corrupt).
    #[error(transparent)]
    TrustStore(#[from] TrustStoreError),
    /// The configuration file is unreadable or invalid.
    #[error("config file {}: {reason}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A setting is invalid.
    #[error("{0}")]
    Setting(String),
    /// The listening port is taken.
    #[error(
        "cannot listen on {addr}: the port is in use (another ship-gateway or SHIP stack?); \
         choose another with --port"
    )]
    PortInUse {
        /// The address.
        addr: std::net::SocketAddr,
    },
    /// The hub refused.
    #[error("{0}")]
    Hub(#[from] HubError),
    /// `unpair` or `send` named a SKI that is not paired.
    #[error("{0} is not paired (see `ship-gateway list`)")]
    NotPaired(Ski),
    /// The SKI is this gateway's own.
    #[error("{0} is this gateway's own SKI")]
    OwnSki(Ski),
    /// Another gateway already runs on this data directory.
    #[error("another ship-gateway is already running with data dir {}", .0.display())]
    AlreadyRunning(PathBuf),
    /// A command that needs the running gateway found none.
    #[error("no ship-gateway is running with data dir {}", .0.display())]
    NotRunning(PathBuf),
    /// Talking to the running gateway failed.
    #[error("control socket {}: {reason}", path.display())]
    Control {
        /// The socket.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The running gateway refused the request.
    #[error("{0}")]
    Refused(String),
    /// mDNS could not be started.
    #[error("mDNS: {0}")]
    Mdns(String),
    /// Anything else the operating system refused.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
}

impl GatewayError {
    /// The process exit status: 2 for command-line errors, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            GatewayError::Usage(_) => 2,
            _ => 1,
        }
    }
}
