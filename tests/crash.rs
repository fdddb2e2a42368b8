//! Crash harness: the real `lineage serve` binary under concurrent signed
//! ingest, killed with SIGKILL at random moments many times in a row and
//! restarted on the same data directory.
//!
//! After every restart, against what the clients were told:
//! - every entry a client got a 2xx receipt for is at the receipt's index,
//!   byte for byte (through the entry bundles, and once through
//!   `GET /v1/entries/{i}`);
//! - the tree verifies: every entry is fetched from the tlog-tiles entry
//!   bundles, the root is recomputed over the leaf hashes and matches the
//!   signed `/checkpoint`, which verifies with the log key;
//! - every checkpoint a receipt ever carried verifies, is a prefix of the
//!   recomputed tree, and (once each, plus the previous head every time) is
//!   proven consistent with the current checkpoint by `/v1/proofs/consistency`;
//! - no index is skipped or duplicated: sizes only grow, the entry count is
//!   the tree size, an event ID sits at one index only, and every workload's
//!   chain in the log is contiguous with matching `prev`.
//!
//! Clients resume after a kill the way a real runtime must: a request that
//! failed may or may not have landed, so the identical envelope is sent again
//! (`200` or `201` says which) before the chain moves on. At the end every
//! client has settled, and the log holds exactly the acknowledged envelopes.
//!
//! `LINEAGE_CRASH_KILLS` (default 50) sets the number of kills,
//! `LINEAGE_CRASH_SEED` the schedule's seed (printed on every run).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{key, now, rfc3339};
use ed25519_dalek::SigningKey;
use lineage_ledger::checkpoint::verify_checkpoint;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::entry::{EntryType, LogEntry};
use lineage_ledger::event::parse_event;
use lineage_ledger::keys::{EventId, public_key_base64};
use lineage_ledger::note::NoteVerifier;
use lineage_ledger::tile::{TilePath, decode_bundle};
use lineage_ledger::tree::{MemNodes, root, verify_consistency, verify_inclusion};
use lineage_ledger::{Hash, TILE_WIDTH, leaf_hash};
use serde_json::{Value, json};
use tokio::sync::watch;

const BIN: &str = env!("CARGO_BIN_EXE_lineage");
const ORIGIN: &str = "crash.lineage/log";
const DEFAULT_KILLS: u64 = 50;
const DEFAULT_SEED: u64 = 0x6c69_6e65_6167_6521;
/// Client tasks: `Single` ones post one envelope at a time, `Array` ones
/// post runs of consecutive events of their chain, `Rotate` rotates its
/// runtime's key (grant, then revoke the old one) between events.
const CLIENTS: [Mode; 8] = [
    Mode::Single,
    Mode::Single,
    Mode::Single,
    Mode::Array,
    Mode::Array,
    Mode::Single,
    Mode::Array,
    Mode::Rotate,
];
/// Runtimes shared by the `Single` and `Array` clients.
const RUNTIMES: usize = 3;

/// SplitMix64: a seeded, dependency-free schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not an unsigned integer")),
        Err(_) => default,
    }
}

// ---------------------------------------------------------------------------
// The server process.

struct Server {
    child: Child,
    url: String,
    vkey: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// SIGKILL: no shutdown hook, no flush, nothing.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL the server");
        self.child.wait().expect("reap the server");
    }
}

struct Harness {
    data: PathBuf,
    log: PathBuf,
    authority: String,
}

impl Harness {
    fn spawn(&self) -> Child {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log");
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--origin", ORIGIN])
            .args(["--authority", &self.authority, "--data-dir"])
            .arg(&self.data)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn lineage serve")
    }

