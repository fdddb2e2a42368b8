//! `lineage serve` configuration: flags, then environment variables, then an
//! optional TOML file, then defaults. Validated at start; an error names the
//! field. The field docs below are the reference.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use lineage_api::HttpLimits;
use lineage_log::LogConfig;
use serde::Deserialize;

/// Flags of `lineage serve` (each also settable by environment or file).
#[derive(clap::Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (flag and environment win).
    #[arg(long, env = "LINEAGE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (RocksDB, log key, dev authority key). Default: ./lineage-data.
    #[arg(long, env = "LINEAGE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Listen address. Default: 127.0.0.1:7878.
    #[arg(long, env = "LINEAGE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Log origin (checkpoint first line and log key name). Default: lineage.local/log.
    #[arg(long, env = "LINEAGE_ORIGIN")]
    pub origin: Option<String>,
    /// Log signing key file (created 0600 if missing). Default: DATA_DIR/log.key.
    #[arg(long, env = "LINEAGE_LOG_KEY")]
    pub log_key: Option<PathBuf>,
    /// Authority public key (standard base64), repeatable. None: a development
    /// authority key is created in the data directory, with a loud warning.
    #[arg(long = "authority", env = "LINEAGE_AUTHORITY", value_delimiter = ',')]
    pub authority: Vec<String>,
    /// Largest allowed distance between an event's `at` and the ledger clock, seconds. Default: 300.
    #[arg(long, env = "LINEAGE_MAX_SKEW_SECS")]
    pub max_skew_secs: Option<u64>,
    /// Most entries per synced commit. Default: 4096.
    #[arg(long, env = "LINEAGE_BATCH_MAX_ENTRIES")]
    pub batch_max_entries: Option<usize>,
    /// Sequencer linger after the first request of a batch, milliseconds. Default: 0
    /// (a batch is what queued while the previous one was being committed).
    #[arg(long, env = "LINEAGE_BATCH_LINGER_MS")]
    pub batch_linger_ms: Option<u64>,
    /// Requests waiting for the sequencer before ingest answers 503. Default: 4096.
    #[arg(long, env = "LINEAGE_QUEUE_DEPTH")]
    pub queue_depth: Option<usize>,
    /// Largest request body, bytes. Default: 67108864 (64 MiB).
    #[arg(long, env = "LINEAGE_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Most envelopes in one array request. Default: 1000.
    #[arg(long, env = "LINEAGE_MAX_BATCH")]
    pub max_batch: Option<usize>,
    /// Time allowed for a request until its response starts, seconds (a
    /// governance long-poll gets its `wait` on top; a response body, such as
    /// the governance stream, is bounded by the idle watchdog instead).
    /// Default: 30.
    #[arg(long, env = "LINEAGE_REQUEST_TIMEOUT_SECS")]
    pub request_timeout_secs: Option<u64>,
    /// Requests handled at once; more are answered 503 `overloaded`. Default: 1024.
    #[arg(long, env = "LINEAGE_MAX_IN_FLIGHT")]
    pub max_in_flight: Option<usize>,
    /// Per-runtime ingest limit, events per second (0: no limit). Default: 0.
    #[arg(long, env = "LINEAGE_RATE_LIMIT_PER_RUNTIME")]
    pub rate_limit_per_runtime: Option<u32>,
    /// Burst allowed above the per-runtime rate, events. Default: 10 x the rate.
    #[arg(long, env = "LINEAGE_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// Bearer token required on every read (ingest and health stay open). Default: none.
    #[arg(long, env = "LINEAGE_READ_TOKEN", hide_env_values = true)]
    pub read_token: Option<String>,
    /// TLS certificate chain (PEM) for direct exposure; needs --tls-key.
    #[arg(long, env = "LINEAGE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, env = "LINEAGE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// C2SP tlog-policy file: the witnesses to ask (each `witness` line with
    /// its URL) and the quorum a checkpoint needs before `/checkpoint` and
    /// witnessed receipts serve it. Default: no witnessing.
    #[arg(long, env = "LINEAGE_WITNESS_POLICY")]
    pub witness_policy: Option<PathBuf>,
    /// Milliseconds between witnessing rounds (a round runs only when the
    /// tree grew). Default: 1000.
    #[arg(long, env = "LINEAGE_WITNESS_INTERVAL_MS")]
    pub witness_interval_ms: Option<u64>,
    /// Milliseconds to wait for a witness's answer. Default: 5000.
    #[arg(long, env = "LINEAGE_WITNESS_TIMEOUT_MS")]
    pub witness_timeout_ms: Option<u64>,
}

