//! Lineage wire types and their JSON Schemas.
//!
//! **What it is.** The JSON shapes that cross a process boundary: the DSSE v1
//! envelope clients submit ([`Envelope`]), the two payloads it may carry
//! ([`EventPayload`], [`GovernancePayload`]), the receipt the log returns
//! ([`Receipt`]), RFC 9457 problem details ([`Problem`]) and the read API
//! responses. Every type derives `serde` and `schemars`; [`all_schemas`] renders
//! the JSON Schemas (draft 2020-12) checked in under `schemas/json/`, and a test
//! fails when they drift from these definitions.
//!
//! **What it is not.** It checks shape only: field names, JSON types, and (for
//! request types) that no unknown field appears. It does not check charsets,
//! lengths, hex, base64, timestamps or signatures; the schemas document those
//! rules as `pattern`s, but `lineage-ledger` (`event`, `dsse`) is what enforces
//! them, by building validated core types from these with `TryFrom`-style
//! parsers.
//!
//! **Versioning.** Request types and the receipt reject unknown fields
//! (`deny_unknown_fields`): a new field means a new payload type or receipt
//! format. Response types accept unknown fields, so clients keep working when
//! the server adds one.
//!
//! Specs followed: DSSE v1 (envelope and PAE), RFC 9457 (problem details),
//! RFC 3339 (timestamps), RFC 4648 §4 (standard base64 with padding).

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// DSSE `payloadType` of a runtime event.
pub const EVENT_PAYLOAD_TYPE: &str = "application/vnd.lineage.event.v1+json";
/// DSSE `payloadType` of a governance statement (key grant or revocation).
pub const GOVERNANCE_PAYLOAD_TYPE: &str = "application/vnd.lineage.grant.v1+json";
/// Value of [`Receipt::format`] for this version of the receipt.
///
/// The string says "bundle" for history: receipts were first called proof
/// bundles, and clients are written against this exact value, so it stays
/// as it is even though the Rust names now say "receipt" (in this codebase
/// "bundle" otherwise means only a C2SP tlog-tiles entry bundle).
pub const RECEIPT_FORMAT: &str = "lineage-bundle/v1";
/// Prefix of every [`Problem`] `type` URI; the stable error code follows it.
/// The URI identifies the problem type and need not resolve (RFC 9457 §3.1.1:
/// consumers must not dereference it automatically).
pub const PROBLEM_TYPE_PREFIX: &str = "urn:lineage:problem:";

/// JSON Schema pattern of a runtime or workload identifier.
pub const IDENTIFIER_PATTERN: &str = "^[A-Za-z0-9._:/@-]{1,128}$";
/// JSON Schema pattern of an event kind.
pub const KIND_PATTERN: &str = "^[a-z0-9._-]{1,64}$";
/// JSON Schema pattern of a trust domain.
pub const DOMAIN_PATTERN: &str = "^[a-z0-9.-]{1,64}$";
/// JSON Schema pattern of a scope pattern: an exact value, or a prefix
/// ending in `*` (the characters of the field it matches, at most 128).
pub const SCOPE_PATTERN_PATTERN: &str =
    "^(?:[A-Za-z0-9._:/@-]{1,128}|[A-Za-z0-9._:/@-]{0,127}\\*)$";
/// JSON Schema pattern of an event ID or key ID: lowercase hex BLAKE3.
pub const HEX_ID_PATTERN: &str = "^[0-9a-f]{64}$";
/// JSON Schema pattern of a timestamp: RFC 3339 in UTC, `T` separator, `Z` suffix.
pub const TIMESTAMP_PATTERN: &str =
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$";
/// JSON Schema pattern of canonical standard base64 with padding.
pub const BASE64_PATTERN: &str = "^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$";

/// Deserializes a present field as `Some(T)`, so an explicit `null` is rejected
/// (serde's default for `Option` would read it as absent).
fn present<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

