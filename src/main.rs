//! `lineage`: the ledger server and its command-line tools.
//!
//! `main` only parses the command line, sets up tracing, opens the store,
//! binds and serves; everything else lives in the library crates.

mod client;
mod config;
mod demo;

use lineage::export;

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use lineage::keyfile::{generate_signing_key, key_file_is_private, read_key_file, write_key_file};
use lineage_api::{AppState, HttpLimits};
use lineage_ledger::keys::parse_public_key;
use lineage_ledger::note::NoteSigner;
use lineage_ledger::rules::Authorities;
use lineage_ledger::store::RocksStore;
use lineage_log::{Clock, LogConfig, LogService};

#[derive(Parser, Debug)]
#[command(
    name = "lineage",
    version,
    about = "Append-only, verifiable execution-lineage ledger"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the ledger (embedded RocksDB in the data directory).
    Serve(config::ServeArgs),
    /// Run the ledger (same flags as serve; data in ./lineage-demo unless
    /// given) plus a simulator of runtimes posting signed lineage to it.
    Demo(config::ServeArgs),
    /// Create an Ed25519 key file (mode 0600) and print its public key and key ID.
    Keygen {
        /// Where to write the key (refuses to overwrite).
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Grant a runtime key (signed by an authority key).
    Grant(client::GovernanceArgs),
    /// Revoke a runtime key (signed by an authority key).
    Revoke(client::GovernanceArgs),
    /// Sign an event payload (JSON file, `-` for stdin) and submit it.
    Submit(client::SubmitArgs),
    /// Write the log as a static C2SP tlog-tiles tree for auditors (works on a
    /// running ledger: the store is opened read-only, as a snapshot).
    Export {
        /// The ledger's data directory.
        #[arg(long, default_value = "lineage-data")]
        data_dir: std::path::PathBuf,
        /// Output directory; full tiles already there are kept (incremental).
        #[arg(long)]
        out: std::path::PathBuf,
        /// Authority public keys to list in the manifest (default: the
        /// development authority key of the data directory, if any).
        #[arg(long = "authority")]
        authority: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match cli.command {
        Command::Serve(args) => rt.block_on(serve(args.resolve()?, None)),
        Command::Demo(args) => rt.block_on(demo::run(args)),
        Command::Keygen { out } => keygen(&out),
        Command::Grant(a) => rt.block_on(client::governance("grant", a)),
        Command::Revoke(a) => rt.block_on(client::governance("revoke", a)),
        Command::Submit(a) => rt.block_on(client::submit(a)),
        Command::Export {
            data_dir,
            out,
            mut authority,
        } => {
            let dev = data_dir.join("authority.key");
            if authority.is_empty() && dev.exists() {
                let key =
                    read_key_file(&dev).with_context(|| format!("reading {}", dev.display()))?;
                authority.push(lineage_ledger::keys::public_key_base64(
                    &key.verifying_key(),
                ));
            }
            let r = export::export(&data_dir, &out, &authority)?;
            println!(
                "exported tree size {} to {}: {} files written, {} kept",
                r.tree_size,
                out.display(),
                r.written,
                r.kept
            );
            Ok(())
        }
    }
}

fn keygen(out: &Path) -> anyhow::Result<()> {
    let key = generate_signing_key()?;
    write_key_file(out, &key).with_context(|| format!("writing {}", out.display()))?;
    let public = key.verifying_key();
    println!(
        "public_key: {}",
        lineage_ledger::keys::public_key_base64(&public)
    );
    println!(
        "key_id:     {}",
        lineage_ledger::keys::KeyId::from_public_key(&public)
    );
    Ok(())
}

/// Reads a key file, creating it if missing; refuses one others can read.
fn load_or_create_key(path: &Path, what: &str) -> anyhow::Result<ed25519_dalek::SigningKey> {
    if !path.exists() {
        let key = generate_signing_key()?;
        write_key_file(path, &key)
            .with_context(|| format!("creating {what} {}", path.display()))?;
        tracing::info!(path = %path.display(), "created {what}");
        return Ok(key);
    }
    if !key_file_is_private(path).with_context(|| format!("checking {}", path.display()))? {
        bail!(
            "{what} {} is readable by group or others; run `chmod 600 {}` and start again",
            path.display(),
            path.display()
        );
    }
    read_key_file(path).with_context(|| format!("reading {what} {}", path.display()))
}

/// Called once the listener is bound, with the base URL (`lineage demo`).
type OnListening = Box<dyn FnOnce(&str) + Send>;

/// What a data directory holds before `serve` opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataDir {
    /// Missing, empty, or only the key files an interrupted first start
    /// left: a new log is created, on purpose and loudly.
    New,
    /// A ledger (`db/` holds a RocksDB store).
    Ledger,
}

/// Files `serve` itself writes into a data directory before the store.
const OWN_KEY_FILES: [&str; 2] = ["log.key", "authority.key"];

