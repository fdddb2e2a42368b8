//! Witnessed checkpoints (`--policy FILE [--max-age DURATION]`): a checkpoint
//! must satisfy a C2SP tlog-policy quorum of witness cosignatures.
//!
//! The order is the spec's (c2sp.org/tlog-policy, c2sp.org/signed-note), and
//! the decision is [`lineage_ledger::policy`]'s, not a second copy:
//!
//! 1. the log's own signature, by the trusted log key (`--log-key`, or the
//!    policy's single `log` line: see [`crate::trust::resolve_log_key`]);
//! 2. every cosignature line by a witness of the policy (`cosignature/v1`,
//!    matched by key name and key ID) must verify; lines by unknown keys are
//!    ignored; a known witness's line that fails rejects the note
//!    ([`Violation::Cosignature`]);
//! 3. with `--max-age`, cosignatures older than the bound, or dated more than
//!    [`FUTURE_SKEW_SECS`] ahead of this machine's clock, are dropped;
//! 4. the groups up to the quorum ([`Policy::check_quorum`]); an unmet quorum
//!    names every unmet group ([`Violation::QuorumUnmet`]).
//!
//! **The clock.** Only `--max-age` makes the verifier read the clock (once,
//! in `main`; the library takes `now` as a value, [`Freshness`]). Without it
//! the verdict depends on the files and the trusted keys alone, as before.
//!
//! **A timestamp in the future** (more than [`FUTURE_SKEW_SECS`] ahead) is
//! refused under `--max-age`: the cosignature does not count toward the
//! quorum, and the report says so. `--max-age` is a freshness bound, and a
//! cosignature dated tomorrow would pass it until tomorrow plus the bound: a
//! witness with a wrong clock (or whoever holds its key) could make one
//! cosignature look fresh for as long as it likes. It is dropped rather than
//! failing the whole note because its signature is valid (the witness did see
//! the checkpoint; only its time is unusable), and a policy's k-of-n is meant
//! to survive a minority of broken witnesses. Without `--max-age`, timestamps
//! do not enter the verdict, so none is refused.

use lineage_ledger::checkpoint::{CheckpointError, VerifiedCheckpoint, verify_checkpoint};
use lineage_ledger::note::NoteVerifier;
use lineage_ledger::policy::{Policy, PolicyError, QuorumUnmet, WitnessCosignature};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::report::Violation;

/// How far ahead of this machine's clock a cosignature may be dated under
/// `--max-age` (clock skew between a witness and the auditor).
pub const FUTURE_SKEW_SECS: u64 = 60;

/// The freshness bound of `--max-age`, with the clock reading it is measured from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// The longest age of a cosignature that still counts, in seconds.
    pub max_age: u64,
    /// Now, POSIX seconds (read once by the binary; a value in tests).
    pub now: u64,
}

/// A witness policy to hold checkpoints to.
#[derive(Debug, Clone)]
pub struct WitnessPolicy {
    /// The parsed tlog-policy.
    pub policy: Policy,
    /// `--max-age`, if given.
    pub freshness: Option<Freshness>,
}

/// Why a valid cosignature does not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// Older than `--max-age`: `age` seconds old.
    TooOld {
        /// Its age, seconds.
        age: u64,
    },
    /// Dated more than [`FUTURE_SKEW_SECS`] ahead of the clock.
    InFuture {
        /// How far ahead, seconds.
        ahead: u64,
    },
}

impl Dropped {
    /// `too_old` or `in_future`.
    pub fn code(self) -> &'static str {
        match self {
            Dropped::TooOld { .. } => "too_old",
            Dropped::InFuture { .. } => "in_future",
        }
    }
}

/// One witness of the policy, and what it signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessLine {
    /// The witness's policy name.
    pub name: String,
    /// Its cosigner key name.
    pub key_name: String,
    /// Its key ID.
    pub key_id: u32,
    /// The timestamp of its valid cosignature (the latest, if several), or `None`.
    pub timestamp: Option<u64>,
    /// Why a valid cosignature does not count (`--max-age`).
    pub dropped: Option<Dropped>,
}

impl WitnessLine {
    /// Whether its cosignature counts toward the quorum.
    pub fn counted(&self) -> bool {
        self.timestamp.is_some() && self.dropped.is_none()
    }
}

