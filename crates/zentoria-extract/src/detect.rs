//! File-type sniffing: decide what an upload really is from its first bytes,
//! its name and the declared MIME type, and refuse anything that does not add up.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How many leading bytes [`detect`] looks at (callers pass at most this many).
pub const HEAD_LEN: usize = 8192;

/// The supported document kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Text,
    Markdown,
    Html,
    Pdf,
    Docx,
    Csv,
    Json,
    Code,
}

impl Kind {
    /// All kinds, in declaration order.
    pub const ALL: [Kind; 8] = [
        Kind::Text,
        Kind::Markdown,
        Kind::Html,
        Kind::Pdf,
        Kind::Docx,
        Kind::Csv,
        Kind::Json,
        Kind::Code,
    ];

    /// Stable lowercase name (`"text"`, `"markdown"`, …), the same as the serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Markdown => "markdown",
            Kind::Html => "html",
            Kind::Pdf => "pdf",
            Kind::Docx => "docx",
            Kind::Csv => "csv",
            Kind::Json => "json",
            Kind::Code => "code",
        }
    }

    /// Whether the content of this kind must be UTF-8 text.
    pub fn is_text(self) -> bool {
        !matches!(self, Kind::Pdf | Kind::Docx)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error of [`Kind::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown document kind {0:?}")]
pub struct UnknownKind(pub String);

impl FromStr for Kind {
    type Err = UnknownKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownKind(s.to_string()))
    }
}

/// The outcome of [`detect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileType {
    pub kind: Kind,
    /// Canonical MIME type to store/serve the file with (never the client's claim).
    pub mime: &'static str,
    /// For [`Kind::Code`]: the programming/config language (`"rust"`, `"python"`, …).
    pub language: Option<&'static str>,
}

impl FileType {
    /// The canonical file type of a kind (no language).
    pub fn of(kind: Kind) -> Self {
        let mime = match kind {
            Kind::Text | Kind::Code => "text/plain",
            Kind::Markdown => "text/markdown",
            Kind::Html => "text/html",
            Kind::Pdf => MIME_PDF,
            Kind::Docx => MIME_DOCX,
            Kind::Csv => "text/csv",
            Kind::Json => "application/json",
        };
        FileType {
            kind,
            mime,
            language: None,
        }
    }
}

/// Why an upload was refused; `reason` is meant to be shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{reason}")]
pub struct Rejected {
    pub reason: String,
}

impl Rejected {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Rejected {
            reason: reason.into(),
        }
    }
}

const MIME_PDF: &str = "application/pdf";
const MIME_DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/// What the extension says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExtClass {
    Supported(FileType),
    /// No extension at all.
    None,
    /// An extension of a known binary / unsupported format.
    KnownBinary,
    /// Some other extension; accepted as plain text if the content is text.
    Other,
}

fn ft(kind: Kind, mime: &'static str, language: Option<&'static str>) -> FileType {
    FileType {
        kind,
        mime,
        language,
    }
}

fn code(language: &'static str) -> FileType {
    ft(Kind::Code, "text/plain", Some(language))
}

/// The lowercase extension of the last path component (without the dot), if any,
/// plus the lowercase base name.
fn split_name(filename: &str) -> (String, Option<String>) {
    let base = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(filename)
        .trim()
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let ext = match base.rfind('.') {
        Some(i) if i > 0 && i + 1 < base.len() => Some(base[i + 1..].to_string()),
        _ => None,
    };
    (base, ext)
}

