//! TraceQL conditions as SQL predicates over the `spans` table, plus the trace-level checks
//! that run once a trace is assembled.
//!
//! Invariants: every string that reaches SQL is a quoted literal with `'` doubled; attribute
//! keys are map lookups (`attributes['k']['str']`), never identifiers. A missing attribute
//! compares as SQL NULL, so it never matches (also not `!=`), as in Tempo. Regexes are
//! anchored (`^(?:re)$`). Promoted resource attributes (`service.name`, `k8s.pod.name`, ...)
//! compare against their own column when the value is a string, which is cheaper than the map.

use std::fmt::Write as _;

use strata_schema::columns;

use super::summary::TraceSummary;
use super::traceql::{Cond, Field, Op, Query, Value};

/// Resource attributes that have their own column, by attribute key.
pub const PROMOTED_RESOURCE: [(&str, &str); 10] = [
    ("service.name", columns::SERVICE_NAME),
    ("service.namespace", columns::SERVICE_NAMESPACE),
    ("service.version", columns::SERVICE_VERSION),
    (
        "deployment.environment.name",
        columns::DEPLOYMENT_ENVIRONMENT,
    ),
    ("host.name", columns::HOST_NAME),
    ("k8s.namespace.name", columns::K8S_NAMESPACE_NAME),
    ("k8s.pod.name", columns::K8S_POD_NAME),
    ("k8s.container.name", columns::K8S_CONTAINER_NAME),
    ("k8s.node.name", columns::K8S_NODE_NAME),
    ("k8s.deployment.name", columns::K8S_DEPLOYMENT_NAME),
];

/// A SQL string literal.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A spanset query compiled for execution: one SQL predicate per spanset, how the spansets
/// combine per trace, and the trace-level checks.
#[derive(Debug)]
pub struct Compiled {
    /// SQL predicate of each spanset filter (`TRUE` for `{}`).
    pub spansets: Vec<String>,
    /// The trace-level combination over `m0`, `m1`, ... (one flag per spanset).
    pub combine: Combine,
    /// Trace-level intrinsic conditions (all must hold).
    pub trace_checks: Vec<TraceCheck>,
}

/// How spanset matches combine into a trace match.
#[derive(Debug, Clone, PartialEq)]
pub enum Combine {
    Spanset(usize),
    And(Box<Combine>, Box<Combine>),
    Or(Box<Combine>, Box<Combine>),
}

impl Combine {
    /// The combination as SQL over per-trace flags named `flag(i)`.
    pub fn sql(&self, flag: &dyn Fn(usize) -> String) -> String {
        match self {
            Combine::Spanset(i) => flag(*i),
            Combine::And(a, b) => format!("({} AND {})", a.sql(flag), b.sql(flag)),
            Combine::Or(a, b) => format!("({} OR {})", a.sql(flag), b.sql(flag)),
        }
    }
}

/// A condition on an assembled trace (`trace:rootService`, `trace:rootName`,
/// `trace:duration`).
#[derive(Debug, Clone)]
pub struct TraceCheck {
    pub field: Field,
    pub op: Op,
    pub value: Value,
    regex: Option<regex::Regex>,
}

impl TraceCheck {
    fn new(field: Field, op: Op, value: Value) -> Result<Self, String> {
        let regex = match (&value, op) {
            (Value::Str(p), Op::Re | Op::NotRe) => Some(
                regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| format!("bad regex: {e}"))?,
            ),
            _ => None,
        };
        Ok(Self {
            field,
            op,
            value,
            regex,
        })
    }

    pub fn holds(&self, t: &TraceSummary) -> bool {
        let text = match self.field {
            Field::RootService => Some(t.root_service.as_str()),
            Field::RootName => Some(t.root_name.as_str()),
            _ => None,
        };
        match (text, &self.value) {
            (Some(text), Value::Str(v)) => match (&self.regex, self.op) {
                (Some(re), Op::Re) => re.is_match(text),
                (Some(re), _) => !re.is_match(text),
                _ => self.op.holds(text, v.as_str()),
            },
            (None, Value::Duration(d)) => self.op.holds(t.duration_nanos, *d),
            (None, Value::Int(i)) => self.op.holds(t.duration_nanos, *i),
            _ => false,
        }
    }
}

/// Compiles a parsed query. Trace-level intrinsics must be top-level `&&` terms of a spanset
/// filter (`{ trace:duration > 1s && span.x = 1 }`); anywhere else they are refused.
pub fn compile(query: &Query) -> Result<Compiled, String> {
    let mut out = Compiled {
        spansets: Vec::new(),
        combine: Combine::Spanset(0),
        trace_checks: Vec::new(),
    };
    out.combine = compile_query(query, &mut out)?;
    Ok(out)
}

