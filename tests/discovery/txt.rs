//! The SHIP TXT record codec (SHIP §7.3.2): encoding order, limits, strict and lenient parsing.

use proptest::prelude::*;
use ship_hub::discovery::{DeviceCategories, ServicePath, ShipTxt, TxtError, TxtField, TxtValue};
use ship_hub::{ShipId, Ski};

const SKI_HEX: &str = "0123456789abcdef0123456789abcdef01234567";

fn full_txt() -> ShipTxt {
    let mut txt = ShipTxt::new(
        ShipId::new("Acme-EMS-0042").unwrap(),
        SKI_HEX.parse::<Ski>().unwrap(),
    );
    txt.brand = Some(TxtValue::new(TxtField::Brand, "Acme").unwrap());
    txt.model = Some(TxtValue::new(TxtField::Model, "EMS 1").unwrap());
    txt.device_type = Some(TxtValue::new(TxtField::DeviceType, "EnergyManagementSystem").unwrap());
    txt.serial = Some(TxtValue::new(TxtField::Serial, "SN-0042").unwrap());
    txt.categories = DeviceCategories::new(vec![1, 2]).unwrap();
    txt
}

/// Raw RDATA from `key=value` strings in the given order.
fn rdata(entries: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        out.push(u8::try_from(entry.len()).unwrap());
        out.extend_from_slice(entry.as_bytes());
    }
    out
}

fn mandatory_entries() -> Vec<String> {
    vec![
        "txtvers=1".into(),
        "id=Acme-EMS-0042".into(),
        "path=/ship/".into(),
        format!("ski={SKI_HEX}"),
        "register=false".into(),
    ]
}

fn parse(entries: &[String]) -> Result<ShipTxt, TxtError> {
    let refs: Vec<&str> = entries.iter().map(String::as_str).collect();
    ShipTxt::from_rdata(&rdata(&refs))
}

#[test]
fn round_trip_through_rdata_and_properties() {
    let txt = full_txt();
    assert_eq!(ShipTxt::from_rdata(&txt.to_rdata()).unwrap(), txt);
    let properties = txt.to_properties();
    let parsed =
        ShipTxt::from_properties(properties.iter().map(|(k, v)| (*k, Some(v.as_bytes())))).unwrap();
    assert_eq!(parsed, txt);
}

#[test]
fn minimal_record_round_trips_without_optional_keys() {
    let txt = ShipTxt::new(ShipId::new("x").unwrap(), SKI_HEX.parse().unwrap());
    let keys: Vec<&str> = txt.to_properties().iter().map(|(k, _)| *k).collect();
    assert_eq!(keys, ["txtvers", "id", "path", "ski", "register"]);
    assert_eq!(ShipTxt::from_rdata(&txt.to_rdata()).unwrap(), txt);
}

#[test]
fn txtvers_is_first_and_keys_follow_the_spec_order() {
    let properties = full_txt().to_properties();
    let keys: Vec<&str> = properties.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        keys,
        [
            "txtvers", "id", "path", "ski", "brand", "model", "type", "register", "serial", "cat"
        ]
    );
    assert_eq!(properties[0].1, "1");
    assert_eq!(properties[3].1, SKI_HEX);
    assert_eq!(properties[7].1, "false");
    assert_eq!(properties[9].1, "1,2");
    // On the wire too: the first string of the RDATA is `txtvers=1`.
    let wire = full_txt().to_rdata();
    assert_eq!(&wire[..10], b"\x09txtvers=1");
}

#[test]
fn each_missing_mandatory_key_is_refused() {
    for key in ["txtvers", "id", "path", "ski", "register"] {
        let entries: Vec<String> = mandatory_entries()
            .into_iter()
            .filter(|e| !e.starts_with(&format!("{key}=")))
            .collect();
        assert_eq!(parse(&entries), Err(TxtError::Missing { key }), "{key}");
    }
}

#[test]
fn a_mandatory_key_without_value_is_refused() {
    let mut entries = mandatory_entries();
    entries[4] = "register".into();
    assert_eq!(parse(&entries), Err(TxtError::NoValue { key: "register" }));
}

