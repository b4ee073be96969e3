//! The gateway as the control unit of the SHIP Pairing Service (docs/pairing.md, "ship-gateway
//! as the control unit"): `pair --pairing-service` asks an energy manager to trust this gateway
//! with the secret printed with it, so nobody has to compare SKIs on the energy manager.
//!
//! * The energy manager is an ordinary pairing in `pairings.json` (SKI, SHIP ID, name, address,
//!   PIN): the gateway trusts it and dials it as soon as it is seen.
//! * The request itself is kept in `pairing-request` in the data dir (mode 0600, replaced
//!   atomically, never opened through a link): the energy manager's SKI, SHIP ID and certificate
//!   fingerprint, the secret, how long a connection must hold, and when it settled. The secret
//!   is needed at every start while the request is pending (each start signs a new request with
//!   a fresh nonce); once the request settled it is erased from the file. It never goes into
//!   `pairings.json`, an event, a log line, an error or an API answer.
//! * One request at a time. A running gateway makes it at once (`Hub::request_pairing`); a
//!   stopped one at its next start (`HubConfig::pairing_service.request`). A settled request is
//!   not handed to the hub at all: it is never announced again.
//! * Unpairing the energy manager withdraws the request and removes the file.

use std::io::{BufRead, IsTerminal, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use ship_hub::hub::{Hub, PairedPeer, RequestPairing, TrustStore};
use ship_hub::pairing_service::{DEFAULT_SETTLE_AFTER, Fingerprint, PairingSecret};
use ship_hub::protocol::{ConnectionState, Pin};
use ship_hub::qr::{QrError, ShipQr};
use ship_hub::{ShipId, Ski};

use crate::api::live::now_ms;
use crate::cli::PairArgs;
use crate::client::{self, Gateway};
use crate::data_dir::{self, DataDir};
use crate::error::GatewayError;
use crate::escape::Escaped;
use crate::events::{Event, EventLog};
use crate::settings::resolve_address;
use crate::store::LockedTrustStore;

/// The version of the `pairing-request` file's format.
const FILE_VERSION: u32 = 1;

/// The most bytes read for one line of stdin, or from a secret file.
const MAX_INPUT: u64 = 4096;

/// Our request: whom we ask, with what, and how far it got.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    /// The energy manager's SKI (paired).
    pub(crate) ski: Ski,
    /// Its SHIP ID (`forId`).
    pub(crate) ship_id: ShipId,
    /// Its certificate's fingerprint (`forPar`).
    pub(crate) fingerprint: Fingerprint,
    /// Its secret; `None` once the request settled (it is never needed again).
    pub(crate) secret: Option<PairingSecret>,
    /// How long one connection must hold before the request is withdrawn for good.
    pub(crate) settle_after: Duration,
    /// When it was made (ms since the Unix epoch).
    pub(crate) requested_ms: u64,
    /// When it settled (ms since the Unix epoch), if it did.
    pub(crate) settled_ms: Option<u64>,
}

/// The file's form.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestFile {
    version: u32,
    ski: String,
    ship_id: String,
    fingerprint: String,
    secret: Option<String>,
    settle_after_s: u64,
    requested_ms: u64,
    settled_ms: Option<u64>,
}

impl Request {
    fn to_file(&self) -> RequestFile {
        RequestFile {
            version: FILE_VERSION,
            ski: self.ski.to_string(),
            ship_id: self.ship_id.to_string(),
            fingerprint: self.fingerprint.to_string(),
            secret: self.secret.as_ref().map(PairingSecret::reveal_hex),
            settle_after_s: self.settle_after.as_secs(),
            requested_ms: self.requested_ms,
            settled_ms: self.settled_ms,
        }
    }

    fn from_file(file: RequestFile) -> Option<Request> {
        if file.version != FILE_VERSION || file.settle_after_s == 0 {
            return None;
        }
        let secret = match file.secret {
            Some(hex) => Some(PairingSecret::from_hex(&hex).ok()?),
            None => None,
        };
        // A pending request without its secret cannot be announced.
        if secret.is_none() && file.settled_ms.is_none() {
            return None;
        }
        Some(Request {
            ski: file.ski.parse().ok()?,
            ship_id: ShipId::new(file.ship_id).ok()?,
            fingerprint: file.fingerprint.parse().ok()?,
            secret,
            settle_after: Duration::from_secs(file.settle_after_s),
            requested_ms: file.requested_ms,
            settled_ms: file.settled_ms,
        })
    }

