//! Hostile input on real loopback sockets, one module per layer: below SHIP (`transport`),
//! WebSocket (`websocket`), SHIP messages (`ship`) and trust (`trust`). Each test ends by
//! checking that the victim hub still exchanges data with its paired friend; the rows are in
//! docs/robustness.md. The floods and the backpressure run stay binaries of their own (they
//! measure the process).

mod ship;
mod transport;
mod trust;
mod websocket;
