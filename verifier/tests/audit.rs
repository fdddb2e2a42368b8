//! `audit` and `lineage` over real exports written by the fixture: a clean
//! log, one byte flipped in each kind of artifact, rule violations planted in
//! an otherwise well-formed log, `--since` and forks.

mod common;

use std::path::Path;

use common::{Ev, Fixture, Scenario, flip, key, public, scenario, write};
use lineage_ledger::keys::EventId;
use lineage_verify::ancestry::ancestry;
use lineage_verify::audit::{AuditOptions, AuditReport, AuthoritySource, Warning, audit};
use lineage_verify::{InputError, Silent, Verdict};

fn options(fx: &Fixture) -> AuditOptions {
    AuditOptions {
        authorities: vec![fx.authority.verifying_key()],
        ..AuditOptions::new(fx.log.verifier())
    }
}

fn run(dir: &Path, opts: &AuditOptions) -> AuditReport {
    audit(dir, opts, &mut Silent).expect("audit starts")
}

/// (code, index) of every violation.
fn found(r: &AuditReport) -> Vec<(&'static str, Option<u64>)> {
    r.violations.iter().map(|v| (v.code(), v.index())).collect()
}

#[track_caller]
fn check_has(r: &AuditReport, code: &str, index: Option<u64>) {
    assert!(
        found(r).contains(&(code, index)),
        "no {code} at {index:?} in:\n{}",
        r.to_text()
    );
}

fn clean() -> (Fixture, Scenario, tempfile::TempDir) {
    let mut fx = Fixture::new();
    let s = scenario(&mut fx);
    let dir = tempfile::tempdir().expect("tempdir");
    fx.write(dir.path());
    (fx, s, dir)
}

#[test]
fn a_clean_export_verifies_and_counts_everything() {
    let (fx, _, dir) = clean();
    let r = run(dir.path(), &options(&fx));
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
    assert_eq!(r.counts.entries, fx.size());
    assert_eq!(r.counts.hashed, fx.size());
    assert_eq!(r.counts.governance, 4);
    assert_eq!(r.counts.events, fx.size() - 4);
    assert_eq!(r.authority_source, AuthoritySource::CommandLine);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let text = r.to_text();
    assert!(
        text.contains("summary: 542 entries, 538 events, 4 governance entries, 0 violations"),
        "{text}"
    );
    assert!(text.ends_with("VERIFIED\n"), "{text}");
    assert_eq!(r.to_json()["summary"]["violations"], 0);
}

#[test]
fn chunking_does_not_change_the_result() {
    let (fx, _, dir) = clean();
    flip(dir.path(), "tile/0/001", 5);
    let mut one = options(&fx);
    one.chunk_bundles = 1;
    let a = run(dir.path(), &one);
    let b = run(dir.path(), &options(&fx));
    assert_eq!(found(&a), found(&b));
    assert_eq!(found(&a), vec![("tile_mismatch", Some(256))]);
}

