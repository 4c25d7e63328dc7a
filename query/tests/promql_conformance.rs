//! Runs PromQL test files in Prometheus's own format (`load`, `clear`, `eval instant`,
//! `eval range`, `expect ...`) against Strata's engine, through the same DataFusion selection
//! path as served queries: loaded series are written as metric rows into a `metrics` table.
//!
//! Files: the project's own under `tests/promql/`, and Prometheus's test files in
//! `../shared/promql/` when that folder exists beside the project (a clone without it skips
//! them and says so). Cases on native histograms are skipped and listed with the reason.
//! A case that fails must be listed in `tests/promql/known_failures.txt` (as `file:line`);
//! any other failure fails the test, and listed cases that now pass are reported.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, metric::Data,
    number_data_point::Value as NumberValue,
};
use promql_parser::label::MatchOp;
use promql_parser::parser::Expr;
use strata_query::promql::value::{ABSENT, NAME, STALE_NAN_BITS, present};
use strata_query::promql::{Labels, Options, Steps, Value, query};
use strata_schema::Signal;
use strata_schema::metrics::PROMETHEUS_SCOPE;

const EPSILON: f64 = 1e-6;

/// One expected series: labels and a value per step (`None` = no point).
#[derive(Debug, Clone)]
struct Expected {
    labels: Labels,
    values: Vec<Option<f64>>,
}

#[derive(Debug, Default)]
struct Case {
    line: usize,
    query: String,
    steps: Option<Steps>,
    fail: Option<FailExpect>,
    ordered: bool,
    scalar: Option<f64>,
    string: Option<String>,
    range_vector: Option<Steps>,
    series: Vec<Expected>,
    skip: Option<String>,
}

#[derive(Debug)]
enum FailExpect {
    Any,
    Msg(String),
    Regex(String),
}

fn parse_time_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if s.trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse::<f64>()
        == Ok(0.0)
    {
        return Ok(0);
    }
    if let Some(rest) = s.strip_prefix('-') {
        return parse_time_ms(rest).map(|t| -t);
    }
    promql_parser::util::parse_duration(s).map(|d| d.as_millis() as i64)
}

fn parse_number(s: &str) -> Result<f64, String> {
    match s {
        "Inf" | "+Inf" | "inf" | "+inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" | "nan" => Ok(f64::NAN),
        "stale" => Ok(f64::from_bits(STALE_NAN_BITS)),
        _ => {
            if let Some(hex) = s.strip_prefix("0x") {
                return i64::from_str_radix(hex, 16)
                    .map(|v| v as f64)
                    .map_err(|e| e.to_string());
            }
            s.parse::<f64>().map_err(|e| format!("{s}: {e}"))
        }
    }
}

