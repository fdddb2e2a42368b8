//! Nodes from C2SP tlog-tiles hash tiles: a node is the [`row_root`] of a run of one tile row
//! ([`TileSpan`] says which); [`TileNodes`] serves every node from a [`TileSource`].

use super::proof::NodeSource;
use crate::hash::{EMPTY_ROOT, HASH_SIZE, Hash, node_hash};
use crate::{TILE_HEIGHT, TILE_WIDTH};

/// Largest tree size [`TreeEdge::load`] accepts. Appending to such a tree cannot overflow a
/// `u64` before 2^63 more leaves have been hashed.
///
/// [`TreeEdge::load`]: super::TreeEdge::load
// Here, not in `append.rs`: `TileNodesError::TreeTooLarge` names it, and `append.rs` imports
// this file.
pub const MAX_TREE_SIZE: u64 = 1 << 63;

/// Read access to stored C2SP tlog-tiles hash tiles.
///
/// Hash tile (level `L`, index `N`) holds the hashes of tree level `8 * L`, indices
/// `N * 256 ..`, 32 bytes each, concatenated.
pub trait TileSource {
    /// Why a tile could not be read.
    type Error;

    /// Bytes of hash tile (level, index) as currently stored: a concatenation of 32-byte
    /// hashes, at least `min_width` of them (the store may hold more if the tree has grown).
    ///
    /// # Errors
    /// Implementation-defined: the tile is missing, too narrow, or could not be read.
    fn tile(&self, level: u8, index: u64, min_width: u16) -> Result<Vec<u8>, Self::Error>;
}

impl<T: TileSource + ?Sized> TileSource for &T {
    type Error = T::Error;

    fn tile(&self, level: u8, index: u64, min_width: u16) -> Result<Vec<u8>, Self::Error> {
        (**self).tile(level, index, min_width)
    }
}

/// Error reading nodes or a tree edge from tiles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileNodesError<E> {
    /// The tile source failed.
    #[error(transparent)]
    Source(E),
    /// The tile source returned fewer hashes than asked for.
    #[error("tile {level}/{index} holds {width} hashes, {needed} needed")]
    ShortTile {
        /// Tile level.
        level: u8,
        /// Tile index.
        index: u64,
        /// Number of whole hashes returned.
        width: u64,
        /// Number of hashes asked for.
        needed: u16,
    },
    /// The tile source returned bytes that are not a whole number of hashes.
    #[error("tile {level}/{index} is {len} bytes, not a multiple of 32")]
    MisalignedTile {
        /// Tile level.
        level: u8,
        /// Tile index.
        index: u64,
        /// Length in bytes.
        len: usize,
    },
    /// A node whose leaves lie beyond `u64` leaf indexes.
    #[error("node ({level}, {index}) lies beyond the largest possible tree")]
    NodeOutOfRange {
        /// Tree level.
        level: u8,
        /// Index in that level.
        index: u64,
    },
    /// [`TreeEdge::load`] was asked for a tree larger than [`MAX_TREE_SIZE`].
    ///
    /// [`TreeEdge::load`]: super::TreeEdge::load
    #[error("tree size {size} is larger than the maximum {MAX_TREE_SIZE}")]
    TreeTooLarge {
        /// The requested size.
        size: u64,
    },
}

/// Reads the first `width` hashes of tile (level, index).
pub(super) fn read_tile<T: TileSource + ?Sized>(
    tiles: &T,
    level: u8,
    index: u64,
    width: u16,
) -> Result<Vec<Hash>, TileNodesError<T::Error>> {
    let bytes = tiles
        .tile(level, index, width)
        .map_err(TileNodesError::Source)?;
    if !bytes.len().is_multiple_of(HASH_SIZE) {
        return Err(TileNodesError::MisalignedTile {
            level,
            index,
            len: bytes.len(),
        });
    }
    let have = bytes.len() / HASH_SIZE;
    if have < usize::from(width) {
        return Err(TileNodesError::ShortTile {
            level,
            index,
            width: have as u64,
            needed: width,
        });
    }
    Ok(bytes
        .chunks_exact(HASH_SIZE)
        .take(usize::from(width))
        .filter_map(Hash::from_slice)
        .collect())
}

/// The RFC 6962 Merkle tree hash of a run of hashes taken as leaves: `MTH` over entries that
/// are already hashed. [`EMPTY_ROOT`] when there are none.
///
/// For `2^k` consecutive nodes of one tree level, starting at a multiple of `2^k` (such as a
/// run of a tile row), it is the node `k` levels above them; for the leaf hashes of a whole
/// tree it is that tree's [`root`]. It hashes each interior node once (`len - 1` hashes) and
/// keeps O(log n) hashes, not a copy of the run.
///
/// [`root`]: super::root
pub fn row_root(hashes: &[Hash]) -> Hash {
    fold_row(hashes.iter().copied())
}

