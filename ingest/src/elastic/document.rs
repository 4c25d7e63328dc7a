//! An Elasticsearch document as a log record, in the terms of the Elastic Common Schema
//! (ECS) that Filebeat, Logstash, Fluent Bit and Vector write:
//!
//! - `@timestamp` is the record's time (an RFC 3339 date, or epoch milliseconds as a number,
//!   as Elasticsearch's default `date` field takes it); without it, the time it arrived;
//! - `message` is the body (Fluent Bit's `log` when there is no `message`);
//! - `log.level` is the severity text, and its number when it names a level;
//! - `trace.id` and `span.id` link the record to its span;
//! - `service.*`, `host.*`, `container.*`, `cloud.*`, `kubernetes.*`, `orchestrator.*` and
//!   `agent.*` describe where the record came from: they are resource attributes, and
//!   records are grouped by them;
//! - every other field is a log attribute under its dotted path (`{"http":{"method":..}}` is
//!   `http.method`); arrays of scalars stay arrays; the index name is `elasticsearch.index`.
//!
//! A document that is not an object, or whose `@timestamp` is not a date, is refused with
//! Elasticsearch's own error type for it.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde_json::{Map, Value};
use strata_schema::any_value::{from_json, string_kv};

/// The attribute that keeps the index a document was sent to.
pub const INDEX_ATTRIBUTE: &str = "elasticsearch.index";

/// Top-level ECS field sets that describe the source rather than the event.
const RESOURCE_PREFIXES: &[&str] = &[
    "service",
    "host",
    "container",
    "cloud",
    "kubernetes",
    "orchestrator",
    "agent",
];

/// Why a document was refused: Elasticsearch's error type and reason.
#[derive(Debug, Clone, PartialEq)]
pub struct DocError {
    pub kind: &'static str,
    pub reason: String,
}

impl DocError {
    fn parsing(reason: String) -> Self {
        Self {
            kind: "document_parsing_exception",
            reason,
        }
    }
}

/// A record and the resource attributes it came with.
pub struct Record {
    pub resource: Vec<KeyValue>,
    pub record: LogRecord,
}

/// Every leaf of `map` under its dotted path, in document order.
fn flatten<'a>(prefix: &str, map: &'a Map<String, Value>, out: &mut Vec<(String, &'a Value)>) {
    for (k, v) in map {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            Value::Object(inner) if !inner.is_empty() => flatten(&key, inner, out),
            _ => out.push((key, v)),
        }
    }
}

/// `@timestamp` as nanoseconds since the epoch.
fn timestamp(v: &Value) -> Result<u64, DocError> {
    let bad = || {
        DocError::parsing(format!(
            "failed to parse field [@timestamp] of type [date]: {v} is not a date"
        ))
    };
    match v {
        // Epoch milliseconds: exact when whole, an `f64` only for a fraction.
        Value::Number(n) => match n.as_u64() {
            Some(ms) if ms < 9_200_000_000_000 => Ok(ms * 1_000_000),
            Some(_) => Err(bad()),
            None => {
                let ms = n.as_f64().ok_or_else(bad)?;
                if !(0.0..9.2e12).contains(&ms) {
                    return Err(bad());
                }
                Ok((ms * 1e6).round() as u64)
            }
        },
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return t
                    .timestamp_nanos_opt()
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(bad);
            }
            // A date and time without a zone is UTC, as Elasticsearch reads it.
            for f in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
                if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
                    return t
                        .and_utc()
                        .timestamp_nanos_opt()
                        .and_then(|n| u64::try_from(n).ok())
                        .ok_or_else(bad);
                }
            }
            if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                return d
                    .and_hms_opt(0, 0, 0)
                    .and_then(|t| t.and_utc().timestamp_nanos_opt())
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(bad);
            }
            Err(bad())
        }
        _ => Err(bad()),
    }
}

