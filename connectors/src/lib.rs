//! Connectors: the Kafka source and producers (rdkafka), the PostgreSQL committer
//! (tokio-postgres) that applies the engine's commit batches, and file readers for samples.

pub mod files;
pub mod kafka;
pub mod postgres;
