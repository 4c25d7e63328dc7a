//! OTLP/gRPC receiver: the three OTLP services over one [`OtlpReceiver`], written on tonic's
//! server half (not its generated servers) so that a request reaches the receiver as bytes.
//!
//! Status codes follow the OTLP spec: a request that cannot be decoded is `INVALID_ARGUMENT`,
//! one over the size limit (also after gzip decompression) is `RESOURCE_EXHAUSTED`, a full
//! buffer is `RESOURCE_EXHAUSTED`, a sink that is shutting down is `UNAVAILABLE`. tonic itself
//! answers `OUT_OF_RANGE` for an oversized frame; [`map_status`] rewrites it. (Request bytes
//! are decoded by the receiver, never by tonic.)

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures::future::BoxFuture;
use http::HeaderValue;
use strata_server::Listener;
use strata_server::auth::{Denied, Scope};
use tokio_util::sync::CancellationToken;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::{Logs, Metrics, OtlpReceiver, OtlpSignal, Payload, TENANT_HEADER, Traces};
use strata_server::Result;

/// The `Export` method of one signal's OTLP service over an [`OtlpReceiver`]. The request
/// message reaches the receiver as the bytes it came in ([`Payload::Protobuf`]), so that traces
/// are decoded straight into Arrow; the response is the signal's prost message.
pub struct OtlpService<S> {
    receiver: Arc<OtlpReceiver>,
    signal: PhantomData<fn() -> S>,
}

impl<S> Clone for OtlpService<S> {
    fn clone(&self) -> Self {
        Self {
            receiver: self.receiver.clone(),
            signal: PhantomData,
        }
    }
}

impl<S: OtlpSignal> OtlpService<S> {
    pub fn new(receiver: Arc<OtlpReceiver>) -> Self {
        Self {
            receiver,
            signal: PhantomData,
        }
    }
}

impl<S: OtlpSignal> NamedService for OtlpService<S> {
    const NAME: &'static str = S::GRPC_SERVICE;
}

impl<S: OtlpSignal> UnaryService<Bytes> for OtlpService<S> {
    type Response = S::Response;
    type Future = BoxFuture<'static, Result<Response<S::Response>, Status>>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let receiver = self.receiver.clone();
        Box::pin(async move {
            let metadata = request.metadata();
            let text = |key| metadata.get(key).map(|v| v.to_str());
            let tenant = match text(TENANT_HEADER) {
                Some(Err(_)) => Err(Denied::Invalid("x-scope-orgid is not text".into())),
                t => receiver.gate().check(
                    text("authorization").and_then(Result::ok),
                    t.and_then(Result::ok),
                    Scope::Write,
                ),
            };
            let tenant = match tenant {
                Ok(t) => t,
                Err(denied) => {
                    receiver
                        .metrics()
                        .refused_request(S::SIGNAL.as_str(), "grpc", "unauthorized");
                    return Err(denied.to_status());
                }
            };
            receiver
                .export::<S>(
                    "grpc",
                    Some(&tenant),
                    Payload::Protobuf(request.into_inner()),
                )
                .await
                .map(|rejected| Response::new(rejected.into_response::<S>()))
                .map_err(|e| e.to_status())
        })
    }
}

impl<S: OtlpSignal, B> tower::Service<http::Request<B>> for OtlpService<S>
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            let path = request.uri().path();
            let method = path
                .strip_prefix('/')
                .and_then(|p| p.strip_prefix(S::GRPC_SERVICE));
            if method != Some("/Export") {
                return Ok(Status::unimplemented(format!(
                    "{} has no method {}",
                    S::GRPC_SERVICE,
                    request.uri().path()
                ))
                .into_http());
            }
            let limit = service.receiver.max_request_bytes();
            let mut grpc = Grpc::new(ExportCodec::<S::Response>::default())
                .accept_compressed(CompressionEncoding::Gzip)
                .max_decoding_message_size(limit);
            Ok(grpc.unary(service, request).await)
        })
    }
}

/// Request messages as their bytes, responses as prost messages.
struct ExportCodec<R>(PhantomData<fn() -> R>);

impl<R> Default for ExportCodec<R> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<R: prost::Message + Send + 'static> Codec for ExportCodec<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = ResponseEncoder<R>;
    type Decoder = RequestBytes;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestBytes
    }
}

