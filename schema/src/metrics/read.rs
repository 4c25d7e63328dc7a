//! `metrics` record batches -> OTLP metrics (regrouping rules in the parent module's docs).

use std::collections::HashMap;

use arrow::array::{
    Array, BooleanArray, Float64Array, Int64Array, ListArray, RecordBatch, StringArray,
    StructArray, TimestampNanosecondArray,
};
use arrow::datatypes::{Float64Type, Int32Type, UInt32Type, UInt64Type};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge, Histogram,
    HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary,
    SummaryDataPoint, exemplar, exponential_histogram_data_point::Buckets, metric::Data,
    number_data_point, summary_data_point::ValueAtQuantile,
};
use prost::Message;

use super::{EXPONENTIAL_HISTOGRAM, GAUGE, HISTOGRAM, SUM, SUMMARY};
use crate::any_value::AttributeMapReader;
use crate::columns::*;
use crate::error::{Error, Result};
use crate::read::{
    BatchColumns, downcast, hex_or_empty, list_range, opt, or_default, primitive_list,
    str_or_empty, struct_field,
};
use crate::resource::{CommonReader, Grouper, promoted_columns};
use crate::signal::Signal;

/// The metrics of one scope group, merged by identity.
#[derive(Default)]
struct ScopeMetricsAcc {
    metrics: Vec<Metric>,
    index: HashMap<Vec<u8>, usize>,
}

/// Convert `metrics` record batches back to OTLP (inverse of [`super::to_batch`], regrouped).
pub fn from_batches(batches: &[RecordBatch]) -> Result<Vec<ResourceMetrics>> {
    let schema = Signal::Metrics.schema();
    let mut derived: Vec<&str> = promoted_columns().collect();
    derived.push(SERIES_ID);
    let mut grouper: Grouper<ScopeMetricsAcc> = Grouper::new();
    for batch in batches {
        let cols = BatchColumns::load(batch, &schema, &derived)?;
        read_batch(&cols, &mut grouper)?;
    }
    Ok(grouper
        .finish()
        .into_iter()
        .map(|r| ResourceMetrics {
            resource: r.resource,
            schema_url: r.schema_url,
            scope_metrics: r
                .scopes
                .into_iter()
                .map(|s| ScopeMetrics {
                    scope: s.scope,
                    metrics: s.items.metrics,
                    schema_url: s.schema_url,
                })
                .collect(),
        })
        .collect())
}

/// A data point read from a row, before it is placed in its metric.
enum Point {
    Number(NumberDataPoint),
    Histogram(HistogramDataPoint),
    Exponential(ExponentialHistogramDataPoint),
    Summary(SummaryDataPoint),
}

fn push_point(data: &mut Data, point: Point) {
    match (data, point) {
        (Data::Gauge(g), Point::Number(p)) => g.data_points.push(p),
        (Data::Sum(s), Point::Number(p)) => s.data_points.push(p),
        (Data::Histogram(h), Point::Histogram(p)) => h.data_points.push(p),
        (Data::ExponentialHistogram(e), Point::Exponential(p)) => e.data_points.push(p),
        (Data::Summary(s), Point::Summary(p)) => s.data_points.push(p),
        // `empty_data` and the point are both chosen from the same `metric_type`.
        _ => {}
    }
}

fn read_batch(cols: &BatchColumns, grouper: &mut Grouper<ScopeMetricsAcc>) -> Result<()> {
    let common = CommonReader::new(cols)?;
    let rows = RowReader::new(cols)?;
    for row in 0..cols.num_rows() {
        let metric_type = str_or_empty(rows.metric_type, row);
        let temporality = or_default(rows.temporality, row);
        let (data, point) = match metric_type {
            GAUGE => (
                Data::Gauge(Gauge::default()),
                Point::Number(rows.number(row)?),
            ),
            SUM => (
                Data::Sum(Sum {
                    data_points: Vec::new(),
                    aggregation_temporality: temporality,
                    is_monotonic: rows.monotonic.is_valid(row) && rows.monotonic.value(row),
                }),
                Point::Number(rows.number(row)?),
            ),
            HISTOGRAM => (
                Data::Histogram(Histogram {
                    data_points: Vec::new(),
                    aggregation_temporality: temporality,
                }),
                Point::Histogram(rows.histogram(row)?),
            ),
            EXPONENTIAL_HISTOGRAM => (
                Data::ExponentialHistogram(ExponentialHistogram {
                    data_points: Vec::new(),
                    aggregation_temporality: temporality,
                }),
                Point::Exponential(rows.exponential(row)?),
            ),
            SUMMARY => (
                Data::Summary(Summary::default()),
                Point::Summary(rows.summary(row)?),
            ),
            other => {
                return Err(Error::InvalidValue {
                    column: METRIC_TYPE.to_owned(),
                    row,
                    value: other.to_owned(),
                });
            }
        };
        let metric = Metric {
            name: str_or_empty(rows.name, row).to_owned(),
            description: str_or_empty(rows.description, row).to_owned(),
            unit: str_or_empty(rows.unit, row).to_owned(),
            metadata: rows.metadata.get(row)?,
            // Identity = the metric with an empty data section of the right kind.
            data: Some(data),
        };
        let key = metric.encode_to_vec();
        let acc = grouper.slot(&common, row)?;
        let i = match acc.index.get(&key) {
            Some(&i) => i,
            None => {
                acc.metrics.push(metric);
                acc.index.insert(key, acc.metrics.len() - 1);
                acc.metrics.len() - 1
            }
        };
        if let Some(data) = acc.metrics[i].data.as_mut() {
            push_point(data, point);
        }
    }
    Ok(())
}

