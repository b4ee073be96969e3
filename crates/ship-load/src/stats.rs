//! Latency summaries and what /proc tells about the target process.

use std::time::Duration;

use serde::Serialize;

/// Percentiles of a set of durations, in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Latency {
    pub(crate) count: usize,
    pub(crate) p50_us: Option<u64>,
    pub(crate) p90_us: Option<u64>,
    pub(crate) p99_us: Option<u64>,
    pub(crate) max_us: Option<u64>,
    pub(crate) mean_us: Option<u64>,
}

impl Latency {
    /// Nearest-rank percentiles of `samples`.
    pub(crate) fn of(samples: &[Duration]) -> Latency {
        if samples.is_empty() {
            return Latency::default();
        }
        let mut us: Vec<u64> = samples
            .iter()
            .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
            .collect();
        us.sort_unstable();
        let rank = |p: usize| {
            let index = (p * us.len()).div_ceil(100).saturating_sub(1);
            us[index.min(us.len() - 1)]
        };
        let sum: u128 = us.iter().map(|&v| u128::from(v)).sum();
        Latency {
            count: us.len(),
            p50_us: Some(rank(50)),
            p90_us: Some(rank(90)),
            p99_us: Some(rank(99)),
            max_us: us.last().copied(),
            mean_us: u64::try_from(sum / us.len() as u128).ok(),
        }
    }
}

/// Resident set size of `pid` in KiB (`VmRSS` in /proc/PID/status).
pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Number of threads of `pid` (`Threads` in /proc/PID/status).
pub(crate) fn threads(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|rest| rest.trim().parse().ok())
}

/// Clock ticks per second of /proc/PID/stat times (`USER_HZ`, 100 on every Linux ABI in use).
const USER_HZ: f64 = 100.0;

/// User + system CPU time used so far by `pid`, in seconds (fields 14 and 15 of /proc/PID/stat).
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14 → index 11, stime 15 → index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / USER_HZ)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let latency = Latency::of(&samples);
        assert_eq!(latency.p50_us, Some(50));
        assert_eq!(latency.p90_us, Some(90));
        assert_eq!(latency.p99_us, Some(99));
        assert_eq!(latency.max_us, Some(100));
        assert_eq!(Latency::of(&[]).count, 0);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        assert!(threads(pid).unwrap() >= 1);
        assert!(cpu_seconds(pid).is_some());
    }
}
