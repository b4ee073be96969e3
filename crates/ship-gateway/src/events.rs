//! What `run` reports: one line per event on stdout, human-readable or JSON (`--json`).
//!
//! The JSON schema is documented in `docs/gateway.md` ("Event stream") and kept stable: every
//! object has `"event"` (its kind) and `"ts_ms"` (milliseconds since the Unix epoch); new fields
//! may be added, existing ones keep their names and meaning.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use ship_hub::discovery::VisibleService;
use ship_hub::hub::DeliveryToken;

use crate::api::bus::EventBus;
use crate::escape::Escaped;

/// One service in a `visible_services` event or in `discover`'s output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ServiceRow {
    pub(crate) name: String,
    pub(crate) ski: String,
    pub(crate) ship_id: String,
    pub(crate) addresses: Vec<String>,
    pub(crate) brand: Option<String>,
    pub(crate) model: Option<String>,
    #[serde(rename = "type")]
    pub(crate) device_type: Option<String>,
    pub(crate) register: bool,
}

impl ServiceRow {
    pub(crate) fn of(service: &VisibleService) -> ServiceRow {
        let txt = &service.txt;
        ServiceRow {
            name: service
                .instances
                .first()
                .map(|i| instance_label(i))
                .unwrap_or_default(),
            ski: service.ski.to_string(),
            ship_id: txt.id.as_str().to_owned(),
            addresses: service.addresses.iter().map(|a| a.to_string()).collect(),
            brand: txt.brand.as_ref().map(|v| v.as_str().to_owned()),
            model: txt.model.as_ref().map(|v| v.as_str().to_owned()),
            device_type: txt.device_type.as_ref().map(|v| v.as_str().to_owned()),
            register: txt.register,
        }
    }
}

/// `Garage wallbox._ship._tcp.local.` → `Garage wallbox`.
pub(crate) fn instance_label(instance: &str) -> String {
    instance
        .strip_suffix("._ship._tcp.local.")
        .unwrap_or(instance)
        .replace("\\032", " ")
}

/// Something that happened, as reported on stdout.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub(crate) enum Event {
    /// The gateway is listening (always the first event).
    Listening {
        address: SocketAddr,
        /// Where the HTTP API and console are served (`null`: not served).
        http: Option<SocketAddr>,
        ski: String,
        ship_id: String,
        data_dir: String,
        mdns: bool,
        auto_accept: bool,
    },
    /// A peer's connection state changed (one of the ten SHIP states).
    State {
        ski: String,
        state: String,
        detailed: Option<String>,
        error: Option<String>,
    },
    /// A peer reached data exchange; `tls_suite` is the TLS cipher suite its connection
    /// negotiated (IANA name).
    Connected {
        ski: String,
        ship_id: Option<String>,
        tls_suite: Option<String>,
    },
    /// A connected peer is no longer connected.
    Disconnected { ski: String, reason: String },
    /// An unknown peer asks to be trusted; `decision` is `accepted` (auto-accept), `asking` (on
    /// the terminal, over the API) or `refused`; `reason` says why it is refused and how to pair
    /// it instead (`null` otherwise).
    PairingRequested {
        ski: String,
        address: SocketAddr,
        name: Option<String>,
        decision: String,
        reason: Option<String>,
    },
    /// A paired device requires a PIN the gateway does not have (`rejected`: the one sent was
    /// wrong); it waits up to `wait_s` seconds; `answer` says how to give it.
    PinRequested {
        ski: String,
        name: Option<String>,
        rejected: bool,
        wait_s: u64,
        answer: String,
    },
    /// A pairing was added (by `pair`, a prompt, or a static peer).
    Paired { ski: String, by: String },
    /// A pairing was removed by `unpair`.
    Unpaired { ski: String },
    /// A device paired itself through the SHIP Pairing Service (it knew this gateway's
    /// secret); `displaced` is the device it replaced (unpaired), if any.
    PairedByService {
        ski: String,
        ship_id: String,
        displaced: Option<String>,
    },
    /// A SHIP Pairing Service request for this gateway verified: the device is paired when it
    /// connects.
    PairingServiceRequest {
        instance: String,
        ship_id: String,
        fingerprint: String,
    },
    /// A SHIP Pairing Service request for this gateway was refused (`reason`: wrong secret,
    /// replay, malformed, a paired unit still reachable). At most one per second is reported.
    PairingServiceRefused { instance: String, reason: String },
    /// This gateway asks an energy manager to trust it through the SHIP Pairing Service (it is
    /// the control unit): its request is on the air (`pair --pairing-service`, or at start).
    PairingRequestAnnounced {
        ski: String,
        ship_id: String,
        fingerprint: String,
    },
    /// The energy manager of our request trusts this gateway: connected; the request is
    /// withdrawn for good once this connection has held `settles_in_s`.
    PairingRequestConnected { ski: String, settles_in_s: u64 },
    /// The energy manager of our request refused our connection (it does not trust this
    /// gateway yet); said once per request.
    PairingRequestRefused { ski: String, error: Option<String> },
    /// Our request settled: withdrawn for good, never announced again.
    PairingRequestSettled { ski: String },
    /// Our pending request was withdrawn before it settled (`reason`).
    PairingRequestWithdrawn { ski: String, reason: String },
    /// Our request could not be announced.
    PairingRequestFailed { ski: String, error: String },
    /// The SHIP services visible on the LAN changed.
    VisibleServices { services: Vec<ServiceRow> },
    /// A data message arrived: its size in bytes and the payload itself (JSON, embedded as
    /// it came; `null` in the unlikely case it is not valid JSON text).
    Data {
        ski: String,
        bytes: usize,
        payload: Option<Box<serde_json::value::RawValue>>,
    },
    /// A data message was sent on request of `ship-gateway send` or `--echo`.
    DataSent { ski: String, bytes: usize },
    /// A peer's SHIP ID became known.
    ShipId { ski: String, ship_id: String },
    /// A warning the operator should see (for example auto-accept on).
    Warning { message: String },
    /// Something that went as it should, worth a line (a PIN sent, a request answered
    /// elsewhere).
    Info { message: String },
    /// Stdout was not read fast enough: `count` events were dropped (warnings, `info`,
    /// `visible_services`, `data_sent`, refused Pairing Service requests) and `coalesced`
    /// lines of a device (`state`, `connected`, `disconnected`, `ship_id`) were replaced by a
    /// later line of the same kind and device (data and pairing events are never dropped). See
    /// docs/gateway.md, "Output".
    EventsDropped { count: u64, coalesced: u64 },
    /// A signal arrived: the phased shutdown starts.
    Stopping { signal: String },
    /// The shutdown finished (the last event).
    Stopped {
        connections_closed_in_time: bool,
        elapsed_ms: u128,
    },
}

