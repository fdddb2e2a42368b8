//! Recomputing a log's hash tiles and root from its leaf hashes, streaming.
//!
//! [`TileRebuilder`] takes leaf hashes in order and keeps one row of at most
//! 255 hashes per tile level (O(log n) memory). Each time a row fills, it
//! hands back the full tile (c2sp.org/tlog-tiles: tile level `L` holds the
//! hashes of tree level `8 * L`) and pushes the tile's root, the ledger's
//! [`tree::row_root`], up one level; at any moment its rows are the partial
//! tiles of the current tree size, from which [`TileRebuilder::root`] reads
//! the RFC 6962 root through the ledger's own [`TileNodes`] and
//! [`tree::root`]: no Merkle hashing is done here. [`compare`] checks a tile
//! file byte for byte against a recomputed tile and names the first
//! difference.
//!
//! Nothing here reads the tile files it checks: every hash is recomputed from
//! the level below, so a wrong file cannot vouch for another.

use lineage_ledger::tile::TilePath;
use lineage_ledger::tree::{self, TileNodes, TileSource, TileWrite};
use lineage_ledger::{HASH_SIZE, Hash, TILE_HEIGHT, TILE_WIDTH};

use crate::Violation;

/// Tile levels of a `u64`-sized tree.
const LEVELS: usize = 64 / TILE_HEIGHT as usize;

/// The streaming recomputation of a tree's tiles.
#[derive(Debug, Clone, Default)]
pub struct TileRebuilder {
    size: u64,
    /// Per tile level, the hashes after the last full tile (fewer than 256).
    rows: Vec<Vec<Hash>>,
    /// Per tile level, the number of full tiles emitted so far.
    full: Vec<u64>,
}

/// The row a level's partial tile was asked for is not the one kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("tile {level}/{index} is not the current partial tile")]
pub struct NotBuffered {
    level: u8,
    index: u64,
}

impl TileRebuilder {
    /// An empty tree.
    pub fn new() -> TileRebuilder {
        TileRebuilder {
            size: 0,
            rows: vec![Vec::new(); LEVELS],
            full: vec![0; LEVELS],
        }
    }

    /// Number of leaves pushed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends one leaf hash; every tile it completes is appended to `full`.
    pub fn push(&mut self, leaf: Hash, full: &mut Vec<TileWrite>) {
        self.size += 1;
        let mut carry = leaf;
        for level in 0..LEVELS {
            let (Some(row), Some(count)) = (self.rows.get_mut(level), self.full.get_mut(level))
            else {
                return;
            };
            row.push(carry);
            if row.len() as u64 != TILE_WIDTH {
                return;
            }
            let hashes = std::mem::take(row);
            // A full row: 256 hashes, so their row root is the node above the tile.
            carry = tree::row_root(&hashes);
            full.push(TileWrite {
                // Lossless: level < 8.
                level: level as u8,
                index: *count,
                hashes,
            });
            *count += 1;
        }
    }

    /// The partial tiles of the current tree size, lowest level first
    /// (the same set as [`lineage_ledger::tile::layout`] names).
    pub fn partial_tiles(&self) -> Vec<TileWrite> {
        (0..)
            .zip(self.rows.iter().zip(&self.full))
            .filter(|(_, (row, _))| !row.is_empty())
            .map(|(level, (row, count))| TileWrite {
                level,
                index: *count,
                hashes: row.clone(),
            })
            .collect()
    }

    /// The RFC 6962 root of the leaves pushed so far.
    pub fn root(&self) -> Hash {
        // The right edge of the tree lies in the partial rows, so this cannot
        // fail; the fallback only keeps a bug from becoming a panic (it would
        // then show as a root mismatch).
        tree::root(self.size, &TileNodes(self)).unwrap_or_default()
    }
}

impl TileSource for TileRebuilder {
    type Error = NotBuffered;

    fn tile(&self, level: u8, index: u64, min_width: u16) -> Result<Vec<u8>, NotBuffered> {
        let l = usize::from(level);
        match (self.rows.get(l), self.full.get(l)) {
            (Some(row), Some(&count)) if count == index && row.len() >= usize::from(min_width) => {
                Ok(row.iter().flat_map(|h| h.to_bytes()).collect())
            }
            _ => Err(NotBuffered { level, index }),
        }
    }
}

