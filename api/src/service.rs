//! The running log: shared read state, the sequencer thread, and receipts.
//!
//! **Architecture invariant:** exactly one thread (the sequencer) appends. It
//! takes validated candidates in batches, runs the stateful rules against
//! committed state plus the batch so far, extends the tree, signs the new
//! checkpoint, and commits all of it in one synced store write, and only then
//! answers. Two racing events for the same workload position meet in the
//! sequencer, so at most one is appended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use lineage_ledger::checkpoint::{Checkpoint, sign_checkpoint};
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::entry::LogEntry;
use lineage_ledger::event::{GovernanceAction, WorkloadId, parse_event};
use lineage_ledger::keys::{EventId, KeyId};
use lineage_ledger::note::NoteSigner;
use lineage_ledger::rules::{
    Admission, Authorities, Candidate, KeyRecord, LedgerView, Rejection, RuleContext, WorkloadHead,
    admit, find_identical,
};
use lineage_ledger::store::{
    CommitBatch, FORMAT_VERSION, Store, StoreError, StoreMeta, StoreTiles, StoredCheckpoint,
    open_log,
};
use lineage_ledger::tree::{NodeSource, TreeEdge, plan_append, prove_consistency, prove_inclusion};
use lineage_ledger::{Hash, leaf_hash, node_hash};
use tokio::sync::{mpsc, oneshot};

use crate::clock::{Clock, unix_ms};
use crate::metrics::Metrics;

/// Tunables of the log service. Defaults are in [`LogConfig::default`].
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// The log's origin: checkpoint first line and log key name.
    pub origin: String,
    /// Largest allowed distance between an event's `at` and the ledger clock.
    pub max_skew: time::Duration,
    /// Most entries per sequencer batch (one synced write).
    pub batch_max_entries: usize,
    /// How long the sequencer waits for more work after the first job of a
    /// batch. Zero by default: group commit needs no wait, because requests
    /// queue while the previous batch is being written and synced.
    pub batch_linger: Duration,
    /// Requests that may wait for the sequencer; beyond it ingest answers 503 `overloaded`.
    pub queue_depth: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            origin: "lineage.local/log".into(),
            max_skew: time::Duration::minutes(5),
            batch_max_entries: 4096,
            batch_linger: Duration::ZERO,
            queue_depth: 4096,
        }
    }
}

/// Why the log could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store failed or belongs to another log.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored tiles do not rebuild the tree edge.
    #[error("the stored tree of size {size} cannot be loaded: {detail}")]
    Tree {
        /// The stored size.
        size: u64,
        /// What failed.
        detail: String,
    },
    /// The checkpoint could not be signed.
    #[error("cannot sign checkpoints: {0}")]
    Sign(String),
    /// The sequencer's thread could not be started.
    #[error("cannot start the sequencer thread: {0}")]
    Sequencer(#[source] std::io::Error),
}

/// The outcome of one submitted envelope.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// Newly appended at `index`; `entry` is the encoded log entry.
    Appended {
        /// Its index.
        index: u64,
        /// The encoded entry.
        entry: Arc<Vec<u8>>,
    },
    /// Identical to the entry already at `index`.
    Identical {
        /// Its index.
        index: u64,
    },
    /// Refused by a rule.
    Rejected(Rejection),
    /// Not appended because the store failed.
    Failed,
}

/// The sequencer's answer to one request.
#[derive(Debug)]
pub struct JobReply {
    /// One outcome per candidate, in order.
    pub outcomes: Vec<Outcome>,
    /// The checkpoint of the batch (covers every `Appended` entry).
    pub checkpoint: Arc<StoredCheckpoint>,
}

struct Job {
    items: Vec<Candidate>,
    reply: oneshot::Sender<JobReply>,
}

/// Read-side state shared by request handlers and the sequencer.
pub struct Core {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The log's note signer (its verifier gives the vkey).
    signer: NoteSigner,
    /// The log key in vkey form.
    pub vkey: String,
    /// The trust root.
    pub authorities: Authorities,
    /// Every runtime key, committed state.
    keys: RwLock<HashMap<KeyId, KeyRecord>>,
    /// Events per runtime, committed state.
    runtime_counts: RwLock<HashMap<String, u64>>,
    /// The latest checkpoint.
    head: RwLock<Arc<StoredCheckpoint>>,
    /// The newest version of the tiles on the tree's right edge, as last
    /// committed: receipts for fresh entries are built from these without
    /// store reads. Tile rows only ever grow, so a newer version serves
    /// proofs against any older checkpoint.
    hot_tiles: RwLock<HashMap<(u8, u64), SharedTile>>,
    /// Interior nodes computed for proofs, shared by all requests: a node of
    /// a complete subtree never changes, and consecutive receipts near the
    /// right edge need almost the same ones.
    node_memo: Mutex<Generations<(u8, u64), Hash>>,
    /// False while the sequencer cannot trust its in-memory state.
    healthy: std::sync::atomic::AtomicBool,
    /// Metrics.
    pub metrics: Metrics,
    /// Configuration.
    pub config: LogConfig,
    /// The clock.
    pub clock: Clock,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("origin", &self.config.origin)
            .finish_non_exhaustive()
    }
}

