//! The QR text: reading, writing, every refusal, and the round trip as a property.

use proptest::prelude::*;

use super::*;

const SKI_HEX: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f9001122334";
const SKI_GROUPED: &str = "A1B2 C3D4 E5F6 0718 293A 4B5C 6D7E 8F90 0112 2334";

fn ski() -> Ski {
    SKI_HEX.parse().unwrap()
}

/// A full code in the specification's order, with a PIN and a structured SHIP ID.
fn full_text() -> String {
    format!(
        "SHIP;SKI:{SKI_GROUPED};ID:i:4711_u:wallbox-77;PIN:0A1B 2C3D 4E;BRAND:Acme;\
         TYPE:ChargingStation;MODEL:WB 11;SERIAL:77-0042;CAT:3;ENDSHIP;"
    )
}

fn parse(text: &str) -> Result<ShipQr, QrError> {
    text.parse()
}

#[test]
fn a_full_code_reads_every_field() {
    let qr = parse(&full_text()).unwrap();
    assert_eq!(qr.ski(), ski());
    assert_eq!(qr.ship_id().as_str(), "i:4711_u:wallbox-77");
    assert_eq!(qr.pin().unwrap().expose(), "0A1B2C3D4E");
    // The PIN keeps its digits as given: lower case, and an odd number, are kept.
    let lower = parse(&format!("SHIP;SKI:{SKI_HEX};ID:x;PIN:0a1b 2c3d e;")).unwrap();
    assert_eq!(lower.pin().unwrap().expose(), "0a1b2c3de");
    assert!(lower.to_string().contains(";PIN:0a1b 2c3d e;"), "{lower}");
    assert_eq!(qr.brand(), Some("Acme"));
    assert_eq!(qr.device_type(), Some("ChargingStation"));
    assert_eq!(qr.model(), Some("WB 11"));
    assert_eq!(qr.serial(), Some("77-0042"));
    assert_eq!(qr.categories(), &[3]);
}

#[test]
fn a_full_code_writes_back_to_the_same_text() {
    assert_eq!(parse(&full_text()).unwrap().to_string(), full_text());
}

#[test]
fn the_writer_groups_the_ski_upper_case_and_closes_with_endship() {
    let qr = ShipQr::new(ski(), ShipId::new("gw-1").unwrap()).unwrap();
    assert_eq!(
        qr.to_string(),
        format!("SHIP;SKI:{SKI_GROUPED};ID:gw-1;ENDSHIP;")
    );
}

#[test]
fn endship_is_optional_on_input() {
    let with = parse(&format!("SHIP;SKI:{SKI_HEX};ID:x;ENDSHIP;")).unwrap();
    assert_eq!(parse(&format!("SHIP;SKI:{SKI_HEX};ID:x;")).unwrap(), with);
    // Even the last `;` may be missing, and a scanner's line end is ignored.
    assert_eq!(parse(&format!("SHIP;SKI:{SKI_HEX};ID:x")).unwrap(), with);
    assert_eq!(
        parse(&format!("SHIP;SKI:{SKI_HEX};ID:x;ENDSHIP;\r\n")).unwrap(),
        with
    );
}

#[test]
fn the_ski_reads_with_or_without_spaces_and_in_either_case() {
    let spaced = parse(&format!("SHIP;SKI:{SKI_GROUPED};ID:x;")).unwrap();
    let plain = parse(&format!("SHIP;SKI:{SKI_HEX};ID:x;")).unwrap();
    assert_eq!(spaced.ski(), ski());
    assert_eq!(plain.ski(), ski());
}

#[test]
fn unknown_keys_are_skipped() {
    let text =
        format!("SHIP;SKI:{SKI_HEX};NOMINALPOWER:0,11000;ID:x;FUTURE:a:b:c;x-vendor:1;ENDSHIP;");
    let qr = parse(&text).unwrap();
    assert_eq!(qr.ship_id().as_str(), "x");
    assert_eq!(
        qr.to_string(),
        format!("SHIP;SKI:{SKI_GROUPED};ID:x;ENDSHIP;")
    );
}

