//! Prometheus remote write 1.0 (`prometheus.WriteRequest`, snappy block format) to OTLP
//! metrics, so remote-written samples take the same path as OTLP ones.
//!
//! The message types are declared here with prost's derive (the `.proto` has no crate of
//! its own that matches prost 0.14). Every series becomes one gauge under the
//! [`PROMETHEUS_SCOPE`], named by its `__name__` with its other labels as attributes, so
//! readers take names and labels verbatim; a series whose metadata says `counter` becomes a
//! cumulative monotonic sum. Exemplars join the sample nearest in time; a series that carries
//! only exemplars (Prometheus sends them apart from samples) becomes value-less points, one
//! per exemplar, which hold the exemplar and are not samples.
//!
//! Metadata (type, help, unit) comes from the request itself or, since Prometheus sends it in
//! requests of its own, from a [`MetadataCache`] the receiver keeps. A series finds its family
//! by its name, or by its name without `_total` (OpenMetrics counters), `_bucket`, `_sum` or
//! `_count`.
//!
//! Invariants: a series without a `__name__`, with an empty or repeated label name, or a
//! sample before 1970 is rejected (counted, not stored); native histogram samples are
//! rejected too. Decompression is bounded by a limit checked before any allocation.

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar as OtlpExemplar, Gauge, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, exemplar, metric::Data, number_data_point,
};
use prost::Message;

use crate::metrics::PROMETHEUS_SCOPE;
use crate::text::floor_char;

#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    #[prost(message, repeated, tag = "3")]
    pub exemplars: Vec<Exemplar>,
    /// Native histogram samples, kept undecoded: they are counted and rejected.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct Exemplar {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(double, tag = "2")]
    pub value: f64,
    #[prost(int64, tag = "3")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, Message)]
pub struct MetricMetadata {
    /// 0 unknown, 1 counter, 2 gauge, 3 histogram, 4 gauge histogram, 5 summary, 6 info,
    /// 7 stateset.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

const COUNTER: i32 = 1;

/// Metric metadata remembered across requests, by family name; bounded in size.
#[derive(Debug, Default)]
pub struct MetadataCache {
    families: std::collections::HashMap<String, MetricMetadata>,
}

impl MetadataCache {
    /// The longest help and unit kept, in bytes (longer ones are cut at a character boundary).
    pub const MAX_TEXT_BYTES: usize = 1024;

