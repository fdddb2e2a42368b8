//! End-to-end ingest over a real socket: receipts verify offline, every
//! rejection has its code and leaves the tree unchanged, duplicates are
//! idempotent, racing equivocations never both land, restarts keep everything.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::*;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_verify_offline_and_identical_resubmission_is_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(dir.path()).await;
    assert_eq!(l.size().await, 0);
    let rk = key("runtime-a");
    let g = l.grant("agent/a", &rk).await;
    check_receipt(&g, &l.verifier(), &key("authority"));

    let e0 = sign_event(
        &event_payload("agent/a", "wl-1", 0, None, &[], "workload.start"),
        &rk,
    );
    let (s, r0) = l.post(&e0).await;
    assert_eq!(s, 201, "{r0}");
    assert_eq!(check_receipt(&r0, &l.verifier(), &rk), 1);

    let id0 = event_id(&e0);
    let e1 = sign_event(
        &event_payload("agent/a", "wl-1", 1, Some(&id0), &[], "tool.invoke"),
        &rk,
    );
    let (s, r1) = l.post(&e1).await;
    assert_eq!(s, 201, "{r1}");
    assert_eq!(check_receipt(&r1, &l.verifier(), &rk), 2);

    // Identical resubmission: 200, the original index, nothing appended.
    let (s, again) = l.post(&e0).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again["index"], 1);
    check_receipt(&again, &l.verifier(), &rk);
    assert_eq!(l.size().await, 3);
    l.stop().await;
}

/// One rejection case: the envelope, the expected status and code.
struct Case {
    name: &'static str,
    body: Vec<u8>,
    status: u16,
    code: &'static str,
}

