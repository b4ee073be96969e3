//! Counters the hub bumps as connections come and go, and a plain snapshot of them.
//!
//! Every counter is an atomic bumped with `Relaxed` ordering: any task may count without a lock
//! and without waiting for another. `HubMetrics::snapshot` reads each counter once; the
//! snapshot is therefore not one atomic instant (a handshake completing during the snapshot may
//! be in one figure and not yet in another), which is fine for a status page and for monitoring.
//!
//! Handshake times (from TCP accept or connect to the SHIP handshake's Completed state, §13.4)
//! are summarised by count, sum, minimum, maximum and a small fixed-bucket histogram from which
//! p50 and p99 are estimated (as the upper bound of the bucket holding that rank, clamped to the
//! observed range).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Serialize;

/// Why a connection attempt failed, as the hub counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FailureCause {
    /// TCP connect or TLS handshake failed (including a certificate or SKI check, §9).
    Tls,
    /// The WebSocket upgrade or framing failed (§10).
    WebSocket,
    /// A SHIP handshake timer expired (§13.4).
    HandshakeTimeout,
    /// Trust was denied, by us or by the peer (§13.4.4).
    TrustDenied,
    /// The peer broke the SHIP protocol (bad message, wrong state, SHIP ID mismatch).
    Protocol,
    /// Refused because a connection or pending-handshake cap was reached (HTTP 503).
    RefusedByCap,
    /// Closed because the application did not consume the peer's data: its inbound budget
    /// stayed used up for [`crate::hub::Limits::max_inbound_stall`] with a ping unanswered.
    Backpressure,
    /// Anything else.
    Other,
}

impl FailureCause {
    /// Every cause, in the order of [`FailureCounts`]'s fields.
    pub const ALL: [FailureCause; 8] = [
        FailureCause::Tls,
        FailureCause::WebSocket,
        FailureCause::HandshakeTimeout,
        FailureCause::TrustDenied,
        FailureCause::Protocol,
        FailureCause::RefusedByCap,
        FailureCause::Backpressure,
        FailureCause::Other,
    ];

    const fn index(self) -> usize {
        match self {
            FailureCause::Tls => 0,
            FailureCause::WebSocket => 1,
            FailureCause::HandshakeTimeout => 2,
            FailureCause::TrustDenied => 3,
            FailureCause::Protocol => 4,
            FailureCause::RefusedByCap => 5,
            FailureCause::Backpressure => 6,
            FailureCause::Other => 7,
        }
    }
}

/// Which admission cap refused an incoming connection (docs/architecture.md, "How a connection
/// flows"): one of the [`crate::hub::Limits`] of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AdmissionCap {
    /// `max_handshakes_in_progress` (less the reserve for paired peers' addresses): the TCP
    /// connection was closed before any TLS work.
    HandshakesInProgress,
    /// `max_handshakes_per_address`: the TCP connection was closed before any TLS work.
    HandshakesPerAddress,
    /// `max_unpaired_connections`: a peer that is not paired got HTTP 503 at the upgrade.
    UnpairedConnections,
    /// `max_unpaired_per_address`: a peer that is not paired got HTTP 503 at the upgrade.
    UnpairedPerAddress,
    /// `max_connections`: HTTP 503 at the upgrade.
    Connections,
}

impl AdmissionCap {
    /// Every cap, in the order of [`RefusalCounts`]'s fields.
    pub const ALL: [AdmissionCap; 5] = [
        AdmissionCap::HandshakesInProgress,
        AdmissionCap::HandshakesPerAddress,
        AdmissionCap::UnpairedConnections,
        AdmissionCap::UnpairedPerAddress,
        AdmissionCap::Connections,
    ];

    const fn index(self) -> usize {
        match self {
            AdmissionCap::HandshakesInProgress => 0,
            AdmissionCap::HandshakesPerAddress => 1,
            AdmissionCap::UnpairedConnections => 2,
            AdmissionCap::UnpairedPerAddress => 3,
            AdmissionCap::Connections => 4,
        }
    }

