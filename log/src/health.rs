//! The ledger's recent health: a bounded time series of its own metrics
//! ([`Ring`]), the figures derived from it ([`Figures`], [`Ring::series`]),
//! and whether the ledger is degraded right now ([`Status`]).
//!
//! Samples are read from the [`Metrics`] values directly (counters, gauges
//! and the bucket counts of [`crate::metrics::Distribution`]), never from
//! the Prometheus text. The ring's memory is fixed whatever the uptime: one
//! sample per second for the last [`FINE_CAPACITY`] seconds and one per
//! minute for the last [`COARSE_CAPACITY`] minutes; older samples are
//! dropped as new ones arrive.
//!
//! Who samples: `LogService::sample_health` reads one sample at the log's
//! clock (tests call it directly, with a frozen clock), and
//! `LogService::spawn_health_sampler` calls it once a second.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::metrics::Metrics;

/// Samples kept at one per second: ten minutes.
pub const FINE_CAPACITY: usize = 600;
/// Samples kept at one per minute: twenty-four hours.
pub const COARSE_CAPACITY: usize = 1440;
/// Spacing of the coarse samples.
pub const COARSE_STEP_MS: u64 = 60_000;
/// How long a failed commit keeps the ledger degraded: a store that fails
/// again and again keeps `/readyz` at 503 instead of flapping between its
/// failures and the reloads after them.
pub const COMMIT_FAILURE_WINDOW_MS: u64 = 30_000;
/// How long a shed request (`503 overloaded`) keeps the ledger degraded:
/// short, so that a load balancer sends traffic elsewhere for a moment and
/// then tries again.
pub const OVERLOAD_WINDOW_MS: u64 = 10_000;

/// One reading of the ledger's metrics. Counters are cumulative since the
/// process started; rates come from the difference of two samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// When it was taken, Unix milliseconds (the log's clock).
    pub at_ms: u64,
    /// Entries appended.
    pub entries: u64,
    /// Rejections by code, cumulative, in code order.
    pub rejections: Vec<(String, u64)>,
    /// `503 overloaded` answers.
    pub overloaded: u64,
    /// Failed commits.
    pub commit_failures: u64,
    /// Sequencer batches per bucket of `commit_seconds` (not cumulative
    /// over buckets), `+Inf` last.
    pub commit_seconds: Vec<u64>,
    /// Batches per bucket of `batch_entries`.
    pub batch_entries: Vec<u64>,
    /// Sum of `batch_entries` (entries committed in batches).
    pub batch_entries_sum: f64,
    /// Deliveries per bucket of `governance_delivery_seconds`.
    pub delivery_seconds: Vec<u64>,
    /// Jobs waiting for the sequencer.
    pub queue_depth: u64,
    /// Tree size of the latest checkpoint.
    pub tree_size: u64,
    /// When the latest checkpoint was signed, Unix milliseconds.
    pub checkpoint_ms: u64,
    /// Open governance streams.
    pub subscribers: u64,
    /// Open client connections.
    pub connections: u64,
    /// Resident memory, bytes (`None` where `/proc` is not available).
    pub rss_bytes: Option<u64>,
    /// Bytes under the data directory (sampled rarely; the last known
    /// value is carried forward).
    pub disk_bytes: Option<u64>,
}

impl Sample {
    /// Reads the metrics at `at_ms`; what the metrics do not hold (the
    /// head, the queue, the process) is passed in.
    pub fn read(metrics: &Metrics, at_ms: u64, world: World) -> Sample {
        Sample {
            at_ms,
            entries: metrics.entries.get(),
            rejections: {
                let mut r = metrics.rejection_counts();
                r.sort();
                r
            },
            overloaded: metrics.overloaded.get(),
            commit_failures: metrics.commit_failures.get(),
            commit_seconds: metrics.commit_seconds.bucket_counts(),
            batch_entries: metrics.batch_entries.bucket_counts(),
            batch_entries_sum: metrics.batch_entries.sum(),
            delivery_seconds: metrics.governance_delivery_seconds.bucket_counts(),
            queue_depth: world.queue_depth,
            tree_size: world.tree_size,
            checkpoint_ms: world.checkpoint_ms,
            subscribers: gauge(metrics.governance_subscribers.get()),
            connections: gauge(metrics.connections.get()),
            rss_bytes: world.rss_bytes,
            disk_bytes: world.disk_bytes,
        }
    }

