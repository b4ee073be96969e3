//! The tool's side of one connection: a scripted SHIP peer that sends hand-built bytes and
//! records, with timings, everything the device under test (DUT) sends back.
//!
//! Every step returns `Err(observation)` when the DUT does something the case does not allow;
//! the observation becomes the case's evidence. Times are relative to the moment the TLS and
//! WebSocket handshakes of this connection completed (the "after TLS" of the catalogue).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use ship_hub::protocol::codec::decode;
use ship_hub::protocol::message::{ConnectionHello, HelloPhase, ShipMessage};
use ship_hub::transport::{ShipSocket, SocketEvent};

/// A step's failure: the observation that makes the case fail.
pub(crate) type Step<T> = Result<T, String>;

/// What the DUT did next.
#[derive(Debug)]
pub(crate) enum Incoming {
    /// One SHIP message, raw.
    Message(Vec<u8>),
    /// The connection ended (WebSocket close, TCP reset or EOF), with a description.
    Closed(String),
}

/// A WebSocket over a TLS connection that ship-hub's own transport would not make (the forged
/// certificates of SEC_001/002).
pub(crate) type RawWebSocket = WebSocketStream<tokio_rustls::TlsStream<TcpStream>>;

/// The connection under a [`Peer`].
enum Link {
    /// ship-hub's transport (the DUT's certificate checked, SKI pinned).
    Ship(ShipSocket<TcpStream>),
    /// A plain WebSocket on a TLS connection the tool built itself.
    Raw(Box<RawWebSocket>),
}

/// What the link delivered next.
enum LinkEvent {
    Message(Vec<u8>),
    Closed(String),
    /// A ping, a pong or anything else that is not the DUT's SHIP message.
    Other,
}

impl Link {
    async fn send(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        match self {
            Link::Ship(socket) => socket.send(bytes).await.map_err(|e| e.to_string()),
            Link::Raw(ws) => ws
                .send(WsMessage::binary(bytes))
                .await
                .map_err(|e| e.to_string()),
        }
    }

    async fn next(&mut self) -> LinkEvent {
        match self {
            Link::Ship(socket) => match socket.next_event().await {
                Ok(SocketEvent::Message(bytes)) => LinkEvent::Message(bytes),
                Ok(SocketEvent::Closed { code, reason }) => {
                    LinkEvent::Closed(format!("WebSocket close {code:?} {reason:?}"))
                }
                Err(error) => LinkEvent::Closed(format!("connection ended: {error}")),
                // Pongs, and any event a later transport adds, are not the DUT's messages.
                Ok(_) => LinkEvent::Other,
            },
            Link::Raw(ws) => match ws.next().await {
                Some(Ok(WsMessage::Binary(bytes))) => LinkEvent::Message(bytes.to_vec()),
                Some(Ok(WsMessage::Text(text))) => LinkEvent::Message(text.as_bytes().to_vec()),
                Some(Ok(WsMessage::Close(frame))) => LinkEvent::Closed(format!(
                    "WebSocket close {:?} {:?}",
                    frame.as_ref().map(|f| u16::from(f.code)),
                    frame
                        .as_ref()
                        .map(|f| f.reason.to_string())
                        .unwrap_or_default()
                )),
                Some(Ok(_)) => LinkEvent::Other,
                Some(Err(error)) => LinkEvent::Closed(format!("connection ended: {error}")),
                None => LinkEvent::Closed("connection ended: EOF".into()),
            },
        }
    }

    async fn close(&mut self) {
        match self {
            Link::Ship(socket) => {
                let _ = socket.close(1000, "ship-conformance: case done").await;
            }
            Link::Raw(ws) => {
                let _ = SinkExt::close(ws.as_mut()).await;
            }
        }
    }
}

/// A message the codec refused: what was received and why.
struct Undecodable {
    /// When, as the log shows it.
    stamp: String,
    /// The bytes, as [`show`] prints them.
    shown: String,
    /// The codec's reason.
    error: String,
}

