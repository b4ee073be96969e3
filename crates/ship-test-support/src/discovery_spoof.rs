//! An mDNS spoofer for the namespace tests: a separate `mdns-sd` daemon that registers (and so
//! announces, and answers queries for) thousands of `_ship._tcp` services with distinct SKIs,
//! or many fake claims of one SKI at addresses that accept TCP and stay silent
//! ([`Spoofer::claims`], [`SilentHosts`]), as an attacker on the LAN could. Only for use inside
//! a private network namespace.

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
    daemon: Option<ServiceDaemon>,
}

impl Spoofer {
    /// Starts the spoofer's daemon and registers `count` services `spoof-<n>` on 127.0.0.1 at a
    /// closed port, each with a valid SHIP TXT record of its own SKI. Returns once every
    /// registration is handed to the daemon, with the time that took.
    pub fn burst(count: u32) -> (Spoofer, Duration) {
        // Owned by the `Spoofer` from the start: a panic halfway still shuts the daemon down
        // (a dropped `ServiceDaemon` handle alone leaves its thread answering queries).
        let spoofer = Spoofer {
            daemon: Some(ServiceDaemon::new().expect("spoofer daemon")),
        };
        let daemon = spoofer.daemon.as_ref().expect("just set");
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
        let took = started.elapsed();
        (spoofer, took)
    }

    /// Ends the burst: shuts the spoofer's daemon down, which says goodbye for its services (a
    /// second burst), and waits until the namespace's UDP traffic is quiet (see [`wait_quiet`]).
    ///
    /// While the spoofer runs it answers every `_ship._tcp` query with its thousands of
    /// records, which overflows every other daemon's receive buffer again: an answer of a real
    /// peer sent at that time is lost with high probability. A test that wants to show that a
    /// peer is found *after* a burst stops the spoofer first.
    pub fn stop(mut self) -> Quiet {
        if let Some(daemon) = self.daemon.take() {
            // Its command queue (100) may still be full of registrations, or of the commands
            // it queues to itself when a send fails: `shut_down` waits for room (a shutdown refused with `Again` once left the daemon running,
            // answering the next tests' queries with 10,000 records).
            shut_down(&daemon);
        }
        wait_quiet(Duration::from_secs(2), Duration::from_secs(120))
    }
}

impl Drop for Spoofer {
    /// Shuts the daemon down and waits until it has said its goodbyes and closed its sockets
    /// (at most 120 s), so that a test that fails with a spoofer running does not leave it
    /// answering the next test's queries.
    fn drop(&mut self) {
        if let Some(daemon) = self.daemon.take() {
            shut_down(&daemon);
        }
    }
}

/// Shuts `daemon` down and waits (at most 120 s in all) until it has said its goodbyes and its
/// thread has ended. The command queue may be full for a while (a burst still being worked
/// through, commands the daemon queues to itself when a send fails): `Again` is retried.
fn shut_down(daemon: &ServiceDaemon) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match daemon.shutdown() {
            Ok(status) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = status.recv_timeout(left);
                return;
            }
            // The command queue is full (a burst still being handed over): wait for room.
            Err(mdns_sd::Error::Again) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(_) => return,
        }
    }
}

/// The UDP counters of this network namespace (`/proc/net/snmp`): datagrams received and
/// datagrams dropped because a socket's receive buffer was full.
pub fn udp_counters() -> (u64, u64) {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else {
        return (0, 0);
    };
    let field = |name: &str| {
        names
            .split_whitespace()
            .position(|n| n == name)
            .and_then(|i| values.split_whitespace().nth(i))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("InDatagrams"), field("RcvbufErrors"))
}

/// What [`wait_quiet`] saw.
#[derive(Debug, Clone, Copy)]
pub struct Quiet {
    /// How long it waited.
    pub waited: Duration,
    /// Datagrams received in the namespace so far.
    pub datagrams: u64,
    /// Datagrams the namespace dropped for full receive buffers so far.
    pub dropped: u64,
}

