//! Prometheus remote write receiver: `POST /api/v1/write` (remote write 1.0, snappy-compressed
//! `prometheus.WriteRequest`), mounted next to the OTLP/HTTP routes and ingested through the
//! same [`OtlpReceiver`] as OTLP metrics.
//!
//! Answers follow the remote write spec: 204 when stored; 400 for a body that cannot be read
//! or for rejected samples (the valid rest of the request is stored, and a 400 tells the
//! sender not to retry); 413 over the size limit; 415 for another content type, encoding or
//! a 2.0 message; 429 / 503 with `Retry-After` when overloaded or unavailable. Error bodies
//! are plain text. Every refusal is counted under `protocol="remote_write"`.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use strata_schema::remote_write;

use strata_server::auth::Scope;

use crate::otlp::{Converted, Metrics, OtlpReceiver, Payload, Rejected, TENANT_HEADER};
use crate::plain::text_response_retry;

/// Path of the remote write endpoint.
pub const PATH: &str = "/api/v1/write";
const PROTOCOL: &str = "remote_write";

/// The most metric families remembered over all tenants; later new families go without
/// (known ones still update). With help capped in [`remote_write::MetadataCache`], this bounds
/// the cache to a few tens of MiB.
const MAX_METADATA_FAMILIES: usize = 100_000;

/// The receiver and the metric metadata remembered per tenant (Prometheus sends metadata in
/// requests of its own, so a counter's type reaches us apart from its samples).
struct RemoteWrite {
    receiver: Arc<OtlpReceiver>,
    metadata: RwLock<HashMap<String, remote_write::MetadataCache>>,
}

/// The remote write route over `receiver` (without the gzip layer of the OTLP routes:
/// remote write bodies are snappy).
pub fn router(receiver: Arc<OtlpReceiver>) -> Router {
    let state = Arc::new(RemoteWrite {
        receiver,
        metadata: RwLock::new(HashMap::new()),
    });
    let gate = state.receiver.gate().clone();
    strata_server::auth::http::require(
        Router::new().route(PATH, post(write)).with_state(state),
        gate,
        Scope::Write,
        crate::plain::denied,
    )
}

/// Counts a refused request and answers it.
fn refuse(
    receiver: &OtlpReceiver,
    reason: &'static str,
    status: StatusCode,
    msg: String,
) -> Response {
    crate::plain::refuse(receiver, "metrics", PROTOCOL, reason, status, msg)
}

/// Whether the request is remote write 1.0 in snappy; the refusal otherwise.
fn check_format(request: &Request) -> Result<(), String> {
    let headers = request.headers();
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/x-protobuf");
    let mut parts = content_type.split(';').map(str::trim);
    let essence = parts.next().unwrap_or("");
    if essence != "application/x-protobuf" {
        return Err(format!(
            "content-type {content_type:?} is not supported; send application/x-protobuf (remote write 1.0)"
        ));
    }
    for p in parts {
        if let Some(proto) = p.strip_prefix("proto=")
            && proto != "prometheus.WriteRequest"
        {
            return Err(format!(
                "{proto} is not supported; send prometheus.WriteRequest (remote write 1.0)"
            ));
        }
    }
    match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        None | Some("snappy") => Ok(()),
        Some(other) => Err(format!(
            "content-encoding {other:?} is not supported; remote write bodies are snappy"
        )),
    }
}

/// Remembers the request's metadata for its (validated) tenant, then converts the request
/// with what is known.
fn convert(
    state: &RemoteWrite,
    tenant: &str,
    request: &remote_write::WriteRequest,
) -> strata_schema::Result<remote_write::Converted> {
    if !request.metadata.is_empty()
        && let Ok(mut all) = state.metadata.write()
    {
        let used: usize = all.values().map(remote_write::MetadataCache::len).sum();
        let room = MAX_METADATA_FAMILIES.saturating_sub(used);
        match all.get_mut(tenant) {
            Some(cache) => cache.remember(&request.metadata, room),
            None if room > 0 => all
                .entry(tenant.to_string())
                .or_default()
                .remember(&request.metadata, room),
            None => {}
        }
    }
    let empty = remote_write::MetadataCache::default();
    match state.metadata.read() {
        Ok(all) => remote_write::to_batch(request, all.get(tenant).unwrap_or(&empty)),
        // Poisoned by a panic elsewhere: convert without remembered metadata.
        Err(_) => remote_write::to_batch(request, &empty),
    }
}

