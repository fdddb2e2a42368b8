//! The C2SP witness protocol's `add-checkpoint` exchange (c2sp.org/tlog-witness), as
//! values and one pure decision, so that an HTTP server or client is a thin wrapper.
//!
//! - [`AddCheckpointRequest`]: the request body, `old <size>\n`, up to
//!   [`MAX_PROOF_LINES`] consistency proof hashes in base64 one per line, a blank
//!   line, then the signed checkpoint note. Parsed strictly and written back byte
//!   for byte.
//! - [`decide`]: what a witness answers, given the keys it trusts for the request's
//!   origin and the latest checkpoint it cosigned for it: [`Accepted`] (store it,
//!   then cosign: `200`) or a [`Refusal`] carrying its HTTP status (`400`, `403`,
//!   `404`, `409` with the witness's size, `422`).
//! - [`AddCheckpointResponse`]: the `200` body, one or more cosignature lines; the
//!   log checks a witness's lines with [`AddCheckpointResponse::verify`] and adds
//!   them to its note with [`cosigned_note`].
//! - [`conflict_body`] / [`parse_conflict_body`]: the `409` body,
//!   `text/x.tlog.size` ([`TLOG_SIZE_CONTENT_TYPE`]).
//! - [`origin_hash`]: the path element of the monitoring API's
//!   `<origin hash>/checkpoint`.
//!
//! **API boundary:** the spec requires the witness to compare the old size with its
//! stored size and store the new checkpoint atomically, and durably before answering.
//! [`decide`] is a pure function of the stored state it is given; the server must run
//! it and the store update under one lock or compare-and-set on that state, so two
//! racing requests can never both advance from the same size.
//!
//! Interpretations, where the spec leaves room:
//! - Order of checks: body syntax (400), origin known (404), log signature (403),
//!   checkpoint text (400; a size-0 checkpoint with another root than the empty
//!   tree's is 422), old size above the checkpoint's (400), old size not the stored
//!   one (409), then the consistency proof (422).
//! - A note that does not parse as a signed note is a malformed body (400), while a
//!   known log key's signature that fails is 403, as the spec says.
//! - The origin is read from the note's first line before any signature is
//!   checked, only to pick the keys (the spec's "checkpoint origin is unknown").

use std::fmt;

use crate::checkpoint::{
    CheckpointError, VerifiedCheckpoint, parse_decimal, verify_checkpoint_any,
};
use crate::cosignature::{CosignatureError, CosignerSigner, CosignerVerifier};
use crate::hash::{EMPTY_ROOT, Hash};
use crate::note::{MAX_SIGNATURES, Note, NoteError, NoteSignature, NoteVerifier};
use crate::tree::{VerifyError, verify_consistency};
use sha2::{Digest, Sha256};

/// Most consistency proof lines a request may carry (c2sp.org/tlog-witness).
pub const MAX_PROOF_LINES: usize = 63;

/// `Content-Type` of a `409 Conflict` body: the witness's tree size.
pub const TLOG_SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";

/// The origin hash of the monitoring API, `GET <monitoring prefix>/<origin hash>/checkpoint`
/// (c2sp.org/tlog-witness "Monitor Retrieval Mechanism"): SHA-256 of the origin,
/// lowercase hex.
pub fn origin_hash(origin: &str) -> String {
    hex::encode(Sha256::digest(origin.as_bytes()))
}

fn echo(s: &str) -> String {
    s.chars().take(100).collect()
}

/// Why an `add-checkpoint` request body is malformed (`400 Bad Request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not valid UTF-8.
    #[error("request body is not valid UTF-8 (valid up to byte {valid_up_to})")]
    NotUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The first line is not `old <size>` with a canonical decimal `u64`.
    #[error("first line is not 'old <size>': {line:?}")]
    InvalidOldSize {
        /// The line (truncated to 100 characters).
        line: String,
    },
    /// A proof line is not one hash in canonical standard base64.
    #[error("consistency proof line {number} is not a base64 hash: {line:?}")]
    InvalidProofLine {
        /// One-based number of the proof line (the body's line `number + 1`).
        number: usize,
        /// The line (truncated to 100 characters).
        line: String,
    },
    /// More than [`MAX_PROOF_LINES`] proof lines.
    #[error("more than {MAX_PROOF_LINES} consistency proof lines")]
    TooManyProofLines,
    /// The body ends before the blank line that precedes the checkpoint.
    #[error("request body has no blank line before the checkpoint")]
    MissingBlankLine,
    /// What follows the blank line is not a signed note.
    #[error("checkpoint note: {0}")]
    Note(#[source] NoteError),
}

/// An `add-checkpoint` request: the size the log believes the witness holds, a
/// consistency proof from it, and the signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpointRequest {
    old_size: u64,
    proof: Vec<Hash>,
    /// The signed note, which parses as a [`Note`]; not verified.
    checkpoint: String,
}

impl AddCheckpointRequest {
    /// A request from its parts.
    ///
    /// # Errors
    /// [`RequestError::TooManyProofLines`] for a proof of more than
    /// [`MAX_PROOF_LINES`] hashes; [`RequestError::Note`] when `checkpoint` is not a
    /// signed note (nothing is verified).
    pub fn new(
        old_size: u64,
        proof: Vec<Hash>,
        checkpoint: String,
    ) -> Result<AddCheckpointRequest, RequestError> {
        if proof.len() > MAX_PROOF_LINES {
            return Err(RequestError::TooManyProofLines);
        }
        Note::parse(checkpoint.as_bytes()).map_err(RequestError::Note)?;
        Ok(AddCheckpointRequest {
            old_size,
            proof,
            checkpoint,
        })
    }

