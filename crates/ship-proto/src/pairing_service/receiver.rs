//! The receiving side (the energy manager, "devA"): evaluates announced requests (SHIP Pairing
//! Service TS 1.0.0 §9) under the rules for when a request may be processed at all (§4.3).
//!
//! Order of the checks, cheapest first, so that a flood of announcements costs little:
//!
//! 1. Is it for us? The `forId` string is compared before the record is parsed; a request for
//!    another node is [`Refusal::NotForThisNode`] (not a fault: on a LAN with two energy
//!    managers each sees the other's).
//! 2. The record is parsed ([`Refusal::Record`]); a `forPar` that is not our certificate's
//!    fingerprint is [`Refusal::NotForThisNode`] too.
//! 3. A digest already honoured is [`Refusal::Replay`] (no HMAC computed).
//! 4. §4.3: while the control unit paired through the service is in SHIP message exchange, or
//!    was within the last [`ReceiverConfig::replaceable_after`] (15 minutes), no request is
//!    processed ([`Refusal::Busy`]). A working pairing cannot be taken over by a captured
//!    announcement; a broken control unit can be replaced once it has been unreachable that
//!    long.
//! 5. The HMAC is verified in constant time ([`Refusal::DigestMismatch`]); only a verified
//!    digest enters the replay guard.
//! 6. A request naming our own certificate as the one to trust is [`Refusal::OwnCertificate`].
//!
//! At most one control unit is paired through the service at a time: the hub replaces the
//! previous one when the new one connects (§10.3).

use std::time::Duration;

use super::digest::{PairingSecret, verify};
use super::record::{Fingerprint, PairingRequest, RecordError, SignedRequest};
use super::replay::{DEFAULT_REPLAY_CAPACITY, ReplayGuard};
use crate::ShipId;

/// How long the paired control unit must have been out of SHIP message exchange before a new
/// request is processed: 15 minutes (§4.3).
pub const DEFAULT_REPLACEABLE_AFTER: Duration = Duration::from_secs(15 * 60);

/// What the receiving side knows about itself.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReceiverConfig {
    /// Our SHIP ID (`forId` must name it).
    pub own_id: ShipId,
    /// Our certificate's fingerprint (`forPar` must name it).
    pub own_fingerprint: Fingerprint,
    /// The secret printed with this device.
    pub secret: PairingSecret,
    /// How many honoured digests the replay guard keeps. Default
    /// [`DEFAULT_REPLAY_CAPACITY`] (64; the specification asks for at least 10).
    pub replay_capacity: usize,
    /// See [`DEFAULT_REPLACEABLE_AFTER`].
    pub replaceable_after: Duration,
}

impl ReceiverConfig {
    /// The defaults of the specification.
    pub fn new(own_id: ShipId, own_fingerprint: Fingerprint, secret: PairingSecret) -> Self {
        ReceiverConfig {
            own_id,
            own_fingerprint,
            secret,
            replay_capacity: DEFAULT_REPLAY_CAPACITY,
            replaceable_after: DEFAULT_REPLACEABLE_AFTER,
        }
    }
}

/// Where the control unit paired through the service stands, as the hub sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitReachability {
    /// None is paired through the service.
    NoUnit,
    /// It is in SHIP message exchange now.
    Connected,
    /// It was last in message exchange at this time (or the hub started then, if it has not
    /// been reached since).
    LastExchange(Duration),
}

/// Why an announced request was not honoured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Addressed to another node (another SHIP ID or certificate).
    #[error("the request is addressed to another node")]
    NotForThisNode,
    /// The TXT record is malformed.
    #[error("malformed pairing request: {0}")]
    Record(#[from] RecordError),
    /// A control unit paired through the service is (or recently was) reachable (§4.3).
    #[error(
        "a control unit is paired and was reachable in the last {after:?}: requests are not processed"
    )]
    Busy {
        /// The configured [`ReceiverConfig::replaceable_after`].
        after: Duration,
    },
    /// This digest was honoured before: a replayed announcement.
    #[error("replayed announcement: this digest was already honoured")]
    Replay,
    /// The digest does not verify: a wrong secret, or a modified record.
    #[error("the digest does not verify (wrong secret or modified record)")]
    DigestMismatch,
    /// The request asks us to trust our own certificate.
    #[error("the request names this node's own certificate")]
    OwnCertificate,
}