impl Event {
    fn human(&self) -> String {
        match self {
            Event::Listening {
                address,
                http,
                ski,
                ship_id,
                data_dir,
                mdns,
                auto_accept,
            } => format!(
                "listening on {address} (SKI {ski}, SHIP ID {ship_id}, data dir {data_dir}, mDNS {}{}){}",
                if *mdns { "on" } else { "off" },
                if *auto_accept { ", AUTO-ACCEPT ON" } else { "" },
                http.map(|a| format!("; console at http://{a}/"))
                    .unwrap_or_default()
            ),
            Event::State {
                ski,
                state,
                detailed,
                error,
            } => {
                let mut line = format!("{ski} state {state}");
                if let Some(detailed) = detailed {
                    line.push_str(&format!(" ({detailed})"));
                    if let Some(words) = waiting_words(detailed) {
                        line.push_str(&format!(": {words}"));
                    }
                }
                if let Some(error) = error {
                    line.push_str(&format!(": {}", Escaped(error)));
                }
                line
            }
            Event::Connected {
                ski,
                ship_id,
                tls_suite,
            } => {
                let suite = match tls_suite {
                    Some(suite) => format!(", {suite}"),
                    None => String::new(),
                };
                match ship_id {
                    Some(id) => format!("{ski} connected (SHIP ID {}{suite})", Escaped(id)),
                    None => format!("{ski} connected ({})", suite.trim_start_matches(", ")),
                }
            }
            Event::Disconnected { ski, reason } => {
                format!("{ski} disconnected: {}", Escaped(reason))
            }
            Event::PairingRequested {
                ski,
                address,
                name,
                decision,
                reason,
            } => format!(
                "{ski} asks to pair from {address}{}: {decision}{}",
                name.as_ref()
                    .map(|n| format!(" ({})", Escaped(n)))
                    .unwrap_or_default(),
                reason
                    .as_ref()
                    .map(|r| format!(" ({})", Escaped(r)))
                    .unwrap_or_default()
            ),
            Event::PinRequested {
                ski,
                name,
                rejected,
                wait_s,
                answer,
            } => format!(
                "{ski}{} requires a PIN{}: {} (within {wait_s} s)",
                name.as_ref()
                    .map(|n| format!(" ({})", Escaped(n)))
                    .unwrap_or_default(),
                if *rejected {
                    " (the one sent was wrong)"
                } else {
                    ""
                },
                Escaped(answer)
            ),
            Event::Paired { ski, by } => format!("{ski} paired ({by})"),
            Event::Unpaired { ski } => format!("{ski} unpaired"),
            Event::PairedByService {
                ski,
                ship_id,
                displaced,
            } => format!(
                "{ski} paired by the SHIP Pairing Service (SHIP ID {}){}",
                Escaped(ship_id),
                displaced
                    .as_ref()
                    .map(|old| format!(", replacing {old} (unpaired)"))
                    .unwrap_or_default()
            ),
            Event::PairingServiceRequest {
                instance,
                ship_id,
                fingerprint,
            } => format!(
                "pairing request {} from SHIP ID {} verified: certificate {fingerprint} is paired when it connects",
                Escaped(instance),
                Escaped(ship_id)
            ),
            Event::PairingServiceRefused { instance, reason } => format!(
                "pairing request {} refused: {}",
                Escaped(instance),
                Escaped(reason)
            ),
            Event::PairingRequestAnnounced { ski, ship_id, .. } => format!(
                "asking {ski} (SHIP ID {}) to trust this gateway through the SHIP Pairing \
                 Service: request announced over mDNS",
                Escaped(ship_id)
            ),
            Event::PairingRequestConnected { ski, settles_in_s } => format!(
                "{ski} trusts this gateway (SHIP Pairing Service): connected; the request is \
                 withdrawn once this connection has held {settles_in_s} s"
            ),
            Event::PairingRequestRefused { ski, error } => format!(
                "{ski} refused the connection: it does not trust this gateway yet (it has not \
                 verified the request, or the secret, SHIP ID or fingerprint is wrong){}; the \
                 request stays announced",
                error
                    .as_ref()
                    .map(|e| format!(" ({})", Escaped(e)))
                    .unwrap_or_default()
            ),
            Event::PairingRequestSettled { ski } => {
                format!("the SHIP Pairing Service request to {ski} settled: withdrawn for good")
            }
            Event::PairingRequestWithdrawn { ski, reason } => format!(
                "the SHIP Pairing Service request to {ski} was withdrawn: {}",
                Escaped(reason)
            ),
            Event::PairingRequestFailed { ski, error } => format!(
                "the SHIP Pairing Service request to {ski} failed: {}",
                Escaped(error)
            ),
            Event::VisibleServices { services } => {
                let names: Vec<String> = services
                    .iter()
                    .map(|s| format!("{} [{}]", Escaped(&s.name), &s.ski[..12]))
                    .collect();
                if names.is_empty() {
                    "visible: no SHIP services".to_owned()
                } else {
                    format!("visible: {}", names.join(", "))
                }
            }
            Event::Data { ski, bytes, .. } => format!("received {bytes} bytes from {ski}"),
            Event::DataSent { ski, bytes } => format!("sent {bytes} bytes to {ski}"),
            Event::ShipId { ski, ship_id } => format!("{ski} has SHIP ID {}", Escaped(ship_id)),
            Event::Warning { message } => format!("WARNING: {}", Escaped(message)),
            Event::Info { message } => Escaped(message).to_string(),
            Event::EventsDropped { count, coalesced } => format!(
                "WARNING: stdout is not read fast enough: {count} events dropped, {coalesced} \
                 lines of a device replaced by its latest"
            ),
            Event::Stopping { signal } => format!("{signal}: shutting down"),
            Event::Stopped {
                connections_closed_in_time,
                elapsed_ms,
            } => format!(
                "stopped after {elapsed_ms} ms{}",
                if *connections_closed_in_time {
                    ""
                } else {
                    " (some connections did not close in time)"
                }
            ),
        }
    }
}

