//! The LogQL subset of log queries: a stream selector, then line filters and label filters,
//! compiled to one SQL predicate over the `logs` table.
//!
//! ```text
//! {service_name="checkout", level=~"warn|error"} |= "timeout" != "retry" |~ "id=[0-9]+" | trace_id="4bf9..."
//! ```
//!
//! Labels are the stream labels Loki gives OTLP logs (`service_name`, `service_namespace`,
//! `deployment_environment`, `host_name`, `k8s_*`), `level` (the lowercased severity text, also
//! as `detected_level`), and the structured metadata `trace_id` and `span_id`. A label a record
//! does not have is the empty string, as in Loki. Regexes are anchored for labels and not for
//! lines, as in Loki.
//!
//! Hand-written: no maintained Rust crate parses LogQL. Parsers (`| json`), formatters and
//! metric queries are refused with an error that names them.

use strata_schema::columns;

use crate::traces::filter::quote;

/// A label of a log record, as a SQL expression that is never null.
pub fn label_sql(label: &str) -> Option<String> {
    let column = match label {
        "level" | "detected_level" => return Some(format!("lower({})", columns::SEVERITY_TEXT)),
        "service_name" => columns::SERVICE_NAME,
        "service_namespace" => columns::SERVICE_NAMESPACE,
        "deployment_environment" => columns::DEPLOYMENT_ENVIRONMENT,
        "host_name" => columns::HOST_NAME,
        "k8s_namespace_name" => columns::K8S_NAMESPACE_NAME,
        "k8s_pod_name" => columns::K8S_POD_NAME,
        "k8s_container_name" => columns::K8S_CONTAINER_NAME,
        "k8s_node_name" => columns::K8S_NODE_NAME,
        "k8s_deployment_name" => columns::K8S_DEPLOYMENT_NAME,
        "trace_id" => columns::TRACE_ID,
        "span_id" => columns::SPAN_ID,
        _ => return None,
    };
    Some(format!("coalesce({column}, '')"))
}

/// Stream labels, in the order answers list them.
pub const STREAM_LABELS: [&str; 10] = [
    "service_name",
    "service_namespace",
    "deployment_environment",
    "host_name",
    "k8s_namespace_name",
    "k8s_pod_name",
    "k8s_container_name",
    "k8s_node_name",
    "k8s_deployment_name",
    "level",
];

