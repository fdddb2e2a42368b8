//! Halts and their propagation along the lineage: pure functions over a
//! [`GovernanceView`] of the log.
//!
//! A workload *derives from* another when one of its events names a parent
//! event in it. A halt of a workload stops it and every workload deriving
//! from it, directly or transitively; a halt of a runtime stops every
//! workload the runtime started, and so their descendants. Each halt is kept
//! as **marks**: every workload it stops holds the halt's index. Deciding
//! whether an event is halted is then a few lookups ([`halted_by`]), never a
//! walk of the lineage; the walk happens once, when the halt is admitted
//! ([`halt_members`]), and once more when it is lifted ([`resume_members`]).
//!
//! Why marking once is enough: an event of a halted workload, and an event
//! naming a parent in a halted workload, are refused, so while a halt is
//! active no derivation edge touching the workloads it stops can appear.
//! The set a halt marked is exactly the set its resume unmarks, and a
//! workload started after the halt that names a halted parent is refused at
//! its first event. A runtime halt also refuses every new workload of that
//! runtime (its first event's runtime is halted).

use std::collections::HashSet;

use crate::event::{RuntimeId, Target, WorkloadId};

/// What the halt rules read of the log. [`crate::rules::LedgerView`]
/// extends it.
pub trait GovernanceView {
    /// A storage failure; it fails the whole batch, never one envelope.
    type Error;
    /// The indices of the active halts that stop a workload (its own and
    /// inherited ones), ascending; empty when it is not halted.
    fn workload_halts(&self, workload: &WorkloadId) -> Result<Vec<u64>, Self::Error>;
    /// The index of the active halt whose target is exactly `target`.
    fn active_halt(&self, target: &Target) -> Result<Option<u64>, Self::Error>;
    /// The workloads that derive directly from `workload` (one of their
    /// events names a parent event in it).
    fn derived_workloads(&self, workload: &WorkloadId) -> Result<Vec<WorkloadId>, Self::Error>;
    /// The workloads `runtime` started.
    fn runtime_workloads(&self, runtime: &RuntimeId) -> Result<Vec<WorkloadId>, Self::Error>;
}

/// The halt that stops an event of `workload` by `runtime` whose parents
/// are in `parents` (workload and owning runtime of each, other than
/// `workload`), as (halted workload, halt index), or `None`.
///
/// Checked in this order, the first hit wins: the event's runtime, its
/// workload, then each parent's workload and runtime in parent order. Among
/// several halts of one workload the lowest index is named.
///
/// # Errors
/// The view's storage errors.
pub fn halted_by<V: GovernanceView + ?Sized>(
    view: &V,
    runtime: &RuntimeId,
    workload: &WorkloadId,
    parents: &[(WorkloadId, RuntimeId)],
) -> Result<Option<(WorkloadId, u64)>, V::Error> {
    if let Some(index) = view.active_halt(&Target::Runtime(runtime.clone()))? {
        return Ok(Some((workload.clone(), index)));
    }
    if let Some(&index) = view.workload_halts(workload)?.first() {
        return Ok(Some((workload.clone(), index)));
    }
    for (parent_workload, parent_runtime) in parents {
        if let Some(&index) = view.workload_halts(parent_workload)?.first() {
            return Ok(Some((parent_workload.clone(), index)));
        }
        if let Some(index) = view.active_halt(&Target::Runtime(parent_runtime.clone()))? {
            return Ok(Some((parent_workload.clone(), index)));
        }
    }
    Ok(None)
}

/// The workloads a halt of `target` stops, each with its current halts:
/// the target workload (even one with no event yet, which then cannot
/// start), or every workload the target runtime started, and every workload
/// deriving from those, transitively. Breadth-first from the roots; each
/// workload once, whatever the cycles.
///
/// # Errors
/// The view's storage errors.
pub fn halt_members<V: GovernanceView + ?Sized>(
    view: &V,
    target: &Target,
) -> Result<Vec<(WorkloadId, Vec<u64>)>, V::Error> {
    walk(view, roots(view, target)?, None)
}

