//! A fixture that writes real Lineage exports with the pure ledger core:
//! DSSE-signed events and governance statements, log entries, tiles from
//! `plan_append`, entry bundles, a signed checkpoint and a manifest.
//!
//! It enforces no rule on purpose: tests plant violations by appending the
//! entries a correct ledger would refuse, and the tree and checkpoint are
//! always computed (and signed) over exactly what was appended, so only the
//! planted rule breaks.

#![allow(dead_code)]

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::SigningKey;
use lineage_ledger::checkpoint::{Checkpoint, sign_checkpoint};
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::entry::LogEntry;
use lineage_ledger::keys::{EventId, KeyId, public_key_base64};
use lineage_ledger::note::NoteSigner;
use lineage_ledger::tile::{TilePath, encode_bundle};
use lineage_ledger::tree::{MemNodes, TreeEdge, plan_append, prove_consistency, prove_inclusion};
use lineage_ledger::{Hash, leaf_hash};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The log's origin (and note key name).
pub const ORIGIN: &str = "lineage.test/log";

/// 2026-09-21T14:13:20Z, the time of entry 0; each entry is one second later.
pub const T0_MS: u64 = 1_790_000_000_000;

/// A deterministic key.
pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// Base64 of a key's public half.
pub fn public(k: &SigningKey) -> String {
    public_key_base64(&k.verifying_key())
}

/// A log under construction.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub log: NoteSigner,
    pub authority: SigningKey,
    pub entries: Vec<Vec<u8>>,
}

impl Default for Fixture {
    fn default() -> Self {
        Fixture::new()
    }
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            log: NoteSigner::new(ORIGIN, key(200)).expect("key name"),
            authority: key(100),
            entries: Vec::new(),
        }
    }

    pub fn vkey(&self) -> String {
        self.log.verifier().vkey()
    }

    pub fn size(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The integration time of the next entry, and `at` for its payload.
    fn now(&self) -> (u64, String) {
        let ms = T0_MS + self.size() * 1000;
        let at = OffsetDateTime::from_unix_timestamp((ms / 1000) as i64)
            .expect("time")
            .format(&Rfc3339)
            .expect("format");
        (ms, at)
    }

    /// Appends a signed envelope as a log entry; returns its index.
    pub fn push(&mut self, envelope: &SignedEnvelope) -> u64 {
        let (ms, _) = self.now();
        self.entries
            .push(LogEntry::from_envelope(envelope, ms).encode());
        self.size() - 1
    }

    /// Appends raw leaf bytes (not a log entry).
    pub fn push_raw(&mut self, bytes: &[u8]) -> u64 {
        self.entries.push(bytes.to_vec());
        self.size() - 1
    }

    /// A governance statement signed by `signer` (normally the authority).
    pub fn governance_by(
        &mut self,
        signer: &SigningKey,
        action: &str,
        runtime: &str,
        k: &SigningKey,
    ) -> u64 {
        let (_, at) = self.now();
        let payload =
            json!({"action": action, "runtime": runtime, "public_key": public(k), "at": at});
        let env = SignedEnvelope::sign(
            PayloadType::Governance,
            serde_json::to_vec(&payload).expect("json"),
            signer,
        );
        self.push(&env)
    }

    /// A governance statement signed by the authority: `payload` with its
    /// `at` set to the entry's time.
    pub fn statement(&mut self, mut payload: Value) -> u64 {
        let (_, at) = self.now();
        payload["at"] = json!(at);
        let env = SignedEnvelope::sign(
            PayloadType::Governance,
            serde_json::to_vec(&payload).expect("json"),
            &self.authority,
        );
        self.push(&env)
    }

    /// The integration time `secs` seconds after the next entry's, as RFC 3339.
    pub fn time_after(&self, secs: i64) -> String {
        let (ms, _) = self.now();
        OffsetDateTime::from_unix_timestamp(ms as i64 / 1000 + secs)
            .expect("time")
            .format(&Rfc3339)
            .expect("format")
    }

    pub fn grant(&mut self, runtime: &str, k: &SigningKey) -> u64 {
        let authority = self.authority.clone();
        self.governance_by(&authority, "grant", runtime, k)
    }

    pub fn revoke(&mut self, runtime: &str, k: &SigningKey) -> u64 {
        let authority = self.authority.clone();
        self.governance_by(&authority, "revoke", runtime, k)
    }

    /// An event; returns (index, event ID).
    pub fn event(&mut self, e: Ev<'_>) -> (u64, EventId) {
        let (_, at) = self.now();
        let mut payload = json!({"runtime": e.runtime, "workload": e.workload, "seq": e.seq,
            "kind": e.kind, "at": at});
        if let Some(p) = e.prev {
            payload["prev"] = json!(p.to_string());
        }
        if !e.parents.is_empty() {
            payload["parents"] = json!(
                e.parents
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
            );
        }
        let env = SignedEnvelope::sign(
            PayloadType::Event,
            serde_json::to_vec(&payload).expect("json"),
            e.key,
        );
        let id = env.event_id();
        (self.push(&env), id)
    }

    pub fn leaves(&self, size: u64) -> Vec<Hash> {
        self.entries[..size as usize]
            .iter()
            .map(|e| leaf_hash(e))
            .collect()
    }

    pub fn root(&self, size: u64) -> Hash {
        plan_append(&TreeEdge::empty(), &self.leaves(size))
            .edge
            .root()
    }

    /// The signed checkpoint note for the first `size` entries.
    pub fn checkpoint(&self, size: u64) -> String {
        sign_checkpoint(
            &Checkpoint {
                origin: ORIGIN.into(),
                size,
                root: self.root(size),
                extensions: vec![],
            },
            &self.log,
        )
        .expect("sign")
    }

    /// Writes the export of the first `size` entries into `dir`.
    pub fn write_prefix(&self, dir: &Path, size: u64) {
        let plan = plan_append(&TreeEdge::empty(), &self.leaves(size));
        for t in &plan.tiles {
            let path = TilePath::hash(t.level, t.index, t.width()).expect("tile path");
            write(dir, &path.to_string(), &t.to_bytes());
        }
        for (i, chunk) in self.entries[..size as usize].chunks(256).enumerate() {
            let path = TilePath::entries(i as u64, chunk.len() as u16).expect("bundle path");
            let bundle = encode_bundle(chunk.iter().map(Vec::as_slice)).expect("bundle");
            write(dir, &path.to_string(), &bundle);
        }
        write(dir, "checkpoint", self.checkpoint(size).as_bytes());
        let manifest = json!({
            "format": "lineage-export/v1",
            "origin": ORIGIN,
            "vkey": self.vkey(),
            "tree_size": size,
            "authority_keys": [{
                "key_id": KeyId::from_public_key(&self.authority.verifying_key()).to_string(),
                "public_key": public(&self.authority),
            }],
        });
        write(dir, "manifest.json", manifest.to_string().as_bytes());
    }

    /// Writes the export of every entry into `dir`.
    pub fn write(&self, dir: &Path) {
        self.write_prefix(dir, self.size());
    }

    /// The receipt of entry `index` against the checkpoint of `size`.
    pub fn receipt(&self, index: u64, size: u64) -> Value {
        let nodes = MemNodes::new(self.leaves(size));
        let proof = prove_inclusion(index, size, &nodes).expect("proof");
        let entry = &self.entries[index as usize];
        let id = LogEntry::decode(entry).expect("entry").event_id();
        json!({
            "format": "lineage-bundle/v1",
            "event_id": id.to_string(),
            "index": index,
            "entry": STANDARD.encode(entry),
            "checkpoint": self.checkpoint(size),
            "inclusion_proof": proof.iter().map(Hash::to_base64).collect::<Vec<_>>(),
        })
    }

    /// `GET /v1/proofs/consistency?first=m&second=n` as this log would answer.
    pub fn consistency_proof(&self, m: u64, n: u64) -> Value {
        let nodes = MemNodes::new(self.leaves(n));
        let proof = prove_consistency(m, n, &nodes).expect("proof");
        json!({"first": m, "second": n, "proof": proof.iter().map(Hash::to_base64).collect::<Vec<_>>()})
    }
}

