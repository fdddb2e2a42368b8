//! The ingest rule set: every check an envelope must pass before it is
//! appended, in one fixed order, as a pure function of the envelope, a view of
//! the log, and the time.
//!
//! The order is part of the wire contract (the first failing check names the
//! error, so identical inputs give identical outcomes):
//! size, envelope shape, key known, signature, key revoked, key validity,
//! payload schema, runtime match, workload owner, scope, clock skew,
//! equivocation, closed, sequence, prev, parents, halted. The workload-owner
//! check comes before anything that reads or reveals a workload's state (its
//! events, its head), so that no runtime learns another runtime's workload
//! state from a refusal. Governance statements: key known (an authority),
//! signature, payload schema, clock skew, then the statement against the
//! registry (keys: `key_conflict`; halts: `governance_conflict`), then the
//! same statement under another signature. The halt rules and their
//! propagation are in [`crate::governance`].
//! Size and shape are checked while the envelope is parsed into a
//! [`Candidate`]; [`admit`] runs the rest. Identical resubmissions are found by
//! [`find_identical`] before any of it.
//!
//! This module reads no clock and does no I/O: the sequencer hands it a
//! [`LedgerView`] over committed state plus the batch being built.

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use time::{Duration, OffsetDateTime};

use crate::dsse::{EnvelopeError, PayloadType, SignedEnvelope};
use crate::event::{
    Event, GovernanceAction, GovernanceStatement, HaltStatement, KeyStatement, PayloadError,
    RuntimeId, Scope, WorkloadId, parse_event, parse_governance,
};
pub use crate::governance::GovernanceView;
use crate::governance::{halt_members, halted_by, resume_members};
use crate::keys::{EventId, KeyId};

/// A runtime key as the log knows it: granted by a governance entry, maybe revoked by a later one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// BLAKE3 of the public key.
    pub key_id: KeyId,
    /// The Ed25519 public key.
    pub public_key: VerifyingKey,
    /// The runtime the key speaks for.
    pub runtime: RuntimeId,
    /// Log index of the grant entry.
    pub granted_index: u64,
    /// Log index of the revocation entry; entries after it signed by this key are refused.
    pub revoked_index: Option<u64>,
    /// Events integrated before this time are refused.
    pub not_before: Option<OffsetDateTime>,
    /// Events integrated at or after this time are refused.
    pub not_after: Option<OffsetDateTime>,
    /// What the key may sign; `None` allows everything.
    pub scope: Option<Scope>,
}

impl KeyRecord {
    /// The record a grant creates at `index`.
    pub fn granted(statement: &KeyStatement, index: u64) -> KeyRecord {
        KeyRecord {
            key_id: statement.key_id,
            public_key: statement.public_key,
            runtime: statement.runtime.clone(),
            granted_index: index,
            revoked_index: None,
            not_before: statement.not_before,
            not_after: statement.not_after,
            scope: statement.scope.clone(),
        }
    }
}

/// The latest event of a workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadHead {
    /// Its sequence number.
    pub seq: u64,
    /// Its event ID (what the next event's `prev` must be).
    pub event_id: EventId,
    /// The runtime that owns the workload (the one that started it).
    pub runtime: RuntimeId,
    /// Whether that event closed the workload (kind `workload.end`).
    pub closed: bool,
}

/// What the rules need to know about the log. Implemented by the sequencer
/// over the store plus the batch being assembled, and by tests over maps.
/// Its storage error is [`GovernanceView::Error`].
pub trait LedgerView: GovernanceView {
    /// A runtime key by ID.
    fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, Self::Error>;
    /// The index of an event (or governance statement) by ID.
    fn event_index(&self, id: &EventId) -> Result<Option<u64>, Self::Error>;
    /// The index of the entry of event ID `id` when that entry is
    /// `envelope` exactly (payload type, payload, key ID and signature): an
    /// identical resubmission.
    fn identical_entry(
        &self,
        id: &EventId,
        envelope: &SignedEnvelope,
    ) -> Result<Option<u64>, Self::Error>;
    /// The ID of a workload's event at `seq`.
    fn workload_event(
        &self,
        workload: &WorkloadId,
        seq: u64,
    ) -> Result<Option<EventId>, Self::Error>;
    /// The latest event of a workload.
    fn workload_head(&self, workload: &WorkloadId) -> Result<Option<WorkloadHead>, Self::Error>;
    /// The workload and runtime of a runtime event in the log (`None` for
    /// an unknown ID or a governance statement).
    fn event_owner(&self, id: &EventId) -> Result<Option<(WorkloadId, RuntimeId)>, Self::Error>;
}

/// The trust root: authority keys allowed to sign governance statements.
#[derive(Clone, Debug, Default)]
pub struct Authorities {
    keys: Vec<(KeyId, VerifyingKey)>,
}

impl Authorities {
    /// The set of the given keys (duplicates collapse).
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> Authorities {
        let mut out: Vec<(KeyId, VerifyingKey)> = Vec::new();
        for k in keys {
            let id = KeyId::from_public_key(&k);
            if !out.iter().any(|(i, _)| *i == id) {
                out.push((id, k));
            }
        }
        Authorities { keys: out }
    }

    /// The authority key with this ID.
    pub fn get(&self, id: &KeyId) -> Option<&VerifyingKey> {
        self.keys.iter().find(|(i, _)| i == id).map(|(_, k)| k)
    }

    /// Every authority key, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = (&KeyId, &VerifyingKey)> {
        self.keys.iter().map(|(i, k)| (i, k))
    }

    /// True when there is no authority key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// An envelope that passed the size and shape checks, with its signature
/// checked early when its key was already known (a key ID is the hash of the
/// public key, so that verdict can never change afterwards).
///
/// The fields are private so that what was checked stays tied to what it was
/// checked on: the envelope and its event ID cannot change after
/// construction, and the signature verdict is only ever set by
/// [`Candidate::precheck_signature`], which verifies. No caller can mark a
/// signature as checked without checking it.
#[derive(Clone, Debug)]
pub struct Candidate {
    envelope: SignedEnvelope,
    event_id: EventId,
    /// `Some(verdict)` once [`Candidate::precheck_signature`] checked the
    /// signature against the key the envelope names.
    signature: Option<bool>,
    /// The event payload parsed early (see [`Candidate::preparse`]): the rules
    /// use this verdict instead of parsing again. `parse_event` is a pure
    /// function of the payload, so the verdict cannot differ.
    /// Shared with the admission, so the sequencer never copies an event.
    /// The error is boxed, not the verdict: a valid event costs no
    /// allocation besides its own.
    parsed: Option<Result<Arc<Event>, Box<PayloadError>>>,
}