/// A DSSE v1 envelope, as submitted to `POST /v1/entries` and stored in the log.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Media type of the payload: `application/vnd.lineage.event.v1+json` or
    /// `application/vnd.lineage.grant.v1+json`.
    #[serde(rename = "payloadType")]
    pub payload_type: String,
    /// The payload bytes, in canonical standard base64 with padding.
    #[schemars(regex(pattern = BASE64_PATTERN))]
    pub payload: String,
    /// Signatures over the DSSE pre-authentication encoding of
    /// (payloadType, payload). Lineage accepts exactly one.
    #[schemars(length(min = 1, max = 1))]
    #[serde(deserialize_with = "objects_only")]
    pub signatures: Vec<EnvelopeSignature>,
}

/// A value that deserializes only from a JSON object (map), never from the
/// array form serde's derive also accepts for structs: `[keyid, sig]` is not
/// an envelope signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapOnly<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for MapOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Objects<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> serde::de::Visitor<'de> for Objects<T> {
            type Value = T;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Objects(std::marker::PhantomData))
            .map(MapOnly)
    }
}

fn objects_only<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<EnvelopeSignature>, D::Error> {
    let items: Vec<MapOnly<EnvelopeSignature>> = Deserialize::deserialize(d)?;
    Ok(items.into_iter().map(|m| m.0).collect())
}

/// One signature in a DSSE envelope.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnvelopeSignature {
    /// Key ID of the signer: lowercase hex BLAKE3 of the 32-byte Ed25519 public key.
    #[schemars(regex(pattern = HEX_ID_PATTERN))]
    pub keyid: String,
    /// The 64-byte Ed25519 signature, in canonical standard base64 with padding.
    #[schemars(regex(pattern = BASE64_PATTERN))]
    pub sig: String,
}

/// Payload of a runtime event (`application/vnd.lineage.event.v1+json`).
///
/// The whole payload is at most 32768 bytes. Its event ID is the lowercase hex
/// BLAKE3 of the payload bytes exactly as submitted.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
#[schemars(extend(
    "if" = {"properties": {"seq": {"const": 0}}},
    "then" = {"not": {"required": ["prev"]}},
    "else" = {"required": ["prev"]}
))]
pub struct EventPayload {
    /// The runtime that emitted the event: 1-128 characters of `[A-Za-z0-9._:/@-]`.
    #[schemars(regex(pattern = IDENTIFIER_PATTERN))]
    pub runtime: String,
    /// The workload the event belongs to: 1-128 characters of `[A-Za-z0-9._:/@-]`.
    #[schemars(regex(pattern = IDENTIFIER_PATTERN))]
    pub workload: String,
    /// Position of the event in its workload's chain, from 0.
    pub seq: u64,
    /// Event ID of the workload's previous event (seq - 1). Required when seq > 0,
    /// forbidden when seq = 0; `null` is rejected.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "String", regex(pattern = HEX_ID_PATTERN))]
    pub prev: Option<String>,
    /// Event IDs of other events this one derives from: at most 16, no duplicates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(regex(pattern = HEX_ID_PATTERN)))]
    #[schemars(extend("uniqueItems" = true))]
    pub parents: Vec<String>,
    /// What happened: 1-64 characters of `[a-z0-9._-]`.
    #[schemars(regex(pattern = KIND_PATTERN))]
    pub kind: String,
    /// When it happened, as reported by the runtime: RFC 3339 in UTC (ends in `Z`).
    #[schemars(regex(pattern = TIMESTAMP_PATTERN), extend("format" = "date-time"))]
    pub at: String,
    /// Free-form attributes. Duplicate keys at any depth are rejected; `null` is rejected.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "Map<String, Value>")]
    pub attrs: Option<Map<String, Value>>,
    /// The trust domain the transition executes in: 1-64 characters of
    /// `[a-z0-9.-]`. An event naming a parent in another domain crosses a
    /// trust boundary.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "String", regex(pattern = DOMAIN_PATTERN))]
    pub domain: Option<String>,
}