    /// Starts the server, then waits (bounded) until it listens and
    /// `/readyz` answers 200.
    async fn start(&self) -> Server {
        let mut child = self.spawn();
        let stdout = child.stdout.take().expect("stdout");
        let mut server = Server {
            child,
            url: String::new(),
            vkey: String::new(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads the banner, then keeps draining stdout until the process dies.
        std::thread::spawn(move || {
            let mut vkey = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(v) = line.strip_prefix("lineage: vkey ") {
                    vkey = v.to_owned();
                }
                if let Some(u) = line.strip_prefix("lineage: listening on ") {
                    let _ = tx.send((u.to_owned(), vkey.clone()));
                }
            }
        });
        let banner = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(60)))
            .await
            .expect("banner reader");
        let Ok((url, vkey)) = banner else {
            self.fail("the server did not print its address within 60 s");
        };
        server.url = url;
        server.vkey = vkey;
        let http = http_client();
        for _ in 0..3000 {
            if let Ok(r) = http.get(format!("{}/readyz", server.url)).send().await
                && r.status() == 200
            {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.fail("the server did not become ready within 30 s");
    }

    /// Starts a server and kills it a few milliseconds later, wherever it
    /// is in its startup (store recovery, tree load, bind).
    async fn start_and_kill_early(&self, after: Duration) {
        let child = self.spawn();
        let server = Server {
            child,
            url: String::new(),
            vkey: String::new(),
        };
        tokio::time::sleep(after).await;
        server.kill();
    }

    /// Fails the test, with the end of the server's log.
    fn fail(&self, msg: &str) -> ! {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "{msg}\n--- server log (last 40 lines) ---\n{}",
            tail.join("\n")
        );
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("http client")
}

// ---------------------------------------------------------------------------
// What the clients were told.

/// One acknowledged envelope: its receipt, checked by the client.
#[derive(Clone, Debug)]
struct Ack {
    index: u64,
    entry: Vec<u8>,
    event_id: EventId,
    /// The receipt's checkpoint size and note.
    checkpoint_size: u64,
    checkpoint: Arc<str>,
    /// Checked through `GET /v1/entries/{index}` already.
    read_back: bool,
}

/// How batches that failed at least once were settled.
#[derive(Default)]
struct Stats {
    /// Batches sent again after a failed attempt.
    resent: u64,
    /// Of those sent alone: answered 200 (it had landed before the crash).
    resent_200: u64,
    /// ... or 201 (it had not).
    resent_201: u64,
}

struct Shared {
    acks: Mutex<Vec<Ack>>,
    /// Event IDs (not governance) acknowledged so far: parents to name.
    events: Mutex<Vec<EventId>>,
    /// Number of acknowledgements, for the kill schedule.
    count: watch::Sender<u64>,
    failures: Mutex<Vec<String>>,
    stats: Mutex<Stats>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The server the clients should talk to, and a fresh connection pool for it.
struct Generation {
    n: u64,
    url: String,
    http: reqwest::Client,
}

// ---------------------------------------------------------------------------
// Clients.

#[derive(Clone, Copy, Debug)]
enum Mode {
    Single,
    Array,
    Rotate,
}

struct Chain {
    workload: String,
    next_seq: u64,
    prev: Option<EventId>,
    left: u64,
}

struct Client {
    id: usize,
    mode: Mode,
    runtime: String,
    key: SigningKey,
    authority: SigningKey,
    verifier: NoteVerifier,
    shared: Arc<Shared>,
    rng: Rng,
    chain: Chain,
    workloads: u64,
    events: u64,
    rotations: u64,
    /// A revocation of the previous key, due right after its successor's grant.
    revoke: Option<SigningKey>,
}

enum Sent {
    Receipts(u16, Vec<Value>),
    /// The server died, restarted or refused for now: the batch may or may
    /// not have landed; send it again, identical.
    Retry,
    Fatal(String),
}

impl Client {
    fn new_chain(&mut self) {
        self.workloads += 1;
        self.chain = Chain {
            workload: format!("c{}-w{}", self.id, self.workloads),
            next_seq: 0,
            prev: None,
            left: self.rng.range(5, 40),
        };
    }

