//! [`MdnsDiscovery`]: SHIP discovery on the `mdns-sd` daemon (SHIP §7, RFC 6762/6763).
//!
//! Network hazard: `mdns-sd` joins the mDNS multicast groups on every interface that is up when
//! the daemon starts, before [`InterfaceSelection`] is applied. Anything that creates an
//! `MdnsDiscovery` in a test must run inside a private network namespace (`docs/discovery.md`).
//!
//! Decisions:
//!
//! * TXT order: the record is handed to `mdns-sd` as an ordered slice, which it keeps, so
//!   `txtvers=1` is the first string on the wire (§7.3.2).
//! * Name conflicts: `mdns-sd` probes every new name (RFC 6762 §8) and, when another responder
//!   owns it, renames ours to `name (2)`, `name (3)`, ... (RFC 6762 §9) and reports it on its
//!   monitor channel; we relay that as [`DiscoveryEvent::Renamed`]. The default instance name
//!   already carries a SKI prefix, so conflicts need two nodes configured with the same name.
//! * Host name: `ship-<first 12 hex digits of the SKI>.local.`; addresses are filled in by the
//!   daemon from the selected interfaces and follow address changes.
//! * Own records are dropped by SKI (we hear our own announcements on every interface).
//! * Bursts: `mdns-sd` closes a browse subscription whose event channel (1,000 events) is full.
//!   One thread only moves events from that channel into an unbounded local queue, another
//!   applies them to the registry (O(log N) each), so we keep up with the daemon; and when a
//!   subscription is closed anyway we browse again after a short backoff
//!   ([`MdnsConfig::resubscribe_delay`], doubling up to [`MdnsConfig::resubscribe_delay_max`]),
//!   forever. The visible list is kept meanwhile (re-browsing reports the daemon's cache again);
//!   it is cleared only when the daemon shuts down. The registry keeps within
//!   [`MdnsConfig::limits`].
//! * Lost answers: `mdns-sd` queries at growing intervals (1 s, 2 s, 4 s, ... up to an hour,
//!   RFC 6762 §5.2), so a paired peer whose announcements were lost (multicast loss on Wi-Fi,
//!   a full receive buffer during a flood) would be found only at the next query, up to an
//!   hour later. While a preferred SKI (a paired peer) has no record, we browse again every
//!   [`MdnsConfig::missing_peer_requery`] (60 s): the daemon then queries at once and restarts
//!   its schedule. That costs a few small queries a minute, and only while a paired peer is
//!   missing.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use mdns_sd::{
    DaemonEvent, IfKind, ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo,
    UnregisterStatus,
};
use tokio::sync::broadcast;

use super::registry::DiscoveryLimits;
use super::service::{Announcement, DiscoveryEvent, Sighting, VisibleService, dialable_address};
use super::shared::Shared;
use super::shippairing::daemon;
use super::shippairing::{PAIRING_EVENT_CAPACITY, PairingAnnouncement, PairingEvent};
use super::{Discovery, DiscoveryError};
use crate::Ski;
use crate::sync::lock;
use ship_proto::txt::{SERVICE_TYPE, ShipTxt, TxtError};

/// Which network interfaces mDNS uses, for both announcing and browsing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum InterfaceSelection {
    /// Every interface, loopback included (the `mdns-sd` default).
    #[default]
    All,
    /// Only interfaces with one of these names, e.g. `eth0`.
    Names(Vec<String>),
    /// Only the interfaces that carry one of these addresses. An address selects the interface
    /// for its address family only (IPv4 or IPv6).
    Addresses(Vec<IpAddr>),
}

impl InterfaceSelection {
    pub(super) fn if_kinds(&self) -> Option<Vec<IfKind>> {
        match self {
            InterfaceSelection::All => None,
            InterfaceSelection::Names(names) => {
                Some(names.iter().map(|n| IfKind::Name(n.clone())).collect())
            }
            InterfaceSelection::Addresses(addrs) => {
                Some(addrs.iter().map(|a| IfKind::Addr(*a)).collect())
            }
        }
    }
}

