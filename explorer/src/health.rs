//! `/health`: the Infrastructure Health Dashboard, and `/health.json`, the
//! same figures and charts for the page's script to swap in without a
//! reload.
//!
//! Everything comes from the log's bounded health ring
//! (`lineage_log::health`), which samples the metrics themselves; nothing
//! here reads the Prometheus text. Each request first takes a fresh sample
//! (the ring keeps at most one per second, so this never grows it faster
//! than the sampler does), so the figures are as of the request even where
//! no sampler runs.

use askama::Template;
use askama_web::WebTemplate;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use lineage_log::LogService;
use lineage_log::health::{Bounds, Resolution, Sample, quantile_between, rate};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;

use crate::Explorer;
use crate::sparkline::{Line, lines};
use crate::view::{Layout, count};

/// The fine charts: 120 steps of 5 s (ten minutes).
const FINE_STEP_MS: u64 = 5_000;
const FINE_POINTS: usize = 120;
/// The coarse chart: 60 steps of a minute.
const COARSE_POINTS: usize = 60;
const CHART_W: u32 = 360;
const CHART_H: u32 = 64;

/// Why the ledger is degraded, for people and for scripts.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Reason {
    /// `store_recovering`, `commit_failed` or `overloaded`.
    pub code: &'static str,
    /// A sentence.
    pub detail: String,
}

/// The figures as the page shows them (each field is the text of the
/// element with `data-figure="<field>"`).
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Figures {
    pub ingest_minute: String,
    pub ingest_hour: String,
    pub commits_minute: String,
    pub commit_p50: String,
    pub commit_p90: String,
    pub commit_p99: String,
    pub batch_mean: String,
    pub batch_p99: String,
    pub queue_depth: String,
    pub queue_capacity: String,
    pub rejected_minute: String,
    pub tree_size: String,
    pub checkpoint_age: String,
    pub disk_bytes: String,
    pub bytes_per_entry: String,
    pub subscribers: String,
    pub deliveries: String,
    pub delivery_p50: String,
    pub delivery_p99: String,
    pub uptime: String,
    pub rss: String,
    pub connections: String,
    pub overloaded: String,
    pub commit_failures: String,
}

/// The same figures as numbers (units in the names), for scripts.
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Values {
    pub ingest_minute_per_second: Option<f64>,
    pub ingest_hour_per_second: Option<f64>,
    pub commit_p50_seconds: Option<f64>,
    pub commit_p90_seconds: Option<f64>,
    pub commit_p99_seconds: Option<f64>,
    pub batch_mean_entries: Option<f64>,
    pub queue_depth: u64,
    pub queue_capacity: u64,
    pub tree_size: u64,
    pub checkpoint_age_seconds: f64,
    pub disk_bytes: Option<u64>,
    pub bytes_per_entry: Option<f64>,
    pub subscribers: u64,
    pub delivery_p99_seconds: Option<f64>,
    pub uptime_seconds: u64,
    pub rss_bytes: Option<u64>,
    pub connections: u64,
    pub overloaded: u64,
    pub commit_failures: u64,
}

/// One rejection code's counts.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RejectionRow {
    pub code: String,
    pub minute: u64,
    pub hour: u64,
    pub total: u64,
}

/// The server-drawn SVG of each chart (the inner HTML of the element with
/// `data-chart="<field>"`).
#[derive(Clone, Debug, Default, Serialize)]
pub(crate) struct Charts {
    pub ingest: String,
    pub ingest_hour: String,
    pub latency: String,
    pub queue: String,
    pub batch: String,
    pub rejections: String,
    pub checkpoint_age: String,
    pub delivery: String,
    pub rss: String,
    pub connections: String,
}

/// One witness, as the last witnessing round saw it.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct WitnessRow {
    /// The policy's name for it.
    pub name: String,
    pub url: String,
    /// `up` (it cosigned in the last round), `failing`, or `unknown` (not
    /// asked yet).
    pub state: &'static str,
    /// Since when it fails (RFC 3339), and how long ago, as text.
    pub failing_since: Option<String>,
    pub failing_for: Option<String>,
    /// Its latest failure.
    pub last_error: Option<String>,
    /// The tree size it last cosigned or said it holds.
    pub size: Option<u64>,
    /// When it last cosigned (RFC 3339), and how long ago.
    pub last_cosigned: Option<String>,
    pub last_cosigned_ago: Option<String>,
}

