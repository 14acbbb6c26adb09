//! Kafka client settings shared by the source, the producers and the admin client.

use std::collections::BTreeMap;

use citeflow_engine::config::{env_override, ConfigError};
use rdkafka::ClientConfig;
use serde::Deserialize;

/// Secrets, read only from the environment: variable and librdkafka property.
const SECRETS: [(&str, &str); 2] = [("KAFKA_SASL_PASSWORD", "sasl.password"), ("KAFKA_SSL_KEY_PASSWORD", "ssl.key.password")];

/// Settings for every Kafka client of the job. Extra librdkafka properties go in the maps;
/// nothing here is secret, secrets (e.g. `sasl.password`) come from `KAFKA_SASL_PASSWORD`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port…]` (env `KAFKA_BROKERS`).
    pub brokers: String,
    /// The consumer group the job tells its committed positions, for lag tools (it never reads
    /// them back).
    pub group_id: String,
    /// How often the running job asks the brokers whether its input topics have gained
    /// partitions, in milliseconds; 0: never (only at start).
    pub partition_discovery_ms: u64,
    /// librdkafka properties for every client.
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for consumers only.
    pub consumer: BTreeMap<String, String>,
    /// librdkafka properties for producers only.
    pub producer: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: "127.0.0.1:9092".to_string(),
            group_id: "citeflow".to_string(),
            partition_discovery_ms: 30_000,
            properties: BTreeMap::new(),
            consumer: BTreeMap::new(),
            producer: BTreeMap::new(),
        }
    }
}

impl KafkaConfig {
    /// Applies `KAFKA_BROKERS`.
    pub fn apply_env(&mut self) -> Result<(), ConfigError> {
        env_override(&mut self.brokers, "KAFKA_BROKERS")
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.trim().is_empty() {
            return Err(ConfigError::invalid("kafka.brokers", "must name at least one broker"));
        }
        for (name, map) in [("kafka.properties", &self.properties), ("kafka.consumer", &self.consumer), ("kafka.producer", &self.producer)]
        {
            if let Some(key) = map.keys().find(|k| k.contains("password") || k.contains("secret")) {
                return Err(ConfigError::invalid(
                    format!("{name}.{key}"),
                    "secrets are read from the environment (KAFKA_SASL_PASSWORD, KAFKA_SSL_KEY_PASSWORD), not the configuration file",
                ));
            }
        }
        Ok(())
    }

    fn base(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        for (variable, property) in SECRETS {
            if let Ok(secret) = std::env::var(variable) {
                config.set(property, secret);
            }
        }
        config
    }

    /// Settings for a consumer that reads assigned partitions and commits nothing itself.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut config = self.base();
        config
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            // librdkafka prefetches up to 100,000 messages or 64 MB per partition by default; the
            // job takes a few thousand at a time (flow control), and a replay of a long topic
            // would otherwise leave hundreds of MB of freed prefetch buffers behind.
            .set("queued.min.messages", "10000")
            .set("queued.max.messages.kbytes", "8192");
        for (key, value) in &self.consumer {
            config.set(key, value);
        }
        config
    }

    /// Settings for a producer.
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = self.base();
        for (key, value) in &self.producer {
            config.set(key, value);
        }
        config
    }

    /// Settings for an admin client.
    pub fn admin_config(&self) -> ClientConfig {
        self.base()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_the_file_are_refused() {
        let mut config = KafkaConfig::default();
        config.properties.insert("sasl.password".into(), "x".into());
        assert!(config.validate().unwrap_err().to_string().contains("kafka.properties.sasl.password"));
    }

    #[test]
    fn section_properties_override_common_ones() {
        let mut config = KafkaConfig::default();
        config.properties.insert("client.id".into(), "a".into());
        config.producer.insert("client.id".into(), "b".into());
        assert_eq!(config.producer_config().get("client.id"), Some("b"));
        assert_eq!(config.consumer_config().get("client.id"), Some("a"));
    }
}
