//! The Prometheus HTTP API (`/api/v1/...`), what Grafana's Prometheus datasource calls.
//!
//! - `query`, `query_range` (GET, or POST with a form body), evaluated by [`crate::promql`];
//! - `series`, `labels`, `label/{name}/values`, `metadata`, `query_exemplars`,
//!   `status/buildinfo`.
//!
//! Answers use Prometheus's envelope (`{"status":"success","data":...}`, errors as
//! `{"status":"error","errorType":...,"error":...}` with 400 `bad_data`, 422 `execution`,
//! 503 `timeout`); sample values are strings (`"NaN"`, `"+Inf"`), times are seconds.
//! Unknown parameters are ignored. When `start` is omitted from a metadata request
//! (`series`, `labels`, label values, `metadata`), the last [`DEFAULT_METADATA_RANGE_MS`]
//! are searched; `end` defaults to now.
//!
//! Invariants:
//! - Queries are bounded: by the sample limit (`promql_max_samples`, while fetching and while
//!   evaluating), by the time limit (the `timeout` parameter, at most the configured one;
//!   evaluation stops at the deadline on its blocking thread), and by
//!   [`MAX_POINTS`] steps per range query.
//! - The series and label endpoints keep label sets, not samples, so their memory grows with
//!   series; `__name__` values and `metadata` come from the catalog's `DISTINCT`.
//! - Every error is one of Prometheus's error types; nothing answers with a bare 500 unless
//!   the service itself failed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use promql_parser::parser::{Expr, VectorSelector};

use super::AppState;
use crate::error::QueryError;
use crate::promql::eval::Deadline;
use crate::promql::value::{Labels, NAME, present};
use crate::promql::{self, Options, Steps, Value, catalog, naming, select};

/// How far back metadata requests without `start` look.
pub const DEFAULT_METADATA_RANGE_MS: i64 = 24 * 3600 * 1000;
/// Prometheus's limit on points per series in a range query.
const MAX_POINTS: i64 = 11_000;

/// Request parameters from the URL and, for a form POST, the body.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(method: &Method, query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Self {
        let mut pairs: Vec<(String, String)> = query
            .as_deref()
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .into_owned()
                    .collect()
            })
            .unwrap_or_default();
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if method == Method::POST && form {
            pairs.extend(url::form_urlencoded::parse(body).into_owned());
        }
        Self(pairs)
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn time(&self, name: &str) -> Result<Option<i64>, QueryError> {
        self.get(name).map(|v| parse_time(name, v)).transpose()
    }
}

fn bad(msg: String) -> QueryError {
    QueryError::BadRequest(msg)
}

/// Times beyond this many seconds from the epoch (about 31,700 years) are refused, so time
/// arithmetic cannot overflow.
const MAX_ABS_SECONDS: f64 = 1e12;

/// A time parameter: Unix seconds (with fractions) or RFC 3339.
fn parse_time(name: &str, v: &str) -> Result<i64, QueryError> {
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
    {
        if secs.abs() > MAX_ABS_SECONDS {
            return Err(bad(format!(
                "invalid parameter \"{name}\": {v} is out of range"
            )));
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            bad(format!(
                "invalid parameter \"{name}\": cannot parse \"{v}\" to a valid timestamp"
            ))
        })
}

/// A duration parameter: seconds (with fractions) or a Prometheus duration (`15s`, `1m30s`).
fn parse_duration(name: &str, v: &str) -> Result<i64, QueryError> {
    if let Ok(secs) = v.parse::<f64>()
        && secs.is_finite()
    {
        if secs.abs() > MAX_ABS_SECONDS {
            return Err(bad(format!(
                "invalid parameter \"{name}\": {v} is out of range"
            )));
        }
        return Ok((secs * 1000.0).round() as i64);
    }
    promql_parser::util::parse_duration(v)
        .map(|d| promql::eval::duration_ms(&d))
        .map_err(|_| {
            bad(format!(
                "invalid parameter \"{name}\": cannot parse \"{v}\" to a valid duration"
            ))
        })
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn success(data: &str) -> Response {
    let body = format!("{{\"status\":\"success\",\"data\":{data}}}");
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

fn json_str(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into()));
}

fn write_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, k);
        out.push(':');
        json_str(out, v);
    }
    out.push('}');
}

/// Seconds with up to millisecond precision, as Prometheus writes times.
/// Milliseconds as seconds with up to three decimals, the way Prometheus writes times
/// (`-1.5`, not `-2.500`).
fn write_time(out: &mut String, ms: i64) {
    if ms < 0 {
        out.push('-');
    }
    let abs = ms.unsigned_abs();
    let (secs, frac) = (abs / 1000, abs % 1000);
    if frac == 0 {
        let _ = write!(out, "{secs}");
    } else {
        let s = format!("{frac:03}");
        let _ = write!(out, "{secs}.{}", s.trim_end_matches('0'));
    }
}