/// Decides whether `dir` is an existing ledger, a place for a new one, or
/// something else, which is refused: a mistyped `--data-dir` must never
/// start a brand-new log next to unrelated files.
fn inspect_data_dir(dir: &Path) -> anyhow::Result<DataDir> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(DataDir::New),
        Err(e) => {
            return Err(e).with_context(|| format!("reading data directory {}", dir.display()));
        }
    };
    if dir.join("db").join("CURRENT").is_file() {
        return Ok(DataDir::Ledger);
    }
    let mut foreign: Vec<String> = Vec::new();
    for entry in entries {
        let name = entry
            .with_context(|| format!("reading data directory {}", dir.display()))?
            .file_name()
            .to_string_lossy()
            .into_owned();
        if !OWN_KEY_FILES.contains(&name.as_str()) {
            foreign.push(name);
        }
    }
    if foreign.is_empty() {
        return Ok(DataDir::New);
    }
    foreign.sort();
    foreign.truncate(5);
    bail!(
        "the data directory {} is not empty and holds no ledger (no db/CURRENT; it holds {}). \
         Refusing to create a new log there. Pass the --data-dir of an existing ledger, or a \
         new or empty directory to create one. Nothing was changed.",
        dir.display(),
        foreign.join(", ")
    )
}

async fn serve(cfg: config::ServeConfig, on_listening: Option<OnListening>) -> anyhow::Result<()> {
    let kind = inspect_data_dir(&cfg.data_dir)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    // First: a bad certificate or key stops the start, not every handshake.
    let tls = match &cfg.tls {
        None => None,
        Some((cert, key)) => Some(lineage_api::serve::Tls::from_pem_files(cert, key)?),
    };
    let log_key = load_or_create_key(&cfg.log_key, "log key")?;
    let log_key_id = lineage_ledger::keys::KeyId::from_public_key(&log_key.verifying_key());
    let signer = NoteSigner::new(&cfg.origin, log_key).context("origin is not a valid key name")?;
    let mut authority_keys = Vec::new();
    for (i, b64) in cfg.authority.iter().enumerate() {
        authority_keys
            .push(parse_public_key(b64).with_context(|| format!("authority[{i}]: {b64:?}"))?);
    }
    if authority_keys.is_empty() {
        let path = cfg.data_dir.join("authority.key");
        let key = load_or_create_key(&path, "development authority key")?;
        tracing::warn!(
            path = %path.display(),
            "NO --authority GIVEN: using a DEVELOPMENT authority key stored next to the data. \
             Anyone who can read it can grant runtime keys. Do not use this in production."
        );
        eprintln!(
            "WARNING: development authority key at {} (public key {}). Pass --authority for production.",
            path.display(),
            lineage_ledger::keys::public_key_base64(&key.verifying_key())
        );
        authority_keys.push(key.verifying_key());
    }
    let store = RocksStore::open(&cfg.data_dir.join("db"))
        .with_context(|| format!("opening the store in {}", cfg.data_dir.display()))?;
    let log = LogService::start(
        Arc::new(store),
        signer,
        Authorities::new(authority_keys),
        LogConfig {
            origin: cfg.origin.clone(),
            max_skew: time::Duration::try_from(cfg.max_skew).context("max_skew_secs")?,
            batch_max_entries: cfg.batch_max_entries,
            batch_linger: cfg.batch_linger,
            queue_depth: cfg.queue_depth,
        },
        Clock::System,
    )
    .map_err(|e| match e {
        lineage_log::StartError::Store(lineage_ledger::store::StoreError::MetaMismatch { .. }) => {
            anyhow::anyhow!(
                "{e}.\nThis data directory belongs to another log. Start with the same --origin and \
                 --log-key it was created with, or use another --data-dir. Nothing was changed."
            )
        }
        e => anyhow::Error::new(e).context("starting the log"),
    })?;
    let log = Arc::new(log);
    let listener = std::net::TcpListener::bind(cfg.listen)
        .with_context(|| format!("binding {}", cfg.listen))?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    if kind == DataDir::New {
        let key_id = log_key_id;
        let path = std::fs::canonicalize(&cfg.data_dir).unwrap_or_else(|_| cfg.data_dir.clone());
        tracing::warn!(origin = %cfg.origin, %key_id, path = %path.display(), "created a new log");
        eprintln!(
            "lineage: CREATED A NEW LOG: origin {}, log key ID {key_id}, in {}",
            cfg.origin,
            path.display()
        );
    }
    println!("lineage: origin {}", cfg.origin);
    println!("lineage: vkey {}", log.vkey);
    println!("lineage: tree size {}", log.head().size);
    println!("lineage: listening on {scheme}://{addr}");
    if let Some(hook) = on_listening {
        hook(&format!("{scheme}://{addr}"));
    }
    let state = AppState {
        log: log.clone(),
        limits: HttpLimits {
            max_body_bytes: cfg.max_body_bytes,
            max_batch: cfg.max_batch,
            request_timeout: cfg.request_timeout,
            max_in_flight: cfg.max_in_flight,
        },
        runtime_limiter: cfg
            .rate_limit
            .map(|(rate, burst)| Arc::new(lineage_api::access::RuntimeLimiter::new(rate, burst))),
    };
    let router = lineage::app(state, cfg.read_token.as_deref());
    let mut options = lineage_api::serve::ServeOptions::new(cfg.request_timeout);
    options.tls = tls;
    lineage_api::serve::serve_connections(listener, router, options, shutdown_signal()).await?;
    log.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
