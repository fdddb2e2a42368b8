//! The explorer's in-memory index: what a page would otherwise need a pass
//! over the whole log for. A background task follows the log in chunks (a
//! one-off catch-up over an existing log, then a few entries per commit), and
//! a page tops it up itself, within a small budget, before reading it, so a
//! page never shows stale counts on a small log and never pays for a big one.
//!
//! Memory is bounded: counters, at most [`MAX_KINDS`] kinds, and the sizes of
//! the newest [`MAX_CHECKPOINTS`] checkpoints (older ones are found by probing
//! the store, see `checkpoints.rs`).
//!
//! The store has no listing of checkpoints, workloads or kinds; with a
//! reverse range read over its checkpoint rows (`Store::checkpoints_before`)
//! and a workload count, most of this would not be needed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use lineage_ledger::entry::{EntryType, LogEntry};
use lineage_log::Core;
use serde::Deserialize;

use crate::page::PageError;

/// Distinct event kinds remembered (for the filter's suggestions).
pub(crate) const MAX_KINDS: usize = 256;
/// Newest checkpoint sizes remembered.
pub(crate) const MAX_CHECKPOINTS: usize = 10_000;
/// Entries read per step (one lock hold).
const CHUNK: u64 = 512;
/// Most entries a page indexes itself before it reads the index.
pub(crate) const PAGE_BUDGET: u64 = 2048;

/// What the index knows, up to `next`.
#[derive(Debug, Default, Clone)]
pub(crate) struct Snapshot {
    /// Entries indexed: `[0, next)`.
    pub next: u64,
    /// Runtime events.
    pub events: u64,
    /// Governance statements.
    pub governance: u64,
    /// Workloads: events with `seq` 0 (every workload has exactly one).
    pub workloads: u64,
    /// Events per kind (at most [`MAX_KINDS`] kinds).
    pub kinds: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
struct State {
    snap: Snapshot,
    /// Sizes of the newest checkpoints, ascending; size 0 is the genesis checkpoint.
    checkpoints: VecDeque<u64>,
    genesis_checked: bool,
}

/// The index; see the module docs.
#[derive(Debug, Default)]
pub(crate) struct Index {
    state: Mutex<State>,
}

/// Just the fields the index needs from an event payload.
#[derive(Deserialize)]
struct Light<'a> {
    seq: u64,
    #[serde(borrow)]
    kind: std::borrow::Cow<'a, str>,
}

impl Index {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Indexes up to `budget` more entries of the committed log. Returns true
    /// when the index has reached the head.
    ///
    /// # Errors
    /// Store failures (the index stays where it was for the failed chunk).
    pub fn advance(&self, core: &Core, budget: u64) -> Result<bool, PageError> {
        let head = core.head().size;
        let mut done = 0;
        loop {
            let mut st = self.lock();
            if !st.genesis_checked {
                if core.store.checkpoint(0)?.is_some() {
                    st.checkpoints.push_back(0);
                }
                st.genesis_checked = true;
            }
            let start = st.snap.next;
            if start >= head {
                return Ok(true);
            }
            if done >= budget {
                return Ok(false);
            }
            let end = head.min(start + CHUNK).min(start + (budget - done));
            let entries = core.store.entries(start, end)?;
            // A checkpoint is signed for the size after each batch.
            let found = if entries.is_empty() {
                Vec::new()
            } else {
                core.store
                    .checkpoint_sizes(start + 1, start + entries.len() as u64)?
            };
            for bytes in &entries {
                st.snap.count(bytes);
            }
            st.snap.next = start + entries.len() as u64;
            for size in found {
                st.checkpoints.push_back(size);
                if st.checkpoints.len() > MAX_CHECKPOINTS {
                    st.checkpoints.pop_front();
                }
            }
            done += entries.len() as u64;
            if entries.is_empty() {
                return Ok(true);
            }
        }
    }

    /// What a page calls before reading the index: indexes what is left if
    /// that is at most [`PAGE_BUDGET`] entries (a small log, or the last few
    /// commits), and otherwise leaves the catch-up to the follower, so a
    /// page never pays for it. Returns true when the index is at the head.
    ///
    /// # Errors
    /// Store failures.
    pub fn top_up(&self, core: &Core) -> Result<bool, PageError> {
        let behind = core.head().size.saturating_sub(self.lock().snap.next);
        if behind > PAGE_BUDGET {
            return Ok(false);
        }
        self.advance(core, PAGE_BUDGET)
    }

    /// The counters and kinds.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().snap.clone()
    }

    /// Up to `limit` remembered checkpoint sizes below `before`, newest
    /// first, and whether the memory reaches back to size 0.
    pub fn checkpoints_before(&self, before: u64, limit: usize) -> (Vec<u64>, bool) {
        let st = self.lock();
        let sizes = st
            .checkpoints
            .iter()
            .rev()
            .copied()
            .filter(|s| *s < before)
            .take(limit)
            .collect();
        (sizes, st.checkpoints.front() == Some(&0))
    }
}

impl Snapshot {
    fn count(&mut self, bytes: &[u8]) {
        let Ok(entry) = LogEntry::decode(bytes) else {
            return;
        };
        match entry.entry_type {
            EntryType::Governance => self.governance += 1,
            EntryType::Event => {
                self.events += 1;
                if let Ok(light) = serde_json::from_slice::<Light<'_>>(&entry.payload) {
                    if light.seq == 0 {
                        self.workloads += 1;
                    }
                    if let Some(n) = self.kinds.get_mut(light.kind.as_ref()) {
                        *n += 1;
                    } else if self.kinds.len() < MAX_KINDS {
                        self.kinds.insert(light.kind.into_owned(), 1);
                    }
                }
            }
        }
    }
}

/// Follows the log until the index or the log is dropped: a chunk at a
/// time while behind, then a look every half second. It holds the log only
/// while it reads a chunk, so a stopped log releases its store.
pub(crate) fn spawn_follower(index: Weak<Index>, core: Weak<Core>) {
    tokio::spawn(async move {
        loop {
            let Some(idx) = index.upgrade() else { return };
            let c = core.clone();
            let step = tokio::task::spawn_blocking(move || {
                let core = c.upgrade()?;
                Some(idx.advance(&core, CHUNK * 8).unwrap_or(true))
            })
            .await
            .unwrap_or(Some(true));
            let Some(caught_up) = step else { return };
            let pause = if caught_up { 500 } else { 1 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    });
}
