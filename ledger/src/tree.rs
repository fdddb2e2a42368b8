//! The RFC 6962 / RFC 9162 Merkle tree: roots, inclusion and consistency proofs, and the
//! append path over C2SP tlog-tiles storage.
//!
//! **What it is.** Pure functions from values to values: no I/O, no clock.
//!
//! - Proofs are built over any [`NodeSource`]: a source of *complete* subtree hashes,
//!   addressed as (level, index) = the hash of leaves `[index << level, (index + 1) << level)`.
//!   Incomplete subtrees on the right edge are recomputed from complete ones, as Go's
//!   `golang.org/x/mod/sumdb/tlog` does, so every proof and root reads O(log n) nodes.
//!   Proofs are RFC 6962 §2.1.1 `PATH` and §2.1.2 `PROOF` (RFC 9162 §2.1.3.1, §2.1.4.1).
//! - Verification is exactly RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency),
//!   with the expected proof length checked first so a wrong-length proof is named as such.
//!   The loops are iterators, [`inclusion_steps`] and [`consistency_steps`], yielding each
//!   step (the element, the side it is hashed on, the running hashes after it);
//!   [`verify_inclusion`] and [`verify_consistency`] run them, and anything that shows the
//!   steps (the explorer's Proof Viewer) draws these rather than a loop of its own.
//! - Storage is C2SP tlog-tiles hash tiles of height 8: tile level `L` holds the row of tree
//!   level `8 * L`. A node is the [`row_root`] of a run of one row ([`TileSpan`] says which);
//!   [`TileNodes`] serves every node from those rows; [`plan_append`] turns a
//!   [`TreeEdge`] (the right edge of the tree, O(log n) memory) and a batch of leaf hashes
//!   into the new edge plus the full contents of every tile that changed, for the store to
//!   write in one batch. [`TreeEdge::load`] rebuilds the edge from the partial tiles alone.
//! - [`MemoNodes`] remembers the nodes any source computes in a [`NodeMemo`] that callers
//!   may share; [`BoundedMemo`] is a bounded one threads can share.
//!
//! **What it is not.** It stores nothing and knows no tile paths (see [`crate::tile`]).
//! [`MemNodes`] and [`MemTiles`] are in-memory implementations for tests and tools. The
//! memo's `Mutex` is its only shared state; nothing here reads a clock or the OS.
//!
//! **Known limits.** Tree sizes are `u64`; [`TreeEdge::load`] refuses sizes above
//! [`MAX_TREE_SIZE`] (2^63) so that appending can never overflow in practice.

use std::collections::BTreeMap;

use crate::hash::{EMPTY_ROOT, HASH_SIZE, Hash, node_hash};
use crate::{TILE_HEIGHT, TILE_WIDTH};

/// Number of tile levels a `u64`-sized tree can have: tile level `L` holds tree level `8 * L`,
/// and tree levels stop at 63.
const TILE_LEVELS: u8 = 64 / TILE_HEIGHT;

/// Largest tree size [`TreeEdge::load`] accepts. Appending to such a tree cannot overflow a
/// `u64` before 2^63 more leaves have been hashed.
pub const MAX_TREE_SIZE: u64 = 1 << 63;

// ---------------------------------------------------------------------------------------------
// Node addressing
// ---------------------------------------------------------------------------------------------

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
    let n = hi.saturating_sub(lo);
    let mut end = hi;
    let mut acc: Option<Hash> = None;
    for level in 0..64u8 {
        if (n >> level) & 1 == 1 {
            let start = end - (1u64 << level);
            let h = src
                .node(level, start >> level)
                .map_err(ProofError::Source)?;
            acc = Some(match acc {
                None => h,
                Some(right) => node_hash(&h, &right),
            });
            end = start;
        }
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
    if index >= size {
        return Err(ProofError::IndexOutOfRange { index, size });
    }
    // Walk down from the root; only the first right sibling can be an incomplete subtree.
    let (mut lo, mut hi) = (0, size);
    let mut path = Vec::with_capacity(64);
    while hi - lo > 1 {
        let k = split_point(hi - lo);
        if index < lo + k {
            path.push(subtree_hash(lo + k, hi, src)?);
            hi = lo + k;
        } else {
            path.push(subtree_hash(lo, lo + k, src)?);
            lo += k;
        }
    }
    path.reverse();
    Ok(path)
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

// ---------------------------------------------------------------------------------------------
// Verification (RFC 9162 §2.1.3.2, §2.1.4.2)
// ---------------------------------------------------------------------------------------------

/// Why a proof was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The leaf index is not in the tree (this includes every index of the empty tree).
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// The first tree is larger than the second.
    #[error("tree size {first} is larger than tree size {second}")]
    SizesOutOfOrder {
        /// The claimed older tree size.
        first: u64,
        /// The claimed newer tree size.
        second: u64,
    },
    /// The proof does not have the length the tree sizes (and index) determine.
    #[error("proof has {actual} hashes, {expected} expected")]
    WrongProofLength {
        /// The length the sizes determine.
        expected: usize,
        /// The length of the proof given.
        actual: usize,
    },
    /// The root rebuilt from the proof (for a consistency proof: the newer tree's root) is
    /// not the one given.
    #[error("root mismatch: expected {expected}, proof gives {computed}")]
    RootMismatch {
        /// The root the caller supplied.
        expected: Hash,
        /// The root the proof leads to.
        computed: Hash,
    },
    /// A consistency proof rebuilds an older tree root other than the one given.
    #[error("first root mismatch: expected {expected}, proof gives {computed}")]
    FirstRootMismatch {
        /// The older root the caller supplied.
        expected: Hash,
        /// The older root the proof leads to.
        computed: Hash,
    },
}

/// One step of the RFC 9162 verification loops (§2.1.3.2 step 4, §2.1.4.2 step 6) on the
/// node indexes `fn` and `sn`. Returns whether the proof element is a left sibling.
fn step(fnode: &mut u64, snode: &mut u64) -> bool {
    let left = *fnode & 1 == 1 || *fnode == *snode;
    if left && *fnode & 1 == 0 {
        while *fnode & 1 == 0 && *fnode != 0 {
            *fnode >>= 1;
            *snode >>= 1;
        }
    }
    *fnode >>= 1;
    *snode >>= 1;
    left
}

/// Number of steps the RFC 9162 loop takes from `(fn, sn)` until `sn` is 0.
fn steps_to_root(mut fnode: u64, mut snode: u64) -> usize {
    let mut n = 0;
    while snode != 0 {
        step(&mut fnode, &mut snode);
        n += 1;
    }
    n
}

/// Length of the audit path of leaf `index` in a tree of `size` (`index < size`).
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    steps_to_root(index, size - 1)
}

/// RFC 9162 §2.1.4.2 steps 3 and 4: `fn` and `sn` for `0 < first < second`, moved up past
/// the levels where `fn` is a right child.
fn consistency_start(first: u64, second: u64) -> (u64, u64) {
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    (fnode, snode)
}

