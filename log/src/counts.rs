//! What each recent commit added, counted as the explorer's index counts
//! the log (runtime events, governance statements, new workloads, events
//! per kind), so that its follower need not read the entries back and parse
//! their payloads again: the sequencer has both at hand when it admits them.
//!
//! A commit's counts are published after the commit (never for a batch
//! that failed), in a bounded queue; a reader asks for the counts that go on
//! exactly from where it is, and reads the entries itself when they are not
//! there (after a restart, when it fell behind the queue, or after a commit
//! whose outcome was unknown and the log reloaded).

use std::collections::VecDeque;

use lineage_ledger::{FastMap, Hash};

/// Most commits whose counts are kept.
pub(crate) const KEPT_COMMITS: usize = 256;

/// The counts of the entries `[first, end)`, one commit's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommitCounts {
    /// The first entry counted.
    pub first: u64,
    /// One past the last entry counted.
    pub end: u64,
    /// Runtime events.
    pub events: u64,
    /// Governance statements.
    pub governance: u64,
    /// Events with `seq` 0 (each starts a workload).
    pub workloads: u64,
    /// Events per kind, in the order each kind first appears.
    pub kinds: Vec<(String, u64)>,
    /// The leaf hash of entry `end - 1`.
    pub last_leaf: Hash,
}

/// A commit's counts as the sequencer admits its entries.
#[derive(Debug, Default)]
pub struct CountsBuilder {
    events: u64,
    governance: u64,
    workloads: u64,
    /// Events per kind, with the order in which each kind first appeared:
    /// kinds are the runtimes' to choose, so a batch may hold thousands.
    kinds: FastMap<String, (usize, u64)>,
}

impl CountsBuilder {
    /// Counts one runtime event of `kind` at position `seq`.
    pub fn event(&mut self, seq: u64, kind: &str) {
        self.events += 1;
        if seq == 0 {
            self.workloads += 1;
        }
        match self.kinds.get_mut(kind) {
            Some((_, n)) => *n += 1,
            None => {
                let order = self.kinds.len();
                self.kinds.insert(kind.to_owned(), (order, 1));
            }
        }
    }

    /// Counts one governance statement.
    pub fn governance(&mut self) {
        self.governance += 1;
    }

    /// The counts of the entries `[first, end)`, the last of which has leaf
    /// hash `last_leaf`.
    pub fn finish(self, first: u64, end: u64, last_leaf: Hash) -> CommitCounts {
        let mut kinds: Vec<(usize, String, u64)> = self
            .kinds
            .into_iter()
            .map(|(kind, (order, n))| (order, kind, n))
            .collect();
        kinds.sort_unstable_by_key(|(order, _, _)| *order);
        CommitCounts {
            first,
            end,
            events: self.events,
            governance: self.governance,
            workloads: self.workloads,
            kinds: kinds.into_iter().map(|(_, kind, n)| (kind, n)).collect(),
            last_leaf,
        }
    }
}

/// The counts of the latest commits, oldest first, contiguous.
#[derive(Debug, Default)]
pub(crate) struct CountFeed {
    commits: VecDeque<CommitCounts>,
}

impl CountFeed {
    /// Adds a commit's counts. Counts that do not go on from the newest
    /// (the log was reloaded in between) start the queue afresh.
    pub(crate) fn push(&mut self, counts: CommitCounts) {
        // Only commits that added entries (the sequencer commits no other).
        if counts.end <= counts.first {
            return;
        }
        if self.commits.back().is_some_and(|b| b.end != counts.first) {
            self.commits.clear();
        }
        if self.commits.len() == KEPT_COMMITS {
            self.commits.pop_front();
        }
        self.commits.push_back(counts);
    }

    /// Forgets every commit (the log reloaded its state).
    pub(crate) fn clear(&mut self) {
        self.commits.clear();
    }

    /// The counts of the commits from entry `next` on, covering at most
    /// `max_entries` entries past the first: empty unless a kept commit
    /// starts exactly at `next`.
    pub(crate) fn since(&self, next: u64, max_entries: u64) -> Vec<CommitCounts> {
        let Some(at) = self.commits.iter().position(|c| c.first == next) else {
            return Vec::new();
        };
        let mut out: Vec<CommitCounts> = Vec::new();
        let mut covered = 0;
        for c in self.commits.iter().skip(at) {
            if !out.is_empty() && covered >= max_entries {
                break;
            }
            covered += c.end - c.first;
            out.push(c.clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(first: u64, end: u64) -> CommitCounts {
        CommitCounts {
            first,
            end,
            events: end - first,
            ..CommitCounts::default()
        }
    }

    #[test]
    fn counts_are_given_only_from_exactly_where_the_reader_is() {
        let mut feed = CountFeed::default();
        for (first, end) in [(0, 4), (4, 10), (10, 11)] {
            feed.push(commit(first, end));
        }
        let ends = |v: Vec<CommitCounts>| v.iter().map(|c| c.end).collect::<Vec<_>>();
        assert_eq!(ends(feed.since(0, 100)), vec![4, 10, 11]);
        assert_eq!(ends(feed.since(4, 100)), vec![10, 11]);
        assert_eq!(ends(feed.since(4, 1)), vec![10], "at least one commit");
        assert_eq!(ends(feed.since(11, 100)), Vec::<u64>::new(), "caught up");
        assert_eq!(ends(feed.since(5, 100)), Vec::<u64>::new(), "mid-commit");
        // A commit that does not go on from the newest (a reload) restarts it.
        feed.push(commit(20, 25));
        assert_eq!(ends(feed.since(0, 100)), Vec::<u64>::new());
        assert_eq!(ends(feed.since(20, 100)), vec![25]);
        feed.clear();
        assert_eq!(ends(feed.since(20, 100)), Vec::<u64>::new());
    }

    #[test]
    fn the_feed_keeps_the_latest_commits_only() {
        let mut feed = CountFeed::default();
        for i in 0..(KEPT_COMMITS as u64 + 10) {
            feed.push(commit(i, i + 1));
        }
        assert!(feed.since(9, 1).is_empty());
        assert_eq!(feed.since(10, u64::MAX).len(), KEPT_COMMITS);
    }

    #[test]
    fn kinds_keep_the_order_they_first_appear_in() {
        let mut b = CountsBuilder::default();
        for (seq, kind) in [(0, "b"), (1, "a"), (2, "b"), (0, "c")] {
            b.event(seq, kind);
        }
        b.governance();
        let c = b.finish(3, 8, Hash::default());
        assert_eq!((c.first, c.end), (3, 8));
        assert_eq!(
            c.kinds,
            vec![
                ("b".to_owned(), 2),
                ("a".to_owned(), 1),
                ("c".to_owned(), 1)
            ]
        );
        assert_eq!((c.events, c.workloads, c.governance), (4, 2, 1));
        // Many kinds (a hash map's order would scramble them), each met twice.
        let mut b = CountsBuilder::default();
        let names: Vec<String> = (0..300).rev().map(|i| format!("k{i}")).collect();
        for name in names.iter().chain(&names) {
            b.event(1, name);
        }
        let c = b.finish(0, 600, Hash::default());
        let want: Vec<(String, u64)> = names.iter().map(|n| (n.clone(), 2)).collect();
        assert_eq!(c.kinds, want);
    }
}
