//! The client commands: `grant`, `revoke`, `halt`, `resume`, `submit`. They
//! sign with the same ledger code a runtime would use and talk only to the
//! public HTTP API.
//!
//! Governance flags are checked with the ledger's own parsers before anything
//! is signed or sent: a malformed value is a usage error (exit code 2, from
//! clap) and no request is made.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use lineage::keyfile::read_key_file;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::event::{
    FieldReason, GovernanceStatement, MAX_REASON_CHARS, Pattern, PayloadError, RuntimeId,
    WorkloadId, parse_timestamp,
};
use lineage_ledger::keys::parse_public_key;
use lineage_schemas::{GovernanceAction, GovernancePayload, GrantScope, HaltTarget};
use time::format_description::well_known::Rfc3339;

/// The ledger `serve` runs by default (`config::DEFAULT_LISTEN`; a test pins it).
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:7878";

/// Flags of `grant`.
#[derive(clap::Args, Debug)]
pub struct GrantArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Events integrated before this time are refused `key_not_yet_valid`
    /// (RFC 3339 in UTC, e.g. 2030-01-01T00:00:00Z). Default: valid at once.
    #[arg(long, value_name = "RFC3339", value_parser = timestamp)]
    not_before: Option<String>,
    /// Events integrated at or after this time are refused `key_expired`
    /// (RFC 3339 in UTC, after --not-before). Default: no end. A time in the
    /// past is accepted: the grant is logged and the key signs nothing.
    #[arg(long, value_name = "RFC3339", value_parser = timestamp)]
    not_after: Option<String>,
    /// Event kinds the key may sign, comma-separated patterns: an exact kind,
    /// or a prefix ending in `*` (`tool.*,workload.*`). Other kinds are
    /// refused `out_of_scope`. Default: every kind.
    #[arg(long, value_name = "PATTERNS", value_delimiter = ',', value_parser = pattern)]
    scope_kinds: Option<Vec<String>>,
    /// Workloads the key may sign events of, comma-separated patterns
    /// (`run-*,nightly`). Default: every workload.
    #[arg(long, value_name = "PATTERNS", value_delimiter = ',', value_parser = pattern)]
    scope_workloads: Option<Vec<String>>,
    /// Trust domains the key may sign events in, comma-separated patterns
    /// (`corp.*`); an event that states no `domain` is then refused.
    /// Default: any domain, or none.
    #[arg(long, value_name = "PATTERNS", value_delimiter = ',', value_parser = pattern)]
    scope_domains: Option<Vec<String>>,
    #[command(flatten)]
    server: ServerArgs,
}

/// Flags of `revoke`.
#[derive(clap::Args, Debug)]
pub struct RevokeArgs {
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    server: ServerArgs,
}

/// The key a `grant` or `revoke` names.
#[derive(clap::Args, Debug)]
struct KeyArgs {
    /// The authority's key file (the signer of the statement).
    #[arg(long, value_name = "FILE")]
    authority_key: PathBuf,
    /// The runtime the key speaks for.
    #[arg(long, value_parser = runtime_id)]
    runtime: String,
    /// The runtime's public key, standard base64 (as `lineage keygen` prints it).
    #[arg(long, value_parser = public_key)]
    public_key: String,
}

