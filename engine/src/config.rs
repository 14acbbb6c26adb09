//! Configuration loading: a TOML file, then environment overrides, then validation that
//! names the offending setting.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

/// A configuration problem, always naming the setting it concerns.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for the expected structure.
    #[error("configuration file {path} is invalid: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message, which names the setting.
        message: String,
    },
    /// A setting has a value that cannot work.
    #[error("setting `{setting}` is invalid: {reason}")]
    Invalid {
        /// Dotted name of the setting, e.g. `engine.epoch_ms`.
        setting: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl ConfigError {
    /// Shorthand for [`ConfigError::Invalid`].
    pub fn invalid(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError::Invalid { setting: setting.into(), reason: reason.into() }
    }
}

/// Reads and parses a TOML file; an absent path yields the type's defaults.
pub fn load_toml<T: DeserializeOwned + Default>(path: Option<&Path>) -> Result<T, ConfigError> {
    let Some(path) = path else { return Ok(T::default()) };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
    parse_toml(&text, &path.display().to_string())
}

/// Parses TOML text; `origin` names the text in errors.
pub fn parse_toml<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse { path: origin.to_string(), message: e.to_string() })
}

/// Overrides `target` with the environment variable `var` when it is set, parsing it with
/// `FromStr`; a value that does not parse is an error naming the variable.
pub fn env_override<T>(target: &mut T, var: &str) -> Result<(), ConfigError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    if let Ok(value) = std::env::var(var) {
        *target = value.parse().map_err(|e: T::Err| ConfigError::invalid(var, e.to_string()))?;
    }
    Ok(())
}

/// Milliseconds of a duration written as a number and a unit — `500 ms`, `30 s`, `10 min`,
/// `12 h`, `7 days`, `2 weeks` (the space is optional); `setting` names it in errors.
pub fn parse_duration(setting: &str, text: &str) -> Result<i64, ConfigError> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| ConfigError::invalid(setting, format!("`{text}` does not start with a whole number")))?;
    let unit_ms = match unit.trim() {
        "ms" => 1,
        "s" | "sec" | "second" | "seconds" => 1_000,
        "min" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        "d" | "day" | "days" => 86_400_000,
        "w" | "week" | "weeks" => 604_800_000,
        other => return Err(ConfigError::invalid(setting, format!("unknown unit `{other}`; use ms, s, min, h, days or weeks"))),
    };
    number.checked_mul(unit_ms).ok_or_else(|| ConfigError::invalid(setting, format!("`{text}` is too long")))
}

/// Settings of the runtime itself.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfig {
    /// Timely worker threads in this process.
    pub workers: usize,
    /// Addresses (`host:port`) of all processes of a timely cluster; empty for one process.
    pub hosts: Vec<String>,
    /// This process's index in `hosts`.
    pub process: usize,
    /// Length of a processing-time epoch in milliseconds.
    pub epoch_ms: u64,
    /// Most records a source reads into one epoch before closing it early.
    pub max_records_per_epoch: usize,
    /// Most records a source (one per worker) may have read that the job has not finished
    /// (committed); beyond this it pauses and the backlog waits in Kafka (see `flow`).
    pub max_in_flight_records: usize,
    /// Address of the metrics and health HTTP endpoint; empty disables it.
    pub metrics_addr: String,
    /// How often (ms) a job without input still closes an epoch, so that decisions that
    /// depend on processing time alone (a partition turning idle) are made; between beats an
    /// idle job mints no epochs and schedules no operators.
    pub heartbeat_ms: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            workers: 1,
            hosts: Vec::new(),
            process: 0,
            epoch_ms: 200,
            max_records_per_epoch: 1_000,
            max_in_flight_records: 2_000,
            metrics_addr: "127.0.0.1:9464".to_string(),
            heartbeat_ms: 2_000,
        }
    }
}

impl EngineConfig {
    /// Applies `CITEFLOW_WORKERS`, `CITEFLOW_HOSTS` (comma-separated), `CITEFLOW_PROCESS`,
    /// `CITEFLOW_EPOCH_MS` and `CITEFLOW_METRICS_ADDR`.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        env_override(&mut self.workers, "CITEFLOW_WORKERS")?;
        if let Ok(hosts) = std::env::var("CITEFLOW_HOSTS") {
            self.hosts = hosts.split(',').map(str::trim).filter(|host| !host.is_empty()).map(str::to_owned).collect();
        }
        env_override(&mut self.process, "CITEFLOW_PROCESS")?;
        env_override(&mut self.epoch_ms, "CITEFLOW_EPOCH_MS")?;
        env_override(&mut self.metrics_addr, "CITEFLOW_METRICS_ADDR")
    }

    /// Checks that the settings can work together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.workers == 0 || self.workers > 1024 {
            return Err(ConfigError::invalid("engine.workers", "must be between 1 and 1024"));
        }
        if self.epoch_ms == 0 {
            return Err(ConfigError::invalid("engine.epoch_ms", "must be at least 1"));
        }
        if self.max_records_per_epoch == 0 {
            return Err(ConfigError::invalid("engine.max_records_per_epoch", "must be at least 1"));
        }
        if self.heartbeat_ms == 0 {
            return Err(ConfigError::invalid("engine.heartbeat_ms", "must be at least 1"));
        }
        if self.max_in_flight_records == 0 {
            return Err(ConfigError::invalid("engine.max_in_flight_records", "must be at least 1"));
        }
        if !self.hosts.is_empty() && self.process >= self.hosts.len() {
            return Err(ConfigError::invalid(
                "engine.process",
                format!("is {} but engine.hosts lists {} processes", self.process, self.hosts.len()),
            ));
        }
        if !self.metrics_addr.is_empty() && self.metrics_addr.parse::<std::net::SocketAddr>().is_err() {
            return Err(ConfigError::invalid("engine.metrics_addr", "must be an address like 127.0.0.1:9464"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_units() {
        assert_eq!(parse_duration("x", "500ms").unwrap(), 500);
        assert_eq!(parse_duration("x", "30 s").unwrap(), 30_000);
        assert_eq!(parse_duration("x", "7 days").unwrap(), 7 * 86_400_000);
        assert!(parse_duration("event_time.idle_timeout", "soon").unwrap_err().to_string().contains("event_time.idle_timeout"));
        assert!(parse_duration("x", "3 fortnights").is_err());
    }

    #[test]
    fn defaults_are_valid() {
        EngineConfig::default().validate().unwrap();
    }

    #[test]
    fn zero_workers_names_the_setting() {
        let config = EngineConfig { workers: 0, ..EngineConfig::default() };
        let message = config.validate().unwrap_err().to_string();
        assert!(message.contains("engine.workers"), "{message}");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let error = parse_toml::<EngineConfig>("wrokers = 2", "test").unwrap_err().to_string();
        assert!(error.contains("wrokers"), "{error}");
    }
}
