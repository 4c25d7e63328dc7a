//! Tempo's HTTP API, so Grafana's Tempo datasource works against Strata: trace by id (v1 and
//! v2, JSON or protobuf), TraceQL search, tag names and values (v1 and v2), `/api/echo` and
//! `/api/status/buildinfo`.
//!
//! Grafana fetches a trace from `/api/v2/traces/{id}` with `Accept: application/protobuf`,
//! and only on a 404 falls back to `/api/traces/{id}`; both answer the same spans. Times in
//! parameters are Unix seconds, as in Tempo. Errors are JSON `{"status":"error",...}` with
//! the HTTP status saying what went wrong.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use crate::error::QueryError;
use crate::traces::filter::{self, Compiled};
use crate::traces::search::{SearchRequest, search as run_search};
use crate::traces::summary::TraceSummary;
use crate::traces::tags::{self, Scope, Tag};
use crate::traces::{TimeRange, fetch, traceql};

/// Search and tag lookups without `start`/`end` cover this much recent time.
pub const DEFAULT_LOOKBACK_NS: i64 = 3_600 * 1_000_000_000;
/// Default and largest number of traces one search returns.
pub const DEFAULT_LIMIT: usize = 20;
pub const MAX_LIMIT: usize = 1_000;
/// Default number of matching spans shown per spanset.
pub const DEFAULT_SPSS: usize = 3;

/// Tempo's `tempopb.Trace`: field 1 holds the resource spans, as in OTLP's `TracesData`.
#[derive(Clone, PartialEq, Message)]
pub struct TempoTrace {
    #[prost(message, repeated, tag = "1")]
    pub resource_spans: Vec<ResourceSpans>,
}

/// Tempo's `tempopb.TraceByIDResponse` (API v2). `status` 0 is COMPLETE, 1 PARTIAL.
#[derive(Clone, PartialEq, Message)]
pub struct TraceByIdResponse {
    #[prost(message, optional, tag = "1")]
    pub trace: Option<TempoTrace>,
    #[prost(int32, tag = "3")]
    pub status: i32,
    #[prost(string, tag = "4")]
    pub message: String,
}

/// Query parameters as text, parsed here so that a bad value gets a message naming it.
#[derive(Debug, Default, Deserialize)]
pub struct Params {
    start: Option<String>,
    end: Option<String>,
    q: Option<String>,
    tags: Option<String>,
    #[serde(rename = "minDuration")]
    min_duration: Option<String>,
    #[serde(rename = "maxDuration")]
    max_duration: Option<String>,
    limit: Option<String>,
    spss: Option<String>,
    scope: Option<String>,
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn int_param(name: &str, v: &Option<String>) -> Result<Option<i64>, QueryError> {
    non_empty(v)
        .map(|s| {
            s.parse::<f64>()
                .map(|f| f as i64)
                .map_err(|_| QueryError::BadRequest(format!("{name}={s:?} is not a number")))
        })
        .transpose()
}

fn duration_param(name: &str, v: &Option<String>) -> Result<Option<i64>, QueryError> {
    non_empty(v)
        .map(|s| {
            traceql::parse_duration(s).ok_or_else(|| {
                QueryError::BadRequest(format!("{name}={s:?} is not a duration such as 250ms"))
            })
        })
        .transpose()
}

impl Params {
    fn range(&self) -> Result<TimeRange, QueryError> {
        let start = int_param("start", &self.start)?.filter(|s| *s > 0);
        let end = int_param("end", &self.end)?.filter(|s| *s > 0);
        let range = TimeRange::from_secs(start, end, DEFAULT_LOOKBACK_NS);
        if range.start_ns > range.end_ns {
            return Err(QueryError::BadRequest("start is after end".into()));
        }
        Ok(range)
    }

    /// The trace-by-id time hint: only when both ends are given (Grafana sends 0 for none).
    fn hint(&self) -> Result<Option<TimeRange>, QueryError> {
        let given = |v: &Option<String>| non_empty(v).is_some_and(|s| s != "0");
        if given(&self.start) && given(&self.end) {
            self.range().map(Some)
        } else {
            Ok(None)
        }
    }
}

fn wants_protobuf(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/protobuf") || v.contains("application/x-protobuf"))
}

fn protobuf(bytes: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/protobuf"),
        )],
        bytes,
    )
        .into_response()
}

/// `GET /api/traces/{id}`: `{"batches":[...]}` or `tempopb.Trace`.
pub async fn trace_v1(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let (_, resource_spans) = load_trace(&state, &headers, &id, &params).await?;
    Ok(if wants_protobuf(&headers) {
        protobuf(TempoTrace { resource_spans }.encode_to_vec())
    } else {
        Json(json!({ "batches": resource_spans })).into_response()
    })
}