/// What the log is witnessing (only with `serve --witness-policy`). It never
/// makes the ledger degraded: ingest does not wait for witnesses.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct WitnessingDoc {
    pub witnesses: Vec<WitnessRow>,
    /// The latest checkpoint that met the quorum: its size and age.
    pub witnessed_size: Option<u64>,
    pub witnessed_size_text: String,
    pub witnessed_age_seconds: Option<f64>,
    pub witnessed_age: String,
    /// `met`, `unmet` (the last rounds missed it), or `pending` (no round
    /// has met it yet).
    pub quorum: &'static str,
    /// Since when rounds miss the quorum (RFC 3339), how long, and why.
    pub quorum_unmet_since: Option<String>,
    pub quorum_unmet_for: Option<String>,
    pub quorum_detail: String,
}

fn rfc3339(ms: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn witnessing_doc(log: &LogService, now_ms: u64) -> Option<WitnessingDoc> {
    let w = log.witnessing()?;
    let st = w.status();
    let ago = |ms: u64| duration(now_ms.saturating_sub(ms) / 1000);
    let witnesses = st
        .witnesses
        .iter()
        .map(|s| WitnessRow {
            name: s.name.clone(),
            url: s.url.clone(),
            state: match (&s.failing, s.last_cosigned_ms) {
                (Some(_), _) => "failing",
                (None, Some(_)) => "up",
                (None, None) => "unknown",
            },
            failing_since: s.failing.as_ref().map(|(t, _)| rfc3339(*t)),
            failing_for: s.failing.as_ref().map(|(t, _)| ago(*t)),
            last_error: s.failing.as_ref().map(|(_, e)| e.clone()),
            size: s.size,
            last_cosigned: s.last_cosigned_ms.map(rfc3339),
            last_cosigned_ago: s.last_cosigned_ms.map(&ago),
        })
        .collect();
    let (quorum, quorum_detail) = match (&st.quorum_unmet, st.witnessed) {
        (Some((_, why)), _) => ("unmet", why.clone()),
        (None, Some(_)) => ("met", "The latest round met the quorum.".to_owned()),
        (None, None) => (
            "pending",
            "No round has met the quorum yet (a round runs when the tree grew).".to_owned(),
        ),
    };
    Some(WitnessingDoc {
        witnesses,
        witnessed_size: st.witnessed.map(|(s, _)| s),
        witnessed_size_text: st.witnessed.map_or("none yet".into(), |(s, _)| count(s)),
        witnessed_age_seconds: st
            .witnessed
            .map(|(_, t)| now_ms.saturating_sub(t) as f64 / 1000.0),
        witnessed_age: st.witnessed.map_or("–".into(), |(_, t)| ago(t)),
        quorum,
        quorum_unmet_since: st.quorum_unmet.as_ref().map(|(t, _)| rfc3339(*t)),
        quorum_unmet_for: st.quorum_unmet.as_ref().map(|(t, _)| ago(*t)),
        quorum_detail,
    })
}

/// `/health.json`, and everything the page shows.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Doc {
    /// When the figures were taken (RFC 3339, the ledger's clock).
    pub at: String,
    /// True when any reason holds: `/readyz` answers 503 for exactly these.
    pub degraded: bool,
    pub reasons: Vec<Reason>,
    /// Samples held (per second, per minute): bounded.
    pub samples: [usize; 2],
    pub figures: Figures,
    pub values: Values,
    pub rejections: Vec<RejectionRow>,
    pub charts: Charts,
    /// Present only when the log asks witnesses to cosign.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub witnessing: Option<WitnessingDoc>,
}

#[derive(Template, WebTemplate)]
#[template(path = "health.html")]
struct Page {
    layout: Layout,
    health_js: String,
    doc: Doc,
}

/// `/health`.
pub(crate) async fn page(State(ex): State<Explorer>) -> Response {
    let page = Page {
        layout: Layout::new("Health", "health").with_origin(&ex.core().config.origin),
        health_js: crate::assets::url("health.js"),
        doc: doc(&ex.log),
    };
    no_store(page.into_response())
}

