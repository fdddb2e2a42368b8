//! Admission control that is not a ledger rule: per-runtime rate limits on
//! ingest, and an optional bearer token for reads.
//!
//! Writes are authenticated by their Ed25519 envelope signatures; there is
//! no operational endpoint that changes state, so there is no admin token.
//! Reads are public unless a read token is configured.

use std::num::NonZeroU32;

use axum::extract::Request;
use axum::http::{Method, header};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::problem::ApiError;

/// Per-runtime ingest rate limits (GCRA, from the `governor` crate).
#[derive(Debug)]
pub struct RuntimeLimiter {
    limiter: DefaultKeyedRateLimiter<String>,
}

impl RuntimeLimiter {
    /// `per_second` events per runtime on average, bursts up to `burst`.
    pub fn new(per_second: NonZeroU32, burst: NonZeroU32) -> RuntimeLimiter {
        RuntimeLimiter {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
        }
    }

    /// Takes one unit of `runtime`'s budget.
    ///
    /// # Errors
    /// [`ApiError::RateLimited`] when the budget is spent.
    pub fn check(&self, runtime: &str) -> Result<(), ApiError> {
        self.limiter
            .check_key(&runtime.to_owned())
            .map_err(|_| ApiError::RateLimited {
                runtime: runtime.to_owned(),
            })
    }
}

/// Paths that stay open when a read token is configured.
fn is_open(method: &Method, path: &str) -> bool {
    (method == Method::POST && path == "/v1/entries") || path == "/healthz" || path == "/readyz"
}

/// Whether `req` may pass a server that requires `Authorization: Bearer
/// <token>` on every read (ingest, `/healthz` and `/readyz` are open).
pub(crate) fn may_read(req: &Request, token: &str) -> bool {
    if is_open(req.method(), req.uri().path()) {
        return true;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    presented.is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
}

/// Compares without an early exit on the first differing byte.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_over_its_budget_is_limited_and_others_are_not() {
        let one = NonZeroU32::MIN;
        let l = RuntimeLimiter::new(one, NonZeroU32::new(2).unwrap_or(one));
        assert!(l.check("a").is_ok());
        assert!(l.check("a").is_ok());
        assert!(matches!(l.check("a"), Err(ApiError::RateLimited { .. })));
        assert!(l.check("b").is_ok());
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(is_open(&Method::POST, "/v1/entries"));
        assert!(!is_open(&Method::GET, "/v1/entries/0"));
        assert!(is_open(&Method::GET, "/healthz"));
    }
}
