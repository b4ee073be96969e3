//! Failed authentication attempts on the HTTP API, per source address (docs/gateway.md,
//! "Access"): a growing delay against token guessing, and a report at most once per source and
//! minute.
//!
//! After [`AttemptLimits::free`] failures in a row from one source (typos), each further
//! failure makes that source wait before its next attempt is even checked: 1 s, then 2 s, 4 s,
//! … up to [`AttemptLimits::max_delay`]. An attempt that comes too early is answered `429`
//! without being checked, so guessing is no faster with many connections than with one. A
//! success, or [`FORGET_AFTER`] without a failure, starts the count again. At most
//! [`MAX_SOURCES`] sources are remembered (the one whose last failure is oldest is forgotten
//! first).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::conns::Source;

/// The limits of the delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AttemptLimits {
    /// Failures in a row from one source that cost no delay. Default 5.
    pub(crate) free: u32,
    /// The longest delay. Default 60 s.
    pub(crate) max_delay: Duration,
}

impl Default for AttemptLimits {
    fn default() -> Self {
        AttemptLimits {
            free: 5,
            max_delay: Duration::from_secs(60),
        }
    }
}

/// A source is forgotten this long after its last failure.
pub(crate) const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);

/// The most sources remembered at once.
pub(crate) const MAX_SOURCES: usize = 4096;

/// How often one source's failures are reported.
pub(crate) const REPORT_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Record {
    /// Failures in a row.
    failures: u32,
    /// No attempt is checked before this.
    not_before: Instant,
    last_failure: Instant,
    /// When the last report was made.
    reported: Option<Instant>,
    /// Failures since the last report.
    unreported: u32,
}

/// What to tell the operator about one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) source: Source,
    /// Failures since the previous report of this source.
    pub(crate) failures: u32,
    /// Failures in a row now.
    pub(crate) in_a_row: u32,
    /// How long its next attempt waits.
    pub(crate) delay: Duration,
}

impl Report {
    /// One line for the event log.
    pub(crate) fn message(&self) -> String {
        let wait = if self.delay.is_zero() {
            String::new()
        } else {
            format!(
                "; its next attempt is checked after {} s",
                self.delay.as_secs()
            )
        };
        format!(
            "HTTP API: {} failed authentication attempt{} from {} ({} in a row){wait}",
            self.failures,
            if self.failures == 1 { "" } else { "s" },
            self.source,
            self.in_a_row,
        )
    }
}

/// The failures of every source.
#[derive(Debug, Default)]
pub(crate) struct Attempts {
    limits: AttemptLimits,
    sources: Mutex<HashMap<Source, Record>>,
}

