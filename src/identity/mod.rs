//! Node identity (docs/ship.md §1): this node's certificate and key ([`Identity`]), and the
//! lenient extraction of SKI and public key from a peer's certificate
//! ([`parse_peer_certificate`]).
//!
//! SHIP (§12.1) trusts per SKI, not per certificate authority. The SKI is SHA-1 of the 65-byte
//! uncompressed P-256 public point and is carried in the SubjectKeyIdentifier extension; a
//! certificate whose SKI is not bound to its key in this way is refused, because otherwise any
//! node could claim any other node's SKI.

mod der;
mod node;
mod peer;

pub use node::{CERTIFICATE_FILE, CertificateSubject, Identity, IdentityError, KEY_FILE};
pub use peer::{CertificateError, P256_POINT_LEN, PeerCertificate, parse_peer_certificate};