    fn rejected(&self, code: &str) -> u64 {
        self.rejections
            .iter()
            .find(|(c, _)| c == code)
            .map_or(0, |(_, n)| *n)
    }

    fn rejected_total(&self) -> u64 {
        self.rejections.iter().map(|(_, n)| n).sum()
    }
}

fn gauge(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// What a sample needs from outside the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct World {
    /// Jobs waiting for the sequencer.
    pub queue_depth: u64,
    /// Tree size of the latest checkpoint.
    pub tree_size: u64,
    /// When the latest checkpoint was signed, Unix milliseconds.
    pub checkpoint_ms: u64,
    /// Resident memory, bytes.
    pub rss_bytes: Option<u64>,
    /// Bytes under the data directory, when measured this time.
    pub disk_bytes: Option<u64>,
}

/// The bounded time series: two rings of [`Sample`]s.
#[derive(Debug, Default)]
pub struct Ring {
    fine: VecDeque<Sample>,
    coarse: VecDeque<Sample>,
}

/// Which ring a series reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// One sample a second, ten minutes.
    Fine,
    /// One sample a minute, a day.
    Coarse,
}

impl Ring {
    /// Adds a sample. A sample within the same second as the newest one
    /// replaces it; one older than the newest is ignored (the clock went
    /// back). A missing `disk_bytes` carries the previous value forward.
    pub fn push(&mut self, mut s: Sample) {
        if let Some(last) = self.fine.back() {
            if s.at_ms < last.at_ms {
                return;
            }
            if s.disk_bytes.is_none() {
                s.disk_bytes = last.disk_bytes;
            }
            if s.at_ms / 1000 == last.at_ms / 1000 {
                self.fine.pop_back();
            }
        }
        if self.fine.len() >= FINE_CAPACITY {
            self.fine.pop_front();
        }
        let new_minute = self
            .coarse
            .back()
            .is_none_or(|c| s.at_ms / COARSE_STEP_MS > c.at_ms / COARSE_STEP_MS);
        if new_minute {
            if self.coarse.len() >= COARSE_CAPACITY {
                self.coarse.pop_front();
            }
            self.coarse.push_back(s.clone());
        }
        self.fine.push_back(s);
    }

    /// Samples held: (per second, per minute). Never more than
    /// ([`FINE_CAPACITY`], [`COARSE_CAPACITY`]).
    pub fn len(&self) -> (usize, usize) {
        (self.fine.len(), self.coarse.len())
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.fine.is_empty()
    }

    /// The newest sample.
    pub fn latest(&self) -> Option<&Sample> {
        self.fine.back()
    }

    fn tier(&self, r: Resolution) -> &VecDeque<Sample> {
        match r {
            Resolution::Fine => &self.fine,
            Resolution::Coarse => &self.coarse,
        }
    }

    /// The newest sample of `r` taken at or before `t_ms`.
    fn at_or_before(&self, r: Resolution, t_ms: u64) -> Option<&Sample> {
        let tier = self.tier(r);
        let n = tier.partition_point(|s| s.at_ms <= t_ms);
        n.checked_sub(1).and_then(|i| tier.get(i))
    }

    /// The sample to measure the last `span_ms` against: the newest taken
    /// at least `span_ms` before the latest, else the oldest held (a
    /// shorter span, right after start). Reads the fine ring when it
    /// reaches back far enough, else the coarse one.
    fn baseline(&self, span_ms: u64) -> Option<&Sample> {
        let latest = self.latest()?;
        let from = latest.at_ms.saturating_sub(span_ms);
        let r = match self.fine.front() {
            Some(f) if f.at_ms <= from => Resolution::Fine,
            _ => Resolution::Coarse,
        };
        self.at_or_before(r, from)
            .or_else(|| self.tier(r).front())
            .filter(|b| b.at_ms < latest.at_ms)
    }