    /// Parses a request body strictly: `old <size>` (decimal, no leading zeros), at most
    /// [`MAX_PROOF_LINES`] lines of canonical padded standard base64 of 32 bytes, an
    /// empty line, and a signed note ([`Note::parse`]). Whatever parses,
    /// [`AddCheckpointRequest::to_bytes`] writes back byte for byte.
    ///
    /// # Errors
    /// A [`RequestError`] naming the first problem found.
    pub fn parse(body: &[u8]) -> Result<AddCheckpointRequest, RequestError> {
        let body = std::str::from_utf8(body).map_err(|e| RequestError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        let (old, mut rest) = body
            .split_once('\n')
            .ok_or_else(|| RequestError::InvalidOldSize { line: echo(body) })?;
        let old_size = old
            .strip_prefix("old ")
            .and_then(parse_decimal)
            .ok_or_else(|| RequestError::InvalidOldSize { line: echo(old) })?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or(RequestError::MissingBlankLine)?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(RequestError::TooManyProofLines);
            }
            proof.push(
                Hash::from_base64(line).map_err(|_| RequestError::InvalidProofLine {
                    number: proof.len() + 1,
                    line: echo(line),
                })?,
            );
        }
        AddCheckpointRequest::new(old_size, proof, rest.to_owned())
    }

    /// The body: [`fmt::Display`] as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// The tree size of the previous checkpoint, as the log believes the witness holds it.
    pub fn old_size(&self) -> u64 {
        self.old_size
    }

    /// The consistency proof from [`AddCheckpointRequest::old_size`] to the checkpoint.
    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }

    /// The signed checkpoint note, as sent (not verified).
    pub fn checkpoint_note(&self) -> &str {
        &self.checkpoint
    }

    /// The checkpoint's origin, its first line, *unverified*: only for choosing the
    /// log keys to verify it with.
    pub fn origin(&self) -> &str {
        self.checkpoint.split('\n').next().unwrap_or_default()
    }
}

impl fmt::Display for AddCheckpointRequest {
    /// The request body.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "old {}", self.old_size)?;
        for hash in &self.proof {
            writeln!(f, "{hash}")?;
        }
        writeln!(f)?;
        f.write_str(&self.checkpoint)
    }
}

/// The latest checkpoint a witness cosigned for an origin: all it must remember.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CosignedState {
    /// Its tree size.
    pub size: u64,
    /// Its root hash.
    pub root: Hash,
}

/// A request the witness may cosign: it must store the new state (atomically with
/// the check, durably), then answer with [`Accepted::cosign`]'s lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    checkpoint: VerifiedCheckpoint,
}

impl Accepted {
    /// The checkpoint, verified under the log's key.
    pub fn checkpoint(&self) -> &VerifiedCheckpoint {
        &self.checkpoint
    }

    /// The state to store for the origin before answering.
    pub fn new_state(&self) -> CosignedState {
        let cp = self.checkpoint.checkpoint();
        CosignedState {
            size: cp.size,
            root: cp.root,
        }
    }

    /// The cosignature line of `signer` at `timestamp` (POSIX seconds, from the
    /// witness's clock). The `200` body is [`AddCheckpointResponse::new`] of the lines
    /// of each of the witness's keys.
    ///
    /// # Errors
    /// [`CosignatureError::TimestampOutOfRange`] for 0 or above 2^63 - 1.
    pub fn cosign(
        &self,
        signer: &CosignerSigner,
        timestamp: u64,
    ) -> Result<NoteSignature, CosignatureError> {
        signer.sign(self.checkpoint.checkpoint(), timestamp)
    }
}

/// Why a witness refuses an `add-checkpoint` request; [`Refusal::status`] is the HTTP
/// status the spec assigns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The body is malformed (400).
    #[error("malformed request: {0}")]
    Malformed(#[source] RequestError),
    /// The witness trusts no key for the checkpoint's origin (404).
    #[error("unknown origin {origin:?}")]
    UnknownOrigin {
        /// The origin line (truncated to 100 characters).
        origin: String,
    },
    /// No signature by a trusted log key, or one that fails to verify (403).
    #[error("checkpoint not signed by the log: {0}")]
    Unauthenticated(#[source] NoteError),
    /// The log's signature verifies but the text is not a checkpoint (400), or, for
    /// [`CheckpointError::EmptyTreeRoot`], a size-0 checkpoint whose root is not the
    /// empty tree's (422).
    #[error("invalid checkpoint: {0}")]
    InvalidCheckpoint(#[source] CheckpointError),
    /// The old size is larger than the checkpoint's size (400).
    #[error("old size {old_size} is larger than the checkpoint size {size}")]
    OldSizeTooLarge {
        /// The request's old size.
        old_size: u64,
        /// The checkpoint's size.
        size: u64,
        /// The checkpoint, validly signed by the log.
        checkpoint: Box<VerifiedCheckpoint>,
    },
    /// The old size is not the size of the latest checkpoint the witness cosigned
    /// (409, body [`conflict_body`] of `latest_size`).
    #[error("old size {old_size} is not the witness's size {latest_size}")]
    Conflict {
        /// The request's old size.
        old_size: u64,
        /// The size the witness holds (0 if it never cosigned for the origin).
        latest_size: u64,
        /// The checkpoint, validly signed by the log.
        checkpoint: Box<VerifiedCheckpoint>,
    },
    /// The consistency proof does not verify from the witness's checkpoint, or is not
    /// empty from size 0 (422).
    #[error("checkpoint is not consistent with the witness's: {error}")]
    Inconsistent {
        /// Why the proof failed.
        error: VerifyError,
        /// The checkpoint, validly signed by the log.
        checkpoint: Box<VerifiedCheckpoint>,
    },
    /// The checkpoint has the witness's size but another root (422): with the
    /// checkpoint the witness cosigned, proof that the log forked.
    #[error("checkpoint of size {size} has root {root}, the witness cosigned {latest_root}")]
    Fork {
        /// The shared size.
        size: u64,
        /// The root the witness cosigned.
        latest_root: Hash,
        /// The root in the request.
        root: Hash,
        /// The checkpoint, validly signed by the log.
        checkpoint: Box<VerifiedCheckpoint>,
    },
}

impl Refusal {
    /// The HTTP status code c2sp.org/tlog-witness assigns to this refusal.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Malformed(_) | Refusal::OldSizeTooLarge { .. } => 400,
            Refusal::InvalidCheckpoint(CheckpointError::EmptyTreeRoot { .. }) => 422,
            Refusal::InvalidCheckpoint(_) => 400,
            Refusal::UnknownOrigin { .. } => 404,
            Refusal::Unauthenticated(_) => 403,
            Refusal::Conflict { .. } => 409,
            Refusal::Inconsistent { .. } | Refusal::Fork { .. } => 422,
        }
    }

    /// For a `409`, the witness's size, to send as the [`conflict_body`].
    pub fn conflict_size(&self) -> Option<u64> {
        match self {
            Refusal::Conflict { latest_size, .. } => Some(*latest_size),
            _ => None,
        }
    }

    /// The checkpoint, when the log's signature verified before the refusal: a request
    /// the spec allows the witness to keep, as it may prove the log misbehaved.
    pub fn signed_checkpoint(&self) -> Option<&VerifiedCheckpoint> {
        match self {
            Refusal::OldSizeTooLarge { checkpoint, .. }
            | Refusal::Conflict { checkpoint, .. }
            | Refusal::Inconsistent { checkpoint, .. }
            | Refusal::Fork { checkpoint, .. } => Some(checkpoint),
            Refusal::Malformed(_)
            | Refusal::UnknownOrigin { .. }
            | Refusal::Unauthenticated(_)
            | Refusal::InvalidCheckpoint(_) => None,
        }
    }
}