    fn next_event(&mut self) -> SignedEnvelope {
        if self.chain.left == 0 {
            self.new_chain();
        }
        let seq = self.chain.next_seq;
        let mut p = json!({
            "runtime": self.runtime,
            "workload": self.chain.workload,
            "seq": seq,
            "kind": if seq == 0 { "workload.start" } else { "tool.invoke" },
            "at": rfc3339(now()),
            "attrs": {"client": self.id, "n": self.events},
        });
        if let Some(prev) = self.chain.prev {
            p["prev"] = json!(prev.to_string());
        }
        if seq == 0 {
            // Cross-workload lineage: name up to two acknowledged events.
            let known = lock(&self.shared.events).clone();
            let mut parents: Vec<String> = Vec::new();
            for _ in 0..self.rng.range(0, 2) {
                if known.is_empty() {
                    break;
                }
                let p = known[self.rng.range(0, known.len() as u64 - 1) as usize].to_string();
                if !parents.contains(&p) {
                    parents.push(p);
                }
            }
            if !parents.is_empty() {
                p["parents"] = json!(parents);
            }
        }
        let env = SignedEnvelope::sign(
            PayloadType::Event,
            serde_json::to_vec(&p).expect("json"),
            &self.key,
        );
        // The batch is sent until acknowledged, never dropped, so the chain
        // can move on as soon as the event exists.
        self.chain.next_seq += 1;
        self.chain.prev = Some(env.event_id());
        self.chain.left -= 1;
        self.events += 1;
        env
    }

    fn governance(&self, action: &str, k: &SigningKey) -> SignedEnvelope {
        let p = json!({
            "action": action,
            "runtime": self.runtime,
            "public_key": public_key_base64(&k.verifying_key()),
            "at": rfc3339(now()),
        });
        SignedEnvelope::sign(
            PayloadType::Governance,
            serde_json::to_vec(&p).expect("json"),
            &self.authority,
        )
    }

    /// The next batch, and whether it goes as a JSON array.
    fn next_batch(&mut self) -> (Vec<SignedEnvelope>, bool) {
        match self.mode {
            Mode::Single => (vec![self.next_event()], false),
            Mode::Array => {
                let n = self.rng.range(1, 6);
                ((0..n).map(|_| self.next_event()).collect(), true)
            }
            Mode::Rotate => {
                if let Some(old) = self.revoke.take() {
                    return (vec![self.governance("revoke", &old)], false);
                }
                if self.events > 0 && self.rng.one_in(12) {
                    self.rotations += 1;
                    let next = key(&format!("crash-rotate-{}", self.rotations));
                    let grant = self.governance("grant", &next);
                    self.revoke = Some(std::mem::replace(&mut self.key, next));
                    return (vec![grant], false);
                }
                (vec![self.next_event()], false)
            }
        }
    }

    async fn send(g: &Generation, batch: &[SignedEnvelope], array: bool) -> Sent {
        let wires: Vec<_> = batch.iter().map(SignedEnvelope::to_wire).collect();
        let body = if array {
            serde_json::to_vec(&wires)
        } else {
            serde_json::to_vec(&wires[0])
        }
        .expect("json");
        let resp = match g
            .http
            .post(format!("{}/v1/entries", g.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(_) => return Sent::Retry,
        };
        let status = resp.status().as_u16();
        let Ok(bytes) = resp.bytes().await else {
            return Sent::Retry;
        };
        let v: Value = match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(_) if status >= 500 => return Sent::Retry,
            Err(e) => return Sent::Fatal(format!("{status}: unparseable answer: {e}")),
        };
        if status == 503 {
            return Sent::Retry;
        }
        match (array, status) {
            (false, 200 | 201) => Sent::Receipts(status, vec![v]),
            (true, 200) => {
                let items = v.as_array().cloned().unwrap_or_default();
                for item in &items {
                    match item["code"].as_str() {
                        None => {}
                        Some("store_unavailable" | "overloaded") => return Sent::Retry,
                        Some(_) => return Sent::Fatal(format!("array item refused: {item}")),
                    }
                }
                Sent::Receipts(status, items)
            }
            _ => Sent::Fatal(format!("{status}: {v}")),
        }
    }

