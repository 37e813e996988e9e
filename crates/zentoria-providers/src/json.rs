//! JSON string helpers shared by the decoders here and the gateway's encoder.

/// Whether `b` holds no byte a JSON string must escape — no control character, `"` or
/// backslash — so that, as UTF-8, it is a JSON string's contents exactly as they are: written
/// between quotes without escaping, or read from between quotes without unescaping.
///
/// Checked a block of sixteen bytes at a time (without an early exit inside a block, the
/// compiler tests the sixteen at once), where serde_json looks up every byte. The bytes after
/// the last whole block are checked as the last sixteen bytes when there are that many, and
/// as two words that overlap when there are fewer: most strings of a stream (its tokens,
/// OpenAI's padding) are shorter than sixteen bytes, and testing their bytes one by one took
/// twice the instructions.
#[inline]
pub fn is_plain(b: &[u8]) -> bool {
    let (blocks, rest) = b.as_chunks::<16>();
    if blocks.iter().any(has_escaped) {
        return false;
    }
    if rest.is_empty() {
        return true;
    }
    if let Some(last) = b.last_chunk::<16>() {
        return !has_escaped(last);
    }
    // Fewer than sixteen bytes: the first and the last eight (or four), which overlap or meet.
    let word = |at: usize, n: usize| {
        let mut w = [b'a'; 8];
        w[..n].copy_from_slice(&b[at..at + n]);
        u64::from_le_bytes(w)
    };
    let n = b.len();
    let (first, last) = match n {
        8.. => (word(0, 8), word(n - 8, 8)),
        4.. => (word(0, 4), word(n - 4, 4)),
        _ => return !b.iter().any(|&c| (c < 0x20) | (c == b'"') | (c == b'\\')),
    };
    !word_has_escaped(first) && !word_has_escaped(last)
}

/// Whether any byte of a block is one a JSON string must escape.
#[inline(always)]
fn has_escaped(block: &[u8; 16]) -> bool {
    block.iter().fold(false, |any, &c| {
        any | (c < 0x20) | (c == b'"') | (c == b'\\')
    })
}

/// [`has_escaped`] for the eight bytes of a word, with the bit tricks that find a byte below
/// a bound (`x - n` borrows into the high bit of a byte below `n`, whose own high bit was
/// clear) and a zero byte (`x ^ c` is zero where a byte equals `c`): each exact for the word
/// as a whole.
#[inline(always)]
fn word_has_escaped(w: u64) -> bool {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = u64::from_le_bytes([0x80; 8]);
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    (below(w, 0x20)
        | below(w ^ (ONES * u64::from(b'"')), 1)
        | below(w ^ (ONES * u64::from(b'\\')), 1))
        != 0
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
        fn plain_is_having_no_byte_to_escape(bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..70),
            // Mostly plain, with bytes either side of each bound now and then.
            proptest::collection::vec(
                prop_oneof![
                    20 => Just(b'a'),
                    1 => proptest::sample::select(vec![0x00, 0x1f, 0x20, 0x21, b'"', b'#', b'[', b'\\', b']', 0x7f, 0x80, 0xdc, 0xff]),
                ],
                0..40,
            ),
        ]) {
            let naive = !bytes.iter().any(|&c| c < 0x20 || c == b'"' || c == b'\\');
            prop_assert_eq!(is_plain(&bytes), naive);
        }

        #[test]
        fn any_text_written_plainly_reads_back(text in ".{0,40}") {
            let literal = serde_json::to_vec(&text).unwrap();
            prop_assert_eq!(string(&literal), Some(text.clone()));
            prop_assert_eq!(is_plain(text.as_bytes()), literal.len() == text.len() + 2);
        }
    }
}