    fn settled(&self) -> bool {
        self.settled_ms.is_some()
    }

    /// What the hub is configured with (`None` once settled).
    fn for_hub(&self) -> Option<RequestPairing> {
        let secret = self.secret.clone().filter(|_| !self.settled())?;
        let mut request =
            RequestPairing::new(self.ship_id.clone(), self.ski, self.fingerprint, secret);
        request.settle_after = self.settle_after;
        Some(request)
    }
}

/// Reads `pairing-request` (none if it does not exist). A file that is not one is an error
/// naming it, never showing its content.
pub(crate) fn load(dir: &DataDir) -> Result<Option<Request>, GatewayError> {
    let path = dir.pairing_request_path();
    let text = match data_dir::read_no_follow(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(GatewayError::DataDir {
                path,
                reason: format!("cannot read it: {e}"),
            });
        }
    };
    serde_json::from_str::<RequestFile>(&text)
        .ok()
        .and_then(Request::from_file)
        .map(Some)
        .ok_or(GatewayError::DataDir {
            path,
            reason: "is not a valid SHIP Pairing Service request (fix it, or remove it and make \
                     the request again with `ship-gateway pair --pairing-service`)"
                .into(),
        })
}

/// Replaces the file at `path` with `request` (crash-safe, mode 0600).
fn store(path: &Path, request: &Request) -> std::io::Result<()> {
    let mut text =
        serde_json::to_string_pretty(&request.to_file()).map_err(std::io::Error::other)?;
    text.push('\n');
    data_dir::write_new(&path.with_file_name(".pairing-request.tmp"), path, &text)
}

/// Removes the file at `path` (gone already is fine).
fn remove(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Puts `previous` back (after a later step of making a request failed).
fn restore(path: &Path, previous: Option<&Request>) {
    let _ = match previous {
        Some(previous) => store(path, previous),
        None => remove(path),
    };
}

/// Why a new request cannot replace the current one: a pending request to another energy
/// manager must be withdrawn first (one request at a time).
fn conflict(current: Option<&Request>, ski: Ski) -> Option<String> {
    let current = current.filter(|c| !c.settled() && c.ski != ski)?;
    Some(format!(
        "a SHIP Pairing Service request to {} is pending: `ship-gateway unpair {}` withdraws it \
         (one request at a time)",
        current.ski, current.ski
    ))
}

/// How a request looks in `status`, `list` and the API.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RequestView {
    /// The energy manager's SKI.
    pub(crate) ski: String,
    /// Its SHIP ID.
    pub(crate) ship_id: String,
    /// Its certificate's fingerprint.
    pub(crate) fingerprint: String,
    /// `pending` (stored, not on the air: no gateway runs, or it runs without mDNS),
    /// `announced`, `connected` (the energy manager trusts us; the request settles at
    /// `settles_at_ms`), or `settled` (withdrawn for good).
    pub(crate) state: &'static str,
    /// When it was made (ms since the Unix epoch).
    pub(crate) requested_ms: u64,
    /// While connected: when it settles unless the connection drops (ms since the Unix epoch).
    pub(crate) settles_at_ms: Option<u64>,
    /// When it settled (ms since the Unix epoch).
    pub(crate) settled_ms: Option<u64>,
}

impl RequestView {
    /// The view of a stored request when no gateway runs.
    pub(crate) fn stored(request: &Request) -> RequestView {
        RequestView {
            ski: request.ski.to_string(),
            ship_id: request.ship_id.to_string(),
            fingerprint: request.fingerprint.to_string(),
            state: if request.settled() {
                "settled"
            } else {
                "pending"
            },
            requested_ms: request.requested_ms,
            settles_at_ms: None,
            settled_ms: request.settled_ms,
        }
    }
}

