//! The routes of the HTTP API (docs/gateway.md, "HTTP API"). `docs/openapi.json` describes
//! each; a test (`crates/ship-gateway/tests/gateway/http.rs`) sends every operation it lists to a running gateway
//! and checks that the router answers it.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use ship_hub::hub::{Hub, HubError, PairedPeer};
use ship_hub::protocol::Pin;
use ship_hub::{ShipId, Ski};

use super::live::{PendingRequest, PinWait, RequestEnd, Via};
use super::{ApiError, ApiState, auth, metrics};
use crate::events::{Event, ServiceRow};

pub(crate) fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/api/v1/status", get(status))
        .route("/api/v1/peers", get(peers).post(pair))
        .route("/api/v1/peers/{ski}", axum::routing::delete(unpair))
        .route("/api/v1/peers/{ski}/data", post(send))
        .route("/api/v1/peers/{ski}/disconnect", post(disconnect))
        .route("/api/v1/peers/{ski}/pin", post(answer_pin))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/visible", get(visible))
        .route("/api/v1/requests", get(requests))
        .route("/api/v1/requests/{ski}/approve", post(approve))
        .route("/api/v1/requests/{ski}/deny", post(deny))
        .route("/api/v1/events", get(events))
        .route("/api/v1/qr.svg", get(qr_svg))
        .route(
            "/api/v1/pairing-request",
            post(super::pairing_request::make),
        )
        .route("/metrics", get(metrics::metrics))
        .route("/", get(console))
        .route("/console.js", get(console_js))
        .route("/console.css", get(console_css))
        .route("/login", get(auth::login_form).post(auth::login_submit))
        .route("/logout", post(auth::logout))
        .route("/api/v1/login-link", post(login_link))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(state.limits.max_body))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::check,
        ))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// The Content-Security-Policy of every answer (the console, its script and style, the login
/// form, the API): scripts and styles only from the gateway's own files (`/console.js`,
/// `/console.css`), never inline, so markup that ever reached a page could not run script;
/// nothing is loaded from elsewhere; no framing.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
    base-uri 'none'";

/// Adds the security headers ([`CSP`], no framing, no type sniffing) to every answer.
async fn security_headers(request: Request, next: axum::middleware::Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    response
}

/// `GET /`: the web console, one page embedded in the binary, with its script and style in
/// separate files (no inline script: [`CSP`]). Everything a peer supplies is put into the page
/// as text (never as markup), and the page loads nothing from elsewhere.
async fn console() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        include_str!("console.html"),
    )
        .into_response()
}

/// `GET /console.js`: the console's script.
async fn console_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("console.js"),
    )
        .into_response()
}

/// `GET /console.css`: the console's style.
async fn console_css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("console.css"),
    )
        .into_response()
}

/// `GET /api/v1/openapi.json`: the OpenAPI 3 description of this API (`docs/openapi.json`).
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../../../../docs/openapi.json"),
    )
        .into_response()
}

/// A route that exists, asked with another method: 405 with the usual JSON error (axum adds
/// the `Allow` header).
async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

async fn not_found(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {} {}", request.method(), request.uri().path()),
    )
}

/// A SKI from the path: 40 hex digits.
pub(super) fn ski(text: &str) -> Result<Ski, ApiError> {
    text.parse().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_ski",
            format!("not a SKI ({e}): 40 hex digits expected"),
        )
    })
}

/// Reads the body (bounded in size and time) of a request that must be JSON.
async fn json_body(state: &ApiState, request: Request) -> Result<Bytes, ApiError> {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        ));
    }
    let limit = state.limits.max_body;
    // Bounded in time by the server: the body fails once its deadline has passed.
    axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|error| super::body_error(error, limit))
}

pub(super) async fn parse<T: DeserializeOwned>(
    state: &ApiState,
    request: Request,
) -> Result<T, ApiError> {
    let bytes = json_body(state, request).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("unreadable request: {e}"),
        )
    })
}

/// Runs blocking work (files of the data directory) off the runtime's threads.
pub(super) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?
}

pub(super) fn store_error(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "store",
        format!("the pairings could not be read or written: {error}"),
    )
}

/// `POST /api/v1/login-link` (control socket only): a one-time login link for the console,
/// what `ship-gateway console` prints.
#[derive(Serialize)]
struct LoginLink {
    url: String,
    /// When it stops working (ms since the Unix epoch).
    expires_ms: u64,
}

