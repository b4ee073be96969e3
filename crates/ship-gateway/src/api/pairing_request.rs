//! `POST /api/v1/pairing-request`: this gateway asks an energy manager to trust it through the
//! SHIP Pairing Service (`ship-gateway pair --pairing-service` on a running gateway; see
//! `crate::pairing_request`). The secret is read from the body and never answered back.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use ship_hub::ShipId;
use ship_hub::pairing_service::{DEFAULT_SETTLE_AFTER, PairingSecret};

use super::routes::{address, blocking, check_name, parse, pin, ski, store_error};
use super::{ApiError, ApiState};
use crate::pairing_request::{MakeError, NewRequest, RequestView, next_words, parse_fingerprint};

/// The body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    /// The energy manager's SKI.
    ski: String,
    /// Its SHIP ID.
    ship_id: String,
    /// Its certificate's SHA-256 fingerprint (64 hex digits).
    fingerprint: String,
    /// Its pairing secret (hex).
    secret: String,
    name: Option<String>,
    address: Option<String>,
    pin: Option<String>,
    /// Seconds one connection must hold before the request is withdrawn. Default 900.
    settle_after_s: Option<u64>,
}

/// The answer: the request as `status` shows it, and what happens next in words.
#[derive(Serialize)]
struct Made {
    #[serde(flatten)]
    request: RequestView,
    next: String,
}

pub(super) async fn make(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    match make_inner(state, request).await {
        Ok(made) => (StatusCode::CREATED, Json(made)).into_response(),
        Err(error) => error.into_response(),
    }
}

async fn make_inner(state: Arc<ApiState>, request: Request) -> Result<Made, ApiError> {
    let body: Body = parse(&state, request).await?;
    let bad = |code, message: String| ApiError::new(StatusCode::BAD_REQUEST, code, message);
    let ski = ski(&body.ski)?;
    let ship_id =
        ShipId::new(body.ship_id).map_err(|e| bad("bad_ship_id", format!("not a SHIP ID: {e}")))?;
    let fingerprint =
        parse_fingerprint(&body.fingerprint).map_err(|message| bad("bad_fingerprint", message))?;
    // The error never repeats the text: it is the secret.
    let secret = PairingSecret::from_hex(&body.secret)
        .map_err(|e| bad("bad_secret", format!("not a pairing secret: {e}")))?;
    let address = address(body.address).await?;
    check_name(body.name.as_deref())?;
    let pin = pin(body.pin)?;
    let settle_after = match body.settle_after_s {
        Some(0) => {
            return Err(bad(
                "bad_settle_after",
                "settle_after_s must be at least 1".into(),
            ));
        }
        Some(secs) => Duration::from_secs(secs),
        None => DEFAULT_SETTLE_AFTER,
    };
    let new = NewRequest {
        ski,
        ship_id,
        fingerprint,
        secret,
        name: body.name,
        address,
        pin,
        settle_after,
    };
    let by = match state.access {
        crate::api::auth::Access::Socket => "pair --pairing-service",
        _ => "pairing request over the HTTP API",
    };
    let (requests, hub) = (state.pairing_request.clone(), state.hub.clone());
    let view = blocking(move || {
        requests.make(&hub, new, by).map_err(|error| match error {
            MakeError::NoMdns => ApiError::new(
                StatusCode::CONFLICT,
                "no_mdns",
                "this gateway runs without mDNS: the SHIP Pairing Service needs it; nothing \
                     was stored",
            ),
            MakeError::OwnSki(ski) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "own_ski",
                format!("{ski} is this gateway's own SKI"),
            ),
            MakeError::Pending(message) => {
                ApiError::new(StatusCode::CONFLICT, "request_pending", message)
            }
            MakeError::Store(message) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "store",
                format!("the request could not be stored: {message}"),
            ),
            MakeError::Hub(message) => ApiError::new(
                StatusCode::CONFLICT,
                "not_requested",
                format!("the request could not be announced: {message}"),
            ),
        })
    })
    .await?;
    // The pairing the request made is on disk before the answer says so.
    state.hub.pairings_saved().await.map_err(store_error)?;
    state.live.end_cooling(&ski);
    Ok(Made {
        next: next_words(&state.hub, &view, address),
        request: view,
    })
}
