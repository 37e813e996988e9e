//! Prompt-injection screening: a fast, pure detector for text that tries to steer a model —
//! a user's question, or a passage retrieved from a user's documents (a RAG chunk).
//!
//! [`screen`] normalises the text (NFKC, invisible and bidi-control characters removed, lower
//! case, whitespace runs collapsed) and matches it against a fixed set of rules in one pass of
//! a [`RegexSet`]; base64, hex, `\u` and Unicode-tag payloads are decoded (a bounded number,
//! one level deep) and screened too. The caller decides what a [`Finding`] means (record, warn,
//! block).
//!
//! This is a heuristic layer, not a guarantee: a determined attacker can phrase an injection
//! that no rule knows, and a benign text can trip one. It is never the only defence — retrieved
//! text is always passed to models as quoted, numbered data, never as instructions.

use std::borrow::Cow;
use std::sync::LazyLock;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use unicode_normalization::UnicodeNormalization;

mod decode;
mod rules;
#[cfg(test)]
mod tests;

use decode::*;
use rules::*;

use Category::*;

/// What kind of injection a rule detects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    InstructionOverride,
    RoleSwitch,
    PromptLeak,
    Delimiter,
    Encoding,
    Jailbreak,
    Exfiltration,
}

impl Category {
    /// The snake_case name, as serialised.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::InstructionOverride => "instruction_override",
            Category::RoleSwitch => "role_switch",
            Category::PromptLeak => "prompt_leak",
            Category::Delimiter => "delimiter",
            Category::Encoding => "encoding",
            Category::Jailbreak => "jailbreak",
            Category::Exfiltration => "exfiltration",
        }
    }
}

/// One rule that matched.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// Stable snake_case rule id, e.g. "ignore_previous_instructions".
    pub rule: &'static str,
    pub category: Category,
    /// At most ~80 characters of the (normalised) text around the match, for the audit log.
    /// For a decoded payload: `[inner_rule] ` and the decoded text around its match.
    pub excerpt: String,
}

/// Screens one text; an empty Vec means nothing suspicious. Each rule reports at most once,
/// in a fixed order.
///
/// Texts longer than 256 KiB are screened on their first and last 128 KiB only: an injection
/// buried deeper is missed, which keeps the cost per text bounded. At most 16 candidates of
/// each encoding are decoded, and decoded text is not decoded again.
pub fn screen(text: &str) -> Vec<Finding> {
    let capped = cap(text);
    let (visible, tags) = strip_invisible(&capped);
    let mut findings = match_rules(&normalize(&visible));
    findings.extend(decoded_findings(&visible, &tags));
    findings
}

const MAX_SCREENED: usize = 256 * 1024;
const HALF_SCREENED: usize = 128 * 1024;
/// Candidates of one encoding decoded per text.
const MAX_DECODES: usize = 16;
const EXCERPT_CHARS: usize = 80;
/// Characters of context kept before a match.
const EXCERPT_LEAD: usize = 20;

struct Engine {
    set: RegexSet,
    each: Vec<Regex>,
    squashed_set: RegexSet,
    squashed_each: Vec<Regex>,
    /// Index into [`RULES`] of each [`SQUASHED`] pattern.
    squashed_rule: Vec<usize>,
    base64: Regex,
    hex_escapes: Regex,
    zero_x: Regex,
    plain_hex: Regex,
    percent: Regex,
    unicode_escapes: Regex,
    unicode_escape: Regex,
}

static ENGINE: LazyLock<Engine> = LazyLock::new(Engine::new);

