//! Hostile inputs below SHIP, on real loopback sockets: TCP garbage, TLS without or with odd
//! client certificates (SHIP §9). WebSocket-level rows are in `websocket.rs`. Each
//! test ends by checking that the victim hub still exchanges data with its paired friend.
//! The table of these rows is in docs/robustness.md.

use ship_hub::hub::PairedPeer;
use ship_test_support::common;
use ship_test_support::harness;

use std::sync::Arc;
use std::time::Duration;

use harness::{Victim, WAIT, connect, failures, msg, tls, wait_failure};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyIdMethod, KeyPair};
use rustls::SignatureScheme;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use ship_hub::Ski;
use ship_hub::hub::FailureCause;
use ship_hub::identity::Identity;
use ship_hub::transport::WsOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{Seen, identity};

/// Reads until EOF or reset: the victim dropped the connection.
async fn read_until_dropped(tcp: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut buf))
        .await
        .expect("the victim drops the connection within the failure bound");
    buf
}

#[tokio::test]
async fn tcp_garbage_is_dropped_as_not_tls() {
    let victim = Victim::start().await;
    let before = failures(&victim, FailureCause::Tls);
    let mut tcp = TcpStream::connect(victim.addr()).await.unwrap();
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
    let _ = tcp.write_all(&garbage).await;
    read_until_dropped(&mut tcp).await;
    wait_failure(&victim, FailureCause::Tls, before).await;
    victim.assert_serving().await;
    victim.stop().await;
}

#[tokio::test]
async fn plaintext_http_upgrade_is_dropped_as_not_tls() {
    let victim = Victim::start().await;
    let before = failures(&victim, FailureCause::Tls);
    let mut tcp = TcpStream::connect(victim.addr()).await.unwrap();
    tcp.write_all(
        b"GET /ship/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: ship\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = read_until_dropped(&mut tcp).await;
    assert!(!answer.starts_with(b"HTTP"), "answered in plaintext");
    wait_failure(&victim, FailureCause::Tls, before).await;
    victim.assert_serving().await;
    victim.stop().await;
}

#[tokio::test]
async fn half_a_client_hello_then_silence_is_dropped_at_the_transport_deadline() {
    let victim = Victim::start_with(|c| {
        c.limits.transport_handshake_timeout = Duration::from_secs(1);
    })
    .await;
    let before = failures(&victim, FailureCause::HandshakeTimeout);
    let mut tcp = TcpStream::connect(victim.addr()).await.unwrap();
    // A handshake record header announcing 512 bytes, followed by only 10 of them.
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03])
        .await
        .unwrap();
    read_until_dropped(&mut tcp).await;
    wait_failure(&victim, FailureCause::HandshakeTimeout, before).await;
    victim.assert_serving().await;
    victim.stop().await;
}

/// Accepts any server certificate: the hostile clients are deliberately not SHIP clients.
const ANY_SERVER: AcceptAnything = AcceptAnything::EVERY_SCHEME;
use ship_test_support::AcceptAnything;

fn raw_builder() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    rustls::ClientConfig::builder_with_provider(Arc::new(ship_hub::transport::ring_provider(
        rustls::crypto::ring::DEFAULT_CIPHER_SUITES.to_vec(),
        rustls::crypto::ring::DEFAULT_KX_GROUPS.to_vec(),
    )))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(ANY_SERVER))
}

fn client_with(cert: Vec<u8>, key: Vec<u8>) -> rustls::ClientConfig {
    raw_builder()
        .with_client_auth_cert(
            vec![CertificateDer::from(cert)],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)),
        )
        .unwrap()
}

/// Runs a raw TLS client against the victim; true if the victim completed TLS and then kept
/// the connection open for a WebSocket request (it never should for these clients).
async fn raw_tls_admitted(victim: &Victim, client: rustls::ClientConfig) -> bool {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = TcpStream::connect(victim.addr()).await.unwrap();
    let Ok(mut stream) = connector
        .connect(ServerName::try_from("ship-node.local").unwrap(), tcp)
        .await
    else {
        return false;
    };
    let request = "GET /ship/ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                   Sec-WebSocket-Protocol: ship\r\n\r\n";
    if stream.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(WAIT, stream.read(&mut buf)).await,
        Ok(Ok(n)) if n > 0
    )
}

