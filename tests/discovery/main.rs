//! Discovery, in one test binary: the TXT record codec (`txt`), the registry of visible
//! services (`registry`), the in-memory discovery the hub tests use (`memory`), and mDNS for
//! real inside the private network namespace (`mdns`, ignored in a plain `cargo test`; the
//! project's test command runs it inside `unshare -n`).

use ship_test_support::common;

mod mdns;
mod memory;
mod registry;
mod txt;