/// Expands one value token (`1`, `_`, `stale`, `1+2x3`, `5-1x4`, `7x2`, `_x3`).
fn expand(token: &str, out: &mut Vec<Option<f64>>) -> Result<(), String> {
    if token.contains("{{") {
        return Err("native histogram".into());
    }
    let (base, times) = match token.rfind('x') {
        Some(i)
            if i > 0
                && token[i + 1..].chars().all(|c| c.is_ascii_digit())
                && i + 1 < token.len() =>
        {
            (
                &token[..i],
                Some(token[i + 1..].parse::<u64>().map_err(|e| e.to_string())?),
            )
        }
        _ => (token, None),
    };
    if base == "_" {
        for _ in 0..times.unwrap_or(1) {
            out.push(None);
        }
        return Ok(());
    }
    let Some(times) = times else {
        out.push(Some(parse_number(base)?));
        return Ok(());
    };
    // Find the `+`/`-` between start and increment (not a sign, not in an exponent).
    let bytes = base.as_bytes();
    let split = (1..bytes.len())
        .find(|&i| (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
    let (start, inc) = match split {
        Some(i) => {
            let inc = parse_number(&base[i + 1..])?;
            (
                parse_number(&base[..i])?,
                if bytes[i] == b'-' { -inc } else { inc },
            )
        }
        None => (parse_number(base)?, 0.0),
    };
    let mut v = start;
    for _ in 0..=times {
        out.push(Some(v));
        v += inc;
    }
    Ok(())
}

/// Splits `metric{a="b"} 1 2 3` into the descriptor and the value tokens.
fn split_series(line: &str) -> (&str, &str) {
    let mut depth = 0;
    let mut quote = false;
    let mut escape = false;
    for (i, c) in line.char_indices() {
        if quote {
            match (escape, c) {
                (true, _) => escape = false,
                (false, '\\') => escape = true,
                (false, '"') => quote = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quote = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (&line[..=i], &line[i + 1..]);
                }
            }
            c if c.is_whitespace() && depth == 0 => return (&line[..i], &line[i..]),
            _ => {}
        }
    }
    (line, "")
}

fn parse_labels(desc: &str) -> Result<Labels, String> {
    let desc = desc.trim();
    if desc == "{}" {
        return Ok(Labels::default());
    }
    let expr = promql_parser::parser::parse(desc)?;
    let Expr::VectorSelector(vs) = expr else {
        return Err(format!("not a series: {desc}"));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(name) = vs.name {
        pairs.push((NAME.into(), name));
    }
    for m in vs.matchers.matchers {
        if !matches!(m.op, MatchOp::Equal) {
            return Err(format!("series labels must use '=': {desc}"));
        }
        pairs.push((m.name, m.value));
    }
    Ok(Labels::new(pairs))
}

fn parse_series(line: &str) -> Result<Expected, String> {
    let (desc, rest) = split_series(line.trim());
    let labels = parse_labels(desc)?;
    let mut values = Vec::new();
    for token in rest.split_whitespace() {
        expand(token, &mut values)?;
    }
    Ok(Expected { labels, values })
}

/// The loaded data, as metric rows.
#[derive(Default)]
struct Store {
    resources: Vec<ResourceMetrics>,
    native_names: HashSet<String>,
    ctx: Option<SessionContext>,
}

impl Store {
    fn load(&mut self, interval_ms: i64, lines: &[&str], nhcb: bool) -> Result<(), String> {
        for line in lines {
            let (desc, rest) = split_series(line.trim());
            let labels = parse_labels(desc)?;
            let mut values = Vec::new();
            let mut native = false;
            for token in rest.split_whitespace() {
                if token.contains("{{") || native {
                    // A native histogram sample; the rest of the line may continue it.
                    native = true;
                    continue;
                }
                expand(token, &mut values)?;
            }
            if native {
                self.native_names.insert(labels.name().to_string());
            }
            if nhcb && let Some(base) = labels.name().strip_suffix("_bucket") {
                self.native_names.insert(base.to_string());
            }
            let attributes = labels
                .iter()
                .filter(|(k, _)| *k != NAME)
                .map(|(k, v)| KeyValue {
                    key: k.to_string(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(v.to_string())),
                    }),
                    ..Default::default()
                })
                .collect::<Vec<_>>();
            let points = values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    v.map(|v| NumberDataPoint {
                        attributes: attributes.clone(),
                        time_unix_nano: (i as i64 * interval_ms * 1_000_000) as u64,
                        value: Some(NumberValue::AsDouble(v)),
                        ..Default::default()
                    })
                })
                .collect();
            self.resources.push(ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: PROMETHEUS_SCOPE.into(),
                        ..Default::default()
                    }),
                    metrics: vec![Metric {
                        name: labels.name().to_string(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: points,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            });
        }
        self.ctx = None;
        Ok(())
    }

    fn context(&mut self) -> SessionContext {
        if let Some(ctx) = &self.ctx {
            return ctx.clone();
        }
        let schema = Signal::Metrics.schema();
        let batches = if self.resources.is_empty() {
            vec![]
        } else {
            vec![strata_schema::metrics::to_batch(&self.resources).expect("test rows convert")]
        };
        let table = MemTable::try_new(schema, vec![batches]).expect("memtable");
        let ctx = SessionContext::new();
        ctx.register_table("metrics", Arc::new(table))
            .expect("register");
        self.ctx = Some(ctx.clone());
        ctx
    }
}

fn parse_eval_header(line: &str, case: &mut Case) -> Result<(), String> {
    let (kind, rest) = line.split_once(' ').ok_or("bad eval line")?;
    if kind == "eval_fail" {
        case.fail = Some(FailExpect::Any);
    }
    if kind == "eval_ordered" {
        case.ordered = true;
    }
    let rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix("instant at ") {
        let (t, q) = r.trim_start().split_once(' ').ok_or("bad instant eval")?;
        case.steps = Some(Steps::instant(parse_time_ms(t)?));
        case.query = q.trim().to_string();
    } else if let Some(r) = rest.strip_prefix("range from ") {
        let mut it = r.splitn(6, ' ');
        let start = parse_time_ms(it.next().ok_or("start")?)?;
        if it.next() != Some("to") {
            return Err("expected 'to'".into());
        }
        let end = parse_time_ms(it.next().ok_or("end")?)?;
        if it.next() != Some("step") {
            return Err("expected 'step'".into());
        }
        let step = parse_time_ms(it.next().ok_or("step")?)?;
        case.steps = Some(Steps { start, end, step });
        case.query = it.next().unwrap_or("").trim().to_string();
    } else {
        return Err(format!("unknown eval form: {line}"));
    }
    Ok(())
}

