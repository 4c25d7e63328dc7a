//! Multiline aggregation: lines of one record (a Java stack trace, a Python traceback) joined
//! into one record, by a pattern for the first line or for continuation lines, with a timeout.
//!
//! Invariants:
//! - Lines are joined with `\n` in file order; a record holds at most `max_lines` lines.
//! - The record being built is emitted when a line cannot join it, when it reached
//!   `max_lines`, when no line came for `timeout`, or at [`Multiline::flush`].
//! - While a record is being built, [`Multiline::pending_start`] is the offset of its first
//!   line, so a checkpoint never passes it.

use std::time::{Duration, Instant};

use regex::Regex;

use super::config::MultilineConfig;
use super::framing::Framed;

enum Rule {
    Start(Regex),
    Continuation(Regex),
}

pub struct Multiline {
    rule: Rule,
    timeout: Duration,
    max_lines: usize,
    max_bytes: usize,
    pending: Option<(Framed, Instant)>,
}

impl Multiline {
    /// `None` when the configuration sets no pattern (validated before).
    pub fn new(config: &MultilineConfig, max_bytes: usize) -> Option<Self> {
        let rule = match (&config.start, &config.continuation) {
            (Some(p), None) => Rule::Start(Regex::new(p).ok()?),
            (None, Some(p)) => Rule::Continuation(Regex::new(p).ok()?),
            _ => return None,
        };
        Some(Self {
            rule,
            timeout: Duration::from_millis(config.timeout_ms),
            max_lines: config.max_lines.max(1),
            max_bytes,
            pending: None,
        })
    }

    pub fn pending_start(&self) -> Option<u64> {
        self.pending.as_ref().map(|(f, _)| f.start)
    }

    /// Adds a record from framing; emits the record it completes, if any.
    pub fn push(&mut self, next: Framed, now: Instant, emit: &mut impl FnMut(Framed)) {
        let joins = match &self.rule {
            Rule::Start(re) => !re.is_match(&next.text),
            Rule::Continuation(re) => re.is_match(&next.text),
        };
        match self.pending.take() {
            Some((mut record, _))
                if joins
                    && record.lines < self.max_lines
                    && record.text.len() + 1 + next.text.len() <= self.max_bytes =>
            {
                record.text.push('\n');
                record.text.push_str(&next.text);
                record.end = next.end;
                record.lines += next.lines;
                self.pending = Some((record, now));
            }
            older => {
                if let Some((record, _)) = older {
                    emit(record);
                }
                self.pending = Some((next, now));
            }
        }
    }

    /// Emits the record being built if no line came for the timeout.
    pub fn expire(&mut self, now: Instant, emit: &mut impl FnMut(Framed)) {
        if let Some((_, last)) = &self.pending
            && now.duration_since(*last) >= self.timeout
            && let Some((record, _)) = self.pending.take()
        {
            emit(record);
        }
    }

    /// When the record being built times out, if one is.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.as_ref().map(|(_, last)| *last + self.timeout)
    }

    pub fn flush(&mut self) -> Option<Framed> {
        self.pending.take().map(|(f, _)| f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(text: &str, start: u64) -> Framed {
        Framed {
            text: text.to_string(),
            time_ns: None,
            stream: None,
            start,
            end: start + text.len() as u64 + 1,
            lines: 1,
        }
    }

    fn run(config: MultilineConfig, lines: &[&str]) -> (Vec<String>, Option<u64>) {
        let mut m = Multiline::new(&config, 1 << 20).expect("a rule");
        let mut out = Vec::new();
        let now = Instant::now();
        let mut offset = 0;
        for l in lines {
            let f = framed(l, offset);
            offset = f.end;
            m.push(f, now, &mut |r| out.push(r.text));
        }
        let pending = m.pending_start();
        out.extend(m.flush().map(|f| f.text));
        (out, pending)
    }

    const JAVA: &[&str] = &[
        "2015-10-18 18:01:47,978 INFO [main] org.apache.hadoop.Main: starting",
        "2015-10-18 18:01:48,001 ERROR [main] org.apache.hadoop.Main: failed",
        "java.io.IOException: disk gone",
        "\tat org.apache.hadoop.fs.Disk.read(Disk.java:42)",
        "\tat org.apache.hadoop.Main.main(Main.java:7)",
        "Caused by: java.lang.IllegalStateException: closed",
        "\t... 2 more",
        "2015-10-18 18:01:49,000 INFO [main] org.apache.hadoop.Main: retrying",
    ];

    #[test]
    fn start_pattern_joins_a_java_stack_trace() {
        let config = MultilineConfig {
            start: Some(r"^\d{4}-\d{2}-\d{2} ".into()),
            ..MultilineConfig::default()
        };
        let (out, pending) = run(config, JAVA);
        assert_eq!(out.len(), 3);
        assert!(out[1].starts_with("2015-10-18 18:01:48,001 ERROR"));
        assert!(out[1].ends_with("\t... 2 more"));
        assert_eq!(out[1].lines().count(), 6);
        // The last record waits for a line or the timeout.
        assert!(pending.is_some());
    }

    #[test]
    fn continuation_pattern_joins_a_java_stack_trace() {
        let config = MultilineConfig {
            continuation: Some(
                r"^(\s+at |\s+\.\.\. \d+ more|Caused by:|[\w.]+(Exception|Error):)".into(),
            ),
            ..MultilineConfig::default()
        };
        let (out, _) = run(config, JAVA);
        assert_eq!(out.len(), 3, "{out:#?}");
        assert_eq!(out[1].lines().count(), 6);
    }

    #[test]
    fn timeout_and_max_lines_end_a_record() {
        let config = MultilineConfig {
            continuation: Some(r"^\s".into()),
            timeout_ms: 50,
            max_lines: 2,
            ..MultilineConfig::default()
        };
        let mut m = Multiline::new(&config, 1 << 20).expect("a rule");
        let mut out = Vec::new();
        let t0 = Instant::now();
        for (i, l) in ["a", " b", " c"].iter().enumerate() {
            m.push(framed(l, i as u64 * 3), t0, &mut |r| out.push(r.text));
        }
        assert_eq!(out, ["a\n b"]);
        m.expire(t0 + Duration::from_millis(10), &mut |r| out.push(r.text));
        assert_eq!(out.len(), 1);
        m.expire(t0 + Duration::from_millis(60), &mut |r| out.push(r.text));
        assert_eq!(out, ["a\n b", " c"]);
        assert!(m.pending_start().is_none());
    }
}
