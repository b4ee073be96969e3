//! Who may use the HTTP API (docs/gateway.md, "Access").
//!
//! * **The control socket** (`Access::Socket`): its file mode (0600) admits only the gateway's
//!   user; no token.
//! * **Every TCP listener, loopback included** (`Access::Http`): every request carries the token
//!   (`Authorization: Bearer TOKEN`) or a session cookie. The token is `http_token_file`'s, or
//!   the gateway's own in `DATA_DIR/http-token`. A session comes from `POST /login` (a person
//!   typed the token) or from a one-time login link that `ship-gateway console` asks the control
//!   socket for; it is a random id (the token never travels in a cookie), expires after
//!   [`AuthLimits::session`] and ends at `POST /logout`.
//! * **Guessing is slowed down**: failed attempts (a wrong bearer token, a wrong login, a wrong
//!   or used login link) are counted per source address (`attempts.rs`).
//! * **Either way**, a request that changes something (any method but GET and HEAD) is refused
//!   when it comes from another origin (`Origin` or `Sec-Fetch-Site` say so), and no CORS
//!   header is ever sent: a page elsewhere can neither read the API nor act through it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use super::attempts::{AttemptLimits, Attempts};
use super::conns::Source;
use super::{ApiError, ApiState};
use crate::data_dir::DataDir;
use crate::error::GatewayError;
use crate::events::{Event, EventLog};

/// The name of the session cookie.
pub(crate) const COOKIE: &str = "ship_gateway_session";

/// The shortest token accepted from `http_token_file` (characters).
const MIN_TOKEN: usize = 16;

/// The most sessions at once (the one that expires first goes when a new one needs room).
const MAX_SESSIONS: usize = 256;

/// The most login links waiting at once.
const MAX_LINKS: usize = 16;

/// The largest login form accepted (bytes).
const MAX_LOGIN_FORM: usize = 4096;

/// Which listener a router serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// The control socket: its file mode (0600) admits only the gateway's user.
    Socket,
    /// A TCP listener: the token or a session, always.
    Http,
}

/// How long sessions and login links last, and how failed attempts are slowed down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AuthLimits {
    /// A session's life from its login. Default 12 h.
    pub(crate) session: Duration,
    /// A login link's life. Default 2 min.
    pub(crate) link: Duration,
    /// The delay of failed attempts.
    pub(crate) attempts: AttemptLimits,
}

impl Default for AuthLimits {
    fn default() -> Self {
        AuthLimits {
            session: Duration::from_secs(12 * 3600),
            link: Duration::from_secs(120),
            attempts: AttemptLimits::default(),
        }
    }
}

/// What the headers of a request on a TCP listener show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The token or a live session.
    Authorized,
    /// No credential (or a session that ended).
    Anonymous,
    /// A wrong token (counted as a failed attempt).
    Wrong,
    /// A credential that is not checked: its source failed too often and must wait this long.
    Wait(Duration),
}

/// The source address of a request (an extension the TCP server adds).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// The credentials of the TCP listeners and what they have handed out.
pub(crate) struct Auth {
    token: String,
    /// Where the token is (said to people; never the token itself).
    pub(crate) token_file: PathBuf,
    limits: AuthLimits,
    /// Session id → when it ends.
    sessions: Mutex<HashMap<String, Instant>>,
    /// Login-link code → when it ends.
    links: Mutex<HashMap<String, Instant>>,
    attempts: Attempts,
    failures: AtomicU64,
    log: Arc<EventLog>,
}

impl std::fmt::Debug for Auth {
    // Never print the token or a session.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("token_file", &self.token_file)
            .finish_non_exhaustive()
    }
}

/// `bytes` random bytes from the system, as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String, ()> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut buffer = vec![0u8; bytes];
    SystemRandom::new().fill(&mut buffer).map_err(|_| ())?;
    Ok(hex(&buffer))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Why a login did not log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Wrong,
    Wait(Duration),
}

