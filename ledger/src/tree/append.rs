//! The append path: [`plan_append`] turns a [`TreeEdge`] (the right edge of the tree, O(log n)
//! memory) and a batch of leaf hashes into the new edge plus every tile that changed, for the
//! store to write in one batch; [`TreeEdge::load`] rebuilds the edge from the partial tiles.

use super::tiles::{MAX_TREE_SIZE, TileNodesError, TileSource, read_tile, row_len, row_root};
use crate::hash::{EMPTY_ROOT, HASH_SIZE, Hash, node_hash};
use crate::{TILE_HEIGHT, TILE_WIDTH};

/// Number of tile levels a `u64`-sized tree can have: tile level `L` holds tree level `8 * L`,
/// and tree levels stop at 63.
const TILE_LEVELS: u8 = 64 / TILE_HEIGHT;

/// The right edge of the tree: everything an append needs, in O(log n) memory.
///
/// It holds the size, the frontier (roots of the perfect subtrees making up the tree, left to
/// right, one per set bit of the size, largest first) and, for each tile level the tree
/// reaches, the hashes of its rightmost partial tile row (fewer than 256; empty when the row
/// ends on a tile boundary).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEdge {
    size: u64,
    frontier: Vec<Hash>,
    /// `rows[L]`: the partial row of tile level `L`; one entry per `L` with
    /// `row_len(size, L) > 0`.
    rows: Vec<Vec<Hash>>,
}

impl Default for TreeEdge {
    fn default() -> Self {
        TreeEdge::empty()
    }
}

