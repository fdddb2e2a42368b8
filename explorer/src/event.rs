//! `/events/{id}`: one entry, every field, its signer's key state, its place
//! in the workload and the lineage graph; `/events/{id}/receipt`: its
//! receipt, to check offline.

use std::collections::HashMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use lineage_ledger::event::{GovernanceAction, GovernanceStatement, KeyStatement};
use lineage_ledger::keys::{EventId, public_key_base64};
use lineage_ledger::leaf_hash;
use lineage_ledger::store::children_of;
use lineage_log::Core;

use crate::entries::Row;
use crate::governance::{self, Lifted, Link, target_link};
use crate::page::PageError;
use crate::reader::{self, Body, Decoded};
use crate::view::{Digest, Layout, When, enc, kind_class, span};
use crate::{Explorer, blocking, graph};

/// Default and largest graph depth.
const DEPTH: u32 = 3;
const DEPTH_MAX: u32 = 12;
/// Children listed.
const CHILDREN: usize = 200;
/// Workloads a halt stops, listed.
const MEMBERS: usize = 50;

/// A labelled value of the payload table.
pub(crate) struct Field {
    pub name: &'static str,
    pub html: String,
}

pub(crate) struct KeyState {
    pub key: Digest,
    pub role: &'static str,
    pub runtime: String,
    pub runtime_href: String,
    pub granted: Option<u64>,
    pub revoked: Option<u64>,
    /// "valid", "revoked later", "not granted", "authority".
    pub verdict: &'static str,
    pub verdict_class: &'static str,
}

/// What a halt stops now, or what became of it; what a resume lifted.
pub(crate) struct HaltEffect {
    pub is_halt: bool,
    pub active: bool,
    /// Workloads the halt stops now.
    pub count: usize,
    /// The first of them, sorted: name and page.
    pub members: Vec<(String, String)>,
    pub more: usize,
    /// The halt is over: the resume that lifted it, if found.
    pub lifted_by: Option<Link>,
    /// A resume: the halt it lifted, if found.
    pub lifts: Option<Link>,
    /// Governance statements read at most to pair a halt and a resume.
    pub scanned: usize,
}

#[derive(Template, WebTemplate)]
#[template(path = "event.html")]
struct EventPage {
    layout: Layout,
    index: u64,
    id: Digest,
    id_full: String,
    kind: String,
    kind_class: &'static str,
    is_event: bool,
    heading: String,
    fields: Vec<Field>,
    attrs: Option<String>,
    payload_raw: String,
    payload_type: &'static str,
    signature: Digest,
    signer: KeyState,
    integrated: When,
    skew: String,
    leaf: Digest,
    workload: String,
    workload_href: String,
    prev_link: Option<Row>,
    next_link: Option<Row>,
    parents: Vec<Row>,
    children: Vec<Row>,
    children_more: bool,
    graph_svg: String,
    graph_nodes: usize,
    graph_truncated: bool,
    depth: u32,
    depth_less: Option<String>,
    depth_more: Option<String>,
    tree_size: u64,
    proof_href: String,
    halt: Option<HaltEffect>,
}

struct Loaded {
    d: Decoded,
    prev: Option<Decoded>,
    next: Option<Decoded>,
    parents: Vec<Decoded>,
    children: Vec<Decoded>,
    children_more: bool,
    graph: graph::Collected,
    key: Option<lineage_ledger::rules::KeyRecord>,
    authority: bool,
    halt: Option<HaltEffect>,
}

fn parse_id(raw: &str) -> Result<EventId, PageError> {
    raw.parse().map_err(|_| {
        PageError::BadRequest(format!(
            "“{raw}” is not an event ID: an event ID is 64 lowercase hex digits \
             (the BLAKE3 hash of the payload)."
        ))
    })
}

fn load(core: &Core, id: &EventId, depth: u32) -> Result<Loaded, PageError> {
    let d = reader::by_id(core, id)?
        .ok_or_else(|| PageError::NotFound(format!("No event with ID {id} is in this log.")))?;
    let (prev, next, parents) = match &d.body {
        Body::Event(e) => {
            let prev = match e.prev {
                Some(p) => reader::by_id(core, &p)?,
                None => None,
            };
            let next = match core.store.workload_index(e.workload.as_str(), e.seq + 1)? {
                Some(i) => Some(reader::indexed_entry(core, i)?),
                None => None,
            };
            let mut parents = Vec::new();
            for p in &e.parents {
                if let Some(pd) = reader::by_id(core, p)? {
                    parents.push(pd);
                }
            }
            (prev, next, parents)
        }
        _ => (None, None, Vec::new()),
    };
    let position = match &d.body {
        Body::Event(e) => Some((e.workload.as_str(), e.seq)),
        _ => None,
    };
    let child_ix = children_of(core.store.as_ref(), id, position, CHILDREN + 1)?;
    let children_more = child_ix.len() > CHILDREN;
    let mut children = Vec::new();
    for i in child_ix.into_iter().take(CHILDREN) {
        children.push(reader::indexed_entry(core, i)?);
    }
    let graph = graph::ancestry(core, &d, depth)?;
    let key = core.key(&d.entry.key_id);
    let authority = core.authorities.get(&d.entry.key_id).is_some();
    let halt = halt_effect(core, &d)?;
    Ok(Loaded {
        d,
        prev,
        next,
        parents,
        children,
        children_more,
        graph,
        key,
        authority,
        halt,
    })
}

