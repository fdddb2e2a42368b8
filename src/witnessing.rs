//! `serve --witness-policy`: the log's witnessing rounds
//! (`lineage_log::witnessing`) over HTTP, with one keep-alive client for
//! every witness.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use lineage_ledger::policy::Policy;
use lineage_log::LogService;
use lineage_log::core::Core;
use lineage_log::witnessing::{AnswerFuture, WitnessAnswer, WitnessTransport};

/// Witnessing, set up and ready to run.
pub struct Witnessing {
    inner: Arc<lineage_log::witnessing::Witnessing>,
    transport: Arc<HttpTransport>,
    interval: Duration,
    timeout: Duration,
}

impl Witnessing {
    /// Reads the policy, checks it names this log, and turns witnessing on
    /// for `log` (its `/checkpoint` serves witnessed checkpoints from now).
    ///
    /// # Errors
    /// An unreadable or invalid policy, one that does not name this log's
    /// key, or one with no witness URL.
    pub fn start(
        log: &LogService,
        policy: &Path,
        interval: Duration,
        timeout: Duration,
    ) -> anyhow::Result<Witnessing> {
        let text = std::fs::read(policy).context("reading the policy")?;
        let policy = Policy::parse(&text)?;
        let witnesses = policy.witnesses().len();
        let inner = Arc::new(lineage_log::witnessing::Witnessing::new(
            policy,
            log.core(),
        )?);
        if log.set_witnessing(inner.clone()).is_err() {
            anyhow::bail!("witnessing is already on");
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .context("setting up the HTTP client")?;
        println!(
            "lineage: witnessing: {witnesses} witness(es) in the policy, a round every {} ms",
            interval.as_millis()
        );
        Ok(Witnessing {
            inner,
            transport: Arc::new(HttpTransport { http }),
            interval,
            timeout,
        })
    }

    /// Runs rounds until `stop` turns true.
    pub async fn run(self, core: Arc<Core>, stop: tokio::sync::watch::Receiver<bool>) {
        lineage_log::witnessing::run(
            self.inner,
            core,
            self.transport,
            self.interval,
            self.timeout,
            stop,
        )
        .await;
    }
}

/// Most bytes read of a witness's answer.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

struct HttpTransport {
    http: reqwest::Client,
}

impl WitnessTransport for HttpTransport {
    fn add_checkpoint<'a>(&'a self, url: &'a str, body: Vec<u8>) -> AnswerFuture<'a> {
        Box::pin(async move {
            let resp = self
                .http
                .post(format!("{url}/add-checkpoint"))
                .body(body)
                .send()
                .await
                .map_err(|e| format!("POST {url}/add-checkpoint: {e}"))?;
            let status = resp.status().as_u16();
            // A cosignature answer is a few lines: a witness (or whatever
            // answers at its URL) cannot make the log buffer more.
            let mut resp = resp;
            let mut body = Vec::new();
            while let Some(chunk) = resp
                .chunk()
                .await
                .map_err(|e| format!("reading the answer of {url}: {e}"))?
            {
                if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                    return Err(format!(
                        "the answer of {url} is over {MAX_ANSWER_BYTES} bytes"
                    ));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(WitnessAnswer { status, body })
        })
    }
}
