//! The fake device's lax TLS: it presents its certificate and accepts any peer certificate.

use std::sync::Arc;

use rustls::SignatureScheme;
use rustls::sign::CertifiedKey;

#[derive(Debug)]
pub(super) struct Present(pub(super) Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for Present {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

impl rustls::server::ResolvesServerCert for Present {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Accepts every certificate: the fake's deliberate TLS defect.
pub(super) const LAX: AcceptAnything = AcceptAnything::EVERY_SCHEME;
use ship_test_support::AcceptAnything;
