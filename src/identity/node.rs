//! This node's own identity: its SHIP certificate and private key (ship-protocol.md §1).
//!
//! A SHIP node is known to its peers by the SKI of a self-signed P-256 certificate, so the
//! certificate must survive restarts: losing it means every peer has to be paired again.
//! [`Identity::load_or_create`] keeps it in a directory as `cert.pem` and `key.pem` (mode 0600).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, KeyIdMethod, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SerialNumber,
};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};

use super::peer::{CertificateError, parse_peer_certificate};
use crate::Ski;

/// File name of the certificate inside an identity directory.
pub const CERTIFICATE_FILE: &str = "cert.pem";
/// File name of the PKCS#8 private key inside an identity directory.
pub const KEY_FILE: &str = "key.pem";

/// Validity of a created certificate: 10 years (ship-protocol.md §1).
const VALIDITY_DAYS: i64 = 3650;

/// The subject written into a created certificate, e.g. `CN=<device name>, O=<brand>, C=DE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSubject {
    /// The device name (CN). Must not be empty.
    pub common_name: String,
    /// The brand (O). May be empty, then it is left out.
    pub organization: String,
    /// The two-letter ISO 3166 country code (C). May be empty, then it is left out.
    pub country: String,
}

/// Why an identity could not be created, saved or loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The subject cannot be written into a certificate.
    #[error("invalid certificate subject: {0}")]
    InvalidSubject(&'static str),
    /// Generating the key or the certificate failed.
    #[error("could not generate the SHIP certificate: {0}")]
    Generate(String),
    /// Reading or writing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("reading", "writing", …).
        action: &'static str,
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("{path} is not a PEM file with a {expected} block: {reason}")]
    Pem {
        /// The file concerned.
        path: PathBuf,
        /// The PEM label expected.
        expected: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The stored certificate's SKI is not SHA-1 of its public key: it was made by an old
    /// ship-go (before mid-2024), which hashed the private key.
    #[error(
        "{path} is a legacy SHIP certificate: its SKI {claimed} is not SHA-1 of its public key \
         ({computed}), as SHIP §12.1 and current peers require. Regenerate it: move {path} and \
         the key next to it out of the way and start again (a new certificate and SKI are \
         created; peers must then be paired again)"
    )]
    LegacyCertificate {
        /// The certificate file.
        path: PathBuf,
        /// The SKI written in it.
        claimed: Ski,
        /// SHA-1 of its public key.
        computed: Ski,
    },
    /// The stored certificate is not usable as a SHIP certificate.
    #[error("{path} is not a usable SHIP certificate: {source}")]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// Why.
        #[source]
        source: CertificateError,
    },
    /// The key is not a P-256 PKCS#8 key or does not belong to the certificate.
    #[error("{path}: {reason}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What was wrong.
        reason: &'static str,
    },
    /// Only one of `cert.pem` and `key.pem` exists; refusing to overwrite it.
    #[error(
        "{present} exists but {missing} does not; refusing to create a new identity over half \
         of an old one (restore {missing} or remove {present})"
    )]
    Incomplete {
        /// The file that exists.
        present: PathBuf,
        /// The file that is missing.
        missing: PathBuf,
    },
}

/// This node's certificate and private key.
///
/// `Debug` never shows the key.
#[derive(Clone)]
pub struct Identity {
    certificate_der: Vec<u8>,
    private_key_der: Vec<u8>,
    ski: Ski,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("ski", &self.ski)
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Creates a new SHIP certificate (ship-protocol.md §1): P-256 key, self-signed with
    /// ecdsa-with-SHA256, valid 10 years from now, random positive 128-bit serial, KeyUsage
    /// digitalSignature, BasicConstraints CA:TRUE (as ship-go writes it), and SubjectKeyIdentifier
    /// = SHA-1 of the 65-byte public point.
    pub fn generate(subject: &CertificateSubject) -> Result<Self, IdentityError> {
        let dn = distinguished_name(subject)?;
        let generate_error = |e: rcgen::Error| IdentityError::Generate(e.to_string());
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_error)?;
        let ski = Ski::of_public_key(key.public_key_raw());

