#![no_main]

use libfuzzer_sys::fuzz_target;
use zentoria_extract::{FileType, Kind, Limits, detect, extract};

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_text_bytes: 1 << 20,
        max_unzipped_bytes: 8 << 20,
        max_zip_entries: 64,
        max_compression_ratio: 200,
        max_pages: 64,
    };
    // First byte picks the kind, the rest is the file.
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let kind = Kind::ALL[usize::from(selector) % Kind::ALL.len()];
    let _ = detect(body, &format!("fuzz.{}", kind.as_str()), None);
    if let Ok(doc) = extract(body, &FileType::of(kind), &limits) {
        assert!(doc.text.len() <= limits.max_text_bytes);
    }
});
