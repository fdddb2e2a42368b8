//! `lineage-verify bundle` (`receipt`): receipts from the fixture log, and one
//! field or byte changed at a time.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Fixture, scenario};
use ed25519_dalek::VerifyingKey;
use lineage_ledger::Hash;
use lineage_verify::Verdict;
use lineage_verify::receipt::{
    CheckStatus, Decoded, ReceiptOptions, ReceiptReport, verify_receipt,
};
use serde_json::{Value, json};

struct Setup {
    fx: Fixture,
    runtime_keys: Vec<VerifyingKey>,
    authorities: Vec<VerifyingKey>,
    /// Index of an event with parents.
    event: u64,
}

fn setup() -> Setup {
    let mut fx = Fixture::new();
    let s = scenario(&mut fx);
    let event = s.build_1_index;
    Setup {
        runtime_keys: s.keys.iter().map(|k| k.verifying_key()).collect(),
        authorities: vec![fx.authority.verifying_key()],
        fx,
        event,
    }
}

fn verify(s: &Setup, receipt: &Value, allow_unknown_signer: bool) -> ReceiptReport {
    let key = s.fx.log.verifier();
    verify_receipt(
        receipt.to_string().as_bytes(),
        &ReceiptOptions {
            log_key: &key,
            runtime_keys: &s.runtime_keys,
            authorities: &s.authorities,
            allow_unknown_signer,
            witnesses: None,
        },
    )
}

