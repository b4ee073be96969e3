//! The registry of visible services: a pure data structure fed with sightings and losses,
//! answering "who is visible, and where can I dial them". Both discovery implementations use
//! it, and the Hub can use it directly.
//!
//! Rules:
//!
//! * records are keyed by full instance name; a new sighting of an instance replaces the
//!   previous one (a resolver reports the complete address set each time);
//! * records are merged per SKI: the addresses are the union over all instances (and so over
//!   all interfaces), the TXT record is that of the most recent sighting;
//! * our own SKI is never visible (we hear our own announcement on every interface);
//! * the visible list is sorted by SKI, so its order is stable across calls and machines;
//! * an event is produced only when what the Hub sees changes: repeated identical sightings
//!   are silent;
//! * what is kept is bounded ([`DiscoveryLimits`]): at most `max_instances_per_ski` records per
//!   SKI and `max_instances` in total. Beyond either, the stalest record goes (the one whose
//!   latest sighting is oldest). Records of [preferred](VisibleServices::set_preferred) SKIs (the
//!   hub prefers its paired peers) are never evicted to make room for others, so a flood of
//!   strangers cannot push a paired peer out of view.
//!
//! Each sighting costs O(log N) plus O(`max_instances_per_ski`) to merge its SKI, whatever the
//! number N of records.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;

use super::service::{DiscoveryEvent, Sighting, VisibleService};
use crate::Ski;

/// Bounds on the records a discovery keeps (see the [`VisibleServices`] rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiscoveryLimits {
    /// Service instances kept per SKI. A node announces one instance per name (a few after a
    /// rename or on several interfaces); more are claims of others. Beyond it, the stalest
    /// instance of that SKI is evicted. Default 4.
    pub max_instances_per_ski: usize,
    /// Service instances kept in total, over all SKIs (so also visible services). Beyond it,
    /// the stalest record of a SKI that is not preferred is evicted. Default 1,000.
    pub max_instances: usize,
}

impl Default for DiscoveryLimits {
    fn default() -> Self {
        DiscoveryLimits {
            max_instances_per_ski: 4,
            max_instances: 1000,
        }
    }
}

/// The visible SHIP services, merged per SKI. See the module documentation for the rules.
#[derive(Debug, Clone, Default)]
pub struct VisibleServices {
    own_ski: Option<Ski>,
    limits: DiscoveryLimits,
    /// Full instance name → (sequence number of its latest sighting, the sighting).
    records: HashMap<String, (u64, Sighting)>,
    /// Per SKI, its instances by the sequence number of their latest sighting.
    by_ski: BTreeMap<Ski, BTreeMap<u64, String>>,
    /// The records that may be evicted for room (those of SKIs not preferred), stalest first.
    evictable: BTreeMap<u64, String>,
    preferred: HashSet<Ski>,
    next_sequence: u64,
}

impl VisibleServices {
    /// An empty registry that ignores sightings of `own_ski`, with the default limits.
    pub fn new(own_ski: Option<Ski>) -> Self {
        Self::with_limits(own_ski, DiscoveryLimits::default())
    }

    /// An empty registry that ignores sightings of `own_ski` and keeps within `limits` (each
    /// limit at least 1).
    pub fn with_limits(own_ski: Option<Ski>, limits: DiscoveryLimits) -> Self {
        VisibleServices {
            own_ski,
            limits: DiscoveryLimits {
                max_instances_per_ski: limits.max_instances_per_ski.max(1),
                max_instances: limits.max_instances.max(1),
            },
            ..VisibleServices::default()
        }
    }

    /// Records a sighting; returns what changed for the Hub (nothing for our own SKI or for a
    /// repeat). If the instance carried another SKI before, that SKI may be lost; records
    /// evicted to stay within the limits may lose theirs.
    pub fn observe(&mut self, sighting: Sighting) -> Vec<DiscoveryEvent> {
        if Some(sighting.txt.ski) == self.own_ski {
            return Vec::new();
        }
        let mut changes = Changes::default();
        let new_ski = sighting.txt.ski;
        if let Some(previous) = self.records.get(&sighting.instance).map(|(_, s)| s.txt.ski) {
            changes.touch(self, previous);
        }
        changes.touch(self, new_ski);
        let instance = sighting.instance.clone();
        self.remove_record(&instance);
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.records.insert(instance.clone(), (sequence, sighting));
        self.by_ski
            .entry(new_ski)
            .or_default()
            .insert(sequence, instance.clone());
        if !self.preferred.contains(&new_ski) {
            self.evictable.insert(sequence, instance);
        }
        // Per SKI: the stalest instances of this SKI go.
        while let Some(stalest) = self.by_ski.get(&new_ski).and_then(|instances| {
            (instances.len() > self.limits.max_instances_per_ski)
                .then(|| instances.values().next().cloned())
                .flatten()
        }) {
            self.remove_record(&stalest);
        }
        self.evict_for_room(&mut changes);
        changes.events(self)
    }

    /// Removes the record of one instance (goodbye or expiry); returns what changed: `Lost` if
    /// it was the last record of its SKI, `Seen` with the remaining merge otherwise.
    pub fn forget(&mut self, instance: &str) -> Vec<DiscoveryEvent> {
        let Some(ski) = self.records.get(instance).map(|(_, s)| s.txt.ski) else {
            return Vec::new();
        };
        let mut changes = Changes::default();
        changes.touch(self, ski);
        self.remove_record(instance);
        changes.events(self)
    }

