//! Loki's query API over the `logs` table, so Grafana's Loki datasource reads Strata's logs:
//! Explore, and the trace-to-logs links of the Tempo and Jaeger datasources.
//!
//! - `GET /loki/api/v1/query_range`: a LogQL log query ([`crate::logs::logql`]) with `start`,
//!   `end` (nanoseconds, seconds or RFC 3339, as Loki takes them), `limit` (100, at most
//!   5000) and `direction`; the answer is Loki's `streams` result. A record's stream is its
//!   stream labels plus its `trace_id`/`span_id`, as Loki labels records with structured
//!   metadata for clients that do not ask for categorized labels.
//! - `GET /loki/api/v1/query`: refused for log queries, as Loki does.
//! - `GET /loki/api/v1/labels` and `/loki/api/v1/label/{name}/values`: the stream labels with
//!   values in the range, and their values (at most 1000).
//!
//! Metric queries (`count_over_time`, ...) are refused with a 400 that says so; Strata's
//! metrics are read with PromQL.

use std::collections::HashMap;

use arrow::array::{Array, RecordBatch};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use chrono::DateTime;
use serde_json::{Map, Value, json};
use strata_schema::{Signal, columns};

use super::AppState;
use crate::error::QueryError;
use crate::logs::logql::{self, METADATA_LABELS, STREAM_LABELS};
use crate::traces::{TimeRange, ints, now_ns, run, strings, text};

type Params = Query<HashMap<String, String>>;

/// Loki's default and largest `limit` (`max_entries_limit_per_query`).
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 5000;
const MAX_LABEL_VALUES: usize = 1000;
/// Loki's default range when `start` is absent.
const DEFAULT_RANGE_NS: i64 = 3_600_000_000_000;

/// A Loki time parameter: float seconds, integer nanoseconds (seconds when 10 digits or
/// fewer), or RFC 3339.
fn parse_time(value: &str) -> Result<i64, String> {
    if value.contains('.')
        && let Ok(s) = value.parse::<f64>()
        && s.is_finite()
    {
        return Ok((s.trunc() as i64)
            .saturating_mul(1_000_000_000)
            .saturating_add((s.fract() * 1e9).round() as i64));
    }
    match value.parse::<i64>() {
        Ok(n) if value.trim_start_matches('-').len() <= 10 => Ok(n.saturating_mul(1_000_000_000)),
        Ok(n) => Ok(n),
        Err(_) => DateTime::parse_from_rfc3339(value)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
            .ok_or_else(|| format!("cannot parse {value:?} as a timestamp")),
    }
}

fn range(p: &HashMap<String, String>) -> Result<TimeRange, QueryError> {
    let time = |name: &str| {
        p.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| parse_time(v).map_err(|e| QueryError::BadRequest(format!("{name}: {e}"))))
            .transpose()
    };
    let end_ns = time("end")?.unwrap_or_else(now_ns);
    let start_ns = time("start")?.unwrap_or(end_ns.saturating_sub(DEFAULT_RANGE_NS));
    if end_ns < start_ns {
        return Err(QueryError::BadRequest(
            "end timestamp must not be before start time".into(),
        ));
    }
    Ok(TimeRange { start_ns, end_ns })
}

fn success(data: Value) -> Json<Value> {
    Json(json!({"status": "success", "data": data}))
}

/// `GET /loki/api/v1/query_range`.
pub async fn query_range(
    State(state): State<AppState>,
    Query(p): Params,
    headers: HeaderMap,
) -> Result<Json<Value>, QueryError> {
    let query = p
        .get("query")
        .ok_or_else(|| QueryError::BadRequest("query is required".into()))?;
    let parsed = logql::parse(query).map_err(QueryError::BadRequest)?;
    let range = range(&p)?;
    let limit = match p.get("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                QueryError::BadRequest(format!("limit must be between 1 and {MAX_LIMIT}"))
            })?,
    };
    let order = match p
        .get("direction")
        .map(|d| d.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("backward") => "DESC",
        Some("forward") => "ASC",
        Some(d) => {
            return Err(QueryError::BadRequest(format!(
                "direction {d:?}: use forward or backward"
            )));
        }
    };
    let labels: Vec<&str> = STREAM_LABELS
        .iter()
        .chain(&METADATA_LABELS)
        .copied()
        .collect();
    let label_columns: Vec<String> = labels
        .iter()
        .enumerate()
        .filter_map(|(i, l)| Some(format!("{} AS l{i}", logql::label_sql(l)?)))
        .collect();
    let time = columns::TIME;
    let sql = format!(
        "SELECT {time}, coalesce({body}, '') AS line, {labels} FROM logs WHERE {range} AND {pred} \
         ORDER BY {time} {order} LIMIT {limit}",
        body = columns::BODY,
        labels = label_columns.join(", "),
        range = range.sql_on(Signal::Logs.time_column()),
        pred = parsed.sql(),
    );
    let ctx = state.engine.session(state.tenant(&headers)?)?;
    let batches = run(&ctx, &sql, state.engine.config().timeout()).await?;
    Ok(success(json!({
        "resultType": "streams",
        "result": streams(&batches, &labels)?,
        "stats": {},
    })))
}

