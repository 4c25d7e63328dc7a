//! The Prometheus text exposition format (0.0.4, and the OpenMetrics lines it shares):
//! `# HELP`, `# TYPE`, and `name{label="value",...} value [timestamp_ms]` lines.
//!
//! Hand-written rather than taken from a crate: the crates on offer either fold histograms
//! into one value and stamp samples with the local clock (`prometheus-parse`) or are
//! LGPL-licensed (`openmetrics-parser`); a scrape needs every line as its own series with its
//! exact name, the escapes of the format, and a clear error on a broken line (which fails the
//! scrape, as in Prometheus).

use std::collections::HashMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedSample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

/// A parsed exposition: samples in order, and the `TYPE` and `HELP` of metric families.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<ParsedSample>,
    pub types: HashMap<String, String>,
    pub help: HashMap<String, String>,
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// `\\` is a backslash and `\n` a newline; any other backslash stays as written. One pass, so
/// an escaped backslash before `n` stays a backslash and an `n`.
fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('\\') => out.push('\\'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Parses one sample line (without its trailing newline).
fn parse_sample(line: &str) -> Result<ParsedSample, String> {
    let mut chars = line.char_indices().peekable();
    let name_end = match chars.peek() {
        Some((_, c)) if is_name_start(*c) => line
            .char_indices()
            .find(|(_, c)| !is_name_char(*c))
            .map_or(line.len(), |(i, _)| i),
        _ => return Err("a sample line must start with a metric name".into()),
    };
    let name = line[..name_end].to_string();
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after) = rest.strip_prefix('{') {
        rest = after;
        loop {
            rest = rest.trim_start();
            if let Some(after) = rest.strip_prefix('}') {
                rest = after;
                break;
            }
            let end = rest
                .char_indices()
                .find(|(_, c)| !is_name_char(*c))
                .map_or(rest.len(), |(i, _)| i);
            if end == 0 || !rest.starts_with(is_name_start) {
                return Err(format!("bad label name at {rest:?}"));
            }
            let label = rest[..end].to_string();
            rest = rest[end..].trim_start();
            rest = rest
                .strip_prefix('=')
                .ok_or_else(|| format!("expected '=' after label {label}"))?
                .trim_start();
            rest = rest
                .strip_prefix('"')
                .ok_or_else(|| format!("expected a quoted value for label {label}"))?;
            let mut value = String::new();
            let mut escaped = false;
            let mut close = None;
            for (i, c) in rest.char_indices() {
                match (escaped, c) {
                    (true, 'n') => {
                        value.push('\n');
                        escaped = false;
                    }
                    (true, c) => {
                        value.push(c);
                        escaped = false;
                    }
                    (false, '\\') => escaped = true,
                    (false, '"') => {
                        close = Some(i);
                        break;
                    }
                    (false, c) => value.push(c),
                }
            }
            let close = close.ok_or_else(|| format!("unterminated value of label {label}"))?;
            rest = rest[close + 1..].trim_start();
            labels.push((label, value));
            if let Some(after) = rest.strip_prefix(',') {
                rest = after;
            } else if !rest.starts_with('}') {
                return Err(format!(
                    "expected ',' or '}}' after label value at {rest:?}"
                ));
            }
        }
    }
    let mut fields = rest.split_whitespace();
    let value = fields
        .next()
        .and_then(parse_float)
        .ok_or_else(|| format!("missing or bad value for {name}"))?;
    let timestamp_ms = match fields.next() {
        None => None,
        Some(t) => Some(
            t.parse::<i64>()
                .map_err(|_| format!("bad timestamp {t:?}"))?,
        ),
    };
    if fields.next().is_some() {
        return Err(format!("unexpected text after the sample of {name}"));
    }
    Ok(ParsedSample {
        name,
        labels,
        value,
        timestamp_ms,
    })
}

/// Parses a whole exposition; the first broken line is the error (with its line number).
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut out = Exposition::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, char::is_whitespace);
            match (parts.next(), parts.next(), parts.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    out.types.insert(name.to_string(), kind.trim().to_string());
                }
                (Some("HELP"), Some(name), help) => {
                    out.help
                        .insert(name.to_string(), unescape_help(help.unwrap_or("").trim()));
                }
                _ => {}
            }
            continue;
        }
        out.samples
            .push(parse_sample(line).map_err(|e| format!("line {}: {e}", n + 1))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_unescapes_in_one_pass() {
        assert_eq!(unescape_help(r"a\\nb"), "a\\nb");
        assert_eq!(unescape_help(r"a\nb\\"), "a\nb\\");
        assert_eq!(unescape_help(r"x\ty\"), "x\\ty\\");
    }

    #[test]
    fn parses_the_format_with_escapes_and_special_values() {
        let text = "# HELP http_requests_total Requests\\nserved.\n# TYPE http_requests_total counter\nhttp_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\nhttp_requests_total{ path = \"a\\\"b\\\\c\\nd\" , } 3\n# EOF-like comment\nmetric_without_labels +Inf\nnan_metric NaN\n";
        let e = parse(text).unwrap();
        assert_eq!(e.types["http_requests_total"], "counter");
        assert_eq!(e.help["http_requests_total"], "Requests\nserved.");
        assert_eq!(e.samples.len(), 4);
        assert_eq!(e.samples[0].timestamp_ms, Some(1395066363000));
        assert_eq!(
            e.samples[1].labels,
            vec![("path".to_string(), "a\"b\\c\nd".to_string())]
        );
        assert_eq!(e.samples[2].value, f64::INFINITY);
        assert!(e.samples[3].value.is_nan());
    }

    #[test]
    fn broken_lines_are_errors() {
        for bad in [
            "1abc 1",
            "m{a=1} 2",
            "m{a=\"1\" 2",
            "m{a=\"1\"} x",
            "m 1 2 3",
            "m{=\"x\"} 1",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
