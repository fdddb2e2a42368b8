//! Runtime events and governance statements: validated payloads.
//!
//! [`parse_event`] and [`parse_governance`] turn the payload bytes of a DSSE
//! envelope into core types whose every field has been checked. The rules
//! (the wire contract, also published as `schemas/json/event-payload.schema.json`
//! and `governance-payload.schema.json`):
//!
//! - The payload is at most [`MAX_PAYLOAD_BYTES`] bytes of UTF-8 JSON: one
//!   object, no unknown fields, no duplicate keys at any depth (a duplicate
//!   inside `attrs` would let two readers see two different events behind one
//!   event ID), and no explicit `null` for an optional field.
//! - `runtime`, `workload`: 1-128 characters of `[A-Za-z0-9._:/@-]`.
//! - `seq`: an integer in `0..=u64::MAX` (no fraction, no exponent).
//! - `prev`: an event ID (64 lowercase hex), required iff `seq > 0`.
//! - `parents`: optional array of at most [`MAX_PARENTS`] distinct event IDs.
//! - `kind`: 1-64 characters of `[a-z0-9._-]`.
//! - `at`: an RFC 3339 timestamp in UTC, written `YYYY-MM-DDTHH:MM:SS[.frac]Z`
//!   (upper-case `T` and `Z`; numeric offsets, even `+00:00`, are refused).
//! - `attrs`: optional JSON object.
//! - `domain`: optional trust domain, 1-64 characters of `[a-z0-9.-]`.
//! - Governance: `action` is `grant`, `revoke`, `halt` or `resume`.
//!   `grant`/`revoke` need `runtime` and `public_key` (canonical base64 of a
//!   32-byte Ed25519 point of large order, [`parse_public_key`]); a grant may
//!   add `not_before` < `not_after` (timestamps) and a `scope` of 1-32
//!   patterns per field ([`Pattern`]). `halt`/`resume` need a `target`
//!   (`{"workload": W}` or `{"runtime": R}`) and may give a `reason` (1-1024
//!   characters). A field that belongs to another action is refused.
//!
//! Errors name the field (`seq`, `parents[3]`, `attrs.k`, or `""` for the
//! whole payload) and the reason. The first failing rule is reported, checking
//! size, JSON syntax and duplicate keys, object shape, unknown fields, then the
//! fields in the order above.
//!
//! These are stateless checks; the log-dependent rules (key known, sequence,
//! prev matches, parents exist) are in [`rules`](crate::rules).

use std::cell::RefCell;
use std::fmt;
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;
use lineage_schemas::{EventPayload, GovernancePayload, MapOnly};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub use lineage_schemas::GovernanceAction;
use lineage_schemas::{GrantScope, HaltTarget};

use crate::keys::{EventId, KeyError, KeyId, parse_public_key, truncate};

/// Largest accepted payload, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 32768;
/// Most parents an event may name.
pub const MAX_PARENTS: usize = 16;
/// Longest runtime or workload identifier, in characters.
pub const MAX_IDENTIFIER_CHARS: usize = 128;
/// Longest event kind, in characters.
pub const MAX_KIND_CHARS: usize = 64;
/// Longest trust domain, in characters.
pub const MAX_DOMAIN_CHARS: usize = 64;
/// Most patterns in one scope set.
pub const MAX_SCOPE_PATTERNS: usize = 32;
/// Longest halt or resume reason, in characters.
pub const MAX_REASON_CHARS: usize = 1024;
/// The event kind that closes its workload.
pub const WORKLOAD_END: &str = "workload.end";

/// What is wrong with one field of a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldReason {
    /// A required field is absent.
    #[error("missing")]
    Missing,
    /// The field is not part of the payload type.
    #[error("unknown field")]
    Unknown,
    /// The key appears twice in the same object.
    #[error("duplicate key")]
    DuplicateKey,
    /// The JSON value has the wrong type (or is `null`).
    #[error("expected {expected}")]
    WrongType {
        /// What was expected, for example `"string"` or `"non-negative integer"`.
        expected: &'static str,
    },
    /// Too short or too long, counted in characters.
    #[error("length {len} is outside {min}..={max}")]
    Length {
        /// Length given.
        len: usize,
        /// Shortest allowed.
        min: usize,
        /// Longest allowed.
        max: usize,
    },
    /// A character outside the field's charset.
    #[error("character {ch:?} at position {position} is not allowed")]
    Character {
        /// The first offending character.
        ch: char,
        /// Its position, in characters from 0.
        position: usize,
    },
    /// Not an event ID (64 lowercase hex digits).
    #[error("not an event ID (64 lowercase hex digits)")]
    NotEventId,
    /// `prev` is absent although `seq > 0`.
    #[error("required when seq > 0")]
    PrevRequired,
    /// `prev` is present although `seq == 0`.
    #[error("must be absent when seq is 0")]
    PrevForbidden,
    /// More parents than [`MAX_PARENTS`].
    #[error("{count} parents, at most {max} allowed")]
    TooManyParents {
        /// Number given.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// The same parent twice.
    #[error("same event as parents[{first}]")]
    DuplicateParent {
        /// Position of its first occurrence.
        first: usize,
    },
    /// Not an RFC 3339 timestamp of the form `YYYY-MM-DDTHH:MM:SS[.frac]Z`.
    #[error("not an RFC 3339 timestamp")]
    NotTimestamp,
    /// An RFC 3339 timestamp that does not end in `Z`.
    #[error("timestamp must be in UTC and end in Z")]
    NotUtc,
    /// `action` is not `grant`, `revoke`, `halt` or `resume`.
    #[error("unknown action {value:?}; expected \"grant\", \"revoke\", \"halt\" or \"resume\"")]
    UnknownAction {
        /// The given action (at most 80 characters of it).
        value: String,
    },
    /// The field belongs to another action.
    #[error("not allowed in a {action} statement")]
    NotForAction {
        /// The statement's action.
        action: &'static str,
    },
    /// `not_after` is not after `not_before`.
    #[error("must be after not_before")]
    EmptyWindow,
    /// A target names neither exactly one `workload` nor one `runtime`.
    #[error("expected exactly one of \"workload\" or \"runtime\"")]
    NotTarget,
    /// `public_key` is refused; [`KeyError::WeakKey`] for a small-order key.
    #[error("{0}")]
    PublicKey(KeyError),
}

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Over [`MAX_PAYLOAD_BYTES`].
    #[error("payload is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Size given.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not UTF-8 JSON, or trailing bytes after the value.
    #[error("payload is not valid JSON: {message}")]
    Syntax {
        /// The JSON parser's message.
        message: String,
        /// Line of the error, from 1.
        line: usize,
        /// Column of the error, from 1.
        column: usize,
    },
    /// Valid JSON, but not an object.
    #[error("payload is not a JSON object")]
    NotAnObject,
    /// One field breaks a rule.
    #[error("field `{field}`: {reason}")]
    Field {
        /// The field: `seq`, `parents[3]`, `attrs.k`, ...
        field: String,
        /// What is wrong with it.
        reason: FieldReason,
    },
}

impl PayloadError {
    /// The offending field, or `""` when the error is about the whole payload.
    pub fn field(&self) -> &str {
        match self {
            PayloadError::Field { field, .. } => field,
            PayloadError::TooLarge { .. }
            | PayloadError::Syntax { .. }
            | PayloadError::NotAnObject => "",
        }
    }

    fn field_error(field: impl Into<String>, reason: FieldReason) -> PayloadError {
        PayloadError::Field {
            field: field.into(),
            reason,
        }
    }
}

/// Checks length (in characters) and charset; the first failure wins.
fn check_chars(text: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<(), FieldReason> {
    let len = text.chars().count();
    if len == 0 || len > max {
        return Err(FieldReason::Length { len, min: 1, max });
    }
    match text.chars().enumerate().find(|(_, c)| !allowed(*c)) {
        Some((position, ch)) => Err(FieldReason::Character { ch, position }),
        None => Ok(()),
    }
}

fn is_identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '@' | '-')
}

fn is_kind_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-')
}

macro_rules! identifier {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(std::sync::Arc<str>);

        impl $name {
            /// Checks 1-128 characters of `[A-Za-z0-9._:/@-]`.
            ///
            /// # Errors
            /// [`FieldReason::Length`] or [`FieldReason::Character`].
            pub fn new(text: &str) -> Result<$name, FieldReason> {
                check_chars(text, MAX_IDENTIFIER_CHARS, is_identifier_char)?;
                Ok($name(text.into()))
            }

            /// The identifier text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = FieldReason;

            fn from_str(text: &str) -> Result<$name, FieldReason> {
                $name::new(text)
            }
        }
    };
}

identifier!(
    /// A runtime identifier: 1-128 characters of `[A-Za-z0-9._:/@-]`.
    RuntimeId
);
identifier!(
    /// A workload identifier: 1-128 characters of `[A-Za-z0-9._:/@-]`.
    WorkloadId
);

