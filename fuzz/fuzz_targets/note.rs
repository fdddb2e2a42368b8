//! Signed notes and checkpoints: `Note::parse`, `note::open` against a fixed
//! verifier, `Checkpoint::parse` and `verify_checkpoint` give Ok or Err for
//! any bytes; what parses writes back byte for byte.
#![no_main]

use std::sync::LazyLock;

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use lineage_ledger::checkpoint::{Checkpoint, verify_checkpoint};
use lineage_ledger::note::{self, Note, NoteVerifier};

const ORIGIN: &str = "fuzz.lineage/log";

static VERIFIER: LazyLock<NoteVerifier> = LazyLock::new(|| {
    NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&[7; 32]).verifying_key())
        .expect("a valid key name")
});

fuzz_target!(|data: &[u8]| {
    let verifier = &*VERIFIER;
    if let Ok(n) = Note::parse(data) {
        assert_eq!(n.to_string().as_bytes(), data);
    }
    let _ = note::open(data, std::slice::from_ref(verifier));
    let _ = verify_checkpoint(data, verifier, ORIGIN);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = Checkpoint::parse(text) {
            assert_eq!(c.to_text(), text);
        }
        let _ = NoteVerifier::from_vkey(text);
    }
});
