#![no_main]

use libfuzzer_sys::fuzz_target;
use zentoria_extract::{ChunkOptions, Document, Heading, chunk, estimate_tokens};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let max_tokens = usize::from(data[0] % 64) + 1;
    let overlap_tokens = usize::from(data[1] % 32);
    let text = String::from_utf8_lossy(&data[2..]).into_owned();
    // Headings at every '#' that starts a line.
    let mut headings = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with('#') {
            headings.push(Heading { level: 1, title: line.trim().to_string(), offset });
        }
        offset += line.len();
    }
    let doc = Document { text, pages: vec![0], headings };
    let chunks = chunk(&doc, &ChunkOptions { max_tokens, overlap_tokens });
    for c in &chunks {
        assert_eq!(&doc.text[c.start..c.end], c.text);
        assert!(c.tokens <= max_tokens);
        assert_eq!(estimate_tokens(&c.text), c.tokens);
    }
});