/// `GET /api/v2/traces/{id}`: `{"trace":{"resourceSpans":[...]},"status":"COMPLETE"}` or
/// `tempopb.TraceByIDResponse`.
pub async fn trace_v2(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let (_, resource_spans) = load_trace(&state, &headers, &id, &params).await?;
    Ok(if wants_protobuf(&headers) {
        protobuf(
            TraceByIdResponse {
                trace: Some(TempoTrace { resource_spans }),
                status: 0,
                message: String::new(),
            }
            .encode_to_vec(),
        )
    } else {
        Json(json!({ "trace": { "resourceSpans": resource_spans }, "status": "COMPLETE" }))
            .into_response()
    })
}

async fn load_trace(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    params: &Params,
) -> Result<(String, Vec<ResourceSpans>), QueryError> {
    fetch::trace(&state.engine, state.tenant(headers)?, id, params.hint()?).await
}

/// `GET /api/search`: TraceQL (`q`) or tag (`tags`, `minDuration`, `maxDuration`) search.
pub async fn search(
    State(state): State<AppState>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Json<Value>, QueryError> {
    let query = traceql::parse(non_empty(&params.q).unwrap_or(""))
        .map_err(|e| QueryError::BadRequest(e.to_string()))?;
    let compiled = filter::compile(&query).map_err(QueryError::BadRequest)?;
    let extra = match non_empty(&params.tags) {
        Some(tags) => filter::tags_predicate(tags).map_err(QueryError::BadRequest)?,
        None => Vec::new(),
    };
    let limit = int_param("limit", &params.limit)?
        .map(|l| (l.max(1) as usize).min(MAX_LIMIT))
        .unwrap_or(DEFAULT_LIMIT);
    let spss = int_param("spss", &params.spss)?
        .map(|l| l.max(1) as usize)
        .unwrap_or(DEFAULT_SPSS);
    let request = SearchRequest {
        compiled,
        extra,
        range: params.range()?,
        limit,
        min_trace_nanos: duration_param("minDuration", &params.min_duration)?,
        max_trace_nanos: duration_param("maxDuration", &params.max_duration)?,
    };
    let ctx = state.engine.session(state.tenant(&headers)?)?;
    let result = run_search(&ctx, &request, state.engine.config().timeout()).await?;
    let traces: Vec<Value> = result
        .traces
        .iter()
        .map(|t| trace_json(t, &request.compiled, spss))
        .collect();
    Ok(Json(json!({
        "traces": traces,
        "metrics": {
            "inspectedTraces": result.inspected_traces,
            "completedJobs": 1,
            "totalJobs": 1,
        },
    })))
}

/// One search result in Tempo's `TraceSearchMetadata` JSON shape.
fn trace_json(t: &TraceSummary, compiled: &Compiled, spss: usize) -> Value {
    let spansets: Vec<Value> = (0..compiled.spansets.len())
        .filter(|i| t.spanset_matched(*i))
        .map(|i| {
            let matched: Vec<_> = t
                .spans
                .iter()
                .filter(|s| s.matched.get(i).copied().unwrap_or(false))
                .collect();
            let spans: Vec<Value> = matched
                .iter()
                .take(spss)
                .map(|s| {
                    json!({
                        "spanID": s.span_id,
                        "name": s.name,
                        "startTimeUnixNano": s.start_ns.to_string(),
                        "durationNanos": s.duration_nanos.to_string(),
                        "attributes": [
                            {"key": "service.name", "value": {"stringValue": s.service}},
                            {"key": "status", "value": {"stringValue": status_name(s.status)}},
                        ],
                    })
                })
                .collect();
            json!({ "spans": spans, "matched": matched.len() })
        })
        .collect();
    let services: serde_json::Map<String, Value> = t
        .services
        .iter()
        .map(|(name, s)| {
            (
                name.clone(),
                json!({ "spanCount": s.span_count, "errorCount": s.error_count }),
            )
        })
        .collect();
    json!({
        "traceID": t.trace_id,
        "rootServiceName": t.root_service,
        "rootTraceName": t.root_name,
        "startTimeUnixNano": t.start_ns.to_string(),
        "durationMs": t.duration_nanos / 1_000_000,
        "spanSet": spansets.first().cloned().unwrap_or(Value::Null),
        "spanSets": spansets,
        "serviceStats": services,
    })
}

fn status_name(code: i32) -> &'static str {
    traceql::STATUSES
        .iter()
        .find(|(_, c)| *c == code)
        .map(|(n, _)| *n)
        .unwrap_or("unset")
}

