//! An in-memory [`Store`] that can fail on purpose.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use super::codec::{child_key, workload_key, workload_prefix};
use super::{
    CommitBatch, Fault, Store, StoreError, StoreMeta, StoredCheckpoint, StoredRow, StoredTally,
};
use crate::keys::{EventId, KeyId};
use crate::rules::KeyRecord;
use crate::tree::TileStratum;

#[derive(Default)]
struct State {
    meta: Option<StoreMeta>,
    size: u64,
    entries: BTreeMap<u64, Vec<u8>>,
    tiles: HashMap<(u8, u64), Vec<u8>>,
    strata: BTreeMap<(u8, u64), Vec<u8>>,
    strata_covered: u64,
    events: HashMap<EventId, u64>,
    workloads: BTreeMap<Vec<u8>, u64>,
    children: BTreeMap<[u8; 40], ()>,
    keys: BTreeMap<KeyId, KeyRecord>,
    runtimes: BTreeMap<String, u64>,
    checkpoints: BTreeMap<u64, StoredCheckpoint>,
    witnessed: BTreeMap<u64, StoredCheckpoint>,
    governance: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The tally row, encoded (so a damaged one can be planted).
    tally: Option<Vec<u8>>,
    faults: Vec<Fault>,
}

/// The in-memory store. Not durable: for tests and fault injection.
#[derive(Default)]
pub struct MemStore {
    state: Mutex<State>,
}

impl std::fmt::Debug for MemStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemStore")
            .field("size", &self.lock().size)
            .finish_non_exhaustive()
    }
}

impl MemStore {
    /// An empty, uninitialised store.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// Makes the next commits fail, one fault per commit, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Stores `bytes` as the tally row, as a damaged or foreign disk would
    /// hold it.
    pub fn put_tally_bytes(&self, bytes: &[u8]) {
        self.lock().tally = Some(bytes.to_vec());
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-updated in a
        // way later readers would misread (commit applies under one guard),
        // so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn apply(s: &mut State, b: &CommitBatch) {
    for (i, e) in b.entries.iter().enumerate() {
        s.entries
            .insert(b.first_index + i as u64, e.as_ref().clone());
    }
    for t in &b.tiles {
        s.tiles.insert((t.level, t.index), t.to_bytes());
    }
    for t in &b.strata {
        s.strata.insert((t.level, t.index), t.to_bytes());
    }
    for (id, index) in &b.events {
        s.events.insert(*id, *index);
    }
    for (w, seq, index) in &b.workloads {
        s.workloads.insert(workload_key(w, *seq), *index);
    }
    for (parent, child) in &b.children {
        s.children.insert(child_key(parent.as_bytes(), *child), ());
    }
    for k in &b.keys {
        s.keys.insert(k.key_id, k.clone());
    }
    for (r, n) in &b.runtime_counts {
        s.runtimes.insert(r.clone(), *n);
    }
    for (key, value) in &b.governance {
        match value {
            Some(v) => s.governance.insert(key.clone(), v.clone()),
            None => s.governance.remove(key),
        };
    }
    s.checkpoints
        .insert(b.checkpoint.size, b.checkpoint.clone());
    s.size = b.checkpoint.size;
}

impl Store for MemStore {
    fn meta(&self) -> Result<Option<StoreMeta>, StoreError> {
        Ok(self.lock().meta.clone())
    }

    fn initialize(&self, meta: &StoreMeta, cp: &StoredCheckpoint) -> Result<(), StoreError> {
        let mut s = self.lock();
        if s.meta.is_some() {
            return Err(StoreError::AlreadyInitialized);
        }
        s.meta = Some(meta.clone());
        s.checkpoints.insert(cp.size, cp.clone());
        s.size = cp.size;
        Ok(())
    }

    fn head(&self) -> Result<StoredCheckpoint, StoreError> {
        let s = self.lock();
        s.checkpoints
            .get(&s.size)
            .cloned()
            .ok_or_else(|| StoreError::Corrupt {
                what: "head",
                key: s.size.to_string(),
            })
    }

    fn entry(&self, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().entries.get(&index).cloned())
    }