/// The workloads the halt at `halt_index` (of `target`) stops, each with its
/// current halts: the same walk as [`halt_members`], through workloads that
/// hold that halt only.
///
/// # Errors
/// The view's storage errors.
pub fn resume_members<V: GovernanceView + ?Sized>(
    view: &V,
    target: &Target,
    halt_index: u64,
) -> Result<Vec<(WorkloadId, Vec<u64>)>, V::Error> {
    walk(view, roots(view, target)?, Some(halt_index))
}

fn roots<V: GovernanceView + ?Sized>(
    view: &V,
    target: &Target,
) -> Result<Vec<WorkloadId>, V::Error> {
    Ok(match target {
        Target::Workload(w) => vec![w.clone()],
        Target::Runtime(r) => view.runtime_workloads(r)?,
    })
}

/// Breadth-first over derived workloads from `roots`; with `holding`, only
/// through workloads whose halts contain it.
fn walk<V: GovernanceView + ?Sized>(
    view: &V,
    roots: Vec<WorkloadId>,
    holding: Option<u64>,
) -> Result<Vec<(WorkloadId, Vec<u64>)>, V::Error> {
    let mut seen: HashSet<WorkloadId> = HashSet::new();
    let mut members = Vec::new();
    let mut queue = std::collections::VecDeque::new();
    for root in roots {
        if seen.insert(root.clone()) {
            queue.push_back(root);
        }
    }
    while let Some(w) = queue.pop_front() {
        let halts = view.workload_halts(&w)?;
        if let Some(index) = holding
            && !halts.contains(&index)
        {
            continue;
        }
        for child in view.derived_workloads(&w)? {
            if seen.insert(child.clone()) {
                queue.push_back(child);
            }
        }
        members.push((w, halts));
    }
    Ok(members)
}

/// `halts` with `index` added, ascending.
pub fn with_halt(halts: &[u64], index: u64) -> Vec<u64> {
    let mut out = halts.to_vec();
    if let Err(at) = out.binary_search(&index) {
        out.insert(at, index);
    }
    out
}

