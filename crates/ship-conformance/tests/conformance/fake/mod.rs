//! A small scripted SHIP device for the self-tests of ship-conformance: it behaves like a
//! conforming DUT except for the one [`Sabotage`] a test switches on, so each case can be shown
//! to fail against exactly the defect it exists to catch.
//!
//! Its TLS accepts any peer certificate (it checks neither the SKI binding nor the expected SKI):
//! that is the defect SEC_001/002 catch, and irrelevant to every other case.
#![allow(dead_code, unreachable_pub)]

mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rustls::crypto::{CryptoProvider, ring as ring_provider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::sign::CertifiedKey;
use ship_hub::Ski;
use ship_hub::identity::{CertificateError, Identity, parse_peer_certificate};
use ship_hub::protocol::ShipMessage;
use ship_hub::protocol::codec::decode;
use ship_hub::protocol::message::{
    ClosePhase, HandshakeType, HelloPhase, PinState, ProtocolHandshake,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

use tls::{LAX, Present};

/// The one thing the fake device does wrong (all off: it conforms, except for its lax TLS).
#[derive(Clone, Debug)]
pub struct Sabotage {
    /// Closes this long after the connection opened when no valid CMI exchange happened.
    pub cmi_timeout: Duration,
    /// Server: closes on a wrong first message without sending its own CMI (CMI_001/005).
    pub no_cmi_on_bad_first: bool,
    /// Client: after a bad CMI reply, sends its hello anyway and stays open (CMI_002/006).
    pub keeps_talking_after_bad_cmi: bool,
    /// Hello `pending` instead of `ready` (HELLO_001).
    pub hello_pending: bool,
    /// Hello `ready` without `waiting` (HELLO_003).
    pub hello_without_waiting: bool,
    /// A prolongation request restarts the hello timer instead of extending it (HELLO_002).
    pub restarts_hello_timer: bool,
    /// A `pending` hello (no prolongation request) is answered with `aborted` (HELLO_004).
    pub aborts_on_pending: bool,
    /// Server: the format it selects (PROT_001).
    pub select_format: &'static str,
    /// Client: the version it announces (PROT_002).
    pub announce_version: (u16, u16),
    /// Waits 60 s instead of 10 s in the protocol handshake (PROT_003/004).
    pub slow_handshake_timeout: bool,
    /// Ignores a wrong message in the protocol handshake (PROT_005/006).
    pub ignores_wrong_message: bool,
    /// Its PIN state (PIN_001).
    pub pin_state: &'static str,
    /// It requires this PIN (announced `required`, input `ok`): EXT_PIN_001/002.
    pub requires_pin: Option<&'static str>,
    /// Answers every PIN with `pinOk`, also a wrong one (EXT_PIN_002).
    pub accepts_any_pin: bool,
    /// Answers every PIN with `connectionPinError`, also the right one (EXT_PIN_001).
    pub rejects_every_pin: bool,
    /// The PIN it sends when the peer requires one (EXT_PIN_003); `None`: it sends none.
    pub sends_pin: Option<&'static str>,
    /// The SHIP ID it answers with (AM_001).
    pub ship_id: &'static str,
    /// Stops answering AM requests after an undecodable message (MSG_001/002).
    pub deaf_after_bad_bytes: bool,
    /// Ignores AM requests containing JSON whitespace (MSG_003).
    pub strict_whitespace: bool,
    /// Ignores an AM request that directly follows a data message (AMDATA_001).
    pub am_after_data_dropped: bool,
    /// Closes when its own AM request is unanswered this long (AMDATA_002).
    pub am_wait: Duration,
    /// After its close announce, never closes (TERM_001).
    pub never_closes_after_announce: bool,
    /// Refuses a connection while another one is open (ROLE_003), and never settles double
    /// connections (CONN_001 then sees the older one kept).
    pub one_connection_at_a_time: bool,
    /// With `one_connection_at_a_time`: its own dial takes the one connection from the TCP
    /// connect on (true), or only once its TLS handshake completed (false: a dial the peer
    /// never answers does not block an incoming connection).
    pub busy_while_dialling: bool,
    /// Server: the highest SHIP version it selects (it selects the lower of this and the
    /// peer's `announceMax`).
    pub max_version: (u16, u16),
    /// Server: selects this version whatever the peer offered (PROT_001).
    pub selects_version: Option<(u16, u16)>,
    /// The `reason` of its close announce (TERM_001).
    pub close_reason: &'static str,
    /// Sends a hello it misspells (`"phase":"redy"`), then closes.
    pub garbled_hello: bool,
    /// After the TLS handshake (its TLS accepts any certificate), computes the peer's SKI from
    /// the certificate's key: a certificate whose SKI claim differs is an unknown peer (as
    /// server: hello `pending`; as client: it closes at once). SEC_001/002 `deviation`.
    pub ski_from_key_after_tls: bool,
    /// Trusts only the first SKI (computed from the key) that connects; every other one gets
    /// hello `pending` (as server) or a close (as client).
    pub trusts_one_ski: bool,
    /// Holds its one connection slot this long after a connection ended (a device that closes
    /// slowly; with `one_connection_at_a_time`).
    pub slow_close: Duration,
    /// Never sends its own `accessMethodsRequest`.
    pub never_requests_am: bool,
    /// What it does with the peer's SPINE reads (AMDATA_001/002).
    pub spine: Spine,
}

/// The fake's SPINE behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spine {
    /// No SPINE application: data is ignored.
    None,
    /// Every read is answered with a reply that references its `msgCounter`.
    Replies,
    /// Every read is followed by a data message of the fake's own (a read, no
    /// `msgCounterReference`): data, but no reply.
    OwnReadsOnly,
}

impl Default for Sabotage {
    fn default() -> Self {
        Sabotage {
            cmi_timeout: Duration::from_secs(30),
            no_cmi_on_bad_first: false,
            keeps_talking_after_bad_cmi: false,
            hello_pending: false,
            hello_without_waiting: false,
            restarts_hello_timer: false,
            aborts_on_pending: false,
            select_format: "JSON-UTF8",
            announce_version: (1, 0),
            slow_handshake_timeout: false,
            ignores_wrong_message: false,
            pin_state: "none",
            requires_pin: None,
            accepts_any_pin: false,
            rejects_every_pin: false,
            sends_pin: None,
            ship_id: "fake-dut",
            deaf_after_bad_bytes: false,
            strict_whitespace: false,
            am_after_data_dropped: false,
            am_wait: Duration::from_secs(10),
            never_closes_after_announce: false,
            one_connection_at_a_time: false,
            busy_while_dialling: true,
            max_version: (1, 0),
            selects_version: None,
            close_reason: "removedConnection",
            garbled_hello: false,
            ski_from_key_after_tls: false,
            trusts_one_ski: false,
            slow_close: Duration::ZERO,
            never_requests_am: false,
            spine: Spine::None,
        }
    }
}

/// The revocation of the device's trust in SKIs (TERM_001): once an SKI is revoked, every
/// connection to it in data exchange, present or later, announces its close.
#[derive(Default)]
pub struct Revoke {
    revoked: std::sync::Mutex<Vec<Ski>>,
    notify: Notify,
}

impl Revoke {
    /// Revokes the trust in `ski` (the tool's revoke hook).
    pub fn revoke(&self, ski: Ski) {
        self.revoked.lock().unwrap().push(ski);
        self.notify.notify_waiters();
    }

    /// Returns once the trust in `ski` is revoked (never for `None`).
    async fn revoked(&self, ski: Option<Ski>) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if ski.is_some_and(|ski| self.revoked.lock().unwrap().contains(&ski)) {
                return;
            }
            notified.await;
        }
    }
}

