//! `SignedEnvelope::parse`: any bytes give Ok or Err; whatever parses
//! re-encodes to an envelope that parses equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lineage_ledger::dsse::SignedEnvelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = SignedEnvelope::parse(data) {
        let again = serde_json::to_vec(&env.to_wire()).expect("an envelope serializes");
        assert_eq!(SignedEnvelope::parse(&again).as_ref(), Ok(&env));
        let _ = env.event_id();
        let _ = env.signed_bytes();
    }
});
