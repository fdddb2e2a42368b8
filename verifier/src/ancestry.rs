//! The verified ancestry of one event (`lineage-verify lineage`).
//!
//! A node can only be judged with the log around it: its signature needs
//! the key registry at its index, its chain needs its workload's history, its
//! membership needs every leaf hashed up to the signed root. So this first
//! runs the full [`audit`](crate::audit) of the export, then walks the
//! event's `prev` and `parents` links back to workload starts, reading each
//! ancestor's entry again (random access into the bundles), and marks each
//! node with the violations the audit found at its index.
//!
//! The walk keeps its own stack (no recursion), and the text tree bounds its
//! indentation ([`MAX_INDENT`]), so time, memory and output stay linear in
//! the number of ancestors however deep the parent links go.
//!
//! The verdict is about the ancestry: it fails when the export's tree does not
//! verify, when an ancestor is missing, or when any node of the ancestry breaks
//! a rule. Violations elsewhere in the log are counted, not failed on.

use std::collections::HashMap;
use std::path::Path;

use lineage_ledger::TILE_WIDTH;
use lineage_ledger::entry::{EntryType, LogEntry};
use lineage_ledger::event::{parse_event, parse_governance};
use lineage_ledger::keys::EventId;
use lineage_ledger::tile::{TileKind, TilePath, decode_bundle, layout};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::audit::{AuditOptions, AuditReport, run};
use crate::export::ExportDir;
use crate::receipt::{Decoded, decoded_json};
use crate::report::{Line, Verdict, Violation};
use crate::{InputError, Progress};

/// How a node was reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// The event asked about.
    Target,
    /// The `prev` of the node above at the same depth.
    Prev,
    /// `parents[i]` of the node above, one level less deep.
    Parent(usize),
}

impl Link {
    fn label(&self) -> String {
        match self {
            Link::Target => "event".into(),
            Link::Prev => "prev".into(),
            Link::Parent(i) => format!("parents[{i}]"),
        }
    }
}

/// One event of the ancestry.
#[derive(Debug)]
pub struct Node {
    /// Its ID.
    pub event_id: EventId,
    /// Its leaf index; `None` when it is not in the log.
    pub index: Option<u64>,
    /// Its decoded payload, when the entry could be read.
    pub decoded: Option<Decoded>,
    /// Positions in the audit's violations of those at its index.
    pub violations: Vec<usize>,
    /// Why its entry could not be read back, if it could not.
    pub unreadable: Option<Violation>,
}

/// Indentation levels the text tree draws. A line deeper than this is drawn
/// at this level with its depth as a number (`[depth 50000] `), so the text
/// stays linear in the number of lines: indenting every line by its depth
/// would make a chain of 50,000 parents about 5 GB of spaces.
pub const MAX_INDENT: usize = 32;

/// The text before a tree line at `depth`: four spaces per level up to
/// [`MAX_INDENT`], then `[depth N] ` for deeper lines. At most
/// `4 * MAX_INDENT + 30` bytes, whatever the depth.
pub fn indent(depth: usize) -> String {
    let mut out = "    ".repeat(depth.min(MAX_INDENT));
    if depth > MAX_INDENT {
        out += &format!("[depth {depth}] ");
    }
    out
}

/// One line of the printed tree.
#[derive(Debug, Clone)]
pub struct TreeLine {
    /// Nesting level: 0 for the event's workload chain, one more per
    /// `parents` link. Drawn as indentation up to [`MAX_INDENT`] (see [`indent`]).
    pub depth: usize,
    /// How the node was reached.
    pub link: Link,
    /// Position in [`AncestryReport::nodes`].
    pub node: usize,
    /// The node was already printed above.
    pub repeat: bool,
}

/// The ancestry of one event, and the audit it rests on.
#[derive(Debug)]
pub struct AncestryReport {
    /// The event asked about.
    pub target: EventId,
    /// The full audit of the export.
    pub audit: AuditReport,
    /// Every node, each once, in the order first reached.
    pub nodes: Vec<Node>,
    /// The tree, in print order.
    pub lines: Vec<TreeLine>,
    /// Missing ancestors.
    pub missing: Vec<Violation>,
}

impl AncestryReport {
    fn node_failed(&self, n: &Node) -> bool {
        n.index.is_none() || !n.violations.is_empty() || n.unreadable.is_some()
    }

