//! Proof nodes read from the stored tile rows.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use lineage_ledger::Hash;
use lineage_ledger::node_hash;
use lineage_ledger::store::{Store, StoreError};
use lineage_ledger::tree::NodeSource;

use crate::cache::Generations;
use crate::service::{lock, read};

/// A stored tile row, shared between the nodes read from it.
pub(crate) type SharedTile = Arc<Vec<u8>>;

/// A [`NodeSource`] over the store for one request: each tile is read once
/// (from the hot right-edge tiles when it is one of them). A node inside a
/// tile is hashed straight from the tile's row; subtrees of 16 or more rows
/// are remembered (per request, or across requests for
/// [`Core::proof_nodes`]), so receipts of neighbouring entries, whose audit
/// paths share their larger siblings, do not hash those again.
pub struct ProofNodes<'a> {
    pub(crate) store: &'a dyn Store,
    pub(crate) hot: Option<&'a RwLock<HashMap<(u8, u64), SharedTile>>>,
    pub(crate) tiles: Mutex<HashMap<(u8, u64), SharedTile>>,
    pub(crate) memo: Memo<'a>,
}

/// Where computed nodes are remembered.
pub(crate) enum Memo<'a> {
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
