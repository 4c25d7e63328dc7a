//! Stored `metrics` rows -> PromQL series, one record batch at a time.
//!
//! Gauge and sum rows (one sample each, almost every row) are read straight from their Arrow
//! columns. A row's series is identified by a hash of every column its Prometheus labels come
//! from (metric name, type, unit, monotonicity, scope, resource and point attributes) paired
//! with the stored `series_id`, an independent hash of the name and point attributes; the
//! labels are worked out once per identity, from its first row, by the same translation the
//! rest of the engine uses ([`for_each_sample`]), for all identities new in a batch at once. Histogram and summary rows, which expand
//! into several series each, go through the general OTLP path ([`Gather::add_rows`]), from a
//! scan of their own that reads every column.
//!
//! Invariants:
//! - The result is what translating every row and grouping by labels would give: identities
//!   that translate to the same labels share one series, samples outside `[min_ms, max_ms]`
//!   or not matching the selector are dropped.
//! - At most `limit` samples are kept; one more is an `Execution` error, raised while reading
//!   so memory stays bounded by the limit rather than by the scan.
//! - Within a series, samples are sorted by time and a repeated timestamp keeps the last row
//!   read.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, BooleanArray, RecordBatch, TimestampNanosecondArray, UInt32Array,
    new_null_array,
};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Field, Schema};
use arrow::datatypes::{Float64Type, Int64Type, UInt32Type, UInt64Type};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use promql_parser::parser::VectorSelector;
use strata_schema::Signal;
use strata_schema::columns::{
    ATTRIBUTES, FLAGS, IS_MONOTONIC, METRIC_NAME, METRIC_TYPE, METRIC_UNIT, RESOURCE_ATTRIBUTES,
    SCOPE_NAME, SERIES_ID, TIME, VALUE_DOUBLE, VALUE_INT,
};
use strata_schema::metrics::{GAUGE, HISTOGRAM, SUM, SUMMARY, from_batches};

use super::naming::{flagged, for_each_sample, time_ms};
use super::select::{matches, name_ok};
use super::value::{Labels, RawSeries};
use crate::error::QueryError;

/// Columns the number path reads: a scan of gauge and sum rows needs no others. The first
/// [`IDENTITY_COLUMNS`] decide a row's labels and are hashed together into its identity.
pub const NUMBER_COLUMNS: [&str; 12] = [
    METRIC_NAME,
    METRIC_TYPE,
    METRIC_UNIT,
    IS_MONOTONIC,
    SCOPE_NAME,
    RESOURCE_ATTRIBUTES,
    ATTRIBUTES,
    SERIES_ID,
    TIME,
    FLAGS,
    VALUE_DOUBLE,
    VALUE_INT,
];

/// How many of [`NUMBER_COLUMNS`], from the first, make a row's identity.
const IDENTITY_COLUMNS: usize = 7;

/// Accumulates the series of one selector from the batches of its scan.
pub struct Gather<'a> {
    vs: &'a VectorSelector,
    min_ms: i64,
    max_ms: i64,
    limit: usize,
    /// (identity hash, series_id) -> the series slot, or `None` when the selector rejects it.
    identities: HashMap<(u64, u64), Option<usize>, RandomState>,
    slots: HashMap<Labels, usize>,
    series: Vec<(Labels, Vec<i64>, Vec<f64>)>,
    /// Per slot, whether any sample fell in range (what the labels-only mode keeps).
    seen: Vec<bool>,
    samples: usize,
    keep_samples: bool,
    hash_state: RandomState,
}

impl<'a> Gather<'a> {
    pub fn new(vs: &'a VectorSelector, min_ms: i64, max_ms: i64, limit: usize) -> Self {
        Self {
            vs,
            min_ms,
            max_ms,
            limit,
            identities: HashMap::default(),
            slots: HashMap::new(),
            series: Vec::new(),
            seen: Vec::new(),
            samples: 0,
            keep_samples: true,
            hash_state: RandomState::default(),
        }
    }

    /// A gather that keeps only which series have samples in range, for the series and
    /// label APIs: memory grows with series, not samples, and there is no sample limit.
    pub fn labels_only(vs: &'a VectorSelector, min_ms: i64, max_ms: i64) -> Self {
        Self {
            keep_samples: false,
            ..Self::new(vs, min_ms, max_ms, usize::MAX)
        }
    }

    fn slot(&mut self, labels: Labels) -> usize {
        if let Some(&i) = self.slots.get(&labels) {
            return i;
        }
        let i = self.series.len();
        self.slots.insert(labels.clone(), i);
        self.series.push((labels, Vec::new(), Vec::new()));
        self.seen.push(false);
        i
    }