/// Rows (time, line, l0..) grouped into Loki streams in order of first appearance.
fn streams(batches: &[RecordBatch], labels: &[&str]) -> Result<Vec<Value>, QueryError> {
    let mut index: HashMap<Vec<String>, usize> = HashMap::new();
    let mut out: Vec<(Map<String, Value>, Vec<Value>)> = Vec::new();
    for batch in batches {
        let times = ints(batch, columns::TIME)?;
        let lines = strings(batch, "line")?;
        let columns: Vec<_> = (0..labels.len())
            .map(|i| strings(batch, &format!("l{i}")))
            .collect::<Result<_, _>>()?;
        for row in 0..batch.num_rows() {
            let key: Vec<String> = columns.iter().map(|c| text(c, row).to_string()).collect();
            let slot = match index.get(&key) {
                Some(&slot) => slot,
                None => {
                    let stream: Map<String, Value> = labels
                        .iter()
                        .zip(&key)
                        .filter(|(_, v)| !v.is_empty())
                        .map(|(l, v)| (l.to_string(), json!(v)))
                        .collect();
                    out.push((stream, Vec::new()));
                    index.insert(key, out.len() - 1);
                    out.len() - 1
                }
            };
            let time = if times.is_null(row) {
                0
            } else {
                times.value(row)
            };
            out[slot]
                .1
                .push(json!([time.to_string(), text(&lines, row)]));
        }
    }
    Ok(out
        .into_iter()
        .map(|(stream, values)| json!({"stream": stream, "values": values}))
        .collect())
}

/// `GET /loki/api/v1/query`: Loki answers log queries only over a range.
pub async fn query(Query(p): Params) -> Result<Json<Value>, QueryError> {
    let query = p
        .get("query")
        .ok_or_else(|| QueryError::BadRequest("query is required".into()))?;
    logql::parse(query).map_err(QueryError::BadRequest)?;
    Err(QueryError::BadRequest(
        "log queries are not supported as an instant query type, please change your query to \
         a range query type"
            .into(),
    ))
}

/// `GET /loki/api/v1/labels`: stream labels with a value in the range.
pub async fn labels(
    State(state): State<AppState>,
    Query(p): Params,
    headers: HeaderMap,
) -> Result<Json<Value>, QueryError> {
    let range = range(&p)?;
    let counts: Vec<String> = STREAM_LABELS
        .iter()
        .enumerate()
        .filter_map(|(i, l)| {
            Some(format!(
                "count(nullif({}, '')) AS l{i}",
                logql::label_sql(l)?
            ))
        })
        .collect();
    let sql = format!(
        "SELECT {} FROM logs WHERE {}",
        counts.join(", "),
        range.sql_on(Signal::Logs.time_column())
    );
    let ctx = state.engine.session(state.tenant(&headers)?)?;
    let batches = run(&ctx, &sql, state.engine.config().timeout()).await?;
    let mut present = Vec::new();
    for (i, label) in STREAM_LABELS.iter().enumerate() {
        let n: i64 = batches
            .iter()
            .map(|b| ints(b, &format!("l{i}")).map(|a| a.iter().flatten().sum::<i64>()))
            .sum::<Result<i64, _>>()?;
        if n > 0 {
            present.push(*label);
        }
    }
    present.sort_unstable();
    Ok(success(json!(present)))
}

/// `GET /loki/api/v1/label/{name}/values`, narrowed by an optional `query` selector.
pub async fn label_values(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(p): Params,
    headers: HeaderMap,
) -> Result<Json<Value>, QueryError> {
    let range = range(&p)?;
    let Some(expr) = logql::label_sql(&name) else {
        return Ok(success(json!([])));
    };
    let mut sql = format!(
        "SELECT DISTINCT {expr} AS v FROM logs WHERE {} AND {expr} <> ''",
        range.sql_on(Signal::Logs.time_column())
    );
    if let Some(q) = p.get("query").filter(|q| !q.trim().is_empty()) {
        let parsed = logql::parse(q).map_err(QueryError::BadRequest)?;
        sql.push_str(&format!(" AND {}", parsed.sql()));
    }
    sql.push_str(&format!(" ORDER BY v LIMIT {MAX_LABEL_VALUES}"));
    let ctx = state.engine.session(state.tenant(&headers)?)?;
    let batches = run(&ctx, &sql, state.engine.config().timeout()).await?;
    let mut values = Vec::new();
    for b in &batches {
        let v = strings(b, "v")?;
        values.extend(v.iter().flatten().map(str::to_string));
    }
    Ok(success(json!(values)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_loki_parses_them() {
        assert_eq!(parse_time("1700000000").unwrap(), 1_700_000_000_000_000_000);
        assert_eq!(
            parse_time("1700000000123456789").unwrap(),
            1_700_000_000_123_456_789
        );
        assert_eq!(
            parse_time("1700000000.5").unwrap(),
            1_700_000_000_500_000_000
        );
        assert_eq!(
            parse_time("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        assert!(parse_time("yesterday").is_err());
        assert!(
            parse_time("1.5e400").is_err(),
            "an infinite time is refused"
        );
    }
}
