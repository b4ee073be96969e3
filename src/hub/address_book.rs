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
//! * **discovery** — the addresses of an mDNS sighting (§7) with the TXT `path`; a loss event
//!   withdraws them, but they are kept at the end of the list (a few per peer) as a last resort,
//!   so a record that expires never leaves a paired peer with nothing to redial.
//!
//! [`AddressBook::dial_candidates`] gives them in the order to try: last successful first (most
//! recent first), then static (configuration order), then current sightings (newest first; IPv4,
//! then global IPv6, then link-local IPv6), then withdrawn sightings; every address once. IPv6
//! link-local addresses keep their scope id (zone index), without which they cannot be dialled.
//!
//! The book is a plain data structure: no clock (recency is the order of events), no I/O. It does
//! not know who is paired; the hub asks it only about peers it means to dial and calls
//! [`AddressBook::forget`] when a peer is unpaired. Each peer's entry is bounded, the number of
//! peers is not: on a LAN where anyone can announce SKIs, the hub should also forget an unpaired
//! SKI once [`AddressBook::withdraw_instance`] reports its sighting gone.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use crate::Ski;

/// The WebSocket path SHIP nodes announce in their TXT record unless they say otherwise (§7.3.2).
pub(crate) const DEFAULT_SHIP_PATH: &str = "/ship/";

/// How many discovered addresses a peer keeps by default, current and withdrawn each
/// ([`AddressBook::with_max_discovered`]).
pub(crate) const DEFAULT_MAX_DISCOVERED: usize = 8;

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
}

/// Why an address or path was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum AddressError {
    /// 0.0.0.0 or :: cannot be dialled.
    #[error("{address} is unspecified and cannot be dialled")]
    Unspecified {
        /// The address given.
        address: SocketAddr,
    },
    /// Port 0 cannot be dialled.
    #[error("{address} has port 0 and cannot be dialled")]
    PortZero {
        /// The address given.
        address: SocketAddr,
    },
    /// A multicast or broadcast address is not a peer.
    #[error("{address} is a multicast or broadcast address, not a peer")]
    NotUnicast {
        /// The address given.
        address: SocketAddr,
    },
    /// An IPv6 link-local address needs a scope id (zone index, e.g. `%eth0` / `%2`).
    #[error("{address} is IPv6 link-local without a scope id (write it as [fe80::…%2]:port)")]
    LinkLocalWithoutScope {
        /// The address given.
        address: SocketAddr,
    },
    /// A WebSocket path must start with `/`.
    #[error("WebSocket path {path:?} does not start with '/'")]
    BadPath {
        /// The path given.
        path: String,
    },
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

#[derive(Debug, Clone, PartialEq, Eq)]
struct Sighting {
    addresses: Vec<SocketAddr>,
    path: String,
    event: u64,
}

#[derive(Debug, Default, Clone)]
struct PeerAddresses {
    last_dialled: Option<Endpoint>,
    /// The peer's address as seen on our listener; its port is meaningless.
    last_incoming: Option<(SocketAddr, u64)>,
    /// The peer's listening port and path as last learnt from any dialable source.
    listener: Option<(u16, String)>,
    statics: Vec<Endpoint>,
    sightings: BTreeMap<String, Sighting>,
    /// Newest first, at most the book's `max_discovered`.
    withdrawn: VecDeque<(String, Endpoint)>,
}

