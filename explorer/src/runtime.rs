//! `/runtimes` and `/runtimes/{id}`: runtimes, their keys (validity window,
//! scope, and state now), an active halt of the runtime, and the grant and
//! revoke history with links to the governance entries. The key registry
//! and the per-runtime counts are small (one row per key or runtime), so
//! these pages read them whole.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use lineage_ledger::event::{GovernanceStatement, Target};
use lineage_ledger::keys::public_key_base64;

use crate::governance::{self, Banner};
use crate::page::PageError;
use crate::reader::{self, Body};
use crate::view::{Digest, Layout, When, count, enc};
use crate::{Explorer, blocking};

pub(crate) struct RuntimeRow {
    pub name: String,
    pub href: String,
    pub active: usize,
    pub revoked: usize,
    pub events: String,
    pub first_grant: Option<u64>,
}

#[derive(Template, WebTemplate)]
#[template(path = "runtimes.html")]
struct RuntimesPage {
    layout: Layout,
    rows: Vec<RuntimeRow>,
    authorities: Vec<Digest>,
}

pub(crate) async fn list(State(ex): State<Explorer>) -> Result<Response, PageError> {
    let (keys, counts) = blocking(&ex, |core| {
        Ok((core.store.keys()?, core.store.runtime_counts()?))
    })
    .await?;
    let mut rows: BTreeMap<String, RuntimeRow> = BTreeMap::new();
    let blank = |name: &str| RuntimeRow {
        name: name.to_owned(),
        href: format!("/runtimes/{}", enc(name)),
        active: 0,
        revoked: 0,
        events: "0".into(),
        first_grant: None,
    };
    for k in &keys {
        let r = rows
            .entry(k.runtime.as_str().to_owned())
            .or_insert_with(|| blank(k.runtime.as_str()));
        if k.revoked_index.is_some() {
            r.revoked += 1;
        } else {
            r.active += 1;
        }
        r.first_grant = Some(
            r.first_grant
                .map_or(k.granted_index, |g| g.min(k.granted_index)),
        );
    }
    for (name, n) in counts {
        rows.entry(name.clone())
            .or_insert_with(|| blank(&name))
            .events = count(n);
    }
    let page = RuntimesPage {
        layout: Layout::new("Runtimes", "runtimes").with_origin(&ex.core().config.origin),
        rows: rows.into_values().collect(),
        authorities: ex
            .core()
            .authorities
            .iter()
            .map(|(id, _)| Digest::new(id.to_string()))
            .collect(),
    };
    Ok(page.into_response())
}

pub(crate) struct KeyRow {
    pub anchor: String,
    pub key_id: Digest,
    pub public_key: Digest,
    pub granted: u64,
    pub revoked: Option<u64>,
    /// The validity window in words (HTML).
    pub window: String,
    /// The scope in words (HTML).
    pub scope: String,
    /// "active", "not yet valid", "expired" or "revoked", at the ledger's clock.
    pub state: &'static str,
    pub state_class: &'static str,
}

pub(crate) struct HistoryRow {
    pub index: u64,
    pub action: &'static str,
    pub key_id: Digest,
    pub at: Option<When>,
    pub integrated: When,
    pub href: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "runtime.html")]
struct RuntimePage {
    layout: Layout,
    name: String,
    events: String,
    entries_href: String,
    keys: Vec<KeyRow>,
    history: Vec<HistoryRow>,
    halt: Option<Banner>,
    halt_count: usize,
}

pub(crate) async fn page(
    State(ex): State<Explorer>,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let keys = ex.core().runtime_keys(&name);
    let events = ex.core().runtime_count(&name);
    if keys.is_empty() && events == 0 {
        return Err(PageError::NotFound(format!(
            "No runtime named “{name}” has a key or an event in this log."
        )));
    }
    let halt_index = ex
        .core()
        .active_halts()
        .into_iter()
        .find(|(t, _)| matches!(t, Target::Runtime(r) if r.as_str() == name))
        .map(|(_, i)| i);
    let indices: Vec<u64> = keys
        .iter()
        .flat_map(|k| std::iter::once(k.granted_index).chain(k.revoked_index))
        .chain(halt_index)
        .collect();
    let entries = blocking(&ex, move |core| {
        indices
            .into_iter()
            .map(|i| reader::indexed_entry(core, i))
            .collect::<Result<Vec<_>, _>>()
    })
    .await?;
    let now = ex.core().clock.now();
    let mut history: Vec<HistoryRow> = entries
        .iter()
        .filter_map(|d| match &d.body {
            Body::Governance(g) => Some(HistoryRow {
                index: d.index,
                action: g.action_name(),
                key_id: match g.as_ref() {
                    GovernanceStatement::Key(k) => {
                        Digest::link(k.key_id.to_string(), format!("#key-{}", k.key_id))
                    }
                    GovernanceStatement::Halt(h) => Digest::new(h.target.to_string()),
                },
                at: Some(When::at(g.at(), now)),
                integrated: When::from_ms(d.entry.integrated_at_ms, now),
                href: format!("/events/{}", d.id),
            }),
            _ => None,
        })
        .collect();
    history.sort_by_key(|h| h.index);
    let size = ex.core().head().size;
    let halt = halt_index
        .and_then(|i| entries.iter().find(|d| d.index == i))
        .and_then(|d| Banner::new(d, size, now, governance::target_link));
    let halt_count = halt_index
        .and_then(|i| ex.core().halt_member_counts().get(&i).copied())
        .unwrap_or(0);
    let page = RuntimePage {
        layout: Layout::new(format!("Runtime {name}"), "runtimes")
            .with_origin(&ex.core().config.origin),
        entries_href: format!("/entries?runtime={}", enc(&name)),
        events: count(events),
        keys: keys
            .iter()
            .map(|k| KeyRow {
                anchor: format!("key-{}", k.key_id),
                key_id: Digest::new(k.key_id.to_string()),
                public_key: Digest::new(public_key_base64(&k.public_key)),
                granted: k.granted_index,
                revoked: k.revoked_index,
                window: governance::window_html(k.not_before, k.not_after, now),
                scope: governance::scope_html(k.scope.as_ref()),
                state: governance::key_state(k, now).0,
                state_class: governance::key_state(k, now).1,
            })
            .collect(),
        history,
        halt,
        halt_count,
        name,
    };
    Ok(page.into_response())
}
