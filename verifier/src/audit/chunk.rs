//! The parallel half of the audit: a chunk of entry bundles read, hashed and decoded on all
//! cores, and every envelope signature checked against the key its entry names, when known.

use std::collections::HashMap;

use ed25519_dalek::{Signature, VerifyingKey};
use lineage_ledger::dsse::SignedEnvelope;
use lineage_ledger::entry::{EntryError, EntryType, LogEntry};
use lineage_ledger::event::{GovernanceStatement, parse_governance};
use lineage_ledger::keys::KeyId;
use lineage_ledger::rules::Candidate;
use lineage_ledger::tile::{TileKind, TilePath, decode_bundle};
use lineage_ledger::{HASH_SIZE, Hash, TILE_WIDTH, leaf_hash};
use rayon::prelude::*;

use crate::export::ExportDir;
use crate::report::Violation;

/// One entry of a prepared chunk.
#[derive(Debug)]
pub(super) enum Prepared {
    /// `--tree-only`: hashed, not decoded.
    Raw,
    /// A decoded entry, its signature checked when its key was known.
    Decoded {
        candidate: Candidate,
        integrated_at_ms: u64,
    },
    /// Not a log entry.
    Malformed(EntryError),
}

/// One entry bundle, read, hashed and decoded.
#[derive(Debug)]
pub(super) struct PreparedBundle {
    pub(super) path: TilePath,
    /// Leaf index of its first entry.
    pub(super) first: u64,
    /// The leaf hashes; from the level-0 tile when the bundle is unusable; `None` when both are.
    pub(super) leaves: Option<Vec<Hash>>,
    pub(super) entries: Vec<Prepared>,
    pub(super) problems: Vec<Violation>,
    /// The bundle file is missing and so is its level-0 tile: the export ends here.
    pub(super) missing: bool,
}

/// Reads bundles of a chunk in parallel, hashes and decodes their entries,
/// learns the keys that governance entries name, and checks the signatures.
pub(super) fn prepare_chunk(
    export: &ExportDir,
    chunk: &[(u64, u16)],
    directory: &mut HashMap<KeyId, VerifyingKey>,
    tree_only: bool,
) -> Vec<PreparedBundle> {
    let mut bundles: Vec<PreparedBundle> = chunk
        .par_iter()
        .map(|&(index, width)| prepare_bundle(export, index, width, tree_only))
        .collect();
    // Every key a governance statement names, valid or not: a verdict is only
    // ever computed against the key an entry itself names (its key ID).
    for entry in bundles.iter().flat_map(|b| &b.entries) {
        if let Prepared::Decoded { candidate, .. } = entry
            && candidate.envelope().payload_type == EntryType::Governance.payload_type()
            && let Ok(GovernanceStatement::Key(statement)) =
                parse_governance(&candidate.envelope().payload)
        {
            directory.insert(statement.key_id, statement.public_key);
        }
    }
    let directory = &*directory;
    bundles
        .par_iter_mut()
        .flat_map(|b| b.entries.par_iter_mut())
        .for_each(|entry| {
            if let Prepared::Decoded { candidate, .. } = entry
                && let Some(key) = directory.get(&candidate.envelope().key_id)
            {
                candidate.precheck_signature(key);
            }
        });
    bundles
}

fn prepare_bundle(export: &ExportDir, index: u64, width: u16, tree_only: bool) -> PreparedBundle {
    // Lossless: `layout` only yields widths 1..=256.
    let path = TilePath {
        kind: TileKind::Entries,
        index,
        width,
    };
    let mut out = PreparedBundle {
        path,
        first: index * TILE_WIDTH,
        leaves: None,
        entries: Vec::new(),
        problems: Vec::new(),
        missing: false,
    };
    let bytes = match export.tile(&path) {
        Ok(b) => b,
        Err(v) => {
            out.leaves = leaves_from_tile(export, index, width);
            out.missing = out.leaves.is_none() && matches!(v, Violation::MissingFile { .. });
            out.problems.push(v);
            return out;
        }
    };
    let entries = match decode_bundle(&bytes) {
        Ok(e) if e.len() == usize::from(width) => e,
        Ok(e) => {
            out.problems.push(Violation::BundleWidth {
                path: path.to_string(),
                expected: width,
                found: e.len(),
            });
            out.leaves = leaves_from_tile(export, index, width);
            return out;
        }
        Err(error) => {
            out.problems.push(Violation::MalformedBundle {
                path: path.to_string(),
                error,
            });
            out.leaves = leaves_from_tile(export, index, width);
            return out;
        }
    };
    out.leaves = Some(entries.iter().map(|e| leaf_hash(e)).collect());
    out.entries = entries
        .iter()
        .map(|bytes| {
            if tree_only {
                return Prepared::Raw;
            }
            match LogEntry::decode(bytes) {
                Ok(entry) => Prepared::Decoded {
                    integrated_at_ms: entry.integrated_at_ms,
                    candidate: candidate(entry),
                },
                Err(e) => Prepared::Malformed(e),
            }
        })
        .collect();
    out
}

/// The entry as the candidate the rules judge (the payload moved, not copied).
fn candidate(entry: LogEntry) -> Candidate {
    Candidate::new(SignedEnvelope {
        payload_type: entry.entry_type.payload_type(),
        payload: entry.payload,
        key_id: entry.key_id,
        signature: Signature::from_bytes(&entry.signature),
    })
}

/// Stand-in leaf hashes for an unusable bundle, so the tree above it can
/// still be checked: its level-0 tile, when that has the right size.
fn leaves_from_tile(export: &ExportDir, index: u64, width: u16) -> Option<Vec<Hash>> {
    let tile = TilePath::hash(0, index, width).ok()?;
    let bytes = export.tile(&tile).ok()?;
    (bytes.len() == usize::from(width) * HASH_SIZE).then(|| {
        bytes
            .chunks_exact(HASH_SIZE)
            .filter_map(Hash::from_slice)
            .collect()
    })
}
