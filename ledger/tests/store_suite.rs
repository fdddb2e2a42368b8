#![cfg(feature = "rocksdb")]
//! One store test suite, run on both stores (RocksDB and the in-memory fake).

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use lineage_ledger::event::{RuntimeId, Target, WorkloadId};
use lineage_ledger::keys::{EventId, KeyId};
use lineage_ledger::rules::KeyRecord;
use lineage_ledger::state::GovernanceDelta;
use lineage_ledger::store::{
    CommitBatch, FORMAT_VERSION, Fault, GovernanceReads, MemStore, RocksStore, Store, StoreError,
    StoreMeta, StoreTiles, StoredCheckpoint, StoredTally, children_of, fill_strata,
    governance_rows, open_log,
};
use lineage_ledger::tree::{RUN_BYTES, TileNodes, TileStratum, TreeEdge, plan_append, root};
use lineage_ledger::{Hash, leaf_hash};

fn meta() -> StoreMeta {
    StoreMeta {
        format_version: FORMAT_VERSION,
        origin: "test/log".into(),
        vkey: "test/log+00000000+AQ==".into(),
    }
}

fn genesis() -> StoredCheckpoint {
    StoredCheckpoint {
        size: 0,
        time_ms: 1,
        note: "genesis".into(),
    }
}

/// A batch of `n` entries appended to `edge`, with simple indexes.
fn batch(edge: &TreeEdge, n: u64, workload: &str) -> (CommitBatch, TreeEdge) {
    let first = edge.size();
    let entries: Vec<Arc<Vec<u8>>> = (first..first + n)
        .map(|i| Arc::new(format!("entry {i}").into_bytes()))
        .collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
    let plan = plan_append(edge, &leaves);
    let id = |i: u64| EventId::of_payload(format!("entry {i}").as_bytes());
    let strata = plan
        .tiles
        .iter()
        .filter_map(|t| TileStratum::of_row(t.level, t.index, &t.hashes))
        .collect();
    let b = CommitBatch {
        first_index: first,
        entries,
        tiles: plan.tiles,
        strata,
        events: (first..first + n).map(|i| (id(i), i)).collect(),
        workloads: (first..first + n)
            .map(|i| (workload.to_owned(), i, i))
            .collect(),
        children: (first.max(1)..first + n).map(|i| (id(0), i)).collect(),
        keys: vec![],
        runtime_counts: vec![("agent/a".into(), first + n)],
        governance: vec![],
        checkpoint: StoredCheckpoint {
            size: first + n,
            time_ms: 2,
            note: format!("checkpoint {}", first + n),
        },
    };
    (b, plan.edge)
}

