//! Node identity and peer-certificate parsing (docs/ship.md §1).

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use rcgen::{
    BasicConstraints, CertificateParams, IsCa, KeyIdMethod, KeyPair, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384,
};
use ship_hub::Ski;
use ship_hub::identity::{
    CertificateError, CertificateSubject, Identity, IdentityError, parse_peer_certificate,
};
use x509_parser::prelude::{FromDer, ParsedExtension, X509Certificate};

fn subject() -> CertificateSubject {
    CertificateSubject {
        common_name: "Demo-EVSE".into(),
        organization: "Demo".into(),
        country: "DE".into(),
    }
}

/// SHA-1 computed here, not through `Ski::of_public_key` (whose provider is ring by default).
fn sha1(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes)
        .as_ref()
        .to_vec()
}

fn x509_ski(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = X509Certificate::from_der(der).expect("x509-parser parses the certificate");
    cert.extensions()
        .iter()
        .find_map(|ext| match ext.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(kid) => Some(kid.0.to_vec()),
            _ => None,
        })
}

fn x509_point(der: &[u8]) -> Vec<u8> {
    let (_, cert) = X509Certificate::from_der(der).expect("x509-parser parses the certificate");
    cert.public_key().subject_public_key.data.to_vec()
}

/// A certificate made with rcgen directly, for the rejection tests.
fn rcgen_certificate(is_ca: IsCa, method: KeyIdMethod, p384: bool) -> Vec<u8> {
    let alg = if p384 {
        &PKCS_ECDSA_P384_SHA384
    } else {
        &PKCS_ECDSA_P256_SHA256
    };
    let key = KeyPair::generate_for(alg).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = is_ca;
    params.key_identifier_method = method;
    params.self_signed(&key).unwrap().der().to_vec()
}

#[test]
fn generated_ski_is_sha1_of_the_public_point_per_x509_parser() {
    let identity = Identity::generate(&subject()).unwrap();
    let der = identity.certificate_der();
    let point = x509_point(der);
    assert_eq!(point.len(), 65);
    assert_eq!(point[0], 0x04);
    let expected = sha1(&point);
    assert_eq!(x509_ski(der).as_deref(), Some(expected.as_slice()));
    assert_eq!(identity.ski().as_bytes().as_slice(), expected.as_slice());
    let peer = parse_peer_certificate(der).unwrap();
    assert_eq!(peer.ski, identity.ski());
    assert_eq!(peer.public_key.as_slice(), point.as_slice());
}

#[test]
fn generated_certificate_has_the_ship_shape() {
    let identity = Identity::generate(&subject()).unwrap();
    let (_, cert) = X509Certificate::from_der(identity.certificate_der()).unwrap();
    assert_eq!(cert.subject().to_string(), "CN=Demo-EVSE, O=Demo, C=DE");
    assert_eq!(cert.subject(), cert.issuer());
    let days =
        (cert.validity().not_after.timestamp() - cert.validity().not_before.timestamp()) / 86_400;
    assert_eq!(days, 3650);
    let serial = cert.raw_serial();
    assert!(!serial.is_empty() && serial.len() <= 17, "serial < 2^130");
    assert_eq!(
        cert.signature_algorithm.algorithm.to_id_string(),
        "1.2.840.10045.4.3.2"
    );
    let bc = cert.basic_constraints().unwrap().expect("BasicConstraints");
    assert!(bc.value.ca);
    let ku = cert.key_usage().unwrap().expect("KeyUsage");
    assert!(ku.value.digital_signature());
    // Two certificates get different serials and keys.
    let other = Identity::generate(&subject()).unwrap();
    assert_ne!(other.ski(), identity.ski());
}