fn is_domain_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-')
}

/// A trust domain: 1-64 characters of `[a-z0-9.-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Checks 1-64 characters of `[a-z0-9.-]`.
    ///
    /// # Errors
    /// [`FieldReason::Length`] or [`FieldReason::Character`].
    pub fn new(text: &str) -> Result<Domain, FieldReason> {
        check_chars(text, MAX_DOMAIN_CHARS, is_domain_char)?;
        Ok(Domain(text.to_owned()))
    }

    /// The domain text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A scope pattern: an exact value, or a prefix followed by `*` that
/// matches every value starting with it (`tool.*`, `run-*`, `*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pattern(String);

impl Pattern {
    /// Checks the pattern: the identifier charset (`[A-Za-z0-9._:/@-]`), an
    /// optional final `*`, 1-128 characters in all.
    ///
    /// # Errors
    /// [`FieldReason::Length`] or [`FieldReason::Character`] (a `*` anywhere
    /// but last is a character error).
    pub fn new(text: &str) -> Result<Pattern, FieldReason> {
        let body = text.strip_suffix('*').unwrap_or(text);
        let len = text.chars().count();
        if len == 0 || len > MAX_IDENTIFIER_CHARS {
            return Err(FieldReason::Length {
                len,
                min: 1,
                max: MAX_IDENTIFIER_CHARS,
            });
        }
        match body
            .chars()
            .enumerate()
            .find(|(_, c)| !is_identifier_char(*c))
        {
            Some((position, ch)) => Err(FieldReason::Character { ch, position }),
            None => Ok(Pattern(text.to_owned())),
        }
    }

    /// Whether `value` matches: equal to an exact pattern, or starting with
    /// a prefix pattern's prefix.
    pub fn matches(&self, value: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(prefix) => value.starts_with(prefix),
            None => self.0 == value,
        }
    }

    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a grant allows. An absent set allows everything; a listed set
/// allows the values matching one of its patterns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scope {
    /// Event kinds.
    pub kinds: Option<Vec<Pattern>>,
    /// Workload IDs.
    pub workloads: Option<Vec<Pattern>>,
    /// Trust domains (an event without a domain matches no listed set).
    pub domains: Option<Vec<Pattern>>,
}

impl Scope {
    /// The first field of `event` outside the scope (`kind`, `workload`,
    /// `domain`, checked in that order) with the event's value of it (empty
    /// for an absent domain), or `None` when the event is in scope.
    pub fn first_violation<'e>(&self, event: &'e Event) -> Option<(&'static str, &'e str)> {
        let fields = [
            ("kind", &self.kinds, Some(event.kind.as_str())),
            ("workload", &self.workloads, Some(event.workload.as_str())),
            (
                "domain",
                &self.domains,
                event.domain.as_ref().map(Domain::as_str),
            ),
        ];
        fields.into_iter().find_map(|(field, set, value)| {
            let allowed = match set {
                None => true,
                Some(patterns) => value.is_some_and(|v| patterns.iter().any(|p| p.matches(v))),
            };
            (!allowed).then(|| (field, value.unwrap_or("")))
        })
    }

    /// The scope in its wire form.
    pub fn to_wire(&self) -> GrantScope {
        let texts = |set: &Option<Vec<Pattern>>| {
            set.as_ref()
                .map(|ps| ps.iter().map(|p| p.0.clone()).collect())
        };
        GrantScope {
            kinds: texts(&self.kinds),
            workloads: texts(&self.workloads),
            domains: texts(&self.domains),
        }
    }

    /// Checks a wire scope.
    ///
    /// # Errors
    /// The first bad set (`scope.kinds`: empty or over
    /// [`MAX_SCOPE_PATTERNS`]) or pattern (`scope.kinds[2]`).
    pub fn from_wire(wire: &GrantScope) -> Result<Scope, PayloadError> {
        fn set(
            name: &str,
            list: &Option<Vec<String>>,
        ) -> Result<Option<Vec<Pattern>>, PayloadError> {
            let Some(list) = list else { return Ok(None) };
            let field = format!("scope.{name}");
            if list.is_empty() || list.len() > MAX_SCOPE_PATTERNS {
                return Err(PayloadError::field_error(
                    field,
                    FieldReason::Length {
                        len: list.len(),
                        min: 1,
                        max: MAX_SCOPE_PATTERNS,
                    },
                ));
            }
            list.iter()
                .enumerate()
                .map(|(i, p)| {
                    Pattern::new(p)
                        .map_err(|r| PayloadError::field_error(format!("{field}[{i}]"), r))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        }
        Ok(Scope {
            kinds: set("kinds", &wire.kinds)?,
            workloads: set("workloads", &wire.workloads)?,
            domains: set("domains", &wire.domains)?,
        })
    }
}

/// What a halt or resume applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// One workload (and every workload deriving from it).
    Workload(WorkloadId),
    /// Every workload a runtime started (and every workload deriving from them).
    Runtime(RuntimeId),
}

impl Target {
    /// The target in its wire form.
    pub fn to_wire(&self) -> HaltTarget {
        match self {
            Target::Workload(w) => HaltTarget::Workload(w.as_str().to_owned()),
            Target::Runtime(r) => HaltTarget::Runtime(r.as_str().to_owned()),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Workload(w) => write!(f, "workload {w}"),
            Target::Runtime(r) => write!(f, "runtime {r}"),
        }
    }
}

/// Parses a payload timestamp: RFC 3339, `T` separator, ends in `Z`.
///
/// # Errors
/// [`FieldReason::NotTimestamp`] when it is not RFC 3339 in that form;
/// [`FieldReason::NotUtc`] when it is RFC 3339 but has a numeric offset or a
/// lower-case `z`.
pub fn parse_timestamp(text: &str) -> Result<OffsetDateTime, FieldReason> {
    let at = OffsetDateTime::parse(text, &Rfc3339).map_err(|_| FieldReason::NotTimestamp)?;
    // `time` accepts any separator byte and a lower-case `z`; the wire form is strict.
    if text.as_bytes().get(10) != Some(&b'T') {
        return Err(FieldReason::NotTimestamp);
    }
    if !text.ends_with('Z') {
        return Err(FieldReason::NotUtc);
    }
    Ok(at)
}

/// A validated runtime event.
///
/// Build it with [`parse_event`] or `TryFrom<&EventPayload>`, which guarantee
/// that `prev` is present iff `seq > 0` and that `parents` holds at most
/// [`MAX_PARENTS`] distinct IDs. The fields are public for reading (the rules
/// and the store match on them); a value assembled by hand carries no such
/// guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The runtime that emitted it.
    pub runtime: RuntimeId,
    /// The workload it belongs to.
    pub workload: WorkloadId,
    /// Its position in the workload's chain.
    pub seq: u64,
    /// The workload's previous event; `Some` iff `seq > 0`.
    pub prev: Option<EventId>,
    /// Other events it derives from, in the order given.
    pub parents: Vec<EventId>,
    /// What happened.
    pub kind: String,
    /// When it happened, as the runtime reports it.
    pub at: OffsetDateTime,
    /// Free-form attributes, when given.
    pub attrs: Option<Attrs>,
    /// The trust domain it executes in, when given.
    pub domain: Option<Domain>,
}

impl Event {
    /// Whether this event closes its workload (kind [`WORKLOAD_END`]).
    pub fn closes_workload(&self) -> bool {
        self.kind == WORKLOAD_END
    }
}

/// An event's `attrs`: a JSON object with no duplicate key at any depth,
/// kept as its JSON text and read into a tree only by those who look at it
/// (the explorer, the verifier). Admission never does: building the tree of
/// every event was a quarter of the allocations on the ingest path.
///
/// Two values are equal when their objects are (the text of a parsed
/// payload is as the runtime wrote it, that of an [`EventPayload`] is
/// serde_json's).
#[derive(Clone)]
pub struct Attrs(Box<str>);

impl Attrs {
    /// The object's JSON text.
    pub fn as_json(&self) -> &str {
        &self.0
    }

    /// The object as a tree.
    pub fn to_map(&self) -> Map<String, Value> {
        // Checked when the value was made: the text is one JSON object.
        serde_json::from_str(&self.0).unwrap_or_default()
    }

    /// The member `name`, if any.
    pub fn get(&self, name: &str) -> Option<Value> {
        self.to_map().remove(name)
    }

    fn from_map(map: &Map<String, Value>) -> Attrs {
        Attrs(Value::Object(map.clone()).to_string().into_boxed_str())
    }
}

impl PartialEq for Attrs {
    fn eq(&self, other: &Attrs) -> bool {
        self.0 == other.0 || self.to_map() == other.to_map()
    }
}

impl Eq for Attrs {}

impl fmt::Debug for Attrs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for Attrs {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(s)
    }
}

/// A validated governance statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GovernanceStatement {
    /// A grant or revocation of a runtime key.
    Key(Box<KeyStatement>),
    /// A halt or resume.
    Halt(HaltStatement),
}

