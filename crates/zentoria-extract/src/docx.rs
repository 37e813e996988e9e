//! DOCX text extraction: `word/document.xml` read from the ZIP container under
//! hard limits (entry count, declared sizes, real decompressed bytes, ratio).

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesStart, Event};

use crate::{Document, ExtractError, Heading, Limits, human_bytes, text_too_large};

fn malformed(detail: impl std::fmt::Display) -> ExtractError {
    ExtractError::Malformed(format!("DOCX is malformed: {detail}"))
}

/// Real bytes below which the ratio check does not apply (tiny, very repetitive
/// XML parts legitimately compress extremely well).
const RATIO_GRACE: u64 = 1024 * 1024;

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Document, ExtractError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        extract_inner(bytes, limits)
    }))
    .unwrap_or_else(|_| Err(malformed("the ZIP/XML parser failed on this file")))
}

fn extract_inner(bytes: &[u8], limits: &Limits) -> Result<Document, ExtractError> {
    if !bytes.starts_with(b"PK\x03\x04") {
        return Err(malformed("it is not a ZIP archive"));
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| malformed(format!("the ZIP container is damaged ({e})")))?;
    if archive.len() > limits.max_zip_entries {
        return Err(ExtractError::TooLarge(format!(
            "DOCX has {} ZIP entries, more than the limit of {}",
            archive.len(),
            limits.max_zip_entries
        )));
    }
    let mut budget = limits.max_unzipped_bytes;
    let document = read_entry(&mut archive, "word/document.xml", &mut budget, limits)?
        .ok_or_else(|| malformed("it has no word/document.xml"))?;
    // Styles map style ids (localized, e.g. "berschrift1") to heading levels.
    let styles = match read_entry(&mut archive, "word/styles.xml", &mut budget, limits) {
        Ok(Some(xml)) => parse_styles(&xml),
        Ok(None) | Err(ExtractError::Malformed(_)) => HashMap::new(),
        Err(e) => return Err(e),
    };
    parse_document(&document, &styles, limits)
}

/// Read one entry fully, enforcing the declared size, the real size and the
/// compression ratio. `Ok(None)` if the entry does not exist.
fn read_entry(
    archive: &mut zip::ZipArchive<Cursor<&[u8]>>,
    name: &str,
    budget: &mut u64,
    limits: &Limits,
) -> Result<Option<Vec<u8>>, ExtractError> {
    let bomb = || {
        ExtractError::TooLarge(format!(
            "DOCX expands to more than {} (zip bomb?)",
            human_bytes(limits.max_unzipped_bytes)
        ))
    };
    let ratio_bomb = |ratio: u64| {
        ExtractError::TooLarge(format!(
            "DOCX part {name} has a compression ratio above {ratio}:1 (zip bomb?)"
        ))
    };
    let mut entry = match archive.by_name(name) {
        Ok(e) => e,
        Err(zip::result::ZipError::FileNotFound) => return Ok(None),
        Err(zip::result::ZipError::UnsupportedArchive(m)) => {
            return Err(ExtractError::Unsupported(format!(
                "DOCX uses an unsupported ZIP feature ({m})"
            )));
        }
        Err(e) => return Err(malformed(format!("cannot read {name} ({e})"))),
    };
    let declared = entry.size();
    let compressed = entry.compressed_size().max(1);
    if declared > *budget {
        return Err(bomb());
    }
    let max_ratio = limits.max_compression_ratio.max(1);
    if declared > RATIO_GRACE && declared / compressed > max_ratio {
        return Err(ratio_bomb(max_ratio));
    }
    // Never trust the declared size: count real bytes with a hard bound.
    let hard_cap = (*budget).min(compressed.saturating_mul(max_ratio).max(RATIO_GRACE));
    let mut out = Vec::with_capacity(declared.min(hard_cap).min(16 * 1024 * 1024) as usize);
    let mut limited = (&mut entry).take(hard_cap.saturating_add(1));
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        match limited.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if out.len() as u64 > hard_cap {
                    return Err(if hard_cap == *budget {
                        bomb()
                    } else {
                        ratio_bomb(max_ratio)
                    });
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(malformed(format!("{name} is damaged ({e})"))),
        }
    }
    *budget -= out.len() as u64;
    Ok(Some(out))
}

fn attr(e: &BytesStart<'_>, local: &[u8]) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (a.key.local_name().as_ref() == local)
            .then(|| String::from_utf8_lossy(&a.value).into_owned())
    })
}

fn heading_level_from_name(name: &str) -> Option<u8> {
    let n = name.trim().to_ascii_lowercase();
    if n == "title" {
        return Some(1);
    }
    let rest = n.strip_prefix("heading")?.trim();
    match rest.parse::<u8>() {
        Ok(l @ 1..=9) => Some(l),
        _ => None,
    }
}

