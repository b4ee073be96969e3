//! The CBC suite's record decrypter (`TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256`) under fixed keys:
//! never panics, and answers exactly as RFC 5246 §6.2.3.2 says. The first input byte picks a mode:
//!
//! * 0: the rest is a record payload (IV ‖ ciphertext): it must be refused with `DecryptError`
//!   (accepting it would be a MAC forgery);
//! * 1: the rest is a fragment: the encrypter's record decrypts to it, and the record with one
//!   byte changed (position and bits from the input) is refused;
//! * 2: the rest is `padding_bytes_len ‖ fragment ‖ padding bytes`: the body `fragment ‖
//!   HMAC(fragment) ‖ padding bytes`, encrypted here, decrypts to the fragment exactly when the
//!   padding bytes are a valid TLS padding, the body is whole blocks and the fragment at most
//!   2^14 bytes; otherwise it is refused with `DecryptError`;
//! * 3: the rest is a decrypted body (any bytes), encrypted here and decrypted: refused unless it
//!   happens to carry a valid MAC (which the fuzzer cannot produce), never a panic.
#![no_main]

use aes::Aes128;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use rustls::crypto::cipher::{
    AeadKey, InboundOpaqueMessage, MessageDecrypter, OutboundChunks, OutboundPlainMessage,
    make_tls12_aad,
};
use rustls::{ContentType, Error, ProtocolVersion, SupportedCipherSuite};
use sha2::Sha256;
use ship_hub::transport::TlsSuite;

const MAC_KEY: [u8; 32] = [0x4d; 32];
const AES_KEY: [u8; 16] = [0xa5; 16];
const SEQ: u64 = 3;

fn decrypter() -> Box<dyn MessageDecrypter> {
    match TlsSuite::Aes128CbcSha256.rustls_suite() {
        SupportedCipherSuite::Tls12(suite) => {
            suite.aead_alg.decrypter(AeadKey::from(MAC_KEY), &AES_KEY)
        }
        SupportedCipherSuite::Tls13(_) => unreachable!(),
    }
}

fn open(record: &[u8]) -> Result<Vec<u8>, Error> {
    let mut buffer = record.to_vec();
    let message = InboundOpaqueMessage::new(
        ContentType::ApplicationData,
        ProtocolVersion::TLSv1_2,
        &mut buffer,
    );
    decrypter()
        .decrypt(message, SEQ)
        .map(|plain| plain.payload.to_vec())
}

fn seal(fragment: &[u8]) -> Vec<u8> {
    let SupportedCipherSuite::Tls12(suite) = TlsSuite::Aes128CbcSha256.rustls_suite() else {
        unreachable!()
    };
    let mut encrypter = suite
        .aead_alg
        .encrypter(AeadKey::from(MAC_KEY), &AES_KEY, &[]);
    let chunks = [fragment];
    let message = OutboundPlainMessage {
        typ: ContentType::ApplicationData,
        version: ProtocolVersion::TLSv1_2,
        payload: OutboundChunks::new(&chunks),
    };
    encrypter.encrypt(message, SEQ).unwrap().encode()[5..].to_vec()
}

/// IV ‖ AES-128-CBC(body), for a body of whole blocks.
fn encrypt_body(body: &[u8]) -> Vec<u8> {
    let iv = [0x11u8; 16];
    let mut out = body.to_vec();
    let len = out.len();
    cbc::Encryptor::<Aes128>::new(&AES_KEY.into(), &iv.into())
        .encrypt_padded_mut::<NoPadding>(&mut out, len)
        .unwrap();
    let mut record = iv.to_vec();
    record.extend_from_slice(&out);
    record
}

fn mac(fragment: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&MAC_KEY).unwrap();
    mac.update(&make_tls12_aad(
        SEQ,
        ContentType::ApplicationData,
        ProtocolVersion::TLSv1_2,
        fragment.len(),
    ));
    mac.update(fragment);
    mac.finalize().into_bytes().to_vec()
}

fn refused(result: Result<Vec<u8>, Error>) {
    assert!(matches!(result, Err(Error::DecryptError)), "{result:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => refused(open(rest)),
        1 => {
            let (change, fragment) = match rest.split_first_chunk::<3>() {
                Some((change, fragment)) => (*change, fragment),
                None => return,
            };
            let fragment = &fragment[..fragment.len().min(16_384)];
            let record = seal(fragment);
            assert_eq!(open(&record).unwrap(), fragment);
            let mut tampered = record.clone();
            let position = usize::from(u16::from_be_bytes([change[0], change[1]])) % record.len();
            tampered[position] ^= change[2].max(1);
            refused(open(&tampered));
        }
        2 => {
            let Some((&padding_len, rest)) = rest.split_first() else {
                return;
            };
            let padding_len = usize::from(padding_len).min(rest.len());
            let (fragment, padding) = rest.split_at(rest.len() - padding_len);
            let mut body = fragment.to_vec();
            body.extend_from_slice(&mac(fragment));
            body.extend_from_slice(padding);
            if body.len() % 16 != 0 {
                // Not whole blocks: refused on its length alone.
                let mut record = vec![0x11u8; 16];
                record.extend_from_slice(&body);
                refused(open(&record));
                return;
            }
            let valid = !padding.is_empty()
                && padding.len() <= 256
                && padding.iter().all(|&b| usize::from(b) == padding.len() - 1)
                && fragment.len() <= 16_384;
            let result = open(&encrypt_body(&body));
            if valid {
                assert_eq!(result.unwrap(), fragment);
            } else {
                // An invalid padding may still read as a valid shorter one whose MAC position
                // differs: then the MAC check fails. Either way: refused.
                refused(result);
            }
        }
        _ => {
            if rest.is_empty() || rest.len() % 16 != 0 {
                return;
            }
            let _ = open(&encrypt_body(rest));
        }
    }
});