/// The SKI of a peer certificate computed from its key (whatever the certificate claims).
fn computed_ski(der: Option<&[u8]>) -> Option<Ski> {
    match der.map(parse_peer_certificate) {
        Some(Ok(cert)) => Some(cert.ski),
        Some(Err(CertificateError::SkiNotBoundToKey { computed, .. })) => Some(computed),
        _ => None,
    }
}

/// Whom the fake trusts (shared by its connections).
#[derive(Clone, Default)]
struct Trust {
    first: Arc<std::sync::Mutex<Option<Ski>>>,
}

impl Trust {
    /// Whether the peer with certificate `der` is trusted under `sabotage`.
    fn decide(&self, sabotage: &Sabotage, der: Option<&[u8]>) -> bool {
        let computed = computed_ski(der);
        if sabotage.ski_from_key_after_tls
            && !matches!(der.map(parse_peer_certificate), Some(Ok(_)))
        {
            return false;
        }
        if sabotage.trusts_one_ski {
            let mut first = self.first.lock().unwrap();
            return match (*first, computed) {
                (_, None) => false,
                (None, Some(ski)) => {
                    *first = Some(ski);
                    true
                }
                (Some(trusted), Some(ski)) => trusted == ski,
            };
        }
        true
    }
}

/// A running fake device.
pub struct FakeDut {
    pub identity: Identity,
    pub addr: SocketAddr,
    /// Set by the tool's revoke hook (TERM_001): every connection in data exchange
    /// announces its close.
    pub revoke: Arc<Revoke>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for FakeDut {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

const HELLO_WAIT_MS: u64 = 120_000;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ship_hub::transport::ring_provider(
        vec![ring_provider::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256],
        vec![ring_provider::kx_group::SECP256R1],
    ))
}