/// Issue 10 item 5: the manifest is written by the operator being audited, so
/// its keys are never a default. A replay without `--authority` does not
/// start; the manifest's keys appear only as a hint in the error.
#[test]
fn manifest_authorities_are_never_trusted() {
    let (fx, s, dir) = clean();
    let listed = vec![public(&fx.authority)];
    let refused = audit(
        dir.path(),
        &AuditOptions::new(fx.log.verifier()),
        &mut Silent,
    );
    assert!(
        matches!(&refused, Err(InputError::NoAuthorities { manifest_keys }) if *manifest_keys == listed),
        "{refused:?}"
    );
    let refused = ancestry(
        s.build_head,
        dir.path(),
        &AuditOptions::new(fx.log.verifier()),
        &mut Silent,
    );
    assert!(
        matches!(&refused, Err(InputError::NoAuthorities { manifest_keys }) if *manifest_keys == listed),
        "{refused:?}"
    );

    // A compromised host lists its own key in the manifest: with the pinned
    // key, its grant is refused, so is every event under it.
    let (mut rogue, host) = (fx.clone(), key(98));
    rogue.authority = host.clone();
    let rogue_dir = tempfile::tempdir().expect("tempdir");
    rogue.grant("agent/x", &key(97));
    rogue.write(rogue_dir.path());
    let r = run(rogue_dir.path(), &options(&fx));
    assert_eq!(r.authority_source, AuthoritySource::CommandLine);
    assert_eq!(r.warnings, vec![Warning::ManifestAuthoritiesDiffer]);
    check_has(&r, "unknown_key", Some(fx.size()));
    assert_eq!(r.verdict(), Verdict::Failed);
    let refused = audit(
        rogue_dir.path(),
        &AuditOptions::new(fx.log.verifier()),
        &mut Silent,
    );
    assert!(
        matches!(&refused, Err(InputError::NoAuthorities { manifest_keys }) if *manifest_keys == vec![public(&host)]),
        "{refused:?}"
    );

    // Another authority than the log's: every grant is refused, so is every event.
    let other = AuditOptions {
        authorities: vec![key(99).verifying_key()],
        ..AuditOptions::new(fx.log.verifier())
    };
    let r = run(dir.path(), &other);
    assert_eq!(r.warnings, vec![Warning::ManifestAuthoritiesDiffer]);
    check_has(&r, "unknown_key", Some(0));
    assert_eq!(r.violations.len() as u64, fx.size());

    // No manifest and no --authority: the same refusal, without a hint.
    std::fs::remove_file(dir.path().join("manifest.json")).expect("rm");
    let refused = audit(
        dir.path(),
        &AuditOptions::new(fx.log.verifier()),
        &mut Silent,
    );
    assert!(
        matches!(&refused, Err(InputError::NoAuthorities { manifest_keys }) if manifest_keys.is_empty()),
        "{refused:?}"
    );
}

#[test]
fn a_flipped_entry_byte_is_named_by_tile_signature_and_root() {
    let (fx, s, dir) = clean();
    let index = s.build_1_index;
    // The byte offset of the entry's payload inside bundle 0: skip the entries before it.
    let offset: usize = fx.entries[..index as usize]
        .iter()
        .map(|e| 2 + e.len())
        .sum::<usize>()
        + 2
        + 108
        + 5;
    flip(dir.path(), "tile/entries/000", offset);
    let r = run(dir.path(), &options(&fx));
    assert_eq!(r.verdict(), Verdict::Failed);
    check_has(&r, "tile_mismatch", Some(index));
    check_has(&r, "bad_signature", Some(index));
    check_has(&r, "root_mismatch", None);
    let text = r.to_text();
    assert!(
        text.contains("tile/0/000: 1 of 256 hashes differ"),
        "{text}"
    );
}

#[test]
fn a_flipped_tile_byte_names_the_tile_and_position() {
    let (fx, _, dir) = clean();
    // Hash 3 of the level-0 partial tile (leaves 512..542).
    flip(dir.path(), "tile/0/002.p/30", 3 * 32 + 7);
    let r = run(dir.path(), &options(&fx));
    assert_eq!(
        found(&r),
        vec![("tile_mismatch", Some(515))],
        "{}",
        r.to_text()
    );
    assert!(r.violations[0].to_string().contains("position 3"));
    // A level-1 tile: the root is recomputed from the entries, so only the tile is named.
    let (fx, _, dir) = clean();
    flip(dir.path(), "tile/1/000.p/2", 40);
    let r = run(dir.path(), &options(&fx));
    assert_eq!(found(&r), vec![("tile_mismatch", None)], "{}", r.to_text());
    assert_eq!(r.violations[0].path(), Some("tile/1/000.p/2"));
}

#[test]
fn flipped_checkpoint_text_or_signature_fails_the_checkpoint() {
    let (fx, _, dir) = clean();
    let note = std::fs::read_to_string(dir.path().join("checkpoint")).expect("read");
    // The size line.
    write(
        dir.path(),
        "checkpoint",
        note.replacen("\n542\n", "\n543\n", 1).as_bytes(),
    );
    let r = run(dir.path(), &options(&fx));
    assert_eq!(found(&r), vec![("checkpoint", None)]);
    assert!(r.to_text().contains("does not verify"), "{}", r.to_text());

    // One bit of the signature itself (after the 4-byte key ID).
    let (line_start, _) = note
        .match_indices('\u{2014}')
        .next()
        .expect("signature line");
    let b64 = note[line_start..]
        .rsplit(' ')
        .next()
        .expect("b64")
        .trim_end();
    let mut sig =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b64).expect("b64");
    sig[10] ^= 1;
    let flipped = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, sig);
    write(
        dir.path(),
        "checkpoint",
        note.replace(b64, &flipped).as_bytes(),
    );
    let r = run(dir.path(), &options(&fx));
    assert_eq!(found(&r), vec![("checkpoint", None)]);
    assert!(r.violations[0].to_string().contains("does not verify"));

    // The wrong log key.
    let impostor = lineage_ledger::note::NoteSigner::new(common::ORIGIN, key(201)).expect("name");
    let r = run(
        dir.path(),
        &AuditOptions {
            log_key: impostor.verifier(),
            ..options(&fx)
        },
    );
    assert_eq!(found(&r), vec![("checkpoint", None)]);
}

