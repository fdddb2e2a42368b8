//! Ed25519 keys, key IDs, event IDs and key files.
//!
//! - A [`KeyId`] is the BLAKE3 hash of the 32 raw public-key bytes, written as 64
//!   lowercase hex digits.
//! - An [`EventId`] is the BLAKE3 hash of a DSSE payload exactly as submitted,
//!   written the same way.
//! - Public keys on the wire are canonical standard base64 (RFC 4648 §4, with
//!   padding) of the 32-byte compressed Edwards point; [`parse_public_key`]
//!   rejects small-order ("weak") keys, which could sign for any message.
//!
//! Pure: no file I/O and no randomness here (key generation and key files
//! are the `lineage` binary's `keyfile` module).

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;

/// Decodes canonical standard base64: padding required, no trailing bits, no
/// whitespace; exactly the texts that are `encode_base64` of something (a
/// property test holds it to that). One pass, with SIMD where the CPU has it
/// (`base64-simd`, which also refuses non-zero trailing bits and misplaced
/// padding): an envelope's payload is most of its bytes.
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    base64_simd::STANDARD.decode_to_vec(text).ok()
}

/// [`decode_base64`] of a text that must decode to exactly `N` bytes,
/// without allocating: `None` for any other text.
pub(crate) fn decode_base64_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    let b64 = base64_simd::STANDARD;
    // Checked first: `decode` asserts that its output has room.
    if b64.decoded_length(text.as_bytes()).ok()? != N {
        return None;
    }
    let mut out = [0u8; N];
    b64.decode(text.as_bytes(), base64_simd::Out::from_slice(&mut out))
        .ok()?;
    Some(out)
}

/// Standard base64 with padding.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(bytes)
}

/// Keeps at most 80 characters of untrusted input for an error message.
pub(crate) fn truncate(text: &str) -> String {
    text.chars().take(80).collect()
}

/// Error for text that is not a 64-digit lowercase hex ID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must be 64 lowercase hex digits, got {input:?}")]
pub struct IdParseError {
    /// Which kind of ID was expected: `"key ID"` or `"event ID"`.
    pub what: &'static str,
    /// The rejected text (at most 80 characters of it).
    pub input: String,
}

fn parse_hex_id(text: &str, what: &'static str) -> Result<[u8; 32], IdParseError> {
    let err = || IdParseError {
        what,
        input: truncate(text),
    };
    if text.len() != 64 {
        return Err(err());
    }
    // One pass, lowercase digits only (the hex crate also takes uppercase,
    // and checked again what this function had checked). Each digit is
    // looked up in a table whose invalid entries have a high bit set; the
    // bits of all 64 are checked once, after the loop, so the loop has no
    // branch per digit.
    let mut out = [0u8; 32];
    let mut invalid = 0u8;
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
        let &[hi, lo] = pair else {
            return Err(err());
        };
        // A u8 indexes the 256 entries: no bounds check, no panic.
        let (hi, lo) = (HEX_DIGITS[usize::from(hi)], HEX_DIGITS[usize::from(lo)]);
        invalid |= hi | lo;
        *byte = (hi << 4) | (lo & 0x0f);
    }
    if invalid & 0xf0 != 0 {
        return Err(err());
    }
    Ok(out)
}

/// The value of each lowercase hex digit; 0xff for every other byte.
static HEX_DIGITS: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Identifies an Ed25519 public key: BLAKE3 of its 32 raw bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 32]);

impl KeyId {
    /// The key ID of `key`.
    pub fn from_public_key(key: &VerifyingKey) -> KeyId {
        KeyId(*blake3::hash(key.as_bytes()).as_bytes())
    }

    /// Wraps 32 hash bytes (for example, read back from a log entry).
    pub fn from_bytes(bytes: [u8; 32]) -> KeyId {
        KeyId(bytes)
    }

    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = IdParseError;

    /// Parses exactly 64 lowercase hex digits.
    fn from_str(s: &str) -> Result<KeyId, IdParseError> {
        parse_hex_id(s, "key ID").map(KeyId)
    }
}

/// Identifies an event (or any DSSE payload): BLAKE3 of the payload bytes exactly
/// as submitted.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventId([u8; 32]);

impl EventId {
    /// The ID of `payload`.
    pub fn of_payload(payload: &[u8]) -> EventId {
        EventId(*blake3::hash(payload).as_bytes())
    }

