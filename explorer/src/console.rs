//! `/governance`: the Governance Console. Who may execute what, at a glance
//! (authority keys, every runtime's keys with their state, window and scope,
//! the active halts with what they stop drawn as a lineage graph, the closed
//! and halted workload counts); the governance history in log order,
//! filtered by runtime, key and action; the same state "as of index I"; and
//! a form that composes a statement and signs it **in the browser**
//! (`static/console.js`), so the server never holds an authority key.
//!
//! **Now** reads the log's committed state: the key registry and the active
//! halts ([`Core::active_halts`]) and their marks ([`Core::halt_members`]).
//! **As of I** replays the governance statements at indices `<= I` (they are
//! few next to events; at most [`REPLAY_MAX`] of them, else the page says
//! so): keys and active halts are exact, and a key's state is taken at the
//! integration time of entry I. What a halt stopped is exact for a halt
//! still active now (its marks are fixed when it commits: a new event
//! deriving from a halted workload is refused, so no workload joins them
//! later); for a halt resumed since, the set it stopped is not kept and the
//! page says so rather than replaying every event (ARCHITECTURE.md,
//! decisions). Workload counts are shown for now only.

use std::collections::{BTreeMap, HashMap};

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use lineage_ledger::event::{GovernanceAction, GovernanceStatement, Target};
use lineage_ledger::keys::public_key_base64;
use lineage_ledger::rules::KeyRecord;
use lineage_ledger::store::GovernanceReads;
use lineage_log::Core;
use time::OffsetDateTime;

use crate::governance::{self, proof_href, target_link};
use crate::page::PageError;
use crate::reader::{self, Body, Decoded};
use crate::view::{Digest, Layout, When, count, enc, escape};
use crate::{Explorer, assets, blocking, graph};

/// Most governance statements replayed for "as of I".
pub(crate) const REPLAY_MAX: usize = 10_000;
/// History rows per page.
const HISTORY_PAGE: usize = 100;
/// Governance entries read, at most, to fill one history page.
const HISTORY_SCAN: usize = 5_000;
/// Stopped workloads drawn per page of a halt's subtree.
const MEMBERS_PAGE: usize = 8;
/// Events drawn per stopped workload (its first ones).
const EVENTS_PER_MEMBER: usize = 10;
/// Governance indices read per store scan.
const CHUNK: usize = 256;

pub(crate) struct AuthorityRow {
    pub key_id: Digest,
    pub public_key: Digest,
}

pub(crate) struct KeyRow {
    pub key_id: Digest,
    pub public_key: Digest,
    pub granted: u64,
    pub granted_href: String,
    pub granted_proof: Option<String>,
    pub revoked: Option<u64>,
    pub revoked_href: String,
    pub revoked_proof: Option<String>,
    pub window: String,
    pub scope: String,
    pub state: &'static str,
    pub state_class: &'static str,
}

pub(crate) struct RuntimeKeys {
    pub name: String,
    pub href: String,
    pub anchor: String,
    pub keys: Vec<KeyRow>,
}

pub(crate) struct HaltRow {
    pub index: u64,
    pub anchor: String,
    pub href: String,
    pub proof_href: Option<String>,
    pub reason: Option<String>,
    /// What it targets, with a link (HTML).
    pub target: String,
    pub integrated: When,
    /// "N workloads" it stops; `None` when not known (resumed since, as of I).
    pub stopped: Option<String>,
    /// The page drawing this halt's subtree.
    pub draw_href: String,
    pub drawn: bool,
}

pub(crate) struct HistoryRow {
    pub index: u64,
    pub href: String,
    pub proof_href: Option<String>,
    pub action: &'static str,
    pub badge: &'static str,
    /// What it is about (HTML).
    pub subject: String,
    pub signer: Digest,
    pub integrated: When,
    pub at: When,
}