    /// The name of the [`crate::hub::Limits`] field that sets the cap, e.g.
    /// `max_unpaired_per_address`.
    pub const fn limit_name(self) -> &'static str {
        match self {
            AdmissionCap::HandshakesInProgress => "max_handshakes_in_progress",
            AdmissionCap::HandshakesPerAddress => "max_handshakes_per_address",
            AdmissionCap::UnpairedConnections => "max_unpaired_connections",
            AdmissionCap::UnpairedPerAddress => "max_unpaired_per_address",
            AdmissionCap::Connections => "max_connections",
        }
    }
}

impl std::fmt::Display for AdmissionCap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AdmissionCap::HandshakesInProgress => "too many handshakes in progress",
            AdmissionCap::HandshakesPerAddress => {
                "too many handshakes in progress from this address"
            }
            AdmissionCap::UnpairedConnections => {
                "too many connections of devices that are not paired"
            }
            AdmissionCap::UnpairedPerAddress => {
                "too many connections of devices that are not paired from this address"
            }
            AdmissionCap::Connections => "connection limit reached",
        })
    }
}

/// Upper bounds (inclusive, in milliseconds) of the handshake-time buckets; one more bucket
/// holds everything longer. A SHIP handshake on a LAN takes tens of milliseconds; one that waits
/// for the user to approve trust can take minutes.
const BUCKET_BOUNDS_MS: [u64; 16] = [
    1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 30_000, 60_000, 120_000,
];
const BUCKETS: usize = BUCKET_BOUNDS_MS.len() + 1;

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Counters the hub bumps; share it (`Arc<HubMetrics>`) between tasks.
#[derive(Debug)]
pub(crate) struct HubMetrics {
    dial_attempts: AtomicU64,
    incoming_accepted: AtomicU64,
    handshakes_completed: AtomicU64,
    failures: [AtomicU64; FailureCause::ALL.len()],
    double_connection_replacements: AtomicU64,
    refusals: [AtomicU64; AdmissionCap::ALL.len()],
    pin_verified: AtomicU64,
    pin_wrong: AtomicU64,
    pin_held_by_address: AtomicU64,
    pin_held_in_all: AtomicU64,
    handshake_sum_us: AtomicU64,
    handshake_min_us: AtomicU64,
    handshake_max_us: AtomicU64,
    handshake_buckets: [AtomicU64; BUCKETS],
}

impl Default for HubMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl HubMetrics {
    /// All counters at zero.
    pub(crate) const fn new() -> Self {
        #[allow(clippy::declare_interior_mutable_const)] // only used to initialise arrays
        const ZERO: AtomicU64 = AtomicU64::new(0);
        HubMetrics {
            dial_attempts: ZERO,
            incoming_accepted: ZERO,
            handshakes_completed: ZERO,
            failures: [ZERO; FailureCause::ALL.len()],
            double_connection_replacements: ZERO,
            refusals: [ZERO; AdmissionCap::ALL.len()],
            pin_verified: ZERO,
            pin_wrong: ZERO,
            pin_held_by_address: ZERO,
            pin_held_in_all: ZERO,
            handshake_sum_us: ZERO,
            handshake_min_us: AtomicU64::new(u64::MAX),
            handshake_max_us: ZERO,
            handshake_buckets: [ZERO; BUCKETS],
        }
    }

