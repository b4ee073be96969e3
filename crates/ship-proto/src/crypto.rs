//! The crypto primitives the protocol core needs: SHA-1 for SKIs from the `sha1` crate, and
//! SHA-256, HMAC-SHA256 and random bytes from the crypto provider, `ring` or `aws-lc-rs`
//! (features of the same names; aws-lc-rs when both are on).

#[cfg(not(any(feature = "ring", feature = "aws-lc-rs")))]
compile_error!("ship-proto needs a crypto provider: enable the `ring` or the `aws-lc-rs` feature");

#[cfg(feature = "aws-lc-rs")]
use aws_lc_rs as provider;
#[cfg(all(feature = "ring", not(feature = "aws-lc-rs")))]
use ring as provider;

use provider::rand::SecureRandom as _;
use provider::{digest, hmac, rand};

/// The crypto provider compiled in: `"ring"` or `"aws-lc-rs"`.
pub const CRYPTO_PROVIDER: &str = if cfg!(feature = "aws-lc-rs") {
    "aws-lc-rs"
} else {
    "ring"
};

/// SHA-1 of `data` (the SKI of a public key; SHA-1 is what SHIP prescribes there), by the
/// `sha1` crate: the same with either provider, and the one SHA-1 the whole dependency tree
/// already carries (the WebSocket handshake's accept key uses it too).
pub(crate) fn sha1(data: &[u8]) -> [u8; 20] {
    use sha1::Digest as _;
    sha1::Sha1::digest(data).into()
}

/// SHA-256 of `data`.
pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    let hash = digest::digest(&digest::SHA256, data);
    hash.as_ref().try_into().expect("SHA-256 has 32 bytes")
}

/// HMAC-SHA256 of `message` under `key` (a key of any length).
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let key = hmac::Key::new(hmac::HMAC_SHA256, key);
    let tag = hmac::sign(&key, message);
    tag.as_ref().try_into().expect("HMAC-SHA256 has 32 bytes")
}

/// `N` bytes from the operating system's random generator.
pub(crate) fn random<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the operating system's random generator failed");
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn the_primitives_give_the_published_test_vectors() {
        // FIPS 180 "abc", RFC 4231 test case 2.
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha256(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(random::<16>(), random::<16>());
    }
}
