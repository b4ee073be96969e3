//! Who may use the HTTP API (docs/gateway.md, "Access").
//!
//! * **Loopback without a token** (`--http 127.0.0.1:4780`): anyone on this machine may use it,
//!   as with the control socket's owner. The `Host` header must name a loopback host, so a web
//!   page elsewhere cannot reach it through DNS rebinding.
//! * **With a token** (`--http-token-file`, required on any other address): every request
//!   carries it as `Authorization: Bearer TOKEN`, or the session cookie that `POST /login` sets
//!   (`HttpOnly; SameSite=Strict`) after a person typed the token into the login form.
//! * **Either way**, a request that changes something (any method but GET and HEAD) is refused
//!   when it comes from another origin (`Origin` or `Sec-Fetch-Site` say so), and no CORS
//!   header is ever sent: a page elsewhere can neither read the API nor act through it.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{ApiError, ApiState};
use crate::error::GatewayError;

/// The name of the session cookie.
pub(crate) const COOKIE: &str = "ship_gateway_session";

/// The shortest token accepted (characters).
const MIN_TOKEN: usize = 16;

/// How the API is protected.
#[derive(Clone)]
pub(crate) enum Access {
    /// The control socket: its file mode (0600) admits only the gateway's user.
    Socket,
    /// Loopback, no token.
    Open,
    /// A token (and the session cookie derived from it).
    Token { token: Arc<str>, session: Arc<str> },
}

impl std::fmt::Debug for Access {
    // Never print the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Socket => f.write_str("Socket"),
            Access::Open => f.write_str("Open"),
            Access::Token { .. } => f.write_str("Token(..)"),
        }
    }
}

impl Access {
    /// The access rule for an API served at `address`: a token file is required unless the
    /// address is a loopback one.
    pub(crate) fn configure(
        address: SocketAddr,
        token_file: Option<&Path>,
    ) -> Result<Access, GatewayError> {
        let Some(path) = token_file else {
            if address.ip().is_loopback() {
                return Ok(Access::Open);
            }
            return Err(GatewayError::Setting(format!(
                "--http {address} is reachable from other hosts: give a token with \
                 --http-token-file FILE (at least {MIN_TOKEN} characters), or serve on \
                 127.0.0.1"
            )));
        };
        let text = std::fs::read_to_string(path).map_err(|source| GatewayError::Io {
            what: format!("reading the HTTP token file {}", path.display()),
            source,
        })?;
        let token = text.trim();
        if token.chars().count() < MIN_TOKEN || token.chars().any(|c| c.is_control()) {
            return Err(GatewayError::Setting(format!(
                "the HTTP token in {} must be one line of at least {MIN_TOKEN} characters",
                path.display()
            )));
        }
        let session = hex(&Sha256::digest(
            [b"ship-gateway session\0".as_slice(), token.as_bytes()].concat(),
        ));
        Ok(Access::Token {
            token: token.into(),
            session: session.into(),
        })
    }

    /// Whether the request carries the token or the session cookie (always, when open).
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Access::Token { token, session } = self else {
            return true;
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(given) = bearer {
            return equal(given, token);
        }
        cookie(headers, COOKIE).is_some_and(|given| equal(given, session))
    }

    /// Checks a token typed into the login form; on success, the cookie to set.
    pub(crate) fn login(&self, given: &str) -> Option<String> {
        match self {
            Access::Socket | Access::Open => None,
            Access::Token { token, session } => equal(given.trim(), token)
                .then(|| format!("{COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/")),
        }
    }
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The value of cookie `name`, if the request has it.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

/// Whether `host` (a `Host` header) names this machine's loopback.
fn loopback_host(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, port)| {
            if port.chars().all(|c| c.is_ascii_digit()) {
                name
            } else {
                host
            }
        }),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether a state-changing request comes from this API's own origin (or from a client that is
/// not a browser, which sends neither header).
fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    if let Some(origin) = headers.get(header::ORIGIN) {
        let Some(host) = host else {
            return false;
        };
        // The scheme is not compared: behind a reverse proxy that adds TLS the page's origin
        // is `https://…` while the proxy forwards the same `Host`.
        return origin.to_str().is_ok_and(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
                .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
        });
    }
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some(site) => site == "same-origin" || site == "none",
        None => true,
    }
}

/// Paths served without the token: the login form and its submission.
fn public(path: &str) -> bool {
    path == "/login"
}

/// The middleware in front of every route.
pub(crate) async fn check(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if matches!(state.access, Access::Open) {
        let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
        if !host.is_some_and(loopback_host) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "bad_host",
                "this API is served on loopback only: the Host header must name this machine",
            )
            .into_response();
        }
    }
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes && !same_origin(headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "requests that change something must come from this console's own origin",
        )
        .into_response();
    }
    let path = request.uri().path();
    if public(path) || state.access.admits(headers) {
        return next.run(request).await;
    }
    if path == "/" {
        return Redirect::to("/login").into_response();
    }
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "give the token as `Authorization: Bearer TOKEN` or log in at /login",
    )
    .into_response()
}

/// `GET /login`: the form.
pub(crate) async fn login_form() -> Html<String> {
    Html(login_page(None))
}

/// `POST /login`: checks the token, sets the session cookie, back to the console.
pub(crate) async fn login_submit(
    State(state): State<Arc<ApiState>>,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    match state.access.login(&form.token) {
        Some(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response(),
        None if !matches!(state.access, Access::Token { .. }) => Redirect::to("/").into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            Html(login_page(Some("That token is not right."))),
        )
            .into_response(),
    }
}

/// The login form's fields.
#[derive(serde::Deserialize)]
pub(crate) struct LoginForm {
    token: String,
}

fn login_page(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p class=\"error\">{e}</p>"))
        .unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>ship-gateway: log in</title><link rel=\"icon\" href=\"data:,\"></head><body>\
         <h1>ship-gateway</h1>{error}\
         <form method=\"post\" action=\"/login\"><label>Token \
         <input type=\"password\" name=\"token\" autocomplete=\"current-password\" required>\
         </label> <button type=\"submit\">Log in</button></form>\
         <p>The token is in the file given with <code>--http-token-file</code>.</p>\
         </body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_are_recognised_and_others_are_not() {
        for host in [
            "127.0.0.1:4780",
            "localhost",
            "LOCALHOST:1",
            "[::1]:4780",
            "127.1.2.3",
        ] {
            assert!(loopback_host(host), "{host}");
        }
        for host in ["evil.example:4780", "192.168.1.5:4780", "[fe80::1]:1", ""] {
            assert!(!loopback_host(host), "{host}");
        }
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            "a=1; ship_gateway_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&headers, COOKIE), Some("xyz"));
        assert_eq!(cookie(&headers, "c"), None);
    }

    #[test]
    fn a_foreign_origin_is_refused_and_no_origin_is_a_client_that_is_not_a_browser() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:4780".parse().unwrap());
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, "http://127.0.0.1:4780".parse().unwrap());
        assert!(same_origin(&headers));
        headers.insert(header::ORIGIN, "https://127.0.0.1:4780".parse().unwrap());
        assert!(
            same_origin(&headers),
            "a TLS proxy in front forwards the same host"
        );
        headers.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(!same_origin(&headers));
        headers.insert(
            header::ORIGIN,
            "http://127.0.0.1:4780.evil.example".parse().unwrap(),
        );
        assert!(!same_origin(&headers));
        headers.insert(header::ORIGIN, "null".parse().unwrap());
        assert!(!same_origin(&headers));
        headers.remove(header::ORIGIN);
        headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(!same_origin(&headers));
    }
}
