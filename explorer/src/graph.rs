//! The lineage graph: the ancestry and descendants of events as a layered
//! DAG, drawn on the server as SVG.
//!
//! Workloads are lanes (rows), in order of their first event in the log;
//! time flows left to right. The log index is a topological order (a `prev`
//! or a parent is always integrated before the event naming it), so one pass
//! in index order places every node one column right of its rightmost
//! predecessor and of the previous node in its lane. `prev` edges are solid,
//! `parents` edges dashed; an edge whose ends differ in runtime or in trust
//! domain (`attrs.trust_domain`) is highlighted. Every node links to its
//! event page. [`layout`] and [`render`] are pure; [`ancestry`] and
//! [`workload_context`] read the log, bounded by a depth and a node limit.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt::Write as _;

use lineage_ledger::keys::EventId;
use lineage_ledger::store::children_of;
use lineage_log::Core;

use crate::page::PageError;
use crate::reader::{self, Decoded};
use crate::view::{enc, escape, kind_class};

/// Most nodes drawn in one graph.
pub const MAX_NODES: usize = 400;
/// Children read per node when walking descendants.
const CHILDREN_PER_NODE: usize = 64;

/// One event in the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// Event ID (lowercase hex).
    pub id: String,
    /// Log index.
    pub index: u64,
    /// Workload (the lane).
    pub workload: String,
    /// Position in the workload.
    pub seq: u64,
    /// Event kind.
    pub kind: String,
    /// Signing runtime.
    pub runtime: String,
    /// `attrs.trust_domain`, when stated.
    pub domain: Option<String>,
    /// `prev` event ID.
    pub prev: Option<String>,
    /// `parents` event IDs.
    pub parents: Vec<String>,
    /// Time shown in the tooltip.
    pub at: String,
}

impl Node {
    fn from_decoded(d: &Decoded) -> Option<Node> {
        let e = d.event()?;
        Some(Node {
            id: d.id.to_string(),
            index: d.index,
            workload: e.workload.as_str().to_owned(),
            seq: e.seq,
            kind: e.kind.clone(),
            runtime: e.runtime.as_str().to_owned(),
            domain: d.trust_domain(),
            prev: e.prev.map(|p| p.to_string()),
            parents: e.parents.iter().map(ToString::to_string).collect(),
            at: e
                .at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
        })
    }
}

/// Where each node goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// Lanes top to bottom: (workload, runtime of its first node).
    pub lanes: Vec<(String, String)>,
    /// Per node (in the order given): (lane, column).
    pub cells: Vec<(usize, usize)>,
    /// Number of columns.
    pub columns: usize,
}

/// Places nodes (see the module docs). Nodes may come in any order.
pub fn layout(nodes: &[Node]) -> Placement {
    let mut order: Vec<usize> = (0..nodes.len()).collect();
    order.sort_by_key(|&i| nodes[i].index);
    let by_id: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut lanes: Vec<(String, String)> = Vec::new();
    let mut lane_of: HashMap<&str, usize> = HashMap::new();
    let mut lane_last: Vec<Option<usize>> = Vec::new();
    let mut cells = vec![(0, 0); nodes.len()];
    let mut columns = 0;
    for &i in &order {
        let n = &nodes[i];
        let lane = *lane_of.entry(n.workload.as_str()).or_insert_with(|| {
            lanes.push((n.workload.clone(), n.runtime.clone()));
            lane_last.push(None);
            lanes.len() - 1
        });
        let mut col = lane_last[lane].map_or(0, |c| c + 1);
        for p in n.prev.iter().chain(&n.parents) {
            if let Some(&j) = by_id.get(p.as_str())
                && nodes[j].index < n.index
            {
                col = col.max(cells[j].1 + 1);
            }
        }
        cells[i] = (lane, col);
        lane_last[lane] = Some(col);
        columns = columns.max(col + 1);
    }
    Placement {
        lanes,
        cells,
        columns,
    }
}

const LABEL_W: f64 = 184.0;
const COL_W: f64 = 156.0;
const NODE_W: f64 = 128.0;
const NODE_H: f64 = 40.0;
const LANE_H: f64 = 66.0;
const PAD: f64 = 14.0;
/// The drawing shrinks to fit its box down to this scale, then scrolls.
const FIT: f64 = 0.74;

