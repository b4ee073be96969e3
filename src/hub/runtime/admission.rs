//! Admission of incoming connections: which TCP connections may start a TLS handshake, and
//! which upgraded connections of strangers may stay (architecture.md, "Admission").
//!
//! * Handshake slots: `max_handshakes_in_progress` in all, of which `reserved_handshakes` only
//!   for connections from addresses of paired peers ([`KnownAddresses`]), and at most
//!   `max_handshakes_per_address` from one source address. A TCP connection that gets no slot
//!   is closed at once, before any TLS work; except that at an address of a paired peer, a
//!   connection that has not sent its complete TLS ClientHello yet (*silent*) gives its slot to
//!   a newer one, the oldest silent first: sockets that say nothing cannot keep a paired peer on
//!   the same host (or behind the same NAT) out. Nothing is lost by that: no TLS work was done
//!   for the silent one, and a real client sends its ClientHello right after connecting.
//! * Strangers' slots: `max_unpaired_connections` in all, at most `max_unpaired_per_address`
//!   from one source address; beyond them the WebSocket upgrade gets HTTP 503.
//!
//! * Refusal reports: at most one per source address per `refusal_report_interval`, at most
//!   `max_refusal_reports` per interval in all ([`RefusalReports`]).
//!
//! Every count is taken without waiting and given back by dropping its guard. The locks inside
//! guard a small map each, are never held across an await, and nothing does IO under them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::Ski;
use crate::hub::callbacks::AdmissionRefusal;
use crate::hub::config::Limits;
use crate::hub::metrics::AdmissionCap;
use crate::sync::lock;

/// The same host, however it is written (an IPv4 peer on a dual-stack listener arrives as an
/// IPv4-mapped IPv6 address).
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Connections at once per source address, up to a limit.
#[derive(Debug)]
pub(crate) struct PerAddress {
    limit: usize,
    /// Only addresses with at least one connection, each with its connections in the order
    /// they came: bounded by the slots that guard its users.
    held: Mutex<HashMap<IpAddr, Vec<Arc<Connection>>>>,
}

/// One connection counted against its source address.
#[derive(Debug, Default)]
pub(crate) struct Connection {
    /// It delivered its complete TLS ClientHello: never evicted for a newer connection.
    spoke: AtomicBool,
    /// Cancelled when a newer connection from its address took its place.
    evicted: CancellationToken,
    /// The handshake slot it holds (moves to the connection that evicts it).
    permit: Mutex<Option<(OwnedSemaphorePermit, bool)>>,
}

impl PerAddress {
    pub(crate) fn new(limit: usize) -> Arc<Self> {
        Arc::new(PerAddress {
            limit,
            held: Mutex::new(HashMap::new()),
        })
    }

    /// One more connection from `ip`, unless it has `limit` already.
    pub(crate) fn try_take(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let ip = canonical(ip);
        let mut held = lock(&self.held);
        let connections = held.entry(ip).or_default();
        if connections.len() >= self.limit {
            if connections.is_empty() {
                held.remove(&ip);
            }
            return None;
        }
        let connection = Arc::new(Connection::default());
        connections.push(connection.clone());
        Some(AddressSlot {
            owner: self.clone(),
            ip,
            connection,
        })
    }

    /// The place of the oldest silent connection from `ip` (one that has not delivered its
    /// ClientHello), for a new one: the old one is told to go (its token is cancelled) and its
    /// handshake permit is handed over. `None` if every connection from `ip` has spoken.
    fn take_silent(
        self: &Arc<Self>,
        ip: IpAddr,
    ) -> Option<(AddressSlot, Option<(OwnedSemaphorePermit, bool)>)> {
        let ip = canonical(ip);
        let mut held = lock(&self.held);
        let connections = held.get_mut(&ip)?;
        let at = connections
            .iter()
            .position(|c| !c.spoke.load(Ordering::Acquire) && !c.evicted.is_cancelled())?;
        let old = connections.remove(at);
        old.evicted.cancel();
        let permit = lock(&old.permit).take();
        let connection = Arc::new(Connection::default());
        connections.push(connection.clone());
        Some((
            AddressSlot {
                owner: self.clone(),
                ip,
                connection,
            },
            permit,
        ))
    }

