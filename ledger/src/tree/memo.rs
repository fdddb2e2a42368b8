//! Remembering nodes: [`MemoNodes`] wraps any [`NodeSource`] and keeps what it computes in a
//! [`NodeMemo`] that callers may share; [`BoundedMemo`] is a bounded one threads can share.

use std::collections::BTreeMap;

use super::proof::NodeSource;
use crate::TILE_HEIGHT;
use crate::hash::Hash;

/// Where [`MemoNodes`] remembers the nodes it computed, keyed by (level, index).
///
/// Every node it is given is a complete subtree's hash, which never changes, so an
/// implementation may forget any entry at any time; it must never answer with a hash other
/// than the one given for that node. A memo serves one tree (one log).
pub trait NodeMemo {
    /// The remembered hash of node (level, index), if any.
    fn get(&self, level: u8, index: u64) -> Option<Hash>;

    /// Remembers the hash of node (level, index).
    fn insert(&self, level: u8, index: u64, hash: Hash);
}

impl<M: NodeMemo + ?Sized> NodeMemo for &M {
    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        (**self).get(level, index)
    }

    fn insert(&self, level: u8, index: u64, hash: Hash) {
        (**self).insert(level, index, hash);
    }
}

impl<M: NodeMemo + ?Sized> NodeMemo for std::sync::Arc<M> {
    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        (**self).get(level, index)
    }

    fn insert(&self, level: u8, index: u64, hash: Hash) {
        (**self).insert(level, index, hash);
    }
}

/// A bounded [`NodeMemo`] that threads can share: two generations of at most half the
/// capacity each; when the newer one fills, the older is dropped whole (an approximate LRU
/// without per-hit bookkeeping).
///
/// Ordered maps, not hash maps: lookups cost no more than a few hundred nanoseconds at
/// 10^5 nodes, and nothing here needs a random hash seed.
#[derive(Debug)]
pub struct BoundedMemo {
    generations: std::sync::Mutex<Generations>,
    /// Nodes per generation.
    half: usize,
}

#[derive(Debug, Default)]
struct Generations {
    young: BTreeMap<(u8, u64), Hash>,
    old: BTreeMap<(u8, u64), Hash>,
}

impl BoundedMemo {
    /// An empty memo holding at most `capacity` nodes (at least 2).
    pub fn new(capacity: usize) -> BoundedMemo {
        BoundedMemo {
            generations: std::sync::Mutex::new(Generations::default()),
            half: (capacity / 2).max(1),
        }
    }

    /// The most nodes it holds.
    pub fn capacity(&self) -> usize {
        self.half * 2
    }

    /// Number of nodes held.
    pub fn len(&self) -> usize {
        let g = self.lock();
        g.young.len() + g.old.len()
    }

