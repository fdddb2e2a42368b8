//! The governance rules, one code at a time, and their place in the
//! contract order: size, envelope shape, key known, signature, revoked, key
//! validity, payload schema, runtime match, workload ownership, scope, clock
//! skew, equivocation, closed, seq, prev, parents, halted.
//!
//! Each test runs the ledger's own state ([`BatchState`] over [`Genesis`],
//! what the sequencer and the auditor both run) and names the expected code.

use ed25519_dalek::SigningKey;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::keys::{EventId, public_key_base64};
use lineage_ledger::rules::{Authorities, Candidate, Rejection, RuleContext, integration_ms};
use lineage_ledger::state::{BatchState, Genesis};
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2026-11-26 12:00:00 UTC);

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn at(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format")
}

/// A log under test: the state, the next index, and the clock.
struct Log {
    state: BatchState<Genesis>,
    next: u64,
    now: OffsetDateTime,
    nonce: u64,
}

impl Log {
    fn new() -> Log {
        Log {
            state: BatchState::new(Genesis, false),
            next: 0,
            now: T0,
            nonce: 0,
        }
    }

    /// Judges `c` at the current clock and applies it if admitted.
    fn submit(&mut self, c: &Candidate) -> Result<u64, Rejection> {
        let authorities = Authorities::new([key(100).verifying_key()]);
        let ctx = RuleContext::at(&authorities, integration_ms(self.now), Duration::minutes(5))
            .expect("time");
        let admission = self.state.admit(c, &ctx).expect("no store")?;
        let index = self.next;
        self.state.apply(index, c, &admission);
        self.next += 1;
        Ok(index)
    }

    fn code(&mut self, c: &Candidate) -> Result<u64, &'static str> {
        self.submit(c).map_err(|r| r.code())
    }

    fn governance(&mut self, mut v: Value) -> Candidate {
        self.nonce += 1;
        v["at"] = json!(at(self.now + Duration::microseconds(self.nonce as i64)));
        Candidate::new(SignedEnvelope::sign(
            PayloadType::Governance,
            serde_json::to_vec(&v).expect("json"),
            &key(100),
        ))
    }

    fn grant(&mut self, runtime: &str, k: &SigningKey, extra: Value) -> u64 {
        let mut v = json!({"action": "grant", "runtime": runtime,
            "public_key": public_key_base64(&k.verifying_key())});
        if let (Some(v), Value::Object(extra)) = (v.as_object_mut(), extra) {
            v.extend(extra);
        }
        let c = self.governance(v);
        self.submit(&c).expect("grant")
    }

    fn halt(&mut self, action: &str, target: Value) -> Result<u64, &'static str> {
        let c = self.governance(json!({"action": action, "target": target, "reason": "test"}));
        self.code(&c)
    }
}

/// An event payload; `edit` adjusts it before signing with `k`.
fn event(
    k: &SigningKey,
    runtime: &str,
    workload: &str,
    seq: u64,
    prev: Option<EventId>,
    edit: impl FnOnce(&mut Value),
) -> Candidate {
    let mut v = json!({"runtime": runtime, "workload": workload, "seq": seq,
        "kind": "tool.call", "at": at(T0)});
    if let Some(p) = prev {
        v["prev"] = json!(p.to_string());
    }
    edit(&mut v);
    Candidate::new(SignedEnvelope::sign(
        PayloadType::Event,
        serde_json::to_vec(&v).expect("json"),
        k,
    ))
}

fn plain(_: &mut Value) {}

#[test]
fn the_validity_window_is_half_open_at_the_integration_millisecond() {
    let mut log = Log::new();
    let k = key(1);
    log.grant(
        "rt",
        &k,
        json!({"not_before": at(T0 + Duration::seconds(10)),
            "not_after": at(T0 + Duration::seconds(20))}),
    );
    let e = |seq: u64, prev| event(&k, "rt", "w", seq, prev, plain);
    log.now = T0 + Duration::seconds(10) - Duration::milliseconds(1);
    assert_eq!(log.code(&e(0, None)), Err("key_not_yet_valid"));
    log.now = T0 + Duration::seconds(10);
    let first = e(0, None);
    assert!(log.code(&first).is_ok(), "not_before is inside");
    log.now = T0 + Duration::seconds(20) - Duration::milliseconds(1);
    let second = e(1, Some(first.event_id()));
    assert!(log.code(&second).is_ok());
    log.now = T0 + Duration::seconds(20);
    assert_eq!(
        log.code(&e(2, Some(second.event_id()))),
        Err("key_expired"),
        "not_after is outside"
    );
}

