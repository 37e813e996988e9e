//! A small, forgiving HTML-to-text converter: drops script/style/comments,
//! decodes entities, turns block elements into paragraph breaks and records
//! `<h1>`–`<h6>` as headings. Linear time, no recursion.

use crate::{Document, ExtractError, Heading, Limits, text_too_large};

/// Elements whose whole content is dropped (raw text up to the end tag).
const RAW_SKIP: &[&str] = &[
    "script", "style", "noscript", "template", "title", "textarea",
];
/// Elements whose subtree is dropped (parsed normally, nesting counted).
const TREE_SKIP: &[&str] = &["svg", "math"];
/// Elements that separate paragraphs.
const PARA: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "header",
    "footer",
    "nav",
    "aside",
    "main",
    "ul",
    "ol",
    "dl",
    "table",
    "blockquote",
    "pre",
    "figure",
    "figcaption",
    "form",
    "fieldset",
    "address",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "body",
    "html",
    "details",
    "summary",
    "caption",
    "thead",
    "tbody",
    "tfoot",
];
/// Elements that start a new line.
const LINE: &[&str] = &["br", "li", "tr", "dt", "dd", "option", "legend"];
/// Table cells: separated by a tab.
const CELL: &[&str] = &["td", "th"];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Brk {
    None,
    Space,
    Tab,
    Line,
    Para,
}

struct Out {
    text: String,
    pending: Brk,
    limit: usize,
    over: bool,
    headings: Vec<Heading>,
    /// (level, start offset of heading text if any text was emitted)
    heading: Option<(u8, Option<usize>)>,
}

impl Out {
    fn brk(&mut self, b: Brk) {
        if b > self.pending {
            self.pending = b;
        }
    }

    fn push_str(&mut self, s: &str, pre: bool) {
        if pre {
            for (i, part) in s.split('\n').enumerate() {
                if i > 0 {
                    self.brk(Brk::Line);
                }
                if !part.is_empty() {
                    self.emit(part);
                }
            }
            return;
        }
        for (i, word) in s.split(is_html_space).enumerate() {
            if i > 0 {
                self.brk(Brk::Space);
            }
            if !word.is_empty() {
                self.emit(word);
            }
        }
    }

    fn emit(&mut self, s: &str) {
        if self.over {
            return;
        }
        if !self.text.is_empty() {
            let sep = match self.pending {
                Brk::None => "",
                Brk::Space => " ",
                Brk::Tab => "\t",
                Brk::Line => "\n",
                Brk::Para => "\n\n",
            };
            self.text.push_str(sep);
        }
        self.pending = Brk::None;
        if let Some((_, start @ None)) = &mut self.heading {
            *start = Some(self.text.len());
        }
        self.text.push_str(s);
        if self.text.len() > self.limit {
            self.over = true;
        }
    }

    fn open_heading(&mut self, level: u8) {
        self.close_heading();
        self.brk(Brk::Para);
        self.heading = Some((level, None));
    }

    fn close_heading(&mut self) {
        if let Some((level, Some(start))) = self.heading.take() {
            let title = self.text[start..]
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            if !title.is_empty() {
                self.headings.push(Heading {
                    level,
                    title,
                    offset: start,
                });
            }
        }
        self.heading = None;
    }
}

fn is_html_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0C')
}

