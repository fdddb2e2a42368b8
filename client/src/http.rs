//! The HTTP edge: one keep-alive connection pool, submissions retried with
//! identical bytes until a deadline, and answers turned into [`Error`]s.

use std::time::{Duration, Instant};

use lineage_ledger::dsse::SignedEnvelope;
use lineage_schemas::Problem;
use serde::de::DeserializeOwned;

use crate::{Config, Denial, Error};

/// First pause between attempts; doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

pub(crate) struct Transport {
    http: reqwest::Client,
    base: String,
    deadline: Duration,
    /// `Bearer <token>` for reads; kept out of `Debug`.
    read_auth: Option<String>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("base", &self.base)
            .field("deadline", &self.deadline)
            .field("read_token", &self.read_auth.as_ref().map(|_| "(set)"))
            .finish_non_exhaustive()
    }
}

/// A successful answer's body.
#[derive(Debug)]
pub(crate) struct Answer(bytes::Bytes);

impl Answer {
    pub(crate) fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.0).map_err(|e| {
            Error::Untrusted(format!("the ledger's answer is not the expected JSON: {e}"))
        })
    }
}

/// The JSON body of one envelope.
pub(crate) fn envelope_body(env: &SignedEnvelope) -> Vec<u8> {
    // Strings only: serialization cannot fail.
    serde_json::to_vec(&env.to_wire()).unwrap_or_default()
}

/// The JSON body of an array of envelopes.
pub(crate) fn array_body(envs: &[SignedEnvelope]) -> Vec<u8> {
    let wire: Vec<_> = envs.iter().map(SignedEnvelope::to_wire).collect();
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// An identifier as one URL path segment.
pub(crate) fn path_segment(text: &str) -> String {
    // Identifiers are [A-Za-z0-9._:/@-]: only `/` and `:` and `@` need escaping.
    text.replace('%', "%25")
        .replace('/', "%2F")
        .replace(':', "%3A")
        .replace('@', "%40")
}

/// Whether an answer with this status is worth another attempt with the
/// same bytes: the ledger's own request timeout (408: the handler was
/// dropped, the event may or may not be committed), too early, overload,
/// rate limits and server-side failures.
fn transient(status: u16) -> bool {
    matches!(status, 408 | 425 | 429) || (500..600).contains(&status)
}

impl Transport {
    pub(crate) fn new(config: &Config) -> Result<Transport, Error> {
        let base = config.server.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::Invalid(format!(
                "server {base:?} is not an http:// or https:// URL"
            )));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true);
        if let Some(path) = &config.ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| Error::Invalid(format!("CA file {}: {e}", path.display())))?;
            let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
                Error::Invalid(format!(
                    "CA file {}: not a PEM certificate file",
                    path.display()
                ))
            })?;
            if roots.is_empty() {
                return Err(Error::Invalid(format!(
                    "CA file {}: holds no PEM certificate",
                    path.display()
                )));
            }
            builder = builder.tls_built_in_root_certs(false);
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        let http = builder
            .build()
            .map_err(|e| Error::Invalid(format!("setting up the HTTP client: {e}")))?;
        Ok(Transport {
            http,
            base,
            deadline: config.retry_deadline,
            read_auth: config.read_token.as_ref().map(|t| format!("Bearer {t}")),
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A GET of `url`, with the read token when there is one.
    pub(crate) fn get(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(url);
        match &self.read_auth {
            Some(auth) => request.header("authorization", auth),
            None => request,
        }
    }

    /// `POST /v1/entries` with `body`, retried with the same bytes on
    /// transport errors, 429 and 5xx until the deadline. A success is the
    /// body; any other answer is a [`Denial`].
    pub(crate) async fn submit(&self, body: Vec<u8>) -> Result<Answer, Error> {
        let body = bytes::Bytes::from(body);
        let url = self.url("/v1/entries");
        self.retrying(|| {
            self.http
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone())
        })
        .await
    }

    /// A GET of `path` answering JSON, retried like a submission.
    pub(crate) async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, Error> {
        let url = self.url(path);
        self.retrying(|| self.get(&url)).await?.json()
    }

    async fn retrying(
        &self,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Answer, Error> {
        let start = Instant::now();
        let mut pause = FIRST_BACKOFF;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let last = match request().send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs);
                    match resp.bytes().await {
                        Ok(body) if (200..300).contains(&status) => return Ok(Answer(body)),
                        Ok(body) if !transient(status) => return Err(refusal(status, &body)),
                        Ok(body) => {
                            if let Some(after) = retry_after {
                                pause = pause.max(after.min(MAX_BACKOFF));
                            }
                            format!("HTTP {status}: {}", summary(&body))
                        }
                        Err(e) => format!("reading the answer: {e}"),
                    }
                }
                Err(e) => transport_error(&e),
            };
            let elapsed = start.elapsed();
            if elapsed + pause > self.deadline {
                return Err(Error::Unavailable { attempts, last });
            }
            tracing::debug!(attempts, %last, "lineage client: retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(MAX_BACKOFF);
        }
    }
}

/// A transport error's description, with its causes (reqwest's own text is
/// only "error sending request").
fn transport_error(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// A non-transient, non-success answer as a denial: the ledger's problem,
/// or (from something that is not the ledger, such as a proxy) the status.
fn refusal(status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<Problem>(body) {
        Ok(p) => Error::Denied(Box::new(Denial::from(p))),
        Err(_) => Error::Denied(Box::new(Denial {
            local: false,
            ..Denial::local(
                &format!("http_{status}"),
                status,
                "HTTP error",
                summary(body),
            )
        })),
    }
}

/// The start of a body, for messages.
fn summary(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_one_path_segment() {
        assert_eq!(path_segment("a/b:c@d%e.f-g"), "a%2Fb%3Ac%40d%25e.f-g");
    }

    #[test]
    fn problems_become_denials_and_other_bodies_name_the_status() {
        let p = Problem::new(403, "halted", "Halted", "stopped");
        let body = serde_json::to_vec(&Problem {
            halt_index: Some(7),
            ..p
        })
        .expect("json");
        let Error::Denied(d) = refusal(403, &body) else {
            panic!("a denial")
        };
        assert_eq!(
            (d.code.as_str(), d.halt_index, d.governing_index),
            ("halted", Some(7), Some(7))
        );
        let Error::Denied(d) = refusal(404, b"<html>not here</html>") else {
            panic!("a denial")
        };
        assert_eq!(d.code, "http_404");
        assert!(transient(503) && transient(429) && transient(500) && transient(408));
        assert!(!transient(409) && !transient(400) && !transient(403));
    }
}
