//! Roots and proofs over a [`NodeSource`]: RFC 6962 `MTH`, `PATH` (§2.1.1) and `PROOF`
//! (§2.1.2), i.e. RFC 9162 §2.1.3.1 and §2.1.4.1, reading O(log n) complete subtree hashes.

use crate::hash::{EMPTY_ROOT, Hash, node_hash};

/// A source of complete subtree hashes ("nodes").
///
/// Node (level, index) is the RFC 6962 hash of the perfect subtree over leaves
/// `[index << level, (index + 1) << level)`; level 0 holds the leaf hashes.
pub trait NodeSource {
    /// Why a node could not be read.
    type Error;

    /// Hash of the complete subtree at (level, index).
    ///
    /// The functions of this module only call it for subtrees that are complete within the
    /// tree size being proven.
    ///
    /// # Errors
    /// Implementation-defined: the node is missing or could not be read.
    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

impl<S: NodeSource + ?Sized> NodeSource for &S {
    type Error = S::Error;

    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        (**self).node(level, index)
    }
}

/// Error building a root or a proof from a [`NodeSource`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError<E> {
    /// The leaf index is not in the tree.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The requested leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// A consistency proof was requested from a larger tree to a smaller one.
    #[error("tree size {first} is larger than tree size {second}")]
    SizesOutOfOrder {
        /// The older tree size.
        first: u64,
        /// The newer tree size.
        second: u64,
    },
    /// The node source failed.
    #[error(transparent)]
    Source(E),
}

/// Hash of the leaves `[lo, hi)`, as RFC 6962 `MTH(D[lo:hi])` computes it when `lo` is a
/// multiple of a power of two that is at least `hi - lo` (true of every range the RFC's
/// recursion visits). [`EMPTY_ROOT`] when the range is empty.
///
/// The range splits into the perfect subtrees given by the binary digits of `hi - lo`, largest
/// on the left; they are folded right to left, so at most 64 nodes are read.
fn subtree_hash<S: NodeSource + ?Sized>(
    lo: u64,
    hi: u64,
    src: &S,
) -> Result<Hash, ProofError<S::Error>> {
    // The set bits of `n`, lowest first: a range of a proof is most often
    // one perfect subtree, so this reads one node without testing 64 bits.
    let mut bits = hi.saturating_sub(lo);
    let mut end = hi;
    let mut acc: Option<Hash> = None;
    while bits != 0 {
        let level = bits.trailing_zeros();
        bits &= bits - 1;
        let start = end - (1u64 << level);
        // `level` < 64, so it fits a u8.
        let h = src
            .node(level as u8, start >> level)
            .map_err(ProofError::Source)?;
        acc = Some(match acc {
            None => h,
            Some(right) => node_hash(&h, &right),
        });
        end = start;
    }
    Ok(acc.unwrap_or(EMPTY_ROOT))
}

/// The largest power of two strictly below `n`, the RFC 6962 split point `k`. Needs `n >= 2`.
fn split_point(n: u64) -> u64 {
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The RFC 6962 Merkle tree hash `MTH(D[0:size])`: [`EMPTY_ROOT`] for an empty tree.
///
/// Reads at most 64 nodes (one per set bit of `size`).
///
/// # Errors
/// [`ProofError::Source`] when the node source fails.
pub fn root<S: NodeSource + ?Sized>(size: u64, src: &S) -> Result<Hash, ProofError<S::Error>> {
    subtree_hash(0, size, src)
}

/// The RFC 6962 audit path `PATH(index, D[0:size])`, ordered from the leaf level upwards.
///
/// # Errors
/// [`ProofError::IndexOutOfRange`] when `index >= size`; [`ProofError::Source`] when the
/// node source fails.
pub fn prove_inclusion<S: NodeSource + ?Sized>(
    index: u64,
    size: u64,
    src: &S,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    InclusionProver::new(size, src).prove(index)
}

/// Audit paths of many leaves in one tree size.
///
/// Every audit path holds at most one incomplete subtree: the first right sibling on the way
/// down, a range `[lo, size)` on the tree's right edge, hashed from up to 63 nodes. There are
/// at most 64 such ranges for a size, and the paths of neighbouring leaves (the receipts of
/// an array of new entries, all near the right edge) share them: the prover hashes each once.
pub struct InclusionProver<'a, S: ?Sized> {
    src: Recent<'a, S>,
    size: u64,
    /// Roots of the right-edge ranges `[lo, size)` met so far, by `lo`.
    edge: Vec<(u64, Hash)>,
}

