//! What the gateway knows right now that the hub does not keep for it: each peer's latest
//! state (with since when and its last error) and the pairing requests that wait for a person.
//! Fed by the callbacks, read by the HTTP API.

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

/// Peers' states and waiting requests, bounded by the hub's own bounds (states of peers the hub
/// reports, requests of at most `max_unpaired` connections); a request that nobody decides
/// leaves when the peer's state moves on.
#[derive(Debug, Default)]
pub(crate) struct Live {
    peers: Mutex<HashMap<Ski, PeerLive>>,
    requests: Mutex<HashMap<Ski, PendingRequest>>,
    /// Peers a person unpaired or denied: their pairing requests are refused without asking
    /// until the cooling-off period ends (value: until when, and whether that was said).
    cooling: Mutex<HashMap<Ski, (std::time::Instant, bool)>>,
    /// The cooling-off period (zero: none).
    cooling_off: Duration,
    /// The latest refusal by an admission cap.
    last_refusal: Mutex<Option<LastRefusal>>,
}

/// The most peers in cooling-off at once (the oldest leaves first).
const MAX_COOLING: usize = 1024;

/// The most peer states kept (a peer not paired that never comes back is forgotten first).
const MAX_PEERS: usize = 10_000;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

impl Live {
    /// Nothing known yet; a person's unpair or deny cools a peer off for `cooling_off` (zero:
    /// not at all).
    pub(crate) fn new(cooling_off: Duration) -> Self {
        Live {
            cooling_off,
            ..Live::default()
        }
    }

    fn peers(&self) -> std::sync::MutexGuard<'_, HashMap<Ski, PeerLive>> {
        self.peers.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn requests(&self) -> std::sync::MutexGuard<'_, HashMap<Ski, PendingRequest>> {
        self.requests.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A state change of `ski`; `tls_suite` is the suite of the connection that reached
    /// Completed (set in the same step, so a reader never sees Completed without it).
    pub(crate) fn state(
        &self,
        ski: Ski,
        state: ConnectionState,
        detailed: Option<String>,
        error: Option<String>,
        tls_suite: Option<String>,
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
        ) {
            self.requests().remove(&ski);
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

    /// Forgets `ski` (unpaired by a person: it cools off).
    pub(crate) fn forget(&self, ski: &Ski) {
        self.peers().remove(ski);
        self.requests().remove(ski);
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

    /// The request of `ski` was decided.
    pub(crate) fn decided(&self, ski: &Ski) {
        self.requests().remove(ski);
    }

    /// A person unpaired or denied `ski`: its requests are refused without asking for the
    /// cooling-off period.
    pub(crate) fn start_cooling(&self, ski: Ski) {
        let period = self.cooling_off;
        if period.is_zero() {
            return;
        }
        let now = std::time::Instant::now();
        let mut cooling = self.cooling.lock().unwrap_or_else(|e| e.into_inner());
        cooling.retain(|_, (until, _)| *until > now);
        if cooling.len() >= MAX_COOLING
            && !cooling.contains_key(&ski)
            && let Some(oldest) = cooling.iter().min_by_key(|(_, (u, _))| *u).map(|(s, _)| *s)
        {
            cooling.remove(&oldest);
        }
        cooling.insert(ski, (now + period, false));
    }

    /// A person paired or approved `ski`: no cooling-off any more.
    pub(crate) fn end_cooling(&self, ski: &Ski) {
        self.cooling
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(ski);
    }

    /// Whether `ski` is cooling off: the time left, and whether this is the first request
    /// refused for it (to say so once).
    pub(crate) fn cooling_off(&self, ski: &Ski) -> Option<(Duration, bool)> {
        let now = std::time::Instant::now();
        let mut cooling = self.cooling.lock().unwrap_or_else(|e| e.into_inner());
        let (until, said) = cooling.get_mut(ski)?;
        if *until <= now {
            cooling.remove(ski);
            return None;
        }
        let first = !*said;
        *said = true;
        Some((*until - now, first))
    }

    /// The hub reported refused connections.
    pub(crate) fn refused(&self, refusal: LastRefusal) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unpaired_or_denied_peer_cools_off_once_said_and_pairing_ends_it() {
        let ski = Ski::from_bytes([7; 20]);
        let without = Live::new(Duration::ZERO);
        without.start_cooling(ski);
        assert!(
            without.cooling_off(&ski).is_none(),
            "no period set: no cooling-off"
        );
        let live = Live::new(Duration::from_secs(60));
        live.start_cooling(ski);
        let (left, first) = live.cooling_off(&ski).unwrap();
        assert!(first && left <= Duration::from_secs(60));
        let (_, first) = live.cooling_off(&ski).unwrap();
        assert!(!first, "said once");
        live.end_cooling(&ski);
        assert!(live.cooling_off(&ski).is_none());
    }

    #[test]
    fn cooling_off_is_bounded() {
        let live = Live::new(Duration::from_secs(60));
        for n in 0..(MAX_COOLING + 10) {
            let mut bytes = [0u8; 20];
            bytes[..8].copy_from_slice(&(n as u64).to_be_bytes());
            live.start_cooling(Ski::from_bytes(bytes));
        }
        assert!(live.cooling.lock().unwrap().len() <= MAX_COOLING);
    }
}