/// A handle on the running log.
#[derive(Debug)]
pub struct LogService {
    core: Arc<Core>,
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    /// Resolves when the sequencer thread has stopped.
    stopped: Mutex<Option<oneshot::Receiver<()>>>,
}

impl std::ops::Deref for LogService {
    type Target = Core;
    fn deref(&self) -> &Core {
        &self.core
    }
}

/// Submission failures that concern the whole request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full.
    Overloaded,
    /// The sequencer stopped (shutdown or a crash).
    Stopped,
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

impl LogService {
    /// Opens (or initialises) the log in `store` and starts the sequencer on
    /// a thread of its own.
    ///
    /// # Errors
    /// A store of another log or format, a damaged store, a signing failure,
    /// no thread for the sequencer.
    pub fn start(
        store: Arc<dyn Store>,
        signer: NoteSigner,
        authorities: Authorities,
        config: LogConfig,
        clock: Clock,
    ) -> Result<LogService, StartError> {
        let vkey = signer.verifier().vkey();
        let meta = StoreMeta {
            format_version: FORMAT_VERSION,
            origin: config.origin.clone(),
            vkey: vkey.clone(),
        };
        let genesis = Checkpoint {
            origin: config.origin.clone(),
            size: 0,
            root: lineage_ledger::EMPTY_ROOT,
            extensions: vec![],
        };
        let note =
            sign_checkpoint(&genesis, &signer).map_err(|e| StartError::Sign(e.to_string()))?;
        let now_ms = unix_ms(clock.now());
        open_log(store.as_ref(), &meta, || StoredCheckpoint {
            size: 0,
            time_ms: now_ms,
            note,
        })?;
        let core = Arc::new(Core {
            store,
            signer,
            vkey,
            authorities,
            keys: RwLock::new(HashMap::new()),
            runtime_counts: RwLock::new(HashMap::new()),
            head: RwLock::new(Arc::new(StoredCheckpoint::default())),
            hot_tiles: RwLock::new(HashMap::new()),
            node_memo: Mutex::new(Generations::new(NODE_MEMO_NODES)),
            healthy: std::sync::atomic::AtomicBool::new(true),
            metrics: Metrics::new(),
            config,
            clock,
        });
        let edge = core.reload()?;
        let (tx, rx) = mpsc::channel(core.config.queue_depth.max(1));
        let stopped = spawn_sequencer(core.clone(), edge, rx).map_err(StartError::Sequencer)?;
        Ok(LogService {
            core,
            tx: Mutex::new(Some(tx)),
            stopped: Mutex::new(Some(stopped)),
        })
    }

    /// The shared core (for handlers that outlive a borrow).
    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Queues candidates for the sequencer and waits for their outcomes.
    ///
    /// # Errors
    /// [`SubmitError::Overloaded`] when the queue is full (nothing queued).
    pub async fn submit(&self, items: Vec<Candidate>) -> Result<JobReply, SubmitError> {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or(SubmitError::Stopped)?;
        let (reply, rx) = oneshot::channel();
        tx.try_send(Job { items, reply }).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Overloaded,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Stopped,
        })?;
        rx.await.map_err(|_| SubmitError::Stopped)
    }

    /// Stops accepting work, lets the sequencer finish what is queued, and
    /// waits for it (so the store can be reopened in the same process).
    pub async fn shutdown(&self) {
        drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take());
        let stopped = self
            .stopped
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(stopped) = stopped {
            let _ = stopped.await;
        }
    }
}

impl Core {
    /// The latest checkpoint.
    pub fn head(&self) -> Arc<StoredCheckpoint> {
        read(&self.head).clone()
    }

    /// False after a failed commit until state was reloaded from the store.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A runtime key by ID (committed state).
    pub fn key(&self, id: &KeyId) -> Option<KeyRecord> {
        read(&self.keys).get(id).cloned()
    }

    /// Every key of a runtime, in grant order.
    pub fn runtime_keys(&self, runtime: &str) -> Vec<KeyRecord> {
        let mut keys: Vec<KeyRecord> = read(&self.keys)
            .values()
            .filter(|k| k.runtime.as_str() == runtime)
            .cloned()
            .collect();
        keys.sort_by_key(|k| k.granted_index);
        keys
    }

    /// Events appended by a runtime.
    pub fn runtime_count(&self, runtime: &str) -> u64 {
        read(&self.runtime_counts)
            .get(runtime)
            .copied()
            .unwrap_or(0)
    }

