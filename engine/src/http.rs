//! The job's HTTP endpoint: Prometheus metrics, liveness and readiness.
//!
//! Routes (HTTP/1.1, one request per connection: every response carries `Connection: close`
//! and the server closes the connection after it, so a client may read to the end):
//! - `GET /metrics`: 200 with the registry given to [`serve`] (the job's is
//!   [`crate::metrics::metrics`]'s) in the Prometheus text format, content type
//!   `text/plain; version=0.0.4`.
//! - `GET /health`: 200 while the process runs.
//! - `GET /ready`: 200 once [`Readiness::set`] was called with `true` (the job has hydrated and
//!   committed), 503 before and whenever it is set back to `false`.
//! - Any other path: 404. Another method on one of the paths above: 405 (`HEAD` is answered
//!   like `GET`, without the body). A request hyper cannot parse: 400.
//!
//! The server is axum's router on hyper's HTTP/1 connection, on a current-thread tokio runtime
//! of its own on the thread `citeflow-http`; every connection is served in its own task, so a
//! slow client never delays another request (such as the `/ready` probe). Limits:
//! - a client must send its whole request head within 5 s of connecting, else the connection
//!   is dropped (hyper's header read timeout);
//! - a connection, from accepting it to having written the response, lasts at most 10 s;
//! - at most 64 connections are open at once. A new one beyond that closes the oldest: an
//!   answered request takes milliseconds, so the oldest is almost surely a stalled client, and
//!   a burst of idle connections cannot lock a probe out;
//! - a request head larger than 16 KiB gets 431. The handlers never read a request body; as
//!   the connection closes after the response, at most one read buffer (16 KiB) of a body is
//!   ever read.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use prometheus::Registry;

use crate::metrics::render;

/// How long a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may last in all.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once; a new one beyond this closes the oldest.
const MAX_CONNECTIONS: usize = 64;
/// The largest request head (and read buffer), in bytes.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The pause after a failed `accept` (such as running out of file descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Shared readiness flag: set once the job is live.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Marks the job ready (or not).
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    /// Whether the job is ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Binds `addr` and serves the endpoints, `/metrics` rendering `registry`, on a background
/// thread; returns the bound address.
///
/// Binding, and building the thread's runtime, happen before this returns, so their errors
/// are this function's.
pub fn serve(addr: &str, readiness: Readiness, registry: Registry) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    let listener = {
        let _context = runtime.enter();
        TcpListener::from_std(listener)?
    };
    let app = router(Endpoint { readiness, registry });
    std::thread::Builder::new().name("citeflow-http".into()).spawn(move || runtime.block_on(accept_connections(listener, app)))?;
    Ok(bound)
}

/// What the routes answer from.
#[derive(Clone)]
struct Endpoint {
    readiness: Readiness,
    registry: Registry,
}

fn router(endpoint: Endpoint) -> Router {
    Router::new()
        .route("/metrics", get(render_metrics))
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .fallback(|| async { (StatusCode::NOT_FOUND, "not found\n") })
        .with_state(endpoint)
}

async fn render_metrics(State(endpoint): State<Endpoint>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], render(&endpoint.registry))
}

async fn ready(State(Endpoint { readiness, .. }): State<Endpoint>) -> (StatusCode, &'static str) {
    if readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "hydrating\n")
    }
}

