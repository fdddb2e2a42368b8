//! The ledger and its auditor agree on governance, entry by entry.
//!
//! Property: for random runs mixing events (chains, parents across
//! workloads, trust domains, `workload.end`), grants with validity windows
//! and scopes, revocations, halts and resumes of workloads and runtimes,
//! clock steps and restarts, submitted to the real ledger in batches, the
//! auditor's replay (`lineage-verify`'s `Replay`, fed the same envelopes in
//! the same order at the same integration millisecond) reaches the very
//! same verdict on every envelope: admitted, or refused with an equal
//! `Rejection` (code, halt index, field and all). Then the full log the
//! ledger wrote replays clean. A restart reloads the ledger's governance
//! state from the store, so the store-backed view is checked against the
//! in-memory replay.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::entry::LogEntry;
use lineage_ledger::keys::{EventId, public_key_base64};
use lineage_ledger::note::NoteSigner;
use lineage_ledger::rules::{Authorities, Candidate, integration_ms};
use lineage_ledger::store::{MemStore, Store};
use lineage_log::{Clock, LogConfig, LogService, Outcome};
use lineage_verify::Violation;
use lineage_verify::replay::Replay;
use proptest::prelude::*;
use serde_json::{Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

const MAX_SKEW: Duration = Duration::minutes(5);
const RUNTIMES: usize = 2;
const WORKLOADS: usize = 6;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format")
}

/// One step of a run, as drawn; the driver turns it into an envelope.
#[derive(Clone, Debug)]
enum Op {
    /// An event of workload `w`, signed by key `k` of the keys granted so
    /// far; `parent` picks an earlier admitted event; `kind` 2 ends the workload.
    Event {
        w: usize,
        k: usize,
        parent: Option<usize>,
        kind: usize,
        domain: Option<usize>,
        skip_seq: bool,
    },
    /// A grant of a new key to runtime `r`, with an optional window (seconds
    /// from now) and scope (0: none, 1: kinds, 2: workloads, 3: domains).
    Grant {
        r: usize,
        not_before: Option<i64>,
        not_after: Option<i64>,
        scope: usize,
    },
    /// A revocation of key `k`.
    Revoke { k: usize },
    /// A halt (`resume` false) or resume of workload `t` or, past
    /// [`WORKLOADS`], of runtime `t - WORKLOADS`.
    Halt { t: usize, resume: bool },
    /// The clock moves on by this many seconds.
    Tick(i64),
    /// The ledger restarts on its store.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..WORKLOADS, 0..6usize, proptest::option::of(0..64usize), 0..3usize,
              proptest::option::of(0..2usize), proptest::bool::weighted(0.05))
            .prop_map(|(w, k, parent, kind, domain, skip_seq)| Op::Event {
                w, k, parent, kind, domain, skip_seq
            }),
        2 => (0..RUNTIMES, proptest::option::of(-60i64..60), proptest::option::of(-30i64..120),
              0..4usize)
            .prop_map(|(r, not_before, not_after, scope)| Op::Grant {
                r, not_before, not_after, scope
            }),
        1 => (0..6usize).prop_map(|k| Op::Revoke { k }),
        2 => (0..WORKLOADS + RUNTIMES, any::<bool>())
            .prop_map(|(t, resume)| Op::Halt { t, resume }),
        1 => (0i64..90).prop_map(Op::Tick),
        1 => Just(Op::Restart),
    ]
}

/// What the driver knows of the log, from the ledger's answers.
struct Driver {
    now: OffsetDateTime,
    /// Granted keys: (seed, runtime).
    keys: Vec<(u8, usize)>,
    /// Per workload: (next seq, prev ID).
    chains: Vec<(u64, Option<EventId>)>,
    /// Admitted event IDs, oldest first.
    events: Vec<EventId>,
    nonce: u64,
}

