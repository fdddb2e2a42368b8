//! The state the rules read, and the one way an admitted entry changes it.
//!
//! [`BatchState`] is a [`LedgerView`] over a base view (the committed log)
//! plus what the entries admitted on top of it changed: the key registry,
//! the event index, the workload chains (and so their heads), the events
//! per runtime, and the lineage's governance state (derivations, the
//! workloads each runtime started, active halts and their marks). The sequencer builds one per batch over its committed state;
//! the offline auditor builds one over [`Genesis`] and replays the whole log
//! through it. Both decide with [`BatchState::admit`] and record with
//! [`BatchState::apply`], so the auditor runs the sequencer's own code.
//!
//! Pure: no I/O of its own (the base view may do some), no clock.

use std::collections::HashMap;

use crate::FastMap;
use crate::dsse::SignedEnvelope;
use crate::event::{RuntimeId, Target, WorkloadId};
use crate::governance::{GovernanceView, with_halt, without_halt};
use crate::keys::{EventId, KeyId};
use crate::rules::{
    Admission, Candidate, KeyRecord, LedgerView, Rejection, RuleContext, WorkloadHead, admit,
    find_identical,
};

/// The empty log: the base of a replay from the first entry. It keeps no
/// envelopes, so it cannot tell an identical resubmission
/// ([`find_identical`]); an audit never asks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Genesis;

/// The only question a [`Genesis`]-based state cannot answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this state keeps no envelopes")]
pub struct EnvelopesNotKept;

impl GovernanceView for Genesis {
    type Error = EnvelopesNotKept;
    fn workload_halts(&self, _: &WorkloadId) -> Result<Vec<u64>, Self::Error> {
        Ok(Vec::new())
    }
    fn active_halt(&self, _: &Target) -> Result<Option<u64>, Self::Error> {
        Ok(None)
    }
    fn derived_workloads(&self, _: &WorkloadId) -> Result<Vec<WorkloadId>, Self::Error> {
        Ok(Vec::new())
    }
    fn runtime_workloads(&self, _: &RuntimeId) -> Result<Vec<WorkloadId>, Self::Error> {
        Ok(Vec::new())
    }
}

impl LedgerView for Genesis {
    fn event_owner(&self, _: &EventId) -> Result<Option<(WorkloadId, RuntimeId)>, Self::Error> {
        Ok(None)
    }
    fn key(&self, _: &KeyId) -> Result<Option<KeyRecord>, Self::Error> {
        Ok(None)
    }
    fn event_index(&self, _: &EventId) -> Result<Option<u64>, Self::Error> {
        Ok(None)
    }
    fn identical_entry(&self, _: &EventId, _: &SignedEnvelope) -> Result<Option<u64>, Self::Error> {
        Err(EnvelopesNotKept)
    }
    fn workload_event(&self, _: &WorkloadId, _: u64) -> Result<Option<EventId>, Self::Error> {
        Ok(None)
    }
    fn workload_head(&self, _: &WorkloadId) -> Result<Option<WorkloadHead>, Self::Error> {
        Ok(None)
    }
}

/// A workload's events admitted on top of the base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// The runtime that owns the workload.
    pub runtime: RuntimeId,
    /// The `seq` of `ids[0]`.
    pub first_seq: u64,
    /// Event IDs by `seq - first_seq`.
    pub ids: Vec<EventId>,
    /// Whether its newest event closed it.
    pub closed: bool,
}

impl Chain {
    /// The newest event of the chain.
    pub fn head(&self) -> Option<WorkloadHead> {
        Some(WorkloadHead {
            seq: self.first_seq + u64::try_from(self.ids.len()).ok()?.checked_sub(1)?,
            event_id: *self.ids.last()?,
            runtime: self.runtime.clone(),
            closed: self.closed,
        })
    }
}

