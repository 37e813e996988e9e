//! Incremental Server-Sent Events parser (the `text/event-stream` framing of the WHATWG spec).
//!
//! Bytes may arrive split at arbitrary positions, including inside a UTF-8 sequence or between
//! `\r` and `\n`; the parser produces the same events regardless of chunking.

/// One dispatched SSE event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// The `event:` field, if present.
    pub event: Option<String>,
    /// The `data:` fields joined with `\n`, as bytes: whoever parses them checks their
    /// encoding (serde_json checks every string it reads), so the bytes are not walked twice.
    pub data: Vec<u8>,
}

/// Why the byte stream is not valid SSE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseError(pub String);

use crate::MAX_LINE;

/// Incremental SSE decoder.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    after_cr: bool,
    started: bool,
    event: Option<String>,
    data: Vec<u8>,
    has_data: bool,
}

impl SseParser {
    /// A parser at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a chunk and appends completed events to `out`. Lines are found by scanning for
    /// their ends and copied at most once (only a line split across chunks is buffered).
    pub fn feed(&mut self, mut chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        while !chunk.is_empty() {
            if std::mem::take(&mut self.after_cr) && chunk[0] == b'\n' {
                chunk = &chunk[1..];
                continue;
            }
            let end = memchr::memchr2(b'\n', b'\r', chunk);
            if self.line.len() + end.unwrap_or(chunk.len()) > MAX_LINE {
                return Err(too_long());
            }
            let Some(end) = end else {
                self.line.extend_from_slice(chunk);
                break;
            };
            self.after_cr = chunk[end] == b'\r';
            if self.line.is_empty() {
                self.end_line(&chunk[..end], out)?;
            } else {
                self.line.extend_from_slice(&chunk[..end]);
                let line = std::mem::take(&mut self.line);
                let result = self.end_line(&line, out);
                self.line = line;
                self.line.clear();
                result?;
            }
            chunk = &chunk[end + 1..];
        }
        Ok(())
    }

