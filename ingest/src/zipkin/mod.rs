//! Zipkin v2 ingest: `POST /api/v2/spans` with JSON (`application/json`, the default) or
//! protobuf (`application/x-protobuf`) bodies, optionally gzip-compressed, as Zipkin's own
//! server takes them. Served on the OTLP/HTTP port and, with `--zipkin ADDR`, on a port of its
//! own (9411 by convention).
//!
//! Spans are decoded ([`decode`]), mapped to OTLP ([`convert`]) and ingested through the same
//! [`OtlpReceiver`] as OTLP traces, so tenants, limits and metrics are the OTLP ones, under
//! `protocol="zipkin"`.
//!
//! Answers follow Zipkin's server: 202 with an empty body when stored. A request of which
//! some spans break the model stores the others and answers 400 with the reasons (a sender
//! must not retry what will never be taken); a body that cannot be decoded at all is 400, too
//! large 413, another media type 415, overload 429 / 503 with `Retry-After`. Error bodies are
//! plain text.

pub mod convert;
pub mod decode;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tower_http::decompression::RequestDecompressionLayer;

use strata_server::auth::Scope;

use crate::otlp::{OtlpReceiver, OtlpSignal, Payload, TENANT_HEADER, Traces};
use crate::plain::{text_response, text_response_retry};

/// Path of the span endpoint.
pub const PATH: &str = "/api/v2/spans";
const PROTOCOL: &str = "zipkin";

/// The Zipkin route over `receiver`, behind its gate with the `write` scope.
pub fn router(receiver: Arc<OtlpReceiver>) -> Router {
    let gate = receiver.gate().clone();
    strata_server::auth::http::require(
        Router::new()
            .route(PATH, post(spans))
            .layer(RequestDecompressionLayer::new().gzip(true))
            .with_state(receiver),
        gate,
        Scope::Write,
        crate::plain::denied,
    )
}

#[derive(Clone, Copy)]
enum Encoding {
    Json,
    Protobuf,
}

fn encoding(request: &Request) -> Option<Encoding> {
    let ct = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    match ct.split(';').next().unwrap_or("").trim() {
        "application/json" | "" => Some(Encoding::Json),
        "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
        _ => None,
    }
}

fn refuse(
    receiver: &OtlpReceiver,
    reason: &'static str,
    status: StatusCode,
    msg: String,
) -> Response {
    crate::plain::refuse(
        receiver,
        Traces::SIGNAL.as_str(),
        PROTOCOL,
        reason,
        status,
        msg,
    )
}

async fn spans(State(receiver): State<Arc<OtlpReceiver>>, request: Request) -> Response {
    let Some(enc) = encoding(&request) else {
        return refuse(
            &receiver,
            "unsupported_media_type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content-type must be application/json or application/x-protobuf".into(),
        );
    };
    let tenant = request
        .headers()
        .get(TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match crate::body::read(request.into_body(), receiver.max_request_bytes()).await {
        Ok(b) => b,
        Err(e) => return refuse(&receiver, e.reason(), e.status(), e.to_string()),
    };
    let decoded = match enc {
        Encoding::Json => decode::json(&body),
        Encoding::Protobuf => decode::protobuf(&body),
    };
    let decoded = match decoded {
        Ok(d) => d,
        Err(e) => return refuse(&receiver, "invalid", StatusCode::BAD_REQUEST, e),
    };
    let total = decoded.spans.len() + decoded.rejected.len();
    let mut request = convert::to_request(decoded.spans);
    let mut converted = match Traces::convert(&mut request) {
        Ok(c) => c,
        Err(e) => return refuse(&receiver, e.reason(), e.http_status(), e.public_message()),
    };
    for (i, why) in &decoded.rejected {
        converted.rejected.add(1, format!("span {i}: {why}"));
    }
    match receiver
        .export::<Traces>(
            PROTOCOL,
            tenant.as_deref(),
            Payload::Converted(converted.with_bytes(body.len())),
        )
        .await
    {
        Err(e) => text_response_retry(e.http_status(), e.public_message(), e.retry_after()),
        Ok(rejected) if rejected.count > 0 => text_response(
            StatusCode::BAD_REQUEST,
            format!(
                "{} of {total} spans rejected: {}",
                rejected.count, rejected.message
            ),
        ),
        Ok(_) => StatusCode::ACCEPTED.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use strata_schema::Signal;

    use super::*;
    use crate::test_sink::Sink;

    fn app(sink: Arc<Sink>) -> Router {
        router(crate::test_sink::receiver(sink, 1 << 20))
    }

    async fn post(app: Router, body: Vec<u8>, headers: &[(&str, &str)]) -> (StatusCode, String) {
        let (status, _, body) = crate::test_sink::call(app, "POST", PATH, body, headers).await;
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    const TWO: &str = r#"[{"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"a2fb4a1d1a96d312","name":"a","timestamp":1,"duration":2,"localEndpoint":{"serviceName":"s"}},
                          {"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"b2fb4a1d1a96d312","parentId":"a2fb4a1d1a96d312","name":"b","timestamp":1,"duration":1}]"#;

    #[tokio::test]
    async fn json_and_gzip_are_accepted_and_bad_spans_are_400_with_the_rest_stored() {
        let sink = Arc::new(Sink::default());
        let (s, _) = post(app(sink.clone()), TWO.into(), &[]).await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(TWO.as_bytes()).unwrap();
        let (s, _) = post(
            app(sink.clone()),
            gz.finish().unwrap(),
            &[
                ("content-type", "application/json"),
                ("content-encoding", "gzip"),
                ("x-scope-orgid", "acme"),
            ],
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED);
        let bad = TWO.replace("b2fb4a1d1a96d312", "nothex");
        let (s, msg) = post(app(sink.clone()), bad.into(), &[]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(msg.contains("1 of 2 spans rejected: span 1: id"), "{msg}");
        let got = sink.got.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![
                ("default".to_string(), Signal::Traces, 2),
                ("acme".to_string(), Signal::Traces, 2),
                ("default".to_string(), Signal::Traces, 1),
            ]
        );
    }

    #[tokio::test]
    async fn undecodable_and_unknown_media_types_are_refused() {
        let sink = Arc::new(Sink::default());
        let (s, msg) = post(app(sink.clone()), b"{".to_vec(), &[]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{msg}");
        let (s, _) = post(
            app(sink.clone()),
            b"[]".to_vec(),
            &[("content-type", "application/x-thrift")],
        )
        .await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (s, _) = post(
            app(sink.clone()),
            vec![0xff, 0xff],
            &[("content-type", "application/x-protobuf")],
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert!(sink.got.lock().unwrap().is_empty());
    }
}