#[test]
fn a_damaged_bundle_is_named_and_the_tree_still_checked() {
    let (fx, _, dir) = clean();
    // The first length prefix: the bundle no longer decodes to 256 entries.
    flip(dir.path(), "tile/entries/001", 0);
    let r = run(dir.path(), &options(&fx));
    let codes: Vec<&str> = r.violations.iter().map(|v| v.code()).collect();
    assert!(
        matches!(codes.first(), Some(&("malformed_bundle" | "bundle_width"))),
        "{}",
        r.to_text()
    );
    assert_eq!(r.violations[0].path(), Some("tile/entries/001"));
    // Its leaves come from its tile, so the root still verifies; its entries are not
    // replayed, so later events that build on them are reported.
    assert!(!codes.contains(&"root_mismatch"), "{}", r.to_text());
    assert_eq!(r.counts.hashed, fx.size() - 256);

    // Bundle and tile both gone: the tree cannot be recomputed past it.
    std::fs::remove_file(dir.path().join("tile/0/001")).expect("rm");
    let r = run(dir.path(), &options(&fx));
    check_has(&r, "tree_incomplete", Some(256));
    assert!(!found(&r).iter().any(|(c, _)| *c == "root_mismatch"));

    // A missing partial tile of the current size.
    let (fx, _, dir) = clean();
    std::fs::remove_file(dir.path().join("tile/1/000.p/2")).expect("rm");
    let r = run(dir.path(), &options(&fx));
    assert_eq!(found(&r), vec![("missing_file", None)]);
    assert_eq!(r.violations[0].path(), Some("tile/1/000.p/2"));
}

#[test]
fn stale_partial_tiles_of_older_exports_are_ignored() {
    let (fx, _, dir) = clean();
    fx.write_prefix(dir.path(), 300);
    fx.write(dir.path());
    assert!(dir.path().join("tile/0/001.p/44").exists());
    let r = run(dir.path(), &options(&fx));
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
}

#[test]
fn manifest_disagreements_are_violations() {
    let (fx, _, dir) = clean();
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).expect("read"))
            .expect("json");
    m["tree_size"] = 7.into();
    m["origin"] = "other.example/log".into();
    write(dir.path(), "manifest.json", m.to_string().as_bytes());
    let r = run(dir.path(), &options(&fx));
    assert_eq!(
        found(&r),
        vec![("manifest_mismatch", None), ("manifest_mismatch", None)]
    );
}

/// The four planted violations, each at its index, all in one run.
#[test]
fn planted_rule_violations_are_each_reported_at_their_index() {
    let mut fx = Fixture::new();
    let s = scenario(&mut fx);
    let [a1, b, a2] = s.keys.clone();
    // 1. An event signed by the revoked key.
    let (revoked, _) = fx.event(Ev::new(&a1, "agent/a", "after-revoke", 0));
    // 2. A broken prev chain: seq 4 of "fetch" names a prev that is not seq 3.
    let bogus = EventId::of_payload(b"not the previous event");
    let (broken, _) = fx.event(Ev::new(&b, "agent/b", "fetch", 4).prev(bogus));
    // 3. An unknown parent.
    let ghost = [s.fetch[0], EventId::of_payload(b"ghost")];
    let (orphan, _) = fx.event(Ev::new(&a2, "agent/a", "orphan", 0).parents(&ghost));
    // 4. Equivocation: a second, different seq 2 of "build".
    let (equivocation, _) = fx.event(
        Ev::new(&a2, "agent/a", "build", 2)
            .prev(s.build[1])
            .kind("other.step"),
    );
    // A valid event after all of them: the replay state is unharmed.
    fx.event(Ev::new(&a2, "agent/a", "build", 4).prev(s.build_head));
    let dir = tempfile::tempdir().expect("tempdir");
    fx.write(dir.path());

    let r = run(dir.path(), &options(&fx));
    assert_eq!(
        found(&r),
        vec![
            ("revoked_key", Some(revoked)),
            ("prev_mismatch", Some(broken)),
            ("unknown_parent", Some(orphan)),
            ("equivocation", Some(equivocation)),
        ],
        "{}",
        r.to_text()
    );
    assert_eq!(r.verdict(), Verdict::Failed);
    let text = r.to_text();
    assert!(
        text.contains(&format!("was revoked at index {}", s.revoked_at)),
        "{text}"
    );
    assert!(text.contains("parents[1]) is not in the log"), "{text}");
    assert!(text.contains("4 violations"), "{text}");
    let json = r.to_json();
    assert_eq!(json["violations"][2]["code"], "unknown_parent");
    assert_eq!(json["violations"][2]["index"], orphan);
}

