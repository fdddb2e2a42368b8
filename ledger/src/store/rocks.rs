//! The durable [`Store`]: RocksDB, one column family per record kind, and
//! one synced `WriteBatch` per commit.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `meta` | `format`, `size`, `tally`, `strata` | [`StoreMeta`], tree size u64 BE, [`StoredTally`], size covered by `strata` u64 BE |
//! | `entries` | index u64 BE | encoded log entry |
//! | `tiles` | level u8, index u64 BE | concatenated 32-byte hashes (1..=256) |
//! | `strata` | level u8, index u64 BE | the tile's 16 height-4 nodes ([`TileStratum`]) |
//! | `events` | event ID (32 bytes) | index u64 BE |
//! | `workloads` | workload, 0x00, seq u64 BE | index u64 BE |
//! | `children` | parent ID (32), child index u64 BE | empty (a `parents` link; no row for `prev`, see `children_of`) |
//! | `keys` | key ID (32) | key record |
//! | `runtimes` | runtime ID | event count u64 BE |
//! | `checkpoints` | tree size u64 BE | time u64 BE, signed note |
//! | `governance` | see [`governance_rows`](super::governance_rows) | |
//! | `witnessed` | tree size u64 BE | time u64 BE, signed note |
//!
//! Every row but `tally` is written by [`Store::commit`] (or, for
//! `witnessed`, by [`Store::put_witnessed`]), synced. `tally` is a reader's
//! cache ([`Store::put_tally`], not synced); it was added without a format
//! change: a store without it opens as before, and its reader counts from
//! the first entry once. `strata` is a cache of the complete tiles, written
//! by the commit that completes each tile and, for stores written before it
//! existed, by [`Store::put_strata`] (not synced); it too came without a
//! format change: RocksDB creates the column family when an older store is
//! opened, and a missing stratum only makes its nodes cost more hashes.
//!
//! Beside the database, a read-write open keeps a flat copy of the complete
//! level-0 tiles for proofs ([`leaf_tiles`](super::leaf_tiles): written
//! after each commit, checked at open and by every reader, never the only
//! copy of anything).

use std::path::Path;

use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB,
    DBCompressionType, Direction, IteratorMode, Options, ReadOptions, WriteBatch,
    WriteBufferManager, WriteOptions,
};

use super::codec::{
    child_key, key_record_bytes, key_record_from_bytes, tile_key, u64_be, workload_key,
    workload_prefix,
};
use super::leaf_tiles::LeafTiles;
use super::{
    CommitBatch, Store, StoreError, StoreMemory, StoreMeta, StoredCheckpoint, StoredRow,
    StoredTally,
};
use crate::TILE_WIDTH;
use crate::keys::EventId;
use crate::rules::KeyRecord;
use crate::tree::TileStratum;

const CF_META: &str = "meta";
const CF_ENTRIES: &str = "entries";
const CF_TILES: &str = "tiles";
/// Tile strata, keyed as their tiles (a cache of them: see `TileStratum`).
const CF_STRATA: &str = "strata";
const CF_EVENTS: &str = "events";
const CF_WORKLOADS: &str = "workloads";
const CF_CHILDREN: &str = "children";
const CF_KEYS: &str = "keys";
const CF_RUNTIMES: &str = "runtimes";
const CF_CHECKPOINTS: &str = "checkpoints";
const CF_GOVERNANCE: &str = "governance";
/// Witnessed checkpoints by size (added without a format change: RocksDB
/// creates the family when a store of an earlier build is opened).
const CF_WITNESSED: &str = "witnessed";
const ALL_CFS: [&str; 12] = [
    CF_META,
    CF_ENTRIES,
    CF_TILES,
    CF_STRATA,
    CF_EVENTS,
    CF_WORKLOADS,
    CF_CHILDREN,
    CF_KEYS,
    CF_RUNTIMES,
    CF_CHECKPOINTS,
    CF_GOVERNANCE,
    CF_WITNESSED,
];
const META_FORMAT: &[u8] = b"format";
/// The reader's saved tally, in `meta` (a key rather than a column family:
/// a read-only open of an older store would fail on a missing family).
const META_TALLY: &[u8] = b"tally";