fn classify_name(filename: &str) -> ExtClass {
    let (base, ext) = split_name(filename);
    match base.as_str() {
        "dockerfile" | "containerfile" => return ExtClass::Supported(code("dockerfile")),
        "makefile" | "gnumakefile" => return ExtClass::Supported(code("makefile")),
        _ => {}
    }
    let Some(ext) = ext else {
        return ExtClass::None;
    };
    let t = match ext.as_str() {
        "txt" | "text" | "log" => ft(Kind::Text, "text/plain", None),
        "md" | "markdown" => ft(Kind::Markdown, "text/markdown", None),
        "html" | "htm" => ft(Kind::Html, "text/html", None),
        "pdf" => ft(Kind::Pdf, MIME_PDF, None),
        "docx" => ft(Kind::Docx, MIME_DOCX, None),
        "csv" => ft(Kind::Csv, "text/csv", None),
        "tsv" => ft(Kind::Csv, "text/tab-separated-values", None),
        "json" => ft(Kind::Json, "application/json", None),
        "jsonl" | "ndjson" => ft(Kind::Json, "application/x-ndjson", None),
        "rs" => code("rust"),
        "py" => code("python"),
        "js" | "jsx" => code("javascript"),
        "ts" | "tsx" => code("typescript"),
        "go" => code("go"),
        "java" => code("java"),
        "c" | "h" => code("c"),
        "cpp" | "hpp" | "cc" => code("cpp"),
        "cs" => code("csharp"),
        "rb" => code("ruby"),
        "php" => code("php"),
        "sh" | "bash" => code("shell"),
        "sql" => code("sql"),
        "toml" => code("toml"),
        "yaml" | "yml" => code("yaml"),
        "xml" => code("xml"),
        "css" => code("css"),
        "scss" => code("scss"),
        "kt" => code("kotlin"),
        "swift" => code("swift"),
        "scala" => code("scala"),
        "lua" => code("lua"),
        "r" => code("r"),
        "pl" => code("perl"),
        "dockerfile" => code("dockerfile"),
        "mk" => code("makefile"),
        e if KNOWN_BINARY_EXTS.contains(&e) => return ExtClass::KnownBinary,
        _ => return ExtClass::Other,
    };
    ExtClass::Supported(t)
}

const KNOWN_BINARY_EXTS: &[&str] = &[
    "exe", "dll", "so", "dylib", "bin", "o", "a", "lib", "sys", "msi", "com", "scr", "elf", "app",
    "apk", "ipa", "deb", "rpm", "dmg", "iso", "img", "jar", "war", "class", "wasm", "pyc", "png",
    "jpg", "jpeg", "gif", "bmp", "webp", "tif", "tiff", "ico", "heic", "avif", "psd", "mp3", "mp4",
    "m4a", "wav", "flac", "ogg", "opus", "avi", "mov", "mkv", "webm", "zip", "gz", "tgz", "bz2",
    "xz", "zst", "7z", "rar", "tar", "cab", "doc", "xls", "xlsx", "ppt", "pptx", "odt", "ods",
    "odp", "rtf", "epub", "sqlite", "db", "ttf", "otf", "woff", "woff2", "swf", "lnk",
];

/// A recognised binary signature.
struct Sig {
    what: &'static str,
    /// Executables get a stronger wording.
    executable: bool,
}

/// Identify well-known binary formats from their magic bytes.
fn binary_signature(head: &[u8]) -> Option<Sig> {
    let sig = |what, executable| Some(Sig { what, executable });
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(b"\x7fELF") {
        return sig("a Linux/Unix executable (ELF)", true);
    }
    if starts(b"MZ") && looks_binary(head) {
        return sig("a Windows executable (PE)", true);
    }
    if starts(&[0xFE, 0xED, 0xFA, 0xCE])
        || starts(&[0xFE, 0xED, 0xFA, 0xCF])
        || starts(&[0xCE, 0xFA, 0xED, 0xFE])
        || starts(&[0xCF, 0xFA, 0xED, 0xFE])
    {
        return sig("a macOS executable (Mach-O)", true);
    }
    if starts(&[0xCA, 0xFE, 0xBA, 0xBE]) || starts(&[0xCA, 0xFE, 0xBA, 0xBF]) {
        return sig("a macOS universal executable (Mach-O) or Java class", true);
    }
    if starts(b"\0asm") {
        return sig("a WebAssembly module", true);
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return sig("a PNG image", false);
    }
    if starts(&[0xFF, 0xD8, 0xFF]) {
        return sig("a JPEG image", false);
    }
    if (starts(b"GIF87a") || starts(b"GIF89a")) && looks_binary(head) {
        return sig("a GIF image", false);
    }
    if head.len() >= 12 && starts(b"RIFF") && looks_binary(head) {
        return match &head[8..12] {
            b"WEBP" => sig("a WebP image", false),
            b"WAVE" => sig("a WAV audio file", false),
            b"AVI " => sig("an AVI video", false),
            _ => sig("a RIFF media file", false),
        };
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" && looks_binary(head) {
        return sig("an MP4/QuickTime/HEIF media file", false);
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return sig("a TIFF image", false);
    }
    if starts(&[0x1F, 0x8B]) {
        return sig("a gzip archive", false);
    }
    if starts(b"BZh") && looks_binary(head) {
        return sig("a bzip2 archive", false);
    }
    if starts(&[0xFD, b'7', b'z', b'X', b'Z', 0x00]) {
        return sig("an xz archive", false);
    }
    if starts(&[0x28, 0xB5, 0x2F, 0xFD]) {
        return sig("a zstd archive", false);
    }
    if starts(&[b'7', b'z', 0xBC, 0xAF, 0x27, 0x1C]) {
        return sig("a 7-Zip archive", false);
    }
    if starts(b"Rar!\x1a\x07") {
        return sig("a RAR archive", false);
    }
    if starts(b"PK\x03\x04") || starts(b"PK\x05\x06") || starts(b"PK\x07\x08") {
        return sig("a ZIP archive", false);
    }
    if starts(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return sig("a legacy Microsoft Office document (OLE)", false);
    }
    if starts(b"SQLite format 3\0") {
        return sig("an SQLite database", false);
    }
    if (starts(b"ID3") || starts(b"fLaC") || starts(b"OggS")) && looks_binary(head) {
        return sig("an audio file", false);
    }
    if starts(&[0x1A, 0x45, 0xDF, 0xA3]) {
        return sig("a Matroska/WebM video", false);
    }
    if starts(b"wOFF") || starts(b"wOF2") || starts(&[0x00, 0x01, 0x00, 0x00, 0x00]) {
        return sig("a font file", false);
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return sig("a tar archive", false);
    }
    if starts(b"{\\rtf") {
        return sig("an RTF document", false);
    }
    None
}