/// The TOML file: the same settings, snake_case names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
    origin: Option<String>,
    log_key: Option<PathBuf>,
    #[serde(default)]
    authority: Vec<String>,
    max_skew_secs: Option<u64>,
    batch_max_entries: Option<usize>,
    batch_linger_ms: Option<u64>,
    queue_depth: Option<usize>,
    max_body_bytes: Option<usize>,
    max_batch: Option<usize>,
    request_timeout_secs: Option<u64>,
    max_in_flight: Option<usize>,
    rate_limit_per_runtime: Option<u32>,
    rate_limit_burst: Option<u32>,
    read_token: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    witness_policy: Option<PathBuf>,
    witness_interval_ms: Option<u64>,
    witness_timeout_ms: Option<u64>,
}

/// Where `serve` keeps its data unless told otherwise.
pub const DEFAULT_DATA_DIR: &str = "lineage-data";

/// Where `serve` listens unless told otherwise (and where the CLI looks).
pub const DEFAULT_LISTEN: ([u8; 4], u16) = ([127, 0, 0, 1], 7878);

/// The validated configuration of `lineage serve`: the log service's and
/// the HTTP layer's own config types, plus what only the binary decides.
/// Every default is defined once: [`LogConfig::default`],
/// [`HttpLimits::default`], and the two constants above.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data directory (RocksDB in `db/`, the log key, the dev authority key).
    pub data_dir: PathBuf,
    /// Listen address.
    pub listen: SocketAddr,
    /// Log signing key file.
    pub log_key: PathBuf,
    /// Authority public keys (standard base64); empty: development authority.
    pub authority: Vec<String>,
    /// The log service's tunables (origin, skew, batching, queue).
    pub log: LogConfig,
    /// The HTTP layer's limits (body, batch, request timeout, in-flight cap).
    pub limits: HttpLimits,
    /// (events per second, burst), when limited.
    pub rate_limit: Option<(std::num::NonZeroU32, std::num::NonZeroU32)>,
    /// Bearer token required on every read, when set.
    pub read_token: Option<String>,
    /// (certificate chain, key), when serving TLS directly.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Witnessing: the policy file, the round interval and the answer timeout.
    pub witnessing: Option<(PathBuf, Duration, Duration)>,
}

