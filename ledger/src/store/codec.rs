//! The on-disk value encodings, in one versioned module.
//!
//! Keys sort as the reads need them: integers are big-endian, a workload key
//! is `workload || 0x00 || seq` (0x00 cannot occur in a workload ID), a child
//! key is `parent_id || child_index`.
//!
//! Values: [`StoreMeta`], [`StoredCheckpoint`], key records
//! ([`key_record_bytes`]) and [`StoredTally`] (a reader's saved counts, a
//! cache that carries its own version byte).

// Some encoders serve only the RocksDB store.
#![cfg_attr(not(feature = "rocksdb"), allow(dead_code))]

use ed25519_dalek::VerifyingKey;

use super::error::StoreError;
use time::OffsetDateTime;

use std::collections::BTreeMap;

use crate::event::{RuntimeId, Scope};
use crate::hash::{HASH_SIZE, Hash};
use crate::keys::KeyId;
use crate::rules::KeyRecord;

/// Version of the on-disk format; a store of another version is refused.
///
/// Version 2 added the governance column families and the validity window
/// and scope of key records; a version-1 store is refused at open.
pub const FORMAT_VERSION: u32 = 2;

/// The identity of the log a store holds; fixed at initialisation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreMeta {
    /// On-disk format version.
    pub format_version: u32,
    /// The log's origin (checkpoint first line and key name).
    pub origin: String,
    /// The log key in signed-note vkey form.
    pub vkey: String,
}

impl StoreMeta {
    /// Encodes as `version u32 BE || len u16 BE || origin || vkey`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(6 + self.origin.len() + self.vkey.len());
        out.extend_from_slice(&self.format_version.to_be_bytes());
        out.extend_from_slice(&(self.origin.len() as u16).to_be_bytes());
        out.extend_from_slice(self.origin.as_bytes());
        out.extend_from_slice(self.vkey.as_bytes());
        out
    }

    /// Decodes [`StoreMeta::to_bytes`].
    ///
    /// # Errors
    /// `Corrupt` on any malformation.
    pub fn from_bytes(b: &[u8]) -> Result<StoreMeta, StoreError> {
        let corrupt = || StoreError::Corrupt {
            what: "meta",
            key: "format".into(),
        };
        let version = b.get(0..4).ok_or_else(corrupt)?;
        let len = b.get(4..6).ok_or_else(corrupt)?;
        let len = u16::from_be_bytes([len[0], len[1]]) as usize;
        let origin = b.get(6..6 + len).ok_or_else(corrupt)?;
        let vkey = b.get(6 + len..).ok_or_else(corrupt)?;
        Ok(StoreMeta {
            format_version: u32::from_be_bytes([version[0], version[1], version[2], version[3]]),
            origin: String::from_utf8(origin.to_vec()).map_err(|_| corrupt())?,
            vkey: String::from_utf8(vkey.to_vec()).map_err(|_| corrupt())?,
        })
    }

    /// Checks that a stored identity is the configured one.
    ///
    /// # Errors
    /// [`StoreError::MetaMismatch`] naming the first differing field.
    pub fn check_matches(&self, configured: &StoreMeta) -> Result<(), StoreError> {
        let mismatch = |field, stored: String, configured: String| {
            Err(StoreError::MetaMismatch {
                field,
                stored,
                configured,
            })
        };
        if self.format_version != configured.format_version {
            return mismatch(
                "format version",
                self.format_version.to_string(),
                configured.format_version.to_string(),
            );
        }
        if self.origin != configured.origin {
            return mismatch("origin", self.origin.clone(), configured.origin.clone());
        }
        if self.vkey != configured.vkey {
            return mismatch("log key", self.vkey.clone(), configured.vkey.clone());
        }
        Ok(())
    }
}

/// A checkpoint the log signed, with when it signed it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub size: u64,
    /// Signing time, Unix milliseconds.
    pub time_ms: u64,
    /// The signed note text.
    pub note: String,
}

impl StoredCheckpoint {
    /// Value encoding: `time_ms u64 BE || note` (the size is the key).
    pub fn value_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.note.len());
        out.extend_from_slice(&self.time_ms.to_be_bytes());
        out.extend_from_slice(self.note.as_bytes());
        out
    }

    /// Decodes a checkpoint value stored under `size`.
    ///
    /// # Errors
    /// `Corrupt` on any malformation.
    pub fn from_value(size: u64, b: &[u8]) -> Result<StoredCheckpoint, StoreError> {
        let corrupt = || StoreError::Corrupt {
            what: "checkpoint",
            key: size.to_string(),
        };
        let time = b.get(0..8).ok_or_else(corrupt)?;
        let note = b.get(8..).ok_or_else(corrupt)?;
        Ok(StoredCheckpoint {
            size,
            time_ms: u64_be(time).ok_or_else(corrupt)?,
            note: String::from_utf8(note.to_vec()).map_err(|_| corrupt())?,
        })
    }
}