    /// Fails on a structural problem of the export, a missing ancestor or a
    /// violation at a node; a fork against `--since` is not asked here.
    pub fn verdict(&self) -> Verdict {
        let structural = self.audit.violations.iter().any(Violation::is_structural);
        if structural || !self.missing.is_empty() || self.nodes.iter().any(|n| self.node_failed(n))
        {
            Verdict::Failed
        } else {
            Verdict::Verified
        }
    }

    /// Violations of the audit that are neither structural nor at a node.
    pub fn elsewhere(&self) -> usize {
        let at_nodes: usize = self.nodes.iter().map(|n| n.violations.len()).sum();
        let structural = self
            .audit
            .violations
            .iter()
            .filter(|v| v.is_structural())
            .count();
        self.audit
            .violations
            .len()
            .saturating_sub(at_nodes + structural)
    }

    fn node_status(&self, n: &Node) -> String {
        if n.index.is_none() {
            return "MISSING: not in the log".into();
        }
        if let Some(v) = &n.unreadable {
            return format!("UNREADABLE: {v}");
        }
        if n.violations.is_empty() {
            return "ok".into();
        }
        let codes: Vec<String> = n
            .violations
            .iter()
            .filter_map(|&i| self.audit.violations.get(i))
            .map(|v| v.to_string())
            .collect();
        format!("FAIL: {}", codes.join("; "))
    }

    fn node_text(&self, n: &Node) -> String {
        let what = match &n.decoded {
            Some(Decoded::Event(e)) => format!(
                "{}#{} {} by {} at {}",
                e.workload,
                e.seq,
                e.kind,
                e.runtime,
                e.at.format(&Rfc3339).unwrap_or_default()
            ),
            Some(Decoded::Governance(g)) => format!("governance: {}", g.summary()),
            None => "?".into(),
        };
        let index = n.index.map_or("-".into(), |i| i.to_string());
        format!("{what}  [index {index}] {}", n.event_id)
    }

    /// Human-readable report: the audit's structural problems, the tree, the
    /// verdict. Its length is linear in the number of tree lines (each line's
    /// indentation is bounded, see [`indent`]), and it reads nothing: a pure
    /// function of the report.
    pub fn to_text(&self) -> String {
        let mut out = format!("ancestry of {}\n", self.target);
        for w in &self.audit.warnings {
            out += &format!("WARNING: {w}\n");
        }
        for v in self.audit.violations.iter().filter(|v| v.is_structural()) {
            out += &format!("{}\n", Line(v));
        }
        for line in &self.lines {
            let Some(n) = self.nodes.get(line.node) else {
                continue;
            };
            let indent = indent(line.depth);
            let label = match line.link {
                Link::Target | Link::Prev => String::new(),
                Link::Parent(i) => format!("parents[{i}] -> "),
            };
            if line.repeat {
                let name = match &n.decoded {
                    Some(Decoded::Event(e)) => format!("{}#{} ", e.workload, e.seq),
                    Some(Decoded::Governance(_)) | None => String::new(),
                };
                out += &format!("{indent}{label}{name}{} (shown above)\n", n.event_id);
            } else {
                out += &format!(
                    "{indent}{label}{}  {}\n",
                    self.node_text(n),
                    self.node_status(n)
                );
            }
        }
        for v in &self.missing {
            out += &format!("{}\n", Line(v));
        }
        let elsewhere = self.elsewhere();
        if elsewhere > 0 {
            out += &format!(
                "note: the audit found {elsewhere} violation(s) elsewhere in the log (run `lineage-verify audit`)\n"
            );
        }
        out += &format!(
            "{} events in the ancestry; {}\n",
            self.nodes.len(),
            self.audit.summary()
        );
        out += self.verdict().word();
        out.push('\n');
        out
    }

    /// Machine-readable report.
    pub fn to_json(&self) -> Value {
        let nodes: Vec<Value> = self
            .nodes
            .iter()
            .map(|n| {
                json!({
                    "event_id": n.event_id.to_string(),
                    "index": n.index,
                    "entry": n.decoded.as_ref().map(decoded_json),
                    "status": if self.node_failed(n) { "failed" } else { "ok" },
                    "violations": n.violations.iter().filter_map(|&i| self.audit.violations.get(i)).collect::<Vec<_>>(),
                    "unreadable": n.unreadable,
                })
            })
            .collect();
        let tree: Vec<Value> = self
            .lines
            .iter()
            .map(|l| {
                json!({
                    "depth": l.depth,
                    "link": l.link.label(),
                    "event_id": self.nodes.get(l.node).map(|n| n.event_id.to_string()),
                    "repeat": l.repeat,
                })
            })
            .collect();
        let audit = self.audit.to_json();
        json!({
            "command": "lineage",
            "verdict": self.verdict(),
            "exit_code": self.verdict().exit_code(),
            "event_id": self.target.to_string(),
            "nodes": nodes,
            "tree": tree,
            "missing": self.missing,
            "structural_violations": self.audit.violations.iter().filter(|v| v.is_structural()).collect::<Vec<_>>(),
            "violations_elsewhere": self.elsewhere(),
            "checkpoint": audit["checkpoint"],
            "warnings": audit["warnings"],
            "summary": audit["summary"],
        })
    }
}