/// What a governance statement does.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum GovernanceAction {
    /// From this entry on, events signed by the key are accepted for the
    /// runtime (within the grant's validity window and scope).
    Grant,
    /// From this entry on, events signed by the key are rejected.
    Revoke,
    /// From this entry on, the target's events, and those of every workload
    /// deriving from it, are rejected.
    Halt,
    /// Lifts the target's own halt.
    Resume,
}

/// What a grant allows: each listed set is a list of patterns (an exact
/// value, or a prefix ending in `*`); an event whose field matches none of a
/// listed set is out of scope. An absent set allows every value.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields)]
pub struct GrantScope {
    /// Patterns of event `kind`s the key may sign.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "Vec<String>", length(min = 1, max = 32), inner(regex(pattern = SCOPE_PATTERN_PATTERN)))]
    pub kinds: Option<Vec<String>>,
    /// Patterns of `workload`s the key may sign events of.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "Vec<String>", length(min = 1, max = 32), inner(regex(pattern = SCOPE_PATTERN_PATTERN)))]
    pub workloads: Option<Vec<String>>,
    /// Patterns of `domain`s the key may sign events in (an event with no
    /// `domain` is outside a listed set).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "Vec<String>", length(min = 1, max = 32), inner(regex(pattern = SCOPE_PATTERN_PATTERN)))]
    pub domains: Option<Vec<String>>,
}

/// What a halt or resume applies to: one workload, or every workload a runtime started.
#[derive(
    Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum HaltTarget {
    /// A workload (1-128 characters of `[A-Za-z0-9._:/@-]`).
    Workload(#[schemars(regex(pattern = IDENTIFIER_PATTERN))] String),
    /// A runtime (1-128 characters of `[A-Za-z0-9._:/@-]`).
    Runtime(#[schemars(regex(pattern = IDENTIFIER_PATTERN))] String),
}

/// Payload of a governance statement (`application/vnd.lineage.grant.v1+json`),
/// signed by a log authority key.
///
/// `grant` and `revoke` name a runtime key (`runtime`, `public_key`); a grant
/// may add a validity window (`not_before`, `not_after`) and a `scope`.
/// `halt` and `resume` name a `target` and may give a `reason`. A field of
/// another action is refused.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schemars(extend("allOf" = [
    {
        "if": {"properties": {"action": {"enum": ["grant", "revoke"]}}},
        "then": {
            "required": ["runtime", "public_key"],
            "properties": {"target": false, "reason": false}
        }
    },
    {
        "if": {"properties": {"action": {"const": "revoke"}}},
        "then": {"properties": {"not_before": false, "not_after": false, "scope": false}}
    },
    {
        "if": {"properties": {"action": {"enum": ["halt", "resume"]}}},
        "then": {
            "required": ["target"],
            "properties": {
                "runtime": false, "public_key": false,
                "not_before": false, "not_after": false, "scope": false
            }
        }
    }
]))]
pub struct GovernancePayload {
    /// `grant`, `revoke`, `halt` or `resume`.
    pub action: GovernanceAction,
    /// Grant and revoke: the runtime whose key it is, 1-128 characters of
    /// `[A-Za-z0-9._:/@-]`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "String", regex(pattern = IDENTIFIER_PATTERN))]
    pub runtime: Option<String>,
    /// Grant and revoke: the runtime's Ed25519 public key, canonical
    /// standard base64 of 32 bytes. Small-order (weak) keys are rejected.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "String", regex(pattern = BASE64_PATTERN), length(equal = 44))]
    pub public_key: Option<String>,
    /// Grant: events integrated before this time are refused
    /// (`key_not_yet_valid`). RFC 3339 in UTC.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "String", regex(pattern = TIMESTAMP_PATTERN), extend("format" = "date-time"))]
    pub not_before: Option<String>,
    /// Grant: events integrated at or after this time are refused
    /// (`key_expired`). RFC 3339 in UTC, after `not_before`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "String", regex(pattern = TIMESTAMP_PATTERN), extend("format" = "date-time"))]
    pub not_after: Option<String>,
    /// Grant: what the key may sign.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub scope: Option<GrantScope>,
    /// Halt and resume: the workload or runtime.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub target: Option<HaltTarget>,
    /// Halt and resume: why, for people (1-1024 characters).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    #[schemars(with = "String", length(min = 1, max = 1024))]
    pub reason: Option<String>,
    /// When the statement was made: RFC 3339 in UTC (ends in `Z`).
    #[schemars(regex(pattern = TIMESTAMP_PATTERN), extend("format" = "date-time"))]
    pub at: String,
}

