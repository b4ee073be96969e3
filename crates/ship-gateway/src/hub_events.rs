//! The gateway's one view of its hub: the stream of [`HubEvent`]s, read by one task
//! ([`follow`]) that feeds the event log (and through it the API's event bus), the API's and
//! the console's live state ([`Live`]: peers' states, waiting requests and PIN waits, the last
//! admission refusal), the terminal prompt and our own Pairing Service request. The stream is
//! subscribed before the hub runs anything (`Hub::start_with_events`) and is unbounded (the
//! gateway raises `Limits::max_queued_events`): it never lags, so every happening of the hub is
//! said, in the hub's order (the event log coalesces a slow stdout's lines as it always did).
//!
//! The hub still asks for two decisions synchronously: the [`Decider`] answers them from the
//! gateway's own state (auto-accept, whether anybody can be asked, the devices a person denied
//! or unpaired) and never touches the hub. Pairing requests are accepted at once with
//! auto-accept, asked on the terminal prompt (when there is one) and over the API (`--http`,
//! `--ask`), or refused at once, saying how to pair the device; a device that a person denied
//! (or unpaired, for the cooling-off period) is refused in one line; a PIN a paired device
//! requires is asked for everywhere it can be answered; `--echo` answers data.

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use ship_hub::discovery::VisibleService;
use ship_hub::hub::{
    AdmissionCap, AdmissionRefusal, Callbacks, Delivery, EndCause, Hub, HubEvent, HubEvents,
    PairingDecision, PairingRequest, PairingServiceEvent, PinDecision, PinRequest, StateDetail,
};
use ship_hub::protocol::ConnectionState;
use ship_hub::transport::TlsSuite;
use ship_hub::{ShipId, Ski};

use crate::api::live::{LastRefusal, Live, Refusal, now_ms};
use crate::events::{Event, EventLog, ServiceRow, instance_label};
use crate::prompt::{PairingPrompt, PinAsk};
use crate::throttle::Throttle;

/// Wrong-PIN warnings shown per key and in all per this interval.
pub(crate) const PIN_WARNING_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
/// At most this many wrong-PIN warnings per [`PIN_WARNING_INTERVAL`] in all.
pub(crate) const PIN_WARNINGS_PER_INTERVAL: usize = 10;

/// The most decisions noted for the events task at once ([`Notes`]); never reached while the
/// task reads the stream (one note per request, taken as its event is read).
const MAX_NOTES: usize = 4096;

/// The gateway's name of an admission cap: its configuration key (`[limits]` in the file, the
/// `--max-…` flag), which differs from the library's field name for two of them.
pub(crate) fn cap_key(cap: AdmissionCap) -> &'static str {
    match cap {
        AdmissionCap::HandshakesInProgress => "max_handshakes",
        AdmissionCap::UnpairedConnections => "max_unpaired",
        other => other.limit_name(),
    }
}

/// The warning for refused connections: what refused them, and what to do about it.
fn refusal_message(refusal: &AdmissionRefusal) -> String {
    let hint = match refusal.cap {
        AdmissionCap::UnpairedConnections | AdmissionCap::UnpairedPerAddress => {
            "; devices that are not paired yet hold these slots while they wait: approve or \
             deny the waiting requests (`ship-gateway status`), or wait for them to time out"
        }
        _ => "",
    };
    format!(
        "refused {} incoming connection{} from {} since the last report: {} (limit {}){hint}",
        refusal.refused,
        if refusal.refused == 1 { "" } else { "s" },
        refusal.address,
        refusal.cap,
        cap_key(refusal.cap),
    )
}

/// The last list of visible services reported, to print a list only when it differs.
#[derive(Default)]
pub(crate) struct LastVisible(std::sync::Mutex<Option<Vec<ServiceRow>>>);

