//! The Proof Viewer: `/proofs/inclusion?index=I&tree_size=N` and
//! `/proofs/consistency?first=M&second=N`.
//!
//! The page shows the proof the ledger serves, drawn (the audit path as a
//! tree) and as steps, next to the checkpoint the log signed at that size.
//! The steps shown are the ledger's own RFC 9162 verification steps
//! (`tree::inclusion_steps`, `tree::consistency_steps`): this module holds no
//! Merkle math, it only draws. "Verify in this browser" (`static/verify.js`)
//! recomputes every step with WebCrypto from the raw bytes and compares, then
//! checks the checkpoint's Ed25519 signature. The page says what that does
//! and does not establish.

use std::collections::HashMap;
use std::fmt::Write as _;

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lineage_ledger::hash::Hash;
use lineage_ledger::leaf_hash;
use lineage_ledger::tree::{self, Side};
use serde::Serialize;

use crate::page::PageError;
use crate::reader::{self, Body};
use crate::view::{Digest, Layout, When, count, escape, short};
use crate::witnesses::{PolicyData, Witnessed, note_at, policy_data};
use crate::{Explorer, blocking};

/// One step of an inclusion proof (RFC 9162 §2.1.3.2, step 4), as drawn and as
/// `verify.js` compares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InclusionStep {
    /// The proof element is the left sibling (hash is `H(p || r)`).
    pub left: bool,
    /// The proof element, base64.
    pub sibling: String,
    /// The node after this step, base64.
    pub result: String,
}

/// The steps from `leaf` up the audit path: the ledger's own verification
/// steps ([`tree::inclusion_steps`]), in base64. `None` when the proof's
/// length does not fit `(index, size)`.
pub fn inclusion_steps(
    index: u64,
    size: u64,
    leaf: Hash,
    proof: &[Hash],
) -> Option<Vec<InclusionStep>> {
    let steps = tree::inclusion_steps(&leaf, index, size, proof).ok()?;
    Some(
        steps
            .map(|s| InclusionStep {
                left: s.side == Side::Left,
                sibling: s.sibling.to_base64(),
                result: s.r.to_base64(),
            })
            .collect(),
    )
}

/// One step of a consistency proof (RFC 9162 §2.1.4.2, step 6), as drawn and
/// as `verify.js` compares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConsistencyStep {
    /// The proof element, base64.
    pub element: String,
    /// It extends both roots from the left (else only the second, from the right).
    pub both: bool,
    /// First-tree root so far, base64.
    pub fr: String,
    /// Second-tree root so far, base64.
    pub sr: String,
}

/// The seed (`first`'s root when `first` is a power of two, else the first
/// proof element), whether it came from the proof, and the steps: the
/// ledger's own ([`tree::consistency_steps`]), in base64. `None` when the
/// sizes are out of order or the length does not fit.
pub fn consistency_steps(
    first: u64,
    second: u64,
    first_root: Hash,
    proof: &[Hash],
) -> Option<(Hash, bool, Vec<ConsistencyStep>)> {
    let steps = tree::consistency_steps(first, second, &first_root, proof).ok()?;
    let (seed, from_proof) = (steps.seed(), steps.seed_from_proof());
    let steps = steps
        .map(|s| ConsistencyStep {
            element: s.element.to_base64(),
            both: s.side == Side::Left,
            fr: s.fr.to_base64(),
            sr: s.sr.to_base64(),
        })
        .collect();
    Some((seed, from_proof, steps))
}