    /// Wraps 32 hash bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> EventId {
        EventId(bytes)
    }

    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({self})")
    }
}

impl FromStr for EventId {
    type Err = IdParseError;

    /// Parses exactly 64 lowercase hex digits.
    fn from_str(s: &str) -> Result<EventId, IdParseError> {
        parse_hex_id(s, "event ID").map(EventId)
    }
}

/// Why a public key was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not canonical standard base64 with padding.
    #[error("public key is not canonical standard base64: {input:?}")]
    NotBase64 {
        /// The rejected text (at most 80 characters of it).
        input: String,
    },
    /// Decoded to the wrong number of bytes.
    #[error("public key is {len} bytes, expected 32")]
    WrongLength {
        /// Decoded length.
        len: usize,
    },
    /// The bytes are not the encoding of a curve point.
    #[error("public key is not a valid Ed25519 point")]
    InvalidPoint,
    /// The point has small order: a signature under it can verify for many messages.
    #[error("public key is a weak (small-order) Ed25519 point")]
    WeakKey,
}

/// Parses a public key from the wire: canonical standard base64 of 32 bytes that
/// decode to a curve point of large order.
///
/// # Errors
/// [`KeyError`] naming the first rule the text breaks.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, KeyError> {
    let bytes = decode_base64(text).ok_or_else(|| KeyError::NotBase64 {
        input: truncate(text),
    })?;
    let bytes: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::WrongLength { len: bytes.len() })?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPoint)?;
    if key.is_weak() {
        return Err(KeyError::WeakKey);
    }
    Ok(key)
}