/// styleId → heading level, from `word/styles.xml`.
fn parse_styles(xml: &[u8]) -> HashMap<String, u8> {
    let mut map = HashMap::new();
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut current: Option<String> = None;
    loop {
        match reader.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match e.local_name().as_ref() {
                b"style" => current = attr(&e, b"styleId"),
                b"name" => {
                    if let (Some(id), Some(name)) = (&current, attr(&e, b"val"))
                        && let Some(l) = heading_level_from_name(&name)
                    {
                        map.insert(id.clone(), l);
                    }
                }
                b"outlineLvl" => {
                    if let (Some(id), Some(v)) = (&current, attr(&e, b"val"))
                        && let Ok(l @ 0..=8) = v.trim().parse::<u8>()
                    {
                        map.entry(id.clone()).or_insert(l + 1);
                    }
                }
                _ => {}
            },
            Ok(Event::End(e)) if e.local_name().as_ref() == b"style" => current = None,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    map
}

fn style_level(id: &str, styles: &HashMap<String, u8>) -> Option<u8> {
    styles
        .get(id)
        .copied()
        .or_else(|| heading_level_from_name(id))
}

struct Builder<'a> {
    text: String,
    headings: Vec<Heading>,
    limits: &'a Limits,
    para: String,
    level: Option<u8>,
    blank_run: usize,
}

impl Builder<'_> {
    fn flush(&mut self) -> Result<(), ExtractError> {
        let line = std::mem::take(&mut self.para);
        let level = self.level.take();
        let trimmed = line.trim_end();
        if trimmed.trim().is_empty() {
            // Collapse runs of empty paragraphs into one blank line.
            self.blank_run += 1;
            if self.blank_run == 1 && !self.text.is_empty() {
                self.text.push('\n');
            }
            return Ok(());
        }
        self.blank_run = 0;
        let offset = self.text.len();
        self.text.push_str(trimmed);
        self.text.push('\n');
        if let Some(level) = level {
            let title = trimmed.split_whitespace().collect::<Vec<_>>().join(" ");
            self.headings.push(Heading {
                level,
                title,
                offset,
            });
        }
        if self.text.len() > self.limits.max_text_bytes {
            return Err(text_too_large(self.limits));
        }
        Ok(())
    }

    fn push(&mut self, s: &str) -> Result<(), ExtractError> {
        self.para.push_str(s);
        if self.para.len() > self.limits.max_text_bytes {
            return Err(text_too_large(self.limits));
        }
        Ok(())
    }
}

fn parse_document(
    xml: &[u8],
    styles: &HashMap<String, u8>,
    limits: &Limits,
) -> Result<Document, ExtractError> {
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut b = Builder {
        text: String::new(),
        headings: Vec::new(),
        limits,
        para: String::new(),
        level: None,
        blank_run: 0,
    };
    let mut para_depth = 0usize;
    let mut run_depth = 0usize;
    let mut in_text = false;
    let mut in_ppr = false;
    let mut saw_body = false;
    let mut depth = 0usize;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| malformed(format!("word/document.xml is not well-formed XML ({e})")))?;
        match &event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            _ => {}
        }
        match event {
            Event::Start(e) => match e.local_name().as_ref() {
                b"body" => saw_body = true,
                b"p" => {
                    if para_depth > 0 {
                        b.flush()?;
                    }
                    para_depth += 1;
                }
                b"pPr" => in_ppr = true,
                b"r" => run_depth += 1,
                b"t" => in_text = run_depth > 0 || para_depth > 0,
                b"pStyle" if in_ppr => {
                    b.level = attr(&e, b"val").and_then(|v| style_level(&v, styles))
                }
                _ => {}
            },
            Event::Empty(e) => match e.local_name().as_ref() {
                b"p" => {
                    if para_depth > 0 {
                        b.flush()?;
                    }
                    b.flush()?;
                }
                b"pStyle" if in_ppr => {
                    b.level = attr(&e, b"val").and_then(|v| style_level(&v, styles))
                }
                b"outlineLvl" if in_ppr => {
                    if let Some(Ok(l @ 0..=8)) = attr(&e, b"val").map(|v| v.trim().parse::<u8>()) {
                        b.level = Some(l + 1);
                    }
                }
                b"tab" if run_depth > 0 && !in_ppr => b.push("\t")?,
                b"br" | b"cr" if run_depth > 0 => b.push("\n")?,
                b"noBreakHyphen" if run_depth > 0 => b.push("-")?,
                _ => {}
            },
            Event::End(e) => match e.local_name().as_ref() {
                b"p" => {
                    b.flush()?;
                    para_depth = para_depth.saturating_sub(1);
                }
                b"pPr" => in_ppr = false,
                b"r" => run_depth = run_depth.saturating_sub(1),
                b"t" => in_text = false,
                _ => {}
            },
            Event::Text(t) if in_text => {
                let s = t
                    .decode()
                    .map_err(|e| malformed(format!("bad text encoding ({e})")))?;
                b.push(&s)?;
            }
            Event::CData(t) if in_text => {
                let s = String::from_utf8_lossy(&t);
                b.push(&s)?;
            }
            Event::GeneralRef(r) if in_text => {
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    let mut tmp = [0u8; 4];
                    b.push(c.encode_utf8(&mut tmp))?;
                } else {
                    let name = String::from_utf8_lossy(&r);
                    match quick_xml::escape::resolve_predefined_entity(&name) {
                        Some(v) => b.push(v)?,
                        None => return Err(malformed(format!("unknown entity &{name};"))),
                    }
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !b.para.is_empty() {
        b.flush()?;
    }
    if depth > 0 {
        return Err(malformed("word/document.xml is truncated"));
    }
    if !saw_body {
        return Err(malformed("word/document.xml has no document body"));
    }
    // Drop the trailing newline(s) added after the last paragraph.
    let keep = b.text.trim_end().len();
    b.text.truncate(keep);
    Ok(Document {
        text: b.text,
        pages: Vec::new(),
        headings: b.headings,
    })
}
