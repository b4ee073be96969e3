//! Reconnect delays for paired peers (SHIP §8 as ship-hub applies it).
//!
//! A paired peer that is not connected is redialled after a delay drawn uniformly at random from
//! a tier chosen by the attempt number: the 1st attempt waits 0–3 s, the 2nd 3–10 s, the 3rd and
//! every later one 10–20 s, forever. The randomness spreads the redials of many nodes that lost
//! their connections at the same moment (a router reboot), so they do not all dial at once, and
//! it breaks the symmetry of two nodes that keep crossing each other's dials. The attempt counter
//! starts over when a connection reaches the Completed state ([`Backoff::reset`]).
//!
//! Unpaired peers and peers that denied trust are never redialled; that decision is the hub's,
//! not this module's. Neither is the "arbitration left no connection" case of the
//! double-connection rule (see `docs/ship.md` §7 rule 3): that redial happens at once,
//! without consuming a tier.
//!
//! The module is pure: no clock, no global random source. The caller passes the random number
//! generator ([`rand::Rng`]; a seeded `rand::rngs::StdRng` makes every test repeatable) and
//! sleeps for the returned [`Duration`] itself.

use std::time::Duration;

use rand::{Rng, RngExt};

/// One tier of reconnect delays: a delay is drawn uniformly from `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffTier {
    min: Duration,
    max: Duration,
}

impl BackoffTier {
    /// The longest delay a tier may have. Delays are drawn with nanosecond resolution in a `u64`,
    /// which covers ~584 years; a day is plenty for a reconnect delay.
    pub const MAX_DELAY: Duration = Duration::from_secs(24 * 60 * 60);

    /// A tier drawing delays uniformly from `min..=max`.
    pub fn new(min: Duration, max: Duration) -> Result<Self, BackoffConfigError> {
        if min > max {
            return Err(BackoffConfigError::InvertedTier { min, max });
        }
        if max > Self::MAX_DELAY {
            return Err(BackoffConfigError::DelayTooLong { max });
        }
        Ok(BackoffTier { min, max })
    }

    /// The shortest delay of the tier (inclusive).
    pub const fn min(&self) -> Duration {
        self.min
    }

    /// The longest delay of the tier (inclusive).
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// Draws one delay uniformly from `min..=max`.
    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        // Both bounds are at most MAX_DELAY (checked in `new`), so they fit a u64 of nanoseconds.
        let lo = duration_to_nanos(self.min);
        let hi = duration_to_nanos(self.max);
        Duration::from_nanos(rng.random_range(lo..=hi))
    }
}

fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The delay tiers, indexed by attempt number: attempt `n` (1-based) uses tier `n - 1`, and every
/// attempt past the last tier uses the last tier again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffTiers {
    tiers: Vec<BackoffTier>,
}

impl BackoffTiers {
    /// Custom tiers; at least one is required. The last tier repeats forever.
    pub fn new(tiers: Vec<BackoffTier>) -> Result<Self, BackoffConfigError> {
        if tiers.is_empty() {
            return Err(BackoffConfigError::NoTiers);
        }
        Ok(BackoffTiers { tiers })
    }

    /// The tiers in attempt order.
    pub fn tiers(&self) -> &[BackoffTier] {
        &self.tiers
    }

    /// The tier used for `attempt` (1-based; attempt 0 is treated like attempt 1).
    pub fn tier_for(&self, attempt: u32) -> BackoffTier {
        let index = (attempt.max(1) - 1) as usize;
        // `tiers` is never empty (checked in `new`, true for the default).
        self.tiers[index.min(self.tiers.len() - 1)]
    }
}

impl Default for BackoffTiers {
    /// SHIP §8 as `docs/ship.md` states it: 0–3 s, 3–10 s, then 10–20 s forever.
    fn default() -> Self {
        let s = Duration::from_secs;
        BackoffTiers {
            tiers: vec![
                BackoffTier {
                    min: s(0),
                    max: s(3),
                },
                BackoffTier {
                    min: s(3),
                    max: s(10),
                },
                BackoffTier {
                    min: s(10),
                    max: s(20),
                },
            ],
        }
    }
}

/// The reconnect backoff of one peer: counts attempts since the last Completed connection and
/// draws the delay before the next dial.
///
/// ```
/// use rand::{SeedableRng, rngs::StdRng};
/// use ship_hub::hub::{Backoff, BackoffTiers};
/// use std::time::Duration;
///
/// let mut rng = StdRng::seed_from_u64(7);
/// let mut backoff = Backoff::new(BackoffTiers::default());
/// assert!(backoff.next_delay(&mut rng) <= Duration::from_secs(3)); // 1st attempt: 0–3 s
/// assert!(backoff.next_delay(&mut rng) >= Duration::from_secs(3)); // 2nd attempt: 3–10 s
/// backoff.reset(); // the connection reached Completed
/// assert_eq!(backoff.attempts(), 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    tiers: BackoffTiers,
    attempts: u32,
}

impl Backoff {
    /// A backoff that has made no attempt yet.
    pub fn new(tiers: BackoffTiers) -> Self {
        Backoff { tiers, attempts: 0 }
    }

    /// Counts one more attempt and returns the delay to wait before making it.
    pub fn next_delay<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        self.attempts = self.attempts.saturating_add(1);
        self.tiers.tier_for(self.attempts).draw(rng)
    }

    /// Starts over at attempt 1; call when a connection to the peer reached Completed (§8).
    pub fn reset(&mut self) {
        self.attempts = 0;
    }

    /// How many delays were drawn since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The tiers in use.
    pub fn tiers(&self) -> &BackoffTiers {
        &self.tiers
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(BackoffTiers::default())
    }
}

