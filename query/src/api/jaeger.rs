//! Jaeger's query HTTP API under `/jaeger` (its paths collide with Tempo's), so Grafana's
//! Jaeger datasource works with the URL `http://<query>/jaeger`: services, operations, trace
//! search, trace by id and service dependencies, in Jaeger's JSON shapes.
//!
//! Every answer is Jaeger's envelope `{"data":..,"total":..,"limit":0,"offset":0,
//! "errors":null}`; errors fill `errors` with `{"code","msg"}` and set the HTTP status. Times
//! are microseconds in traces and parameters (`start`, `end`), milliseconds for
//! dependencies (`endTs`, `lookback`), as in Jaeger.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde_json::{Value, json};
use strata_schema::{any_value_to_string, columns, hex_id};

use super::AppState;
use super::params::{number, param, params};
use crate::error::QueryError;
use crate::traces::filter::{self, quote};
use crate::traces::search::{SearchRequest, search as run_search};
use crate::traces::{TimeRange, catalog, fetch, now_ns, traceql};

/// Trace search without `start` looks back this far.
pub const DEFAULT_LOOKBACK_NS: i64 = 3_600 * 1_000_000_000;
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 1_000;

/// A [`QueryError`] answered in Jaeger's envelope.
pub struct JaegerError(QueryError);

impl From<QueryError> for JaegerError {
    fn from(e: QueryError) -> Self {
        Self(e)
    }
}

impl IntoResponse for JaegerError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let msg = self.0.public_message();
        let body = json!({
            "data": null, "total": 0, "limit": 0, "offset": 0,
            "errors": [{ "code": status.as_u16(), "msg": msg }],
        });
        (status, Json(body)).into_response()
    }
}

type Answer = Result<Json<Value>, JaegerError>;

fn envelope(data: Value, total: usize) -> Json<Value> {
    Json(json!({ "data": data, "total": total, "limit": 0, "offset": 0, "errors": null }))
}

/// `GET /jaeger/api/services`.
pub async fn services(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    let ctx = state.engine.session(state.tenant(&headers)?)?;
    let timeout = state.engine.config().timeout();
    let names = catalog::services(&ctx, catalog::recent(), timeout).await?;
    let total = names.len();
    Ok(envelope(json!(names), total))
}

/// `GET /jaeger/api/services/{service}/operations`: operation names.
pub async fn service_operations(
    State(state): State<AppState>,
    Path(service): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let ops = operation_rows(&state, &headers, &service, None).await?;
    let mut names: Vec<String> = ops.into_iter().map(|(n, _)| n).collect();
    names.dedup();
    let total = names.len();
    Ok(envelope(json!(names), total))
}

/// `GET /jaeger/api/operations?service=..[&spanKind=..]`: `[{"name","spanKind"}]`.
pub async fn operations(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let p = params(raw);
    let service = param(&p, "service")
        .ok_or_else(|| QueryError::BadRequest("parameter service is required".into()))?;
    let kind = match param(&p, "spanKind") {
        Some(k) => Some(traceql::kind_code(k).ok_or_else(|| {
            QueryError::BadRequest(format!(
                "spanKind={k:?}: use server, client, producer, consumer or internal"
            ))
        })?),
        None => None,
    };
    let ops = operation_rows(&state, &headers, service, kind).await?;
    let data: Vec<Value> = ops
        .iter()
        .map(|(name, kind)| json!({ "name": name, "spanKind": kind_name(*kind) }))
        .collect();
    let total = data.len();
    Ok(envelope(json!(data), total))
}

async fn operation_rows(
    state: &AppState,
    headers: &HeaderMap,
    service: &str,
    kind: Option<i32>,
) -> Result<Vec<(String, i32)>, QueryError> {
    let ctx = state.engine.session(state.tenant(headers)?)?;
    let timeout = state.engine.config().timeout();
    catalog::operations(&ctx, catalog::recent(), service, kind, timeout).await
}