/// An event to append.
#[derive(Debug, Clone, Copy)]
pub struct Ev<'a> {
    pub key: &'a SigningKey,
    pub runtime: &'a str,
    pub workload: &'a str,
    pub seq: u64,
    pub prev: Option<EventId>,
    pub parents: &'a [EventId],
    pub kind: &'a str,
}

impl<'a> Ev<'a> {
    pub fn new(key: &'a SigningKey, runtime: &'a str, workload: &'a str, seq: u64) -> Ev<'a> {
        Ev {
            key,
            runtime,
            workload,
            seq,
            prev: None,
            parents: &[],
            kind: "step",
        }
    }

    pub fn prev(self, prev: EventId) -> Ev<'a> {
        Ev {
            prev: Some(prev),
            ..self
        }
    }

    pub fn parents(self, parents: &'a [EventId]) -> Ev<'a> {
        Ev { parents, ..self }
    }

    pub fn kind(self, kind: &'a str) -> Ev<'a> {
        Ev { kind, ..self }
    }
}

pub fn write(dir: &Path, rel: &str, bytes: &[u8]) {
    let path = dir.join(rel);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&path, bytes).expect("write");
}

/// What [`scenario`] built, for tests to point at.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The runtime keys: agent/a's first key (revoked), agent/b's, agent/a's second.
    pub keys: [SigningKey; 3],
    /// The last event of the "build" workload (agent/a), with parents in "fetch".
    pub build_head: EventId,
    /// The events of "fetch" (agent/b).
    pub fetch: Vec<EventId>,
    /// The events of "build", by seq.
    pub build: Vec<EventId>,
    /// Index of the revocation of agent/a's first key.
    pub revoked_at: u64,
    /// Index of a "build" event (seq 1) in bundle 0.
    pub build_1_index: u64,
}

