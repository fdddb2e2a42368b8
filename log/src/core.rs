//! The read state the sequencer and request handlers share ([`Core`]), and
//! the reads: heads, keys, receipts and proofs.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use lineage_ledger::FastMap;
use lineage_ledger::Hash;
use lineage_ledger::checkpoint::CheckpointError;
use lineage_ledger::dsse::PayloadType;
use lineage_ledger::entry::{EntryError, LogEntry};
use lineage_ledger::keys::{EventId, KeyId};
use lineage_ledger::note::NoteSigner;
use lineage_ledger::rules::{Authorities, Candidate, KeyRecord};
use lineage_ledger::store::{
    GovernanceReads, Store, StoreError, StoreTiles, StoredCheckpoint, TileReadError,
};
use lineage_ledger::tree::{
    ProofError, RowNodes, TileNodesError, TileStratum, TileWrite, TreeEdge, prove_consistency,
    prove_inclusion,
};

use crate::clock::Clock;
use crate::config::LogConfig;
use crate::governance::HaltState;
use crate::health::{Health, Status};
use crate::metrics::Metrics;
use crate::nodes::{NodeError, ProofNodes, SharedTile, UpperTiles};
use crate::sync::{read, write};

/// Why the log could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store failed or belongs to another log.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Stored tiles do not rebuild the tree edge.
    #[error("the stored tree of size {size} cannot be loaded: {source}")]
    Tree {
        /// The stored size.
        size: u64,
        /// What failed: a tile could not be read, or is short or misaligned.
        #[source]
        source: TileNodesError<TileReadError>,
    },
    /// The checkpoint could not be signed.
    #[error("cannot sign checkpoints: {0}")]
    Sign(#[source] CheckpointError),
    /// The sequencer's thread could not be started.
    #[error("cannot start the sequencer thread: {0}")]
    Sequencer(#[source] std::io::Error),
    /// The thread deriving missing tile strata could not be started.
    #[error("cannot start the strata thread: {0}")]
    Strata(#[source] std::io::Error),
}

/// Read-side state shared by request handlers and the sequencer.
pub struct Core {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The log's note signer (its verifier gives the vkey).
    pub(crate) signer: NoteSigner,
    /// The log key in vkey form.
    pub vkey: String,
    /// The trust root.
    pub authorities: Authorities,
    /// Every runtime key, committed state.
    pub(crate) keys: RwLock<FastMap<KeyId, KeyRecord>>,
    /// Events per runtime, committed state.
    pub(crate) runtime_counts: RwLock<HashMap<String, u64>>,
    /// Active halts and the workloads they stop, committed state.
    pub(crate) halts: RwLock<HaltState>,
    /// The tree size after the latest commit that added a governance
    /// entry: long-polls and streams wait on it.
    pub(crate) governance_tx: tokio::sync::watch::Sender<u64>,
    /// The latest checkpoint.
    pub(crate) head: RwLock<Arc<StoredCheckpoint>>,
    /// The newest version of the tiles on the tree's right edge, as last
    /// committed: receipts for fresh entries are built from these without
    /// store reads. Tile rows only ever grow, so a newer version serves
    /// proofs against any older checkpoint.
    pub(crate) hot_tiles: RwLock<FastMap<(u8, u64), SharedTile>>,
    /// The counts of the latest commits, for the explorer's index.
    pub(crate) counts: std::sync::Mutex<crate::counts::CountFeed>,
    /// Complete tiles of level 1 and up as proofs read them (bounded).
    pub(crate) upper_tiles: RwLock<UpperTiles>,
    /// False while the sequencer cannot trust its in-memory state.
    pub(crate) healthy: std::sync::atomic::AtomicBool,
    /// Metrics.
    pub metrics: Metrics,
    /// The recent history of the metrics (bounded), for the health page.
    pub health: Health,
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

impl Core {
    /// The latest checkpoint.
    pub fn head(&self) -> Arc<StoredCheckpoint> {
        read(&self.head).clone()
    }

    /// What the latest commits added, from entry `next` on, as the
    /// explorer's index counts it ([`crate::counts`]): empty unless a kept
    /// commit starts exactly at `next`. At least one commit when there is
    /// one, then more while they cover fewer than `max_entries` entries.
    pub fn counts_since(&self, next: u64, max_entries: u64) -> Vec<crate::counts::CommitCounts> {
        crate::sync::lock(&self.counts).since(next, max_entries)
    }

    /// False after a failed commit until state was reloaded from the store.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether the ledger is degraded now: the store is recovering from a
    /// failed commit, a commit failed within
    /// [`crate::health::COMMIT_FAILURE_WINDOW_MS`], or a request was shed
    /// with `503 overloaded` within [`crate::health::OVERLOAD_WINDOW_MS`].
    pub fn health_status(&self) -> Status {
        Status::of(
            self.is_healthy(),
            &self.metrics,
            crate::clock::unix_ms(self.clock.now()),
        )
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

    /// The halt that stops `workload` of `runtime` (the lowest index), if any.
    pub fn halted_by(
        &self,
        workload: &lineage_ledger::event::WorkloadId,
        runtime: Option<&str>,
    ) -> Option<u64> {
        read(&self.halts).halted_by(workload, runtime)
    }

    /// Every active halt: target and index, in index order.
    pub fn active_halts(&self) -> Vec<(lineage_ledger::event::Target, u64)> {
        let mut out: Vec<_> = read(&self.halts)
            .active
            .iter()
            .map(|(t, i)| (t.clone(), *i))
            .collect();
        out.sort_by_key(|(_, i)| *i);
        out
    }

    /// The number of workloads each active halt stops, by halt index.
    pub fn halt_member_counts(&self) -> HashMap<u64, usize> {
        let halts = read(&self.halts);
        halts
            .active
            .values()
            .map(|i| (*i, halts.member_count(*i)))
            .collect()
    }

    /// How many workloads active halts stop now.
    pub fn halted_workload_count(&self) -> usize {
        read(&self.halts).marks.len()
    }

    /// The workloads the halt at `index` stops, sorted, `limit` of them from
    /// the `offset`-th on: reads that halt's members only, and copies only
    /// those it returns.
    pub fn halt_members(&self, index: u64, offset: usize, limit: usize) -> Vec<String> {
        read(&self.halts).members(index, offset, limit)
    }

    /// A receiver that changes whenever a governance entry commits (its
    /// value: the tree size after that commit).
    pub fn governance_updates(&self) -> tokio::sync::watch::Receiver<u64> {
        self.governance_tx.subscribe()
    }

    /// Up to `limit` governance entries after `after` (from the first with
    /// `None`), in log order, with the head they were read under: every
    /// entry listed is in its tree. A commit writes its rows before it
    /// publishes its head, so rows at or past the head are left for the
    /// next read.
    ///
    /// # Errors
    /// Storage failures; `Entry` or a `Corrupt` store error for an index
    /// whose entry is missing or does not decode (damage).
    pub fn governance_entries(
        &self,
        after: Option<u64>,
        limit: usize,
    ) -> Result<GovernancePage, ReadError> {
        let head = self.head();
        let mut out = Vec::new();
        for index in self.store.governance_indices(after, limit)? {
            if index >= head.size {
                break;
            }
            out.push((index, self.committed_entry(index)?));
        }
        Ok(GovernancePage { head, entries: out })
    }

    /// A workload's latest event in the published tree: its `seq`, leaf
    /// index and entry; `None` when it has none.
    ///
    /// # Errors
    /// Storage failures; damage as for [`Core::governance_entries`].
    pub fn workload_head(&self, workload: &str) -> Result<Option<(u64, u64, LogEntry)>, ReadError> {
        let size = self.head().size;
        let Some((mut seq, mut index)) = self.store.workload_last(workload)? else {
            return Ok(None);
        };
        // Events of a commit whose head is not published yet: step back to
        // the newest one in the published tree (at most one batch).
        while index >= size {
            let Some(prev) = seq.checked_sub(1) else {
                return Ok(None);
            };
            seq = prev;
            index = self
                .store
                .workload_index(workload, seq)?
                .ok_or_else(|| corrupt("workload event", format!("{workload}/{seq}")))?;
        }
        Ok(Some((seq, index, self.committed_entry(index)?)))
    }

    /// The decoded entry at `index`, which the log is known to hold.
    fn committed_entry(&self, index: u64) -> Result<LogEntry, ReadError> {
        let bytes = self
            .store
            .entry(index)?
            .ok_or_else(|| corrupt("log entry", index.to_string()))?;
        LogEntry::decode(&bytes).map_err(|source| ReadError::Entry { index, source })
    }

    /// Checks a candidate's signature now if its key is already known: the
    /// expensive check, done in parallel before the sequencer.
    pub fn precheck(&self, c: &mut Candidate) {
        let key = match c.envelope().payload_type {
            PayloadType::Event => self.key(&c.envelope().key_id).map(|k| k.public_key),
            PayloadType::Governance => self.authorities.get(&c.envelope().key_id).copied(),
        };
        if let Some(key) = key {
            c.precheck_signature(&key);
        }
        c.preparse();
    }

    /// Reloads everything the sequencer keeps in memory from the store.
    pub(crate) fn reload(&self) -> Result<TreeEdge, StartError> {
        let head = self.store.head()?;
        let edge =
            TreeEdge::load(head.size, &StoreTiles(self.store.as_ref())).map_err(|source| {
                StartError::Tree {
                    size: head.size,
                    source,
                }
            })?;
        let keys = self.store.keys()?;
        let counts = self.store.runtime_counts()?;
        let halts = HaltState::load(self.store.as_ref())?;
        write(&self.hot_tiles).clear();
        // The right edge's tiles, hot from the start: every proof at the
        // head needs their nodes, and no commit has published them yet.
        let (rows, _) = self.hot_rows(&edge.partial_rows());
        self.publish_rows(rows, head.size);
        *write(&self.keys) = keys.into_iter().map(|k| (k.key_id, k)).collect();
        *write(&self.runtime_counts) = counts.into_iter().collect();
        self.metrics.halts_active.set(halts.active.len() as i64);
        *write(&self.halts) = halts;
        self.metrics.tree_size.set(head.size as i64);
        let size = head.size;
        let grew = std::mem::replace(&mut *write(&self.head), Arc::new(head)).size != size;
        if grew {
            // A commit reported as failed may have landed (governance
            // entries among it): wake the waiting readers, after the head.
            self.governance_tx.send_replace(size);
        }
        self.healthy
            .store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(edge)
    }

    /// The receipt (entry, inclusion proof, signed checkpoint: verifiable
    /// offline) for the entry at `index` against `checkpoint`; `nodes` may be
    /// shared across many receipts.
    ///
    /// # Errors
    /// Storage failures or a missing tile (an internal inconsistency).
    pub fn receipt(
        &self,
        index: u64,
        entry: &[u8],
        checkpoint: &StoredCheckpoint,
        nodes: &ProofNodes<'_>,
    ) -> Result<lineage_schemas::Receipt, ReadError> {
        use base64::Engine as _;
        let proof = prove_inclusion(index, checkpoint.size, nodes)?;
        Ok(lineage_schemas::Receipt {
            format: lineage_schemas::RECEIPT_FORMAT.to_owned(),
            event_id: EventId::of_payload(
                &LogEntry::decode(entry)
                    .map_err(|source| ReadError::Entry { index, source })?
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
    pub fn receipt_at_head(&self, index: u64) -> Result<lineage_schemas::Receipt, ReadError> {
        let head = self.head();
        if index >= head.size {
            return Err(ReadError::NotFound);
        }
        let entry = self.store.entry(index)?.ok_or(ReadError::NotFound)?;
        self.receipt(index, &entry, &head, &self.proof_nodes())
    }

    /// A node source for proofs: the hot right-edge tiles, then the store.
    pub fn proof_nodes(&self) -> ProofNodes<'_> {
        ProofNodes::with(
            self.store.as_ref(),
            Some(&self.hot_tiles),
            Some(&self.upper_tiles),
        )
    }

    /// The tiles of a commit as the hot rows they become once it is durable,
    /// with every interior node of their rows hashed (only the new ones: a
    /// tile grows at its end, and what was hashed over its old width is
    /// kept), and the strata of the tiles it completes, taken from those
    /// nodes (no hash twice). Only the sequencer calls it, before its commit.
    pub(crate) fn hot_rows(&self, tiles: &[TileWrite]) -> (HotRows, Vec<TileStratum>) {
        let hot = read(&self.hot_tiles);
        let mut strata = Vec::new();
        let rows = tiles
            .iter()
            .map(|t| {
                let key = (t.level, t.index);
                let next = RowNodes::from_hashes(&t.hashes);
                let mut row = match hot.get(&key) {
                    Some(old) => old.grown(next),
                    None => next,
                };
                row.fill();
                strata.extend(row.stratum(t.level, t.index));
                (key, Arc::new(row))
            })
            .collect();
        (HotRows(rows), strata)
    }

    /// Publishes the rows of a durable commit ([`Core::hot_rows`]), so the
    /// proofs of the newest entries, every receipt's, hash nothing inside
    /// these tiles. Keeps the rows of this commit, the newest
    /// [`RECENT_TILES`] level-0 tiles, and at each higher level the tile at
    /// the new right edge and the one before it (complete upper tiles are
    /// kept by [`UpperTiles`](crate::nodes::UpperTiles)). Bounded memory:
    /// about 16 KiB per hashed tile, a commit of up to 1,000 entries
    /// touches at most six tiles per level.
    pub(crate) fn publish_rows(&self, rows: HotRows, size: u64) {
        let fresh: Vec<(u8, u64)> = rows.0.iter().map(|(key, _)| *key).collect();
        let mut hot = write(&self.hot_tiles);
        hot.extend(rows.0);
        hot.retain(|key, _| {
            let (level, index) = *key;
            let shift = 8 * (u32::from(level) + 1);
            let edge = size.checked_shr(shift).unwrap_or(0);
            let keep = if level == 0 { RECENT_TILES } else { 1 };
            index + keep >= edge || fresh.contains(key)
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
        Ok(prove_inclusion(index, size, &self.proof_nodes())?)
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
        Ok(prove_consistency(first, second, &self.proof_nodes())?)
    }
}

/// Level-0 tiles kept hashed behind the right edge: the last 4,096 entries.
/// Receipts are written after their commit, and under load the sequencer
/// has committed a batch or two more by then (8 connections of 500 entries
/// each: about 900 entries per batch): with only the edge and the tile
/// before it kept, a receipt re-read and re-hashed its tile from the store.
pub(crate) const RECENT_TILES: u64 = 16;

/// A commit's tiles as hot rows, to publish once it is durable.
#[derive(Debug)]
pub(crate) struct HotRows(Vec<((u8, u64), SharedTile)>);

/// Governance entries and the head whose tree holds them
/// ([`Core::governance_entries`]).
#[derive(Debug)]
pub struct GovernancePage {
    /// The head they were read under.
    pub head: Arc<StoredCheckpoint>,
    /// (index, entry), in log order.
    pub entries: Vec<(u64, LogEntry)>,
}

fn corrupt(what: &'static str, key: String) -> ReadError {
    ReadError::Store(StoreError::Corrupt { what, key })
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
    /// The stored tree is inconsistent (a bug or damage): a proof needs a
    /// node the tiles do not give.
    #[error("tree: {0}")]
    Tree(#[from] ProofError<NodeError>),
    /// A stored entry does not decode (damage).
    #[error("tree: entry {index}: {source}")]
    Entry {
        /// The entry's leaf index.
        index: u64,
        /// Why it does not decode.
        #[source]
        source: EntryError,
    },
}
