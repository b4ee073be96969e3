//! (under construction)
pub mod codec;
mod config;
mod connection;
mod event;
mod handshake;
mod hello;
pub mod message;
mod state;
mod timer;

pub use config::{ConnectionParams, ProtocolConfig, Role, Trust};
pub use connection::Connection;
pub use event::{CloseCause, Event, SendDataError, Transmit};
pub use message::CloseReason;
pub use state::{ConnectionState, DetailedState};
pub use timer::Timer;
