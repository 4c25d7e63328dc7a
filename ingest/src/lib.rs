//! Strata's ingest protocols: how data gets in, for every role that takes it.
//!
//! Each receiver decodes its wire format into Arrow batches and hands them to an [`Ingest`]
//! sink ([`sink`]), which is the role's own (the agent's shipper and buffer, the collector's
//! store). The receivers: OTLP over gRPC and HTTP ([`otlp`]), Prometheus remote write
//! ([`remote_write`]), Zipkin v2 ([`zipkin`]) and Elasticsearch bulk ingest ([`elastic`]);
//! [`http::router`] puts the HTTP ones on one port. The Flight `DoPut` convention between
//! agents and collectors ([`flight`]) has both its halves here.
//!
//! Invariants:
//! - A sink's refusal is answered in the protocol's own terms through one mapping
//!   ([`IngestError`]: gRPC code, HTTP status, `Retry-After`), and counted by the receiver.
//! - A receiver answers a request only after the sink took responsibility for its rows.
//! - This crate knows no role: roles depend on it, never the other way round.

pub mod body;
pub mod elastic;
pub mod flight;
pub mod http;
pub mod limits;
pub mod otlp;
pub mod plain;
pub mod remote_write;
pub mod sink;
pub mod zipkin;

pub use sink::{Ingest, IngestError};

/// A recording [`Ingest`] sink for the receivers' unit tests.
#[cfg(any(test, feature = "test-util"))]
pub mod test_sink {
    use std::sync::Mutex;

    use arrow::record_batch::RecordBatch;
    use async_trait::async_trait;
    use strata_schema::Signal;

    use crate::otlp::{OtlpMetrics, OtlpReceiver};
    use crate::sink::{Ingest, IngestError};

    /// A receiver without auth (tenant `default`) over `sink`, taking bodies up to `limit`.
    pub fn receiver(sink: std::sync::Arc<Sink>, limit: usize) -> std::sync::Arc<OtlpReceiver> {
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = std::sync::Arc::new(OtlpMetrics::register(&mut registry, "test"));
        std::sync::Arc::new(OtlpReceiver::new(
            sink,
            metrics,
            limit,
            std::sync::Arc::new(strata_server::auth::Gate::open("default")),
        ))
    }

    /// Sends one request to `app`; returns its status, headers and body.
    pub async fn call(
        app: axum::Router,
        method: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (axum::http::StatusCode, axum::http::HeaderMap, bytes::Bytes) {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let mut req = axum::http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = app
            .oneshot(req.body(axum::body::Body::from(body)).expect("request"))
            .await
            .expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, headers, bytes)
    }

    /// Keeps (tenant, signal, rows) of what it is given, or refuses everything as overloaded.
    #[derive(Default)]
    pub struct Sink {
        pub got: Mutex<Vec<(String, Signal, usize)>>,
        pub overloaded: bool,
    }

    #[async_trait]
    impl Ingest for Sink {
        async fn ingest(
            &self,
            tenant: &str,
            signal: Signal,
            batch: RecordBatch,
        ) -> Result<(), IngestError> {
            if self.overloaded {
                return Err(IngestError::Overloaded("full".into()));
            }
            self.got
                .lock()
                .unwrap()
                .push((tenant.to_string(), signal, batch.num_rows()));
            Ok(())
        }
    }
}