async fn login_link(State(state): State<Arc<ApiState>>) -> Result<Json<LoginLink>, ApiError> {
    if state.access != auth::Access::Socket {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "socket_only",
            "login links are made for the gateway's own user: run `ship-gateway console` on \
             the gateway",
        ));
    }
    let (Some(auth), Some(address)) = (&state.auth, state.http) else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_http",
            "this gateway serves no HTTP API and console (start it with --http ADDR:PORT)",
        ));
    };
    let (code, life) = auth.new_link().ok_or_else(|| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "no random numbers from the system",
        )
    })?;
    // A listener on every address is reached on this machine through loopback.
    let host = match address.ip() {
        ip if ip.is_unspecified() && ip.is_ipv6() => {
            SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), address.port())
        }
        ip if ip.is_unspecified() => {
            SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), address.port())
        }
        _ => address,
    };
    Ok(Json(LoginLink {
        url: format!("http://{host}/login?code={code}"),
        expires_ms: super::live::now_ms() + life.as_millis() as u64,
    }))
}

// ----- status -----------------------------------------------------------------------------

#[derive(Serialize)]
struct Status {
    ski: String,
    ship_id: String,
    /// The SHIP installation QR code's text (`SHIP;SKI:…;ENDSHIP;`), `null` if none.
    qr: Option<String>,
    addresses: Vec<SocketAddr>,
    version: &'static str,
    uptime_s: u64,
    auto_accept: bool,
    /// mDNS discovery is on; `false` with `--no-mdns` (nothing is then ever visible: pair by
    /// SKI and address, or by QR text).
    mdns: bool,
    counters: Counters,
    /// Our own SHIP Pairing Service request (this gateway as the control unit), `null` if none.
    pairing_request: Option<crate::pairing_request::RequestView>,
    refusals: Refusals,
}

/// Incoming connections refused by the admission caps.
#[derive(Serialize)]
struct Refusals {
    /// All refused since start.
    total: u64,
    /// By cap, named by its configuration key (`max_unpaired_per_address`, …).
    by_cap: std::collections::BTreeMap<&'static str, u64>,
    /// The latest refusal reported (each source at most once a minute), `null` if none.
    last: Option<crate::api::live::LastRefusal>,
}

#[derive(Serialize)]
struct Counters {
    paired: usize,
    connected: usize,
    pending_requests: usize,
    /// Paired devices waiting for the PIN they require.
    pin_requests: usize,
    visible: usize,
    incoming_accepted: u64,
    dial_attempts: u64,
    handshakes_completed: u64,
    handshake_failures: u64,
    events: u64,
}

async fn status(State(state): State<Arc<ApiState>>) -> Result<Json<Status>, ApiError> {
    let paired = state.hub.pairings().len();
    let metrics = state.hub.metrics();
    Ok(Json(Status {
        ski: state.hub.local_ski().to_string(),
        ship_id: state.ship_id.to_string(),
        qr: state.qr.as_ref().map(|(text, _)| text.clone()),
        addresses: vec![state.hub.local_addr()],
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: state.started.elapsed().as_secs(),
        auto_accept: state.hub.auto_accept(),
        mdns: state.mdns,
        counters: Counters {
            paired,
            connected: state.hub.connected_peers().len(),
            pending_requests: state.live.pending().len(),
            pin_requests: state.live.pin_waits(),
            visible: state.hub.visible_services().len(),
            incoming_accepted: metrics.incoming_accepted,
            dial_attempts: metrics.dial_attempts,
            handshakes_completed: metrics.handshakes_completed,
            handshake_failures: metrics.failures.total(),
            events: state.bus.last_id(),
        },
        pairing_request: state.pairing_request.view(&state.hub),
        refusals: Refusals {
            total: metrics.refusals.total(),
            by_cap: ship_hub::hub::AdmissionCap::ALL
                .iter()
                .map(|cap| (crate::hub_events::cap_key(*cap), metrics.refusals.get(*cap)))
                .collect(),
            last: state.live.last_refusal(),
        },
    }))
}