impl Candidate {
    /// Wraps a parsed envelope; the signature is not yet checked.
    pub fn new(envelope: SignedEnvelope) -> Candidate {
        let event_id = envelope.event_id();
        Candidate {
            envelope,
            event_id,
            signature: None,
            parsed: None,
        }
    }

    /// The parsed envelope.
    pub fn envelope(&self) -> &SignedEnvelope {
        &self.envelope
    }

    /// BLAKE3 of the payload.
    pub fn event_id(&self) -> EventId {
        self.event_id
    }

    /// Parses an event payload now, so the sequencer does not: call this off
    /// the sequencer, in parallel, like [`Candidate::precheck_signature`].
    /// Governance payloads are rare and are parsed by the rules.
    pub fn preparse(&mut self) {
        if self.envelope.payload_type == PayloadType::Event && self.parsed.is_none() {
            self.parsed = Some(
                parse_event(&self.envelope.payload)
                    .map(Arc::new)
                    .map_err(Box::new),
            );
        }
    }

    fn parsed_event(&self) -> Result<Arc<Event>, PayloadError> {
        match &self.parsed {
            Some(verdict) => verdict.clone().map_err(|e| *e),
            None => parse_event(&self.envelope.payload).map(Arc::new),
        }
    }

    /// Verifies the signature now (`verify_strict` over the DSSE PAE) against
    /// `key` if the envelope names it, and keeps the verdict for the rules;
    /// a key the envelope does not name leaves the signature unchecked.
    /// Call this off the sequencer, in parallel: it is the expensive part.
    pub fn precheck_signature(&mut self, key: &VerifyingKey) {
        if KeyId::from_public_key(key) == self.envelope.key_id {
            self.signature = Some(self.envelope.verify(key).is_ok());
        }
    }

    /// True when [`Candidate::precheck_signature`] verified the signature
    /// under the key the envelope names; false when it does not verify or was
    /// not checked yet. Admission control that must only charge the key's
    /// owner (the API's per-runtime rate limit) reads this.
    pub fn signature_verified(&self) -> bool {
        self.signature == Some(true)
    }

    fn signature_ok(&self, key: &VerifyingKey) -> bool {
        match self.signature {
            Some(verdict) => verdict,
            None => self.envelope.verify(key).is_ok(),
        }
    }
}

/// Why an envelope was refused. Each variant maps to one stable API code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// The payload (or the envelope carrying it) is over the limit.
    #[error("payload of {size} bytes is over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Size seen.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The envelope is not a valid DSSE v1 envelope of a known type.
    #[error("invalid envelope: {0}")]
    InvalidEnvelope(#[from] EnvelopeError),
    /// No granted runtime key (or, for governance, no authority key) has this ID.
    #[error("key {key_id} is not a granted {role} key")]
    UnknownKey {
        /// The envelope's key ID.
        key_id: KeyId,
        /// "runtime" or "authority".
        role: &'static str,
    },
    /// The signature does not verify (Ed25519 `verify_strict` over the DSSE PAE).
    #[error("signature by key {key_id} does not verify")]
    BadSignature {
        /// The envelope's key ID.
        key_id: KeyId,
    },
    /// The key was revoked at `revoked_index`.
    #[error("key {key_id} was revoked at index {revoked_index}")]
    RevokedKey {
        /// The key.
        key_id: KeyId,
        /// Index of the revocation entry.
        revoked_index: u64,
    },
    /// The event was integrated before its key's `not_before`.
    #[error("key {key_id} is not valid before {not_before}")]
    KeyNotYetValid {
        /// The key.
        key_id: KeyId,
        /// Start of its validity window.
        not_before: OffsetDateTime,
    },
    /// The event was integrated at or after its key's `not_after`.
    #[error("key {key_id} expired at {not_after}")]
    KeyExpired {
        /// The key.
        key_id: KeyId,
        /// End of its validity window.
        not_after: OffsetDateTime,
    },
    /// The payload does not follow its schema.
    #[error("invalid payload: {0}")]
    InvalidPayload(#[from] PayloadError),
    /// The payload names another runtime than the key's, or than the workload's owner.
    #[error("runtime {claimed:?} does not match {expected:?} ({reason})")]
    RuntimeMismatch {
        /// The runtime named in the payload.
        claimed: String,
        /// The runtime it had to be.
        expected: String,
        /// "key" (the signing key's runtime) or "workload" (the workload's owner).
        reason: &'static str,
    },
    /// The event's `field` matches none of its key's scope patterns for it.
    #[error("{field} {value:?} is outside the scope of key {key_id}")]
    OutOfScope {
        /// The key.
        key_id: KeyId,
        /// `kind`, `workload` or `domain`.
        field: &'static str,
        /// The event's value of it (empty for an absent domain).
        value: String,
    },
    /// `at` is further from the ledger's clock than the allowed skew.
    #[error("timestamp {at} is more than {max_skew_seconds}s from the ledger clock {now}")]
    ClockSkew {
        /// The payload's time.
        at: OffsetDateTime,
        /// The ledger's time.
        now: OffsetDateTime,
        /// Allowed skew.
        max_skew_seconds: i64,
    },
    /// A governance statement that contradicts the key registry.
    #[error("key {key_id}: {reason}")]
    KeyConflict {
        /// The key named by the statement.
        key_id: KeyId,
        /// What is wrong.
        reason: KeyConflictReason,
    },
    /// The same payload is already in the log under another envelope (another signature).
    #[error("event {event_id} is already in the log at index {index} with another signature")]
    DuplicateEvent {
        /// The event ID.
        event_id: EventId,
        /// Where it is.
        index: u64,
    },
    /// Another event already holds this workload position.
    #[error("workload {workload} already has event {existing} at seq {seq}")]
    Equivocation {
        /// The workload.
        workload: String,
        /// The contested seq.
        seq: u64,
        /// The event already there.
        existing: EventId,
    },
    /// `seq` is not the workload's next.
    #[error("workload {workload} expects seq {expected}, got {got}")]
    SequenceGap {
        /// The workload.
        workload: String,
        /// The next seq.
        expected: u64,
        /// The seq given.
        got: u64,
    },
    /// `prev` is not the ID of the workload's event at `seq - 1`.
    #[error("prev {got} is not the workload's event at seq {prev_seq} ({expected})")]
    PrevMismatch {
        /// seq - 1.
        prev_seq: u64,
        /// The ID it had to be.
        expected: EventId,
        /// The ID given.
        got: EventId,
    },
    /// The workload is closed: its latest event is `workload.end`.
    #[error("workload {workload} was closed by its event at seq {seq}")]
    WorkloadClosed {
        /// The workload.
        workload: String,
        /// The seq of its `workload.end` event.
        seq: u64,
    },
    /// A halt stops the event: its workload, its runtime, or the workload of
    /// one of its parents is halted.
    #[error("workload {workload} is halted by the halt at index {halt_index}")]
    Halted {
        /// The halted workload (the event's own, or a parent's).
        workload: String,
        /// The index of the halt statement (the lowest, when several stop it).
        halt_index: u64,
    },
    /// A halt of a target that is already halted in its own right, or a
    /// resume of one that is not.
    #[error("{target}: {reason}")]
    GovernanceConflict {
        /// The statement's target, as text.
        target: String,
        /// What is wrong.
        reason: GovernanceConflictReason,
    },
    /// A parent is not in the log.
    #[error("parent {parent} (parents[{position}]) is not in the log")]
    UnknownParent {
        /// The missing ID.
        parent: EventId,
        /// Its position in `parents`.
        position: usize,
    },
}

/// The kind of failure a [`Rejection`] is, which a transport maps to its own
/// status (HTTP: 413, 400, 401, 403, 409, 422 in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RejectionClass {
    /// Over a size limit.
    TooLarge,
    /// Not well-formed.
    Malformed,
    /// The signature does not prove who sent it.
    Unauthenticated,
    /// Authenticated, but not allowed.
    Forbidden,
    /// Contradicts what the log already holds.
    Conflict,
    /// Well-formed and allowed, but breaks a lineage rule.
    Unprocessable,
}

