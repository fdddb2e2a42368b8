//! C2SP checkpoint cosignatures, Ed25519 `cosignature/v1` (c2sp.org/tlog-cosignature),
//! and verifier keys of both signature types this crate knows.
//!
//! A cosignature is a note signature line on a checkpoint,
//! `— <cosigner name> base64(key ID || timestamp || signature)`, where
//! - the key ID is `SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]`
//!   ([`cosignature_key_id`], signature type [`COSIGNATURE_V1_TYPE`]);
//! - the timestamp is the POSIX time of signing in seconds, a big-endian `u64` at
//!   most 2^63 - 1 ([`MAX_TIMESTAMP`]);
//! - the signature is Ed25519 over [`signed_message`]: the lines `cosignature/v1`
//!   and `time <timestamp>`, then the checkpoint's note text (extension lines
//!   included, signature lines not).
//!
//! [`CosignerSigner::sign`] makes such a line, [`CosignerVerifier::verify`] checks
//! one and returns its timestamp. A cosignature says: as of that time, this is the
//! largest tree consistent with everything the cosigner saw for that origin.
//!
//! [`VerifierKey`] parses a vkey (`<name>+<hex key ID>+<base64(type || key)>`,
//! c2sp.org/signed-note "Verifier keys") of either type: `0x01`, a plain Ed25519
//! note key (a log's), or `0x04`, an Ed25519 cosigner key (a witness's).
//!
//! Known holes: ML-DSA-44 cosignatures (type `0x06`, subtree/v1), which the spec
//! recommends for new deployments, are not implemented; their vkeys are refused
//! as [`NoteError::UnsupportedKeyType`]. Nothing here reads a clock: a verifier that
//! rejects timestamps in the future (the spec allows it) compares the returned
//! timestamp with its own time.

use std::fmt;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::note::{
    self, ED25519_SIGNATURE_TYPE, NoteError, NoteSignature, NoteVerifier, VkeyParts, typed_key_id,
    typed_vkey,
};

/// Signature type identifier byte of Ed25519 `cosignature/v1` keys
/// (c2sp.org/signed-note "Signature types", c2sp.org/tlog-cosignature).
pub const COSIGNATURE_V1_TYPE: u8 = 0x04;

/// First line of every `cosignature/v1` signed message (domain separation).
pub const COSIGNATURE_V1_HEADER: &str = "cosignature/v1";

/// Largest timestamp a cosignature may carry: 2^63 - 1 (c2sp.org/tlog-cosignature).
pub const MAX_TIMESTAMP: u64 = i64::MAX as u64;

/// Bytes after the key ID in an Ed25519 cosignature: an 8-byte timestamp and a
/// 64-byte signature (the `timestamped_signature` structure).
pub const COSIGNATURE_V1_LEN: usize = 8 + 64;

fn echo(s: &str) -> String {
    s.chars().take(100).collect()
}

/// Why a cosignature cannot be made or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CosignatureError {
    /// A key name or verifier key is invalid.
    #[error("cosigner key: {0}")]
    Key(#[from] NoteError),
    /// The text to cosign is not a checkpoint.
    #[error("cosigned text: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A timestamp above [`MAX_TIMESTAMP`], or (when signing) zero, which
    /// c2sp.org/tlog-witness forbids in a witness's cosignature.
    #[error("cosignature timestamp {timestamp} is outside 1..=2^63-1")]
    TimestampOutOfRange {
        /// The timestamp.
        timestamp: u64,
    },
    /// The signature line is not by this cosigner: its name or key ID differs.
    #[error("signature by {name:?} ({key_id:08x}) is not by this cosigner")]
    NotThisCosigner {
        /// The line's key name (truncated to 100 characters).
        name: String,
        /// The line's key ID.
        key_id: u32,
    },
    /// A signature line by this cosigner whose bytes after the key ID are not a
    /// timestamp and an Ed25519 signature ([`COSIGNATURE_V1_LEN`] bytes).
    #[error(
        "cosignature by {name:?} ({key_id:08x}) has {len} bytes after its key ID, not {COSIGNATURE_V1_LEN}"
    )]
    WrongLength {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
        /// Bytes found after the key ID.
        len: usize,
    },
    /// The Ed25519 signature does not verify (strictly) over the signed message.
    #[error("cosignature by {name:?} ({key_id:08x}) at time {timestamp} does not verify")]
    InvalidSignature {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
        /// The timestamp the line claims.
        timestamp: u64,
    },
}

