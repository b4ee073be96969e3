//! ship-hub: find, pair with and stay connected to SHIP (EEBus "Smart Home IP") peers.
//!
//! The protocol core without IO lives in its own crate, `ship-proto`, re-exported here under
//! the same paths: [`ski`], [`ship_id`] (the [`Ski`] and [`ShipId`] newtypes), [`text`] (the
//! one policy for text a peer chose), [`protocol`] (the sans-IO SHIP engine: message model,
//! EEBus-JSON codec, handshake state machine with PIN), [`pairing_service`] (the SHIP Pairing
//! Service's records, digest and decisions), [`qr`] ([`ShipQr`]) and the TXT codec
//! ([`discovery::ShipTxt`]). This crate is the runtime on top of it, layers bottom up (see
//! `docs/architecture.md`):
//!
//! * [`identity`] — certificate creation and loading, lenient SKI extraction from peer
//!   certificates.
//! * [`transport`] — rustls configurations and verifiers for SHIP, and the WebSocket layer.
//! * [`discovery`] — mDNS announcement and browsing (`_ship._tcp`), visible services.
//! * [`hub`] — the [`Hub`]: listener, dialler, admission, one task per peer, trust store.
//!
//! Each layer only uses the ones below it; the protocol core uses none of them (the crate
//! boundary enforces it).
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod discovery;
pub mod hub;
pub mod identity;
mod safe_file;
mod sync;
#[cfg(test)]
mod text_policy_tests;
pub mod transport;

pub use ship_proto::{ShipId, ShipIdError, ShipQr, Ski, SkiParseError};
pub use ship_proto::{pairing_service, protocol, qr, ship_id, ski, text};

// What an embedder uses first, at the root: `use ship_hub::{Hub, HubConfig, ...}`.
pub use hub::{
    Callbacks, DecideLater, EndCause, FileTrustStore, Hub, HubConfig, HubError, HubEvent,
    HubEvents, MemoryTrustStore, NoCallbacks, PairedPeer, PairingDecision, PairingRequest,
    StateDetail, TrustStore,
};
pub use identity::{CertificateSubject, Identity};
pub use protocol::ConnectionState;

/// The README's code examples, compiled as doctests so the front page cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