/// Reads entries back by leaf index, keeping a few bundles.
struct EntryReader<'a> {
    export: &'a ExportDir,
    size: u64,
    cache: HashMap<u64, Vec<Vec<u8>>>,
}

/// Bundles kept by [`EntryReader`].
const CACHED_BUNDLES: usize = 64;

impl EntryReader<'_> {
    fn entry(&mut self, index: u64) -> Result<LogEntry, Violation> {
        let bundle = index / TILE_WIDTH;
        if !self.cache.contains_key(&bundle) {
            let l = layout(TileKind::Entries, self.size);
            let width = if bundle < l.full_tiles {
                TILE_WIDTH as u16
            } else {
                l.partial.map_or(0, |p| p.width)
            };
            let path = TilePath::entries(bundle, width).map_err(|_| Violation::MissingFile {
                path: format!("tile/entries/{bundle} (beyond the tree)"),
            })?;
            let bytes = self.export.tile(&path)?;
            let entries = decode_bundle(&bytes).map_err(|error| Violation::MalformedBundle {
                path: path.to_string(),
                error,
            })?;
            if self.cache.len() >= CACHED_BUNDLES {
                self.cache.clear();
            }
            self.cache
                .insert(bundle, entries.into_iter().map(<[u8]>::to_vec).collect());
        }
        let bytes = self
            .cache
            .get(&bundle)
            .and_then(|b| b.get((index % TILE_WIDTH) as usize))
            .ok_or(Violation::Internal {
                index,
                what: "entry not in its bundle",
            })?;
        LogEntry::decode(bytes).map_err(|error| Violation::MalformedEntry { index, error })
    }
}

