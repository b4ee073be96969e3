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

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;

use futures_util::future::BoxFuture;
use mdns_sd::{
    DaemonEvent, IfKind, ResolvedService, ScopedIp, ServiceDaemon, ServiceEvent, ServiceInfo,
    UnregisterStatus,
};
use tokio::sync::broadcast;

use super::service::{Announcement, DiscoveryEvent, Sighting, VisibleService, dialable_address};
use super::shared::Shared;
use super::txt::{SERVICE_TYPE, ShipTxt, TxtError};
use super::{Discovery, DiscoveryError};
use crate::Ski;

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
    fn if_kinds(&self) -> Option<Vec<IfKind>> {
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
}

impl MdnsConfig {
    /// All interfaces.
    pub fn new(own_ski: Ski) -> Self {
        MdnsConfig {
            own_ski,
            interfaces: InterfaceSelection::All,
        }
    }
}

/// SHIP discovery over multicast DNS. Browses `_ship._tcp.local.` from creation on; announces
/// on request. Dropping it stops the daemon without a goodbye: call
/// [`withdraw`](Discovery::withdraw) first.
pub struct MdnsDiscovery {
    daemon: ServiceDaemon,
    config: MdnsConfig,
    shared: Arc<Shared>,
    announced: Arc<Mutex<Option<Announced>>>,
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

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl MdnsDiscovery {
    /// Starts the mDNS daemon and browsing. Joins multicast on the network (see the module
    /// documentation).
    pub fn new(config: MdnsConfig) -> Result<Self, DiscoveryError> {
        let daemon = ServiceDaemon::new().map_err(daemon_error)?;
        let shared = Arc::new(Shared::new(Some(config.own_ski)));
        let announced = Arc::new(Mutex::new(None));
        if let Err(error) = start(&daemon, &config, &shared, &announced) {
            // Do not leave a daemon thread behind on the multicast sockets.
            let _ = daemon.shutdown();
            return Err(error);
        }
        Ok(MdnsDiscovery {
            daemon,
            config,
            shared,
            announced,
        })
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

/// Applies the interface selection and starts the monitor and browse threads. Both end when the
/// daemon shuts down (their channels close).
fn start(
    daemon: &ServiceDaemon,
    config: &MdnsConfig,
    shared: &Arc<Shared>,
    announced: &Arc<Mutex<Option<Announced>>>,
) -> Result<(), DiscoveryError> {
    if let Some(kinds) = config.interfaces.if_kinds() {
        daemon
            .disable_interface(IfKind::All)
            .map_err(daemon_error)?;
        daemon.enable_interface(kinds).map_err(daemon_error)?;
    }

    let monitor = daemon.monitor().map_err(daemon_error)?;
    let monitor_shared = shared.clone();
    let monitor_announced = announced.clone();
    thread::Builder::new()
        .name("ship-mdns-monitor".into())
        .spawn(move || {
            while let Ok(event) = monitor.recv() {
                on_daemon_event(&monitor_shared, &monitor_announced, event);
            }
        })
        .map_err(|e| DiscoveryError::Daemon(e.to_string()))?;

    let browse = daemon.browse(SERVICE_TYPE).map_err(daemon_error)?;
    let browse_shared = shared.clone();
    thread::Builder::new()
        .name("ship-mdns-browse".into())
        .spawn(move || {
            let mut refused = HashMap::new();
            while let Ok(event) = browse.recv() {
                on_service_event(&browse_shared, &mut refused, event);
            }
            browse_shared.clear();
        })
        .map_err(|e| DiscoveryError::Daemon(e.to_string()))?;
    Ok(())
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
        self.daemon.register(info).map_err(daemon_error)?;
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
                self.daemon
                    .unregister(&old.registered)
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
            let status = self
                .daemon
                .unregister(&announced.registered)
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
}

impl Drop for MdnsDiscovery {
    fn drop(&mut self) {
        if let Err(error) = self.daemon.shutdown() {
            tracing::debug!(%error, "mDNS daemon shutdown");
        }
    }
}
