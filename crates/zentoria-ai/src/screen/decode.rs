//! Encoded payloads (base64, hex, `\\u` escapes, Unicode tags), decoded a bounded number of
//! times and one level deep, then screened by the rules.

use super::*;

/// Screens text that came out of a decoder: the rules only, no further decoding.
pub(super) fn screen_decoded(text: &str) -> Option<Finding> {
    let (visible, _) = strip_invisible(text);
    match_rules(&normalize(&visible)).into_iter().next()
}

pub(super) fn decoded_findings(visible: &str, tags: &str) -> Vec<Finding> {
    let e = &*ENGINE;
    let first_hit = |candidates: &mut dyn Iterator<Item = &str>,
                     decode: fn(&str) -> Option<String>| {
        candidates
            .take(MAX_DECODES)
            .filter_map(decode)
            .find_map(|t| screen_decoded(&t))
    };
    let base64 = first_hit(
        &mut e
            .base64
            .find_iter(visible)
            .map(|m| m.as_str())
            .filter(|s| plausible_base64(s)),
        decode_base64,
    );
    let hex = first_hit(
        &mut e.hex_escapes.find_iter(visible).map(|m| m.as_str()),
        |s| utf8(unescape_bytes(s, "\\x", false)),
    )
    .or_else(|| {
        first_hit(&mut e.zero_x.find_iter(visible).map(|m| m.as_str()), |s| {
            utf8(unescape_bytes(s, "0x", true))
        })
    })
    .or_else(|| {
        first_hit(
            &mut e.plain_hex.find_iter(visible).map(|m| m.as_str()),
            decode_hex,
        )
    })
    .or_else(|| {
        first_hit(&mut e.percent.find_iter(visible).map(|m| m.as_str()), |s| {
            utf8(unescape_bytes(&s.replace('+', " "), "%", false))
        })
    });
    let unicode = first_hit(
        &mut e.unicode_escapes.find_iter(visible).map(|m| m.as_str()),
        decode_unicode_escapes,
    );
    let tagged = (tags.len() >= 8).then(|| screen_decoded(tags)).flatten();
    [
        (BASE64_PAYLOAD, base64),
        (HEX_PAYLOAD, hex),
        (UNICODE_ESCAPE_PAYLOAD, unicode),
        (UNICODE_TAG_PAYLOAD, tagged),
    ]
    .into_iter()
    .filter_map(|(rule, inner)| {
        inner.map(|inner| Finding {
            rule,
            category: Encoding,
            excerpt: format!("[{}] {}", inner.rule, inner.excerpt)
                .chars()
                .take(EXCERPT_CHARS)
                .collect(),
        })
    })
    .collect()
}

/// Worth a decode: 24+ characters, mixed case, and a digit or a base64-only symbol — which
/// base64 of text almost always has and identifiers seldom do.
pub(super) fn plausible_base64(s: &str) -> bool {
    let body = s.bytes().filter(|b| !matches!(b, b'\r' | b'\n' | b'='));
    let (mut len, mut upper, mut lower, mut other) = (0, false, false, false);
    for b in body {
        len += 1;
        upper |= b.is_ascii_uppercase();
        lower |= b.is_ascii_lowercase();
        other |= b.is_ascii_digit() || b == b'+' || b == b'/';
    }
    len >= 24 && upper && lower && (other || s.ends_with('='))
}

pub(super) fn decode_base64(s: &str) -> Option<String> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let mut body: String = s
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n' | '='))
        .collect();
    if body.len() % 4 == 1 {
        body.pop();
    }
    utf8(LENIENT.decode(body).ok()?)
}

pub(super) fn decode_hex(s: &str) -> Option<String> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    utf8(bytes)
}

/// Replaces each `prefix` + two hex digits by its byte; other bytes are kept, except the
/// `, ` separators of `0x` lists when `drop_separators`.
pub(super) fn unescape_bytes(s: &str, prefix: &str, drop_separators: bool) -> Vec<u8> {
    let b = s.as_bytes();
    let p = prefix.len();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(prefix.as_bytes())
            && let Some(byte) = b
                .get(i + p..i + p + 2)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(byte);
            i += p + 2;
            continue;
        }
        if !(drop_separators && matches!(b[i], b' ' | b',')) {
            out.push(b[i]);
        }
        i += 1;
    }
    out
}

pub(super) fn decode_unicode_escapes(s: &str) -> Option<String> {
    let token = &ENGINE.unicode_escape;
    let decoded = token.replace_all(s, |c: &regex::Captures<'_>| {
        let hex = |i: usize| {
            c.get(i)
                .and_then(|m| u32::from_str_radix(m.as_str(), 16).ok())
        };
        let code = if let (Some(hi), Some(lo)) = (hex(1), hex(2)) {
            Some(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
        } else {
            hex(3)
                .or_else(|| hex(4))
                .or_else(|| hex(5))
                .or_else(|| hex(6))
                .or_else(|| c.get(7).and_then(|m| m.as_str().parse().ok()))
        };
        code.and_then(char::from_u32)
            .map(String::from)
            .unwrap_or_default()
    });
    Some(decoded.into_owned())
}

pub(super) fn utf8(bytes: Vec<u8>) -> Option<String> {
    String::from_utf8(bytes).ok()
}