/// Audits the export at `dir`, then walks the ancestry of `target`.
///
/// # Errors
/// As [`crate::audit::audit`]. `opts.tree_only` is ignored (a replay is
/// needed), so `opts.authorities` is required ([`InputError::NoAuthorities`]).
pub fn ancestry(
    target: EventId,
    dir: &Path,
    opts: &AuditOptions,
    progress: &mut dyn Progress,
) -> Result<AncestryReport, InputError> {
    let opts = AuditOptions {
        tree_only: false,
        since: None,
        ..opts.clone()
    };
    let audited = run(dir, &opts, progress)?;
    let mut report = AncestryReport {
        target,
        audit: audited.report,
        nodes: Vec::new(),
        lines: Vec::new(),
        missing: Vec::new(),
    };
    let (Some(replay), Some(cp)) = (audited.replay, report.audit.checkpoint.clone()) else {
        return Ok(report);
    };
    let export = ExportDir::open(dir)?;
    let mut reader = EntryReader {
        export: &export,
        size: cp.size,
        cache: HashMap::new(),
    };
    let mut by_index: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, v) in report.audit.violations.iter().enumerate() {
        if let Some(index) = v.index()
            && !v.is_structural()
        {
            by_index.entry(index).or_default().push(i);
        }
    }

    let mut shown: HashMap<EventId, usize> = HashMap::new();
    // (event, depth, how reached, index of the entry that names it)
    let mut stack: Vec<(EventId, usize, Link, Option<u64>)> = vec![(target, 0, Link::Target, None)];
    while let Some((id, depth, link, child)) = stack.pop() {
        if let Some(&node) = shown.get(&id) {
            report.lines.push(TreeLine {
                depth,
                link,
                node,
                repeat: true,
            });
            continue;
        }
        let mut node = Node {
            event_id: id,
            index: replay.seen(&id).map(|s| s.index),
            decoded: None,
            violations: Vec::new(),
            unreadable: None,
        };
        if let Some(index) = node.index {
            node.violations = by_index.remove(&index).unwrap_or_default();
            match reader.entry(index) {
                Ok(entry) => {
                    node.decoded = match entry.entry_type {
                        EntryType::Event => parse_event(&entry.payload).ok().map(Decoded::Event),
                        EntryType::Governance => parse_governance(&entry.payload)
                            .ok()
                            .map(Decoded::Governance),
                    };
                }
                Err(v) => node.unreadable = Some(v),
            }
        } else if let Some(child_index) = child {
            report.missing.push(Violation::MissingAncestor {
                event_id: id,
                child_index,
                link: link.label(),
            });
        }
        if let Some(Decoded::Event(e)) = &node.decoded {
            if let Some(prev) = e.prev {
                stack.push((prev, depth, Link::Prev, node.index));
            }
            for (i, p) in e.parents.iter().enumerate().rev() {
                stack.push((*p, depth + 1, Link::Parent(i), node.index));
            }
        }
        let position = report.nodes.len();
        shown.insert(id, position);
        report.nodes.push(node);
        report.lines.push(TreeLine {
            depth,
            link,
            node: position,
            repeat: false,
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use lineage_ledger::event::parse_event;

    use super::*;
    use crate::audit::{AuthoritySource, Counts};

    /// The report of a chain of `n` events, each the only parent of the one
    /// above it: depths 0 to `n - 1`, as the walk lays them out.
    fn parent_chain(n: usize) -> AncestryReport {
        let event = parse_event(
            br#"{"runtime":"agent/a","workload":"w-000000","seq":0,"kind":"workload.start","at":"2026-09-21T14:13:20Z"}"#,
        )
        .expect("event");
        let audit = AuditReport {
            dir: PathBuf::from("export"),
            checkpoint: None,
            checkpoint_note: String::new(),
            log_key: String::new(),
            authority_source: AuthoritySource::CommandLine,
            authorities: Vec::new(),
            tree_only: false,
            warnings: Vec::new(),
            violations: Vec::new(),
            counts: Counts::default(),
            since: None,
            witnesses: None,
            elapsed: Duration::ZERO,
        };
        let id = |i: usize| EventId::of_payload(&i.to_le_bytes());
        AncestryReport {
            target: id(0),
            audit,
            nodes: (0..n)
                .map(|i| Node {
                    event_id: id(i),
                    index: Some((n - i) as u64),
                    decoded: Some(Decoded::Event(event.clone())),
                    violations: Vec::new(),
                    unreadable: None,
                })
                .collect(),
            lines: (0..n)
                .map(|i| TreeLine {
                    depth: i,
                    link: if i == 0 {
                        Link::Target
                    } else {
                        Link::Parent(0)
                    },
                    node: i,
                    repeat: false,
                })
                .collect(),
            missing: Vec::new(),
        }
    }

    /// Issue 10 item 7: one line per ancestor, each at most this long
    /// (indentation included), whatever its depth.
    const MAX_LINE_BYTES: usize = 400;

    #[test]
    fn text_of_a_deep_parent_chain_is_linear_in_its_length() {
        // Small first: quadratic indentation fails here (2 MB for 1,000 lines)
        // before the large case would need 20 GB.
        for n in [1_000, 100_000] {
            let text = parent_chain(n).to_text();
            assert_eq!(
                text.lines().count(),
                n + 3,
                "header, {n} lines, summary, verdict"
            );
            assert!(
                text.len() <= MAX_LINE_BYTES * n + 1_000,
                "{n} ancestors: {} bytes",
                text.len()
            );
            assert!(text.ends_with("VERIFIED\n"));
            let longest = text.lines().map(str::len).max().unwrap_or(0);
            assert!(longest <= MAX_LINE_BYTES, "{longest}");
        }
    }

    #[test]
    fn indentation_stops_at_max_indent_and_then_names_the_depth() {
        assert_eq!(indent(0), "");
        assert_eq!(indent(2), " ".repeat(8));
        assert_eq!(indent(MAX_INDENT), " ".repeat(4 * MAX_INDENT));
        assert_eq!(
            indent(MAX_INDENT + 1),
            format!("{}[depth 33] ", " ".repeat(4 * MAX_INDENT))
        );
        assert_eq!(
            indent(usize::MAX).len(),
            4 * MAX_INDENT + format!("[depth {}] ", usize::MAX).len()
        );
        let text = parent_chain(50_001).to_text();
        let last = text.lines().rev().nth(2).unwrap_or_default();
        assert!(
            last.starts_with(&format!(
                "{}[depth 50000] parents[0] -> w-000000#0 workload.start",
                " ".repeat(4 * MAX_INDENT)
            )),
            "{last}"
        );
    }
}