/// The audit path as a tree: the recomputed nodes up the middle, each
/// proof element beside the node it is hashed with, the root on top.
pub fn inclusion_svg(index: u64, entry_len: usize, leaf: &str, steps: &[InclusionStep]) -> String {
    const BW: f64 = 196.0;
    const BH: f64 = 48.0;
    const ROW: f64 = 78.0;
    const MID: f64 = 232.0;
    let n = steps.len();
    let width = MID * 2.0 + BW - 16.0;
    let height = (n as f64 + 2.0) * ROW + 12.0;
    // Row r (0 = leaf) from the bottom; the entry box sits below the leaf.
    let y = |row: usize| 8.0 + (n - row) as f64 * ROW;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg class=\"merkle\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width:.0} {height:.0}\" \
         style=\"width:100%;height:auto;min-width:{:.0}px;max-width:{width:.0}px\" role=\"img\" aria-label=\"Merkle audit path\">",
        width * 0.7
    );
    let bx = |x: f64, y: f64, id: &str, class: &str, label: &str, hash: &str| {
        format!(
            "<g id=\"{id}\" class=\"mnode {class}\" data-hash=\"{h}\">\
             <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{BW}\" height=\"{BH}\" rx=\"7\"/>\
             <text class=\"mlabel\" x=\"{tx:.1}\" y=\"{y1:.1}\">{label}</text>\
             <text class=\"mhash\" x=\"{tx:.1}\" y=\"{y2:.1}\">{hs}</text>\
             <text class=\"mmark\" x=\"{mx:.1}\" y=\"{y1:.1}\"></text>\
             <title>{h}</title></g>",
            h = escape(hash),
            tx = x + 12.0,
            mx = x + BW - 22.0,
            y1 = y + 19.0,
            y2 = y + 37.0,
            label = escape(label),
            hs = escape(&short(hash)),
        )
    };
    let cx = MID + BW / 2.0;
    // Edges.
    for (k, st) in steps.iter().enumerate() {
        let child_top = y(k);
        let parent_bottom = y(k + 1) + BH;
        let sx = if st.left { 8.0 } else { MID * 2.0 - 24.0 } + BW / 2.0;
        let _ = write!(
            s,
            "<path class=\"medge\" d=\"M{cx:.1},{child_top:.1} L{cx:.1},{parent_bottom:.1}\"/>\
             <path class=\"medge sib\" d=\"M{sx:.1},{child_top:.1} L{cx:.1},{parent_bottom:.1}\"/>"
        );
    }
    let entry_y = y(0) + ROW;
    let _ = write!(
        s,
        "<path class=\"medge\" d=\"M{cx:.1},{:.1} L{cx:.1},{:.1}\"/>",
        entry_y,
        y(0) + BH
    );
    // The entry, the leaf, the path.
    let _ = write!(
        s,
        "<g id=\"entry-box\" class=\"mnode entry\"><rect x=\"{MID:.1}\" y=\"{entry_y:.1}\" width=\"{BW}\" height=\"{BH}\" rx=\"7\"/>\
         <text class=\"mlabel\" x=\"{:.1}\" y=\"{:.1}\">entry #{index}</text>\
         <text class=\"mhash\" x=\"{:.1}\" y=\"{:.1}\">{entry_len} bytes</text>\
         <text class=\"mmark\" x=\"{:.1}\" y=\"{:.1}\"></text></g>",
        MID + 12.0,
        entry_y + 19.0,
        MID + 12.0,
        entry_y + 37.0,
        MID + BW - 22.0,
        entry_y + 19.0,
    );
    s.push_str(&bx(
        MID,
        y(0),
        "n0",
        "spine leaf",
        "leaf = H(0x00‖entry)",
        leaf,
    ));
    for (k, st) in steps.iter().enumerate() {
        let sx = if st.left { 8.0 } else { MID * 2.0 - 24.0 };
        s.push_str(&bx(
            sx,
            y(k),
            &format!("s{k}"),
            "sibling",
            &format!("proof[{k}] ({})", if st.left { "left" } else { "right" }),
            &st.sibling,
        ));
        let last = k + 1 == n;
        s.push_str(&bx(
            MID,
            y(k + 1),
            &format!("n{}", k + 1),
            if last { "spine root" } else { "spine" },
            &if last {
                "root (recomputed)".to_owned()
            } else {
                format!("node {}", k + 1)
            },
            &st.result,
        ));
    }
    s.push_str("</svg>");
    s
}

/// What verify.js reads (at click time, from the page).
#[derive(Serialize)]
struct InclusionData<'a> {
    kind: &'static str,
    index: u64,
    tree_size: u64,
    entry: String,
    proof: Vec<String>,
    checkpoint: &'a str,
    vkey: &'a str,
    origin: &'a str,
    steps: &'a [InclusionStep],
    /// The witness policy's keys and groups, when witnessing is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<PolicyData>,
    /// The checkpoint is the witnessed one for its size.
    witnessed: bool,
}

#[derive(Serialize)]
struct ConsistencyData<'a> {
    kind: &'static str,
    first: u64,
    second: u64,
    proof: Vec<String>,
    first_checkpoint: &'a str,
    second_checkpoint: &'a str,
    vkey: &'a str,
    origin: &'a str,
    steps: &'a [ConsistencyStep],
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<PolicyData>,
    /// Each checkpoint is the witnessed one for its size.
    first_witnessed: bool,
    second_witnessed: bool,
}

/// JSON for a `<script type="application/json">` element: `<` escaped so
/// no text can close the element.
fn script_json<T: Serialize>(v: &T) -> Result<String, PageError> {
    Ok(serde_json::to_string(v)
        .map_err(|_| PageError::Internal)?
        .replace('<', "\\u003c"))
}