/// (check, status word, code) of a check that did not pass.
type Problem = (&'static str, &'static str, Option<&'static str>);

/// Every check that did not pass.
fn problems(r: &ReceiptReport) -> Vec<Problem> {
    r.checks
        .iter()
        .filter_map(|c| match &c.status {
            CheckStatus::Passed(_) => None,
            CheckStatus::Failed(v) => Some((c.name, "failed", Some(v.code()))),
            CheckStatus::NotChecked(_) => Some((c.name, "not_checked", None)),
        })
        .collect()
}

#[test]
fn a_receipt_verifies_and_prints_its_event() {
    let s = setup();
    let receipt = s.fx.receipt(s.event, s.fx.size());
    let r = verify(&s, &receipt, false);
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
    assert!(problems(&r).is_empty());
    let Some(Decoded::Event(e)) = &r.decoded else {
        panic!("{:?}", r.decoded)
    };
    assert_eq!(
        (e.workload.as_str(), e.seq, e.parents.len()),
        ("build", 1, 1)
    );
    let text = r.to_text();
    for want in [
        "workload   build",
        "seq        1",
        "runtime    agent/a",
        "parents    ",
        "prev       ",
        "kind       step",
        "VERIFIED",
    ] {
        assert!(text.contains(want), "{want:?} in\n{text}");
    }
    let json = r.to_json();
    assert_eq!(json["verdict"], "verified");
    assert_eq!(json["entry"]["workload"], "build");
    assert_eq!(json["entry"]["parents"].as_array().map(Vec::len), Some(1));

    // Against an older checkpoint too, and the governance entry at index 0.
    let r = verify(&s, &s.fx.receipt(s.event, s.event + 1), false);
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
    let r = verify(&s, &s.fx.receipt(0, s.fx.size()), false);
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
    assert!(matches!(r.decoded, Some(Decoded::Governance(_))));
    assert!(r.to_text().contains("governance statement:"));
}

#[test]
fn an_unknown_signer_fails_unless_allowed() {
    let mut s = setup();
    s.runtime_keys.clear();
    let receipt = s.fx.receipt(s.event, s.fx.size());
    let r = verify(&s, &receipt, false);
    assert_eq!(
        problems(&r),
        vec![("signature", "failed", Some("signer_unknown"))]
    );
    assert!(r.to_text().contains("--runtime-key"), "{}", r.to_text());
    let r = verify(&s, &receipt, true);
    assert_eq!(r.verdict(), Verdict::Verified);
    assert_eq!(problems(&r), vec![("signature", "not_checked", None)]);
    // A governance statement's signer is an authority key.
    s.authorities.clear();
    let r = verify(&s, &s.fx.receipt(0, 1), false);
    assert_eq!(
        problems(&r),
        vec![("signature", "failed", Some("signer_unknown"))]
    );
    assert!(r.to_text().contains("--authority"));
}

fn edited(receipt: &Value, field: &str, value: Value) -> Value {
    let mut r = receipt.clone();
    r[field] = value;
    r
}

/// Flips one bit of a base64 field's decoded bytes.
fn flip_b64(text: &str, at: usize) -> String {
    let mut bytes = STANDARD.decode(text).expect("b64");
    bytes[at] ^= 1;
    STANDARD.encode(bytes)
}

#[test]
fn each_tampered_field_is_named() {
    let s = setup();
    let size = s.fx.size();
    let good = s.fx.receipt(s.event, size);
    let entry = good["entry"].as_str().unwrap_or_default().to_owned();
    let proof0 = good["inclusion_proof"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let note = good["checkpoint"].as_str().unwrap_or_default().to_owned();

    let cases: Vec<(&str, Value, Vec<Problem>)> = vec![
        (
            "format",
            edited(&good, "format", json!("lineage-bundle/v2")),
            vec![("format", "failed", Some("receipt_format"))],
        ),
        (
            "index",
            edited(&good, "index", json!(s.event + 1)),
            vec![("inclusion", "failed", Some("inclusion_proof"))],
        ),
        (
            "event_id",
            edited(&good, "event_id", json!(Hash::from_bytes([7; 32]).to_hex())),
            vec![("event_id", "failed", Some("event_id_mismatch"))],
        ),
        (
            "a proof hash",
            {
                let mut r = good.clone();
                r["inclusion_proof"][0] = json!(flip_b64(&proof0, 31));
                r
            },
            vec![("inclusion", "failed", Some("inclusion_proof"))],
        ),
        (
            "a proof hash that is not a hash",
            {
                let mut r = good.clone();
                r["inclusion_proof"][1] = json!("AAAA");
                r
            },
            vec![("inclusion", "failed", Some("proof_encoding"))],
        ),
        (
            "the entry's payload",
            edited(&good, "entry", json!(flip_b64(&entry, 120))),
            vec![
                ("inclusion", "failed", Some("inclusion_proof")),
                ("event_id", "failed", Some("event_id_mismatch")),
                ("signature", "failed", Some("bad_signature")),
                ("payload", "failed", Some("invalid_payload")),
            ],
        ),
        (
            "the entry's signature",
            edited(&good, "entry", json!(flip_b64(&entry, 50))),
            vec![
                ("inclusion", "failed", Some("inclusion_proof")),
                ("signature", "failed", Some("bad_signature")),
            ],
        ),
        (
            "the entry's version",
            edited(&good, "entry", json!(flip_b64(&entry, 0))),
            vec![
                ("entry", "failed", Some("malformed_entry")),
                ("inclusion", "failed", Some("inclusion_proof")),
                ("event_id", "not_checked", None),
                ("signature", "not_checked", None),
                ("payload", "not_checked", None),
            ],
        ),
        (
            "the checkpoint text",
            edited(
                &good,
                "checkpoint",
                json!(note.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + 1), 1)),
            ),
            vec![
                ("checkpoint", "failed", Some("checkpoint")),
                ("inclusion", "not_checked", None),
            ],
        ),
        (
            "non-canonical entry base64",
            edited(&good, "entry", json!(format!("{entry}\n"))),
            vec![
                ("entry", "failed", Some("entry_encoding")),
                ("inclusion", "not_checked", None),
                ("event_id", "not_checked", None),
                ("signature", "not_checked", None),
                ("payload", "not_checked", None),
            ],
        ),
    ];
    for (what, receipt, want) in cases {
        let r = verify(&s, &receipt, false);
        assert_eq!(r.verdict(), Verdict::Failed, "{what}");
        assert_eq!(problems(&r), want, "{what}:\n{}", r.to_text());
    }

    // Not a receipt at all, or with an unknown field.
    let key = s.fx.log.verifier();
    let opts = ReceiptOptions {
        log_key: &key,
        runtime_keys: &s.runtime_keys,
        authorities: &s.authorities,
        allow_unknown_signer: false,
        witnesses: None,
    };
    for bytes in [
        b"{".to_vec(),
        edited(&good, "extra", json!(1)).to_string().into_bytes(),
    ] {
        let r = verify_receipt(&bytes, &opts);
        assert_eq!(
            problems(&r),
            vec![("format", "failed", Some("receipt_json"))]
        );
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any bytes: a verdict, never a panic; a changed receipt never verifies.
        #[test]
        fn receipts_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let s = Fixture::new();
            let key = s.log.verifier();
            let opts = ReceiptOptions { log_key: &key, runtime_keys: &[], authorities: &[], allow_unknown_signer: true, witnesses: None };
            prop_assert_eq!(verify_receipt(&bytes, &opts).verdict(), Verdict::Failed);
        }
    }
}