/// The receiving side. Sans-IO: the caller passes the properties, the unit's reachability and
/// the time.
#[derive(Debug)]
pub struct Receiver {
    config: ReceiverConfig,
    guard: ReplayGuard,
}

impl Receiver {
    /// A receiver with an empty replay guard.
    pub fn new(config: ReceiverConfig) -> Self {
        let guard = ReplayGuard::new(config.replay_capacity);
        Receiver { config, guard }
    }

    /// Restores a persisted replay guard.
    pub fn with_guard(mut self, guard: ReplayGuard) -> Self {
        self.guard = guard;
        self
    }

    /// The replay guard (to persist its entries).
    pub fn guard(&self) -> &ReplayGuard {
        &self.guard
    }

    /// The configuration.
    pub fn config(&self) -> &ReceiverConfig {
        &self.config
    }

    /// Evaluates one announced TXT record (see the module documentation for the order).
    /// `Ok` is a request to honour: trust the certificate with `trust_fingerprint`.
    pub fn evaluate<'a, I>(
        &mut self,
        properties: I,
        unit: UnitReachability,
        now: Duration,
    ) -> Result<PairingRequest, Refusal>
    where
        I: IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
        I::IntoIter: Clone,
    {
        let properties = properties.into_iter();
        let own_id = self.config.own_id.as_str().as_bytes();
        let addressed = properties
            .clone()
            .take(super::record::MAX_KEYS)
            .find(|(key, _)| key.eq_ignore_ascii_case("forId"))
            .is_some_and(|(_, value)| value == Some(own_id));
        if !addressed {
            return Err(Refusal::NotForThisNode);
        }
        let signed = SignedRequest::from_properties(properties)?;
        if signed.request.for_fingerprint != self.config.own_fingerprint {
            return Err(Refusal::NotForThisNode);
        }
        if self.guard.contains(&signed.digest) {
            return Err(Refusal::Replay);
        }
        let busy = match unit {
            UnitReachability::NoUnit => false,
            UnitReachability::Connected => true,
            UnitReachability::LastExchange(at) => {
                now < at.saturating_add(self.config.replaceable_after)
            }
        };
        if busy {
            return Err(Refusal::Busy {
                after: self.config.replaceable_after,
            });
        }
        if !verify(&signed, &self.config.secret) {
            return Err(Refusal::DigestMismatch);
        }
        self.guard.insert(signed.digest);
        if signed.request.trust_fingerprint == self.config.own_fingerprint {
            return Err(Refusal::OwnCertificate);
        }
        Ok(signed.request)
    }
}

#[cfg(test)]
mod tests {
    use super::super::digest::sign;
    use super::super::tests::{ANNEX_A_SECRET, annex_a};
    use super::*;

    fn receiver() -> Receiver {
        let (request, secret) = annex_a();
        Receiver::new(ReceiverConfig::new(
            request.for_id.clone(),
            request.for_fingerprint,
            secret,
        ))
    }

