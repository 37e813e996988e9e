mod common;

use zentoria_extract::{Document, ExtractError, FileType, Kind, Limits, detect, extract};

fn ex(bytes: &[u8], kind: Kind) -> Result<Document, ExtractError> {
    extract(bytes, &FileType::of(kind), &Limits::default())
}

fn page_texts(d: &Document) -> Vec<&str> {
    let mut out = Vec::new();
    for (i, &start) in d.pages.iter().enumerate() {
        let end = d
            .pages
            .get(i + 1)
            .map_or(d.text.len(), |&next| next - "\n\n".len());
        out.push(&d.text[start..end]);
    }
    out
}

#[test]
fn pdf_text_per_page() {
    let bytes = common::pdf(&[
        &["Hello page one", "Second line (one)"],
        &["Hello page two"],
        &["Third page here"],
    ]);
    assert_eq!(
        detect(&bytes, "doc.pdf", Some("application/pdf")).map(|t| t.kind),
        Ok(Kind::Pdf)
    );
    let d = ex(&bytes, Kind::Pdf).expect("valid pdf");
    assert_eq!(d.pages.len(), 3);
    assert_eq!(d.pages[0], 0);
    let pages = page_texts(&d);
    assert!(pages[0].contains("Hello page one"), "{pages:?}");
    assert!(pages[0].contains("Second line (one)"), "{pages:?}");
    assert!(pages[1].contains("Hello page two"), "{pages:?}");
    assert!(pages[2].contains("Third page here"), "{pages:?}");
    assert!(!pages[0].contains("two"));
    // pages are separated by a blank line
    for &p in &d.pages[1..] {
        assert_eq!(&d.text[p - 2..p], "\n\n");
    }
}

#[test]
fn pdf_compressed_streams() {
    let bytes = common::pdf_compressed(&[&["Compressed hello"], &["World"]]);
    let d = ex(&bytes, Kind::Pdf).expect("valid pdf");
    assert_eq!(page_texts(&d), vec!["Compressed hello", "World"]);
}

#[test]
fn pdf_truncated_and_garbage_are_malformed() {
    let bytes = common::pdf(&[&["Hello page one"], &["Hello page two"]]);
    for cut in [10, 40, bytes.len() / 2, bytes.len() - 30] {
        match ex(&bytes[..cut], Kind::Pdf) {
            Err(ExtractError::Malformed(m)) => assert!(m.starts_with("PDF is malformed"), "{m}"),
            Ok(d) => {
                // lopdf can sometimes recover a prefix; it must still be sane.
                assert!(d.text.len() < 1000);
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    let mut garbage = b"%PDF-1.7\n".to_vec();
    let mut x: u32 = 12345;
    for _ in 0..5000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        garbage.push((x >> 16) as u8);
    }
    let e = ex(&garbage, Kind::Pdf).expect_err("garbage");
    assert!(matches!(e, ExtractError::Malformed(_)), "{e:?}");
    assert!(matches!(
        ex(b"not a pdf", Kind::Pdf),
        Err(ExtractError::Malformed(_))
    ));
    assert!(matches!(
        ex(b"", Kind::Pdf),
        Err(ExtractError::Malformed(_))
    ));
}

#[test]
fn pdf_page_limit() {
    let bytes = common::pdf(&[&["a"], &["b"], &["c"]]);
    let limits = Limits {
        max_pages: 2,
        ..Limits::default()
    };
    let e = extract(&bytes, &FileType::of(Kind::Pdf), &limits).expect_err("too many pages");
    assert!(matches!(e, ExtractError::TooLarge(_)), "{e:?}");
    assert!(e.to_string().contains("3 pages"), "{e}");
}

#[test]
fn pdf_text_limit() {
    let line = "word ".repeat(20);
    let lines: Vec<&str> = (0..30).map(|_| line.as_str()).collect();
    let bytes = common::pdf(&[&lines, &lines]);
    let limits = Limits {
        max_text_bytes: 2000,
        ..Limits::default()
    };
    let e = extract(&bytes, &FileType::of(Kind::Pdf), &limits).expect_err("too much text");
    assert!(matches!(e, ExtractError::TooLarge(_)), "{e:?}");
}

#[test]
fn pdf_recursive_structures_do_not_crash() {
    // Page whose Parent points to itself, and a form XObject that draws itself.
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        b"<< /Type /Page /Parent 4 0 R /Contents 5 0 R >>".to_vec(),
        b"<< /Length 0 >>\nstream\n\nendstream".to_vec(),
    ];
    let e = ex(&common::assemble(&objects), Kind::Pdf).expect_err("cycle");
    assert!(matches!(e, ExtractError::Malformed(_)), "{e:?}");

    let form = "BT /F1 12 Tf 72 700 Td (In form) Tj ET /X1 Do";
    let page = "/X1 Do BT /F1 12 Tf 72 712 Td (On page) Tj ET";
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [4 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> /XObject << /X1 6 0 R >> >> /Contents 5 0 R >>".to_vec(),
        format!("<< /Length {} >>\nstream\n{page}\nendstream", page.len() + 1).into_bytes(),
        format!(
            "<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Length {} >>\nstream\n{form}\nendstream",
            form.len() + 1
        )
        .into_bytes(),
    ];
    let d = ex(&common::assemble(&objects), Kind::Pdf).expect("form recursion is cut");
    assert!(d.text.contains("On page"), "{:?}", d.text);
    assert!(d.text.contains("In form"), "{:?}", d.text);
}

#[test]
fn pdf_decompression_bomb_is_too_large() {
    // A content stream inflating to 300 MiB of zeros.
    let deflate = common::deflated_zeros(300 << 20);
    let mut zlib = vec![0x78, 0xDA];
    zlib.extend_from_slice(&deflate);
    zlib.extend_from_slice(&[0, 0, 0, 0]); // adler32 (never checked: we stop earlier)
    let mut stream = format!(
        "<< /Length {} /Filter /FlateDecode >>\nstream\n",
        zlib.len()
    )
    .into_bytes();
    stream.extend_from_slice(&zlib);
    stream.extend_from_slice(b"\nendstream");
    let objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_vec(),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>".to_vec(),
        stream,
    ];
    let e = ex(&common::assemble(&objects), Kind::Pdf).expect_err("bomb");
    assert!(matches!(e, ExtractError::TooLarge(_)), "{e:?}");
    assert!(e.to_string().contains("256 MiB"), "{e}");
}

