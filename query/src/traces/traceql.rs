//! A TraceQL parser for the spanset filters Tempo's search takes in `q`.
//!
//! Supported: spanset filters `{ ... }` (and `{}`), joined by `&&` / `||` between spansets
//! (both / either in one trace); inside a filter, comparisons joined by `&&` / `||` with
//! parentheses. Left sides are intrinsics (`name`, `status`, `statusMessage`, `kind`,
//! `duration`, their `span:` forms, `span:id`, `trace:id`, and the trace-level
//! `trace:rootService`, `trace:rootName`, `trace:duration`), scoped attributes (`span.x`,
//! `resource.x`, quoted `span."x y"`) and unscoped `.x` (span or resource). Operators: `=`,
//! `!=`, `>`, `>=`, `<`, `<=`, `=~`, `!~` (regexes are fully anchored, as in Tempo). Values:
//! strings, integers, floats, durations (`250ms`, `1.5s`, `2m`), `true`/`false`, `nil`, and
//! the status and kind keywords.
//!
//! Pipelines (`| count() > 1`, `| select(...)`) and structural operators (`>>`, `>`, `~`
//! between spansets) are refused with an error naming them, rather than half-evaluated.
//!
//! Written by hand: there is no maintained TraceQL parser crate for Rust, and the subset above
//! is a small recursive-descent grammar.

use std::fmt;

/// A parsed query: spanset filters combined at trace level.
#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    Spanset(Cond),
    And(Box<Query>, Box<Query>),
    Or(Box<Query>, Box<Query>),
}

/// A condition on one span (or, for trace-level intrinsics, on its trace).
#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    True,
    Cmp { field: Field, op: Op, value: Value },
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Field {
    Name,
    Status,
    StatusMessage,
    Kind,
    Duration,
    SpanId,
    TraceId,
    RootService,
    RootName,
    TraceDuration,
    Span(String),
    Resource(String),
    /// `.x`: a span attribute or, failing that, a resource attribute.
    Any(String),
}

impl Field {
    /// True for intrinsics of the whole trace, which are checked once the trace is assembled.
    pub fn is_trace_level(&self) -> bool {
        matches!(
            self,
            Field::RootService | Field::RootName | Field::TraceDuration
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Re,
    NotRe,
}

impl Op {
    pub fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Re | Op::NotRe => "~",
        }
    }

    /// Compares two ordered values the way the operator says (regex operators excluded).
    pub fn holds<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Re | Op::NotRe => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    /// Nanoseconds.
    Duration(i64),
    Bool(bool),
    Nil,
    /// `ok`, `error`, `unset`: the OTLP status code.
    Status(i32),
    /// `server`, `client`, ...: the OTLP span kind.
    Kind(i32),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceQL: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// Parses `q`. An empty or blank query is `{}`.
pub fn parse(q: &str) -> Result<Query, ParseError> {
    let tokens = lex(q)?;
    if tokens.is_empty() {
        return Ok(Query::Spanset(Cond::True));
    }
    let mut p = Parser { tokens, pos: 0 };
    let query = p.query()?;
    match p.peek() {
        None => Ok(query),
        Some(Tok::Pipe) => Err(ParseError(
            "pipelines (`| ...`) are not supported; use spanset filters `{ ... }`".into(),
        )),
        Some(t) => Err(ParseError(format!(
            "unexpected {t} after the query (structural operators are not supported)"
        ))),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LBrace,
    RBrace,
    LParen,
    RParen,
    And,
    Or,
    Pipe,
    Op(Op),
    /// An identifier or attribute path, as written (`span.http.method`, `.foo`, `status`).
    Ident(String),
    Str(String),
    Number(String),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::LBrace => write!(f, "`{{`"),
            Tok::RBrace => write!(f, "`}}`"),
            Tok::LParen => write!(f, "`(`"),
            Tok::RParen => write!(f, "`)`"),
            Tok::And => write!(f, "`&&`"),
            Tok::Or => write!(f, "`||`"),
            Tok::Pipe => write!(f, "`|`"),
            Tok::Op(op) => write!(f, "operator {op:?}"),
            Tok::Ident(s) => write!(f, "`{s}`"),
            Tok::Str(s) => write!(f, "string {s:?}"),
            Tok::Number(s) => write!(f, "`{s}`"),
        }
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '-' | '@' | '#')
}