fn hex_id<const N: usize>(v: &Value) -> Option<Vec<u8>> {
    let s = v.as_str()?.trim();
    if s.len() != N * 2 {
        return None;
    }
    let b = hex::decode(s).ok()?;
    b.iter().any(|x| *x != 0).then_some(b)
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The log record of `source`, sent to `index`, arrived at `now_ns`.
pub fn to_record(index: &str, source: &Value, now_ns: u64) -> Result<Record, DocError> {
    let Value::Object(map) = source else {
        return Err(DocError::parsing(format!(
            "the document must be a JSON object, not {}",
            kind_of(source)
        )));
    };
    // The time is one field, whatever its type: an object there is not a date either.
    let time = map.get("@timestamp").map(timestamp).transpose()?;
    let mut leaves = Vec::new();
    flatten("", map, &mut leaves);
    leaves.retain(|(key, _)| key != "@timestamp" && !key.starts_with("@timestamp."));
    let mut record = LogRecord {
        observed_time_unix_nano: now_ns,
        ..Default::default()
    };
    let mut resource = Vec::new();
    let mut body: Option<&Value> = None;
    let mut fallback_body: Option<&Value> = None;
    for (key, value) in leaves {
        match key.as_str() {
            "message" => body = Some(value),
            "log" if value.is_string() => fallback_body = Some(value),
            "log.level" => {
                let level = text(value);
                record.severity_number = strata_schema::logs::severity_of(&level).unwrap_or(0);
                record.severity_text = level;
            }
            "trace.id" if hex_id::<16>(value).is_some() => {
                record.trace_id = hex_id::<16>(value).unwrap_or_default();
            }
            "span.id" if hex_id::<8>(value).is_some() => {
                record.span_id = hex_id::<8>(value).unwrap_or_default();
            }
            _ => {
                let Some(v) = from_json(value) else { continue };
                let kv = KeyValue {
                    key: key.clone(),
                    value: Some(v),
                    ..Default::default()
                };
                let top = key.split('.').next().unwrap_or("");
                if RESOURCE_PREFIXES.contains(&top) && key.contains('.') {
                    resource.push(kv);
                } else {
                    record.attributes.push(kv);
                }
            }
        }
    }
    record.time_unix_nano = time.unwrap_or(now_ns);
    record.body = body.or(fallback_body).and_then(|b| match b {
        Value::String(s) => Some(AnyValue {
            value: Some(any_value::Value::StringValue(s.clone())),
        }),
        other => from_json(other),
    });
    record.attributes.push(string_kv(INDEX_ATTRIBUTE, index));
    Ok(Record { resource, record })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attr<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
        kvs.iter()
            .find(|k| k.key == key)
            .and_then(|k| k.value.as_ref()?.value.as_ref())
    }

    #[test]
    fn ecs_fields_map_to_the_log_model() {
        let doc = json!({
            "@timestamp": "2026-12-06T10:00:00.123Z",
            "message": "GET /cart 200",
            "log": {"level": "WARN", "file": {"path": "/var/log/app.log"}},
            "trace": {"id": "4bf92f3577b34da6a3ce929d0e0e4736"},
            "span.id": "00f067aa0ba902b7",
            "service": {"name": "cart", "version": "1.2"},
            "host.name": "node-1",
            "http": {"response": {"status_code": 200}},
            "tags": ["a", "b"],
        });
        let r = to_record("logs-app", &doc, 7).unwrap();
        let rec = &r.record;
        assert_eq!(rec.time_unix_nano, 1_796_551_200_123_000_000);
        assert_eq!(rec.observed_time_unix_nano, 7);
        assert_eq!(
            (rec.severity_text.as_str(), rec.severity_number),
            ("WARN", 13)
        );
        assert_eq!(
            hex::encode(&rec.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(hex::encode(&rec.span_id), "00f067aa0ba902b7");
        assert_eq!(
            attr(&r.resource, "service.name"),
            Some(&any_value::Value::StringValue("cart".into()))
        );
        assert!(attr(&r.resource, "host.name").is_some());
        assert_eq!(
            attr(&rec.attributes, "http.response.status_code"),
            Some(&any_value::Value::IntValue(200))
        );
        assert!(attr(&rec.attributes, "log.file.path").is_some());
        assert!(matches!(
            attr(&rec.attributes, "tags"),
            Some(any_value::Value::ArrayValue(a)) if a.values.len() == 2
        ));
        assert_eq!(
            attr(&rec.attributes, INDEX_ATTRIBUTE),
            Some(&any_value::Value::StringValue("logs-app".into()))
        );
        let body = rec.body.as_ref().unwrap().value.as_ref().unwrap();
        assert_eq!(body, &any_value::Value::StringValue("GET /cart 200".into()));
    }

    #[test]
    fn epoch_millis_and_bad_documents() {
        let r = to_record(
            "i",
            &json!({"@timestamp": 1_700_000_000_000u64, "log": "x"}),
            1,
        )
        .unwrap();
        assert_eq!(r.record.time_unix_nano, 1_700_000_000_000_000_000);
        assert!(r.record.body.is_some());
        let e = to_record("i", &json!({"@timestamp": "yesterday"}), 1)
            .err()
            .unwrap();
        assert_eq!(e.kind, "document_parsing_exception");
        assert!(to_record("i", &json!({"@timestamp": {"a": 1}}), 1).is_err());
        assert!(to_record("i", &json!([1]), 1).is_err());
        let r = to_record("i", &json!({"msg": "no time"}), 5).unwrap();
        assert_eq!(r.record.time_unix_nano, 5);
    }
}