/// Typed views of one batch's columns.
struct RowReader<'a> {
    name: &'a StringArray,
    description: &'a StringArray,
    unit: &'a StringArray,
    metric_type: &'a StringArray,
    metadata: AttributeMapReader<'a>,
    temporality: &'a arrow::array::Int32Array,
    monotonic: &'a BooleanArray,
    start_time: &'a TimestampNanosecondArray,
    time: &'a TimestampNanosecondArray,
    attributes: AttributeMapReader<'a>,
    flags: &'a arrow::array::UInt32Array,
    value_double: &'a Float64Array,
    value_int: &'a Int64Array,
    exemplars_list: &'a ListArray,
    exemplars: ExemplarsReader<'a>,
    count: &'a arrow::array::UInt64Array,
    sum: &'a Float64Array,
    min: &'a Float64Array,
    max: &'a Float64Array,
    bucket_counts: &'a ListArray,
    explicit_bounds: &'a ListArray,
    scale: &'a arrow::array::Int32Array,
    zero_count: &'a arrow::array::UInt64Array,
    zero_threshold: &'a Float64Array,
    positive_offset: &'a arrow::array::Int32Array,
    positive_counts: &'a ListArray,
    negative_offset: &'a arrow::array::Int32Array,
    negative_counts: &'a ListArray,
    quantiles_list: &'a ListArray,
    quantile: &'a Float64Array,
    quantile_value: &'a Float64Array,
}

impl<'a> RowReader<'a> {
    fn new(cols: &'a BatchColumns) -> Result<Self> {
        let exemplars_list: &ListArray = cols.typed(EXEMPLARS)?;
        let quantiles_list: &ListArray = cols.typed(QUANTILE_VALUES)?;
        let quantiles: &StructArray = downcast(QUANTILE_VALUES, quantiles_list.values().as_ref())?;
        Ok(Self {
            name: cols.typed(METRIC_NAME)?,
            description: cols.typed(METRIC_DESCRIPTION)?,
            unit: cols.typed(METRIC_UNIT)?,
            metric_type: cols.typed(METRIC_TYPE)?,
            metadata: cols.map(METRIC_METADATA)?,
            temporality: cols.primitive::<Int32Type>(AGGREGATION_TEMPORALITY)?,
            monotonic: cols.typed(IS_MONOTONIC)?,
            start_time: cols.typed(START_TIME)?,
            time: cols.typed(TIME)?,
            attributes: cols.map(ATTRIBUTES)?,
            flags: cols.primitive::<UInt32Type>(FLAGS)?,
            value_double: cols.typed(VALUE_DOUBLE)?,
            value_int: cols.typed(VALUE_INT)?,
            exemplars_list,
            exemplars: ExemplarsReader::new(exemplars_list)?,
            count: cols.primitive::<UInt64Type>(COUNT)?,
            sum: cols.typed(SUM)?,
            min: cols.typed(MIN)?,
            max: cols.typed(MAX)?,
            bucket_counts: cols.typed(BUCKET_COUNTS)?,
            explicit_bounds: cols.typed(EXPLICIT_BOUNDS)?,
            scale: cols.typed(SCALE)?,
            zero_count: cols.typed(ZERO_COUNT)?,
            zero_threshold: cols.typed(ZERO_THRESHOLD)?,
            positive_offset: cols.typed(POSITIVE_OFFSET)?,
            positive_counts: cols.typed(POSITIVE_BUCKET_COUNTS)?,
            negative_offset: cols.typed(NEGATIVE_OFFSET)?,
            negative_counts: cols.typed(NEGATIVE_BUCKET_COUNTS)?,
            quantiles_list,
            quantile: downcast(
                QUANTILE_VALUES,
                struct_field(QUANTILE_VALUES, quantiles, QUANTILE)?,
            )?,
            quantile_value: downcast(
                QUANTILE_VALUES,
                struct_field(QUANTILE_VALUES, quantiles, VALUE)?,
            )?,
        })
    }

    fn exemplars(&self, row: usize) -> Result<Vec<Exemplar>> {
        list_range(self.exemplars_list, row)
            .map(|j| self.exemplars.get(j))
            .collect()
    }

    fn start(&self, row: usize) -> u64 {
        or_default(self.start_time, row) as u64
    }

    fn time(&self, row: usize) -> u64 {
        or_default(self.time, row) as u64
    }

