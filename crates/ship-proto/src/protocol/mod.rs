//! The sans-IO SHIP engine: message model, EEBus-JSON codec and the handshake state machine
//! (SHIP TS 1.0.1 §13.4; the wire facts are in `docs/ship.md` §4–6).
//!
//! No tokio, no sockets, no clock, no randomness: a [`Connection`] is fed bytes, application
//! decisions and the current [`Instant`](std::time::Instant), and is asked what to send, when to wake up and what
//! happened. Every behaviour is therefore an ordinary, repeatable test on a virtual clock.
//!
//! # Call order (after quinn-proto's `Connection`)
//!
//! A driver owns one WebSocket (binary frames only, §10) and one [`Connection`]:
//!
//! 1. [`Connection::new`] with the [`Role`] (the dialling side is the [`Role::Client`]), our
//!    SHIP ID, our [`Trust`] in the peer and the SHIP ID stored for its SKI, if any.
//! 2. Loop:
//!    * drain [`Connection::poll_transmit`]: send each [`Transmit::Message`] as one binary
//!      message, in order; on [`Transmit::Close`] send a WebSocket close frame with its code
//!      and reason and stop reading;
//!    * drain [`Connection::poll_event`] and hand the [`Event`]s to the application;
//!    * sleep until the next WebSocket message, an application command or
//!      [`Connection::poll_timeout`], whichever comes first;
//!    * feed what woke you: [`Connection::handle_message`] (one complete binary message),
//!      [`Connection::handle_timeout`], [`Connection::approve_trust`],
//!      [`Connection::deny_trust`], [`Connection::send_data`], [`Connection::close`], or
//!      [`Connection::handle_transport_closed`] when the socket ended under you.
//! 3. Stop when [`Connection::is_closed`] is true. [`Event::Closed`] has then been emitted,
//!    exactly once and as the last event, with a typed [`CloseCause`].
//!
//! Every input takes `now`; the machine never reads a clock. After any input, poll again:
//! an input may queue transmits, events and timers.
//!
//! # The handshake (§13.4)
//!
//! | step | client (dialler) | server (acceptor) | wait |
//! |---|---|---|---|
//! | CMI §13.4.3 | sends `00 00`, expects `00 00` | expects `00 00`, answers `00 00` | [`ProtocolConfig::cmi_timeout`] |
//! | hello §13.4.4.1 | `ready` or `pending` | `ready` or `pending` | `T_hello_init`, prolongation |
//! | protocol §13.4.4.2 | `announceMax`, expects `select`, echoes it | expects `announceMax`, sends `select`, expects the echo | [`ProtocolConfig::handshake_wait`] each |
//! | PIN §13.4.4.3 | `connectionPinState` (our [`PinRequirement`]); PINs either way | the same | [`ProtocolConfig::handshake_wait`], then [`ProtocolConfig::pin_wait`] |
//! | access methods §13.4.6 | `accessMethodsRequest` once; answers the peer's at any time | the same | [`ProtocolConfig::access_methods_wait`] |
//! | data §13.4.5 | `data`, payload verbatim | the same | — |
//! | close §13.4.7 | `connectionClose` announce / confirm | the same | [`ProtocolConfig::close_max_time`] |
//!
//! Rules a peer can rely on:
//!
//! * A wrong first message at the server (`01 00`, `00 01`, anything) is answered with our own
//!   CMI, then the connection closes (TC_SHIP_CMI_001/005); a client that gets a bad CMI reply
//!   closes without sending anything (CMI_002/006).
//! * Our hello `ready` always carries `waiting` (HELLO_003). A received prolongation request
//!   *extends* our wait by `T_hello_inc` and is answered with the remaining time (HELLO_002).
//!   A `pending` without `prolongationRequest` while we are ready is ignored (HELLO_004).
//!   When our wait runs out or the application denies trust we send `aborted` and close with
//!   4452 after [`ProtocolConfig::abort_close_delay`]. See `hello.rs` for the pending side.
//! * Protocol-handshake failures are reported in `messageProtocolHandshakeError` before the
//!   close: 1 timeout, 2 unexpected message, 3 selection mismatch (PROT_003..006).
//! * PIN verification (`pin_check.rs`, set up with [`Connection::set_pin`]): we announce our
//!   [`PinRequirement`] (`none`, `required` or `optional`, with `inputPermission` `ok`, or
//!   `busy` while a penalty runs). A peer that requires a PIN gets ours
//!   (`connectionPinInput`); without one we emit [`Event::PinRequested`] and wait for
//!   [`Connection::enter_pin`] / [`Connection::refuse_pin`] (refusal: [`CloseCause::PinRequired`]).
//!   A PIN for us is answered `pinOk` or `connectionPinError`; wrong PINs cost the escalating
//!   penalty of [`pin_penalty`]. Data exchange opens when our requirement is met (none,
//!   optional, or verified) and the peer's is (`none`, `optional`, or `pinOk` for our PIN).
//!   Before that, the peer's `accessMethodsRequest` is answered and its data dropped; with an
//!   optional PIN the peer stays [`Connection::peer_restricted`] until it sent the PIN, which
//!   may arrive in data exchange.
//! * **Data exchange starts when the PIN step is done.** From then on data is sent and
//!   delivered at once, and every `accessMethodsRequest` is answered, also long after
//!   completion (AMDATA_001..003, AM_001). [`ConnectionState::Completed`] is reached when the
//!   peer has answered *our* request (we know its SHIP ID); the peer's request does not gate it,
//!   because a peer may never ask (AMDATA_004). A SHIP ID that differs from the stored one
//!   closes with 4450.
//! * In data exchange, undecodable messages (`02`, `FF 00`, bad JSON) are ignored and logged
//!   (MSG_001/002); a handshake message there is an unexpected message and closes.
//! * [`Connection::close`] queues `connectionClose` announce *behind* everything already
//!   queued, so pending data is transmitted first; without a confirm the connection closes
//!   after the announced `maxTime`. A received announce is confirmed and the connection closes.
//!
//! # States (docs/ship.md §6)
//!
//! [`Event::StateChanged`] carries the application [`ConnectionState`] and the
//! [`DetailedState`] (ship-go's numbering), emitted for every detailed state entered, in order.
//! Mapping: client CMI → Initiated, server CMI → InProgress; hello → InProgress (our `pending` while waiting for the user →
//! ReceivedPairingRequest); hello OK → Trusted; protocol handshake → InProgress; PIN → Pin;
//! access methods pending → InProgress; answered → Completed; the peer aborted hello (or closed
//! while we waited in hello) → RemoteDeniedTrust; our own abort or a graceful close → None;
//! failures → Error.
//!
//! # Internals
//!
//! The handshake is an enum of stages named for what they wait for (`ExpectCmi`,
//! `ExpectHello`, `ExpectAnnounceMax`, `ExpectSelect`, `ExpectSelectEcho`, `Pin`,
//! `DataExchange`, `ExpectCloseConfirm`), each holding only its own data; every unexpected
//! message goes through one "expected X, got Y" path; timers are data ([`Timer`] and a
//! deadline table, [`Connection::poll_timeout`] is the earliest).

pub mod codec;
mod config;
mod connection;
mod event;
mod handshake;
mod hello;
pub mod message;
mod pin;
mod pin_check;
mod state;
mod timer;

pub use codec::DecodeError;
pub use config::{ConnectionParams, ProtocolConfig, Role, Trust};
pub use connection::Connection;
pub use event::{CloseCause, Event, PeerCloseReason, SendDataError, Transmit};
pub use message::{CloseReason, ShipMessage};
pub use pin::{Pin, PinError, PinParams, PinRequirement, pin_penalty};
pub use state::{ConnectionState, DetailedState};
pub use timer::Timer;
