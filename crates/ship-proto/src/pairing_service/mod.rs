//! The SHIP Pairing Service (TS 1.0.0): pairing without anybody comparing SKIs.
//!
//! A control unit ("devZ") that knows the secret printed with an energy manager ("devA")
//! announces a `_shippairing._tcp` mDNS service whose TXT record names both devices' certificate
//! fingerprints, a fresh nonce, and an HMAC-SHA256 digest keyed with the secret and the nonce.
//! The energy manager verifies the digest and then trusts the announced certificate.
//!
//! This module is sans-IO (no sockets, no clock):
//!
//! * [`record`]: the TXT record ([`SignedRequest`], [`RecordError`]), [`Fingerprint`],
//!   [`Nonce`];
//! * [`digest`]: [`PairingSecret`], signing and constant-time verification;
//! * [`replay`]: the bounded [`ReplayGuard`];
//! * [`receiver`]: the energy manager's evaluation, with the §4.3 replacement rules;
//! * [`requester`]: the control unit's announcement lifetime (withdrawn once a connection has
//!   held for 15 minutes).
//!
//! The hub drives both ends over mDNS: see `HubConfig::pairing_service` and
//! `docs/pairing.md`, "The SHIP Pairing Service".

pub mod digest;
pub mod receiver;
pub mod record;
pub mod replay;
pub mod requester;

pub use digest::{PairingSecret, SecretError, sign, verify};
pub use receiver::{
    DEFAULT_REPLACEABLE_AFTER, Receiver, ReceiverConfig, Refusal, UnitReachability,
};
pub use record::{Fingerprint, Nonce, PairingRequest, RecordError, SERVICE_TYPE, SignedRequest};
pub use replay::{DEFAULT_REPLAY_CAPACITY, ReplayGuard};
pub use requester::{DEFAULT_SETTLE_AFTER, Requester};

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::ShipId;

    pub(crate) const ANNEX_A_SECRET: &str = "7A37DCF81BDB50F8E92CFA4160CCB3DE";
    pub(crate) const ANNEX_A_DIGEST: &str =
        "BCBB62B2176DA2CEE545784CEB1F2A55E049451B12A549C98E8CA213F001DA25";

    /// The worked example of the specification's Annex A.
    pub(crate) fn annex_a() -> (PairingRequest, PairingSecret) {
        (
            PairingRequest::new(
                ShipId::new("i:983327_u:C8277H008F-3").unwrap(),
                "C74B7855D3479415F62CC01E5F6D9A93EBC676057D85417ADA16FD1384338943"
                    .parse()
                    .unwrap(),
                ShipId::new("i:46925_u:43652bk-2-gt1").unwrap(),
                "2CC72E781F7A7D2A08D50196C50FEDF0F7BA583F43F76C8C0DDEC9EEF0D005B4"
                    .parse()
                    .unwrap(),
                "BDCEE427FA7208DF3C1F2A749BA6F4D4".parse().unwrap(),
            ),
            PairingSecret::from_hex(ANNEX_A_SECRET).unwrap(),
        )
    }
}
