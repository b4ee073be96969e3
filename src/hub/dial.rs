//! Dialling a peer: TCP, then TLS expecting the peer's SKI, then the WebSocket upgrade, racing
//! the known addresses with a short stagger (see [`dial`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use tokio::sync::mpsc;

use super::address_book::DialCandidate;
use super::clock::now;
use super::errors::DialError;
use super::handover::{Handover, Permits};
use super::net::BoxIo;
use super::shared::Shared;
use crate::Ski;
use crate::transport::{self, TransportError};

/// A dial that reached a WebSocket: ready to be taken over as a link.
pub(crate) struct Dialled {
    /// The connection, for the supervisor that dialled it.
    pub(crate) handover: Handover,
    /// The candidate that worked (its address and path are remembered for the next dial).
    pub(crate) candidate: DialCandidate,
}

/// More candidates for a running dial attempt (a fresh sighting), each with its TLS server name.
pub(crate) type MoreCandidates = mpsc::UnboundedReceiver<Vec<(DialCandidate, String)>>;

/// Dials `ski`: one attempt that races the candidate addresses, happy-eyeballs style. The first
/// candidate starts at once; each further one starts [`dial_stagger`] after the previous, or at
/// once when one in flight failed, with at most [`max_dials_in_flight`] in TCP + TLS (with the
/// expected SKI) + WebSocket together. The first that completes wins; the others are cancelled
/// (dropped). Candidates arriving on `more` while the attempt runs (a fresh sighting) are tried
/// next, before the rest. A fake address that accepts TCP and stays silent therefore costs a
/// stagger step, not a handshake timeout. The attempt fails when every candidate failed.
///
/// [`dial_stagger`]: super::config::HubTimers::dial_stagger
/// [`max_dials_in_flight`]: super::config::Limits::max_dials_in_flight
pub(crate) async fn dial(
    shared: Arc<Shared>,
    ski: Ski,
    candidates: Vec<DialCandidate>,
    hosts: HashMap<IpAddr, String>,
    mut more: MoreCandidates,
) -> Result<Dialled, DialError> {
    if candidates.is_empty() {
        return Err(DialError::NoAddress);
    }
    let limit = shared.config.limits.max_connections;
    let permit = shared
        .connections
        .clone()
        .try_acquire_owned()
        .map_err(|_| DialError::ConnectionLimit(limit))?;
    let stagger = shared.config.timers.dial_stagger;
    let max_in_flight = shared.config.limits.max_dials_in_flight.max(1);
    let mut queue = Candidates::default();
    queue.add_back(candidates.into_iter().map(|candidate| {
        let host = server_name(&hosts, &candidate);
        (candidate, host)
    }));
    let mut in_flight = FuturesUnordered::new();
    let mut next_start = tokio::time::Instant::now();
    let mut more_open = true;
    let mut last = DialError::NoAddress;
    loop {
        let now = tokio::time::Instant::now();
        if in_flight.len() < max_in_flight
            && now >= next_start
            && let Some((candidate, host)) = queue.next()
        {
            in_flight.push(attempt(shared.clone(), ski, candidate, host));
            next_start = now + stagger;
            continue;
        }
        if in_flight.is_empty() && queue.is_empty() {
            return Err(last);
        }
        let may_start = in_flight.len() < max_in_flight && !queue.is_empty();
        tokio::select! {
            Some((candidate, started, result)) = in_flight.next(), if !in_flight.is_empty() => {
                match result {
                    Ok(socket) => {
                        let handover = Handover {
                            socket,
                            permits: Permits {
                                _connection: permit,
                                stranger: None,
                            },
                            remote: candidate.address,
                            started,
                        };
                        return Ok(Dialled { handover, candidate });
                    }
                    Err(error) => {
                        tracing::debug!(%ski, addr = %candidate.address, %error, "dial candidate failed");
                        last = error;
                        // A failure frees its place at once: no reason to wait for the stagger.
                        next_start = tokio::time::Instant::now();
                    }
                }
            }
            () = tokio::time::sleep_until(next_start), if may_start => {}
            fresh = more.recv(), if more_open => match fresh {
                Some(fresh) => queue.add_front(fresh),
                None => more_open = false,
            },
        }
    }
}

/// The SNI name to use at a candidate: the host name it was announced under, if known.
fn server_name(hosts: &HashMap<IpAddr, String>, candidate: &DialCandidate) -> String {
    hosts
        .get(&candidate.address.ip())
        .cloned()
        .unwrap_or_else(|| transport::FALLBACK_SERVER_NAME.to_owned())
}

/// The candidates of one attempt not started yet; each address is started at most once.
#[derive(Default)]
struct Candidates {
    waiting: VecDeque<(DialCandidate, String)>,
    seen: HashSet<SocketAddr>,
}

impl Candidates {
    fn add_back(&mut self, candidates: impl IntoIterator<Item = (DialCandidate, String)>) {
        for (candidate, host) in candidates {
            if self.seen.insert(candidate.address) {
                self.waiting.push_back((candidate, host));
            }
        }
    }

    /// Fresh candidates go first, in the order given. One already waiting moves up.
    fn add_front(&mut self, candidates: Vec<(DialCandidate, String)>) {
        for (candidate, host) in candidates.into_iter().rev() {
            if self.seen.insert(candidate.address) {
                self.waiting.push_front((candidate, host));
            } else if let Some(at) = self
                .waiting
                .iter()
                .position(|(c, _)| c.address == candidate.address)
                && let Some(entry) = self.waiting.remove(at)
            {
                self.waiting.push_front(entry);
            }
        }
    }

    fn next(&mut self) -> Option<(DialCandidate, String)> {
        self.waiting.pop_front()
    }

    fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }
}

/// One candidate: TCP + TLS + WebSocket within the transport handshake timeout.
async fn attempt(
    shared: Arc<Shared>,
    ski: Ski,
    candidate: DialCandidate,
    host: String,
) -> (
    DialCandidate,
    Instant,
    Result<transport::ShipSocket<BoxIo>, DialError>,
) {
    let started = now();
    let once = dial_once(&shared, candidate.address, &host, ski, &candidate.path);
    let result =
        match tokio::time::timeout(shared.config.limits.transport_handshake_timeout, once).await {
            Ok(Ok(socket)) => Ok(socket),
            Ok(Err(error)) => Err(DialError::Transport(error)),
            Err(_) => Err(DialError::Timeout),
        };
    (candidate, started, result)
}

/// TCP (through the hub's [`super::net::Network`]) + TLS expecting `ski` + WebSocket at `path`.
/// Like ship-go, a server that answers the upgrade at `path` with an HTTP error is tried once
/// more at `/`.
async fn dial_once(
    shared: &Shared,
    addr: SocketAddr,
    host: &str,
    ski: Ski,
    path: &str,
) -> Result<transport::ShipSocket<BoxIo>, TransportError> {
    let mut path = path.to_owned();
    loop {
        let io = shared
            .config
            .network
            .connect(addr)
            .await
            .map_err(TransportError::from)?;
        let tls = shared.tls.connect(io, host, ski).await?;
        match transport::connect_websocket(tls, host, addr.port(), &path, &shared.config.websocket)
            .await
        {
            Err(error) if error.is_path_rejected() && path != "/" => {
                tracing::debug!(%addr, ?path, %error, "WebSocket upgrade refused: retrying at /");
                path = "/".to_owned();
            }
            result => return result,
        }
    }
}
