//! What an audit found: [`AuditReport`] (the verified checkpoint, the trust it ran under,
//! warnings, every violation, counts) and its text and JSON forms.

use std::path::PathBuf;
use std::time::Duration as Elapsed;

use lineage_ledger::checkpoint::Checkpoint;
use lineage_ledger::keys::KeyId;
use serde::Serialize;
use serde_json::{Value, json};

use crate::report::{Line, Verdict, Violation};
use crate::witnesses::WitnessReport;

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
    /// What the checkpoint's witnesses did (`--policy`).
    pub witnesses: Option<WitnessReport>,
    /// Wall time.
    pub elapsed: Elapsed,
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
        if let Some(w) = &self.witnesses {
            out += &w.to_text();
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
            "witnesses": self.witnesses.as_ref().map(WitnessReport::to_json),
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
