//! Zipkin spans as OTLP, the way the OpenTelemetry specification maps OTLP to Zipkin, read
//! backwards (so a span exported to Zipkin by an OpenTelemetry SDK comes back as it was):
//!
//! - the local endpoint's service name is the resource's `service.name`; spans are grouped
//!   by it, then by instrumentation scope (`otel.scope.name` / `otel.library.name` tags);
//! - `CLIENT`, `SERVER`, `PRODUCER`, `CONSUMER` keep their kind; a span without one is
//!   `INTERNAL` (the specification omits the kind for internal spans);
//! - the remote endpoint becomes `peer.service`, `net.peer.ip`, `net.peer.port`; the local
//!   endpoint's address `net.host.ip`, `net.host.port`;
//! - annotations are events: `{"name": {attributes}}` (how the exporters write an event with
//!   attributes) becomes that event, any other value an event of that name;
//! - the `error` tag, or `otel.status_code` = `ERROR`, makes the status an error, with
//!   `otel.status_description` or the `error` tag as its message; these tags, and the scope
//!   tags, are not kept as attributes; every other tag is a string attribute;
//! - a shared span (the server half of a span id shared with its client) keeps
//!   `zipkin.shared = true`, so the Zipkin query API can give it back as it came.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::span::{Event, SpanKind};
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as OtlpSpan, Status};
use strata_schema::any_value::{from_json, kv, string_kv as string};

use super::decode::{Endpoint, Kind, Span};

/// The attribute that marks a shared span.
pub const SHARED: &str = "zipkin.shared";

/// An annotation as an event: `{"name": {attrs}}` is an event with attributes.
fn event(time_unix_nano: u64, value: &str) -> Event {
    if value.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) = serde_json::from_str(value)
        && map.len() == 1
        && let Some((name, serde_json::Value::Object(attrs))) = map.iter().next()
    {
        return Event {
            time_unix_nano,
            name: name.clone(),
            attributes: attrs
                .iter()
                .map(|(k, v)| KeyValue {
                    key: k.clone(),
                    value: from_json(v),
                    ..Default::default()
                })
                .collect(),
            dropped_attributes_count: 0,
        };
    }
    Event {
        time_unix_nano,
        name: value.to_string(),
        attributes: Vec::new(),
        dropped_attributes_count: 0,
    }
}

fn endpoint_attributes(e: &Endpoint, prefix: &str, out: &mut Vec<KeyValue>) {
    if let Some(ip) = e.ipv4.as_deref().or(e.ipv6.as_deref()) {
        out.push(string(&format!("net.{prefix}.ip"), ip));
    }
    if let Some(port) = e.port {
        out.push(kv(
            &format!("net.{prefix}.port"),
            any_value::Value::IntValue(port),
        ));
    }
}

fn kind(k: Option<Kind>) -> SpanKind {
    match k {
        None => SpanKind::Internal,
        Some(Kind::Client) => SpanKind::Client,
        Some(Kind::Server) => SpanKind::Server,
        Some(Kind::Producer) => SpanKind::Producer,
        Some(Kind::Consumer) => SpanKind::Consumer,
    }
}

/// The span's scope (name, version) and the OTLP span.
fn span(mut s: Span) -> ((String, String), OtlpSpan) {
    let take = |tags: &mut BTreeMap<String, String>, a: &str, b: &str| {
        let first = tags.remove(a);
        let second = tags.remove(b);
        first.or(second).unwrap_or_default()
    };
    let scope = (
        take(&mut s.tags, "otel.scope.name", "otel.library.name"),
        take(&mut s.tags, "otel.scope.version", "otel.library.version"),
    );
    let code = s.tags.remove("otel.status_code");
    let description = s.tags.remove("otel.status_description");
    let error = s.tags.remove("error");
    let status = match (code.as_deref(), error) {
        (Some(c), error) if c.eq_ignore_ascii_case("ERROR") => Some(Status {
            code: StatusCode::Error as i32,
            message: description.or(error).unwrap_or_default(),
        }),
        (_, Some(error)) => Some(Status {
            code: StatusCode::Error as i32,
            message: description.unwrap_or(error),
        }),
        (Some(c), None) if c.eq_ignore_ascii_case("OK") => Some(Status {
            code: StatusCode::Ok as i32,
            message: String::new(),
        }),
        _ => None,
    };
    let mut attributes: Vec<KeyValue> = s.tags.iter().map(|(k, v)| string(k, v)).collect();
    if let Some(local) = &s.local {
        endpoint_attributes(local, "host", &mut attributes);
    }
    if let Some(remote) = &s.remote {
        if let Some(service) = &remote.service_name {
            attributes.push(string("peer.service", service));
        }
        endpoint_attributes(remote, "peer", &mut attributes);
    }
    if s.shared {
        attributes.push(kv(SHARED, any_value::Value::BoolValue(true)));
    }
    let span = OtlpSpan {
        trace_id: s.trace_id.to_vec(),
        span_id: s.id.to_vec(),
        parent_span_id: s.parent_id.map(|p| p.to_vec()).unwrap_or_default(),
        name: s.name,
        kind: kind(s.kind) as i32,
        start_time_unix_nano: s.start_ns,
        end_time_unix_nano: s.start_ns.saturating_add(s.duration_ns),
        attributes,
        events: s.annotations.iter().map(|(t, v)| event(*t, v)).collect(),
        status,
        ..Default::default()
    };
    (scope, span)
}

