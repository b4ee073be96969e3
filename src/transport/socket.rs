//! An established SHIP WebSocket ([`ShipSocket`]) and its reader and writer halves.
//!
//! The WebSocket state lives behind a mutex that is held only *inside* a single poll, never
//! across an `.await`, so the reader can wait for the next frame while the writer sends (the
//! same approach as `futures`' `BiLock`, without the unsafe code). Pings from the peer are
//! answered by tungstenite while the reader reads.
//!
//! Reading never waits for a write: tungstenite keeps a frame the peer does not take yet in its
//! write buffer and goes on reading (it tries to send its automatic pong and close replies on
//! each read, and keeps them if the peer still takes nothing). The hub's link uses that to stay
//! full-duplex: it polls a pending send ([`SocketWriter::poll_send`]) as one branch of its
//! `select!` and the next event as another, from one task.

use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, ready};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

use super::error::{TransportError, WebSocketError, from_tungstenite};
use super::suites::TlsSuite;
use super::tls::TlsStream;
use crate::Ski;
use crate::sync::lock;

/// Close code for a text frame (RFC 6455 "unsupported data").
const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
/// Close code for an oversize message (RFC 6455 "message too big").
const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;

/// What [`ShipSocket::next_event`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketEvent {
    /// A SHIP message (one binary frame's payload).
    Message(Vec<u8>),
    /// The answer to one of our pings.
    Pong(Vec<u8>),
    /// The peer closed the WebSocket; our close reply has been sent.
    Closed {
        /// The peer's close code, if it sent one (e.g. 1000, 4450).
        code: Option<u16>,
        /// The peer's close reason.
        reason: String,
    },
}

/// State shared by the two halves.
#[derive(Debug)]
struct Link<S> {
    socket: Mutex<WebSocketStream<TlsStream<S>>>,
    peer_ski: Ski,
    max_message_size: usize,
    protocol_version: Option<String>,
    cipher_suite: Option<String>,
    tls_suite: Option<TlsSuite>,
}

