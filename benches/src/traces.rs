//! Deterministic OTLP trace generation.
//!
//! A splitmix64 generator keeps runs reproducible by seed without a dependency (it is a few
//! lines and its output stream is fixed, which a benchmark needs).

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use crate::Args;

const SERVICES: [&str; 6] = [
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

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(v: impl Into<String>) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

/// Request number `i`: `traces_per_request` traces; returns it with its first trace id (hex).
pub fn request(args: &Args, i: u64) -> (ExportTraceServiceRequest, String) {
    let mut rng = Rng::new(args.seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut by_service: Vec<Vec<Span>> = vec![Vec::new(); SERVICES.len()];
    let mut first = String::new();
    for t in 0..args.traces_per_request {
        let trace_id: Vec<u8> = [rng.next().to_be_bytes(), rng.next().to_be_bytes()].concat();
        if t == 0 {
            first = trace_id.iter().map(|b| format!("{b:02x}")).collect();
        }
        let mut ids: Vec<Vec<u8>> = Vec::with_capacity(args.spans_per_trace);
        for k in 0..args.spans_per_trace {
            let span_id = (rng.next() | 1).to_be_bytes().to_vec();
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
    (ExportTraceServiceRequest { resource_spans }, first)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn same_seed_same_request() {
        let args = Args::parse_from(["loadgen", "--seed", "9"]);
        let (a, ia) = request(&args, 3);
        let (b, ib) = request(&args, 3);
        assert_eq!(ia, ib);
        let span_count: usize = a
            .resource_spans
            .iter()
            .map(|r| r.scope_spans[0].spans.len())
            .sum();
        assert_eq!(span_count, args.spans_per_trace * args.traces_per_request);
        let names = |r: &ExportTraceServiceRequest| -> Vec<String> {
            r.resource_spans
                .iter()
                .flat_map(|r| r.scope_spans[0].spans.iter().map(|s| s.name.clone()))
                .collect()
        };
        assert_eq!(names(&a), names(&b));
        let (_, ic) = request(&args, 4);
        assert_ne!(ia, ic);
    }
}
