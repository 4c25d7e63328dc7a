//! Zipkin v2 spans from their two wire forms, JSON (`[{"traceId": ...}]`) and protobuf
//! (`zipkin.proto`'s `ListOfSpans`), into one [`Span`] that [`super::convert`] maps to OTLP.
//!
//! Each span is decoded on its own: a span that breaks the model (an id that is not hex of
//! the right length, a time that is not a number) is reported by its position and left out,
//! the others go on. Times become nanoseconds; JSON times may carry a fraction of a
//! microsecond, as the OpenTelemetry exporters send them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A span's role in an RPC or message exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Client,
    Server,
    Producer,
    Consumer,
}

impl Kind {
    fn parse(name: &str) -> Result<Self, String> {
        match name.to_ascii_uppercase().as_str() {
            "CLIENT" => Ok(Kind::Client),
            "SERVER" => Ok(Kind::Server),
            "PRODUCER" => Ok(Kind::Producer),
            "CONSUMER" => Ok(Kind::Consumer),
            _ => Err(format!(
                "kind {name:?} is not CLIENT, SERVER, PRODUCER or CONSUMER"
            )),
        }
    }
}

/// A network endpoint; IPs in their text form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Endpoint {
    pub service_name: Option<String>,
    pub ipv4: Option<String>,
    pub ipv6: Option<String>,
    pub port: Option<i64>,
}

/// One Zipkin span, decoded and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// 16 bytes (a 64-bit id is padded on the left with zeros).
    pub trace_id: [u8; 16],
    pub id: [u8; 8],
    pub parent_id: Option<[u8; 8]>,
    pub kind: Option<Kind>,
    pub name: String,
    pub start_ns: u64,
    pub duration_ns: u64,
    pub local: Option<Endpoint>,
    pub remote: Option<Endpoint>,
    /// (time in ns, value).
    pub annotations: Vec<(u64, String)>,
    pub tags: BTreeMap<String, String>,
    pub shared: bool,
}

/// The spans of a request, and why the others were left out.
#[derive(Debug, Default)]
pub struct Decoded {
    pub spans: Vec<Span>,
    /// (index in the request, reason).
    pub rejected: Vec<(usize, String)>,
}

impl Decoded {
    fn push(&mut self, index: usize, span: Result<Span, String>) {
        match span {
            Ok(s) => self.spans.push(s),
            Err(e) => self.rejected.push((index, e)),
        }
    }
}

/// Microseconds (whole or with a fraction) as nanoseconds, exact to the nanosecond (a
/// fraction is read from the number's digits: an `f64` cannot hold today's time in ns).
fn micros(v: &Value, field: &str) -> Result<u64, String> {
    let n = match v {
        Value::Null => return Ok(0),
        Value::Number(n) => n,
        other => return Err(format!("{field} {other} is not a number of microseconds")),
    };
    if let Some(u) = n.as_u64() {
        return Ok(u.saturating_mul(1_000));
    }
    let bad = || format!("{field} {n} is not a positive number of microseconds");
    let text = n.to_string();
    if let Some((whole, fraction)) = text.split_once('.')
        && !fraction.contains(['e', 'E'])
        && let Ok(whole) = whole.parse::<u64>()
    {
        let digits: String = fraction.chars().chain("000".chars()).take(3).collect();
        let nanos = digits.parse::<u64>().map_err(|_| bad())?;
        return Ok(whole.saturating_mul(1_000).saturating_add(nanos));
    }
    match n.as_f64() {
        Some(f) if f >= 0.0 && f.is_finite() => Ok((f * 1_000.0).round() as u64),
        _ => Err(bad()),
    }
}

fn hex_bytes<const N: usize>(text: &str, field: &str) -> Result<[u8; N], String> {
    let text = text.trim();
    let bad = || format!("{field} {text:?} is not {} hex digits", N * 2);
    if text.is_empty() || text.len() > N * 2 {
        return Err(bad());
    }
    let padded = format!("{text:0>width$}", width = N * 2);
    let mut out = [0u8; N];
    hex::decode_to_slice(&padded, &mut out).map_err(|_| bad())?;
    Ok(out)
}