/// Length of the consistency proof from `first` to `second` (`0 < first < second`).
fn consistency_proof_len(first: u64, second: u64) -> usize {
    let (fnode, snode) = consistency_start(first, second);
    // When `first` is a power of two the verifier supplies the seed itself.
    usize::from(!first.is_power_of_two()) + steps_to_root(fnode, snode)
}

/// Which side of the running hash a proof element is hashed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The element is the left sibling: the new hash is `H(element || running)`.
    Left,
    /// The element is the right sibling: the new hash is `H(running || element)`.
    Right,
}

/// One step of RFC 9162 §2.1.3.2 step 4: one audit path element hashed into `r`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InclusionStep {
    /// The proof element: the sibling of the node `r` held before this step.
    pub sibling: Hash,
    /// The side the sibling is on.
    pub side: Side,
    /// `r` after this step. After the last step it is the root the proof leads to.
    pub r: Hash,
}

/// The walk both RFC 9162 loops take over a proof: `fn` and `sn` move up the tree, one proof
/// element per step, each on the side [`step`] says. Made only after the proof's length was
/// checked against the walk.
#[derive(Clone, Debug)]
struct Walk<'a> {
    elements: std::slice::Iter<'a, Hash>,
    fnode: u64,
    snode: u64,
    /// The proof length the sizes (and index) determine, and the length given: equal.
    expected: usize,
    len: usize,
}

impl Walk<'_> {
    /// The next element and the side it is hashed on; `None` after the last.
    fn next(&mut self) -> Option<(Hash, Side)> {
        // With the length checked, `sn` reaches 0 exactly at the last element; this guard
        // only keeps the loop within the RFC's bounds.
        if self.snode == 0 {
            return None;
        }
        let element = *self.elements.next()?;
        let side = if step(&mut self.fnode, &mut self.snode) {
            Side::Left
        } else {
            Side::Right
        };
        Some((element, side))
    }

    /// Number of elements left.
    fn remaining(&self) -> usize {
        self.elements.len()
    }

    /// Whether the walk ended as the RFC requires: every element used and `sn` at 0. Always
    /// so with the length checked first; kept so that a bug could only reject a proof.
    fn check_end(&self) -> Result<(), VerifyError> {
        if self.snode != 0 || self.remaining() != 0 {
            return Err(VerifyError::WrongProofLength {
                expected: self.expected,
                actual: self.len,
            });
        }
        Ok(())
    }
}

/// The steps of checking an audit path, from the leaf up: see [`inclusion_steps`].
///
/// Yields exactly one [`InclusionStep`] per proof element.
#[derive(Clone, Debug)]
pub struct InclusionSteps<'a> {
    walk: Walk<'a>,
    r: Hash,
}

impl Iterator for InclusionSteps<'_> {
    type Item = InclusionStep;

    fn next(&mut self) -> Option<InclusionStep> {
        let (sibling, side) = self.walk.next()?;
        self.r = match side {
            Side::Left => node_hash(&sibling, &self.r),
            Side::Right => node_hash(&self.r, &sibling),
        };
        Some(InclusionStep {
            sibling,
            side,
            r: self.r,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.walk.remaining();
        (n, Some(n))
    }
}

impl ExactSizeIterator for InclusionSteps<'_> {}

impl std::iter::FusedIterator for InclusionSteps<'_> {}

impl InclusionSteps<'_> {
    /// Runs the remaining steps and returns `r` (RFC 9162 §2.1.3.2 step 5, without the
    /// final comparison).
    fn finish(mut self) -> Result<Hash, VerifyError> {
        for _ in self.by_ref() {}
        self.walk.check_end()?;
        Ok(self.r)
    }
}

/// The steps of RFC 9162 §2.1.3.2 for the audit path `proof` of `leaf` at `index` in a tree
/// of `size`: each proof element, the side it is hashed on, and `r` after it. The last
/// step's `r` (the leaf itself when the proof is empty) is the root the proof leads to; the
/// caller compares it with the root it trusts, as [`verify_inclusion`] does.
///
/// # Errors
/// [`VerifyError::IndexOutOfRange`] when `index >= size`; [`VerifyError::WrongProofLength`]
/// when `proof` is not exactly as long as an audit path for `(index, size)`.
pub fn inclusion_steps<'a>(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &'a [Hash],
) -> Result<InclusionSteps<'a>, VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    Ok(InclusionSteps {
        walk: Walk {
            elements: proof.iter(),
            fnode: index,
            snode: size - 1,
            expected,
            len: proof.len(),
        },
        r: *leaf,
    })
}

/// The root that an RFC 6962 audit path leads to from `leaf` at `index` in a tree of `size`
/// (RFC 9162 §2.1.3.2, without the final comparison): `r` after the last of
/// [`inclusion_steps`].
///
/// # Errors
/// [`VerifyError::IndexOutOfRange`] when `index >= size`; [`VerifyError::WrongProofLength`]
/// when `proof` is not exactly as long as an audit path for `(index, size)`.
pub fn root_from_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
) -> Result<Hash, VerifyError> {
    inclusion_steps(leaf, index, size, proof)?.finish()
}

/// Verifies that `leaf` is the leaf hash at `index` in the tree of `size` with `root`
/// (RFC 9162 §2.1.3.2).
///
/// # Errors
/// As [`root_from_inclusion`], and [`VerifyError::RootMismatch`] when the path leads to
/// another root.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    size: u64,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    let computed = root_from_inclusion(leaf, index, size, proof)?;
    if computed != *root {
        return Err(VerifyError::RootMismatch {
            expected: *root,
            computed,
        });
    }
    Ok(())
}

/// One step of RFC 9162 §2.1.4.2 step 6: one consistency proof element hashed into `fr`
/// and `sr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsistencyStep {
    /// The proof element.
    pub element: Hash,
    /// [`Side::Left`]: the element is a left sibling on both trees' paths, so
    /// `fr = H(element || fr)` and `sr = H(element || sr)`. [`Side::Right`]: it lies right
    /// of the older tree, so only `sr = H(sr || element)` changes.
    pub side: Side,
    /// `fr` after this step: the older tree's root, as rebuilt so far.
    pub fr: Hash,
    /// `sr` after this step: the newer tree's root, as rebuilt so far.
    pub sr: Hash,
}

/// The steps of checking a consistency proof: see [`consistency_steps`].
///
/// Yields exactly one [`ConsistencyStep`] per proof element after the seed.
#[derive(Clone, Debug)]
pub struct ConsistencySteps<'a> {
    walk: Walk<'a>,
    fr: Hash,
    sr: Hash,
    seed: Hash,
    seed_from_proof: bool,
}