/// Accepts connections forever, serving each in its own task within the limits above.
async fn accept_connections(listener: TcpListener, app: Router) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).keep_alive(false).max_buf_size(MAX_HEAD_BYTES);
    // One sender per open connection, oldest first; dropping a sender closes its connection.
    let mut open: VecDeque<oneshot::Sender<()>> = VecDeque::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "cannot accept an HTTP connection");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        open.retain(|connection| !connection.is_closed());
        if open.len() >= MAX_CONNECTIONS {
            open.pop_front();
        }
        let (keep, closed) = oneshot::channel();
        open.push_back(keep);
        let connection = http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        tokio::spawn(async move {
            tokio::select! {
                served = tokio::time::timeout(CONNECTION_TIMEOUT, connection) => match served {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => tracing::debug!(%error, "HTTP connection failed"),
                    Err(_) => tracing::debug!("HTTP connection timed out"),
                },
                _ = closed => tracing::debug!("HTTP connection closed to make room for a newer one"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::time::Instant;

    fn job_registry() -> Registry {
        crate::metrics::metrics().registry.clone()
    }

    /// Sends `request` on a new connection and reads until the server closes it; a server that
    /// keeps the connection open for 10 s makes this an error.
    fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.write_all(request)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        Ok(String::from_utf8_lossy(&response).into_owned())
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        exchange(addr, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).unwrap()
    }

    /// Whether the server still holds `stream` open (nothing to read, no close, no reset).
    fn still_open(stream: &TcpStream) -> bool {
        stream.set_nonblocking(true).unwrap();
        let open = matches!(stream.peek(&mut [0; 1]), Err(error) if error.kind() == ErrorKind::WouldBlock);
        stream.set_nonblocking(false).unwrap();
        open
    }

    /// Whether the server closes `stream` (or resets it) within `within`.
    fn closed_within(mut stream: &TcpStream, within: Duration) -> bool {
        stream.set_read_timeout(Some(within)).unwrap();
        let mut rest = Vec::new();
        match stream.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(error) => error.kind() == ErrorKind::ConnectionReset,
        }
    }

    /// The answer to a bad request: either the expected status, or the connection cut short
    /// (a close with unread request bytes is a reset), never a hang.
    fn status_or_cut(answer: std::io::Result<String>, status: &str) -> bool {
        match answer {
            Ok(response) => response.starts_with(&format!("HTTP/1.1 {status}")),
            Err(error) => matches!(error.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        }
    }

    #[test]
    fn readiness_follows_the_flag() {
        let readiness = Readiness::default();
        let addr = serve("127.0.0.1:0", readiness.clone(), job_registry()).unwrap();
        let before = get(addr, "/ready");
        assert!(before.starts_with("HTTP/1.1 503"), "{before}");
        assert!(before.ends_with("hydrating\n"), "{before}");
        readiness.set(true);
        let after = get(addr, "/ready");
        assert!(after.starts_with("HTTP/1.1 200"), "{after}");
        assert!(after.ends_with("ready\n"), "{after}");
        readiness.set(false);
        assert!(get(addr, "/ready").starts_with("HTTP/1.1 503"));
    }

    #[test]
    fn routes_answer_with_their_status_and_close_the_connection() {
        let addr = serve("127.0.0.1:0", Readiness::default(), job_registry()).unwrap();
        let rendered = get(addr, "/metrics");
        assert!(rendered.starts_with("HTTP/1.1 200"), "{rendered}");
        let lower = rendered.to_ascii_lowercase();
        assert!(lower.contains("\r\ncontent-type: text/plain; version=0.0.4\r\n"), "{rendered}");
        assert!(lower.contains("\r\nconnection: close\r\n"), "{rendered}");
        assert!(rendered.contains("citeflow_"), "{rendered}");
        let health = get(addr, "/health");
        assert!(health.starts_with("HTTP/1.1 200") && health.ends_with("ok\n"), "{health}");
        let unknown = get(addr, "/nothing-here");
        assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");
        let post = exchange(addr, b"POST /ready HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    }

    #[test]
    fn a_stalled_client_neither_delays_ready_nor_stays_connected() {
        let readiness = Readiness::default();
        readiness.set(true);
        let addr = serve("127.0.0.1:0", readiness, job_registry()).unwrap();
        let mut stalled = TcpStream::connect(addr).unwrap();
        stalled.write_all(b"GET /rea").unwrap();
        let start = Instant::now();
        let answer = get(addr, "/ready");
        assert!(start.elapsed() < Duration::from_secs(2), "/ready took {:?}", start.elapsed());
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(still_open(&stalled), "the stalled client was dropped before its header timeout");
        assert!(closed_within(&stalled, HEADER_READ_TIMEOUT + Duration::from_secs(5)), "the stalled client outlived the header timeout");
    }

    #[test]
    fn idle_connections_beyond_the_limit_close_the_oldest_and_never_lock_ready_out() {
        let readiness = Readiness::default();
        readiness.set(true);
        let addr = serve("127.0.0.1:0", readiness, job_registry()).unwrap();
        let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS + 8)
            .map(|_| {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.write_all(b"GET /ready HT").unwrap();
                stream
            })
            .collect();
        let start = Instant::now();
        let answer = get(addr, "/ready");
        assert!(start.elapsed() < Duration::from_secs(2), "/ready took {:?}", start.elapsed());
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(still_open(idle.last().unwrap()), "the newest idle connection was closed");
        assert!(closed_within(&idle[0], Duration::from_secs(2)), "the oldest idle connection stayed open beyond the connection limit");
    }

    #[test]
    fn garbage_and_oversized_requests_are_refused_and_the_server_keeps_serving() {
        let addr = serve("127.0.0.1:0", Readiness::default(), job_registry()).unwrap();
        let garbage = exchange(addr, b"\x00\x01\x02 not http at all\r\n\r\n");
        assert!(status_or_cut(garbage, "400"), "garbage was not refused");
        let big_head = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\n\r\n", "a".repeat(4 * MAX_HEAD_BYTES));
        assert!(status_or_cut(exchange(addr, big_head.as_bytes()), "431"), "an oversized head was not refused");
        let mut big_body = b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n".to_vec();
        big_body.extend(std::iter::repeat_n(b'b', 4 * MAX_HEAD_BYTES));
        assert!(status_or_cut(exchange(addr, &big_body), "200"), "a huge body held the connection open");
        let health = get(addr, "/health");
        assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    }
}