impl Rejection {
    /// The stable, machine-readable code of the rule that failed: the API's
    /// problem `code`, the metrics label and the auditor's violation code.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::PayloadTooLarge { .. } => "payload_too_large",
            Rejection::InvalidEnvelope(_) => "invalid_envelope",
            Rejection::UnknownKey { .. } => "unknown_key",
            Rejection::BadSignature { .. } => "bad_signature",
            Rejection::RevokedKey { .. } => "revoked_key",
            Rejection::KeyNotYetValid { .. } => "key_not_yet_valid",
            Rejection::KeyExpired { .. } => "key_expired",
            Rejection::OutOfScope { .. } => "out_of_scope",
            Rejection::WorkloadClosed { .. } => "workload_closed",
            Rejection::Halted { .. } => "halted",
            Rejection::GovernanceConflict { .. } => "governance_conflict",
            Rejection::InvalidPayload(_) => "invalid_payload",
            Rejection::RuntimeMismatch { .. } => "runtime_mismatch",
            Rejection::ClockSkew { .. } => "clock_skew",
            Rejection::KeyConflict { .. } => "key_conflict",
            Rejection::DuplicateEvent { .. } => "duplicate_event",
            Rejection::Equivocation { .. } => "equivocation",
            Rejection::SequenceGap { .. } => "sequence_gap",
            Rejection::PrevMismatch { .. } => "prev_mismatch",
            Rejection::UnknownParent { .. } => "unknown_parent",
        }
    }

    /// What kind of failure this is.
    pub fn class(&self) -> RejectionClass {
        match self {
            Rejection::PayloadTooLarge { .. } => RejectionClass::TooLarge,
            Rejection::InvalidEnvelope(_) | Rejection::InvalidPayload(_) => {
                RejectionClass::Malformed
            }
            Rejection::BadSignature { .. } => RejectionClass::Unauthenticated,
            Rejection::UnknownKey { .. }
            | Rejection::RevokedKey { .. }
            | Rejection::KeyNotYetValid { .. }
            | Rejection::KeyExpired { .. }
            | Rejection::OutOfScope { .. }
            | Rejection::Halted { .. }
            | Rejection::RuntimeMismatch { .. } => RejectionClass::Forbidden,
            Rejection::KeyConflict { .. }
            | Rejection::WorkloadClosed { .. }
            | Rejection::GovernanceConflict { .. }
            | Rejection::DuplicateEvent { .. }
            | Rejection::Equivocation { .. } => RejectionClass::Conflict,
            Rejection::ClockSkew { .. }
            | Rejection::SequenceGap { .. }
            | Rejection::PrevMismatch { .. }
            | Rejection::UnknownParent { .. } => RejectionClass::Unprocessable,
        }
    }
}

/// What is wrong with a grant or revocation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyConflictReason {
    /// Grant of a key that is already granted (keys are never re-granted, even after revocation).
    #[error("already granted")]
    AlreadyGranted,
    /// Grant of an authority key to a runtime.
    #[error("is an authority key")]
    AuthorityKey,
    /// Revocation of a key that was never granted.
    #[error("was never granted")]
    NotGranted,
    /// Revocation naming another runtime than the key's.
    #[error("is granted to another runtime")]
    OtherRuntime,
    /// Revocation of a revoked key.
    #[error("is already revoked")]
    AlreadyRevoked,
}

/// What is wrong with a halt or resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GovernanceConflictReason {
    /// A halt of a target that an active halt already names.
    #[error("is already halted (halt at index {0})")]
    AlreadyHalted(u64),
    /// A resume of a target that no active halt names.
    #[error("is not halted in its own right")]
    NotHalted,
}

