//! `/entries`: the log newest first, paged by index (a cursor, not an
//! offset), with filters; `/entries/{index}`; `/search`.
//!
//! Cost: the workload filter and the time range use the store's indexes
//! (the workload index, and binary search over integration time); runtime
//! and kind have no index, so a page scans at most [`SCAN_BUDGET`] entries
//! and, if it found fewer than a page, says where it stopped and offers to
//! go on from there.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use lineage_ledger::entry::{EntryType, LogEntry};
use lineage_ledger::keys::{EventId, KeyId};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::page::PageError;
use crate::reader::{self, Body, Decoded};
use crate::view::{Digest, Layout, When, count, enc, kind_class};
use crate::{Explorer, blocking};

/// Rows per page.
pub(crate) const PAGE: usize = 50;
/// Most entries one page reads when filtering without an index.
pub(crate) const SCAN_BUDGET: u64 = 5000;
/// Entries read per range read while scanning.
const CHUNK: u64 = 500;

/// One row of an entries table.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    pub index: u64,
    pub id: Digest,
    pub kind: String,
    pub kind_class: &'static str,
    pub workload: Option<String>,
    pub workload_href: String,
    pub seq: String,
    pub runtime: Option<String>,
    pub runtime_href: String,
    pub integrated: When,
    pub parents: usize,
}

impl Row {
    pub fn new(d: &Decoded, now: OffsetDateTime) -> Row {
        let kind = d.kind();
        let (workload, seq, parents) = match &d.body {
            Body::Event(e) => (
                Some(e.workload.as_str().to_owned()),
                e.seq.to_string(),
                e.parents.len(),
            ),
            _ => (None, String::new(), 0),
        };
        let runtime = d.runtime().map(str::to_owned);
        Row {
            index: d.index,
            id: Digest::event(&d.id.to_string()),
            kind_class: kind_class(&kind),
            kind,
            workload_href: workload
                .as_deref()
                .map(|w| format!("/workloads/{}", enc(w)))
                .unwrap_or_default(),
            workload,
            seq,
            runtime_href: runtime
                .as_deref()
                .map(|r| format!("/runtimes/{}", enc(r)))
                .unwrap_or_default(),
            runtime,
            integrated: When::from_ms(d.entry.integrated_at_ms, now),
            parents,
        }
    }
}

/// The filters of the entries page, as given.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub runtime: String,
    pub workload: String,
    pub kind: String,
    pub from: String,
    pub until: String,
}

impl Filter {
    fn from_query(q: &HashMap<String, String>) -> Filter {
        let get = |k: &str| q.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        Filter {
            runtime: get("runtime"),
            workload: get("workload"),
            kind: get("kind"),
            from: get("from"),
            until: get("until"),
        }
    }

    fn is_empty(&self) -> bool {
        self.runtime.is_empty()
            && self.workload.is_empty()
            && self.kind.is_empty()
            && self.from.is_empty()
            && self.until.is_empty()
    }

    /// The query string of the filters (without a cursor), `&`-prefixed.
    fn query(&self) -> String {
        let mut s = String::new();
        for (k, v) in [
            ("runtime", &self.runtime),
            ("workload", &self.workload),
            ("kind", &self.kind),
            ("from", &self.from),
            ("until", &self.until),
        ] {
            if !v.is_empty() {
                s.push('&');
                s.push_str(k);
                s.push('=');
                s.push_str(&enc(v));
            }
        }
        s
    }

    /// [`Filter::matches`] on the stored bytes, reading only the fields it
    /// needs (scans run this on thousands of entries; only matches are
    /// decoded in full).
    fn matches_raw(&self, bytes: &[u8]) -> bool {
        #[derive(serde::Deserialize)]
        struct Light<'a> {
            #[serde(borrow)]
            runtime: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            workload: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            kind: Option<std::borrow::Cow<'a, str>>,
            #[serde(borrow)]
            action: Option<std::borrow::Cow<'a, str>>,
        }
        let Ok(entry) = LogEntry::decode(bytes) else {
            return false;
        };
        let Ok(l) = serde_json::from_slice::<Light<'_>>(&entry.payload) else {
            return false;
        };
        let kind = match (entry.entry_type, &l.kind, &l.action) {
            (EntryType::Event, Some(k), _) => k.to_string(),
            (EntryType::Governance, _, Some(a)) => format!("governance.{a}"),
            _ => String::new(),
        };
        (self.runtime.is_empty() || l.runtime.as_deref() == Some(self.runtime.as_str()))
            && (self.kind.is_empty() || kind == self.kind)
            && (self.workload.is_empty()
                || (entry.entry_type == EntryType::Event
                    && l.workload.as_deref() == Some(self.workload.as_str())))
    }

    fn matches(&self, d: &Decoded) -> bool {
        (self.runtime.is_empty() || d.runtime() == Some(self.runtime.as_str()))
            && (self.kind.is_empty() || d.kind() == self.kind)
            && (self.workload.is_empty()
                || d.event().map(|e| e.workload.as_str()) == Some(self.workload.as_str()))
    }
}

