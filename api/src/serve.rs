//! Serving a router on a TCP listener: one accept loop for cleartext HTTP/1.1
//! and for TLS (ALPN `h2` and `http/1.1`), with the same limits on both.
//!
//! Every connection is bounded in time before and between requests; while a
//! request is in flight, the router's request timeout bounds it until its
//! response starts, and a response body that never ends by itself (the
//! governance event stream) ends when the server stops ([`Stopping`]):
//!
//! | phase | bound |
//! |---|---|
//! | TLS handshake | [`ServeOptions::handshake_timeout`], then the connection is dropped |
//! | HTTP/1.1 request headers (first request and each kept-alive one) | [`ServeOptions::header_timeout`] (hyper's header read timer) |
//! | no request in flight (before the first, between requests, HTTP/1.1 and HTTP/2 alike) | [`ServeOptions::idle_timeout`], then a graceful close |
//! | a graceful close (idle, or the server stopping) | [`ServeOptions::close_grace`], then the connection is dropped |
//! | a response that waits (long-poll, event stream) | ends at once when the server stops ([`Stopping`], set on every request) |
//! | HTTP/2 peer that stops answering pings | keep-alive ping every `idle_timeout`, dropped if unanswered within it |
//!
//! A request counts as in flight from the moment hyper hands it to the
//! service until its response body has been taken (or dropped), and the
//! bytes of a response still being written restart the idle clock at each
//! write: a large download read slowly is not idle. HTTP/2 request headers that trickle in (a HEADERS
//! frame that never completes) start no request, so the idle timer closes
//! such a connection too.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt as _;

/// Most concurrent HTTP/2 streams on one connection. RFC 9113 §6.5.2
/// recommends no fewer than 100; the router's global in-flight cap still
/// applies across all connections.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;

/// A certificate chain and private key, ready to accept TLS connections that
/// offer ALPN `h2` and `http/1.1`. rustls with the ring provider; TLS 1.2
/// and 1.3 with rustls' safe defaults.
#[derive(Clone)]
pub struct Tls {
    acceptor: tokio_rustls::TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

/// Why a certificate chain and key could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read or is not PEM.
    #[error("reading the TLS certificate chain {path}: {source}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: rustls_pki_types::pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` section.
    #[error("the TLS certificate file {path} holds no PEM certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file could not be read, is not PEM, or holds no private key.
    #[error("reading the TLS private key {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: rustls_pki_types::pem::Error,
    },
    /// rustls refused the pair (unsupported key type, key not matching the
    /// certificate, ...).
    #[error("the TLS certificate and key are not usable together: {0}")]
    Config(#[from] rustls::Error),
}

impl Tls {
    /// Loads a PEM certificate chain (leaf first) and a PEM private key
    /// (PKCS#8, PKCS#1 or SEC1).
    ///
    /// # Errors
    /// A file that cannot be read or parsed, no certificate, or a key rustls
    /// refuses (including one that does not match the certificate).
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Tls, TlsError> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|source| TlsError::Certificate {
                path: cert.to_owned(),
                source,
            })?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: cert.to_owned(),
            });
        }
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Key {
            path: key.to_owned(),
            source,
        })?;
        // An explicit provider: no process-wide default to install, and no
        // panic if another crate in the build enables a second provider.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key_der)?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// How a listener treats its connections. [`ServeOptions::new`] derives every
/// bound from the request timeout.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Serve TLS with this certificate (HTTP/2 or HTTP/1.1 by ALPN); `None`:
    /// cleartext HTTP/1.1 only (no h2c: no client needs it).
    pub tls: Option<Tls>,
    /// Time for a TLS handshake to complete.
    pub handshake_timeout: Duration,
    /// Time for the headers of an HTTP/1.1 request to arrive, counted from
    /// when the connection is ready for a request.
    pub header_timeout: Duration,
    /// Time a connection may have no request in flight before it is closed
    /// gracefully; also the HTTP/2 keep-alive ping interval and ping timeout.
    pub idle_timeout: Duration,
    /// Time a connection has to finish after a graceful close began (idle
    /// or server shutdown) before it is dropped.
    pub close_grace: Duration,
    /// A gauge that counts the open connections (accepted, TLS handshake
    /// included, until closed); `lineage serve` passes the log's
    /// `connections` metric. `None`: not counted.
    pub connections: Option<prometheus_client::metrics::gauge::Gauge>,
}