/// A ledger that kept admitting after governance said no: every entry it
/// should have refused is reported at its index, with the governance code,
/// and the entries the rules admit (after the resume) are not.
#[test]
fn governance_violations_are_each_reported_at_their_index() {
    let mut fx = Fixture::new();
    let s = scenario(&mut fx);
    let [_, b, a2] = s.keys.clone();
    // "build" (agent/a) derives from "fetch" (agent/b): halting fetch stops both.
    let halt = fx.statement(serde_json::json!({"action": "halt",
        "target": {"workload": "fetch"}, "reason": "audit test"}));
    let (halted_build, _) = fx.event(Ev::new(&a2, "agent/a", "build", 4).prev(s.build_head));
    let late_parents = [s.fetch[0]];
    let (halted_late, _) =
        fx.event(Ev::new(&b, "agent/b", "spawned-late", 0).parents(&late_parents));
    let conflict = fx.statement(serde_json::json!({"action": "halt",
        "target": {"workload": "fetch"}}));
    fx.statement(serde_json::json!({"action": "resume", "target": {"workload": "fetch"}}));
    // After the resume the same position is free and admitted.
    let (_, b4) = fx.event(
        Ev::new(&a2, "agent/a", "build", 4)
            .prev(s.build_head)
            .kind("workload.end"),
    );
    let (closed, _) = fx.event(Ev::new(&a2, "agent/a", "build", 5).prev(b4));
    // A key whose grant expires three entries later.
    let short = key(9);
    let not_after = fx.time_after(3);
    fx.statement(serde_json::json!({"action": "grant", "runtime": "agent/c",
        "public_key": public(&short), "not_after": not_after, "scope": {"kinds": ["tool.*"]}}));
    let (out_of_scope, _) = fx.event(Ev::new(&short, "agent/c", "c-1", 0).kind("llm.call"));
    fx.event(Ev::new(&short, "agent/c", "c-1", 0).kind("tool.call"));
    let (expired, _) = fx.event(Ev::new(&short, "agent/c", "c-2", 0).kind("tool.call"));
    let dir = tempfile::tempdir().expect("tempdir");
    fx.write(dir.path());
    let r = run(dir.path(), &options(&fx));
    assert_eq!(
        found(&r),
        vec![
            ("halted", Some(halted_build)),
            ("halted", Some(halted_late)),
            ("governance_conflict", Some(conflict)),
            ("workload_closed", Some(closed)),
            ("out_of_scope", Some(out_of_scope)),
            ("key_expired", Some(expired)),
        ],
        "{}",
        r.to_text()
    );
    let text = r.to_text();
    assert!(
        text.contains(&format!("halted by the halt at index {halt}")),
        "{text}"
    );
}