    /// Checks a candidate's signature now if its key is already known: the
    /// expensive check, done in parallel before the sequencer.
    pub fn precheck(&self, c: &mut Candidate) {
        let key = match c.envelope.payload_type {
            PayloadType::Event => self.key(&c.envelope.key_id).map(|k| k.public_key),
            PayloadType::Governance => self.authorities.get(&c.envelope.key_id).copied(),
        };
        if let Some(key) = key {
            c.precheck_signature(&key);
        }
        c.preparse();
    }

    /// Reloads everything the sequencer keeps in memory from the store.
    fn reload(&self) -> Result<TreeEdge, StartError> {
        let head = self.store.head()?;
        let edge = TreeEdge::load(head.size, &StoreTiles(self.store.as_ref())).map_err(|e| {
            StartError::Tree {
                size: head.size,
                detail: e.to_string(),
            }
        })?;
        let keys = self.store.keys()?;
        let counts = self.store.runtime_counts()?;
        write(&self.hot_tiles).clear();
        lock(&self.node_memo).clear();
        *write(&self.keys) = keys.into_iter().map(|k| (k.key_id, k)).collect();
        *write(&self.runtime_counts) = counts.into_iter().collect();
        self.metrics.tree_size.set(head.size as i64);
        *write(&self.head) = Arc::new(head);
        self.healthy
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(edge)
    }

    /// The receipt (offline-verifiable bundle) for the entry at `index`
    /// against `checkpoint`; `tiles` may be shared across many receipts.
    ///
    /// # Errors
    /// Storage failures or a missing tile (an internal inconsistency).
    pub fn bundle(
        &self,
        index: u64,
        entry: &[u8],
        checkpoint: &StoredCheckpoint,
        nodes: &ProofNodes<'_>,
    ) -> Result<lineage_schemas::Bundle, ReadError> {
        use base64::Engine as _;
        let proof = prove_inclusion(index, checkpoint.size, nodes)
            .map_err(|e| ReadError::Tree(e.to_string()))?;
        Ok(lineage_schemas::Bundle {
            format: lineage_schemas::BUNDLE_FORMAT.to_owned(),
            event_id: EventId::of_payload(
                &LogEntry::decode(entry)
                    .map_err(|e| ReadError::Tree(e.to_string()))?
                    .payload,
            )
            .to_string(),
            index,
            entry: base64::engine::general_purpose::STANDARD.encode(entry),
            checkpoint: checkpoint.note.clone(),
            inclusion_proof: proof.iter().map(Hash::to_base64).collect(),
        })
    }

    /// The receipt of an entry already in the log, against the latest checkpoint.
    ///
    /// # Errors
    /// Storage failures; `NotFound` past the end of the log.
    pub fn bundle_at_head(&self, index: u64) -> Result<lineage_schemas::Bundle, ReadError> {
        let head = self.head();
        if index >= head.size {
            return Err(ReadError::NotFound);
        }
        let entry = self.store.entry(index)?.ok_or(ReadError::NotFound)?;
        self.bundle(index, &entry, &head, &self.proof_nodes())
    }

    /// A node source for proofs: the hot right-edge tiles, then the store.
    pub fn proof_nodes(&self) -> ProofNodes<'_> {
        ProofNodes {
            store: self.store.as_ref(),
            hot: Some(&self.hot_tiles),
            tiles: Mutex::new(HashMap::new()),
            memo: Memo::Shared(&self.node_memo),
        }
    }

    /// Publishes the tiles of a durable commit; keeps, per level, only the
    /// tile at the new right edge and the one before it (bounded memory).
    fn publish_tiles(&self, tiles: &[lineage_ledger::tree::TileWrite], size: u64) {
        let mut hot = write(&self.hot_tiles);
        for t in tiles {
            hot.insert((t.level, t.index), Arc::new(t.to_bytes()));
        }
        hot.retain(|(level, index), _| {
            let shift = 8 * (u32::from(*level) + 1);
            let edge = size.checked_shr(shift).unwrap_or(0);
            *index + 1 >= edge
        });
    }

    /// RFC 6962 inclusion proof of `index` in the tree of `size`.
    ///
    /// # Errors
    /// `OutOfRange` unless `index < size <= current size`.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ReadError> {
        let current = self.head().size;
        if size > current || index >= size {
            return Err(ReadError::OutOfRange);
        }
        prove_inclusion(index, size, &self.proof_nodes())
            .map_err(|e| ReadError::Tree(e.to_string()))
    }

    /// RFC 6962 consistency proof between tree sizes `first` and `second`.
    ///
    /// # Errors
    /// `OutOfRange` unless `first <= second <= current size`.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, ReadError> {
        let current = self.head().size;
        if first > second || second > current {
            return Err(ReadError::OutOfRange);
        }
        prove_consistency(first, second, &self.proof_nodes())
            .map_err(|e| ReadError::Tree(e.to_string()))
    }
}

