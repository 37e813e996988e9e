//! Identifiers: UUIDv7 strings, sortable by creation time and the same on every backend.

pub fn new_id() -> String {
    // Encoded straight into a buffer: `to_string` goes through the formatting machinery,
    // which cost more than making the id.
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid::Uuid::now_v7()
        .hyphenated()
        .encode_lower(&mut buf)
        .to_owned()
}

/// Checks that a caller-supplied id has the shape of ours before it reaches a query.
pub fn is_valid_id(s: &str) -> bool {
    uuid::Uuid::try_parse(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuid_v7_as_display_writes_them_and_ordered() {
        let ids: Vec<String> = (0..100).map(|_| new_id()).collect();
        for id in &ids {
            let parsed = uuid::Uuid::try_parse(id).unwrap();
            assert_eq!(parsed.get_version_num(), 7);
            assert_eq!(&parsed.to_string(), id);
            assert!(is_valid_id(id));
        }
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(
            sorted, ids,
            "made in one process, ids sort in the order they were made"
        );
    }
}