        let mut serial = [0u8; 16];
        SystemRandom::new()
            .fill(&mut serial)
            .map_err(|_| IdentityError::Generate("no system randomness".into()))?;
        serial[0] &= 0x7F; // positive INTEGER
        serial[0] |= 0x40; // and no leading zero byte, so DER keeps all 16 bytes

        let now = time::OffsetDateTime::now_utc();
        let mut params = CertificateParams::default();
        params.distinguished_name = dn;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.not_before = now;
        params.not_after = now + time::Duration::days(VALIDITY_DAYS);
        // rcgen writes the SKI extension only for `Ca(..)` / `ExplicitNoCa`, and by default
        // computes it as truncated SHA-256 of the whole SPKI; SHIP needs SHA-1 of the point.
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.key_identifier_method = KeyIdMethod::PreSpecified(ski.as_bytes().to_vec());
        let certificate = params.self_signed(&key).map_err(generate_error)?;

        Ok(Identity {
            certificate_der: certificate.der().to_vec(),
            private_key_der: key.serialize_der(),
            ski,
        })
    }

    /// Builds an identity from a DER certificate and a PKCS#8 DER private key, checking that
    /// the certificate's SKI is SHA-1 of its key and that the private key belongs to it.
    pub fn from_der(
        certificate_der: Vec<u8>,
        private_key_der: Vec<u8>,
    ) -> Result<Self, IdentityError> {
        Self::from_der_at(
            certificate_der,
            private_key_der,
            Path::new(CERTIFICATE_FILE),
            Path::new(KEY_FILE),
        )
    }

    fn from_der_at(
        certificate_der: Vec<u8>,
        private_key_der: Vec<u8>,
        certificate_path: &Path,
        key_path: &Path,
    ) -> Result<Self, IdentityError> {
        let peer = parse_peer_certificate(&certificate_der).map_err(|source| match source {
            CertificateError::SkiNotBoundToKey { claimed, computed } => {
                IdentityError::LegacyCertificate {
                    path: certificate_path.to_owned(),
                    claimed,
                    computed,
                }
            }
            source => IdentityError::Certificate {
                path: certificate_path.to_owned(),
                source,
            },
        })?;
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_ASN1_SIGNING,
            &private_key_der,
            &SystemRandom::new(),
        )
        .map_err(|_| IdentityError::Key {
            path: key_path.to_owned(),
            reason: "not a PKCS#8 ECDSA P-256 private key",
        })?;
        if key.public_key().as_ref() != peer.public_key.as_slice() {
            return Err(IdentityError::Key {
                path: key_path.to_owned(),
                reason: "the private key does not belong to the certificate",
            });
        }
        Ok(Identity {
            certificate_der,
            private_key_der,
            ski: peer.ski,
        })
    }

    /// This node's SKI.
    pub fn ski(&self) -> Ski {
        self.ski
    }

    /// The certificate, DER.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate_der
    }

    /// The private key, PKCS#8 DER. Secret: never log it.
    pub fn private_key_der(&self) -> &[u8] {
        &self.private_key_der
    }

    /// Writes `cert.pem` and `key.pem` (mode 0600) into `dir`, creating `dir` if needed. Each
    /// file is written to a temporary name and renamed, so a crash never leaves half a file.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        fs::create_dir_all(dir).map_err(|source| IdentityError::Io {
            action: "creating",
            path: dir.to_owned(),
            source,
        })?;
        let key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", self.private_key_der.clone()));
        write_atomically(&dir.join(KEY_FILE), key_pem.as_bytes(), 0o600)?;
        let cert_pem = pem::encode(&pem::Pem::new("CERTIFICATE", self.certificate_der.clone()));
        write_atomically(&dir.join(CERTIFICATE_FILE), cert_pem.as_bytes(), 0o644)?;
        Ok(())
    }

    /// Reads `cert.pem` and `key.pem` from `dir` and checks them (see [`Identity::from_der`]).
    /// A legacy certificate (SKI not SHA-1 of its key) fails with
    /// [`IdentityError::LegacyCertificate`], whose message says how to regenerate it.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let certificate_path = dir.join(CERTIFICATE_FILE);
        let key_path = dir.join(KEY_FILE);
        let certificate_der = read_pem(&certificate_path, "CERTIFICATE")?;
        let private_key_der = read_pem(&key_path, "PRIVATE KEY")?;
        Self::from_der_at(
            certificate_der,
            private_key_der,
            &certificate_path,
            &key_path,
        )
    }

    /// Loads the identity from `dir`, or creates and saves a new one when neither file exists.
    /// If only one of the two files exists, fails with [`IdentityError::Incomplete`] rather than
    /// overwriting it.
    pub fn load_or_create(dir: &Path, subject: &CertificateSubject) -> Result<Self, IdentityError> {
        let certificate_path = dir.join(CERTIFICATE_FILE);
        let key_path = dir.join(KEY_FILE);
        match (certificate_path.exists(), key_path.exists()) {
            (true, true) => Self::load(dir),
            (false, false) => {
                let identity = Self::generate(subject)?;
                identity.save(dir)?;
                tracing::info!(ski = %identity.ski, dir = %dir.display(), "created a new SHIP identity");
                Ok(identity)
            }
            (true, false) => Err(IdentityError::Incomplete {
                present: certificate_path,
                missing: key_path,
            }),
            (false, true) => Err(IdentityError::Incomplete {
                present: key_path,
                missing: certificate_path,
            }),
        }
    }
}

