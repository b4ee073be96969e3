//! The HTTP API's connection slots (docs/gateway.md, "Bounds").
//!
//! A connection cannot be told apart before its first request's headers arrive, so every new
//! connection starts **untrusted**. When a request's headers carry a valid token or session the
//! connection moves to the **authorized** slots, which a stranger can never take. So:
//!
//! * at most [`ConnLimits::untrusted`] connections are untrusted at once (new ones, idle ones
//!   whose last request had no credential, ones in an unauthenticated request such as the login
//!   form), and at most [`ConnLimits::per_address`] of them from one source address;
//! * when a new connection finds its address's share or the whole untrusted pool full, the
//!   **oldest** untrusted connection of that address (or, with the pool full, of the address
//!   that holds the most) is closed to make room. Holding slots is therefore useless: whoever
//!   holds them loses them to the next newcomer, and an authorized client that sends its
//!   headers at once is promoted before it is the oldest;
//! * at most [`ConnLimits::authorized`] connections are authorized at once; beyond it a request
//!   with a valid credential is still served, from an untrusted slot.
//!
//! The table is pure bookkeeping; the accept loop (`super::serve`) closes a connection when its
//! [`Admitted::evicted`] is notified.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// How many connections of each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ConnLimits {
    /// Connections that have not shown a valid credential (yet). At least 1.
    pub(crate) untrusted: usize,
    /// Of those, from one source address (an IPv4 address, an IPv6 /64). At least 1.
    pub(crate) per_address: usize,
    /// Connections whose last request carried a valid token or session.
    pub(crate) authorized: usize,
}

/// The key of a source address: an IPv4 address (also when mapped into IPv6), or the /64
/// prefix of an IPv6 one (one host usually has a whole /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    V4([u8; 4]),
    V6([u8; 8]),
}

impl Source {
    pub(crate) fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source::V4(v4.octets()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source::V4(v4.octets()),
                None => {
                    let mut prefix = [0; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    Source::V6(prefix)
                }
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::V4(o) => write!(f, "{}", std::net::Ipv4Addr::from(*o)),
            Source::V6(p) => {
                let mut o = [0u8; 16];
                o[..8].copy_from_slice(p);
                write!(f, "{}/64", std::net::Ipv6Addr::from(o))
            }
        }
    }
}

/// A connection's number in the table.
pub(crate) type ConnId = u64;

/// What the accept loop gets for a new connection.
pub(crate) struct Admitted {
    pub(crate) id: ConnId,
    /// Notified when the connection must be closed to make room.
    pub(crate) evicted: Arc<Notify>,
}

#[derive(Debug)]
struct Entry {
    source: Source,
    evicted: Arc<Notify>,
    /// `Some(order)` while untrusted (its place in `Table::untrusted`), `None` when authorized.
    untrusted: Option<u64>,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    entries: HashMap<ConnId, Entry>,
    /// Untrusted connections, oldest first.
    untrusted: BTreeMap<u64, ConnId>,
    per_source: HashMap<Source, usize>,
    authorized: usize,
}

/// The slots of one HTTP listener.
#[derive(Debug)]
pub(crate) struct Conns {
    limits: ConnLimits,
    table: Mutex<Table>,
    evictions: AtomicU64,
}

