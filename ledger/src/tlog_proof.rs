//! C2SP transparency-log proofs (c2sp.org/tlog-proof): an offline-verifiable text
//! that an entry is in a log, with the checkpoint (and its cosignatures) it is in.
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64>            (optional, opaque, unauthenticated)
//! index <leaf index>
//! <inclusion proof hash, base64>   (zero or more, leaf's sibling first)
//!
//! <checkpoint note, verbatim>
//! ```
//!
//! [`TlogProof::parse`] reads one strictly, [`TlogProof::to_bytes`] writes it back
//! byte for byte. Verifying follows the spec's steps: the caller computes the leaf
//! hash (application specific), the checkpoint must be signed by the log (and, with
//! [`TlogProof::verify_with_policy`], cosigned per a tlog-policy quorum), then the
//! inclusion proof must lead from the leaf to the checkpoint's root ([`crate::tree`]).
//!
//! Interpretations: `extra` with empty data (`extra ` and nothing) is accepted and
//! kept distinct from no `extra` line, so that parsing stays exact; at most 64 proof
//! lines (a tree of `u64` size has at most 64 levels).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::checkpoint::{CheckpointError, VerifiedCheckpoint, parse_decimal, verify_checkpoint};
use crate::hash::Hash;
use crate::note::{Note, NoteError, NoteVerifier};
use crate::policy::{Evaluation, Policy, PolicyError};
use crate::tree::{VerifyError, verify_inclusion};

/// The first line of every tlog-proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// Most inclusion proof lines: the height of a tree of `u64` size.
pub const MAX_INCLUSION_PROOF_LINES: usize = 64;

fn echo(s: &str) -> String {
    s.chars().take(100).collect()
}

/// Why a tlog-proof does not parse or does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlogProofError {
    /// The proof is not valid UTF-8.
    #[error("tlog-proof is not valid UTF-8 (valid up to byte {valid_up_to})")]
    NotUtf8 {
        /// Length of the longest valid UTF-8 prefix.
        valid_up_to: usize,
    },
    /// The first line is not [`TLOG_PROOF_HEADER`].
    #[error("first line is not {TLOG_PROOF_HEADER}: {line:?}")]
    InvalidHeader {
        /// The line (truncated to 100 characters).
        line: String,
    },
    /// An `extra` line whose data is not canonical standard base64.
    #[error("extra line is not base64: {line:?}")]
    InvalidExtra {
        /// The line (truncated to 100 characters).
        line: String,
    },
    /// The `index` line is missing or not a canonical decimal `u64`.
    #[error("line {number} is not 'index <decimal>': {line:?}")]
    InvalidIndex {
        /// One-based line number.
        number: usize,
        /// The line (truncated to 100 characters).
        line: String,
    },
    /// A proof line is not one hash in canonical standard base64.
    #[error("line {number} is not a base64 hash: {line:?}")]
    InvalidProofLine {
        /// One-based line number.
        number: usize,
        /// The line (truncated to 100 characters).
        line: String,
    },
    /// More than [`MAX_INCLUSION_PROOF_LINES`] proof lines.
    #[error("more than {MAX_INCLUSION_PROOF_LINES} inclusion proof lines")]
    TooManyProofLines,
    /// The text ends before the blank line that precedes the checkpoint.
    #[error("tlog-proof has no blank line before the checkpoint")]
    MissingBlankLine,
    /// What follows the blank line is not a signed note.
    #[error("checkpoint note: {0}")]
    Note(#[source] NoteError),
    /// The checkpoint is not signed by the log key, or is not a checkpoint.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint does not satisfy the policy.
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    /// The inclusion proof does not lead from the leaf to the checkpoint's root.
    #[error("inclusion: {0}")]
    Inclusion(#[from] VerifyError),
}

/// A parsed tlog-proof, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlogProof {
    extra: Option<Vec<u8>>,
    index: u64,
    proof: Vec<Hash>,
    /// Parses as a [`Note`]; not verified.
    checkpoint: String,
}

