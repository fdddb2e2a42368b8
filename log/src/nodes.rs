//! Proof nodes read from the log's tiles.
//!
//! No Merkle math here: a node is located in its tile row by the ledger's
//! [`TileSpan`] and hashed from the row, from its tile's stored
//! [`TileStratum`](lineage_ledger::tree::TileStratum), from the store's copy
//! of the run of the row that holds it (as [`RunNodes`], checked against the
//! stratum), or taken from a hot right-edge [`RowNodes`]. This module only
//! decides where a row comes from (the hot right-edge tiles, this request's
//! reads, the store).

use std::sync::{Arc, Mutex, RwLock};

use lineage_ledger::FastMap;
use lineage_ledger::store::{Store, StoreError};
use lineage_ledger::tree::{NodeSource, RowNodes, RunNodes, STRATUM_HEIGHT, TileSpan};
use lineage_ledger::{HASH_SIZE, Hash, TILE_WIDTH};

use crate::cache::Generations;
use crate::sync::{lock, read, write};

/// A tile row at the right edge of the tree, every interior node hashed,
/// shared read-only between the requests that read it.
pub(crate) type SharedTile = Arc<RowNodes>;

/// Complete tiles of level 1 and up, every interior node hashed, shared by
/// all proofs (bounded by [`UPPER_TILES`](crate::cache::UPPER_TILES)): a
/// random proof needs a node of one of them at each level above the
/// leaves', and there are 256 times fewer of them than of level-0 tiles, so
/// a small bound holds the ones proofs meet.
pub(crate) type UpperTiles = Generations<(u8, u64), SharedTile>;

/// A stored row a request read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Row {
    /// Hash tile (level, index).
    Tile(u8, u64),
    /// The stratum of tile (level, index).
    Stratum(u8, u64),
}

/// A [`NodeSource`] over the log's tiles for one request (one proof, or the
/// receipts of one answer). A node comes from, in order:
/// - the hot right-edge tiles, whose nodes were all hashed when they were
///   published (the newest entries' proofs, every receipt's, hash nothing
///   inside them);
/// - for a node of tile level 1 or more, the shared upper tiles (complete
///   rows with every node hashed, bounded: [`UpperTiles`]), which the first
///   proof to need one reads and hashes whole;
/// - the stored stratum of its tile, for a node four to seven levels above
///   its row (at most 7 hashes);
/// - for a node of a complete level-0 tile less than four levels above its
///   row, the store's copy of the run of 16 leaf hashes that holds it
///   ([`Store::leaf_run`], 512 bytes), hashed whole once it matches the
///   tile's stratum (15 hashes; [`RunNodes`]);
/// - the stored tile row (at most 7 hashes for a node less than four levels
///   above it; up to 127 for a higher one whose tile has no stratum yet, in
///   a store written before strata existed).
///
/// Each row is read from the store at most once per request. A random proof
/// in a large log reads one run of a level-0 tile and the tile's stratum
/// from the store and hashes a few dozen nodes.
pub struct ProofNodes<'a> {
    store: &'a dyn Store,
    hot: Option<&'a RwLock<FastMap<(u8, u64), SharedTile>>>,
    upper: Option<&'a RwLock<UpperTiles>>,
    /// The hot tiles this request looked up (`None`: not hot then): the
    /// shared map's lock is taken once per tile, not once per node (an
    /// answer of 500 receipts asks for about 12,000 nodes, and the lock's
    /// counter is shared with every other request).
    seen: Mutex<FastMap<(u8, u64), Option<SharedTile>>>,
    /// The rows this request read, as stored (`None`: not stored).
    read: Mutex<FastMap<Row, Option<Vec<u8>>>>,
    /// The leaf runs this request read, by (tile, run) (`None`: no copy, or
    /// not the run its stratum stands for).
    runs: Mutex<FastMap<(u64, u16), Option<RunNodes>>>,
}

