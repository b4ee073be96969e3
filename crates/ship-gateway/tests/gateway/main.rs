//! The process tests of `ship-gateway`, as one test binary (one link instead of nine). Each
//! module starts the real binary (`CARGO_BIN_EXE_ship-gateway`):
//!
//! * [`admission`]: new devices approved one after another, refusals by the caps, PIN
//!   guessing with a new key every three guesses;
//! * [`cli`]: the commands, every bad input, the configuration of `run`, the data directory;
//! * [`run`]: `run` on loopback and, in the private network namespace, over mDNS;
//! * [`e2e`]: two gateways pair, exchange data and survive a `kill -9`;
//! * [`http`]: the HTTP API and the web console (the browser tests in the namespace);
//! * [`backpressure`]: slow and hostile peers and a stalled event reader;
//! * [`pair_crash`]: `pair` killed at every point leaves a consistent store;
//! * [`burst`], [`fake_claims`] and [`pairing_service`]: mDNS floods, fake claims of a paired
//!   device and the SHIP Pairing Service, in the namespace;
//! * [`commissioning`]: ten devices commissioned in a row through the web console (issue 23),
//!   in the namespace;
//! * [`library`]: the gateway started and stopped in this process through the library;
//! * [`conformance`]: the full ship-conformance run against an in-process hub and against the
//!   gateway process, side by side.

mod gateway_support;

mod admission;
mod backpressure;
mod burst;
mod cli;
mod commissioning;
mod conformance;
mod e2e;
mod fake_claims;
mod http;
mod library;
mod pair_crash;
mod pairing_service;
mod run;
