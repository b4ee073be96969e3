//! Every address known to reach each peer, and the order to dial them in.
//!
//! The most common field complaint about SHIP stacks (`docs/ship.md` §8) is a paired device
//! that is never redialled: its mDNS record expired, mDNS dropped out for a minute, or it got a
//! new IP address, and the stack only dialled what mDNS currently announced. The address book
//! therefore remembers addresses from every source and forgets only what a source takes back:
//!
//! * **last successful connection** — the address we last dialled successfully, and the address
//!   the peer last connected *from* (its source port is ephemeral, so that IP is combined with the
//!   peer's last known listening port): they survive every mDNS event;
//! * **static configuration** — addresses the user gave; they stay until the configuration
//!   changes;
//! * **discovery** — the addresses mDNS records (§7) claim for the peer, each with its record's
//!   TXT `path` and SNI host name. Anyone on the LAN can announce any SKI, so each is only a
//!   claim: the book keeps every claim it was shown (bounded per peer) and what dialling it
//!   taught. A claim whose dial failed (refused, silent, timed out, another SKI) is *demoted*;
//!   a loss event withdraws a record's claims, but they stay as a last resort, so a record that
//!   expires never leaves a paired peer with nothing to redial.
//!
//! [`AddressBook::dial_candidates`] gives them in the order to try: last successful first (most
//! recent first), then static (configuration order), then claims never tried (taken alternately
//! from both ends of the order they were learnt in: the earliest, the latest, the second
//! earliest, …; within a record IPv4, then global IPv6, then link-local IPv6), then withdrawn
//! ones never tried, then demoted ones (fewest failures first, then the one that failed longest
//! ago); every address once. So a fresh claim is tried before every claim that already failed,
//! a real claim is among the first tried whether fakes were announced before it or in reaction
//! to it, and no claim can push the proven address back. When a peer holds more claims than its bound, demoted ones are evicted first,
//! then withdrawn ones, then the untried ones learnt last (a claim waiting for its turn is never
//! pushed out by later ones). IPv6 link-local addresses keep their scope id (zone index), without
//! which they cannot be dialled.
//!
//! The book is a plain data structure: no clock (recency is the order of events), no I/O. It does
//! not know who is paired; the hub asks it only about peers it means to dial and calls
//! `AddressBook::forget` when a peer is unpaired. Each peer's entry is bounded, the number of
//! peers is not: on a LAN where anyone can announce SKIs, the hub keeps a book only for the peers
//! it dials (each supervisor has its own).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::Ski;
use crate::hub::errors::AddressError;

/// The WebSocket path SHIP nodes announce in their TXT record unless they say otherwise (§7.3.2).
pub(crate) const DEFAULT_SHIP_PATH: &str = "/ship/";

/// How many addresses claimed by mDNS a peer keeps by default, current and withdrawn together
/// ([`AddressBook::with_max_discovered`]; `Limits::max_discovered_addresses`).
pub(crate) const DEFAULT_MAX_DISCOVERED: usize = 128;

/// Where a dial candidate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub(crate) enum AddressSource {
    /// We dialled this address and the connection succeeded.
    LastDialled,
    /// The peer last connected to us from this IP; the port is its last known listening port.
    LastIncoming,
    /// Given in the configuration.
    Static,
    /// Announced by a current mDNS sighting of the service `instance` (§7).
    Discovered {
        /// The mDNS service instance (full name) that announced it.
        instance: String,
    },
    /// Announced by an mDNS sighting that has since been withdrawn (record expired or goodbye);
    /// kept as a last resort.
    Withdrawn {
        /// The mDNS service instance (full name) that announced it.
        instance: String,
    },
}

/// One address to dial, with the WebSocket path to request there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DialCandidate {
    /// The socket address (IPv6 link-local ones carry their scope id).
    pub(crate) address: SocketAddr,
    /// The WebSocket path (`/ship/` unless the peer's TXT record said otherwise).
    pub(crate) path: String,
    /// Where the address comes from.
    pub(crate) source: AddressSource,
    /// The host name to send as SNI there: that of the mDNS record that claimed the address (or
    /// its IP), if any.
    pub(crate) host: Option<String>,
}