/// What a batch keeps of an admitted envelope to tell an identical
/// resubmission: all of it but the payload, which the event ID it is kept
/// under already names (the ID is the BLAKE3 hash of the payload, and an
/// identical envelope has the same ID). Keeping the payload cost a copy of
/// every admitted event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Signed {
    payload_type: crate::dsse::PayloadType,
    key_id: KeyId,
    signature: ed25519_dalek::Signature,
}

impl Signed {
    fn of(envelope: &SignedEnvelope) -> Signed {
        Signed {
            payload_type: envelope.payload_type,
            key_id: envelope.key_id,
            signature: envelope.signature,
        }
    }
}

/// A base view plus the entries admitted on top of it.
#[derive(Debug)]
pub struct BatchState<V> {
    base: V,
    keep_envelopes: bool,
    keys: FastMap<KeyId, KeyRecord>,
    events: FastMap<EventId, u64>,
    envelopes: FastMap<EventId, Signed>,
    chains: FastMap<WorkloadId, Chain>,
    runtime_events: FastMap<RuntimeId, u64>,
    governance: GovernanceDelta,
}

/// What admitted entries changed of the lineage's governance state.
#[derive(Debug, Default)]
pub struct GovernanceDelta {
    /// The workload of each event admitted here.
    pub event_owners: FastMap<EventId, WorkloadId>,
    /// New derivations: parent workload -> workloads now deriving from it.
    pub derived: HashMap<WorkloadId, Vec<WorkloadId>>,
    /// The same derivations, child -> parents, in admission order.
    pub derivations: Vec<(WorkloadId, WorkloadId)>,
    /// Workloads started here, per runtime.
    pub started: HashMap<RuntimeId, Vec<WorkloadId>>,
    /// New halts of every workload whose halts changed (empty: no longer halted).
    pub marks: HashMap<WorkloadId, Vec<u64>>,
    /// Halts started (`Some(index)`) or lifted (`None`) here, by target.
    pub active: HashMap<Target, Option<u64>>,
    /// Indices of the governance entries admitted here.
    pub statements: Vec<u64>,
}

impl<V: LedgerView> BatchState<V> {
    /// Nothing admitted yet over `base`. With `keep_envelopes`, each
    /// admitted envelope is kept so that an identical resubmission of it is
    /// found ([`BatchState::find_identical`]); an audit replay does not need it.
    pub fn new(base: V, keep_envelopes: bool) -> BatchState<V> {
        BatchState::with_capacity(base, keep_envelopes, 0)
    }

    /// [`BatchState::new`], with room for `entries` entries made at once:
    /// a batch of known size then never rehashes its maps as it grows.
    pub fn with_capacity(base: V, keep_envelopes: bool, entries: usize) -> BatchState<V> {
        fn sized<K, V>(n: usize) -> FastMap<K, V> {
            FastMap::with_capacity_and_hasher(n, Default::default())
        }
        BatchState {
            base,
            keep_envelopes,
            keys: FastMap::default(),
            events: sized(entries),
            envelopes: if keep_envelopes {
                sized(entries)
            } else {
                FastMap::default()
            },
            chains: sized(entries),
            runtime_events: FastMap::default(),
            governance: GovernanceDelta {
                event_owners: sized(entries),
                ..GovernanceDelta::default()
            },
        }
    }

    /// The base view.
    pub fn base(&self) -> &V {
        &self.base
    }

    /// The index of an envelope identical to `candidate` in the base or
    /// admitted here (see [`find_identical`]).
    ///
    /// # Errors
    /// The base view's errors.
    pub fn find_identical(&self, candidate: &Candidate) -> Result<Option<u64>, V::Error> {
        find_identical(candidate, self)
    }

    /// Runs every rule on `candidate` against this state ([`admit`]).
    ///
    /// # Errors
    /// The base view's errors.
    pub fn admit(
        &self,
        candidate: &Candidate,
        ctx: &RuleContext<'_>,
    ) -> Result<Result<Admission, Rejection>, V::Error> {
        admit(candidate, self, ctx)
    }

