//! The auditor's trust roots, read from the command line: the log's note
//! verifier key and Ed25519 public keys (authority and runtime keys).

use std::path::Path;

use ed25519_dalek::VerifyingKey;
use lineage_ledger::keys::parse_public_key;
use lineage_ledger::note::NoteVerifier;
use lineage_ledger::policy::Policy;

use crate::InputError;

/// Longest `--log-key` file read: a verifier key is about 100 bytes.
const MAX_VKEY_FILE_BYTES: u64 = 4096;

/// The log's note verifier key from `--log-key`: the verifier key string
/// itself (`<name>+<key id>+<base64>`), or the path of a file holding it on
/// one line. The string is tried first; a file is read only when the
/// argument is not a verifier key.
///
/// # Errors
/// [`InputError::LogKey`] when the argument is neither a verifier key nor an
/// existing file; [`InputError::LogKeyFile`] when the file's content is not
/// one; [`InputError::Io`] when the file cannot be read.
pub fn log_key(arg: &str) -> Result<NoteVerifier, InputError> {
    let error = match NoteVerifier::from_vkey(arg) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    let path = Path::new(arg);
    if !path.is_file() {
        return Err(InputError::LogKey {
            input: arg.chars().take(200).collect(),
            error,
        });
    }
    use std::io::Read as _;
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_VKEY_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(io)?;
    let line = text.strip_suffix('\n').unwrap_or(&text);
    NoteVerifier::from_vkey(line).map_err(|error| InputError::LogKeyFile {
        path: path.to_path_buf(),
        error,
    })
}

/// Longest `--policy` file read: a policy of hundreds of witnesses fits.
const MAX_POLICY_FILE_BYTES: u64 = 1 << 20;

/// Reads and parses a `--policy` file (c2sp.org/tlog-policy).
///
/// # Errors
/// [`InputError::Io`]; [`InputError::Policy`] naming the line of the first problem.
pub fn policy(path: &Path) -> Result<Policy, InputError> {
    use std::io::Read as _;
    let io = |source| InputError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .map_err(io)?
        .take(MAX_POLICY_FILE_BYTES)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    Policy::parse(&bytes).map_err(|error| InputError::Policy {
        path: path.to_path_buf(),
        error,
    })
}

/// The log key a command trusts, from `--log-key` and `--policy`:
///
/// - `--log-key` alone: that key (the behaviour without a policy);
/// - `--policy` alone: its single `log` line (several: [`InputError::PolicyLogs`]);
/// - both: `--log-key`, which must be one of the policy's `log` lines when it
///   has any ([`InputError::LogKeyNotInPolicy`]): two trust roots that
///   disagree are a mistake to report, not a choice to make silently. A
///   policy without `log` lines leaves the log to `--log-key`.
///
/// # Errors
/// As above; [`InputError::NoLogKey`] with neither; as [`log_key`].
pub fn resolve_log_key(
    arg: Option<&str>,
    policy: Option<&Policy>,
) -> Result<NoteVerifier, InputError> {
    let logs = policy.map(Policy::logs).unwrap_or_default();
    match arg {
        Some(arg) => {
            let key = log_key(arg)?;
            if logs.is_empty() || logs.iter().any(|l| *l.verifier() == key) {
                Ok(key)
            } else {
                Err(InputError::LogKeyNotInPolicy {
                    log_key: key.vkey(),
                    policy_logs: logs.iter().map(|l| l.verifier().vkey()).collect(),
                })
            }
        }
        None => match logs {
            [] => Err(InputError::NoLogKey),
            [one] => Ok(one.verifier().clone()),
            more => Err(InputError::PolicyLogs { count: more.len() }),
        },
    }
}

/// An Ed25519 public key given as `flag`: canonical standard base64 of 32
/// bytes, not a small-order point (the ledger's own rule for keys).
///
/// # Errors
/// [`InputError::PublicKey`] naming the flag and the rule broken.
pub fn public_key(flag: &'static str, text: &str) -> Result<VerifyingKey, InputError> {
    parse_public_key(text).map_err(|error| InputError::PublicKey {
        flag,
        input: text.chars().take(80).collect(),
        error,
    })
}

