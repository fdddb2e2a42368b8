//! Verifying one receipt (`lineage-verify bundle`): a `lineage-bundle/v1`
//! document, as the ledger answers a submission with, or the same receipt as
//! a C2SP tlog-proof text (first line `c2sp.org/tlog-proof@v1`, its `extra`
//! line the log entry: see [`verify_receipt`]).
//!
//! Checks, each reported on its own ([`Check`]), so that a failure names
//! exactly what failed and the others still run where they can:
//!
//! 1. `format`: the document is `lineage-bundle/v1`.
//! 2. `checkpoint`: a valid signature by the trusted log key, origin = the key's name.
//!    With `--policy`, then `witnesses`: the known witnesses' cosignatures and
//!    the quorum ([`crate::witnesses`]).
//! 3. `entry`: canonical base64 of a log entry.
//! 4. `inclusion`: the RFC 9162 inclusion proof of `SHA-256(0x00 || entry)` at
//!    `index` leads to the checkpoint's root.
//! 5. `event_id`: BLAKE3 of the payload.
//! 6. `signature`: the envelope's Ed25519 signature (`verify_strict`) under
//!    the key the entry names. An entry carries only the key's ID, so the key
//!    must be given: `--runtime-key` for events, `--authority` for governance
//!    statements. Without it the signature is *not checked*, which fails the
//!    receipt unless `--allow-unknown-signer` is given.
//! 7. `payload`: the event or governance statement follows its schema.

use ed25519_dalek::VerifyingKey;
use lineage_ledger::checkpoint::Checkpoint;
use lineage_ledger::entry::{EntryType, LogEntry};
use lineage_ledger::event::{
    Event, GovernanceStatement, action_name, parse_event, parse_governance,
};
use lineage_ledger::keys::{EventId, KeyId, public_key_base64};
use lineage_ledger::note::NoteVerifier;
use lineage_ledger::tlog_proof::{TLOG_PROOF_HEADER, TlogProof};
use lineage_ledger::tree::verify_inclusion;
use lineage_ledger::{Hash, leaf_hash};
use lineage_schemas::{RECEIPT_FORMAT, Receipt};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::audit::checkpoint_json;
use crate::replay::integration_time;
use crate::report::{Verdict, Violation};
use crate::witnesses::{WitnessPolicy, WitnessReport, check_note};

/// The keys a receipt's signature may be checked with.
#[derive(Debug, Clone, Copy)]
pub struct ReceiptOptions<'a> {
    /// The trusted log key.
    pub log_key: &'a NoteVerifier,
    /// Runtime keys (`--runtime-key`), for event entries.
    pub runtime_keys: &'a [VerifyingKey],
    /// Authority keys (`--authority`), for governance entries.
    pub authorities: &'a [VerifyingKey],
    /// Accept a receipt whose signer's key was not given (the signature is then not checked).
    pub allow_unknown_signer: bool,
    /// `--policy` (and `--max-age`): the checkpoint must meet its witness quorum.
    pub witnesses: Option<&'a WitnessPolicy>,
}

/// How one check went.
#[derive(Debug)]
pub enum CheckStatus {
    /// It holds; what was checked.
    Passed(String),
    /// It does not hold.
    Failed(Violation),
    /// It could not be run; why.
    NotChecked(String),
}

/// One named check of a command.
#[derive(Debug)]
pub struct Check {
    /// `format`, `checkpoint`, `entry`, `inclusion`, `event_id`, `signature`, `payload`, ...
    pub name: &'static str,
    /// How it went.
    pub status: CheckStatus,
}

impl Check {
    fn passed(name: &'static str, what: impl Into<String>) -> Check {
        Check {
            name,
            status: CheckStatus::Passed(what.into()),
        }
    }

    fn failed(name: &'static str, v: Violation) -> Check {
        Check {
            name,
            status: CheckStatus::Failed(v),
        }
    }

    fn not_checked(name: &'static str, why: impl Into<String>) -> Check {
        Check {
            name,
            status: CheckStatus::NotChecked(why.into()),
        }
    }

    /// `{"check", "status", "code"?, "message"}`.
    pub fn to_json(&self) -> Value {
        match &self.status {
            CheckStatus::Passed(m) => json!({"check": self.name, "status": "passed", "message": m}),
            CheckStatus::Failed(v) => {
                json!({"check": self.name, "status": "failed", "code": v.code(), "message": v.to_string()})
            }
            CheckStatus::NotChecked(m) => {
                json!({"check": self.name, "status": "not_checked", "message": m})
            }
        }
    }