impl TreeEdge {
    /// The edge of the empty tree.
    pub fn empty() -> TreeEdge {
        TreeEdge {
            size: 0,
            frontier: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The tree root, folded from the frontier; [`EMPTY_ROOT`] when the tree is empty.
    pub fn root(&self) -> Hash {
        let mut nodes = self.frontier.iter().rev();
        let Some(last) = nodes.next() else {
            return EMPTY_ROOT;
        };
        nodes.fold(*last, |acc, left| node_hash(left, &acc))
    }

    /// The partial tiles a tree of `size` has, as (tile level, tile index, width), lowest
    /// level first: the tiles [`TreeEdge::load`] reads.
    pub fn partial_tiles(size: u64) -> Vec<(u8, u64, u16)> {
        (0..TILE_LEVELS)
            .map(|level| (level, row_len(size, level)))
            .take_while(|&(_, count)| count > 0)
            .filter(|&(_, count)| !count.is_multiple_of(TILE_WIDTH))
            .map(|(level, count)| {
                // Below 256, so the cast is exact.
                (level, count / TILE_WIDTH, (count % TILE_WIDTH) as u16)
            })
            .collect()
    }

    /// The partial tiles of [`TreeEdge::partial_tiles`] with their contents, lowest level
    /// first: what a reader of the right edge needs, without reading the tiles again.
    pub fn partial_rows(&self) -> Vec<TileWrite> {
        TreeEdge::partial_tiles(self.size)
            .into_iter()
            .filter_map(|(level, index, _)| {
                let hashes = self.rows.get(usize::from(level))?.clone();
                Some(TileWrite {
                    level,
                    index,
                    hashes,
                })
            })
            .collect()
    }

    /// Rebuilds the edge of a stored tree of `size` from its tiles, without replaying leaves:
    /// reads each partial tile of [`TreeEdge::partial_tiles`] once and derives the frontier
    /// from those rows.
    ///
    /// # Errors
    /// [`TileNodesError::TreeTooLarge`] when `size > MAX_TREE_SIZE`; otherwise the errors of
    /// reading a tile: the source failed, or returned a short or misaligned tile.
    pub fn load<T: TileSource + ?Sized>(
        size: u64,
        tiles: &T,
    ) -> Result<TreeEdge, TileNodesError<T::Error>> {
        if size > MAX_TREE_SIZE {
            return Err(TileNodesError::TreeTooLarge { size });
        }
        let mut rows: Vec<Vec<Hash>> = (0..TILE_LEVELS)
            .take_while(|&level| row_len(size, level) > 0)
            .map(|_| Vec::new())
            .collect();
        for (level, index, width) in TreeEdge::partial_tiles(size) {
            if let Some(row) = rows.get_mut(usize::from(level)) {
                *row = read_tile(tiles, level, index, width)?;
            }
        }
        // Frontier node at height h is node (h, (size >> h) - 1). Its 2^(h % 8) row entries
        // lie in the partial row of tile level h / 8: bit h is set, so that row holds at
        // least them.
        let mut frontier = Vec::with_capacity(size.count_ones() as usize);
        for height in (0..64u8).rev() {
            if (size >> height) & 1 == 0 {
                continue;
            }
            let level = height / TILE_HEIGHT;
            let count = 1u64 << (height % TILE_HEIGHT);
            let row_start = row_len(size, level) / TILE_WIDTH * TILE_WIDTH;
            let first = ((size >> height) - 1) * count - row_start;
            let row = rows.get(usize::from(level)).map_or(&[][..], Vec::as_slice);
            let entries = row.get(first as usize..(first + count) as usize).ok_or(
                TileNodesError::ShortTile {
                    level,
                    index: row_len(size, level) / TILE_WIDTH,
                    width: row.len() as u64,
                    needed: (first + count) as u16,
                },
            )?;
            frontier.push(row_root(entries));
        }
        Ok(TreeEdge {
            size,
            frontier,
            rows,
        })
    }

    /// Appends `hash` to the row of `tile_level` in a tree that now has `new_size` leaves,
    /// emitting the tile if that completes it.
    fn push_row(
        &mut self,
        tile_level: u8,
        hash: Hash,
        new_size: u64,
        tiles: &mut Vec<TileWrite>,
        dirty: &mut [bool],
    ) {
        let l = usize::from(tile_level);
        if self.rows.len() <= l {
            self.rows.resize_with(l + 1, Vec::new);
        }
        let Some(row) = self.rows.get_mut(l) else {
            return;
        };
        if row.capacity() == 0 {
            row.reserve_exact(TILE_WIDTH as usize);
        }
        row.push(hash);
        if let Some(d) = dirty.get_mut(l) {
            *d = true;
        }
        if row.len() as u64 == TILE_WIDTH {
            tiles.push(TileWrite {
                level: tile_level,
                index: row_len(new_size, tile_level) / TILE_WIDTH - 1,
                hashes: std::mem::take(row),
            });
        }
    }
}

/// The full new contents of one hash tile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TileWrite {
    /// Tile level.
    pub level: u8,
    /// Tile index.
    pub index: u64,
    /// The tile's hashes: 1 to 256 of them; fewer than 256 makes it a partial tile.
    pub hashes: Vec<Hash>,
}

impl TileWrite {
    /// Number of hashes in the tile.
    pub fn width(&self) -> u16 {
        // At most 256 by construction; saturate rather than wrap if a caller built more.
        u16::try_from(self.hashes.len()).unwrap_or(u16::MAX)
    }

    /// The tile's bytes as C2SP tlog-tiles serves them: the hashes, concatenated.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.hashes.len() * HASH_SIZE);
        for h in &self.hashes {
            out.extend_from_slice(h.as_bytes());
        }
        out
    }
}

/// The result of [`plan_append`]: what the store writes in one batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendPlan {
    /// The edge after the append.
    pub edge: TreeEdge,
    /// Every tile whose contents changed, each exactly once, with its full new contents.
    /// Tiles completed by this append come first, in completion order; then the partial
    /// tiles, lowest level first.
    pub tiles: Vec<TileWrite>,
}