/// Key ID of an Ed25519 cosigner key: `SHA-256(name || 0x0A || 0x04 || public key)[:4]`,
/// big-endian.
pub fn cosignature_key_id(name: &str, key: &VerifyingKey) -> u32 {
    typed_key_id(name, COSIGNATURE_V1_TYPE, key)
}

/// The message an Ed25519 `cosignature/v1` signs: `cosignature/v1\n`, `time <timestamp>\n`
/// (decimal, no leading zeros), then `note_text` (the checkpoint's note text, ending in
/// its newline, without the blank line or any signature line).
pub fn signed_message(timestamp: u64, note_text: &str) -> Vec<u8> {
    format!("{COSIGNATURE_V1_HEADER}\ntime {timestamp}\n{note_text}").into_bytes()
}

/// A known Ed25519 cosigner key (type `0x04`): a cosigner name, its key ID and public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignerVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl CosignerVerifier {
    /// A verifier for `key` under `name`; the key ID is computed from both.
    ///
    /// # Errors
    /// [`NoteError::InvalidKeyName`] for an empty name or one with spaces or `+`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<CosignerVerifier, NoteError> {
        if !note::is_valid_key_name(name) {
            return Err(NoteError::InvalidKeyName { name: echo(name) });
        }
        Ok(CosignerVerifier {
            name: name.to_owned(),
            key_id: cosignature_key_id(name, &key),
            key,
        })
    }

    /// Parses a cosigner vkey `<name>+<key ID as 8 lowercase hex>+<base64(0x04 || 32-byte key)>`.
    ///
    /// # Errors
    /// As [`VerifierKey::parse`], and [`NoteError::UnsupportedKeyType`] for a key of
    /// any type other than `0x04`.
    pub fn from_vkey(vkey: &str) -> Result<CosignerVerifier, NoteError> {
        match VerifierKey::parse(vkey)? {
            VerifierKey::Cosigner(v) => Ok(v),
            VerifierKey::Note(_) => Err(NoteError::UnsupportedKeyType {
                type_byte: Some(ED25519_SIGNATURE_TYPE),
                len: 32,
            }),
        }
    }

    /// The verifier key string [`CosignerVerifier::from_vkey`] parses.
    pub fn vkey(&self) -> String {
        typed_vkey(&self.name, self.key_id, COSIGNATURE_V1_TYPE, &self.key)
    }

    /// The cosigner name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    /// Whether `signature` names this cosigner: same key name and key ID. Only such lines
    /// are this cosigner's to verify; the spec says to ignore the others.
    pub fn is_signer_of(&self, signature: &NoteSignature) -> bool {
        signature.name == self.name && signature.key_id == self.key_id
    }

    /// Verifies the cosignature line `signature` over `note_text` (the checkpoint's note
    /// text) and returns its timestamp.
    ///
    /// The Ed25519 check is [`VerifyingKey::verify_strict`], as for log signatures.
    ///
    /// # Errors
    /// [`CosignatureError::NotThisCosigner`] when the line's name or key ID is not this
    /// key's; [`CosignatureError::WrongLength`] when it is not a timestamp and a
    /// 64-byte signature; [`CosignatureError::TimestampOutOfRange`] above
    /// [`MAX_TIMESTAMP`]; [`CosignatureError::InvalidSignature`] when it does not verify.
    pub fn verify(
        &self,
        note_text: &str,
        signature: &NoteSignature,
    ) -> Result<u64, CosignatureError> {
        if !self.is_signer_of(signature) {
            return Err(CosignatureError::NotThisCosigner {
                name: echo(&signature.name),
                key_id: signature.key_id,
            });
        }
        let wrong_length = || CosignatureError::WrongLength {
            name: self.name.clone(),
            key_id: self.key_id,
            len: signature.signature.len(),
        };
        let bytes: &[u8; COSIGNATURE_V1_LEN] = signature
            .signature
            .as_slice()
            .try_into()
            .map_err(|_| wrong_length())?;
        let (timestamp, sig) = bytes.split_at(8);
        let timestamp = u64::from_be_bytes(timestamp.try_into().map_err(|_| wrong_length())?);
        if timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampOutOfRange { timestamp });
        }
        let sig = Signature::from_slice(sig).map_err(|_| wrong_length())?;
        self.key
            .verify_strict(&signed_message(timestamp, note_text), &sig)
            .map_err(|_| CosignatureError::InvalidSignature {
                name: self.name.clone(),
                key_id: self.key_id,
                timestamp,
            })?;
        Ok(timestamp)
    }
}

