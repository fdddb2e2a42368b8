//! Proof nodes read from the stored tile rows.
//!
//! No Merkle math here: a node is located in its tile row and hashed by the
//! ledger's [`TileSpan`], and remembered by its [`MemoNodes`]. This module
//! only decides where a tile row comes from (the hot right-edge tiles, this
//! request's reads, the store).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use lineage_ledger::store::{Store, StoreError};
use lineage_ledger::tree::{BoundedMemo, MemoNodes, NodeMemo, NodeSource, TileSpan};
use lineage_ledger::{Hash, TILE_HEIGHT};

use crate::sync::{lock, read};

/// A stored tile row, shared between the nodes read from it.
pub(crate) type SharedTile = Arc<Vec<u8>>;

/// Interior proof nodes of at least this height within their tile are
/// memoised; smaller ones cost fewer hashes than the bookkeeping would.
const MEMO_MIN_HEIGHT: u8 = 4;

/// Nodes a per-request memo holds.
const LOCAL_MEMO_NODES: usize = 1 << 14;

/// The tile rows one request reads: each tile is read once (from the hot
/// right-edge tiles when it is one of them).
pub(crate) struct StoredTiles<'a> {
    store: &'a dyn Store,
    hot: Option<&'a RwLock<HashMap<(u8, u64), SharedTile>>>,
    tiles: Mutex<HashMap<(u8, u64), SharedTile>>,
}

impl StoredTiles<'_> {
    /// The stored tile row (tile level, tile index): this source's own
    /// reads, then the hot tiles, then the store.
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
}

impl NodeSource for StoredTiles<'_> {
    type Error = NodeError;

    fn node(&self, level: u8, index: u64) -> Result<Hash, NodeError> {
        let span = TileSpan::of_node(level, index).ok_or(NodeError::OutOfRange { level, index })?;
        let tile = self.tile(span.level(), span.index())?;
        span.root(&tile).ok_or(NodeError::Missing {
            tile_level: span.level(),
            tile_index: span.index(),
            offset: u64::from(span.offset()),
        })
    }
}

/// Where computed nodes are remembered.
pub(crate) enum Memo<'a> {
    /// For this node source only.
    Local(BoundedMemo),
    /// Shared by every request (bounded).
    Shared(&'a BoundedMemo),
    /// Nodes of [`MEMO_MIN_HEIGHT`] and up in the shared memo; the smaller
    /// ones (1 to 7 hashes each) in one of this request's own: the receipts
    /// of one batch of consecutive entries share most of them, and the shared
    /// memo stays for the nodes worth keeping across requests.
    Layered {
        /// This request's small nodes.
        local: BoundedMemo,
        /// Everyone's larger nodes.
        shared: &'a BoundedMemo,
    },
}

impl NodeMemo for Memo<'_> {
    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        match self {
            Memo::Local(m) => m.get(level, index),
            Memo::Shared(m) => m.get(level, index),
            Memo::Layered { local, shared } => {
                local.get(level, index).or_else(|| shared.get(level, index))
            }
        }
    }

    fn insert(&self, level: u8, index: u64, hash: Hash) {
        match self {
            Memo::Local(m) => m.insert(level, index, hash),
            Memo::Shared(m) => m.insert(level, index, hash),
            Memo::Layered { local, shared } => {
                if level % TILE_HEIGHT < MEMO_MIN_HEIGHT {
                    local.insert(level, index, hash);
                } else {
                    shared.insert(level, index, hash);
                }
            }
        }
    }
}

/// A [`NodeSource`] over the stored tiles for one request. A node inside a
/// tile is hashed straight from the tile's row; subtrees of 16 or more rows
/// are remembered (per request, or across requests for
/// [`Core::proof_nodes`](crate::Core::proof_nodes)), so receipts of
/// neighbouring entries, whose audit paths share their larger siblings, do
/// not hash those again.
pub struct ProofNodes<'a>(MemoNodes<StoredTiles<'a>, Memo<'a>>);

impl std::fmt::Debug for ProofNodes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofNodes").finish_non_exhaustive()
    }
}

impl<'a> ProofNodes<'a> {
    /// Nodes of `store`'s tiles, remembered for this source only.
    pub fn new(store: &'a dyn Store) -> ProofNodes<'a> {
        ProofNodes::with(store, None, Memo::Local(BoundedMemo::new(LOCAL_MEMO_NODES)))
    }

    /// Nodes for the receipts of one batch: the hot tiles, then `store`'s,
    /// the larger ones remembered in `shared`, the small ones for this
    /// batch only ([`Memo::Layered`]).
    pub(crate) fn for_batch(
        store: &'a dyn Store,
        hot: Option<&'a RwLock<HashMap<(u8, u64), SharedTile>>>,
        shared: &'a BoundedMemo,
    ) -> ProofNodes<'a> {
        ProofNodes::with(
            store,
            hot,
            Memo::Layered {
                local: BoundedMemo::new(LOCAL_MEMO_NODES),
                shared,
            },
        )
    }

    /// Nodes of the hot tiles, then `store`'s, remembered in `memo`.
    pub(crate) fn with(
        store: &'a dyn Store,
        hot: Option<&'a RwLock<HashMap<(u8, u64), SharedTile>>>,
        memo: Memo<'a>,
    ) -> ProofNodes<'a> {
        let tiles = StoredTiles {
            store,
            hot,
            tiles: Mutex::new(HashMap::new()),
        };
        // A node at the bottom of its tile is read, not hashed: never
        // memoised. A layered memo takes every other height.
        let min = match memo {
            Memo::Layered { .. } => 1,
            Memo::Local(_) | Memo::Shared(_) => MEMO_MIN_HEIGHT,
        };
        ProofNodes(MemoNodes::new(tiles, memo).min_tile_height(min))
    }
}

impl NodeSource for ProofNodes<'_> {
    type Error = NodeError;

    fn node(&self, level: u8, index: u64) -> Result<Hash, NodeError> {
        self.0.node(level, index)
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
