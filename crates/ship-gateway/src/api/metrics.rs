//! `GET /metrics`: the hub's counters in the Prometheus text format (version 0.0.4).

use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use ship_hub::hub::{AdmissionCap, FailureCause};

use super::ApiState;

pub(crate) async fn metrics(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    let m = state.hub.metrics();
    let mut out = String::new();
    let mut one = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    one(
        "ship_connections",
        "gauge",
        "Peers in SHIP data exchange now.",
        state.hub.connected_peers().len() as u64,
    );
    one(
        "ship_pending_pairing_requests",
        "gauge",
        "Pairing requests waiting for a decision.",
        state.live.pending().len() as u64,
    );
    one(
        "ship_visible_services",
        "gauge",
        "SHIP services visible over mDNS.",
        state.hub.visible_services().len() as u64,
    );
    one(
        "ship_dial_attempts_total",
        "counter",
        "TCP connects started.",
        m.dial_attempts,
    );
    one(
        "ship_incoming_accepted_total",
        "counter",
        "Incoming connections accepted.",
        m.incoming_accepted,
    );
    one(
        "ship_double_connection_replacements_total",
        "counter",
        "Older connections replaced by a newer one to the same peer.",
        m.double_connection_replacements,
    );
    one(
        "ship_inbound_queued_bytes",
        "gauge",
        "Received data bytes not yet consumed (written to stdout).",
        m.inbound_queued_bytes,
    );
    one(
        "ship_events_total",
        "counter",
        "Events the gateway reported (the event stream's last id).",
        state.bus.last_id(),
    );
    let _ = writeln!(
        out,
        "# HELP ship_handshakes_total Connection attempts by outcome (completed or the cause \
         of failure)."
    );
    let _ = writeln!(out, "# TYPE ship_handshakes_total counter");
    let _ = writeln!(
        out,
        "ship_handshakes_total{{outcome=\"completed\"}} {}",
        m.handshakes_completed
    );
    for cause in FailureCause::ALL {
        let _ = writeln!(
            out,
            "ship_handshakes_total{{outcome=\"{}\"}} {}",
            cause_label(cause),
            m.failures.get(cause)
        );
    }
    let _ = writeln!(
        out,
        "# HELP ship_admission_refusals_total Incoming connections refused, by the admission \
         cap that refused them."
    );
    let _ = writeln!(out, "# TYPE ship_admission_refusals_total counter");
    for cap in AdmissionCap::ALL {
        let _ = writeln!(
            out,
            "ship_admission_refusals_total{{cap=\"{}\"}} {}",
            crate::hub_events::cap_key(cap),
            m.refusals.get(cap)
        );
    }
    let _ = writeln!(
        out,
        "# HELP ship_pin_attempts_total PINs devices sent to this gateway, by outcome."
    );
    let _ = writeln!(out, "# TYPE ship_pin_attempts_total counter");
    for (outcome, value) in [("verified", m.pin.verified), ("wrong", m.pin.wrong)] {
        let _ = writeln!(
            out,
            "ship_pin_attempts_total{{outcome=\"{outcome}\"}} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP ship_pin_holds_total Connections of keys not paired whose PIN input was held \
         busy by a penalty of their source address or by the limit on wrong PINs in all."
    );
    let _ = writeln!(out, "# TYPE ship_pin_holds_total counter");
    for (scope, value) in [
        ("address", m.pin.held_by_address),
        ("all", m.pin.held_in_all),
    ] {
        let _ = writeln!(out, "ship_pin_holds_total{{scope=\"{scope}\"}} {value}");
    }
    let time = &m.handshake_time;
    let _ = writeln!(
        out,
        "# HELP ship_handshake_seconds Time from connect to SHIP Completed."
    );
    let _ = writeln!(out, "# TYPE ship_handshake_seconds summary");
    for (quantile, value) in [("0.5", time.p50_us), ("0.99", time.p99_us)] {
        if let Some(us) = value {
            let _ = writeln!(
                out,
                "ship_handshake_seconds{{quantile=\"{quantile}\"}} {}",
                us as f64 / 1e6
            );
        }
    }
    let _ = writeln!(
        out,
        "ship_handshake_seconds_sum {}",
        time.sum_us as f64 / 1e6
    );
    let _ = writeln!(out, "ship_handshake_seconds_count {}", time.count);
    http(&state, &mut out);
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

/// The HTTP listener's own counters (when one is served).
fn http(state: &ApiState, out: &mut String) {
    let mut one = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {value}");
    };
    if let Some(auth) = &state.auth {
        one(
            "ship_gateway_http_auth_failures_total",
            "counter",
            "Failed HTTP authentication attempts (wrong token, wrong login, bad login link).",
            auth.failures(),
        );
    }
    if let Some(conns) = &state.conns {
        let (untrusted, authorized) = conns.counts();
        one(
            "ship_gateway_http_connections_evicted_total",
            "counter",
            "Untrusted HTTP connections closed to make room for a newer one.",
            conns.evictions(),
        );
        one(
            "ship_gateway_http_untrusted_connections",
            "gauge",
            "HTTP connections without a valid credential (yet).",
            untrusted as u64,
        );
        one(
            "ship_gateway_http_authorized_connections",
            "gauge",
            "HTTP connections whose last request carried a valid token or session.",
            authorized as u64,
        );
    }
    one(
        "ship_gateway_http_event_streams",
        "gauge",
        "Event streams open now.",
        state
            .limits
            .event_streams
            .saturating_sub(state.streams.available_permits()) as u64,
    );
}

fn cause_label(cause: FailureCause) -> &'static str {
    match cause {
        FailureCause::Tls => "tls",
        FailureCause::WebSocket => "websocket",
        FailureCause::HandshakeTimeout => "timeout",
        FailureCause::TrustDenied => "trust_denied",
        FailureCause::Protocol => "protocol",
        FailureCause::RefusedByCap => "refused_by_cap",
        FailureCause::Backpressure => "backpressure",
        _ => "other",
    }
}
