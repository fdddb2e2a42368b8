//! The full audit of an exported log (`lineage-verify audit`).
//!
//! 1. The checkpoint must carry a valid signature by the trusted log key, with
//!    the key's name as origin. Without it nothing else means anything, so a
//!    bad checkpoint ends the audit.
//! 2. The entry bundles are streamed in chunks. For each chunk, on all cores
//!    (rayon): read and decode the bundles, hash every leaf
//!    (`SHA-256(0x00 || entry)`), decode every entry and check every envelope
//!    signature (`verify_strict`) against the key the entry names, when that
//!    key is known: an authority key, or any key a governance entry up to
//!    this chunk names. A key ID is the hash of the key, so that verdict is
//!    final whatever the registry later says.
//! 3. Then, in log order: the tiles are recomputed ([`TileRebuilder`]) and
//!    compared byte for byte with the files, and the ledger's rules are
//!    replayed ([`Replay`]) with the verdicts from step 2. This sequential
//!    step of chunk *k* runs while chunk *k + 1* is prepared.
//! 4. At the end: the partial tiles, the root against the signed checkpoint,
//!    and with `--since`, the older checkpoint's root against the root of the
//!    same prefix of the leaves.
//!
//! Every problem is reported as a [`Violation`] with its index; none stops the
//! audit except an unverifiable checkpoint. Memory: two chunks of entries and
//! the replay state (IDs), never the whole log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration as Elapsed, Instant};

use ed25519_dalek::{Signature, VerifyingKey};
use lineage_ledger::checkpoint::{Checkpoint, verify_checkpoint};
use lineage_ledger::dsse::SignedEnvelope;
use lineage_ledger::entry::{EntryError, EntryType, LogEntry};
use lineage_ledger::event::parse_governance;
use lineage_ledger::keys::{KeyId, public_key_base64};
use lineage_ledger::note::NoteVerifier;
use lineage_ledger::rules::{Authorities, Candidate};
use lineage_ledger::tile::{TileKind, TilePath, decode_bundle, layout};
use lineage_ledger::tree::TileWrite;
use lineage_ledger::{EMPTY_ROOT, HASH_SIZE, Hash, TILE_WIDTH, leaf_hash};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{Value, json};
use time::Duration;

use crate::export::{ExportDir, Manifest};
use crate::replay::Replay;
use crate::report::{ForkEvidence, Line, Verdict, Violation};
use crate::tiles::{TileRebuilder, compare};
use crate::{InputError, Progress};

/// The ledger's default clock-skew bound (`max_skew_secs`), the default of `--max-skew-secs`.
pub const DEFAULT_MAX_SKEW_SECS: u64 = 300;

/// Entry bundles per chunk: 16 × 256 = 4096 entries, enough to keep every core busy.
pub const DEFAULT_CHUNK_BUNDLES: usize = 16;

/// What to audit against.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The trusted log key; its name is the expected origin.
    pub log_key: NoteVerifier,
    /// Authority keys from `--authority`. Required for a replay (every
    /// command but `tree_only`): the manifest's keys are never used.
    pub authorities: Vec<VerifyingKey>,
    /// An older signed checkpoint (`--since`) the export must extend.
    pub since: Option<Vec<u8>>,
    /// Only tiles, bundles, root and checkpoint; entries are not decoded.
    pub tree_only: bool,
    /// The clock-skew bound of the ledger's rules.
    pub max_skew: Duration,
    /// Entry bundles per parallel chunk.
    pub chunk_bundles: usize,
}

impl AuditOptions {
    /// Options with the defaults: no `--authority`, no `--since`, full replay.
    pub fn new(log_key: NoteVerifier) -> AuditOptions {
        AuditOptions {
            log_key,
            authorities: Vec::new(),
            since: None,
            tree_only: false,
            max_skew: Duration::seconds(DEFAULT_MAX_SKEW_SECS as i64),
            chunk_bundles: DEFAULT_CHUNK_BUNDLES,
        }
    }
}