    fn number(&self, row: usize) -> Result<NumberDataPoint> {
        let value = match (opt(self.value_double, row), opt(self.value_int, row)) {
            (Some(d), _) => Some(number_data_point::Value::AsDouble(d)),
            (None, Some(i)) => Some(number_data_point::Value::AsInt(i)),
            (None, None) => None,
        };
        Ok(NumberDataPoint {
            attributes: self.attributes.get(row)?,
            start_time_unix_nano: self.start(row),
            time_unix_nano: self.time(row),
            exemplars: self.exemplars(row)?,
            flags: or_default(self.flags, row),
            value,
        })
    }

    fn histogram(&self, row: usize) -> Result<HistogramDataPoint> {
        Ok(HistogramDataPoint {
            attributes: self.attributes.get(row)?,
            start_time_unix_nano: self.start(row),
            time_unix_nano: self.time(row),
            count: or_default(self.count, row),
            sum: opt(self.sum, row),
            bucket_counts: primitive_list::<UInt64Type>(BUCKET_COUNTS, self.bucket_counts, row)?,
            explicit_bounds: primitive_list::<Float64Type>(
                EXPLICIT_BOUNDS,
                self.explicit_bounds,
                row,
            )?,
            exemplars: self.exemplars(row)?,
            flags: or_default(self.flags, row),
            min: opt(self.min, row),
            max: opt(self.max, row),
        })
    }

    fn buckets(
        &self,
        column: &str,
        offset: &arrow::array::Int32Array,
        counts: &ListArray,
        row: usize,
    ) -> Result<Option<Buckets>> {
        let Some(offset) = opt(offset, row) else {
            return Ok(None);
        };
        Ok(Some(Buckets {
            offset,
            bucket_counts: primitive_list::<UInt64Type>(column, counts, row)?,
        }))
    }

    fn exponential(&self, row: usize) -> Result<ExponentialHistogramDataPoint> {
        Ok(ExponentialHistogramDataPoint {
            attributes: self.attributes.get(row)?,
            start_time_unix_nano: self.start(row),
            time_unix_nano: self.time(row),
            count: or_default(self.count, row),
            sum: opt(self.sum, row),
            scale: or_default(self.scale, row),
            zero_count: or_default(self.zero_count, row),
            positive: self.buckets(
                POSITIVE_BUCKET_COUNTS,
                self.positive_offset,
                self.positive_counts,
                row,
            )?,
            negative: self.buckets(
                NEGATIVE_BUCKET_COUNTS,
                self.negative_offset,
                self.negative_counts,
                row,
            )?,
            flags: or_default(self.flags, row),
            exemplars: self.exemplars(row)?,
            min: opt(self.min, row),
            max: opt(self.max, row),
            zero_threshold: or_default(self.zero_threshold, row),
        })
    }

    fn summary(&self, row: usize) -> Result<SummaryDataPoint> {
        Ok(SummaryDataPoint {
            attributes: self.attributes.get(row)?,
            start_time_unix_nano: self.start(row),
            time_unix_nano: self.time(row),
            count: or_default(self.count, row),
            sum: or_default(self.sum, row),
            quantile_values: list_range(self.quantiles_list, row)
                .map(|j| ValueAtQuantile {
                    quantile: or_default(self.quantile, j),
                    value: or_default(self.quantile_value, j),
                })
                .collect(),
            flags: or_default(self.flags, row),
        })
    }
}

struct ExemplarsReader<'a> {
    time: &'a TimestampNanosecondArray,
    value_double: &'a Float64Array,
    value_int: &'a Int64Array,
    span_id: &'a StringArray,
    trace_id: &'a StringArray,
    attributes: AttributeMapReader<'a>,
}

impl<'a> ExemplarsReader<'a> {
    fn new(list: &'a ListArray) -> Result<Self> {
        let values: &StructArray = downcast(EXEMPLARS, list.values().as_ref())?;
        let field = |name| struct_field(EXEMPLARS, values, name);
        Ok(Self {
            time: downcast(EXEMPLARS, field(TIME)?)?,
            value_double: downcast(EXEMPLARS, field(VALUE_DOUBLE)?)?,
            value_int: downcast(EXEMPLARS, field(VALUE_INT)?)?,
            span_id: downcast(EXEMPLARS, field(SPAN_ID)?)?,
            trace_id: downcast(EXEMPLARS, field(TRACE_ID)?)?,
            attributes: AttributeMapReader::new(EXEMPLARS, field(FILTERED_ATTRIBUTES)?)?,
        })
    }

    fn get(&self, j: usize) -> Result<Exemplar> {
        let value = match (opt(self.value_double, j), opt(self.value_int, j)) {
            (Some(d), _) => Some(exemplar::Value::AsDouble(d)),
            (None, Some(i)) => Some(exemplar::Value::AsInt(i)),
            (None, None) => None,
        };
        Ok(Exemplar {
            filtered_attributes: self.attributes.get(j)?,
            time_unix_nano: or_default(self.time, j) as u64,
            span_id: hex_or_empty(self.span_id, j)?,
            trace_id: hex_or_empty(self.trace_id, j)?,
            value,
        })
    }
}
