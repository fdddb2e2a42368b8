//! The batch being assembled: the ledger's [`BatchState`] over the
//! committed log ([`Committed`]), plus what the store commit needs (the
//! encoded entries and the index rows).
//!
//! The rules and the bookkeeping of an admitted entry are the ledger's own
//! ([`BatchState::admit`], [`BatchState::apply`]): the offline auditor
//! replays the log through the very same code.

use std::cell::Cell;
use std::sync::{Arc, RwLock};

use lineage_ledger::FastMap;
use lineage_ledger::dsse::PayloadType;
use lineage_ledger::dsse::SignedEnvelope;
use lineage_ledger::entry::LogEntry;
use lineage_ledger::event::{RuntimeId, Target, WorkloadId, parse_event};
use lineage_ledger::keys::{EventId, KeyId};
use lineage_ledger::rules::{
    Admission, Candidate, GovernanceView, KeyRecord, LedgerView, RuleContext, WorkloadHead,
};
use lineage_ledger::state::BatchState;
use lineage_ledger::store::{Store, StoreError};

use crate::cache::HeadCache;
use crate::counts::CountsBuilder;
use crate::governance::HaltState;
use crate::job::Outcome;
use crate::sync::read;

/// The committed log as the rules see it: the store, the key registry and
/// the active halts in memory, and the sequencer's cache of workload heads.
pub(crate) struct Committed<'a> {
    store: &'a dyn Store,
    keys: &'a RwLock<FastMap<KeyId, KeyRecord>>,
    halts: &'a RwLock<HaltState>,
    /// Committed workload heads recently seen (a cache of the store).
    heads: &'a HeadCache,
    /// The last event-ID lookup in the store: the identical-resubmission
    /// check and the duplicate check ask for the same ID one after another.
    last_lookup: Cell<Option<(EventId, Option<u64>)>>,
}

impl<'a> Committed<'a> {
    pub(crate) fn new(
        store: &'a dyn Store,
        keys: &'a RwLock<FastMap<KeyId, KeyRecord>>,
        halts: &'a RwLock<HaltState>,
        heads: &'a HeadCache,
    ) -> Committed<'a> {
        Committed {
            store,
            keys,
            halts,
            heads,
            last_lookup: Cell::new(None),
        }
    }

    fn stored_entry(&self, index: u64) -> Result<LogEntry, StoreError> {
        let bytes = self
            .store
            .entry(index)?
            .ok_or_else(|| StoreError::Corrupt {
                what: "entry (indexed but missing)",
                key: index.to_string(),
            })?;
        LogEntry::decode(&bytes).map_err(|_| StoreError::Corrupt {
            what: "entry",
            key: index.to_string(),
        })
    }

    fn stored_event_index(&self, id: &EventId) -> Result<Option<u64>, StoreError> {
        if let Some((last, found)) = self.last_lookup.get()
            && last == *id
        {
            return Ok(found);
        }
        let found = self.store.event_index(id)?;
        self.last_lookup.set(Some((*id, found)));
        Ok(found)
    }
}

fn stored_id<T>(
    text: String,
    parse: impl Fn(&str) -> Result<T, lineage_ledger::event::FieldReason>,
) -> Result<T, StoreError> {
    parse(&text).map_err(|_| StoreError::Corrupt {
        what: "governance row",
        key: text,
    })
}

impl GovernanceView for Committed<'_> {
    type Error = StoreError;

    fn workload_halts(&self, w: &WorkloadId) -> Result<Vec<u64>, StoreError> {
        Ok(read(self.halts).marks.get(w).cloned().unwrap_or_default())
    }

    fn active_halt(&self, target: &Target) -> Result<Option<u64>, StoreError> {
        Ok(read(self.halts).active.get(target).copied())
    }

    fn derived_workloads(&self, w: &WorkloadId) -> Result<Vec<WorkloadId>, StoreError> {
        use lineage_ledger::store::GovernanceReads as _;
        self.store
            .derived_workloads(w.as_str())?
            .into_iter()
            .map(|t| stored_id(t, WorkloadId::new))
            .collect()
    }

    fn runtime_workloads(&self, r: &RuntimeId) -> Result<Vec<WorkloadId>, StoreError> {
        use lineage_ledger::store::GovernanceReads as _;
        self.store
            .runtime_workloads(r.as_str())?
            .into_iter()
            .map(|t| stored_id(t, WorkloadId::new))
            .collect()
    }
}