fn para(style: Option<&str>, text: &str) -> String {
    let ppr = style.map_or(String::new(), |s| {
        format!("<w:pPr><w:pStyle w:val=\"{s}\"/></w:pPr>")
    });
    format!("<w:p>{ppr}<w:r><w:t xml:space=\"preserve\">{text}</w:t></w:r></w:p>")
}

#[test]
fn docx_text_and_headings() {
    let body = [
        para(Some("Title"), "Quarterly Report"),
        para(Some("Heading1"), "Introduction"),
        para(None, "First body paragraph &amp; more."),
        "<w:p><w:pPr><w:tabs><w:tab w:val=\"left\" w:pos=\"720\"/></w:tabs></w:pPr><w:r><w:t>a</w:t><w:tab/><w:t>b</w:t><w:br/><w:t>c</w:t></w:r></w:p>".to_string(),
        para(Some("Heading2"), "Details"),
        para(None, "Second &#8364; paragraph."),
        "<w:tbl><w:tr><w:tc><w:p><w:r><w:t>cell</w:t></w:r></w:p></w:tc></w:tr></w:tbl>".to_string(),
    ]
    .concat();
    let bytes = common::docx(&common::document_xml(&body));
    assert_eq!(
        detect(&bytes, "report.docx", None).map(|t| t.kind),
        Ok(Kind::Docx)
    );
    let d = ex(&bytes, Kind::Docx).expect("valid docx");
    assert_eq!(
        d.text,
        "Quarterly Report\nIntroduction\nFirst body paragraph & more.\na\tb\nc\nDetails\nSecond € paragraph.\ncell"
    );
    let hs: Vec<(u8, &str, usize)> = d
        .headings
        .iter()
        .map(|h| (h.level, h.title.as_str(), h.offset))
        .collect();
    assert_eq!(
        hs,
        vec![
            (1, "Quarterly Report", 0),
            (1, "Introduction", 17),
            (2, "Details", d.text.find("Details").unwrap_or(0)),
        ]
    );
    for h in &d.headings {
        assert!(d.text[h.offset..].starts_with(&h.title));
    }
    assert!(d.pages.is_empty());
}

#[test]
fn docx_localized_heading_styles() {
    let styles = r#"<?xml version="1.0"?><w:styles xmlns:w="x"><w:style w:type="paragraph" w:styleId="berschrift1"><w:name w:val="heading 1"/></w:style><w:style w:styleId="Custom"><w:pPr><w:outlineLvl w:val="2"/></w:pPr></w:style></w:styles>"#;
    let body = [
        para(Some("berschrift1"), "Einleitung"),
        para(Some("Custom"), "Deep"),
        para(None, "Text"),
    ]
    .concat();
    let doc = common::document_xml(&body);
    let bytes = common::docx_with(&[
        ("[Content_Types].xml", common::CONTENT_TYPES),
        ("word/document.xml", &doc),
        ("word/styles.xml", styles),
    ]);
    let d = ex(&bytes, Kind::Docx).expect("valid");
    let hs: Vec<(u8, &str)> = d
        .headings
        .iter()
        .map(|h| (h.level, h.title.as_str()))
        .collect();
    assert_eq!(hs, vec![(1, "Einleitung"), (3, "Deep")]);
}

