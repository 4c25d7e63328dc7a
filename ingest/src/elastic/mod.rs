//! Elasticsearch bulk ingest: the part of Elasticsearch's HTTP API that log shippers use
//! (Filebeat, Logstash, Fluent Bit's `es` output, Vector's `elasticsearch` sink and the
//! official clients' bulk helpers), so they can ship to Strata unchanged. Served under
//! `/elastic` on the OTLP/HTTP port and, with `--elasticsearch ADDR`, at the root of a port of
//! its own.
//!
//! - `GET /` answers the version information the shippers check, as an Elasticsearch 8 node;
//!   `_license`, `_xpack` and `_cluster/health` answer what their start-up checks expect.
//! - `_bulk` and `{index}/_bulk` ([`bulk`]), `{index}/_doc[/{id}]` and `{index}/_create/{id}`
//!   turn documents into log records ([`document`]) and ingest them through the
//!   [`OtlpReceiver`] of OTLP logs: tenants, limits and metrics are the OTLP ones, under
//!   `protocol="elasticsearch"`. Each item gets its own result: a bad document is refused
//!   with its error while the rest of the request is stored.
//! - Index templates, component templates, ILM policies, ingest pipelines, data streams and
//!   index creation are acknowledged and change nothing (Strata has no mappings); asked for,
//!   they do not exist, so a shipper that checks before it creates creates them.
//! - Every answer, errors included, carries `X-Elastic-Product: Elasticsearch`: the 8.x and
//!   later clients refuse a server without it. Errors are Elasticsearch's JSON error shape.

pub mod bulk;
pub mod document;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde_json::{Value, json};
use tower_http::decompression::RequestDecompressionLayer;

use strata_server::auth::Scope;

use crate::otlp::{Logs, OtlpReceiver, OtlpSignal, Payload, TENANT_HEADER};
use bulk::{Item, ItemError};

/// The path prefix on the OTLP/HTTP port.
pub const PREFIX: &str = "/elastic";
const PROTOCOL: &str = "elasticsearch";
/// The Elasticsearch version Strata answers as.
pub const VERSION: &str = "8.17.0";

struct Elastic {
    receiver: Arc<OtlpReceiver>,
    /// For generated document ids.
    next_id: AtomicU64,
}

/// The Elasticsearch routes at the root of a router, behind the receiver's gate.
pub fn router(receiver: Arc<OtlpReceiver>) -> Router {
    let gate = receiver.gate().clone();
    let state = Arc::new(Elastic {
        receiver,
        next_id: AtomicU64::new(0),
    });
    let routes = Router::new()
        .route("/", get(info).head(info))
        .route("/_bulk", post(bulk_root).put(bulk_root))
        .route("/{index}/_bulk", post(bulk_index).put(bulk_index))
        .route("/{index}/_doc", post(doc))
        .route("/{index}/_doc/{id}", post(doc_with_id).put(doc_with_id))
        .route("/{index}/_create/{id}", post(doc_with_id).put(doc_with_id))
        .route("/_license", get(license))
        .route("/_xpack", get(xpack))
        .route("/_cluster/health", get(health))
        .route("/_ilm/policy/{name}", any(settings))
        .route("/_ingest/pipeline/{name}", any(settings))
        .route("/{index}/{name}", any(settings))
        .route("/{index}", any(index))
        .fallback(unknown)
        .layer(RequestDecompressionLayer::new().gzip(true))
        .with_state(state);
    guarded(routes, gate)
}

/// The same routes under [`PREFIX`] (`/elastic` and `/elastic/` are both the root).
pub fn nested(receiver: Arc<OtlpReceiver>) -> Router {
    let gate = receiver.gate().clone();
    let root = Router::new().route(&format!("{PREFIX}/"), get(info).head(info));
    guarded(root, gate).merge(Router::new().nest(PREFIX, router(receiver)))
}