/// `GET /api/v1/qr.svg`: this gateway's installation QR code as an SVG picture.
async fn qr_svg(State(state): State<Arc<ApiState>>) -> Response {
    match &state.qr {
        Some((_, svg)) => ([(header::CONTENT_TYPE, "image/svg+xml")], svg.clone()).into_response(),
        None => ApiError::new(
            StatusCode::NOT_FOUND,
            "no_qr",
            "this gateway's device values cannot be written into a QR code",
        )
        .into_response(),
    }
}

// ----- peers ------------------------------------------------------------------------------

/// A paired peer with its live state.
#[derive(Serialize)]
pub(crate) struct PeerView {
    ski: String,
    name: Option<String>,
    ship_id: Option<String>,
    /// One of the ten SHIP states; `null` when no gateway runs (`ship-gateway list`).
    state: Option<String>,
    detailed: Option<String>,
    /// When it entered `state` (ms since the Unix epoch); `null` if not since this start.
    since_ms: Option<u64>,
    last_address: Option<String>,
    /// Last successful connection (ms since the Unix epoch), as stored.
    last_seen_ms: Option<u64>,
    tls_suite: Option<String>,
    last_error: Option<String>,
    /// A PIN for the peer is stored (never the PIN itself).
    pin_stored: bool,
    /// Our SHIP Pairing Service request to this peer (an energy manager), if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) pairing_request: Option<crate::pairing_request::RequestView>,
    /// The device waits for the PIN it requires (`POST /api/v1/peers/{ski}/pin` answers it);
    /// `null` when it does not.
    pin_request: Option<PinWait>,
}

impl PeerView {
    /// What the trust store knows of a peer, with no live state (`state` is `null`): what
    /// `ship-gateway list` shows when no gateway runs.
    pub(crate) fn stored(peer: &PairedPeer) -> PeerView {
        PeerView {
            ski: peer.ski.to_string(),
            name: peer.name.clone(),
            ship_id: peer.ship_id.as_ref().map(|s| s.as_str().to_owned()),
            state: None,
            detailed: None,
            since_ms: None,
            last_address: peer.last_address.map(|a| a.to_string()),
            last_seen_ms: peer.last_seen.and_then(|t| {
                t.duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_millis() as u64)
            }),
            tls_suite: None,
            last_error: None,
            pin_stored: peer.pin.is_some(),
            pairing_request: None,
            pin_request: None,
        }
    }
}

fn view(state: &ApiState, peer: &PairedPeer) -> PeerView {
    let live = state.live.peer(&peer.ski);
    let mut view = PeerView::stored(peer);
    view.state = Some(
        live.as_ref()
            .map(|l| l.state.clone())
            .unwrap_or_else(|| format!("{:?}", state.hub.connection_state(peer.ski))),
    );
    view.detailed = live.as_ref().and_then(|l| l.detailed.clone());
    view.since_ms = live.as_ref().map(|l| l.since_ms);
    view.tls_suite = live.as_ref().and_then(|l| l.tls_suite.clone());
    view.last_error = live.and_then(|l| l.last_error);
    view.pairing_request = state.pairing_request.view_for(&state.hub, &peer.ski);
    view.pin_request = state.live.pin_wait(&peer.ski);
    view
}

async fn peers(State(state): State<Arc<ApiState>>) -> Result<Json<Vec<PeerView>>, ApiError> {
    let paired = state.hub.pairings();
    Ok(Json(paired.iter().map(|p| view(&state, p)).collect()))
}

/// Pairs through the hub with the extras that are given (SHIP ID, name, address, the PIN to
/// send; what is not given keeps what is stored), which dials it when it knows an address, and
/// waits until the pairing is on disk. Returns the pairing as the hub keeps it.
async fn pair_with_extras(
    hub: &Hub,
    ski: Ski,
    ship_id: Option<ShipId>,
    name: Option<String>,
    address: Option<SocketAddr>,
    pin: Option<Pin>,
) -> Result<PairedPeer, ApiError> {
    let refused = |e: HubError| ApiError::new(StatusCode::CONFLICT, "not_paired", e.to_string());
    let mut peer = PairedPeer::new(ski);
    peer.ship_id = ship_id;
    peer.name = name;
    peer.last_address = address;
    peer.pin = pin;
    hub.pair(peer).map_err(refused)?;
    hub.pairings_saved().await.map_err(store_error)?;
    hub.pairing(ski).ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            "not_paired",
            format!("{ski} was unpaired at the same time"),
        )
    })
}