#[test]
fn docx_malformed_inputs() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not a zip", b"this is not a zip file at all".to_vec()),
        ("zip magic only", b"PK\x03\x04 truncated".to_vec()),
        (
            "no document.xml",
            common::docx_with(&[("[Content_Types].xml", common::CONTENT_TYPES)]),
        ),
        (
            "broken xml",
            common::docx_with(&[("word/document.xml", "<w:document><w:body><w:p>")]),
        ),
        (
            "not xml",
            common::docx_with(&[("word/document.xml", "<<<>>>&&&")]),
        ),
    ];
    for (what, bytes) in cases {
        match ex(&bytes, Kind::Docx) {
            Err(ExtractError::Malformed(m)) => {
                assert!(m.starts_with("DOCX is malformed"), "{what}: {m}")
            }
            other => panic!("{what}: expected Malformed, got {other:?}"),
        }
    }
    // truncated real docx
    let good = common::docx(&common::document_xml(&para(None, "hello")));
    for cut in [good.len() / 3, good.len() - 10] {
        assert!(
            matches!(
                ex(&good[..cut], Kind::Docx),
                Err(ExtractError::Malformed(_))
            ),
            "cut at {cut}"
        );
    }
}

#[test]
fn docx_zip_bomb_honest_size() {
    // 300 MiB of zeros; headers tell the truth → refused from the declared size.
    let deflated = common::deflated_zeros(300 << 20);
    let bytes = common::zip_single("word/document.xml", &deflated, 300 << 20);
    let e = ex(&bytes, Kind::Docx).expect_err("bomb");
    assert!(matches!(e, ExtractError::TooLarge(_)), "{e:?}");
    assert_eq!(
        e.to_string(),
        "DOCX expands to more than 256 MiB (zip bomb?)"
    );
}

#[test]
fn docx_zip_bomb_lying_size() {
    // Same payload, but the headers claim 1000 bytes: the real byte count stops it.
    let deflated = common::deflated_zeros(300 << 20);
    let bytes = common::zip_single("word/document.xml", &deflated, 1000);
    let e = ex(&bytes, Kind::Docx).expect_err("bomb");
    assert!(
        e.to_string().contains("compression ratio above 200:1"),
        "{e}"
    );
    // With a small budget the budget is what trips.
    let limits = Limits {
        max_unzipped_bytes: 4 << 20,
        max_compression_ratio: 1_000_000,
        ..Limits::default()
    };
    let e = extract(&bytes, &FileType::of(Kind::Docx), &limits).expect_err("bomb");
    assert_eq!(e.to_string(), "DOCX expands to more than 4 MiB (zip bomb?)");
}

#[test]
fn docx_ratio_and_entry_limits() {
    // Highly compressible but legitimate-looking XML over the ratio.
    let filler = para(None, &"a".repeat(4 << 20));
    let bytes = common::docx(&common::document_xml(&filler));
    let e = ex(&bytes, Kind::Docx).expect_err("ratio");
    assert!(e.to_string().contains("compression ratio"), "{e}");
    let limits = Limits {
        max_zip_entries: 2,
        ..Limits::default()
    };
    let small = common::docx(&common::document_xml(&para(None, "x")));
    let e = extract(&small, &FileType::of(Kind::Docx), &limits).expect_err("entries");
    assert!(e.to_string().contains("3 ZIP entries"), "{e}");
}

#[test]
fn html_extraction() {
    let html = "<html><head><style>p{}</style><script>alert('x')</script></head><body><h1>Top &amp; Tail</h1><p>One&nbsp;&#x41;&#66;</p><h3>Low</h3><p>Two</p></body></html>";
    let d = ex(html.as_bytes(), Kind::Html).expect("html");
    assert_eq!(d.text, "Top & Tail\n\nOne AB\n\nLow\n\nTwo");
    let hs: Vec<(u8, &str, usize)> = d
        .headings
        .iter()
        .map(|h| (h.level, h.title.as_str(), h.offset))
        .collect();
    assert_eq!(hs, vec![(1, "Top & Tail", 0), (3, "Low", 20)]);
}

#[test]
fn markdown_extraction_keeps_text() {
    let md = "\u{feff}# Guide\n\nIntro.\n\n```sh\n# comment, not heading\n```\n\nUsage\n-----\n\n### Deep ###\n";
    let d = ex(md.as_bytes(), Kind::Markdown).expect("md");
    assert_eq!(d.text, md.trim_start_matches('\u{feff}'));
    let hs: Vec<(u8, &str)> = d
        .headings
        .iter()
        .map(|h| (h.level, h.title.as_str()))
        .collect();
    assert_eq!(hs, vec![(1, "Guide"), (2, "Usage"), (3, "Deep")]);
    for h in &d.headings {
        assert!(d.text[h.offset..].starts_with(&h.title) || d.text[h.offset..].starts_with('#'));
    }
}
