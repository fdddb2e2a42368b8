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
//!   A [`TileStratum`] (the 16 nodes four levels above a complete row) is a cache a store
//!   keeps beside each complete tile; [`TileSpan::stratum_root`] reads a node from it.
//! - [`MemoNodes`] remembers the nodes any source computes in a [`NodeMemo`] that callers
//!   may share; [`BoundedMemo`] is a bounded one threads can share.
//!
//! **What it is not.** It stores nothing and knows no tile paths (see [`crate::tile`]).
//! [`MemNodes`] and [`MemTiles`] are in-memory implementations for tests and tools. The
//! memo's `Mutex` is its only shared state; nothing here reads a clock or the OS.
//!
//! **Known limits.** Tree sizes are `u64`; [`TreeEdge::load`] refuses sizes above
//! [`MAX_TREE_SIZE`] (2^63) so that appending can never overflow in practice.

// One concern per file; imports between them point one way (none imports `mod.rs`):
// `proof` <- `mem`, `memo`, `tiles` <- `append` <- `mem`; `verify` needs only hashes.
// - `proof.rs`: `NodeSource`, roots and proofs built from it.
// - `verify.rs`: checking proofs, as step iterators.
// - `mem.rs`: `MemNodes` and `MemTiles`, in memory.
// - `memo.rs`: `NodeMemo`, `BoundedMemo`, `MemoNodes`.
// - `tiles.rs`: nodes from stored tile rows: `TileSource`, `row_root`, `TileSpan`, `TileNodes`,
//   `RowNodes`, `TileStratum`.
// - `append.rs`: `TreeEdge` and `plan_append`.
// - `fixture.rs` (tests only): the vectors' tree, built once, and the helpers all tests share.

mod append;
#[cfg(test)]
mod fixture;
mod mem;
mod memo;
mod proof;
mod tiles;
mod verify;

pub use append::{AppendPlan, TileWrite, TreeEdge, plan_append};
pub use mem::{MemNodes, MemTiles, MissingNode, MissingTile};
pub use memo::{BoundedMemo, MemoNodes, NodeMemo};
pub use proof::{
    InclusionProver, NodeSource, ProofError, prove_consistency, prove_inclusion, root,
};
pub use tiles::{
    MAX_TREE_SIZE, RUN_BYTES, RUN_WIDTH, RowNodes, RunNodes, STRATUM_HEIGHT, STRATUM_WIDTH,
    TileNodes, TileNodesError, TileSource, TileSpan, TileStratum, row_root,
};
pub use verify::{
    ConsistencyStep, ConsistencySteps, InclusionStep, InclusionSteps, Side, VerifyError,
    consistency_steps, inclusion_steps, root_from_inclusion, verify_consistency, verify_inclusion,
};
