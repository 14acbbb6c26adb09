//! The citeflow runtime: worker layout, the time model, the commit protocol seen from the
//! dataflow side, view rows, metrics with their HTTP endpoints, and configuration helpers.
//!
//! Nothing here knows about citations; jobs describe their views with [`rows::ViewSchema`]
//! and hand their changes to [`sink::commit_views`].

pub mod autoscale;
pub mod config;
pub mod flow;
pub mod http;
pub mod introspection;
pub mod jemalloc;
pub mod metrics;
pub mod progress;
pub mod replay;
pub mod rows;
pub mod sink;
pub mod time;
pub mod timestamps;
pub mod worker;