impl ServeArgs {
    /// Merges flags/environment with the file and defaults, and validates.
    pub fn resolve(self) -> anyhow::Result<ServeConfig> {
        let file = match &self.config {
            None => FileConfig::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("config file {}", p.display()))?
            }
        };
        let log_defaults = LogConfig::default();
        let http_defaults = HttpLimits::default();
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let origin = self.origin.or(file.origin).unwrap_or(log_defaults.origin);
        if origin.is_empty() || origin.contains(|c: char| c.is_whitespace() || c == '+') {
            bail!("origin: {origin:?} must be non-empty with no white space and no '+'");
        }
        let log_key = self
            .log_key
            .or(file.log_key)
            .unwrap_or_else(|| data_dir.join("log.key"));
        let authority = if self.authority.is_empty() {
            file.authority
        } else {
            self.authority
        };
        let positive = |name: &str, v: usize| -> anyhow::Result<usize> {
            if v == 0 {
                bail!("{name}: must be at least 1");
            }
            Ok(v)
        };
        let max_skew = match self.max_skew_secs.or(file.max_skew_secs) {
            None => log_defaults.max_skew,
            Some(secs) => time::Duration::seconds(
                i64::try_from(secs).map_err(|_| anyhow::anyhow!("max_skew_secs: too large"))?,
            ),
        };
        let log = LogConfig {
            origin,
            max_skew,
            batch_max_entries: positive(
                "batch_max_entries",
                self.batch_max_entries
                    .or(file.batch_max_entries)
                    .unwrap_or(log_defaults.batch_max_entries),
            )?,
            batch_linger: self
                .batch_linger_ms
                .or(file.batch_linger_ms)
                .map_or(log_defaults.batch_linger, Duration::from_millis),
            queue_depth: positive(
                "queue_depth",
                self.queue_depth
                    .or(file.queue_depth)
                    .unwrap_or(log_defaults.queue_depth),
            )?,
        };
        let limits = HttpLimits {
            max_body_bytes: positive(
                "max_body_bytes",
                self.max_body_bytes
                    .or(file.max_body_bytes)
                    .unwrap_or(http_defaults.max_body_bytes),
            )?,
            max_batch: positive(
                "max_batch",
                self.max_batch
                    .or(file.max_batch)
                    .unwrap_or(http_defaults.max_batch),
            )?,
            request_timeout: self
                .request_timeout_secs
                .or(file.request_timeout_secs)
                .map_or(http_defaults.request_timeout, Duration::from_secs),
            max_in_flight: positive(
                "max_in_flight",
                self.max_in_flight
                    .or(file.max_in_flight)
                    .unwrap_or(http_defaults.max_in_flight),
            )?,
        };
        if log.batch_linger > Duration::from_secs(1) {
            bail!("batch_linger_ms: at most 1000");
        }
        if limits.request_timeout.is_zero() {
            bail!("request_timeout_secs: must be at least 1");
        }
        let rate = self
            .rate_limit_per_runtime
            .or(file.rate_limit_per_runtime)
            .unwrap_or(0);
        let rate_limit = match std::num::NonZeroU32::new(rate) {
            None => None,
            Some(rate) => {
                let burst = self
                    .rate_limit_burst
                    .or(file.rate_limit_burst)
                    .unwrap_or(rate.get().saturating_mul(10));
                let Some(burst) = std::num::NonZeroU32::new(burst) else {
                    bail!("rate_limit_burst: must be at least 1");
                };
                Some((rate, burst))
            }
        };
        Ok(ServeConfig {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(DEFAULT_LISTEN)),
            log_key,
            authority,
            log,
            limits,
            rate_limit,
            read_token: self
                .read_token
                .or(file.read_token)
                .filter(|t| !t.is_empty()),
            tls: match (
                self.tls_cert.or(file.tls_cert),
                self.tls_key.or(file.tls_key),
            ) {
                (Some(c), Some(k)) => Some((c, k)),
                (None, None) => None,
                _ => bail!("tls_cert and tls_key: give both or neither"),
            },
            witnessing: match self.witness_policy.or(file.witness_policy) {
                None => None,
                Some(policy) => {
                    let interval = self
                        .witness_interval_ms
                        .or(file.witness_interval_ms)
                        .unwrap_or(1000);
                    let timeout = self
                        .witness_timeout_ms
                        .or(file.witness_timeout_ms)
                        .unwrap_or(5000);
                    if interval == 0 || timeout == 0 {
                        bail!("witness_interval_ms and witness_timeout_ms: must be at least 1");
                    }
                    Some((
                        policy,
                        Duration::from_millis(interval),
                        Duration::from_millis(timeout),
                    ))
                }
            },
            data_dir,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_then_file_then_flags() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("lineage.toml");
        std::fs::write(
            &file,
            "origin = \"file.example/log\"\nbatch_linger_ms = 5\n",
        )
        .expect("write");
        let cfg = ServeArgs::default().resolve().expect("defaults");
        assert_eq!(cfg.log.origin, LogConfig::default().origin);
        assert_eq!(cfg.limits.max_batch, HttpLimits::default().max_batch);
        assert_eq!(cfg.listen.port(), 7878);
        assert_eq!(cfg.log_key, PathBuf::from("lineage-data/log.key"));
        let cfg = ServeArgs {
            config: Some(file.clone()),
            ..Default::default()
        }
        .resolve()
        .expect("file");
        assert_eq!(cfg.log.origin, "file.example/log");
        assert_eq!(cfg.log.batch_linger, Duration::from_millis(5));
        let cfg = ServeArgs {
            config: Some(file),
            origin: Some("flag.example/log".into()),
            ..Default::default()
        }
        .resolve()
        .expect("flags");
        assert_eq!(cfg.log.origin, "flag.example/log");
    }

    #[test]
    fn the_clients_default_server_is_the_default_listen_address() {
        assert_eq!(
            crate::client::DEFAULT_SERVER,
            format!("http://{}", SocketAddr::from(DEFAULT_LISTEN))
        );
    }

    #[test]
    fn errors_name_the_field() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("bad.toml");
        std::fs::write(&file, "no_such_setting = 1\n").expect("write");
        let err = ServeArgs {
            config: Some(file),
            ..Default::default()
        }
        .resolve()
        .expect_err("unknown field");
        assert!(format!("{err:#}").contains("no_such_setting"), "{err:#}");
        let err = ServeArgs {
            queue_depth: Some(0),
            ..Default::default()
        }
        .resolve()
        .expect_err("zero");
        assert!(err.to_string().contains("queue_depth"));
        let err = ServeArgs {
            origin: Some("has space".into()),
            ..Default::default()
        }
        .resolve()
        .expect_err("origin");
        assert!(err.to_string().contains("origin"));
    }
}
