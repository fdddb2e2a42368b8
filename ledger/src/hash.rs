//! SHA-256 hashing with RFC 6962 / RFC 9162 §2.1.1 domain separation.
//!
//! Leaves are hashed as `SHA-256(0x00 || entry)`, interior nodes as
//! `SHA-256(0x01 || left || right)`. One [`Hash`] type carries both: proofs
//! mix leaf and node hashes freely, so separate types would only move the
//! domain-separation decision to a conversion. It is made once, here, in
//! [`leaf_hash`] and [`node_hash`], the only constructors that hash.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// Size in bytes of every hash in the tree.
pub const HASH_SIZE: usize = 32;

/// A SHA-256 value in the Merkle tree (a leaf hash, an interior node hash or a root).
///
/// The bytes are private: a hash comes from [`leaf_hash`] or [`node_hash`],
/// or from 32 bytes read off the wire or the store ([`Hash::from_bytes`],
/// [`Hash::from_slice`], [`Hash::from_base64`]); [`Hash::as_bytes`] and
/// [`Hash::to_bytes`] read them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash([u8; HASH_SIZE]);

/// Root of the empty tree: `SHA-256("")` (RFC 6962 §2.1).
pub const EMPTY_ROOT: Hash = Hash([
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55,
]);

/// The RFC 6962 leaf hash of `entry`: `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(entry);
    Hash(h.finalize().into())
}

/// The RFC 6962 interior node hash: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// Error for a hash that is not exactly 32 bytes of canonical standard base64.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 32-byte hash in canonical standard base64: {input:?}")]
pub struct HashDecodeError {
    /// The text that failed to decode (truncated to 64 characters).
    pub input: String,
}

impl Hash {
    /// The hash whose 32 bytes are `bytes` (a value read from a tile, a proof
    /// or a test vector; nothing is hashed).
    pub const fn from_bytes(bytes: [u8; HASH_SIZE]) -> Hash {
        Hash(bytes)
    }

    /// The 32 bytes.
    pub const fn as_bytes(&self) -> &[u8; HASH_SIZE] {
        &self.0
    }

    /// The 32 bytes, by value.
    pub const fn to_bytes(self) -> [u8; HASH_SIZE] {
        self.0
    }

    /// Standard base64 with padding (44 characters), as used on the wire and in checkpoints.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses canonical standard base64 (padding required, no trailing bits).
    ///
    /// # Errors
    /// [`HashDecodeError`] when the text is not base64 of exactly 32 bytes.
    pub fn from_base64(s: &str) -> Result<Hash, HashDecodeError> {
        let err = || HashDecodeError {
            input: s.chars().take(64).collect(),
        };
        let bytes = STANDARD.decode(s).map_err(|_| err())?;
        let arr: [u8; HASH_SIZE] = bytes.try_into().map_err(|_| err())?;
        Ok(Hash(arr))
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Builds a hash from a slice of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Hash> {
        bytes.try_into().ok().map(Hash)
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(Hash(Sha256::digest(b"").into()), EMPTY_ROOT);
        assert_eq!(
            EMPTY_ROOT.to_base64(),
            "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        let a = leaf_hash(b"a");
        let b = leaf_hash(b"b");
        let mut concat = vec![];
        concat.extend_from_slice(&a.0);
        concat.extend_from_slice(&b.0);
        assert_ne!(node_hash(&a, &b), leaf_hash(&concat));
        assert_ne!(node_hash(&a, &b), node_hash(&b, &a));
    }

    #[test]
    fn base64_round_trip_and_strictness() {
        let h = leaf_hash(b"0");
        assert_eq!(Hash::from_base64(&h.to_base64()), Ok(h));
        assert!(Hash::from_base64("AAAA").is_err());
        // 31 and 33 bytes, missing padding, url-safe alphabet.
        assert!(Hash::from_base64(&STANDARD.encode([0u8; 31])).is_err());
        assert!(Hash::from_base64(&STANDARD.encode([0u8; 33])).is_err());
        assert!(Hash::from_base64(h.to_base64().trim_end_matches('=')).is_err());
        // A hash whose base64 has '+' or '/', so the URL-safe form differs.
        let h = (0u32..)
            .map(|i| leaf_hash(i.to_string().as_bytes()))
            .find(|h| h.to_base64().contains(['+', '/']))
            .unwrap_or_default();
        let url_safe = h.to_base64().replace('+', "-").replace('/', "_");
        assert_ne!(url_safe, h.to_base64());
        assert!(Hash::from_base64(&url_safe).is_err());
    }
}