/// An Ed25519 cosigner key that signs (a witness's key): a cosigner name and a signing key.
///
/// Its `Debug` shows the public half only.
#[derive(Clone)]
pub struct CosignerSigner {
    verifier: CosignerVerifier,
    key: SigningKey,
}

impl fmt::Debug for CosignerSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CosignerSigner")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl CosignerSigner {
    /// A signer for `key` under `name`.
    ///
    /// The spec's Ed25519 message does not commit to the name, so one key must serve
    /// one cosigner name only; that is the caller's to keep.
    ///
    /// # Errors
    /// [`NoteError::InvalidKeyName`] for an empty name or one with spaces or `+`.
    pub fn new(name: &str, key: SigningKey) -> Result<CosignerSigner, NoteError> {
        Ok(CosignerSigner {
            verifier: CosignerVerifier::new(name, key.verifying_key())?,
            key,
        })
    }

    /// The cosigner name.
    pub fn name(&self) -> &str {
        self.verifier.name()
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.verifier.key_id()
    }

    /// The matching verifier.
    pub fn verifier(&self) -> CosignerVerifier {
        self.verifier.clone()
    }

    /// The cosignature line this key makes over `checkpoint` at `timestamp` (POSIX
    /// seconds): key ID, the timestamp big-endian, and the Ed25519 signature of
    /// [`signed_message`] over the checkpoint's text (deterministic, RFC 8032).
    ///
    /// # Errors
    /// [`CosignatureError::TimestampOutOfRange`] for 0 (a witness must not omit the
    /// time, c2sp.org/tlog-witness) or above [`MAX_TIMESTAMP`];
    /// [`CosignatureError::Checkpoint`] when the checkpoint's text would not parse
    /// (so only checkpoints a verifier can read are cosigned).
    pub fn sign(
        &self,
        checkpoint: &Checkpoint,
        timestamp: u64,
    ) -> Result<NoteSignature, CosignatureError> {
        if timestamp == 0 || timestamp > MAX_TIMESTAMP {
            return Err(CosignatureError::TimestampOutOfRange { timestamp });
        }
        let text = checkpoint.to_text();
        Checkpoint::parse(&text)?;
        let sig = self.key.sign(&signed_message(timestamp, &text));
        let mut bytes = Vec::with_capacity(COSIGNATURE_V1_LEN);
        bytes.extend_from_slice(&timestamp.to_be_bytes());
        bytes.extend_from_slice(&sig.to_bytes());
        Ok(NoteSignature {
            name: self.verifier.name.clone(),
            key_id: self.verifier.key_id,
            signature: bytes,
        })
    }
}

/// A parsed verifier key (vkey) of a type this crate verifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerifierKey {
    /// Type `0x01`: an Ed25519 note key, as logs sign checkpoints with.
    Note(NoteVerifier),
    /// Type `0x04`: an Ed25519 `cosignature/v1` key, as witnesses cosign with.
    Cosigner(CosignerVerifier),
}

