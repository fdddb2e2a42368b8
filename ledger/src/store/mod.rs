//! The storage seam: one small trait, two implementations.
//!
//! [`RocksStore`] is the durable one (RocksDB, one synced `WriteBatch` per
//! commit); [`MemStore`] is an in-memory fake for tests that can fail on
//! purpose (lose a write, or apply it and still report an error).
//!
//! The store knows bytes and indices, not rules: the sequencer decides what
//! to write (with the pure functions of [`crate::rules`] and
//! [`crate::tree::plan_append`]) and hands the store one [`CommitBatch`].
//! Beside the log it keeps caches that no rule reads: a reader's
//! [`StoredTally`] (one row no commit writes), the tiles' strata, and, in
//! [`RocksStore`], a flat copy of the complete level-0 tiles for proofs
//! ([`Store::leaf_run`]).
//!
//! **Durability promise.** Once [`Store::commit`] returns `Ok`, every write of
//! the batch survives a process crash and power loss. When it returns `Err`,
//! the batch may or may not have been applied: the caller must reload its
//! state from the store before going on, and must not acknowledge any entry
//! of that batch.

mod codec;
mod error;
#[cfg(feature = "rocksdb")]
mod leaf_tiles;
mod lineage;
mod mem;
#[cfg(feature = "rocksdb")]
mod rocks;

pub use codec::{FORMAT_VERSION, StoreMeta, StoredCheckpoint, StoredTally};
pub use error::{Fault, StoreError};
pub use lineage::{GovernanceRow, StoredRow, governance_rows};
pub use mem::MemStore;
#[cfg(feature = "rocksdb")]
pub use rocks::RocksStore;

use std::sync::Arc;

use crate::event::Target;
use crate::keys::EventId;
use crate::rules::KeyRecord;
use crate::tree::{TileSource, TileStratum, TileWrite};

/// Everything one sequencer batch writes, applied atomically.
#[derive(Clone, Debug, Default)]
pub struct CommitBatch {
    /// Index of the first entry; must equal the store's size.
    pub first_index: u64,
    /// Encoded log entries, in index order (shared with the receipts that
    /// carry them, so a commit copies none).
    pub entries: Vec<Arc<Vec<u8>>>,
    /// Hash tiles whose contents changed (from `plan_append`).
    pub tiles: Vec<TileWrite>,
    /// The strata of the tiles this batch completes (a cache of them, see
    /// [`TileStratum`]; a batch without them is still a whole log).
    pub strata: Vec<TileStratum>,
    /// Event ID to index, for every entry.
    pub events: Vec<(EventId, u64)>,
    /// (workload, seq, index) for every runtime event.
    pub workloads: Vec<(String, u64, u64)>,
    /// (parent event ID, child index) for every `parents` link. A `prev`
    /// link has no row: the workload row of the next position is the same
    /// fact ([`children_of`]).
    pub children: Vec<(EventId, u64)>,
    /// Runtime keys granted or revoked by this batch (new state of each).
    pub keys: Vec<KeyRecord>,
    /// New event counts of the runtimes this batch touched.
    pub runtime_counts: Vec<(String, u64)>,
    /// Governance rows ([`governance_rows`]): derivations, started
    /// workloads, halt marks, active halts, governance entry indices.
    pub governance: Vec<GovernanceRow>,
    /// The checkpoint signed for the new tree size; it becomes the head.
    pub checkpoint: StoredCheckpoint,
}