    /// Records what `admission`, the verdict of [`BatchState::admit`] on
    /// `candidate` against this very state, changes, with the entry at `index`.
    pub fn apply(&mut self, index: u64, candidate: &Candidate, admission: &Admission) {
        self.events.insert(candidate.event_id(), index);
        if self.keep_envelopes {
            self.envelopes
                .insert(candidate.event_id(), Signed::of(candidate.envelope()));
        }
        let g = &mut self.governance;
        match admission {
            Admission::Event {
                event,
                derives_from,
            } => {
                // Looked up before inserting: most events extend a chain and
                // a runtime already here, and `entry` would clone their names.
                if let Some(chain) = self.chains.get_mut(&event.workload) {
                    chain.ids.push(candidate.event_id());
                    chain.closed = event.closes_workload();
                } else {
                    self.chains.insert(
                        event.workload.clone(),
                        Chain {
                            runtime: event.runtime.clone(),
                            first_seq: event.seq,
                            ids: vec![candidate.event_id()],
                            closed: event.closes_workload(),
                        },
                    );
                }
                match self.runtime_events.get_mut(&event.runtime) {
                    Some(n) => *n += 1,
                    None => {
                        self.runtime_events.insert(event.runtime.clone(), 1);
                    }
                }
                g.event_owners
                    .insert(candidate.event_id(), event.workload.clone());
                if event.seq == 0 {
                    g.started
                        .entry(event.runtime.clone())
                        .or_default()
                        .push(event.workload.clone());
                }
                for parent in derives_from {
                    let children = g.derived.entry(parent.clone()).or_default();
                    if !children.contains(&event.workload) {
                        children.push(event.workload.clone());
                        g.derivations.push((event.workload.clone(), parent.clone()));
                    }
                }
            }
            Admission::Grant(statement) => {
                self.keys
                    .insert(statement.key_id, KeyRecord::granted(statement, index));
                g.statements.push(index);
            }
            Admission::Revoke { key, .. } => {
                let mut key = KeyRecord::clone(key);
                key.revoked_index = Some(index);
                self.keys.insert(key.key_id, key);
                g.statements.push(index);
            }
            Admission::Halt { statement, members } => {
                for (workload, halts) in members {
                    g.marks.insert(workload.clone(), with_halt(halts, index));
                }
                g.active.insert(statement.target.clone(), Some(index));
                g.statements.push(index);
            }
            Admission::Resume {
                statement,
                halt_index,
                members,
            } => {
                for (workload, halts) in members {
                    g.marks
                        .insert(workload.clone(), without_halt(halts, *halt_index));
                }
                g.active.insert(statement.target.clone(), None);
                g.statements.push(index);
            }
        }
    }

    /// What admitted entries changed of the governance state.
    pub fn governance(&self) -> &GovernanceDelta {
        &self.governance
    }

    /// Keys granted or revoked here, by key ID.
    pub fn keys(&self) -> &FastMap<KeyId, KeyRecord> {
        &self.keys
    }

    /// Workload chains extended here.
    pub fn chains(&self) -> &FastMap<WorkloadId, Chain> {
        &self.chains
    }

    /// Events admitted here, per runtime.
    pub fn runtime_events(&self) -> &FastMap<RuntimeId, u64> {
        &self.runtime_events
    }

    /// Events admitted here.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// True when nothing was admitted here.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

impl<V: LedgerView> GovernanceView for BatchState<V> {
    type Error = V::Error;

    fn workload_halts(&self, w: &WorkloadId) -> Result<Vec<u64>, V::Error> {
        match self.governance.marks.get(w) {
            Some(halts) => Ok(halts.clone()),
            None => self.base.workload_halts(w),
        }
    }

    fn active_halt(&self, target: &Target) -> Result<Option<u64>, V::Error> {
        match self.governance.active.get(target) {
            Some(active) => Ok(*active),
            None => self.base.active_halt(target),
        }
    }

