//! Replaying the ledger's rules over a log, in log order.
//!
//! [`Replay`] runs the ledger's own state type,
//! [`BatchState`](lineage_ledger::state::BatchState) over
//! [`Genesis`](lineage_ledger::state::Genesis): each entry is judged by
//! [`BatchState::admit`](lineage_ledger::state::BatchState::admit) with the
//! rule clock built from the entry's `integrated_at_ms`
//! ([`RuleContext::at`], exactly as the sequencer built it), and what it
//! admitted is recorded by
//! [`BatchState::apply`](lineage_ledger::state::BatchState::apply), the very
//! code the sequencer commits with. The auditor provably runs the
//! sequencer's rules and bookkeeping.
//!
//! An entry that breaks a rule is reported and **not applied**, as the ledger
//! would have refused it: the state stays the one a correct ledger would
//! have. Entries that build on a refused one are then reported too, and the
//! report says which refused entry they build on.
//!
//! Memory: a map slot per admitted entry, one ID per event in its
//! workload's chain, a map slot per refused entry. Envelopes are not kept.

use std::collections::HashMap;

use lineage_ledger::event::parse_event;
use lineage_ledger::keys::EventId;
use lineage_ledger::rules::{Authorities, Candidate, LedgerView, Rejection, RuleContext};
use lineage_ledger::state::{BatchState, EnvelopesNotKept, Genesis};
use time::Duration;

use crate::Violation;

/// Where an event ID was first seen in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Its leaf index.
    pub index: u64,
    /// Whether the rules admitted it (a refused entry is in the log but not in the state).
    pub admitted: bool,
}

/// The log's state as the rules see it, after the entries applied so far.
#[derive(Debug)]
pub struct Replay {
    authorities: Authorities,
    max_skew: Duration,
    state: BatchState<Genesis>,
    /// Entries the rules refused, by event ID (first occurrence).
    refused: HashMap<EventId, u64>,
}

pub use lineage_ledger::rules::integration_time;

impl Replay {
    /// An empty log under these authority keys and clock-skew bound.
    pub fn new(authorities: Authorities, max_skew: Duration) -> Replay {
        Replay {
            authorities,
            max_skew,
            state: BatchState::new(Genesis, false),
            refused: HashMap::new(),
        }
    }

    /// The authority keys.
    pub fn authorities(&self) -> &Authorities {
        &self.authorities
    }

    /// Where an event ID is, admitted or not.
    pub fn seen(&self, id: &EventId) -> Option<Seen> {
        if let Ok(Some(index)) = self.state.event_index(id) {
            return Some(Seen {
                index,
                admitted: true,
            });
        }
        self.refused.get(id).map(|&index| Seen {
            index,
            admitted: false,
        })
    }

    /// Runs the rules on the entry at `index` and applies it if admitted.
    ///
    /// `candidate` may carry a signature verdict computed earlier (in
    /// parallel) against the key the entry names; [`BatchState::admit`]
    /// uses it as is.
    ///
    /// # Errors
    /// The [`Violation`] of an entry the ledger would have refused.
    pub fn apply(
        &mut self,
        index: u64,
        candidate: &Candidate,
        integrated_at_ms: u64,
    ) -> Result<(), Violation> {
        // The ledger's own rule clock: the stored integration millisecond.
        let Some(ctx) = RuleContext::at(&self.authorities, integrated_at_ms, self.max_skew) else {
            self.refuse(candidate.event_id(), index);
            return Err(Violation::IntegrationTime {
                index,
                ms: integrated_at_ms,
            });
        };
        let verdict = self
            .state
            .admit(candidate, &ctx)
            .map_err(|EnvelopesNotKept| Violation::Internal {
                index,
                what: "admit asked for a stored envelope",
            })?;
        match verdict {
            Ok(admission) => {
                self.state.apply(index, candidate, &admission);
                Ok(())
            }
            Err(rejection) => {
                self.refuse(candidate.event_id(), index);
                let builds_on = self.refused_ancestor(candidate, &rejection);
                Err(Violation::Rule {
                    index,
                    event_id: candidate.event_id(),
                    rejection: Box::new(rejection),
                    builds_on,
                })
            }
        }
    }

    fn refuse(&mut self, id: EventId, index: u64) {
        if self.seen(&id).is_none() {
            self.refused.insert(id, index);
        }
    }