impl GovernancePayload {
    /// A grant or revocation of `public_key` for `runtime`, with no
    /// validity window and no scope (set those fields after, for a grant).
    pub fn key(action: GovernanceAction, runtime: String, public_key: String, at: String) -> Self {
        GovernancePayload {
            action,
            runtime: Some(runtime),
            public_key: Some(public_key),
            not_before: None,
            not_after: None,
            scope: None,
            target: None,
            reason: None,
            at,
        }
    }

    /// A halt or resume of `target`.
    pub fn halt(
        action: GovernanceAction,
        target: HaltTarget,
        reason: Option<String>,
        at: String,
    ) -> Self {
        GovernancePayload {
            action,
            runtime: None,
            public_key: None,
            not_before: None,
            not_after: None,
            scope: None,
            target: Some(target),
            reason,
            at,
        }
    }
}

/// A receipt: everything needed to check offline that an entry is in the log.
///
/// On the wire its format is `lineage-bundle/v1` ([`RECEIPT_FORMAT`]) and its
/// JSON Schema is `schemas/json/bundle.schema.json`, as they were before the
/// Rust type was named `Receipt`: clients are written against both, and
/// renaming them would be a new format, not a rename.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[schemars(
    description = "A receipt: everything needed to check offline that an entry is in the log."
)]
pub struct Receipt {
    /// Format and version of this receipt: always `lineage-bundle/v1`.
    #[schemars(extend("const" = "lineage-bundle/v1"))]
    pub format: String,
    /// Event ID (lowercase hex BLAKE3 of the payload) of the entry.
    #[schemars(regex(pattern = HEX_ID_PATTERN))]
    pub event_id: String,
    /// Leaf index of the entry in the log, from 0.
    pub index: u64,
    /// The log entry (the Merkle leaf; binary layout in `schemas/README.md`),
    /// in standard base64.
    #[schemars(regex(pattern = BASE64_PATTERN))]
    pub entry: String,
    /// The signed checkpoint (C2SP signed note text) of a tree that contains the entry.
    pub checkpoint: String,
    /// RFC 9162 inclusion proof of the entry in the checkpoint's tree: node
    /// hashes from the leaf up, each 32 bytes in standard base64.
    #[schemars(inner(regex(pattern = BASE64_PATTERN)))]
    pub inclusion_proof: Vec<String>,
}

/// An RFC 9457 problem details body (`application/problem+json`).
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// URI identifying the problem type: `urn:lineage:problem:` followed by
    /// `code` (a URN: it names the problem, it does not resolve).
    pub r#type: String,
    /// Short, human-readable summary of the problem type.
    pub title: String,
    /// HTTP status code of this occurrence.
    pub status: u16,
    /// Stable machine-readable error code (snake_case), for example `invalid_field`.
    pub code: String,
    /// Human-readable explanation of this occurrence.
    pub detail: String,
    /// The offending field, when there is one (for example `seq`, `parents[3]`,
    /// `signatures[0].sig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `halted`: the log index of the halt statement that stops the event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halt_index: Option<u64>,
}

/// The `type` URI of the problem with this code: [`PROBLEM_TYPE_PREFIX`]
/// followed by `code`.
pub fn problem_type(code: &str) -> String {
    format!("{PROBLEM_TYPE_PREFIX}{code}")
}