fn suite(store: &dyn Store) {
    // Identity.
    assert!(store.meta().expect("meta").is_none());
    open_log(store, &meta(), genesis).expect("init");
    open_log(store, &meta(), genesis).expect("reopen same log");
    let other = StoreMeta {
        vkey: "other+00000000+AQ==".into(),
        ..meta()
    };
    match open_log(store, &other, genesis) {
        Err(StoreError::MetaMismatch { field, .. }) => assert_eq!(field, "log key"),
        r => panic!("expected a mismatch, got {r:?}"),
    }
    assert!(matches!(
        store.initialize(&meta(), &genesis()),
        Err(StoreError::AlreadyInitialized)
    ));
    assert_eq!(store.head().expect("head").size, 0);

    // Appends across tile boundaries; the tree rebuilt from tiles matches.
    let mut edge = TreeEdge::empty();
    let mut all: Vec<Hash> = vec![];
    for (n, w) in [
        (1u64, "w1"),
        (255, "w1"),
        (1, "w2"),
        (300, "w2"),
        (70000 - 557, "w3"),
    ] {
        let (b, next) = batch(&edge, n, w);
        all.extend(b.entries.iter().map(|e| leaf_hash(e)));
        store.commit(&b).expect("commit");
        edge = next;
    }
    let size = edge.size();
    assert_eq!(size, 70000);
    assert_eq!(store.head().expect("head").size, size);
    let loaded = TreeEdge::load(size, &StoreTiles(store)).expect("load edge");
    assert_eq!(loaded, edge, "restart rebuilds the same edge");
    assert_eq!(
        root(size, &TileNodes(&StoreTiles(store))).expect("root"),
        edge.root()
    );
    assert_eq!(
        root(257, &TileNodes(&StoreTiles(store))).expect("root"),
        root(
            257,
            &lineage_ledger::tree::MemNodes::new(all[..257].to_vec())
        )
        .expect("root")
    );

    // Every complete tile has its stratum, derived from the stored tile;
    // partial tiles have none.
    let level0: Vec<u64> = (0..size / 256).collect();
    assert_eq!(store.strata(0, 0, usize::MAX).expect("strata"), level0);
    assert_eq!(store.strata(1, 0, usize::MAX).expect("strata"), vec![0]);
    assert_eq!(
        store.strata(0, 100, 3).expect("strata"),
        vec![100, 101, 102]
    );
    assert!(store.strata(2, 0, 10).expect("strata").is_empty());
    for (level, index) in [(0u8, 0u64), (0, 272), (1, 0)] {
        let tile = store.tile(level, index).expect("tile").expect("stored");
        let derived = TileStratum::of_tile(level, index, &tile).expect("complete");
        assert_eq!(
            store.stratum(level, index).expect("stratum"),
            Some(derived.to_bytes())
        );
    }
    assert_eq!(store.stratum(0, size / 256).expect("stratum"), None);
    // Strata put beside the log (for stores written before them) read back.
    let tile = store.tile(0, 3).expect("tile").expect("stored");
    let mut put = TileStratum::of_tile(0, 3, &tile).expect("complete");
    put.level = 5;
    store
        .put_strata(std::slice::from_ref(&put), None)
        .expect("put");
    assert_eq!(store.strata(5, 0, 10).expect("strata"), vec![3]);
    assert_eq!(store.stratum(5, 3).expect("stratum"), Some(put.to_bytes()));

    // A stale batch is refused and changes nothing.
    let (stale, _) = batch(&TreeEdge::empty(), 1, "w1");
    assert!(matches!(
        store.commit(&stale),
        Err(StoreError::Conflict {
            first_index: 0,
            size: 70000
        })
    ));
    assert_eq!(store.entry(0).expect("entry"), Some(b"entry 0".to_vec()));

    // Reads.
    assert_eq!(store.entry(size).expect("entry"), None);
    let range = store.entries(254, 258).expect("entries");
    assert_eq!(range.len(), 4);
    assert_eq!(range[0], b"entry 254".to_vec());
    assert_eq!(store.entries(69998, 80000).expect("tail").len(), 2);
    assert_eq!(
        store
            .event_index(&EventId::of_payload(b"entry 256"))
            .expect("event"),
        Some(256)
    );
    assert_eq!(
        store
            .event_index(&EventId::of_payload(b"nope"))
            .expect("event"),
        None
    );
    assert_eq!(store.workload_index("w1", 255).expect("wl"), Some(255));
    assert_eq!(store.workload_index("w1", 256).expect("wl"), None);
    assert_eq!(store.workload_last("w1").expect("last"), Some((255, 255)));
    assert_eq!(
        store.workload_last("w").expect("last"),
        None,
        "prefix of a workload ID"
    );
    assert_eq!(store.workload_last("w10").expect("last"), None);
    assert_eq!(
        store.workload_range("w2", 300, 3).expect("range"),
        vec![(300, 300), (301, 301), (302, 302)]
    );
    assert_eq!(
        store
            .children(&EventId::of_payload(b"entry 0"), 3)
            .expect("children"),
        vec![1, 2, 3]
    );
    // With the `prev` link: the workload's next event, merged in order
    // with the rows (here also a row, as in a store written before prev
    // rows were dropped), within the limit.
    let id = |i: u64| EventId::of_payload(format!("entry {i}").as_bytes());
    let children = |i: u64, at: Option<(&str, u64)>, limit: usize| {
        children_of(store, &id(i), at, limit).expect("children")
    };
    assert_eq!(children(0, Some(("w1", 0)), 3), vec![1, 2, 3]);
    assert_eq!(children(0, Some(("w1", 9)), 3), vec![1, 2, 3]);
    assert_eq!(children(0, Some(("w1", 0)), 0), Vec::<u64>::new());
    assert_eq!(children(5, Some(("w1", 5)), 3), vec![6]);
    assert_eq!(children(5, None, 3), Vec::<u64>::new());
    assert_eq!(children(255, Some(("w1", 255)), 3), Vec::<u64>::new());
    assert_eq!(children(5, Some(("w1", u64::MAX)), 3), Vec::<u64>::new());
    assert_eq!(
        store.checkpoint(257).expect("cp").map(|c| c.note),
        Some("checkpoint 257".into())
    );
    assert_eq!(store.checkpoint(258).expect("cp"), None);
    // Checkpoints newest first, below a size, by one reverse range read.
    let before = |b, limit| store.checkpoints_before(b, limit).expect("sizes");
    assert_eq!(before(u64::MAX, 100), vec![70000, 557, 257, 256, 1, 0]);
    assert_eq!(before(70001, 2), vec![70000, 557]);
    assert_eq!(before(70000, 2), vec![557, 257], "below, not at");
    assert_eq!(before(557, 100), vec![257, 256, 1, 0]);
    assert_eq!(before(2, 100), vec![1, 0]);
    assert_eq!(before(1, 100), vec![0]);
    assert!(before(0, 100).is_empty());
    assert!(before(70001, 0).is_empty());

    // The tally: none until a reader saves one, then the latest saved.
    assert_eq!(store.tally().expect("tally"), None);
    let mut tally = StoredTally {
        covers: 300,
        last_leaf: leaf_hash(b"entry 299"),
        events: 290,
        governance: 10,
        workloads: 2,
        kinds: [("tool.invoke".to_owned(), 200)].into(),
    };
    store.put_tally(&tally).expect("put tally");
    assert_eq!(store.tally().expect("tally"), Some(tally.clone()));
    tally.covers = 70000;
    tally.kinds.insert("workload.end".into(), 3);
    store.put_tally(&tally).expect("put tally");
    assert_eq!(store.tally().expect("tally"), Some(tally));
    assert_eq!(
        store.runtime_counts().expect("counts"),
        vec![("agent/a".into(), 70000)]
    );

    // Keys: grant then revoke, the latest state wins.
    let pk = SigningKey::from_bytes(&[3u8; 32]).verifying_key();
    let mut rec = KeyRecord {
        key_id: KeyId::from_public_key(&pk),
        public_key: pk,
        runtime: RuntimeId::new("agent/a").expect("id"),
        granted_index: size,
        revoked_index: None,
        not_before: None,
        not_after: None,
        scope: None,
    };
    let (mut b, next) = batch(&edge, 1, "w4");
    b.keys = vec![rec.clone()];
    store.commit(&b).expect("grant");
    edge = next;
    rec.revoked_index = Some(size + 1);
    let (mut b, _) = batch(&edge, 1, "w4");
    b.keys = vec![rec.clone()];
    store.commit(&b).expect("revoke");
    assert_eq!(store.keys().expect("keys"), vec![rec]);
    edge = next_edge(&edge, 1);

    // Governance rows: written with a batch, read back typed; an emptied
    // halt-marks row is deleted.
    let w = |s: &str| WorkloadId::new(s).expect("w");
    let runtime = RuntimeId::new("agent/a").expect("r");
    let mut delta = GovernanceDelta {
        derivations: vec![(w("child"), w("root")), (w("child2"), w("root"))],
        statements: vec![edge.size()],
        ..GovernanceDelta::default()
    };
    delta
        .started
        .insert(runtime.clone(), vec![w("root"), w("child")]);
    delta.marks.insert(w("root"), vec![edge.size()]);
    delta.marks.insert(w("child"), vec![edge.size()]);
    delta
        .active
        .insert(Target::Workload(w("root")), Some(edge.size()));
    let (mut b, next) = batch(&edge, 1, "w5");
    b.governance = governance_rows(&delta);
    store.commit(&b).expect("governance");
    let halt = edge.size();
    edge = next;
    assert_eq!(
        store.derived_workloads("root").expect("derived"),
        ["child", "child2"]
    );
    assert_eq!(store.derives_from("child", 10).expect("up"), ["root"]);
    assert!(store.derives_from("child", 0).expect("up").is_empty());
    assert!(store.derived_workloads("roo").expect("prefix").is_empty());
    assert_eq!(
        store.runtime_workloads("agent/a").expect("started"),
        ["child", "root"]
    );
    let mut marks = store.halt_marks().expect("marks");
    marks.sort();
    assert_eq!(
        marks,
        [
            ("child".to_owned(), vec![halt]),
            ("root".to_owned(), vec![halt])
        ]
    );
    assert_eq!(
        store.active_halts().expect("halts"),
        [(Target::Workload(w("root")), halt)]
    );
    assert_eq!(store.governance_indices(None, 10).expect("g"), [halt]);
    assert!(
        store
            .governance_indices(Some(halt), 10)
            .expect("g")
            .is_empty()
    );
    let mut delta = GovernanceDelta::default();
    delta.marks.insert(w("root"), vec![]);
    delta.active.insert(Target::Workload(w("root")), None);
    let (mut b, _) = batch(&edge, 1, "w6");
    b.governance = governance_rows(&delta);
    store.commit(&b).expect("resume");
    assert_eq!(
        store.halt_marks().expect("marks"),
        [("child".to_owned(), vec![halt])]
    );
    assert!(store.active_halts().expect("halts").is_empty());
}

