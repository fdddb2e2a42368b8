//! Continuous governance end to end, over sockets: a three-level spawn tree
//! across two runtimes is halted at its root; every descendant's next event
//! (and a workload started after the halt from halted lineage) is refused
//! with the halt's index; a runtime following the governance stream learns
//! of the halt before it sends its next event; a resume lets the chains go
//! on. The export audits clean, and the same log with one event admitted
//! after a halt (written by a host that skipped the rules) is reported at
//! that event's index.

mod common;

use std::time::Duration;

use common::*;
use ed25519_dalek::SigningKey;
use lineage_ledger::checkpoint::{Checkpoint, sign_checkpoint};
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::entry::LogEntry;
use lineage_ledger::leaf_hash;
use lineage_ledger::note::NoteSigner;
use lineage_ledger::rules::integration_ms;
use lineage_ledger::store::{CommitBatch, RocksStore, Store, StoreTiles, StoredCheckpoint};
use lineage_ledger::tree::{TreeEdge, plan_append};
use lineage_verify::audit::{AuditOptions, audit};
use lineage_verify::report::Verdict;
use serde_json::{Value, json};

fn statement(action: &str, target: Value) -> SignedEnvelope {
    let payload = json!({"action": action, "target": target,
        "reason": "end-to-end test", "at": rfc3339(now())});
    SignedEnvelope::sign(
        PayloadType::Governance,
        serde_json::to_vec(&payload).expect("json"),
        &key("authority"),
    )
}

/// A workload's chain as its runtime keeps it.
struct Chain {
    runtime: &'static str,
    workload: &'static str,
    key: SigningKey,
    seq: u64,
    prev: Option<String>,
}

impl Chain {
    fn new(runtime: &'static str, workload: &'static str, key: SigningKey) -> Chain {
        Chain {
            runtime,
            workload,
            key,
            seq: 0,
            prev: None,
        }
    }

    /// The next event of the chain (not yet sent).
    fn next(&self, parents: &[&str], kind: &str) -> SignedEnvelope {
        sign_event(
            &event_payload(
                self.runtime,
                self.workload,
                self.seq,
                self.prev.as_deref(),
                parents,
                kind,
            ),
            &self.key,
        )
    }

    /// Sends the next event; on success the chain moves on.
    async fn send(&mut self, l: &TestLedger, parents: &[&str]) -> (u16, Value, String) {
        let env = self.next(parents, "tool.invoke");
        let id = event_id(&env);
        let (status, body) = l.post(&env).await;
        if status == 201 {
            self.seq += 1;
            self.prev = Some(id.clone());
        }
        (status, body, id)
    }
}