fn parse_expect(line: &str, case: &mut Case) -> Result<(), String> {
    let rest = line.trim_start_matches("expect").trim();
    if let Some(r) = rest.strip_prefix("fail") {
        let r = r.trim();
        case.fail = Some(if let Some(m) = r.strip_prefix("msg:") {
            FailExpect::Msg(m.trim().to_string())
        } else if let Some(m) = r.strip_prefix("regex:") {
            FailExpect::Regex(m.trim().to_string())
        } else {
            FailExpect::Any
        });
    } else if rest == "ordered" {
        case.ordered = true;
    } else if let Some(s) = rest.strip_prefix("string") {
        let s = s.trim();
        let unquoted = if s.starts_with('`') {
            s.trim_matches('`').to_string()
        } else {
            promql_parser::util::unquote_string(s).unwrap_or_else(|_| s.trim_matches('"').into())
        };
        case.string = Some(unquoted);
    } else if let Some(r) = rest.strip_prefix("range vector from ") {
        let parts: Vec<&str> = r.split_whitespace().collect();
        if parts.len() != 5 || parts[1] != "to" || parts[3] != "step" {
            return Err(format!("bad range vector expectation: {line}"));
        }
        case.range_vector = Some(Steps {
            start: parse_time_ms(parts[0])?,
            end: parse_time_ms(parts[2])?,
            step: parse_time_ms(parts[4])?,
        });
    }
    // `expect warn|info|no_warn|no_info`: annotations are not compared (see the summary).
    Ok(())
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    let diff = (a - b).abs();
    let sum = a.abs() + b.abs();
    if a == 0.0 || b == 0.0 || sum < f64::MIN_POSITIVE {
        return diff < EPSILON * f64::MIN_POSITIVE;
    }
    diff / sum.min(f64::MAX) < EPSILON
}