impl VerifierKey {
    /// Parses `<name>+<key ID as 8 lowercase hex>+<base64(type || public key)>`
    /// (c2sp.org/signed-note "Verifier keys") for type `0x01` or `0x04` with a 32-byte
    /// Ed25519 key; the key ID must be the one the name, type and key hash to.
    ///
    /// # Errors
    /// [`NoteError::MalformedVerifierKey`] when the shape, hex or base64 is wrong;
    /// [`NoteError::InvalidKeyName`]; [`NoteError::UnsupportedKeyType`] for another
    /// type byte or a key that is not 32 bytes; [`NoteError::InvalidPublicKey`];
    /// [`NoteError::KeyIdMismatch`].
    pub fn parse(vkey: &str) -> Result<VerifierKey, NoteError> {
        let parts = VkeyParts::split(vkey)?;
        if parts.type_byte() != Some(COSIGNATURE_V1_TYPE) {
            return NoteVerifier::from_vkey(vkey).map(VerifierKey::Note);
        }
        let verifier = CosignerVerifier::new(parts.name, parts.ed25519_key(COSIGNATURE_V1_TYPE)?)?;
        parts.check_key_id(verifier.key_id)?;
        Ok(VerifierKey::Cosigner(verifier))
    }

    /// The vkey string [`VerifierKey::parse`] reads.
    pub fn vkey(&self) -> String {
        match self {
            VerifierKey::Note(v) => v.vkey(),
            VerifierKey::Cosigner(v) => v.vkey(),
        }
    }

    /// The key name.
    pub fn name(&self) -> &str {
        match self {
            VerifierKey::Note(v) => v.name(),
            VerifierKey::Cosigner(v) => v.name(),
        }
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        match self {
            VerifierKey::Note(v) => v.key_id(),
            VerifierKey::Cosigner(v) => v.key_id(),
        }
    }

    /// The signature type byte: [`ED25519_SIGNATURE_TYPE`] or [`COSIGNATURE_V1_TYPE`].
    pub fn signature_type(&self) -> u8 {
        match self {
            VerifierKey::Note(_) => ED25519_SIGNATURE_TYPE,
            VerifierKey::Cosigner(_) => COSIGNATURE_V1_TYPE,
        }
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        match self {
            VerifierKey::Note(v) => v.public_key(),
            VerifierKey::Cosigner(v) => v.public_key(),
        }
    }
}

impl fmt::Display for VerifierKey {
    /// The vkey string.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.vkey())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::{EMPTY_ROOT, leaf_hash};
    use crate::note::{Note, NoteSigner};
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn seed(s: &str) -> SigningKey {
        SigningKey::from_bytes(&Sha256::digest(s.as_bytes()).into())
    }

    fn witness() -> CosignerSigner {
        CosignerSigner::new("witness.example/w1", seed("lineage test witness w1"))
            .expect("valid name")
    }

    fn checkpoint(size: u64) -> Checkpoint {
        Checkpoint {
            origin: "example.com/tlog-vectors".into(),
            size,
            root: if size == 0 {
                EMPTY_ROOT
            } else {
                leaf_hash(b"0")
            },
            extensions: vec![],
        }
    }

    const T: u64 = 1_679_315_147;

    #[test]
    fn signed_message_is_the_spec_layout() {
        let text =
            "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
        assert_eq!(
            signed_message(T, text),
            format!("cosignature/v1\ntime 1679315147\n{text}").into_bytes()
        );
        assert_eq!(signed_message(0, "x\n"), b"cosignature/v1\ntime 0\nx\n");
    }

    #[test]
    fn key_id_uses_type_0x04() {
        let w = witness();
        let key = w.verifier().public_key().to_owned();
        let mut h = Sha256::new();
        h.update(b"witness.example/w1\n\x04");
        h.update(key.as_bytes());
        let want = u32::from_be_bytes(h.finalize()[..4].try_into().expect("4 bytes"));
        assert_eq!(w.key_id(), want);
        assert_ne!(w.key_id(), note::ed25519_key_id(w.name(), &key));
    }

