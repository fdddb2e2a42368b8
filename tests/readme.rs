//! The README's commands, as a newcomer copies them.

/// Every `cargo run` the README shows reuses the first command's release
/// build: a dev-profile `cargo run` compiles RocksDB's C++ a second time
/// (another ~16 minutes on 2 cores).
#[test]
fn every_cargo_run_in_the_readme_reuses_the_release_build() {
    let readme = include_str!("../README.md");
    let runs: Vec<&str> = readme.lines().filter(|l| l.contains("cargo run")).collect();
    assert!(!runs.is_empty(), "the README shows how to start the ledger");
    for line in runs {
        let after = &line[line.find("cargo run").unwrap_or(0)..];
        let command = after.split(['`', '#']).next().unwrap_or(after);
        assert!(
            command.contains("--release"),
            "this README command builds RocksDB again in the dev profile: {line:?}"
        );
    }
}