/// What a new pairing leads to, said as it will happen: a connection of the device that waited
/// for the decision goes on; else the gateway dials only an address it knows (given, stored, or
/// seen over mDNS), or waits for the device.
fn what_happens_next(hub: &Hub, peer: &PairedPeer, waited: bool) -> String {
    let ski = peer.ski;
    if hub.connection_state(ski) == ship_hub::protocol::ConnectionState::Completed {
        return format!("paired {ski}; it is connected");
    }
    if waited {
        return format!("paired {ski}; its connection, which waited for this, goes on now");
    }
    if let Some(address) = peer.last_address {
        return format!("paired {ski}; the running gateway dials it now at {address}");
    }
    if hub.visible_services().iter().any(|s| s.ski == ski) {
        return format!(
            "paired {ski}; the running gateway dials it now (its address is known from mDNS)"
        );
    }
    format!(
        "paired {ski}; no address is known yet: it is trusted when it connects, and dialled as \
         soon as mDNS shows it (or give `--address HOST:PORT`)"
    )
}

/// `POST /api/v1/peers`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PairRequest {
    /// The SKI; or give `qr` instead.
    ski: Option<String>,
    /// The text of the device's SHIP QR code (`SHIP;SKI:…;ENDSHIP;`): its SKI, SHIP ID, PIN
    /// (if any) and, unless `name` is given, its brand and model as the name.
    qr: Option<String>,
    ship_id: Option<String>,
    name: Option<String>,
    address: Option<String>,
    /// The PIN the device requires (8 to 16 hex digits), stored and sent when it asks.
    pin: Option<String>,
}

/// The longest name accepted for a pairing.
pub(super) const MAX_NAME: usize = 64;

/// A body's `address`: HOST:PORT as the command line takes it, an IP address or a name
/// (`localhost:4712`), resolved off the runtime.
pub(super) async fn address(text: Option<String>) -> Result<Option<SocketAddr>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    blocking(move || {
        crate::settings::resolve_address(&text)
            .map(Some)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_address",
                    format!("not an address (HOST:PORT): {e}"),
                )
            })
    })
    .await
}

/// A body's `name`: one line of at most [`MAX_NAME`] characters.
pub(super) fn check_name(name: Option<&str>) -> Result<(), ApiError> {
    match name {
        Some(name) if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) => {
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_name",
                format!("a name is one line of at most {MAX_NAME} characters"),
            ))
        }
        _ => Ok(()),
    }
}

/// A body's `pin`. The error never repeats the text: it may be a PIN.
pub(super) fn pin(text: Option<String>) -> Result<Option<Pin>, ApiError> {
    text.map(|text| Pin::new(&text)).transpose().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_pin",
            format!("not a PIN: {e}"),
        )
    })
}

/// The answer to `POST /api/v1/peers`: the peer, and what happens next in words.
#[derive(Serialize)]
struct Paired {
    #[serde(flatten)]
    peer: PeerView,
    /// What the gateway does now (dial at a known address, or wait for the device).
    next: String,
}

