//! Client identities for the load tool: generated once, cached in a directory.
//!
//! Generating a P-256 key and a self-signed certificate costs a fraction of a millisecond, but
//! 10,000 of them add up; the cache keeps them between runs. Layout of the directory:
//!
//! * `identities.txt` — one identity per line: certificate DER and PKCS#8 key DER, both in hex,
//!   separated by a space;
//! * `skis.txt` — the SKIs of all those identities, one per line (40 hex digits), in the same
//!   order: the file a target reads to pre-pair them (`ship-load serve --skis`). It only grows,
//!   never shrinks to one run's `--count`;
//! * `identities.lock` — locked while a run reads and extends the cache.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use ship_hub::identity::{CertificateSubject, Identity};

const IDENTITIES_FILE: &str = "identities.txt";
/// The SKI list beside the identities.
pub(crate) const SKIS_FILE: &str = "skis.txt";
/// Held while a run reads and extends the cache.
const LOCK_FILE: &str = "identities.lock";

/// What can go wrong with the identity cache.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CacheError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} line {line}: {reason}")]
    Corrupt {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("generating an identity: {0}")]
    Generate(String),
}

fn io_error(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CacheError {
    let path = path.to_owned();
    move |source| CacheError::Io {
        action,
        path,
        source,
    }
}

/// Returns `count` identities from `dir`, generating (in parallel) and appending any missing.
///
/// `skis.txt` lists every identity of the cache, in order, and only ever grows: a run with a
/// smaller `count` than an earlier one leaves it as it is, so a target started with it stays
/// paired with every client any run may use. The directory is locked (`identities.lock`) while
/// the cache is read and extended, so runs started at the same time never interleave their
/// appends.
pub(crate) fn load_or_generate(dir: &Path, count: usize) -> Result<Vec<Identity>, CacheError> {
    fs::create_dir_all(dir).map_err(io_error("creating", dir))?;
    let lock_path = dir.join(LOCK_FILE);
    let lock = fs::File::create(&lock_path).map_err(io_error("creating", &lock_path))?;
    lock.lock().map_err(io_error("locking", &lock_path))?;
    let path = dir.join(IDENTITIES_FILE);
    let skis_path = dir.join(SKIS_FILE);
    let cached = count_lines(&path)?;
    // A SKI list that does not match the cache (missing, or cut to a count by an older
    // ship-load) is written again from the whole cache, once.
    let listed = match fs::read_to_string(&skis_path) {
        Ok(_) => read_skis(&skis_path)?.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
        Err(error) => return Err(io_error("reading", &skis_path)(error)),
    };
    if listed != cached {
        let all = read_cache(&path, cached)?;
        write_skis(&skis_path, &all, false)?;
    }
    let mut identities = read_cache(&path, count)?;
    if identities.len() < count {
        let missing = count - identities.len();
        let fresh = generate(missing)?;
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io_error("opening", &path))?;
        let mut text = String::with_capacity(fresh.len() * 700);
        for identity in &fresh {
            text.push_str(&hex(identity.certificate_der()));
            text.push(' ');
            text.push_str(&hex(identity.private_key_der()));
            text.push('\n');
        }
        file.write_all(text.as_bytes())
            .map_err(io_error("writing", &path))?;
        write_skis(&skis_path, &fresh, true)?;
        identities.extend(fresh);
    }
    drop(lock);
    Ok(identities)
}

/// Writes the SKIs of `identities` to `path`, one per line: appended, or as the whole file.
fn write_skis(path: &Path, identities: &[Identity], append: bool) -> Result<(), CacheError> {
    let skis: String = identities
        .iter()
        .map(|identity| format!("{}\n", identity.ski()))
        .collect();
    let mut file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(path)
        .map_err(io_error("opening", path))?;
    file.write_all(skis.as_bytes())
        .map_err(io_error("writing", path))
}

/// The number of identities in the cache file (its non-empty lines; 0 if there is none).
fn count_lines(path: &Path) -> Result<usize, CacheError> {
    match fs::File::open(path) {
        Ok(file) => {
            let mut lines = 0;
            for line in BufReader::new(file).lines() {
                if !line.map_err(io_error("reading", path))?.is_empty() {
                    lines += 1;
                }
            }
            Ok(lines)
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(0),
        Err(error) => Err(io_error("opening", path)(error)),
    }
}

fn read_cache(path: &Path, count: usize) -> Result<Vec<Identity>, CacheError> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(io_error("opening", path)(error)),
    };
    let mut identities = Vec::with_capacity(count);
    for (index, line) in BufReader::new(file).lines().enumerate() {
        if identities.len() == count {
            break;
        }
        let line = line.map_err(io_error("reading", path))?;
        let corrupt = |reason: String| CacheError::Corrupt {
            path: path.to_owned(),
            line: index + 1,
            reason,
        };
        let (cert, key) = line
            .split_once(' ')
            .ok_or_else(|| corrupt("expected two hex fields".into()))?;
        let cert = unhex(cert).ok_or_else(|| corrupt("certificate is not hex".into()))?;
        let key = unhex(key).ok_or_else(|| corrupt("key is not hex".into()))?;
        let identity = Identity::from_der(cert, key).map_err(|e| corrupt(e.to_string()))?;
        identities.push(identity);
    }
    Ok(identities)
}

