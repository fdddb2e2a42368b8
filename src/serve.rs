//! `lineage serve`: check the data directory, load the keys, open the store
//! and the log, bind, serve (the accept loop and TLS are `lineage_api::serve`).

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use lineage::keyfile::{generate_signing_key, key_file_is_private, read_key_file, write_key_file};
use lineage_api::AppState;
use lineage_ledger::keys::parse_public_key;
use lineage_ledger::note::NoteSigner;
use lineage_ledger::rules::Authorities;
use lineage_ledger::store::RocksStore;
use lineage_log::{Clock, LogService};

use crate::config::ServeConfig;

/// Reads a key file, creating it if missing; refuses one others can read.
fn load_or_create_key(
    path: &Path,
    what: &str,
    kind: DataDir,
) -> anyhow::Result<ed25519_dalek::SigningKey> {
    if !path.exists() {
        if kind == DataDir::Ledger {
            // A new key would not be this ledger's: a new log key fails the
            // store's identity check, a new development authority would sign
            // grants the earlier ones' auditors do not know.
            bail!(
                "{what} {} is missing, but the data directory holds a ledger: a new key would \
                 not be this log's. Restore the key file (or pass the flag that names it). \
                 Nothing was changed.",
                path.display()
            );
        }
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
pub type OnListening = Box<dyn FnOnce(&str) + Send>;

/// What a data directory holds before `serve` opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataDir {
    /// Missing, empty, or only the key files an interrupted first start
    /// left: a new log is created, on purpose and loudly.
    New,
    /// A ledger (`db/` holds a RocksDB store).
    Ledger,
}

/// What a data directory may hold before it holds a ledger: the key files
/// `serve` itself writes before the store, and the `lost+found` of a fresh
/// file system mounted there.
const NOT_FOREIGN: [&str; 3] = ["log.key", "authority.key", "lost+found"];

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
        if !NOT_FOREIGN.contains(&name.as_str()) {
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

/// `lineage serve`: checks the data directory, loads the keys, opens the
/// store and the log, binds, and serves until SIGINT or SIGTERM.
///
/// # Errors
/// A data directory that is not a ledger, unreadable or exposed keys, a
/// store of another log, a bind or TLS failure.
pub async fn serve(cfg: ServeConfig, on_listening: Option<OnListening>) -> anyhow::Result<()> {
    let kind = inspect_data_dir(&cfg.data_dir)?;
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data directory {}", cfg.data_dir.display()))?;
    // First: a bad certificate or key stops the start, not every handshake.
    let tls = match &cfg.tls {
        None => None,
        Some((cert, key)) => Some(lineage_api::serve::Tls::from_pem_files(cert, key)?),
    };
    let log_key = load_or_create_key(&cfg.log_key, "log key", kind)?;
    let log_key_id = lineage_ledger::keys::KeyId::from_public_key(&log_key.verifying_key());
    let signer =
        NoteSigner::new(&cfg.log.origin, log_key).context("origin is not a valid key name")?;
    let mut authority_keys = Vec::new();
    for (i, b64) in cfg.authority.iter().enumerate() {
        authority_keys
            .push(parse_public_key(b64).with_context(|| format!("authority[{i}]: {b64:?}"))?);
    }
    if authority_keys.is_empty() {
        let path = cfg.data_dir.join("authority.key");
        let key = load_or_create_key(&path, "development authority key", kind)?;
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
        cfg.log.clone(),
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
    let witnessing = match &cfg.witnessing {
        None => None,
        Some((policy, interval, timeout)) => Some(
            crate::witnessing::Witnessing::start(&log, policy, *interval, *timeout)
                .with_context(|| format!("--witness-policy {}", policy.display()))?,
        ),
    };
    let listener = std::net::TcpListener::bind(cfg.listen)
        .with_context(|| format!("binding {}", cfg.listen))?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    if kind == DataDir::New {
        let key_id = log_key_id;
        let path = std::fs::canonicalize(&cfg.data_dir).unwrap_or_else(|_| cfg.data_dir.clone());
        tracing::warn!(origin = %cfg.log.origin, %key_id, path = %path.display(), "created a new log");
        eprintln!(
            "lineage: CREATED A NEW LOG: origin {}, log key ID {key_id}, in {}",
            cfg.log.origin,
            path.display()
        );
    }
    println!("lineage: origin {}", cfg.log.origin);
    println!("lineage: vkey {}", log.vkey);
    println!("lineage: tree size {}", log.head().size);
    println!("lineage: listening on {scheme}://{addr}");
    if let Some(hook) = on_listening {
        hook(&format!("{scheme}://{addr}"));
    }
    let state = AppState {
        log: log.clone(),
        limits: cfg.limits,
        runtime_limiter: cfg
            .rate_limit
            .map(|(rate, burst)| Arc::new(lineage_api::access::RuntimeLimiter::new(rate, burst))),
    };
    let router = lineage::app(state, cfg.read_token.as_deref());
    let mut options = lineage_api::serve::ServeOptions::new(cfg.limits.request_timeout);
    options.tls = tls;
    options.connections = Some(log.metrics.connections.clone());
    // The health page's time series (a bounded ring), one sample a second.
    log.spawn_health_sampler(Some(cfg.data_dir.clone()));
    let (stop_witnessing, stopped) = tokio::sync::watch::channel(false);
    if let Some(w) = witnessing {
        tokio::spawn(w.run(log.core().clone(), stopped));
    }
    lineage_api::serve::serve_connections(listener, router, options, shutdown_signal()).await?;
    let _ = stop_witnessing.send(true);
    log.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM (`lineage serve`, `lineage witness serve`).
pub(crate) async fn shutdown_signal() {
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