/// Counts over the log's first `covers` entries that a reader saved so it
/// need not read those entries again after a restart (the explorer's index,
/// which defines what each field counts). A cache, not part of the log:
/// written beside commits, never read by the sequencer or the auditor, and
/// recomputable from the entries at any time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTally {
    /// Entries counted: `[0, covers)`.
    pub covers: u64,
    /// The leaf hash of entry `covers - 1`: a reader checks it against the
    /// log before trusting the counts (they are of this log's prefix).
    pub last_leaf: Hash,
    /// Runtime events.
    pub events: u64,
    /// Governance statements.
    pub governance: u64,
    /// Workloads (events with `seq` 0).
    pub workloads: u64,
    /// Events per kind, for the kinds the reader keeps.
    pub kinds: BTreeMap<String, u64>,
}

impl StoredTally {
    /// The version byte [`StoredTally::to_bytes`] writes; any other is refused.
    pub const VERSION: u8 = 1;
    const FIXED: usize = 1 + 8 + HASH_SIZE + 8 + 8 + 8 + 2;

    /// Encodes as `version u8 (1) || covers u64 BE || last_leaf (32) ||
    /// events u64 BE || governance u64 BE || workloads u64 BE || kind count
    /// u16 BE || per kind, in ascending byte order: length u8 || kind (UTF-8)
    /// || count u64 BE`.
    ///
    /// A kind of 0 or more than 255 bytes, and kinds past the 65,535th, are
    /// left out. Neither occurs: an event kind is 1 to 64 characters
    /// ([`MAX_KIND_CHARS`](crate::event::MAX_KIND_CHARS)), and the explorer
    /// keeps at most 256 kinds.
    pub fn to_bytes(&self) -> Vec<u8> {
        let kinds: Vec<(&String, &u64)> = self
            .kinds
            .iter()
            .filter(|(k, _)| (1..=usize::from(u8::MAX)).contains(&k.len()))
            .take(usize::from(u16::MAX))
            .collect();
        let mut out = Vec::with_capacity(Self::FIXED + kinds.len() * 40);
        out.push(Self::VERSION);
        out.extend_from_slice(&self.covers.to_be_bytes());
        out.extend_from_slice(self.last_leaf.as_bytes());
        out.extend_from_slice(&self.events.to_be_bytes());
        out.extend_from_slice(&self.governance.to_be_bytes());
        out.extend_from_slice(&self.workloads.to_be_bytes());
        out.extend_from_slice(&(kinds.len() as u16).to_be_bytes());
        for (kind, n) in kinds {
            out.push(kind.len() as u8);
            out.extend_from_slice(kind.as_bytes());
            out.extend_from_slice(&n.to_be_bytes());
        }
        out
    }

    /// Decodes [`StoredTally::to_bytes`], strictly: another version, a
    /// short or long value, kinds out of order or not UTF-8, or counts that
    /// cannot hold (more events and statements than entries, more workloads
    /// or kind counts than events) are refused.
    ///
    /// # Errors
    /// `Corrupt` on any malformation.
    pub fn from_bytes(b: &[u8]) -> Result<StoredTally, StoreError> {
        let corrupt = || StoreError::Corrupt {
            what: "tally",
            key: "tally".into(),
        };
        let mut r = Reader(b);
        if r.take(1).ok_or_else(corrupt)? != [Self::VERSION] {
            return Err(corrupt());
        }
        let covers = r.u64().ok_or_else(corrupt)?;
        let last_leaf = r
            .take(HASH_SIZE)
            .and_then(Hash::from_slice)
            .ok_or_else(corrupt)?;
        let events = r.u64().ok_or_else(corrupt)?;
        let governance = r.u64().ok_or_else(corrupt)?;
        let workloads = r.u64().ok_or_else(corrupt)?;
        let count = r.take(2).ok_or_else(corrupt)?;
        let count = u16::from_be_bytes([count[0], count[1]]);
        let mut kinds = BTreeMap::new();
        let mut kind_total: u64 = 0;
        for _ in 0..count {
            let len = r.take(1).ok_or_else(corrupt)?[0];
            let kind = r.take(usize::from(len)).ok_or_else(corrupt)?;
            let kind = std::str::from_utf8(kind).map_err(|_| corrupt())?;
            let n = r.u64().ok_or_else(corrupt)?;
            let ascending = kinds
                .last_key_value()
                .is_none_or(|(last, _): (&String, _)| last.as_str() < kind);
            if kind.is_empty() || !ascending {
                return Err(corrupt());
            }
            kind_total = kind_total.checked_add(n).ok_or_else(corrupt)?;
            kinds.insert(kind.to_owned(), n);
        }
        let consistent = r.0.is_empty()
            && events.checked_add(governance).is_some_and(|n| n <= covers)
            && workloads <= events
            && kind_total <= events;
        if !consistent {
            return Err(corrupt());
        }
        Ok(StoredTally {
            covers,
            last_leaf,
            events,
            governance,
            workloads,
            kinds,
        })
    }
}