/// Checks a tile file's bytes against the recomputed tile.
///
/// # Errors
/// [`Violation::TileLength`] when the file is not exactly the tile's size;
/// [`Violation::TileMismatch`] naming the first differing hash and how many differ.
pub fn compare(recomputed: &TileWrite, file: &[u8]) -> Result<(), Violation> {
    let width = recomputed.width();
    let path = TilePath::hash(recomputed.level, recomputed.index, width)
        .map(|p| p.to_string())
        .unwrap_or_default();
    let expected = recomputed.hashes.len() * HASH_SIZE;
    if file.len() != expected {
        return Err(Violation::TileLength {
            path,
            width,
            expected,
            found: file.len(),
        });
    }
    let mut diffs = recomputed
        .hashes
        .iter()
        .zip(file.chunks_exact(HASH_SIZE))
        .enumerate()
        .filter(|(_, (h, f))| h.to_bytes() != **f);
    let Some((position, (want, got))) = diffs.next() else {
        return Ok(());
    };
    Err(Violation::TileMismatch {
        path,
        level: recomputed.level,
        width,
        position: u16::try_from(position).unwrap_or(u16::MAX),
        tree_level: recomputed.level * TILE_HEIGHT,
        node: recomputed.index * TILE_WIDTH + position as u64,
        mismatched: 1 + diffs.count(),
        recomputed: *want,
        found: Hash::from_slice(got).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_ledger::leaf_hash;
    use lineage_ledger::tile::{TileKind, layout};
    use lineage_ledger::tree::{MemNodes, MemTiles, TreeEdge, plan_append};

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(i.to_string().as_bytes()))
            .collect()
    }

    /// The rebuilder agrees with the ledger's append path on every tile and
    /// root, and its tiles are exactly the layout's, for sizes around tile edges.
    #[test]
    fn matches_the_ledger_append_path() {
        let all = leaves(66_000);
        let mut rebuilder = TileRebuilder::new();
        let mut full = Vec::new();
        let mut mem = MemTiles::new();
        let mut edge = TreeEdge::empty();
        let checkpoints = [
            1u64, 2, 3, 255, 256, 257, 300, 511, 512, 65_535, 65_536, 65_537, 66_000,
        ];
        let mut from = 0usize;
        for &size in &checkpoints {
            for leaf in &all[from..size as usize] {
                rebuilder.push(*leaf, &mut full);
            }
            let plan = plan_append(&edge, &all[from..size as usize]);
            mem.apply(&plan);
            edge = plan.edge;
            from = size as usize;

            assert_eq!(rebuilder.root(), edge.root(), "root at {size}");
            // Every tile the layout calls for, full or partial, as the ledger has it.
            let mut ours: Vec<TileWrite> = full.clone();
            ours.extend(rebuilder.partial_tiles());
            for level in 0..3u8 {
                let l = layout(TileKind::Hash { level }, size);
                let mut want: Vec<(u64, u16)> = (0..l.full_tiles).map(|i| (i, 256)).collect();
                want.extend(l.partial.map(|p| (p.index, p.width)));
                let got: Vec<(u64, u16)> = ours
                    .iter()
                    .filter(|t| t.level == level)
                    .map(|t| (t.index, t.width()))
                    .collect();
                assert_eq!(got, want, "level {level} at size {size}");
                for t in ours.iter().filter(|t| t.level == level) {
                    assert_eq!(
                        mem.get(level, t.index).map(|h| &h[..t.hashes.len()]),
                        Some(t.hashes.as_slice()),
                        "tile {level}/{} at {size}",
                        t.index
                    );
                }
            }
        }
        assert_eq!(
            TileRebuilder::new().root(),
            lineage_ledger::EMPTY_ROOT,
            "empty tree"
        );
        let small = MemNodes::new(all[..5].to_vec());
        let mut r = TileRebuilder::new();
        for l in &all[..5] {
            r.push(*l, &mut Vec::new());
        }
        assert_eq!(Ok(r.root()), tree::root(5, &small));
    }

    #[test]
    fn compare_names_the_first_difference() {
        let tile = TileWrite {
            level: 1,
            index: 2,
            hashes: leaves(3),
        };
        let good = tile.to_bytes();
        assert!(compare(&tile, &good).is_ok());
        let mut bad = good.clone();
        bad[40] ^= 1;
        bad[70] ^= 1;
        match compare(&tile, &bad) {
            Err(Violation::TileMismatch {
                path,
                position,
                tree_level,
                node,
                mismatched,
                ..
            }) => {
                assert_eq!(path, "tile/1/002.p/3");
                assert_eq!((position, tree_level, node, mismatched), (1, 8, 513, 2));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            compare(&tile, &good[1..]),
            Err(Violation::TileLength {
                expected: 96,
                found: 95,
                ..
            })
        ));
    }
}