impl Auth {
    /// The token of the TCP listeners: `token_file`'s (a secret file: see `crate::secrets`), or
    /// the gateway's own in the data dir (made at the first use).
    pub(crate) fn configure(
        token_file: Option<&Path>,
        dir: &DataDir,
        limits: AuthLimits,
        log: Arc<EventLog>,
    ) -> Result<Auth, GatewayError> {
        let (token, token_file) = match token_file {
            Some(path) => {
                let text = crate::secrets::read(path, "http_token_file")?;
                (text.trim().to_owned(), path.to_owned())
            }
            None => dir.http_token()?,
        };
        if token.chars().count() < MIN_TOKEN || token.chars().any(|c| c.is_control()) {
            return Err(GatewayError::Setting(format!(
                "the HTTP token in {} must be one line of at least {MIN_TOKEN} characters",
                token_file.display()
            )));
        }
        Ok(Auth {
            token,
            token_file,
            limits,
            sessions: Mutex::default(),
            links: Mutex::default(),
            attempts: Attempts::new(limits.attempts),
            failures: AtomicU64::new(0),
            log,
        })
    }

    /// Failed attempts since the start.
    pub(crate) fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    fn failed(&self, source: Source) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        if let Some(report) = self.attempts.failed(source, Instant::now()) {
            self.log.emit(Event::Warning {
                message: report.message(),
            });
        }
    }

    /// Says the failures of sources that stopped (call once a minute).
    pub(crate) fn report_overdue(&self) {
        for report in self.attempts.overdue(Instant::now()) {
            self.log.emit(Event::Warning {
                message: report.message(),
            });
        }
    }

    /// Checks a token (bearer or typed into the form) from `source`, slowed down per source.
    fn check_token(&self, given: &str, source: Source) -> Result<(), Refusal> {
        self.attempts
            .check(source, Instant::now())
            .map_err(Refusal::Wait)?;
        if equal(given.trim(), &self.token) {
            self.attempts.succeeded(source);
            Ok(())
        } else {
            self.failed(source);
            Err(Refusal::Wrong)
        }
    }

    fn session_live(&self, id: &str) -> bool {
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        match sessions.get(id) {
            Some(until) if *until > now => true,
            Some(_) => {
                sessions.remove(id);
                false
            }
            None => false,
        }
    }

    /// What the headers of a request from `source` show.
    pub(crate) fn judge(&self, headers: &HeaderMap, source: Source) -> Verdict {
        // A session id is 256 random bits: guessing one is hopeless, so checking it costs no
        // attempt (a cookie of a session that ended is common and innocent).
        if cookie(headers, COOKIE).is_some_and(|id| self.session_live(id)) {
            return Verdict::Authorized;
        }
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match bearer.map(|given| self.check_token(given, source)) {
            None => Verdict::Anonymous,
            Some(Ok(())) => Verdict::Authorized,
            Some(Err(Refusal::Wrong)) => Verdict::Wrong,
            Some(Err(Refusal::Wait(wait))) => Verdict::Wait(wait),
        }
    }

    /// A new session; its cookie.
    fn open_session(&self) -> Result<String, Refusal> {
        let id = random_hex(32).map_err(|()| Refusal::Wrong)?;
        let now = Instant::now();
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, until| *until > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(first) = sessions
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&first);
        }
        sessions.insert(id.clone(), now + self.limits.session);
        Ok(format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            self.limits.session.as_secs()
        ))
    }

    /// Checks a token typed into the login form; on success, the cookie to set.
    pub(crate) fn login(&self, given: &str, source: Source) -> Result<String, Refusal> {
        self.check_token(given, source)?;
        self.open_session()
    }

    /// A one-time login link's code, valid for [`AuthLimits::link`]; and its life.
    pub(crate) fn new_link(&self) -> Option<(String, Duration)> {
        let code = random_hex(32).ok()?;
        let now = Instant::now();
        let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
        links.retain(|_, until| *until > now);
        if links.len() >= MAX_LINKS
            && let Some(first) = links
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(c, _)| c.clone())
        {
            links.remove(&first);
        }
        links.insert(code.clone(), now + self.limits.link);
        Some((code, self.limits.link))
    }

    /// Uses a login link's code (once); on success, the cookie to set.
    pub(crate) fn redeem(&self, code: &str, source: Source) -> Result<String, Refusal> {
        self.attempts
            .check(source, Instant::now())
            .map_err(Refusal::Wait)?;
        let live = {
            let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
            // Compared in constant time with each waiting code (a handful).
            let found = links.keys().find(|c| equal(c, code)).cloned();
            found
                .and_then(|c| links.remove(&c))
                .is_some_and(|until| until > Instant::now())
        };
        if !live {
            self.failed(source);
            return Err(Refusal::Wrong);
        }
        self.attempts.succeeded(source);
        self.open_session()
    }

    /// Ends the session of the request's cookie, if any.
    pub(crate) fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = cookie(headers, COOKIE) {
            self.sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(id);
        }
    }
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

