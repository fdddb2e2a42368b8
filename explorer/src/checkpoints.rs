//! `/checkpoints`: the signed checkpoints, newest first, each with a link to
//! its consistency proof against the latest.
//!
//! Sizes come from the store's reverse listing of its checkpoint rows
//! (`Store::checkpoints_before`): one range read of a page's worth, at any
//! depth of the history, with no index and no probing.

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
    let head_size = head.size;
    let witnessing_on = ex.log.witnessing().is_some();
    let (cps, more) = blocking(&ex, move |core| {
        let limit = before.unwrap_or(head_size + 1).min(head_size + 1);
        let mut sizes = core.store.checkpoints_before(limit, PAGE + 1)?;
        let more = sizes.len() > PAGE;
        sizes.truncate(PAGE);
        let mut cps = Vec::with_capacity(sizes.len());
        for s in sizes {
            if let Some(cp) = note_at(core, witnessing_on, s)? {
                cps.push(cp);
            }
        }
        Ok((cps, more))
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
    let older = rows
        .last()
        .filter(|_| more)
        .map(|last| format!("/checkpoints?before={}", last.size));
    let page = CheckpointsPage {
        layout: Layout::new("Checkpoints", "checkpoints").with_origin(&ex.core().config.origin),
        newest: before.is_none(),
        head_size: count(head.size),
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
