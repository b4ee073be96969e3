//! The gateway's [`Callbacks`]: every event goes to the [`EventLog`]; pairing requests are
//! accepted at once with auto-accept, asked on the terminal prompt (when there is one), or
//! refused at once; `--echo` answers data.

use std::sync::mpsc;
use std::sync::{Arc, OnceLock};

use ship_hub::discovery::VisibleService;
use ship_hub::hub::{
    Callbacks, Delivery, DisconnectReason, Hub, PairingDecision, PairingRequest,
    PairingServiceEvent, PinDecision, PinRequest, StateDetail,
};
use ship_hub::protocol::ConnectionState;
use ship_hub::transport::TlsSuite;
use ship_hub::{ShipId, Ski};

use crate::events::{Event, EventLog, ServiceRow, instance_label};
use crate::prompt::{PairingPrompt, PinAsk};

/// The gateway's callbacks.
pub(crate) struct GatewayCallbacks {
    pub(crate) log: Arc<EventLog>,
    /// Set right after the hub started (callbacks only need it once peers connect).
    pub(crate) hub: Arc<OnceLock<Hub>>,
    /// The terminal prompt, when stdin is a terminal and prompting is on.
    pub(crate) prompt: Option<mpsc::Sender<PairingPrompt>>,
    /// Auto-accept is on. The hub then pairs every peer as it connects, before any question;
    /// a request that reaches the callbacks anyway (the hub could not store the pairing then)
    /// is accepted through the same decision.
    pub(crate) auto_accept: bool,
    /// Answer every data message with the same payload (test aid).
    pub(crate) echo: bool,
    /// Where the SHIP Pairing Service's replay guard is stored after each accepted request.
    pub(crate) replay_file: Option<std::path::PathBuf>,
}

/// What the gateway answers a pairing request: accept with auto-accept, ask when there is a
/// terminal to ask on, refuse otherwise.
fn decision(auto_accept: bool, prompting: bool) -> PairingDecision {
    if auto_accept {
        PairingDecision::Accept
    } else if prompting {
        PairingDecision::Ask
    } else {
        PairingDecision::Refuse
    }
}

impl GatewayCallbacks {
    /// The name a peer announces over mDNS, if it is visible.
    fn announced_name(&self, ski: Ski) -> Option<String> {
        let hub = self.hub.get()?;
        hub.visible_services()
            .into_iter()
            .find(|s| s.ski == ski)
            .and_then(|s| s.instances.first().map(|i| instance_label(i)))
    }

    /// The TLS cipher suite of the peer's active connection: the one in data exchange (the
    /// first live one if none is there yet).
    fn tls_suite_of(&self, ski: Ski) -> Option<TlsSuite> {
        let connections = self.hub.get()?.connections(ski);
        connections
            .iter()
            .find(|c| c.state == ConnectionState::Completed && !c.closing)
            .or_else(|| connections.iter().find(|c| !c.closing))
            .and_then(|c| c.tls_suite)
    }
}

impl GatewayCallbacks {
    /// Persists the Pairing Service's replay guard; a failure is a warning (the guard in memory
    /// still holds until the next restart).
    fn store_replay_history(&self) {
        let (Some(path), Some(hub)) = (&self.replay_file, self.hub.get()) else {
            return;
        };
        if let Err(error) =
            crate::data_dir::store_replay_history(path, &hub.pairing_replay_history())
        {
            self.log.emit(Event::Warning {
                message: format!(
                    "cannot store the pairing replay guard {}: {error}",
                    path.display()
                ),
            });
        }
    }
}

impl Callbacks for GatewayCallbacks {
    fn state_changed(&self, ski: Ski, state: ConnectionState, detail: &StateDetail) {
        self.log.emit(Event::State {
            ski: ski.to_string(),
            state: format!("{state:?}"),
            detailed: detail.detailed.map(|d| format!("{d:?}")),
            error: detail.error.clone(),
        });
    }

    fn connected(&self, ski: Ski, ship_id: Option<&ShipId>) {
        self.log.emit(Event::Connected {
            ski: ski.to_string(),
            ship_id: ship_id.map(|s| s.to_string()),
            tls_suite: self.tls_suite_of(ski).map(|s| s.name().to_owned()),
        });
    }

    fn disconnected(&self, ski: Ski, reason: &DisconnectReason) {
        self.log.emit(Event::Disconnected {
            ski: ski.to_string(),
            reason: reason.to_string(),
        });
    }

