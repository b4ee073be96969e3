//! What the gateway knows right now that the hub does not keep for it: each peer's latest
//! state (with since when and its last error), the pairing requests and the PIN requests that
//! wait for a person, how each pairing request ended, and the devices whose requests are refused
//! without asking (denied, or cooling off after an unpair). Read by the HTTP API and the terminal
//! prompt.
//!
//! Two writers, each for its own part. What mirrors the hub (each peer's state, the pairing and
//! PIN requests it reports, the admission refusals) is written only by the task that reads the
//! hub's events (`crate::hub_events`), in the hub's order. What is the gateway's own is written
//! where a person decides (the API's handlers, the terminal prompt): how a request ended and
//! through which channel ([`Live::decided`], [`Via`]), the denials and cooling-offs
//! ([`Live::denied`], [`Live::unpaired`]), and that a question put to a person was answered
//! (the request or PIN wait leaves the lists at once, so a read right after the answer does not
//! show it; the hub's next state would remove it too).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use ship_hub::Ski;
use ship_hub::protocol::ConnectionState;

/// A peer's latest state as the API reports it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PeerLive {
    /// One of the ten SHIP states, e.g. `Completed`.
    pub(crate) state: String,
    /// The detailed protocol state, e.g. `HelloReadyListen`.
    pub(crate) detailed: Option<String>,
    /// When the peer entered `state` (milliseconds since the Unix epoch).
    pub(crate) since_ms: u64,
    /// The error of its last `Error` or `RemoteDeniedTrust`, in words (kept after recovery).
    pub(crate) last_error: Option<String>,
    /// The TLS cipher suite of its last connection that reached data exchange.
    pub(crate) tls_suite: Option<String>,
}

/// A pairing request that waits for approve or deny.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PendingRequest {
    pub(crate) ski: String,
    pub(crate) address: SocketAddr,
    /// The name it announces over mDNS, when it is visible.
    pub(crate) name: Option<String>,
    /// When it asked (milliseconds since the Unix epoch).
    pub(crate) since_ms: u64,
    /// When its SHIP hello times out unless it is decided or prolonged (milliseconds since the
    /// Unix epoch).
    pub(crate) expires_ms: u64,
}

/// The latest refusal of an incoming connection by an admission cap, as reported by the hub
/// (at most once per source address and minute).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(crate) struct LastRefusal {
    /// Where the refused connections came from.
    pub(crate) address: std::net::IpAddr,
    /// The limit that refused them, by its configuration key (`max_unpaired_per_address`, …).
    pub(crate) cap: String,
    /// What that means, for people.
    pub(crate) reason: String,
    /// Refused from `address` since the report before.
    pub(crate) refused: u64,
    /// When it was reported (milliseconds since the Unix epoch).
    pub(crate) at_ms: u64,
}

/// A paired device that waits for the PIN it requires from us (SHIP §13.4.4.3): answered with
/// `ship-gateway pair SKI --pin -`, `POST /api/v1/peers/{ski}/pin`, or on the terminal.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PinWait {
    /// The device rejected the PIN sent before.
    pub(crate) rejected: bool,
    /// When it asked (milliseconds since the Unix epoch).
    pub(crate) since_ms: u64,
    /// When its PIN wait times out unless a PIN is given (milliseconds since the Unix epoch).
    pub(crate) expires_ms: u64,
}

/// Where a person's decision came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Via {
    /// The command line (`ship-gateway approve`, `pair`, `deny` over the control socket).
    Command,
    /// The HTTP API (the console, or a program).
    Http,
}

/// How a pairing request ended, for whoever asked about it elsewhere (the terminal prompt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestEnd {
    /// Approved (`approve`, the console).
    Approved(Via),
    /// Satisfied by a pairing of the device (`pair`).
    Paired(Via),
    /// Denied (`deny`, the console).
    Denied(Via),
    /// Nobody answered before the device's hello wait ran out on our side.
    TimedOut,
    /// The device gave up: it closed the connection or went away.
    Left,
}