/// A raw key and value read from RocksDB.
type KeyValue = (Box<[u8]>, Box<[u8]>);
const META_SIZE: &[u8] = b"size";
/// Tree size up to which every complete tile has its stratum (u64 BE).
const META_STRATA: &[u8] = b"strata";

/// Block cache shared by every column family but the tiles: data blocks,
/// and also index and filter blocks, so the server's memory stays flat as
/// the log grows.
const BLOCK_CACHE_BYTES: usize = 64 << 20;
/// The tiles' own block cache. A proof of a random entry reads one
/// level-0 tile, and past a few hundred thousand entries those reads
/// rarely hit (10M entries: 350 MB of level-0 tiles): in the shared cache
/// they filled all of it and evicted the strata, index and filter blocks
/// that do hit. This one holds every level-0 tile of a log of up to about
/// 260,000 entries.
const TILE_CACHE_BYTES: usize = 8 << 20;
/// All memtables together; past it the largest is flushed.
const WRITE_BUFFER_BYTES: usize = 64 << 20;

/// Memory and lookup tuning, the same for read-write and read-only opens.
struct Tuning {
    cache: Cache,
    tile_cache: Cache,
    write_buffers: WriteBufferManager,
}

impl Tuning {
    fn new() -> Tuning {
        Tuning {
            cache: Cache::new_lru_cache(BLOCK_CACHE_BYTES),
            tile_cache: Cache::new_lru_cache(TILE_CACHE_BYTES),
            // Not charged to the block cache: ingest reads recent index and
            // data blocks, and must not lose them to memtable reservations.
            write_buffers: WriteBufferManager::new_write_buffer_manager(WRITE_BUFFER_BYTES, false),
        }
    }

    /// The column families to open: all of them, or (`existing`, for a
    /// read-only open, which cannot create one) those the store has.
    fn descriptors(&self, existing: Option<&[String]>) -> Vec<ColumnFamilyDescriptor> {
        ALL_CFS
            .iter()
            .filter(|name| existing.is_none_or(|e| e.iter().any(|x| x == *name)))
            .map(|name| ColumnFamilyDescriptor::new(*name, self.cf_options(name)))
            .collect()
    }

    fn cf_options(&self, name: &str) -> Options {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(if name == CF_TILES {
            &self.tile_cache
        } else {
            &self.cache
        });
        // Index and filter blocks live in the cache, partitioned into small
        // blocks: a whole-file filter (1 MiB or more at a million keys) was
        // larger than a cache shard, so it was read from disk and checksummed
        // again on every lookup.
        let hashes = name == CF_TILES || name == CF_STRATA;
        if hashes {
            // Except for tiles and strata: their values are large (8 KiB,
            // 512 B), so their whole index is small (about 25 bytes per
            // 8 KiB tile: 1 MiB at 10M entries) and is kept in memory with
            // each table file, outside the cache. A random proof's tile read
            // then searches no index block through the cache: at 10M
            // entries those searches were a third of a tile read.
            table.set_cache_index_and_filter_blocks(false);
            table.set_index_type(BlockBasedIndexType::BinarySearch);
            // A whole-key filter (10 bits per row: 50 KB at 10M entries)
            // skips the table files that do not hold the row: the partial
            // tiles are rewritten by every commit, so the newest files'
            // key ranges span all tile levels.
            table.set_bloom_filter(10.0, false);
        } else {
            table.set_cache_index_and_filter_blocks(true);
            table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
            table.set_partition_filters(true);
            table.set_metadata_block_size(4096);
            table.set_pin_top_level_index_and_filter(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        }
        let mut o = Options::default();
        // Tile rows and strata are hashes: they do not compress, and are
        // read whole.
        o.set_compression_type(if hashes {
            DBCompressionType::None
        } else {
            DBCompressionType::Lz4
        });
        // Point lookups that mostly miss (is this event ID new? is this
        // workload position free?) are answered by a bloom filter, in the
        // memtable and in every table file, instead of a search.
        if [CF_EVENTS, CF_WORKLOADS, CF_CHECKPOINTS].contains(&name) {
            table.set_bloom_filter(10.0, false);
            o.set_memtable_prefix_bloom_ratio(0.02);
            o.set_memtable_whole_key_filtering(true);
        }
        o.set_block_based_table_factory(&table);
        o
    }
}

/// The RocksDB store.
pub struct RocksStore {
    db: DB,
    /// The block caches: the one the column families share and the
    /// tiles' own (kept to report their use).
    caches: [Cache; 2],
    /// The options of every point read, made once: `DB::get_cf` makes and
    /// frees a C++ `ReadOptions` per call, and the sequencer reads a few
    /// rows per event, a proof a tile and a stratum.
    point_reads: ReadOptions,
    // Commits are serialised by the single sequencer; this guard makes the
    // size check in `commit` sound even if two callers raced.
    commit_lock: std::sync::Mutex<()>,
    /// The flat copy of the complete level-0 tiles (read-write opens only;
    /// `None` also when it could not be opened: proofs read the rows).
    leaves: Option<LeafTiles>,
}

impl std::fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.db.path())
            .finish_non_exhaustive()
    }
}