/// Binary data: NUL bytes or invalid UTF-8 (ignoring a truncated tail).
fn looks_binary(head: &[u8]) -> bool {
    head.contains(&0) || text_problem(head).is_some()
}

/// `None` if `head` is acceptable UTF-8 text, else a description of the problem.
fn text_problem(head: &[u8]) -> Option<String> {
    if head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF]) {
        return Some("UTF-16 text (only UTF-8 is supported)".into());
    }
    if let Some(pos) = head.iter().position(|&b| b == 0) {
        return Some(format!("binary data (NUL byte at offset {pos})"));
    }
    match std::str::from_utf8(head) {
        Ok(_) => None,
        // Truncated multi-byte sequence at the very end of the head: fine.
        Err(e) if e.error_len().is_none() => None,
        Err(e) => Some(format!(
            "not valid UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        )),
    }
}

/// A short description of arbitrary content, for error messages.
fn describe(head: &[u8]) -> String {
    if let Some(sig) = binary_signature(head) {
        return sig.what.to_string();
    }
    if pdf_offset(head).is_some() {
        return "a PDF".into();
    }
    if head.is_empty() {
        return "empty".into();
    }
    match text_problem(head) {
        None => "text".into(),
        Some(_) => "unrecognized binary data".into(),
    }
}

/// Offset of `%PDF-` if it appears within the first 1024 bytes (as readers allow).
fn pdf_offset(head: &[u8]) -> Option<usize> {
    let window = &head[..head.len().min(1024 + 5)];
    window.windows(5).position(|w| w == b"%PDF-")
}

/// The declared MIME type, reduced to what matters for consistency checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Declared {
    /// Absent or generic (`application/octet-stream`, …): ignored.
    Ignore,
    Pdf,
    Docx,
    Zip,
    /// A text-ish type (text/*, JSON, XML, scripts…).
    TextLike,
    /// A clearly binary, non-supported type (image/*, video/*, executables, archives…).
    Binary,
}