/// A failed read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Nothing there.
    #[error("not found")]
    NotFound,
    /// Indices or sizes outside the tree.
    #[error("out of range")]
    OutOfRange,
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored tree is inconsistent (a bug or damage).
    #[error("tree: {0}")]
    Tree(String),
}

/// A stored tile row, shared between the nodes read from it.
type SharedTile = Arc<Vec<u8>>;

/// A [`NodeSource`] over the store for one request: each tile is read once
/// (from the hot right-edge tiles when it is one of them). A node inside a
/// tile is hashed straight from the tile's row; subtrees of 16 or more rows
/// are remembered (per request, or across requests for
/// [`Core::proof_nodes`]), so receipts of neighbouring entries, whose audit
/// paths share their larger siblings, do not hash those again.
pub struct ProofNodes<'a> {
    store: &'a dyn Store,
    hot: Option<&'a RwLock<HashMap<(u8, u64), SharedTile>>>,
    tiles: Mutex<HashMap<(u8, u64), SharedTile>>,
    memo: Memo<'a>,
}

/// Where computed nodes are remembered.
enum Memo<'a> {
    /// For this node source only.
    Local(Mutex<HashMap<(u8, u64), Hash>>),
    /// Shared by every request (bounded).
    Shared(&'a Mutex<Generations<(u8, u64), Hash>>),
}

impl Memo<'_> {
    fn get(&self, key: (u8, u64)) -> Option<Hash> {
        match self {
            Memo::Local(m) => lock(m).get(&key).copied(),
            Memo::Shared(m) => lock(m).get(&key).copied(),
        }
    }

    fn insert(&self, key: (u8, u64), h: Hash) {
        match self {
            Memo::Local(m) => {
                lock(m).insert(key, h);
            }
            Memo::Shared(m) => lock(m).insert(key, h),
        }
    }
}

impl std::fmt::Debug for ProofNodes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofNodes").finish_non_exhaustive()
    }
}

/// A node the store cannot give.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tile row holding the node is missing or too short.
    #[error("tile {tile_level}/{tile_index} lacks hash {offset}")]
    Missing {
        /// Tile level.
        tile_level: u8,
        /// Tile index.
        tile_index: u64,
        /// Position in the row.
        offset: u64,
    },
}