/// Keeps both ends of a long identifier: `task-d943…/research/exec`.
fn truncate_middle(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_owned();
    }
    let tail = (max - 1) * 2 / 3;
    let head = max - 1 - tail;
    let mut t: String = s.chars().take(head).collect();
    t.push('…');
    t.extend(s.chars().skip(n - tail));
    t
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// Draws the graph. `focus` is outlined; nodes whose `prev` or parents are
/// not drawn get a short stub on their left (there is more ancestry).
pub fn render(nodes: &[Node], focus: Option<&str>) -> String {
    let p = layout(nodes);
    let width = LABEL_W + p.columns.max(1) as f64 * COL_W + PAD;
    let height = p.lanes.len().max(1) as f64 * LANE_H + 2.0 * PAD;
    let by_id: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let pos = |i: usize| -> (f64, f64) {
        let (lane, col) = p.cells[i];
        (
            LABEL_W + col as f64 * COL_W,
            PAD + lane as f64 * LANE_H + (LANE_H - NODE_H) / 2.0,
        )
    };
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"lineage\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width:.0} {height:.0}\" \
         style=\"width:100%;height:auto;min-width:{:.0}px;max-width:{width:.0}px\" \
         role=\"img\" aria-label=\"Lineage graph of {} events in {} workloads\">\
         <defs>\
         <marker id=\"arr\" viewBox=\"0 0 8 8\" refX=\"7\" refY=\"4\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L8,4 L0,8 z\" class=\"arrow\"/></marker>\
         <marker id=\"arr-x\" viewBox=\"0 0 8 8\" refX=\"7\" refY=\"4\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">\
         <path d=\"M0,0 L8,4 L0,8 z\" class=\"arrow-x\"/></marker></defs>",
        width * FIT,
        nodes.len(),
        p.lanes.len()
    );
    // Lanes.
    for (l, (workload, runtime)) in p.lanes.iter().enumerate() {
        let y = PAD + l as f64 * LANE_H;
        let _ = write!(
            s,
            "<rect class=\"lane{}\" x=\"0\" y=\"{y:.1}\" width=\"{width:.0}\" height=\"{LANE_H}\"/>\
             <a href=\"/workloads/{}\"><text class=\"lane-name\" x=\"10\" y=\"{:.1}\">{}<title>workload {}</title></text></a>\
             <text class=\"lane-rt\" x=\"10\" y=\"{:.1}\">{}</text>",
            if l % 2 == 1 { " alt" } else { "" },
            escape(&enc(workload)),
            y + LANE_H / 2.0 - 3.0,
            escape(&truncate_middle(workload, 25)),
            escape(workload),
            y + LANE_H / 2.0 + 13.0,
            escape(&truncate_middle(runtime, 28)),
        );
    }
    // Edges first, so nodes sit on top.
    for (i, n) in nodes.iter().enumerate() {
        let (x, y) = pos(i);
        let mut missing = false;
        let edges = n
            .prev
            .iter()
            .map(|p| (p, true))
            .chain(n.parents.iter().map(|p| (p, false)));
        for (pid, is_prev) in edges {
            let Some(&j) = by_id.get(pid.as_str()) else {
                missing = true;
                continue;
            };
            let m = &nodes[j];
            let (px, py) = pos(j);
            let (x1, y1) = (px + NODE_W, py + NODE_H / 2.0);
            let (x2, y2) = (x - 2.0, y + NODE_H / 2.0);
            let rt = m.runtime != n.runtime;
            let dom = m.domain.is_some() && n.domain.is_some() && m.domain != n.domain;
            let cross = rt || dom;
            let class = match (is_prev, cross) {
                (true, false) => "edge prev",
                (true, true) => "edge prev cross",
                (false, false) => "edge parent",
                (false, true) => "edge parent cross",
            };
            let marker = if cross { "arr-x" } else { "arr" };
            let mut why = if is_prev {
                "prev".to_owned()
            } else {
                "parent".to_owned()
            };
            if rt {
                let _ = write!(why, ": runtime {} → {}", m.runtime, n.runtime);
            }
            if dom {
                let _ = write!(
                    why,
                    "{}trust domain {} → {}",
                    if rt { ", " } else { ": " },
                    m.domain.as_deref().unwrap_or(""),
                    n.domain.as_deref().unwrap_or("")
                );
            }
            let d = if (y1 - y2).abs() < 0.5 {
                format!("M{x1:.1},{y1:.1} L{x2:.1},{y2:.1}")
            } else {
                let mid = (x2 - x1).max(40.0) / 2.0;
                format!(
                    "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}",
                    x1 + mid,
                    x2 - mid
                )
            };
            let _ = write!(
                s,
                "<path class=\"{class}\" d=\"{d}\" marker-end=\"url(#{marker})\"><title>{}</title></path>",
                escape(&why)
            );
        }
        if missing {
            let _ = write!(
                s,
                "<path class=\"edge stub\" d=\"M{:.1},{:.1} L{:.1},{:.1}\"><title>more ancestry: open the event</title></path>",
                x - 26.0,
                y + NODE_H / 2.0,
                x - 4.0,
                y + NODE_H / 2.0
            );
        }
    }
    // Nodes.
    for (i, n) in nodes.iter().enumerate() {
        let (x, y) = pos(i);
        let focus_class = if focus == Some(n.id.as_str()) {
            " focus"
        } else {
            ""
        };
        let _ = write!(
            s,
            "<a href=\"/events/{id}\" class=\"node-link\" data-event=\"{id}\">\
             <g class=\"node {kc}{focus_class}\">\
             <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{NODE_W}\" height=\"{NODE_H}\" rx=\"6\"/>\
             <rect class=\"stripe\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"4\" height=\"{NODE_H}\" rx=\"2\"/>\
             <text class=\"node-kind\" x=\"{tx:.1}\" y=\"{ty1:.1}\">{kind}</text>\
             <text class=\"node-sub\" x=\"{tx:.1}\" y=\"{ty2:.1}\">seq {seq} · #{index}</text>\
             <title>{tip}</title></g></a>",
            id = escape(&n.id),
            kc = kind_class(&n.kind),
            tx = x + 11.0,
            ty1 = y + 17.0,
            ty2 = y + 32.0,
            kind = escape(&truncate(&n.kind, 18)),
            seq = n.seq,
            index = n.index,
            tip = escape(&format!(
                "{}\nworkload {} seq {}\nruntime {}{}\n{}\nindex {}  id {}",
                n.kind,
                n.workload,
                n.seq,
                n.runtime,
                n.domain
                    .as_deref()
                    .map(|d| format!("\ntrust domain {d}"))
                    .unwrap_or_default(),
                n.at,
                n.index,
                n.id
            )),
        );
    }
    s.push_str("</svg>");
    s
}