/// Where the authority keys of the replay came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthoritySource {
    /// `--authority`: trusted by the auditor. The only source a replay uses.
    CommandLine,
    /// None (`--tree-only`).
    None,
}

/// Something the auditor should know that is not a violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Warning {
    /// `--authority` and the manifest list different keys.
    #[error(
        "the export's manifest.json lists other authority keys than --authority; the --authority keys are used"
    )]
    ManifestAuthoritiesDiffer,
    /// `--tree-only`: entries were not decoded.
    #[error(
        "--tree-only: entries were hashed but not decoded; signatures, governance and lineage were not checked"
    )]
    TreeOnly,
}

impl Warning {
    /// Stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Warning::ManifestAuthoritiesDiffer => "manifest_authorities_differ",
            Warning::TreeOnly => "tree_only",
        }
    }
}

/// Counts of what was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Leaves (entries) in the tree.
    pub entries: u64,
    /// Leaves whose hashes were recomputed from bundle entries.
    pub hashed: u64,
    /// Event entries decoded.
    pub events: u64,
    /// Governance entries decoded.
    pub governance: u64,
}

/// What `--since` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The older checkpoint, verified.
    pub checkpoint: Checkpoint,
    /// Its signed note.
    pub note: String,
    /// `Some(true)` when the export extends it, `Some(false)` for a fork,
    /// `None` when it could not be decided (see the violations).
    pub extends: Option<bool>,
}

/// The result of an audit.
#[derive(Debug)]
pub struct AuditReport {
    /// The export directory.
    pub dir: PathBuf,
    /// The verified checkpoint, unless it failed.
    pub checkpoint: Option<Checkpoint>,
    /// Its signed note, as read.
    pub checkpoint_note: String,
    /// The trusted log key.
    pub log_key: String,
    /// Where the authority keys came from.
    pub authority_source: AuthoritySource,
    /// The authority keys' IDs.
    pub authorities: Vec<KeyId>,
    /// Whether only the tree was checked.
    pub tree_only: bool,
    /// Warnings.
    pub warnings: Vec<Warning>,
    /// Every violation, in log order.
    pub violations: Vec<Violation>,
    /// What was read.
    pub counts: Counts,
    /// The `--since` check.
    pub since: Option<Since>,
    /// Wall time.
    pub elapsed: Elapsed,
}

/// An audit's report and, after a replay, its final state.
#[derive(Debug)]
pub struct Audited {
    /// The report.
    pub report: AuditReport,
    /// The replay state at the end of the log (`None` with `--tree-only` or a bad checkpoint).
    pub replay: Option<Replay>,
}

impl AuditReport {
    /// The verdict: a fork against `--since`, else failed if anything was violated.
    pub fn verdict(&self) -> Verdict {
        Verdict::of(&self.violations)
    }