    fn entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        Ok(self
            .lock()
            .entries
            .range(start..end)
            .map(|(_, e)| e.clone())
            .collect())
    }

    fn tile(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().tiles.get(&(level, index)).cloned())
    }

    fn stratum(&self, level: u8, index: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.lock().strata.get(&(level, index)).cloned())
    }

    /// From the tile itself: the runs of every complete level-0 tile, so that
    /// readers of runs are tested against this store too.
    fn leaf_run(&self, tile: u64, run: u16) -> Result<Option<Vec<u8>>, StoreError> {
        let inner = self.lock();
        let Some(row) = inner.tiles.get(&(0, tile)) else {
            return Ok(None);
        };
        if row.len() != crate::TILE_WIDTH as usize * crate::HASH_SIZE {
            return Ok(None);
        }
        let at = usize::from(run) * crate::tree::RUN_BYTES;
        Ok(row.get(at..at + crate::tree::RUN_BYTES).map(<[u8]>::to_vec))
    }

    fn strata(&self, level: u8, from: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        Ok(self
            .lock()
            .strata
            .range((level, from)..=(level, u64::MAX))
            .take(limit)
            .map(|((_, index), _)| *index)
            .collect())
    }

    fn strata_covered(&self) -> Result<u64, StoreError> {
        Ok(self.lock().strata_covered)
    }

    fn put_strata(&self, strata: &[TileStratum], covered: Option<u64>) -> Result<(), StoreError> {
        let mut s = self.lock();
        for t in strata {
            s.strata.insert((t.level, t.index), t.to_bytes());
        }
        if let Some(size) = covered {
            s.strata_covered = size;
        }
        Ok(())
    }

    fn event_index(&self, id: &EventId) -> Result<Option<u64>, StoreError> {
        Ok(self.lock().events.get(id).copied())
    }

    fn workload_index(&self, workload: &str, seq: u64) -> Result<Option<u64>, StoreError> {
        Ok(self
            .lock()
            .workloads
            .get(&workload_key(workload, seq))
            .copied())
    }

    fn workload_last(&self, workload: &str) -> Result<Option<(u64, u64)>, StoreError> {
        let s = self.lock();
        let prefix = workload_prefix(workload);
        Ok(s.workloads
            .range(prefix.clone()..=workload_key(workload, u64::MAX))
            .next_back()
            .map(|(k, i)| (seq_of(&k[prefix.len()..]), *i)))
    }

    fn workload_range(
        &self,
        workload: &str,
        from_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let s = self.lock();
        let n = workload_prefix(workload).len();
        Ok(s.workloads
            .range(workload_key(workload, from_seq)..=workload_key(workload, u64::MAX))
            .take(limit)
            .map(|(k, i)| (seq_of(&k[n..]), *i))
            .collect())
    }

    fn children(&self, parent: &EventId, limit: usize) -> Result<Vec<u64>, StoreError> {
        let s = self.lock();
        Ok(s.children
            .range(child_key(parent.as_bytes(), 0)..=child_key(parent.as_bytes(), u64::MAX))
            .take(limit)
            .map(|(k, ())| seq_of(&k[32..]))
            .collect())
    }

    fn checkpoint(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        Ok(self.lock().checkpoints.get(&size).cloned())
    }

    fn checkpoints_before(&self, before: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        Ok(self
            .lock()
            .checkpoints
            .range(..before)
            .rev()
            .take(limit)
            .map(|(s, _)| *s)
            .collect())
    }

    fn witnessed(&self, size: u64) -> Result<Option<StoredCheckpoint>, StoreError> {
        Ok(self.lock().witnessed.get(&size).cloned())
    }

    fn witnessed_head(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        Ok(self.lock().witnessed.values().next_back().cloned())
    }

    fn put_witnessed(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        self.lock()
            .witnessed
            .insert(checkpoint.size, checkpoint.clone());
        Ok(())
    }

    fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        Ok(self.lock().keys.values().cloned().collect())
    }

    fn governance_scan(
        &self,
        start: &[u8],
        prefix: &[u8],
        limit: usize,
    ) -> Result<Vec<StoredRow>, StoreError> {
        Ok(self
            .lock()
            .governance
            .range(start.to_vec()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn runtime_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        Ok(self
            .lock()
            .runtimes
            .iter()
            .map(|(r, n)| (r.clone(), *n))
            .collect())
    }

    fn tally(&self) -> Result<Option<StoredTally>, StoreError> {
        self.lock()
            .tally
            .as_deref()
            .map(StoredTally::from_bytes)
            .transpose()
    }

    fn put_tally(&self, tally: &StoredTally) -> Result<(), StoreError> {
        self.lock().tally = Some(tally.to_bytes());
        Ok(())
    }

    fn commit(&self, batch: &CommitBatch) -> Result<(), StoreError> {
        let mut s = self.lock();
        if batch.first_index != s.size {
            return Err(StoreError::Conflict {
                first_index: batch.first_index,
                size: s.size,
            });
        }
        let fault = (!s.faults.is_empty()).then(|| s.faults.remove(0));
        match fault {
            Some(Fault::LoseWrite) => Err(StoreError::Injected(Fault::LoseWrite)),
            Some(Fault::ApplyThenFail) => {
                apply(&mut s, batch);
                Err(StoreError::Injected(Fault::ApplyThenFail))
            }
            None => {
                apply(&mut s, batch);
                Ok(())
            }
        }
    }
}

/// The big-endian u64 at the end of a key (keys are built by this module, so
/// the suffix is always 8 bytes; a short one reads as 0 rather than panicking).
fn seq_of(b: &[u8]) -> u64 {
    super::codec::u64_be(b).unwrap_or(0)
}
