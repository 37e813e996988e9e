//! PDF text extraction (via `pdf-extract`/`lopdf`), hardened for hostile input:
//!
//! * every Flate stream is pre-inflated with a byte budget before the parser
//!   sees the file (decompression bombs → `TooLarge`);
//! * page-tree `Parent` cycles are refused and `Do` operators inside form
//!   XObjects are removed (the library recurses on both without a bound);
//! * the library runs on a dedicated thread with a large stack, every page
//!   under `catch_unwind`; a panic becomes `Malformed`.

use std::io::Read;
use std::panic::{AssertUnwindSafe, catch_unwind};

use pdf_extract::content::Content;
use pdf_extract::{Document as PdfDoc, Object, ObjectId, PlainTextOutput};

use crate::{Document, ExtractError, Limits, human_bytes, text_too_large};

const STACK_SIZE: usize = 64 * 1024 * 1024;
const PAGE_SEPARATOR: &str = "\n\n";

fn malformed(detail: impl std::fmt::Display) -> ExtractError {
    ExtractError::Malformed(format!("PDF is malformed: {detail}"))
}

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Document, ExtractError> {
    let window = &bytes[..bytes.len().min(1024 + 5)];
    if !window.windows(5).any(|w| w == b"%PDF-") {
        return Err(malformed("no %PDF- header"));
    }
    prescan_streams(bytes, limits)?;

    std::thread::scope(|scope| {
        let spawned = std::thread::Builder::new()
            .name("zentoria-pdf".into())
            .stack_size(STACK_SIZE)
            .spawn_scoped(scope, || extract_guarded(bytes, limits));
        match spawned {
            Ok(handle) => handle.join().unwrap_or_else(|_| Err(internal_failure())),
            Err(_) => extract_guarded(bytes, limits),
        }
    })
}

fn internal_failure() -> ExtractError {
    malformed("the PDF parser failed on this file")
}

fn extract_guarded(bytes: &[u8], limits: &Limits) -> Result<Document, ExtractError> {
    catch_unwind(AssertUnwindSafe(|| extract_inner(bytes, limits)))
        .unwrap_or_else(|_| Err(internal_failure()))
}

fn extract_inner(bytes: &[u8], limits: &Limits) -> Result<Document, ExtractError> {
    let mut doc = PdfDoc::load_mem(bytes).map_err(malformed)?;
    if doc.is_encrypted() && doc.decrypt("").is_err() {
        return Err(malformed("it is encrypted with a password"));
    }
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err(malformed("it has no pages"));
    }
    if pages.len() > limits.max_pages {
        return Err(ExtractError::TooLarge(format!(
            "PDF has {} pages, more than the limit of {}",
            pages.len(),
            limits.max_pages
        )));
    }
    check_parent_chains(&doc, pages.values().copied())?;
    strip_nested_form_calls(&mut doc);

    let mut text = String::new();
    let mut offsets = Vec::with_capacity(pages.len());
    let mut failures = 0usize;
    let mut first_error: Option<String> = None;
    for (i, &page_num) in pages.keys().enumerate() {
        if i > 0 {
            text.push_str(PAGE_SEPARATOR);
        }
        offsets.push(text.len());
        let remaining = limits.max_text_bytes.saturating_sub(text.len());
        match page_text(&doc, page_num, remaining) {
            PageResult::Text(t) => text.push_str(&t),
            PageResult::TooLarge => return Err(text_too_large(limits)),
            PageResult::Failed(e) => {
                failures += 1;
                first_error.get_or_insert(e);
            }
        }
        if text.len() > limits.max_text_bytes {
            return Err(text_too_large(limits));
        }
    }
    if failures == pages.len() {
        return Err(malformed(
            first_error.unwrap_or_else(|| "no page could be read".into()),
        ));
    }
    Ok(Document {
        text,
        pages: offsets,
        headings: Vec::new(),
    })
}

enum PageResult {
    Text(String),
    TooLarge,
    Failed(String),
}

/// `io::Write` that refuses to grow past a budget.
struct Bounded {
    buf: Vec<u8>,
    remaining: usize,
    over: bool,
}