impl Attempts {
    pub(crate) fn new(limits: AttemptLimits) -> Attempts {
        Attempts {
            limits,
            sources: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Source, Record>> {
        self.sources.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether an attempt of `source` may be checked now; if not, how long it must wait.
    pub(crate) fn check(&self, source: Source, now: Instant) -> Result<(), Duration> {
        match self.lock().get(&source) {
            Some(record) if record.not_before > now => Err(record.not_before - now),
            _ => Ok(()),
        }
    }

    /// An attempt of `source` succeeded: its count starts again.
    pub(crate) fn succeeded(&self, source: Source) {
        self.lock().remove(&source);
    }

    /// The delay after `failures` in a row.
    fn delay(&self, failures: u32) -> Duration {
        if failures <= self.limits.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.limits.free - 1).min(30);
        Duration::from_secs(1u64 << doublings).min(self.limits.max_delay)
    }

    /// An attempt of `source` failed; a report if this source was not reported within the last
    /// minute.
    pub(crate) fn failed(&self, source: Source, now: Instant) -> Option<Report> {
        let mut sources = self.lock();
        if sources.len() >= MAX_SOURCES && !sources.contains_key(&source) {
            sources.retain(|_, r| now.saturating_duration_since(r.last_failure) < FORGET_AFTER);
            if sources.len() >= MAX_SOURCES
                && let Some(oldest) = sources
                    .iter()
                    .min_by_key(|(_, r)| r.last_failure)
                    .map(|(s, _)| *s)
            {
                sources.remove(&oldest);
            }
        }
        let record = sources.entry(source).or_insert(Record {
            failures: 0,
            not_before: now,
            last_failure: now,
            reported: None,
            unreported: 0,
        });
        if now.saturating_duration_since(record.last_failure) >= FORGET_AFTER {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last_failure = now;
        record.unreported += 1;
        let failures = record.failures;
        let delay = self.delay(failures);
        record.not_before = now + delay;
        let due = record
            .reported
            .is_none_or(|at| now.saturating_duration_since(at) >= REPORT_EVERY);
        if !due {
            return None;
        }
        let report = Report {
            source,
            failures: record.unreported,
            in_a_row: failures,
            delay,
        };
        record.reported = Some(now);
        record.unreported = 0;
        Some(report)
    }

    /// The failures not reported yet of sources last reported a minute ago or longer (called
    /// once a minute, so a source that stopped guessing still has its last failures said).
    pub(crate) fn overdue(&self, now: Instant) -> Vec<Report> {
        let mut reports = Vec::new();
        let delay = |failures| self.delay(failures);
        for (source, record) in self.lock().iter_mut() {
            let due = record
                .reported
                .is_none_or(|at| now.saturating_duration_since(at) >= REPORT_EVERY);
            if record.unreported > 0 && due {
                reports.push(Report {
                    source: *source,
                    failures: record.unreported,
                    in_a_row: record.failures,
                    delay: delay(record.failures),
                });
                record.reported = Some(now);
                record.unreported = 0;
            }
        }
        reports
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source {
        Source::of(text.parse().unwrap())
    }

    #[test]
    fn the_delay_grows_after_the_free_failures_and_a_success_resets_it() {
        let attempts = Attempts::new(AttemptLimits {
            free: 2,
            max_delay: Duration::from_secs(8),
        });
        let a = source("10.0.0.1");
        let start = Instant::now();
        let mut now = start;
        let mut waits = Vec::new();
        for _ in 0..7 {
            assert_eq!(attempts.check(a, now), Ok(()));
            attempts.failed(a, now);
            let wait = attempts.check(a, now).err().unwrap_or_default();
            waits.push(wait.as_secs());
            now += wait;
        }
        assert_eq!(waits, [0, 0, 1, 2, 4, 8, 8]);
        // Too early: refused without being checked, for the rest of the delay.
        attempts.failed(a, now);
        assert_eq!(
            attempts.check(a, now + Duration::from_secs(3)),
            Err(Duration::from_secs(5))
        );
        // Another source is not held back.
        assert_eq!(attempts.check(source("10.0.0.2"), now), Ok(()));
        attempts.succeeded(a);
        assert_eq!(attempts.check(a, now), Ok(()));
    }

    #[test]
    fn failures_are_reported_once_per_source_and_minute_with_their_count() {
        let attempts = Attempts::new(AttemptLimits::default());
        let a = source("10.0.0.1");
        let b = source("2001:db8::1");
        let t0 = Instant::now();
        let first = attempts
            .failed(a, t0)
            .expect("the first failure is reported");
        assert_eq!((first.failures, first.in_a_row), (1, 1));
        for n in 1..100 {
            assert_eq!(
                attempts.failed(a, t0 + Duration::from_millis(n * 100)),
                None,
                "within the minute"
            );
        }
        assert!(
            attempts.failed(b, t0).is_some(),
            "another source: its own line"
        );
        let later = attempts
            .failed(a, t0 + Duration::from_secs(61))
            .expect("a minute later");
        assert_eq!((later.failures, later.in_a_row), (100, 101));
        assert!(
            later
                .message()
                .contains("100 failed authentication attempts from 10.0.0.1")
        );
        // The rest of a source that stopped is said by the minute's sweep.
        attempts.failed(a, t0 + Duration::from_secs(62));
        assert!(attempts.overdue(t0 + Duration::from_secs(90)).is_empty());
        let swept = attempts.overdue(t0 + Duration::from_secs(122));
        assert_eq!(swept.len(), 1);
        assert_eq!(swept[0].failures, 1);
    }

    #[test]
    fn the_sources_remembered_are_bounded() {
        let attempts = Attempts::new(AttemptLimits::default());
        let now = Instant::now();
        for n in 0..(MAX_SOURCES as u32 + 100) {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + n);
            attempts.failed(Source::of(ip.into()), now);
        }
        assert!(attempts.lock().len() <= MAX_SOURCES);
    }
}
