//! The committed governance state the sequencer and readers share: active
//! halts and the workloads they stop, kept whole in memory (bounded by the
//! number of halted workloads, not by the log), and a watch that wakes
//! long-polls and streams when a governance entry commits.

use std::collections::HashMap;

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
        Ok(HaltState {
            marks,
            active: store.active_halts()?.into_iter().collect(),
        })
    }

    /// Applies what a durable batch changed.
    pub(crate) fn absorb(&mut self, delta: &GovernanceDelta) {
        for (w, halts) in &delta.marks {
            if halts.is_empty() {
                self.marks.remove(w);
            } else {
                self.marks.insert(w.clone(), halts.clone());
            }
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