impl Problem {
    /// A problem whose `type` is [`problem_type`]`(code)`, with no `field` and
    /// no `index`.
    pub fn new(
        status: u16,
        code: impl Into<String>,
        title: impl Into<String>,
        detail: impl Into<String>,
    ) -> Problem {
        let code = code.into();
        Problem {
            r#type: problem_type(&code),
            title: title.into(),
            status,
            code,
            detail: detail.into(),
            field: None,
            halt_index: None,
        }
    }
}

/// One item of a batch submission's answer: a receipt, or the problem that
/// stopped that item.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
#[serde(untagged)]
pub enum SubmitItem {
    /// The item was integrated; here is its receipt.
    Receipt(Receipt),
    /// The item was rejected.
    Problem(Problem),
}

/// Answer to an inclusion proof request.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct InclusionProofResponse {
    /// Leaf index of the entry, from 0.
    pub index: u64,
    /// Size of the tree the proof is for.
    pub tree_size: u64,
    /// RFC 9162 inclusion proof: node hashes from the leaf up, each 32 bytes in standard base64.
    #[schemars(inner(regex(pattern = BASE64_PATTERN)))]
    pub proof: Vec<String>,
}

/// Answer to a consistency proof request.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProofResponse {
    /// Size of the older tree.
    pub first: u64,
    /// Size of the newer tree.
    pub second: u64,
    /// RFC 9162 consistency proof: node hashes, each 32 bytes in standard base64.
    #[schemars(inner(regex(pattern = BASE64_PATTERN)))]
    pub proof: Vec<String>,
}

/// The log's identity and current state.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct LogInfo {
    /// The log's origin line (C2SP checkpoint origin).
    pub origin: String,
    /// The log's signed-note verifier key (`<name>+<hex key hash>+<base64 key>`).
    pub vkey: String,
    /// Number of entries in the latest checkpoint.
    pub tree_size: u64,
    /// Root hash of the latest checkpoint, 32 bytes in standard base64.
    #[schemars(regex(pattern = BASE64_PATTERN))]
    pub root: String,
    /// The latest signed checkpoint (C2SP signed note text).
    pub checkpoint: String,
    /// Keys allowed to sign governance statements.
    pub authority_keys: Vec<AuthorityKey>,
}

/// A key allowed to sign governance statements.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct AuthorityKey {
    /// Lowercase hex BLAKE3 of the public key.
    #[schemars(regex(pattern = HEX_ID_PATTERN))]
    pub key_id: String,
    /// The Ed25519 public key, 32 bytes in standard base64.
    #[schemars(regex(pattern = BASE64_PATTERN))]
    pub public_key: String,
}

/// One log entry, decoded.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq)]
pub struct EntryResponse {
    /// Leaf index of the entry, from 0.
    pub index: u64,
    /// Lowercase hex BLAKE3 of the payload.
    #[schemars(regex(pattern = HEX_ID_PATTERN))]
    pub event_id: String,
    /// What the entry carries: `event` (payload type
    /// `application/vnd.lineage.event.v1+json`) or `governance`
    /// (`application/vnd.lineage.grant.v1+json`).
    #[schemars(extend("enum" = ["event", "governance"]))]
    pub entry_type: String,
    /// When the log integrated the entry: RFC 3339 in UTC.
    #[schemars(extend("format" = "date-time"))]
    pub integrated_at: String,
    /// The signed envelope, as reconstructed from the entry.
    pub envelope: Envelope,
    /// The decoded payload (an event or a governance statement).
    pub payload: Value,
    /// Event IDs of the events that name this one as `prev` or in `parents`.
    pub children: Vec<String>,
    /// The entry's receipt, against the latest checkpoint. The JSON field
    /// is `bundle`, its name since the first version (see [`Receipt`]).
    #[serde(rename = "bundle")]
    #[schemars(description = "The entry's receipt, against the latest checkpoint.")]
    pub receipt: Receipt,
}

