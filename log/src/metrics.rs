//! Prometheus metrics (text exposition format), with `prometheus-client`:
//! the official client, no global registry, typed label sets.

use lineage_ledger::rules::{Candidate, Rejection};
use lineage_ledger::store::StoreMemory;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};

/// A Prometheus histogram that also keeps its bucket counts readable in the
/// process (the health ring samples them; `prometheus-client` exposes a
/// histogram's buckets only to its text encoder). Same `observe` as the
/// histogram, same buckets.
#[derive(Debug)]
pub struct Distribution {
    histogram: Histogram,
    bounds: Vec<f64>,
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    counts: Box<[AtomicU64]>,
    /// The sum of the values, as `f64` bits.
    sum: AtomicU64,
}

impl Distribution {
    /// A distribution over `bounds` (upper bounds, increasing).
    pub fn new(bounds: impl Iterator<Item = f64>) -> Distribution {
        let bounds: Vec<f64> = bounds.collect();
        let counts = (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect();
        Distribution {
            histogram: Histogram::new(bounds.iter().copied()),
            bounds,
            counts,
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Records one value.
    pub fn observe(&self, v: f64) {
        self.histogram.observe(v);
        let i = self
            .bounds
            .iter()
            .position(|b| v <= *b)
            .unwrap_or(self.bounds.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some((f64::from_bits(s) + v).to_bits())
            });
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Sum of the values recorded.
    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }

    /// The buckets' upper bounds (the `+Inf` bucket is implied).
    pub fn bounds(&self) -> &[f64] {
        &self.bounds
    }

    /// Observations per bucket so far, `+Inf` last (not cumulative).
    pub fn bucket_counts(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    fn histogram(&self) -> Histogram {
        self.histogram.clone()
    }
}

/// Label of a rejection counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    /// The problem code.
    pub code: String,
}

/// Label of a per-witness metric.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WitnessLabel {
    /// The witness's name in the policy.
    pub witness: String,
}

/// Label of the store's memory gauge: `block_cache`, `memtables` or
/// `table_readers`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MemoryLabel {
    /// What holds the memory.
    pub kind: &'static str,
}