/// [`row_root`] over an iterator: merges equal-height subtrees as each hash arrives (one
/// merge per trailing one bit of the count so far), then folds what is left right to left,
/// as RFC 6962 splits an unbalanced tree.
fn fold_row(hashes: impl Iterator<Item = Hash>) -> Hash {
    // Roots of the perfect subtrees so far, largest (leftmost) first: at most 64.
    let mut stack: Vec<Hash> = Vec::with_capacity(8);
    for (count, hash) in (0u64..).zip(hashes) {
        let mut node = hash;
        for _ in 0..count.trailing_ones() {
            let Some(left) = stack.pop() else { break };
            node = node_hash(&left, &node);
        }
        stack.push(node);
    }
    let mut nodes = stack.into_iter().rev();
    let Some(last) = nodes.next() else {
        return EMPTY_ROOT;
    };
    nodes.fold(last, |acc, left| node_hash(&left, &acc))
}

/// Where a complete subtree's hash lies in C2SP tlog-tiles storage: node (level, index) is
/// the root of `count = 2^(level % 8)` consecutive hashes of one tile row, tile level
/// `level / 8`, starting at position `offset` of its tile.
///
/// This is how [`TileNodes`] reads nodes; callers that hold tile rows in their own form
/// locate and hash a node with [`TileSpan::of_node`] and [`TileSpan::root`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileSpan {
    level: u8,
    index: u64,
    offset: u16,
    count: u16,
}

impl TileSpan {
    /// The span of node (level, index); `None` when the node's leaves lie beyond `u64` leaf
    /// indexes.
    pub fn of_node(level: u8, index: u64) -> Option<TileSpan> {
        let count = 1u64 << (level % TILE_HEIGHT);
        let first = index.checked_mul(count)?;
        // `count` divides 256 and `first` is a multiple of it, so the run lies in one tile;
        // `offset + count` is at most 256.
        let offset = first % TILE_WIDTH;
        Some(TileSpan {
            level: level / TILE_HEIGHT,
            index: first / TILE_WIDTH,
            offset: u16::try_from(offset).ok()?,
            count: u16::try_from(count).ok()?,
        })
    }

    /// Tile level: the tile row holds the hashes of tree level `8 * level`.
    pub fn level(&self) -> u8 {
        self.level
    }

    /// Tile index within its level.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Position of the first hash of the run in the tile.
    pub fn offset(&self) -> u16 {
        self.offset
    }

    /// Number of hashes in the run: a power of two, 1 to 128.
    pub fn count(&self) -> u16 {
        self.count
    }

    /// The tile width the node needs: `offset + count` hashes.
    pub fn width(&self) -> u16 {
        self.offset + self.count
    }

    /// The node's hash from the bytes of its tile as stored (32-byte hashes, concatenated):
    /// the [`row_root`] of the span's run. Bytes past the run are ignored, so a tile that has
    /// grown since serves older nodes unchanged. `None` when `tile` is shorter than
    /// [`width`](Self::width) hashes.
    pub fn root(&self, tile: &[u8]) -> Option<Hash> {
        let start = usize::from(self.offset) * HASH_SIZE;
        let run = tile.get(start..start + usize::from(self.count) * HASH_SIZE)?;
        Some(stored_run_root(run))
    }

    /// The node's hash from the stored bytes of its tile's [`TileStratum`]: the [`row_root`]
    /// of the stratum nodes under it (at most 7 hashes, where the row would take up to 127).
    /// `None` for a node less than [`STRATUM_HEIGHT`] levels above its row, or when `stratum`
    /// is not exactly [`STRATUM_WIDTH`] hashes.
    pub fn stratum_root(&self, stratum: &[u8]) -> Option<Hash> {
        let per_node = 1u16 << STRATUM_HEIGHT;
        if self.count < per_node || stratum.len() != STRATUM_WIDTH * HASH_SIZE {
            return None;
        }
        let first = usize::from(self.offset / per_node) * HASH_SIZE;
        let len = usize::from(self.count / per_node) * HASH_SIZE;
        let run = stratum.get(first..first + len)?;
        Some(stored_run_root(run))
    }

    /// The run of its row that holds the node's span (the [`RUN_WIDTH`] hashes under one
    /// [`TileStratum`] node), for a node less than [`STRATUM_HEIGHT`] levels above its row;
    /// `None` for a higher one, which a stratum gives.
    pub fn run(&self) -> Option<u16> {
        (self.count < RUN_WIDTH).then_some(self.offset / RUN_WIDTH)
    }
}