/// A request to make, as the command line or the API gives it.
#[derive(Debug)]
pub(crate) struct NewRequest {
    pub(crate) ski: Ski,
    pub(crate) ship_id: ShipId,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) secret: PairingSecret,
    pub(crate) name: Option<String>,
    pub(crate) address: Option<SocketAddr>,
    pub(crate) pin: Option<Pin>,
    pub(crate) settle_after: Duration,
}

impl NewRequest {
    fn request(&self) -> Request {
        Request {
            ski: self.ski,
            ship_id: self.ship_id.clone(),
            fingerprint: self.fingerprint,
            secret: Some(self.secret.clone()),
            settle_after: self.settle_after,
            requested_ms: now_ms(),
            settled_ms: None,
        }
    }
}

/// Why the running gateway could not make a request.
#[derive(Debug)]
pub(crate) enum MakeError {
    /// The gateway runs without mDNS.
    NoMdns,
    /// The energy manager's SKI is this gateway's own.
    OwnSki(Ski),
    /// Another request is pending.
    Pending(String),
    /// The file or the trust store failed.
    Store(String),
    /// The hub refused (the announcement failed).
    Hub(String),
}

/// The running gateway's request, shared by the events task and the API.
pub(crate) struct PairingRequests {
    path: PathBuf,
    log: Arc<EventLog>,
    mdns: bool,
    state: Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    request: Option<Request>,
    /// When the current connection to the energy manager reached data exchange (ms).
    connected_since_ms: Option<u64>,
    /// The energy manager's refusal was reported for this request (once is enough).
    refusal_reported: bool,
}