/// A store written before strata existed gets them from `fill_strata`.
fn strata_fill(store: &dyn Store) {
    open_log(store, &meta(), genesis).expect("init");
    let mut edge = TreeEdge::empty();
    let mut commit_without_strata = |n: u64| {
        let (mut b, next) = batch(&edge, n, "w");
        b.strata.clear();
        store.commit(&b).expect("commit");
        edge = next;
    };
    commit_without_strata(300);
    commit_without_strata(69_700);
    assert!(store.strata(0, 0, usize::MAX).expect("strata").is_empty());
    assert_eq!(store.strata_covered().expect("covered"), 0);
    // Asked to stop at once, it derives and records nothing.
    assert_eq!(fill_strata(store, 70_000, &|| true).expect("fill"), 0);
    assert_eq!(store.strata_covered().expect("covered"), 0);
    // One stratum already there (written by a commit after an upgrade) is
    // kept; the other 272 of level 0 and the one of level 1 are derived.
    let derived = |level: u8, index: u64| {
        let tile = store.tile(level, index).expect("tile").expect("stored");
        TileStratum::of_tile(level, index, &tile).expect("complete")
    };
    store.put_strata(&[derived(0, 7)], None).expect("put");
    assert_eq!(fill_strata(store, 70_000, &|| false).expect("fill"), 273);
    assert_eq!(store.strata_covered().expect("covered"), 70_000);
    let level0: Vec<u64> = (0..273).collect();
    assert_eq!(store.strata(0, 0, usize::MAX).expect("strata"), level0);
    assert_eq!(store.strata(1, 0, usize::MAX).expect("strata"), vec![0]);
    for (level, index) in [(0u8, 0u64), (0, 7), (0, 150), (0, 272), (1, 0)] {
        assert_eq!(
            store.stratum(level, index).expect("stratum"),
            Some(derived(level, index).to_bytes()),
            "stratum {level}/{index}"
        );
    }
    // Covered: nothing to do.
    assert_eq!(fill_strata(store, 70_000, &|| false).expect("fill"), 0);
    // Grown since (by a server that wrote no strata): only the tiles past
    // the covered size are looked at.
    commit_without_strata(1_000);
    assert_eq!(fill_strata(store, 71_000, &|| false).expect("fill"), 4);
    assert_eq!(store.strata_covered().expect("covered"), 71_000);
    assert_eq!(
        store.strata(0, 273, usize::MAX).expect("strata"),
        vec![273, 274, 275, 276]
    );
}