/// What a witness answers to `request`, given the log keys it trusts for the request's
/// origin ([`AddCheckpointRequest::origin`]; empty when it knows no such log) and the
/// latest checkpoint it cosigned for that origin (`None` if none).
///
/// Runs the checks of c2sp.org/tlog-witness `add-checkpoint` in the order the module
/// documents. On [`Accepted`] the caller stores [`Accepted::new_state`] (atomically
/// with this check) and answers [`Accepted::cosign`].
///
/// # Errors
/// The [`Refusal`] to answer.
pub fn decide(
    request: &AddCheckpointRequest,
    log_keys: &[NoteVerifier],
    latest: Option<CosignedState>,
) -> Result<Accepted, Refusal> {
    let origin = request.origin();
    if log_keys.is_empty() {
        return Err(Refusal::UnknownOrigin {
            origin: echo(origin),
        });
    }
    let checkpoint = match verify_checkpoint_any(request.checkpoint.as_bytes(), log_keys, origin) {
        Ok(cp) => cp,
        Err(CheckpointError::Note(e)) => {
            return Err(match e {
                // Two trusted keys sharing a name and key ID is the witness's
                // misconfiguration; nothing is accepted under it.
                NoteError::InvalidSignature { .. }
                | NoteError::NoKnownSignature
                | NoteError::AmbiguousVerifiers { .. } => Refusal::Unauthenticated(e),
                // The note parsed when the request did; kept exhaustive all the same.
                other => Refusal::Malformed(RequestError::Note(other)),
            });
        }
        Err(e) => return Err(Refusal::InvalidCheckpoint(e)),
    };
    let (size, root) = (checkpoint.checkpoint().size, checkpoint.checkpoint().root);
    let old_size = request.old_size;
    let checkpoint = Box::new(checkpoint);
    if old_size > size {
        return Err(Refusal::OldSizeTooLarge {
            old_size,
            size,
            checkpoint,
        });
    }
    let latest = latest.unwrap_or(CosignedState {
        size: 0,
        root: EMPTY_ROOT,
    });
    if old_size != latest.size {
        return Err(Refusal::Conflict {
            old_size,
            latest_size: latest.size,
            checkpoint,
        });
    }
    if old_size == size && old_size != 0 && latest.root != root {
        return Err(Refusal::Fork {
            size,
            latest_root: latest.root,
            root,
            checkpoint,
        });
    }
    // From 0 the proof must be empty (the empty tree is consistent with any tree);
    // verify_consistency checks that, with the empty tree's root as the old root.
    let old_root = if old_size == 0 {
        EMPTY_ROOT
    } else {
        latest.root
    };
    if let Err(error) = verify_consistency(old_size, size, &old_root, &root, &request.proof) {
        return Err(Refusal::Inconsistent { error, checkpoint });
    }
    Ok(Accepted {
        checkpoint: *checkpoint,
    })
}

/// The body of a `409 Conflict`: the witness's size in decimal and a newline.
pub fn conflict_body(latest_size: u64) -> String {
    format!("{latest_size}\n")
}

/// Why a `409` body or a `200` body from a witness is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// A `409` body that is not a canonical decimal `u64` and a newline.
    #[error("409 body is not '<size>\\n': {body:?}")]
    InvalidConflictBody {
        /// The body (lossy UTF-8, truncated to 100 characters).
        body: String,
    },
    /// The body is not valid UTF-8.
    #[error("response is not valid UTF-8 (valid up to byte {valid_up_to})")]
    NotUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The body is empty or does not end in a newline.
    #[error("response has no signature line, or its last line lacks a newline")]
    Unterminated,
    /// A response of no signature line.
    #[error("response has no signature line")]
    Empty,
    /// A line is not a note signature line.
    #[error("response line {number} is not a signature line: {line:?}")]
    MalformedLine {
        /// One-based line number.
        number: usize,
        /// The line (truncated to 100 characters).
        line: String,
    },
    /// More than [`MAX_SIGNATURES`] lines.
    #[error("response has more than {MAX_SIGNATURES} signature lines")]
    TooManyLines,
    /// No line is by the witness key asked.
    #[error("no cosignature by {name:?} ({key_id:08x})")]
    NoCosignature {
        /// The witness key name.
        name: String,
        /// The witness key ID.
        key_id: u32,
    },
    /// A line by the witness key fails to verify.
    #[error("cosignature: {0}")]
    Cosignature(#[from] CosignatureError),
    /// A cosignature by the witness key with timestamp 0, which the spec forbids in a
    /// response.
    #[error("cosignature by {name:?} has timestamp 0")]
    ZeroTimestamp {
        /// The witness key name.
        name: String,
    },
}

