//! `--policy` and `--max-age` through the library: receipts (bundle and
//! tlog-proof forms), consistency and audit held to a C2SP tlog-policy quorum
//! of cosignatures made here with `CosignerSigner`.

mod common;

use common::{Fixture, cosign, policy_text, scenario, witness};
use ed25519_dalek::VerifyingKey;
use lineage_ledger::cosignature::CosignerSigner;
use lineage_ledger::note::Note;
use lineage_ledger::policy::Policy;
use lineage_verify::audit::{AuditOptions, audit};
use lineage_verify::consistency::verify_witnessed_checkpoints;
use lineage_verify::receipt::{CheckStatus, ReceiptOptions, ReceiptReport, verify_receipt};
use lineage_verify::witnesses::{Dropped, FUTURE_SKEW_SECS, Freshness, WitnessPolicy};
use lineage_verify::{Silent, Verdict};

/// The time the tests' cosignatures are made around (POSIX seconds).
const T: u64 = 1_790_000_600;

struct Setup {
    fx: Fixture,
    runtime_keys: Vec<VerifyingKey>,
    index: u64,
    w: [CosignerSigner; 3],
}

fn setup() -> Setup {
    let mut fx = Fixture::new();
    let s = scenario(&mut fx);
    Setup {
        runtime_keys: s.keys.iter().map(|k| k.verifying_key()).collect(),
        index: s.build_1_index,
        fx,
        w: [witness(1), witness(2), witness(3)],
    }
}

impl Setup {
    /// 2-of-3 over w1, w2, w3, with the log's line.
    fn two_of_three(&self) -> Policy {
        let [a, b, c] = &self.w;
        let text = policy_text(
            Some(&self.fx.vkey()),
            &[a, b, c],
            "group g 2 w1 w2 w3\nquorum g\n",
        );
        Policy::parse(text.as_bytes()).expect("policy")
    }

    /// The checkpoint of the whole log, cosigned as given.
    fn note(&self, by: &[(&CosignerSigner, u64)]) -> String {
        cosign(&self.fx.checkpoint(self.fx.size()), by)
    }

    fn bundle(&self, note: &str) -> Vec<u8> {
        let mut r = self.fx.receipt(self.index, self.fx.size());
        r["checkpoint"] = note.into();
        r.to_string().into_bytes()
    }

    fn tlog_proof(&self, note: &str) -> Vec<u8> {
        self.fx
            .tlog_proof(self.index, self.fx.size(), note)
            .into_bytes()
    }

    fn verify(&self, bytes: &[u8], policy: Option<&WitnessPolicy>) -> ReceiptReport {
        let key = self.fx.log.verifier();
        verify_receipt(
            bytes,
            &ReceiptOptions {
                log_key: &key,
                runtime_keys: &self.runtime_keys,
                authorities: &[],
                allow_unknown_signer: false,
                witnesses: policy,
            },
        )
    }
}

fn policy(p: Policy, freshness: Option<Freshness>) -> WitnessPolicy {
    WitnessPolicy {
        policy: p,
        freshness,
    }
}

/// (check, status, code) of a check that did not pass.
type Problem<'a> = (&'a str, &'a str, Option<&'a str>);

/// Every check that did not pass.
fn problems(r: &ReceiptReport) -> Vec<Problem<'static>> {
    r.checks
        .iter()
        .filter_map(|c| match &c.status {
            CheckStatus::Passed(_) => None,
            CheckStatus::Failed(v) => Some((c.name, "failed", Some(v.code()))),
            CheckStatus::NotChecked(_) => Some((c.name, "not_checked", None)),
        })
        .collect()
}