pub(crate) fn extract(src: &str, limits: &Limits) -> Result<Document, ExtractError> {
    let mut out = Out {
        text: String::new(),
        pending: Brk::None,
        limit: limits.max_text_bytes,
        over: false,
        headings: Vec::new(),
        heading: None,
    };
    let b = src.as_bytes();
    let mut i = 0;
    let mut text_start = 0;
    let mut skip_depth: usize = 0; // inside TREE_SKIP elements
    let mut pre_depth: usize = 0;
    let mut buf = String::new();

    while i < b.len() {
        if b[i] != b'<' {
            i += 1;
            continue;
        }
        // Flush text before the tag.
        if skip_depth == 0 && text_start < i {
            decode_entities(&src[text_start..i], &mut buf);
            out.push_str(&buf, pre_depth > 0);
        }
        let rest = &b[i..];
        if rest.starts_with(b"<!--") {
            i = find(b, i + 4, b"-->").map_or(b.len(), |p| p + 3);
        } else if rest.starts_with(b"<![CDATA[") {
            let end = find(b, i + 9, b"]]>").unwrap_or(b.len());
            if skip_depth == 0 {
                out.push_str(&src[i + 9..end], pre_depth > 0);
            }
            i = (end + 3).min(b.len());
        } else if rest.starts_with(b"<!") || rest.starts_with(b"<?") {
            i = find(b, i + 2, b">").map_or(b.len(), |p| p + 1);
        } else if let Some(tag) = parse_tag(b, i) {
            i = tag.end;
            let name = tag.name.as_str();
            if !tag.closing && RAW_SKIP.contains(&name) {
                if !tag.self_closing {
                    i = find_end_tag(b, i, name.as_bytes());
                }
            } else if TREE_SKIP.contains(&name) {
                if tag.closing {
                    skip_depth = skip_depth.saturating_sub(1);
                } else if !tag.self_closing {
                    skip_depth += 1;
                }
            } else if skip_depth == 0 {
                handle_tag(&mut out, name, tag.closing, &mut pre_depth);
            }
        } else {
            // A lone '<' is text.
            text_start = i;
            i += 1;
            continue;
        }
        text_start = i;
        if out.over {
            return Err(text_too_large(limits));
        }
    }
    if skip_depth == 0 && text_start < b.len() {
        decode_entities(&src[text_start..], &mut buf);
        out.push_str(&buf, pre_depth > 0);
    }
    out.close_heading();
    if out.over {
        return Err(text_too_large(limits));
    }
    Ok(Document {
        text: out.text,
        pages: Vec::new(),
        headings: out.headings,
    })
}

fn handle_tag(out: &mut Out, name: &str, closing: bool, pre_depth: &mut usize) {
    let hlevel = match name.as_bytes() {
        [b'h', d @ b'1'..=b'6'] => Some(d - b'0'),
        _ => None,
    };
    if let Some(level) = hlevel {
        if closing {
            out.close_heading();
            out.brk(Brk::Para);
        } else {
            out.open_heading(level);
        }
        return;
    }
    if name == "pre" {
        if closing {
            *pre_depth = pre_depth.saturating_sub(1);
        } else {
            *pre_depth += 1;
        }
    }
    if PARA.contains(&name) {
        if out.heading.is_some() && !closing {
            // A block inside a heading ends the heading text.
            out.close_heading();
        }
        out.brk(Brk::Para);
    } else if LINE.contains(&name) {
        if name == "br" || !closing {
            out.brk(Brk::Line);
        }
    } else if CELL.contains(&name) {
        if !closing {
            out.brk(Brk::Tab);
        }
    } else if name == "img" || name == "input" || name == "wbr" {
        // no text
    } else {
        // Inline elements: nothing (whitespace in the source decides spacing).
    }
}

struct Tag {
    name: String,
    closing: bool,
    self_closing: bool,
    end: usize,
}

/// Parse a tag starting at `b[i] == '<'`; `None` if it is not a tag (lone `<`).
fn parse_tag(b: &[u8], i: usize) -> Option<Tag> {
    let mut j = i + 1;
    let closing = b.get(j) == Some(&b'/');
    if closing {
        j += 1;
    }
    let name_start = j;
    if !b.get(j).is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-' || b[j] == b':') {
        j += 1;
    }
    let name = String::from_utf8_lossy(&b[name_start..j]).to_ascii_lowercase();
    // Skip attributes, honouring quotes.
    let mut quote: Option<u8> = None;
    let mut last_non_space = 0u8;
    while j < b.len() {
        let c = b[j];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b'>' => {
                return Some(Tag {
                    name,
                    closing,
                    self_closing: last_non_space == b'/',
                    end: j + 1,
                });
            }
            None => {}
        }
        if !c.is_ascii_whitespace() {
            last_non_space = c;
        }
        j += 1;
    }
    // Unterminated tag: swallow the rest.
    Some(Tag {
        name,
        closing,
        self_closing: false,
        end: b.len(),
    })
}

