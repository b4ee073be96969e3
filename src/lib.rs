//! ship-hub: find, pair with and stay connected to SHIP (EEBus "Smart Home IP") peers.
//!
//! Layers, bottom up (see `docs/architecture.md`):
//!
//! * [`ski`], [`ship_id`] — the [`Ski`] and [`ShipId`] newtypes that identify every node.
//! * [`qr`] — the SHIP installation QR code text ([`ShipQr`]).
//! * [`identity`] — certificate creation and loading, lenient SKI extraction from peer
//!   certificates.
//! * [`protocol`] — the sans-IO SHIP engine: message model, EEBus-JSON codec, handshake state
//!   machine and timers. No tokio, no sockets, no clock, no randomness.
//! * [`transport`] — rustls configurations and verifiers for SHIP, and the WebSocket layer.
//! * [`discovery`] — mDNS announcement and browsing (`_ship._tcp`), TXT codec, visible services.
//!
//! Each layer only uses the ones below it. [`text`] is the one policy for text a peer chose
//! (SHIP IDs, TXT values, names, values quoted in errors): the exact value is kept, and shown
//! with control and invisible characters escaped.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

pub mod discovery;
pub mod hub;
pub mod identity;
pub mod pairing_service;
pub mod protocol;
pub mod qr;
mod safe_file;
pub mod ship_id;
pub mod ski;
pub mod text;
pub mod transport;

pub use qr::ShipQr;
pub use ship_id::{ShipId, ShipIdError};
pub use ski::{Ski, SkiParseError};

// What an embedder uses first, at the root: `use ship_hub::{Hub, HubConfig, ...}`.
pub use hub::{
    Callbacks, DecideLater, DisconnectReason, FileTrustStore, Hub, HubConfig, HubError, HubEvent,
    HubEvents, MemoryTrustStore, NoCallbacks, PairedPeer, PairingDecision, PairingRequest,
    StateDetail, TrustStore,
};
pub use identity::{CertificateSubject, Identity};
pub use protocol::ConnectionState;

/// The README's code examples, compiled as doctests so the front page cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