    fn push(&mut self, slot: usize, t: i64, v: f64) -> Result<(), QueryError> {
        if t < self.min_ms || t > self.max_ms {
            return Ok(());
        }
        self.seen[slot] = true;
        if !self.keep_samples {
            return Ok(());
        }
        self.samples += 1;
        if self.samples > self.limit {
            return Err(QueryError::Execution(format!(
                "query processing would load too many samples into memory (more than the {} left under the query's sample limit)",
                self.limit
            )));
        }
        let (_, times, values) = &mut self.series[slot];
        times.push(t);
        values.push(v);
        Ok(())
    }

    /// The selector's labels for the series of each of `rows` (one-sample rows of `batch`),
    /// `None` where the selector does not match. All rows are translated in one OTLP
    /// conversion; to find which sample came from which row, each row's time is replaced by
    /// its position (time does not bear on labels).
    fn labels_of(
        &self,
        batch: &RecordBatch,
        rows: Vec<u32>,
    ) -> Result<Vec<Option<Labels>>, QueryError> {
        let internal = |e: arrow::error::ArrowError| QueryError::Internal(e.to_string());
        let n = rows.len();
        let picked = take_record_batch(batch, &UInt32Array::from(rows)).map_err(internal)?;
        let time_index = picked.schema().index_of(TIME).map_err(internal)?;
        let tz = match picked.column(time_index).data_type() {
            DataType::Timestamp(_, tz) => tz.clone(),
            _ => None,
        };
        let positions =
            TimestampNanosecondArray::from_iter_values((0..n as i64).map(|i| i * 1_000_000))
                .with_timezone_opt(tz);
        let mut columns = picked.columns().to_vec();
        columns[time_index] = Arc::new(positions);
        let picked = RecordBatch::try_new(picked.schema(), columns).map_err(internal)?;
        let resources = from_batches(&[whole_rows(&picked)?])
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let mut found = vec![None; n];
        for_each_sample(
            &resources,
            &|name| name_ok(self.vs, name),
            &mut |labels, position, _| {
                if let Some(slot) = usize::try_from(position)
                    .ok()
                    .and_then(|p| found.get_mut(p))
                    && slot.is_none()
                    && matches(self.vs, &labels)
                {
                    *slot = Some(labels);
                }
            },
        );
        Ok(found)
    }

    /// Reads the gauge and sum rows of a batch (which needs only [`NUMBER_COLUMNS`]) and
    /// returns how many histogram and summary rows it left for [`Gather::add_rows`].
    pub fn add_numbers(&mut self, batch: &RecordBatch) -> Result<usize, QueryError> {
        let number_rows = number_rows(batch).ok_or_else(|| {
            QueryError::Internal(format!(
                "metrics batch: {METRIC_TYPE} is not a string column"
            ))
        })?;
        let others = other_rows(batch);
        if number_rows.true_count() == 0 {
            return Ok(others);
        }
        let internal = |what: &str| QueryError::Internal(format!("metrics batch: {what}"));
        let identity: Vec<&Arc<dyn Array>> = NUMBER_COLUMNS[..IDENTITY_COLUMNS]
            .iter()
            .map(|c| batch.column_by_name(c).ok_or_else(|| internal(c)))
            .collect::<Result<_, _>>()?;
        let mut hashes = vec![0u64; batch.num_rows()];
        create_hashes(identity, &self.hash_state, &mut hashes)?;
        let column = |name: &str| batch.column_by_name(name).ok_or_else(|| internal(name));
        let series_ids = column(SERIES_ID)?
            .as_primitive_opt::<UInt64Type>()
            .ok_or_else(|| internal(SERIES_ID))?;
        let times = column(TIME)?
            .as_any()
            .downcast_ref::<TimestampNanosecondArray>()
            .ok_or_else(|| internal(TIME))?;
        let flags = column(FLAGS)?
            .as_primitive_opt::<UInt32Type>()
            .ok_or_else(|| internal(FLAGS))?;
        let doubles = column(VALUE_DOUBLE)?
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| internal(VALUE_DOUBLE))?;
        let ints = column(VALUE_INT)?
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| internal(VALUE_INT))?;
        // A point without a value (one that only holds exemplars) is no sample; it is
        // skipped before its labels are worked out, as the OTLP path skips it.
        let value = |row: usize| {
            if doubles.is_valid(row) {
                Some(doubles.value(row))
            } else if ints.is_valid(row) {
                Some(ints.value(row) as f64)
            } else {
                None
            }
        };
        let samples: Vec<(usize, f64)> = (0..batch.num_rows())
            .filter(|&r| number_rows.value(r))
            .filter_map(|r| value(r).map(|v| (r, v)))
            .collect();
        // Identities new in this batch get their labels in one go.
        let mut new: HashMap<(u64, u64), usize, RandomState> = HashMap::default();
        let mut new_rows = Vec::new();
        for &(row, _) in &samples {
            let key = (hashes[row], series_ids.value(row));
            if !self.identities.contains_key(&key) && !new.contains_key(&key) {
                new.insert(key, new_rows.len());
                new_rows.push(row as u32);
            }
        }
        if !new_rows.is_empty() {
            let labels = self.labels_of(batch, new_rows)?;
            for (key, i) in new {
                let slot = labels[i].clone().map(|l| self.slot(l));
                self.identities.insert(key, slot);
            }
        }
        for (row, v) in samples {
            let key = (hashes[row], series_ids.value(row));
            let Some(Some(slot)) = self.identities.get(&key).copied() else {
                continue;
            };
            let t = time_ms(times.value(row) as u64);
            self.push(slot, t, flagged(flags.value(row), v))?;
        }
        Ok(others)
    }

    /// Reads rows of any type through OTLP; the batch has every `metrics` column.
    pub fn add_rows(&mut self, batch: &RecordBatch) -> Result<(), QueryError> {
        let resources = from_batches(std::slice::from_ref(batch))
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let mut samples = Vec::new();
        for_each_sample(
            &resources,
            &|name| name_ok(self.vs, name),
            &mut |labels, t, v| {
                if t >= self.min_ms && t <= self.max_ms && matches(self.vs, &labels) {
                    samples.push((labels, t, v));
                }
            },
        );
        for (labels, t, v) in samples {
            let slot = self.slot(labels);
            self.push(slot, t, v)?;
        }
        Ok(())
    }

    /// The series found, sorted by labels, each sorted by time without repeated timestamps.
    pub fn finish(self) -> Vec<RawSeries> {
        let mut out: Vec<RawSeries> = self
            .series
            .into_iter()
            .filter(|(_, times, _)| !times.is_empty())
            .map(|(labels, times, values)| {
                let (times, values) = sorted_by_time(times, values);
                RawSeries {
                    labels: Arc::new(labels),
                    times,
                    values,
                }
            })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }

    /// The label sets of the series with samples in range.
    pub fn labels(self) -> impl Iterator<Item = Labels> {
        self.series
            .into_iter()
            .zip(self.seen)
            .filter(|(_, seen)| *seen)
            .map(|((labels, _, _), _)| labels)
    }
}

