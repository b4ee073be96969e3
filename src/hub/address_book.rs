//! Every address known to reach each peer, and the order to dial them in.
//!
//! The most common field complaint about SHIP stacks (`ship-protocol.md` §8) is a paired device
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
//! [`AddressBook::forget`] when a peer is unpaired.

use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use crate::Ski;

/// The WebSocket path SHIP nodes announce in their TXT record unless they say otherwise (§7.3.2).
pub const DEFAULT_SHIP_PATH: &str = "/ship/";

/// How many withdrawn discovery addresses a peer keeps as a last resort.
const MAX_WITHDRAWN: usize = 8;

/// Where a dial candidate comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressSource {
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
pub struct DialCandidate {
    /// The socket address (IPv6 link-local ones carry their scope id).
    pub address: SocketAddr,
    /// The WebSocket path (`/ship/` unless the peer's TXT record said otherwise).
    pub path: String,
    /// Where the address comes from.
    pub source: AddressSource,
}

/// Why an address or path was not recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressError {
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
pub fn check_dialable(address: SocketAddr) -> Result<(), AddressError> {
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
    /// Newest first, at most [`MAX_WITHDRAWN`].
    withdrawn: VecDeque<(String, Endpoint)>,
}

impl PeerAddresses {
    fn is_empty(&self) -> bool {
        self.last_dialled.is_none()
            && self.last_incoming.is_none()
            && self.statics.is_empty()
            && self.sightings.is_empty()
            && self.withdrawn.is_empty()
    }

    fn withdraw(&mut self, instance: &str) -> bool {
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
        self.withdrawn.truncate(MAX_WITHDRAWN);
        true
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
#[derive(Debug, Default, Clone)]
pub struct AddressBook {
    peers: HashMap<Ski, PeerAddresses>,
    /// Counts recorded events; stands in for time when ordering by recency.
    events: u64,
}

impl AddressBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    fn next_event(&mut self) -> u64 {
        self.events += 1;
        self.events
    }

    /// Records a connection we dialled to `address` (requesting `path`) that succeeded. Also the
    /// way to restore `PairedPeer::last_address` from the trust store at start-up.
    pub fn record_dialled(
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
    pub fn record_incoming(&mut self, ski: Ski, remote: SocketAddr) -> Result<(), AddressError> {
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
    pub fn add_static(
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
    pub fn clear_static(&mut self, ski: &Ski) {
        if let Some(peer) = self.peers.get_mut(ski) {
            peer.statics.clear();
        }
        self.drop_if_empty(ski);
    }

    /// Records an mDNS sighting (§7): service `instance` announces `ski` at `addresses` with the
    /// TXT `path`. Replaces the previous sighting of that instance (also if it announced another
    /// SKI before: a replaced device keeps its instance name). Addresses that cannot be dialled
    /// are left out; returns how many were recorded. An invalid path is an error and records
    /// nothing.
    pub fn record_sighting(
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
                Err(error) => tracing::debug!(%ski, instance, %error, "address not recorded"),
            }
        }
        // The instance may have announced another SKI before.
        let others: Vec<Ski> = self
            .peers
            .iter()
            .filter(|(other, peer)| **other != ski && peer.sightings.contains_key(instance))
            .map(|(other, _)| *other)
            .collect();
        for other in others {
            if let Some(peer) = self.peers.get_mut(&other) {
                peer.withdraw(instance);
            }
        }
        let count = usable.len();
        let Some(first) = usable.first() else {
            // Nothing dialable announced any more: like a loss of the instance.
            if let Some(peer) = self.peers.get_mut(&ski) {
                peer.withdraw(instance);
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
        Ok(count)
    }

    /// A loss event for mDNS service `instance` (record expired or goodbye): its addresses move
    /// to the end of the dial order. Returns the SKI whose sighting it was, if any.
    pub fn withdraw_instance(&mut self, instance: &str) -> Option<Ski> {
        self.peers
            .iter_mut()
            .find_map(|(ski, peer)| peer.withdraw(instance).then_some(*ski))
    }

    /// Forgets everything about `ski` (the peer was unpaired).
    pub fn forget(&mut self, ski: &Ski) {
        self.peers.remove(ski);
    }

    fn drop_if_empty(&mut self, ski: &Ski) {
        if self.peers.get(ski).is_some_and(PeerAddresses::is_empty) {
            self.peers.remove(ski);
        }
    }

    /// The addresses to dial `ski` at, in the order to try them, each address once.
    pub fn dial_candidates(&self, ski: &Ski) -> Vec<DialCandidate> {
        self.peers
            .get(ski)
            .map(PeerAddresses::candidates)
            .unwrap_or_default()
    }

    /// The address of the most recent successful connection, as a dial candidate: what the hub
    /// stores as `PairedPeer::last_address`.
    pub fn last_successful(&self, ski: &Ski) -> Option<DialCandidate> {
        self.dial_candidates(ski).into_iter().find(|c| {
            matches!(
                c.source,
                AddressSource::LastDialled | AddressSource::LastIncoming
            )
        })
    }

    /// Whether the book knows any address of `ski`.
    pub fn contains(&self, ski: &Ski) -> bool {
        self.peers.contains_key(ski)
    }

    /// The SKIs the book knows addresses of, in no particular order.
    pub fn skis(&self) -> impl Iterator<Item = &Ski> {
        self.peers.keys()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv6Addr, SocketAddrV6};

    fn ski(n: u8) -> Ski {
        Ski::from_bytes([n; 20])
    }

    fn v4(last: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([192, 168, 1, last], port))
    }

    fn link_local(scope: u32, port: u16) -> SocketAddr {
        let ip = Ipv6Addr::new(0xfe80, 0, 0, 0, 0x1, 0x2, 0x3, 0x4);
        SocketAddr::V6(SocketAddrV6::new(ip, port, 0, scope))
    }

    fn global_v6(port: u16) -> SocketAddr {
        SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1), port))
    }