fn lex(q: &str) -> Result<Vec<Tok>, ParseError> {
    let chars: Vec<char> = q.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let (tok, len) = match (c, next) {
            (c, _) if c.is_whitespace() => {
                i += 1;
                continue;
            }
            ('{', _) => (Tok::LBrace, 1),
            ('}', _) => (Tok::RBrace, 1),
            ('(', _) => (Tok::LParen, 1),
            (')', _) => (Tok::RParen, 1),
            ('&', Some('&')) => (Tok::And, 2),
            ('|', Some('|')) => (Tok::Or, 2),
            ('|', _) => (Tok::Pipe, 1),
            ('=', Some('~')) => (Tok::Op(Op::Re), 2),
            ('!', Some('~')) => (Tok::Op(Op::NotRe), 2),
            ('!', Some('=')) => (Tok::Op(Op::Ne), 2),
            ('>', Some('=')) => (Tok::Op(Op::Ge), 2),
            ('<', Some('=')) => (Tok::Op(Op::Le), 2),
            ('=', _) => (Tok::Op(Op::Eq), 1),
            ('>', _) => (Tok::Op(Op::Gt), 1),
            ('<', _) => (Tok::Op(Op::Lt), 1),
            ('"' | '`', _) => {
                let (s, used) = string(&chars[i..])?;
                (Tok::Str(s), used)
            }
            (c, _)
                if c.is_ascii_digit() || (c == '-' && next.is_some_and(|n| n.is_ascii_digit())) =>
            {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '.') {
                    j += 1;
                }
                (Tok::Number(chars[i..j].iter().collect()), j - i)
            }
            (c, _) if is_ident_char(c) => {
                // An attribute path; a quoted segment (`span."a b"`) continues it.
                let mut name = String::new();
                let mut j = i;
                while j < chars.len() {
                    if is_ident_char(chars[j]) {
                        name.push(chars[j]);
                        j += 1;
                    } else if chars[j] == '"' && name.ends_with('.') {
                        let (s, used) = string(&chars[j..])?;
                        name.push_str(&s);
                        j += used;
                    } else {
                        break;
                    }
                }
                (Tok::Ident(name), j - i)
            }
            (c, _) => return Err(ParseError(format!("unexpected character {c:?}"))),
        };
        out.push(tok);
        i += len;
    }
    Ok(out)
}

/// A quoted string at the start of `chars`: its value and the characters it used.
fn string(chars: &[char]) -> Result<(String, usize), ParseError> {
    let quote = chars[0];
    let mut s = String::new();
    let mut i = 1;
    while i < chars.len() {
        match chars[i] {
            c if c == quote => return Ok((s, i + 1)),
            '\\' if quote == '"' => {
                let escaped = chars
                    .get(i + 1)
                    .ok_or_else(|| ParseError("unterminated string".into()))?;
                s.push(match escaped {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    other => *other,
                });
                i += 2;
            }
            c => {
                s.push(c);
                i += 1;
            }
        }
    }
    Err(ParseError("unterminated string".into()))
}

