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

#[cfg(feature = "mdns")]
pub(crate) mod daemon {
    //! The `mdns` feature's side: the Pairing Service on the shared `mdns-sd` daemon of
    //! [`MdnsDiscovery`](crate::discovery::MdnsDiscovery), announcing our request and browsing
    //! `_shippairing._tcp` for others.
    //!
    //! * The request is registered under the SHIP service's instance name and host, with port 9
    //!   (discard): DNS-SD needs a port and the Pairing Service uses none (nobody may connect to it).
    //! * Browsing starts on the first subscription and lives as long as the daemon. One thread moves
    //!   the daemon's events into a bounded broadcast channel ([`super::PAIRING_EVENT_CAPACITY`]);
    //!   a subscriber that falls behind loses the oldest events, never memory. A browse the daemon
    //!   closes (its channel overflowed) is opened again after a short pause.

    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
    use tokio::sync::broadcast;

    use super::{PairingAnnouncement, PairingEvent, PairingSighting};
    use crate::discovery::{DiscoveryError, InterfaceSelection};
    use crate::pairing_service::SERVICE_TYPE;

    /// The port put in the SRV record of a pairing request (discard; nothing connects to it).
    pub(crate) const PAIRING_PORT: u16 = 9;

    /// How long to wait before browsing again after the daemon closed the subscription.
    const REBROWSE_DELAY: Duration = Duration::from_millis(200);

    pub(crate) fn service_info(
        announcement: &PairingAnnouncement,
        host: &str,
        interfaces: &InterfaceSelection,
    ) -> Result<ServiceInfo, DiscoveryError> {
        let properties: Vec<(&str, &str)> = announcement
            .pairs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut info = ServiceInfo::new(
            SERVICE_TYPE,
            announcement.instance_name.as_str(),
            host,
            (),
            PAIRING_PORT,
            &properties[..],
        )
        .map_err(|e| DiscoveryError::Daemon(e.to_string()))?
        .enable_addr_auto();
        if let Some(kinds) = interfaces.if_kinds() {
            info.set_interfaces(kinds);
        }
        Ok(info)
    }

    /// Browses `_shippairing._tcp` until the daemon stops, relaying to `events`.
    pub(crate) fn browse(
        daemon: ServiceDaemon,
        stopping: Arc<AtomicBool>,
        events: broadcast::Sender<PairingEvent>,
    ) {
        loop {
            let subscription = match daemon.browse(SERVICE_TYPE) {
                Ok(subscription) => subscription,
                Err(mdns_sd::Error::Again) => {
                    std::thread::sleep(REBROWSE_DELAY);
                    continue;
                }
                Err(error) => {
                    tracing::debug!(%error, "pairing browse: daemon gone");
                    return;
                }
            };
            while let Ok(event) = subscription.recv() {
                if let Some(event) = pairing_event_of(event) {
                    // No subscriber is not an error.
                    let _ = events.send(event);
                }
            }
            if stopping.load(Ordering::Acquire) {
                return;
            }
            tracing::warn!("mDNS pairing browse closed by the daemon: browsing again");
            std::thread::sleep(REBROWSE_DELAY);
        }
    }

    fn pairing_event_of(event: ServiceEvent) -> Option<PairingEvent> {
        match event {
            ServiceEvent::ServiceResolved(resolved) => {
                Some(PairingEvent::Announced(PairingSighting::new(
                    resolved.fullname.clone(),
                    resolved.txt_properties.iter().map(|p| (p.key(), p.val())),
                )))
            }
            ServiceEvent::ServiceRemoved(_, fullname) => {
                Some(PairingEvent::Withdrawn { instance: fullname })
            }
            _ => None,
        }
    }
}
