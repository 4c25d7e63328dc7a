//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with protobuf
//! (`application/x-protobuf`) or JSON (`application/json`) bodies, optionally gzip-compressed.
//!
//! The body limit applies after decompression, so a gzip bomb stops at `max_request_bytes`
//! with 413. Errors are `google.rpc.Status` messages in the request's own encoding, with the
//! HTTP codes of the OTLP spec: 400 bad input, 413 too large, 415 unsupported media type,
//! 429 / 503 with `Retry-After` when overloaded or unavailable.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prost::Message;
use tower_http::decompression::RequestDecompressionLayer;

use super::{Logs, Metrics, OtlpReceiver, OtlpSignal, Payload, TENANT_HEADER, Traces};
use strata_server::auth::{Denied, Scope};
use tonic::Code;

use crate::sink::{IngestError, RETRY_AFTER_SECS};

const PROTOBUF: &str = "application/x-protobuf";
const JSON: &str = "application/json";

/// `google.rpc.Status`, the error body of OTLP/HTTP.
#[derive(Clone, PartialEq, prost::Message, serde::Serialize)]
pub struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    fn of(headers: &HeaderMap) -> Option<Self> {
        let ct = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(PROTOBUF);
        let essence = ct.split(';').next().unwrap_or("").trim();
        match essence {
            PROTOBUF | "application/protobuf" => Some(Encoding::Protobuf),
            JSON => Some(Encoding::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }
}

/// An OTLP/HTTP error: HTTP code plus a `google.rpc.Status` body.
struct HttpError {
    status: StatusCode,
    grpc_code: i32,
    message: String,
    encoding: Encoding,
    /// `Retry-After` seconds.
    retry_after: Option<u64>,
}

impl HttpError {
    /// An error whose 429 or 503 asks for a retry after [`RETRY_AFTER_SECS`].
    fn new(status: StatusCode, grpc_code: i32, message: impl Into<String>, enc: Encoding) -> Self {
        Self {
            status,
            grpc_code,
            message: message.into(),
            encoding: enc,
            retry_after: matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            )
            .then_some(RETRY_AFTER_SECS),
        }
    }

    fn from_ingest(e: IngestError, enc: Encoding) -> Self {
        Self {
            retry_after: e.retry_after(),
            ..Self::new(
                e.http_status(),
                e.grpc_code() as i32,
                e.public_message(),
                enc,
            )
        }
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = RpcStatus {
            code: self.grpc_code,
            message: self.message,
        };
        let body = match self.encoding {
            Encoding::Protobuf => status.encode_to_vec(),
            Encoding::Json => serde_json::to_vec(&status).unwrap_or_default(),
        };
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, self.encoding.content_type())],
            body,
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        resp
    }
}

/// The OTLP/HTTP routes over `receiver`, behind the receiver's gate with the `write` scope
/// ([`crate::http::router`] adds the other receivers of the port).
pub fn router(receiver: Arc<OtlpReceiver>) -> Router {
    let otlp = Router::new()
        .route(Traces::HTTP_PATH, post(export::<Traces>))
        .route(Logs::HTTP_PATH, post(export::<Logs>))
        .route(Metrics::HTTP_PATH, post(export::<Metrics>))
        .layer(RequestDecompressionLayer::new().gzip(true))
        .with_state(receiver.clone());
    strata_server::auth::http::require(otlp, receiver.gate().clone(), Scope::Write, refusal)
}

/// An auth refusal as an OTLP error, in the request's encoding.
fn refusal(denied: &Denied, headers: &HeaderMap) -> Response {
    let code = match denied {
        Denied::Unauthenticated(_) => Code::Unauthenticated,
        Denied::Forbidden(_) => Code::PermissionDenied,
        Denied::Invalid(_) => Code::InvalidArgument,
    };
    HttpError::new(
        strata_server::auth::http::status(denied),
        code as i32,
        denied.message(),
        Encoding::of(headers).unwrap_or(Encoding::Json),
    )
    .into_response()
}

