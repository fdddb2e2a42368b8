//! The full audit of an exported log (`lineage-verify audit`).
//!
//! 1. The checkpoint must carry a valid signature by the trusted log key, with
//!    the key's name as origin. Without it nothing else means anything, so a
//!    bad checkpoint ends the audit. With `--policy`, its witness
//!    cosignatures must meet the quorum ([`crate::witnesses`]); a failure
//!    there is reported and the audit goes on.
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

// One concern per file; imports point one way, from here to the files:
// - `report.rs`: what an audit found (`AuditReport`, warnings, counts) and its text and JSON.
// - `chunk.rs`: the parallel half, a chunk of bundles read, hashed, decoded and signature-checked.
// - `tree.rs`: the sequential half, in log order: tiles, root, `--since`, and the rules.
// - here: the options, the trust the replay runs under, and the pipeline that drives the two.

mod chunk;
mod report;
mod tree;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration as Elapsed, Instant};

use ed25519_dalek::VerifyingKey;
use lineage_ledger::checkpoint::{Checkpoint, verify_checkpoint};
use lineage_ledger::keys::{KeyId, public_key_base64};
use lineage_ledger::note::NoteVerifier;
use lineage_ledger::rules::Authorities;
use lineage_ledger::tile::{TileKind, layout};
use lineage_ledger::{EMPTY_ROOT, TILE_WIDTH};
use time::Duration;

use self::chunk::prepare_chunk;
pub use self::report::{AuditReport, AuthoritySource, Counts, Since, Warning, checkpoint_json};
use self::tree::Tree;
use crate::export::{ExportDir, Manifest};
use crate::replay::Replay;
use crate::report::Violation;
use crate::tiles::TileRebuilder;
use crate::witnesses::{WitnessPolicy, check_note};
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
    /// `--policy` (and `--max-age`): the export's checkpoint must meet the
    /// witness quorum. A `--since` checkpoint needs the log's signature only:
    /// the auditor kept it, and it is old by design.
    pub witnesses: Option<WitnessPolicy>,
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
            witnesses: None,
        }
    }
}

/// An audit's report and, after a replay, its final state.
#[derive(Debug)]
pub struct Audited {
    /// The report.
    pub report: AuditReport,
    /// The replay state at the end of the log (`None` with `--tree-only` or a bad checkpoint).
    pub replay: Option<Replay>,
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
        witnesses: None,
        elapsed: Elapsed::ZERO,
    };

    let origin = opts.log_key.name();
    let checked = check_note(
        "checkpoint",
        &note,
        &opts.log_key,
        opts.witnesses.as_ref(),
        true,
    );
    report.witnesses = checked.witnesses;
    report.violations.extend(checked.violations);
    // A checkpoint the log did not sign ends the audit; one the witnesses
    // fail is reported, and the tree is still checked.
    let Some(checkpoint) = checked.checkpoint.map(|v| v.into_checkpoint()) else {
        report.elapsed = started.elapsed();
        return Ok(Audited {
            report,
            replay: None,
        });
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