fn classify_declared(declared: Option<&str>, ext: Option<&str>) -> (Declared, String) {
    let Some(raw) = declared else {
        return (Declared::Ignore, String::new());
    };
    let m = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let class = match m.as_str() {
        ""
        | "application/octet-stream"
        | "binary/octet-stream"
        | "application/unknown"
        | "application/x-unknown"
        | "application/binary"
        | "application/force-download"
        | "application/download"
        | "*/*"
        | "unknown/unknown" => Declared::Ignore,
        "application/pdf" | "application/x-pdf" | "application/acrobat" => Declared::Pdf,
        MIME_DOCX => Declared::Docx,
        "application/zip" | "application/x-zip-compressed" | "application/x-zip" => Declared::Zip,
        // Browsers label .ts as MPEG transport stream and .csv as Excel.
        "video/mp2t" | "video/vnd.dlna.mpeg-tts" if ext == Some("ts") => Declared::TextLike,
        "application/vnd.ms-excel" if matches!(ext, Some("csv" | "tsv")) => Declared::TextLike,
        "application/rls-services+xml" if ext == Some("rs") => Declared::TextLike,
        m if m.starts_with("text/") => Declared::TextLike,
        m if m.starts_with("image/")
            || m.starts_with("audio/")
            || m.starts_with("video/")
            || m.starts_with("font/")
            || m.starts_with("model/") =>
        {
            Declared::Binary
        }
        "application/msword"
        | "application/vnd.ms-excel"
        | "application/vnd.ms-powerpoint"
        | "application/x-msdownload"
        | "application/x-msdos-program"
        | "application/vnd.microsoft.portable-executable"
        | "application/x-executable"
        | "application/x-elf"
        | "application/x-mach-binary"
        | "application/x-sharedlib"
        | "application/java-archive"
        | "application/java-vm"
        | "application/wasm"
        | "application/gzip"
        | "application/x-gzip"
        | "application/x-tar"
        | "application/x-bzip2"
        | "application/x-xz"
        | "application/zstd"
        | "application/x-7z-compressed"
        | "application/x-rar-compressed"
        | "application/vnd.rar"
        | "application/x-iso9660-image"
        | "application/x-apple-diskimage"
        | "application/vnd.android.package-archive"
        | "application/x-sqlite3"
        | "application/vnd.sqlite3"
        | "application/rtf"
        | "application/epub+zip" => Declared::Binary,
        m if m.starts_with("application/vnd.openxmlformats")
            || m.starts_with("application/vnd.oasis.opendocument") =>
        {
            Declared::Binary
        }
        // Any other application/* (json, xml, javascript, x-sh, sql, toml, yaml, …)
        // is treated as a text-ish label.
        _ => Declared::TextLike,
    };
    (class, m)
}