#[test]
fn colons_after_the_first_belong_to_the_value() {
    let qr = parse(&format!("SHIP;SKI:{SKI_HEX};ID:i:1_u:a:b;MODEL:X:2;")).unwrap();
    assert_eq!(qr.ship_id().as_str(), "i:1_u:a:b");
    assert_eq!(qr.model(), Some("X:2"));
}

#[test]
fn whitespace_around_keys_and_values_is_ignored_and_empty_text_values_are_absent() {
    let qr = parse(&format!(
        "SHIP; SKI : {SKI_HEX} ;\n ID: gw ;BRAND:;SERIAL:  ;CAT:;ENDSHIP;"
    ))
    .unwrap();
    assert_eq!(qr.ship_id().as_str(), "gw");
    assert_eq!(qr.brand(), None);
    assert_eq!(qr.serial(), None);
    assert!(qr.categories().is_empty());
}

#[test]
fn refusals_name_what_is_wrong() {
    let cases: Vec<(String, QrError)> = vec![
        ("".into(), QrError::NotShip),
        ("ship;SKI:00;".into(), QrError::NotShip),
        (format!("SKI:{SKI_HEX};ID:x;"), QrError::NotShip),
        ("SHIP;ID:x;ENDSHIP;".into(), QrError::MissingSki),
        (format!("SHIP;SKI:{SKI_HEX};ENDSHIP;"), QrError::MissingId),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:x;garbage;"),
            QrError::MalformedField { index: 3 },
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};:x;ID:x;"),
            QrError::MalformedField { index: 2 },
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:x;SKI:{SKI_HEX};"),
            QrError::DuplicateKey { key: "SKI" },
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:x;BRAND:a;BRAND:a;"),
            QrError::DuplicateKey { key: "BRAND" },
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:x;ENDSHIP;BRAND:a;"),
            QrError::TextAfterEnd,
        ),
        (
            "SHIP;SKI:1234;ID:x;".into(),
            QrError::Ski(SkiParseError::WrongLength { digits: 4 }),
        ),
        (
            format!("SHIP;SKI:{}zz;ID:x;", &SKI_HEX[..38]),
            QrError::Ski(SkiParseError::InvalidCharacter {
                character: 'z',
                position: 38,
            }),
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:{};", "i".repeat(64)),
            QrError::ShipId(ShipIdError::TooLong { len: 64 }),
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:;"),
            QrError::ShipId(ShipIdError::Empty),
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:x;PIN:1234567;"),
            QrError::Pin(QrPinError::WrongLength { digits: 7 }),
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:x;PIN:{};", "1".repeat(18)),
            QrError::Pin(QrPinError::WrongLength { digits: 18 }),
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:x;PIN:1234 567G;"),
            QrError::Pin(QrPinError::NotHex { position: 9 }),
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:x;MODEL:{};", "m".repeat(33)),
            QrError::FieldTooLong {
                key: "MODEL",
                len: 33,
                max: 32,
            },
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:x;SERIAL:a\u{7}b;"),
            QrError::ForbiddenCharacter {
                key: "SERIAL",
                character: '\u{7}',
            },
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:x;CAT:2,0;"),
            QrError::InvalidCategory,
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:x;CAT:2,256;"),
            QrError::InvalidCategory,
        ),
        (
            format!("SHIP;SKI:{SKI_HEX};ID:x;CAT:two;"),
            QrError::InvalidCategory,
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(parse(&text), Err(expected), "{text:?}");
    }
}

#[test]
fn a_text_longer_than_any_qr_code_is_refused_before_it_is_read() {
    let text = format!(
        "SHIP;SKI:{SKI_HEX};ID:x;X:{};",
        "y".repeat(ShipQr::MAX_TEXT_LEN)
    );
    assert_eq!(
        parse(&text),
        Err(QrError::TooLong {
            len: text.len(),
            max: ShipQr::MAX_TEXT_LEN
        })
    );
    // Exactly at the bound it is read.
    let pad = ShipQr::MAX_TEXT_LEN - format!("SHIP;SKI:{SKI_HEX};ID:x;X:;").len();
    let text = format!("SHIP;SKI:{SKI_HEX};ID:x;X:{};", "y".repeat(pad));
    assert_eq!(text.len(), ShipQr::MAX_TEXT_LEN);
    assert!(parse(&text).is_ok());
}

