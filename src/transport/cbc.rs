//! `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256` (RFC 5289) as a rustls TLS 1.2 cipher suite.
//!
//! SHIP §9 makes this suite mandatory; rustls implements no CBC suite, so it is built here from
//! RustCrypto primitives (`aes`, `cbc`, `hmac`, `sha2`, `subtle`) behind rustls' public
//! [`Tls12AeadAlgorithm`] / [`MessageEncrypter`] / [`MessageDecrypter`] interface. The record
//! protection is RFC 5246 §6.2.3.2: MAC-then-encrypt with HMAC-SHA256 over
//! `seq_num ‖ type ‖ version ‖ length ‖ fragment`, PKCS-style TLS padding, AES-128-CBC with a
//! fresh random IV sent in front of every record. The PRF is the suite's SHA-256 PRF.
//!
//! # The key block
//!
//! RFC 5246 §6.3 derives `client_MAC ‖ server_MAC ‖ client_key ‖ server_key ‖ client_IV ‖
//! server_IV` (the two IVs only for implicit-nonce AEAD ciphers; TLS 1.2 CBC uses none). rustls
//! derives `(enc_key_len + fixed_iv_len) × 2 + explicit_nonce_len` bytes and cuts them as
//! `client "key" ‖ server "key" ‖ client "iv" ‖ server "iv" ‖ extra`. With the shape
//! `enc_key_len = 32` (the HMAC-SHA256 key), `fixed_iv_len = 16` (the AES-128 key) and
//! `explicit_nonce_len = 0`, rustls' cut lands exactly on RFC 5246's boundaries:
//!
//! | bytes | RFC 5246 §6.3 | what rustls passes as |
//! |---|---|---|
//! | 0..32 | client_write_MAC_key | client `key` |
//! | 32..64 | server_write_MAC_key | server `key` |
//! | 64..80 | client_write_key (AES) | client `iv` |
//! | 80..96 | server_write_key (AES) | server `iv` |
//!
//! So [`Tls12AeadAlgorithm::encrypter`]/[`Tls12AeadAlgorithm::decrypter`] receive the MAC key in
//! `key` and the AES key in `iv`, each for the right direction, and no byte of the key block is
//! split inside this module.
//!
//! # The decrypter (no padding oracle)
//!
//! Every failure — a length that is not a whole number of blocks, a record shorter than
//! IV + MAC + 1 or longer than the largest valid one, bad padding, a bad MAC, a plaintext over
//! 2^14 bytes — returns the same [`Error::DecryptError`], which rustls answers with one fatal
//! `bad_record_mac` alert. Between decrypting and answering, the work does not depend on the
//! padding's length or validity (the Lucky 13 countermeasure):
//!
//! * the padding is checked over the last `min(256, len)` bytes, always all of them, with
//!   constant-time masks;
//! * an invalid padding is treated as a padding of just the length byte (RFC 5246 §6.2.3.2,
//!   "zero-length padding"), so the MAC is still computed and compared;
//! * the HMAC is computed over the real fragment; the bytes between the fragment and the
//!   longest fragment the record could hold (padding of one byte) then go through a throwaway
//!   copy of the HMAC, and at most one dummy compression call makes up the rest: every record
//!   of a given length hashes the same number of bytes with the same number of SHA-256
//!   compression calls, whatever its padding;
//! * the received MAC, whose position depends on the padding, is read by scanning the last
//!   `32 + 256` bytes at public indices and rotating in constant time, and compared with
//!   `subtle`'s constant-time equality.
//!
//! This is not a formal proof of constant time: the primitives' own timing (AES-NI or the
//! bit-sliced software AES, the SHA-256 block function) and the compiler's output are trusted.

use aes::Aes128;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use hmac::{Hmac, Mac};
use ring::rand::{SecureRandom, SystemRandom};
use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, InboundPlainMessage, KeyBlockShape, MessageDecrypter,
    MessageEncrypter, OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload,
    Tls12AeadAlgorithm, UnsupportedOperationError, make_tls12_aad,
};
use rustls::crypto::{CipherSuiteCommon, KeyExchangeAlgorithm};
use rustls::{
    CipherSuite, ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion,
    SupportedCipherSuite, Tls12CipherSuite,
};
use sha2::Sha256;
use sha2::digest::generic_array::GenericArray;
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq, ConstantTimeGreater};