/// For a halt: the workloads it stops now, or the resume that lifted it;
/// for a resume: the halt it lifted.
fn halt_effect(core: &Core, d: &Decoded) -> Result<Option<HaltEffect>, PageError> {
    let Some(h) = governance::halt_statement(d) else {
        return Ok(None);
    };
    let is_halt = h.action == GovernanceAction::Halt;
    let active = is_halt && core.active_halts().iter().any(|(_, i)| *i == d.index);
    let count = if active {
        core.halt_member_counts()
            .get(&d.index)
            .copied()
            .unwrap_or(0)
    } else {
        0
    };
    let members: Vec<(String, String)> = if active {
        core.halt_members(d.index, 0, MEMBERS)
            .into_iter()
            .map(|w| {
                let href = format!("/workloads/{}", enc(&w));
                (w, href)
            })
            .collect()
    } else {
        Vec::new()
    };
    let lifted_by = if is_halt && !active {
        match governance::lifted_by(core, d.index, &h.target)? {
            Lifted::By(l) => Some(l),
            Lifted::NotFound => None,
        }
    } else {
        None
    };
    let lifts = if is_halt {
        None
    } else {
        governance::lifts(core, d.index, &h.target)?
    };
    Ok(Some(HaltEffect {
        is_halt,
        active,
        more: count.saturating_sub(members.len()),
        count,
        members,
        lifted_by,
        lifts,
        scanned: governance::SCAN,
    }))
}

fn depth_of(q: &HashMap<String, String>) -> Result<u32, PageError> {
    match q.get("depth").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(DEPTH),
        Some(v) => match v.parse::<u32>() {
            Ok(d) if (1..=DEPTH_MAX).contains(&d) => Ok(d),
            _ => Err(PageError::BadRequest(format!(
                "The graph depth must be a whole number from 1 to {DEPTH_MAX}, not {v:?}."
            ))),
        },
    }
}

