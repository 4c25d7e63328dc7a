//! Container log framing: Kubernetes CRI and Docker `json-file` lines, with the partial lines
//! a runtime splits long output into joined again; plain lines pass through.
//!
//! Invariants:
//! - Bytes that are not UTF-8 are replaced (U+FFFD) and counted, never an error.
//! - A line that does not parse in its format is kept as a plain line and counted; nothing
//!   is dropped.
//! - While a partial record waits for its end, [`Framer::pending_start`] is the file offset
//!   of its first line, so a checkpoint never passes it.
//! - A joined record is at most `max_bytes` long; more is cut and counted.

use std::borrow::Cow;

use chrono::DateTime;
use serde::Deserialize;
use strata_schema::text::floor_char;

use super::config::Format;
use super::lines::Line;

/// Which output stream of a container a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "stdout" => Some(Stream::Stdout),
            "stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }
}

/// A record as framed: its text and what the framing told of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Framed {
    pub text: String,
    /// Time written by the container runtime, in ns since the epoch.
    pub time_ns: Option<i64>,
    pub stream: Option<Stream>,
    /// File offsets of its first byte and past its last line.
    pub start: u64,
    pub end: u64,
    /// Lines joined into it.
    pub lines: usize,
}

/// Counts of what framing had to repair.
#[derive(Debug, Default, Clone, Copy)]
pub struct FrameIssues {
    pub invalid_utf8: u64,
    pub malformed: u64,
    pub cut: u64,
}

pub struct Framer {
    format: Format,
    max_bytes: usize,
    partial: Option<Framed>,
}

#[derive(Deserialize)]
struct DockerLine<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(default)]
    stream: Option<Cow<'a, str>>,
    #[serde(default)]
    time: Option<Cow<'a, str>>,
}

impl Framer {
    pub fn new(format: Format, max_bytes: usize) -> Self {
        Self {
            format,
            max_bytes,
            partial: None,
        }
    }

    pub fn pending_start(&self) -> Option<u64> {
        self.partial.as_ref().map(|p| p.start)
    }

    /// The partial record waiting for its end, emitted as it is.
    pub fn flush(&mut self) -> Option<Framed> {
        self.partial.take()
    }