async fn write(State(state): State<Arc<RemoteWrite>>, request: Request) -> Response {
    let receiver = &state.receiver;
    if let Err(msg) = check_format(&request) {
        return refuse(
            receiver,
            "unsupported_media_type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            msg,
        );
    }
    let tenant = request
        .headers()
        .get(TENANT_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let limit = receiver.max_request_bytes();
    let body = match crate::body::read(request.into_body(), limit).await {
        Ok(b) => b,
        Err(e) => return refuse(receiver, e.reason(), e.status(), e.to_string()),
    };
    let decoded = match remote_write::decode(&body, limit) {
        Ok(d) => d,
        Err(e @ remote_write::DecodeError::TooLarge(..)) => {
            return refuse(
                receiver,
                "too_large",
                StatusCode::PAYLOAD_TOO_LARGE,
                e.to_string(),
            );
        }
        Err(e) => return refuse(receiver, "invalid", StatusCode::BAD_REQUEST, e.to_string()),
    };
    // The tenant is checked before anything is remembered for it (a request of metadata
    // alone is never exported, so `export` would not check it).
    let tenant_key = match receiver.tenant(tenant.as_deref()) {
        Ok(t) => t.to_string(),
        Err(e) => return refuse(receiver, "invalid", StatusCode::BAD_REQUEST, e.to_string()),
    };
    let converted = match convert(&state, &tenant_key, &decoded) {
        Ok(c) => c,
        Err(e) => return refuse(receiver, "invalid", StatusCode::BAD_REQUEST, e.to_string()),
    };
    let mut limited = Rejected::default();
    if let Some(batch) = converted.batch {
        // The samples it rejected are counted and answered below, not as a partial success.
        let rows =
            Converted::of_rows(Some(batch)).with_bytes(prost::Message::encoded_len(&decoded));
        match receiver
            .export::<Metrics>(PROTOCOL, tenant.as_deref(), Payload::Converted(rows))
            .await
        {
            // `export` counted the request and its refused items.
            Err(e) => {
                return text_response_retry(e.http_status(), e.public_message(), e.retry_after());
            }
            // Left out by the tenant's limits, counted by `export`.
            Ok(r) => limited = r,
        }
    }
    if converted.rejected > 0 || limited.count > 0 {
        if converted.rejected > 0 {
            receiver.refuse("metrics", "invalid", converted.rejected as u64);
        }
        let mut why = converted.message.clone();
        if limited.count > 0 {
            if !why.is_empty() {
                why.push_str("; ");
            }
            why.push_str(&limited.message);
        }
        let refused = converted.rejected as i64 + limited.count;
        return refuse(
            receiver,
            "invalid",
            StatusCode::BAD_REQUEST,
            format!(
                "{refused} samples rejected ({} stored): {why}",
                converted.samples as i64 - limited.count
            ),
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

#[cfg(test)]
mod tests {
    use strata_schema::Signal;
    use strata_schema::remote_write::{Label, Sample, TimeSeries, WriteRequest, encode};

    use super::*;
    use crate::test_sink::Sink;

    fn app(sink: Arc<Sink>) -> Router {
        router(crate::test_sink::receiver(sink, 1 << 20))
    }

    fn rows(sink: &Sink) -> usize {
        sink.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.1 == Signal::Metrics)
            .map(|g| g.2)
            .sum()
    }

    fn series(name: Option<&str>, n: usize) -> TimeSeries {
        let mut labels = vec![Label {
            name: "job".into(),
            value: "node".into(),
        }];
        if let Some(name) = name {
            labels.push(Label {
                name: "__name__".into(),
                value: name.into(),
            });
        }
        TimeSeries {
            labels,
            samples: (0..n)
                .map(|i| Sample {
                    value: i as f64,
                    timestamp: 1_700_000_000_000 + i as i64 * 15_000,
                })
                .collect(),
            ..Default::default()
        }
    }

    async fn post(app: Router, body: Vec<u8>, headers: &[(&str, &str)]) -> (StatusCode, String) {
        let (status, _, body) = crate::test_sink::call(app, "POST", PATH, body, headers).await;
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    const SNAPPY: [(&str, &str); 2] = [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "snappy"),
    ];

    #[tokio::test]
    async fn stores_samples_and_refuses_bad_input_in_remote_write_terms() {
        let sink = Arc::new(Sink::default());
        let ok = WriteRequest {
            timeseries: vec![series(Some("up"), 3)],
            metadata: vec![],
        };
        let (s, _) = post(app(sink.clone()), encode(&ok), &SNAPPY).await;
        assert_eq!(s, StatusCode::NO_CONTENT);
        assert_eq!(rows(&sink), 3);

        let mixed = WriteRequest {
            timeseries: vec![series(Some("up"), 2), series(None, 4)],
            metadata: vec![],
        };
        let (s, body) = post(app(sink.clone()), encode(&mixed), &SNAPPY).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert!(body.contains("4 samples rejected (2 stored)"), "{body}");
        assert_eq!(rows(&sink), 5);

        let (s, _) = post(app(sink.clone()), b"not snappy".to_vec(), &SNAPPY).await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let (s, _) = post(
            app(sink.clone()),
            encode(&ok),
            &[("content-type", "application/json")],
        )
        .await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let (s, _) = post(
            app(sink.clone()),
            encode(&ok),
            &[(
                "content-type",
                "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            )],
        )
        .await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        // A snappy bomb: 64 MiB of zeros declared, refused before decompression.
        let bomb = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 64 << 20])
            .unwrap();
        let (s, _) = post(app(sink.clone()), bomb, &SNAPPY).await;
        assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(rows(&sink), 5);
    }
}