/// What the witnesses of the policy did for one checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessReport {
    /// The quorum's name (`none` for `quorum none`).
    pub quorum: String,
    /// Every witness of the policy, in policy order.
    pub witnesses: Vec<WitnessLine>,
    /// `--max-age`, when applied to this checkpoint.
    pub freshness: Option<Freshness>,
    /// `None` when the quorum is met.
    pub unmet: Option<QuorumUnmet>,
}

impl WitnessReport {
    /// Witnesses whose cosignature counted.
    pub fn counted(&self) -> usize {
        self.witnesses.iter().filter(|w| w.counted()).count()
    }

    /// One line: whether the quorum is met and by whom.
    pub fn summary(&self) -> String {
        let names: Vec<&str> = self
            .witnesses
            .iter()
            .filter(|w| w.counted())
            .map(|w| w.name.as_str())
            .collect();
        let by = if names.is_empty() {
            "no witness".to_owned()
        } else {
            names.join(", ")
        };
        match &self.unmet {
            None => format!("quorum {} met, cosigned by {by}", self.quorum),
            Some(u) => format!("{u} (cosigned by {by})"),
        }
    }

    /// Indented lines, one per witness of the policy.
    pub fn to_text(&self) -> String {
        let mut out = format!("witnesses (policy quorum {}", self.quorum);
        if let Some(f) = &self.freshness {
            out += &format!(
                ", --max-age {}s at {}",
                f.max_age,
                rfc3339(f.now).unwrap_or_default()
            );
        }
        out += "):\n";
        for w in &self.witnesses {
            let what = match (w.timestamp, w.dropped) {
                (None, _) => "not signed".to_owned(),
                (Some(t), None) => format!("signed {}", when(t, self.freshness)),
                (Some(t), Some(Dropped::TooOld { .. })) => format!(
                    "signed {}: DROPPED, older than --max-age",
                    when(t, self.freshness)
                ),
                (Some(t), Some(Dropped::InFuture { ahead })) => format!(
                    "signed {}: DROPPED, {ahead}s ahead of this machine's clock (more than {FUTURE_SKEW_SECS}s)",
                    rfc3339(t).unwrap_or_else(|| t.to_string())
                ),
            };
            out += &format!(
                "  {:<12} {} ({:08x})  {what}\n",
                w.name, w.key_name, w.key_id
            );
        }
        out
    }

    /// `{"quorum", "met", "max_age_secs", "now", "witnesses": [...], "unmet": [...]}`.
    pub fn to_json(&self) -> Value {
        json!({
            "quorum": self.quorum,
            "met": self.unmet.is_none(),
            "max_age_secs": self.freshness.map(|f| f.max_age),
            "now": self.freshness.and_then(|f| rfc3339(f.now)),
            "witnesses": self.witnesses.iter().map(|w| json!({
                "name": w.name,
                "key_name": w.key_name,
                "key_id": format!("{:08x}", w.key_id),
                "signed": w.timestamp.is_some(),
                "timestamp": w.timestamp,
                "time": w.timestamp.and_then(rfc3339),
                "counted": w.counted(),
                "dropped": w.dropped.map(Dropped::code),
            })).collect::<Vec<_>>(),
            "unmet": self.unmet.as_ref().map(|u| u.unmet.iter().map(|s| json!({
                "group": s.name.to_string(),
                "witnessed": s.witnessed,
                "required": s.required,
            })).collect::<Vec<_>>()),
        })
    }
}

/// POSIX seconds as RFC 3339.
pub fn rfc3339(secs: u64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp(i64::try_from(secs).ok()?).ok()?;
    t.format(&Rfc3339).ok()
}

fn when(t: u64, freshness: Option<Freshness>) -> String {
    let at = rfc3339(t).unwrap_or_else(|| t.to_string());
    match freshness {
        Some(f) if f.now >= t => format!("{at} ({}s ago)", f.now - t),
        _ => at,
    }
}