#[test]
fn validity_comes_after_revocation_and_before_the_payload() {
    let mut log = Log::new();
    let k = key(1);
    log.grant("rt", &k, json!({"not_after": at(T0)}));
    // Expired and malformed: the key's validity is judged first.
    let bad = event(&k, "rt", "w", 0, None, |v| v["seq"] = json!(-1));
    assert_eq!(log.code(&bad), Err("key_expired"));
    let c = log.governance(json!({"action": "revoke", "runtime": "rt",
        "public_key": public_key_base64(&k.verifying_key())}));
    log.code(&c).expect("revoke");
    assert_eq!(
        log.code(&event(&k, "rt", "w", 0, None, plain)),
        Err("revoked_key")
    );
}

#[test]
fn scope_names_the_field_and_follows_ownership_and_precedes_skew() {
    let mut log = Log::new();
    let (a, b) = (key(1), key(2));
    log.grant("rt-a", &a, json!({}));
    log.grant(
        "rt-b",
        &b,
        json!({"scope": {"kinds": ["tool.*"], "workloads": ["job-*"], "domains": ["eu.prod"]}}),
    );
    let in_scope = |v: &mut Value| v["domain"] = json!("eu.prod");
    let first = event(&b, "rt-b", "job-1", 0, None, in_scope);
    log.code(&first).expect("in scope");
    let refusal = |log: &mut Log, c: &Candidate| match log.submit(c) {
        Err(Rejection::OutOfScope { field, value, .. }) => (field, value),
        other => panic!("expected out_of_scope, got {other:?}"),
    };
    let next = Some(first.event_id());
    assert_eq!(
        refusal(
            &mut log,
            &event(&b, "rt-b", "job-1", 1, next, |v| {
                in_scope(v);
                v["kind"] = json!("llm.call");
            })
        ),
        ("kind", "llm.call".to_owned())
    );
    assert_eq!(
        refusal(&mut log, &event(&b, "rt-b", "other", 0, None, in_scope)),
        ("workload", "other".to_owned())
    );
    assert_eq!(
        refusal(&mut log, &event(&b, "rt-b", "job-2", 0, None, plain)),
        ("domain", String::new()),
        "an event without a domain is outside a listed domain set"
    );
    // Out of scope and skewed: scope is judged first.
    let skewed = event(&b, "rt-b", "other", 0, None, |v| {
        v["at"] = json!(at(T0 + Duration::hours(1)));
    });
    assert_eq!(log.code(&skewed), Err("out_of_scope"));
    // Another runtime's workload, out of scope too: ownership first.
    log.code(&event(&a, "rt-a", "mine", 0, None, plain))
        .expect("rt-a starts a workload");
    assert_eq!(
        log.code(&event(&b, "rt-b", "mine", 1, None, |v| {
            v["prev"] = json!(first.event_id().to_string());
        })),
        Err("runtime_mismatch")
    );
}

#[test]
fn a_closed_workload_takes_no_event_but_may_be_derived_from() {
    let mut log = Log::new();
    let k = key(1);
    log.grant("rt", &k, json!({}));
    let start = event(&k, "rt", "w", 0, None, plain);
    log.code(&start).expect("start");
    let end = event(&k, "rt", "w", 1, Some(start.event_id()), |v| {
        v["kind"] = json!("workload.end")
    });
    log.code(&end).expect("end");
    // Closed is judged before seq and prev.
    assert_eq!(
        log.code(&event(&k, "rt", "w", 2, Some(end.event_id()), plain)),
        Err("workload_closed")
    );
    assert_eq!(
        log.code(&event(&k, "rt", "w", 7, Some(start.event_id()), plain)),
        Err("workload_closed")
    );
    // Equivocation comes before closed: the end's own position is taken.
    assert_eq!(
        log.code(&event(&k, "rt", "w", 1, Some(start.event_id()), |v| {
            v["kind"] = json!("other")
        })),
        Err("equivocation")
    );
    let child = event(&k, "rt", "child", 0, None, |v| {
        v["parents"] = json!([end.event_id().to_string()])
    });
    assert!(log.code(&child).is_ok(), "deriving from a closed workload");
}

