//! Tests of the TXT record reader and writer.
use super::super::tests::annex_a;
use super::*;

fn good() -> Vec<(String, String)> {
    let (request, secret) = annex_a();
    super::super::digest::sign(&request, &secret).to_pairs()
}

fn with(pairs: &[(String, String)], key: &str, value: &str) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                if k == key {
                    value.to_owned()
                } else {
                    v.clone()
                },
            )
        })
        .collect()
}

#[test]
fn the_record_is_written_in_the_specified_order_and_read_back() {
    let pairs = good();
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "txtvers",
            "parType",
            "forId",
            "forPar",
            "trustId",
            "trustPar",
            "trustCurve",
            "type",
            "trustNonce",
            "alg",
            "digest"
        ]
    );
    let read = SignedRequest::from_pairs(&pairs).unwrap();
    assert_eq!(read.to_pairs(), pairs);
}

#[test]
fn txtvers_must_come_first() {
    let mut pairs = good();
    pairs.swap(0, 1);
    assert_eq!(SignedRequest::from_pairs(&pairs), Err(RecordError::Version));
    assert_eq!(
        SignedRequest::from_pairs(&with(&good(), "txtvers", "2")),
        Err(RecordError::Version)
    );
    assert_eq!(SignedRequest::from_pairs(&[]), Err(RecordError::Version));
}

#[test]
fn unknown_keys_are_ignored_and_the_first_occurrence_counts() {
    let mut pairs = good();
    pairs.push(("future".into(), "x".into()));
    pairs.push(("trustPar".into(), "not hex".into()));
    assert!(SignedRequest::from_pairs(&pairs).is_ok());
}

#[test]
fn keys_are_case_insensitive() {
    let pairs: Vec<_> = good()
        .into_iter()
        .map(|(k, v)| (k.to_uppercase(), v))
        .collect();
    assert!(SignedRequest::from_pairs(&pairs).is_ok());
}

#[test]
fn every_missing_key_is_named() {
    for key in [
        "parType",
        "forId",
        "forPar",
        "trustId",
        "trustPar",
        "trustCurve",
        "type",
        "trustNonce",
        "alg",
        "digest",
    ] {
        let pairs: Vec<_> = good().into_iter().filter(|(k, _)| k != key).collect();
        assert_eq!(
            SignedRequest::from_pairs(&pairs),
            Err(RecordError::Missing(match key {
                "parType" => "parType",
                "forId" => "forId",
                "forPar" => "forPar",
                "trustId" => "trustId",
                "trustPar" => "trustPar",
                "trustCurve" => "trustCurve",
                "type" => "type",
                "trustNonce" => "trustNonce",
                "alg" => "alg",
                _ => "digest",
            })),
            "{key}"
        );
    }
}

#[test]
fn every_malformed_field_gets_its_error() {
    let cases: [(&str, &str, RecordError); 12] = [
        (
            "parType",
            "fpSha1",
            RecordError::Unsupported {
                field: "parType",
                value: "fpSha1".into(),
            },
        ),
        (
            "type",
            "addEm",
            RecordError::Unsupported {
                field: "type",
                value: "addEm".into(),
            },
        ),
        (
            "alg",
            "hmacSha512",
            RecordError::Unsupported {
                field: "alg",
                value: "hmacSha512".into(),
            },
        ),
        (
            "trustCurve",
            "ed25519",
            RecordError::Unsupported {
                field: "trustCurve",
                value: "ed25519".into(),
            },
        ),
        (
            "forPar",
            &"c".repeat(64),
            RecordError::Hex {
                field: "forPar",
                digits: 64,
            },
        ),
        (
            "trustPar",
            "ABCD",
            RecordError::Hex {
                field: "trustPar",
                digits: 64,
            },
        ),
        (
            "trustNonce",
            &"G".repeat(32),
            RecordError::Hex {
                field: "trustNonce",
                digits: 32,
            },
        ),
        (
            "digest",
            &"A".repeat(63),
            RecordError::Hex {
                field: "digest",
                digits: 64,
            },
        ),
        (
            "forId",
            "",
            RecordError::ShipId {
                field: "forId",
                error: ShipId::new("").unwrap_err(),
            },
        ),
        (
            "trustId",
            &"x".repeat(64),
            RecordError::ShipId {
                field: "trustId",
                error: ShipId::new("x".repeat(64)).unwrap_err(),
            },
        ),
        (
            "trustNonce",
            "é",
            RecordError::Hex {
                field: "trustNonce",
                digits: 32,
            },
        ),
        (
            "alg",
            &"z".repeat(200),
            RecordError::Unsupported {
                field: "alg",
                value: "z".repeat(64),
            },
        ),
    ];
    for (key, value, expected) in cases {
        assert_eq!(
            SignedRequest::from_pairs(&with(&good(), key, value)),
            Err(expected),
            "{key}={value}"
        );
    }
}

#[test]
fn a_key_without_value_or_with_binary_value_is_refused() {
    let pairs = good();
    let props: Vec<(&str, Option<&[u8]>)> = pairs
        .iter()
        .map(|(k, v)| {
            if k == "forId" {
                (k.as_str(), None)
            } else {
                (k.as_str(), Some(v.as_bytes()))
            }
        })
        .collect();
    assert_eq!(
        SignedRequest::from_properties(props),
        Err(RecordError::NoValue("forId"))
    );
    let props: Vec<(&str, Option<&[u8]>)> = pairs
        .iter()
        .map(|(k, v)| {
            if k == "trustId" {
                (k.as_str(), Some(&[0xff, 0xfe][..]))
            } else {
                (k.as_str(), Some(v.as_bytes()))
            }
        })
        .collect();
    assert_eq!(
        SignedRequest::from_properties(props),
        Err(RecordError::NotUtf8("trustId"))
    );
}

#[test]
fn huge_records_are_refused_by_size_before_parsing() {
    let mut many = good();
    for i in 0..100 {
        many.push((format!("k{i}"), "v".into()));
    }
    assert_eq!(
        SignedRequest::from_pairs(&many),
        Err(RecordError::TooManyKeys {
            count: MAX_KEYS + 1
        })
    );
    let mut long = good();
    long.push(("pad".into(), "p".repeat(4000)));
    assert!(matches!(
        SignedRequest::from_pairs(&long),
        Err(RecordError::TooLong { .. })
    ));
}

#[test]
fn fingerprints_are_sha256_of_the_der() {
    let fp = Fingerprint::of_certificate(b"abc");
    assert_eq!(
        fp.to_string(),
        "BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD"
    );
    assert_eq!(fp.to_string().parse::<Fingerprint>(), Ok(fp));
}