/// The wire form of a public key: standard base64 of its 32 bytes.
pub fn public_key_base64(key: &VerifyingKey) -> String {
    encode_base64(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;

    const HEX: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[track_caller]
    fn check_id(text: &str, ok: bool) {
        assert_eq!(text.parse::<KeyId>().is_ok(), ok, "key ID {text:?}");
        assert_eq!(text.parse::<EventId>().is_ok(), ok, "event ID {text:?}");
    }

    #[test]
    fn ids_parse_exactly_64_lowercase_hex() {
        check_id(HEX, true);
        check_id(&HEX.to_uppercase(), false);
        check_id(&HEX.replace('a', "A"), false);
        check_id(&HEX[..63], false);
        check_id(&format!("{HEX}0"), false);
        check_id(&format!("{}g", &HEX[..63]), false);
        check_id(&format!(" {}", &HEX[..63]), false);
        check_id(&format!("+{}", &HEX[..63]), false);
        check_id(&format!("{}é", &HEX[..62]), false);
        check_id("", false);
    }

    #[test]
    fn ids_display_round_trip() {
        let id: EventId = HEX.parse().expect("valid");
        assert_eq!(id.to_string(), HEX);
        assert_eq!(format!("{id:?}"), format!("EventId({HEX})"));
        let key_id: KeyId = HEX.parse().expect("valid");
        assert_eq!(key_id.to_string(), HEX);
        assert_eq!(key_id.as_bytes()[1], 0x11);
    }

    #[test]
    fn event_id_is_blake3_of_the_exact_bytes() {
        assert_eq!(
            EventId::of_payload(b"").to_string(),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
        assert_ne!(EventId::of_payload(b"{}"), EventId::of_payload(b"{ }"));
    }

    #[test]
    fn key_id_is_blake3_of_the_public_key() {
        let vk = key(1).verifying_key();
        assert_eq!(
            KeyId::from_public_key(&vk).as_bytes(),
            blake3::hash(vk.as_bytes()).as_bytes()
        );
    }

    #[track_caller]
    fn check_key(text: &str, want: Result<(), KeyError>) {
        assert_eq!(parse_public_key(text).map(|_| ()), want, "{text:?}");
    }

    #[test]
    fn public_keys_are_strict() {
        let vk = key(7).verifying_key();
        let text = public_key_base64(&vk);
        assert_eq!(parse_public_key(&text), Ok(vk));
        check_key(&text, Ok(()));
        check_key(
            text.trim_end_matches('='),
            Err(KeyError::NotBase64 {
                input: text.trim_end_matches('=').into(),
            }),
        );
        check_key(
            &format!("{text}\n"),
            Err(KeyError::NotBase64 {
                input: format!("{text}\n"),
            }),
        );
        let urlsafe = encode_base64(&[0xfb; 32])
            .replace('+', "-")
            .replace('/', "_");
        check_key(
            &urlsafe,
            Err(KeyError::NotBase64 {
                input: urlsafe.clone(),
            }),
        );
        // Non-zero trailing bits: the last character of 32 bytes carries 2 spare bits.
        let spare = format!("{}B=", "A".repeat(42));
        check_key(
            &spare,
            Err(KeyError::NotBase64 {
                input: spare.clone(),
            }),
        );
        check_key(
            &encode_base64(&[1; 31]),
            Err(KeyError::WrongLength { len: 31 }),
        );
        check_key(
            &encode_base64(&[1; 33]),
            Err(KeyError::WrongLength { len: 33 }),
        );
        check_key("", Err(KeyError::WrongLength { len: 0 }));
    }

    #[test]
    fn weak_keys_are_rejected() {
        // The identity (0x01 then zeros) and the all-zero point (order 4) both have small order.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        check_key(&encode_base64(&identity), Err(KeyError::WeakKey));
        check_key(&encode_base64(&[0; 32]), Err(KeyError::WeakKey));
        // The point of order 2 (y = -1).
        let mut minus_one = [0xffu8; 32];
        minus_one[0] = 0xec;
        minus_one[31] = 0x7f;
        check_key(&encode_base64(&minus_one), Err(KeyError::WeakKey));
    }

    #[test]
    fn invalid_points_are_rejected() {
        // y = 2 is not the y-coordinate of any curve point.
        let mut two = [0u8; 32];
        two[0] = 2;
        check_key(&encode_base64(&two), Err(KeyError::InvalidPoint));
    }

    /// The definitions the one-pass readers replaced.
    fn decode_base64_by_reencoding(text: &str) -> Option<Vec<u8>> {
        let bytes = STANDARD.decode(text).ok()?;
        (STANDARD.encode(&bytes) == text).then_some(bytes)
    }

    fn parse_hex_id_by_the_hex_crate(text: &str) -> Option<[u8; 32]> {
        let lower = text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut out = [0u8; 32];
        (text.len() == 64 && lower && hex::decode_to_slice(text, &mut out).is_ok()).then_some(out)
    }

    /// `text` with each `(at, byte)` of `edits` written over it.
    fn edited(mut text: Vec<u8>, edits: Vec<(prop::sample::Index, u8)>) -> Vec<u8> {
        for (at, c) in edits {
            if !text.is_empty() {
                let i = at.index(text.len());
                text[i] = c;
            }
        }
        text
    }

    proptest! {
        #[test]
        fn decode_base64_takes_exactly_the_canonical_texts(
            bytes in proptest::collection::vec(any::<u8>(), 0..40),
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), prop::sample::select(b"AB+/=_- \n\x00QZaz09".to_vec())),
                0..3,
            ),
            cut in 0usize..3,
        ) {
            let mut text = edited(encode_base64(&bytes).into_bytes(), edits);
            text.truncate(text.len().saturating_sub(cut));
            let text = String::from_utf8(text).expect("ASCII");
            prop_assert_eq!(decode_base64(&text), decode_base64_by_reencoding(&text), "{:?}", text);
        }

        #[test]
        fn fixed_length_base64_decodes_as_the_general_reader(
            bytes in proptest::collection::vec(any::<u8>(), 62..67),
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), prop::sample::select(b"AB+/=_ Q".to_vec())),
                0..2,
            ),
        ) {
            let text = String::from_utf8(edited(encode_base64(&bytes).into_bytes(), edits)).expect("ASCII");
            let want = decode_base64(&text).and_then(|b| <[u8; 64]>::try_from(b).ok());
            prop_assert_eq!(decode_base64_array::<64>(&text), want, "{:?}", text);
        }

        #[test]
        fn hex_ids_parse_as_the_hex_crate_does(
            bytes in any::<[u8; 32]>(),
            edits in proptest::collection::vec(
                (any::<prop::sample::Index>(), prop::sample::select(b"0af9gAF/:`G\xc3".to_vec())),
                0..3,
            ),
            cut in 0usize..2,
        ) {
            let mut text = edited(hex::encode(bytes).into_bytes(), edits);
            text.truncate(text.len() - cut);
            let text = String::from_utf8_lossy(&text).into_owned();
            let got = parse_hex_id(&text, "key ID").ok();
            prop_assert_eq!(got, parse_hex_id_by_the_hex_crate(&text), "{:?}", text);
        }
    }
}