impl Engine {
    fn new() -> Engine {
        let patterns: Vec<String> = RULES.iter().map(|r| expand(r.pattern)).collect();
        let squashed: Vec<String> = SQUASHED.iter().map(|(_, p)| ascii_boundaries(p)).collect();
        Engine {
            set: set(&patterns),
            each: patterns.iter().map(|p| regex(p)).collect(),
            squashed_set: set(&squashed),
            squashed_each: squashed.iter().map(|p| regex(p)).collect(),
            squashed_rule: SQUASHED
                .iter()
                .map(|(id, _)| {
                    RULES
                        .iter()
                        .position(|r| r.id == *id)
                        .unwrap_or_else(|| panic!("squashed rule {id} has no rule"))
                })
                .collect(),
            // Case-sensitive candidates, over text before lower-casing.
            base64: regex(r"[A-Za-z0-9+/]{16,}(?:\r?\n[A-Za-z0-9+/]{16,})*={0,2}"),
            hex_escapes: regex(r"(?:\\x[0-9A-Fa-f]{2}[ ,]?){6,}"),
            zero_x: regex(r"(?:0x[0-9A-Fa-f]{2}[ ,]{0,2}){6,}"),
            plain_hex: regex(r"(?-u:\b)[0-9A-Fa-f]{24,}(?-u:\b)"),
            percent: regex(r"(?:[A-Za-z0-9._~+\-]*%[0-9A-Fa-f]{2}){3,}[A-Za-z0-9._~+\-]*"),
            unicode_escapes: regex(concat!(
                r"(?:(?:\\u[0-9A-Fa-f]{4}|\\u\{[0-9A-Fa-f]{1,6}\}|\\U[0-9A-Fa-f]{8}|&#[xX][0-9A-Fa-f]{1,6};|&#[0-9]{1,7};)",
                r"[ ]?){6,}"
            )),
            unicode_escape: regex(concat!(
                r"(?i)\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|\\u([0-9a-f]{4})|\\u\{([0-9a-f]{1,6})\}|",
                r"\\U([0-9a-f]{8})|&#x([0-9a-f]{1,6});|&#([0-9]{1,7});"
            )),
        }
    }
}

/// A rule's pattern as compiled: fragments filled in, spaces widened to [`SEP`], word
/// boundaries ASCII (cheaper for the lazy DFA; every rule word is ASCII).
fn expand(pattern: &str) -> String {
    let mut p = pattern.to_owned();
    // Fragments may name fragments defined before them, so expand in reverse order.
    for (name, body) in FRAGMENTS.iter().rev() {
        p = p.replace(name, body);
    }
    ascii_boundaries(&p.replace(' ', SEP))
}

fn ascii_boundaries(pattern: &str) -> String {
    pattern.replace(r"\b", r"(?-u:\b)")
}

fn regex(pattern: &str) -> Regex {
    RegexBuilder::new(pattern)
        .size_limit(32 << 20)
        .dfa_size_limit(16 << 20)
        .build()
        .unwrap_or_else(|e| panic!("screening pattern {pattern}: {e}"))
}

fn set(patterns: &[String]) -> RegexSet {
    RegexSetBuilder::new(patterns)
        .size_limit(64 << 20)
        .dfa_size_limit(32 << 20)
        .build()
        .unwrap_or_else(|e| panic!("screening rule set: {e}"))
}

/// The first and last [`HALF_SCREENED`] bytes of a text longer than [`MAX_SCREENED`].
fn cap(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_SCREENED {
        return Cow::Borrowed(text);
    }
    let mut head = HALF_SCREENED;
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - HALF_SCREENED;
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    Cow::Owned(format!("{}\n{}", &text[..head], &text[tail..]))
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{2069}' | '\u{FEFF}' | '\u{00AD}' | '\u{034F}' | '\u{180E}')
}

/// Removes zero-width and bidi-control characters, then applies NFKC. Unicode tag characters
/// (U+E0000–U+E007F, invisible ASCII look-alikes) are removed too and returned, as ASCII, on
/// the side.
fn strip_invisible(text: &str) -> (String, String) {
    let mut tags = String::new();
    let visible = text
        .chars()
        .filter(|&c| {
            if ('\u{E0000}'..='\u{E007F}').contains(&c) {
                if let Some(a) =
                    char::from_u32(c as u32 - 0xE0000).filter(|a| (' '..='~').contains(a))
                {
                    tags.push(a);
                }
                return false;
            }
            !is_invisible(c)
        })
        .nfkc()
        .collect();
    (visible, tags)
}

#[derive(Clone, Copy, PartialEq)]
enum Gap {
    Space,
    Newline,
    IndentedNewline,
}

