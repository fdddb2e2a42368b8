//! `lineage-verify`: parses the command line, runs one command of the
//! library, prints its report (text, or JSON with `--json`) and exits with
//! its verdict's code. Progress goes to stderr: a bar on a terminal, plain
//! lines otherwise.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lineage_ledger::note::NoteVerifier;
use lineage_verify::ancestry::ancestry;
use lineage_verify::audit::{AuditOptions, DEFAULT_MAX_SKEW_SECS, audit};
use lineage_verify::consistency::verify_witnessed_checkpoints;
use lineage_verify::receipt::{ReceiptOptions, verify_receipt};
use lineage_verify::witnesses::{Freshness, WitnessPolicy, parse_max_age};
use lineage_verify::{InputError, Progress, Silent, Verdict, exit, trust};
use serde_json::{Value, json};

const EXIT_CODES: &str = "\
Exit codes:
  0  everything verified
  1  verification failed (every failure is named in the output)
  2  usage error, or an input could not be read (nothing was verified)
  3  fork: two checkpoints validly signed by the log key that are not consistent

Trust: only --log-key, --policy, --authority and --runtime-key are trusted.
With --policy (C2SP tlog-policy), the checkpoint must also be cosigned by a
quorum of its witnesses (a bad cosignature by a known witness, or an unmet
group, exits 1 and is named); --max-age reads this machine's clock. `audit` and
`lineage` replay governance, so they need --authority <B64> (repeatable, one
per key): the authority public keys as the log's operator publishes them out of
band, next to the vkey. Without it they exit 2 and verify nothing; an export's
manifest.json is written by the operator being audited, so its keys are never
used (the error prints them as an untrusted hint). `audit --tree-only` needs no
authority key.";

#[derive(Debug, Parser)]
#[command(
    name = "lineage-verify",
    version,
    about = "Offline verifier for Lineage logs: receipts, consistency and forks, full audits of exports",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Print one JSON document on stdout instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// No progress output on stderr.
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Verify a receipt (lineage-bundle/v1 JSON, or a C2SP tlog-proof text with the
    /// log entry in its extra line): checkpoint, witnesses, inclusion proof, signature, event ID.
    // The command keeps its first name, `bundle`, like the receipt's format string.
    #[command(name = "bundle", after_help = EXIT_CODES)]
    Receipt {
        /// The receipt file: lineage-bundle/v1 JSON or c2sp.org/tlog-proof@v1 text.
        receipt: PathBuf,
        /// The log's note verifier key, or a file holding it. Optional with
        /// --policy, whose single `log` line is then the key; with both, they must agree.
        #[arg(long, value_name = "VKEY", required_unless_present = "policy")]
        log_key: Option<String>,
        #[command(flatten)]
        witnesses: WitnessArgs,
        /// An authority public key (base64); checks governance entries' signatures. Repeatable.
        #[arg(long = "authority", value_name = "B64")]
        authorities: Vec<String>,
        /// A runtime public key (base64); checks event signatures. Repeatable.
        #[arg(long = "runtime-key", value_name = "B64")]
        runtime_keys: Vec<String>,
        /// Verify the rest when the signer's key is not given (default: that fails the receipt).
        #[arg(long)]
        allow_unknown_signer: bool,
    },
    /// Verify two checkpoints and the consistency proof between them; detect forks.
    #[command(after_help = EXIT_CODES)]
    Consistency {
        /// The older signed checkpoint.
        old: PathBuf,
        /// The newer signed checkpoint.
        new: PathBuf,
        /// The proof: {"first": M, "second": N, "proof": [base64...]} (GET /v1/proofs/consistency).
        proof: PathBuf,
        /// The log's note verifier key, or a file holding it. Optional with
        /// --policy, whose single `log` line is then the key; with both, they must agree.
        #[arg(long, value_name = "VKEY", required_unless_present = "policy")]
        log_key: Option<String>,
        #[command(flatten)]
        witnesses: WitnessArgs,
    },
    /// Replay an exported log: tiles, root, signatures, governance and lineage rules.
    #[command(after_help = EXIT_CODES)]
    Audit {
        /// The export directory (checkpoint, tile/, manifest.json).
        dir: PathBuf,
        /// The log's note verifier key, or a file holding it. Optional with
        /// --policy, whose single `log` line is then the key; with both, they must agree.
        #[arg(long, value_name = "VKEY", required_unless_present = "policy")]
        log_key: Option<String>,
        #[command(flatten)]
        witnesses: WitnessArgs,
        /// An authority public key (base64) from a source you trust, not the export. Repeatable.
        /// Required unless --tree-only; manifest.json keys are never used.
        #[arg(long = "authority", value_name = "B64")]
        authorities: Vec<String>,
        /// An older signed checkpoint you kept: prove the export extends it (else: fork, exit 3).
        #[arg(long, value_name = "CHECKPOINT")]
        since: Option<PathBuf>,
        /// Check tiles, bundles, root and checkpoint only; do not decode entries.
        #[arg(long)]
        tree_only: bool,
        /// The ledger's clock-skew bound for event and governance timestamps.
        #[arg(long, value_name = "SECS", default_value_t = DEFAULT_MAX_SKEW_SECS)]
        max_skew_secs: u64,
    },
    /// Print and verify the ancestry of one event (prev and parents, back to workload starts).
    #[command(after_help = EXIT_CODES)]
    Lineage {
        /// The event ID (64 lowercase hex).
        event_id: String,
        /// The export directory.
        dir: PathBuf,
        /// The log's note verifier key, or a file holding it.
        #[arg(long, value_name = "VKEY")]
        log_key: String,
        /// An authority public key (base64) from a source you trust, not the export. Repeatable.
        /// Required; manifest.json keys are never used.
        #[arg(long = "authority", value_name = "B64")]
        authorities: Vec<String>,
        /// The ledger's clock-skew bound for event and governance timestamps.
        #[arg(long, value_name = "SECS", default_value_t = DEFAULT_MAX_SKEW_SECS)]
        max_skew_secs: u64,
    },
}