fn write_point(out: &mut String, ms: i64, v: f64) {
    out.push('[');
    write_time(out, ms);
    out.push_str(",\"");
    out.push_str(&promql::value::format_value(v));
    out.push_str("\"]");
}

/// The `data` of a query answer.
fn result_json(value: &Value, steps: Steps, range: bool) -> String {
    let mut out = String::with_capacity(256);
    match value {
        Value::Scalar(v) if !range => {
            out.push_str("{\"resultType\":\"scalar\",\"result\":");
            write_point(&mut out, steps.start, v[0]);
            out.push('}');
        }
        Value::String(s) => {
            out.push_str("{\"resultType\":\"string\",\"result\":[");
            write_time(&mut out, steps.start);
            out.push(',');
            json_str(&mut out, s);
            out.push_str("]}");
        }
        Value::Vector(series) if !range => {
            out.push_str("{\"resultType\":\"vector\",\"result\":[");
            let mut first = true;
            for s in series.iter().filter(|s| present(s.values[0])) {
                if !first {
                    out.push(',');
                }
                first = false;
                out.push_str("{\"metric\":");
                write_labels(&mut out, &s.labels);
                out.push_str(",\"value\":");
                write_point(&mut out, steps.start, s.values[0]);
                out.push('}');
            }
            out.push_str("]}");
        }
        Value::Matrix(series) => {
            out.push_str("{\"resultType\":\"matrix\",\"result\":[");
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(&mut out, &s.labels);
                out.push_str(",\"values\":[");
                for (j, (&t, &v)) in s.times.iter().zip(&s.values).enumerate() {
                    if j > 0 {
                        out.push(',');
                    }
                    write_point(&mut out, t, v);
                }
                out.push_str("]}");
            }
            out.push_str("]}");
        }
        Value::Scalar(v) => {
            out.push_str("{\"resultType\":\"matrix\",\"result\":[{\"metric\":{},\"values\":[");
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_point(&mut out, steps.at(i), *x);
            }
            out.push_str("]}]}");
        }
        Value::Vector(series) => {
            let mut sorted: Vec<_> = series.iter().filter(|s| s.any_present()).collect();
            sorted.sort_by(|a, b| a.labels.cmp(&b.labels));
            out.push_str("{\"resultType\":\"matrix\",\"result\":[");
            for (i, s) in sorted.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str("{\"metric\":");
                write_labels(&mut out, &s.labels);
                out.push_str(",\"values\":[");
                let mut first = true;
                for (j, &v) in s.values.iter().enumerate() {
                    if !present(v) {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    write_point(&mut out, steps.at(j), v);
                }
                out.push_str("]}");
            }
            out.push_str("]}");
        }
    }
    out
}

fn options(state: &AppState, params: &Params) -> Result<Options, QueryError> {
    let config = state.engine.config();
    let mut opts = Options {
        lookback_ms: config.promql_lookback_ms as i64,
        max_samples: config.promql_max_samples,
        ..Options::default()
    };
    if let Some(v) = params.get("lookback_delta") {
        opts.lookback_ms = parse_duration("lookback_delta", v)?.max(1);
    }
    Ok(opts)
}

fn timeout(state: &AppState, params: &Params) -> Result<Duration, QueryError> {
    let limit = state.engine.config().timeout();
    Ok(match params.get("timeout") {
        Some(v) => Duration::from_millis(parse_duration("timeout", v)?.max(1) as u64).min(limit),
        None => limit,
    })
}

/// Fetches and evaluates under the time limit; evaluation runs on a blocking thread.
async fn evaluate(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    steps: Steps,
) -> Result<Value, QueryError> {
    let query = params
        .get("query")
        .ok_or_else(|| bad("invalid parameter \"query\": missing".into()))?;
    let expr = promql::parse(query)?;
    let tenant = state.tenant(headers)?;
    let ctx = state.engine.session(tenant)?;
    let limit = timeout(state, params)?;
    let opts = Options {
        deadline: Deadline::after(limit),
        ..options(state, params)?
    };
    let run = async {
        let prepared = promql::prepare(&ctx, expr, steps, opts).await?;
        tokio::task::spawn_blocking(move || prepared.eval())
            .await
            .map_err(|e| QueryError::Internal(format!("evaluation task: {e}")))?
    };
    tokio::time::timeout(limit, run)
        .await
        .map_err(|_| QueryError::Timeout(limit))?
}