/// root (rt-a) <- child (rt-b) <- grandchild (rt-a); other is unrelated.
fn spawn_tree(log: &mut Log) -> [Candidate; 4] {
    let (a, b) = (key(1), key(2));
    log.grant("rt-a", &a, json!({}));
    log.grant("rt-b", &b, json!({}));
    let root = event(&a, "rt-a", "root", 0, None, plain);
    log.code(&root).expect("root");
    let child = event(&b, "rt-b", "child", 0, None, |v| {
        v["parents"] = json!([root.event_id().to_string()])
    });
    log.code(&child).expect("child");
    let grandchild = event(&a, "rt-a", "grandchild", 0, None, |v| {
        v["parents"] = json!([child.event_id().to_string()])
    });
    log.code(&grandchild).expect("grandchild");
    let other = event(&b, "rt-b", "other", 0, None, plain);
    log.code(&other).expect("other");
    [root, child, grandchild, other]
}

fn next(k: u8, runtime: &str, workload: &str, prev: &Candidate) -> Candidate {
    event(&key(k), runtime, workload, 1, Some(prev.event_id()), plain)
}

#[test]
fn a_halt_stops_the_workload_and_every_descendant_until_resumed() {
    let mut log = Log::new();
    let [root, child, grandchild, other] = spawn_tree(&mut log);
    let halt = log.halt("halt", json!({"workload": "root"})).expect("halt");
    for (k, rt, w, prev) in [
        (1, "rt-a", "root", &root),
        (2, "rt-b", "child", &child),
        (1, "rt-a", "grandchild", &grandchild),
    ] {
        match log.submit(&next(k, rt, w, prev)) {
            Err(Rejection::Halted {
                halt_index,
                workload,
            }) => {
                assert_eq!(halt_index, halt, "{w}");
                assert_eq!(workload, w);
            }
            other => panic!("{w}: expected halted, got {other:?}"),
        }
    }
    // A workload started after the halt from halted lineage is halted too,
    // and the refusal names the parent's workload.
    let late = event(&key(2), "rt-b", "late", 0, None, |v| {
        v["parents"] = json!([grandchild.event_id().to_string()])
    });
    assert!(matches!(
        log.submit(&late),
        Err(Rejection::Halted { ref workload, halt_index }) if workload == "grandchild" && halt_index == halt
    ));
    assert!(log.code(&next(2, "rt-b", "other", &other)).is_ok());
    assert_eq!(
        log.halt("halt", json!({"workload": "root"})),
        Err("governance_conflict")
    );
    // A descendant halted in its own right stays halted after the root resumes.
    let own = log
        .halt("halt", json!({"workload": "grandchild"}))
        .expect("halt grandchild");
    log.halt("resume", json!({"workload": "root"}))
        .expect("resume");
    assert!(log.code(&next(1, "rt-a", "root", &root)).is_ok());
    assert!(log.code(&next(2, "rt-b", "child", &child)).is_ok());
    assert!(matches!(
        log.submit(&next(1, "rt-a", "grandchild", &grandchild)),
        Err(Rejection::Halted { halt_index, .. }) if halt_index == own
    ));
    assert_eq!(
        log.halt("resume", json!({"workload": "root"})),
        Err("governance_conflict"),
        "resuming what is not halted"
    );
}

#[test]
fn a_runtime_halt_stops_its_workloads_their_descendants_and_new_ones() {
    let mut log = Log::new();
    let [root, child, _, other] = spawn_tree(&mut log);
    let halt = log.halt("halt", json!({"runtime": "rt-a"})).expect("halt");
    assert_eq!(log.code(&next(1, "rt-a", "root", &root)), Err("halted"));
    // child is rt-b's, but derives from rt-a's root.
    assert!(matches!(
        log.submit(&next(2, "rt-b", "child", &child)),
        Err(Rejection::Halted { halt_index, .. }) if halt_index == halt
    ));
    assert_eq!(
        log.code(&event(&key(1), "rt-a", "fresh", 0, None, plain)),
        Err("halted"),
        "a halted runtime starts nothing"
    );
    assert!(log.code(&next(2, "rt-b", "other", &other)).is_ok());
    log.halt("resume", json!({"runtime": "rt-a"}))
        .expect("resume");
    assert!(log.code(&next(2, "rt-b", "child", &child)).is_ok());
}

#[test]
fn halted_is_judged_last() {
    let mut log = Log::new();
    let [root, ..] = spawn_tree(&mut log);
    log.halt("halt", json!({"workload": "root"})).expect("halt");
    let unknown = EventId::of_payload(b"nowhere");
    assert_eq!(
        log.code(&event(
            &key(1),
            "rt-a",
            "root",
            1,
            Some(root.event_id()),
            |v| { v["parents"] = json!([unknown.to_string()]) }
        )),
        Err("unknown_parent")
    );
    assert_eq!(
        log.code(&event(&key(1), "rt-a", "root", 1, Some(unknown), plain)),
        Err("prev_mismatch")
    );
    assert_eq!(
        log.code(&event(
            &key(1),
            "rt-a",
            "root",
            3,
            Some(root.event_id()),
            plain
        )),
        Err("sequence_gap")
    );
}

