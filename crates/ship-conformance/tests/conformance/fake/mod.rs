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
use ship_hub::identity::Identity;
use ship_hub::protocol::ShipMessage;
use ship_hub::protocol::codec::decode;
use ship_hub::protocol::message::{ClosePhase, HandshakeType, HelloPhase, PinState};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;

use tls::{Lax, Present};

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
        }
    }
}

/// A running fake device.
pub struct FakeDut {
    pub identity: Identity,
    pub addr: SocketAddr,
    /// Notified by the tool's revoke hook (TERM_001): every connection in data exchange
    /// announces its close.
    pub revoke: Arc<Notify>,
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
        let revoke = Arc::new(Notify::new());
        let live = Arc::new(AtomicUsize::new(0));
        let server_config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider())
                .with_protocol_versions(&[&rustls::version::TLS12])
                .unwrap()
                .with_client_cert_verifier(Arc::new(Lax))
                .with_cert_resolver(Arc::new(Present(key.clone()))),
        );
        let mut tasks = Vec::new();
        {
            let sabotage = sabotage.clone();
            let revoke = revoke.clone();
            let live = live.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((tcp, _)) = listener.accept().await else {
                        return;
                    };
                    let config = server_config.clone();
                    let sabotage = sabotage.clone();
                    let revoke = revoke.clone();
                    let live = live.clone();
                    tokio::spawn(async move {
                        let Ok(tls) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await
                        else {
                            return;
                        };
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
                        Script::new(ws, sabotage, revoke, false).run().await;
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
                    .with_custom_certificate_verifier(Arc::new(Lax))
                    .with_client_cert_resolver(Arc::new(Present(key.clone())));
                config.resumption = rustls::client::Resumption::disabled();
                Arc::new(config)
            };
            tasks.push(tokio::spawn(async move {
                loop {
                    if !(sabotage.one_connection_at_a_time && live.load(Ordering::SeqCst) > 0) {
                        dial_once(&client_config, target, &sabotage, &revoke, &live).await;
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
    revoke: &Arc<Notify>,
    live: &Arc<AtomicUsize>,
) {
    let Ok(tcp) = TcpStream::connect(target).await else {
        return;
    };
    // Counted from the TCP connect on, so a concurrent incoming connection sees it at once.
    live.fetch_add(1, Ordering::SeqCst);
    dial_session(config, tcp, target, sabotage, revoke).await;
    live.fetch_sub(1, Ordering::SeqCst);
}

async fn dial_session(
    config: &Arc<rustls::ClientConfig>,
    tcp: TcpStream,
    target: SocketAddr,
    sabotage: &Sabotage,
    revoke: &Arc<Notify>,
) {
    let name = ServerName::try_from("ship-node.local").unwrap();
    let Ok(tls) = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
    else {
        return;
    };
    let mut request = format!("wss://{target}/ship/")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("ship"));
    let Ok((ws, _)) = tokio_tungstenite::client_async(request, tls).await else {
        return;
    };
    Script::new(ws, sabotage.clone(), revoke.clone(), true)
        .run()
        .await;
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
    revoke: Arc<Notify>,
    client: bool,
    start: Instant,
}

enum Got {
    Bytes(Vec<u8>),
    Timeout,
    Gone,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Script<S> {
    fn new(ws: WebSocketStream<S>, sabotage: Sabotage, revoke: Arc<Notify>, client: bool) -> Self {
        Script {
            ws,
            sabotage,
            revoke,
            client,
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
        if self.sabotage.hello_pending {
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
    async fn expect_handshake(&mut self, kind: HandshakeType) -> bool {
        let deadline = Instant::now() + self.handshake_wait();
        loop {
            match self.recv_until(deadline).await {
                Got::Timeout => {
                    self.handshake_error(1).await;
                    return false;
                }
                Got::Gone => return false,
                Got::Bytes(bytes) => match decode(&bytes) {
                    Ok(ShipMessage::ProtocolHandshake(h)) if h.handshake_type == kind => {
                        return true;
                    }
                    _ if self.sabotage.ignores_wrong_message => {}
                    _ => {
                        self.handshake_error(2).await;
                        return false;
                    }
                },
            }
        }
    }

    fn select(&self) -> Vec<u8> {
        control(&format!(
            r#"{{"messageProtocolHandshake":[{{"handshakeType":"select"}},{{"version":[{{"major":1}},{{"minor":0}}]}},{{"formats":[{{"format":["{}"]}}]}}]}}"#,
            self.sabotage.select_format
        ))
    }

    async fn protocol(&mut self) -> bool {
        if self.client {
            let (major, minor) = self.sabotage.announce_version;
            self.send(control(&format!(
                r#"{{"messageProtocolHandshake":[{{"handshakeType":"announceMax"}},{{"version":[{{"major":{major}}},{{"minor":{minor}}}]}},{{"formats":[{{"format":["JSON-UTF8"]}}]}}]}}"#
            )))
            .await;
            if !self.expect_handshake(HandshakeType::Select).await {
                return false;
            }
            self.send(self.select()).await;
            true
        } else {
            if !self.expect_handshake(HandshakeType::AnnounceMax).await {
                return false;
            }
            self.send(self.select()).await;
            self.expect_handshake(HandshakeType::Select).await
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
        self.send(control(r#"{"accessMethodsRequest":[]}"#)).await;
        let am_deadline = Instant::now() + self.sabotage.am_wait;
        let mut answered = false;
        let mut seen_bad = false;
        let mut last_was_data = false;
        let far = Instant::now() + Duration::from_secs(600);
        loop {
            let deadline = if answered { far } else { am_deadline };
            let revoke = self.revoke.clone();
            let got = tokio::select! {
                got = self.recv_until(deadline) => got,
                () = revoke.notified() => {
                    self.send({
                        let mut b = vec![3];
                        b.extend_from_slice(br#"{"connectionClose":[{"phase":"announce"},{"maxTime":500},{"reason":"removedConnection"}]}"#);
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
