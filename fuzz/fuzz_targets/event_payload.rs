//! `parse_event` and `parse_governance`: any bytes give Ok or Err, and an
//! accepted event keeps the invariants the rules rely on.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lineage_ledger::event::{
    GovernanceStatement, MAX_PARENTS, MAX_PAYLOAD_BYTES, parse_event, parse_governance,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = parse_event(data) {
        assert!(data.len() <= MAX_PAYLOAD_BYTES);
        assert_eq!(event.prev.is_some(), event.seq > 0);
        assert!(event.parents.len() <= MAX_PARENTS);
    }
    match parse_governance(data) {
        Ok(GovernanceStatement::Key(k)) => {
            assert!(!k.public_key.is_weak());
            if let (Some(start), Some(end)) = (k.not_before, k.not_after) {
                assert!(start < end);
            }
        }
        Ok(GovernanceStatement::Halt(_)) | Err(_) => {}
    }
});