    /// The figures over the last minute and hour, at the latest sample.
    pub fn figures(&self, bounds: &Bounds) -> Option<Figures> {
        let now = self.latest()?;
        let minute = self.baseline(60_000);
        let hour = self.baseline(3_600_000);
        let rate = |b: Option<&Sample>| {
            b.map(|b| {
                per_second(
                    now.entries - b.entries.min(now.entries),
                    now.at_ms - b.at_ms,
                )
            })
        };
        let commits = minute.map(|b| diff(&now.commit_seconds, &b.commit_seconds));
        let batches = minute.map(|b| diff(&now.batch_entries, &b.batch_entries));
        let batch_count: u64 = batches.as_ref().map_or(0, |b| b.iter().sum());
        let mut codes: Vec<String> = now.rejections.iter().map(|(c, _)| c.clone()).collect();
        codes.sort();
        let rejections = codes
            .into_iter()
            .map(|code| {
                let total = now.rejected(&code);
                RejectionFigure {
                    minute: total - minute.map_or(0, |b| b.rejected(&code).min(total)),
                    hour: total - hour.map_or(0, |b| b.rejected(&code).min(total)),
                    total,
                    code,
                }
            })
            .collect();
        let delivery = diff(&now.delivery_seconds, &vec![0; now.delivery_seconds.len()]);
        Some(Figures {
            at_ms: now.at_ms,
            ingest_minute: rate(minute),
            ingest_hour: rate(hour),
            commits_minute: commits.as_ref().map_or(0, |c| c.iter().sum()),
            commit_p50: commits
                .as_ref()
                .and_then(|c| quantile(c, &bounds.commit_seconds, 0.5)),
            commit_p90: commits
                .as_ref()
                .and_then(|c| quantile(c, &bounds.commit_seconds, 0.9)),
            commit_p99: commits
                .as_ref()
                .and_then(|c| quantile(c, &bounds.commit_seconds, 0.99)),
            batches_minute: batch_count,
            batch_mean: minute.and_then(|b| {
                (batch_count > 0)
                    .then(|| (now.batch_entries_sum - b.batch_entries_sum) / batch_count as f64)
            }),
            batch_p99: batches
                .as_ref()
                .and_then(|c| quantile(c, &bounds.batch_entries, 0.99)),
            queue_depth: now.queue_depth,
            rejections,
            rejected_minute: now.rejected_total()
                - minute.map_or(0, |b| b.rejected_total().min(now.rejected_total())),
            tree_size: now.tree_size,
            checkpoint_age_ms: now.at_ms.saturating_sub(now.checkpoint_ms),
            disk_bytes: now.disk_bytes,
            bytes_per_entry: now
                .disk_bytes
                .filter(|_| now.tree_size > 0)
                .map(|d| d as f64 / now.tree_size as f64),
            subscribers: now.subscribers,
            deliveries: delivery.iter().sum(),
            delivery_p50: quantile(&delivery, &bounds.delivery_seconds, 0.5),
            delivery_p99: quantile(&delivery, &bounds.delivery_seconds, 0.99),
            rss_bytes: now.rss_bytes,
            connections: now.connections,
            overloaded: now.overloaded,
            commit_failures: now.commit_failures,
        })
    }

    /// `points` values, one per `step_ms`, ending at the latest sample:
    /// each is `metric` over the samples at the step's two ends (the
    /// newest sample at or before each end); `None` where the ring holds
    /// no such pair (before the first sample, or older than it keeps).
    pub fn series(
        &self,
        r: Resolution,
        step_ms: u64,
        points: usize,
        metric: impl Fn(&Sample, &Sample) -> Option<f64>,
    ) -> Vec<Option<f64>> {
        let Some(end) = self.latest().map(|s| s.at_ms) else {
            return vec![None; points];
        };
        (0..points)
            .map(|k| {
                let back = (points - 1 - k) as u64 * step_ms;
                let t = end.checked_sub(back)?;
                let to = self.at_or_before(r, t)?;
                let from = self.at_or_before(r, t.checked_sub(step_ms)?)?;
                // A step without a sample of its own has no value.
                if to.at_ms + step_ms <= t || to.at_ms <= from.at_ms {
                    return None;
                }
                metric(from, to)
            })
            .collect()
    }
}