#[test]
fn openssl_reports_the_same_ski_as_sha1_of_the_point() {
    let which = Command::new("which").arg("openssl").output();
    let found = matches!(&which, Ok(out) if out.status.success());
    assert!(
        found,
        "this test needs the openssl command-line tool: install it (e.g. apt-get install openssl)"
    );
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::generate(&subject()).unwrap();
    identity.save(dir.path()).unwrap();
    let cert = dir.path().join("cert.pem");

    let out = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectKeyIdentifier", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let hex_line = text
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 59 && l.contains(':'))
        .unwrap_or_else(|| panic!("no SKI in openssl output: {text}"));
    let from_openssl: Ski = hex_line.parse().unwrap();

    // The public key as openssl sees it: SPKI DER, whose last 65 bytes are the point.
    let pubkey = Command::new("openssl")
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(&cert)
        .output()
        .unwrap();
    assert!(pubkey.status.success());
    let spki_pem = dir.path().join("pub.pem");
    std::fs::write(&spki_pem, &pubkey.stdout).unwrap();
    let spki = Command::new("openssl")
        .args(["pkey", "-pubin", "-outform", "DER", "-in"])
        .arg(&spki_pem)
        .output()
        .unwrap();
    assert!(spki.status.success());
    let point = &spki.stdout[spki.stdout.len() - 65..];
    assert_eq!(point[0], 0x04);

    assert_eq!(from_openssl.as_bytes().as_slice(), sha1(point).as_slice());
    assert_eq!(from_openssl, identity.ski());
}

#[test]
fn save_then_load_round_trips_with_a_private_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let identity = Identity::generate(&subject()).unwrap();
    identity.save(dir.path()).unwrap();
    let loaded = Identity::load(dir.path()).unwrap();
    assert_eq!(loaded.ski(), identity.ski());
    assert_eq!(loaded.certificate_der(), identity.certificate_der());
    assert_eq!(loaded.private_key_der(), identity.private_key_der());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pem = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn load_or_create_creates_once_then_loads_the_same_identity() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("identity");
    let first = Identity::load_or_create(&path, &subject()).unwrap();
    let second = Identity::load_or_create(&path, &subject()).unwrap();
    assert_eq!(first.ski(), second.ski());
}

#[test]
fn load_or_create_never_overwrites_a_key_without_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    Identity::generate(&subject())
        .unwrap()
        .save(dir.path())
        .unwrap();
    std::fs::remove_file(dir.path().join("cert.pem")).unwrap();
    let key = std::fs::read(dir.path().join("key.pem")).unwrap();
    let err = Identity::load_or_create(dir.path(), &subject()).unwrap_err();
    assert!(matches!(err, IdentityError::Incomplete { .. }), "{err}");
    assert_eq!(std::fs::read(dir.path().join("key.pem")).unwrap(), key);
}

#[test]
fn a_certificate_without_its_key_is_an_interrupted_creation_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let old = Identity::generate(&subject()).unwrap();
    old.save(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("key.pem")).unwrap();
    assert!(Identity::load_existing(dir.path()).unwrap().is_none());
    let new = Identity::load_or_create(dir.path(), &subject()).unwrap();
    assert_ne!(new.ski(), old.ski());
    assert_eq!(Identity::load(dir.path()).unwrap().ski(), new.ski());
}

#[test]
fn a_save_interrupted_between_its_renames_is_completed_by_the_next_load() {
    let dir = tempfile::tempdir().unwrap();
    let old = Identity::generate(&subject()).unwrap();
    old.save(dir.path()).unwrap();
    // What a replacement killed after renaming the certificate leaves: the new certificate, the
    // old key, the new key complete in its temporary file.
    let new = Identity::generate(&subject()).unwrap();
    let staging = tempfile::tempdir().unwrap();
    new.save(staging.path()).unwrap();
    std::fs::copy(staging.path().join("cert.pem"), dir.path().join("cert.pem")).unwrap();
    std::fs::copy(
        staging.path().join("key.pem"),
        dir.path().join("key.pem.tmp"),
    )
    .unwrap();
    let loaded = Identity::load_existing(dir.path()).unwrap().unwrap();
    assert_eq!(loaded.ski(), new.ski());
    assert!(!dir.path().join("key.pem.tmp").exists());
    assert_eq!(Identity::load(dir.path()).unwrap().ski(), new.ski());
    // Same at a first start: the certificate and the key's temporary file only.
    std::fs::remove_file(dir.path().join("key.pem")).unwrap();
    std::fs::copy(
        staging.path().join("key.pem"),
        dir.path().join("key.pem.tmp"),
    )
    .unwrap();
    let loaded = Identity::load_or_create(dir.path(), &subject()).unwrap();
    assert_eq!(loaded.ski(), new.ski());
}