/// A page of a workload's event chain.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct WorkloadEvents {
    /// The workload identifier.
    pub workload: String,
    /// Events in ascending `seq` order.
    pub events: Vec<WorkloadEvent>,
    /// The `seq` to ask for next, when more events follow this page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_from_seq: Option<u64>,
}

/// One event in a workload listing.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct WorkloadEvent {
    /// Position in the workload's chain, from 0.
    pub seq: u64,
    /// Lowercase hex BLAKE3 of the payload.
    #[schemars(regex(pattern = HEX_ID_PATTERN))]
    pub event_id: String,
    /// Leaf index of the entry in the log.
    pub index: u64,
    /// The event kind.
    pub kind: String,
    /// When it happened, as reported by the runtime (RFC 3339, UTC).
    pub at: String,
    /// The runtime that signed the event.
    pub runtime: String,
    /// Event ID of the previous event in the chain; absent for seq 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<String>,
    /// Event IDs this event derives from.
    #[serde(default)]
    pub parents: Vec<String>,
}

/// A runtime and its keys.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// The runtime identifier.
    pub runtime: String,
    /// Every key ever granted to the runtime, in grant order.
    pub keys: Vec<RuntimeKey>,
    /// Number of events the runtime has in the log.
    pub event_count: u64,
}

/// A key granted to a runtime.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct RuntimeKey {
    /// Lowercase hex BLAKE3 of the public key.
    #[schemars(regex(pattern = HEX_ID_PATTERN))]
    pub key_id: String,
    /// The Ed25519 public key, 32 bytes in standard base64.
    #[schemars(regex(pattern = BASE64_PATTERN))]
    pub public_key: String,
    /// Leaf index of the governance entry that granted the key.
    pub granted_index: u64,
    /// Leaf index of the governance entry that revoked the key, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_index: Option<u64>,
    /// Start of the grant's validity window (RFC 3339, UTC), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    /// End of the grant's validity window (exclusive; RFC 3339, UTC), if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    /// What the grant allows, if it is limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<GrantScope>,
}

/// A workload's governance state (`GET /v1/workloads/{workload}`).
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct WorkloadInfo {
    /// The workload identifier.
    pub workload: String,
    /// The runtime that owns it (the one that started it).
    pub runtime: String,
    /// The trust domain of its latest event, if that event names one.
    pub domain: Option<String>,
    /// `open`, `closed` (its latest event is `workload.end`) or `halted`
    /// (halted takes precedence over closed).
    pub state: WorkloadState,
    /// Its latest event.
    pub head: WorkloadHeadInfo,
    /// The log index of the halt that stops it (the lowest, when several
    /// do), or null.
    pub halted_by: Option<u64>,
    /// The workloads it derives from directly (one of its events names a
    /// parent event in them), sorted; at most [`MAX_DERIVES_FROM`].
    pub derives_from: Vec<String>,
    /// True when it derives from more workloads than `derives_from` lists.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub derives_from_truncated: bool,
}

/// Most workloads a [`WorkloadInfo`] lists in `derives_from`.
pub const MAX_DERIVES_FROM: usize = 1000;

/// A workload's state.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum WorkloadState {
    /// It may take its next event.
    Open,
    /// Its latest event is `workload.end`: it takes no more events.
    Closed,
    /// A halt stops it and every workload deriving from it.
    Halted,
}

/// A workload's latest event.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct WorkloadHeadInfo {
    /// Its `seq`.
    pub seq: u64,
    /// Its event ID.
    #[schemars(regex(pattern = HEX_ID_PATTERN))]
    pub event_id: String,
    /// Its leaf index.
    pub index: u64,
}

/// A page of governance entries (`GET /v1/governance`).
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct GovernanceFeed {
    /// Governance entries after the requested index, in log order.
    pub entries: Vec<GovernanceEntry>,
    /// The latest signed checkpoint (C2SP signed note text); every entry
    /// listed is in its tree.
    pub checkpoint: String,
    /// The tree size of `checkpoint`.
    pub size: u64,
    /// The `after` to ask for next: the index of the last entry listed, or
    /// the requested `after` when none was.
    pub next_after: Option<u64>,
}

