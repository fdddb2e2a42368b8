//! `consistency` and the shared vectors (`tests/data/vectors`, never edited):
//! checkpoints.json verdicts, consistency.json through the consistency code
//! path with checkpoints signed by the TEST key, log-300 as a tree-only audit,
//! and forks between two logs under one key.

mod common;

use common::{Fixture, scenario};
use ed25519_dalek::SigningKey;
use lineage_ledger::Hash;
use lineage_ledger::checkpoint::{Checkpoint, sign_checkpoint};
use lineage_ledger::note::{NoteSigner, NoteVerifier};
use lineage_verify::audit::{AuditOptions, audit};
use lineage_verify::consistency::verify_checkpoints;
use lineage_verify::{ForkKind, Silent, Verdict, Violation, trust};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/vectors");

fn vectors(file: &str) -> Value {
    let path = format!("{VECTORS}/{file}");
    serde_json::from_slice(&std::fs::read(&path).expect(&path)).expect("json")
}

/// The TEST log key of checkpoints.json: seed = SHA-256(seed_string).
fn test_log() -> (NoteSigner, String) {
    let v = vectors("checkpoints.json");
    let seed: [u8; 32] = Sha256::digest(v["key"]["seed_string"].as_str().expect("seed")).into();
    let name = v["key"]["name"].as_str().expect("name");
    let signer = NoteSigner::new(name, SigningKey::from_bytes(&seed)).expect("name");
    let vkey = v["key"]["vkey"].as_str().expect("vkey").to_owned();
    assert_eq!(
        signer.verifier().vkey(),
        vkey,
        "the seed rule of the README"
    );
    (signer, vkey)
}

fn verifier(vkey: &str) -> NoteVerifier {
    trust::log_key(vkey).expect("vkey")
}

#[test]
fn checkpoint_vectors_get_their_verdicts() {
    let v = vectors("checkpoints.json");
    let key = verifier(v["key"]["vkey"].as_str().expect("vkey"));
    assert_eq!(key.name(), v["expected_origin"]);
    let cases = v["checkpoints"].as_array().expect("checkpoints");
    assert!(cases.len() > 30);
    for case in cases {
        let name = case["name"].as_str().unwrap_or_default();
        let note = std::fs::read(format!(
            "{VECTORS}/{}",
            case["file"].as_str().unwrap_or_default()
        ))
        .expect("note file");
        assert_eq!(
            note,
            case["note"].as_str().unwrap_or_default().as_bytes(),
            "{name}"
        );
        // The same note twice, with the empty proof of a tree to itself.
        let size = case["size"].as_u64().unwrap_or(0);
        let proof = json!({"first": size, "second": size, "proof": []}).to_string();
        let r = verify_checkpoints(&note, &note, proof.as_bytes(), &key);
        let valid = case["valid"].as_bool().unwrap_or(false);
        assert_eq!(
            r.verdict() == Verdict::Verified,
            valid,
            "{name}: {}",
            r.to_text()
        );
        if valid {
            let cp = r.old.as_ref().expect("verified");
            assert_eq!(cp.size, size, "{name}");
            assert_eq!(
                cp.root.to_base64(),
                case["root"].as_str().unwrap_or_default(),
                "{name}"
            );
        } else {
            assert!(
                r.violations.iter().all(|v| v.code() == "checkpoint"),
                "{name}: {}",
                r.to_text()
            );
        }
    }
}