    fn derived_workloads(&self, w: &WorkloadId) -> Result<Vec<WorkloadId>, V::Error> {
        let mut out = self.base.derived_workloads(w)?;
        for child in self.governance.derived.get(w).into_iter().flatten() {
            if !out.contains(child) {
                out.push(child.clone());
            }
        }
        Ok(out)
    }

    fn runtime_workloads(&self, r: &RuntimeId) -> Result<Vec<WorkloadId>, V::Error> {
        let mut out = self.base.runtime_workloads(r)?;
        out.extend(
            self.governance
                .started
                .get(r)
                .into_iter()
                .flatten()
                .cloned(),
        );
        Ok(out)
    }
}

impl<V: LedgerView> LedgerView for BatchState<V> {
    fn event_owner(&self, id: &EventId) -> Result<Option<(WorkloadId, RuntimeId)>, V::Error> {
        if let Some(w) = self.governance.event_owners.get(id) {
            let runtime = self.chains.get(w).map(|c| c.runtime.clone());
            if let Some(runtime) = runtime {
                return Ok(Some((w.clone(), runtime)));
            }
        }
        self.base.event_owner(id)
    }

    fn key(&self, id: &KeyId) -> Result<Option<KeyRecord>, V::Error> {
        match self.keys.get(id) {
            Some(k) => Ok(Some(k.clone())),
            None => self.base.key(id),
        }
    }

    fn event_index(&self, id: &EventId) -> Result<Option<u64>, V::Error> {
        match self.events.get(id) {
            Some(i) => Ok(Some(*i)),
            None => self.base.event_index(id),
        }
    }

    fn identical_entry(
        &self,
        id: &EventId,
        envelope: &SignedEnvelope,
    ) -> Result<Option<u64>, V::Error> {
        if let (Some(i), Some(kept)) = (self.events.get(id), self.envelopes.get(id)) {
            return Ok((*kept == Signed::of(envelope)).then_some(*i));
        }
        self.base.identical_entry(id, envelope)
    }

    fn workload_event(&self, w: &WorkloadId, seq: u64) -> Result<Option<EventId>, V::Error> {
        if let Some(chain) = self.chains.get(w)
            && let Some(offset) = seq.checked_sub(chain.first_seq)
        {
            let offset = usize::try_from(offset).ok();
            return Ok(offset.and_then(|o| chain.ids.get(o)).copied());
        }
        self.base.workload_event(w, seq)
    }

