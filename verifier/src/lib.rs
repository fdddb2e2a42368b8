//! `lineage-verify`: the offline auditor of a Lineage log.
//!
//! **What it is.** Everything an auditor who does not trust the ledger's
//! operator needs to check the log's claims, offline, from files:
//!
//! - [`receipt`]: one receipt (`lineage-bundle/v1`, checked by the
//!   `lineage-verify bundle` command): the signed checkpoint, the
//!   RFC 9162 inclusion proof of the entry, the envelope's Ed25519 signature
//!   and its event ID.
//! - [`consistency`]: two signed checkpoints and a consistency proof; two
//!   checkpoints the log signed that are not consistent are a *fork*, printed
//!   as evidence.
//! - [`audit`]: a full replay of an exported log (a static C2SP tlog-tiles
//!   tree, see [`export`]): every hash tile and the root recomputed from the
//!   entries, every signature re-checked, and the ledger's own rule set
//!   ([`lineage_ledger::rules::admit`]) replayed over an in-memory view
//!   ([`replay`]), reporting every violation with its leaf index.
//! - [`ancestry`]: the verified ancestry of one event (`prev` and `parents`
//!   links back to workload starts), as a tree.
//!
//! **Trust model.** Only what the auditor passes in is trusted: the log's
//! note verifier key (`--log-key`), the authority keys (`--authority`) and,
//! for receipts, runtime keys (`--runtime-key`). An export's `manifest.json`
//! is written by the operator being audited and is never a source of keys:
//! a replay ([`audit`] without `tree_only`, [`ancestry`]) without
//! `--authority` is refused with [`InputError::NoAuthorities`] (exit 2),
//! which prints the manifest's keys only as an untrusted hint.
//!
//! With `--policy FILE` (a C2SP tlog-policy), every command also holds the
//! checkpoint to a quorum of witness cosignatures, optionally no older than
//! `--max-age` ([`witnesses`]).
//!
//! **What it is not.** It does no network I/O and depends on the pure ledger
//! core only (`lineage-ledger` without default features: no RocksDB, no
//! tokio, no axum). The same functions ([`lineage_ledger::tree`],
//! [`lineage_ledger::checkpoint`], `verify_strict` through
//! [`lineage_ledger::dsse`], [`lineage_ledger::rules`]) decide here and in
//! the ledger, so the two cannot disagree on a signature or a rule.
//!
//! Specs: RFC 6962 / RFC 9162 §2.1 (tree, proofs), c2sp.org/tlog-tiles,
//! c2sp.org/tlog-checkpoint, c2sp.org/signed-note, c2sp.org/tlog-cosignature,
//! c2sp.org/tlog-policy, c2sp.org/tlog-proof, DSSE v1.

use std::path::PathBuf;

use lineage_ledger::keys::{IdParseError, KeyError};
use lineage_ledger::note::NoteError;
use lineage_ledger::policy::PolicyParseError;

pub mod ancestry;
pub mod audit;
pub mod consistency;
pub mod export;
pub mod receipt;
pub mod replay;
pub mod report;
pub mod tiles;
pub mod trust;
pub mod witnesses;

pub use report::{ForkEvidence, ForkKind, Verdict, Violation, exit};

