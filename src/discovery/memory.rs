//! An in-memory LAN for tests: several [`InMemoryDiscovery`]s attach to one [`InMemoryLan`] and
//! see each other's announcements at once, with no sockets and no timers. Records live until
//! they are withdrawn or until the test expires them ([`InMemoryLan::expire`]), which stands in
//! for an mDNS TTL running out. Dropping a discovery without withdrawing is a crash: its
//! records stay on the LAN until expired.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use futures_util::future::BoxFuture;
use tokio::sync::broadcast;

use super::registry::DiscoveryLimits;
use super::service::{Announcement, DiscoveryEvent, Sighting, VisibleService, dialable_address};
use super::shared::Shared;
use super::shippairing::{
    PAIRING_EVENT_CAPACITY, PairingAnnouncement, PairingEvent, PairingSighting,
};
use super::{Discovery, DiscoveryError};
use crate::Ski;
use crate::sync::lock;
use ship_proto::txt::SERVICE_TYPE;

/// A simulated LAN. Cloning gives another handle to the same LAN.
#[derive(Debug, Clone, Default)]
pub struct InMemoryLan {
    state: Arc<Mutex<LanState>>,
}

#[derive(Debug, Default)]
struct LanState {
    next_member: u64,
    members: Vec<(u64, Weak<Shared>)>,
    /// Full instance name → (announcing member, or `None` for an injected record; sighting).
    records: BTreeMap<String, (Option<u64>, Sighting)>,
    /// Pairing Service records: full instance name → (announcing member, sighting).
    pairing_records: BTreeMap<String, (Option<u64>, PairingSighting)>,
    /// Each member's sender of pairing events.
    pairing_members: Vec<(u64, broadcast::Sender<PairingEvent>)>,
}

impl LanState {
    fn live_members(&mut self) -> Vec<Arc<Shared>> {
        self.members.retain(|(_, member)| member.strong_count() > 0);
        self.members
            .iter()
            .filter_map(|(_, m)| m.upgrade())
            .collect()
    }

    fn publish(&mut self, owner: Option<u64>, sighting: Sighting) {
        self.records
            .insert(sighting.instance.clone(), (owner, sighting.clone()));
        for member in self.live_members() {
            member.observe(sighting.clone());
        }
    }

    fn remove(&mut self, instance: &str) -> bool {
        if self.records.remove(instance).is_none() {
            return false;
        }
        for member in self.live_members() {
            member.forget(instance);
        }
        true
    }
}

impl LanState {
    fn publish_pairing(&mut self, owner: Option<u64>, sighting: PairingSighting) {
        self.pairing_records
            .insert(sighting.instance.clone(), (owner, sighting.clone()));
        for (_, member) in &self.pairing_members {
            let _ = member.send(PairingEvent::Announced(sighting.clone()));
        }
    }

    fn remove_pairing(&mut self, instance: &str) -> bool {
        if self.pairing_records.remove(instance).is_none() {
            return false;
        }
        for (_, member) in &self.pairing_members {
            let _ = member.send(PairingEvent::Withdrawn {
                instance: instance.to_owned(),
            });
        }
        true
    }
}

impl InMemoryLan {
    /// An empty LAN.
    pub fn new() -> Self {
        InMemoryLan::default()
    }

    fn state(&self) -> MutexGuard<'_, LanState> {
        lock(&self.state)
    }

    /// Attaches a node with SKI `own_ski` whose announcements are reachable at `ips` (the port
    /// comes from each announcement). It sees every record already on the LAN at once.
    pub fn attach(&self, own_ski: Ski, ips: Vec<IpAddr>) -> InMemoryDiscovery {
        self.attach_with_limits(own_ski, ips, DiscoveryLimits::default())
    }

    /// Like [`attach`](Self::attach), keeping the visible services within `limits`.
    pub fn attach_with_limits(
        &self,
        own_ski: Ski,
        ips: Vec<IpAddr>,
        limits: DiscoveryLimits,
    ) -> InMemoryDiscovery {
        let shared = Arc::new(Shared::new(Some(own_ski), limits));
        let mut state = self.state();
        let id = state.next_member;
        state.next_member += 1;
        state.members.push((id, Arc::downgrade(&shared)));
        for (_, sighting) in state.records.values() {
            shared.observe(sighting.clone());
        }
        InMemoryDiscovery {
            lan: self.clone(),
            id,
            ips,
            shared,
            current: Mutex::new(None),
            pairing_current: Mutex::new(None),
            pairing_events: broadcast::channel(PAIRING_EVENT_CAPACITY).0,
        }
    }

    /// Puts a Pairing Service record on the LAN as if some node announced it (a replay, a
    /// forgery, a flood). It stays until expired.
    pub fn inject_pairing(&self, sighting: PairingSighting) {
        self.state().publish_pairing(None, sighting);
    }

    /// Lets a Pairing Service record expire. Returns whether there was one.
    pub fn expire_pairing(&self, instance: &str) -> bool {
        self.state().remove_pairing(instance)
    }

    /// The full instance names of the Pairing Service records on the LAN.
    pub fn pairing_instances(&self) -> Vec<String> {
        self.state().pairing_records.keys().cloned().collect()
    }

    /// Puts a record on the LAN as if some node announced it (e.g. a second instance or a
    /// second address of a known SKI). It stays until expired.
    pub fn inject(&self, sighting: Sighting) {
        self.state().publish(None, sighting);
    }

    /// Lets the record of one full instance name expire (its TTL ran out). Returns whether
    /// there was such a record.
    pub fn expire(&self, instance: &str) -> bool {
        self.state().remove(instance)
    }

    /// Lets every record carrying `ski` expire. Returns how many there were.
    pub fn expire_ski(&self, ski: &Ski) -> usize {
        let mut state = self.state();
        let instances: Vec<String> = state
            .records
            .iter()
            .filter(|(_, (_, s))| s.txt.ski == *ski)
            .map(|(name, _)| name.clone())
            .collect();
        instances
            .iter()
            .filter(|instance| state.remove(instance))
            .count()
    }

    /// The full instance names currently on the LAN.
    pub fn instances(&self) -> Vec<String> {
        self.state().records.keys().cloned().collect()
    }
}