/// A certificate from `params` for a fresh key of `alg`, its SKI set to SHA-1 of the key
/// (the SHIP rule) unless `params` already pre-specifies one.
fn certificate(
    mut params: CertificateParams,
    alg: &'static rcgen::SignatureAlgorithm,
) -> (Vec<u8>, Vec<u8>, Ski) {
    let key = KeyPair::generate_for(alg).unwrap();
    let ski = Ski::of_public_key(key.public_key_raw());
    if !matches!(params.key_identifier_method, KeyIdMethod::PreSpecified(_)) {
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski.as_bytes().to_vec());
    }
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert.der().to_vec(), key.serialize_der(), ski)
}

async fn refused_at_tls(victim: &Victim, client: rustls::ClientConfig) {
    let before = failures(victim, FailureCause::Tls);
    assert!(!raw_tls_admitted(victim, client).await, "admitted");
    wait_failure(victim, FailureCause::Tls, before).await;
}

#[tokio::test]
async fn tls_client_without_certificate_is_refused() {
    let victim = Victim::start().await;
    refused_at_tls(&victim, raw_builder().with_no_client_auth()).await;
    victim.assert_serving().await;
    victim.stop().await;
}

/// Validity dates are deliberately not checked (docs/tls.md): a trusted SKI with an expired
/// certificate completes the SHIP handshake and its data is delivered.
#[tokio::test]
async fn expired_certificate_of_a_trusted_ski_is_accepted() {
    dated_certificate_of_a_trusted_ski_is_accepted(2001, 2002).await;
}

#[tokio::test]
async fn not_yet_valid_certificate_of_a_trusted_ski_is_accepted() {
    dated_certificate_of_a_trusted_ski_is_accepted(2090, 2099).await;
}