/// Parses a `409` body: a canonical decimal size and a newline.
///
/// # Errors
/// [`ResponseError::InvalidConflictBody`].
pub fn parse_conflict_body(body: &[u8]) -> Result<u64, ResponseError> {
    std::str::from_utf8(body)
        .ok()
        .and_then(|s| s.strip_suffix('\n'))
        .and_then(parse_decimal)
        .ok_or_else(|| ResponseError::InvalidConflictBody {
            body: echo(&String::from_utf8_lossy(body)),
        })
}

/// A `200` response to `add-checkpoint`: one or more note signature lines, the
/// witness's cosignatures of the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddCheckpointResponse {
    signatures: Vec<NoteSignature>,
}

/// One cosignature line from a witness's response, verified over the checkpoint sent:
/// only [`AddCheckpointResponse::verify`] makes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnedCosignature {
    signature: NoteSignature,
    timestamp: u64,
}

impl ReturnedCosignature {
    /// The line, to add to the log's note ([`cosigned_note`]).
    pub fn signature(&self) -> &NoteSignature {
        &self.signature
    }

    /// Its timestamp, POSIX seconds (never 0).
    pub fn timestamp(&self) -> u64 {
        self.timestamp
    }
}

/// The checkpoint's signed note with `cosignatures` appended (each line once: a line
/// the note already carries is not repeated), as a log publishes its witnessed
/// checkpoint and a witness serves it to monitors.
pub fn cosigned_note(
    checkpoint: &VerifiedCheckpoint,
    cosignatures: &[ReturnedCosignature],
) -> String {
    let mut note = checkpoint.note().clone();
    for c in cosignatures {
        if !note.signatures.contains(&c.signature) {
            note.signatures.push(c.signature.clone());
        }
    }
    note.to_string()
}

impl AddCheckpointResponse {
    /// A response of `signatures`, in order.
    ///
    /// # Errors
    /// [`ResponseError::Empty`] for no line, [`ResponseError::TooManyLines`] for more
    /// than [`MAX_SIGNATURES`].
    pub fn new(signatures: Vec<NoteSignature>) -> Result<AddCheckpointResponse, ResponseError> {
        if signatures.is_empty() {
            return Err(ResponseError::Empty);
        }
        if signatures.len() > MAX_SIGNATURES {
            return Err(ResponseError::TooManyLines);
        }
        Ok(AddCheckpointResponse { signatures })
    }

    /// The signature lines, in order.
    pub fn signatures(&self) -> &[NoteSignature] {
        &self.signatures
    }

