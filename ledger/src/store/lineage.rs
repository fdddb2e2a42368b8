//! The governance rows: how the lineage's derivations, the workloads each
//! runtime started, halt marks, active halts and the governance entries'
//! indices are keyed in one sorted key space (the `governance` column
//! family), and how a batch's [`GovernanceDelta`] becomes rows.
//!
//! | key | value | meaning |
//! |---|---|---|
//! | `d` parent `0x00` child | empty | `child` derives from `parent` |
//! | `u` child `0x00` parent | empty | the same, read from the child |
//! | `s` runtime `0x00` workload | empty | `runtime` started `workload` |
//! | `m` workload | u64 BE, ascending | active halts that stop `workload` |
//! | `h` (`w` workload or `r` runtime) | u64 BE | the active halt of that target |
//! | `g` index u64 BE | empty | the entry at `index` is governance |
//!
//! 0x00 cannot occur in a workload or runtime ID, so it ends the first ID.

use super::error::StoreError;
use crate::event::{RuntimeId, Target, WorkloadId};
use crate::state::GovernanceDelta;

/// One row to write: `Some(value)` puts, `None` deletes.
pub type GovernanceRow = (Vec<u8>, Option<Vec<u8>>);

/// One row read: key and value.
pub type StoredRow = (Vec<u8>, Vec<u8>);

const DERIVED: u8 = b'd';
const DERIVES_FROM: u8 = b'u';
const STARTED: u8 = b's';
const MARKS: u8 = b'm';
const HALT: u8 = b'h';
const STATEMENT: u8 = b'g';

fn pair(tag: u8, a: &str, b: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + a.len() + b.len());
    k.push(tag);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k.extend_from_slice(b.as_bytes());
    k
}

/// The prefix of every `tag` row whose first ID is `a`.
pub(crate) fn pair_prefix(tag: u8, a: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + a.len());
    k.push(tag);
    k.extend_from_slice(a.as_bytes());
    k.push(0);
    k
}

/// Prefix of the workloads deriving from `parent`.
pub(crate) fn derived_prefix(parent: &str) -> Vec<u8> {
    pair_prefix(DERIVED, parent)
}

/// Prefix of the workloads `child` derives from.
pub(crate) fn derives_from_prefix(child: &str) -> Vec<u8> {
    pair_prefix(DERIVES_FROM, child)
}

/// Prefix of the workloads `runtime` started.
pub(crate) fn started_prefix(runtime: &str) -> Vec<u8> {
    pair_prefix(STARTED, runtime)
}

/// Prefix of every halt-marks row.
pub(crate) const MARKS_PREFIX: &[u8] = &[MARKS];
/// Prefix of every active-halt row.
pub(crate) const HALTS_PREFIX: &[u8] = &[HALT];
/// Prefix of every governance-entry row.
pub(crate) const STATEMENTS_PREFIX: &[u8] = &[STATEMENT];

/// Key of the marks of `workload`.
pub(crate) fn marks_key(workload: &str) -> Vec<u8> {
    let mut k = vec![MARKS];
    k.extend_from_slice(workload.as_bytes());
    k
}

fn halt_key(target: &Target) -> Vec<u8> {
    let (tag, id) = match target {
        Target::Workload(w) => (b'w', w.as_str()),
        Target::Runtime(r) => (b'r', r.as_str()),
    };
    let mut k = vec![HALT, tag];
    k.extend_from_slice(id.as_bytes());
    k
}