impl GovernanceStatement {
    /// What it does.
    pub fn action(&self) -> GovernanceAction {
        match self {
            GovernanceStatement::Key(k) => k.action,
            GovernanceStatement::Halt(h) => h.action,
        }
    }

    /// When the statement was made.
    pub fn at(&self) -> OffsetDateTime {
        match self {
            GovernanceStatement::Key(k) => k.at,
            GovernanceStatement::Halt(h) => h.at,
        }
    }

    /// The action's name: `grant`, `revoke`, `halt` or `resume`.
    pub fn action_name(&self) -> &'static str {
        action_name(self.action())
    }

    /// One line for people: `grant of key K to runtime R`, `halt of workload W`.
    pub fn summary(&self) -> String {
        match self {
            GovernanceStatement::Key(k) => {
                let to = if k.action == GovernanceAction::Grant {
                    "to"
                } else {
                    "of"
                };
                format!(
                    "{} of key {} {to} runtime {}",
                    self.action_name(),
                    k.key_id,
                    k.runtime
                )
            }
            GovernanceStatement::Halt(h) => format!("{} of {}", self.action_name(), h.target),
        }
    }

    /// The statement in its wire form (the signed payload's fields; times
    /// are rendered in RFC 3339 and may differ in form from the signed text).
    pub fn to_wire(&self) -> GovernancePayload {
        let time = |t: OffsetDateTime| t.format(&Rfc3339).unwrap_or_default();
        match self {
            GovernanceStatement::Key(k) => GovernancePayload {
                not_before: k.not_before.map(time),
                not_after: k.not_after.map(time),
                scope: k.scope.as_ref().map(Scope::to_wire),
                ..GovernancePayload::key(
                    k.action,
                    k.runtime.as_str().to_owned(),
                    crate::keys::public_key_base64(&k.public_key),
                    time(k.at),
                )
            },
            GovernanceStatement::Halt(h) => {
                GovernancePayload::halt(h.action, h.target.to_wire(), h.reason.clone(), time(h.at))
            }
        }
    }
}

/// The name of an action: `grant`, `revoke`, `halt` or `resume`.
pub fn action_name(action: GovernanceAction) -> &'static str {
    match action {
        GovernanceAction::Grant => "grant",
        GovernanceAction::Revoke => "revoke",
        GovernanceAction::Halt => "halt",
        GovernanceAction::Resume => "resume",
    }
}

/// A grant or revocation of a runtime key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatement {
    /// Grant or revoke.
    pub action: GovernanceAction,
    /// The runtime the key belongs to.
    pub runtime: RuntimeId,
    /// The runtime's key (never small-order).
    pub public_key: VerifyingKey,
    /// Its key ID.
    pub key_id: KeyId,
    /// When the statement was made.
    pub at: OffsetDateTime,
    /// Grant: events integrated before it are refused.
    pub not_before: Option<OffsetDateTime>,
    /// Grant: events integrated at or after it are refused.
    pub not_after: Option<OffsetDateTime>,
    /// Grant: what the key may sign.
    pub scope: Option<Scope>,
}

/// A halt or resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaltStatement {
    /// Halt or resume.
    pub action: GovernanceAction,
    /// The workload or runtime.
    pub target: Target,
    /// Why, for people.
    pub reason: Option<String>,
    /// When the statement was made.
    pub at: OffsetDateTime,
}

/// Parses an event ID; `field` names it in the error (built only then).
fn event_id(field: impl FnOnce() -> String, text: &str) -> Result<EventId, PayloadError> {
    text.parse()
        .map_err(|_| PayloadError::field_error(field(), FieldReason::NotEventId))
}

impl TryFrom<&EventPayload> for Event {
    type Error = PayloadError;

    /// Checks every field rule (not the size, which needs the bytes).
    fn try_from(wire: &EventPayload) -> Result<Event, PayloadError> {
        validate_event(EventFields {
            runtime: &wire.runtime,
            workload: &wire.workload,
            seq: wire.seq,
            prev: wire.prev.as_deref(),
            parents: &wire.parents,
            kind: wire.kind.clone(),
            at: &wire.at,
            attrs: wire.attrs.as_ref().map(Attrs::from_map),
            domain: wire.domain.as_deref(),
        })
    }
}

/// An event payload's fields, each of the right JSON type, not yet checked.
struct EventFields<'a, P> {
    runtime: &'a str,
    workload: &'a str,
    seq: u64,
    prev: Option<&'a str>,
    parents: &'a [P],
    kind: String,
    at: &'a str,
    attrs: Option<Attrs>,
    domain: Option<&'a str>,
}

/// Checks every field rule of an event, in the order of the module docs.
fn validate_event<P: AsRef<str>>(wire: EventFields<'_, P>) -> Result<Event, PayloadError> {
    let runtime =
        RuntimeId::new(wire.runtime).map_err(|r| PayloadError::field_error("runtime", r))?;
    let workload =
        WorkloadId::new(wire.workload).map_err(|r| PayloadError::field_error("workload", r))?;
    let prev = match (wire.seq, wire.prev) {
        (0, None) => None,
        (0, Some(_)) => {
            return Err(PayloadError::field_error(
                "prev",
                FieldReason::PrevForbidden,
            ));
        }
        (_, None) => return Err(PayloadError::field_error("prev", FieldReason::PrevRequired)),
        (_, Some(text)) => Some(event_id(|| "prev".into(), text)?),
    };
    if wire.parents.len() > MAX_PARENTS {
        return Err(PayloadError::field_error(
            "parents",
            FieldReason::TooManyParents {
                count: wire.parents.len(),
                max: MAX_PARENTS,
            },
        ));
    }
    let mut parents = Vec::with_capacity(wire.parents.len());
    for (i, text) in wire.parents.iter().enumerate() {
        let id = event_id(|| format!("parents[{i}]"), text.as_ref())?;
        if let Some(first) = parents.iter().position(|p| *p == id) {
            return Err(PayloadError::field_error(
                format!("parents[{i}]"),
                FieldReason::DuplicateParent { first },
            ));
        }
        parents.push(id);
    }
    check_chars(&wire.kind, MAX_KIND_CHARS, is_kind_char)
        .map_err(|r| PayloadError::field_error("kind", r))?;
    let at = parse_timestamp(wire.at).map_err(|r| PayloadError::field_error("at", r))?;
    let domain = wire
        .domain
        .map(Domain::new)
        .transpose()
        .map_err(|r| PayloadError::field_error("domain", r))?;
    Ok(Event {
        runtime,
        workload,
        seq: wire.seq,
        prev,
        parents,
        kind: wire.kind,
        at,
        attrs: wire.attrs,
        domain,
    })
}

impl TryFrom<&GovernancePayload> for GovernanceStatement {
    type Error = PayloadError;

    /// Checks every field rule (not the size, which needs the bytes), in
    /// field order: fields of another action first, then `runtime`,
    /// `public_key`, `not_before`, `not_after`, `scope`, `target`, `reason`,
    /// `at`.
    fn try_from(wire: &GovernancePayload) -> Result<GovernanceStatement, PayloadError> {
        let action = wire.action;
        let name = action_name(action);
        let present = [
            ("runtime", wire.runtime.is_some()),
            ("public_key", wire.public_key.is_some()),
            ("not_before", wire.not_before.is_some()),
            ("not_after", wire.not_after.is_some()),
            ("scope", wire.scope.is_some()),
            ("target", wire.target.is_some()),
            ("reason", wire.reason.is_some()),
        ];
        let allowed: &[&str] = match action {
            GovernanceAction::Grant => {
                &["runtime", "public_key", "not_before", "not_after", "scope"]
            }
            GovernanceAction::Revoke => &["runtime", "public_key"],
            GovernanceAction::Halt | GovernanceAction::Resume => &["target", "reason"],
        };
        if let Some((field, _)) = present
            .iter()
            .find(|(field, given)| *given && !allowed.contains(field))
        {
            return Err(PayloadError::field_error(
                *field,
                FieldReason::NotForAction { action: name },
            ));
        }
        let timestamp = |field: &str, text: &Option<String>| {
            text.as_deref()
                .map(parse_timestamp)
                .transpose()
                .map_err(|r| PayloadError::field_error(field, r))
        };
        match action {
            GovernanceAction::Grant | GovernanceAction::Revoke => {
                let runtime = RuntimeId::new(required_str("runtime", &wire.runtime)?)
                    .map_err(|r| PayloadError::field_error("runtime", r))?;
                let public_key = parse_public_key(required_str("public_key", &wire.public_key)?)
                    .map_err(|e| {
                        PayloadError::field_error("public_key", FieldReason::PublicKey(e))
                    })?;
                let not_before = timestamp("not_before", &wire.not_before)?;
                let not_after = timestamp("not_after", &wire.not_after)?;
                if let (Some(start), Some(end)) = (not_before, not_after)
                    && end <= start
                {
                    return Err(PayloadError::field_error(
                        "not_after",
                        FieldReason::EmptyWindow,
                    ));
                }
                let scope = wire.scope.as_ref().map(Scope::from_wire).transpose()?;
                let at =
                    parse_timestamp(&wire.at).map_err(|r| PayloadError::field_error("at", r))?;
                Ok(GovernanceStatement::Key(Box::new(KeyStatement {
                    action,
                    runtime,
                    key_id: KeyId::from_public_key(&public_key),
                    public_key,
                    at,
                    not_before,
                    not_after,
                    scope,
                })))
            }
            GovernanceAction::Halt | GovernanceAction::Resume => {
                let target = match wire.target.as_ref() {
                    None => return Err(PayloadError::field_error("target", FieldReason::Missing)),
                    Some(HaltTarget::Workload(w)) => Target::Workload(
                        WorkloadId::new(w)
                            .map_err(|r| PayloadError::field_error("target.workload", r))?,
                    ),
                    Some(HaltTarget::Runtime(r)) => Target::Runtime(
                        RuntimeId::new(r)
                            .map_err(|e| PayloadError::field_error("target.runtime", e))?,
                    ),
                };
                if let Some(reason) = &wire.reason {
                    check_chars(reason, MAX_REASON_CHARS, |_| true)
                        .map_err(|r| PayloadError::field_error("reason", r))?;
                }
                let at =
                    parse_timestamp(&wire.at).map_err(|r| PayloadError::field_error("at", r))?;
                Ok(GovernanceStatement::Halt(HaltStatement {
                    action,
                    target,
                    reason: wire.reason.clone(),
                    at,
                }))
            }
        }
    }
}