/// AES block size, also the length of the explicit IV.
pub(crate) const BLOCK_LEN: usize = 16;
/// HMAC-SHA256 output and key length.
pub(crate) const MAC_LEN: usize = 32;
/// AES-128 key length.
const AES_KEY_LEN: usize = 16;
/// Largest plaintext fragment (RFC 5246 §6.2.1).
pub(crate) const MAX_FRAGMENT_LEN: usize = 16_384;
/// Largest padding including its length byte (`padding_length` is one byte).
const MAX_PADDING: usize = 256;
/// Shortest valid record payload: the IV and one block holding MAC and padding, rounded up to
/// whole blocks (IV + MAC + 1 = 49 bytes → 64).
pub(crate) const MIN_RECORD_LEN: usize = BLOCK_LEN + (MAC_LEN + 1).div_ceil(BLOCK_LEN) * BLOCK_LEN;
/// Longest valid record payload: IV, a full fragment, the MAC and the longest padding
/// (16 + 16384 + 32 + 256 = 16688, a whole number of blocks).
pub(crate) const MAX_RECORD_LEN: usize = BLOCK_LEN + MAX_FRAGMENT_LEN + MAC_LEN + MAX_PADDING;
/// SHA-256 block length.
const SHA256_BLOCK: usize = 64;
/// Bytes MACed before the fragment: `seq_num(8) ‖ type(1) ‖ version(2) ‖ length(2)`.
const MAC_HEADER_LEN: usize = 13;
/// At most this many dummy compression calls level one record (see [`compression_calls`]).
const MAX_DUMMY_BLOCKS: usize = 1;

type HmacSha256 = Hmac<Sha256>;

/// The rustls cipher suite `TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256`, for a [`CryptoProvider`]'s
/// `cipher_suites`. PRF and transcript hash come from rustls' ring provider (SHA-256), the record
/// protection from this module.
///
/// [`CryptoProvider`]: rustls::crypto::CryptoProvider
pub(super) static TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256: SupportedCipherSuite =
    SupportedCipherSuite::Tls12(&CBC_SUITE);

/// rustls' own `TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256`: the CBC suite borrows its SHA-256
/// hash, SHA-256 PRF and ECDSA signature schemes, which are the same for both suites.
const GCM_SUITE: &Tls12CipherSuite =
    match rustls::crypto::ring::cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
        SupportedCipherSuite::Tls12(suite) => suite,
        SupportedCipherSuite::Tls13(_) => panic!("rustls' ECDHE_ECDSA AES_128_GCM is TLS 1.2"),
    };

static CBC_SUITE: Tls12CipherSuite = Tls12CipherSuite {
    common: CipherSuiteCommon {
        suite: CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
        hash_provider: GCM_SUITE.common.hash_provider,
        // The same record limit rustls sets for AES-128-GCM; rustls closes the connection
        // before it (TLS 1.2 has no key update).
        confidentiality_limit: 1 << 24,
    },
    prf_provider: GCM_SUITE.prf_provider,
    kx: KeyExchangeAlgorithm::ECDHE,
    sign: GCM_SUITE.sign,
    aead_alg: &Aes128CbcHmacSha256,
};

/// The record protection of the suite (not an AEAD, but rustls' TLS 1.2 record interface is the
/// same).
struct Aes128CbcHmacSha256;

impl Tls12AeadAlgorithm for Aes128CbcHmacSha256 {
    /// `key` is the direction's MAC key, `iv` its AES key (see the module documentation).
    fn encrypter(&self, key: AeadKey, iv: &[u8], _extra: &[u8]) -> Box<dyn MessageEncrypter> {
        let (aes, mac) = direction_keys(&key, iv);
        Box::new(CbcEncrypter {
            aes,
            mac,
            random: SystemRandom::new(),
        })
    }

    /// `key` is the direction's MAC key, `iv` its AES key (see the module documentation).
    fn decrypter(&self, key: AeadKey, iv: &[u8]) -> Box<dyn MessageDecrypter> {
        let (aes, mac) = direction_keys(&key, iv);
        Box::new(CbcDecrypter { aes, mac })
    }

    fn key_block_shape(&self) -> KeyBlockShape {
        KeyBlockShape {
            enc_key_len: MAC_LEN,
            fixed_iv_len: AES_KEY_LEN,
            explicit_nonce_len: 0,
        }
    }

    /// Key export (kTLS) has no CBC variant in rustls.
    fn extract_keys(
        &self,
        _key: AeadKey,
        _iv: &[u8],
        _explicit: &[u8],
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Err(UnsupportedOperationError)
    }
}

