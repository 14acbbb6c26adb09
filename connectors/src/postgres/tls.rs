//! TLS for PostgreSQL connections, with libpq's `sslmode` semantics.
//!
//! tokio-postgres knows only `disable`, `prefer` and `require`, and verifies nothing itself:
//! verification is the TLS connector's job. So the libpq parameters `sslmode`, `sslrootcert`,
//! `sslcert` and `sslkey` are taken out of the connection string (URL query or `key=value`
//! form; `PGSSLMODE`, `PGSSLROOTCERT`, `PGSSLCERT` and `PGSSLKEY` when the string does not set
//! them) and turned into an OpenSSL connector that behaves as libpq does:
//!
//! | `sslmode` | TLS | server certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (libpq's default) | if the server offers it | not verified |
//! | `require` | always | not verified, unless `sslrootcert` is given: then as `verify-ca` |
//! | `verify-ca` | always | signed by `sslrootcert` (else the system's trust store) |
//! | `verify-full` | always | as `verify-ca`, and issued for the host connected to |
//!
//! `sslcert` and `sslkey` present a client certificate. The files are read at start, so a
//! missing or unreadable one stops the program naming `postgres.url`.

use std::path::{Path, PathBuf};

use citeflow_engine::config::ConfigError;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use postgres_openssl::MakeTlsConnector;
use tokio_postgres::config::SslMode;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, unverified (`allow` and `prefer`).
    Prefer,
    /// Always TLS, unverified unless a root certificate is given.
    Require,
    /// Always TLS, the certificate chain verified.
    VerifyCa,
    /// Always TLS, the chain and the host name verified.
    VerifyFull,
}

impl TlsMode {
    fn parse(value: &str) -> Result<Self, ConfigError> {
        Ok(match value {
            "disable" => TlsMode::Disable,
            "allow" | "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => {
                return Err(ConfigError::invalid(
                    "postgres.url",
                    format!("sslmode `{other}`: expected disable, allow, prefer, require, verify-ca or verify-full"),
                ))
            }
        })
    }
}

/// The TLS settings of a connection string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// The mode.
    pub mode: TlsMode,
    /// CA certificates (PEM) the server's certificate must chain to.
    pub root_cert: Option<PathBuf>,
    /// A client certificate (PEM) to present.
    pub client_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key: Option<PathBuf>,
}

const TLS_PARAMETERS: [(&str, &str); 4] =
    [("sslmode", "PGSSLMODE"), ("sslrootcert", "PGSSLROOTCERT"), ("sslcert", "PGSSLCERT"), ("sslkey", "PGSSLKEY")];

/// Splits the TLS parameters out of `url` (either form); returns the rest of the connection
/// string, which tokio-postgres parses, and the TLS settings.
pub fn split_tls(url: &str) -> Result<(String, TlsSettings), ConfigError> {
    let (rest, mut found) =
        if url.starts_with("postgres://") || url.starts_with("postgresql://") { split_url(url) } else { split_key_values(url)? };
    for (name, variable) in TLS_PARAMETERS {
        if !found.iter().any(|(key, _)| key == name) {
            if let Ok(value) = std::env::var(variable) {
                found.push((name.to_string(), value));
            }
        }
    }
    let value = |name: &str| found.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.clone());
    let mode = value("sslmode").map(|mode| TlsMode::parse(&mode)).transpose()?.unwrap_or(TlsMode::Prefer);
    let path = |name: &str| value(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let settings = TlsSettings { mode, root_cert: path("sslrootcert"), client_cert: path("sslcert"), client_key: path("sslkey") };
    if settings.client_cert.is_some() != settings.client_key.is_some() {
        return Err(ConfigError::invalid("postgres.url", "sslcert and sslkey go together"));
    }
    Ok((rest, settings))
}

fn is_tls_parameter(key: &str) -> bool {
    TLS_PARAMETERS.iter().any(|(name, _)| *name == key)
}

fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else { return (url.to_string(), Vec::new()) };
    let mut kept = Vec::new();
    let mut found = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if is_tls_parameter(key) {
            found.push((key.to_string(), percent_decode(value)));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    (rest, found)
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `key=value` pairs separated by spaces; a value may be single-quoted, with `\'` and `\\`.
fn split_key_values(text: &str) -> Result<(String, Vec<(String, String)>), ConfigError> {
    let mut kept = Vec::new();
    let mut found = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut key = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        if chars.next().map(|(_, c)| c) != Some('=') {
            return Err(ConfigError::invalid("postgres.url", format!("`{key}` has no value")));
        }
        while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek().is_some_and(|(_, c)| *c == '\'') {
            chars.next();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('\\') => value.extend(chars.next().map(|(_, c)| c)),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(ConfigError::invalid("postgres.url", format!("the value of `{key}` has no closing quote"))),
                }
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        let end = chars.peek().map_or(text.len(), |(at, _)| *at);
        if is_tls_parameter(&key) {
            found.push((key, value));
        } else {
            kept.push(&text[start..end]);
        }
    }
    Ok((kept.join(" "), found))
}

impl TlsSettings {
    /// The mode tokio-postgres negotiates with.
    pub fn ssl_mode(&self) -> SslMode {
        match self.mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        }
    }

    /// An OpenSSL connector that verifies what the mode asks for.
    pub fn connector(&self) -> Result<MakeTlsConnector, ConfigError> {
        let invalid = |what: &str, path: &Path, error: openssl::error::ErrorStack| {
            ConfigError::invalid("postgres.url", format!("{what} {}: {error}", path.display()))
        };
        let mut builder =
            SslConnector::builder(SslMethod::tls_client()).map_err(|e| ConfigError::invalid("postgres.url", format!("TLS: {e}")))?;
        let verify_chain = match self.mode {
            TlsMode::VerifyCa | TlsMode::VerifyFull => true,
            TlsMode::Require => self.root_cert.is_some(),
            TlsMode::Disable | TlsMode::Prefer => false,
        };
        if let Some(root) = &self.root_cert {
            builder.set_ca_file(root).map_err(|e| invalid("sslrootcert", root, e))?;
        }
        if let (Some(cert), Some(key)) = (&self.client_cert, &self.client_key) {
            builder.set_certificate_chain_file(cert).map_err(|e| invalid("sslcert", cert, e))?;
            builder.set_private_key_file(key, SslFiletype::PEM).map_err(|e| invalid("sslkey", key, e))?;
        }
        builder.set_verify(if verify_chain { SslVerifyMode::PEER } else { SslVerifyMode::NONE });
        let mut connector = MakeTlsConnector::new(builder.build());
        let verify_host = self.mode == TlsMode::VerifyFull;
        connector.set_callback(move |config, _domain| {
            config.set_verify_hostname(verify_host);
            Ok(())
        });
        Ok(connector)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parameters_are_split_out_and_the_rest_kept() {
        let (rest, tls) =
            split_tls("postgresql://u@db:5432/citeflow?application_name=x&sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem").unwrap();
        assert_eq!(rest, "postgresql://u@db:5432/citeflow?application_name=x");
        assert_eq!(tls.mode, TlsMode::VerifyFull);
        assert_eq!(tls.root_cert.as_deref(), Some(Path::new("/tmp/ca.pem")));
        assert_eq!(tls.ssl_mode(), SslMode::Require);
    }

    #[test]
    fn key_value_parameters_are_split_out_with_quotes() {
        let (rest, tls) = split_tls("host=db  sslmode = require dbname='my db' sslrootcert='/a b/ca.pem' user=u").unwrap();
        assert_eq!(rest, "host=db dbname='my db' user=u");
        assert_eq!(tls.mode, TlsMode::Require);
        assert_eq!(tls.root_cert.as_deref(), Some(Path::new("/a b/ca.pem")));
        let rest: tokio_postgres::Config = rest.parse().unwrap();
        assert_eq!(rest.get_dbname(), Some("my db"));
    }

    #[test]
    fn unknown_modes_and_half_client_certificates_name_the_setting() {
        for url in ["postgresql://db/x?sslmode=sometimes", "host=db sslcert=/c.pem", "host=db dbname='open"] {
            let error = split_tls(url).unwrap_err().to_string();
            assert!(error.contains("postgres.url"), "{url}: {error}");
        }
    }

    #[test]
    fn a_missing_root_certificate_is_a_configuration_error() {
        let (_, tls) = split_tls("postgresql://db/x?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem").unwrap();
        let error = tls.connector().err().unwrap().to_string();
        assert!(error.contains("sslrootcert /nonexistent/ca.pem"), "{error}");
    }
}
