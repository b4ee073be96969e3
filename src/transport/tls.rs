//! rustls configurations for SHIP (docs/ship.md §2, SHIP §9).
//!
//! * Mutual TLS: the server requires a client certificate; trust is per SKI, never per CA.
//! * TLS 1.2 on secp256r1 with the cipher suites of [`TlsSuite::ALL`], in that server preference
//!   order (AES_128_GCM, AES_256_GCM, CHACHA20_POLY1305, then the mandatory AES_128_CBC_SHA256,
//!   so that a peer able to do GCM never gets CBC; the server ignores the client's order);
//!   [`TlsOptions::cipher_suites`] restricts the list. TLS 1.3 (`TLS13_AES_128_GCM_SHA256`,
//!   secp256r1) only when [`TlsOptions::offer_tls13`] is set. See `docs/tls.md` for why TLS 1.2
//!   is the default and why the suites are these.
//! * No session resumption on either side: no tickets, no session cache.
//! * The client always sends SNI with a DNS-form name (§9.5), also when dialling an IP
//!   address, for which rustls would send none: [`FALLBACK_SERVER_NAME`] is used then.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::{ResolvesClientCert, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring as ring_provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::server::{ClientHello, NoServerSessionStorage, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SignatureScheme, SupportedProtocolVersion};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::{TlsError, TransportError, from_tls_io};
use super::suites::TlsSuite;
use super::verifier::{AnyShipClient, ClientCertificateObserver, ExpectedServer};
use crate::Ski;
use crate::identity::{Identity, parse_peer_certificate};

/// The SNI name sent when the dialled host is an IP address or empty: rustls sends no SNI for
/// an IP, but SHIP §9.5 wants one, and SHIP servers ignore its value.
pub const FALLBACK_SERVER_NAME: &str = "ship-node.local";

/// Choices in the TLS configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// Also offer/accept TLS 1.3 (with `TLS13_AES_128_GCM_SHA256`). Default `false`: SHIP §9
    /// specifies TLS 1.2, every deployed peer speaks it, and with TLS 1.2 a dialling client
    /// learns within the handshake whether the server accepted its certificate (see
    /// `docs/tls.md`).
    pub offer_tls13: bool,
    /// Largest TLS record we send, in bytes (32..=16384 plus header, see rustls'
    /// `max_fragment_size`). SHIP allows peers to limit records to 1024 bytes; `None` (the
    /// default) sends records of up to 16 KiB.
    pub max_fragment_size: Option<usize>,
    /// The TLS 1.2 cipher suites to offer and accept. `None` (the default) is every suite of
    /// [`TlsSuite::ALL`]. A list restricts the offer to its suites; their order is always that
    /// of [`TlsSuite::ALL`] (server preference), whatever the order of the list. An empty list
    /// is a configuration error.
    pub cipher_suites: Option<Vec<TlsSuite>>,
}

impl TlsOptions {
    /// The TLS 1.2 suites these options enable, in preference order.
    pub fn enabled_suites(&self) -> Vec<TlsSuite> {
        TlsSuite::ALL
            .into_iter()
            .filter(|suite| {
                self.cipher_suites
                    .as_ref()
                    .is_none_or(|chosen| chosen.contains(suite))
            })
            .collect()
    }
}

/// The TLS side of a SHIP node: built once per hub from its [`Identity`], then used for every
/// accepted and every dialled connection.
#[derive(Clone)]
pub struct ShipTls {
    provider: Arc<CryptoProvider>,
    versions: &'static [&'static SupportedProtocolVersion],
    max_fragment_size: Option<usize>,
    certified_key: Arc<CertifiedKey>,
    observer: Option<ClientCertificateObserver>,
    server: Arc<ServerConfig>,
}

impl std::fmt::Debug for ShipTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShipTls")
            .field("versions", &self.versions)
            .field("observer", &self.observer.is_some())
            .finish_non_exhaustive()
    }
}

static TLS12_ONLY: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
static TLS12_AND_13: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