#[test]
fn the_writer_refuses_values_the_text_cannot_carry() {
    let qr = || ShipQr::new(ski(), ShipId::new("gw").unwrap()).unwrap();
    assert_eq!(
        qr().with_brand("a;b"),
        Err(QrError::ForbiddenCharacter {
            key: "BRAND",
            character: ';'
        })
    );
    assert_eq!(
        qr().with_model(" m"),
        Err(QrError::EdgeWhitespace { key: "MODEL" })
    );
    assert_eq!(
        qr().with_serial(&"s".repeat(33)),
        Err(QrError::FieldTooLong {
            key: "SERIAL",
            len: 33,
            max: 32
        })
    );
    assert_eq!(
        qr().with_device_type("a\nb"),
        Err(QrError::ForbiddenCharacter {
            key: "TYPE",
            character: '\n'
        })
    );
    assert_eq!(
        qr().with_categories(vec![2, 0]),
        Err(QrError::InvalidCategory)
    );
    assert_eq!(
        ShipQr::new(ski(), ShipId::new("a;b").unwrap()),
        Err(QrError::ForbiddenCharacter {
            key: "ID",
            character: ';'
        })
    );
    assert_eq!(
        ShipQr::new(ski(), ShipId::new("gw ").unwrap()),
        Err(QrError::EdgeWhitespace { key: "ID" })
    );
}

