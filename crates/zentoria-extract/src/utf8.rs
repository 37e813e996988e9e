//! Streaming UTF-8 validation for text uploads.

use serde::{Deserialize, Serialize};

/// Why a text upload is not acceptable text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvalidTextKind {
    /// A byte sequence that is not UTF-8.
    InvalidUtf8,
    /// A NUL byte (binary data).
    Nul,
    /// The input ends in the middle of a multi-byte character.
    Truncated,
}

/// A text upload that is not valid UTF-8 (or contains NUL); `offset` is the
/// absolute byte offset of the first offending byte (the same as
/// [`std::str::Utf8Error::valid_up_to`] on the whole input).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", self.describe())]
pub struct InvalidText {
    pub offset: u64,
    pub kind: InvalidTextKind,
}

impl InvalidText {
    fn describe(&self) -> String {
        match self.kind {
            InvalidTextKind::InvalidUtf8 => {
                format!(
                    "the file is not valid UTF-8 text (invalid byte at offset {})",
                    self.offset
                )
            }
            InvalidTextKind::Nul => {
                format!(
                    "the file contains binary data (NUL byte at offset {})",
                    self.offset
                )
            }
            InvalidTextKind::Truncated => format!(
                "the file ends in the middle of a UTF-8 character (at offset {})",
                self.offset
            ),
        }
    }
}

/// Incremental validator: feed the upload in pieces of any size (pieces may
/// split a multi-byte character), then call [`Utf8Check::finish`].
///
/// The first error is sticky: later `push` calls return it again.
#[derive(Debug, Clone, Default)]
pub struct Utf8Check {
    /// Bytes of an incomplete character carried over from the previous piece.
    carry: [u8; 4],
    carry_len: usize,
    /// Absolute offset of the next byte to be pushed.
    offset: u64,
    error: Option<InvalidText>,
}

fn seq_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

impl Utf8Check {
    pub fn new() -> Self {
        Self::default()
    }

    /// Total bytes pushed so far.
    pub fn len(&self) -> u64 {
        self.offset
    }

    /// Whether nothing has been pushed yet.
    pub fn is_empty(&self) -> bool {
        self.offset == 0
    }

    fn fail(&mut self, offset: u64, kind: InvalidTextKind) -> Result<(), InvalidText> {
        let e = InvalidText { offset, kind };
        self.error = Some(e);
        Err(e)
    }

    pub fn push(&mut self, bytes: &[u8]) -> Result<(), InvalidText> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut rest = bytes;
        let mut base = self.offset; // absolute offset of rest[0]
        self.offset += bytes.len() as u64;

        // Complete a character split across pieces.
        if self.carry_len > 0 {
            let start = base - self.carry_len as u64;
            let need = seq_len(self.carry[0]);
            let take = (need - self.carry_len).min(rest.len());
            let mut tmp = [0u8; 4];
            tmp[..self.carry_len].copy_from_slice(&self.carry[..self.carry_len]);
            tmp[self.carry_len..self.carry_len + take].copy_from_slice(&rest[..take]);
            let tmp_len = self.carry_len + take;
            match std::str::from_utf8(&tmp[..tmp_len]) {
                Ok(_) => {
                    self.carry_len = 0;
                }
                Err(e) if e.error_len().is_none() => {
                    // Still incomplete: the piece was exhausted.
                    self.carry = tmp;
                    self.carry_len = tmp_len;
                    return Ok(());
                }
                Err(_) => return self.fail(start, InvalidTextKind::InvalidUtf8),
            }
            rest = &rest[take..];
            base += take as u64;
        }

        let nul = rest.iter().position(|&b| b == 0);
        let (checked, nul_at) = match nul {
            Some(p) => (&rest[..p], Some(p)),
            None => (rest, None),
        };
        match std::str::from_utf8(checked) {
            Ok(_) => {}
            Err(e) => match e.error_len() {
                Some(_) => {
                    return self.fail(base + e.valid_up_to() as u64, InvalidTextKind::InvalidUtf8);
                }
                None => {
                    if nul_at.is_some() {
                        // The incomplete sequence is followed by NUL: invalid there.
                        return self
                            .fail(base + e.valid_up_to() as u64, InvalidTextKind::InvalidUtf8);
                    }
                    let tail = &checked[e.valid_up_to()..];
                    self.carry[..tail.len()].copy_from_slice(tail);
                    self.carry_len = tail.len();
                    return Ok(());
                }
            },
        }
        if let Some(p) = nul_at {
            return self.fail(base + p as u64, InvalidTextKind::Nul);
        }
        Ok(())
    }

    pub fn finish(self) -> Result<(), InvalidText> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if self.carry_len > 0 {
            return Err(InvalidText {
                offset: self.offset - self.carry_len as u64,
                kind: InvalidTextKind::Truncated,
            });
        }
        Ok(())
    }
}

/// Validate a complete buffer with the same rules as [`Utf8Check`].
pub fn check_text(bytes: &[u8]) -> Result<&str, InvalidText> {
    let nul = bytes.iter().position(|&b| b == 0);
    let upto = nul.unwrap_or(bytes.len());
    match std::str::from_utf8(&bytes[..upto]) {
        Err(e) => Err(InvalidText {
            offset: e.valid_up_to() as u64,
            kind: if e.error_len().is_none() && nul.is_none() {
                InvalidTextKind::Truncated
            } else {
                InvalidTextKind::InvalidUtf8
            },
        }),
        Ok(s) => match nul {
            Some(p) => Err(InvalidText {
                offset: p as u64,
                kind: InvalidTextKind::Nul,
            }),
            None => Ok(s),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(pieces: &[&[u8]]) -> Result<(), InvalidText> {
        let mut c = Utf8Check::new();
        for p in pieces {
            c.push(p)?;
        }
        c.finish()
    }

    #[test]
    fn split_chars() {
        let s = "a€b😀c".as_bytes();
        for i in 0..=s.len() {
            for j in i..=s.len() {
                assert_eq!(stream(&[&s[..i], &s[i..j], &s[j..]]), Ok(()), "{i} {j}");
            }
        }
        // byte by byte
        let pieces: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(stream(&pieces), Ok(()));
    }

    #[test]
    fn errors_have_offsets() {
        let e = stream(&[b"ab", b"c\xff"]).expect_err("invalid");
        assert_eq!((e.offset, e.kind), (3, InvalidTextKind::InvalidUtf8));
        let e = stream(&[b"ab\xe2", b"\x82x"]).expect_err("invalid");
        assert_eq!((e.offset, e.kind), (2, InvalidTextKind::InvalidUtf8));
        let e = stream(&[b"ab", b"\0"]).expect_err("nul");
        assert_eq!((e.offset, e.kind), (2, InvalidTextKind::Nul));
        let e = stream(&[b"ab\xe2\x82"]).expect_err("truncated");
        assert_eq!((e.offset, e.kind), (2, InvalidTextKind::Truncated));
        assert!(e.to_string().contains("offset 2"));
        assert_eq!(check_text(b"ab\xe2\x82").map(|_| ()), Err(e));
        assert_eq!(stream(&[]), Ok(()));
    }
}
