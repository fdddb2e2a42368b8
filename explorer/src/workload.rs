//! `/workloads/{id}`: a workload's state (open, closed, or halted and by
//! which halt), the workloads it derives from, its chain in order, the
//! pauses between its events, the attempts the ledger refused (since it
//! started), and its lineage graph one step into other workloads.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use lineage_ledger::event::WorkloadId;
use lineage_ledger::store::GovernanceReads;

use crate::governance::{Banner, target_from};
use crate::page::PageError;
use crate::reader::{self, Decoded};
use crate::view::{Digest, Layout, When, count, enc, escape, kind_class, span};
use crate::{Explorer, blocking, graph};

/// How many "derives from" links a workload page shows.
const DERIVES_FROM_SHOWN: usize = 200;

/// Events per page.
const PAGE: u64 = 100;
/// A pause at least this long is highlighted, milliseconds.
const PAUSE_MS: i128 = 60_000;

pub(crate) struct Step {
    pub seq: u64,
    pub index: u64,
    pub id: Digest,
    pub kind: String,
    pub kind_class: &'static str,
    pub at: When,
    pub gap: String,
    pub pause: bool,
    pub domain: String,
    pub domain_changed: bool,
    pub parents: Vec<Digest>,
    pub attrs: String,
}

pub(crate) struct Refusal {
    pub code: &'static str,
    pub seq: String,
    pub when: When,
    pub detail: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "workload.html")]
struct WorkloadPage {
    layout: Layout,
    workload: String,
    owner: String,
    owner_href: String,
    total: String,
    first: Option<When>,
    last: Option<When>,
    last_kind: String,
    steps: Vec<Step>,
    refusals: Vec<Refusal>,
    earlier: Option<String>,
    later: Option<String>,
    latest: Option<String>,
    graph_svg: String,
    graph_nodes: usize,
    domains: Vec<String>,
    /// `open`, `closed` or `halted` (halted takes precedence).
    state: &'static str,
    halt: Option<Banner>,
    closed: bool,
    derives_from: Vec<(String, String)>,
}

struct Loaded {
    first: Decoded,
    last: Decoded,
    last_seq: u64,
    events: Vec<Decoded>,
    before: Option<Decoded>,
    graph: graph::Collected,
    halt: Option<Decoded>,
    derives_from: Vec<String>,
}