async fn pair(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    match pair_inner(state, request).await {
        Ok(paired) => (StatusCode::CREATED, Json(paired)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn pair_inner(state: Arc<ApiState>, request: Request) -> Result<Paired, ApiError> {
    let mut body: PairRequest = parse(&state, request).await?;
    let bad = |code, message: String| ApiError::new(StatusCode::BAD_REQUEST, code, message);
    let ski = match (body.ski.take(), body.qr.take()) {
        (Some(text), None) => ski(&text)?,
        (None, Some(text)) => {
            // The error names the field, never the text: a code may carry a PIN.
            let code: ship_hub::qr::ShipQr = text
                .trim()
                .parse()
                .map_err(|e| bad("bad_qr", format!("not a SHIP QR code: {e}")))?;
            if body.ship_id.is_none() {
                body.ship_id = Some(code.ship_id().as_str().to_owned());
            }
            if body.name.is_none() {
                let parts: Vec<&str> = [code.brand(), code.model()].into_iter().flatten().collect();
                let name: String = parts.join(" ").chars().take(MAX_NAME).collect();
                body.name = (!name.is_empty()).then_some(name);
            }
            if body.pin.is_none() {
                body.pin = code.pin().map(|pin| pin.expose().to_owned());
            }
            code.ski()
        }
        _ => {
            return Err(bad(
                "bad_request",
                "give either \"ski\" or \"qr\" (the text of the device's SHIP QR code)".into(),
            ));
        }
    };
    if ski == state.hub.local_ski() {
        return Err(bad("own_ski", format!("{ski} is this gateway's own SKI")));
    }
    let ship_id = body
        .ship_id
        .map(ShipId::new)
        .transpose()
        .map_err(|e| bad("bad_ship_id", format!("not a SHIP ID: {e}")))?;
    let address = address(body.address).await?;
    check_name(body.name.as_deref())?;
    let pin = pin(body.pin)?;
    let name = body.name;
    // A pairing request of the device that waits is satisfied by this pairing: said first, so
    // that the terminal (if it asks about it) says what happened.
    let satisfied = state.live.is_pending(&ski);
    if satisfied {
        state.live.decided(&ski, RequestEnd::Paired(via(&state)));
    }
    let given = pin.clone();
    let peer = pair_with_extras(&state.hub, ski, ship_id, name, address, pin)
        .await
        .inspect_err(|_| {
            if satisfied {
                state.live.undo(&ski);
            }
        })?;
    // A connection of the device that waits for this PIN gets it at once (else the hub keeps
    // it for the next connection; the stored one is used from then on).
    let mut pin_given = false;
    if let Some(pin) = given {
        pin_given = state.live.pin_wait(&ski).is_some() && state.hub.enter_pin(ski, pin).is_ok();
        state.live.pin_answered(&ski);
    }
    state.live.end_cooling(&ski);
    state.log.emit(Event::Paired {
        ski: ski.to_string(),
        by: match via(&state) {
            Via::Command => "pair command",
            Via::Http => "HTTP API",
        }
        .into(),
    });
    Ok(Paired {
        next: if pin_given {
            format!("paired {ski}; the PIN went to its connection, which waited for it")
        } else {
            what_happens_next(&state.hub, &peer, satisfied)
        },
        peer: view(&state, &peer),
    })
}

async fn unpair(
    State(state): State<Arc<ApiState>>,
    Path(text): Path<String>,
) -> Result<StatusCode, ApiError> {
    let ski = ski(&text)?;
    if state.hub.pairing(ski).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_paired",
            format!("{ski} is not paired"),
        ));
    }
    state
        .hub
        .unpair(ski)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "not_unpaired", e.to_string()))?;
    let requests = state.pairing_request.clone();
    blocking(move || {
        requests.unpaired(ski);
        Ok(())
    })
    .await?;
    state.hub.pairings_saved().await.map_err(store_error)?;
    state.live.unpaired(&ski);
    state.log.emit(Event::Unpaired {
        ski: ski.to_string(),
    });
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize)]
struct Disconnected {
    ski: String,
}

/// `POST /api/v1/peers/{ski}/disconnect`: closes its connections; a paired peer stays paired
/// and is dialled again by the usual backoff.
async fn disconnect(
    State(state): State<Arc<ApiState>>,
    Path(text): Path<String>,
) -> Result<Json<Disconnected>, ApiError> {
    let ski = ski(&text)?;
    if state.hub.connections(ski).is_empty() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_connected",
            format!("{ski} has no connection"),
        ));
    }
    state
        .hub
        .disconnect(ski)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "not_connected", e.to_string()))?;
    Ok(Json(Disconnected {
        ski: ski.to_string(),
    }))
}

#[derive(Serialize)]
struct Sent {
    bytes: usize,
}

async fn send(
    State(state): State<Arc<ApiState>>,
    Path(text): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<Sent>), ApiError> {
    let ski = ski(&text)?;
    let payload = json_body(&state, request).await?;
    match state.hub.send_data(ski, &payload) {
        Ok(()) => {
            state.log.emit(Event::DataSent {
                ski: ski.to_string(),
                bytes: payload.len(),
            });
            Ok((
                StatusCode::ACCEPTED,
                Json(Sent {
                    bytes: payload.len(),
                }),
            ))
        }
        Err(e @ HubError::NotConnected(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_connected",
            e.to_string(),
        )),
        Err(e @ HubError::PayloadTooLarge { .. }) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("{e}; nothing was sent"),
        )),
        Err(e @ HubError::InvalidPayload(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_payload",
            e.to_string(),
        )),
        Err(e @ HubError::Backpressure(_)) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "backpressure",
            format!("{e}; try again later"),
        )),
        Err(e @ HubError::OwnSki(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "own_ski",
            e.to_string(),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_sent",
            e.to_string(),
        )),
    }
}