    /// We started dialling a peer (one per TCP connect).
    pub(crate) fn dial_attempt(&self) {
        self.dial_attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// The listener accepted a connection (counted after admission, before TLS).
    pub(crate) fn incoming_accepted(&self) {
        self.incoming_accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection reached the SHIP Completed state, `took` after it was accepted or dialled.
    pub(crate) fn handshake_completed(&self, took: Duration) {
        let us = micros(took);
        self.handshakes_completed.fetch_add(1, Ordering::Relaxed);
        // Saturates instead of wrapping: a sum of u64::MAX is visibly wrong rather than small.
        let _ = self
            .handshake_sum_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
                Some(sum.saturating_add(us))
            });
        self.handshake_min_us.fetch_min(us, Ordering::Relaxed);
        self.handshake_max_us.fetch_max(us, Ordering::Relaxed);
        let ms = us.div_ceil(1_000);
        let bucket = BUCKET_BOUNDS_MS
            .iter()
            .position(|&bound| ms <= bound)
            .unwrap_or(BUCKETS - 1);
        self.handshake_buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// A connection attempt failed for `cause`.
    pub(crate) fn failure(&self, cause: FailureCause) {
        self.failures[cause.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// An incoming connection was refused by `cap` (also counted as a
    /// [`FailureCause::RefusedByCap`] failure).
    pub(crate) fn refused(&self, cap: AdmissionCap) {
        self.refusals[cap.index()].fetch_add(1, Ordering::Relaxed);
        self.failure(FailureCause::RefusedByCap);
    }

    /// A peer sent this node's PIN: correctly (`verified`) or not.
    pub(crate) fn pin_attempt(&self, verified: bool) {
        let counter = if verified {
            &self.pin_verified
        } else {
            &self.pin_wrong
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A connection of a key that is not paired was held busy for PIN input by the penalty of
    /// its source address (`in_all` false) or by the hub-wide limit (`in_all` true).
    pub(crate) fn pin_held(&self, in_all: bool) {
        let counter = if in_all {
            &self.pin_held_in_all
        } else {
            &self.pin_held_by_address
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A newer connection replaced an older one to the same SKI (§12.2.3 double connection).
    pub(crate) fn double_connection_replaced(&self) {
        self.double_connection_replacements
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The current values, as plain data.
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let failure = |cause: FailureCause| load(&self.failures[cause.index()]);
        let refusal = |cap: AdmissionCap| load(&self.refusals[cap.index()]);
        let buckets: [u64; BUCKETS] = std::array::from_fn(|i| load(&self.handshake_buckets[i]));
        let count: u64 = buckets.iter().sum();
        let (min, max) = (load(&self.handshake_min_us), load(&self.handshake_max_us));
        let sum = load(&self.handshake_sum_us);
        let handshake_time = if count == 0 {
            HandshakeTimeSummary::default()
        } else {
            HandshakeTimeSummary {
                count,
                sum_us: sum,
                min_us: Some(min),
                max_us: Some(max),
                mean_us: Some(sum / count),
                p50_us: Some(percentile(&buckets, count, 50, min, max)),
                p99_us: Some(percentile(&buckets, count, 99, min, max)),
            }
        };
        MetricsSnapshot {
            dial_attempts: load(&self.dial_attempts),
            incoming_accepted: load(&self.incoming_accepted),
            handshakes_completed: load(&self.handshakes_completed),
            failures: FailureCounts {
                tls: failure(FailureCause::Tls),
                websocket: failure(FailureCause::WebSocket),
                handshake_timeout: failure(FailureCause::HandshakeTimeout),
                trust_denied: failure(FailureCause::TrustDenied),
                protocol: failure(FailureCause::Protocol),
                refused_by_cap: failure(FailureCause::RefusedByCap),
                backpressure: failure(FailureCause::Backpressure),
                other: failure(FailureCause::Other),
            },
            double_connection_replacements: load(&self.double_connection_replacements),
            refusals: RefusalCounts {
                handshakes_in_progress: refusal(AdmissionCap::HandshakesInProgress),
                handshakes_per_address: refusal(AdmissionCap::HandshakesPerAddress),
                unpaired_connections: refusal(AdmissionCap::UnpairedConnections),
                unpaired_per_address: refusal(AdmissionCap::UnpairedPerAddress),
                connections: refusal(AdmissionCap::Connections),
            },
            pin: PinCounts {
                verified: load(&self.pin_verified),
                wrong: load(&self.pin_wrong),
                held_by_address: load(&self.pin_held_by_address),
                held_in_all: load(&self.pin_held_in_all),
            },
            handshake_time,
            // Filled in by the hub, which owns the inbound budget.
            inbound_queued_bytes: 0,
            inbound_queued_peak_bytes: 0,
        }
    }
}

/// The upper bound (µs) of the bucket holding the `q`-th percentile rank, clamped to the observed
/// `[min, max]`; the open last bucket reports `max`.
fn percentile(buckets: &[u64; BUCKETS], count: u64, q: u64, min: u64, max: u64) -> u64 {
    let rank = (count * q).div_ceil(100).max(1);
    let mut seen = 0;
    for (i, &n) in buckets.iter().enumerate() {
        seen += n;
        if seen >= rank {
            let bound = BUCKET_BOUNDS_MS
                .get(i)
                .map_or(max, |ms| ms.saturating_mul(1_000));
            return bound.clamp(min, max.max(min));
        }
    }
    max
}

/// Failures by cause.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct FailureCounts {
    /// [`FailureCause::Tls`].
    pub tls: u64,
    /// [`FailureCause::WebSocket`].
    pub websocket: u64,
    /// [`FailureCause::HandshakeTimeout`].
    pub handshake_timeout: u64,
    /// [`FailureCause::TrustDenied`].
    pub trust_denied: u64,
    /// [`FailureCause::Protocol`].
    pub protocol: u64,
    /// [`FailureCause::RefusedByCap`].
    pub refused_by_cap: u64,
    /// [`FailureCause::Backpressure`].
    pub backpressure: u64,
    /// [`FailureCause::Other`].
    pub other: u64,
}

impl FailureCounts {
    /// The count of one cause.
    pub fn get(&self, cause: FailureCause) -> u64 {
        match cause {
            FailureCause::Tls => self.tls,
            FailureCause::WebSocket => self.websocket,
            FailureCause::HandshakeTimeout => self.handshake_timeout,
            FailureCause::TrustDenied => self.trust_denied,
            FailureCause::Protocol => self.protocol,
            FailureCause::RefusedByCap => self.refused_by_cap,
            FailureCause::Backpressure => self.backpressure,
            FailureCause::Other => self.other,
        }
    }

    /// All failures.
    pub fn total(&self) -> u64 {
        FailureCause::ALL.iter().map(|&c| self.get(c)).sum()
    }
}

/// Incoming connections refused by each admission cap ([`AdmissionCap`]). Their sum is part of
/// [`FailureCounts::refused_by_cap`] (which also counts our own dials refused by
/// `max_connections` or by the peer's HTTP 503).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RefusalCounts {
    /// [`AdmissionCap::HandshakesInProgress`].
    pub handshakes_in_progress: u64,
    /// [`AdmissionCap::HandshakesPerAddress`].
    pub handshakes_per_address: u64,
    /// [`AdmissionCap::UnpairedConnections`].
    pub unpaired_connections: u64,
    /// [`AdmissionCap::UnpairedPerAddress`].
    pub unpaired_per_address: u64,
    /// [`AdmissionCap::Connections`].
    pub connections: u64,
}

impl RefusalCounts {
    /// The count of one cap.
    pub fn get(&self, cap: AdmissionCap) -> u64 {
        match cap {
            AdmissionCap::HandshakesInProgress => self.handshakes_in_progress,
            AdmissionCap::HandshakesPerAddress => self.handshakes_per_address,
            AdmissionCap::UnpairedConnections => self.unpaired_connections,
            AdmissionCap::UnpairedPerAddress => self.unpaired_per_address,
            AdmissionCap::Connections => self.connections,
        }
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        AdmissionCap::ALL.iter().map(|&c| self.get(c)).sum()
    }
}

/// PINs peers sent to this node (only with a [`crate::hub::HubConfig::pin_requirement`]), and
/// how often the limits that span peers held a connection's PIN input busy
/// (docs/pairing.md, "The penalty for wrong PINs").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PinCounts {
    /// Correct PINs.
    pub verified: u64,
    /// Wrong PINs.
    pub wrong: u64,
    /// Connections of keys that are not paired whose PIN input was held busy by the penalty of
    /// their source address.
    pub held_by_address: u64,
    /// The same, by the limit on wrong PINs in all.
    pub held_in_all: u64,
}

/// Handshake times in microseconds; the optional figures are `None` (JSON `null`) before the
/// first handshake completed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HandshakeTimeSummary {
    /// Handshakes measured.
    pub count: u64,
    /// Sum of their times.
    pub sum_us: u64,
    /// The shortest.
    pub min_us: Option<u64>,
    /// The longest.
    pub max_us: Option<u64>,
    /// `sum_us / count`.
    pub mean_us: Option<u64>,
    /// Median, estimated from the histogram (an upper bound within a bucket's width).
    pub p50_us: Option<u64>,
    /// 99th percentile, estimated from the histogram (an upper bound within a bucket's width).
    pub p99_us: Option<u64>,
}

/// A copy of every hub counter, for the application and the gateway's status output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// TCP connects started.
    pub dial_attempts: u64,
    /// Incoming connections accepted.
    pub incoming_accepted: u64,
    /// Connections that reached the SHIP Completed state.
    pub handshakes_completed: u64,
    /// Failed connection attempts by cause.
    pub failures: FailureCounts,
    /// Older connections replaced by a newer one to the same SKI (§12.2.3).
    pub double_connection_replacements: u64,
    /// Incoming connections refused, by admission cap.
    pub refusals: RefusalCounts,
    /// PINs received, and PIN input held busy by the limits that span peers.
    pub pin: PinCounts,
    /// How long handshakes took.
    pub handshake_time: HandshakeTimeSummary,
    /// Received data bytes charged to inbound budgets right now (queued in the hub or held by
    /// the application), with the per-message bookkeeping (docs/architecture.md,
    /// "Backpressure"). A diagnostic: not a counter.
    pub inbound_queued_bytes: u64,
    /// The most inbound bytes ever charged at once.
    pub inbound_queued_peak_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_new_snapshot_is_all_zero_with_no_handshake_figures() {
        let snapshot = HubMetrics::new().snapshot();
        assert_eq!(snapshot, MetricsSnapshot::default());
        assert_eq!(snapshot.handshake_time.min_us, None);
        assert_eq!(snapshot.handshake_time.p99_us, None);
    }

    #[test]
    fn each_counter_counts_its_own_events() {
        let metrics = HubMetrics::new();
        metrics.dial_attempt();
        metrics.dial_attempt();
        metrics.incoming_accepted();
        metrics.double_connection_replaced();
        for (n, cause) in FailureCause::ALL.into_iter().enumerate() {
            for _ in 0..=n {
                metrics.failure(cause);
            }
        }
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.dial_attempts, 2);
        assert_eq!(snapshot.incoming_accepted, 1);
        assert_eq!(snapshot.handshakes_completed, 0);
        assert_eq!(snapshot.double_connection_replacements, 1);
        for (n, cause) in FailureCause::ALL.into_iter().enumerate() {
            assert_eq!(snapshot.failures.get(cause), n as u64 + 1, "{cause:?}");
        }
        assert_eq!(snapshot.failures.total(), (1..=8).sum::<u64>());
    }

    #[test]
    fn refusals_count_by_cap_and_as_failures_and_pins_by_outcome() {
        let metrics = HubMetrics::new();
        for (n, cap) in AdmissionCap::ALL.into_iter().enumerate() {
            for _ in 0..=n {
                metrics.refused(cap);
            }
        }
        metrics.pin_attempt(true);
        metrics.pin_attempt(false);
        metrics.pin_attempt(false);
        metrics.pin_held(false);
        metrics.pin_held(true);
        metrics.pin_held(true);
        metrics.pin_held(true);
        let snapshot = metrics.snapshot();
        for (n, cap) in AdmissionCap::ALL.into_iter().enumerate() {
            assert_eq!(snapshot.refusals.get(cap), n as u64 + 1, "{cap:?}");
        }
        assert_eq!(snapshot.refusals.total(), 15);
        assert_eq!(snapshot.failures.refused_by_cap, 15);
        assert_eq!(
            snapshot.pin,
            PinCounts {
                verified: 1,
                wrong: 2,
                held_by_address: 1,
                held_in_all: 3
            }
        );
        assert_eq!(
            AdmissionCap::UnpairedPerAddress.limit_name(),
            "max_unpaired_per_address"
        );
    }

    #[test]
    fn handshake_summary_has_exact_count_sum_min_max() {
        let metrics = HubMetrics::new();
        for t in [ms(30), ms(12), ms(700), Duration::from_micros(1_500)] {
            metrics.handshake_completed(t);
        }
        let h = metrics.snapshot().handshake_time;
        assert_eq!(h.count, 4);
        assert_eq!(h.sum_us, 30_000 + 12_000 + 700_000 + 1_500);
        assert_eq!(h.min_us, Some(1_500));
        assert_eq!(h.max_us, Some(700_000));
        assert_eq!(h.mean_us, Some(743_500 / 4));
        assert_eq!(metrics.snapshot().handshakes_completed, 4);
    }

    #[test]
    fn percentiles_come_from_the_bucket_holding_the_rank() {
        let metrics = HubMetrics::new();
        // 98 fast handshakes (8 ms, bucket ≤10 ms), 2 slow ones (4 s, bucket ≤5 s).
        for _ in 0..98 {
            metrics.handshake_completed(ms(8));
        }
        metrics.handshake_completed(ms(4_000));
        metrics.handshake_completed(ms(4_000));
        let h = metrics.snapshot().handshake_time;
        assert_eq!(h.p50_us, Some(10_000));
        assert_eq!(h.p99_us, Some(4_000_000), "clamped to the observed maximum");
    }

    #[test]
    fn percentiles_never_leave_the_observed_range() {
        let metrics = HubMetrics::new();
        metrics.handshake_completed(ms(7));
        let h = metrics.snapshot().handshake_time;
        assert_eq!((h.p50_us, h.p99_us), (Some(7_000), Some(7_000)));

        let metrics = HubMetrics::new();
        metrics.handshake_completed(Duration::from_secs(600));
        metrics.handshake_completed(Duration::MAX);
        let h = metrics.snapshot().handshake_time;
        assert_eq!(h.max_us, Some(u64::MAX));
        assert_eq!(h.sum_us, u64::MAX, "the sum saturates");
        assert_eq!(
            h.p50_us,
            Some(u64::MAX),
            "the open bucket reports the maximum"
        );
    }

    #[test]
    fn concurrent_bumps_are_all_counted() {
        let metrics = Arc::new(HubMetrics::new());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let metrics = Arc::clone(&metrics);
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        metrics.dial_attempt();
                        metrics.failure(FailureCause::Tls);
                        metrics.handshake_completed(Duration::from_micros(i % 100 + 1));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let snapshot = metrics.snapshot();
        assert_eq!(snapshot.dial_attempts, 40_000);
        assert_eq!(snapshot.failures.tls, 40_000);
        assert_eq!(snapshot.handshake_time.count, 40_000);
        assert_eq!(
            snapshot.handshake_time.sum_us,
            4 * (1..=100).sum::<u64>() * 100
        );
        assert_eq!(snapshot.handshake_time.min_us, Some(1));
        assert_eq!(snapshot.handshake_time.max_us, Some(100));
    }

    #[test]
    fn the_snapshot_serializes_with_stable_field_names() {
        let metrics = HubMetrics::new();
        metrics.failure(FailureCause::RefusedByCap);
        metrics.handshake_completed(ms(3));
        let json = serde_json::to_value(metrics.snapshot()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "dial_attempts": 0,
                "incoming_accepted": 0,
                "handshakes_completed": 1,
                "failures": {
                    "tls": 0, "websocket": 0, "handshake_timeout": 0, "trust_denied": 0,
                    "protocol": 0, "refused_by_cap": 1, "backpressure": 0, "other": 0
                },
                "double_connection_replacements": 0,
                "refusals": {
                    "handshakes_in_progress": 0, "handshakes_per_address": 0,
                    "unpaired_connections": 0, "unpaired_per_address": 0, "connections": 0
                },
                "pin": {"verified": 0, "wrong": 0, "held_by_address": 0, "held_in_all": 0},
                "handshake_time": {
                    "count": 1, "sum_us": 3000, "min_us": 3000, "max_us": 3000,
                    "mean_us": 3000, "p50_us": 3000, "p99_us": 3000
                },
                "inbound_queued_bytes": 0,
                "inbound_queued_peak_bytes": 0
            })
        );
        assert_eq!(
            serde_json::to_value(FailureCause::HandshakeTimeout).unwrap(),
            "handshake_timeout"
        );
    }
}