    /// Checks each receipt offline (checkpoint signature, inclusion proof,
    /// the entry is the envelope sent) and records it.
    fn accept(&self, batch: &[SignedEnvelope], receipts: &[Value]) -> Result<(), String> {
        if receipts.len() != batch.len() {
            return Err(format!(
                "{} receipts for {} envelopes",
                receipts.len(),
                batch.len()
            ));
        }
        let mut acks = Vec::with_capacity(batch.len());
        for (env, r) in batch.iter().zip(receipts) {
            acks.push(check_receipt(r, env, &self.verifier)?);
        }
        let n = acks.len() as u64;
        {
            let mut events = lock(&self.shared.events);
            for (env, _) in batch.iter().zip(&acks) {
                if env.payload_type == PayloadType::Event {
                    events.push(env.event_id());
                }
            }
        }
        lock(&self.shared.acks).extend(acks);
        self.shared.count.send_modify(|c| *c += n);
        Ok(())
    }

    async fn run(
        mut self,
        mut gens: watch::Receiver<Arc<Generation>>,
        stop: watch::Receiver<bool>,
    ) {
        let mut pending: Option<(Vec<SignedEnvelope>, bool)> = None;
        let mut resent = false;
        loop {
            if pending.is_none() {
                if *stop.borrow() {
                    return;
                }
                pending = Some(self.next_batch());
                resent = false;
            }
            let Some((batch, array)) = &pending else {
                continue;
            };
            let g = gens.borrow_and_update().clone();
            match Client::send(&g, batch, *array).await {
                Sent::Receipts(status, receipts) => {
                    if let Err(e) = self.accept(batch, &receipts) {
                        lock(&self.shared.failures).push(format!("client {}: {e}", self.id));
                        return;
                    }
                    if resent {
                        let mut stats = lock(&self.shared.stats);
                        stats.resent += 1;
                        match (*array, status) {
                            (false, 200) => stats.resent_200 += 1,
                            (false, _) => stats.resent_201 += 1,
                            (true, _) => {}
                        }
                    }
                    pending = None;
                }
                Sent::Retry => {
                    resent = true;
                    // Back off until the next server is published, or briefly
                    // (a 503 from a live server, or the last generation).
                    let n = g.n;
                    tokio::select! {
                        r = gens.wait_for(|g| g.n > n) => if r.is_err() { return },
                        () = tokio::time::sleep(Duration::from_millis(50)) => {}
                    }
                }
                Sent::Fatal(e) => {
                    lock(&self.shared.failures)
                        .push(format!("client {} ({:?}): {e}", self.id, self.mode));
                    return;
                }
            }
        }
    }
}

fn check_receipt(r: &Value, env: &SignedEnvelope, verifier: &NoteVerifier) -> Result<Ack, String> {
    let note = r["checkpoint"]
        .as_str()
        .ok_or("receipt without checkpoint")?;
    let cp = verify_checkpoint(note.as_bytes(), verifier, ORIGIN)
        .map_err(|e| format!("receipt checkpoint: {e}"))?;
    let cp = cp.checkpoint();
    let entry = STANDARD
        .decode(r["entry"].as_str().ok_or("receipt without entry")?)
        .map_err(|e| format!("receipt entry: {e}"))?;
    let index = r["index"].as_u64().ok_or("receipt without index")?;
    let proof = r["inclusion_proof"]
        .as_array()
        .ok_or("receipt without proof")?
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("receipt proof: {e}"))?;
    verify_inclusion(&leaf_hash(&entry), index, cp.size, &proof, &cp.root)
        .map_err(|e| format!("receipt inclusion at {index}: {e}"))?;
    let decoded = LogEntry::decode(&entry).map_err(|e| format!("receipt entry: {e}"))?;
    if decoded.to_envelope() != *env {
        return Err(format!("the receipt at {index} is not the envelope sent"));
    }
    if r["event_id"].as_str() != Some(env.event_id().to_string().as_str()) {
        return Err(format!(
            "receipt event_id {} is not the envelope's",
            r["event_id"]
        ));
    }
    Ok(Ack {
        index,
        entry,
        event_id: env.event_id(),
        checkpoint_size: cp.size,
        checkpoint: Arc::from(note),
        read_back: false,
    })
}

// ---------------------------------------------------------------------------
// Verification after a restart.

#[derive(Default)]
struct Audit {
    /// Tree size at the previous restart.
    last_size: u64,
    /// The previous head checkpoint (size, root).
    last_head: Option<(u64, Hash)>,
    /// Receipt checkpoints already verified: size -> root.
    checkpoints: BTreeMap<u64, Hash>,
    /// Receipt checkpoint notes by size: one size, one note.
    notes: BTreeMap<u64, Arc<str>>,
    /// Receipt checkpoints already proven consistent through the API.
    proven: std::collections::BTreeSet<u64>,
    /// Every entry ever seen, by index: a crash must not change one.
    seen: Vec<Vec<u8>>,
    consistency_proofs: u64,
    entries_read_back: u64,
}

async fn get(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let r = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let status = r.status();
    let b = r.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
    if status != 200 {
        return Err(format!(
            "GET {url}: {status}: {}",
            String::from_utf8_lossy(&b)
        ));
    }
    Ok(b.to_vec())
}

async fn consistency(
    http: &reqwest::Client,
    url: &str,
    first: (u64, Hash),
    second: (u64, Hash),
) -> Result<(), String> {
    let body = get(
        http,
        &format!(
            "{url}/v1/proofs/consistency?first={}&second={}",
            first.0, second.0
        ),
    )
    .await?;
    let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
    let proof = v["proof"]
        .as_array()
        .ok_or("consistency answer without proof")?
        .iter()
        .map(|h| Hash::from_base64(h.as_str().unwrap_or_default()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    verify_consistency(first.0, second.0, &first.1, &second.1, &proof).map_err(|e| {
        format!(
            "checkpoint {} is not consistent with {}: {e}",
            first.0, second.0
        )
    })
}

impl Audit {
    /// Every check of the module docs against the running server.
    async fn check(
        &mut self,
        server: &Server,
        verifier: &NoteVerifier,
        shared: &Shared,
    ) -> Result<u64, String> {
        let http = http_client();
        let url = &server.url;
        // Receipts first: each was issued before the head read below, so
        // each must be covered by it.
        let acks: Vec<Ack> = lock(&shared.acks).clone();
        let note = get(&http, &format!("{url}/checkpoint")).await?;
        let head = verify_checkpoint(&note, verifier, ORIGIN)
            .map_err(|e| format!("/checkpoint does not verify: {e}"))?;
        let (size, head_root) = (head.checkpoint().size, head.checkpoint().root);
        if size < self.last_size {
            return Err(format!("the tree shrank from {} to {size}", self.last_size));
        }

        // Every entry, from the entry bundles.
        let mut entries: Vec<Vec<u8>> = Vec::with_capacity(size as usize);
        let mut tile = 0;
        while (entries.len() as u64) < size {
            let width = (size - tile * TILE_WIDTH).min(TILE_WIDTH) as u16;
            let path = TilePath::entries(tile, width).map_err(|e| e.to_string())?;
            let bundle = get(&http, &format!("{url}/{path}")).await?;
            let got = decode_bundle(&bundle).map_err(|e| format!("{path}: {e}"))?;
            if got.len() != usize::from(width) {
                return Err(format!("{path}: {} entries", got.len()));
            }
            entries.extend(got.into_iter().map(<[u8]>::to_vec));
            tile += 1;
        }
        if entries.len() as u64 != size {
            return Err(format!("{} entries for a tree of {size}", entries.len()));
        }
        for (i, old) in self.seen.iter().enumerate() {
            if entries[i] != *old {
                return Err(format!("entry {i} changed across a restart"));
            }
        }

        // The tree, recomputed over the leaf hashes.
        let nodes = MemNodes::new(entries.iter().map(|e| leaf_hash(e)).collect());
        let computed = root(size, &nodes).map_err(|e| e.to_string())?;
        if computed != head_root {
            return Err(format!(
                "the signed root of size {size} is {head_root}, the entries give {computed}"
            ));
        }

        // Each event at one index; each workload chain contiguous.
        let mut at: HashMap<EventId, u64> = HashMap::with_capacity(entries.len());
        let mut chains: HashMap<String, (u64, EventId)> = HashMap::new();
        for (i, bytes) in entries.iter().enumerate() {
            let e = LogEntry::decode(bytes).map_err(|e| format!("entry {i}: {e}"))?;
            if let Some(j) = at.insert(e.event_id(), i as u64) {
                return Err(format!("event {} at indices {j} and {i}", e.event_id()));
            }
            if e.entry_type != EntryType::Event {
                continue;
            }
            let ev = parse_event(&e.payload).map_err(|e| format!("entry {i}: {e}"))?;
            let w = ev.workload.as_str().to_owned();
            let ok = match (chains.get(&w), ev.prev) {
                (None, None) => ev.seq == 0,
                (Some((seq, id)), Some(prev)) => ev.seq == seq + 1 && prev == *id,
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "entry {i} breaks workload {w}'s chain at seq {}",
                    ev.seq
                ));
            }
            chains.insert(w, (ev.seq, e.event_id()));
        }

        // Every acknowledged entry, at its index, byte for byte.
        for a in &acks {
            if a.index >= size || a.checkpoint_size > size {
                return Err(format!(
                    "acknowledged index {} (checkpoint {}) is beyond the tree of {size}",
                    a.index, a.checkpoint_size
                ));
            }
            if entries[a.index as usize] != a.entry {
                return Err(format!(
                    "acknowledged entry {} has other bytes now",
                    a.index
                ));
            }
            if at.get(&a.event_id) != Some(&a.index) {
                return Err(format!(
                    "event {} is not at its receipt's index {}",
                    a.event_id, a.index
                ));
            }
        }

        // Every receipt checkpoint: signed, a prefix of this tree, and proven
        // consistent with this head by the server (once each).
        let mut notes: BTreeMap<u64, Arc<str>> = BTreeMap::new();
        for a in &acks {
            match notes.get(&a.checkpoint_size) {
                Some(n) if *n != a.checkpoint => {
                    return Err(format!(
                        "two different checkpoints signed for size {}",
                        a.checkpoint_size
                    ));
                }
                _ => {
                    notes.insert(a.checkpoint_size, a.checkpoint.clone());
                }
            }
        }
        for (cp_size, note) in &notes {
            let cp_root = match self.checkpoints.get(cp_size) {
                Some(r) => *r,
                None => {
                    let cp = verify_checkpoint(note.as_bytes(), verifier, ORIGIN)
                        .map_err(|e| format!("receipt checkpoint {cp_size}: {e}"))?;
                    self.checkpoints.insert(*cp_size, cp.checkpoint().root);
                    cp.checkpoint().root
                }
            };
            match self.notes.get(cp_size) {
                Some(n) if n != note => {
                    return Err(format!(
                        "two different checkpoints signed for size {cp_size}"
                    ));
                }
                Some(_) => {}
                None => {
                    self.notes.insert(*cp_size, note.clone());
                }
            }
            let prefix = root(*cp_size, &nodes).map_err(|e| e.to_string())?;
            if prefix != cp_root {
                return Err(format!(
                    "checkpoint {cp_size} is not a prefix of the tree of {size}"
                ));
            }
            if self.proven.insert(*cp_size) {
                consistency(&http, url, (*cp_size, cp_root), (size, head_root)).await?;
                self.consistency_proofs += 1;
                // The log stored the checkpoint with the entries it covers.
                let stored = get(&http, &format!("{url}/v1/checkpoints/{cp_size}")).await?;
                if stored != note.as_bytes() {
                    return Err(format!(
                        "GET /v1/checkpoints/{cp_size} is not the receipt's checkpoint"
                    ));
                }
            }
        }
        if let Some(last) = self.last_head {
            consistency(&http, url, last, (size, head_root)).await?;
            self.consistency_proofs += 1;
        }

        // New receipts, once each, through the entries API.
        let mut read_back = Vec::new();
        for a in acks.iter().filter(|a| !a.read_back) {
            let body = get(&http, &format!("{url}/v1/entries/{}", a.index)).await?;
            let v: Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
            let entry = STANDARD
                .decode(v["bundle"]["entry"].as_str().unwrap_or_default())
                .map_err(|e| e.to_string())?;
            if entry != a.entry {
                return Err(format!("GET /v1/entries/{} gives other bytes", a.index));
            }
            read_back.push(a.index);
        }
        self.entries_read_back += read_back.len() as u64;
        {
            let mut all = lock(&shared.acks);
            let read_back: std::collections::HashSet<u64> = read_back.into_iter().collect();
            for a in all.iter_mut() {
                a.read_back |= read_back.contains(&a.index);
            }
        }

        self.last_size = size;
        self.last_head = Some((size, head_root));
        self.seen = entries;
        Ok(size)
    }
}

// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_entries_survive_repeated_kill_9() {
    let kills = env_u64("LINEAGE_CRASH_KILLS", DEFAULT_KILLS);
    let seed = env_u64("LINEAGE_CRASH_SEED", DEFAULT_SEED);
    println!(
        "crash harness: seed {seed} (LINEAGE_CRASH_SEED), {kills} kills (LINEAGE_CRASH_KILLS)"
    );
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    let authority = key("crash-authority");
    let h = Harness {
        data: dir.path().join("data"),
        log: dir.path().join("server.log"),
        authority: public_key_base64(&authority.verifying_key()),
    };
    let mut rng = Rng(seed);

