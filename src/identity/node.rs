//! This node's own identity: its SHIP certificate and private key (docs/ship.md §1).
//!
//! A SHIP node is known to its peers by the SKI of a self-signed P-256 certificate, so the
//! certificate must survive restarts: losing it means every peer has to be paired again.
//! [`Identity::load_or_create`] keeps it in a directory as `cert.pem` and `key.pem` (mode 0600).
//!
//! Saving is crash-safe: both files are written to temporary files (`cert.pem.tmp`,
//! `key.pem.tmp`) and fsynced first, then the certificate is renamed into place and the key last,
//! and the directory is fsynced. The key's rename is the commit point. A process killed at any
//! instant therefore leaves one of: the previous files (or none), plus stale temporary files; or
//! the new certificate with the old key (or none) and the new key complete in `key.pem.tmp`,
//! which [`Identity::load_existing`] and [`Identity::load_or_create`] complete; or the new pair.
//! None of these files is ever opened through a symbolic link
//! ([`IdentityError::Symlink`]).
//!
//! Creating and saving hold an exclusive `flock` on `identity.lock` in the directory, so that
//! processes that start at the same time (`ship-gateway ski` while the service creates its
//! identity) never interleave their renames: the first creates the identity, the others load
//! it.

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
use crate::safe_file;

/// File name of the certificate inside an identity directory.
pub const CERTIFICATE_FILE: &str = "cert.pem";
/// File name of the PKCS#8 private key inside an identity directory.
pub const KEY_FILE: &str = "key.pem";