    /// Whether no node is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every node (for a caller that reloads its tree).
    pub fn clear(&self) {
        let mut g = self.lock();
        g.young.clear();
        g.old.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // The maps hold no invariant a panicking holder could break half-way.
        self.generations
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl NodeMemo for BoundedMemo {
    fn get(&self, level: u8, index: u64) -> Option<Hash> {
        let g = self.lock();
        g.young
            .get(&(level, index))
            .or_else(|| g.old.get(&(level, index)))
            .copied()
    }

    fn insert(&self, level: u8, index: u64, hash: Hash) {
        let mut g = self.lock();
        if g.young.len() >= self.half {
            g.old = std::mem::take(&mut g.young);
        }
        g.old.remove(&(level, index));
        g.young.insert((level, index), hash);
    }
}

/// A [`NodeSource`] that remembers the nodes another source computes, in a [`NodeMemo`] that
/// callers may share (pass `&memo` or an `Arc`).
///
/// It answers exactly as its source: hits come from the memo, misses from the source, and
/// errors are passed on and not remembered.
#[derive(Clone, Debug)]
pub struct MemoNodes<S, M> {
    source: S,
    memo: M,
    min_tile_height: u8,
}

impl<S, M> MemoNodes<S, M> {
    /// Remembers every node `source` gives.
    pub fn new(source: S, memo: M) -> MemoNodes<S, M> {
        MemoNodes {
            source,
            memo,
            min_tile_height: 0,
        }
    }

    /// Remembers only nodes at least `height` levels above their tile row (`level % 8 >=
    /// height`). Read from tiles, a node costs `2^(level % 8) - 1` hashes: below some height
    /// that is less than the memo's bookkeeping.
    #[must_use]
    pub fn min_tile_height(self, height: u8) -> MemoNodes<S, M> {
        MemoNodes {
            min_tile_height: height,
            ..self
        }
    }

    /// The wrapped source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The memo.
    pub fn memo(&self) -> &M {
        &self.memo
    }
}

impl<S: NodeSource, M: NodeMemo> NodeSource for MemoNodes<S, M> {
    type Error = S::Error;

    fn node(&self, level: u8, index: u64) -> Result<Hash, S::Error> {
        if level % TILE_HEIGHT < self.min_tile_height {
            return self.source.node(level, index);
        }
        if let Some(hash) = self.memo.get(level, index) {
            return Ok(hash);
        }
        let hash = self.source.node(level, index)?;
        self.memo.insert(level, index, hash);
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::tree::fixture::{FIXTURE_SIZE, check, config, fixture, leaf};
    use crate::tree::{MemNodes, MissingNode, TileNodes, prove_consistency, prove_inclusion, root};

    /// A node source that counts its reads.
    #[derive(Debug)]
    struct Counting<'a> {
        nodes: &'a MemNodes,
        reads: std::sync::atomic::AtomicUsize,
    }

    impl<'a> Counting<'a> {
        fn new(nodes: &'a MemNodes) -> Counting<'a> {
            Counting {
                nodes,
                reads: std::sync::atomic::AtomicUsize::new(0),
            }
        }

        fn reads(&self) -> usize {
            self.reads.load(std::sync::atomic::Ordering::Relaxed)
        }
    }

    impl NodeSource for Counting<'_> {
        type Error = MissingNode;

        fn node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            self.nodes.node(level, index)
        }
    }

    #[test]
    fn memo_nodes_remember_what_their_source_gave() {
        let f = fixture();
        let source = Counting::new(&f.mem);
        let memo = BoundedMemo::new(64);
        let nodes = MemoNodes::new(&source, &memo);
        check(nodes.node(3, 5), f.mem.node(3, 5));
        check(nodes.node(3, 5), f.mem.node(3, 5));
        check((source.reads(), memo.len()), (1, 1));
        // Errors are passed on, and not remembered.
        let missing = nodes.node(20, 0);
        check(missing, f.mem.node(20, 0));
        check(missing.is_err(), true);
        check(nodes.node(20, 0), missing);
        check((source.reads(), memo.len()), (3, 1));
        // Below the minimum height within a tile, every read goes to the source.
        let tall = MemoNodes::new(&source, &memo).min_tile_height(4);
        check(tall.node(3, 6), f.mem.node(3, 6));
        check(tall.node(3, 6), f.mem.node(3, 6));
        check(tall.node(12, 1), f.mem.node(12, 1));
        check(tall.node(12, 1), f.mem.node(12, 1));
        check((source.reads(), memo.len()), (6, 2));
        // A second wrapper over the same memo shares its nodes.
        let other = MemoNodes::new(&f.mem, std::sync::Arc::new(BoundedMemo::new(4)));
        check(other.node(3, 5), f.mem.node(3, 5));
        check(MemoNodes::new(&f.mem, &memo).node(12, 1), f.mem.node(12, 1));
        check(source.reads(), 6);
        memo.clear();
        check((memo.len(), memo.is_empty()), (0, true));
    }

    #[test]
    fn bounded_memo_keeps_its_capacity_and_the_newest_nodes() {
        check(BoundedMemo::new(0).capacity(), 2);
        check(BoundedMemo::new(7).capacity(), 6);
        let memo = BoundedMemo::new(8);
        for i in 0..100u64 {
            memo.insert(0, i, leaf(i));
            assert!(memo.len() <= 8, "{} nodes after {i}", memo.len());
            // The node just inserted and the one before it are always held.
            check(memo.get(0, i), Some(leaf(i)));
            check(
                memo.get(0, i.saturating_sub(1)),
                Some(leaf(i.saturating_sub(1))),
            );
        }
        check(memo.get(0, 0), None);
        // Re-inserting an old node moves it to the newer generation, without a copy.
        memo.insert(0, 96, leaf(96));
        check(memo.get(0, 96), Some(leaf(96)));
        assert!(memo.len() <= 8);
    }

    proptest! {
        #![proptest_config(config(64))]

        #[test]
        fn memo_nodes_answer_as_their_source(
            capacity in 0usize..40,
            min_height in 0u8..9,
            queries in proptest::collection::vec((0u64..3000, 0u64..3000), 1..24),
        ) {
            let f = fixture();
            let tiles = TileNodes(&f.tiles);
            let memo = BoundedMemo::new(capacity);
            let nodes = MemoNodes::new(tiles, &memo).min_tile_height(min_height);
            for (a, b) in queries {
                let (first, second) = (a.min(b), a.max(b));
                prop_assert_eq!(prove_consistency(first, second, &nodes), prove_consistency(first, second, &tiles));
                if second > 0 {
                    let index = a % second;
                    prop_assert_eq!(prove_inclusion(index, second, &nodes), prove_inclusion(index, second, &tiles));
                }
                prop_assert_eq!(root(second, &nodes), root(second, &tiles));
                // Nodes beyond the tree fail alike.
                prop_assert_eq!(nodes.node(0, FIXTURE_SIZE + a), tiles.node(0, FIXTURE_SIZE + a));
                prop_assert!(memo.len() <= memo.capacity());
                prop_assert!(memo.capacity() <= capacity.max(2));
            }
        }
    }
}