fn is_ipv6_link_local(ip: &IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, what a dual-stack listener reports for an
/// IPv4 peer) as the plain IPv4 address, so both forms count as one address.
/// Other addresses are returned as given (an IPv6 address keeps its scope id).
fn canonical(address: SocketAddr) -> SocketAddr {
    match address {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => address,
        },
        SocketAddr::V4(_) => address,
    }
}

/// Checks that `address` can be dialled.
pub(crate) fn check_dialable(address: SocketAddr) -> Result<(), AddressError> {
    let ip = address.ip();
    if ip.is_unspecified() {
        return Err(AddressError::Unspecified { address });
    }
    if address.port() == 0 {
        return Err(AddressError::PortZero { address });
    }
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    if ip.is_multicast() || broadcast {
        return Err(AddressError::NotUnicast { address });
    }
    if let SocketAddr::V6(v6) = address
        && is_ipv6_link_local(&ip)
        && v6.scope_id() == 0
    {
        return Err(AddressError::LinkLocalWithoutScope { address });
    }
    Ok(())
}

fn check_path(path: &str) -> Result<(), AddressError> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(AddressError::BadPath {
            path: path.to_owned(),
        })
    }
}

/// Order within one sighting: IPv4, then global IPv6, then link-local IPv6.
fn family_rank(address: &SocketAddr) -> u8 {
    match address.ip() {
        IpAddr::V4(_) => 0,
        ip if !is_ipv6_link_local(&ip) => 1,
        _ => 2,
    }
}

/// An address with its path and the event number that recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    address: SocketAddr,
    path: String,
    event: u64,
}

/// One address an mDNS record claimed for a peer, with what dialling it taught us.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Claim {
    /// The instance whose record announced it last.
    instance: String,
    /// That record's TXT `path`.
    path: String,
    /// The SNI host name to use there (from the instance name).
    host: String,
    /// The event that first recorded the address: untried claims are tried by it (from both
    /// ends, see `from_both_ends`). A repeated announcement does not move it, so re-announcing
    /// cannot push a claim ahead of others.
    learnt: u64,
    /// Order within its sighting: IPv4, global IPv6, link-local IPv6, then as announced.
    order: (u8, usize),
    /// The event of the loss (goodbye, expiry) of the record that announced it, while no
    /// record announces it any more.
    withdrawn: Option<u64>,
    /// Dials of this address that failed (refused, silent, timed out, wrong SKI) since it last
    /// worked; a claim with failures is *demoted*: tried after every untried one.
    failures: u32,
    /// The event of its last failure (among demoted claims, the longest-failed is tried first).
    failed: u64,
}

impl Claim {
    fn demoted(&self) -> bool {
        self.failures > 0
    }

    /// The order to dial in, smallest first: untried current claims (in the order learnt, then
    /// taken from both ends),
    /// untried withdrawn ones (most recently withdrawn first), then demoted ones (fewest failures
    /// first, then the one that failed longest ago).
    fn dial_rank(&self) -> (u8, u32, u64, (u8, usize)) {
        match (self.demoted(), self.withdrawn) {
            (false, None) => (0, 0, self.learnt, self.order),
            (false, Some(at)) => (1, 0, u64::MAX - at, self.order),
            (true, _) => (2, self.failures, self.failed, self.order),
        }
    }

