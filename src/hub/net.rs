//! The byte streams under the hub: real TCP, or an in-memory network for tests.
//!
//! The hub only needs "listen at an address" and "connect to an address". Behind the
//! [`Network`] trait that is tokio's TCP in production ([`TcpNetwork`]) and, in tests, a
//! `MemoryNetwork` (feature `test-util`): hosts on a simulated LAN joined by in-memory pipes, which works under
//! tokio's paused clock (every timer of the hub runs in virtual time) and can inject faults —
//! partitions that black-hole traffic (the peer sees nothing, exactly like a pulled cable) and
//! host crashes.

use std::io;
use std::net::SocketAddr;

use futures_util::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream the hub can run TLS over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A boxed [`Io`].
pub type BoxIo = Box<dyn Io>;

/// Where the hub listens and how it connects.
pub trait Network: Send + Sync + 'static {
    /// Starts listening at `addr` (port 0 = any free port).
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn Listener>>>;
    /// Opens a stream to `addr`.
    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<BoxIo>>;
}

/// A bound listener.
pub trait Listener: Send + 'static {
    /// The address it is bound to.
    fn local_addr(&self) -> io::Result<SocketAddr>;
    /// The next incoming stream and its remote address.
    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxIo, SocketAddr)>>;
}

/// tokio TCP (with `TCP_NODELAY`: SHIP messages are small and latency matters).
#[derive(Debug, Clone, Copy, Default)]
pub struct TcpNetwork;

impl Network for TcpNetwork {
    fn bind(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            Ok(Box::new(listener) as Box<dyn Listener>)
        })
    }

    fn connect(&self, addr: SocketAddr) -> BoxFuture<'static, io::Result<BoxIo>> {
        Box::pin(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let _ = stream.set_nodelay(true);
            Ok(Box::new(stream) as BoxIo)
        })
    }
}

impl Listener for tokio::net::TcpListener {
    fn local_addr(&self) -> io::Result<SocketAddr> {
        tokio::net::TcpListener::local_addr(self)
    }

    fn accept(&mut self) -> BoxFuture<'_, io::Result<(BoxIo, SocketAddr)>> {
        Box::pin(async move {
            let (stream, remote) = tokio::net::TcpListener::accept(self).await?;
            let _ = stream.set_nodelay(true);
            Ok((Box::new(stream) as BoxIo, remote))
        })
    }
}

#[cfg(any(test, feature = "test-util"))]
mod memory;
#[cfg(any(test, feature = "test-util"))]
pub use memory::{MemoryLan, MemoryNetwork};