/// Key of the governance entry at `index`.
pub(crate) fn statement_key(index: u64) -> Vec<u8> {
    let mut k = vec![STATEMENT];
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn corrupt(key: &[u8]) -> StoreError {
    StoreError::Corrupt {
        what: "governance row",
        key: hex::encode(key),
    }
}

/// The second ID of a pair row.
pub(crate) fn pair_second(key: &[u8], prefix_len: usize) -> Result<String, StoreError> {
    key.get(prefix_len..)
        .and_then(|b| std::str::from_utf8(b).ok())
        .map(str::to_owned)
        .ok_or_else(|| corrupt(key))
}

/// A marks row's workload and halts.
pub(crate) fn decode_marks(key: &[u8], value: &[u8]) -> Result<(String, Vec<u64>), StoreError> {
    let workload = pair_second(key, 1)?;
    if !value.len().is_multiple_of(8) {
        return Err(corrupt(key));
    }
    let halts = value
        .chunks_exact(8)
        .map(|c| u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    Ok((workload, halts))
}

/// An active-halt row's target and index.
pub(crate) fn decode_halt(key: &[u8], value: &[u8]) -> Result<(Target, u64), StoreError> {
    let id = key
        .get(2..)
        .and_then(|b| std::str::from_utf8(b).ok())
        .ok_or_else(|| corrupt(key))?;
    let target = match key.get(1) {
        Some(b'w') => Target::Workload(WorkloadId::new(id).map_err(|_| corrupt(key))?),
        Some(b'r') => Target::Runtime(RuntimeId::new(id).map_err(|_| corrupt(key))?),
        _ => return Err(corrupt(key)),
    };
    let index: [u8; 8] = value.try_into().map_err(|_| corrupt(key))?;
    Ok((target, u64::from_be_bytes(index)))
}

/// A governance-entry row's index.
pub(crate) fn decode_statement(key: &[u8]) -> Result<u64, StoreError> {
    let index: [u8; 8] = key
        .get(1..)
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| corrupt(key))?;
    Ok(u64::from_be_bytes(index))
}

/// The rows that record what a batch changed of the governance state.
pub fn governance_rows(delta: &GovernanceDelta) -> Vec<GovernanceRow> {
    let mut rows = Vec::new();
    for (child, parent) in &delta.derivations {
        rows.push((
            pair(DERIVED, parent.as_str(), child.as_str()),
            Some(Vec::new()),
        ));
        rows.push((
            pair(DERIVES_FROM, child.as_str(), parent.as_str()),
            Some(Vec::new()),
        ));
    }
    for (runtime, workloads) in &delta.started {
        for w in workloads {
            rows.push((
                pair(STARTED, runtime.as_str(), w.as_str()),
                Some(Vec::new()),
            ));
        }
    }
    for (workload, halts) in &delta.marks {
        let value =
            (!halts.is_empty()).then(|| halts.iter().flat_map(|h| h.to_be_bytes()).collect());
        rows.push((marks_key(workload.as_str()), value));
    }
    for (target, index) in &delta.active {
        rows.push((halt_key(target), index.map(|i| i.to_be_bytes().to_vec())));
    }
    for index in &delta.statements {
        rows.push((statement_key(*index), Some(Vec::new())));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_prefixes_do_not_collide() {
        let w = |s: &str| WorkloadId::new(s).expect("w");
        let mut delta = GovernanceDelta::default();
        delta.derivations.push((w("child"), w("run")));
        delta.marks.insert(w("run"), vec![3, 9]);
        delta.marks.insert(w("free"), vec![]);
        delta
            .active
            .insert(Target::Runtime(RuntimeId::new("rt").expect("r")), Some(3));
        delta.statements.push(3);
        let rows = governance_rows(&delta);
        let find = |k: &[u8]| {
            rows.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(find(&pair(DERIVED, "run", "child")), Some(Some(vec![])));
        let key = pair(DERIVES_FROM, "child", "run");
        assert!(key.starts_with(&derives_from_prefix("child")));
        assert!(!key.starts_with(&derives_from_prefix("chil")));
        assert_eq!(
            pair_second(&key, derives_from_prefix("child").len()).ok(),
            Some("run".to_owned())
        );
        let marks = find(&marks_key("run")).flatten().expect("marks");
        assert_eq!(
            decode_marks(&marks_key("run"), &marks).ok(),
            Some(("run".to_owned(), vec![3, 9]))
        );
        assert_eq!(
            find(&marks_key("free")),
            Some(None),
            "emptied marks are deleted"
        );
        let halt = halt_key(&Target::Runtime(RuntimeId::new("rt").expect("r")));
        let value = find(&halt).flatten().expect("halt");
        assert_eq!(
            decode_halt(&halt, &value).ok(),
            Some((Target::Runtime(RuntimeId::new("rt").expect("r")), 3))
        );
        assert_eq!(decode_statement(&statement_key(3)).ok(), Some(3));
        assert!(decode_marks(&marks_key("x"), &[1, 2, 3]).is_err());
    }
}