impl RocksStore {
    /// Opens (creating if needed) the store in directory `path`.
    ///
    /// # Errors
    /// RocksDB errors (a locked or unreadable directory, among others).
    pub fn open(path: &Path) -> Result<RocksStore, StoreError> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.increase_parallelism(2);
        opts.set_keep_log_file_num(4);
        let tuning = Tuning::new();
        opts.set_write_buffer_manager(&tuning.write_buffers);
        let db = DB::open_cf_descriptors(&opts, path, tuning.descriptors(None))?;
        let mut store = RocksStore {
            db,
            caches: [tuning.cache, tuning.tile_cache],
            point_reads: ReadOptions::default(),
            commit_lock: std::sync::Mutex::new(()),
            leaves: None,
        };
        store.leaves = store.open_leaf_tiles(path);
        Ok(store)
    }

    /// Opens the flat copy of the level-0 tiles in `path`, keeping the
    /// tiles the store holds as they are stored ([`LeafTiles::keep_verified`]).
    /// `None`, logged, when it cannot: proofs then read the rows, as before
    /// the copy existed.
    fn open_leaf_tiles(&self, path: &Path) -> Option<LeafTiles> {
        let opened = LeafTiles::open(path)
            .map_err(StoreError::from)
            .and_then(|leaves| {
                leaves.keep_verified(self.complete_leaf_tiles()?, |tile| self.tile(0, tile))?;
                Ok(leaves)
            });
        opened
            .inspect_err(|e| {
                tracing::warn!(error = %e, "no flat copy of the leaf tiles; proofs read the rows")
            })
            .ok()
    }

    /// Opens the store in `path` read-only, as a snapshot: it sees what was
    /// durable at open time and can be opened while a server runs on it. A
    /// store written before a column family was added lacks it until a
    /// read-write open creates it; read-only, its rows read as absent.
    ///
    /// # Errors
    /// RocksDB errors (no store there, among others).
    pub fn open_read_only(path: &Path) -> Result<RocksStore, StoreError> {
        let opts = Options::default();
        let tuning = Tuning::new();
        let existing = DB::list_cf(&opts, path)?;
        let db = DB::open_cf_descriptors_read_only(
            &opts,
            path,
            tuning.descriptors(Some(&existing)),
            false,
        )?;
        Ok(RocksStore {
            db,
            caches: [tuning.cache, tuning.tile_cache],
            point_reads: ReadOptions::default(),
            commit_lock: std::sync::Mutex::new(()),
            leaves: None,
        })
    }

    fn cf(&self, name: &'static str) -> Result<&ColumnFamily, StoreError> {
        self.db.cf_handle(name).ok_or_else(|| StoreError::Corrupt {
            what: "column family",
            key: name.to_owned(),
        })
    }

    fn get(&self, cf: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf_opt(self.cf(cf)?, key, &self.point_reads)?)
    }

    /// A column family added after the first format (`witnessed`,
    /// `strata`): a store opened read-only before any read-write open
    /// since lacks it, and its rows are then absent, not corrupt.
    fn added_cf(&self, name: &'static str) -> Option<&ColumnFamily> {
        self.db.cf_handle(name)
    }

    /// [`RocksStore::get`] in an [added](Self::added_cf) column family:
    /// `None` when the store lacks the family.
    fn get_added(&self, name: &'static str, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        match self.added_cf(name) {
            Some(cf) => Ok(self.db.get_cf_opt(cf, key, &self.point_reads)?),
            None => Ok(None),
        }
    }

    /// A `u64` row, read without copying it out of RocksDB.
    fn get_u64(&self, cf: &'static str, key: &[u8]) -> Result<Option<u64>, StoreError> {
        match self
            .db
            .get_pinned_cf_opt(self.cf(cf)?, key, &self.point_reads)?
        {
            None => Ok(None),
            Some(v) => u64_be(&v).map(Some).ok_or_else(|| StoreError::Corrupt {
                what: cf,
                key: hex::encode(key),
            }),
        }
    }

    fn size(&self) -> Result<u64, StoreError> {
        Ok(self.get_u64(CF_META, META_SIZE)?.unwrap_or(0))
    }

    /// How many complete level-0 tiles the stored tree has.
    fn complete_leaf_tiles(&self) -> Result<u64, StoreError> {
        Ok(self.size()? / TILE_WIDTH)
    }

    /// Forward scan of `cf` from `start` while keys start with `prefix`.
    fn scan(
        &self,
        cf: &'static str,
        start: &[u8],
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<KeyValue>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(cf)?, IteratorMode::From(start, Direction::Forward))
        {
            let (k, v) = item?;
            if !k.starts_with(prefix) || out.len() >= limit {
                break;
            }
            out.push((k, v));
        }
        Ok(out)
    }

    fn sync_write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }
}

