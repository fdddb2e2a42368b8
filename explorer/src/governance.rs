//! Governance as the pages show it: which halt stops a workload and what it
//! targets, what a halt stops and what lifted it, and a runtime key's
//! validity window, scope and state in words.
//!
//! The halt state itself (marks, active halts) is the log's committed
//! in-memory state ([`Core::halted_by`], [`Core::active_halts`],
//! [`Core::halt_members`]); this module only reads entries to name them.
//! Finding the resume that lifted a halt (or the halt a resume lifted) walks
//! the governance statements, which are few next to events, and stops after
//! [`SCAN`] of them: the page then says it did not look further.

use lineage_ledger::event::{GovernanceAction, GovernanceStatement, HaltStatement, Target};
use lineage_ledger::rules::KeyRecord;
use lineage_ledger::store::GovernanceReads;
use lineage_log::Core;
use time::OffsetDateTime;

use crate::page::PageError;
use crate::reader::{self, Body, Decoded};
use crate::view::{When, enc, escape};

/// Governance statements read, at most, to pair a halt with its resume.
pub(crate) const SCAN: usize = 512;
/// Governance indices read per store scan.
const CHUNK: usize = 128;

/// The halt or resume statement an entry carries, if it carries one.
pub(crate) fn halt_statement(d: &Decoded) -> Option<&HaltStatement> {
    match &d.body {
        Body::Governance(g) => match g.as_ref() {
            GovernanceStatement::Halt(h) => Some(h),
            GovernanceStatement::Key(_) => None,
        },
        _ => None,
    }
}

/// A governance entry named on another page: its index and event page.
pub(crate) struct Link {
    pub index: u64,
    pub href: String,
}

impl Link {
    pub fn of(d: &Decoded) -> Link {
        Link {
            index: d.index,
            href: format!("/events/{}", d.id),
        }
    }
}

/// The halt that stops something, as a banner shows it.
pub(crate) struct Banner {
    pub index: u64,
    pub href: String,
    pub reason: Option<String>,
    /// What the halt targets, in words, with links (HTML).
    pub target: String,
    pub integrated: When,
    /// `None` in the instant between the halt's commit and the new
    /// checkpoint, when no signed tree includes it yet.
    pub proof_href: Option<String>,
}

impl Banner {
    /// The banner of the halt entry `d` (`None` if it is not a halt).
    /// `target` words what it targets relative to the page's subject.
    pub fn new(
        d: &Decoded,
        tree_size: u64,
        now: OffsetDateTime,
        target: impl FnOnce(&Target) -> String,
    ) -> Option<Banner> {
        let h = halt_statement(d).filter(|h| h.action == GovernanceAction::Halt)?;
        Some(Banner {
            index: d.index,
            href: format!("/events/{}", d.id),
            reason: h.reason.clone(),
            target: target(&h.target),
            integrated: When::from_ms(d.entry.integrated_at_ms, now),
            proof_href: (d.index < tree_size).then(|| proof_href(d.index, tree_size)),
        })
    }
}

/// The Proof Viewer's page for the inclusion of `index` in the tree of `size`.
pub(crate) fn proof_href(index: u64, size: u64) -> String {
    format!("/proofs/inclusion?index={index}&tree_size={size}")
}

/// A link to a halt's target page, with its kind: `workload <a>w</a>`.
pub(crate) fn target_link(target: &Target) -> String {
    match target {
        Target::Workload(w) => format!("workload {}", workload_link(w.as_str())),
        Target::Runtime(r) => format!("runtime {}", runtime_link(r.as_str())),
    }
}

pub(crate) fn workload_link(w: &str) -> String {
    format!("<a href=\"/workloads/{}\">{}</a>", enc(w), escape(w))
}

pub(crate) fn runtime_link(r: &str) -> String {
    format!("<a href=\"/runtimes/{}\">{}</a>", enc(r), escape(r))
}

/// What a halt that stops `workload` (owned by `runtime`) targets, worded
/// from that workload's side: itself, a workload it derives from, its own
/// runtime, or the runtime of a workload it derives from.
pub(crate) fn target_from(target: &Target, workload: &str, runtime: &str) -> String {
    match target {
        Target::Workload(w) if w.as_str() == workload => "this workload itself".into(),
        Target::Workload(w) => format!(
            "workload {}, which this workload derives from",
            workload_link(w.as_str())
        ),
        Target::Runtime(r) if r.as_str() == runtime => {
            format!("its runtime {}", runtime_link(r.as_str()))
        }
        Target::Runtime(r) => format!(
            "runtime {}, which started a workload this one derives from",
            runtime_link(r.as_str())
        ),
    }
}

/// Visits governance entries after `after` (from the first with `None`) in
/// index order until `visit` returns true, an entry at or past `before` is
/// reached, or [`SCAN`] entries were read. Returns whether it stopped
/// early because of the [`SCAN`] bound (and so may have missed one).
fn scan_governance(
    core: &Core,
    after: Option<u64>,
    before: u64,
    mut visit: impl FnMut(&Decoded, &HaltStatement) -> bool,
) -> Result<bool, PageError> {
    let mut cursor = after;
    let mut read = 0;
    while read < SCAN {
        let batch = core
            .store
            .governance_indices(cursor, CHUNK.min(SCAN - read))?;
        let Some(&last) = batch.last() else {
            return Ok(false);
        };
        for i in batch {
            if i >= before {
                return Ok(false);
            }
            read += 1;
            let d = reader::indexed_entry(core, i)?;
            if let Some(h) = halt_statement(&d)
                && visit(&d, h)
            {
                return Ok(false);
            }
        }
        cursor = Some(last);
    }
    Ok(true)
}