    let mut server = h.start().await;
    let vkey = server.vkey.clone();
    let verifier = NoteVerifier::from_vkey(&vkey).expect("vkey");

    // Runtime keys, granted before the first kill.
    let grant_http = http_client();
    let runtimes: Vec<(String, SigningKey)> = (0..RUNTIMES)
        .map(|r| (format!("agent/{r}"), key(&format!("crash-runtime-{r}"))))
        .chain(std::iter::once((
            "agent/rotate".to_owned(),
            key("crash-rotate-0"),
        )))
        .collect();
    for (runtime, k) in &runtimes {
        let p = json!({"action": "grant", "runtime": runtime,
            "public_key": public_key_base64(&k.verifying_key()), "at": rfc3339(now())});
        let env = SignedEnvelope::sign(
            PayloadType::Governance,
            serde_json::to_vec(&p).expect("json"),
            &authority,
        );
        let r = grant_http
            .post(format!("{}/v1/entries", server.url))
            .header("content-type", "application/json")
            .body(serde_json::to_vec(&env.to_wire()).expect("json"))
            .send()
            .await
            .expect("grant");
        assert_eq!(r.status(), 201, "grant {runtime}");
    }

    let (count, mut counted) = watch::channel(0u64);
    let shared = Arc::new(Shared {
        acks: Mutex::new(Vec::new()),
        events: Mutex::new(Vec::new()),
        count,
        failures: Mutex::new(Vec::new()),
        stats: Mutex::new(Stats::default()),
    });
    let mut generation = 1;
    let (gens_tx, gens) = watch::channel(Arc::new(Generation {
        n: generation,
        url: server.url.clone(),
        http: http_client(),
    }));
    let (stop_tx, stop) = watch::channel(false);
    let mut clients = Vec::new();
    for (id, mode) in CLIENTS.into_iter().enumerate() {
        let (runtime, k) = match mode {
            Mode::Rotate => runtimes[RUNTIMES].clone(),
            _ => runtimes[id % RUNTIMES].clone(),
        };
        let c = Client {
            id,
            mode,
            runtime,
            key: k,
            authority: authority.clone(),
            verifier: verifier.clone(),
            shared: shared.clone(),
            rng: Rng(seed ^ (id as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d)),
            chain: Chain {
                workload: String::new(),
                next_seq: 0,
                prev: None,
                left: 0,
            },
            workloads: 0,
            events: 0,
            rotations: 0,
            revoke: None,
        };
        clients.push(tokio::spawn(c.run(gens.clone(), stop.clone())));
    }