impl<'a> ProofNodes<'a> {
    /// An empty cache over `store`.
    pub fn new(store: &'a dyn Store) -> ProofNodes<'a> {
        ProofNodes {
            store,
            hot: None,
            tiles: Mutex::new(HashMap::new()),
            memo: Memo::Local(Mutex::new(HashMap::new())),
        }
    }

    /// The stored tile row (tile level, tile index): hot tiles first, then
    /// this source's own reads, then the store.
    fn tile(&self, tile_level: u8, tile_index: u64) -> Result<SharedTile, NodeError> {
        let key = (tile_level, tile_index);
        if let Some(t) = lock(&self.tiles).get(&key) {
            return Ok(t.clone());
        }
        if let Some(t) = self.hot.and_then(|h| read(h).get(&key).cloned()) {
            return Ok(t);
        }
        let t = Arc::new(self.store.tile(tile_level, tile_index)?.unwrap_or_default());
        lock(&self.tiles).insert(key, t.clone());
        Ok(t)
    }

    /// Hashes `count` consecutive row hashes of tile level `tile_level`,
    /// starting at `first` (all in one tile: `count` is a power of two of
    /// at most 128 and `first` a multiple of it), up to their subtree root.
    fn subtree(&self, tile_level: u8, first: u64, count: usize) -> Result<Hash, NodeError> {
        let tile_index = first / lineage_ledger::TILE_WIDTH;
        let offset = first % lineage_ledger::TILE_WIDTH;
        let missing = || NodeError::Missing {
            tile_level,
            tile_index,
            offset,
        };
        let tile = self.tile(tile_level, tile_index)?;
        let at = offset as usize * 32;
        let row = tile.get(at..at + count * 32).ok_or_else(missing)?;
        let mut level: Vec<Hash> = row
            .chunks_exact(32)
            .map(|c| Hash::from_slice(c).ok_or_else(missing))
            .collect::<Result<_, _>>()?;
        while level.len() > 1 {
            let half = level.len() / 2;
            for i in 0..half {
                level[i] = node_hash(&level[2 * i], &level[2 * i + 1]);
            }
            level.truncate(half);
        }
        level.pop().ok_or_else(missing)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl NodeSource for ProofNodes<'_> {
    type Error = NodeError;

    fn node(&self, level: u8, index: u64) -> Result<Hash, NodeError> {
        let height = level % lineage_ledger::TILE_HEIGHT;
        let tile_level = level / lineage_ledger::TILE_HEIGHT;
        // Subtrees of 16 or more row hashes are worth remembering; smaller
        // ones cost fewer hashes than the bookkeeping would.
        let remember = height >= MEMO_MIN_HEIGHT;
        if remember && let Some(h) = self.memo.get((level, index)) {
            return Ok(h);
        }
        let h = self.subtree(tile_level, index << height, 1 << height)?;
        if remember {
            self.memo.insert((level, index), h);
        }
        Ok(h)
    }
}

/// Interior proof nodes of at least this height within their tile are memoised.
const MEMO_MIN_HEIGHT: u8 = 4;

// ---------------------------------------------------------------------------
// The sequencer.

/// Starts the sequencer on a thread of its own. Its batches do blocking
/// store reads and a synced write: on a shared blocking pool, readers (the
/// explorer's scans, read handlers) could fill the pool and starve ingest.
/// The thread runs a single-threaded runtime only to wait for jobs and the
/// linger timer; all batch work runs inline on it. The returned receiver
/// resolves when the sequencer has stopped.
fn spawn_sequencer(
    core: Arc<Core>,
    edge: TreeEdge,
    rx: mpsc::Receiver<Job>,
) -> std::io::Result<oneshot::Receiver<()>> {
    let (done, stopped) = oneshot::channel();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("lineage-sequencer".into())
        .spawn(move || {
            rt.block_on(sequencer(core, edge, rx));
            let _ = done.send(());
        })?;
    Ok(stopped)
}

async fn sequencer(core: Arc<Core>, mut edge: TreeEdge, mut rx: mpsc::Receiver<Job>) {
    let mut needs_reload = false;
    let mut heads = HeadCache::new(HEAD_CACHE_WORKLOADS);
    while let Some(first) = rx.recv().await {
        let mut count = first.items.len();
        let mut jobs = vec![first];
        let deadline = tokio::time::Instant::now() + core.config.batch_linger;
        while count < core.config.batch_max_entries {
            match rx.try_recv() {
                Ok(job) => {
                    count += job.items.len();
                    jobs.push(job);
                    continue;
                }
                Err(mpsc::error::TryRecvError::Disconnected) => break,
                Err(mpsc::error::TryRecvError::Empty) => {}
            }
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(job)) => {
                    count += job.items.len();
                    jobs.push(job);
                }
                _ => break,
            }
        }
        // The batch runs inline: this thread is the sequencer's alone.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            if needs_reload {
                heads.clear();
                match core.reload() {
                    Ok(e) => {
                        edge = e;
                        needs_reload = false;
                    }
                    Err(e) => tracing::error!(error = %e, "reloading state after a failed commit"),
                }
            }
            !needs_reload && process(&core, &mut edge, &mut heads, jobs.as_mut_slice())
        }));
        let ok = match ran {
            Ok(ok) => ok,
            Err(_) => {
                // The batch panicked: nothing of it is acknowledged; the
                // in-memory state is reloaded below.
                tracing::error!("sequencer batch panicked");
                heads = HeadCache::new(HEAD_CACHE_WORKLOADS);
                false
            }
        };
        needs_reload = !ok;
        if !ok {
            core.healthy
                .store(false, std::sync::atomic::Ordering::Relaxed);
            fail_jobs(&core, jobs);
        }
    }
}

/// Answers every job of a failed batch with `Failed` (identical
/// resubmissions and rule rejections are not affected by the store failure,
/// but are failed too: the whole batch's state is unknown).
fn fail_jobs(core: &Core, jobs: Vec<Job>) {
    let checkpoint = core.head();
    for job in jobs {
        let outcomes = vec![Outcome::Failed; job.items.len()];
        let _ = job.reply.send(JobReply {
            outcomes,
            checkpoint: checkpoint.clone(),
        });
    }
}