/// Rows of a projected scan with every `metrics` column they lack as null: the OTLP reader
/// wants them all, and none of them bears on labels.
fn whole_rows(row: &RecordBatch) -> Result<RecordBatch, QueryError> {
    let schema = Signal::Metrics.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = match row.column_by_name(field.name()) {
            Some(c) => c.clone(),
            None => new_null_array(field.data_type(), row.num_rows()),
        };
        fields.push(Field::new(field.name(), column.data_type().clone(), true));
        columns.push(column);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| QueryError::Internal(e.to_string()))
}

/// Per row, whether its metric type is one `wanted`; `None` when the batch has no string type
/// column (Parquet strings are read as views; plain strings are accepted too).
fn type_mask(batch: &RecordBatch, wanted: fn(&str) -> bool) -> Option<BooleanArray> {
    let column = batch.column_by_name(METRIC_TYPE)?;
    let test = |t: Option<&str>| Some(t.is_some_and(wanted));
    if let Some(types) = column.as_string_view_opt() {
        return Some(types.iter().map(test).collect());
    }
    Some(column.as_string_opt::<i32>()?.iter().map(test).collect())
}

/// Which rows hold one number sample (gauges and sums).
fn number_rows(batch: &RecordBatch) -> Option<BooleanArray> {
    type_mask(batch, |t| matches!(t, GAUGE | SUM))
}

/// How many rows are histograms or summaries, which [`Gather::add_rows`] reads
/// (exponential histograms are not read by PromQL at all).
fn other_rows(batch: &RecordBatch) -> usize {
    type_mask(batch, |t| matches!(t, HISTOGRAM | SUMMARY)).map_or(0, |m| m.true_count())
}

fn sorted_by_time(times: Vec<i64>, values: Vec<f64>) -> (Vec<i64>, Vec<f64>) {
    if times.is_sorted_by(|a, b| a < b) {
        return (times, values);
    }
    let mut points: Vec<(i64, f64)> = times.into_iter().zip(values).collect();
    // Stable, so of samples with one timestamp the last read wins after the dedup below.
    points.sort_by_key(|p| p.0);
    let mut times = Vec::with_capacity(points.len());
    let mut values: Vec<f64> = Vec::with_capacity(points.len());
    for (t, v) in points {
        if times.last() == Some(&t)
            && let Some(last) = values.last_mut()
        {
            *last = v;
        } else {
            times.push(t);
            values.push(v);
        }
    }
    (times, values)
}