impl PairingRequests {
    /// At start: the stored request, and what the hub is to be configured with. A request whose
    /// energy manager is no longer paired (unpaired while no gateway ran) is dropped; a pending
    /// one is not announced without mDNS (said in a warning; it stays stored).
    pub(crate) fn start(
        dir: &DataDir,
        trust: &LockedTrustStore,
        mdns: bool,
        log: Arc<EventLog>,
    ) -> Result<(Arc<PairingRequests>, Option<RequestPairing>), GatewayError> {
        let path = dir.pairing_request_path();
        let mut request = load(dir)?;
        if let Some(stored) = &request
            && trust.get(&stored.ski)?.is_none()
        {
            remove(&path).map_err(|source| GatewayError::Io {
                what: format!("removing {}", path.display()),
                source,
            })?;
            if !stored.settled() {
                log.emit(Event::PairingRequestWithdrawn {
                    ski: stored.ski.to_string(),
                    reason: "the energy manager is no longer paired".into(),
                });
            }
            request = None;
        }
        let for_hub = request.as_ref().and_then(Request::for_hub);
        if let Some(pending) = &for_hub
            && !mdns
        {
            log.emit(Event::Warning {
                message: format!(
                    "the SHIP Pairing Service request to {} is not announced: it needs mDNS \
                     (this gateway runs with mDNS off); it stays stored for a start with mDNS",
                    pending.energy_manager_ski
                ),
            });
        }
        let requests = Arc::new(PairingRequests {
            path,
            log,
            mdns,
            state: Mutex::new(Slot {
                request,
                ..Slot::default()
            }),
        });
        Ok((requests, for_hub.filter(|_| mdns)))
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// After the hub started: says that the stored request is on the air.
    pub(crate) fn announced_at_start(&self, hub: &Hub) {
        if !hub.pairing_request_announced() {
            return;
        }
        if let Some(request) = &self.slot().request {
            self.log.emit(announced(request));
        }
    }

    /// The request as `status` and the API show it.
    pub(crate) fn view(&self, hub: &Hub) -> Option<RequestView> {
        let slot = self.slot();
        let request = slot.request.as_ref()?;
        let mut view = RequestView::stored(request);
        if !request.settled() && hub.pairing_request_announced() {
            view.state = "announced";
            if let Some(since) = slot.connected_since_ms {
                view.state = "connected";
                view.settles_at_ms = Some(since + request.settle_after.as_millis() as u64);
            }
        }
        Some(view)
    }

    /// The request, if it asks the energy manager `ski`.
    pub(crate) fn view_for(&self, hub: &Hub, ski: &Ski) -> Option<RequestView> {
        self.view(hub).filter(|v| v.ski == ski.to_string())
    }

    /// Makes (or replaces) the request at run time: stored, the energy manager paired, the
    /// request announced. Blocking (the disk).
    pub(crate) fn make(
        &self,
        hub: &Hub,
        new: NewRequest,
        by: &str,
    ) -> Result<RequestView, MakeError> {
        if new.ski == hub.local_ski() {
            return Err(MakeError::OwnSki(new.ski));
        }
        if !self.mdns {
            return Err(MakeError::NoMdns);
        }
        let mut slot = self.slot();
        if let Some(message) = conflict(slot.request.as_ref(), new.ski) {
            return Err(MakeError::Pending(message));
        }
        let previous = slot.request.clone();
        let request = new.request();
        let store_error =
            |e: &dyn std::fmt::Display| MakeError::Store(format!("{}: {e}", self.path.display()));
        store(&self.path, &request).map_err(|e| store_error(&e))?;
        // Paired through the hub (it stores the pairing in the background; the route waits for
        // the disk): the extras, and an address to dial, in one call.
        let mut peer = PairedPeer::new(new.ski).with_ship_id(new.ship_id.clone());
        peer.name = new.name;
        peer.last_address = new.address;
        peer.pin = new.pin;
        let hub_request = request.for_hub().expect("a new request is pending");
        let made = hub
            .pair(peer)
            .and_then(|()| hub.request_pairing(hub_request));
        if let Err(error) = made {
            restore(&self.path, previous.as_ref());
            self.log.emit(Event::PairingRequestFailed {
                ski: new.ski.to_string(),
                error: error.to_string(),
            });
            return Err(MakeError::Hub(error.to_string()));
        }
        let connected = hub.connected_peers().iter().any(|(ski, _)| *ski == new.ski);
        *slot = Slot {
            request: Some(request.clone()),
            connected_since_ms: connected.then(now_ms),
            refusal_reported: false,
        };
        drop(slot);
        if let Some(previous) = previous.filter(|p| !p.settled()) {
            self.log.emit(Event::PairingRequestWithdrawn {
                ski: previous.ski.to_string(),
                reason: "replaced by a new request".into(),
            });
        }
        self.log.emit(Event::Paired {
            ski: new.ski.to_string(),
            by: by.into(),
        });
        self.log.emit(announced(&request));
        if connected {
            self.log.emit(Event::PairingRequestConnected {
                ski: new.ski.to_string(),
                settles_in_s: request.settle_after.as_secs(),
            });
        }
        Ok(self
            .view(hub)
            .unwrap_or_else(|| RequestView::stored(&request)))
    }

    /// The hub reported that our request settled: stored as settled (the secret erased), so
    /// it is never announced again.
    pub(crate) fn settled(&self) {
        let mut slot = self.slot();
        let Some(request) = slot.request.as_mut() else {
            return;
        };
        request.settled_ms = Some(now_ms());
        request.secret = None;
        let ski = request.ski;
        let stored = store(&self.path, request);
        drop(slot);
        self.log.emit(Event::PairingRequestSettled {
            ski: ski.to_string(),
        });
        if let Err(error) = stored {
            self.log.emit(Event::Warning {
                message: format!(
                    "cannot store that the SHIP Pairing Service request to {ski} settled ({}: \
                     {error}): it is announced again at the next start",
                    self.path.display()
                ),
            });
        }
    }

    /// The pending request's energy manager, if `ski` is it.
    fn pending_target(slot: &Slot, ski: Ski) -> Option<&Request> {
        slot.request
            .as_ref()
            .filter(|r| r.ski == ski && !r.settled())
    }

    /// A peer reached data exchange.
    pub(crate) fn connected(&self, ski: Ski) {
        let mut slot = self.slot();
        let Some(settle_after) = Self::pending_target(&slot, ski).map(|r| r.settle_after) else {
            return;
        };
        if slot.connected_since_ms.is_none() {
            slot.connected_since_ms = Some(now_ms());
            drop(slot);
            self.log.emit(Event::PairingRequestConnected {
                ski: ski.to_string(),
                settles_in_s: settle_after.as_secs(),
            });
        }
    }

    /// A connected peer is no longer connected.
    pub(crate) fn disconnected(&self, ski: Ski) {
        let mut slot = self.slot();
        if slot.request.as_ref().is_some_and(|r| r.ski == ski) {
            slot.connected_since_ms = None;
        }
    }

    /// A peer's state changed: the energy manager refusing our connection is reported once per
    /// request (it does not trust us: it has not verified the request yet, or the secret, SHIP
    /// ID or fingerprint is wrong).
    pub(crate) fn state(&self, ski: Ski, state: ConnectionState, error: Option<&str>) {
        if state != ConnectionState::RemoteDeniedTrust {
            return;
        }
        let mut slot = self.slot();
        if Self::pending_target(&slot, ski).is_none() || slot.refusal_reported {
            return;
        }
        slot.refusal_reported = true;
        drop(slot);
        self.log.emit(Event::PairingRequestRefused {
            ski: ski.to_string(),
            error: error.map(str::to_owned),
        });
    }

    /// `ski` was unpaired: a request to it is withdrawn (the hub took it off the air) and the
    /// file removed. Blocking (the disk).
    pub(crate) fn unpaired(&self, ski: Ski) {
        let mut slot = self.slot();
        let Some(request) = slot.request.take_if(|r| r.ski == ski) else {
            return;
        };
        *slot = Slot::default();
        let removed = remove(&self.path);
        drop(slot);
        if !request.settled() {
            self.log.emit(Event::PairingRequestWithdrawn {
                ski: ski.to_string(),
                reason: "the energy manager was unpaired".into(),
            });
        }
        if let Err(error) = removed {
            self.log.emit(Event::Warning {
                message: format!(
                    "cannot remove {} ({error}): the request to {ski} is dropped at the next \
                     start (its energy manager is no longer paired)",
                    self.path.display()
                ),
            });
        }
    }
}

fn announced(request: &Request) -> Event {
    Event::PairingRequestAnnounced {
        ski: request.ski.to_string(),
        ship_id: request.ship_id.to_string(),
        fingerprint: request.fingerprint.to_string(),
    }
}

/// `unpair` with no gateway running: a request to `ski` is removed with the pairing.
pub(crate) fn unpaired_offline(dir: &DataDir, ski: Ski) -> Result<bool, GatewayError> {
    let path = dir.pairing_request_path();
    match load(dir) {
        Ok(Some(request)) if request.ski == ski => {
            remove(&path).map_err(|source| GatewayError::Io {
                what: format!("removing {}", path.display()),
                source,
            })?;
            Ok(!request.settled())
        }
        _ => Ok(false),
    }
}

// ----- the command line: `pair --pairing-service` ------------------------------------------

fn setting(message: impl Into<String>) -> GatewayError {
    GatewayError::Setting(message.into())
}

/// Reads a fingerprint as people copy it: 64 hex digits, spaces and `:` ignored, either case.
pub(crate) fn parse_fingerprint(text: &str) -> Result<Fingerprint, String> {
    let digits: String = text
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    digits
        .parse()
        .map_err(|_| "not a certificate fingerprint: 64 hex digits (SHA-256) expected".to_owned())
}

/// Stdin, read a line at a time: the QR code, the secret and the PIN may all come from it (in
/// that order). On a terminal each line is asked for on stderr, the secret and the PIN without
/// echo.
struct Stdin {
    terminal: bool,
}

impl Stdin {
    fn new() -> Stdin {
        Stdin {
            terminal: std::io::stdin().is_terminal(),
        }
    }