/// `halts` without `index`.
pub fn without_halt(halts: &[u64], index: u64) -> Vec<u64> {
    halts.iter().copied().filter(|h| *h != index).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A lineage held in maps.
    #[derive(Default)]
    struct Graph {
        halts: HashMap<WorkloadId, Vec<u64>>,
        active: HashMap<Target, u64>,
        derived: HashMap<WorkloadId, Vec<WorkloadId>>,
        started: HashMap<RuntimeId, Vec<WorkloadId>>,
    }

    impl GovernanceView for Graph {
        type Error = std::convert::Infallible;
        fn workload_halts(&self, w: &WorkloadId) -> Result<Vec<u64>, Self::Error> {
            Ok(self.halts.get(w).cloned().unwrap_or_default())
        }
        fn active_halt(&self, t: &Target) -> Result<Option<u64>, Self::Error> {
            Ok(self.active.get(t).copied())
        }
        fn derived_workloads(&self, w: &WorkloadId) -> Result<Vec<WorkloadId>, Self::Error> {
            Ok(self.derived.get(w).cloned().unwrap_or_default())
        }
        fn runtime_workloads(&self, r: &RuntimeId) -> Result<Vec<WorkloadId>, Self::Error> {
            Ok(self.started.get(r).cloned().unwrap_or_default())
        }
    }

    fn w(s: &str) -> WorkloadId {
        WorkloadId::new(s).expect("workload")
    }

    fn r(s: &str) -> RuntimeId {
        RuntimeId::new(s).expect("runtime")
    }

    impl Graph {
        fn derive(&mut self, child: &str, parent: &str) {
            self.derived.entry(w(parent)).or_default().push(w(child));
        }

        fn halt(&mut self, target: Target, index: u64) {
            let Ok(members) = halt_members(self, &target);
            for (m, halts) in members {
                self.halts.insert(m, with_halt(&halts, index));
            }
            self.active.insert(target, index);
        }

        fn resume(&mut self, target: Target) {
            let index = self.active.remove(&target).expect("active");
            let Ok(members) = resume_members(self, &target, index);
            for (m, halts) in members {
                self.halts.insert(m, without_halt(&halts, index));
            }
        }

        fn halted(&self, s: &str) -> Vec<u64> {
            self.halts.get(&w(s)).cloned().unwrap_or_default()
        }
    }

    #[test]
    fn a_halt_reaches_every_descendant_once_even_through_cycles() {
        let mut g = Graph::default();
        // root <- a <- b, root <- c, b <- c (diamond), and a cycle c <- b.
        g.derive("a", "root");
        g.derive("b", "a");
        g.derive("c", "root");
        g.derive("c", "b");
        g.derive("b", "c");
        g.derive("other", "elsewhere");
        let Ok(members) = halt_members(&g, &Target::Workload(w("root")));
        let mut names: Vec<&str> = members.iter().map(|(m, _)| m.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "b", "c", "root"]);
    }

    #[test]
    fn resume_lifts_only_its_own_halt() {
        let mut g = Graph::default();
        g.derive("child", "root");
        g.derive("grandchild", "child");
        g.halt(Target::Workload(w("root")), 5);
        g.halt(Target::Workload(w("grandchild")), 9);
        assert_eq!(g.halted("child"), [5]);
        assert_eq!(g.halted("grandchild"), [5, 9]);
        g.resume(Target::Workload(w("root")));
        assert!(g.halted("root").is_empty());
        assert!(g.halted("child").is_empty());
        // Halted in its own right: stays halted.
        assert_eq!(g.halted("grandchild"), [9]);
    }

    #[test]
    fn a_runtime_halt_covers_its_workloads_descendants_and_new_workloads() {
        let mut g = Graph::default();
        g.started.insert(r("rt"), vec![w("x"), w("y")]);
        g.derive("z", "y");
        g.halt(Target::Runtime(r("rt")), 3);
        for m in ["x", "y", "z"] {
            assert_eq!(g.halted(m), [3], "{m}");
        }
        let Ok(verdict) = halted_by(&g, &r("rt"), &w("brand-new"), &[]);
        assert_eq!(verdict, Some((w("brand-new"), 3)));
        let Ok(verdict) = halted_by(&g, &r("free"), &w("n"), &[(w("q"), r("rt"))]);
        assert_eq!(verdict, Some((w("q"), 3)), "a parent's runtime is halted");
        g.resume(Target::Runtime(r("rt")));
        assert!(g.halted("z").is_empty());
        let Ok(verdict) = halted_by(&g, &r("rt"), &w("brand-new"), &[]);
        assert_eq!(verdict, None);
    }

    #[test]
    fn the_verdict_names_the_first_halt_in_order() {
        let mut g = Graph::default();
        g.halt(Target::Workload(w("p2")), 7);
        g.halt(Target::Workload(w("p1")), 8);
        let parents = [(w("p1"), r("a")), (w("p2"), r("a"))];
        let Ok(verdict) = halted_by(&g, &r("a"), &w("me"), &parents);
        assert_eq!(verdict, Some((w("p1"), 8)), "parent order, not index order");
        g.halt(Target::Workload(w("me")), 9);
        let Ok(verdict) = halted_by(&g, &r("a"), &w("me"), &parents);
        assert_eq!(verdict, Some((w("me"), 9)), "own workload first");
    }

    #[test]
    fn halt_sets_stay_sorted() {
        assert_eq!(with_halt(&[3, 9], 5), [3, 5, 9]);
        assert_eq!(with_halt(&[3], 3), [3]);
        assert_eq!(without_halt(&[3, 5, 9], 5), [3, 9]);
    }
}