/// Configuration of an [`MdnsDiscovery`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MdnsConfig {
    /// Our SKI: records carrying it are ours and never become visible.
    pub own_ski: Ski,
    /// The interfaces to use.
    pub interfaces: InterfaceSelection,
    /// What the registry of visible services keeps (per SKI and in total).
    pub limits: DiscoveryLimits,
    /// The first delay before browsing again after `mdns-sd` closed our subscription (its event
    /// channel overflowed). Default 100 ms.
    pub resubscribe_delay: Duration,
    /// The delay doubles after each closure in a row, up to this. Default 5 s.
    pub resubscribe_delay_max: Duration,
    /// While a preferred SKI (a paired peer of the hub) is not visible, browse again (the
    /// daemon queries the LAN at once) when this long has passed since the last browse.
    /// `None` leaves the query schedule to the daemon alone. Default 60 s.
    pub missing_peer_requery: Option<Duration>,
}

impl MdnsConfig {
    /// All interfaces, default limits and delays.
    pub fn new(own_ski: Ski) -> Self {
        MdnsConfig {
            own_ski,
            interfaces: InterfaceSelection::All,
            limits: DiscoveryLimits::default(),
            resubscribe_delay: Duration::from_millis(100),
            resubscribe_delay_max: Duration::from_secs(5),
            missing_peer_requery: Some(Duration::from_secs(60)),
        }
    }
}

/// A subscription that lived this long without closing resets the re-subscription backoff.
const SUBSCRIPTION_HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// SHIP discovery over multicast DNS. Browses `_ship._tcp.local.` from creation on; announces
/// on request. Dropping it stops the daemon without a goodbye: call
/// [`withdraw`](Discovery::withdraw) first.
pub struct MdnsDiscovery {
    daemon: ServiceDaemon,
    config: MdnsConfig,
    shared: Arc<Shared>,
    announced: Arc<Mutex<Option<Announced>>>,
    /// Set before the daemon is shut down: the browse thread then stops re-subscribing.
    stopping: Arc<AtomicBool>,
    resubscriptions: Arc<std::sync::atomic::AtomicU64>,
    requeries: Arc<std::sync::atomic::AtomicU64>,
    /// Set when a SKI became preferred: the browse thread browses again.
    rebrowse: Arc<AtomicBool>,
    /// The full name of our Pairing Service request, if announced.
    pairing_registered: Mutex<Option<String>>,
    /// Pairing Service requests heard on the LAN (browsing starts on the first subscription).
    pairing_events: broadcast::Sender<PairingEvent>,
    pairing_browsing: AtomicBool,
}

impl std::fmt::Debug for MdnsDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MdnsDiscovery")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Announced {
    /// The full name we registered (`mdns-sd` keys the registration by it, even after a rename).
    registered: String,
    /// The full name in use on the wire (differs after a conflict rename).
    in_use: String,
}

fn daemon_error(error: mdns_sd::Error) -> DiscoveryError {
    DiscoveryError::Daemon(error.to_string())
}

/// How long a register or unregister waits for room in the daemon's command queue.
const COMMAND_QUEUE_WAIT: Duration = Duration::from_millis(250);

/// How long a shutdown keeps trying, from a thread of its own, to get into a full queue.
const SHUTDOWN_QUEUE_WAIT: Duration = Duration::from_secs(30);

/// Hands a command to the daemon, waiting up to `wait` for room in its command queue.
///
/// `mdns-sd`'s command queue holds 100 commands. It is full while the daemon's thread is behind
/// (busy with a flood of packets) and the daemon queues commands to itself when a send fails,
/// so `Again` is a passing state, not an error: a shutdown that gave up on it would leave the
/// daemon's thread running, still announcing a hub that has stopped. Any other error, and
/// `Again` after `wait`, is returned.
fn until_queued<T>(
    wait: Duration,
    mut command: impl FnMut() -> Result<T, mdns_sd::Error>,
) -> Result<T, mdns_sd::Error> {
    let deadline = Instant::now() + wait;
    loop {
        match command() {
            Err(mdns_sd::Error::Again) if Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(1));
            }
            other => return other,
        }
    }
}

