//! `/`: the log at a glance.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use lineage_log::clock::unix_ms;

use crate::entries::Row;
use crate::page::PageError;
use crate::view::{Digest, Layout, When, count};
use crate::{Explorer, blocking, reader, sparkline};

/// Sparkline buckets and their width.
const BUCKETS: u64 = 30;
const BUCKET_MS: u64 = 20_000;
/// Entries listed.
const RECENT: u64 = 12;

pub(crate) struct RejectionRow {
    pub code: String,
    pub count: String,
}

pub(crate) struct RecentRejectionRow {
    pub code: &'static str,
    /// The sender's own workload, when the refusal concerned it.
    pub workload: Option<String>,
    /// The sender's runtime.
    pub runtime: String,
    pub seq: String,
    pub when: When,
    pub detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "dashboard.html")]
struct Dashboard {
    layout: Layout,
    origin: String,
    vkey: String,
    tree_size: String,
    head_size: u64,
    head_when: When,
    root: Digest,
    note: String,
    healthy: bool,
    indexed: bool,
    indexed_upto: String,
    events: String,
    governance: String,
    workloads: String,
    runtimes: String,
    keys_active: String,
    keys_revoked: String,
    spark: String,
    spark_total: String,
    spark_peak: String,
    rejections: Vec<RejectionRow>,
    recent_rejections: Vec<RecentRejectionRow>,
    recent: Vec<Row>,
}

pub(crate) async fn page(State(ex): State<Explorer>) -> Result<Response, PageError> {
    let idx = ex.index.clone();
    let head = ex.core().head();
    let size = head.size;
    let data = blocking(&ex, move |core| {
        let caught_up = idx.top_up(core)?;
        let snap = idx.snapshot();
        let now = core.clock.now();
        let now_ms = unix_ms(now);
        // Entries per bucket from the log's own integration times.
        let start = now_ms.saturating_sub(BUCKETS * BUCKET_MS);
        let mut values = vec![0u64; BUCKETS as usize];
        let mut labels = Vec::with_capacity(BUCKETS as usize);
        let recent_activity = size > 0 && reader::integrated_at_ms(core, size - 1)? >= start;
        let mut prev = if recent_activity {
            reader::first_at_or_after(core, size, start)?
        } else {
            size
        };
        for (k, v) in values.iter_mut().enumerate() {
            let end_ms = start + (k as u64 + 1) * BUCKET_MS;
            let next = if recent_activity {
                reader::first_at_or_after_in(core, prev, size, end_ms)?
            } else {
                size
            };
            *v = next - prev;
            prev = next;
            let ago_s = (BUCKETS - k as u64 - 1) * BUCKET_MS / 1000;
            labels.push(format!("{} entries, {}–{} s ago", *v, ago_s + 20, ago_s));
        }
        let recent = reader::range(core, size.saturating_sub(RECENT), size)?
            .iter()
            .rev()
            .map(|d| Row::new(d, now))
            .collect::<Vec<_>>();
        let keys = core.store.keys()?;
        let mut runtimes: Vec<&str> = keys.iter().map(|k| k.runtime.as_str()).collect();
        runtimes.sort_unstable();
        runtimes.dedup();
        let revoked = keys.iter().filter(|k| k.revoked_index.is_some()).count();
        Ok((
            caught_up,
            snap,
            values,
            labels,
            recent,
            runtimes.len(),
            keys.len() - revoked,
            revoked,
        ))
    })
    .await?;
    let (caught_up, snap, values, labels, recent, runtimes, active, revoked) = data;
    let now = ex.core().clock.now();
    let root = reader::checkpoint_of(&head.note)
        .map(|c| c.root.to_base64())
        .unwrap_or_default();
    let metrics = &ex.core().metrics;
    let total: u64 = values.iter().sum();
    let peak = values.iter().copied().max().unwrap_or(0);
    let page = Dashboard {
        layout: Layout::new("Dashboard", "dashboard").with_origin(&ex.core().config.origin),
        origin: ex.core().config.origin.clone(),
        vkey: ex.core().vkey.clone(),
        tree_size: count(head.size),
        head_size: head.size,
        head_when: When::from_ms(head.time_ms, now),
        root: Digest::new(root),
        note: head.note.clone(),
        healthy: ex.core().is_healthy(),
        indexed: caught_up,
        indexed_upto: count(snap.next),
        events: count(snap.events),
        governance: count(snap.governance),
        workloads: count(snap.workloads),
        runtimes: count(runtimes as u64),
        keys_active: count(active as u64),
        keys_revoked: count(revoked as u64),
        spark: sparkline::bars(&values, &labels, 360, 56),
        spark_total: count(total),
        spark_peak: count(peak),
        rejections: metrics
            .rejection_counts()
            .into_iter()
            .map(|(code, n)| RejectionRow {
                code,
                count: count(n),
            })
            .collect(),
        recent_rejections: metrics
            .recent_rejections
            .newest(None, 6)
            .into_iter()
            .map(|r| RecentRejectionRow {
                code: r.code,
                workload: r.workload,
                runtime: r.runtime,
                seq: r.seq.map(|s| s.to_string()).unwrap_or_default(),
                when: When::from_ms(r.at_ms, now),
                detail: r.detail,
            })
            .collect(),
        recent,
    };
    Ok(page.into_response())
}