#[test]
fn more_rules_replayed() {
    let mut fx = Fixture::new();
    let s = scenario(&mut fx);
    let [_, b, a2] = s.keys.clone();
    // A grant signed by a runtime key, not an authority.
    let bad_grant = fx.governance_by(&b, "grant", "agent/c", &key(7));
    // A re-grant of a revoked key.
    let regrant = fx.grant("agent/a", &s.keys[0]);
    // An event of agent/b continuing agent/a's workload.
    let (hijack, _) = fx.event(Ev::new(&b, "agent/b", "build", 4).prev(s.build_head));
    // The same event twice.
    let (first, id) = fx.event(Ev::new(&a2, "agent/a", "twice", 0));
    let entry = fx.entries[first as usize].clone();
    let dup = fx.push_raw(&entry);
    // Not a log entry at all.
    let junk = fx.push_raw(b"junk");
    // Builds on the refused duplicate? No: on the first, admitted one.
    fx.event(Ev::new(&a2, "agent/a", "twice", 1).prev(id));
    let dir = tempfile::tempdir().expect("tempdir");
    fx.write(dir.path());
    let r = run(dir.path(), &options(&fx));
    assert_eq!(
        found(&r),
        vec![
            ("unknown_key", Some(bad_grant)),
            ("key_conflict", Some(regrant)),
            ("runtime_mismatch", Some(hijack)),
            ("duplicate_event", Some(dup)),
            ("malformed_entry", Some(junk)),
        ],
        "{}",
        r.to_text()
    );
}

#[test]
fn what_builds_on_a_refused_entry_says_so() {
    let mut fx = Fixture::new();
    let s = scenario(&mut fx);
    let [a1, _, a2] = s.keys.clone();
    let (refused, id) = fx.event(Ev::new(&a1, "agent/a", "late", 0));
    let (child, _) = fx.event(Ev::new(&a2, "agent/a", "late", 1).prev(id));
    let parents = [id];
    let (other, _) = fx.event(Ev::new(&a2, "agent/a", "other", 0).parents(&parents));
    let dir = tempfile::tempdir().expect("tempdir");
    fx.write(dir.path());
    let r = run(dir.path(), &options(&fx));
    assert_eq!(
        found(&r),
        vec![
            ("revoked_key", Some(refused)),
            ("sequence_gap", Some(child)),
            ("unknown_parent", Some(other)),
        ]
    );
    let text = r.to_text();
    assert_eq!(
        text.matches(&format!(
            "it builds on entry {refused}, which this audit refused"
        ))
        .count(),
        2,
        "{text}"
    );
}

#[test]
fn since_proves_the_export_extends_an_older_checkpoint() {
    let (fx, _, dir) = clean();
    for old in [0, 1, 255, 256, 300, 512, 541, 542] {
        let opts = AuditOptions {
            since: Some(fx.checkpoint(old).into_bytes()),
            ..options(&fx)
        };
        let r = run(dir.path(), &opts);
        assert_eq!(
            r.verdict(),
            Verdict::Verified,
            "since {old}: {}",
            r.to_text()
        );
        assert_eq!(r.since.as_ref().and_then(|s| s.extends), Some(true));
    }
    // An older checkpoint larger than the export.
    let mut longer = fx.clone();
    longer.push_raw(b"later");
    let opts = AuditOptions {
        since: Some(longer.checkpoint(543).into_bytes()),
        ..options(&fx)
    };
    assert_eq!(found(&run(dir.path(), &opts)), vec![("since_newer", None)]);
    // Not signed by the log.
    let opts = AuditOptions {
        since: Some(b"lineage.test/log\n1\nAAAA\n".to_vec()),
        ..options(&fx)
    };
    assert_eq!(found(&run(dir.path(), &opts)), vec![("checkpoint", None)]);
}

#[test]
fn since_detects_a_fork_from_the_data() {
    // Two logs under the same key: the same first 300 entries, then different ones.
    let mut a = Fixture::new();
    scenario(&mut a);
    let mut b = a.clone();
    a.entries.truncate(300);
    b.entries.truncate(300);
    a.push_raw(b"branch a");
    b.push_raw(b"branch b");
    b.push_raw(b"more of b");
    let dir = tempfile::tempdir().expect("tempdir");
    b.write(dir.path());
    let opts = AuditOptions {
        since: Some(a.checkpoint(301).into_bytes()),
        tree_only: true,
        ..options(&b)
    };
    let r = run(dir.path(), &opts);
    assert_eq!(r.verdict(), Verdict::Fork, "{}", r.to_text());
    assert_eq!(found(&r), vec![("fork", None)]);
    let (old, new) = r.fork_evidence().expect("evidence");
    assert_eq!(old, a.checkpoint(301));
    assert_eq!(new, b.checkpoint(302));
    assert!(r.to_text().contains("evidence: the older checkpoint"));
    // The shared prefix is consistent.
    let opts = AuditOptions {
        since: Some(a.checkpoint(300).into_bytes()),
        tree_only: true,
        ..options(&b)
    };
    assert_eq!(run(dir.path(), &opts).verdict(), Verdict::Verified);
    // A damaged export cannot prove a fork.
    flip(dir.path(), "tile/entries/001.p/46", 3);
    let opts = AuditOptions {
        since: Some(a.checkpoint(301).into_bytes()),
        tree_only: true,
        ..options(&b)
    };
    let r = run(dir.path(), &opts);
    assert_eq!(r.verdict(), Verdict::Failed, "{}", r.to_text());
    check_has(&r, "since_undecided", None);
}