/// Decide what a file really is. See the crate docs for the rules.
///
/// `head` is the first up-to-[`HEAD_LEN`] bytes (longer input is truncated),
/// `filename` the client's name (sanitized or not), `declared` the part's
/// `Content-Type`, if any.
pub fn detect(head: &[u8], filename: &str, declared: Option<&str>) -> Result<FileType, Rejected> {
    let head = &head[..head.len().min(HEAD_LEN)];
    let shown = display_name(filename);
    let (_, ext) = split_name(filename);
    let ext_class = classify_name(filename);
    let (decl, decl_str) = classify_declared(declared, ext.as_deref());

    if head.is_empty() {
        return Err(Rejected::new(format!("{shown} is empty")));
    }

    // 1. Executables and other binaries we recognise by their magic bytes.
    if let Some(sig) = binary_signature(head) {
        let is_docx_zip = sig.what == "a ZIP archive"
            && matches!(ext_class, ExtClass::Supported(t) if t.kind == Kind::Docx);
        if !is_docx_zip {
            return Err(match (sig.executable, ext_class) {
                (true, ExtClass::Supported(t)) => Rejected::new(format!(
                    "{shown} claims to be {} but its content is {}",
                    kind_article(t.kind),
                    sig.what
                )),
                (true, _) => Rejected::new(format!(
                    "{shown} is {}; executables are not accepted",
                    sig.what
                )),
                (false, ExtClass::Supported(t)) => Rejected::new(format!(
                    "{shown} claims to be {} but its content is {}",
                    kind_article(t.kind),
                    sig.what
                )),
                (false, _) => {
                    Rejected::new(format!("unsupported file type: {shown} is {}", sig.what))
                }
            });
        }
    }

    // 2. PDF.
    let is_pdf = pdf_offset(head).is_some();
    let claimed = match ext_class {
        ExtClass::Supported(t) => Some(t),
        _ => None,
    };
    if is_pdf {
        return match claimed {
            Some(t) if t.kind == Kind::Pdf => {
                check_declared(decl, &decl_str, &shown, &[Declared::Pdf], "a PDF")?;
                Ok(t)
            }
            Some(t) => Err(Rejected::new(format!(
                "{shown} claims to be {} but its content is a PDF",
                kind_article(t.kind)
            ))),
            None if matches!(ext_class, ExtClass::None) => {
                check_declared(decl, &decl_str, &shown, &[Declared::Pdf], "a PDF")?;
                Ok(FileType::of(Kind::Pdf))
            }
            None => Err(Rejected::new(format!(
                "{shown} has an extension that does not match its content (a PDF); rename it to .pdf"
            ))),
        };
    }
    if let Some(t) = claimed
        && t.kind == Kind::Pdf
    {
        return Err(Rejected::new(format!(
            "{shown} claims to be a PDF but its content is {}",
            describe(head)
        )));
    }

    // 3. DOCX (a ZIP container).
    if head.starts_with(b"PK\x03\x04") {
        // Only reachable with a .docx name (other ZIPs were refused above).
        let t = FileType::of(Kind::Docx);
        if head.len() < HEAD_LEN
            && !contains(head, b"[Content_Types].xml")
            && !contains(head, b"word/")
        {
            return Err(Rejected::new(format!(
                "{shown} claims to be a Word document but its content is a ZIP archive without Word parts"
            )));
        }
        check_declared(
            decl,
            &decl_str,
            &shown,
            &[Declared::Docx, Declared::Zip],
            "a Word document",
        )?;
        return Ok(t);
    }
    if let Some(t) = claimed
        && t.kind == Kind::Docx
    {
        return Err(Rejected::new(format!(
            "{shown} claims to be a Word document but its content is {}",
            describe(head)
        )));
    }

    // 4. Everything else must be UTF-8 text.
    let body = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    if let Some(problem) = text_problem(body) {
        return Err(match claimed {
            Some(t) => Rejected::new(format!(
                "{shown} claims to be {} but its content is {problem}",
                kind_article(t.kind)
            )),
            None => Rejected::new(format!("unsupported file type: {shown} is {problem}")),
        });
    }
    let t = match ext_class {
        ExtClass::Supported(t) => t,
        ExtClass::None | ExtClass::Other => FileType::of(Kind::Text),
        ExtClass::KnownBinary => {
            return Err(Rejected::new(format!(
                "unsupported file type: {shown} (its extension denotes a binary format)"
            )));
        }
    };
    if body.starts_with(b"#!") && t.kind != Kind::Code {
        return Err(Rejected::new(format!(
            "{shown} is a script (starts with #!); upload it with its code extension (.sh, .py, …)"
        )));
    }
    check_declared(decl, &decl_str, &shown, &[Declared::TextLike], "text")?;
    Ok(t)
}

fn check_declared(
    decl: Declared,
    decl_str: &str,
    shown: &str,
    allowed: &[Declared],
    content: &str,
) -> Result<(), Rejected> {
    if decl == Declared::Ignore || allowed.contains(&decl) {
        Ok(())
    } else {
        Err(Rejected::new(format!(
            "{shown} was declared as {decl_str} but its content is {content}"
        )))
    }
}

