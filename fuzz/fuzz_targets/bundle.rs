//! Entry bundles (`tile::decode_bundle`) and receipts (`lineage_schemas::Receipt`
//! via serde_json): any bytes give Ok or Err; a decoded entry bundle encodes
//! back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lineage_ledger::tile::{decode_bundle, encode_bundle};

fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = decode_bundle(data) {
        let again = encode_bundle(entries.iter().copied()).expect("a decoded bundle encodes");
        assert_eq!(again, data);
    }
    if let Ok(receipt) = serde_json::from_slice::<lineage_schemas::Receipt>(data) {
        let again = serde_json::to_vec(&receipt).expect("a receipt serializes");
        assert_eq!(
            serde_json::from_slice::<lineage_schemas::Receipt>(&again).ok(),
            Some(receipt)
        );
    }
});
