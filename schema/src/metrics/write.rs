//! OTLP metrics -> one `metrics` record batch (layout in the parent module's docs).

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder, ListBuilder, RecordBatch,
    StringBuilder, TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
};
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint, ResourceMetrics,
    SummaryDataPoint, exemplar, exponential_histogram_data_point::Buckets, metric::Data,
    number_data_point,
};

use super::{
    EXEMPLAR_FIELDS, EXPONENTIAL_HISTOGRAM, GAUGE, HISTOGRAM, QUANTILE_FIELDS, SUM, SUMMARY,
    row_count, series_id,
};
use crate::any_value::{AttributeMapBuilder, ValueRef};
use crate::columns::*;
use crate::datatypes::{ListOffsets, struct_array, timestamp_builder};
use crate::error::{Error, Result};
use crate::resource::{CommonBuilder, ResourceInfo};
use crate::signal::Signal;

/// One data point of any type.
#[derive(Clone, Copy)]
enum Point<'a> {
    Number(&'a NumberDataPoint),
    Histogram(&'a HistogramDataPoint),
    Exponential(&'a ExponentialHistogramDataPoint),
    Summary(&'a SummaryDataPoint),
}

impl Point<'_> {
    fn attributes(&self) -> &[KeyValue] {
        match self {
            Point::Number(p) => &p.attributes,
            Point::Histogram(p) => &p.attributes,
            Point::Exponential(p) => &p.attributes,
            Point::Summary(p) => &p.attributes,
        }
    }

    fn times_and_flags(&self) -> (u64, u64, u32) {
        match self {
            Point::Number(p) => (p.start_time_unix_nano, p.time_unix_nano, p.flags),
            Point::Histogram(p) => (p.start_time_unix_nano, p.time_unix_nano, p.flags),
            Point::Exponential(p) => (p.start_time_unix_nano, p.time_unix_nano, p.flags),
            Point::Summary(p) => (p.start_time_unix_nano, p.time_unix_nano, p.flags),
        }
    }

    fn exemplars(&self) -> Option<&[Exemplar]> {
        match self {
            Point::Number(p) => Some(&p.exemplars),
            Point::Histogram(p) => Some(&p.exemplars),
            Point::Exponential(p) => Some(&p.exemplars),
            Point::Summary(_) => None,
        }
    }
}

/// Metric-level values shared by the rows of one metric.
pub(crate) struct MetricInfo<'a> {
    pub(crate) name: &'a str,
    pub(crate) description: &'a str,
    pub(crate) unit: &'a str,
    pub(crate) metadata: &'a [KeyValue],
    pub(crate) metric_type: &'static str,
    pub(crate) temporality: Option<i32>,
    pub(crate) monotonic: Option<bool>,
}

/// What the rows of one series in Prometheus's model share: no resource but `resource`'s
/// (empty), `scope`, start time and flags 0, and `labels` (other than `__name__`) as string
/// attributes in their order.
pub(crate) struct PrometheusSeries<'a> {
    pub(crate) info: MetricInfo<'a>,
    pub(crate) series_id: u64,
    pub(crate) labels: &'a [(&'a str, &'a str)],
    pub(crate) resource: &'a ResourceInfo<'a>,
    pub(crate) scope: &'a InstrumentationScope,
}

/// The value of a number point.
#[derive(Clone, Copy)]
pub(crate) enum NumberValue {
    Unset,
    Double(f64),
    Int(i64),
}

impl NumberValue {
    fn of(value: Option<number_data_point::Value>) -> Self {
        match value {
            Some(number_data_point::Value::AsDouble(d)) => NumberValue::Double(d),
            Some(number_data_point::Value::AsInt(i)) => NumberValue::Int(i),
            None => NumberValue::Unset,
        }
    }
}

struct ExemplarsBuilder {
    offsets: ListOffsets,
    time: TimestampNanosecondBuilder,
    value_double: Float64Builder,
    value_int: Int64Builder,
    span_id: StringBuilder,
    trace_id: StringBuilder,
    attributes: AttributeMapBuilder,
    len: usize,
}

struct QuantilesBuilder {
    offsets: ListOffsets,
    quantile: Float64Builder,
    value: Float64Builder,
    len: usize,
}