/// One scripted connection to the DUT.
pub(crate) struct Peer {
    link: Link,
    start: Instant,
    log: Vec<String>,
    stash: VecDeque<(Vec<u8>, ShipMessage)>,
    /// Every message the codec refused, in order (reported with the failure they caused).
    undecodable: Vec<Undecodable>,
    /// The raw bytes of every refused message, in order (for a closer reading).
    undecodable_bytes: Vec<Vec<u8>>,
    /// When set, every `accessMethodsRequest` of the DUT is answered at once with these bytes.
    answer_am: Option<Vec<u8>>,
    closed: Option<String>,
    label: &'static str,
}

/// How many undecodable messages a failure lists (the log has every one).
const LISTED_UNDECODABLE: usize = 5;

/// How many characters of a message's text [`show`] prints.
const SHOW_CHARS: usize = 160;

/// A short, printable form of SHIP bytes: the type byte in hex, then the text after it, or all
/// bytes in hex when there is at most one more byte. The text is bounded ([`SHOW_CHARS`]
/// characters, then `…`) and escaped: control characters as `\n`, `\t`, `\u{1b}`, bytes that
/// are not UTF-8 as `\xNN`, so that what the DUT sent is shown, never interpreted. A
/// `connectionPinInput` is shown without its PIN.
pub(crate) fn show(bytes: &[u8]) -> String {
    match bytes.split_first() {
        Some((kind, rest)) if rest.len() > 1 => {
            // A PIN never reaches the report, whichever side sent it.
            if String::from_utf8_lossy(rest).contains("connectionPinInput") {
                return format!("{kind:02X} connectionPinInput (PIN redacted)");
            }
            let mut text = String::new();
            let mut chars = 0;
            'chunks: for chunk in rest.utf8_chunks() {
                for c in chunk.valid().chars() {
                    if chars == SHOW_CHARS {
                        text.push('…');
                        break 'chunks;
                    }
                    if c.is_control() {
                        text.extend(c.escape_debug());
                    } else {
                        text.push(c);
                    }
                    chars += 1;
                }
                for b in chunk.invalid() {
                    if chars == SHOW_CHARS {
                        text.push('…');
                        break 'chunks;
                    }
                    text.push_str(&format!("\\x{b:02X}"));
                    chars += 1;
                }
            }
            format!("{kind:02X} {text}")
        }
        _ => bytes
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" "),
    }
}

impl Peer {
    /// Wraps an established socket; the clock starts now.
    pub(crate) fn new(socket: ShipSocket<TcpStream>, label: &'static str) -> Self {
        Self::on(Link::Ship(socket), label)
    }

    /// Wraps a WebSocket the tool built on its own TLS connection; the clock starts now.
    pub(crate) fn raw(ws: RawWebSocket, label: &'static str) -> Self {
        Self::on(Link::Raw(Box::new(ws)), label)
    }

    fn on(link: Link, label: &'static str) -> Self {
        Peer {
            link,
            start: Instant::now(),
            log: Vec::new(),
            stash: VecDeque::new(),
            undecodable: Vec::new(),
            undecodable_bytes: Vec::new(),
            answer_am: None,
            closed: None,
            label,
        }
    }

    /// From now on answers every `accessMethodsRequest` of the DUT at once with `reply`
    /// (including one already received and kept).
    pub(crate) async fn answer_access_methods(&mut self, reply: Vec<u8>) -> Step<()> {
        let pending = self
            .stash
            .iter()
            .position(|(_, m)| matches!(m, ShipMessage::AccessMethodsRequest));
        if let Some(i) = pending {
            self.stash.remove(i);
            self.send(&reply).await?;
        }
        self.answer_am = Some(reply);
        Ok(())
    }

    /// Records a message the codec refused: in the log now, and with the failure it may cause.
    fn refused(&mut self, bytes: &[u8], error: &ship_hub::protocol::codec::DecodeError) {
        self.note(format!("(undecodable: {error})"));
        self.undecodable.push(Undecodable {
            stamp: self.stamp(),
            shown: show(bytes),
            error: error.to_string(),
        });
        self.undecodable_bytes.push(bytes.to_vec());
    }

    /// How the DUT closed the connection, if it did.
    pub(crate) fn closed_reason(&self) -> Option<&str> {
        self.closed.as_deref()
    }

