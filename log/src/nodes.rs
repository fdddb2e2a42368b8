//! Proof nodes read from the stored tile rows.
//!
//! No Merkle math here: a node is located in its tile row by the ledger's
//! [`TileSpan`], hashed by the row's [`RowNodes`], and remembered across
//! requests by a [`MemoNodes`]. This module only decides where a tile row
//! comes from (the hot right-edge tiles, this request's reads, the store).

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::{Arc, Mutex, RwLock};

use lineage_ledger::Hash;
use lineage_ledger::store::{Store, StoreError};
use lineage_ledger::tree::{BoundedMemo, MemoNodes, NodeMemo, NodeSource, RowNodes, TileSpan};

use crate::sync::{lock, read};

/// A tile row at the right edge of the tree, every interior node hashed,
/// shared read-only between the requests that read it.
pub(crate) type SharedTile = Arc<RowNodes>;

/// Interior proof nodes of at least this height within their tile are
/// remembered across requests; smaller ones cost fewer hashes than the
/// bookkeeping would, and within a request every node is hashed once anyway.
const MEMO_MIN_HEIGHT: u8 = 4;

/// Nodes a per-source memo holds.
const LOCAL_MEMO_NODES: usize = 1 << 14;

/// The tile rows one request reads: the hot right-edge tiles answer with
/// the nodes hashed when they were published; any other tile is read from
/// the store once, and each interior node of its row hashed at most once
/// however many proofs of the request need it (the receipts of an array of
/// consecutive entries share most of theirs).
pub(crate) struct StoredTiles<'a> {
    store: &'a dyn Store,
    hot: Option<&'a RwLock<HashMap<(u8, u64), SharedTile>>>,
    rows: Mutex<HashMap<(u8, u64), RowNodes>>,
}

impl NodeSource for StoredTiles<'_> {
    type Error = NodeError;

    fn node(&self, level: u8, index: u64) -> Result<Hash, NodeError> {
        let span = TileSpan::of_node(level, index).ok_or(NodeError::OutOfRange { level, index })?;
        let key = (span.level(), span.index());
        // A right-edge tile has all its nodes hashed already.
        if let Some(hash) = self
            .hot
            .and_then(|h| read(h).get(&key).and_then(|row| row.get(&span)))
        {
            return Ok(hash);
        }
        let missing = NodeError::Missing {
            tile_level: span.level(),
            tile_index: span.index(),
            offset: u64::from(span.offset()),
        };
        if let Some(row) = lock(&self.rows).get_mut(&key) {
            return row.root(&span).ok_or(missing);
        }
        // Read without holding the lock; a concurrent reader of the same
        // row keeps whichever copy was inserted first.
        let bytes = self
            .store
            .tile(span.level(), span.index())?
            .unwrap_or_default();
        let fresh = RowNodes::new(&bytes);
        let mut rows = lock(&self.rows);
        let row = match rows.entry(key) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(fresh),
        };
        row.root(&span).ok_or(missing)
    }
}

/// Where computed nodes are remembered across the proofs of one source.
pub(crate) enum Memo<'a> {
    /// For this node source only.
    Local(BoundedMemo),
    /// Shared by every request (bounded).
    Shared(&'a BoundedMemo),
}

impl NodeMemo for Memo<'_> {
    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        match self {
            Memo::Local(m) => m.get(level, index),
            Memo::Shared(m) => m.get(level, index),
        }
    }

    fn insert(&self, level: u8, index: u64, hash: Hash) {
        match self {
            Memo::Local(m) => m.insert(level, index, hash),
            Memo::Shared(m) => m.insert(level, index, hash),
        }
    }
}

/// A [`NodeSource`] over the stored tiles for one request. A node inside a
/// tile is hashed from the tile's row, each interior node once per request;
/// subtrees of 16 or more rows are also remembered (per source, or across
/// requests for [`Core::proof_nodes`](crate::Core::proof_nodes)), so
/// requests for neighbouring entries, whose audit paths share their larger
/// siblings, do not hash those again.
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

    /// Nodes of the hot tiles, then `store`'s, remembered in `memo`.
    pub(crate) fn with(
        store: &'a dyn Store,
        hot: Option<&'a RwLock<HashMap<(u8, u64), SharedTile>>>,
        memo: Memo<'a>,
    ) -> ProofNodes<'a> {
        let tiles = StoredTiles {
            store,
            hot,
            rows: Mutex::new(HashMap::new()),
        };
        ProofNodes(MemoNodes::new(tiles, memo).min_tile_height(MEMO_MIN_HEIGHT))
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