/// Appends data points as rows of the `metrics` table.
pub(crate) struct Builder {
    name: StringBuilder,
    description: StringBuilder,
    unit: StringBuilder,
    metric_type: StringBuilder,
    metadata: AttributeMapBuilder,
    temporality: Int32Builder,
    monotonic: BooleanBuilder,
    series_id: UInt64Builder,
    start_time: TimestampNanosecondBuilder,
    time: TimestampNanosecondBuilder,
    attributes: AttributeMapBuilder,
    flags: UInt32Builder,
    value_double: Float64Builder,
    value_int: Int64Builder,
    exemplars: ExemplarsBuilder,
    count: UInt64Builder,
    sum: Float64Builder,
    min: Float64Builder,
    max: Float64Builder,
    bucket_counts: ListBuilder<UInt64Builder>,
    explicit_bounds: ListBuilder<Float64Builder>,
    scale: Int32Builder,
    zero_count: UInt64Builder,
    zero_threshold: Float64Builder,
    positive_offset: Int32Builder,
    positive_counts: ListBuilder<UInt64Builder>,
    negative_offset: Int32Builder,
    negative_counts: ListBuilder<UInt64Builder>,
    quantiles: QuantilesBuilder,
    common: CommonBuilder,
}

fn hex_or_null(bytes: &[u8]) -> Option<String> {
    (!bytes.is_empty()).then(|| crate::hex_id::encode(bytes))
}

fn append_buckets(
    offset: &mut Int32Builder,
    counts: &mut ListBuilder<UInt64Builder>,
    b: Option<&Buckets>,
) {
    match b {
        Some(b) => {
            offset.append_value(b.offset);
            counts.values().append_slice(&b.bucket_counts);
            counts.append(true);
        }
        None => {
            offset.append_null();
            counts.append(false);
        }
    }
}

impl Builder {
    pub(crate) fn new(rows: usize) -> Self {
        Self {
            name: StringBuilder::new(),
            description: StringBuilder::new(),
            unit: StringBuilder::new(),
            metric_type: StringBuilder::new(),
            metadata: AttributeMapBuilder::new(METRIC_METADATA),
            temporality: Int32Builder::with_capacity(rows),
            monotonic: BooleanBuilder::with_capacity(rows),
            series_id: UInt64Builder::with_capacity(rows),
            start_time: timestamp_builder(),
            time: timestamp_builder(),
            attributes: AttributeMapBuilder::new(ATTRIBUTES),
            flags: UInt32Builder::with_capacity(rows),
            value_double: Float64Builder::with_capacity(rows),
            value_int: Int64Builder::with_capacity(rows),
            exemplars: ExemplarsBuilder {
                offsets: ListOffsets::new(EXEMPLARS),
                time: timestamp_builder(),
                value_double: Float64Builder::new(),
                value_int: Int64Builder::new(),
                span_id: StringBuilder::new(),
                trace_id: StringBuilder::new(),
                attributes: AttributeMapBuilder::new(EXEMPLARS),
                len: 0,
            },
            count: UInt64Builder::with_capacity(rows),
            sum: Float64Builder::with_capacity(rows),
            min: Float64Builder::with_capacity(rows),
            max: Float64Builder::with_capacity(rows),
            bucket_counts: ListBuilder::new(UInt64Builder::new()),
            explicit_bounds: ListBuilder::new(Float64Builder::new()),
            scale: Int32Builder::with_capacity(rows),
            zero_count: UInt64Builder::with_capacity(rows),
            zero_threshold: Float64Builder::with_capacity(rows),
            positive_offset: Int32Builder::with_capacity(rows),
            positive_counts: ListBuilder::new(UInt64Builder::new()),
            negative_offset: Int32Builder::with_capacity(rows),
            negative_counts: ListBuilder::new(UInt64Builder::new()),
            quantiles: QuantilesBuilder {
                offsets: ListOffsets::new(QUANTILE_VALUES),
                quantile: Float64Builder::new(),
                value: Float64Builder::new(),
                len: 0,
            },
            common: CommonBuilder::new(),
        }
    }