async fn export<S: OtlpSignal>(
    State(receiver): State<Arc<OtlpReceiver>>,
    request: Request,
) -> Result<Response, HttpError> {
    let signal = S::SIGNAL.as_str();
    let headers = request.headers();
    let Some(enc) = Encoding::of(headers) else {
        receiver
            .metrics()
            .refused_request(signal, "http", "unsupported_media_type");
        return Err(HttpError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::InvalidArgument as i32,
            "content-type must be application/x-protobuf or application/json",
            Encoding::Protobuf,
        ));
    };
    let tenant = headers
        .get(TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match crate::body::read(request.into_body(), receiver.max_request_bytes()).await {
        Ok(b) => b,
        Err(e) => {
            receiver
                .metrics()
                .refused_request(signal, "http", e.reason());
            let code = match e {
                crate::body::BodyError::TooLarge(_) => Code::ResourceExhausted,
                crate::body::BodyError::Unreadable(_) => Code::InvalidArgument,
            };
            return Err(HttpError::new(e.status(), code as i32, e.to_string(), enc));
        }
    };
    let payload = match enc {
        Encoding::Protobuf => Payload::Protobuf(body),
        Encoding::Json => Payload::Json(body),
    };
    let rejected = receiver
        .export::<S>("http", tenant.as_deref(), payload)
        .await
        .map_err(|e| HttpError::from_ingest(e, enc))?;
    let body = match enc {
        Encoding::Protobuf => rejected.into_response::<S>().encode_to_vec(),
        Encoding::Json => rejected.to_json::<S>().to_string().into_bytes(),
    };
    Ok((
        [(header::CONTENT_TYPE, enc.content_type())],
        Body::from(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use strata_schema::Signal;

    use super::*;
    use crate::test_sink::Sink;

    fn app(sink: Arc<Sink>, limit: usize) -> Router {
        router(crate::test_sink::receiver(sink, limit))
    }

    fn traces(n: usize) -> ExportTraceServiceRequest {
        let spans = (0..n)
            .map(|i| Span {
                trace_id: vec![1; 16],
                span_id: (i as u64 + 1).to_be_bytes().to_vec(),
                name: format!("s{i}"),
                ..Default::default()
            })
            .collect();
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    async fn post(
        app: Router,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, Vec<u8>) {
        let (status, headers, bytes) =
            crate::test_sink::call(app, "POST", "/v1/traces", body, headers).await;
        (status, headers, bytes.to_vec())
    }

    #[tokio::test]
    async fn protobuf_and_gzip_bodies_are_ingested_with_their_tenant() {
        let sink = Arc::new(Sink::default());
        let body = traces(3).encode_to_vec();
        let (s, _, _) = post(
            app(sink.clone(), 1 << 20),
            body.clone(),
            &[("content-type", PROTOBUF)],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&body).unwrap();
        let (s, _, _) = post(
            app(sink.clone(), 1 << 20),
            gz.finish().unwrap(),
            &[
                ("content-type", PROTOBUF),
                ("content-encoding", "gzip"),
                ("x-scope-orgid", "acme"),
            ],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let got = sink.got.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![
                ("default".to_string(), Signal::Traces, 3),
                ("acme".to_string(), Signal::Traces, 3)
            ]
        );
    }

    #[tokio::test]
    async fn gzip_bomb_stops_at_the_limit() {
        let sink = Arc::new(Sink::default());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; 8 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(bomb.len() < 64 * 1024);
        let (s, h, body) = post(
            app(sink.clone(), 1 << 20),
            bomb,
            &[("content-type", PROTOBUF), ("content-encoding", "gzip")],
        )
        .await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(h[header::CONTENT_TYPE], PROTOBUF);
        let status = RpcStatus::decode(body.as_slice()).unwrap();
        assert_eq!(status.code, 8);
        assert!(sink.got.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn overload_is_429_with_retry_after() {
        let sink = Arc::new(Sink {
            overloaded: true,
            ..Default::default()
        });
        let (s, h, body) = post(
            app(sink, 1 << 20),
            b"{}".to_vec(),
            &[("content-type", JSON)],
        )
        .await;
        // An empty request is accepted without reaching the sink.
        assert_eq!(
            (s, body.as_slice()),
            (StatusCode::OK, b"{}".as_slice()),
            "{h:?}"
        );
        let sink = Arc::new(Sink {
            overloaded: true,
            ..Default::default()
        });
        let json = serde_json::to_vec(&traces(1)).unwrap();
        let (s, h, body) = post(app(sink, 1 << 20), json, &[("content-type", JSON)]).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(h[header::RETRY_AFTER], "1");
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["code"], 8);
    }

    #[tokio::test]
    async fn invalid_spans_are_a_partial_success() {
        let sink = Arc::new(Sink::default());
        let mut req = traces(2);
        req.resource_spans[0].scope_spans[0].spans[1].trace_id = vec![0; 16];
        let (s, _, body) = post(
            app(sink.clone(), 1 << 20),
            serde_json::to_vec(&req).unwrap(),
            &[("content-type", JSON)],
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["partialSuccess"]["rejectedSpans"], "1", "{v}");
        assert_eq!(sink.got.lock().unwrap()[0].2, 1);
    }

    #[tokio::test]
    async fn unknown_media_type_and_bad_tenant_are_refused() {
        let sink = Arc::new(Sink::default());
        let (s, _, _) = post(
            app(sink.clone(), 1 << 20),
            b"x".to_vec(),
            &[("content-type", "text/plain")],
        )
        .await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (s, _, _) = post(
            app(sink.clone(), 1 << 20),
            traces(1).encode_to_vec(),
            &[("content-type", PROTOBUF), ("x-scope-orgid", "a/b")],
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _, _) = post(
            app(sink.clone(), 1 << 20),
            vec![0xff, 0xff, 0x01],
            &[("content-type", PROTOBUF)],
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(sink.got.lock().unwrap().is_empty());
    }
}
