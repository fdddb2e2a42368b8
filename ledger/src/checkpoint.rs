//! C2SP transparency-log checkpoints (c2sp.org/tlog-checkpoint).
//!
//! A checkpoint is a signed note whose text is the log's *origin*, the tree
//! size in decimal, the RFC 6962 root hash in standard base64, and optional
//! extension lines, each line ending in a newline. [`Checkpoint`] is that text
//! as a value ([`Checkpoint::parse`] and [`Checkpoint::to_text`] are inverses);
//! [`sign_checkpoint`] makes the signed note and [`verify_checkpoint`] is the
//! only way to get a [`VerifiedCheckpoint`].
//!
//! Beyond the spec's syntax, a checkpoint of size 0 must carry the empty
//! tree's root `SHA-256("")` ([`EMPTY_ROOT`], RFC 6962 §2.1): any other root is
//! a claim no tree can satisfy, such as the all-zero root Go's
//! `tlog.TreeHash(0)` returns.

use crate::hash::{EMPTY_ROOT, Hash, HashDecodeError};
use crate::note::{self, Note, NoteError, NoteSigner, NoteVerifier};

/// Why a checkpoint text or signed checkpoint is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    /// The signed note is malformed, or its signature by the log key is missing or bad.
    #[error("checkpoint note: {0}")]
    Note(#[from] NoteError),
    /// The text holds an ASCII control character other than newline.
    #[error("checkpoint has control character {byte:#04x} at byte {offset}")]
    ControlCharacter {
        /// The control character.
        byte: u8,
        /// Its byte offset in the text.
        offset: usize,
    },
    /// The text does not end in a newline.
    #[error("checkpoint text does not end in a newline")]
    MissingFinalNewline,
    /// Fewer than the three lines origin, size, root.
    #[error("checkpoint has {lines} lines, fewer than origin, size and root")]
    TooFewLines {
        /// Number of lines found.
        lines: usize,
    },
    /// The origin line is empty.
    #[error("checkpoint origin is empty")]
    EmptyOrigin,
    /// The origin line is not the expected one.
    #[error("checkpoint origin {found:?} is not the expected {expected:?}")]
    OriginMismatch {
        /// The origin the caller expected.
        expected: String,
        /// The origin in the checkpoint (truncated to 100 characters).
        found: String,
    },
    /// The size line is not a canonical decimal `u64` (no sign, no leading zeros, no spaces).
    #[error("checkpoint size {line:?} is not a decimal u64 without sign or leading zeros")]
    InvalidSize {
        /// The size line (truncated to 100 characters).
        line: String,
    },
    /// The root line is not canonical standard base64 of 32 bytes.
    #[error("checkpoint root: {0}")]
    InvalidRoot(#[source] HashDecodeError),
    /// A size-0 checkpoint whose root is not the empty tree's `SHA-256("")`.
    #[error("checkpoint of size 0 has root {root}, not the empty tree's {EMPTY_ROOT}")]
    EmptyTreeRoot {
        /// The root found.
        root: Hash,
    },
    /// An extension line is empty or contains a newline.
    #[error("checkpoint extension line {number} is empty or contains a newline: {line:?}")]
    InvalidExtensionLine {
        /// One-based number of the extension line (line 4 of the text is extension 1).
        number: usize,
        /// The line (truncated to 100 characters).
        line: String,
    },
}

fn echo(s: &str) -> String {
    s.chars().take(100).collect()
}

/// The text of a checkpoint: a log's signed statement of its tree head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The origin: the log's identity, the first line.
    pub origin: String,
    /// Number of leaves in the tree.
    pub size: u64,
    /// RFC 6962 Merkle tree hash of the first `size` leaves.
    pub root: Hash,
    /// Opaque extension lines, without their newlines (the spec advises against them).
    pub extensions: Vec<String>,
}