fn param(q: &HashMap<String, String>, name: &str) -> Result<Option<u64>, PageError> {
    match q.get(name).map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            PageError::BadRequest(format!("“{name}” must be a whole number, not {v:?}."))
        }),
    }
}

fn no_checkpoint(size: u64, head: u64) -> PageError {
    PageError::NotFound(format!(
        "The log signed no checkpoint at tree size {size}: it signs one per committed batch. \
         Pick a size from the checkpoint history (/checkpoints), or use the latest, {head}."
    ))
}

#[derive(Template, WebTemplate)]
#[template(path = "inclusion.html")]
struct InclusionPage {
    layout: Layout,
    index: u64,
    tree_size: u64,
    tree_size_text: String,
    head_size: u64,
    event: Digest,
    event_href: String,
    kind: String,
    workload: String,
    entry_len: usize,
    leaf: Digest,
    proof: Vec<Digest>,
    root: Digest,
    cp_when: When,
    note: String,
    vkey: String,
    origin: String,
    svg: String,
    data: String,
    verify_js: String,
    /// The checkpoint's cosignatures (witnessing on, size witnessed).
    witnessed: Option<Witnessed>,
    /// With a witness policy: the latest witnessed size, when it covers
    /// this entry and is not the size shown.
    witnessed_link: Option<u64>,
    /// Witnessing is on.
    witnessing: bool,
}

pub(crate) async fn inclusion(
    State(ex): State<Explorer>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let head = ex.core().head().size;
    let index = param(&q, "index")?.ok_or_else(|| {
        PageError::BadRequest(
            "The inclusion proof viewer needs “index” (a log index) and “tree_size”; \
             open it from an event page."
                .into(),
        )
    })?;
    let witnessing = ex.log.witnessing().cloned();
    let witnessing_on = witnessing.is_some();
    let latest_witnessed = witnessing.as_ref().and_then(|w| w.latest()).map(|c| c.size);
    let tree_size = match q.get("witnessed").map(String::as_str) {
        None | Some("" | "false") => param(&q, "tree_size")?.unwrap_or(head),
        Some("true") => {
            if witnessing.is_none() {
                return Err(PageError::BadRequest(
                    "This ledger has no witness policy: its checkpoints are signed by the log key only.".into(),
                ));
            }
            let size = latest_witnessed.ok_or_else(|| {
                PageError::NotFound(
                    "No checkpoint has met the witness policy's quorum yet; try again after the next witnessing round.".into(),
                )
            })?;
            if index >= size {
                return Err(PageError::NotFound(format!(
                    "The latest witnessed checkpoint (tree size {size}) does not cover entry #{index} yet; \
                     try again after the next witnessing round."
                )));
            }
            size
        }
        Some(v) => {
            return Err(PageError::BadRequest(format!(
                "“witnessed” is true or false, not {v:?}."
            )));
        }
    };
    if index >= tree_size || tree_size > head {
        return Err(PageError::BadRequest(format!(
            "Index {index} is not in a tree of size {tree_size} within this log \
             (its size is {head}): the index must be below the tree size."
        )));
    }
    let (d, (cp, cp_witnessed), proof) = blocking(&ex, move |core| {
        let cp = note_at(core, witnessing_on, tree_size)?
            .ok_or_else(|| no_checkpoint(tree_size, head))?;
        let d = reader::indexed_entry(core, index)?;
        let proof = core.inclusion_proof(index, tree_size)?;
        Ok((d, cp, proof))
    })
    .await?;
    let core = ex.core();
    let now = core.clock.now();
    let bytes = d.entry.encode();
    let leaf = leaf_hash(&bytes);
    let steps = inclusion_steps(index, tree_size, leaf, &proof).ok_or(PageError::Internal)?;
    let root = reader::checkpoint_of(&cp.note)
        .map(|c| c.root.to_base64())
        .unwrap_or_default();
    let data = InclusionData {
        kind: "inclusion",
        index,
        tree_size,
        entry: STANDARD.encode(&bytes),
        proof: proof.iter().map(Hash::to_base64).collect(),
        checkpoint: &cp.note,
        vkey: &core.vkey,
        origin: &core.config.origin,
        steps: &steps,
        policy: witnessing.as_ref().map(|w| policy_data(w.policy())),
        witnessed: cp_witnessed,
    };
    let (kind, workload) = match &d.body {
        Body::Event(e) => (e.kind.clone(), e.workload.as_str().to_owned()),
        _ => (d.kind(), String::new()),
    };
    let page = InclusionPage {
        layout: Layout::new(format!("Inclusion of #{index}"), "proofs")
            .with_origin(&core.config.origin),
        index,
        tree_size,
        tree_size_text: count(tree_size),
        head_size: head,
        event: Digest::event(&d.id.to_string()),
        event_href: format!("/events/{}", d.id),
        kind,
        workload,
        entry_len: bytes.len(),
        leaf: Digest::new(leaf.to_base64()),
        proof: proof.iter().map(|h| Digest::new(h.to_base64())).collect(),
        root: Digest::new(root),
        cp_when: When::from_ms(cp.time_ms, now),
        svg: inclusion_svg(index, bytes.len(), &leaf.to_base64(), &steps),
        data: script_json(&data)?,
        note: cp.note.clone(),
        vkey: core.vkey.clone(),
        origin: core.config.origin.clone(),
        verify_js: crate::assets::url("verify.js"),
        witnessed: witnessing
            .as_ref()
            .filter(|_| cp_witnessed)
            .map(|w| crate::witnesses::read(w.policy(), &cp.note, now)),
        witnessed_link: latest_witnessed.filter(|s| *s > index && *s != tree_size),
        witnessing: witnessing.is_some(),
    };
    Ok(page.into_response())
}

