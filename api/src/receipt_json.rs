//! Receipts and proofs written straight into a response body.
//!
//! An array of 500 envelopes is answered with 500 receipts that differ only
//! in their index, entry and audit path: the checkpoint note is the same in
//! all of them. Going through [`lineage_schemas::Receipt`] and serde, each
//! receipt allocated its base64 strings, cloned the note, and had serde scan
//! every byte of every string for characters to escape (base64 and hex have
//! none). Here the note is escaped once per answer and the rest is encoded
//! into the body as it is written. The bytes are exactly serde's for the
//! same `Receipt` (a test holds them equal), so clients see no difference.
//! Proof answers ([`proof_body`]) are written the same way: a random
//! inclusion proof costs little more than its answer, and serde's way
//! allocated one string per hash.

use std::cell::RefCell;
use std::sync::Arc;

use lineage_ledger::Hash;
use lineage_ledger::keys::EventId;
use lineage_ledger::store::StoredCheckpoint;

/// Writes receipts against one checkpoint.
pub(crate) struct ReceiptWriter {
    /// The checkpoint note as a JSON string, quotes included.
    note: Arc<[u8]>,
}

/// A checkpoint and its note as a JSON string.
type EscapedNote = (Arc<StoredCheckpoint>, Arc<[u8]>);

thread_local! {
    /// The last checkpoint this thread wrote receipts against, and its note
    /// as JSON. The single-envelope answers of one commit (tens of them)
    /// share its checkpoint: each escaped the same note again. The `Arc` is
    /// kept, so the comparison by address cannot meet a new checkpoint
    /// allocated where a freed one was.
    static LAST_NOTE: RefCell<Option<EscapedNote>> = const { RefCell::new(None) };
}

impl ReceiptWriter {
    /// A writer for receipts against the checkpoint whose note text is `note`.
    pub(crate) fn new(note: &str) -> ReceiptWriter {
        // Writing a &str into a Vec cannot fail; an empty note would still
        // be valid JSON ("") if it ever did.
        let note = serde_json::to_vec(note).unwrap_or_else(|_| b"\"\"".to_vec());
        ReceiptWriter { note: note.into() }
    }

    /// [`ReceiptWriter::new`] for `checkpoint`'s note, escaped once per
    /// checkpoint and thread.
    pub(crate) fn for_checkpoint(checkpoint: &Arc<StoredCheckpoint>) -> ReceiptWriter {
        LAST_NOTE.with_borrow_mut(|last| {
            if let Some((cp, note)) = last.as_ref()
                && Arc::ptr_eq(cp, checkpoint)
            {
                return ReceiptWriter { note: note.clone() };
            }
            let writer = ReceiptWriter::new(&checkpoint.note);
            *last = Some((checkpoint.clone(), writer.note.clone()));
            writer
        })
    }

    /// About how many bytes [`ReceiptWriter::write`] appends for an entry
    /// of `entry_len` bytes and a proof of `proof_len` hashes.
    pub(crate) fn size_hint(&self, entry_len: usize, proof_len: usize) -> usize {
        128 + entry_len.div_ceil(3) * 4 + self.note.len() + proof_len * 47
    }

    /// Appends one receipt's JSON object to `out`.
    pub(crate) fn write(
        &self,
        out: &mut Vec<u8>,
        event_id: &EventId,
        index: u64,
        entry: &[u8],
        proof: &[Hash],
    ) {
        out.extend_from_slice(b"{\"format\":\"");
        out.extend_from_slice(lineage_schemas::RECEIPT_FORMAT.as_bytes());
        out.extend_from_slice(b"\",\"event_id\":\"");
        push_hex(out, event_id.as_bytes());
        out.extend_from_slice(b"\",\"index\":");
        out.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
        out.extend_from_slice(b",\"entry\":\"");
        push_base64(out, entry);
        out.extend_from_slice(b"\",\"checkpoint\":");
        out.extend_from_slice(&self.note);
        out.extend_from_slice(b",\"inclusion_proof\":[");
        for (i, hash) in proof.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'"');
            push_base64(out, hash.as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b"]}");
    }
}

/// The JSON body of a proof answer, `{"<a>":x,"<b>":y,"proof":[...]}`:
/// byte for byte what serde writes for [`lineage_schemas::InclusionProofResponse`]
/// (`index`, `tree_size`) and [`lineage_schemas::ConsistencyProofResponse`]
/// (`first`, `second`). The names are the schema's (plain ASCII, nothing to
/// escape).
pub(crate) fn proof_body(a: (&str, u64), b: (&str, u64), proof: &[Hash]) -> Vec<u8> {
    // 44 base64 characters and 3 of punctuation per hash.
    let mut out = Vec::with_capacity(64 + proof.len() * 47);
    for (i, (name, value)) in [a, b].into_iter().enumerate() {
        out.extend_from_slice(if i == 0 { b"{\"" } else { b",\"" });
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }
    out.extend_from_slice(b",\"proof\":[");
    for (i, hash) in proof.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        push_base64(&mut out, hash.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"]}");
    out
}

