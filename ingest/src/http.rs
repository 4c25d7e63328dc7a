//! Every HTTP receiver on one router, the one the OTLP/HTTP port serves: OTLP
//! (`/v1/traces`, `/v1/metrics`, `/v1/logs`), Prometheus remote write (`/api/v1/write`),
//! Zipkin (`/api/v2/spans`) and Elasticsearch bulk ingest (under `/elastic`), all in front of
//! the same [`OtlpReceiver`].

use std::sync::Arc;

use axum::Router;

use crate::otlp::OtlpReceiver;

/// The receivers' routes over `receiver`.
pub fn router(receiver: Arc<OtlpReceiver>) -> Router {
    crate::otlp::http::router(receiver.clone())
        .merge(crate::remote_write::router(receiver.clone()))
        .merge(crate::zipkin::router(receiver.clone()))
        .merge(crate::elastic::nested(receiver))
}
