//! Markdown heading discovery (ATX and setext), skipping fenced code blocks
//! and YAML front matter. The text itself is kept verbatim.

use crate::Heading;

/// Lines of `s` as (start offset, line without its line terminator).
fn lines(s: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut pos = 0;
    s.split_inclusive('\n').map(move |raw| {
        let start = pos;
        pos += raw.len();
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        let line = line.strip_suffix('\r').unwrap_or(line);
        (start, line)
    })
}

/// Up to 3 leading spaces stripped; `None` if indented by 4+ (indented code).
fn unindent(line: &str) -> Option<&str> {
    let mut cols = 0;
    for (i, b) in line.bytes().enumerate() {
        match b {
            b' ' => cols += 1,
            b'\t' => cols += 4 - cols % 4,
            _ => return (cols < 4).then(|| &line[i..]),
        }
        if cols >= 4 {
            return None;
        }
    }
    Some("")
}

/// A fence opener/closer: (char, run length, rest after the run).
fn fence(line: &str) -> Option<(u8, usize, &str)> {
    let l = unindent(line)?;
    let c = *l.as_bytes().first()?;
    if c != b'`' && c != b'~' {
        return None;
    }
    let n = l.bytes().take_while(|&b| b == c).count();
    if n < 3 {
        return None;
    }
    Some((c, n, &l[n..]))
}

fn atx(line: &str) -> Option<(u8, String)> {
    let l = unindent(line)?;
    let n = l.bytes().take_while(|&b| b == b'#').count();
    if n == 0 || n > 6 {
        return None;
    }
    let rest = &l[n..];
    if !(rest.is_empty() || rest.starts_with(' ') || rest.starts_with('\t')) {
        return None;
    }
    let mut title = rest.trim();
    // Optional closing sequence: spaces then #'s.
    let stripped = title.trim_end_matches('#');
    if stripped.len() != title.len() && (stripped.is_empty() || stripped.ends_with([' ', '\t'])) {
        title = stripped.trim_end();
    }
    Some((n as u8, title.to_string()))
}

fn setext_level(line: &str) -> Option<u8> {
    let l = unindent(line)?.trim_end();
    let c = *l.as_bytes().first()?;
    if (c == b'=' || c == b'-') && l.bytes().all(|b| b == c) {
        Some(if c == b'=' { 1 } else { 2 })
    } else {
        None
    }
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Could this line be the text of a setext heading?
fn paragraph_line(line: &str) -> bool {
    let Some(l) = unindent(line) else {
        return false;
    };
    let l = l.trim_end();
    if l.is_empty() || atx(line).is_some() || fence(line).is_some() || setext_level(line).is_some()
    {
        return false;
    }
    let list_marker = l.starts_with("- ")
        || l.starts_with("* ")
        || l.starts_with("+ ")
        || l.starts_with('>')
        || {
            let d = l.bytes().take_while(u8::is_ascii_digit).count();
            d > 0 && d < 10 && (l[d..].starts_with(". ") || l[d..].starts_with(") "))
        };
    !list_marker && !l.starts_with('<')
}

pub(crate) fn headings(s: &str) -> Vec<Heading> {
    let mut out = Vec::new();
    let mut fence_open: Option<(u8, usize)> = None;
    let mut prev: Option<(usize, &str)> = None; // previous line if it can carry a setext underline
    let mut it = lines(s).peekable();

    // YAML front matter.
    if let Some((_, first)) = it.peek()
        && first.trim_end() == "---"
    {
        it.next();
        for (_, l) in it.by_ref() {
            let t = l.trim_end();
            if t == "---" || t == "..." {
                break;
            }
        }
    }

    for (start, line) in it {
        if let Some((c, n)) = fence_open {
            if let Some((c2, n2, rest)) = fence(line)
                && c2 == c
                && n2 >= n
                && rest.trim().is_empty()
            {
                fence_open = None;
            }
            prev = None;
            continue;
        }
        if let Some((c, n, rest)) = fence(line) {
            // A backtick fence's info string may not contain backticks.
            if c == b'~' || !rest.contains('`') {
                fence_open = Some((c, n));
                prev = None;
                continue;
            }
        }
        if let Some((level, title)) = atx(line) {
            out.push(Heading {
                level,
                title,
                offset: start,
            });
            prev = None;
            continue;
        }
        if let (Some(level), Some((pstart, pline))) = (setext_level(line), prev) {
            out.push(Heading {
                level,
                title: pline.trim().to_string(),
                offset: pstart,
            });
            prev = None;
            continue;
        }
        prev = if paragraph_line(line) && !is_blank(line) {
            Some((start, line))
        } else {
            None
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(s: &str) -> Vec<(u8, String, usize)> {
        headings(s)
            .into_iter()
            .map(|h| (h.level, h.title, h.offset))
            .collect()
    }

    #[test]
    fn atx_and_setext() {
        let s = "# Title\n\nintro\n\n## Part *one* ##\ntext\n\nSetext One\n==========\n\nSetext Two\n---\n\n---\n\n####### not\n#nospace\n";
        let h = hs(s);
        assert_eq!(
            h,
            vec![
                (1, "Title".into(), 0),
                (2, "Part *one*".into(), 16),
                (1, "Setext One".into(), s.find("Setext One").unwrap_or(0)),
                (2, "Setext Two".into(), s.find("Setext Two").unwrap_or(0)),
            ]
        );
        for (_, t, off) in &h {
            assert!(s[*off..].contains(t.as_str()));
        }
    }

    #[test]
    fn fenced_code_is_ignored() {
        let s = "# A\n```rust\n# not a heading\nfoo\n---\n```\n## B\n~~~~\n# no\n~~~\n# still code\n~~~~~\n# C\n    # indented code\n";
        let titles: Vec<String> = hs(s).into_iter().map(|h| h.1).collect();
        assert_eq!(titles, vec!["A", "B", "C"]);
    }

    #[test]
    fn front_matter_and_lists() {
        let s = "---\ntitle: x\n---\n# Real\n- item\n---\n";
        let titles: Vec<String> = hs(s).into_iter().map(|h| h.1).collect();
        assert_eq!(titles, vec!["Real"]);
        // CRLF
        let s = "# A\r\nB\r\n===\r\n";
        assert_eq!(hs(s), vec![(1, "A".into(), 0), (1, "B".into(), 5)]);
        // unclosed fence swallows the rest
        assert_eq!(hs("```\n# x\n").len(), 0);
    }
}