/// The drawing of one halt's stopped subtree, a page of workloads at a time.
pub(crate) struct Subtree {
    pub index: u64,
    pub total: usize,
    pub first: usize,
    pub last: usize,
    pub members: Vec<(String, String)>,
    pub svg: String,
    pub nodes: usize,
    pub truncated: bool,
    pub earlier: Option<String>,
    pub later: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "governance.html")]
struct ConsolePage {
    layout: Layout,
    console_js: String,
    verify_js: String,
    /// `Some(I)` when showing the state as of index I.
    as_of: Option<u64>,
    as_of_text: String,
    as_of_time: Option<When>,
    tree_size: u64,
    /// The replay met more than [`REPLAY_MAX`] statements.
    replay_cut: bool,
    replay_max: usize,
    authorities: Vec<AuthorityRow>,
    runtimes: Vec<RuntimeKeys>,
    halts: Vec<HaltRow>,
    subtree: Option<Subtree>,
    halted_workloads: String,
    closed_workloads: String,
    workloads: String,
    counts_caught_up: bool,
    history: Vec<HistoryRow>,
    history_more: Option<String>,
    history_cut: bool,
    filter_runtime: String,
    filter_key: String,
    filter_action: String,
    filtered: bool,
    /// JSON for `console.js`: authorities, origin, log key (HTML-safe).
    data: String,
}

/// The query string, parsed.
#[derive(Default)]
struct Params {
    as_of: Option<u64>,
    runtime: String,
    key: String,
    action: String,
    halt: Option<u64>,
    members: usize,
    after: Option<u64>,
}

fn number(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, PageError> {
    match q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            PageError::BadRequest(format!("“{name}” must be a whole number, not {v:?}."))
        }),
    }
}

impl Params {
    fn parse(q: &HashMap<String, String>) -> Result<Params, PageError> {
        let text = |name: &str| q.get(name).map(|s| s.trim().to_owned()).unwrap_or_default();
        let action = text("action");
        if !matches!(action.as_str(), "" | "grant" | "revoke" | "halt" | "resume") {
            return Err(PageError::BadRequest(format!(
                "“action” must be grant, revoke, halt or resume, not {action:?}."
            )));
        }
        Ok(Params {
            as_of: number(q, "as_of")?,
            runtime: text("runtime"),
            key: text("key").to_ascii_lowercase(),
            action,
            halt: number(q, "halt")?,
            members: usize::try_from(number(q, "members")?.unwrap_or(0)).unwrap_or(usize::MAX),
            after: number(q, "after")?,
        })
    }

    /// This page's URL with some parameters changed (`None` drops one).
    fn href(&self, changes: &[(&str, Option<String>)]) -> String {
        let mut pairs: BTreeMap<&str, String> = BTreeMap::new();
        let mut put = |k: &'static str, v: Option<String>| {
            if let Some(v) = v.filter(|v| !v.is_empty()) {
                pairs.insert(k, v);
            }
        };
        put("as_of", self.as_of.map(|i| i.to_string()));
        put("runtime", Some(self.runtime.clone()));
        put("key", Some(self.key.clone()));
        put("action", Some(self.action.clone()));
        put("halt", self.halt.map(|i| i.to_string()));
        for (k, v) in changes {
            match v {
                Some(v) if !v.is_empty() => {
                    pairs.insert(k, v.clone());
                }
                _ => {
                    pairs.remove(k);
                }
            }
        }
        let q: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect();
        if q.is_empty() {
            "/governance".into()
        } else {
            format!("/governance?{}", q.join("&"))
        }
    }
}

/// The governance state at some index: keys and active halts.
struct State0 {
    keys: Vec<KeyRecord>,
    halts: Vec<(Target, u64)>,
    cut: bool,
}