#[test]
fn consistency_vectors_through_the_consistency_command() {
    let (signer, vkey) = test_log();
    let key = verifier(&vkey);
    let origin = key.name().to_owned();
    let sign = |size: u64, root: &str| {
        let root = Hash::from_base64(root).expect("root");
        sign_checkpoint(
            &Checkpoint {
                origin: origin.clone(),
                size,
                root,
                extensions: vec![],
            },
            &signer,
        )
        .unwrap_or_default()
    };
    let v = vectors("consistency.json");
    let tests = v["tests"].as_array().expect("tests");
    let (mut valid, mut invalid) = (0, 0);
    for t in tests {
        let (m, n) = (
            t["size1"].as_u64().unwrap_or(0),
            t["size2"].as_u64().unwrap_or(0),
        );
        let old = sign(m, t["root1"].as_str().unwrap_or_default());
        let new = sign(n, t["root2"].as_str().unwrap_or_default());
        let proof = json!({"first": m, "second": n, "proof": t["proof"]}).to_string();
        let r = verify_checkpoints(old.as_bytes(), new.as_bytes(), proof.as_bytes(), &key);
        if t["valid"].as_bool().unwrap_or(false) {
            valid += 1;
            assert_eq!(r.verdict(), Verdict::Verified, "{t}: {}", r.to_text());
        } else {
            invalid += 1;
            assert_ne!(r.verdict(), Verdict::Verified, "{t}");
            assert!(r.old.is_some() && r.new.is_some(), "{t}: both signed");
        }
    }
    assert_eq!((valid, invalid), (419, 456));
}