impl MdnsDiscovery {
    /// Starts the mDNS daemon and browsing. Joins multicast on the network (see the module
    /// documentation).
    pub fn new(config: MdnsConfig) -> Result<Self, DiscoveryError> {
        let daemon = ServiceDaemon::new().map_err(daemon_error)?;
        let shared = Arc::new(Shared::new(Some(config.own_ski), config.limits));
        let announced = Arc::new(Mutex::new(None));
        let discovery = MdnsDiscovery {
            daemon,
            config,
            shared,
            announced,
            stopping: Arc::new(AtomicBool::new(false)),
            resubscriptions: Arc::default(),
            requeries: Arc::default(),
            rebrowse: Arc::default(),
            pairing_registered: Mutex::new(None),
            pairing_events: broadcast::channel(PAIRING_EVENT_CAPACITY).0,
            pairing_browsing: AtomicBool::new(false),
        };
        // On an error, dropping `discovery` shuts the daemon down: no thread is left behind on
        // the multicast sockets.
        discovery.start()?;
        Ok(discovery)
    }

    /// How many times the browse subscription was closed by the daemon and opened again.
    pub fn resubscriptions(&self) -> u64 {
        self.resubscriptions.load(Ordering::Relaxed)
    }

    /// How many times we browsed again because a paired peer was missing
    /// ([`MdnsConfig::missing_peer_requery`]).
    pub fn requeries(&self) -> u64 {
        self.requeries.load(Ordering::Relaxed)
    }

    fn service_info(&self, announcement: &Announcement) -> Result<ServiceInfo, DiscoveryError> {
        let properties = announcement.txt.to_properties();
        let ski = announcement.txt.ski.to_string();
        let host = format!("ship-{}.local.", &ski[..12]);
        let mut info = ServiceInfo::new(
            SERVICE_TYPE,
            announcement.instance_name.as_str(),
            &host,
            (),
            announcement.port,
            &properties[..],
        )
        .map_err(daemon_error)?
        .enable_addr_auto();
        if let Some(kinds) = self.config.interfaces.if_kinds() {
            info.set_interfaces(kinds);
        }
        Ok(info)
    }
}