#[test]
fn bad_txtvers_is_refused() {
    for bad in ["2", "", "01", "1.0"] {
        let mut entries = mandatory_entries();
        entries[0] = format!("txtvers={bad}");
        assert_eq!(
            parse(&entries),
            Err(TxtError::UnsupportedVersion { found: bad.into() })
        );
    }
}

#[test]
fn bad_register_is_refused_and_case_is_ignored() {
    for bad in ["yes", "1", "", "truee"] {
        let mut entries = mandatory_entries();
        entries[4] = format!("register={bad}");
        assert_eq!(
            parse(&entries),
            Err(TxtError::InvalidRegister { found: bad.into() })
        );
    }
    let mut entries = mandatory_entries();
    entries[4] = "register=TRUE".into();
    assert!(parse(&entries).unwrap().register);
}

#[test]
fn bad_ski_bad_id_and_bad_path_are_refused() {
    let mut entries = mandatory_entries();
    entries[3] = "ski=1234".into();
    assert!(matches!(parse(&entries), Err(TxtError::InvalidSki(_))));

    let mut entries = mandatory_entries();
    entries[1] = format!("id={}", "i".repeat(64));
    assert!(matches!(parse(&entries), Err(TxtError::InvalidShipId(_))));

    let mut entries = mandatory_entries();
    entries[1] = "id=".into();
    assert!(matches!(parse(&entries), Err(TxtError::InvalidShipId(_))));

    let mut entries = mandatory_entries();
    entries[2] = "path=ship".into();
    assert_eq!(
        parse(&entries),
        Err(TxtError::InvalidPath {
            found: "ship".into()
        })
    );
}

#[test]
fn a_mandatory_value_that_is_not_utf8_is_refused() {
    let mut raw = rdata(&["txtvers=1", "path=/ship/", "register=true"]);
    let ski = format!("ski={SKI_HEX}");
    raw.push(u8::try_from(ski.len()).unwrap());
    raw.extend_from_slice(ski.as_bytes());
    raw.extend_from_slice(b"\x05id=\xff\xfe");
    assert_eq!(
        ShipTxt::from_rdata(&raw),
        Err(TxtError::NotUtf8 { key: "id" })
    );
}

#[test]
fn overlong_values_are_refused_when_building_not_truncated() {
    let ok = "b".repeat(32);
    let long = "b".repeat(33);
    for field in [
        TxtField::Brand,
        TxtField::Model,
        TxtField::DeviceType,
        TxtField::Serial,
    ] {
        assert_eq!(TxtValue::new(field, ok.clone()).unwrap().as_str(), ok);
        assert_eq!(
            TxtValue::new(field, long.clone()),
            Err(TxtError::TooLong {
                key: field.key(),
                len: 33,
                max: 32
            })
        );
    }
    // Multi-byte characters count in bytes: 11 × 3 bytes = 33.
    assert!(matches!(
        TxtValue::new(TxtField::Brand, "€".repeat(11)),
        Err(TxtError::TooLong { len: 33, .. })
    ));
    assert!(ServicePath::new(format!("/{}", "p".repeat(31))).is_ok());
    assert_eq!(
        ServicePath::new(format!("/{}", "p".repeat(32))),
        Err(TxtError::TooLong {
            key: "path",
            len: 33,
            max: 32
        })
    );
    assert_eq!(
        TxtValue::new(TxtField::Model, "a\nb"),
        Err(TxtError::ControlCharacter { key: "model" })
    );
}

#[test]
fn categories_are_validated_and_parsed() {
    assert_eq!(
        DeviceCategories::parse(" 1, 2 ,7").unwrap().as_slice(),
        &[1, 2, 7]
    );
    assert_eq!(DeviceCategories::new(vec![3, 1]).unwrap().encode(), "3,1");
    for bad in ["", "1,,2", "0", "x", "256", "1;2"] {
        assert_eq!(
            DeviceCategories::parse(bad),
            Err(TxtError::InvalidCategory { found: bad.into() }),
            "{bad:?}"
        );
    }
    assert!(matches!(
        DeviceCategories::new(vec![0]),
        Err(TxtError::InvalidCategory { .. })
    ));
    // 64 three-digit entries do not fit one TXT string.
    assert_eq!(
        DeviceCategories::new(vec![200; 64]),
        Err(TxtError::TooLong {
            key: "cat",
            len: 64 * 4 - 1,
            max: 251
        })
    );
}