pub(crate) async fn page(
    State(ex): State<Explorer>,
    Path(raw): Path<String>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let id = parse_id(&raw)?;
    let depth = depth_of(&q)?;
    let l = blocking(&ex, move |core| load(core, &id, depth)).await?;
    let core = ex.core();
    let now = core.clock.now();
    let head = core.head().size;
    let d = &l.d;
    let id_s = d.id.to_string();
    let mut fields = Vec::new();
    let mut attrs = None;
    let mut workload = String::new();
    let mut skew = String::new();
    let heading;
    match &d.body {
        Body::Event(e) => {
            heading = format!("{} · {} seq {}", e.kind, e.workload, e.seq);
            workload = e.workload.as_str().to_owned();
            let rt = e.runtime.as_str();
            fields.push(Field {
                name: "runtime",
                html: format!(
                    "<a href=\"/runtimes/{}\">{}</a>",
                    enc(rt),
                    crate::view::escape(rt)
                ),
            });
            fields.push(Field {
                name: "workload",
                html: format!(
                    "<a href=\"/workloads/{}\">{}</a>",
                    enc(&workload),
                    crate::view::escape(&workload)
                ),
            });
            fields.push(Field {
                name: "seq",
                html: e.seq.to_string(),
            });
            fields.push(Field {
                name: "kind",
                html: format!(
                    "<span class=\"badge {}\">{}</span>",
                    kind_class(&e.kind),
                    crate::view::escape(&e.kind)
                ),
            });
            fields.push(Field {
                name: "at",
                html: When::at(e.at, now).to_string(),
            });
            domain_fields(&mut fields, &l);
            fields.push(Field {
                name: "prev",
                html: match e.prev {
                    Some(p) => Digest::event(&p.to_string()).to_string(),
                    None => {
                        "<span class=\"muted\">none (first event of the workload)</span>".into()
                    }
                },
            });
            fields.push(Field {
                name: "parents",
                html: if e.parents.is_empty() {
                    "<span class=\"muted\">none</span>".into()
                } else {
                    e.parents
                        .iter()
                        .map(|p| Digest::event(&p.to_string()).to_string())
                        .collect::<Vec<_>>()
                        .join("<br>")
                },
            });
            if let Some(a) = &e.attrs {
                attrs = serde_json::to_string_pretty(&a.to_map()).ok();
            }
            let integrated = time::OffsetDateTime::from_unix_timestamp_nanos(
                i128::from(d.entry.integrated_at_ms) * 1_000_000,
            )
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            skew = format!("{} after the runtime's `at`", span(integrated - e.at));
        }
        Body::Governance(g) => {
            let action = g.action_name();
            fields.push(Field {
                name: "action",
                html: format!("<span class=\"badge k-life\">{action}</span>"),
            });
            match g.as_ref() {
                GovernanceStatement::Key(k) => {
                    heading = format!("governance · {action} a key of {}", k.runtime);
                    key_fields(&mut fields, k, now);
                    if let (GovernanceAction::Grant, Some(rec)) = (k.action, core.key(&k.key_id))
                        && rec.granted_index == d.index
                    {
                        let (label, class) = governance::key_state(&rec, now);
                        fields.push(Field {
                            name: "key now",
                            html: format!("<span class=\"state {class}\">{label}</span>"),
                        });
                    }
                }
                GovernanceStatement::Halt(h) => {
                    heading = format!("governance · {action} {}", h.target);
                    fields.push(Field {
                        name: "target",
                        html: target_link(&h.target),
                    });
                    if let Some(reason) = &h.reason {
                        fields.push(Field {
                            name: "reason",
                            html: crate::view::escape(reason),
                        });
                    }
                }
            }
            fields.push(Field {
                name: "at",
                html: When::at(g.at(), now).to_string(),
            });
        }
        Body::Unreadable => {
            heading = "unreadable payload".into();
        }
    }
    let key_id = d.entry.key_id.to_string();
    let signer = match (&l.key, l.authority) {
        (_, true) => KeyState {
            key: Digest::new(key_id),
            role: "authority key",
            runtime: String::new(),
            runtime_href: String::new(),
            granted: None,
            revoked: None,
            verdict: "log authority (configured trust root)",
            verdict_class: "ok",
        },
        (Some(k), false) => {
            let registered =
                k.granted_index < d.index && k.revoked_index.is_none_or(|r| r > d.index);
            // The grant's window, at the entry's integration time (the rule's clock).
            let in_window = lineage_ledger::rules::integration_time(d.entry.integrated_at_ms)
                .is_some_and(|t| {
                    k.not_before.is_none_or(|b| t >= b) && k.not_after.is_none_or(|a| t < a)
                });
            let valid = registered && in_window;
            let expired_since = k.not_after.is_some_and(|a| now >= a);
            KeyState {
                key: Digest::link(
                    key_id.clone(),
                    format!("/runtimes/{}#key-{key_id}", enc(k.runtime.as_str())),
                ),
                role: "runtime key",
                runtime: k.runtime.as_str().to_owned(),
                runtime_href: format!("/runtimes/{}", enc(k.runtime.as_str())),
                granted: Some(k.granted_index),
                revoked: k.revoked_index,
                verdict: match (registered, in_window, k.revoked_index, expired_since) {
                    (false, _, _, _) => "not valid at this index",
                    (true, false, _, _) => "outside the grant's validity window at this index",
                    (true, true, Some(_), _) => "granted at this index; revoked later",
                    (true, true, None, true) => "valid at this index; the grant has expired since",
                    (true, true, None, false) => "granted, active",
                },
                verdict_class: if valid { "ok" } else { "bad" },
            }
        }
        (None, false) => KeyState {
            key: Digest::new(key_id),
            role: "unknown key",
            runtime: String::new(),
            runtime_href: String::new(),
            granted: None,
            revoked: None,
            verdict: "not in the key registry",
            verdict_class: "bad",
        },
    };
    let bytes = d.entry.encode();
    let base = format!("/events/{id_s}");
    let page = EventPage {
        layout: Layout::new(format!("Event #{}", d.index), "entries")
            .with_origin(&core.config.origin),
        index: d.index,
        id: Digest::new(id_s.clone()),
        id_full: id_s.clone(),
        kind: d.kind(),
        kind_class: kind_class(&d.kind()),
        is_event: matches!(d.body, Body::Event(_)),
        heading,
        fields,
        attrs,
        payload_raw: String::from_utf8_lossy(&d.entry.payload).into_owned(),
        payload_type: d.entry.entry_type.payload_type().as_str(),
        signature: Digest::new(base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            d.entry.signature,
        )),
        signer,
        integrated: When::from_ms(d.entry.integrated_at_ms, now),
        skew,
        leaf: Digest::new(leaf_hash(&bytes).to_hex()),
        workload_href: format!("/workloads/{}", enc(&workload)),
        workload,
        prev_link: l.prev.as_ref().map(|p| Row::new(p, now)),
        next_link: l.next.as_ref().map(|p| Row::new(p, now)),
        parents: l.parents.iter().map(|p| Row::new(p, now)).collect(),
        children: l.children.iter().map(|p| Row::new(p, now)).collect(),
        children_more: l.children_more,
        graph_svg: graph::render(&l.graph.nodes, Some(&id_s)),
        graph_nodes: l.graph.nodes.len(),
        graph_truncated: l.graph.truncated,
        depth,
        depth_less: (depth > 1).then(|| format!("{base}?depth={}#lineage", depth - 1)),
        depth_more: (depth < DEPTH_MAX).then(|| format!("{base}?depth={}#lineage", depth + 1)),
        tree_size: head,
        proof_href: governance::proof_href(d.index, head),
        halt: l.halt,
    };
    Ok(page.into_response())
}

