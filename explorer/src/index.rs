//! The explorer's index: the counts a page would otherwise need a pass over
//! the whole log for (runtime events, governance statements, workloads,
//! events per kind). A background task follows the log in chunks, and a
//! page tops it up itself, within a small budget, before reading it, so a
//! page never shows stale counts on a small log and never pays for a big one.
//!
//! **Restart without a rescan.** The follower saves the index in the store
//! as a [`StoredTally`] (one unsynced row beside the log, see
//! `Store::put_tally`) whenever it catches up and every [`SAVE_EVERY`]
//! entries while it catches up; the first read after a start restores it
//! and goes on from the entry it stops at. A tally counts only entries that
//! were committed, so it is always the count of a prefix of the log; it
//! names the leaf hash of its last entry, and is restored only if the log
//! has that entry with that hash. Losing the newest save (a crash, say)
//! costs a recount of the entries since the one before. A store without a
//! tally (written before it existed), or with one that does not decode or
//! does not match the log, is counted from entry 0 once, as before, and the
//! next save replaces the row. Restoring is one row and one entry read, on
//! the blocking pool and never before `/readyz`: a page asked meanwhile
//! does it itself.
//!
//! **Following without reading back.** The sequencer counts each commit's
//! entries as it admits them (`lineage_log::counts`); when the counts of
//! the commits from the index's `next` on are at hand, the follower adds
//! them instead of reading those entries from the store and parsing their
//! payloads again. It reads the entries otherwise (after a restart, or when
//! it fell behind the kept commits).
//!
//! Memory is bounded: counters and at most [`MAX_KINDS`] kinds (the first
//! ones in log order; a restored tally with more is not this index's and is
//! not restored). Checkpoint sizes are not indexed: the store lists them
//! newest first (`Store::checkpoints_before`, see `checkpoints.rs`).

use std::collections::BTreeMap;
use std::sync::{Mutex, Weak};
use std::time::Duration;

use lineage_ledger::entry::{EntryRef, EntryType};
use lineage_ledger::store::{StoreError, StoredTally};
use lineage_ledger::{Hash, leaf_hash};
use lineage_log::{CommitCounts, Core};
use serde::Deserialize;

use crate::page::PageError;

/// Distinct event kinds remembered (for the filter's suggestions): the
/// first ones in log order. A saved tally follows the limit of the build
/// that saved it; a build that raises the limit must not restore a full
/// tally of the old one (a recount would find kinds it lacks).
pub(crate) const MAX_KINDS: usize = 256;
/// Entries read per step (one lock hold).
const CHUNK: u64 = 512;
/// Most entries a page indexes itself before it reads the index.
pub(crate) const PAGE_BUDGET: u64 = 2048;
/// Most entries indexed between two saves while catching up (a crash in a
/// catch-up of a big log then costs at most this many entries again).
const SAVE_EVERY: u64 = 1 << 16;

/// What the index knows, up to `next`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
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
    /// The leaf hash of entry `snap.next - 1` (none before the first entry).
    last_leaf: Option<Hash>,
    /// Whether the saved tally has been looked at (the first read does it).
    restored: bool,
    /// The `next` of the tally in the store, restored or saved: nothing
    /// below it needs saving.
    saved: u64,
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

    /// Restores the saved tally into a fresh index, once: one row and one
    /// entry read. A tally that does not decode or does not fit the log is
    /// left alone (the index counts from 0; the next save replaces it).
    ///
    /// # Errors
    /// Store failures other than a damaged tally (the next read retries).
    fn restore(st: &mut State, core: &Core, head: u64) -> Result<(), PageError> {
        if st.restored {
            return Ok(());
        }
        let tally = match core.store.tally() {
            Ok(t) => t,
            Err(e @ StoreError::Corrupt { .. }) => {
                tracing::warn!(error = %e, "explorer index: saved tally ignored, counting from entry 0");
                None
            }
            Err(e) => return Err(e.into()),
        };
        if let Some(t) = tally {
            let last = match t.covers.checked_sub(1).filter(|_| t.covers <= head) {
                Some(i) => core.store.entry(i)?,
                None => None,
            };
            let covers = t.covers;
            match restorable(t, head, last.as_deref()) {
                Some((snap, leaf)) => {
                    st.saved = snap.next;
                    st.snap = snap;
                    st.last_leaf = Some(leaf);
                }
                None => tracing::warn!(
                    covers,
                    head,
                    "explorer index: saved tally does not match the log, counting from entry 0"
                ),
            }
        }
        st.restored = true;
        Ok(())
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
            Self::restore(&mut st, core, head)?;
            let start = st.snap.next;
            if start >= head {
                return Ok(true);
            }
            if done >= budget {
                return Ok(false);
            }
            // The sequencer's counts of the latest commits, when they go on
            // from here: no entry read back, no payload parsed again.
            let commits = core.counts_since(start, budget - done);
            if !commits.is_empty() {
                for c in &commits {
                    st.snap.add(c);
                    st.last_leaf = Some(c.last_leaf);
                    done += c.end - c.first;
                }
                continue;
            }
            let end = head.min(start + CHUNK).min(start + (budget - done));
            let entries = core.store.entries(start, end)?;
            let Some(last) = entries.last() else {
                return Ok(true);
            };
            for bytes in &entries {
                st.snap.count(bytes);
            }
            st.snap.next = start + entries.len() as u64;
            st.last_leaf = Some(leaf_hash(last));
            done += entries.len() as u64;
        }
    }

    /// What a page calls before reading the index: indexes what is left if
    /// that is at most [`PAGE_BUDGET`] entries (a small log, the last few
    /// commits, or what a restart's restored tally leaves), and otherwise
    /// leaves the catch-up to the follower, so a page never pays for it.
    /// Returns true when the index is at the head.
    ///
    /// # Errors
    /// Store failures.
    pub fn top_up(&self, core: &Core) -> Result<bool, PageError> {
        let head = core.head().size;
        let behind = {
            let mut st = self.lock();
            Self::restore(&mut st, core, head)?;
            head.saturating_sub(st.snap.next)
        };
        if behind > PAGE_BUDGET {
            return Ok(false);
        }
        self.advance(core, PAGE_BUDGET)
    }

    /// Saves the index as the store's tally when [`save_due`] says so.
    /// Returns whether it wrote. A failed write is not retried until the
    /// index has moved on (losing a save only costs a recount).
    ///
    /// # Errors
    /// Store failures.
    pub fn save(&self, core: &Core, caught_up: bool) -> Result<bool, StoreError> {
        let tally = {
            let mut st = self.lock();
            let (Some(leaf), true) = (st.last_leaf, save_due(st.saved, st.snap.next, caught_up))
            else {
                return Ok(false);
            };
            st.saved = st.snap.next;
            st.snap.to_tally(leaf)
        };
        core.store.put_tally(&tally)?;
        Ok(true)
    }

    /// The counters and kinds.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().snap.clone()
    }
}