/// Replays the governance statements at indices `<= upto`, at most
/// [`REPLAY_MAX`] of them (`cut` says the bound was met).
fn replay(core: &Core, upto: u64) -> Result<State0, PageError> {
    let mut keys: BTreeMap<String, KeyRecord> = BTreeMap::new();
    let mut halts: Vec<(Target, u64)> = Vec::new();
    let mut cursor = None;
    let mut read = 0;
    loop {
        if read >= REPLAY_MAX {
            let more = core.store.governance_indices(cursor, 1)?;
            let cut = more.first().is_some_and(|&i| i <= upto);
            return Ok(finish(keys, halts, cut));
        }
        let batch = core
            .store
            .governance_indices(cursor, CHUNK.min(REPLAY_MAX - read))?;
        let Some(&last) = batch.last() else {
            return Ok(finish(keys, halts, false));
        };
        for i in batch {
            if i > upto {
                return Ok(finish(keys, halts, false));
            }
            read += 1;
            let d = reader::indexed_entry(core, i)?;
            let Body::Governance(g) = &d.body else {
                continue;
            };
            match g.as_ref() {
                GovernanceStatement::Key(k) => match k.action {
                    GovernanceAction::Grant => {
                        keys.insert(k.key_id.to_string(), KeyRecord::granted(k, i));
                    }
                    _ => {
                        if let Some(r) = keys.get_mut(&k.key_id.to_string()) {
                            r.revoked_index = Some(i);
                        }
                    }
                },
                GovernanceStatement::Halt(h) => {
                    halts.retain(|(t, _)| t != &h.target);
                    if h.action == GovernanceAction::Halt {
                        halts.push((h.target.clone(), i));
                    }
                }
            }
        }
        cursor = Some(last);
    }
}

fn finish(keys: BTreeMap<String, KeyRecord>, halts: Vec<(Target, u64)>, cut: bool) -> State0 {
    State0 {
        keys: keys.into_values().collect(),
        halts,
        cut,
    }
}

/// What the page reads from the log on the blocking pool.
struct Loaded {
    state: State0,
    /// Entries named by the state (grants, revocations, halts), by index.
    named: HashMap<u64, Decoded>,
    history: Vec<Decoded>,
    history_next: Option<u64>,
    history_cut: bool,
    as_of_ms: Option<u64>,
    halted_workloads: usize,
    subtree: Option<(u64, usize, Vec<String>, graph::Collected)>,
    closed: u64,
    workloads: u64,
    caught_up: bool,
}

/// Whether the governance entry `d` passes the history filters.
fn matches(d: &Decoded, p: &Params) -> bool {
    let Body::Governance(g) = &d.body else {
        return false;
    };
    if !p.action.is_empty() && g.action_name() != p.action {
        return false;
    }
    if !p.runtime.is_empty() {
        let runtime = match g.as_ref() {
            GovernanceStatement::Key(k) => Some(k.runtime.as_str()),
            GovernanceStatement::Halt(h) => match &h.target {
                Target::Runtime(r) => Some(r.as_str()),
                Target::Workload(_) => None,
            },
        };
        if runtime != Some(p.runtime.as_str()) {
            return false;
        }
    }
    if !p.key.is_empty() {
        let subject = match g.as_ref() {
            GovernanceStatement::Key(k) => k.key_id.to_string(),
            GovernanceStatement::Halt(_) => String::new(),
        };
        let signer = d.entry.key_id.to_string();
        if !subject.starts_with(&p.key) && !signer.starts_with(&p.key) {
            return false;
        }
    }
    true
}

/// One page of the history: matching entries after `after`, up to `upto`.
fn history(
    core: &Core,
    p: &Params,
    upto: u64,
) -> Result<(Vec<Decoded>, Option<u64>, bool), PageError> {
    let mut out = Vec::new();
    let mut cursor = p.after;
    let mut read = 0;
    while read < HISTORY_SCAN {
        let batch = core.store.governance_indices(cursor, CHUNK)?;
        let Some(&last) = batch.last() else {
            return Ok((out, None, false));
        };
        for i in batch {
            if i > upto {
                return Ok((out, None, false));
            }
            read += 1;
            let d = reader::indexed_entry(core, i)?;
            if matches(&d, p) {
                out.push(d);
                if out.len() == HISTORY_PAGE {
                    let more = core
                        .store
                        .governance_indices(Some(i), 1)?
                        .first()
                        .is_some_and(|&n| n <= upto);
                    return Ok((out, more.then_some(i), false));
                }
            }
        }
        cursor = Some(last);
    }
    // Stopped by the scan bound: offer to go on from where it stopped.
    Ok((out, cursor, true))
}

