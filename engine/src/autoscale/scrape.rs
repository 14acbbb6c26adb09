//! Reading a job's counters from its `/metrics` endpoint: an HTTP GET (hyper's HTTP/1 client,
//! bounded in time and size) and the Prometheus text format's sample lines, read only as far as
//! the autoscaler needs (family name and value; labels are skipped, quoting respected).
//!
//! The text comes from outside and is checked: a line that is not a comment, blank or a
//! well-formed sample is an error naming the line, never a panic (the `prometheus_text` fuzz
//! target holds [`Observation::parse`] to that).

use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::Uri;
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpStream;

use super::Observation;
use crate::metrics::PREFIX;

/// The largest `/metrics` response read.
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Why a job's metrics could not be read.
#[derive(Debug, Error)]
pub enum ScrapeError {
    /// The URL is not `http://host:port/path`.
    #[error("`{0}` is not an http:// URL with a host")]
    Url(String),
    /// Connecting, sending or receiving failed.
    #[error("reading {url}: {reason}")]
    Http {
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The endpoint answered with another status than 200.
    #[error("{url} answered {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status.
        status: u16,
    },
    /// A line of the text is not a comment, blank or a sample.
    #[error("line {line}: {reason}")]
    Malformed {
        /// The line (from 1).
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The values add up beyond what a number holds.
    #[error("the values of `{0}` add up to more than a number holds")]
    OutOfRange(&'static str),
    /// The text lacks a family every citeflow job exports.
    #[error("no `{0}`: not the metrics of a citeflow job")]
    NotAJob(&'static str),
}

/// Splits a sample line into its metric name and value; `None` for comments and blank lines.
fn sample(line: &str) -> Result<Option<(&str, f64)>, &'static str> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let name_end = line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(line.len());
    let (name, mut rest) = line.split_at(name_end);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("a sample starts with a metric name");
    }
    if let Some(labels) = rest.strip_prefix('{') {
        rest = skip_labels(labels).ok_or("labels are not closed")?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = fields.next().ok_or("no value")?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        number => number.parse().map_err(|_| "the value is not a number")?,
    };
    match (fields.next(), fields.next()) {
        (None, _) => Ok(Some((name, value))),
        (Some(timestamp), None) if timestamp.parse::<i64>().is_ok() => Ok(Some((name, value))),
        _ => Err("more than a value and a timestamp after the name"),
    }
}

/// The text after the `}` closing labels that start `text` (after the `{`), respecting quoted
/// label values with `\` escapes.
fn skip_labels(text: &str) -> Option<&str> {
    let mut quoted = false;
    let mut escaped = false;
    for (index, c) in text.char_indices() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') => quoted = false,
            (false, _, '"') => quoted = true,
            (false, _, '}') => return Some(&text[index + 1..]),
            _ => {}
        }
    }
    None
}

impl Observation {
    /// Reads a job's counters from its metrics text (the Prometheus text format).
    pub fn parse(text: &str) -> Result<Observation, ScrapeError> {
        let mut observation = Observation::default();
        let mut workers = None;
        for (index, line) in text.lines().enumerate() {
            let Some((name, value)) = sample(line).map_err(|reason| ScrapeError::Malformed { line: index + 1, reason })? else {
                continue;
            };
            let Some(family) = name.strip_prefix(PREFIX).and_then(|name| name.strip_prefix('_')) else { continue };
            if !value.is_finite() {
                continue;
            }
            match family {
                "records_read_total" => observation.records_read += value,
                "consumer_lag" => observation.lag += value.max(0.0),
                "worker_busy_seconds_total" => observation.busy_seconds += value,
                "hydrating" => observation.hydrating |= value > 0.0,
                "workers" => workers = Some(value),
                _ => {}
            }
        }
        let sums = [
            ("records_read_total", observation.records_read),
            ("consumer_lag", observation.lag),
            ("worker_busy_seconds_total", observation.busy_seconds),
        ];
        if let Some((family, _)) = sums.iter().find(|(_, sum)| !sum.is_finite()) {
            return Err(ScrapeError::OutOfRange(family));
        }
        let workers = workers.ok_or(ScrapeError::NotAJob("citeflow_workers"))?;
        observation.workers = if (0.0..=1_048_576.0).contains(&workers) { workers as usize } else { 0 };
        Ok(observation)
    }

    /// Several processes' observations as one job's: counters summed, the cluster's workers
    /// (every process reports all of them) once.
    pub fn combine(observations: impl IntoIterator<Item = Observation>) -> Observation {
        observations.into_iter().fold(Observation::default(), |total, one| Observation {
            records_read: total.records_read + one.records_read,
            lag: total.lag + one.lag,
            busy_seconds: total.busy_seconds + one.busy_seconds,
            workers: total.workers.max(one.workers),
            hydrating: total.hydrating || one.hydrating,
        })
    }
}

/// GETs `url` (`http://host:port/path`) within `timeout`, reading at most 16 MiB of body.
pub async fn fetch(url: &str, timeout: Duration) -> Result<String, ScrapeError> {
    tokio::time::timeout(timeout, get(url))
        .await
        .unwrap_or_else(|_| Err(ScrapeError::Http { url: url.to_string(), reason: format!("no answer within {} ms", timeout.as_millis()) }))
}