impl Conns {
    pub(crate) fn new(limits: ConnLimits) -> Conns {
        Conns {
            limits: ConnLimits {
                untrusted: limits.untrusted.max(1),
                per_address: limits.per_address.max(1),
                authorized: limits.authorized,
            },
            table: Mutex::new(Table::default()),
            evictions: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A new connection from `ip`: untrusted, making room first if needed.
    pub(crate) fn admit(&self, ip: IpAddr) -> Admitted {
        let source = Source::of(ip);
        let evicted = Arc::new(Notify::new());
        let mut table = self.lock();
        table.next += 1;
        let id = table.next;
        table.entries.insert(
            id,
            Entry {
                source,
                evicted: evicted.clone(),
                untrusted: None,
            },
        );
        self.make_untrusted(&mut table, id);
        Admitted { id, evicted }
    }

    /// The request now being served on `id` carries a valid credential: the connection takes
    /// an authorized slot if one is free (else it stays untrusted). Returns whether it is
    /// authorized now.
    pub(crate) fn authorize(&self, id: ConnId) -> bool {
        let mut table = self.lock();
        let Some(entry) = table.entries.get(&id) else {
            return false;
        };
        let (source, order) = (entry.source, entry.untrusted);
        let Some(order) = order else {
            return true;
        };
        if table.authorized >= self.limits.authorized {
            return false;
        }
        table.untrusted.remove(&order);
        Self::count_down(&mut table, source);
        table.authorized += 1;
        if let Some(entry) = table.entries.get_mut(&id) {
            entry.untrusted = None;
        }
        true
    }

    /// The request now being served on `id` carries no valid credential: an authorized
    /// connection becomes untrusted again (the newest one).
    pub(crate) fn distrust(&self, id: ConnId) {
        let mut table = self.lock();
        if table
            .entries
            .get(&id)
            .is_some_and(|e| e.untrusted.is_none())
        {
            table.authorized -= 1;
            self.make_untrusted(&mut table, id);
        }
    }

    /// The connection `id` ended.
    pub(crate) fn leave(&self, id: ConnId) {
        let mut table = self.lock();
        Self::remove(&mut table, id);
    }

    /// Connections closed to make room, since the start.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// (untrusted, authorized) connections now.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let table = self.lock();
        (table.untrusted.len(), table.authorized)
    }

    fn count_down(table: &mut Table, source: Source) {
        if let Some(n) = table.per_source.get_mut(&source) {
            *n -= 1;
            if *n == 0 {
                table.per_source.remove(&source);
            }
        }
    }

    fn remove(table: &mut Table, id: ConnId) -> Option<Entry> {
        let entry = table.entries.remove(&id)?;
        match entry.untrusted {
            Some(order) => {
                table.untrusted.remove(&order);
                Self::count_down(table, entry.source);
            }
            None => table.authorized -= 1,
        }
        Some(entry)
    }

    /// Puts `id` (in `entries`, not untrusted) at the young end of the untrusted pool, evicting
    /// the oldest of its source (its share is full) or of the source with the most (the pool
    /// is full).
    fn make_untrusted(&self, table: &mut Table, id: ConnId) {
        let Some(source) = table.entries.get(&id).map(|e| e.source) else {
            return;
        };
        loop {
            let mine = table.per_source.get(&source).copied().unwrap_or(0);
            let from = if mine >= self.limits.per_address {
                source
            } else if table.untrusted.len() >= self.limits.untrusted {
                // The source holding the most (ties: any); never empty here.
                match table.per_source.iter().max_by_key(|(_, n)| **n) {
                    Some((busiest, _)) => *busiest,
                    None => break,
                }
            } else {
                break;
            };
            let victim = table
                .untrusted
                .values()
                .copied()
                .find(|v| *v != id && table.entries.get(v).is_some_and(|e| e.source == from));
            let Some(victim) = victim else { break };
            if let Some(entry) = Self::remove(table, victim) {
                entry.evicted.notify_one();
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        table.next += 1;
        let order = table.next;
        table.untrusted.insert(order, id);
        *table.per_source.entry(source).or_default() += 1;
        if let Some(entry) = table.entries.get_mut(&id) {
            entry.untrusted = Some(order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn evicted(a: &Admitted) -> bool {
        // `notify_one` stores a permit: a notified connection is seen without waiting.
        let notified = a.evicted.notified();
        tokio::pin!(notified);
        futures_util::FutureExt::now_or_never(notified.as_mut()).is_some()
    }

    const LIMITS: ConnLimits = ConnLimits {
        untrusted: 4,
        per_address: 2,
        authorized: 2,
    };

    #[test]
    fn a_full_share_of_one_address_loses_its_oldest_connection_to_a_newcomer() {
        let conns = Conns::new(LIMITS);
        let a1 = conns.admit(ip("10.0.0.1"));
        let a2 = conns.admit(ip("10.0.0.1"));
        let b1 = conns.admit(ip("10.0.0.2"));
        let a3 = conns.admit(ip("10.0.0.1"));
        assert!(evicted(&a1), "the oldest of 10.0.0.1 made room");
        assert!(!evicted(&a2) && !evicted(&b1) && !evicted(&a3));
        assert_eq!(conns.counts(), (3, 0));
        assert_eq!(conns.evictions(), 1);
    }

    #[test]
    fn a_full_pool_loses_the_oldest_connection_of_the_busiest_address() {
        let conns = Conns::new(LIMITS);
        let b1 = conns.admit(ip("10.0.0.2"));
        let a1 = conns.admit(ip("10.0.0.1"));
        let a2 = conns.admit(ip("10.0.0.1"));
        let c1 = conns.admit(ip("10.0.0.3"));
        // Full (4): the newcomer from a fourth address takes the place of 10.0.0.1's oldest,
        // not of b1, which is older but alone.
        let d1 = conns.admit(ip("10.0.0.4"));
        assert!(evicted(&a1));
        assert!(!evicted(&b1) && !evicted(&a2) && !evicted(&c1) && !evicted(&d1));
        assert_eq!(conns.counts(), (4, 0));
    }

    #[test]
    fn an_authorized_connection_is_never_evicted_and_its_slots_are_bounded() {
        let conns = Conns::new(LIMITS);
        let a1 = conns.admit(ip("127.0.0.1"));
        assert!(conns.authorize(a1.id));
        let a2 = conns.admit(ip("127.0.0.1"));
        assert!(conns.authorize(a2.id));
        // The authorized slots are full: a third one stays untrusted, but is served.
        let a3 = conns.admit(ip("127.0.0.1"));
        assert!(!conns.authorize(a3.id));
        // Strangers from the same address churn through the untrusted share only.
        for _ in 0..10 {
            conns.admit(ip("127.0.0.1"));
        }
        assert!(!evicted(&a1) && !evicted(&a2));
        assert!(evicted(&a3));
        assert_eq!(conns.counts(), (2, 2));
        // A request without a credential puts a1 back among the untrusted (the newest).
        conns.distrust(a1.id);
        assert_eq!(conns.counts().1, 1);
        assert!(!evicted(&a1));
        conns.leave(a1.id);
        conns.leave(a2.id);
        conns.leave(a3.id);
        assert_eq!(conns.counts(), (1, 0));
    }

    #[test]
    fn sources_are_ipv4_addresses_and_ipv6_prefixes() {
        assert_eq!(
            Source::of(ip("::ffff:10.0.0.1")),
            Source::of(ip("10.0.0.1"))
        );
        assert_eq!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            Source::of(ip("2001:db8:1:2::1")),
            Source::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            Source::of(ip("2001:db8:1:2::1")).to_string(),
            "2001:db8:1:2::/64"
        );
    }
}