impl ServeOptions {
    /// Cleartext, with every bound equal to `request_timeout`: a client
    /// gets as long to start a request (handshake, headers) as the server
    /// gives it to finish one, and an idle connection costs a socket for no
    /// longer than a slow request would. No finer-grained figure is better
    /// founded here: each bound trades a slow honest client for an idle
    /// hostile one in the same way.
    pub fn new(request_timeout: Duration) -> ServeOptions {
        ServeOptions {
            tls: None,
            handshake_timeout: request_timeout,
            header_timeout: request_timeout,
            idle_timeout: request_timeout,
            close_grace: request_timeout,
            connections: None,
        }
    }

    /// The same options, serving TLS with `tls`.
    #[must_use]
    pub fn with_tls(self, tls: Tls) -> ServeOptions {
        ServeOptions {
            tls: Some(tls),
            ..self
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves: stops accepting,
/// closes every connection gracefully (in-flight requests finish, within
/// [`ServeOptions::close_grace`]) and returns when all are gone.
///
/// # Errors
/// None today (accept errors such as running out of file descriptors are
/// logged and retried); the `Result` leaves room for listener errors.
pub async fn serve_connections(
    listener: TcpListener,
    router: Router,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let options = Arc::new(options);
    // `true` once the server stops; every connection task holds a receiver,
    // so `closed()` below resolves when the last connection is gone.
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off, keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(serve_connection(
            stream,
            router.clone(),
            options.clone(),
            stop_rx.clone(),
        ));
    }
    drop(listener);
    drop(stop_rx);
    // Fails only without receivers, when no connection is left anyway.
    let _ = stop_tx.send(true);
    stop_tx.closed().await;
    Ok(())
}

/// One accepted connection: the TLS handshake if any, then HTTP.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    options: Arc<ServeOptions>,
    mut stop: watch::Receiver<bool>,
) {
    // Counted from here until this task ends, however it ends.
    let _open = options.connections.clone().map(Open::new);
    let Some(tls) = &options.tls else {
        serve_http(stream, Protocol::Http1, router, &options, stop).await;
        return;
    };
    let handshake = tokio::time::timeout(options.handshake_timeout, tls.acceptor.accept(stream));
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!("TLS handshake timed out");
                return;
            }
        },
        // No request was started: nothing to finish.
        _ = stop.wait_for(|stopping| *stopping) => return,
    };
    let protocol = match stream.get_ref().1.alpn_protocol() {
        Some(b"h2") => Protocol::Http2,
        _ => Protocol::Http1,
    };
    serve_http(stream, protocol, router, &options, stop).await;
}

/// One open connection on a gauge, given back on drop.
struct Open(prometheus_client::metrics::gauge::Gauge);

