//! C2SP signed notes with Ed25519 signatures (c2sp.org/signed-note, signature type `0x01`).
//!
//! A note is a text ending in a newline, a blank line, and one or more
//! signature lines `— <key name> base64(key ID || signature)`. [`Note::parse`]
//! splits a note without trusting it; [`open`] also verifies it against known
//! keys, which is the only way a caller should read a note's text.
//! [`NoteSigner::sign`] makes a note, and [`fmt::Display`] on [`Note`] writes
//! a parsed note back byte for byte.
//!
//! Following the spec's "Signatures" section: a signature counts only when its
//! key name *and* key ID both match a known key; other signatures (a witness's
//! cosignature, a rotated key) are ignored; a known key's signature that fails
//! to verify rejects the whole note; and a note with no verified signature is
//! rejected. Ed25519 signatures are checked with
//! [`VerifyingKey::verify_strict`], which refuses small-order keys and
//! points and non-canonical scalars.
//!
//! Only Ed25519 (type `0x01`) keys are known to [`open`]: cosignature lines
//! (type `0x04`) are opaque unknown signatures here, and are checked by
//! [`crate::cosignature`] and [`crate::policy`].

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

/// Signature type identifier byte of Ed25519 note keys (c2sp.org/signed-note, "Signature types").
pub const ED25519_SIGNATURE_TYPE: u8 = 0x01;

/// Most signature lines [`Note::parse`] accepts (the spec requires at least 16).
pub const MAX_SIGNATURES: usize = 100;

/// Start of every signature line: em dash (U+2014) and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Longest input echoed back in an error.
const ECHO_CHARS: usize = 100;

fn echo(s: &str) -> String {
    s.chars().take(ECHO_CHARS).collect()
}

/// Why a note, key name or verifier key is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    /// The note is not valid UTF-8.
    #[error("note is not valid UTF-8 (valid up to byte {valid_up_to})")]
    NotUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The note or text holds an ASCII control character other than newline.
    #[error("control character {byte:#04x} at byte {offset}")]
    ControlCharacter {
        /// The control character.
        byte: u8,
        /// Its byte offset.
        offset: usize,
    },
    /// The text to sign is empty or does not end in a newline.
    #[error("note text does not end in a newline: {text:?}")]
    TextNotNewlineTerminated {
        /// The end of the rejected text (its last 100 characters at most).
        text: String,
    },
    /// No blank line separates the text from a signature block.
    #[error("note has no blank line before its signatures")]
    MissingSignatureBlock,
    /// Nothing follows the blank line, or the last signature line lacks its newline.
    #[error("note signature block is empty or does not end in a newline")]
    UnterminatedSignatureBlock,
    /// A signature line is not `— <name> <base64>` with a valid name and canonical
    /// standard base64 of at least 5 bytes.
    #[error("malformed signature line {number}: {line:?}")]
    MalformedSignatureLine {
        /// One-based number of the line within the signature block.
        number: usize,
        /// The line (truncated to 100 characters).
        line: String,
    },
    /// More than [`MAX_SIGNATURES`] signature lines.
    #[error("note has more than {max} signatures", max = MAX_SIGNATURES)]
    TooManySignatures,
    /// A key name is empty or contains a Unicode space or `+`.
    #[error("invalid key name {name:?}: must be non-empty, without spaces or '+'")]
    InvalidKeyName {
        /// The rejected name (truncated to 100 characters).
        name: String,
    },
    /// A verifier key is not `<name>+<8 lowercase hex>+<base64>`.
    #[error("verifier key is not <name>+<key id hex>+<base64 key>: {vkey:?}")]
    MalformedVerifierKey {
        /// The rejected verifier key (truncated to 100 characters).
        vkey: String,
    },
    /// A verifier key's key material is not the type byte `0x01` and 32 bytes.
    #[error("verifier key is not Ed25519: type byte {type_byte:?}, {len} key bytes")]
    UnsupportedKeyType {
        /// The first decoded byte, if any.
        type_byte: Option<u8>,
        /// Number of key bytes after the type byte.
        len: usize,
    },
    /// A verifier key's 32 bytes are not an Ed25519 point.
    #[error("verifier key for {name:?} is not a valid Ed25519 public key")]
    InvalidPublicKey {
        /// The key name.
        name: String,
    },
    /// A verifier key's key ID does not match its name and public key.
    #[error(
        "verifier key {name:?} claims key ID {claimed:08x}, but its key hashes to {computed:08x}"
    )]
    KeyIdMismatch {
        /// The key name.
        name: String,
        /// Key ID written in the verifier key.
        claimed: u32,
        /// Key ID computed from the name and public key.
        computed: u32,
    },
    /// Two known keys share a name and key ID, so a signature could not be attributed.
    #[error("two verifiers share name {name:?} and key ID {key_id:08x}")]
    AmbiguousVerifiers {
        /// The shared key name.
        name: String,
        /// The shared key ID.
        key_id: u32,
    },
    /// A signature by a known key does not verify.
    #[error("signature by known key {name:?} ({key_id:08x}) does not verify")]
    InvalidSignature {
        /// The key name.
        name: String,
        /// The key ID.
        key_id: u32,
    },
    /// No signature line is by a known key.
    #[error("note has no signature by a known key")]
    NoKnownSignature,
}

