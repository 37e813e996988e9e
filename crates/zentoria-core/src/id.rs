//! Identifiers: UUIDv7 strings, sortable by creation time and the same on every backend.

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Checks that a caller-supplied id has the shape of ours before it reaches a query.
pub fn is_valid_id(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok()
}
