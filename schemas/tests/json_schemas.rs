//! The checked-in JSON Schemas under `schemas/json/` match the Rust definitions.
//!
//! Run with `LINEAGE_UPDATE_SCHEMAS=1` to rewrite them after changing a wire type.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use lineage_schemas::{all_schemas, render_schema};

fn json_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("json")
}

#[test]
fn checked_in_schemas_match_the_types() {
    let dir = json_dir();
    let update = std::env::var("LINEAGE_UPDATE_SCHEMAS").is_ok_and(|v| v == "1");
    let mut drifted = Vec::new();
    let mut expected_files = BTreeSet::new();
    for (stem, schema) in all_schemas() {
        let name = format!("{stem}.schema.json");
        let path = dir.join(&name);
        let want = render_schema(&schema);
        expected_files.insert(name.clone());
        if std::fs::read_to_string(&path).ok().as_deref() == Some(want.as_str()) {
            continue;
        }
        if update {
            std::fs::create_dir_all(&dir).expect("create schemas/json");
            std::fs::write(&path, want).expect("write schema");
        } else {
            drifted.push(name);
        }
    }
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("read schemas/json") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".schema.json") && !expected_files.contains(&name) {
            if update {
                std::fs::remove_file(dir.join(&name)).expect("remove stale schema");
            } else {
                stale.push(name);
            }
        }
    }
    assert!(
        drifted.is_empty() && stale.is_empty(),
        "JSON Schemas in {} are out of date (differ: {drifted:?}; no longer generated: {stale:?}). \
         Regenerate them with `LINEAGE_UPDATE_SCHEMAS=1 cargo test -p lineage-schemas` and commit the result.",
        dir.display()
    );
}

#[test]
fn every_schema_is_draft_2020_12_with_a_title() {
    for (stem, schema) in all_schemas() {
        assert_eq!(
            schema["$schema"], "https://json-schema.org/draft/2020-12/schema",
            "{stem}"
        );
        assert!(schema["title"].is_string(), "{stem}");
        assert!(schema["description"].is_string(), "{stem}");
    }
}