/// Per-record labels (Loki's structured metadata).
pub const METADATA_LABELS: [&str; 2] = ["trace_id", "span_id"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Re,
    NotRe,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Matcher {
    pub label: String,
    pub op: Op,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    /// A line filter: `|=`, `!=`, `|~`, `!~` (the op's `Eq` is "contains").
    Line(Op, String),
    /// A label filter after the selector: `| label op "value"`.
    Label(Matcher),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogQuery {
    pub selector: Vec<Matcher>,
    pub stages: Vec<Stage>,
}

impl Matcher {
    fn matches_empty(&self) -> bool {
        match self.op {
            Op::Eq => self.value.is_empty(),
            Op::Ne => !self.value.is_empty(),
            Op::Re => anchored(&self.value).is_ok_and(|r| r.is_match("")),
            Op::NotRe => !anchored(&self.value).is_ok_and(|r| r.is_match("")),
        }
    }

    fn sql(&self) -> String {
        let expr = label_sql(&self.label).unwrap_or_else(|| "''".into());
        let value = quote(&self.value);
        match self.op {
            Op::Eq => format!("{expr} = {value}"),
            Op::Ne => format!("{expr} <> {value}"),
            Op::Re => format!("regexp_like({expr}, {})", quote(&anchor(&self.value))),
            Op::NotRe => format!("NOT regexp_like({expr}, {})", quote(&anchor(&self.value))),
        }
    }
}

fn anchor(re: &str) -> String {
    format!("^(?:{re})$")
}

fn anchored(re: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&anchor(re))
}

impl LogQuery {
    /// The SQL predicate over `logs` of the whole query.
    pub fn sql(&self) -> String {
        let body = format!("coalesce({}, '')", columns::BODY);
        let mut parts: Vec<String> = self.selector.iter().map(Matcher::sql).collect();
        for stage in &self.stages {
            parts.push(match stage {
                Stage::Label(m) => m.sql(),
                Stage::Line(Op::Eq, text) => format!("strpos({body}, {}) > 0", quote(text)),
                Stage::Line(Op::Ne, text) => format!("strpos({body}, {}) = 0", quote(text)),
                Stage::Line(Op::Re, re) => format!("regexp_like({body}, {})", quote(re)),
                Stage::Line(Op::NotRe, re) => format!("NOT regexp_like({body}, {})", quote(re)),
            });
        }
        format!("({})", parts.join(") AND ("))
    }
}

const UNSUPPORTED_STAGES: [&str; 11] = [
    "json",
    "logfmt",
    "pattern",
    "regexp",
    "unpack",
    "line_format",
    "label_format",
    "drop",
    "keep",
    "decolorize",
    "unwrap",
];

/// Parses a LogQL log query.
pub fn parse(query: &str) -> Result<LogQuery, String> {
    let mut p = Parser { src: query, pos: 0 };
    p.skip_ws();
    if p.peek() != Some('{') {
        let word = p.ident().unwrap_or_default();
        return Err(if word.is_empty() {
            "a log query starts with a stream selector such as {service_name=\"checkout\"}".into()
        } else {
            format!(
                "metric queries ({word}(...)) are not supported here; use PromQL on the span \
                 metrics or SQL over the logs table"
            )
        });
    }
    let selector = p.selector()?;
    if selector.iter().all(Matcher::matches_empty) {
        return Err(
            "queries require at least one regexp or equality matcher that does not \
                    have an empty-compatible value, e.g. {service_name=\"checkout\"}"
                .into(),
        );
    }
    let mut stages = Vec::new();
    loop {
        p.skip_ws();
        let Some(c) = p.peek() else { break };
        let two = p.src[p.pos..].get(..2).unwrap_or("");
        let line_op = match two {
            "|=" => Some(Op::Eq),
            "!=" => Some(Op::Ne),
            "|~" => Some(Op::Re),
            "!~" => Some(Op::NotRe),
            _ => None,
        };
        if let Some(op) = line_op {
            p.pos += 2;
            p.skip_ws();
            let text = p.string()?;
            if matches!(op, Op::Re | Op::NotRe) {
                regex::Regex::new(&text).map_err(|e| format!("line filter regex {text:?}: {e}"))?;
            }
            stages.push(Stage::Line(op, text));
        } else if c == '|' {
            p.pos += 1;
            p.skip_ws();
            let label = p.ident().ok_or_else(|| p.error("a label filter after |"))?;
            if UNSUPPORTED_STAGES.contains(&label.as_str()) {
                return Err(format!(
                    "the LogQL stage `{label}` is not supported; filter lines with |= |~ != !~ \
                     and labels with | label=\"value\""
                ));
            }
            let op = p.op()?;
            let value = p.string()?;
            stages.push(Stage::Label(matcher(label, op, value)?));
        } else {
            return Err(p.error("a line filter (|= != |~ !~) or a label filter (| label=\"v\")"));
        }
    }
    Ok(LogQuery { selector, stages })
}

fn matcher(label: String, op: Op, value: String) -> Result<Matcher, String> {
    if matches!(op, Op::Re | Op::NotRe) {
        anchored(&value).map_err(|e| format!("regex {value:?} of label {label}: {e}"))?;
    }
    Ok(Matcher { label, op, value })
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn skip_ws(&mut self) {
        let rest = &self.src[self.pos..];
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn error(&self, wanted: &str) -> String {
        let at: String = self.src[self.pos..].chars().take(20).collect();
        format!(
            "parse error at column {}: expected {wanted}, found {at:?}",
            self.pos + 1
        )
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn ident(&mut self) -> Option<String> {
        self.skip_ws();
        let rest = &self.src[self.pos..];
        let len = rest
            .char_indices()
            .find(|&(i, c)| !(c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
            .map_or(rest.len(), |(i, _)| i);
        (len > 0).then(|| {
            self.pos += len;
            rest[..len].to_string()
        })
    }

    fn op(&mut self) -> Result<Op, String> {
        self.skip_ws();
        let rest = &self.src[self.pos..];
        let (op, len) = if rest.starts_with("=~") {
            (Op::Re, 2)
        } else if rest.starts_with("!~") {
            (Op::NotRe, 2)
        } else if rest.starts_with("!=") {
            (Op::Ne, 2)
        } else if rest.starts_with("==") {
            (Op::Eq, 2)
        } else if rest.starts_with('=') {
            (Op::Eq, 1)
        } else {
            return Err(self.error("one of = != =~ !~"));
        };
        self.pos += len;
        Ok(op)
    }

    /// A double-quoted string with Go escapes, or a backquoted raw string.
    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let rest = &self.src[self.pos..];
        if let Some(raw) = rest.strip_prefix('`') {
            let end = raw.find('`').ok_or_else(|| self.error("a closing `"))?;
            self.pos += end + 2;
            return Ok(raw[..end].to_string());
        }
        if !rest.starts_with('"') {
            return Err(self.error("a string in double quotes or backquotes"));
        }
        let mut out = String::new();
        let mut chars = rest.char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next().map(|(_, e)| e) {
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some(e @ ('\\' | '"' | '\'')) => out.push(e),
                    // Kept as written, so regex escapes such as `\d` and `\.` mean what they say.
                    Some(e) => {
                        out.push('\\');
                        out.push(e);
                    }
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(self.error("a closing \""))
    }

    fn selector(&mut self) -> Result<Vec<Matcher>, String> {
        if !self.eat('{') {
            return Err(self.error("{"));
        }
        let mut out = Vec::new();
        if self.eat('}') {
            return Ok(out);
        }
        loop {
            let label = self.ident().ok_or_else(|| self.error("a label name"))?;
            let op = self.op()?;
            let value = self.string()?;
            out.push(matcher(label, op, value)?);
            if self.eat('}') {
                return Ok(out);
            }
            if !self.eat(',') {
                return Err(self.error(", or }"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(label: &str, op: Op, value: &str) -> Matcher {
        Matcher {
            label: label.into(),
            op,
            value: value.into(),
        }
    }

    #[test]
    fn selectors_line_and_label_filters_parse() {
        let q = parse(
            r#"{service_name="checkout", level=~"warn|error"} |= "time\"out" != `retry` |~ "id=\d+" | trace_id="abc""#,
        )
        .unwrap();
        assert_eq!(
            q.selector,
            vec![
                m("service_name", Op::Eq, "checkout"),
                m("level", Op::Re, "warn|error")
            ]
        );
        assert_eq!(
            q.stages,
            vec![
                Stage::Line(Op::Eq, "time\"out".into()),
                Stage::Line(Op::Ne, "retry".into()),
                Stage::Line(Op::Re, r"id=\d+".into()),
                Stage::Label(m("trace_id", Op::Eq, "abc")),
            ]
        );
        let sql = q.sql();
        assert!(
            sql.contains("coalesce(service_name, '') = 'checkout'"),
            "{sql}"
        );
        assert!(
            sql.contains("regexp_like(lower(severity_text), '^(?:warn|error)$')"),
            "{sql}"
        );
        assert!(
            sql.contains("strpos(coalesce(body, ''), 'time\"out') > 0"),
            "{sql}"
        );
        assert!(sql.contains("coalesce(trace_id, '') = 'abc'"), "{sql}");
    }

    #[test]
    fn unknown_labels_are_empty_and_quotes_are_escaped() {
        let q = parse(r#"{service_name="o'brien", team!="x"}"#).unwrap();
        let sql = q.sql();
        assert!(sql.contains("'o''brien'"), "{sql}");
        assert!(sql.contains("'' <> 'x'"), "{sql}");
    }

    #[test]
    fn bad_and_unsupported_queries_say_why() {
        let err = |q: &str| parse(q).unwrap_err();
        assert!(err(r#"{service_name=""}"#).contains("empty-compatible"));
        assert!(err("{}").contains("empty-compatible"));
        assert!(err(r#"{service_name=~".*"}"#).contains("empty-compatible"));
        assert!(err(r#"count_over_time({a="b"}[5m])"#).contains("metric queries"));
        assert!(err(r#"{a="b"} | json"#).contains("`json` is not supported"));
        assert!(err(r#"{a="b"} |~ "(""#).contains("regex"));
        assert!(err(r#"{a=~"("}"#).contains("regex"));
        assert!(err(r#"{a="b""#).contains("parse error"));
        assert!(err(r#"{a="b"} foo"#).contains("parse error"));
        assert!(err(r#"{a="b} |= "x""#).contains("parse error"));
        assert!(err("").contains("stream selector"));
    }
}
