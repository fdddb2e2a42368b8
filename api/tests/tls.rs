//! The TLS listener of `lineage_api::serve` over real sockets on 127.0.0.1:
//! requests work over HTTP/2 and HTTP/1.1 (by ALPN), and a client that
//! stalls at any step before or between requests (the TLS handshake, the
//! first request, its headers, a kept-alive connection) is disconnected
//! within the connection timeout, while a request in flight is not.
//!
//! The certificate is made in-process with rcgen; the client is rustls
//! trusting exactly that certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use lineage_api::serve::{ServeOptions, Tls, serve_connections};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;

/// Every connection bound of the server under test.
const TIMEOUT: Duration = Duration::from_secs(1);
/// Slack on top of what the timeouts allow (a graceful close that the peer
/// does not complete takes the idle timeout plus the close grace) before a
/// connection counts as not closed.
const SLACK: Duration = Duration::from_secs(4);
/// Pace of a client that trickles bytes.
const PACE: Duration = Duration::from_millis(100);

/// A served router, stopped by [`Server::stop`].
struct Server {
    addr: SocketAddr,
    cert: CertificateDer<'static>,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Serves a small router over TLS with every bound at [`TIMEOUT`]:
    /// `/healthz` answers at once, `/slow` after three times the idle
    /// timeout (longer than the idle timeout plus the close grace).
    async fn start() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let made =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("certificate");
        let cert_path = dir.path().join("cert.pem");
        let key_path = dir.path().join("key.pem");
        std::fs::write(&cert_path, made.cert.pem()).expect("write cert");
        std::fs::write(&key_path, made.signing_key.serialize_pem()).expect("write key");
        let tls = Tls::from_pem_files(&cert_path, &key_path).expect("load certificate and key");
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(3 * TIMEOUT).await;
                    "slow ok"
                }),
            );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let options = ServeOptions::new(TIMEOUT).with_tls(tls);
        let task = tokio::spawn(serve_connections(listener, router, options, async {
            let _ = stopped.await;
        }));
        Server {
            addr,
            cert: made.cert.der().clone(),
            stop,
            task,
            _dir: dir,
        }
    }

    /// Stops the server; it must return once its connections are closed.
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(TIMEOUT + SLACK, self.task)
            .await
            .expect("the server stops within the close grace")
            .expect("server task")
            .expect("serve");
    }

    /// A TLS connection offering `alpn`, handshake completed.
    async fn connect(&self, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(self.cert.clone())
            .expect("trust the test certificate");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let tcp = TcpStream::connect(self.addr).await.expect("connect");
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("TLS handshake");
        let negotiated = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        assert_eq!(
            negotiated.as_deref(),
            alpn.first().copied(),
            "the server picks the client's first protocol"
        );
        stream
    }
}

/// How a stalled connection ended.
#[derive(Debug)]
enum Ending {
    /// The server closed (or reset) it; when, and what it had sent.
    Closed(Duration, Vec<u8>),
    /// Still open when the client gave up.
    StillOpen(Vec<u8>),
}

/// Reads (keeping what arrives) until the server closes `stream` or `give_up`
/// passes; meanwhile writes one byte of `trickle` (cycled) every [`PACE`],
/// if any.
async fn wait_for_close<S>(mut stream: S, trickle: &[u8], give_up: Duration) -> Ending
where
    S: AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let started = Instant::now();
    let mut received = Vec::new();
    let mut next = trickle.iter().cycle();
    let mut buf = [0u8; 4096];
    while started.elapsed() < give_up {
        // The read timeout paces the trickle.
        match tokio::time::timeout(PACE, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return Ending::Closed(started.elapsed(), received),
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_elapsed) => {
                if let Some(byte) = next.next()
                    && stream.write_all(&[*byte]).await.is_err()
                {
                    return Ending::Closed(started.elapsed(), received);
                }
                let _ = stream.flush().await;
            }
        }
    }
    Ending::StillOpen(received)
}

