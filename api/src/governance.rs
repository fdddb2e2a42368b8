//! The governance read endpoints: the feed of governance entries
//! (`GET /v1/governance`, a page after an index, optionally long-polled) and
//! the same entries as Server-Sent Events (`GET /v1/governance/stream`).
//!
//! Both read the store's index of governance entries and list only entries
//! in the published head's tree; both wait on
//! [`Core::governance_updates`](lineage_log::Core::governance_updates), which
//! changes after each commit that added a governance entry, once its head
//! is published. Waiting ends when the server stops ([`Stopping`]).
//!
//! **Bounded memory.** The stream is pulled: it reads one page from the
//! store when the client has taken the previous one, so a slow or idle
//! subscriber holds at most one page, and one that falls behind simply
//! reads on from its last index. Open streams are capped at
//! [`HttpLimits::max_in_flight`](crate::HttpLimits), and waiting long-polls
//! (which hold an in-flight slot) at half of it, so that waiting readers
//! cannot shed ingest; beyond either cap the answer is `503 overloaded`.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use lineage_ledger::entry::{EntryType, LogEntry};
use lineage_log::Core;
use lineage_schemas::{GovernanceEntry, GovernanceFeed, GovernancePayload};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::watch;

use crate::AppState;
use crate::ingest::json_response;
use crate::problem::ApiError;
use crate::read::{blocking, query, query_u64, rfc3339_ms};
use crate::serve::Stopping;

/// Default and largest page of the feed.
const FEED_PAGE: usize = 100;
const FEED_PAGE_MAX: usize = 1000;
/// Longest long-poll, in seconds.
pub const MAX_WAIT_SECS: u64 = 60;
/// Entries the stream reads from the store at once.
const STREAM_PAGE: usize = 100;
/// A comment on an idle stream this often keeps proxies from closing it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The path of the feed, whose `wait` extends the request bound.
pub(crate) const FEED_PATH: &str = "/v1/governance";

/// How much longer than the request timeout `request` may take: the `wait`
/// of a long-poll of the feed (at most [`MAX_WAIT_SECS`]), zero otherwise.
/// A `wait` that does not parse gets nothing: the handler refuses it at once.
pub(crate) fn long_poll_allowance(request: &Request) -> Duration {
    if request.uri().path() != FEED_PATH {
        return Duration::ZERO;
    }
    Query::<HashMap<String, String>>::try_from_uri(request.uri())
        .ok()
        .and_then(|Query(q)| q.get("wait")?.parse::<u64>().ok())
        .map_or(Duration::ZERO, |w| {
            Duration::from_secs(w.min(MAX_WAIT_SECS))
        })
}

/// One delivered entry with its integration millisecond (for the delay).
struct Delivered {
    entry: GovernanceEntry,
    integrated_at_ms: u64,
}

/// The feed's view of a stored governance entry. The statement is the
/// signed payload itself, deserialized into the wire type; the ledger's
/// parser (stricter than serde, and the one that admitted it) is the
/// fallback, so one odd entry cannot stop the feed.
fn delivered(index: u64, entry: &LogEntry) -> Result<Delivered, ApiError> {
    if entry.entry_type != EntryType::Governance {
        tracing::error!(index, "the governance index names an event entry");
        return Err(ApiError::Internal);
    }
    let statement = match serde_json::from_slice::<GovernancePayload>(&entry.payload) {
        Ok(s) => s,
        Err(_) => lineage_ledger::event::parse_governance(&entry.payload)
            .map_err(|e| {
                tracing::error!(error = %e, index, "stored governance payload does not parse");
                ApiError::Internal
            })?
            .to_wire(),
    };
    Ok(Delivered {
        entry: GovernanceEntry {
            index,
            event_id: entry.event_id().to_string(),
            integrated_at: rfc3339_ms(entry.integrated_at_ms),
            key_id: entry.key_id.to_string(),
            statement,
        },
        integrated_at_ms: entry.integrated_at_ms,
    })
}

/// The head a page was read under, and the page.
type Page = (Arc<lineage_ledger::store::StoredCheckpoint>, Vec<Delivered>);

/// A page after `after` (from the start with `None`), with the head it was
/// read under.
async fn read_page(app: &AppState, after: Option<u64>, limit: usize) -> Result<Page, ApiError> {
    blocking(app, move |core| {
        let lineage_log::GovernancePage { head, entries } =
            core.governance_entries(after, limit)?;
        let entries = entries
            .iter()
            .map(|(index, entry)| delivered(*index, entry))
            .collect::<Result<_, _>>()?;
        Ok((head, entries))
    })
    .await
}

/// Observes the delay from commit to delivery of entries delivered live
/// (not of a replay of older ones).
fn observe_delivery(core: &Core, entries: &[Delivered]) {
    let now = lineage_log::clock::unix_ms(core.clock.now());
    for e in entries {
        let ms = now.saturating_sub(e.integrated_at_ms);
        core.metrics
            .governance_delivery_seconds
            .observe(ms as f64 / 1000.0);
    }
}

/// Resolves when the server stops; never without a [`Stopping`].
async fn stopped(stopping: &mut Option<Stopping>) {
    match stopping {
        Some(s) => s.wait().await,
        None => std::future::pending().await,
    }
}

/// One slot of a capped gauge, given back on drop.
struct Slot(Gauge);