fn suffix_u64(cf: &'static str, k: &[u8]) -> Result<u64, StoreError> {
    k.len()
        .checked_sub(8)
        .and_then(|at| u64_be(&k[at..]))
        .ok_or_else(|| StoreError::Corrupt {
            what: cf,
            key: hex::encode(k),
        })
}

fn value_u64(cf: &'static str, k: &[u8], v: &[u8]) -> Result<u64, StoreError> {
    u64_be(v).ok_or_else(|| StoreError::Corrupt {
        what: cf,
        key: hex::encode(k),
    })
}

impl Store for RocksStore {
    fn meta(&self) -> Result<Option<StoreMeta>, StoreError> {
        self.get(CF_META, META_FORMAT)?
            .map(|v| StoreMeta::from_bytes(&v))
            .transpose()
    }

    fn initialize(&self, meta: &StoreMeta, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.meta()?.is_some() {
            return Err(StoreError::AlreadyInitialized);
        }
        let mut b = WriteBatch::default();
        b.put_cf(self.cf(CF_META)?, META_FORMAT, meta.to_bytes());
        b.put_cf(self.cf(CF_META)?, META_SIZE, cp.size.to_be_bytes());
        b.put_cf(
            self.cf(CF_CHECKPOINTS)?,
            cp.size.to_be_bytes(),
            cp.value_bytes(),
        );
        self.sync_write(b)
    }

