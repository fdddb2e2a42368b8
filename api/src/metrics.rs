//! Prometheus metrics (text exposition format), with `prometheus-client`:
//! the official client, no global registry, typed label sets.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Label of a rejection counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The problem code.
    pub code: String,
}

/// The ledger's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Entries appended.
    pub entries: Counter,
    /// Identical resubmissions answered with their original receipt.
    pub duplicates: Counter,
    /// Envelopes refused, by code.
    pub rejections: Family<CodeLabel, Counter>,
    /// Entries per committed batch.
    pub batch_entries: Histogram,
    /// Seconds per synced commit.
    pub commit_seconds: Histogram,
    /// Current tree size.
    pub tree_size: Gauge,
    /// Failed commits.
    pub commit_failures: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("lineage");
        let entries = Counter::default();
        let duplicates = Counter::default();
        let rejections = Family::<CodeLabel, Counter>::default();
        let batch_entries = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        let commit_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 14));
        let tree_size = Gauge::default();
        let commit_failures = Counter::default();
        registry.register("entries", "Entries appended", entries.clone());
        registry.register(
            "duplicates",
            "Identical resubmissions answered with their original receipt",
            duplicates.clone(),
        );
        registry.register(
            "rejections",
            "Envelopes refused, by problem code",
            rejections.clone(),
        );
        registry.register(
            "batch_entries",
            "Entries per committed batch",
            batch_entries.clone(),
        );
        registry.register(
            "commit_seconds",
            "Duration of a synced batch commit",
            commit_seconds.clone(),
        );
        registry.register("tree_size", "Current tree size", tree_size.clone());
        registry.register(
            "commit_failures",
            "Batch commits that failed",
            commit_failures.clone(),
        );
        Metrics {
            registry,
            entries,
            duplicates,
            rejections,
            batch_entries,
            commit_seconds,
            tree_size,
            commit_failures,
        }
    }

    /// Counts one rejection.
    pub fn reject(&self, code: &str) {
        self.rejections
            .get_or_create(&CodeLabel {
                code: code.to_owned(),
            })
            .inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