/// Plans appending `leaves` (leaf hashes) to the tree whose right edge is `edge`.
///
/// Hashes once per new node (fewer than two hashes per leaf), touches each changed tile once
/// and allocates only its outputs. The new edge has size `edge.size() + leaves.len()`: an edge
/// starts with at most [`MAX_TREE_SIZE`] leaves, so reaching `u64::MAX` would take 2^63 appended
/// leaves; were it ever reached, appending would stop there rather than overflow.
pub fn plan_append(edge: &TreeEdge, leaves: &[Hash]) -> AppendPlan {
    let mut edge = edge.clone();
    let mut tiles = Vec::new();
    let mut dirty = [false; TILE_LEVELS as usize + 1];
    for leaf in leaves {
        let Some(new_size) = edge.size.checked_add(1) else {
            break;
        };
        edge.push_row(0, *leaf, new_size, &mut tiles, &mut dirty);
        // Merge equal-height frontier nodes: one per trailing set bit of the old size.
        let mut node = *leaf;
        let mut height: u8 = 0;
        while height < 64 && (edge.size >> height) & 1 == 1 {
            let Some(left) = edge.frontier.pop() else {
                break;
            };
            node = node_hash(&left, &node);
            height += 1;
            if height.is_multiple_of(TILE_HEIGHT) {
                edge.push_row(height / TILE_HEIGHT, node, new_size, &mut tiles, &mut dirty);
            }
        }
        edge.frontier.push(node);
        edge.size = new_size;
    }
    for (level, (row, changed)) in (0..).zip(edge.rows.iter().zip(dirty)) {
        if changed && !row.is_empty() {
            tiles.push(TileWrite {
                level,
                index: row_len(edge.size, level) / TILE_WIDTH,
                hashes: row.clone(),
            });
        }
    }
    AppendPlan { edge, tiles }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;
    use crate::tree::fixture::{
        FIXTURE_SIZE, check, config, fixture, leaf, mem_root, parse_vector, read_vector,
        vector_roots,
    };
    use crate::tree::{MemTiles, TileNodes, root};

    #[derive(Deserialize)]
    struct TilesFile {
        tree_layouts: Vec<Layout>,
    }

    #[derive(Deserialize)]
    struct Layout {
        size: u64,
        levels: Vec<LayoutLevel>,
    }

    #[derive(Deserialize)]
    struct LayoutLevel {
        level: u8,
        full_tiles: u64,
        partial_width: u16,
        partial_path: Option<String>,
    }

    /// The C2SP tlog-tiles path of a hash tile (test-only; `tile.rs` owns the real one).
    fn tile_path(level: u8, index: u64, width: u16) -> String {
        let mut groups = vec![];
        let mut n = index;
        loop {
            groups.push(n % 1000);
            n /= 1000;
            if n == 0 {
                break;
            }
        }
        let last = groups.len() - 1;
        let parts: Vec<String> = groups
            .iter()
            .rev()
            .enumerate()
            .map(|(i, g)| {
                if i < last {
                    format!("x{g:03}")
                } else {
                    format!("{g:03}")
                }
            })
            .collect();
        let mut path = format!("tile/{level}/{}", parts.join("/"));
        if u64::from(width) < TILE_WIDTH {
            path.push_str(&format!(".p/{width}"));
        }
        path
    }

    /// (level, index, width) of every tile held.
    fn tile_set(tiles: &MemTiles) -> BTreeSet<(u8, u64, usize)> {
        tiles.iter().map(|(l, i, h)| (l, i, h.len())).collect()
    }

    #[test]
    fn roots_match_vectors_via_plan_append_and_tile_nodes() {
        let f = fixture();
        let roots = vector_roots();
        // One leaf per plan, checking every vector size on the way.
        let mut edge = TreeEdge::empty();
        let mut tiles = MemTiles::new();
        let mut want = roots.iter().peekable();
        for (i, leaf) in f.leaves.iter().enumerate() {
            while let Some(&&(size, root_at)) = want.peek() {
                if size != i as u64 {
                    break;
                }
                check((size, edge.root()), (size, root_at));
                let from_tiles = root(size, &TileNodes(&tiles)).expect("tiles hold the tree");
                check((size, from_tiles), (size, root_at));
                check(TreeEdge::load(size, &tiles).as_ref(), Ok(&edge));
                want.next();
            }
            let plan = plan_append(&edge, std::slice::from_ref(leaf));
            tiles.apply(&plan);
            edge = plan.edge;
        }
        check(want.next().map(|r| r.0), Some(FIXTURE_SIZE));
        check(edge.root(), roots.last().map_or(EMPTY_ROOT, |r| r.1));
        check(&edge, &f.edge);
        check(&tiles, &f.tiles);

        // Chunked: one plan per gap between vector sizes (1, 1, ..., 700, 3097, 61440).
        let mut edge = TreeEdge::empty();
        let mut tiles = MemTiles::new();
        for &(size, want) in &roots {
            let from = edge.size() as usize;
            let plan = plan_append(&edge, f.leaves.get(from..size as usize).unwrap_or(&[]));
            tiles.apply(&plan);
            edge = plan.edge;
            check((edge.size(), edge.root()), (size, want));
            let from_tiles = root(size, &TileNodes(&tiles)).expect("tiles hold the tree");
            check((size, from_tiles), (size, want));
        }
        check(&tiles, &f.tiles);
        // Every earlier root is still readable from the grown store.
        for &(size, want) in &roots {
            check(root(size, &TileNodes(&tiles)).ok(), Some(want));
        }
    }

    #[test]
    fn tile_layouts_match_vectors() {
        let f = fixture();
        let file: TilesFile = parse_vector("tiles.json");
        let mut edge = TreeEdge::empty();
        let mut tiles = MemTiles::new();
        let mut appended_layouts = 0;
        for layout in &file.tree_layouts {
            let mut want_tiles = BTreeSet::new();
            let mut want_partials = vec![];
            for l in &layout.levels {
                want_tiles.extend((0..l.full_tiles).map(|i| (l.level, i, 256)));
                check(l.full_tiles, row_len(layout.size, l.level) / TILE_WIDTH);
                if l.partial_width > 0 {
                    let path = tile_path(l.level, l.full_tiles, l.partial_width);
                    check(l.partial_path.as_deref(), Some(path.as_str()));
                    want_tiles.insert((l.level, l.full_tiles, usize::from(l.partial_width)));
                    want_partials.push((l.level, l.full_tiles, l.partial_width));
                } else {
                    check(l.partial_path.as_deref(), None);
                }
            }
            check(TreeEdge::partial_tiles(layout.size), want_partials.clone());
            // The vectors' largest tree (16M leaves) is too slow to build here; its layout
            // is checked through `partial_tiles` and the tile counts above.
            if layout.size > 70_000 {
                continue;
            }
            let (from, to) = (edge.size(), layout.size);
            let leaves: Vec<Hash> = (from..to)
                .map(|i| f.leaves.get(i as usize).copied().unwrap_or_else(|| leaf(i)))
                .collect();
            let plan = plan_append(&edge, &leaves);
            tiles.apply(&plan);
            edge = plan.edge;
            check((layout.size, tile_set(&tiles)), (layout.size, want_tiles));
            // The edge's partial rows are the partial tiles as stored.
            let rows = edge.partial_rows();
            check(
                rows.iter()
                    .map(|r| (r.level, r.index, r.width()))
                    .collect::<Vec<_>>(),
                want_partials,
            );
            for r in &rows {
                check(Some(r.hashes.as_slice()), tiles.get(r.level, r.index));
            }
            appended_layouts += 1;
        }
        check(appended_layouts, 8);
    }

    #[test]
    fn log_300_tiles_are_reproduced_byte_for_byte() {
        let leaves: Vec<Hash> = (0..300).map(leaf).collect();
        let plan = plan_append(&TreeEdge::empty(), &leaves);
        let written: Vec<(u8, u64, u16)> = plan
            .tiles
            .iter()
            .map(|t| (t.level, t.index, t.width()))
            .collect();
        check(written, vec![(0, 0, 256), (0, 1, 44), (1, 0, 1)]);
        for (t, file) in plan
            .tiles
            .iter()
            .zip(["tile/0/000", "tile/0/001.p/44", "tile/1/000.p/1"])
        {
            check(
                (file, t.to_bytes()),
                (file, read_vector(&format!("log-300/{file}"))),
            );
        }
        let mut tiles = MemTiles::new();
        tiles.apply(&plan);
        check(
            tiles.tile(0, 1, 44),
            Ok(read_vector("log-300/tile/0/001.p/44")),
        );
        check(plan.edge.root(), mem_root(300));
        let checkpoint = String::from_utf8(read_vector("log-300/checkpoint")).expect("utf-8");
        let root_line = plan.edge.root().to_base64();
        assert!(
            checkpoint.lines().any(|l| l == root_line),
            "root not in checkpoint"
        );
    }

    #[test]
    fn partial_tiles_follow_the_size() {
        check(TreeEdge::partial_tiles(0), vec![]);
        check(TreeEdge::partial_tiles(1), vec![(0, 0, 1)]);
        check(TreeEdge::partial_tiles(256), vec![(1, 0, 1)]);
        check(TreeEdge::partial_tiles(300), vec![(0, 1, 44), (1, 0, 1)]);
        check(TreeEdge::partial_tiles(1 << 16), vec![(2, 0, 1)]);
        check(TreeEdge::partial_tiles(u64::MAX).len(), 8);
        check(
            TreeEdge::partial_tiles(u64::MAX).last().copied(),
            Some((7, 0, 255)),
        );
    }

    #[test]
    fn empty_append_changes_nothing() {
        let f = fixture();
        check(
            plan_append(&f.edge, &[]),
            AppendPlan {
                edge: f.edge.clone(),
                tiles: vec![],
            },
        );
        check(
            plan_append(&TreeEdge::empty(), &[]).edge,
            TreeEdge::default(),
        );
    }

    proptest! {
        #![proptest_config(config(64))]

        #[test]
        fn chunked_appends_match_one_by_one(
            start in 0usize..2000,
            chunks in proptest::collection::vec(0usize..700, 1..6),
        ) {
            let f = fixture();
            let mut edge = plan_append(&TreeEdge::empty(), f.leaves.get(..start).unwrap_or(&[])).edge;
            let mut tiles = MemTiles::new();
            tiles.apply(&plan_append(&TreeEdge::empty(), f.leaves.get(..start).unwrap_or(&[])));
            let mut edges = vec![edge.clone()];
            for len in chunks {
                let from = edge.size() as usize;
                let batch = f.leaves.get(from..from + len).unwrap_or(&[]);
                let before = tiles.clone();
                let plan = plan_append(&edge, batch);
                // Each changed tile is written once, with 1..=256 hashes, and really changed.
                let written: BTreeSet<(u8, u64)> = plan.tiles.iter().map(|t| (t.level, t.index)).collect();
                prop_assert_eq!(written.len(), plan.tiles.len());
                for t in &plan.tiles {
                    prop_assert!((1..=256).contains(&t.hashes.len()));
                    prop_assert_ne!(before.get(t.level, t.index), Some(t.hashes.as_slice()));
                }
                tiles.apply(&plan);
                edge = plan.edge;
                prop_assert_eq!(edge.size(), (from + len) as u64);
                prop_assert_eq!(edge.root(), mem_root(edge.size()));
                prop_assert_eq!(TreeEdge::load(edge.size(), &tiles).ok(), Some(edge.clone()));
                edges.push(edge.clone());
            }
            // One leaf at a time reaches the same edge and tiles.
            let mut one = TreeEdge::empty();
            let mut one_tiles = MemTiles::new();
            for leaf in f.leaves.get(..edge.size() as usize).unwrap_or(&[]) {
                let plan = plan_append(&one, std::slice::from_ref(leaf));
                one_tiles.apply(&plan);
                one = plan.edge;
            }
            prop_assert_eq!(&one, &edge);
            prop_assert_eq!(&one_tiles, &tiles);
            // Every earlier edge loads from the grown store.
            for e in &edges {
                prop_assert_eq!(TreeEdge::load(e.size(), &tiles).ok(), Some(e.clone()));
            }
        }
    }
}