/// Flags of `halt` and `resume`: exactly one target.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("target").required(true).args(["workload", "runtime"])))]
pub struct HaltArgs {
    /// The authority's key file (the signer of the statement).
    #[arg(long, value_name = "FILE")]
    authority_key: PathBuf,
    /// A workload: it and every workload deriving from it (naming a parent
    /// event in it, transitively).
    #[arg(long, value_name = "WORKLOAD", value_parser = workload_id)]
    workload: Option<String>,
    /// A runtime: every workload it started, and every workload deriving
    /// from those.
    #[arg(long, value_name = "RUNTIME", value_parser = runtime_id)]
    runtime: Option<String>,
    /// Why, for the log and its readers (1-1024 characters).
    #[arg(long, value_name = "TEXT", value_parser = reason)]
    reason: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

fn timestamp(text: &str) -> Result<String, String> {
    parse_timestamp(text).map_err(|r| match r {
        FieldReason::NotUtc => format!("{r} (e.g. 2030-01-01T00:00:00Z)"),
        _ => format!("{r}, such as 2030-01-01T00:00:00Z"),
    })?;
    Ok(text.to_owned())
}

fn pattern(text: &str) -> Result<String, String> {
    Pattern::new(text).map_err(|r| {
        format!(
            "{r} (a pattern is an exact value or a prefix ending in `*`, from [A-Za-z0-9._:/@-])"
        )
    })?;
    Ok(text.to_owned())
}

fn runtime_id(text: &str) -> Result<String, String> {
    RuntimeId::new(text).map_err(|r| r.to_string())?;
    Ok(text.to_owned())
}

fn workload_id(text: &str) -> Result<String, String> {
    WorkloadId::new(text).map_err(|r| r.to_string())?;
    Ok(text.to_owned())
}

fn public_key(text: &str) -> Result<String, String> {
    parse_public_key(text).map_err(|e| e.to_string())?;
    Ok(text.to_owned())
}

fn reason(text: &str) -> Result<String, String> {
    let len = text.chars().count();
    if len == 0 || len > MAX_REASON_CHARS {
        return Err(FieldReason::Length {
            len,
            min: 1,
            max: MAX_REASON_CHARS,
        }
        .to_string());
    }
    Ok(text.to_owned())
}

/// How to reach and trust the ledger (shared by every client command).
#[derive(clap::Args, Debug)]
pub struct ServerArgs {
    /// Ledger base URL (`http://` or `https://`).
    #[arg(long, env = "LINEAGE_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// PEM file of the certificate authorities to trust for an `https://`
    /// server, instead of the built-in public roots (for a private CA or a
    /// self-signed ledger certificate).
    #[arg(long, env = "LINEAGE_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// Seconds to wait for the ledger's answer (connect, send, receipt),
    /// retries of transient failures included, before giving up with an
    /// error.
    #[arg(long, env = "LINEAGE_TIMEOUT_SECS", default_value_t = 30)]
    timeout_secs: u64,
    /// The log's verifier key (`<name>+<hash>+<base64>`, as `lineage serve`
    /// prints it): the receipt must be signed by it. Without it (and without
    /// a --state-file that pinned one), the key the server serves is used,
    /// which checks the receipt's proof but not who signed it.
    #[arg(long, env = "LINEAGE_LOG_KEY", value_name = "VKEY")]
    log_key: Option<String>,
    /// The bearer token of a ledger started with --read-token: checking a
    /// receipt reads the log key and consistency proofs.
    #[arg(
        long,
        env = "LINEAGE_READ_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    read_token: Option<String>,
    /// The client state file (pinned log key, latest checkpoint seen): every
    /// receipt's checkpoint is proven consistent with the one kept there.
    #[arg(long, env = "LINEAGE_STATE_FILE", value_name = "FILE")]
    state_file: Option<PathBuf>,
}

/// Flags of `submit`.
#[derive(clap::Args, Debug)]
pub struct SubmitArgs {
    /// The runtime's key file.
    #[arg(long)]
    key: PathBuf,
    #[command(flatten)]
    server: ServerArgs,
    /// The event payload (a JSON object; `-` reads stdin). An `at` field is
    /// added with the current time when missing.
    event: PathBuf,
}

fn now_rfc3339() -> anyhow::Result<String> {
    Ok(time::OffsetDateTime::now_utc().format(&Rfc3339)?)
}

/// A governance statement whose flags passed the ledger's own checks: only
/// signing and sending are left.
#[derive(Debug)]
pub struct Governance {
    authority_key: PathBuf,
    payload: GovernancePayload,
    server: ServerArgs,
}

/// The `grant` statement, or why its flags are refused.
///
/// # Errors
/// A message naming the flag, e.g. `--not-after must be after --not-before`.
pub fn grant(a: GrantArgs) -> Result<Governance, String> {
    let scope = GrantScope {
        kinds: a.scope_kinds,
        workloads: a.scope_workloads,
        domains: a.scope_domains,
    };
    let given = scope.kinds.is_some() || scope.workloads.is_some() || scope.domains.is_some();
    let scope = given.then_some(scope);
    let payload = GovernancePayload {
        not_before: a.not_before,
        not_after: a.not_after,
        scope,
        ..key_payload(GovernanceAction::Grant, &a.key)?
    };
    let statement = check(&payload)?;
    if let GovernanceStatement::Key(k) = &statement
        && let Some(end) = k.not_after
        && end <= k.at
    {
        eprintln!(
            "note: --not-after is already past: the grant is logged, and every event signed by \
             this key is refused key_expired"
        );
    }
    Ok(Governance {
        authority_key: a.key.authority_key,
        payload,
        server: a.server,
    })
}

/// The `revoke` statement, or why its flags are refused.
///
/// # Errors
/// A message naming the flag.
pub fn revoke(a: RevokeArgs) -> Result<Governance, String> {
    let payload = key_payload(GovernanceAction::Revoke, &a.key)?;
    check(&payload)?;
    Ok(Governance {
        authority_key: a.key.authority_key,
        payload,
        server: a.server,
    })
}

/// The `halt` or `resume` statement, or why its flags are refused.
///
/// # Errors
/// A message naming the flag.
pub fn halt(action: GovernanceAction, a: HaltArgs) -> Result<Governance, String> {
    let target = match (a.workload, a.runtime) {
        (Some(w), None) => HaltTarget::Workload(w),
        (None, Some(r)) => HaltTarget::Runtime(r),
        // clap's `target` group already requires exactly one.
        _ => return Err("give exactly one of --workload or --runtime".into()),
    };
    let at = now_rfc3339().map_err(|e| e.to_string())?;
    let payload = GovernancePayload::halt(action, target, a.reason, at);
    check(&payload)?;
    Ok(Governance {
        authority_key: a.authority_key,
        payload,
        server: a.server,
    })
}

fn key_payload(action: GovernanceAction, k: &KeyArgs) -> Result<GovernancePayload, String> {
    Ok(GovernancePayload::key(
        action,
        k.runtime.clone(),
        k.public_key.clone(),
        now_rfc3339().map_err(|e| e.to_string())?,
    ))
}

/// Runs the ledger's own check of a governance payload, with its field
/// named as the flag that set it.
fn check(payload: &GovernancePayload) -> Result<GovernanceStatement, String> {
    GovernanceStatement::try_from(payload).map_err(|e| match e {
        PayloadError::Field {
            reason: FieldReason::EmptyWindow,
            ..
        } => "--not-after must be after --not-before".to_owned(),
        PayloadError::Field { field, reason } => {
            let flag = match field.split(['[', '.']).collect::<Vec<_>>().as_slice() {
                ["scope", set, ..] => format!("--scope-{set}"),
                ["target", which, ..] => format!("--{which}"),
                [name, ..] => format!("--{}", name.replace('_', "-")),
                [] => field.clone(),
            };
            format!("{flag}: {reason}")
        }
        other => other.to_string(),
    })
}

/// Signs a checked statement with the authority key and submits it; the
/// verified receipt goes to stdout.
///
/// # Errors
/// An unreadable key file, an unreachable or untrusted ledger, or the
/// ledger's refusal (its problem is printed on stderr).
pub async fn send(g: Governance) -> anyhow::Result<()> {
    let key = read_key_file(&g.authority_key)
        .with_context(|| format!("reading {}", g.authority_key.display()))?;
    let client = sdk_client(&g.server)?;
    let result = client.authority(key).submit(&g.payload).await;
    answer(&g.server, result)
}

/// Signs the event file's payload, exactly as written (with `at` added when
/// missing), and submits it; the verified receipt goes to stdout.
///
/// # Errors
/// As [`send`].
pub async fn submit(a: SubmitArgs) -> anyhow::Result<()> {
    let key = read_key_file(&a.key).with_context(|| format!("reading {}", a.key.display()))?;
    let mut raw = Vec::new();
    if a.event.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut raw)?;
    } else {
        raw = std::fs::read(&a.event).with_context(|| format!("reading {}", a.event.display()))?;
    }
    let mut value: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&raw).context("the event file must hold a JSON object")?;
    let bytes = if value.contains_key("at") {
        // Sign the bytes exactly as written (the event ID is their hash).
        let text = String::from_utf8(raw).context("the event file must be UTF-8")?;
        text.trim().as_bytes().to_vec()
    } else {
        value.insert("at".into(), now_rfc3339()?.into());
        serde_json::to_vec(&value)?
    };
    // The ledger judges the payload (a malformed one is its problem to
    // name): signed as is, submitted and verified by the runtime client.
    let env = SignedEnvelope::sign(PayloadType::Event, bytes, &key);
    let client = sdk_client(&a.server)?;
    let result = client.submit(&env).await;
    answer(&a.server, result)
}

