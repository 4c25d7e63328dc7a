use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::Event;
use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span, Status};
use strata_schema::any_value::kv;

use super::*;

fn s(v: &str) -> any_value::Value {
    any_value::Value::StringValue(v.into())
}

#[test]
fn otlp_spans_become_zipkin_spans() {
    let mut trace_id = vec![0u8; 8];
    trace_id.extend([0xab; 8]);
    let rs = ResourceSpans {
        resource: Some(Resource {
            attributes: vec![kv("service.name", s("front")), kv("host.name", s("n1"))],
            ..Default::default()
        }),
        scope_spans: vec![ScopeSpans {
            scope: Some(InstrumentationScope {
                name: "lib".into(),
                ..Default::default()
            }),
            spans: vec![Span {
                trace_id,
                span_id: vec![1; 8],
                parent_span_id: vec![2; 8],
                name: "get".into(),
                kind: 3,
                start_time_unix_nano: 5_000,
                end_time_unix_nano: 7_500,
                attributes: vec![
                    kv("http.status_code", any_value::Value::IntValue(500)),
                    kv("peer.service", s("db")),
                    kv("net.peer.ip", s("::1")),
                    kv("net.peer.port", any_value::Value::IntValue(5432)),
                    kv("zipkin.shared", any_value::Value::BoolValue(true)),
                ],
                events: vec![
                    Event {
                        time_unix_nano: 6_000,
                        name: "retry".into(),
                        attributes: vec![kv("n", any_value::Value::IntValue(2))],
                        ..Default::default()
                    },
                    Event {
                        time_unix_nano: 5_500,
                        name: "ws".into(),
                        ..Default::default()
                    },
                ],
                status: Some(Status {
                    code: 2,
                    message: "boom".into(),
                }),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    let z = spans(&[rs]);
    assert_eq!(
        z[0],
        json!({
            "traceId": "abababababababab",
            "id": "0101010101010101",
            "parentId": "0202020202020202",
            "kind": "CLIENT",
            "name": "get",
            "timestamp": 5,
            "duration": 3,
            "localEndpoint": { "serviceName": "front" },
            "remoteEndpoint": { "serviceName": "db", "ipv6": "::1", "port": 5432 },
            "annotations": [
                { "timestamp": 5, "value": "ws" },
                { "timestamp": 6, "value": "{\"retry\":{\"n\":2}}" },
            ],
            "tags": {
                "error": "boom", "host.name": "n1", "http.status_code": "500",
                "otel.scope.name": "lib", "otel.scope.version": "",
                "otel.library.name": "lib", "otel.library.version": "",
                "otel.status_code": "ERROR",
            },
            "shared": true,
        })
    );
}

#[test]
fn search_parameters_become_span_conditions() {
    let p = |q: &str| params(Some(q.to_string()));
    let r = search_request(&p(
        "serviceName=front&spanName=get&annotationQuery=error%20and%20http.method%3DGET&minDuration=1000&endTs=2000&lookback=1000&limit=5",
    ))
    .unwrap();
    assert_eq!(r.extra.len(), 5, "{:?}", r.extra);
    assert!(r.extra[4].contains(">= 1000000"), "{:?}", r.extra);
    assert_eq!(
        (r.range.start_ns, r.range.end_ns, r.limit),
        (1_000_000_000, 2_000_000_000, 5)
    );
    assert_eq!(search_request(&p("spanName=all")).unwrap().extra.len(), 0);
    assert!(search_request(&p("limit=x")).is_err());
    assert!(search_request(&p("lookback=-1")).is_err());
}