impl Iterator for ConsistencySteps<'_> {
    type Item = ConsistencyStep;

    fn next(&mut self) -> Option<ConsistencyStep> {
        let (element, side) = self.walk.next()?;
        match side {
            Side::Left => {
                self.fr = node_hash(&element, &self.fr);
                self.sr = node_hash(&element, &self.sr);
            }
            Side::Right => self.sr = node_hash(&self.sr, &element),
        }
        Some(ConsistencyStep {
            element,
            side,
            fr: self.fr,
            sr: self.sr,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.walk.remaining();
        (n, Some(n))
    }
}

impl ExactSizeIterator for ConsistencySteps<'_> {}

impl std::iter::FusedIterator for ConsistencySteps<'_> {}

impl ConsistencySteps<'_> {
    /// The hash both `fr` and `sr` start from (RFC 9162 §2.1.4.2 step 5): the first proof
    /// element, or the older root when the older size is a power of two (step 2) or when
    /// there is no loop to run (an empty older tree, or equal sizes).
    pub fn seed(&self) -> Hash {
        self.seed
    }

    /// Whether [`seed`](Self::seed) is the first proof element (else it is the older root).
    pub fn seed_from_proof(&self) -> bool {
        self.seed_from_proof
    }

    /// Runs the remaining steps and returns `(fr, sr)` for RFC 9162 §2.1.4.2 step 7.
    fn finish(mut self) -> Result<(Hash, Hash), VerifyError> {
        for _ in self.by_ref() {}
        self.walk.check_end()?;
        Ok((self.fr, self.sr))
    }
}

/// The steps of RFC 9162 §2.1.4.2 for the consistency proof `proof` from the tree of `first`
/// leaves with `first_root` to the tree of `second` leaves: the seed
/// ([`ConsistencySteps::seed`]), then per remaining proof element the side it is hashed on
/// and `fr`, `sr` after it. After the last step `fr` is the older root and `sr` the newer
/// root the proof leads to; the caller compares them with the roots it trusts, as
/// [`verify_consistency`] does.
///
/// When `first == 0` or `first == second` the RFC runs no loop: the proof must be empty,
/// there are no steps and the seed is `first_root` (see [`verify_consistency`] for what
/// is checked then).
///
/// # Errors
/// [`VerifyError::SizesOutOfOrder`] when `first > second`; [`VerifyError::WrongProofLength`]
/// when the proof is not exactly as long as `PROOF(first, D[0:second])`.
pub fn consistency_steps<'a>(
    first: u64,
    second: u64,
    first_root: &Hash,
    proof: &'a [Hash],
) -> Result<ConsistencySteps<'a>, VerifyError> {
    if first > second {
        return Err(VerifyError::SizesOutOfOrder { first, second });
    }
    let trivial = first == 0 || first == second;
    let expected = if trivial {
        0
    } else {
        consistency_proof_len(first, second)
    };
    if proof.len() != expected {
        return Err(VerifyError::WrongProofLength {
            expected,
            actual: proof.len(),
        });
    }
    let mut elements = proof.iter();
    let mut seed = *first_root;
    let (mut fnode, mut snode) = (0, 0);
    if !trivial {
        // Step 2: when `first` is a power of two, its root is the implicit first element.
        if !first.is_power_of_two() {
            // `expected` is at least 1 here, so the proof has a first element.
            seed = *elements.next().ok_or(VerifyError::WrongProofLength {
                expected,
                actual: proof.len(),
            })?;
        }
        (fnode, snode) = consistency_start(first, second);
    }
    Ok(ConsistencySteps {
        walk: Walk {
            elements,
            fnode,
            snode,
            expected,
            len: proof.len(),
        },
        fr: seed,
        sr: seed,
        seed,
        seed_from_proof: !trivial && !first.is_power_of_two(),
    })
}

/// Verifies that the tree of `second` leaves with `second_root` extends the tree of `first`
/// leaves with `first_root` (RFC 9162 §2.1.4.2), by running [`consistency_steps`].
///
/// Every tree extends the empty one: when `first == 0` the proof must be empty and
/// `first_root` must be [`EMPTY_ROOT`]. When `first == second` the proof must be empty and
/// the roots equal.
///
/// # Errors
/// [`VerifyError::SizesOutOfOrder`] when `first > second`; [`VerifyError::WrongProofLength`]
/// when the proof is not exactly as long as `PROOF(first, D[0:second])`;
/// [`VerifyError::FirstRootMismatch`] when it does not lead to `first_root`, and
/// [`VerifyError::RootMismatch`] when it does not lead to `second_root` (for equal sizes:
/// when the roots differ, with `first_root` as the computed one).
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    let steps = consistency_steps(first, second, first_root, proof)?;
    if first == 0 {
        if *first_root != EMPTY_ROOT {
            return Err(VerifyError::FirstRootMismatch {
                expected: *first_root,
                computed: EMPTY_ROOT,
            });
        }
        return Ok(());
    }
    // Step 7. For equal sizes there are no steps, so `fr` and `sr` are both `first_root`.
    let (fr, sr) = steps.finish()?;
    if fr != *first_root {
        return Err(VerifyError::FirstRootMismatch {
            expected: *first_root,
            computed: fr,
        });
    }
    if sr != *second_root {
        return Err(VerifyError::RootMismatch {
            expected: *second_root,
            computed: sr,
        });
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// In-memory nodes
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Memoised nodes
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Tiles as storage
// ---------------------------------------------------------------------------------------------

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
    #[error("tree size {size} is larger than the maximum {MAX_TREE_SIZE}")]
    TreeTooLarge {
        /// The requested size.
        size: u64,
    },
}

/// Reads the first `width` hashes of tile (level, index).
fn read_tile<T: TileSource + ?Sized>(
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
        Some(fold_row(
            run.chunks_exact(HASH_SIZE).filter_map(Hash::from_slice),
        ))
    }
}