/// Asserts the server closed the connection, no sooner than `at_least`
/// (it was the timeout, not an error, that closed it) and within `at_most`.
#[track_caller]
fn assert_closed(what: &str, ending: &Ending, at_least: Duration, at_most: Duration) -> Vec<u8> {
    match ending {
        Ending::Closed(t, received) => {
            println!(
                "{what}: closed after {t:?}, {} bytes received",
                received.len()
            );
            assert!(
                *t >= at_least.mul_f32(0.9),
                "{what}: closed after {t:?}, before the timeout"
            );
            assert!(*t <= at_most, "{what}: closed only after {t:?}");
            received.clone()
        }
        Ending::StillOpen(received) => panic!(
            "{what}: still open {at_most:?} after a connection timeout of {TIMEOUT:?} \
             (received {} bytes)",
            received.len()
        ),
    }
}

/// The HTTP/2 client preface and an empty SETTINGS frame.
fn h2_preface() -> Vec<u8> {
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_work_over_tls_with_http2_and_http1() {
    let server = Server::start().await;

    // HTTP/2, chosen by ALPN.
    let tls = server.connect(&[b"h2", b"http/1.1"]).await;
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .expect("h2 handshake");
    let conn = tokio::spawn(conn);
    let response = sender
        .send_request(
            Request::get("https://localhost/healthz")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("h2 response");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), hyper::Version::HTTP_2);
    let body = axum::body::to_bytes(Body::new(response.into_body()), 1024)
        .await
        .expect("body");
    assert_eq!(&body[..], b"ok");
    let idle_from = Instant::now();

    // HTTP/1.1, chosen by ALPN.
    let mut tls = server.connect(&[b"http/1.1"]).await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    // The server closes without close_notify after `Connection: close`
    // answers: what matters is the bytes before.
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok"), "{answer}");

    // The HTTP/2 connection, idle since its request, is closed too (the
    // client keeps its sender: it would close the connection itself when
    // the last one drops).
    let closed = tokio::time::timeout(2 * TIMEOUT + SLACK, conn)
        .await
        .expect("an idle HTTP/2 connection is closed after the idle timeout");
    println!("idle h2 connection ended: {closed:?}");
    assert!(idle_from.elapsed() >= TIMEOUT.mul_f32(0.9));
    drop(sender);
    server.stop().await;
}