    /// Parses a `200` body: 1 to [`MAX_SIGNATURES`] lines, each a note signature line
    /// ([`NoteSignature::parse_line`]) ending in a newline. Whatever parses displays
    /// back byte for byte.
    ///
    /// # Errors
    /// A [`ResponseError`] naming the first problem found.
    pub fn parse(body: &[u8]) -> Result<AddCheckpointResponse, ResponseError> {
        let body = std::str::from_utf8(body).map_err(|e| ResponseError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        let lines = body.strip_suffix('\n').ok_or(ResponseError::Unterminated)?;
        let mut signatures = Vec::new();
        for (i, line) in lines.split('\n').enumerate() {
            if i == MAX_SIGNATURES {
                return Err(ResponseError::TooManyLines);
            }
            signatures.push(NoteSignature::parse_line(line).ok_or_else(|| {
                ResponseError::MalformedLine {
                    number: i + 1,
                    line: echo(line),
                }
            })?);
        }
        AddCheckpointResponse::new(signatures)
    }

    /// The body: [`fmt::Display`] as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// What a log keeps from a witness's answer: the lines by `witness` (name and key
    /// ID), each verified over the checkpoint it sent; lines by other keys are ignored,
    /// as the spec requires.
    ///
    /// # Errors
    /// [`ResponseError::Cosignature`] when a line by `witness` fails to verify;
    /// [`ResponseError::ZeroTimestamp`] for a timestamp of 0;
    /// [`ResponseError::NoCosignature`] when no line is by `witness`.
    pub fn verify(
        &self,
        checkpoint: &VerifiedCheckpoint,
        witness: &CosignerVerifier,
    ) -> Result<Vec<ReturnedCosignature>, ResponseError> {
        let text = &checkpoint.note().text;
        let mut out = Vec::new();
        for sig in self.signatures.iter().filter(|s| witness.is_signer_of(s)) {
            let timestamp = witness.verify(text, sig)?;
            if timestamp == 0 {
                return Err(ResponseError::ZeroTimestamp {
                    name: echo(witness.name()),
                });
            }
            out.push(ReturnedCosignature {
                signature: sig.clone(),
                timestamp,
            });
        }
        if out.is_empty() {
            return Err(ResponseError::NoCosignature {
                name: echo(witness.name()),
                key_id: witness.key_id(),
            });
        }
        Ok(out)
    }
}

impl fmt::Display for AddCheckpointResponse {
    /// The body: one signature line per cosignature, each ending in a newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for sig in &self.signatures {
            writeln!(f, "{sig}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{Checkpoint, sign_checkpoint};
    use crate::cosignature::{COSIGNATURE_V1_LEN, signed_message};
    use crate::hash::leaf_hash;
    use crate::tree::{MemNodes, prove_consistency, root};
    use crate::witness_fixture::{
        ORIGIN, checkpoint_with_root, log, other_log, witness, witness_key,
    };
    use ed25519_dalek::Signer as _;
    use proptest::prelude::*;

    /// The spec's example request body (c2sp.org/tlog-witness, "add-checkpoint",
    /// C2SP/C2SP at 5ba5ee8), byte for byte.
    const SPEC_REQUEST: &str = "old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

\u{2014} example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
\u{2014} example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=
";

    /// The spec's example response body (same section), byte for byte.
    const SPEC_RESPONSE: &str = "\u{2014} witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvVjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==
\u{2014} witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt64vWhO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==
\u{2014} witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKbYKA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==
";

    const T: u64 = 1_700_000_000;

    /// The vectors' tree: leaf i is the decimal `i`.
    fn tree(size: u64) -> MemNodes {
        MemNodes::new(
            (0..size)
                .map(|i| leaf_hash(i.to_string().as_bytes()))
                .collect(),
        )
    }

    fn real_checkpoint(size: u64) -> Checkpoint {
        checkpoint_with_root(size, root(size, &tree(64)).expect("root"))
    }

    fn state(size: u64) -> CosignedState {
        let cp = real_checkpoint(size);
        CosignedState {
            size: cp.size,
            root: cp.root,
        }
    }

    fn request(old: u64, new: u64) -> AddCheckpointRequest {
        let proof = if old == 0 {
            vec![]
        } else {
            prove_consistency(old, new, &tree(64)).expect("proof")
        };
        let note = sign_checkpoint(&real_checkpoint(new), &log()).expect("signs");
        AddCheckpointRequest::new(old, proof, note).expect("request")
    }

    fn keys() -> Vec<NoteVerifier> {
        vec![log().verifier()]
    }

    #[test]
    fn parses_the_spec_example_request() {
        let r = AddCheckpointRequest::parse(SPEC_REQUEST.as_bytes()).expect("parses");
        assert_eq!(r.old_size(), 20_852_014);
        assert_eq!(r.proof().len(), 4);
        assert_eq!(
            r.proof()[2].to_base64(),
            "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8="
        );
        assert_eq!(r.origin(), "example.com/behind-the-sofa");
        assert!(
            r.checkpoint_note()
                .starts_with("example.com/behind-the-sofa\n20852163\n")
        );
        assert_eq!(r.to_bytes(), SPEC_REQUEST.as_bytes());
        // We hold no key for the example log: a witness of ours answers 404.
        assert_eq!(
            decide(&r, &[], None)
                .map(|a| a.new_state())
                .map_err(|e| e.status()),
            Err(404)
        );
    }

    #[test]
    fn parses_the_spec_example_response() {
        let r = AddCheckpointResponse::parse(SPEC_RESPONSE.as_bytes()).expect("parses");
        let names: Vec<&str> = r.signatures().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "witness.example/w1",
                "witness.example/w1",
                "witness.example/w2"
            ]
        );
        assert!(
            r.signatures()
                .iter()
                .all(|s| s.signature.len() == COSIGNATURE_V1_LEN)
        );
        assert_eq!(r.to_bytes(), SPEC_RESPONSE.as_bytes());
        // Its lines are placeholders (the first claims a time above 2^63 - 1); our
        // witness's key ID is not among them, so none is ours.
        let cp = decide(&request(0, 5), &keys(), None).expect("accepted");
        assert_eq!(
            r.verify(cp.checkpoint(), &witness(1).verifier()),
            Err(ResponseError::NoCosignature {
                name: "witness.example/w1".into(),
                key_id: witness(1).key_id()
            })
        );
    }

    #[test]
    fn request_parse_errors() {
        let good = request(3, 7).to_string();
        let note = request(3, 7).checkpoint_note().to_owned();
        let hash = leaf_hash(b"x").to_base64();
        let old = |line: &str| RequestError::InvalidOldSize { line: line.into() };
        let cases: Vec<(String, RequestError)> = vec![
            ("".into(), old("")),
            ("old 3".into(), old("old 3")),
            (format!("old 03\n\n{note}"), old("old 03")),
            (format!("old -1\n\n{note}"), old("old -1")),
            (format!("old  3\n\n{note}"), old("old  3")),
            (format!("Old 3\n\n{note}"), old("Old 3")),
            (
                format!("old 18446744073709551616\n\n{note}"),
                old("old 18446744073709551616"),
            ),
            (
                format!("old 3\n{}\n\n{note}", &hash[..43]),
                RequestError::InvalidProofLine {
                    number: 1,
                    line: hash[..43].into(),
                },
            ),
            (
                format!("old 3\n{hash}\n{hash} \n\n{note}"),
                RequestError::InvalidProofLine {
                    number: 2,
                    line: format!("{hash} "),
                },
            ),
            (format!("old 3\n{hash}\n"), RequestError::MissingBlankLine),
            (format!("old 3\n{hash}"), RequestError::MissingBlankLine),
            (
                format!("old 3\n{}\n{note}", format!("{hash}\n").repeat(64)),
                RequestError::TooManyProofLines,
            ),
            (
                format!("old 3\n\n{}", note.trim_end()),
                RequestError::Note(NoteError::UnterminatedSignatureBlock),
            ),
            (
                "old 3\n\n".into(),
                RequestError::Note(NoteError::MissingSignatureBlock),
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                AddCheckpointRequest::parse(body.as_bytes()),
                Err(want),
                "{body:?}"
            );
        }
        assert_eq!(
            AddCheckpointRequest::parse(b"old 3\n\xff"),
            Err(RequestError::NotUtf8 { valid_up_to: 6 })
        );
        // 63 proof lines is the limit, not an error.
        let max = format!("old 3\n{}\n{note}", format!("{hash}\n").repeat(63));
        assert_eq!(
            AddCheckpointRequest::parse(max.as_bytes()).map(|r| r.proof().len()),
            Ok(63)
        );
        assert_eq!(
            AddCheckpointRequest::new(1, vec![leaf_hash(b"x"); 64], note.clone()),
            Err(RequestError::TooManyProofLines)
        );
        assert_eq!(
            AddCheckpointRequest::new(1, vec![], "not a note".into()),
            Err(RequestError::Note(NoteError::MissingSignatureBlock))
        );
        assert_eq!(
            AddCheckpointRequest::parse(good.as_bytes()).map(|r| r.to_string()),
            Ok(good)
        );
    }