impl<S> Link<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    fn lock(&self) -> MutexGuard<'_, WebSocketStream<TlsStream<S>>> {
        // A panic while polling leaves the WebSocket no worse than an I/O error would.
        lock(&self.socket)
    }

    fn poll_next_message(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Message, tungstenite::Error>>> {
        let mut socket = self.lock();
        std::pin::Pin::new(&mut *socket).poll_next(cx)
    }

    /// Hands `message` to the WebSocket once it is ready for it, then flushes: `Ready` once
    /// everything written so far is out. The message is taken from `message` only when the
    /// WebSocket accepts it, so a pending poll loses nothing and the next poll goes on.
    fn poll_send(
        &self,
        cx: &mut Context<'_>,
        message: &mut Option<Message>,
    ) -> Poll<Result<(), tungstenite::Error>> {
        self.poll_write(cx, message, true)
    }

    /// Hands `message` to the WebSocket once it is ready for it, without a flush: it goes out
    /// with the next flush, together with whatever else was handed over until then.
    fn poll_feed(
        &self,
        cx: &mut Context<'_>,
        message: &mut Option<Message>,
    ) -> Poll<Result<(), tungstenite::Error>> {
        self.poll_write(cx, message, false)
    }

    /// [`Self::poll_send`] (`flush`) or [`Self::poll_feed`], under one lock of the socket.
    fn poll_write(
        &self,
        cx: &mut Context<'_>,
        message: &mut Option<Message>,
        flush: bool,
    ) -> Poll<Result<(), tungstenite::Error>> {
        let mut socket = self.lock();
        let mut socket = std::pin::Pin::new(&mut *socket);
        if message.is_some() {
            ready!(socket.as_mut().poll_ready(cx))?;
            if let Some(next) = message.take() {
                socket.as_mut().start_send(next)?;
            }
        }
        if flush {
            socket.poll_flush(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    /// Queues `message` and flushes it.
    async fn send(&self, message: Message) -> Result<(), tungstenite::Error> {
        let mut message = Some(message);
        poll_fn(|cx| self.poll_send(cx, &mut message)).await
    }

    async fn flush(&self) -> Result<(), tungstenite::Error> {
        poll_fn(|cx| {
            let mut socket = self.lock();
            std::pin::Pin::new(&mut *socket).poll_flush(cx)
        })
        .await
    }

    async fn close(&self, code: u16, reason: &str) -> Result<(), TransportError> {
        let mut frame = Outgoing::close(code, reason);
        poll_fn(|cx| self.poll_outgoing(cx, &mut frame)).await
    }

    /// [`Link::poll_send`] for an [`Outgoing`] frame, with the errors mapped; closing a socket
    /// that is already closed is not an error.
    fn poll_outgoing(
        &self,
        cx: &mut Context<'_>,
        frame: &mut Outgoing,
    ) -> Poll<Result<(), TransportError>> {
        match ready!(self.poll_send(cx, &mut frame.message)) {
            Ok(()) => Poll::Ready(Ok(())),
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed)
                if frame.close =>
            {
                Poll::Ready(Ok(()))
            }
            Err(error) => Poll::Ready(Err(from_tungstenite(error))),
        }
    }
}

/// One frame on its way out through [`SocketWriter::poll_send`]: a SHIP message, a ping or a
/// close. It holds the frame until the WebSocket takes it, so a send polled as a `select!`
/// branch that loses the race loses nothing; the next poll goes on where this one stopped.
#[derive(Debug)]
pub(crate) struct Outgoing {
    message: Option<Message>,
    close: bool,
}

impl Outgoing {
    /// Whether the frame is still here, not yet handed to the WebSocket.
    pub(crate) fn is_unsent(&self) -> bool {
        self.message.is_some()
    }

    /// One SHIP message, as a binary frame.
    pub(crate) fn binary(message: Vec<u8>) -> Outgoing {
        Outgoing {
            message: Some(Message::Binary(message.into())),
            close: false,
        }
    }

    /// A WebSocket ping; the answer arrives as [`SocketEvent::Pong`].
    pub(crate) fn ping(payload: Vec<u8>) -> Outgoing {
        Outgoing {
            message: Some(Message::Ping(payload.into())),
            close: false,
        }
    }

    /// A close frame with `code` and `reason` (truncated to the 123 bytes a close frame allows).
    pub(crate) fn close(code: u16, reason: &str) -> Outgoing {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: truncate(reason, 123).into(),
        };
        Outgoing {
            message: Some(Message::Close(Some(frame))),
            close: true,
        }
    }
}

/// An event or violation received but not yet returned, kept so that
/// [`SocketReader::next_event`] stays cancel-safe while it answers it.
#[derive(Debug)]
enum Pending {
    Closed { code: Option<u16>, reason: String },
    TextFrame,
    TooLarge { size: usize, max: usize },
}

/// An established SHIP WebSocket: binary messages in and out, pings, close.
///
/// One object serves both directions; the hub's connection task can use it from one task with
/// `tokio::select!` over [`next_event`](Self::next_event) (cancel-safe), or
/// [`split`](Self::split) it into a reader and a writer for two tasks.
#[derive(Debug)]
pub struct ShipSocket<S> {
    reader: SocketReader<S>,
    writer: SocketWriter<S>,
}

/// The receiving half of a [`ShipSocket`] (see [`ShipSocket::split`]).
#[derive(Debug)]
pub struct SocketReader<S> {
    link: Arc<Link<S>>,
    pending: Option<Pending>,
}

/// The sending half of a [`ShipSocket`] (see [`ShipSocket::split`]).
#[derive(Debug)]
pub struct SocketWriter<S> {
    link: Arc<Link<S>>,
}

impl<S> ShipSocket<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    pub(crate) fn new(
        inner: WebSocketStream<TlsStream<S>>,
        peer_ski: Ski,
        max_message_size: usize,
    ) -> Self {
        let tls = inner.get_ref();
        let link = Arc::new(Link {
            protocol_version: tls.protocol_version(),
            cipher_suite: tls.cipher_suite(),
            tls_suite: tls.tls_suite(),
            socket: Mutex::new(inner),
            peer_ski,
            max_message_size,
        });
        ShipSocket {
            reader: SocketReader {
                link: link.clone(),
                pending: None,
            },
            writer: SocketWriter { link },
        }
    }

    /// The peer's SKI, from its verified TLS certificate.
    pub fn peer_ski(&self) -> Ski {
        self.writer.link.peer_ski
    }

    /// The largest incoming message this socket accepts, in bytes.
    pub fn max_message_size(&self) -> usize {
        self.writer.link.max_message_size
    }

    /// The negotiated TLS version, e.g. `TLSv1_2`.
    pub fn protocol_version(&self) -> Option<&str> {
        self.writer.link.protocol_version.as_deref()
    }

    /// The negotiated TLS cipher suite, e.g. `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`.
    pub fn cipher_suite(&self) -> Option<&str> {
        self.writer.link.cipher_suite.as_deref()
    }

    /// The negotiated TLS 1.2 cipher suite as a [`TlsSuite`] (`None` under TLS 1.3).
    pub fn tls_suite(&self) -> Option<TlsSuite> {
        self.writer.link.tls_suite
    }

    /// Sends one SHIP message as a binary frame and flushes it. See [`SocketWriter::send`].
    pub async fn send(&mut self, message: Vec<u8>) -> Result<(), TransportError> {
        self.writer.send(message).await
    }

    /// Sends a WebSocket ping (keepalive, §10); the answer arrives as [`SocketEvent::Pong`].
    pub async fn ping(&mut self, payload: Vec<u8>) -> Result<(), TransportError> {
        self.writer.ping(payload).await
    }

    /// Waits for the next event. Cancel-safe. See [`SocketReader::next_event`].
    pub async fn next_event(&mut self) -> Result<SocketEvent, TransportError> {
        self.reader.next_event().await
    }

    /// Closes the WebSocket with `code` and `reason`. See [`SocketWriter::close`].
    pub async fn close(&mut self, code: u16, reason: &str) -> Result<(), TransportError> {
        self.writer.close(code, reason).await
    }

    /// Splits the socket into a reader and a writer that can be used from different tasks.
    /// The connection ends when both are dropped.
    pub fn split(self) -> (SocketReader<S>, SocketWriter<S>) {
        (self.reader, self.writer)
    }
}