impl std::fmt::Debug for ProofNodes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofNodes").finish_non_exhaustive()
    }
}

impl<'a> ProofNodes<'a> {
    /// Nodes of `store`'s tiles.
    pub fn new(store: &'a dyn Store) -> ProofNodes<'a> {
        ProofNodes::with(store, None, None)
    }

    /// Nodes of the hot tiles, then the upper tiles, then `store`'s.
    pub(crate) fn with(
        store: &'a dyn Store,
        hot: Option<&'a RwLock<FastMap<(u8, u64), SharedTile>>>,
        upper: Option<&'a RwLock<UpperTiles>>,
    ) -> ProofNodes<'a> {
        ProofNodes {
            store,
            hot,
            upper,
            seen: Mutex::new(FastMap::default()),
            read: Mutex::new(FastMap::default()),
            runs: Mutex::new(FastMap::default()),
        }
    }

    /// The hot tile (level, index), as this request first saw it.
    fn hot_tile(&self, key: (u8, u64)) -> Option<SharedTile> {
        let hot = self.hot?;
        lock(&self.seen)
            .entry(key)
            .or_insert_with(|| read(hot).get(&key).cloned())
            .clone()
    }

    /// The node from a complete upper tile (level 1 or more), read and
    /// hashed whole into `upper` on first use; `None` when the tile is not
    /// complete (or not stored).
    fn upper_node(
        &self,
        upper: &RwLock<UpperTiles>,
        span: &TileSpan,
    ) -> Result<Option<Hash>, NodeError> {
        let key = (span.level(), span.index());
        if let Some(row) = read(upper).get(&key) {
            return Ok(row.get(span));
        }
        let Some(bytes) = self.store.tile(span.level(), span.index())? else {
            return Ok(None);
        };
        if bytes.len() != TILE_WIDTH as usize * HASH_SIZE {
            return Ok(None);
        }
        let mut row = RowNodes::new(&bytes);
        row.fill();
        let hash = row.get(span);
        write(upper).insert(key, Arc::new(row));
        Ok(hash)
    }

    /// `hash` applied to the stored bytes of `row` (read once per request),
    /// or `None` when the row is not stored or `hash` gives nothing.
    fn hash_row<T>(
        &self,
        row: Row,
        hash: impl Fn(&[u8]) -> Option<T>,
    ) -> Result<Option<T>, NodeError> {
        if let Some(bytes) = lock(&self.read).get(&row) {
            return Ok(bytes.as_deref().and_then(&hash));
        }
        // Read without holding the lock (a concurrent reader of the same row
        // reads it too; either copy serves).
        let bytes = match row {
            Row::Tile(level, index) => self.store.tile(level, index)?,
            Row::Stratum(level, index) => self.store.stratum(level, index)?,
        };
        let found = bytes.as_deref().and_then(&hash);
        lock(&self.read).insert(row, bytes);
        Ok(found)
    }

    /// The node `span` names from the store's copy of run `run` of complete
    /// level-0 tile `tile` (read and hashed once per request), or `None`
    /// when the store keeps no copy of it, or its copy is not the run the
    /// tile's stratum stands for (the copy is not part of the commit, the
    /// stratum is).
    fn run_node(&self, tile: u64, run: u16, span: &TileSpan) -> Result<Option<Hash>, NodeError> {
        if let Some(nodes) = lock(&self.runs).get(&(tile, run)) {
            return Ok(nodes.as_ref().and_then(|n| n.get(span)));
        }
        let nodes = match self.store.leaf_run(tile, run)? {
            Some(bytes) => {
                self.hash_row(Row::Stratum(0, tile), |s| RunNodes::checked(s, run, &bytes))?
            }
            None => None,
        };
        let found = nodes.as_ref().and_then(|n| n.get(span));
        lock(&self.runs).insert((tile, run), nodes);
        Ok(found)
    }
}