    fn head(&self) -> Result<StoredCheckpoint, StoreError> {
        let size = self.size()?;
        self.checkpoint(size)?.ok_or_else(|| StoreError::Corrupt {
            what: "head checkpoint",
            key: size.to_string(),
        })
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_ENTRIES, &index.to_be_bytes())
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut out = Vec::new();
        // A raw iterator lends each key and value: the boxed iterator
        // allocated both for every entry (the explorer's follower reads
        // every entry once).
        let mut it = self.db.raw_iterator_cf(self.cf(CF_ENTRIES)?);
        it.seek(start.to_be_bytes());
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let index = suffix_u64(CF_ENTRIES, k)?;
            if index >= end {
                break;
            }
            if index != start + out.len() as u64 {
                return Err(StoreError::Corrupt {
                    what: "entries (gap)",
                    key: index.to_string(),
                });
            }
            out.push(v.to_vec());
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get(CF_TILES, &tile_key(level, index))
    }

    fn stratum(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_added(CF_STRATA, &tile_key(level, index))
    }

    fn leaf_run(&self, tile: u64, run: u16) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(leaves) = &self.leaves else {
            return Ok(None);
        };
        // A cache: when it cannot be read, the caller reads the row.
        Ok(leaves.run(tile, run).unwrap_or_else(|e| {
            tracing::warn!(error = %e, tile, "reading the flat copy of a leaf tile failed");
            None
        }))
    }

    fn fill_leaf_runs(&self, stop: &dyn Fn() -> bool) -> Result<u64, StoreError> {
        let Some(leaves) = &self.leaves else {
            return Ok(0);
        };
        leaves.fill(
            || self.complete_leaf_tiles(),
            |tile| self.tile(0, tile),
            |tile| StoreError::Corrupt {
                what: "tile",
                key: format!("0/{tile}"),
            },
            stop,
        )
    }

    fn strata(&self, level: u8, from: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        if self.added_cf(CF_STRATA).is_none() {
            return Ok(Vec::new());
        }
        self.scan(CF_STRATA, &tile_key(level, from), &[level], limit)?
            .iter()
            .map(|(k, _)| suffix_u64(CF_STRATA, k))
            .collect()
    }

    fn strata_covered(&self) -> Result<u64, StoreError> {
        Ok(self.get_u64(CF_META, META_STRATA)?.unwrap_or(0))
    }

    fn put_strata(&self, strata: &[TileStratum], covered: Option<u64>) -> Result<(), StoreError> {
        // Not synced: a lost stratum is derived again from its tile, and
        // the WAL keeps writes in order, so a surviving `covered` mark
        // implies the strata written before it survived too.
        let cf = self.cf(CF_STRATA)?;
        let mut b = WriteBatch::default();
        for t in strata {
            b.put_cf(cf, tile_key(t.level, t.index), t.to_bytes());
        }
        if let Some(size) = covered {
            b.put_cf(self.cf(CF_META)?, META_STRATA, size.to_be_bytes());
        }
        self.db.write(b)?;
        Ok(())
    }

    fn event_index(&self, id: &EventId) -> Result<Option<u64>, StoreError> {
        self.get_u64(CF_EVENTS, id.as_bytes())
    }

    fn workload_index(&self, workload: &str, seq: u64) -> Result<Option<u64>, StoreError> {
        self.get_u64(CF_WORKLOADS, &workload_key(workload, seq))
    }

    fn workload_last(&self, workload: &str) -> Result<Option<(u64, u64)>, StoreError> {
        let prefix = workload_prefix(workload);
        let last = workload_key(workload, u64::MAX);
        let mut it = self.db.iterator_cf(
            self.cf(CF_WORKLOADS)?,
            IteratorMode::From(&last, Direction::Reverse),
        );
        match it.next() {
            Some(item) => {
                let (k, v) = item?;
                if !k.starts_with(&prefix) || k.len() != prefix.len() + 8 {
                    return Ok(None);
                }
                Ok(Some((
                    suffix_u64(CF_WORKLOADS, &k)?,
                    value_u64(CF_WORKLOADS, &k, &v)?,
                )))
            }
            None => Ok(None),
        }
    }

    fn workload_range(
        &self,
        workload: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let prefix = workload_prefix(workload);
        self.scan(
            CF_WORKLOADS,
            &workload_key(workload, from_seq),
            &prefix,
            limit,
        )?
        .into_iter()
        // A longer workload ID with this one as a prefix cannot match: 0x00
        // ends the ID and cannot occur inside one.
        .map(|(k, v)| {
            Ok((
                suffix_u64(CF_WORKLOADS, &k)?,
                value_u64(CF_WORKLOADS, &k, &v)?,
            ))
        })
        .collect()
    }

    fn children(&self, parent: &EventId, limit: usize) -> Result<Vec<u64>, StoreError> {
        self.scan(
            CF_CHILDREN,
            &child_key(parent.as_bytes(), 0),
            parent.as_bytes(),
            limit,
        )?
        .into_iter()
        .map(|(k, _)| suffix_u64(CF_CHILDREN, &k))
        .collect()
    }

    fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.get(CF_CHECKPOINTS, &size.to_be_bytes())?
            .map(|v| StoredCheckpoint::from_value(size, &v))
            .transpose()
    }

    fn checkpoints_before(&self, before: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        let mut out = Vec::new();
        let Some(last) = before.checked_sub(1) else {
            return Ok(out);
        };
        let from = last.to_be_bytes();
        for item in self.db.iterator_cf(
            self.cf(CF_CHECKPOINTS)?,
            IteratorMode::From(&from, Direction::Reverse),
        ) {
            if out.len() >= limit {
                break;
            }
            let (k, _) = item?;
            out.push(suffix_u64(CF_CHECKPOINTS, &k)?);
        }
        Ok(out)
    }

    fn witnessed(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.get_added(CF_WITNESSED, &size.to_be_bytes())?
            .map(|v| StoredCheckpoint::from_value(size, &v))
            .transpose()
    }

    fn witnessed_head(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let Some(cf) = self.added_cf(CF_WITNESSED) else {
            return Ok(None);
        };
        match self.db.iterator_cf(cf, IteratorMode::End).next() {
            None => Ok(None),
            Some(item) => {
                let (k, v) = item?;
                let size = suffix_u64(CF_WITNESSED, &k)?;
                StoredCheckpoint::from_value(size, &v).map(Some)
            }
        }
    }

    fn put_witnessed(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        let mut b = WriteBatch::default();
        b.put_cf(
            self.cf(CF_WITNESSED)?,
            checkpoint.size.to_be_bytes(),
            checkpoint.value_bytes(),
        );
        self.sync_write(b)
    }

    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut out = Vec::new();
        for item in self.db.iterator_cf(self.cf(CF_KEYS)?, IteratorMode::Start) {
            let (_, v) = item?;
            out.push(key_record_from_bytes(&v)?);
        }
        Ok(out)
    }

    fn runtime_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut out = Vec::new();
        for item in self
            .db
            .iterator_cf(self.cf(CF_RUNTIMES)?, IteratorMode::Start)
        {
            let (k, v) = item?;
            let runtime = String::from_utf8(k.to_vec()).map_err(|_| StoreError::Corrupt {
                what: CF_RUNTIMES,
                key: hex::encode(&k),
            })?;
            out.push((runtime, value_u64(CF_RUNTIMES, &k, &v)?));
        }
        Ok(out)
    }

    fn governance_scan(
        &self,
        start: &[u8],
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<StoredRow>, StoreError> {
        Ok(self
            .scan(CF_GOVERNANCE, start, prefix, limit)?
            .into_iter()
            .map(|(k, v)| (k.into_vec(), v.into_vec()))
            .collect())
    }

    fn tally(&self) -> Result<Option<StoredTally>, StoreError> {
        self.get(CF_META, META_TALLY)?
            .map(|v| StoredTally::from_bytes(&v))
            .transpose()
    }

    fn put_tally(&self, tally: &StoredTally) -> Result<(), StoreError> {
        // Not synced: losing it costs a recount, and a synced write here
        // would wait on the disk the sequencer's commits wait on.
        self.db
            .put_cf(self.cf(CF_META)?, META_TALLY, tally.to_bytes())?;
        Ok(())
    }

    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        let _guard = self.commit_lock.lock().unwrap_or_else(|e| e.into_inner());
        let size = self.size()?;
        if batch.first_index != size {
            return Err(StoreError::Conflict {
                first_index: batch.first_index,
                size,
            });
        }
        let mut b = WriteBatch::with_capacity_bytes(batch_bytes(batch));
        let entries = self.cf(CF_ENTRIES)?;
        for (i, e) in batch.entries.iter().enumerate() {
            b.put_cf(
                entries,
                (batch.first_index + i as u64).to_be_bytes(),
                e.as_slice(),
            );
        }
        let tiles = self.cf(CF_TILES)?;
        // The complete level-0 tiles, for the flat copy after the write.
        let mut leaf_tiles = Vec::new();
        for t in &batch.tiles {
            let bytes = t.to_bytes();
            b.put_cf(tiles, tile_key(t.level, t.index), &bytes);
            if t.level == 0 && t.hashes.len() as u64 == TILE_WIDTH && self.leaves.is_some() {
                leaf_tiles.push((t.index, bytes));
            }
        }
        let strata = self.cf(CF_STRATA)?;
        for t in &batch.strata {
            b.put_cf(strata, tile_key(t.level, t.index), t.to_bytes());
        }
        put_in_key_order(
            &mut b,
            self.cf(CF_EVENTS)?,
            batch
                .events
                .iter()
                .map(|(id, index)| (*id.as_bytes(), index.to_be_bytes()))
                .collect(),
        );
        put_in_key_order(
            &mut b,
            self.cf(CF_WORKLOADS)?,
            batch
                .workloads
                .iter()
                .map(|(w, seq, index)| (workload_key(w, *seq), index.to_be_bytes()))
                .collect(),
        );
        put_in_key_order(
            &mut b,
            self.cf(CF_CHILDREN)?,
            batch
                .children
                .iter()
                .map(|(parent, child)| (child_key(parent.as_bytes(), *child), []))
                .collect(),
        );
        let keys = self.cf(CF_KEYS)?;
        for k in &batch.keys {
            b.put_cf(keys, k.key_id.as_bytes(), key_record_bytes(k));
        }
        let runtimes = self.cf(CF_RUNTIMES)?;
        for (r, n) in &batch.runtime_counts {
            b.put_cf(runtimes, r.as_bytes(), n.to_be_bytes());
        }
        let governance = self.cf(CF_GOVERNANCE)?;
        for (key, value) in &batch.governance {
            match value {
                Some(v) => b.put_cf(governance, key, v),
                None => b.delete_cf(governance, key),
            }
        }
        b.put_cf(
            self.cf(CF_CHECKPOINTS)?,
            batch.checkpoint.size.to_be_bytes(),
            batch.checkpoint.value_bytes(),
        );
        b.put_cf(
            self.cf(CF_META)?,
            META_SIZE,
            batch.checkpoint.size.to_be_bytes(),
        );
        self.sync_write(b)?;
        // The commit is durable; its copies are a cache, and a failure to
        // write them only leaves those proofs reading the rows.
        if let Some(leaves) = &self.leaves
            && !leaf_tiles.is_empty()
            && let Err(e) = leaves
                .append(leaf_tiles.iter().map(|(i, b)| (*i, b.as_slice())), |tile| {
                    self.tile(0, tile)
                })
        {
            tracing::warn!(error = %e, "writing the flat copy of a leaf tile failed");
        }
        Ok(())
    }

    fn memory(&self) -> Option<StoreMemory> {
        let [shared, tiles] = &self.caches;
        let stats =
            rocksdb::perf::get_memory_usage_stats(Some(&[&self.db]), Some(&[shared, tiles]));
        stats.ok().map(|m| StoreMemory {
            block_cache: m.cache_total,
            memtables: m.mem_table_total,
            table_readers: m.mem_table_readers_total,
        })
    }
}

