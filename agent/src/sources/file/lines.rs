//! Splitting a file's bytes into lines, with a bound on line length.
//!
//! Invariants:
//! - Every byte before [`LineSplitter::consumed`] is in an emitted line or was discarded
//!   (the rest of a truncated line); the bytes after it are the incomplete last line, kept
//!   until its newline arrives. Reading resumes at `consumed` after a restart.
//! - An emitted line never holds its `\n` (nor a `\r` before it) and is at most `max` bytes;
//!   a longer line is cut at `max` and counted, then either its rest is dropped up to the
//!   newline (`Truncate`) or emitted as further lines (`Split`).

use memchr::memchr;

use super::config::LongLines;

/// A complete line: its bytes and the file offsets of its first byte and past its end.
pub struct Line<'a> {
    pub bytes: &'a [u8],
    pub start: u64,
    pub end: u64,
    /// The line was cut because it was longer than the limit.
    pub cut: bool,
}

pub struct LineSplitter {
    max: usize,
    mode: LongLines,
    carry: Vec<u8>,
    /// Dropping the rest of a truncated line until its newline.
    skipping: bool,
    consumed: u64,
}

impl LineSplitter {
    /// A splitter whose next byte is at `offset` of the file.
    pub fn new(max: usize, mode: LongLines, offset: u64) -> Self {
        Self {
            max,
            mode,
            carry: Vec::new(),
            skipping: false,
            consumed: offset,
        }
    }

    /// Offset of the first byte not yet emitted or discarded.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Offset of the next byte to read from the file.
    pub fn read_offset(&self) -> u64 {
        self.consumed + self.carry.len() as u64
    }

    /// Starts over at `offset` (the file was truncated), forgetting the incomplete line.
    pub fn reset(&mut self, offset: u64) {
        self.carry.clear();
        self.skipping = false;
        self.consumed = offset;
    }