/// A request that takes longer than the idle timeout is in flight, not idle:
/// the idle timer must not cut it (the router's request timeout bounds it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_is_not_cut_by_the_idle_timeout() {
    let server = Server::start().await;
    let h2 = async {
        let tls = server.connect(&[b"h2"]).await;
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        let response = sender
            .send_request(
                Request::get("https://localhost/slow")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("h2 response");
        assert_eq!(response.status(), 200);
        let body = axum::body::to_bytes(Body::new(response.into_body()), 1024)
            .await
            .expect("body");
        assert_eq!(&body[..], b"slow ok");
    };
    let h1 = async {
        let mut tls = server.connect(&[b"http/1.1"]).await;
        tls.write_all(b"GET /slow HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("slow ok"), "{answer}");
    };
    tokio::join!(h2, h1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_handshake_that_never_completes_is_closed() {
    let server = Server::start().await;
    // Nothing at all.
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let ending = wait_for_close(tcp, b"", TIMEOUT + SLACK).await;
    assert_closed("silent client", &ending, TIMEOUT, TIMEOUT + SLACK);
    // A ClientHello record header announcing 512 bytes, then a trickle of
    // them that never completes the record.
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .expect("write");
    let ending = wait_for_close(tcp, &[0], TIMEOUT + SLACK).await;
    let sent = assert_closed("stalled handshake", &ending, TIMEOUT, TIMEOUT + SLACK);
    assert!(
        sent.is_empty(),
        "the server answered a partial ClientHello: {sent:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_that_sends_nothing_after_tls_is_closed() {
    let server = Server::start().await;
    let tls = server.connect(&[b"h2"]).await;
    // Not even the preface: the server's HTTP/2 handshake never completes,
    // so its graceful close cannot either; the close grace ends it.
    let ending = wait_for_close(tls, b"", 2 * TIMEOUT + SLACK).await;
    assert_closed("h2, nothing sent", &ending, TIMEOUT, 2 * TIMEOUT + SLACK);
    // With the preface and settings, but no request.
    let mut tls = server.connect(&[b"h2"]).await;
    tls.write_all(&h2_preface()).await.expect("preface");
    let ending = wait_for_close(tls, b"", 2 * TIMEOUT + SLACK).await;
    let sent = assert_closed("h2, preface only", &ending, TIMEOUT, 2 * TIMEOUT + SLACK);
    // A GOAWAY frame (type 7) announced the close.
    assert!(
        sent.windows(4).any(|w| w == [0, 0, 8, 7]),
        "no GOAWAY in {sent:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http1_connection_that_sends_nothing_after_tls_is_closed() {
    let server = Server::start().await;
    let tls = server.connect(&[b"http/1.1"]).await;
    let ending = wait_for_close(tls, b"", TIMEOUT + SLACK).await;
    assert_closed("http/1.1, nothing sent", &ending, TIMEOUT, TIMEOUT + SLACK);
    // No ALPN at all means HTTP/1.1 too.
    let tls = server.connect(&[]).await;
    let ending = wait_for_close(tls, b"", TIMEOUT + SLACK).await;
    assert_closed("no ALPN, nothing sent", &ending, TIMEOUT, TIMEOUT + SLACK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_http1_connection_over_tls_is_closed() {
    let server = Server::start().await;
    let mut tls = server.connect(&[b"http/1.1"]).await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("write");
    let ending = wait_for_close(tls, b"", TIMEOUT + SLACK).await;
    let answer = assert_closed("kept alive", &ending, TIMEOUT, TIMEOUT + SLACK);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_over_tls_are_cut_off() {
    let server = Server::start().await;
    // HTTP/1.1: hyper's header read timer.
    let mut tls = server.connect(&[b"http/1.1"]).await;
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .expect("write");
    let ending = wait_for_close(tls, b"X-Slow: aaaaaaaaaaaaaaaa\r\n", TIMEOUT + SLACK).await;
    let answer = assert_closed("http/1.1 slow headers", &ending, TIMEOUT, TIMEOUT + SLACK);
    assert!(
        !answer.starts_with(b"HTTP/1.1 200"),
        "slow headers were served: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // HTTP/2: a HEADERS frame (type 1, END_HEADERS, stream 1) announcing
    // 200 bytes that trickle in: no stream starts, so the idle timer runs.
    let mut tls = server.connect(&[b"h2"]).await;
    let mut head = h2_preface();
    head.extend_from_slice(&[0, 0, 200, 1, 4, 0, 0, 0, 1]);
    tls.write_all(&head).await.expect("write");
    let ending = wait_for_close(tls, &[0x82], 2 * TIMEOUT + SLACK).await;
    assert_closed("h2 slow headers", &ending, TIMEOUT, 2 * TIMEOUT + SLACK);
    server.stop().await;
}

/// A bad key or certificate is refused when loaded, with the file named.
#[test]
fn a_key_that_does_not_match_or_parse_is_refused_at_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let two = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&cert, one.cert.pem()).expect("write");
    std::fs::write(&key, two.signing_key.serialize_pem()).expect("write");
    std::fs::write(&garbage, "not a pem file\n").expect("write");
    let err = Tls::from_pem_files(&cert, &key).expect_err("mismatched key");
    assert!(err.to_string().contains("not usable together"), "{err}");
    let err = Tls::from_pem_files(&garbage, &key).expect_err("no certificate");
    assert!(err.to_string().contains("garbage.pem"), "{err}");
    let err = Tls::from_pem_files(&cert, &garbage).expect_err("no key");
    assert!(err.to_string().contains("garbage.pem"), "{err}");
    let err = Tls::from_pem_files(&cert, &dir.path().join("missing.pem")).expect_err("no file");
    assert!(err.to_string().contains("missing.pem"), "{err}");
}