/// The ledger's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Entries appended.
    pub entries: Counter,
    /// Identical resubmissions answered with their original receipt.
    pub duplicates: Counter,
    /// Envelopes refused, by code (exported).
    rejections: Family<CodeLabel, Counter>,
    /// The same counts, for readers in the process (the explorer): read
    /// directly, never rendered to text and parsed back.
    rejection_totals: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Entries per committed batch.
    pub batch_entries: Distribution,
    /// Seconds per sequencer batch: rules, tree, checkpoint and the synced write.
    pub commit_seconds: Distribution,
    /// Seconds of the synced store write alone.
    pub store_write_seconds: Histogram,
    /// Current tree size.
    pub tree_size: Gauge,
    /// Failed commits.
    pub commit_failures: Counter,
    /// Active halts.
    pub halts_active: Gauge,
    /// Events refused because a halt stops them.
    pub halted_refusals: Counter,
    /// Seconds from a governance entry's commit to its delivery to a
    /// stream or long-poll subscriber.
    pub governance_delivery_seconds: Distribution,
    /// Open governance streams (`GET /v1/governance/stream`).
    pub governance_subscribers: Gauge,
    /// Long-polls of the governance feed waiting for an entry.
    pub governance_waiting: Gauge,
    /// Requests answered `503 overloaded`: the sequencer queue was full, the
    /// in-flight cap was reached, or too many long-polls waited.
    pub overloaded: Counter,
    /// Open client connections (TCP, TLS included), counted by the accept
    /// loop that was given this gauge.
    pub connections: Gauge,
    /// Jobs waiting for the sequencer (set by the health sampler).
    pub queue_depth: Gauge,
    /// Resident memory of the process in bytes (set by the health sampler).
    pub resident_memory_bytes: Gauge,
    /// Bytes under the data directory (set by the health sampler, rarely).
    pub data_dir_bytes: Gauge,
    /// The store's memory by kind (set by the health sampler).
    store_memory_bytes: Family<MemoryLabel, Gauge>,
    /// Seconds since the latest checkpoint was signed (set by the health sampler).
    pub checkpoint_age_seconds: Gauge,
    /// Seconds since the log service started (set by the health sampler).
    pub uptime_seconds: Gauge,
    /// Size of the latest checkpoint that met the witness policy's quorum.
    pub witnessed_tree_size: Gauge,
    /// Witnessing rounds that published a cosigned checkpoint.
    pub witness_rounds_published: Counter,
    /// Witnessing rounds that missed the quorum (nothing published).
    pub witness_rounds_unmet: Counter,
    /// 1 while a witness cosigns, 0 while it fails, by witness.
    witness_up: Family<WitnessLabel, Gauge>,
    /// Unix milliseconds of the latest `503 overloaded` (0: never).
    last_overloaded_ms: AtomicU64,
    /// Unix milliseconds of the latest failed commit (0: never).
    last_commit_failure_ms: AtomicU64,
    /// The newest rejections of authenticated events, with their workload
    /// (for the explorer's workload timeline); not exported to Prometheus.
    pub recent_rejections: RecentRejections,
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
        let batch_entries = Distribution::new(exponential_buckets(1.0, 2.0, 14));
        let commit_seconds = Distribution::new(exponential_buckets(0.000_25, 2.0, 14));
        let store_write_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 14));
        let tree_size = Gauge::default();
        let commit_failures = Counter::default();
        let halts_active = Gauge::default();
        let halted_refusals = Counter::default();
        let governance_delivery_seconds = Distribution::new(exponential_buckets(0.000_25, 2.0, 16));
        let overloaded = Counter::default();
        let connections = Gauge::default();
        let queue_depth = Gauge::default();
        let resident_memory_bytes = Gauge::default();
        let data_dir_bytes = Gauge::default();
        let store_memory_bytes = Family::<MemoryLabel, Gauge>::default();
        let checkpoint_age_seconds = Gauge::default();
        let uptime_seconds = Gauge::default();
        registry.register(
            "overloaded",
            "Requests answered 503 overloaded (queue full, in-flight cap, long-poll cap)",
            overloaded.clone(),
        );
        registry.register(
            "connections",
            "Open client connections",
            connections.clone(),
        );
        registry.register(
            "queue_depth",
            "Requests waiting for the sequencer",
            queue_depth.clone(),
        );
        registry.register(
            "resident_memory_bytes",
            "Resident memory of the process",
            resident_memory_bytes.clone(),
        );
        registry.register(
            "store_memory_bytes",
            "Memory the store holds: block cache, memtables, table readers",
            store_memory_bytes.clone(),
        );
        registry.register(
            "data_dir_bytes",
            "Bytes under the data directory (sampled once a minute)",
            data_dir_bytes.clone(),
        );
        registry.register(
            "checkpoint_age_seconds",
            "Seconds since the latest checkpoint was signed",
            checkpoint_age_seconds.clone(),
        );
        registry.register(
            "uptime_seconds",
            "Seconds since the log service started",
            uptime_seconds.clone(),
        );
        let governance_subscribers = Gauge::default();
        let governance_waiting = Gauge::default();
        registry.register(
            "governance_subscribers",
            "Open governance streams",
            governance_subscribers.clone(),
        );
        registry.register(
            "governance_waiting",
            "Long-polls of the governance feed waiting for an entry",
            governance_waiting.clone(),
        );
        registry.register("halts_active", "Active halts", halts_active.clone());
        registry.register(
            "halted_refusals",
            "Events refused because a halt stops them",
            halted_refusals.clone(),
        );
        registry.register(
            "governance_delivery_seconds",
            "Delay from a governance entry's commit to its delivery on the stream or long-poll",
            governance_delivery_seconds.histogram(),
        );
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
            batch_entries.histogram(),
        );
        registry.register(
            "commit_seconds",
            "Duration of a sequencer batch: rules, tree, checkpoint and the synced write",
            commit_seconds.histogram(),
        );
        registry.register(
            "store_write_seconds",
            "Duration of a batch's synced store write",
            store_write_seconds.clone(),
        );
        registry.register("tree_size", "Current tree size", tree_size.clone());
        let witnessed_tree_size = Gauge::default();
        let witness_rounds_published = Counter::default();
        let witness_rounds_unmet = Counter::default();
        let witness_up = Family::<WitnessLabel, Gauge>::default();
        registry.register(
            "witnessed_tree_size",
            "Size of the latest checkpoint that met the witness policy's quorum",
            witnessed_tree_size.clone(),
        );
        registry.register(
            "witness_rounds_published",
            "Witnessing rounds that published a cosigned checkpoint",
            witness_rounds_published.clone(),
        );
        registry.register(
            "witness_rounds_unmet",
            "Witnessing rounds that missed the quorum and published nothing",
            witness_rounds_unmet.clone(),
        );
        registry.register(
            "witness_up",
            "1 while the witness cosigns the log's checkpoints, 0 while it fails",
            witness_up.clone(),
        );
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
            store_write_seconds,
            tree_size,
            commit_failures,
            halts_active,
            halted_refusals,
            governance_delivery_seconds,
            governance_subscribers,
            governance_waiting,
            overloaded,
            connections,
            queue_depth,
            resident_memory_bytes,
            data_dir_bytes,
            store_memory_bytes,
            checkpoint_age_seconds,
            uptime_seconds,
            witnessed_tree_size,
            witness_rounds_published,
            witness_rounds_unmet,
            witness_up,
            last_overloaded_ms: AtomicU64::new(0),
            last_commit_failure_ms: AtomicU64::new(0),
            recent_rejections: RecentRejections::default(),
            rejection_totals: std::sync::Mutex::default(),
        }
    }

    /// Records what the store holds in memory.
    pub fn store_memory(&self, m: &StoreMemory) {
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for (kind, bytes) in [
            ("block_cache", m.block_cache),
            ("memtables", m.memtables),
            ("table_readers", m.table_readers),
        ] {
            self.store_memory_bytes
                .get_or_create(&MemoryLabel { kind })
                .set(gauge(bytes));
        }
    }

    /// Records whether `witness` cosigned in the latest round.
    pub fn witness_up(&self, witness: &str, up: bool) {
        self.witness_up
            .get_or_create(&WitnessLabel {
                witness: witness.to_owned(),
            })
            .set(i64::from(up));
    }

    /// Counts one rejection.
    pub fn reject(&self, code: &'static str) {
        if code == "halted" {
            self.halted_refusals.inc();
        }
        self.rejections
            .get_or_create(&CodeLabel {
                code: code.to_owned(),
            })
            .inc();
        *self
            .rejection_totals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(code)
            .or_insert(0) += 1;
    }

    /// Counts one `503 overloaded` answer, at `at_ms` (Unix milliseconds).
    pub fn note_overloaded(&self, at_ms: u64) {
        self.overloaded.inc();
        // The latest noted, not the largest: one noted before the clock
        // stepped back must not hide those after it.
        self.last_overloaded_ms.store(at_ms, Ordering::Relaxed);
    }

    /// Counts one failed commit, at `at_ms` (Unix milliseconds).
    pub fn note_commit_failure(&self, at_ms: u64) {
        self.commit_failures.inc();
        // The latest noted, not the largest: one noted before the clock
        // stepped back must not hide those after it.
        self.last_commit_failure_ms.store(at_ms, Ordering::Relaxed);
    }

    /// When load was last shed (`503 overloaded`), Unix milliseconds.
    pub fn last_overloaded_ms(&self) -> Option<u64> {
        Some(self.last_overloaded_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// When a commit last failed, Unix milliseconds.
    pub fn last_commit_failure_ms(&self) -> Option<u64> {
        Some(self.last_commit_failure_ms.load(Ordering::Relaxed)).filter(|t| *t > 0)
    }

    /// The registry holding every metric, for an exposition endpoint.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

/// Rejections remembered by [`RecentRejections`].
pub const RECENT_REJECTIONS: usize = 1024;

/// One rejected event whose signature verified, recorded under its sender:
/// the runtime of the key that signed it. It is attributed to a workload
/// only when the refusal came after the workload-owner check, i.e. the
/// workload is the sender's own (or new): a refusal never lands on another
/// runtime's workload page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecentRejection {
    /// When the sequencer decided, Unix milliseconds.
    pub at_ms: u64,
    /// The stable problem code.
    pub code: &'static str,
    /// The sender's workload named by the payload; `None` when the refusal
    /// came before ownership was established (revoked key, bad payload,
    /// runtime mismatch).
    pub workload: Option<String>,
    /// The sender: the runtime of the signing key.
    pub runtime: String,
    /// The `seq` named by the payload, if it had one.
    pub seq: Option<u64>,
    /// The rule's explanation (the `detail` the submitter received).
    pub detail: String,
}

/// A bounded ring of the newest [`RecentRejection`]s, since the process started.
#[derive(Debug, Default)]
pub struct RecentRejections {
    ring: std::sync::Mutex<std::collections::VecDeque<RecentRejection>>,
}

impl RecentRejections {
    /// Remembers refused envelopes (each with the rule that refused it);
    /// `sender` names the runtime of a key. Envelopes refused before their
    /// signature was known good (unknown key, bad signature) are not
    /// recorded: their sender is unknown.
    pub fn note<'a>(
        &self,
        refused: impl IntoIterator<Item = (&'a Candidate, &'a Rejection)>,
        at_ms: u64,
        sender: impl Fn(&lineage_ledger::keys::KeyId) -> Option<String>,
    ) {
        use lineage_ledger::dsse::PayloadType;
        #[derive(serde::Deserialize)]
        struct Claim {
            workload: Option<String>,
            seq: Option<u64>,
        }
        for (c, r) in refused {
            if c.envelope().payload_type != PayloadType::Event {
                continue;
            }
            // Is the named workload the sender's own (checked by the rules)?
            let owned = match r {
                Rejection::UnknownKey { .. }
                | Rejection::BadSignature { .. }
                | Rejection::InvalidEnvelope(_)
                | Rejection::PayloadTooLarge { .. } => continue,
                Rejection::RevokedKey { .. }
                | Rejection::KeyNotYetValid { .. }
                | Rejection::KeyExpired { .. }
                | Rejection::InvalidPayload(_)
                | Rejection::RuntimeMismatch { .. }
                | Rejection::KeyConflict { .. }
                | Rejection::GovernanceConflict { .. } => false,
                Rejection::OutOfScope { .. }
                | Rejection::WorkloadClosed { .. }
                | Rejection::Halted { .. }
                | Rejection::ClockSkew { .. }
                | Rejection::DuplicateEvent { .. }
                | Rejection::Equivocation { .. }
                | Rejection::SequenceGap { .. }
                | Rejection::PrevMismatch { .. }
                | Rejection::UnknownParent { .. } => true,
            };
            let Some(runtime) = sender(&c.envelope().key_id) else {
                continue;
            };
            let claim = serde_json::from_slice::<Claim>(&c.envelope().payload).ok();
            let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
            if ring.len() >= RECENT_REJECTIONS {
                ring.pop_front();
            }
            ring.push_back(RecentRejection {
                at_ms,
                code: r.code(),
                workload: claim
                    .as_ref()
                    .and_then(|c| c.workload.clone())
                    .filter(|_| owned),
                runtime,
                seq: claim.and_then(|c| c.seq).filter(|_| owned),
                detail: r.to_string(),
            });
        }
    }

    /// The newest rejections first, of one workload or of all, at most `limit`.
    pub fn newest(&self, workload: Option<&str>, limit: usize) -> Vec<RecentRejection> {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter()
            .rev()
            .filter(|r| workload.is_none_or(|w| r.workload.as_deref() == Some(w)))
            .take(limit)
            .cloned()
            .collect()
    }
}

impl Metrics {
    /// The rejection counters by code (every code counted so far, largest
    /// first).
    pub fn rejection_counts(&self) -> Vec<(String, u64)> {
        let totals = self
            .rejection_totals
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<(String, u64)> = totals
            .iter()
            .map(|(code, n)| ((*code).to_owned(), *n))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

#[cfg(test)]
mod explorer_tests {
    use super::*;

    #[test]
    fn rejection_counts_read_back_every_code() {
        let m = Metrics::new();
        assert!(m.rejection_counts().is_empty());
        m.reject("sequence_gap");
        m.reject("sequence_gap");
        m.reject("bad_signature");
        assert_eq!(
            m.rejection_counts(),
            vec![
                ("sequence_gap".to_owned(), 2),
                ("bad_signature".to_owned(), 1)
            ]
        );
    }
}