struct Parser {
    tokens: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, want: Tok) -> Result<(), ParseError> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            Some(t) => Err(ParseError(format!("expected {want}, found {t}"))),
            None => Err(ParseError(format!("expected {want}, found the end"))),
        }
    }

    /// `operand (op operand)*`, folded to the left with `join`: `||` over `&&` over atoms,
    /// for spanset queries and for conditions alike.
    fn chain<T>(
        &mut self,
        op: Tok,
        operand: fn(&mut Self) -> Result<T, ParseError>,
        join: fn(Box<T>, Box<T>) -> T,
    ) -> Result<T, ParseError> {
        let mut left = operand(self)?;
        while self.peek() == Some(&op) {
            self.next();
            left = join(Box::new(left), Box::new(operand(self)?));
        }
        Ok(left)
    }

    fn query(&mut self) -> Result<Query, ParseError> {
        self.chain(Tok::Or, Self::query_and, Query::Or)
    }

    fn query_and(&mut self) -> Result<Query, ParseError> {
        self.chain(Tok::And, Self::query_atom, Query::And)
    }

    fn query_atom(&mut self) -> Result<Query, ParseError> {
        match self.next() {
            Some(Tok::LBrace) => {
                if self.peek() == Some(&Tok::RBrace) {
                    self.next();
                    return Ok(Query::Spanset(Cond::True));
                }
                let cond = self.cond()?;
                self.expect(Tok::RBrace)?;
                Ok(Query::Spanset(cond))
            }
            Some(Tok::LParen) => {
                let q = self.query()?;
                self.expect(Tok::RParen)?;
                Ok(q)
            }
            Some(t) => Err(ParseError(format!(
                "expected a spanset filter `{{ ... }}`, found {t}"
            ))),
            None => Err(ParseError("expected a spanset filter `{ ... }`".into())),
        }
    }

    fn cond(&mut self) -> Result<Cond, ParseError> {
        self.chain(Tok::Or, Self::cond_and, Cond::Or)
    }

    fn cond_and(&mut self) -> Result<Cond, ParseError> {
        self.chain(Tok::And, Self::cond_atom, Cond::And)
    }

    fn cond_atom(&mut self) -> Result<Cond, ParseError> {
        match self.next() {
            Some(Tok::LParen) => {
                let c = self.cond()?;
                self.expect(Tok::RParen)?;
                Ok(c)
            }
            Some(Tok::Ident(name)) => {
                let field = field(&name)?;
                let op = match self.next() {
                    Some(Tok::Op(op)) => op,
                    Some(t) => {
                        return Err(ParseError(format!(
                            "expected a comparison after `{name}`, found {t}"
                        )));
                    }
                    None => {
                        return Err(ParseError(format!("expected a comparison after `{name}`")));
                    }
                };
                let value = value(&field, self.next())?;
                check(&field, op, &value)?;
                Ok(Cond::Cmp { field, op, value })
            }
            Some(t) => Err(ParseError(format!("expected a condition, found {t}"))),
            None => Err(ParseError("expected a condition".into())),
        }
    }
}

fn field(name: &str) -> Result<Field, ParseError> {
    let attr = |rest: &str| {
        if rest.is_empty() {
            Err(ParseError(format!("`{name}` names no attribute")))
        } else {
            Ok(rest.to_string())
        }
    };
    Ok(match name {
        "name" | "span:name" => Field::Name,
        "status" | "span:status" => Field::Status,
        "statusMessage" | "span:statusMessage" => Field::StatusMessage,
        "kind" | "span:kind" => Field::Kind,
        "duration" | "span:duration" => Field::Duration,
        "span:id" => Field::SpanId,
        "trace:id" => Field::TraceId,
        "rootServiceName" | "trace:rootService" => Field::RootService,
        "rootName" | "trace:rootName" => Field::RootName,
        "traceDuration" | "trace:duration" => Field::TraceDuration,
        _ => {
            if let Some(rest) = name.strip_prefix("span.") {
                Field::Span(attr(rest)?)
            } else if let Some(rest) = name.strip_prefix("resource.") {
                Field::Resource(attr(rest)?)
            } else if let Some(rest) = name.strip_prefix('.') {
                Field::Any(attr(rest)?)
            } else {
                return Err(ParseError(format!(
                    "unknown field `{name}`: use an intrinsic (name, status, kind, duration, ...) or an attribute (span.x, resource.x, .x)"
                )));
            }
        }
    })
}