impl Open {
    fn new(gauge: prometheus_client::metrics::gauge::Gauge) -> Open {
        gauge.inc();
        Open(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[derive(Clone, Copy, Debug)]
enum Protocol {
    Http1,
    Http2,
}

/// HTTP on an established connection, closed when idle or when the server
/// stops.
async fn serve_http<S>(
    stream: S,
    protocol: Protocol,
    router: Router,
    options: &ServeOptions,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let watchdog = activity.clone();
    let stopping = Stopping(stop.clone());
    // Bytes still going out keep the connection from counting as idle:
    // hyper drops a response body once it has taken its last frame, which
    // can be megabytes before a slow reader has them.
    let stream = Progress {
        inner: stream,
        activity: activity.clone(),
    };
    let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
        let in_flight = activity.begin();
        request.extensions_mut().insert(stopping.clone());
        let router = router.clone();
        async move {
            let response = router.oneshot(request).await?;
            Ok::<_, std::convert::Infallible>(response.map(|body| TrackedBody {
                body,
                _in_flight: in_flight,
            }))
        }
    });
    let mut builder = Builder::new(TokioExecutor::new());
    match protocol {
        Protocol::Http1 => {
            builder = builder.http1_only();
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(options.header_timeout);
        }
        Protocol::Http2 => {
            builder = builder.http2_only();
            builder
                .http2()
                .timer(TokioTimer::new())
                .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
                .keep_alive_interval(options.idle_timeout)
                .keep_alive_timeout(options.idle_timeout);
        }
    }
    let mut conn = pin!(builder.serve_connection(TokioIo::new(stream), service));
    let why = tokio::select! {
        biased;
        done = conn.as_mut() => {
            log_end(done);
            return;
        }
        () = idle_for(&watchdog, options.idle_timeout) => "idle",
        _ = stop.wait_for(|stopping| *stopping) => "server stopping",
    };
    tracing::debug!(why, "closing connection gracefully");
    conn.as_mut().graceful_shutdown();
    // An HTTP/2 peer that never sent its preface, or never answers the
    // GOAWAY ping, would hold a graceful close open forever.
    match tokio::time::timeout(options.close_grace, conn).await {
        Ok(done) => log_end(done),
        Err(_) => tracing::debug!(why, "connection did not close in time; dropped"),
    }
}

fn log_end(done: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(e) = done {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Set on every request this module serves: resolves once the server is
/// stopping. A response that waits for something that may not come soon (a
/// long-poll, an event stream) ends on it, so a graceful shutdown does not
/// wait out [`ServeOptions::close_grace`] on it. A request served some other
/// way (a test's `oneshot`) has none and waits until its client leaves.
#[derive(Clone, Debug)]
pub struct Stopping(watch::Receiver<bool>);

impl Stopping {
    /// Resolves once the server is stopping (at once if it already is).
    pub async fn wait(&mut self) {
        // An error means the server is gone: as good as stopping.
        let _ = self.0.wait_for(|stopping| *stopping).await;
    }
}

/// Requests in flight on one connection, and since when it has had none.
#[derive(Clone, Copy, Debug)]
struct Load {
    in_flight: usize,
    idle_since: Instant,
}

/// The service's handle on a connection's [`Load`]. Changes wake nobody:
/// the idle watchdog ([`idle_for`]) reads the load when its timer fires.
/// (A watch channel here woke the connection's task twice per request and
/// again at every write after it, each wake a poll of hyper's dispatcher.)
#[derive(Clone, Debug)]
struct Activity(Arc<std::sync::Mutex<Load>>);

impl Activity {
    fn new() -> Activity {
        Activity(Arc::new(std::sync::Mutex::new(Load {
            in_flight: 0,
            idle_since: Instant::now(),
        })))
    }

    fn update<T>(&self, f: impl FnOnce(&mut Load) -> T) -> T {
        // The lock guards two plain fields: a panic cannot leave them torn.
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Counts a request in flight until the returned guard drops.
    fn begin(&self) -> InFlight {
        self.update(|load| load.in_flight += 1);
        InFlight(self.clone())
    }
}

/// The connection's stream, noting each write: while bytes go out with no
/// request in flight (the tail of a response hyper has already taken), the
/// idle clock restarts at every write, so a response is never cut mid-body
/// by the idle bound.
struct Progress<S> {
    inner: S,
    activity: Activity,
}

impl<S> Progress<S> {
    fn wrote(&self, n: usize) {
        if n == 0 {
            return;
        }
        self.activity.update(|load| {
            if load.in_flight == 0 {
                load.idle_since = Instant::now();
            }
        });
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Progress<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Progress<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &done {
            this.wrote(*n);
        }
        done
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let done = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = &done {
            this.wrote(*n);
        }
        done
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// One request in flight; dropped with its response body.
#[derive(Debug)]
struct InFlight(Activity);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.update(|load| {
            load.in_flight -= 1;
            if load.in_flight == 0 {
                load.idle_since = Instant::now();
            }
        });
    }
}

/// Resolves once the connection has had no request in flight for `limit`.
/// It sleeps until the earliest moment that could be so and looks again:
/// while a request is in flight, one `limit` from now; once none is, `limit`
/// after the last one ended (or the last byte went out).
async fn idle_for(activity: &Activity, limit: Duration) {
    loop {
        let load = activity.update(|load| *load);
        let now = Instant::now();
        let until = if load.in_flight == 0 {
            load.idle_since + limit
        } else {
            now + limit
        };
        if load.in_flight == 0 && until <= now {
            return;
        }
        tokio::time::sleep_until(until).await;
    }
}

/// A response body that keeps its request counted as in flight until it has
/// been sent or dropped.
#[derive(Debug)]
struct TrackedBody {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