/// Lower-cases, folds typographic quotes and (inside words that mix them with ASCII letters)
/// Cyrillic and Greek look-alikes, and collapses each whitespace run to one space — or to one
/// newline when it breaks a line, followed by one space when the next line is indented, so
/// line-start rules tell `system:` at a line start from an indented YAML key.
fn normalize(visible: &str) -> String {
    let mut out = String::with_capacity(visible.len());
    let mut word = String::new();
    let mut gap = None;
    for c in visible.chars().flat_map(char::to_lowercase) {
        let c = match c {
            '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{02BC}' | '`' => '\'',
            '\u{201C}' | '\u{201D}' | '\u{201F}' => '"',
            c => c,
        };
        if c.is_whitespace() {
            push_word(&mut out, &word);
            word.clear();
            let breaks = matches!(
                c,
                '\n' | '\r' | '\u{0B}' | '\u{0C}' | '\u{85}' | '\u{2028}' | '\u{2029}'
            );
            gap = Some(match (gap, breaks) {
                (_, true) => Gap::Newline,
                (Some(Gap::Newline | Gap::IndentedNewline), false) => Gap::IndentedNewline,
                _ => Gap::Space,
            });
            continue;
        }
        if let Some(g) = gap.take()
            && !out.is_empty()
        {
            out.push_str(match g {
                Gap::Space => " ",
                Gap::Newline => "\n",
                Gap::IndentedNewline => "\n ",
            });
        }
        word.push(c);
    }
    push_word(&mut out, &word);
    out
}

fn push_word(out: &mut String, word: &str) {
    if word.chars().any(|c| c.is_ascii_alphabetic())
        && word.chars().any(|c| look_alike(c).is_some())
    {
        out.extend(word.chars().map(|c| look_alike(c).unwrap_or(c)));
    } else {
        out.push_str(word);
    }
}

fn look_alike(c: char) -> Option<char> {
    Some(match c {
        'а' | 'α' => 'a',
        'с' => 'c',
        'ԁ' => 'd',
        'е' | 'ε' => 'e',
        'һ' => 'h',
        'і' | 'ι' | 'ı' => 'i',
        'ј' => 'j',
        'κ' => 'k',
        'ӏ' => 'l',
        'о' | 'ο' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'υ' => 'u',
        'ν' => 'v',
        'ԝ' => 'w',
        'х' => 'x',
        'у' => 'y',
        'ɡ' => 'g',
        _ => return None,
    })
}

/// Normalised text without separators, and for each of its bytes the offset in `norm` it
/// came from.
fn squash(norm: &str) -> (String, Vec<u32>) {
    let mut s = String::with_capacity(norm.len());
    let mut map = Vec::with_capacity(norm.len());
    for (i, c) in norm.char_indices() {
        if c.is_whitespace() || matches!(c, '-' | '_' | '.' | '*' | '~' | '|' | '·' | '•') {
            continue;
        }
        s.push(c);
        // Screened text is capped well below 4 GiB.
        map.extend(std::iter::repeat_n(i as u32, c.len_utf8()));
    }
    (s, map)
}

/// The rules matching normalised text, in [`RULES`] order.
fn match_rules(norm: &str) -> Vec<Finding> {
    let e = &*ENGINE;
    let mut found: Vec<Option<Finding>> = vec![None; RULES.len()];
    for i in e.set.matches(norm).iter() {
        if let Some(m) = e.each[i].find(norm) {
            found[i] = Some(finding(&RULES[i], excerpt(norm, m.start())));
        }
    }
    let (squashed, map) = squash(norm);
    for j in e.squashed_set.matches(&squashed).iter() {
        let i = e.squashed_rule[j];
        if found[i].is_none()
            && let Some(m) = e.squashed_each[j].find(&squashed)
        {
            found[i] = Some(finding(&RULES[i], excerpt(norm, map[m.start()] as usize)));
        }
    }
    found.into_iter().flatten().collect()
}

fn finding(rule: &Rule, excerpt: String) -> Finding {
    Finding {
        rule: rule.id,
        category: rule.category,
        excerpt,
    }
}

/// Up to [`EXCERPT_CHARS`] characters starting a little before byte `start` (a char
/// boundary), on one line.
fn excerpt(text: &str, start: usize) -> String {
    let from = text[..start]
        .char_indices()
        .rev()
        .nth(EXCERPT_LEAD - 1)
        .map_or(0, |(i, _)| i);
    let s: String = text[from..]
        .chars()
        .take(EXCERPT_CHARS)
        .map(|c| if c == '\n' { ' ' } else { c })
        .collect();
    s.trim().to_owned()
}