/// Parses a time filter: RFC 3339, or the `YYYY-MM-DDTHH:MM[:SS]` of an
/// HTML `datetime-local` input, read as UTC.
fn parse_time(name: &str, s: &str) -> Result<Option<u64>, PageError> {
    if s.is_empty() {
        return Ok(None);
    }
    let bad = || {
        PageError::BadRequest(format!(
            "The “{name}” time {s:?} is not a date and time; use the form 2025-01-31T13:45 (UTC)."
        ))
    };
    let t = OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| {
            let padded = if s.len() == 16 {
                format!("{s}:00Z")
            } else {
                format!("{s}Z")
            };
            OffsetDateTime::parse(&padded, &Rfc3339)
        })
        .map_err(|_| bad())?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map(Some)
        .map_err(|_| bad())
}

#[derive(Template, WebTemplate)]
#[template(path = "entries.html")]
struct EntriesPage {
    layout: Layout,
    filter: Filter,
    filtered: bool,
    rows: Vec<Row>,
    tree_size: String,
    /// "Scanned #a–#b" when a filter scan stopped early.
    scanned: Option<String>,
    newer: Option<String>,
    older: Option<String>,
    kinds: Vec<String>,
}

fn query(
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> HashMap<String, String> {
    q.map(|Query(q)| q).unwrap_or_default()
}

fn cursor(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, PageError> {
    match q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            PageError::BadRequest(format!(
                "“{name}” must be a log index (a whole number), not {v:?}."
            ))
        }),
    }
}

struct Listing {
    rows: Vec<Decoded>,
    /// Next cursor (exclusive upper bound) for older rows, if any remain.
    older: Option<u64>,
    /// Lowest index scanned when the scan budget ran out.
    stopped_at: Option<(u64, u64)>,
}

pub(crate) async fn page(
    State(ex): State<Explorer>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let q = query(q);
    let filter = Filter::from_query(&q);
    let before = cursor(&q, "before")?;
    let from_ms = parse_time("from", &filter.from)?;
    let until_ms = parse_time("until", &filter.until)?;
    let head = ex.core().head().size;
    let f = filter.clone();
    let idx = ex.index.clone();
    let (listing, kinds) = blocking(&ex, move |core| {
        idx.top_up(core)?;
        let kinds: Vec<String> = idx.snapshot().kinds.into_keys().collect();
        let mut hi = before.unwrap_or(head).min(head);
        if let Some(u) = until_ms {
            hi = hi.min(reader::first_at_or_after(core, head, u.saturating_add(1))?);
        }
        let lo = match from_ms {
            Some(m) => reader::first_at_or_after(core, head, m)?,
            None => 0,
        };
        let listing = if f.workload.is_empty() {
            scan(core, &f, lo, hi)?
        } else {
            by_workload(core, &f, lo, hi)?
        };
        Ok((listing, kinds))
    })
    .await?;
    let now = ex.core().clock.now();
    let fq = filter.query();
    let newer = match (before, filter.is_empty()) {
        (Some(b), true) if b < head => {
            Some(format!("/entries?before={}", (b + PAGE as u64).min(head)))
        }
        (Some(b), false) if b < head => Some(format!("/entries?{}", fq.trim_start_matches('&'))),
        _ => None,
    };
    let older = listing.older.map(|o| format!("/entries?before={o}{fq}"));
    let scanned = listing.stopped_at.map(|(a, b)| {
        format!(
            "Scanned entries #{}–#{} ({} entries) without filling the page: runtime and kind \
             have no index, so each page reads at most {} entries.",
            count(a),
            count(b),
            count(b - a + 1),
            count(SCAN_BUDGET)
        )
    });
    let page = EntriesPage {
        layout: Layout::new("Entries", "entries").with_origin(&ex.core().config.origin),
        filtered: !filter.is_empty(),
        filter,
        rows: listing.rows.iter().map(|d| Row::new(d, now)).collect(),
        tree_size: count(head),
        scanned,
        newer,
        older,
        kinds,
    };
    Ok(page.into_response())
}

/// Newest first from `hi` (exclusive) down to `lo`, filtering, within the budget.
fn scan(core: &lineage_log::Core, f: &Filter, lo: u64, hi: u64) -> Result<Listing, PageError> {
    let mut rows = Vec::new();
    let mut end = hi;
    let mut read = 0u64;
    while end > lo && rows.len() < PAGE {
        if read >= SCAN_BUDGET {
            return Ok(Listing {
                rows,
                older: Some(end),
                stopped_at: Some((end, hi - 1)),
            });
        }
        let start = end.saturating_sub(CHUNK).max(lo);
        let chunk = core.store.entries(start, end)?;
        read += end - start;
        let mut taken_to = start;
        for (i, bytes) in chunk.iter().enumerate().rev() {
            let i = start + i as u64;
            if f.matches_raw(bytes) {
                rows.push(Decoded::decode(i, bytes)?);
                if rows.len() == PAGE {
                    taken_to = i;
                    break;
                }
            }
        }
        end = taken_to;
    }
    Ok(Listing {
        older: (end > lo).then_some(end),
        rows,
        stopped_at: None,
    })
}