impl LedgerView for Committed<'_> {
    fn event_owner(&self, id: &EventId) -> Result<Option<(WorkloadId, RuntimeId)>, StoreError> {
        let Some(index) = self.stored_event_index(id)? else {
            return Ok(None);
        };
        let entry = self.stored_entry(index)?;
        if entry.entry_type.payload_type() != PayloadType::Event {
            return Ok(None);
        }
        let event = parse_event(&entry.payload).map_err(|_| StoreError::Corrupt {
            what: "event payload",
            key: index.to_string(),
        })?;
        Ok(Some((event.workload, event.runtime)))
    }

    fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, StoreError> {
        Ok(read(self.keys).get(id).cloned())
    }

    fn event_index(&self, id: &EventId) -> Result<Option<u64>, StoreError> {
        self.stored_event_index(id)
    }

    fn identical_entry(
        &self,
        id: &EventId,
        envelope: &SignedEnvelope,
    ) -> Result<Option<u64>, StoreError> {
        match self.stored_event_index(id)? {
            None => Ok(None),
            Some(i) => Ok((self.stored_entry(i)?.to_envelope() == *envelope).then_some(i)),
        }
    }

    fn workload_event(&self, w: &WorkloadId, seq: u64) -> Result<Option<EventId>, StoreError> {
        // A workload's positions are 0..=head.seq with no gap (the sequence
        // rule), so the head answers the common cases without a store read.
        match self.workload_head(w)? {
            None => return Ok(None),
            Some(head) if seq > head.seq => return Ok(None),
            Some(head) if seq == head.seq => return Ok(Some(head.event_id)),
            Some(_) => {}
        }
        match self.store.workload_index(w.as_str(), seq)? {
            None => Ok(None),
            Some(i) => Ok(Some(self.stored_entry(i)?.event_id())),
        }
    }

    fn workload_head(&self, w: &WorkloadId) -> Result<Option<WorkloadHead>, StoreError> {
        if let Some(h) = self.heads.get(w.as_str()) {
            return Ok(Some(h.clone()));
        }
        // Most uncached workloads are new ones: a point lookup of position 0
        // (answered by a bloom filter) says so without a store iterator.
        if self.store.workload_index(w.as_str(), 0)?.is_none() {
            return Ok(None);
        }
        let Some((seq, index)) = self.store.workload_last(w.as_str())? else {
            return Ok(None);
        };
        let entry = self.stored_entry(index)?;
        let event = parse_event(&entry.payload).map_err(|_| StoreError::Corrupt {
            what: "event payload",
            key: index.to_string(),
        })?;
        Ok(Some(WorkloadHead {
            seq,
            event_id: entry.event_id(),
            closed: event.closes_workload(),
            runtime: event.runtime,
        }))
    }
}

/// One sequencer batch: the state the rules read, and the rows to commit.
pub(crate) struct Batch<'a> {
    pub(crate) state: BatchState<Committed<'a>>,
    next_index: u64,
    /// Encoded entries, in index order from the committed size.
    pub(crate) entries: Vec<Arc<Vec<u8>>>,
    /// Event ID -> index rows.
    pub(crate) events: Vec<(EventId, u64)>,
    /// (workload, seq) -> index rows.
    pub(crate) workloads: Vec<(String, u64, u64)>,
    /// Parent -> child index rows (`parents` links only).
    pub(crate) children: Vec<(EventId, u64)>,
    /// The admitted entries as the explorer counts them.
    pub(crate) counts: CountsBuilder,
}

impl<'a> Batch<'a> {
    /// An empty batch appending after `size` entries, with room for
    /// `capacity` of them.
    pub(crate) fn new(committed: Committed<'a>, size: u64, capacity: usize) -> Batch<'a> {
        Batch {
            state: BatchState::with_capacity(committed, true, capacity),
            next_index: size,
            entries: Vec::with_capacity(capacity),
            events: Vec::with_capacity(capacity),
            workloads: Vec::with_capacity(capacity),
            children: Vec::with_capacity(capacity),
            counts: CountsBuilder::default(),
        }
    }

    /// Decides one candidate: an identical envelope already in the log (or
    /// earlier in the batch) is answered with its index; otherwise the rules
    /// run, and an admitted entry gets the next index.
    ///
    /// # Errors
    /// Store reads: they fail the batch, never one envelope.
    pub(crate) fn decide(
        &mut self,
        c: &Candidate,
        ctx: &RuleContext<'_>,
    ) -> Result<Outcome, StoreError> {
        if let Some(index) = self.state.find_identical(c)? {
            return Ok(Outcome::Identical {
                index,
                event_id: c.event_id(),
            });
        }
        let admission = match self.state.admit(c, ctx)? {
            Ok(a) => a,
            Err(r) => return Ok(Outcome::Rejected(r)),
        };
        let index = self.next_index;
        self.next_index += 1;
        let entry = Arc::new(LogEntry::encode_envelope(
            c.envelope(),
            ctx.integrated_at_ms(),
        ));
        self.entries.push(entry.clone());
        self.events.push((c.event_id(), index));
        match &admission {
            Admission::Event { event, .. } => {
                self.counts.event(event.seq, &event.kind);
                self.workloads
                    .push((event.workload.as_str().to_owned(), event.seq, index));
                // A `prev` link needs no row: see `children_of`.
                for p in &event.parents {
                    self.children.push((*p, index));
                }
            }
            Admission::Grant(_)
            | Admission::Revoke { .. }
            | Admission::Halt { .. }
            | Admission::Resume { .. } => self.counts.governance(),
        }
        self.state.apply(index, c, &admission);
        Ok(Outcome::Appended {
            index,
            entry,
            event_id: c.event_id(),
        })
    }

    /// The new head of every workload the batch extended.
    pub(crate) fn heads(&self) -> Vec<(String, WorkloadHead)> {
        self.state
            .chains()
            .iter()
            .filter_map(|(w, chain)| Some((w.as_str().to_owned(), chain.head()?)))
            .collect()
    }
}
