//! The log entry: the bytes of one Merkle leaf.
//!
//! Each leaf of the tree is `leaf_hash(entry)` of one encoded [`LogEntry`]: the
//! signed envelope in binary form, plus the time the log integrated it. The
//! encoding is deterministic (one encoding per value), versioned, and at most
//! [`MAX_ENTRY_BYTES`] bytes, so it fits the 16-bit length prefix of a C2SP
//! tlog-tiles entry bundle.
//!
//! Layout, version 1 (integers big-endian):
//!
//! | offset | size | field                                           |
//! |-------:|-----:|-------------------------------------------------|
//! | 0      | 1    | version, `0x01`                                 |
//! | 1      | 1    | entry type: `0x01` event, `0x02` governance     |
//! | 2      | 8    | integrated_at_ms: u64, Unix time in ms          |
//! | 10     | 32   | key ID: BLAKE3 of the signer's public key       |
//! | 42     | 64   | Ed25519 signature over the DSSE PAE             |
//! | 106    | 2    | payload length n: u16, at most 32768            |
//! | 108    | n    | payload, exactly as submitted                   |
//!
//! The entry type implies the DSSE `payloadType`, so [`LogEntry::to_envelope`]
//! rebuilds the signed envelope exactly and its signature still verifies.
//! [`LogEntry::decode`] is strict: known version and type, a payload length
//! within the limit, and no missing or trailing bytes.

use crate::dsse::{PayloadType, SignedEnvelope};
use crate::event::MAX_PAYLOAD_BYTES;
use crate::keys::{EventId, KeyId};

/// The current (and only) encoding version.
pub const ENTRY_VERSION: u8 = 1;
/// Size of the fixed header before the payload.
pub const ENTRY_HEADER_BYTES: usize = 1 + 1 + 8 + 32 + 64 + 2;
/// Largest encoded entry.
pub const MAX_ENTRY_BYTES: usize = ENTRY_HEADER_BYTES + MAX_PAYLOAD_BYTES;

/// What an entry carries; it implies the DSSE payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EntryType {
    /// A runtime event.
    Event = 1,
    /// A governance statement.
    Governance = 2,
}

impl EntryType {
    /// The entry type from its byte, if known.
    pub fn from_byte(byte: u8) -> Option<EntryType> {
        match byte {
            1 => Some(EntryType::Event),
            2 => Some(EntryType::Governance),
            _ => None,
        }
    }

    /// The DSSE payload type it implies.
    pub fn payload_type(self) -> PayloadType {
        match self {
            EntryType::Event => PayloadType::Event,
            EntryType::Governance => PayloadType::Governance,
        }
    }
}

impl From<PayloadType> for EntryType {
    fn from(t: PayloadType) -> EntryType {
        match t {
            PayloadType::Event => EntryType::Event,
            PayloadType::Governance => EntryType::Governance,
        }
    }
}

/// Why bytes are not a log entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    /// Shorter than the fixed header.
    #[error("entry is {len} bytes, shorter than the {ENTRY_HEADER_BYTES}-byte header")]
    TooShort {
        /// Length given.
        len: usize,
    },
    /// An encoding version this code does not know.
    #[error("unsupported entry version {version}")]
    UnsupportedVersion {
        /// The version byte.
        version: u8,
    },
    /// An unknown entry type byte.
    #[error("unknown entry type {value}")]
    UnknownType {
        /// The type byte.
        value: u8,
    },
    /// The declared payload length is over [`MAX_PAYLOAD_BYTES`].
    #[error("payload length {len} is over the limit of {limit}")]
    PayloadTooLarge {
        /// Declared length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes after the header are not exactly the declared payload length.
    #[error("payload length is {declared} but {actual} bytes follow the header")]
    LengthMismatch {
        /// Declared length.
        declared: usize,
        /// Bytes actually present.
        actual: usize,
    },
}

/// One log entry: a signed envelope and when the log integrated it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Event or governance.
    pub entry_type: EntryType,
    /// When the log integrated the entry, Unix time in milliseconds (the
    /// ledger's clock, not the payload's `at`).
    pub integrated_at_ms: u64,
    /// The signer's key ID.
    pub key_id: KeyId,
    /// The Ed25519 signature over the DSSE PAE.
    pub signature: [u8; 64],
    /// The payload, exactly as submitted; at most [`MAX_PAYLOAD_BYTES`].
    pub payload: Vec<u8>,
}