    /// The incomplete last line, emitted as it is (the file will not grow any more).
    pub fn finish(&mut self, emit: &mut impl FnMut(Line<'_>)) {
        if self.carry.is_empty() {
            return;
        }
        let start = self.consumed;
        let end = start + self.carry.len() as u64;
        let carry = std::mem::take(&mut self.carry);
        emit(Line {
            bytes: trim_cr(&carry),
            start,
            end,
            cut: false,
        });
        self.consumed = end;
    }

    /// Feeds the bytes read at [`Self::read_offset`]; emits each complete line.
    pub fn feed(&mut self, chunk: &[u8], emit: &mut impl FnMut(Line<'_>)) {
        let mut pos = 0;
        while pos < chunk.len() {
            let rest = &chunk[pos..];
            match memchr(b'\n', rest) {
                Some(i) => {
                    let end = self.read_offset() + i as u64 + 1;
                    if self.skipping {
                        self.skipping = false;
                        self.carry.clear();
                    } else if self.carry.is_empty() {
                        self.emit_line(&rest[..i], self.consumed, end, emit);
                    } else {
                        let mut carry = std::mem::take(&mut self.carry);
                        carry.extend_from_slice(&rest[..i]);
                        self.emit_line(&carry, self.consumed, end, emit);
                        carry.clear();
                        self.carry = carry;
                    }
                    self.consumed = end;
                    pos += i + 1;
                }
                None => {
                    if self.skipping {
                        self.consumed += rest.len() as u64;
                    } else {
                        self.carry.extend_from_slice(rest);
                        self.cut_carry(emit);
                    }
                    break;
                }
            }
        }
    }

    /// An incomplete line already longer than the limit is cut now, not when it ends.
    fn cut_carry(&mut self, emit: &mut impl FnMut(Line<'_>)) {
        // A trailing `\r` may be half of the line's `\r\n`: it does not count yet.
        while trim_cr(&self.carry).len() > self.max {
            let start = self.consumed;
            let end = start + self.max as u64;
            emit(Line {
                bytes: &self.carry[..self.max],
                start,
                end,
                cut: true,
            });
            match self.mode {
                LongLines::Truncate => {
                    self.consumed += self.carry.len() as u64;
                    self.carry.clear();
                    self.skipping = true;
                }
                LongLines::Split => {
                    self.carry.drain(..self.max);
                    self.consumed = end;
                }
            }
        }
    }

    fn emit_line(&self, bytes: &[u8], start: u64, end: u64, emit: &mut impl FnMut(Line<'_>)) {
        let bytes = trim_cr(bytes);
        if bytes.len() <= self.max {
            emit(Line {
                bytes,
                start,
                end,
                cut: false,
            });
            return;
        }
        match self.mode {
            LongLines::Truncate => emit(Line {
                bytes: &bytes[..self.max],
                start,
                end,
                cut: true,
            }),
            LongLines::Split => {
                let mut at = 0;
                for piece in bytes.chunks(self.max) {
                    at += piece.len() as u64;
                    let piece_end = if at == bytes.len() as u64 {
                        end
                    } else {
                        start + at
                    };
                    emit(Line {
                        bytes: piece,
                        start: start + at - piece.len() as u64,
                        end: piece_end,
                        cut: true,
                    });
                }
            }
        }
    }
}

fn trim_cr(b: &[u8]) -> &[u8] {
    b.strip_suffix(b"\r").unwrap_or(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(
        max: usize,
        mode: LongLines,
        chunks: &[&[u8]],
    ) -> (Vec<(String, u64, u64, bool)>, u64) {
        let mut s = LineSplitter::new(max, mode, 0);
        let mut out = Vec::new();
        for c in chunks {
            s.feed(c, &mut |l| {
                out.push((
                    String::from_utf8_lossy(l.bytes).into_owned(),
                    l.start,
                    l.end,
                    l.cut,
                ))
            });
        }
        (out, s.consumed())
    }

    #[test]
    fn lines_across_chunks_keep_their_offsets() {
        let (lines, consumed) = split(
            100,
            LongLines::Truncate,
            &[b"ab\ncd", b"e\r\n", b"\nf", b"g"],
        );
        let want = vec![
            ("ab".to_string(), 0, 3, false),
            ("cde".to_string(), 3, 8, false),
            (String::new(), 8, 9, false),
        ];
        assert_eq!(lines, want);
        // "fg" has no newline yet: not consumed.
        assert_eq!(consumed, 9);
    }

    #[test]
    fn long_lines_are_truncated_or_split() {
        let (lines, consumed) = split(4, LongLines::Truncate, &[b"abcdefghij\nxy\n"]);
        assert_eq!(
            lines,
            vec![
                ("abcd".to_string(), 0, 11, true),
                ("xy".to_string(), 11, 14, false)
            ]
        );
        assert_eq!(consumed, 14);
        // Cut before its newline arrived, the rest is skipped as it comes.
        let (lines, consumed) = split(4, LongLines::Truncate, &[b"abcdef", b"gh", b"ij\nxy\n"]);
        assert_eq!(lines[0], ("abcd".to_string(), 0, 4, true));
        assert_eq!(lines[1], ("xy".to_string(), 11, 14, false));
        assert_eq!(consumed, 14);
        let (lines, _) = split(4, LongLines::Split, &[b"abcdefghij\n"]);
        let texts: Vec<_> = lines.iter().map(|l| l.0.as_str()).collect();
        assert_eq!(texts, ["abcd", "efgh", "ij"]);
        assert_eq!(lines.last().map(|l| l.2), Some(11));
        let (lines, _) = split(4, LongLines::Split, &[b"abcdef", b"ghij\n"]);
        let texts: Vec<_> = lines.iter().map(|l| l.0.as_str()).collect();
        assert_eq!(texts, ["abcd", "efgh", "ij"]);
    }

    #[test]
    fn finish_emits_the_incomplete_line() {
        let mut s = LineSplitter::new(100, LongLines::Truncate, 10);
        let mut out = Vec::new();
        s.feed(b"a\nbc", &mut |l| out.push(l.bytes.to_vec()));
        s.finish(&mut |l| out.push(l.bytes.to_vec()));
        assert_eq!(out, vec![b"a".to_vec(), b"bc".to_vec()]);
        assert_eq!(s.consumed(), 14);
    }

    proptest::proptest! {
        /// However the bytes are cut into reads, the lines and their offsets are those of the
        /// whole, and `consumed` is the end of the last complete line.
        #[test]
        fn chunking_does_not_change_the_lines(
            text in proptest::collection::vec(
                proptest::sample::select(vec![b'a', b'b', b'\n', b'\r', 0xe9]), 0..400),
            cuts in proptest::collection::vec(0usize..400, 0..20),
            max in 4usize..64,
            split in proptest::bool::ANY,
        ) {
            let mode = if split { LongLines::Split } else { LongLines::Truncate };
            let mut whole = Vec::new();
            let mut s = LineSplitter::new(max, mode, 0);
            s.feed(&text, &mut |l| whole.push((l.bytes.to_vec(), l.start, l.end, l.cut)));
            let whole_consumed = s.consumed();
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c <= text.len()).collect();
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut s = LineSplitter::new(max, mode, 0);
            let mut at = 0;
            for c in cuts.into_iter().chain([text.len()]) {
                s.feed(&text[at..c], &mut |l| pieces.push((l.bytes.to_vec(), l.start, l.end, l.cut)));
                at = c;
            }
            // A long line cut before its newline arrived is emitted earlier, with an earlier
            // end; its bytes and start are the same.
            let strip = |v: &[(Vec<u8>, u64, u64, bool)]| -> Vec<(Vec<u8>, u64)> {
                v.iter().map(|(b, st, _, _)| (b.clone(), *st)).collect()
            };
            proptest::prop_assert_eq!(strip(&pieces), strip(&whole));
            proptest::prop_assert_eq!(s.consumed(), whole_consumed);
            let last_newline = text.iter().rposition(|b| *b == b'\n').map_or(0, |i| i as u64 + 1);
            proptest::prop_assert!(s.consumed() >= last_newline);
            for (bytes, start, end, _) in &pieces {
                proptest::prop_assert!(bytes.len() <= max);
                proptest::prop_assert!(start <= end && *end <= text.len() as u64);
            }
        }
    }
}