    /// The raw bytes of every message the codec refused so far.
    pub(crate) fn undecodable(&self) -> &[Vec<u8>] {
        &self.undecodable_bytes
    }

    /// `failure`, followed by every undecodable message received since `since` (an index into
    /// the list): what was received and why it was refused.
    fn with_undecodable(&self, failure: String, since: usize) -> String {
        let refused = &self.undecodable[since.min(self.undecodable.len())..];
        if refused.is_empty() {
            return failure;
        }
        let mut list = refused
            .iter()
            .take(LISTED_UNDECODABLE)
            .map(|u| format!("{} ← {} ({})", u.stamp, u.shown, u.error))
            .collect::<Vec<_>>()
            .join("; ");
        if refused.len() > LISTED_UNDECODABLE {
            list.push_str(&format!(
                "; and {} more (in the log)",
                refused.len() - LISTED_UNDECODABLE
            ));
        }
        format!(
            "{failure}; meanwhile it sent {} undecodable message(s): {list}",
            refused.len()
        )
    }

    /// Time since the connection was established.
    pub(crate) fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    fn stamp(&self) -> String {
        let prefix = if self.label.is_empty() {
            String::new()
        } else {
            format!("{} ", self.label)
        };
        format!("{prefix}t={:.2}s", self.elapsed().as_secs_f64())
    }

    /// Adds an observation to the log.
    pub(crate) fn note(&mut self, text: impl Into<String>) {
        let line = format!("{} {}", self.stamp(), text.into());
        self.log.push(line);
    }

    /// The observations so far.
    pub(crate) fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// Sends raw SHIP bytes.
    pub(crate) async fn send(&mut self, bytes: &[u8]) -> Step<()> {
        self.note(format!("→ {}", show(bytes)));
        let sent = self.link.send(bytes.to_vec()).await;
        sent.map_err(|e| format!("{} sending failed: {e}", self.stamp()))
    }

