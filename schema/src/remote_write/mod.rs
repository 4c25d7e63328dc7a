//! Prometheus remote write 1.0 (`prometheus.WriteRequest`, snappy block format) into rows of
//! the `metrics` table, the rows OTLP gauges and sums of the same samples would give.
//!
//! The message types are declared here with prost's derive (the `.proto` has no crate of
//! its own that matches prost 0.14). Every series becomes one gauge under the
//! [`PROMETHEUS_SCOPE`](crate::metrics::PROMETHEUS_SCOPE), named by its `__name__` with its other labels as attributes, so
//! readers take names and labels verbatim; a series whose metadata says `counter` becomes a
//! cumulative monotonic sum. [`to_batch`] builds the rows without OTLP structs in between. Exemplars join the sample nearest in time; a series that carries
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

use opentelemetry_proto::tonic::metrics::v1::{Exemplar as OtlpExemplar, exemplar};
use prost::Message;

use crate::any_value::string_kv;
use crate::text::floor_char;

mod batch;

pub use batch::{Converted, to_batch};

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
            _ => out.filtered_attributes.push(string_kv(&l.name, &l.value)),
        }
    }
    out
}

#[cfg(test)]
mod tests;