pub(crate) struct CpSide {
    pub size_text: String,
    pub when: When,
    pub root: Digest,
    pub note: String,
    /// Its cosignatures (witnessing on, size witnessed).
    pub witnessed: Option<Witnessed>,
}

#[derive(Template, WebTemplate)]
#[template(path = "consistency.html")]
struct ConsistencyPage {
    layout: Layout,
    first: CpSide,
    second: CpSide,
    seed_from_proof: bool,
    seed: Digest,
    steps: Vec<(usize, Digest, bool, Digest, Digest)>,
    proof_len: usize,
    vkey: String,
    origin: String,
    data: String,
    verify_js: String,
    trivial: Option<&'static str>,
}

pub(crate) async fn consistency(
    State(ex): State<Explorer>,
    q: Result<Query<HashMap<String, String>>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, PageError> {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let head = ex.core().head().size;
    let first = param(&q, "first")?.ok_or_else(|| {
        PageError::BadRequest(
            "The consistency viewer needs “first” and “second” (two tree sizes); \
             open it from the checkpoint history."
                .into(),
        )
    })?;
    let second = param(&q, "second")?.unwrap_or(head);
    if first > second || second > head {
        return Err(PageError::BadRequest(format!(
            "A consistency proof goes from an older tree to a newer one within this log: \
             need first ≤ second ≤ {head}, got first {first} and second {second}."
        )));
    }
    let witnessing = ex.log.witnessing().cloned();
    let witnessing_on = witnessing.is_some();
    let ((c1, w1), (c2, w2), proof) = blocking(&ex, move |core| {
        let c1 = note_at(core, witnessing_on, first)?.ok_or_else(|| no_checkpoint(first, head))?;
        let c2 =
            note_at(core, witnessing_on, second)?.ok_or_else(|| no_checkpoint(second, head))?;
        let proof = core.consistency_proof(first, second)?;
        Ok((c1, c2, proof))
    })
    .await?;
    let core = ex.core();
    let now = core.clock.now();
    let r1 = reader::checkpoint_of(&c1.note)
        .ok_or(PageError::Internal)?
        .root;
    let r2 = reader::checkpoint_of(&c2.note)
        .ok_or(PageError::Internal)?
        .root;
    let (seed, seed_from_proof, steps) =
        consistency_steps(first, second, r1, &proof).ok_or(PageError::Internal)?;
    let data = ConsistencyData {
        kind: "consistency",
        first,
        second,
        proof: proof.iter().map(Hash::to_base64).collect(),
        first_checkpoint: &c1.note,
        second_checkpoint: &c2.note,
        vkey: &core.vkey,
        origin: &core.config.origin,
        steps: &steps,
        policy: witnessing.as_ref().map(|w| policy_data(w.policy())),
        first_witnessed: w1,
        second_witnessed: w2,
    };
    let side = |cp: &lineage_ledger::store::StoredCheckpoint, root: Hash, witnessed: bool| CpSide {
        size_text: count(cp.size),
        when: When::from_ms(cp.time_ms, now),
        root: Digest::new(root.to_base64()),
        note: cp.note.clone(),
        witnessed: witnessing
            .as_ref()
            .filter(|_| witnessed)
            .map(|w| crate::witnesses::read(w.policy(), &cp.note, now)),
    };
    let page = ConsistencyPage {
        layout: Layout::new(format!("Consistency {first} → {second}"), "checkpoints")
            .with_origin(&core.config.origin),
        first: side(&c1, r1, w1),
        second: side(&c2, r2, w2),
        seed_from_proof,
        seed: Digest::new(seed.to_base64()),
        proof_len: proof.len(),
        steps: steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                (
                    i,
                    Digest::new(s.element.clone()),
                    s.both,
                    Digest::new(s.fr.clone()),
                    Digest::new(s.sr.clone()),
                )
            })
            .collect(),
        vkey: core.vkey.clone(),
        origin: core.config.origin.clone(),
        data: script_json(&data)?,
        verify_js: crate::assets::url("verify.js"),
        trivial: if first == 0 {
            Some(
                "Every tree extends the empty tree: the proof is empty, and the browser checks that the first checkpoint's root is SHA-256 of the empty string.",
            )
        } else if first == second {
            Some(
                "Both sizes are equal: the proof is empty, and the browser checks that the two roots are the same.",
            )
        } else {
            None
        },
    };
    Ok(page.into_response())
}