    fn props(pairs: &[(String, String)]) -> Vec<(&str, Option<&[u8]>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_str(), Some(v.as_bytes())))
            .collect()
    }

    const T0: Duration = Duration::from_secs(10_000);

    #[test]
    fn an_authentic_request_is_honoured_once_and_its_replay_refused() {
        let (request, secret) = annex_a();
        let pairs = sign(&request, &secret).to_pairs();
        let mut r = receiver();
        assert_eq!(
            r.evaluate(props(&pairs), UnitReachability::NoUnit, T0),
            Ok(request)
        );
        assert_eq!(
            r.evaluate(props(&pairs), UnitReachability::NoUnit, T0),
            Err(Refusal::Replay)
        );
    }

    #[test]
    fn requests_for_others_are_not_ours() {
        let (request, secret) = annex_a();
        let mut r = receiver();
        let mut other = request.clone();
        other.for_id = ShipId::new("i:1_u:other").unwrap();
        let pairs = sign(&other, &secret).to_pairs();
        assert_eq!(
            r.evaluate(props(&pairs), UnitReachability::NoUnit, T0),
            Err(Refusal::NotForThisNode)
        );
        let mut other = request;
        other.for_fingerprint = Fingerprint::from_bytes([9; 32]);
        let pairs = sign(&other, &secret).to_pairs();
        assert_eq!(
            r.evaluate(props(&pairs), UnitReachability::NoUnit, T0),
            Err(Refusal::NotForThisNode)
        );
        assert!(r.guard().is_empty());
    }

    #[test]
    fn a_wrong_secret_is_refused_and_not_remembered() {
        let (request, _) = annex_a();
        let wrong = PairingSecret::from_hex("00112233445566778899AABBCCDDEEFF").unwrap();
        let pairs = sign(&request, &wrong).to_pairs();
        let mut r = receiver();
        assert_eq!(
            r.evaluate(props(&pairs), UnitReachability::NoUnit, T0),
            Err(Refusal::DigestMismatch)
        );
        assert!(r.guard().is_empty());
    }

    #[test]
    fn a_malformed_record_for_us_is_a_record_error() {
        let (request, secret) = annex_a();
        let mut pairs = sign(&request, &secret).to_pairs();
        pairs.retain(|(k, _)| k != "alg");
        assert_eq!(
            receiver().evaluate(props(&pairs), UnitReachability::NoUnit, T0),
            Err(Refusal::Record(RecordError::Missing("alg")))
        );
    }

    /// §4.3: no processing while the unit is connected or was within 15 minutes; processing
    /// again from exactly 15 minutes after the last exchange.
    #[test]
    fn a_reachable_unit_blocks_replacement_for_15_minutes() {
        let (request, secret) = annex_a();
        let pairs = sign(&request, &secret).to_pairs();
        let mut r = receiver();
        let busy = Err(Refusal::Busy {
            after: DEFAULT_REPLACEABLE_AFTER,
        });
        assert_eq!(
            r.evaluate(props(&pairs), UnitReachability::Connected, T0),
            busy
        );
        let last = T0 - Duration::from_secs(899);
        assert_eq!(
            r.evaluate(props(&pairs), UnitReachability::LastExchange(last), T0),
            busy
        );
        assert!(r.guard().is_empty(), "a busy refusal remembers nothing");
        let last = T0 - Duration::from_secs(900);
        assert_eq!(
            r.evaluate(props(&pairs), UnitReachability::LastExchange(last), T0),
            Ok(request)
        );
    }

    /// A replay is named a replay even while the unit is connected (the guard is checked
    /// first; it costs no HMAC).
    #[test]
    fn a_replay_is_reported_as_such_while_the_unit_is_connected() {
        let (request, secret) = annex_a();
        let pairs = sign(&request, &secret).to_pairs();
        let mut r = receiver();
        assert!(
            r.evaluate(props(&pairs), UnitReachability::NoUnit, T0)
                .is_ok()
        );
        assert_eq!(
            r.evaluate(props(&pairs), UnitReachability::Connected, T0),
            Err(Refusal::Replay)
        );
    }

    #[test]
    fn our_own_certificate_is_not_trusted() {
        let (mut request, secret) = annex_a();
        request.trust_fingerprint = request.for_fingerprint;
        let pairs = sign(&request, &secret).to_pairs();
        assert_eq!(
            receiver().evaluate(props(&pairs), UnitReachability::NoUnit, T0),
            Err(Refusal::OwnCertificate)
        );
    }

    #[test]
    fn the_secret_is_the_annex_a_one() {
        assert_eq!(
            annex_a().1,
            PairingSecret::from_hex(ANNEX_A_SECRET).unwrap()
        );
    }
}
