//! Audit throughput against the machine's raw Ed25519 rate, in one run.
//!
//! Writes an export of `LINEAGE_BENCH_ENTRIES` entries (default 2^20: one
//! grant, then workloads of 16 chained events) into a temporary directory,
//! then prints:
//!
//! - the raw `verify_strict` rate of ed25519-dalek on all cores (rayon, the
//!   same signatures, nothing else);
//! - the full audit's rate (tiles, root, signatures, rule replay);
//! - their ratio (the issue's target: at least 70%).
//!
//! Run: `cargo bench -p lineage-verify --bench audit`. A measurement, not a
//! test: it asserts nothing.

use std::path::Path;
use std::time::Instant;

use ed25519_dalek::{Signature, SigningKey, VerifyingKey};
use lineage_ledger::checkpoint::{Checkpoint, sign_checkpoint};
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::entry::LogEntry;
use lineage_ledger::keys::{EventId, public_key_base64};
use lineage_ledger::note::NoteSigner;
use lineage_ledger::tile::{TilePath, encode_bundle};
use lineage_ledger::tree::{TreeEdge, plan_append};
use lineage_ledger::{Hash, leaf_hash};
use lineage_verify::Silent;
use lineage_verify::audit::{AuditOptions, audit};
use rayon::prelude::*;
use serde_json::json;

const T0_MS: u64 = 1_790_000_000_000;
const AT: &str = "2026-09-21T14:13:20Z";
const ORIGIN: &str = "bench.lineage/log";
/// Bundles generated and written per batch.
const BATCH: u64 = 64;

fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, bytes).expect("write");
}

fn signed(t: PayloadType, payload: serde_json::Value, key: &SigningKey) -> Vec<u8> {
    let env = SignedEnvelope::sign(t, serde_json::to_vec(&payload).expect("json"), key);
    LogEntry::from_envelope(&env, T0_MS).encode()
}

/// The entries of bundle `b` (bundle 0 starts with the grant).
fn bundle_entries(b: u64, authority: &SigningKey, runtime: &SigningKey) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    if b == 0 {
        out.push(signed(
            PayloadType::Governance,
            json!({"action": "grant", "runtime": "bench/r", "at": AT,
                "public_key": public_key_base64(&runtime.verifying_key())}),
            authority,
        ));
    }
    let mut w = 0;
    while out.len() < 256 {
        let mut prev: Option<EventId> = None;
        for seq in 0..16u64 {
            if out.len() == 256 {
                break;
            }
            let mut p = json!({"runtime": "bench/r", "workload": format!("w{b}-{w}"),
                "seq": seq, "kind": "step", "at": AT});
            if let Some(id) = prev {
                p["prev"] = json!(id.to_string());
            }
            let entry = signed(PayloadType::Event, p, runtime);
            prev = LogEntry::decode(&entry).ok().map(|e| e.event_id());
            out.push(entry);
        }
        w += 1;
    }
    out
}

fn main() {
    let n: u64 = std::env::var("LINEAGE_BENCH_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1 << 20);
    let bundles = n.div_ceil(256);
    let n = bundles * 256;
    let dir = tempfile::tempdir().expect("tempdir");
    let authority = SigningKey::from_bytes(&[1; 32]);
    let runtime = SigningKey::from_bytes(&[2; 32]);
    let log = NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[3; 32])).expect("name");
    let threads = rayon::current_num_threads();

    let started = Instant::now();
    let mut edge = TreeEdge::empty();
    let mut sample: Vec<(VerifyingKey, Vec<u8>, Signature)> = Vec::new();
    for first in (0..bundles).step_by(BATCH as usize) {
        let batch: Vec<(u64, Vec<Vec<u8>>)> = (first..(first + BATCH).min(bundles))
            .into_par_iter()
            .map(|b| (b, bundle_entries(b, &authority, &runtime)))
            .collect();
        let mut leaves: Vec<Hash> = Vec::with_capacity(batch.len() * 256);
        for (b, entries) in &batch {
            let path = TilePath::entries(*b, 256).expect("path");
            let bundle = encode_bundle(entries.iter().map(Vec::as_slice)).expect("bundle");
            write(dir.path(), &path.to_string(), &bundle);
            leaves.extend(entries.iter().map(|e| leaf_hash(e)));
            if sample.len() < 1 << 16 {
                sample.extend(entries.iter().filter_map(|e| {
                    let env = LogEntry::decode(e).ok()?.to_envelope();
                    let key = match env.payload_type {
                        PayloadType::Event => runtime.verifying_key(),
                        PayloadType::Governance => authority.verifying_key(),
                    };
                    Some((key, env.signed_bytes(), env.signature))
                }));
            }
        }
        let plan = plan_append(&edge, &leaves);
        for t in &plan.tiles {
            let path = TilePath::hash(t.level, t.index, t.width()).expect("path");
            write(dir.path(), &path.to_string(), &t.to_bytes());
        }
        edge = plan.edge;
    }
    let cp = Checkpoint {
        origin: ORIGIN.into(),
        size: n,
        root: edge.root(),
        extensions: vec![],
    };
    write(
        dir.path(),
        "checkpoint",
        sign_checkpoint(&cp, &log).expect("sign").as_bytes(),
    );
    println!(
        "wrote an export of {n} entries in {:.1}s ({threads} threads)",
        started.elapsed().as_secs_f64()
    );

    // Raw verify_strict on all cores, over a sample of the same signatures.
    let started = Instant::now();
    let ok = sample
        .par_iter()
        .filter(|(k, m, s)| k.verify_strict(m, s).is_ok())
        .count();
    let raw = sample.len() as f64 / started.elapsed().as_secs_f64();
    assert_eq!(ok, sample.len());
    println!("raw ed25519 verify_strict, all cores: {raw:.0} signatures/s");

    let opts = AuditOptions {
        authorities: vec![authority.verifying_key()],
        ..AuditOptions::new(log.verifier())
    };
    let report = audit(dir.path(), &opts, &mut Silent).expect("audit");
    let rate = report.rate();
    println!("{}", report.summary());
    println!(
        "audit: {rate:.0} entries/s = {:.0}% of the raw verify rate ({})",
        100.0 * rate / raw,
        report.verdict().word()
    );
}
