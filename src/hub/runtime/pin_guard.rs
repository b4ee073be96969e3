//! Limits on PIN guessing that span peers (docs/pairing.md, "The penalty for wrong PINs").
//!
//! The protocol engine counts one connection's wrong PINs, and each supervisor keeps its own
//! peer's count across that peer's connections. Neither sees an attacker who makes a new key
//! every few guesses: each key would start afresh. So, for keys that are not paired (the only
//! ones that can arrive in numbers: with auto-accept and a PIN requirement, a new key reaches
//! the PIN step without a person), the hub also counts
//!
//! * per **source address**: consecutive wrong PINs from one IP address, whatever the key, with
//!   the engine's escalating schedule ([`pin_penalty`]): a new key from that address starts
//!   where the last one left off, its penalty included. Forgotten
//!   [`Limits::pin_source_memory`] after the address's last wrong PIN, or when a key from it
//!   sends the right PIN; at most [`Limits::max_pin_sources`] addresses are remembered (the one
//!   remembered longest ago is forgotten first);
//! * **in all**: a token bucket of [`Limits::max_wrong_pins_in_all`] wrong PINs, refilled by one
//!   per [`Limits::wrong_pin_interval_in_all`]. While it is empty, every such key's PIN input is
//!   held `busy`. Wrong PINs that arrive while a hold is on its way to the connection still
//!   count (the bucket goes into debt), so the long-run rate stays at one per interval.
//!
//! Paired keys are never held by these limits: only their own per-key penalty applies to them.
//! Memory is bounded by `max_pin_sources` and does not grow with the number of keys.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::hub::config::Limits;
use crate::protocol::{ProtocolConfig, pin_penalty};
use crate::sync::lock;

/// Where a connection of a key that is not paired starts its PIN step.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PinStart {
    /// Consecutive wrong PINs from its source address.
    pub(crate) attempts: u32,
    /// The penalty of its source address, while it runs.
    pub(crate) address_until: Option<Instant>,
    /// The hold of the limit in all, while it runs.
    pub(crate) in_all_until: Option<Instant>,
}

impl PinStart {
    /// The later of the two.
    pub(crate) fn until(&self) -> Option<Instant> {
        self.address_until.max(self.in_all_until)
    }
}

/// One source address's wrong PINs.
#[derive(Debug, Clone, Copy)]
struct Source {
    attempts: u32,
    penalty_until: Option<Instant>,
    last: Instant,
}

#[derive(Debug, Default)]
struct State {
    sources: HashMap<IpAddr, Source>,
    /// The token bucket in all, as the instant its schedule has reached: each wrong PIN pushes
    /// it one interval further (from now, if it lies in the past). The bucket is empty while it
    /// lies more than `burst - 1` intervals ahead.
    schedule: Option<Instant>,
}

/// The hub's limits on PIN guessing that span peers.
#[derive(Debug)]
pub(crate) struct PinGuard {
    protocol: ProtocolConfig,
    max_sources: usize,
    memory: Duration,
    burst: u32,
    interval: Duration,
    state: Mutex<State>,
}

impl PinGuard {
    pub(crate) fn new(limits: &Limits, protocol: &ProtocolConfig) -> Self {
        PinGuard {
            protocol: protocol.clone(),
            max_sources: limits.max_pin_sources.max(1),
            memory: limits.pin_source_memory,
            burst: limits.max_wrong_pins_in_all.max(1),
            interval: limits.wrong_pin_interval_in_all,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The hold of the limit in all at `now`, if the bucket is empty.
    fn in_all_until(&self, state: &State, now: Instant) -> Option<Instant> {
        let ahead = self.interval.checked_mul(self.burst - 1)?;
        let until = state.schedule?.checked_sub(ahead)?;
        (until > now).then_some(until)
    }

    /// The record of `ip`, unless it is forgotten by `now`.
    fn source(&self, state: &State, ip: IpAddr, now: Instant) -> Option<Source> {
        state
            .sources
            .get(&ip.to_canonical())
            .copied()
            .filter(|s| now.saturating_duration_since(s.last) < self.memory)
    }

    /// Where a new connection of a key that is not paired, from `ip`, starts.
    pub(crate) fn start(&self, ip: IpAddr, now: Instant) -> PinStart {
        let state = self.lock();
        let source = self.source(&state, ip, now);
        PinStart {
            attempts: source.map_or(0, |s| s.attempts),
            address_until: source
                .and_then(|s| s.penalty_until)
                .filter(|until| *until > now),
            in_all_until: self.in_all_until(&state, now),
        }
    }

    /// A key that is not paired sent a wrong PIN from `ip`: counted for the address and in
    /// all. Returns where that leaves the address and the limit in all.
    pub(crate) fn wrong(&self, ip: IpAddr, now: Instant) -> PinStart {
        let ip = ip.to_canonical();
        let mut state = self.lock();
        let mut source = self.source(&state, ip, now).unwrap_or(Source {
            attempts: 0,
            penalty_until: None,
            last: now,
        });
        source.attempts = source.attempts.saturating_add(1);
        source.last = now;
        if let Some(penalty) = pin_penalty(source.attempts, &self.protocol) {
            source.penalty_until = Some(now + penalty);
        }
        if !state.sources.contains_key(&ip) && state.sources.len() >= self.max_sources {
            let memory = self.memory;
            state
                .sources
                .retain(|_, s| now.saturating_duration_since(s.last) < memory);
            if state.sources.len() >= self.max_sources
                && let Some(oldest) = state
                    .sources
                    .iter()
                    .min_by_key(|(_, s)| s.last)
                    .map(|(ip, _)| *ip)
            {
                state.sources.remove(&oldest);
            }
        }
        state.sources.insert(ip, source);
        let from = state.schedule.map_or(now, |at| at.max(now));
        state.schedule = Some(from.checked_add(self.interval).unwrap_or(from));
        PinStart {
            attempts: source.attempts,
            address_until: source.penalty_until.filter(|until| *until > now),
            in_all_until: self.in_all_until(&state, now),
        }
    }

    /// A key sent the right PIN from `ip`: the address starts afresh.
    pub(crate) fn verified(&self, ip: IpAddr) {
        self.lock().sources.remove(&ip.to_canonical());
    }

    #[cfg(test)]
    fn sources(&self) -> usize {
        self.lock().sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 168, 1, last])
    }