#[test]
fn loading_a_legacy_certificate_says_to_regenerate_it() {
    // Like ship-go before mid-2024: the SKI is a hash of something other than the public point.
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_identifier_method = KeyIdMethod::PreSpecified(sha1(&key.serialize_der()));
    let cert = params.self_signed(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), key.serialize_pem()).unwrap();

    let err = Identity::load(dir.path()).unwrap_err();
    assert!(
        matches!(err, IdentityError::LegacyCertificate { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("legacy"), "{text}");
    assert!(text.contains("Regenerate"), "{text}");
}

#[test]
fn loading_a_key_of_another_certificate_fails() {
    let dir = tempfile::tempdir().unwrap();
    let a = Identity::generate(&subject()).unwrap();
    a.save(dir.path()).unwrap();
    let other = tempfile::tempdir().unwrap();
    Identity::generate(&subject())
        .unwrap()
        .save(other.path())
        .unwrap();
    std::fs::copy(other.path().join("key.pem"), dir.path().join("key.pem")).unwrap();
    assert!(matches!(
        Identity::load(dir.path()),
        Err(IdentityError::Key { .. })
    ));
}

#[test]
fn invalid_subjects_are_refused() {
    let mut s = subject();
    s.common_name.clear();
    assert!(matches!(
        Identity::generate(&s),
        Err(IdentityError::InvalidSubject(_))
    ));
    let mut s = subject();
    s.country = "Germany".into();
    assert!(matches!(
        Identity::generate(&s),
        Err(IdentityError::InvalidSubject(_))
    ));
}

#[test]
fn elli_fixture_with_boolean_encoded_0x01_is_accepted() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/elli");
    let identity = Identity::load(&dir).expect("the Elli fixture loads");
    let der = identity.certificate_der();
    // The fixture really carries the malformed BOOLEAN (see certs/README.md).
    let bc = find(der, &[0x06, 0x03, 0x55, 0x1D, 0x13]).expect("BasicConstraints");
    assert_eq!(&der[bc + 5..bc + 8], &[0x01, 0x01, 0x01]);
    let peer = parse_peer_certificate(der).unwrap();
    assert_eq!(
        peer.ski.as_bytes().as_slice(),
        sha1(&peer.public_key).as_slice()
    );
    assert_eq!(peer.ski, identity.ski());
}

#[test]
fn certificate_without_ski_is_refused() {
    let der = rcgen_certificate(IsCa::NoCa, KeyIdMethod::Sha256, false);
    assert_eq!(x509_ski(&der), None);
    assert_eq!(
        parse_peer_certificate(&der),
        Err(CertificateError::MissingSki)
    );
}

#[test]
fn ski_that_is_not_20_bytes_is_refused() {
    let der = rcgen_certificate(
        IsCa::ExplicitNoCa,
        KeyIdMethod::PreSpecified(vec![7; 16]),
        false,
    );
    assert_eq!(
        parse_peer_certificate(&der),
        Err(CertificateError::SkiWrongLength { length: 16 })
    );
}

#[test]
fn ski_not_bound_to_the_key_is_refused() {
    // rcgen's default: truncated SHA-256 of the whole SPKI, 20 bytes but not SHIP's SKI.
    let der = rcgen_certificate(
        IsCa::Ca(BasicConstraints::Unconstrained),
        KeyIdMethod::Sha256,
        false,
    );
    match parse_peer_certificate(&der) {
        Err(CertificateError::SkiNotBoundToKey { claimed, computed }) => {
            assert_eq!(Some(claimed.as_bytes().to_vec()), x509_ski(&der));
            assert_eq!(computed.as_bytes().to_vec(), sha1(&x509_point(&der)));
        }
        other => panic!("expected SkiNotBoundToKey, got {other:?}"),
    }
}