    fn addresses(book: &AddressBook, ski: &Ski) -> Vec<SocketAddr> {
        book.dial_candidates(ski)
            .iter()
            .map(|c| c.address)
            .collect()
    }

    fn discovered(instance: &str) -> AddressSource {
        AddressSource::Discovered {
            instance: instance.into(),
        }
    }

    fn withdrawn(instance: &str) -> AddressSource {
        AddressSource::Withdrawn {
            instance: instance.into(),
        }
    }

    #[test]
    fn an_unknown_peer_has_no_candidates() {
        let book = AddressBook::new();
        assert!(book.dial_candidates(&ski(1)).is_empty());
        assert_eq!(book.last_successful(&ski(1)), None);
        assert!(!book.contains(&ski(1)));
    }

    #[test]
    fn a_sighting_gives_its_addresses_with_the_txt_path() {
        let mut book = AddressBook::new();
        let n = book
            .record_sighting(ski(1), "wallbox", [v4(5, 4712)], "/ship/v2/")
            .unwrap();
        assert_eq!(n, 1);
        assert_eq!(
            book.dial_candidates(&ski(1)),
            vec![DialCandidate {
                address: v4(5, 4712),
                path: "/ship/v2/".into(),
                source: discovered("wallbox"),
            }]
        );
    }

    #[test]
    fn order_is_successful_then_static_then_discovered_then_withdrawn() {
        let mut book = AddressBook::new();
        book.record_sighting(ski(1), "old", [v4(30, 4712)], "/ship/")
            .unwrap();
        book.withdraw_instance("old");
        book.record_sighting(ski(1), "mdns", [v4(20, 4712)], "/ship/")
            .unwrap();
        book.add_static(ski(1), v4(10, 4712), "/ship/").unwrap();
        book.record_dialled(ski(1), v4(1, 4712), "/ship/").unwrap();
        let sources: Vec<_> = book
            .dial_candidates(&ski(1))
            .into_iter()
            .map(|c| (c.address, c.source))
            .collect();
        assert_eq!(
            sources,
            vec![
                (v4(1, 4712), AddressSource::LastDialled),
                (v4(10, 4712), AddressSource::Static),
                (v4(20, 4712), discovered("mdns")),
                (v4(30, 4712), withdrawn("old")),
            ]
        );
    }

    #[test]
    fn each_address_appears_once_under_its_best_source() {
        let mut book = AddressBook::new();
        book.record_sighting(ski(1), "mdns", [v4(1, 4712), v4(1, 4712)], "/ship/")
            .unwrap();
        book.add_static(ski(1), v4(1, 4712), "/ship/").unwrap();
        book.add_static(ski(1), v4(1, 4712), "/ship/").unwrap();
        book.record_dialled(ski(1), v4(1, 4712), "/ship/").unwrap();
        let candidates = book.dial_candidates(&ski(1));
        assert_eq!(candidates.len(), 1);
        assert_eq!(candidates[0].source, AddressSource::LastDialled);
    }

