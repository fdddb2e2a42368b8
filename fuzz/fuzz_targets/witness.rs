//! The witnessing formats: `VerifierKey::parse`, `Policy::parse` (and evaluating a
//! note under a fixed policy), the tlog-witness `add-checkpoint` request and response
//! bodies (and the witness's `decide` under a fixed key and state), the 409 size body,
//! and `TlogProof::parse` give Ok or Err for any bytes; what parses writes back byte
//! for byte.
#![no_main]

use std::sync::LazyLock;

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use lineage_ledger::cosignature::{CosignerSigner, VerifierKey};
use lineage_ledger::note::NoteVerifier;
use lineage_ledger::policy::Policy;
use lineage_ledger::tlog_proof::TlogProof;
use lineage_ledger::witness_protocol::{
    AddCheckpointRequest, AddCheckpointResponse, CosignedState, decide, parse_conflict_body,
};
use lineage_ledger::{EMPTY_ROOT, leaf_hash};

const ORIGIN: &str = "fuzz.lineage/log";

static LOG: LazyLock<NoteVerifier> = LazyLock::new(|| {
    NoteVerifier::new(ORIGIN, SigningKey::from_bytes(&[7; 32]).verifying_key())
        .expect("a valid key name")
});

static POLICY: LazyLock<Policy> = LazyLock::new(|| {
    let witness = CosignerSigner::new("fuzz.lineage/witness", SigningKey::from_bytes(&[8; 32]))
        .expect("a valid key name");
    let text = format!(
        "log {}\nwitness w {}\nquorum w\n",
        LOG.vkey(),
        witness.verifier().vkey()
    );
    Policy::parse(text.as_bytes()).expect("a valid policy")
});

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = VerifierKey::parse(text) {
            assert_eq!(key.vkey(), text);
        }
    }
    if let Ok(p) = Policy::parse(data) {
        assert_eq!(Policy::parse(&p.to_bytes()).as_ref(), Ok(&p));
    }
    let _ = POLICY.evaluate(data);
    if let Ok(r) = AddCheckpointRequest::parse(data) {
        assert_eq!(r.to_bytes(), data);
        for latest in [
            None,
            Some(CosignedState {
                size: 0,
                root: EMPTY_ROOT,
            }),
            Some(CosignedState {
                size: 3,
                root: leaf_hash(b"3"),
            }),
        ] {
            let _ = decide(&r, std::slice::from_ref(&*LOG), latest).map_err(|e| e.status());
        }
    }
    if let Ok(r) = AddCheckpointResponse::parse(data) {
        assert_eq!(r.to_bytes(), data);
    }
    if let Ok(size) = parse_conflict_body(data) {
        assert_eq!(format!("{size}\n").as_bytes(), data);
    }
    if let Ok(p) = TlogProof::parse(data) {
        assert_eq!(p.to_bytes(), data);
        let _ = p.verify(&leaf_hash(b"0"), &LOG, ORIGIN);
        let _ = p.verify_with_policy(&leaf_hash(b"0"), &POLICY);
    }
});