/// A clean log of about 600 entries (two full bundles and a partial one):
/// two runtimes, workloads with prev chains and parents across workloads, a
/// key revocation and rotation, and many small workloads as filler.
pub fn scenario(fx: &mut Fixture) -> Scenario {
    let (a1, b, a2) = (key(1), key(2), key(3));
    fx.grant("agent/a", &a1);
    fx.grant("agent/b", &b);
    let mut fetch = Vec::new();
    let mut prev = None;
    for seq in 0..4 {
        let mut e = Ev::new(&b, "agent/b", "fetch", seq).kind("fetch.step");
        if let Some(p) = prev {
            e = e.prev(p);
        }
        let (_, id) = fx.event(e);
        fetch.push(id);
        prev = Some(id);
    }
    let (_, b0) = fx.event(Ev::new(&a1, "agent/a", "build", 0).kind("workload.start"));
    let parents1 = [fetch[1]];
    let (build_1_index, b1) = fx.event(
        Ev::new(&a1, "agent/a", "build", 1)
            .prev(b0)
            .parents(&parents1),
    );
    // Filler: short workloads of both runtimes.
    for w in 0..150 {
        let (k, r) = if w % 2 == 0 {
            (&a1, "agent/a")
        } else {
            (&b, "agent/b")
        };
        let name = format!("job-{w}");
        let (_, s0) = fx.event(Ev::new(k, r, &name, 0));
        let (_, s1) = fx.event(Ev::new(k, r, &name, 1).prev(s0));
        fx.event(Ev::new(k, r, &name, 2).prev(s1).kind("done"));
    }
    let revoked_at = fx.revoke("agent/a", &a1);
    fx.grant("agent/a", &a2);
    // The same workload goes on under the rotated key.
    let parents2 = [fetch[3], fetch[2]];
    let (_, b2) = fx.event(
        Ev::new(&a2, "agent/a", "build", 2)
            .prev(b1)
            .parents(&parents2),
    );
    let parents3 = [b0];
    let (_, b3) = fx.event(
        Ev::new(&a2, "agent/a", "build", 3)
            .prev(b2)
            .parents(&parents3)
            .kind("deploy"),
    );
    for w in 0..40 {
        let name = format!("late-{w}");
        let (_, s0) = fx.event(Ev::new(&b, "agent/b", &name, 0));
        fx.event(Ev::new(&b, "agent/b", &name, 1).prev(s0));
    }
    Scenario {
        keys: [a1, b, a2],
        build_head: b3,
        fetch,
        build: vec![b0, b1, b2, b3],
        revoked_at,
        build_1_index,
    }
}

/// Flips one bit of the file at `rel` under `dir`, at byte `at`.
pub fn flip(dir: &Path, rel: &str, at: usize) {
    let path = dir.join(rel);
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[at] ^= 1;
    std::fs::write(&path, bytes).expect("write");
}

/// A deterministic witness key, named `witness.test/w<n>`.
pub fn witness(n: u8) -> lineage_ledger::cosignature::CosignerSigner {
    lineage_ledger::cosignature::CosignerSigner::new(&format!("witness.test/w{n}"), key(50 + n))
        .expect("witness name")
}

/// `note` with a cosignature line by each `(witness, timestamp)` appended.
pub fn cosign(note: &str, by: &[(&lineage_ledger::cosignature::CosignerSigner, u64)]) -> String {
    let mut note = lineage_ledger::note::Note::parse(note.as_bytes()).expect("note");
    let checkpoint = Checkpoint::parse(&note.text).expect("checkpoint");
    for (w, t) in by {
        note.signatures
            .push(w.sign(&checkpoint, *t).expect("cosign"));
    }
    note.to_string()
}

/// A tlog-policy: an optional `log` line, `witness w<n>` lines, then `rest`
/// (groups and the quorum).
pub fn policy_text(
    log_vkey: Option<&str>,
    witnesses: &[&lineage_ledger::cosignature::CosignerSigner],
    rest: &str,
) -> String {
    let mut text = String::from("# a test policy\n");
    if let Some(v) = log_vkey {
        text += &format!("log {v}\n");
    }
    for w in witnesses {
        let n = w.name().trim_start_matches("witness.test/");
        text += &format!("witness {n} {}\n", w.verifier().vkey());
    }
    text + rest
}

impl Fixture {
    /// The receipt of entry `index` as a C2SP tlog-proof over `note` (a
    /// checkpoint of the first `size` entries, cosigned or not): the log
    /// entry in its `extra` line.
    pub fn tlog_proof(&self, index: u64, size: u64, note: &str) -> String {
        let nodes = MemNodes::new(self.leaves(size));
        let proof = prove_inclusion(index, size, &nodes).expect("proof");
        let p = lineage_ledger::tlog_proof::TlogProof::new(
            Some(self.entries[index as usize].clone()),
            index,
            proof,
            note.to_owned(),
        )
        .expect("tlog-proof");
        String::from_utf8(p.to_bytes()).expect("utf-8")
    }
}
