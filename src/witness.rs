//! `lineage witness`: run this ledger's code as a C2SP tlog-witness for other logs
//! (`serve`), trust a log's key (`add-log`), and show what the witness knows
//! (`status`). The witness itself is the `lineage-witness` crate; this module only
//! reads flags and key files, opens, binds and serves.
//!
//! Data directory: `db/` (the witness's RocksDB store) and, unless `--key` says
//! otherwise, `witness.key` (mode 0600, as `lineage keygen` writes it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use lineage::keyfile::{generate_signing_key, key_file_is_private, read_key_file, write_key_file};
use lineage_witness::{Clock, Status, Witness, WitnessStore};

/// Default data directory of `lineage witness`.
const DEFAULT_DATA_DIR: &str = "lineage-witness";

/// The `lineage witness` subcommands.
#[derive(Subcommand, Debug)]
pub enum WitnessCommand {
    /// Serve the witness: `POST /add-checkpoint` (c2sp.org/tlog-witness), and
    /// `GET /status`, `/evidence`, `/<origin hash>/checkpoint`. Creates the key
    /// and the store when new; prints the vkey a log's policy needs.
    Serve(ServeArgs),
    /// Trust a log key for an origin (works while the witness is stopped or before
    /// its first start: the store is one process's; restart a running witness).
    AddLog {
        /// The witness's data directory.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// The log's origin (its checkpoints' first line).
        #[arg(long)]
        origin: String,
        /// The log's verifier key (`<origin>+<key ID>+<base64>`, Ed25519 note key),
        /// as `lineage serve` prints it after "vkey".
        #[arg(long)]
        vkey: String,
    },
    /// Print the witness's name, vkey, logs (keys, latest cosigned size) and
    /// evidence count (works while it runs: the store is read as a snapshot).
    Status {
        /// The witness's data directory.
        #[arg(long, default_value = DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Print JSON (the same document as `GET /status`).
        #[arg(long)]
        json: bool,
    },
}

/// Flags of `lineage witness serve`.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// The witness's data directory (created when missing).
    #[arg(long, default_value = DEFAULT_DATA_DIR)]
    data_dir: PathBuf,
    /// Address to listen on (loopback by default: put a TLS proxy or `--tls-*` in
    /// front before exposing it).
    #[arg(long, default_value = "127.0.0.1:7380")]
    listen: SocketAddr,
    /// The witness's Ed25519 key file (default `<data-dir>/witness.key`, created
    /// when missing and the store is new).
    #[arg(long)]
    key: Option<PathBuf>,
    /// The witness's name (its cosignatures' key name), e.g. `witness.example.org/w1`.
    /// A store is tied to the name and key it was created with.
    #[arg(long)]
    origin: String,
    /// Bound on each request and on idle connections, in seconds.
    #[arg(long, default_value_t = 10)]
    request_timeout: u64,
    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

fn db_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("db")
}

fn store_exists(data_dir: &Path) -> bool {
    db_dir(data_dir).join("CURRENT").is_file()
}

/// Opens the store for writing, turning RocksDB's lock error into what to do.
fn open_store(data_dir: &Path) -> anyhow::Result<WitnessStore> {
    WitnessStore::open(&db_dir(data_dir)).map_err(|e| {
        if e.to_string().contains("LOCK") {
            anyhow::anyhow!(
                "the witness store in {} is in use (is `lineage witness serve` running?): \
                 stop it, run this again, then start it. Nothing was changed. ({e})",
                data_dir.display()
            )
        } else {
            anyhow::Error::new(e).context(format!(
                "opening the witness store in {}",
                data_dir.display()
            ))
        }
    })
}

/// Reads the witness key, creating it when missing and the store has no identity
/// yet (new, or only logs added).
fn load_or_create_key(
    path: &Path,
    data_dir: &Path,
    store: &WitnessStore,
) -> anyhow::Result<ed25519_dalek::SigningKey> {
    if !path.exists() {
        if store.identity()?.is_some() {
            bail!(
                "witness key {} is missing, but {} holds a witness store: a new key would not be \
                 this witness's. Restore the key file (or pass --key). Nothing was changed.",
                path.display(),
                data_dir.display()
            );
        }
        let key = generate_signing_key()?;
        write_key_file(path, &key)
            .with_context(|| format!("creating witness key {}", path.display()))?;
        tracing::info!(path = %path.display(), "created witness key");
        return Ok(key);
    }
    if !key_file_is_private(path).with_context(|| format!("checking {}", path.display()))? {
        bail!(
            "witness key {} is readable by group or others; run `chmod 600 {}` and start again",
            path.display(),
            path.display()
        );
    }
    read_key_file(path).with_context(|| format!("reading witness key {}", path.display()))
}