#[cfg(test)]
mod tests {
    use lineage_ledger::tree::{
        MemNodes, prove_consistency, prove_inclusion, root, verify_consistency, verify_inclusion,
    };

    use super::*;

    fn tree(n: u64) -> MemNodes {
        MemNodes::new((0..n).map(|i| leaf_hash(&i.to_be_bytes())).collect())
    }

    #[test]
    fn inclusion_steps_agree_with_the_ledger_for_every_leaf_up_to_40() {
        for size in 1..=40u64 {
            let t = tree(size);
            let r = root(size, &t).expect("root");
            for index in 0..size {
                let proof = prove_inclusion(index, size, &t).expect("proof");
                let leaf = leaf_hash(&index.to_be_bytes());
                let steps = inclusion_steps(index, size, leaf, &proof).expect("fits");
                let last = steps.last().map_or(leaf.to_base64(), |s| s.result.clone());
                assert_eq!(last, r.to_base64(), "index {index} size {size}");
                verify_inclusion(&leaf, index, size, &proof, &r).expect("ledger agrees");
            }
        }
    }

    #[test]
    fn inclusion_steps_refuse_a_proof_of_the_wrong_length() {
        let t = tree(5);
        let mut proof = prove_inclusion(2, 5, &t).expect("proof");
        let leaf = leaf_hash(&2u64.to_be_bytes());
        proof.push(leaf);
        assert!(inclusion_steps(2, 5, leaf, &proof).is_none());
        assert!(inclusion_steps(5, 5, leaf, &[]).is_none());
    }

    #[test]
    fn consistency_steps_agree_with_the_ledger_for_every_pair_up_to_24() {
        for second in 1..=24u64 {
            let t = tree(second);
            let r2 = root(second, &t).expect("root");
            for first in 1..=second {
                let r1 = root(first, &t).expect("root");
                let proof = prove_consistency(first, second, &t).expect("proof");
                verify_consistency(first, second, &r1, &r2, &proof).expect("ledger");
                let (seed, from_proof, steps) =
                    consistency_steps(first, second, r1, &proof).expect("fits");
                let proof_seed = first < second && !first.is_power_of_two();
                assert_eq!(from_proof, proof_seed, "{first}->{second}");
                let (fr, sr) = steps
                    .last()
                    .map_or((seed.to_base64(), seed.to_base64()), |s| {
                        (s.fr.clone(), s.sr.clone())
                    });
                if first < second {
                    assert_eq!(fr, r1.to_base64(), "{first}->{second}");
                    assert_eq!(sr, r2.to_base64(), "{first}->{second}");
                }
            }
        }
    }

    #[test]
    fn the_audit_path_drawing_has_a_node_per_step() {
        let t = tree(11);
        let proof = prove_inclusion(6, 11, &t).expect("proof");
        let leaf = leaf_hash(&6u64.to_be_bytes());
        let steps = inclusion_steps(6, 11, leaf, &proof).expect("fits");
        let svg = inclusion_svg(6, 100, &leaf.to_base64(), &steps);
        for k in 0..steps.len() {
            assert!(svg.contains(&format!("id=\"s{k}\"")));
            assert!(svg.contains(&format!("id=\"n{}\"", k + 1)));
        }
        assert!(svg.contains("root (recomputed)"));
    }

    #[test]
    fn script_json_cannot_close_its_element() {
        let s = script_json(&"</script><script>alert(1)</script>").expect("json");
        assert!(!s.contains("</script"));
    }
}