impl ShipTls {
    /// Builds the configurations for `identity`.
    pub fn new(identity: &Identity, options: TlsOptions) -> Result<Self, TransportError> {
        if let Some(size) = options.max_fragment_size
            && !(32..=16_389).contains(&size)
        {
            return Err(TlsError::Configuration(format!(
                "max_fragment_size {size} is outside 32..=16389"
            ))
            .into());
        }
        let tls12_suites = options.enabled_suites();
        if tls12_suites.is_empty() {
            return Err(TlsError::Configuration("cipher_suites is empty".into()).into());
        }
        let mut cipher_suites = Vec::new();
        if options.offer_tls13 {
            cipher_suites.push(ring_provider::cipher_suite::TLS13_AES_128_GCM_SHA256);
        }
        cipher_suites.extend(tls12_suites.iter().map(|suite| suite.rustls_suite()));
        let provider = Arc::new(super::provider::ring_provider(
            cipher_suites,
            vec![ring_provider::kx_group::SECP256R1],
        ));
        let versions = if options.offer_tls13 {
            TLS12_AND_13
        } else {
            TLS12_ONLY
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            identity.private_key_der().to_vec(),
        ));
        let signing_key = provider
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::Configuration(e.to_string()))?;
        // Not `CertifiedKey::from_der`/`with_single_cert`: those parse our own certificate
        // strictly, which would refuse a certificate such as the Elli fixture.
        let certified_key = Arc::new(CertifiedKey::new(
            vec![CertificateDer::from(identity.certificate_der().to_vec())],
            signing_key,
        ));
        let max_fragment_size = options.max_fragment_size;
        let server = server_config(&provider, versions, max_fragment_size, &certified_key, None)?;
        Ok(ShipTls {
            provider,
            versions,
            max_fragment_size,
            certified_key,
            observer: None,
            server,
        })
    }

    /// Sets an observer that the server side calls with each client's SKI from inside the
    /// handshake: after the client proved possession of its key (CertificateVerify) and before
    /// the handshake completes. The hub uses it to settle double connections (§12.2.3) early.
    /// The observer runs on the handshake task and must not block.
    pub fn with_client_certificate_observer(
        mut self,
        observer: Arc<dyn Fn(Ski) + Send + Sync>,
    ) -> Self {
        self.observer = Some(observer);
        // Cannot fail: the same inputs built a configuration in `new`.
        if let Ok(server) = server_config(
            &self.provider,
            self.versions,
            self.max_fragment_size,
            &self.certified_key,
            self.observer.clone(),
        ) {
            self.server = server;
        }
        self
    }

    /// Runs the server side of the TLS handshake on an accepted stream. Returns the stream and
    /// the client's SKI (from its verified certificate); whether that SKI is trusted is the
    /// caller's decision. The same as [`ShipTls::read_client_hello`] followed by
    /// [`IncomingTls::accept`].
    pub async fn accept<S>(&self, stream: S) -> Result<(TlsStream<S>, Ski), TransportError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        self.read_client_hello(stream).await?.accept().await
    }

    /// The first half of [`ShipTls::accept`]: reads the client's first TLS message (the
    /// ClientHello) and nothing else — no key exchange, no signature, nothing sent. A server
    /// bounds this with a short deadline of its own, so that a connection that never starts TLS
    /// is dropped long before the whole handshake's deadline (the hub's
    /// `Limits::client_hello_timeout`). Bytes that are not TLS fail here with
    /// [`TlsError::InvalidMessage`].
    pub async fn read_client_hello<S>(&self, stream: S) -> Result<IncomingTls<S>, TransportError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let start =
            tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream)
                .await
                .map_err(from_tls_io)?;
        Ok(IncomingTls {
            start,
            server: self.server.clone(),
        })
    }

    /// Runs the client side of the TLS handshake, expecting the server to present `expected`.
    /// A server with another SKI aborts the handshake with [`TlsError::UnexpectedSki`].
    ///
    /// `server_name` is sent as SNI: the peer's mDNS host name if known; an IP address or an
    /// empty name is replaced by [`FALLBACK_SERVER_NAME`].
    pub async fn connect<S>(
        &self,
        stream: S,
        server_name: &str,
        expected: Ski,
    ) -> Result<TlsStream<S>, TransportError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let name = sni_name(server_name)?;
        let config = self.client_config(expected)?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, stream)
            .await
            .map_err(from_tls_io)?;
        let peer_ski = peer_ski(stream.get_ref().1.peer_certificates())
            .ok_or_else(|| TlsError::Other("the server presented no certificate".into()))?;
        let suite = stream.get_ref().1.negotiated_cipher_suite();
        tracing::debug!(peer = %peer_ski, suite = ?suite.map(|s| s.suite()), "TLS connected");
        Ok(TlsStream {
            inner: tokio_rustls::TlsStream::Client(stream),
            peer_ski,
        })
    }

    /// A client configuration whose verifier accepts only `expected`: built per dial.
    fn client_config(&self, expected: Ski) -> Result<Arc<ClientConfig>, TransportError> {
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(self.versions)
            .map_err(|e| TlsError::Configuration(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ExpectedServer { expected }))
            .with_client_cert_resolver(Arc::new(OwnCertificate(self.certified_key.clone())));
        config.resumption = Resumption::disabled();
        config.enable_sni = true;
        config.max_fragment_size = self.max_fragment_size;
        Ok(Arc::new(config))
    }
}