/// Position just after `</name ...>` (case-insensitive), or the end of input.
fn find_end_tag(b: &[u8], from: usize, name: &[u8]) -> usize {
    let mut i = from;
    while let Some(p) = find(b, i, b"</") {
        let s = p + 2;
        let e = s + name.len();
        if e <= b.len()
            && b[s..e].eq_ignore_ascii_case(name)
            && b.get(e).is_none_or(|c| !c.is_ascii_alphanumeric())
        {
            return find(b, e, b">").map_or(b.len(), |q| q + 1);
        }
        i = p + 2;
    }
    b.len()
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from >= hay.len() {
        return None;
    }
    let first = needle[0];
    let mut i = from;
    while i + needle.len() <= hay.len() {
        match hay[i..].iter().position(|&c| c == first) {
            None => return None,
            Some(off) => {
                i += off;
                if hay[i..].starts_with(needle) {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}

/// Decode character references into `out` (cleared first).
pub(crate) fn decode_entities(s: &str, out: &mut String) {
    out.clear();
    let mut rest = s;
    while let Some(p) = rest.find('&') {
        out.push_str(&rest[..p]);
        rest = &rest[p..];
        match decode_one(rest) {
            Some((text, used)) => {
                out.push_str(&text);
                rest = &rest[used..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
}

enum Decoded {
    Char(char),
    Str(&'static str),
}

impl Decoded {
    fn as_str(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Decoded::Char(c) => c.to_string().into(),
            Decoded::Str(s) => (*s).into(),
        }
    }
}

/// `s` starts with '&'. Returns the replacement and the number of bytes used.
fn decode_one(s: &str) -> Option<(std::borrow::Cow<'static, str>, usize)> {
    let b = s.as_bytes();
    if b.get(1) == Some(&b'#') {
        let (hex, start) = match b.get(2) {
            Some(b'x' | b'X') => (true, 3),
            _ => (false, 2),
        };
        let digits = b[start..]
            .iter()
            .take_while(|c| {
                if hex {
                    c.is_ascii_hexdigit()
                } else {
                    c.is_ascii_digit()
                }
            })
            .count();
        if digits == 0 {
            return None;
        }
        let num = &s[start..start + digits];
        let value = u32::from_str_radix(num, if hex { 16 } else { 10 }).unwrap_or(u32::MAX);
        let c = match value {
            0 => '\u{FFFD}',
            // Windows-1252 remapping of the C1 range, as browsers do.
            0x80..=0x9F => cp1252(value),
            v => char::from_u32(v).unwrap_or('\u{FFFD}'),
        };
        let mut used = start + digits;
        if b.get(used) == Some(&b';') {
            used += 1;
        }
        return Some((Decoded::Char(c).as_str(), used));
    }
    let n = b[1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric())
        .count()
        .min(32);
    if n == 0 {
        return None;
    }
    let name = &s[1..1 + n];
    let has_semi = b.get(1 + n) == Some(&b';');
    let value = named_entity(name)?;
    if has_semi {
        Some((value.as_str(), n + 2))
    } else if matches!(name, "amp" | "lt" | "gt" | "quot" | "nbsp" | "copy" | "reg") {
        Some((value.as_str(), n + 1))
    } else {
        None
    }
}

fn cp1252(v: u32) -> char {
    const T: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8D}', 'Ž',
        '\u{8F}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9D}',
        'ž', 'Ÿ',
    ];
    T.get((v - 0x80) as usize).copied().unwrap_or('\u{FFFD}')
}

fn named_entity(name: &str) -> Option<Decoded> {
    let c = match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" | "ensp" | "emsp" | "thinsp" => ' ',
        "shy" | "zwnj" | "zwj" | "lrm" | "rlm" => return Some(Decoded::Str("")),
        "copy" | "COPY" => '©',
        "reg" | "REG" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "minus" => '−',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "lsaquo" => '‹',
        "rsaquo" => '›',
        "bull" => '•',
        "middot" => '·',
        "dagger" => '†',
        "Dagger" => '‡',
        "permil" => '‰',
        "prime" => '′',
        "Prime" => '″',
        "deg" => '°',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "curren" => '¤',
        "sect" => '§',
        "para" => '¶',
        "times" => '×',
        "divide" => '÷',
        "plusmn" => '±',
        "frac12" => '½',
        "frac14" => '¼',
        "frac34" => '¾',
        "sup1" => '¹',
        "sup2" => '²',
        "sup3" => '³',
        "micro" => 'µ',
        "iexcl" => '¡',
        "iquest" => '¿',
        "ordf" => 'ª',
        "ordm" => 'º',
        "not" => '¬',
        "macr" => '¯',
        "acute" => '´',
        "cedil" => '¸',
        "uml" => '¨',
        "brvbar" => '¦',
        "larr" => '←',
        "rarr" => '→',
        "uarr" => '↑',
        "darr" => '↓',
        "harr" => '↔',
        "lArr" => '⇐',
        "rArr" => '⇒',
        "hArr" => '⇔',
        "le" => '≤',
        "ge" => '≥',
        "ne" => '≠',
        "asymp" => '≈',
        "equiv" => '≡',
        "infin" => '∞',
        "sum" => '∑',
        "prod" => '∏',
        "radic" => '√',
        "part" => '∂',
        "nabla" => '∇',
        "isin" => '∈',
        "forall" => '∀',
        "exist" => '∃',
        "empty" => '∅',
        "and" => '∧',
        "or" => '∨',
        "cap" => '∩',
        "cup" => '∪',
        "int" => '∫',
        "there4" => '∴',
        "sim" => '∼',
        "loz" => '◊',
        "spades" => '♠',
        "clubs" => '♣',
        "hearts" => '♥',
        "diams" => '♦',
        "check" => '✓',
        "Agrave" => 'À',
        "Aacute" => 'Á',
        "Acirc" => 'Â',
        "Atilde" => 'Ã',
        "Auml" => 'Ä',
        "Aring" => 'Å',
        "AElig" => 'Æ',
        "Ccedil" => 'Ç',
        "Egrave" => 'È',
        "Eacute" => 'É',
        "Ecirc" => 'Ê',
        "Euml" => 'Ë',
        "Igrave" => 'Ì',
        "Iacute" => 'Í',
        "Icirc" => 'Î',
        "Iuml" => 'Ï',
        "ETH" => 'Ð',
        "Ntilde" => 'Ñ',
        "Ograve" => 'Ò',
        "Oacute" => 'Ó',
        "Ocirc" => 'Ô',
        "Otilde" => 'Õ',
        "Ouml" => 'Ö',
        "Oslash" => 'Ø',
        "Ugrave" => 'Ù',
        "Uacute" => 'Ú',
        "Ucirc" => 'Û',
        "Uuml" => 'Ü',
        "Yacute" => 'Ý',
        "THORN" => 'Þ',
        "szlig" => 'ß',
        "agrave" => 'à',
        "aacute" => 'á',
        "acirc" => 'â',
        "atilde" => 'ã',
        "auml" => 'ä',
        "aring" => 'å',
        "aelig" => 'æ',
        "ccedil" => 'ç',
        "egrave" => 'è',
        "eacute" => 'é',
        "ecirc" => 'ê',
        "euml" => 'ë',
        "igrave" => 'ì',
        "iacute" => 'í',
        "icirc" => 'î',
        "iuml" => 'ï',
        "eth" => 'ð',
        "ntilde" => 'ñ',
        "ograve" => 'ò',
        "oacute" => 'ó',
        "ocirc" => 'ô',
        "otilde" => 'õ',
        "ouml" => 'ö',
        "oslash" => 'ø',
        "ugrave" => 'ù',
        "uacute" => 'ú',
        "ucirc" => 'û',
        "uuml" => 'ü',
        "yacute" => 'ý',
        "thorn" => 'þ',
        "yuml" => 'ÿ',
        "OElig" => 'Œ',
        "oelig" => 'œ',
        "Scaron" => 'Š',
        "scaron" => 'š',
        "Yuml" => 'Ÿ',
        "fnof" => 'ƒ',
        "circ" => 'ˆ',
        "tilde" => '˜',
        "Alpha" => 'Α',
        "Beta" => 'Β',
        "Gamma" => 'Γ',
        "Delta" => 'Δ',
        "Theta" => 'Θ',
        "Lambda" => 'Λ',
        "Pi" => 'Π',
        "Sigma" => 'Σ',
        "Phi" => 'Φ',
        "Psi" => 'Ψ',
        "Omega" => 'Ω',
        "alpha" => 'α',
        "beta" => 'β',
        "gamma" => 'γ',
        "delta" => 'δ',
        "epsilon" => 'ε',
        "zeta" => 'ζ',
        "eta" => 'η',
        "theta" => 'θ',
        "iota" => 'ι',
        "kappa" => 'κ',
        "lambda" => 'λ',
        "mu" => 'μ',
        "nu" => 'ν',
        "xi" => 'ξ',
        "omicron" => 'ο',
        "pi" => 'π',
        "rho" => 'ρ',
        "sigma" => 'σ',
        "sigmaf" => 'ς',
        "tau" => 'τ',
        "upsilon" => 'υ',
        "phi" => 'φ',
        "chi" => 'χ',
        "psi" => 'ψ',
        "omega" => 'ω',
        _ => return None,
    };
    Some(Decoded::Char(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(s: &str) -> Document {
        match extract(s, &Limits::default()) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn visible_text_only() {
        let html = r#"<!DOCTYPE html><html><head><title>T</title>
<style>body { color: red }</style><script>var x = "<p>no</p>";</script></head>
<body><!-- a comment <p>hidden</p> -->
<h1 class="x">Main &amp; Title</h1>
<p>Hello&nbsp;world &lt;tag&gt; &#169; &#x1F600; &eacute;t&eacute; &unknown; 5 &lt 6</p>
<div>Second <b>bold</b>
   paragraph</div>
<h2>Sub<br>heading</h2><ul><li>one</li><li>two</li></ul>
<SCRIPT type="text/javascript">alert(1)</SCRIPT >
<table><tr><td>a</td><td>b</td></tr></table>
<pre>line 1
  line 2</pre>
</body></html>"#;
        let d = ex(html);
        assert_eq!(
            d.text,
            "Main & Title\n\nHello world <tag> © 😀 été &unknown; 5 < 6\n\nSecond bold paragraph\n\nSub\nheading\n\none\ntwo\n\na\tb\n\nline 1\n  line 2"
        );
        assert!(
            !d.text.contains("alert") && !d.text.contains("color") && !d.text.contains("hidden")
        );
        let hs: Vec<(u8, &str, usize)> = d
            .headings
            .iter()
            .map(|h| (h.level, h.title.as_str(), h.offset))
            .collect();
        let sub = d.text.find("Sub").unwrap_or(usize::MAX);
        assert_eq!(hs, vec![(1, "Main & Title", 0), (2, "Sub heading", sub)]);
    }

    #[test]
    fn hostile_fragments() {
        for s in [
            "<",
            "<<<",
            "</",
            "<a",
            "<a href='",
            "<!--",
            "<![CDATA[x",
            "<script>",
            "&",
            "&#",
            "&#x",
            "&#99999999999;",
            "&#0;",
            "<h1>",
            "</h1>",
            "<svg><p>x</svg>y",
            "a<b>c",
        ] {
            let _ = ex(s);
        }
        assert_eq!(ex("a < b and c>d").text, "a < b and c>d");
        assert_eq!(ex("<svg><text>no</text></svg>yes").text, "yes");
        assert_eq!(ex("x &#150; y &#128;").text, "x – y €");
    }

    #[test]
    fn limit() {
        let big = "<p>word</p>".repeat(1000);
        let limits = Limits {
            max_text_bytes: 100,
            ..Limits::default()
        };
        assert!(matches!(
            extract(&big, &limits),
            Err(ExtractError::TooLarge(_))
        ));
    }
}