/// `/health.json`.
pub(crate) async fn json(State(ex): State<Explorer>) -> Response {
    no_store(Json(doc(&ex.log)).into_response())
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Takes a fresh sample and derives the document from the ring.
fn doc(log: &LogService) -> Doc {
    log.sample_health(None);
    let core = log.core();
    let status = core.health_status();
    let bounds = Bounds::of(&core.metrics);
    let now = core.clock.now();
    let started_ms = core.health.started_ms();
    let queue_capacity = core.config.queue_depth as u64;
    let witnessing = witnessing_doc(log, lineage_log::clock::unix_ms(now));
    core.health.with_ring(|ring| {
        let f = ring.figures(&bounds);
        let latest = ring.latest().cloned().unwrap_or_default();
        let uptime_s = latest.at_ms.saturating_sub(started_ms) / 1000;
        let (figures, values, rejections) = match f {
            None => (Figures::default(), Values::default(), vec![]),
            Some(f) => (
                Figures {
                    ingest_minute: per_s(f.ingest_minute),
                    ingest_hour: per_s(f.ingest_hour),
                    commits_minute: count(f.commits_minute),
                    commit_p50: seconds(f.commit_p50),
                    commit_p90: seconds(f.commit_p90),
                    commit_p99: seconds(f.commit_p99),
                    batch_mean: f.batch_mean.map_or("–".into(), |b| format!("{b:.1}")),
                    batch_p99: f.batch_p99.map_or("–".into(), |b| format!("{b:.0}")),
                    queue_depth: count(f.queue_depth),
                    queue_capacity: count(queue_capacity),
                    rejected_minute: count(f.rejected_minute),
                    tree_size: count(f.tree_size),
                    checkpoint_age: seconds(Some(f.checkpoint_age_ms as f64 / 1000.0)),
                    disk_bytes: f.disk_bytes.map_or("not measured".into(), bytes),
                    bytes_per_entry: f
                        .bytes_per_entry
                        .map_or("–".into(), |b| format!("{} B", count(b.round() as u64))),
                    subscribers: count(f.subscribers),
                    deliveries: count(f.deliveries),
                    delivery_p50: seconds(f.delivery_p50),
                    delivery_p99: seconds(f.delivery_p99),
                    uptime: duration(uptime_s),
                    rss: f.rss_bytes.map_or("unknown".into(), bytes),
                    connections: count(f.connections),
                    overloaded: count(f.overloaded),
                    commit_failures: count(f.commit_failures),
                },
                Values {
                    ingest_minute_per_second: f.ingest_minute,
                    ingest_hour_per_second: f.ingest_hour,
                    commit_p50_seconds: f.commit_p50,
                    commit_p90_seconds: f.commit_p90,
                    commit_p99_seconds: f.commit_p99,
                    batch_mean_entries: f.batch_mean,
                    queue_depth: f.queue_depth,
                    queue_capacity,
                    tree_size: f.tree_size,
                    checkpoint_age_seconds: f.checkpoint_age_ms as f64 / 1000.0,
                    disk_bytes: f.disk_bytes,
                    bytes_per_entry: f.bytes_per_entry,
                    subscribers: f.subscribers,
                    delivery_p99_seconds: f.delivery_p99,
                    uptime_seconds: uptime_s,
                    rss_bytes: f.rss_bytes,
                    connections: f.connections,
                    overloaded: f.overloaded,
                    commit_failures: f.commit_failures,
                },
                f.rejections
                    .into_iter()
                    .map(|r| RejectionRow {
                        code: r.code,
                        minute: r.minute,
                        hour: r.hour,
                        total: r.total,
                    })
                    .collect(),
            ),
        };
        let fine = |metric: &dyn Fn(&Sample, &Sample) -> Option<f64>| {
            ring.series(Resolution::Fine, FINE_STEP_MS, FINE_POINTS, metric)
        };
        let ingest = fine(&|a, b| rate(a, b, |s| s.entries));
        let ingest_hour = ring.series(Resolution::Coarse, 60_000, COARSE_POINTS, |a, b| {
            rate(a, b, |s| s.entries)
        });
        let ms = |q: f64, pick: fn(&Sample) -> &[u64], bounds: &[f64]| {
            let bounds = bounds.to_vec();
            move |a: &Sample, b: &Sample| {
                quantile_between(a, b, pick, &bounds, q).map(|s| s * 1000.0)
            }
        };
        let p50 = fine(&ms(0.5, |s| &s.commit_seconds, &bounds.commit_seconds));
        let p99 = fine(&ms(0.99, |s| &s.commit_seconds, &bounds.commit_seconds));
        let queue = fine(&|_, b| Some(b.queue_depth as f64));
        let batch = fine(&|a, b| {
            let n: u64 = diff_sum(&b.batch_entries, &a.batch_entries);
            (n > 0).then(|| (b.batch_entries_sum - a.batch_entries_sum) / n as f64)
        });
        let rejected = fine(&|a, b| {
            let total = |s: &Sample| s.rejections.iter().map(|(_, n)| n).sum::<u64>();
            Some(total(b).saturating_sub(total(a)) as f64)
        });
        let age = fine(&|_, b| Some(b.at_ms.saturating_sub(b.checkpoint_ms) as f64 / 1000.0));
        let delivery = fine(&ms(0.99, |s| &s.delivery_seconds, &bounds.delivery_seconds));
        let rss = fine(&|_, b| b.rss_bytes.map(|r| r as f64 / (1024.0 * 1024.0)));
        let conns = fine(&|_, b| Some(b.connections as f64));
        let subs = fine(&|_, b| Some(b.subscribers as f64));
        let chart = |ls: &[Line<'_>], min_top: f64, label: String| {
            lines(ls, min_top, CHART_W, CHART_H, &label)
        };
        let charts = Charts {
            ingest: chart(
                &[Line {
                    class: "s1",
                    values: &ingest,
                }],
                1.0,
                summary(
                    "Entries appended per second, last 10 minutes",
                    &ingest,
                    "/s",
                ),
            ),
            ingest_hour: chart(
                &[Line {
                    class: "s1",
                    values: &ingest_hour,
                }],
                1.0,
                summary("Entries appended per second, last hour", &ingest_hour, "/s"),
            ),
            latency: chart(
                &[
                    Line {
                        class: "s2",
                        values: &p99,
                    },
                    Line {
                        class: "s1",
                        values: &p50,
                    },
                ],
                1.0,
                summary(
                    "Commit latency p99 in milliseconds, last 10 minutes",
                    &p99,
                    " ms",
                ),
            ),
            queue: chart(
                &[Line {
                    class: "s1",
                    values: &queue,
                }],
                1.0,
                summary("Sequencer queue depth, last 10 minutes", &queue, ""),
            ),
            batch: chart(
                &[Line {
                    class: "s1",
                    values: &batch,
                }],
                1.0,
                summary("Mean entries per batch, last 10 minutes", &batch, ""),
            ),
            rejections: chart(
                &[Line {
                    class: "s3",
                    values: &rejected,
                }],
                1.0,
                summary("Rejections per 5 seconds, last 10 minutes", &rejected, ""),
            ),
            checkpoint_age: chart(
                &[Line {
                    class: "s1",
                    values: &age,
                }],
                1.0,
                summary("Checkpoint age in seconds, last 10 minutes", &age, " s"),
            ),
            delivery: chart(
                &[Line {
                    class: "s1",
                    values: &delivery,
                }],
                1.0,
                summary(
                    "Governance delivery delay p99 in milliseconds, last 10 minutes",
                    &delivery,
                    " ms",
                ),
            ),
            rss: chart(
                &[Line {
                    class: "s1",
                    values: &rss,
                }],
                1.0,
                summary("Resident memory in MiB, last 10 minutes", &rss, " MiB"),
            ),
            connections: chart(
                &[
                    Line {
                        class: "s1",
                        values: &conns,
                    },
                    Line {
                        class: "s2",
                        values: &subs,
                    },
                ],
                1.0,
                summary("Open connections, last 10 minutes", &conns, ""),
            ),
        };
        let (fine_n, coarse_n) = ring.len();
        Doc {
            at: now.format(&Rfc3339).unwrap_or_default(),
            degraded: status.is_degraded(),
            reasons: status
                .reasons
                .iter()
                .map(|r| Reason {
                    code: r.code(),
                    detail: r.to_string(),
                })
                .collect(),
            samples: [fine_n, coarse_n],
            figures,
            values,
            rejections,
            charts,
            witnessing,
        }
    })
}

fn diff_sum(now: &[u64], before: &[u64]) -> u64 {
    now.iter()
        .enumerate()
        .map(|(i, n)| n.saturating_sub(before.get(i).copied().unwrap_or(0)))
        .sum()
}

/// A chart's accessible name: what it shows, then its latest and peak value.
fn summary(what: &str, values: &[Option<f64>], unit: &str) -> String {
    let latest = values.iter().rev().flatten().next();
    let peak = values
        .iter()
        .flatten()
        .copied()
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    match (latest, peak) {
        (Some(l), Some(p)) => format!("{what}: latest {}{unit}, peak {}{unit}", num(*l), num(p)),
        _ => format!("{what}: no samples yet"),
    }
}

fn num(v: f64) -> String {
    if v >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn per_s(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{}/s", num(v)))
}

fn seconds(v: Option<f64>) -> String {
    match v {
        None => "–".into(),
        Some(s) if s < 1.0 => format!("{} ms", num(s * 1000.0)),
        Some(s) if s < 120.0 => format!("{} s", num(s)),
        Some(s) => duration(s as u64),
    }
}

fn duration(s: u64) -> String {
    match s {
        0..=119 => format!("{s} s"),
        120..=7199 => format!("{} min {} s", s / 60, s % 60),
        7200..=172_799 => format!("{} h {} min", s / 3600, (s / 60) % 60),
        _ => format!("{} d {} h", s / 86_400, (s / 3600) % 24),
    }
}

fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_read_like_people_write_them() {
        assert_eq!(per_s(Some(12.345)), "12.3/s");
        assert_eq!(per_s(None), "–");
        assert_eq!(seconds(Some(0.0042)), "4.2 ms");
        assert_eq!(seconds(Some(3.0)), "3 s");
        assert_eq!(seconds(Some(600.0)), "10 min 0 s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3 * 1024 * 1024 / 2), "1.5 MiB");
        assert_eq!(duration(90_000), "25 h 0 min");
    }
}