/// Whether `name` may be a key name: non-empty, without Unicode spaces or `+`.
pub fn is_valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '+')
}

fn check_key_name(name: &str) -> Result<(), NoteError> {
    if is_valid_key_name(name) {
        Ok(())
    } else {
        Err(NoteError::InvalidKeyName { name: echo(name) })
    }
}

/// Rejects ASCII control characters other than newline (c2sp.org/signed-note, "Format").
fn check_no_control_characters(text: &str) -> Result<(), NoteError> {
    match text
        .bytes()
        .enumerate()
        .find(|(_, b)| *b < 0x20 && *b != b'\n')
    {
        Some((offset, byte)) => Err(NoteError::ControlCharacter { byte, offset }),
        None => Ok(()),
    }
}

/// Key ID of an Ed25519 note key: `SHA-256(name || 0x0A || 0x01 || public key)[:4]`, big-endian.
pub fn ed25519_key_id(name: &str, key: &VerifyingKey) -> u32 {
    typed_key_id(name, ED25519_SIGNATURE_TYPE, key)
}

/// The key ID of an Ed25519 key of signature type `type_byte`: the first four
/// bytes of SHA-256(name || 0x0A || type || key), big-endian (every key type
/// of c2sp.org/signed-note derives it this way).
pub(crate) fn typed_key_id(name: &str, type_byte: u8, key: &VerifyingKey) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', type_byte]);
    h.update(key.as_bytes());
    let digest = h.finalize();
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// The verifier key string `<name>+<hex key ID>+<base64(type || key)>`.
pub(crate) fn typed_vkey(name: &str, key_id: u32, type_byte: u8, key: &VerifyingKey) -> String {
    let mut bytes = Vec::with_capacity(33);
    bytes.push(type_byte);
    bytes.extend_from_slice(key.as_bytes());
    format!("{name}+{key_id:08x}+{}", STANDARD.encode(bytes))
}

/// A verifier key split into its three parts, the name checked, the key ID decoded:
/// the steps every key type shares (c2sp.org/signed-note "Verifier keys").
pub(crate) struct VkeyParts<'a> {
    /// The key name (valid).
    pub(crate) name: &'a str,
    /// The key ID the vkey claims.
    pub(crate) claimed: u32,
    /// The decoded key material: type byte, then the public key.
    pub(crate) material: Vec<u8>,
}

impl<'a> VkeyParts<'a> {
    /// Splits `<name>+<key ID as 8 lowercase hex>+<base64(type || key)>`.
    ///
    /// Errors: [`NoteError::MalformedVerifierKey`] for the shape, hex or base64,
    /// [`NoteError::InvalidKeyName`] for the name.
    pub(crate) fn split(vkey: &'a str) -> Result<VkeyParts<'a>, NoteError> {
        let malformed = || NoteError::MalformedVerifierKey { vkey: echo(vkey) };
        let (name, rest) = vkey.split_once('+').ok_or_else(malformed)?;
        let (id_hex, key_b64) = rest.split_once('+').ok_or_else(malformed)?;
        check_key_name(name)?;
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if id_hex.len() != 8 || !id_hex.bytes().all(lower_hex) {
            return Err(malformed());
        }
        let claimed = u32::from_str_radix(id_hex, 16).map_err(|_| malformed())?;
        let material = STANDARD.decode(key_b64).map_err(|_| malformed())?;
        Ok(VkeyParts {
            name,
            claimed,
            material,
        })
    }

    /// The type byte, if any.
    pub(crate) fn type_byte(&self) -> Option<u8> {
        self.material.first().copied()
    }

    /// The Ed25519 public key, when the material is `type_byte` and 32 bytes of a point.
    ///
    /// Errors: [`NoteError::UnsupportedKeyType`], [`NoteError::InvalidPublicKey`].
    pub(crate) fn ed25519_key(&self, type_byte: u8) -> Result<VerifyingKey, NoteError> {
        let key_bytes = match self.material.split_first() {
            Some((&t, key)) if t == type_byte => <[u8; 32]>::try_from(key).ok(),
            _ => None,
        }
        .ok_or(NoteError::UnsupportedKeyType {
            type_byte: self.type_byte(),
            len: self.material.len().saturating_sub(1),
        })?;
        VerifyingKey::from_bytes(&key_bytes).map_err(|_| NoteError::InvalidPublicKey {
            name: echo(self.name),
        })
    }

    /// Checks the claimed key ID against the one computed from the name and key.
    ///
    /// Errors: [`NoteError::KeyIdMismatch`].
    pub(crate) fn check_key_id(&self, computed: u32) -> Result<(), NoteError> {
        if computed != self.claimed {
            return Err(NoteError::KeyIdMismatch {
                name: echo(self.name),
                claimed: self.claimed,
                computed,
            });
        }
        Ok(())
    }
}

/// One signature line of a note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// Key name.
    pub name: String,
    /// Key ID: the first four decoded bytes, big-endian.
    pub key_id: u32,
    /// The signature bytes after the key ID (64 for Ed25519).
    pub signature: Vec<u8>,
}