    #[test]
    fn sign_then_verify_returns_the_timestamp() {
        let w = witness();
        let cp = checkpoint(1);
        let sig = w.sign(&cp, T).expect("signs");
        assert_eq!(sig.name, "witness.example/w1");
        assert_eq!(sig.key_id, w.key_id());
        assert_eq!(sig.signature.len(), COSIGNATURE_V1_LEN);
        assert_eq!(&sig.signature[..8], &T.to_be_bytes());
        assert_eq!(w.verifier().verify(&cp.to_text(), &sig), Ok(T));
        // The line round-trips through the note grammar.
        assert_eq!(
            NoteSignature::parse_line(&sig.to_string()),
            Some(sig.clone())
        );
        // Deterministic (RFC 8032): the same inputs give the same line.
        assert_eq!(w.sign(&cp, T), Ok(sig));
        assert_eq!(
            w.sign(&checkpoint(0), MAX_TIMESTAMP)
                .and_then(|s| w.verifier().verify(&checkpoint(0).to_text(), &s)),
            Ok(MAX_TIMESTAMP)
        );
    }

    #[test]
    fn sign_refuses_bad_timestamps_and_checkpoints() {
        let w = witness();
        for timestamp in [0, MAX_TIMESTAMP + 1, u64::MAX] {
            assert_eq!(
                w.sign(&checkpoint(1), timestamp),
                Err(CosignatureError::TimestampOutOfRange { timestamp })
            );
        }
        let bad = Checkpoint {
            origin: String::new(),
            ..checkpoint(1)
        };
        assert_eq!(
            w.sign(&bad, T),
            Err(CosignatureError::Checkpoint(CheckpointError::EmptyOrigin))
        );
        let bad_root = Checkpoint {
            root: leaf_hash(b"x"),
            ..checkpoint(0)
        };
        assert!(matches!(
            w.sign(&bad_root, T),
            Err(CosignatureError::Checkpoint(
                CheckpointError::EmptyTreeRoot { .. }
            ))
        ));
    }

    /// Re-signs `sig`'s message with its timestamp changed: a well-formed line whose
    /// bytes the key really signed, for a different time.
    fn with_timestamp(w: &CosignerSigner, text: &str, timestamp: u64) -> NoteSignature {
        let mut bytes = timestamp.to_be_bytes().to_vec();
        bytes.extend_from_slice(&w.key.sign(&signed_message(timestamp, text)).to_bytes());
        NoteSignature {
            name: w.name().into(),
            key_id: w.key_id(),
            signature: bytes,
        }
    }

    #[test]
    fn verify_rejects_every_kind_of_bad_line() {
        let w = witness();
        let v = w.verifier();
        let text = checkpoint(1).to_text();
        let good = w.sign(&checkpoint(1), T).expect("signs");
        let invalid = |timestamp| CosignatureError::InvalidSignature {
            name: w.name().into(),
            key_id: w.key_id(),
            timestamp,
        };

        let mut other_name = good.clone();
        other_name.name = "witness.example/w2".into();
        assert_eq!(
            v.verify(&text, &other_name),
            Err(CosignatureError::NotThisCosigner {
                name: "witness.example/w2".into(),
                key_id: w.key_id()
            })
        );
        let mut other_id = good.clone();
        other_id.key_id ^= 1;
        assert!(!v.is_signer_of(&other_id));
        assert!(matches!(
            v.verify(&text, &other_id),
            Err(CosignatureError::NotThisCosigner { .. })
        ));

        for len in [0, 8, 64, 71, 73] {
            let mut sig = good.clone();
            sig.signature.resize(len, 0);
            assert_eq!(
                v.verify(&text, &sig),
                Err(CosignatureError::WrongLength {
                    name: w.name().into(),
                    key_id: w.key_id(),
                    len
                })
            );
        }

        // A timestamp above 2^63 - 1 is refused even when the key signed it.
        let over = with_timestamp(&w, &text, MAX_TIMESTAMP + 1);
        assert_eq!(
            v.verify(&text, &over),
            Err(CosignatureError::TimestampOutOfRange {
                timestamp: MAX_TIMESTAMP + 1
            })
        );
        // Timestamp 0 verifies here; refusing it in a witness's answer is the protocol's.
        assert_eq!(v.verify(&text, &with_timestamp(&w, &text, 0)), Ok(0));

        // The timestamp is signed: change it and the signature fails.
        let mut moved = good.clone();
        moved.signature[7] ^= 1;
        assert_eq!(v.verify(&text, &moved), Err(invalid(T ^ 1)));
        let mut flipped = good.clone();
        flipped.signature[40] ^= 0x10;
        assert_eq!(v.verify(&text, &flipped), Err(invalid(T)));
        // Another text, or the plain note message without the header, fails.
        assert_eq!(v.verify(&checkpoint(0).to_text(), &good), Err(invalid(T)));
    }

