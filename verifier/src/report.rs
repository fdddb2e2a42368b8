//! What a verification found: [`Violation`]s with stable codes, and the
//! [`Verdict`] they add up to.
//!
//! Every command reports each problem it finds as one [`Violation`]: a typed
//! value that carries what failed (a path, a leaf index, the two hashes that
//! differ), a stable snake_case [`Violation::code`] for machines, and a
//! [`Display`](std::fmt::Display) sentence for people. Rule violations of
//! replayed entries reuse the ledger's [`Rejection`] and the same codes the
//! API answers with (`unknown_key`, `prev_mismatch`, ...).

use std::fmt;

use lineage_ledger::Hash;
use lineage_ledger::checkpoint::CheckpointError;
use lineage_ledger::cosignature::CosignatureError;
use lineage_ledger::dsse::SignatureError;
use lineage_ledger::entry::EntryError;
use lineage_ledger::event::PayloadError;
use lineage_ledger::hash::HashDecodeError;
use lineage_ledger::keys::{EventId, KeyId};
use lineage_ledger::policy::QuorumUnmet;
use lineage_ledger::rules::Rejection;
use lineage_ledger::tile::BundleError;
use lineage_ledger::tlog_proof::TlogProofError;
use lineage_ledger::tree::VerifyError;
use lineage_schemas::RECEIPT_FORMAT;
use serde::Serialize;

/// The outcome of a command, from best to worst. Its exit code is [`Verdict::exit_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Everything that was asked was checked and holds.
    Verified,
    /// Something did not verify (or could not be checked and that was not allowed).
    Failed,
    /// The log signed two checkpoints that are not consistent: evidence of a fork.
    Fork,
}

/// Process exit codes of `lineage-verify`.
pub mod exit {
    /// Everything verified.
    pub const VERIFIED: u8 = 0;
    /// Verification failed; the output names every failure.
    pub const FAILED: u8 = 1;
    /// Bad arguments, or an input could not be read: nothing was verified.
    pub const USAGE: u8 = 2;
    /// A fork: two validly signed checkpoints of the log that are not consistent.
    pub const FORK: u8 = 3;
}

impl Verdict {
    /// The process exit code: 0, 1 or 3 (2 is for usage and I/O errors).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Verified => exit::VERIFIED,
            Verdict::Failed => exit::FAILED,
            Verdict::Fork => exit::FORK,
        }
    }

    /// The verdict of a list of violations: a fork wins, any other violation fails.
    pub fn of(violations: &[Violation]) -> Verdict {
        violations
            .iter()
            .map(|v| match v {
                Violation::Fork { .. } => Verdict::Fork,
                _ => Verdict::Failed,
            })
            .max()
            .unwrap_or(Verdict::Verified)
    }

    /// Upper-case word for the last line of text output.
    pub fn word(self) -> &'static str {
        match self {
            Verdict::Verified => "VERIFIED",
            Verdict::Failed => "FAILED",
            Verdict::Fork => "FORK",
        }
    }
}

/// How two checkpoints were found to be a fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ForkKind {
    /// Same tree size, different roots: a fork on the two signatures alone.
    SameSize,
    /// The older tree root, recomputed from the exported leaves, is not the one
    /// the older checkpoint signs (`audit --since`): a fork on the data.
    Recomputed,
    /// A well-formed consistency proof does not link the two signed roots.
    /// The log cannot prove the two trees consistent; a corrupt proof file
    /// lands here too, so fetch the proof again before publishing the evidence.
    Proof,
}

impl fmt::Display for ForkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForkKind::SameSize => "same size, different roots",
            ForkKind::Recomputed => "recomputed from the export's leaves",
            ForkKind::Proof => "by the consistency proof",
        })
    }
}

/// The values that show two signed checkpoints of one log to be inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForkEvidence {
    /// Both checkpoints sign the same tree size with different roots.
    #[error("two roots for tree size {size}: {first} and {second}")]
    SameSize {
        /// The tree size.
        size: u64,
        /// The older checkpoint's root.
        first: Hash,
        /// The newer checkpoint's root.
        second: Hash,
    },
    /// The older checkpoint's root is not what its leaves in the export hash to.
    #[error(
        "the older checkpoint signs root {signed} for the first {size} leaves, \
         but the first {size} leaves of the export hash to {computed}"
    )]
    Recomputed {
        /// The older tree size.
        size: u64,
        /// The root the older checkpoint signs.
        signed: Hash,
        /// The root of the export's first `size` leaves.
        computed: Hash,
    },
    /// A well-formed consistency proof does not lead to both signed roots.
    #[error(
        "the consistency proof does not link the signed roots ({0}); \
         if the proof came from the log unaltered, the log forked"
    )]
    Proof(#[source] VerifyError),
}