    #[test]
    fn an_expired_record_never_leaves_a_connected_peer_without_an_address() {
        let mut book = AddressBook::new();
        book.record_sighting(ski(1), "wallbox", [v4(5, 4712)], "/ship/")
            .unwrap();
        book.record_dialled(ski(1), v4(5, 4712), "/ship/").unwrap();
        assert_eq!(book.withdraw_instance("wallbox"), Some(ski(1)));
        let candidates = book.dial_candidates(&ski(1));
        assert_eq!(candidates.len(), 1);
        assert_eq!(candidates[0].address, v4(5, 4712));
        assert_eq!(candidates[0].source, AddressSource::LastDialled);
    }

    #[test]
    fn a_withdrawn_sighting_stays_as_a_last_resort() {
        let mut book = AddressBook::new();
        book.record_sighting(ski(1), "wallbox", [v4(5, 4712), global_v6(4712)], "/x/")
            .unwrap();
        book.withdraw_instance("wallbox");
        let candidates = book.dial_candidates(&ski(1));
        assert_eq!(
            candidates,
            vec![
                DialCandidate {
                    address: v4(5, 4712),
                    path: "/x/".into(),
                    source: withdrawn("wallbox"),
                },
                DialCandidate {
                    address: global_v6(4712),
                    path: "/x/".into(),
                    source: withdrawn("wallbox"),
                },
            ]
        );
        // Seen again: back to a current sighting, not listed twice.
        book.record_sighting(ski(1), "wallbox", [v4(5, 4712)], "/x/")
            .unwrap();
        let sources: Vec<_> = book
            .dial_candidates(&ski(1))
            .into_iter()
            .map(|c| c.source)
            .collect();
        assert_eq!(sources, vec![discovered("wallbox")]);
    }