impl std::io::Write for Bounded {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if data.len() > self.remaining {
            self.over = true;
            return Err(std::io::Error::other("text limit"));
        }
        self.remaining -= data.len();
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn page_text(doc: &PdfDoc, page_num: u32, remaining: usize) -> PageResult {
    let mut sink = Bounded {
        buf: Vec::new(),
        remaining,
        over: false,
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let writer: &mut dyn std::io::Write = &mut sink;
        let mut out = PlainTextOutput::new(writer);
        pdf_extract::output_doc_page(doc, &mut out, page_num).map_err(|e| e.to_string())
    }));
    if sink.over {
        return PageResult::TooLarge;
    }
    match outcome {
        Ok(Ok(())) => {
            let s = String::from_utf8_lossy(&sink.buf);
            let cleaned: String = s.trim().chars().filter(|&c| c != '\0').collect();
            PageResult::Text(cleaned)
        }
        Ok(Err(e)) => PageResult::Failed(e),
        Err(_) => PageResult::Failed(format!("page {page_num} could not be parsed")),
    }
}

/// `pdf-extract` follows `/Parent` recursively to inherit attributes; a cycle
/// would overflow the stack (an abort, not a panic).
fn check_parent_chains(
    doc: &PdfDoc,
    pages: impl Iterator<Item = ObjectId>,
) -> Result<(), ExtractError> {
    const MAX_DEPTH: usize = 256;
    for page in pages {
        let mut id = page;
        let mut depth = 0;
        while let Ok(parent) = doc
            .get_dictionary(id)
            .and_then(|d| d.get(b"Parent"))
            .and_then(Object::as_reference)
        {
            depth += 1;
            if depth > MAX_DEPTH || parent == page {
                return Err(malformed("its page tree contains a cycle"));
            }
            id = parent;
        }
    }
    Ok(())
}

/// `pdf-extract` executes `Do` on form XObjects recursively without a depth
/// bound; a self-referencing form would overflow the stack. Forms invoked
/// from pages are still processed, but `Do` inside forms is removed (text in
/// forms nested two or more levels deep is therefore not extracted).
fn strip_nested_form_calls(doc: &mut PdfDoc) {
    for obj in doc.objects.values_mut() {
        let Object::Stream(stream) = obj else {
            continue;
        };
        let is_form = stream
            .dict
            .get(b"Subtype")
            .and_then(Object::as_name)
            .is_ok_and(|n| n == b"Form");
        if !is_form {
            continue;
        }
        let data = match stream.decompressed_content() {
            Ok(d) => d,
            Err(_) => stream.content.clone(),
        };
        if !data.windows(2).any(|w| w == b"Do") {
            continue;
        }
        let cleaned = match Content::decode(&data) {
            Ok(mut content) => {
                content.operations.retain(|op| op.operator != "Do");
                content.encode().unwrap_or_default()
            }
            Err(_) => Vec::new(),
        };
        stream.set_plain_content(cleaned);
    }
}

/// Inflate every zlib stream of the file with a shared byte budget, without
/// keeping the output, so that a decompression bomb is refused before the
/// parser inflates it for real. Image streams are skipped (they are never
/// decoded by the text extractor).
fn prescan_streams(b: &[u8], limits: &Limits) -> Result<(), ExtractError> {
    let budget = limits.max_unzipped_bytes;
    let mut total: u64 = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = 0;
    while let Some(p) = find(b, pos, b"stream") {
        pos = p + 6;
        if p >= 3 && &b[p - 3..p] == b"end" {
            continue;
        }
        let start = match &b[pos..] {
            [b'\r', b'\n', ..] => pos + 2,
            [b'\n' | b'\r', ..] => pos + 1,
            _ => continue,
        };
        let dict_from = p.saturating_sub(4096);
        let header = &b[dict_from..p];
        let header = match rfind(header, b"obj") {
            Some(q) => &header[q..],
            None => header,
        };
        if find(header, 0, b"/Image").is_some() {
            continue;
        }
        let (cmf, flg) = match b.get(start..start + 2) {
            Some(&[c, f]) => (c, f),
            _ => continue,
        };
        if cmf & 0x0F != 8 || ((u16::from(cmf) << 8) | u16::from(flg)) % 31 != 0 {
            continue;
        }
        let mut dec = flate2::read::ZlibDecoder::new(&b[start..]);
        loop {
            match dec.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n as u64;
                    if total > budget {
                        return Err(ExtractError::TooLarge(format!(
                            "PDF streams expand to more than {} (decompression bomb?)",
                            human_bytes(budget)
                        )));
                    }
                }
            }
        }
        pos = start;
    }
    Ok(())
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    if from >= hay.len() || needle.is_empty() {
        return None;
    }
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let off = hay[i..].iter().position(|&c| c == needle[0])?;
        i += off;
        if hay[i..].starts_with(needle) {
            return Some(i);
        }
        i += 1;
    }
    None
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}