#[test]
fn log_300_passes_a_tree_only_audit() {
    let dir = format!("{VECTORS}/log-300");
    let opts = AuditOptions {
        tree_only: true,
        ..AuditOptions::new(verifier(&format!("{dir}/vkey")))
    };
    let r = audit(std::path::Path::new(&dir), &opts, &mut Silent).expect("audit");
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
    assert_eq!((r.counts.entries, r.counts.hashed), (300, 300));
    // The same files with the other vectors key: the checkpoint is refused.
    let (witness, _) = {
        let v = vectors("checkpoints.json");
        (
            v["witness_key"]["vkey"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            (),
        )
    };
    let opts = AuditOptions {
        tree_only: true,
        ..AuditOptions::new(verifier(&witness))
    };
    let r = audit(std::path::Path::new(&dir), &opts, &mut Silent).expect("audit");
    assert_eq!(
        r.violations.first().map(Violation::code),
        Some("checkpoint")
    );
}

/// Two logs under the same key that agree on 300 entries, then diverge.
fn diverging() -> (Fixture, Fixture) {
    let mut a = Fixture::new();
    scenario(&mut a);
    a.entries.truncate(300);
    let mut b = a.clone();
    a.push_raw(b"a-301");
    a.push_raw(b"a-302");
    for i in 0..40 {
        b.push_raw(format!("b-{i}").as_bytes());
    }
    (a, b)
}

fn fork_kind(violations: &[Violation]) -> Option<ForkKind> {
    violations.iter().find_map(|v| match v {
        Violation::Fork { evidence, .. } => Some(evidence.kind()),
        _ => None,
    })
}

#[test]
fn diverging_logs_are_a_fork() {
    let (a, b) = diverging();
    let key = a.log.verifier();
    // Each log is consistent with itself.
    for (fx, m, n) in [(&a, 300, 302), (&b, 300, 340), (&b, 1, 340), (&b, 340, 340)] {
        let r = verify_checkpoints(
            fx.checkpoint(m).as_bytes(),
            fx.checkpoint(n).as_bytes(),
            fx.consistency_proof(m, n).to_string().as_bytes(),
            &key,
        );
        assert_eq!(r.verdict(), Verdict::Verified, "{m}->{n}: {}", r.to_text());
        assert!(r.to_text().contains(&format!(
            "the tree of size {n} extends the tree of size {m}"
        )));
    }
    // A's checkpoint at 302 and B's at 340, with B's honest proof: a fork.
    let old = a.checkpoint(302);
    let new = b.checkpoint(340);
    let r = verify_checkpoints(
        old.as_bytes(),
        new.as_bytes(),
        b.consistency_proof(302, 340).to_string().as_bytes(),
        &key,
    );
    assert_eq!(r.verdict(), Verdict::Fork, "{}", r.to_text());
    assert_eq!(fork_kind(&r.violations), Some(ForkKind::Proof));
    let text = r.to_text();
    assert!(
        text.contains(&format!("evidence: the old checkpoint\n{old}")),
        "{text}"
    );
    assert!(
        text.contains(&format!("evidence: the new checkpoint\n{new}")),
        "{text}"
    );
    assert!(text.ends_with("FORK\n"));
    let json = r.to_json();
    assert_eq!(json["exit_code"], 3);
    assert_eq!(json["fork_evidence"]["old_note"], old);

    // Same size, different roots: a fork on the signatures alone, whatever the proof.
    let r = verify_checkpoints(
        a.checkpoint(302).as_bytes(),
        b.checkpoint(302).as_bytes(),
        b"not even json",
        &key,
    );
    assert_eq!(fork_kind(&r.violations), Some(ForkKind::SameSize));
}

#[test]
fn bad_proofs_and_checkpoints_are_named() {
    let (_, b) = diverging();
    let key = b.log.verifier();
    let (old, new) = (b.checkpoint(300), b.checkpoint(340));
    let proof = b.consistency_proof(300, 340);
    let check = |old: &str, new: &str, proof: &str| {
        let r = verify_checkpoints(old.as_bytes(), new.as_bytes(), proof.as_bytes(), &key);
        (
            r.verdict(),
            r.violations.iter().map(Violation::code).collect::<Vec<_>>(),
        )
    };
    let mut flipped = proof.clone();
    let h0 = proof["proof"][0].as_str().unwrap_or_default();
    let mut bytes = Hash::from_base64(h0).expect("hash").to_bytes();
    bytes[0] ^= 1;
    flipped["proof"][0] = json!(Hash::from_bytes(bytes).to_base64());
    // A changed proof hash cannot link the signed roots.
    assert_eq!(
        check(&old, &new, &flipped.to_string()),
        (Verdict::Fork, vec!["fork"])
    );
    let mut short = proof.clone();
    short["proof"].as_array_mut().map(Vec::pop);
    assert_eq!(
        check(&old, &new, &short.to_string()),
        (Verdict::Failed, vec!["consistency_proof"])
    );
    let mut sizes = proof.clone();
    sizes["first"] = json!(299);
    assert_eq!(
        check(&old, &new, &sizes.to_string()),
        (Verdict::Failed, vec!["proof_sizes"])
    );
    let mut bad_b64 = proof.clone();
    bad_b64["proof"][0] = json!("AAAA");
    assert_eq!(
        check(&old, &new, &bad_b64.to_string()),
        (Verdict::Failed, vec!["proof_encoding"])
    );
    assert_eq!(
        check(&old, &new, "[]"),
        (Verdict::Failed, vec!["proof_json"])
    );
    assert_eq!(
        check(&new, &old, &proof.to_string()),
        (Verdict::Failed, vec!["sizes_out_of_order"])
    );
    // A changed checkpoint: its signature no longer verifies, nothing is a fork.
    let tampered = new.replacen("\n340\n", "\n341\n", 1);
    assert_eq!(
        check(&old, &tampered, &proof.to_string()),
        (Verdict::Failed, vec!["checkpoint"])
    );
    let other = NoteSigner::new(common::ORIGIN, common::key(9)).expect("name");
    let foreign = sign_checkpoint(
        &Checkpoint {
            origin: common::ORIGIN.into(),
            size: 340,
            root: b.root(340),
            extensions: vec![],
        },
        &other,
    )
    .unwrap_or_default();
    assert_eq!(
        check(&foreign, &new, &proof.to_string()),
        (Verdict::Failed, vec!["checkpoint"])
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any bytes as either checkpoint or the proof: a verdict, never a panic.
        #[test]
        fn consistency_never_panics(
            old in proptest::collection::vec(any::<u8>(), 0..300),
            proof in proptest::collection::vec(any::<u8>(), 0..300),
            which in 0..3usize,
        ) {
            let fx = Fixture::new();
            let key = fx.log.verifier();
            let good_old = fx.checkpoint(0).into_bytes();
            let good_proof = br#"{"first":0,"second":0,"proof":[]}"#.to_vec();
            let r = match which {
                0 => verify_checkpoints(&old, &good_old, &good_proof, &key),
                1 => verify_checkpoints(&good_old, &old, &good_proof, &key),
                _ => verify_checkpoints(&good_old, &good_old, &proof, &key),
            };
            let _ = (r.to_text(), r.to_json());
            prop_assert!(which == 2 || r.verdict() != Verdict::Verified);
        }
    }
}