#[test]
fn lineage_prints_and_verifies_the_ancestry() {
    let (fx, s, dir) = clean();
    let r = ancestry(s.build_head, dir.path(), &options(&fx), &mut Silent).expect("runs");
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
    // build#3..0, fetch#3..0, each once.
    assert_eq!(r.nodes.len(), 8, "{}", r.to_text());
    let text = r.to_text();
    let first = text.lines().nth(1).unwrap_or_default();
    assert!(first.starts_with("build#3 deploy by agent/a"), "{text}");
    assert!(
        text.contains("    parents[0] -> fetch#3 fetch.step by agent/b"),
        "{text}"
    );
    assert!(text.contains("(shown above)"), "{text}");
    assert!(text.contains("workload.start"), "{text}");
    assert!(text.ends_with("VERIFIED\n"), "{text}");
    let json = r.to_json();
    assert_eq!(json["nodes"].as_array().map(Vec::len), Some(8));
    assert_eq!(json["tree"][0]["link"], "event");

    // An unknown event.
    let r = ancestry(
        EventId::of_payload(b"nope"),
        dir.path(),
        &options(&fx),
        &mut Silent,
    )
    .expect("runs");
    assert_eq!(r.verdict(), Verdict::Failed);
    assert!(r.to_text().contains("MISSING: not in the log"));
}

#[test]
fn lineage_marks_broken_nodes_and_missing_ancestors() {
    let mut fx = Fixture::new();
    let s = scenario(&mut fx);
    let a2 = s.keys[2].clone();
    let ghost = [EventId::of_payload(b"ghost")];
    let (_, orphan) = fx.event(Ev::new(&a2, "agent/a", "orphan", 0).parents(&ghost));
    let (_, tip) = fx.event(Ev::new(&a2, "agent/a", "orphan", 1).prev(orphan));
    // A violation elsewhere does not fail this ancestry.
    fx.event(Ev::new(&a2, "agent/a", "unrelated", 5));
    let dir = tempfile::tempdir().expect("tempdir");
    fx.write(dir.path());

    let r = ancestry(tip, dir.path(), &options(&fx), &mut Silent).expect("runs");
    assert_eq!(r.verdict(), Verdict::Failed, "{}", r.to_text());
    let text = r.to_text();
    assert!(text.contains("FAIL: entry"), "{text}");
    assert!(
        text.contains("unknown_parent") || text.contains("is not in the log"),
        "{text}"
    );
    assert_eq!(r.missing.len(), 1, "{text}");
    assert_eq!(r.elsewhere(), 1, "{text}");

    let r = ancestry(s.build_head, dir.path(), &options(&fx), &mut Silent).expect("runs");
    assert_eq!(r.verdict(), Verdict::Verified, "{}", r.to_text());
    assert!(
        r.to_text().contains("3 violation(s) elsewhere"),
        "{}",
        r.to_text()
    );
}

