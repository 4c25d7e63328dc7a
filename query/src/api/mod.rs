//! The query service's HTTP API: one module per API family, one router here.
//!
//! - [`prom`]: the Prometheus HTTP API under `/api/v1/` (PromQL queries and metadata)
//! - [`sql`]: `POST /api/v1/sql`
//! - [`tempo`]: Tempo's API (`/api/traces/{id}`, `/api/v2/traces/{id}`, `/api/search`, tags,
//!   `/api/echo`, `/api/status/buildinfo`) for Grafana's Tempo datasource
//! - [`jaeger`]: Jaeger's query API under `/jaeger/api/` for Grafana's Jaeger datasource
//! - [`zipkin`]: Zipkin's query API under `/zipkin/api/v2/` for Grafana's Zipkin datasource
//! - [`loki`]: Loki's query API under `/loki/api/v1/` (log queries) for Grafana's Loki
//!   datasource and trace-to-logs links
//! - `/metrics` and `/ready` from the shared admin routes.
//!
//! Every route but the UI's files runs under the tenant's query limits ([`limits`]).
//!
//! The auth gate in front of these routes ([`crate::app`]) decides each request's tenant and
//! hands it over in `X-Scope-OrgID`; [`AppState::tenant`] reads it from there.

pub mod jaeger;
mod limits;
pub mod loki;
mod params;
pub mod prom;
pub mod sql;
pub mod tempo;
pub mod zipkin;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};

use crate::engine::Engine;
use crate::error::QueryError;
use crate::metrics::QueryMetrics;

pub use strata_server::auth::TENANT_HEADER;

#[derive(Clone)]
pub struct AppState {
    pub engine: Arc<Engine>,
    pub metrics: Arc<QueryMetrics>,
    pub limits: Arc<strata_server::limits::Overrides>,
}

impl AppState {
    /// The tenant a request is for.
    pub fn tenant<'a>(&'a self, headers: &'a HeaderMap) -> Result<&'a str, QueryError> {
        match headers.get(TENANT_HEADER) {
            None => Ok(&self.engine.config().default_tenant),
            Some(v) => v
                .to_str()
                .map_err(|_| QueryError::BadRequest("X-Scope-OrgID is not text".into())),
        }
    }
}

