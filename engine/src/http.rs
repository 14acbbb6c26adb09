//! A small HTTP endpoint for Prometheus metrics, liveness and readiness.
//!
//! `GET /metrics` renders the registry, `GET /health` answers 200 while the process runs,
//! `GET /ready` answers 200 only once the job has finished hydrating and committed.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::metrics::metrics;

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

/// Binds `addr` and serves the endpoints on a background thread; returns the bound address.
pub fn serve(addr: &str, readiness: Readiness) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let bound = listener.local_addr()?;
    std::thread::Builder::new().name("citeflow-http".into()).spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Err(error) = answer(stream, &readiness) {
                tracing::debug!(%error, "metrics request failed");
            }
        }
    })?;
    Ok(bound)
}

fn answer(mut stream: TcpStream, readiness: &Readiness) -> std::io::Result<()> {
    let mut request_line = String::new();
    BufReader::new(&stream).read_line(&mut request_line)?;
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let (status, content_type, body) = match path {
        "/metrics" => ("200 OK", "text/plain; version=0.0.4", metrics().render()),
        "/health" => ("200 OK", "text/plain", "ok\n".to_string()),
        "/ready" if readiness.is_ready() => ("200 OK", "text/plain", "ready\n".to_string()),
        "/ready" => ("503 Service Unavailable", "text/plain", "hydrating\n".to_string()),
        _ => ("404 Not Found", "text/plain", "not found\n".to_string()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }

    #[test]
    fn readiness_follows_the_flag() {
        let readiness = Readiness::default();
        let addr = serve("127.0.0.1:0", readiness.clone()).unwrap();
        assert!(get(addr, "/ready").starts_with("HTTP/1.1 503"));
        readiness.set(true);
        assert!(get(addr, "/ready").starts_with("HTTP/1.1 200"));
        assert!(get(addr, "/metrics").contains("citeflow_"));
    }
}
