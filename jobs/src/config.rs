//! The `citeflow` configuration: a TOML file (`--config` or `CITEFLOW_CONFIG`) with
//! environment overrides, validated at start so that a bad setting stops the program with a
//! message naming it.

use std::path::{Path, PathBuf};

use citeflow_connectors::kafka::KafkaConfig;
use citeflow_connectors::postgres::PostgresConfig;
use citeflow_engine::config::{env_override, load_toml, ConfigError, EngineConfig};
use citeflow_operators::inference::runtime_library;
use serde::Deserialize;

use crate::matching::Scorer;

/// Topic names.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsConfig {
    /// EPMC publication records.
    pub publications: String,
    /// Policy documents.
    pub documents: String,
    /// Where unusable messages go.
    pub dead_letter: String,
    /// Partitions of the input topics when `citeflow topics` creates them.
    pub partitions: i32,
}

impl Default for TopicsConfig {
    fn default() -> Self {
        TopicsConfig {
            publications: "epmc.publications".into(),
            documents: "policy.documents".into(),
            dead_letter: "citeflow.dead-letter".into(),
            partitions: 4,
        }
    }
}

/// Matcher settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MatchingConfig {
    /// The matcher version recorded with each citation.
    pub matcher: String,
    /// The lowest score (0 to 1) that makes a candidate a citation.
    pub min_score: f64,
    /// An ONNX scorer trained on `citeflow features` (env `CITEFLOW_MODEL`); empty for the
    /// rule scorer.
    pub model: String,
    /// ONNX Runtime's shared library (env `ORT_DYLIB_PATH`); empty to use the one
    /// `scripts/services.sh install` puts in `~/.cache/citeflow/venv`.
    pub onnx_runtime: String,
}

impl Default for MatchingConfig {
    fn default() -> Self {
        MatchingConfig { matcher: "rules-v1".into(), min_score: 0.8, model: String::new(), onnx_runtime: String::new() }
    }
}

impl MatchingConfig {
    /// The scorer these settings ask for.
    pub fn scorer(&self) -> Result<Scorer, ConfigError> {
        if self.model.is_empty() {
            return Ok(Scorer::Rules);
        }
        let model = PathBuf::from(&self.model);
        if !model.is_file() {
            return Err(ConfigError::invalid("matching.model", format!("{} is not a file", model.display())));
        }
        let runtime = match self.onnx_runtime.as_str() {
            "" => runtime_library().ok_or_else(|| {
                ConfigError::invalid("matching.onnx_runtime", "ONNX Runtime not found; run scripts/services.sh install or set ORT_DYLIB_PATH")
            })?,
            path => PathBuf::from(path),
        };
        if !runtime.is_file() {
            return Err(ConfigError::invalid("matching.onnx_runtime", format!("{} is not a file", runtime.display())));
        }
        Ok(Scorer::Model { runtime, model })
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CiteflowConfig {
    /// Runtime settings.
    pub engine: EngineConfig,
    /// Kafka clients.
    pub kafka: KafkaConfig,
    /// PostgreSQL.
    pub postgres: PostgresConfig,
    /// Topic names.
    pub topics: TopicsConfig,
    /// Matching.
    pub matching: MatchingConfig,
}

impl CiteflowConfig {
    /// Loads the file (if any), applies environment overrides and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let mut config: CiteflowConfig = load_toml(path)?;
        config.engine.apply_env()?;
        config.kafka.apply_env()?;
        config.postgres.apply_env()?;
        env_override(&mut config.matching.matcher, "CITEFLOW_MATCHER")?;
        env_override(&mut config.matching.min_score, "CITEFLOW_MIN_SCORE")?;
        env_override(&mut config.matching.model, "CITEFLOW_MODEL")?;
        env_override(&mut config.matching.onnx_runtime, "ORT_DYLIB_PATH")?;
        config.validate()?;
        Ok(config)
    }

    /// Checks every section.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.engine.validate()?;
        self.kafka.validate()?;
        self.postgres.validate()?;
        let topics = [
            ("topics.publications", &self.topics.publications),
            ("topics.documents", &self.topics.documents),
            ("topics.dead_letter", &self.topics.dead_letter),
        ];
        for (setting, topic) in topics {
            if topic.is_empty() || !topic.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
                return Err(ConfigError::invalid(setting, format!("`{topic}` is not a valid topic name")));
            }
        }
        if self.topics.publications == self.topics.documents {
            return Err(ConfigError::invalid("topics.documents", "must differ from topics.publications"));
        }
        if !(1..=1024).contains(&self.topics.partitions) {
            return Err(ConfigError::invalid("topics.partitions", "must be between 1 and 1024"));
        }
        if !(0.0..=1.0).contains(&self.matching.min_score) {
            return Err(ConfigError::invalid("matching.min_score", "must be between 0 and 1"));
        }
        self.matching.scorer()?;
        if self.matching.matcher.trim().is_empty() {
            return Err(ConfigError::invalid("matching.matcher", "must name the matcher version"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use citeflow_engine::config::parse_toml;

    #[test]
    fn the_local_configuration_is_valid() {
        let text = include_str!("../../config/local.toml");
        let config: CiteflowConfig = parse_toml(text, "config/local.toml").unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn a_missing_model_names_its_setting() {
        let mut config = CiteflowConfig::default();
        config.matching.model = "no/such/model.onnx".into();
        assert!(config.validate().unwrap_err().to_string().contains("matching.model"));
    }

    #[test]
    fn a_bad_topic_names_its_setting() {
        let mut config = CiteflowConfig::default();
        config.topics.documents = "has space".into();
        assert!(config.validate().unwrap_err().to_string().contains("topics.documents"));
    }
}