fn value(field: &Field, tok: Option<Tok>) -> Result<Value, ParseError> {
    match tok {
        Some(Tok::Str(s)) => Ok(Value::Str(s)),
        Some(Tok::Number(n)) => number(&n),
        Some(Tok::Ident(word)) => match (field, word.as_str()) {
            (_, "true") => Ok(Value::Bool(true)),
            (_, "false") => Ok(Value::Bool(false)),
            (_, "nil") => Ok(Value::Nil),
            (Field::Status, w) => status_code(w)
                .map(Value::Status)
                .ok_or_else(|| ParseError(format!("unknown status `{w}` (ok, error, unset)"))),
            (Field::Kind, w) => kind_code(w).map(Value::Kind).ok_or_else(|| {
                ParseError(format!(
                    "unknown kind `{w}` (unspecified, internal, server, client, producer, consumer)"
                ))
            }),
            (_, w) => Err(ParseError(format!(
                "`{w}` is not a value; quote strings: \"{w}\""
            ))),
        },
        Some(t) => Err(ParseError(format!("expected a value, found {t}"))),
        None => Err(ParseError("expected a value".into())),
    }
}

/// Statuses by TraceQL name and OTLP code.
pub const STATUSES: [(&str, i32); 3] = [("unset", 0), ("ok", 1), ("error", 2)];
/// Span kinds by TraceQL name and OTLP code.
pub const KINDS: [(&str, i32); 6] = [
    ("unspecified", 0),
    ("internal", 1),
    ("server", 2),
    ("client", 3),
    ("producer", 4),
    ("consumer", 5),
];

pub fn status_code(name: &str) -> Option<i32> {
    STATUSES.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

pub fn kind_code(name: &str) -> Option<i32> {
    KINDS.iter().find(|(n, _)| *n == name).map(|(_, c)| *c)
}

fn number(n: &str) -> Result<Value, ParseError> {
    if let Ok(i) = n.parse::<i64>() {
        return Ok(Value::Int(i));
    }
    if let Ok(f) = n.parse::<f64>() {
        return Ok(Value::Float(f));
    }
    parse_duration(n)
        .map(Value::Duration)
        .ok_or_else(|| ParseError(format!("`{n}` is neither a number nor a duration")))
}

/// A Go-style duration (`1h2m`, `1.5s`, `250ms`, `10us`, `10µs`, `100ns`) in nanoseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let amount: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += amount * scale;
    }
    let nanos = total.round() as i64;
    Some(if neg { -nanos } else { nanos })
}

