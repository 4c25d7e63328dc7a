//! A decoded `WriteRequest` straight into one `metrics` record batch.
//!
//! Everything a series shares is worked out once per series, not once per sample: its
//! validity, name, labels, `series_id`, metadata family and type. The rows are the ones the
//! OTLP path stores for the same samples (the tests hold the two against each other): one
//! gauge point, or cumulative monotonic sum point for counters, per sample, under the
//! [`PROMETHEUS_SCOPE`] and no resource.

use std::collections::HashMap;

use arrow::record_batch::RecordBatch;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::metrics::v1::{AggregationTemporality, Exemplar as OtlpExemplar};

use super::{COUNTER, MetadataCache, MetricMetadata, TimeSeries, WriteRequest};
use super::{exemplar_of, family_of, invalid_series};
use crate::error::Result;
use crate::metrics::{
    Builder, GAUGE, MetricInfo, NumberValue, PROMETHEUS_SCOPE, PrometheusSeries, SUM,
    series_id_of_sorted,
};
use crate::resource::ResourceInfo;

/// A request as one batch, with what had to be rejected.
#[derive(Debug, Default)]
pub struct Converted {
    /// The rows of the accepted samples (and of exemplars sent without samples); `None` when
    /// there are none.
    pub batch: Option<RecordBatch>,
    /// Samples accepted.
    pub samples: usize,
    /// Samples (and native histogram samples) rejected.
    pub rejected: usize,
    /// Why, for the first rejected series.
    pub message: String,
}

impl Converted {
    fn reject(&mut self, count: usize, why: impl FnOnce() -> String) {
        self.rejected += count;
        if self.message.is_empty() {
            self.message = why();
        }
    }
}

/// Converts a decoded request; metadata is the request's own, else `known`'s.
///
/// Fails only where Arrow does (a column past its offset limit), which a request within the
/// receivers' size limit cannot reach.
pub fn to_batch(request: &WriteRequest, known: &MetadataCache) -> Result<Converted> {
    let mut out = Converted::default();
    let own: HashMap<&str, &MetricMetadata> = request
        .metadata
        .iter()
        .map(|m| (m.metric_family_name.as_str(), m))
        .collect();
    let rows = request
        .timeseries
        .iter()
        .map(|ts| ts.samples.len().max(ts.exemplars.len()))
        .sum();
    let mut builder = Builder::new(rows);
    let resource = ResourceInfo::new(None, "");
    let scope = InstrumentationScope {
        name: PROMETHEUS_SCOPE.into(),
        ..Default::default()
    };
    let mut appended = 0;
    let mut labels: Vec<(&str, &str)> = Vec::new();
    let mut sorted: Vec<(&str, &str)> = Vec::new();
    for ts in &request.timeseries {
        if !ts.histograms.is_empty() {
            out.reject(ts.histograms.len(), || {
                "native histogram samples are not supported".into()
            });
        }
        if ts.samples.is_empty() && ts.exemplars.is_empty() {
            continue;
        }
        if let Some(why) = invalid_series(&ts.labels) {
            out.reject(ts.samples.len(), || why);
            continue;
        }
        let mut name = "";
        labels.clear();
        for l in &ts.labels {
            if l.name == "__name__" {
                name = &l.value;
            } else {
                labels.push((&l.name, &l.value));
            }
        }
        let points = Points::of(ts, name, &mut out);
        if points.is_empty() {
            continue;
        }
        sorted.clear();
        sorted.extend_from_slice(&labels);
        sorted.sort_unstable();
        let series_id = series_id_of_sorted(name, sorted.iter().copied(), None);
        let meta = family_of(name, |n| own.get(n).copied().or_else(|| known.get(n)));
        // A family's `_sum`/`_count`/`_bucket` series stay gauges; only counters' own series
        // are sums.
        let is_counter = meta.is_some_and(|m| {
            m.r#type == COUNTER
                && (m.metric_family_name == name
                    || name.strip_suffix("_total") == Some(m.metric_family_name.as_str()))
        });
        let info = MetricInfo {
            name,
            description: meta.map_or("", |m| m.help.as_str()),
            unit: meta.map_or("", |m| m.unit.as_str()),
            metadata: &[],
            metric_type: if is_counter { SUM } else { GAUGE },
            temporality: is_counter.then_some(AggregationTemporality::Cumulative as i32),
            monotonic: is_counter.then_some(true),
        };
        let series = PrometheusSeries {
            info,
            series_id,
            labels: &labels,
            resource: &resource,
            scope: &scope,
        };
        for (time, value, exemplars) in points.rows() {
            builder.append_prometheus_point(&series, time, value, exemplars)?;
            appended += 1;
        }
    }
    if appended > 0 {
        out.batch = Some(builder.finish()?);
    }
    Ok(out)
}

/// Nanoseconds since the epoch of a remote write timestamp (milliseconds, not negative).
fn nanos(millis: i64) -> u64 {
    (millis.max(0) as u64).saturating_mul(1_000_000)
}

/// The rows of one series: its samples from 1970 on, each with the exemplars nearest to it
/// in time; or, for a series without such samples, one value-less row per exemplar.
struct Points {
    /// (time, value) of the accepted samples.
    samples: Vec<(u64, f64)>,
    /// Exemplars per sample, only when the series has any.
    attached: Vec<Vec<OtlpExemplar>>,
    /// Exemplars on rows of their own.
    alone: Vec<(u64, [OtlpExemplar; 1])>,
}

impl Points {
    fn of(ts: &TimeSeries, name: &str, out: &mut Converted) -> Self {
        let mut samples = Vec::with_capacity(ts.samples.len());
        for s in &ts.samples {
            if s.timestamp < 0 {
                out.reject(1, || format!("sample of {name} before 1970"));
            } else {
                samples.push((nanos(s.timestamp), s.value));
            }
        }
        out.samples += samples.len();
        let mut attached = Vec::new();
        let mut alone = Vec::new();
        if samples.is_empty() {
            alone = ts
                .exemplars
                .iter()
                .filter(|e| e.timestamp >= 0)
                .map(|e| (nanos(e.timestamp), [exemplar_of(e)]))
                .collect();
        } else if !ts.exemplars.is_empty() {
            attached = vec![Vec::new(); samples.len()];
            for e in &ts.exemplars {
                let at = e.timestamp as i128 * 1_000_000;
                let nearest = (0..samples.len()).min_by_key(|&i| (samples[i].0 as i128 - at).abs());
                if let Some(i) = nearest {
                    attached[i].push(exemplar_of(e));
                }
            }
        }
        Self {
            samples,
            attached,
            alone,
        }
    }

    fn is_empty(&self) -> bool {
        self.samples.is_empty() && self.alone.is_empty()
    }

    /// (time, value, exemplars) of each row, in order.
    fn rows(&self) -> impl Iterator<Item = (u64, NumberValue, &[OtlpExemplar])> {
        let samples = self.samples.iter().enumerate().map(|(i, &(t, v))| {
            let exemplars = self.attached.get(i).map_or(&[][..], Vec::as_slice);
            (t, NumberValue::Double(v), exemplars)
        });
        let alone = self
            .alone
            .iter()
            .map(|(t, e)| (*t, NumberValue::Unset, &e[..]));
        samples.chain(alone)
    }
}