#[test]
fn overlong_path_on_receive_is_refused() {
    let mut entries = mandatory_entries();
    entries[2] = format!("path=/{}", "p".repeat(40));
    assert!(matches!(
        parse(&entries),
        Err(TxtError::TooLong { key: "path", .. })
    ));
}

#[test]
fn invalid_optional_values_on_receive_are_dropped_not_fatal() {
    let mut entries = mandatory_entries();
    entries.push(format!("brand={}", "b".repeat(33)));
    entries.push("model=Wallbox".into());
    entries.push("cat=1,x".into());
    let txt = parse(&entries).unwrap();
    assert_eq!(txt.brand, None);
    assert_eq!(txt.model.unwrap().as_str(), "Wallbox");
    assert!(txt.categories.is_empty());
}

#[test]
fn optional_keys_may_be_absent_on_receive() {
    let txt = parse(&mandatory_entries()).unwrap();
    assert_eq!(
        (txt.brand, txt.model, txt.device_type, txt.serial),
        (None, None, None, None)
    );
    assert!(txt.categories.is_empty());
}

#[test]
fn duplicate_keys_first_occurrence_wins() {
    let mut entries = mandatory_entries();
    entries.push("register=true".into());
    entries.push("id=Other".into());
    entries.push("brand=First".into());
    entries.push("brand=Second".into());
    let txt = parse(&entries).unwrap();
    assert!(!txt.register);
    assert_eq!(txt.id.as_str(), "Acme-EMS-0042");
    assert_eq!(txt.brand.unwrap().as_str(), "First");

    // A broken first occurrence is not repaired by a later good one.
    let mut entries = mandatory_entries();
    entries.insert(0, "txtvers=2".into());
    assert!(matches!(
        parse(&entries),
        Err(TxtError::UnsupportedVersion { .. })
    ));
}

#[test]
fn reversed_order_as_avahi_delivers_it_parses() {
    let txt = full_txt();
    let mut properties = txt.to_properties();
    properties.reverse();
    let entries: Vec<String> = properties.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert!(entries[0].starts_with("cat="));
    assert_eq!(parse(&entries).unwrap(), txt);
}

#[test]
fn keys_compare_case_insensitively_and_unknown_keys_are_ignored() {
    let entries: Vec<String> = vec![
        "TXTVERS=1".into(),
        "Id=Acme-EMS-0042".into(),
        "PATH=/ship/".into(),
        format!("Ski={SKI_HEX}"),
        "Register=false".into(),
        "vendorthing=42".into(),
        "flag".into(),
    ];
    assert_eq!(
        parse(&entries).unwrap(),
        ShipTxt::new(
            ShipId::new("Acme-EMS-0042").unwrap(),
            SKI_HEX.parse().unwrap()
        )
    );
}

#[test]
fn malformed_rdata_is_refused() {
    let mut raw = rdata(&["txtvers=1"]);
    raw.extend_from_slice(b"\x20short");
    assert_eq!(
        ShipTxt::from_rdata(&raw),
        Err(TxtError::MalformedRdata {
            offset: 10,
            len: 32
        })
    );
}

proptest! {
    #[test]
    fn arbitrary_rdata_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = ShipTxt::from_rdata(&bytes);
    }

    #[test]
    fn valid_records_round_trip(
        id in "[a-zA-Z0-9 ._-]{1,63}",
        brand in proptest::option::of("[a-zA-Z0-9 ]{0,32}"),
        serial in proptest::option::of("[a-zA-Z0-9-]{0,32}"),
        ski in any::<[u8; 20]>(),
        register in any::<bool>(),
        categories in proptest::collection::vec(1u8..=255, 0..5),
    ) {
        let mut txt = ShipTxt::new(ShipId::new(id).unwrap(), Ski::from_bytes(ski));
        txt.brand = brand.map(|b| TxtValue::new(TxtField::Brand, b).unwrap());
        txt.serial = serial.map(|s| TxtValue::new(TxtField::Serial, s).unwrap());
        txt.register = register;
        txt.categories = DeviceCategories::new(categories).unwrap();
        prop_assert_eq!(ShipTxt::from_rdata(&txt.to_rdata()).unwrap(), txt);
    }
}