    fn workload_head(&self, w: &WorkloadId) -> Result<Option<WorkloadHead>, V::Error> {
        match self.chains.get(w).and_then(Chain::head) {
            Some(h) => Ok(Some(h)),
            None => self.base.workload_head(w),
        }
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use serde_json::json;
    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::dsse::PayloadType;
    use crate::keys::public_key_base64;
    use crate::rules::{Authorities, integration_ms};

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn candidate(t: PayloadType, v: serde_json::Value, k: &SigningKey) -> Candidate {
        Candidate::new(SignedEnvelope::sign(
            t,
            serde_json::to_vec(&v).expect("json"),
            k,
        ))
    }

    const AT: &str = "2026-11-26T12:00:00Z";

    fn governance(action: &str, k: &SigningKey) -> Candidate {
        candidate(
            PayloadType::Governance,
            json!({"action": action, "runtime": "agent/a",
                "public_key": public_key_base64(&k.verifying_key()), "at": AT}),
            &key(100),
        )
    }

    fn event(k: &SigningKey, w: &str, seq: u64, prev: Option<EventId>) -> Candidate {
        let mut v = json!({"runtime": "agent/a", "workload": w, "seq": seq, "kind": "k", "at": AT});
        if let Some(p) = prev {
            v["prev"] = json!(p.to_string());
        }
        candidate(PayloadType::Event, v, k)
    }

    /// Admits and applies `c` at `index`; the rejection's debug name otherwise.
    fn step<V: LedgerView<Error = EnvelopesNotKept>>(
        s: &mut BatchState<V>,
        index: u64,
        c: &Candidate,
    ) -> Result<(), String> {
        let authorities = Authorities::new([key(100).verifying_key()]);
        let ms = integration_ms(datetime!(2026-11-26 12:00:00 UTC));
        let ctx = RuleContext::at(&authorities, ms, Duration::minutes(5)).expect("time");
        match s.admit(c, &ctx).expect("no store") {
            Ok(a) => {
                s.apply(index, c, &a);
                Ok(())
            }
            Err(r) => Err(format!("{r:?}")
                .split('{')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned()),
        }
    }

    #[test]
    fn admitted_entries_change_what_later_rules_read() {
        let mut s = BatchState::new(Genesis, false);
        let k = key(1);
        assert_eq!(step(&mut s, 0, &governance("grant", &k)), Ok(()));
        let e0 = event(&k, "w", 0, None);
        assert_eq!(step(&mut s, 1, &e0), Ok(()));
        assert_eq!(s.event_index(&e0.event_id()), Ok(Some(1)));
        assert_eq!(
            s.workload_event(&"w".parse().expect("w"), 0),
            Ok(Some(e0.event_id()))
        );
        let e1 = event(&k, "w", 1, Some(e0.event_id()));
        assert_eq!(step(&mut s, 2, &e1), Ok(()));
        assert_eq!(
            s.workload_head(&"w".parse().expect("w"))
                .ok()
                .flatten()
                .map(|h| h.seq),
            Some(1)
        );
        assert_eq!(step(&mut s, 3, &e1), Err("DuplicateEvent".to_owned()));
        assert_eq!(s.runtime_events().values().sum::<u64>(), 2);
        assert_eq!(step(&mut s, 3, &governance("revoke", &k)), Ok(()));
        let kid = KeyId::from_public_key(&k.verifying_key());
        assert_eq!(
            s.key(&kid).ok().flatten().and_then(|r| r.revoked_index),
            Some(3)
        );
        assert_eq!(
            step(&mut s, 4, &event(&k, "w", 2, Some(e1.event_id()))),
            Err("RevokedKey".to_owned())
        );
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn a_batch_continues_the_chains_of_its_base() {
        let k = key(1);
        let mut committed = BatchState::new(Genesis, true);
        assert_eq!(step(&mut committed, 0, &governance("grant", &k)), Ok(()));
        let e0 = event(&k, "w", 0, None);
        assert_eq!(step(&mut committed, 1, &e0), Ok(()));
        // A batch over the committed state reads through to it.
        let mut batch = BatchState::new(committed, true);
        let e1 = event(&k, "w", 1, Some(e0.event_id()));
        assert_eq!(step(&mut batch, 2, &e1), Ok(()));
        let w: WorkloadId = "w".parse().expect("w");
        assert_eq!(batch.workload_event(&w, 0), Ok(Some(e0.event_id())));
        assert_eq!(batch.workload_event(&w, 1), Ok(Some(e1.event_id())));
        assert_eq!(batch.workload_event(&w, 2), Ok(None));
        assert_eq!(batch.chains()[&w].first_seq, 1);
        // Identical envelopes are found in the batch and in the base.
        assert_eq!(batch.find_identical(&e1), Ok(Some(2)));
        assert_eq!(batch.find_identical(&e0), Ok(Some(1)));
        let rival = candidate(
            PayloadType::Event,
            json!({"runtime": "agent/a", "workload": "w", "seq": 1, "kind": "rival",
                "at": AT, "prev": e0.event_id().to_string()}),
            &k,
        );
        assert_eq!(step(&mut batch, 3, &rival), Err("Equivocation".to_owned()));
        // Only what the batch added is in its overlay.
        assert_eq!(batch.len(), 1);
        assert!(batch.keys().is_empty());
    }
}