/// The runtime client for `server`.
fn sdk_client(server: &ServerArgs) -> anyhow::Result<lineage_client::Client> {
    let timeout = std::time::Duration::from_secs(server.timeout_secs);
    let config = lineage_client::Config {
        log_key: server.log_key.clone(),
        state_file: server.state_file.clone(),
        ca_cert: server.ca_cert.clone(),
        read_token: server.read_token.clone(),
        request_timeout: timeout,
        retry_deadline: timeout,
        ..lineage_client::Config::new(server.server.clone())
    };
    lineage_client::Client::new(config).map_err(|e| match e {
        // The client names the file; the user knows the flag.
        lineage_client::Error::Invalid(why) if why.starts_with("CA file") => {
            anyhow::anyhow!("--ca-cert: {why}")
        }
        other => anyhow::anyhow!("{other}"),
    })
}

/// Prints a receipt on stdout (`submit ... > receipt.json`), or a refusal's
/// problem on stderr with the non-zero exit.
fn answer(
    server: &ServerArgs,
    result: Result<lineage_client::Receipt, lineage_client::Error>,
) -> anyhow::Result<()> {
    match result {
        Ok(receipt) => {
            println!("{}", serde_json::to_string_pretty(&receipt.bundle)?);
            Ok(())
        }
        Err(lineage_client::Error::Denied(d)) => {
            eprintln!("{}", serde_json::to_string_pretty(&d.to_problem())?);
            bail!("the ledger answered {} {}", d.status, d.title)
        }
        Err(e) => bail!(
            "POST {}/v1/entries: {e}",
            server.server.trim_end_matches('/')
        ),
    }
}
