//! Verifying one receipt (`lineage-verify bundle`): a `lineage-bundle/v1`
//! document, as the ledger answers a submission with.
//!
//! Checks, each reported on its own ([`Check`]), so that a failure names
//! exactly what failed and the others still run where they can:
//!
//! 1. `format`: the document is `lineage-bundle/v1`.
//! 2. `checkpoint`: a valid signature by the trusted log key, origin = the key's name.
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
use lineage_ledger::checkpoint::{Checkpoint, verify_checkpoint};
use lineage_ledger::entry::{EntryType, LogEntry};
use lineage_ledger::event::{
    Event, GovernanceStatement, action_name, parse_event, parse_governance,
};
use lineage_ledger::keys::{EventId, KeyId, public_key_base64};
use lineage_ledger::note::NoteVerifier;
use lineage_ledger::tree::verify_inclusion;
use lineage_ledger::{Hash, leaf_hash};
use lineage_schemas::{RECEIPT_FORMAT, Receipt};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;

use crate::audit::checkpoint_json;
use crate::replay::integration_time;
use crate::report::{Verdict, Violation};

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
    /// Every check, in order.
    pub checks: Vec<Check>,
    /// The receipt's leaf index.
    pub index: Option<u64>,
    /// The verified checkpoint.
    pub checkpoint: Option<Checkpoint>,
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
            "verdict": self.verdict(),
            "exit_code": self.verdict().exit_code(),
            "index": self.index,
            "checkpoint": self.checkpoint.as_ref().map(checkpoint_json),
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
                rows.push(("attrs", Value::Object(attrs.clone()).to_string()));
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

/// Verifies a receipt's bytes (a `lineage-bundle/v1` JSON document).
pub fn verify_receipt(bytes: &[u8], opts: &ReceiptOptions<'_>) -> ReceiptReport {
    let mut report = ReceiptReport {
        checks: Vec::new(),
        index: None,
        checkpoint: None,
        event_id: None,
        key_id: None,
        integrated_at_ms: None,
        decoded: None,
    };
    let receipt: Receipt = match serde_json::from_slice(bytes) {
        Ok(b) => b,
        Err(error) => {
            report
                .checks
                .push(Check::failed("format", Violation::ReceiptJson { error }));
            return report;
        }
    };
    report.index = Some(receipt.index);
    let checks = &mut report.checks;
    checks.push(if receipt.format == RECEIPT_FORMAT {
        Check::passed("format", RECEIPT_FORMAT)
    } else {
        Check::failed(
            "format",
            Violation::ReceiptFormat {
                found: receipt.format.chars().take(80).collect(),
            },
        )
    });

    let key = opts.log_key;
    let checkpoint = match verify_checkpoint(receipt.checkpoint.as_bytes(), key, key.name()) {
        Ok(v) => {
            let cp = v.into_checkpoint();
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
            Some(cp)
        }
        Err(error) => {
            checks.push(Check::failed(
                "checkpoint",
                Violation::Checkpoint {
                    which: "checkpoint",
                    error,
                },
            ));
            None
        }
    };

    let entry_bytes = decode_base64(&receipt.entry);
    let entry = match &entry_bytes {
        None => {
            checks.push(Check::failed("entry", Violation::EntryEncoding));
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
                        index: receipt.index,
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
        (Some(cp), Some(bytes)) => {
            match decode_proof("inclusion_proof", &receipt.inclusion_proof).and_then(|proof| {
                verify_inclusion(&leaf_hash(bytes), receipt.index, cp.size, &proof, &cp.root)
                    .map_err(|error| Violation::InclusionProof {
                        index: receipt.index,
                        size: cp.size,
                        error,
                    })
            }) {
                Ok(()) => Check::passed(
                    "inclusion",
                    format!(
                        "leaf {} is in the tree of size {} ({} proof hashes)",
                        receipt.index,
                        cp.size,
                        receipt.inclusion_proof.len()
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
    checks.push(if id.to_string() == receipt.event_id {
        Check::passed("event_id", id.to_string())
    } else {
        Check::failed(
            "event_id",
            Violation::EventIdMismatch {
                claimed: receipt.event_id.chars().take(80).collect(),
                computed: id,
            },
        )
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