impl Driver {
    fn envelope(&mut self, op: &Op) -> Option<(Candidate, Option<(usize, u64)>)> {
        let authority = key(100);
        self.nonce += 1;
        // Distinct statements even when their fields repeat: an identical
        // envelope is answered with its original receipt, not judged again.
        let at = rfc3339(self.now + Duration::microseconds(i64::try_from(self.nonce).ok()?));
        let governance = |v: Value| {
            Candidate::new(SignedEnvelope::sign(
                PayloadType::Governance,
                serde_json::to_vec(&v).expect("json"),
                &authority,
            ))
        };
        Some(match op {
            Op::Event {
                w,
                k,
                parent,
                kind,
                domain,
                skip_seq,
            } => {
                let (seed, runtime) = *self.keys.get(k % self.keys.len().max(1))?;
                let (seq, prev) = self.chains[*w];
                let seq = seq + u64::from(*skip_seq);
                let kind = ["tool.call", "llm.call", "workload.end"][*kind];
                let mut v = json!({
                    "runtime": format!("rt{runtime}"), "workload": format!("w{w}"),
                    "seq": seq, "kind": kind,
                    "at": at, "attrs": {"nonce": self.nonce},
                });
                if let Some(p) = prev.filter(|_| seq > 0) {
                    v["prev"] = json!(p.to_string());
                }
                if let Some(p) = parent.and_then(|p| self.events.get(p % self.events.len().max(1)))
                {
                    v["parents"] = json!([p.to_string()]);
                }
                if let Some(d) = domain {
                    v["domain"] = json!(format!("d{d}"));
                }
                let c = Candidate::new(SignedEnvelope::sign(
                    PayloadType::Event,
                    serde_json::to_vec(&v).expect("json"),
                    &key(seed),
                ));
                (c, Some((*w, seq)))
            }
            Op::Grant {
                r,
                not_before,
                not_after,
                scope,
            } => {
                let seed = u8::try_from(self.keys.len() + 1).ok()?;
                self.keys.push((seed, *r));
                let mut v = json!({"action": "grant", "runtime": format!("rt{r}"),
                    "public_key": public_key_base64(&key(seed).verifying_key()), "at": at});
                if let Some(s) = not_before {
                    v["not_before"] = json!(rfc3339(self.now + Duration::seconds(*s)));
                }
                if let Some(s) = not_after {
                    v["not_after"] = json!(rfc3339(self.now + Duration::seconds(*s)));
                }
                match scope {
                    1 => v["scope"] = json!({"kinds": ["tool.*", "workload.end"]}),
                    2 => v["scope"] = json!({"workloads": ["w1*", "w2", "w3"]}),
                    3 => v["scope"] = json!({"domains": ["d0"]}),
                    _ => {}
                }
                (governance(v), None)
            }
            Op::Revoke { k } => {
                let (seed, runtime) = *self.keys.get(k % self.keys.len().max(1))?;
                (
                    governance(
                        json!({"action": "revoke", "runtime": format!("rt{runtime}"),
                        "public_key": public_key_base64(&key(seed).verifying_key()), "at": at}),
                    ),
                    None,
                )
            }
            Op::Halt { t, resume } => {
                let target = if *t < WORKLOADS {
                    json!({"workload": format!("w{t}")})
                } else {
                    json!({"runtime": format!("rt{}", t - WORKLOADS)})
                };
                let action = if *resume { "resume" } else { "halt" };
                (
                    governance(json!({"action": action, "target": target,
                        "reason": "property test", "at": at})),
                    None,
                )
            }
            Op::Tick(_) | Op::Restart => return None,
        })
    }
}

fn start(store: &Arc<MemStore>, clock: &Clock) -> LogService {
    LogService::start(
        store.clone(),
        NoteSigner::new("governance.test/log", key(101)).expect("signer"),
        Authorities::new([key(100).verifying_key()]),
        LogConfig {
            origin: "governance.test/log".into(),
            max_skew: MAX_SKEW,
            ..LogConfig::default()
        },
        clock.clone(),
    )
    .expect("start")
}