    /// Entries per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.counts.entries as f64 / secs
        } else {
            0.0
        }
    }

    /// The summary line.
    pub fn summary(&self) -> String {
        let decoded = if self.tree_only {
            "entries not decoded (--tree-only)".to_owned()
        } else {
            format!(
                "{} events, {} governance entries",
                self.counts.events, self.counts.governance
            )
        };
        format!(
            "summary: {} entries, {decoded}, {} violations, {:.2}s, {:.0} entries/s",
            self.counts.entries,
            self.violations.len(),
            self.elapsed.as_secs_f64(),
            self.rate()
        )
    }

    /// The fork evidence when `--since` found one: (older note, export's note).
    pub fn fork_evidence(&self) -> Option<(&str, &str)> {
        self.since
            .as_ref()
            .filter(|s| s.extends == Some(false))
            .map(|s| (s.note.as_str(), self.checkpoint_note.as_str()))
    }

    /// Human-readable report, ending with the summary line and the verdict.
    pub fn to_text(&self) -> String {
        let mut out = format!("audit of {}\n", self.dir.display());
        out += &format!("trusted log key: {}\n", self.log_key);
        match self.authority_source {
            AuthoritySource::CommandLine => {
                out += &format!("authority keys (--authority): {}\n", ids(&self.authorities));
            }
            AuthoritySource::None => {}
        }
        for w in &self.warnings {
            out += &format!("WARNING: {w}\n");
        }
        if let Some(cp) = &self.checkpoint {
            out += &format!(
                "checkpoint: origin {}, tree size {}, root {}\n",
                cp.origin, cp.size, cp.root
            );
        }
        if let Some(s) = &self.since {
            let verdict = match s.extends {
                Some(true) => "extends it",
                Some(false) => "does NOT extend it: fork",
                None => "not decided",
            };
            out += &format!(
                "--since checkpoint: tree size {}, root {}: the export {verdict}\n",
                s.checkpoint.size, s.checkpoint.root
            );
        }
        if !self.violations.is_empty() {
            out += &format!("{} violations:\n", self.violations.len());
            for v in &self.violations {
                out += &format!("  {}\n", Line(v));
            }
        }
        if let Some((old, new)) = self.fork_evidence() {
            out += &format!(
                "evidence: the older checkpoint\n{old}evidence: the export's checkpoint\n{new}"
            );
        }
        out += &self.summary();
        out.push('\n');
        out += self.verdict().word();
        out.push('\n');
        out
    }

    /// Machine-readable report.
    pub fn to_json(&self) -> Value {
        json!({
            "command": "audit",
            "verdict": self.verdict(),
            "exit_code": self.verdict().exit_code(),
            "dir": self.dir,
            "log_key": self.log_key,
            "authority_source": self.authority_source,
            "authorities": self.authorities.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "tree_only": self.tree_only,
            "checkpoint": self.checkpoint.as_ref().map(checkpoint_json),
            "since": self.since.as_ref().map(|s| json!({
                "checkpoint": checkpoint_json(&s.checkpoint),
                "extends": s.extends,
            })),
            "fork_evidence": self.fork_evidence().map(|(old, new)| json!({"old_note": old, "new_note": new})),
            "warnings": self.warnings.iter().map(|w| json!({"code": w.code(), "message": w.to_string()})).collect::<Vec<_>>(),
            "violations": self.violations,
            "summary": {
                "entries": self.counts.entries,
                "hashed": self.counts.hashed,
                "events": self.counts.events,
                "governance": self.counts.governance,
                "violations": self.violations.len(),
                "elapsed_ms": self.elapsed.as_millis() as u64,
                "entries_per_second": self.rate().round() as u64,
            },
        })
    }
}