    /// `  ok           name  message`.
    pub fn to_line(&self) -> String {
        let (word, message) = match &self.status {
            CheckStatus::Passed(m) => ("ok", m.clone()),
            CheckStatus::Failed(v) => ("FAILED", format!("{}: {v}", v.code())),
            CheckStatus::NotChecked(m) => ("not checked", m.clone()),
        };
        format!("  {word:<12} {:<11} {message}", self.name)
    }
}

/// What the entry says, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A runtime event.
    Event(Event),
    /// A governance statement.
    Governance(GovernanceStatement),
}

/// The result of verifying a receipt.
#[derive(Debug)]
pub struct ReceiptReport {
    /// The form read: `lineage-bundle/v1` or `c2sp.org/tlog-proof@v1`.
    pub form: &'static str,
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The receipt's leaf index.
    pub index: Option<u64>,
    /// The verified checkpoint.
    pub checkpoint: Option<Checkpoint>,
    /// What the witnesses did (`--policy`).
    pub witnesses: Option<WitnessReport>,
    /// The entry's event ID (BLAKE3 of its payload).
    pub event_id: Option<EventId>,
    /// The signer's key ID.
    pub key_id: Option<KeyId>,
    /// When the log integrated the entry (Unix ms).
    pub integrated_at_ms: Option<u64>,
    /// The decoded payload.
    pub decoded: Option<Decoded>,
}

impl ReceiptReport {
    /// Failed if any check failed.
    pub fn verdict(&self) -> Verdict {
        let failed = self
            .checks
            .iter()
            .any(|c| matches!(c.status, CheckStatus::Failed(_)));
        if failed {
            Verdict::Failed
        } else {
            Verdict::Verified
        }
    }

    /// Human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = match (&self.index, &self.checkpoint) {
            (Some(i), Some(cp)) => format!(
                "receipt: entry {i} in the tree of size {} (origin {})\n",
                cp.size, cp.origin
            ),
            (Some(i), None) => format!("receipt: entry {i}\n"),
            _ => "receipt\n".to_owned(),
        };
        for c in &self.checks {
            out += &c.to_line();
            out.push('\n');
        }
        if let Some(w) = &self.witnesses {
            out += &w.to_text();
        }
        if let Some(d) = &self.decoded {
            out += &decoded_text(d, self.event_id.as_ref(), self.integrated_at_ms);
        }
        out += self.verdict().word();
        out.push('\n');
        out
    }

    /// Machine-readable report.
    pub fn to_json(&self) -> Value {
        json!({
            "command": "bundle",
            "form": self.form,
            "verdict": self.verdict(),
            "exit_code": self.verdict().exit_code(),
            "index": self.index,
            "checkpoint": self.checkpoint.as_ref().map(checkpoint_json),
            "witnesses": self.witnesses.as_ref().map(WitnessReport::to_json),
            "event_id": self.event_id.map(|e| e.to_string()),
            "key_id": self.key_id.map(|k| k.to_string()),
            "integrated_at": self.integrated_at_ms.and_then(format_ms),
            "checks": self.checks.iter().map(Check::to_json).collect::<Vec<_>>(),
            "entry": self.decoded.as_ref().map(decoded_json),
        })
    }
}

/// `integrated_at_ms` in RFC 3339.
pub fn format_ms(ms: u64) -> Option<String> {
    integration_time(ms).and_then(|t| t.format(&Rfc3339).ok())
}

/// An event's fields as JSON (IDs in hex, `at` in RFC 3339).
pub fn event_json(e: &Event) -> Value {
    json!({
        "runtime": e.runtime.as_str(),
        "workload": e.workload.as_str(),
        "seq": e.seq,
        "prev": e.prev.map(|p| p.to_string()),
        "parents": e.parents.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "kind": e.kind,
        "at": e.at.format(&Rfc3339).ok(),
        "attrs": e.attrs,
    })
}

/// A decoded entry as JSON, with its `type`.
pub fn decoded_json(d: &Decoded) -> Value {
    match d {
        Decoded::Event(e) => {
            let mut v = event_json(e);
            v["type"] = json!("event");
            v
        }
        Decoded::Governance(g) => {
            let mut v = serde_json::to_value(g.to_wire()).unwrap_or_default();
            v["type"] = json!("governance");
            if let GovernanceStatement::Key(k) = g {
                v["key_id"] = json!(k.key_id.to_string());
            }
            v
        }
    }
}

