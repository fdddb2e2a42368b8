//! Reads of the log for pages: decoded entries, short ranges, and binary
//! searches over the integration time. Everything here is bounded: point
//! reads, range reads of at most a page, O(log n) searches.

use lineage_ledger::checkpoint::Checkpoint;
use lineage_ledger::entry::{ENTRY_HEADER_BYTES, EntryType, LogEntry};
use lineage_ledger::event::{Event, GovernanceStatement, Target, parse_event, parse_governance};
use lineage_ledger::keys::EventId;
use lineage_ledger::note::Note;
use lineage_log::Core;

use crate::page::PageError;

/// One entry of the log, decoded as far as it goes.
#[derive(Debug, Clone)]
pub(crate) struct Decoded {
    pub index: u64,
    pub entry: LogEntry,
    pub id: EventId,
    pub body: Body,
}

/// What the entry carries.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Event(Box<Event>),
    Governance(Box<GovernanceStatement>),
    /// The payload no longer parses (cannot happen for admitted entries,
    /// unless the rules changed); shown raw.
    Unreadable,
}

impl Decoded {
    pub fn decode(index: u64, bytes: &[u8]) -> Result<Decoded, PageError> {
        let entry = LogEntry::decode(bytes).map_err(|e| {
            tracing::error!(error = %e, index, "stored entry does not decode");
            PageError::Internal
        })?;
        let body = match entry.entry_type {
            EntryType::Event => parse_event(&entry.payload)
                .map(|e| Body::Event(Box::new(e)))
                .unwrap_or(Body::Unreadable),
            EntryType::Governance => parse_governance(&entry.payload)
                .map(|g| Body::Governance(Box::new(g)))
                .unwrap_or(Body::Unreadable),
        };
        Ok(Decoded {
            index,
            id: entry.event_id(),
            entry,
            body,
        })
    }

    pub fn event(&self) -> Option<&Event> {
        match &self.body {
            Body::Event(e) => Some(e),
            _ => None,
        }
    }

    /// The runtime the entry speaks for (an event's runtime, or the runtime a
    /// governance statement grants or revokes a key of).
    pub fn runtime(&self) -> Option<&str> {
        match &self.body {
            Body::Event(e) => Some(e.runtime.as_str()),
            Body::Governance(g) => match g.as_ref() {
                GovernanceStatement::Key(k) => Some(k.runtime.as_str()),
                GovernanceStatement::Halt(h) => match &h.target {
                    Target::Runtime(r) => Some(r.as_str()),
                    Target::Workload(_) => None,
                },
            },
            Body::Unreadable => None,
        }
    }

    /// The event kind, or `governance.grant` / `governance.revoke`.
    pub fn kind(&self) -> String {
        match &self.body {
            Body::Event(e) => e.kind.clone(),
            Body::Governance(g) => format!("governance.{}", g.action_name()),
            Body::Unreadable => "unreadable".into(),
        }
    }

    /// The event's trust domain: its `domain`, or else `attrs.trust_domain`
    /// (what runtimes wrote before `domain` existed).
    pub fn trust_domain(&self) -> Option<String> {
        let e = self.event()?;
        if let Some(d) = &e.domain {
            return Some(d.as_str().to_owned());
        }
        match e.attrs.as_ref()?.get("trust_domain")? {
            serde_json::Value::String(d) => Some(d),
            _ => None,
        }
    }
}

/// The entry at `index`, if the log has one.
pub(crate) fn entry(core: &Core, index: u64) -> Result<Option<Decoded>, PageError> {
    match core.store.entry(index)? {
        None => Ok(None),
        Some(bytes) => Decoded::decode(index, &bytes).map(Some),
    }
}

/// The entry at `index`, which the log must have (it was found in an index).
pub(crate) fn indexed_entry(core: &Core, index: u64) -> Result<Decoded, PageError> {
    entry(core, index)?.ok_or_else(|| {
        tracing::error!(index, "an index names an entry the store does not have");
        PageError::Internal
    })
}

/// Entries `[start, end)`.
pub(crate) fn range(core: &Core, start: u64, end: u64) -> Result<Vec<Decoded>, PageError> {
    core.store
        .entries(start, end)?
        .iter()
        .zip(start..)
        .map(|(b, i)| Decoded::decode(i, b))
        .collect()
}

/// The entry of an event ID, if it is in the log.
pub(crate) fn by_id(core: &Core, id: &EventId) -> Result<Option<Decoded>, PageError> {
    match core.store.event_index(id)? {
        None => Ok(None),
        Some(i) => indexed_entry(core, i).map(Some),
    }
}

/// The integration time of the entry at `index` (read from its header only).
pub(crate) fn integrated_at_ms(core: &Core, index: u64) -> Result<u64, PageError> {
    let bytes = core.store.entry(index)?.ok_or(PageError::Internal)?;
    bytes
        .get(2..10)
        .filter(|_| bytes.len() >= ENTRY_HEADER_BYTES)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or(PageError::Internal)
}

/// The first index in `[0, size)` whose integration time is at or after
/// `ms` (`size` when there is none). Integration times never decrease along
/// the log (one clock reading per batch, batches in order), so this is a
/// binary search: O(log size) point reads. If the ledger's clock ever
/// stepped back, the answer is still an index near that time.
pub(crate) fn first_at_or_after(core: &Core, size: u64, ms: u64) -> Result<u64, PageError> {
    first_at_or_after_in(core, 0, size, ms)
}

/// As [`first_at_or_after`], searching `[lo, hi)` only.
pub(crate) fn first_at_or_after_in(
    core: &Core,
    lo: u64,
    hi: u64,
    ms: u64,
) -> Result<u64, PageError> {
    let (mut lo, mut hi) = (lo, hi);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if integrated_at_ms(core, mid)? < ms {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// The checkpoint text of a signed checkpoint note (not verified: the note
/// comes from the log's own store; the Proof Viewer verifies in the browser).
pub(crate) fn checkpoint_of(note: &str) -> Option<Checkpoint> {
    let note = Note::parse(note.as_bytes()).ok()?;
    Checkpoint::parse(&note.text).ok()
}
