//! End to end with the offline verifier as the oracle: ingest through the
//! API, export with `lineage export`'s code, audit the export clean; then two
//! ledgers sharing one log key diverge, and `consistency` reports the fork.

mod common;

use common::*;
use lineage_ledger::store::{RocksStore, Store};
use lineage_log::LogConfig;
use lineage_verify::audit::{AuditOptions, audit};
use lineage_verify::report::Verdict;

/// Ingests a small realistic log: two runtimes, chains, parents, a rotation
/// and a revocation.
async fn ingest(l: &TestLedger) {
    let a = key("runtime-a");
    let b = key("runtime-b");
    l.grant("agent/a", &a).await;
    l.grant("agent/b", &b).await;
    let mut last_start: Option<String> = None;
    for w in 0..12 {
        let (runtime, k) = if w % 2 == 0 {
            ("agent/a", &a)
        } else {
            ("agent/b", &b)
        };
        let workload = format!("run-{w}");
        let mut prev: Option<String> = None;
        let mut envs = vec![];
        for seq in 0..25u64 {
            let parents: Vec<&str> = match (&last_start, seq) {
                (Some(p), 0) => vec![p.as_str()],
                _ => vec![],
            };
            let e = sign_event(
                &event_payload(
                    runtime,
                    &workload,
                    seq,
                    prev.as_deref(),
                    &parents,
                    "tool.invoke",
                ),
                k,
            );
            if seq == 0 {
                last_start = Some(event_id(&e));
            }
            prev = Some(event_id(&e));
            envs.push(e.to_wire());
        }
        let (s, v) = l.post_raw(serde_json::to_vec(&envs).expect("json")).await;
        assert_eq!(s, 200, "{v}");
        assert!(
            v.as_array()
                .expect("items")
                .iter()
                .all(|i| i.get("index").is_some()),
            "{v}"
        );
    }
    let (s, _) = l
        .post(&governance("revoke", "agent/b", &b, &key("authority")))
        .await;
    assert_eq!(s, 201);
}

fn export(data: &std::path::Path, out: &std::path::Path) {
    let store = RocksStore::open_read_only(data).expect("read-only open");
    let meta = store.meta().expect("meta").expect("initialised");
    let authority = lineage_ledger::keys::public_key_base64(&key("authority").verifying_key());
    lineage::export::export_store(&store, &meta, out, &[authority]).expect("export");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exported_log_audits_clean_and_incrementally() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("db");
    let out = dir.path().join("export");
    let l = TestLedger::start(&data).await;
    ingest(&l).await;
    let size = l.size().await;
    assert_eq!(size, 2 + 12 * 25 + 1);
    // Exported while the ledger runs: a read-only snapshot.
    export(&data, &out);
    let first_checkpoint = std::fs::read(out.join("checkpoint")).expect("checkpoint");
    let mut opts = AuditOptions::new(l.verifier());
    opts.authorities = vec![key("authority").verifying_key()];
    let report = audit(&out, &opts, &mut lineage_verify::Silent).expect("audit runs");
    assert_eq!(
        report.verdict(),
        Verdict::Verified,
        "{:?}",
        report.violations
    );
    assert_eq!(report.checkpoint.as_ref().map(|c| c.size), Some(size));

    // More entries, incremental export, audit with --since the first checkpoint.
    let c = key("runtime-c");
    l.grant("agent/c", &c).await;
    for w in 0..3 {
        let e = sign_event(
            &event_payload("agent/c", &format!("c-{w}"), 0, None, &[], "workload.start"),
            &c,
        );
        assert_eq!(l.post(&e).await.0, 201);
    }
    l.stop().await;
    export(&data, &out);
    opts.since = Some(first_checkpoint);
    let report = audit(&out, &opts, &mut lineage_verify::Silent).expect("audit runs");
    assert_eq!(
        report.verdict(),
        Verdict::Verified,
        "{:?}",
        report.violations
    );
    assert_eq!(report.checkpoint.as_ref().map(|c| c.size), Some(size + 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ledgers_sharing_a_key_that_diverge_are_a_fork() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = TestLedger::start_with(&dir.path().join("one"), LogConfig::default()).await;
    let two = TestLedger::start_with(&dir.path().join("two"), LogConfig::default()).await;
    let k = key("runtime-a");
    for l in [&one, &two] {
        l.grant("agent/a", &k).await;
    }
    // Same first entry's key grant, then different events: same sizes, different trees.
    for (l, kind) in [(&one, "left"), (&two, "right")] {
        for w in 0..3 {
            let e = sign_event(
                &event_payload("agent/a", &format!("w{w}"), 0, None, &[], kind),
                &k,
            );
            assert_eq!(l.post(&e).await.0, 201);
        }
    }
    let (_, old) = one.get("/v1/checkpoints/2").await;
    let (_, new) = two.get("/checkpoint").await;
    let (_, proof) = one.get("/v1/proofs/consistency?first=2&second=4").await;
    let report =
        lineage_verify::consistency::verify_checkpoints(&old, &new, &proof, &one.verifier());
    assert_eq!(report.verdict(), Verdict::Fork, "{}", report.to_text());
    // The same pair from one ledger is consistent.
    let (_, new_one) = one.get("/checkpoint").await;
    let report =
        lineage_verify::consistency::verify_checkpoints(&old, &new_one, &proof, &one.verifier());
    assert_eq!(report.verdict(), Verdict::Verified, "{}", report.to_text());
    one.stop().await;
    two.stop().await;
}