/// Why a backoff configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackoffConfigError {
    /// No tier was given.
    #[error("a backoff needs at least one tier")]
    NoTiers,
    /// A tier whose minimum is above its maximum.
    #[error("backoff tier minimum {min:?} is above its maximum {max:?}")]
    InvertedTier {
        /// The minimum given.
        min: Duration,
        /// The maximum given.
        max: Duration,
    },
    /// A tier longer than [`BackoffTier::MAX_DELAY`].
    #[error("backoff tier maximum {max:?} exceeds the limit of one day")]
    DelayTooLong {
        /// The maximum given.
        max: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn default_tiers_are_those_of_ship_section_8() {
        let tiers = BackoffTiers::default();
        let expected = [(0, 3), (3, 10), (10, 20)];
        for (attempt, (lo, hi)) in (1..).zip(expected) {
            let tier = tiers.tier_for(attempt);
            assert_eq!((tier.min(), tier.max()), (secs(lo), secs(hi)));
        }
        for attempt in [4, 5, 100, u32::MAX] {
            assert_eq!(tiers.tier_for(attempt), tiers.tier_for(3));
        }
        assert_eq!(tiers.tier_for(0), tiers.tier_for(1));
    }

    #[test]
    fn bad_configurations_are_typed_errors() {
        assert_eq!(BackoffTiers::new(vec![]), Err(BackoffConfigError::NoTiers));
        assert_eq!(
            BackoffTier::new(secs(5), secs(4)),
            Err(BackoffConfigError::InvertedTier {
                min: secs(5),
                max: secs(4)
            })
        );
        assert_eq!(
            BackoffTier::new(secs(0), secs(100_000)),
            Err(BackoffConfigError::DelayTooLong { max: secs(100_000) })
        );
    }

    #[test]
    fn a_zero_width_tier_always_yields_its_value() {
        let tier = BackoffTier::new(secs(7), secs(7)).unwrap();
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..100 {
            assert_eq!(tier.draw(&mut rng), secs(7));
        }
    }

    #[test]
    fn custom_tiers_are_used_in_order_and_the_last_repeats() {
        let tiers = BackoffTiers::new(vec![
            BackoffTier::new(secs(1), secs(1)).unwrap(),
            BackoffTier::new(secs(2), secs(2)).unwrap(),
        ])
        .unwrap();
        let mut backoff = Backoff::new(tiers);
        let mut rng = StdRng::seed_from_u64(0);
        let drawn: Vec<_> = (0..4).map(|_| backoff.next_delay(&mut rng)).collect();
        assert_eq!(drawn, [secs(1), secs(2), secs(2), secs(2)]);
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut backoff = Backoff::default();
            (0..10)
                .map(|_| backoff.next_delay(&mut rng))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(42), draw(42));
        assert_ne!(draw(42), draw(43));
    }

    #[test]
    fn draws_cover_each_default_tier() {
        let mut rng = StdRng::seed_from_u64(2026);
        for tier in BackoffTiers::default().tiers() {
            let width = (tier.max() - tier.min()).as_secs_f64();
            let offsets: Vec<f64> = (0..2000)
                .map(|_| (tier.draw(&mut rng) - tier.min()).as_secs_f64() / width)
                .collect();
            let lowest = offsets.iter().copied().fold(f64::INFINITY, f64::min);
            let highest = offsets.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mean = offsets.iter().sum::<f64>() / offsets.len() as f64;
            assert!(lowest < 0.1, "lowest draw at {lowest} of {tier:?}");
            assert!(highest > 0.9, "highest draw at {highest} of {tier:?}");
            // Uniform: mean 0.5, standard error of the mean ~0.0065 for 2000 draws.
            assert!((mean - 0.5).abs() < 0.05, "mean {mean} of {tier:?}");
        }
    }

    proptest! {
        #[test]
        fn every_delay_lies_in_its_tier(seed: u64, attempts in 1u32..40) {
            let tiers = BackoffTiers::default();
            let mut rng = StdRng::seed_from_u64(seed);
            let mut backoff = Backoff::new(tiers.clone());
            for attempt in 1..=attempts {
                let delay = backoff.next_delay(&mut rng);
                let tier = tiers.tier_for(attempt);
                prop_assert!(tier.min() <= delay && delay <= tier.max(),
                    "attempt {} drew {:?} outside {:?}", attempt, delay, tier);
                prop_assert_eq!(backoff.attempts(), attempt);
            }
        }

        #[test]
        fn reset_starts_over_at_the_first_tier(seed: u64, before in 0u32..20) {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut backoff = Backoff::default();
            for _ in 0..before {
                backoff.next_delay(&mut rng);
            }
            backoff.reset();
            prop_assert_eq!(backoff.attempts(), 0);
            let first = backoff.next_delay(&mut rng);
            prop_assert!(first <= secs(3), "first delay after reset {:?}", first);
            let second = backoff.next_delay(&mut rng);
            prop_assert!((secs(3)..=secs(10)).contains(&second));
        }

        #[test]
        fn custom_tiers_hold_their_bounds(
            seed: u64,
            bounds in proptest::collection::vec((0u64..86_400_000, 0u64..86_400_000), 1..5),
            attempt in 0u32..10,
        ) {
            let tiers: Vec<_> = bounds
                .iter()
                .map(|&(a, b)| {
                    BackoffTier::new(Duration::from_millis(a.min(b)), Duration::from_millis(a.max(b)))
                        .unwrap()
                })
                .collect();
            let tiers = BackoffTiers::new(tiers).unwrap();
            let tier = tiers.tier_for(attempt);
            let mut rng = StdRng::seed_from_u64(seed);
            let delay = tier.draw(&mut rng);
            prop_assert!(tier.min() <= delay && delay <= tier.max());
        }
    }
}
