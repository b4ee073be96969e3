//! A PIN-guessing attacker (issue 28, item 7), for tests and measurements on loopback only: it
//! dials a SHIP node that requires a PIN and auto-accepts new keys, makes a **new key every
//! `guesses_per_key` wrong PINs**, one connection at a time, from one source address, for a
//! while. Built from the library's own pieces: `transport::dial` for TLS + WebSocket and the
//! sans-IO `protocol::Connection` as the SHIP client, which sends the next guess whenever the
//! node rejects one (and waits, as SHIP asks, while the node says `busy`).
//!
//! The guesses are `10000000`, `10000001`, … (hexadecimal): a node under test must use a PIN
//! outside that range (every test here uses one starting with `F`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ship_hub::identity::{CertificateSubject, Identity};
use ship_hub::protocol::{
    Connection, ConnectionParams, ConnectionState, Event, Pin, PinParams, ProtocolConfig, Role,
    Transmit, Trust,
};
use ship_hub::transport::{self, ShipTls, SocketEvent, TlsOptions, WsOptions};
use ship_hub::{ShipId, Ski};

/// What the attacker achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttackReport {
    /// Wrong PINs the node answered with `connectionPinError`.
    pub wrong_pins: u64,
    /// Keys (identities) used.
    pub keys: u64,
    /// Connections that reached the PIN step.
    pub connections: u64,
    /// Dials the node refused (HTTP 503, closed) or that failed.
    pub refused: u64,
    /// How long it ran.
    pub elapsed: Duration,
}

impl AttackReport {
    /// Wrong PINs per second.
    pub fn rate(&self) -> f64 {
        self.wrong_pins as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The `n`-th guess.
fn guess(n: u64) -> Pin {
    Pin::new(&format!("{:08X}", 0x1000_0000 + (n % 0x6FFF_FFFF))).expect("8 hex digits")
}

fn fresh_identity(n: u64) -> Identity {
    Identity::generate(&CertificateSubject {
        common_name: format!("pin-guesser-{n}"),
        organization: "ship-hub tests".into(),
        country: "DE".into(),
    })
    .expect("identity")
}

/// Guesses PINs at `target` (whose SKI is `target_ski`) for `duration`, with a new key every
/// `guesses_per_key` wrong PINs, one connection at a time.
pub async fn guess_pins(
    target: SocketAddr,
    target_ski: Ski,
    guesses_per_key: u64,
    duration: Duration,
) -> AttackReport {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + duration;
    let mut report = AttackReport::default();
    let ws = WsOptions::default();
    while tokio::time::Instant::now() < deadline {
        let identity = fresh_identity(report.keys);
        report.keys += 1;
        let tls = ShipTls::new(&identity, TlsOptions::default()).expect("TLS configuration");
        let dialled = tokio::time::timeout_at(
            deadline,
            transport::dial(&tls, target, target_ski, "/ship/", &ws),
        )
        .await;
        let Ok(Ok(socket)) = dialled else {
            report.refused += 1;
            // A refused dial (the strangers' slot of the last key not free yet): try again soon.
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        one_key(socket, guesses_per_key, deadline, &mut report).await;
    }
    report.elapsed = started.elapsed();
    report
}

/// One key's connection: the SHIP handshake up to the PIN step, then guesses until
/// `guesses_per_key` were rejected (or the node closed, or the deadline).
async fn one_key(
    mut socket: transport::ShipSocket<tokio::net::TcpStream>,
    guesses_per_key: u64,
    deadline: tokio::time::Instant,
    report: &mut AttackReport,
) {
    let now = || tokio::time::Instant::now().into_std();
    let mut engine = Connection::new(
        ConnectionParams {
            role: Role::Client,
            local_ship_id: ShipId::new("pin-guesser").expect("SHIP ID"),
            trust: Trust::Trusted,
            known_peer_ship_id: None,
            config: ProtocolConfig::default(),
        },
        now(),
    );
    let mut params = PinParams::default();
    params.peer_pin = Some(guess(report.wrong_pins));
    engine.set_pin(params);
    let mut wrong_here = 0;
    let mut in_pin_step = false;
    loop {
        while let Some(transmit) = engine.poll_transmit() {
            let sent = match transmit {
                Transmit::Message(bytes) => socket.send(bytes).await,
                Transmit::Close { code, reason } => socket.close(code, &reason).await,
            };
            if sent.is_err() {
                return;
            }
        }
        let mut handled = false;
        while let Some(event) = engine.poll_event() {
            handled = true;
            match event {
                Event::PinRequested { rejected: true } => {
                    report.wrong_pins += 1;
                    wrong_here += 1;
                    if wrong_here >= guesses_per_key {
                        let _ = socket.close(1000, "next key").await;
                        return;
                    }
                    engine.enter_pin(guess(report.wrong_pins), now());
                }
                Event::StateChanged { state, .. }
                    if !in_pin_step && state == ConnectionState::Pin =>
                {
                    in_pin_step = true;
                    report.connections += 1;
                }
                Event::Closed(_) => return,
                _ => {}
            }
        }
        if engine.is_closed() {
            return;
        }
        if handled {
            // What the events made the engine queue (the next guess) goes out first.
            continue;
        }
        let wake = engine
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or(deadline)
            .min(deadline);
        tokio::select! {
            event = socket.next_event() => match event {
                Ok(SocketEvent::Message(bytes)) => engine.handle_message(&bytes, now()),
                Ok(SocketEvent::Closed { .. }) | Err(_) => return,
                Ok(_) => {}
            },
            _ = tokio::time::sleep_until(wake) => {
                if tokio::time::Instant::now() >= deadline {
                    return;
                }
                engine.handle_timeout(now());
            }
        }
    }
}
