//! Zipkin's query API (v2) under `/zipkin`, so Grafana's Zipkin datasource works with the URL
//! `http://<query>/zipkin`: services, span names, trace search, traces by id and service
//! dependencies, in Zipkin's JSON shapes.
//!
//! Spans are given back as the Zipkin receiver took them in (`strata_ingest::zipkin`), read
//! the other way: the resource's `service.name` is the local endpoint, `peer.service` and
//! `net.peer.*` the remote one, events are annotations, the status is the `error` and
//! `otel.status_code` tags, and the other resource and span attributes are tags. Times are
//! microseconds, and `endTs` / `lookback` milliseconds, as in Zipkin. Errors are plain text
//! with the HTTP status, as Zipkin's server answers them.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use serde_json::{Map, Value, json};
use strata_schema::{any_value_to_string, columns, hex_id};

use super::AppState;
use super::params::{number, param, params};
use crate::error::QueryError;
use crate::traces::filter::{self, quote};
use crate::traces::search::{SearchRequest, search as run_search};
use crate::traces::{TimeRange, catalog, fetch, now_ns, traceql};

/// Zipkin's default lookback of searches and dependencies: a day.
const DEFAULT_LOOKBACK_MS: i64 = 86_400_000;
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 1_000;

/// A [`QueryError`] answered as Zipkin does: plain text with the status.
pub struct ZipkinError(QueryError);

impl From<QueryError> for ZipkinError {
    fn from(e: QueryError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ZipkinError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        let msg = self.0.public_message();
        (status, msg).into_response()
    }
}

type Answer = Result<Json<Value>, ZipkinError>;

/// `endTs` and `lookback` (ms) as a range.
fn range(p: &[(String, String)]) -> Result<TimeRange, QueryError> {
    let end_ns = number(p, "endTs")?
        .map(|ms| ms.saturating_mul(1_000_000))
        .unwrap_or_else(now_ns);
    let lookback = number(p, "lookback")?.unwrap_or(DEFAULT_LOOKBACK_MS);
    if lookback < 0 {
        return Err(QueryError::BadRequest("lookback must be positive".into()));
    }
    Ok(TimeRange {
        start_ns: end_ns.saturating_sub(lookback.saturating_mul(1_000_000)),
        end_ns,
    })
}

/// `GET /zipkin/api/v2/services`.
pub async fn services(State(state): State<AppState>, headers: HeaderMap) -> Answer {
    let ctx = state.engine.session(state.tenant(&headers)?)?;
    let timeout = state.engine.config().timeout();
    Ok(Json(json!(
        catalog::services(&ctx, catalog::recent(), timeout).await?
    )))
}

/// `GET /zipkin/api/v2/spans?serviceName=..`: the service's span names.
pub async fn span_names(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let p = params(raw);
    let service = param(&p, "serviceName")
        .ok_or_else(|| QueryError::BadRequest("serviceName is required".into()))?;
    let ctx = state.engine.session(state.tenant(&headers)?)?;
    let timeout = state.engine.config().timeout();
    let mut names: Vec<String> =
        catalog::operations(&ctx, catalog::recent(), service, None, timeout)
            .await?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
    names.dedup();
    Ok(Json(json!(names)))
}

/// `GET /zipkin/api/v2/traces`: search by `serviceName`, `spanName`, `annotationQuery`
/// (`error and http.method=GET`), `minDuration` / `maxDuration` (µs, of a matching span),
/// `endTs` / `lookback` (ms) and `limit`; newest traces first, each a list of spans.
pub async fn traces(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let p = params(raw);
    let request = search_request(&p)?;
    let tenant = state.tenant(&headers)?;
    let ctx = state.engine.session(tenant)?;
    let ids: Vec<String> = run_search(&ctx, &request, state.engine.config().timeout())
        .await?
        .traces
        .into_iter()
        .map(|t| t.trace_id)
        .collect();
    let found = fetch::traces(&state.engine, tenant, &ids, None).await?;
    Ok(Json(json!(
        found
            .iter()
            .map(|(_, rs)| Value::Array(spans(rs)))
            .collect::<Vec<_>>()
    )))
}

