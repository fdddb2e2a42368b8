//! The Lineage ledger.
//!
//! **What it is.** The pure core of an append-only, verifiable execution-lineage
//! log: RFC 6962 / RFC 9162 Merkle tree math and proofs ([`tree`]), the C2SP
//! tlog-tiles layout ([`tile`]), C2SP signed notes and checkpoints ([`note`],
//! [`checkpoint`]), the C2SP witnessing formats (checkpoint cosignatures
//! [`cosignature`], trust policies [`policy`], the witness protocol's
//! `add-checkpoint` exchange [`witness_protocol`], offline proofs
//! [`tlog_proof`]), DSSE v1 envelopes and Ed25519 keys ([`dsse`], [`keys`]),
//! runtime events and governance statements ([`event`]), and the log entry
//! encoding ([`entry`]). With the default `rocksdb` feature it also holds the
//! durable store ([`store`]).
//!
//! **What it is not.** It does no network I/O and runs no async runtime. The
//! pure modules read no clock and touch no disk: time and storage come in as
//! parameters. The offline verifier depends on this crate with
//! `default-features = false`, and so must be able to trust every line of it
//! without RocksDB.

pub mod hash;
/// The hash map of the ingest path's per-event bookkeeping, keyed by event
/// IDs, key IDs and workload and runtime names, and of a proof's tiles,
/// keyed by tile coordinates. It hashes with foldhash (hashbrown's default
/// hasher: a per-map random seed, several times faster than std's SipHash
/// on short keys, where SipHash was a percent of the server's time). The
/// ingest keys come from signed, authorised entries only; a proof's are
/// bounded by the tree's height and chosen by its request, each map living
/// for that one request.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

pub use hash::{EMPTY_ROOT, HASH_SIZE, Hash, leaf_hash, node_hash};
pub mod checkpoint;
pub mod cosignature;
pub mod dsse;
pub mod entry;
pub mod event;
pub mod governance;
pub mod keys;
pub mod note;
pub mod policy;
pub mod rules;
pub mod state;
#[cfg(feature = "store")]
pub mod store;
pub mod tile;
pub mod tlog_proof;
pub mod tree;
#[cfg(test)]
mod witness_fixture;
pub mod witness_protocol;

/// Height of a tlog-tiles tile: each tile holds one row of up to 256 hashes (C2SP tlog-tiles).
pub const TILE_HEIGHT: u8 = 8;
/// Number of hashes (or entries) in a full tile.
pub const TILE_WIDTH: u64 = 1 << TILE_HEIGHT;