/// The workload's events with index in `[lo, hi)`, newest first, through the
/// workload index (binary search on seq, then a range read).
fn by_workload(
    core: &lineage_log::Core,
    f: &Filter,
    lo: u64,
    hi: u64,
) -> Result<Listing, PageError> {
    let empty = Listing {
        rows: Vec::new(),
        older: None,
        stopped_at: None,
    };
    let Some((last_seq, last_index)) = core.store.workload_last(&f.workload)? else {
        return Ok(empty);
    };
    // The highest seq whose index is below `hi`.
    let top_seq = if last_index < hi {
        last_seq
    } else {
        let (mut a, mut b) = (0u64, last_seq + 1); // answer in [a, b): first seq with index >= hi
        while a < b {
            let m = a + (b - a) / 2;
            let i = core
                .store
                .workload_index(&f.workload, m)?
                .ok_or(PageError::Internal)?;
            if i < hi { a = m + 1 } else { b = m }
        }
        if a == 0 {
            return Ok(empty);
        }
        a - 1
    };
    let mut rows = Vec::new();
    let mut next = Some(top_seq);
    let mut read = 0u64;
    while let Some(top) = next {
        if rows.len() >= PAGE || read >= SCAN_BUDGET {
            break;
        }
        let from = top.saturating_sub(CHUNK - 1);
        let pairs = core
            .store
            .workload_range(&f.workload, from, (top - from + 1) as usize)?;
        read += pairs.len() as u64;
        next = from.checked_sub(1);
        for (_, i) in pairs.into_iter().rev() {
            if i < lo {
                next = None;
                break;
            }
            let d = reader::indexed_entry(core, i)?;
            if f.matches(&d) {
                rows.push(d);
                if rows.len() == PAGE {
                    break;
                }
            }
        }
    }
    let older = if rows.len() == PAGE {
        rows.last().map(|d| d.index)
    } else {
        None
    };
    Ok(Listing {
        rows,
        older,
        stopped_at: None,
    })
}

/// `/entries/{index}`: the entry's event page.
pub(crate) async fn by_index(
    State(ex): State<Explorer>,
    index: Result<Path<String>, axum::extract::rejection::PathRejection>,
) -> Result<Response, PageError> {
    let raw = index.map(|Path(p)| p).unwrap_or_default();
    let index: u64 = raw.parse().map_err(|_| {
        PageError::BadRequest(format!("A log index is a whole number, not {raw:?}."))
    })?;
    let d = blocking(&ex, move |core| reader::entry(core, index)).await?;
    match d {
        Some(d) if index < ex.core().head().size => {
            Ok(Redirect::to(&format!("/events/{}", d.id)).into_response())
        }
        _ => Err(PageError::NotFound(format!(
            "The log has no entry at index {index} (its size is {}).",
            count(ex.core().head().size)
        ))),
    }
}

/// `/search?q=`: an event ID, a key ID, an index, a workload, a runtime or a kind.
pub(crate) async fn search(
    State(ex): State<Explorer>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let q = query(q)
        .get("q")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    if q.is_empty() {
        return Ok(Redirect::to("/entries").into_response());
    }
    let size = ex.core().head().size;
    let needle = q.clone();
    let idx = ex.index.clone();
    let target = blocking(&ex, move |core| {
        let q = needle;
        if q.len() == 64 && q.bytes().all(|b| b.is_ascii_hexdigit()) {
            let lower = q.to_ascii_lowercase();
            if let Ok(id) = lower.parse::<EventId>()
                && core.store.event_index(&id)?.is_some()
            {
                return Ok(Some(format!("/events/{lower}")));
            }
            if let Ok(k) = lower.parse::<KeyId>()
                && let Some(rec) = core.key(&k)
            {
                return Ok(Some(format!(
                    "/runtimes/{}#key-{lower}",
                    enc(rec.runtime.as_str())
                )));
            }
        }
        let digits = q.strip_prefix('#').unwrap_or(&q);
        if !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(i) = digits.parse::<u64>()
            && i < size
        {
            return Ok(Some(format!("/entries/{i}")));
        }
        if core.store.workload_last(&q)?.is_some() {
            return Ok(Some(format!("/workloads/{}", enc(&q))));
        }
        if !core.runtime_keys(&q).is_empty() || core.runtime_count(&q) > 0 {
            return Ok(Some(format!("/runtimes/{}", enc(&q))));
        }
        idx.top_up(core)?;
        if idx.snapshot().kinds.contains_key(&q) {
            return Ok(Some(format!("/entries?kind={}", enc(&q))));
        }
        Ok(None)
    })
    .await?;
    if let Some(t) = target {
        return Ok(Redirect::to(&t).into_response());
    }
    Err(PageError::NotFound(format!(
        "Nothing in this log matches “{q}”. Search takes a full event ID or key ID \
         (64 hex digits), a log index, a workload, a runtime or an event kind."
    )))
}
