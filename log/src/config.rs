//! The log service's tunables, with their defaults defined once.

use std::time::Duration;

/// Tunables of the log service. Defaults are in [`LogConfig::default`].
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// The log's origin: checkpoint first line and log key name.
    pub origin: String,
    /// Largest allowed distance between an event's `at` and the ledger clock.
    pub max_skew: time::Duration,
    /// Most entries per sequencer batch (one synced write).
    pub batch_max_entries: usize,
    /// How long the sequencer waits for more work after the first job of a
    /// batch. Zero by default: group commit needs no wait, because requests
    /// queue while the previous batch is being written and synced.
    pub batch_linger: Duration,
    /// Requests that may wait for the sequencer; beyond it ingest answers 503 `overloaded`.
    pub queue_depth: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            origin: "lineage.local/log".into(),
            max_skew: time::Duration::minutes(5),
            batch_max_entries: 4096,
            batch_linger: Duration::ZERO,
            queue_depth: 4096,
        }
    }
}