    #[track_caller]
    fn refused(
        r: &AddCheckpointRequest,
        keys: &[NoteVerifier],
        latest: Option<CosignedState>,
    ) -> Refusal {
        match decide(r, keys, latest) {
            Ok(a) => panic!("accepted {:?}", a.new_state()),
            Err(refusal) => refusal,
        }
    }

    #[test]
    fn accepts_consistent_checkpoints() {
        for (latest, old, new) in [
            (None, 0, 5),
            (None, 0, 0),
            (Some(state(0)), 0, 1),
            (Some(state(4)), 4, 9),
            (Some(state(7)), 7, 64),
            (Some(state(1)), 1, 2),
            // The same checkpoint again: cosigned again, at a later time.
            (Some(state(9)), 9, 9),
        ] {
            let accepted = decide(&request(old, new), &keys(), latest)
                .unwrap_or_else(|e| panic!("{old}->{new}: {e}"));
            assert_eq!(accepted.new_state(), state(new));
            assert_eq!(accepted.checkpoint().checkpoint(), &real_checkpoint(new));
            let line = accepted.cosign(&witness(1), T).expect("cosigns");
            assert_eq!(
                witness(1)
                    .verifier()
                    .verify(&real_checkpoint(new).to_text(), &line),
                Ok(T)
            );
        }
    }

    #[test]
    fn refusals_and_their_statuses() {
        let latest = Some(state(4));
        // 404: no key for the origin.
        let r = refused(&request(4, 9), &[], latest);
        assert_eq!(
            (r.status(), &r),
            (
                404,
                &Refusal::UnknownOrigin {
                    origin: ORIGIN.into()
                }
            )
        );
        assert!(r.signed_checkpoint().is_none());

        // 403: signed by a key the witness does not trust for it, or a bad signature.
        let r = refused(&request(4, 9), &[other_log().verifier()], latest);
        assert_eq!(
            (r.status(), &r),
            (403, &Refusal::Unauthenticated(NoteError::NoKnownSignature))
        );
        let good = request(4, 9);
        let mut note = Note::parse(good.checkpoint_note().as_bytes()).expect("parses");
        note.signatures[0].signature[0] ^= 1;
        let bad_sig =
            AddCheckpointRequest::new(4, good.proof().to_vec(), note.to_string()).expect("request");
        let r = refused(&bad_sig, &keys(), latest);
        assert_eq!(r.status(), 403);
        assert!(matches!(
            r,
            Refusal::Unauthenticated(NoteError::InvalidSignature { .. })
        ));
        let r = refused(&good, &[log().verifier(), log().verifier()], latest);
        assert!(matches!(
            r,
            Refusal::Unauthenticated(NoteError::AmbiguousVerifiers { .. })
        ));

        // 400: signed, but not a checkpoint.
        let not_cp = AddCheckpointRequest::new(
            0,
            vec![],
            log().sign(&format!("{ORIGIN}\nx\n")).expect("signs"),
        )
        .expect("request");
        let r = refused(&not_cp, &keys(), latest);
        assert_eq!(r.status(), 400);
        assert!(matches!(
            r,
            Refusal::InvalidCheckpoint(CheckpointError::TooFewLines { .. })
        ));

        // 422: a signed size-0 checkpoint whose root is not the empty tree's.
        let text = format!("{ORIGIN}\n0\n{}\n", leaf_hash(b"0"));
        let zero = AddCheckpointRequest::new(0, vec![], log().sign(&text).expect("signs"))
            .expect("request");
        let r = refused(&zero, &keys(), None);
        assert_eq!(r.status(), 422);
        assert!(matches!(
            r,
            Refusal::InvalidCheckpoint(CheckpointError::EmptyTreeRoot { .. })
        ));

        // 400: old size above the checkpoint's.
        let r = refused(
            &AddCheckpointRequest::new(10, vec![], good.checkpoint_note().into()).expect("request"),
            &keys(),
            latest,
        );
        assert_eq!(r.status(), 400);
        assert!(matches!(
            r,
            Refusal::OldSizeTooLarge {
                old_size: 10,
                size: 9,
                ..
            }
        ));
        assert!(r.signed_checkpoint().is_some());

        // 409: the old size is not the witness's; it says its own size.
        for (req, latest, have) in [
            (request(3, 9), latest, 4),
            (request(0, 9), latest, 4),
            (request(4, 9), None, 0),
            (request(4, 9), Some(state(0)), 0),
        ] {
            let r = refused(&req, &keys(), latest);
            assert_eq!((r.status(), r.conflict_size()), (409, Some(have)), "{r}");
            assert_eq!(r.signed_checkpoint().map(|c| c.checkpoint().size), Some(9));
        }
        assert_eq!(conflict_body(4), "4\n");
        assert_eq!(refused(&request(4, 9), &[], None).conflict_size(), None);
    }