    #[cfg(test)]
    fn held(&self, ip: IpAddr) -> usize {
        let held = lock(&self.held);
        held.get(&canonical(ip)).map_or(0, Vec::len)
    }
}

/// One connection counted against its source address; given back on drop (unless a newer
/// connection took its place).
#[derive(Debug)]
pub(crate) struct AddressSlot {
    owner: Arc<PerAddress>,
    ip: IpAddr,
    connection: Arc<Connection>,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = lock(&self.owner.held);
        if let Some(connections) = held.get_mut(&self.ip) {
            connections.retain(|c| !Arc::ptr_eq(c, &self.connection));
            if connections.is_empty() {
                held.remove(&self.ip);
            }
        }
    }
}

/// The IP addresses the hub knows for its paired peers, as each peer's supervisor publishes
/// them: connections from these may take the reserved handshake slots.
#[derive(Debug, Default)]
pub(crate) struct KnownAddresses {
    inner: Mutex<Known>,
}

#[derive(Debug, Default)]
struct Known {
    by_peer: HashMap<Ski, Vec<IpAddr>>,
    /// How many peers are known at each address.
    peers_at: HashMap<IpAddr, usize>,
}

impl KnownAddresses {
    /// Sets the addresses `ski` is known at (empty: forget it, e.g. once it is unpaired).
    pub(crate) fn publish(&self, ski: Ski, ips: impl IntoIterator<Item = IpAddr>) {
        let mut ips: Vec<IpAddr> = ips.into_iter().map(canonical).collect();
        ips.sort_unstable();
        ips.dedup();
        let mut known = lock(&self.inner);
        if known
            .by_peer
            .get(&ski)
            .map_or(ips.is_empty(), |old| *old == ips)
        {
            return;
        }
        let old = if ips.is_empty() {
            known.by_peer.remove(&ski)
        } else {
            known.by_peer.insert(ski, ips.clone())
        };
        for ip in old.unwrap_or_default() {
            if let Some(count) = known.peers_at.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    known.peers_at.remove(&ip);
                }
            }
        }
        for ip in ips {
            *known.peers_at.entry(ip).or_insert(0) += 1;
        }
    }

    /// Whether a paired peer is known at `ip`.
    pub(crate) fn contains(&self, ip: IpAddr) -> bool {
        let known = lock(&self.inner);
        known.peers_at.contains_key(&canonical(ip))
    }
}

/// Why an incoming connection got no slot: the cap that refused it.
pub(crate) type Refusal = AdmissionCap;

/// What an incoming connection holds while its TLS + WebSocket handshake runs.
#[derive(Debug)]
pub(crate) struct HandshakeSlot {
    _address: AddressSlot,
    /// It took one of the reserved slots.
    pub(crate) reserved: bool,
}

impl HandshakeSlot {
    /// The connection delivered its complete ClientHello: from now on it keeps its slot.
    pub(crate) fn spoke(&self) {
        self._address
            .connection
            .spoke
            .store(true, Ordering::Release);
    }

    /// Resolves when a newer connection from the same address took this one's place (it was
    /// still silent): the connection is to be dropped.
    pub(crate) fn evicted(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self._address.connection.evicted.cancelled()
    }
}

/// What a stranger's connection holds for as long as it lives.
#[derive(Debug)]
pub(crate) struct UnpairedSlot {
    _permit: OwnedSemaphorePermit,
    _address: AddressSlot,
}

/// The admission counts of one hub.
#[derive(Debug)]
pub(crate) struct Admission {
    /// Handshake slots anyone may take.
    open: Arc<Semaphore>,
    /// Handshake slots only for addresses of paired peers.
    reserved: Arc<Semaphore>,
    handshakes_per_address: Arc<PerAddress>,
    unpaired: Arc<Semaphore>,
    unpaired_per_address: Arc<PerAddress>,
    /// Addresses of paired peers.
    pub(crate) known: KnownAddresses,
    /// Which refusals are reported to the application.
    pub(crate) reports: RefusalReports,
}