fn compile_query(query: &Query, out: &mut Compiled) -> Result<Combine, String> {
    Ok(match query {
        Query::Spanset(cond) => {
            let mut terms = Vec::new();
            conjuncts(cond, &mut terms);
            let mut sql = Vec::new();
            for term in terms {
                match term {
                    Cond::Cmp { field, op, value } if field.is_trace_level() => out
                        .trace_checks
                        .push(TraceCheck::new(field.clone(), *op, value.clone())?),
                    other => sql.push(predicate(other)?),
                }
            }
            out.spansets.push(if sql.is_empty() {
                "TRUE".into()
            } else {
                sql.join(" AND ")
            });
            Combine::Spanset(out.spansets.len() - 1)
        }
        Query::And(a, b) => Combine::And(
            Box::new(compile_query(a, out)?),
            Box::new(compile_query(b, out)?),
        ),
        Query::Or(a, b) => Combine::Or(
            Box::new(compile_query(a, out)?),
            Box::new(compile_query(b, out)?),
        ),
    })
}

fn conjuncts<'a>(cond: &'a Cond, out: &mut Vec<&'a Cond>) {
    match cond {
        Cond::And(a, b) => {
            conjuncts(a, out);
            conjuncts(b, out);
        }
        other => out.push(other),
    }
}

/// The SQL predicate of one span condition.
pub fn predicate(cond: &Cond) -> Result<String, String> {
    Ok(match cond {
        Cond::True => "TRUE".into(),
        Cond::And(a, b) => format!("({} AND {})", predicate(a)?, predicate(b)?),
        Cond::Or(a, b) => format!("({} OR {})", predicate(a)?, predicate(b)?),
        Cond::Cmp { field, op, value } => comparison(field, *op, value)?,
    })
}

fn comparison(field: &Field, op: Op, value: &Value) -> Result<String, String> {
    let column = |c: &str| c.to_string();
    Ok(match field {
        Field::Name => compare(&column(columns::NAME), op, value),
        Field::StatusMessage => compare(&column(columns::STATUS_MESSAGE), op, value),
        Field::SpanId | Field::TraceId => {
            let c = if *field == Field::SpanId {
                columns::SPAN_ID
            } else {
                columns::TRACE_ID
            };
            match value {
                Value::Str(s) => compare(c, op, &Value::Str(s.to_ascii_lowercase())),
                other => compare(c, op, other),
            }
        }
        Field::Status => compare(&format!("coalesce({}, 0)", columns::STATUS_CODE), op, value),
        Field::Kind => compare(columns::KIND, op, value),
        Field::Duration => compare(columns::DURATION_NANOS, op, value),
        Field::Span(key) => attribute(columns::ATTRIBUTES, key, op, value),
        Field::Resource(key) => resource(key, op, value),
        Field::Any(key) => format!(
            "({} OR {})",
            attribute(columns::ATTRIBUTES, key, op, value),
            resource(key, op, value)
        ),
        Field::RootService | Field::RootName | Field::TraceDuration => {
            return Err(
                "trace-level intrinsics (trace:rootService, trace:rootName, trace:duration) \
                 combine with the rest of a filter only by a top-level &&"
                    .into(),
            );
        }
    })
}

fn resource(key: &str, op: Op, value: &Value) -> String {
    match (PROMOTED_RESOURCE.iter().find(|(k, _)| *k == key), value) {
        (Some((_, column)), Value::Str(_)) => compare(column, op, value),
        (Some((_, column)), Value::Nil) => compare(column, op, value),
        _ => attribute(columns::RESOURCE_ATTRIBUTES, key, op, value),
    }
}

/// A comparison on one attribute of the map column `map`, on the value field its type needs.
fn attribute(map: &str, key: &str, op: Op, value: &Value) -> String {
    let entry = format!("{map}[{}]", quote(key));
    match value {
        Value::Str(_) => compare(&format!("{entry}['str']"), op, value),
        Value::Bool(_) => compare(&format!("{entry}['bool']"), op, value),
        Value::Nil => compare(&entry, op, value),
        Value::Int(_)
        | Value::Float(_)
        | Value::Duration(_)
        | Value::Status(_)
        | Value::Kind(_) => compare(
            &format!("coalesce(CAST({entry}['int'] AS DOUBLE), {entry}['double'])"),
            op,
            value,
        ),
    }
}

fn compare(lhs: &str, op: Op, value: &Value) -> String {
    let mut out = String::new();
    match (op, value) {
        (Op::Re | Op::NotRe, Value::Str(p)) => {
            let not = if op == Op::NotRe { "NOT " } else { "" };
            let _ = write!(
                out,
                "{not}coalesce(regexp_like({lhs}, {}), {})",
                quote(&format!("^(?:{p})$")),
                // A missing value matches neither the regex nor its negation.
                if op == Op::NotRe { "TRUE" } else { "FALSE" }
            );
        }
        (Op::Eq, Value::Nil) => {
            let _ = write!(out, "{lhs} IS NULL");
        }
        (_, Value::Nil) => {
            let _ = write!(out, "{lhs} IS NOT NULL");
        }
        (op, v) => {
            let literal = match v {
                Value::Str(s) => quote(s),
                Value::Int(i) | Value::Duration(i) => i.to_string(),
                Value::Float(f) => format!("{f:?}"),
                Value::Bool(b) => b.to_string(),
                Value::Status(c) | Value::Kind(c) => c.to_string(),
                Value::Nil => "NULL".into(),
            };
            let _ = write!(out, "{lhs} {} {literal}", op.sql());
        }
    }
    out
}