fn required_str<'a>(field: &str, value: &'a Option<String>) -> Result<&'a str, PayloadError> {
    value
        .as_deref()
        .ok_or_else(|| PayloadError::field_error(field, FieldReason::Missing))
}

/// Parses and validates an event payload.
///
/// # Errors
/// [`PayloadError`] for the first rule the payload breaks (see the module docs).
pub fn parse_event(payload: &[u8]) -> Result<Event, PayloadError> {
    if payload.len() <= MAX_PAYLOAD_BYTES
        && let Ok(MapOnly(fast)) = serde_json::from_slice::<MapOnly<FastEvent<'_>>>(payload)
    {
        // Every field has its JSON type, none is unknown, repeated or null,
        // and attrs has no duplicate key: the checks left are the same
        // function the general path ends in, so the verdict is the same.
        return validate_event(EventFields {
            runtime: fast.runtime,
            workload: fast.workload,
            seq: fast.seq,
            prev: fast.prev.0,
            parents: fast.parents.0.as_deref().unwrap_or_default(),
            kind: fast.kind.to_owned(),
            at: fast.at,
            attrs: fast.attrs.0.map(|a| Attrs(a.0.get().into())),
            domain: fast.domain.0,
        });
    }
    parse_event_in_full(payload)
}

/// [`parse_event`] for every payload: a generic JSON tree first, so that
/// whatever is wrong is named precisely and in the documented order.
fn parse_event_in_full(payload: &[u8]) -> Result<Event, PayloadError> {
    let mut fields = Fields::parse(payload)?;
    let runtime = fields.take("runtime");
    let workload = fields.take("workload");
    let seq = fields.take("seq");
    let prev = fields.take("prev");
    let parents = fields.take("parents");
    let kind = fields.take("kind");
    let at = fields.take("at");
    let attrs = fields.take("attrs");
    let domain = fields.take("domain");
    fields.finish()?;
    let wire = EventPayload {
        runtime: string("runtime", required("runtime", runtime)?)?,
        workload: string("workload", required("workload", workload)?)?,
        seq: unsigned("seq", required("seq", seq)?)?,
        prev: prev.map(|v| string("prev", v)).transpose()?,
        parents: parents
            .map(|v| strings("parents", v))
            .transpose()?
            .unwrap_or_default(),
        kind: string("kind", required("kind", kind)?)?,
        at: string("at", required("at", at)?)?,
        attrs: attrs.map(|v| object("attrs", v)).transpose()?,
        domain: domain.map(|v| string("domain", v)).transpose()?,
    };
    Event::try_from(&wire)
}

/// Parses and validates a governance payload.
///
/// # Errors
/// [`PayloadError`] for the first rule the payload breaks; a small-order
/// public key is `Field { field: "public_key", reason:
/// FieldReason::PublicKey(KeyError::WeakKey) }`.
pub fn parse_governance(payload: &[u8]) -> Result<GovernanceStatement, PayloadError> {
    let mut fields = Fields::parse(payload)?;
    let action = fields.take("action");
    let runtime = fields.take("runtime");
    let public_key = fields.take("public_key");
    let not_before = fields.take("not_before");
    let not_after = fields.take("not_after");
    let scope = fields.take("scope");
    let target = fields.take("target");
    let reason = fields.take("reason");
    let at = fields.take("at");
    fields.finish()?;
    let action = string("action", required("action", action)?)?;
    let action = match action.as_str() {
        "grant" => GovernanceAction::Grant,
        "revoke" => GovernanceAction::Revoke,
        "halt" => GovernanceAction::Halt,
        "resume" => GovernanceAction::Resume,
        other => {
            return Err(PayloadError::field_error(
                "action",
                FieldReason::UnknownAction {
                    value: truncate(other),
                },
            ));
        }
    };
    let wire = GovernancePayload {
        action,
        runtime: runtime.map(|v| string("runtime", v)).transpose()?,
        public_key: public_key.map(|v| string("public_key", v)).transpose()?,
        not_before: not_before.map(|v| string("not_before", v)).transpose()?,
        not_after: not_after.map(|v| string("not_after", v)).transpose()?,
        scope: scope.map(wire_scope).transpose()?,
        target: target.map(wire_target).transpose()?,
        reason: reason.map(|v| string("reason", v)).transpose()?,
        at: string("at", required("at", at)?)?,
    };
    GovernanceStatement::try_from(&wire)
}

fn wire_scope(value: Value) -> Result<GrantScope, PayloadError> {
    let mut fields = Fields(object("scope", value)?);
    let kinds = fields.take("kinds");
    let workloads = fields.take("workloads");
    let domains = fields.take("domains");
    if let Some((name, _)) = fields.0.into_iter().next() {
        return Err(PayloadError::field_error(
            format!("scope.{name}"),
            FieldReason::Unknown,
        ));
    }
    Ok(GrantScope {
        kinds: kinds.map(|v| strings("scope.kinds", v)).transpose()?,
        workloads: workloads
            .map(|v| strings("scope.workloads", v))
            .transpose()?,
        domains: domains.map(|v| strings("scope.domains", v)).transpose()?,
    })
}

fn wire_target(value: Value) -> Result<HaltTarget, PayloadError> {
    let map = object("target", value)?;
    let mut members = map.into_iter();
    let target = match (members.next(), members.next()) {
        (Some((name, v)), None) if name == "workload" => {
            HaltTarget::Workload(string("target.workload", v)?)
        }
        (Some((name, v)), None) if name == "runtime" => {
            HaltTarget::Runtime(string("target.runtime", v)?)
        }
        _ => return Err(PayloadError::field_error("target", FieldReason::NotTarget)),
    };
    Ok(target)
}

fn required(field: &str, value: Option<Value>) -> Result<Value, PayloadError> {
    value.ok_or_else(|| PayloadError::field_error(field, FieldReason::Missing))
}

fn wrong_type(field: impl Into<String>, expected: &'static str) -> PayloadError {
    PayloadError::field_error(field, FieldReason::WrongType { expected })
}

fn string(field: &str, value: Value) -> Result<String, PayloadError> {
    match value {
        Value::String(s) => Ok(s),
        _ => Err(wrong_type(field, "string")),
    }
}

fn unsigned(field: &str, value: Value) -> Result<u64, PayloadError> {
    value
        .as_u64()
        .ok_or_else(|| wrong_type(field, "non-negative integer"))
}

fn strings(field: &str, value: Value) -> Result<Vec<String>, PayloadError> {
    let Value::Array(items) = value else {
        return Err(wrong_type(field, "array of strings"));
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s),
            _ => Err(wrong_type(format!("{field}[{i}]"), "string")),
        })
        .collect()
}

fn object(field: &str, value: Value) -> Result<Map<String, Value>, PayloadError> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(wrong_type(field, "object")),
    }
}

/// The common event payload, read in one pass without a generic JSON tree:
/// strings without escapes are borrowed, `attrs` is read strictly (no
/// duplicate keys at any depth). Anything it does not take exactly as the
/// general path would (an unknown, repeated or `null` field, a wrong type, a
/// string with escapes) fails it, and [`parse_event`] falls back to the
/// general path, which names the error; so it only ever decides payloads
/// the general path accepts as far as JSON types go. It is read through
/// [`MapOnly`]: serde's derive would also take a JSON array of the fields,
/// and a payload is an object.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FastEvent<'a> {
    runtime: &'a str,
    workload: &'a str,
    seq: u64,
    #[serde(default, borrow)]
    prev: NotNull<&'a str>,
    #[serde(default, borrow)]
    parents: NotNull<Vec<&'a str>>,
    kind: &'a str,
    at: &'a str,
    #[serde(default, borrow)]
    attrs: NotNull<StrictObject<'a>>,
    #[serde(default, borrow)]
    domain: NotNull<&'a str>,
}

