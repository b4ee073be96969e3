//! From discovery to dials: announces the hub, follows the visible services, reports them to the
//! application, and hands the addresses of paired SKIs to their supervisors.
//!
//! A sighting only ever *adds* dial candidates. When an announcement expires the service leaves
//! the visible list, but the supervisor keeps every address it knew (the discovered ones after
//! the last successful and the static ones): a paired peer is never left undialled because an
//! mDNS record expired (ship-protocol.md §8).

use std::sync::Arc;

use tokio::sync::broadcast::error::RecvError;

use super::Shared;
use super::callbacks::CallbackEvent;
use super::supervisor::Command;
use crate::discovery::{Announcement, Discovery, DiscoveryEvent, ShipTxt, VisibleService};

/// Builds our announcement from the configuration (`register` = auto-accept).
pub(crate) fn announcement(shared: &Shared, port: u16) -> Announcement {
    let register = shared
        .auto_accept
        .load(std::sync::atomic::Ordering::Relaxed);
    announcement_of(&shared.config, shared.local_ski, register, port)
}

/// Our announcement, before the hub's shared state exists (the first one, made by
/// [`super::Hub::start`] before it spawns anything).
pub(crate) fn announcement_of(
    config: &super::HubConfig,
    local_ski: crate::Ski,
    register: bool,
    port: u16,
) -> Announcement {
    let device = &config.device;
    let mut txt = ShipTxt::new(config.ship_id.clone(), local_ski);
    txt.path = device.path.clone();
    txt.brand = device.brand.clone();
    txt.model = device.model.clone();
    txt.device_type = device.device_type.clone();
    txt.serial = device.serial.clone();
    txt.categories = device.categories.clone();
    txt.register = register;
    let announcement = Announcement::new(txt, port);
    match &device.instance_name {
        Some(name) => announcement.with_instance_name(name.clone()),
        None => announcement,
    }
}

/// Follows `discovery` until the hub stops.
pub(crate) async fn follow(shared: Arc<Shared>, discovery: Arc<dyn Discovery>) {
    let mut events = discovery.subscribe();
    publish(&shared, &discovery);
    for service in discovery.visible() {
        feed(&shared, &service);
    }
    loop {
        let event = tokio::select! {
            _ = shared.stop.cancelled() => return,
            event = events.recv() => event,
        };
        match event {
            Ok(DiscoveryEvent::Seen(service)) => {
                feed(&shared, &service);
                publish(&shared, &discovery);
            }
            Ok(DiscoveryEvent::Lost(ski)) => {
                let _ = shared.route_existing(ski, Command::SightingLost);
                publish(&shared, &discovery);
            }
            Ok(DiscoveryEvent::Refused { instance, error }) => {
                tracing::info!(
                    ?instance,
                    ?error,
                    "ignoring a SHIP announcement with a bad TXT record"
                );
            }
            Ok(DiscoveryEvent::Renamed { from, to }) => {
                tracing::info!(%from, %to, "our mDNS instance name was taken: announced under a new name");
            }
            Err(RecvError::Lagged(_)) => {
                for service in discovery.visible() {
                    feed(&shared, &service);
                }
                publish(&shared, &discovery);
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Tells the application what is visible now (deduplicated by SKI, sorted by SKI).
fn publish(shared: &Shared, discovery: &Arc<dyn Discovery>) {
    shared
        .callbacks
        .push(CallbackEvent::VisibleServices(discovery.visible()));
}

/// Gives the supervisor of a paired SKI the sighting (it keeps the addresses in its book).
fn feed(shared: &Arc<Shared>, service: &VisibleService) {
    if service.ski == shared.local_ski {
        return;
    }
    if !matches!(shared.trust.get(&service.ski), Ok(Some(_))) {
        return;
    }
    let _ = shared.route(service.ski, sighting_command(service));
}

/// The supervisor command for a sighting.
pub(crate) fn sighting_command(service: &VisibleService) -> Command {
    let instance = service.instances.first().cloned().unwrap_or_default();
    Command::Sighting {
        host: host_label(&instance),
        instance,
        addresses: service.addresses.iter().copied().collect(),
        path: service.path().to_owned(),
    }
}

/// A DNS-form SNI name from an instance name: its first label, made DNS-safe, under `.local`.
fn host_label(instance: &str) -> String {
    let label: String = instance
        .split("._ship._tcp")
        .next()
        .unwrap_or(instance)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    let label = label.trim_matches('-');
    if label.is_empty() {
        "ship-node.local".to_owned()
    } else {
        format!("{label}.local")
    }
}