pub async fn query(
    State(state): State<AppState>,
    method: Method,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, QueryError> {
    let params = Params::parse(&method, raw, &headers, &body);
    let t = params.time("time")?.unwrap_or_else(now_ms);
    let steps = Steps::instant(t);
    let value = evaluate(&state, &headers, &params, steps).await?;
    Ok(success(&result_json(&value, steps, false)))
}

pub async fn query_range(
    State(state): State<AppState>,
    method: Method,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, QueryError> {
    let params = Params::parse(&method, raw, &headers, &body);
    let missing = |n: &str| bad(format!("invalid parameter \"{n}\": missing"));
    let start = params.time("start")?.ok_or_else(|| missing("start"))?;
    let end = params.time("end")?.ok_or_else(|| missing("end"))?;
    let step = parse_duration("step", params.get("step").ok_or_else(|| missing("step"))?)?;
    if end < start {
        return Err(bad(
            "invalid parameter \"end\": end timestamp must not be before start time".into(),
        ));
    }
    if step <= 0 {
        return Err(bad(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if (end - start) / step > MAX_POINTS {
        return Err(bad(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
        ));
    }
    let steps = Steps { start, end, step };
    let value = evaluate(&state, &headers, &params, steps).await?;
    if let Value::Matrix(_) | Value::String(_) = value {
        return Err(bad(format!(
            "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
            value.type_name()
        )));
    }
    Ok(success(&result_json(&value, steps, true)))
}

/// The time range of a metadata request.
fn metadata_range(params: &Params) -> Result<(i64, i64), QueryError> {
    let end = params.time("end")?.unwrap_or_else(now_ms);
    let start = params
        .time("start")?
        .unwrap_or(end - DEFAULT_METADATA_RANGE_MS);
    Ok((start, end))
}

fn limit(params: &Params) -> Result<Option<usize>, QueryError> {
    match params.get("limit") {
        None => Ok(None),
        Some(v) => v
            .parse::<usize>()
            .map(|n| (n > 0).then_some(n))
            .map_err(|_| bad(format!("invalid parameter \"limit\": {v}"))),
    }
}

fn selectors(params: &Params) -> Result<Vec<VectorSelector>, QueryError> {
    params
        .all("match[]")
        .into_iter()
        .map(|m| match promql::parse(m)? {
            Expr::VectorSelector(vs) => Ok(vs),
            _ => Err(bad(format!(
                "invalid parameter \"match[]\": {m} is not a series selector"
            ))),
        })
        .collect()
}

/// The label sets of every series the selectors match in the range.
async fn series_of(
    state: &AppState,
    headers: &HeaderMap,
    selectors: &[VectorSelector],
    (start, end): (i64, i64),
) -> Result<BTreeSet<Labels>, QueryError> {
    let ctx = state.engine.session(state.tenant(headers)?)?;
    let mut out = BTreeSet::new();
    for vs in selectors {
        out.extend(select::fetch_labels(&ctx, vs, (start, end)).await?);
    }
    Ok(out)
}

fn all_series_selector() -> Result<VectorSelector, QueryError> {
    match promql::parse("{__name__=~\".+\"}")? {
        Expr::VectorSelector(vs) => Ok(vs),
        _ => Err(QueryError::Internal(
            "the all-series selector did not parse".into(),
        )),
    }
}

fn string_list<'a>(items: impl Iterator<Item = &'a str>, limit: Option<usize>) -> String {
    let mut out = String::from("[");
    for (i, s) in items.take(limit.unwrap_or(usize::MAX)).enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, s);
    }
    out.push(']');
    out
}

pub async fn series(
    State(state): State<AppState>,
    method: Method,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, QueryError> {
    let params = Params::parse(&method, raw, &headers, &body);
    let selectors = selectors(&params)?;
    if selectors.is_empty() {
        return Err(bad("no match[] parameter provided".into()));
    }
    let found = series_of(&state, &headers, &selectors, metadata_range(&params)?).await?;
    let mut out = String::from("[");
    for (i, labels) in found
        .iter()
        .take(limit(&params)?.unwrap_or(usize::MAX))
        .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        write_labels(&mut out, labels);
    }
    out.push(']');
    Ok(success(&out))
}

pub async fn labels(
    State(state): State<AppState>,
    method: Method,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, QueryError> {
    let params = Params::parse(&method, raw, &headers, &body);
    let mut selectors = selectors(&params)?;
    if selectors.is_empty() {
        selectors.push(all_series_selector()?);
    }
    let found = series_of(&state, &headers, &selectors, metadata_range(&params)?).await?;
    let names: BTreeSet<&str> = found
        .iter()
        .flat_map(|l| l.iter().map(|(k, _)| k))
        .collect();
    Ok(success(&string_list(names.into_iter(), limit(&params)?)))
}

pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    method: Method,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, QueryError> {
    let params = Params::parse(&method, raw, &headers, &body);
    let mut selectors = selectors(&params)?;
    let range = metadata_range(&params)?;
    if name == NAME && selectors.is_empty() {
        // Names come from the catalog, without reading samples.
        let ctx = state.engine.session(state.tenant(&headers)?)?;
        let families = catalog::metrics(&ctx, range.0, range.1).await?;
        let names: BTreeSet<&str> = families
            .values()
            .flat_map(|f| f.series_names.iter().map(String::as_str))
            .collect();
        return Ok(success(&string_list(names.into_iter(), limit(&params)?)));
    }
    if selectors.is_empty() {
        let selector = format!("{{{}!=\"\"}}", name);
        match promql::parse(&selector) {
            Ok(Expr::VectorSelector(vs)) => selectors.push(vs),
            _ => return Err(bad(format!("invalid label name {name:?}"))),
        }
    }
    let found = series_of(&state, &headers, &selectors, range).await?;
    let values: BTreeSet<&str> = found
        .iter()
        .map(|l| l.get(&name))
        .filter(|v| !v.is_empty())
        .collect();
    Ok(success(&string_list(values.into_iter(), limit(&params)?)))
}

pub async fn metadata(
    State(state): State<AppState>,
    method: Method,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, QueryError> {
    let params = Params::parse(&method, raw, &headers, &body);
    let range = metadata_range(&params)?;
    let ctx = state.engine.session(state.tenant(&headers)?)?;
    let families = catalog::metrics(&ctx, range.0, range.1).await?;
    let wanted = params.get("metric");
    let mut out = String::from("{");
    let chosen = families
        .iter()
        .filter(|(name, _)| wanted.is_none_or(|w| w == name.as_str()))
        .take(limit(&params)?.unwrap_or(usize::MAX));
    for (i, (name, family)) in chosen.enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(&mut out, name);
        let m = &family.metadata;
        out.push_str(":[");
        out.push_str(
            &serde_json::json!({"type": m.kind, "help": m.help, "unit": m.unit}).to_string(),
        );
        out.push(']');
    }
    out.push('}');
    Ok(success(&out))
}

pub async fn query_exemplars(
    State(state): State<AppState>,
    method: Method,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, QueryError> {
    let params = Params::parse(&method, raw, &headers, &body);
    let query = params
        .get("query")
        .ok_or_else(|| bad("invalid parameter \"query\": missing".into()))?;
    let expr = promql::parse(query)?;
    let (start, end) = metadata_range(&params)?;
    let ctx = state.engine.session(state.tenant(&headers)?)?;
    let mut selectors: BTreeMap<String, VectorSelector> = BTreeMap::new();
    collect_selectors(&expr, &mut selectors);
    let mut found: BTreeMap<Labels, Vec<naming::Exemplar>> = BTreeMap::new();
    for vs in selectors.values() {
        let resources = select::scan(&ctx, vs, (start, end)).await?;
        naming::for_each_exemplar(
            &resources,
            &|name| select::name_ok(vs, name),
            &mut |labels, e| {
                if e.time_ms >= start && e.time_ms <= end && select::matches(vs, &labels) {
                    found.entry(labels).or_default().push(e);
                }
            },
        );
    }
    let mut out = String::from("[");
    for (i, (labels, exemplars)) in found.iter_mut().enumerate() {
        exemplars.sort_by_key(|e| e.time_ms);
        if i > 0 {
            out.push(',');
        }
        out.push_str("{\"seriesLabels\":");
        write_labels(&mut out, labels);
        out.push_str(",\"exemplars\":[");
        for (j, e) in exemplars.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str("{\"labels\":");
            write_labels(&mut out, &e.labels);
            out.push_str(",\"value\":\"");
            out.push_str(&promql::value::format_value(e.value));
            out.push_str("\",\"timestamp\":");
            write_time(&mut out, e.time_ms);
            out.push('}');
        }
        out.push_str("]}");
    }
    out.push(']');
    Ok(success(&out))
}

fn collect_selectors(expr: &Expr, out: &mut BTreeMap<String, VectorSelector>) {
    let mut fetches = std::collections::HashMap::new();
    let bounds = promql::eval::QueryBounds {
        start: 0,
        end: 0,
        step: 1,
    };
    promql::eval::plan(expr, 0, 0, bounds, &Options::default(), &mut fetches);
    for (key, f) in fetches {
        out.insert(key, f.selector);
    }
}

pub async fn buildinfo() -> Response {
    success(
        &serde_json::json!({
            "version": env!("CARGO_PKG_VERSION"),
            "revision": "",
            "branch": "",
            "buildUser": "",
            "buildDate": "",
            "goVersion": "",
            "application": "strata",
        })
        .to_string(),
    )
}