impl ForkEvidence {
    /// How the fork was found.
    pub fn kind(&self) -> ForkKind {
        match self {
            ForkEvidence::SameSize { .. } => ForkKind::SameSize,
            ForkEvidence::Recomputed { .. } => ForkKind::Recomputed,
            ForkEvidence::Proof(_) => ForkKind::Proof,
        }
    }
}

/// One problem found by a command.
#[derive(Debug, thiserror::Error)]
pub enum Violation {
    /// A signed checkpoint does not verify under the trusted log key.
    #[error("{which}: {error}")]
    Checkpoint {
        /// Which checkpoint: `checkpoint`, `old checkpoint`, `new checkpoint`, `--since checkpoint`.
        which: &'static str,
        /// Why.
        error: CheckpointError,
    },
    /// A witness of the `--policy` signed a cosignature line that does not
    /// verify: the note is rejected (c2sp.org/tlog-policy, signed-note).
    #[error("{which}: cosignature by witness {witness}: {error}")]
    Cosignature {
        /// Which checkpoint.
        which: &'static str,
        /// The witness's policy name.
        witness: String,
        /// Why its line failed.
        error: CosignatureError,
    },
    /// The counted cosignatures do not meet the `--policy` quorum.
    #[error("{which}: {error}{}", dropped_text(*.dropped))]
    QuorumUnmet {
        /// Which checkpoint.
        which: &'static str,
        /// The quorum and every unmet group it depends on.
        error: QuorumUnmet,
        /// Valid cosignatures not counted under `--max-age`.
        dropped: usize,
    },
    /// A file the tree size requires is not in the export.
    #[error("{path}: missing from the export")]
    MissingFile {
        /// The path relative to the export directory.
        path: String,
    },
    /// A file exists but cannot be read.
    #[error("{path}: cannot be read: {error}")]
    UnreadableFile {
        /// The path relative to the export directory.
        path: String,
        /// The I/O error.
        error: std::io::Error,
    },
    /// An entry bundle does not decode.
    #[error("{path}: not an entry bundle: {error}")]
    MalformedBundle {
        /// The bundle's path.
        path: String,
        /// Why.
        error: BundleError,
    },
    /// An entry bundle holds another number of entries than its path says.
    #[error("{path}: holds {found} entries, its path says {expected}")]
    BundleWidth {
        /// The bundle's path.
        path: String,
        /// The width in the path (256 for a full bundle).
        expected: u16,
        /// Entries found.
        found: usize,
    },
    /// A hash tile is not exactly `width * 32` bytes.
    #[error("{path}: {found} bytes, a tile of {width} hashes has {expected}")]
    TileLength {
        /// The tile's path.
        path: String,
        /// The width in the path.
        width: u16,
        /// `width * 32`.
        expected: usize,
        /// Bytes found.
        found: usize,
    },
    /// A hash tile differs from the one recomputed from the entries.
    #[error(
        "{path}: {mismatched} of {width} hashes differ from the tile recomputed from the entries; \
         first at position {position} (tree level {tree_level}, node {node}): \
         recomputed {recomputed}, file has {found}"
    )]
    TileMismatch {
        /// The tile's path.
        path: String,
        /// Tile level (tree level `8 * level`).
        level: u8,
        /// Width of the tile.
        width: u16,
        /// Position of the first differing hash in the tile.
        position: u16,
        /// Tree level of the hashes (`8 * level`; 0 for leaf hashes).
        tree_level: u8,
        /// Index of the first differing node at that tree level (the leaf index for level 0).
        node: u64,
        /// Number of differing hashes.
        mismatched: usize,
        /// The recomputed hash at `position`.
        recomputed: Hash,
        /// The file's hash at `position`.
        found: Hash,
    },
    /// An entry bundle and its level-0 tile are both unusable, so the tree
    /// above them cannot be recomputed.
    #[error(
        "{path}: neither this bundle nor its level-0 tile gives the leaf hashes; \
         tiles and the root after leaf {first_leaf} are not checked"
    )]
    TreeIncomplete {
        /// The bundle's path.
        path: String,
        /// First leaf of the bundle.
        first_leaf: u64,
    },
    /// The root recomputed from the entries is not the signed checkpoint's.
    #[error(
        "root mismatch at tree size {size}: the checkpoint signs {signed}, the entries hash to {computed}"
    )]
    RootMismatch {
        /// The tree size.
        size: u64,
        /// The signed root.
        signed: Hash,
        /// The recomputed root.
        computed: Hash,
    },
    /// The export's manifest disagrees with what the auditor trusts or with the checkpoint.
    #[error("manifest.json: {field} is {found:?}, but {expected:?} is trusted")]
    ManifestMismatch {
        /// The manifest field.
        field: &'static str,
        /// The manifest's value.
        found: String,
        /// The trusted value (from `--log-key` or the signed checkpoint).
        expected: String,
    },
    /// `manifest.json` is unusable (it was not needed: reported, not fatal).
    #[error("{error}")]
    ManifestInvalid {
        /// Why.
        error: Box<crate::InputError>,
    },
    /// The export ends before the tree size its checkpoint signs.
    #[error(
        "{path}: missing, and so is its level-0 tile: the export ends at leaf {first_leaf} \
         of the {size} its checkpoint signs; the rest is not checked"
    )]
    ExportTruncated {
        /// The first missing bundle.
        path: String,
        /// Its first leaf.
        first_leaf: u64,
        /// The signed tree size.
        size: u64,
    },
    /// A leaf is not a log entry.
    #[error("entry {index}: not a log entry: {error}")]
    MalformedEntry {
        /// Leaf index.
        index: u64,
        /// Why.
        error: EntryError,
    },
    /// An entry's integration time is not a representable date.
    #[error("entry {index}: integrated_at_ms {ms} is not a representable time")]
    IntegrationTime {
        /// Leaf index.
        index: u64,
        /// The value.
        ms: u64,
    },
    /// An entry the ledger's rules would have refused.
    #[error("entry {index} ({event_id}): {rejection}{}", builds_on.map(|i| format!(" (it builds on entry {i}, which this audit refused)")).unwrap_or_default())]
    Rule {
        /// Leaf index.
        index: u64,
        /// Its event ID.
        event_id: EventId,
        /// The rule it breaks (the ledger's own verdict type).
        rejection: Box<Rejection>,
        /// The refused entry its `prev` or parent names, when that explains the violation.
        builds_on: Option<u64>,
    },
    /// The replay state could not answer a rule's question (a verifier bug, not a log problem).
    #[error("entry {index}: the replay cannot answer a rule's question: {what}")]
    Internal {
        /// Leaf index.
        index: u64,
        /// What went wrong.
        what: &'static str,
    },
    /// `--since` names a checkpoint larger than the export.
    #[error(
        "--since checkpoint has tree size {since}, larger than the export's {size}: export a newer tree"
    )]
    SinceNewer {
        /// The older checkpoint's size.
        since: u64,
        /// The export's size.
        size: u64,
    },
    /// The export's own tree does not verify, so whether it extends `--since` is undecided.
    #[error(
        "the export's own tree does not verify (see above), so whether it extends the --since checkpoint of size {since} cannot be decided"
    )]
    SinceUndecided {
        /// The older checkpoint's size.
        since: u64,
    },
    /// Two validly signed checkpoints of the log that are not consistent.
    #[error(
        "the log signed checkpoints of sizes {old_size} and {new_size} that are not consistent ({}): {evidence}",
        evidence.kind()
    )]
    Fork {
        /// The older tree size.
        old_size: u64,
        /// The newer tree size.
        new_size: u64,
        /// The hashes that disagree, and how it was found ([`ForkEvidence::kind`]).
        #[source]
        evidence: ForkEvidence,
    },
    /// A receipt is not `lineage-bundle/v1` JSON.
    #[error("receipt is not {RECEIPT_FORMAT} JSON: {error}")]
    ReceiptJson {
        /// The parser's error.
        error: serde_json::Error,
    },
    /// A receipt's `format` field.
    #[error("receipt format is {found:?}, expected {RECEIPT_FORMAT:?}")]
    ReceiptFormat {
        /// The value found.
        found: String,
    },
    /// A tlog-proof text does not parse.
    #[error("tlog-proof: {error}")]
    TlogProof {
        /// The first problem.
        error: TlogProofError,
    },
    /// A tlog-proof without an `extra` line: a Lineage tlog-proof carries the
    /// log entry there, without which the leaf hash is unknown.
    #[error(
        "tlog-proof has no extra line: a Lineage tlog-proof carries the log entry (base64) there"
    )]
    TlogProofWithoutEntry,
    /// A receipt's `entry` is not canonical standard base64.
    #[error("receipt entry is not canonical standard base64")]
    EntryEncoding,
    /// A proof element is not a hash.
    #[error("{what}[{position}]: {error}")]
    ProofEncoding {
        /// `inclusion_proof` or `proof`.
        what: &'static str,
        /// Position in the proof.
        position: usize,
        /// Why.
        error: HashDecodeError,
    },
    /// An inclusion proof does not lead to the signed root.
    #[error("inclusion proof of leaf {index} in the tree of size {size}: {error}")]
    InclusionProof {
        /// Leaf index.
        index: u64,
        /// Tree size.
        size: u64,
        /// Why.
        error: VerifyError,
    },
    /// A receipt's `event_id` is not BLAKE3 of the entry's payload.
    #[error("receipt event_id {claimed} is not the BLAKE3 of the payload, {computed}")]
    EventIdMismatch {
        /// The receipt's `event_id`.
        claimed: String,
        /// BLAKE3 of the payload.
        computed: EventId,
    },
    /// An envelope signature does not verify under the key it names.
    #[error("signature by key {key_id}: {error}")]
    Signature {
        /// The entry's key ID.
        key_id: KeyId,
        /// Why.
        error: SignatureError,
    },
    /// The signer's public key was not given, so the signature could not be checked.
    #[error(
        "signature not checked: key {key_id} is unknown (pass it with {flag}, or accept with --allow-unknown-signer)"
    )]
    SignerUnknown {
        /// The entry's key ID.
        key_id: KeyId,
        /// The flag that supplies such a key.
        flag: &'static str,
    },
    /// A receipt's payload breaks its schema.
    #[error("payload: {error}")]
    Payload {
        /// Why.
        error: PayloadError,
    },
    /// A consistency proof file is not `{"first", "second", "proof"}` JSON.
    #[error("consistency proof is not {{\"first\", \"second\", \"proof\"}} JSON: {error}")]
    ProofJson {
        /// The parser's error.
        error: serde_json::Error,
    },
    /// A consistency proof is for other sizes than the two checkpoints.
    #[error(
        "consistency proof is for sizes {first} -> {second}, the checkpoints are {old} -> {new}"
    )]
    ProofSizes {
        /// The proof's `first`.
        first: u64,
        /// The proof's `second`.
        second: u64,
        /// The old checkpoint's size.
        old: u64,
        /// The new checkpoint's size.
        new: u64,
    },
    /// The old checkpoint is larger than the new one.
    #[error(
        "the old checkpoint (size {old}) is larger than the new one (size {new}): pass the older one first"
    )]
    SizesOutOfOrder {
        /// The old checkpoint's size.
        old: u64,
        /// The new checkpoint's size.
        new: u64,
    },
    /// A consistency proof of the wrong shape (length).
    #[error("consistency proof {old} -> {new}: {error}")]
    ConsistencyProof {
        /// The old size.
        old: u64,
        /// The new size.
        new: u64,
        /// Why.
        error: VerifyError,
    },
    /// An ancestor named by an event is not in the log.
    #[error("{link} {event_id} of entry {child_index} is not in the log")]
    MissingAncestor {
        /// The missing event ID.
        event_id: EventId,
        /// The entry that names it.
        child_index: u64,
        /// `prev` or `parents[i]`.
        link: String,
    },
}

