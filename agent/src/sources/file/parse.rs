//! Parsing a record's message into log fields: JSON, logfmt or a regex with named captures,
//! and detection of the timestamp and severity at the start of plain lines.
//!
//! Invariants:
//! - Parsing never fails a record: a message that does not parse is kept whole as the body
//!   (and counted by the caller through [`Parsed::failed`]).
//! - Well-known keys fill the record's own fields (body: `message`/`msg`/`log`/`body`; time:
//!   `time`/`timestamp`/`ts`/`@timestamp`; severity: `level`/`severity`/`lvl`; `trace_id`,
//!   `span_id`); every other key becomes a log attribute of its JSON type (nested values as
//!   JSON text). Without a body key the body is the whole message.
//! - Times without a zone are read as UTC; syslog times without a year get the current one.

use chrono::{Datelike, NaiveDateTime, Utc};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use regex::Regex;

use super::config::Parser;
use super::framing::rfc3339_ns;

/// What a record's message gave.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub body: String,
    pub time_ns: Option<i64>,
    /// Severity number (OTLP scale) and the text as written.
    pub severity: Option<(i32, String)>,
    pub attributes: Vec<KeyValue>,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    /// The parser could not read the message (it is the body, as is).
    pub failed: bool,
}

pub struct MessageParser {
    kind: Parser,
    regex: Option<Regex>,
    year: i32,
}

impl MessageParser {
    /// `pattern` is the regex of `Parser::Regex` (validated before).
    pub fn new(kind: Parser, pattern: Option<&str>) -> Self {
        Self {
            kind,
            regex: pattern.and_then(|p| Regex::new(p).ok()),
            year: Utc::now().year(),
        }
    }

    pub fn parse(&self, text: String) -> Parsed {
        let mut p = match self.kind {
            Parser::None => Parsed::default(),
            Parser::Json => self.json(&text),
            Parser::Logfmt => self.logfmt(&text),
            Parser::Regex => self.regex(&text),
        };
        if p.failed || self.kind == Parser::None {
            if p.time_ns.is_none() {
                p.time_ns = detect_time(&text, self.year);
            }
            if p.severity.is_none() {
                p.severity = detect_severity(&text);
            }
        }
        if p.body.is_empty() {
            p.body = text;
        }
        p
    }

    fn json(&self, text: &str) -> Parsed {
        let mut p = Parsed::default();
        match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
            Ok(map) => {
                for (k, v) in map {
                    let field = match v {
                        serde_json::Value::String(s) => Field::Str(s),
                        serde_json::Value::Bool(b) => Field::Bool(b),
                        serde_json::Value::Number(n) => match n.as_i64() {
                            Some(i) => Field::Int(i),
                            None => Field::Float(n.as_f64().unwrap_or(f64::NAN)),
                        },
                        serde_json::Value::Null => continue,
                        other => Field::Str(other.to_string()),
                    };
                    self.field(&mut p, &k, field);
                }
            }
            Err(_) => p.failed = true,
        }
        p
    }

    fn logfmt(&self, text: &str) -> Parsed {
        let mut p = Parsed::default();
        match logfmt_pairs(text) {
            Some(pairs) if !pairs.is_empty() => {
                for (k, v) in pairs {
                    self.field(&mut p, &k, Field::Str(v));
                }
            }
            _ => p.failed = true,
        }
        p
    }

    fn regex(&self, text: &str) -> Parsed {
        let mut p = Parsed::default();
        let Some(re) = &self.regex else {
            p.failed = true;
            return p;
        };
        match re.captures(text) {
            Some(caps) => {
                for name in re.capture_names().flatten() {
                    if let Some(m) = caps.name(name) {
                        self.field(&mut p, name, Field::Str(m.as_str().to_string()));
                    }
                }
            }
            None => p.failed = true,
        }
        p
    }

    fn field(&self, p: &mut Parsed, key: &str, value: Field) {
        match (key, value) {
            ("message" | "msg" | "log" | "body", Field::Str(s)) if p.body.is_empty() => {
                p.body = s;
            }
            ("time" | "timestamp" | "ts" | "@timestamp" | "t", v) if p.time_ns.is_none() => {
                p.time_ns = match &v {
                    Field::Str(s) => parse_time(s, self.year),
                    Field::Int(i) => Some(epoch_ns_int(*i)),
                    Field::Float(f) => Some(epoch_ns(*f)),
                    Field::Bool(_) => None,
                };
                if p.time_ns.is_none() {
                    p.attributes.push(v.into_kv(key));
                }
            }
            ("level" | "severity" | "lvl" | "loglevel" | "log.level", v)
                if p.severity.is_none() =>
            {
                p.severity = match &v {
                    Field::Str(s) => severity_of(s).map(|n| (n, s.clone())),
                    Field::Int(i) => numeric_level(*i).map(|n| (n, i.to_string())),
                    _ => None,
                };
                if p.severity.is_none() {
                    p.attributes.push(v.into_kv(key));
                }
            }
            ("trace_id" | "traceId" | "traceid", Field::Str(s))
                if p.trace_id.is_empty() && s.len() == 32 =>
            {
                match hex_bytes(&s) {
                    Some(b) => p.trace_id = b,
                    None => p.attributes.push(Field::Str(s).into_kv(key)),
                }
            }
            ("span_id" | "spanId" | "spanid", Field::Str(s))
                if p.span_id.is_empty() && s.len() == 16 =>
            {
                match hex_bytes(&s) {
                    Some(b) => p.span_id = b,
                    None => p.attributes.push(Field::Str(s).into_kv(key)),
                }
            }
            (_, v) => p.attributes.push(v.into_kv(key)),
        }
    }
}

