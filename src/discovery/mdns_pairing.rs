//! The Pairing Service on the shared `mdns-sd` daemon of [`super::MdnsDiscovery`]: announcing
//! our request and browsing `_shippairing._tcp` for others.
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

use super::pairing::{PairingAnnouncement, PairingEvent, PairingSighting};
use super::{DiscoveryError, InterfaceSelection};
use crate::pairing_service::SERVICE_TYPE;

/// The port put in the SRV record of a pairing request (discard; nothing connects to it).
pub(super) const PAIRING_PORT: u16 = 9;

/// How long to wait before browsing again after the daemon closed the subscription.
const REBROWSE_DELAY: Duration = Duration::from_millis(200);

pub(super) fn service_info(
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
pub(super) fn browse(
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