/// What a collection walk produced.
#[derive(Debug, Default)]
pub struct Collected {
    /// The nodes.
    pub nodes: Vec<Node>,
    /// True when the node limit stopped the walk.
    pub truncated: bool,
}

/// The ancestry (through `prev` and `parents`) and the descendants (through
/// the children index and each workload's next event) of `focus`, each up
/// to `depth` edges away, at most [`MAX_NODES`] nodes.
///
/// # Errors
/// Store failures.
pub(crate) fn ancestry(core: &Core, focus: &Decoded, depth: u32) -> Result<Collected, PageError> {
    let mut out = Collected::default();
    let Some(first) = Node::from_decoded(focus) else {
        return Ok(out);
    };
    let mut seen: HashSet<String> = HashSet::from([first.id.clone()]);
    let mut up: VecDeque<(Node, u32)> = VecDeque::from([(first.clone(), 0)]);
    // Each with its position: its workload's next event is a child too.
    let mut down: VecDeque<(EventId, String, u64, u32)> =
        VecDeque::from([(focus.id, first.workload.clone(), first.seq, 0)]);
    out.nodes.push(first);
    while let Some((n, d)) = up.pop_front() {
        if d >= depth {
            continue;
        }
        for pid in n.prev.iter().chain(&n.parents) {
            if seen.contains(pid) {
                continue;
            }
            if out.nodes.len() >= MAX_NODES {
                out.truncated = true;
                break;
            }
            let Ok(id) = pid.parse::<EventId>() else {
                continue;
            };
            if let Some(node) = reader::by_id(core, &id)?
                .as_ref()
                .and_then(Node::from_decoded)
            {
                seen.insert(node.id.clone());
                out.nodes.push(node.clone());
                up.push_back((node, d + 1));
            }
        }
    }
    while let Some((id, workload, seq, d)) = down.pop_front() {
        if d >= depth {
            continue;
        }
        let position = Some((workload.as_str(), seq));
        for child in children_of(core.store.as_ref(), &id, position, CHILDREN_PER_NODE)? {
            if out.nodes.len() >= MAX_NODES {
                out.truncated = true;
                break;
            }
            let c = reader::indexed_entry(core, child)?;
            let Some(node) = Node::from_decoded(&c) else {
                continue;
            };
            if seen.insert(node.id.clone()) {
                let (workload, seq) = (node.workload.clone(), node.seq);
                out.nodes.push(node);
                down.push_back((c.id, workload, seq, d + 1));
            }
        }
    }
    Ok(out)
}