/// [`row_root`] of a run of hashes as stored (32-byte hashes, concatenated).
fn stored_run_root(run: &[u8]) -> Hash {
    fold_row(run.chunks_exact(HASH_SIZE).filter_map(Hash::from_slice))
}

/// Height above its tile row of the nodes a [`TileStratum`] keeps.
pub const STRATUM_HEIGHT: u8 = 4;

/// Nodes in a [`TileStratum`]: one per `2^STRATUM_HEIGHT` row hashes.
pub const STRATUM_WIDTH: usize = (TILE_WIDTH >> STRATUM_HEIGHT) as usize;

/// Row hashes under one [`TileStratum`] node: a "run". The nodes of a tile less than
/// [`STRATUM_HEIGHT`] levels above its row each lie within one run, so a store can give
/// them from the run's 512 bytes instead of the row's 8 KiB.
pub const RUN_WIDTH: u16 = 1 << STRATUM_HEIGHT;

/// Bytes of a run as stored (16 hashes, concatenated).
pub const RUN_BYTES: usize = RUN_WIDTH as usize * HASH_SIZE;

/// The 16 nodes [`STRATUM_HEIGHT`] levels above a complete tile row: node `i` is the root of
/// row hashes `16 i .. 16 i + 16`.
///
/// A store keeps one beside each complete tile, so that a node 4 to 7 levels above its row
/// costs at most 7 hashes of the stratum instead of up to 127 of the row: a random
/// inclusion proof in a large log then hashes a few dozen nodes, not hundreds. A complete
/// row never changes, so neither does its stratum. It is not part of C2SP tlog-tiles: it
/// is a cache of the tiles, derivable from them at any time ([`TileStratum::of_tile`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileStratum {
    /// Tile level.
    pub level: u8,
    /// Tile index.
    pub index: u64,
    /// The nodes, left to right.
    pub nodes: [Hash; STRATUM_WIDTH],
}

impl TileStratum {
    /// The stratum of tile (level, index) from its row's hashes; `None` unless the row is
    /// complete (256 hashes).
    pub fn of_row(level: u8, index: u64, row: &[Hash]) -> Option<TileStratum> {
        if row.len() as u64 != TILE_WIDTH {
            return None;
        }
        let mut nodes = [Hash::default(); STRATUM_WIDTH];
        for (node, run) in nodes.iter_mut().zip(row.chunks_exact(1 << STRATUM_HEIGHT)) {
            *node = row_root(run);
        }
        Some(TileStratum {
            level,
            index,
            nodes,
        })
    }

    /// The stratum of tile (level, index) from the tile's stored bytes; `None` unless they
    /// are exactly a complete row (256 hashes).
    pub fn of_tile(level: u8, index: u64, tile: &[u8]) -> Option<TileStratum> {
        if tile.len() as u64 != TILE_WIDTH * HASH_SIZE as u64 {
            return None;
        }
        let row: Vec<Hash> = tile
            .chunks_exact(HASH_SIZE)
            .filter_map(Hash::from_slice)
            .collect();
        TileStratum::of_row(level, index, &row)
    }

    /// The nodes as stored: 16 hashes, concatenated (512 bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.nodes.iter().flat_map(|h| *h.as_bytes()).collect()
    }
}

/// One run of a complete tile row ([`RUN_WIDTH`] hashes) and the 15 nodes above it, up to
/// the [`TileStratum`] node it stands under: every node of the row less than
/// [`STRATUM_HEIGHT`] levels above it, for a reader that holds the run apart from the row
/// (a proof of a random leaf needs one run of its level-0 tile, 512 bytes of 8 KiB).
///
/// It is made only from a run that hashes to its node of the row's stored stratum
/// ([`RunNodes::checked`]), so a copy of the run kept outside the store's commits cannot
/// give a wrong node. Not a [`RowNodes`] of 16 hashes: that keeps slots for a whole row's
/// 254 interior nodes (8 KiB), and a random proof makes one of these per request.
#[derive(Clone)]
pub struct RunNodes {
    run: u16,
    /// Heights 0 to 4, left to right: 16 + 8 + 4 + 2 + 1.
    nodes: [Hash; 2 * RUN_WIDTH as usize - 1],
}

impl std::fmt::Debug for RunNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunNodes")
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