    /// For a chain or parent violation: the index of the refused entry that
    /// the event's `prev` or parent names, if any.
    fn refused_ancestor(&self, candidate: &Candidate, rejection: &Rejection) -> Option<u64> {
        let refused = |id: &EventId| self.seen(id).filter(|s| !s.admitted).map(|s| s.index);
        match rejection {
            Rejection::UnknownParent { parent, .. } => refused(parent),
            Rejection::PrevMismatch { got, .. } => refused(got),
            Rejection::SequenceGap { .. } => {
                let event = parse_event(&candidate.envelope().payload).ok()?;
                event.prev.as_ref().and_then(refused)
            }
            Rejection::PayloadTooLarge { .. }
            | Rejection::InvalidEnvelope(_)
            | Rejection::UnknownKey { .. }
            | Rejection::BadSignature { .. }
            | Rejection::RevokedKey { .. }
            | Rejection::KeyNotYetValid { .. }
            | Rejection::KeyExpired { .. }
            | Rejection::OutOfScope { .. }
            | Rejection::WorkloadClosed { .. }
            | Rejection::Halted { .. }
            | Rejection::GovernanceConflict { .. }
            | Rejection::InvalidPayload(_)
            | Rejection::RuntimeMismatch { .. }
            | Rejection::ClockSkew { .. }
            | Rejection::KeyConflict { .. }
            | Rejection::DuplicateEvent { .. }
            | Rejection::Equivocation { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
    use lineage_ledger::keys::public_key_base64;
    use serde_json::json;

    const T0: u64 = 1_790_000_000_000;
    const AT: &str = "2026-09-21T14:13:20Z";

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn candidate(t: PayloadType, v: serde_json::Value, k: &SigningKey) -> Candidate {
        Candidate::new(SignedEnvelope::sign(
            t,
            serde_json::to_vec(&v).unwrap_or_default(),
            k,
        ))
    }

    fn grant(action: &str, runtime: &str, k: &SigningKey) -> Candidate {
        candidate(
            PayloadType::Governance,
            json!({"action": action, "runtime": runtime,
                "public_key": public_key_base64(&k.verifying_key()), "at": AT}),
            &key(100),
        )
    }

    fn event(k: &SigningKey, w: &str, seq: u64, prev: Option<EventId>) -> Candidate {
        let mut v = json!({"runtime": "r", "workload": w, "seq": seq, "kind": "k", "at": AT});
        if let Some(p) = prev {
            v["prev"] = json!(p.to_string());
        }
        candidate(PayloadType::Event, v, k)
    }

    fn code(r: Result<(), Violation>) -> Option<(&'static str, Option<u64>)> {
        r.err().map(|v| {
            (
                v.code(),
                match v {
                    Violation::Rule { builds_on, .. } => builds_on,
                    _ => None,
                },
            )
        })
    }

    #[test]
    fn applies_what_the_rules_admit_and_names_what_they_refuse() {
        assert_eq!(integration_time(T0).map(|t| t.year()), Some(2026));
        let mut r = Replay::new(
            Authorities::new([key(100).verifying_key()]),
            Duration::minutes(5),
        );
        let k = key(1);
        assert_eq!(code(r.apply(0, &grant("grant", "r", &k), T0)), None);
        let e0 = event(&k, "w", 0, None);
        assert_eq!(code(r.apply(1, &e0, T0)), None);
        // A broken chain is refused and not applied...
        let bad = event(&k, "w", 1, Some(EventId::of_payload(b"x")));
        assert_eq!(code(r.apply(2, &bad, T0)), Some(("prev_mismatch", None)));
        // ...so what builds on it is refused too, naming it.
        let after = event(&k, "w", 2, Some(bad.event_id()));
        assert_eq!(
            code(r.apply(3, &after, T0)),
            Some(("sequence_gap", Some(2)))
        );
        assert_eq!(
            r.seen(&bad.event_id()),
            Some(Seen {
                index: 2,
                admitted: false
            })
        );
        let e1 = event(&k, "w", 1, Some(e0.event_id()));
        assert_eq!(code(r.apply(4, &e1, T0)), None);
        assert_eq!(code(r.apply(5, &e1, T0)), Some(("duplicate_event", None)));
        // Revocation applies from its index on.
        assert_eq!(code(r.apply(6, &grant("revoke", "r", &k), T0)), None);
        let e2 = event(&k, "w", 2, Some(e1.event_id()));
        assert_eq!(code(r.apply(7, &e2, T0)), Some(("revoked_key", None)));
        // The clock is the integration time.
        let late = event(&key(2), "v", 0, None);
        assert_eq!(code(r.apply(8, &grant("grant", "r", &key(2)), T0)), None);
        assert_eq!(
            code(r.apply(9, &late, T0 + 301_000)),
            Some(("clock_skew", None))
        );
        assert_eq!(code(r.apply(10, &late, T0 + 300_000)), None);
        assert_eq!(
            code(r.apply(11, &late, u64::MAX)),
            Some(("integration_time", None))
        );
    }
}