impl MdnsDiscovery {
    /// Applies the interface selection and starts the monitor, browse and registry threads.
    /// They end when the daemon shuts down.
    fn start(&self) -> Result<(), DiscoveryError> {
        let daemon = &self.daemon;
        if let Some(kinds) = self.config.interfaces.if_kinds() {
            daemon
                .disable_interface(IfKind::All)
                .map_err(daemon_error)?;
            daemon.enable_interface(kinds).map_err(daemon_error)?;
        }

        let monitor = daemon.monitor().map_err(daemon_error)?;
        let monitor_shared = self.shared.clone();
        let monitor_announced = self.announced.clone();
        spawn("ship-mdns-monitor", move || {
            while let Ok(event) = monitor.recv() {
                on_daemon_event(&monitor_shared, &monitor_announced, event);
            }
        })?;

        let first = daemon.browse(SERVICE_TYPE).map_err(daemon_error)?;
        let (queue, queued) = mpsc::channel();
        let browser = Browser {
            daemon: daemon.clone(),
            stopping: self.stopping.clone(),
            resubscriptions: self.resubscriptions.clone(),
            delay: self.config.resubscribe_delay,
            delay_max: self.config.resubscribe_delay_max,
            requery: Requery::new(self.config.missing_peer_requery, Instant::now()),
            requeries: self.requeries.clone(),
            rebrowse: self.rebrowse.clone(),
            shared: self.shared.clone(),
        };
        spawn("ship-mdns-browse", move || browser.run(first, &queue))?;
        let registry_shared = self.shared.clone();
        spawn("ship-mdns-registry", move || {
            let mut refused = HashMap::new();
            while let Ok(event) = queued.recv() {
                on_service_event(&registry_shared, &mut refused, event);
            }
            registry_shared.clear();
        })?;
        Ok(())
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), DiscoveryError> {
    thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
        .map_err(|e| DiscoveryError::Daemon(e.to_string()))
}

/// Keeps a browse subscription open and moves its events to the registry thread as fast as the
/// daemon produces them; browses again when the daemon closed the subscription, or when a paired
/// peer stays missing ([`Requery`]).
struct Browser {
    daemon: ServiceDaemon,
    stopping: Arc<AtomicBool>,
    resubscriptions: Arc<std::sync::atomic::AtomicU64>,
    delay: Duration,
    delay_max: Duration,
    requery: Requery,
    requeries: Arc<std::sync::atomic::AtomicU64>,
    /// A SKI became preferred: browse again (see [`MdnsDiscovery`]'s `set_preferred`).
    rebrowse: Arc<AtomicBool>,
    shared: Arc<Shared>,
}

impl Browser {
    fn run(mut self, first: mdns_sd::Receiver<ServiceEvent>, queue: &mpsc::Sender<ServiceEvent>) {
        let mut subscription = first;
        let mut delay = self.delay;
        loop {
            let opened = Instant::now();
            loop {
                let rebrowse = self.rebrowse.swap(false, Ordering::AcqRel);
                let timeout = if rebrowse {
                    Err(mdns_sd::RecvTimeoutError::Timeout)
                } else {
                    subscription.recv_timeout(self.requery.tick())
                };
                match timeout {
                    Ok(event) => {
                        if queue.send(event).is_err() {
                            return;
                        }
                    }
                    Err(mdns_sd::RecvTimeoutError::Timeout) => {
                        let now = Instant::now();
                        if !rebrowse && !self.requery.due(now, self.shared.preferred_missing()) {
                            continue;
                        }
                        match self.daemon.browse(SERVICE_TYPE) {
                            Ok(fresh) => {
                                // The daemon dropped its end of the old subscription; what is
                                // still in it goes first.
                                for event in subscription.drain() {
                                    if queue.send(event).is_err() {
                                        return;
                                    }
                                }
                                subscription = fresh;
                                if rebrowse {
                                    tracing::debug!("a SKI was paired: mDNS browse again");
                                } else {
                                    self.requeries.fetch_add(1, Ordering::Relaxed);
                                    tracing::debug!("a paired peer is missing: mDNS browse again");
                                }
                            }
                            // A full command queue: try at the next tick.
                            Err(mdns_sd::Error::Again) if rebrowse => {
                                self.rebrowse.store(true, Ordering::Release);
                                thread::sleep(Duration::from_millis(10));
                            }
                            Err(mdns_sd::Error::Again) => self.requery.retry(),
                            Err(error) => {
                                tracing::debug!(%error, "mDNS browse: daemon gone");
                                return;
                            }
                        }
                    }
                    Err(mdns_sd::RecvTimeoutError::Disconnected) => break,
                }
            }
            if self.stopping.load(Ordering::Acquire) {
                return;
            }
            if opened.elapsed() >= SUBSCRIPTION_HEALTHY_AFTER {
                delay = self.delay;
            }
            tracing::warn!(
                retry_in = ?delay,
                "mDNS browse subscription closed by the daemon (event channel full?): browsing again"
            );
            loop {
                if !self.pause(delay) {
                    return;
                }
                delay = (delay * 2).min(self.delay_max);
                match self.daemon.browse(SERVICE_TYPE) {
                    Ok(receiver) => {
                        subscription = receiver;
                        self.resubscriptions.fetch_add(1, Ordering::Relaxed);
                        self.requery.browsed(Instant::now());
                        break;
                    }
                    Err(mdns_sd::Error::Again) => continue,
                    Err(error) => {
                        tracing::debug!(%error, "mDNS browse: daemon gone");
                        return;
                    }
                }
            }
        }
    }

    /// Sleeps `delay` unless the discovery stops meanwhile; returns whether to go on.
    fn pause(&self, delay: Duration) -> bool {
        let until = Instant::now() + delay;
        while !self.stopping.load(Ordering::Acquire) {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return true;
            }
            thread::sleep(left.min(Duration::from_millis(50)));
        }
        false
    }
}

/// When to browse again because a paired peer is missing: once `every` has passed since the
/// last browse while one is missing. The clock restarts whenever none is missing, so a peer that
/// just went away is queried for `every` after it went.
#[derive(Debug)]
struct Requery {
    every: Option<Duration>,
    last: Instant,
}

/// How often the browse thread looks whether a requery is due, at most.
const REQUERY_TICK: Duration = Duration::from_secs(1);