impl LogEntry {
    /// The entry for an envelope integrated at `integrated_at_ms`.
    pub fn from_envelope(envelope: &SignedEnvelope, integrated_at_ms: u64) -> LogEntry {
        LogEntry {
            entry_type: envelope.payload_type.into(),
            integrated_at_ms,
            key_id: envelope.key_id,
            signature: envelope.signature.to_bytes(),
            payload: envelope.payload.clone(),
        }
    }

    /// The signed envelope, exactly as it was signed.
    pub fn to_envelope(&self) -> SignedEnvelope {
        SignedEnvelope {
            payload_type: self.entry_type.payload_type(),
            payload: self.payload.clone(),
            key_id: self.key_id,
            signature: ed25519_dalek::Signature::from_bytes(&self.signature),
        }
    }

    /// The event ID: BLAKE3 of the payload.
    pub fn event_id(&self) -> EventId {
        EventId::of_payload(&self.payload)
    }

    /// The version-1 encoding (layout in the module docs).
    ///
    /// # Panics
    /// If the payload is over [`MAX_PAYLOAD_BYTES`]. That is a caller bug, not
    /// an input error: ingest refuses such payloads before an entry exists
    /// (`parse_event` / `parse_governance`), and [`LogEntry::decode`] never
    /// produces one.
    pub fn encode(&self) -> Vec<u8> {
        encode_parts(
            self.entry_type,
            self.integrated_at_ms,
            &self.key_id,
            &self.signature,
            &self.payload,
        )
    }

    /// The encoding of [`LogEntry::from_envelope`]`(envelope,
    /// integrated_at_ms)`, without the entry in between (the sequencer
    /// encodes every admitted envelope: this saves a copy of its payload).
    ///
    /// # Panics
    /// As [`LogEntry::encode`].
    pub fn encode_envelope(envelope: &SignedEnvelope, integrated_at_ms: u64) -> Vec<u8> {
        encode_parts(
            envelope.payload_type.into(),
            integrated_at_ms,
            &envelope.key_id,
            &envelope.signature.to_bytes(),
            &envelope.payload,
        )
    }

    /// Decodes a version-1 entry.
    ///
    /// # Errors
    /// [`EntryError`] when the bytes are not exactly one valid encoding.
    pub fn decode(bytes: &[u8]) -> Result<LogEntry, EntryError> {
        EntryRef::decode(bytes).map(|e| e.to_entry())
    }
}

/// A decoded entry whose payload is borrowed from its encoding: for readers
/// that look at an entry and drop it (the explorer's tally reads every
/// entry once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef<'a> {
    /// Event or governance.
    pub entry_type: EntryType,
    /// When the log integrated the entry, Unix time in milliseconds.
    pub integrated_at_ms: u64,
    /// The signer's key ID.
    pub key_id: KeyId,
    /// The Ed25519 signature over the DSSE PAE.
    pub signature: [u8; 64],
    /// The payload, exactly as submitted.
    pub payload: &'a [u8],
}