#[test]
fn a_halt_of_a_workload_with_no_event_yet_stops_it_from_starting() {
    let mut log = Log::new();
    log.grant("rt", &key(1), json!({}));
    log.halt("halt", json!({"workload": "planned"}))
        .expect("halt");
    assert_eq!(
        log.code(&event(&key(1), "rt", "planned", 0, None, plain)),
        Err("halted")
    );
}

#[test]
fn halt_payloads_are_checked() {
    let mut log = Log::new();
    let bad = [
        json!({"action": "halt", "reason": "no target"}),
        json!({"action": "halt", "target": {"workload": "a", "runtime": "b"}}),
        json!({"action": "halt", "target": {"job": "a"}}),
        json!({"action": "halt", "target": {"workload": "bad id"}}),
        json!({"action": "halt", "target": {"workload": "a"}, "runtime": "rt"}),
        json!({"action": "revoke", "runtime": "rt",
            "public_key": public_key_base64(&key(1).verifying_key()), "not_after": at(T0)}),
        json!({"action": "grant", "runtime": "rt",
            "public_key": public_key_base64(&key(1).verifying_key()),
            "not_before": at(T0), "not_after": at(T0)}),
        json!({"action": "grant", "runtime": "rt",
            "public_key": public_key_base64(&key(1).verifying_key()),
            "scope": {"kinds": []}}),
        json!({"action": "grant", "runtime": "rt",
            "public_key": public_key_base64(&key(1).verifying_key()),
            "scope": {"kinds": ["a*b"]}}),
        json!({"action": "grant", "runtime": "rt",
            "public_key": public_key_base64(&key(1).verifying_key()),
            "scope": {"tools": ["a"]}}),
    ];
    for v in bad {
        let c = log.governance(v.clone());
        assert_eq!(log.code(&c), Err("invalid_payload"), "{v}");
    }
    let c = event(&key(1), "rt", "w", 0, None, |v| v["domain"] = json!("EU"));
    log.grant("rt", &key(1), json!({}));
    assert_eq!(log.code(&c), Err("invalid_payload"), "domain charset");
}

/// The table of `docs/governance.md`, row by row.
#[test]
fn the_worked_example_of_the_spec() {
    let mut log = Log::new();
    let (planner, coder) = (key(1), key(2));
    assert_eq!(log.grant("planner", &planner, json!({})), 0);
    assert_eq!(log.grant("coder", &coder, json!({})), 1);
    let parent = |c: &Candidate| {
        let id = c.event_id().to_string();
        move |v: &mut Value| v["parents"] = json!([id])
    };
    let run1 = event(&planner, "planner", "run-1", 0, None, plain);
    assert_eq!(log.code(&run1), Ok(2));
    let build7 = event(&coder, "coder", "build-7", 0, None, parent(&run1));
    assert_eq!(log.code(&build7), Ok(3));
    let test3 = event(&planner, "planner", "test-3", 0, None, parent(&build7));
    assert_eq!(log.code(&test3), Ok(4));
    let other = event(&coder, "coder", "other", 0, None, plain);
    assert_eq!(log.code(&other), Ok(5));
    assert_eq!(log.halt("halt", json!({"workload": "run-1"})), Ok(6));
    let halted = |log: &mut Log, c: &Candidate| match log.submit(c) {
        Err(Rejection::Halted { halt_index, .. }) => halt_index,
        other => panic!("expected halted, got {other:?}"),
    };
    assert_eq!(halted(&mut log, &next(2, "coder", "build-7", &build7)), 6);
    assert_eq!(halted(&mut log, &next(1, "planner", "test-3", &test3)), 6);
    let fix2 = event(&coder, "coder", "fix-2", 0, None, parent(&test3));
    assert_eq!(halted(&mut log, &fix2), 6);
    assert_eq!(log.code(&next(2, "coder", "other", &other)), Ok(7));
    assert_eq!(log.halt("halt", json!({"workload": "test-3"})), Ok(8));
    assert_eq!(
        log.halt("halt", json!({"workload": "run-1"})),
        Err("governance_conflict")
    );
    assert_eq!(log.halt("resume", json!({"workload": "run-1"})), Ok(9));
    assert_eq!(log.code(&next(2, "coder", "build-7", &build7)), Ok(10));
    assert_eq!(halted(&mut log, &next(1, "planner", "test-3", &test3)), 8);
}
