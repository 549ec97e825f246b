//! Bindings for the Durable Objects' SQLite statements.

use worker::SqlStorageValue;

/// Sequence numbers and milliseconds stay far below 2^53, where JavaScript
/// numbers would lose precision.
pub fn int(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(value as i64)
}

pub fn text(value: &str) -> SqlStorageValue {
    SqlStorageValue::String(value.to_owned())
}