    #[test]
    fn withdrawn_addresses_are_bounded_newest_first() {
        let mut book = AddressBook::new();
        for i in 0..20u8 {
            let instance = format!("instance-{i}");
            book.record_sighting(ski(1), &instance, [v4(i + 1, 4712)], "/ship/")
                .unwrap();
            book.withdraw_instance(&instance);
        }
        let got = addresses(&book, &ski(1));
        let expected: Vec<_> = (0..MAX_WITHDRAWN as u8).map(|i| v4(20 - i, 4712)).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn static_addresses_survive_every_discovery_event() {
        let mut book = AddressBook::new();
        book.add_static(ski(1), v4(9, 4711), "/ship/").unwrap();
        book.record_sighting(ski(1), "wallbox", [v4(5, 4712)], "/ship/")
            .unwrap();
        book.withdraw_instance("wallbox");
        book.record_sighting(ski(1), "wallbox", std::iter::empty(), "/ship/")
            .unwrap();
        assert_eq!(addresses(&book, &ski(1))[0], v4(9, 4711));
        book.clear_static(&ski(1));
        assert_eq!(addresses(&book, &ski(1)), vec![v4(5, 4712)]);
    }

    #[test]
    fn an_incoming_connection_from_a_new_ip_is_dialled_at_the_known_port() {
        let mut book = AddressBook::new();
        book.record_sighting(ski(1), "wallbox", [v4(5, 4712)], "/ship/")
            .unwrap();
        book.record_dialled(ski(1), v4(5, 4712), "/ship/").unwrap();
        book.withdraw_instance("wallbox");
        // The peer got a new address and connected to us from an ephemeral port.
        book.record_incoming(ski(1), v4(77, 51234)).unwrap();
        let candidates = book.dial_candidates(&ski(1));
        assert_eq!(candidates[0].address, v4(77, 4712));
        assert_eq!(candidates[0].source, AddressSource::LastIncoming);
        assert_eq!(candidates[1].address, v4(5, 4712));
        assert_eq!(book.last_successful(&ski(1)), Some(candidates[0].clone()));
        // A later successful dial is the most recent success again.
        book.record_dialled(ski(1), v4(5, 4712), "/ship/").unwrap();
        assert_eq!(addresses(&book, &ski(1)), vec![v4(5, 4712), v4(77, 4712)]);
    }

    #[test]
    fn an_incoming_connection_without_a_known_port_gives_no_candidate_yet() {
        let mut book = AddressBook::new();
        book.record_incoming(ski(1), v4(77, 51234)).unwrap();
        assert!(book.contains(&ski(1)));
        assert!(book.dial_candidates(&ski(1)).is_empty());
        book.record_sighting(ski(1), "wallbox", [v4(5, 4712)], "/ship/")
            .unwrap();
        assert_eq!(addresses(&book, &ski(1)), vec![v4(77, 4712), v4(5, 4712)]);
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        let mut book = AddressBook::new();
        book.record_sighting(ski(1), "wallbox", [v4(5, 4712)], "/ship/")
            .unwrap();
        let mapped: SocketAddr = "[::ffff:192.168.1.5]:50000".parse().unwrap();
        book.record_incoming(ski(1), mapped).unwrap();
        assert_eq!(addresses(&book, &ski(1)), vec![v4(5, 4712)]);
    }

    #[test]
    fn within_a_sighting_ipv4_then_global_ipv6_then_link_local() {
        let mut book = AddressBook::new();
        book.record_sighting(
            ski(1),
            "wallbox",
            [link_local(3, 4712), global_v6(4712), v4(5, 4712)],
            "/ship/",
        )
        .unwrap();
        assert_eq!(
            addresses(&book, &ski(1)),
            vec![v4(5, 4712), global_v6(4712), link_local(3, 4712)]
        );
    }

    #[test]
    fn link_local_addresses_keep_their_scope_and_differ_by_it() {
        let mut book = AddressBook::new();
        book.record_sighting(
            ski(1),
            "wallbox",
            [link_local(2, 4712), link_local(3, 4712)],
            "/ship/",
        )
        .unwrap();
        let got = addresses(&book, &ski(1));
        assert_eq!(got, vec![link_local(2, 4712), link_local(3, 4712)]);
        match got[1] {
            SocketAddr::V6(v6) => assert_eq!(v6.scope_id(), 3),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn newer_sightings_come_first() {
        let mut book = AddressBook::new();
        book.record_sighting(ski(1), "a", [v4(1, 4712)], "/ship/")
            .unwrap();
        book.record_sighting(ski(1), "b", [v4(2, 4712)], "/ship/")
            .unwrap();
        assert_eq!(addresses(&book, &ski(1)), vec![v4(2, 4712), v4(1, 4712)]);
        book.record_sighting(ski(1), "a", [v4(1, 4712)], "/ship/")
            .unwrap();
        assert_eq!(addresses(&book, &ski(1)), vec![v4(1, 4712), v4(2, 4712)]);
    }

    #[test]
    fn an_instance_that_now_announces_another_ski_moves_to_it() {
        let mut book = AddressBook::new();
        book.record_sighting(ski(1), "wallbox", [v4(5, 4712)], "/ship/")
            .unwrap();
        book.record_sighting(ski(2), "wallbox", [v4(6, 4712)], "/ship/")
            .unwrap();
        assert_eq!(
            book.dial_candidates(&ski(1))[0].source,
            withdrawn("wallbox")
        );
        assert_eq!(book.dial_candidates(&ski(2))[0].address, v4(6, 4712));
        assert_eq!(book.withdraw_instance("wallbox"), Some(ski(2)));
        assert_eq!(book.withdraw_instance("wallbox"), None);
    }

    #[test]
    fn undialable_addresses_are_typed_errors() {
        let mut book = AddressBook::new();
        let cases = [
            (SocketAddr::from(([0, 0, 0, 0], 4712)), "Unspecified"),
            (v4(5, 0), "PortZero"),
            (SocketAddr::from(([224, 0, 0, 251], 5353)), "NotUnicast"),
            (SocketAddr::from(([255, 255, 255, 255], 4712)), "NotUnicast"),
            (link_local(0, 4712), "LinkLocalWithoutScope"),
        ];
        for (address, kind) in cases {
            let error = book.add_static(ski(1), address, "/ship/").unwrap_err();
            assert!(
                format!("{error:?}").starts_with(kind),
                "{address}: {error:?}"
            );
            assert!(book.record_dialled(ski(1), address, "/ship/").is_err());
        }
        assert_eq!(
            book.add_static(ski(1), v4(5, 4712), "ship"),
            Err(AddressError::BadPath {
                path: "ship".into()
            })
        );
        assert!(book.record_incoming(ski(1), link_local(0, 5000)).is_err());
        // In a sighting, undialable addresses are left out and the rest is kept.
        let n = book
            .record_sighting(ski(1), "w", [link_local(0, 4712), v4(5, 4712)], "/ship/")
            .unwrap();
        assert_eq!(n, 1);
        assert!(
            book.record_sighting(ski(1), "w", [v4(5, 4712)], "ship")
                .is_err()
        );
        assert_eq!(addresses(&book, &ski(1)), vec![v4(5, 4712)]);
    }

    #[test]
    fn forget_removes_everything_about_a_peer() {
        let mut book = AddressBook::new();
        book.add_static(ski(1), v4(9, 4711), "/ship/").unwrap();
        book.record_sighting(ski(1), "wallbox", [v4(5, 4712)], "/ship/")
            .unwrap();
        book.record_sighting(ski(2), "other", [v4(6, 4712)], "/ship/")
            .unwrap();
        book.forget(&ski(1));
        assert!(!book.contains(&ski(1)));
        assert!(book.dial_candidates(&ski(1)).is_empty());
        assert_eq!(book.skis().collect::<Vec<_>>(), vec![&ski(2)]);
        assert_eq!(book.withdraw_instance("wallbox"), None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Dialled(u8, u8),
        Incoming(u8, u8),
        Static(u8, u8),
        Sighting(u8, u8, Vec<u8>),
        Withdraw(u8),
    }

    fn op() -> impl proptest::strategy::Strategy<Value = Op> {
        use proptest::prelude::*;
        let peer = 0u8..3;
        let host = 0u8..6;
        prop_oneof![
            (peer.clone(), host.clone()).prop_map(|(p, h)| Op::Dialled(p, h)),
            (peer.clone(), host.clone()).prop_map(|(p, h)| Op::Incoming(p, h)),
            (peer.clone(), host.clone()).prop_map(|(p, h)| Op::Static(p, h)),
            (peer, 0u8..3, proptest::collection::vec(host, 0..4))
                .prop_map(|(p, i, hs)| Op::Sighting(p, i, hs)),
            (0u8..3).prop_map(Op::Withdraw),
        ]
    }

    /// Host 0 is undialable (link-local without scope); the others are fine.
    fn host(h: u8) -> SocketAddr {
        match h {
            0 => link_local(0, 4712),
            1 => link_local(1, 4712),
            h => v4(h, 4712),
        }
    }

    proptest::proptest! {
        #[test]
        fn a_peer_once_reachable_always_has_distinct_dialable_candidates(
            ops in proptest::collection::vec(op(), 0..60)
        ) {
            let mut book = AddressBook::new();
            let mut reachable = [false; 3];
            for op in ops {
                match op {
                    Op::Dialled(p, h) => {
                        reachable[p as usize] |=
                            book.record_dialled(ski(p), host(h), "/ship/").is_ok();
                    }
                    Op::Incoming(p, h) => {
                        let _ = book.record_incoming(ski(p), host(h));
                    }
                    Op::Static(p, h) => {
                        reachable[p as usize] |=
                            book.add_static(ski(p), host(h), "/ship/").is_ok();
                    }
                    Op::Sighting(p, i, hs) => {
                        let n = book
                            .record_sighting(ski(p), &format!("i{i}"), hs.into_iter().map(host), "/s/")
                            .unwrap();
                        reachable[p as usize] |= n > 0;
                    }
                    Op::Withdraw(i) => {
                        book.withdraw_instance(&format!("i{i}"));
                    }
                }
                for p in 0..3u8 {
                    let candidates = book.dial_candidates(&ski(p));
                    proptest::prop_assert!(
                        !reachable[p as usize] || !candidates.is_empty(),
                        "peer {} lost every address", p
                    );
                    for (k, c) in candidates.iter().enumerate() {
                        proptest::prop_assert!(check_dialable(c.address).is_ok());
                        proptest::prop_assert!(
                            candidates[..k].iter().all(|o| o.address != c.address),
                            "{} listed twice", c.address
                        );
                    }
                }
            }
        }
    }
}