/// Whether the follower saves now: when it has indexed entries the saved
/// tally lacks and has caught up (at most one write per follower step, two
/// a second), or has indexed [`SAVE_EVERY`] of them while catching up.
fn save_due(saved: u64, next: u64, caught_up: bool) -> bool {
    next > saved && (caught_up || next - saved >= SAVE_EVERY)
}

/// A saved tally as the index to go on from, if it fits a log of `head`
/// entries whose entry `covers - 1` is `last_entry`: it covers at least one
/// entry and at most the log, that entry's leaf hash is the one it names,
/// and it keeps no more kinds than this index does. Otherwise `None` (count
/// from 0).
fn restorable(t: StoredTally, head: u64, last_entry: Option<&[u8]>) -> Option<(Snapshot, Hash)> {
    let fits = t.covers > 0
        && t.covers <= head
        && t.kinds.len() <= MAX_KINDS
        && last_entry.is_some_and(|e| leaf_hash(e) == t.last_leaf);
    if !fits {
        return None;
    }
    let snap = Snapshot {
        next: t.covers,
        events: t.events,
        governance: t.governance,
        workloads: t.workloads,
        kinds: t.kinds,
    };
    Some((snap, t.last_leaf))
}

impl Snapshot {
    /// Adds a commit's counts, as [`Snapshot::count`] of each of its
    /// entries would: a kind met first when the map is full is not kept,
    /// and its later events are not either (the map never shrinks).
    fn add(&mut self, c: &CommitCounts) {
        self.events += c.events;
        self.governance += c.governance;
        self.workloads += c.workloads;
        for (kind, n) in &c.kinds {
            if let Some(have) = self.kinds.get_mut(kind) {
                *have += n;
            } else if self.kinds.len() < MAX_KINDS {
                self.kinds.insert(kind.clone(), *n);
            }
        }
        self.next = c.end;
    }

