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

/// Why [`SseParser::feed_with`] stopped: the bytes are not valid SSE, or the handler failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedError<E> {
    /// The bytes are not valid SSE.
    Sse(SseError),
    /// The handler refused an event.
    Handler(E),
}

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
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.feed_with(chunk, |event, data| {
            out.push(SseEvent {
                event: event.map(str::to_owned),
                data: data.to_vec(),
            });
            Ok::<(), SseError>(())
        })
        .map_err(|e| match e {
            FeedError::Sse(e) | FeedError::Handler(e) => e,
        })
    }

    /// Feeds a chunk and hands each completed event to `handle` — its type (`event:`) and its
    /// data — as it is found, stopping at the first error. An event that stands whole in the
    /// chunk as one `data:` line and a blank line (with `\n` or `\r\n` line ends: what
    /// servers send) is handed over borrowed from the chunk, neither copied nor allocated;
    /// any other goes through the line-by-line parser first.
    pub fn feed_with<E>(
        &mut self,
        mut chunk: &[u8],
        mut handle: impl FnMut(Option<&str>, &[u8]) -> Result<(), E>,
    ) -> Result<(), FeedError<E>> {
        let mut events = Vec::new();
        while !chunk.is_empty() {
            if let Some((data, used)) = self.whole_data_event(chunk) {
                let event = self.event.take();
                handle(event.as_deref(), data).map_err(FeedError::Handler)?;
                chunk = &chunk[used..];
                continue;
            }
            let used = self.feed_line(chunk, &mut events).map_err(FeedError::Sse)?;
            chunk = &chunk[used..];
            for event in events.drain(..) {
                handle(event.event.as_deref(), &event.data).map_err(FeedError::Handler)?;
            }
        }
        Ok(())
    }

    /// An event at the start of `chunk` made of one `data:` line and the blank line after it,
    /// when nothing of another event is pending: its data and the bytes it takes.
    fn whole_data_event<'c>(&self, chunk: &'c [u8]) -> Option<(&'c [u8], usize)> {
        if !self.started || self.after_cr || self.has_data || !self.line.is_empty() {
            return None;
        }
        let rest = chunk.strip_prefix(b"data:")?;
        let end = memchr::memchr2(b'\n', b'\r', rest)?;
        if 5 + end > MAX_LINE {
            return None; // the line parser refuses it
        }
        let blank: &[u8] = if rest[end] == b'\n' {
            b"\n\n"
        } else {
            b"\r\n\r\n"
        };
        if !rest[end..].starts_with(blank) {
            return None;
        }
        let value = &rest[..end];
        Some((
            value.strip_prefix(b" ").unwrap_or(value),
            5 + end + blank.len(),
        ))
    }

    /// Parses the line at the start of `chunk` (or the rest of the chunk, when it holds no
    /// line end), appending an event completed by it to `out`; returns the bytes used.
    fn feed_line(&mut self, chunk: &[u8], out: &mut Vec<SseEvent>) -> Result<usize, SseError> {
        if std::mem::take(&mut self.after_cr) && chunk[0] == b'\n' {
            return Ok(1);
        }
        let end = memchr::memchr2(b'\n', b'\r', chunk);
        if self.line.len() + end.unwrap_or(chunk.len()) > MAX_LINE {
            return Err(too_long());
        }
        let Some(end) = end else {
            self.line.extend_from_slice(chunk);
            return Ok(chunk.len());
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
        Ok(end + 1)
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

    /// Events, as `feed_with` hands them over, owned.
    fn handed(p: &mut SseParser, chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        for c in chunks {
            p.feed_with(c, |event, data| {
                out.push(ev(event, std::str::from_utf8(data).unwrap()));
                Ok::<(), ()>(())
            })
            .unwrap();
        }
        p.finish(&mut out);
        out
    }

    #[test]
    fn whole_events_are_handed_over_as_the_line_parser_finds_them() {
        let stream = "data: {\"a\":1}\n\ndata:{\"b\":2}\r\n\r\nevent: delta\ndata: x\n\n\
data: \n\ndata:  two spaces\n\ndata: [DONE]\n\n"
            .as_bytes();
        let expected = vec![
            ev(None, "{\"a\":1}"),
            ev(None, "{\"b\":2}"),
            ev(Some("delta"), "x"),
            ev(None, ""),
            ev(None, " two spaces"),
            ev(None, "[DONE]"),
        ];
        // The first line goes through the line parser (it may start with a byte order
        // mark); the rest are whole in the chunk.
        assert_eq!(handed(&mut SseParser::new(), &[stream]), expected);
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(handed(&mut SseParser::new(), &bytes), expected);
    }

    #[test]
    fn a_handler_error_stops_the_chunk() {
        let mut p = SseParser::new();
        let mut seen = Vec::new();
        let fed = p.feed_with(b"data: a\n\ndata: b\n\ndata: c\n\n", |_, data| {
            seen.push(data.to_vec());
            if data == b"b" { Err("bad") } else { Ok(()) }
        });
        assert_eq!(fed, Err(FeedError::Handler("bad")));
        assert_eq!(seen, [b"a".to_vec(), b"b".to_vec()]);
    }

    proptest::proptest! {
        /// Streams of data, event, comment and blank lines with any line ends, cut anywhere:
        /// what `feed_with` hands over (whole events borrowed) is what the line parser
        /// finds one byte at a time.
        #[test]
        fn handing_over_whole_events_changes_no_event(
            lines in proptest::collection::vec(
                (0..5u8, "[a-z {}\":é]{0,12}", 0..3u8), 0..24),
            cuts in proptest::collection::vec(0..64usize, 0..8),
        ) {
            let mut stream = Vec::new();
            for (kind, text, end) in &lines {
                match kind {
                    0 | 1 => stream.extend_from_slice(format!("data: {text}").as_bytes()),
                    2 => stream.extend_from_slice(format!("event: {text}").as_bytes()),
                    3 => stream.extend_from_slice(format!(":{text}").as_bytes()),
                    _ => {}
                }
                stream.extend_from_slice([&b"\n"[..], b"\r\n", b"\r"][usize::from(*end)]);
            }
            let mut chunks = Vec::new();
            let mut at = 0;
            for cut in cuts {
                let end = (at + cut).min(stream.len());
                chunks.push(&stream[at..end]);
                at = end;
            }
            chunks.push(&stream[at..]);
            let bytes: Vec<&[u8]> = stream.chunks(1).collect();
            proptest::prop_assert_eq!(
                handed(&mut SseParser::new(), &chunks),
                handed(&mut SseParser::new(), &bytes)
            );
        }
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
