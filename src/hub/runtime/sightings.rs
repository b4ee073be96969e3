//! From discovery to dials: announces the hub, follows the visible services, reports them to the
//! application, and hands the addresses of paired SKIs to their supervisors.
//!
//! A sighting only ever *adds* dial candidates. When an announcement expires the service leaves
//! the visible list, but the supervisor keeps every address it knew (the discovered ones after
//! the last successful and the static ones): a paired peer is never left undialled because an
//! mDNS record expired (docs/ship.md §8).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use super::handover::{Command, SightingRecord};
use super::shared::Shared;
use super::supervisor::route;
use crate::discovery::{Announcement, Discovery, DiscoveryEvent, ShipTxt, VisibleService};
use crate::hub::callbacks::CallbackEvent;
use crate::hub::config::HubConfig;

/// Builds our announcement from the configuration (`register` = auto-accept).
pub(crate) fn announcement(shared: &Shared, port: u16) -> Announcement {
    let register = shared
        .auto_accept
        .load(std::sync::atomic::Ordering::Relaxed);
    announcement_of(&shared.config, shared.local_ski, register, port)
}

/// Our announcement, before the hub's shared state exists (the first one, made by
/// [`crate::hub::Hub::start`] before it spawns anything).
pub(crate) fn announcement_of(
    config: &HubConfig,
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
///
/// A sighting of a paired SKI reaches its supervisor at once. The application's
/// `visible_services_changed` is coalesced: at most one call per
/// [`HubTimers::visible_services_interval`](crate::hub::config::HubTimers::visible_services_interval),
/// with the list as it is then, so a burst of announcements costs one list per interval
/// instead of one per sighting. The paired SKIs are the discovery's preferred ones (their
/// records are never evicted for strangers); the set is refreshed with each report.
/// `events` is the discovery's subscription, taken before the snapshot (the order that misses
/// nothing).
pub(crate) async fn follow(
    shared: Arc<Shared>,
    discovery: Arc<dyn Discovery>,
    mut events: tokio::sync::broadcast::Receiver<DiscoveryEvent>,
) {
    prefer_paired(&shared, &discovery);
    let mut report = Coalesced::new(shared.config.timers.visible_services_interval);
    for service in discovery.visible() {
        feed(&shared, &service);
    }
    loop {
        let event = tokio::select! {
            _ = shared.stop.cancelled() => return,
            () = report.due() => {
                prefer_paired(&shared, &discovery);
                publish(&shared, &discovery);
                report.done();
                continue;
            }
            event = events.recv() => event,
        };
        match event {
            Ok(DiscoveryEvent::Seen(service)) => {
                feed(&shared, &service);
                report.changed();
            }
            Ok(DiscoveryEvent::Lost(ski)) => {
                let _ = shared.route_existing(ski, Command::SightingLost);
                report.changed();
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
                report.changed();
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// Rate-limits the visible-services report: the first change is reported at once, later ones
/// at most once per interval.
struct Coalesced {
    interval: Duration,
    last: Option<Instant>,
    pending: bool,
}

impl Coalesced {
    /// Starts with a report pending (the application learns the initial list at once).
    fn new(interval: Duration) -> Self {
        Coalesced {
            interval,
            last: None,
            pending: true,
        }
    }

    fn changed(&mut self) {
        self.pending = true;
    }

    /// Resolves when a report is due; never while nothing changed.
    async fn due(&self) {
        if !self.pending {
            return std::future::pending().await;
        }
        if let Some(last) = self.last {
            tokio::time::sleep_until(last + self.interval).await;
        }
    }

    fn done(&mut self) {
        self.pending = false;
        self.last = Some(Instant::now());
    }
}

/// Tells the discovery which SKIs are paired, so that strangers never evict their records.
pub(crate) fn prefer_paired(shared: &Shared, discovery: &Arc<dyn Discovery>) {
    discovery.set_preferred(shared.pairings.skis());
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
    if !shared.pairings.contains(&service.ski) {
        return;
    }
    let _ = route(shared, service.ski, sighting_command(service));
}

/// The supervisor command for a sighting: every record of the view, the oldest first (so the
/// book learns the newest claim last, and tries it first). The view lists its addresses by
/// recency (`dial_order`), which orders the records.
pub(crate) fn sighting_command(service: &VisibleService) -> Command {
    let recency = |record: &crate::discovery::Sighting| {
        record
            .addresses
            .iter()
            .filter_map(|a| service.dial_order.iter().position(|d| d == a))
            .min()
            .unwrap_or(usize::MAX)
    };
    let mut records: Vec<_> = service.sightings.iter().collect();
    records.sort_by_key(|record| std::cmp::Reverse(recency(record)));
    Command::Sighting(
        records
            .into_iter()
            .map(|record| SightingRecord {
                instance: record.instance.clone(),
                host: host_label(&record.instance),
                addresses: service
                    .dial_order
                    .iter()
                    .filter(|a| record.addresses.contains(a))
                    .copied()
                    .collect(),
                path: record.txt.path.as_str().to_owned(),
            })
            .collect(),
    )
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