    let mut audit = Audit::default();
    let mut early_kills = 0;
    for round in 0..kills {
        // Let the clients land a random number of entries, then kill the
        // server a random few milliseconds later, mid-flight.
        let target = *counted.borrow() + rng.range(1, 40);
        let progressed = matches!(
            tokio::time::timeout(Duration::from_secs(30), counted.wait_for(|n| *n >= target),)
                .await,
            Ok(Ok(_))
        );
        let failures = lock(&shared.failures).clone();
        if !failures.is_empty() {
            h.fail(&format!("round {round}: client failures: {failures:#?}"));
        }
        if !progressed {
            h.fail(&format!("round {round}: no client progress in 30 s"));
        }
        tokio::time::sleep(Duration::from_millis(rng.range(0, 15))).await;
        println!(
            "round {round}: kill -9 after {} receipts",
            *counted.borrow()
        );
        server.kill();

        // Sometimes crash it again while it recovers.
        if rng.one_in(8) {
            early_kills += 1;
            h.start_and_kill_early(Duration::from_millis(rng.range(0, 60)))
                .await;
        }
        server = h.start().await;
        if server.vkey != vkey {
            h.fail(&format!(
                "round {round}: the log key changed: {}",
                server.vkey
            ));
        }
        // Clients wait (they failed against the dead server) while the
        // restarted one is audited.
        match audit.check(&server, &verifier, &shared).await {
            Ok(size) => println!(
                "round {round}: restarted and audited at tree size {size} ({:.1?})",
                started.elapsed()
            ),
            Err(e) => h.fail(&format!("round {round} (seed {seed}): {e}")),
        }
        generation += 1;
        gens_tx.send_replace(Arc::new(Generation {
            n: generation,
            url: server.url.clone(),
            http: http_client(),
        }));
    }