/// A checkpoint checked by the log key and, with a policy, by its witnesses.
#[derive(Debug)]
pub struct CheckedNote {
    /// The checkpoint, when the log's signature verifies (even if the
    /// witnesses then fail it: the other checks still run and report).
    pub checkpoint: Option<VerifiedCheckpoint>,
    /// What the witnesses did (with a policy, once the log signature verified).
    pub witnesses: Option<WitnessReport>,
    /// What failed: the log signature, a known witness's cosignature, the quorum.
    pub violations: Vec<Violation>,
}

/// Checks a signed checkpoint: the log's signature by `log_key` (origin = its
/// name), then, with `policy`, the cosignatures and the quorum. `fresh`
/// says whether `--max-age` applies to this checkpoint (not to an older
/// checkpoint kept for a consistency check, which is old by design).
pub fn check_note(
    which: &'static str,
    note: &[u8],
    log_key: &NoteVerifier,
    policy: Option<&WitnessPolicy>,
    fresh: bool,
) -> CheckedNote {
    let mut out = CheckedNote {
        checkpoint: None,
        witnesses: None,
        violations: Vec::new(),
    };
    match verify_checkpoint(note, log_key, log_key.name()) {
        Ok(v) => out.checkpoint = Some(v),
        Err(error) => {
            out.violations.push(Violation::Checkpoint { which, error });
            return out;
        }
    }
    let Some(wp) = policy else {
        return out;
    };
    let evaluation = match wp.policy.evaluate_with_log(note, log_key, log_key.name()) {
        Ok(e) => e,
        Err(error) => {
            out.violations.push(policy_violation(which, log_key, error));
            return out;
        }
    };
    let freshness = wp.freshness.filter(|_| fresh);
    let (kept, lines) = apply_freshness(&wp.policy, evaluation.cosignatures(), freshness);
    let unmet = wp.policy.check_quorum(&kept).err();
    if let Some(error) = &unmet {
        out.violations.push(Violation::QuorumUnmet {
            which,
            error: error.clone(),
            dropped: lines.iter().filter(|l| l.dropped.is_some()).count(),
        });
    }
    out.witnesses = Some(WitnessReport {
        quorum: wp
            .policy
            .quorum()
            .and_then(|m| wp.policy.member_name(m))
            .map_or_else(
                || lineage_ledger::policy::QUORUM_NONE.to_owned(),
                ToString::to_string,
            ),
        witnesses: lines,
        freshness,
        unmet,
    });
    out
}

/// The cosignatures that count under `freshness`, and one line per witness.
fn apply_freshness(
    policy: &Policy,
    valid: &[WitnessCosignature],
    freshness: Option<Freshness>,
) -> (Vec<WitnessCosignature>, Vec<WitnessLine>) {
    let mut kept = Vec::new();
    let mut lines = Vec::new();
    for (i, w) in policy.witnesses().iter().enumerate() {
        let cosig = valid.iter().find(|c| c.witness == i);
        let dropped = match (cosig, freshness) {
            (Some(c), Some(f)) => drop_reason(c.timestamp, f),
            _ => None,
        };
        if let Some(c) = cosig
            && dropped.is_none()
        {
            kept.push(c.clone());
        }
        lines.push(WitnessLine {
            name: w.name().to_string(),
            key_name: w.verifier().name().to_owned(),
            key_id: w.verifier().key_id(),
            timestamp: cosig.map(|c| c.timestamp),
            dropped,
        });
    }
    (kept, lines)
}

/// Why a cosignature made at `timestamp` does not count under `f`, if it does not.
pub fn drop_reason(timestamp: u64, f: Freshness) -> Option<Dropped> {
    if timestamp > f.now.saturating_add(FUTURE_SKEW_SECS) {
        return Some(Dropped::InFuture {
            ahead: timestamp - f.now,
        });
    }
    let age = f.now.saturating_sub(timestamp);
    (age > f.max_age).then_some(Dropped::TooOld { age })
}

fn policy_violation(which: &'static str, log_key: &NoteVerifier, error: PolicyError) -> Violation {
    match error {
        PolicyError::Checkpoint(error) => Violation::Checkpoint { which, error },
        // Not reachable with a given log key (the origin is checked against
        // its name instead), but typed all the same.
        PolicyError::UnknownOrigin { origin } => Violation::Checkpoint {
            which,
            error: CheckpointError::OriginMismatch {
                expected: log_key.name().to_owned(),
                found: origin,
            },
        },
        PolicyError::Cosignature { witness, error } => Violation::Cosignature {
            which,
            witness: witness.to_string(),
            error,
        },
        PolicyError::QuorumUnmet(error) => Violation::QuorumUnmet {
            which,
            error,
            dropped: 0,
        },
    }
}