    fn line(&self, what: &str, secret: bool) -> Result<String, GatewayError> {
        let stdin = std::io::stdin();
        if self.terminal {
            eprint!("{what}{}: ", if secret { " (not shown)" } else { "" });
        }
        let echo = (self.terminal && secret)
            .then(|| EchoOff::new(&stdin))
            .flatten();
        let mut line = String::new();
        let read = stdin.lock().take(MAX_INPUT).read_line(&mut line);
        drop(echo);
        if self.terminal && secret {
            eprintln!();
        }
        read.map_err(|source| GatewayError::Io {
            what: format!("reading {what} from stdin"),
            source,
        })?;
        if line.len() as u64 >= MAX_INPUT && !line.ends_with('\n') {
            return Err(setting(format!(
                "{what} from stdin: a line is longer than {MAX_INPUT} bytes"
            )));
        }
        Ok(line.trim().to_owned())
    }
}

/// The terminal's echo, off while this lives.
struct EchoOff {
    saved: rustix::termios::Termios,
}

impl EchoOff {
    fn new(stdin: &std::io::Stdin) -> Option<EchoOff> {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcsetattr};
        let saved = tcgetattr(stdin).ok()?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        tcsetattr(stdin, OptionalActions::Now, &quiet).ok()?;
        Some(EchoOff { saved })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// Reads the secret from `path` (hex). The error names the file, never its content.
fn read_secret_file(path: &Path) -> Result<PairingSecret, GatewayError> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_INPUT).read_to_string(&mut text))
        .map_err(|source| GatewayError::Io {
            what: format!("reading the pairing secret file {}", path.display()),
            source,
        })?;
    PairingSecret::from_hex(&text)
        .map_err(|e| setting(format!("pairing secret file {}: {e}", path.display())))
}