fn certified(identity: &Identity) -> Arc<CertifiedKey> {
    let key = provider()
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            identity.private_key_der().to_vec(),
        )))
        .unwrap();
    Arc::new(CertifiedKey::new(
        vec![CertificateDer::from(identity.certificate_der().to_vec())],
        key,
    ))
}

impl FakeDut {
    /// Starts the device: it accepts on 127.0.0.1 and, with `dial`, dials the tool's listener
    /// again and again (like a DUT redialling a paired peer).
    pub async fn start(sabotage: Sabotage, dial: Option<SocketAddr>) -> FakeDut {
        let _ = ship_hub::transport::ring_provider(
            rustls::crypto::ring::DEFAULT_CIPHER_SUITES.to_vec(),
            rustls::crypto::ring::DEFAULT_KX_GROUPS.to_vec(),
        )
        .install_default();
        let identity =
            ship_hub::identity::Identity::generate(&ship_hub::identity::CertificateSubject {
                common_name: "fake dut".into(),
                organization: String::new(),
                country: String::new(),
            })
            .unwrap();
        let key = certified(&identity);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let revoke = Arc::new(Revoke::default());
        let live = Arc::new(AtomicUsize::new(0));
        let server_config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS12])
                .unwrap()
                .with_client_cert_verifier(Arc::new(LAX))
                .with_cert_resolver(Arc::new(Present(key.clone()))),
        );
        let mut tasks = Vec::new();
        let trust = Trust::default();
        {
            let sabotage = sabotage.clone();
            let revoke = revoke.clone();
            let live = live.clone();
            let trust = trust.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let config = server_config.clone();
                    let sabotage = sabotage.clone();
                    let revoke = revoke.clone();
                    let live = live.clone();
                    let trust = trust.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                        else {
                            return;
                        };
                        let der = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first())
                            .map(|c| c.as_ref().to_vec());
                        // The callback's signature (and its large error type) is tungstenite's.
                        #[allow(clippy::result_large_err)]
                        let callback = |_: &Request, mut response: Response| {
                            response
                                .headers_mut()
                                .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("ship"));
                            Ok(response)
                        };
                        let Ok(ws) = tokio_tungstenite::accept_hdr_async(tls, callback).await
                        else {
                            return;
                        };
                        if sabotage.one_connection_at_a_time && live.load(Ordering::SeqCst) > 0 {
                            return;
                        }
                        live.fetch_add(1, Ordering::SeqCst);
                        let trusted = trust.decide(&sabotage, der.as_deref());
                        let slow_close = sabotage.slow_close;
                        let peer = computed_ski(der.as_deref());
                        Script::new(ws, sabotage, revoke, false, trusted, peer)
                            .run()
                            .await;
                        tokio::time::sleep(slow_close).await;
                        live.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            }));
        }
        if let Some(target) = dial {
            let sabotage = sabotage.clone();
            let revoke = revoke.clone();
            let live = live.clone();
            let client_config = {
                let mut config = rustls::ClientConfig::builder_with_provider(provider())
                    .with_protocol_versions(&[&rustls::version::TLS12])
                    .unwrap()
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(LAX))
                    .with_client_cert_resolver(Arc::new(Present(key.clone())));
                config.resumption = rustls::client::Resumption::disabled();
                Arc::new(config)
            };
            let trust = trust.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    if !(sabotage.one_connection_at_a_time && live.load(Ordering::SeqCst) > 0) {
                        dial_once(&client_config, target, &sabotage, &revoke, &live, &trust).await;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }));
        }
        FakeDut {
            identity,
            addr,
            revoke,
            tasks,
        }
    }
}

