//! Two checkpoints and a consistency proof (`lineage-verify consistency`),
//! and fork detection.
//!
//! Both notes must carry a valid signature by the trusted log key. Then:
//!
//! - same tree size, different roots: a **fork** on the signatures alone;
//! - the proof must be for exactly the two sizes, decode, and have the length
//!   the sizes determine (otherwise the *proof* is bad: `consistency_proof`);
//! - a well-formed proof that does not lead to both signed roots (RFC 9162
//!   §2.1.4.2) is a **fork**: the log signed two trees it cannot prove
//!   consistent. Both notes are the evidence. A proof file damaged in transit
//!   gives the same verdict (nothing signs a proof), so fetch it from the log
//!   again before publishing; `audit --since` decides from the data instead.
//!
//! With `--policy`, both checkpoints must also meet the witness quorum
//! ([`crate::witnesses`]); `--max-age` applies to the new one only (the old
//! one is old by design). A fork stands on the log's signatures alone, so it
//! is reported whatever the witnesses did; if the quorum was met on both
//! sides too, the witnesses cosigned a split view.

use lineage_ledger::checkpoint::Checkpoint;
use lineage_ledger::note::NoteVerifier;
use lineage_ledger::tree::{VerifyError, verify_consistency};
use lineage_schemas::ConsistencyProofResponse;
use serde_json::{Value, json};

use crate::audit::checkpoint_json;
use crate::receipt::decode_proof;
use crate::report::{ForkEvidence, Line, Verdict, Violation};
use crate::witnesses::{WitnessPolicy, WitnessReport, check_note};

/// The result of checking two checkpoints.
#[derive(Debug)]
pub struct ConsistencyReport {
    /// The older checkpoint, if it verified.
    pub old: Option<Checkpoint>,
    /// The newer checkpoint, if it verified.
    pub new: Option<Checkpoint>,
    /// The old note as read.
    pub old_note: String,
    /// The new note as read.
    pub new_note: String,
    /// What the old checkpoint's witnesses did (`--policy`).
    pub old_witnesses: Option<WitnessReport>,
    /// What the new checkpoint's witnesses did (`--policy`).
    pub new_witnesses: Option<WitnessReport>,
    /// What failed (a [`Violation::Fork`] for a fork).
    pub violations: Vec<Violation>,
}

impl ConsistencyReport {
    /// Verified, failed, or a fork.
    pub fn verdict(&self) -> Verdict {
        Verdict::of(&self.violations)
    }

    /// Human-readable report; a fork prints both notes as evidence.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (which, cp) in [("old", &self.old), ("new", &self.new)] {
            if let Some(cp) = cp {
                out += &format!(
                    "{which} checkpoint: signed, origin {}, tree size {}, root {}\n",
                    cp.origin, cp.size, cp.root
                );
            }
        }
        for (which, w) in [("old", &self.old_witnesses), ("new", &self.new_witnesses)] {
            if let Some(w) = w {
                out += &format!("{which} checkpoint {}", w.to_text());
            }
        }
        for v in &self.violations {
            out += &format!("{}\n", Line(v));
        }
        if self.verdict() == Verdict::Fork {
            out += &format!(
                "evidence: the old checkpoint\n{}evidence: the new checkpoint\n{}",
                self.old_note, self.new_note
            );
        } else if self.violations.is_empty()
            && let (Some(old), Some(new)) = (&self.old, &self.new)
        {
            out += &format!(
                "the tree of size {} extends the tree of size {}\n",
                new.size, old.size
            );
        }
        out += self.verdict().word();
        out.push('\n');
        out
    }

    /// Machine-readable report.
    pub fn to_json(&self) -> Value {
        let fork = self.verdict() == Verdict::Fork;
        json!({
            "command": "consistency",
            "verdict": self.verdict(),
            "exit_code": self.verdict().exit_code(),
            "old": self.old.as_ref().map(checkpoint_json),
            "new": self.new.as_ref().map(checkpoint_json),
            "witnesses": (self.old_witnesses.is_some() || self.new_witnesses.is_some()).then(|| json!({
                "old": self.old_witnesses.as_ref().map(WitnessReport::to_json),
                "new": self.new_witnesses.as_ref().map(WitnessReport::to_json),
            })),
            "violations": self.violations,
            "fork_evidence": fork.then(|| json!({"old_note": self.old_note, "new_note": self.new_note})),
        })
    }
}

/// Checks two signed checkpoints (`old` first) and the consistency proof
/// between them (the JSON of `GET /v1/proofs/consistency`).
pub fn verify_checkpoints(
    old: &[u8],
    new: &[u8],
    proof: &[u8],
    key: &NoteVerifier,
) -> ConsistencyReport {
    verify_witnessed_checkpoints(old, new, proof, key, None)
}

/// [`verify_checkpoints`], and with `policy` both checkpoints must meet its
/// witness quorum (`--max-age`, if set, on the new one only).
pub fn verify_witnessed_checkpoints(
    old: &[u8],
    new: &[u8],
    proof: &[u8],
    key: &NoteVerifier,
    policy: Option<&WitnessPolicy>,
) -> ConsistencyReport {
    let mut report = ConsistencyReport {
        old: None,
        new: None,
        old_note: String::from_utf8_lossy(old).into_owned(),
        new_note: String::from_utf8_lossy(new).into_owned(),
        old_witnesses: None,
        new_witnesses: None,
        violations: Vec::new(),
    };
    for (which, note, fresh) in [
        ("old checkpoint", old, false),
        ("new checkpoint", new, true),
    ] {
        let checked = check_note(which, note, key, policy, fresh);
        let checkpoint = checked.checkpoint.map(|v| v.into_checkpoint());
        if fresh {
            (report.new, report.new_witnesses) = (checkpoint, checked.witnesses);
        } else {
            (report.old, report.old_witnesses) = (checkpoint, checked.witnesses);
        }
        report.violations.extend(checked.violations);
    }
    let (Some(o), Some(n)) = (&report.old, &report.new) else {
        return report;
    };
    if let Err(v) = check_pair(o, n, proof) {
        report.violations.push(v);
    }
    report
}

fn check_pair(old: &Checkpoint, new: &Checkpoint, proof: &[u8]) -> Result<(), Violation> {
    let fork = |evidence| Violation::Fork {
        old_size: old.size,
        new_size: new.size,
        evidence,
    };
    if old.size == new.size && old.root != new.root {
        return Err(fork(ForkEvidence::SameSize {
            size: old.size,
            first: old.root,
            second: new.root,
        }));
    }
    if old.size > new.size {
        return Err(Violation::SizesOutOfOrder {
            old: old.size,
            new: new.size,
        });
    }
    let response: ConsistencyProofResponse =
        serde_json::from_slice(proof).map_err(|error| Violation::ProofJson { error })?;
    if (response.first, response.second) != (old.size, new.size) {
        return Err(Violation::ProofSizes {
            first: response.first,
            second: response.second,
            old: old.size,
            new: new.size,
        });
    }
    let hashes = decode_proof("proof", &response.proof)?;
    match verify_consistency(old.size, new.size, &old.root, &new.root, &hashes) {
        Ok(()) => Ok(()),
        Err(error @ (VerifyError::FirstRootMismatch { .. } | VerifyError::RootMismatch { .. })) => {
            Err(fork(ForkEvidence::Proof(error)))
        }
        Err(
            error @ (VerifyError::WrongProofLength { .. }
            | VerifyError::SizesOutOfOrder { .. }
            | VerifyError::IndexOutOfRange { .. }),
        ) => Err(Violation::ConsistencyProof {
            old: old.size,
            new: new.size,
            error,
        }),
    }
}