/// Paths served without a credential: the login form, its submission, the login links and
/// the logout.
fn public(path: &str) -> bool {
    path == "/login" || path == "/logout"
}

/// The answer to an attempt that must wait.
fn too_early(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
        format!("too many failed attempts from this address: try again in {secs} s"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// The middleware in front of every route.
pub(crate) async fn check(
    State(state): State<Arc<ApiState>>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD);
    if changes && !same_origin(headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "requests that change something must come from this console's own origin",
        )
        .into_response();
    }
    if state.access == Access::Socket {
        return next.run(request).await;
    }
    // Set by the TCP server from the headers (`super::serve`); a request without it was not
    // judged and gets nothing.
    let verdict = request
        .extensions()
        .get::<Verdict>()
        .copied()
        .unwrap_or(Verdict::Anonymous);
    let path = request.uri().path();
    match verdict {
        Verdict::Authorized => return next.run(request).await,
        Verdict::Wait(wait) => return too_early(wait),
        Verdict::Anonymous | Verdict::Wrong if public(path) => return next.run(request).await,
        Verdict::Anonymous | Verdict::Wrong => {}
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

fn source_of(request: &Request) -> Source {
    Source::of(
        request
            .extensions()
            .get::<Peer>()
            .map_or(std::net::Ipv4Addr::UNSPECIFIED.into(), |p| p.0.ip()),
    )
}

/// Logged in: the session cookie, and on to the console.
fn logged_in(cookie: String) -> Response {
    ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response()
}

fn refused(refusal: Refusal, wrong: &str) -> Response {
    match refusal {
        Refusal::Wrong => (StatusCode::UNAUTHORIZED, Html(login_page(Some(wrong)))).into_response(),
        Refusal::Wait(wait) => {
            let secs = wait.as_secs().max(1);
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Html(login_page(Some(&format!(
                    "Too many failed attempts from this address: try again in {secs} s."
                )))),
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            response
        }
    }
}

/// `GET /login`: the form; `GET /login?code=…`: a one-time login link.
pub(crate) async fn login_form(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let Some(auth) = state.auth.as_ref().filter(|_| state.access == Access::Http) else {
        return Redirect::to("/").into_response();
    };
    let code = request.uri().query().and_then(|q| {
        q.split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == "code")
            .map(|(_, value)| value.to_owned())
    });
    match code {
        None => Html(login_page(None)).into_response(),
        Some(code) => match auth.redeem(&code, source_of(&request)) {
            Ok(cookie) => logged_in(cookie),
            Err(refusal) => refused(
                refusal,
                "That login link is not valid: each link works once, for a short time. Run \
                 `ship-gateway console` again for a new one, or log in with the token.",
            ),
        },
    }
}

/// `POST /login`: checks the token, opens a session, back to the console.
pub(crate) async fn login_submit(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let Some(auth) = state.auth.clone().filter(|_| state.access == Access::Http) else {
        return Redirect::to("/").into_response();
    };
    let source = source_of(&request);
    let (parts, body) = request.into_parts();
    // The body is bounded in size here and in time by the server (`super::deadline`).
    let bytes = match axum::body::to_bytes(body, MAX_LOGIN_FORM).await {
        Ok(bytes) => bytes,
        Err(error) => return super::body_error(error, MAX_LOGIN_FORM).into_response(),
    };
    let request = Request::from_parts(parts, axum::body::Body::from(bytes));
    let form =
        match <axum::Form<LoginForm> as axum::extract::FromRequest<()>>::from_request(request, &())
            .await
        {
            Ok(axum::Form(form)) => form,
            Err(rejection) => return rejection.into_response(),
        };
    match auth.login(&form.token, source) {
        Ok(cookie) => logged_in(cookie),
        Err(refusal) => refused(refusal, "That token is not right."),
    }
}

/// `POST /logout`: ends the session, clears the cookie, back to the login form.
pub(crate) async fn logout(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    if let Some(auth) = &state.auth {
        auth.logout(&headers);
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
        )],
        Redirect::to("/login"),
    )
        .into_response()
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
         <p>The token is in the file given with <code>http_token_file</code>, else in \
         <code>http-token</code> in the gateway's data directory. On the gateway, \
         <code>ship-gateway console</code> prints a one-time login link instead.</p>\
         </body></html>"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(limits: AuthLimits) -> (Auth, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "correct-horse-battery-staple\n").unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let log = Arc::new(EventLog::with_output(true, Box::new(std::io::sink())).unwrap());
        let data = DataDir::open(Some(dir.path().join("data")), true).unwrap();
        (
            Auth::configure(Some(&file), &data, limits, log).unwrap(),
            dir,
        )
    }

    fn with(name: header::HeaderName, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, value.parse().unwrap());
        headers
    }

    fn local() -> Source {
        Source::of("127.0.0.1".parse().unwrap())
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let headers = with(header::COOKIE, "a=1; ship_gateway_session=xyz; b=2");
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

    #[test]
    fn tokens_sessions_and_links_the_gateway_makes_have_256_random_bits() {
        let a = random_hex(32).unwrap();
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(32).unwrap());
        let (auth, _dir) = auth(AuthLimits::default());
        let (code, _) = auth.new_link().unwrap();
        assert_eq!(code.len(), 64);
        let cookie = auth.login("correct-horse-battery-staple", local()).unwrap();
        let id = cookie
            .strip_prefix("ship_gateway_session=")
            .and_then(|c| c.split(';').next())
            .unwrap();
        assert_eq!(id.len(), 64);
        assert!(!cookie.contains("correct-horse"), "{cookie}");
    }

    #[test]
    fn a_session_expires_and_logout_ends_it() {
        let (auth, _dir) = auth(AuthLimits {
            session: Duration::from_millis(200),
            ..AuthLimits::default()
        });
        let cookie = auth.login("correct-horse-battery-staple", local()).unwrap();
        assert!(
            cookie.contains("Max-Age=0"),
            "seconds, rounded down: {cookie}"
        );
        let pair = cookie.split(';').next().unwrap().to_owned();
        let headers = with(header::COOKIE, &pair);
        assert_eq!(auth.judge(&headers, local()), Verdict::Authorized);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(auth.judge(&headers, local()), Verdict::Anonymous, "expired");
        let (auth, _dir) = self::auth(AuthLimits::default());
        let cookie = auth.login("correct-horse-battery-staple", local()).unwrap();
        let headers = with(header::COOKIE, cookie.split(';').next().unwrap());
        assert_eq!(auth.judge(&headers, local()), Verdict::Authorized);
        auth.logout(&headers);
        assert_eq!(
            auth.judge(&headers, local()),
            Verdict::Anonymous,
            "logged out"
        );
    }

    #[test]
    fn a_login_link_works_once() {
        let (auth, _dir) = auth(AuthLimits::default());
        let (code, _) = auth.new_link().unwrap();
        assert!(auth.redeem(&code, local()).is_ok());
        assert_eq!(auth.redeem(&code, local()), Err(Refusal::Wrong));
        assert_eq!(auth.redeem("0123", local()), Err(Refusal::Wrong));
        assert_eq!(auth.failures(), 2);
    }

    #[test]
    fn wrong_bearer_tokens_are_slowed_down_per_source_and_the_right_one_then_waits_too() {
        let (auth, _dir) = auth(AuthLimits {
            attempts: AttemptLimits {
                free: 2,
                max_delay: Duration::from_secs(60),
            },
            ..AuthLimits::default()
        });
        let wrong = with(header::AUTHORIZATION, "Bearer not-the-token-at-all");
        let right = with(header::AUTHORIZATION, "Bearer correct-horse-battery-staple");
        assert_eq!(auth.judge(&wrong, local()), Verdict::Wrong);
        assert_eq!(auth.judge(&wrong, local()), Verdict::Wrong);
        assert_eq!(auth.judge(&wrong, local()), Verdict::Wrong);
        // Now the source waits: not even the right token is checked (that would tell a guesser).
        assert!(matches!(auth.judge(&right, local()), Verdict::Wait(_)));
        let other = Source::of("10.1.1.1".parse().unwrap());
        assert_eq!(auth.judge(&right, other), Verdict::Authorized);
        assert_eq!(auth.failures(), 3);
    }
}