/// An incoming connection whose ClientHello has arrived ([`ShipTls::read_client_hello`]).
pub struct IncomingTls<S> {
    start: tokio_rustls::StartHandshake<S>,
    server: Arc<ServerConfig>,
}

impl<S> std::fmt::Debug for IncomingTls<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingTls").finish_non_exhaustive()
    }
}

impl<S> IncomingTls<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    /// Runs the rest of the server side of the TLS handshake. Returns the stream and the
    /// client's SKI (from its verified certificate), as [`ShipTls::accept`] does.
    pub async fn accept(self) -> Result<(TlsStream<S>, Ski), TransportError> {
        let stream = self
            .start
            .into_stream(self.server)
            .await
            .map_err(from_tls_io)?;
        let peer_ski = peer_ski(stream.get_ref().1.peer_certificates())
            .ok_or(TlsError::NoClientCertificate)?;
        let suite = stream.get_ref().1.negotiated_cipher_suite();
        tracing::debug!(peer = %peer_ski, suite = ?suite.map(|s| s.suite()), "TLS accepted");
        Ok((
            TlsStream {
                inner: tokio_rustls::TlsStream::Server(stream),
                peer_ski,
            },
            peer_ski,
        ))
    }
}

fn server_config(
    provider: &Arc<CryptoProvider>,
    versions: &'static [&'static SupportedProtocolVersion],
    max_fragment_size: Option<usize>,
    certified_key: &Arc<CertifiedKey>,
    observer: Option<ClientCertificateObserver>,
) -> Result<Arc<ServerConfig>, TransportError> {
    let mut config = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Configuration(e.to_string()))?
        .with_client_cert_verifier(Arc::new(AnyShipClient { observer }))
        .with_cert_resolver(Arc::new(OwnCertificate(certified_key.clone())));
    config.session_storage = Arc::new(NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config.max_fragment_size = max_fragment_size;
    // Our order (AEAD before CBC), not the client's, picks the suite.
    config.ignore_client_order = true;
    Ok(Arc::new(config))
}

fn sni_name(server_name: &str) -> Result<ServerName<'static>, TransportError> {
    let trimmed = server_name.trim_end_matches('.');
    let host = if trimmed.is_empty() || trimmed.parse::<std::net::IpAddr>().is_ok() {
        FALLBACK_SERVER_NAME
    } else {
        trimmed
    };
    ServerName::try_from(host.to_owned())
        .map_err(|_| TlsError::InvalidServerName(server_name.to_owned()).into())
}