/// What became of a halt that is no longer active.
pub(crate) enum Lifted {
    /// The resume of the same target after it.
    By(Link),
    /// Not found within the bound on governance entries read.
    NotFound,
}

/// The resume that lifted the halt at `index` of `target`: the first resume
/// of the same target after it (a target holds one halt of its own at a
/// time, so that resume ended this halt).
pub(crate) fn lifted_by(core: &Core, index: u64, target: &Target) -> Result<Lifted, PageError> {
    let mut found = None;
    scan_governance(core, Some(index), u64::MAX, |d, h| {
        if h.action == GovernanceAction::Resume && &h.target == target {
            found = Some(Link::of(d));
            true
        } else {
            false
        }
    })?;
    Ok(found.map_or(Lifted::NotFound, Lifted::By))
}

/// The halt the resume at `index` of `target` lifted: the last halt of the
/// same target before it. `None` when it is not within the bound.
pub(crate) fn lifts(core: &Core, index: u64, target: &Target) -> Result<Option<Link>, PageError> {
    let mut last = None;
    let cut = scan_governance(core, None, index, |d, h| {
        if &h.target == target {
            last = match h.action {
                GovernanceAction::Halt => Some(Link::of(d)),
                _ => None,
            };
        }
        false
    })?;
    Ok(if cut { None } else { last })
}

/// A key's state at `now`: revoked, not yet valid, expired, or active (the
/// window is half-open, `[not_before, not_after)`, as the admission rule
/// reads it). Returns the label and a CSS class.
pub(crate) fn key_state(k: &KeyRecord, now: OffsetDateTime) -> (&'static str, &'static str) {
    if k.revoked_index.is_some() {
        ("revoked", "bad")
    } else if k.not_before.is_some_and(|t| now < t) {
        ("not yet valid", "warn")
    } else if k.not_after.is_some_and(|t| now >= t) {
        ("expired", "bad")
    } else {
        ("active", "ok")
    }
}

/// A validity window in words (HTML): "from T", "until T", "from T until
/// T", or "no time limit".
pub(crate) fn window_html(
    not_before: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> String {
    let at = |t: OffsetDateTime| When::at(t, now).to_string();
    match (not_before, not_after) {
        (None, None) => "<span class=\"muted\">no time limit</span>".into(),
        (Some(b), None) => format!("from {}", at(b)),
        (None, Some(a)) => format!(
            "until {} <span class=\"muted small\">(exclusive)</span>",
            at(a)
        ),
        (Some(b), Some(a)) => format!(
            "from {} until {} <span class=\"muted small\">(exclusive)</span>",
            at(b),
            at(a)
        ),
    }
}

/// A grant's scope in words (HTML): each listed set with its patterns
/// (a trailing `*` is a prefix), or "anything" when the grant has none.
pub(crate) fn scope_html(scope: Option<&lineage_ledger::event::Scope>) -> String {
    let Some(scope) = scope else {
        return "<span class=\"muted\">any kind, workload and domain</span>".into();
    };
    let w = scope.to_wire();
    let set = |name: &str, any: &str, patterns: &Option<Vec<String>>| match patterns {
        None => format!("<span class=\"muted\">{any}</span>"),
        Some(ps) if ps.is_empty() => format!("{name}: <span class=\"muted\">none</span>"),
        Some(ps) => format!(
            "{name}: {}",
            ps.iter()
                .map(|p| format!("<code>{}</code>", escape(p)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "<ul class=\"scope\"><li>{}</li><li>{}</li><li>{}</li></ul>",
        set("kinds", "any kind", &w.kinds),
        set("workloads", "any workload", &w.workloads),
        set("domains", "any domain", &w.domains),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_ledger::event::{RuntimeId, WorkloadId};

    #[test]
    fn targets_are_worded_from_the_workload_side() {
        let w = |s: &str| Target::Workload(WorkloadId::new(s).expect("workload"));
        let r = |s: &str| Target::Runtime(RuntimeId::new(s).expect("runtime"));
        assert_eq!(target_from(&w("a"), "a", "rt"), "this workload itself");
        assert!(target_from(&w("root"), "a", "rt").contains("which this workload derives from"));
        assert!(target_from(&r("rt"), "a", "rt").starts_with("its runtime"));
        assert!(target_from(&r("other"), "a", "rt").contains("started a workload"));
        assert!(target_link(&w("a/b")).contains("/workloads/a%2Fb"));
    }

    #[test]
    fn windows_and_scopes_read_as_words() {
        let now = OffsetDateTime::UNIX_EPOCH + time::Duration::days(10);
        assert!(window_html(None, None, now).contains("no time limit"));
        let t = OffsetDateTime::UNIX_EPOCH + time::Duration::days(20);
        assert!(window_html(Some(now), Some(t), now).starts_with("from <time"));
        assert!(scope_html(None).contains("any kind, workload and domain"));
    }
}