/// A page of the workloads the halt at `index` stops, and their drawing.
fn subtree(
    core: &Core,
    index: u64,
    offset: usize,
) -> Result<(usize, Vec<String>, graph::Collected), PageError> {
    let total = core.halt_member_counts().get(&index).copied().unwrap_or(0);
    // Past the end: the last page.
    let offset = offset.min(total.saturating_sub(1) / MEMBERS_PAGE * MEMBERS_PAGE);
    let members = core.halt_members(index, offset, MEMBERS_PAGE);
    let mut events = Vec::new();
    for w in &members {
        for (_, i) in core.store.workload_range(w, 0, EVENTS_PER_MEMBER)? {
            events.push(reader::indexed_entry(core, i)?);
        }
    }
    Ok((total, members, graph::workload_context(core, &events)?))
}

pub(crate) async fn page(
    State(ex): State<Explorer>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let p = Params::parse(&q)?;
    let size = ex.core().head().size;
    if let Some(i) = p.as_of
        && i >= size
    {
        return Err(PageError::BadRequest(format!(
            "“as_of” must be an index in the log (below its size, {size}), not {i}."
        )));
    }
    let idx = ex.index.clone();
    let params = (p.as_of, p.halt, p.members);
    let hp = Params {
        as_of: p.as_of,
        runtime: p.runtime.clone(),
        key: p.key.clone(),
        action: p.action.clone(),
        halt: p.halt,
        members: p.members,
        after: p.after,
    };
    let l = blocking(&ex, move |core| {
        let (as_of, halt, members) = params;
        // Only entries inside the published tree: a commit's rows are in the
        // store a moment before its head is published.
        let published = core.head().size.saturating_sub(1);
        let upto = as_of.map_or(published, |i| i.min(published));
        let state = match as_of {
            Some(i) => replay(core, i)?,
            None => State0 {
                keys: core.store.keys()?,
                halts: core.active_halts(),
                cut: false,
            },
        };
        let mut named = HashMap::new();
        let wanted = state
            .keys
            .iter()
            .flat_map(|k| std::iter::once(k.granted_index).chain(k.revoked_index))
            .chain(state.halts.iter().map(|(_, i)| *i));
        for i in wanted {
            if let std::collections::hash_map::Entry::Vacant(e) = named.entry(i) {
                e.insert(reader::indexed_entry(core, i)?);
            }
        }
        let (history, history_next, history_cut) = history(core, &hp, upto)?;
        // The halt drawn: the one asked for, else the first active one, if
        // it is active now (what it stops is then known exactly).
        let now_active = core.active_halts();
        let drawn = halt
            .or_else(|| state.halts.first().map(|(_, i)| *i))
            .filter(|h| now_active.iter().any(|(_, i)| i == h));
        let subtree = match drawn {
            Some(h) => {
                let (total, m, g) = subtree(core, h, members)?;
                Some((h, total, m, g))
            }
            None => None,
        };
        let caught_up = idx.top_up(core)?;
        let snap = idx.snapshot();
        Ok(Loaded {
            as_of_ms: match as_of {
                Some(i) => Some(reader::integrated_at_ms(core, i)?),
                None => None,
            },
            halted_workloads: core.halted_workload_count(),
            closed: snap.kinds.get("workload.end").copied().unwrap_or(0),
            workloads: snap.workloads,
            caught_up,
            state,
            named,
            history,
            history_next,
            history_cut,
            subtree,
        })
    })
    .await?;
    let now = ex.core().clock.now();
    // A key's state is read at the clock of the state shown.
    let at = l.as_of_ms.map_or(now, |ms| {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(now)
    });
    let entry_href = |i: u64| {
        l.named
            .get(&i)
            .map_or_else(|| format!("/entries/{i}"), |d| format!("/events/{}", d.id))
    };
    let proof = |i: u64| (i < size).then(|| proof_href(i, size));
    let mut runtimes: BTreeMap<String, RuntimeKeys> = BTreeMap::new();
    for k in &l.state.keys {
        let name = k.runtime.as_str();
        let (state, state_class) = governance::key_state(k, at);
        runtimes
            .entry(name.to_owned())
            .or_insert_with(|| RuntimeKeys {
                name: name.to_owned(),
                href: format!("/runtimes/{}", enc(name)),
                anchor: format!("rt-{}", enc(name)),
                keys: Vec::new(),
            })
            .keys
            .push(KeyRow {
                key_id: Digest::link(
                    k.key_id.to_string(),
                    format!("/runtimes/{}#key-{}", enc(name), k.key_id),
                ),
                public_key: Digest::new(public_key_base64(&k.public_key)),
                granted: k.granted_index,
                granted_href: entry_href(k.granted_index),
                granted_proof: proof(k.granted_index),
                revoked: k.revoked_index,
                revoked_href: k.revoked_index.map(entry_href).unwrap_or_default(),
                revoked_proof: k.revoked_index.and_then(proof),
                window: governance::window_html(k.not_before, k.not_after, at),
                scope: governance::scope_html(k.scope.as_ref()),
                state,
                state_class,
            });
    }
    let counts = ex.core().halt_member_counts();
    let now_active = ex.core().active_halts();
    let drawn = l.subtree.as_ref().map(|s| s.0);
    let halts = l
        .state
        .halts
        .iter()
        .map(|(t, i)| {
            let d = l.named.get(i);
            let reason = d
                .and_then(governance::halt_statement)
                .and_then(|h| h.reason.clone());
            HaltRow {
                index: *i,
                anchor: format!("halt-{i}"),
                href: entry_href(*i),
                proof_href: proof(*i),
                reason,
                target: target_link(t),
                integrated: d.map_or_else(
                    || When::at(now, now),
                    |d| When::from_ms(d.entry.integrated_at_ms, now),
                ),
                stopped: now_active.iter().any(|(_, a)| a == i).then(|| {
                    let n = counts.get(i).copied().unwrap_or(0);
                    format!("{n} workload{}", if n == 1 { "" } else { "s" })
                }),
                draw_href: format!(
                    "{}#subtree",
                    p.href(&[("halt", Some(i.to_string())), ("members", None)])
                ),
                drawn: drawn == Some(*i),
            }
        })
        .collect();
    let subtree = l.subtree.map(|(index, total, members, g)| {
        let first = p.members.min(total.saturating_sub(members.len()));
        let last = first + members.len();
        Subtree {
            index,
            total,
            first: first + 1,
            last,
            earlier: (p.members > 0).then(|| {
                format!(
                    "{}#subtree",
                    p.href(&[
                        ("halt", Some(index.to_string())),
                        (
                            "members",
                            Some(p.members.saturating_sub(MEMBERS_PAGE).to_string())
                        ),
                    ])
                )
            }),
            later: (last < total).then(|| {
                format!(
                    "{}#subtree",
                    p.href(&[
                        ("halt", Some(index.to_string())),
                        ("members", Some(last.to_string())),
                    ])
                )
            }),
            members: members
                .into_iter()
                .map(|w| {
                    let href = format!("/workloads/{}", enc(&w));
                    (w, href)
                })
                .collect(),
            svg: graph::render(&g.nodes, None),
            nodes: g.nodes.len(),
            truncated: g.truncated,
        }
    });
    let history = l
        .history
        .iter()
        .filter_map(|d| {
            let Body::Governance(g) = &d.body else {
                return None;
            };
            let subject = match g.as_ref() {
                GovernanceStatement::Key(k) => format!(
                    "key <code class=\"mono\" title=\"{id}\">{short}</code> of {rt}",
                    id = k.key_id,
                    short = crate::view::short(&k.key_id.to_string()),
                    rt = governance::runtime_link(k.runtime.as_str()),
                ),
                GovernanceStatement::Halt(h) => {
                    let mut s = target_link(&h.target);
                    if let Some(r) = &h.reason {
                        s.push_str(&format!(": <span class=\"reason\">{}</span>", escape(r)));
                    }
                    s
                }
            };
            Some(HistoryRow {
                index: d.index,
                href: format!("/events/{}", d.id),
                proof_href: proof(d.index),
                action: g.action_name(),
                badge: match g.action() {
                    GovernanceAction::Grant | GovernanceAction::Resume => "k-grant",
                    _ => "k-deny",
                },
                subject,
                signer: Digest::new(d.entry.key_id.to_string()),
                integrated: When::from_ms(d.entry.integrated_at_ms, now),
                at: When::at(g.at(), now),
            })
        })
        .collect();
    let authorities: Vec<AuthorityRow> = ex
        .core()
        .authorities
        .iter()
        .map(|(id, k)| AuthorityRow {
            key_id: Digest::new(id.to_string()),
            public_key: Digest::new(public_key_base64(k)),
        })
        .collect();
    let data = serde_json::json!({
        "authorities": ex.core().authorities.iter().map(|(id, k)| serde_json::json!({
            "key_id": id.to_string(),
            "public_key": public_key_base64(k),
        })).collect::<Vec<_>>(),
        "origin": ex.core().config.origin,
        "vkey": ex.core().vkey,
    });
    let page = ConsolePage {
        layout: Layout::new(
            match p.as_of {
                Some(i) => format!("Governance as of index {i}"),
                None => "Governance".into(),
            },
            "governance",
        )
        .with_origin(&ex.core().config.origin),
        console_js: assets::url("console.js"),
        verify_js: assets::url("verify.js"),
        as_of: p.as_of,
        as_of_text: p.as_of.map(|i| i.to_string()).unwrap_or_default(),
        as_of_time: l.as_of_ms.map(|ms| When::from_ms(ms, now)),
        tree_size: size,
        replay_cut: l.state.cut,
        replay_max: REPLAY_MAX,
        authorities,
        runtimes: runtimes.into_values().collect(),
        halts,
        subtree,
        halted_workloads: count(l.halted_workloads as u64),
        closed_workloads: count(l.closed),
        workloads: count(l.workloads),
        counts_caught_up: l.caught_up,
        history,
        history_more: l
            .history_next
            .map(|n| p.href(&[("after", Some(n.to_string()))]) + "#history"),
        history_cut: l.history_cut,
        filtered: !(p.runtime.is_empty() && p.key.is_empty() && p.action.is_empty()),
        filter_runtime: p.runtime.clone(),
        filter_key: p.key.clone(),
        filter_action: p.action.clone(),
        data: script_json(&data),
    };
    Ok(page.into_response())
}

/// JSON safe inside `<script type="application/json">`: no `</script>`.
fn script_json(v: &serde_json::Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_keep_filters_and_drop_what_changes() {
        let p = Params {
            as_of: Some(7),
            runtime: "tools/sandbox".into(),
            action: "halt".into(),
            ..Params::default()
        };
        assert_eq!(
            p.href(&[]),
            "/governance?action=halt&as_of=7&runtime=tools%2Fsandbox"
        );
        assert_eq!(
            p.href(&[("as_of", None), ("halt", Some("3".into()))]),
            "/governance?action=halt&halt=3&runtime=tools%2Fsandbox"
        );
        assert_eq!(Params::default().href(&[]), "/governance");
    }

    #[test]
    fn script_json_cannot_close_the_script() {
        let v = serde_json::json!({"origin": "</script><b>&"});
        let s = script_json(&v);
        assert!(!s.contains("</script>") && !s.contains('<') && !s.contains('&'));
        assert_eq!(serde_json::from_str::<serde_json::Value>(&s).ok(), Some(v));
    }
}