impl RequestEnd {
    /// What happened, in words: "approved with `ship-gateway approve`".
    pub(crate) fn words(self) -> String {
        let by = |via: Via, command: &str| match via {
            Via::Command => format!("with `ship-gateway {command}`"),
            Via::Http => "over the HTTP API (the console)".to_owned(),
        };
        match self {
            RequestEnd::Approved(via) => format!("was approved {}", by(via, "approve")),
            RequestEnd::Paired(via) => {
                format!("was satisfied: the device was paired {}", by(via, "pair"))
            }
            RequestEnd::Denied(via) => format!("was denied {}", by(via, "deny")),
            RequestEnd::TimedOut => format!(
                "timed out: nobody answered within {} s",
                ship_hub::protocol::ProtocolConfig::default()
                    .hello_init
                    .as_secs()
            ),
            RequestEnd::Left => "ended: the device gave up (it closed the connection)".to_owned(),
        }
    }

    /// A person decided it (somewhere else): nothing went wrong.
    pub(crate) fn decided(self) -> bool {
        !matches!(self, RequestEnd::TimedOut | RequestEnd::Left)
    }
}

/// Why a pairing request is refused without asking anybody.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A person denied the device (at this time, milliseconds since the Unix epoch): refused
    /// until a person pairs it (or `remember_denial_secs` pass).
    Denied { at_ms: u64 },
    /// A person unpaired the device: refused for the cooling-off period, with this much left;
    /// `first`: the first refusal since (said once).
    CoolingOff { left: Duration, first: bool },
}

/// A device whose pairing requests are refused without asking.
#[derive(Debug, Clone, Copy)]
struct Refused {
    /// Until when (`None`: until a person pairs it).
    until: Option<std::time::Instant>,
    /// Denied (at this time, ms since the Unix epoch), else unpaired (cooling off).
    denied_at_ms: Option<u64>,
    /// A refusal was said already (cooling off: said once).
    said: bool,
    /// When it was added (the oldest leaves first when the map is full).
    added: std::time::Instant,
}

/// Peers' states and waiting requests, bounded by the hub's own bounds (states of peers the hub
/// reports, requests of at most `max_unpaired` connections); a request that nobody decides
/// leaves when the peer's state moves on.
#[derive(Debug, Default)]
pub(crate) struct Live {
    peers: Mutex<HashMap<Ski, PeerLive>>,
    requests: Mutex<HashMap<Ski, PendingRequest>>,
    /// Paired devices waiting for their PIN.
    pins: Mutex<HashMap<Ski, PinWait>>,
    /// How the last pairing request of a device ended (until its next request).
    ends: Mutex<HashMap<Ski, RequestEnd>>,
    /// Devices a person unpaired or denied: their pairing requests are refused without asking
    /// (an unpaired one for the cooling-off period, a denied one until it is paired).
    refused: Mutex<HashMap<Ski, Refused>>,
    /// The cooling-off period after an unpair (zero: none).
    cooling_off: Duration,
    /// The latest refusal by an admission cap.
    last_refusal: Mutex<Option<LastRefusal>>,
    /// How long a denial is remembered (`None`: until a person pairs the device).
    remember_denial: Option<Duration>,
}

/// The most devices refused without asking at once (the oldest leaves first).
const MAX_REFUSED: usize = 1024;

/// The most request endings kept (the oldest leaves first).
const MAX_ENDS: usize = 1024;