/// Number of nodes of tree level `8 * tile_level` in a tree of `size`.
fn row_len(size: u64, tile_level: u8) -> u64 {
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

// ---------------------------------------------------------------------------------------------
// The append path
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// In-memory tiles
// ---------------------------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::fmt::Debug;
    use std::sync::OnceLock;

    use proptest::prelude::*;
    use proptest::test_runner::RngSeed;
    use serde::Deserialize;

    use super::*;
    use crate::hash::leaf_hash;

    const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/vectors/");

    /// Number of leaves in the shared fixture: the largest vector size.
    const FIXTURE_SIZE: u64 = 65537;

    /// Deterministic proptest settings: fixed seed, no regression files.
    fn config(cases: u32) -> ProptestConfig {
        ProptestConfig {
            cases,
            rng_seed: RngSeed::Fixed(0x006c_696e_6561_6765),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    /// Leaf `i` of the vectors: the leaf hash of its ASCII decimal.
    fn leaf(i: u64) -> Hash {
        leaf_hash(i.to_string().as_bytes())
    }

    fn b64(s: &str) -> Hash {
        Hash::from_base64(s).expect("vector hash is base64")
    }

    fn read_vector(name: &str) -> Vec<u8> {
        std::fs::read(format!("{VECTORS}{name}")).expect("test vector readable")
    }

    fn parse_vector<T: serde::de::DeserializeOwned>(name: &str) -> T {
        serde_json::from_slice(&read_vector(name)).expect("test vector parses")
    }

    struct Fixture {
        leaves: Vec<Hash>,
        mem: MemNodes,
        /// The tiles of the whole fixture tree, from a single `plan_append`.
        tiles: MemTiles,
        edge: TreeEdge,
    }

    fn fixture() -> &'static Fixture {
        static FIXTURE: OnceLock<Fixture> = OnceLock::new();
        FIXTURE.get_or_init(|| {
            let leaves: Vec<Hash> = (0..FIXTURE_SIZE).map(leaf).collect();
            let plan = plan_append(&TreeEdge::empty(), &leaves);
            let mut tiles = MemTiles::new();
            tiles.apply(&plan);
            Fixture {
                mem: MemNodes::new(leaves.clone()),
                leaves,
                tiles,
                edge: plan.edge,
            }
        })
    }

    fn mem_root(size: u64) -> Hash {
        root(size, &fixture().mem).expect("fixture holds the tree")
    }

    fn flip(h: &Hash, bit: usize) -> Hash {
        let mut bytes = h.to_bytes();
        if let Some(byte) = bytes.get_mut(bit / 8) {
            *byte ^= 1 << (bit % 8);
        }
        Hash::from_bytes(bytes)
    }

    /// The one assertion helper for tiny cases: `got` must equal `want`.
    #[track_caller]
    fn check<T: PartialEq + Debug>(got: T, want: T) {
        assert_eq!(got, want);
    }

    // -- vectors --------------------------------------------------------------------------

    #[derive(Deserialize)]
    struct RootsFile {
        roots: Vec<RootVector>,
    }

    #[derive(Deserialize)]
    struct RootVector {
        size: u64,
        root: String,
    }

    #[derive(Deserialize)]
    struct InclusionFile {
        tests: Vec<InclusionVector>,
    }

    #[derive(Deserialize)]
    struct InclusionVector {
        index: u64,
        size: u64,
        leaf_data: String,
        leaf_hash: String,
        root: String,
        proof: Vec<String>,
        valid: bool,
        mutation: Option<String>,
    }

    #[derive(Deserialize)]
    struct ConsistencyFile {
        tests: Vec<ConsistencyVector>,
    }

    #[derive(Deserialize)]
    struct ConsistencyVector {
        size1: u64,
        size2: u64,
        root1: String,
        root2: String,
        proof: Vec<String>,
        valid: bool,
        mutation: Option<String>,
    }

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

    fn vector_roots() -> Vec<(u64, Hash)> {
        let file: RootsFile = parse_vector("roots.json");
        file.roots.iter().map(|r| (r.size, b64(&r.root))).collect()
    }

    fn hashes(v: &[String]) -> Vec<Hash> {
        v.iter().map(|s| b64(s)).collect()
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
    fn roots_match_vectors_via_mem_nodes() {
        let f = fixture();
        for (size, want) in vector_roots() {
            check((size, mem_root(size)), (size, want));
        }
        check(f.mem.size(), FIXTURE_SIZE);
        check(f.edge.root(), mem_root(FIXTURE_SIZE));
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
    fn inclusion_vectors_are_produced_and_checked() {
        let f = fixture();
        let file: InclusionFile = parse_vector("inclusion.json");
        let (mut valid, mut invalid) = (0, 0);
        for t in &file.tests {
            let leaf = leaf_hash(t.leaf_data.as_bytes());
            check(leaf, b64(&t.leaf_hash));
            let (proof, root_at) = (hashes(&t.proof), b64(&t.root));
            let got = verify_inclusion(&leaf, t.index, t.size, &proof, &root_at);
            if t.valid {
                valid += 1;
                check((t.index, t.size, got), (t.index, t.size, Ok(())));
                let built = prove_inclusion(t.index, t.size, &f.mem);
                check((t.index, t.size, built), (t.index, t.size, Ok(proof)));
                check(mem_root(t.size), root_at);
            } else {
                invalid += 1;
                assert!(
                    got.is_err(),
                    "accepted {:?} {} {}",
                    t.mutation,
                    t.index,
                    t.size
                );
            }
        }
        assert!(
            valid > 300 && invalid > 300,
            "{valid} valid, {invalid} invalid"
        );
    }

    #[test]
    fn consistency_vectors_are_produced_and_checked() {
        let f = fixture();
        let file: ConsistencyFile = parse_vector("consistency.json");
        let (mut valid, mut invalid) = (0, 0);
        for t in &file.tests {
            let (proof, r1, r2) = (hashes(&t.proof), b64(&t.root1), b64(&t.root2));
            let got = verify_consistency(t.size1, t.size2, &r1, &r2, &proof);
            let sizes = (t.size1, t.size2);
            if t.valid {
                valid += 1;
                check((sizes, got), (sizes, Ok(())));
                let built = prove_consistency(t.size1, t.size2, &f.mem);
                check((sizes, built), (sizes, Ok(proof)));
                check((mem_root(t.size1), mem_root(t.size2)), (r1, r2));
            } else {
                invalid += 1;
                assert!(got.is_err(), "accepted {:?} {sizes:?}", t.mutation);
            }
        }
        assert!(
            valid > 200 && invalid > 200,
            "{valid} valid, {invalid} invalid"
        );
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
            check(TreeEdge::partial_tiles(layout.size), want_partials);
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
                let leaf = f.leaves.get(index as usize).copied().unwrap_or_default();
                prop_assert_eq!(
                    verify_inclusion(&leaf, index, size, &theirs, &mem_root(size)),
                    Ok(())
                );
            }
        }
    }

    // -- exhaustive small trees ----------------------------------------------------------
    //
    // A SHA-256 costs ~4 µs in this unoptimised crate, so every tree up to 64 gets one bit
    // flip per hash (the bit position rotating over the cases), and a few sizes get all 256.

    /// Roots of the trees of sizes 0..=64.
    fn small_roots() -> &'static [Hash] {
        static ROOTS: OnceLock<Vec<Hash>> = OnceLock::new();
        ROOTS.get_or_init(|| (0..=64).map(mem_root).collect())
    }

    fn small_root(size: u64) -> Hash {
        small_roots()
            .get(size as usize)
            .copied()
            .unwrap_or_default()
    }

    fn fixture_leaf(index: u64) -> Hash {
        fixture()
            .leaves
            .get(index as usize)
            .copied()
            .unwrap_or_default()
    }

    fn inclusion_rejected(
        leaf: &Hash,
        index: u64,
        size: u64,
        proof: &[Hash],
        root_at: &Hash,
    ) -> bool {
        verify_inclusion(leaf, index, size, proof, root_at).is_err()
    }

    /// Checks the proof of leaf `index` in the tree of `size`, and that flipping `bits` of
    /// the leaf, the root or any proof element, another index or size, or a longer or
    /// shorter proof is rejected.
    #[track_caller]
    fn check_inclusion(index: u64, size: u64, bits: impl Iterator<Item = usize> + Clone) {
        let f = fixture();
        let (leaf, root_at) = (fixture_leaf(index), small_root(size));
        let proof = prove_inclusion(index, size, &f.mem).expect("index in range");
        check(proof.len(), inclusion_proof_len(index, size));
        check(
            verify_inclusion(&leaf, index, size, &proof, &root_at),
            Ok(()),
        );
        check(root_from_inclusion(&leaf, index, size, &proof), Ok(root_at));
        for bit in bits {
            assert!(inclusion_rejected(
                &flip(&leaf, bit),
                index,
                size,
                &proof,
                &root_at
            ));
            assert!(inclusion_rejected(
                &leaf,
                index,
                size,
                &proof,
                &flip(&root_at, bit)
            ));
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                if let Some(h) = bad.get_mut(i) {
                    *h = flip(h, bit);
                }
                assert!(
                    inclusion_rejected(&leaf, index, size, &bad, &root_at),
                    "bit {bit} of {i}"
                );
            }
        }
        for other in (0..size + 2).filter(|&j| j != index) {
            assert!(
                inclusion_rejected(&leaf, other, size, &proof, &root_at),
                "index {other}"
            );
        }
        // The claimed size is bound through the root: a proof checked against another
        // size's root fails. (With this root, another size whose path has the same shape
        // would pass, e.g. leaf 0 of sizes 5 and 6: RFC 9162 leaves that to the signature
        // over size and root.)
        for other in (1..=64).filter(|&m| m != size) {
            assert!(
                inclusion_rejected(&leaf, index, other, &proof, &small_root(other)),
                "size {other}"
            );
        }
        let mut longer = proof.clone();
        longer.push(leaf);
        assert!(inclusion_rejected(&leaf, index, size, &longer, &root_at));
        if let Some((_, shorter)) = proof.split_last() {
            assert!(inclusion_rejected(&leaf, index, size, shorter, &root_at));
        }
    }

    #[test]
    fn inclusion_proofs_for_every_leaf_of_every_tree_up_to_64() {
        for size in 1..=64u64 {
            for index in 0..size {
                let bit = (size * 64 + index) as usize * 37 % 256;
                check_inclusion(index, size, std::iter::once(bit));
            }
        }
    }

    #[test]
    fn inclusion_rejects_every_single_bit_flip() {
        for size in [1u64, 2, 3, 5, 8, 13, 21] {
            for index in 0..size {
                check_inclusion(index, size, 0..256);
            }
        }
    }

    fn consistency_rejected(first: u64, second: u64, r1: &Hash, r2: &Hash, proof: &[Hash]) -> bool {
        verify_consistency(first, second, r1, r2, proof).is_err()
    }

    /// Checks the consistency proof from `first` to `second`, and that flipping `bits` of
    /// either root or any proof element, other sizes, swapped roots, or a longer or shorter
    /// proof is rejected.
    #[track_caller]
    fn check_consistency(first: u64, second: u64, bits: impl Iterator<Item = usize> + Clone) {
        let f = fixture();
        let (r1, r2) = (small_root(first), small_root(second));
        let proof = prove_consistency(first, second, &f.mem).expect("sizes in order");
        let want_len = if first == 0 || first == second {
            0
        } else {
            consistency_proof_len(first, second)
        };
        check(proof.len(), want_len);
        check(verify_consistency(first, second, &r1, &r2, &proof), Ok(()));
        for bit in bits {
            // Any second root extends the empty tree.
            assert!(consistency_rejected(
                first,
                second,
                &flip(&r1, bit),
                &r2,
                &proof
            ));
            assert!(
                consistency_rejected(first, second, &r1, &flip(&r2, bit), &proof) || first == 0
            );
            for i in 0..proof.len() {
                let mut bad = proof.clone();
                if let Some(h) = bad.get_mut(i) {
                    *h = flip(h, bit);
                }
                assert!(
                    consistency_rejected(first, second, &r1, &r2, &bad),
                    "bit {bit} of {i}"
                );
            }
        }
        for other in (0..=64).filter(|&m| m != first) {
            // An empty proof also shows that a tree extends itself and the empty tree.
            let itself = proof.is_empty() && (other == second || other == 0);
            let rejected = consistency_rejected(other, second, &small_root(other), &r2, &proof);
            assert!(rejected || itself, "first {other}");
        }
        for other in (0..=64).filter(|&n| n != second) {
            let rejected = consistency_rejected(first, other, &r1, &small_root(other), &proof);
            assert!(rejected || first == 0, "second {other}");
        }
        if first != second {
            assert!(consistency_rejected(first, second, &r2, &r1, &proof));
        }
        let mut longer = proof.clone();
        longer.push(r1);
        assert!(consistency_rejected(first, second, &r1, &r2, &longer));
        if let Some((_, shorter)) = proof.split_last() {
            assert!(consistency_rejected(first, second, &r1, &r2, shorter));
        }
        if let Some((_, shorter)) = proof.split_first() {
            assert!(consistency_rejected(first, second, &r1, &r2, shorter));
        }
    }

    #[test]
    fn consistency_proofs_for_every_pair_of_trees_up_to_64() {
        for second in 0..=64u64 {
            for first in 0..=second {
                let bit = (second * 65 + first) as usize * 37 % 256;
                check_consistency(first, second, std::iter::once(bit));
            }
        }
    }

    #[test]
    fn consistency_rejects_every_single_bit_flip() {
        for second in [1u64, 6, 13] {
            for first in 0..=second {
                check_consistency(first, second, 0..256);
            }
        }
    }

    // -- verification steps ---------------------------------------------------------------
    //
    // The oracle is RFC 6962's recursion, not RFC 9162's loop: every running hash the steps
    // report must be `MTH` of the leaf range the recursion names at that level.

    /// `MTH(D[lo:hi])` of the fixture leaves, from a tree of just those leaves.
    fn mth(lo: u64, hi: u64) -> Hash {
        let leaves = fixture().leaves.get(lo as usize..hi as usize);
        let tree = MemNodes::new(leaves.unwrap_or_default().to_vec());
        root(hi - lo, &tree).unwrap_or_default()
    }

    /// RFC 6962's split point, computed independently of [`split_point`].
    fn rfc_split(n: u64) -> u64 {
        n.next_power_of_two() / 2
    }

    /// RFC 6962 `PATH(index, D[0:size])`, bottom up: per proof element, its side and the
    /// range `[lo, hi)` whose hash `r` is after it.
    fn path_ranges(index: u64, size: u64) -> Vec<(Side, u64, u64)> {
        let (mut lo, mut hi) = (0, size);
        let mut out = vec![];
        while hi - lo > 1 {
            let k = rfc_split(hi - lo);
            if index < lo + k {
                out.push((Side::Right, lo, hi));
                hi = lo + k;
            } else {
                out.push((Side::Left, lo, hi));
                lo += k;
            }
        }
        out.reverse();
        out
    }

    /// RFC 6962 `SUBPROOF(first, D[0:second], true)` for `0 < first < second`, bottom up:
    /// where the seed's range starts (it ends at `first`), then per step the side and the
    /// range `[lo, hi)` whose hash `sr` is after it (`fr` is then `MTH(D[lo:first])`).
    fn subproof_ranges(first: u64, second: u64) -> (u64, Vec<(Side, u64, u64)>) {
        let (mut lo, mut hi, mut m) = (0, second, first);
        let mut out = vec![];
        while hi - lo != m {
            let k = rfc_split(hi - lo);
            if m <= k {
                out.push((Side::Right, lo, hi));
                hi = lo + k;
            } else {
                out.push((Side::Left, lo, hi));
                lo += k;
                m -= k;
            }
        }
        out.reverse();
        (lo, out)
    }

    #[test]
    fn inclusion_steps_follow_the_rfc_6962_path_for_every_leaf_up_to_64() {
        let f = fixture();
        for size in 1..=64u64 {
            for index in 0..size {
                let at = (index, size);
                let leaf = fixture_leaf(index);
                let proof = prove_inclusion(index, size, &f.mem).expect("index in range");
                let steps = inclusion_steps(&leaf, index, size, &proof).expect("valid");
                check((at, steps.len()), (at, proof.len()));
                let steps: Vec<InclusionStep> = steps.collect();
                let want: Vec<InclusionStep> = path_ranges(index, size)
                    .into_iter()
                    .zip(&proof)
                    .map(|((side, lo, hi), sibling)| InclusionStep {
                        sibling: *sibling,
                        side,
                        r: mth(lo, hi),
                    })
                    .collect();
                check((at, &steps), (at, &want));
                let last = steps.last().map_or(leaf, |s| s.r);
                check((at, last), (at, small_root(size)));
            }
        }
    }

    #[test]
    fn consistency_steps_follow_the_rfc_6962_subproof_for_every_pair_up_to_64() {
        let f = fixture();
        for second in 0..=64u64 {
            for first in 0..=second {
                let at = (first, second);
                let (r1, r2) = (small_root(first), small_root(second));
                let proof = prove_consistency(first, second, &f.mem).expect("in order");
                let steps = consistency_steps(first, second, &r1, &proof).expect("valid");
                if first == 0 || first == second {
                    check((at, steps.seed(), steps.seed_from_proof()), (at, r1, false));
                    check((at, steps.count()), (at, 0));
                    continue;
                }
                let (seed_lo, ranges) = subproof_ranges(first, second);
                let pow2 = first.is_power_of_two();
                check(
                    (at, steps.seed(), steps.seed_from_proof()),
                    (at, mth(seed_lo, first), !pow2),
                );
                check((at, steps.len()), (at, ranges.len()));
                let steps: Vec<ConsistencyStep> = steps.collect();
                let elements = proof.get(usize::from(!pow2)..).unwrap_or_default();
                let want: Vec<ConsistencyStep> = ranges
                    .into_iter()
                    .zip(elements)
                    .map(|((side, lo, hi), element)| ConsistencyStep {
                        element: *element,
                        side,
                        fr: mth(lo, first),
                        sr: mth(lo, hi),
                    })
                    .collect();
                check((at, &steps), (at, &want));
                let last = steps.last().map(|s| (s.fr, s.sr));
                check((at, last), (at, Some((r1, r2))));
            }
        }
    }

    #[test]
    fn steps_refuse_what_verify_refuses_up_front() {
        let (l0, r3) = (leaf(0), small_root(3));
        let e = |steps: Result<InclusionSteps<'_>, VerifyError>| steps.err();
        check(
            e(inclusion_steps(&l0, 3, 3, &[])),
            Some(VerifyError::IndexOutOfRange { index: 3, size: 3 }),
        );
        check(
            e(inclusion_steps(&l0, 0, 3, &[l0])),
            Some(VerifyError::WrongProofLength {
                expected: 2,
                actual: 1,
            }),
        );
        check(e(inclusion_steps(&l0, 0, 1, &[])).is_none(), true);
        let c = |steps: Result<ConsistencySteps<'_>, VerifyError>| steps.err();
        check(
            c(consistency_steps(3, 2, &r3, &[])),
            Some(VerifyError::SizesOutOfOrder {
                first: 3,
                second: 2,
            }),
        );
        check(
            c(consistency_steps(3, 3, &r3, &[r3])),
            Some(VerifyError::WrongProofLength {
                expected: 0,
                actual: 1,
            }),
        );
        check(
            c(consistency_steps(3, 4, &r3, &[r3])),
            Some(VerifyError::WrongProofLength {
                expected: 3,
                actual: 1,
            }),
        );
    }

    /// What the steps say about an inclusion proof: their error, or whether `r` after the
    /// last one is `root_at`.
    fn inclusion_verdict_of_steps(
        leaf: &Hash,
        index: u64,
        size: u64,
        proof: &[Hash],
        root_at: &Hash,
    ) -> Result<(), VerifyError> {
        let computed = inclusion_steps(leaf, index, size, proof)?.fold(*leaf, |_, s| s.r);
        if computed == *root_at {
            Ok(())
        } else {
            Err(VerifyError::RootMismatch {
                expected: *root_at,
                computed,
            })
        }
    }

    /// What the steps say about a consistency proof: their error, or how `fr` and `sr`
    /// after the last one compare with the roots (the empty older tree has no steps: its
    /// root must be the empty root).
    fn consistency_verdict_of_steps(
        first: u64,
        second: u64,
        r1: &Hash,
        r2: &Hash,
        proof: &[Hash],
    ) -> Result<(), VerifyError> {
        let steps = consistency_steps(first, second, r1, proof)?;
        let seed = steps.seed();
        let (fr, sr) = if first == 0 {
            (EMPTY_ROOT, *r2)
        } else {
            steps.fold((seed, seed), |_, s| (s.fr, s.sr))
        };
        if fr != *r1 {
            return Err(VerifyError::FirstRootMismatch {
                expected: *r1,
                computed: fr,
            });
        }
        if sr != *r2 {
            return Err(VerifyError::RootMismatch {
                expected: *r2,
                computed: sr,
            });
        }
        Ok(())
    }

    /// Ways to spoil a proof or its claims.
    #[derive(Clone, Debug)]
    enum Mutation {
        FlipBit { element: usize, bit: usize },
        Drop(usize),
        Duplicate(usize),
        Swap(usize, usize),
        OtherIndex(u64),
        OtherSize(u64),
        FlipLeaf(usize),
        FlipRoot(usize),
        None,
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (0usize..8, 0usize..256).prop_map(|(element, bit)| Mutation::FlipBit { element, bit }),
            (0usize..8).prop_map(Mutation::Drop),
            (0usize..8).prop_map(Mutation::Duplicate),
            (0usize..8, 0usize..8).prop_map(|(a, b)| Mutation::Swap(a, b)),
            (0u64..66).prop_map(Mutation::OtherIndex),
            (0u64..66).prop_map(Mutation::OtherSize),
            (0usize..256).prop_map(Mutation::FlipLeaf),
            (0usize..256).prop_map(Mutation::FlipRoot),
            Just(Mutation::None),
        ]
    }

    /// Applies `m` to (a, b, proof, x, y): for inclusion (index, size, proof, leaf, root),
    /// for consistency (first, second, proof, older root, newer root).
    fn mutate(
        m: &Mutation,
        a: &mut u64,
        b: &mut u64,
        proof: &mut Vec<Hash>,
        x: &mut Hash,
        y: &mut Hash,
    ) {
        let len = proof.len().max(1);
        match *m {
            Mutation::FlipBit { element, bit } => {
                if let Some(h) = proof.get_mut(element % len) {
                    *h = flip(h, bit);
                }
            }
            Mutation::Drop(i) => {
                if i % len < proof.len() {
                    proof.remove(i % len);
                }
            }
            Mutation::Duplicate(i) => {
                let h = proof.get(i % len).copied().unwrap_or(*x);
                proof.insert((i % len).min(proof.len()), h);
            }
            Mutation::Swap(i, j) => {
                let n = proof.len();
                if n > 1 {
                    proof.swap(i % n, j % n);
                }
            }
            Mutation::OtherIndex(i) => *a = i,
            Mutation::OtherSize(n) => *b = n,
            Mutation::FlipLeaf(bit) => *x = flip(x, bit),
            Mutation::FlipRoot(bit) => *y = flip(y, bit),
            Mutation::None => {}
        }
    }

    proptest! {
        #![proptest_config(config(512))]

        #[test]
        fn mutated_inclusion_proofs_fail_as_the_steps_say(
            size in 1u64..=64,
            at in any::<u64>(),
            m in mutation(),
        ) {
            let f = fixture();
            let index = at % size;
            let mut proof = prove_inclusion(index, size, &f.mem).unwrap_or_default();
            let valid = proof.clone();
            let (mut i, mut n, mut l, mut r) = (index, size, fixture_leaf(index), small_root(size));
            mutate(&m, &mut i, &mut n, &mut proof, &mut l, &mut r);
            let verdict = verify_inclusion(&l, i, n, &proof, &r);
            prop_assert_eq!(&verdict, &inclusion_verdict_of_steps(&l, i, n, &proof, &r));
            if (i, n, &proof, l, r) == (index, size, &valid, fixture_leaf(index), small_root(size)) {
                prop_assert_eq!(verdict, Ok(()));
            } else if proof != valid || l != fixture_leaf(index) || r != small_root(size) {
                prop_assert!(verdict.is_err());
            }
        }

        #[test]
        fn mutated_consistency_proofs_fail_as_the_steps_say(
            a in 0u64..=64,
            b in 0u64..=64,
            m in mutation(),
        ) {
            let f = fixture();
            let (first, second) = (a.min(b), a.max(b));
            let mut proof = prove_consistency(first, second, &f.mem).unwrap_or_default();
            let valid = proof.clone();
            let (mut m1, mut m2, mut r1, mut r2) = (first, second, small_root(first), small_root(second));
            mutate(&m, &mut m1, &mut m2, &mut proof, &mut r1, &mut r2);
            let verdict = verify_consistency(m1, m2, &r1, &r2, &proof);
            prop_assert_eq!(&verdict, &consistency_verdict_of_steps(m1, m2, &r1, &r2, &proof));
            if (m1, m2, &proof, r1, r2) == (first, second, &valid, small_root(first), small_root(second)) {
                prop_assert_eq!(verdict, Ok(()));
            } else if (m1, m2) == (first, second) && first > 0 && (proof != valid || r1 != small_root(first) || r2 != small_root(second)) {
                prop_assert!(verdict.is_err());
            }
        }
    }

    // -- row roots, tile spans and the memo ----------------------------------------------

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

    // -- tiny cases ---------------------------------------------------------------------

    #[test]
    fn proof_and_verify_errors_are_precise() {
        let f = fixture();
        let (l0, r1, r2, r3) = (leaf(0), mem_root(1), mem_root(2), mem_root(3));
        type E = VerifyError;
        check(root(0, &f.mem), Ok(EMPTY_ROOT));
        check(root(0, &MemNodes::default()), Ok(EMPTY_ROOT));
        check(MemNodes::new(vec![]), MemNodes::default());
        check(TreeEdge::empty().root(), EMPTY_ROOT);
        check(
            prove_inclusion(0, 0, &f.mem),
            Err(ProofError::IndexOutOfRange { index: 0, size: 0 }),
        );
        check(
            prove_inclusion(5, 5, &f.mem),
            Err(ProofError::IndexOutOfRange { index: 5, size: 5 }),
        );
        check(
            prove_consistency(3, 2, &f.mem),
            Err(ProofError::SizesOutOfOrder {
                first: 3,
                second: 2,
            }),
        );
        check(prove_consistency(0, 9, &f.mem), Ok(vec![]));
        check(prove_consistency(9, 9, &f.mem), Ok(vec![]));
        check(prove_inclusion(0, 1, &f.mem), Ok(vec![]));
        check(prove_inclusion(0, 2, &f.mem), Ok(vec![leaf(1)]));
        let small = MemNodes::new(vec![l0, leaf(1)]);
        check(
            prove_inclusion(0, 3, &small),
            Err(ProofError::Source(MissingNode {
                level: 0,
                index: 2,
                size: 2,
            })),
        );
        check(
            root(3, &small).map_err(|e| e.to_string()),
            Err("node (0, 2) is not complete in a tree of size 2".into()),
        );

        check(
            verify_inclusion(&l0, 0, 0, &[], &EMPTY_ROOT),
            Err(E::IndexOutOfRange { index: 0, size: 0 }),
        );
        check(
            verify_inclusion(&l0, 3, 3, &[], &r3),
            Err(E::IndexOutOfRange { index: 3, size: 3 }),
        );
        check(verify_inclusion(&l0, 0, 1, &[], &r1), Ok(()));
        check(
            verify_inclusion(&l0, 0, 1, &[l0], &r1),
            Err(E::WrongProofLength {
                expected: 0,
                actual: 1,
            }),
        );
        check(
            verify_inclusion(&l0, 0, 2, &[], &r2),
            Err(E::WrongProofLength {
                expected: 1,
                actual: 0,
            }),
        );
        check(
            verify_inclusion(&l0, 0, 1, &[], &r2),
            Err(E::RootMismatch {
                expected: r2,
                computed: r1,
            }),
        );
        check(verify_inclusion(&leaf(2), 2, 3, &[r2], &r3), Ok(()));
        check(
            verify_inclusion(&leaf(2), 2, u64::MAX, &[r2], &r3),
            Err(E::WrongProofLength {
                expected: 64,
                actual: 1,
            }),
        );

        check(
            verify_consistency(2, 1, &r2, &r1, &[]),
            Err(E::SizesOutOfOrder {
                first: 2,
                second: 1,
            }),
        );
        check(
            verify_consistency(0, 0, &EMPTY_ROOT, &EMPTY_ROOT, &[]),
            Ok(()),
        );
        check(verify_consistency(0, 3, &EMPTY_ROOT, &r3, &[]), Ok(()));
        check(
            verify_consistency(0, 3, &r1, &r3, &[]),
            Err(E::FirstRootMismatch {
                expected: r1,
                computed: EMPTY_ROOT,
            }),
        );
        check(
            verify_consistency(0, 3, &EMPTY_ROOT, &r3, &[r1]),
            Err(E::WrongProofLength {
                expected: 0,
                actual: 1,
            }),
        );
        check(verify_consistency(3, 3, &r3, &r3, &[]), Ok(()));
        check(
            verify_consistency(3, 3, &r3, &r2, &[]),
            Err(E::RootMismatch {
                expected: r2,
                computed: r3,
            }),
        );
        check(
            verify_consistency(3, 3, &r3, &r3, &[r3]),
            Err(E::WrongProofLength {
                expected: 0,
                actual: 1,
            }),
        );
        check(
            verify_consistency(1, 2, &r1, &r2, &[]),
            Err(E::WrongProofLength {
                expected: 1,
                actual: 0,
            }),
        );
        check(verify_consistency(1, 2, &r1, &r2, &[leaf(1)]), Ok(()));
        check(
            verify_consistency(1, 2, &r1, &r3, &[leaf(1)]),
            Err(E::RootMismatch {
                expected: r3,
                computed: r2,
            }),
        );
        let p23 = prove_consistency(2, 3, &f.mem).expect("in order");
        check(p23.clone(), vec![leaf(2)]);
        // A power-of-two first tree seeds the proof with the claimed first root, so a wrong
        // one shows up in the second root.
        check(
            verify_consistency(2, 3, &r1, &r3, &p23),
            Err(E::RootMismatch {
                expected: r3,
                computed: node_hash(&r1, &leaf(2)),
            }),
        );
        check(verify_consistency(2, 3, &r2, &r3, &p23), Ok(()));
        let p34 = prove_consistency(3, 4, &f.mem).expect("in order");
        check(p34.len(), 3);
        let bad_first = flip(&r3, 0);
        check(
            verify_consistency(3, 4, &bad_first, &mem_root(4), &p34),
            Err(E::FirstRootMismatch {
                expected: bad_first,
                computed: r3,
            }),
        );
        check(
            E::WrongProofLength {
                expected: 2,
                actual: 3,
            }
            .to_string(),
            "proof has 3 hashes, 2 expected".to_string(),
        );
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

    // -- properties -----------------------------------------------------------------------

    /// A node source that makes up a hash for any node: proofs over it can be built for any
    /// `u64` tree, to check their shape.
    #[derive(Debug)]
    struct AnyNodes;

    impl NodeSource for AnyNodes {
        type Error = std::convert::Infallible;

        fn node(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
            let mut bytes = [0u8; 9];
            bytes[0] = level;
            bytes[1..].copy_from_slice(&index.to_be_bytes());
            Ok(leaf_hash(&bytes))
        }
    }

    fn any_size() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..200,
            any::<u64>(),
            (0u32..64).prop_map(|b| 1u64 << b),
            (1u32..64).prop_map(|b| (1u64 << b) - 1)
        ]
    }

    proptest! {
        #![proptest_config(config(64))]

        #[test]
        fn consistency_between_random_sizes(a in 0u64..5000, b in 0u64..5000) {
            let f = fixture();
            let (first, second) = (a.min(b), a.max(b));
            let proof = prove_consistency(first, second, &f.mem);
            prop_assert_eq!(prove_consistency(first, second, &TileNodes(&f.tiles)).ok(), proof.clone().ok());
            let proof = proof.unwrap_or_default();
            let (r1, r2) = (mem_root(first), mem_root(second));
            prop_assert_eq!(verify_consistency(first, second, &r1, &r2, &proof), Ok(()));
            if first != second {
                prop_assert!(verify_consistency(first, second, &r2, &r1, &proof).is_err());
                prop_assert_eq!(verify_consistency(second, first, &r2, &r1, &proof), Err(VerifyError::SizesOutOfOrder { first: second, second: first }));
            }
            let index = a % second.max(1);
            if index < second {
                let incl = prove_inclusion(index, second, &TileNodes(&f.tiles));
                prop_assert_eq!(incl.clone().ok(), prove_inclusion(index, second, &f.mem).ok());
                let leaf = f.leaves.get(index as usize).copied().unwrap_or_default();
                prop_assert_eq!(verify_inclusion(&leaf, index, second, &incl.unwrap_or_default(), &r2), Ok(()));
            }
        }

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

        #[test]
        fn verify_never_panics(
            index in any_size(),
            size in any_size(),
            proof in proptest::collection::vec(any::<[u8; 32]>(), 0..70),
            a in any::<[u8; 32]>(),
            b in any::<[u8; 32]>(),
        ) {
            let proof: Vec<Hash> = proof.into_iter().map(Hash::from_bytes).collect();
            let (a, b) = (Hash::from_bytes(a), Hash::from_bytes(b));
            let _ = verify_inclusion(&a, index, size, &proof, &b);
            let _ = root_from_inclusion(&a, index, size, &proof);
            let _ = verify_consistency(index, size, &a, &b, &proof);
            let _ = verify_consistency(size, index, &a, &b, &proof);
            let _ = inclusion_steps(&a, index, size, &proof).map(Iterator::count);
            let _ = consistency_steps(index, size, &a, &proof).map(Iterator::count);
            if index < size {
                prop_assert!(verify_inclusion(&a, index, size, &proof, &b).is_err() || proof.len() == inclusion_proof_len(index, size));
            }
        }

        #[test]
        fn proofs_have_the_verifier_length_for_any_size(a in any_size(), b in any_size()) {
            let (first, second) = (a.min(b), a.max(b));
            if second > 0 {
                let index = a % second;
                let proof = prove_inclusion(index, second, &AnyNodes).unwrap_or_default();
                prop_assert_eq!(proof.len(), inclusion_proof_len(index, second));
                // The steps take every element, and end with `sn` at 0.
                let leaf = Hash::default();
                let steps = inclusion_steps(&leaf, index, second, &proof).map(|s| (s.len(), s.count()));
                prop_assert_eq!(steps, Ok((proof.len(), proof.len())));
                prop_assert!(root_from_inclusion(&leaf, index, second, &proof).is_ok());
                prop_assert!(root(second, &AnyNodes).is_ok());
            }
            let proof = prove_consistency(first, second, &AnyNodes).unwrap_or_default();
            let want = if first == 0 || first == second { 0 } else { consistency_proof_len(first, second) };
            prop_assert_eq!(proof.len(), want);
            let seeded = usize::from(first != 0 && first != second && !first.is_power_of_two());
            let steps = consistency_steps(first, second, &Hash::default(), &proof).map(|s| (s.seed_from_proof(), s.len(), s.count()));
            prop_assert_eq!(steps, Ok((seeded == 1, want - seeded, want - seeded)));
            let verdict = verify_consistency(first, second, &Hash::default(), &Hash::default(), &proof);
            let wrong_length = VerifyError::WrongProofLength { expected: want, actual: want };
            prop_assert_ne!(verdict, Err(wrong_length));
        }

        #[test]
        fn tile_nodes_never_panic(level in any::<u8>(), index in any::<u64>(), len in 0usize..9000) {
            let _ = TileNodes(&FixedTile(vec![7; len])).node(level, index);
            let _ = TreeEdge::load(index, &FixedTile(vec![7; len]));
        }
    }
}