/// Lowercase hex of `bytes`, appended.
fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 0x0f)]);
    }
}

/// Standard padded base64 of `bytes`, appended in place (SIMD where the
/// CPU has it: a receipt's entry is most of its bytes).
fn push_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    base64_simd::STANDARD.encode_append(bytes, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use lineage_schemas::Receipt;

    fn serde_bytes(note: &str, id: &EventId, index: u64, entry: &[u8], proof: &[Hash]) -> Vec<u8> {
        serde_json::to_vec(&Receipt {
            format: lineage_schemas::RECEIPT_FORMAT.to_owned(),
            event_id: id.to_string(),
            index,
            entry: STANDARD.encode(entry),
            checkpoint: note.to_owned(),
            inclusion_proof: proof.iter().map(Hash::to_base64).collect(),
        })
        .expect("serialize")
    }

    #[test]
    fn receipts_are_written_byte_for_byte_as_serde_writes_them() {
        let notes = [
            "example.com/log\n42\nq6rLzM3O0NHS09TV1tfY2drb3N3e3+Dh4uPk5ebn6Ok=\n\n\u{2014} example.com/log AAAA+/8=\n",
            "",
            "quotes \" and backslashes \\ and \t tabs \u{1} control \u{7f} del \u{e9} \u{1F600}",
        ];
        for (n, note) in notes.iter().enumerate() {
            let writer = ReceiptWriter::new(note);
            for (index, entry_len, proof_len) in [
                (0u64, 0usize, 0usize),
                (1, 1, 1),
                (9, 2, 2),
                (u64::MAX, 3, 3),
                (1234567, 371, 24),
            ] {
                let entry: Vec<u8> = (0..entry_len).map(|i| (i * 37 + n) as u8).collect();
                let proof: Vec<Hash> = (0..proof_len)
                    .map(|i| lineage_ledger::hash::leaf_hash(&[i as u8, n as u8]))
                    .collect();
                let id = EventId::of_payload(&entry);
                let mut out = b"prefix".to_vec();
                writer.write(&mut out, &id, index, &entry, &proof);
                let expected = [
                    b"prefix".as_slice(),
                    &serde_bytes(note, &id, index, &entry, &proof),
                ]
                .concat();
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&expected),
                    "note {n}, index {index}"
                );
            }
        }
    }

    #[test]
    fn proof_answers_are_written_byte_for_byte_as_serde_writes_them() {
        use lineage_schemas::{ConsistencyProofResponse, InclusionProofResponse};
        for (x, y, len) in [
            (0u64, 1u64, 0usize),
            (7, 8, 1),
            (u64::MAX, 10, 24),
            (5, 10_040_004, 33),
        ] {
            let proof: Vec<Hash> = (0..len)
                .map(|i| lineage_ledger::hash::leaf_hash(&[i as u8, len as u8]))
                .collect();
            let strings: Vec<String> = proof.iter().map(Hash::to_base64).collect();
            let inclusion = serde_json::to_vec(&InclusionProofResponse {
                index: x,
                tree_size: y,
                proof: strings.clone(),
            })
            .expect("serialize");
            assert_eq!(
                String::from_utf8_lossy(&proof_body(("index", x), ("tree_size", y), &proof)),
                String::from_utf8_lossy(&inclusion)
            );
            let consistency = serde_json::to_vec(&ConsistencyProofResponse {
                first: x,
                second: y,
                proof: strings,
            })
            .expect("serialize");
            assert_eq!(
                String::from_utf8_lossy(&proof_body(("first", x), ("second", y), &proof)),
                String::from_utf8_lossy(&consistency)
            );
        }
    }

    #[test]
    fn each_checkpoint_gets_its_own_note_even_at_the_same_size() {
        // A note can gain cosignatures and stay at its size: the cache is by
        // checkpoint, not by size.
        let cp = |note: &str| {
            Arc::new(StoredCheckpoint {
                size: 7,
                time_ms: 1,
                note: note.to_owned(),
            })
        };
        let (a, b) = (cp("a\n"), cp("b \"q\"\n"));
        for (c, want) in [(&a, r#""a\n""#), (&b, r#""b \"q\"\n""#), (&a, r#""a\n""#)] {
            let writer = ReceiptWriter::for_checkpoint(c);
            assert_eq!(String::from_utf8_lossy(&writer.note), want);
            assert_eq!(&*writer.note, &*ReceiptWriter::new(&c.note).note);
        }
    }

    #[test]
    fn hex_is_written_in_full() {
        let mut out = Vec::new();
        push_hex(&mut out, &[0x00, 0x0f, 0xa5, 0xff]);
        assert_eq!(out, b"000fa5ff");
        for len in 0..8 {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 91) as u8).collect();
            let mut out = Vec::new();
            push_base64(&mut out, &bytes);
            assert_eq!(out, STANDARD.encode(&bytes).as_bytes());
        }
    }
}