/// What an admitted envelope does to the log's state (applied by
/// [`BatchState::apply`](crate::state::BatchState::apply)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Admission {
    /// A runtime event, continuing its workload.
    Event {
        /// The event (shared with the candidate that carried it).
        event: Arc<Event>,
        /// The other workloads its parents are in, distinct, in parent
        /// order: its workload derives from them.
        derives_from: Vec<WorkloadId>,
    },
    /// A grant of a new runtime key.
    Grant(Box<KeyStatement>),
    /// A revocation of `key`, as the log held it when the revocation was admitted.
    Revoke {
        /// The statement.
        statement: Box<KeyStatement>,
        /// The key record it revokes.
        key: Box<KeyRecord>,
    },
    /// A halt: every member gets the halt's index added to its halts.
    Halt {
        /// The statement.
        statement: Box<HaltStatement>,
        /// The workloads it stops (the target's, and every workload deriving
        /// from them), each with its halts before this one.
        members: Vec<(WorkloadId, Vec<u64>)>,
    },
    /// A resume: the halt at `halt_index` is lifted from every member.
    Resume {
        /// The statement.
        statement: Box<HaltStatement>,
        /// The index of the halt it lifts.
        halt_index: u64,
        /// The workloads that halt stopped, each with its halts before this resume.
        members: Vec<(WorkloadId, Vec<u64>)>,
    },
}

/// Everything [`admit`] needs besides the envelope and the log.
///
/// The rule clock is the batch's **integration time in whole milliseconds**,
/// the very value each entry stores as `integrated_at_ms`: the only way to
/// build a context is [`RuleContext::at`], so the sequencer and the auditor,
/// which replays each entry with its stored `integrated_at_ms`, judge
/// `clock_skew` with the same clock, bit for bit. (A finer clock at ingest
/// admitted events the audit then refused.)
#[derive(Clone, Copy, Debug)]
pub struct RuleContext<'a> {
    /// The authority keys.
    pub authorities: &'a Authorities,
    /// The rule clock: `integrated_at_ms` as a time.
    now: OffsetDateTime,
    /// `now` in Unix milliseconds.
    integrated_at_ms: u64,
    /// Allowed distance between `at` and `now`.
    pub max_skew: Duration,
}

impl<'a> RuleContext<'a> {
    /// The context of entries integrated at `integrated_at_ms` (Unix
    /// milliseconds); `None` when that is not a representable time.
    pub fn at(
        authorities: &'a Authorities,
        integrated_at_ms: u64,
        max_skew: Duration,
    ) -> Option<RuleContext<'a>> {
        Some(RuleContext {
            authorities,
            now: integration_time(integrated_at_ms)?,
            integrated_at_ms,
            max_skew,
        })
    }

    /// The rule clock.
    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// The rule clock in Unix milliseconds: what admitted entries store.
    pub fn integrated_at_ms(&self) -> u64 {
        self.integrated_at_ms
    }
}

/// `integrated_at_ms` (Unix milliseconds) as a time, if representable.
pub fn integration_time(ms: u64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms).checked_mul(1_000_000)?).ok()
}

/// A time in whole Unix milliseconds, rounded down (0 before the epoch):
/// the integration time of entries the ledger admits at that time.
pub fn integration_ms(t: OffsetDateTime) -> u64 {
    u64::try_from(t.unix_timestamp_nanos().div_euclid(1_000_000)).unwrap_or(0)
}

/// Returns the index of an envelope identical to `candidate` (same payload,
/// type, key ID and signature) already in the log: it is answered with its
/// original receipt before any other check.
///
/// # Errors
/// Only the view's storage errors.
pub fn find_identical<V: LedgerView>(
    candidate: &Candidate,
    view: &V,
) -> Result<Option<u64>, V::Error> {
    // A pre-parsed event whose position is free is in no entry (see
    // `position_is_free`): no lookup by event ID, which at 10M entries
    // was the sequencer's largest cost (a miss searched every level).
    if let Some(Ok(event)) = &candidate.parsed
        && position_is_free(event, view.workload_head(&event.workload)?.as_ref())
    {
        return Ok(None);
    }
    view.identical_entry(&candidate.event_id, &candidate.envelope)
}

/// Whether no event of the log holds `event`'s position (workload, seq),
/// given the workload's head: none when it has no head or `event.seq` is
/// past it. A workload's events are exactly seqs `0..=head.seq` (its first
/// event must have seq 0 and each next one the next seq), and an event ID
/// is the hash of the payload, which names the position: an event at a
/// free position is then neither a duplicate (same ID) nor an equivocation
/// (same position), and the lookups that would say so are skipped. The
/// verdicts are those of the lookups.
fn position_is_free(event: &Event, head: Option<&WorkloadHead>) -> bool {
    head.is_none_or(|h| event.seq > h.seq)
}

/// Runs every stateful check on a candidate, in the contract's order.
///
/// The outer `Result` carries storage errors (they fail the batch); the
/// inner one is the verdict on this envelope.
///
/// # Errors
/// The view's storage errors.
pub fn admit<V: LedgerView>(
    candidate: &Candidate,
    view: &V,
    ctx: &RuleContext<'_>,
) -> Result<Result<Admission, Rejection>, V::Error> {
    Ok(match candidate.envelope.payload_type {
        PayloadType::Event => admit_event(candidate, view, ctx)?,
        PayloadType::Governance => admit_governance(candidate, view, ctx)?,
    })
}

fn check_skew(at: OffsetDateTime, ctx: &RuleContext<'_>) -> Result<(), Rejection> {
    if (at - ctx.now).abs() > ctx.max_skew {
        return Err(Rejection::ClockSkew {
            at,
            now: ctx.now,
            max_skew_seconds: ctx.max_skew.whole_seconds(),
        });
    }
    Ok(())
}