/// `GET /jaeger/api/traces`: search by `service`, `operation`, `tags` (a JSON object, or
/// repeated `tag=key:value`), `minDuration`/`maxDuration` (of the matching span), `start`/
/// `end` (µs) and `limit`; or fetch by repeated `traceID`.
pub async fn find_traces(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let p = params(raw);
    let tenant = state.tenant(&headers)?;
    let ctx = state.engine.session(tenant)?;
    let timeout = state.engine.config().timeout();
    let ids: Vec<String> = p
        .iter()
        .filter(|(k, _)| k == "traceID")
        .map(|(_, v)| fetch::normalize_id(v))
        .collect::<Result<_, _>>()?;
    let ids = if !ids.is_empty() {
        ids
    } else {
        let request = search_request(&p)?;
        run_search(&ctx, &request, timeout)
            .await?
            .traces
            .into_iter()
            .map(|t| t.trace_id)
            .collect()
    };
    let traces = fetch::traces(&state.engine, tenant, &ids, None).await?;
    let data: Vec<Value> = traces.iter().map(|(id, rs)| trace_json(id, rs)).collect();
    let total = data.len();
    Ok(envelope(json!(data), total))
}

fn search_request(p: &[(String, String)]) -> Result<SearchRequest, QueryError> {
    let service = param(p, "service")
        .ok_or_else(|| QueryError::BadRequest("parameter service is required".into()))?;
    let mut extra = vec![format!("{} = {}", columns::SERVICE_NAME, quote(service))];
    if let Some(op) = param(p, "operation") {
        extra.push(format!("{} = {}", columns::NAME, quote(op)));
    }
    let mut tags: Vec<(String, String)> = Vec::new();
    if let Some(json) = param(p, "tags") {
        let map: BTreeMap<String, Value> = serde_json::from_str(json).map_err(|e| {
            QueryError::BadRequest(format!("tags must be a JSON object of strings: {e}"))
        })?;
        for (k, v) in map {
            let v = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            tags.push((k, v));
        }
    }
    for (_, tag) in p.iter().filter(|(k, _)| k == "tag") {
        let (k, v) = tag
            .split_once(':')
            .ok_or_else(|| QueryError::BadRequest(format!("tag={tag:?}: use key:value")))?;
        tags.push((k.to_string(), v.to_string()));
    }
    for (k, v) in tags {
        extra.push(filter::tag_or_status(&k, &v).map_err(QueryError::BadRequest)?);
    }
    for (name, op) in [("minDuration", ">="), ("maxDuration", "<=")] {
        if let Some(d) = param(p, name) {
            let nanos = traceql::parse_duration(d).ok_or_else(|| {
                QueryError::BadRequest(format!("{name}={d:?} is not a duration such as 100ms"))
            })?;
            extra.push(format!("{} {op} {nanos}", columns::DURATION_NANOS));
        }
    }
    let end_ns = number(p, "end")?
        .map(|us| us.saturating_mul(1_000))
        .unwrap_or_else(now_ns);
    let lookback = param(p, "lookback")
        .and_then(traceql::parse_duration)
        .unwrap_or(DEFAULT_LOOKBACK_NS);
    let start_ns = number(p, "start")?
        .map(|us| us.saturating_mul(1_000))
        .unwrap_or(end_ns.saturating_sub(lookback));
    if start_ns > end_ns {
        return Err(QueryError::BadRequest("start is after end".into()));
    }
    let limit = number(p, "limit")?
        .map(|l| (l.max(1) as usize).min(MAX_LIMIT))
        .unwrap_or(DEFAULT_LIMIT);
    let query = traceql::Query::Spanset(traceql::Cond::True);
    Ok(SearchRequest {
        compiled: filter::compile(&query).map_err(QueryError::BadRequest)?,
        extra,
        range: TimeRange { start_ns, end_ns },
        limit,
        min_trace_nanos: None,
        max_trace_nanos: None,
    })
}

/// `GET /jaeger/api/traces/{id}`.
pub async fn trace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let p = params(raw);
    let hint = match (number(&p, "start")?, number(&p, "end")?) {
        (Some(s), Some(e)) if s > 0 && e > 0 => Some(TimeRange {
            start_ns: s.saturating_mul(1_000),
            end_ns: e.saturating_mul(1_000),
        }),
        _ => None,
    };
    let (id, rs) = fetch::trace(&state.engine, state.tenant(&headers)?, &id, hint).await?;
    Ok(envelope(json!([trace_json(&id, &rs)]), 1))
}