/// Reads the governance stream until an event with `id` comes, and returns
/// its data.
async fn await_stream_event(mut resp: reqwest::Response, id: u64) -> Value {
    let mut buf = String::new();
    loop {
        let chunk = resp.chunk().await.expect("stream").expect("stream open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            let mut event_id = None;
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    event_id = v.trim().parse::<u64>().ok();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if event_id == Some(id) {
                return serde_json::from_str(&data).expect("event data");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halt_stops_a_spawn_tree_across_runtimes_until_resumed_and_the_audit_agrees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("db");
    let l = TestLedger::start(&data).await;
    let (planner, coder) = (key("runtime-planner"), key("runtime-coder"));
    l.grant("planner", &planner).await;
    let grant = l.grant("coder", &coder).await;
    let last_grant = grant["index"].as_u64().expect("grant index");

    // root (planner) <- child (coder) <- grandchild (planner).
    let mut root = Chain::new("planner", "root", planner.clone());
    let mut child = Chain::new("coder", "child", coder.clone());
    let mut grandchild = Chain::new("planner", "grandchild", planner.clone());
    let (s, v, root0) = root.send(&l, &[]).await;
    assert_eq!(s, 201, "{v}");
    let (s, v, child0) = child.send(&l, &[&root0]).await;
    assert_eq!(s, 201, "{v}");
    let (s, v, grandchild0) = grandchild.send(&l, &[&child0]).await;
    assert_eq!(s, 201, "{v}");

    // The coder follows the governance stream from after the grants.
    let stream = l
        .client
        .get(format!("{}/v1/governance/stream", l.url))
        .header("Last-Event-ID", last_grant.to_string())
        .send()
        .await
        .expect("subscribe");
    assert_eq!(stream.status(), 200);

    let (s, v) = l
        .post(&statement("halt", json!({"workload": "root"})))
        .await;
    assert_eq!(s, 201, "{v}");
    let halt = v["index"].as_u64().expect("halt index");
    // The subscriber hears of the halt before it sends anything else.
    let heard = tokio::time::timeout(Duration::from_secs(10), await_stream_event(stream, halt))
        .await
        .expect("the halt reaches the stream");
    assert_eq!(heard["index"], halt);
    assert_eq!(heard["statement"]["action"], "halt");
    assert_eq!(heard["statement"]["target"], json!({"workload": "root"}));

    for chain in [&mut root, &mut child, &mut grandchild] {
        let (s, v, _) = chain.send(&l, &[]).await;
        assert_eq!((s, v["code"].clone()), (403, json!("halted")), "{v}");
        assert_eq!(v["halt_index"], halt, "{}: {v}", chain.workload);
    }
    // Started after the halt, from halted lineage.
    let mut late = Chain::new("coder", "late", coder.clone());
    let (s, v, _) = late.send(&l, &[&grandchild0]).await;
    assert_eq!((s, v["halt_index"].clone()), (403, json!(halt)), "{v}");
    let (s, v) = l.get_json("/v1/workloads/grandchild").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["state"].clone(), v["halted_by"].clone()),
        (json!("halted"), json!(halt))
    );
    assert_eq!(v["derives_from"], json!(["child"]));

    let (s, v) = l
        .post(&statement("resume", json!({"workload": "root"})))
        .await;
    assert_eq!(s, 201, "{v}");
    for chain in [&mut root, &mut child, &mut grandchild, &mut late] {
        let parents: Vec<&str> = if chain.workload == "late" {
            vec![&grandchild0]
        } else {
            vec![]
        };
        let (s, v, _) = chain.send(&l, &parents).await;
        assert_eq!(s, 201, "{}: {v}", chain.workload);
    }
    let (_, v) = l.get_json("/v1/workloads/grandchild").await;
    assert_eq!(v["state"], "open");

    // Halted again at the end; the coder's next event is refused.
    let (s, v) = l
        .post(&statement("halt", json!({"workload": "root"})))
        .await;
    assert_eq!(s, 201, "{v}");
    let second_halt = v["index"].as_u64().expect("halt index");
    let refused = child.next(&[], "tool.invoke");
    let (s, v) = l.post(&refused).await;
    assert_eq!((s, v["halt_index"].clone()), (403, json!(second_halt)));
    l.stop().await;

    // The export audits clean.
    let clean = dir.path().join("export");
    let authority = lineage_ledger::keys::public_key_base64(&key("authority").verifying_key());
    {
        let store = RocksStore::open_read_only(&data).expect("read-only open");
        let meta = store.meta().expect("meta").expect("initialised");
        lineage::export::export_store(&store, &meta, &clean, std::slice::from_ref(&authority))
            .expect("export");
    }
    let options = AuditOptions {
        authorities: vec![key("authority").verifying_key()],
        ..AuditOptions::new(
            NoteSigner::new(ORIGIN, key("log"))
                .expect("signer")
                .verifier(),
        )
    };
    let report = audit(&clean, &options, &mut lineage_verify::Silent).expect("audit");
    assert_eq!(report.verdict(), Verdict::Verified, "{}", report.to_text());

    // A host that skipped the rules appends the refused event after the
    // halt, and signs a checkpoint over it with the log key.
    let tampered_index = {
        let store = RocksStore::open(&data).expect("open");
        let head = store.head().expect("head");
        let edge = TreeEdge::load(head.size, &StoreTiles(&store)).expect("edge");
        let entry = LogEntry::from_envelope(&refused, integration_ms(now())).encode();
        let plan = plan_append(&edge, &[leaf_hash(&entry)]);
        let note = sign_checkpoint(
            &Checkpoint {
                origin: ORIGIN.into(),
                size: plan.edge.size(),
                root: plan.edge.root(),
                extensions: vec![],
            },
            &NoteSigner::new(ORIGIN, key("log")).expect("signer"),
        )
        .expect("sign");
        store
            .commit(&CommitBatch {
                first_index: head.size,
                entries: vec![entry.into()],
                tiles: plan.tiles,
                checkpoint: StoredCheckpoint {
                    size: plan.edge.size(),
                    time_ms: integration_ms(now()),
                    note,
                },
                ..CommitBatch::default()
            })
            .expect("tampered commit");
        head.size
    };
    let tampered = dir.path().join("tampered");
    {
        let store = RocksStore::open_read_only(&data).expect("read-only open");
        let meta = store.meta().expect("meta").expect("initialised");
        lineage::export::export_store(&store, &meta, &tampered, &[authority]).expect("export");
    }
    let report = audit(&tampered, &options, &mut lineage_verify::Silent).expect("audit");
    let found: Vec<(&str, Option<u64>)> = report
        .violations
        .iter()
        .map(|v| (v.code(), v.index()))
        .collect();
    assert_eq!(
        found,
        [("halted", Some(tampered_index))],
        "{}",
        report.to_text()
    );
    assert_eq!(report.verdict(), Verdict::Failed);
}