/// Waits until no UDP datagram arrived in the namespace for `quiet` (at most `bound`; it panics
/// beyond that).
pub fn wait_quiet(quiet: Duration, bound: Duration) -> Quiet {
    let started = Instant::now();
    let mut last = udp_counters();
    let mut since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = udp_counters();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            return Quiet {
                waited: started.elapsed(),
                datagrams: now.0,
                dropped: now.1,
            };
        }
        assert!(
            started.elapsed() < bound,
            "UDP traffic never quiet for {quiet:?} within {bound:?}: {now:?}"
        );
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

    /// Registers a service of SHIP ID `ship_id` under the instance name `instance`, taken as it
    /// is (a hostile device may announce any bytes: newlines, bidi overrides; the library's
    /// own announcements refuse such names).
    pub fn announce_as(instance: &str, ship_id: &str, ski: Ski, port: u16) -> Announcer {
        let daemon = ServiceDaemon::new().expect("announcer daemon");
        let txt = ShipTxt::new(ShipId::new(ship_id).unwrap(), ski);
        let properties = txt.to_properties();
        let info = ServiceInfo::new(
            SERVICE_TYPE,
            instance,
            &format!("{ship_id}.local."),
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
    /// Shuts the daemon down and waits until its thread has ended (see [`Spoofer`]'s drop).
    fn drop(&mut self) {
        shut_down(&self.daemon);
    }
}

/// Addresses that accept TCP and then never send a byte (the fakes of the fake-claim tests),
/// each on its own loopback IP (`127.0.0.10` upwards) with an OS-chosen port. Counts what it
/// accepted. Dropping it stops accepting and closes what it holds.
pub struct SilentHosts {
    addresses: Vec<std::net::SocketAddr>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl SilentHosts {
    /// Starts `count` silent listeners (at most 200).
    pub fn start(count: u8) -> SilentHosts {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        assert!(count <= 200);
        let accepted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut addresses = Vec::new();
        for n in 0..count {
            let ip = std::net::Ipv4Addr::new(127, 0, 0, 10 + n);
            let listener = std::net::TcpListener::bind((ip, 0)).expect("silent listener");
            listener.set_nonblocking(true).unwrap();
            addresses.push(listener.local_addr().unwrap());
            let (accepted, stop) = (accepted.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut held = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((socket, _)) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                            held.push(socket);
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        SilentHosts {
            addresses,
            accepted,
            stop,
        }
    }

    /// Their addresses.
    pub fn addresses(&self) -> &[std::net::SocketAddr] {
        &self.addresses
    }

    /// Connections accepted so far, over all of them.
    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for SilentHosts {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Spoofer {
    /// Starts a spoofer daemon (it does not browse) that claims `ski`: one service
    /// `<prefix>-<n>` per address, with a valid SHIP TXT record of that SKI, as an attacker
    /// announcing fake instances of a paired device would.
    pub fn claims(prefix: &str, ski: Ski, addresses: &[std::net::SocketAddr]) -> Spoofer {
        let spoofer = Spoofer {
            daemon: Some(ServiceDaemon::new().expect("spoofer daemon")),
        };
        let daemon = spoofer.daemon.as_ref().expect("just set");
        for (n, address) in addresses.iter().enumerate() {
            let name = format!("{prefix}-{n}");
            let txt = ShipTxt::new(ShipId::new(name.clone()).unwrap(), ski);
            let properties = txt.to_properties();
            let info = ServiceInfo::new(
                SERVICE_TYPE,
                &name,
                &format!("{name}.local."),
                address.ip().to_string().as_str(),
                address.port(),
                &properties[..],
            )
            .expect("service info");
            loop {
                match daemon.register(info.clone()) {
                    Ok(()) => break,
                    Err(mdns_sd::Error::Again) => std::thread::sleep(Duration::from_millis(1)),
                    Err(error) => panic!("spoofer register: {error}"),
                }
            }
        }
        spoofer
    }
}

/// A bare `mdns-sd` daemon for a test (a raw browser, a hand-made record) that is shut down,
/// and waited for, when it is dropped: also when the test panics first. A dropped
/// `ServiceDaemon` handle alone leaves its thread running, answering the next test's queries
/// with this test's records.
pub struct OwnedDaemon(ServiceDaemon);

impl OwnedDaemon {
    /// Starts a daemon (panics if it cannot: the namespace tests need one).
    pub fn new() -> OwnedDaemon {
        OwnedDaemon(ServiceDaemon::new().expect("mDNS daemon"))
    }
}

impl Default for OwnedDaemon {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for OwnedDaemon {
    type Target = ServiceDaemon;

    fn deref(&self) -> &ServiceDaemon {
        &self.0
    }
}

impl Drop for OwnedDaemon {
    fn drop(&mut self) {
        shut_down(&self.0);
    }
}