    fn append(
        &mut self,
        info: &MetricInfo<'_>,
        point: Point<'_>,
        resource: &ResourceInfo<'_>,
        scope: Option<&InstrumentationScope>,
        scope_schema_url: &str,
    ) -> Result<()> {
        let (start, time, flags) = point.times_and_flags();
        let id = series_id(info.name, point.attributes(), resource.service_name());
        self.append_metric(info, id, start, time)?;
        self.attributes.append(point.attributes())?;
        self.flags.append_value(flags);
        self.append_exemplars(point.exemplars())?;
        if let Point::Number(p) = point {
            self.append_number_value(NumberValue::of(p.value))?;
            return self.common.append(resource, scope, scope_schema_url);
        }
        self.value_double.append_null();
        self.value_int.append_null();

        let (count, sum, min, max) = match point {
            Point::Number(_) => (None, None, None, None),
            Point::Histogram(p) => (Some(p.count), p.sum, p.min, p.max),
            Point::Exponential(p) => (Some(p.count), p.sum, p.min, p.max),
            Point::Summary(p) => (Some(p.count), Some(p.sum), None, None),
        };
        self.count.append_option(count);
        self.sum.append_option(sum);
        self.min.append_option(min);
        self.max.append_option(max);

        if let Point::Histogram(p) = point {
            self.bucket_counts.values().append_slice(&p.bucket_counts);
            self.bucket_counts.append(true);
            self.explicit_bounds
                .values()
                .append_slice(&p.explicit_bounds);
            self.explicit_bounds.append(true);
        } else {
            self.bucket_counts.append(false);
            self.explicit_bounds.append(false);
        }

        if let Point::Exponential(p) = point {
            self.scale.append_value(p.scale);
            self.zero_count.append_value(p.zero_count);
            self.zero_threshold.append_value(p.zero_threshold);
            append_buckets(
                &mut self.positive_offset,
                &mut self.positive_counts,
                p.positive.as_ref(),
            );
            append_buckets(
                &mut self.negative_offset,
                &mut self.negative_counts,
                p.negative.as_ref(),
            );
        } else {
            self.append_no_exponential();
        }

        if let Point::Summary(p) = point {
            for q in &p.quantile_values {
                self.quantiles.quantile.append_value(q.quantile);
                self.quantiles.value.append_value(q.value);
            }
            self.quantiles.len += p.quantile_values.len();
            self.quantiles.offsets.push(self.quantiles.len)?;
        } else {
            self.quantiles.offsets.push_null()?;
        }

        self.common.append(resource, scope, scope_schema_url)
    }

    /// One row of a number point of `series`, at `time` (nanoseconds).
    pub(crate) fn append_prometheus_point(
        &mut self,
        series: &PrometheusSeries<'_>,
        time: u64,
        value: NumberValue,
        exemplars: &[Exemplar],
    ) -> Result<()> {
        self.append_metric(&series.info, series.series_id, 0, time)?;
        for (key, value) in series.labels {
            self.attributes.append_entry(key, &ValueRef::Str(value));
        }
        self.attributes.close_row()?;
        self.flags.append_value(0);
        self.append_exemplars(Some(exemplars))?;
        self.append_number_value(value)?;
        self.common.append(series.resource, Some(series.scope), "")
    }

    /// The metric's columns, the series id and the point's times.
    fn append_metric(
        &mut self,
        info: &MetricInfo<'_>,
        series_id: u64,
        start: u64,
        time: u64,
    ) -> Result<()> {
        self.name.append_value(info.name);
        self.description.append_value(info.description);
        self.unit.append_value(info.unit);
        self.metric_type.append_value(info.metric_type);
        self.metadata.append(info.metadata)?;
        self.temporality.append_option(info.temporality);
        self.monotonic.append_option(info.monotonic);
        self.series_id.append_value(series_id);
        self.start_time.append_value(start as i64);
        self.time.append_value(time as i64);
        Ok(())
    }

    /// A number point's value and the nulls of every other point type's columns.
    fn append_number_value(&mut self, value: NumberValue) -> Result<()> {
        let (double, int) = match value {
            NumberValue::Unset => (None, None),
            NumberValue::Double(d) => (Some(d), None),
            NumberValue::Int(i) => (None, Some(i)),
        };
        self.value_double.append_option(double);
        self.value_int.append_option(int);
        self.count.append_null();
        self.sum.append_null();
        self.min.append_null();
        self.max.append_null();
        self.bucket_counts.append(false);
        self.explicit_bounds.append(false);
        self.append_no_exponential();
        self.quantiles.offsets.push_null()
    }

    fn append_no_exponential(&mut self) {
        self.scale.append_null();
        self.zero_count.append_null();
        self.zero_threshold.append_null();
        append_buckets(&mut self.positive_offset, &mut self.positive_counts, None);
        append_buckets(&mut self.negative_offset, &mut self.negative_counts, None);
    }

    fn append_exemplars(&mut self, exemplars: Option<&[Exemplar]>) -> Result<()> {
        let b = &mut self.exemplars;
        let Some(exemplars) = exemplars else {
            return b.offsets.push_null();
        };
        for e in exemplars {
            b.time.append_value(e.time_unix_nano as i64);
            b.value_double.append_option(match e.value {
                Some(exemplar::Value::AsDouble(d)) => Some(d),
                _ => None,
            });
            b.value_int.append_option(match e.value {
                Some(exemplar::Value::AsInt(i)) => Some(i),
                _ => None,
            });
            b.span_id.append_option(hex_or_null(&e.span_id));
            b.trace_id.append_option(hex_or_null(&e.trace_id));
            b.attributes.append(&e.filtered_attributes)?;
        }
        b.len += exemplars.len();
        b.offsets.push(b.len)
    }