fn admit_event<V: LedgerView>(
    c: &Candidate,
    view: &V,
    ctx: &RuleContext<'_>,
) -> Result<Result<Admission, Rejection>, V::Error> {
    let key_id = c.envelope.key_id;
    // Key known.
    let Some(key) = view.key(&key_id)? else {
        return Ok(Err(Rejection::UnknownKey {
            key_id,
            role: "runtime",
        }));
    };
    // Signature.
    if !c.signature_ok(&key.public_key) {
        return Ok(Err(Rejection::BadSignature { key_id }));
    }
    // Key revoked.
    if let Some(revoked_index) = key.revoked_index {
        return Ok(Err(Rejection::RevokedKey {
            key_id,
            revoked_index,
        }));
    }
    // Key validity: the window is half-open, [not_before, not_after).
    if let Some(not_before) = key.not_before
        && ctx.now < not_before
    {
        return Ok(Err(Rejection::KeyNotYetValid { key_id, not_before }));
    }
    if let Some(not_after) = key.not_after
        && ctx.now >= not_after
    {
        return Ok(Err(Rejection::KeyExpired { key_id, not_after }));
    }
    // Payload schema.
    let event = match c.parsed_event() {
        Ok(e) => e,
        Err(e) => return Ok(Err(e.into())),
    };
    // Runtime match.
    if event.runtime != key.runtime {
        return Ok(Err(Rejection::RuntimeMismatch {
            claimed: event.runtime.as_str().to_owned(),
            expected: key.runtime.as_str().to_owned(),
            reason: "key",
        }));
    }
    // Workload owner: a workload belongs to the runtime that started it.
    // Checked before anything that reveals the workload's state.
    let head = view.workload_head(&event.workload)?;
    if let Some(head) = &head
        && head.runtime != event.runtime
    {
        return Ok(Err(Rejection::RuntimeMismatch {
            claimed: event.runtime.as_str().to_owned(),
            expected: head.runtime.as_str().to_owned(),
            reason: "workload",
        }));
    }
    // Scope.
    if let Some(scope) = &key.scope
        && let Some((field, value)) = scope.first_violation(&event)
    {
        return Ok(Err(Rejection::OutOfScope {
            key_id,
            field,
            value: value.to_owned(),
        }));
    }
    // Clock skew.
    if let Err(r) = check_skew(event.at, ctx) {
        return Ok(Err(r));
    }
    // Equivocation (and the same payload under another signature), which
    // only an event at a taken position can be.
    if !position_is_free(&event, head.as_ref()) {
        if let Some(index) = view.event_index(&c.event_id)? {
            return Ok(Err(Rejection::DuplicateEvent {
                event_id: c.event_id,
                index,
            }));
        }
        if let Some(existing) = view.workload_event(&event.workload, event.seq)? {
            return Ok(Err(Rejection::Equivocation {
                workload: event.workload.as_str().to_owned(),
                seq: event.seq,
                existing,
            }));
        }
    }
    // Closed.
    if let Some(head) = &head
        && head.closed
    {
        return Ok(Err(Rejection::WorkloadClosed {
            workload: event.workload.as_str().to_owned(),
            seq: head.seq,
        }));
    }
    // Sequence.
    let expected = head.as_ref().map_or(0, |h| h.seq + 1);
    if event.seq != expected {
        return Ok(Err(Rejection::SequenceGap {
            workload: event.workload.as_str().to_owned(),
            expected,
            got: event.seq,
        }));
    }
    // Prev. `parse_event` guarantees prev is present iff seq > 0.
    if let Some(head) = &head
        && let Some(prev) = event.prev
        && prev != head.event_id
    {
        return Ok(Err(Rejection::PrevMismatch {
            prev_seq: head.seq,
            expected: head.event_id,
            got: prev,
        }));
    }
    // Parents, and the workloads they are in.
    let mut owners: Vec<(WorkloadId, RuntimeId)> = Vec::new();
    for (position, parent) in event.parents.iter().enumerate() {
        match view.event_owner(parent)? {
            Some(owner)
                if owner.0 != event.workload && !owners.iter().any(|(w, _)| *w == owner.0) =>
            {
                owners.push(owner);
            }
            Some(_) => {}
            // Unknown, or a governance statement: not an event to derive from.
            None if view.event_index(parent)?.is_none() => {
                return Ok(Err(Rejection::UnknownParent {
                    parent: *parent,
                    position,
                }));
            }
            None => {}
        }
    }
    // Halted: the event's runtime or workload, or a parent's.
    if let Some((workload, halt_index)) = halted_by(view, &event.runtime, &event.workload, &owners)?
    {
        return Ok(Err(Rejection::Halted {
            workload: workload.as_str().to_owned(),
            halt_index,
        }));
    }
    Ok(Ok(Admission::Event {
        event,
        derives_from: owners.into_iter().map(|(w, _)| w).collect(),
    }))
}

fn admit_governance<V: LedgerView>(
    c: &Candidate,
    view: &V,
    ctx: &RuleContext<'_>,
) -> Result<Result<Admission, Rejection>, V::Error> {
    let key_id = c.envelope.key_id;
    // Key known: only authority keys sign governance statements.
    let Some(authority) = ctx.authorities.get(&key_id) else {
        return Ok(Err(Rejection::UnknownKey {
            key_id,
            role: "authority",
        }));
    };
    // Signature. (Authority keys are configuration: they are never revoked in the log.)
    if !c.signature_ok(authority) {
        return Ok(Err(Rejection::BadSignature { key_id }));
    }
    // Payload schema (weak keys are refused here).
    let statement = match parse_governance(&c.envelope.payload) {
        Ok(s) => s,
        Err(e) => return Ok(Err(e.into())),
    };
    // Clock skew.
    if let Err(r) = check_skew(statement.at(), ctx) {
        return Ok(Err(r));
    }
    let admission = match statement {
        GovernanceStatement::Key(statement) => match admit_key_statement(statement, view, ctx)? {
            Ok(a) => a,
            Err(r) => return Ok(Err(r)),
        },
        GovernanceStatement::Halt(statement) => match admit_halt_statement(statement, view)? {
            Ok(a) => a,
            Err(r) => return Ok(Err(r)),
        },
    };
    // The same statement under another signature.
    if let Some(index) = view.event_index(&c.event_id)? {
        return Ok(Err(Rejection::DuplicateEvent {
            event_id: c.event_id,
            index,
        }));
    }
    Ok(Ok(admission))
}

/// A grant or revocation against the key registry.
fn admit_key_statement<V: LedgerView>(
    statement: Box<KeyStatement>,
    view: &V,
    ctx: &RuleContext<'_>,
) -> Result<Result<Admission, Rejection>, V::Error> {
    let conflict = |reason| {
        Err(Rejection::KeyConflict {
            key_id: statement.key_id,
            reason,
        })
    };
    let existing = view.key(&statement.key_id)?;
    Ok(match (statement.action, existing) {
        (GovernanceAction::Grant, Some(_)) => conflict(KeyConflictReason::AlreadyGranted),
        (GovernanceAction::Grant, None) if ctx.authorities.get(&statement.key_id).is_some() => {
            conflict(KeyConflictReason::AuthorityKey)
        }
        (GovernanceAction::Grant, None) => Ok(Admission::Grant(statement)),
        (_, None) => conflict(KeyConflictReason::NotGranted),
        (_, Some(k)) if k.runtime != statement.runtime => conflict(KeyConflictReason::OtherRuntime),
        (_, Some(k)) if k.revoked_index.is_some() => conflict(KeyConflictReason::AlreadyRevoked),
        (_, Some(k)) => Ok(Admission::Revoke {
            statement,
            key: Box::new(k),
        }),
    })
}