#[test]
fn the_pin_is_in_neither_debug_output_nor_errors() {
    let qr = parse(&full_text()).unwrap();
    let debug = format!("{qr:?} {:?}", qr.pin());
    assert!(!debug.contains("0A1B"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
    let error = parse(&format!("SHIP;SKI:{SKI_HEX};ID:x;PIN:ABCDEF12345678901;"))
        .unwrap_err()
        .to_string();
    assert!(!error.contains("ABCDEF"), "{error}");
    let error = parse(&format!("SHIP;SKI:{SKI_HEX};ID:x;PIN:ABCDEF12345Z;"))
        .unwrap_err()
        .to_string();
    assert!(!error.contains("ABCDEF"), "{error}");
}

const FINGERPRINT: &str = "2CC72E781F7A7D2A08D50196C50FEDF0F7BA583F43F76C8C0DDEC9EEF0D005B4";
const SECRET: &str = "7A37DCF81BDB50F8E92CFA4160CCB3DE";

/// The SHIP Pairing Service fields: `FPH256` (any case, spaces ignored) and `SPSEC`, read,
/// written back (upper case, `FPH256` without spaces) and read again to the same code.
#[test]
fn the_pairing_service_fields_are_read_and_written() {
    let spaced: String = FINGERPRINT
        .to_ascii_lowercase()
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ");
    let qr = parse(&format!(
        "SHIP;SKI:{SKI_HEX};ID:em-1;FPH256:{spaced};SPSEC:7a37 dcf8 1bdb 50f8 e92c fa41 60cc b3de;ENDSHIP;"
    ))
    .unwrap();
    assert_eq!(qr.fingerprint(), Some(FINGERPRINT.parse().unwrap()));
    assert_eq!(
        qr.pairing_secret(),
        Some(&PairingSecret::from_hex(SECRET).unwrap())
    );
    let text = qr.to_string();
    assert!(
        text.ends_with(&format!(";FPH256:{FINGERPRINT};SPSEC:{SECRET};ENDSHIP;")),
        "{text}"
    );
    assert_eq!(parse(&text), Ok(qr.clone()));
    // Absent unless given.
    let plain = parse(&format!("SHIP;SKI:{SKI_HEX};ID:em-1;")).unwrap();
    assert_eq!((plain.fingerprint(), plain.pairing_secret()), (None, None));
    // Twice is an error, as for every known key.
    assert_eq!(
        parse(&format!(
            "SHIP;SKI:{SKI_HEX};ID:x;FPH256:{FINGERPRINT};FPH256:{FINGERPRINT};"
        )),
        Err(QrError::DuplicateKey { key: "FPH256" })
    );
    assert_eq!(
        parse(&format!(
            "SHIP;SKI:{SKI_HEX};ID:x;FPH256:{}",
            &FINGERPRINT[..60]
        )),
        Err(QrError::Fingerprint)
    );
}

/// The secret never shows: not in `Debug`, not in an error about it.
#[test]
fn the_pairing_secret_is_in_neither_debug_output_nor_errors() {
    let qr = parse(&format!("SHIP;SKI:{SKI_HEX};ID:x;SPSEC:{SECRET};")).unwrap();
    let debug = format!("{qr:?}");
    assert!(
        !debug.contains("7A37") && debug.contains("<redacted>"),
        "{debug}"
    );
    for bad in ["7A37DCF81BDB50F8E92CFA4160CCB3DEZZ", "7A37DCF81BDB50F8E"] {
        let error = parse(&format!("SHIP;SKI:{SKI_HEX};ID:x;SPSEC:{bad};"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("SPSEC") && !error.contains("7A37"),
            "{error}"
        );
    }
}

fn text_value() -> impl Strategy<Value = Option<String>> {
    // Printable text with the characters that matter: ':' and inner spaces, non-ASCII.
    proptest::option::of("[A-Za-z0-9äöü:_./-]([A-Za-z0-9äöü :_./-]{0,8}[A-Za-z0-9:-])?")
}

prop_compose! {
    fn any_qr()(
        ski in any::<[u8; 20]>(),
        id in "[A-Za-z0-9:_.-]{1,63}",
        pin in proptest::option::of(
            "[0-9a-fA-F]{8,16}"
        ),
        brand in text_value(),
        device_type in text_value(),
        model in text_value(),
        serial in text_value(),
        categories in proptest::collection::vec(1u8..=255, 0..4),
        fingerprint in proptest::option::of(any::<[u8; 32]>()),
        secret in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..=64)),
    ) -> ShipQr {
        let mut qr = ShipQr::new(Ski::from_bytes(ski), ShipId::new(id).unwrap()).unwrap();
        if let Some(hex) = pin {
            qr = qr.with_pin(QrPin::new(&hex).unwrap());
        }
        if let Some(v) = brand { qr = qr.with_brand(&v).unwrap(); }
        if let Some(v) = device_type { qr = qr.with_device_type(&v).unwrap(); }
        if let Some(v) = model { qr = qr.with_model(&v).unwrap(); }
        if let Some(v) = serial { qr = qr.with_serial(&v).unwrap(); }
        if let Some(bytes) = fingerprint {
            qr = qr.with_fingerprint(Fingerprint::from_bytes(bytes));
        }
        if let Some(bytes) = secret {
            qr = qr.with_pairing_secret(PairingSecret::new(bytes).unwrap());
        }
        qr.with_categories(categories).unwrap()
    }
}

proptest! {
    /// Every code this module can hold writes a text that reads back to the same code.
    #[test]
    fn every_code_round_trips(qr in any_qr()) {
        let text = qr.to_string();
        prop_assert!(text.len() <= ShipQr::MAX_TEXT_LEN);
        prop_assert_eq!(parse(&text), Ok(qr));
    }

    /// Any text either is refused or reads to a code whose written text reads to the same code.
    #[test]
    fn any_text_is_refused_or_reads_to_a_stable_code(
        fields in proptest::collection::vec(
            prop_oneof![
                Just(format!("SKI:{SKI_HEX}")),
                Just("ID:i:1_u:x".to_owned()),
                Just("PIN:1234 5678".to_owned()),
                Just("ENDSHIP".to_owned()),
                "[A-Z]{1,6}:[ -~]{0,12}",
                "[ -~]{0,12}",
            ],
            0..8,
        ),
    ) {
        let text = format!("SHIP;{}", fields.join(";"));
        if let Ok(qr) = parse(&text) {
            prop_assert_eq!(parse(&qr.to_string()), Ok(qr));
        }
    }
}
