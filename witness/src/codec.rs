//! The witness store's values ([`CosignedRecord`], [`Evidence`]) and their on-disk
//! encoding: one versioned binary encoding each, with round-trip tests. Every value starts with [`VERSION`]; integers are big-endian.
//!
//! - log vkeys: `VERSION`, then the vkeys joined by `\n`.
//! - cosigned state: `VERSION`, size (8), root (32), cosigned-at (8), the note (rest).
//! - evidence: `VERSION`, kind (1), status (2), size (8), root (32), first seen (8),
//!   last seen (8), count (8), origin length (4), origin, request length (4),
//!   request, the witness's note (rest).

use lineage_ledger::Hash;
use lineage_ledger::witness_protocol::CosignedState;

/// The latest checkpoint the witness cosigned for an origin, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedRecord {
    /// Size and root: what [`lineage_ledger::witness_protocol::decide`] needs.
    pub state: CosignedState,
    /// When it was cosigned (the cosignature's timestamp, POSIX seconds).
    pub cosigned_at: u64,
    /// The log's signed note with the witness's cosignature line(s) appended.
    pub note: String,
}

/// Why a refused request is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A checkpoint signed by the log with the size of the one the witness cosigned
    /// and another root: two signed checkpoints that prove a fork.
    Fork,
}

impl EvidenceKind {
    pub(crate) fn to_byte(self) -> u8 {
        match self {
            EvidenceKind::Fork => 1,
        }
    }

    pub(crate) fn from_byte(b: u8) -> Option<EvidenceKind> {
        match b {
            1 => Some(EvidenceKind::Fork),
            _ => None,
        }
    }
}

/// A refused request kept as evidence: the request as received and the witness's
/// own cosigned note it conflicts with. One record per distinct signed checkpoint
/// (origin, size, root): a log that repeats the request bumps `count`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evidence {
    /// The checkpoint's origin.
    pub origin: String,
    /// The refused checkpoint's size.
    pub size: u64,
    /// The refused checkpoint's root.
    pub root: Hash,
    /// Why it was kept.
    pub kind: EvidenceKind,
    /// The HTTP status it was answered with.
    pub status: u16,
    /// First and latest time it was received (POSIX seconds).
    pub first_seen: u64,
    /// Latest time it was received.
    pub last_seen: u64,
    /// How many times it was received.
    pub count: u64,
    /// The request body, byte for byte (the first one received).
    pub request: Vec<u8>,
    /// The witness's cosigned note for the origin when the request came (its own
    /// signed side of the conflict).
    pub witness_note: String,
}

/// The version byte every value starts with.
pub const VERSION: u8 = 1;

/// Why a stored value does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Another version byte (or none).
    #[error("unknown value version {found:?}")]
    Version {
        /// The first byte, if any.
        found: Option<u8>,
    },
    /// The value ends early.
    #[error("value truncated")]
    Truncated,
    /// A fixed-size value of the wrong length.
    #[error("value of {len} bytes has the wrong length")]
    Length {
        /// Its length.
        len: usize,
    },
    /// Text that is not UTF-8.
    #[error("text is not UTF-8")]
    NotUtf8,
    /// A stored vkey that does not parse.
    #[error("stored vkey does not parse")]
    InvalidVkey,
    /// An unknown evidence kind byte.
    #[error("unknown evidence kind {0}")]
    Kind(u8),
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn versioned(bytes: &'a [u8]) -> Result<Reader<'a>, CodecError> {
        match bytes.split_first() {
            Some((&VERSION, rest)) => Ok(Reader(rest)),
            other => Err(CodecError::Version {
                found: other.map(|(b, _)| *b),
            }),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn bytes32(&mut self) -> Result<&'a [u8], CodecError> {
        let len = u32::from_be_bytes(self.array()?);
        self.take(len as usize)
    }

    fn rest_text(self) -> Result<String, CodecError> {
        text(self.0)
    }
}

fn text(bytes: &[u8]) -> Result<String, CodecError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::NotUtf8)
}

fn put_bytes32(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths are bounded far below 4 GiB: an origin is a note line, a request body
    // is capped by the HTTP layer.
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Encodes a log's vkeys.
pub fn encode_vkeys(vkeys: &[String]) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.extend_from_slice(vkeys.join("\n").as_bytes());
    out
}

/// Decodes a log's vkeys.
///
/// # Errors
/// [`CodecError`].
pub fn decode_vkeys(bytes: &[u8]) -> Result<Vec<String>, CodecError> {
    let text = Reader::versioned(bytes)?.rest_text()?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    Ok(text.split('\n').map(str::to_owned).collect())
}