async fn dated_certificate_of_a_trusted_ski_is_accepted(from_year: i32, to_year: i32) {
    let victim = Victim::start().await;
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.not_before = rcgen::date_time_ymd(from_year, 1, 1);
    params.not_after = rcgen::date_time_ymd(to_year, 1, 1);
    let (cert, key, ski) = certificate(params, &rcgen::PKCS_ECDSA_P256_SHA256);
    let dated = Identity::from_der(cert, key).unwrap();
    victim.hub.pair(ski).unwrap();
    let mut socket = connect(&victim, &dated).await;
    harness::advance(&mut socket, harness::Stage::DataExchange).await;
    socket.send(msg::data(r#"{"dated":true}"#)).await.unwrap();
    assert!(
        victim
            .rec
            .wait_for(WAIT, |s| *s
                == Seen::Data(ski, br#"{"dated":true}"#.to_vec()))
            .await,
        "{:?}",
        victim.rec.all()
    );
    victim.assert_serving().await;
    victim.stop().await;
}

#[tokio::test]
async fn rsa_certificate_is_refused() {
    let victim = Victim::start().await;
    let key = KeyPair::from_pem(include_str!("rsa-2048.pem")).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.key_identifier_method = KeyIdMethod::PreSpecified(vec![0x11; 20]);
    let cert = params.self_signed(&key).unwrap();
    refused_at_tls(
        &victim,
        client_with(cert.der().to_vec(), key.serialize_der()),
    )
    .await;
    victim.assert_serving().await;
    victim.stop().await;
}

#[tokio::test]
async fn p384_certificate_is_refused() {
    let victim = Victim::start().await;
    let params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let (cert, key, ski) = certificate(params, &rcgen::PKCS_ECDSA_P384_SHA384);
    // Even trusted: SHIP keys are P-256 (docs/ship.md §1).
    victim.hub.pair(ski).unwrap();
    refused_at_tls(&victim, client_with(cert, key)).await;
    victim.assert_serving().await;
    victim.stop().await;
}

#[tokio::test]
async fn certificate_without_ski_is_refused() {
    let victim = Victim::start().await;
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::NoCa; // rcgen writes no SubjectKeyIdentifier for a leaf
    let cert = params.self_signed(&key).unwrap();
    refused_at_tls(
        &victim,
        client_with(cert.der().to_vec(), key.serialize_der()),
    )
    .await;
    victim.assert_serving().await;
    victim.stop().await;
}

#[tokio::test]
async fn ski_not_bound_to_the_key_is_refused() {
    let victim = Victim::start().await;
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.key_identifier_method = KeyIdMethod::PreSpecified(vec![0x42; 20]);
    let (cert, key, _) = certificate(params, &rcgen::PKCS_ECDSA_P256_SHA256);
    refused_at_tls(&victim, client_with(cert, key)).await;
    victim.assert_serving().await;
    victim.stop().await;
}

/// A key of its own in a certificate that claims the paired friend's SKI: refused during TLS,
/// and the friend's connection is untouched (no double-connection settlement for a liar).
#[tokio::test]
async fn certificate_claiming_the_ski_of_a_paired_device_is_refused() {
    let victim = Victim::start().await;
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.key_identifier_method =
        KeyIdMethod::PreSpecified(victim.friend.local_ski().as_bytes().to_vec());
    let (cert, key, _) = certificate(params, &rcgen::PKCS_ECDSA_P256_SHA256);
    refused_at_tls(&victim, client_with(cert, key)).await;
    assert_eq!(victim.hub.connections(victim.friend.local_ski()).len(), 1);
    victim.assert_serving().await;
    victim.stop().await;
}

/// Presents a paired device's real certificate but signs with another key: the
/// CertificateVerify check fails before the hub hears of the SKI.
#[tokio::test]
async fn certificate_of_a_paired_device_without_its_key_is_refused() {
    let victim = Victim::start().await;
    // A certificate is public (every peer sees it in TLS); the key is not.
    let owner = identity("owner");
    let thief = identity("thief");
    victim.hub.pair(owner.ski()).unwrap();
    let thief_key = ship_hub::transport::ring_provider(
        rustls::crypto::ring::DEFAULT_CIPHER_SUITES.to_vec(),
        rustls::crypto::ring::DEFAULT_KX_GROUPS.to_vec(),
    )
    .key_provider
    .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        thief.private_key_der().to_vec(),
    )))
    .unwrap();
    // CertifiedKey::new does not check that the key matches: exactly what a thief needs.
    let stolen = rustls::sign::CertifiedKey::new(
        vec![CertificateDer::from(owner.certificate_der().to_vec())],
        thief_key,
    );
    let client = raw_builder().with_client_cert_resolver(Arc::new(Stolen(Arc::new(stolen))));
    refused_at_tls(&victim, client).await;
    victim.assert_serving().await;
    victim.stop().await;
}

/// Presents a certificate whatever the server asks for.
#[derive(Debug)]
struct Stolen(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for Stolen {
    fn resolve(
        &self,
        _: &[&[u8]],
        _: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn connection_presenting_our_own_ski_is_refused() {
    let me = identity("me");
    let twin = me.clone();
    let victim = Victim::start_with(move |c| c.identity = me).await;
    let before = failures(&victim, FailureCause::Tls);
    let result = ship_hub::transport::dial(
        &tls(&twin),
        victim.addr(),
        victim.ski(),
        "/ship/",
        &WsOptions::default(),
    )
    .await;
    assert!(result.is_err(), "our own SKI was admitted");
    wait_failure(&victim, FailureCause::Tls, before).await;
    victim.assert_serving().await;
    victim.stop().await;
}

/// Waits until the victim's listener has taken `n` more TCP connections than `before` (each is
/// either admitted to a handshake or refused at once).
async fn listener_took(victim: &Victim, before: u64, n: u64) {
    let taken = || {
        let m = victim.hub.metrics();
        m.incoming_accepted + m.failures.refused_by_cap
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    while taken() < before + n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener took {} of {n} connections",
            taken() - before
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn listener_count(victim: &Victim) -> u64 {
    let m = victim.hub.metrics();
    m.incoming_accepted + m.failures.refused_by_cap
}

/// A paired peer with a scripted client: completes the SHIP handshake and delivers one data
/// message.
async fn paired_peer_is_served(
    victim: &Victim,
    socket: &mut ship_hub::transport::ShipSocket<TcpStream>,
    ski: Ski,
) {
    harness::advance(socket, harness::Stage::DataExchange).await;
    socket.send(msg::data(r#"{"got":"in"}"#)).await.unwrap();
    assert!(
        victim
            .rec
            .wait_for(WAIT, |s| *s == Seen::Data(ski, br#"{"got":"in"}"#.to_vec()))
            .await,
        "{:?}",
        victim.rec.all()
    );
}

/// 100 TCP connections from one address (127.0.0.2) that never send a byte: with the defaults
/// only `max_handshakes_per_address` (8) of them get a handshake slot, the rest are closed at
/// once, and the 8 are closed at the client-hello deadline (2 s). A paired peer connecting
/// meanwhile is admitted at its first attempt. (Before: 32 of them held every handshake slot
/// for the 10 s transport deadline and the paired peer's connection was dropped.)
#[tokio::test]
async fn idle_sockets_from_one_address_do_not_lock_out_a_paired_peer() {
    let victim = Victim::start().await;
    let paired = identity("paired");
    victim.hub.pair(paired.ski()).unwrap();
    let before = listener_count(&victim);
    let opened = std::time::Instant::now();
    let mut idle = Vec::new();
    for _ in 0..100 {
        idle.push(harness::tcp_from(&victim, [127, 0, 0, 2]).await);
    }
    listener_took(&victim, before, 100).await;
    let attempt = std::time::Instant::now();
    let mut socket = harness::connect_from(&victim, &paired, [127, 0, 0, 1])
        .await
        .expect("the paired peer is admitted at its first attempt");
    let delay = attempt.elapsed();
    paired_peer_is_served(&victim, &mut socket, paired.ski()).await;
    let mut closed_after = Vec::new();
    for mut tcp in idle {
        let mut buf = [0u8; 1];
        let read = tokio::time::timeout(WAIT, tcp.read(&mut buf))
            .await
            .expect("every idle socket is closed within the failure bound");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        closed_after.push(opened.elapsed());
    }
    let last = closed_after.iter().max().unwrap();
    println!(
        "IDLE x100 from 127.0.0.2: paired peer admitted after {delay:?} (TLS + WebSocket); \
         last idle socket closed {last:?} after opening; refused at once: {}",
        failures(&victim, FailureCause::RefusedByCap)
    );
    assert!(
        delay < Duration::from_secs(5),
        "the paired peer waited {delay:?}: as long as the old transport deadline"
    );
    victim.assert_serving().await;
    victim.stop().await;
}

/// Strangers from nine addresses (4 idle connections each, held: the client-hello deadline is
/// raised to the transport deadline here) fill every open handshake slot: a tenth address is
/// closed at once, but a paired peer connecting from the address the hub knows for it takes
/// one of the `reserved_handshakes` and is served.
#[tokio::test]
async fn reserved_handshake_slots_admit_a_paired_peer_when_strangers_fill_the_rest() {
    let victim = Victim::start_with(|c| {
        c.limits.client_hello_timeout = Duration::from_secs(10);
    })
    .await;
    let paired = identity("paired");
    // Its configured address (nothing listens there: the victim's dials fail, which is fine).
    let port = std::net::TcpListener::bind("127.0.0.20:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dials = victim.hub.metrics().dial_attempts;
    victim
        .hub
        .pair(PairedPeer::new(paired.ski()).with_address(([127, 0, 0, 20], port).into()))
        .unwrap();
    // A dial to it means the supervisor has taken in the address (and published it).
    let deadline = tokio::time::Instant::now() + WAIT;
    while victim.hub.metrics().dial_attempts == dials {
        assert!(tokio::time::Instant::now() < deadline, "never dialled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = listener_count(&victim);
    let mut idle = Vec::new();
    for host in 2..=10u8 {
        for _ in 0..4 {
            idle.push(harness::tcp_from(&victim, [127, 0, 0, host]).await);
        }
    }
    listener_took(&victim, before, 36).await;
    let refused_before = failures(&victim, FailureCause::RefusedByCap);
    let started = std::time::Instant::now();
    let mut stranger = harness::tcp_from(&victim, [127, 0, 0, 11]).await;
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(WAIT, stranger.read(&mut buf))
        .await
        .expect("closed within the failure bound");
    let refused_in = started.elapsed();
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        failures(&victim, FailureCause::RefusedByCap) > refused_before,
        "the stranger was not refused for lack of a slot"
    );
    let attempt = std::time::Instant::now();
    let mut socket = harness::connect_from(&victim, &paired, [127, 0, 0, 20])
        .await
        .expect("the paired peer takes a reserved slot");
    let delay = attempt.elapsed();
    paired_peer_is_served(&victim, &mut socket, paired.ski()).await;
    println!(
        "RESERVE: 36 idle from 9 addresses; a tenth address closed after {refused_in:?}; \
         paired peer from its known address admitted after {delay:?}"
    );
    victim.assert_serving().await;
    drop(idle);
    victim.stop().await;
}

/// Row 60a, same-host lockout: silent sockets from the paired peer's own address (its host, or
/// the NAT it is behind) held that address's `max_handshakes_per_address` (8), and the paired
/// peer connecting from there was refused at once for as long as they were renewed. At the
/// address of a paired peer a new connection now takes the place of the oldest one that has
/// not sent its ClientHello (nothing was said, no TLS work done): the paired peer is admitted
/// at its first attempt, and the silent sockets are closed in turn. (The client-hello deadline
/// is raised to the transport deadline here, so nothing else would have closed them.)
#[tokio::test]
async fn silent_sockets_from_the_paired_peers_own_address_do_not_lock_it_out() {
    let victim = Victim::start_with(|c| {
        c.limits.client_hello_timeout = Duration::from_secs(10);
    })
    .await;
    let paired = identity("paired");
    // Its configured address (nothing listens there: the victim's dials fail, which is fine).
    let port = std::net::TcpListener::bind("127.0.0.21:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dials = victim.hub.metrics().dial_attempts;
    victim
        .hub
        .pair(PairedPeer::new(paired.ski()).with_address(([127, 0, 0, 21], port).into()))
        .unwrap();
    // A dial to it means the supervisor has taken in the address (and published it).
    let deadline = tokio::time::Instant::now() + WAIT;
    while victim.hub.metrics().dial_attempts == dials {
        assert!(tokio::time::Instant::now() < deadline, "never dialled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let before = listener_count(&victim);
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(harness::tcp_from(&victim, [127, 0, 0, 21]).await);
    }
    listener_took(&victim, before, 20).await;
    let attempt = std::time::Instant::now();
    let mut socket = harness::connect_from(&victim, &paired, [127, 0, 0, 21])
        .await
        .expect("the paired peer is admitted at its first attempt from its own address");
    let delay = attempt.elapsed();
    paired_peer_is_served(&victim, &mut socket, paired.ski()).await;
    // The 12 oldest silent sockets gave their places to newer ones, and the oldest of the rest
    // to the paired peer: 13 closed, long before the client-hello deadline.
    let mut closed = 0;
    for tcp in &mut silent {
        let mut buf = [0u8; 1];
        if let Ok(read) = tokio::time::timeout(Duration::from_millis(200), tcp.read(&mut buf)).await
        {
            assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
            closed += 1;
        }
    }
    println!(
        "SAME HOST: 20 silent sockets from the paired peer's address, {closed} closed for newer          ones; the paired peer admitted after {delay:?} (TLS + WebSocket)"
    );
    assert_eq!(
        closed, 13,
        "silent sockets closed for newer ones from their address"
    );
    victim.assert_serving().await;
    drop(silent);
    victim.stop().await;
}

/// A TCP connection that never sends its ClientHello is closed at the client-hello deadline
/// (here 500 ms), not held for the whole transport deadline (10 s).
#[tokio::test]
async fn silent_tcp_connection_is_closed_at_the_client_hello_deadline() {
    let victim = Victim::start_with(|c| {
        c.limits.client_hello_timeout = Duration::from_millis(500);
    })
    .await;
    let before = failures(&victim, FailureCause::HandshakeTimeout);
    let started = std::time::Instant::now();
    let mut tcp = harness::tcp_from(&victim, [127, 0, 0, 2]).await;
    read_until_dropped(&mut tcp).await;
    let closed_in = started.elapsed();
    wait_failure(&victim, FailureCause::HandshakeTimeout, before).await;
    println!("SILENT TCP: closed after {closed_in:?} (client-hello deadline 500 ms)");
    assert!(
        closed_in < Duration::from_secs(5),
        "held for {closed_in:?}: the transport deadline, not the client-hello deadline"
    );
    victim.assert_serving().await;
    victim.stop().await;
}