fn search_request(p: &[(String, String)]) -> Result<SearchRequest, QueryError> {
    let mut extra = Vec::new();
    if let Some(service) = param(p, "serviceName") {
        extra.push(format!("{} = {}", columns::SERVICE_NAME, quote(service)));
    }
    if let Some(name) = param(p, "spanName").filter(|n| *n != "all") {
        extra.push(format!("{} = {}", columns::NAME, quote(name)));
    }
    if let Some(q) = param(p, "annotationQuery") {
        for term in q.split(" and ").map(str::trim).filter(|t| !t.is_empty()) {
            extra.push(match term.split_once('=') {
                Some((k, v)) => {
                    filter::tag_or_status(k.trim(), v.trim()).map_err(QueryError::BadRequest)?
                }
                None => filter::tag_exists(term),
            });
        }
    }
    for (name, op) in [("minDuration", ">="), ("maxDuration", "<=")] {
        if let Some(us) = number(p, name)? {
            extra.push(format!(
                "{} {op} {}",
                columns::DURATION_NANOS,
                us.saturating_mul(1_000)
            ));
        }
    }
    let limit = number(p, "limit")?
        .map(|l| (l.max(1) as usize).min(MAX_LIMIT))
        .unwrap_or(DEFAULT_LIMIT);
    let query = traceql::Query::Spanset(traceql::Cond::True);
    Ok(SearchRequest {
        compiled: filter::compile(&query).map_err(QueryError::BadRequest)?,
        extra,
        range: range(p)?,
        limit,
        min_trace_nanos: None,
        max_trace_nanos: None,
    })
}

/// `GET /zipkin/api/v2/trace/{traceId}`: the trace's spans; 404 when none is stored.
pub async fn trace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let (_, rs) = fetch::trace(&state.engine, state.tenant(&headers)?, &id, None).await?;
    Ok(Json(Value::Array(spans(&rs))))
}

/// `GET /zipkin/api/v2/traceMany?traceIds=a,b`: the traces found, each a list of spans.
pub async fn trace_many(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let p = params(raw);
    let ids: Vec<String> = param(&p, "traceIds")
        .ok_or_else(|| QueryError::BadRequest("traceIds is required".into()))?
        .split(',')
        .map(fetch::normalize_id)
        .collect::<Result<_, _>>()?;
    let found = fetch::traces(&state.engine, state.tenant(&headers)?, &ids, None).await?;
    Ok(Json(json!(
        found
            .iter()
            .map(|(_, rs)| Value::Array(spans(rs)))
            .collect::<Vec<_>>()
    )))
}

/// `GET /zipkin/api/v2/dependencies?endTs=..&lookback=..`: calls between services.
pub async fn dependencies(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Answer {
    let p = params(raw);
    let ctx = state.engine.session(state.tenant(&headers)?)?;
    let edges = catalog::dependencies(&ctx, range(&p)?, state.engine.config().timeout()).await?;
    Ok(Json(json!(
        edges
            .iter()
            .map(|d| json!({
                "parent": d.parent, "child": d.child,
                "callCount": d.calls, "errorCount": d.errors,
            }))
            .collect::<Vec<_>>()
    )))
}

/// The attributes that are endpoint fields or flags in Zipkin, not tags.
const ENDPOINT_KEYS: &[&str] = &[
    "net.host.ip",
    "net.host.port",
    "peer.service",
    "net.peer.ip",
    "net.peer.port",
    "zipkin.shared",
];

fn lookup<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
}

fn text_of(v: &any_value::Value) -> String {
    any_value_to_string(&opentelemetry_proto::tonic::common::v1::AnyValue {
        value: Some(v.clone()),
    })
}

/// An event attribute in the JSON of an annotation: scalars as themselves.
fn any_json(v: &opentelemetry_proto::tonic::common::v1::AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone().into(),
        Some(any_value::Value::BoolValue(b)) => (*b).into(),
        Some(any_value::Value::IntValue(i)) => (*i).into(),
        Some(any_value::Value::DoubleValue(d)) => json!(d),
        _ => any_value_to_string(v).into(),
    }
}

/// A Zipkin endpoint from a service name and the `net.<side>.ip` / `.port` attributes.
fn endpoint(service: Option<String>, attrs: &[KeyValue], side: &str) -> Option<Value> {
    let mut e = Map::new();
    if let Some(s) = service {
        e.insert("serviceName".into(), s.into());
    }
    if let Some(ip) = lookup(attrs, &format!("net.{side}.ip")).map(text_of) {
        let field = if ip.contains(':') { "ipv6" } else { "ipv4" };
        e.insert(field.into(), ip.into());
    }
    if let Some(port) = lookup(attrs, &format!("net.{side}.port")).map(text_of)
        && let Ok(port) = port.parse::<u16>()
    {
        e.insert("port".into(), port.into());
    }
    (!e.is_empty()).then_some(Value::Object(e))
}

/// A trace id as Zipkin writes it: 16 hex digits when the high half is zero.
fn zipkin_trace_id(id: &[u8]) -> String {
    let hex = hex_id::encode(id);
    match hex.strip_prefix("0000000000000000") {
        Some(low) if hex.len() == 32 => low.to_string(),
        _ => hex,
    }
}