/// `--policy` and `--max-age`, shared by `bundle`, `consistency` and `audit`.
#[derive(Debug, clap::Args)]
struct WitnessArgs {
    /// A C2SP tlog-policy file: the checkpoint must carry the log's signature,
    /// valid cosignatures by its known witnesses, and meet its quorum.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Count only cosignatures at most this old (30s, 10m, 24h, 7d, 1h30m), by
    /// this machine's clock; one dated over 60s ahead of it does not count either.
    #[arg(long, value_name = "DURATION", value_parser = parse_max_age, requires = "policy")]
    max_age: Option<u64>,
}

impl WitnessArgs {
    /// The trusted log key and the witness policy. Reads the clock only for `--max-age`.
    fn resolve(
        &self,
        log_key: Option<&str>,
    ) -> Result<(NoteVerifier, Option<WitnessPolicy>), InputError> {
        let policy = self.policy.as_deref().map(trust::policy).transpose()?;
        let key = trust::resolve_log_key(log_key, policy.as_ref())?;
        let freshness = match self.max_age {
            None => None,
            Some(_) if policy.is_none() => return Err(InputError::MaxAgeWithoutPolicy),
            Some(max_age) => Some(Freshness {
                max_age,
                now: now_secs(),
            }),
        };
        Ok((
            key,
            policy.map(|policy| WitnessPolicy { policy, freshness }),
        ))
    }
}

/// This machine's clock, POSIX seconds (0 if it is set before 1970, which
/// drops every cosignature as being from the future).
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A report of any command.
struct Output {
    verdict: Verdict,
    text: String,
    json: Value,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut progress: Box<dyn Progress> = if cli.quiet {
        Box::new(Silent)
    } else if std::io::stderr().is_terminal() {
        Box::new(Bar(None))
    } else {
        Box::new(PlainLines::default())
    };
    let result = run(cli.command, progress.as_mut());
    let mut stdout = std::io::stdout().lock();
    let code = match result {
        Ok(out) => {
            let printed = if cli.json {
                writeln!(stdout, "{}", out.json)
            } else {
                write!(stdout, "{}", out.text)
            };
            if printed.is_err() {
                return ExitCode::from(exit::USAGE);
            }
            out.verdict.exit_code()
        }
        Err(e) => {
            if cli.json {
                let _ = writeln!(
                    stdout,
                    "{}",
                    json!({"verdict": "error", "exit_code": exit::USAGE, "error": format!("{e:#}")})
                );
            }
            eprintln!("error: {e:#}");
            exit::USAGE
        }
    };
    ExitCode::from(code)
}