impl Admission {
    pub(crate) fn new(limits: &Limits) -> Self {
        let reserved = limits
            .reserved_handshakes
            .min(limits.max_handshakes_in_progress);
        Admission {
            open: Arc::new(Semaphore::new(limits.max_handshakes_in_progress - reserved)),
            reserved: Arc::new(Semaphore::new(reserved)),
            handshakes_per_address: PerAddress::new(limits.max_handshakes_per_address),
            unpaired: Arc::new(Semaphore::new(limits.max_unpaired_connections)),
            unpaired_per_address: PerAddress::new(limits.max_unpaired_per_address),
            known: KnownAddresses::default(),
            reports: RefusalReports::new(
                limits.refusal_report_interval,
                limits.max_refusal_reports,
            ),
        }
    }

    /// A handshake slot for a TCP connection from `ip`, taken at once or not at all. A paired
    /// peer's address takes a reserved slot first, so that the open ones stay for others; at
    /// its per-address cap, it takes the place of its oldest silent connection (see the module
    /// documentation).
    pub(crate) fn handshake(&self, ip: IpAddr) -> Result<HandshakeSlot, Refusal> {
        let known = self.known.contains(ip);
        let (address, inherited) = match self.handshakes_per_address.try_take(ip) {
            Some(address) => (address, None),
            None if known => match self.handshakes_per_address.take_silent(ip) {
                Some((address, permit)) => (address, permit),
                None => return Err(Refusal::HandshakesPerAddress),
            },
            None => return Err(Refusal::HandshakesPerAddress),
        };
        let (permit, reserved) = match inherited {
            Some(held) => held,
            None => {
                let reserved = if known {
                    self.reserved.clone().try_acquire_owned().ok()
                } else {
                    None
                };
                match reserved {
                    Some(permit) => (permit, true),
                    None => (
                        self.open
                            .clone()
                            .try_acquire_owned()
                            .map_err(|_| Refusal::HandshakesInProgress)?,
                        false,
                    ),
                }
            }
        };
        *lock(&address.connection.permit) = Some((permit, reserved));
        Ok(HandshakeSlot {
            _address: address,
            reserved,
        })
    }

    /// A strangers' slot for an upgraded connection from `ip`, taken at once or not at all.
    pub(crate) fn unpaired(&self, ip: IpAddr) -> Result<UnpairedSlot, Refusal> {
        let address = self
            .unpaired_per_address
            .try_take(ip)
            .ok_or(Refusal::UnpairedPerAddress)?;
        let permit = self
            .unpaired
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::UnpairedConnections)?;
        Ok(UnpairedSlot {
            _permit: permit,
            _address: address,
        })
    }
}

/// Which refusals are reported to the application: the first from a source address, then at
/// most one per interval from it (with the count in between), and at most `max` per interval
/// in all. What is not reported is still counted in the metrics. Bounded: a source is
/// remembered only once reported, so at most about `2 × max` are.
#[derive(Debug)]
pub(crate) struct RefusalReports {
    interval: Duration,
    max: usize,
    inner: Mutex<Reports>,
}

#[derive(Debug, Default)]
struct Reports {
    /// Per reported source: when it was reported last, and its refusals since.
    sources: HashMap<IpAddr, (Instant, u64)>,
    /// The current window of `interval` (its start) and the reports made in it.
    window: Option<Instant>,
    made: usize,
}

impl RefusalReports {
    pub(crate) fn new(interval: Duration, max: usize) -> Self {
        RefusalReports {
            interval,
            max,
            inner: Mutex::new(Reports::default()),
        }
    }

    /// A connection from `ip` was refused by `cap` at `now`: the report to make, if one is due.
    pub(crate) fn refused(
        &self,
        ip: IpAddr,
        cap: AdmissionCap,
        now: Instant,
    ) -> Option<AdmissionRefusal> {
        let ip = canonical(ip);
        let interval = self.interval;
        let mut reports = lock(&self.inner);
        let reports = &mut *reports;
        if reports
            .window
            .is_none_or(|start| now.saturating_duration_since(start) >= interval)
        {
            reports.window = Some(now);
            reports.made = 0;
        }
        let budget = reports.made < self.max;
        let refused = match reports.sources.get_mut(&ip) {
            Some((at, count)) if now.saturating_duration_since(*at) < interval || !budget => {
                *count += 1;
                return None;
            }
            Some((at, count)) => {
                *at = now;
                std::mem::take(count) + 1
            }
            None if !budget => return None,
            None => {
                if reports.sources.len() >= 2 * self.max.max(1) {
                    reports
                        .sources
                        .retain(|_, (at, _)| now.saturating_duration_since(*at) < interval);
                }
                reports.sources.insert(ip, (now, 0));
                1
            }
        };
        reports.made += 1;
        Some(AdmissionRefusal {
            address: ip,
            cap,
            refused,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 168, 1, last])
    }

