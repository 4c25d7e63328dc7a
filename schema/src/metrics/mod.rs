//! Metric data points <-> Arrow: one row per data point of any metric type, resource and scope
//! denormalized, table `metrics`.
//!
//! Layout and invariants:
//! - `metric_type` is one of [`GAUGE`], [`SUM`], [`HISTOGRAM`], [`EXPONENTIAL_HISTOGRAM`],
//!   [`SUMMARY`]. `aggregation_temporality` is null for gauges and summaries, `is_monotonic` is
//!   null except for sums.
//! - Number points set exactly one of `value_double` / `value_int` (both null when the value is
//!   unset). Type-specific columns are null on rows of other types: `count` / `sum` (histograms
//!   and summaries), `min` / `max` / `bucket_counts` / `explicit_bounds` (explicit histograms),
//!   `scale` / `zero_count` / `zero_threshold` / `positive_*` / `negative_*` (exponential
//!   histograms; a null `*_offset` means that side's `Buckets` is absent), `quantile_values`
//!   (summaries), `exemplars` (null for summaries). Floats are stored bit-exactly (NaN, ±Inf).
//! - Exemplar `span_id` / `trace_id` are lowercase hex, null when empty.
//! - `series_id` (derived, see [`series_id`]) identifies a time series for sorting and routing;
//!   it is ignored by [`from_batches`], as are the promoted resource columns.
//! - A `Metric` with no data (or no data points) produces no rows and does not come back.
//!   [`from_batches`] regroups rows by resource, then scope, then metric identity (name,
//!   description, unit, metadata, type, temporality, monotonicity), all in first-seen order,
//!   so two `Metric`s with the same identity in one scope come back merged.

mod read;
mod write;

pub use read::from_batches;
pub use write::to_batch;
pub(crate) use write::{Builder, MetricInfo, NumberValue, PrometheusSeries};

use arrow::datatypes::{DataType, Field};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{ResourceMetrics, metric::Data};
use xxhash_rust::xxh3::Xxh3;

use crate::any_value::{any_value_to_string, attribute_map_type};
use crate::columns::*;
use crate::datatypes::{list_of, nullable_fields, timestamp};

/// `metric_type` of gauges.
pub const GAUGE: &str = "gauge";
/// `metric_type` of sums.
pub const SUM: &str = "sum";
/// `metric_type` of explicit-bucket histograms.
pub const HISTOGRAM: &str = "histogram";
/// `metric_type` of exponential histograms.
pub const EXPONENTIAL_HISTOGRAM: &str = "exponential_histogram";
/// `metric_type` of summaries.
pub const SUMMARY: &str = "summary";

/// Instrumentation scope name of points that arrived in Prometheus's own model (remote write,
/// scrapes, PromQL test loads): their metric and label names are Prometheus names already, so
/// readers take them verbatim instead of translating OTLP names.
pub const PROMETHEUS_SCOPE: &str = "strata.prometheus";

pub(crate) const EXEMPLAR_FIELDS: [&str; 6] = [
    TIME,
    VALUE_DOUBLE,
    VALUE_INT,
    SPAN_ID,
    TRACE_ID,
    FILTERED_ATTRIBUTES,
];
pub(crate) const QUANTILE_FIELDS: [&str; 2] = [QUANTILE, VALUE];

fn exemplar_type() -> DataType {
    DataType::Struct(nullable_fields(&[
        (TIME, timestamp()),
        (VALUE_DOUBLE, DataType::Float64),
        (VALUE_INT, DataType::Int64),
        (SPAN_ID, DataType::Utf8),
        (TRACE_ID, DataType::Utf8),
        (FILTERED_ATTRIBUTES, attribute_map_type()),
    ]))
}

fn quantile_type() -> DataType {
    DataType::Struct(nullable_fields(&[
        (QUANTILE, DataType::Float64),
        (VALUE, DataType::Float64),
    ]))
}