#[test]
fn non_p256_key_is_refused() {
    let der = rcgen_certificate(
        IsCa::Ca(BasicConstraints::Unconstrained),
        KeyIdMethod::Sha256,
        true,
    );
    assert_eq!(
        parse_peer_certificate(&der),
        Err(CertificateError::UnsupportedKey)
    );
}

#[test]
fn truncated_and_garbage_der_is_malformed() {
    let identity = Identity::generate(&subject()).unwrap();
    let der = identity.certificate_der();
    for len in 0..der.len() {
        let result = parse_peer_certificate(&der[..len]);
        assert!(
            matches!(result, Err(CertificateError::Malformed { .. })),
            "prefix of {len} bytes gave {result:?}"
        );
    }
    for garbage in [&b"GET / HTTP/1.1\r\n"[..], &[0xFF; 64], &[0x30, 0x00]] {
        assert!(matches!(
            parse_peer_certificate(garbage),
            Err(CertificateError::Malformed { .. })
        ));
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic_the_parser(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        let _ = parse_peer_certificate(&bytes);
    }

    #[test]
    fn mutations_of_a_valid_certificate_never_panic_the_parser(
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        static DER: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
        let der = DER.get_or_init(|| Identity::generate(&subject()).unwrap().certificate_der().to_vec());
        let mut mutated = der.clone();
        for (at, value) in edits {
            let i = at.index(mutated.len());
            mutated[i] = value;
        }
        let _ = parse_peer_certificate(&mutated);
        let _ = parse_peer_certificate(&mutated[..cut.index(mutated.len())]);
    }
}

/// The recipe behind `certs/elli/` (see certs/README.md): a fresh SHIP identity whose
/// BasicConstraints BOOLEANs (critical flag and cA) are patched from `0xFF` to `0x01`, as Elli
/// wallboxes encode them. This test always runs the recipe in memory and checks that the result
/// is what the committed fixture is meant to be (the lenient parser accepts it, its SKI is
/// unchanged); with `SHIP_HUB_REGENERATE_ELLI=1` it also writes it to `certs/elli/`:
/// `SHIP_HUB_REGENERATE_ELLI=1 cargo test --test identity elli_fixture_recipe`.
#[test]
fn elli_fixture_recipe_patches_both_booleans_to_0x01() {
    let identity = Identity::generate(&CertificateSubject {
        common_name: "Elli-Wallbox-Fixture".into(),
        organization: "ship-hub test fixture".into(),
        country: "DE".into(),
    })
    .unwrap();
    let mut der = identity.certificate_der().to_vec();
    let at = find(&der, &[0x06, 0x03, 0x55, 0x1D, 0x13]).expect("BasicConstraints");
    // 06 03 55 1D 13 | 01 01 FF (critical) | 04 05 | 30 03 01 01 FF (cA)
    assert_eq!(
        &der[at + 5..at + 15],
        &[0x01, 0x01, 0xFF, 0x04, 0x05, 0x30, 0x03, 0x01, 0x01, 0xFF]
    );
    der[at + 7] = 0x01;
    der[at + 14] = 0x01;
    assert_eq!(
        &der[at + 5..at + 15],
        &[0x01, 0x01, 0x01, 0x04, 0x05, 0x30, 0x03, 0x01, 0x01, 0x01]
    );
    let peer = parse_peer_certificate(&der).expect("the lenient parser accepts the patch");
    assert_eq!(peer.ski, identity.ski());
    let patched = Identity::from_der(der, identity.private_key_der().to_vec()).unwrap();
    assert_eq!(patched.ski(), identity.ski());
    if std::env::var_os("SHIP_HUB_REGENERATE_ELLI").is_some() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs/elli");
        patched.save(&dir).unwrap();
    }
}

