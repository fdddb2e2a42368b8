//! The ledger and its auditor judge `clock_skew` with the same clock, bit for
//! bit: the sequencer's rule clock is the integration millisecond each entry
//! stores, and `lineage-verify` replays each entry with exactly that value.
//!
//! Property: with the ledger's clock and the events' `at` drawn at
//! sub-millisecond offsets around both skew bounds, every entry the ledger
//! admitted is admitted again by the verifier's replay, and every event it
//! refused for `clock_skew` is refused by the replay at the same clock.

use std::sync::Arc;

use ed25519_dalek::SigningKey;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::entry::LogEntry;
use lineage_ledger::keys::public_key_base64;
use lineage_ledger::note::NoteSigner;
use lineage_ledger::rules::{Authorities, Candidate, Rejection, integration_ms};
use lineage_ledger::store::{MemStore, Store};
use lineage_log::{Clock, LogConfig, LogService, Outcome};
use lineage_verify::Violation;
use lineage_verify::replay::Replay;
use proptest::prelude::*;
use serde_json::json;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

const MAX_SKEW: Duration = Duration::minutes(5);

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).expect("format")
}

fn candidate(t: PayloadType, v: &serde_json::Value, k: &SigningKey) -> Candidate {
    Candidate::new(SignedEnvelope::sign(
        t,
        serde_json::to_vec(v).expect("json"),
        k,
    ))
}

/// Runs one case: a ledger whose clock is `now`, a grant, then one batch of
/// new workloads whose `at` lie `offsets_ns` away from the skew bounds of
/// the integration millisecond. Returns how many events were admitted.
fn check(now: OffsetDateTime, offsets_ns: &[(bool, i64)]) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = Arc::new(MemStore::new());
        let authority = key(100);
        let authorities = || Authorities::new([authority.verifying_key()]);
        let log = LogService::start(
            store.clone(),
            NoteSigner::new("skew.test/log", key(101)).expect("signer"),
            authorities(),
            LogConfig {
                origin: "skew.test/log".into(),
                max_skew: MAX_SKEW,
                ..LogConfig::default()
            },
            Clock::fixed(now),
        )
        .expect("start");
        let runtime_key = key(1);
        let grant = candidate(
            PayloadType::Governance,
            &json!({"action": "grant", "runtime": "agent/a",
                "public_key": public_key_base64(&runtime_key.verifying_key()),
                "at": rfc3339(now)}),
            &authority,
        );
        let reply = log.submit(vec![grant.clone()]).await.expect("submit");
        assert!(matches!(reply.outcomes[0], Outcome::Appended { .. }));
        // The whole millisecond the ledger integrates at, as a time.
        let ms_time =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(integration_ms(now)) * 1_000_000)
                .expect("time");
        let events: Vec<Candidate> = offsets_ns
            .iter()
            .enumerate()
            .map(|(i, (ahead, off))| {
                let bound = if *ahead { MAX_SKEW } else { -MAX_SKEW };
                let at = ms_time + bound + Duration::nanoseconds(*off);
                candidate(
                    PayloadType::Event,
                    &json!({"runtime": "agent/a", "workload": format!("w{i}"), "seq": 0,
                        "kind": "workload.start", "at": rfc3339(at)}),
                    &runtime_key,
                )
            })
            .collect();
        let reply = log.submit(events.clone()).await.expect("submit");
        log.shutdown().await;

        // The auditor's replay of the log the ledger wrote.
        let mut replay = Replay::new(authorities(), MAX_SKEW);
        let size = store.head().expect("head").size;
        for index in 0..size {
            let bytes = store.entry(index).expect("read").expect("entry");
            let entry = LogEntry::decode(&bytes).expect("decode");
            let c = Candidate::new(entry.to_envelope());
            if let Err(v) = replay.apply(index, &c, entry.integrated_at_ms) {
                panic!(
                    "the ledger admitted entry {index} at clock {now} (integrated at {} ms) \
                     but the audit refuses it: {v:?}",
                    entry.integrated_at_ms
                );
            }
        }
        // What the ledger refused for skew, the replay refuses at the same clock.
        let mut probe = Replay::new(authorities(), MAX_SKEW);
        probe
            .apply(0, &grant, integration_ms(now))
            .expect("grant replays");
        let mut admitted = 0;
        for (c, outcome) in events.iter().zip(&reply.outcomes) {
            match outcome {
                Outcome::Appended { .. } => admitted += 1,
                Outcome::Rejected(Rejection::ClockSkew { .. }) => {
                    let verdict = probe.apply(1, c, integration_ms(now));
                    assert!(
                        matches!(&verdict, Err(Violation::Rule { rejection, .. })
                            if matches!(**rejection, Rejection::ClockSkew { .. })),
                        "the ledger refused {} for skew, the replay says {verdict:?}",
                        c.event_id()
                    );
                }
                other => panic!("unexpected outcome {other:?}"),
            }
        }
        admitted
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn the_audit_replays_every_skew_verdict_of_the_ledger(
        second in 1_790_000_000i64..1_800_000_000,
        ms in 0i64..1000,
        sub_ms_ns in 0i64..1_000_000,
        offsets in proptest::collection::vec((any::<bool>(), -2_000_000i64..2_000_000), 1..24),
    ) {
        let now = OffsetDateTime::from_unix_timestamp(second).expect("time")
            + Duration::milliseconds(ms)
            + Duration::nanoseconds(sub_ms_ns);
        check(now, &offsets);
    }
}

/// The case the review found: a clock just past a whole millisecond and an
/// `at` 1 us past the bound of that millisecond. A nanosecond rule clock
/// admitted it; the audit (at the stored millisecond) refused it.
#[test]
fn an_event_just_past_the_bound_of_the_integration_millisecond_is_refused() {
    let now = OffsetDateTime::from_unix_timestamp(1_795_000_000).expect("time")
        + Duration::nanoseconds(600_000);
    assert_eq!(check(now, &[(true, 1_000)]), 0);
    assert_eq!(
        check(now, &[(true, 0), (false, 0)]),
        2,
        "the bounds are inclusive"
    );
    assert_eq!(check(now, &[(false, -1)]), 0);
}
