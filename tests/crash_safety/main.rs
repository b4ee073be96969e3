//! Crash safety of what the library writes to disk: a writer process killed with SIGKILL at any
//! instant leaves files from which the next start succeeds. Each module re-runs this binary as
//! its writer child (`--exact <module>::<test>`).

mod identity;
mod trust_store;
