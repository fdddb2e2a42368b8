//! Bounded caches: the sequencer's workload heads, and the bound of the
//! proofs' upper tiles (`nodes::UpperTiles`).

use lineage_ledger::FastMap;
use lineage_ledger::rules::WorkloadHead;

/// How many committed workload heads the sequencer remembers.
pub(crate) const HEAD_CACHE_WORKLOADS: usize = 65_536;

/// How many complete tiles of level 1 and up proofs keep with every node
/// hashed (~16.6 KiB each, ~4 MiB in all): every level-1 tile of a log of
/// up to 16.7M entries (there are 153 at 10M).
pub(crate) const UPPER_TILES: usize = 256;

/// A bounded map: two generations, the older dropped whole when the newer
/// fills (an approximate LRU without per-hit bookkeeping).
#[derive(Debug)]
pub(crate) struct Generations<K, V> {
    young: FastMap<K, V>,
    old: FastMap<K, V>,
    generation: usize,
}

impl<K: std::hash::Hash + Eq, V> Default for Generations<K, V> {
    fn default() -> Self {
        Generations::new(2)
    }
}

impl<K: std::hash::Hash + Eq, V> Generations<K, V> {
    /// Holds at most `capacity` entries (at least 2).
    pub(crate) fn new(capacity: usize) -> Self {
        Generations {
            young: FastMap::default(),
            old: FastMap::default(),
            generation: (capacity / 2).max(1),
        }
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.young.get(key).or_else(|| self.old.get(key))
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        if self.young.len() >= self.generation {
            self.old = std::mem::take(&mut self.young);
        }
        self.old.remove(&key);
        self.young.insert(key, value);
    }

    pub(crate) fn clear(&mut self) {
        self.young.clear();
        self.old.clear();
    }
}

/// Committed workload heads the sequencer remembers (a cache of the store;
/// only the sequencer touches it, and a miss falls back to the store).
pub(crate) type HeadCache = Generations<String, WorkloadHead>;

impl HeadCache {
    /// Records the heads of a durable batch.
    pub(crate) fn absorb(&mut self, heads: impl IntoIterator<Item = (String, WorkloadHead)>) {
        for (w, h) in heads {
            self.insert(w, h);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use lineage_ledger::event::RuntimeId;
    use lineage_ledger::keys::EventId;

    fn head(seq: u64) -> WorkloadHead {
        WorkloadHead {
            seq,
            event_id: EventId::of_payload(&seq.to_be_bytes()),
            runtime: "agent/a".parse::<RuntimeId>().expect("runtime"),
            closed: false,
        }
    }

    fn batch(names: &[&str], seq: u64) -> HashMap<String, WorkloadHead> {
        names.iter().map(|n| ((*n).to_owned(), head(seq))).collect()
    }

    #[test]
    fn head_cache_keeps_the_newest_heads_within_its_bound() {
        let mut c = HeadCache::new(4);
        c.absorb(batch(&["a", "b"], 1));
        assert_eq!(c.get("a"), Some(&head(1)));
        // A newer head replaces the older one in either generation.
        c.absorb(batch(&["c", "a"], 2));
        assert_eq!(c.get("a"), Some(&head(2)));
        c.absorb(batch(&["d", "e", "f"], 3));
        let held = ["a", "b", "c", "d", "e", "f"]
            .iter()
            .filter(|w| c.get(**w).is_some())
            .count();
        assert!(held <= 4, "{held} heads held, bound 4");
        assert_eq!(c.get("f"), Some(&head(3)), "the newest is always held");
        assert_eq!(c.get("zzz"), None);
        c.clear();
        assert_eq!(c.get("f"), None);
    }
}