/// Rejects ASCII control characters in `s`, except newline when `allow_newline`.
fn check_control_characters(s: &str, allow_newline: bool) -> Result<(), CheckpointError> {
    let control = |b: u8| b < 0x20 && !(allow_newline && b == b'\n');
    match s.bytes().enumerate().find(|(_, b)| control(*b)) {
        Some((offset, byte)) => Err(CheckpointError::ControlCharacter { byte, offset }),
        None => Ok(()),
    }
}

/// A canonical decimal `u64`: ASCII digits only, no leading zero unless it is `0`
/// (a checkpoint's size line, and the sizes and indexes of the other tlog formats).
pub(crate) fn parse_decimal(line: &str) -> Option<u64> {
    let canonical = !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
        && (line == "0" || !line.starts_with('0'));
    if canonical { line.parse().ok() } else { None }
}

impl Checkpoint {
    /// Parses checkpoint text (the note text, ending in a newline, without signatures).
    ///
    /// Strict per c2sp.org/tlog-checkpoint: at least three lines; a non-empty
    /// origin; a size in decimal with no sign, spaces or leading zeros that
    /// fits a `u64`; a root in canonical padded standard base64 of exactly 32
    /// bytes; non-empty extension lines; no control characters but newline.
    /// A size-0 checkpoint must have root [`EMPTY_ROOT`]. Whatever parses,
    /// [`Checkpoint::to_text`] writes back byte for byte.
    ///
    /// # Errors
    /// A [`CheckpointError`] naming the first problem found.
    pub fn parse(text: &str) -> Result<Checkpoint, CheckpointError> {
        check_control_characters(text, true)?;
        let body = text
            .strip_suffix('\n')
            .ok_or(CheckpointError::MissingFinalNewline)?;
        let lines: Vec<&str> = body.split('\n').collect();
        let [origin, size, root, extensions @ ..] = lines.as_slice() else {
            return Err(CheckpointError::TooFewLines { lines: lines.len() });
        };
        let checkpoint = Checkpoint {
            origin: (*origin).to_owned(),
            size: parse_decimal(size)
                .ok_or_else(|| CheckpointError::InvalidSize { line: echo(size) })?,
            root: Hash::from_base64(root).map_err(CheckpointError::InvalidRoot)?,
            extensions: extensions.iter().map(|e| (*e).to_owned()).collect(),
        };
        checkpoint.check()?;
        Ok(checkpoint)
    }

    /// Checks what the fields alone cannot: a non-empty single-line origin,
    /// non-empty single-line extensions, no control characters, and the
    /// empty tree's root at size 0.
    fn check(&self) -> Result<(), CheckpointError> {
        if self.origin.is_empty() {
            return Err(CheckpointError::EmptyOrigin);
        }
        check_control_characters(&self.origin, false)?;
        for (i, line) in self.extensions.iter().enumerate() {
            if line.is_empty() || line.contains('\n') {
                return Err(CheckpointError::InvalidExtensionLine {
                    number: i + 1,
                    line: echo(line),
                });
            }
            check_control_characters(line, false)?;
        }
        if self.size == 0 && self.root != EMPTY_ROOT {
            return Err(CheckpointError::EmptyTreeRoot { root: self.root });
        }
        Ok(())
    }

    /// The checkpoint text: origin, size, root and extension lines, each ending in a newline.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.root.to_base64()
        );
        for line in &self.extensions {
            text.push_str(line);
            text.push('\n');
        }
        text
    }
}

/// A checkpoint whose note carried a valid signature by the log's key and the expected origin.
///
/// Only [`verify_checkpoint`] makes one, so holding one is proof the check ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCheckpoint {
    checkpoint: Checkpoint,
    note: Note,
    note_text: String,
}

impl VerifiedCheckpoint {
    /// The verified checkpoint.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The whole signed note as verified, all signature lines included
    /// (unknown ones such as witness cosignatures too).
    pub fn note_text(&self) -> &str {
        &self.note_text
    }

    /// The parsed note, with every signature line.
    pub fn note(&self) -> &Note {
        &self.note
    }

    /// The verified checkpoint, by value.
    pub fn into_checkpoint(self) -> Checkpoint {
        self.checkpoint
    }
}