/// Tempo's `tags` search parameter (logfmt `key=value` pairs) as span conditions, one per
/// pair (see [`tag_predicate`]).
pub fn tags_predicate(tags: &str) -> Result<Vec<String>, String> {
    logfmt(tags)?
        .into_iter()
        .map(|(key, value)| tag_predicate(&key, &value))
        .collect()
}

/// One tag condition: `name` is the span name, `status.code` the status, anything else an
/// unscoped attribute whose string form equals the value (also as a number or bool).
pub fn tag_predicate(key: &str, value: &str) -> Result<String, String> {
    Ok(match key {
        "name" => compare(columns::NAME, Op::Eq, &Value::Str(value.to_string())),
        "status.code" | "status" => {
            let code = super::traceql::status_code(value)
                .ok_or_else(|| format!("unknown status {value:?} (ok, error, unset)"))?;
            compare(
                &format!("coalesce({}, 0)", columns::STATUS_CODE),
                Op::Eq,
                &Value::Status(code),
            )
        }
        _ => {
            let text = Value::Str(value.to_string());
            let mut any = vec![
                attribute(columns::ATTRIBUTES, key, Op::Eq, &text),
                resource(key, Op::Eq, &text),
            ];
            if let Ok(i) = value.parse::<i64>() {
                any.push(attribute(columns::ATTRIBUTES, key, Op::Eq, &Value::Int(i)));
            } else if let Ok(b) = value.parse::<bool>() {
                any.push(attribute(columns::ATTRIBUTES, key, Op::Eq, &Value::Bool(b)));
            }
            format!("({})", any.join(" OR "))
        }
    })
}

/// A tag condition as Jaeger and Zipkin mean it: `error=true` also matches spans with an
/// error status, since OTLP keeps errors in the status rather than in a tag.
pub fn tag_or_status(key: &str, value: &str) -> Result<String, String> {
    let p = tag_predicate(key, value)?;
    Ok(if key == "error" && value == "true" {
        format!("({p} OR coalesce({}, 0) = 2)", columns::STATUS_CODE)
    } else {
        p
    })
}

/// A span that has the tag `key`, on itself or its resource; `error` also matches an error
/// status.
pub fn tag_exists(key: &str) -> String {
    let p = format!(
        "({} OR {})",
        attribute(columns::ATTRIBUTES, key, Op::Ne, &Value::Nil),
        resource(key, Op::Ne, &Value::Nil)
    );
    if key == "error" {
        format!("({p} OR coalesce({}, 0) = 2)", columns::STATUS_CODE)
    } else {
        p
    }
}

/// `k=v k2="v 2"` pairs.
pub fn logfmt(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let eq = rest
            .find('=')
            .ok_or_else(|| format!("tag {rest:?} has no `=value`"))?;
        let key = rest[..eq].trim().to_string();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("bad tag name {key:?}"));
        }
        rest = &rest[eq + 1..];
        let value;
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted
                .find('"')
                .ok_or_else(|| format!("unterminated quote in tag {key}"))?;
            value = quoted[..end].to_string();
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value = rest[..end].to_string();
            rest = &rest[end..];
        }
        out.push((key, value));
        rest = rest.trim_start();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::traceql::parse;
    use super::*;

    #[test]
    fn compiles_spansets_and_trace_checks() {
        let c = compile(
            &parse(r#"{ resource.service.name = "a'b" && trace:duration > 1s } || { span.code >= 500 && .x =~ "y|z" }"#)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(c.spansets[0], "service_name = 'a''b'");
        assert_eq!(
            c.spansets[1],
            "coalesce(CAST(attributes['code']['int'] AS DOUBLE), attributes['code']['double']) >= 500 AND \
             (coalesce(regexp_like(attributes['x']['str'], '^(?:y|z)$'), FALSE) OR \
             coalesce(regexp_like(resource_attributes['x']['str'], '^(?:y|z)$'), FALSE))"
        );
        assert_eq!(c.combine.sql(&|i| format!("m{i}")), "(m0 OR m1)");
        assert_eq!(c.trace_checks.len(), 1);
        let e = compile(&parse("{ trace:duration > 1s || name = \"x\" }").unwrap()).unwrap_err();
        assert!(e.contains("top-level &&"), "{e}");
        assert_eq!(
            compile(&parse("{ status = error && kind != client && span.gone = nil }").unwrap())
                .unwrap()
                .spansets[0],
            "coalesce(status_code, 0) = 2 AND kind <> 3 AND attributes['gone'] IS NULL"
        );
    }

    #[test]
    fn tags_read_as_logfmt() {
        assert_eq!(
            logfmt(r#"service.name=cart  http.status_code=500 msg="a b""#).unwrap(),
            vec![
                ("service.name".into(), "cart".into()),
                ("http.status_code".into(), "500".into()),
                ("msg".into(), "a b".into())
            ]
        );
        assert!(logfmt("novalue").is_err());
        let p = tags_predicate("name=GET status.code=error").unwrap();
        assert_eq!(p, vec!["name = 'GET'", "coalesce(status_code, 0) = 2"]);
    }
}