impl<S> SocketReader<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// The peer's SKI, from its verified TLS certificate.
    pub fn peer_ski(&self) -> Ski {
        self.link.peer_ski
    }

    /// Waits for the next event: a SHIP message, a pong, or the peer's close.
    ///
    /// Pings from the peer are answered automatically and not reported. A text frame or an
    /// oversize message closes the connection (1003 / 1009) and returns
    /// [`WebSocketError::TextFrame`] / [`WebSocketError::MessageTooLarge`]. After the close
    /// was reported, further calls return [`WebSocketError::Closed`]. After an error, drop the
    /// socket.
    ///
    /// Cancel-safe: if the future is dropped before it completes, no received message is lost;
    /// a close or violation already received is reported by the next call.
    pub async fn next_event(&mut self) -> Result<SocketEvent, TransportError> {
        loop {
            if let Some(pending) = &self.pending {
                match pending {
                    Pending::Closed { .. } => {
                        // Sends our close reply, which tungstenite has queued.
                        let _ = self.link.flush().await;
                    }
                    Pending::TextFrame => {
                        self.close_quietly(CLOSE_UNSUPPORTED_DATA, "SHIP uses binary frames only")
                            .await;
                    }
                    Pending::TooLarge { .. } => {
                        self.close_quietly(CLOSE_MESSAGE_TOO_BIG, "message too big")
                            .await;
                    }
                }
                return match self.pending.take() {
                    Some(Pending::Closed { code, reason }) => {
                        Ok(SocketEvent::Closed { code, reason })
                    }
                    Some(Pending::TextFrame) => Err(WebSocketError::TextFrame.into()),
                    Some(Pending::TooLarge { size, max }) => {
                        Err(WebSocketError::MessageTooLarge { size, max }.into())
                    }
                    None => continue,
                };
            }
            match poll_fn(|cx| self.link.poll_next_message(cx)).await {
                None => return Err(WebSocketError::Closed.into()),
                Some(Ok(Message::Binary(bytes))) => return Ok(SocketEvent::Message(bytes.into())),
                Some(Ok(Message::Pong(bytes))) => return Ok(SocketEvent::Pong(bytes.into())),
                Some(Ok(Message::Ping(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Text(_))) => self.pending = Some(Pending::TextFrame),
                Some(Ok(Message::Close(frame))) => {
                    let (code, reason) = match frame {
                        Some(frame) => (Some(u16::from(frame.code)), frame.reason.to_string()),
                        None => (None, String::new()),
                    };
                    self.pending = Some(Pending::Closed { code, reason });
                }
                Some(Err(tungstenite::Error::Capacity(
                    tungstenite::error::CapacityError::MessageTooLong { size, max_size },
                ))) => {
                    self.pending = Some(Pending::TooLarge {
                        size,
                        max: max_size,
                    });
                }
                Some(Err(error)) => return Err(from_tungstenite(error)),
            }
        }
    }

    async fn close_quietly(&self, code: u16, reason: &str) {
        if let Err(error) = self.link.close(code, reason).await {
            tracing::debug!(peer = %self.link.peer_ski, %error, "closing after a protocol violation failed");
        }
    }
}