/// A halt or resume against the active halts.
fn admit_halt_statement<V: LedgerView>(
    statement: HaltStatement,
    view: &V,
) -> Result<Result<Admission, Rejection>, V::Error> {
    let active = view.active_halt(&statement.target)?;
    let conflict = |reason| {
        Err(Rejection::GovernanceConflict {
            target: statement.target.to_string(),
            reason,
        })
    };
    Ok(match (statement.action, active) {
        (GovernanceAction::Halt, Some(index)) => {
            conflict(GovernanceConflictReason::AlreadyHalted(index))
        }
        (GovernanceAction::Halt, None) => {
            let members = halt_members(view, &statement.target)?;
            Ok(Admission::Halt {
                statement: Box::new(statement),
                members,
            })
        }
        (_, None) => conflict(GovernanceConflictReason::NotHalted),
        (_, Some(halt_index)) => {
            let members = resume_members(view, &statement.target, halt_index)?;
            Ok(Admission::Resume {
                statement: Box::new(statement),
                halt_index,
                members,
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use ed25519_dalek::SigningKey;
    use serde_json::json;
    use time::macros::datetime;

    use super::*;
    use crate::keys::public_key_base64;

    const NOW: OffsetDateTime = datetime!(2026-11-26 12:00:00 UTC);

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    /// A log held in maps.
    #[derive(Default)]
    struct MapView {
        keys: HashMap<KeyId, KeyRecord>,
        events: HashMap<EventId, (u64, SignedEnvelope)>,
        positions: HashMap<(String, u64), EventId>,
        heads: HashMap<String, WorkloadHead>,
        /// Lookups by event ID or by position, counted.
        lookups: std::cell::Cell<u32>,
    }

    /// No halts and no derivations: the halt rules are tested in
    /// `governance` and, end to end, over `BatchState` in `state`.
    impl GovernanceView for MapView {
        type Error = std::convert::Infallible;
        fn workload_halts(&self, _: &WorkloadId) -> Result<Vec<u64>, Self::Error> {
            Ok(Vec::new())
        }
        fn active_halt(&self, _: &crate::event::Target) -> Result<Option<u64>, Self::Error> {
            Ok(None)
        }
        fn derived_workloads(&self, _: &WorkloadId) -> Result<Vec<WorkloadId>, Self::Error> {
            Ok(Vec::new())
        }
        fn runtime_workloads(&self, _: &RuntimeId) -> Result<Vec<WorkloadId>, Self::Error> {
            Ok(Vec::new())
        }
    }

    impl LedgerView for MapView {
        fn event_owner(
            &self,
            id: &EventId,
        ) -> Result<Option<(WorkloadId, RuntimeId)>, Self::Error> {
            Ok(self
                .events
                .get(id)
                .and_then(|(_, env)| parse_event(&env.payload).ok())
                .map(|e| (e.workload, e.runtime)))
        }
        fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, Self::Error> {
            Ok(self.keys.get(id).cloned())
        }
        fn event_index(&self, id: &EventId) -> Result<Option<u64>, Self::Error> {
            self.lookups.set(self.lookups.get() + 1);
            Ok(self.events.get(id).map(|(i, _)| *i))
        }
        fn identical_entry(
            &self,
            id: &EventId,
            envelope: &SignedEnvelope,
        ) -> Result<Option<u64>, Self::Error> {
            self.lookups.set(self.lookups.get() + 1);
            Ok(match self.events.get(id) {
                Some((index, stored)) if stored == envelope => Some(*index),
                _ => None,
            })
        }
        fn workload_event(&self, w: &WorkloadId, seq: u64) -> Result<Option<EventId>, Self::Error> {
            self.lookups.set(self.lookups.get() + 1);
            Ok(self.positions.get(&(w.as_str().to_owned(), seq)).copied())
        }
        fn workload_head(&self, w: &WorkloadId) -> Result<Option<WorkloadHead>, Self::Error> {
            Ok(self.heads.get(w.as_str()).cloned())
        }
    }

    impl MapView {
        fn grant(&mut self, runtime: &str, k: &SigningKey, index: u64) {
            let public_key = k.verifying_key();
            self.keys.insert(
                KeyId::from_public_key(&public_key),
                KeyRecord {
                    key_id: KeyId::from_public_key(&public_key),
                    public_key,
                    runtime: RuntimeId::new(runtime).expect("runtime"),
                    granted_index: index,
                    revoked_index: None,
                    not_before: None,
                    not_after: None,
                    scope: None,
                },
            );
        }

        /// Records an admitted event as the sequencer would.
        fn append(&mut self, env: &SignedEnvelope, index: u64) {
            let event = parse_event(&env.payload).expect("event");
            let id = env.event_id();
            self.events.insert(id, (index, env.clone()));
            self.positions
                .insert((event.workload.as_str().to_owned(), event.seq), id);
            self.heads.insert(
                event.workload.as_str().to_owned(),
                WorkloadHead {
                    seq: event.seq,
                    event_id: id,
                    closed: event.closes_workload(),
                    runtime: event.runtime,
                },
            );
        }
    }

    fn event(k: &SigningKey, v: serde_json::Value) -> Candidate {
        Candidate::new(SignedEnvelope::sign(
            PayloadType::Event,
            serde_json::to_vec(&v).expect("json"),
            k,
        ))
    }

    fn ev(runtime: &str, workload: &str, seq: u64, prev: Option<EventId>) -> serde_json::Value {
        let mut v = json!({"runtime": runtime, "workload": workload, "seq": seq,
            "kind": "step", "at": "2026-11-26T12:00:00Z"});
        if let Some(p) = prev {
            v["prev"] = json!(p.to_string());
        }
        v
    }

    #[track_caller]
    fn check(view: &MapView, c: &Candidate, want: Result<(), &str>) {
        let authorities = Authorities::new([key(100).verifying_key()]);
        let ctx = RuleContext::at(&authorities, integration_ms(NOW), Duration::minutes(5))
            .expect("representable");
        let verdict = |c: &Candidate| match admit(c, view, &ctx) {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let got = verdict(c);
        // Parsing the payload early (off the sequencer) changes nothing.
        let mut early = c.clone();
        early.preparse();
        assert_eq!(verdict(&early), got, "pre-parsed candidate");
        let got = got.map(|_| ()).map_err(|r| rejection_name(&r));
        assert_eq!(got, want.map_err(str::to_owned));
    }

    fn rejection_name(r: &Rejection) -> String {
        let s = format!("{r:?}");
        s.split(|c: char| !c.is_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_owned()
    }

    fn setup() -> (MapView, SigningKey, EventId) {
        let mut v = MapView::default();
        let k = key(1);
        v.grant("agent/a", &k, 0);
        let start = event(&k, ev("agent/a", "w", 0, None));
        v.append(&start.envelope, 1);
        (v, k, start.event_id)
    }

    #[test]
    fn a_valid_chain_is_admitted() {
        let (v, k, start) = setup();
        check(&v, &event(&k, ev("agent/a", "w", 1, Some(start))), Ok(()));
        check(&v, &event(&k, ev("agent/a", "other", 0, None)), Ok(()));
        let mut with_parent = ev("agent/a", "child", 0, None);
        with_parent["parents"] = json!([start.to_string()]);
        check(&v, &event(&k, with_parent), Ok(()));
    }

    #[test]
    fn each_rule_names_its_failure() {
        let (mut v, k, start) = setup();
        let ghost = EventId::of_payload(b"ghost");
        check(
            &v,
            &event(&key(9), ev("agent/a", "w", 1, Some(start))),
            Err("UnknownKey"),
        );
        check(
            &v,
            &event(&k, ev("agent/b", "x", 0, None)),
            Err("RuntimeMismatch"),
        );
        check(
            &v,
            &event(&k, ev("agent/a", "w", 0, None)),
            Err("DuplicateEvent"),
        );
        let mut other_start = ev("agent/a", "w", 0, None);
        other_start["kind"] = json!("again");
        check(&v, &event(&k, other_start), Err("Equivocation"));
        check(
            &v,
            &event(&k, ev("agent/a", "w", 2, Some(start))),
            Err("SequenceGap"),
        );
        check(
            &v,
            &event(&k, ev("agent/a", "w", 1, Some(ghost))),
            Err("PrevMismatch"),
        );
        let mut orphan = ev("agent/a", "o", 0, None);
        orphan["parents"] = json!([start.to_string(), ghost.to_string()]);
        check(&v, &event(&k, orphan), Err("UnknownParent"));
        let mut late = ev("agent/a", "late", 0, None);
        late["at"] = json!("2026-11-26T12:05:01Z");
        check(&v, &event(&k, late), Err("ClockSkew"));
        let mut on_edge = ev("agent/a", "edge", 0, None);
        on_edge["at"] = json!("2026-11-26T11:55:00Z");
        check(&v, &event(&k, on_edge), Ok(()));
        check(
            &v,
            &event(&k, json!({"runtime": "agent/a"})),
            Err("InvalidPayload"),
        );
        // Another runtime continuing agent/a's workload.
        let kb = key(2);
        v.grant("agent/b", &kb, 5);
        check(
            &v,
            &event(&kb, ev("agent/b", "w", 1, Some(start))),
            Err("RuntimeMismatch"),
        );
        // Revocation wins over everything after the signature.
        if let Some(r) = v.keys.get_mut(&KeyId::from_public_key(&k.verifying_key())) {
            r.revoked_index = Some(7);
        }
        check(
            &v,
            &event(&k, json!({"not": "a payload"})),
            Err("RevokedKey"),
        );
    }

    #[test]
    fn checks_run_in_contract_order() {
        let (v, k, _) = setup();
        // Bad signature and a bad payload: the signature is checked first.
        let mut c = event(&k, json!({"bad": true}));
        c.envelope.payload.push(b' ');
        c.event_id = c.envelope.event_id();
        check(&v, &c, Err("BadSignature"));
        // A precomputed verdict is used as is (only `precheck_signature`
        // sets it outside this module; this forges one to show it is read).
        let mut c = event(&k, ev("agent/a", "p", 0, None));
        c.signature = Some(false);
        check(&v, &c, Err("BadSignature"));
        // Runtime mismatch before clock skew; skew before sequence.
        let mut both = ev("agent/b", "q", 3, Some(EventId::of_payload(b"x")));
        both["at"] = json!("2020-01-01T00:00:00Z");
        check(&v, &event(&k, both), Err("RuntimeMismatch"));
        let mut skew_and_gap = ev("agent/a", "q", 3, Some(EventId::of_payload(b"x")));
        skew_and_gap["at"] = json!("2020-01-01T00:00:00Z");
        check(&v, &event(&k, skew_and_gap), Err("ClockSkew"));
    }

    #[test]
    fn a_signature_verdict_comes_only_from_verifying() {
        let (v, k, _) = setup();
        let good = || event(&k, ev("agent/a", "p", 0, None));
        // Verified under the key the envelope names.
        let mut c = good();
        assert!(!c.signature_verified());
        c.precheck_signature(&k.verifying_key());
        assert!(c.signature_verified());
        check(&v, &c, Ok(()));
        // Another key leaves it unchecked; the rules then verify it themselves.
        let mut c = good();
        c.precheck_signature(&key(9).verifying_key());
        assert!(!c.signature_verified());
        check(&v, &c, Ok(()));
        // A payload changed after signing does not verify, early or late.
        let mut envelope = good().envelope().clone();
        envelope.payload.push(b' ');
        let mut c = Candidate::new(envelope);
        c.precheck_signature(&k.verifying_key());
        assert!(!c.signature_verified());
        check(&v, &c, Err("BadSignature"));
    }

    #[test]
    fn another_runtimes_workload_is_refused_before_its_state_is_read() {
        let (mut v, _, start) = setup();
        let kb = key(2);
        v.grant("agent/b", &kb, 5);
        // Each of these would otherwise reveal agent/a's workload "w": its
        // event at seq 0 (equivocation), its head (sequence gap, prev), or
        // be judged on its time first (skew).
        let mut stale = ev("agent/b", "w", 0, None);
        stale["at"] = json!("2020-01-01T00:00:00Z");
        for payload in [
            ev("agent/b", "w", 0, None),
            ev("agent/b", "w", 7, Some(start)),
            ev("agent/b", "w", 1, Some(EventId::of_payload(b"guess"))),
            stale,
        ] {
            let c = event(&kb, payload);
            check(&v, &c, Err("RuntimeMismatch"));
            let authorities = Authorities::new([key(100).verifying_key()]);
            let ctx = RuleContext::at(&authorities, integration_ms(NOW), Duration::minutes(5))
                .expect("representable");
            let Ok(Err(r)) = admit(&c, &v, &ctx) else {
                panic!("admitted an event into another runtime's workload");
            };
            assert!(
                !r.to_string().contains(&start.to_string()),
                "the refusal names the other runtime's event: {r}"
            );
        }
    }

    #[test]
    fn the_rule_clock_is_the_integration_millisecond() {
        let authorities = Authorities::default();
        let ms = integration_ms(NOW) + 123;
        let ctx = RuleContext::at(&authorities, ms, Duration::minutes(5)).expect("time");
        assert_eq!(ctx.integrated_at_ms(), ms);
        assert_eq!(integration_ms(ctx.now()), ms);
        // Sub-millisecond parts of a clock are dropped, before and after the epoch.
        let fine = NOW + Duration::nanoseconds(999_999);
        assert_eq!(integration_ms(fine), integration_ms(NOW));
        assert_eq!(
            integration_ms(OffsetDateTime::UNIX_EPOCH - Duration::nanoseconds(1)),
            0
        );
        assert!(RuleContext::at(&authorities, u64::MAX, Duration::minutes(5)).is_none());
    }

    fn governance(signer: &SigningKey, action: &str, runtime: &str, k: &SigningKey) -> Candidate {
        let p = json!({"action": action, "runtime": runtime,
            "public_key": public_key_base64(&k.verifying_key()), "at": "2026-11-26T12:00:00Z"});
        Candidate::new(SignedEnvelope::sign(
            PayloadType::Governance,
            serde_json::to_vec(&p).expect("json"),
            signer,
        ))
    }

    #[test]
    fn governance_rules() {
        let (mut v, k, _) = setup();
        let authority = key(100);
        check(
            &v,
            &governance(&authority, "grant", "agent/c", &key(3)),
            Ok(()),
        );
        check(
            &v,
            &governance(&k, "grant", "agent/c", &key(3)),
            Err("UnknownKey"),
        );
        check(
            &v,
            &governance(&authority, "grant", "agent/c", &k),
            Err("KeyConflict"),
        );
        check(
            &v,
            &governance(&authority, "grant", "agent/c", &authority),
            Err("KeyConflict"),
        );
        check(
            &v,
            &governance(&authority, "revoke", "agent/a", &key(3)),
            Err("KeyConflict"),
        );
        check(
            &v,
            &governance(&authority, "revoke", "agent/z", &k),
            Err("KeyConflict"),
        );
        check(&v, &governance(&authority, "revoke", "agent/a", &k), Ok(()));
        if let Some(r) = v.keys.get_mut(&KeyId::from_public_key(&k.verifying_key())) {
            r.revoked_index = Some(7);
        }
        check(
            &v,
            &governance(&authority, "revoke", "agent/a", &k),
            Err("KeyConflict"),
        );
        // An event type signed by the authority is not a runtime event.
        check(
            &v,
            &event(&authority, ev("agent/a", "n", 0, None)),
            Err("UnknownKey"),
        );
    }

    #[test]
    fn identical_envelopes_are_found_before_any_check() {
        let (mut v, k, _) = setup();
        let c = event(&k, ev("agent/a", "w", 0, None));
        assert_eq!(find_identical(&c, &v).ok().flatten(), Some(1));
        // Even once the key is revoked.
        if let Some(r) = v.keys.get_mut(&KeyId::from_public_key(&k.verifying_key())) {
            r.revoked_index = Some(7);
        }
        assert_eq!(find_identical(&c, &v).ok().flatten(), Some(1));
        // The same payload under another signature is not identical.
        let k2 = key(4);
        let resigned = Candidate::new(SignedEnvelope::sign(
            PayloadType::Event,
            c.envelope.payload.clone(),
            &k2,
        ));
        assert_eq!(find_identical(&resigned, &v).ok().flatten(), None);
    }

    #[test]
    fn an_event_at_a_free_position_is_admitted_without_lookups() {
        let (v, k, start) = setup();
        let authorities = Authorities::new([key(100).verifying_key()]);
        let ctx = RuleContext::at(&authorities, integration_ms(NOW), Duration::minutes(5))
            .expect("representable");
        let lookups = |c: &Candidate| {
            let mut c = c.clone();
            c.preparse();
            v.lookups.set(0);
            let identical = find_identical(&c, &v).ok().flatten();
            let admitted = admit(&c, &v, &ctx).ok().map(|r| r.is_ok());
            (identical, admitted, v.lookups.get())
        };
        // The next event of a workload, and the first of a new one.
        let next = event(&k, ev("agent/a", "w", 1, Some(start)));
        assert_eq!(lookups(&next), (None, Some(true), 0));
        assert_eq!(
            lookups(&event(&k, ev("agent/a", "n", 0, None))),
            (None, Some(true), 0)
        );
        // A taken position is looked up: the identical envelope is found,
        // the same payload re-signed is a duplicate, another payload at the
        // position an equivocation (as without the pre-parse, see check).
        let again = event(&k, ev("agent/a", "w", 0, None));
        let (found, _, n) = lookups(&again);
        assert_eq!(found, Some(1));
        assert!(n > 0);
        let k2 = key(4);
        let mut v2 = v;
        v2.grant("agent/a", &k2, 0);
        let resigned = Candidate::new(SignedEnvelope::sign(
            PayloadType::Event,
            again.envelope.payload.clone(),
            &k2,
        ));
        check(&v2, &resigned, Err("DuplicateEvent"));
        let mut other = ev("agent/a", "w", 0, None);
        other["kind"] = json!("other");
        check(&v2, &event(&k, other), Err("Equivocation"));
    }
}
