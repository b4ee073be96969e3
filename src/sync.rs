//! The library's one lock-poisoning policy (docs/architecture.md, "Locks"): a poisoned
//! `std::sync::Mutex` is taken over, never unwrapped into a second panic.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`, also when a panic of an earlier holder poisoned it. Every critical section of
/// the library makes its change in one go (nothing that can panic runs between two writes that
/// must go together), so the data is valid; a panic on one peer's task then costs that task
/// only, not every later caller of the lock.
pub(crate) fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