    fn limits(total: usize, reserved: usize, per_address: usize) -> Limits {
        Limits {
            max_handshakes_in_progress: total,
            reserved_handshakes: reserved,
            max_handshakes_per_address: per_address,
            ..Limits::default()
        }
    }

    #[test]
    fn one_address_gets_at_most_its_share() {
        let admission = Admission::new(&limits(32, 8, 4));
        let held: Vec<_> = (0..4)
            .map(|_| admission.handshake(ip(2)).unwrap())
            .collect();
        assert_eq!(
            admission.handshake(ip(2)).unwrap_err(),
            Refusal::HandshakesPerAddress
        );
        assert!(admission.handshake(ip(3)).is_ok());
        drop(held);
        assert_eq!(admission.handshakes_per_address.held(ip(2)), 0);
        assert!(admission.handshake(ip(2)).is_ok());
    }

    #[test]
    fn the_reserve_is_only_for_known_addresses() {
        let admission = Admission::new(&limits(6, 2, 1));
        let strangers: Vec<_> = (10..14)
            .map(|i| admission.handshake(ip(i)).unwrap())
            .collect();
        assert!(strangers.iter().all(|slot| !slot.reserved));
        assert_eq!(
            admission.handshake(ip(20)).unwrap_err(),
            Refusal::HandshakesInProgress
        );
        admission
            .known
            .publish(Ski::from_bytes([1; 20]), [ip(1), ip(5)]);
        let first = admission.handshake(ip(1)).unwrap();
        let second = admission.handshake(ip(5)).unwrap();
        assert!(first.reserved && second.reserved);
        admission.known.publish(Ski::from_bytes([2; 20]), [ip(7)]);
        assert_eq!(
            admission.handshake(ip(7)).unwrap_err(),
            Refusal::HandshakesInProgress
        );
        drop(strangers);
        // A known address takes an open slot when the reserve is used up.
        assert!(!admission.handshake(ip(7)).unwrap().reserved);
    }

    #[test]
    fn known_addresses_follow_what_peers_publish() {
        let known = KnownAddresses::default();
        let (a, b) = (Ski::from_bytes([1; 20]), Ski::from_bytes([2; 20]));
        known.publish(a, [ip(1), ip(2), ip(1)]);
        known.publish(b, [ip(2)]);
        assert!(known.contains(ip(1)) && known.contains(ip(2)));
        known.publish(a, [ip(3)]);
        assert!(!known.contains(ip(1)) && known.contains(ip(2)) && known.contains(ip(3)));
        known.publish(b, []);
        assert!(!known.contains(ip(2)));
        known.publish(a, []);
        assert!(!known.contains(ip(3)));
        let inner = known.inner.lock().unwrap();
        assert!(inner.by_peer.is_empty() && inner.peers_at.is_empty());
    }

    #[test]
    fn an_ipv4_mapped_address_is_the_same_host() {
        let admission = Admission::new(&limits(32, 8, 1));
        let mapped: IpAddr = "::ffff:192.168.1.9".parse().unwrap();
        let _slot = admission.handshake(ip(9)).unwrap();
        assert_eq!(
            admission.handshake(mapped).unwrap_err(),
            Refusal::HandshakesPerAddress
        );
        admission.known.publish(Ski::from_bytes([1; 20]), [mapped]);
        assert!(admission.known.contains(ip(9)));
    }