#[test]
fn both_stores_fill_the_strata_of_an_older_log() {
    strata_fill(&MemStore::new());
    let dir = tempfile::tempdir().expect("tempdir");
    strata_fill(&RocksStore::open(dir.path()).expect("open"));
    let store = RocksStore::open(dir.path()).expect("reopen");
    assert_eq!(
        store.strata_covered().expect("covered"),
        71_000,
        "the mark survives a reopen"
    );
}

/// The runs `store` gives for proofs are those of its first `complete`
/// level-0 tiles; it gives none of the partial tile after them.
fn leaf_runs_match_tiles(store: &dyn Store, complete: u64) {
    for tile in [0, 1, complete / 2, complete - 1] {
        let row = store.tile(0, tile).expect("tile").expect("stored");
        for run in [0u16, 7, 15] {
            let at = usize::from(run) * RUN_BYTES;
            assert_eq!(
                store.leaf_run(tile, run).expect("run").as_deref(),
                row.get(at..at + RUN_BYTES),
                "run {run} of tile {tile}"
            );
        }
    }
    assert_eq!(store.leaf_run(complete, 0).expect("run"), None);
}

#[test]
fn both_stores_give_the_runs_of_their_complete_leaf_tiles() {
    let mem = MemStore::new();
    open_log(&mem, &meta(), genesis).expect("init");
    mem.commit(&batch(&TreeEdge::empty(), 70_000, "w").0)
        .expect("commit");
    leaf_runs_match_tiles(&mem, 273);
}