fn kind_name(kind: i32) -> Option<&'static str> {
    match kind {
        2 => Some("SERVER"),
        3 => Some("CLIENT"),
        4 => Some("PRODUCER"),
        5 => Some("CONSUMER"),
        _ => None,
    }
}

/// The spans of one trace in Zipkin's v2 JSON, in start order.
pub fn spans(resource_spans: &[ResourceSpans]) -> Vec<Value> {
    let mut out: Vec<(u64, Value)> = Vec::new();
    for rs in resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or_default();
        let service = lookup(resource, "service.name").map(text_of);
        for ss in &rs.scope_spans {
            for s in &ss.spans {
                let mut tags: BTreeMap<String, Value> = BTreeMap::new();
                for kv in resource.iter().filter(|kv| kv.key != "service.name") {
                    if let Some(v) = &kv.value {
                        tags.insert(kv.key.clone(), any_value_to_string(v).into());
                    }
                }
                for kv in s
                    .attributes
                    .iter()
                    .filter(|kv| !ENDPOINT_KEYS.contains(&kv.key.as_str()))
                {
                    if let Some(v) = &kv.value {
                        tags.insert(kv.key.clone(), any_value_to_string(v).into());
                    }
                }
                if let Some(scope) = ss.scope.as_ref().filter(|sc| !sc.name.is_empty()) {
                    // Both spellings, as the OpenTelemetry exporters write them.
                    for (name, version) in [
                        ("otel.scope.name", "otel.scope.version"),
                        ("otel.library.name", "otel.library.version"),
                    ] {
                        tags.insert(name.into(), scope.name.clone().into());
                        tags.insert(version.into(), scope.version.clone().into());
                    }
                }
                match s.status.as_ref().map(|st| (st.code, st.message.as_str())) {
                    Some((2, message)) => {
                        tags.insert("otel.status_code".into(), "ERROR".into());
                        tags.insert("error".into(), message.into());
                    }
                    Some((1, _)) => {
                        tags.insert("otel.status_code".into(), "OK".into());
                    }
                    _ => {}
                }
                let mut z = Map::new();
                z.insert("traceId".into(), zipkin_trace_id(&s.trace_id).into());
                z.insert("id".into(), hex_id::encode(&s.span_id).into());
                if !s.parent_span_id.is_empty() {
                    z.insert("parentId".into(), hex_id::encode(&s.parent_span_id).into());
                }
                if let Some(k) = kind_name(s.kind) {
                    z.insert("kind".into(), k.into());
                }
                z.insert("name".into(), s.name.clone().into());
                z.insert("timestamp".into(), (s.start_time_unix_nano / 1_000).into());
                let duration = s.end_time_unix_nano.saturating_sub(s.start_time_unix_nano);
                if duration > 0 {
                    z.insert("duration".into(), duration.div_ceil(1_000).into());
                }
                if let Some(e) = endpoint(service.clone(), &s.attributes, "host") {
                    z.insert("localEndpoint".into(), e);
                }
                let peer = lookup(&s.attributes, "peer.service").map(text_of);
                if let Some(e) = endpoint(peer, &s.attributes, "peer") {
                    z.insert("remoteEndpoint".into(), e);
                }
                if !s.events.is_empty() {
                    let mut events: Vec<&_> = s.events.iter().collect();
                    events.sort_by_key(|e| e.time_unix_nano);
                    let annotations: Vec<Value> = events
                        .iter()
                        .map(|e| {
                            let value = if e.attributes.is_empty() {
                                e.name.clone()
                            } else {
                                let attrs: Map<String, Value> = e
                                    .attributes
                                    .iter()
                                    .filter_map(|kv| {
                                        Some((kv.key.clone(), any_json(kv.value.as_ref()?)))
                                    })
                                    .collect();
                                json!({ e.name.clone(): attrs }).to_string()
                            };
                            json!({ "timestamp": e.time_unix_nano / 1_000, "value": value })
                        })
                        .collect();
                    z.insert("annotations".into(), annotations.into());
                }
                if !tags.is_empty() {
                    z.insert("tags".into(), json!(tags));
                }
                if matches!(
                    lookup(&s.attributes, "zipkin.shared"),
                    Some(any_value::Value::BoolValue(true))
                ) {
                    z.insert("shared".into(), true.into());
                }
                out.push((s.start_time_unix_nano, Value::Object(z)));
            }
        }
    }
    out.sort_by_key(|(t, _)| *t);
    out.into_iter().map(|(_, v)| v).collect()
}

#[cfg(test)]
mod tests;