/// The receipt of the entry against the latest checkpoint: the
/// `lineage-bundle/v1` JSON that `lineage-verify bundle` checks offline.
pub(crate) async fn receipt(
    State(ex): State<Explorer>,
    Path(raw): Path<String>,
) -> Result<Response, PageError> {
    let id = parse_id(&raw)?;
    let receipt = blocking(&ex, move |core| {
        let index = core
            .store
            .event_index(&id)?
            .ok_or_else(|| PageError::NotFound(format!("No event with ID {id} is in this log.")))?;
        Ok(core.receipt_at_head(index)?)
    })
    .await?;
    let body = serde_json::to_vec_pretty(&receipt).map_err(|_| PageError::Internal)?;
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"lineage-receipt-{}.json\"",
        receipt.index
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

/// The fields of a grant or revocation.
fn key_fields(fields: &mut Vec<Field>, k: &KeyStatement, now: time::OffsetDateTime) {
    fields.push(Field {
        name: "runtime",
        html: format!(
            "<a href=\"/runtimes/{}\">{}</a>",
            enc(k.runtime.as_str()),
            crate::view::escape(k.runtime.as_str())
        ),
    });
    fields.push(Field {
        name: "public_key",
        html: Digest::new(public_key_base64(&k.public_key)).to_string(),
    });
    fields.push(Field {
        name: "key ID",
        html: Digest::link(
            k.key_id.to_string(),
            format!("/runtimes/{}#key-{}", enc(k.runtime.as_str()), k.key_id),
        )
        .to_string(),
    });
    if k.action == GovernanceAction::Grant {
        fields.push(Field {
            name: "validity",
            html: governance::window_html(k.not_before, k.not_after, now),
        });
        fields.push(Field {
            name: "scope",
            html: governance::scope_html(k.scope.as_ref()),
        });
    }
}

/// The event's trust domain, and each link (prev or parent) to an event in
/// another domain: a boundary crossing, as the lineage graph marks it.
fn domain_fields(fields: &mut Vec<Field>, l: &Loaded) {
    let Some(e) = l.d.event() else { return };
    let Some(own) = l.d.trust_domain() else {
        return;
    };
    let from_attrs = e.domain.is_none();
    fields.push(Field {
        name: "domain",
        html: format!(
            "<span class=\"pill domain\">{}</span>{}",
            crate::view::escape(&own),
            if from_attrs {
                " <span class=\"muted small\">(from attrs.trust_domain)</span>"
            } else {
                ""
            }
        ),
    });
    let links = l
        .prev
        .iter()
        .map(|p| ("prev", p))
        .chain(l.parents.iter().map(|p| ("parent", p)));
    let crossings: Vec<String> = links
        .filter_map(|(rel, p)| {
            let theirs = p.trust_domain()?;
            (theirs != own).then(|| {
                format!(
                    "<span class=\"crossing\">crosses from <span class=\"pill domain\">{}</span> \
                     to <span class=\"pill domain\">{}</span></span> \
                     <span class=\"muted small\">({rel} {})</span>",
                    crate::view::escape(&theirs),
                    crate::view::escape(&own),
                    Digest::event(&p.id.to_string())
                )
            })
        })
        .collect();
    if !crossings.is_empty() {
        fields.push(Field {
            name: "boundary",
            html: crossings.join("<br>"),
        });
    }
}
