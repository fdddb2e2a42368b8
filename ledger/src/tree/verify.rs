//! Checking proofs: RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency), as step
//! iterators ([`inclusion_steps`], [`consistency_steps`]) that `verify_*` run and the
//! explorer's Proof Viewer draws. Needs nothing but the hash functions.

use crate::hash::{EMPTY_ROOT, Hash, node_hash};

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

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use proptest::prelude::*;
    use serde::Deserialize;

    use super::*;
    use crate::hash::leaf_hash;
    use crate::tree::fixture::{
        any_size, b64, check, config, fixture, flip, leaf, mem_root, parse_vector,
    };
    use crate::tree::{
        MemNodes, MissingNode, NodeSource, ProofError, TileNodes, TreeEdge, prove_consistency,
        prove_inclusion, root,
    };

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

    fn hashes(v: &[String]) -> Vec<Hash> {
        v.iter().map(|s| b64(s)).collect()
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
    }
}
