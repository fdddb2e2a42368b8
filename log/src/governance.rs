//! The committed governance state the sequencer and readers share: active
//! halts and the workloads they stop, kept whole in memory (bounded by the
//! number of halted workloads, not by the log), and a watch that wakes
//! long-polls and streams when a governance entry commits.

use std::collections::{BTreeSet, HashMap};

use lineage_ledger::event::{Target, WorkloadId};
use lineage_ledger::state::GovernanceDelta;
use lineage_ledger::store::{GovernanceReads, Store, StoreError};

/// Active halts and their marks, committed state.
#[derive(Debug, Default)]
pub struct HaltState {
    /// Every halted workload with its active halts, ascending.
    pub marks: HashMap<WorkloadId, Vec<u64>>,
    /// Every active halt, by target.
    pub active: HashMap<Target, u64>,
    /// The same marks by halt: the workloads each active halt stops, sorted,
    /// so that a page about one halt reads only its own members.
    by_halt: HashMap<u64, BTreeSet<WorkloadId>>,
}

impl HaltState {
    /// Loads the state from the store.
    ///
    /// # Errors
    /// Storage failures; `Corrupt` for a row naming an invalid workload.
    pub(crate) fn load(store: &dyn Store) -> Result<HaltState, StoreError> {
        let mut marks = HashMap::new();
        for (workload, halts) in store.halt_marks()? {
            let w = WorkloadId::new(&workload).map_err(|_| StoreError::Corrupt {
                what: "halt marks",
                key: workload.clone(),
            })?;
            marks.insert(w, halts);
        }
        let mut state = HaltState {
            marks: HashMap::new(),
            active: store.active_halts()?.into_iter().collect(),
            by_halt: HashMap::new(),
        };
        for (w, halts) in marks {
            state.set(w, halts);
        }
        Ok(state)
    }

    /// Sets the halts of `w` (none: not halted), keeping `by_halt` in step.
    fn set(&mut self, w: WorkloadId, halts: Vec<u64>) {
        let old = self.marks.remove(&w).unwrap_or_default();
        for h in old.iter().filter(|h| !halts.contains(h)) {
            if let Some(members) = self.by_halt.get_mut(h) {
                members.remove(&w);
                if members.is_empty() {
                    self.by_halt.remove(h);
                }
            }
        }
        for h in halts.iter().filter(|h| !old.contains(h)) {
            self.by_halt.entry(*h).or_default().insert(w.clone());
        }
        if !halts.is_empty() {
            self.marks.insert(w, halts);
        }
    }

    /// How many workloads the halt at `index` stops.
    pub fn member_count(&self, index: u64) -> usize {
        self.by_halt.get(&index).map_or(0, BTreeSet::len)
    }

    /// `limit` workloads (sorted) the halt at `index` stops, from the
    /// `offset`-th on; only those are copied.
    pub fn members(&self, index: u64, offset: usize, limit: usize) -> Vec<String> {
        self.by_halt
            .get(&index)
            .into_iter()
            .flatten()
            .skip(offset)
            .take(limit)
            .map(|w| w.as_str().to_owned())
            .collect()
    }

    /// Applies what a durable batch changed.
    pub(crate) fn absorb(&mut self, delta: &GovernanceDelta) {
        for (w, halts) in &delta.marks {
            self.set(w.clone(), halts.clone());
        }
        for (target, index) in &delta.active {
            match index {
                Some(i) => self.active.insert(target.clone(), *i),
                None => self.active.remove(target),
            };
        }
    }

    /// The halt that stops `workload` (of `runtime`), the lowest index, if any.
    pub fn halted_by(&self, workload: &WorkloadId, runtime: Option<&str>) -> Option<u64> {
        let own = self.marks.get(workload).and_then(|h| h.first().copied());
        let by_runtime = runtime.and_then(|r| {
            lineage_ledger::event::RuntimeId::new(r)
                .ok()
                .and_then(|r| self.active.get(&Target::Runtime(r)).copied())
        });
        match (own, by_runtime) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &str) -> WorkloadId {
        WorkloadId::new(s).expect("workload")
    }

    #[test]
    fn members_by_halt_follow_every_change_of_the_marks() {
        let mut state = HaltState::default();
        let mut delta = GovernanceDelta::default();
        delta.marks.insert(w("b"), vec![3]);
        delta.marks.insert(w("a"), vec![3, 7]);
        state.absorb(&delta);
        assert_eq!(state.members(3, 0, 10), ["a", "b"]);
        assert_eq!(state.members(3, 0, 1), ["a"]);
        assert_eq!(state.members(3, 1, 1), ["b"]);
        assert!(state.members(3, usize::MAX, 1).is_empty());
        assert_eq!((state.member_count(3), state.member_count(7)), (2, 1));
        let mut delta = GovernanceDelta::default();
        delta.marks.insert(w("a"), vec![7]);
        delta.marks.insert(w("b"), vec![]);
        state.absorb(&delta);
        assert_eq!(state.member_count(3), 0);
        assert!(state.members(3, 0, 10).is_empty());
        assert_eq!(state.members(7, 0, 10), ["a"]);
        assert!(!state.marks.contains_key(&w("b")));
    }
}
