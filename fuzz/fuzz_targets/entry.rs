//! `LogEntry::decode`: any bytes give Ok or Err; a decoded entry encodes
//! back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lineage_ledger::entry::LogEntry;

fuzz_target!(|data: &[u8]| {
    if let Ok(entry) = LogEntry::decode(data) {
        assert_eq!(entry.encode(), data);
        let _ = entry.to_envelope();
    }
});
