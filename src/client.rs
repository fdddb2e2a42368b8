//! The client commands: `grant`, `revoke`, `submit`. They sign with the same
//! ledger code a runtime would use and talk only to the public HTTP API.

use std::io::Read as _;
use std::path::PathBuf;

use anyhow::{Context, bail};
use lineage::keyfile::read_key_file;
use lineage_ledger::dsse::{PayloadType, SignedEnvelope};
use lineage_ledger::keys::parse_public_key;
use lineage_schemas::{GovernanceAction, GovernancePayload};
use time::format_description::well_known::Rfc3339;

/// The ledger `serve` runs by default (`config::DEFAULT_LISTEN`; a test pins it).
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:7878";

/// Flags of `grant` and `revoke`.
#[derive(clap::Args, Debug)]
pub struct GovernanceArgs {
    /// The authority's key file.
    #[arg(long)]
    authority_key: PathBuf,
    /// The runtime the key speaks for.
    #[arg(long)]
    runtime: String,
    /// The runtime's public key, standard base64.
    #[arg(long)]
    public_key: String,
    #[command(flatten)]
    server: ServerArgs,
}

/// How to reach the ledger (shared by `grant`, `revoke` and `submit`).
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
    /// Seconds to wait for the ledger's answer (connect, send, receipt)
    /// before giving up with an error.
    #[arg(long, env = "LINEAGE_TIMEOUT_SECS", default_value_t = 30)]
    timeout_secs: u64,
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

pub async fn governance(action: &str, a: GovernanceArgs) -> anyhow::Result<()> {
    let key = read_key_file(&a.authority_key)
        .with_context(|| format!("reading {}", a.authority_key.display()))?;
    parse_public_key(&a.public_key).context("--public-key")?;
    let payload = GovernancePayload {
        action: if action == "grant" {
            GovernanceAction::Grant
        } else {
            GovernanceAction::Revoke
        },
        runtime: Some(a.runtime),
        public_key: Some(a.public_key),
        not_before: None,
        not_after: None,
        scope: None,
        target: None,
        reason: None,
        at: now_rfc3339()?,
    };
    let bytes = serde_json::to_vec(&payload)?;
    let env = SignedEnvelope::sign(PayloadType::Governance, bytes, &key);
    post(&a.server, &env).await
}

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
    let env = SignedEnvelope::sign(PayloadType::Event, bytes, &key);
    post(&a.server, &env).await
}

/// The HTTP client for `server`: rustls with the built-in public roots, or
/// with only the authorities of `--ca-cert`.
fn client(server: &ServerArgs) -> anyhow::Result<reqwest::Client> {
    let mut builder =
        reqwest::Client::builder().timeout(std::time::Duration::from_secs(server.timeout_secs));
    if let Some(path) = &server.ca_cert {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let roots = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("--ca-cert {}: not a PEM certificate file", path.display()))?;
        if roots.is_empty() {
            bail!("--ca-cert {}: holds no PEM certificate", path.display());
        }
        builder = builder.tls_built_in_root_certs(false);
        for root in roots {
            builder = builder.add_root_certificate(root);
        }
    }
    builder.build().context("setting up the HTTP client")
}

async fn post(server: &ServerArgs, env: &SignedEnvelope) -> anyhow::Result<()> {
    let url = format!("{}/v1/entries", server.server.trim_end_matches('/'));
    let resp = client(server)?
        .post(&url)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(&env.to_wire())?)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = resp.status();
    let body = resp.text().await?;
    let text = match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(v) => serde_json::to_string_pretty(&v)?,
        Err(_) => body,
    };
    // Only a receipt goes to stdout (`submit ... > receipt.json`); a problem
    // goes to stderr with the non-zero exit.
    if !status.is_success() {
        eprintln!("{text}");
        bail!("the ledger answered {status}");
    }
    println!("{text}");
    Ok(())
}