async fn dial_once(
    config: &Arc<rustls::ClientConfig>,
    target: SocketAddr,
    sabotage: &Sabotage,
    revoke: &Arc<Revoke>,
    live: &Arc<AtomicUsize>,
    trust: &Trust,
) {
    let Ok(tcp) = TcpStream::connect(target).await else {
        return;
    };
    // Counted from the TCP connect on, so a concurrent incoming connection sees it at once
    // (unless only established connections count).
    let early = sabotage.busy_while_dialling;
    if early {
        live.fetch_add(1, Ordering::SeqCst);
    }
    let established = dial_session(config, tcp, target, sabotage, revoke, trust, live).await;
    if early || established {
        tokio::time::sleep(sabotage.slow_close).await;
        live.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn dial_session(
    config: &Arc<rustls::ClientConfig>,
    tcp: TcpStream,
    target: SocketAddr,
    sabotage: &Sabotage,
    revoke: &Arc<Revoke>,
    trust: &Trust,
    live: &Arc<AtomicUsize>,
) -> bool {
    let name = ServerName::try_from("ship-node.local").unwrap();
    let Ok(tls) = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
    else {
        return false;
    };
    if !sabotage.busy_while_dialling {
        live.fetch_add(1, Ordering::SeqCst);
    }
    let der = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec());
    if !trust.decide(sabotage, der.as_deref()) {
        // As client it closes at once: the server is not the one it dialled.
        return true;
    }
    let mut request = format!("wss://{target}/ship/")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("ship"));
    let Ok((ws, _)) = tokio_tungstenite::client_async(request, tls).await else {
        return true;
    };
    Script::new(
        ws,
        sabotage.clone(),
        revoke.clone(),
        true,
        true,
        computed_ski(der.as_deref()),
    )
    .run()
    .await;
    true
}

fn control(json: &str) -> Vec<u8> {
    let mut bytes = vec![1];
    bytes.extend_from_slice(json.as_bytes());
    bytes
}

/// One connection's behaviour.
struct Script<S> {
    ws: WebSocketStream<S>,
    sabotage: Sabotage,
    revoke: Arc<Revoke>,
    client: bool,
    /// The peer is trusted: hello `ready` (otherwise `pending`, never ready).
    trusted: bool,
    /// The peer's SKI, computed from its certificate's key.
    peer: Option<Ski>,
    start: Instant,
}