/// What a detailed state means for the person waiting, where the name alone does not say it.
pub(crate) fn waiting_words(detailed: &str) -> Option<String> {
    // Hello (docs/ship.md §6): we are ready, the other side has not said yes yet; it gives up
    // after T_hello_init unless the other side asks for more time.
    detailed.starts_with("HelloReady").then(|| {
        format!(
            "waiting for the other device to confirm the pairing (up to {} s)",
            ship_hub::protocol::ProtocolConfig::default()
                .hello_init
                .as_secs()
        )
    })
}

/// How a line is treated when stdout falls behind (docs/gateway.md, "Output overflow").
#[derive(Debug, Clone, PartialEq, Eq)]
enum Class {
    /// Never dropped below the hard bound: pairing events, the gateway's life cycle.
    Keep,
    /// A device's latest line of this kind is what counts: once the queue is full, a new one
    /// replaces the device's queued line of the same kind (the key: SKI and kind).
    Latest(String, &'static str),
    /// Dropped (and counted) once the queue is full.
    Droppable,
}

impl Event {
    fn class(&self) -> Class {
        match self {
            Event::State { ski, .. } => Class::Latest(ski.clone(), "state"),
            Event::Connected { ski, .. } => Class::Latest(ski.clone(), "connected"),
            Event::Disconnected { ski, .. } => Class::Latest(ski.clone(), "disconnected"),
            Event::ShipId { ski, .. } => Class::Latest(ski.clone(), "ship_id"),
            Event::VisibleServices { .. }
            | Event::DataSent { .. }
            | Event::Warning { .. }
            | Event::Info { .. }
            | Event::PairingServiceRefused { .. } => Class::Droppable,
            Event::Listening { .. }
            | Event::PairingRequested { .. }
            | Event::PinRequested { .. }
            | Event::Paired { .. }
            | Event::Unpaired { .. }
            | Event::PairedByService { .. }
            | Event::PairingServiceRequest { .. }
            | Event::PairingRequestAnnounced { .. }
            | Event::PairingRequestConnected { .. }
            | Event::PairingRequestRefused { .. }
            | Event::PairingRequestSettled { .. }
            | Event::PairingRequestWithdrawn { .. }
            | Event::PairingRequestFailed { .. }
            | Event::Data { .. }
            | Event::EventsDropped { .. }
            | Event::Stopping { .. }
            | Event::Stopped { .. } => Class::Keep,
        }
    }
}

fn now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// Non-data lines that may wait for stdout; beyond this droppable lines are dropped and counted
/// and a device's lines are coalesced (its latest of each kind).
pub(crate) const MAX_QUEUED_LINES: usize = 1024;

/// The hard bound on waiting non-data lines: beyond it every line but the life cycle's
/// (`stopping`, `stopped`) is dropped and counted, whatever its kind (a flood of new devices
/// while stdout is not read must not fill the memory).
pub(crate) const MAX_KEPT_LINES: usize = 16 * 1024;

/// How long the writer lets lines gather after it was woken from an empty queue (a line may
/// reach stdout this much later; a burst of events costs a wake-up per this interval).
const BATCH_DELAY: Duration = Duration::from_millis(1);

/// At most this many bytes of lines go to stdout in one write (then the next batch).
const MAX_BATCH_BYTES: usize = 64 * 1024;

/// At exit, how long the last lines may make no progress before the gateway exits anyway.
const FLUSH_STALL: Duration = Duration::from_millis(500);

/// Writes events to stdout, one line each, from a thread of its own: emitting never blocks the
/// caller (a callback, a control-socket handler, the signal handling), however slow or stuck
/// the reader of stdout is.
///
/// The overflow policy (docs/gateway.md, "Output"):
///
/// * a `data` line carries the peer's [`DeliveryToken`]: it always waits for its turn, and
///   while it waits the peer's inbound budget stays charged, so the hub stops reading that
///   peer's socket once the budget is used up. Data lines are therefore bounded by the budgets
///   (docs/architecture.md, "Backpressure"), never dropped, and a blocked stdout slows the
///   peers down instead of filling memory;
/// * every other line is queued while fewer than [`MAX_QUEUED_LINES`] such lines wait;
///   beyond that, a device's `state`, `connected`, `disconnected` or `ship_id` line replaces
///   the same device's queued line of that kind (which leaves its place: the latest goes last,
///   so the order of what is written stays that of the latest lines), pairing events and the
///   life cycle are kept, and other lines (warnings, `info`, `visible_services`, `data_sent`)
///   are dropped; all of it counted, and one `events_dropped` line with the counts is written
///   once the queue has room again. Beyond [`MAX_KEPT_LINES`] every line but `stopping` and
///   `stopped` is dropped and counted.
///
/// Events that happen before `listening` (a paired peer queued while the hub starts) are held
/// back and written right after it, so `listening` is always the first line.
#[derive(Debug)]
pub(crate) struct EventLog {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    json: bool,
    queue: Mutex<Queue>,
    /// Signalled when a line is queued (for the writer) and when the queue ran empty (for
    /// [`EventLog::flush`]).
    changed: Condvar,
    /// Held by the writer while it writes one line, and by [`EventLog::exclusively`].
    terminal: Mutex<()>,
    /// The HTTP API's event stream, when it is served: every event is published there too
    /// (as JSON), also those that stdout drops.
    bus: std::sync::OnceLock<Arc<EventBus>>,
}

#[derive(Debug, Default)]
struct Queue {
    lines: VecDeque<Line>,
    /// Lines without a token in `lines` (not counting replaced ones).
    others: usize,
    /// Lines dropped since the last `events_dropped`.
    dropped: u64,
    /// Lines replaced by a later one of the same device since the last `events_dropped`.
    coalesced: u64,
    /// The sequence number of the next line queued at the back (`listening`, at the front, is
    /// 0): `lines` are in sequence order.
    next_seq: u64,
    /// A device's newest queued line of each coalescible kind: its sequence number.
    latest: std::collections::HashMap<(String, &'static str), u64>,
    /// `listening` was queued (at the front): the writer may start.
    started: bool,
    /// The writer is writing a line right now.
    writing: bool,
    /// Lines written so far.
    written: u64,
    /// Threads waiting on [`Shared::changed`] (the writer, [`EventLog::flush`]).
    waiters: usize,
}

#[derive(Debug)]
struct Line {
    text: String,
    /// For a `data` line: the peer's budget share, released once the line is written.
    token: Option<DeliveryToken>,
    /// Its place in the queue's order (see [`Queue::next_seq`]).
    seq: u64,
    /// For a device's coalescible line: its SKI and kind.
    key: Option<(String, &'static str)>,
    /// Replaced by a later line of the same device and kind: not written.
    replaced: bool,
}

impl Queue {
    /// Queues `text` at the back.
    fn push(
        &mut self,
        text: String,
        token: Option<DeliveryToken>,
        key: Option<(String, &'static str)>,
    ) {
        if self.next_seq == 0 {
            self.next_seq = 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if token.is_none() {
            self.others += 1;
        }
        if let Some(key) = &key {
            self.latest.insert(key.clone(), seq);
        }
        self.lines.push_back(Line {
            text,
            token,
            seq,
            key,
            replaced: false,
        });
    }

    /// Marks the queued line of `key` (if any) replaced; whether there was one.
    fn replace(&mut self, key: &(String, &'static str)) -> bool {
        let Some(seq) = self.latest.remove(key) else {
            return false;
        };
        let Ok(index) = self.lines.binary_search_by_key(&seq, |l| l.seq) else {
            return false;
        };
        let line = &mut self.lines[index];
        line.replaced = true;
        line.text = String::new();
        self.others -= 1;
        self.coalesced += 1;
        true
    }

    /// Takes the front line, keeping the index of the latest lines in step.
    fn pop(&mut self) -> Option<Line> {
        let line = self.lines.pop_front()?;
        if !line.replaced {
            if line.token.is_none() {
                self.others -= 1;
            }
            if let Some(key) = &line.key
                && self.latest.get(key) == Some(&line.seq)
            {
                self.latest.remove(key);
            }
        }
        Some(line)
    }
}

impl EventLog {
    /// Starts the writer thread.
    pub(crate) fn new(json: bool) -> std::io::Result<EventLog> {
        EventLog::with_output(json, Box::new(std::io::stdout()))
    }

    /// The same, writing to `out` instead of stdout.
    pub(crate) fn with_output(json: bool, out: Box<dyn Write + Send>) -> std::io::Result<EventLog> {
        let shared = Arc::new(Shared {
            json,
            queue: Mutex::new(Queue::default()),
            changed: Condvar::new(),
            terminal: Mutex::new(()),
            bus: std::sync::OnceLock::new(),
        });
        let writer = shared.clone();
        std::thread::Builder::new()
            .name("event-writer".into())
            .spawn(move || writer.write_lines(out))?;
        Ok(EventLog { shared })
    }

    /// Runs `f` (which writes to the terminal, e.g. a question on stderr) while no event line
    /// is being written: on a terminal stdout and stderr share the screen, and a line must never
    /// be cut in two by another.
    pub(crate) fn exclusively<T>(&self, f: impl FnOnce() -> T) -> T {
        let _terminal = self
            .shared
            .terminal
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        f()
    }

    /// From now on, publishes every event to `bus` as well (the HTTP API's event stream).
    pub(crate) fn publish_to(&self, bus: Arc<EventBus>) {
        let _ = self.shared.bus.set(bus);
    }

    /// Queues one event (dropped and counted if too many non-data lines wait). Never blocks.
    pub(crate) fn emit(&self, event: Event) {
        self.queue(event, None);
    }

    /// Queues a `data` event holding the peer's budget share until the line is written. Never
    /// blocks and never drops.
    pub(crate) fn emit_data(&self, event: Event, token: DeliveryToken) {
        self.queue(event, Some(token));
    }

    /// Waits until every queued line is written, at most `limit`, and gives up earlier when
    /// no line could be written for [`FLUSH_STALL`] (at exit: a stdout nobody reads must not
    /// hold the gateway).
    pub(crate) fn flush(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut queue = self.shared.lock();
        let mut progress = (queue.written, Instant::now());
        while !queue.lines.is_empty() || queue.writing {
            let now = Instant::now();
            if queue.written != progress.0 {
                progress = (queue.written, now);
            }
            let until = deadline.min(progress.1 + FLUSH_STALL);
            let Some(left) = until.checked_duration_since(now) else {
                return;
            };
            queue.waiters += 1;
            queue = self
                .shared
                .changed
                .wait_timeout(queue, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
            queue.waiters -= 1;
        }
    }

    fn queue(&self, event: Event, token: Option<DeliveryToken>) {
        let listening = matches!(event, Event::Listening { .. });
        let lifecycle = matches!(event, Event::Stopping { .. } | Event::Stopped { .. });
        let class = event.class();
        let text = match self.shared.bus.get().filter(|bus| bus.wanted()) {
            Some(bus) => {
                let json = self.shared.json_text(&event);
                bus.publish(&json);
                if self.shared.json {
                    json
                } else {
                    self.shared.human_text(&event)
                }
            }
            None => self.shared.format(&event),
        };
        let mut queue = self.shared.lock();
        if listening {
            queue.started = true;
            queue.others += 1;
            queue.lines.push_front(Line {
                text,
                token: None,
                seq: 0,
                key: None,
                replaced: false,
            });
        } else if token.is_some() {
            queue.push(text, token, None);
        } else if lifecycle {
            // `stopping` and `stopped` are never dropped (they happen once): a reader that
            // fell behind during a burst still learns how the gateway ended. What was lost is
            // reported before the end, so `stopped` stays the last line.
            if queue.dropped > 0 || queue.coalesced > 0 {
                let report = self.shared.format(&Event::EventsDropped {
                    count: std::mem::take(&mut queue.dropped),
                    coalesced: std::mem::take(&mut queue.coalesced),
                });
                queue.push(report, None, None);
            }
            queue.push(text, None, None);
        } else {
            let full = queue.others >= MAX_QUEUED_LINES;
            let droppable = class == Class::Droppable;
            let key = match class {
                Class::Latest(ski, kind) => Some((ski, kind)),
                _ => None,
            };
            if full && let Some(key) = &key {
                // The device's earlier line of this kind is superseded: it leaves its place.
                queue.replace(key);
            }
            let keep = if droppable {
                !full
            } else {
                queue.others < MAX_KEPT_LINES
            };
            if !keep {
                queue.dropped += 1;
                return;
            }
            queue.push(text, None, key);
        }
        self.shared.notify(&queue);
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn format(&self, event: &Event) -> String {
        if self.json {
            self.json_text(event)
        } else {
            self.human_text(event)
        }
    }

    /// The event as one JSON object with its `ts_ms`.
    fn json_text(&self, event: &Event) -> String {
        // Serialised straight into text, then `ts_ms` spliced in before the closing brace
        // (no intermediate `Value` map: this runs for every event of every connection).
        let mut text = serde_json::to_string(event).unwrap_or_else(|_| "{}".into());
        if text.ends_with('}') {
            text.pop();
            let sep = if text.len() > 1 { "," } else { "" };
            let _ = write!(text, "{sep}\"ts_ms\":{}}}", now().as_millis() as u64);
        }
        text
    }

    /// The event as a line for people, after the time of day.
    fn human_text(&self, event: &Event) -> String {
        let secs = now().as_secs() % 86_400;
        format!(
            "{:02}:{:02}:{:02} {}",
            secs / 3600,
            secs / 60 % 60,
            secs % 60,
            event.human()
        )
    }

    /// The writer thread: one line at a time, in order; a closed stdout is ignored (lines are
    /// then discarded as fast as they come, the gateway keeps running).
    fn write_lines(&self, mut out: Box<dyn Write + Send>) {
        let mut batch: Vec<Line> = Vec::new();
        let mut bytes: Vec<u8> = Vec::new();
        loop {
            {
                let mut queue = self.lock();
                // The writer waited for the queue: it lets lines gather for `BATCH_DELAY`
                // before taking them, so that a burst of events costs a few wake-ups and
                // writes, not one per line.
                let mut waited = false;
                loop {
                    if !queue.started {
                        queue = self.wait(queue);
                        continue;
                    }
                    self.report_dropped(&mut queue);
                    if !queue.lines.is_empty() && waited {
                        waited = false;
                        drop(queue);
                        std::thread::sleep(BATCH_DELAY);
                        queue = self.lock();
                        continue;
                    }
                    if !queue.lines.is_empty() {
                        // Everything that waits (up to a bound) goes out in one write: under
                        // load that is one system call for many lines instead of one each.
                        let mut size = 0;
                        while size < MAX_BATCH_BYTES {
                            let Some(line) = queue.pop() else {
                                break;
                            };
                            if line.replaced {
                                continue;
                            }
                            size += line.text.len() + 1;
                            batch.push(line);
                        }
                        queue.writing = true;
                        break;
                    }
                    self.notify(&queue);
                    queue = self.wait(queue);
                    waited = true;
                }
            }
            {
                let _terminal = self.terminal.lock().unwrap_or_else(|e| e.into_inner());
                bytes.clear();
                for line in &batch {
                    bytes.extend_from_slice(line.text.as_bytes());
                    bytes.push(b'\n');
                }
                let _ = out.write_all(&bytes);
                let _ = out.flush();
            }
            // The lines are out: their tokens (if any) release the peers' budgets.
            let written = batch.len() as u64;
            batch.clear();
            let mut queue = self.lock();
            queue.writing = false;
            queue.written += written;
            self.report_dropped(&mut queue);
            self.notify(&queue);
        }
    }

    /// Once output resumed (the queue has room again), queues one `events_dropped` line with
    /// the count, in the place where the lines were lost. Called with the queue locked, also
    /// right after a batch was written, before anyone waiting for the queue to drain (see
    /// [`EventLog::flush`]) can see it empty.
    fn report_dropped(&self, queue: &mut Queue) {
        if (queue.dropped > 0 || queue.coalesced > 0) && queue.others < MAX_QUEUED_LINES {
            let text = self.format(&Event::EventsDropped {
                count: std::mem::take(&mut queue.dropped),
                coalesced: std::mem::take(&mut queue.coalesced),
            });
            queue.push(text, None, None);
        }
    }

    /// Waits on [`Shared::changed`], counted so that [`Shared::notify`] can skip the wake-up
    /// system call when nobody waits (the common case: every event notifies).
    fn wait<'a>(
        &self,
        mut queue: std::sync::MutexGuard<'a, Queue>,
    ) -> std::sync::MutexGuard<'a, Queue> {
        queue.waiters += 1;
        let mut queue = self.changed.wait(queue).unwrap_or_else(|e| e.into_inner());
        queue.waiters -= 1;
        queue
    }

    /// Wakes every waiter, if there is one (call with the queue locked).
    fn notify(&self, queue: &Queue) {
        if queue.waiters > 0 {
            self.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_labels_drop_the_service_type() {
        assert_eq!(
            instance_label("Garage wallbox._ship._tcp.local."),
            "Garage wallbox"
        );
        assert_eq!(instance_label("odd"), "odd");
    }

    const HOSTILE: &str = "x\n12:00:00 0101 connected\x1b[2J\u{9b}\u{202e}\u{2066}y";

    fn hostile_events() -> Vec<Event> {
        let h = || HOSTILE.to_owned();
        vec![
            Event::State {
                ski: "ab".into(),
                state: "Error".into(),
                detailed: None,
                error: Some(h()),
            },
            Event::Connected {
                ski: "ab".into(),
                ship_id: Some(h()),
                tls_suite: None,
            },
            Event::Disconnected {
                ski: "ab".into(),
                reason: h(),
            },
            Event::PairingRequested {
                ski: "ab".into(),
                address: "127.0.0.1:1".parse().unwrap(),
                name: Some(h()),
                decision: "asking".into(),
                reason: None,
            },
            Event::PinRequested {
                ski: "ab".into(),
                name: Some(h()),
                rejected: false,
                wait_s: 1,
                answer: "x".into(),
            },
            Event::Info { message: h() },
            Event::VisibleServices {
                services: vec![ServiceRow {
                    name: h(),
                    ski: "0505050505050505050505050505050505050505".into(),
                    ship_id: h(),
                    addresses: vec![],
                    brand: Some(h()),
                    model: None,
                    device_type: None,
                    register: false,
                }],
            },
            Event::ShipId {
                ski: "ab".into(),
                ship_id: h(),
            },
            Event::Warning { message: h() },
            Event::PairedByService {
                ski: "ab".into(),
                ship_id: h(),
                displaced: None,
            },
            Event::PairingServiceRequest {
                instance: h(),
                ship_id: h(),
                fingerprint: "AB".into(),
            },
            Event::PairingServiceRefused {
                instance: h(),
                reason: h(),
            },
            Event::PairingRequestAnnounced {
                ski: "ab".into(),
                ship_id: h(),
                fingerprint: "AB".into(),
            },
            Event::PairingRequestRefused {
                ski: "ab".into(),
                error: Some(h()),
            },
        ]
    }

    #[test]
    fn human_lines_show_peer_text_escaped() {
        for event in hostile_events() {
            let line = event.human();
            assert!(
                !line.chars().any(|c| c.is_control()
                    || ('\u{2066}'..='\u{2069}').contains(&c)
                    || ('\u{202a}'..='\u{202e}').contains(&c)),
                "{line:?}"
            );
            assert!(
                line.contains("x\\n12:00:00 0101 connected\\x1b[2J\\u{9b}\\u{202e}\\u{2066}y"),
                "{line:?}"
            );
        }
    }

    #[test]
    fn json_lines_keep_peer_text_exact_and_escape_c0_controls() {
        for event in hostile_events() {
            let line = serde_json::to_string(&event).unwrap();
            // serde_json escapes C0 controls (\n, \u001b); DEL, C1 and format characters are
            // valid raw in JSON and stay as they are: JSON output is exact, for programs.
            assert!(!line.chars().any(|c| (c as u32) < 0x20), "{line:?}");
            let back: serde_json::Value = serde_json::from_str(&line).unwrap();
            let texts: Vec<&str> = [
                &back["error"],
                &back["ship_id"],
                &back["reason"],
                &back["name"],
                &back["message"],
                &back["services"][0]["name"],
            ]
            .into_iter()
            .filter_map(|v| v.as_str())
            .collect();
            assert!(!texts.is_empty(), "{line}");
            for text in texts {
                assert_eq!(text, HOSTILE, "{line}");
            }
        }
    }

    /// A stdout that blocks until the gate opens, then collects what is written.
    #[derive(Clone, Default)]
    struct Gated {
        open: Arc<(Mutex<bool>, Condvar)>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gated {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let (lock, cvar) = &*self.open;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cvar.wait(open).unwrap();
            }
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The first line every log writes: the gateway listens.
    fn listening() -> Event {
        Event::Listening {
            address: "127.0.0.1:1".parse().unwrap(),
            http: None,
            ski: "ab".into(),
            ship_id: "id".into(),
            data_dir: "d".into(),
            mdns: false,
            auto_accept: false,
        }
    }

    #[test]
    fn a_blocked_output_never_blocks_emit_and_reports_what_it_dropped() {
        let out = Gated::default();
        let log = EventLog::with_output(true, Box::new(out.clone())).unwrap();
        log.emit(Event::Warning {
            message: "before listening".into(),
        });
        log.emit(listening());
        let started = Instant::now();
        for n in 0..3_000 {
            log.emit(Event::Warning {
                message: n.to_string(),
            });
        }
        assert!(started.elapsed() < Duration::from_secs(5), "emit blocked");
        *out.open.0.lock().unwrap() = true;
        out.open.1.notify_all();
        log.flush(Duration::from_secs(10));
        log.emit(Event::Warning {
            message: "after".into(),
        });
        log.flush(Duration::from_secs(10));
        let written = String::from_utf8(out.written.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = written
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["event"], "listening");
        assert_eq!(lines[1]["message"], "before listening");
        let kept: Vec<u64> = lines
            .iter()
            .filter_map(|l| l["message"].as_str()?.parse().ok())
            .collect();
        let dropped: Vec<u64> = lines
            .iter()
            .filter(|l| l["event"] == "events_dropped")
            .map(|l| l["count"].as_u64().unwrap())
            .collect();
        assert_eq!(dropped.len(), 1, "one events_dropped line: {dropped:?}");
        assert_eq!(kept.len() as u64 + dropped[0], 3_000);
        assert!(kept.len() >= MAX_QUEUED_LINES - 2, "{} kept", kept.len());
        assert!(kept.windows(2).all(|w| w[0] < w[1]), "in order");
        let at = lines
            .iter()
            .position(|l| l["event"] == "events_dropped")
            .unwrap();
        assert_eq!(
            lines[at + 1]["message"],
            "after",
            "reported where the lines were lost"
        );
    }

    /// Finding (issue 23): at start-up with 3,000 pairings the gateway dropped 1,971 `state`
    /// lines although stdout was a file, so some devices' last state never appeared. A device's
    /// lines are coalesced instead (its latest of each kind is written), and pairing events are
    /// never dropped.
    #[test]
    fn a_burst_keeps_every_devices_latest_state_and_every_pairing_event() {
        let out = Gated::default();
        let log = EventLog::with_output(true, Box::new(out.clone())).unwrap();
        log.emit(listening());
        let ski = |n: usize| format!("{n:040}");
        let state = |n: usize, state: &str| Event::State {
            ski: ski(n),
            state: state.into(),
            detailed: None,
            error: None,
        };
        for name in ["Queued", "Initiated", "InProgress"] {
            for n in 0..3_000 {
                log.emit(state(n, name));
                if n % 100 == 0 && name == "Initiated" {
                    log.emit(Event::PairingRequested {
                        ski: ski(n),
                        address: "127.0.0.1:2".parse().unwrap(),
                        name: None,
                        decision: "asking".into(),
                        reason: None,
                    });
                }
            }
        }
        for n in 0..3_000 {
            log.emit(state(n, "Completed"));
            log.emit(Event::Connected {
                ski: ski(n),
                ship_id: None,
                tls_suite: None,
            });
        }
        *out.open.0.lock().unwrap() = true;
        out.open.1.notify_all();
        log.flush(Duration::from_secs(10));
        let written = String::from_utf8(out.written.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = written
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let mut last_state = std::collections::HashMap::new();
        let mut connected = std::collections::HashSet::new();
        for line in &lines {
            match line["event"].as_str().unwrap() {
                "state" => {
                    last_state.insert(line["ski"].as_str().unwrap().to_owned(), line.clone());
                }
                "connected" => {
                    // Connected after its Completed state, as emitted.
                    let ski = line["ski"].as_str().unwrap();
                    assert_eq!(last_state[ski]["state"], "Completed", "{line}");
                    connected.insert(ski.to_owned());
                }
                _ => {}
            }
        }
        assert_eq!(last_state.len(), 3_000);
        assert!(last_state.values().all(|l| l["state"] == "Completed"));
        assert_eq!(connected.len(), 3_000);
        let requests = lines
            .iter()
            .filter(|l| l["event"] == "pairing_requested")
            .count();
        assert_eq!(requests, 30, "pairing events are never dropped");
        let report: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| l["event"] == "events_dropped")
            .collect();
        assert_eq!(report.len(), 1, "{report:?}");
        assert_eq!(report[0]["count"], 0, "nothing dropped, only coalesced");
        assert!(report[0]["coalesced"].as_u64().unwrap() > 0);
    }

    /// Finding (measuring a 3,000-handshake burst): a reader that fell behind filled the queue,
    /// and the `stopped` line was dropped with the rest, so the reader never learnt whether
    /// every connection closed in time.
    #[test]
    fn stopping_and_stopped_are_never_dropped() {
        let out = Gated::default();
        let log = EventLog::with_output(true, Box::new(out.clone())).unwrap();
        log.emit(listening());
        for n in 0..2 * MAX_QUEUED_LINES {
            log.emit(Event::Warning {
                message: n.to_string(),
            });
        }
        log.emit(Event::Stopping {
            signal: "SIGINT".into(),
        });
        log.emit(Event::Stopped {
            connections_closed_in_time: true,
            elapsed_ms: 1,
        });
        *out.open.0.lock().unwrap() = true;
        out.open.1.notify_all();
        log.flush(Duration::from_secs(10));
        let written = String::from_utf8(out.written.lock().unwrap().clone()).unwrap();
        let kinds: Vec<String> = written
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].to_string())
            .collect();
        let tail: Vec<&str> = kinds.iter().rev().take(2).map(|s| s.as_str()).collect();
        assert_eq!(tail, ["\"stopped\"", "\"stopping\""], "{kinds:?}");
        assert!(kinds.iter().any(|k| k == "\"events_dropped\""));
    }

    /// Finding (a new user): `InProgress (HelloReadyInit)` did not say that the other side's
    /// person had not answered yet.
    #[test]
    fn a_hello_wait_says_that_the_other_device_must_confirm() {
        let line = Event::State {
            ski: "ab".into(),
            state: "InProgress".into(),
            detailed: Some("HelloReadyInit".into()),
            error: None,
        }
        .human();
        assert!(
            line.contains("waiting for the other device to confirm the pairing (up to 120 s)"),
            "{line}"
        );
        let other = Event::State {
            ski: "ab".into(),
            state: "InProgress".into(),
            detailed: Some("CmiClientSend".into()),
            error: None,
        }
        .human();
        assert!(!other.contains("waiting"), "{other}");
    }

    #[test]
    fn json_events_are_tagged_with_their_kind() {
        let payload = serde_json::value::RawValue::from_string("{\"a\":[1]}".into()).unwrap();
        let value = serde_json::to_value(Event::Data {
            ski: "ab".into(),
            bytes: 9,
            payload: Some(payload),
        })
        .unwrap();
        assert_eq!(
            value,
            serde_json::json!({"event": "data", "ski": "ab", "bytes": 9, "payload": {"a": [1]}}),
            "the payload is embedded as JSON, not as a string"
        );
    }
}