/// Validates and commits one batch. Returns false when the store failed
/// (the jobs are then still unanswered).
fn process(core: &Core, edge: &mut TreeEdge, heads: &mut HeadCache, jobs: &mut [Job]) -> bool {
    let started = Instant::now();
    // The rules judge with the integration millisecond every admitted entry
    // stores, never with a finer clock: the auditor replays with exactly it.
    let integrated_at_ms = unix_ms(core.clock.now());
    let Some(ctx) = RuleContext::at(&core.authorities, integrated_at_ms, core.config.max_skew)
    else {
        tracing::error!(
            integrated_at_ms,
            "the clock is outside the representable range"
        );
        return false;
    };
    let now = ctx.now();
    let mut batch = Batch::new(core.store.as_ref(), &core.keys, heads, edge.size());
    let mut outcomes: Vec<Vec<Outcome>> = Vec::with_capacity(jobs.len());
    for job in jobs.iter() {
        let mut out = Vec::with_capacity(job.items.len());
        for c in &job.items {
            match batch.decide(c, &ctx, integrated_at_ms) {
                Ok(o) => out.push(o),
                Err(e) => {
                    tracing::error!(error = %e, "store read failed during validation");
                    return false;
                }
            }
        }
        outcomes.push(out);
    }
    let new_heads = std::mem::take(&mut batch.heads);
    let checkpoint = if batch.entries.is_empty() {
        core.head()
    } else {
        match commit(core, edge, batch, now) {
            Ok(cp) => {
                heads.absorb(new_heads);
                cp
            }
            Err(e) => {
                tracing::error!(error = %e, "commit failed; nothing of the batch is acknowledged");
                core.metrics.commit_failures.inc();
                return false;
            }
        }
    };
    core.metrics
        .commit_seconds
        .observe(started.elapsed().as_secs_f64());
    for (job, outcomes) in jobs.iter_mut().zip(outcomes) {
        core.metrics
            .recent_rejections
            .note(&job.items, &outcomes, integrated_at_ms, |id| {
                core.key(id).map(|k| k.runtime.as_str().to_owned())
            });
        for o in &outcomes {
            match o {
                Outcome::Rejected(r) => core.metrics.reject(r.code()),
                Outcome::Identical { .. } => {
                    core.metrics.duplicates.inc();
                }
                Outcome::Appended { .. } | Outcome::Failed => {}
            }
        }
        let (tx, _) = oneshot::channel();
        let reply = std::mem::replace(&mut job.reply, tx);
        let _ = reply.send(JobReply {
            outcomes,
            checkpoint: checkpoint.clone(),
        });
    }
    true
}

fn commit(
    core: &Core,
    edge: &mut TreeEdge,
    batch: Batch<'_>,
    now: time::OffsetDateTime,
) -> Result<Arc<StoredCheckpoint>, CommitError> {
    let n = batch.entries.len();
    let leaves: Vec<Hash> = batch.entries.iter().map(|e| leaf_hash(e)).collect();
    let plan = plan_append(edge, &leaves);
    let cp = Checkpoint {
        origin: core.config.origin.clone(),
        size: plan.edge.size(),
        root: plan.edge.root(),
        extensions: vec![],
    };
    let note = sign_checkpoint(&cp, &core.signer).map_err(|e| CommitError::Sign(e.to_string()))?;
    let checkpoint = StoredCheckpoint {
        size: cp.size,
        time_ms: unix_ms(now),
        note,
    };
    let mut counts = read(&core.runtime_counts).clone();
    let mut touched: Vec<String> = Vec::new();
    for r in &batch.runtime_events {
        *counts.entry(r.clone()).or_insert(0) += 1;
        if !touched.contains(r) {
            touched.push(r.clone());
        }
    }
    let commit = CommitBatch {
        first_index: edge.size(),
        entries: batch.entries.iter().map(|e| e.as_ref().clone()).collect(),
        tiles: plan.tiles,
        events: batch.events_out,
        workloads: batch.workloads_out,
        children: batch.children_out,
        keys: batch.new_keys.values().cloned().collect(),
        runtime_counts: touched
            .iter()
            .map(|r| (r.clone(), counts.get(r).copied().unwrap_or(0)))
            .collect(),
        checkpoint: checkpoint.clone(),
    };
    let write_started = Instant::now();
    core.store.commit(&commit)?;
    core.metrics
        .store_write_seconds
        .observe(write_started.elapsed().as_secs_f64());
    // Durable: publish the new state.
    core.publish_tiles(&commit.tiles, commit.checkpoint.size);
    *edge = plan.edge;
    {
        let mut keys = write(&core.keys);
        for k in batch.new_keys.into_values() {
            keys.insert(k.key_id, k);
        }
    }
    *write(&core.runtime_counts) = counts;
    let checkpoint = Arc::new(checkpoint);
    *write(&core.head) = checkpoint.clone();
    core.metrics.entries.inc_by(n as u64);
    core.metrics.batch_entries.observe(n as f64);
    core.metrics.tree_size.set(checkpoint.size as i64);
    Ok(checkpoint)
}

#[derive(Debug, thiserror::Error)]
enum CommitError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing the checkpoint: {0}")]
    Sign(String),
}

/// The batch being assembled: committed state plus what this batch adds,
/// seen by the rules as one [`LedgerView`].
struct Batch<'a> {
    store: &'a dyn Store,
    keys: &'a RwLock<HashMap<KeyId, KeyRecord>>,
    /// Committed workload heads recently seen (a cache of the store).
    committed_heads: &'a HeadCache,
    /// The last event-ID lookup in the store: the identical-resubmission
    /// check and the duplicate check ask for the same ID one after another.
    last_lookup: std::cell::Cell<Option<(EventId, Option<u64>)>>,
    next_index: u64,
    new_keys: HashMap<KeyId, KeyRecord>,
    pending: HashMap<EventId, (u64, SignedEnvelope)>,
    positions: HashMap<(String, u64), EventId>,
    heads: HashMap<String, WorkloadHead>,
    entries: Vec<Arc<Vec<u8>>>,
    events_out: Vec<(EventId, u64)>,
    workloads_out: Vec<(String, u64, u64)>,
    children_out: Vec<(EventId, u64)>,
    runtime_events: Vec<String>,
}

