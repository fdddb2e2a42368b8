//! The witnessing tests' shared fixture: the vectors' log key, a few witness keys, and
//! helpers to build signed and cosigned checkpoints (tests only).

#![cfg(test)]

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::checkpoint::{Checkpoint, sign_checkpoint};
use crate::cosignature::CosignerSigner;
use crate::hash::{EMPTY_ROOT, Hash, leaf_hash};
use crate::note::{Note, NoteSignature, NoteSigner};

/// The vectors' log origin (`tests/data/vectors/checkpoints.json`).
pub(crate) const ORIGIN: &str = "example.com/tlog-vectors";

fn key(seed: &str) -> SigningKey {
    SigningKey::from_bytes(&Sha256::digest(seed.as_bytes()).into())
}

/// The vectors' log key: seed SHA-256("tlog test vectors v1").
pub(crate) fn log() -> NoteSigner {
    NoteSigner::new(ORIGIN, key("tlog test vectors v1")).expect("valid name")
}

/// Another log, `example.com/other-log`.
pub(crate) fn other_log() -> NoteSigner {
    NoteSigner::new("example.com/other-log", key("lineage test other log")).expect("valid name")
}

/// The signing key of witness `n`, for lines [`CosignerSigner`] refuses to make.
pub(crate) fn witness_key(n: u32) -> SigningKey {
    key(&format!("lineage test witness w{n}"))
}

/// Witness `n`: name `witness.example/w<n>`, seed SHA-256("lineage test witness w<n>").
pub(crate) fn witness(n: u32) -> CosignerSigner {
    CosignerSigner::new(&format!("witness.example/w{n}"), witness_key(n)).expect("valid name")
}

/// A checkpoint of the log at `size` with root `root`.
pub(crate) fn checkpoint_with_root(size: u64, root: Hash) -> Checkpoint {
    Checkpoint {
        origin: ORIGIN.into(),
        size,
        root,
        extensions: vec![],
    }
}

/// A checkpoint of the log at `size` (root: the empty tree's at 0, else a leaf hash).
pub(crate) fn checkpoint(size: u64) -> Checkpoint {
    let root = if size == 0 {
        EMPTY_ROOT
    } else {
        leaf_hash(size.to_string().as_bytes())
    };
    checkpoint_with_root(size, root)
}

/// `cp` signed by the log, then cosigned by `witnesses` at `timestamp`.
pub(crate) fn cosigned(cp: &Checkpoint, witnesses: &[u32], timestamp: u64) -> String {
    let note = sign_checkpoint(cp, &log()).expect("signs");
    let mut note = Note::parse(note.as_bytes()).expect("parses");
    for n in witnesses {
        note.signatures
            .push(witness(*n).sign(cp, timestamp).expect("cosigns"));
    }
    note.to_string()
}

/// `note` with `extra` signature lines appended.
pub(crate) fn with_lines(note: &str, extra: &[NoteSignature]) -> String {
    let mut note = Note::parse(note.as_bytes()).expect("parses");
    note.signatures.extend_from_slice(extra);
    note.to_string()
}