/// A trace id: up to 32 hex digits, padded on the left as Zipkin's server pads them.
fn trace_id(text: &str) -> Result<[u8; 16], String> {
    hex_bytes::<16>(text, "traceId")
}

/// A span id: up to 16 hex digits, padded on the left.
fn span_id(text: &str, field: &str) -> Result<[u8; 8], String> {
    hex_bytes::<8>(text, field)
}

/// The checks and defaults Zipkin's server applies to a decoded span: ids must not be all
/// zeros (a zero parent is no parent), and a span without a timestamp takes its first
/// annotation's, else the time it arrived (at 0 it would sit in 1970, outside every search).
fn checked(mut s: Span) -> Result<Span, String> {
    if s.trace_id == [0; 16] {
        return Err("traceId is all zeros".into());
    }
    if s.id == [0; 8] {
        return Err("id is all zeros".into());
    }
    if s.parent_id == Some([0; 8]) {
        s.parent_id = None;
    }
    if s.start_ns == 0 {
        s.start_ns = s
            .annotations
            .iter()
            .map(|(t, _)| *t)
            .filter(|t| *t > 0)
            .min()
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64)
            });
    }
    Ok(s)
}

fn nonempty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonEndpoint {
    service_name: Option<String>,
    ipv4: Option<String>,
    ipv6: Option<String>,
    port: Option<i64>,
}

impl From<JsonEndpoint> for Endpoint {
    fn from(e: JsonEndpoint) -> Self {
        Endpoint {
            service_name: nonempty(e.service_name),
            ipv4: nonempty(e.ipv4),
            ipv6: nonempty(e.ipv6),
            port: e.port.filter(|p| *p > 0),
        }
    }
}

#[derive(Deserialize)]
struct JsonAnnotation {
    #[serde(default)]
    timestamp: Value,
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JsonSpan {
    trace_id: Option<String>,
    id: Option<String>,
    parent_id: Option<String>,
    kind: Option<String>,
    name: Option<String>,
    #[serde(default)]
    timestamp: Value,
    #[serde(default)]
    duration: Value,
    local_endpoint: Option<JsonEndpoint>,
    remote_endpoint: Option<JsonEndpoint>,
    annotations: Option<Vec<JsonAnnotation>>,
    tags: Option<BTreeMap<String, Value>>,
    shared: Option<bool>,
}

fn json_span(value: Value) -> Result<Span, String> {
    let s: JsonSpan = serde_json::from_value(value).map_err(|e| e.to_string())?;
    let trace = trace_id(s.trace_id.as_deref().ok_or("traceId is missing")?)?;
    let id = span_id(s.id.as_deref().ok_or("id is missing")?, "id")?;
    let parent_id = match s.parent_id.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => Some(span_id(p, "parentId")?),
    };
    let kind = match s.kind.as_deref() {
        None | Some("") => None,
        Some(k) => Some(Kind::parse(k)?),
    };
    let mut annotations = Vec::new();
    for a in s.annotations.unwrap_or_default() {
        annotations.push((
            micros(&a.timestamp, "annotation timestamp")?,
            a.value.unwrap_or_default(),
        ));
    }
    let tags = s
        .tags
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            Value::Null => None,
            Value::String(s) => Some((k, s)),
            other => Some((k, other.to_string())),
        })
        .collect();
    checked(Span {
        trace_id: trace,
        id,
        parent_id,
        kind,
        name: s.name.unwrap_or_default(),
        start_ns: micros(&s.timestamp, "timestamp")?,
        duration_ns: micros(&s.duration, "duration")?,
        local: s.local_endpoint.map(Endpoint::from),
        remote: s.remote_endpoint.map(Endpoint::from),
        annotations,
        tags,
        shared: s.shared.unwrap_or(false),
    })
}

/// Spans of a JSON v2 body: an array of span objects.
pub fn json(body: &[u8]) -> Result<Decoded, String> {
    let values: Vec<Value> =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON array of spans: {e}"))?;
    let mut out = Decoded::default();
    for (i, v) in values.into_iter().enumerate() {
        out.push(i, json_span(v));
    }
    Ok(out)
}