/// Generates `count` identities on every core.
fn generate(count: usize) -> Result<Vec<Identity>, CacheError> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(count.max(1));
    let per_thread = count.div_ceil(threads);
    let results: Vec<Result<Vec<Identity>, CacheError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let n = per_thread.min(count.saturating_sub(t * per_thread));
                scope.spawn(move || {
                    (0..n)
                        .map(|i| {
                            Identity::generate(&CertificateSubject {
                                common_name: format!("ship-load-{t}-{i}"),
                                organization: "ship-load".into(),
                                country: "DE".into(),
                            })
                            .map_err(|e| CacheError::Generate(e.to_string()))
                        })
                        .collect()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(CacheError::Generate("thread panicked".into())))
            })
            .collect()
    });
    let mut all = Vec::with_capacity(count);
    for result in results {
        all.extend(result?);
    }
    Ok(all)
}

/// Reads a file of SKIs (one per line, `#` comments and blank lines ignored).
pub(crate) fn read_skis(path: &Path) -> Result<Vec<ship_hub::Ski>, CacheError> {
    let text = fs::read_to_string(path).map_err(io_error("reading", path))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| (i, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(i, line)| {
            line.parse().map_err(|e| CacheError::Corrupt {
                path: path.to_owned(),
                line: i + 1,
                reason: format!("{e}"),
            })
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let bytes = [0u8, 1, 0x7f, 0x80, 0xff];
        assert_eq!(unhex(&hex(&bytes)).unwrap(), bytes);
        assert_eq!(unhex("0"), None);
        assert_eq!(unhex("zz"), None);
    }

    #[test]
    fn cache_is_reused_and_extended() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(dir.path(), 2).unwrap();
        let again = load_or_generate(dir.path(), 3).unwrap();
        assert_eq!(again.len(), 3);
        assert_eq!(first[0].ski(), again[0].ski());
        assert_eq!(first[1].ski(), again[1].ski());
        let skis = read_skis(&dir.path().join(SKIS_FILE)).unwrap();
        assert_eq!(skis, again.iter().map(|i| i.ski()).collect::<Vec<_>>());
    }

    #[test]
    fn a_smaller_count_never_shrinks_the_ski_list_a_target_reads() {
        let dir = tempfile::tempdir().unwrap();
        let five = load_or_generate(dir.path(), 5).unwrap();
        let two = load_or_generate(dir.path(), 2).unwrap();
        assert_eq!(two.len(), 2);
        let skis = read_skis(&dir.path().join(SKIS_FILE)).unwrap();
        assert_eq!(skis, five.iter().map(|i| i.ski()).collect::<Vec<_>>());
    }

    #[test]
    fn a_ski_list_cut_by_an_older_run_is_written_again_from_the_whole_cache() {
        let dir = tempfile::tempdir().unwrap();
        let four = load_or_generate(dir.path(), 4).unwrap();
        let skis_path = dir.path().join(SKIS_FILE);
        fs::write(&skis_path, format!("{}\n", four[0].ski())).unwrap();
        load_or_generate(dir.path(), 1).unwrap();
        let skis = read_skis(&skis_path).unwrap();
        assert_eq!(skis, four.iter().map(|i| i.ski()).collect::<Vec<_>>());
    }

    #[test]
    fn runs_at_the_same_time_do_not_interleave_their_appends() {
        let dir = tempfile::tempdir().unwrap();
        std::thread::scope(|scope| {
            for count in [3, 6, 9, 12] {
                let dir = dir.path();
                scope.spawn(move || load_or_generate(dir, count).unwrap());
            }
        });
        let all = load_or_generate(dir.path(), 12).unwrap();
        let skis = read_skis(&dir.path().join(SKIS_FILE)).unwrap();
        assert_eq!(skis, all.iter().map(|i| i.ski()).collect::<Vec<_>>());
        assert_eq!(count_lines(&dir.path().join(IDENTITIES_FILE)).unwrap(), 12);
    }
}
