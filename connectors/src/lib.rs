//! Connectors: the Kafka source and producers (rdkafka), topic archives and their source, the
//! PostgreSQL committer (tokio-postgres) that applies the engine's commit batches, and file
//! readers for samples.

pub mod archive;
pub mod files;
pub mod kafka;
mod log_source;
pub mod postgres;

pub use log_source::EpochSettings;