/// Per-second rate of `delta` over `ms`.
fn per_second(delta: u64, ms: u64) -> f64 {
    if ms == 0 {
        0.0
    } else {
        delta as f64 * 1000.0 / ms as f64
    }
}

/// Bucket counts of `now` minus those of `before` (a reset counts as zero).
fn diff(now: &[u64], before: &[u64]) -> Vec<u64> {
    now.iter()
        .enumerate()
        .map(|(i, n)| n.saturating_sub(before.get(i).copied().unwrap_or(0)))
        .collect()
}

/// The `q`-quantile of bucketed observations, interpolated linearly within
/// its bucket as Prometheus' `histogram_quantile` does (the first bucket
/// starts at 0; a quantile in the `+Inf` bucket is the largest bound).
/// `None` without observations.
pub fn quantile(counts: &[u64], bounds: &[f64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut below = 0u64;
    for (i, c) in counts.iter().enumerate() {
        if *c > 0 && (below + c) as f64 >= rank {
            let Some(upper) = bounds.get(i) else {
                return bounds.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { bounds[i - 1] };
            return Some(lower + (upper - lower) * ((rank - below as f64) / *c as f64).max(0.0));
        }
        below += c;
    }
    bounds.last().copied()
}

/// Per-second rate of a counter between two samples.
pub fn rate(from: &Sample, to: &Sample, counter: impl Fn(&Sample) -> u64) -> Option<f64> {
    let (a, b) = (counter(from), counter(to));
    (b >= a).then(|| per_second(b - a, to.at_ms - from.at_ms))
}

/// The `q`-quantile of a distribution's observations between two samples.
pub fn quantile_between(
    from: &Sample,
    to: &Sample,
    buckets: impl Fn(&Sample) -> &[u64],
    bounds: &[f64],
    q: f64,
) -> Option<f64> {
    quantile(&diff(buckets(to), buckets(from)), bounds, q)
}

/// The bucket bounds of the sampled distributions (from [`Metrics`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Bounds {
    /// `commit_seconds`.
    pub commit_seconds: Vec<f64>,
    /// `batch_entries`.
    pub batch_entries: Vec<f64>,
    /// `governance_delivery_seconds`.
    pub delivery_seconds: Vec<f64>,
}

impl Bounds {
    /// The bounds the metrics use.
    pub fn of(metrics: &Metrics) -> Bounds {
        Bounds {
            commit_seconds: metrics.commit_seconds.bounds().to_vec(),
            batch_entries: metrics.batch_entries.bounds().to_vec(),
            delivery_seconds: metrics.governance_delivery_seconds.bounds().to_vec(),
        }
    }
}

/// One rejection code's counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectionFigure {
    /// The stable problem code.
    pub code: String,
    /// In the last minute.
    pub minute: u64,
    /// In the last hour (or since the ring's oldest sample).
    pub hour: u64,
    /// Since the process started.
    pub total: u64,
}

