//! The state both implementations share: the registry and the event sender, behind one lock so
//! that a snapshot and the event stream never disagree.

use std::sync::{Mutex, MutexGuard};

use tokio::sync::broadcast;

use super::registry::{DiscoveryLimits, VisibleServices};
use super::service::{DiscoveryEvent, Sighting, VisibleService};
use crate::Ski;
use crate::sync::lock;

/// How many events a slow subscriber may fall behind before it sees `Lagged`.
const EVENT_CAPACITY: usize = 256;

#[derive(Debug)]
pub(super) struct Shared {
    registry: Mutex<VisibleServices>,
    events: broadcast::Sender<DiscoveryEvent>,
}

impl Shared {
    pub(super) fn new(own_ski: Option<Ski>, limits: DiscoveryLimits) -> Self {
        Shared {
            registry: Mutex::new(VisibleServices::with_limits(own_ski, limits)),
            events: broadcast::channel(EVENT_CAPACITY).0,
        }
    }

    fn registry(&self) -> MutexGuard<'_, VisibleServices> {
        // The registry holds no invariant a panicking holder could break halfway.
        lock(&self.registry)
    }

    pub(super) fn observe(&self, sighting: Sighting) {
        let mut registry = self.registry();
        for event in registry.observe(sighting) {
            self.emit(event);
        }
    }

    pub(super) fn forget(&self, instance: &str) {
        let mut registry = self.registry();
        for event in registry.forget(instance) {
            self.emit(event);
        }
    }

    /// Replaces the preferred SKIs; returns those that were not preferred before.
    pub(super) fn set_preferred(&self, skis: Vec<Ski>) -> Vec<Ski> {
        let mut registry = self.registry();
        let added: Vec<Ski> = skis
            .iter()
            .filter(|ski| !registry.is_preferred(ski))
            .copied()
            .collect();
        for event in registry.set_preferred(skis) {
            self.emit(event);
        }
        added
    }

    #[cfg(feature = "mdns")]
    pub(super) fn preferred_missing(&self) -> bool {
        self.registry().preferred_missing()
    }

    pub(super) fn clear(&self) {
        let mut registry = self.registry();
        for event in registry.clear() {
            self.emit(event);
        }
    }

    pub(super) fn emit(&self, event: DiscoveryEvent) {
        tracing::debug!(?event, "discovery event");
        // No subscriber is not an error: the registry still holds the state.
        let _ = self.events.send(event);
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<DiscoveryEvent> {
        // Subscribing under the lock orders it against concurrent registry changes.
        let _registry = self.registry();
        self.events.subscribe()
    }

    pub(super) fn visible(&self) -> Vec<VisibleService> {
        self.registry().list()
    }

    pub(super) fn visible_service(&self, ski: &Ski) -> Option<VisibleService> {
        self.registry().get(ski)
    }
}
