mod common;

use proptest::prelude::*;
use zentoria_extract::{
    ChunkOptions, Document, FileType, Heading, Kind, Limits, Utf8Check, chunk, detect,
    estimate_tokens, extract, sanitize_filename,
};

fn small_limits() -> Limits {
    Limits {
        max_text_bytes: 4096,
        max_unzipped_bytes: 1 << 20,
        max_zip_entries: 16,
        max_compression_ratio: 100,
        max_pages: 8,
    }
}

/// Arbitrary bytes, sometimes prefixed with a real magic to go deeper.
fn hostile_bytes() -> impl Strategy<Value = Vec<u8>> {
    let prefixes = prop_oneof![
        Just(Vec::new()),
        Just(b"%PDF-1.4\n".to_vec()),
        Just(b"PK\x03\x04".to_vec()),
        Just(b"<html><h1>".to_vec()),
        Just(b"# ".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
    ];
    (prefixes, proptest::collection::vec(any::<u8>(), 0..2048)).prop_map(|(mut p, b)| {
        p.extend(b);
        p
    })
}

/// Mutations of valid fixtures: truncation and byte flips.
fn mutated_fixture() -> impl Strategy<Value = (Kind, Vec<u8>)> {
    let pdf = common::pdf_compressed(&[&["Hello page one", "more"], &["Page two"]]);
    let docx = common::docx(&common::document_xml(
        "<w:p><w:pPr><w:pStyle w:val=\"Heading1\"/></w:pPr><w:r><w:t>T</w:t></w:r></w:p><w:p><w:r><w:t>body &amp; text</w:t></w:r></w:p>",
    ));
    (
        prop_oneof![Just((Kind::Pdf, pdf)), Just((Kind::Docx, docx))],
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|((kind, mut bytes), flips, cut, truncate)| {
            for (i, b) in flips {
                let i = i.index(bytes.len());
                bytes[i] = b;
            }
            if truncate {
                let c = cut.index(bytes.len() + 1);
                bytes.truncate(c);
            }
            (kind, bytes)
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn extract_never_panics_and_respects_limit(bytes in hostile_bytes()) {
        let limits = small_limits();
        for kind in Kind::ALL {
            if let Ok(doc) = extract(&bytes, &FileType::of(kind), &limits) {
                prop_assert!(doc.text.len() <= limits.max_text_bytes);
                for h in &doc.headings {
                    prop_assert!(h.offset <= doc.text.len() && doc.text.is_char_boundary(h.offset));
                }
                for w in doc.pages.windows(2) {
                    prop_assert!(w[0] <= w[1]);
                }
            }
        }
    }

    #[test]
    fn extract_survives_mutated_fixtures((kind, bytes) in mutated_fixture()) {
        let limits = small_limits();
        if let Ok(doc) = extract(&bytes, &FileType::of(kind), &limits) {
            prop_assert!(doc.text.len() <= limits.max_text_bytes);
            for &p in &doc.pages {
                prop_assert!(p <= doc.text.len() && doc.text.is_char_boundary(p));
            }
        }
    }

    #[test]
    fn detect_never_panics(
        head in proptest::collection::vec(any::<u8>(), 0..9000),
        name in "\\PC{0,40}",
        declared in proptest::option::of("\\PC{0,40}"),
    ) {
        let _ = detect(&head, &name, declared.as_deref());
        if let Ok(clean) = sanitize_filename(&name) {
            prop_assert!(!clean.is_empty() && clean.len() <= 255);
            prop_assert!(!clean.contains('/') && !clean.contains('\\'));
            prop_assert!(!clean.starts_with('.'));
            prop_assert!(!clean.chars().any(char::is_control));
        }
    }

    #[test]
    fn detect_text_files(text in "\\PC{1,300}", ext in prop::sample::select(vec!["txt", "md", "rs", "json", "csv", "html"])) {
        // Any printable text with a text extension is accepted, unless it starts with "#!".
        let name = format!("file.{ext}");
        let r = detect(text.as_bytes(), &name, None);
        if !text.starts_with("#!") || ext == "rs" {
            prop_assert!(r.is_ok(), "{:?}", r);
        }
    }

    #[test]
    fn utf8check_agrees_with_std(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..300),
            "\\PC{0,100}".prop_map(String::into_bytes),
            ("\\PC{0,50}", any::<u8>(), "\\PC{0,50}").prop_map(|(a, b, c)| {
                let mut v = a.into_bytes();
                v.push(b);
                v.extend(c.into_bytes());
                v
            }),
        ],
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        points.sort_unstable();
        let mut check = Utf8Check::new();
        let mut prev = 0;
        let mut result = Ok(());
        for p in points.into_iter().chain(std::iter::once(bytes.len())) {
            if result.is_ok() {
                result = check.push(&bytes[prev..p]);
            }
            prev = p;
        }
        let streamed = result.and_then(|_| check.finish()).map_err(|e| e.offset);
        let expected = {
            let nul = bytes.iter().position(|&b| b == 0);
            let utf8 = std::str::from_utf8(&bytes).err().map(|e| e.valid_up_to());
            match (nul, utf8) {
                (None, None) => Ok(()),
                (Some(a), Some(b)) => Err(a.min(b) as u64),
                (Some(a), None) | (None, Some(a)) => Err(a as u64),
            }
        };
        prop_assert_eq!(streamed, expected);
    }

    #[test]
    fn chunk_invariants(
        text in prop_oneof![
            "\\PC{0,400}",
            "([a-zé漢 ]{0,12}[\n .]{0,3}){0,80}",
            "(x{0,60}\n\n){0,10}",
        ],
        heads in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..7, "[a-z]{0,6}"), 0..6),
        max_tokens in 1usize..40,
        overlap in 0usize..30,
        pages in proptest::collection::vec(any::<prop::sample::Index>(), 0..4),
    ) {
        let snap = |i: &prop::sample::Index| {
            let mut o = i.index(text.len() + 1);
            while !text.is_char_boundary(o) { o -= 1; }
            o
        };
        let mut headings: Vec<Heading> = heads
            .iter()
            .map(|(i, level, title)| Heading { level: *level, title: title.clone(), offset: snap(i) })
            .collect();
        headings.sort_by_key(|h| h.offset);
        let mut pages: Vec<usize> = pages.iter().map(snap).collect();
        pages.sort_unstable();
        let doc = Document { text: text.clone(), pages, headings };
        let opts = ChunkOptions { max_tokens, overlap_tokens: overlap };
        let chunks = chunk(&doc, &opts);
        let mut covered = vec![false; text.len()];
        let mut last: Option<(usize, usize)> = None;
        for c in &chunks {
            prop_assert!(c.start < c.end && c.end <= text.len());
            prop_assert_eq!(&text[c.start..c.end], c.text.as_str());
            prop_assert_eq!(text[..c.start].chars().count(), c.start_char);
            prop_assert_eq!(text[..c.end].chars().count(), c.end_char);
            prop_assert_eq!(c.text.trim(), c.text.as_str());
            prop_assert_eq!(estimate_tokens(&c.text), c.tokens);
            prop_assert!(c.tokens <= max_tokens, "{} > {}", c.tokens, max_tokens);
            if let Some((s, e)) = last {
                prop_assert!(s < c.start && e < c.end, "out of order");
            }
            last = Some((c.start, c.end));
            // never across a heading boundary
            for h in &doc.headings {
                prop_assert!(!(c.start < h.offset && h.offset < c.end),
                    "chunk {:?} crosses heading at {}", c, h.offset);
            }
            // nor across a page break, and its page is the one it lies on
            for &p in &doc.pages {
                prop_assert!(!(c.start < p && p < c.end),
                    "chunk {:?} crosses the page break at {}", c, p);
            }
            if !doc.pages.is_empty() {
                let page = doc.pages.partition_point(|&p| p <= c.start).max(1);
                prop_assert_eq!(c.page, Some(page as u32));
            }
            covered[c.start..c.end].iter_mut().for_each(|b| *b = true);
        }
        for (i, ch) in text.char_indices() {
            if !ch.is_whitespace() {
                prop_assert!(covered[i], "char {:?} at {} not covered", ch, i);
            }
        }
        prop_assert_eq!(chunk(&doc, &opts), chunks);
    }
}
