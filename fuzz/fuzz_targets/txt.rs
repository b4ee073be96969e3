//! The mDNS TXT parser (SHIP §7.3.2) on arbitrary RDATA: never panics; a record that parses
//! re-encodes to RDATA that parses to the same record. The same bytes split into properties
//! (the form mdns-sd hands over) go through `from_properties` too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ship_proto::txt::ShipTxt;

fuzz_target!(|data: &[u8]| {
    if let Ok(txt) = ShipTxt::from_rdata(data) {
        let again = ShipTxt::from_rdata(&txt.to_rdata()).expect("our own RDATA parses");
        assert_eq!(again, txt);
    }
    // Lines as key=value properties; a line without '=' is a key without value.
    let properties: Vec<(&str, Option<&[u8]>)> = data
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let (key, value) = match line.iter().position(|&b| b == b'=') {
                Some(eq) => (&line[..eq], Some(&line[eq + 1..])),
                None => (line, None),
            };
            std::str::from_utf8(key).ok().map(|key| (key, value))
        })
        .collect();
    let _ = ShipTxt::from_properties(properties);
});