pub fn router(state: AppState) -> Router {
    let limit = state.engine.config().max_request_bytes;
    Router::new()
        .route("/api/v1/sql", post(sql::handle))
        .route("/api/v1/query", get(prom::query).post(prom::query))
        .route(
            "/api/v1/query_range",
            get(prom::query_range).post(prom::query_range),
        )
        .route("/api/v1/series", get(prom::series).post(prom::series))
        .route("/api/v1/labels", get(prom::labels).post(prom::labels))
        .route("/api/v1/label/{name}/values", get(prom::label_values))
        .route("/api/v1/metadata", get(prom::metadata))
        .route(
            "/api/v1/query_exemplars",
            get(prom::query_exemplars).post(prom::query_exemplars),
        )
        .route("/api/v1/status/buildinfo", get(prom::buildinfo))
        .route("/api/traces/{trace_id}", get(tempo::trace_v1))
        .route("/api/v2/traces/{trace_id}", get(tempo::trace_v2))
        .route("/api/search", get(tempo::search))
        .route("/api/search/tags", get(tempo::tags_v1))
        .route("/api/v2/search/tags", get(tempo::tags_v2))
        .route("/api/search/tag/{tag}/values", get(tempo::tag_values_v1))
        .route("/api/v2/search/tag/{tag}/values", get(tempo::tag_values_v2))
        .route("/api/echo", get(tempo::echo))
        .route("/api/status/buildinfo", get(tempo::buildinfo))
        .route("/jaeger/api/services", get(jaeger::services))
        .route(
            "/jaeger/api/services/{service}/operations",
            get(jaeger::service_operations),
        )
        .route("/jaeger/api/operations", get(jaeger::operations))
        .route("/jaeger/api/traces", get(jaeger::find_traces))
        .route("/jaeger/api/traces/{trace_id}", get(jaeger::trace))
        .route("/jaeger/api/dependencies", get(jaeger::dependencies))
        .route("/zipkin/api/v2/services", get(zipkin::services))
        .route("/zipkin/api/v2/spans", get(zipkin::span_names))
        .route("/zipkin/api/v2/traces", get(zipkin::traces))
        .route("/zipkin/api/v2/trace/{trace_id}", get(zipkin::trace))
        .route("/zipkin/api/v2/traceMany", get(zipkin::trace_many))
        .route("/zipkin/api/v2/dependencies", get(zipkin::dependencies))
        .route("/loki/api/v1/query_range", get(loki::query_range))
        .route("/loki/api/v1/query", get(loki::query))
        .route("/loki/api/v1/labels", get(loki::labels))
        .route("/loki/api/v1/label/{name}/values", get(loki::label_values))
        .layer(middleware::from_fn_with_state(state.clone(), limits::bound))
        .merge(crate::ui::router())
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Counts requests by route and status and times them.
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let start = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .observe(&route, response.status().as_u16(), start.elapsed());
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use strata_schema::Signal;
    use strata_storage::format::{ParquetOptions, encode};
    use strata_storage::layout;
    use tower::ServiceExt;

    use crate::config::QueryConfig;

    /// Writes `n` spans of trace `0x01..` as one file into `dir`, the collector's way.
    fn write_spans(dir: &std::path::Path, tenant: &str, n: usize) {
        let spans = (0..n)
            .map(|i| Span {
                trace_id: vec![1; 16],
                span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                name: "op".into(),
                start_time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                ..Default::default()
            })
            .collect();
        let batch = strata_schema::traces::to_batch(&[ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }])
        .unwrap();
        let (bytes, _) = encode(
            Signal::Traces,
            &[batch],
            Vec::new(),
            ParquetOptions {
                row_group_rows: 1024,
                zstd_level: 1,
            },
        )
        .unwrap();
        let rel = layout::file_path(tenant, Signal::Traces, 472_222, "c0");
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    fn app(dir: &std::path::Path, tweak: impl FnOnce(&mut QueryConfig)) -> axum::Router {
        let mut config = QueryConfig {
            storage: dir.display().to_string(),
            ..Default::default()
        };
        tweak(&mut config);
        crate::app(config).unwrap()
    }

    async fn sql(
        app: axum::Router,
        query: &str,
        tenant: Option<&str>,
    ) -> (StatusCode, serde_json::Value) {
        let mut req = Request::post("/api/v1/sql");
        if let Some(t) = tenant {
            req = req.header("x-scope-orgid", t);
        }
        let body = serde_json::json!({ "query": query }).to_string();
        let resp = app
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn counts_rows_per_tenant_and_prunes_by_partition() {
        let dir = tempfile::tempdir().unwrap();
        write_spans(dir.path(), "default", 10);
        write_spans(dir.path(), "acme", 3);
        let (s, v) = sql(app(dir.path(), |_| {}), "SELECT count(*) FROM spans", None).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["rows"][0][0], 10);
        let (_, v) = sql(
            app(dir.path(), |_| {}),
            "SELECT count(*) FROM spans",
            Some("acme"),
        )
        .await;
        assert_eq!(v["rows"][0][0], 3);
        let (_, v) = sql(
            app(dir.path(), |_| {}),
            "SELECT count(*) FROM spans",
            Some("nobody"),
        )
        .await;
        assert_eq!(v["rows"][0][0], 0);
        let (_, v) = sql(
            app(dir.path(), |_| {}),
            "SELECT DISTINCT date, hour FROM spans",
            None,
        )
        .await;
        assert_eq!(v["rows"], serde_json::json!([["2023-11-14", "22"]]));
        let (s, _) = sql(app(dir.path(), |_| {}), "SELECT 1", Some("../x")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn memory_limit_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let (s, v) = sql(
            app(dir.path(), |c| c.memory_limit_bytes = 64 * 1024),
            "SELECT v, count(*) FROM (SELECT value % 100000 AS v FROM generate_series(1, 2000000)) GROUP BY v ORDER BY v",
            None,
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["error"].as_str().unwrap().contains("memory"), "{v}");
    }

    #[tokio::test]
    async fn time_limit_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let (s, v) = sql(
            app(dir.path(), |c| c.timeout_ms = 1),
            "SELECT count(*) FROM generate_series(1, 1000000000) a",
            None,
        )
        .await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert_eq!(v["errorType"], "timeout");
    }

    #[tokio::test]
    async fn too_many_rows_ask_for_a_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (s, v) = sql(
            app(dir.path(), |c| c.max_result_rows = 10),
            "SELECT * FROM generate_series(1, 11)",
            None,
        )
        .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
        let (s, _) = sql(
            app(dir.path(), |c| c.max_result_rows = 10),
            "SELECT * FROM generate_series(1, 10)",
            None,
        )
        .await;
        assert_eq!(s, StatusCode::OK);
    }
}
