//! Plain-text answers, for the receivers whose protocols answer errors in plain text
//! (Prometheus remote write, Zipkin): the status, the message, and `Retry-After` on 429 and
//! 503, with every refusal counted in the receiver's metrics.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::otlp::OtlpReceiver;
use crate::sink::RETRY_AFTER_SECS;

/// A plain-text answer; 429 and 503 carry `Retry-After` ([`RETRY_AFTER_SECS`]).
pub fn text_response(status: StatusCode, msg: String) -> Response {
    let retry = matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    )
    .then_some(RETRY_AFTER_SECS);
    text_response_retry(status, msg, retry)
}

/// A plain-text answer with `Retry-After: retry_after` when given.
pub fn text_response_retry(status: StatusCode, msg: String, retry_after: Option<u64>) -> Response {
    let mut resp = (status, [(header::CONTENT_TYPE, "text/plain")], msg).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
    }
    resp
}

/// An auth refusal in plain text.
pub fn denied(denied: &strata_server::auth::Denied, _: &axum::http::HeaderMap) -> Response {
    text_response(
        strata_server::auth::http::status(denied),
        denied.message().to_string(),
    )
}

/// Counts a request of `signal` refused before it reached the receiver, and answers it.
pub fn refuse(
    receiver: &OtlpReceiver,
    signal: &str,
    protocol: &'static str,
    reason: &'static str,
    status: StatusCode,
    msg: String,
) -> Response {
    receiver.metrics().refused_request(signal, protocol, reason);
    text_response(status, msg)
}