    // Let every client settle its last batch, then audit once more: the log
    // holds exactly the acknowledged envelopes.
    stop_tx.send_replace(true);
    for c in clients {
        if tokio::time::timeout(Duration::from_secs(60), c)
            .await
            .is_err()
        {
            h.fail("a client did not settle within 60 s after the last restart");
        }
    }
    let failures = lock(&shared.failures).clone();
    if !failures.is_empty() {
        h.fail(&format!("client failures: {failures:#?}"));
    }
    let size = match audit.check(&server, &verifier, &shared).await {
        Ok(s) => s,
        Err(e) => h.fail(&format!("final audit (seed {seed}): {e}")),
    };
    let acks = lock(&shared.acks).clone();
    let mut acked: Vec<u64> = acks.iter().map(|a| a.index).collect();
    acked.sort_unstable();
    acked.dedup();
    let grants = runtimes.len() as u64;
    assert_eq!(
        acked,
        (grants..size).collect::<Vec<_>>(),
        "every entry after the grants was acknowledged to a client, once"
    );
    let stats = lock(&shared.stats);
    println!(
        "crash harness: {kills} kills (+{early_kills} during recovery) in {:.1?}: {size} entries, \
         {} receipts, {} batches sent again after a failure (alone: {} had landed, {} had not), \
         {} consistency proofs verified ({} distinct receipt checkpoints, each also read back), \
         {} entries read back",
        started.elapsed(),
        acks.len(),
        stats.resent,
        stats.resent_200,
        stats.resent_201,
        audit.consistency_proofs,
        audit.proven.len(),
        audit.entries_read_back,
    );
    assert!(
        size > kills,
        "too little ingest to mean anything: {size} entries"
    );
    drop(server);
}
