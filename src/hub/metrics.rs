//! TEMP stub
#![allow(missing_docs)]
use std::time::Duration;
use crate::transport::TransportError;
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureCause { Tls, WebSocket, HandshakeTimeout, TrustDenied, Protocol, RefusedByCap, Other }
impl FailureCause { pub(crate) fn from_transport(_e: &TransportError) -> Self { FailureCause::Tls } }
#[derive(Debug, Default)]
pub struct Metrics;
#[derive(Debug, Clone, Default)]
pub struct MetricsSnapshot;
impl Metrics {
 pub(crate) fn record_replacement(&self) {}
 pub(crate) fn record_completed(&self, _d: Duration) {}
 pub(crate) fn record_failure(&self, _c: FailureCause) {}
 pub(crate) fn record_dial_attempt(&self) {}
 pub(crate) fn record_incoming(&self) {}
 pub fn snapshot(&self) -> MetricsSnapshot { MetricsSnapshot }
}