fn fmt_values(v: &[Option<f64>]) -> String {
    v.iter()
        .map(|x| x.map_or("_".into(), |f| f.to_string()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Compares the engine's result with the case's expectation.
fn check(case: &Case, result: Result<Value, String>) -> Result<(), String> {
    if let Some(fail) = &case.fail {
        let err = match result {
            Ok(v) => return Err(format!("expected an error, got {}", v.type_name())),
            Err(e) => e,
        };
        return match fail {
            FailExpect::Any => Ok(()),
            FailExpect::Msg(m) if err == *m => Ok(()),
            FailExpect::Regex(r) if regex::Regex::new(r).is_ok_and(|re| re.is_match(&err)) => {
                Ok(())
            }
            _ => Err(format!("error {err:?} does not match {fail:?}")),
        };
    }
    let value = result?;
    let steps = case.steps.expect("eval has steps");
    if let Some(s) = &case.string {
        return match value {
            Value::String(v) if v == *s => Ok(()),
            other => Err(format!("expected string {s:?}, got {other:?}")),
        };
    }
    let actual: Vec<Expected> = match value {
        Value::Scalar(v) => {
            if steps.len() == 1 {
                let expected = case.scalar.or_else(|| {
                    case.series
                        .first()
                        .and_then(|s| s.values.first().copied().flatten())
                });
                return match expected {
                    Some(e) if close(e, v[0]) => Ok(()),
                    _ => Err(format!("expected scalar {expected:?}, got {}", v[0])),
                };
            }
            vec![Expected {
                labels: Labels::default(),
                values: v.into_iter().map(Some).collect(),
            }]
        }
        Value::Vector(series) => series
            .into_iter()
            .map(|s| Expected {
                labels: (*s.labels).clone(),
                values: s.values.iter().map(|&v| present(v).then_some(v)).collect(),
            })
            .filter(|s| s.values.iter().any(Option::is_some))
            .collect(),
        Value::Matrix(series) => {
            let Some(grid) = case.range_vector else {
                return Err("got a range vector; the case expects none".into());
            };
            series
                .into_iter()
                .map(|s| Expected {
                    labels: (*s.labels).clone(),
                    values: grid
                        .times()
                        .map(|t| s.times.iter().position(|&x| x == t).map(|i| s.values[i]))
                        .collect(),
                })
                .collect()
        }
        Value::String(s) => return Err(format!("unexpected string {s:?}")),
    };
    if case.scalar.is_some() {
        return Err(format!("expected a scalar, got {} series", actual.len()));
    }
    if actual.len() != case.series.len() {
        let mut msg = format!(
            "expected {} series, got {}:",
            case.series.len(),
            actual.len()
        );
        for a in actual.iter().take(6) {
            let _ = write!(msg, " {} [{}]", a.labels, fmt_values(&a.values));
        }
        return Err(msg);
    }
    for (i, exp) in case.series.iter().enumerate() {
        let found = if case.ordered {
            actual.get(i).filter(|a| a.labels == exp.labels)
        } else {
            actual.iter().find(|a| a.labels == exp.labels)
        };
        let Some(act) = found else {
            return Err(format!(
                "expected series {} not found{}; got {}",
                exp.labels,
                if case.ordered { " at its position" } else { "" },
                actual
                    .iter()
                    .map(|a| a.labels.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        // Trailing steps without a point may be left out of the expectation.
        let mut want = exp.values.clone();
        if want.len() < act.values.len() {
            want.resize(act.values.len(), None);
        }
        let ok = act.values.len() == want.len()
            && act.values.iter().zip(&want).all(|(a, e)| match (a, e) {
                (None, None) => true,
                (Some(a), Some(e)) => close(*a, *e),
                _ => false,
            });
        if !ok {
            return Err(format!(
                "{}: expected [{}], got [{}]",
                exp.labels,
                fmt_values(&exp.values),
                fmt_values(&act.values)
            ));
        }
    }
    Ok(())
}

/// Whether a case touches native histograms, and why.
fn native_reason(case: &Case, lines: &[&str], store: &Store) -> Option<String> {
    if lines.iter().any(|l| l.contains("{{")) {
        return Some("expects native histogram samples".into());
    }
    for f in [
        "histogram_count",
        "histogram_sum",
        "histogram_avg",
        "histogram_fraction",
        "histogram_stddev",
        "histogram_stdvar",
        "histogram_quantiles",
    ] {
        if case.query.contains(&format!("{f}(")) {
            return Some(format!("{f} reads native histograms"));
        }
    }
    // Name regexes (`{__name__=~"..."}`) that select a native histogram series.
    let name_re = regex::Regex::new(r#"__name__\s*=~\s*"([^"]*)""#).expect("static regex");
    for caps in name_re.captures_iter(&case.query) {
        if let Ok(re) = regex::Regex::new(&format!("^(?:{})$", &caps[1]))
            && let Some(name) = store.native_names.iter().find(|n| re.is_match(n))
        {
            return Some(format!("selects native histogram series {name}"));
        }
    }
    for name in &store.native_names {
        if name.is_empty() {
            continue;
        }
        let re = regex::Regex::new(&format!(
            r"(^|[^A-Za-z0-9_:]){}($|[^A-Za-z0-9_:])",
            regex::escape(name)
        ))
        .expect("escaped name");
        if re.is_match(&case.query) {
            return Some(format!("reads native histogram series {name}"));
        }
    }
    None
}

#[derive(Default)]
struct FileReport {
    passed: usize,
    failed: Vec<(usize, String, String)>,
    skipped: Vec<(usize, String, String)>,
}

async fn run_file(path: &Path) -> FileReport {
    let text = std::fs::read_to_string(path).expect("read test file");
    let lines: Vec<&str> = text.lines().collect();
    let mut store = Store::default();
    let mut report = FileReport::default();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        i += 1;
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // The block: following lines up to a blank line or the next command.
        let start = i;
        while i < lines.len() {
            let l = lines[i].trim();
            if l.is_empty() {
                break;
            }
            let indented = lines[i].starts_with([' ', '\t']);
            if !indented && !l.starts_with('#') {
                break;
            }
            i += 1;
        }
        let body: Vec<&str> = lines[start..i]
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.starts_with('#'))
            .collect();
        let header_line = start;
        if line == "clear" {
            store = Store::default();
        } else if let Some(rest) = line
            .strip_prefix("load_with_nhcb ")
            .map(|r| (r, true))
            .or_else(|| line.strip_prefix("load ").map(|r| (r, false)))
        {
            let (interval, nhcb) = rest;
            let interval = parse_time_ms(interval.trim()).expect("load interval");
            if let Err(e) = store.load(interval, &body, nhcb) {
                report
                    .failed
                    .push((header_line, line.to_string(), format!("load: {e}")));
            }
        } else if line.starts_with("eval") {
            let mut case = Case {
                line: header_line,
                ..Default::default()
            };
            if let Err(e) = parse_eval_header(line, &mut case) {
                report.failed.push((header_line, line.into(), e));
                continue;
            }
            let mut bad = None;
            for l in &body {
                if l.starts_with("expect") {
                    if let Err(e) = parse_expect(l, &mut case) {
                        bad = Some(e);
                    }
                } else if case.range_vector.is_none()
                    && case.steps.is_some_and(|s| s.len() == 1)
                    && let Ok(v) = parse_number(l)
                {
                    case.scalar = Some(v);
                } else {
                    match parse_series(l) {
                        Ok(s) => case.series.push(s),
                        Err(e) if e == "native histogram" => {}
                        Err(e) => bad = Some(e),
                    }
                }
            }
            // Cases on native histograms still run: one that passes counts as passed, one
            // that fails is skipped with the reason.
            case.skip = native_reason(&case, &body, &store);
            if let Some(e) = bad {
                match case.skip.take() {
                    Some(reason) => report.skipped.push((case.line, case.query.clone(), reason)),
                    None => report.failed.push((case.line, case.query.clone(), e)),
                }
                continue;
            }
            let ctx = store.context();
            let steps = case.steps.expect("parsed");
            let result = query(&ctx, &case.query, steps, Options::default())
                .await
                .map_err(|e| e.to_string());
            match (check(&case, result), case.skip.take()) {
                (Ok(()), _) => report.passed += 1,
                (Err(_), Some(reason)) => {
                    report.skipped.push((case.line, case.query.clone(), reason))
                }
                (Err(e), None) => report.failed.push((case.line, case.query.clone(), e)),
            }
        } else {
            report
                .failed
                .push((header_line, line.to_string(), "unknown command".into()));
        }
    }
    report
}

fn test_files() -> (Vec<PathBuf>, Option<String>) {
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&own)
        .expect("tests/promql exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "test"))
        .collect();
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/promql");
    let note = match std::fs::read_dir(&shared) {
        Ok(entries) => {
            files.extend(
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|e| e == "test")),
            );
            None
        }
        Err(_) => Some(format!(
            "Prometheus's test files are not beside the project ({}); only the project's own files ran",
            "../shared/promql"
        )),
    };
    files.sort();
    (files, note)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_test_files() {
    let known_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/promql/known_failures.txt");
    let known: HashSet<String> = std::fs::read_to_string(&known_path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let (files, note) = test_files();
    let mut summary = String::new();
    let mut unexpected = Vec::new();
    let mut fixed = Vec::new();
    let mut totals = (0, 0, 0);
    let mut reports = BTreeMap::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let report = run_file(file).await;
        let failed: HashSet<String> = report
            .failed
            .iter()
            .map(|(line, _, _)| format!("{name}:{line}"))
            .collect();
        for (line, q, e) in &report.failed {
            let id = format!("{name}:{line}");
            if !known.contains(&id) {
                unexpected.push(format!("{id}: {q}\n    {e}"));
            }
        }
        for id in known.iter().filter(|k| k.starts_with(&format!("{name}:"))) {
            if !failed.contains(id) {
                fixed.push(id.clone());
            }
        }
        totals.0 += report.passed;
        totals.1 += report.failed.len();
        totals.2 += report.skipped.len();
        reports.insert(name, report);
    }
    let _ = writeln!(
        summary,
        "{:<28} {:>7} {:>7} {:>8}",
        "file", "passed", "failed", "skipped"
    );
    for (name, r) in &reports {
        let _ = writeln!(
            summary,
            "{:<28} {:>7} {:>7} {:>8}",
            name,
            r.passed,
            r.failed.len(),
            r.skipped.len()
        );
    }
    let _ = writeln!(
        summary,
        "{:<28} {:>7} {:>7} {:>8}",
        "total", totals.0, totals.1, totals.2
    );
    println!("{summary}");
    let mut reasons: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reports.values() {
        for (_, _, why) in &r.skipped {
            *reasons
                .entry(why.split(' ').next().unwrap_or(""))
                .or_default() += 1;
        }
    }
    println!("skipped: cases on native histograms (not evaluated by this engine) that failed:");
    for (name, r) in &reports {
        for (line, q, why) in &r.skipped {
            println!("  {name}:{line}: {why}: {q}");
        }
    }
    println!("annotations (`expect warn`/`expect info`) are not compared");
    if std::env::var_os("PROMQL_LIST_FAILURES").is_some() {
        for (name, r) in &reports {
            for (line, q, e) in &r.failed {
                println!("FAIL {name}:{line}: {q}\n    {e}");
            }
        }
    }
    if let Some(note) = note {
        println!("NOTE: {note}");
    }
    if !fixed.is_empty() {
        println!(
            "now passing, remove from known_failures.txt: {}",
            fixed.join(" ")
        );
    }
    assert!(
        unexpected.is_empty(),
        "{} unexpected failures:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    let _ = ABSENT;
}