/// Verifies a signed checkpoint: the note must carry a valid signature by
/// `verifier` (other signatures are ignored), its text must be a checkpoint,
/// and its origin must equal `expected_origin`.
///
/// # Errors
/// [`CheckpointError::Note`] when the note is malformed, has no signature by
/// `verifier`'s key or a bad one (see [`note::open`]); any
/// [`Checkpoint::parse`] error; [`CheckpointError::OriginMismatch`].
pub fn verify_checkpoint(
    note: &[u8],
    verifier: &NoteVerifier,
    expected_origin: &str,
) -> Result<VerifiedCheckpoint, CheckpointError> {
    verify_checkpoint_any(note, std::slice::from_ref(verifier), expected_origin)
}

/// Verifies a signed checkpoint against every key trusted for its origin: as
/// [`verify_checkpoint`], but the note needs a valid signature by at least one of
/// `verifiers` (a log that rotated its key, or several trusted log keys), and a
/// signature by any of them that fails to verify rejects the note.
///
/// # Errors
/// As [`verify_checkpoint`]; [`NoteError::AmbiguousVerifiers`] (in
/// [`CheckpointError::Note`]) when two of `verifiers` share a name and key ID, and
/// [`NoteError::NoKnownSignature`] when `verifiers` is empty.
pub fn verify_checkpoint_any(
    note: &[u8],
    verifiers: &[NoteVerifier],
    expected_origin: &str,
) -> Result<VerifiedCheckpoint, CheckpointError> {
    // The text is untrusted until a known key's signature verifies, so open first.
    let (note, _) = note::open(note, verifiers)?;
    let checkpoint = Checkpoint::parse(&note.text)?;
    if checkpoint.origin != expected_origin {
        return Err(CheckpointError::OriginMismatch {
            expected: expected_origin.to_owned(),
            found: echo(&checkpoint.origin),
        });
    }
    // Note::parse is canonical, so this is the input byte for byte.
    let note_text = note.to_string();
    Ok(VerifiedCheckpoint {
        checkpoint,
        note,
        note_text,
    })
}

