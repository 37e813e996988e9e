//! `zentoria-extract`: the "hostile bytes" layer of Zentoria's knowledge module.
//!
//! * [`detect`] decides what an upload really is (magic bytes + name + declared MIME)
//!   and refuses executables, unsupported binaries and inconsistent claims.
//! * [`Utf8Check`] validates streamed text uploads; [`sanitize_filename`] makes
//!   client file names safe.
//! * [`extract`] turns the bytes of a supported file into a [`Document`]: plain
//!   text plus page offsets and headings, under hard [`Limits`] (zip bombs,
//!   page counts, output size). It never panics on any input.
//! * [`chunk`] splits a document into structure-aware, overlapping chunks with
//!   byte and char offsets for citations.
#![forbid(unsafe_code)]

mod chunk;
mod detect;
mod docx;
mod html;
mod markdown;
mod pdf;
mod utf8;

use serde::{Deserialize, Serialize};

pub use chunk::{Chunk, ChunkOptions, chunk, estimate_tokens};
pub use detect::{FileType, HEAD_LEN, Kind, Rejected, UnknownKind, detect, sanitize_filename};
pub use utf8::{InvalidText, InvalidTextKind, Utf8Check, check_text};

const MIB: u64 = 1024 * 1024;

/// Hard limits applied by [`extract`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Maximum size of the extracted text, in bytes (default 32 MiB).
    pub max_text_bytes: usize,
    /// Maximum number of bytes decompressed in total (DOCX entries, PDF streams; default 256 MiB).
    pub max_unzipped_bytes: u64,
    /// Maximum number of entries in a DOCX (ZIP) archive (default 10 000).
    pub max_zip_entries: usize,
    /// Maximum compression ratio of a ZIP entry (default 200).
    pub max_compression_ratio: u64,
    /// Maximum number of PDF pages (default 5 000).
    pub max_pages: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_text_bytes: 32 * MIB as usize,
            max_unzipped_bytes: 256 * MIB,
            max_zip_entries: 10_000,
            max_compression_ratio: 200,
            max_pages: 5_000,
        }
    }
}

/// Extracted text with its structure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    pub text: String,
    /// Byte offset in `text` where page `i + 1` starts; empty when not paginated.
    pub pages: Vec<usize>,
    /// Headings in document order.
    pub headings: Vec<Heading>,
}

/// A heading of the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heading {
    /// 1 (top level) to 9.
    pub level: u8,
    pub title: String,
    /// Byte offset in the text where the heading line starts.
    pub offset: usize,
}

/// Why a file could not be extracted. `Display` is a readable reason for users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    /// The file is damaged, encrypted, or not what it claims to be.
    #[error("{0}")]
    Malformed(String),
    /// A limit was exceeded (output size, decompressed size, pages, entries…).
    #[error("{0}")]
    TooLarge(String),
    /// The file uses a feature this extractor does not support.
    #[error("{0}")]
    Unsupported(String),
}

impl ExtractError {
    /// Short machine-readable code: `"malformed"`, `"too_large"` or `"unsupported"`.
    pub fn code(&self) -> &'static str {
        match self {
            ExtractError::Malformed(_) => "malformed",
            ExtractError::TooLarge(_) => "too_large",
            ExtractError::Unsupported(_) => "unsupported",
        }
    }
}

