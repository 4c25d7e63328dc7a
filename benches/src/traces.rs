//! Deterministic OTLP trace generation: multi-service traces (frontend -> checkout ->
//! payment ...) of a size drawn from a range, with attributes of every OTLP scalar type, the
//! HTTP attributes Strata promotes to columns, an error on about one span in fifty, and an
//! event on every fifth span. Request `i` of a seed is always the same request (apart from its
//! timestamps, which follow the clock so that the data lands in the current hour).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use crate::rng::Rng;

pub(crate) const SERVICES: [&str; 6] = [
    "frontend",
    "checkout",
    "payment",
    "cart",
    "inventory",
    "shipping",
];
const OPERATIONS: [&str; 8] = [
    "GET /api/cart",
    "POST /api/checkout",
    "charge",
    "SELECT orders",
    "reserve",
    "HTTP GET",
    "publish order",
    "render",
];

/// The shape of generated traces.
#[derive(Debug, Clone)]
pub struct TraceShape {
    pub seed: u64,
    /// Spans per trace, drawn uniformly from this inclusive range.
    pub min_spans: usize,
    pub max_spans: usize,
    pub traces_per_request: usize,
    /// Attributes per span (at least the three HTTP ones).
    pub attributes: usize,
}

impl Default for TraceShape {
    fn default() -> Self {
        Self {
            seed: 1,
            min_spans: 5,
            max_spans: 50,
            traces_per_request: 4,
            attributes: 12,
        }
    }
}

/// One generated export request.
pub struct TraceRequest {
    pub request: ExportTraceServiceRequest,
    pub spans: u64,
    /// The first trace's id, lowercase hex.
    pub first_trace_id: String,
}

pub(crate) fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

pub(crate) fn s(v: impl Into<String>) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// Request number `i`: `traces_per_request` traces.
pub fn request(args: &TraceShape, i: u64) -> TraceRequest {
    let mut rng = Rng::for_request(args.seed, i);
    let now = crate::rng::now_nanos();
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    let mut first = String::new();
    let mut total = 0;
    for t in 0..args.traces_per_request {
        let spans_per_trace = args.min_spans
            + rng.below((args.max_spans.max(args.min_spans) - args.min_spans + 1) as u64) as usize;
        total += spans_per_trace as u64;
        let trace_id: Vec<u8> =
            [rng.next_u64().to_be_bytes(), rng.next_u64().to_be_bytes()].concat();
        if t == 0 {
            first = strata_schema::hex_id::encode(&trace_id);
        }
        let mut ids: Vec<Vec<u8>> = Vec::with_capacity(spans_per_trace);
        for k in 0..spans_per_trace {
            let span_id = (rng.next_u64() | 1).to_be_bytes().to_vec();
            let parent = if k == 0 {
                Vec::new()
            } else {
                ids[rng.below(k as u64) as usize].clone()
            };
            ids.push(span_id.clone());
            let svc = if k == 0 {
                0
            } else {
                rng.below(SERVICES.len() as u64) as usize
            };
            let start = now + k as u64 * 1_000_000 + rng.below(500_000);
            let mut attributes = vec![
                kv(
                    "http.request.method",
                    s(if k % 3 == 0 { "POST" } else { "GET" }),
                ),
                kv(
                    "http.response.status_code",
                    any_value::Value::IntValue(if rng.below(50) == 0 { 500 } else { 200 }),
                ),
                kv("http.route", s(OPERATIONS[k % OPERATIONS.len()])),
            ];
            for a in attributes.len()..args.attributes {
                let v = match a % 4 {
                    0 => s(format!("value-{}", rng.below(100))),
                    1 => any_value::Value::IntValue(rng.below(10_000) as i64),
                    2 => any_value::Value::BoolValue(rng.below(2) == 0),
                    _ => any_value::Value::DoubleValue(rng.below(1000) as f64 / 7.0),
                };
                attributes.push(kv(&format!("app.attr_{a}"), v));
            }
            let events = if k % 5 == 0 {
                vec![Event {
                    time_unix_nano: start + 100,
                    name: "cache.miss".into(),
                    attributes: vec![kv("key", s(format!("k{}", rng.below(1000))))],
                    ..Default::default()
                }]
            } else {
                Vec::new()
            };
            by_service[svc].push(Span {
                trace_id: trace_id.clone(),
                span_id,
                parent_span_id: parent,
                name: OPERATIONS[rng.below(OPERATIONS.len() as u64) as usize].into(),
                kind: if k == 0 { 2 } else { 1 + rng.below(3) as i32 },
                start_time_unix_nano: start,
                end_time_unix_nano: start + 1_000 + rng.below(50_000_000),
                attributes,
                events,
                status: Some(Status {
                    code: if rng.below(50) == 0 { 2 } else { 0 },
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
    }
    let resource_spans = by_service
        .into_iter()
        .enumerate()
        .filter(|(_, spans)| !spans.is_empty())
        .map(|(i, spans)| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s(SERVICES[i])),
                    kv("service.version", s("1.4.2")),
                    kv("k8s.namespace.name", s("shop")),
                    kv("k8s.pod.name", s(format!("{}-7d9f8b-{}", SERVICES[i], i))),
                    kv("host.name", s(format!("node-{}", i % 3))),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "io.opentelemetry.auto".into(),
                    version: "2.1.0".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    TraceRequest {
        request: ExportTraceServiceRequest { resource_spans },
        spans: total,
        first_trace_id: first,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span_names(r: &ExportTraceServiceRequest) -> Vec<String> {
        r.resource_spans
            .iter()
            .flat_map(|r| r.scope_spans[0].spans.iter().map(|s| s.name.clone()))
            .collect()
    }

    #[test]
    fn same_seed_same_request() {
        let shape = TraceShape {
            seed: 9,
            ..Default::default()
        };
        let a = request(&shape, 3);
        let b = request(&shape, 3);
        assert_eq!(a.first_trace_id, b.first_trace_id);
        let span_count: usize = a
            .request
            .resource_spans
            .iter()
            .map(|r| r.scope_spans[0].spans.len())
            .sum();
        assert_eq!(span_count as u64, a.spans);
        assert!((5 * 4..=50 * 4).contains(&span_count));
        assert_eq!(span_names(&a.request), span_names(&b.request));
        assert_ne!(a.first_trace_id, request(&shape, 4).first_trace_id);
    }
}