    fn count(&mut self, bytes: &[u8]) {
        let Ok(entry) = EntryRef::decode(bytes) else {
            return;
        };
        match entry.entry_type {
            EntryType::Governance => self.governance += 1,
            EntryType::Event => {
                self.events += 1;
                if let Ok(light) = serde_json::from_slice::<Light<'_>>(entry.payload) {
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

    fn to_tally(&self, last_leaf: Hash) -> StoredTally {
        StoredTally {
            covers: self.next,
            last_leaf,
            events: self.events,
            governance: self.governance,
            workloads: self.workloads,
            kinds: self.kinds.clone(),
        }
    }
}

/// Follows the log until the index or the log is dropped: a chunk at a
/// time while behind, then a look every half second, saving the index as it
/// goes ([`Index::save`]). It holds the log only while it reads a chunk, so
/// a stopped log releases its store.
pub(crate) fn spawn_follower(index: Weak<Index>, core: Weak<Core>) {
    tokio::spawn(async move {
        loop {
            let Some(idx) = index.upgrade() else { return };
            let c = core.clone();
            let step = tokio::task::spawn_blocking(move || {
                let core = c.upgrade()?;
                let caught_up = idx.advance(&core, CHUNK * 8).unwrap_or(true);
                if let Err(e) = idx.save(&core, caught_up) {
                    tracing::warn!(error = %e, "explorer index: saving the tally failed");
                }
                Some(caught_up)
            })
            .await
            .unwrap_or(Some(true));
            let Some(caught_up) = step else { return };
            let pause = if caught_up { 500 } else { 1 };
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_follower_saves_on_catch_up_and_every_so_often_while_catching_up() {
        assert!(!save_due(0, 0, true), "nothing indexed");
        assert!(!save_due(100, 100, true), "nothing new");
        assert!(save_due(100, 101, true), "caught up with something new");
        assert!(!save_due(100, 100 + SAVE_EVERY - 1, false));
        assert!(save_due(100, 100 + SAVE_EVERY, false));
        assert!(!save_due(100, 50, true), "behind the saved tally");
    }

    fn tally(last_entry: &[u8]) -> StoredTally {
        StoredTally {
            covers: 10,
            last_leaf: leaf_hash(last_entry),
            events: 8,
            governance: 2,
            workloads: 1,
            kinds: [("tool.invoke".to_owned(), 7)].into(),
        }
    }

    #[test]
    fn a_tally_of_this_log_is_restored_as_it_was_saved() {
        let (snap, leaf) = restorable(tally(b"entry 9"), 10, Some(b"entry 9")).expect("fits");
        assert_eq!(leaf, leaf_hash(b"entry 9"));
        assert_eq!(
            snap,
            Snapshot {
                next: 10,
                events: 8,
                governance: 2,
                workloads: 1,
                kinds: [("tool.invoke".to_owned(), 7)].into(),
            }
        );
        assert_eq!(snap.to_tally(leaf), tally(b"entry 9"));
        assert!(
            restorable(tally(b"entry 9"), 500, Some(b"entry 9")).is_some(),
            "behind the head: topped up"
        );
    }

    #[test]
    fn a_tally_that_does_not_fit_the_log_is_not_restored() {
        let check = |t: StoredTally, head: u64, last: Option<&[u8]>| {
            assert_eq!(restorable(t, head, last), None);
        };
        check(tally(b"entry 9"), 10, Some(b"other entry"));
        check(tally(b"entry 9"), 10, None);
        check(tally(b"entry 9"), 9, Some(b"entry 9"));
        check(
            StoredTally {
                covers: 0,
                events: 0,
                governance: 0,
                workloads: 0,
                kinds: BTreeMap::new(),
                ..tally(b"")
            },
            10,
            Some(b""),
        );
        let many = (0..=MAX_KINDS).map(|i| (format!("k{i}"), 0)).collect();
        check(
            StoredTally {
                kinds: many,
                ..tally(b"entry 9")
            },
            10,
            Some(b"entry 9"),
        );
    }

    /// An entry as the sequencer encodes it: an event of `kind` at `seq`,
    /// or (no kind) a governance statement.
    fn entry(kind: Option<&str>, seq: u64) -> Vec<u8> {
        use lineage_ledger::entry::LogEntry;
        let (entry_type, payload) = match kind {
            Some(kind) => (
                EntryType::Event,
                format!(
                    r#"{{"v":1,"runtime":"r","workload":"w","seq":{seq},"kind":"{kind}","at":"2026-01-01T00:00:00Z"}}"#
                ),
            ),
            None => (EntryType::Governance, r#"{"action":"grant"}"#.to_owned()),
        };
        LogEntry {
            entry_type,
            integrated_at_ms: 1,
            key_id: lineage_ledger::keys::KeyId::from_bytes([7; 32]),
            signature: [0; 64],
            payload: payload.into_bytes(),
        }
        .encode()
    }

    #[test]
    fn adding_a_commits_counts_is_counting_its_entries() {
        // More kinds than the index keeps, some met again after it is full,
        // and governance statements between the events.
        let mut log: Vec<(Option<String>, u64)> = Vec::new();
        for i in 0..(MAX_KINDS as u64 + 40) {
            log.push((Some(format!("kind-{}", i % (MAX_KINDS as u64 + 20))), i % 3));
            if i % 7 == 0 {
                log.push((None, 0));
            }
            if i % 5 == 0 {
                log.push((Some("kind-1".to_owned()), 0));
            }
        }
        let mut read = Snapshot::default();
        for (kind, seq) in &log {
            read.count(&entry(kind.as_deref(), *seq));
        }
        read.next = log.len() as u64;
        for commit_size in [1, 7, 64, log.len()] {
            let mut added = Snapshot::default();
            for (n, chunk) in log.chunks(commit_size).enumerate() {
                let first = (n * commit_size) as u64;
                let mut c = lineage_log::CountsBuilder::default();
                for (kind, seq) in chunk {
                    match kind {
                        Some(kind) => c.event(*seq, kind),
                        None => c.governance(),
                    }
                }
                added.add(&c.finish(first, first + chunk.len() as u64, Hash::default()));
            }
            assert_eq!(added, read, "commits of {commit_size}");
        }
        assert_eq!(read.kinds.len(), MAX_KINDS);
    }
}
