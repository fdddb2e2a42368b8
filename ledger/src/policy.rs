//! C2SP transparency-log trust policies (c2sp.org/tlog-policy), and checking a
//! checkpoint against one.
//!
//! A policy file names the logs a checkpoint may come from, the witnesses that
//! may cosign it, groups of them with a threshold, and the quorum:
//!
//! ```text
//! log <vkey> [<url>]
//! witness <name> <vkey> [<url>]
//! group <name> <k>|any|all <member>...
//! quorum <name>|none
//! ```
//!
//! [`Policy::parse`] reads one strictly and names the line of the first problem
//! ([`PolicyParseError`]); [`Policy::to_bytes`] writes it back in canonical form.
//! [`Policy::evaluate`] checks a signed checkpoint in the order the spec and
//! c2sp.org/signed-note give: the log's signature (a log whose key name is the
//! checkpoint's origin), then every cosignature by a known witness (lines by unknown
//! keys are ignored; a known witness's line that fails to verify rejects the note),
//! then the groups up to the quorum; [`Policy::verify`] also requires the quorum.
//!
//! Interpretations, where the spec leaves room:
//! - Names are opaque octet strings ([`PolicyName`]), as the spec's "Character set"
//!   asks; vkeys must be ASCII and URLs UTF-8 (a URL is used to make requests).
//! - Log keys must be type `0x01` (Ed25519 note keys, as Lineage's log signs) and
//!   witness keys type `0x04` (Ed25519 `cosignature/v1`); other types, such as
//!   ML-DSA-44 (`0x06`), are refused at parse time rather than ignored, so a policy
//!   never silently counts on a witness it cannot check.
//! - Besides the spec's duplicate rules (no two logs, no two witnesses with the same
//!   public key), no two keys of the file may share a key name and key ID, since a
//!   signature line could not be attributed.
//! - A final line without its newline is accepted. Numeric thresholds are ASCII
//!   decimal digits (leading zeros allowed: the spec only says "decimal").
//! - A witness that signed several lines is counted once, with its latest timestamp.
//! - A log's key name must equal the checkpoint's origin (tlog-policy "Defining a
//!   log"): the origin line picks which log keys are asked to verify.
//!
//! Known limits: no limit on the number of logs, witnesses or groups (the spec
//! recommends supporting at least 32 of each); the policy comes from the operator.

use std::fmt;

use crate::checkpoint::{CheckpointError, VerifiedCheckpoint, verify_checkpoint_any};
use crate::cosignature::{CosignatureError, CosignerVerifier, VerifierKey};
use crate::note::{NoteError, NoteVerifier};

/// The predefined quorum name that requires no cosignature.
pub const QUORUM_NONE: &str = "none";

/// A witness or group name: an opaque octet string (tlog-policy "Character set"),
/// compared byte for byte.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PolicyName(Vec<u8>);

impl PolicyName {
    /// The name's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for PolicyName {
    /// The name as UTF-8, with any invalid byte escaped as `\xNN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape(&self.0))
    }
}

impl fmt::Debug for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PolicyName({:?})", escape(&self.0))
    }
}

/// `bytes` as text: valid UTF-8 as is, other bytes as `\xNN`, at most 100 characters.
fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out.chars().take(100).collect()
}

/// What is wrong with one line of a policy file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// A byte the spec does not allow: a control character other than tab and newline,
    /// or DEL (0x7f).
    #[error("forbidden byte {byte:#04x}")]
    ForbiddenByte {
        /// The byte.
        byte: u8,
    },
    /// The first item is not `log`, `witness`, `group` or `quorum`.
    #[error("unknown keyword {keyword:?}")]
    UnknownKeyword {
        /// The keyword (escaped, truncated to 100 characters).
        keyword: String,
    },
    /// The line has too few or too many items for its keyword.
    #[error("{keyword} line has {items} items, expected {expected}")]
    WrongItemCount {
        /// The keyword.
        keyword: &'static str,
        /// Number of items found, the keyword included.
        items: usize,
        /// What the keyword takes, e.g. "2 or 3".
        expected: &'static str,
    },
    /// A vkey or URL is not valid UTF-8.
    #[error("{what} is not valid UTF-8")]
    NotUtf8 {
        /// "vkey" or "URL".
        what: &'static str,
    },
    /// A vkey does not parse.
    #[error("vkey: {0}")]
    Vkey(#[source] NoteError),
    /// A log key that is not type `0x01` or a witness key that is not type `0x04`.
    #[error("{role} key has signature type {found:#04x}, expected {expected:#04x}")]
    WrongKeyType {
        /// "log" or "witness".
        role: &'static str,
        /// The type byte found.
        found: u8,
        /// The type byte this role needs.
        expected: u8,
    },
    /// A second log with the public key of an earlier one.
    #[error("duplicate log: same public key as the log on line {first_line}")]
    DuplicateLog {
        /// Line of the first log with that key.
        first_line: usize,
    },
    /// A second witness with the public key of an earlier one.
    #[error("duplicate witness: same public key as witness {first} on line {first_line}")]
    DuplicateWitness {
        /// The earlier witness.
        first: PolicyName,
        /// Its line.
        first_line: usize,
    },
    /// A key with the key name and key ID of an earlier key of the file.
    #[error("key {name:?} ({key_id:08x}) has the name and key ID of the key on line {first_line}")]
    AmbiguousKey {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
        /// Line of the earlier key.
        first_line: usize,
    },
    /// A witness or group name defined before, or the predefined `none`.
    #[error("name {name} is already defined")]
    DuplicateName {
        /// The name.
        name: PolicyName,
    },
    /// A group member or the quorum names nothing defined on an earlier line.
    #[error("name {name} is not defined on an earlier line")]
    UndefinedName {
        /// The name.
        name: PolicyName,
    },
    /// `none` listed as a group member.
    #[error("'none' cannot be a group member")]
    NoneAsMember,
    /// A group lists a member twice.
    #[error("group member {name} is listed twice")]
    DuplicateMember {
        /// The member.
        name: PolicyName,
    },
    /// A threshold that is not `all`, `any` or a decimal `k` with `1 <= k <= n`.
    #[error("threshold {threshold:?} is not all, any or a number from 1 to {members}")]
    InvalidThreshold {
        /// The threshold item (escaped, truncated to 100 characters).
        threshold: String,
        /// Number of members of the group.
        members: usize,
    },
    /// A second `quorum` line.
    #[error("second quorum line (the first is line {first_line})")]
    DuplicateQuorum {
        /// Line of the first quorum.
        first_line: usize,
    },
}

/// Why a policy file is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyParseError {
    /// A line is malformed.
    #[error("policy line {line}: {error}")]
    Line {
        /// One-based line number.
        line: usize,
        /// What is wrong with it.
        error: LineError,
    },
    /// The file has no `quorum` line.
    #[error("policy has no quorum line")]
    MissingQuorum,
}

