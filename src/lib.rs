//! The library half of the `lineage` binary: what its tests and benches
//! call directly. Everything else of the binary lives in `main.rs` and its
//! private modules.

pub mod export;