fn distinguished_name(subject: &CertificateSubject) -> Result<DistinguishedName, IdentityError> {
    if subject.common_name.trim().is_empty() {
        return Err(IdentityError::InvalidSubject(
            "the common name must not be empty",
        ));
    }
    if subject.common_name.len() > 64 || subject.organization.len() > 64 {
        return Err(IdentityError::InvalidSubject(
            "common name and organization are limited to 64 bytes (RFC 5280)",
        ));
    }
    let country_ok = subject.country.is_empty()
        || (subject.country.len() == 2 && subject.country.bytes().all(|b| b.is_ascii_uppercase()));
    if !country_ok {
        return Err(IdentityError::InvalidSubject(
            "the country must be a two-letter upper-case ISO 3166 code such as DE",
        ));
    }
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, subject.common_name.as_str());
    if !subject.organization.is_empty() {
        dn.push(DnType::OrganizationName, subject.organization.as_str());
    }
    if !subject.country.is_empty() {
        dn.push(DnType::CountryName, subject.country.as_str());
    }
    Ok(dn)
}

fn read_pem(path: &Path, expected: &'static str) -> Result<Vec<u8>, IdentityError> {
    let text = fs::read(path).map_err(|source| IdentityError::Io {
        action: "reading",
        path: path.to_owned(),
        source,
    })?;
    let block = pem::parse(&text).map_err(|e| IdentityError::Pem {
        path: path.to_owned(),
        expected,
        reason: e.to_string(),
    })?;
    if block.tag() != expected {
        return Err(IdentityError::Pem {
            path: path.to_owned(),
            expected,
            reason: format!("found a {} block", block.tag()),
        });
    }
    Ok(block.into_contents())
}

fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), IdentityError> {
    let io_error = |action, source| IdentityError::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(&temporary)
        .map_err(|e| io_error("creating", e))?;
    #[cfg(unix)]
    {
        // The mode given to open() is filtered by the umask and ignored for an existing file.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(|e| io_error("setting permissions of", e))?;
    }
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error("writing", e))?;
    drop(file);
    fs::rename(&temporary, path).map_err(|e| io_error("renaming into", e))
}