/// Signs `checkpoint` with `signer`, returning the signed note.
///
/// The spec says the log's key name SHOULD match the origin; that choice is
/// the caller's and is not checked here.
///
/// # Errors
/// The [`Checkpoint::parse`] error the checkpoint's text would fail with (empty
/// origin, multi-line or empty extension, control character, size 0 with a
/// root other than [`EMPTY_ROOT`]), so only parseable checkpoints are signed.
pub fn sign_checkpoint(
    checkpoint: &Checkpoint,
    signer: &NoteSigner,
) -> Result<String, CheckpointError> {
    checkpoint.check()?;
    Ok(signer.sign(&checkpoint.to_text())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leaf_hash;
    use ed25519_dalek::SigningKey;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    const ORIGIN: &str = "example.com/tlog-vectors";

    fn signer() -> NoteSigner {
        let seed: [u8; 32] = Sha256::digest(b"tlog test vectors v1").into();
        NoteSigner::new(ORIGIN, SigningKey::from_bytes(&seed)).expect("valid name")
    }

    fn checkpoint(size: u64) -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: if size == 0 {
                EMPTY_ROOT
            } else {
                leaf_hash(b"0")
            },
            extensions: vec![],
        }
    }

    #[track_caller]
    fn check_parse_err(text: &str, want: CheckpointError) {
        assert_eq!(Checkpoint::parse(text), Err(want), "{text:?}");
    }

    const ROOT: &str = "2zQm6HgGjSjSabbIcXIyLOU3K2V1bQeJAB00g19gHAM=";

    #[test]
    fn parse_and_to_text_round_trip() {
        let text = format!("{ORIGIN}\n1\n{ROOT}\nx-ext: a\n\u{2014} b\n");
        let cp = Checkpoint::parse(&text).expect("parses");
        assert_eq!(cp.size, 1);
        assert_eq!(cp.root, leaf_hash(b"0"));
        assert_eq!(cp.extensions, vec!["x-ext: a", "\u{2014} b"]);
        assert_eq!(cp.to_text(), text);
        assert_eq!(
            Checkpoint::parse(&format!("o\n18446744073709551615\n{ROOT}\n")).map(|c| c.size),
            Ok(u64::MAX)
        );
    }

    #[test]
    fn parse_rejects_bad_lines() {
        let size = |line: &str| CheckpointError::InvalidSize { line: line.into() };
        for bad in [
            "",
            "00",
            "01",
            "+1",
            "-0",
            " 1",
            "1 ",
            "1.0",
            "0x1",
            "١",
            "18446744073709551616",
        ] {
            check_parse_err(&format!("o\n{bad}\n{ROOT}\n"), size(bad));
        }
        check_parse_err(
            &format!("o\n1\n{ROOT}"),
            CheckpointError::MissingFinalNewline,
        );
        check_parse_err("o\n1\n", CheckpointError::TooFewLines { lines: 2 });
        check_parse_err("\n", CheckpointError::TooFewLines { lines: 1 });
        check_parse_err("", CheckpointError::MissingFinalNewline);
        check_parse_err(&format!("\n1\n{ROOT}\n"), CheckpointError::EmptyOrigin);
        check_parse_err(
            &format!("o\n1\n{ROOT}\na\n\n"),
            CheckpointError::InvalidExtensionLine {
                number: 2,
                line: String::new(),
            },
        );
        check_parse_err(
            &format!("o\n1\n{ROOT}\t\n"),
            CheckpointError::ControlCharacter {
                byte: b'\t',
                offset: 48,
            },
        );
        assert!(matches!(
            Checkpoint::parse(&format!("o\n1\n{}\n", ROOT.trim_end_matches('='))),
            Err(CheckpointError::InvalidRoot(_))
        ));
    }

    #[test]
    fn size_zero_needs_the_empty_root() {
        let zero = checkpoint(0);
        assert_eq!(Checkpoint::parse(&zero.to_text()), Ok(zero.clone()));
        for root in [Hash::from_bytes([0; 32]), leaf_hash(b"0")] {
            let bad = Checkpoint {
                root,
                ..zero.clone()
            };
            check_parse_err(&bad.to_text(), CheckpointError::EmptyTreeRoot { root });
            assert_eq!(
                sign_checkpoint(&bad, &signer()),
                Err(CheckpointError::EmptyTreeRoot { root })
            );
        }
    }

    #[test]
    fn sign_refuses_checkpoints_that_would_not_parse() {
        let s = signer();
        let cases = [
            (
                Checkpoint {
                    origin: String::new(),
                    ..checkpoint(1)
                },
                CheckpointError::EmptyOrigin,
            ),
            (
                Checkpoint {
                    origin: "a\nb".into(),
                    ..checkpoint(1)
                },
                CheckpointError::ControlCharacter {
                    byte: b'\n',
                    offset: 1,
                },
            ),
            (
                Checkpoint {
                    extensions: vec!["a\nb".into()],
                    ..checkpoint(1)
                },
                CheckpointError::InvalidExtensionLine {
                    number: 1,
                    line: "a\nb".into(),
                },
            ),
            (
                Checkpoint {
                    extensions: vec!["ok".into(), String::new()],
                    ..checkpoint(1)
                },
                CheckpointError::InvalidExtensionLine {
                    number: 2,
                    line: String::new(),
                },
            ),
        ];
        for (cp, want) in cases {
            assert_eq!(sign_checkpoint(&cp, &s), Err(want), "{cp:?}");
        }
    }

    #[test]
    fn sign_then_verify() {
        let s = signer();
        let cp = checkpoint(1);
        let note = sign_checkpoint(&cp, &s).expect("signs");
        let verified = verify_checkpoint(note.as_bytes(), &s.verifier(), ORIGIN).expect("verifies");
        assert_eq!(verified.checkpoint(), &cp);
        assert_eq!(verified.note_text(), note);
        assert_eq!(verified.note().signatures.len(), 1);
        assert_eq!(
            verify_checkpoint(note.as_bytes(), &s.verifier(), "example.com/other")
                .map(VerifiedCheckpoint::into_checkpoint),
            Err(CheckpointError::OriginMismatch {
                expected: "example.com/other".into(),
                found: ORIGIN.into()
            })
        );
    }

    #[test]
    fn verify_any_accepts_either_trusted_key_and_rejects_a_bad_one() {
        let (old, new) = (
            signer(),
            NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[9; 32])).expect("name"),
        );
        let keys = [old.verifier(), new.verifier()];
        let cp = checkpoint(1);
        for s in [&old, &new] {
            let note = sign_checkpoint(&cp, s).expect("signs");
            assert_eq!(
                verify_checkpoint_any(note.as_bytes(), &keys, ORIGIN)
                    .map(VerifiedCheckpoint::into_checkpoint),
                Ok(cp.clone())
            );
        }
        // Signed by both, one signature broken: rejected, though the other verifies.
        let text = cp.to_text();
        let mut bad = new.signature(&text).expect("signs");
        bad.signature[0] ^= 1;
        let note = Note {
            text,
            signatures: vec![old.signature(&cp.to_text()).expect("signs"), bad],
        }
        .to_string();
        assert_eq!(
            verify_checkpoint_any(note.as_bytes(), &keys, ORIGIN)
                .map(VerifiedCheckpoint::into_checkpoint),
            Err(CheckpointError::Note(NoteError::InvalidSignature {
                name: ORIGIN.into(),
                key_id: new.key_id()
            }))
        );
        assert_eq!(
            verify_checkpoint_any(note.as_bytes(), &[], ORIGIN)
                .map(VerifiedCheckpoint::into_checkpoint),
            Err(CheckpointError::Note(NoteError::NoKnownSignature))
        );
    }

    #[test]
    fn verify_opens_the_note_before_reading_the_text() {
        // An unsigned-by-us note with a malformed body reports the signature problem,
        // not the body: nothing in the text is looked at before a signature verifies.
        let other = NoteSigner::new(ORIGIN, SigningKey::from_bytes(&[9; 32])).expect("name");
        let note = other.sign("not a checkpoint\n").expect("signs");
        assert_eq!(
            verify_checkpoint(note.as_bytes(), &signer().verifier(), ORIGIN)
                .map(VerifiedCheckpoint::into_checkpoint),
            Err(CheckpointError::Note(NoteError::NoKnownSignature))
        );
    }

    fn text_line() -> impl Strategy<Value = String> {
        "[^\\x00-\\x1f]{1,24}"
    }

    fn any_checkpoint() -> impl Strategy<Value = Checkpoint> {
        (
            text_line(),
            prop_oneof![Just(0u64), any::<u64>()],
            any::<[u8; 32]>(),
            proptest::collection::vec(text_line(), 0..3),
        )
            .prop_map(|(origin, size, root, extensions)| Checkpoint {
                origin,
                size,
                root: if size == 0 {
                    EMPTY_ROOT
                } else {
                    Hash::from_bytes(root)
                },
                extensions,
            })
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in any::<String>()) {
            let _ = Checkpoint::parse(&s);
        }

        #[test]
        fn parse_is_canonical_on_near_checkpoints(
            s in "[a-z]{0,3}\n[-+ 0-9x]{0,4}\n[A-Za-z0-9+/=]{0,46}\n([a-z\n]{0,3}\n)?"
        ) {
            if let Ok(cp) = Checkpoint::parse(&s) {
                prop_assert_eq!(cp.to_text(), s);
            }
        }

        #[test]
        fn to_text_then_parse_is_identity(cp in any_checkpoint()) {
            prop_assert_eq!(Checkpoint::parse(&cp.to_text()), Ok(cp));
        }

        #[test]
        fn verify_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = verify_checkpoint(&bytes, &signer().verifier(), ORIGIN);
        }
    }
}