impl TlogProof {
    /// A proof from its parts: optional extra data, the leaf index, the inclusion proof
    /// and the signed checkpoint note (its cosignatures included).
    ///
    /// # Errors
    /// [`TlogProofError::TooManyProofLines`]; [`TlogProofError::Note`] when
    /// `checkpoint` is not a signed note (nothing is verified).
    pub fn new(
        extra: Option<Vec<u8>>,
        index: u64,
        proof: Vec<Hash>,
        checkpoint: String,
    ) -> Result<TlogProof, TlogProofError> {
        if proof.len() > MAX_INCLUSION_PROOF_LINES {
            return Err(TlogProofError::TooManyProofLines);
        }
        Note::parse(checkpoint.as_bytes()).map_err(TlogProofError::Note)?;
        Ok(TlogProof {
            extra,
            index,
            proof,
            checkpoint,
        })
    }

    /// Parses a tlog-proof strictly: the header; an optional `extra <base64>` line; an
    /// `index <decimal>` line (no leading zeros); up to
    /// [`MAX_INCLUSION_PROOF_LINES`] lines of canonical padded standard base64 of 32
    /// bytes; an empty line; a signed note ([`Note::parse`]). Whatever parses,
    /// [`TlogProof::to_bytes`] writes back byte for byte.
    ///
    /// # Errors
    /// A [`TlogProofError`] naming the first problem found.
    pub fn parse(text: &[u8]) -> Result<TlogProof, TlogProofError> {
        let text = std::str::from_utf8(text).map_err(|e| TlogProofError::NotUtf8 {
            valid_up_to: e.valid_up_to(),
        })?;
        let mut rest = text;
        let next_line = |rest: &mut &str| -> Option<String> {
            let (line, after) = rest.split_once('\n')?;
            *rest = after;
            Some(line.to_owned())
        };
        let header = next_line(&mut rest)
            .ok_or_else(|| TlogProofError::InvalidHeader { line: echo(text) })?;
        if header != TLOG_PROOF_HEADER {
            return Err(TlogProofError::InvalidHeader {
                line: echo(&header),
            });
        }
        let mut line = next_line(&mut rest).ok_or(TlogProofError::MissingBlankLine)?;
        let mut extra = None;
        if let Some(data) = line.strip_prefix("extra ") {
            extra = Some(
                STANDARD
                    .decode(data)
                    .map_err(|_| TlogProofError::InvalidExtra { line: echo(&line) })?,
            );
            line = next_line(&mut rest).ok_or(TlogProofError::MissingBlankLine)?;
        }
        let index_number = if extra.is_some() { 3 } else { 2 };
        let index = line
            .strip_prefix("index ")
            .and_then(parse_decimal)
            .ok_or_else(|| TlogProofError::InvalidIndex {
                number: index_number,
                line: echo(&line),
            })?;
        let mut proof = Vec::new();
        loop {
            let line = next_line(&mut rest).ok_or(TlogProofError::MissingBlankLine)?;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_INCLUSION_PROOF_LINES {
                return Err(TlogProofError::TooManyProofLines);
            }
            proof.push(
                Hash::from_base64(&line).map_err(|_| TlogProofError::InvalidProofLine {
                    number: index_number + proof.len() + 1,
                    line: echo(&line),
                })?,
            );
        }
        TlogProof::new(extra, index, proof, rest.to_owned())
    }

    /// The text: [`fmt::Display`] as bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// The opaque extra data, if any. Not authenticated: never trust it implicitly.
    pub fn extra(&self) -> Option<&[u8]> {
        self.extra.as_deref()
    }

    /// The entry's zero-based index in the log.
    pub fn index(&self) -> u64 {
        self.index
    }

    /// The inclusion proof, from the leaf's sibling up.
    pub fn proof(&self) -> &[Hash] {
        &self.proof
    }

    /// The signed checkpoint note, as carried (not verified).
    pub fn checkpoint_note(&self) -> &str {
        &self.checkpoint
    }

    /// Verifies the proof for the entry whose leaf hash is `leaf`: the checkpoint must
    /// be signed by `log` with origin `origin` (other signatures ignored) and the
    /// inclusion proof must lead from `leaf` at the index to its root.
    ///
    /// # Errors
    /// [`TlogProofError::Checkpoint`]; [`TlogProofError::Inclusion`].
    pub fn verify(
        &self,
        leaf: &Hash,
        log: &NoteVerifier,
        origin: &str,
    ) -> Result<VerifiedCheckpoint, TlogProofError> {
        let checkpoint = verify_checkpoint(self.checkpoint.as_bytes(), log, origin)?;
        self.verify_inclusion(leaf, &checkpoint)?;
        Ok(checkpoint)
    }