/// Keys one direction: rustls always passes a 32-byte `key` and a 16-byte `iv` for this shape.
fn direction_keys(mac_key: &AeadKey, aes_key: &[u8]) -> (Aes128, HmacSha256) {
    let aes = Aes128::new(GenericArray::from_slice(&aes_key[..AES_KEY_LEN]));
    // HMAC accepts a key of any length, so this cannot fail.
    let mac = <HmacSha256 as Mac>::new_from_slice(mac_key.as_ref())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of every length"));
    (aes, mac)
}

/// Protects outgoing records: MAC, pad, encrypt under a fresh random IV.
struct CbcEncrypter {
    aes: Aes128,
    mac: HmacSha256,
    random: SystemRandom,
}

impl MessageEncrypter for CbcEncrypter {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let fragment_len = msg.payload.len();
        let total = self.encrypted_payload_len(fragment_len);
        let mut iv = [0u8; BLOCK_LEN];
        self.random.fill(&mut iv).map_err(|_| Error::EncryptError)?;
        let mut payload = PrefixedPayload::with_capacity(total);
        payload.extend_from_slice(&iv);
        payload.extend_from_chunks(&msg.payload);
        let mut mac = self.mac.clone();
        mac.update(&make_tls12_aad(seq, msg.typ, msg.version, fragment_len));
        mac.update(&payload.as_ref()[BLOCK_LEN..]);
        payload.extend_from_slice(&mac.finalize().into_bytes());
        // Shortest padding: 1..=16 bytes, each holding `padding_length`.
        let padding = total - BLOCK_LEN - fragment_len - MAC_LEN;
        payload.extend_from_slice(&[(padding - 1) as u8; BLOCK_LEN][..padding]);
        let body = &mut payload.as_mut()[BLOCK_LEN..];
        let body_len = body.len();
        cbc::Encryptor::<Aes128>::inner_iv_init(self.aes.clone(), GenericArray::from_slice(&iv))
            .encrypt_padded_mut::<NoPadding>(body, body_len)
            .map_err(|_| Error::EncryptError)?;
        Ok(OutboundOpaqueMessage::new(msg.typ, msg.version, payload))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        BLOCK_LEN + (payload_len + MAC_LEN + 1).div_ceil(BLOCK_LEN) * BLOCK_LEN
    }
}

/// Opens incoming records; see the module documentation for what it does in constant time.
struct CbcDecrypter {
    aes: Aes128,
    mac: HmacSha256,
}

impl MessageDecrypter for CbcDecrypter {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        // Length checks on the public record length only.
        let record_len = msg.payload.len();
        if !record_len.is_multiple_of(BLOCK_LEN)
            || !(MIN_RECORD_LEN..=MAX_RECORD_LEN).contains(&record_len)
        {
            return Err(Error::DecryptError);
        }
        let (iv, body) = msg.payload.split_at_mut(BLOCK_LEN);
        cbc::Decryptor::<Aes128>::inner_iv_init(self.aes.clone(), GenericArray::from_slice(iv))
            .decrypt_padded_mut::<NoPadding>(body)
            .map_err(|_| Error::DecryptError)?;
        let (good, fragment_len) =
            open_in_constant_time(&self.mac, body, seq, msg.typ, msg.version);
        if !bool::from(good) {
            return Err(Error::DecryptError);
        }
        Ok(msg.into_plain_message_range(BLOCK_LEN..BLOCK_LEN + fragment_len))
    }
}