    /// Which claim goes first when the book is full, largest first: demoted ones (most failures,
    /// then the one that failed longest ago), then untried withdrawn ones (withdrawn longest
    /// ago), then untried current ones, the last learnt first: claims are tried first come,
    /// first served, and one that waits for its turn is not pushed out by later ones.
    fn eviction_rank(&self) -> (u8, u32, u64) {
        match (self.demoted(), self.withdrawn) {
            (true, _) => (2, self.failures, u64::MAX - self.failed),
            (false, Some(at)) => (1, 0, u64::MAX - at),
            (false, None) => (0, 0, self.learnt),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct PeerAddresses {
    last_dialled: Option<Endpoint>,
    /// The peer's address as seen on our listener; its port is meaningless.
    last_incoming: Option<(SocketAddr, u64)>,
    /// The peer's listening port and path as last learnt from any dialable source.
    listener: Option<(u16, String)>,
    statics: Vec<Endpoint>,
    /// Addresses claimed by mDNS records, at most the book's `max_discovered`.
    claims: HashMap<SocketAddr, Claim>,
}

impl PeerAddresses {
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.last_dialled.is_none()
            && self.last_incoming.is_none()
            && self.statics.is_empty()
            && self.claims.is_empty()
    }

    /// The record of `instance` is gone: the addresses it announced are withdrawn (they stay,
    /// tried after the current ones). Returns whether it had any that were current.
    fn withdraw(&mut self, instance: &str, event: u64) -> bool {
        let mut any = false;
        for claim in self.claims.values_mut() {
            if claim.instance == instance && claim.withdrawn.is_none() {
                any = true;
                claim.withdrawn = Some(event);
            }
        }
        any
    }

    /// Drops claims until at most `max` remain, the worst first (see [`Claim::eviction_rank`]):
    /// a demoted claim goes before any untried one, so fake claims that were tried cannot push
    /// out one that was not tried yet.
    fn evict(&mut self, max: usize) {
        while self.claims.len() > max {
            let Some(worst) = self
                .claims
                .iter()
                .max_by_key(|(address, claim)| (claim.eviction_rank(), **address))
                .map(|(address, _)| *address)
            else {
                return;
            };
            self.claims.remove(&worst);
        }
    }

    /// The SNI host name known for `ip` from a claim, if any.
    fn host_of(&self, ip: IpAddr) -> Option<String> {
        self.claims
            .iter()
            .filter(|(address, _)| address.ip() == ip)
            .max_by_key(|(_, claim)| claim.learnt)
            .map(|(_, claim)| claim.host.clone())
    }

    fn candidates(&self) -> Vec<DialCandidate> {
        let mut out: Vec<DialCandidate> = Vec::new();
        let mut push = |address: SocketAddr, path: &str, source: AddressSource, host| {
            if !out.iter().any(|c| c.address == address) {
                out.push(DialCandidate {
                    address,
                    path: path.to_owned(),
                    source,
                    host,
                });
            }
        };

        let dialled = self.last_dialled.as_ref().map(|e| {
            (
                e.event,
                e.address,
                e.path.as_str(),
                AddressSource::LastDialled,
            )
        });
        let incoming = match (&self.last_incoming, &self.listener) {
            (Some((seen_from, event)), Some((port, path))) => {
                let mut address = *seen_from;
                address.set_port(*port);
                Some((*event, address, path.as_str(), AddressSource::LastIncoming))
            }
            _ => None,
        };
        let mut successful: Vec<_> = dialled.into_iter().chain(incoming).collect();
        successful.sort_by_key(|s| Reverse(s.0));
        for (_, address, path, source) in successful {
            push(address, path, source, self.host_of(address.ip()));
        }

        for endpoint in &self.statics {
            let host = self.host_of(endpoint.address.ip());
            push(
                endpoint.address,
                &endpoint.path,
                AddressSource::Static,
                host,
            );
        }

        let mut claims: Vec<_> = self.claims.iter().collect();
        claims.sort_by_key(|(address, claim)| (claim.dial_rank(), **address));
        for (address, claim) in from_both_ends(claims) {
            let instance = claim.instance.clone();
            let source = match claim.withdrawn {
                None => AddressSource::Discovered { instance },
                Some(_) => AddressSource::Withdrawn { instance },
            };
            push(*address, &claim.path, source, Some(claim.host.clone()));
        }
        out
    }
}

/// The claims in dial order, with the untried current ones taken from both ends of the order
/// they were learnt in, record by record: the earliest, the latest, the second earliest, the
/// second latest, … A real device's claim is then among the first tried whether the fake ones
/// were announced before it (they wait from the other end) or in reaction to it (they queue
/// behind it). The rest keeps its order.
fn from_both_ends<'a>(
    sorted: Vec<(&'a SocketAddr, &'a Claim)>,
) -> Vec<(&'a SocketAddr, &'a Claim)> {
    let untried = sorted
        .iter()
        .take_while(|(_, claim)| !claim.demoted() && claim.withdrawn.is_none())
        .count();
    let mut rest = sorted;
    let tail = rest.split_off(untried);
    // Records: runs of claims learnt by the same event.
    let mut records: std::collections::VecDeque<Vec<(&SocketAddr, &Claim)>> =
        std::collections::VecDeque::new();
    for entry in rest {
        match records.back_mut() {
            Some(record) if record[0].1.learnt == entry.1.learnt => record.push(entry),
            _ => records.push_back(vec![entry]),
        }
    }
    let mut out = Vec::with_capacity(untried + tail.len());
    let mut front = true;
    while let Some(record) = if front {
        records.pop_front()
    } else {
        records.pop_back()
    } {
        out.extend(record);
        front = !front;
    }
    out.extend(tail);
    out
}

/// What [`AddressBook::record_sighting`] recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Recorded {
    /// Dialable addresses of the sighting that the book holds now.
    pub(crate) addresses: usize,
    /// Of those, addresses the book did not hold before: never tried, so worth a dial now.
    pub(crate) new: usize,
}