/// `pair --pairing-service`: through the running gateway, or stored for its next start.
pub(crate) fn pair(data_dir: Option<PathBuf>, args: PairArgs) -> Result<(), GatewayError> {
    let stdin = Stdin::new();
    let code = match args.qr.as_deref() {
        None => None,
        Some(text) => {
            let from_stdin = text == "-";
            let text = if from_stdin {
                stdin.line("the energy manager's QR code (scan or paste it)", false)?
            } else {
                text.to_owned()
            };
            // The error names the field, never the text: a code may carry a PIN and a secret.
            let code: ShipQr = text
                .parse()
                .map_err(|e: QrError| setting(format!("invalid --qr: {e}")))?;
            if code.pairing_secret().is_some() && !from_stdin {
                return Err(setting(
                    "the QR code carries the pairing secret (SPSEC): give it with `--qr -` \
                     (from stdin), which keeps it out of the process list; nothing was stored",
                ));
            }
            Some(code)
        }
    };
    let ski = code
        .as_ref()
        .map(ShipQr::ski)
        .or(args.ski)
        .ok_or_else(|| setting("pair --pairing-service needs a SKI or --qr"))?;
    let ship_id = code
        .as_ref()
        .map(|c| c.ship_id().clone())
        .or(args.ship_id)
        .ok_or_else(|| {
            setting(
                "pair --pairing-service needs the energy manager's SHIP ID: --qr (its code), or \
                 --ship-id",
            )
        })?;
    let given = args
        .fingerprint
        .as_deref()
        .map(parse_fingerprint)
        .transpose()
        .map_err(|e| setting(format!("invalid --fingerprint: {e}")))?;
    let fingerprint = match (code.as_ref().and_then(ShipQr::fingerprint), given) {
        (Some(a), Some(b)) if a != b => {
            return Err(setting(
                "the QR code's fingerprint (FPH256) and --fingerprint differ: check which \
                 belongs to the energy manager",
            ));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => {
            return Err(setting(
                "pair --pairing-service needs the fingerprint of the energy manager's \
                 certificate: --qr with FPH256 in its code, or --fingerprint (64 hex digits)",
            ));
        }
    };
    let in_code = code.as_ref().and_then(|c| c.pairing_secret().cloned());
    let secret = match (in_code, args.secret_file.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(setting(
                "the QR code carries the pairing secret (SPSEC) and --secret-file gives one too: \
                 give it once",
            ));
        }
        (Some(secret), None) => secret,
        (None, Some(path)) if path == Path::new("-") => {
            PairingSecret::from_hex(&stdin.line("the energy manager's pairing secret", true)?)
                .map_err(|e| setting(format!("--secret-file -: {e}")))?
        }
        (None, Some(path)) => read_secret_file(path)?,
        (None, None) => {
            return Err(setting(
                "pair --pairing-service needs the energy manager's pairing secret: \
                 --secret-file FILE, or --secret-file - to type or pipe it (never on the \
                 command line)",
            ));
        }
    };
    let pin = match args.pin.as_deref() {
        Some("-") => Some(stdin.line("the energy manager's PIN", true)?),
        Some(text) => Some(text.to_owned()),
        None => code
            .as_ref()
            .and_then(|c| c.pin())
            .map(|p| p.expose().to_owned()),
    };
    // Checked here (the error never repeats the text).
    let pin = pin
        .map(|text| Pin::new(text.trim()).map_err(|e| setting(format!("--pin: {e}"))))
        .transpose()?;
    let name = args.name.or_else(|| {
        let code = code.as_ref()?;
        let parts: Vec<&str> = [code.brand(), code.model()].into_iter().flatten().collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    });
    let address = args
        .address
        .map(|a| resolve_address(&a))
        .transpose()
        .map_err(|e| setting(format!("invalid --address: {e}")))?;
    let settle_after = match args.settle_after {
        Some(0) => return Err(setting("--settle-after must be at least 1 second")),
        Some(secs) => Duration::from_secs(secs),
        None => DEFAULT_SETTLE_AFTER,
    };
    let new = NewRequest {
        ski,
        ship_id,
        fingerprint,
        secret,
        name,
        address,
        pin,
        settle_after,
    };
    let dir = DataDir::open(data_dir, true)?;
    if let Some(identity) = dir.existing_identity()?
        && identity.ski() == ski
    {
        return Err(GatewayError::OwnSki(ski));
    }
    match client::reach(&dir)? {
        Gateway::Running(stream) => {
            let body = serde_json::json!({
                "ski": new.ski.to_string(),
                "ship_id": new.ship_id.to_string(),
                "fingerprint": new.fingerprint.to_string(),
                "secret": new.secret.reveal_hex(),
                "name": new.name,
                "address": new.address.map(|a| a.to_string()),
                "pin": new.pin.as_ref().map(|p| p.reveal()),
                "settle_after_s": new.settle_after.as_secs(),
            })
            .to_string();
            let answer =
                client::call_on(stream, &dir, "POST", "/api/v1/pairing-request", Some(&body))?;
            if answer.status != 201 {
                return Err(client::refused(&answer));
            }
            println!(
                "{}",
                Escaped(answer.body["next"].as_str().unwrap_or("request announced"))
            );
        }
        Gateway::NotRunning(_no_gateway) => {
            let trust = dir.trust_store()?;
            let path = dir.pairing_request_path();
            let previous = load(&dir)?;
            if let Some(message) = conflict(previous.as_ref(), ski) {
                return Err(GatewayError::Refused(message));
            }
            store(&path, &new.request()).map_err(|source| GatewayError::Io {
                what: format!("storing {}", path.display()),
                source,
            })?;
            if let Err(error) =
                trust.store_pairing(ski, Some(new.ship_id), new.name, new.address, new.pin)
            {
                restore(&path, previous.as_ref());
                return Err(error.into());
            }
            println!(
                "paired {ski} and stored a SHIP Pairing Service request to it: the gateway \
                 announces it when it runs (with mDNS), and connects once the energy manager \
                 trusts it"
            );
        }
    }
    Ok(())
}

