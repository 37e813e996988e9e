//! Structure-aware chunking with byte and char offsets for citations.
//!
//! The text is cut into sections at heading offsets (a chunk never spans two
//! sections). Within a section, the text is seen as a sequence of *atoms*
//! (runs of non-whitespace; every CJK character is an atom of its own). A
//! chunk is a run of whole atoms whose estimated tokens fit `max_tokens`; the
//! cut is placed at the strongest boundary in the second half of the window:
//! paragraph break > line break / sentence end > whitespace. Only a single
//! atom larger than the budget is cut inside (on a char boundary). The next
//! chunk of the same section starts up to `overlap_tokens` before the end of
//! the previous one. Everything is linear in the input size.

use serde::{Deserialize, Serialize};

use crate::Document;

/// Chunking parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkOptions {
    /// Upper bound of [`estimate_tokens`] for every chunk (default 512; 0 is treated as 1).
    pub max_tokens: usize,
    /// Approximate overlap with the previous chunk of the same section (default 64;
    /// capped at half of `max_tokens`).
    pub overlap_tokens: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            max_tokens: 512,
            overlap_tokens: 64,
        }
    }
}

/// A piece of a document. `text == doc.text[start..end]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    pub text: String,
    /// Byte offsets into `doc.text`.
    pub start: usize,
    pub end: usize,
    /// The same offsets counted in Unicode scalar values.
    pub start_char: usize,
    pub end_char: usize,
    /// 1-based page where the chunk starts (paginated documents only).
    pub page: Option<u32>,
    /// `"H1 > H2"` path of the section the chunk is in.
    pub heading: Option<String>,
    /// [`estimate_tokens`] of `text`.
    pub tokens: usize,
}

/// CJK ideographs, kana, hangul and their punctuation: one token per char.
fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x2E80..=0x2FDF      // radicals
        | 0x3000..=0x303F    // CJK symbols and punctuation
        | 0x3040..=0x30FF    // hiragana, katakana
        | 0x3100..=0x312F    // bopomofo
        | 0x3130..=0x318F    // hangul compatibility jamo
        | 0x31F0..=0x31FF
        | 0x3200..=0x4DBF    // enclosed, compatibility, ext A
        | 0x4E00..=0x9FFF    // unified ideographs
        | 0xA960..=0xA97F
        | 0xAC00..=0xD7AF    // hangul syllables
        | 0xF900..=0xFAFF    // compatibility ideographs
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFFEF    // half/full-width forms
        | 0x20000..=0x3FFFF  // ext B and beyond
    )
}

/// Tokens of a word of `n` chars: 1 up to 8 chars, then +1 per 4 chars.
fn word_tokens(n: usize) -> usize {
    if n <= 8 { 1 } else { 1 + (n - 8).div_ceil(4) }
}

/// Largest number of chars a single-word piece may have to stay within `t` tokens.
fn max_word_chars(t: usize) -> usize {
    8 + 4 * (t.max(1) - 1)
}

/// Cheap, deterministic token estimate: each whitespace-separated word counts
/// 1 (plus 1 per 4 chars beyond 8 chars), each CJK character counts 1.
pub fn estimate_tokens(s: &str) -> usize {
    let mut atoms = Atoms::new(s, 0);
    let mut total = 0;
    while let Some(a) = atoms.next_atom() {
        total += a.tokens;
    }
    total
}

#[derive(Debug, Clone, Copy)]
struct Atom {
    start: usize,
    end: usize,
    tokens: usize,
    /// Strength of the boundary after this atom: 1 whitespace/CJK, 2 line or
    /// sentence end, 3 paragraph break; 0 at the end of the section.
    gap: u8,
}

/// Iterator over the atoms of `s[pos..]`.
struct Atoms<'a> {
    s: &'a str,
    pos: usize,
    /// Stop scanning a word after this many chars and report it as oversized
    /// (`tokens = oversized`), so that a huge run without whitespace is not
    /// rescanned in full for every chunk.
    cap: usize,
    oversized: usize,
}

impl<'a> Atoms<'a> {
    fn new(s: &'a str, pos: usize) -> Self {
        Atoms {
            s,
            pos,
            cap: usize::MAX,
            oversized: 0,
        }
    }

    fn capped(s: &'a str, pos: usize, max_tokens: usize) -> Self {
        Atoms {
            s,
            pos,
            cap: max_word_chars(max_tokens) + 1,
            oversized: max_tokens + 1,
        }
    }