impl Requery {
    fn new(every: Option<Duration>, now: Instant) -> Self {
        Requery { every, last: now }
    }

    /// How long to wait for an event before looking again.
    fn tick(&self) -> Duration {
        self.every
            .map_or(REQUERY_TICK, |every| every.min(REQUERY_TICK))
            .max(Duration::from_millis(1))
    }

    /// Whether to browse again now; if so, the clock restarts.
    fn due(&mut self, now: Instant, preferred_missing: bool) -> bool {
        let Some(every) = self.every else {
            return false;
        };
        if !preferred_missing || now.saturating_duration_since(self.last) < every {
            if !preferred_missing {
                self.last = now;
            }
            return false;
        }
        self.last = now;
        true
    }

    /// The browse could not be sent: due again at the next look.
    fn retry(&mut self) {
        if let Some(every) = self.every {
            self.last = self.last.checked_sub(every).unwrap_or(self.last);
        }
    }

    /// A browse was sent for another reason: the clock restarts.
    fn browsed(&mut self, now: Instant) {
        self.last = now;
    }
}

fn on_daemon_event(shared: &Shared, announced: &Mutex<Option<Announced>>, event: DaemonEvent) {
    match event {
        DaemonEvent::NameChange(change) => {
            let mut announced = lock(announced);
            let Some(current) = announced.as_mut() else {
                return;
            };
            if !change.original.eq_ignore_ascii_case(&current.registered)
                || change.new_name == current.in_use
            {
                return;
            }
            tracing::info!(
                from = %change.original,
                to = %change.new_name,
                interface = %change.intf_name,
                "mDNS instance name taken on the LAN: renamed"
            );
            current.in_use = change.new_name.clone();
            shared.emit(DiscoveryEvent::Renamed {
                from: change.original,
                to: change.new_name,
            });
        }
        DaemonEvent::Error(error) => tracing::warn!(?error, "mDNS daemon error"),
        other => tracing::trace!(event = ?other, "mDNS daemon event"),
    }
}

/// Feeds one browse event into the registry. `refused` remembers the error of each refused
/// instance so that a peer re-announcing the same bad record is reported once.
fn on_service_event(shared: &Shared, refused: &mut HashMap<String, TxtError>, event: ServiceEvent) {
    match event {
        ServiceEvent::ServiceResolved(resolved) => match sighting_of(&resolved) {
            Ok(sighting) => {
                refused.remove(&resolved.fullname);
                shared.observe(sighting);
            }
            Err(error) => {
                shared.forget(&resolved.fullname);
                if refused.get(&resolved.fullname) != Some(&error) {
                    tracing::debug!(instance = ?resolved.fullname, ?error, "refusing SHIP record");
                    refused.insert(resolved.fullname.clone(), error.clone());
                    shared.emit(DiscoveryEvent::Refused {
                        instance: resolved.fullname.clone(),
                        error,
                    });
                }
            }
        },
        ServiceEvent::ServiceRemoved(_, fullname) => {
            refused.remove(&fullname);
            shared.forget(&fullname);
        }
        other => tracing::trace!(event = ?other, "mDNS browse event"),
    }
}

/// Converts a resolution of `mdns-sd` into a [`Sighting`]; fails on a bad TXT record.
fn sighting_of(resolved: &ResolvedService) -> Result<Sighting, TxtError> {
    let txt = ShipTxt::from_properties(resolved.txt_properties.iter().map(|p| (p.key(), p.val())))?;
    let addresses: BTreeSet<_> = resolved
        .addresses
        .iter()
        .map(|scoped| {
            let scope = match scoped {
                ScopedIp::V6(v6) => v6.scope_id().index,
                _ => 0,
            };
            dialable_address(scoped.to_ip_addr(), scope, resolved.port)
        })
        .collect();
    Ok(Sighting {
        instance: resolved.fullname.clone(),
        host: resolved.host.clone(),
        txt,
        addresses,
    })
}