/// Reads a value front to back; `None` when it is too short.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn u64(&mut self) -> Option<u64> {
        self.take(8).and_then(u64_be)
    }
}

/// Reads a big-endian u64 from exactly 8 bytes.
pub(crate) fn u64_be(b: &[u8]) -> Option<u64> {
    b.try_into().ok().map(u64::from_be_bytes)
}

/// Key of hash tile `(level, index)`.
pub(crate) fn tile_key(level: u8, index: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = level;
    k[1..].copy_from_slice(&index.to_be_bytes());
    k
}

/// Key of a workload's event at `seq`.
pub(crate) fn workload_key(workload: &str, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(workload.len() + 9);
    k.extend_from_slice(workload.as_bytes());
    k.push(0);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Prefix of every key of a workload.
pub(crate) fn workload_prefix(workload: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(workload.len() + 1);
    k.extend_from_slice(workload.as_bytes());
    k.push(0);
    k
}

/// Key of a lineage link.
pub(crate) fn child_key(parent: &[u8; 32], child_index: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(parent);
    k[32..].copy_from_slice(&child_index.to_be_bytes());
    k
}

/// A time as Unix nanoseconds, `i128::MIN` for none.
fn time_bytes(t: Option<OffsetDateTime>) -> [u8; 16] {
    t.map_or(i128::MIN, OffsetDateTime::unix_timestamp_nanos)
        .to_be_bytes()
}

/// Encodes a key record: `pubkey 32 || granted u64 BE || revoked u64 BE
/// (u64::MAX = none) || not_before i128 BE || not_after i128 BE (Unix ns,
/// i128::MIN = none) || runtime length u8 || runtime || scope` (the scope as
/// its wire JSON, empty for none).
pub(crate) fn key_record_bytes(k: &KeyRecord) -> Vec<u8> {
    let scope = k
        .scope
        .as_ref()
        .and_then(|s| serde_json::to_vec(&s.to_wire()).ok())
        .unwrap_or_default();
    let runtime = k.runtime.as_str().as_bytes();
    let mut out = Vec::with_capacity(81 + runtime.len() + scope.len());
    out.extend_from_slice(k.public_key.as_bytes());
    out.extend_from_slice(&k.granted_index.to_be_bytes());
    out.extend_from_slice(&k.revoked_index.unwrap_or(u64::MAX).to_be_bytes());
    out.extend_from_slice(&time_bytes(k.not_before));
    out.extend_from_slice(&time_bytes(k.not_after));
    // A runtime ID is at most 128 ASCII characters.
    out.push(u8::try_from(runtime.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(runtime);
    out.extend_from_slice(&scope);
    out
}

/// Decodes [`key_record_bytes`].
pub(crate) fn key_record_from_bytes(b: &[u8]) -> Result<KeyRecord, StoreError> {
    let corrupt = || StoreError::Corrupt {
        what: "key",
        key: hex::encode(b.get(..32).unwrap_or_default()),
    };
    let pk: [u8; 32] = b
        .get(..32)
        .and_then(|s| s.try_into().ok())
        .ok_or_else(corrupt)?;
    let public_key = VerifyingKey::from_bytes(&pk).map_err(|_| corrupt())?;
    let granted_index = b.get(32..40).and_then(u64_be).ok_or_else(corrupt)?;
    let revoked = b.get(40..48).and_then(u64_be).ok_or_else(corrupt)?;
    let time = |range: std::ops::Range<usize>| -> Result<Option<OffsetDateTime>, StoreError> {
        let raw: [u8; 16] = b
            .get(range)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(corrupt)?;
        match i128::from_be_bytes(raw) {
            i128::MIN => Ok(None),
            ns => OffsetDateTime::from_unix_timestamp_nanos(ns)
                .map(Some)
                .map_err(|_| corrupt()),
        }
    };
    let not_before = time(48..64)?;
    let not_after = time(64..80)?;
    let len = usize::from(*b.get(80).ok_or_else(corrupt)?);
    let runtime = b.get(81..81 + len).ok_or_else(corrupt)?;
    let runtime = std::str::from_utf8(runtime).map_err(|_| corrupt())?;
    let scope = match b.get(81 + len..).ok_or_else(corrupt)? {
        [] => None,
        json => {
            let wire = serde_json::from_slice(json).map_err(|_| corrupt())?;
            Some(Scope::from_wire(&wire).map_err(|_| corrupt())?)
        }
    };
    Ok(KeyRecord {
        key_id: KeyId::from_public_key(&public_key),
        public_key,
        runtime: RuntimeId::new(runtime).map_err(|_| corrupt())?,
        granted_index,
        revoked_index: (revoked != u64::MAX).then_some(revoked),
        not_before,
        not_after,
        scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn meta_round_trip_and_mismatch() {
        let m = StoreMeta {
            format_version: FORMAT_VERSION,
            origin: "lineage.local/log".into(),
            vkey: "lineage.local/log+01020304+AQ==".into(),
        };
        assert_eq!(StoreMeta::from_bytes(&m.to_bytes()).ok(), Some(m.clone()));
        assert!(m.check_matches(&m).is_ok());
        let other = StoreMeta {
            origin: "other/log".into(),
            ..m.clone()
        };
        match m.check_matches(&other) {
            Err(StoreError::MetaMismatch { field, .. }) => assert_eq!(field, "origin"),
            r => panic!("expected origin mismatch, got {r:?}"),
        }
        assert!(StoreMeta::from_bytes(&[0, 0, 0]).is_err());
        assert!(StoreMeta::from_bytes(&[0, 0, 0, 1, 0, 9, b'a']).is_err());
    }

    #[test]
    fn checkpoint_value_round_trip() {
        let c = StoredCheckpoint {
            size: 7,
            time_ms: 1_700_000_000_123,
            note: "o\n7\nroot\n\n— o sig\n".into(),
        };
        assert_eq!(
            StoredCheckpoint::from_value(7, &c.value_bytes()).ok(),
            Some(c)
        );
        assert!(StoredCheckpoint::from_value(7, &[1, 2]).is_err());
    }

    fn record(revoked_index: Option<u64>) -> KeyRecord {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
        KeyRecord {
            key_id: KeyId::from_public_key(&key),
            public_key: key,
            runtime: RuntimeId::new("agent/a").expect("runtime"),
            granted_index: 3,
            revoked_index,
            not_before: None,
            not_after: None,
            scope: None,
        }
    }

    #[test]
    fn key_record_round_trip() {
        let scope = Scope::from_wire(&lineage_schemas::GrantScope {
            kinds: Some(vec!["tool.*".into(), "workload.end".into()]),
            workloads: None,
            domains: Some(vec!["eu.prod".into()]),
        })
        .expect("scope");
        for revoked_index in [None, Some(9)] {
            let plain = record(revoked_index);
            let limited = KeyRecord {
                not_before: Some(time::macros::datetime!(2026-01-01 00:00:00.000000001 UTC)),
                not_after: Some(time::macros::datetime!(2027-01-01 00:00:00 UTC)),
                scope: Some(scope.clone()),
                ..plain.clone()
            };
            for k in [plain, limited] {
                assert_eq!(key_record_from_bytes(&key_record_bytes(&k)).ok(), Some(k));
            }
        }
        assert!(key_record_from_bytes(&[1, 2, 3]).is_err());
        let mut bad = key_record_bytes(&record(None));
        bad.push(b' ');
        assert!(
            key_record_from_bytes(&bad).is_err(),
            "a scope that is not JSON is refused"
        );
        let mut bad = key_record_bytes(&record(None));
        bad[81] = b' ';
        assert!(
            key_record_from_bytes(&bad).is_err(),
            "runtime charset is checked"
        );
    }

    #[test]
    fn workload_keys_sort_by_seq_within_a_workload() {
        assert!(workload_key("w", 1) < workload_key("w", 2));
        assert!(workload_key("w", u64::MAX) < workload_key("w0", 0));
        assert!(workload_key("w", 5).starts_with(&workload_prefix("w")));
        assert!(!workload_key("w0", 5).starts_with(&workload_prefix("w")));
    }

    fn tally() -> StoredTally {
        StoredTally {
            covers: 10,
            last_leaf: Hash::from_bytes([9; 32]),
            events: 7,
            governance: 3,
            workloads: 2,
            kinds: [
                ("tool.invoke".to_owned(), 4),
                ("workload.end".to_owned(), 1),
            ]
            .into(),
        }
    }

    #[test]
    fn tally_layout_is_as_documented() {
        let b = tally().to_bytes();
        assert_eq!(b[0], StoredTally::VERSION);
        assert_eq!(u64_be(&b[1..9]), Some(10));
        assert_eq!(&b[9..41], &[9; 32]);
        assert_eq!(u64_be(&b[41..49]), Some(7));
        assert_eq!(u64_be(&b[49..57]), Some(3));
        assert_eq!(u64_be(&b[57..65]), Some(2));
        assert_eq!(&b[65..67], &[0, 2]);
        assert_eq!(b[67], 11);
        assert_eq!(&b[68..79], b"tool.invoke");
        assert_eq!(u64_be(&b[79..87]), Some(4));
        assert_eq!(b.len(), 87 + 1 + 12 + 8);
    }

    #[test]
    fn tally_round_trip() {
        for t in [
            tally(),
            StoredTally {
                kinds: BTreeMap::new(),
                ..tally()
            },
        ] {
            assert_eq!(StoredTally::from_bytes(&t.to_bytes()).ok(), Some(t));
        }
    }

    #[test]
    fn a_kind_that_cannot_be_encoded_is_left_out_and_the_rest_still_decodes() {
        let mut t = tally();
        t.kinds.insert("k".repeat(256), 1);
        t.kinds.insert(String::new(), 1);
        assert_eq!(StoredTally::from_bytes(&t.to_bytes()).ok(), Some(tally()));
    }

    #[track_caller]
    fn refused(b: &[u8]) {
        assert!(
            matches!(
                StoredTally::from_bytes(b),
                Err(StoreError::Corrupt { what: "tally", .. })
            ),
            "{b:?} was accepted"
        );
    }

    #[test]
    fn a_damaged_or_impossible_tally_is_refused() {
        let good = tally().to_bytes();
        refused(&[]);
        for n in 0..good.len() {
            refused(&good[..n]);
        }
        refused(&[good.as_slice(), &[0]].concat());
        let mut v2 = good.clone();
        v2[0] = 2;
        refused(&v2);
        let mut not_utf8 = good.clone();
        not_utf8[68] = 0xff;
        refused(&not_utf8);
        let swapped = StoredTally {
            kinds: [("b".to_owned(), 1), ("a".to_owned(), 1)].into(),
            ..tally()
        };
        // Kinds written out of order (or twice) are refused.
        let mut b = swapped.to_bytes();
        let (first, second) = (b[68], b[78]);
        b[68] = second;
        b[78] = first;
        refused(&b);
        let mut twice = swapped.to_bytes();
        twice[78] = twice[68];
        refused(&twice);
        for bad in [
            StoredTally {
                events: 8,
                ..tally()
            },
            StoredTally {
                governance: u64::MAX,
                ..tally()
            },
            StoredTally {
                workloads: 8,
                ..tally()
            },
            StoredTally {
                kinds: [("a".to_owned(), 5), ("b".to_owned(), 3)].into(),
                ..tally()
            },
            StoredTally {
                kinds: [("a".to_owned(), u64::MAX), ("b".to_owned(), 1)].into(),
                ..tally()
            },
        ] {
            refused(&bad.to_bytes());
        }
    }

    fn tally_strategy() -> impl Strategy<Value = StoredTally> {
        (
            any::<u32>(),
            any::<[u8; 32]>(),
            proptest::collection::btree_map("[a-z.]{1,64}", 0..1000u64, 0..20),
        )
            .prop_flat_map(|(extra, leaf, kinds)| {
                let in_kinds: u64 = kinds.values().sum();
                (in_kinds..=in_kinds + u64::from(extra)).prop_flat_map(move |events| {
                    let kinds = kinds.clone();
                    (0..=events, 0..=u64::from(extra)).prop_map(move |(workloads, governance)| {
                        StoredTally {
                            covers: events + governance + u64::from(extra % 7),
                            last_leaf: Hash::from_bytes(leaf),
                            events,
                            governance,
                            workloads,
                            kinds: kinds.clone(),
                        }
                    })
                })
            })
    }

    proptest! {
        #[test]
        fn tally_encode_decode_round_trip(t in tally_strategy()) {
            prop_assert_eq!(StoredTally::from_bytes(&t.to_bytes()).ok(), Some(t));
        }

        #[test]
        fn tally_decode_of_any_bytes_is_ok_or_err(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = StoredTally::from_bytes(&b);
        }

        #[test]
        fn tally_decode_of_a_damaged_tally_is_ok_or_err(
            t in tally_strategy(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut b = t.to_bytes();
            let i = at.index(b.len());
            b[i] = byte;
            let _ = StoredTally::from_bytes(&b);
        }
    }
}
