//! In-memory node and tile sources, for tests and tools: [`MemNodes`] holds every node of a
//! tree, [`MemTiles`] the tiles that [`AppendPlan`]s write.

use std::collections::BTreeMap;

use super::append::AppendPlan;
use super::proof::NodeSource;
use super::tiles::TileSource;
use crate::hash::{Hash, node_hash};

/// A [`NodeSource`] holding every complete node of a tree in memory (2n hashes for n leaves).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemNodes {
    /// `levels[l][i]` is node (l, i); `levels[0]` are the leaf hashes.
    levels: Vec<Vec<Hash>>,
}

/// A node that a [`MemNodes`] does not hold: it is not complete in its tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("node ({level}, {index}) is not complete in a tree of size {size}")]
pub struct MissingNode {
    /// The requested level.
    pub level: u8,
    /// The requested index.
    pub index: u64,
    /// The size of the tree held.
    pub size: u64,
}

impl MemNodes {
    /// The tree of these leaf hashes, in order.
    pub fn new(leaves: Vec<Hash>) -> MemNodes {
        let mut nodes = MemNodes::default();
        if !leaves.is_empty() {
            nodes.levels.push(Vec::with_capacity(leaves.len()));
        }
        for leaf in leaves {
            nodes.push(leaf);
        }
        nodes
    }

    /// Appends one leaf hash, completing the nodes it closes.
    pub fn push(&mut self, leaf: Hash) {
        let mut carry = leaf;
        for level in 0.. {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            let Some(row) = self.levels.get_mut(level) else {
                return;
            };
            row.push(carry);
            match row.as_slice() {
                [.., left, right] if row.len().is_multiple_of(2) => carry = node_hash(left, right),
                _ => return,
            }
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }
}

impl NodeSource for MemNodes {
    type Error = MissingNode;

    fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.levels.get(usize::from(level))?.get(i))
            .copied()
            .ok_or(MissingNode {
                level,
                index,
                size: self.size(),
            })
    }
}

/// In-memory hash tiles, filled by applying [`AppendPlan`]s: a [`TileSource`] for tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemTiles {
    tiles: BTreeMap<(u8, u64), Vec<Hash>>,
}

/// A tile that a [`MemTiles`] does not hold at the width asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("tile {level}/{index} holds {width} hashes, {min_width} asked for")]
pub struct MissingTile {
    /// Tile level.
    pub level: u8,
    /// Tile index.
    pub index: u64,
    /// Number of hashes held (0 when the tile is absent).
    pub width: u16,
    /// Number of hashes asked for.
    pub min_width: u16,
}

impl MemTiles {
    /// No tiles: the storage of the empty tree.
    pub fn new() -> MemTiles {
        MemTiles::default()
    }

    /// Writes every tile of `plan`, replacing earlier contents.
    pub fn apply(&mut self, plan: &AppendPlan) {
        for t in &plan.tiles {
            self.tiles.insert((t.level, t.index), t.hashes.clone());
        }
    }

    /// The hashes of tile (level, index), if held.
    pub fn get(&self, level: u8, index: u64) -> Option<&[Hash]> {
        self.tiles.get(&(level, index)).map(Vec::as_slice)
    }

    /// Every tile held, as (level, index, hashes), ordered by level then index.
    pub fn iter(&self) -> impl Iterator<Item = (u8, u64, &[Hash])> {
        self.tiles
            .iter()
            .map(|(&(level, index), hashes)| (level, index, hashes.as_slice()))
    }

    /// Number of tiles held.
    pub fn len(&self) -> usize {
        self.tiles.len()
    }

    /// Whether no tile is held.
    pub fn is_empty(&self) -> bool {
        self.tiles.is_empty()
    }
}

impl TileSource for MemTiles {
    type Error = MissingTile;

    fn tile(&self, level: u8, index: u64, min_width: u16) -> Result<Vec<u8>, MissingTile> {
        let hashes = self.get(level, index).unwrap_or_default();
        let width = u16::try_from(hashes.len()).unwrap_or(u16::MAX);
        if width < min_width || hashes.is_empty() {
            return Err(MissingTile {
                level,
                index,
                width,
                min_width,
            });
        }
        Ok(hashes.iter().flat_map(|h| h.to_bytes()).collect())
    }
}