impl Discovery for MdnsDiscovery {
    fn announce(&self, announcement: Announcement) -> Result<(), DiscoveryError> {
        let info = self.service_info(&announcement)?;
        let fullname = info.get_fullname().to_owned();
        let mut announced = lock(&self.announced);
        let same_name = announced
            .as_ref()
            .filter(|old| old.registered.eq_ignore_ascii_case(&fullname));
        // Re-announcing under the same name keeps a name the daemon chose after a conflict.
        let in_use = same_name.map_or_else(|| fullname.clone(), |old| old.in_use.clone());
        until_queued(COMMAND_QUEUE_WAIT, || self.daemon.register(info.clone()))
            .map_err(daemon_error)?;
        let previous = announced.replace(Announced {
            registered: fullname.clone(),
            in_use,
        });
        if let Some(old) = previous
            && !old.registered.eq_ignore_ascii_case(&fullname)
        {
            // A new name: goodbye under the old one, after the new one is out, so that peers
            // never see our SKI lost. Its status is not awaited.
            drop(
                until_queued(COMMAND_QUEUE_WAIT, || {
                    self.daemon.unregister(&old.registered)
                })
                .map_err(daemon_error)?,
            );
        }
        Ok(())
    }

    fn withdraw(&self) -> BoxFuture<'_, Result<(), DiscoveryError>> {
        Box::pin(async move {
            let Some(announced) = lock(&self.announced).take() else {
                return Ok(());
            };
            let status = until_queued(COMMAND_QUEUE_WAIT, || {
                self.daemon.unregister(&announced.registered)
            })
            .map_err(daemon_error)?;
            match status.recv_async().await {
                Ok(UnregisterStatus::OK) => Ok(()),
                Ok(UnregisterStatus::NotFound) => {
                    tracing::debug!(instance = %announced.registered, "withdraw: not registered");
                    Ok(())
                }
                Err(_) => Err(DiscoveryError::Closed),
            }
        })
    }

    fn announced_instance(&self) -> Option<String> {
        lock(&self.announced).as_ref().map(|a| a.in_use.clone())
    }

    fn subscribe(&self) -> broadcast::Receiver<DiscoveryEvent> {
        self.shared.subscribe()
    }

    fn visible(&self) -> Vec<VisibleService> {
        self.shared.visible()
    }

    fn visible_service(&self, ski: &Ski) -> Option<VisibleService> {
        self.shared.visible_service(ski)
    }

    fn set_preferred(&self, skis: Vec<Ski>) {
        if !self.shared.set_preferred(skis).is_empty() {
            // Browse again: the daemon reports every record in its cache, so each claim of a
            // newly preferred SKI reaches the hub as an event of its own, also one that newer
            // claims pushed out of the registry before the SKI was paired.
            self.rebrowse.store(true, Ordering::Release);
        }
    }

    fn announce_pairing(&self, announcement: PairingAnnouncement) -> Result<(), DiscoveryError> {
        let ski = self.config.own_ski.to_string();
        let host = format!("ship-{}.local.", &ski[..12]);
        let info = daemon::service_info(&announcement, &host, &self.config.interfaces)?;
        let fullname = info.get_fullname().to_owned();
        let mut registered = lock(&self.pairing_registered);
        until_queued(COMMAND_QUEUE_WAIT, || self.daemon.register(info.clone()))
            .map_err(daemon_error)?;
        if let Some(old) = registered.replace(fullname.clone())
            && !old.eq_ignore_ascii_case(&fullname)
        {
            drop(
                until_queued(COMMAND_QUEUE_WAIT, || self.daemon.unregister(&old))
                    .map_err(daemon_error)?,
            );
        }
        Ok(())
    }

    fn withdraw_pairing(&self) -> Result<(), DiscoveryError> {
        if let Some(fullname) = lock(&self.pairing_registered).take() {
            // The goodbye goes out in the background; its status is not awaited.
            drop(
                until_queued(COMMAND_QUEUE_WAIT, || self.daemon.unregister(&fullname))
                    .map_err(daemon_error)?,
            );
        }
        Ok(())
    }

    fn subscribe_pairing(&self) -> Result<broadcast::Receiver<PairingEvent>, DiscoveryError> {
        let receiver = self.pairing_events.subscribe();
        if !self.pairing_browsing.swap(true, Ordering::AcqRel) {
            let daemon = self.daemon.clone();
            let stopping = self.stopping.clone();
            let events = self.pairing_events.clone();
            spawn("ship-mdns-pairing", move || {
                daemon::browse(daemon, stopping, events);
            })?;
        }
        Ok(receiver)
    }
}