fn message(r: &ReceiptReport, check: &str) -> String {
    r.checks
        .iter()
        .filter(|c| c.name == check)
        .map(|c| match &c.status {
            CheckStatus::Passed(m) | CheckStatus::NotChecked(m) => m.clone(),
            CheckStatus::Failed(v) => v.to_string(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// (name, timestamp, counted) of every policy witness.
fn signers(r: &ReceiptReport) -> Vec<(String, Option<u64>, bool)> {
    r.witnesses
        .as_ref()
        .map(|w| {
            w.witnesses
                .iter()
                .map(|l| (l.name.clone(), l.timestamp, l.counted()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_met_quorum_verifies_and_reports_who_signed_when() {
    let s = setup();
    let [a, b, c] = &s.w;
    let wp = policy(s.two_of_three(), None);
    let note = s.note(&[(a, T), (b, T + 1), (c, T + 2)]);
    for bytes in [s.bundle(&note), s.tlog_proof(&note)] {
        let r = s.verify(&bytes, Some(&wp));
        assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
        assert_eq!(
            signers(&r),
            [
                ("w1".into(), Some(T), true),
                ("w2".into(), Some(T + 1), true),
                ("w3".into(), Some(T + 2), true)
            ]
        );
        assert_eq!(
            message(&r, "witnesses"),
            "quorum g met, cosigned by w1, w2, w3"
        );
        let text = r.to_text();
        assert!(
            text.contains("witnesses (policy quorum g):\n  w1           witness.test/w1 (")
                && text.contains("signed 2026-09-21T14:23:20Z\n"),
            "{text}"
        );
        let j = r.to_json();
        assert_eq!(j["witnesses"]["met"], true);
        assert_eq!(j["witnesses"]["witnesses"][1]["name"], "w2");
        assert_eq!(j["witnesses"]["witnesses"][1]["timestamp"], T + 1);
        assert_eq!(
            j["witnesses"]["witnesses"][1]["time"],
            "2026-09-21T14:23:21Z"
        );
    }
    // Without --policy the same receipt has no witnesses check at all.
    let r = s.verify(&s.bundle(&note), None);
    assert_eq!(r.verdict(), Verdict::Verified);
    assert!(r.witnesses.is_none() && r.checks.iter().all(|c| c.name != "witnesses"));
}

#[test]
fn two_of_three_with_one_missing_verifies_and_one_of_three_names_the_group() {
    let s = setup();
    let [a, _, c] = &s.w;
    let wp = policy(s.two_of_three(), None);
    let r = s.verify(&s.bundle(&s.note(&[(a, T), (c, T)])), Some(&wp));
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
    assert_eq!(
        signers(&r),
        [
            ("w1".into(), Some(T), true),
            ("w2".into(), None, false),
            ("w3".into(), Some(T), true)
        ]
    );
    assert!(r.to_text().contains("not signed"), "{}", r.to_text());

    let r = s.verify(&s.bundle(&s.note(&[(c, T)])), Some(&wp));
    assert_eq!(r.verdict(), Verdict::Failed);
    assert_eq!(
        problems(&r),
        [("witnesses", "failed", Some("quorum_unmet"))]
    );
    assert_eq!(
        message(&r, "witnesses"),
        "checkpoint: quorum g is not met: g has 1 of 2"
    );
    let j = r.to_json();
    assert_eq!(j["witnesses"]["met"], false);
    assert_eq!(
        j["witnesses"]["unmet"],
        serde_json::json!([{"group": "g", "witnessed": 1, "required": 2}])
    );
    // The entry's own checks still ran.
    assert!(r.decoded.is_some());
}

#[test]
fn nested_groups_name_every_unmet_group() {
    let s = setup();
    let [a, b, c] = &s.w;
    let text = policy_text(
        Some(&s.fx.vkey()),
        &[a, b, c],
        "group eu all w1 w2\ngroup us any w3\ngroup both all eu us\nquorum both\n",
    );
    let wp = policy(Policy::parse(text.as_bytes()).expect("policy"), None);
    let r = s.verify(&s.bundle(&s.note(&[(a, T), (c, T)])), Some(&wp));
    assert_eq!(
        message(&r, "witnesses"),
        "checkpoint: quorum both is not met: eu has 1 of 2, both has 1 of 2"
    );
    let r = s.verify(&s.bundle(&s.note(&[(a, T), (b, T), (c, T)])), Some(&wp));
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
}

#[test]
fn a_bad_cosignature_by_a_known_witness_rejects_the_note() {
    let s = setup();
    let [a, b, c] = &s.w;
    let wp = policy(s.two_of_three(), None);
    let mut note = Note::parse(s.note(&[(a, T), (b, T), (c, T)]).as_bytes()).expect("note");
    // The log's line is first; flip a byte of w2's signature (after key ID and time).
    note.signatures[2].signature[20] ^= 1;
    let note = note.to_string();
    for bytes in [s.bundle(&note), s.tlog_proof(&note)] {
        let r = s.verify(&bytes, Some(&wp));
        assert_eq!(r.verdict(), Verdict::Failed, "{}", r.to_text());
        assert_eq!(
            problems(&r),
            [("witnesses", "failed", Some("bad_cosignature"))]
        );
        assert!(
            message(&r, "witnesses").starts_with("checkpoint: cosignature by witness w2: "),
            "{}",
            message(&r, "witnesses")
        );
    }
    // Without the policy nobody looks at that line.
    assert_eq!(
        s.verify(&s.bundle(&note), None).verdict(),
        Verdict::Verified
    );
}

#[test]
fn unknown_signature_lines_are_ignored() {
    let s = setup();
    let [a, b, _] = &s.w;
    let stranger = witness(9);
    let wp = policy(s.two_of_three(), None);
    // A stranger's valid line, and a stranger's broken line, next to a met quorum.
    let mut note = Note::parse(s.note(&[(a, T), (&stranger, T), (b, T)]).as_bytes()).expect("note");
    let mut broken = witness(8)
        .sign(
            &lineage_ledger::checkpoint::Checkpoint::parse(&note.text).expect("checkpoint"),
            T,
        )
        .expect("sign");
    broken.signature[30] ^= 1;
    note.signatures.push(broken);
    let r = s.verify(&s.bundle(&note.to_string()), Some(&wp));
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
    assert_eq!(r.witnesses.as_ref().map(|w| w.counted()), Some(2));
    // The stranger does not count toward the quorum either.
    let r = s.verify(&s.bundle(&s.note(&[(a, T), (&stranger, T)])), Some(&wp));
    assert_eq!(
        problems(&r),
        [("witnesses", "failed", Some("quorum_unmet"))]
    );
}

#[test]
fn max_age_drops_an_old_cosignature_and_flips_the_verdict() {
    let s = setup();
    let [a, b, _] = &s.w;
    let note = s.note(&[(a, T - 3600), (b, T - 10)]);
    let bytes = s.bundle(&note);
    let fresh = |max_age| Some(Freshness { max_age, now: T });
    assert_eq!(
        s.verify(&bytes, Some(&policy(s.two_of_three(), None)))
            .verdict(),
        Verdict::Verified
    );
    assert_eq!(
        s.verify(&bytes, Some(&policy(s.two_of_three(), fresh(3600))))
            .verdict(),
        Verdict::Verified
    );
    let r = s.verify(&bytes, Some(&policy(s.two_of_three(), fresh(600))));
    assert_eq!(r.verdict(), Verdict::Failed, "{}", r.to_text());
    assert_eq!(
        message(&r, "witnesses"),
        "checkpoint: quorum g is not met: g has 1 of 2 \
         (1 valid cosignature not counted under --max-age)"
    );
    let w = r.witnesses.as_ref().expect("witnesses");
    assert_eq!(w.witnesses[0].dropped, Some(Dropped::TooOld { age: 3600 }));
    assert_eq!(w.witnesses[1].dropped, None);
    let text = r.to_text();
    assert!(
        text.contains("(3600s ago): DROPPED, older than --max-age")
            && text.contains("--max-age 600s at 2026-09-21T14:23:20Z"),
        "{text}"
    );
    assert_eq!(
        r.to_json()["witnesses"]["witnesses"][0]["dropped"],
        "too_old"
    );
}

#[test]
fn max_age_refuses_a_cosignature_dated_in_the_future() {
    let s = setup();
    let [a, b, _] = &s.w;
    let wp = |now| policy(s.two_of_three(), Some(Freshness { max_age: 600, now }));
    let ahead = T + FUTURE_SKEW_SECS + 1;
    let bytes = s.bundle(&s.note(&[(a, T), (b, ahead)]));
    let r = s.verify(&bytes, Some(&wp(T)));
    assert_eq!(r.verdict(), Verdict::Failed, "{}", r.to_text());
    assert_eq!(
        r.witnesses.as_ref().map(|w| w.witnesses[1].dropped),
        Some(Some(Dropped::InFuture {
            ahead: FUTURE_SKEW_SECS + 1
        }))
    );
    assert!(r.to_text().contains("ahead of this machine's clock"));
    // Within the skew it counts.
    let bytes = s.bundle(&s.note(&[(a, T), (b, T + FUTURE_SKEW_SECS)]));
    assert_eq!(s.verify(&bytes, Some(&wp(T))).verdict(), Verdict::Verified);
}

#[test]
fn tlog_proofs_are_accepted_and_tampered_ones_refused() {
    let s = setup();
    let [a, b, _] = &s.w;
    let wp = policy(s.two_of_three(), None);
    let note = s.note(&[(a, T), (b, T)]);
    let good = String::from_utf8(s.tlog_proof(&note)).expect("utf-8");
    let r = s.verify(good.as_bytes(), Some(&wp));
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
    assert_eq!(r.form, "c2sp.org/tlog-proof@v1");
    assert_eq!(r.index, Some(s.index));
    assert!(
        message(&r, "event_id").ends_with("(computed; a tlog-proof claims none)"),
        "{}",
        message(&r, "event_id")
    );
    assert_eq!(r.to_json()["form"], "c2sp.org/tlog-proof@v1");
    // Without a policy the log key alone verifies it.
    assert_eq!(s.verify(good.as_bytes(), None).verdict(), Verdict::Verified);

    let lines: Vec<&str> = good.split('\n').collect();
    assert!(lines[1].starts_with("extra ") && lines[2].starts_with("index "));
    let with_line = |i: usize, line: &str| {
        let mut l = lines.clone();
        l[i] = line;
        l.join("\n")
    };
    let other_entry = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        &s.fx.entries[s.index as usize + 1],
    );
    let index = format!("index {}", s.index + 1);
    let proof_hash = lineage_ledger::Hash::from_bytes([7; 32]).to_base64();
    let no_extra = {
        let mut l = lines.clone();
        l.remove(1);
        l.join("\n")
    };
    let cases: Vec<(&str, String, Vec<Problem<'_>>)> = vec![
        (
            "another entry",
            with_line(1, &format!("extra {other_entry}")),
            vec![("inclusion", "failed", Some("inclusion_proof"))],
        ),
        (
            "another index",
            with_line(2, &index),
            vec![("inclusion", "failed", Some("inclusion_proof"))],
        ),
        (
            "a changed proof hash",
            with_line(3, &proof_hash),
            vec![("inclusion", "failed", Some("inclusion_proof"))],
        ),
        (
            "no extra line",
            no_extra,
            vec![
                ("entry", "failed", Some("tlog_proof_without_entry")),
                ("inclusion", "not_checked", None),
                ("event_id", "not_checked", None),
                ("signature", "not_checked", None),
                ("payload", "not_checked", None),
            ],
        ),
        (
            "another header",
            good.replacen("tlog-proof@v1", "tlog-proof@v2", 1),
            vec![("format", "failed", Some("tlog_proof"))],
        ),
        (
            "a proof line that is not base64",
            with_line(3, "not a hash"),
            vec![("format", "failed", Some("tlog_proof"))],
        ),
        (
            "a changed tree size",
            good.replacen(
                &format!("\n{}\n", s.fx.size()),
                &format!("\n{}\n", s.fx.size() + 1),
                1,
            ),
            vec![
                ("checkpoint", "failed", Some("checkpoint")),
                ("witnesses", "not_checked", None),
                ("inclusion", "not_checked", None),
            ],
        ),
    ];
    for (what, text, want) in cases {
        assert_ne!(text, good, "{what}");
        let r = s.verify(text.as_bytes(), Some(&wp));
        assert_eq!(r.verdict(), Verdict::Failed, "{what}: {}", r.to_text());
        assert_eq!(problems(&r), want, "{what}: {}", r.to_text());
    }
    // An uncosigned tlog-proof fails the policy, not the log key.
    let bare = s.tlog_proof(&s.fx.checkpoint(s.fx.size()));
    assert_eq!(s.verify(&bare, None).verdict(), Verdict::Verified);
    assert_eq!(
        problems(&s.verify(&bare, Some(&wp))),
        [("witnesses", "failed", Some("quorum_unmet"))]
    );
}

#[test]
fn consistency_holds_both_checkpoints_to_the_quorum_and_max_age_to_the_new_one() {
    let s = setup();
    let [a, b, c] = &s.w;
    let key = s.fx.log.verifier();
    let proof = s.fx.consistency_proof(300, s.fx.size()).to_string();
    let old = cosign(&s.fx.checkpoint(300), &[(a, T - 86_400), (b, T - 86_400)]);
    let new = s.note(&[(b, T - 5), (c, T - 5)]);
    let check = |old: &str, new: &str, freshness| {
        verify_witnessed_checkpoints(
            old.as_bytes(),
            new.as_bytes(),
            proof.as_bytes(),
            &key,
            Some(&policy(s.two_of_three(), freshness)),
        )
    };
    let fresh = Some(Freshness {
        max_age: 600,
        now: T,
    });
    let r = check(&old, &new, fresh);
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
    assert_eq!(r.old_witnesses.as_ref().map(|w| w.counted()), Some(2));
    assert_eq!(r.old_witnesses.as_ref().and_then(|w| w.freshness), None);
    assert_eq!(r.new_witnesses.as_ref().and_then(|w| w.freshness), fresh);
    let j = r.to_json();
    assert_eq!(j["witnesses"]["new"]["met"], true);
    assert_eq!(
        j["witnesses"]["old"]["max_age_secs"],
        serde_json::Value::Null
    );

    // An old new checkpoint fails under --max-age; an uncosigned old one fails the quorum.
    let stale = s.note(&[(b, T - 7200), (c, T - 5)]);
    let r = check(&old, &stale, fresh);
    let codes: Vec<&str> = r.violations.iter().map(|v| v.code()).collect();
    assert_eq!(codes, ["quorum_unmet"], "{}", r.to_text());
    assert!(
        r.violations[0]
            .to_string()
            .starts_with("new checkpoint: quorum g")
    );
    let r = check(&s.fx.checkpoint(300), &new, fresh);
    assert!(
        r.violations
            .iter()
            .map(ToString::to_string)
            .eq(["old checkpoint: quorum g is not met: g has 0 of 2".to_owned()]),
        "{}",
        r.to_text()
    );
}

#[test]
fn audit_reports_the_witnesses_and_an_unmet_quorum() {
    let s = setup();
    let [a, b, c] = &s.w;
    let dir = tempfile::tempdir().expect("tempdir");
    s.fx.write(dir.path());
    let opts = |p: Policy| AuditOptions {
        authorities: vec![s.fx.authority.verifying_key()],
        witnesses: Some(policy(p, None)),
        ..AuditOptions::new(s.fx.log.verifier())
    };
    std::fs::write(
        dir.path().join("checkpoint"),
        s.note(&[(a, T), (b, T), (c, T)]),
    )
    .expect("write");
    let r = audit(dir.path(), &opts(s.two_of_three()), &mut Silent).expect("audit");
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
    assert_eq!(r.witnesses.as_ref().map(|w| w.counted()), Some(3));
    assert!(r.to_text().contains("witnesses (policy quorum g):"));

    let all = policy_text(
        Some(&s.fx.vkey()),
        &[a, b, c],
        "group g all w1 w2 w3\nquorum g\n",
    );
    std::fs::write(dir.path().join("checkpoint"), s.note(&[(a, T), (b, T)])).expect("write");
    let r = audit(
        dir.path(),
        &opts(Policy::parse(all.as_bytes()).expect("policy")),
        &mut Silent,
    )
    .expect("audit");
    assert_eq!(r.verdict(), Verdict::Failed);
    let codes: Vec<&str> = r.violations.iter().map(|v| v.code()).collect();
    assert_eq!(codes, ["quorum_unmet"], "{}", r.to_text());
    // The tree was still checked in full.
    assert_eq!(r.counts.hashed, s.fx.size());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Any text after the tlog-proof header: a verdict, never a panic, never verified.
        #[test]
        fn tlog_proof_input_never_panics(tail in proptest::collection::vec(any::<u8>(), 0..400)) {
            let fx = Fixture::new();
            let key = fx.log.verifier();
            let wp = policy(Policy::parse(b"quorum none\n").expect("policy"), None);
            let mut bytes = b"c2sp.org/tlog-proof@v1\n".to_vec();
            bytes.extend(tail);
            for witnesses in [None, Some(&wp)] {
                let opts = ReceiptOptions {
                    log_key: &key,
                    runtime_keys: &[],
                    authorities: &[],
                    allow_unknown_signer: true,
                    witnesses,
                };
                prop_assert_eq!(verify_receipt(&bytes, &opts).verdict(), Verdict::Failed);
            }
        }
    }
}