impl NoteSignature {
    /// Parses one signature line, `— <name> base64(key ID || signature)`, without its
    /// newline: the grammar [`Note::parse`] applies to each line of a signature block
    /// (a valid key name; canonical padded standard base64 of a 4-byte key ID and at
    /// least one signature byte). Whatever parses displays back to the same text.
    ///
    /// Returns `None` for anything else. Used for signature lines that travel without
    /// their note, such as a witness's `add-checkpoint` response (c2sp.org/tlog-witness).
    pub fn parse_line(line: &str) -> Option<NoteSignature> {
        if line.bytes().any(|b| b < 0x20) {
            return None;
        }
        parse_signature_line(line)
    }
}

impl fmt::Display for NoteSignature {
    /// The signature line, `— <name> base64(key ID || signature)`, without its newline.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = Vec::with_capacity(4 + self.signature.len());
        bytes.extend_from_slice(&self.key_id.to_be_bytes());
        bytes.extend_from_slice(&self.signature);
        write!(
            f,
            "{SIGNATURE_PREFIX}{} {}",
            self.name,
            STANDARD.encode(bytes)
        )
    }
}

/// A signed note: its text (ending in a newline) and its signature lines.
///
/// A `Note` from [`Note::parse`] is not verified; read the text of a note from
/// [`open`] only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The text, including its final newline but not the blank separator line.
    pub text: String,
    /// The signature lines in order.
    pub signatures: Vec<NoteSignature>,
}

impl Note {
    /// Splits a note into text and signature lines without verifying anything.
    ///
    /// Strict per c2sp.org/signed-note: valid UTF-8; no control characters
    /// but newline; the text is everything up to the last blank line; then 1
    /// to [`MAX_SIGNATURES`] lines `— <name> <base64>` each ending in a
    /// newline, with a valid key name and canonical standard base64 (padded,
    /// zero trailing bits) of a 4-byte key ID and at least one signature byte.
    /// Whatever parses displays back to the same bytes.
    ///
    /// # Errors
    /// A [`NoteError`] naming the first problem found.
    pub fn parse(note: &[u8]) -> Result<Note, NoteError> {
        let note = std::str::from_utf8(note).map_err(|e| NoteError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        check_no_control_characters(note)?;
        let split = note.rfind("\n\n").ok_or(NoteError::MissingSignatureBlock)?;
        let (text, block) = (&note[..=split], &note[split + 2..]);
        let block = block
            .strip_suffix('\n')
            .ok_or(NoteError::UnterminatedSignatureBlock)?;
        let mut signatures = Vec::new();
        for (i, line) in block.split('\n').enumerate() {
            if i >= MAX_SIGNATURES {
                return Err(NoteError::TooManySignatures);
            }
            signatures.push(parse_signature_line(line).ok_or_else(|| {
                NoteError::MalformedSignatureLine {
                    number: i + 1,
                    line: echo(line),
                }
            })?);
        }
        Ok(Note {
            text: text.to_owned(),
            signatures,
        })
    }
}

fn parse_signature_line(line: &str) -> Option<NoteSignature> {
    let (name, b64) = line.strip_prefix(SIGNATURE_PREFIX)?.split_once(' ')?;
    if !is_valid_key_name(name) {
        return None;
    }
    let bytes = STANDARD.decode(b64).ok()?;
    let (id, signature) = bytes.split_first_chunk::<4>()?;
    if signature.is_empty() {
        return None;
    }
    Some(NoteSignature {
        name: name.to_owned(),
        key_id: u32::from_be_bytes(*id),
        signature: signature.to_vec(),
    })
}

impl fmt::Display for Note {
    /// The note: text, blank line, one line per signature.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)?;
        f.write_str("\n")?;
        for sig in &self.signatures {
            writeln!(f, "{sig}")?;
        }
        Ok(())
    }
}

