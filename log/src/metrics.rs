//! Prometheus metrics (text exposition format), with `prometheus-client`:
//! the official client, no global registry, typed label sets.

use lineage_ledger::rules::{Candidate, Rejection};
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
    /// Envelopes refused, by code (exported).
    rejections: Family<CodeLabel, Counter>,
    /// The same counts, for readers in the process (the explorer): read
    /// directly, never rendered to text and parsed back.
    rejection_totals: std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    /// Entries per committed batch.
    pub batch_entries: Histogram,
    /// Seconds per sequencer batch: rules, tree, checkpoint and the synced write.
    pub commit_seconds: Histogram,
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
    pub governance_delivery_seconds: Histogram,
    /// Open governance streams (`GET /v1/governance/stream`).
    pub governance_subscribers: Gauge,
    /// Long-polls of the governance feed waiting for an entry.
    pub governance_waiting: Gauge,
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
        let batch_entries = Histogram::new(exponential_buckets(1.0, 2.0, 14));
        let commit_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 14));
        let store_write_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 14));
        let tree_size = Gauge::default();
        let commit_failures = Counter::default();
        let halts_active = Gauge::default();
        let halted_refusals = Counter::default();
        let governance_delivery_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 16));
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
            governance_delivery_seconds.clone(),
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
            batch_entries.clone(),
        );
        registry.register(
            "commit_seconds",
            "Duration of a sequencer batch: rules, tree, checkpoint and the synced write",
            commit_seconds.clone(),
        );
        registry.register(
            "store_write_seconds",
            "Duration of a batch's synced store write",
            store_write_seconds.clone(),
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
            store_write_seconds,
            tree_size,
            commit_failures,
            halts_active,
            halted_refusals,
            governance_delivery_seconds,
            governance_subscribers,
            governance_waiting,
            recent_rejections: RecentRejections::default(),
            rejection_totals: std::sync::Mutex::default(),
        }
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
