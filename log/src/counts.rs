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

use lineage_ledger::Hash;

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

impl CommitCounts {
    /// Counts one runtime event of `kind` at position `seq`.
    pub fn event(&mut self, seq: u64, kind: &str) {
        self.events += 1;
        if seq == 0 {
            self.workloads += 1;
        }
        // A batch holds few kinds: a scan beats hashing each one.
        match self.kinds.iter_mut().find(|(k, _)| k == kind) {
            Some((_, n)) => *n += 1,
            None => self.kinds.push((kind.to_owned(), 1)),
        }
    }

    /// Counts one governance statement.
    pub fn governance(&mut self) {
        self.governance += 1;
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
        let mut c = CommitCounts::default();
        for (seq, kind) in [(0, "b"), (1, "a"), (2, "b"), (0, "c")] {
            c.event(seq, kind);
        }
        c.governance();
        assert_eq!(
            c.kinds,
            vec![
                ("b".to_owned(), 2),
                ("a".to_owned(), 1),
                ("c".to_owned(), 1)
            ]
        );
        assert_eq!((c.events, c.workloads, c.governance), (4, 2, 1));
    }
}
