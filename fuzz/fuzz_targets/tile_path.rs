//! `TilePath::parse`: any string gives Ok or Err; an accepted path is the
//! `Display` of its value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lineage_ledger::tile::TilePath;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(path) = TilePath::parse(text)
    {
        assert_eq!(path.to_string(), text);
    }
});