fn kind_article(kind: Kind) -> &'static str {
    match kind {
        Kind::Text => "a text file",
        Kind::Markdown => "a Markdown file",
        Kind::Html => "an HTML file",
        Kind::Pdf => "a PDF",
        Kind::Docx => "a Word document",
        Kind::Csv => "a CSV file",
        Kind::Json => "a JSON file",
        Kind::Code => "a source file",
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A short, printable version of the name for messages.
fn display_name(filename: &str) -> String {
    let cleaned: String = filename
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .take(80)
        .collect();
    let cleaned = cleaned.trim();
    if cleaned.is_empty() {
        "the file".to_string()
    } else {
        cleaned.to_string()
    }
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

const MAX_NAME_BYTES: usize = 255;

/// Make a client-supplied file name safe to display and store.
///
/// Strips directories (both `/` and `\`), drive prefixes, `..`, control and
/// bidi-override characters, leading dots; replaces characters Windows forbids;
/// trims; limits to 255 bytes on a char boundary keeping the extension.
pub fn sanitize_filename(name: &str) -> Result<String, Rejected> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    // "C:file.txt" (drive-relative) → "file.txt".
    let last = match last.as_bytes() {
        [d, b':', ..] if d.is_ascii_alphabetic() => &last[2..],
        _ => last,
    };
    let mut s: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c) && *c != '\u{FEFF}')
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' => '_',
            c => c,
        })
        .collect();
    s = s
        .trim_matches(|c: char| c.is_whitespace() || c == '.')
        .to_string();
    if s.is_empty() {
        return Err(Rejected::new("the file name is empty or unusable"));
    }
    // Windows device names.
    let stem_upper = s.split('.').next().unwrap_or("").to_ascii_uppercase();
    const RESERVED: &[&str] = &[
        "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
        "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    ];
    if RESERVED.contains(&stem_upper.as_str()) {
        s.insert(0, '_');
    }
    if s.len() > MAX_NAME_BYTES {
        let (stem, ext) = match s.rfind('.') {
            Some(i) if i > 0 && s.len() - i <= 17 => (&s[..i], &s[i..]),
            _ => (s.as_str(), ""),
        };
        let budget = MAX_NAME_BYTES - ext.len();
        let cut = floor_char_boundary(stem, budget);
        let stem = stem[..cut].trim_end_matches(|c: char| c.is_whitespace() || c == '.');
        if stem.is_empty() {
            return Err(Rejected::new("the file name is empty or unusable"));
        }
        s = format!("{stem}{ext}");
    }
    Ok(s)
}