// ----- visible services and requests ------------------------------------------------------

async fn visible(State(state): State<Arc<ApiState>>) -> Json<Vec<ServiceRow>> {
    Json(
        state
            .hub
            .visible_services()
            .iter()
            .map(ServiceRow::of)
            .collect(),
    )
}

async fn requests(State(state): State<Arc<ApiState>>) -> Json<Vec<PendingRequest>> {
    Json(state.live.pending())
}

#[derive(Serialize)]
struct Decided {
    ski: String,
    decision: &'static str,
}

async fn approve(
    State(state): State<Arc<ApiState>>,
    Path(text): Path<String>,
) -> Result<Json<Decided>, ApiError> {
    decide(state, text, true).await
}

async fn deny(
    State(state): State<Arc<ApiState>>,
    Path(text): Path<String>,
) -> Result<Json<Decided>, ApiError> {
    decide(state, text, false).await
}

/// Where a request came from: the command line (the control socket) or the HTTP API.
fn via(state: &ApiState) -> Via {
    match state.access {
        crate::api::auth::Access::Socket => Via::Command,
        _ => Via::Http,
    }
}

async fn decide(
    state: Arc<ApiState>,
    text: String,
    accept: bool,
) -> Result<Json<Decided>, ApiError> {
    let ski = ski(&text)?;
    let hub = state.hub.clone();
    // Said before the hub is told, so that the terminal (if it asks about the same request)
    // says what happened; undone if the hub refuses.
    let by = via(&state);
    let pending = state.live.is_pending(&ski);
    if pending {
        state.live.decided(
            &ski,
            if accept {
                RequestEnd::Approved(by)
            } else {
                RequestEnd::Denied(by)
            },
        );
    }
    // Neither touches the disk: the hub stores an approval in the background.
    let result = if accept {
        hub.approve(ski)
    } else {
        hub.deny(ski)
    };
    let decided = result.map_err(|e| match e {
        HubError::NoPendingRequest(_) => ApiError::new(
            StatusCode::NOT_FOUND,
            "no_request",
            format!("no pairing request of {ski} waits (decided, or timed out)"),
        ),
        other => ApiError::new(StatusCode::CONFLICT, "not_decided", other.to_string()),
    });
    if let Err(error) = decided {
        if pending {
            state.live.undo(&ski);
        }
        return Err(error);
    }
    if accept {
        crate::hub_events::remember_announced_name(&state.hub, ski);
        state.hub.pairings_saved().await.map_err(store_error)?;
        state.live.end_cooling(&ski);
        state.log.emit(Event::Paired {
            ski: ski.to_string(),
            by: match by {
                Via::Command => "approve command",
                Via::Http => "HTTP API",
            }
            .into(),
        });
    } else {
        state.live.denied(ski);
        state.log.emit(Event::Info {
            message: format!(
                "denied {ski} ({}): its pairing requests are refused without asking until it is \
                 paired",
                match by {
                    Via::Command => "deny command",
                    Via::Http => "HTTP API",
                }
            ),
        });
    }
    Ok(Json(Decided {
        ski: ski.to_string(),
        decision: if accept { "approved" } else { "denied" },
    }))
}

// ----- PIN requests -------------------------------------------------------------------------

/// `POST /api/v1/peers/{ski}/pin`: answers a device that waits for the PIN it requires.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinAnswer {
    /// The PIN (8 to 16 hex digits; spaces ignored).
    pin: Option<String>,
    /// `true`: there is no PIN; the connection fails.
    #[serde(default)]
    refuse: bool,
}

#[derive(Serialize)]
struct PinAnswered {
    ski: String,
    /// `sent` or `refused`.
    pin: &'static str,
}

