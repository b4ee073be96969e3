//! The conformance tester's own tests, as one test binary (one link instead of four):
//!
//! * [`selftest`]: every case can fail — run against a fake device with exactly the defect the
//!   case exists to catch, the verdict is `fail` with the right evidence.
//! * [`mdns`]: the mDNS case over real multicast, inside a private network namespace.
//! * [`cli`]: the `ship-conformance` binary itself.
//!
//! The full runs against ship-hub and against the `ship-gateway` process live in the gateway's
//! test binary (`crates/ship-gateway/tests/gateway/conformance.rs`), which has both.

mod cli;
mod fake;
mod mdns;
mod selftest;