fn decoded_text(d: &Decoded, id: Option<&EventId>, ms: Option<u64>) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    match d {
        Decoded::Event(e) => {
            rows.push(("runtime", e.runtime.to_string()));
            rows.push(("workload", e.workload.to_string()));
            rows.push(("seq", e.seq.to_string()));
            if let Some(p) = e.prev {
                rows.push(("prev", p.to_string()));
            }
            rows.push(("kind", e.kind.clone()));
            rows.push(("at", e.at.format(&Rfc3339).unwrap_or_default()));
            let parents: Vec<String> = e.parents.iter().map(ToString::to_string).collect();
            rows.push((
                "parents",
                if parents.is_empty() {
                    "none".into()
                } else {
                    parents.join("\n            ")
                },
            ));
            if let Some(attrs) = &e.attrs {
                rows.push(("attrs", Value::Object(attrs.to_map()).to_string()));
            }
        }
        Decoded::Governance(GovernanceStatement::Key(k)) => {
            rows.push(("action", action_name(k.action).to_owned()));
            rows.push(("runtime", k.runtime.to_string()));
            rows.push(("public_key", public_key_base64(&k.public_key)));
            rows.push(("key_id", k.key_id.to_string()));
            if let Some(t) = k.not_before {
                rows.push(("not_before", t.format(&Rfc3339).unwrap_or_default()));
            }
            if let Some(t) = k.not_after {
                rows.push(("not_after", t.format(&Rfc3339).unwrap_or_default()));
            }
            if let Some(scope) = &k.scope {
                rows.push((
                    "scope",
                    serde_json::to_string(&scope.to_wire()).unwrap_or_default(),
                ));
            }
            rows.push(("at", k.at.format(&Rfc3339).unwrap_or_default()));
        }
        Decoded::Governance(GovernanceStatement::Halt(h)) => {
            rows.push(("action", action_name(h.action).to_owned()));
            rows.push(("target", h.target.to_string()));
            if let Some(reason) = &h.reason {
                rows.push(("reason", reason.clone()));
            }
            rows.push(("at", h.at.format(&Rfc3339).unwrap_or_default()));
        }
    }
    if let Some(id) = id {
        rows.insert(0, ("event_id", id.to_string()));
    }
    if let Some(t) = ms.and_then(format_ms) {
        rows.push(("integrated", t));
    }
    let title = match d {
        Decoded::Event(_) => "event:\n",
        Decoded::Governance(_) => "governance statement:\n",
    };
    let mut out = title.to_owned();
    for (k, v) in rows {
        out += &format!("  {k:<10} {v}\n");
    }
    out
}

/// Canonical standard base64 (padding, no trailing bits, no whitespace).
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    let bytes = STANDARD.decode(text).ok()?;
    (STANDARD.encode(&bytes) == text).then_some(bytes)
}

/// Decodes proof hashes, naming the first bad one.
pub(crate) fn decode_proof(what: &'static str, proof: &[String]) -> Result<Vec<Hash>, Violation> {
    proof
        .iter()
        .enumerate()
        .map(|(position, h)| {
            Hash::from_base64(h).map_err(|error| Violation::ProofEncoding {
                what,
                position,
                error,
            })
        })
        .collect()
}

/// What a receipt claims, whichever form it came in.
struct Claim {
    index: u64,
    /// The log entry's bytes, or why there are none.
    entry: Result<Vec<u8>, Violation>,
    checkpoint: String,
    /// The inclusion proof, decoded.
    proof: Result<Vec<Hash>, Violation>,
    proof_len: usize,
    /// The event ID the receipt claims (a tlog-proof claims none).
    event_id: Option<String>,
    /// The parsed tlog-proof, whose own inclusion check is used.
    tlog_proof: Option<TlogProof>,
}