    fn next_atom(&mut self) -> Option<Atom> {
        let rest = &self.s[self.pos..];
        let lead = rest.find(|c: char| !c.is_whitespace())?;
        let start = self.pos + lead;
        let mut chars = self.s[start..].char_indices();
        let (_, first) = chars.next()?;
        let (end, tokens) = if is_cjk(first) {
            (start + first.len_utf8(), 1)
        } else {
            let mut n = 1;
            let mut end = self.s.len();
            let mut capped = false;
            for (i, c) in chars {
                if c.is_whitespace() || is_cjk(c) {
                    end = start + i;
                    break;
                }
                if n == self.cap {
                    end = start + i;
                    capped = true;
                    break;
                }
                n += 1;
            }
            if capped {
                (end, self.oversized)
            } else {
                (end, word_tokens(n))
            }
        };
        // Classify the gap after the atom.
        let after = &self.s[end..];
        let ws_len = after
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(after.len());
        let ws = &after[..ws_len];
        let newlines = ws.bytes().filter(|&b| b == b'\n').count();
        let last = self.s[start..end].chars().next_back();
        let sentence_end = matches!(
            last,
            Some('.' | '!' | '?' | ':' | ';' | '。' | '！' | '？' | '；')
        );
        let gap = if ws_len == after.len() {
            0
        } else if newlines >= 2 {
            3
        } else if newlines == 1 || (sentence_end && (ws_len > 0 || is_cjk_end(last))) {
            2
        } else {
            1
        };
        self.pos = end;
        Some(Atom {
            start,
            end,
            tokens,
            gap,
        })
    }
}

fn is_cjk_end(c: Option<char>) -> bool {
    matches!(c, Some('。' | '！' | '？'))
}

/// Monotone byte→char offset converter.
struct CharCursor<'a> {
    s: &'a str,
    byte: usize,
    chars: usize,
}

impl CharCursor<'_> {
    fn at(&mut self, byte: usize) -> usize {
        if byte < self.byte {
            // Not expected (callers are monotone); recount from the start.
            self.byte = 0;
            self.chars = 0;
        }
        self.chars += self.s[self.byte..byte].chars().count();
        self.byte = byte;
        self.chars
    }
}

/// Split a document into chunks. Deterministic; never panics.
pub fn chunk(doc: &Document, opts: &ChunkOptions) -> Vec<Chunk> {
    let text = doc.text.as_str();
    let max = opts.max_tokens.max(1);
    let overlap = opts.overlap_tokens.min(max / 2);

    // Sanitize headings: in range, on char boundaries, sorted.
    let mut heads: Vec<(usize, u8, &str)> = doc
        .headings
        .iter()
        .filter(|h| h.offset <= text.len() && text.is_char_boundary(h.offset))
        .map(|h| (h.offset, h.level, h.title.as_str()))
        .collect();
    heads.sort_by_key(|h| h.0);

    let mut out = Vec::new();
    let mut starts = CharCursor {
        s: text,
        byte: 0,
        chars: 0,
    };
    let mut ends = CharCursor {
        s: text,
        byte: 0,
        chars: 0,
    };
    let mut stack: Vec<(u8, &str)> = Vec::new();
    let mut sec_start = 0;
    let mut path: Option<String> = None;
    let mut emit = |start: usize, end: usize, tokens: usize, path: &Option<String>| {
        let page = if doc.pages.is_empty() {
            None
        } else {
            let n = doc.pages.partition_point(|&p| p <= start).max(1);
            Some(u32::try_from(n).unwrap_or(u32::MAX))
        };
        out.push(Chunk {
            text: text[start..end].to_string(),
            start,
            end,
            start_char: starts.at(start),
            end_char: ends.at(end),
            page,
            heading: path.clone(),
            tokens,
        });
    };
    // Sections end at headings and at page breaks, so a chunk never spans two pages and
    // its page citation is exact. A page break keeps the heading path.
    let mut cuts: Vec<(usize, Option<(u8, &str)>)> = heads
        .iter()
        .map(|&(offset, level, title)| (offset, Some((level, title))))
        .collect();
    cuts.extend(
        doc.pages
            .iter()
            .filter(|&&p| p > 0 && p <= text.len() && text.is_char_boundary(p))
            .map(|&p| (p, None)),
    );
    // Stable: at one offset, a page break comes before the heading that starts the page.
    cuts.sort_by_key(|c| (c.0, c.1.is_some()));
    for (offset, heading) in cuts {
        chunk_section(text, sec_start, offset, max, overlap, &mut |s, e, t| {
            emit(s, e, t, &path)
        });
        sec_start = offset;
        let Some((level, title)) = heading else {
            continue;
        };
        while stack.last().is_some_and(|&(l, _)| l >= level) {
            stack.pop();
        }
        let title = title.trim();
        stack.push((level, if title.is_empty() { "" } else { title }));
        let joined: Vec<&str> = stack
            .iter()
            .map(|&(_, t)| t)
            .filter(|t| !t.is_empty())
            .collect();
        path = (!joined.is_empty()).then(|| joined.join(" > "));
    }
    chunk_section(text, sec_start, text.len(), max, overlap, &mut |s, e, t| {
        emit(s, e, t, &path)
    });
    out
}