enum Field {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Field {
    fn into_kv(self, key: &str) -> KeyValue {
        let value = match self {
            Field::Str(s) => Value::StringValue(s),
            Field::Int(i) => Value::IntValue(i),
            Field::Float(f) => Value::DoubleValue(f),
            Field::Bool(b) => Value::BoolValue(b),
        };
        KeyValue {
            key: key.to_string(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    let b = hex::decode(s).ok()?;
    b.iter().any(|x| *x != 0).then_some(b)
}

/// Seconds, milliseconds, microseconds or nanoseconds since the epoch, told apart by size.
fn epoch_ns(v: f64) -> i64 {
    let a = v.abs();
    let ns = if a < 1e11 {
        v * 1e9
    } else if a < 1e14 {
        v * 1e6
    } else if a < 1e17 {
        v * 1e3
    } else {
        v
    };
    ns as i64
}

/// [`epoch_ns`] for integers, exact.
fn epoch_ns_int(v: i64) -> i64 {
    let a = v.unsigned_abs();
    if a < 100_000_000_000 {
        v.saturating_mul(1_000_000_000)
    } else if a < 100_000_000_000_000 {
        v.saturating_mul(1_000_000)
    } else if a < 100_000_000_000_000_000 {
        v.saturating_mul(1_000)
    } else {
        v
    }
}

/// Naive formats tried at the start of a line or in a time field, most common first.
const NAIVE_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y/%m/%d %H:%M:%S%.f",
    "%y/%m/%d %H:%M:%S",
    "[%a %b %d %H:%M:%S %Y]",
    "%d/%b/%Y:%H:%M:%S",
    // HDFS: `081109 203615`.
    "%y%m%d %H%M%S",
];

/// A time field's value: RFC 3339, a common naive format, or an epoch number.
fn parse_time(s: &str, year: i32) -> Option<i64> {
    if let Some(ns) = rfc3339_ns(s) {
        return Some(ns);
    }
    if let Ok(n) = s.parse::<i64>() {
        return Some(epoch_ns_int(n));
    }
    if let Ok(n) = s.parse::<f64>() {
        return Some(epoch_ns(n));
    }
    detect_time(s, year)
}

/// The timestamp a plain line starts with, if it starts with one of the usual formats.
pub fn detect_time(text: &str, year: i32) -> Option<i64> {
    let head = strata_schema::text::floor_char(text, 40);
    let first = head.as_bytes().first()?;
    if !(first.is_ascii_alphanumeric() || *first == b'[') {
        return None;
    }
    // RFC 3339 up to the first space.
    let token = head.split(' ').next().unwrap_or(head);
    if token.len() >= 20
        && let Some(ns) = rfc3339_ns(token)
    {
        return Some(ns);
    }
    if let Some(ns) = iso_date_time(head.as_bytes()) {
        return Some(ns);
    }
    // Comma decimal separators (log4j) read like dots.
    let normalized = head.replacen(',', ".", 1);
    for f in NAIVE_FORMATS {
        if let Ok((t, _)) = NaiveDateTime::parse_and_remainder(&normalized, f)
            && t.year() >= 1970
        {
            return t.and_utc().timestamp_nanos_opt();
        }
    }
    // No year: syslog `Jun 14 15:16:01`, Android logcat `03-17 16:13:38.811`.
    if head.len() >= 14 {
        let short = [
            ("%b %e %H:%M:%S", 15),
            ("%m-%d %H:%M:%S%.f", 18),
            ("%m-%d %H:%M:%S", 14),
        ];
        for (f, len) in short {
            let Some(prefix) = head.get(..len.min(head.len())) else {
                continue;
            };
            let with_year = format!("{year} {prefix}");
            if let Ok((t, _)) = NaiveDateTime::parse_and_remainder(&with_year, &format!("%Y {f}")) {
                // A date ahead of now by more than a day is from last year (logs of December
                // read in January).
                let t = if t.and_utc() > Utc::now() + chrono::Duration::days(1) {
                    t.with_year(year - 1).unwrap_or(t)
                } else {
                    t
                };
                return t.and_utc().timestamp_nanos_opt();
            }
        }
    }
    None
}

/// `YYYY-MM-DD HH:MM:SS[.,]fraction` (or with `T`), the most common start of a log line, read
/// without chrono's format interpreter (which costs more than the rest of a line's handling).
fn iso_date_time(b: &[u8]) -> Option<i64> {
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        b.get(r.clone())?.iter().try_fold(0u32, |acc, c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    };
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let date =
        chrono::NaiveDate::from_ymd_opt(digits(0..4)? as i32, digits(5..7)?, digits(8..10)?)?;
    let mut nanos = 0u32;
    let mut end = 19;
    if matches!(b.get(19), Some(b'.' | b',')) {
        let mut scale = 100_000_000u32;
        end = 20;
        while let Some(c) = b.get(end).filter(|c| c.is_ascii_digit()) {
            nanos += u32::from(c - b'0') * scale;
            scale /= 10;
            end += 1;
        }
    }
    // A zone suffix (`Z`, `+02:00`) is RFC 3339, read by the caller's other paths.
    if matches!(b.get(end), Some(b'Z' | b'+'))
        || (b.get(end) == Some(&b'-') && b.get(end + 1).is_some_and(u8::is_ascii_digit))
    {
        return None;
    }
    let t = date.and_hms_nano_opt(digits(11..13)?, digits(14..16)?, digits(17..19)?, nanos)?;
    t.and_utc().timestamp_nanos_opt()
}

pub use strata_schema::logs::severity_of;

/// Numeric levels of bunyan / pino (10 trace .. 60 fatal).
fn numeric_level(level: i64) -> Option<i32> {
    Some(match level {
        10 => 1,
        20 => 5,
        30 => 9,
        40 => 13,
        50 => 17,
        60 => 21,
        _ => return None,
    })
}

/// The severity a plain line names near its start: an upper-case level word (`ERROR`), or
/// one in brackets or after `level=` in any case (`[error]`, `level=warn`).
pub fn detect_severity(text: &str) -> Option<(i32, String)> {
    let head = strata_schema::text::floor_char(text, 200);
    let bytes = head.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let word = &head[start..i];
        if word.len() < 3 || word.len() > 11 {
            continue;
        }
        let upper = word.bytes().all(|b| b.is_ascii_uppercase());
        let bracketed = start > 0 && bytes[start - 1] == b'[' && bytes.get(i) == Some(&b']');
        let keyed = head[..start].ends_with("level=");
        if (upper || bracketed || keyed)
            && let Some(n) = severity_of(word)
        {
            return Some((n, word.to_string()));
        }
    }
    None
}

/// `key=value key2="quoted \"value\""` pairs; `None` when the text is not logfmt.
fn logfmt_pairs(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(key_start, _)) = chars.peek() else {
            break;
        };
        let mut key_end = text.len();
        let mut has_value = false;
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' {
                key_end = i;
                has_value = true;
                chars.next();
                break;
            }
            if c.is_whitespace() || c == '"' {
                key_end = i;
                break;
            }
            chars.next();
        }
        let key = &text[key_start..key_end];
        if key.is_empty() {
            return None;
        }
        if !has_value {
            // A bare word: logfmt allows keys without values, but prose is not logfmt.
            if chars.peek().is_some_and(|(_, c)| *c == '"') {
                return None;
            }
            out.push((key.to_string(), String::new()));
            continue;
        }
        let mut value = String::new();
        if chars.next_if(|(_, c)| *c == '"').is_some() {
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            value.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                        }
                    }
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some((_, c)) = chars.next_if(|(_, c)| !c.is_whitespace()) {
                value.push(c);
            }
        }
        out.push((key.to_string(), value));
    }
    // Mostly bare words is prose, not logfmt.
    let valued = out.iter().filter(|(_, v)| !v.is_empty()).count();
    (valued * 2 >= out.len()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr<'a>(p: &'a Parsed, key: &str) -> Option<&'a Value> {
        p.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn json_fills_known_fields_and_keeps_the_rest() {
        let p = MessageParser::new(Parser::Json, None).parse(
            r#"{"time":"2024-05-01T10:00:00Z","level":"warn","msg":"disk low","free":12,"ratio":0.5,"ok":false,"ctx":{"a":1},"trace_id":"0102030405060708090a0b0c0d0e0f10"}"#.into(),
        );
        assert_eq!(p.body, "disk low");
        assert_eq!(p.time_ns, Some(1_714_557_600_000_000_000));
        assert_eq!(p.severity, Some((13, "warn".into())));
        assert_eq!(attr(&p, "free"), Some(&Value::IntValue(12)));
        assert_eq!(attr(&p, "ratio"), Some(&Value::DoubleValue(0.5)));
        assert_eq!(attr(&p, "ok"), Some(&Value::BoolValue(false)));
        assert_eq!(
            attr(&p, "ctx"),
            Some(&Value::StringValue(r#"{"a":1}"#.into()))
        );
        assert_eq!(p.trace_id.len(), 16);
        assert!(!p.failed);
        // Epoch milliseconds and pino levels.
        let p = MessageParser::new(Parser::Json, None)
            .parse(r#"{"time":1714557600123,"level":50,"msg":"x"}"#.into());
        assert_eq!(p.time_ns, Some(1_714_557_600_123_000_000));
        assert_eq!(p.severity.map(|s| s.0), Some(17));
    }

    #[test]
    fn a_message_that_does_not_parse_is_kept_whole() {
        let p = MessageParser::new(Parser::Json, None)
            .parse("2024-05-01 10:00:00,250 ERROR not json".into());
        assert!(p.failed);
        assert_eq!(p.body, "2024-05-01 10:00:00,250 ERROR not json");
        assert_eq!(p.time_ns, Some(1_714_557_600_250_000_000));
        assert_eq!(p.severity, Some((17, "ERROR".into())));
    }

    #[test]
    fn logfmt_pairs_with_quotes() {
        let p = MessageParser::new(Parser::Logfmt, None).parse(
            r#"ts=2024-05-01T10:00:00Z level=info msg="user \"bob\" logged in" user=bob latency=12ms"#
                .into(),
        );
        assert_eq!(p.body, r#"user "bob" logged in"#);
        assert_eq!(p.severity, Some((9, "info".into())));
        assert_eq!(p.time_ns, Some(1_714_557_600_000_000_000));
        assert_eq!(attr(&p, "user"), Some(&Value::StringValue("bob".into())));
        assert_eq!(
            attr(&p, "latency"),
            Some(&Value::StringValue("12ms".into()))
        );
        let p = MessageParser::new(Parser::Logfmt, None).parse("just some prose here".into());
        assert!(p.failed);
        assert_eq!(p.body, "just some prose here");
    }

    #[test]
    fn regex_named_captures() {
        let parser = MessageParser::new(
            Parser::Regex,
            Some(r"^(?P<time>\S+ \S+) (?P<level>\w+) \[(?P<thread>[^\]]+)\] (?P<message>.*)$"),
        );
        let p = parser.parse("2015-10-18 18:01:47,978 INFO [main] started".into());
        assert_eq!(p.body, "started");
        assert_eq!(p.severity, Some((9, "INFO".into())));
        assert_eq!(p.time_ns, Some(1_445_191_307_978_000_000));
        assert_eq!(attr(&p, "thread"), Some(&Value::StringValue("main".into())));
        assert!(parser.parse("no match".into()).failed);
    }

    #[test]
    fn plain_lines_detect_time_and_severity() {
        let year = 2024;
        let cases: &[(&str, Option<i64>, Option<i32>)] = &[
            (
                "2015-07-29 17:41:44,747 - INFO  [QuorumPeer] - Notification",
                Some(1_438_191_704_747_000_000),
                Some(9),
            ),
            (
                "[Sun Dec 04 04:47:44 2005] [error] mod_jk child",
                Some(1_133_671_664_000_000_000),
                Some(17),
            ),
            (
                "Jun 14 15:16:01 combo sshd(pam_unix)[19939]: authentication failure",
                Some(1_718_378_161_000_000_000),
                None,
            ),
            (
                "03-17 16:13:38.811  1702  2395 D WindowManager: printFreezing",
                Some(1_710_692_018_811_000_000),
                None,
            ),
            (
                "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1",
                Some(1_226_262_975_000_000_000),
                Some(9),
            ),
            (
                "17/06/09 20:10:40 INFO executor.Backend: Registered",
                Some(1_497_039_040_000_000_000),
                Some(9),
            ),
            (
                "2024-05-01T10:00:00.5+02:00 WARN x",
                Some(1_714_550_400_500_000_000),
                Some(13),
            ),
            ("plain text without either", None, None),
            ("Information about INFOrmation", None, None),
        ];
        for (line, time, sev) in cases {
            assert_eq!(detect_time(line, year), *time, "{line}");
            assert_eq!(detect_severity(line).map(|s| s.0), *sev, "{line}");
        }
    }
}