/// An optional field that may be absent (`None`, with `#[serde(default)]`)
/// but not `null`: `Option<T>` would take `null` as absent.
struct NotNull<T>(Option<T>);

impl<T> Default for NotNull<T> {
    fn default() -> NotNull<T> {
        NotNull(None)
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for NotNull<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<NotNull<T>, D::Error> {
        T::deserialize(d).map(|v| NotNull(Some(v)))
    }
}

/// A JSON object with no duplicate key at any depth, borrowed as its text.
/// Checked without building a tree: a failure only sends the payload to the
/// full parse, which names what is wrong.
struct StrictObject<'a>(&'a serde_json::value::RawValue);

impl<'de: 'a, 'a> serde::Deserialize<'de> for StrictObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<StrictObject<'a>, D::Error> {
        let raw = <&serde_json::value::RawValue>::deserialize(d)?;
        if !raw.get().starts_with('{') {
            return Err(de::Error::custom("attrs is not an object"));
        }
        let mut inner = serde_json::Deserializer::from_str(raw.get());
        NoDuplicateKeys::default()
            .deserialize(&mut inner)
            .map_err(de::Error::custom)?;
        Ok(StrictObject(raw))
    }
}

/// Reads any JSON value and fails on a duplicate object key at any depth
/// or a non-finite number, keeping nothing: the checks of [`StrictValue`]
/// without its tree. It also fails past [`FAST_DEPTH`] levels of nesting:
/// it reads `attrs` again on its own, so serde_json's recursion limit
/// (which the general path counts from the payload's root) would start
/// afresh here; a deep `attrs` goes to the general path, which decides it.
#[derive(Clone, Copy, Default)]
struct NoDuplicateKeys {
    /// Arrays and objects around the value read.
    depth: usize,
}

/// Nesting past which [`NoDuplicateKeys`] leaves `attrs` to the general
/// path: well inside serde_json's limit of 128, counted from the root.
const FAST_DEPTH: usize = 64;

impl NoDuplicateKeys {
    /// The reader of a member or element of a value at this depth, or an
    /// error past [`FAST_DEPTH`].
    fn inner<E: de::Error>(&self) -> Result<NoDuplicateKeys, E> {
        if self.depth >= FAST_DEPTH {
            return Err(E::custom("attrs nested too deep for the one-pass read"));
        }
        Ok(NoDuplicateKeys {
            depth: self.depth + 1,
        })
    }
}

/// Past this many keys an object's keys are checked by sorting them.
const LINEAR_KEYS: usize = 16;

impl<'de> DeserializeSeed<'de> for NoDuplicateKeys {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for NoDuplicateKeys {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        if v.is_finite() {
            Ok(())
        } else {
            Err(E::custom("non-finite number"))
        }
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        while seq.next_element_seed(inner)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<(), A::Error> {
        let inner = self.inner()?;
        // The first keys on the stack, compared one by one; a long object's
        // keys in a Vec, sorted at the end.
        let mut first: [Option<Key<'de>>; LINEAR_KEYS] = Default::default();
        let mut rest: Vec<Key<'de>> = Vec::new();
        let mut n = 0;
        while let Some(key) = access.next_key::<Key<'de>>()? {
            if n < LINEAR_KEYS {
                if first[..n].iter().flatten().any(|k| *k == key) {
                    return Err(de::Error::custom("duplicate key"));
                }
                first[n] = Some(key);
            } else {
                if rest.is_empty() {
                    rest.extend(first.iter_mut().filter_map(Option::take));
                }
                rest.push(key);
            }
            n += 1;
            access.next_value_seed(inner)?;
        }
        rest.sort_unstable();
        if rest.windows(2).any(|w| w[0] == w[1]) {
            return Err(de::Error::custom("duplicate key"));
        }
        Ok(())
    }
}

/// An object key, borrowed from the text unless it has escapes.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a>(std::borrow::Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct Keys;
        impl<'de> Visitor<'de> for Keys {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(Keys)
    }
}

/// The top-level members of a payload object, consumed field by field so that
/// whatever is left over is an unknown field.
struct Fields(Map<String, Value>);

impl Fields {
    /// Size check, strict JSON parse (duplicate keys refused at any depth),
    /// object check.
    fn parse(payload: &[u8]) -> Result<Fields, PayloadError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(PayloadError::TooLarge {
                size: payload.len(),
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        let duplicate = RefCell::new(None);
        let mut de = serde_json::Deserializer::from_slice(payload);
        let parsed = StrictValue::root(&duplicate)
            .deserialize(&mut de)
            .and_then(|v| de.end().map(|()| v));
        let value = match parsed {
            Ok(v) => v,
            Err(e) => {
                return Err(match duplicate.into_inner() {
                    Some(field) => PayloadError::field_error(field, FieldReason::DuplicateKey),
                    None => PayloadError::Syntax {
                        message: e.to_string(),
                        line: e.line(),
                        column: e.column(),
                    },
                });
            }
        };
        match value {
            Value::Object(map) => Ok(Fields(map)),
            _ => Err(PayloadError::NotAnObject),
        }
    }

    fn take(&mut self, name: &str) -> Option<Value> {
        self.0.remove(name)
    }

    /// Fails on the first field not taken.
    fn finish(self) -> Result<(), PayloadError> {
        match self.0.into_iter().next() {
            Some((name, _)) => Err(PayloadError::field_error(name, FieldReason::Unknown)),
            None => Ok(()),
        }
    }
}

/// Deserializes any JSON value into a [`Value`], refusing duplicate object keys
/// (`serde_json::Value` silently keeps the last one). On a duplicate it records
/// the key's path in `duplicate` and fails. Depth is bounded by serde_json's
/// recursion limit (128).
struct StrictValue<'a> {
    path: Path<'a>,
    duplicate: &'a RefCell<Option<String>>,
}