/// Checks padding and MAC of a decrypted `body` (`fragment ‖ MAC ‖ padding`, a whole number of
/// blocks, at least 48 bytes). Returns whether the record is good and the fragment's length
/// (meaningless unless good). Takes the same path and the same number of SHA-256 compression
/// calls for every body of a given length.
fn open_in_constant_time(
    mac_key: &HmacSha256,
    body: &[u8],
    seq: u64,
    typ: ContentType,
    version: ProtocolVersion,
) -> (Choice, usize) {
    let len = body.len();
    debug_assert!(len > MAC_LEN && len.is_multiple_of(BLOCK_LEN));
    let padding_byte = std::hint::black_box(body[len - 1]);
    let padding_len = u64::from(padding_byte) + 1;

    // Valid padding: room for it and the MAC, and every padding byte equal to the last one.
    let mut good = !(padding_len + MAC_LEN as u64).ct_gt(&(len as u64));
    let checked = len.min(MAX_PADDING);
    let mut mismatch = 0u8;
    for i in 0..checked {
        let in_padding = lt_mask(i as u64, padding_len);
        mismatch |= (body[len - 1 - i] ^ padding_byte) & in_padding;
    }
    good &= mismatch.ct_eq(&0);

    // Bad padding counts as no padding beyond the length byte (RFC 5246 §6.2.3.2), so a MAC is
    // computed either way.
    let longest = (len - MAC_LEN - 1) as u64;
    let claimed = longest.wrapping_sub(u64::from(padding_byte));
    let fragment_len = u64::conditional_select(&longest, &claimed, good);
    good &= !fragment_len.ct_gt(&(MAX_FRAGMENT_LEN as u64));
    let fragment_len = fragment_len as usize;

    // The expected MAC over the fragment; the rest of the `longest` bytes go through a
    // throwaway copy of the HMAC, and dummy compression calls (0 or 1) make up the count for
    // `longest`: the bytes hashed and the compression calls are the same for every padding.
    let mut mac = mac_key.clone();
    mac.update(&make_tls12_aad(seq, typ, version, fragment_len));
    mac.update(&body[..fragment_len]);
    let expected = mac.finalize().into_bytes();
    let rest = longest as usize - fragment_len;
    let mut filler = mac_key.clone();
    filler.update(&body[fragment_len..longest as usize]);
    std::hint::black_box(&filler);
    let dummy = (compression_calls(longest as usize) - compression_calls(fragment_len))
        .saturating_sub(rest / SHA256_BLOCK);
    dummy_compressions(dummy);

    // The received MAC, read at public indices only, then compared in constant time.
    let received = extract_mac(body, fragment_len);
    good &= received.ct_eq(&expected[..]);
    (good, fragment_len)
}

/// SHA-256 compression calls of HMAC's inner hash after its key block, for a fragment of
/// `fragment_len` bytes: header and fragment plus SHA-256's `0x80` byte and 8-byte length, in
/// 64-byte blocks. The outer hash costs the same for every record.
fn compression_calls(fragment_len: usize) -> usize {
    (MAC_HEADER_LEN + fragment_len + 1 + 8).div_ceil(SHA256_BLOCK)
}

/// Runs the SHA-256 block function `count` times on a scratch state that is then discarded.
fn dummy_compressions(count: usize) {
    let blocks = [GenericArray::<u8, sha2::digest::consts::U64>::default(); MAX_DUMMY_BLOCKS];
    let mut state = [0u32; 8];
    sha2::compress256(&mut state, &blocks[..count.min(MAX_DUMMY_BLOCKS)]);
    std::hint::black_box(&state);
}

/// Copies `body[start..start + 32]` without indexing by the secret `start`: every byte of the
/// region the MAC can lie in (the last `32 + 256` bytes) is read, masked, and placed at a
/// public position modulo 32; a constant-time rotation by the secret offset then lines the MAC
/// up.
fn extract_mac(body: &[u8], start: usize) -> [u8; MAC_LEN] {
    let len = body.len();
    let scan_start = len.saturating_sub(MAC_LEN + MAX_PADDING);
    let start = std::hint::black_box(start as u64);
    let end = start + MAC_LEN as u64;
    let mut rotated = [0u8; MAC_LEN];
    for (i, byte) in body.iter().enumerate().skip(scan_start) {
        let position = i as u64;
        let inside = !lt_mask(position, start) & lt_mask(position, end);
        rotated[(i - scan_start) % MAC_LEN] |= byte & inside;
    }
    // Rotate left by `offset` (< 32) in five masked steps of 1, 2, 4, 8 and 16 bytes.
    let offset = (start as usize).wrapping_sub(scan_start) % MAC_LEN;
    for bit in 0..5 {
        let step = 1usize << bit;
        let take = 0u8.wrapping_sub(((offset >> bit) & 1) as u8);
        let mut shifted = rotated;
        shifted.rotate_left(step);
        for (out, candidate) in rotated.iter_mut().zip(shifted.iter()) {
            *out = (*candidate & take) | (*out & !take);
        }
    }
    rotated
}

/// `0xff` if `a < b`, else `0`, without a branch (both below 2^63).
fn lt_mask(a: u64, b: u64) -> u8 {
    0u8.wrapping_sub((a.wrapping_sub(b) >> 63) as u8)
}

#[cfg(test)]
#[path = "cbc_tests.rs"]
mod tests;
