//! `/checkpoints`: the signed checkpoints, newest first, each with a link to
//! its consistency proof against the latest.
//!
//! Sizes come from the explorer's index (the newest ten thousand); past
//! that, a page probes the store size by size, at most [`PROBE_BUDGET`]
//! point reads (the store has no reverse listing of checkpoints).

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};

use crate::page::PageError;
use crate::reader;
use crate::view::{Digest, Layout, When, count};
use crate::witnesses::{Witnessed, note_at};
use crate::{Explorer, blocking};

/// Checkpoints per page.
const PAGE: usize = 25;
/// Most sizes probed per page beyond the index.
const PROBE_BUDGET: u64 = 2_000;

pub(crate) struct CpRow {
    pub size: u64,
    pub size_text: String,
    pub when: When,
    pub root: Digest,
    pub note: String,
    pub consistency: Option<String>,
    pub latest: bool,
    /// Its cosignatures, when witnessing is on and this size was witnessed.
    pub witnessed: Option<Witnessed>,
}

#[derive(Template, WebTemplate)]
#[template(path = "checkpoints.html")]
struct CheckpointsPage {
    layout: Layout,
    rows: Vec<CpRow>,
    older: Option<String>,
    newest: bool,
    head_size: String,
    probed: Option<String>,
    /// With a witness policy: the latest witnessed size (text), or a
    /// sentence saying none met the quorum yet.
    witnessing: Option<String>,
}

pub(crate) async fn page(
    State(ex): State<Explorer>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let before = match q.get("before").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => None,
        Some(v) => Some(v.parse::<u64>().map_err(|_| {
            PageError::BadRequest(format!(
                "“before” must be a tree size (a whole number), not {v:?}."
            ))
        })?),
    };
    let head = ex.core().head();
    let idx = ex.index.clone();
    let head_size = head.size;
    let witnessing_on = ex.log.witnessing().is_some();
    let (cps, probed_to, more) = blocking(&ex, move |core| {
        let caught_up = idx.top_up(core)?;
        let limit = before.unwrap_or(head_size + 1).min(head_size + 1);
        // While the index is still catching up it lacks the newest
        // checkpoints: probe from the top instead.
        let (mut sizes, complete) = if caught_up {
            idx.checkpoints_before(limit, PAGE + 1)
        } else {
            (Vec::new(), false)
        };
        let mut probed_to = None;
        if sizes.len() <= PAGE && !complete {
            // Below what the index remembers (or all of it): probe the store.
            let mut s = sizes.last().copied().unwrap_or(limit);
            let mut probes = 0;
            while s > 0 && sizes.len() <= PAGE && probes < PROBE_BUDGET {
                s -= 1;
                probes += 1;
                if core.store.checkpoint(s)?.is_some() {
                    sizes.push(s);
                }
            }
            if s > 0 && sizes.len() <= PAGE {
                probed_to = Some(s);
            }
        }
        let more = sizes.len() > PAGE;
        sizes.truncate(PAGE);
        let mut cps = Vec::with_capacity(sizes.len());
        for s in sizes {
            if let Some(cp) = note_at(core, witnessing_on, s)? {
                cps.push(cp);
            }
        }
        Ok((cps, probed_to, more))
    })
    .await?;
    let now = ex.core().clock.now();
    let witnessing = ex.log.witnessing();
    let rows: Vec<CpRow> = cps
        .into_iter()
        .map(|(cp, witnessed)| CpRow {
            witnessed: witnessing
                .filter(|_| witnessed)
                .map(|w| crate::witnesses::read(w.policy(), &cp.note, now)),
            size: cp.size,
            size_text: count(cp.size),
            when: When::from_ms(cp.time_ms, now),
            root: Digest::new(
                reader::checkpoint_of(&cp.note)
                    .map(|c| c.root.to_base64())
                    .unwrap_or_default(),
            ),
            consistency: (cp.size < head.size)
                .then(|| format!("/proofs/consistency?first={}&second={}", cp.size, head.size)),
            latest: cp.size == head.size,
            note: cp.note,
        })
        .collect();
    let older = match (rows.last(), more, probed_to) {
        (_, _, Some(s)) => Some(format!("/checkpoints?before={}", s + 1)),
        (Some(last), true, _) => Some(format!("/checkpoints?before={}", last.size)),
        _ => None,
    };
    let page = CheckpointsPage {
        layout: Layout::new("Checkpoints", "checkpoints").with_origin(&ex.core().config.origin),
        newest: before.is_none(),
        head_size: count(head.size),
        probed: probed_to.map(|s| {
            format!(
                "Searched down to tree size {} without filling the page; older checkpoints continue below.",
                count(s)
            )
        }),
        witnessing: witnessing.map(|w| match w.latest() {
            Some(l) => format!(
                "The latest checkpoint that met the witness policy's quorum has tree size {}; \
                 a witnessed checkpoint shows its cosignatures.",
                count(l.size)
            ),
            None => "No checkpoint has met the witness policy's quorum yet.".to_owned(),
        }),
        rows,
        older,
    };
    Ok(page.into_response())
}