impl<S: ?Sized> std::fmt::Debug for InclusionProver<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InclusionProver")
            .field("size", &self.size)
            .field("edge", &self.edge.len())
            .finish_non_exhaustive()
    }
}

impl<'a, S: NodeSource + ?Sized> InclusionProver<'a, S> {
    /// A prover of inclusion in the tree of `size`, reading nodes from `src`.
    pub fn new(size: u64, src: &'a S) -> InclusionProver<'a, S> {
        InclusionProver {
            src: Recent::new(src),
            size,
            edge: Vec::new(),
        }
    }

    /// The audit path of `index`, as [`prove_inclusion`] gives it.
    ///
    /// # Errors
    /// [`ProofError::IndexOutOfRange`] when `index >= size`; [`ProofError::Source`] when the
    /// node source fails.
    pub fn prove(&mut self, index: u64) -> Result<Vec<Hash>, ProofError<S::Error>> {
        let size = self.size;
        if index >= size {
            return Err(ProofError::IndexOutOfRange { index, size });
        }
        // Walk down from the root; only the first right sibling can be an incomplete subtree.
        let (mut lo, mut hi) = (0, size);
        // Exactly the longest path of this tree (ceil(log2(size)) hashes):
        // 64 of them were 2 KiB, past the allocator's per-thread cache.
        let mut path = Vec::with_capacity((u64::BITS - (size - 1).leading_zeros()) as usize);
        while hi - lo > 1 {
            let k = split_point(hi - lo);
            if index < lo + k {
                path.push(self.right_sibling(lo + k, hi)?);
                hi = lo + k;
            } else {
                path.push(subtree_hash(lo, lo + k, &self.src)?);
                lo += k;
            }
        }
        path.reverse();
        Ok(path)
    }

    /// The root of `[lo, hi)`, remembered when it is an incomplete range of the right edge.
    fn right_sibling(&mut self, lo: u64, hi: u64) -> Result<Hash, ProofError<S::Error>> {
        if hi != self.size || (hi - lo).is_power_of_two() {
            return subtree_hash(lo, hi, &self.src);
        }
        if let Some((_, hash)) = self.edge.iter().find(|(l, _)| *l == lo) {
            return Ok(*hash);
        }
        let hash = subtree_hash(lo, hi, &self.src)?;
        self.edge.push((lo, hash));
        Ok(hash)
    }
}

/// A node source that remembers the last node it read at each level. The
/// audit paths of neighbouring leaves differ only near the leaves: leaf `i`'s
/// sibling at level `l` is node `(l, (i >> l) ^ 1)`, the same for leaves
/// `i` and `i + 1` at every level above the lowest bit in which they differ
/// (two levels on average). An array's receipts then read each upper node
/// once, where each read was a tile lookup.
struct Recent<'a, S: ?Sized> {
    src: &'a S,
    last: [std::cell::Cell<Option<(u64, Hash)>>; 64],
}

impl<'a, S: ?Sized> Recent<'a, S> {
    fn new(src: &'a S) -> Recent<'a, S> {
        Recent {
            src,
            last: std::array::from_fn(|_| std::cell::Cell::new(None)),
        }
    }
}

impl<S: NodeSource + ?Sized> NodeSource for Recent<'_, S> {
    type Error = S::Error;

    fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        let Some(last) = self.last.get(usize::from(level)) else {
            return self.src.node(level, index);
        };
        if let Some((i, hash)) = last.get()
            && i == index
        {
            return Ok(hash);
        }
        let hash = self.src.node(level, index)?;
        last.set(Some((index, hash)));
        Ok(hash)
    }
}

