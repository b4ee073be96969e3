//! The sans-IO protocol engine, in one test binary (linking dominates the suite's build: one
//! binary instead of six): golden wire bytes (`codec`), two engines pumped against each other
//! and scripted peers on a virtual clock (`handshake`, `timers`), one test per conformance case
//! the engine decides (`conformance`, with the PIN step), and random interleavings
//! (`interleavings`, proptest). `support` has the shared virtual clock, `Pair` and `Tool`.

mod support;

mod codec;
mod conformance;
mod handshake;
mod interleavings;
mod timers;