/// Puts an index family's rows into `b` in key order. Their keys are random
/// (event IDs, workload names), and a memtable insert searches its skip
/// list from the previous insert's position when the key follows it: in
/// order, each search walks the short way from its neighbour instead of
/// down from the top of a list of every row since the last flush.
fn put_in_key_order<K: AsRef<[u8]> + Ord, V: AsRef<[u8]>>(
    b: &mut WriteBatch,
    cf: &ColumnFamily,
    mut rows: Vec<(K, V)>,
) {
    rows.sort_unstable_by(|x, y| x.0.cmp(&y.0));
    for (key, value) in rows {
        b.put_cf(cf, key, value);
    }
}

/// About what `batch` takes in a `WriteBatch` (each row: its key, its value
/// and a few bytes of framing), so that the batch is allocated once instead
/// of growing by copies: entries and tile rows are most of it.
fn batch_bytes(batch: &CommitBatch) -> usize {
    const ROW: usize = 16;
    let entries: usize = batch.entries.iter().map(|e| e.len() + 8 + ROW).sum();
    let tiles: usize = batch
        .tiles
        .iter()
        .map(|t| t.hashes.len() * crate::HASH_SIZE + 9 + ROW)
        .sum();
    let strata = batch.strata.len() * (crate::tree::STRATUM_WIDTH * crate::HASH_SIZE + 9 + ROW);
    let workloads: usize = batch
        .workloads
        .iter()
        .map(|(w, _, _)| w.len() + 17 + ROW)
        .sum();
    entries
        + tiles
        + strata
        + workloads
        + batch.events.len() * (32 + 8 + ROW)
        + batch.children.len() * (40 + ROW)
        + batch.governance.len() * 96
        + 1024
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_older_than_its_newer_column_families_opens_read_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut store = RocksStore::open(dir.path()).expect("open");
            for cf in [CF_STRATA, CF_WITNESSED] {
                store.db.drop_cf(cf).expect("drop");
            }
        }
        let store = RocksStore::open_read_only(dir.path()).expect("read-only open");
        assert_eq!(store.stratum(0, 0).expect("stratum"), None);
        assert!(store.strata(0, 0, 10).expect("strata").is_empty());
        assert_eq!(store.witnessed(1).expect("witnessed"), None);
        assert_eq!(store.witnessed_head().expect("witnessed head"), None);
        drop(store);
        // A read-write open creates them.
        let store = RocksStore::open(dir.path()).expect("open");
        assert!(store.cf(CF_STRATA).is_ok() && store.cf(CF_WITNESSED).is_ok());
    }

    #[test]
    fn a_damaged_tally_row_is_corrupt_and_the_next_save_replaces_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RocksStore::open(dir.path()).expect("open");
        assert_eq!(store.tally().expect("no row"), None);
        let meta = store.cf(CF_META).expect("meta");
        store
            .db
            .put_cf(meta, META_TALLY, b"\x01short")
            .expect("plant");
        assert!(matches!(
            store.tally(),
            Err(StoreError::Corrupt { what: "tally", .. })
        ));
        let t = StoredTally {
            covers: 1,
            last_leaf: crate::leaf_hash(b"entry"),
            events: 0,
            governance: 1,
            workloads: 0,
            kinds: Default::default(),
        };
        store.put_tally(&t).expect("put");
        assert_eq!(store.tally().expect("tally"), Some(t));
    }

    #[test]
    fn memory_counts_memtables_and_the_block_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RocksStore::open(dir.path()).expect("open");
        let before = store.memory().expect("a RocksDB store reports memory");
        let tiles = store.cf(CF_TILES).expect("tiles");
        for i in 0u64..64 {
            store
                .db
                .put_cf(tiles, tile_key(0, i), [7u8; 8192])
                .expect("put");
        }
        let written = store.memory().expect("memory");
        assert!(
            written.memtables >= before.memtables + 64 * 8192,
            "{before:?} -> {written:?}"
        );
        store.db.flush_cf(tiles).expect("flush");
        for i in 0u64..64 {
            assert!(
                store
                    .db
                    .get_cf(tiles, tile_key(0, i))
                    .expect("get")
                    .is_some()
            );
        }
        let read = store.memory().expect("memory");
        assert!(
            read.block_cache >= 64 * 8192 && read.table_readers > 0,
            "{written:?} -> {read:?}"
        );
    }
}