/// Plants a symbolic link at `dir/name` pointing to a file of someone else's, runs `action`, and
/// checks that it failed naming the link, and that the other file is untouched.
#[cfg(unix)]
fn assert_link_refused(
    name: &str,
    prepare: impl FnOnce(&Path),
    action: impl FnOnce(&Path) -> Result<Identity, IdentityError>,
) {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "someone else's file").unwrap();
    let ship = dir.path().join("ship");
    std::fs::create_dir(&ship).unwrap();
    prepare(&ship);
    std::os::unix::fs::symlink(&victim, ship.join(name)).unwrap();
    let err = action(&ship).map(|i| i.ski()).unwrap_err();
    assert!(
        matches!(err, IdentityError::Symlink { .. }),
        "{name}: {err:?}"
    );
    assert!(err.to_string().contains("symbolic link"), "{name}: {err}");
    assert!(
        err.to_string()
            .contains(&*ship.join(name).to_string_lossy()),
        "{name}: {err}"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "someone else's file",
        "{name}: the link's target was written"
    );
    assert!(
        std::fs::symlink_metadata(ship.join(name))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}

#[test]
#[cfg(unix)]
fn a_link_planted_at_a_temporary_file_is_refused_on_creation() {
    for name in ["key.pem.tmp", "cert.pem.tmp"] {
        assert_link_refused(
            name,
            |_| {},
            |dir| Identity::load_or_create(dir, &subject()),
        );
    }
}

#[test]
#[cfg(unix)]
fn a_link_planted_at_a_temporary_file_is_refused_on_save() {
    for name in ["key.pem.tmp", "cert.pem.tmp"] {
        let identity = Identity::generate(&subject()).unwrap();
        assert_link_refused(
            name,
            |_| {},
            |dir| identity.save(dir).map(|()| identity.clone()),
        );
    }
}

#[test]
#[cfg(unix)]
fn a_link_in_place_of_the_key_or_the_certificate_is_never_followed() {
    for name in ["key.pem", "cert.pem"] {
        let existing = |dir: &Path| {
            Identity::generate(&subject()).unwrap().save(dir).unwrap();
            std::fs::remove_file(dir.join(name)).unwrap();
        };
        assert_link_refused(name, existing, Identity::load);
        assert_link_refused(name, existing, |dir| {
            Identity::load_or_create(dir, &subject())
        });
        let identity = Identity::generate(&subject()).unwrap();
        assert_link_refused(name, existing, |dir| {
            identity.save(dir).map(|()| identity.clone())
        });
        // Nothing there but the link: still never followed.
        assert_link_refused(
            name,
            |_| {},
            |dir| Identity::load_or_create(dir, &subject()),
        );
    }
}

/// Finding (commissioning end-to-end test): `ship-gateway ski` run while `ship-gateway run`
/// created the identity in the same directory failed with "creating cert.pem.tmp: File exists",
/// and two creators that both found no identity could each save their own, so the one that
/// saved first went on with a SKI no longer on disk. Creators in parallel (threads here; a
/// `flock` is per open file, so threads contend for it exactly as processes do) all get the
/// one identity that ends up stored, and none fails.
#[test]
fn parallel_creators_all_get_the_one_stored_identity() {
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let creators: Vec<_> = (0..6)
            .map(|_| {
                let path = dir.path().to_owned();
                std::thread::spawn(move || Identity::load_or_create(&path, &subject()))
            })
            .collect();
        let skis: Vec<_> = creators
            .into_iter()
            .map(|c| c.join().unwrap().map(|identity| identity.ski()))
            .collect();
        let stored = Identity::load(dir.path()).unwrap().ski();
        for ski in skis {
            assert_eq!(ski.as_ref().ok(), Some(&stored), "round {round}: {ski:?}");
        }
    }
}
