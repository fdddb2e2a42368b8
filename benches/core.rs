//! Criterion micro-benchmarks of the pure core: tree append per entry,
//! inclusion and consistency proofs at 1M leaves (tiles in memory), envelope
//! verification (`verify_strict`, the ingest bottleneck) and entry encoding.
//!
//! Run: `cargo bench --bench core`. Figures are per operation; compare
//! ratios from one run, the machine is shared and noisy.

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::entry::LogEntry;
use lineage_ledger::tree::{
    MemTiles, TileNodes, TreeEdge, plan_append, prove_consistency, prove_inclusion,
};
use lineage_ledger::{Hash, leaf_hash};

const MILLION: u64 = 1 << 20;

fn leaves(n: u64) -> Vec<Hash> {
    (0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect()
}

fn tree(n: u64) -> (TreeEdge, MemTiles) {
    let mut tiles = MemTiles::new();
    let mut edge = TreeEdge::empty();
    for chunk in leaves(n).chunks(4096) {
        let plan = plan_append(&edge, chunk);
        tiles.apply(&plan);
        edge = plan.edge;
    }
    (edge, tiles)
}

fn append(c: &mut Criterion) {
    let (edge, _) = tree(100_000);
    let batch = leaves(1000);
    let mut g = c.benchmark_group("tree");
    g.throughput(Throughput::Elements(batch.len() as u64));
    g.bench_function("plan_append/1000 leaves at 100k", |b| {
        b.iter(|| black_box(plan_append(&edge, &batch)))
    });
    g.finish();
}

fn proofs(c: &mut Criterion) {
    let (edge, tiles) = tree(MILLION);
    let size = edge.size();
    let mut g = c.benchmark_group("proofs at 1M");
    let mut i = 0u64;
    g.bench_function("inclusion", |b| {
        b.iter(|| {
            i = (i + 7919) % size;
            black_box(prove_inclusion(i, size, &TileNodes(&tiles)).ok())
        })
    });
    let mut m = 1u64;
    g.bench_function("consistency", |b| {
        b.iter(|| {
            m = (m + 7919) % size + 1;
            black_box(prove_consistency(m, size, &TileNodes(&tiles)).ok())
        })
    });
    g.finish();
}

fn envelopes(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let payload = br#"{"runtime":"agent/a","workload":"w-1","seq":0,"kind":"tool.invoke","at":"2026-11-26T12:00:00Z","attrs":{"tool":"search","args":{"q":"lineage"}}}"#;
    let env = SignedEnvelope::sign(PayloadType::Event, payload.to_vec(), &key);
    let json = serde_json::to_vec(&env.to_wire()).expect("json");
    let public = key.verifying_key();
    let mut g = c.benchmark_group("envelope");
    g.bench_function("parse", |b| {
        b.iter(|| black_box(SignedEnvelope::parse(&json).ok()))
    });
    g.bench_function("verify_strict", |b| {
        b.iter(|| black_box(env.verify(&public).is_ok()))
    });
    g.bench_function("entry encode", |b| {
        b.iter_batched(
            || env.clone(),
            |e| black_box(LogEntry::from_envelope(&e, 1_700_000_000_000).encode()),
            BatchSize::SmallInput,
        )
    });
    let entry = LogEntry::from_envelope(&env, 1).encode();
    g.bench_function("entry decode + leaf hash", |b| {
        b.iter(|| {
            black_box(LogEntry::decode(&entry).ok());
            black_box(leaf_hash(&entry))
        })
    });
    g.finish();
}

criterion_group!(benches, append, proofs, envelopes);
criterion_main!(benches);