impl Violation {
    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Violation::Checkpoint { .. } => "checkpoint",
            Violation::Cosignature { .. } => "bad_cosignature",
            Violation::QuorumUnmet { .. } => "quorum_unmet",
            Violation::MissingFile { .. } => "missing_file",
            Violation::UnreadableFile { .. } => "unreadable_file",
            Violation::MalformedBundle { .. } => "malformed_bundle",
            Violation::BundleWidth { .. } => "bundle_width",
            Violation::TileLength { .. } => "tile_length",
            Violation::TileMismatch { .. } => "tile_mismatch",
            Violation::TreeIncomplete { .. } => "tree_incomplete",
            Violation::RootMismatch { .. } => "root_mismatch",
            Violation::ManifestMismatch { .. } => "manifest_mismatch",
            Violation::ManifestInvalid { .. } => "manifest_invalid",
            Violation::ExportTruncated { .. } => "export_truncated",
            Violation::MalformedEntry { .. } => "malformed_entry",
            Violation::IntegrationTime { .. } => "integration_time",
            Violation::Rule { rejection, .. } => rejection.code(),
            Violation::Internal { .. } => "internal",
            Violation::SinceNewer { .. } => "since_newer",
            Violation::SinceUndecided { .. } => "since_undecided",
            Violation::Fork { .. } => "fork",
            Violation::ReceiptJson { .. } => "receipt_json",
            Violation::ReceiptFormat { .. } => "receipt_format",
            Violation::EntryEncoding => "entry_encoding",
            Violation::TlogProof { .. } => "tlog_proof",
            Violation::TlogProofWithoutEntry => "tlog_proof_without_entry",
            Violation::ProofEncoding { .. } => "proof_encoding",
            Violation::InclusionProof { .. } => "inclusion_proof",
            Violation::EventIdMismatch { .. } => "event_id_mismatch",
            Violation::Signature { .. } => "bad_signature",
            Violation::SignerUnknown { .. } => "signer_unknown",
            Violation::Payload { .. } => "invalid_payload",
            Violation::ProofJson { .. } => "proof_json",
            Violation::ProofSizes { .. } => "proof_sizes",
            Violation::SizesOutOfOrder { .. } => "sizes_out_of_order",
            Violation::ConsistencyProof { .. } => "consistency_proof",
            Violation::MissingAncestor { .. } => "missing_ancestor",
        }
    }

    /// The leaf index the violation is about, when there is one.
    pub fn index(&self) -> Option<u64> {
        match self {
            Violation::MalformedEntry { index, .. }
            | Violation::IntegrationTime { index, .. }
            | Violation::Rule { index, .. }
            | Violation::Internal { index, .. }
            | Violation::InclusionProof { index, .. } => Some(*index),
            Violation::TileMismatch {
                tree_level: 0,
                node,
                ..
            } => Some(*node),
            Violation::TreeIncomplete { first_leaf, .. }
            | Violation::ExportTruncated { first_leaf, .. } => Some(*first_leaf),
            Violation::MissingAncestor { child_index, .. } => Some(*child_index),
            Violation::Checkpoint { .. }
            | Violation::Cosignature { .. }
            | Violation::QuorumUnmet { .. }
            | Violation::MissingFile { .. }
            | Violation::UnreadableFile { .. }
            | Violation::MalformedBundle { .. }
            | Violation::BundleWidth { .. }
            | Violation::TileLength { .. }
            | Violation::TileMismatch { .. }
            | Violation::RootMismatch { .. }
            | Violation::ManifestMismatch { .. }
            | Violation::ManifestInvalid { .. }
            | Violation::SinceNewer { .. }
            | Violation::SinceUndecided { .. }
            | Violation::Fork { .. }
            | Violation::ReceiptJson { .. }
            | Violation::ReceiptFormat { .. }
            | Violation::EntryEncoding
            | Violation::TlogProof { .. }
            | Violation::TlogProofWithoutEntry
            | Violation::ProofEncoding { .. }
            | Violation::EventIdMismatch { .. }
            | Violation::Signature { .. }
            | Violation::SignerUnknown { .. }
            | Violation::Payload { .. }
            | Violation::ProofJson { .. }
            | Violation::ProofSizes { .. }
            | Violation::SizesOutOfOrder { .. }
            | Violation::ConsistencyProof { .. } => None,
        }
    }

    /// The export file the violation is about, when there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Violation::MissingFile { path }
            | Violation::UnreadableFile { path, .. }
            | Violation::MalformedBundle { path, .. }
            | Violation::BundleWidth { path, .. }
            | Violation::TileLength { path, .. }
            | Violation::TileMismatch { path, .. }
            | Violation::TreeIncomplete { path, .. }
            | Violation::ExportTruncated { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Whether the violation is about the tree and its files (the checkpoint,
    /// tiles, bundles, root), as opposed to the meaning of one entry.
    pub fn is_structural(&self) -> bool {
        matches!(
            self,
            Violation::Checkpoint { .. }
                | Violation::Cosignature { .. }
                | Violation::QuorumUnmet { .. }
                | Violation::MissingFile { .. }
                | Violation::UnreadableFile { .. }
                | Violation::MalformedBundle { .. }
                | Violation::BundleWidth { .. }
                | Violation::TileLength { .. }
                | Violation::TileMismatch { .. }
                | Violation::TreeIncomplete { .. }
                | Violation::RootMismatch { .. }
                | Violation::ManifestMismatch { .. }
                | Violation::ManifestInvalid { .. }
                | Violation::ExportTruncated { .. }
                | Violation::SinceNewer { .. }
                | Violation::SinceUndecided { .. }
                | Violation::Fork { .. }
        )
    }
}

fn dropped_text(dropped: usize) -> String {
    match dropped {
        0 => String::new(),
        1 => " (1 valid cosignature not counted under --max-age)".to_owned(),
        n => format!(" ({n} valid cosignatures not counted under --max-age)"),
    }
}

/// The JSON form of a violation: `{"code", "index"?, "path"?, "message"}`.
impl Serialize for Violation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            code: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            index: Option<u64>,
            #[serde(skip_serializing_if = "Option::is_none")]
            path: Option<&'a str>,
            message: String,
        }
        Wire {
            code: self.code(),
            index: self.index(),
            path: self.path(),
            message: self.to_string(),
        }
        .serialize(s)
    }
}

