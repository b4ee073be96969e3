//! The tool's side of one connection: a scripted SHIP peer that sends hand-built bytes and
//! records, with timings, everything the device under test (DUT) sends back.
//!
//! Every step returns `Err(observation)` when the DUT does something the case does not allow;
//! the observation becomes the case's evidence. Times are relative to the moment the TLS and
//! WebSocket handshakes of this connection completed (the "after TLS" of the catalogue).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

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

/// One scripted connection to the DUT.
pub(crate) struct Peer {
    socket: ShipSocket<TcpStream>,
    start: Instant,
    log: Vec<String>,
    stash: VecDeque<(Vec<u8>, ShipMessage)>,
    closed: Option<String>,
    label: &'static str,
}

/// A short, printable form of SHIP bytes: the type byte in hex, then the JSON text (cut at 160
/// characters), or all bytes in hex when there is no JSON. A `connectionPinInput` is shown
/// without its PIN.
pub(crate) fn show(bytes: &[u8]) -> String {
    match bytes.split_first() {
        Some((kind, rest)) if rest.len() > 1 => {
            let text = String::from_utf8_lossy(rest);
            // A PIN never reaches the report, whichever side sent it.
            if text.contains("connectionPinInput") {
                return format!("{kind:02X} connectionPinInput (PIN redacted)");
            }
            let mut text: String = text.chars().filter(|c| !c.is_control()).collect();
            if text.len() > 160 {
                let mut end = 160;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.truncate(end);
                text.push('…');
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
        Peer {
            socket,
            start: Instant::now(),
            log: Vec::new(),
            stash: VecDeque::new(),
            closed: None,
            label,
        }
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
        self.socket
            .send(bytes.to_vec())
            .await
            .map_err(|e| format!("{} sending failed: {e}", self.stamp()))
    }

    /// The next thing the DUT does within `within`; `None` when nothing happened. Pings are
    /// answered by the transport and not reported.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<Incoming> {
        if let Some(reason) = &self.closed {
            return Some(Incoming::Closed(reason.clone()));
        }
        let deadline = Instant::now() + within;
        loop {
            let event = match tokio::time::timeout_at(deadline, self.socket.next_event()).await {
                Err(_) => return None,
                Ok(event) => event,
            };
            let incoming = match event {
                Ok(SocketEvent::Message(bytes)) => {
                    self.note(format!("← {}", show(&bytes)));
                    return Some(Incoming::Message(bytes));
                }
                Ok(SocketEvent::Closed { code, reason }) => {
                    format!("WebSocket close {code:?} {reason:?}")
                }
                Err(error) => format!("connection ended: {error}"),
                // Pongs, and any event a later transport adds, are not the DUT's messages.
                Ok(_) => continue,
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
            Err(error) => self.note(format!("(undecodable: {error})")),
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
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                None => {
                    return Err(format!(
                        "{} no {what} within {:.1} s",
                        self.stamp(),
                        within.as_secs_f64()
                    ));
                }
                Some(Incoming::Closed(reason)) => {
                    return Err(format!(
                        "{} the DUT closed before sending {what} ({reason})",
                        self.stamp()
                    ));
                }
                Some(Incoming::Message(bytes)) => match decode(&bytes) {
                    Ok(message) if want(&message) => return Ok(message),
                    Ok(message) => self.stash.push_back((bytes, message)),
                    Err(error) => self.note(format!("(undecodable: {error})")),
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
            let _ = self.socket.close(1000, "ship-conformance: case done").await;
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
}