    #[test]
    fn cosignatures_and_note_signatures_are_domain_separated() {
        // The same Ed25519 key as a 0x01 note key and as a 0x04 cosigner key: different
        // key IDs, and neither signature verifies as the other.
        let key = seed("lineage test witness w1");
        let note_signer = NoteSigner::new("witness.example/w1", key).expect("name");
        let w = witness();
        let text = checkpoint(1).to_text();
        assert_ne!(note_signer.key_id(), w.key_id());
        let plain = note_signer.signature(&text).expect("signs");
        let mut as_cosig = plain.clone();
        as_cosig.key_id = w.key_id();
        assert!(w.verifier().verify(&text, &as_cosig).is_err());
        let cosig = w.sign(&checkpoint(1), T).expect("signs");
        let note = Note {
            text: text.clone(),
            signatures: vec![NoteSignature {
                key_id: note_signer.key_id(),
                signature: cosig.signature[8..].to_vec(),
                ..cosig
            }],
        }
        .to_string();
        assert_eq!(
            note::open(note.as_bytes(), &[note_signer.verifier()]).map(|(_, v)| v),
            Err(NoteError::InvalidSignature {
                name: note_signer.name().into(),
                key_id: note_signer.key_id()
            })
        );
    }

    #[test]
    fn vkeys_of_both_types_round_trip() {
        let w = witness().verifier();
        let vkey = w.vkey();
        assert!(vkey.starts_with(&format!("witness.example/w1+{:08x}+B", w.key_id())));
        assert_eq!(CosignerVerifier::from_vkey(&vkey), Ok(w.clone()));
        let parsed = VerifierKey::parse(&vkey).expect("parses");
        assert_eq!(parsed, VerifierKey::Cosigner(w.clone()));
        assert_eq!(parsed.signature_type(), COSIGNATURE_V1_TYPE);
        assert_eq!((parsed.name(), parsed.key_id()), (w.name(), w.key_id()));
        assert_eq!(parsed.public_key(), w.public_key());
        assert_eq!(parsed.to_string(), vkey);

        let log = NoteSigner::new("example.com/log", seed("log")).expect("name");
        let log_vkey = log.verifier().vkey();
        let parsed = VerifierKey::parse(&log_vkey).expect("parses");
        assert_eq!(parsed, VerifierKey::Note(log.verifier()));
        assert_eq!(parsed.signature_type(), ED25519_SIGNATURE_TYPE);
        assert_eq!(parsed.vkey(), log_vkey);
        assert_eq!(
            CosignerVerifier::from_vkey(&log_vkey),
            Err(NoteError::UnsupportedKeyType {
                type_byte: Some(1),
                len: 32
            })
        );
    }

