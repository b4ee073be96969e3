//! Dialling a peer: TCP, then TLS expecting the peer's SKI, then the WebSocket upgrade, racing
//! the peer's candidate addresses (see [`Race`]).
//!
//! Why a race, and why this pacing: anyone on the LAN can announce a paired SKI at any address,
//! so a peer's candidates may include many fakes, and the worst of them accept TCP and then stay
//! silent until the handshake timeout (10 s). Tried one after another, 100 of them would keep the
//! real peer waiting for minutes. So one attempt runs up to `max_dials_in_flight` candidates at
//! once, starts them quickly, and gives up a silent one early when others are waiting:
//!
//! * **Order.** Candidates come from the peer's address book at each start, best first: the
//!   address that completed a handshake before, configured ones, claims never tried (from both
//!   ends of the order they were learnt in), then demoted ones (whose dials failed). A fresh
//!   sighting during an attempt is simply an untried candidate at the next start.
//! * **Pacing.** The first candidate starts at once. Each further one starts `dial_stagger`
//!   divided by the number of candidates in flight after the previous start (250, 125, 83, …
//!   ms), or at once when one in flight failed: a single right answer wins alone, as in happy
//!   eyeballs (RFC 8305), while every candidate that stays silent makes waiting for the others
//!   less worthwhile. 64 silent candidates are all started within about 1.2 s.
//! * **Silence.** A candidate that has not sent a single byte `dial_answer_timeout` (1 s) after
//!   it started (no TCP connection, or no answer to our TLS ClientHello) is given up while other
//!   candidates wait for its place, and demoted. A real SHIP server answers a ClientHello within
//!   milliseconds; one that is slower still gets the whole `transport_handshake_timeout` when
//!   nothing waits for its place.
//! * **Bounds.** At most `max_dials_in_flight` (64) sockets per attempt; the addresses started
//!   in one attempt are remembered only for about the candidates the book still holds.
//!
//! Every failed candidate is reported (so the book demotes it) and the attempt goes on; it fails
//! only when no candidate is left and none is in flight. The first candidate to complete TCP +
//! TLS (with the expected SKI) + WebSocket wins; the others are cancelled (dropped).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::address_book::{AddressBook, DialCandidate};
use super::clock::now;
use super::handover::{Handover, Permits};
use super::shared::Shared;
use crate::Ski;
use crate::hub::errors::DialError;
use crate::hub::net::BoxIo;
use crate::transport::{self, TransportError};

/// A dial that reached a WebSocket: ready to be taken over as a link.
pub(crate) struct Dialled {
    /// The connection, for the supervisor that dialled it.
    pub(crate) handover: Handover,
    /// The candidate that worked (its address and path are remembered for the next dial).
    pub(crate) candidate: DialCandidate,
}

/// What a [`Race`] reports.
pub(crate) enum RaceEvent {
    /// A candidate connected: the attempt is over.
    Won(Box<Dialled>),
    /// A candidate failed (the race logged why); the attempt goes on with the others.
    Failed(DialCandidate),
    /// No candidate is left and none is in flight: the attempt failed, with the last error.
    Exhausted(DialError),
}

/// A candidate in flight.
struct Running {
    address: SocketAddr,
    /// When it started (tokio's clock, for the silence deadline).
    started: tokio::time::Instant,
    /// Set by the first byte read from its socket.
    answered: Arc<AtomicBool>,
    /// Gives it up (it ends with [`DialError::NoAnswer`]).
    give_up: CancellationToken,
}

/// One candidate's end.
struct Finished {
    candidate: DialCandidate,
    started: Instant,
    result: Result<transport::ShipSocket<BoxIo>, DialError>,
}

/// One dial attempt of one peer, racing its candidate addresses (see the module documentation).
/// The supervisor owns it and polls [`Race::next`] with the peer's address book, so candidates
/// learnt while it runs join it, and failures demote their address in the book at once.
/// Dropping it cancels every candidate in flight.
pub(crate) struct Race {
    shared: Arc<Shared>,
    ski: Ski,
    /// The connection slot a winner takes over.
    permit: Option<OwnedSemaphorePermit>,
    in_flight: FuturesUnordered<BoxFuture<'static, Finished>>,
    running: Vec<Running>,
    /// Addresses started in this attempt (each is started once).
    started: HashSet<SocketAddr>,
    next_start: tokio::time::Instant,
    last: Option<DialError>,
}

impl Race {
    /// Starts an attempt for `ski`, taking a connection slot (none free:
    /// [`DialError::ConnectionLimit`]).
    pub(crate) fn new(shared: Arc<Shared>, ski: Ski) -> Result<Race, DialError> {
        let limit = shared.config.limits.max_connections;
        let permit = shared
            .connections
            .clone()
            .try_acquire_owned()
            .map_err(|_| DialError::ConnectionLimit(limit))?;
        Ok(Race {
            shared,
            ski,
            permit: Some(permit),
            in_flight: FuturesUnordered::new(),
            running: Vec::new(),
            started: HashSet::new(),
            next_start: tokio::time::Instant::now(),
            last: None,
        })
    }

    /// The best candidate of `book` not started in this attempt.
    fn waiting(&mut self, book: &AddressBook) -> Option<DialCandidate> {
        let candidates = book.dial_candidates(&self.ski);
        // Bounded: forget started addresses the book no longer holds.
        if self.started.len() > 2 * candidates.len() + 16 {
            self.started
                .retain(|a| candidates.iter().any(|c| c.address == *a));
        }
        candidates
            .into_iter()
            .find(|c| !self.started.contains(&c.address))
    }