fn read(path: &Path) -> Result<Vec<u8>, InputError> {
    std::fs::read(path).map_err(|source| InputError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn skew(secs: u64) -> time::Duration {
    time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

fn run(command: Command, progress: &mut dyn Progress) -> anyhow::Result<Output> {
    Ok(match command {
        Command::Receipt {
            receipt,
            log_key,
            witnesses,
            authorities,
            runtime_keys,
            allow_unknown_signer,
        } => {
            let (log_key, witnesses) = witnesses.resolve(log_key.as_deref())?;
            let authorities = trust::public_keys("--authority", &authorities)?;
            let runtime_keys = trust::public_keys("--runtime-key", &runtime_keys)?;
            let bytes = read(&receipt)?;
            let report = verify_receipt(
                &bytes,
                &ReceiptOptions {
                    log_key: &log_key,
                    runtime_keys: &runtime_keys,
                    authorities: &authorities,
                    allow_unknown_signer,
                    witnesses: witnesses.as_ref(),
                },
            );
            Output {
                verdict: report.verdict(),
                text: report.to_text(),
                json: report.to_json(),
            }
        }
        Command::Consistency {
            old,
            new,
            proof,
            log_key,
            witnesses,
        } => {
            let (log_key, witnesses) = witnesses.resolve(log_key.as_deref())?;
            let report = verify_witnessed_checkpoints(
                &read(&old)?,
                &read(&new)?,
                &read(&proof)?,
                &log_key,
                witnesses.as_ref(),
            );
            Output {
                verdict: report.verdict(),
                text: report.to_text(),
                json: report.to_json(),
            }
        }
        Command::Audit {
            dir,
            log_key,
            witnesses,
            authorities,
            since,
            tree_only,
            max_skew_secs,
        } => {
            let (log_key, witnesses) = witnesses.resolve(log_key.as_deref())?;
            let opts = AuditOptions {
                authorities: trust::public_keys("--authority", &authorities)?,
                since: since.as_deref().map(read).transpose()?,
                tree_only,
                max_skew: skew(max_skew_secs),
                witnesses,
                ..AuditOptions::new(log_key)
            };
            let report = audit(&dir, &opts, progress)?;
            Output {
                verdict: report.verdict(),
                text: report.to_text(),
                json: report.to_json(),
            }
        }
        Command::Lineage {
            event_id,
            dir,
            log_key,
            authorities,
            max_skew_secs,
        } => {
            let target = event_id.parse().map_err(InputError::EventId)?;
            let opts = AuditOptions {
                authorities: trust::public_keys("--authority", &authorities)?,
                max_skew: skew(max_skew_secs),
                ..AuditOptions::new(trust::log_key(&log_key)?)
            };
            let report = ancestry(target, &dir, &opts, progress)?;
            Output {
                verdict: report.verdict(),
                text: report.to_text(),
                json: report.to_json(),
            }
        }
    })
}

/// A progress bar on a terminal.
struct Bar(Option<indicatif::ProgressBar>);

impl Progress for Bar {
    fn start(&mut self, total: u64) {
        let bar = indicatif::ProgressBar::new(total);
        let style = indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:40}] {human_pos}/{human_len} entries ({per_sec}, eta {eta})",
        )
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        self.0 = Some(bar);
    }

    fn advance(&mut self, done: u64) {
        if let Some(bar) = &self.0 {
            bar.set_position(done);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.0.take() {
            bar.finish_and_clear();
        }
    }
}

/// Plain progress lines on stderr (not a terminal): one per tenth of the work.
#[derive(Default)]
struct PlainLines {
    total: u64,
    printed: u64,
}

impl Progress for PlainLines {
    fn start(&mut self, total: u64) {
        self.total = total;
        self.printed = 0;
        eprintln!("progress: {total} entries to read");
    }

    fn advance(&mut self, done: u64) {
        if self.total == 0 {
            return;
        }
        let tenth = done.saturating_mul(10) / self.total;
        if tenth > self.printed {
            self.printed = tenth;
            eprintln!("progress: {done}/{} entries ({}%)", self.total, tenth * 10);
        }
    }

    fn finish(&mut self) {}
}