#[cfg(test)]
mod tests {
    use arrow::array::{ArrayRef, StringViewArray};
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::metrics::v1::{
        Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
        ScopeMetrics, Sum, metric::Data, number_data_point,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use promql_parser::parser::Expr;
    use strata_schema::any_value::string_kv;
    use strata_schema::metrics::to_batch;

    use super::*;

    fn point(t_s: u64, v: Option<f64>, attrs: &[KeyValue]) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attrs.to_vec(),
            time_unix_nano: t_s * 1_000_000_000,
            value: v.map(number_data_point::Value::AsDouble),
            ..Default::default()
        }
    }

    /// Two instances of one service (same `series_id`, different resources), a counter and a
    /// gauge of the same name's family, a histogram and a value-less point.
    fn resource(instance: &str, base: f64) -> ResourceMetrics {
        let attrs = [string_kv("method", "get")];
        ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    string_kv("service.name", "api"),
                    string_kv("service.instance.id", instance),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    Metric {
                        name: "http.requests".into(),
                        data: Some(Data::Sum(Sum {
                            data_points: vec![
                                point(10, Some(base), &attrs),
                                point(20, None, &attrs),
                                point(30, Some(base + 1.0), &attrs),
                            ],
                            aggregation_temporality: 2,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "http.requests".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![point(10, Some(base * 2.0), &attrs)],
                        })),
                        ..Default::default()
                    },
                    Metric {
                        name: "latency".into(),
                        data: Some(Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                time_unix_nano: 10_000_000_000,
                                count: 3,
                                sum: Some(1.5),
                                bucket_counts: vec![1, 2],
                                explicit_bounds: vec![0.5],
                                ..Default::default()
                            }],
                            aggregation_temporality: 2,
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn selector(q: &str) -> VectorSelector {
        match crate::promql::parse(q).unwrap() {
            Expr::VectorSelector(vs) => vs,
            other => panic!("not a selector: {other}"),
        }
    }

    fn as_views(batch: &RecordBatch) -> RecordBatch {
        let columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .map(|c| match c.as_string_opt::<i32>() {
                Some(s) => Arc::new(StringViewArray::from_iter(s.iter())) as ArrayRef,
                None => c.clone(),
            })
            .collect();
        let fields: Vec<_> = batch
            .schema()
            .fields()
            .iter()
            .zip(&columns)
            .map(|(f, c)| f.as_ref().clone().with_data_type(c.data_type().clone()))
            .collect();
        RecordBatch::try_new(Arc::new(arrow::datatypes::Schema::new(fields)), columns).unwrap()
    }

    fn render(series: &[RawSeries]) -> Vec<String> {
        series
            .iter()
            .map(|s| format!("{:?} {:?} {:?}", s.labels, s.times, s.values))
            .collect()
    }

    #[test]
    fn columns_give_what_the_otlp_path_gives() {
        let batch = to_batch(&[resource("a", 1.0), resource("b", 5.0)]).unwrap();
        for q in [
            "{__name__=~\".+\"}",
            "http_requests_total",
            "http_requests{instance=\"b\"}",
            "latency_bucket",
        ] {
            let vs = selector(q);
            let mut general = Gather::new(&vs, 0, i64::MAX, usize::MAX);
            general.add_rows(&batch).unwrap();
            let expected = render(&general.finish());
            assert!(!expected.is_empty(), "{q} found nothing");
            let others = arrow::compute::filter_record_batch(
                &batch,
                &arrow::compute::not(&number_rows(&batch).unwrap()).unwrap(),
            )
            .unwrap();
            let projected = batch
                .project(&NUMBER_COLUMNS.map(|c| batch.schema().index_of(c).unwrap()))
                .unwrap();
            for b in [projected.clone(), as_views(&projected)] {
                let mut fast = Gather::new(&vs, 0, i64::MAX, usize::MAX);
                assert_eq!(fast.add_numbers(&b).unwrap(), others.num_rows());
                fast.add_rows(&others).unwrap();
                assert_eq!(render(&fast.finish()), expected, "{q}");
            }
        }
        // Two instances of the counter, each with its two samples (the value-less point is none).
        let vs = selector("http_requests_total");
        let mut g = Gather::new(&vs, 0, i64::MAX, usize::MAX);
        g.add_numbers(&batch).unwrap();
        let found = g.finish();
        assert_eq!(found.len(), 2);
        assert!(found.iter().all(|s| s.times == [10_000, 30_000]));
    }

    #[test]
    fn the_sample_limit_stops_reading() {
        let batch = to_batch(&[resource("a", 1.0), resource("b", 5.0)]).unwrap();
        let vs = selector("http_requests_total");
        let mut g = Gather::new(&vs, 0, i64::MAX, 3);
        let err = g.add_numbers(&batch).unwrap_err();
        assert!(matches!(err, QueryError::Execution(_)), "{err:?}");
        let mut labels = Gather::labels_only(&vs, 0, 20_000);
        labels.add_numbers(&batch).unwrap();
        assert_eq!(labels.labels().count(), 2);
    }
}