impl<'a> EntryRef<'a> {
    /// Decodes a version-1 entry (the rules of [`LogEntry::decode`]).
    ///
    /// # Errors
    /// [`EntryError`] when the bytes are not exactly one valid encoding.
    pub fn decode(bytes: &'a [u8]) -> Result<EntryRef<'a>, EntryError> {
        let header: &[u8; ENTRY_HEADER_BYTES] = bytes
            .get(..ENTRY_HEADER_BYTES)
            .and_then(|h| h.try_into().ok())
            .ok_or(EntryError::TooShort { len: bytes.len() })?;
        let (version, rest) = split::<1>(header);
        if version[0] != ENTRY_VERSION {
            return Err(EntryError::UnsupportedVersion {
                version: version[0],
            });
        }
        let (entry_type, rest) = split::<1>(rest);
        let entry_type = EntryType::from_byte(entry_type[0]).ok_or(EntryError::UnknownType {
            value: entry_type[0],
        })?;
        let (integrated_at_ms, rest) = split::<8>(rest);
        let (key_id, rest) = split::<32>(rest);
        let (signature, rest) = split::<64>(rest);
        let (len, _) = split::<2>(rest);
        let declared = usize::from(u16::from_be_bytes(len));
        if declared > MAX_PAYLOAD_BYTES {
            return Err(EntryError::PayloadTooLarge {
                len: declared,
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        let payload = &bytes[ENTRY_HEADER_BYTES..];
        if payload.len() != declared {
            return Err(EntryError::LengthMismatch {
                declared,
                actual: payload.len(),
            });
        }
        Ok(EntryRef {
            entry_type,
            integrated_at_ms: u64::from_be_bytes(integrated_at_ms),
            key_id: KeyId::from_bytes(key_id),
            signature,
            payload,
        })
    }

    /// The owned entry.
    pub fn to_entry(&self) -> LogEntry {
        LogEntry {
            entry_type: self.entry_type,
            integrated_at_ms: self.integrated_at_ms,
            key_id: self.key_id,
            signature: self.signature,
            payload: self.payload.to_vec(),
        }
    }
}

/// The version-1 encoding of an entry given by its parts.
fn encode_parts(
    entry_type: EntryType,
    integrated_at_ms: u64,
    key_id: &KeyId,
    signature: &[u8; 64],
    payload: &[u8],
) -> Vec<u8> {
    assert!(
        payload.len() <= MAX_PAYLOAD_BYTES,
        "log entry payload of {} bytes is over the {MAX_PAYLOAD_BYTES}-byte limit",
        payload.len()
    );
    let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
    let mut out = Vec::with_capacity(ENTRY_HEADER_BYTES + payload.len());
    out.push(ENTRY_VERSION);
    out.push(entry_type as u8);
    out.extend_from_slice(&integrated_at_ms.to_be_bytes());
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(signature);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits a fixed-size prefix off a slice known to be long enough.
fn split<const N: usize>(bytes: &[u8]) -> ([u8; N], &[u8]) {
    let mut head = [0u8; N];
    let n = N.min(bytes.len());
    head[..n].copy_from_slice(&bytes[..n]);
    (head, &bytes[n..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    fn envelope(payload_type: PayloadType, payload: &[u8]) -> SignedEnvelope {
        crate::dsse::sign(
            payload_type,
            payload.to_vec(),
            &SigningKey::from_bytes(&[3; 32]),
        )
    }

    fn sample() -> LogEntry {
        LogEntry::from_envelope(
            &envelope(PayloadType::Event, b"{\"a\":1}"),
            1_700_000_000_123,
        )
    }

    #[test]
    fn layout_is_as_documented() {
        let e = sample();
        let bytes = e.encode();
        assert_eq!(bytes.len(), ENTRY_HEADER_BYTES + 7);
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes[1], 1);
        assert_eq!(bytes[2..10], 1_700_000_000_123u64.to_be_bytes());
        assert_eq!(&bytes[10..42], e.key_id.as_bytes());
        assert_eq!(bytes[42..106], e.signature);
        assert_eq!(bytes[106..108], [0, 7]);
        assert_eq!(&bytes[108..], b"{\"a\":1}");
        assert_eq!(MAX_ENTRY_BYTES, 32876);
        const { assert!(MAX_ENTRY_BYTES <= u16::MAX as usize) };
    }

    #[test]
    fn round_trips_through_bytes_and_envelope() {
        let key = SigningKey::from_bytes(&[3; 32]);
        for (t, payload) in [
            (PayloadType::Event, &b"{}"[..]),
            (PayloadType::Governance, &b"{\"g\":true}"[..]),
            (PayloadType::Event, &b""[..]),
        ] {
            let env = envelope(t, payload);
            let entry = LogEntry::from_envelope(&env, 42);
            assert_eq!(entry.entry_type, EntryType::from(t));
            assert_eq!(LogEntry::encode_envelope(&env, 42), entry.encode());
            let decoded = LogEntry::decode(&entry.encode()).expect("decode");
            assert_eq!(decoded, entry);
            assert_eq!(decoded.to_envelope(), env);
            assert_eq!(decoded.event_id(), env.event_id());
            decoded
                .to_envelope()
                .verify(&key.verifying_key())
                .expect("signature survives");
        }
        let full = LogEntry {
            payload: vec![b'x'; MAX_PAYLOAD_BYTES],
            ..sample()
        };
        let bytes = full.encode();
        assert_eq!(bytes.len(), MAX_ENTRY_BYTES);
        assert_eq!(LogEntry::decode(&bytes), Ok(full));
    }

    #[test]
    #[should_panic(expected = "over the 32768-byte limit")]
    fn encode_refuses_oversize_payloads() {
        let _ = LogEntry {
            payload: vec![0; MAX_PAYLOAD_BYTES + 1],
            ..sample()
        }
        .encode();
    }

    #[track_caller]
    fn check(bytes: &[u8], want: EntryError) {
        assert_eq!(LogEntry::decode(bytes), Err(want));
    }

    #[test]
    fn decode_is_strict() {
        let good = sample().encode();
        let with = |i: usize, b: u8| {
            let mut v = good.clone();
            v[i] = b;
            v
        };
        check(&[], EntryError::TooShort { len: 0 });
        check(
            &good[..ENTRY_HEADER_BYTES - 1],
            EntryError::TooShort { len: 107 },
        );
        check(&with(0, 0), EntryError::UnsupportedVersion { version: 0 });
        check(&with(0, 2), EntryError::UnsupportedVersion { version: 2 });
        check(&with(1, 0), EntryError::UnknownType { value: 0 });
        check(&with(1, 3), EntryError::UnknownType { value: 3 });
        check(&with(1, 0xff), EntryError::UnknownType { value: 0xff });
        check(
            &good[..good.len() - 1],
            EntryError::LengthMismatch {
                declared: 7,
                actual: 6,
            },
        );
        let mut trailing = good.clone();
        trailing.push(0);
        check(
            &trailing,
            EntryError::LengthMismatch {
                declared: 7,
                actual: 8,
            },
        );
        let mut huge = with(106, 0x80);
        huge[107] = 0x01;
        check(
            &huge,
            EntryError::PayloadTooLarge {
                len: 32769,
                limit: MAX_PAYLOAD_BYTES,
            },
        );
        check(
            &with(106, 0xff),
            EntryError::PayloadTooLarge {
                len: 0xff07,
                limit: MAX_PAYLOAD_BYTES,
            },
        );
        // Header only, zero-length payload: valid.
        let mut empty = good[..ENTRY_HEADER_BYTES].to_vec();
        empty[106] = 0;
        empty[107] = 0;
        assert_eq!(LogEntry::decode(&empty).map(|e| e.payload.len()), Ok(0));
    }

    fn entry_strategy() -> impl Strategy<Value = LogEntry> {
        (
            prop_oneof![Just(EntryType::Event), Just(EntryType::Governance)],
            any::<u64>(),
            any::<[u8; 32]>(),
            proptest::collection::vec(any::<u8>(), 64),
            proptest::collection::vec(any::<u8>(), 0..300),
        )
            .prop_map(
                |(entry_type, integrated_at_ms, key_id, sig, payload)| LogEntry {
                    entry_type,
                    integrated_at_ms,
                    key_id: KeyId::from_bytes(key_id),
                    signature: sig.try_into().unwrap_or([0; 64]),
                    payload,
                },
            )
    }

    proptest! {
        #[test]
        fn encode_decode_round_trip(entry in entry_strategy()) {
            let bytes = entry.encode();
            prop_assert_eq!(LogEntry::decode(&bytes), Ok(entry.clone()));
            prop_assert_eq!(LogEntry::from_envelope(&entry.to_envelope(), entry.integrated_at_ms), entry);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Ok(entry) = LogEntry::decode(&bytes) {
                // One encoding per value.
                prop_assert_eq!(entry.encode(), bytes);
            }
        }

        #[test]
        fn decode_never_panics_on_edited_entries(
            entry in entry_strategy(),
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = entry.encode();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            if let Ok(decoded) = LogEntry::decode(&bytes) {
                prop_assert_eq!(decoded.encode(), bytes);
            }
        }
    }
}