impl<S> SocketWriter<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// The peer's SKI, from its verified TLS certificate.
    pub fn peer_ski(&self) -> Ski {
        self.link.peer_ski
    }

    /// Sends one SHIP message as a binary frame and flushes it.
    ///
    /// Not cancel-safe: if the future is dropped before it completes, the message may or may
    /// not be sent. Do not use it as a `select!` branch; call it from a handler.
    pub async fn send(&self, message: Vec<u8>) -> Result<(), TransportError> {
        self.link
            .send(Message::Binary(message.into()))
            .await
            .map_err(from_tungstenite)
    }

    /// Sends a WebSocket ping (keepalive, §10); the answer arrives as [`SocketEvent::Pong`]
    /// on the reader.
    pub async fn ping(&self, payload: Vec<u8>) -> Result<(), TransportError> {
        self.link
            .send(Message::Ping(payload.into()))
            .await
            .map_err(from_tungstenite)
    }

    /// Closes the WebSocket with `code` and `reason` (truncated to the 123 bytes a close frame
    /// allows) and flushes the close frame. Closing an already closed socket is not an error.
    /// The peer's close reply arrives on the reader as [`SocketEvent::Closed`].
    pub async fn close(&self, code: u16, reason: &str) -> Result<(), TransportError> {
        self.link.close(code, reason).await
    }

    /// Sends `frame` without blocking the task: hands it to the WebSocket once it is ready,
    /// then flushes; `Ready` once the frame (and everything before it) is out. Cancel-safe, so
    /// it can be a `select!` branch next to [`SocketReader::next_event`]: a pending poll keeps
    /// the frame in `frame` (or in the WebSocket's write buffer), and reading goes on meanwhile.
    pub(crate) fn poll_send(
        &self,
        cx: &mut Context<'_>,
        frame: &mut Outgoing,
    ) -> Poll<Result<(), TransportError>> {
        self.link.poll_outgoing(cx, frame)
    }

    /// Hands `frame` to the WebSocket without a flush: `Ready(Ok)` once it is in the
    /// WebSocket's write buffer, from where the next [`poll_send`](Self::poll_send) writes it
    /// together with its own frame: messages that are ready at once leave in one write. Like
    /// `poll_send` it keeps the frame in `frame` while it is pending.
    pub(crate) fn poll_feed(
        &self,
        cx: &mut Context<'_>,
        frame: &mut Outgoing,
    ) -> Poll<Result<(), TransportError>> {
        self.link
            .poll_feed(cx, &mut frame.message)
            .map_err(from_tungstenite)
    }
}

/// `text` cut to at most `max` bytes, on a char boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_are_truncated_on_a_char_boundary() {
        assert_eq!(truncate("short", 123), "short");
        let long = "ä".repeat(100); // 200 bytes
        let cut = truncate(&long, 123);
        assert_eq!(cut.len(), 122);
        assert!(long.starts_with(cut));
    }
}
