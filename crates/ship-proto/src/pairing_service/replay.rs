//! The replay guard: digests already honoured are never honoured again (SHIP Pairing Service
//! TS 1.0.0 §11: at least the last ten are kept).

use std::collections::{HashSet, VecDeque};

/// The default number of digests a [`ReplayGuard`] remembers.
pub const DEFAULT_REPLAY_CAPACITY: usize = 64;

/// Remembers the last `capacity` accepted digests (32 bytes each plus set overhead, so the
/// default of 64 costs a few KiB at most). When full, the oldest is forgotten.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    capacity: usize,
    order: VecDeque<[u8; 32]>,
    seen: HashSet<[u8; 32]>,
}

impl ReplayGuard {
    /// A guard keeping the last `capacity` digests (at least 1).
    pub fn new(capacity: usize) -> Self {
        ReplayGuard {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// A guard restored from persisted digests (oldest first), keeping the newest `capacity`.
    pub fn from_entries(entries: impl IntoIterator<Item = [u8; 32]>, capacity: usize) -> Self {
        let mut guard = Self::new(capacity);
        for digest in entries {
            guard.insert(digest);
        }
        guard
    }

    /// Whether `digest` was accepted before.
    pub fn contains(&self, digest: &[u8; 32]) -> bool {
        self.seen.contains(digest)
    }

    /// Records `digest`; returns `false` if it was already known.
    pub fn insert(&mut self, digest: [u8; 32]) -> bool {
        if !self.seen.insert(digest) {
            return false;
        }
        self.order.push_back(digest);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        true
    }

    /// The remembered digests, oldest first (to persist them).
    pub fn entries(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.order.iter()
    }

    /// How many digests are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

impl Default for ReplayGuard {
    fn default() -> Self {
        Self::new(DEFAULT_REPLAY_CAPACITY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_accepted_once() {
        let mut guard = ReplayGuard::default();
        assert!(guard.insert([1; 32]));
        assert!(!guard.insert([1; 32]));
        assert!(guard.contains(&[1; 32]));
    }

    #[test]
    fn the_guard_is_bounded_and_forgets_the_oldest() {
        let mut guard = ReplayGuard::new(10);
        for i in 0..1000u16 {
            let mut d = [0; 32];
            d[..2].copy_from_slice(&i.to_be_bytes());
            guard.insert(d);
            assert!(guard.len() <= 10);
        }
        assert_eq!(guard.len(), 10);
        let mut newest = [0; 32];
        newest[..2].copy_from_slice(&999u16.to_be_bytes());
        assert!(guard.contains(&newest));
        assert!(!guard.contains(&[0; 32]));
        let restored = ReplayGuard::from_entries(guard.entries().copied(), 10);
        assert!(restored.contains(&newest));
    }
}