enum Got {
    Bytes(Vec<u8>),
    Timeout,
    Gone,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Script<S> {
    fn new(
        ws: WebSocketStream<S>,
        sabotage: Sabotage,
        revoke: Arc<Revoke>,
        client: bool,
        trusted: bool,
        peer: Option<Ski>,
    ) -> Self {
        Script {
            ws,
            sabotage,
            revoke,
            client,
            trusted,
            peer,
            start: Instant::now(),
        }
    }

    async fn send(&mut self, bytes: Vec<u8>) {
        let _ = self.ws.send(Message::binary(bytes)).await;
    }

    async fn recv_until(&mut self, deadline: Instant) -> Got {
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Got::Timeout,
                Ok(Some(Ok(Message::Binary(bytes)))) => return Got::Bytes(bytes.to_vec()),
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return Got::Gone,
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    async fn close(&mut self) {
        let _ = self.ws.close(None).await;
    }

    fn handshake_wait(&self) -> Duration {
        if self.sabotage.slow_handshake_timeout {
            Duration::from_secs(60)
        } else {
            Duration::from_secs(10)
        }
    }

    async fn run(mut self) {
        if self.cmi().await && self.hello().await && self.protocol().await && self.pin().await {
            self.data_exchange().await;
        }
        self.close().await;
    }

    async fn cmi(&mut self) -> bool {
        let deadline = self.start + self.sabotage.cmi_timeout;
        if self.client {
            self.send(vec![0, 0]).await;
        }
        let Got::Bytes(first) = self.recv_until(deadline).await else {
            return false;
        };
        if first != [0, 0] {
            if self.client && self.sabotage.keeps_talking_after_bad_cmi {
                self.send(self.hello_message()).await;
                tokio::time::sleep(Duration::from_secs(15)).await;
            }
            if !self.client && !self.sabotage.no_cmi_on_bad_first {
                self.send(vec![0, 0]).await;
            }
            return false;
        }
        if !self.client {
            self.send(vec![0, 0]).await;
        }
        true
    }

    fn hello_message(&self) -> Vec<u8> {
        if self.sabotage.hello_pending || !self.trusted {
            control(r#"{"connectionHello":[{"phase":"pending"},{"waiting":120000}]}"#)
        } else if self.sabotage.hello_without_waiting {
            control(r#"{"connectionHello":[{"phase":"ready"}]}"#)
        } else {
            control(&format!(
                r#"{{"connectionHello":[{{"phase":"ready"}},{{"waiting":{HELLO_WAIT_MS}}}]}}"#
            ))
        }
    }

    async fn abort(&mut self) {
        self.send(control(r#"{"connectionHello":[{"phase":"aborted"}]}"#))
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    async fn hello(&mut self) -> bool {
        if self.sabotage.garbled_hello {
            self.send(control(
                r#"{"connectionHello":[{"phase":"redy"},{"waiting":120000}]}"#,
            ))
            .await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            return false;
        }
        self.send(self.hello_message()).await;
        let mut deadline = Instant::now() + Duration::from_millis(HELLO_WAIT_MS);
        loop {
            let bytes = match self.recv_until(deadline).await {
                Got::Bytes(bytes) => bytes,
                Got::Timeout => {
                    self.abort().await;
                    return false;
                }
                Got::Gone => return false,
            };
            let Ok(ShipMessage::ConnectionHello(hello)) = decode(&bytes) else {
                return false;
            };
            match hello.phase {
                // An untrusted peer waits for a user who never comes.
                HelloPhase::Ready if !self.trusted => {}
                HelloPhase::Ready => return !self.sabotage.hello_pending,
                HelloPhase::Pending if hello.prolongation_request == Some(true) => {
                    let now = Instant::now();
                    deadline = if self.sabotage.restarts_hello_timer {
                        now + Duration::from_millis(HELLO_WAIT_MS)
                    } else {
                        deadline + Duration::from_millis(HELLO_WAIT_MS)
                    };
                    let waiting = deadline.saturating_duration_since(now).as_millis();
                    self.send(control(&format!(
                        r#"{{"connectionHello":[{{"phase":"ready"}},{{"waiting":{waiting}}}]}}"#
                    )))
                    .await;
                }
                HelloPhase::Pending if self.sabotage.aborts_on_pending => {
                    self.abort().await;
                    return false;
                }
                HelloPhase::Pending => {}
                _ => return false,
            }
        }
    }

    async fn handshake_error(&mut self, code: u8) {
        self.send(control(&format!(
            r#"{{"messageProtocolHandshakeError":[{{"error":{code}}}]}}"#
        )))
        .await;
    }

    /// Waits for a protocol-handshake message of `kind`, with the error rules.
    async fn expect_handshake(&mut self, kind: HandshakeType) -> Option<ProtocolHandshake> {
        let deadline = Instant::now() + self.handshake_wait();
        loop {
            match self.recv_until(deadline).await {
                Got::Timeout => {
                    self.handshake_error(1).await;
                    return None;
                }
                Got::Gone => return None,
                Got::Bytes(bytes) => match decode(&bytes) {
                    Ok(ShipMessage::ProtocolHandshake(h)) if h.handshake_type == kind => {
                        return Some(h);
                    }
                    _ if self.sabotage.ignores_wrong_message => {}
                    _ => {
                        self.handshake_error(2).await;
                        return None;
                    }
                },
            }
        }
    }

    fn select(&self, (major, minor): (u16, u16), format: &str) -> Vec<u8> {
        control(&format!(
            r#"{{"messageProtocolHandshake":[{{"handshakeType":"select"}},{{"version":[{{"major":{major}}},{{"minor":{minor}}}]}},{{"formats":[{{"format":["{format}"]}}]}}]}}"#
        ))
    }

    async fn protocol(&mut self) -> bool {
        if self.client {
            let (major, minor) = self.sabotage.announce_version;
            self.send(control(&format!(
                r#"{{"messageProtocolHandshake":[{{"handshakeType":"announceMax"}},{{"version":[{{"major":{major}}},{{"minor":{minor}}}]}},{{"formats":[{{"format":["JSON-UTF8"]}}]}}]}}"#
            )))
            .await;
            let Some(chosen) = self.expect_handshake(HandshakeType::Select).await else {
                return false;
            };
            // The echo is the server's select, unchanged.
            let version = (chosen.version.major, chosen.version.minor);
            self.send(self.select(version, "JSON-UTF8")).await;
            true
        } else {
            let Some(offer) = self.expect_handshake(HandshakeType::AnnounceMax).await else {
                return false;
            };
            let offered = (offer.version.major, offer.version.minor);
            let version = self
                .sabotage
                .selects_version
                .unwrap_or(offered.min(self.sabotage.max_version));
            let format = self.sabotage.select_format;
            self.send(self.select(version, format)).await;
            self.expect_handshake(HandshakeType::Select).await.is_some()
        }
    }

    async fn pin(&mut self) -> bool {
        let own = match self.sabotage.requires_pin {
            Some(_) => {
                r#"{"connectionPinState":[{"pinState":"required"},{"inputPermission":"ok"}]}"#
                    .to_owned()
            }
            None => format!(
                r#"{{"connectionPinState":[{{"pinState":"{}"}}]}}"#,
                self.sabotage.pin_state
            ),
        };
        self.send(control(&own)).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        let peer_state = match self.recv_until(deadline).await {
            Got::Bytes(b) => match decode(&b) {
                Ok(ShipMessage::ConnectionPinState(state)) => state.pin_state,
                _ => return false,
            },
            _ => return false,
        };
        if peer_state == PinState::Required {
            let Some(pin) = self.sabotage.sends_pin else {
                return false;
            };
            self.send(control(&format!(
                r#"{{"connectionPinInput":[{{"pin":"{pin}"}}]}}"#
            )))
            .await;
            if self.sabotage.requires_pin.is_none() {
                return true;
            }
        }
        let Some(expected) = self.sabotage.requires_pin else {
            return true;
        };
        // Wait for the peer's PIN: the right one opens, a wrong one is an error (no penalty:
        // the tool's cases send at most one).
        loop {
            let Got::Bytes(b) = self.recv_until(deadline).await else {
                return false;
            };
            if let Ok(ShipMessage::ConnectionPinInput(input)) = decode(&b) {
                let right = input.pin.is_some_and(|p| p.reveal() == expected);
                if (right || self.sabotage.accepts_any_pin) && !self.sabotage.rejects_every_pin {
                    self.send(control(r#"{"connectionPinState":[{"pinState":"pinOk"}]}"#))
                        .await;
                    return true;
                }
                self.send(control(r#"{"connectionPinError":[{"error":1}]}"#))
                    .await;
            }
        }
    }

    async fn data_exchange(&mut self) {
        if !self.sabotage.never_requests_am {
            self.send(control(r#"{"accessMethodsRequest":[]}"#)).await;
        }
        let am_deadline = Instant::now() + self.sabotage.am_wait;
        let mut answered = self.sabotage.never_requests_am;
        let mut own_counter = 100u64;
        let mut seen_bad = false;
        let mut last_was_data = false;
        let far = Instant::now() + Duration::from_secs(600);
        loop {
            let deadline = if answered { far } else { am_deadline };
            let revoke = self.revoke.clone();
            let peer = self.peer;
            let got = tokio::select! {
                got = self.recv_until(deadline) => got,
                () = revoke.revoked(peer) => {
                    let reason = self.sabotage.close_reason;
                    self.send({
                        let mut b = vec![3];
                        b.extend_from_slice(format!(r#"{{"connectionClose":[{{"phase":"announce"}},{{"maxTime":500}},{{"reason":"{reason}"}}]}}"#).as_bytes());
                        b
                    }).await;
                    if self.sabotage.never_closes_after_announce {
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    } else {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    return;
                }
            };
            let bytes = match got {
                Got::Bytes(bytes) => bytes,
                Got::Timeout => return,
                Got::Gone => return,
            };
            let message = decode(&bytes);
            let was_data = last_was_data;
            last_was_data = matches!(message, Ok(ShipMessage::Data(_)));
            match message {
                Err(_) => seen_bad = true,
                Ok(ShipMessage::AccessMethodsRequest) => {
                    let text = String::from_utf8_lossy(&bytes[1..]).into_owned();
                    let ignore = (self.sabotage.deaf_after_bad_bytes && seen_bad)
                        || (self.sabotage.strict_whitespace && text.contains([' ', '\t', '\n']))
                        || (self.sabotage.am_after_data_dropped && was_data);
                    if !ignore {
                        self.send(control(&format!(
                            r#"{{"accessMethods":[{{"id":"{}"}}]}}"#,
                            self.sabotage.ship_id
                        )))
                        .await;
                    }
                }
                Ok(ShipMessage::AccessMethods(_)) => answered = true,
                Ok(ShipMessage::Data(data)) if self.sabotage.spine != Spine::None => {
                    own_counter += 1;
                    let header = match (self.sabotage.spine, msg_counter(data.payload.get())) {
                        (Spine::Replies, Some(read)) => format!(
                            r#"{{"msgCounter":{own_counter}}},{{"msgCounterReference":{read}}},{{"cmdClassifier":"reply"}}"#
                        ),
                        _ => {
                            format!(r#"{{"msgCounter":{own_counter}}},{{"cmdClassifier":"read"}}"#)
                        }
                    };
                    let mut b = vec![2];
                    b.extend_from_slice(format!(
                        r#"{{"data":[{{"header":[{{"protocolId":"ee1.0"}}]}},{{"payload":{{"datagram":[{{"header":[{{"specificationVersion":"1.3.0"}},{header}]}},{{"payload":[{{"cmd":[[]]}}]}}]}}}}]}}"#
                    ).as_bytes());
                    self.send(b).await;
                }
                Ok(ShipMessage::ConnectionClose(c)) if c.phase == ClosePhase::Announce => {
                    let mut b = vec![3];
                    b.extend_from_slice(br#"{"connectionClose":[{"phase":"confirm"}]}"#);
                    self.send(b).await;
                    return;
                }
                Ok(_) => {}
            }
        }
    }
}

/// The `msgCounter` of a SPINE datagram (the tool's reads carry it as `{"msgCounter":N}`).
fn msg_counter(payload: &str) -> Option<u64> {
    let at = payload.find("\"msgCounter\":")? + "\"msgCounter\":".len();
    let digits: String = payload[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