/// The ledger's storage.
pub trait Store: Send + Sync + 'static {
    /// The identity of the log in this store, or `None` for a new store.
    ///
    /// # Errors
    /// Storage failures.
    fn meta(&self) -> Result<Option<StoreMeta>, StoreError>;

    /// Records the log's identity and its first (size 0) checkpoint.
    ///
    /// # Errors
    /// [`StoreError::AlreadyInitialized`] if it has an identity already.
    fn initialize(&self, meta: &StoreMeta, checkpoint: &StoredCheckpoint)
    -> Result<(), StoreError>;

    /// The latest checkpoint (the head of the log).
    ///
    /// # Errors
    /// Storage failures; `Corrupt` for an initialised store without one.
    fn head(&self) -> Result<StoredCheckpoint, StoreError>;

    /// The encoded entry at `index`.
    ///
    /// # Errors
    /// Storage failures.
    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// Entries `[start, end)`, in order; stops early at the end of the log.
    ///
    /// # Errors
    /// Storage failures.
    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError>;

    /// The stored bytes of hash tile `(level, index)` (concatenated 32-byte hashes).
    ///
    /// # Errors
    /// Storage failures.
    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// The stored bytes of the [`TileStratum`] of complete tile `(level,
    /// index)`, if one was stored (a store written before strata existed
    /// lacks them until [`Store::put_strata`] fills them in).
    ///
    /// # Errors
    /// Storage failures.
    fn stratum(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// Run `run` of the complete level-0 tile `tile` (leaf hashes `16 run .. 16 run + 16`,
    /// [`RUN_BYTES`](crate::tree::RUN_BYTES)) from a copy of the tiles that the store keeps
    /// apart for proofs, where reading it costs less than reading the row; `None` when the
    /// store keeps no such copy of the tile (the default).
    ///
    /// The copy is not written with the commit: a caller checks a run against the tile's
    /// stratum ([`RunNodes::checked`](crate::tree::RunNodes::checked)) before it uses it.
    ///
    /// # Errors
    /// Storage failures.
    fn leaf_run(&self, tile: u64, run: u16) -> Result<Option<Vec<u8>>, StoreError> {
        let _ = (tile, run);
        Ok(None)
    }

    /// Gives every complete level-0 tile its copy for [`leaf_run`](Self::leaf_run): a store
    /// written before the copies existed lacks them (commits write the copies of the tiles
    /// they complete). Asks `stop` between writes. Returns how many it wrote; the default,
    /// for a store that keeps no copies, writes none.
    ///
    /// # Errors
    /// Storage failures; `Corrupt` when a complete tile is missing.
    fn fill_leaf_runs(&self, stop: &dyn Fn() -> bool) -> Result<u64, StoreError> {
        let _ = stop;
        Ok(0)
    }

    /// Up to `limit` indices of the tiles of `level` that have a stored
    /// stratum, from `from` on, ascending: one range read, to find the
    /// complete tiles that lack one.
    ///
    /// # Errors
    /// Storage failures.
    fn strata(&self, level: u8, from: u64, limit: usize) -> Result<Vec<u64>, StoreError>;

    /// The tree size up to which every complete tile is known to have its
    /// stratum (recorded by [`Store::put_strata`]; 0 when never recorded).
    ///
    /// # Errors
    /// Storage failures; `Corrupt` when the recorded value does not decode.
    fn strata_covered(&self) -> Result<u64, StoreError>;

    /// Stores strata derived from complete tiles already in the log and,
    /// with `covered`, records that every complete tile of a tree of that
    /// size now has its stratum (in the same write, after the strata). Not
    /// synced and independent of [`Store::commit`]: a stratum is a cache of
    /// its tile, so a crash that loses one costs only its derivation again.
    ///
    /// # Errors
    /// Storage failures.
    fn put_strata(&self, strata: &[TileStratum], covered: Option<u64>) -> Result<(), StoreError>;

    /// The index of an event ID.
    ///
    /// # Errors
    /// Storage failures.
    fn event_index(&self, id: &EventId) -> Result<Option<u64>, StoreError>;

    /// The index of a workload's event at `seq`.
    ///
    /// # Errors
    /// Storage failures.
    fn workload_index(&self, workload: &str, seq: u64) -> Result<Option<u64>, StoreError>;

    /// The workload's latest (seq, index).
    ///
    /// # Errors
    /// Storage failures.
    fn workload_last(&self, workload: &str) -> Result<Option<(u64, u64)>, StoreError>;

    /// Up to `limit` (seq, index) pairs of a workload from `from_seq` on, in seq order.
    ///
    /// # Errors
    /// Storage failures.
    fn workload_range(
        &self,
        workload: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, StoreError>;

    /// Up to `limit` indices of the `children` rows of `parent`, in index
    /// order: the entries naming it among their `parents` (and, in a store
    /// written before `prev` links stopped having rows, as `prev`).
    /// [`children_of`] adds the `prev` link.
    ///
    /// # Errors
    /// Storage failures.
    fn children(&self, parent: &EventId, limit: usize) -> Result<Vec<u64>, StoreError>;

    /// The checkpoint issued at tree size `size`, if one was.
    ///
    /// # Errors
    /// Storage failures.
    fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Up to `limit` tree sizes below `before` at which a checkpoint was
    /// issued, newest first: one reverse range read, however many sizes lie
    /// between them.
    ///
    /// # Errors
    /// Storage failures.
    fn checkpoints_before(&self, before: u64, limit: usize) -> Result<Vec<u64>, StoreError>;

    /// Every runtime key ever granted.
    ///
    /// # Errors
    /// Storage failures.
    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError>;

    /// Event counts of every runtime.
    ///
    /// # Errors
    /// Storage failures.
    fn runtime_counts(&self) -> Result<Vec<(String, u64)>, StoreError>;

    /// Up to `limit` governance rows (see [`governance_rows`]) from `start`
    /// on while their keys start with `prefix`, in key order.
    ///
    /// # Errors
    /// Storage failures.
    fn governance_scan(
        &self,
        start: &[u8],
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<StoredRow>, StoreError>;

    /// The witnessed checkpoint at tree size `size`: the log's checkpoint
    /// note carrying the witness cosignatures that met the witness policy,
    /// if one was published at that size.
    ///
    /// # Errors
    /// Storage failures.
    fn witnessed(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// The largest witnessed checkpoint, if any.
    ///
    /// # Errors
    /// Storage failures.
    fn witnessed_head(&self) -> Result<Option<StoredCheckpoint>, StoreError>;

    /// Stores a witnessed checkpoint, durably (a synced write), before it is
    /// served. Independent of [`Store::commit`]: witnessing runs beside
    /// ingest.
    ///
    /// # Errors
    /// Storage failures.
    fn put_witnessed(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError>;

    /// The tally a reader saved with [`Store::put_tally`], if any (a store
    /// written before tallies existed has none).
    ///
    /// # Errors
    /// Storage failures; `Corrupt` when the stored value does not decode
    /// (the reader then counts from the first entry, and its next save
    /// replaces the value).
    fn tally(&self) -> Result<Option<StoredTally>, StoreError>;

    /// Replaces the saved tally. Not synced and independent of
    /// [`Store::commit`]: a crash may lose it, or keep an older one, and it
    /// never changes the log; a reader checks a tally against the log before
    /// it trusts it (see [`StoredTally`]).
    ///
    /// # Errors
    /// Storage failures.
    fn put_tally(&self, tally: &StoredTally) -> Result<(), StoreError>;

    /// Applies a batch atomically and durably (see the module docs).
    ///
    /// # Errors
    /// [`StoreError::Conflict`] when `first_index` is not the current size;
    /// storage failures, after which the batch may or may not be applied.
    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError>;

    /// What the store holds in memory now, when it can tell; `None` for a
    /// store that does not keep caches of its own (the in-memory fake).
    fn memory(&self) -> Option<StoreMemory> {
        None
    }
}

/// The memory a store holds, by kind, in bytes (approximate, as the
/// storage engine accounts it): what the process's resident memory is
/// made of besides the log's own caches.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// The block cache: data blocks, and index and filter blocks of the
    /// column families that keep them there.
    pub block_cache: u64,
    /// Memtables, flushed or not yet released.
    pub memtables: u64,
    /// Table readers: the index and filter blocks held outside the cache
    /// (tiles and strata) and each open table file's own state.
    pub table_readers: u64,
}

/// The second IDs of the first `limit` pair rows under `prefix`.
fn pair_rows<S: Store + ?Sized>(
    store: &S,
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    store
        .governance_scan(prefix, prefix, limit)?
        .iter()
        .map(|(k, _)| lineage::pair_second(k, prefix.len()))
        .collect()
}

/// Typed reads of the governance rows, for every store.
pub trait GovernanceReads {
    /// The workloads deriving directly from `workload`, sorted.
    ///
    /// # Errors
    /// Storage failures.
    fn derived_workloads(&self, workload: &str) -> Result<Vec<String>, StoreError>;
    /// The first `limit` workloads `workload` derives from directly, sorted
    /// (a runtime can make the list long: readers page it).
    ///
    /// # Errors
    /// Storage failures.
    fn derives_from(&self, workload: &str, limit: usize) -> Result<Vec<String>, StoreError>;
    /// The workloads `runtime` started, sorted.
    ///
    /// # Errors
    /// Storage failures.
    fn runtime_workloads(&self, runtime: &str) -> Result<Vec<String>, StoreError>;
    /// Every halted workload with its active halts.
    ///
    /// # Errors
    /// Storage failures.
    fn halt_marks(&self) -> Result<Vec<(String, Vec<u64>)>, StoreError>;
    /// Every active halt: its target and index.
    ///
    /// # Errors
    /// Storage failures.
    fn active_halts(&self) -> Result<Vec<(Target, u64)>, StoreError>;
    /// Up to `limit` indices of governance entries after `after` (from the
    /// first with `None`), ascending.
    ///
    /// # Errors
    /// Storage failures.
    fn governance_indices(&self, after: Option<u64>, limit: usize) -> Result<Vec<u64>, StoreError>;
}

impl<S: Store + ?Sized> GovernanceReads for S {
    fn derived_workloads(&self, workload: &str) -> Result<Vec<String>, StoreError> {
        pair_rows(self, &lineage::derived_prefix(workload), usize::MAX)
    }

    fn derives_from(&self, workload: &str, limit: usize) -> Result<Vec<String>, StoreError> {
        pair_rows(self, &lineage::derives_from_prefix(workload), limit)
    }

    fn runtime_workloads(&self, runtime: &str) -> Result<Vec<String>, StoreError> {
        pair_rows(self, &lineage::started_prefix(runtime), usize::MAX)
    }

    fn halt_marks(&self) -> Result<Vec<(String, Vec<u64>)>, StoreError> {
        let p = lineage::MARKS_PREFIX;
        self.governance_scan(p, p, usize::MAX)?
            .iter()
            .map(|(k, v)| lineage::decode_marks(k, v))
            .collect()
    }

    fn active_halts(&self) -> Result<Vec<(Target, u64)>, StoreError> {
        let p = lineage::HALTS_PREFIX;
        self.governance_scan(p, p, usize::MAX)?
            .iter()
            .map(|(k, v)| lineage::decode_halt(k, v))
            .collect()
    }

    fn governance_indices(&self, after: Option<u64>, limit: usize) -> Result<Vec<u64>, StoreError> {
        let start = match after {
            None => lineage::STATEMENTS_PREFIX.to_vec(),
            Some(u64::MAX) => return Ok(Vec::new()),
            Some(i) => lineage::statement_key(i + 1),
        };
        self.governance_scan(&start, lineage::STATEMENTS_PREFIX, limit)?
            .iter()
            .map(|(k, _)| lineage::decode_statement(k))
            .collect()
    }
}

/// Any store is a tile source for the tree math.
#[derive(Debug)]
pub struct StoreTiles<'a, S: ?Sized>(pub &'a S);

/// A tile the tree needs is not in the store.
#[derive(Debug, thiserror::Error)]
pub enum TileReadError {
    /// Storage failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tile is missing.
    #[error("hash tile {level}/{index} is missing")]
    Missing {
        /// Tile level.
        level: u8,
        /// Tile index.
        index: u64,
    },
}

impl<S: Store + ?Sized> TileSource for StoreTiles<'_, S> {
    type Error = TileReadError;

    fn tile(&self, level: u8, index: u64, _min_width: u16) -> Result<Vec<u8>, TileReadError> {
        self.0
            .tile(level, index)?
            .ok_or(TileReadError::Missing { level, index })
    }
}

/// Up to `limit` indices of the entries that link to `parent`, in index
/// order: those naming it among their `parents` (the `children` rows) and,
/// when `parent` is the event at `position` (workload, seq), the workload's
/// next event, which names it as `prev` (the sequence rule admits no other
/// event there). The store keeps no row for a `prev` link: one row of four
/// per event, with a random key, said what the workload row already says.
/// A store written before keeps such rows too; they merge here.
///
/// # Errors
/// Storage failures.
pub fn children_of<S: Store + ?Sized>(
    store: &S,
    parent: &EventId,
    position: Option<(&str, u64)>,
    limit: usize,
) -> Result<Vec<u64>, StoreError> {
    let mut rows = store.children(parent, limit)?;
    if let Some((workload, seq)) = position
        && let Some(next_seq) = seq.checked_add(1)
        && let Some(next) = store.workload_index(workload, next_seq)?
        && let Err(at) = rows.binary_search(&next)
    {
        rows.insert(at, next);
        rows.truncate(limit);
    }
    Ok(rows)
}

/// Tiles whose strata [`fill_strata`] derives per write.
const STRATA_CHUNK: u64 = 256;

/// Gives every complete tile of the tree of `size` its stratum: derives
/// the ones missing (a store written before strata existed) from the stored
/// tiles, from [`Store::strata_covered`] on, in writes of 256, and then
/// records `size` as covered. Asks `stop` between writes, and returns early
/// (recording nothing) when it says so. Returns how many it derived.
///
/// Runs beside the sequencer: commits write the strata of the tiles they
/// complete, and a stratum written twice is written with the same bytes.
///
/// # Errors
/// Storage failures; `Corrupt` when a complete tile of the tree is missing
/// or not 256 hashes.
pub fn fill_strata<S: Store + ?Sized>(
    store: &S,
    size: u64,
    stop: &dyn Fn() -> bool,
) -> Result<u64, StoreError> {
    let covered = store.strata_covered()?;
    if covered >= size {
        return Ok(0);
    }
    let mut derived = 0;
    for level in 0..=(u64::BITS as u8 / crate::TILE_HEIGHT) {
        // Complete tiles of `level`: each holds 2^(8 (level + 1)) leaves.
        let shift = u32::from(crate::TILE_HEIGHT) * (u32::from(level) + 1);
        let complete = size.checked_shr(shift).unwrap_or(0);
        if complete == 0 {
            break;
        }
        let mut next = covered.checked_shr(shift).unwrap_or(0);
        while next < complete {
            if stop() {
                return Ok(derived);
            }
            let end = complete.min(next.saturating_add(STRATA_CHUNK));
            let stored = store.strata(level, next, usize::try_from(end - next).unwrap_or(0))?;
            let mut strata = Vec::new();
            for index in (next..end).filter(|i| stored.binary_search(i).is_err()) {
                let corrupt = || StoreError::Corrupt {
                    what: "tile",
                    key: format!("{level}/{index}"),
                };
                let tile = store.tile(level, index)?.ok_or_else(corrupt)?;
                strata.push(TileStratum::of_tile(level, index, &tile).ok_or_else(corrupt)?);
            }
            store.put_strata(&strata, None)?;
            derived += strata.len() as u64;
            next = end;
        }
    }
    store.put_strata(&[], Some(size))?;
    Ok(derived)
}

/// Opens a store for a log: initialises a new one, or checks that an
/// existing one belongs to this log (format version, origin, log key).
/// A store is never wiped or re-initialised.
///
/// # Errors
/// [`StoreError::MetaMismatch`] naming the first differing property.
pub fn open_log<S: Store + ?Sized>(
    store: &S,
    meta: &StoreMeta,
    genesis: impl FnOnce() -> StoredCheckpoint,
) -> Result<(), StoreError> {
    match store.meta()? {
        None => store.initialize(meta, &genesis()),
        Some(stored) => stored.check_matches(meta),
    }
}