    fn guard(burst: u32, interval_s: u64, sources: usize) -> PinGuard {
        PinGuard::new(
            &Limits {
                max_wrong_pins_in_all: burst,
                wrong_pin_interval_in_all: Duration::from_secs(interval_s),
                max_pin_sources: sources,
                ..Limits::default()
            },
            &ProtocolConfig::default(),
        )
    }

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn an_address_escalates_across_keys_and_a_right_pin_resets_it() {
        let guard = guard(1000, 1, 16);
        let t0 = Instant::now();
        assert_eq!(guard.start(ip(1), t0), PinStart::default());
        let after: Vec<_> = (0..7).map(|_| guard.wrong(ip(1), t0)).collect();
        assert_eq!(
            after.iter().map(|s| s.attempts).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5, 6, 7]
        );
        let penalties: Vec<u64> = after
            .iter()
            .map(|s| s.address_until.map_or(0, |u| (u - t0).as_secs()))
            .collect();
        assert_eq!(penalties, vec![0, 0, 15, 15, 15, 90, 90]);
        // A new key from the same address starts there; another address does not.
        let start = guard.start(ip(1), t0 + 10 * S);
        assert_eq!(start.attempts, 7);
        assert_eq!(start.address_until, Some(t0 + 90 * S));
        assert_eq!(guard.start(ip(2), t0).attempts, 0);
        // An IPv4-mapped address is the same host.
        let mapped: IpAddr = "::ffff:192.168.1.1".parse().unwrap();
        assert_eq!(guard.start(mapped, t0).attempts, 7);
        guard.verified(mapped);
        assert_eq!(guard.start(ip(1), t0), PinStart::default());
    }

    #[test]
    fn an_address_is_forgotten_after_the_memory() {
        let guard = guard(1000, 1, 16);
        let t0 = Instant::now();
        for _ in 0..4 {
            guard.wrong(ip(1), t0);
        }
        let memory = Limits::default().pin_source_memory;
        assert_eq!(guard.start(ip(1), t0 + memory - S).attempts, 4);
        assert_eq!(guard.start(ip(1), t0 + memory).attempts, 0);
    }

    #[test]
    fn the_limit_in_all_allows_a_burst_then_one_per_interval() {
        let guard = guard(3, 30, 1024);
        let t0 = Instant::now();
        // Three wrong PINs from three addresses: the bucket is empty, held 30 s.
        for i in 0..2 {
            assert_eq!(guard.wrong(ip(i), t0).in_all_until, None);
        }
        assert_eq!(guard.wrong(ip(2), t0).in_all_until, Some(t0 + 30 * S));
        assert_eq!(
            guard.start(ip(9), t0 + 29 * S).in_all_until,
            Some(t0 + 30 * S)
        );
        assert_eq!(guard.start(ip(9), t0 + 30 * S).in_all_until, None);
        // One more at 30 s empties it again for 30 s.
        assert_eq!(
            guard.wrong(ip(9), t0 + 30 * S).in_all_until,
            Some(t0 + 60 * S)
        );
        // A wrong PIN that arrives while held still counts: the hold gets longer.
        assert_eq!(
            guard.wrong(ip(10), t0 + 31 * S).in_all_until,
            Some(t0 + 90 * S)
        );
        // After a quiet while the burst is back.
        let later = t0 + 1000 * S;
        assert_eq!(guard.start(ip(11), later).in_all_until, None);
        assert_eq!(guard.wrong(ip(11), later).in_all_until, None);
    }

    #[test]
    fn the_addresses_remembered_are_bounded() {
        let guard = guard(u32::MAX, 0, 8);
        let t0 = Instant::now();
        for i in 0..100u8 {
            guard.wrong(ip(i), t0 + u32::from(i) * S);
        }
        assert_eq!(guard.sources(), 8);
        // The newest are kept.
        assert_eq!(guard.start(ip(99), t0 + 100 * S).attempts, 1);
        assert_eq!(guard.start(ip(0), t0 + 100 * S).attempts, 0);
    }
}
