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
use crate::ingest::IngestError;
use crate::{Error, Result};

/// The one mapping from sink errors to gRPC status codes.
pub fn to_status(e: IngestError) -> Status {
    match e {
        IngestError::Invalid(m) => Status::invalid_argument(m),
        IngestError::Overloaded(m) => Status::resource_exhausted(m),
        IngestError::Unavailable(m) => Status::unavailable(m),
        IngestError::Internal(_) => Status::internal("internal error"),
    }
}

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
            .map_err(to_status)
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
        .map_err(|e| Error::Serve {
            what: "OTLP/gRPC",
            source: Box::new(e),
        })
}
