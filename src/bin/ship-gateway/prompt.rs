//! Asking the user on the terminal whether to trust a peer that wants to pair.
//!
//! The hub's callbacks run on the tokio runtime and must not block, so
//! [`crate::callbacks::GatewayCallbacks`] hands each request to this thread and returns at once
//! (the peer waits in hello `pending`). The thread shows the peer's SKI and name, reads `y`/`n`
//! from stdin and answers with [`Hub::approve`] or [`Hub::deny`]. Only used when stdin is a
//! terminal.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use ship_hub::Ski;
use ship_hub::hub::Hub;

use crate::events::{Event, EventLog};

/// One question for the user.
#[derive(Debug)]
pub(crate) struct PairingPrompt {
    pub(crate) ski: Ski,
    pub(crate) address: SocketAddr,
    pub(crate) name: Option<String>,
}

/// `0123456789abcdef…` → `0123 4567 89ab …`, easier to compare with a device's display.
pub(crate) fn grouped(ski: Ski) -> String {
    let text = ski.to_string();
    text.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Starts the prompt thread; it ends when every sender is dropped or stdin closes.
pub(crate) fn start(
    hub: Arc<OnceLock<Hub>>,
    log: Arc<EventLog>,
) -> std::io::Result<mpsc::Sender<PairingPrompt>> {
    let (tx, rx) = mpsc::channel::<PairingPrompt>();
    std::thread::Builder::new()
        .name("pairing-prompt".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            let mut closed = false;
            for request in rx {
                let Some(hub) = hub.get() else { continue };
                let approve = if closed {
                    false
                } else {
                    log.exclusively(|| {
                        let mut err = std::io::stderr().lock();
                        let _ = writeln!(
                            err,
                            "\nPairing request from {} at {}\n  SKI {}\nCompare the SKI with \
                             the one the device shows. Trust this device? [y/N] ",
                            request.name.as_deref().unwrap_or("an unnamed device"),
                            request.address,
                            grouped(request.ski)
                        );
                        let _ = err.flush();
                    });
                    let mut answer = String::new();
                    match stdin.lock().read_line(&mut answer) {
                        Ok(0) | Err(_) => {
                            closed = true;
                            false
                        }
                        Ok(_) => matches!(answer.trim(), "y" | "Y" | "yes" | "YES" | "Yes"),
                    }
                };
                let result = if approve {
                    hub.approve(request.ski)
                } else {
                    hub.deny(request.ski)
                };
                match result {
                    Ok(()) if approve => log.emit(Event::Paired {
                        ski: request.ski.to_string(),
                        by: "prompt".into(),
                    }),
                    Ok(()) => log.emit(Event::Warning {
                        message: format!("pairing with {} refused", request.ski),
                    }),
                    Err(error) => log.emit(Event::Warning {
                        message: format!("answer for {} came too late: {error}", request.ski),
                    }),
                }
            }
        })?;
    Ok(tx)
}

#[cfg(test)]
mod tests {
    #[test]
    fn skis_are_shown_in_groups_of_four() {
        let ski: ship_hub::Ski = "0123456789abcdef0123456789abcdef01234567".parse().unwrap();
        assert_eq!(
            super::grouped(ski),
            "0123 4567 89ab cdef 0123 4567 89ab cdef 0123 4567"
        );
    }
}