impl<'a> Batch<'a> {
    fn new(
        store: &'a dyn Store,
        keys: &'a RwLock<HashMap<KeyId, KeyRecord>>,
        committed_heads: &'a HeadCache,
        size: u64,
    ) -> Batch<'a> {
        Batch {
            store,
            keys,
            committed_heads,
            last_lookup: std::cell::Cell::new(None),
            next_index: size,
            new_keys: HashMap::new(),
            pending: HashMap::new(),
            positions: HashMap::new(),
            heads: HashMap::new(),
            entries: Vec::new(),
            events_out: Vec::new(),
            workloads_out: Vec::new(),
            children_out: Vec::new(),
            runtime_events: Vec::new(),
        }
    }

    fn stored_entry(&self, index: u64) -> Result<LogEntry, StoreError> {
        let bytes = self.store.entry(index)?.ok_or(StoreError::Corrupt {
            what: "entry (indexed but missing)",
            key: index.to_string(),
        })?;
        LogEntry::decode(&bytes).map_err(|_| StoreError::Corrupt {
            what: "entry",
            key: index.to_string(),
        })
    }

    fn decide(
        &mut self,
        c: &Candidate,
        ctx: &RuleContext<'_>,
        integrated_at_ms: u64,
    ) -> Result<Outcome, StoreError> {
        if let Some(index) = find_identical(c, &*self)? {
            return Ok(Outcome::Identical { index });
        }
        let admission = match admit(c, &*self, ctx)? {
            Ok(a) => a,
            Err(r) => return Ok(Outcome::Rejected(r)),
        };
        let index = self.next_index;
        self.next_index += 1;
        let entry = Arc::new(LogEntry::from_envelope(&c.envelope, integrated_at_ms).encode());
        self.entries.push(entry.clone());
        self.events_out.push((c.event_id, index));
        self.pending.insert(c.event_id, (index, c.envelope.clone()));
        match admission {
            Admission::Event(event) => {
                let w = event.workload.as_str().to_owned();
                self.positions.insert((w.clone(), event.seq), c.event_id);
                self.heads.insert(
                    w.clone(),
                    WorkloadHead {
                        seq: event.seq,
                        event_id: c.event_id,
                        runtime: event.runtime.clone(),
                    },
                );
                self.workloads_out.push((w, event.seq, index));
                for p in event.prev.iter().chain(event.parents.iter()) {
                    self.children_out.push((*p, index));
                }
                self.runtime_events.push(event.runtime.as_str().to_owned());
            }
            Admission::Governance(g) => {
                let record = match g.action {
                    GovernanceAction::Grant => KeyRecord {
                        key_id: g.key_id,
                        public_key: g.public_key,
                        runtime: g.runtime.clone(),
                        granted_index: index,
                        revoked_index: None,
                    },
                    GovernanceAction::Revoke => {
                        // admit() checked the key exists and is active.
                        let mut k = self.key_record(&g.key_id).ok_or(StoreError::Corrupt {
                            what: "key (revoked but unknown)",
                            key: g.key_id.to_string(),
                        })?;
                        k.revoked_index = Some(index);
                        k
                    }
                };
                self.new_keys.insert(record.key_id, record);
            }
        }
        Ok(Outcome::Appended { index, entry })
    }

    fn stored_event_index(&self, id: &EventId) -> Result<Option<u64>, StoreError> {
        if let Some((last, found)) = self.last_lookup.get()
            && last == *id
        {
            return Ok(found);
        }
        let found = self.store.event_index(id)?;
        self.last_lookup.set(Some((*id, found)));
        Ok(found)
    }

    fn key_record(&self, id: &KeyId) -> Option<KeyRecord> {
        match self.new_keys.get(id) {
            Some(k) => Some(k.clone()),
            None => read(self.keys).get(id).cloned(),
        }
    }
}