impl PeerAddresses {
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.last_dialled.is_none()
            && self.last_incoming.is_none()
            && self.statics.is_empty()
            && self.sightings.is_empty()
            && self.withdrawn.is_empty()
    }

    fn withdraw(&mut self, instance: &str, max: usize) -> bool {
        let Some(sighting) = self.sightings.remove(instance) else {
            return false;
        };
        for address in sighting.addresses.into_iter().rev() {
            self.withdrawn
                .retain(|(_, endpoint)| endpoint.address != address);
            self.withdrawn.push_front((
                instance.to_owned(),
                Endpoint {
                    address,
                    path: sighting.path.clone(),
                    event: sighting.event,
                },
            ));
        }
        self.withdrawn.truncate(max);
        true
    }

    /// Drops addresses of the stalest sightings until at most `max` current ones remain (the
    /// freshest sighting is trimmed last). Dropped addresses are not kept as withdrawn: they
    /// were pushed out by fresher claims, not taken back.
    fn evict_discovered(&mut self, max: usize) {
        let mut total: usize = self.sightings.values().map(|s| s.addresses.len()).sum();
        while total > max {
            let Some(stalest) = self
                .sightings
                .iter()
                .min_by_key(|(_, sighting)| sighting.event)
                .map(|(name, _)| name.clone())
            else {
                return;
            };
            let Some(sighting) = self.sightings.get_mut(&stalest) else {
                return;
            };
            let keep = sighting.addresses.len().saturating_sub(total - max);
            total -= sighting.addresses.len() - keep;
            sighting.addresses.truncate(keep);
            if sighting.addresses.is_empty() {
                self.sightings.remove(&stalest);
            }
        }
    }

    fn candidates(&self) -> Vec<DialCandidate> {
        let mut out: Vec<DialCandidate> = Vec::new();
        let mut push = |address: SocketAddr, path: &str, source: AddressSource| {
            if !out.iter().any(|c| c.address == address) {
                out.push(DialCandidate {
                    address,
                    path: path.to_owned(),
                    source,
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
            push(address, path, source);
        }

        for endpoint in &self.statics {
            push(endpoint.address, &endpoint.path, AddressSource::Static);
        }

        let mut sightings: Vec<_> = self.sightings.iter().collect();
        sightings.sort_by_key(|(_, sighting)| Reverse(sighting.event));
        for (instance, sighting) in sightings {
            let mut addresses = sighting.addresses.clone();
            addresses.sort_by_key(family_rank);
            for address in addresses {
                let source = AddressSource::Discovered {
                    instance: instance.clone(),
                };
                push(address, &sighting.path, source);
            }
        }

        for (instance, endpoint) in &self.withdrawn {
            let source = AddressSource::Withdrawn {
                instance: instance.clone(),
            };
            push(endpoint.address, &endpoint.path, source);
        }
        out
    }
}

/// Every address known to reach each peer, by SKI. See the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct AddressBook {
    peers: HashMap<Ski, PeerAddresses>,
    /// Counts recorded events; stands in for time when ordering by recency.
    events: u64,
    /// Discovered addresses kept per peer, current and withdrawn each.
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

    /// An empty book keeping at most `max` (at least 1) discovered addresses per peer from
    /// current sightings, and as many withdrawn ones: anyone on the LAN can announce a paired
    /// SKI, so what discovery adds to a peer's dial is bounded. When a sighting brings more,
    /// the addresses of the stalest sightings go first. The last successful and the configured
    /// addresses are never evicted.
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
    /// way to restore `PairedPeer::last_address` from the trust store at start-up.
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

    /// Records an mDNS sighting (§7): service `instance` announces `ski` at `addresses` with the
    /// TXT `path`. Replaces the previous sighting of that instance (also if it announced another
    /// SKI before: a replaced device keeps its instance name). Addresses that cannot be dialled
    /// are left out, and at most the book's `max_discovered` are kept (the first ones given;
    /// older sightings of the peer make room first); returns how many were recorded. An invalid path is an error and records
    /// nothing.
    pub(crate) fn record_sighting(
        &mut self,
        ski: Ski,
        instance: &str,
        addresses: impl IntoIterator<Item = SocketAddr>,
        path: &str,
    ) -> Result<usize, AddressError> {
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
        // The instance may have announced another SKI before.
        let others: Vec<Ski> = self
            .peers
            .iter()
            .filter(|(other, peer)| **other != ski && peer.sightings.contains_key(instance))
            .map(|(other, _)| *other)
            .collect();
        let max = self.max_discovered;
        for other in others {
            if let Some(peer) = self.peers.get_mut(&other) {
                peer.withdraw(instance, max);
            }
        }
        usable.truncate(max);
        let count = usable.len();
        let Some(first) = usable.first() else {
            // Nothing dialable announced any more: like a loss of the instance.
            if let Some(peer) = self.peers.get_mut(&ski) {
                peer.withdraw(instance, max);
            }
            return Ok(0);
        };
        let event = self.next_event();
        let peer = self.peers.entry(ski).or_default();
        peer.listener = Some((first.port(), path.to_owned()));
        // A fresh sighting supersedes a withdrawn one of the same instance.
        peer.withdrawn.retain(|(name, _)| name != instance);
        let sighting = Sighting {
            addresses: usable,
            path: path.to_owned(),
            event,
        };
        peer.sightings.insert(instance.to_owned(), sighting);
        peer.evict_discovered(max);
        Ok(count)
    }

    /// A loss event for mDNS service `instance` (record expired or goodbye): its addresses move
    /// to the end of the dial order. Returns the SKI whose sighting it was, if any.
    pub(crate) fn withdraw_instance(&mut self, instance: &str) -> Option<Ski> {
        let max = self.max_discovered;
        self.peers
            .iter_mut()
            .find_map(|(ski, peer)| peer.withdraw(instance, max).then_some(*ski))
    }

    /// Forgets everything about `ski` (the peer was unpaired).
    #[cfg(test)]
    pub(crate) fn forget(&mut self, ski: &Ski) {
        self.peers.remove(ski);
    }

    #[cfg(test)]
    fn drop_if_empty(&mut self, ski: &Ski) {
        if self.peers.get(ski).is_some_and(PeerAddresses::is_empty) {
            self.peers.remove(ski);
        }
    }

    /// The addresses to dial `ski` at, in the order to try them, each address once.
    pub(crate) fn dial_candidates(&self, ski: &Ski) -> Vec<DialCandidate> {
        self.peers
            .get(ski)
            .map(PeerAddresses::candidates)
            .unwrap_or_default()
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