/// A request's view (`RequestView` as JSON, or null) in words, for `list` and `status`.
pub(crate) fn words(view: &serde_json::Value) -> Option<String> {
    let ski = view["ski"].as_str()?;
    let ship_id = Escaped(view["ship_id"].as_str().unwrap_or("-"));
    let at = |key: &str| {
        view[key]
            .as_u64()
            .map(|ms| {
                crate::commands::utc(std::time::UNIX_EPOCH + Duration::from_millis(ms)) + " UTC"
            })
            .unwrap_or_else(|| "-".into())
    };
    let head = format!("SHIP Pairing Service: request to {ski} (SHIP ID {ship_id})");
    Some(match view["state"].as_str()? {
        "pending" => format!(
            "{head}, made {}: not announced yet (the gateway announces it when it runs with \
             mDNS)",
            at("requested_ms")
        ),
        "announced" => format!(
            "{head}, announced since {}: waiting for the energy manager to trust this gateway \
             (nothing after a few minutes? check the secret, SHIP ID and fingerprint)",
            at("requested_ms")
        ),
        "connected" => format!(
            "{head}: the energy manager trusts this gateway and is connected; the request is \
             withdrawn for good at {} if the connection holds",
            at("settles_at_ms")
        ),
        "settled" => format!(
            "{head}: settled at {} (withdrawn for good)",
            at("settled_ms")
        ),
        _ => return None,
    })
}

