//! ship-proto: the SHIP (EEBus "Smart Home IP") protocol core, without IO.
//!
//! Everything here is plain data and pure functions: no tokio, no sockets, no TLS, no clock
//! (every input carries its `now`). The runtime crate `ship-hub` drives it over TLS,
//! WebSocket and mDNS; tools, fuzz targets and other runtimes can use it on its own.
//!
//! * [`ski`], [`ship_id`] — the [`Ski`] and [`ShipId`] newtypes that identify every node.
//! * [`text`] — the one policy for text a peer chose (SHIP IDs, TXT values, values quoted in
//!   errors): the exact value is kept, and shown with control and invisible characters escaped.
//! * [`protocol`] — the sans-IO SHIP engine: message model, EEBus-JSON codec, handshake state
//!   machine with PIN verification, and timers.
//! * [`pairing_service`] — the SHIP Pairing Service: TXT records, digest, replay guard and the
//!   decisions of both ends.
//! * [`txt`] — the TXT record of a `_ship._tcp` service.
//! * [`qr`] — the SHIP installation QR code text ([`ShipQr`]).
//!
//! # Crypto provider
//!
//! SHA-1 (SKIs), SHA-256 (certificate fingerprints), HMAC-SHA256 (Pairing Service digests)
//! and the random nonces come from one provider, chosen by feature: `ring` (the default) or
//! `aws-lc-rs`. With both, aws-lc-rs is used. [`CRYPTO_PROVIDER`] names the one compiled in.
#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

mod crypto;
pub mod pairing_service;
pub mod protocol;
pub mod qr;
pub mod ship_id;
pub mod ski;
pub mod text;
pub mod txt;

pub use crypto::CRYPTO_PROVIDER;
pub use qr::ShipQr;
pub use ship_id::{ShipId, ShipIdError};
pub use ski::{Ski, SkiParseError};