struct ResponseEncoder<R>(PhantomData<fn() -> R>);

impl<R: prost::Message> Encoder for ResponseEncoder<R> {
    type Item = R;
    type Error = Status;

    fn encode(&mut self, item: R, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("cannot encode the response: {e}")))
    }
}

struct RequestBytes;

impl Decoder for RequestBytes {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// Rewrites tonic's own refusal of an oversized message into the code the OTLP spec asks for.
pub fn map_status<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    // "Error, decoded message length too large"
    if headers.get("grpc-status").is_some_and(|v| v == "11") {
        headers.insert("grpc-status", HeaderValue::from_static("8"));
    }
    response
}

/// Serves the three OTLP services on `listener` until `shutdown` is cancelled.
pub async fn serve(
    receiver: Arc<OtlpReceiver>,
    listener: Listener,
    shutdown: CancellationToken,
) -> Result<()> {
    strata_server::grpc_server()
        .layer(tower::util::MapResponseLayer::new(
            map_status::<tonic::body::Body>,
        ))
        .add_service(OtlpService::<Traces>::new(receiver.clone()))
        .add_service(OtlpService::<Logs>::new(receiver.clone()))
        .add_service(OtlpService::<Metrics>::new(receiver))
        .serve_with_incoming_shutdown(
            listener.incoming(shutdown.clone()),
            shutdown.cancelled_owned(),
        )
        .await
        .map_err(|e| strata_server::Error::Serve {
            what: "OTLP/gRPC",
            source: Box::new(e),
        })
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
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

    /// A receiver over a test sink, with its metrics registry.
    fn receiver() -> (
        Arc<Sink>,
        prometheus_client::registry::Registry,
        Arc<OtlpReceiver>,
    ) {
        let sink = Arc::new(Sink::default());
        let mut registry = prometheus_client::registry::Registry::default();
        let metrics = Arc::new(OtlpMetrics::register(&mut registry, "test"));
        let receiver = Arc::new(OtlpReceiver::new(
            sink.clone(),
            metrics,
            1 << 20,
            Arc::new(strata_server::auth::Gate::open("default")),
        ));
        (sink, registry, receiver)
    }

    /// A real server on loopback and a real tonic client, with gzip both ways.
    #[tokio::test]
    async fn export_over_grpc_with_partial_success_and_tenant() {
        let (sink, _registry, receiver) = receiver();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(
            receiver,
            Listener::plain("OTLP/gRPC", listener),
            stop.clone(),
        ));
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

    /// Bytes that are not an export request: `INVALID_ARGUMENT` naming the decode failure,
    /// counted, nothing ingested.
    #[tokio::test]
    async fn undecodable_requests_are_invalid_argument() {
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let (sink, registry, receiver) = receiver();
        // A gRPC frame (uncompressed, 3 bytes): field 1, length 5, but only one byte follows.
        let mut frame = vec![0u8];
        frame.extend(3u32.to_be_bytes());
        frame.extend([0x0a, 0x05, 0x01]);
        let request = http::Request::builder()
            .method("POST")
            .uri("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
            .header("content-type", "application/grpc")
            .body(tonic::body::Body::new(http_body_util::Full::new(
                Bytes::from(frame),
            )))
            .unwrap();
        let response = OtlpService::<Traces>::new(receiver.clone())
            .oneshot(request)
            .await
            .unwrap();
        let headers = response.headers().clone();
        let trailers = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .trailers()
            .cloned()
            .unwrap_or_default();
        let status = Status::from_header_map(&headers)
            .or_else(|| Status::from_header_map(&trailers))
            .expect("a grpc-status");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains("cannot decode traces request"),
            "{status:?}"
        );
        assert!(sink.got.lock().unwrap().is_empty());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(
                r#"test_otlp_requests_total{signal="traces",protocol="grpc",outcome="invalid"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn tonic_oversize_refusal_is_rewritten() {
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
        assert_eq!(
            resp("13", "failed%20to%20decode%20Protobuf%20message"),
            "13"
        );
        assert_eq!(resp("13", "something%20else"), "13");
        assert_eq!(resp("0", ""), "0");
    }
}
