//! An mDNS spoofer for the namespace tests: a separate `mdns-sd` daemon that registers (and so
//! announces, and answers queries for) thousands of `_ship._tcp` services with distinct SKIs,
//! as an attacker on the LAN could. Only for use inside a private network namespace.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceInfo};
use ship_hub::discovery::{SERVICE_TYPE, ShipTxt};
use ship_hub::{ShipId, Ski};

/// A SKI made from a number (distinct for every `n` below 2^32).
pub fn spoofed_ski(n: u32) -> Ski {
    let mut bytes = [0x3c; 20];
    bytes[..4].copy_from_slice(&n.to_be_bytes());
    Ski::from_bytes(bytes)
}

/// A running spoofer; dropping it shuts its daemon down.
pub struct Spoofer {
    daemon: ServiceDaemon,
}

impl Spoofer {
    /// Starts the spoofer's daemon and registers `count` services `spoof-<n>` on 127.0.0.1 at a
    /// closed port, each with a valid SHIP TXT record of its own SKI. Returns once every
    /// registration is handed to the daemon, with the time that took.
    pub fn burst(count: u32) -> (Spoofer, Duration) {
        let daemon = ServiceDaemon::new().expect("spoofer daemon");
        let started = Instant::now();
        for n in 0..count {
            let txt = ShipTxt::new(ShipId::new(format!("spoof-{n}")).unwrap(), spoofed_ski(n));
            let properties = txt.to_properties();
            let info = ServiceInfo::new(
                SERVICE_TYPE,
                &format!("spoof-{n}"),
                &format!("spoof-{n}.local."),
                "127.0.0.1",
                9,
                &properties[..],
            )
            .expect("service info");
            loop {
                match daemon.register(info.clone()) {
                    Ok(()) => break,
                    // The daemon's command queue is bounded: wait for it.
                    Err(mdns_sd::Error::Again) => std::thread::sleep(Duration::from_millis(1)),
                    Err(error) => panic!("spoofer register: {error}"),
                }
            }
        }
        (Spoofer { daemon }, started.elapsed())
    }
}

impl Drop for Spoofer {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}

/// The resident set size of this process in KiB (Linux).
pub fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Announces one SHIP service (`ski` at 127.0.0.1:`port`) from a daemon of its own that does
/// not browse, so that it does not digest the spoofer's records itself: what is measured is
/// the listener's recovery, not this announcer's. Dropping it shuts the daemon down.
pub struct Announcer {
    daemon: ServiceDaemon,
}

impl Announcer {
    /// Registers the service `name`.
    pub fn announce(name: &str, ski: Ski, port: u16) -> Announcer {
        let daemon = ServiceDaemon::new().expect("announcer daemon");
        let txt = ShipTxt::new(ShipId::new(name).unwrap(), ski);
        let properties = txt.to_properties();
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            name,
            &format!("{name}.local."),
            "127.0.0.1",
            port,
            &properties[..],
        )
        .expect("service info");
        daemon.register(info).expect("register");
        Announcer { daemon }
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        let _ = self.daemon.shutdown();
    }
}