/// Why a command could not start: bad arguments or unreadable inputs. Nothing
/// was verified; the exit code is [`exit::USAGE`].
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// `--log-key` is neither a note verifier key nor a readable file holding one.
    #[error(
        "--log-key {input:?} is not a note verifier key ({error}) nor a readable file holding one"
    )]
    LogKey {
        /// The argument.
        input: String,
        /// Why it is not a verifier key.
        error: NoteError,
    },
    /// A `--log-key` file does not hold a note verifier key.
    #[error("--log-key file {path}: {error}")]
    LogKeyFile {
        /// The file.
        path: PathBuf,
        /// Why its content is not a verifier key.
        error: NoteError,
    },
    /// A public key argument is not canonical base64 of a strong Ed25519 key.
    #[error("{flag} {input:?}: {error}")]
    PublicKey {
        /// The flag (`--authority`, `--runtime-key`).
        flag: &'static str,
        /// The argument.
        input: String,
        /// Why.
        error: KeyError,
    },
    /// The export directory is not a directory.
    #[error("{path}: not a directory")]
    NotADirectory {
        /// The path given.
        path: PathBuf,
    },
    /// `manifest.json` is not the manifest JSON.
    #[error("{path}: not a lineage export manifest: {error}")]
    ManifestJson {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        error: serde_json::Error,
    },
    /// `manifest.json` has another format.
    #[error("{path}: manifest format {found:?} is not {expected:?}", expected = export::MANIFEST_FORMAT)]
    ManifestFormat {
        /// The file.
        path: PathBuf,
        /// The format found.
        found: String,
    },
    /// An authority key listed in `manifest.json` is unusable.
    #[error("{path}: authority_keys[{position}]: {reason}")]
    ManifestKey {
        /// The file.
        path: PathBuf,
        /// Position in `authority_keys`.
        position: usize,
        /// Why.
        reason: export::ManifestKeyError,
    },
    /// A replay was asked for without `--authority`. The keys are never taken
    /// from the export: its `manifest.json` is written by the operator being
    /// audited, who could list its own key there and pass.
    #[error("{}", no_authorities(.manifest_keys))]
    NoAuthorities {
        /// The keys the export's `manifest.json` lists (canonical base64 of
        /// keys that parsed), printed as an untrusted hint; empty when the
        /// manifest is absent, unusable or lists none.
        manifest_keys: Vec<String>,
    },
    /// An event ID argument.
    #[error("{0}")]
    EventId(#[from] IdParseError),
    /// A `--policy` file is not a C2SP tlog-policy.
    #[error("--policy {path}: {error}")]
    Policy {
        /// The file.
        path: PathBuf,
        /// The first problem, with its line.
        error: PolicyParseError,
    },
    /// No log key: neither `--log-key` nor a `log` line in `--policy`.
    #[error(
        "no log key: pass --log-key <VKEY>, or a --policy whose 'log <vkey>' line names the log"
    )]
    NoLogKey,
    /// `--policy` names several logs and `--log-key` does not say which one is audited.
    #[error("--policy names {count} logs: pass --log-key <VKEY> to say which one this is")]
    PolicyLogs {
        /// How many `log` lines.
        count: usize,
    },
    /// `--log-key` and the `log` lines of `--policy` disagree.
    #[error(
        "--log-key {log_key} is not a log of --policy, which names: {}; give one key, or make them agree",
        .policy_logs.join(", ")
    )]
    LogKeyNotInPolicy {
        /// The `--log-key` vkey.
        log_key: String,
        /// The policy's log vkeys.
        policy_logs: Vec<String>,
    },
    /// `--max-age` without `--policy`: there are no cosignatures to age.
    #[error("--max-age needs --policy: it bounds the age of the policy's witness cosignatures")]
    MaxAgeWithoutPolicy,
}

/// The message of [`InputError::NoAuthorities`]: how to pass the keys, where
/// they come from, and the manifest's keys as a hint that is not trusted.
fn no_authorities(manifest_keys: &[String]) -> String {
    let mut text = String::from(
        "no --authority given: replaying governance needs the authority public keys \
         from a source you trust, never from the export being audited.\n\
         Pass each key as --authority <B64> (base64 of the 32-byte key; repeatable: one \
         flag per key). They are the Ed25519 public keys the ledger runs with (`lineage serve --authority`), which \
         the log's operator publishes out of band, next to the log's vkey; the holders of \
         the authority private keys can confirm them. GET /v1/log and manifest.json list \
         them too, but both come from the operator you are auditing.\n\
         To check only the tree (tiles, root, checkpoint) without governance, use --tree-only.",
    );
    if !manifest_keys.is_empty() {
        text += "\nhint: the export's manifest.json lists these authority keys. They are NOT \
                 trusted (the audited operator wrote them); pass them only after checking \
                 them against the published keys:";
        for k in manifest_keys {
            text += "\n  --authority ";
            text += k;
        }
    }
    text
}

/// Where a long command reports how far it got. The binary draws a progress
/// bar on a terminal and prints plain lines otherwise; tests pass [`Silent`].
pub trait Progress: Send {
    /// The work starts: `total` units (entries).
    fn start(&mut self, total: u64);
    /// `done` units of `total` are finished (monotonic).
    fn advance(&mut self, done: u64);
    /// The work is over.
    fn finish(&mut self);
}

/// A [`Progress`] that reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
}
