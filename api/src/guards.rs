//! The guards of every request, as one tower layer ([`crate::guard`]).
//!
//! In order: the read token (`401`; ingest, `/healthz` and `/readyz` stay
//! open), the in-flight cap for all routes together (`503 overloaded`, the
//! request shed at once), the request timeout (`408`), and, on the way out,
//! the count of shed requests in the log's metrics. Inside it, tower-http's
//! panic catcher answers a panicking handler `500 internal`. They were six
//! layers (two `from_fn` middlewares, and tower's load shedding and global
//! concurrency limit behind an error handler): each request then cloned and
//! boxed the inner service twice and went through a dozen nested futures,
//! several percent of the server's time on the single-envelope path.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use lineage_log::LogService;
use tokio::sync::Semaphore;

use crate::problem::{ApiError, Shed};
use crate::{access, governance};

/// What the guards need, shared by every route's copy of them.
#[derive(Debug)]
struct Limits {
    /// One permit per request in flight, for all routes.
    permits: Arc<Semaphore>,
    /// The request timeout (a long-poll gets its wait on top).
    timeout: Duration,
    /// `Authorization: Bearer` required on reads, when set.
    read_token: Option<Arc<str>>,
    /// Where shed requests are counted, when set.
    log: Option<Arc<LogService>>,
}

/// The layer: [`Guard`] around each route.
#[derive(Clone, Debug)]
pub(crate) struct GuardLayer(Arc<Limits>);

impl GuardLayer {
    pub(crate) fn new(
        max_in_flight: usize,
        timeout: Duration,
        read_token: Option<&str>,
        log: Option<Arc<LogService>>,
    ) -> GuardLayer {
        GuardLayer(Arc::new(Limits {
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
            timeout,
            read_token: read_token.map(Arc::from),
            log,
        }))
    }
}

impl<S> tower::Layer<S> for GuardLayer {
    type Service = Guard<S>;

    fn layer(&self, inner: S) -> Guard<S> {
        Guard {
            inner,
            limits: self.0.clone(),
        }
    }
}

/// A route behind the guards.
#[derive(Clone, Debug)]
pub(crate) struct Guard<S> {
    inner: S,
    limits: Arc<Limits>,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> tower::Service<Request> for Guard<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Answer {
        let limits = self.limits.clone();
        if let Some(token) = &limits.read_token
            && !access::may_read(&request, token)
        {
            return Box::pin(std::future::ready(Ok(
                ApiError::Unauthorized.into_response()
            )));
        }
        let Ok(permit) = limits.permits.clone().try_acquire_owned() else {
            let shed = ApiError::Overloaded.into_response();
            count_shed(limits.log.as_deref(), &shed);
            return Box::pin(std::future::ready(Ok(shed)));
        };
        let timeout = limits
            .timeout
            .saturating_add(governance::long_poll_allowance(&request));
        let future = self.inner.call(request);
        Box::pin(async move {
            let _permit = permit;
            let response = match tokio::time::timeout(timeout, future).await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => StatusCode::REQUEST_TIMEOUT.into_response(),
            };
            count_shed(limits.log.as_deref(), &response);
            Ok(response)
        })
    }
}

/// Counts a `503 overloaded` answer (the queue, the in-flight cap, the
/// stream and long-poll caps) into the log's metrics; the health page and
/// `/readyz` report the ledger degraded for the first two only.
fn count_shed(log: Option<&LogService>, response: &Response) {
    let Some(log) = log else {
        return;
    };
    match response.extensions().get::<Shed>() {
        Some(Shed::Load) => {
            log.metrics
                .note_overloaded(lineage_log::clock::unix_ms(log.clock.now()));
        }
        // Counted, but a reader refused at its own cap does not make the
        // ledger unready: any client could hold it at 503 so.
        Some(Shed::ReaderCap) => {
            log.metrics.overloaded.inc();
        }
        None => {}
    }
}
