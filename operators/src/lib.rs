//! Reusable dataflow operators, generic over their record types: upsert streams into
//! differential collections, validation with dead-lettering, and the best value per key.

pub mod best;
pub mod stamp;
pub mod upsert;
pub mod validate;