    /// Verifies the proof under a tlog-policy: the checkpoint must satisfy `policy`
    /// ([`Policy::verify`]: a log of the policy, every known cosignature valid, the
    /// quorum met) and the inclusion proof must lead from `leaf` to its root.
    ///
    /// # Errors
    /// [`TlogProofError::Policy`]; [`TlogProofError::Inclusion`].
    pub fn verify_with_policy(
        &self,
        leaf: &Hash,
        policy: &Policy,
    ) -> Result<Evaluation, TlogProofError> {
        let evaluation = policy.verify(self.checkpoint.as_bytes())?;
        self.verify_inclusion(leaf, evaluation.checkpoint())?;
        Ok(evaluation)
    }

    /// Whether the inclusion proof leads from `leaf` at the index to the root of
    /// `checkpoint` (RFC 9162 §2.1.3.2).
    ///
    /// # Errors
    /// [`VerifyError`] from [`verify_inclusion`].
    pub fn verify_inclusion(
        &self,
        leaf: &Hash,
        checkpoint: &VerifiedCheckpoint,
    ) -> Result<(), VerifyError> {
        let cp = checkpoint.checkpoint();
        verify_inclusion(leaf, self.index, cp.size, &self.proof, &cp.root)
    }
}

impl fmt::Display for TlogProof {
    /// The tlog-proof text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{TLOG_PROOF_HEADER}")?;
        if let Some(extra) = &self.extra {
            writeln!(f, "extra {}", STANDARD.encode(extra))?;
        }
        writeln!(f, "index {}", self.index)?;
        for hash in &self.proof {
            writeln!(f, "{hash}")?;
        }
        writeln!(f)?;
        f.write_str(&self.checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::sign_checkpoint;
    use crate::hash::leaf_hash;
    use crate::policy::{PolicyError, QuorumUnmet};
    use crate::tree::{MemNodes, prove_inclusion, root};
    use crate::witness_fixture::{ORIGIN, checkpoint_with_root, cosigned, log, witness};
    use proptest::prelude::*;

    /// The spec's example (c2sp.org/tlog-proof "Transparency Log Proofs", C2SP/C2SP at
    /// 5ba5ee8), byte for byte. Its signatures are elided (`[...]`) and its proof is
    /// shorter than a real one, so it parses up to the note only.
    const SPEC_EXAMPLE: &str = "c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

\u{2014} example.com/fancylog hI2DJw[...]1roloI=
\u{2014} witness1.example mJirIklj[...]qY9v2B/5bg==
\u{2014} witness2.example TnKKVHLX[...]xwYwrSjgow==
\u{2014} witness3.example S4X82uH5[...]3oEcROGLFQ==
";

    const T: u64 = 1_700_000_000;

    fn tree() -> MemNodes {
        MemNodes::new(
            (0..64u64)
                .map(|i| leaf_hash(i.to_string().as_bytes()))
                .collect(),
        )
    }

    fn proof_of(index: u64, size: u64, witnesses: &[u32]) -> TlogProof {
        let t = tree();
        let cp = checkpoint_with_root(size, root(size, &t).expect("root"));
        let path = prove_inclusion(index, size, &t).expect("path");
        TlogProof::new(None, index, path, cosigned(&cp, witnesses, T)).expect("proof")
    }

    fn leaf(i: u64) -> Hash {
        leaf_hash(i.to_string().as_bytes())
    }

    #[test]
    fn the_spec_example_parses_up_to_its_elided_signatures() {
        assert!(matches!(
            TlogProof::parse(SPEC_EXAMPLE.as_bytes()),
            Err(TlogProofError::Note(NoteError::MalformedSignatureLine {
                number: 1,
                ..
            }))
        ));
        // With the note replaced by a signed checkpoint, the rest reads as the spec says.
        let (head, _) = SPEC_EXAMPLE.split_once("\n\n").expect("blank line");
        let note = sign_checkpoint(&checkpoint_with_root(109_482, leaf(0)), &log()).expect("signs");
        let text = format!("{head}\n\n{note}");
        let p = TlogProof::parse(text.as_bytes()).expect("parses");
        assert!(
            p.extra()
                .expect("extra")
                .starts_with(b"age-v1.2.1-darwin-arm64.tar.gz")
        );
        assert_eq!(p.index(), 73_894);
        assert_eq!(p.proof().len(), 5);
        assert_eq!(
            p.proof()[4].to_base64(),
            "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk="
        );
        assert_eq!(p.to_bytes(), text.as_bytes());
        // A real path in a tree of 109482 has 17 hashes, so this one cannot verify.
        assert_eq!(
            p.verify(&leaf(0), &log().verifier(), ORIGIN),
            Err(TlogProofError::Inclusion(VerifyError::WrongProofLength {
                expected: 17,
                actual: 5
            }))
        );
    }

    #[test]
    fn verifies_every_leaf_of_small_trees() {
        for size in 1..=20 {
            for index in 0..size {
                let p = proof_of(index, size, &[]);
                let text = p.to_bytes();
                let parsed = TlogProof::parse(&text).expect("parses");
                assert_eq!(parsed, p);
                let cp = parsed
                    .verify(&leaf(index), &log().verifier(), ORIGIN)
                    .expect("verifies");
                assert_eq!(cp.checkpoint().size, size);
                // Another leaf, or the right leaf at another index, does not verify.
                assert!(matches!(
                    parsed.verify(&leaf(index + 1), &log().verifier(), ORIGIN),
                    Err(TlogProofError::Inclusion(_))
                ));
            }
        }
    }

    #[test]
    fn verification_errors() {
        let p = proof_of(3, 10, &[1]);
        assert_eq!(
            p.verify(&leaf(3), &log().verifier(), "example.com/other"),
            Err(TlogProofError::Checkpoint(
                CheckpointError::OriginMismatch {
                    expected: "example.com/other".into(),
                    found: ORIGIN.into()
                }
            ))
        );
        // Signed by the log's origin name, but under another key.
        let impostor =
            NoteVerifier::new(ORIGIN, *witness(2).verifier().public_key()).expect("name");
        assert_eq!(
            p.verify(&leaf(3), &impostor, ORIGIN),
            Err(TlogProofError::Checkpoint(CheckpointError::Note(
                NoteError::NoKnownSignature
            )))
        );
        let out_of_range = TlogProof::new(None, 10, p.proof().to_vec(), p.checkpoint_note().into())
            .expect("proof");
        assert_eq!(
            out_of_range.verify(&leaf(10), &log().verifier(), ORIGIN),
            Err(TlogProofError::Inclusion(VerifyError::IndexOutOfRange {
                index: 10,
                size: 10
            }))
        );
    }

    #[test]
    fn verifies_under_a_policy() {
        let policy = Policy::parse(
            format!(
                "log {}\nwitness a {}\nwitness b {}\ngroup g any a b\nquorum g\n",
                log().verifier().vkey(),
                witness(1).verifier().vkey(),
                witness(2).verifier().vkey()
            )
            .as_bytes(),
        )
        .expect("policy");
        let e = proof_of(5, 9, &[2])
            .verify_with_policy(&leaf(5), &policy)
            .expect("verifies");
        assert_eq!(e.cosignatures().len(), 1);
        assert!(matches!(
            proof_of(5, 9, &[3]).verify_with_policy(&leaf(5), &policy),
            Err(TlogProofError::Policy(PolicyError::QuorumUnmet(
                QuorumUnmet { .. }
            )))
        ));
        assert!(matches!(
            proof_of(5, 9, &[1]).verify_with_policy(&leaf(6), &policy),
            Err(TlogProofError::Inclusion(VerifyError::RootMismatch { .. }))
        ));
    }

    #[test]
    fn parse_errors() {
        let good = proof_of(2, 5, &[]).to_string();
        let (_, note) = good.split_once("\n\n").expect("blank line");
        let hash = leaf(0).to_base64();
        let h = TLOG_PROOF_HEADER;
        let cases: Vec<(String, TlogProofError)> = vec![
            (
                "".into(),
                TlogProofError::InvalidHeader {
                    line: String::new(),
                },
            ),
            (h.into(), TlogProofError::InvalidHeader { line: h.into() }),
            (
                format!("c2sp.org/tlog-proof@v2\nindex 0\n\n{note}"),
                TlogProofError::InvalidHeader {
                    line: "c2sp.org/tlog-proof@v2".into(),
                },
            ),
            (format!("{h}\n"), TlogProofError::MissingBlankLine),
            (
                format!("{h}\nextra AAA\nindex 0\n\n{note}"),
                TlogProofError::InvalidExtra {
                    line: "extra AAA".into(),
                },
            ),
            (
                format!("{h}\nextra AAB=\nindex 0\n\n{note}"),
                TlogProofError::InvalidExtra {
                    line: "extra AAB=".into(),
                },
            ),
            (
                format!("{h}\nextra AA==\n"),
                TlogProofError::MissingBlankLine,
            ),
            (
                format!("{h}\n\n{note}"),
                TlogProofError::InvalidIndex {
                    number: 2,
                    line: String::new(),
                },
            ),
            (
                format!("{h}\nindex 01\n\n{note}"),
                TlogProofError::InvalidIndex {
                    number: 2,
                    line: "index 01".into(),
                },
            ),
            (
                format!("{h}\nextra AA==\nindex x\n\n{note}"),
                TlogProofError::InvalidIndex {
                    number: 3,
                    line: "index x".into(),
                },
            ),
            (
                format!("{h}\nindex 0\nextra AA==\n\n{note}"),
                TlogProofError::InvalidProofLine {
                    number: 3,
                    line: "extra AA==".into(),
                },
            ),
            (
                format!("{h}\nextra AA==\nindex 0\n{hash}\n{hash}x\n\n{note}"),
                TlogProofError::InvalidProofLine {
                    number: 5,
                    line: format!("{hash}x"),
                },
            ),
            (
                format!("{h}\nindex 0\n{hash}\n"),
                TlogProofError::MissingBlankLine,
            ),
            (
                format!("{h}\nindex 0\n{}\n{note}", format!("{hash}\n").repeat(65)),
                TlogProofError::TooManyProofLines,
            ),
            (
                format!("{h}\nindex 0\n\nnot a note\n"),
                TlogProofError::Note(NoteError::MissingSignatureBlock),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(TlogProof::parse(text.as_bytes()), Err(want), "{text:?}");
        }
        assert_eq!(
            TlogProof::parse(b"c2sp\xff"),
            Err(TlogProofError::NotUtf8 { valid_up_to: 4 })
        );
        let max = format!("{h}\nindex 0\n{}\n{note}", format!("{hash}\n").repeat(64));
        assert_eq!(
            TlogProof::parse(max.as_bytes()).map(|p| p.proof().len()),
            Ok(64)
        );
        // Empty extra data is kept apart from no extra line.
        let empty_extra = format!("{h}\nextra \nindex 0\n\n{note}");
        let p = TlogProof::parse(empty_extra.as_bytes()).expect("parses");
        assert_eq!(p.extra(), Some(&[][..]));
        assert_eq!(p.to_string(), empty_extra);
        assert_eq!(
            TlogProof::new(None, 0, vec![leaf(0); 65], note.into()),
            Err(TlogProofError::TooManyProofLines)
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(p) = TlogProof::parse(&bytes) {
                prop_assert_eq!(p.to_bytes(), bytes.clone());
            }
        }

        #[test]
        fn parse_is_canonical_on_near_proofs(
            s in "c2sp.org/tlog-proof@v1\n(extra [A-Za-z0-9+/=]{0,8}\n)?index [0-9]{1,3}\n([A-Za-z0-9+/]{43}=\n){0,2}\n[a-z]{1,3}\n\n\u{2014} [a-z] [A-Za-z0-9+/=]{8,12}\n"
        ) {
            if let Ok(p) = TlogProof::parse(s.as_bytes()) {
                prop_assert_eq!(p.to_string(), s);
            }
        }

        #[test]
        fn new_then_parse_round_trips(
            extra in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
            index in any::<u64>(),
            proof in proptest::collection::vec(any::<[u8; 32]>(), 0..=MAX_INCLUSION_PROOF_LINES),
        ) {
            let note = cosigned(&checkpoint_with_root(3, leaf(0)), &[1], T);
            let p = TlogProof::new(extra, index, proof.into_iter().map(Hash::from_bytes).collect(), note);
            prop_assert!(p.is_ok());
            if let Ok(p) = p {
                prop_assert_eq!(TlogProof::parse(&p.to_bytes()), Ok(p));
            }
        }
    }
}