/// One governance entry of the feed.
#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone, PartialEq, Eq)]
pub struct GovernanceEntry {
    /// Its leaf index.
    pub index: u64,
    /// Its event ID (BLAKE3 of the payload).
    #[schemars(regex(pattern = HEX_ID_PATTERN))]
    pub event_id: String,
    /// When the log integrated it (RFC 3339, UTC, milliseconds).
    pub integrated_at: String,
    /// The authority key that signed it.
    #[schemars(regex(pattern = HEX_ID_PATTERN))]
    pub key_id: String,
    /// The statement, as signed.
    pub statement: GovernancePayload,
}

/// Every published JSON Schema, as (file stem, schema). The file is
/// `schemas/json/<stem>.schema.json`. Object keys are sorted, so the rendered
/// text does not depend on `serde_json` features.
pub fn all_schemas() -> Vec<(&'static str, Value)> {
    fn schema<T: JsonSchema>() -> Value {
        sorted(schemars::schema_for!(T).to_value())
    }
    vec![
        ("envelope", schema::<Envelope>()),
        ("event-payload", schema::<EventPayload>()),
        ("governance-payload", schema::<GovernancePayload>()),
        // The file keeps its first name; see [`Receipt`].
        ("bundle", schema::<Receipt>()),
        ("problem", schema::<Problem>()),
        ("submit-item", schema::<SubmitItem>()),
        (
            "inclusion-proof-response",
            schema::<InclusionProofResponse>(),
        ),
        (
            "consistency-proof-response",
            schema::<ConsistencyProofResponse>(),
        ),
        ("log-info", schema::<LogInfo>()),
        ("entry-response", schema::<EntryResponse>()),
        ("workload-events", schema::<WorkloadEvents>()),
        ("runtime-info", schema::<RuntimeInfo>()),
        ("workload-info", schema::<WorkloadInfo>()),
        ("governance-feed", schema::<GovernanceFeed>()),
    ]
}

/// Renders a schema as checked in: pretty JSON and a trailing newline.
pub fn render_schema(schema: &Value) -> String {
    // Serializing a `Value` cannot fail: its keys are strings.
    let mut text = serde_json::to_string_pretty(schema).unwrap_or_default();
    text.push('\n');
    text
}