/// `routes` behind the gate with the `write` scope, every answer with the product header.
fn guarded(routes: Router, gate: Arc<strata_server::auth::Gate>) -> Router {
    strata_server::auth::http::require(routes, gate, Scope::Write, |denied, _| {
        error(
            strata_server::auth::http::status(denied),
            "security_exception",
            denied.message(),
        )
    })
    .layer(axum::middleware::map_response(product_header))
}

async fn product_header(mut response: Response) -> Response {
    response.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    response
}

/// An error in Elasticsearch's shape: `{"error":{"root_cause":[..],"type","reason"},"status"}`.
fn error(status: StatusCode, kind: &str, reason: impl Into<String>) -> Response {
    let reason = reason.into();
    let cause = json!({ "type": kind, "reason": reason });
    let mut response = (
        status,
        Json(json!({
            "error": { "root_cause": [cause], "type": kind, "reason": reason },
            "status": status.as_u16(),
        })),
    )
        .into_response();
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(crate::sink::RETRY_AFTER_SECS),
        );
    }
    response
}

async fn info(method: Method) -> Response {
    if method == Method::HEAD {
        return StatusCode::OK.into_response();
    }
    Json(json!({
        "name": "strata",
        "cluster_name": "strata",
        "cluster_uuid": "strata",
        "version": {
            "number": VERSION,
            "build_flavor": "default",
            "build_type": "strata",
            "build_hash": env!("CARGO_PKG_VERSION"),
            "build_date": "2026-01-01T00:00:00.000Z",
            "build_snapshot": false,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }))
    .into_response()
}

async fn license() -> Json<Value> {
    Json(json!({ "license": {
        "status": "active", "uid": "strata", "type": "basic", "mode": "basic",
        "issue_date_in_millis": 0, "max_nodes": 1000, "issued_to": "strata", "issuer": "strata",
        "start_date_in_millis": -1,
    }}))
}

async fn xpack() -> Json<Value> {
    Json(json!({
        "build": { "hash": env!("CARGO_PKG_VERSION"), "date": "2026-01-01T00:00:00.000Z" },
        "license": { "uid": "strata", "type": "basic", "mode": "basic", "status": "active" },
        "features": {
            "ilm": { "available": true, "enabled": true },
            "security": { "available": true, "enabled": false },
        },
    }))
}

async fn health() -> Json<Value> {
    Json(json!({
        "cluster_name": "strata", "status": "green", "timed_out": false,
        "number_of_nodes": 1, "number_of_data_nodes": 1, "active_primary_shards": 1,
        "active_shards": 1, "relocating_shards": 0, "initializing_shards": 0,
        "unassigned_shards": 0, "active_shards_percent_as_number": 100.0,
    }))
}

fn not_found(what: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "resource_not_found_exception",
        format!("{what} does not exist"),
    )
}

/// Templates, policies, pipelines and data streams: acknowledged when written, missing when
/// asked for.
async fn settings(
    method: Method,
    Path(params): Path<HashMap<String, String>>,
    uri: axum::http::Uri,
) -> Response {
    let path = uri.path();
    let known = [
        "_index_template",
        "_template",
        "_component_template",
        "_data_stream",
        "_ilm",
        "_ingest",
    ];
    let first = params
        .get("index")
        .map(String::as_str)
        .unwrap_or_else(|| path.trim_start_matches('/').split('/').next().unwrap_or(""));
    if !known.contains(&first) {
        return unknown(method, uri).await;
    }
    match method {
        Method::PUT | Method::POST => Json(json!({ "acknowledged": true })).into_response(),
        Method::DELETE => Json(json!({ "acknowledged": true })).into_response(),
        _ => not_found(path),
    }
}

/// `PUT /{index}` creates nothing and says it did; asking for an index finds none.
async fn index(method: Method, Path(index): Path<String>, uri: axum::http::Uri) -> Response {
    if index.starts_with('_') {
        return unknown(method, uri).await;
    }
    match method {
        Method::PUT => Json(json!({
            "acknowledged": true, "shards_acknowledged": true, "index": index,
        }))
        .into_response(),
        _ => error(
            StatusCode::NOT_FOUND,
            "index_not_found_exception",
            format!("no such index [{index}]"),
        ),
    }
}