    /// Signals end of input. A final event whose lines were complete but that lacked the
    /// terminating blank line is dispatched; an unterminated partial line is discarded.
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) {
        self.line.clear();
        self.dispatch(out);
    }

    fn end_line(&mut self, mut line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.started {
            self.started = true;
            line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line.starts_with(b":") {
            return Ok(()); // comment / keep-alive
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"event" => {
                let name = std::str::from_utf8(value)
                    .map_err(|e| SseError(format!("event stream event type is not UTF-8: {e}")))?;
                self.event = Some(name.to_owned());
            }
            b"data" => {
                if self.data.len() + value.len() > MAX_LINE {
                    return Err(too_long());
                }
                if self.has_data {
                    self.data.push(b'\n');
                    self.data.extend_from_slice(value);
                } else {
                    // Mostly an event is one data line: allocate it at its size.
                    self.data = value.to_vec();
                }
                self.has_data = true;
            }
            _ => {} // id, retry and unknown fields are irrelevant here
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        if !self.has_data {
            return;
        }
        self.has_data = false;
        out.push(SseEvent {
            event,
            data: std::mem::take(&mut self.data),
        });
    }
}

fn too_long() -> SseError {
    SseError(format!(
        "event stream line or event longer than {} MiB",
        MAX_LINE >> 20
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_chunks(chunks: &[&[u8]]) -> Result<Vec<SseEvent>, SseError> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, &mut out)?;
        }
        p.finish(&mut out);
        Ok(out)
    }

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.as_bytes().to_vec(),
        }
    }

    const SAMPLE: &[u8] =
        "\u{feff}: keep-alive\r\n\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\n\
data:no-space\n\ndata: multi\ndata: line é漢🎉\nid: 7\nretry: 10\n\n\
event: ping\ndata: {}\r\rdata: [DONE]\n\n"
            .as_bytes();

    fn sample_expected() -> Vec<SseEvent> {
        vec![
            ev(Some("message_start"), "{\"a\":1}"),
            ev(None, "no-space"),
            ev(None, "multi\nline é漢🎉"),
            ev(Some("ping"), "{}"),
            ev(None, "[DONE]"),
        ]
    }

    #[test]
    fn parses_fields_comments_and_line_endings() {
        assert_eq!(parse_chunks(&[SAMPLE]).unwrap(), sample_expected());
    }

    #[test]
    fn every_single_split_point_gives_identical_events() {
        for i in 0..=SAMPLE.len() {
            let (a, b) = SAMPLE.split_at(i);
            assert_eq!(
                parse_chunks(&[a, b]).unwrap(),
                sample_expected(),
                "split at {i}"
            );
        }
    }

    #[test]
    fn every_pair_of_split_points_gives_identical_events() {
        for i in 0..=SAMPLE.len() {
            for j in i..=SAMPLE.len() {
                let chunks = [&SAMPLE[..i], &SAMPLE[i..j], &SAMPLE[j..]];
                assert_eq!(parse_chunks(&chunks).unwrap(), sample_expected(), "{i}/{j}");
            }
        }
    }

    #[test]
    fn pseudo_random_chunkings_give_identical_events() {
        // Deterministic xorshift so failures are reproducible.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..500 {
            let mut chunks = Vec::new();
            let mut pos = 0;
            while pos < SAMPLE.len() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let len = (seed % 9) as usize; // includes empty chunks
                let end = (pos + len).min(SAMPLE.len());
                chunks.push(&SAMPLE[pos..end]);
                pos = end;
            }
            assert_eq!(parse_chunks(&chunks).unwrap(), sample_expected());
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let chunks: Vec<&[u8]> = SAMPLE.chunks(1).collect();
        assert_eq!(parse_chunks(&chunks).unwrap(), sample_expected());
    }

    #[test]
    fn unterminated_final_line_is_discarded_but_complete_event_is_flushed() {
        assert_eq!(
            parse_chunks(&[b"data: a\n\ndata: b\ndata: {\"trunc"]).unwrap(),
            vec![ev(None, "a"), ev(None, "b")]
        );
        assert_eq!(parse_chunks(&[b"data: {\"trunc"]).unwrap(), vec![]);
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_does_not_leak_its_type() {
        assert_eq!(
            parse_chunks(&[b"event: x\n\ndata: y\n\n"]).unwrap(),
            vec![ev(None, "y")]
        );
    }

    #[test]
    fn endless_lines_and_events_are_refused() {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        p.feed(b"data: ", &mut out).unwrap();
        let piece = vec![b'x'; 1 << 20];
        let fed: Result<Vec<()>, _> = (0..17).map(|_| p.feed(&piece, &mut out)).collect();
        assert!(fed.unwrap_err().0.contains("longer than 16 MiB"));
        // Many short data lines of one event add up the same way.
        let mut p = SseParser::new();
        let mut line = b"data: ".to_vec();
        line.extend_from_slice(&piece);
        line.push(b'\n');
        let fed: Result<Vec<()>, _> = (0..17).map(|_| p.feed(&line, &mut out)).collect();
        assert!(fed.is_err());
        assert!(out.is_empty());
        // Up to the limit, a long line is fine.
        let mut p = SseParser::new();
        for c in [b"data: ".as_slice(), &piece, b"\n\n"] {
            p.feed(c, &mut out).unwrap();
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].data.len(), 1 << 20);
    }

    #[test]
    fn data_passes_as_bytes_and_an_event_type_must_be_utf8() {
        // Checking the data's encoding is the JSON parser's job (see the decoders' tests).
        assert_eq!(
            parse_chunks(&[b"data: \xff\xfe\n\n"]).unwrap(),
            vec![SseEvent {
                event: None,
                data: b"\xff\xfe".to_vec()
            }]
        );
        assert!(parse_chunks(&[b"event: \xff\ndata: x\n\n"]).is_err());
    }
}