/// Encodes a cosigned state.
pub fn encode_cosigned(r: &CosignedRecord) -> Vec<u8> {
    let mut out = vec![VERSION];
    out.extend_from_slice(&r.state.size.to_be_bytes());
    out.extend_from_slice(r.state.root.as_bytes());
    out.extend_from_slice(&r.cosigned_at.to_be_bytes());
    out.extend_from_slice(r.note.as_bytes());
    out
}

/// Decodes a cosigned state.
///
/// # Errors
/// [`CodecError`].
pub fn decode_cosigned(bytes: &[u8]) -> Result<CosignedRecord, CodecError> {
    let mut r = Reader::versioned(bytes)?;
    let size = r.u64()?;
    let root = Hash::from_bytes(r.array()?);
    let cosigned_at = r.u64()?;
    Ok(CosignedRecord {
        state: CosignedState { size, root },
        cosigned_at,
        note: r.rest_text()?,
    })
}

/// Encodes an evidence record.
pub fn encode_evidence(e: &Evidence) -> Vec<u8> {
    let mut out = vec![VERSION, e.kind.to_byte()];
    out.extend_from_slice(&e.status.to_be_bytes());
    out.extend_from_slice(&e.size.to_be_bytes());
    out.extend_from_slice(e.root.as_bytes());
    out.extend_from_slice(&e.first_seen.to_be_bytes());
    out.extend_from_slice(&e.last_seen.to_be_bytes());
    out.extend_from_slice(&e.count.to_be_bytes());
    put_bytes32(&mut out, e.origin.as_bytes());
    put_bytes32(&mut out, &e.request);
    out.extend_from_slice(e.witness_note.as_bytes());
    out
}

/// Decodes an evidence record.
///
/// # Errors
/// [`CodecError`].
pub fn decode_evidence(bytes: &[u8]) -> Result<Evidence, CodecError> {
    let mut r = Reader::versioned(bytes)?;
    let [kind] = r.array()?;
    let kind = EvidenceKind::from_byte(kind).ok_or(CodecError::Kind(kind))?;
    let status = u16::from_be_bytes(r.array()?);
    let size = r.u64()?;
    let root = Hash::from_bytes(r.array()?);
    let first_seen = r.u64()?;
    let last_seen = r.u64()?;
    let count = r.u64()?;
    let origin = text(r.bytes32()?)?;
    let request = r.bytes32()?.to_vec();
    Ok(Evidence {
        origin,
        size,
        root,
        kind,
        status,
        first_seen,
        last_seen,
        count,
        request,
        witness_note: r.rest_text()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lineage_ledger::leaf_hash;
    use proptest::prelude::*;

    #[test]
    fn values_round_trip() {
        for vkeys in [
            vec![],
            vec!["a+01020304+AQ==".to_owned()],
            vec!["a".into(), "b".into()],
        ] {
            assert_eq!(decode_vkeys(&encode_vkeys(&vkeys)), Ok(vkeys));
        }
        let record = CosignedRecord {
            state: CosignedState {
                size: 7,
                root: leaf_hash(b"7"),
            },
            cosigned_at: 1_700_000_000,
            note: "o\n7\nroot\n\n\u{2014} w AAAA\n".into(),
        };
        assert_eq!(decode_cosigned(&encode_cosigned(&record)), Ok(record));
        let e = Evidence {
            origin: "example.com/log".into(),
            size: u64::MAX,
            root: leaf_hash(b"r"),
            kind: EvidenceKind::Fork,
            status: 422,
            first_seen: 1,
            last_seen: 2,
            count: 3,
            request: b"old 1\n\nnote".to_vec(),
            witness_note: "note\n".into(),
        };
        assert_eq!(decode_evidence(&encode_evidence(&e)), Ok(e));
    }

    #[test]
    fn foreign_values_are_refused() {
        assert_eq!(decode_vkeys(b""), Err(CodecError::Version { found: None }));
        assert_eq!(
            decode_cosigned(&[2, 0]),
            Err(CodecError::Version { found: Some(2) })
        );
        assert_eq!(
            decode_cosigned(&[VERSION, 0, 0]),
            Err(CodecError::Truncated)
        );
        let mut e = encode_evidence(&Evidence {
            origin: "o".into(),
            size: 1,
            root: leaf_hash(b"r"),
            kind: EvidenceKind::Fork,
            status: 422,
            first_seen: 1,
            last_seen: 1,
            count: 1,
            request: vec![],
            witness_note: String::new(),
        });
        e[1] = 9;
        assert_eq!(decode_evidence(&e), Err(CodecError::Kind(9)));
    }

    proptest! {
        #[test]
        fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_vkeys(&bytes);
            let _ = decode_cosigned(&bytes);
            let _ = decode_evidence(&bytes);
        }
    }
}