/// The health figures at one sample. "Last minute" and "last hour" are
/// measured against the ring's samples, so right after start they cover
/// the time since the first sample.
#[derive(Clone, Debug, PartialEq)]
pub struct Figures {
    /// When, Unix milliseconds.
    pub at_ms: u64,
    /// Entries per second over the last minute (`None` with one sample).
    pub ingest_minute: Option<f64>,
    /// Entries per second over the last hour.
    pub ingest_hour: Option<f64>,
    /// Sequencer batches in the last minute.
    pub commits_minute: u64,
    /// Median batch duration in the last minute, seconds.
    pub commit_p50: Option<f64>,
    /// 90th percentile.
    pub commit_p90: Option<f64>,
    /// 99th percentile.
    pub commit_p99: Option<f64>,
    /// Batches that committed entries in the last minute.
    pub batches_minute: u64,
    /// Mean entries per batch in the last minute.
    pub batch_mean: Option<f64>,
    /// 99th percentile of entries per batch in the last minute.
    pub batch_p99: Option<f64>,
    /// Jobs waiting for the sequencer.
    pub queue_depth: u64,
    /// Rejections by code.
    pub rejections: Vec<RejectionFigure>,
    /// Rejections of any code in the last minute.
    pub rejected_minute: u64,
    /// Tree size.
    pub tree_size: u64,
    /// Age of the latest checkpoint, milliseconds.
    pub checkpoint_age_ms: u64,
    /// Bytes under the data directory.
    pub disk_bytes: Option<u64>,
    /// `disk_bytes` / `tree_size`.
    pub bytes_per_entry: Option<f64>,
    /// Open governance streams.
    pub subscribers: u64,
    /// Governance deliveries since start.
    pub deliveries: u64,
    /// Median delivery delay since start, seconds.
    pub delivery_p50: Option<f64>,
    /// 99th percentile delivery delay since start, seconds.
    pub delivery_p99: Option<f64>,
    /// Resident memory, bytes.
    pub rss_bytes: Option<u64>,
    /// Open client connections.
    pub connections: u64,
    /// `503 overloaded` answers since start.
    pub overloaded: u64,
    /// Failed commits since start.
    pub commit_failures: u64,
}

/// Why the ledger is degraded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Degradation {
    /// A commit failed and the sequencer has not reloaded its state from
    /// the store yet (it does before the next batch).
    StoreRecovering,
    /// A commit failed within [`COMMIT_FAILURE_WINDOW_MS`], `ago_ms` ago.
    CommitFailed {
        /// Milliseconds since.
        ago_ms: u64,
    },
    /// A request was answered `503 overloaded` within [`OVERLOAD_WINDOW_MS`].
    Overloaded {
        /// Milliseconds since.
        ago_ms: u64,
    },
}

impl Degradation {
    /// A stable short code (`/readyz`, the health JSON).
    pub fn code(&self) -> &'static str {
        match self {
            Degradation::StoreRecovering => "store_recovering",
            Degradation::CommitFailed { .. } => "commit_failed",
            Degradation::Overloaded { .. } => "overloaded",
        }
    }
}

impl std::fmt::Display for Degradation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Degradation::StoreRecovering => {
                f.write_str("the store failed a commit; state is being reloaded from it")
            }
            Degradation::CommitFailed { ago_ms } => {
                write!(f, "a commit failed {} s ago", ago_ms / 1000)
            }
            Degradation::Overloaded { ago_ms } => write!(
                f,
                "requests were shed with 503 overloaded {} s ago",
                ago_ms / 1000
            ),
        }
    }
}

/// Whether the ledger is degraded: every reason that holds now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Empty when healthy.
    pub reasons: Vec<Degradation>,
}

impl Status {
    /// Decides from the sequencer's `healthy` flag and the metrics' latest
    /// failure times, at `now_ms`: degraded while the store is recovering,
    /// for [`COMMIT_FAILURE_WINDOW_MS`] after a failed commit and for
    /// [`OVERLOAD_WINDOW_MS`] after a shed request.
    pub fn of(healthy: bool, metrics: &Metrics, now_ms: u64) -> Status {
        let mut reasons = Vec::new();
        if !healthy {
            reasons.push(Degradation::StoreRecovering);
        }
        // Within the window on either side of now: a time ahead of now was
        // noted before the clock stepped back, and counts only as long as
        // one just behind would (else a clock set right after running a
        // day ahead would hold the ledger degraded for that day).
        let recent = |t: Option<u64>, window: u64| {
            t.filter(|t| now_ms.abs_diff(*t) < window)
                .map(|t| now_ms.saturating_sub(t))
        };
        if let Some(ago_ms) = recent(metrics.last_commit_failure_ms(), COMMIT_FAILURE_WINDOW_MS) {
            reasons.push(Degradation::CommitFailed { ago_ms });
        }
        if let Some(ago_ms) = recent(metrics.last_overloaded_ms(), OVERLOAD_WINDOW_MS) {
            reasons.push(Degradation::Overloaded { ago_ms });
        }
        Status { reasons }
    }