impl RunNodes {
    /// The nodes of run `run` of a row from the run's stored bytes (exactly [`RUN_BYTES`]),
    /// hashed (15 hashes), when they hash to node `run` of the row's stored `stratum`
    /// (exactly [`STRATUM_WIDTH`] hashes); `None` otherwise.
    pub fn checked(stratum: &[u8], run: u16, bytes: &[u8]) -> Option<RunNodes> {
        let at = usize::from(run) * HASH_SIZE;
        let expected = stratum
            .get(at..at + HASH_SIZE)
            .filter(|_| stratum.len() == STRATUM_WIDTH * HASH_SIZE && bytes.len() == RUN_BYTES)?;
        let mut nodes = [Hash::default(); 2 * RUN_WIDTH as usize - 1];
        for (node, hash) in nodes.iter_mut().zip(bytes.chunks_exact(HASH_SIZE)) {
            *node = Hash::from_slice(hash)?;
        }
        for height in 1..=STRATUM_HEIGHT {
            let (below, base) = (run_base(height - 1), run_base(height));
            for pos in 0..usize::from(RUN_WIDTH >> height) {
                nodes[base + pos] = node_hash(&nodes[below + 2 * pos], &nodes[below + 2 * pos + 1]);
            }
        }
        (nodes[run_base(STRATUM_HEIGHT)].as_bytes()[..] == *expected)
            .then_some(RunNodes { run, nodes })
    }

    /// The node `span` names; `None` unless its [`run`](TileSpan::run) is this one. The
    /// caller matches the span's tile to this run's row.
    pub fn get(&self, span: &TileSpan) -> Option<Hash> {
        if span.run() != Some(self.run) {
            return None;
        }
        let height = span.count.trailing_zeros() as u8;
        let pos = usize::from(span.offset % RUN_WIDTH) >> height;
        self.nodes.get(run_base(height) + pos).copied()
    }
}

/// Where the nodes of `height` (0 to 4) start in [`RunNodes`]: heights below it take
/// 16, 8, ... slots, which sum to `32 - 2^(5 - height)`.
fn run_base(height: u8) -> usize {
    2 * usize::from(RUN_WIDTH) - ((2 * usize::from(RUN_WIDTH)) >> height)
}

/// Slots of the interior nodes of one tile row: heights 1 to 7, `256 >> h` nodes each.
const INTERIOR_SLOTS: usize = (TILE_WIDTH as usize) - 2;

/// Where the nodes of `height` (1 to 7) start among a row's interior slots.
fn interior_base(height: u8) -> usize {
    // Heights 1.. take 128, 64, ... slots: the ones before `height` sum to 256 - 2^(9 - h).
    (TILE_WIDTH as usize) - ((TILE_WIDTH as usize) >> (height - 1))
}

/// The nodes of one stored tile row, each interior node hashed at most once.
///
/// [`TileSpan::root`] hashes a node's whole run again every time it is asked (`count - 1`
/// hashes); the audit paths of many neighbouring leaves ask for most nodes of their tile
/// rows, so a caller proving many of them keeps one `RowNodes` per row: every node is then
/// two child lookups and at most one hash, and a whole row costs at most 254 hashes however
/// many proofs read it. Nodes are those [`TileSpan::root`] gives for the same bytes.
#[derive(Clone)]
pub struct RowNodes {
    row: Vec<Hash>,
    interior: Vec<Option<Hash>>,
}

impl std::fmt::Debug for RowNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RowNodes")
            .field("width", &self.row.len())
            .finish_non_exhaustive()
    }
}

impl RowNodes {
    /// The nodes of a tile row as stored (32-byte hashes, concatenated; at most 256 are used,
    /// a trailing partial hash is ignored).
    pub fn new(tile: &[u8]) -> RowNodes {
        RowNodes {
            row: tile
                .chunks_exact(HASH_SIZE)
                .take(TILE_WIDTH as usize)
                .filter_map(Hash::from_slice)
                .collect(),
            interior: Vec::new(),
        }
    }

    /// The nodes of a tile row given as its hashes (at most 256 are used), as a commit's
    /// [`TileWrite`](super::TileWrite) holds them: no round trip through bytes.
    pub fn from_hashes(hashes: &[Hash]) -> RowNodes {
        RowNodes {
            row: hashes.iter().take(TILE_WIDTH as usize).copied().collect(),
            interior: Vec::new(),
        }
    }

    /// Hashes in the row.
    pub fn width(&self) -> usize {
        self.row.len()
    }

    /// The node `span` names ([`TileSpan::root`] of this row's bytes); `None` when the row
    /// is shorter than [`TileSpan::width`]. The caller matches the span's tile to this row.
    pub fn root(&mut self, span: &TileSpan) -> Option<Hash> {
        if usize::from(span.width()) > self.row.len() {
            return None;
        }
        let height = span.count.trailing_zeros() as u8;
        Some(self.node(height, usize::from(span.offset >> height)))
    }

    /// The node `span` names if it needs no hashing: a hash of the row itself, or an interior
    /// node already hashed (every complete one after [`fill`](Self::fill)). For a row shared
    /// read-only between threads.
    pub fn get(&self, span: &TileSpan) -> Option<Hash> {
        if usize::from(span.width()) > self.row.len() {
            return None;
        }
        let height = span.count.trailing_zeros() as u8;
        let pos = usize::from(span.offset >> height);
        if height == 0 {
            return self.row.get(pos).copied();
        }
        self.interior
            .get(interior_base(height) + pos)
            .copied()
            .flatten()
    }

