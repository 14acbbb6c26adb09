//! Reusable dataflow operators, generic over their record types: arrangements without spare capacity, reductions for totally ordered times without an output arrangement, upsert streams into
//! differential collections (showing a restart's replay only once it ends), validation with dead-lettering, the best value per key, keys over a limit read from an arrangement, collections
//! split into parts without cloning, batched model inference, and event time — watermarks, windows, completeness and lateness.
// A dead letter carries the original message bytes by design; it travels as the `Err` of
// decoding and is not worth boxing.
#![allow(clippy::result_large_err)]

pub mod aggregate;
pub mod arrange;
pub mod best;
pub mod count;
pub mod inference;
pub mod join;
pub mod lateness;
pub mod reduce;
pub mod stamp;
pub mod stash;
pub mod unzip;
pub mod upsert;
pub mod validate;
pub mod watermark;
pub mod window;
