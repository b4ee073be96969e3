//! The in-memory network of the hub's tests (feature `test-util`): hosts on a simulated LAN,
//! with set-up latency, partitions and black holes, under tokio's paused clock.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadBuf};
use tokio::sync::mpsc;

use super::{BoxIo, Listener, Network};
use crate::sync::lock;

/// An in-memory LAN. Each host gets a [`MemoryNetwork`] handle with its own IP.
#[derive(Clone, Default)]
pub struct MemoryLan {
    inner: Arc<Mutex<LanState>>,
}

#[derive(Default)]
struct LanState {
    /// Connection set-up delays are drawn from this, up to `max_latency`.
    jitter: Option<(rand::rngs::StdRng, std::time::Duration)>,
    listeners: HashMap<SocketAddr, mpsc::UnboundedSender<(BoxIo, SocketAddr)>>,
    /// Unordered host pairs that cannot reach each other.
    partitions: Vec<(IpAddr, IpAddr)>,
    /// Every pipe, with the two hosts it joins and its black-hole switch.
    pipes: Vec<(IpAddr, IpAddr, Arc<Fault>)>,
}

impl std::fmt::Debug for MemoryLan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLan").finish_non_exhaustive()
    }
}

impl MemoryLan {
    /// A new, empty LAN.
    pub fn new() -> Self {
        Self::default()
    }

    /// A LAN whose connections take a random time (uniform in `0..=max`, drawn from `seed`) to
    /// set up, so that different seeds produce different interleavings of crossing dials.
    pub fn with_latency(seed: u64, max: std::time::Duration) -> Self {
        use rand::SeedableRng;
        let lan = Self::default();
        lock(&lan.inner).jitter = Some((rand::rngs::StdRng::seed_from_u64(seed), max));
        lan
    }

    /// A network handle for the host with address `ip`.
    pub fn host(&self, ip: IpAddr) -> MemoryNetwork {
        MemoryNetwork {
            lan: self.clone(),
            ip,
            next_port: Arc::new(AtomicU16::new(40000)),
        }
    }

    /// Cuts `a` off from `b`: new connections fail, and existing ones silently swallow
    /// everything (like a pulled cable: neither side sees a close).
    pub fn partition(&self, a: IpAddr, b: IpAddr) {
        let mut state = lock(&self.inner);
        state.partitions.push((a, b));
        for (x, y, fault) in &state.pipes {
            if (*x == a && *y == b) || (*x == b && *y == a) {
                fault.black_hole();
            }
        }
    }

    /// Removes every partition. Black-holed connections stay dead (as TCP connections would);
    /// new ones work.
    pub fn heal(&self) {
        lock(&self.inner).partitions.clear();
    }

    /// Simulates a power loss of `ip`: its listeners vanish and every pipe to it is
    /// black-holed (its peers see no close). Its hub should be dropped by the caller.
    pub fn crash(&self, ip: IpAddr) {
        let mut state = lock(&self.inner);
        state.listeners.retain(|addr, _| addr.ip() != ip);
        for (x, y, fault) in &state.pipes {
            if *x == ip || *y == ip {
                fault.black_hole();
            }
        }
    }

    fn partitioned(state: &LanState, a: IpAddr, b: IpAddr) -> bool {
        state
            .partitions
            .iter()
            .any(|(x, y)| (*x == a && *y == b) || (*x == b && *y == a))
    }
}

/// One host's view of a [`MemoryLan`].
#[derive(Clone)]
pub struct MemoryNetwork {
    lan: MemoryLan,
    ip: IpAddr,
    next_port: Arc<AtomicU16>,
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryNetwork")
            .field("ip", &self.ip)
            .finish()
    }
}

impl MemoryNetwork {
    fn ephemeral(&self) -> SocketAddr {
        SocketAddr::new(self.ip, self.next_port.fetch_add(1, Ordering::Relaxed))
    }
}

impl Network for MemoryNetwork {
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        let addr = if addr.port() == 0 {
            self.ephemeral()
        } else {
            SocketAddr::new(self.ip, addr.port())
        };
        let lan = self.lan.clone();
        Box::pin(async move {
            let (tx, rx) = mpsc::unbounded_channel();
            let mut state = lock(&lan.inner);
            if state.listeners.get(&addr).is_some_and(|l| !l.is_closed()) {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{addr} in use"),
                ));
            }
            state.listeners.insert(addr, tx);
            Ok(Box::new(MemoryListener { addr, incoming: rx }) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<BoxIo>> {
        let lan = self.lan.clone();
        let local = self.ephemeral();
        Box::pin(async move {
            let delay = {
                use rand::RngExt;
                let mut state = lock(&lan.inner);
                match &mut state.jitter {
                    Some((rng, max)) => {
                        let nanos = rng.random_range(0..=max.as_nanos() as u64);
                        std::time::Duration::from_nanos(nanos)
                    }
                    None => std::time::Duration::ZERO,
                }
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let mut state = lock(&lan.inner);
            if MemoryLan::partitioned(&state, local.ip(), addr.ip()) {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "host unreachable (partition)",
                ));
            }
            let Some(listener) = state.listeners.get(&addr).cloned() else {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "connection refused",
                ));
            };
            let (client, server) = tokio::io::duplex(64 * 1024);
            let fault = Arc::new(Fault::default());
            state.pipes.retain(|(_, _, f)| Arc::strong_count(f) > 1);
            state.pipes.push((local.ip(), addr.ip(), fault.clone()));
            let server = FaultyStream {
                inner: server,
                fault: fault.clone(),
            };
            listener.send((Box::new(server), local)).map_err(|_| {
                io::Error::new(io::ErrorKind::ConnectionRefused, "connection refused")
            })?;
            Ok(Box::new(FaultyStream {
                inner: client,
                fault,
            }) as BoxIo)
        })
    }
}

struct MemoryListener {
    addr: SocketAddr,
    incoming: mpsc::UnboundedReceiver<(BoxIo, SocketAddr)>,
}

impl Listener for MemoryListener {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.addr)
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxIo, SocketAddr)>> {
        Box::pin(async move {
            self.incoming
                .recv()
                .await
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "listener gone"))
        })
    }
}

/// The black-hole switch of one pipe.
#[derive(Default)]
struct Fault {
    black_holed: AtomicBool,
}

impl Fault {
    fn black_hole(&self) {
        self.black_holed.store(true, Ordering::SeqCst);
    }
    fn is_black_holed(&self) -> bool {
        self.black_holed.load(Ordering::SeqCst)
    }
}

/// A pipe end that, once black-holed, never delivers another byte and swallows what is written.
struct FaultyStream {
    inner: DuplexStream,
    fault: Arc<Fault>,
}

impl AsyncRead for FaultyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.fault.is_black_holed() {
            return Poll::Pending;
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if self.fault.is_black_holed() => {
                buf.set_filled(before);
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for FaultyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.fault.is_black_holed() {
            return Poll::Ready(Ok(data.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.fault.is_black_holed() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.fault.is_black_holed() {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