#[cfg(unix)]
#[test]
fn rocksdb_store_keeps_a_checked_flat_copy_of_its_leaf_tiles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = dir.path().join("lineage-leaf-tiles");
    let len = || std::fs::metadata(&copy).expect("copy").len();
    let commit = |store: &RocksStore, n: u64| {
        let size = store.head().expect("head").size;
        let edge = TreeEdge::load(size, &StoreTiles(store)).expect("edge");
        store.commit(&batch(&edge, n, "w").0).expect("commit");
    };
    {
        let store = RocksStore::open(dir.path()).expect("open");
        open_log(&store, &meta(), genesis).expect("init");
        commit(&store, 300);
        commit(&store, 69_700);
        leaf_runs_match_tiles(&store, 273);
        assert_eq!(len(), 273 * 8192);
        // Nothing to fill: the commits wrote every tile they completed.
        assert_eq!(store.fill_leaf_runs(&|| false).expect("fill"), 0);
    }
    {
        // A read-only open reads the rows; it keeps and writes no copy.
        let store = RocksStore::open_read_only(dir.path()).expect("open");
        assert_eq!(store.leaf_run(0, 0).expect("run"), None);
        assert_eq!(store.fill_leaf_runs(&|| false).expect("fill"), 0);
    }
    // A tile of the copy lost in a crash (zeros where it was, as after a
    // write that did not reach the disk): the open cuts the copy there, and
    // the fill writes it and the ones after again.
    {
        use std::os::unix::fs::FileExt;
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&copy)
            .expect("copy");
        file.write_all_at(&[0; 100], 250 * 8192 + 4000)
            .expect("damage");
    }
    {
        let store = RocksStore::open(dir.path()).expect("reopen");
        assert_eq!(len(), 250 * 8192);
        assert_eq!(store.leaf_run(250, 0).expect("run"), None);
        leaf_runs_match_tiles(&store, 250);
        assert_eq!(store.fill_leaf_runs(&|| false).expect("fill"), 23);
        leaf_runs_match_tiles(&store, 273);
    }
    // A store written before the copy existed: none until the fill, which a
    // stop request holds back; a commit far ahead of the copy leaves its
    // tiles to the fill, one just past it appends them (and the gap).
    std::fs::remove_file(&copy).expect("remove");
    let store = RocksStore::open(dir.path()).expect("reopen");
    assert_eq!(store.leaf_run(0, 0).expect("run"), None);
    commit(&store, 1_000);
    assert_eq!(store.leaf_run(273, 0).expect("run"), None);
    assert_eq!(store.fill_leaf_runs(&|| true).expect("fill"), 0);
    assert_eq!(len(), 0);
    assert_eq!(store.fill_leaf_runs(&|| false).expect("fill"), 277);
    leaf_runs_match_tiles(&store, 277);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&copy)
        .expect("copy")
        .set_len(275 * 8192)
        .expect("cut");
    drop(store);
    let store = RocksStore::open(dir.path()).expect("reopen");
    commit(&store, 512);
    leaf_runs_match_tiles(&store, 279);
}

fn next_edge(edge: &TreeEdge, n: u64) -> TreeEdge {
    batch(edge, n, "w4").1
}

#[test]
fn rocksdb_store_passes_the_suite_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = RocksStore::open(dir.path()).expect("open");
        suite(&store);
    }
    let store = RocksStore::open(dir.path()).expect("reopen");
    assert_eq!(store.head().expect("head").size, 70004);
    assert_eq!(store.meta().expect("meta"), Some(meta()));
    let edge = TreeEdge::load(70004, &StoreTiles(&store)).expect("edge");
    assert_eq!(edge.size(), 70004);
    assert_eq!(
        store.tally().expect("tally").map(|t| t.covers),
        Some(70000),
        "the tally survives a reopen"
    );
}

#[test]
fn memory_store_passes_the_suite() {
    suite(&MemStore::new());
}

#[test]
fn a_damaged_tally_is_an_error_and_the_next_save_replaces_it() {
    let store = MemStore::new();
    store.put_tally_bytes(b"not a tally");
    assert!(matches!(
        store.tally(),
        Err(StoreError::Corrupt { what: "tally", .. })
    ));
    let t = StoredTally {
        covers: 1,
        last_leaf: leaf_hash(b"entry 0"),
        events: 1,
        governance: 0,
        workloads: 1,
        kinds: Default::default(),
    };
    store.put_tally(&t).expect("put");
    assert_eq!(store.tally().expect("tally"), Some(t));
}

#[test]
fn memory_store_faults_lose_or_apply_the_write() {
    let store = MemStore::new();
    open_log(&store, &meta(), genesis).expect("init");
    let (b, _) = batch(&TreeEdge::empty(), 3, "w");
    store.inject([Fault::LoseWrite, Fault::ApplyThenFail]);
    assert!(matches!(
        store.commit(&b),
        Err(StoreError::Injected(Fault::LoseWrite))
    ));
    assert_eq!(store.head().expect("head").size, 0);
    assert!(matches!(
        store.commit(&b),
        Err(StoreError::Injected(Fault::ApplyThenFail))
    ));
    assert_eq!(
        store.head().expect("head").size,
        3,
        "applied despite the error"
    );
    assert!(matches!(store.commit(&b), Err(StoreError::Conflict { .. })));
}
