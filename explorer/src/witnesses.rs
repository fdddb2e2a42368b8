//! What the pages show of witnessing (when `serve --witness-policy` is on):
//! a witnessed checkpoint's cosignatures, checked by the ledger's own
//! [`Policy::evaluate`] (the function the verifier and the log's rounds
//! run), and the policy's witness keys and groups for `static/verify.js`,
//! which checks every cosignature line again in the browser.

use lineage_ledger::policy::{Member, Policy};
use lineage_ledger::store::StoredCheckpoint;
use serde::Serialize;
use time::OffsetDateTime;

use crate::view::When;

/// One valid cosignature, as a page shows it.
pub(crate) struct Cosig {
    /// The policy's name for the witness.
    pub witness: String,
    /// The key ID, 8 hex digits.
    pub key_id: String,
    /// The cosignature's timestamp.
    pub when: When,
}

/// A checkpoint note read against the witness policy.
pub(crate) struct Witnessed {
    /// The valid cosignatures by the policy's witnesses, in policy order.
    pub cosigs: Vec<Cosig>,
    /// Witnesses of the policy with no cosignature on the note.
    pub missing: Vec<String>,
    /// `None` when the quorum is met, else why not (the unmet groups, or the
    /// line that fails).
    pub unmet: Option<String>,
}

/// Reads `note` against `policy`: which witnesses cosigned it, when, and
/// whether the quorum is met. A note that fails the policy outright (a bad
/// cosignature line) is shown as unmet, with the reason.
pub(crate) fn read(policy: &Policy, note: &str, now: OffsetDateTime) -> Witnessed {
    let names: Vec<String> = policy
        .witnesses()
        .iter()
        .map(|w| w.name().to_string())
        .collect();
    match policy.evaluate(note.as_bytes()) {
        Ok(e) => {
            let cosigs: Vec<Cosig> = e
                .cosignatures()
                .iter()
                .map(|c| Cosig {
                    witness: c.name.to_string(),
                    key_id: policy
                        .witnesses()
                        .get(c.witness)
                        .map(|w| format!("{:08x}", w.verifier().key_id()))
                        .unwrap_or_default(),
                    when: When::from_ms(c.timestamp.saturating_mul(1000), now),
                })
                .collect();
            let missing = names
                .into_iter()
                .filter(|n| !cosigs.iter().any(|c| &c.witness == n))
                .collect();
            Witnessed {
                cosigs,
                missing,
                unmet: e.quorum().err().map(ToString::to_string),
            }
        }
        Err(err) => Witnessed {
            cosigs: Vec::new(),
            missing: names,
            unmet: Some(err.to_string()),
        },
    }
}

/// The note to show for `size`: the witnessed one (and `true`) when
/// witnessing is on and that size was witnessed, else the log's own.
pub(crate) fn note_at(
    core: &lineage_log::Core,
    witnessing: bool,
    size: u64,
) -> Result<Option<(StoredCheckpoint, bool)>, crate::PageError> {
    if witnessing && let Some(w) = core.store.witnessed(size)? {
        return Ok(Some((w, true)));
    }
    Ok(core.store.checkpoint(size)?.map(|c| (c, false)))
}

/// A witness's key, for `verify.js`.
#[derive(Debug, Serialize)]
pub(crate) struct WitnessKey {
    /// The policy's name for it.
    pub name: String,
    /// Its vkey (`name+id+base64(0x04 ‖ key)`).
    pub vkey: String,
}

/// A group, for `verify.js`: members are `["witness", name]` or
/// `["group", name]`.
#[derive(Debug, Serialize)]
pub(crate) struct GroupData {
    pub name: String,
    pub required: usize,
    pub members: Vec<(&'static str, String)>,
}

/// The policy as `verify.js` reads it.
#[derive(Debug, Serialize)]
pub(crate) struct PolicyData {
    pub witnesses: Vec<WitnessKey>,
    pub groups: Vec<GroupData>,
    /// `["witness", name]`, `["group", name]`, or `None` for `quorum none`.
    pub quorum: Option<(&'static str, String)>,
}

fn member(policy: &Policy, m: Member) -> (&'static str, String) {
    let kind = match m {
        Member::Witness(_) => "witness",
        Member::Group(_) => "group",
    };
    (
        kind,
        policy
            .member_name(m)
            .map(ToString::to_string)
            .unwrap_or_default(),
    )
}

/// The policy's witness keys and groups.
pub(crate) fn policy_data(policy: &Policy) -> PolicyData {
    PolicyData {
        witnesses: policy
            .witnesses()
            .iter()
            .map(|w| WitnessKey {
                name: w.name().to_string(),
                vkey: w.verifier().vkey(),
            })
            .collect(),
        groups: policy
            .groups()
            .iter()
            .map(|g| GroupData {
                name: g.name().to_string(),
                required: g.required(),
                members: g.members().iter().map(|m| member(policy, *m)).collect(),
            })
            .collect(),
        quorum: policy.quorum().map(|m| member(policy, m)),
    }
}