/// A log the policy accepts checkpoints from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLog {
    verifier: NoteVerifier,
    url: Option<String>,
}

impl PolicyLog {
    /// The log's key; its name is the log's origin.
    pub fn verifier(&self) -> &NoteVerifier {
        &self.verifier
    }

    /// The log's URL, if given (its meaning is the application's).
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}

/// A witness of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWitness {
    name: PolicyName,
    verifier: CosignerVerifier,
    url: Option<String>,
}

impl PolicyWitness {
    /// The policy-local name (not the key name).
    pub fn name(&self) -> &PolicyName {
        &self.name
    }

    /// The witness's cosigner key.
    pub fn verifier(&self) -> &CosignerVerifier {
        &self.verifier
    }

    /// The witness's URL, if given: by recommendation its tlog-witness submission prefix.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }
}

/// How many members of a group must have witnessed a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// Every member (`all`).
    All,
    /// One member (`any`).
    Any,
    /// At least `k` members, `1 <= k <= n`.
    AtLeast(usize),
}

/// A reference to a witness or a group, by position in [`Policy::witnesses`] or
/// [`Policy::groups`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    /// A witness.
    Witness(usize),
    /// A group.
    Group(usize),
}

/// A named group of witnesses and groups with a threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyGroup {
    name: PolicyName,
    threshold: Threshold,
    members: Vec<Member>,
}

impl PolicyGroup {
    /// The group's name.
    pub fn name(&self) -> &PolicyName {
        &self.name
    }

    /// The threshold as written.
    pub fn threshold(&self) -> Threshold {
        self.threshold
    }

    /// The number of members that must have witnessed: `k` (1 for `any`, `n` for `all`).
    pub fn required(&self) -> usize {
        match self.threshold {
            Threshold::All => self.members.len(),
            Threshold::Any => 1,
            Threshold::AtLeast(k) => k,
        }
    }

    /// The members, in the order written (at least one, each once).
    pub fn members(&self) -> &[Member] {
        &self.members
    }
}

/// A parsed tlog-policy file. Only [`Policy::parse`] makes one, so every name
/// reference is to an earlier definition and groups form no cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    groups: Vec<PolicyGroup>,
    /// `None` for `quorum none`.
    quorum: Option<Member>,
}

/// One valid cosignature, by a witness of the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessCosignature {
    /// Position of the witness in [`Policy::witnesses`].
    pub witness: usize,
    /// The witness's policy name.
    pub name: PolicyName,
    /// The cosignature's timestamp, POSIX seconds (the latest, when it signed several lines).
    pub timestamp: u64,
}

/// How far a group (or the quorum's single witness) is from being met.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// The group or witness name.
    pub name: PolicyName,
    /// Members that witnessed (for a witness: 0).
    pub witnessed: usize,
    /// Members required (for a witness: 1).
    pub required: usize,
}

/// The quorum is not met.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quorum {quorum} is not met: {}", shortfall_text(.unmet))]
pub struct QuorumUnmet {
    /// The quorum's name.
    pub quorum: PolicyName,
    /// Every unmet group the quorum depends on, innermost first (definition order),
    /// the quorum itself last. For a quorum that is one witness, that witness.
    pub unmet: Vec<Shortfall>,
}

fn shortfall_text(unmet: &[Shortfall]) -> String {
    unmet
        .iter()
        .map(|s| format!("{} has {} of {}", s.name, s.witnessed, s.required))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a checkpoint does not satisfy a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// No log of the policy has the checkpoint's origin as key name (the origin is
    /// read before any signature is checked, only to choose the log keys).
    #[error("no log of the policy has origin {origin:?}")]
    UnknownOrigin {
        /// The checkpoint's first line (truncated to 100 characters).
        origin: String,
    },
    /// The note is malformed, not signed (validly) by the log, or not a checkpoint.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// A known witness's cosignature line does not verify, which rejects the note.
    #[error("cosignature by witness {witness}: {error}")]
    Cosignature {
        /// The witness's policy name.
        witness: PolicyName,
        /// Why its line failed.
        error: CosignatureError,
    },
    /// The cosignatures do not meet the quorum ([`Policy::verify`] only).
    #[error(transparent)]
    QuorumUnmet(#[from] QuorumUnmet),
}

/// A checkpoint checked against a policy: signed by a log, every known
/// cosignature valid, and the quorum's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    checkpoint: VerifiedCheckpoint,
    cosignatures: Vec<WitnessCosignature>,
    quorum: Result<(), QuorumUnmet>,
}

impl Evaluation {
    /// The checkpoint, verified under the log's key.
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }

    /// The valid cosignatures by witnesses of the policy, one per witness, in policy order.
    pub fn cosignatures(&self) -> &[WitnessCosignature] {
        &self.cosignatures
    }

    /// `Ok` when the quorum is met, else the unmet groups.
    pub fn quorum(&self) -> Result<(), &QuorumUnmet> {
        self.quorum.as_ref().map(|_| ())
    }

    /// The verified checkpoint, by value.
    pub fn into_checkpoint(self) -> VerifiedCheckpoint {
        self.checkpoint
    }
}

/// Splits a line into items separated by runs of spaces and tabs.
fn items(line: &[u8]) -> Vec<&[u8]> {
    line.split(|b| *b == b' ' || *b == b'\t')
        .filter(|item| !item.is_empty())
        .collect()
}

/// Where each kind of definition was, to report duplicates by line.
#[derive(Default)]
struct Lines {
    logs: Vec<usize>,
    witnesses: Vec<usize>,
    /// Key name, key ID and line of every key so far.
    keys: Vec<(String, u32, usize)>,
    quorum: Option<usize>,
}

impl Policy {
    /// Parses a policy file (c2sp.org/tlog-policy).
    ///
    /// Lines end in a newline (the last may lack it); items are separated by spaces and
    /// tabs, with leading and trailing whitespace allowed; blank lines and lines whose
    /// first item starts with `#` are ignored. Only tab, newline, 0x20-0x7e and
    /// 0x80-0xff may appear.
    ///
    /// # Errors
    /// [`PolicyParseError::Line`] with the line number and the first problem found on
    /// it; [`PolicyParseError::MissingQuorum`] when there is no quorum line.
    pub fn parse(file: &[u8]) -> Result<Policy, PolicyParseError> {
        let mut policy = Policy {
            logs: Vec::new(),
            witnesses: Vec::new(),
            groups: Vec::new(),
            quorum: None,
        };
        let mut lines = Lines::default();
        let body = file.strip_suffix(b"\n").unwrap_or(file);
        if !file.is_empty() {
            for (i, line) in body.split(|b| *b == b'\n').enumerate() {
                let number = i + 1;
                policy
                    .parse_line(line, number, &mut lines)
                    .map_err(|error| PolicyParseError::Line {
                        line: number,
                        error,
                    })?;
            }
        }
        if lines.quorum.is_none() {
            return Err(PolicyParseError::MissingQuorum);
        }
        Ok(policy)
    }