    pub(crate) fn finish(mut self) -> Result<RecordBatch> {
        let e = &mut self.exemplars;
        let exemplar_values = struct_array(
            EXEMPLARS,
            &EXEMPLAR_FIELDS,
            vec![
                Arc::new(e.time.finish()),
                Arc::new(e.value_double.finish()),
                Arc::new(e.value_int.finish()),
                Arc::new(e.span_id.finish()),
                Arc::new(e.trace_id.finish()),
                Arc::new(
                    std::mem::replace(&mut e.attributes, AttributeMapBuilder::new(EXEMPLARS))
                        .finish()?,
                ),
            ],
        )?;
        let q = &mut self.quantiles;
        let quantile_values = struct_array(
            QUANTILE_VALUES,
            &QUANTILE_FIELDS,
            vec![Arc::new(q.quantile.finish()), Arc::new(q.value.finish())],
        )?;
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.name.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(self.metric_type.finish()),
            Arc::new(self.metadata.finish()?),
            Arc::new(self.temporality.finish()),
            Arc::new(self.monotonic.finish()),
            Arc::new(self.series_id.finish()),
            Arc::new(self.start_time.finish()),
            Arc::new(self.time.finish()),
            Arc::new(self.attributes.finish()?),
            Arc::new(self.flags.finish()),
            Arc::new(self.value_double.finish()),
            Arc::new(self.value_int.finish()),
            Arc::new(self.exemplars.offsets.finish(Arc::new(exemplar_values))?),
            Arc::new(self.count.finish()),
            Arc::new(self.sum.finish()),
            Arc::new(self.min.finish()),
            Arc::new(self.max.finish()),
            Arc::new(self.bucket_counts.finish()),
            Arc::new(self.explicit_bounds.finish()),
            Arc::new(self.scale.finish()),
            Arc::new(self.zero_count.finish()),
            Arc::new(self.zero_threshold.finish()),
            Arc::new(self.positive_offset.finish()),
            Arc::new(self.positive_counts.finish()),
            Arc::new(self.negative_offset.finish()),
            Arc::new(self.negative_counts.finish()),
            Arc::new(self.quantiles.offsets.finish(Arc::new(quantile_values))?),
        ];
        columns.extend(self.common.finish()?);
        RecordBatch::try_new(Signal::Metrics.schema(), columns).map_err(|source| Error::Arrow {
            column: Signal::Metrics.table_name().to_owned(),
            source,
        })
    }
}

/// Convert OTLP metrics into one `metrics` record batch (schema [`Signal::Metrics`]`.schema()`),
/// one row per data point.
pub fn to_batch(resource_metrics: &[ResourceMetrics]) -> Result<RecordBatch> {
    let mut builder = Builder::new(row_count(resource_metrics));
    for rm in resource_metrics {
        let resource = ResourceInfo::new(rm.resource.as_ref(), &rm.schema_url);
        for sm in &rm.scope_metrics {
            let scope = sm.scope.as_ref();
            for metric in &sm.metrics {
                let info = |metric_type, temporality, monotonic| MetricInfo {
                    name: &metric.name,
                    description: &metric.description,
                    unit: &metric.unit,
                    metadata: &metric.metadata,
                    metric_type,
                    temporality,
                    monotonic,
                };
                let mut emit = |info: &MetricInfo<'_>, point| {
                    builder.append(info, point, &resource, scope, &sm.schema_url)
                };
                match &metric.data {
                    Some(Data::Gauge(g)) => {
                        let info = info(GAUGE, None, None);
                        for p in &g.data_points {
                            emit(&info, Point::Number(p))?;
                        }
                    }
                    Some(Data::Sum(s)) => {
                        let info = info(SUM, Some(s.aggregation_temporality), Some(s.is_monotonic));
                        for p in &s.data_points {
                            emit(&info, Point::Number(p))?;
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        let info = info(HISTOGRAM, Some(h.aggregation_temporality), None);
                        for p in &h.data_points {
                            emit(&info, Point::Histogram(p))?;
                        }
                    }
                    Some(Data::ExponentialHistogram(e)) => {
                        let info =
                            info(EXPONENTIAL_HISTOGRAM, Some(e.aggregation_temporality), None);
                        for p in &e.data_points {
                            emit(&info, Point::Exponential(p))?;
                        }
                    }
                    Some(Data::Summary(s)) => {
                        let info = info(SUMMARY, None, None);
                        for p in &s.data_points {
                            emit(&info, Point::Summary(p))?;
                        }
                    }
                    None => {}
                }
            }
        }
    }
    builder.finish()
}
