//! The Pairing Service's mDNS side (`_shippairing._tcp`): what a [`Discovery`](super::Discovery)
//! announces for a requesting device and reports to an energy manager. The records are carried
//! raw; reading and verifying them is [`crate::pairing_service`]'s.

use super::service::InstanceName;
use crate::pairing_service::record::{MAX_KEYS, MAX_RECORD_LEN};

/// How many pairing events a slow subscriber may fall behind before it sees `Lagged` (the
/// events in between are dropped: a request still on the air is heard again when re-announced).
pub const PAIRING_EVENT_CAPACITY: usize = 64;

/// A `_shippairing._tcp` request to announce (the requesting device's side).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PairingAnnouncement {
    /// The instance name; the Pairing Service asks for the SHIP service's own.
    pub instance_name: InstanceName,
    /// The TXT record, in order ([`crate::pairing_service::SignedRequest::to_pairs`]).
    pub pairs: Vec<(String, String)>,
}

impl PairingAnnouncement {
    /// An announcement of `pairs` under `instance_name`.
    pub fn new(instance_name: InstanceName, pairs: Vec<(String, String)>) -> Self {
        PairingAnnouncement {
            instance_name,
            pairs,
        }
    }
}

/// A `_shippairing._tcp` record heard on the LAN, unread.
///
/// Bounded as it is copied off the wire: at most [`MAX_KEYS`] + 1 strings and about
/// [`MAX_RECORD_LEN`] + 1 bytes are kept, which is enough for the reader to refuse a larger
/// record as too large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingSighting {
    /// The full instance name, e.g. `cu-1._shippairing._tcp.local.`.
    pub instance: String,
    /// The TXT strings in wire order: key and value (`None`: a key without `=`).
    pub properties: Vec<(String, Option<Vec<u8>>)>,
}

impl PairingSighting {
    /// A sighting of `properties` (truncated to the bounds above).
    pub fn new<'a>(
        instance: impl Into<String>,
        properties: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
    ) -> Self {
        let mut kept = Vec::new();
        let mut len = 0usize;
        for (key, value) in properties.into_iter().take(MAX_KEYS + 1) {
            if len > MAX_RECORD_LEN {
                break;
            }
            let room = MAX_RECORD_LEN + 1 - len.min(MAX_RECORD_LEN + 1);
            let key: String = key.chars().take(room).collect();
            len += key.len();
            let value = value.map(|v| v[..v.len().min(MAX_RECORD_LEN + 1)].to_vec());
            len += value.as_ref().map_or(0, Vec::len);
            kept.push((key, value));
        }
        PairingSighting {
            instance: instance.into(),
            properties: kept,
        }
    }

    /// The properties as the record reader takes them.
    pub fn properties(&self) -> impl Iterator<Item = (&str, Option<&[u8]>)> + Clone {
        self.properties
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
    }
}

/// What a pairing subscription reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PairingEvent {
    /// A request was announced, or its record changed.
    Announced(PairingSighting),
    /// A request was withdrawn (or its record expired).
    Withdrawn {
        /// The full instance name.
        instance: String,
    },
}