    /// Frames one line; emits the records it completes (a partial record that this line
    /// cannot continue, then the line's own record unless it is partial itself).
    pub fn push(
        &mut self,
        line: &Line<'_>,
        issues: &mut FrameIssues,
        emit: &mut impl FnMut(Framed),
    ) {
        // `from_utf8` is the fast check; the lossy pass only runs on bad bytes.
        let text = match std::str::from_utf8(line.bytes) {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => {
                issues.invalid_utf8 += 1;
                String::from_utf8_lossy(line.bytes)
            }
        };
        if line.cut {
            issues.cut += 1;
        }
        let format = match self.format {
            Format::Auto if text.starts_with("{\"log\"") => Format::Docker,
            Format::Auto if parse_cri(&text).is_some() => Format::Cri,
            Format::Auto => Format::Plain,
            f => f,
        };
        match format {
            Format::Plain | Format::Auto => self.plain(line, text, emit),
            Format::Cri => match parse_cri(&text) {
                Some((time_ns, stream, partial, msg)) => {
                    self.join(line, time_ns, stream, msg, partial, issues, emit)
                }
                None => {
                    issues.malformed += 1;
                    self.plain(line, text, emit)
                }
            },
            Format::Docker => match serde_json::from_str::<DockerLine<'_>>(&text) {
                Ok(d) => {
                    let time_ns = d.time.as_deref().and_then(rfc3339_ns);
                    let stream = d.stream.as_deref().and_then(Stream::parse);
                    let (msg, partial) = match d.log.strip_suffix('\n') {
                        Some(m) => (m.strip_suffix('\r').unwrap_or(m), false),
                        None => (&*d.log, true),
                    };
                    self.join(line, time_ns, stream, msg, partial, issues, emit)
                }
                Err(_) => {
                    issues.malformed += 1;
                    self.plain(line, text, emit)
                }
            },
        }
    }

    fn plain(&mut self, line: &Line<'_>, text: Cow<'_, str>, emit: &mut impl FnMut(Framed)) {
        if let Some(p) = self.partial.take() {
            emit(p);
        }
        emit(Framed {
            text: text.into_owned(),
            time_ns: None,
            stream: None,
            start: line.start,
            end: line.end,
            lines: 1,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn join(
        &mut self,
        line: &Line<'_>,
        time_ns: Option<i64>,
        stream: Option<Stream>,
        msg: &str,
        partial: bool,
        issues: &mut FrameIssues,
        emit: &mut impl FnMut(Framed),
    ) {
        let record = match self.partial.take() {
            Some(mut p) if p.stream == stream => {
                let room = self.max_bytes.saturating_sub(p.text.len());
                if msg.len() > room {
                    issues.cut += 1;
                }
                p.text.push_str(floor_char(msg, room));
                p.end = line.end;
                p.lines += 1;
                p
            }
            other => {
                // A partial record of another stream cannot be continued by this line.
                if let Some(p) = other {
                    emit(p);
                }
                Framed {
                    text: msg.to_string(),
                    time_ns,
                    stream,
                    start: line.start,
                    end: line.end,
                    lines: 1,
                }
            }
        };
        if partial && record.text.len() < self.max_bytes {
            self.partial = Some(record);
        } else {
            emit(record);
        }
    }
}

/// `<time> <stream> <tag> <message>`: time in ns, stream, whether partial, message.
fn parse_cri(text: &str) -> Option<(Option<i64>, Option<Stream>, bool, &str)> {
    let mut parts = text.splitn(4, ' ');
    let time = parts.next()?;
    let stream = Stream::parse(parts.next()?)?;
    let tag = parts.next()?;
    let msg = parts.next().unwrap_or("");
    let partial = match tag.split(':').next()? {
        "P" => true,
        "F" => false,
        _ => return None,
    };
    let time_ns = Some(rfc3339_ns(time)?);
    Some((time_ns, Some(stream), partial, msg))
}

pub(crate) fn rfc3339_ns(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(format: Format, lines: &[&str]) -> (Vec<Framed>, Option<Framed>, FrameIssues) {
        let mut f = Framer::new(format, 1 << 20);
        let mut issues = FrameIssues::default();
        let mut out = Vec::new();
        let mut offset = 0;
        for l in lines {
            let line = Line {
                bytes: l.as_bytes(),
                start: offset,
                end: offset + l.len() as u64 + 1,
                cut: false,
            };
            offset = line.end;
            f.push(&line, &mut issues, &mut |r| out.push(r));
        }
        let rest = f.flush();
        (out, rest, issues)
    }

    #[test]
    fn cri_partial_lines_are_joined() {
        let (out, rest, issues) = frame(
            Format::Cri,
            &[
                "2024-05-01T10:00:00.000000001Z stdout P first part, ",
                "2024-05-01T10:00:00.000000002Z stdout P second part, ",
                "2024-05-01T10:00:00.000000003Z stdout F end",
                "2024-05-01T10:00:01Z stderr F oops",
                "2024-05-01T10:00:02Z stdout P waiting",
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text, "first part, second part, end");
        assert_eq!(out[0].time_ns, Some(1_714_557_600_000_000_001));
        assert_eq!(out[0].lines, 3);
        assert_eq!(out[0].start, 0);
        assert_eq!(out[1].text, "oops");
        assert_eq!(out[1].stream, Some(Stream::Stderr));
        // The last partial waits; its start is where a checkpoint must stop.
        let rest = rest.expect("a partial record");
        assert_eq!(rest.text, "waiting");
        assert_eq!(issues.malformed, 0);
    }

    #[test]
    fn docker_json_lines_are_decoded_and_joined() {
        let (out, _, issues) = frame(
            Format::Docker,
            &[
                r#"{"log":"hello \"world\"\n","stream":"stdout","time":"2024-05-01T10:00:00.5Z"}"#,
                r#"{"log":"part one ","stream":"stderr","time":"2024-05-01T10:00:01Z"}"#,
                r#"{"log":"part two\n","stream":"stderr","time":"2024-05-01T10:00:01Z"}"#,
            ],
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].text, "hello \"world\"");
        assert_eq!(out[0].time_ns, Some(1_714_557_600_500_000_000));
        assert_eq!(out[1].text, "part one part two");
        assert_eq!(out[1].stream, Some(Stream::Stderr));
        assert_eq!(issues.malformed, 0);
    }

    #[test]
    fn auto_detects_per_line_and_keeps_malformed_lines() {
        let (out, rest, issues) = frame(
            Format::Auto,
            &[
                "2024-05-01T10:00:00Z stdout F cri line",
                r#"{"log":"docker line\n","stream":"stdout","time":"2024-05-01T10:00:00Z"}"#,
                "just text",
            ],
        );
        let texts: Vec<_> = out.iter().map(|f| f.text.as_str()).collect();
        assert_eq!(texts, ["cri line", "docker line", "just text"]);
        assert!(rest.is_none());
        assert_eq!(issues.malformed, 0);
        let (out, rest, issues) = frame(Format::Cri, &["not cri at all"]);
        assert_eq!(out[0].text, "not cri at all");
        assert!(rest.is_none());
        assert_eq!(issues.malformed, 1);
    }

    #[test]
    fn invalid_utf8_is_replaced_and_counted() {
        let mut f = Framer::new(Format::Plain, 100);
        let mut issues = FrameIssues::default();
        let line = Line {
            bytes: b"caf\xe9 ok",
            start: 0,
            end: 8,
            cut: false,
        };
        let mut out = Vec::new();
        f.push(&line, &mut issues, &mut |r| out.push(r));
        assert_eq!(out[0].text, "caf\u{fffd} ok");
        assert_eq!(issues.invalid_utf8, 1);
    }
}