impl LastVisible {
    /// Whether `rows` differ from the last list (and remembers them).
    fn changed(&self, rows: &[ServiceRow]) -> bool {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if last.as_deref() == Some(rows) {
            return false;
        }
        *last = Some(rows.to_vec());
        true
    }
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

/// What the [`Decider`] saw when it refused a device without asking (a person denied it, or it
/// cools off after an unpair), for the events task to say: the words depend on the gateway's
/// state at decision time. One note per pairing request, in the order of the requests (the
/// order of their [`HubEvent::PairingRequested`]).
#[derive(Default)]
pub(crate) struct Notes(Mutex<VecDeque<(Ski, Option<Refusal>)>>);

impl Notes {
    fn push(&self, ski: Ski, refusal: Option<Refusal>) {
        let mut notes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if notes.len() >= MAX_NOTES {
            notes.pop_front();
        }
        notes.push_back((ski, refusal));
    }

    /// The note of the request of `ski` whose event is read now.
    fn take(&self, ski: Ski) -> Option<Refusal> {
        let mut notes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let at = notes.iter().position(|(s, _)| *s == ski)?;
        notes.remove(at).and_then(|(_, refusal)| refusal)
    }
}

/// The hub's callbacks: only the two decisions the hub waits for. Everything else the gateway
/// hears from its event stream ([`follow`]). It never calls the hub (it answers from within
/// the hub's dispatcher).
pub(crate) struct Decider {
    /// The devices refused without asking (denied, cooling off).
    pub(crate) live: Arc<Live>,
    /// Auto-accept is on. The hub then pairs every peer as it connects, before any question;
    /// a request that reaches the decider anyway (the hub could not store the pairing then)
    /// is accepted through the same decision.
    pub(crate) auto_accept: bool,
    /// Somebody can be asked: the terminal prompt runs, or the API (`--http`, `--ask`) lists
    /// the waiting requests.
    pub(crate) asking: bool,
    /// What the events task is to say about each request.
    pub(crate) notes: Arc<Notes>,
}

impl Callbacks for Decider {
    fn pairing_requested(&self, request: &PairingRequest) -> PairingDecision {
        // A device a person denied is refused without asking until a person pairs it; one
        // unpaired is refused for the cooling-off period (it still trusts us and redials).
        if let Some(refusal) = self.live.refusal(&request.ski) {
            self.notes.push(request.ski, Some(refusal));
            return PairingDecision::Refuse;
        }
        self.notes.push(request.ski, None);
        decision(self.auto_accept, self.asking)
    }

    /// A paired peer requires a PIN the gateway does not have: it waits (up to `pin_wait`) for
    /// a person ([`Follower`] asks).
    fn pin_requested(&self, _request: &PinRequest) -> PinDecision {
        PinDecision::Ask
    }
}

/// The one reader of the hub's event stream.
pub(crate) struct Follower {
    /// The hub, for what an event does not carry (a peer's TLS suite, its announced name) and
    /// for `--echo`.
    pub(crate) hub: Hub,
    /// Where every event is said (stdout, and the API's event bus).
    pub(crate) log: Arc<EventLog>,
    /// The terminal prompt, when stdin is a terminal and prompting is on.
    pub(crate) prompt: Option<mpsc::Sender<PairingPrompt>>,
    /// Answer every data message with the same payload (test aid).
    pub(crate) echo: bool,
    /// Where the SHIP Pairing Service's replay guard is stored after each accepted request.
    pub(crate) replay_file: Option<std::path::PathBuf>,
    /// Peers' latest states and the waiting pairing requests, for the HTTP API.
    pub(crate) live: Arc<Live>,
    /// Pairing requests wait for a decision over the HTTP API even without a terminal.
    pub(crate) ask_over_http: bool,
    /// The last `visible_services` list printed.
    pub(crate) last_visible: LastVisible,
    /// Our own SHIP Pairing Service request (this gateway as the control unit).
    pub(crate) pairing_request: Arc<crate::pairing_request::PairingRequests>,
    /// Wrong-PIN warnings: one line per key and minute, ten a minute in all.
    pub(crate) pin_warnings: Throttle,
    /// The command line that reaches this gateway as its user, e.g. `sudo -u ship-gateway
    /// ship-gateway` under the packaged service: how to pair a device or give its PIN.
    pub(crate) command: String,
    /// What the decider saw.
    pub(crate) notes: Arc<Notes>,
}

/// The name a peer announces over mDNS, if it is visible.
fn announced_name(hub: &Hub, ski: Ski) -> Option<String> {
    hub.visible_services()
        .into_iter()
        .find(|s| s.ski == ski)
        .and_then(|s| s.instances.first().map(|i| instance_label(i)))
}

/// Stores the name a just approved device announces over mDNS with its pairing, unless the
/// pairing has a name already: the device is then known by that name after a restart too, and
/// wherever the gateway shows it.
pub(crate) fn remember_announced_name(hub: &Hub, ski: Ski) {
    if hub.pairing(ski).is_some_and(|p| p.name.is_none())
        && let Some(name) = announced_name(hub, ski)
    {
        let _ = hub.pair(ship_hub::hub::PairedPeer::new(ski).with_name(name));
    }
}

/// Reads `events` until the hub has shut down and every event was handled.
pub(crate) async fn follow(follower: Follower, mut events: HubEvents) {
    while let Some(event) = events.next().await {
        follower.handle(event);
    }
}

impl Follower {
    /// The name a person knows a paired device by: the one stored with its pairing, else the
    /// one it announces over mDNS, else its SHIP ID.
    fn device_name(&self, ski: Ski) -> Option<String> {
        let stored = self.hub.pairing(ski);
        stored
            .as_ref()
            .and_then(|p| p.name.clone())
            .or_else(|| announced_name(&self.hub, ski))
            .or_else(|| stored.and_then(|p| p.ship_id.map(|id| id.to_string())))
    }