pub(crate) async fn page(
    State(ex): State<Explorer>,
    Path(workload): Path<String>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let from_seq = match q
        .get("from_seq")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            PageError::BadRequest(format!("“from_seq” must be a whole number, not {v:?}."))
        })?),
    };
    let w = workload.clone();
    let l = blocking(&ex, move |core| {
        let (last_seq, last_index) = core.store.workload_last(&w)?.ok_or_else(|| {
            PageError::NotFound(format!("No workload named “{w}” is in this log."))
        })?;
        let from = from_seq.unwrap_or(0).min(last_seq);
        let mut events = Vec::new();
        for (_, i) in core.store.workload_range(&w, from, PAGE as usize)? {
            events.push(reader::indexed_entry(core, i)?);
        }
        let first_index = core
            .store
            .workload_index(&w, 0)?
            .ok_or(PageError::Internal)?;
        let before = match from.checked_sub(1) {
            Some(s) => match core.store.workload_index(&w, s)? {
                Some(i) => Some(reader::indexed_entry(core, i)?),
                None => None,
            },
            None => None,
        };
        let graph = graph::workload_context(core, &events)?;
        let first = reader::indexed_entry(core, first_index)?;
        let halt = match WorkloadId::new(&w)
            .ok()
            .and_then(|id| core.halted_by(&id, first.runtime()))
        {
            Some(i) => reader::entry(core, i)?,
            None => None,
        };
        Ok(Loaded {
            first,
            last: reader::indexed_entry(core, last_index)?,
            last_seq,
            events,
            before,
            graph,
            halt,
            derives_from: core.store.derives_from(&w, DERIVES_FROM_SHOWN)?,
        })
    })
    .await?;
    let now = ex.core().clock.now();
    let mut prev_at = l.before.as_ref().and_then(|d| d.event().map(|e| e.at));
    let mut prev_domain = l.before.as_ref().and_then(Decoded::trust_domain);
    let mut domains: Vec<String> = Vec::new();
    let mut steps = Vec::with_capacity(l.events.len());
    for d in &l.events {
        let Some(e) = d.event() else { continue };
        let gap = prev_at.map(|p| e.at - p);
        let domain = d.trust_domain();
        if let Some(dm) = &domain
            && !domains.contains(dm)
        {
            domains.push(dm.clone());
        }
        steps.push(Step {
            seq: e.seq,
            index: d.index,
            id: Digest::event(&d.id.to_string()),
            kind: e.kind.clone(),
            kind_class: kind_class(&e.kind),
            at: When::at(e.at, now),
            gap: gap.map(span).unwrap_or_default(),
            pause: gap.is_some_and(|g| g.whole_milliseconds() >= PAUSE_MS),
            domain_changed: prev_domain.is_some() && domain.is_some() && prev_domain != domain,
            domain: domain.clone().unwrap_or_default(),
            parents: e
                .parents
                .iter()
                .map(|p| Digest::event(&p.to_string()))
                .collect(),
            attrs: e
                .attrs
                .as_ref()
                .map(|a| summarize(&a.to_map()))
                .unwrap_or_default(),
        });
        prev_at = Some(e.at);
        prev_domain = domain.or(prev_domain);
    }
    let base = format!("/workloads/{}", enc(&workload));
    let first_seq = l.events.first().and_then(|d| d.event().map(|e| e.seq));
    let last_shown = l.events.last().and_then(|d| d.event().map(|e| e.seq));
    let owner = l.first.runtime().unwrap_or("").to_owned();
    let halt = l.halt.as_ref().and_then(|d| {
        Banner::new(d, ex.core().head().size, now, |t| {
            target_from(t, &workload, &owner)
        })
    });
    let closed = l.last.event().is_some_and(|e| e.closes_workload());
    let page = WorkloadPage {
        layout: Layout::new(format!("Workload {workload}"), "entries")
            .with_origin(&ex.core().config.origin),
        owner_href: format!("/runtimes/{}", enc(&owner)),
        owner,
        total: count(l.last_seq + 1),
        first: l.first.event().map(|e| When::at(e.at, now)),
        last: l.last.event().map(|e| When::at(e.at, now)),
        last_kind: l.last.kind(),
        refusals: ex
            .core()
            .metrics
            .recent_rejections
            .newest(Some(&workload), 50)
            .into_iter()
            .map(|r| Refusal {
                code: r.code,
                seq: r.seq.map(|s| s.to_string()).unwrap_or_default(),
                when: When::from_ms(r.at_ms, now),
                detail: r.detail,
            })
            .collect(),
        earlier: first_seq
            .filter(|s| *s > 0)
            .map(|s| format!("{base}?from_seq={}", s.saturating_sub(PAGE))),
        later: last_shown
            .filter(|s| *s < l.last_seq)
            .map(|s| format!("{base}?from_seq={}", s + 1)),
        latest: last_shown
            .filter(|s| *s < l.last_seq)
            .map(|_| format!("{base}?from_seq={}", (l.last_seq + 1).saturating_sub(PAGE))),
        graph_svg: graph::render(&l.graph.nodes, None),
        graph_nodes: l.graph.nodes.len(),
        domains,
        steps,
        state: match (&halt, closed) {
            (Some(_), _) => "halted",
            (None, true) => "closed",
            (None, false) => "open",
        },
        halt,
        closed,
        derives_from: l
            .derives_from
            .into_iter()
            .map(|w| {
                let href = format!("/workloads/{}", enc(&w));
                (w, href)
            })
            .collect(),
        workload,
    };
    Ok(page.into_response())
}

/// `key=value` pairs of the top-level attributes, short, for the timeline.
fn summarize(attrs: &serde_json::Map<String, serde_json::Value>) -> String {
    let mut parts = Vec::new();
    let shown: Vec<_> = attrs.iter().filter(|(k, _)| *k != "trust_domain").collect();
    for (k, v) in shown.iter().take(4) {
        let v = match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let v: String = if v.chars().count() > 40 {
            v.chars().take(39).chain(['…']).collect()
        } else {
            v
        };
        parts.push(format!(
            "<span class=\"attr\"><span class=\"muted\">{}</span>={}</span>",
            escape(k),
            escape(&v)
        ));
    }
    if shown.len() > 4 {
        parts.push(format!("<span class=\"muted\">+{}</span>", shown.len() - 4));
    }
    parts.join(" ")
}