fn ids(keys: &[KeyId]) -> String {
    if keys.is_empty() {
        return "none".into();
    }
    keys.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `{"origin", "size", "root"}`.
pub fn checkpoint_json(cp: &Checkpoint) -> Value {
    json!({"origin": cp.origin, "size": cp.size, "root": cp.root.to_base64()})
}

/// Audits the export at `dir`.
///
/// # Errors
/// [`InputError`] when the audit cannot start: `dir` is not a directory, its
/// checkpoint cannot be read, or a replay is asked for without
/// `opts.authorities` ([`InputError::NoAuthorities`]: the manifest's keys are
/// never used). Everything found in the log is in the report instead.
pub fn audit(
    dir: &Path,
    opts: &AuditOptions,
    progress: &mut dyn Progress,
) -> Result<AuditReport, InputError> {
    run(dir, opts, progress).map(|a| a.report)
}

/// The trust the replay runs under.
struct Trust {
    authorities: Vec<VerifyingKey>,
    source: AuthoritySource,
    warnings: Vec<Warning>,
    /// The manifest is unusable but not needed: reported, not fatal.
    manifest_problem: Option<Violation>,
}

/// The authority keys to replay with, where they came from, and any warning.
///
/// Only `--authority` keys are trusted. The manifest is written by the
/// operator being audited: were its keys a default, a compromised host could
/// list its own key there and pass. So a replay without `--authority` is
/// refused, and the manifest's keys only appear in that error as a hint. An
/// unusable manifest is reported as a violation, never fatal.
fn choose_authorities(
    opts: &AuditOptions,
    manifest: Result<Option<Manifest>, InputError>,
    manifest_path: &Path,
) -> Result<Trust, InputError> {
    let listed = manifest.and_then(|m| match m {
        Some(m) => m.authorities(manifest_path).map(Some),
        None => Ok(None),
    });
    if !opts.tree_only && opts.authorities.is_empty() {
        let manifest_keys = match listed {
            Ok(Some(keys)) => keys.iter().map(public_key_base64).collect(),
            Ok(None) | Err(_) => Vec::new(),
        };
        return Err(InputError::NoAuthorities { manifest_keys });
    }
    let (source, mut warnings) = if opts.tree_only {
        (AuthoritySource::None, vec![Warning::TreeOnly])
    } else {
        (AuthoritySource::CommandLine, Vec::new())
    };
    let set = |keys: &[VerifyingKey]| {
        let mut ids: Vec<KeyId> = keys.iter().map(KeyId::from_public_key).collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let manifest_problem = match listed {
        Ok(Some(listed)) => {
            if !opts.tree_only && set(&listed) != set(&opts.authorities) {
                warnings.push(Warning::ManifestAuthoritiesDiffer);
            }
            None
        }
        Ok(None) => None,
        Err(error) => Some(Violation::ManifestInvalid {
            error: Box::new(error),
        }),
    };
    Ok(Trust {
        authorities: opts.authorities.clone(),
        source,
        warnings,
        manifest_problem,
    })
}

/// The audit, returning the replay state too (for [`crate::ancestry`]).
///
/// # Errors
/// As [`audit`].
pub fn run(
    dir: &Path,
    opts: &AuditOptions,
    progress: &mut dyn Progress,
) -> Result<Audited, InputError> {
    let started = Instant::now();
    let export = ExportDir::open(dir)?;
    let note = export.checkpoint()?;
    let manifest = export.manifest();
    let usable = manifest.as_ref().ok().and_then(Option::clone);
    let Trust {
        authorities,
        source: authority_source,
        warnings,
        manifest_problem,
    } = choose_authorities(opts, manifest, &export.manifest_path())?;
    let mut report = AuditReport {
        dir: dir.to_path_buf(),
        checkpoint: None,
        checkpoint_note: String::from_utf8_lossy(&note).into_owned(),
        log_key: opts.log_key.vkey(),
        authority_source,
        authorities: authorities.iter().map(KeyId::from_public_key).collect(),
        tree_only: opts.tree_only,
        warnings,
        violations: manifest_problem.into_iter().collect(),
        counts: Counts::default(),
        since: None,
        elapsed: Elapsed::ZERO,
    };

    let origin = opts.log_key.name();
    let checkpoint = match verify_checkpoint(&note, &opts.log_key, origin) {
        Ok(v) => v.into_checkpoint(),
        Err(error) => {
            report.violations.push(Violation::Checkpoint {
                which: "checkpoint",
                error,
            });
            report.elapsed = started.elapsed();
            return Ok(Audited {
                report,
                replay: None,
            });
        }
    };
    report.counts.entries = checkpoint.size;
    if let Some(m) = &usable {
        check_manifest(m, &opts.log_key, &checkpoint, &mut report.violations);
    }
    if let Some(since_note) = &opts.since {
        match verify_checkpoint(since_note, &opts.log_key, origin) {
            Ok(v) => {
                let since = Since {
                    note: v.note_text().to_owned(),
                    checkpoint: v.into_checkpoint(),
                    extends: None,
                };
                if since.checkpoint.size > checkpoint.size {
                    report.violations.push(Violation::SinceNewer {
                        since: since.checkpoint.size,
                        size: checkpoint.size,
                    });
                }
                report.since = Some(since);
            }
            Err(error) => report.violations.push(Violation::Checkpoint {
                which: "--since checkpoint",
                error,
            }),
        }
    }

    let replay = (!opts.tree_only)
        .then(|| Replay::new(Authorities::new(authorities.iter().copied()), opts.max_skew));
    let mut state = Tree {
        export: &export,
        rebuilder: TileRebuilder::new(),
        full: Vec::new(),
        broken: false,
        since_size: report.since.as_ref().map(|s| s.checkpoint.size),
        since_root: None,
        replay,
        violations: std::mem::take(&mut report.violations),
        counts: report.counts,
        done: 0,
        truncated: None,
    };
    if state.since_size == Some(0) {
        state.since_root = Some(EMPTY_ROOT);
    }
    let mut directory: HashMap<KeyId, VerifyingKey> = authorities
        .iter()
        .map(|k| (KeyId::from_public_key(k), *k))
        .collect();

    // The bundles, lazily: a signed size is not a promise that the files exist.
    let entries = layout(TileKind::Entries, checkpoint.size);
    let mut bundles = (0..entries.full_tiles)
        .map(|i| (i, TILE_WIDTH as u16))
        .chain(entries.partial.map(|p| (p.index, p.width)));
    let chunk_size = opts.chunk_bundles.max(1);
    let mut chunk = || -> Vec<(u64, u16)> { bundles.by_ref().take(chunk_size).collect() };
    progress.start(checkpoint.size);
    let first = chunk();
    let mut next =
        (!first.is_empty()).then(|| prepare_chunk(&export, &first, &mut directory, opts.tree_only));
    while let Some(current) = next {
        let following = chunk();
        let ((), prepared) = rayon::join(
            || state.consume(current, progress),
            || {
                (!following.is_empty())
                    .then(|| prepare_chunk(&export, &following, &mut directory, opts.tree_only))
            },
        );
        next = prepared.filter(|_| state.truncated.is_none());
    }
    state.finish(&checkpoint, report.since.as_mut());
    progress.finish();

    report.violations = state.violations;
    report.counts = state.counts;
    report.checkpoint = Some(checkpoint);
    report.elapsed = started.elapsed();
    Ok(Audited {
        report,
        replay: state.replay,
    })
}

/// The manifest must agree with the trusted key and the signed checkpoint.
fn check_manifest(
    m: &Manifest,
    key: &NoteVerifier,
    cp: &Checkpoint,
    violations: &mut Vec<Violation>,
) {
    let mut check = |field, found: String, expected: String| {
        if found != expected {
            violations.push(Violation::ManifestMismatch {
                field,
                found: found.chars().take(200).collect(),
                expected,
            });
        }
    };
    check("origin", m.origin.clone(), cp.origin.clone());
    check("vkey", m.vkey.clone(), key.vkey());
    check("tree_size", m.tree_size.to_string(), cp.size.to_string());
}

/// One entry of a prepared chunk.
#[derive(Debug)]
enum Prepared {
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
struct PreparedBundle {
    path: TilePath,
    /// Leaf index of its first entry.
    first: u64,
    /// The leaf hashes; from the level-0 tile when the bundle is unusable; `None` when both are.
    leaves: Option<Vec<Hash>>,
    entries: Vec<Prepared>,
    problems: Vec<Violation>,
    /// The bundle file is missing and so is its level-0 tile: the export ends here.
    missing: bool,
}

/// Reads bundles of a chunk in parallel, hashes and decodes their entries,
/// learns the keys that governance entries name, and checks the signatures.
fn prepare_chunk(
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
            && let Ok(statement) = parse_governance(&candidate.envelope().payload)
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

/// The sequential half: tiles, root, `--since`, and the rules.
struct Tree<'a> {
    export: &'a ExportDir,
    rebuilder: TileRebuilder,
    full: Vec<TileWrite>,
    /// A bundle and its tile were both unusable: nothing above can be recomputed.
    broken: bool,
    since_size: Option<u64>,
    since_root: Option<Hash>,
    replay: Option<Replay>,
    violations: Vec<Violation>,
    counts: Counts,
    done: u64,
    /// Where the export ends, when it ends before the tree size.
    truncated: Option<Violation>,
}

impl Tree<'_> {
    fn consume(&mut self, chunk: Vec<PreparedBundle>, progress: &mut dyn Progress) {
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

    fn finish(&mut self, checkpoint: &Checkpoint, since: Option<&mut Since>) {
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