/// Issue 10 item 7: an ancestry that is one chain of parents (each event
/// starts its own workload and names the one before as its parent), so every
/// ancestor is one level deeper than the last. The walk is iterative (no stack
/// overflow) and the text is linear in the ancestors, not in their depths' sum.
#[test]
fn lineage_of_a_deep_parent_chain_prints_linear_text() {
    const ANCESTORS: usize = 100_000;
    let mut fx = Fixture::new();
    let k = key(1);
    fx.grant("agent/a", &k);
    let mut tip: Option<EventId> = None;
    for i in 0..=ANCESTORS {
        let parents: Vec<EventId> = tip.into_iter().collect();
        let name = format!("w{i}");
        let (_, id) = fx.event(Ev::new(&k, "agent/a", &name, 0).parents(&parents));
        tip = Some(id);
    }
    let tip = tip.expect("events");
    let dir = tempfile::tempdir().expect("tempdir");
    fx.write(dir.path());

    let mut r = ancestry(tip, dir.path(), &options(&fx), &mut Silent).expect("runs");
    assert_eq!(r.verdict(), Verdict::Verified, "{:?}", r.audit.violations);
    assert_eq!(r.nodes.len(), ANCESTORS + 1);
    assert_eq!(r.lines.iter().map(|l| l.depth).max(), Some(ANCESTORS));
    // The first 1,001 lines first: were indentation quadratic again, this
    // fails at 2 MB instead of building the whole 20 GB.
    let all = std::mem::take(&mut r.lines);
    r.lines = all[..=1_000].to_vec();
    let prefix = r.to_text().len();
    assert!(
        prefix <= 400 * 1_001 + 2_000,
        "{prefix} bytes for 1,001 lines"
    );
    r.lines = all;
    let text = r.to_text();
    assert!(
        text.len() <= 400 * (ANCESTORS + 1) + 2_000,
        "{} bytes for {} ancestors",
        text.len(),
        ANCESTORS
    );
    assert!(
        text.contains(&format!(
            "[depth {ANCESTORS}] parents[0] -> w0#0 step by agent/a"
        )),
        "{}",
        &text[text.len().saturating_sub(2_000)..]
    );
    assert!(text.ends_with("VERIFIED\n"));
    // JSON keeps the depth as a number on each line.
    let json = r.to_json();
    assert_eq!(
        json["tree"][ANCESTORS]["depth"].as_u64(),
        Some(ANCESTORS as u64)
    );
}

#[test]
fn a_signed_size_beyond_the_files_ends_the_audit_at_the_gap() {
    let (fx, _, dir) = clean();
    let huge = lineage_ledger::checkpoint::Checkpoint {
        origin: common::ORIGIN.into(),
        size: 1 << 40,
        root: lineage_ledger::Hash::from_bytes([9; 32]),
        extensions: vec![],
    };
    let note = lineage_ledger::checkpoint::sign_checkpoint(&huge, &fx.log).expect("sign");
    write(dir.path(), "checkpoint", note.as_bytes());
    let r = run(dir.path(), &options(&fx));
    assert_eq!(
        found(&r),
        vec![("manifest_mismatch", None), ("export_truncated", Some(512))],
        "{}",
        r.to_text()
    );
    assert_eq!(r.violations[1].path(), Some("tile/entries/002"));
}

#[test]
fn a_broken_manifest_is_a_violation_not_a_key_source() {
    let (fx, _, dir) = clean();
    write(dir.path(), "manifest.json", b"{");
    let r = run(dir.path(), &options(&fx));
    assert_eq!(
        found(&r),
        vec![("manifest_invalid", None)],
        "{}",
        r.to_text()
    );
    let refused = audit(
        dir.path(),
        &AuditOptions::new(fx.log.verifier()),
        &mut Silent,
    );
    assert!(
        matches!(&refused, Err(InputError::NoAuthorities { manifest_keys }) if manifest_keys.is_empty()),
        "{refused:?}"
    );
    let tree_only = AuditOptions {
        tree_only: true,
        ..AuditOptions::new(fx.log.verifier())
    };
    assert_eq!(
        found(&run(dir.path(), &tree_only)),
        vec![("manifest_invalid", None)]
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    const FILES: [&str; 7] = [
        "checkpoint",
        "manifest.json",
        "tile/0/000",
        "tile/0/000.p/20",
        "tile/1/000.p/1",
        "tile/entries/000",
        "tile/entries/000.p/20",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Any bytes in any file of an export: a report (or a usage error), never a panic.
        #[test]
        fn audits_never_panic_on_damaged_files(
            file in 0..FILES.len(),
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            size in prop_oneof![Just(20u64), Just(256), Just(276)],
        ) {
            let mut fx = Fixture::new();
            scenario(&mut fx);
            fx.entries.truncate(size as usize);
            let dir = tempfile::tempdir().expect("tempdir");
            fx.write(dir.path());
            write(dir.path(), FILES[file], &bytes);
            if let Ok(r) = audit(dir.path(), &options(&fx), &mut Silent) {
                let _ = (r.to_text(), r.to_json());
            }
            let target = lineage_ledger::keys::EventId::of_payload(&bytes);
            if let Ok(r) = ancestry(target, dir.path(), &options(&fx), &mut Silent) {
                let _ = (r.to_text(), r.to_json());
            }
        }
    }
}