impl LedgerView for Batch<'_> {
    type Error = StoreError;

    fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Ok(self.key_record(id))
    }

    fn event_index(&self, id: &EventId) -> Result<Option<u64>, StoreError> {
        if let Some((i, _)) = self.pending.get(id) {
            return Ok(Some(*i));
        }
        self.stored_event_index(id)
    }

    fn event_envelope(&self, id: &EventId) -> Result<Option<(u64, SignedEnvelope)>, StoreError> {
        if let Some((i, e)) = self.pending.get(id) {
            return Ok(Some((*i, e.clone())));
        }
        match self.stored_event_index(id)? {
            None => Ok(None),
            Some(i) => Ok(Some((i, self.stored_entry(i)?.to_envelope()))),
        }
    }

    fn workload_event(&self, w: &WorkloadId, seq: u64) -> Result<Option<EventId>, StoreError> {
        // A workload's positions are 0..=head.seq with no gap (the sequence
        // rule), so the head answers the common cases without a store read.
        match self.workload_head(w)? {
            None => return Ok(None),
            Some(head) if seq > head.seq => return Ok(None),
            Some(head) if seq == head.seq => return Ok(Some(head.event_id)),
            Some(_) => {}
        }
        if let Some(id) = self.positions.get(&(w.as_str().to_owned(), seq)) {
            return Ok(Some(*id));
        }
        match self.store.workload_index(w.as_str(), seq)? {
            None => Ok(None),
            Some(i) => Ok(Some(self.stored_entry(i)?.event_id())),
        }
    }

    fn workload_head(&self, w: &WorkloadId) -> Result<Option<WorkloadHead>, StoreError> {
        if let Some(h) = self.heads.get(w.as_str()) {
            return Ok(Some(h.clone()));
        }
        if let Some(h) = self.committed_heads.get(w.as_str()) {
            return Ok(Some(h.clone()));
        }
        // Most uncached workloads are new ones: a point lookup of position 0
        // (answered by a bloom filter) says so without a store iterator.
        if self.store.workload_index(w.as_str(), 0)?.is_none() {
            return Ok(None);
        }
        let Some((seq, index)) = self.store.workload_last(w.as_str())? else {
            return Ok(None);
        };
        let entry = self.stored_entry(index)?;
        let event = parse_event(&entry.payload).map_err(|_| StoreError::Corrupt {
            what: "event payload",
            key: index.to_string(),
        })?;
        Ok(Some(WorkloadHead {
            seq,
            event_id: entry.event_id(),
            runtime: event.runtime,
        }))
    }
}

/// How many committed workload heads the sequencer remembers.
const HEAD_CACHE_WORKLOADS: usize = 65_536;

/// How many computed proof nodes are shared between requests (~6 MiB).
const NODE_MEMO_NODES: usize = 131_072;

/// A bounded map: two generations, the older dropped whole when the newer
/// fills (an approximate LRU without per-hit bookkeeping).
#[derive(Debug)]
pub(crate) struct Generations<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    generation: usize,
}

impl<K: std::hash::Hash + Eq, V> Default for Generations<K, V> {
    fn default() -> Self {
        Generations::new(2)
    }
}

impl<K: std::hash::Hash + Eq, V> Generations<K, V> {
    /// Holds at most `capacity` entries (at least 2).
    pub(crate) fn new(capacity: usize) -> Self {
        Generations {
            young: HashMap::new(),
            old: HashMap::new(),
            generation: (capacity / 2).max(1),
        }
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.young.get(key).or_else(|| self.old.get(key))
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.young.len() >= self.generation {
            self.old = std::mem::take(&mut self.young);
        }
        self.old.remove(&key);
        self.young.insert(key, value);
    }

    pub(crate) fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }
}

/// Committed workload heads the sequencer remembers (a cache of the store;
/// only the sequencer touches it, and a miss falls back to the store).
type HeadCache = Generations<String, WorkloadHead>;

impl HeadCache {
    /// Records the heads of a durable batch.
    fn absorb(&mut self, heads: HashMap<String, WorkloadHead>) {
        for (w, h) in heads {
            self.insert(w, h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_ledger::event::RuntimeId;

    fn head(seq: u64) -> WorkloadHead {
        WorkloadHead {
            seq,
            event_id: EventId::of_payload(&seq.to_be_bytes()),
            runtime: "agent/a".parse::<RuntimeId>().expect("runtime"),
        }
    }

    fn batch(names: &[&str], seq: u64) -> HashMap<String, WorkloadHead> {
        names.iter().map(|n| ((*n).to_owned(), head(seq))).collect()
    }

    #[test]
    fn head_cache_keeps_the_newest_heads_within_its_bound() {
        let mut c = HeadCache::new(4);
        c.absorb(batch(&["a", "b"], 1));
        assert_eq!(c.get("a"), Some(&head(1)));
        // A newer head replaces the older one in either generation.
        c.absorb(batch(&["c", "a"], 2));
        assert_eq!(c.get("a"), Some(&head(2)));
        c.absorb(batch(&["d", "e", "f"], 3));
        let held = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .filter(|w| c.get(**w).is_some())
            .count();
        assert!(held <= 4, "{held} heads held, bound 4");
        assert_eq!(c.get("f"), Some(&head(3)), "the newest is always held");
        assert_eq!(c.get("zzz"), None);
        c.clear();
        assert_eq!(c.get("f"), None);
    }
}