/// Runs the ops in batches of `batch` and checks every verdict; returns
/// the number admitted and the codes of the refusals, in order.
fn run(ops: &[Op], batch: usize) -> (usize, Vec<&'static str>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let t0 = OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("time");
        let clock = Clock::fixed(t0);
        let store = Arc::new(MemStore::new());
        let mut log = start(&store, &clock);
        let mut replay = Replay::new(Authorities::new([key(100).verifying_key()]), MAX_SKEW);
        let mut driver = Driver {
            now: t0,
            keys: Vec::new(),
            chains: vec![(0, None); WORKLOADS],
            events: Vec::new(),
            nonce: 0,
        };
        let (mut admitted, mut refused) = (0, Vec::new());
        let mut pending: Vec<(Candidate, Option<(usize, u64)>)> = Vec::new();
        let mut i = 0;
        while i <= ops.len() {
            let op = ops.get(i);
            i += 1;
            let flush = match op {
                None | Some(Op::Tick(_) | Op::Restart) => true,
                Some(op) => {
                    pending.extend(driver.envelope(op));
                    pending.len() >= batch
                }
            };
            if flush && !pending.is_empty() {
                let items: Vec<Candidate> = pending.iter().map(|(c, _)| c.clone()).collect();
                let reply = log.submit(items).await.expect("submit");
                let ms = integration_ms(driver.now);
                for ((c, chain), outcome) in pending.drain(..).zip(reply.outcomes) {
                    let verdict = replay.apply(
                        match &outcome {
                            Outcome::Appended { index, .. } => *index,
                            _ => u64::MAX,
                        },
                        &c,
                        ms,
                    );
                    match (&outcome, verdict) {
                        (Outcome::Appended { .. }, Ok(())) => {
                            admitted += 1;
                            if let Some((w, seq)) = chain {
                                driver.chains[w] = (seq + 1, Some(c.event_id()));
                                driver.events.push(c.event_id());
                            }
                        }
                        (Outcome::Rejected(r), Err(Violation::Rule { rejection, .. }))
                            if *r == *rejection =>
                        {
                            refused.push(r.code());
                        }
                        (outcome, verdict) => panic!(
                            "ledger and replay disagree on {}: ledger {outcome:?}, replay \
                             {verdict:?}\nops: {ops:?}",
                            String::from_utf8_lossy(&c.envelope().payload)
                        ),
                    }
                }
            }
            match op {
                Some(Op::Tick(s)) => {
                    driver.now += Duration::seconds(*s);
                    clock.set(driver.now);
                }
                Some(Op::Restart) => {
                    log.shutdown().await;
                    log = start(&store, &clock);
                }
                _ => {}
            }
        }
        log.shutdown().await;
        // The whole log the ledger wrote replays clean.
        let mut audit = Replay::new(Authorities::new([key(100).verifying_key()]), MAX_SKEW);
        let size = store.head().expect("head").size;
        assert_eq!(size, admitted as u64);
        for index in 0..size {
            let bytes = store.entry(index).expect("read").expect("entry");
            let entry = LogEntry::decode(&bytes).expect("decode");
            if let Err(v) = audit.apply(
                index,
                &Candidate::new(entry.to_envelope()),
                entry.integrated_at_ms,
            ) {
                panic!("entry {index} does not replay: {v:?}");
            }
        }
        (admitted, refused)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn the_audit_reaches_the_ledgers_verdict_on_every_governance_entry(
        ops in proptest::collection::vec(op(), 1..80),
        batch in 1usize..5,
    ) {
        run(&ops, batch);
    }
}

/// A fixed run that exercises every governance code at least once, so the
/// property above is known to reach them.
#[test]
fn a_fixed_run_reaches_every_governance_verdict() {
    let ev = |w, k, parent, kind| Op::Event {
        w,
        k,
        parent,
        kind,
        domain: None,
        skip_seq: false,
    };
    let ops = vec![
        Op::Grant {
            r: 0,
            not_before: None,
            not_after: Some(60),
            scope: 0,
        },
        Op::Grant {
            r: 1,
            not_before: None,
            not_after: None,
            scope: 1,
        },
        ev(0, 0, None, 0),    // w0 by rt0
        ev(1, 1, Some(0), 0), // w1 by rt1 derives from w0
        ev(2, 0, Some(1), 0), // w2 by rt0 derives from w1
        Op::Halt {
            t: 0,
            resume: false,
        },
        ev(2, 0, None, 0),    // halted through w1 <- w0
        ev(3, 0, Some(0), 0), // new workload naming a halted parent
        Op::Halt {
            t: 0,
            resume: false,
        }, // governance_conflict
        Op::Restart,
        Op::Halt { t: 0, resume: true },
        ev(2, 0, None, 0), // continues
        ev(1, 1, None, 1), // llm.call: out of scope for rt1's key
        ev(1, 1, None, 2), // workload.end closes w1
        Op::Tick(0),       // flush: the driver learns w1's new head
        ev(1, 1, None, 0), // workload_closed
        Op::Halt {
            t: WORKLOADS + 1,
            resume: false,
        },
        ev(4, 1, None, 0), // rt1's new workload: halted
        Op::Tick(61),
        ev(0, 0, None, 0), // rt0's key expired
    ];
    let (admitted, refused) = run(&ops, 3);
    assert_eq!(
        refused,
        [
            "halted",
            "halted",
            "governance_conflict",
            "out_of_scope",
            "workload_closed",
            "halted",
            "key_expired"
        ]
    );
    assert_eq!(admitted, 10);
}
