//! Warnings that can come in numbers (a wrong PIN, from keys an attacker makes by the thousand):
//! at most one line per key per interval, at most `max` lines per interval in all. What is held
//! back is counted and said with the next line that is shown, so nothing is hidden for long and
//! the event log cannot be flooded. Bounded: a key is remembered only once shown, so at most
//! about `2 × max` are.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Throttle {
    interval: Duration,
    max: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Per key shown: when it was shown last, and its occurrences held back since.
    keys: HashMap<String, (Instant, u64)>,
    /// The current window (its start) and the lines shown in it.
    window: Option<Instant>,
    shown: usize,
    /// Occurrences of keys not remembered, held back since the last line shown.
    others: u64,
}

/// A line to show: how many occurrences of its key, and of other keys, were held back before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shown {
    pub(crate) same_key: u64,
    pub(crate) other_keys: u64,
}

impl Shown {
    /// `" (N more … not shown)"`, or nothing when nothing was held back.
    pub(crate) fn suffix(&self, what: &str) -> String {
        match (self.same_key, self.other_keys) {
            (0, 0) => String::new(),
            (same, 0) => format!(" ({same} more {what} from it not shown)"),
            (0, others) => format!(" ({others} more {what} from other keys not shown)"),
            (same, others) => {
                format!(" ({same} more {what} from it and {others} from other keys not shown)")
            }
        }
    }
}

impl Throttle {
    pub(crate) fn new(interval: Duration, max: usize) -> Self {
        Throttle {
            interval,
            max,
            state: Mutex::new(State::default()),
        }
    }

    /// One occurrence of `key` at `now`: the line to show, if one is due.
    pub(crate) fn allow(&self, key: &str, now: Instant) -> Option<Shown> {
        let interval = self.interval;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let state = &mut *state;
        if state
            .window
            .is_none_or(|start| now.saturating_duration_since(start) >= interval)
        {
            state.window = Some(now);
            state.shown = 0;
        }
        let budget = state.shown < self.max;
        let same_key = match state.keys.get_mut(key) {
            Some((at, held)) if now.saturating_duration_since(*at) < interval || !budget => {
                *held += 1;
                return None;
            }
            Some((at, held)) => {
                *at = now;
                std::mem::take(held)
            }
            None if !budget => {
                state.others += 1;
                return None;
            }
            None => {
                if state.keys.len() >= 2 * self.max.max(1) {
                    state
                        .keys
                        .retain(|_, (at, _)| now.saturating_duration_since(*at) < interval);
                }
                state.keys.insert(key.to_owned(), (now, 0));
                0
            }
        };
        state.shown += 1;
        Some(Shown {
            same_key,
            other_keys: std::mem::take(&mut state.others),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_key_and_interval_and_a_few_in_all_with_what_was_held_back() {
        let throttle = Throttle::new(Duration::from_secs(60), 2);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let none = Shown {
            same_key: 0,
            other_keys: 0,
        };
        assert_eq!(throttle.allow("a", at(0)), Some(none));
        assert_eq!(throttle.allow("a", at(1)), None);
        assert_eq!(throttle.allow("b", at(2)), Some(none));
        // Two shown this minute: a thousand other keys are only counted.
        for i in 0..1000 {
            assert_eq!(throttle.allow(&format!("k{i}"), at(3)), None);
        }
        assert!(throttle.state.lock().unwrap().keys.len() <= 4);
        let next = throttle.allow("a", at(61)).unwrap();
        assert_eq!(
            next,
            Shown {
                same_key: 1,
                other_keys: 1000
            }
        );
        assert_eq!(
            next.suffix("wrong PINs"),
            " (1 more wrong PINs from it and 1000 from other keys not shown)"
        );
        assert_eq!(none.suffix("wrong PINs"), "");
    }
}
