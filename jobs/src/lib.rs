//! The citation-matching job: domain types, input decoding, normalisation and matching,
//! the views it keeps in PostgreSQL, the dataflow that ties them together, and the loader.
// A dead letter carries the original message bytes by design; it travels as the `Err` of
// decoding and is not worth boxing.
#![allow(clippy::result_large_err)]

pub mod autoscale;
pub mod churn;
pub mod config;
pub mod dataflow;
pub mod domain;
pub mod envelope;
pub mod eval;
pub mod job;
pub mod loader;
pub mod matching;
pub mod periods;
pub mod publications;
pub mod references;
pub mod status;
pub mod synthetic;
pub mod views;