/// `GET /jaeger/api/dependencies?endTs=<ms>&lookback=<ms>`: calls between services, from
/// spans whose parent belongs to another service.
pub async fn dependencies(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let p = params(raw);
    let end_ns = number(&p, "endTs")?
        .map(|ms| ms.saturating_mul(1_000_000))
        .unwrap_or_else(now_ns);
    let lookback_ns = number(&p, "lookback")?
        .map(|ms| ms.saturating_mul(1_000_000))
        .unwrap_or(24 * 3_600 * 1_000_000_000);
    let range = TimeRange {
        start_ns: end_ns.saturating_sub(lookback_ns),
        end_ns,
    };
    let ctx = state.engine.session(state.tenant(&headers)?)?;
    let edges = catalog::dependencies(&ctx, range, state.engine.config().timeout()).await?;
    let data: Vec<Value> = edges
        .iter()
        .map(|d| json!({ "parent": d.parent, "child": d.child, "callCount": d.calls }))
        .collect();
    let total = data.len();
    Ok(envelope(json!(data), total))
}

fn kind_name(kind: i32) -> &'static str {
    traceql::KINDS
        .iter()
        .find(|(_, c)| *c == kind)
        .map(|(n, _)| *n)
        .unwrap_or("unspecified")
}

/// One trace in Jaeger's UI JSON model.
pub fn trace_json(trace_id: &str, resource_spans: &[ResourceSpans]) -> Value {
    let mut processes = serde_json::Map::new();
    let mut process_ids: HashMap<String, String> = HashMap::new();
    let mut spans = Vec::new();
    for rs in resource_spans {
        let attrs = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let service = attrs
            .iter()
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| kv.value.as_ref())
            .map(any_value_to_string)
            .unwrap_or_else(|| "unknown_service".into());
        let tags: Vec<Value> = attrs
            .iter()
            .filter(|kv| kv.key != "service.name")
            .map(tag)
            .collect();
        let process = json!({ "serviceName": service, "tags": tags });
        let key = process.to_string();
        let next = process_ids.len() + 1;
        let pid = process_ids
            .entry(key)
            .or_insert_with(|| {
                let pid = format!("p{next}");
                processes.insert(pid.clone(), process);
                pid
            })
            .clone();
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                let span_id = hex_id::encode(&s.span_id);
                let mut references = Vec::new();
                if !s.parent_span_id.is_empty() {
                    references.push(json!({
                        "refType": "CHILD_OF",
                        "traceID": trace_id,
                        "spanID": hex_id::encode(&s.parent_span_id),
                    }));
                }
                for link in &s.links {
                    references.push(json!({
                        "refType": "FOLLOWS_FROM",
                        "traceID": hex_id::encode(&link.trace_id),
                        "spanID": hex_id::encode(&link.span_id),
                    }));
                }
                let mut tags: Vec<Value> = s.attributes.iter().map(tag).collect();
                if s.kind != 0 {
                    tags.push(
                        json!({"key": "span.kind", "type": "string", "value": kind_name(s.kind)}),
                    );
                }
                if let Some(scope) = &ss.scope
                    && !scope.name.is_empty()
                {
                    tags.push(
                        json!({"key": "otel.scope.name", "type": "string", "value": scope.name}),
                    );
                }
                if let Some(status) = &s.status {
                    match status.code {
                        1 => tags.push(
                            json!({"key": "otel.status_code", "type": "string", "value": "OK"}),
                        ),
                        2 => {
                            tags.push(json!({"key": "otel.status_code", "type": "string", "value": "ERROR"}));
                            tags.push(json!({"key": "error", "type": "bool", "value": true}));
                        }
                        _ => {}
                    }
                    if !status.message.is_empty() {
                        tags.push(json!({"key": "otel.status_description", "type": "string", "value": status.message}));
                    }
                }
                let logs: Vec<Value> = s
                    .events
                    .iter()
                    .map(|e| {
                        let mut fields =
                            vec![json!({"key": "event", "type": "string", "value": e.name})];
                        fields.extend(e.attributes.iter().map(tag));
                        json!({ "timestamp": e.time_unix_nano / 1_000, "fields": fields })
                    })
                    .collect();
                spans.push(json!({
                    "traceID": trace_id,
                    "spanID": span_id,
                    "flags": 1,
                    "operationName": s.name,
                    "references": references,
                    "startTime": s.start_time_unix_nano / 1_000,
                    "duration": s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano) / 1_000,
                    "tags": tags,
                    "logs": logs,
                    "processID": pid,
                    "warnings": null,
                }));
            }
        }
    }
    json!({ "traceID": trace_id, "spans": spans, "processes": processes, "warnings": null })
}