/// Chunk `text[from..to]`, calling `emit(start, end, tokens)` for each chunk.
fn chunk_section(
    text: &str,
    from: usize,
    to: usize,
    max: usize,
    overlap: usize,
    emit: &mut dyn FnMut(usize, usize, usize),
) {
    let section = &text[..to];
    let mut window: Vec<Atom> = Vec::with_capacity(max.min(4096) + 1);
    let mut pos = from;
    // Index (in the next window) of the last atom of the previous chunk, when
    // the next window starts with overlap.
    let mut prev_end: Option<usize> = None;
    loop {
        window.clear();
        let mut atoms = Atoms::capped(section, pos, max);
        let mut total = 0;
        let mut exhausted = true;
        while let Some(a) = atoms.next_atom() {
            total += a.tokens;
            window.push(a);
            if total > max {
                exhausted = false;
                break;
            }
        }
        if window.is_empty() {
            return;
        }
        if exhausted {
            // The rest of the section fits.
            let (s, e) = (window[0].start, window[window.len() - 1].end);
            if prev_end.is_none_or(|p| p + 1 < window.len()) {
                emit(s, e, total);
            }
            return;
        }
        // `fit` = number of leading atoms within the budget.
        let mut cum = 0;
        let mut fit = 0;
        for a in &window {
            if cum + a.tokens > max {
                break;
            }
            cum += a.tokens;
            fit += 1;
        }
        let min_idx = prev_end.map_or(0, |p| p + 1);
        if fit <= min_idx {
            if prev_end.is_some() {
                // The overlap leaves no room for new content: restart without it.
                let Some(p) = prev_end.take() else { return };
                pos = window[p].end;
                continue;
            }
            // A single atom larger than the budget: cut inside it.
            let a = window[0];
            let limit = max_word_chars(max);
            let cut = section[a.start..a.end]
                .char_indices()
                .nth(limit)
                .map_or(a.end, |(i, _)| a.start + i);
            let tokens = estimate_piece(&section[a.start..cut]);
            emit(a.start, cut, tokens);
            pos = cut;
            prev_end = None;
            continue;
        }
        // Choose the split: strongest gap among atoms whose cumulative tokens
        // reach half the budget, latest on ties; it must add new content.
        let half = max.div_ceil(2);
        let mut best: Option<(u8, usize)> = None;
        let mut cum = 0;
        for (i, a) in window[..fit].iter().enumerate() {
            cum += a.tokens;
            if i < min_idx || (cum < half && i + 1 < fit) {
                continue;
            }
            if best.is_none_or(|(g, _)| a.gap >= g) {
                best = Some((a.gap, i));
            }
        }
        let j = best.map_or(fit - 1, |(_, i)| i);
        let tokens: usize = window[..=j].iter().map(|a| a.tokens).sum();
        emit(window[0].start, window[j].end, tokens);
        // Overlap: walk back from j while within the overlap budget.
        let mut i = j + 1;
        let mut ov = 0;
        while i > 1 && ov + window[i - 1].tokens <= overlap {
            ov += window[i - 1].tokens;
            i -= 1;
        }
        if i <= j {
            pos = window[i].start;
            prev_end = Some(j - i);
        } else {
            pos = window[j].end;
            prev_end = None;
        }
    }
}

fn estimate_piece(s: &str) -> usize {
    estimate_tokens(s)
}
