//! Incremental newline-delimited JSON framing (Ollama's streaming format).

/// Splits a byte stream into non-blank lines, independent of chunk boundaries.
#[derive(Debug, Default)]
pub struct NdjsonParser {
    buf: Vec<u8>,
}

/// A line that is not valid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NdjsonError(pub String);

impl NdjsonParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk and appends each completed, non-blank line (without its `\n` or `\r\n`).
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<String>) -> Result<(), NdjsonError> {
        let mut rest = chunk;
        loop {
            let end = memchr::memchr(b'\n', rest);
            if self.buf.len() + end.unwrap_or(rest.len()) > crate::MAX_LINE {
                return Err(NdjsonError(format!(
                    "stream line longer than {} MiB",
                    crate::MAX_LINE >> 20
                )));
            }
            let Some(pos) = end else { break };
            self.buf.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            let line = std::mem::take(&mut self.buf);
            push_line(line, out)?;
        }
        self.buf.extend_from_slice(rest);
        Ok(())
    }

    /// Signals end of input: a final line without a trailing newline is emitted as-is (if it
    /// was cut short, JSON decoding of it will fail, which is the desired signal).
    pub fn finish(&mut self, out: &mut Vec<String>) -> Result<(), NdjsonError> {
        let line = std::mem::take(&mut self.buf);
        push_line(line, out)
    }
}

fn push_line(mut line: Vec<u8>, out: &mut Vec<String>) -> Result<(), NdjsonError> {
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let text = String::from_utf8(line)
        .map_err(|e| NdjsonError(format!("stream line is not UTF-8: {e}")))?;
    out.push(text);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &[u8] = "{\"a\":\"é漢🎉\"}\n\r\n{\"b\":2}\r\n  \n{\"done\":true}\n".as_bytes();

    fn expected() -> Vec<String> {
        vec![
            "{\"a\":\"é漢🎉\"}".to_owned(),
            "{\"b\":2}".to_owned(),
            "{\"done\":true}".to_owned(),
        ]
    }

    fn parse(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = NdjsonParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out).unwrap();
        }
        p.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut p = NdjsonParser::new();
        let mut out = Vec::new();
        let piece = vec![b'x'; 1 << 20];
        let fed: Result<Vec<()>, _> = (0..17).map(|_| p.feed(&piece, &mut out)).collect();
        assert!(fed.unwrap_err().0.contains("longer than 16 MiB"));
        assert!(out.is_empty());
        // Lines that end in time are fine, however many arrive.
        let mut p = NdjsonParser::new();
        let mut line = piece.clone();
        line.push(b'\n');
        for _ in 0..17 {
            p.feed(&line, &mut out).unwrap();
        }
        assert_eq!(out.len(), 17);
    }

    #[test]
    fn splits_lines() {
        assert_eq!(parse(&[SAMPLE]), expected());
    }

    #[test]
    fn every_pair_of_split_points_gives_identical_lines() {
        for i in 0..=SAMPLE.len() {
            for j in i..=SAMPLE.len() {
                let chunks = [&SAMPLE[..i], &SAMPLE[i..j], &SAMPLE[j..]];
                assert_eq!(parse(&chunks), expected(), "{i}/{j}");
            }
        }
    }

    #[test]
    fn final_line_without_newline_is_kept() {
        assert_eq!(
            parse(&[b"{\"x\":1}\n{\"y\":"]),
            vec!["{\"x\":1}", "{\"y\":"]
        );
    }

    #[test]
    fn invalid_utf8_is_an_error() {
        let mut p = NdjsonParser::new();
        assert!(p.feed(b"\xff\n", &mut Vec::new()).is_err());
    }
}