/// Every key of a repeatable flag, see [`public_key`].
///
/// # Errors
/// The first key that does not parse.
pub fn public_keys(flag: &'static str, texts: &[String]) -> Result<Vec<VerifyingKey>, InputError> {
    texts.iter().map(|t| public_key(flag, t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use lineage_ledger::keys::public_key_base64;
    use lineage_ledger::note::NoteSigner;

    #[test]
    fn log_key_from_string_or_file() {
        let signer =
            NoteSigner::new("example.com/log", SigningKey::from_bytes(&[1; 32])).expect("name");
        let vkey = signer.verifier().vkey();
        assert_eq!(log_key(&vkey).ok(), Some(signer.verifier()));

        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("vkey");
        std::fs::write(&file, format!("{vkey}\n")).expect("write");
        let path = file.to_str().unwrap_or_default();
        assert_eq!(log_key(path).ok(), Some(signer.verifier()));

        std::fs::write(&file, "not a key\n").expect("write");
        assert!(matches!(log_key(path), Err(InputError::LogKeyFile { .. })));
        assert!(matches!(
            log_key("no/such/file"),
            Err(InputError::LogKey { .. })
        ));
    }

    #[test]
    fn log_key_from_flag_or_policy() {
        let signer =
            NoteSigner::new("example.com/log", SigningKey::from_bytes(&[1; 32])).expect("name");
        let other =
            NoteSigner::new("example.com/log", SigningKey::from_bytes(&[2; 32])).expect("name");
        let (vkey, other_vkey) = (signer.verifier().vkey(), other.verifier().vkey());
        let parse = |text: String| Policy::parse(text.as_bytes()).expect("policy");
        let with_log = parse(format!("log {vkey}\nquorum none\n"));
        let two_logs = parse(format!("log {vkey}\nlog {other_vkey}\nquorum none\n"));
        let no_log = parse("quorum none\n".to_owned());

        assert_eq!(
            resolve_log_key(Some(&vkey), None).ok(),
            Some(signer.verifier())
        );
        assert_eq!(
            resolve_log_key(None, Some(&with_log)).ok(),
            Some(signer.verifier())
        );
        assert_eq!(
            resolve_log_key(Some(&vkey), Some(&with_log)).ok(),
            Some(signer.verifier())
        );
        assert_eq!(
            resolve_log_key(Some(&other_vkey), Some(&two_logs)).ok(),
            Some(other.verifier())
        );
        assert_eq!(
            resolve_log_key(Some(&vkey), Some(&no_log)).ok(),
            Some(signer.verifier())
        );
        let err = resolve_log_key(Some(&other_vkey), Some(&with_log)).map(|_| ());
        assert!(
            matches!(&err, Err(InputError::LogKeyNotInPolicy { log_key, policy_logs })
                if *log_key == other_vkey && *policy_logs == [vkey.clone()]),
            "{err:?}"
        );
        assert!(matches!(
            resolve_log_key(None, Some(&two_logs)),
            Err(InputError::PolicyLogs { count: 2 })
        ));
        assert!(matches!(
            resolve_log_key(None, Some(&no_log)),
            Err(InputError::NoLogKey)
        ));
        assert!(matches!(
            resolve_log_key(None, None),
            Err(InputError::NoLogKey)
        ));
    }

    #[test]
    fn policy_files_are_parsed_strictly() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("policy");
        std::fs::write(&file, "quorum none\n").expect("write");
        assert!(policy(&file).is_ok());
        std::fs::write(&file, "quorum none\nbogus line\n").expect("write");
        let err = policy(&file).map(|_| ());
        assert!(
            matches!(&err, Err(InputError::Policy { error, .. }) if error.to_string().starts_with("policy line 2:")),
            "{err:?}"
        );
        assert!(matches!(
            policy(&dir.path().join("absent")),
            Err(InputError::Io { .. })
        ));
    }

    #[test]
    fn public_keys_follow_the_ledger_rules() {
        let good = public_key_base64(&SigningKey::from_bytes(&[2; 32]).verifying_key());
        assert!(public_key("--authority", &good).is_ok());
        assert!(public_key("--authority", good.trim_end_matches('=')).is_err());
        // The identity point is small-order: refused.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        let weak = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, weak);
        let err = public_key("--runtime-key", &weak).map(|_| ());
        assert!(
            matches!(
                err,
                Err(InputError::PublicKey {
                    flag: "--runtime-key",
                    ..
                })
            ),
            "{err:?}"
        );
    }
}