/// The most peer states kept (a peer not paired that never comes back is forgotten first).
const MAX_PEERS: usize = 10_000;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl Live {
    /// Nothing known yet; a person's unpair cools a peer off for `cooling_off` (zero: not at
    /// all), a deny is remembered for `remember_denial` (`None`: until the device is paired).
    pub(crate) fn new(cooling_off: Duration, remember_denial: Option<Duration>) -> Self {
        Live {
            cooling_off,
            remember_denial,
            ..Live::default()
        }
    }

    fn refused(&self) -> std::sync::MutexGuard<'_, HashMap<Ski, Refused>> {
        self.refused.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn pins(&self) -> std::sync::MutexGuard<'_, HashMap<Ski, PinWait>> {
        self.pins.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn ends(&self) -> std::sync::MutexGuard<'_, HashMap<Ski, RequestEnd>> {
        self.ends.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<Ski, PeerLive>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, HashMap<Ski, PendingRequest>> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A state change of `ski`; `tls_suite` is the suite of the connection that reached
    /// Completed (set in the same step, so a reader never sees Completed without it).
    ///
    /// A pairing request of `ski` that is over now and that nobody decided here ended by itself:
    /// `timed_out` says whether our hello wait ran out (else the device gave up).
    pub(crate) fn state(
        &self,
        ski: Ski,
        state: ConnectionState,
        detailed: Option<String>,
        error: Option<String>,
        tls_suite: Option<String>,
        timed_out: bool,
    ) {
        let name = format!("{state:?}");
        {
            let mut peers = self.peers();
            if peers.len() >= MAX_PEERS && !peers.contains_key(&ski) {
                // Forget the oldest entry: a bounded map whatever peers come and go.
                if let Some(oldest) = peers
                    .iter()
                    .min_by_key(|(_, p)| p.since_ms)
                    .map(|(s, _)| *s)
                {
                    peers.remove(&oldest);
                }
            }
            let entry = peers.entry(ski).or_insert_with(|| PeerLive {
                state: name.clone(),
                detailed: None,
                since_ms: now_ms(),
                last_error: None,
                tls_suite: None,
            });
            if entry.state != name {
                entry.since_ms = now_ms();
                entry.state = name;
            }
            entry.detailed = detailed;
            if error.is_some() {
                entry.last_error = error;
            }
            if tls_suite.is_some() {
                entry.tls_suite = tls_suite;
            }
        }
        // A request is over once the connection has moved on (decided, failed or gone).
        if !matches!(
            state,
            ConnectionState::ReceivedPairingRequest | ConnectionState::InProgress
        ) && self.requests().remove(&ski).is_some()
        {
            let mut ends = self.ends();
            if !ends.contains_key(&ski) {
                let end = if timed_out {
                    RequestEnd::TimedOut
                } else if matches!(
                    state,
                    ConnectionState::Trusted | ConnectionState::Pin | ConnectionState::Completed
                ) {
                    // Trusted without a decision here: a pairing through the library itself
                    // (say, the trust store changed); the terminal says "paired".
                    RequestEnd::Paired(Via::Command)
                } else {
                    RequestEnd::Left
                };
                bounded_insert(&mut ends, ski, end, MAX_ENDS);
            }
        }
        // A PIN wait is over once the connection is no longer in the PIN step (or before it).
        if !matches!(
            state,
            ConnectionState::Pin | ConnectionState::Trusted | ConnectionState::InProgress
        ) {
            self.pins().remove(&ski);
        }
    }

    /// `ski` reached data exchange over `tls_suite`.
    pub(crate) fn connected(&self, ski: Ski, tls_suite: Option<String>) {
        if let Some(peer) = self.peers().get_mut(&ski) {
            peer.tls_suite = tls_suite;
        }
    }

    /// The latest state of `ski`, if it has one.
    pub(crate) fn peer(&self, ski: &Ski) -> Option<PeerLive> {
        self.peers().get(ski).cloned()
    }

    /// A person unpaired `ski`: the questions about it are over and it cools off. Its latest
    /// state stays the one the hub reported last.
    pub(crate) fn unpaired(&self, ski: &Ski) {
        self.requests().remove(ski);
        self.pins().remove(ski);
        self.start_cooling(*ski);
    }

    /// A pairing request now waits for a decision; its hello times out after `wait`.
    pub(crate) fn request(
        &self,
        ski: Ski,
        address: SocketAddr,
        name: Option<String>,
        wait: Duration,
    ) {
        let since_ms = now_ms();
        self.ends().remove(&ski);
        self.requests().insert(
            ski,
            PendingRequest {
                ski: ski.to_string(),
                address,
                name,
                since_ms,
                expires_ms: since_ms + wait.as_millis() as u64,
            },
        );
    }

    /// Whether a pairing request of `ski` waits for a decision.
    pub(crate) fn is_pending(&self, ski: &Ski) -> bool {
        self.requests().contains_key(ski)
    }

    /// The request of `ski` is being decided here (`end`): said before the hub is told, so
    /// that whoever sees the request end (the terminal prompt) knows why. `undo` it if the hub
    /// refused the decision.
    pub(crate) fn decided(&self, ski: &Ski, end: RequestEnd) {
        bounded_insert(&mut self.ends(), *ski, end, MAX_ENDS);
        self.requests().remove(ski);
    }

    /// The decision recorded by [`Live::decided`] did not happen.
    pub(crate) fn undo(&self, ski: &Ski) {
        self.ends().remove(ski);
    }

    /// How the last pairing request of `ski` ended, if it did.
    pub(crate) fn request_end(&self, ski: &Ski) -> Option<RequestEnd> {
        self.ends().get(ski).copied()
    }

    /// A person unpaired `ski`: its requests are refused without asking for the cooling-off
    /// period.
    pub(crate) fn start_cooling(&self, ski: Ski) {
        let period = self.cooling_off;
        if period.is_zero() {
            return;
        }
        let now = std::time::Instant::now();
        self.refuse(
            ski,
            Refused {
                until: Some(now + period),
                denied_at_ms: None,
                said: false,
                added: now,
            },
        );
    }

    /// A person denied `ski`: its requests are refused without asking until a person pairs
    /// it (or `remember_denial` passes).
    pub(crate) fn denied(&self, ski: Ski) {
        let now = std::time::Instant::now();
        self.refuse(
            ski,
            Refused {
                until: self.remember_denial.map(|d| now + d),
                denied_at_ms: Some(now_ms()),
                said: false,
                added: now,
            },
        );
    }

    fn refuse(&self, ski: Ski, entry: Refused) {
        let now = std::time::Instant::now();
        let mut refused = self.refused();
        refused.retain(|_, r| r.until.is_none_or(|u| u > now));
        if refused.len() >= MAX_REFUSED
            && !refused.contains_key(&ski)
            && let Some(oldest) = refused.iter().min_by_key(|(_, r)| r.added).map(|(s, _)| *s)
        {
            refused.remove(&oldest);
        }
        refused.insert(ski, entry);
    }

    /// A person paired or approved `ski`: its requests are no longer refused.
    pub(crate) fn end_cooling(&self, ski: &Ski) {
        self.refused().remove(ski);
    }

    /// Whether a request of `ski` is refused without asking, and why (counts as said).
    pub(crate) fn refusal(&self, ski: &Ski) -> Option<Refusal> {
        let now = std::time::Instant::now();
        let mut refused = self.refused();
        let entry = refused.get_mut(ski)?;
        if entry.until.is_some_and(|u| u <= now) {
            refused.remove(ski);
            return None;
        }
        let first = !entry.said;
        entry.said = true;
        Some(match entry.denied_at_ms {
            Some(at_ms) => Refusal::Denied { at_ms },
            None => Refusal::CoolingOff {
                left: entry.until.map_or(Duration::ZERO, |u| u - now),
                first,
            },
        })
    }

    /// Whether requests of `ski` are refused without asking right now (nothing counts as said).
    pub(crate) fn is_refused(&self, ski: &Ski) -> bool {
        let now = std::time::Instant::now();
        self.refused()
            .get(ski)
            .is_some_and(|r| r.until.is_none_or(|u| u > now))
    }

    /// `ski` waits for a PIN (`rejected`: it refused the one sent); its wait ends after `wait`.
    pub(crate) fn pin_requested(&self, ski: Ski, rejected: bool, wait: Duration) {
        let since_ms = now_ms();
        self.pins().insert(
            ski,
            PinWait {
                rejected,
                since_ms,
                expires_ms: since_ms + wait.as_millis() as u64,
            },
        );
    }

    /// The PIN wait of `ski` was answered.
    pub(crate) fn pin_answered(&self, ski: &Ski) {
        self.pins().remove(ski);
    }

    /// The PIN wait of `ski`, if it waits.
    pub(crate) fn pin_wait(&self, ski: &Ski) -> Option<PinWait> {
        self.pins().get(ski).cloned()
    }

    /// How many devices wait for a PIN.
    pub(crate) fn pin_waits(&self) -> usize {
        self.pins().len()
    }

    /// The hub reported refused connections.
    pub(crate) fn record_refusal(&self, refusal: LastRefusal) {
        *self.last_refusal.lock().unwrap_or_else(|e| e.into_inner()) = Some(refusal);
    }

    /// The latest refusal reported, if any.
    pub(crate) fn last_refusal(&self) -> Option<LastRefusal> {
        self.last_refusal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The waiting requests, oldest first.
    pub(crate) fn pending(&self) -> Vec<PendingRequest> {
        let mut list: Vec<PendingRequest> = self.requests().values().cloned().collect();
        list.sort_by_key(|r| r.since_ms);
        list
    }
}

/// Inserts into a map of at most `max` entries (an arbitrary one leaves when it is full: these
/// maps only hold what a person looks at soon, so which one goes hardly matters).
fn bounded_insert<V>(map: &mut HashMap<Ski, V>, ski: Ski, value: V, max: usize) {
    if map.len() >= max
        && !map.contains_key(&ski)
        && let Some(any) = map.keys().next().copied()
    {
        map.remove(&any);
    }
    map.insert(ski, value);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unpaired_peer_cools_off_once_said_and_pairing_ends_it() {
        let ski = Ski::from_bytes([7; 20]);
        let without = Live::new(Duration::ZERO, None);
        without.start_cooling(ski);
        assert!(
            without.refusal(&ski).is_none(),
            "no period set: no cooling-off"
        );
        let live = Live::new(Duration::from_secs(60), None);
        live.start_cooling(ski);
        let Some(Refusal::CoolingOff { left, first }) = live.refusal(&ski) else {
            panic!("cooling off")
        };
        assert!(first && left <= Duration::from_secs(60));
        let Some(Refusal::CoolingOff { first, .. }) = live.refusal(&ski) else {
            panic!("cooling off")
        };
        assert!(!first, "said once");
        live.end_cooling(&ski);
        assert!(live.refusal(&ski).is_none());
    }

    /// Finding (issue 23): a denied device was asked about again after the cooling-off period.
    #[test]
    fn a_denial_is_remembered_until_the_device_is_paired_or_the_configured_period() {
        let ski = Ski::from_bytes([8; 20]);
        let live = Live::new(Duration::ZERO, None);
        live.denied(ski);
        for _ in 0..3 {
            assert!(matches!(live.refusal(&ski), Some(Refusal::Denied { .. })));
        }
        assert!(live.is_refused(&ski));
        live.end_cooling(&ski);
        assert!(live.refusal(&ski).is_none() && !live.is_refused(&ski));
        let brief = Live::new(Duration::ZERO, Some(Duration::ZERO));
        brief.denied(ski);
        assert!(brief.refusal(&ski).is_none(), "a period that has passed");
    }

    #[test]
    fn refusals_are_bounded() {
        let live = Live::new(Duration::from_secs(60), None);
        for n in 0..(MAX_REFUSED + 10) {
            let mut bytes = [0u8; 20];
            bytes[..8].copy_from_slice(&(n as u64).to_be_bytes());
            live.denied(Ski::from_bytes(bytes));
        }
        assert!(live.refused.lock().unwrap().len() <= MAX_REFUSED);
    }

    #[test]
    fn a_request_that_ends_by_itself_says_whether_it_timed_out_or_the_device_left() {
        let ski = Ski::from_bytes([9; 20]);
        let addr = "127.0.0.1:1".parse().unwrap();
        let live = Live::new(Duration::ZERO, None);
        live.request(ski, addr, None, Duration::from_secs(120));
        live.state(ski, ConnectionState::None, None, None, None, false);
        assert_eq!(live.request_end(&ski), Some(RequestEnd::Left));
        live.request(ski, addr, None, Duration::from_secs(120));
        assert_eq!(live.request_end(&ski), None, "a new request");
        live.state(
            ski,
            ConnectionState::Error,
            None,
            Some("t".into()),
            None,
            true,
        );
        assert_eq!(live.request_end(&ski), Some(RequestEnd::TimedOut));
        live.request(ski, addr, None, Duration::from_secs(120));
        live.decided(&ski, RequestEnd::Approved(Via::Command));
        live.state(ski, ConnectionState::Trusted, None, None, None, false);
        assert_eq!(
            live.request_end(&ski),
            Some(RequestEnd::Approved(Via::Command))
        );
        assert!(
            RequestEnd::Approved(Via::Command)
                .words()
                .contains("`ship-gateway approve`")
        );
    }

    #[test]
    fn a_pin_wait_lasts_while_the_connection_is_in_the_pin_step() {
        let ski = Ski::from_bytes([10; 20]);
        let live = Live::new(Duration::ZERO, None);
        live.pin_requested(ski, false, Duration::from_secs(120));
        live.state(ski, ConnectionState::Pin, None, None, None, false);
        assert!(live.pin_wait(&ski).is_some());
        live.state(ski, ConnectionState::Completed, None, None, None, false);
        assert!(live.pin_wait(&ski).is_none());
    }
}
