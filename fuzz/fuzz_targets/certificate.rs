//! The lenient peer-certificate parser (docs/ship.md §1) on arbitrary DER: never panics;
//! whatever it accepts has a SKI that is SHA-1 of the 65-byte P-256 point it returns.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ship_hub::Ski;
use ship_hub::identity::parse_peer_certificate;

fuzz_target!(|data: &[u8]| {
    if let Ok(peer) = parse_peer_certificate(data) {
        assert_eq!(peer.public_key.len(), 65);
        assert_eq!(peer.public_key[0], 0x04);
        assert_eq!(Ski::of_public_key(&peer.public_key), peer.ski);
    }
});