/// A known Ed25519 note key: a key name, its key ID and public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    key_id: u32,
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for `key` under `name`; the key ID is computed from both.
    ///
    /// # Errors
    /// [`NoteError::InvalidKeyName`] for an empty name or one with spaces or `+`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<NoteVerifier, NoteError> {
        check_key_name(name)?;
        Ok(NoteVerifier {
            name: name.to_owned(),
            key_id: ed25519_key_id(name, &key),
            key,
        })
    }

    /// Parses a verifier key `<name>+<key ID as 8 lowercase hex>+<base64(0x01 || 32-byte key)>`,
    /// the format of Go's `golang.org/x/mod/sumdb/note`.
    ///
    /// # Errors
    /// [`NoteError::MalformedVerifierKey`] when the shape, hex or base64 is
    /// wrong, [`NoteError::InvalidKeyName`], [`NoteError::UnsupportedKeyType`]
    /// for a non-Ed25519 key, [`NoteError::InvalidPublicKey`], and
    /// [`NoteError::KeyIdMismatch`] when the key ID does not match the name and key.
    pub fn from_vkey(vkey: &str) -> Result<NoteVerifier, NoteError> {
        let parts = VkeyParts::split(vkey)?;
        let key = parts.ed25519_key(ED25519_SIGNATURE_TYPE)?;
        let verifier = NoteVerifier::new(parts.name, key)?;
        parts.check_key_id(verifier.key_id)?;
        Ok(verifier)
    }

    /// The verifier key string that [`NoteVerifier::from_vkey`] parses.
    pub fn vkey(&self) -> String {
        typed_vkey(&self.name, self.key_id, ED25519_SIGNATURE_TYPE, &self.key)
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The Ed25519 public key.
    pub fn public_key(&self) -> &VerifyingKey {
        &self.key
    }

    fn is_signer_of(&self, sig: &NoteSignature) -> bool {
        sig.name == self.name && sig.key_id == self.key_id
    }

    /// Whether `signature` is a valid strict Ed25519 signature of `text` by this key.
    fn verifies(&self, text: &str, signature: &[u8]) -> bool {
        <[u8; 64]>::try_from(signature).is_ok_and(|bytes| {
            self.key
                .verify_strict(text.as_bytes(), &Signature::from_bytes(&bytes))
                .is_ok()
        })
    }
}

/// An Ed25519 note key that signs: a key name and a signing key.
#[derive(Debug, Clone)]
pub struct NoteSigner {
    verifier: NoteVerifier,
    key: SigningKey,
}

impl NoteSigner {
    /// A signer for `key` under `name`.
    ///
    /// # Errors
    /// [`NoteError::InvalidKeyName`] for an empty name or one with spaces or `+`.
    pub fn new(name: &str, key: SigningKey) -> Result<NoteSigner, NoteError> {
        Ok(NoteSigner {
            verifier: NoteVerifier::new(name, key.verifying_key())?,
            key,
        })
    }

    /// The key name.
    pub fn name(&self) -> &str {
        self.verifier.name()
    }

    /// The key ID.
    pub fn key_id(&self) -> u32 {
        self.verifier.key_id()
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        self.verifier.clone()
    }

    /// The signature line this key makes over `text` (deterministic, RFC 8032).
    ///
    /// # Errors
    /// [`NoteError::TextNotNewlineTerminated`] when `text` is empty or does not end
    /// in a newline, [`NoteError::ControlCharacter`] for a control character other
    /// than newline.
    pub fn signature(&self, text: &str) -> Result<NoteSignature, NoteError> {
        if !text.ends_with('\n') {
            let tail: Vec<char> = text.chars().rev().take(ECHO_CHARS).collect();
            return Err(NoteError::TextNotNewlineTerminated {
                text: tail.into_iter().rev().collect(),
            });
        }
        check_no_control_characters(text)?;
        Ok(NoteSignature {
            name: self.verifier.name.clone(),
            key_id: self.verifier.key_id,
            signature: self.key.sign(text.as_bytes()).to_bytes().to_vec(),
        })
    }

    /// The signed note: `text`, a blank line, and this key's signature line.
    ///
    /// # Errors
    /// As [`NoteSigner::signature`].
    pub fn sign(&self, text: &str) -> Result<String, NoteError> {
        let note = Note {
            text: text.to_owned(),
            signatures: vec![self.signature(text)?],
        };
        Ok(note.to_string())
    }
}