/// One node's view of an [`InMemoryLan`].
#[derive(Debug)]
pub struct InMemoryDiscovery {
    lan: InMemoryLan,
    id: u64,
    ips: Vec<IpAddr>,
    shared: Arc<Shared>,
    /// The full instance name we announce under, if announced.
    current: Mutex<Option<String>>,
    /// The full instance name of our Pairing Service request, if announced.
    pairing_current: Mutex<Option<String>>,
    pairing_events: broadcast::Sender<PairingEvent>,
}

impl InMemoryDiscovery {
    fn current(&self) -> MutexGuard<'_, Option<String>> {
        lock(&self.current)
    }
}

fn full_name(instance: &str) -> String {
    format!("{instance}.{SERVICE_TYPE}")
}

impl Discovery for InMemoryDiscovery {
    fn announce(&self, announcement: Announcement) -> Result<(), DiscoveryError> {
        let mut state = self.lan.state();
        let mut current = self.current();
        // Conflict resolution as mdns-sd does it (RFC 6762 §9): a name held by another node is
        // suffixed with " (2)", " (3)", ... until free.
        let wanted = announcement.instance_name.as_str().to_owned();
        let taken = |state: &LanState, name: &str| {
            state
                .records
                .get(&full_name(name))
                .is_some_and(|(owner, _)| *owner != Some(self.id))
        };
        let mut name = wanted.clone();
        let mut suffix = 2;
        while taken(&state, &name) {
            name = format!("{wanted} ({suffix})");
            suffix += 1;
        }
        if name != wanted {
            self.shared.emit(DiscoveryEvent::Renamed {
                from: wanted,
                to: name.clone(),
            });
        }
        let instance = full_name(&name);
        let ski = announcement.txt.ski.to_string();
        let addresses: BTreeSet<_> = self
            .ips
            .iter()
            .map(|ip| dialable_address(*ip, 0, announcement.port))
            .collect();
        let sighting = Sighting {
            instance: instance.clone(),
            host: format!("ship-{}.local.", &ski[..12]),
            txt: announcement.txt,
            addresses,
        };
        state.publish(Some(self.id), sighting);
        // Publish first, then drop a record under an old name: the SKI never looks lost.
        if let Some(old) = current.replace(instance.clone())
            && old != instance
        {
            state.remove(&old);
        }
        Ok(())
    }

    fn withdraw(&self) -> BoxFuture<'_, Result<(), DiscoveryError>> {
        let mut state = self.lan.state();
        if let Some(instance) = self.current().take() {
            state.remove(&instance);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn announced_instance(&self) -> Option<String> {
        self.current().clone()
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
        let added = self.shared.set_preferred(skis);
        if added.is_empty() {
            return;
        }
        // As `MdnsDiscovery` browses again: the records of a newly preferred SKI on the LAN are
        // reported again, so each reaches the hub as an event of its own, also one that newer
        // claims of that SKI pushed out of the registry before.
        let state = self.lan.state();
        for (_, sighting) in state.records.values() {
            if added.contains(&sighting.txt.ski) {
                self.shared.observe(sighting.clone());
            }
        }
    }

    fn announce_pairing(&self, announcement: PairingAnnouncement) -> Result<(), DiscoveryError> {
        let mut state = self.lan.state();
        let instance = format!(
            "{}.{}",
            announcement.instance_name.as_str(),
            crate::pairing_service::SERVICE_TYPE
        );
        let sighting = PairingSighting::new(
            instance.clone(),
            announcement
                .pairs
                .iter()
                .map(|(k, v)| (k.as_str(), Some(v.as_bytes()))),
        );
        state.publish_pairing(Some(self.id), sighting);
        let mut current = lock(&self.pairing_current);
        if let Some(old) = current.replace(instance.clone())
            && old != instance
        {
            state.remove_pairing(&old);
        }
        Ok(())
    }

    fn withdraw_pairing(&self) -> Result<(), DiscoveryError> {
        let mut state = self.lan.state();
        if let Some(instance) = lock(&self.pairing_current).take() {
            state.remove_pairing(&instance);
        }
        Ok(())
    }

    fn subscribe_pairing(&self) -> Result<broadcast::Receiver<PairingEvent>, DiscoveryError> {
        let mut state = self.lan.state();
        let receiver = self.pairing_events.subscribe();
        if !state.pairing_members.iter().any(|(id, _)| *id == self.id) {
            state
                .pairing_members
                .push((self.id, self.pairing_events.clone()));
        }
        // What is on the LAN already, as a browse reports the cache.
        for (_, sighting) in state.pairing_records.values() {
            let _ = self
                .pairing_events
                .send(PairingEvent::Announced(sighting.clone()));
        }
        Ok(receiver)
    }
}

impl Drop for InMemoryDiscovery {
    fn drop(&mut self) {
        // Detach only: records stay on the LAN like those of a crashed node.
        let mut state = self.lan.state();
        state.members.retain(|(id, _)| *id != self.id);
        state.pairing_members.retain(|(id, _)| *id != self.id);
        self.shared.clear();
    }
}
