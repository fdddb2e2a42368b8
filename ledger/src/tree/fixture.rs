//! The tree tests' shared fixture: the vectors' leaves, their tree in memory and in tiles
//! (built once), and the helpers every test file uses.

#![cfg(test)]

use std::fmt::Debug;
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use serde::Deserialize;

use super::{MemNodes, MemTiles, TreeEdge, plan_append, root};
use crate::hash::{Hash, leaf_hash};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/vectors/");

/// Number of leaves in the shared fixture: the largest vector size.
pub(super) const FIXTURE_SIZE: u64 = 65537;

/// Deterministic proptest settings: fixed seed, no regression files.
pub(super) fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        rng_seed: RngSeed::Fixed(0x006c_696e_6561_6765),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Leaf `i` of the vectors: the leaf hash of its ASCII decimal.
pub(super) fn leaf(i: u64) -> Hash {
    leaf_hash(i.to_string().as_bytes())
}

pub(super) fn b64(s: &str) -> Hash {
    Hash::from_base64(s).expect("vector hash is base64")
}

pub(super) fn read_vector(name: &str) -> Vec<u8> {
    std::fs::read(format!("{VECTORS}{name}")).expect("test vector readable")
}

pub(super) fn parse_vector<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_slice(&read_vector(name)).expect("test vector parses")
}

pub(super) struct Fixture {
    pub(super) leaves: Vec<Hash>,
    pub(super) mem: MemNodes,
    /// The tiles of the whole fixture tree, from a single `plan_append`.
    pub(super) tiles: MemTiles,
    pub(super) edge: TreeEdge,
}

pub(super) fn fixture() -> &'static Fixture {
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

pub(super) fn mem_root(size: u64) -> Hash {
    root(size, &fixture().mem).expect("fixture holds the tree")
}

pub(super) fn flip(h: &Hash, bit: usize) -> Hash {
    let mut bytes = h.to_bytes();
    if let Some(byte) = bytes.get_mut(bit / 8) {
        *byte ^= 1 << (bit % 8);
    }
    Hash::from_bytes(bytes)
}

/// The one assertion helper for tiny cases: `got` must equal `want`.
#[track_caller]
pub(super) fn check<T: PartialEq + Debug>(got: T, want: T) {
    assert_eq!(got, want);
}

#[derive(Deserialize)]
struct RootsFile {
    roots: Vec<RootVector>,
}

#[derive(Deserialize)]
struct RootVector {
    size: u64,
    root: String,
}

pub(super) fn vector_roots() -> Vec<(u64, Hash)> {
    let file: RootsFile = parse_vector("roots.json");
    file.roots.iter().map(|r| (r.size, b64(&r.root))).collect()
}

pub(super) fn any_size() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..200,
        any::<u64>(),
        (0u32..64).prop_map(|b| 1u64 << b),
        (1u32..64).prop_map(|b| (1u64 << b) - 1)
    ]
}