/// Verifies a receipt's bytes: a `lineage-bundle/v1` JSON document, or a
/// C2SP tlog-proof text (recognised by its first line, see [`parse_tlog_proof`]).
pub fn verify_receipt(bytes: &[u8], opts: &ReceiptOptions<'_>) -> ReceiptReport {
    let mut report = ReceiptReport {
        form: RECEIPT_FORMAT,
        checks: Vec::new(),
        index: None,
        checkpoint: None,
        witnesses: None,
        event_id: None,
        key_id: None,
        integrated_at_ms: None,
        decoded: None,
    };
    let claim = if bytes.starts_with(TLOG_PROOF_PREFIX.as_bytes()) {
        report.form = TLOG_PROOF_HEADER;
        match parse_tlog_proof(bytes) {
            Ok(claim) => {
                report.checks.push(Check::passed(
                    "format",
                    format!("{TLOG_PROOF_HEADER}, the log entry in its extra line"),
                ));
                claim
            }
            Err(v) => {
                report.checks.push(Check::failed("format", v));
                return report;
            }
        }
    } else {
        let receipt: Receipt = match serde_json::from_slice(bytes) {
            Ok(b) => b,
            Err(error) => {
                report
                    .checks
                    .push(Check::failed("format", Violation::ReceiptJson { error }));
                return report;
            }
        };
        report.checks.push(if receipt.format == RECEIPT_FORMAT {
            Check::passed("format", RECEIPT_FORMAT)
        } else {
            Check::failed(
                "format",
                Violation::ReceiptFormat {
                    found: receipt.format.chars().take(80).collect(),
                },
            )
        });
        Claim {
            index: receipt.index,
            entry: decode_base64(&receipt.entry).ok_or(Violation::EntryEncoding),
            checkpoint: receipt.checkpoint,
            proof: decode_proof("inclusion_proof", &receipt.inclusion_proof),
            proof_len: receipt.inclusion_proof.len(),
            event_id: Some(receipt.event_id),
            tlog_proof: None,
        }
    };
    verify_claim(claim, opts, report)
}

/// The first bytes of a C2SP tlog-proof of any version.
const TLOG_PROOF_PREFIX: &str = "c2sp.org/tlog-proof@";

/// Reads a C2SP tlog-proof of a Lineage entry (c2sp.org/tlog-proof): its
/// `extra` line carries the log entry, base64 of exactly the bytes hashed
/// into the leaf (the `entry` of a `lineage-bundle/v1`), so that every check
/// of a bundle runs on it too; `index` and the proof lines are the bundle's
/// `index` and `inclusion_proof`; the checkpoint note, with any witness
/// cosignatures, follows the blank line. It claims no event ID: the entry's
/// is computed and printed.
fn parse_tlog_proof(bytes: &[u8]) -> Result<Claim, Violation> {
    let proof = TlogProof::parse(bytes).map_err(|error| Violation::TlogProof { error })?;
    Ok(Claim {
        index: proof.index(),
        entry: proof
            .extra()
            .map(<[u8]>::to_vec)
            .ok_or(Violation::TlogProofWithoutEntry),
        checkpoint: proof.checkpoint_note().to_owned(),
        proof: Ok(proof.proof().to_vec()),
        proof_len: proof.proof().len(),
        event_id: None,
        tlog_proof: Some(proof),
    })
}