/// Every address known to reach each peer, by SKI. See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct AddressBook {
    /// Boxed: a supervisor's book holds its one peer, and a map makes room for four entries at
    /// its first insert (four 208-byte records unboxed, most of a kilobyte per peer).
    peers: HashMap<Ski, Box<PeerAddresses>>,
    /// Counts recorded events; stands in for time when ordering by recency.
    events: u64,
    /// Addresses claimed by mDNS kept per peer, current and withdrawn together.
    max_discovered: usize,
}

impl Default for AddressBook {
    fn default() -> Self {
        Self::with_max_discovered(DEFAULT_MAX_DISCOVERED)
    }
}

impl AddressBook {
    /// An empty book keeping [`DEFAULT_MAX_DISCOVERED`] discovered addresses per peer.
    #[cfg(test)]
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// An empty book keeping at most `max` (at least 1) addresses claimed by mDNS records per
    /// peer, current and withdrawn together: anyone on the LAN can announce a paired SKI, so
    /// what discovery adds to a peer's dial is bounded. Beyond it the worst claim goes: a
    /// demoted one (its dials failed) before any that was never tried, then the stalest. The
    /// last successful and the configured addresses are never evicted.
    pub(crate) fn with_max_discovered(max: usize) -> Self {
        AddressBook {
            peers: HashMap::new(),
            events: 0,
            max_discovered: max.max(1),
        }
    }

    fn next_event(&mut self) -> u64 {
        self.events += 1;
        self.events
    }

    /// Records a connection we dialled to `address` (requesting `path`) that succeeded. Also the
    /// way to restore `PairedPeer::last_address` from the trust store at start-up. A claim of
    /// that address is no longer demoted: it proved to be the peer.
    pub(crate) fn record_dialled(
        &mut self,
        ski: Ski,
        address: SocketAddr,
        path: &str,
    ) -> Result<(), AddressError> {
        let address = canonical(address);
        check_dialable(address)?;
        check_path(path)?;
        let event = self.next_event();
        let peer = self.peers.entry(ski).or_default();
        peer.listener = Some((address.port(), path.to_owned()));
        peer.last_dialled = Some(Endpoint {
            address,
            path: path.to_owned(),
            event,
        });
        if let Some(claim) = peer.claims.get_mut(&address) {
            claim.failures = 0;
        }
        Ok(())
    }

    /// Records a connection the peer made to us from `remote` that succeeded. The source port is
    /// ephemeral: the IP is dialled at the peer's last known listening port, once one is known.
    pub(crate) fn record_incoming(
        &mut self,
        ski: Ski,
        remote: SocketAddr,
    ) -> Result<(), AddressError> {
        let remote = canonical(remote);
        // The port is replaced when dialling; check the address with a placeholder port.
        let mut probe = remote;
        probe.set_port(1);
        check_dialable(probe)?;
        let event = self.next_event();
        self.peers.entry(ski).or_default().last_incoming = Some((remote, event));
        Ok(())
    }

