//! How the store fails: [`StoreError`], and the [`Fault`] a [`MemStore`] injects on purpose
//! (here rather than in `mem.rs` because [`StoreError::Injected`] reports it).
//!
//! It imports nothing of the store, so the codec and the `Store` trait can both use it.
//!
//! [`MemStore`]: super::MemStore

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database (RocksDB) reported an error.
    #[cfg(feature = "rocksdb")]
    #[error("database error: {0}")]
    Database(#[from] rocksdb::Error),
    /// A stored value does not decode: the data directory is damaged or foreign.
    #[error("corrupt {what} record at key {key}")]
    Corrupt {
        /// The kind of record.
        what: &'static str,
        /// The key, hex-encoded.
        key: String,
    },
    /// A commit did not start at the store's current size (a lost race or a stale caller).
    #[error("commit starts at index {first_index} but the log has {size} entries")]
    Conflict {
        /// The batch's first index.
        first_index: u64,
        /// The store's size.
        size: u64,
    },
    /// The store was already initialised.
    #[error("the store is already initialised")]
    AlreadyInitialized,
    /// The flat copy of the leaf tiles (`lineage-leaf-tiles`, the store's only file
    /// besides the database's) could not be read or written.
    #[error("the flat copy of the leaf tiles: {0}")]
    LeafTiles(#[from] std::io::Error),
    /// A fault injected by a test.
    #[error("injected fault: {0:?}")]
    Injected(Fault),
    /// The data directory belongs to another log or another format.
    #[error(
        "the data directory holds {field} {stored:?}, but this ledger is configured with {configured:?}"
    )]
    MetaMismatch {
        /// Which property differs.
        field: &'static str,
        /// What the store holds.
        stored: String,
        /// What the configuration says.
        configured: String,
    },
}

/// A fault to inject into the next commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The write fails and nothing is applied.
    LoseWrite,
    /// The write is applied, but the store reports a failure (as a failed sync can).
    ApplyThenFail,
}