    /// Runs the attempt until its next event. Cancel-safe: dropping the future loses nothing
    /// (the supervisor drops it whenever another of its events comes first, and polls again
    /// with the book as it is then).
    pub(crate) async fn next(&mut self, book: &AddressBook) -> RaceEvent {
        let max_in_flight = self.shared.config.limits.max_dials_in_flight.max(1);
        let answer_timeout = self.shared.config.limits.dial_answer_timeout;
        let stagger = self.shared.config.timers.dial_stagger;
        loop {
            let now = tokio::time::Instant::now();
            let waiting = self.waiting(book);
            let full = self.in_flight.len() >= max_in_flight;
            if let Some(candidate) = &waiting
                && !full
                && now >= self.next_start
            {
                self.launch(candidate.clone());
                let in_flight = u32::try_from(self.in_flight.len()).unwrap_or(u32::MAX);
                self.next_start = now + stagger / in_flight.max(1);
                continue;
            }
            if waiting.is_none() && self.in_flight.is_empty() {
                return RaceEvent::Exhausted(self.last.take().unwrap_or(DialError::NoAddress));
            }
            // A silent candidate makes room for a waiting one once its answer time is up.
            let give_up_at = if waiting.is_some() && full {
                self.running
                    .iter()
                    .filter(|r| !r.answered.load(Ordering::Relaxed) && !r.give_up.is_cancelled())
                    .map(|r| r.started + answer_timeout)
                    .min()
            } else {
                None
            };
            let may_start = waiting.is_some() && !full;
            tokio::select! {
                Some(finished) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.running.retain(|r| r.address != finished.candidate.address);
                    match finished.result {
                        Ok(socket) => {
                            let handover = Handover {
                                socket,
                                permits: Permits {
                                    _connection: self
                                        .permit
                                        .take()
                                        .expect("a race is won once"),
                                    stranger: None,
                                },
                                remote: finished.candidate.address,
                                started: finished.started,
                            };
                            return RaceEvent::Won(Box::new(Dialled {
                                handover,
                                candidate: finished.candidate,
                            }));
                        }
                        Err(error) => {
                            tracing::debug!(
                                ski = %self.ski,
                                addr = %finished.candidate.address,
                                %error,
                                "dial candidate failed"
                            );
                            // A failure frees its place at once: no reason to wait for the
                            // stagger.
                            self.next_start = tokio::time::Instant::now();
                            self.last = Some(error);
                            return RaceEvent::Failed(finished.candidate);
                        }
                    }
                }
                () = tokio::time::sleep_until(self.next_start), if may_start => {}
                () = sleep_until_opt(give_up_at) => {
                    let now = tokio::time::Instant::now();
                    if let Some(silent) = self
                        .running
                        .iter()
                        .filter(|r| {
                            !r.answered.load(Ordering::Relaxed)
                                && !r.give_up.is_cancelled()
                                && r.started + answer_timeout <= now
                        })
                        .min_by_key(|r| r.started)
                    {
                        tracing::debug!(ski = %self.ski, addr = %silent.address, "dial candidate silent: giving it up for a waiting one");
                        silent.give_up.cancel();
                    }
                }
            }
        }
    }

    fn launch(&mut self, candidate: DialCandidate) {
        self.started.insert(candidate.address);
        let answered = Arc::new(AtomicBool::new(false));
        let give_up = CancellationToken::new();
        self.running.push(Running {
            address: candidate.address,
            started: tokio::time::Instant::now(),
            answered: answered.clone(),
            give_up: give_up.clone(),
        });
        self.in_flight.push(Box::pin(attempt(
            self.shared.clone(),
            self.ski,
            candidate,
            answered,
            give_up,
        )));
    }
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// One candidate: TCP + TLS + WebSocket within the transport handshake timeout, unless given up.
async fn attempt(
    shared: Arc<Shared>,
    ski: Ski,
    candidate: DialCandidate,
    answered: Arc<AtomicBool>,
    give_up: CancellationToken,
) -> Finished {
    let started = now();
    let host = candidate
        .host
        .clone()
        .unwrap_or_else(|| transport::FALLBACK_SERVER_NAME.to_owned());
    let once = dial_once(
        &shared,
        candidate.address,
        &host,
        ski,
        &candidate.path,
        answered,
    );
    let timeout = shared.config.limits.transport_handshake_timeout;
    let result = tokio::select! {
        result = tokio::time::timeout(timeout, once) => match result {
            Ok(Ok(socket)) => Ok(socket),
            Ok(Err(error)) => Err(DialError::Transport(error)),
            Err(_) => Err(DialError::Timeout),
        },
        () = give_up.cancelled() => Err(DialError::NoAnswer),
    };
    Finished {
        candidate,
        started,
        result,
    }
}

/// TCP (through the hub's [`crate::hub::net::Network`]) + TLS expecting `ski` + WebSocket at `path`.
/// Like ship-go, a server that answers the upgrade at `path` with an HTTP error is tried once
/// more at `/`. `answered` is set by the first byte the server sends.
async fn dial_once(
    shared: &Shared,
    addr: SocketAddr,
    host: &str,
    ski: Ski,
    path: &str,
    answered: Arc<AtomicBool>,
) -> Result<transport::ShipSocket<BoxIo>, TransportError> {
    let mut path = path.to_owned();
    loop {
        let io = shared
            .config
            .network
            .connect(addr)
            .await
            .map_err(TransportError::from)?;
        let io: BoxIo = Box::new(Heard {
            inner: io,
            answered: Some(answered.clone()),
        });
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

/// A stream that notes the first byte it reads (then only passes through).
struct Heard {
    inner: BoxIo,
    answered: Option<Arc<AtomicBool>>,
}

impl AsyncRead for Heard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before
            && let Some(answered) = self.answered.take()
        {
            answered.store(true, Ordering::Relaxed);
        }
        poll
    }
}

impl AsyncWrite for Heard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