/// Largest char boundary `<= i` in `s`.
pub(crate) fn floor_char_boundary(s: &str, i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    let mut i = i;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(head: &[u8], name: &str, decl: Option<&str>) -> FileType {
        match detect(head, name, decl) {
            Ok(t) => t,
            Err(e) => panic!("{name}: unexpected rejection: {}", e.reason),
        }
    }

    fn rej(head: &[u8], name: &str, decl: Option<&str>) -> String {
        match detect(head, name, decl) {
            Ok(t) => panic!("{name}: unexpectedly accepted as {t:?}"),
            Err(e) => e.reason,
        }
    }

    const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0>\0";
    const PE: &[u8] = b"MZ\x90\0\x03\0\0\0\x04\0\0\0\xff\xff\0\0\xb8\0\0\0\0\0\0\0@\0";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
    const GZIP: &[u8] = b"\x1f\x8b\x08\0\0\0\0\0\0\x03";
    const PDF: &[u8] = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n";
    const DOCX: &[u8] =
        b"PK\x03\x04\x14\0\x06\0\x08\0\0\0!\0\0\0\0\0\0\0\0\0\0\0\0\0\x13\0\0\0[Content_Types].xml";

    #[test]
    fn kind_roundtrip() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>(), Ok(k));
            let json = serde_json::to_string(&k).expect("serialize");
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert!("exe".parse::<Kind>().is_err());
    }

    #[test]
    fn pdf_and_docx_magic() {
        assert_eq!(ok(PDF, "a.pdf", None).kind, Kind::Pdf);
        assert_eq!(ok(PDF, "a.pdf", Some("application/pdf")).kind, Kind::Pdf);
        assert_eq!(
            ok(PDF, "a.PDF", Some("application/octet-stream")).kind,
            Kind::Pdf
        );
        assert_eq!(ok(PDF, "noext", None).kind, Kind::Pdf);
        assert_eq!(ok(DOCX, "r.docx", None).kind, Kind::Docx);
        assert_eq!(ok(DOCX, "r.docx", Some("application/zip")).kind, Kind::Docx);
        assert_eq!(ok(DOCX, "r.docx", Some(MIME_DOCX)).kind, Kind::Docx);
        // zip that is not claimed to be a docx
        assert!(rej(DOCX, "r.zip", None).contains("unsupported file type"));
        assert!(rej(DOCX, "r.xlsx", None).contains("ZIP archive"));
        assert!(rej(DOCX, "r.pdf", None).contains("ZIP archive"));
        // a tiny complete zip without any Word part
        let zip = b"PK\x03\x04\x14\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\x05\0\0\0a.txt";
        assert!(rej(zip, "r.docx", None).contains("without Word parts"));
        // PDF content under another name
        assert!(rej(PDF, "a.txt", None).contains("content is a PDF"));
        assert!(rej(PDF, "a.docx", None).contains("content is a PDF"));
        // PDF name, other content
        assert!(
            rej(b"hello", "a.pdf", None).contains("claims to be a PDF but its content is text")
        );
        assert!(rej(DOCX, "a.pdf", None).contains("claims to be a PDF"));
        assert!(rej(b"hello", "a.docx", None).contains("Word document"));
    }

    #[test]
    fn executables_are_refused() {
        let r = rej(PE, "file.pdf", Some("application/pdf"));
        assert_eq!(
            r,
            "file.pdf claims to be a PDF but its content is a Windows executable (PE)"
        );
        assert!(rej(ELF, "notes.txt", None).contains("ELF"));
        assert!(rej(ELF, "prog", None).contains("executables are not accepted"));
        assert!(rej(PE, "setup.exe", None).contains("(PE)"));
        for magic in [
            &[0xFE, 0xED, 0xFA, 0xCE][..],
            &[0xFE, 0xED, 0xFA, 0xCF],
            &[0xCE, 0xFA, 0xED, 0xFE],
            &[0xCF, 0xFA, 0xED, 0xFE],
            &[0xCA, 0xFE, 0xBA, 0xBE],
            &[0xCA, 0xFE, 0xBA, 0xBF],
        ] {
            let mut h = magic.to_vec();
            h.extend_from_slice(&[7, 0, 0, 1, 3, 0, 0, 0]);
            assert!(rej(&h, "a.md", None).contains("Mach-O"), "{magic:x?}");
        }
        // "MZ" at the start of genuine text is not a PE.
        assert_eq!(ok(b"MZ is a nice prefix", "a.txt", None).kind, Kind::Text);
    }

    #[test]
    fn images_and_archives_are_unsupported() {
        assert!(rej(PNG, "photo.png", None).starts_with("unsupported file type"));
        assert!(rej(PNG, "photo.txt", None).contains("PNG image"));
        assert!(rej(GZIP, "a.tar.gz", None).contains("gzip"));
        assert!(rej(GZIP, "a.json", None).contains("gzip"));
        assert!(rej(b"GIF89a\x01\0\x01\0", "x.html", None).contains("GIF"));
        assert!(rej(b"\xff\xd8\xff\xe0\0\x10JFIF", "x.md", None).contains("JPEG"));
        // text content with a binary extension
        assert!(rej(b"hello", "x.exe", None).contains("unsupported"));
    }

    #[test]
    fn text_kinds_by_extension() {
        assert_eq!(ok(b"hi", "a.txt", None).kind, Kind::Text);
        assert_eq!(ok(b"hi", "a.log", None).kind, Kind::Text);
        assert_eq!(
            ok(b"# T", "a.md", Some("text/markdown")).kind,
            Kind::Markdown
        );
        assert_eq!(ok(b"<p>", "a.htm", Some("text/html")).kind, Kind::Html);
        assert_eq!(
            ok(b"a,b", "a.csv", Some("application/vnd.ms-excel")).kind,
            Kind::Csv
        );
        assert_eq!(ok(b"a\tb", "a.tsv", None).kind, Kind::Csv);
        assert_eq!(
            ok(b"{}", "a.json", Some("application/json")).kind,
            Kind::Json
        );
        assert_eq!(ok(b"{}", "a.ndjson", None).mime, "application/x-ndjson");
        let rs = ok(b"fn main(){}", "main.rs", Some("text/x-rust"));
        assert_eq!((rs.kind, rs.language), (Kind::Code, Some("rust")));
        assert_eq!(
            ok(b"x", "a.ts", Some("video/mp2t")).language,
            Some("typescript")
        );
        assert_eq!(
            ok(b"FROM x", "Dockerfile", None).language,
            Some("dockerfile")
        );
        assert_eq!(
            ok(b"FROM x", "x/y/app.dockerfile", None).language,
            Some("dockerfile")
        );
        assert_eq!(ok(b"all:", "Makefile", None).language, Some("makefile"));
        assert_eq!(ok(b"a: 1", "c.YML", None).language, Some("yaml"));
        assert_eq!(ok(b"plain", "README", None).kind, Kind::Text);
        assert_eq!(ok(b"plain", "notes.rst", None).kind, Kind::Text);
    }

    #[test]
    fn shebang_only_with_code_extension() {
        assert_eq!(ok(b"#!/bin/sh\necho", "run.sh", None).kind, Kind::Code);
        assert_eq!(
            ok(b"#!/usr/bin/env python3\n", "t.py", None).language,
            Some("python")
        );
        assert!(rej(b"#!/bin/sh\necho", "run.txt", None).contains("script"));
        assert!(rej(b"#!/bin/sh\necho", "run", None).contains("script"));
        assert!(rej(b"#!/bin/sh\necho", "run.md", None).contains("script"));
    }

    #[test]
    fn declared_type_must_match() {
        assert!(rej(b"hello", "a.txt", Some("image/png")).contains("declared as image/png"));
        assert!(
            rej(b"hello", "a.txt", Some("application/pdf")).contains("declared as application/pdf")
        );
        assert!(rej(b"hello", "a.md", Some("application/x-msdownload")).contains("declared"));
        assert!(rej(PDF, "a.pdf", Some("text/plain")).contains("declared as text/plain"));
        assert!(rej(PDF, "a.pdf", Some("image/png")).contains("declared"));
        assert!(rej(DOCX, "a.docx", Some("application/pdf")).contains("declared"));
        // parameters and case are ignored
        assert_eq!(
            ok(b"x", "a.txt", Some("Text/Plain; charset=UTF-8")).kind,
            Kind::Text
        );
        assert_eq!(
            ok(b"x", "a.txt", Some("application/octet-stream")).kind,
            Kind::Text
        );
    }

    #[test]
    fn utf8_rules() {
        assert!(rej(b"hello\xffworld", "a.txt", None).contains("not valid UTF-8"));
        assert!(rej(b"hello\0world", "a.txt", None).contains("NUL"));
        assert!(rej(b"hello\0world", "noext", None).contains("unsupported"));
        assert!(rej(b"\xff\xfeh\0i\0", "a.txt", None).contains("UTF-16"));
        // BOM is fine
        assert_eq!(ok(b"\xEF\xBB\xBFhello", "a.txt", None).kind, Kind::Text);
        // truncated multi-byte char at the very end of the head is fine
        let mut head = "é".repeat(4095).into_bytes();
        head.extend_from_slice(&[0xE2, 0x82]); // first two bytes of '€'
        assert_eq!(head.len(), 8192);
        assert_eq!(ok(&head, "a.txt", None).kind, Kind::Text);
        assert_eq!(ok(b"caf\xc3", "a.txt", None).kind, Kind::Text);
        // but not in the middle
        assert!(rej(b"caf\xc3 x", "a.txt", None).contains("UTF-8"));
        // empty
        assert!(rej(b"", "a.txt", None).contains("empty"));
    }

    #[test]
    fn sanitize() {
        let s = |n: &str| sanitize_filename(n).map_err(|e| e.reason);
        assert_eq!(s("../../etc/passwd").as_deref(), Ok("passwd"));
        assert_eq!(s("..\\..\\win.ini").as_deref(), Ok("win.ini"));
        assert_eq!(s("C:\\x\\y.txt").as_deref(), Ok("y.txt"));
        assert_eq!(s("C:y.txt").as_deref(), Ok("y.txt"));
        assert_eq!(s("  .hidden.md ").as_deref(), Ok("hidden.md"));
        assert_eq!(s("a\u{0}b\nc\u{7f}.txt").as_deref(), Ok("abc.txt"));
        assert_eq!(s("evil\u{202E}txt.exe").as_deref(), Ok("eviltxt.exe"));
        assert_eq!(s("what?.txt").as_deref(), Ok("what_.txt"));
        assert_eq!(s("CON.txt").as_deref(), Ok("_CON.txt"));
        assert_eq!(s("Résumé 2024.pdf").as_deref(), Ok("Résumé 2024.pdf"));
        for bad in ["", "   ", "..", "../", "a/..", "...", "\u{1}\u{2}", "foo/"] {
            assert!(s(bad).is_err(), "{bad:?}");
        }
        let long = format!("{}.pdf", "ä".repeat(300));
        let out = s(&long).expect("usable");
        assert!(out.len() <= 255, "{}", out.len());
        assert!(out.ends_with(".pdf"));
        assert!(out.starts_with('ä'));
        let long_noext = "x".repeat(1000);
        assert_eq!(s(&long_noext).map(|o| o.len()), Ok(255));
    }
}