fn env_bytes(e: &SignedEnvelope) -> Vec<u8> {
    serde_json::to_vec(&e.to_wire()).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rejection_has_its_code_and_appends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(dir.path()).await;
    let rk = key("runtime-a");
    let other = key("runtime-b");
    let stranger = key("never-granted");
    let revoked = key("revoked");
    l.grant("agent/a", &rk).await;
    l.grant("agent/b", &other).await;
    l.grant("agent/a", &revoked).await;
    let (s, v) = l
        .post(&governance(
            "revoke",
            "agent/a",
            &revoked,
            &key("authority"),
        ))
        .await;
    assert_eq!(s, 201, "{v}");
    let start = sign_event(
        &event_payload("agent/a", "wl", 0, None, &[], "workload.start"),
        &rk,
    );
    let (s, _) = l.post(&start).await;
    assert_eq!(s, 201);
    let start_id = event_id(&start);
    let size = l.size().await;

    let mut bad_sig = sign_event(
        &event_payload("agent/a", "wl", 1, Some(&start_id), &[], "x"),
        &rk,
    );
    bad_sig.payload = serde_json::to_vec(&event_payload(
        "agent/a",
        "wl",
        1,
        Some(&start_id),
        &[],
        "y",
    ))
    .expect("json");
    let mut wrong_type = env_bytes(&sign_event(
        &event_payload("agent/a", "w2", 0, None, &[], "x"),
        &rk,
    ));
    wrong_type = String::from_utf8(wrong_type)
        .expect("utf8")
        .replace("application/vnd.lineage.event.v1+json", "application/json")
        .into_bytes();
    let two_sigs = {
        let e = sign_event(&event_payload("agent/a", "w3", 0, None, &[], "x"), &rk);
        let mut w = serde_json::to_value(e.to_wire()).expect("json");
        let sig = w["signatures"][0].clone();
        w["signatures"] = json!([sig.clone(), sig]);
        serde_json::to_vec(&w).expect("json")
    };
    let big_attrs = {
        let mut p = event_payload("agent/a", "w4", 0, None, &[], "x");
        p["attrs"] = json!({ "blob": "a".repeat(40 * 1024) });
        env_bytes(&sign_event(&p, &rk))
    };
    let unknown_field = {
        let mut p = event_payload("agent/a", "w5", 0, None, &[], "x");
        p["extra"] = json!(1);
        env_bytes(&sign_event(&p, &rk))
    };
    let skewed = {
        let mut p = event_payload("agent/a", "w6", 0, None, &[], "x");
        p["at"] = json!(rfc3339(now() - time::Duration::hours(1)));
        env_bytes(&sign_event(&p, &rk))
    };
    let ghost = "0".repeat(64);
    let cases = vec![
        Case { name: "malformed json", body: b"{not json".to_vec(), status: 400, code: "invalid_envelope" },
        Case { name: "bad base64", body: br#"{"payloadType":"application/vnd.lineage.event.v1+json","payload":"!!","signatures":[{"keyid":"00","sig":"AA=="}]}"#.to_vec(), status: 400, code: "invalid_envelope" },
        Case { name: "wrong payloadType", body: wrong_type, status: 400, code: "invalid_envelope" },
        Case { name: "two signatures", body: two_sigs, status: 400, code: "invalid_envelope" },
        Case { name: "bad signature", body: env_bytes(&bad_sig), status: 401, code: "bad_signature" },
        Case { name: "unknown key", body: env_bytes(&sign_event(&event_payload("agent/a", "w7", 0, None, &[], "x"), &stranger)), status: 403, code: "unknown_key" },
        Case { name: "grant signed by a runtime key", body: env_bytes(&governance("grant", "agent/a", &stranger, &rk)), status: 403, code: "unknown_key" },
        Case { name: "revoked key", body: env_bytes(&sign_event(&event_payload("agent/a", "w8", 0, None, &[], "x"), &revoked)), status: 403, code: "revoked_key" },
        Case { name: "runtime mismatch", body: env_bytes(&sign_event(&event_payload("agent/b", "w9", 0, None, &[], "x"), &rk)), status: 403, code: "runtime_mismatch" },
        Case { name: "workload of another runtime", body: env_bytes(&sign_event(&event_payload("agent/b", "wl", 1, Some(&start_id), &[], "x"), &other)), status: 403, code: "runtime_mismatch" },
        Case { name: "unknown field", body: unknown_field, status: 400, code: "invalid_payload" },
        Case { name: "prev missing", body: env_bytes(&sign_event(&event_payload("agent/a", "wl", 1, None, &[], "x"), &rk)), status: 400, code: "invalid_payload" },
        Case { name: "oversized attrs", body: big_attrs, status: 413, code: "payload_too_large" },
        Case { name: "clock skew", body: skewed, status: 422, code: "clock_skew" },
        Case { name: "equivocation", body: env_bytes(&sign_event(&event_payload("agent/a", "wl", 0, None, &[], "other.start"), &rk)), status: 409, code: "equivocation" },
        Case { name: "sequence gap", body: env_bytes(&sign_event(&event_payload("agent/a", "wl", 2, Some(&start_id), &[], "x"), &rk)), status: 422, code: "sequence_gap" },
        Case { name: "prev mismatch", body: env_bytes(&sign_event(&event_payload("agent/a", "wl", 1, Some(&ghost), &[], "x"), &rk)), status: 422, code: "prev_mismatch" },
        Case { name: "unknown parent", body: env_bytes(&sign_event(&event_payload("agent/a", "w10", 0, None, &[&ghost], "x"), &rk)), status: 422, code: "unknown_parent" },
        Case { name: "grant of a granted key", body: env_bytes(&governance("grant", "agent/a", &rk, &key("authority"))), status: 409, code: "key_conflict" },
        Case { name: "revoke of an unknown key", body: env_bytes(&governance("revoke", "agent/a", &stranger, &key("authority"))), status: 409, code: "key_conflict" },
    ];
    for c in cases {
        let (s, v) = l.post_raw(c.body).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (c.status, Some(c.code)),
            "{}: {v}",
            c.name
        );
        assert_eq!(v["status"], c.status, "{}", c.name);
        assert_eq!(l.size().await, size, "{} appended something", c.name);
    }
    // The same payload re-signed by another key of the runtime is not a new event.
    let rk2 = key("runtime-a-2");
    l.grant("agent/a", &rk2).await;
    let resigned = SignedEnvelope::sign(PayloadType::Event, start.payload.clone(), &rk2);
    let (s, v) = l.post(&resigned).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (409, Some("duplicate_event")),
        "{v}"
    );
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrays_answer_item_by_item_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(dir.path()).await;
    let rk = key("runtime-a");
    // A grant and events using the key in the same array: order is log order.
    let e0 = sign_event(
        &event_payload("agent/a", "wl", 0, None, &[], "workload.start"),
        &rk,
    );
    let id0 = event_id(&e0);
    let e1 = sign_event(
        &event_payload("agent/a", "wl", 1, Some(&id0), &[], "tool.invoke"),
        &rk,
    );
    let child = sign_event(
        &event_payload("agent/a", "sub", 0, None, &[&id0], "workload.start"),
        &rk,
    );
    let gap = sign_event(
        &event_payload("agent/a", "wl", 5, Some(&id0), &[], "x"),
        &rk,
    );
    let body = serde_json::to_vec(&json!([
        governance("grant", "agent/a", &rk, &key("authority")).to_wire(),
        e0.to_wire(),
        e1.to_wire(),
        child.to_wire(),
        gap.to_wire(),
        {"not": "an envelope"},
        e0.to_wire(),
    ]))
    .expect("json");
    let (s, v) = l.post_raw(body).await;
    assert_eq!(s, 200, "{v}");
    let items = v.as_array().expect("array");
    assert_eq!(items.len(), 7);
    for (i, item) in items.iter().enumerate().take(4) {
        assert_eq!(item["index"], i as u64, "{item}");
    }
    check_receipt(&items[2], &l.verifier(), &rk);
    assert_eq!(items[4]["code"], "sequence_gap");
    assert_eq!(items[5]["code"], "invalid_envelope");
    assert_eq!(
        items[6]["index"], 1,
        "an identical envelope in the same array"
    );
    assert_eq!(l.size().await, 4);
    // Children and workload paging.
    let (s, ev) = l.get_json(&format!("/v1/events/{id0}")).await;
    assert_eq!(s, 200);
    let mut children: Vec<String> = ev["children"]
        .as_array()
        .expect("children")
        .iter()
        .map(|c| c.as_str().expect("id").to_owned())
        .collect();
    children.sort();
    let mut want = vec![event_id(&e1), event_id(&child)];
    want.sort();
    assert_eq!(children, want);
    assert_eq!(ev["entry_type"], "event");
    assert_eq!(ev["payload"]["kind"], "workload.start");
    let (s, page) = l.get_json("/v1/workloads/wl/events?limit=1").await;
    assert_eq!(s, 200);
    assert_eq!(page["events"][0]["seq"], 0);
    assert_eq!(page["next_from_seq"], 1);
    let (_, page) = l.get_json("/v1/workloads/wl/events?from_seq=1").await;
    assert_eq!(page["events"][0]["event_id"], event_id(&e1));
    assert_eq!(page["next_from_seq"], Value::Null);
    let (s, rt) = l.get_json("/v1/runtimes/agent%2Fa").await;
    assert_eq!(s, 200, "{rt}");
    assert_eq!(rt["event_count"], 3);
    assert_eq!(rt["keys"][0]["granted_index"], 0);
    // Too many envelopes.
    let many = serde_json::to_vec(&vec![e0.to_wire(); 1001]).expect("json");
    let (s, v) = l.post_raw(many).await;
    assert_eq!((s, v["code"].as_str()), (413, Some("payload_too_large")));
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_equivocations_never_both_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(dir.path()).await;
    let rk = key("runtime-a");
    l.grant("agent/a", &rk).await;
    for round in 0..5 {
        let workload = format!("race-{round}");
        let envs: Vec<SignedEnvelope> = (0..16)
            .map(|i| {
                sign_event(
                    &event_payload("agent/a", &workload, 0, None, &[], &format!("k{i}")),
                    &rk,
                )
            })
            .collect();
        let results = futures::future::join_all(envs.iter().map(|e| l.post(e))).await;
        let created = results.iter().filter(|(s, _)| *s == 201).count();
        let equivocations = results
            .iter()
            .filter(|(s, v)| *s == 409 && v["code"] == "equivocation")
            .count();
        assert_eq!(
            (created, equivocations),
            (1, 15),
            "round {round}: {results:?}"
        );
    }
    assert_eq!(l.size().await, 6);
    l.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_everything_and_stays_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rk = key("runtime-a");
    let (old_cp, receipts) = {
        let l = TestLedger::start(dir.path()).await;
        l.grant("agent/a", &rk).await;
        let mut prev: Option<String> = None;
        let mut receipts = vec![];
        for seq in 0..300u64 {
            let e = sign_event(
                &event_payload("agent/a", "long", seq, prev.as_deref(), &[], "step"),
                &rk,
            );
            let (s, r) = l.post(&e).await;
            assert_eq!(s, 201, "{r}");
            prev = Some(event_id(&e));
            receipts.push(r);
        }
        let (_, cp) = l.get("/checkpoint").await;
        l.stop().await;
        (String::from_utf8(cp).expect("utf8"), receipts)
    };
    let l = TestLedger::start(dir.path()).await;
    assert_eq!(l.size().await, 301);
    let (_, cp) = l.get("/checkpoint").await;
    assert_eq!(
        String::from_utf8(cp).expect("utf8"),
        old_cp,
        "same head after restart"
    );
    for r in receipts.iter().step_by(37) {
        let index = r["index"].as_u64().expect("index");
        let (s, e) = l.get_json(&format!("/v1/entries/{index}")).await;
        assert_eq!(s, 200);
        assert_eq!(e["bundle"]["entry"], r["entry"], "same bytes at {index}");
    }
    // The chain continues where it stopped; then the new head is consistent with the old.
    let last: Vec<u8> = STANDARD
        .decode(receipts[299]["entry"].as_str().expect("entry"))
        .expect("b64");
    let prev = lineage_ledger::entry::LogEntry::decode(&last)
        .expect("entry")
        .event_id()
        .to_string();
    let e = sign_event(
        &event_payload("agent/a", "long", 300, Some(&prev), &[], "workload.end"),
        &rk,
    );
    let (s, r) = l.post(&e).await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["index"], 301);
    let (s, p) = l
        .get_json("/v1/proofs/consistency?first=150&second=302")
        .await;
    assert_eq!(s, 200, "{p}");
    let old_root_cp = {
        let (s, b) = l.get("/v1/checkpoints/151").await;
        assert_eq!(s, 200);
        b
    };
    let old = lineage_ledger::checkpoint::verify_checkpoint(&old_root_cp, &l.verifier(), ORIGIN)
        .expect("old checkpoint");
    let (_, new_note) = l.get("/checkpoint").await;
    let new = lineage_ledger::checkpoint::verify_checkpoint(&new_note, &l.verifier(), ORIGIN)
        .expect("new checkpoint");
    let (s, p) = l
        .get_json("/v1/proofs/consistency?first=151&second=302")
        .await;
    assert_eq!(s, 200);
    let proof: Vec<lineage_ledger::Hash> = p["proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(|h| lineage_ledger::Hash::from_base64(h.as_str().expect("s")).expect("hash"))
        .collect();
    lineage_ledger::tree::verify_consistency(
        151,
        302,
        &old.checkpoint().root,
        &new.checkpoint().root,
        &proof,
    )
    .expect("consistent across the restart");
    let (s, _) = l
        .get_json("/v1/proofs/consistency?first=10&second=9999")
        .await;
    assert_eq!(s, 400);
    l.stop().await;
}

