//! The hub's clock: tokio's, so that tests under paused time drive every timer of the hub and
//! the protocol engine alike.

use std::time::Instant;

use tokio::time::sleep_until;

/// The current instant, in the clock tokio uses (so paused test time drives the engine too).
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Sleeps until `deadline`; forever without one (a `select!` branch that never fires).
pub(crate) async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