    /// The TLS cipher suite of the peer's active connection: the one in data exchange (the
    /// first live one if none is there yet).
    fn tls_suite_of(&self, ski: Ski) -> Option<TlsSuite> {
        let connections = self.hub.connections(ski);
        connections
            .iter()
            .find(|c| c.state == ConnectionState::Completed && !c.closing)
            .or_else(|| connections.iter().find(|c| !c.closing))
            .and_then(|c| c.tls_suite)
    }
}

impl Follower {
    /// Persists the Pairing Service's replay guard; a failure is a warning (the guard in memory
    /// still holds until the next restart).
    fn store_replay_history(&self) {
        let Some(path) = &self.replay_file else {
            return;
        };
        if let Err(error) =
            crate::data_dir::store_replay_history(path, &self.hub.pairing_replay_history())
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

impl Follower {
    /// Handles one event of the hub.
    fn handle(&self, event: HubEvent) {
        match event {
            HubEvent::StateChanged { ski, state, detail } => {
                self.state_changed(ski, state, &detail);
            }
            HubEvent::Connected { ski, ship_id } => self.connected(ski, ship_id.as_ref()),
            HubEvent::Disconnected { ski, reason } => self.disconnected(ski, &reason),
            HubEvent::PairingRequested { request, decision } => {
                self.pairing_requested(&request, decision);
            }
            HubEvent::Data(delivery) => self.data_delivered(delivery),
            HubEvent::ShipIdLearned { ski, ship_id } => self.ship_id_learned(ski, &ship_id),
            HubEvent::PinRequested { request, .. } => self.pin_requested(&request),
            HubEvent::PinAttemptFailed {
                ski,
                attempts,
                penalty,
            } => self.pin_attempt_failed(ski, attempts, penalty),
            HubEvent::VisibleServices(services) => self.visible_services_changed(&services),
            HubEvent::AdmissionRefused(refusal) => self.admission_refused(&refusal),
            HubEvent::PairingService(event) => self.pairing_service(&event),
            HubEvent::TrustStoreFailed(error) => self.log.emit(Event::Warning {
                message: format!(
                    "the pairings could not be saved: {error}. They stay in effect while the \
                     gateway runs and are saved with their next change; a restart before that \
                     loses them"
                ),
            }),
            // Never with the gateway's unbounded stream; said should it ever happen.
            HubEvent::Lagged { missed } => self.log.emit(Event::Warning {
                message: format!(
                    "{missed} events of the hub were not shown (the gateway fell behind)"
                ),
            }),
            _ => {}
        }
    }

    fn state_changed(&self, ski: Ski, state: ConnectionState, detail: &StateDetail) {
        let detailed = detail.detailed.map(|d| format!("{d:?}"));
        let tls_suite = (state == ConnectionState::Completed)
            .then(|| self.tls_suite_of(ski).map(|s| s.name().to_owned()))
            .flatten();
        // Our own hello wait ran out (nobody answered), or the handshake's backstop.
        let timed_out = matches!(
            &detail.failure,
            Some(EndCause::Protocol(cause)) if cause.is_timeout()
        ) || matches!(detail.failure, Some(EndCause::HandshakeDeadline));
        let error = detail.failure.as_ref().map(ToString::to_string);
        self.live.state(
            ski,
            state,
            detailed.clone(),
            error.clone(),
            tls_suite,
            timed_out,
        );
        self.pairing_request.state(ski, state, error.as_deref());
        // A device refused without asking (denied, or cooling off after an unpair) is said in
        // one line per request (`pairing_requested`), not with the states of each attempt.
        if self.live.is_refused(&ski) {
            return;
        }
        self.log.emit(Event::State {
            ski: ski.to_string(),
            state: format!("{state:?}"),
            detailed,
            error,
        });
    }

    fn connected(&self, ski: Ski, ship_id: Option<&ShipId>) {
        let tls_suite = self.tls_suite_of(ski).map(|s| s.name().to_owned());
        self.live.connected(ski, tls_suite.clone());
        self.log.emit(Event::Connected {
            ski: ski.to_string(),
            ship_id: ship_id.map(|s| s.as_str().to_owned()),
            tls_suite,
        });
        self.pairing_request.connected(ski);
    }

    fn disconnected(&self, ski: Ski, reason: &EndCause) {
        self.pairing_request.disconnected(ski);
        self.log.emit(Event::Disconnected {
            ski: ski.to_string(),
            reason: reason.to_string(),
        });
    }

    /// A pairing request and the decider's answer: said in one line (a device refused without
    /// asking: one line per request if denied, once if cooling off), listed for the API while
    /// it waits, and asked on the terminal.
    fn pairing_requested(&self, request: &PairingRequest, decided: PairingDecision) {
        let name = request.instance_name.as_deref().map(instance_label);
        let ski = request.ski;
        if let Some(refusal) = self.notes.take(ski) {
            let reason = match refusal {
                Refusal::Denied { at_ms } => Some(format!(
                    "denied here on {} UTC: refused without asking until it is paired; \
                     `{} pair {ski}` trusts it",
                    crate::commands::utc(
                        std::time::UNIX_EPOCH + std::time::Duration::from_millis(at_ms)
                    ),
                    self.command
                )),
                Refusal::CoolingOff { left, first: true } => Some(format!(
                    "unpaired here: refused without asking for another {} s (cooling_off); \
                     `{} pair {ski}` trusts it again at once",
                    left.as_secs(),
                    self.command
                )),
                Refusal::CoolingOff { first: false, .. } => None,
            };
            if let Some(reason) = reason {
                self.log.emit(Event::PairingRequested {
                    ski: ski.to_string(),
                    address: request.address,
                    name,
                    decision: "refused".into(),
                    reason: Some(reason),
                });
            }
            return;
        }
        if decided == PairingDecision::Ask {
            // Listed for the HTTP API (and its console) until decided or over.
            self.live.request(
                ski,
                request.address,
                name.clone(),
                ship_hub::protocol::ProtocolConfig::default().hello_init,
            );
        }
        // Nobody is asked (no terminal, no `ask`, no console): say how to pair it.
        let reason = (decided == PairingDecision::Refuse).then(|| {
            format!(
                "nobody is asked here (no terminal, `ask` is off, no console): to trust it, run \
                 `{} pair {ski}`, or approve it on the console (`http`), or set `ask = true` \
                 and run `{} approve {ski}` while it asks",
                self.command, self.command
            )
        });
        // The event goes out before the question is asked, so it always precedes the answer.
        self.log.emit(Event::PairingRequested {
            ski: ski.to_string(),
            address: request.address,
            name: name.clone(),
            decision: match decided {
                PairingDecision::Accept => "accepted",
                PairingDecision::Ask => "asking",
                _ => "refused",
            }
            .into(),
            reason,
        });
        let Some(prompt) = self
            .prompt
            .as_ref()
            .filter(|_| decided == PairingDecision::Ask)
        else {
            return;
        };
        let asked = prompt
            .send(PairingPrompt {
                ski,
                address: request.address,
                name,
                brand: request.brand.clone(),
                model: request.model.clone(),
                device_type: request.device_type.clone(),
                pin: None,
            })
            .is_ok();
        if !asked && !self.ask_over_http {
            // Nobody can answer it now: refused, as the decider would have.
            self.log.emit(Event::Warning {
                message: format!("the pairing prompt is gone: {ski} refused"),
            });
            let _ = self.hub.deny(ski);
        }
    }

    /// The `data` line holds the peer's inbound budget until it is written: a stdout that is
    /// not read holds the peer back (docs/gateway.md, "Output").
    fn data_delivered(&self, delivery: Delivery) {
        let ski = delivery.ski();
        let (payload, token) = delivery.into_parts();
        let embedded = std::str::from_utf8(&payload)
            .ok()
            .and_then(|text| serde_json::value::RawValue::from_string(text.to_owned()).ok());
        self.log.emit_data(
            Event::Data {
                ski: ski.to_string(),
                bytes: payload.len(),
                payload: embedded,
            },
            token,
        );
        if self.echo {
            match self.hub.send_data(ski, &payload) {
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
        let rows: Vec<ServiceRow> = services.iter().map(ServiceRow::of).collect();
        // The hub reports changes the gateway does not show (an address's order, a refreshed
        // announcement): a line that would repeat the last one is not printed.
        if self.last_visible.changed(&rows) {
            self.log.emit(Event::VisibleServices { services: rows });
        }
    }

    /// A paired peer requires a PIN the gateway does not have (none stored with the pairing,
    /// or the one sent was wrong). It waits (up to `pin_wait`) for a person: on the terminal
    /// when there is one, and always through `ship-gateway pair SKI --pin -` and the API
    /// (`status`, `watch` and the console show it). The PIN never reaches the event log.
    fn pin_requested(&self, request: &PinRequest) {
        let ski = request.ski;
        let name = self.device_name(ski);
        let wait = ship_hub::protocol::ProtocolConfig::default().pin_wait;
        self.live.pin_requested(ski, request.rejected, wait);
        let asked = self.prompt.as_ref().is_some_and(|prompt| {
            let address = self
                .hub
                .connections(ski)
                .first()
                .map(|c| c.remote)
                .unwrap_or_else(|| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
            prompt
                .send(PairingPrompt {
                    ski,
                    address,
                    name: name.clone(),
                    brand: None,
                    model: None,
                    device_type: None,
                    pin: Some(PinAsk {
                        rejected: request.rejected,
                    }),
                })
                .is_ok()
        });
        self.log.emit(Event::PinRequested {
            ski: ski.to_string(),
            name,
            rejected: request.rejected,
            wait_s: wait.as_secs(),
            answer: format!(
                "{}`{} pair {ski} --pin -`",
                if asked {
                    "type it on the terminal, or run "
                } else {
                    "run "
                },
                self.command
            ),
        });
    }

    /// One warning line per key and minute, ten a minute in all: a key an attacker makes
    /// every few guesses cannot flood the log (docs/pairing.md, "The penalty for wrong PINs").
    fn pin_attempt_failed(&self, ski: Ski, attempts: u32, penalty: Option<std::time::Duration>) {
        let Some(shown) = self
            .pin_warnings
            .allow(&ski.to_string(), std::time::Instant::now())
        else {
            return;
        };
        self.log.emit(Event::Warning {
            message: format!(
                "{ski} sent a wrong PIN ({attempts} in a row){}{}",
                penalty.map_or(String::new(), |p| format!(
                    "; no PIN accepted for {} s",
                    p.as_secs()
                )),
                shown.suffix("wrong PINs"),
            ),
        });
    }

    /// Connections refused by an admission cap (the hub reports each source at most once a
    /// minute, sixteen sources a minute in all): a warning, and the latest for `status`.
    fn admission_refused(&self, refusal: &AdmissionRefusal) {
        let message = refusal_message(refusal);
        self.live.record_refusal(LastRefusal {
            address: refusal.address,
            cap: cap_key(refusal.cap).to_owned(),
            reason: refusal.cap.to_string(),
            refused: refusal.refused,
            at_ms: now_ms(),
        });
        self.log.emit(Event::Warning { message });
    }

    fn ship_id_learned(&self, ski: Ski, ship_id: &ShipId) {
        self.log.emit(Event::ShipId {
            ski: ski.to_string(),
            ship_id: ship_id.as_str().to_owned(),
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
                ship_id: ship_id.as_str().to_owned(),
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
                    ship_id: ship_id.as_str().to_owned(),
                    fingerprint: fingerprint.to_string(),
                }
            }
            PairingServiceEvent::RequestRefused { instance, error } => {
                Event::PairingServiceRefused {
                    instance: instance.clone(),
                    reason: error.to_string(),
                }
            }
            PairingServiceEvent::RequestSettled => {
                self.pairing_request.settled();
                return;
            }
            _ => return,
        };
        self.log.emit(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finding (a new user): repeated identical `visible` lines.
    #[test]
    fn a_visible_list_is_reported_only_when_it_changed() {
        let row = |name: &str| ServiceRow {
            name: name.into(),
            ski: "0505050505050505050505050505050505050505".into(),
            ship_id: "id".into(),
            addresses: vec!["127.0.0.1:4711".into()],
            brand: None,
            model: None,
            device_type: None,
            register: false,
        };
        let last = LastVisible::default();
        assert!(last.changed(&[]), "the first list, even empty, is reported");
        assert!(!last.changed(&[]));
        assert!(last.changed(&[row("a")]));
        assert!(!last.changed(&[row("a")]), "the same again: not reported");
        assert!(last.changed(&[row("b")]));
        assert!(last.changed(&[]));
    }

    /// The decider answers from the gateway's own state alone, and leaves the events task a
    /// note per request saying why a device was refused without asking (the words depend on
    /// the state at decision time: a cooling-off is said once).
    #[test]
    fn the_decider_refuses_denied_and_cooling_off_devices_and_notes_why_per_request() {
        let live = Arc::new(Live::new(std::time::Duration::from_secs(60), None));
        let notes = Arc::new(Notes::default());
        let decider = Decider {
            live: live.clone(),
            auto_accept: false,
            asking: true,
            notes: notes.clone(),
        };
        let (denied, cooling, stranger) = (
            Ski::from_bytes([1; 20]),
            Ski::from_bytes([2; 20]),
            Ski::from_bytes([3; 20]),
        );
        live.denied(denied);
        live.start_cooling(cooling);
        let address = "127.0.0.1:4711".parse().unwrap();
        let ask = |ski| decider.pairing_requested(&PairingRequest::new(ski, address));
        assert_eq!(ask(stranger), PairingDecision::Ask);
        assert_eq!(ask(denied), PairingDecision::Refuse);
        assert_eq!(ask(cooling), PairingDecision::Refuse);
        assert_eq!(ask(cooling), PairingDecision::Refuse);
        assert_eq!(notes.take(stranger), None);
        assert!(matches!(notes.take(denied), Some(Refusal::Denied { .. })));
        assert!(matches!(
            notes.take(cooling),
            Some(Refusal::CoolingOff { first: true, .. })
        ));
        assert!(matches!(
            notes.take(cooling),
            Some(Refusal::CoolingOff { first: false, .. })
        ));
        assert_eq!(notes.take(cooling), None, "one note per request");
    }

    #[test]
    fn auto_accept_accepts_a_terminal_asks_and_otherwise_refuses() {
        assert_eq!(decision(true, false), PairingDecision::Accept);
        assert_eq!(decision(true, true), PairingDecision::Accept);
        assert_eq!(decision(false, true), PairingDecision::Ask);
        assert_eq!(decision(false, false), PairingDecision::Refuse);
    }
}
