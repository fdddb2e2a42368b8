//! Checking a receipt against the envelope that was sent: pure functions,
//! no I/O.
//!
//! A receipt is accepted only when all of these hold:
//! 1. it is a `lineage-bundle/v1` document for the envelope's event ID;
//! 2. its entry decodes, and carries exactly the envelope sent (payload type,
//!    payload bytes, key ID, signature);
//! 3. its checkpoint is signed by the trusted log key, with that key's name
//!    as origin;
//! 4. the inclusion proof of the entry's leaf hash at `index` leads to the
//!    checkpoint's root.
//!
//! Consistency with earlier checkpoints is the caller's next step
//! ([`crate::Consistency`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use lineage_ledger::checkpoint::{VerifiedCheckpoint, verify_checkpoint};
use lineage_ledger::dsse::SignedEnvelope;
use lineage_ledger::entry::LogEntry;
use lineage_ledger::note::NoteVerifier;
use lineage_ledger::tree::verify_inclusion;
use lineage_ledger::{Hash, leaf_hash};
use lineage_schemas::RECEIPT_FORMAT;

/// Why a receipt was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Not a `lineage-bundle/v1` document.
    #[error("format is {0:?}, not lineage-bundle/v1")]
    Format(String),
    /// The receipt is for another event.
    #[error("the receipt is for event {found}, not {expected}")]
    EventId {
        /// The envelope's event ID.
        expected: String,
        /// The receipt's.
        found: String,
    },
    /// The entry is not canonical base64 of a valid log entry.
    #[error("the entry does not decode: {0}")]
    Entry(String),
    /// The entry holds another envelope than the one sent.
    #[error("the entry does not hold the envelope that was sent ({0} differs)")]
    NotOurs(&'static str),
    /// The checkpoint's signature, origin or text.
    #[error("the checkpoint: {0}")]
    Checkpoint(String),
    /// A proof node is not 32 bytes of base64.
    #[error("inclusion proof node {0} is not a 32-byte hash")]
    ProofNode(usize),
    /// The inclusion proof does not lead to the checkpoint's root.
    #[error(
        "the inclusion proof of index {index} does not lead to the root of tree size {size}: {why}"
    )]
    Inclusion {
        /// The entry's index.
        index: u64,
        /// The checkpoint's size.
        size: u64,
        /// What the proof check said.
        why: String,
    },
}

/// What a receipt proved.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The entry, decoded.
    pub entry: LogEntry,
    /// The checkpoint, signature verified.
    pub checkpoint: VerifiedCheckpoint,
}

/// Checks `receipt` as the ledger's answer to `envelope` (see the module docs).
///
/// # Errors
/// The first check that fails.
pub fn verify_receipt(
    receipt: &lineage_schemas::Receipt,
    envelope: &SignedEnvelope,
    log_key: &NoteVerifier,
) -> Result<Checked, ReceiptError> {
    if receipt.format != RECEIPT_FORMAT {
        return Err(ReceiptError::Format(receipt.format.clone()));
    }
    let expected = envelope.event_id().to_string();
    if receipt.event_id != expected {
        return Err(ReceiptError::EventId {
            expected,
            found: receipt.event_id.clone(),
        });
    }
    let bytes = decode_canonical(&receipt.entry)
        .ok_or_else(|| ReceiptError::Entry("not canonical base64".into()))?;
    let entry = LogEntry::decode(&bytes).map_err(|e| ReceiptError::Entry(e.to_string()))?;
    if entry.entry_type.payload_type() != envelope.payload_type {
        return Err(ReceiptError::NotOurs("payload type"));
    }
    if entry.payload != envelope.payload {
        return Err(ReceiptError::NotOurs("payload"));
    }
    if entry.key_id != envelope.key_id {
        return Err(ReceiptError::NotOurs("key ID"));
    }
    if entry.signature != envelope.signature.to_bytes() {
        return Err(ReceiptError::NotOurs("signature"));
    }
    let checkpoint = verify_checkpoint(receipt.checkpoint.as_bytes(), log_key, log_key.name())
        .map_err(|e| ReceiptError::Checkpoint(e.to_string()))?;
    let proof = decode_proof(&receipt.inclusion_proof)?;
    let (size, root) = (checkpoint.checkpoint().size, checkpoint.checkpoint().root);
    verify_inclusion(&leaf_hash(&bytes), receipt.index, size, &proof, &root).map_err(|e| {
        ReceiptError::Inclusion {
            index: receipt.index,
            size,
            why: e.to_string(),
        }
    })?;
    Ok(Checked { entry, checkpoint })
}

/// Proof nodes from base64; the position of the first bad one.
///
/// # Errors
/// [`ReceiptError::ProofNode`].
pub fn decode_proof(nodes: &[String]) -> Result<Vec<Hash>, ReceiptError> {
    nodes
        .iter()
        .enumerate()
        .map(|(i, n)| Hash::from_base64(n).map_err(|_| ReceiptError::ProofNode(i)))
        .collect()
}