/// Why a `--max-age` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Empty, or not `<number><unit>` segments.
    #[error(
        "{input:?} is not a duration: one or more <number><unit> with unit s, m, h or d (e.g. 30s, 10m, 24h, 7d, 1h30m)"
    )]
    Syntax {
        /// The argument (truncated).
        input: String,
    },
    /// Larger than `u64` seconds.
    #[error("{input:?} is too long a duration")]
    Overflow {
        /// The argument (truncated).
        input: String,
    },
    /// Zero: no cosignature could ever count.
    #[error("--max-age must be more than 0 seconds")]
    Zero,
}

/// Parses a `--max-age` duration: one or more `<decimal><unit>` segments with
/// unit `s`, `m`, `h` or `d` (`30s`, `10m`, `24h`, `7d`, `1h30m`), to seconds.
/// A day is 86 400 s (POSIX time has no leap seconds).
///
/// # Errors
/// [`DurationError`].
pub fn parse_max_age(input: &str) -> Result<u64, DurationError> {
    let echo = || input.chars().take(40).collect::<String>();
    let syntax = || DurationError::Syntax { input: echo() };
    let overflow = || DurationError::Overflow { input: echo() };
    let mut total: u64 = 0;
    let mut rest = input;
    if rest.is_empty() {
        return Err(syntax());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(syntax());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| overflow())?;
        let unit = match rest.as_bytes().get(digits) {
            Some(b's') => 1,
            Some(b'm') => 60,
            Some(b'h') => 3600,
            Some(b'd') => 86_400,
            _ => return Err(syntax()),
        };
        total = number
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(overflow)?;
        rest = &rest[digits + 1..];
    }
    if total == 0 {
        return Err(DurationError::Zero);
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, want: Result<u64, &str>) {
        let got = parse_max_age(input).map_err(|e| match e {
            DurationError::Syntax { .. } => "syntax",
            DurationError::Overflow { .. } => "overflow",
            DurationError::Zero => "zero",
        });
        assert_eq!(got, want, "{input:?}");
    }

    #[test]
    fn max_age_durations() {
        check("30s", Ok(30));
        check("10m", Ok(600));
        check("24h", Ok(86_400));
        check("7d", Ok(604_800));
        check("1h30m", Ok(5400));
        check("1d1s", Ok(86_401));
        check("007s", Ok(7));
        for bad in [
            "", "30", "s", "10 m", "1.5h", "-1s", "1w", "1hm", " 1s", "1s ", "1S",
        ] {
            check(bad, Err("syntax"));
        }
        check("0s", Err("zero"));
        check("0h0m", Err("zero"));
        check("99999999999999999999s", Err("overflow"));
        check("213503982334601d", Ok(213_503_982_334_601 * 86_400));
        check("213503982334602d", Err("overflow"));
        check("18446744073709551615s", Ok(u64::MAX));
        check("18446744073709551615s1s", Err("overflow"));
    }

    #[test]
    fn freshness_bounds() {
        let f = Freshness {
            max_age: 600,
            now: 1_000_000,
        };
        assert_eq!(drop_reason(1_000_000, f), None);
        assert_eq!(drop_reason(1_000_000 - 600, f), None);
        assert_eq!(
            drop_reason(1_000_000 - 601, f),
            Some(Dropped::TooOld { age: 601 })
        );
        assert_eq!(drop_reason(1_000_000 + FUTURE_SKEW_SECS, f), None);
        assert_eq!(
            drop_reason(1_000_000 + FUTURE_SKEW_SECS + 1, f),
            Some(Dropped::InFuture {
                ahead: FUTURE_SKEW_SECS + 1
            })
        );
        assert_eq!(
            drop_reason(u64::MAX, f),
            Some(Dropped::InFuture {
                ahead: u64::MAX - 1_000_000
            })
        );
    }
}