    #[test]
    fn inconsistent_checkpoints_are_422() {
        let latest = Some(state(4));
        // A proof from 0 must be empty.
        let from_zero = request(0, 9);
        let with_proof =
            AddCheckpointRequest::new(0, vec![leaf_hash(b"x")], from_zero.checkpoint_note().into())
                .expect("request");
        let r = refused(&with_proof, &keys(), None);
        assert_eq!(r.status(), 422);
        assert!(matches!(
            r,
            Refusal::Inconsistent {
                error: VerifyError::WrongProofLength {
                    expected: 0,
                    actual: 1
                },
                ..
            }
        ));

        // A tampered proof, a truncated one.
        let good = request(4, 9);
        let mut proof = good.proof().to_vec();
        proof[0] = leaf_hash(b"tampered");
        let tampered = AddCheckpointRequest::new(4, proof.clone(), good.checkpoint_note().into())
            .expect("request");
        assert_eq!(refused(&tampered, &keys(), latest).status(), 422);
        proof.pop();
        let short =
            AddCheckpointRequest::new(4, proof, good.checkpoint_note().into()).expect("request");
        assert!(matches!(
            refused(&short, &keys(), latest),
            Refusal::Inconsistent {
                error: VerifyError::WrongProofLength { .. },
                ..
            }
        ));

        // The witness holds another tree at size 4 (a fork): the honest proof fails.
        let forked = Some(CosignedState {
            size: 4,
            root: leaf_hash(b"fork"),
        });
        let r = refused(&good, &keys(), forked);
        // 4 is a power of two, so the proof seeds with the witness's root and ends
        // at another new root.
        assert!(
            matches!(
                r,
                Refusal::Inconsistent {
                    error: VerifyError::RootMismatch { .. },
                    ..
                }
            ),
            "{r}"
        );
        assert_eq!(r.signed_checkpoint().map(|c| c.checkpoint().size), Some(9));

        // Same size, another root: a fork, proven by the two signed checkpoints.
        let other_root = checkpoint_with_root(9, leaf_hash(b"other"));
        let note = sign_checkpoint(&other_root, &log()).expect("signs");
        let same_size = AddCheckpointRequest::new(9, vec![], note).expect("request");
        let r = refused(&same_size, &keys(), Some(state(9)));
        assert_eq!(r.status(), 422);
        assert_eq!(
            (&r, r.signed_checkpoint().map(|c| c.checkpoint().root)),
            (
                &Refusal::Fork {
                    size: 9,
                    latest_root: state(9).root,
                    root: leaf_hash(b"other"),
                    checkpoint: Box::new(
                        crate::checkpoint::verify_checkpoint(
                            same_size.checkpoint_note().as_bytes(),
                            &log().verifier(),
                            ORIGIN
                        )
                        .expect("verifies")
                    ),
                },
                Some(leaf_hash(b"other"))
            )
        );
        // Same size and root but a non-empty proof.
        let again = request(9, 9);
        let padded =
            AddCheckpointRequest::new(9, vec![state(9).root], again.checkpoint_note().into())
                .expect("request");
        assert_eq!(refused(&padded, &keys(), Some(state(9))).status(), 422);
    }

    fn zero_time_line(n: u32, cp: &Checkpoint) -> NoteSignature {
        let sig = witness_key(n).sign(&signed_message(0, &cp.to_text()));
        let mut bytes = 0u64.to_be_bytes().to_vec();
        bytes.extend_from_slice(&sig.to_bytes());
        NoteSignature {
            name: witness(n).name().into(),
            key_id: witness(n).key_id(),
            signature: bytes,
        }
    }

    #[test]
    fn the_log_checks_a_witness_response() {
        let accepted = decide(&request(0, 5), &keys(), None).expect("accepted");
        let cp = accepted.checkpoint();
        let mine = accepted.cosign(&witness(1), T).expect("cosigns");
        let stranger = accepted.cosign(&witness(2), T).expect("cosigns");
        let response =
            AddCheckpointResponse::new(vec![stranger.clone(), mine.clone()]).expect("response");
        let body = response.to_bytes();
        let parsed = AddCheckpointResponse::parse(&body).expect("parses");
        assert_eq!(parsed, response);
        let returned = parsed.verify(cp, &witness(1).verifier()).expect("verifies");
        assert_eq!(
            returned
                .iter()
                .map(|r| (r.signature().clone(), r.timestamp()))
                .collect::<Vec<_>>(),
            [(mine.clone(), T)]
        );
        // The log's note with the witness's line: a policy needing that witness accepts it.
        let note = cosigned_note(cp, &returned);
        assert_eq!(
            cosigned_note(
                &crate::checkpoint::verify_checkpoint(note.as_bytes(), &log().verifier(), ORIGIN)
                    .expect("verifies"),
                &returned
            ),
            note
        );
        let policy = crate::policy::Policy::parse(
            format!(
                "log {}\nwitness a {}\nquorum a\n",
                log().verifier().vkey(),
                witness(1).verifier().vkey()
            )
            .as_bytes(),
        )
        .expect("policy");
        assert!(policy.verify(note.as_bytes()).is_ok());
        assert!(policy.verify(cp.note_text().as_bytes()).is_err());
        // A line by the asked witness that fails, or that omits the time.
        let mut bad = mine.clone();
        bad.signature[30] ^= 1;
        let with_bad = AddCheckpointResponse::new(vec![mine.clone(), bad]).expect("response");
        assert!(matches!(
            with_bad.verify(cp, &witness(1).verifier()),
            Err(ResponseError::Cosignature(
                CosignatureError::InvalidSignature { .. }
            ))
        ));
        let zero =
            AddCheckpointResponse::new(vec![zero_time_line(1, cp.checkpoint())]).expect("response");
        assert_eq!(
            zero.verify(cp, &witness(1).verifier()),
            Err(ResponseError::ZeroTimestamp {
                name: "witness.example/w1".into()
            })
        );
        // Another checkpoint's cosignature does not verify for this one.
        let other = decide(&request(0, 6), &keys(), None).expect("accepted");
        assert!(matches!(
            parsed.verify(other.checkpoint(), &witness(1).verifier()),
            Err(ResponseError::Cosignature(_))
        ));
    }

