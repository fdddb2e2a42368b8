//! The read side over a real socket: C2SP tlog-tiles endpoints agree with
//! the entries and the checkpoint, proofs verify, bad requests are 4xx
//! problems.

mod common;

use common::*;
use lineage_ledger::tile::decode_bundle;
use lineage_ledger::tree::{MemNodes, NodeSource, root, verify_inclusion};
use lineage_ledger::{Hash, leaf_hash};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_checkpoint_and_proofs_agree() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = TestLedger::start(dir.path()).await;
    let rk = key("runtime-a");
    l.grant("agent/a", &rk).await;
    // 299 events in arrays: 300 entries, one full tile and a partial one.
    let mut prev: Option<String> = None;
    let mut envs = vec![];
    for seq in 0..299u64 {
        let e = sign_event(
            &event_payload("agent/a", "w", seq, prev.as_deref(), &[], "step"),
            &rk,
        );
        prev = Some(event_id(&e));
        envs.push(e.to_wire());
    }
    for chunk in envs.chunks(100) {
        let (s, v) = l.post_raw(serde_json::to_vec(chunk).expect("json")).await;
        assert_eq!(s, 200, "{v}");
    }
    assert_eq!(l.size().await, 300);

    let (s, note) = l.get("/checkpoint").await;
    assert_eq!(s, 200);
    let cp = lineage_ledger::checkpoint::verify_checkpoint(&note, &l.verifier(), ORIGIN)
        .expect("checkpoint verifies");
    assert_eq!(cp.checkpoint().size, 300);

    // Entry bundles hold the entries; their leaf hashes are the level-0 tiles.
    let mut entries: Vec<Vec<u8>> = vec![];
    for path in ["/tile/entries/000", "/tile/entries/001.p/44"] {
        let (s, b) = l.get(path).await;
        assert_eq!(s, 200, "{path}");
        entries.extend(
            decode_bundle(&b)
                .expect("bundle")
                .into_iter()
                .map(<[u8]>::to_vec),
        );
    }
    assert_eq!(entries.len(), 300);
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    let (_, t0) = l.get("/tile/0/000").await;
    let (_, t1) = l.get("/tile/0/001.p/44").await;
    let mut row = t0.clone();
    row.extend_from_slice(&t1);
    assert_eq!(row.len(), 300 * 32);
    for (i, h) in leaves.iter().enumerate() {
        assert_eq!(&row[i * 32..i * 32 + 32], h.as_bytes(), "leaf {i}");
    }
    let nodes = MemNodes::new(leaves.clone());
    let (_, t10) = l.get("/tile/1/000.p/1").await;
    assert_eq!(t10, nodes.node(8, 0).expect("node").to_bytes().to_vec());
    assert_eq!(root(300, &nodes).expect("root"), cp.checkpoint().root);
    // Older partial widths are prefixes; beyond the tree is 404; malformed is 400.
    let (s, b) = l.get("/tile/0/001.p/10").await;
    assert_eq!((s, b.len()), (200, 320));
    for (path, status) in [
        ("/tile/0/001", 404),
        ("/tile/0/001.p/45", 404),
        ("/tile/entries/002.p/1", 404),
        ("/tile/0/1", 400),
        ("/tile/0/001.p/0", 400),
        ("/tile/0/001.p/256", 400),
        ("/tile/x/000", 400),
    ] {
        let (s, _) = l.get(path).await;
        assert_eq!(s, status, "{path}");
    }
    // Inclusion proofs at an older size.
    let (s, p) = l
        .get_json("/v1/proofs/inclusion?index=17&tree_size=200")
        .await;
    assert_eq!(s, 200, "{p}");
    let proof: Vec<Hash> = p["proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(|h| Hash::from_base64(h.as_str().expect("s")).expect("hash"))
        .collect();
    verify_inclusion(
        &leaves[17],
        17,
        200,
        &proof,
        &root(200, &nodes).expect("root"),
    )
    .expect("inclusion at 200");
    for q in [
        "index=300&tree_size=300",
        "index=1&tree_size=301",
        "index=x&tree_size=3",
        "tree_size=3",
    ] {
        let (s, v) = l.get_json(&format!("/v1/proofs/inclusion?{q}")).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (400, Some("invalid_request")),
            "{q}"
        );
    }
    // The log document.
    let (s, info) = l.get_json("/v1/log").await;
    assert_eq!(s, 200);
    assert_eq!(info["origin"], ORIGIN);
    assert_eq!(info["tree_size"], 300);
    assert_eq!(info["vkey"], l.log.vkey.as_str());
    assert_eq!(info["root"], cp.checkpoint().root.to_base64());
    // Not found is a problem too.
    let (s, v) = l.get_json("/v1/events/zz").await;
    assert_eq!((s, v["code"].as_str()), (400, Some("invalid_request")));
    let (s, v) = l.get_json(&format!("/v1/events/{}", "a".repeat(64))).await;
    assert_eq!((s, v["code"].as_str()), (404, Some("not_found")));
    let (s, v) = l.get_json("/v1/entries/300").await;
    assert_eq!((s, v["code"].as_str()), (404, Some("not_found")));
    let (s, v) = l.get_json("/nope").await;
    assert_eq!((s, v["code"].as_str()), (404, Some("not_found")));
    // The health sampler (which `lineage serve` runs once a second) sets
    // the store's memory gauges: 300 entries are in the memtables.
    l.log.sample_health(None);
    let (s, body) = l.get("/metrics").await;
    assert_eq!(s, 200);
    let text = String::from_utf8(body).expect("utf8");
    assert!(text.contains("lineage_tree_size 300"), "{text}");
    let memtables = text
        .lines()
        .find_map(|l| l.strip_prefix("lineage_store_memory_bytes{kind=\"memtables\"} "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(memtables.is_some_and(|b| b > 300 * 100), "{text}");
    for kind in ["block_cache", "table_readers"] {
        assert!(
            text.contains(&format!("lineage_store_memory_bytes{{kind=\"{kind}\"}}")),
            "{text}"
        );
    }
    assert!(text.contains("lineage_commit_seconds"), "{text}");
    l.stop().await;
}