fn peer_ski(certificates: Option<&[CertificateDer<'static>]>) -> Option<Ski> {
    let first = certificates?.first()?;
    parse_peer_certificate(first).ok().map(|peer| peer.ski)
}

/// Presents this node's certificate, on both sides.
#[derive(Debug)]
struct OwnCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for OwnCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for OwnCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// A TLS connection to a SHIP peer whose certificate has been verified, on either side.
#[derive(Debug)]
pub struct TlsStream<S> {
    inner: tokio_rustls::TlsStream<S>,
    peer_ski: Ski,
}

impl<S> TlsStream<S> {
    /// The peer's SKI, from its verified certificate.
    pub fn peer_ski(&self) -> Ski {
        self.peer_ski
    }

    /// The DER of the peer's (end-entity) certificate, as presented in the handshake.
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        let certificates = match &self.inner {
            tokio_rustls::TlsStream::Client(s) => s.get_ref().1.peer_certificates(),
            tokio_rustls::TlsStream::Server(s) => s.get_ref().1.peer_certificates(),
        };
        certificates?.first().map(|c| c.as_ref())
    }

    /// The negotiated protocol version, e.g. `TLSv1_2`.
    pub fn protocol_version(&self) -> Option<String> {
        let version = match &self.inner {
            tokio_rustls::TlsStream::Client(s) => s.get_ref().1.protocol_version(),
            tokio_rustls::TlsStream::Server(s) => s.get_ref().1.protocol_version(),
        };
        version.map(|v| format!("{v:?}"))
    }

    /// The negotiated cipher suite, e.g. `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`.
    pub fn cipher_suite(&self) -> Option<String> {
        let suite = match &self.inner {
            tokio_rustls::TlsStream::Client(s) => s.get_ref().1.negotiated_cipher_suite(),
            tokio_rustls::TlsStream::Server(s) => s.get_ref().1.negotiated_cipher_suite(),
        };
        suite.map(|s| format!("{:?}", s.suite()))
    }

    /// The negotiated TLS 1.2 cipher suite as a [`TlsSuite`] (`None` under TLS 1.3).
    pub fn tls_suite(&self) -> Option<TlsSuite> {
        let suite = match &self.inner {
            tokio_rustls::TlsStream::Client(s) => s.get_ref().1.negotiated_cipher_suite(),
            tokio_rustls::TlsStream::Server(s) => s.get_ref().1.negotiated_cipher_suite(),
        };
        TlsSuite::from_rustls(suite?.suite())
    }

    /// The underlying byte stream.
    pub fn get_ref(&self) -> &S {
        match &self.inner {
            tokio_rustls::TlsStream::Client(s) => s.get_ref().0,
            tokio_rustls::TlsStream::Server(s) => s.get_ref().0,
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sni_is_a_dns_name_even_for_ip_addresses() {
        let dns = |name: &str| match sni_name(name).unwrap() {
            ServerName::DnsName(dns) => dns.as_ref().to_owned(),
            other => panic!("not a DNS name: {other:?}"),
        };
        assert_eq!(dns("192.168.1.20"), FALLBACK_SERVER_NAME);
        assert_eq!(dns("fe80::1"), FALLBACK_SERVER_NAME);
        assert_eq!(dns(""), FALLBACK_SERVER_NAME);
        assert_eq!(dns("Demo-EVSE.local."), "Demo-EVSE.local");
        assert!(matches!(
            sni_name("not a host name"),
            Err(TransportError::Tls(TlsError::InvalidServerName(_)))
        ));
    }

    #[test]
    fn fragment_size_outside_rustls_range_is_a_configuration_error() {
        let identity = Identity::generate(&crate::identity::CertificateSubject {
            common_name: "x".into(),
            organization: String::new(),
            country: String::new(),
        })
        .unwrap();
        let options = TlsOptions {
            max_fragment_size: Some(16),
            ..TlsOptions::default()
        };
        assert!(matches!(
            ShipTls::new(&identity, options),
            Err(TransportError::Tls(TlsError::Configuration(_)))
        ));
        let options = TlsOptions {
            max_fragment_size: Some(1024),
            ..TlsOptions::default()
        };
        assert!(ShipTls::new(&identity, options).is_ok());
    }
}