impl Drop for MdnsDiscovery {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::Release);
        match self.daemon.shutdown() {
            Ok(_) => {}
            // The queue is full for the moment: keep trying without blocking the dropper.
            Err(mdns_sd::Error::Again) => {
                let daemon = self.daemon.clone();
                let spawned = spawn("ship-mdns-shutdown", move || {
                    if let Err(error) = until_queued(SHUTDOWN_QUEUE_WAIT, || daemon.shutdown()) {
                        tracing::warn!(%error, "mDNS daemon did not take the shutdown");
                    }
                });
                if let Err(error) = spawned {
                    tracing::warn!(%error, "mDNS daemon shutdown");
                }
            }
            Err(error) => tracing::debug!(%error, "mDNS daemon shutdown"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_full_command_queue_is_waited_for_and_other_errors_are_returned_at_once() {
        // `Again` twice, then taken.
        let mut calls = 0;
        let taken = until_queued(Duration::from_secs(5), || {
            calls += 1;
            if calls < 3 {
                Err(mdns_sd::Error::Again)
            } else {
                Ok(calls)
            }
        });
        assert_eq!(taken.unwrap(), 3);
        // A queue that stays full: `Again` once the wait is over.
        let mut calls = 0;
        let full = until_queued(Duration::from_millis(20), || {
            calls += 1;
            Err::<(), _>(mdns_sd::Error::Again)
        });
        assert!(matches!(full, Err(mdns_sd::Error::Again)));
        assert!(calls > 1, "tried once only");
        // A daemon that is gone: no waiting.
        let mut calls = 0;
        let gone = until_queued(Duration::from_secs(5), || {
            calls += 1;
            Err::<(), _>(mdns_sd::Error::DaemonShutdown)
        });
        assert!(matches!(gone, Err(mdns_sd::Error::DaemonShutdown)));
        assert_eq!(calls, 1);
    }

    #[test]
    fn a_missing_paired_peer_is_queried_again_every_interval() {
        let start = Instant::now();
        let mut requery = Requery::new(Some(MINUTE), start);
        assert!(!requery.due(start + Duration::from_secs(59), true));
        assert!(requery.due(start + MINUTE, true));
        // The clock restarted at the requery.
        assert!(!requery.due(start + MINUTE + Duration::from_secs(30), true));
        assert!(requery.due(start + 2 * MINUTE, true));
    }

    #[test]
    fn nothing_is_queried_while_every_paired_peer_is_visible() {
        let start = Instant::now();
        let mut requery = Requery::new(Some(MINUTE), start);
        for minutes in 1..10 {
            assert!(!requery.due(start + minutes * MINUTE, false));
        }
        // A peer goes missing at 9 min: queried a full interval later, not at once.
        let gone = start + 9 * MINUTE;
        assert!(!requery.due(gone + Duration::from_secs(1), true));
        assert!(requery.due(gone + MINUTE, true));
    }

    #[test]
    fn another_browse_or_a_refused_one_moves_the_clock() {
        let start = Instant::now();
        let mut requery = Requery::new(Some(MINUTE), start);
        requery.browsed(start + Duration::from_secs(50));
        assert!(!requery.due(start + MINUTE, true), "browsed 10 s ago");
        assert!(requery.due(start + Duration::from_secs(110), true));
        requery.retry();
        assert!(
            requery.due(start + Duration::from_secs(111), true),
            "a browse the daemon refused is due again at the next look"
        );
    }

    #[test]
    fn requery_off_never_queries_and_ticks_each_second() {
        let start = Instant::now();
        let mut requery = Requery::new(None, start);
        assert!(!requery.due(start + 100 * MINUTE, true));
        assert_eq!(requery.tick(), REQUERY_TICK);
        let short = Requery::new(Some(Duration::from_millis(200)), start);
        assert_eq!(short.tick(), Duration::from_millis(200));
        let zero = Requery::new(Some(Duration::ZERO), start);
        assert_eq!(zero.tick(), Duration::from_millis(1));
    }
}