    fn parse_line(
        &mut self,
        line: &[u8],
        number: usize,
        lines: &mut Lines,
    ) -> Result<(), LineError> {
        if let Some(&byte) = line
            .iter()
            .find(|b| (**b < 0x20 && **b != b'\t') || **b == 0x7f)
        {
            return Err(LineError::ForbiddenByte { byte });
        }
        let items = items(line);
        let Some((&keyword, args)) = items.split_first() else {
            return Ok(());
        };
        if keyword.starts_with(b"#") {
            return Ok(());
        }
        let count = |keyword, expected, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(LineError::WrongItemCount {
                    keyword,
                    items: items.len(),
                    expected,
                })
            }
        };
        match keyword {
            b"log" => {
                count("log", "2 or 3", matches!(args.len(), 1 | 2))?;
                self.parse_log(args, number, lines)
            }
            b"witness" => {
                count("witness", "3 or 4", matches!(args.len(), 2 | 3))?;
                self.parse_witness(args, number, lines)
            }
            b"group" => {
                count("group", "at least 4", args.len() >= 3)?;
                self.parse_group(args)
            }
            b"quorum" => {
                count("quorum", "2", args.len() == 1)?;
                if let Some(first_line) = lines.quorum {
                    return Err(LineError::DuplicateQuorum { first_line });
                }
                self.quorum = if args[0] == QUORUM_NONE.as_bytes() {
                    None
                } else {
                    Some(self.lookup(args[0])?)
                };
                lines.quorum = Some(number);
                Ok(())
            }
            _ => Err(LineError::UnknownKeyword {
                keyword: escape(keyword),
            }),
        }
    }

    fn parse_log(
        &mut self,
        args: &[&[u8]],
        number: usize,
        lines: &mut Lines,
    ) -> Result<(), LineError> {
        let verifier = match parse_vkey(args[0])? {
            VerifierKey::Note(v) => v,
            other => {
                return Err(LineError::WrongKeyType {
                    role: "log",
                    found: other.signature_type(),
                    expected: crate::note::ED25519_SIGNATURE_TYPE,
                });
            }
        };
        if let Some(i) = self
            .logs
            .iter()
            .position(|l| l.verifier.public_key() == verifier.public_key())
        {
            return Err(LineError::DuplicateLog {
                first_line: lines.logs[i],
            });
        }
        check_ambiguous(lines, verifier.name(), verifier.key_id(), number)?;
        self.logs.push(PolicyLog {
            verifier,
            url: parse_url(args.get(1))?,
        });
        lines.logs.push(number);
        Ok(())
    }

    fn parse_witness(
        &mut self,
        args: &[&[u8]],
        number: usize,
        lines: &mut Lines,
    ) -> Result<(), LineError> {
        let name = self.new_name(args[0])?;
        let verifier = match parse_vkey(args[1])? {
            VerifierKey::Cosigner(v) => v,
            other => {
                return Err(LineError::WrongKeyType {
                    role: "witness",
                    found: other.signature_type(),
                    expected: crate::cosignature::COSIGNATURE_V1_TYPE,
                });
            }
        };
        if let Some(i) = self
            .witnesses
            .iter()
            .position(|w| w.verifier.public_key() == verifier.public_key())
        {
            return Err(LineError::DuplicateWitness {
                first: self.witnesses[i].name.clone(),
                first_line: lines.witnesses[i],
            });
        }
        check_ambiguous(lines, verifier.name(), verifier.key_id(), number)?;
        self.witnesses.push(PolicyWitness {
            name,
            verifier,
            url: parse_url(args.get(2))?,
        });
        lines.witnesses.push(number);
        Ok(())
    }

    fn parse_group(&mut self, args: &[&[u8]]) -> Result<(), LineError> {
        let name = self.new_name(args[0])?;
        let member_names = &args[2..];
        let mut members = Vec::with_capacity(member_names.len());
        for (i, member) in member_names.iter().enumerate() {
            if *member == QUORUM_NONE.as_bytes() {
                return Err(LineError::NoneAsMember);
            }
            if member_names[..i].contains(member) {
                return Err(LineError::DuplicateMember {
                    name: PolicyName(member.to_vec()),
                });
            }
            members.push(self.lookup(member)?);
        }
        let n = members.len();
        let threshold = match args[1] {
            b"all" => Threshold::All,
            b"any" => Threshold::Any,
            k => std::str::from_utf8(k)
                .ok()
                .filter(|k| k.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|k| k.parse::<usize>().ok())
                .filter(|k| (1..=n).contains(k))
                .map(Threshold::AtLeast)
                .ok_or_else(|| LineError::InvalidThreshold {
                    threshold: escape(k),
                    members: n,
                })?,
        };
        self.groups.push(PolicyGroup {
            name,
            threshold,
            members,
        });
        Ok(())
    }

    /// A name for a new witness or group: not `none`, not defined before.
    fn new_name(&self, name: &[u8]) -> Result<PolicyName, LineError> {
        let name = PolicyName(name.to_vec());
        if name.0 == QUORUM_NONE.as_bytes() || self.lookup(&name.0).is_ok() {
            return Err(LineError::DuplicateName { name });
        }
        Ok(name)
    }

    /// The witness or group defined under `name`.
    fn lookup(&self, name: &[u8]) -> Result<Member, LineError> {
        if let Some(i) = self.witnesses.iter().position(|w| w.name.0 == name) {
            return Ok(Member::Witness(i));
        }
        if let Some(i) = self.groups.iter().position(|g| g.name.0 == name) {
            return Ok(Member::Group(i));
        }
        Err(LineError::UndefinedName {
            name: PolicyName(name.to_vec()),
        })
    }

    /// The logs, in file order.
    pub fn logs(&self) -> &[PolicyLog] {
        &self.logs
    }

    /// The witnesses, in file order.
    pub fn witnesses(&self) -> &[PolicyWitness] {
        &self.witnesses
    }

    /// The groups, in file order (each refers only to earlier ones).
    pub fn groups(&self) -> &[PolicyGroup] {
        &self.groups
    }

    /// The quorum: a witness or group, or `None` for `quorum none`.
    pub fn quorum(&self) -> Option<Member> {
        self.quorum
    }

    /// The name of a witness or group.
    pub fn member_name(&self, member: Member) -> Option<&PolicyName> {
        match member {
            Member::Witness(i) => self.witnesses.get(i).map(|w| &w.name),
            Member::Group(i) => self.groups.get(i).map(|g| &g.name),
        }
    }

    /// The policy in canonical form: logs, witnesses, groups in file order, then the
    /// quorum, one line each with single spaces. [`Policy::parse`] reads it back to an
    /// equal policy.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let with_url = |out: &mut Vec<u8>, url: &Option<String>| {
            if let Some(url) = url {
                out.push(b' ');
                out.extend_from_slice(url.as_bytes());
            }
            out.push(b'\n');
        };
        for log in &self.logs {
            out.extend_from_slice(b"log ");
            out.extend_from_slice(log.verifier.vkey().as_bytes());
            with_url(&mut out, &log.url);
        }
        for w in &self.witnesses {
            out.extend_from_slice(b"witness ");
            out.extend_from_slice(&w.name.0);
            out.push(b' ');
            out.extend_from_slice(w.verifier.vkey().as_bytes());
            with_url(&mut out, &w.url);
        }
        for g in &self.groups {
            out.extend_from_slice(b"group ");
            out.extend_from_slice(&g.name.0);
            match g.threshold {
                Threshold::All => out.extend_from_slice(b" all"),
                Threshold::Any => out.extend_from_slice(b" any"),
                Threshold::AtLeast(k) => out.extend_from_slice(format!(" {k}").as_bytes()),
            }
            for m in &g.members {
                out.push(b' ');
                out.extend_from_slice(self.member_name(*m).map_or(&[][..], |n| &n.0));
            }
            out.push(b'\n');
        }
        out.extend_from_slice(b"quorum ");
        match self.quorum {
            None => out.extend_from_slice(QUORUM_NONE.as_bytes()),
            Some(m) => out.extend_from_slice(self.member_name(m).map_or(&[][..], |n| &n.0)),
        }
        out.push(b'\n');
        out
    }

    /// Checks a signed checkpoint against the policy, leaving the quorum's verdict in
    /// the result ([`Evaluation::quorum`]): what a log's witnessing round needs to
    /// report which groups are short.
    ///
    /// Steps: the log keys whose name is the checkpoint's origin must verify it (see
    /// [`verify_checkpoint_any`]); every signature line by a known witness key (name
    /// and key ID) must verify as a `cosignature/v1` over the note text; lines by
    /// unknown keys are ignored; then the groups are counted up to the quorum.
    ///
    /// # Errors
    /// [`PolicyError::UnknownOrigin`]; [`PolicyError::Checkpoint`] when the note is
    /// malformed, not validly signed by the log, or not a checkpoint;
    /// [`PolicyError::Cosignature`] when a known witness's line fails.
    pub fn evaluate(&self, note: &[u8]) -> Result<Evaluation, PolicyError> {
        let origin = origin_line(note);
        let logs: Vec<NoteVerifier> = self
            .logs
            .iter()
            .filter(|l| l.verifier.name().as_bytes() == origin)
            .map(|l| l.verifier.clone())
            .collect();
        if logs.is_empty() {
            return Err(PolicyError::UnknownOrigin {
                origin: escape(origin),
            });
        }
        let origin = logs[0].name().to_owned();
        let checkpoint = verify_checkpoint_any(note, &logs, &origin)?;
        self.evaluate_cosignatures(checkpoint)
    }

    /// As [`Policy::evaluate`], with the log's key given rather than taken from the
    /// policy's `log` lines (which are then not used): for an application that knows
    /// its log from elsewhere, such as a verifier given `--log-key`.
    ///
    /// # Errors
    /// As [`Policy::evaluate`], without [`PolicyError::UnknownOrigin`]: a checkpoint
    /// whose origin is not `origin` is [`CheckpointError::OriginMismatch`].
    pub fn evaluate_with_log(
        &self,
        note: &[u8],
        log: &NoteVerifier,
        origin: &str,
    ) -> Result<Evaluation, PolicyError> {
        let checkpoint = verify_checkpoint_any(note, std::slice::from_ref(log), origin)?;
        self.evaluate_cosignatures(checkpoint)
    }

    /// [`Policy::evaluate`], then the quorum must be met.
    ///
    /// # Errors
    /// As [`Policy::evaluate`], and [`PolicyError::QuorumUnmet`] naming the unmet groups.
    pub fn verify(&self, note: &[u8]) -> Result<Evaluation, PolicyError> {
        let evaluation = self.evaluate(note)?;
        evaluation.quorum.clone()?;
        Ok(evaluation)
    }

    /// [`Policy::evaluate_with_log`], then the quorum must be met.
    ///
    /// # Errors
    /// As [`Policy::evaluate_with_log`], and [`PolicyError::QuorumUnmet`].
    pub fn verify_with_log(
        &self,
        note: &[u8],
        log: &NoteVerifier,
        origin: &str,
    ) -> Result<Evaluation, PolicyError> {
        let evaluation = self.evaluate_with_log(note, log, origin)?;
        evaluation.quorum.clone()?;
        Ok(evaluation)
    }

    fn evaluate_cosignatures(
        &self,
        checkpoint: VerifiedCheckpoint,
    ) -> Result<Evaluation, PolicyError> {
        let note = checkpoint.note();
        let mut latest: Vec<Option<u64>> = vec![None; self.witnesses.len()];
        for sig in &note.signatures {
            let Some(i) = self
                .witnesses
                .iter()
                .position(|w| w.verifier.is_signer_of(sig))
            else {
                continue;
            };
            let timestamp =
                self.witnesses[i]
                    .verifier
                    .verify(&note.text, sig)
                    .map_err(|error| PolicyError::Cosignature {
                        witness: self.witnesses[i].name.clone(),
                        error,
                    })?;
            latest[i] = latest[i].max(Some(timestamp));
        }
        let cosignatures: Vec<WitnessCosignature> = latest
            .iter()
            .enumerate()
            .filter_map(|(i, t)| {
                t.map(|timestamp| WitnessCosignature {
                    witness: i,
                    name: self.witnesses[i].name.clone(),
                    timestamp,
                })
            })
            .collect();
        let quorum = self.check_quorum(&cosignatures);
        Ok(Evaluation {
            checkpoint,
            cosignatures,
            quorum,
        })
    }

    /// Whether `cosignatures` meet the quorum: the groups are counted in file order,
    /// each from its members' verdicts. A caller that drops some cosignatures (say,
    /// older than a maximum age) calls this again with the rest.
    ///
    /// # Errors
    /// [`QuorumUnmet`] naming every unmet group the quorum depends on.
    pub fn check_quorum(&self, cosignatures: &[WitnessCosignature]) -> Result<(), QuorumUnmet> {
        let Some(quorum) = self.quorum else {
            return Ok(());
        };
        let witnessed: Vec<bool> = (0..self.witnesses.len())
            .map(|i| cosignatures.iter().any(|c| c.witness == i))
            .collect();
        let mut counts: Vec<usize> = Vec::with_capacity(self.groups.len());
        let mut met: Vec<bool> = Vec::with_capacity(self.groups.len());
        for group in &self.groups {
            let count = group
                .members
                .iter()
                .filter(|m| match m {
                    Member::Witness(i) => witnessed.get(*i).copied().unwrap_or(false),
                    Member::Group(i) => met.get(*i).copied().unwrap_or(false),
                })
                .count();
            counts.push(count);
            met.push(count >= group.required());
        }
        let name = |m| {
            self.member_name(m)
                .cloned()
                .unwrap_or(PolicyName(Vec::new()))
        };
        match quorum {
            Member::Witness(i) if witnessed.get(i).copied().unwrap_or(false) => Ok(()),
            Member::Witness(_) => Err(QuorumUnmet {
                quorum: name(quorum),
                unmet: vec![Shortfall {
                    name: name(quorum),
                    witnessed: 0,
                    required: 1,
                }],
            }),
            Member::Group(g) if met.get(g).copied().unwrap_or(false) => Ok(()),
            Member::Group(g) => {
                // Groups reachable from the quorum; members always come earlier, so one
                // backward pass over the file order finds them all.
                let mut reachable = vec![false; self.groups.len()];
                if let Some(r) = reachable.get_mut(g) {
                    *r = true;
                }
                for i in (0..self.groups.len()).rev() {
                    if !reachable[i] {
                        continue;
                    }
                    for m in &self.groups[i].members {
                        if let Member::Group(j) = m
                            && let Some(r) = reachable.get_mut(*j)
                        {
                            *r = true;
                        }
                    }
                }
                let unmet = (0..self.groups.len())
                    .filter(|i| reachable[*i] && !met[*i])
                    .map(|i| Shortfall {
                        name: self.groups[i].name.clone(),
                        witnessed: counts[i],
                        required: self.groups[i].required(),
                    })
                    .collect();
                Err(QuorumUnmet {
                    quorum: name(quorum),
                    unmet,
                })
            }
        }
    }
}