    fn pairing_requested(&self, request: &PairingRequest) -> PairingDecision {
        let name = request.instance_name.as_deref().map(instance_label);
        let decided = decision(self.auto_accept, self.prompt.is_some());
        // The event goes out before the question is asked, so it always precedes the answer.
        self.log.emit(Event::PairingRequested {
            ski: request.ski.to_string(),
            address: request.address,
            name: name.clone(),
            decision: match decided {
                PairingDecision::Accept => "accepted",
                PairingDecision::Ask => "asking",
                _ => "refused",
            }
            .into(),
        });
        let Some(prompt) = self
            .prompt
            .as_ref()
            .filter(|_| decided == PairingDecision::Ask)
        else {
            return decided;
        };
        let asked = prompt
            .send(PairingPrompt {
                ski: request.ski,
                address: request.address,
                name,
                brand: request.brand.clone(),
                model: request.model.clone(),
                device_type: request.device_type.clone(),
                pin: None,
            })
            .is_ok();
        if asked {
            PairingDecision::Ask
        } else {
            self.log.emit(Event::Warning {
                message: format!("the pairing prompt is gone: {} refused", request.ski),
            });
            PairingDecision::Refuse
        }
    }

    /// The `data` line holds the peer's inbound budget until it is written: a stdout that is
    /// not read holds the peer back (docs/gateway.md, "Output").
    fn data_delivered(&self, delivery: Delivery) {
        let ski = delivery.ski();
        let (payload, token) = delivery.into_parts();
        self.log.emit_data(
            Event::Data {
                ski: ski.to_string(),
                bytes: payload.len(),
            },
            token,
        );
        if self.echo
            && let Some(hub) = self.hub.get()
        {
            match hub.send_data(ski, &payload) {
                Ok(()) => self.log.emit(Event::DataSent {
                    ski: ski.to_string(),
                    bytes: payload.len(),
                }),
                Err(error) => self.log.emit(Event::Warning {
                    message: format!("echo to {ski}: {error}"),
                }),
            }
        }
    }

    fn visible_services_changed(&self, services: &[VisibleService]) {
        self.log.emit(Event::VisibleServices {
            services: services.iter().map(ServiceRow::of).collect(),
        });
    }

    /// A peer requires a PIN the gateway does not have (none stored with the pairing): asked on
    /// the terminal when there is one, refused otherwise. The PIN never reaches the event log.
    fn pin_requested(&self, request: &PinRequest) -> PinDecision {
        let asking = self.prompt.is_some();
        self.log.emit(Event::Warning {
            message: format!(
                "{} requires a PIN{}: {}",
                request.ski,
                if request.rejected {
                    " (the one sent was wrong)"
                } else {
                    ""
                },
                if asking {
                    "asking on the terminal"
                } else {
                    "refused (no terminal to ask; see docs/pairing.md, \"PIN verification\")"
                }
            ),
        });
        let Some(prompt) = &self.prompt else {
            return PinDecision::Refuse;
        };
        let address = self
            .hub
            .get()
            .and_then(|hub| hub.connections(request.ski).first().map(|c| c.remote))
            .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        let asked = prompt
            .send(PairingPrompt {
                ski: request.ski,
                address,
                name: self.announced_name(request.ski),
                brand: None,
                model: None,
                device_type: None,
                pin: Some(PinAsk {
                    rejected: request.rejected,
                }),
            })
            .is_ok();
        if asked {
            PinDecision::Ask
        } else {
            PinDecision::Refuse
        }
    }

    fn pin_attempt_failed(&self, ski: Ski, attempts: u32, penalty: Option<std::time::Duration>) {
        self.log.emit(Event::Warning {
            message: format!(
                "{ski} sent a wrong PIN ({attempts} in a row){}",
                penalty.map_or(String::new(), |p| format!(
                    "; no PIN accepted for {} s",
                    p.as_secs()
                ))
            ),
        });
    }

    fn ship_id_learned(&self, ski: Ski, ship_id: &ShipId) {
        self.log.emit(Event::ShipId {
            ski: ski.to_string(),
            ship_id: ship_id.to_string(),
        });
    }

    fn pairing_service(&self, event: &PairingServiceEvent) {
        let event = match event {
            PairingServiceEvent::PairedByService {
                ski,
                ship_id,
                displaced,
            } => Event::PairedByService {
                ski: ski.to_string(),
                ship_id: ship_id.to_string(),
                displaced: displaced.map(|d| d.to_string()),
            },
            PairingServiceEvent::RequestAccepted {
                instance,
                ship_id,
                fingerprint,
            } => {
                self.store_replay_history();
                Event::PairingServiceRequest {
                    instance: instance.clone(),
                    ship_id: ship_id.to_string(),
                    fingerprint: fingerprint.to_string(),
                }
            }
            PairingServiceEvent::RequestRefused { instance, error } => {
                Event::PairingServiceRefused {
                    instance: instance.clone(),
                    reason: error.to_string(),
                }
            }
            // The gateway never asks to be paired itself.
            _ => return,
        };
        self.log.emit(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_accept_accepts_a_terminal_asks_and_otherwise_refuses() {
        assert_eq!(decision(true, false), PairingDecision::Accept);
        assert_eq!(decision(true, true), PairingDecision::Accept);
        assert_eq!(decision(false, true), PairingDecision::Ask);
        assert_eq!(decision(false, false), PairingDecision::Refuse);
    }
}