/// One line of text output for a violation: `[index N] code: message`.
#[derive(Debug)]
pub struct Line<'a>(pub &'a Violation);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.index() {
            Some(i) => write!(f, "[index {i}] {}: {}", self.0.code(), self.0),
            None => write!(f, "{}: {}", self.0.code(), self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_outranks_other_failures() {
        let fork = Violation::Fork {
            old_size: 1,
            new_size: 1,
            evidence: ForkEvidence::SameSize {
                size: 1,
                first: Hash::from_bytes([1; 32]),
                second: Hash::from_bytes([2; 32]),
            },
        };
        let other = Violation::EntryEncoding;
        assert_eq!(Verdict::of(&[]), Verdict::Verified);
        assert_eq!(Verdict::of(std::slice::from_ref(&other)), Verdict::Failed);
        assert_eq!(Verdict::of(&[other, fork]), Verdict::Fork);
        assert_eq!(
            [Verdict::Verified, Verdict::Failed, Verdict::Fork].map(Verdict::exit_code),
            [exit::VERIFIED, exit::FAILED, exit::FORK]
        );
    }

    #[test]
    fn fork_messages_name_the_kind_and_the_hashes() {
        let (a, b) = (Hash::from_bytes([1; 32]), Hash::from_bytes([2; 32]));
        let fork = |evidence| Violation::Fork {
            old_size: 3,
            new_size: 5,
            evidence,
        };
        let head = "the log signed checkpoints of sizes 3 and 5 that are not consistent";
        assert_eq!(
            fork(ForkEvidence::SameSize {
                size: 3,
                first: a,
                second: b
            })
            .to_string(),
            format!("{head} (same size, different roots): two roots for tree size 3: {a} and {b}")
        );
        assert_eq!(
            fork(ForkEvidence::Recomputed {
                size: 3,
                signed: a,
                computed: b
            })
            .to_string(),
            format!(
                "{head} (recomputed from the export's leaves): the older checkpoint signs root {a} \
                 for the first 3 leaves, but the first 3 leaves of the export hash to {b}"
            )
        );
        let error = VerifyError::RootMismatch {
            expected: a,
            computed: b,
        };
        let v = fork(ForkEvidence::Proof(error.clone()));
        assert_eq!(
            v.to_string(),
            format!(
                "{head} (by the consistency proof): the consistency proof does not link the \
                 signed roots ({error}); if the proof came from the log unaltered, the log forked"
            )
        );
        // The proof's own verdict stays reachable as the source.
        let source = std::error::Error::source(&v).map(ToString::to_string);
        assert_eq!(source, Some(ForkEvidence::Proof(error).to_string()));
    }

    #[test]
    fn json_form_names_code_index_and_path() {
        let v = Violation::TileMismatch {
            path: "tile/0/000".into(),
            level: 0,
            width: 256,
            position: 17,
            tree_level: 0,
            node: 17,
            mismatched: 1,
            recomputed: Hash::from_bytes([1; 32]),
            found: Hash::from_bytes([2; 32]),
        };
        let json = serde_json::to_value(&v).unwrap_or_default();
        assert_eq!(json["code"], "tile_mismatch");
        assert_eq!(json["index"], 17);
        assert_eq!(json["path"], "tile/0/000");
        assert!(
            json["message"]
                .as_str()
                .is_some_and(|m| m.contains("position 17")),
            "{json}"
        );
        assert_eq!(
            Line(&v).to_string().split(':').next(),
            Some("[index 17] tile_mismatch")
        );
    }
}