    #[test]
    fn at_a_paired_peers_address_a_silent_connection_gives_its_place_to_a_newer_one() {
        let admission = Admission::new(&limits(32, 8, 4));
        admission.known.publish(Ski::from_bytes([1; 20]), [ip(1)]);
        let mut silent: Vec<_> = (0..4)
            .map(|_| admission.handshake(ip(1)).unwrap())
            .collect();
        // The fifth takes the place of the oldest silent one, with its permit (a reserved one).
        let newer = admission.handshake(ip(1)).unwrap();
        assert!(newer.reserved);
        assert!(
            silent[0].evicted().now_or_never().is_some(),
            "the oldest was not told to go"
        );
        assert!(
            silent[1..]
                .iter()
                .all(|s| s.evicted().now_or_never().is_none())
        );
        assert_eq!(admission.handshakes_per_address.held(ip(1)), 4);
        assert_eq!(admission.reserved.available_permits(), 4);
        // Dropping the evicted one gives nothing back twice.
        drop(silent.remove(0));
        assert_eq!(admission.handshakes_per_address.held(ip(1)), 4);
        assert_eq!(admission.reserved.available_permits(), 4);
        drop(newer);
        assert_eq!(admission.reserved.available_permits(), 5);
    }

    #[test]
    fn a_connection_that_sent_its_client_hello_keeps_its_place() {
        let admission = Admission::new(&limits(32, 8, 2));
        admission.known.publish(Ski::from_bytes([1; 20]), [ip(1)]);
        let first = admission.handshake(ip(1)).unwrap();
        let second = admission.handshake(ip(1)).unwrap();
        first.spoke();
        // The second (silent) goes, not the first (older, but it spoke).
        let third = admission.handshake(ip(1)).unwrap();
        assert!(first.evicted().now_or_never().is_none());
        assert!(second.evicted().now_or_never().is_some());
        third.spoke();
        assert_eq!(
            admission.handshake(ip(1)).unwrap_err(),
            Refusal::HandshakesPerAddress,
            "every connection spoke: no place to take"
        );
    }

    #[test]
    fn at_other_addresses_silent_connections_keep_their_places() {
        let admission = Admission::new(&limits(32, 8, 2));
        let held: Vec<_> = (0..2)
            .map(|_| admission.handshake(ip(2)).unwrap())
            .collect();
        assert_eq!(
            admission.handshake(ip(2)).unwrap_err(),
            Refusal::HandshakesPerAddress
        );
        assert!(held.iter().all(|s| s.evicted().now_or_never().is_none()));
    }

    #[test]
    fn strangers_are_limited_per_address_and_in_all() {
        let admission = Admission::new(&Limits {
            max_unpaired_connections: 2,
            max_unpaired_per_address: 1,
            ..Limits::default()
        });
        let first = admission.unpaired(ip(2)).unwrap();
        assert_eq!(
            admission.unpaired(ip(2)).unwrap_err(),
            Refusal::UnpairedPerAddress
        );
        let second = admission.unpaired(ip(3)).unwrap();
        assert_eq!(
            admission.unpaired(ip(4)).unwrap_err(),
            Refusal::UnpairedConnections
        );
        // A refusal for lack of room takes nothing.
        assert_eq!(admission.unpaired_per_address.held(ip(4)), 0);
        drop((first, second));
        assert!(admission.unpaired(ip(2)).is_ok());
    }

    #[test]
    fn refusals_are_reported_once_per_source_and_interval_and_boundedly_in_all() {
        let reports = RefusalReports::new(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let cap = AdmissionCap::UnpairedPerAddress;
        let first = reports
            .refused(ip(1), cap, at(0))
            .expect("the first is reported");
        assert_eq!((first.address, first.cap, first.refused), (ip(1), cap, 1));
        for s in 1..60 {
            assert!(reports.refused(ip(1), cap, at(s)).is_none(), "{s} s");
        }
        // A minute later: one report with every refusal since the last.
        let again = reports
            .refused(ip(1), AdmissionCap::Connections, at(61))
            .unwrap();
        assert_eq!((again.cap, again.refused), (AdmissionCap::Connections, 60));
        // In all: at most 3 per minute, whatever the number of sources.
        let reported = (10..=200)
            .filter(|&i| reports.refused(ip(i), cap, at(62)).is_some())
            .count();
        assert_eq!(
            reported, 2,
            "the window from 61 s has one report made already"
        );
        let reported = (10..=200)
            .filter(|&i| reports.refused(ip(i), cap, at(130)).is_some())
            .count();
        assert_eq!(reported, 3);
        assert!(reports.inner.lock().unwrap().sources.len() <= 6);
        // An IPv4-mapped address is the same source.
        let mapped: IpAddr = "::ffff:192.168.1.10".parse().unwrap();
        assert!(reports.refused(mapped, cap, at(131)).is_none());
    }
}
