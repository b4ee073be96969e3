//! The event stream behind `GET /api/v1/events`: every event of the log (the same JSON objects
//! as `--json` prints), numbered, kept in a bounded ring so that a client that reconnects with
//! the last id it saw (`Last-Event-ID`) gets what it missed.
//!
//! Bounds: at most [`BusLimits::max_events`] events and [`BusLimits::max_bytes`] bytes of
//! event text are kept; older ones are evicted. A client that resumes from an evicted id, or
//! reads more slowly than events are evicted, first gets one `gap` event with the number of
//! events it lost, then continues: a slow client never holds the gateway or another client
//! back, and costs at most one batch of shared (reference-counted) texts: at most 256 events
//! and 64 KiB (or one larger event).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// How much of the event history the bus keeps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BusLimits {
    /// Events kept for resuming clients. Default 4,096.
    pub(crate) max_events: usize,
    /// Bytes of event text kept (the newest event is always kept). Default 2 MiB: the
    /// history costs at most this beyond the inbound budgets even when data events (which
    /// carry their payloads) flood in.
    pub(crate) max_bytes: usize,
}

impl Default for BusLimits {
    fn default() -> Self {
        BusLimits {
            max_events: 4096,
            max_bytes: 2 << 20,
        }
    }
}

/// A numbered event (ids start at 1 and grow by one per event).
#[derive(Debug, Clone)]
pub(crate) struct Numbered {
    pub(crate) id: u64,
    pub(crate) json: Arc<str>,
}

/// What a client gets when it asks for the events after an id.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    /// Events that were evicted before the client got them.
    pub(crate) lost: u64,
    /// The events, oldest first.
    pub(crate) events: Vec<Numbered>,
}

/// The ring and its wake-up signal.
#[derive(Debug)]
pub(crate) struct EventBus {
    ring: Mutex<Ring>,
    latest: watch::Sender<u64>,
    limits: BusLimits,
    /// Keep a history for clients that resume (the HTTP API is served); otherwise events are
    /// only published while a client listens (`watch` on the control socket).
    keep_history: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Default)]
struct Ring {
    events: VecDeque<Numbered>,
    bytes: usize,
    last_id: u64,
}

/// At most this many events are handed to one client per batch.
const MAX_BATCH: usize = 256;

/// At most this many bytes of event text per batch (but always one event): what a client that
/// does not read holds beyond the ring, which may evict those events meanwhile.
const MAX_BATCH_BYTES: usize = 64 * 1024;

impl EventBus {
    pub(crate) fn new(limits: BusLimits) -> Arc<EventBus> {
        Arc::new(EventBus {
            ring: Mutex::new(Ring::default()),
            latest: watch::Sender::new(0),
            limits,
            keep_history: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// From now on every event is kept (within the limits) for clients that resume.
    pub(crate) fn keep_history(&self) {
        self.keep_history
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether an event should be published at all: there is a history to keep or a client
    /// listening. Without either, the gateway spends nothing on the stream.
    pub(crate) fn wanted(&self) -> bool {
        self.keep_history.load(std::sync::atomic::Ordering::Relaxed)
            || self.latest.receiver_count() > 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Numbers and keeps one event (a JSON object's text); wakes the clients.
    pub(crate) fn publish(&self, json: &str) -> u64 {
        let id = {
            let mut ring = self.lock();
            ring.last_id += 1;
            let id = ring.last_id;
            ring.bytes += json.len();
            ring.events.push_back(Numbered {
                id,
                json: Arc::from(json),
            });
            while ring.events.len() > self.limits.max_events.max(1)
                || (ring.bytes > self.limits.max_bytes && ring.events.len() > 1)
            {
                if let Some(old) = ring.events.pop_front() {
                    ring.bytes -= old.json.len();
                }
            }
            id
        };
        self.latest.send_replace(id);
        id
    }

    /// The id of the newest event (0: none yet).
    pub(crate) fn last_id(&self) -> u64 {
        self.lock().last_id
    }

    /// The events after `after` (at most a batch), and how many of them were already evicted.
    pub(crate) fn after(&self, after: u64) -> Batch {
        let ring = self.lock();
        let after = after.min(ring.last_id);
        let Some(oldest) = ring.events.front().map(|e| e.id) else {
            return Batch {
                lost: ring.last_id - after,
                events: Vec::new(),
            };
        };
        let lost = oldest.saturating_sub(after + 1);
        let skip = (after + 1).saturating_sub(oldest) as usize;
        let mut bytes = 0;
        let events = ring
            .events
            .iter()
            .skip(skip)
            .take(MAX_BATCH)
            .take_while(|event| {
                let first = bytes == 0;
                bytes += event.json.len();
                first || bytes <= MAX_BATCH_BYTES
            })
            .cloned()
            .collect();
        Batch { lost, events }
    }

    /// A receiver that changes whenever an event is published.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.latest.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_resumes_after_its_last_id_and_learns_what_it_lost() {
        let bus = EventBus::new(BusLimits {
            max_events: 3,
            max_bytes: 1 << 20,
        });
        for n in 1..=5 {
            assert_eq!(bus.publish(&format!("{{\"n\":{n}}}")), n);
        }
        let batch = bus.after(3);
        assert_eq!(batch.lost, 0);
        assert_eq!(
            batch.events.iter().map(|e| e.id).collect::<Vec<_>>(),
            [4, 5]
        );
        let batch = bus.after(0);
        assert_eq!(batch.lost, 2, "events 1 and 2 were evicted");
        assert_eq!(batch.events.first().unwrap().id, 3);
        assert!(bus.after(5).events.is_empty());
        assert!(bus.after(99).events.is_empty(), "an id from the future");
    }

    #[test]
    fn events_are_wanted_with_a_history_or_a_listener_only() {
        let bus = EventBus::new(BusLimits::default());
        assert!(!bus.wanted());
        let listener = bus.subscribe();
        assert!(bus.wanted());
        drop(listener);
        assert!(!bus.wanted());
        bus.keep_history();
        assert!(bus.wanted());
    }

    #[test]
    fn a_batch_is_bounded_in_bytes_but_holds_at_least_one_event() {
        let bus = EventBus::new(BusLimits::default());
        let big = "x".repeat(40 * 1024);
        for _ in 0..4 {
            bus.publish(&big);
        }
        let batch = bus.after(0);
        assert_eq!(batch.events.len(), 1, "two would be 80 KiB");
        let huge = "y".repeat(100 * 1024);
        bus.publish(&huge);
        assert_eq!(
            bus.after(4).events.len(),
            1,
            "one event larger than a batch"
        );
        for n in 0..300 {
            bus.publish(&n.to_string());
        }
        assert_eq!(bus.after(5).events.len(), MAX_BATCH);
    }

    #[test]
    fn the_kept_bytes_are_bounded_but_the_newest_event_stays() {
        let bus = EventBus::new(BusLimits {
            max_events: 100,
            max_bytes: 10,
        });
        bus.publish("0123456789");
        bus.publish("abcdefghijklmnop");
        let batch = bus.after(0);
        assert_eq!(batch.lost, 1);
        assert_eq!(&*batch.events[0].json, "abcdefghijklmnop");
    }
}