/// Spans by instrumentation scope (name, version).
type ByScope = BTreeMap<(String, String), Vec<OtlpSpan>>;

/// The spans as one export request: a resource per local service, a scope per
/// instrumentation library.
pub fn to_request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    let mut services: BTreeMap<Option<String>, ByScope> = BTreeMap::new();
    for s in spans {
        let service = s.local.as_ref().and_then(|e| e.service_name.clone());
        let (scope, span) = span(s);
        services
            .entry(service)
            .or_default()
            .entry(scope)
            .or_default()
            .push(span);
    }
    let resource_spans = services
        .into_iter()
        .map(|(service, scopes)| ResourceSpans {
            resource: Some(Resource {
                attributes: service
                    .map(|s| vec![string("service.name", &s)])
                    .unwrap_or_default(),
                ..Default::default()
            }),
            scope_spans: scopes
                .into_iter()
                .map(|((name, version), spans)| ScopeSpans {
                    scope: (!name.is_empty()).then(|| InstrumentationScope {
                        name,
                        version,
                        ..Default::default()
                    }),
                    spans,
                    schema_url: String::new(),
                })
                .collect(),
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zspan() -> Span {
        Span {
            trace_id: [1; 16],
            id: [2; 8],
            parent_id: Some([3; 8]),
            kind: Some(Kind::Client),
            name: "get".into(),
            start_ns: 1_000,
            duration_ns: 500,
            local: Some(Endpoint {
                service_name: Some("front".into()),
                ..Default::default()
            }),
            remote: Some(Endpoint {
                service_name: Some("db".into()),
                ipv4: Some("10.0.0.2".into()),
                port: Some(5432),
                ..Default::default()
            }),
            annotations: vec![
                (1_200, r#"{"retry": {"attempt": 2}}"#.into()),
                (1_300, "ws".into()),
            ],
            tags: [
                ("error", "boom"),
                ("otel.scope.name", "lib"),
                ("http.method", "GET"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            shared: false,
        }
    }

    #[test]
    fn a_zipkin_span_becomes_the_otlp_span_it_was_exported_from() {
        let req = to_request(vec![zspan()]);
        let rs = &req.resource_spans[0];
        let svc = &rs.resource.as_ref().unwrap().attributes[0];
        assert_eq!(svc.key, "service.name");
        let ss = &rs.scope_spans[0];
        assert_eq!(ss.scope.as_ref().unwrap().name, "lib");
        let s = &ss.spans[0];
        assert_eq!(s.kind, SpanKind::Client as i32);
        assert_eq!(s.end_time_unix_nano, 1_500);
        let status = s.status.as_ref().unwrap();
        assert_eq!((status.code, status.message.as_str()), (2, "boom"));
        let keys: Vec<&str> = s.attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "http.method",
                "peer.service",
                "net.peer.ip",
                "net.peer.port"
            ]
        );
        assert_eq!(s.events[0].name, "retry");
        assert_eq!(s.events[0].attributes[0].key, "attempt");
        assert_eq!(s.events[1].name, "ws");
        let mut internal = zspan();
        internal.kind = None;
        internal.tags.clear();
        let s = &to_request(vec![internal]).resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(s.kind, SpanKind::Internal as i32);
        assert!(s.status.is_none());
    }
}