/// The RFC 6962 consistency proof `PROOF(first, D[0:second])`, in `SUBPROOF` order.
///
/// Empty when `first == 0` or `first == second`.
///
/// # Errors
/// [`ProofError::SizesOutOfOrder`] when `first > second`; [`ProofError::Source`] when the
/// node source fails.
pub fn prove_consistency<S: NodeSource + ?Sized>(
    first: u64,
    second: u64,
    src: &S,
) -> Result<Vec<Hash>, ProofError<S::Error>> {
    if first > second {
        return Err(ProofError::SizesOutOfOrder { first, second });
    }
    if first == 0 || first == second {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[lo:hi], b), unrolled: siblings are collected outermost first, then the
    // innermost node (when b is false), and reversed at the end.
    let (mut lo, mut hi, mut m, mut whole) = (0, second, first, true);
    let mut proof = Vec::with_capacity(65);
    loop {
        let n = hi - lo;
        if m == n {
            if !whole {
                proof.push(subtree_hash(lo, hi, src)?);
            }
            break;
        }
        let k = split_point(n);
        if m <= k {
            proof.push(subtree_hash(lo + k, hi, src)?);
            hi = lo + k;
        } else {
            proof.push(subtree_hash(lo, lo + k, src)?);
            lo += k;
            m -= k;
            whole = false;
        }
    }
    proof.reverse();
    Ok(proof)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::hash::leaf_hash;
    use crate::tree::fixture::{FIXTURE_SIZE, check, config, fixture, mem_root, vector_roots};
    use crate::tree::verify_inclusion;

    #[test]
    fn roots_match_vectors_via_mem_nodes() {
        let f = fixture();
        for (size, want) in vector_roots() {
            check((size, mem_root(size)), (size, want));
        }
        check(f.mem.size(), FIXTURE_SIZE);
        check(f.edge.root(), mem_root(FIXTURE_SIZE));
    }

    // -- rs_merkle as a second implementation -------------------------------------------

    /// RFC 6962 hashing for rs_merkle: it is given leaf hashes, and promotes an odd right
    /// node unchanged, which is what RFC 6962's unbalanced split does.
    #[derive(Clone)]
    struct Rfc6962;

    impl rs_merkle::Hasher for Rfc6962 {
        type Hash = [u8; 32];

        fn hash(data: &[u8]) -> [u8; 32] {
            leaf_hash(data).to_bytes()
        }

        fn concat_and_hash(left: &[u8; 32], right: Option<&[u8; 32]>) -> [u8; 32] {
            match right {
                Some(right) => {
                    node_hash(&Hash::from_bytes(*left), &Hash::from_bytes(*right)).to_bytes()
                }
                None => *left,
            }
        }
    }

    proptest! {
        #![proptest_config(config(48))]

        #[test]
        fn roots_and_inclusion_proofs_match_rs_merkle(size in 1u64..3000, seed in any::<u64>()) {
            let f = fixture();
            let leaves: Vec<[u8; 32]> =
                f.leaves.iter().take(size as usize).map(|h| h.to_bytes()).collect();
            let tree = rs_merkle::MerkleTree::<Rfc6962>::from_leaves(&leaves);
            prop_assert_eq!(tree.root().map(Hash::from_bytes), Some(mem_root(size)));
            for index in [seed % size, size - 1, 0] {
                let theirs: Vec<Hash> = tree
                    .proof(&[index as usize])
                    .proof_hashes()
                    .iter()
                    .map(|h| Hash::from_bytes(*h))
                    .collect();
                let ours = prove_inclusion(index, size, &f.mem);
                prop_assert_eq!(ours.as_ref(), Ok(&theirs));
                // One prover for several leaves gives the same paths, whatever the order.
                let mut prover = InclusionProver::new(size, &f.mem);
                for other in [size - 1, seed % size, index, 0, (seed / 7) % size] {
                    prop_assert_eq!(
                        prover.prove(other),
                        prove_inclusion(other, size, &f.mem)
                    );
                }
                prop_assert_eq!(
                    prover.prove(size),
                    Err(ProofError::IndexOutOfRange { index: size, size })
                );
                let leaf = f.leaves.get(index as usize).copied().unwrap_or_default();
                prop_assert_eq!(
                    verify_inclusion(&leaf, index, size, &theirs, &mem_root(size)),
                    Ok(())
                );
            }
        }
    }

    /// Counts the nodes read through it.
    struct Counting<'a, S>(&'a S, std::cell::Cell<usize>);

    impl<S: NodeSource> NodeSource for Counting<'_, S> {
        type Error = S::Error;

        fn node(&self, level: u8, index: u64) -> Result<Hash, S::Error> {
            self.1.set(self.1.get() + 1);
            self.0.node(level, index)
        }
    }

    #[test]
    fn one_prover_reads_the_shared_upper_nodes_of_neighbouring_paths_once() {
        let f = fixture();
        // An array's receipts: 500 new leaves at the right edge, and a run
        // in the middle of the tree.
        for (first, size) in [(FIXTURE_SIZE - 500, FIXTURE_SIZE), (1000, 40_000)] {
            let shared = Counting(&f.mem, std::cell::Cell::new(0));
            let alone = Counting(&f.mem, std::cell::Cell::new(0));
            let mut prover = InclusionProver::new(size, &shared);
            for index in first..size {
                let path = prover.prove(index).expect("in range");
                assert_eq!(Ok(path), prove_inclusion(index, size, &alone));
            }
            let (shared, alone) = (shared.1.get(), alone.1.get());
            // Alone, each path reads one node per level (16 here); shared,
            // about two per path.
            assert!(shared * 4 < alone, "{shared} reads shared, {alone} alone");
        }
    }
}
