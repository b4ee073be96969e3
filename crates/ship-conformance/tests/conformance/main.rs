//! The conformance tester's own tests, as one test binary (one link instead of four):
//!
//! * [`selftest`]: every case can fail — run against a fake device with exactly the defect the
//!   case exists to catch, the verdict is `fail` with the right evidence.
//! * [`mdns`]: the mDNS case over real multicast, inside a private network namespace.
//! * [`fairness`]: verdicts that must not wrong a real device (SHIP 1.1, single-identity
//!   devices, exact reasons, forged certificates refused after TLS, devices that never ask for
//!   access methods, SPINE replies matched to their request).
//! * [`cli`]: the `ship-conformance` binary itself, and the README's worked example
//!   ([`readme`]).
//!
//! The full runs against ship-hub and against the `ship-gateway` process live in the gateway's
//! test binary (`crates/ship-gateway/tests/gateway/conformance.rs`), which has both.

mod cli;
mod fairness;
mod fake;
mod mdns;
mod readme;
mod selftest;
