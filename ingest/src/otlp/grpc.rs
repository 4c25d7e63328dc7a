//! OTLP/gRPC receiver: the three generated tonic services over one [`OtlpReceiver`].
//!
//! Status codes follow the OTLP spec: a request that cannot be decoded is `INVALID_ARGUMENT`,
//! one over the size limit (also after gzip decompression) is `RESOURCE_EXHAUSTED`, a full
//! buffer is `RESOURCE_EXHAUSTED`, a sink that is shutting down is `UNAVAILABLE`. tonic itself
//! answers `INTERNAL` for undecodable protobuf and `OUT_OF_RANGE` for an oversized frame;
//! [`map_status`] rewrites those two in one place.

use std::future::Future;
use std::sync::Arc;

use http::HeaderValue;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::{Logs, Metrics, OtlpReceiver, OtlpSignal, TENANT_HEADER, Traces};
use strata_server::Result;

/// The gRPC face of an [`OtlpReceiver`].
#[derive(Clone)]
pub struct OtlpGrpc(pub Arc<OtlpReceiver>);

impl OtlpGrpc {
    async fn export<S: OtlpSignal>(
        &self,
        request: Request<S::Request>,
    ) -> Result<Response<S::Response>, Status> {
        let tenant = request
            .metadata()
            .get(TENANT_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        self.0
            .export::<S>("grpc", tenant.as_deref(), request.into_inner())
            .await
            .map(|rejected| Response::new(rejected.into_response::<S>()))
            .map_err(|e| e.to_status())
    }
}

#[tonic::async_trait]
impl TraceService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        OtlpGrpc::export::<Traces>(self, request).await
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        OtlpGrpc::export::<Logs>(self, request).await
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        OtlpGrpc::export::<Metrics>(self, request).await
    }
}

/// Rewrites tonic's own decode failures into the codes the OTLP spec asks for.
pub fn map_status<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let code = headers.get("grpc-status").and_then(|v| v.to_str().ok());
    let message = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let new_code = match code {
        // "Error, decoded message length too large"
        Some("11") => Some("8"),
        // prost's DecodeError: "failed to decode Protobuf message: ..." (percent-encoded)
        Some("13") if message.starts_with("failed%20to%20decode") => Some("3"),
        _ => None,
    };
    if let Some(c) = new_code {
        headers.insert("grpc-status", HeaderValue::from_static(c));
    }
    response
}

/// Serves the three OTLP services on `listener` until `shutdown` resolves.
pub async fn serve(
    receiver: Arc<OtlpReceiver>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    let limit = receiver.max_request_bytes();
    let svc = OtlpGrpc(receiver);
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(
            map_status::<tonic::body::Body>,
        ))
        .add_service(
            TraceServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit),
        )
        .add_service(
            LogsServiceServer::new(svc.clone())
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit),
        )
        .add_service(
            MetricsServiceServer::new(svc)
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit),
        )
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
        .map_err(|e| strata_server::Error::Serve {
            what: "OTLP/gRPC",
            source: Box::new(e),
        })
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::otlp::OtlpMetrics;
    use crate::test_sink::Sink;

    fn request(trace_ids: &[Vec<u8>]) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: trace_ids
                        .iter()
                        .map(|t| Span {
                            trace_id: t.clone(),
                            span_id: vec![7; 8],
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    /// A real server on loopback and a real tonic client, with gzip both ways.
    #[tokio::test]
    async fn export_over_grpc_with_partial_success_and_tenant() {
        let sink = Arc::new(Sink::default());
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Arc::new(OtlpMetrics::register(&mut registry, "test"));
        let receiver = Arc::new(OtlpReceiver::new(
            sink.clone(),
            metrics,
            1 << 20,
            "default".into(),
        ));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(receiver, listener, stop.clone().cancelled_owned()));
        let mut client = TraceServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap()
            .send_compressed(CompressionEncoding::Gzip);
        let mut req = Request::new(request(&[vec![1; 16], vec![0; 16], vec![2; 4]]));
        req.metadata_mut()
            .insert(TENANT_HEADER, "acme".parse().unwrap());
        let resp = client.export(req).await.unwrap().into_inner();
        assert_eq!(resp.partial_success.unwrap().rejected_spans, 2);
        assert_eq!(
            sink.got.lock().unwrap().clone(),
            vec![("acme".to_string(), strata_schema::Signal::Traces, 1)]
        );
        let mut bad = Request::new(request(&[vec![1; 16]]));
        bad.metadata_mut()
            .insert(TENANT_HEADER, "no/slashes".parse().unwrap());
        let err = client.export(bad).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        stop.cancel();
        server.await.unwrap().unwrap();
    }

    #[test]
    fn tonic_decode_failures_are_rewritten() {
        let resp = |code: &'static str, msg: &'static str| {
            let mut r = http::Response::new(());
            r.headers_mut()
                .insert("grpc-status", HeaderValue::from_static(code));
            r.headers_mut()
                .insert("grpc-message", HeaderValue::from_static(msg));
            map_status(r).headers()["grpc-status"].clone()
        };
        assert_eq!(
            resp("11", "Error,%20decoded%20message%20length%20too%20large"),
            "8"
        );
        assert_eq!(resp("13", "failed%20to%20decode%20Protobuf%20message"), "3");
        assert_eq!(resp("13", "something%20else"), "13");
        assert_eq!(resp("0", ""), "0");
    }
}
