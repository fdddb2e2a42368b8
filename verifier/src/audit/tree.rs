//! The sequential half of the audit, in log order: the tiles recomputed and compared with the
//! files, the root against the signed checkpoint, the `--since` prefix, and the rules replayed.

use lineage_ledger::Hash;
use lineage_ledger::checkpoint::Checkpoint;
use lineage_ledger::entry::EntryType;
use lineage_ledger::tile::TilePath;
use lineage_ledger::tree::TileWrite;

use super::chunk::{Prepared, PreparedBundle};
use super::report::{Counts, Since};
use crate::Progress;
use crate::export::ExportDir;
use crate::replay::Replay;
use crate::report::{ForkEvidence, Violation};
use crate::tiles::{TileRebuilder, compare};

/// The sequential half: tiles, root, `--since`, and the rules.
pub(super) struct Tree<'a> {
    pub(super) export: &'a ExportDir,
    pub(super) rebuilder: TileRebuilder,
    pub(super) full: Vec<TileWrite>,
    /// A bundle and its tile were both unusable: nothing above can be recomputed.
    pub(super) broken: bool,
    pub(super) since_size: Option<u64>,
    pub(super) since_root: Option<Hash>,
    pub(super) replay: Option<Replay>,
    pub(super) violations: Vec<Violation>,
    pub(super) counts: Counts,
    pub(super) done: u64,
    /// Where the export ends, when it ends before the tree size.
    pub(super) truncated: Option<Violation>,
}

impl Tree<'_> {
    pub(super) fn consume(&mut self, chunk: Vec<PreparedBundle>, progress: &mut dyn Progress) {
        for bundle in chunk {
            if bundle.missing {
                self.broken = true;
                self.truncated = Some(Violation::ExportTruncated {
                    path: bundle.path.to_string(),
                    first_leaf: bundle.first,
                    size: self.counts.entries,
                });
                return;
            }
            let width = u64::from(bundle.path.width);
            self.violations.extend(bundle.problems);
            match bundle.leaves {
                Some(leaves) if !self.broken => {
                    for leaf in leaves {
                        self.rebuilder.push(leaf, &mut self.full);
                        if self.since_size == Some(self.rebuilder.size()) {
                            self.since_root = Some(self.rebuilder.root());
                        }
                    }
                    for tile in std::mem::take(&mut self.full) {
                        self.check_tile(&tile);
                    }
                }
                Some(_) => {}
                None => {
                    if !self.broken {
                        self.broken = true;
                        self.violations.push(Violation::TreeIncomplete {
                            path: bundle.path.to_string(),
                            first_leaf: bundle.first,
                        });
                    }
                }
            }
            if !bundle.entries.is_empty() {
                self.counts.hashed += width;
            }
            for (index, entry) in (bundle.first..).zip(bundle.entries) {
                self.replay_entry(index, entry);
            }
            self.done += width;
            progress.advance(self.done);
        }
    }

    fn replay_entry(&mut self, index: u64, entry: Prepared) {
        match entry {
            Prepared::Raw => {}
            Prepared::Malformed(error) => {
                self.violations
                    .push(Violation::MalformedEntry { index, error });
            }
            Prepared::Decoded {
                candidate,
                integrated_at_ms,
            } => {
                if candidate.envelope().payload_type == EntryType::Event.payload_type() {
                    self.counts.events += 1;
                } else {
                    self.counts.governance += 1;
                }
                if let Some(replay) = &mut self.replay
                    && let Err(v) = replay.apply(index, &candidate, integrated_at_ms)
                {
                    self.violations.push(v);
                }
            }
        }
    }

    fn check_tile(&mut self, tile: &TileWrite) {
        let result = TilePath::hash(tile.level, tile.index, tile.width())
            .map_err(|_| Violation::Internal {
                index: tile.index,
                what: "tile path out of range",
            })
            .and_then(|path| self.export.tile(&path))
            .and_then(|bytes| compare(tile, &bytes));
        if let Err(v) = result {
            self.violations.push(v);
        }
    }

    pub(super) fn finish(&mut self, checkpoint: &Checkpoint, since: Option<&mut Since>) {
        self.violations.extend(self.truncated.take());
        // Whether the recomputed leaves are the ones the log signed.
        let mut root_verified = false;
        if !self.broken {
            for tile in self.rebuilder.partial_tiles() {
                self.check_tile(&tile);
            }
            let computed = self.rebuilder.root();
            root_verified = computed == checkpoint.root;
            if !root_verified {
                self.violations.push(Violation::RootMismatch {
                    size: checkpoint.size,
                    signed: checkpoint.root,
                    computed,
                });
            }
        }
        let Some(since) = since else { return };
        if since.checkpoint.size > checkpoint.size {
            return;
        }
        // The first leaves are the log's only if the export's root verified:
        // otherwise a difference could be damage to the export, not a fork.
        match self.since_root {
            Some(root) if root_verified && root == since.checkpoint.root => {
                since.extends = Some(true);
            }
            Some(root) if root_verified => {
                since.extends = Some(false);
                self.violations.push(Violation::Fork {
                    old_size: since.checkpoint.size,
                    new_size: checkpoint.size,
                    evidence: ForkEvidence::Recomputed {
                        size: since.checkpoint.size,
                        signed: since.checkpoint.root,
                        computed: root,
                    },
                });
            }
            Some(_) | None => self.violations.push(Violation::SinceUndecided {
                since: since.checkpoint.size,
            }),
        }
    }
}