    #[test]
    fn vkey_errors() {
        let w = witness().verifier();
        let key = w.public_key().as_bytes();
        let with = |name: &str, id: u32, material: &[u8]| {
            format!("{name}+{id:08x}+{}", STANDARD.encode(material))
        };
        let mut material = vec![COSIGNATURE_V1_TYPE];
        material.extend_from_slice(key);
        // The key ID of the same name and key as a 0x01 key is not the 0x04 key's.
        let note_id = note::ed25519_key_id(w.name(), w.public_key());
        assert_eq!(
            VerifierKey::parse(&with(w.name(), note_id, &material)),
            Err(NoteError::KeyIdMismatch {
                name: w.name().into(),
                claimed: note_id,
                computed: w.key_id()
            })
        );
        assert_eq!(
            VerifierKey::parse(&with(w.name(), w.key_id(), &material[..32])),
            Err(NoteError::UnsupportedKeyType {
                type_byte: Some(4),
                len: 31
            })
        );
        let mut mldsa = vec![0x06];
        mldsa.resize(1313, 7);
        assert_eq!(
            VerifierKey::parse(&with("w", 0, &mldsa)),
            Err(NoteError::UnsupportedKeyType {
                type_byte: Some(6),
                len: 1312
            })
        );
        // A y coordinate with no point on the curve (2 is not a valid y for Ed25519).
        let mut not_a_point = vec![COSIGNATURE_V1_TYPE, 2];
        not_a_point.resize(33, 0);
        assert!(VerifyingKey::from_bytes(&not_a_point[1..].try_into().expect("32")).is_err());
        assert_eq!(
            VerifierKey::parse(&with("w", 0, &not_a_point)),
            Err(NoteError::InvalidPublicKey { name: "w".into() })
        );
        assert_eq!(
            VerifierKey::parse(&with("a b", w.key_id(), &material)),
            Err(NoteError::InvalidKeyName { name: "a b".into() })
        );
        for bad in ["", "w", "w+00000000", "w+0000000+BA==", "w+00000000+B"] {
            assert_eq!(
                VerifierKey::parse(bad),
                Err(NoteError::MalformedVerifierKey { vkey: bad.into() }),
                "{bad}"
            );
        }
        assert_eq!(
            CosignerVerifier::new("", *w.public_key()),
            Err(NoteError::InvalidKeyName {
                name: String::new()
            })
        );
    }

    #[test]
    fn debug_does_not_print_the_secret_key() {
        let secret: [u8; 32] = Sha256::digest(b"lineage test witness w1").into();
        let debug = format!("{:?}", witness());
        assert!(debug.contains("witness.example/w1"), "{debug}");
        assert!(!debug.contains(&hex::encode(secret)), "{debug}");
        assert!(
            !debug.contains(format!("{:?}", &secret[..8]).trim_end_matches(']')),
            "{debug}"
        );
    }

    fn any_checkpoint() -> impl Strategy<Value = Checkpoint> {
        (
            "[^\\x00-\\x1f]{1,16}",
            1..u64::MAX,
            any::<[u8; 32]>(),
            proptest::collection::vec("[^\\x00-\\x1f]{1,8}", 0..2),
        )
            .prop_map(|(origin, size, root, extensions)| Checkpoint {
                origin,
                size,
                root: crate::hash::Hash::from_bytes(root),
                extensions,
            })
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(cp in any_checkpoint(), timestamp in 1..=MAX_TIMESTAMP) {
            let w = witness();
            let sig = w.sign(&cp, timestamp);
            prop_assert!(sig.is_ok());
            let sig = sig.unwrap_or_else(|_| NoteSignature { name: String::new(), key_id: 0, signature: vec![] });
            prop_assert_eq!(w.verifier().verify(&cp.to_text(), &sig), Ok(timestamp));
        }

        #[test]
        fn any_changed_bit_is_rejected(at in 0..COSIGNATURE_V1_LEN, bit in 0..8u8) {
            let w = witness();
            let cp = checkpoint(1);
            let mut sig = w.sign(&cp, T).unwrap_or_else(|_| NoteSignature { name: String::new(), key_id: 0, signature: vec![0; COSIGNATURE_V1_LEN] });
            sig.signature[at] ^= 1 << bit;
            prop_assert!(w.verifier().verify(&cp.to_text(), &sig).is_err());
        }

        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = VerifierKey::parse(&s);
        }

        #[test]
        fn parse_is_canonical_on_near_keys(s in "[a-z]{0,3}\\+[0-9a-f]{0,9}\\+(B[A-P]|A[Q-Z]|B[g-v])[A-Za-z0-9+/=]{0,44}") {
            if let Ok(key) = VerifierKey::parse(&s) {
                prop_assert_eq!(key.vkey(), s);
            }
        }
    }
}