/// `zipkin.proto`, the messages this receiver reads.
mod proto {
    use std::collections::HashMap;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ListOfSpans {
        #[prost(message, repeated, tag = "1")]
        pub spans: Vec<Span>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Span {
        #[prost(bytes = "vec", tag = "1")]
        pub trace_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub parent_id: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub id: Vec<u8>,
        /// 0 unspecified, 1 client, 2 server, 3 producer, 4 consumer.
        #[prost(int32, tag = "4")]
        pub kind: i32,
        #[prost(string, tag = "5")]
        pub name: String,
        #[prost(fixed64, tag = "6")]
        pub timestamp: u64,
        #[prost(uint64, tag = "7")]
        pub duration: u64,
        #[prost(message, optional, tag = "8")]
        pub local_endpoint: Option<Endpoint>,
        #[prost(message, optional, tag = "9")]
        pub remote_endpoint: Option<Endpoint>,
        #[prost(message, repeated, tag = "10")]
        pub annotations: Vec<Annotation>,
        #[prost(map = "string, string", tag = "11")]
        pub tags: HashMap<String, String>,
        #[prost(bool, tag = "12")]
        pub debug: bool,
        #[prost(bool, tag = "13")]
        pub shared: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Endpoint {
        #[prost(string, tag = "1")]
        pub service_name: String,
        #[prost(bytes = "vec", tag = "2")]
        pub ipv4: Vec<u8>,
        #[prost(bytes = "vec", tag = "3")]
        pub ipv6: Vec<u8>,
        #[prost(int32, tag = "4")]
        pub port: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Annotation {
        #[prost(fixed64, tag = "1")]
        pub timestamp: u64,
        #[prost(string, tag = "2")]
        pub value: String,
    }
}

pub use proto::ListOfSpans;

fn ip(bytes: &[u8], field: &str) -> Result<Option<String>, String> {
    match bytes.len() {
        0 => Ok(None),
        4 => Ok(Some(
            std::net::Ipv4Addr::from(<[u8; 4]>::try_from(bytes).unwrap_or_default()).to_string(),
        )),
        16 => Ok(Some(
            std::net::Ipv6Addr::from(<[u8; 16]>::try_from(bytes).unwrap_or_default()).to_string(),
        )),
        n => Err(format!("{field} has {n} bytes, not 4 or 16")),
    }
}

fn proto_endpoint(e: proto::Endpoint) -> Result<Endpoint, String> {
    Ok(Endpoint {
        service_name: nonempty(Some(e.service_name)),
        ipv4: ip(&e.ipv4, "ipv4")?,
        ipv6: ip(&e.ipv6, "ipv6")?,
        port: (e.port > 0).then_some(e.port as i64),
    })
}

fn id_bytes<const N: usize>(bytes: &[u8], field: &str) -> Result<[u8; N], String> {
    let mut out = [0u8; N];
    match bytes.len() {
        n if n == N => out.copy_from_slice(bytes),
        8 if N == 16 => out[8..].copy_from_slice(bytes),
        n => return Err(format!("{field} has {n} bytes, not {N}")),
    }
    Ok(out)
}

fn proto_span(s: proto::Span) -> Result<Span, String> {
    let kind = match s.kind {
        0 => None,
        1 => Some(Kind::Client),
        2 => Some(Kind::Server),
        3 => Some(Kind::Producer),
        4 => Some(Kind::Consumer),
        k => return Err(format!("kind {k} is not a Zipkin span kind")),
    };
    checked(Span {
        trace_id: id_bytes::<16>(&s.trace_id, "trace_id")?,
        id: id_bytes::<8>(&s.id, "id")?,
        parent_id: match s.parent_id.len() {
            0 => None,
            _ => Some(id_bytes::<8>(&s.parent_id, "parent_id")?),
        },
        kind,
        name: s.name,
        start_ns: s.timestamp.saturating_mul(1_000),
        duration_ns: s.duration.saturating_mul(1_000),
        local: s.local_endpoint.map(proto_endpoint).transpose()?,
        remote: s.remote_endpoint.map(proto_endpoint).transpose()?,
        annotations: s
            .annotations
            .into_iter()
            .map(|a| (a.timestamp.saturating_mul(1_000), a.value))
            .collect(),
        tags: s.tags.into_iter().collect(),
        shared: s.shared,
    })
}

/// Spans of a protobuf body (`ListOfSpans`).
pub fn protobuf(body: &[u8]) -> Result<Decoded, String> {
    let list = <ListOfSpans as prost::Message>::decode(body)
        .map_err(|e| format!("not a zipkin.proto ListOfSpans: {e}"))?;
    let mut out = Decoded::default();
    for (i, s) in list.spans.into_iter().enumerate() {
        out.push(i, proto_span(s));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_spans_decode_and_bad_ones_are_reported_alone() {
        let body = br#"[
          {"traceId":"5af7183fb1d4cf5f","id":"352bff9a74ca9ad2","parentId":"6b221d5bc9e6496c",
           "kind":"SERVER","name":"get /api","timestamp":1556604172355737.5,"duration":1431,
           "localEndpoint":{"serviceName":"backend","ipv4":"192.168.99.1","port":3306},
           "remoteEndpoint":{"ipv4":"172.19.0.2","port":58648},
           "annotations":[{"timestamp":1556604172355800,"value":"wr"}],
           "tags":{"http.method":"GET","http.status_code":200}},
          {"traceId":"xyz","id":"352bff9a74ca9ad2"},
          {"traceId":"463ac35c9f6413ad48485a3953bb6124","id":"0102030405060708","kind":"BOGUS"}
        ]"#;
        let d = json(body).unwrap();
        assert_eq!(d.spans.len(), 1);
        let s = &d.spans[0];
        assert_eq!(&s.trace_id[..8], &[0; 8]);
        assert_eq!(hex::encode(&s.trace_id[8..]), "5af7183fb1d4cf5f");
        assert_eq!(s.start_ns, 1_556_604_172_355_737_500);
        assert_eq!(s.duration_ns, 1_431_000);
        assert_eq!(s.kind, Some(Kind::Server));
        assert_eq!(s.tags["http.status_code"], "200");
        assert_eq!(s.local.as_ref().unwrap().port, Some(3306));
        assert_eq!(d.rejected.len(), 2);
        assert_eq!(d.rejected[0].0, 1);
        assert!(d.rejected[0].1.contains("traceId"), "{:?}", d.rejected);
        assert!(d.rejected[1].1.contains("BOGUS"), "{:?}", d.rejected);
        assert!(json(b"{\"not\":\"a list\"}").is_err());
        // Short ids are padded; zero ids refused; a zero parent is none; no timestamp takes
        // the first annotation's.
        let d = json(br#"[{"traceId":"abc","id":"1","parentId":"0000000000000000","annotations":[{"timestamp":7,"value":"x"}]},
                         {"traceId":"0","id":"1"},{"traceId":"1","id":"0"}]"#)
        .unwrap();
        assert_eq!(d.spans.len(), 1, "{:?}", d.rejected);
        assert_eq!(
            (d.spans[0].id[7], d.spans[0].parent_id, d.spans[0].start_ns),
            (1, None, 7_000)
        );
        assert_eq!(d.rejected.len(), 2);
    }

    #[test]
    fn protobuf_spans_decode() {
        let list = ListOfSpans {
            spans: vec![proto::Span {
                trace_id: vec![7; 16],
                id: vec![1; 8],
                kind: 1,
                name: "call".into(),
                timestamp: 10,
                duration: 5,
                local_endpoint: Some(proto::Endpoint {
                    service_name: "front".into(),
                    ipv4: vec![10, 0, 0, 1],
                    ..Default::default()
                }),
                ..Default::default()
            }],
        };
        let d = protobuf(&prost::Message::encode_to_vec(&list)).unwrap();
        assert_eq!(d.spans[0].start_ns, 10_000);
        assert_eq!(d.spans[0].kind, Some(Kind::Client));
        assert_eq!(
            d.spans[0].local.as_ref().unwrap().ipv4.as_deref(),
            Some("10.0.0.1")
        );
        assert!(protobuf(&[0xff, 0xff]).is_err());
    }
}