fn verify_claim(
    claim: Claim,
    opts: &ReceiptOptions<'_>,
    mut report: ReceiptReport,
) -> ReceiptReport {
    report.index = Some(claim.index);
    let checks = &mut report.checks;

    let key = opts.log_key;
    let checked = check_note(
        "checkpoint",
        claim.checkpoint.as_bytes(),
        key,
        opts.witnesses,
        true,
    );
    let checkpoint = checked.checkpoint;
    // Without a checkpoint the log's signature failed; with one, what failed
    // is a cosignature or the quorum.
    let (signature, witnessing) = if checkpoint.is_some() {
        (Vec::new(), checked.violations)
    } else {
        (checked.violations, Vec::new())
    };
    match &checkpoint {
        Some(v) => {
            let cp = v.checkpoint();
            checks.push(Check::passed(
                "checkpoint",
                format!(
                    "signed by {} ({:08x}): tree size {}, root {}",
                    key.name(),
                    key.key_id(),
                    cp.size,
                    cp.root
                ),
            ));
            report.checkpoint = Some(cp.clone());
        }
        None => {
            for v in signature {
                checks.push(Check::failed("checkpoint", v));
            }
        }
    }
    if opts.witnesses.is_some() {
        report.witnesses = checked.witnesses;
        match &checkpoint {
            None => checks.push(Check::not_checked("witnesses", "no verified checkpoint")),
            Some(_) if !witnessing.is_empty() => {
                for v in witnessing {
                    checks.push(Check::failed("witnesses", v));
                }
            }
            Some(_) => checks.push(match &report.witnesses {
                Some(w) => Check::passed("witnesses", w.summary()),
                None => Check::not_checked("witnesses", "no policy evaluation"),
            }),
        }
    }

    let (entry_bytes, entry_problem) = match claim.entry {
        Ok(bytes) => (Some(bytes), None),
        Err(v) => (None, Some(v)),
    };
    let entry = match &entry_bytes {
        None => {
            if let Some(v) = entry_problem {
                checks.push(Check::failed("entry", v));
            }
            None
        }
        Some(bytes) => match LogEntry::decode(bytes) {
            Ok(e) => {
                checks.push(Check::passed(
                    "entry",
                    format!(
                        "{} entry, {} payload bytes",
                        match e.entry_type {
                            EntryType::Event => "event",
                            EntryType::Governance => "governance",
                        },
                        e.payload.len()
                    ),
                ));
                Some(e)
            }
            Err(error) => {
                checks.push(Check::failed(
                    "entry",
                    Violation::MalformedEntry {
                        index: claim.index,
                        error,
                    },
                ));
                None
            }
        },
    };

    checks.push(match (&checkpoint, &entry_bytes) {
        (None, _) => Check::not_checked("inclusion", "no verified checkpoint"),
        (_, None) => Check::not_checked("inclusion", "no entry bytes"),
        (Some(v), Some(bytes)) => {
            let cp = v.checkpoint();
            let leaf = leaf_hash(bytes);
            let violation = |error| Violation::InclusionProof {
                index: claim.index,
                size: cp.size,
                error,
            };
            let verdict = match &claim.tlog_proof {
                Some(t) => t.verify_inclusion(&leaf, v).map_err(violation),
                None => claim.proof.and_then(|proof| {
                    verify_inclusion(&leaf, claim.index, cp.size, &proof, &cp.root)
                        .map_err(violation)
                }),
            };
            match verdict {
                Ok(()) => Check::passed(
                    "inclusion",
                    format!(
                        "leaf {} is in the tree of size {} ({} proof hashes)",
                        claim.index, cp.size, claim.proof_len
                    ),
                ),
                Err(v) => Check::failed("inclusion", v),
            }
        }
    });

    if let Some(e) = &entry {
        report.key_id = Some(e.key_id);
        report.integrated_at_ms = Some(e.integrated_at_ms);
    }
    let Some(entry) = entry else {
        for name in ["event_id", "signature", "payload"] {
            checks.push(Check::not_checked(name, "no decoded entry"));
        }
        return report;
    };
    let id = entry.event_id();
    checks.push(match &claim.event_id {
        None => Check::passed(
            "event_id",
            format!("{id} (computed; a tlog-proof claims none)"),
        ),
        Some(claimed) if *claimed == id.to_string() => Check::passed("event_id", id.to_string()),
        Some(claimed) => Check::failed(
            "event_id",
            Violation::EventIdMismatch {
                claimed: claimed.chars().take(80).collect(),
                computed: id,
            },
        ),
    });
    checks.push(signature_check(&entry, opts));
    checks.push(
        match entry.entry_type {
            EntryType::Event => parse_event(&entry.payload).map(Decoded::Event),
            EntryType::Governance => parse_governance(&entry.payload).map(Decoded::Governance),
        }
        .map_or_else(
            |error| Check::failed("payload", Violation::Payload { error }),
            |d| {
                report.decoded = Some(d);
                Check::passed("payload", "follows its schema")
            },
        ),
    );
    report.event_id = Some(id);
    report
}

fn signature_check(entry: &LogEntry, opts: &ReceiptOptions<'_>) -> Check {
    let (keys, flag, role) = match entry.entry_type {
        EntryType::Event => (opts.runtime_keys, "--runtime-key", "runtime key"),
        EntryType::Governance => (opts.authorities, "--authority", "authority key"),
    };
    let Some(key) = keys
        .iter()
        .find(|k| KeyId::from_public_key(k) == entry.key_id)
    else {
        let v = Violation::SignerUnknown {
            key_id: entry.key_id,
            flag,
        };
        return if opts.allow_unknown_signer {
            Check::not_checked(
                "signature",
                format!(
                    "key {} unknown (allowed by --allow-unknown-signer)",
                    entry.key_id
                ),
            )
        } else {
            Check::failed("signature", v)
        };
    };
    match entry.to_envelope().verify(key) {
        Ok(()) => Check::passed(
            "signature",
            format!("verify_strict by {role} {}", entry.key_id),
        ),
        Err(error) => Check::failed(
            "signature",
            Violation::Signature {
                key_id: entry.key_id,
                error,
            },
        ),
    }
}