async fn answer_pin(
    State(state): State<Arc<ApiState>>,
    Path(text): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<PinAnswered>), ApiError> {
    let ski = ski(&text)?;
    let body: PinAnswer = parse(&state, request).await?;
    let bad = |code, message: String| ApiError::new(StatusCode::BAD_REQUEST, code, message);
    let pin = match (body.pin, body.refuse) {
        (Some(_), true) | (None, false) => {
            return Err(bad(
                "bad_request",
                "give either {\"pin\": \"…\"} or {\"refuse\": true}".into(),
            ));
        }
        // The error never repeats the text: it is a PIN.
        (Some(text), false) => {
            Some(Pin::new(&text).map_err(|e| bad("bad_pin", format!("not a PIN: {e}")))?)
        }
        (None, true) => None,
    };
    let none_waits = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_pin_request",
            format!(
                "no connection of {ski} waits for a PIN (to store one for its next connection: \
                 `ship-gateway pair {ski} --pin -`, or POST /api/v1/peers with \"pin\")"
            ),
        )
    };
    if state.live.pin_wait(&ski).is_none() {
        return Err(none_waits());
    }
    let answered = match pin {
        Some(pin) => state.hub.enter_pin(ski, pin).map(|()| "sent"),
        None => state.hub.refuse_pin(ski).map(|()| "refused"),
    }
    .map_err(|_| none_waits())?;
    state.live.pin_answered(&ski);
    state.log.emit(Event::Info {
        message: match answered {
            "sent" => format!("PIN for {ski} sent"),
            _ => format!("no PIN for {ski}: refused"),
        },
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(PinAnswered {
            ski: ski.to_string(),
            pin: answered,
        }),
    ))
}

// ----- events -----------------------------------------------------------------------------

/// `GET /api/v1/events`: Server-Sent Events, one per gateway event (`id` = its number, `data` =
/// the JSON object `--json` prints). A client that reconnects with `Last-Event-ID` (browsers
/// do so by themselves), or asks `?after=ID`, gets the events after that id first; without
/// either it gets the events from now on. Events it can no longer get come as one `gap` event
/// (`{"lost": N}`). At most [`super::HttpLimits::event_streams`] streams at once (one more: 503
/// `too_many_streams`).
async fn events(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    axum::extract::Query(query): axum::extract::Query<EventsQuery>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    let resume = match headers
        .get("last-event-id")
        .map(|v| v.to_str().ok().and_then(|t| t.trim().parse::<u64>().ok()))
    {
        Some(Some(id)) => Some(id),
        Some(None) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_event_id",
                "Last-Event-ID must be an event number",
            ));
        }
        None => query.after,
    };
    // A bounded number of streams, each holding at most one batch (`bus.rs`): slow readers
    // cost a bounded amount of memory in all.
    let permit = state.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!(
                "{} event streams are open, the most this gateway serves: close one, or try \
                 again later",
                state.limits.event_streams
            ),
        )
    })?;
    let bus = state.bus.clone();
    let mut changes = bus.subscribe();
    let mut last = resume.unwrap_or_else(|| bus.last_id());
    let shutdown = state.shutdown.clone();
    let stream = async_stream(move |yielder| async move {
        let _permit = permit;
        // Once the gateway stops, what is in the bus is sent and the stream ends.
        let mut stopping = false;
        loop {
            let batch = bus.after(last);
            if batch.lost > 0 {
                yielder
                    .send(
                        SseEvent::default()
                            .event("gap")
                            .data(format!("{{\"lost\":{}}}", batch.lost)),
                    )
                    .await;
            }
            if batch.events.is_empty() {
                if stopping {
                    return;
                }
                tokio::select! {
                    changed = changes.changed() => {
                        if changed.is_err() {
                            return;
                        }
                    }
                    () = shutdown.cancelled() => stopping = true,
                }
                continue;
            }
            for event in batch.events {
                last = event.id;
                if !yielder
                    .send(
                        SseEvent::default()
                            .id(event.id.to_string())
                            .data(&*event.json),
                    )
                    .await
                {
                    return;
                }
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<u64>,
}

/// A minimal generator: `body` sends items through a channel of one, so a client that does not
/// read holds one event and the producer waits (no buffering per client).
fn async_stream<F, Fut>(body: F) -> impl Stream<Item = Result<SseEvent, Infallible>>
where
    F: FnOnce(Yielder) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let task = tokio::spawn(body(Yielder { tx }));
    let guard = AbortOnDrop(task);
    futures_util::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        rx.recv().await.map(|event| (Ok(event), (rx, guard)))
    })
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct Yielder {
    tx: tokio::sync::mpsc::Sender<SseEvent>,
}

impl Yielder {
    /// False once the client has gone.
    async fn send(&self, event: SseEvent) -> bool {
        self.tx.send(event).await.is_ok()
    }
}