    /// Hashes every interior node over the row's complete runs not hashed yet.
    pub fn fill(&mut self) {
        for height in 1..TILE_HEIGHT {
            for pos in 0..(self.row.len() >> height) {
                self.node(height, pos);
            }
        }
    }

    /// The stratum of tile (level, index) when this row is complete, from the nodes hashed
    /// already (every one, after [`fill`](Self::fill)); `None` for a partial row.
    pub fn stratum(&mut self, level: u8, index: u64) -> Option<TileStratum> {
        if self.row.len() as u64 != TILE_WIDTH {
            return None;
        }
        let mut nodes = [Hash::default(); STRATUM_WIDTH];
        for (pos, node) in nodes.iter_mut().enumerate() {
            *node = self.node(STRATUM_HEIGHT, pos);
        }
        Some(TileStratum {
            level,
            index,
            nodes,
        })
    }

    /// This row grown to `next`, a later version of it: when `next` begins with this row's
    /// hashes (a stored tile only ever grows at its end), the interior nodes hashed over them
    /// are kept; otherwise nothing is.
    pub fn grown(&self, mut next: RowNodes) -> RowNodes {
        if next.row.get(..self.row.len()) == Some(self.row.as_slice()) {
            next.interior.clone_from(&self.interior);
        }
        next
    }

    /// Node `pos` of `height` within the row; its run lies inside the row (checked by the
    /// caller).
    fn node(&mut self, height: u8, pos: usize) -> Hash {
        if height == 0 {
            return self.row.get(pos).copied().unwrap_or_default();
        }
        let slot = interior_base(height) + pos;
        if let Some(Some(hash)) = self.interior.get(slot) {
            return *hash;
        }
        let left = self.node(height - 1, 2 * pos);
        let right = self.node(height - 1, 2 * pos + 1);
        let hash = node_hash(&left, &right);
        if self.interior.is_empty() {
            self.interior = vec![None; INTERIOR_SLOTS];
        }
        if let Some(s) = self.interior.get_mut(slot) {
            *s = Some(hash);
        }
        hash
    }
}

/// Number of nodes of tree level `8 * tile_level` in a tree of `size`.
pub(super) fn row_len(size: u64, tile_level: u8) -> u64 {
    size.checked_shr(u32::from(tile_level) * u32::from(TILE_HEIGHT))
        .unwrap_or(0)
}

/// A [`NodeSource`] over stored hash tiles.
///
/// Node (level, index) is read from the row of tile level `level / 8`: the `2^(level % 8)`
/// consecutive row entries under it (its [`TileSpan`]) are hashed as a perfect subtree (at
/// most 127 hashes).
#[derive(Debug)]
pub struct TileNodes<'a, T: ?Sized>(pub &'a T);

impl<T: ?Sized> Clone for TileNodes<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for TileNodes<'_, T> {}

