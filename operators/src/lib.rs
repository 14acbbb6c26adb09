//! Reusable dataflow operators, generic over their record types: upsert streams into
//! differential collections, validation with dead-lettering, the best value per key, and
//! batched model inference.
// A dead letter carries the original message bytes by design; it travels as the `Err` of
// decoding and is not worth boxing.
#![allow(clippy::result_large_err)]

pub mod best;
pub mod inference;
pub mod stamp;
pub mod upsert;
pub mod validate;