/// A workload page's events plus, one step out, the events they derive from
/// in other workloads and the events of other workloads that derive from them.
///
/// # Errors
/// Store failures.
pub(crate) fn workload_context(core: &Core, events: &[Decoded]) -> Result<Collected, PageError> {
    let mut out = Collected::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut outside: BTreeMap<u64, Node> = BTreeMap::new();
    for d in events {
        if let Some(n) = Node::from_decoded(d) {
            seen.insert(n.id.clone());
            out.nodes.push(n);
        }
    }
    let home: Vec<Node> = out.nodes.clone();
    for n in &home {
        for pid in &n.parents {
            if seen.contains(pid) || seen.len() + outside.len() >= MAX_NODES {
                continue;
            }
            if let Ok(id) = pid.parse::<EventId>()
                && let Some(p) = reader::by_id(core, &id)?
                    .as_ref()
                    .and_then(Node::from_decoded)
            {
                seen.insert(p.id.clone());
                outside.insert(p.index, p);
            }
        }
        let id: EventId = n.id.parse().map_err(|_| PageError::Internal)?;
        // Children in other workloads only: no `prev` link leaves one.
        for child in core.store.children(&id, CHILDREN_PER_NODE)? {
            if seen.len() + outside.len() >= MAX_NODES {
                out.truncated = true;
                break;
            }
            let c = reader::indexed_entry(core, child)?;
            if let Some(cn) = Node::from_decoded(&c)
                && cn.workload != n.workload
                && seen.insert(cn.id.clone())
            {
                outside.insert(cn.index, cn);
            }
        }
    }
    out.nodes.extend(outside.into_values());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, index: u64, w: &str, seq: u64, prev: Option<&str>, parents: &[&str]) -> Node {
        Node {
            id: id.into(),
            index,
            workload: w.into(),
            seq,
            kind: "step".into(),
            runtime: format!("rt-{w}"),
            domain: None,
            prev: prev.map(Into::into),
            parents: parents.iter().map(|p| (*p).into()).collect(),
            at: String::new(),
        }
    }

    #[track_caller]
    fn check(nodes: &[Node], want: &[(usize, usize)]) {
        assert_eq!(layout(nodes).cells, want);
    }

    #[test]
    fn a_chain_is_one_lane_left_to_right() {
        check(
            &[
                node("a", 1, "w", 0, None, &[]),
                node("b", 2, "w", 1, Some("a"), &[]),
                node("c", 3, "w", 2, Some("b"), &[]),
            ],
            &[(0, 0), (0, 1), (0, 2)],
        );
    }

    #[test]
    fn a_child_workload_starts_right_of_its_parent() {
        check(
            &[
                node("a", 1, "w", 0, None, &[]),
                node("b", 2, "w", 1, Some("a"), &[]),
                node("x", 3, "v", 0, None, &["b"]),
                node("c", 4, "w", 2, Some("b"), &[]),
                node("y", 5, "v", 1, Some("x"), &[]),
            ],
            &[(0, 0), (0, 1), (1, 2), (0, 2), (1, 3)],
        );
    }

    #[test]
    fn order_of_input_does_not_matter_and_unknown_links_are_ignored() {
        let nodes = [
            node("c", 4, "w", 2, Some("b"), &["zzz"]),
            node("b", 2, "w", 1, Some("a"), &[]),
        ];
        check(&nodes, &[(0, 1), (0, 0)]);
        let svg = render(&nodes, Some("b"));
        assert_eq!(svg.matches("class=\"node-link\"").count(), 2);
        assert!(
            svg.contains("edge stub"),
            "b's prev and c's parent are not drawn"
        );
        assert!(svg.contains("node k-other focus"));
    }

    #[test]
    fn runtime_and_domain_changes_are_highlighted() {
        let mut a = node("a", 1, "w", 0, None, &[]);
        a.domain = Some("corp".into());
        let mut x = node("x", 2, "v", 0, None, &["a"]);
        x.domain = Some("sandbox".into());
        let svg = render(&[a, x], None);
        assert!(svg.contains("edge parent cross"), "{svg}");
        assert!(svg.contains("trust domain corp → sandbox"));
    }

    #[test]
    fn labels_are_escaped() {
        let mut a = node("a", 1, "<w>", 0, None, &[]);
        a.kind = "<script>".into();
        let svg = render(&[a], None);
        assert!(!svg.contains("<script>"));
        assert!(svg.contains("/workloads/%3Cw%3E"));
    }
}