    /// The next thing the DUT does within `within`; `None` when nothing happened. Pings are
    /// answered by the transport and not reported.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<Incoming> {
        if let Some(reason) = &self.closed {
            return Some(Incoming::Closed(reason.clone()));
        }
        let deadline = Instant::now() + within;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.link.next()).await {
                Err(_) => return None,
                Ok(event) => event,
            };
            let incoming = match event {
                LinkEvent::Message(bytes) => {
                    self.note(format!("← {}", show(&bytes)));
                    if let Some(reply) = self.answer_am.clone()
                        && matches!(decode(&bytes), Ok(ShipMessage::AccessMethodsRequest))
                    {
                        // The DUT's own request, answered on the spot (a failure to send
                        // shows as the close that follows).
                        let _ = self.send(&reply).await;
                        continue;
                    }
                    return Some(Incoming::Message(bytes));
                }
                LinkEvent::Closed(reason) => reason,
                LinkEvent::Other => continue,
            };
            self.note(format!("← closed by the DUT ({incoming})"));
            self.closed = Some(incoming.clone());
            return Some(Incoming::Closed(incoming));
        }
    }

    /// Waits `period` and requires the connection to stay open. Messages that arrive are kept
    /// for the following `expect` calls.
    pub(crate) async fn stays_open(&mut self, period: Duration) -> Step<()> {
        let deadline = Instant::now() + period;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                None => {
                    self.note(format!(
                        "still open after waiting {:.1} s",
                        period.as_secs_f64()
                    ));
                    return Ok(());
                }
                Some(Incoming::Closed(reason)) => {
                    return Err(format!(
                        "{} the DUT closed while the connection had to stay open ({reason})",
                        self.stamp()
                    ));
                }
                Some(Incoming::Message(bytes)) => self.keep(bytes),
            }
        }
    }

    fn keep(&mut self, bytes: Vec<u8>) {
        match decode(&bytes) {
            Ok(message) => self.stash.push_back((bytes, message)),
            Err(error) => self.refused(&bytes, &error),
        }
    }

    /// Waits up to `within` for a message matching `want` (described as `what`). Messages that
    /// do not match are kept for later calls; a close or the deadline fails the step.
    pub(crate) async fn expect(
        &mut self,
        what: &str,
        within: Duration,
        want: impl Fn(&ShipMessage) -> bool,
    ) -> Step<ShipMessage> {
        if let Some(i) = self.stash.iter().position(|(_, m)| want(m))
            && let Some((_, message)) = self.stash.remove(i)
        {
            return Ok(message);
        }
        let since = self.undecodable.len();
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                None => {
                    let failure = format!(
                        "{} no {what} within {:.1} s",
                        self.stamp(),
                        within.as_secs_f64()
                    );
                    return Err(self.with_undecodable(failure, since));
                }
                Some(Incoming::Closed(reason)) => {
                    let failure = format!(
                        "{} the DUT closed before sending {what} ({reason})",
                        self.stamp()
                    );
                    return Err(self.with_undecodable(failure, since));
                }
                Some(Incoming::Message(bytes)) => match decode(&bytes) {
                    Ok(message) if want(&message) => return Ok(message),
                    Ok(message) => self.stash.push_back((bytes, message)),
                    Err(error) => self.refused(&bytes, &error),
                },
            }
        }
    }

    /// Requires the DUT to close within `within` and returns every message it sent first
    /// (including ones received earlier and not yet consumed).
    pub(crate) async fn expect_closed(&mut self, within: Duration) -> Step<Vec<Vec<u8>>> {
        let mut before: Vec<Vec<u8>> = self.stash.drain(..).map(|(b, _)| b).collect();
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                None => {
                    return Err(format!(
                        "{} the DUT did not close within {:.1} s",
                        self.stamp(),
                        within.as_secs_f64()
                    ));
                }
                Some(Incoming::Closed(_)) => return Ok(before),
                Some(Incoming::Message(bytes)) => before.push(bytes),
            }
        }
    }

    /// True if a message matching `want` arrived and was kept (not consumed by `expect`).
    pub(crate) fn has_kept(&self, want: impl Fn(&ShipMessage) -> bool) -> bool {
        self.stash.iter().any(|(_, m)| want(m))
    }

    /// Closes the connection from the tool's side (end of a case).
    pub(crate) async fn finish(&mut self) {
        if self.closed.is_none() {
            self.link.close().await;
        }
    }
}

/// True for a `connectionHello` with `phase`.
pub(crate) fn is_hello(message: &ShipMessage, phase: HelloPhase) -> bool {
    matches!(message, ShipMessage::ConnectionHello(ConnectionHello { phase: p, .. }) if *p == phase)
}

#[cfg(test)]
mod tests {
    use super::show;

    #[test]
    fn bytes_are_shown_as_type_byte_and_json_or_as_hex() {
        assert_eq!(show(&[0x00, 0x00]), "00 00");
        assert_eq!(show(&[0xFF, 0x00]), "FF 00");
        assert_eq!(show(&[0x02]), "02");
        assert_eq!(show(b"\x01{\"a\":1}"), "01 {\"a\":1}");
        let pin = show(b"\x01{\"connectionPinInput\":[{\"pin\":\"5555AAAAFF\"}]}");
        assert!(!pin.contains("5555"), "{pin}");
        let long = [&[0x02][..], "x".repeat(500).as_bytes()].concat();
        assert!(show(&long).ends_with('…'));
        assert!(show(&long).len() < 200);
    }

    #[test]
    fn control_characters_and_invalid_utf8_are_escaped_not_dropped() {
        assert_eq!(
            show(b"\x03{\"reason\":\"a\nb\x1b\"}\xff\xfe"),
            "03 {\"reason\":\"a\\nb\\u{1b}\"}\\xFF\\xFE"
        );
        assert_eq!(show("\x01ü".as_bytes()), "01 ü");
        // Bounded whatever the content: 160 characters, escapes counted as one.
        let noise = [&[0x01][..], &[0xFF; 400][..]].concat();
        let shown = show(&noise);
        assert!(shown.ends_with('…'), "{shown}");
        assert_eq!(shown.matches("\\xFF").count(), 160);
    }
}