/// Parses `note` and verifies it against the known keys `verifiers`.
///
/// Returns the note (all its signatures, unknown ones included) and the
/// positions in `verifiers` of the keys whose signature verified, in
/// `verifiers` order. A signature is by a known key when both its name and
/// key ID match; other signatures are ignored.
///
/// # Errors
/// Any [`Note::parse`] error; [`NoteError::AmbiguousVerifiers`] when two
/// verifiers share a name and key ID; [`NoteError::InvalidSignature`] when a
/// signature by a known key does not verify; [`NoteError::NoKnownSignature`]
/// when no signature is by a known key.
pub fn open(note: &[u8], verifiers: &[NoteVerifier]) -> Result<(Note, Vec<usize>), NoteError> {
    for (i, v) in verifiers.iter().enumerate() {
        if verifiers[..i]
            .iter()
            .any(|w| w.name == v.name && w.key_id == v.key_id)
        {
            return Err(NoteError::AmbiguousVerifiers {
                name: echo(&v.name),
                key_id: v.key_id,
            });
        }
    }
    let note = Note::parse(note)?;
    let mut verified = vec![false; verifiers.len()];
    for sig in &note.signatures {
        let Some(pos) = verifiers.iter().position(|v| v.is_signer_of(sig)) else {
            continue;
        };
        if !verifiers[pos].verifies(&note.text, &sig.signature) {
            return Err(NoteError::InvalidSignature {
                name: echo(&sig.name),
                key_id: sig.key_id,
            });
        }
        verified[pos] = true;
    }
    let verified: Vec<usize> = (0..verifiers.len()).filter(|i| verified[*i]).collect();
    if verified.is_empty() {
        return Err(NoteError::NoKnownSignature);
    }
    Ok((note, verified))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signer(name: &str, seed: &str) -> NoteSigner {
        let key = SigningKey::from_bytes(&Sha256::digest(seed.as_bytes()).into());
        NoteSigner::new(name, key).expect("valid name")
    }

    fn log() -> NoteSigner {
        signer("example.com/tlog-vectors", "tlog test vectors v1")
    }

    fn witness() -> NoteSigner {
        signer("witness.example/test", "tlog test witness v1")
    }

    const LOG_VKEY: &str =
        "example.com/tlog-vectors+c7055012+AWS3D77xm0/Z9kERnXr47h8cUAwVNzTLamOZXFXbB538";
    const WITNESS_VKEY: &str =
        "witness.example/test+811f67cc+ARya9oorcrvlQIdIuaSthYK5z/LI11i2vWESKBttoAzD";

    #[track_caller]
    fn check_open_err(note: &[u8], verifiers: &[NoteVerifier], want: NoteError) {
        assert_eq!(open(note, verifiers).map(|(_, v)| v), Err(want));
    }

    #[test]
    fn vkeys_of_the_vector_keys() {
        assert_eq!(log().verifier().vkey(), LOG_VKEY);
        assert_eq!(log().key_id(), 0xc705_5012);
        assert_eq!(witness().verifier().vkey(), WITNESS_VKEY);
        for vkey in [LOG_VKEY, WITNESS_VKEY] {
            let v = NoteVerifier::from_vkey(vkey).expect("parses");
            assert_eq!(v.vkey(), vkey);
        }
        assert_eq!(
            NoteVerifier::from_vkey(WITNESS_VKEY).map(|v| v.key_id()),
            Ok(0x811f_67cc)
        );
    }

    #[test]
    fn from_vkey_rejects_malformed_keys() {
        let malformed = |vkey: &str| NoteError::MalformedVerifierKey {
            vkey: vkey.to_owned(),
        };
        let cases: Vec<(String, NoteError)> = vec![
            ("".into(), malformed("")),
            ("example.com".into(), malformed("example.com")),
            ("a+c7055012".into(), malformed("a+c7055012")),
            (
                LOG_VKEY.replace("c7055012", "C7055012"),
                malformed(&LOG_VKEY.replace("c7055012", "C7055012")),
            ),
            (
                LOG_VKEY.replace("c7055012", "c705501"),
                malformed(&LOG_VKEY.replace("c7055012", "c705501")),
            ),
            (
                LOG_VKEY.replace("c7055012", "+7055012"),
                malformed(&LOG_VKEY.replace("c7055012", "+7055012")),
            ),
            (
                LOG_VKEY.trim_end_matches('8').to_owned(),
                malformed(LOG_VKEY.trim_end_matches('8')),
            ),
            (
                LOG_VKEY.replace("c7055012", "c7055013"),
                NoteError::KeyIdMismatch {
                    name: "example.com/tlog-vectors".into(),
                    claimed: 0xc705_5013,
                    computed: 0xc705_5012,
                },
            ),
            (
                LOG_VKEY.replace("example.com/tlog-vectors", "example.com/other"),
                NoteError::KeyIdMismatch {
                    name: "example.com/other".into(),
                    claimed: 0xc705_5012,
                    computed: ed25519_key_id("example.com/other", log().verifier().public_key()),
                },
            ),
            (
                LOG_VKEY.replace("example.com/tlog-vectors", "bad name"),
                NoteError::InvalidKeyName {
                    name: "bad name".into(),
                },
            ),
            (
                format!("a+00000000+{}", STANDARD.encode([2u8; 33])),
                NoteError::UnsupportedKeyType {
                    type_byte: Some(2),
                    len: 32,
                },
            ),
            (
                format!("a+00000000+{}", STANDARD.encode([1u8; 32])),
                NoteError::UnsupportedKeyType {
                    type_byte: Some(1),
                    len: 31,
                },
            ),
            (
                "a+00000000+".into(),
                NoteError::UnsupportedKeyType {
                    type_byte: None,
                    len: 0,
                },
            ),
        ];
        for (vkey, want) in cases {
            assert_eq!(NoteVerifier::from_vkey(&vkey), Err(want), "{vkey}");
        }
    }

    #[test]
    fn key_names_follow_the_spec() {
        for bad in ["", "a b", "a+b", "a\tb", "a\u{a0}b", "a\u{3000}b", "a\nb"] {
            assert!(!is_valid_key_name(bad), "{bad:?}");
            let key = SigningKey::from_bytes(&[7; 32]);
            assert_eq!(
                NoteSigner::new(bad, key).map(|s| s.key_id()),
                Err(NoteError::InvalidKeyName { name: bad.into() })
            );
        }
        for good in ["a", "example.com/log", "quasimodo.example/salvatore", "é/—"] {
            assert!(is_valid_key_name(good), "{good:?}");
        }
    }

    #[test]
    fn sign_then_open() {
        let log = log();
        let note = log.sign("hello\n\nworld\n").expect("signs");
        assert!(note.starts_with("hello\n\nworld\n\n\u{2014} example.com/tlog-vectors xwVQE"));
        let (parsed, verified) = open(note.as_bytes(), &[log.verifier()]).expect("opens");
        assert_eq!(parsed.text, "hello\n\nworld\n");
        assert_eq!(verified, vec![0]);
        assert_eq!(parsed.to_string(), note);
    }

    #[test]
    fn sign_rejects_bad_text() {
        let log = log();
        assert_eq!(
            log.sign("no newline"),
            Err(NoteError::TextNotNewlineTerminated {
                text: "no newline".into()
            })
        );
        assert_eq!(
            log.sign(""),
            Err(NoteError::TextNotNewlineTerminated { text: "".into() })
        );
        assert_eq!(
            log.sign("a\r\n"),
            Err(NoteError::ControlCharacter {
                byte: b'\r',
                offset: 1
            })
        );
    }

    #[test]
    fn cosignatures_and_multiple_verifiers() {
        let (log, witness) = (log(), witness());
        let text = "example.com/tlog-vectors\n1\n2zQm6HgGjSjSabbIcXIyLOU3K2V1bQeJAB00g19gHAM=\n";
        let note = Note {
            text: text.into(),
            signatures: vec![
                log.signature(text).expect("signs"),
                witness.signature(text).expect("signs"),
            ],
        }
        .to_string();
        let both = [witness.verifier(), log.verifier()];
        assert_eq!(open(note.as_bytes(), &both).map(|(_, v)| v), Ok(vec![0, 1]));
        assert_eq!(
            open(note.as_bytes(), &both[1..]).map(|(_, v)| v),
            Ok(vec![0])
        );
        check_open_err(note.as_bytes(), &[], NoteError::NoKnownSignature);
        check_open_err(
            note.as_bytes(),
            &[log.verifier(), log.verifier()],
            NoteError::AmbiguousVerifiers {
                name: log.name().into(),
                key_id: log.key_id(),
            },
        );
    }

    #[test]
    fn same_name_or_same_id_alone_is_unknown() {
        let log = log();
        let text = "t\n";
        let impostor = signer(log.name(), "another seed");
        assert_ne!(impostor.key_id(), log.key_id());
        let note = impostor.sign(text).expect("signs");
        check_open_err(
            note.as_bytes(),
            &[log.verifier()],
            NoteError::NoKnownSignature,
        );

        // Same key ID, other name: also unknown, even though the bytes verify under the log key.
        let mut sig = log.signature(text).expect("signs");
        sig.name = "other.example/name".into();
        let note = Note {
            text: text.into(),
            signatures: vec![sig],
        }
        .to_string();
        check_open_err(
            note.as_bytes(),
            &[log.verifier()],
            NoteError::NoKnownSignature,
        );
    }

    #[test]
    fn a_bad_known_signature_rejects_the_note() {
        let (log, witness) = (log(), witness());
        let text = "t\n";
        let mut bad = log.signature(text).expect("signs");
        bad.signature[10] ^= 1;
        let good_witness = witness.signature(text).expect("signs");
        let note = Note {
            text: text.into(),
            signatures: vec![good_witness, bad],
        }
        .to_string();
        let want = NoteError::InvalidSignature {
            name: log.name().into(),
            key_id: log.key_id(),
        };
        check_open_err(
            note.as_bytes(),
            &[witness.verifier(), log.verifier()],
            want.clone(),
        );
        // A known key's signature of the wrong length is a bad signature, not malformed.
        let mut short = log.signature(text).expect("signs");
        short.signature.truncate(63);
        let note = Note {
            text: text.into(),
            signatures: vec![short],
        }
        .to_string();
        check_open_err(note.as_bytes(), &[log.verifier()], want);
    }

    #[test]
    fn non_canonical_signature_scalar_is_rejected() {
        // s + L is the same signature with a non-canonical scalar: malleability that must fail.
        const L: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let log = log();
        let text = "t\n";
        let mut sig = log.signature(text).expect("signs");
        let mut carry = 0u16;
        for (byte, l) in sig.signature[32..].iter_mut().zip(L) {
            let sum = u16::from(*byte) + u16::from(l) + carry;
            *byte = (sum & 0xff) as u8;
            carry = sum >> 8;
        }
        let note = Note {
            text: text.into(),
            signatures: vec![sig],
        }
        .to_string();
        check_open_err(
            note.as_bytes(),
            &[log.verifier()],
            NoteError::InvalidSignature {
                name: log.name().into(),
                key_id: log.key_id(),
            },
        );
    }

    #[track_caller]
    fn check_parse_err(note: &str, want: NoteError) {
        assert_eq!(Note::parse(note.as_bytes()), Err(want), "{note:?}");
    }

    #[test]
    fn parse_rejects_malformed_notes() {
        let good = log().sign("t\n").expect("signs");
        let b64 = good
            .rsplit(' ')
            .next()
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_default();
        let line = |l: &str| NoteError::MalformedSignatureLine {
            number: 1,
            line: l.into(),
        };
        check_parse_err("t\n", NoteError::MissingSignatureBlock);
        check_parse_err("t\n\n", NoteError::UnterminatedSignatureBlock);
        check_parse_err(good.trim_end(), NoteError::UnterminatedSignatureBlock);
        check_parse_err(&format!("t\n\n- a {b64}\n"), line(&format!("- a {b64}")));
        check_parse_err(
            &format!("t\n\n\u{2014}  {b64}\n"),
            line(&format!("\u{2014}  {b64}")),
        );
        check_parse_err(
            &format!("t\n\n\u{2014} a+b {b64}\n"),
            line(&format!("\u{2014} a+b {b64}")),
        );
        check_parse_err(
            &format!("t\n\n\u{2014} a {b64} \n"),
            line(&format!("\u{2014} a {b64} ")),
        );
        check_parse_err("t\n\n\u{2014} a \n", line("\u{2014} a "));
        check_parse_err("t\n\n\u{2014} a\n", line("\u{2014} a"));
        // Four bytes: a key ID and no signature.
        check_parse_err("t\n\n\u{2014} a AAAAAA==\n", line("\u{2014} a AAAAAA=="));
        // Unpadded, non-canonical trailing bits, URL-safe alphabet.
        check_parse_err("t\n\n\u{2014} a AAAAAAA\n", line("\u{2014} a AAAAAAA"));
        check_parse_err("t\n\n\u{2014} a AAAAAAB=\n", line("\u{2014} a AAAAAAB="));
        check_parse_err("t\n\n\u{2014} a ____AA==\n", line("\u{2014} a ____AA=="));
        check_parse_err(
            &good.replace("t\n", "t\r\n"),
            NoteError::ControlCharacter {
                byte: b'\r',
                offset: 1,
            },
        );
        check_parse_err(
            &good.replace("t\n", "\0\n"),
            NoteError::ControlCharacter { byte: 0, offset: 0 },
        );
        assert_eq!(
            Note::parse(b"t\xff\n\n"),
            Err(NoteError::NotUtf8 { valid_up_to: 1 })
        );
        // The text may be just a newline; the note's text then is empty-lined.
        assert!(Note::parse(format!("\n\n\u{2014} a {b64}\n").as_bytes()).is_ok());
    }

    #[test]
    fn parse_line_is_the_signature_block_grammar() {
        let sig = log().signature("t\n").expect("signs");
        let line = sig.to_string();
        assert_eq!(NoteSignature::parse_line(&line), Some(sig));
        for bad in [
            "",
            line.trim_start_matches('\u{2014}'),
            &format!("{line}\n"),
            &format!("{line} "),
            &line.replace("example.com", "a+b"),
            &line.replace("example.com", "exa\u{1}mple.com"),
            "\u{2014} a AAAAAA==",
        ] {
            assert_eq!(NoteSignature::parse_line(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn at_most_100_signatures() {
        let log = log();
        let sig = log.signature("t\n").expect("signs");
        let note = |n: usize| Note {
            text: "t\n".into(),
            signatures: vec![sig.clone(); n],
        };
        let hundred = note(100).to_string();
        assert_eq!(
            open(hundred.as_bytes(), &[log.verifier()]).map(|(n, v)| (n.signatures.len(), v)),
            Ok((100, vec![0]))
        );
        check_parse_err(&note(101).to_string(), NoteError::TooManySignatures);
    }

    #[test]
    fn text_is_split_at_the_last_blank_line() {
        let log = log();
        let text = "a\n\n\u{2014} looks like a signature\n\n";
        let note = log.sign(text).expect("signs");
        let (parsed, _) = open(note.as_bytes(), &[log.verifier()]).expect("opens");
        assert_eq!(parsed.text, text);
    }

    #[test]
    fn ed25519_edge_cases_get_verify_strict_verdicts() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/vectors/ed25519/ed25519vectors.json"
        );
        let json = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        let vectors: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        let vectors = vectors.as_array().expect("array");
        let mut accepted = 0;
        for v in vectors {
            let field = |k: &str| v[k].as_str().unwrap_or_else(|| panic!("{k} in {v}"));
            let key: [u8; 32] = hex::decode(field("key"))
                .ok()
                .and_then(|k| k.try_into().ok())
                .expect("32-byte key");
            let sig = hex::decode(field("sig")).expect("hex sig");
            let msg = field("msg");
            let oracle = VerifyingKey::from_bytes(&key).is_ok_and(|k| {
                Signature::from_slice(&sig)
                    .is_ok_and(|s| k.verify_strict(msg.as_bytes(), &s).is_ok())
            });
            let ours = VerifyingKey::from_bytes(&key)
                .is_ok_and(|k| NoteVerifier::new("k", k).is_ok_and(|nv| nv.verifies(msg, &sig)));
            assert_eq!(ours, oracle, "vector {}", v["number"]);
            let flags = v["flags"].to_string();
            if ["low_order_A", "low_order_R", "non_canonical_R"]
                .iter()
                .any(|f| flags.contains(&format!("\"{f}\"")))
            {
                assert!(!ours, "vector {} ({flags}) accepted", v["number"]);
            }
            accepted += usize::from(ours);
        }
        assert!(
            accepted > 0 && accepted < vectors.len(),
            "{accepted} accepted"
        );
    }

    #[test]
    fn debug_does_not_print_the_secret_key() {
        let seed: [u8; 32] = Sha256::digest(b"tlog test vectors v1").into();
        let debug = format!("{:?}", log());
        assert!(!debug.contains(&format!("{seed:?}")), "{debug}");
        assert!(!debug.contains(&hex::encode(seed)), "{debug}");
        assert!(
            !debug.contains(format!("{:?}", &seed[..8]).trim_end_matches(']')),
            "{debug}"
        );
    }

    fn note_text() -> impl Strategy<Value = String> {
        "([^\\x00-\\x1f]{0,20}\n){1,4}"
    }

    proptest! {
        #[test]
        fn open_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = open(&bytes, &[log().verifier()]);
        }

        #[test]
        fn open_never_panics_on_near_notes(
            s in "[a-z\n]{0,8}\n\n(\u{2014} [a-z.+ ]{0,6} [A-Za-z0-9+/=]{0,100}\n){0,3}"
        ) {
            if let Ok(note) = Note::parse(s.as_bytes()) {
                prop_assert_eq!(note.to_string(), s.clone());
            }
            let _ = open(s.as_bytes(), &[log().verifier()]);
        }

        #[test]
        fn from_vkey_never_panics(s in any::<String>()) {
            let _ = NoteVerifier::from_vkey(&s);
        }

        #[test]
        fn from_vkey_never_panics_on_near_keys(s in "[a-z]{0,3}\\+[0-9a-f]{0,9}\\+[A-Za-z0-9+/=]{0,48}") {
            if let Ok(v) = NoteVerifier::from_vkey(&s) {
                prop_assert_eq!(v.vkey(), s);
            }
        }

        #[test]
        fn sign_then_open_round_trips(text in note_text()) {
            let log = log();
            let note = log.sign(&text);
            prop_assert!(note.is_ok());
            let note = note.unwrap_or_default();
            let opened = open(note.as_bytes(), &[witness().verifier(), log.verifier()]);
            prop_assert_eq!(opened.as_ref().map(|(n, v)| (n.text.as_str(), v.clone())), Ok((text.as_str(), vec![1])));
            prop_assert_eq!(opened.map(|(n, _)| n.to_string()), Ok(note));
        }

        #[test]
        fn any_changed_byte_is_rejected(text in note_text(), at in any::<prop::sample::Index>(), bit in 0..8u8) {
            let log = log();
            let mut note = log.sign(&text).unwrap_or_default().into_bytes();
            let i = at.index(note.len());
            note[i] ^= 1 << bit;
            prop_assert!(open(&note, &[log.verifier()]).is_err());
        }
    }
}