/// Refuses comparisons that can never make sense, so a typo is an error and not an empty
/// result.
fn check(field: &Field, op: Op, value: &Value) -> Result<(), ParseError> {
    let regex = matches!(op, Op::Re | Op::NotRe);
    if regex && !matches!(value, Value::Str(_)) {
        return Err(ParseError("a regex match needs a string pattern".into()));
    }
    if let Value::Str(pattern) = value
        && regex
    {
        regex::Regex::new(pattern).map_err(|e| ParseError(format!("bad regex: {e}")))?;
    }
    let ordered = matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
    let ok = match field {
        Field::Duration | Field::TraceDuration => {
            matches!(value, Value::Duration(_) | Value::Int(0)) && !regex
        }
        Field::Status | Field::Kind => {
            matches!(value, Value::Status(_) | Value::Kind(_)) && matches!(op, Op::Eq | Op::Ne)
        }
        Field::Name
        | Field::StatusMessage
        | Field::SpanId
        | Field::TraceId
        | Field::RootService
        | Field::RootName => matches!(value, Value::Str(_)),
        Field::Span(_) | Field::Resource(_) | Field::Any(_) => match value {
            Value::Bool(_) | Value::Nil => matches!(op, Op::Eq | Op::Ne),
            Value::Status(_) | Value::Kind(_) => false,
            _ => true,
        },
    };
    if !ok || (ordered && matches!(value, Value::Bool(_) | Value::Nil)) {
        return Err(ParseError(format!(
            "cannot compare {field:?} {op:?} {value:?}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmp(field: Field, op: Op, value: Value) -> Cond {
        Cond::Cmp { field, op, value }
    }

    #[test]
    fn parses_filters_and_spanset_operators() {
        assert_eq!(parse("").unwrap(), Query::Spanset(Cond::True));
        assert_eq!(parse("{ }").unwrap(), Query::Spanset(Cond::True));
        let q = parse(
            r#"{ resource.service.name = "checkout" && (span.http.status_code >= 500 || status = error) } && { duration > 1.5s }"#,
        )
        .unwrap();
        let left = Cond::And(
            Box::new(cmp(
                Field::Resource("service.name".into()),
                Op::Eq,
                Value::Str("checkout".into()),
            )),
            Box::new(Cond::Or(
                Box::new(cmp(
                    Field::Span("http.status_code".into()),
                    Op::Ge,
                    Value::Int(500),
                )),
                Box::new(cmp(Field::Status, Op::Eq, Value::Status(2))),
            )),
        );
        let right = cmp(Field::Duration, Op::Gt, Value::Duration(1_500_000_000));
        assert_eq!(
            q,
            Query::And(
                Box::new(Query::Spanset(left)),
                Box::new(Query::Spanset(right))
            )
        );
        assert_eq!(
            parse(r#"{ .foo =~ "a.*" || span."x y" != `b"c` } || {kind=server}"#).unwrap(),
            Query::Or(
                Box::new(Query::Spanset(Cond::Or(
                    Box::new(cmp(
                        Field::Any("foo".into()),
                        Op::Re,
                        Value::Str("a.*".into())
                    )),
                    Box::new(cmp(
                        Field::Span("x y".into()),
                        Op::Ne,
                        Value::Str("b\"c".into())
                    )),
                ))),
                Box::new(Query::Spanset(cmp(Field::Kind, Op::Eq, Value::Kind(2)))),
            )
        );
        assert_eq!(
            parse("{span.ratio < -0.5 && trace:duration > 2m && span.ok = true}").unwrap(),
            Query::Spanset(Cond::And(
                Box::new(Cond::And(
                    Box::new(cmp(Field::Span("ratio".into()), Op::Lt, Value::Float(-0.5))),
                    Box::new(cmp(
                        Field::TraceDuration,
                        Op::Gt,
                        Value::Duration(120_000_000_000)
                    )),
                )),
                Box::new(cmp(Field::Span("ok".into()), Op::Eq, Value::Bool(true))),
            ))
        );
    }

    #[test]
    fn refuses_what_it_does_not_support_with_a_reason() {
        for (q, says) in [
            ("{ name = \"a\" } | count() > 2", "pipelines"),
            ("{ name = \"a\" } >> { name = \"b\" }", "structural"),
            ("{ status = fine }", "unknown status"),
            ("{ foo = \"x\" }", "unknown field"),
            ("{ name = checkout }", "quote strings"),
            ("{ duration > \"1s\" }", "cannot compare"),
            ("{ span.x =~ \"(\" }", "bad regex"),
            ("{ name = \"a\" ", "expected"),
            ("{ name = \"a }", "unterminated"),
            ("{ span.x > true }", "cannot compare"),
            ("{ duration > 5parsecs }", "neither a number"),
        ] {
            let e = parse(q).unwrap_err().to_string();
            assert!(e.contains(says), "{q}: {e}");
        }
    }

    #[test]
    fn durations_read_like_go() {
        assert_eq!(parse_duration("1h2m"), Some(3_720_000_000_000));
        assert_eq!(parse_duration("250ms"), Some(250_000_000));
        assert_eq!(parse_duration("10µs"), Some(10_000));
        assert_eq!(parse_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_duration("7"), None);
        assert_eq!(parse_duration("ms"), None);
    }
}