    /// A dial of `address` for `ski` failed (refused, no answer, timed out, another SKI): a
    /// claim of that address is demoted, tried after every claim not tried yet. The last
    /// successful and configured addresses keep their place.
    pub(crate) fn record_failure(&mut self, ski: &Ski, address: SocketAddr) {
        let address = canonical(address);
        let event = self.next_event();
        if let Some(claim) = self
            .peers
            .get_mut(ski)
            .and_then(|peer| peer.claims.get_mut(&address))
        {
            claim.failures = claim.failures.saturating_add(1);
            claim.failed = event;
        }
    }

    /// Adds a configured address; configured addresses are kept in the order added and are never
    /// withdrawn by discovery events.
    pub(crate) fn add_static(
        &mut self,
        ski: Ski,
        address: SocketAddr,
        path: &str,
    ) -> Result<(), AddressError> {
        let address = canonical(address);
        check_dialable(address)?;
        check_path(path)?;
        let event = self.next_event();
        let peer = self.peers.entry(ski).or_default();
        if peer.listener.is_none() {
            peer.listener = Some((address.port(), path.to_owned()));
        }
        if !peer.statics.iter().any(|e| e.address == address) {
            peer.statics.push(Endpoint {
                address,
                path: path.to_owned(),
                event,
            });
        }
        Ok(())
    }

    /// Removes the configured addresses of `ski` (before re-adding a changed configuration).
    #[cfg(test)]
    pub(crate) fn clear_static(&mut self, ski: &Ski) {
        if let Some(peer) = self.peers.get_mut(ski) {
            peer.statics.clear();
        }
        self.drop_if_empty(ski);
    }

    /// Records an mDNS sighting (§7): service `instance` claims `ski` at `addresses` with the
    /// TXT `path`; `host` is the SNI name to use there. The record replaces the previous one of
    /// that instance: addresses it no longer announces are withdrawn (also if the instance
    /// announced another SKI before: a replaced device keeps its instance name). Addresses that
    /// cannot be dialled are left out, and at most the book's `max_discovered` of one sighting
    /// are taken. An address the book already holds keeps its place and what dialling it taught
    /// (a claim that failed stays demoted however often it is announced); a new one is untried
    /// and tried among the first (see `from_both_ends`), before every demoted one. A book
    /// whose claims all wait for their first dial keeps them and has no room for a new one. An
    /// invalid path is an error and records nothing.
    pub(crate) fn record_sighting(
        &mut self,
        ski: Ski,
        instance: &str,
        host: &str,
        addresses: impl IntoIterator<Item = SocketAddr>,
        path: &str,
    ) -> Result<Recorded, AddressError> {
        check_path(path)?;
        let mut usable: Vec<SocketAddr> = Vec::new();
        for address in addresses.into_iter().map(canonical) {
            match check_dialable(address) {
                Ok(()) if !usable.contains(&address) => usable.push(address),
                Ok(()) => {}
                Err(error) => tracing::debug!(
                    %ski,
                    instance = %crate::text::Escaped(instance),
                    %error,
                    "address not recorded"
                ),
            }
        }
        usable.truncate(self.max_discovered);
        let event = self.next_event();
        // The instance may have announced another SKI before.
        for (other, peer) in &mut self.peers {
            if *other != ski {
                peer.withdraw(instance, event);
            }
        }
        let max = self.max_discovered;
        let peer = self.peers.entry(ski).or_default();
        // What the instance announced before and no longer does is withdrawn.
        for (address, claim) in &mut peer.claims {
            if claim.instance == instance && !usable.contains(address) {
                claim.withdrawn.get_or_insert(event);
            }
        }
        let Some(first) = usable.first() else {
            // Nothing dialable announced any more: like a loss of the instance.
            return Ok(Recorded::default());
        };
        peer.listener = Some((first.port(), path.to_owned()));
        let mut added = Vec::new();
        for (index, address) in usable.iter().enumerate() {
            let order = (family_rank(address), index);
            match peer.claims.get_mut(address) {
                Some(claim) => {
                    claim.instance = instance.to_owned();
                    claim.path = path.to_owned();
                    claim.host = host.to_owned();
                    claim.order = order;
                    claim.withdrawn = None;
                }
                None => {
                    added.push(*address);
                    peer.claims.insert(
                        *address,
                        Claim {
                            instance: instance.to_owned(),
                            path: path.to_owned(),
                            host: host.to_owned(),
                            learnt: event,
                            order,
                            withdrawn: None,
                            failures: 0,
                            failed: 0,
                        },
                    );
                }
            }
        }
        peer.evict(max);
        // A book full of claims that wait for their first dial has no room for more.
        Ok(Recorded {
            addresses: usable
                .iter()
                .filter(|a| peer.claims.contains_key(a))
                .count(),
            new: added.iter().filter(|a| peer.claims.contains_key(a)).count(),
        })
    }

