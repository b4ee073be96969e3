//! The SHIP decoder on arbitrary bytes: never panics; whatever decodes re-encodes to bytes
//! that decode to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ship_proto::protocol::codec;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = codec::decode(data) {
        let encoded = codec::encode(&message);
        let again = codec::decode(&encoded).expect("our own encoding decodes");
        assert_eq!(again, message);
    }
});