    /// Remembers (or updates) the metadata of a request, adding at most `room` new families
    /// (known ones still update).
    pub fn remember(&mut self, metadata: &[MetricMetadata], room: usize) {
        let mut added = 0;
        for m in metadata {
            if m.metric_family_name.len() > Self::MAX_TEXT_BYTES {
                continue;
            }
            let m = MetricMetadata {
                help: floor_char(&m.help, Self::MAX_TEXT_BYTES).to_string(),
                unit: floor_char(&m.unit, Self::MAX_TEXT_BYTES).to_string(),
                ..m.clone()
            };
            if let Some(known) = self.families.get_mut(&m.metric_family_name) {
                *known = m;
            } else if added < room {
                added += 1;
                self.families.insert(m.metric_family_name.clone(), m);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.families.len()
    }

    pub fn is_empty(&self) -> bool {
        self.families.is_empty()
    }

    fn get(&self, family: &str) -> Option<&MetricMetadata> {
        self.families.get(family)
    }
}

/// The metadata of the family a series named `name` belongs to: its own name first, then the
/// name without a suffix Prometheus adds to a family's series.
fn family_of<'a>(
    name: &str,
    lookup: impl Fn(&str) -> Option<&'a MetricMetadata>,
) -> Option<&'a MetricMetadata> {
    // `_total` belongs to counters; `_bucket`, `_sum`, `_count` to (gauge) histograms and
    // summaries.
    const SUFFIXES: [(&str, &[i32]); 4] = [
        ("_total", &[COUNTER]),
        ("_bucket", &[3, 4]),
        ("_sum", &[3, 4, 5]),
        ("_count", &[3, 4, 5]),
    ];
    lookup(name).or_else(|| {
        SUFFIXES.iter().find_map(|(suffix, types)| {
            let family = lookup(name.strip_suffix(suffix)?)?;
            types.contains(&family.r#type).then_some(family)
        })
    })
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("decompressed body would be {0} bytes, over the limit of {1}")]
    TooLarge(usize, usize),
    #[error("invalid snappy data: {0}")]
    Snappy(String),
    #[error("invalid WriteRequest: {0}")]
    Protobuf(String),
}

/// Decompresses (snappy block format) and decodes a remote write body.
pub fn decode(body: &[u8], max_bytes: usize) -> Result<WriteRequest, DecodeError> {
    let len = snap::raw::decompress_len(body).map_err(|e| DecodeError::Snappy(e.to_string()))?;
    if len > max_bytes {
        return Err(DecodeError::TooLarge(len, max_bytes));
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| DecodeError::Snappy(e.to_string()))?;
    WriteRequest::decode(raw.as_slice()).map_err(|e| DecodeError::Protobuf(e.to_string()))
}

/// Encodes a request the way a remote write sender does (for tests and load generators).
pub fn encode(request: &WriteRequest) -> Vec<u8> {
    snap::raw::Encoder::new()
        .compress_vec(&request.encode_to_vec())
        .unwrap_or_default()
}

/// A request as OTLP, with what had to be rejected.
#[derive(Debug, Default)]
pub struct Converted {
    pub resource_metrics: Vec<ResourceMetrics>,
    /// Samples accepted.
    pub samples: usize,
    /// Samples (and native histogram samples) rejected.
    pub rejected: usize,
    /// Why, for the first rejected series.
    pub message: String,
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

fn invalid_series(labels: &[Label]) -> Option<String> {
    let mut names: Vec<&str> = labels.iter().map(|l| l.name.as_str()).collect();
    if names.iter().any(|n| n.is_empty()) {
        return Some("a label name is empty".into());
    }
    names.sort_unstable();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        return Some(format!("label {:?} is repeated", w[0]));
    }
    match labels.iter().find(|l| l.name == "__name__") {
        Some(l) if !l.value.is_empty() => None,
        _ => Some("a series has no __name__ label".into()),
    }
}

fn exemplar_of(e: &Exemplar) -> OtlpExemplar {
    let mut out = OtlpExemplar {
        time_unix_nano: (e.timestamp.max(0) as u64).saturating_mul(1_000_000),
        value: Some(exemplar::Value::AsDouble(e.value)),
        ..Default::default()
    };
    for l in &e.labels {
        let bytes = hex::decode(&l.value).ok();
        match (l.name.as_str(), bytes) {
            ("trace_id", Some(b)) if b.len() == 16 => out.trace_id = b,
            ("span_id", Some(b)) if b.len() == 8 => out.span_id = b,
            _ => out.filtered_attributes.push(kv(&l.name, &l.value)),
        }
    }
    out
}

/// Converts a decoded request to OTLP metrics; metadata is the request's own, else `known`'s.
pub fn to_otlp(request: &WriteRequest, known: &MetadataCache) -> Converted {
    let mut out = Converted::default();
    let own: std::collections::HashMap<&str, &MetricMetadata> = request
        .metadata
        .iter()
        .map(|m| (m.metric_family_name.as_str(), m))
        .collect();
    let mut metrics = Vec::with_capacity(request.timeseries.len());
    for ts in &request.timeseries {
        if !ts.histograms.is_empty() {
            out.rejected += ts.histograms.len();
            if out.message.is_empty() {
                out.message = "native histogram samples are not supported".into();
            }
        }
        if ts.samples.is_empty() && ts.exemplars.is_empty() {
            continue;
        }
        if let Some(why) = invalid_series(&ts.labels) {
            out.rejected += ts.samples.len();
            if out.message.is_empty() {
                out.message = why;
            }
            continue;
        }
        let name = ts
            .labels
            .iter()
            .find(|l| l.name == "__name__")
            .map(|l| l.value.as_str())
            .unwrap_or_default();
        let attributes: Vec<KeyValue> = ts
            .labels
            .iter()
            .filter(|l| l.name != "__name__")
            .map(|l| kv(&l.name, &l.value))
            .collect();
        let mut points: Vec<NumberDataPoint> = Vec::with_capacity(ts.samples.len());
        for s in &ts.samples {
            if s.timestamp < 0 {
                out.rejected += 1;
                if out.message.is_empty() {
                    out.message = format!("sample of {name} before 1970");
                }
                continue;
            }
            points.push(NumberDataPoint {
                attributes: attributes.clone(),
                time_unix_nano: (s.timestamp as u64).saturating_mul(1_000_000),
                value: Some(number_data_point::Value::AsDouble(s.value)),
                ..Default::default()
            });
        }
        out.samples += points.len();
        if points.is_empty() {
            // Exemplars alone: each on a point of its own without a value.
            points.extend(ts.exemplars.iter().filter(|e| e.timestamp >= 0).map(|e| {
                NumberDataPoint {
                    attributes: attributes.clone(),
                    time_unix_nano: (e.timestamp as u64).saturating_mul(1_000_000),
                    exemplars: vec![exemplar_of(e)],
                    ..Default::default()
                }
            }));
        } else {
            for e in &ts.exemplars {
                let nearest = points.iter_mut().min_by_key(|p| {
                    (p.time_unix_nano as i128 - e.timestamp as i128 * 1_000_000).abs()
                });
                if let Some(p) = nearest {
                    p.exemplars.push(exemplar_of(e));
                }
            }
        }
        if points.is_empty() {
            continue;
        }
        let meta = family_of(name, |n| own.get(n).copied().or_else(|| known.get(n)));
        // A family's `_sum`/`_count`/`_bucket` series stay gauges; only counters' own series
        // are sums.
        let is_counter = meta.is_some_and(|m| {
            m.r#type == COUNTER
                && (m.metric_family_name == name
                    || name.strip_suffix("_total") == Some(m.metric_family_name.as_str()))
        });
        let data = if is_counter {
            Data::Sum(Sum {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            })
        } else {
            Data::Gauge(Gauge {
                data_points: points,
            })
        };
        metrics.push(Metric {
            name: name.to_string(),
            description: meta.map(|m| m.help.clone()).unwrap_or_default(),
            unit: meta.map(|m| m.unit.clone()).unwrap_or_default(),
            data: Some(data),
            ..Default::default()
        });
    }
    if !metrics.is_empty() {
        out.resource_metrics.push(ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: PROMETHEUS_SCOPE.into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(n: &str, v: &str) -> Label {
        Label {
            name: n.into(),
            value: v.into(),
        }
    }

    #[test]
    fn round_trips_and_rejects_bad_series() {
        let request = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![label("__name__", "up"), label("job", "node")],
                    samples: vec![
                        Sample {
                            value: 1.0,
                            timestamp: 1000,
                        },
                        Sample {
                            value: f64::from_bits(0x7ff0_0000_0000_0002),
                            timestamp: 2000,
                        },
                    ],
                    ..Default::default()
                },
                TimeSeries {
                    labels: vec![label("job", "x")],
                    samples: vec![Sample {
                        value: 1.0,
                        timestamp: 1,
                    }],
                    ..Default::default()
                },
            ],
            metadata: vec![],
        };
        let body = encode(&request);
        let decoded = decode(&body, 1 << 20).unwrap();
        // NaN != NaN, so compare the encodings.
        assert_eq!(decoded.encode_to_vec(), request.encode_to_vec());
        let c = to_otlp(&decoded, &MetadataCache::default());
        assert_eq!((c.samples, c.rejected), (2, 1));
        assert!(c.message.contains("__name__"), "{}", c.message);
        let m = &c.resource_metrics[0].scope_metrics[0].metrics[0];
        let Some(Data::Gauge(g)) = &m.data else {
            panic!("gauge expected")
        };
        let Some(number_data_point::Value::AsDouble(stale)) = g.data_points[1].value else {
            panic!("double expected")
        };
        assert_eq!(stale.to_bits(), 0x7ff0_0000_0000_0002);
    }