/// The note's first line, untrusted: only used to choose the log keys.
fn origin_line(note: &[u8]) -> &[u8] {
    note.split(|b| *b == b'\n').next().unwrap_or(note)
}

fn parse_vkey(item: &[u8]) -> Result<VerifierKey, LineError> {
    let vkey = std::str::from_utf8(item).map_err(|_| LineError::NotUtf8 { what: "vkey" })?;
    VerifierKey::parse(vkey).map_err(LineError::Vkey)
}

fn parse_url(item: Option<&&[u8]>) -> Result<Option<String>, LineError> {
    item.map(|url| {
        std::str::from_utf8(url)
            .map(str::to_owned)
            .map_err(|_| LineError::NotUtf8 { what: "URL" })
    })
    .transpose()
}

fn check_ambiguous(
    lines: &mut Lines,
    name: &str,
    key_id: u32,
    number: usize,
) -> Result<(), LineError> {
    if let Some((_, _, first_line)) = lines
        .keys
        .iter()
        .find(|(n, id, _)| n == name && *id == key_id)
    {
        return Err(LineError::AmbiguousKey {
            name: name.to_owned(),
            key_id,
            first_line: *first_line,
        });
    }
    lines.keys.push((name.to_owned(), key_id, number));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::sign_checkpoint;
    use crate::note::{Note, NoteSigner};
    use crate::witness_fixture::{
        ORIGIN, checkpoint, cosigned, log, other_log, with_lines, witness,
    };
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    fn w(n: u32) -> String {
        witness(n).verifier().vkey()
    }

    fn name(s: &str) -> PolicyName {
        PolicyName(s.as_bytes().to_vec())
    }

    /// The spec's example policy (c2sp.org/tlog-policy "Example policy"), with the
    /// elided `<vkey>`s replaced by the fixture's keys: X1..X3 are w1..w3, Y1..Y3 are
    /// w4..w6.
    fn spec_example() -> String {
        format!(
            "log {}\n\nwitness X1 {}\nwitness X2 {}\nwitness X3 {}\ngroup X-witnesses 2 X1 X2 X3\n\n\
             witness Y1 {}\nwitness Y2 {}\nwitness Y3 {}\ngroup Y-witnesses any Y1 Y2 Y3\n\n\
             group X-and-Y all X-witnesses Y-witnesses\nquorum X-and-Y\n",
            log().verifier().vkey(),
            w(1),
            w(2),
            w(3),
            w(4),
            w(5),
            w(6)
        )
    }

    fn parse(text: &str) -> Policy {
        Policy::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    #[track_caller]
    fn check_line_err(text: &str, line: usize, error: LineError) {
        assert_eq!(
            Policy::parse(text.as_bytes()),
            Err(PolicyParseError::Line { line, error }),
            "{text}"
        );
    }

    #[test]
    fn parses_the_spec_example() {
        let p = parse(&spec_example());
        assert_eq!(p.logs().len(), 1);
        assert_eq!(p.logs()[0].verifier(), &log().verifier());
        assert_eq!(p.logs()[0].url(), None);
        let names: Vec<String> = p.witnesses().iter().map(|w| w.name().to_string()).collect();
        assert_eq!(names, ["X1", "X2", "X3", "Y1", "Y2", "Y3"]);
        assert_eq!(p.witnesses()[3].verifier(), &witness(4).verifier());
        let groups: Vec<(String, Threshold, usize, &[Member])> = p
            .groups()
            .iter()
            .map(|g| {
                (
                    g.name().to_string(),
                    g.threshold(),
                    g.required(),
                    g.members(),
                )
            })
            .collect();
        use Member::{Group as G, Witness as W};
        assert_eq!(
            groups,
            [
                (
                    "X-witnesses".into(),
                    Threshold::AtLeast(2),
                    2,
                    &[W(0), W(1), W(2)][..]
                ),
                (
                    "Y-witnesses".into(),
                    Threshold::Any,
                    1,
                    &[W(3), W(4), W(5)][..]
                ),
                ("X-and-Y".into(), Threshold::All, 2, &[G(0), G(1)][..]),
            ]
        );
        assert_eq!(p.quorum(), Some(G(2)));
        assert_eq!(p.member_name(G(2)), Some(&name("X-and-Y")));
        assert_eq!(p.member_name(G(3)), None);
        // Canonical form: the same lines without the blank ones, grouped by kind.
        assert_eq!(Policy::parse(&p.to_bytes()), Ok(p));
    }

    #[test]
    fn whitespace_comments_urls_and_a_missing_final_newline() {
        let text = format!(
            "# a comment\n  \t# indented comment\n\t log  {}\thttps://log.example/  \n\
             \n   \t\nwitness\tA {} https://a.example/witness\nquorum A",
            log().verifier().vkey(),
            w(1)
        );
        let p = parse(&text);
        assert_eq!(p.logs()[0].url(), Some("https://log.example/"));
        assert_eq!(p.witnesses()[0].url(), Some("https://a.example/witness"));
        assert_eq!(p.quorum(), Some(Member::Witness(0)));
        let canonical = format!(
            "log {} https://log.example/\nwitness A {} https://a.example/witness\nquorum A\n",
            log().verifier().vkey(),
            w(1)
        );
        assert_eq!(String::from_utf8(p.to_bytes()), Ok(canonical));
        // Only a quorum is mandatory; `none` needs no witness.
        let none = parse("quorum none\n");
        assert_eq!((none.logs().len(), none.quorum()), (0, None));
        assert_eq!(none.to_bytes(), b"quorum none\n");
    }

    #[test]
    fn names_are_opaque_octets() {
        // "K" and the Kelvin sign are different names; a non-UTF-8 name is fine.
        let text = [
            format!("witness K {}\nwitness \u{212a} {}\n", w(1), w(2)).into_bytes(),
            b"witness \xff\xfe ".to_vec(),
            w(3).into_bytes(),
            b"\ngroup g 3 K \xe2\x84\xaa \xff\xfe\nquorum g\n# \xff comment\n".to_vec(),
        ]
        .concat();
        let p = Policy::parse(&text).expect("parses");
        assert_eq!(p.witnesses()[2].name().as_bytes(), b"\xff\xfe");
        assert_eq!(p.witnesses()[2].name().to_string(), "\\xff\\xfe");
        assert_eq!(p.groups()[0].required(), 3);
        assert_eq!(Policy::parse(&p.to_bytes()), Ok(p));
    }

    #[test]
    fn line_errors_name_their_line() {
        let lv = log().verifier().vkey();
        let w1 = w(1);
        check_line_err(
            "quorum none\r\n",
            1,
            LineError::ForbiddenByte { byte: b'\r' },
        );
        check_line_err(
            "\n# \x7f\nquorum none\n",
            2,
            LineError::ForbiddenByte { byte: 0x7f },
        );
        check_line_err("# \0\n", 1, LineError::ForbiddenByte { byte: 0 });
        check_line_err(
            "\n\nlogs x\n",
            3,
            LineError::UnknownKeyword {
                keyword: "logs".into(),
            },
        );
        let count = |keyword, items, expected| LineError::WrongItemCount {
            keyword,
            items,
            expected,
        };
        check_line_err("log\n", 1, count("log", 1, "2 or 3"));
        check_line_err(&format!("log {lv} u v\n"), 1, count("log", 4, "2 or 3"));
        check_line_err("witness a\n", 1, count("witness", 2, "3 or 4"));
        check_line_err(
            &format!("witness a {w1} u v\n"),
            1,
            count("witness", 5, "3 or 4"),
        );
        check_line_err(
            &format!("witness a {w1}\ngroup g 1\n"),
            2,
            count("group", 3, "at least 4"),
        );
        check_line_err("quorum\n", 1, count("quorum", 1, "2"));
        check_line_err("quorum none none\n", 1, count("quorum", 3, "2"));
        assert_eq!(
            Policy::parse(b"log a+00000000+\xff\n"),
            Err(PolicyParseError::Line {
                line: 1,
                error: LineError::NotUtf8 { what: "vkey" }
            })
        );
        assert_eq!(
            Policy::parse(&[format!("log {lv} ").as_bytes(), b"https://\xff\n"].concat()),
            Err(PolicyParseError::Line {
                line: 1,
                error: LineError::NotUtf8 { what: "URL" }
            })
        );
        check_line_err(
            "log example.com/log\n",
            1,
            LineError::Vkey(NoteError::MalformedVerifierKey {
                vkey: "example.com/log".into(),
            }),
        );
        check_line_err(
            &format!("log {w1}\n"),
            1,
            LineError::WrongKeyType {
                role: "log",
                found: 4,
                expected: 1,
            },
        );
        check_line_err(
            &format!("witness a {lv}\n"),
            1,
            LineError::WrongKeyType {
                role: "witness",
                found: 1,
                expected: 4,
            },
        );
    }

    #[test]
    fn duplicates_are_refused() {
        let lv = log().verifier().vkey();
        // The same log key under another name is still the same log.
        let renamed = NoteVerifier::new("example.com/renamed", *log().verifier().public_key())
            .expect("name")
            .vkey();
        check_line_err(
            &format!("log {lv}\n# c\nlog {renamed}\n"),
            3,
            LineError::DuplicateLog { first_line: 1 },
        );
        let renamed_witness =
            CosignerVerifier::new("witness.example/other", *witness(1).verifier().public_key())
                .expect("name")
                .vkey();
        check_line_err(
            &format!("witness a {}\nwitness b {renamed_witness}\n", w(1)),
            2,
            LineError::DuplicateWitness {
                first: name("a"),
                first_line: 1,
            },
        );
        // Two keys whose name and key ID collide (seeds found by a birthday search):
        // their signatures could not be told apart.
        let colliding = |seed: &str| {
            let key = SigningKey::from_bytes(&Sha256::digest(seed.as_bytes()).into());
            NoteSigner::new("example.com/log", key)
                .expect("name")
                .verifier()
        };
        let (a, b) = (colliding("collide 41949"), colliding("collide 91695"));
        assert_eq!((a.key_id(), b.key_id()), (0x33e2_2bcb, 0x33e2_2bcb));
        assert_ne!(a.public_key(), b.public_key());
        check_line_err(
            &format!("log {}\nlog {}\n", a.vkey(), b.vkey()),
            2,
            LineError::AmbiguousKey {
                name: "example.com/log".into(),
                key_id: 0x33e2_2bcb,
                first_line: 1,
            },
        );
        check_line_err(
            &format!("witness a {}\nwitness a {}\n", w(1), w(2)),
            2,
            LineError::DuplicateName { name: name("a") },
        );
        check_line_err(
            &format!("witness a {}\ngroup a any a\n", w(1)),
            2,
            LineError::DuplicateName { name: name("a") },
        );
        check_line_err(
            &format!("witness none {}\n", w(1)),
            1,
            LineError::DuplicateName { name: name("none") },
        );
        check_line_err(
            "quorum none\nquorum none\n",
            2,
            LineError::DuplicateQuorum { first_line: 1 },
        );
    }

    #[test]
    fn group_and_quorum_errors() {
        let two = format!("witness a {}\nwitness b {}\n", w(1), w(2));
        check_line_err(
            &format!("{two}group g any a c\nwitness c {}\n", w(3)),
            3,
            LineError::UndefinedName { name: name("c") },
        );
        check_line_err(
            &format!("quorum a\n{two}"),
            1,
            LineError::UndefinedName { name: name("a") },
        );
        check_line_err(
            &format!("{two}group g any a none\n"),
            3,
            LineError::NoneAsMember,
        );
        check_line_err(
            &format!("{two}group g any a b a\n"),
            3,
            LineError::DuplicateMember { name: name("a") },
        );
        // A group cannot name itself: it is not defined before its own line.
        check_line_err(
            &format!("{two}group g any a g\n"),
            3,
            LineError::UndefinedName { name: name("g") },
        );
        for k in [
            "0",
            "3",
            "-1",
            "+1",
            "two",
            "1.0",
            "99999999999999999999999",
        ] {
            check_line_err(
                &format!("{two}group g {k} a b\n"),
                3,
                LineError::InvalidThreshold {
                    threshold: k.into(),
                    members: 2,
                },
            );
        }
        assert_eq!(
            parse(&format!("{two}group g 02 a b\nquorum g\n")).groups()[0].threshold(),
            Threshold::AtLeast(2)
        );
        assert_eq!(
            Policy::parse(two.as_bytes()),
            Err(PolicyParseError::MissingQuorum)
        );
        assert_eq!(Policy::parse(b""), Err(PolicyParseError::MissingQuorum));
        // The quorum may come before later definitions that it does not use.
        assert_eq!(parse(&format!("quorum none\n{two}")).witnesses().len(), 2);
    }

    const T: u64 = 1_700_000_000;

    fn signed_by(p: &Policy, e: &Evaluation) -> Vec<(String, u64)> {
        e.cosignatures()
            .iter()
            .map(|c| {
                assert_eq!(&c.name, p.witnesses()[c.witness].name());
                (c.name.to_string(), c.timestamp)
            })
            .collect()
    }

    fn unmet(quorum: &str, groups: &[(&str, usize, usize)]) -> QuorumUnmet {
        QuorumUnmet {
            quorum: name(quorum),
            unmet: groups
                .iter()
                .map(|(n, witnessed, required)| Shortfall {
                    name: name(n),
                    witnessed: *witnessed,
                    required: *required,
                })
                .collect(),
        }
    }

    #[test]
    fn the_spec_example_quorum() {
        let p = parse(&spec_example());
        let cp = checkpoint(5);
        let e = p
            .evaluate(cosigned(&cp, &[1, 2, 4], T).as_bytes())
            .expect("valid");
        assert_eq!(e.checkpoint().checkpoint(), &cp);
        assert_eq!(
            signed_by(&p, &e),
            [("X1".into(), T), ("X2".into(), T), ("Y1".into(), T)]
        );
        assert_eq!(e.quorum(), Ok(()));
        assert!(p.verify(cosigned(&cp, &[3, 1, 6], T).as_bytes()).is_ok());

        let cases: [(&[u32], QuorumUnmet); 3] = [
            (
                &[1, 4],
                unmet("X-and-Y", &[("X-witnesses", 1, 2), ("X-and-Y", 1, 2)]),
            ),
            (
                &[1, 2, 3],
                unmet("X-and-Y", &[("Y-witnesses", 0, 1), ("X-and-Y", 1, 2)]),
            ),
            (
                &[],
                unmet(
                    "X-and-Y",
                    &[
                        ("X-witnesses", 0, 2),
                        ("Y-witnesses", 0, 1),
                        ("X-and-Y", 0, 2),
                    ],
                ),
            ),
        ];
        for (signers, want) in cases {
            let note = cosigned(&cp, signers, T);
            let e = p.evaluate(note.as_bytes()).expect("evaluates");
            assert_eq!(e.quorum(), Err(&want));
            assert_eq!(
                p.verify(note.as_bytes()),
                Err(PolicyError::QuorumUnmet(want))
            );
        }
        assert_eq!(
            unmet("q", &[("X-witnesses", 1, 2), ("q", 1, 2)]).to_string(),
            "quorum q is not met: X-witnesses has 1 of 2, q has 1 of 2"
        );
    }

    #[test]
    fn unmet_lists_only_groups_the_quorum_depends_on() {
        let p = parse(&format!(
            "witness a {}\nwitness b {}\ngroup unused all a b\ngroup inner all a\n\
             group q any inner\nquorum q\n",
            w(1),
            w(2)
        ));
        let e = p
            .evaluate_with_log(
                cosigned(&checkpoint(1), &[2], T).as_bytes(),
                &log().verifier(),
                ORIGIN,
            )
            .expect("evaluates");
        assert_eq!(
            e.quorum(),
            Err(&unmet("q", &[("inner", 0, 1), ("q", 0, 1)]))
        );
        let single = parse(&format!("witness a {}\nquorum a\n", w(1)));
        let e = single
            .evaluate_with_log(
                cosigned(&checkpoint(1), &[2], T).as_bytes(),
                &log().verifier(),
                ORIGIN,
            )
            .expect("evaluates");
        assert_eq!(e.quorum(), Err(&unmet("a", &[("a", 0, 1)])));
        assert!(
            single
                .verify_with_log(
                    cosigned(&checkpoint(1), &[1], T).as_bytes(),
                    &log().verifier(),
                    ORIGIN
                )
                .is_ok()
        );
    }

    #[test]
    fn quorum_none_needs_only_the_log() {
        let p = parse(&format!(
            "log {}\nwitness a {}\nquorum none\n",
            log().verifier().vkey(),
            w(1)
        ));
        let e = p
            .verify(cosigned(&checkpoint(3), &[], T).as_bytes())
            .expect("valid");
        assert!(e.cosignatures().is_empty());
        // Known cosignatures are still checked and reported.
        let e = p
            .verify(cosigned(&checkpoint(3), &[1], T).as_bytes())
            .expect("valid");
        assert_eq!(signed_by(&p, &e), [("a".into(), T)]);
        assert_eq!(e.into_checkpoint().checkpoint(), &checkpoint(3));
    }

    #[test]
    fn unknown_lines_are_ignored_and_a_bad_known_line_rejects_the_note() {
        let p = parse(&format!(
            "log {}\nwitness a {}\nquorum a\n",
            log().verifier().vkey(),
            w(1)
        ));
        let cp = checkpoint(7);
        // A witness the policy does not know, and a line with a's name but another key ID.
        let stranger = witness(9).sign(&cp, T).expect("signs");
        let mut wrong_id = witness(1).sign(&cp, T).expect("signs");
        wrong_id.key_id ^= 1;
        wrong_id.signature[20] ^= 1;
        let note = with_lines(&cosigned(&cp, &[1], T), &[stranger, wrong_id]);
        assert!(p.verify(note.as_bytes()).is_ok());

        let mut bad = witness(1).sign(&cp, T + 1).expect("signs");
        bad.signature[20] ^= 1;
        let note = with_lines(&cosigned(&cp, &[1], T), &[bad]);
        assert_eq!(
            p.evaluate(note.as_bytes()),
            Err(PolicyError::Cosignature {
                witness: name("a"),
                error: CosignatureError::InvalidSignature {
                    name: "witness.example/w1".into(),
                    key_id: witness(1).key_id(),
                    timestamp: T + 1
                }
            })
        );
        // Two valid lines by one witness count once, with the later time.
        let later = witness(1).sign(&cp, T + 5).expect("signs");
        let note = with_lines(&cosigned(&cp, &[1], T), &[later]);
        let e = p.verify(note.as_bytes()).expect("valid");
        assert_eq!(signed_by(&p, &e), [("a".into(), T + 5)]);
    }

    #[test]
    fn the_log_signature_comes_first() {
        let p = parse(&format!(
            "log {}\nwitness a {}\nquorum none\n",
            log().verifier().vkey(),
            w(1)
        ));
        let cp = checkpoint(2);
        // Signed by another log only: its origin is not a log of the policy.
        let other = crate::checkpoint::Checkpoint {
            origin: other_log().name().into(),
            ..cp.clone()
        };
        let note = sign_checkpoint(&other, &other_log()).expect("signs");
        assert_eq!(
            p.evaluate(note.as_bytes()).map(|e| e.cosignatures().len()),
            Err(PolicyError::UnknownOrigin {
                origin: "example.com/other-log".into()
            })
        );
        // Our origin, but only a witness signed it.
        let only_witness = Note {
            text: cp.to_text(),
            signatures: vec![witness(1).sign(&cp, T).expect("signs")],
        }
        .to_string();
        assert_eq!(
            p.evaluate(only_witness.as_bytes())
                .map(|e| e.cosignatures().len()),
            Err(PolicyError::Checkpoint(CheckpointError::Note(
                NoteError::NoKnownSignature
            )))
        );
        // A bad log signature.
        let mut note = Note::parse(cosigned(&cp, &[1], T).as_bytes()).expect("parses");
        note.signatures[0].signature[3] ^= 1;
        assert!(matches!(
            p.evaluate(note.to_string().as_bytes()),
            Err(PolicyError::Checkpoint(CheckpointError::Note(
                NoteError::InvalidSignature { .. }
            )))
        ));
        assert!(matches!(
            p.evaluate(b"garbage"),
            Err(PolicyError::UnknownOrigin { .. })
        ));
    }

    #[test]
    fn evaluate_with_log_uses_the_given_key() {
        // No log line: the application knows its log.
        let p = parse(&format!("witness a {}\nquorum a\n", w(1)));
        let note = cosigned(&checkpoint(4), &[1], T);
        assert!(matches!(
            p.evaluate(note.as_bytes()),
            Err(PolicyError::UnknownOrigin { .. })
        ));
        let e = p
            .verify_with_log(note.as_bytes(), &log().verifier(), ORIGIN)
            .expect("valid");
        assert_eq!(signed_by(&p, &e), [("a".into(), T)]);
        assert_eq!(
            p.evaluate_with_log(note.as_bytes(), &log().verifier(), "example.com/x")
                .map(|e| e.cosignatures().len()),
            Err(PolicyError::Checkpoint(CheckpointError::OriginMismatch {
                expected: "example.com/x".into(),
                found: ORIGIN.into()
            }))
        );
        assert_eq!(
            p.verify_with_log(
                cosigned(&checkpoint(4), &[], T).as_bytes(),
                &log().verifier(),
                ORIGIN
            ),
            Err(PolicyError::QuorumUnmet(unmet("a", &[("a", 0, 1)])))
        );
    }

    #[test]
    fn check_quorum_after_dropping_old_cosignatures() {
        let p = parse(&spec_example());
        let cp = checkpoint(5);
        let note = with_lines(
            &cosigned(&cp, &[1, 4], T),
            &[witness(2).sign(&cp, T - 3600).expect("signs")],
        );
        let e = p.verify(note.as_bytes()).expect("valid");
        let fresh: Vec<WitnessCosignature> = e
            .cosignatures()
            .iter()
            .filter(|c| c.timestamp >= T - 60)
            .cloned()
            .collect();
        assert_eq!(
            p.check_quorum(&fresh),
            Err(unmet(
                "X-and-Y",
                &[("X-witnesses", 1, 2), ("X-and-Y", 1, 2)]
            ))
        );
        assert_eq!(p.check_quorum(e.cosignatures()), Ok(()));
    }

    /// A random well-formed policy: `n` witnesses of the fixture, groups over earlier
    /// names, a quorum.
    fn any_policy_text() -> impl Strategy<Value = String> {
        (
            1..6usize,
            proptest::collection::vec(
                (
                    0..3u8,
                    proptest::collection::vec(any::<prop::sample::Index>(), 1..4),
                ),
                0..4,
            ),
            any::<prop::sample::Index>(),
            any::<bool>(),
        )
            .prop_map(|(n, groups, quorum, with_log)| {
                let mut text = String::new();
                if with_log {
                    text.push_str(&format!(
                        "log {} https://log.example/\n",
                        log().verifier().vkey()
                    ));
                }
                let mut names: Vec<String> = Vec::new();
                for i in 0..n {
                    text.push_str(&format!(
                        "witness w{i} {}\n",
                        w(u32::try_from(i).unwrap_or(0) + 1)
                    ));
                    names.push(format!("w{i}"));
                }
                for (g, (kind, picks)) in groups.iter().enumerate() {
                    let mut members: Vec<&String> = picks.iter().map(|p| p.get(&names)).collect();
                    members.sort();
                    members.dedup();
                    let threshold = match kind {
                        0 => "all".to_owned(),
                        1 => "any".to_owned(),
                        _ => members.len().to_string(),
                    };
                    let members: Vec<&str> = members.iter().map(|s| s.as_str()).collect();
                    text.push_str(&format!("group g{g} {threshold} {}\n", members.join(" ")));
                    names.push(format!("g{g}"));
                }
                text.push_str(&format!("quorum {}\n", quorum.get(&names)));
                text
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Policy::parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_near_policies(
            s in "((log|witness|group|quorum|#)[ \t][a-z0-9 \t]{0,12}\n){0,6}"
        ) {
            if let Ok(p) = Policy::parse(s.as_bytes()) {
                prop_assert_eq!(Policy::parse(&p.to_bytes()), Ok(p));
            }
        }

        #[test]
        fn to_bytes_is_canonical(text in any_policy_text()) {
            let p = Policy::parse(text.as_bytes());
            prop_assert!(p.is_ok(), "{:?}: {}", p, text);
            let p = p.unwrap_or_else(|_| parse("quorum none\n"));
            let bytes = p.to_bytes();
            prop_assert_eq!(String::from_utf8_lossy(&bytes), text.as_str());
        }

        #[test]
        fn more_cosignatures_never_unmeet_the_quorum(
            text in any_policy_text(),
            signed in proptest::collection::vec(any::<bool>(), 5),
            extra in 0..5usize,
        ) {
            let p = parse(&text);
            let cos = |pick: &dyn Fn(usize) -> bool| -> Vec<WitnessCosignature> {
                (0..p.witnesses().len()).filter(|i| pick(*i)).map(|i| WitnessCosignature {
                    witness: i,
                    name: p.witnesses()[i].name().clone(),
                    timestamp: T,
                }).collect()
            };
            let fewer = cos(&|i| signed[i]);
            let more = cos(&|i| signed[i] || i == extra);
            if p.check_quorum(&fewer).is_ok() {
                prop_assert_eq!(p.check_quorum(&more), Ok(()));
            }
            // Everyone signing always meets a quorum; no one never does (but `none`).
            prop_assert_eq!(p.check_quorum(&cos(&|_| true)), Ok(()));
            prop_assert_eq!(p.check_quorum(&[]).is_ok(), p.quorum().is_none());
        }
    }
}