impl NodeSource for ProofNodes<'_> {
    type Error = NodeError;

    fn node(&self, level: u8, index: u64) -> Result<Hash, NodeError> {
        let span = TileSpan::of_node(level, index).ok_or(NodeError::OutOfRange { level, index })?;
        let (tile_level, tile_index) = (span.level(), span.index());
        if let Some(hash) = self
            .hot_tile((tile_level, tile_index))
            .and_then(|row| row.get(&span))
        {
            return Ok(hash);
        }
        if let Some(upper) = self.upper.filter(|_| tile_level > 0)
            && let Some(hash) = self.upper_node(upper, &span)?
        {
            return Ok(hash);
        }
        if span.count() >= 1 << STRATUM_HEIGHT {
            let stratum = Row::Stratum(tile_level, tile_index);
            if let Some(hash) = self.hash_row(stratum, |s| span.stratum_root(s))? {
                return Ok(hash);
            }
        } else if tile_level == 0
            && let Some(run) = span.run()
            && let Some(hash) = self.run_node(tile_index, run, &span)?
        {
            return Ok(hash);
        }
        self.hash_row(Row::Tile(tile_level, tile_index), |t| span.root(t))?
            .ok_or(NodeError::Missing {
                tile_level,
                tile_index,
                offset: u64::from(span.offset()),
            })
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
    /// The node's leaves lie beyond `u64` leaf indexes.
    #[error("node {level}/{index} is outside any tree")]
    OutOfRange {
        /// Tree level.
        level: u8,
        /// Index in the level.
        index: u64,
    },
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use lineage_ledger::store::{CommitBatch, MemStore, StoredCheckpoint};
    use lineage_ledger::tree::{
        MemNodes, TileStratum, TreeEdge, plan_append, prove_consistency, prove_inclusion,
    };

    use super::*;

    /// A store holding `n` leaves, committed in uneven batches, with or
    /// without the strata of the tiles they complete.
    fn store(leaves: &[Hash], strata: bool) -> MemStore {
        let store = MemStore::new();
        commit(&store, leaves, strata);
        store
    }

    /// Commits `leaves` to `store` as [`store`] does.
    fn commit(store: &dyn Store, leaves: &[Hash], strata: bool) {
        let mut edge = TreeEdge::empty();
        let mut at = 0;
        for chunk in leaves.chunks(4_999) {
            let plan = plan_append(&edge, chunk);
            let batch = CommitBatch {
                first_index: at,
                entries: chunk
                    .iter()
                    .map(|h| Arc::new(h.to_bytes().to_vec()))
                    .collect(),
                strata: if strata {
                    plan.tiles
                        .iter()
                        .filter_map(|t| TileStratum::of_row(t.level, t.index, &t.hashes))
                        .collect()
                } else {
                    vec![]
                },
                tiles: plan.tiles,
                checkpoint: StoredCheckpoint {
                    size: plan.edge.size(),
                    ..StoredCheckpoint::default()
                },
                ..CommitBatch::default()
            };
            store.commit(&batch).expect("commit");
            at = plan.edge.size();
            edge = plan.edge;
        }
    }

    #[test]
    fn proofs_from_strata_and_from_tiles_alone_match_the_tree() {
        let leaves: Vec<Hash> = (0..70_001u64)
            .map(|i| lineage_ledger::leaf_hash(&i.to_be_bytes()))
            .collect();
        let tree = MemNodes::new(leaves.clone());
        let with = store(&leaves, true);
        let without = store(&leaves, false);
        assert!(!with.strata(0, 0, 1).expect("strata").is_empty());
        assert!(without.strata(0, 0, 1).expect("strata").is_empty());
        let sizes = [1u64, 255, 256, 257, 4_096, 65_535, 65_536, 65_537, 70_001];
        // Upper tiles bounded to two, so that they are dropped and read again.
        let upper = RwLock::new(UpperTiles::new(2));
        let sources = [
            ProofNodes::new(&with),
            ProofNodes::new(&without),
            ProofNodes::with(&with, None, Some(&upper)),
            ProofNodes::with(&without, None, Some(&upper)),
        ];
        for nodes in sources {
            for &size in &sizes {
                for index in [0, size / 3, size / 2, size - 1] {
                    assert_eq!(
                        prove_inclusion(index, size, &nodes).expect("proof"),
                        prove_inclusion(index, size, &tree).expect("proof"),
                        "inclusion of {index} in {size}"
                    );
                }
                for &first in sizes.iter().filter(|&&f| f <= size) {
                    assert_eq!(
                        prove_consistency(first, size, &nodes).expect("proof"),
                        prove_consistency(first, size, &tree).expect("proof"),
                        "consistency {first} -> {size}"
                    );
                }
            }
        }
        // The one complete level-1 tile was read whole, every node hashed.
        assert!(
            read(&upper)
                .get(&(1, 0))
                .is_some_and(|row| row.width() == 256)
        );
        // Past the stored tree, a node is missing, not made up.
        assert!(matches!(
            ProofNodes::new(&with).node(0, 70_001),
            Err(NodeError::Missing { .. })
        ));
        // Where the proof's nodes below the stratum came from: with strata,
        // the store's run of the leaf (tile 3, run 14 for leaf 1,000) and
        // not its tile row; without, no run passes the check, and the row
        // is read.
        for (store, from_run) in [(&with, true), (&without, false)] {
            let nodes = ProofNodes::new(store);
            prove_inclusion(1_000, 70_001, &nodes).expect("proof");
            assert_eq!(
                lock(&nodes.runs).get(&(3, 14)).map(Option::is_some),
                Some(from_run)
            );
            assert_eq!(lock(&nodes.read).contains_key(&Row::Tile(0, 3)), !from_run);
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_damaged_copy_of_a_leaf_tile_gives_no_node() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::FileExt;

        let leaves: Vec<Hash> = (0..70_001u64)
            .map(|i| lineage_ledger::leaf_hash(&i.to_be_bytes()))
            .collect();
        let tree = MemNodes::new(leaves.clone());
        let dir = tempfile::tempdir()?;
        let store = lineage_ledger::store::RocksStore::open(dir.path())?;
        commit(&store, &leaves, true);
        // Damage the store's copy of the leaf tiles under it, as a disk might:
        // tile 100 overwritten whole, one bit of run 3 of tile 5.
        let copy = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("lineage-leaf-tiles"))?;
        copy.write_all_at(&[0xaa; 8192], 100 * 8192)?;
        let mut run = store.leaf_run(5, 3)?.ok_or("no run")?;
        run[7] ^= 0x10;
        copy.write_all_at(&run, 5 * 8192 + 3 * 512)?;
        // The store gives the damaged runs; the proofs do not use them.
        assert_eq!(store.leaf_run(5, 3)?, Some(run));
        assert_eq!(store.leaf_run(100, 0)?, Some(vec![0xaa; 512]));
        let nodes = ProofNodes::new(&store);
        for index in (5 * 256..6 * 256)
            .chain(100 * 256..101 * 256)
            .chain([0, 70_000])
        {
            assert_eq!(
                prove_inclusion(index, 70_001, &nodes)?,
                prove_inclusion(index, 70_001, &tree).expect("proof"),
                "inclusion of {index}"
            );
        }
        // The damaged runs were read and refused, and their rows read
        // instead; an undamaged run of the same tile was used.
        let runs = lock(&nodes.runs);
        assert!(matches!(runs.get(&(5, 3)), Some(None)));
        assert!(matches!(runs.get(&(5, 4)), Some(Some(_))));
        assert!(matches!(runs.get(&(100, 9)), Some(None)));
        let read = lock(&nodes.read);
        assert!(read.contains_key(&Row::Tile(0, 5)) && read.contains_key(&Row::Tile(0, 100)));
        Ok(())
    }
}