    /// True when any reason holds.
    pub fn is_degraded(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// The ring and when the log started, shared by the sampler and readers.
#[derive(Debug)]
pub struct Health {
    ring: Mutex<Ring>,
    started_ms: u64,
}

impl Health {
    /// An empty ring for a log started at `started_ms`.
    pub fn new(started_ms: u64) -> Health {
        Health {
            ring: Mutex::new(Ring::default()),
            started_ms,
        }
    }

    /// When the log service started, Unix milliseconds.
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// Adds a sample.
    pub fn record(&self, s: Sample) {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).push(s);
    }

    /// Reads the ring under its lock.
    pub fn with_ring<T>(&self, f: impl FnOnce(&Ring) -> T) -> T {
        f(&self.ring.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Resident memory of this process from `/proc/self/status` (`VmRSS`);
/// `None` elsewhere.
pub fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Bytes of the regular files under `dir` (not following symlinks);
/// unreadable entries count as zero.
pub fn directory_bytes(dir: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.path()),
                Ok(t) if t.is_file() => total += e.metadata().map_or(0, |m| m.len()),
                _ => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_s: u64, entries: u64) -> Sample {
        Sample {
            at_ms: 1_700_000_000_000 + at_s * 1000,
            entries,
            ..Sample::default()
        }
    }

    #[test]
    fn the_ring_keeps_fixed_memory_however_long_it_runs() {
        let mut ring = Ring::default();
        // Three days of one sample a second.
        for s in 0..3 * 86_400 {
            ring.push(sample(s, s));
        }
        assert_eq!(ring.len(), (FINE_CAPACITY, COARSE_CAPACITY));
        assert_eq!(ring.latest().map(|s| s.entries), Some(3 * 86_400 - 1));
        // The coarse ring still spans a day, the fine one ten minutes.
        assert_eq!(
            ring.fine.back().map(|s| s.at_ms).unwrap_or(0)
                - ring.fine.front().map(|s| s.at_ms).unwrap_or(0),
            (FINE_CAPACITY as u64 - 1) * 1000
        );
        assert_eq!(
            ring.coarse.back().map(|s| s.at_ms).unwrap_or(0)
                - ring.coarse.front().map(|s| s.at_ms).unwrap_or(0),
            (COARSE_CAPACITY as u64 - 1) * COARSE_STEP_MS
        );
    }

    #[test]
    fn a_sample_in_the_same_second_replaces_the_newest_and_an_older_one_is_ignored() {
        let mut ring = Ring::default();
        ring.push(sample(10, 1));
        ring.push(Sample {
            at_ms: sample(10, 0).at_ms + 500,
            entries: 2,
            ..Sample::default()
        });
        ring.push(sample(5, 99));
        assert_eq!(ring.len(), (1, 1));
        assert_eq!(ring.latest().map(|s| s.entries), Some(2));
    }

    #[test]
    fn rates_cover_the_last_minute_and_the_last_hour() {
        let mut ring = Ring::default();
        // 2 entries/s for an hour, then 10/s for the last two minutes.
        let mut entries = 0;
        for s in 0..=3720 {
            entries += if s > 3600 { 10 } else { 2 };
            ring.push(sample(s, entries));
        }
        let f = ring.figures(&Bounds::of(&Metrics::new())).expect("figures");
        assert_eq!(f.ingest_minute, Some(10.0));
        let hour = f.ingest_hour.expect("hour");
        assert!(hour > 2.0 && hour < 3.0, "{hour}");
    }

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let bounds = [1.0, 2.0, 4.0];
        assert_eq!(quantile(&[0, 0, 0, 0], &bounds, 0.5), None);
        assert_eq!(quantile(&[10, 0, 0, 0], &bounds, 0.5), Some(0.5));
        assert_eq!(quantile(&[0, 10, 0, 0], &bounds, 1.0), Some(2.0));
        assert_eq!(quantile(&[0, 0, 10, 0], &bounds, 0.5), Some(3.0));
        // Beyond the largest bound: the largest bound.
        assert_eq!(quantile(&[0, 0, 0, 3], &bounds, 0.99), Some(4.0));
    }

    #[test]
    fn commit_latency_comes_from_the_distribution_buckets() {
        let m = Metrics::new();
        let mut ring = Ring::default();
        ring.push(Sample::read(&m, 1_000, World::default()));
        for _ in 0..99 {
            m.commit_seconds.observe(0.0002);
        }
        m.commit_seconds.observe(1.5);
        m.batch_entries.observe(3.0);
        m.reject("sequence_gap");
        ring.push(Sample::read(&m, 2_000, World::default()));
        let f = ring.figures(&Bounds::of(&m)).expect("figures");
        assert_eq!(f.commits_minute, 100);
        assert!(f.commit_p50.is_some_and(|p| p <= 0.000_25), "{f:?}");
        assert!(f.commit_p99.is_some_and(|p| p <= 0.000_25), "{f:?}");
        assert_eq!(f.batch_mean, Some(3.0));
        assert_eq!(f.rejected_minute, 1);
        assert_eq!(
            f.rejections,
            vec![RejectionFigure {
                code: "sequence_gap".into(),
                minute: 1,
                hour: 1,
                total: 1
            }]
        );
    }

    #[test]
    fn series_have_one_point_per_step_and_none_where_nothing_was_sampled() {
        let mut ring = Ring::default();
        for s in 0..10 {
            ring.push(sample(s, s * 4));
        }
        let v = ring.series(Resolution::Fine, 1000, 12, |a, b| rate(a, b, |s| s.entries));
        assert_eq!(v.len(), 12);
        assert_eq!(&v[..3], &[None, None, None]);
        assert!(v[3..].iter().all(|x| *x == Some(4.0)), "{v:?}");
    }

    #[test]
    fn a_clock_that_stepped_back_does_not_keep_the_ledger_degraded() {
        // An overload and a failed commit noted while the clock ran a day
        // ahead, then the clock is set right: neither holds /readyz at 503
        // for the day, and a new overload after that still counts.
        let m = Metrics::new();
        let day = 86_400_000;
        m.note_overloaded(100_000 + day);
        m.note_commit_failure(100_000 + day);
        assert!(!Status::of(true, &m, 100_000).is_degraded());
        m.note_overloaded(100_000);
        assert_eq!(
            Status::of(true, &m, 101_000).reasons,
            vec![Degradation::Overloaded { ago_ms: 1_000 }]
        );
        assert!(!Status::of(true, &m, 100_000 + OVERLOAD_WINDOW_MS).is_degraded());
    }

    #[test]
    fn degraded_after_a_failed_commit_or_shed_load_for_a_while() {
        let m = Metrics::new();
        assert!(!Status::of(true, &m, 100_000).is_degraded());
        assert_eq!(
            Status::of(false, &m, 100_000).reasons,
            vec![Degradation::StoreRecovering]
        );
        m.note_overloaded(100_000);
        assert_eq!(
            Status::of(true, &m, 101_000).reasons,
            vec![Degradation::Overloaded { ago_ms: 1_000 }]
        );
        assert!(!Status::of(true, &m, 100_000 + OVERLOAD_WINDOW_MS).is_degraded());
        m.note_commit_failure(200_000);
        assert_eq!(
            Status::of(true, &m, 200_000).reasons[0].code(),
            "commit_failed"
        );
        assert!(Status::of(true, &m, 200_000 + COMMIT_FAILURE_WINDOW_MS - 1).is_degraded());
        assert!(!Status::of(true, &m, 200_000 + COMMIT_FAILURE_WINDOW_MS).is_degraded());
    }
}