/// Runs a `lineage witness` subcommand.
///
/// # Errors
/// Bad flags or keys, a store of another witness or in use, a bind failure.
pub fn run(rt: &tokio::runtime::Runtime, command: WitnessCommand) -> anyhow::Result<()> {
    match command {
        WitnessCommand::Serve(args) => rt.block_on(serve(args)),
        WitnessCommand::AddLog {
            data_dir,
            origin,
            vkey,
        } => add_log(&data_dir, &origin, &vkey),
        WitnessCommand::Status { data_dir, json } => status(&data_dir, json),
    }
}

fn add_log(data_dir: &Path, origin: &str, vkey: &str) -> anyhow::Result<()> {
    // Checked before anything is created or opened.
    lineage_witness::store::check_log_vkey(origin, vkey)?;
    let new = !store_exists(data_dir);
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    let store = open_store(data_dir)?;
    if new {
        eprintln!(
            "lineage witness: created a new witness store in {}",
            data_dir.display()
        );
    }
    if store.add_log_key(origin, vkey)? {
        println!("added log {origin} key {vkey}");
    } else {
        println!("log {origin} already trusts key {vkey}");
    }
    Ok(())
}

fn status(data_dir: &Path, json: bool) -> anyhow::Result<()> {
    if !store_exists(data_dir) {
        bail!("no witness store in {}", data_dir.display());
    }
    let store = WitnessStore::open_read_only(&db_dir(data_dir))
        .with_context(|| format!("reading the witness store in {}", data_dir.display()))?;
    let status = Status::read(&store)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(());
    }
    println!("witness {}", status.name);
    println!("vkey {}", status.vkey);
    for log in &status.logs {
        match log.size {
            Some(size) => println!(
                "log {} size {size} root {} cosigned at {}",
                log.origin,
                log.root.as_deref().unwrap_or_default(),
                log.cosigned_at.unwrap_or_default()
            ),
            None => println!("log {} (nothing cosigned yet)", log.origin),
        }
        for vkey in &log.vkeys {
            println!("  key {vkey}");
        }
    }
    println!("evidence records {}", status.evidence);
    Ok(())
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(lineage_api::serve::Tls::from_pem_files(cert, key)?),
        _ => None,
    };
    let new = !store_exists(&args.data_dir);
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating data directory {}", args.data_dir.display()))?;
    let key_path = args
        .key
        .clone()
        .unwrap_or_else(|| args.data_dir.join("witness.key"));
    let store = open_store(&args.data_dir)?;
    let key = load_or_create_key(&key_path, &args.data_dir, &store)?;
    let witness =
        Witness::with_store(store, &args.origin, key, Clock::System).map_err(|e| match e {
            lineage_witness::OpenError::Store(lineage_witness::StoreError::IdentityMismatch {
                ..
            }) => anyhow::anyhow!(
                "{e}.\nThis data directory belongs to another witness. Start with the --origin and \
                 --key it was created with, or use another --data-dir. Nothing was changed."
            ),
            e => anyhow::Error::new(e).context("opening the witness"),
        })?;
    let listener = std::net::TcpListener::bind(args.listen)
        .with_context(|| format!("binding {}", args.listen))?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    if new {
        eprintln!(
            "lineage witness: CREATED A NEW WITNESS {} in {}",
            args.origin,
            args.data_dir.display()
        );
    }
    let status = witness.status()?;
    println!("lineage witness: name {}", witness.name());
    println!("lineage witness: vkey {}", witness.vkey());
    println!(
        "lineage witness: policy line: witness {} {} {scheme}://{addr}",
        witness.name(),
        witness.vkey()
    );
    for log in &status.logs {
        println!(
            "lineage witness: log {} size {}",
            log.origin,
            log.size.map_or_else(|| "-".into(), |s| s.to_string())
        );
    }
    if status.logs.is_empty() {
        tracing::warn!(
            "no log known yet: add one with `lineage witness add-log` (witness stopped)"
        );
    }
    println!("lineage witness: listening on {scheme}://{addr}");
    let timeout = Duration::from_secs(args.request_timeout.max(1));
    let router = lineage_witness::http::router(Arc::new(witness), timeout);
    let mut options = lineage_api::serve::ServeOptions::new(timeout);
    options.tls = tls;
    lineage_api::serve::serve_connections(
        listener,
        router,
        options,
        crate::serve::shutdown_signal(),
    )
    .await?;
    tracing::info!("witness stopped");
    Ok(())
}
