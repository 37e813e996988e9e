//! JSON string helpers shared by the decoders here and the gateway's encoder.

/// Whether `b` holds no byte a JSON string must escape — no control character, `"` or
/// backslash — so that, as UTF-8, it is a JSON string's contents exactly as they are: written
/// between quotes without escaping, or read from between quotes without unescaping.
///
/// Checked a block of sixteen bytes at a time (without an early exit inside a block, the
/// compiler tests the sixteen at once), where serde_json looks up every byte.
#[inline]
pub fn is_plain(b: &[u8]) -> bool {
    let escaped = |c: u8| (c < 0x20) | (c == b'"') | (c == b'\\');
    let mut blocks = b.chunks_exact(16);
    for block in &mut blocks {
        if block.iter().fold(false, |any, &c| any | escaped(c)) {
            return false;
        }
    }
    !blocks.remainder().iter().any(|&c| escaped(c))
}

/// The text of the JSON string literal `literal` (its quotes included), or `None` if it is not
/// exactly one string. A string without escapes is its bytes, once they are checked as UTF-8;
/// anything else is left to serde_json.
pub(crate) fn string(literal: &[u8]) -> Option<String> {
    let inner = literal.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if is_plain(inner) {
        return std::str::from_utf8(inner).ok().map(str::to_owned);
    }
    serde_json::from_slice(literal).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_strings_are_read_as_they_are_and_the_rest_as_serde_json_reads_them() {
        assert_eq!(string(br#""token7 ""#).as_deref(), Some("token7 "));
        assert_eq!(string(br#""""#).as_deref(), Some(""));
        assert_eq!(string(br#""h\u00e9 \"q\"""#).as_deref(), Some("hé \"q\""));
        assert_eq!(string("\"h\u{e9}\"".as_bytes()).as_deref(), Some("hé"));
        for bad in [
            &br#""a" "b""#[..],
            br#""a"b""#,
            b"\"\x01\"",
            b"\"\xff\"",
            br#""\"#,
            br#""\q""#,
            b"\"",
            b"",
            b"x",
            br#"  "a"  "#,
        ] {
            assert_eq!(string(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    proptest! {
        #[test]
        fn any_bytes_read_as_serde_json_reads_one_string(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut literal = vec![b'"'];
            literal.extend_from_slice(&bytes);
            literal.push(b'"');
            prop_assert_eq!(string(&literal), serde_json::from_slice::<String>(&literal).ok());
        }

        #[test]
        fn any_text_written_plainly_reads_back(text in ".{0,40}") {
            let literal = serde_json::to_vec(&text).unwrap();
            prop_assert_eq!(string(&literal), Some(text.clone()));
            prop_assert_eq!(is_plain(text.as_bytes()), literal.len() == text.len() + 2);
        }
    }
}