pub(crate) fn human_bytes(n: u64) -> String {
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else if n >= 1024 {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

pub(crate) fn text_too_large(limits: &Limits) -> ExtractError {
    ExtractError::TooLarge(format!(
        "the extracted text is larger than {}",
        human_bytes(limits.max_text_bytes as u64)
    ))
}

/// Extract the text of a file whose type was established by [`detect`].
///
/// Never panics; output is never larger than `limits.max_text_bytes`.
pub fn extract(bytes: &[u8], ft: &FileType, limits: &Limits) -> Result<Document, ExtractError> {
    let doc = match ft.kind {
        Kind::Pdf => pdf::extract(bytes, limits)?,
        Kind::Docx => docx::extract(bytes, limits)?,
        Kind::Html => {
            let s = text_input(bytes, "HTML file")?;
            html::extract(s, limits)?
        }
        Kind::Markdown => {
            let s = text_input(bytes, "Markdown file")?;
            check_text_size(s, limits)?;
            Document {
                text: s.to_string(),
                pages: Vec::new(),
                headings: markdown::headings(s),
            }
        }
        Kind::Json => {
            let s = text_input(bytes, "JSON file")?;
            check_text_size(s, limits)?;
            validate_json(s)?;
            plain(s)
        }
        Kind::Text | Kind::Code | Kind::Csv => {
            let what = match ft.kind {
                Kind::Csv => "CSV file",
                Kind::Code => "source file",
                _ => "text file",
            };
            let s = text_input(bytes, what)?;
            check_text_size(s, limits)?;
            plain(s)
        }
    };
    if doc.text.len() > limits.max_text_bytes {
        return Err(text_too_large(limits));
    }
    Ok(doc)
}

fn plain(s: &str) -> Document {
    Document {
        text: s.to_string(),
        pages: Vec::new(),
        headings: Vec::new(),
    }
}

fn check_text_size(s: &str, limits: &Limits) -> Result<(), ExtractError> {
    if s.len() > limits.max_text_bytes {
        Err(text_too_large(limits))
    } else {
        Ok(())
    }
}

/// Validate UTF-8 (no NUL) and strip a BOM.
fn text_input<'a>(bytes: &'a [u8], what: &str) -> Result<&'a str, ExtractError> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    check_text(body).map_err(|e| {
        let offset = e.offset + (bytes.len() - body.len()) as u64;
        let e = InvalidText { offset, ..e };
        ExtractError::Malformed(format!("{what} is malformed: {e}"))
    })
}

/// JSON or a stream of JSON values (JSON Lines / NDJSON).
fn validate_json(s: &str) -> Result<(), ExtractError> {
    let mut stream = serde_json::Deserializer::from_str(s).into_iter::<serde::de::IgnoredAny>();
    let mut n = 0usize;
    for v in &mut stream {
        match v {
            Ok(_) => n += 1,
            Err(e) => {
                return Err(ExtractError::Malformed(format!(
                    "JSON file is malformed: {e}"
                )));
            }
        }
    }
    if n == 0 {
        return Err(ExtractError::Malformed(
            "JSON file is malformed: it contains no JSON value".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(bytes: &[u8], kind: Kind) -> Result<Document, ExtractError> {
        extract(bytes, &FileType::of(kind), &Limits::default())
    }

    #[test]
    fn text_kinds() {
        let d = ex(b"\xEF\xBB\xBFhello\r\nworld", Kind::Text).expect("ok");
        assert_eq!(d.text, "hello\r\nworld");
        assert!(d.pages.is_empty() && d.headings.is_empty());
        let d = ex(b"a,b\n1,2\n", Kind::Csv).expect("ok");
        assert_eq!(d.text, "a,b\n1,2\n");
        assert_eq!(ex(b"fn x() {}", Kind::Code).expect("ok").text, "fn x() {}");
        let e = ex(b"ok\xffno", Kind::Text).expect_err("invalid");
        assert!(matches!(e, ExtractError::Malformed(_)));
        assert!(e.to_string().contains("offset 2"), "{e}");
        let e = ex(b"\xEF\xBB\xBFok\0", Kind::Code).expect_err("nul");
        assert!(e.to_string().contains("offset 5"), "{e}");
    }

    #[test]
    fn json() {
        assert!(ex(b"{\"a\": [1, 2, {\"b\": null}]}", Kind::Json).is_ok());
        assert!(ex(b"{\"a\":1}\n{\"a\":2}\n", Kind::Json).is_ok());
        let e = ex(b"{\"a\": }", Kind::Json).expect_err("bad");
        assert!(e.to_string().starts_with("JSON file is malformed"), "{e}");
        assert!(ex(b"   ", Kind::Json).is_err());
        // Deep nesting is an error, not a stack overflow.
        let deep = "[".repeat(100_000);
        assert!(ex(deep.as_bytes(), Kind::Json).is_err());
    }

    #[test]
    fn output_limit() {
        let limits = Limits {
            max_text_bytes: 10,
            ..Limits::default()
        };
        let e = extract(b"01234567890", &FileType::of(Kind::Text), &limits).expect_err("big");
        assert!(matches!(e, ExtractError::TooLarge(_)));
        assert_eq!(e.to_string(), "the extracted text is larger than 10 bytes");
        assert!(extract(b"0123456789", &FileType::of(Kind::Text), &limits).is_ok());
    }
}