impl<T: TileSource + ?Sized> NodeSource for TileNodes<'_, T> {
    type Error = TileNodesError<T::Error>;

    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        let span = TileSpan::of_node(level, index)
            .ok_or(TileNodesError::NodeOutOfRange { level, index })?;
        let row = read_tile(self.0, span.level, span.index, span.width())?;
        Ok(row_root(
            row.get(usize::from(span.offset)..).unwrap_or_default(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::tree::fixture::{FIXTURE_SIZE, check, config, fixture, mem_root};
    use crate::tree::{MissingTile, TreeEdge};

    #[test]
    fn row_root_is_the_tree_root_of_its_hashes() {
        let f = fixture();
        for size in (0..=64u64).chain([255, 256, 257, 300, 1000, 4096]) {
            let leaves = f.leaves.get(..size as usize).unwrap_or_default();
            check((size, row_root(leaves)), (size, mem_root(size)));
        }
        // A power-of-two run of a higher level is the node above it.
        for level in 0..=8u8 {
            let row: Vec<Hash> = (0..8u64)
                .filter_map(|i| f.mem.node(level, i).ok())
                .collect();
            check(row_root(&row), f.mem.node(level + 3, 0).unwrap_or_default());
        }
    }

    #[test]
    fn tile_spans_locate_and_hash_every_node() {
        let f = fixture();
        for level in 0..=16u8 {
            for index in [
                0,
                1,
                2,
                3,
                5,
                127,
                128,
                (FIXTURE_SIZE >> level).saturating_sub(1),
            ] {
                if (index + 1) << level > FIXTURE_SIZE {
                    continue;
                }
                let span = TileSpan::of_node(level, index).expect("in range");
                let count = 1u64 << (level % 8);
                check(
                    (
                        level,
                        index,
                        span.level(),
                        span.index(),
                        u64::from(span.offset()),
                        u64::from(span.count()),
                    ),
                    (
                        level,
                        index,
                        level / 8,
                        index * count / 256,
                        index * count % 256,
                        count,
                    ),
                );
                check(span.width(), span.offset() + span.count());
                let tile = f.tiles.get(span.level(), span.index()).unwrap_or_default();
                let bytes: Vec<u8> = tile.iter().flat_map(|h| h.to_bytes()).collect();
                check(
                    (level, index, span.root(&bytes)),
                    (level, index, f.mem.node(level, index).ok()),
                );
                let exact = bytes
                    .get(..usize::from(span.width()) * 32)
                    .unwrap_or_default();
                check(span.root(exact), span.root(&bytes));
                let short = bytes
                    .get(..usize::from(span.width()) * 32 - 1)
                    .unwrap_or_default();
                check(span.root(short), None);
            }
        }
        check(TileSpan::of_node(7, u64::MAX), None);
        check(
            TileSpan::of_node(0, u64::MAX).map(|s| (s.index(), s.offset())),
            Some((u64::MAX / 256, 255)),
        );
        check(
            TileSpan::of_node(255, 1).map(|s| (s.level(), s.count(), s.width())),
            Some((31, 128, 256)),
        );
    }

    #[test]
    fn row_nodes_hash_each_interior_node_once_and_agree_with_tile_spans() {
        let f = fixture();
        let tile = f.tiles.get(0, 0).unwrap_or_default();
        let bytes: Vec<u8> = tile.iter().flat_map(|h| h.to_bytes()).collect();
        check(bytes.len(), 256 * 32);
        let mut nodes = RowNodes::new(&bytes);
        check(nodes.width(), 256);
        // Built from the hashes themselves, the same row.
        check(RowNodes::from_hashes(tile).row, nodes.row.clone());
        // Every node of the tile, in an order that asks for parents before children.
        for level in (0..8u8).rev() {
            for index in 0..(256u64 >> level) {
                let span = TileSpan::of_node(level, index).expect("in range");
                check(
                    (level, index, nodes.root(&span)),
                    (level, index, f.mem.node(level, index).ok()),
                );
            }
        }
        // Interior slots: 128 + 64 + ... + 2 = 254, each filled exactly once.
        check(nodes.interior.iter().filter(|n| n.is_some()).count(), 254);
        // A row shorter than the span answers None, as TileSpan::root does.
        let mut short = RowNodes::new(bytes.get(..100 * 32).unwrap_or_default());
        let span = TileSpan::of_node(7, 0).expect("in range");
        check(short.root(&span), None);
        check(
            short.root(&span),
            span.root(bytes.get(..100 * 32).unwrap_or_default()),
        );
        let span = TileSpan::of_node(5, 2).expect("in range");
        check(short.root(&span), f.mem.node(5, 2).ok());

        // A row grown from a shorter one keeps what was hashed and, filled, answers every
        // complete node without hashing (get) exactly as a fresh row would.
        let mut half = RowNodes::new(bytes.get(..100 * 32).unwrap_or_default());
        half.fill();
        check(
            half.interior.iter().filter(|n| n.is_some()).count(),
            50 + 25 + 12 + 6 + 3 + 1,
        );
        let mut full = half.grown(RowNodes::new(&bytes));
        check(full.interior.iter().filter(|n| n.is_some()).count(), 97);
        full.fill();
        check(full.interior.iter().filter(|n| n.is_some()).count(), 254);
        for level in 0..8u8 {
            for index in 0..(256u64 >> level) {
                let span = TileSpan::of_node(level, index).expect("in range");
                check(
                    (level, index, full.get(&span)),
                    (level, index, f.mem.node(level, index).ok()),
                );
            }
        }
        // Grown to bytes that do not begin with the row, nothing is kept.
        let other: Vec<u8> = bytes.iter().map(|b| b ^ 1).collect();
        check(
            half.grown(RowNodes::new(&other))
                .interior
                .iter()
                .filter(|n| n.is_some())
                .count(),
            0,
        );
        // Unfilled, get answers only what needs no hashing.
        let fresh = RowNodes::new(&bytes);
        check(
            fresh.get(&TileSpan::of_node(0, 3).expect("in range")),
            f.mem.node(0, 3).ok(),
        );
        check(fresh.get(&TileSpan::of_node(1, 3).expect("in range")), None);
    }

    #[test]
    fn strata_give_every_node_four_to_seven_levels_above_a_complete_row() {
        let f = fixture();
        // Complete tiles of levels 0 and 1 (65,537 leaves: 256 at level 0, 1 at level 1).
        for (level, index) in [(0u8, 0u64), (0, 1), (0, 255), (1, 0)] {
            let row = f.tiles.get(level, index).unwrap_or_default();
            check(row.len(), 256);
            let bytes: Vec<u8> = row.iter().flat_map(|h| h.to_bytes()).collect();
            let stratum = TileStratum::of_row(level, index, row).expect("complete row");
            // Three ways to it agree: from hashes, from stored bytes, from a row's nodes.
            check(
                TileStratum::of_tile(level, index, &bytes).as_ref(),
                Some(&stratum),
            );
            let mut nodes = RowNodes::new(&bytes);
            check(nodes.stratum(level, index).as_ref(), Some(&stratum));
            let stored = stratum.to_bytes();
            check(stored.len(), STRATUM_WIDTH * HASH_SIZE);
            for height in 0..8u8 {
                let tree_level = 8 * level + height;
                let per_tile = 256u64 >> height;
                for index_in_tile in 0..per_tile {
                    let node = index * per_tile + index_in_tile;
                    let span = TileSpan::of_node(tree_level, node).expect("in range");
                    let want = if height < STRATUM_HEIGHT {
                        None
                    } else {
                        f.mem.node(tree_level, node).ok()
                    };
                    check(
                        (tree_level, node, span.stratum_root(&stored)),
                        (tree_level, node, want),
                    );
                }
            }
            // Not a whole stratum: no answer, never a wrong one.
            let span = TileSpan::of_node(8 * level + 7, index).expect("in range");
            check(
                span.stratum_root(stored.get(..stored.len() - 1).unwrap_or_default()),
                None,
            );
            check(
                span.stratum_root(&[stored.clone(), stored.clone()].concat()),
                None,
            );
        }
        // Partial rows and stored bytes that are not a complete row have none.
        let last = f.tiles.get(0, 256).unwrap_or_default();
        check(last.len(), 1);
        check(TileStratum::of_row(0, 256, last), None);
        let row = f.tiles.get(0, 0).unwrap_or_default();
        check(
            TileStratum::of_row(0, 0, row.get(..255).unwrap_or_default()),
            None,
        );
        let bytes: Vec<u8> = row.iter().flat_map(|h| h.to_bytes()).collect();
        check(
            TileStratum::of_tile(0, 0, bytes.get(..bytes.len() - 32).unwrap_or_default()),
            None,
        );
        check(
            TileStratum::of_tile(0, 0, &[bytes.clone(), vec![0; 32]].concat()),
            None,
        );
        check(
            RowNodes::new(bytes.get(..32 * 200).unwrap_or_default()).stratum(0, 0),
            None,
        );
    }

    #[test]
    fn runs_give_every_node_below_the_stratum_and_are_checked_against_it() {
        let f = fixture();
        for (level, index) in [(0u8, 0u64), (0, 7), (1, 0)] {
            let row = f.tiles.get(level, index).unwrap_or_default();
            let bytes: Vec<u8> = row.iter().flat_map(|h| h.to_bytes()).collect();
            let stratum = TileStratum::of_row(level, index, row)
                .expect("complete row")
                .to_bytes();
            let run_bytes = |run: u16| {
                let at = usize::from(run) * RUN_BYTES;
                bytes.get(at..at + RUN_BYTES).unwrap_or_default()
            };
            let runs: Vec<RunNodes> = (0..16u16)
                .map(|run| RunNodes::checked(&stratum, run, run_bytes(run)).expect("its run"))
                .collect();
            for height in 0..8u8 {
                let tree_level = 8 * level + height;
                let per_tile = 256u64 >> height;
                for node in (0..per_tile).map(|i| index * per_tile + i) {
                    let span = TileSpan::of_node(tree_level, node).expect("in range");
                    let Some(run) = span.run() else {
                        // Only the stratum's levels lack a run.
                        check(
                            (tree_level, node, height >= STRATUM_HEIGHT),
                            (tree_level, node, true),
                        );
                        continue;
                    };
                    check(
                        (tree_level, node, height < STRATUM_HEIGHT),
                        (tree_level, node, true),
                    );
                    check(
                        (tree_level, node, runs[usize::from(run)].get(&span)),
                        (tree_level, node, f.mem.node(tree_level, node).ok()),
                    );
                    // Another run does not answer for it.
                    check(runs[usize::from((run + 1) % 16)].get(&span), None);
                }
            }
            // Every wrong copy of a run fails its check: another run, one flipped bit, a
            // zeroed, short or long one, a stratum that is not whole, a run past it.
            let run = run_bytes(0);
            let fails = |stratum: &[u8], index: u16, bytes: &[u8]| {
                check(RunNodes::checked(stratum, index, bytes).is_none(), true);
            };
            fails(&stratum, 0, run_bytes(1));
            fails(&stratum, 1, run);
            let mut flipped = run.to_vec();
            flipped[100] ^= 1;
            fails(&stratum, 0, &flipped);
            fails(&stratum, 0, &[0; RUN_BYTES]);
            fails(&stratum, 0, &run[..RUN_BYTES - 32]);
            fails(&stratum, 0, &[run, &[0; 32]].concat());
            fails(&stratum[..32 * 15], 0, run);
            fails(&stratum, 16, run);
        }
    }

    proptest! {
        #![proptest_config(config(256))]

        /// Whatever the row's width and the order of the questions, a `RowNodes` answers as
        /// `TileSpan::root` does on the same bytes.
        #[test]
        fn row_nodes_match_tile_span_roots(
            width in 0usize..=256,
            seed in any::<u8>(),
            asks in proptest::collection::vec((0u8..8, 0u64..256), 1..64),
        ) {
            let bytes: Vec<u8> = (0..width * 32)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect();
            let mut nodes = RowNodes::new(&bytes);
            let mut filled = RowNodes::new(bytes.get(..width / 2 * 32).unwrap_or_default());
            filled.fill();
            let mut filled = filled.grown(RowNodes::new(&bytes));
            filled.fill();
            for (height, pos) in asks {
                let index = pos >> height;
                let span = TileSpan::of_node(height, index).expect("in range");
                prop_assert_eq!(nodes.root(&span), span.root(&bytes));
                prop_assert_eq!(filled.get(&span), span.root(&bytes));
            }
        }
    }

    /// A tile source returning fixed bytes, to exercise malformed stores.
    #[derive(Debug)]
    struct FixedTile(Vec<u8>);

    impl TileSource for FixedTile {
        type Error = std::convert::Infallible;

        fn tile(&self, _: u8, _: u64, _: u16) -> Result<Vec<u8>, Self::Error> {
            Ok(self.0.clone())
        }
    }

    #[test]
    fn tile_nodes_report_bad_tiles() {
        let f = fixture();
        let nodes = TileNodes(&f.tiles);
        // Every node of a complete subtree matches MemNodes, at every level.
        for level in 0..=16u8 {
            for index in [0, 1, (FIXTURE_SIZE >> level).saturating_sub(1)] {
                if (index + 1) << level <= FIXTURE_SIZE {
                    check(
                        (level, index, nodes.node(level, index).ok()),
                        (level, index, f.mem.node(level, index).ok()),
                    );
                }
            }
        }
        check(
            nodes.node(0, FIXTURE_SIZE),
            Err(TileNodesError::Source(MissingTile {
                level: 0,
                index: 256,
                width: 1,
                min_width: 2,
            })),
        );
        check(
            nodes.node(8, 300),
            Err(TileNodesError::Source(MissingTile {
                level: 1,
                index: 1,
                width: 0,
                min_width: 45,
            })),
        );
        check(
            nodes.node(7, u64::MAX),
            Err(TileNodesError::NodeOutOfRange {
                level: 7,
                index: u64::MAX,
            }),
        );
        check(
            TileNodes(&FixedTile(vec![0; 33])).node(0, 0),
            Err(TileNodesError::MisalignedTile {
                level: 0,
                index: 0,
                len: 33,
            }),
        );
        check(
            TileNodes(&FixedTile(vec![0; 64])).node(3, 1),
            Err(TileNodesError::ShortTile {
                level: 0,
                index: 0,
                width: 2,
                needed: 16,
            }),
        );
        check(
            TileNodes(&FixedTile(vec![0; 64])).node(1, 0),
            Ok(node_hash(&Hash::default(), &Hash::default())),
        );
        check(
            TreeEdge::load(3, &FixedTile(vec![0; 64])),
            Err(TileNodesError::ShortTile {
                level: 0,
                index: 0,
                width: 2,
                needed: 3,
            }),
        );
        check(
            TreeEdge::load(MAX_TREE_SIZE + 1, &f.tiles),
            Err(TileNodesError::TreeTooLarge {
                size: MAX_TREE_SIZE + 1,
            }),
        );
        check(TreeEdge::load(0, &f.tiles), Ok(TreeEdge::empty()));
        check(TreeEdge::load(FIXTURE_SIZE, &f.tiles).as_ref(), Ok(&f.edge));
        check(TreeEdge::load(FIXTURE_SIZE + 1, &f.tiles).is_err(), true);
    }

    proptest! {
        #![proptest_config(config(64))]

        #[test]
        fn tile_nodes_never_panic(level in any::<u8>(), index in any::<u64>(), len in 0usize..9000) {
            let _ = TileNodes(&FixedTile(vec![7; len])).node(level, index);
            let _ = TreeEdge::load(index, &FixedTile(vec![7; len]));
        }
    }
}