async fn unknown(method: Method, uri: axum::http::Uri) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "illegal_argument_exception",
        format!(
            "request [{method} {}] is not part of the Elasticsearch API Strata serves",
            uri.path()
        ),
    )
}

fn tenant(headers: &HeaderMap) -> Option<String> {
    headers
        .get(TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

impl Elastic {
    fn refuse(
        &self,
        reason: &'static str,
        status: StatusCode,
        kind: &str,
        msg: String,
    ) -> Response {
        self.receiver
            .metrics()
            .refused_request(Logs::SIGNAL.as_str(), PROTOCOL, reason);
        error(status, kind, msg)
    }

    async fn body(&self, request: Request) -> Result<bytes::Bytes, Response> {
        crate::body::read(request.into_body(), self.receiver.max_request_bytes())
            .await
            .map_err(|e| {
                self.refuse(
                    e.reason(),
                    e.status(),
                    "illegal_argument_exception",
                    e.to_string(),
                )
            })
    }

    fn new_id(&self) -> String {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{:04x}", now_ns(), n & 0xffff)
    }

    /// Converts and stores the items' documents; returns each item's answer.
    async fn ingest(
        &self,
        tenant: Option<&str>,
        mut items: Vec<Item>,
        bytes: usize,
    ) -> Result<Vec<Value>, Response> {
        let now = now_ns();
        let mut groups: HashMap<Vec<u8>, usize> = HashMap::new();
        let mut request = ExportLogsServiceRequest::default();
        // The items of each resource group, in the order their rows take in the batch.
        let mut group_items: Vec<Vec<usize>> = Vec::new();
        let mut stored = 0usize;
        for (index, item) in items.iter_mut().enumerate() {
            let Ok(doc) = &item.doc else { continue };
            match document::to_record(&item.index, doc, now) {
                Ok(r) => {
                    let resource = Resource {
                        attributes: r.resource,
                        ..Default::default()
                    };
                    let key = prost::Message::encode_to_vec(&resource);
                    let at = *groups.entry(key).or_insert_with(|| {
                        request.resource_logs.push(ResourceLogs {
                            resource: Some(resource),
                            scope_logs: vec![ScopeLogs::default()],
                            schema_url: String::new(),
                        });
                        group_items.push(Vec::new());
                        request.resource_logs.len() - 1
                    });
                    request.resource_logs[at].scope_logs[0]
                        .log_records
                        .push(r.record);
                    group_items[at].push(index);
                    stored += 1;
                }
                Err(e) => item.doc = Err(ItemError::new(400, e.kind, e.reason)),
            }
        }
        let refused = items.len() - stored;
        if refused > 0 {
            self.receiver
                .refuse(Logs::SIGNAL.as_str(), "invalid", refused as u64);
        }
        if stored > 0 {
            let converted = Logs::convert(&mut request).map_err(|e| {
                self.refuse(
                    e.reason(),
                    e.http_status(),
                    "illegal_argument_exception",
                    e.public_message(),
                )
            })?;
            let rejected = self
                .receiver
                .export::<Logs>(
                    PROTOCOL,
                    tenant,
                    Payload::Converted(converted.with_bytes(bytes)),
                )
                .await
                .map_err(|e| {
                    let kind = match e.http_status() {
                        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                            "es_rejected_execution_exception"
                        }
                        StatusCode::BAD_REQUEST => "illegal_argument_exception",
                        _ => "exception",
                    };
                    error(e.http_status(), kind, e.public_message())
                })?;
            // Records the tenant's limits left out are refused item by item.
            if let Some(kept) = &rejected.kept {
                let rows = group_items.iter().flatten();
                for (&index, kept) in rows.zip(kept) {
                    if !kept {
                        items[index].doc = Err(ItemError::new(
                            400,
                            "illegal_argument_exception",
                            format!("left out by the tenant's limits: {}", rejected.message),
                        ));
                    }
                }
            }
        }
        let mut seq = 0u64;
        Ok(items
            .into_iter()
            .map(|item| {
                let id = item.id.clone().unwrap_or_else(|| self.new_id());
                let body = match &item.doc {
                    Ok(_) => {
                        seq += 1;
                        json!({
                            "_index": item.index, "_id": id, "_version": 1, "result": "created",
                            "_shards": { "total": 1, "successful": 1, "failed": 0 },
                            "_seq_no": seq - 1, "_primary_term": 1, "status": 201,
                        })
                    }
                    Err(e) => json!({
                        "_index": item.index, "_id": id, "status": e.status,
                        "error": { "type": e.kind, "reason": e.reason },
                    }),
                };
                json!({ item.action: body })
            })
            .collect())
    }

    async fn bulk(&self, index: Option<String>, request: Request) -> Response {
        let started = Instant::now();
        let tenant = tenant(request.headers());
        let body = match self.body(request).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let items = match bulk::parse(&body, index.as_deref()) {
            Ok(items) => items,
            Err(e) => {
                return self.refuse(
                    "invalid",
                    StatusCode::BAD_REQUEST,
                    "illegal_argument_exception",
                    e,
                );
            }
        };
        if items.is_empty() {
            return self.refuse(
                "invalid",
                StatusCode::BAD_REQUEST,
                "action_request_validation_exception",
                "Validation Failed: 1: no requests added;".into(),
            );
        }
        match self.ingest(tenant.as_deref(), items, body.len()).await {
            Ok(results) => {
                let errors = results.iter().any(|r| {
                    r.as_object()
                        .and_then(|o| o.values().next())
                        .is_some_and(|v| v.get("error").is_some())
                });
                Json(json!({
                    "took": started.elapsed().as_millis() as u64,
                    "errors": errors,
                    "items": results,
                }))
                .into_response()
            }
            Err(r) => r,
        }
    }

    /// One document: `POST {index}/_doc`, `PUT {index}/_doc/{id}`, `{index}/_create/{id}`.
    async fn single(&self, index: String, id: Option<String>, request: Request) -> Response {
        let tenant = tenant(request.headers());
        let create = request.uri().path().contains("/_create/");
        let body = match self.body(request).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let doc = serde_json::from_slice::<Value>(&body).map_err(|e| {
            ItemError::new(
                400,
                "document_parsing_exception",
                format!("failed to parse the document: {e}"),
            )
        });
        let item = Item {
            action: if create { "create" } else { "index" },
            index,
            id,
            doc,
        };
        match self.ingest(tenant.as_deref(), vec![item], body.len()).await {
            Ok(mut results) => {
                let result = results
                    .pop()
                    .and_then(|r| r.as_object().and_then(|o| o.values().next().cloned()))
                    .unwrap_or_default();
                match result.get("error") {
                    Some(e) => error(
                        StatusCode::BAD_REQUEST,
                        e["type"].as_str().unwrap_or("exception"),
                        e["reason"].as_str().unwrap_or_default(),
                    ),
                    None => (StatusCode::CREATED, Json(result)).into_response(),
                }
            }
            Err(r) => r,
        }
    }
}

async fn bulk_root(State(es): State<Arc<Elastic>>, request: Request) -> Response {
    es.bulk(None, request).await
}

async fn bulk_index(
    State(es): State<Arc<Elastic>>,
    Path(index): Path<String>,
    request: Request,
) -> Response {
    es.bulk(Some(index), request).await
}

async fn doc(
    State(es): State<Arc<Elastic>>,
    Path(index): Path<String>,
    request: Request,
) -> Response {
    es.single(index, None, request).await
}

async fn doc_with_id(
    State(es): State<Arc<Elastic>>,
    Path((index, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    es.single(index, Some(id), request).await
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests;