impl Slot {
    /// Takes a slot of `gauge` if fewer than `cap` are taken.
    fn take(gauge: &Gauge, cap: usize) -> Result<Slot, ApiError> {
        let slot = Slot(gauge.clone());
        let before = gauge.inc();
        if usize::try_from(before).unwrap_or(usize::MAX) >= cap {
            // Dropping the slot gives the unit back.
            return Err(ApiError::ReadersFull);
        }
        Ok(slot)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// `GET /v1/governance?after=&limit=&wait=`.
pub(crate) async fn get_feed(
    State(app): State<AppState>,
    stopping: Option<axum::Extension<Stopping>>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let after = query_u64(&q, "after")?;
    let limit = match query_u64(&q, "limit")? {
        None => FEED_PAGE,
        Some(l) if l >= 1 && l <= FEED_PAGE_MAX as u64 => l as usize,
        Some(_) => {
            return Err(ApiError::bad_request(
                format!("limit must be between 1 and {FEED_PAGE_MAX}"),
                "limit",
            ));
        }
    };
    let wait = match query_u64(&q, "wait")? {
        None => 0,
        Some(w) if w <= MAX_WAIT_SECS => w,
        Some(_) => {
            return Err(ApiError::bad_request(
                format!("wait must be at most {MAX_WAIT_SECS} seconds"),
                "wait",
            ));
        }
    };
    let core = app.log.core().clone();
    // Subscribed before the read: a commit after it is seen as a change.
    let mut updates = core.governance_updates();
    let (mut head, mut entries) = read_page(&app, after, limit).await?;
    if entries.is_empty() && wait > 0 {
        let _slot = Slot::take(
            &core.metrics.governance_waiting,
            (app.limits.max_in_flight / 2).max(1),
        )?;
        let mut stopping = stopping.map(|axum::Extension(s)| s);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
        loop {
            tokio::select! {
                changed = updates.changed() => if changed.is_err() { break },
                () = tokio::time::sleep_until(deadline) => break,
                () = stopped(&mut stopping) => break,
            }
            (head, entries) = read_page(&app, after, limit).await?;
            if !entries.is_empty() {
                observe_delivery(&core, &entries);
                break;
            }
        }
    }
    let next_after = entries.last().map(|e| e.entry.index).or(after);
    Ok(json_response(
        StatusCode::OK,
        &GovernanceFeed {
            entries: entries.into_iter().map(|e| e.entry).collect(),
            checkpoint: head.note.clone(),
            size: head.size,
            next_after,
        },
    ))
}

/// Where a stream resumes: `Last-Event-ID` (what an `EventSource` sends
/// when it reconnects), else `?after=`, else the start.
fn resume_point(headers: &HeaderMap, q: &HashMap<String, String>) -> Result<Option<u64>, ApiError> {
    match headers.get("last-event-id") {
        Some(v) if !v.is_empty() => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "Last-Event-ID must be the index of a governance entry",
                    "Last-Event-ID",
                )
            }),
        _ => query_u64(q, "after"),
    }
}

/// A subscriber's position: what it has been sent, the page it has not
/// taken yet, and what it waits on.
struct Subscription {
    app: AppState,
    after: Option<u64>,
    page: VecDeque<Delivered>,
    updates: watch::Receiver<u64>,
    stopping: Option<Stopping>,
    /// Once the subscriber has read to the end of the log, what follows is
    /// delivered live and its delay observed (a replay's is not).
    caught_up: bool,
    _slot: Slot,
}

/// The next event of a stream, or `None` once it ends (the server stops,
/// or a read failed: the client reconnects with `Last-Event-ID`).
async fn next_event(mut s: Subscription) -> Option<(Result<Event, Infallible>, Subscription)> {
    loop {
        if let Some(d) = s.page.pop_front() {
            s.after = Some(d.entry.index);
            let data = match serde_json::to_string(&d.entry) {
                Ok(data) => data,
                Err(e) => {
                    tracing::error!(error = %e, "governance entry does not serialize");
                    return None;
                }
            };
            let event = Event::default()
                .id(d.entry.index.to_string())
                .event("governance")
                .data(data);
            return Some((Ok(event), s));
        }
        // Marked seen before the read, so a commit after it wakes us below.
        s.updates.borrow_and_update();
        match read_page(&s.app, s.after, STREAM_PAGE).await {
            Ok((_, page)) if !page.is_empty() => {
                if s.caught_up {
                    observe_delivery(s.app.log.core(), &page);
                }
                s.page = page.into();
                continue;
            }
            Ok(_) => s.caught_up = true,
            Err(e) => {
                tracing::warn!(error = %e, "governance stream read failed; ending the stream");
                return None;
            }
        }
        tokio::select! {
            changed = s.updates.changed() => if changed.is_err() { return None },
            () = stopped(&mut s.stopping) => return None,
        }
    }
}

/// `GET /v1/governance/stream`: every governance entry after the resume
/// point, then each new one as it commits, as Server-Sent Events (`id:`
/// the index, `event: governance`, `data:` the [`GovernanceEntry`]).
pub(crate) async fn get_stream(
    State(app): State<AppState>,
    stopping: Option<axum::Extension<Stopping>>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = query(q)?;
    let after = resume_point(&headers, &q)?;
    let core = app.log.core().clone();
    let slot = Slot::take(
        &core.metrics.governance_subscribers,
        app.limits.max_in_flight,
    )?;
    let subscription = Subscription {
        updates: core.governance_updates(),
        app,
        after,
        page: VecDeque::new(),
        stopping: stopping.map(|axum::Extension(s)| s),
        caught_up: false,
        _slot: slot,
    };
    let events = futures_util::stream::unfold(subscription, next_event);
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response())
}
