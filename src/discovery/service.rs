//! What is announced and what is seen: [`Announcement`], [`Sighting`], [`VisibleService`] and
//! the [`DiscoveryEvent`]s between them.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};

use crate::Ski;
use ship_proto::txt::{ShipTxt, TxtError};

/// Why an instance name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InstanceNameError {
    /// Empty.
    #[error("an mDNS instance name must not be empty")]
    Empty,
    /// Longer than a DNS label (63 bytes, RFC 6763 §4.1.1).
    #[error("an mDNS instance name is at most 63 bytes, this one has {len}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// Contains a control character.
    #[error("an mDNS instance name must not contain control characters")]
    ControlCharacter,
}

/// A DNS-SD service instance name: the human-readable part before `._ship._tcp.local.`
/// (§7.3, RFC 6763 §4.1.1): 1 to 63 bytes of UTF-8 without control characters.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InstanceName(String);

impl InstanceName {
    /// Maximum length in bytes.
    pub const MAX_LEN: usize = 63;

    /// Validates a name.
    pub fn new(name: impl Into<String>) -> Result<Self, InstanceNameError> {
        let name = name.into();
        if name.is_empty() {
            return Err(InstanceNameError::Empty);
        }
        if name.len() > Self::MAX_LEN {
            return Err(InstanceNameError::TooLong { len: name.len() });
        }
        if name.chars().any(char::is_control) {
            return Err(InstanceNameError::ControlCharacter);
        }
        Ok(InstanceName(name))
    }

    /// The default name of a node: its model (or `ship-hub`) and the first 8 hex digits of its
    /// SKI, e.g. `ship-hub-3f2a9c01`. Two nodes with default settings therefore announce
    /// different names and do not hide each other (§7.3 asks for names unique on the LAN).
    pub fn default_for(txt: &ShipTxt) -> Self {
        let base = txt
            .model
            .as_ref()
            .map_or("ship-hub", |model| model.as_str());
        let ski = txt.ski.to_string();
        InstanceName(format!("{base}-{}", &ski[..8]))
    }

    /// The exact text (`Display` shows it escaped).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InstanceName {
    /// The name with invisible characters and backslashes escaped ([`crate::text::Escaped`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&crate::text::Escaped(&self.0), f)
    }
}

impl fmt::Debug for InstanceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// Our own service as announced (§7.3).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Announcement {
    /// The instance name; a conflict with another node's name is resolved by the
    /// implementation (see `docs/discovery.md`).
    pub instance_name: InstanceName,
    /// The TCP port of our TLS listener.
    pub port: u16,
    /// The TXT record.
    pub txt: ShipTxt,
}

impl Announcement {
    /// An announcement under the default instance name ([`InstanceName::default_for`]).
    pub fn new(txt: ShipTxt, port: u16) -> Self {
        Announcement {
            instance_name: InstanceName::default_for(&txt),
            port,
            txt,
        }
    }

    /// Replaces the instance name.
    pub fn with_instance_name(mut self, name: InstanceName) -> Self {
        self.instance_name = name;
        self
    }
}

/// One resolved mDNS record of a peer: an instance name with its TXT record and addresses.
///
/// Several sightings can carry the same SKI (a node announcing under two names, or a rename);
/// the registry merges them into one [`VisibleService`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    /// The full service instance name, e.g. `wallbox-1._ship._tcp.local.`; identifies the
    /// record.
    pub instance: String,
    /// The target host name from the SRV record.
    pub host: String,
    /// The parsed TXT record.
    pub txt: ShipTxt,
    /// Where the node can be dialled: every address of the host with the SRV port.
    pub addresses: BTreeSet<SocketAddr>,
}

/// A SHIP node visible on the LAN, merged over all its sightings (one per SKI).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VisibleService {
    /// The SKI the node claims in its TXT record.
    pub ski: Ski,
    /// The TXT record of its most recent sighting.
    pub txt: ShipTxt,
    /// The instance names it is announced under, sorted.
    pub instances: Vec<String>,
    /// Every address it was seen at, over all instances and interfaces, sorted. IPv6
    /// link-local addresses carry their scope id so that they can be dialled.
    pub addresses: BTreeSet<SocketAddr>,
    /// The same addresses in the order to dial them: those of the most recently seen instance
    /// first (a fresh announcement is the likeliest to be right), each address once.
    pub dial_order: Vec<SocketAddr>,
    /// Each record the view is merged from (one per instance, sorted by instance name, like
    /// `instances`): its host, TXT record (so its own `path`) and addresses. Anyone can announce
    /// any SKI, so each is only a claim; the hub keeps and tries each one on its own.
    pub sightings: Vec<Sighting>,
}

impl VisibleService {
    /// The WebSocket path to dial (TXT `path`).
    pub fn path(&self) -> &str {
        self.txt.path.as_str()
    }
}

/// What a [`Discovery`](super::Discovery) reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
// `Seen` carries the merged service by value: events are few per second and read at once, so
// boxing would only add an allocation and change the public shape.
#[allow(clippy::large_enum_variant)]
pub enum DiscoveryEvent {
    /// A node became visible, or a visible node changed (TXT, addresses or instance names).
    Seen(VisibleService),
    /// The last record of a node expired or was withdrawn: it is no longer visible.
    Lost(Ski),
    /// A record was heard but refused (bad TXT): kept out of the visible list.
    Refused {
        /// The full instance name of the record.
        instance: String,
        /// Why.
        error: TxtError,
    },
    /// Our own announcement now uses another instance name, because the one asked for was
    /// already taken on the LAN (RFC 6762 §9).
    Renamed {
        /// The name we asked for.
        from: String,
        /// The name in use now.
        to: String,
    },
}

/// The socket address to dial for `ip` on `port`. An IPv6 link-local address (`fe80::/10`) is
/// only reachable through the interface it was heard on, so it keeps `scope_id` (the interface
/// index); other addresses get scope 0.
pub fn dialable_address(ip: IpAddr, scope_id: u32, port: u16) -> SocketAddr {
    match ip {
        IpAddr::V4(v4) => SocketAddr::new(IpAddr::V4(v4), port),
        IpAddr::V6(v6) => {
            let scope = if v6.is_unicast_link_local() {
                scope_id
            } else {
                0
            };
            SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope))
        }
    }
}
