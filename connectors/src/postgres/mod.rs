//! PostgreSQL: connection settings, versioned migrations, and the committer that applies the
//! engine's commit batches in single transactions with fencing.

pub mod apply;
pub mod committer;
pub mod migrate;
mod outbox;
pub mod refusals;
pub mod tls;

use citeflow_engine::config::{env_override, ConfigError};
use serde::Deserialize;
use tokio_postgres::Client;

pub use committer::{start_committer, CommitterHandle};
pub use migrate::Migration;

/// A PostgreSQL operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// The server or the connection reported an error.
    #[error("postgres: {context}: {source}")]
    Db {
        /// What was being done.
        context: String,
        /// The driver's error.
        source: tokio_postgres::Error,
    },
    /// Another instance of the job has started since this one: this one must stop.
    #[error("fenced: this instance has generation {ours} but generation {current} has started since; stopping")]
    Fenced {
        /// This instance's generation.
        ours: i64,
        /// The generation in the database.
        current: i64,
    },
    /// The connection settings are unusable.
    #[error("{0}")]
    Config(String),
}

impl PgError {
    /// Whether retrying may succeed: a lost connection, a server shutting down or starting,
    /// a serialization failure or deadlock, or exhausted resources. Anything else (bad data,
    /// a schema that does not match) would fail again and must stop the job instead.
    pub fn is_transient(&self) -> bool {
        match self {
            PgError::Db { source, .. } => match source.code() {
                None => true,
                Some(state) => ["08", "40", "53", "57", "58"].iter().any(|class| state.code().starts_with(class)),
            },
            PgError::Fenced { .. } | PgError::Config(_) => false,
        }
    }

    /// If the database refused the data itself — SQLSTATE class 22 (data exception), 23
    /// (integrity constraint violation) or 54 (program limit exceeded, e.g. an index row too
    /// large) — the code and the database's message; a row that caused it can be set aside.
    pub fn refusal(&self) -> Option<String> {
        let PgError::Db { source, .. } = self else { return None };
        let error = source.as_db_error()?;
        let code = error.code().code();
        ["22", "23", "54"].iter().any(|class| code.starts_with(class)).then(|| format!("{code}: {}", error.message()))
    }

    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> PgError {
        let context = context.into();
        move |source| PgError::Db { context, source }
    }
}

/// Connection settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresConfig {
    /// Connection string, URL or key=value form (env `DATABASE_URL`). A password belongs in
    /// `PGPASSWORD` or in `DATABASE_URL`, never in the configuration file.
    pub url: String,
    /// The schema the job's tables live in (set from the job's name, a valid identifier);
    /// `None`: the connection's default.
    #[serde(skip)]
    pub schema: Option<String>,
}

impl Default for PostgresConfig {
    fn default() -> Self {
        PostgresConfig { url: "postgresql://postgres@127.0.0.1:5432/citeflow".to_string(), schema: None }
    }
}

impl PostgresConfig {
    /// Applies `DATABASE_URL`.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        env_override(&mut self.url, "DATABASE_URL")
    }

    /// Checks that the URL parses, its TLS files load, and it carries no password unless it
    /// came from the environment.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let connection = self.connection()?;
        if connection.config.get_password().is_some() && std::env::var("DATABASE_URL").is_err() && std::env::var("PGPASSWORD").is_err() {
            return Err(ConfigError::invalid("postgres.url", "holds a password; put secrets in PGPASSWORD or DATABASE_URL instead"));
        }
        Ok(())
    }

    /// The parsed connection settings, with `PGPASSWORD` applied, and TLS as `sslmode` asks
    /// (see [`tls`]).
    pub fn connection(&self) -> Result<Connection, ConfigError> {
        let (rest, tls) = tls::split_tls(&self.url)?;
        let mut parsed: tokio_postgres::Config =
            rest.parse().map_err(|e: tokio_postgres::Error| ConfigError::invalid("postgres.url", e.to_string()))?;
        parsed.ssl_mode(tls.ssl_mode());
        if let Ok(password) = std::env::var("PGPASSWORD") {
            parsed.password(password);
        }
        if let Some(schema) = &self.schema {
            let options = parsed.get_options().map(|o| format!("{o} ")).unwrap_or_default();
            parsed.options(format!("{options}-c search_path={schema}"));
        }
        Ok(Connection { config: parsed, tls: tls.connector()? })
    }
}

/// Where and how to connect: tokio-postgres's settings and the TLS connector for them.
#[derive(Clone)]
pub struct Connection {
    /// The settings (with the password, when one is set: never log them).
    pub config: tokio_postgres::Config,
    tls: postgres_openssl::MakeTlsConnector,
}

impl Connection {
    /// Connects, driving the connection on the current tokio runtime.
    pub async fn connect(&self) -> Result<Client, PgError> {
        let (client, driver) = self.config.connect(self.tls.clone()).await.map_err(PgError::db("connecting"))?;
        tokio::spawn(async move {
            if let Err(error) = driver.await {
                tracing::warn!(%error, "postgres connection closed");
            }
        });
        Ok(client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_url_names_the_setting() {
        let config = PostgresConfig { url: "postgresql://x:notaport/db".into(), schema: None };
        assert!(config.validate().unwrap_err().to_string().contains("postgres.url"));
    }
}