/// Where a value sits in the payload, as a chain of borrowed steps: the
/// text (`attrs.a[2].b`) is built only for a duplicate key's error, not for
/// every value read.
#[derive(Clone, Copy)]
enum Path<'a> {
    /// The whole payload.
    Root,
    /// A member of the object at the parent path.
    Key(&'a Path<'a>, &'a str),
    /// An element of the array at the parent path.
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Key(parent, key) => match parent.render() {
                p if p.is_empty() => (*key).to_owned(),
                p => format!("{p}.{key}"),
            },
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

impl<'a> StrictValue<'a> {
    fn root(duplicate: &'a RefCell<Option<String>>) -> StrictValue<'a> {
        StrictValue {
            path: Path::Root,
            duplicate,
        }
    }

    fn child<'b>(&'b self, path: Path<'b>) -> StrictValue<'b> {
        StrictValue {
            path,
            duplicate: self.duplicate,
        }
    }
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) =
            seq.next_element_seed(self.child(Path::Index(&self.path, items.len())))?
        {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            if map.contains_key(&key) {
                *self.duplicate.borrow_mut() = Some(Path::Key(&self.path, &key).render());
                return Err(de::Error::custom("duplicate key"));
            }
            let value = access.next_value_seed(self.child(Path::Key(&self.path, &key)))?;
            map.insert(key, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn hex_id(n: usize) -> String {
        format!("{n:064x}")
    }

    fn valid_event() -> Value {
        json!({
            "runtime": "node-1.example:prod/a@b_c-d",
            "workload": "job/42",
            "seq": 1,
            "prev": A,
            "parents": [B],
            "kind": "step.done_ok-1",
            "at": "2025-06-01T12:34:56.789Z",
            "attrs": {"exit": 0, "nested": {"k": [1, 2]}}
        })
    }

    fn event_with(edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
        let mut v = valid_event();
        edit(v.as_object_mut().expect("object"));
        serde_json::to_vec(&v).expect("serialize")
    }

    #[track_caller]
    fn check(payload: &[u8], want: Result<(), PayloadError>) {
        assert_eq!(
            parse_event(payload).map(|_| ()),
            want,
            "{}",
            String::from_utf8_lossy(payload)
        );
    }

    #[track_caller]
    fn check_field(payload: &[u8], field: &str, reason: FieldReason) {
        check(payload, Err(PayloadError::field_error(field, reason)));
    }

    #[test]
    fn parses_a_full_event() {
        let event = parse_event(&event_with(|_| {})).expect("valid");
        assert_eq!(event.runtime.as_str(), "node-1.example:prod/a@b_c-d");
        assert_eq!(event.workload.to_string(), "job/42");
        assert_eq!(event.seq, 1);
        assert_eq!(event.prev, Some(A.parse().expect("id")));
        assert_eq!(event.parents, vec![B.parse::<EventId>().expect("id")]);
        assert_eq!(event.kind, "step.done_ok-1");
        assert_eq!(event.at.unix_timestamp(), 1_748_781_296);
        assert_eq!(event.at.millisecond(), 789);
        assert_eq!(event.attrs.expect("attrs").get("exit"), Some(json!(0)));
    }

    #[test]
    fn parses_a_minimal_first_event() {
        let payload =
            br#"{"runtime":"r","workload":"w","seq":0,"kind":"k","at":"2025-01-01T00:00:00Z"}"#;
        let event = parse_event(payload).expect("valid");
        assert_eq!((event.seq, event.prev, event.parents.len()), (0, None, 0));
        assert_eq!(event.attrs, None);
        // Whitespace is fine; the event ID covers the exact bytes.
        check(b" {\"runtime\":\"r\",\"workload\":\"w\",\"seq\":0,\"kind\":\"k\",\"at\":\"2025-01-01T00:00:00Z\"}\n", Ok(()));
    }

    #[test]
    fn whole_payload_rules() {
        check(
            b"",
            Err(PayloadError::Syntax {
                message: "EOF while parsing a value at line 1 column 0".into(),
                line: 1,
                column: 0,
            }),
        );
        assert!(matches!(
            parse_event(b"{"),
            Err(PayloadError::Syntax { .. })
        ));
        assert!(matches!(
            parse_event(b"{} {}"),
            Err(PayloadError::Syntax { .. })
        ));
        assert!(matches!(
            parse_event(b"\xef\xbb\xbf{}"),
            Err(PayloadError::Syntax { .. })
        ));
        assert!(matches!(
            parse_event(b"{\"runtime\":\"\xff\"}"),
            Err(PayloadError::Syntax { .. })
        ));
        assert!(matches!(
            parse_event(&[b'['; 200]),
            Err(PayloadError::Syntax { .. })
        ));
        check(b"[]", Err(PayloadError::NotAnObject));
        check(b"null", Err(PayloadError::NotAnObject));
        check(b"\"x\"", Err(PayloadError::NotAnObject));
        // Over-size, even when it would otherwise be valid.
        let big = event_with(|m| {
            m.insert(
                "attrs".into(),
                json!({"pad": "x".repeat(MAX_PAYLOAD_BYTES)}),
            );
        });
        check(
            &big,
            Err(PayloadError::TooLarge {
                size: big.len(),
                limit: MAX_PAYLOAD_BYTES,
            }),
        );
        // Exactly at the limit is accepted.
        let base = event_with(|m| {
            m.insert("attrs".into(), json!({"pad": ""}));
        });
        let pad = MAX_PAYLOAD_BYTES - base.len();
        let exact = event_with(|m| {
            m.insert("attrs".into(), json!({"pad": "x".repeat(pad)}));
        });
        assert_eq!(exact.len(), MAX_PAYLOAD_BYTES);
        check(&exact, Ok(()));
    }

    #[test]
    fn unknown_missing_and_duplicate_fields() {
        check_field(
            &event_with(|m| {
                m.insert("extra".into(), json!(1));
            }),
            "extra",
            FieldReason::Unknown,
        );
        check_field(
            &event_with(|m| {
                m.insert("Seq".into(), json!(1));
            }),
            "Seq",
            FieldReason::Unknown,
        );
        for field in ["runtime", "workload", "seq", "kind", "at"] {
            check_field(
                &event_with(|m| {
                    m.remove(field);
                }),
                field,
                FieldReason::Missing,
            );
        }
        let dup = br#"{"runtime":"r","workload":"w","seq":0,"seq":0,"kind":"k","at":"2025-01-01T00:00:00Z"}"#;
        check_field(dup, "seq", FieldReason::DuplicateKey);
        let dup_attrs = br#"{"runtime":"r","workload":"w","seq":0,"kind":"k","at":"2025-01-01T00:00:00Z","attrs":{"a":{"b":1,"b":2}}}"#;
        check_field(dup_attrs, "attrs.a.b", FieldReason::DuplicateKey);
        let dup_in_array = br#"{"runtime":"r","workload":"w","seq":0,"kind":"k","at":"2025-01-01T00:00:00Z","attrs":{"l":[{"x":1,"x":1}]}}"#;
        check_field(dup_in_array, "attrs.l[0].x", FieldReason::DuplicateKey);
        // The wire type's serde derive refuses top-level duplicates too.
        assert!(serde_json::from_slice::<EventPayload>(dup).is_err());
    }

    #[test]
    fn json_types() {
        let wrong = |expected| FieldReason::WrongType { expected };
        check_field(
            &event_with(|m| {
                m.insert("runtime".into(), json!(1));
            }),
            "runtime",
            wrong("string"),
        );
        check_field(
            &event_with(|m| {
                m.insert("seq".into(), json!(-1));
            }),
            "seq",
            wrong("non-negative integer"),
        );
        check_field(
            &event_with(|m| {
                m.insert("seq".into(), json!(1.0));
            }),
            "seq",
            wrong("non-negative integer"),
        );
        check_field(
            &event_with(|m| {
                m.insert("seq".into(), json!("1"));
            }),
            "seq",
            wrong("non-negative integer"),
        );
        check_field(br#"{"runtime":"r","workload":"w","seq":18446744073709551616,"kind":"k","at":"2025-01-01T00:00:00Z"}"#, "seq", wrong("non-negative integer"));
        check_field(
            br#"{"runtime":"r","workload":"w","seq":1e2,"kind":"k","at":"2025-01-01T00:00:00Z"}"#,
            "seq",
            wrong("non-negative integer"),
        );
        check_field(
            &event_with(|m| {
                m.insert("prev".into(), Value::Null);
            }),
            "prev",
            wrong("string"),
        );
        check_field(
            &event_with(|m| {
                m.insert("parents".into(), Value::Null);
            }),
            "parents",
            wrong("array of strings"),
        );
        check_field(
            &event_with(|m| {
                m.insert("parents".into(), json!([A, 1]));
            }),
            "parents[1]",
            wrong("string"),
        );
        check_field(
            &event_with(|m| {
                m.insert("attrs".into(), Value::Null);
            }),
            "attrs",
            wrong("object"),
        );
        check_field(
            &event_with(|m| {
                m.insert("attrs".into(), json!([1]));
            }),
            "attrs",
            wrong("object"),
        );
        check_field(
            &event_with(|m| {
                m.insert("kind".into(), json!(["k"]));
            }),
            "kind",
            wrong("string"),
        );
        check_field(
            &event_with(|m| {
                m.insert("at".into(), json!(0));
            }),
            "at",
            wrong("string"),
        );
        // The largest seq is fine.
        check(
            &event_with(|m| {
                m.insert("seq".into(), json!(u64::MAX));
            }),
            Ok(()),
        );
    }

    #[test]
    fn identifier_charset_and_length() {
        for field in ["runtime", "workload"] {
            let set = |v: &str| {
                event_with(|m| {
                    m.insert(field.into(), json!(v));
                })
            };
            check(&set("A-z.0_9:/@"), Ok(()));
            check(&set(&"r".repeat(128)), Ok(()));
            check_field(
                &set(""),
                field,
                FieldReason::Length {
                    len: 0,
                    min: 1,
                    max: 128,
                },
            );
            check_field(
                &set(&"r".repeat(129)),
                field,
                FieldReason::Length {
                    len: 129,
                    min: 1,
                    max: 128,
                },
            );
            for (text, ch, position) in [
                ("a b", ' ', 1),
                ("a+b", '+', 1),
                ("é", 'é', 0),
                ("a\u{0}", '\u{0}', 1),
                ("a#", '#', 1),
                ("a\\", '\\', 1),
                ("x,y", ',', 1),
                ("a\n", '\n', 1),
                ("*", '*', 0),
            ] {
                check_field(&set(text), field, FieldReason::Character { ch, position });
            }
        }
        assert_eq!(RuntimeId::new("ok"), "ok".parse());
        assert!(WorkloadId::new("no spaces").is_err());
    }

    #[test]
    fn kind_charset_and_length() {
        let set = |v: &str| {
            event_with(|m| {
                m.insert("kind".into(), json!(v));
            })
        };
        check(&set("a.b_c-d0"), Ok(()));
        check(&set(&"k".repeat(64)), Ok(()));
        check_field(
            &set(""),
            "kind",
            FieldReason::Length {
                len: 0,
                min: 1,
                max: 64,
            },
        );
        check_field(
            &set(&"k".repeat(65)),
            "kind",
            FieldReason::Length {
                len: 65,
                min: 1,
                max: 64,
            },
        );
        for (text, ch, position) in [
            ("Step", 'S', 0),
            ("a:b", ':', 1),
            ("a/b", '/', 1),
            ("a@b", '@', 1),
            ("a b", ' ', 1),
        ] {
            check_field(&set(text), "kind", FieldReason::Character { ch, position });
        }
    }

    #[test]
    fn seq_and_prev() {
        check_field(
            &event_with(|m| {
                m.remove("prev");
            }),
            "prev",
            FieldReason::PrevRequired,
        );
        check_field(
            &event_with(|m| {
                m.insert("seq".into(), json!(0));
            }),
            "prev",
            FieldReason::PrevForbidden,
        );
        check(
            &event_with(|m| {
                m.insert("seq".into(), json!(0));
                m.remove("prev");
            }),
            Ok(()),
        );
        for bad in [
            "",
            "A".repeat(64).as_str(),
            &A[1..],
            &format!("{A}0"),
            &format!("{}g", &A[1..]),
        ] {
            check_field(
                &event_with(|m| {
                    m.insert("prev".into(), json!(bad));
                }),
                "prev",
                FieldReason::NotEventId,
            );
        }
    }

    #[test]
    fn parents() {
        let set = |v: Value| {
            event_with(|m| {
                m.insert("parents".into(), v);
            })
        };
        check(&set(json!([])), Ok(()));
        let sixteen: Vec<String> = (0..16).map(hex_id).collect();
        check(&set(json!(sixteen)), Ok(()));
        let seventeen: Vec<String> = (0..17).map(hex_id).collect();
        check_field(
            &set(json!(seventeen)),
            "parents",
            FieldReason::TooManyParents { count: 17, max: 16 },
        );
        check_field(
            &set(json!([A, B, A])),
            "parents[2]",
            FieldReason::DuplicateParent { first: 0 },
        );
        check_field(&set(json!([A, "x"])), "parents[1]", FieldReason::NotEventId);
        check_field(
            &set(json!([A.to_uppercase()])),
            "parents[0]",
            FieldReason::NotEventId,
        );
        // A parent may also be prev.
        check(&set(json!([A])), Ok(()));
    }

    #[test]
    fn timestamps() {
        let set = |v: &str| {
            event_with(|m| {
                m.insert("at".into(), json!(v));
            })
        };
        for ok in [
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:00.1Z",
            "2025-01-01T23:59:59.123456789Z",
            "1970-01-01T00:00:00Z",
            "2016-12-31T23:59:60Z",
        ] {
            check(&set(ok), Ok(()));
        }
        for not_utc in [
            "2025-01-01T00:00:00+00:00",
            "2025-01-01T00:00:00-00:00",
            "2025-01-01T02:00:00+02:00",
            "2025-01-01T00:00:00z",
        ] {
            check_field(&set(not_utc), "at", FieldReason::NotUtc);
        }
        for bad in [
            "",
            "2025-01-01",
            "2025-01-01 00:00:00Z",
            "2025-01-01t00:00:00Z",
            "2025-01-01X00:00:00Z",
            "2025-13-01T00:00:00Z",
            "2025-02-30T00:00:00Z",
            "2025-01-01T24:00:00Z",
            "2025-01-01T00:00:00",
            "2025-01-01T00:00:00.Z",
            "25-01-01T00:00:00Z",
            "2025-01-01T00:00:00ZZ",
            " 2025-01-01T00:00:00Z",
        ] {
            check_field(&set(bad), "at", FieldReason::NotTimestamp);
        }
    }

    fn valid_grant(key: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "action": "grant", "runtime": "rt-1", "public_key": key, "at": "2025-01-01T00:00:00Z"
        }))
        .expect("serialize")
    }

    fn key_b64(seed: u8) -> String {
        crate::keys::public_key_base64(
            &ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key(),
        )
    }

    #[track_caller]
    fn check_gov(payload: &[u8], want: Result<(), PayloadError>) {
        assert_eq!(
            parse_governance(payload).map(|_| ()),
            want,
            "{}",
            String::from_utf8_lossy(payload)
        );
    }

    #[test]
    fn governance_statements() {
        let key = key_b64(5);
        let GovernanceStatement::Key(g) = parse_governance(&valid_grant(&key)).expect("valid")
        else {
            panic!("a grant is a key statement");
        };
        assert_eq!(g.action, GovernanceAction::Grant);
        assert_eq!(g.runtime.as_str(), "rt-1");
        assert_eq!(g.key_id, KeyId::from_public_key(&g.public_key));
        assert_eq!(crate::keys::public_key_base64(&g.public_key), key);
        let revoke = String::from_utf8(valid_grant(&key))
            .expect("utf8")
            .replace("grant", "revoke");
        assert_eq!(
            parse_governance(revoke.as_bytes()).expect("valid").action(),
            GovernanceAction::Revoke
        );

        let edit = |f: &dyn Fn(&mut Map<String, Value>)| {
            let mut v: Value = serde_json::from_slice(&valid_grant(&key)).expect("json");
            f(v.as_object_mut().expect("object"));
            serde_json::to_vec(&v).expect("serialize")
        };
        let field = |f: &str, r| Err(PayloadError::field_error(f, r));
        check_gov(
            &edit(&|m| {
                m.insert("action".into(), json!("Grant"));
            }),
            field(
                "action",
                FieldReason::UnknownAction {
                    value: "Grant".into(),
                },
            ),
        );
        check_gov(
            &edit(&|m| {
                m.insert("action".into(), json!(1));
            }),
            field("action", FieldReason::WrongType { expected: "string" }),
        );
        check_gov(
            &edit(&|m| {
                m.insert("extra".into(), json!(1));
            }),
            field("extra", FieldReason::Unknown),
        );
        check_gov(
            &edit(&|m| {
                m.insert("seq".into(), json!(1));
            }),
            field("seq", FieldReason::Unknown),
        );
        for f in ["action", "runtime", "public_key", "at"] {
            check_gov(
                &edit(&|m| {
                    m.remove(f);
                }),
                field(f, FieldReason::Missing),
            );
        }
        check_gov(
            &edit(&|m| {
                m.insert("runtime".into(), json!("a b"));
            }),
            field(
                "runtime",
                FieldReason::Character {
                    ch: ' ',
                    position: 1,
                },
            ),
        );
        check_gov(
            &edit(&|m| {
                m.insert("at".into(), json!("2025-01-01T00:00:00+01:00"));
            }),
            field("at", FieldReason::NotUtc),
        );
        check_gov(
            &edit(&|m| {
                m.insert("public_key".into(), json!("AAAA"));
            }),
            field(
                "public_key",
                FieldReason::PublicKey(KeyError::WrongLength { len: 3 }),
            ),
        );
        check_gov(
            &edit(&|m| {
                m.insert("public_key".into(), json!(key.trim_end_matches('=')));
            }),
            field(
                "public_key",
                FieldReason::PublicKey(KeyError::NotBase64 {
                    input: key.trim_end_matches('=').into(),
                }),
            ),
        );
        let dup = br#"{"action":"grant","action":"revoke","runtime":"r","public_key":"k","at":"2025-01-01T00:00:00Z"}"#;
        check_gov(dup, field("action", FieldReason::DuplicateKey));
        assert!(serde_json::from_slice::<GovernancePayload>(dup).is_err());
        check_gov(b"[]", Err(PayloadError::NotAnObject));
        let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        check_gov(
            &big,
            Err(PayloadError::TooLarge {
                size: MAX_PAYLOAD_BYTES + 1,
                limit: MAX_PAYLOAD_BYTES,
            }),
        );
    }

    #[test]
    fn governance_refuses_weak_keys() {
        let b64 = |bytes: &[u8]| crate::keys::encode_base64(bytes);
        let mut identity = [0u8; 32];
        identity[0] = 1;
        for weak in [b64(&[0; 32]), b64(&identity)] {
            check_gov(
                &valid_grant(&weak),
                Err(PayloadError::field_error(
                    "public_key",
                    FieldReason::PublicKey(KeyError::WeakKey),
                )),
            );
            let revoke = String::from_utf8(valid_grant(&weak))
                .expect("utf8")
                .replace("grant", "revoke");
            assert!(parse_governance(revoke.as_bytes()).is_err());
        }
    }

    #[test]
    fn error_fields_and_messages() {
        let e = parse_event(&event_with(|m| {
            m.insert("parents".into(), json!([A, A]));
        }))
        .expect_err("dup");
        assert_eq!(e.field(), "parents[1]");
        assert_eq!(
            e.to_string(),
            "field `parents[1]`: same event as parents[0]"
        );
        assert_eq!(PayloadError::NotAnObject.field(), "");
    }

    /// Arbitrary JSON values, a few levels deep.
    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|n| json!(n)),
            any::<u64>().prop_map(|n| json!(n)),
            (-1e6f64..1e6).prop_map(|n| json!(n)),
            "[a-zA-Z0-9 ._:/@#-]{0,20}".prop_map(Value::String),
            Just(Value::String(A.into())),
            Just(Value::String("2025-01-01T00:00:00Z".into())),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z]{1,3}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Objects over the real field names with arbitrary values.
    fn payload_like() -> impl Strategy<Value = Vec<u8>> {
        let names = prop::sample::select(vec![
            "runtime",
            "workload",
            "seq",
            "prev",
            "parents",
            "kind",
            "at",
            "attrs",
            "action",
            "public_key",
            "other",
        ]);
        proptest::collection::btree_map(names, json_value(), 0..10).prop_map(|m| {
            serde_json::to_vec(&Value::Object(
                m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ))
            .unwrap_or_default()
        })
    }

    /// An object of `n` keys, key `j` named as key `i` when `dup` is
    /// `Some((i, j))`: long enough that duplicates are found by sorting.
    fn many_keys(n: usize, dup: Option<(usize, usize)>) -> String {
        let members: Vec<String> = (0..n)
            .map(|k| match dup {
                Some((i, j)) if k == j => format!("\"k{i}\":{k}"),
                _ => format!("\"k{k}\":{k}"),
            })
            .collect();
        format!("{{{}}}", members.join(","))
    }

    #[test]
    fn attrs_are_checked_without_a_tree() {
        let check = |text: &str| {
            NoDuplicateKeys::default()
                .deserialize(&mut serde_json::Deserializer::from_str(text))
                .is_ok()
        };
        assert!(check(&many_keys(40, None)));
        assert!(!check(&many_keys(40, Some((0, 39)))));
        assert!(!check(&many_keys(40, Some((20, 21)))));
        assert!(!check(&many_keys(8, Some((2, 5)))));
        assert!(!check(r#"{"a":[{"b":1,"b":2}]}"#));
        assert!(!check(r#"{"a":1,"\u0061":1}"#));
        assert!(check(r#"{"a":{"a":1},"b":[{"a":1},{"a":2}]}"#));
        // The event keeps the text as written and compares by value.
        let spaced = br#"{"runtime":"r","workload":"w","seq":0,"kind":"k","at":"2025-01-01T00:00:00Z","attrs": { "b" : [1, 2] , "a":"x" } }"#;
        let event = parse_event(spaced).expect("valid");
        let attrs = event.attrs.clone().expect("attrs");
        assert_eq!(attrs.as_json(), r#"{ "b" : [1, 2] , "a":"x" }"#);
        assert_eq!(attrs.get("a"), Some(json!("x")));
        assert_eq!(Some(event), parse_event_in_full(spaced).ok());
        // Nesting is bounded from the payload's root on both paths: attrs
        // read again on its own must not start a fresh recursion limit.
        for depth in [60, 70, 120, 125, 126, 127, 130] {
            let deep = format!(
                r#"{{"runtime":"r","workload":"w","seq":0,"kind":"k","at":"2025-01-01T00:00:00Z","attrs":{{"a":{}1{}}}}}"#,
                "[".repeat(depth),
                "]".repeat(depth)
            );
            assert_eq!(
                parse_event(deep.as_bytes()),
                parse_event_in_full(deep.as_bytes()),
                "attrs nested {depth} deep"
            );
        }
        let too_deep = format!(
            r#"{{"runtime":"r","workload":"w","seq":0,"kind":"k","at":"2025-01-01T00:00:00Z","attrs":{{"a":{}1{}}}}}"#,
            "[".repeat(126),
            "]".repeat(126)
        );
        assert!(parse_event(too_deep.as_bytes()).is_err());
    }

    /// Event payloads near the valid one: each field right (14 in 16),
    /// absent, or replaced (null, another type, escapes, a duplicate key
    /// inside); fields repeated, unknown fields added; one in eight the
    /// fields' values as a JSON array. About a third are valid events.
    fn near_events() -> impl Strategy<Value = Vec<u8>> {
        let id = format!("\"{A}\"");
        let fields: Vec<(&'static str, String)> = vec![
            ("runtime", "\"node-1.example\"".to_owned()),
            ("workload", "\"run-7\"".to_owned()),
            ("seq", "1".to_owned()),
            ("prev", id.clone()),
            ("parents", format!("[{id}]")),
            ("kind", "\"tool.call\"".to_owned()),
            ("at", "\"2026-01-01T00:00:00.5Z\"".to_owned()),
            (
                "attrs",
                "{\"a\":1,\"b\":{\"c\":[true,null,1.5]}}".to_owned(),
            ),
            ("domain", "\"prod.eu\"".to_owned()),
        ];
        let others: Vec<String> = [
            "null",
            "0",
            "-1",
            "1.0",
            "18446744073709551616",
            "\"\"",
            "\"\\u0061bc\"",
            "\"tool.call\"",
            "[]",
            "[\"x\"]",
            "{}",
            "{\"a\":1,\"a\":2}",
            "{\"a\":{\"b\":1,\"b\":1}}",
            "true",
            " { \"a\" : [ 1 , { } ] , \"b\" : \"\\u0062\" } ",
            "{\"a\":1,\"\\u0061\":2}",
            "{\"x\":1e400}",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .chain([many_keys(20, None), many_keys(20, Some((3, 18)))])
        .collect();
        let n = fields.len();
        (
            proptest::collection::vec((0u8..16, prop::sample::select(others)), n),
            proptest::collection::vec(0..n + 1, 0..3),
            0u8..8,
        )
            .prop_map(move |(choices, extra, form)| {
                if form == 0 {
                    // The array form serde's derive would read as a struct.
                    let values: Vec<&str> = fields
                        .iter()
                        .zip(&choices)
                        .map(|((_, value), (choice, other))| match choice {
                            1 => other.as_str(),
                            _ => value.as_str(),
                        })
                        .collect();
                    return format!("[{}]", values.join(",")).into_bytes();
                }
                let mut members: Vec<String> = Vec::new();
                for ((name, value), (choice, other)) in fields.iter().zip(&choices) {
                    match choice {
                        0 => {}
                        1 => members.push(format!("\"{name}\":{other}")),
                        _ => members.push(format!("\"{name}\":{value}")),
                    }
                }
                for e in extra {
                    match fields.get(e) {
                        Some((name, value)) => members.push(format!("\"{name}\":{value}")),
                        None => members.push("\"extra\":1".to_owned()),
                    }
                }
                format!("{{{}}}", members.join(",")).into_bytes()
            })
    }

    proptest! {
        /// The one-pass path and the general path give the same verdict,
        /// the same event or the same error, on payloads near valid ones
        /// and on arbitrary objects.
        #[test]
        fn the_fast_path_decides_as_the_general_path(payload in near_events()) {
            prop_assert_eq!(parse_event(&payload), parse_event_in_full(&payload));
        }

        #[test]
        fn the_fast_path_decides_as_the_general_path_on_any_object(payload in payload_like()) {
            prop_assert_eq!(parse_event(&payload), parse_event_in_full(&payload));
        }
    }

    #[test]
    fn the_fast_path_takes_the_common_event_and_leaves_the_rest() {
        let valid = event_with(|_| {});
        assert!(serde_json::from_slice::<FastEvent<'_>>(&valid).is_ok());
        for odd in [
            event_with(|m| {
                m.insert("prev".into(), Value::Null);
            }),
            // A string with a JSON escape cannot be borrowed.
            String::from_utf8(valid.clone())
                .unwrap_or_default()
                .replace("\"kind\":\"", "\"kind\":\"\\u0074")
                .into_bytes(),
            br#"{"seq":0,"seq":0}"#.to_vec(),
        ] {
            assert!(serde_json::from_slice::<FastEvent<'_>>(&odd).is_err());
            assert_eq!(parse_event(&odd), parse_event_in_full(&odd));
        }
        // serde's derive also reads a struct from a JSON array of its
        // fields; a payload is an object, so the array form is refused, as
        // the general path refuses it.
        for array in [
            format!(r#"["node-1.example","run-7",1,"{A}",[],"tool.call","2026-01-01T00:00:00Z"]"#),
            r#"["node-1.example","run-7",0]"#.to_owned(),
        ] {
            assert_eq!(
                parse_event(array.as_bytes()),
                parse_event_in_full(array.as_bytes())
            );
            assert!(parse_event(array.as_bytes()).is_err(), "{array}");
        }
        // The general path still takes it.
        let escaped = String::from_utf8(valid)
            .unwrap_or_default()
            .replace("\"kind\":\"", "\"kind\":\"\\u0074");
        assert!(parse_event(escaped.as_bytes()).is_ok(), "{escaped}");
    }

    proptest! {
        #[test]
        fn parsers_never_panic_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = parse_event(&bytes);
            let _ = parse_governance(&bytes);
        }

        #[test]
        fn parsers_never_panic_on_payload_like_objects(payload in payload_like()) {
            if let Ok(event) = parse_event(&payload) {
                prop_assert_eq!(event.prev.is_some(), event.seq > 0);
                prop_assert!(event.parents.len() <= MAX_PARENTS);
            }
            let _ = parse_governance(&payload);
        }

        #[test]
        fn parse_event_never_panics_on_edited_events(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        ) {
            let mut bytes = event_with(|_| {});
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            let _ = parse_event(&bytes);
        }
    }
}