fn decode_canonical(text: &str) -> Option<Vec<u8>> {
    let bytes = STANDARD.decode(text).ok()?;
    (STANDARD.encode(&bytes) == text).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use lineage_ledger::checkpoint::{Checkpoint, sign_checkpoint};
    use lineage_ledger::dsse::PayloadType;
    use lineage_ledger::node_hash;
    use lineage_ledger::note::NoteSigner;
    use lineage_ledger::tree::{MemNodes, prove_inclusion, root};

    const ORIGIN: &str = "test.example/log";

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    /// A log of `n` entries, the `at`-th of which is `env`; its receipt.
    fn receipt_for(
        env: &SignedEnvelope,
        at: u64,
        n: u64,
        log: &NoteSigner,
    ) -> lineage_schemas::Receipt {
        let entries: Vec<Vec<u8>> = (0..n)
            .map(|i| {
                let e = if i == at {
                    env.clone()
                } else {
                    SignedEnvelope::sign(
                        PayloadType::Event,
                        format!("{{\"i\":{i}}}").into_bytes(),
                        &key(9),
                    )
                };
                LogEntry::from_envelope(&e, 1_000 + i).encode()
            })
            .collect();
        let leaves: Vec<Hash> = entries.iter().map(|e| leaf_hash(e)).collect();
        let nodes = MemNodes::new(leaves);
        let root = root(n, &nodes).expect("root");
        let proof = prove_inclusion(at, n, &nodes).expect("proof");
        let cp = Checkpoint {
            origin: ORIGIN.into(),
            size: n,
            root,
            extensions: vec![],
        };
        lineage_schemas::Receipt {
            format: RECEIPT_FORMAT.into(),
            event_id: env.event_id().to_string(),
            index: at,
            entry: STANDARD.encode(&entries[at as usize]),
            checkpoint: sign_checkpoint(&cp, log).expect("sign"),
            inclusion_proof: proof.iter().map(Hash::to_base64).collect(),
        }
    }

    fn setup() -> (SignedEnvelope, NoteSigner) {
        let env = SignedEnvelope::sign(PayloadType::Event, b"{\"ours\":true}".to_vec(), &key(1));
        (env, NoteSigner::new(ORIGIN, key(2)).expect("signer"))
    }

    #[test]
    fn a_true_receipt_verifies_at_every_position() {
        let (env, log) = setup();
        for n in [1u64, 2, 3, 7, 8, 13] {
            for at in 0..n {
                let r = receipt_for(&env, at, n, &log);
                let c = verify_receipt(&r, &env, &log.verifier()).expect("verifies");
                assert_eq!(c.checkpoint.checkpoint().size, n);
                assert_eq!(c.entry.payload, env.payload);
            }
        }
    }

    #[test]
    fn every_lie_is_caught() {
        let (env, log) = setup();
        let good = receipt_for(&env, 2, 5, &log);
        let verifier = log.verifier();
        let check = |r: &lineage_schemas::Receipt| verify_receipt(r, &env, &verifier);

        let other = SignedEnvelope::sign(PayloadType::Event, b"{\"ours\":false}".to_vec(), &key(1));
        assert!(matches!(
            verify_receipt(&good, &other, &verifier),
            Err(ReceiptError::EventId { .. })
        ));

        let mut r = good.clone();
        r.format = "lineage-bundle/v2".into();
        assert!(matches!(check(&r), Err(ReceiptError::Format(_))));

        // The entry of another envelope with the same payload (another key).
        let resigned = SignedEnvelope::sign(PayloadType::Event, env.payload.clone(), &key(3));
        let mut r = good.clone();
        r.entry = STANDARD.encode(LogEntry::from_envelope(&resigned, 1).encode());
        assert!(matches!(check(&r), Err(ReceiptError::NotOurs("key ID"))));

        let mut r = good.clone();
        r.index = 3;
        assert!(matches!(check(&r), Err(ReceiptError::Inclusion { .. })));

        let mut r = good.clone();
        r.inclusion_proof[0] = node_hash(
            &Hash::from_slice(&[0; 32]).expect("h"),
            &Hash::from_slice(&[1; 32]).expect("h"),
        )
        .to_base64();
        assert!(matches!(check(&r), Err(ReceiptError::Inclusion { .. })));

        let mut r = good.clone();
        r.inclusion_proof[0] = "AAAA".into();
        assert!(matches!(check(&r), Err(ReceiptError::ProofNode(0))));

        // Signed by another log key, or by ours for another origin.
        let imposter = NoteSigner::new(ORIGIN, key(4)).expect("signer");
        let r = receipt_for(&env, 2, 5, &imposter);
        assert!(matches!(check(&r), Err(ReceiptError::Checkpoint(_))));

        let mut r = good.clone();
        r.entry.push_str("==");
        assert!(matches!(check(&r), Err(ReceiptError::Entry(_))));
    }
}