/// Rebuilds every object with its keys in sorted order.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(text: &str) -> Result<EventPayload, serde_json::Error> {
        serde_json::from_str(text)
    }

    const ID: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn event_payload_round_trips_and_omits_absent_fields() {
        let text =
            r#"{"runtime":"r","workload":"w","seq":0,"kind":"k","at":"2025-01-01T00:00:00Z"}"#;
        let parsed = event(text).expect("valid");
        assert_eq!(parsed.prev, None);
        assert!(parsed.parents.is_empty());
        assert_eq!(serde_json::to_string(&parsed).expect("serialize"), text);
    }

    #[test]
    fn event_payload_rejects_shape_errors() {
        let base = json!({"runtime":"r","workload":"w","seq":1,"prev":ID,"kind":"k","at":"2025-01-01T00:00:00Z"});
        assert!(serde_json::from_value::<EventPayload>(base.clone()).is_ok());
        let with = |k: &str, v: Value| {
            let mut b = base.clone();
            b[k] = v;
            serde_json::from_value::<EventPayload>(b)
        };
        assert!(with("extra", json!(1)).is_err(), "unknown field");
        assert!(with("prev", Value::Null).is_err(), "null prev");
        assert!(with("attrs", Value::Null).is_err(), "null attrs");
        assert!(with("attrs", json!([])).is_err(), "array attrs");
        assert!(with("parents", Value::Null).is_err(), "null parents");
        assert!(with("seq", json!(-1)).is_err(), "negative seq");
        assert!(with("seq", json!(1.5)).is_err(), "fractional seq");
        assert!(
            event(r#"{"runtime":"r","runtime":"r","workload":"w","seq":0,"kind":"k","at":"x"}"#)
                .is_err(),
            "duplicate key"
        );
    }

    #[test]
    fn envelope_uses_dsse_field_names() {
        let env = Envelope {
            payload_type: EVENT_PAYLOAD_TYPE.into(),
            payload: "e30=".into(),
            signatures: vec![EnvelopeSignature {
                keyid: ID.into(),
                sig: "AA==".into(),
            }],
        };
        let value = serde_json::to_value(&env).expect("serialize");
        assert_eq!(
            value,
            json!({"payloadType": EVENT_PAYLOAD_TYPE, "payload": "e30=", "signatures": [{"keyid": ID, "sig": "AA=="}]})
        );
        let mut extra = value.clone();
        extra["signatures"][0]["extra"] = json!(1);
        assert!(serde_json::from_value::<Envelope>(extra).is_err());
    }

    #[test]
    fn governance_action_is_lowercase() {
        let p: GovernancePayload = serde_json::from_value(json!({
            "action": "revoke", "runtime": "r", "public_key": "k", "at": "t"
        }))
        .expect("valid");
        assert_eq!(p.action, GovernanceAction::Revoke);
        assert!(
            serde_json::from_value::<GovernancePayload>(json!({
                "action": "Grant", "runtime": "r", "public_key": "k", "at": "t"
            }))
            .is_err()
        );
    }

    #[test]
    fn submit_item_tells_receipts_from_problems() {
        let receipt = Receipt {
            format: RECEIPT_FORMAT.into(),
            event_id: ID.into(),
            index: 7,
            entry: "AQ==".into(),
            checkpoint: "origin\n1\nroot\n\n— sig\n".into(),
            inclusion_proof: vec![],
        };
        let mut problem = Problem::new(400, "invalid_field", "Invalid field", "seq is negative");
        problem.field = Some("seq".into());
        assert_eq!(problem.r#type, "urn:lineage:problem:invalid_field");
        let items = vec![SubmitItem::Receipt(receipt), SubmitItem::Problem(problem)];
        let text = serde_json::to_string(&items).expect("serialize");
        let back: Vec<SubmitItem> = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, items);
    }

    #[test]
    fn problem_omits_absent_field() {
        let value = serde_json::to_value(Problem::new(404, "not_found", "Not found", "no entry"))
            .expect("serialize");
        assert_eq!(
            value,
            json!({"type": "urn:lineage:problem:not_found", "title": "Not found",
                   "status": 404, "code": "not_found", "detail": "no entry"})
        );
    }

    #[test]
    fn schemas_have_unique_stems_and_sorted_keys() {
        let all = all_schemas();
        let mut stems: Vec<&str> = all.iter().map(|(s, _)| *s).collect();
        stems.sort_unstable();
        stems.dedup();
        assert_eq!(stems.len(), all.len());
        for (_, schema) in &all {
            assert_eq!(&sorted(schema.clone()), schema);
        }
    }

    #[test]
    fn event_schema_carries_the_rules() {
        let all = all_schemas();
        let (_, schema) = all
            .iter()
            .find(|(s, _)| *s == "event-payload")
            .expect("event schema");
        assert_eq!(schema["additionalProperties"], json!(false));
        assert_eq!(schema["properties"]["parents"]["maxItems"], json!(16));
        assert_eq!(
            schema["properties"]["runtime"]["pattern"],
            json!(IDENTIFIER_PATTERN)
        );
        assert_eq!(schema["properties"]["prev"]["type"], json!("string"));
        assert_eq!(schema["properties"]["attrs"]["type"], json!("object"));
        assert_eq!(schema["else"], json!({"required": ["prev"]}));
        let required = schema["required"].as_array().expect("required");
        for field in ["runtime", "workload", "seq", "kind", "at"] {
            assert!(required.contains(&json!(field)), "{field} required");
        }
        assert!(!required.contains(&json!("prev")));
    }
}