/// An OTLP attribute as a Jaeger tag.
fn tag(kv: &KeyValue) -> Value {
    let (kind, value) = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::BoolValue(b)) => ("bool", json!(b)),
        Some(any_value::Value::IntValue(i)) => ("int64", json!(i)),
        Some(any_value::Value::DoubleValue(d)) => ("float64", json!(d)),
        Some(any_value::Value::BytesValue(b)) => ("binary", json!(hex_id::encode(b))),
        _ => (
            "string",
            json!(
                kv.value
                    .as_ref()
                    .map(any_value_to_string)
                    .unwrap_or_default()
            ),
        ),
    };
    json!({ "key": kv.key, "type": kind, "value": value })
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span, Status, span::Event};

    use super::*;

    use strata_schema::any_value::kv;

    #[test]
    fn otlp_spans_become_jaeger_spans() {
        let rs = ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", any_value::Value::StringValue("api".into())),
                    kv("host.name", any_value::Value::StringValue("h1".into())),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![1; 16],
                    span_id: vec![2; 8],
                    parent_span_id: vec![3; 8],
                    name: "GET /x".into(),
                    kind: 2,
                    start_time_unix_nano: 5_000_000,
                    end_time_unix_nano: 7_500_000,
                    attributes: vec![kv("http.status_code", any_value::Value::IntValue(500))],
                    events: vec![Event {
                        time_unix_nano: 6_000_000,
                        name: "retry".into(),
                        ..Default::default()
                    }],
                    status: Some(Status {
                        code: 2,
                        message: "boom".into(),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let t = trace_json(&"01".repeat(16), &[rs]);
        let span = &t["spans"][0];
        assert_eq!(span["spanID"], "0202020202020202");
        assert_eq!(span["references"][0]["refType"], "CHILD_OF");
        assert_eq!(span["references"][0]["spanID"], "0303030303030303");
        assert_eq!(
            (span["startTime"].as_u64(), span["duration"].as_u64()),
            (Some(5_000), Some(2_500))
        );
        assert_eq!(span["processID"], "p1");
        assert_eq!(t["processes"]["p1"]["serviceName"], "api");
        assert_eq!(t["processes"]["p1"]["tags"][0]["key"], "host.name");
        let tags = span["tags"].as_array().unwrap();
        assert!(tags.contains(&json!({"key": "http.status_code", "type": "int64", "value": 500})));
        assert!(tags.contains(&json!({"key": "error", "type": "bool", "value": true})));
        assert!(tags.contains(&json!({"key": "span.kind", "type": "string", "value": "server"})));
        assert_eq!(span["logs"][0]["timestamp"], 6_000);
        assert_eq!(span["logs"][0]["fields"][0]["value"], "retry");
    }

    #[test]
    fn search_parameters_are_checked() {
        let p = |s: &str| params(Some(s.to_string()));
        assert!(search_request(&p("operation=x")).is_err());
        assert!(search_request(&p("service=a&minDuration=soon")).is_err());
        assert!(search_request(&p("service=a&tags=notjson")).is_err());
        assert!(search_request(&p("service=a&start=10&end=5")).is_err());
        let r = search_request(&p(
            r#"service=a&operation=GET&tags={"http.status_code":"500","error":"true"}&minDuration=1ms&start=1000&end=2000&limit=5"#,
        ))
        .unwrap();
        assert_eq!(r.limit, 5);
        assert_eq!(
            r.range,
            TimeRange {
                start_ns: 1_000_000,
                end_ns: 2_000_000
            }
        );
        assert_eq!(r.extra[0], "service_name = 'a'");
        assert_eq!(r.extra[1], "name = 'GET'");
        assert!(
            r.extra[2].ends_with("OR coalesce(status_code, 0) = 2)"),
            "{}",
            r.extra[2]
        );
        assert!(r.extra[3].contains("http.status_code"));
        assert_eq!(r.extra[4], "duration_nanos >= 1000000");
    }
}