    /// A loss event for mDNS service `instance` (record expired or goodbye): its addresses move
    /// behind the current ones. Returns the SKI whose sighting it was, if any.
    #[cfg(test)]
    pub(crate) fn withdraw_instance(&mut self, instance: &str) -> Option<Ski> {
        let event = self.next_event();
        self.peers
            .iter_mut()
            .find_map(|(ski, peer)| peer.withdraw(instance, event).then_some(*ski))
    }

    /// Discovery lost every record of `ski`: all its claimed addresses are withdrawn (kept as a
    /// last resort, docs/ship.md §8).
    pub(crate) fn withdraw_all(&mut self, ski: &Ski) {
        let event = self.next_event();
        if let Some(peer) = self.peers.get_mut(ski) {
            for claim in peer.claims.values_mut() {
                claim.withdrawn.get_or_insert(event);
            }
        }
    }

    /// Forgets everything about `ski` (the peer was unpaired).
    #[cfg(test)]
    pub(crate) fn forget(&mut self, ski: &Ski) {
        self.peers.remove(ski);
    }

    #[cfg(test)]
    fn drop_if_empty(&mut self, ski: &Ski) {
        if self.peers.get(ski).is_some_and(|peer| peer.is_empty()) {
            self.peers.remove(ski);
        }
    }

    /// The addresses to dial `ski` at, in the order to try them, each address once.
    pub(crate) fn dial_candidates(&self, ski: &Ski) -> Vec<DialCandidate> {
        self.peers
            .get(ski)
            .map(|peer| peer.candidates())
            .unwrap_or_default()
    }

    /// How many addresses claimed by mDNS the book holds for `ski` (at most `max_discovered`).
    #[cfg(test)]
    pub(crate) fn claims(&self, ski: &Ski) -> usize {
        self.peers.get(ski).map_or(0, |peer| peer.claims.len())
    }

    /// Whether a claim of `address` for `ski` is demoted (a dial of it failed).
    #[cfg(test)]
    pub(crate) fn is_demoted(&self, ski: &Ski, address: SocketAddr) -> bool {
        self.peers
            .get(ski)
            .and_then(|peer| peer.claims.get(&address))
            .is_some_and(Claim::demoted)
    }

    /// The address of the most recent successful connection, as a dial candidate: what the hub
    /// stores as `PairedPeer::last_address`.
    pub(crate) fn last_successful(&self, ski: &Ski) -> Option<DialCandidate> {
        self.dial_candidates(ski).into_iter().find(|c| {
            matches!(
                c.source,
                AddressSource::LastDialled | AddressSource::LastIncoming
            )
        })
    }

    /// The IPs `ski` proved to be at (its last connection that completed a handshake, dialled
    /// or incoming) and its configured ones: where it may be expected to connect from. Sightings
    /// are left out, since anyone can announce any address over mDNS.
    pub(crate) fn proven_ips(&self, ski: &Ski) -> Vec<IpAddr> {
        let Some(peer) = self.peers.get(ski) else {
            return Vec::new();
        };
        let proven = peer.last_dialled.iter().map(|e| e.address.ip());
        let incoming = peer.last_incoming.iter().map(|(address, _)| address.ip());
        let configured = peer.statics.iter().map(|e| e.address.ip());
        proven.chain(incoming).chain(configured).collect()
    }

    /// Whether the book knows any address of `ski`.
    #[cfg(test)]
    pub(crate) fn contains(&self, ski: &Ski) -> bool {
        self.peers.contains_key(ski)
    }

    /// The SKIs the book knows addresses of, in no particular order.
    #[cfg(test)]
    pub(crate) fn skis(&self) -> impl Iterator<Item = &Ski> {
        self.peers.keys()
    }
}

#[cfg(test)]
mod tests;