    #[test]
    fn response_and_conflict_parse_errors() {
        let line = witness(1)
            .sign(&real_checkpoint(5), T)
            .expect("signs")
            .to_string();
        let cases: Vec<(String, ResponseError)> = vec![
            ("".into(), ResponseError::Unterminated),
            (line.clone(), ResponseError::Unterminated),
            (
                "\n".into(),
                ResponseError::MalformedLine {
                    number: 1,
                    line: String::new(),
                },
            ),
            (
                format!("{line}\n\n"),
                ResponseError::MalformedLine {
                    number: 2,
                    line: String::new(),
                },
            ),
            (
                format!("{line}\n{line}x\n"),
                ResponseError::MalformedLine {
                    number: 2,
                    line: format!("{line}x").chars().take(100).collect(),
                },
            ),
            (
                format!("{line}\r\n"),
                ResponseError::MalformedLine {
                    number: 1,
                    line: format!("{line}\r").chars().take(100).collect(),
                },
            ),
            (
                format!("{line}\n").repeat(MAX_SIGNATURES + 1),
                ResponseError::TooManyLines,
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                AddCheckpointResponse::parse(body.as_bytes()),
                Err(want),
                "{body:?}"
            );
        }
        assert_eq!(
            AddCheckpointResponse::parse(b"\xe2\x80\n"),
            Err(ResponseError::NotUtf8 { valid_up_to: 0 })
        );
        assert_eq!(
            AddCheckpointResponse::parse(format!("{line}\n").repeat(MAX_SIGNATURES).as_bytes())
                .map(|r| r.signatures().len()),
            Ok(MAX_SIGNATURES)
        );
        assert_eq!(
            AddCheckpointResponse::new(vec![]),
            Err(ResponseError::Empty)
        );

        assert_eq!(parse_conflict_body(b"4\n"), Ok(4));
        assert_eq!(parse_conflict_body(b"0\n"), Ok(0));
        for bad in [
            &b""[..],
            b"4",
            b"04\n",
            b"4\n\n",
            b" 4\n",
            b"x\n",
            b"\xff\n",
            b"18446744073709551616\n",
        ] {
            assert!(
                matches!(
                    parse_conflict_body(bad),
                    Err(ResponseError::InvalidConflictBody { .. })
                ),
                "{bad:?}"
            );
        }
        assert_eq!(
            parse_conflict_body(conflict_body(u64::MAX).as_bytes()),
            Ok(u64::MAX)
        );
    }

    #[test]
    fn origin_hash_is_lowercase_hex_sha256() {
        // Computed independently (Python hashlib) for the spec's example origin.
        assert_eq!(
            origin_hash("example.com/behind-the-sofa"),
            "5fd2dc0beb4ce54da5050cf6d5c75248b023abad441c3cecde3976fbe9da4fe4"
        );
    }

    proptest! {
        #[test]
        fn request_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(r) = AddCheckpointRequest::parse(&bytes) {
                prop_assert_eq!(r.to_bytes(), bytes.clone());
                let _ = decide(&r, &keys(), Some(state(4)));
            }
        }

        #[test]
        fn request_parse_is_canonical_on_near_requests(
            s in "old [0-9]{1,3}\n([A-Za-z0-9+/]{42,44}=?\n){0,2}\n[a-z\n]{0,4}\n\n(\u{2014} [a-z] [A-Za-z0-9+/=]{8,12}\n){0,2}"
        ) {
            if let Ok(r) = AddCheckpointRequest::parse(s.as_bytes()) {
                prop_assert_eq!(r.to_string(), s);
            }
        }

        #[test]
        fn response_parse_never_panics(s in "(\u{2014} [a-z./]{0,6} [A-Za-z0-9+/=]{0,100}\n){0,3}") {
            if let Ok(r) = AddCheckpointResponse::parse(s.as_bytes()) {
                prop_assert_eq!(r.to_string(), s);
            }
        }

        #[test]
        fn every_honest_extension_is_cosigned_and_every_bad_proof_refused(
            (old, new) in (1..=40u64).prop_flat_map(|old| (Just(old), old..=48)),
            at in any::<prop::sample::Index>(),
            bit in 0..8usize,
        ) {
            let r = request(old, new);
            let accepted = decide(&r, &keys(), Some(state(old)));
            prop_assert_eq!(accepted.map(|a| a.new_state()), Ok(state(new)));
            if !r.proof().is_empty() {
                let mut proof = r.proof().to_vec();
                let i = at.index(proof.len());
                let mut bytes = proof[i].to_bytes();
                bytes[bit % 32] ^= 1 << (bit % 8);
                proof[i] = Hash::from_bytes(bytes);
                let bad = AddCheckpointRequest::new(old, proof, r.checkpoint_note().into());
                prop_assert!(bad.is_ok());
                if let Ok(bad) = bad {
                    prop_assert_eq!(decide(&bad, &keys(), Some(state(old))).map_err(|e| e.status()).map(|a| a.new_state()), Err(422));
                }
            }
        }

        #[test]
        fn request_round_trips(old in any::<u64>(), proof in proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_PROOF_LINES)) {
            let note = sign_checkpoint(&real_checkpoint(3), &log()).unwrap_or_default();
            let r = AddCheckpointRequest::new(old, proof.into_iter().map(Hash::from_bytes).collect(), note);
            prop_assert!(r.is_ok());
            if let Ok(r) = r {
                prop_assert_eq!(AddCheckpointRequest::parse(&r.to_bytes()), Ok(r));
            }
        }
    }
}