/// What a made request leads to, said as it will happen.
pub(crate) fn next_words(hub: &Hub, view: &RequestView, address: Option<SocketAddr>) -> String {
    let ski = &view.ski;
    if view.state == "connected" {
        return format!(
            "asking {ski} to trust this gateway through the SHIP Pairing Service: it is \
             connected; the request is withdrawn once the connection has held long enough"
        );
    }
    let seen = view
        .ski
        .parse::<Ski>()
        .is_ok_and(|s| hub.visible_services().iter().any(|v| v.ski == s));
    format!(
        "asking {ski} to trust this gateway through the SHIP Pairing Service: request announced \
         over mDNS; {} (`ship-gateway status` shows how far it got)",
        match address {
            Some(address) => format!("the gateway dials it at {address}"),
            None if seen => "the gateway dials it now (its address is known from mDNS)".into(),
            None => "the gateway dials it as soon as mDNS shows it".into(),
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request {
        Request {
            ski: "0a0b0c0d0e0f101112131415161718191a1b1c1d".parse().unwrap(),
            ship_id: ShipId::new("i:1_u:em").unwrap(),
            fingerprint: Fingerprint::from_bytes([7; 32]),
            secret: Some(PairingSecret::from_hex("7A37DCF81BDB50F8E92CFA4160CCB3DE").unwrap()),
            settle_after: Duration::from_secs(900),
            requested_ms: 1,
            settled_ms: None,
        }
    }

    /// The file keeps everything, mode 0600; settled, it keeps no secret; a file that is not
    /// a request is an error naming it, never showing what it holds.
    #[test]
    fn the_file_round_trips_private_and_a_bad_one_is_refused_without_its_content() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = DataDir::open(Some(tmp.path().join("d")), true).unwrap();
        let path = dir.pairing_request_path();
        store(&path, &request()).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let read = load(&dir).unwrap().unwrap();
        assert_eq!(read.ski, request().ski);
        assert_eq!(read.secret, request().secret);
        assert!(read.for_hub().is_some());
        let mut settled = read;
        settled.settled_ms = Some(2);
        settled.secret = None;
        store(&path, &settled).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("7A37"), "{text}");
        let read = load(&dir).unwrap().unwrap();
        assert!(read.settled() && read.for_hub().is_none());
        // Pending without a secret, or garbage: refused, content not shown.
        std::fs::write(
            &path,
            text.replace("\"settled_ms\": 2", "\"settled_ms\": null"),
        )
        .unwrap();
        assert!(load(&dir).is_err());
        std::fs::write(&path, "{\"secret\": \"SECRETSECRET\"").unwrap();
        let error = load(&dir).unwrap_err().to_string();
        assert!(
            error.contains("pairing-request") && !error.contains("SECRETSECRET"),
            "{error}"
        );
    }

    #[test]
    fn one_pending_request_at_a_time() {
        let pending = request();
        let other: Ski = "0101010101010101010101010101010101010101".parse().unwrap();
        assert!(conflict(Some(&pending), other).is_some());
        assert!(conflict(Some(&pending), pending.ski).is_none(), "replaced");
        assert!(conflict(None, other).is_none());
        let mut settled = pending;
        settled.settled_ms = Some(5);
        assert!(conflict(Some(&settled), other).is_none());
    }

    #[test]
    fn fingerprints_read_as_people_copy_them() {
        let hex = "2CC72E781F7A7D2A08D50196C50FEDF0F7BA583F43F76C8C0DDEC9EEF0D005B4";
        let expected: Fingerprint = hex.parse().unwrap();
        let colons: String = hex
            .to_lowercase()
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(parse_fingerprint(&colons), Ok(expected));
        assert_eq!(parse_fingerprint(&format!(" {hex} ")), Ok(expected));
        assert!(parse_fingerprint(&hex[..62]).is_err());
    }
}