    /// Removes every record (e.g. when the implementation shuts down); returns a `Lost` per SKI.
    pub fn clear(&mut self) -> Vec<DiscoveryEvent> {
        let lost = self
            .by_ski
            .keys()
            .map(|ski| DiscoveryEvent::Lost(*ski))
            .collect();
        self.records.clear();
        self.by_ski.clear();
        self.evictable.clear();
        lost
    }

    /// Replaces the set of preferred SKIs (the hub's paired peers): their records are never
    /// evicted to make room for others (they still count against the per-SKI limit). Returns
    /// what changed if records had to be evicted because fewer SKIs are preferred now.
    pub fn set_preferred(&mut self, skis: impl IntoIterator<Item = Ski>) -> Vec<DiscoveryEvent> {
        let preferred: HashSet<Ski> = skis.into_iter().collect();
        let changed: Vec<Ski> = preferred
            .symmetric_difference(&self.preferred)
            .copied()
            .collect();
        self.preferred = preferred;
        for ski in changed {
            let Some(instances) = self.by_ski.get(&ski) else {
                continue;
            };
            for (sequence, instance) in instances {
                if self.preferred.contains(&ski) {
                    self.evictable.remove(sequence);
                } else {
                    self.evictable.insert(*sequence, instance.clone());
                }
            }
        }
        let mut changes = Changes::default();
        self.evict_for_room(&mut changes);
        changes.events(self)
    }

    /// Whether `ski` is preferred.
    pub fn is_preferred(&self, ski: &Ski) -> bool {
        self.preferred.contains(ski)
    }

    /// Whether a preferred SKI (a paired peer of the hub) has no record.
    pub fn preferred_missing(&self) -> bool {
        self.preferred
            .iter()
            .any(|ski| !self.by_ski.contains_key(ski))
    }

    /// Whether an instance has a record.
    pub fn contains_instance(&self, instance: &str) -> bool {
        self.records.contains_key(instance)
    }

    /// How many instance records are kept (at most the `max_instances` limit, plus those of
    /// preferred SKIs).
    pub fn instance_count(&self) -> usize {
        self.records.len()
    }

    /// The visible services, sorted by SKI.
    pub fn list(&self) -> Vec<VisibleService> {
        self.by_ski.keys().filter_map(|ski| self.get(ski)).collect()
    }

    /// The merged view of one SKI, if visible.
    pub fn get(&self, ski: &Ski) -> Option<VisibleService> {
        let by_recency = self.by_ski.get(ski)?;
        let mut instances = Vec::with_capacity(by_recency.len());
        let mut addresses = BTreeSet::new();
        let mut dial_order: Vec<SocketAddr> = Vec::new();
        let mut txt = None;
        let mut sightings = Vec::with_capacity(by_recency.len());
        for instance in by_recency.values().rev() {
            let Some((_, sighting)) = self.records.get(instance) else {
                continue;
            };
            txt.get_or_insert_with(|| sighting.txt.clone());
            sightings.push(sighting.clone());
            instances.push(instance.clone());
            for address in &sighting.addresses {
                if addresses.insert(*address) {
                    dial_order.push(*address);
                }
            }
        }
        instances.sort();
        sightings.sort_by(|a, b| a.instance.cmp(&b.instance));
        Some(VisibleService {
            ski: *ski,
            txt: txt?,
            instances,
            addresses,
            dial_order,
            sightings,
        })
    }

    /// Drops one record from every index.
    fn remove_record(&mut self, instance: &str) {
        let Some((sequence, sighting)) = self.records.remove(instance) else {
            return;
        };
        self.evictable.remove(&sequence);
        let ski = sighting.txt.ski;
        if let Some(instances) = self.by_ski.get_mut(&ski) {
            instances.remove(&sequence);
            if instances.is_empty() {
                self.by_ski.remove(&ski);
            }
        }
    }

    /// Evicts the stalest evictable records until the total limit holds.
    fn evict_for_room(&mut self, changes: &mut Changes) {
        while self.records.len() > self.limits.max_instances {
            let Some(stalest) = self.evictable.values().next().cloned() else {
                return;
            };
            if let Some(ski) = self.records.get(&stalest).map(|(_, s)| s.txt.ski) {
                changes.touch(self, ski);
            }
            self.remove_record(&stalest);
        }
    }
}

/// The SKIs an operation touched, with their merged view before it.
#[derive(Default)]
struct Changes {
    before: Vec<(Ski, Option<VisibleService>)>,
}

impl Changes {
    fn touch(&mut self, registry: &VisibleServices, ski: Ski) {
        if !self.before.iter().any(|(s, _)| *s == ski) {
            self.before.push((ski, registry.get(&ski)));
        }
    }

    fn events(self, registry: &VisibleServices) -> Vec<DiscoveryEvent> {
        let mut events = Vec::new();
        for (ski, before) in self.before {
            match (before, registry.get(&ski)) {
                (Some(_), None) => events.push(DiscoveryEvent::Lost(ski)),
                (before, Some(now)) if before.as_ref() != Some(&now) => {
                    events.push(DiscoveryEvent::Seen(now));
                }
                _ => {}
            }
        }
        events
    }
}