    #[test]
    fn bombs_stop_before_decompressing() {
        let big = vec![0u8; 1 << 20];
        let body = snap::raw::Encoder::new().compress_vec(&big).unwrap();
        assert!(body.len() < 100_000);
        assert!(matches!(
            decode(&body, 1000),
            Err(DecodeError::TooLarge(..))
        ));
        assert!(matches!(
            decode(b"garbage", 1000),
            Err(DecodeError::Snappy(_))
        ));
    }

    #[test]
    fn metadata_of_earlier_requests_and_exemplars_without_samples() {
        let mut cache = MetadataCache::default();
        cache.remember(
            &[MetricMetadata {
                r#type: COUNTER,
                metric_family_name: "http_requests".into(),
                help: "Requests served.".into(),
                unit: String::new(),
            }],
            10,
        );
        let request = WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![label("__name__", "http_requests_total")],
                    samples: vec![Sample {
                        value: 3.0,
                        timestamp: 1000,
                    }],
                    ..Default::default()
                },
                TimeSeries {
                    labels: vec![label("__name__", "http_requests_created")],
                    samples: vec![Sample {
                        value: 1.0,
                        timestamp: 1000,
                    }],
                    ..Default::default()
                },
                TimeSeries {
                    labels: vec![label("__name__", "latency_bucket"), label("le", "0.5")],
                    exemplars: vec![Exemplar {
                        labels: vec![label("trace_id", "0123456789abcdef0123456789abcdef")],
                        value: 0.3,
                        timestamp: 2000,
                    }],
                    ..Default::default()
                },
            ],
            metadata: vec![],
        };
        let c = to_otlp(&request, &cache);
        assert_eq!((c.samples, c.rejected), (2, 0));
        let metrics = &c.resource_metrics[0].scope_metrics[0].metrics;
        assert!(matches!(metrics[0].data, Some(Data::Sum(ref s)) if s.is_monotonic));
        assert_eq!(metrics[0].description, "Requests served.");
        assert!(matches!(metrics[1].data, Some(Data::Gauge(_))));
        let Some(Data::Gauge(g)) = &metrics[2].data else {
            panic!("gauge expected")
        };
        assert_eq!(g.data_points.len(), 1);
        assert_eq!(g.data_points[0].value, None);
        assert_eq!(g.data_points[0].time_unix_nano, 2_000_000_000);
        assert_eq!(g.data_points[0].exemplars[0].trace_id.len(), 16);
    }

    #[test]
    fn the_metadata_cache_is_bounded() {
        let meta = |name: &str, help: String| MetricMetadata {
            r#type: COUNTER,
            metric_family_name: name.into(),
            help,
            unit: String::new(),
        };
        let mut cache = MetadataCache::default();
        cache.remember(&[meta("a", "é".repeat(2000)), meta("b", String::new())], 1);
        assert_eq!(cache.len(), 1);
        let help = &cache.get("a").unwrap().help;
        assert!(help.len() <= MetadataCache::MAX_TEXT_BYTES && help.starts_with('é'));
        // Known families still update without room.
        cache.remember(&[meta("a", "new".into()), meta("c", String::new())], 0);
        assert_eq!(
            (cache.len(), cache.get("a").unwrap().help.as_str()),
            (1, "new")
        );
    }
}