async fn get(url: &str) -> Result<String, ScrapeError> {
    let uri: Uri = url.parse().map_err(|_| ScrapeError::Url(url.to_string()))?;
    let (Some("http"), Some(host)) = (uri.scheme_str(), uri.host()) else { return Err(ScrapeError::Url(url.to_string())) };
    let failed = |reason: String| ScrapeError::Http { url: url.to_string(), reason };
    let stream = TcpStream::connect((host, uri.port_u16().unwrap_or(80))).await.map_err(|e| failed(e.to_string()))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| failed(e.to_string()))?;
    tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, uri.authority().map_or(host, |authority| authority.as_str()))
        .body(Empty::<Bytes>::new())
        .map_err(|e| failed(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(|e| failed(e.to_string()))?;
    if response.status() != hyper::StatusCode::OK {
        return Err(ScrapeError::Status { url: url.to_string(), status: response.status().as_u16() });
    }
    let body = Limited::new(response.into_body(), MAX_BODY_BYTES).collect().await.map_err(|e| failed(e.to_string()))?;
    String::from_utf8(body.to_bytes().to_vec()).map_err(|_| failed("the body is not UTF-8".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_read_past_labels_quotes_and_timestamps() {
        assert_eq!(sample("citeflow_x 3"), Ok(Some(("citeflow_x", 3.0))));
        assert_eq!(sample("  citeflow_x{a=\"}\\\" {\",b=\"2\"} 1.5e3 1700000000000"), Ok(Some(("citeflow_x", 1500.0))));
        assert_eq!(sample("# HELP citeflow_x y"), Ok(None));
        assert_eq!(sample(""), Ok(None));
        assert_eq!(sample("x +Inf").map(|s| s.map(|(_, v)| v.is_infinite())), Ok(Some(true)));
        assert!(sample("citeflow_x{a=\"1\" 3").is_err());
        assert!(sample("citeflow_x").is_err());
        assert!(sample("citeflow_x one").is_err());
        assert!(sample("citeflow_x 1 2 3").is_err());
        assert!(sample("{a=\"1\"} 3").is_err());
    }

    #[test]
    fn an_observation_sums_the_families_it_needs() {
        let text = "\
# HELP citeflow_records_read_total Records read, by topic
# TYPE citeflow_records_read_total counter
citeflow_records_read_total{topic=\"a\"} 100
citeflow_records_read_total{topic=\"b\"} 50
citeflow_consumer_lag{topic=\"a\",partition=\"0\"} 7
citeflow_consumer_lag{topic=\"a\",partition=\"1\"} 3
citeflow_worker_busy_seconds_total{worker=\"0\"} 1.5
citeflow_worker_busy_seconds_total{worker=\"1\"} 2.5
citeflow_hydrating 0
citeflow_workers 2
citeflow_operator_busy_seconds_total{worker=\"0\",operator=\"3 Map\"} 99
";
        let observation = Observation::parse(text).unwrap();
        assert_eq!(observation, Observation { records_read: 150.0, lag: 10.0, busy_seconds: 4.0, workers: 2, hydrating: false });
        let both = Observation::combine([observation, Observation { hydrating: true, ..observation }]);
        assert_eq!(both, Observation { records_read: 300.0, lag: 20.0, busy_seconds: 8.0, workers: 2, hydrating: true });
    }

    #[test]
    fn text_that_is_not_a_jobs_metrics_is_an_error() {
        assert!(matches!(Observation::parse("up 1\n"), Err(ScrapeError::NotAJob(_))));
        let huge = "citeflow_workers 1\nciteflow_consumer_lag{p=\"0\"} 1e308\nciteflow_consumer_lag{p=\"1\"} 1e308\n";
        assert!(matches!(Observation::parse(huge), Err(ScrapeError::OutOfRange("consumer_lag"))));
        let error = Observation::parse("citeflow_workers 1\ncitefl{ow 2\n").unwrap_err();
        assert_eq!(error.to_string(), "line 2: labels are not closed");
    }

    #[test]
    fn the_jobs_own_metrics_parse() {
        let metrics = crate::metrics::metrics();
        metrics.workers.set(3);
        metrics.worker_busy.with_label_values(&["0"]).inc_by(0.25);
        let observation = Observation::parse(&metrics.render()).unwrap();
        assert_eq!(observation.workers, 3);
        assert!(observation.busy_seconds >= 0.25);
    }

    #[test]
    fn a_url_that_is_not_http_is_refused() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for url in ["https://localhost/metrics", "localhost:9464", "http:///metrics"] {
            assert!(matches!(runtime.block_on(fetch(url, Duration::from_secs(1))), Err(ScrapeError::Url(_))), "{url}");
        }
    }

    #[test]
    fn metrics_are_fetched_from_an_endpoint() {
        let registry = prometheus::Registry::new_custom(Some(PREFIX.to_string()), None).unwrap();
        let workers = prometheus::IntGauge::new("workers", "w").unwrap();
        registry.register(Box::new(workers.clone())).unwrap();
        workers.set(2);
        let addr = crate::http::serve("127.0.0.1:0", crate::http::Readiness::default(), registry).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let text = runtime.block_on(fetch(&format!("http://{addr}/metrics"), Duration::from_secs(5))).unwrap();
        assert_eq!(Observation::parse(&text).unwrap().workers, 2);
        let missing = runtime.block_on(fetch(&format!("http://{addr}/nothing"), Duration::from_secs(5)));
        assert!(matches!(missing, Err(ScrapeError::Status { status: 404, .. })), "{missing:?}");
    }
}