/// A workload belongs to the runtime that started it, and another runtime
/// learns nothing of it from a refusal: posting into it at any position is
/// `403 runtime_mismatch` before its events or head are read (no
/// `equivocation` naming the owner's event, no `sequence_gap` revealing its
/// head), and the refusal is recorded under the sender, never shown on the
/// owner's workload page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_runtimes_workload_reveals_nothing_and_records_refusals_under_the_sender() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(dir.path()).await;
    let (owner, intruder) = (key("owner-b"), key("intruder-a"));
    l.grant("agent/b", &owner).await;
    l.grant("agent/a", &intruder).await;
    let start = sign_event(
        &event_payload("agent/b", "secret-job", 0, None, &[], "workload.start"),
        &owner,
    );
    let start_id = event_id(&start);
    assert_eq!(l.post(&start).await.0, 201);
    let next = sign_event(
        &event_payload(
            "agent/b",
            "secret-job",
            1,
            Some(&start_id),
            &[],
            "tool.call",
        ),
        &owner,
    );
    let next_id = event_id(&next);
    assert_eq!(l.post(&next).await.0, 201);
    let size = l.size().await;
    let ghost = "0".repeat(64);
    for (seq, prev) in [
        (0, None),
        (1, Some(start_id.as_str())),
        (2, Some(next_id.as_str())),
        (7, Some(ghost.as_str())),
    ] {
        let probe = sign_event(
            &event_payload("agent/a", "secret-job", seq, prev, &[], "probe"),
            &intruder,
        );
        let (s, v) = l.post(&probe).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (403, Some("runtime_mismatch")),
            "seq {seq}: {v}"
        );
        let text = v.to_string();
        for secret in [&start_id, &next_id] {
            assert!(
                !text.contains(secret.as_str()),
                "seq {seq} leaks {secret}: {v}"
            );
        }
        assert!(
            !text.contains("expects seq"),
            "seq {seq} leaks the head: {v}"
        );
    }
    assert_eq!(l.size().await, size, "nothing appended");
    // The owner's page shows no refusal; the dashboard lists them under the sender.
    let (s, page) = l.get("/workloads/secret-job").await;
    assert_eq!(s, 200);
    let page = String::from_utf8_lossy(&page);
    assert!(
        !page.contains("runtime_mismatch"),
        "refusal shown on the owner's page"
    );
    let recent = l.log.metrics.recent_rejections.newest(None, 10);
    assert_eq!(recent.len(), 4);
    for r in &recent {
        assert_eq!(
            (r.runtime.as_str(), r.workload.as_deref()),
            ("agent/a", None),
            "{r:?}"
        );
    }
    assert!(
        l.log
            .metrics
            .recent_rejections
            .newest(Some("secret-job"), 10)
            .is_empty()
    );
    // Replaying the owner's captured envelope returns its receipt (idempotency).
    let (s, v) = l.post(&start).await;
    assert_eq!((s, v["index"].as_u64()), (200, Some(size - 2)), "{v}");
    l.stop().await;
}

/// Every receipt of big arrays is a valid proof, across tile boundaries
/// (256 leaves) and at every position: the receipts of one array share the
/// small nodes of their audit paths through one per-request memo.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_receipt_of_large_arrays_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(dir.path()).await;
    let rk = key("runtime-big");
    l.grant("agent/big", &rk).await;
    let mut n = 0u64;
    for round in 0..3 {
        let envs: Vec<_> = (0..300)
            .map(|i| {
                sign_event(
                    &event_payload(
                        "agent/big",
                        &format!("w-{round}-{i}"),
                        0,
                        None,
                        &[],
                        "workload.start",
                    ),
                    &rk,
                )
            })
            .collect();
        let body: Vec<Value> = envs
            .iter()
            .map(|e| serde_json::to_value(e.to_wire()).expect("wire"))
            .collect();
        let (status, items) = l.post_raw(serde_json::to_vec(&body).expect("json")).await;
        assert_eq!(status, 200, "{items}");
        for item in items.as_array().expect("array") {
            check_receipt(item, &l.verifier(), &rk);
            n += 1;
        }
    }
    assert_eq!(n, 900);
    l.stop().await;
}