/// `GET /api/search/tags`: `{"tagNames":[...]}`, span and resource attribute keys.
pub async fn tags_v1(
    State(state): State<AppState>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Json<Value>, QueryError> {
    let ctx = state.engine.session(state.tenant(&headers)?)?;
    let range = params.range()?;
    let timeout = state.engine.config().timeout();
    let mut names = BTreeSet::new();
    for scope in [Scope::Span, Scope::Resource] {
        names.extend(tags::names(&ctx, scope, range, timeout).await?);
    }
    Ok(Json(json!({ "tagNames": names })))
}

/// `GET /api/v2/search/tags[?scope=span|resource|intrinsic]`: `{"scopes":[...]}`.
pub async fn tags_v2(
    State(state): State<AppState>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Json<Value>, QueryError> {
    let ctx = state.engine.session(state.tenant(&headers)?)?;
    let range = params.range()?;
    let timeout = state.engine.config().timeout();
    let want = non_empty(&params.scope).unwrap_or("all");
    if !matches!(want, "all" | "span" | "resource" | "intrinsic") {
        return Err(QueryError::BadRequest(format!(
            "scope={want:?}: use span, resource, intrinsic or all"
        )));
    }
    let mut scopes = Vec::new();
    for (name, scope) in [("span", Scope::Span), ("resource", Scope::Resource)] {
        if want == "all" || want == name {
            let tags = tags::names(&ctx, scope, range, timeout).await?;
            scopes.push(json!({ "name": name, "tags": tags }));
        }
    }
    if want == "all" || want == "intrinsic" {
        scopes.push(json!({ "name": "intrinsic", "tags": tags::INTRINSICS }));
    }
    Ok(Json(json!({ "scopes": scopes })))
}

/// `GET /api/search/tag/{tag}/values`: `{"tagValues":["a","b"]}`.
pub async fn tag_values_v1(
    State(state): State<AppState>,
    Path(tag): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Json<Value>, QueryError> {
    let values = tag_values(&state, &headers, &tag, &params).await?;
    let strings: BTreeSet<String> = values.into_iter().map(|v| v.value).collect();
    Ok(Json(json!({ "tagValues": strings })))
}

/// `GET /api/v2/search/tag/{tag}/values[?q=...]`: `{"tagValues":[{"type":..,"value":..}]}`.
pub async fn tag_values_v2(
    State(state): State<AppState>,
    Path(tag): Path<String>,
    Query(params): Query<Params>,
    headers: HeaderMap,
) -> Result<Json<Value>, QueryError> {
    let values = tag_values(&state, &headers, &tag, &params).await?;
    let typed: Vec<Value> = values
        .into_iter()
        .map(|v| json!({ "type": v.kind, "value": v.value }))
        .collect();
    Ok(Json(json!({ "tagValues": typed })))
}

async fn tag_values(
    state: &AppState,
    headers: &HeaderMap,
    tag: &str,
    params: &Params,
) -> Result<Vec<tags::TagValue>, QueryError> {
    let tag = Tag::parse(tag)?;
    // Grafana sends the query being typed as `q`; a filter that does not compile yet (half
    // typed) narrows nothing rather than failing the autocompletion.
    let filter = non_empty(&params.q)
        .and_then(|q| traceql::parse(q).ok())
        .and_then(|q| filter::compile(&q).ok())
        .filter(|c| c.spansets.len() == 1)
        .map(|c| c.spansets[0].clone())
        .unwrap_or_else(|| "TRUE".into());
    let ctx = state.engine.session(state.tenant(headers)?)?;
    tags::values(
        &ctx,
        &tag,
        params.range()?,
        &filter,
        state.engine.config().timeout(),
    )
    .await
}

/// `GET /api/echo`: Grafana's "Save & test".
pub async fn echo() -> &'static str {
    "echo"
}

/// `GET /api/status/buildinfo`. The version is the Tempo API level served (2.1: TraceQL
/// search and the v2 tag endpoints, no streaming or TraceQL metrics), with Strata's own
/// version as semver build metadata so that Grafana's feature checks read it right.
pub async fn buildinfo() -> Json<Value> {
    Json(json!({
        "version": format!("2.1.0+strata.{}", env!("CARGO_PKG_VERSION")),
        "revision": "",
        "branch": "",
        "buildUser": "",
        "buildDate": "",
        "goVersion": "",
    }))
}
