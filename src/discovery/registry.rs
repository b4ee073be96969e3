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
//!   are silent.

use std::collections::{BTreeMap, BTreeSet};

use super::service::{DiscoveryEvent, Sighting, VisibleService};
use crate::Ski;

/// The visible SHIP services, merged per SKI. See the module documentation for the rules.
#[derive(Debug, Clone, Default)]
pub struct VisibleServices {
    own_ski: Option<Ski>,
    /// Full instance name → (sequence number of its latest sighting, the sighting).
    records: BTreeMap<String, (u64, Sighting)>,
    next_sequence: u64,
}

impl VisibleServices {
    /// An empty registry that ignores sightings of `own_ski`.
    pub fn new(own_ski: Option<Ski>) -> Self {
        VisibleServices {
            own_ski,
            records: BTreeMap::new(),
            next_sequence: 0,
        }
    }

    /// Records a sighting; returns what changed for the Hub (nothing for our own SKI or for a
    /// repeat). If the instance carried another SKI before, that SKI may be lost.
    pub fn observe(&mut self, sighting: Sighting) -> Vec<DiscoveryEvent> {
        if Some(sighting.txt.ski) == self.own_ski {
            return Vec::new();
        }
        let previous_ski = self
            .records
            .get(&sighting.instance)
            .map(|(_, old)| old.txt.ski);
        let new_ski = sighting.txt.ski;
        let mut affected: Vec<Ski> = previous_ski.into_iter().collect();
        if !affected.contains(&new_ski) {
            affected.push(new_ski);
        }
        let before: Vec<Option<VisibleService>> = affected.iter().map(|s| self.get(s)).collect();
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.records
            .insert(sighting.instance.clone(), (sequence, sighting));
        self.changes(&affected, before)
    }

    /// Removes the record of one instance (goodbye or expiry); returns what changed: `Lost` if
    /// it was the last record of its SKI, `Seen` with the remaining merge otherwise.
    pub fn forget(&mut self, instance: &str) -> Vec<DiscoveryEvent> {
        let Some(ski) = self.records.get(instance).map(|(_, s)| s.txt.ski) else {
            return Vec::new();
        };
        let before = vec![self.get(&ski)];
        self.records.remove(instance);
        self.changes(&[ski], before)
    }

    /// Removes every record (e.g. when the implementation shuts down); returns a `Lost` per SKI.
    pub fn clear(&mut self) -> Vec<DiscoveryEvent> {
        let lost = self
            .list()
            .into_iter()
            .map(|s| DiscoveryEvent::Lost(s.ski))
            .collect();
        self.records.clear();
        lost
    }

    /// Whether an instance has a record.
    pub fn contains_instance(&self, instance: &str) -> bool {
        self.records.contains_key(instance)
    }

    /// The visible services, sorted by SKI.
    pub fn list(&self) -> Vec<VisibleService> {
        let skis: BTreeSet<Ski> = self.records.values().map(|(_, s)| s.txt.ski).collect();
        skis.iter().filter_map(|ski| self.get(ski)).collect()
    }

    /// The merged view of one SKI, if visible.
    pub fn get(&self, ski: &Ski) -> Option<VisibleService> {
        let mut latest: Option<(u64, &Sighting)> = None;
        let mut instances = Vec::new();
        let mut addresses = BTreeSet::new();
        for (instance, (sequence, sighting)) in &self.records {
            if sighting.txt.ski != *ski {
                continue;
            }
            instances.push(instance.clone());
            addresses.extend(sighting.addresses.iter().copied());
            if latest.is_none_or(|(best, _)| *sequence > best) {
                latest = Some((*sequence, sighting));
            }
        }
        let (_, sighting) = latest?;
        Some(VisibleService {
            ski: *ski,
            txt: sighting.txt.clone(),
            instances,
            addresses,
        })
    }

    fn changes(&self, skis: &[Ski], before: Vec<Option<VisibleService>>) -> Vec<DiscoveryEvent> {
        let mut events = Vec::new();
        for (ski, before) in skis.iter().zip(before) {
            match (before, self.get(ski)) {
                (Some(_), None) => events.push(DiscoveryEvent::Lost(*ski)),
                (before, Some(now)) if before.as_ref() != Some(&now) => {
                    events.push(DiscoveryEvent::Seen(now));
                }
                _ => {}
            }
        }
        events
    }
}