/// Fields of the `metrics` table, in order.
pub(crate) fn fields() -> Vec<Field> {
    let mut fields = vec![
        Field::new(METRIC_NAME, DataType::Utf8, false),
        Field::new(METRIC_DESCRIPTION, DataType::Utf8, false),
        Field::new(METRIC_UNIT, DataType::Utf8, false),
        Field::new(METRIC_TYPE, DataType::Utf8, false),
        Field::new(METRIC_METADATA, attribute_map_type(), false),
        Field::new(AGGREGATION_TEMPORALITY, DataType::Int32, true),
        Field::new(IS_MONOTONIC, DataType::Boolean, true),
        Field::new(SERIES_ID, DataType::UInt64, false),
        Field::new(START_TIME, timestamp(), false),
        Field::new(TIME, timestamp(), false),
        Field::new(ATTRIBUTES, attribute_map_type(), false),
        Field::new(FLAGS, DataType::UInt32, false),
        Field::new(VALUE_DOUBLE, DataType::Float64, true),
        Field::new(VALUE_INT, DataType::Int64, true),
        Field::new(EXEMPLARS, list_of(exemplar_type()), true),
        Field::new(COUNT, DataType::UInt64, true),
        Field::new(SUM, DataType::Float64, true),
        Field::new(MIN, DataType::Float64, true),
        Field::new(MAX, DataType::Float64, true),
        Field::new(BUCKET_COUNTS, list_of(DataType::UInt64), true),
        Field::new(EXPLICIT_BOUNDS, list_of(DataType::Float64), true),
        Field::new(SCALE, DataType::Int32, true),
        Field::new(ZERO_COUNT, DataType::UInt64, true),
        Field::new(ZERO_THRESHOLD, DataType::Float64, true),
        Field::new(POSITIVE_OFFSET, DataType::Int32, true),
        Field::new(POSITIVE_BUCKET_COUNTS, list_of(DataType::UInt64), true),
        Field::new(NEGATIVE_OFFSET, DataType::Int32, true),
        Field::new(NEGATIVE_BUCKET_COUNTS, list_of(DataType::UInt64), true),
        Field::new(QUANTILE_VALUES, list_of(quantile_type()), true),
    ];
    fields.extend(crate::resource::common_fields());
    fields
}

/// Number of data points (of every metric type) in the request.
pub fn row_count(resource_metrics: &[ResourceMetrics]) -> usize {
    resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .map(|m| match &m.data {
            Some(Data::Gauge(g)) => g.data_points.len(),
            Some(Data::Sum(s)) => s.data_points.len(),
            Some(Data::Histogram(h)) => h.data_points.len(),
            Some(Data::ExponentialHistogram(e)) => e.data_points.len(),
            Some(Data::Summary(s)) => s.data_points.len(),
            None => 0,
        })
        .sum()
}

/// The `series_id` of a data point: xxh3-64 over the metric name, the point's attributes as
/// (key, [`any_value_to_string`] value) pairs sorted by key then value, and the service name.
/// Each part is length-prefixed, so the hash is stable across processes and versions of this
/// crate (changing it would re-route series; treat it as a format).
pub fn series_id(metric_name: &str, attributes: &[KeyValue], service_name: Option<&str>) -> u64 {
    let mut pairs: Vec<(&str, String)> = attributes
        .iter()
        .map(|kv| {
            let value = kv
                .value
                .as_ref()
                .map(any_value_to_string)
                .unwrap_or_default();
            (kv.key.as_str(), value)
        })
        .collect();
    pairs.sort_unstable();
    series_id_of_sorted(
        metric_name,
        pairs.iter().map(|(k, v)| (*k, v.as_str())),
        service_name,
    )
}

/// [`series_id`] of attributes already rendered and sorted by key, then value.
pub(crate) fn series_id_of_sorted<'a>(
    metric_name: &str,
    pairs: impl ExactSizeIterator<Item = (&'a str, &'a str)>,
    service_name: Option<&str>,
) -> u64 {
    fn part(h: &mut Xxh3, bytes: &[u8]) {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    let mut h = Xxh3::new();
    part(&mut h, metric_name.as_bytes());
    h.update(&(pairs.len() as u64).to_le_bytes());
    for (key, value) in pairs {
        part(&mut h, key.as_bytes());
        part(&mut h, value.as_bytes());
    }
    match service_name {
        Some(s) => {
            h.update(&[1]);
            part(&mut h, s.as_bytes());
        }
        None => h.update(&[0]),
    }
    h.digest()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::any_value::string_kv;

    #[test]
    fn series_id_ignores_attribute_order_but_not_content() {
        let a = series_id(
            "m",
            &[string_kv("a", "1"), string_kv("b", "2")],
            Some("svc"),
        );
        assert_eq!(
            a,
            series_id(
                "m",
                &[string_kv("b", "2"), string_kv("a", "1")],
                Some("svc")
            )
        );
        assert_ne!(
            a,
            series_id(
                "m",
                &[string_kv("a", "1"), string_kv("b", "3")],
                Some("svc")
            )
        );
        assert_ne!(
            a,
            series_id(
                "m2",
                &[string_kv("a", "1"), string_kv("b", "2")],
                Some("svc")
            )
        );
        assert_ne!(
            a,
            series_id("m", &[string_kv("a", "1"), string_kv("b", "2")], None)
        );
        assert_ne!(
            a,
            series_id(
                "m",
                &[string_kv("a", "1"), string_kv("b", "2")],
                Some("other")
            )
        );
        assert_ne!(
            series_id("m", &[string_kv("ab", "")], None),
            series_id("m", &[string_kv("a", "b")], None)
        );
    }
}