/// Validity of a created certificate: 10 years (docs/ship.md §1).
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
    /// One of the identity's files (or their temporary files) is a symbolic link. Links are never
    /// followed, so that nobody who can plant one can have the private key written into, or read
    /// from, a file of their choosing; the link and its target were left untouched.
    #[error(
        "refusing to follow the symbolic link {}: the identity files and their temporary files \
         must be regular files (remove the link, and keep the directory writable only by its \
         owner)",
        path.display()
    )]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// `key.pem` exists without `cert.pem`; refusing to overwrite the key. (A certificate
    /// without its key is what a creation interrupted before its last step leaves: it is
    /// replaced by a new identity.)
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
    /// Creates a new SHIP certificate (docs/ship.md §1): P-256 key, self-signed with
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

    /// Writes `cert.pem` and `key.pem` (mode 0600) into `dir`, creating `dir` if needed,
    /// replacing an identity stored there. Crash-safe (see the module documentation): a process
    /// killed at any instant leaves the previous identity or this one, as
    /// [`Identity::load_or_create`] finds it. Fails with [`IdentityError::Symlink`], touching
    /// nothing, when either file or temporary file is a symbolic link.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        let _lock = lock(dir)?;
        self.save_locked(dir)
    }

    /// [`Identity::save`] under the directory's lock, taken by the caller.
    fn save_locked(&self, dir: &Path) -> Result<(), IdentityError> {
        let certificate_path = dir.join(CERTIFICATE_FILE);
        let key_path = dir.join(KEY_FILE);
        for path in [&certificate_path, &key_path] {
            refuse_symlink(path)?;
        }
        let cert_pem = pem::encode(&pem::Pem::new("CERTIFICATE", self.certificate_der.clone()));
        let key_pem = pem::encode(&pem::Pem::new("PRIVATE KEY", self.private_key_der.clone()));
        // Both complete on disk before either is renamed: the key's rename, last, commits.
        let certificate_temp = write_temporary(&certificate_path, cert_pem.as_bytes(), 0o644)?;
        let key_temp = write_temporary(&key_path, key_pem.as_bytes(), 0o600)?;
        rename(&certificate_temp, &certificate_path)?;
        rename(&key_temp, &key_path)?;
        sync_directory(&key_path)
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

    /// Loads the identity from `dir` if a complete one is stored there, completing a save that a
    /// crash interrupted after its certificate was renamed into place (its key is then complete
    /// in `key.pem.tmp` and is renamed into place now).
    ///
    /// `Ok(None)` when there is no identity: neither file, or only a certificate without a key
    /// that belongs to it (what a creation interrupted before its last step leaves). Fails with
    /// [`IdentityError::Incomplete`] when `key.pem` exists without `cert.pem`, and with
    /// [`IdentityError::Symlink`] when either file is a symbolic link.
    pub fn load_existing(dir: &Path) -> Result<Option<Self>, IdentityError> {
        let certificate_path = dir.join(CERTIFICATE_FILE);
        let key_path = dir.join(KEY_FILE);
        for path in [&certificate_path, &key_path] {
            refuse_symlink(path)?;
        }
        let exists = |path: &Path| {
            safe_file::entry_exists(path).map_err(|source| IdentityError::Io {
                action: "looking for",
                path: path.to_owned(),
                source,
            })
        };
        match (exists(&certificate_path)?, exists(&key_path)?) {
            (false, false) => Ok(None),
            (false, true) => Err(IdentityError::Incomplete {
                present: key_path,
                missing: certificate_path,
            }),
            (true, false) => Self::complete_interrupted_save(dir),
            (true, true) => match Self::load(dir) {
                Ok(identity) => Ok(Some(identity)),
                // The new certificate with the previous key: a replacement interrupted between
                // its two renames.
                Err(error) => Self::complete_interrupted_save(dir)?.map(Some).ok_or(error),
            },
        }
    }

    /// Renames `key.pem.tmp` into place if it is a complete key belonging to `cert.pem`, and
    /// returns that identity. `Ok(None)` when there is no such key.
    fn complete_interrupted_save(dir: &Path) -> Result<Option<Self>, IdentityError> {
        let certificate_path = dir.join(CERTIFICATE_FILE);
        let key_path = dir.join(KEY_FILE);
        let key_temp = temporary_path(&key_path);
        refuse_symlink(&key_temp)?;
        let certificate_der = read_pem(&certificate_path, "CERTIFICATE")?;
        let Ok(private_key_der) = read_pem(&key_temp, "PRIVATE KEY") else {
            return Ok(None);
        };
        let Ok(identity) = Self::from_der_at(
            certificate_der,
            private_key_der,
            &certificate_path,
            &key_path,
        ) else {
            return Ok(None);
        };
        rename(&key_temp, &key_path)?;
        sync_directory(&key_path)?;
        tracing::info!(ski = %identity.ski, dir = %dir.display(), "completed an interrupted save of the SHIP identity");
        Ok(Some(identity))
    }

    /// Loads the identity from `dir` (see [`Identity::load_existing`], which also completes an
    /// interrupted save), or creates and saves a new one when there is none. A certificate
    /// without its key (a creation interrupted before its last step) is replaced. If `key.pem`
    /// exists without `cert.pem`, fails with [`IdentityError::Incomplete`] rather than
    /// overwriting the key.
    ///
    /// Safe against other creators in other processes (or threads): they wait for the
    /// directory's lock, and all get the one identity that is stored.
    pub fn load_or_create(dir: &Path, subject: &CertificateSubject) -> Result<Self, IdentityError> {
        if let Some(identity) = Self::load_existing(dir)? {
            return Ok(identity);
        }
        let _lock = lock(dir)?;
        // Another creator may have stored one while we waited for the lock.
        if let Some(identity) = Self::load_existing(dir)? {
            return Ok(identity);
        }
        let identity = Self::generate(subject)?;
        identity.save_locked(dir)?;
        tracing::info!(ski = %identity.ski, dir = %dir.display(), "created a new SHIP identity");
        Ok(identity)
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
    let text = safe_file::read(path).map_err(|source| io_error("reading", path, source))?;
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

/// An I/O error about `path`; a refused symbolic link becomes [`IdentityError::Symlink`].
fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> IdentityError {
    if safe_file::is_symlink_refusal(&source) {
        return IdentityError::Symlink {
            path: path.to_owned(),
        };
    }
    IdentityError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn refuse_symlink(path: &Path) -> Result<(), IdentityError> {
    match safe_file::is_symlink(path) {
        Ok(false) => Ok(()),
        Ok(true) => Err(IdentityError::Symlink {
            path: path.to_owned(),
        }),
        Err(source) => Err(io_error("looking at", path, source)),
    }
}

/// The lock file that creators and savers of the identity in `dir` hold (created with `dir`).
const LOCK_FILE: &str = "identity.lock";

/// Creates `dir` if needed and takes its identity lock (see the module documentation).
fn lock(dir: &Path) -> Result<fs::File, IdentityError> {
    fs::create_dir_all(dir).map_err(|source| IdentityError::Io {
        action: "creating",
        path: dir.to_owned(),
        source,
    })?;
    let path = dir.join(LOCK_FILE);
    safe_file::lock_exclusive(&path).map_err(|source| io_error("locking", &path, source))
}

/// `<path>.tmp`.
fn temporary_path(path: &Path) -> PathBuf {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    PathBuf::from(temporary)
}

/// Writes `contents` to a new `<path>.tmp` (exclusive, never through a symbolic link; a stale
/// one from a crash is replaced) with `mode`, fsynced. Returns the temporary file's path.
fn write_temporary(path: &Path, contents: &[u8], mode: u32) -> Result<PathBuf, IdentityError> {
    let temporary = temporary_path(path);
    let mut file = safe_file::create_new(&temporary, mode)
        .map_err(|source| io_error("creating", &temporary, source))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|source| io_error("writing", &temporary, source))?;
    Ok(temporary)
}

fn rename(from: &Path, to: &Path) -> Result<(), IdentityError> {
    fs::rename(from, to).map_err(|source| io_error("renaming into", to, source))
}

fn sync_directory(path: &Path) -> Result<(), IdentityError> {
    safe_file::sync_parent(path)
        .map_err(|source| io_error("syncing the directory of", path, source))
}
