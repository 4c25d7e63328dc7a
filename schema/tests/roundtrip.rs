//! Property tests: arbitrary OTLP -> Arrow -> Parquet (in memory) -> OTLP equals the input
//! after the normalization documented in `common/mod.rs`; the same holds for batches mangled
//! the way query engines hand them back (reordered, extra columns, dictionary / view types).

mod common;

use common::*;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::logs::v1::{LogRecord, LogsData, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Exemplar, ExponentialHistogram, ExponentialHistogramDataPoint, Gauge,
    Histogram, HistogramDataPoint, Metric, MetricsData, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, Summary, SummaryDataPoint, exemplar,
    exponential_histogram_data_point::Buckets, metric::Data, number_data_point,
    summary_data_point::ValueAtQuantile,
};
use opentelemetry_proto::tonic::trace::v1::{
    ResourceSpans, ScopeSpans, Span, Status, TracesData,
    span::{Event, Link},
};
use prop::collection::vec;
use proptest::prelude::*;
use prost::Message;
use strata_schema::{Signal, logs, metrics, traces};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 64,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- traces

fn event() -> impl Strategy<Value = Event> {
    (any::<u64>(), text(), attributes(), any::<u32>()).prop_map(|(t, name, attributes, d)| Event {
        time_unix_nano: t,
        name,
        attributes,
        dropped_attributes_count: d,
    })
}

fn link() -> impl Strategy<Value = Link> {
    (
        id(16),
        id(8),
        text(),
        attributes(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(
            |(trace_id, span_id, trace_state, attributes, dropped_attributes_count, flags)| Link {
                trace_id,
                span_id,
                trace_state,
                attributes,
                dropped_attributes_count,
                flags,
            },
        )
}

fn span() -> impl Strategy<Value = Span> {
    let ids = (
        id(16),
        id(8),
        id(8),
        text(),
        any::<u32>(),
        text(),
        any::<i32>(),
    );
    let body = (
        any::<u64>(),
        any::<u64>(),
        attributes(),
        any::<u32>(),
        vec(event(), 0..3),
        any::<u32>(),
        vec(link(), 0..3),
        any::<u32>(),
        proptest::option::of(
            (any::<i32>(), text()).prop_map(|(code, message)| Status { code, message }),
        ),
    );
    (ids, body).prop_map(
        |(
            (trace_id, span_id, parent_span_id, trace_state, flags, name, kind),
            (
                start,
                end,
                attributes,
                dropped_attributes_count,
                events,
                dropped_events_count,
                links,
                dropped_links_count,
                status,
            ),
        )| Span {
            trace_id,
            span_id,
            trace_state,
            parent_span_id,
            flags,
            name,
            kind,
            start_time_unix_nano: start,
            end_time_unix_nano: end,
            attributes,
            dropped_attributes_count,
            events,
            dropped_events_count,
            links,
            dropped_links_count,
            status,
        },
    )
}

fn resource_spans() -> impl Strategy<Value = Vec<ResourceSpans>> {
    let scope_spans =
        (scope(), vec(span(), 0..4), schema_url()).prop_map(|(scope, spans, schema_url)| {
            ScopeSpans {
                scope,
                spans,
                schema_url,
            }
        });
    vec(
        (resource(), vec(scope_spans, 0..3), schema_url()).prop_map(
            |(resource, scope_spans, schema_url)| ResourceSpans {
                resource,
                scope_spans,
                schema_url,
            },
        ),
        0..4,
    )
}

fn traces_bytes(r: Vec<ResourceSpans>) -> Vec<u8> {
    TracesData { resource_spans: r }.encode_to_vec()
}

/// Overwrites bytes of `bytes` at the given positions (nothing when it is empty).
fn damage_bytes(bytes: &mut [u8], damage: &[(prop::sample::Index, u8)]) {
    if bytes.is_empty() {
        return;
    }
    for (at, byte) in damage {
        let i = at.index(bytes.len());
        bytes[i] = *byte;
    }
}

/// The spans with a 16-byte trace id and an 8-byte span id, neither all zero; and how many
/// were not.
fn retain_valid_spans(mut input: Vec<ResourceSpans>) -> (Vec<ResourceSpans>, usize) {
    let valid = |id: &[u8], len| id.len() == len && id.iter().any(|&b| b != 0);
    let mut rejected = 0;
    for rs in &mut input {
        for ss in &mut rs.scope_spans {
            ss.spans.retain(|s| {
                let ok = valid(&s.trace_id, 16) && valid(&s.span_id, 8);
                rejected += usize::from(!ok);
                ok
            });
        }
    }
    (input, rejected)
}

/// `duration_nanos` and the promoted span columns of `batch`, row by row against the spans of
/// `input` in order: a promoted column holds the first present key of its list, rendered.
fn check_derived_span_columns(
    batch: &arrow::array::RecordBatch,
    input: &[ResourceSpans],
) -> Result<(), TestCaseError> {
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::Int64Type;
    let spans: Vec<&Span> = input
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .collect();
    prop_assert_eq!(batch.num_rows(), spans.len());
    let duration = batch
        .column_by_name("duration_nanos")
        .expect("duration_nanos")
        .as_primitive::<Int64Type>();
    let promoted: [(&str, &[&str]); 5] = [
        ("http_method", &["http.request.method", "http.method"]),
        (
            "http_status_code",
            &["http.response.status_code", "http.status_code"],
        ),
        ("http_route", &["http.route"]),
        ("rpc_method", &["rpc.method"]),
        ("db_system", &["db.system", "db.system.name"]),
    ];
    for (row, span) in spans.iter().enumerate() {
        prop_assert_eq!(
            duration.value(row),
            (span.end_time_unix_nano as i64).wrapping_sub(span.start_time_unix_nano as i64)
        );
        for (column, keys) in promoted {
            let array = batch
                .column_by_name(column)
                .expect(column)
                .as_string::<i32>();
            let expected = keys.iter().find_map(|k| {
                span.attributes
                    .iter()
                    .find(|kv| kv.key == *k)
                    .and_then(|kv| kv.value.as_ref())
                    .map(strata_schema::any_value_to_string)
            });
            let got = array.is_valid(row).then(|| array.value(row).to_owned());
            prop_assert_eq!(got, expected, "{} of row {}", column, row);
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- logs

fn log_record() -> impl Strategy<Value = LogRecord> {
    let head = (
        any::<u64>(),
        any::<u64>(),
        any::<i32>(),
        text(),
        proptest::option::of(any_value()),
    );
    let tail = (
        attributes(),
        any::<u32>(),
        any::<u32>(),
        id(16),
        id(8),
        text(),
    );
    (head, tail).prop_map(
        |(
            (time, observed, severity_number, severity_text, body),
            (attributes, dropped, flags, trace_id, span_id, event_name),
        )| {
            LogRecord {
                time_unix_nano: time,
                observed_time_unix_nano: observed,
                severity_number,
                severity_text,
                body,
                attributes,
                dropped_attributes_count: dropped,
                flags,
                trace_id,
                span_id,
                event_name,
            }
        },
    )
}

fn resource_logs() -> impl Strategy<Value = Vec<ResourceLogs>> {
    let scope_logs = (scope(), vec(log_record(), 0..4), schema_url()).prop_map(
        |(scope, log_records, schema_url)| ScopeLogs {
            scope,
            log_records,
            schema_url,
        },
    );
    vec(
        (resource(), vec(scope_logs, 0..3), schema_url()).prop_map(
            |(resource, scope_logs, schema_url)| ResourceLogs {
                resource,
                scope_logs,
                schema_url,
            },
        ),
        0..4,
    )
}

fn logs_bytes(r: Vec<ResourceLogs>) -> Vec<u8> {
    LogsData { resource_logs: r }.encode_to_vec()
}

// ---------------------------------------------------------------- metrics

fn exemplars() -> impl Strategy<Value = Vec<Exemplar>> {
    let value = proptest::option::of(prop_oneof![
        float().prop_map(exemplar::Value::AsDouble),
        any::<i64>().prop_map(exemplar::Value::AsInt),
    ]);
    vec(
        (attributes(), any::<u64>(), id(8), id(16), value).prop_map(
            |(filtered_attributes, time_unix_nano, span_id, trace_id, value)| Exemplar {
                filtered_attributes,
                time_unix_nano,
                span_id,
                trace_id,
                value,
            },
        ),
        0..3,
    )
}

/// (attributes, start, time, flags)
fn point_head() -> impl Strategy<
    Value = (
        Vec<opentelemetry_proto::tonic::common::v1::KeyValue>,
        u64,
        u64,
        u32,
    ),
> {
    (attributes(), any::<u64>(), any::<u64>(), any::<u32>())
}

fn number_points() -> impl Strategy<Value = Vec<NumberDataPoint>> {
    let value = proptest::option::weighted(
        0.9,
        prop_oneof![
            float().prop_map(number_data_point::Value::AsDouble),
            any::<i64>().prop_map(number_data_point::Value::AsInt),
        ],
    );
    vec(
        (point_head(), exemplars(), value).prop_map(
            |((attributes, start, time, flags), exemplars, value)| NumberDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: time,
                exemplars,
                flags,
                value,
            },
        ),
        0..3,
    )
}

fn histogram_points() -> impl Strategy<Value = Vec<HistogramDataPoint>> {
    let stats = (
        any::<u64>(),
        proptest::option::of(float()),
        vec(any::<u64>(), 0..4),
        vec(float(), 0..3),
        proptest::option::of(float()),
        proptest::option::of(float()),
    );
    vec(
        (point_head(), stats, exemplars()).prop_map(
            |(
                (attributes, start, time, flags),
                (count, sum, bucket_counts, explicit_bounds, min, max),
                exemplars,
            )| {
                HistogramDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    count,
                    sum,
                    bucket_counts,
                    explicit_bounds,
                    exemplars,
                    flags,
                    min,
                    max,
                }
            },
        ),
        0..3,
    )
}

fn buckets() -> impl Strategy<Value = Option<Buckets>> {
    proptest::option::of((any::<i32>(), vec(any::<u64>(), 0..4)).prop_map(
        |(offset, bucket_counts)| Buckets {
            offset,
            bucket_counts,
        },
    ))
}

fn exponential_points() -> impl Strategy<Value = Vec<ExponentialHistogramDataPoint>> {
    let stats = (
        any::<u64>(),
        proptest::option::of(float()),
        any::<i32>(),
        any::<u64>(),
        buckets(),
        buckets(),
        proptest::option::of(float()),
        proptest::option::of(float()),
        float(),
    );
    vec(
        (point_head(), stats, exemplars()).prop_map(
            |(
                (attributes, start, time, flags),
                (count, sum, scale, zero_count, positive, negative, min, max, zero_threshold),
                exemplars,
            )| {
                ExponentialHistogramDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: time,
                    count,
                    sum,
                    scale,
                    zero_count,
                    positive,
                    negative,
                    flags,
                    exemplars,
                    min,
                    max,
                    zero_threshold,
                }
            },
        ),
        0..3,
    )
}

fn summary_points() -> impl Strategy<Value = Vec<SummaryDataPoint>> {
    let quantiles = vec(
        (float(), float()).prop_map(|(quantile, value)| ValueAtQuantile { quantile, value }),
        0..3,
    );
    vec(
        (point_head(), any::<u64>(), float(), quantiles).prop_map(
            |((attributes, start, time, flags), count, sum, quantile_values)| SummaryDataPoint {
                attributes,
                start_time_unix_nano: start,
                time_unix_nano: time,
                count,
                sum,
                quantile_values,
                flags,
            },
        ),
        0..3,
    )
}

fn temporality() -> impl Strategy<Value = i32> {
    prop_oneof![
        Just(AggregationTemporality::Delta as i32),
        Just(AggregationTemporality::Cumulative as i32),
        any::<i32>(),
    ]
}

fn metric() -> impl Strategy<Value = Metric> {
    let data = prop_oneof![
        number_points().prop_map(|data_points| Data::Gauge(Gauge { data_points })),
        (number_points(), temporality(), any::<bool>()).prop_map(|(data_points, t, m)| Data::Sum(
            Sum {
                data_points,
                aggregation_temporality: t,
                is_monotonic: m,
            }
        )),
        (histogram_points(), temporality()).prop_map(|(data_points, t)| Data::Histogram(
            Histogram {
                data_points,
                aggregation_temporality: t,
            }
        )),
        (exponential_points(), temporality()).prop_map(|(data_points, t)| {
            Data::ExponentialHistogram(ExponentialHistogram {
                data_points,
                aggregation_temporality: t,
            })
        }),
        summary_points().prop_map(|data_points| Data::Summary(Summary { data_points })),
    ];
    let name = prop_oneof![Just("requests".to_owned()), text()];
    (
        name,
        text(),
        text(),
        attributes(),
        proptest::option::weighted(0.95, data),
    )
        .prop_map(|(name, description, unit, metadata, data)| Metric {
            name,
            description,
            unit,
            metadata,
            data,
        })
}

fn resource_metrics() -> impl Strategy<Value = Vec<ResourceMetrics>> {
    let scope_metrics =
        (scope(), vec(metric(), 0..4), schema_url()).prop_map(|(scope, metrics, schema_url)| {
            ScopeMetrics {
                scope,
                metrics,
                schema_url,
            }
        });
    vec(
        (resource(), vec(scope_metrics, 0..3), schema_url()).prop_map(
            |(resource, scope_metrics, schema_url)| ResourceMetrics {
                resource,
                scope_metrics,
                schema_url,
            },
        ),
        0..4,
    )
}

fn metrics_bytes(r: Vec<ResourceMetrics>) -> Vec<u8> {
    MetricsData {
        resource_metrics: r,
    }
    .encode_to_vec()
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(config())]

    #[test]
    fn traces_round_trip(input in resource_spans()) {
        let batch = traces::to_batch(&input).expect("to_batch");
        prop_assert_eq!(batch.schema(), Signal::Traces.schema());
        prop_assert_eq!(batch.num_rows(), traces::row_count(&input));
        let expected = normalize_traces(&input);
        let direct = traces::from_batches(std::slice::from_ref(&batch)).expect("from_batches");
        prop_assert_eq!(traces_bytes(direct), traces_bytes(expected.clone()));
        let read = parquet_round_trip(&batch);
        for b in &read {
            prop_assert_eq!(b.schema(), Signal::Traces.schema(), "parquet hands back the same schema");
        }
        let output = traces::from_batches(&read).expect("from_batches after parquet");
        prop_assert_eq!(traces_bytes(output.clone()), traces_bytes(expected.clone()), "\n{:#?}\n!=\n{:#?}", output, expected);
        let mangled: Vec<_> = read.iter().map(mangle).collect();
        let output = traces::from_batches(&mangled).expect("from_batches after mangling");
        prop_assert_eq!(traces_bytes(output), traces_bytes(expected));
        check_derived_span_columns(&batch, &input)?;
    }

    /// What a receiver does with request bytes: spans with invalid ids are left out and
    /// counted, the rest are the spans of the request.
    #[test]
    fn traces_decode_leaves_out_invalid_ids(input in resource_spans()) {
        let bytes = ExportTraceServiceRequest { resource_spans: input.clone() }.encode_to_vec();
        let decoded = traces::decode(&bytes).expect("decode");
        let (valid, rejected) = retain_valid_spans(input);
        prop_assert_eq!(decoded.rejected, rejected);
        let output = traces::from_batches(std::slice::from_ref(&decoded.batch)).expect("from_batches");
        prop_assert_eq!(traces_bytes(output), traces_bytes(normalize_traces(&valid)));
        check_derived_span_columns(&decoded.batch, &valid)?;
    }

    /// Damaged request bytes never panic the decoder, and whatever prost accepts, the decoder
    /// accepts with the same result (prost's canonical re-encoding decodes the same).
    #[test]
    fn traces_decode_of_damaged_bytes_agrees_with_prost(
        input in resource_spans(),
        damage in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = ExportTraceServiceRequest { resource_spans: input }.encode_to_vec();
        damage_bytes(&mut bytes, &damage);
        let ours = traces::decode(&bytes);
        if let Ok(request) = ExportTraceServiceRequest::decode(bytes.as_slice()) {
            let ours = ours.expect("what prost decodes, the decoder decodes");
            let again = traces::decode(&request.encode_to_vec()).expect("canonical bytes");
            prop_assert_eq!(ours.rejected, again.rejected);
            let a = traces::from_batches(std::slice::from_ref(&ours.batch)).expect("from_batches");
            let b = traces::from_batches(std::slice::from_ref(&again.batch)).expect("from_batches");
            prop_assert_eq!(traces_bytes(a), traces_bytes(b));
        }
    }

    /// As for traces: damaged bytes never panic, and what prost accepts decodes the same.
    #[test]
    fn logs_decode_of_damaged_bytes_agrees_with_prost(
        input in resource_logs(),
        damage in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = ExportLogsServiceRequest { resource_logs: input }.encode_to_vec();
        damage_bytes(&mut bytes, &damage);
        let ours = logs::decode(&bytes);
        if let Ok(request) = ExportLogsServiceRequest::decode(bytes.as_slice()) {
            let ours = ours.expect("what prost decodes, the decoder decodes");
            // The prost front end (what the file source uses) builds the same batch.
            let again = logs::to_batch(&request.resource_logs).expect("to_batch");
            let a = logs::from_batches(std::slice::from_ref(&ours)).expect("from_batches");
            let b = logs::from_batches(std::slice::from_ref(&again)).expect("from_batches");
            prop_assert_eq!(logs_bytes(a), logs_bytes(b));
        }
    }

    #[test]
    fn logs_round_trip(input in resource_logs()) {
        let batch = logs::to_batch(&input).expect("to_batch");
        prop_assert_eq!(batch.schema(), Signal::Logs.schema());
        prop_assert_eq!(batch.num_rows(), logs::row_count(&input));
        let expected = normalize_logs(&input);
        let read = parquet_round_trip(&batch);
        for b in &read {
            prop_assert_eq!(b.schema(), Signal::Logs.schema(), "parquet hands back the same schema");
        }
        let output = logs::from_batches(&read).expect("from_batches after parquet");
        prop_assert_eq!(logs_bytes(output.clone()), logs_bytes(expected.clone()), "\n{:#?}\n!=\n{:#?}", output, expected);
        let mangled: Vec<_> = read.iter().map(mangle).collect();
        let output = logs::from_batches(&mangled).expect("from_batches after mangling");
        prop_assert_eq!(logs_bytes(output), logs_bytes(expected));
    }

    #[test]
    fn metrics_round_trip(input in resource_metrics()) {
        let batch = metrics::to_batch(&input).expect("to_batch");
        prop_assert_eq!(batch.schema(), Signal::Metrics.schema());
        prop_assert_eq!(batch.num_rows(), metrics::row_count(&input));
        let expected = normalize_metrics(&input);
        let read = parquet_round_trip(&batch);
        for b in &read {
            prop_assert_eq!(b.schema(), Signal::Metrics.schema(), "parquet hands back the same schema");
        }
        let output = metrics::from_batches(&read).expect("from_batches after parquet");
        prop_assert_eq!(metrics_bytes(output.clone()), metrics_bytes(expected.clone()), "\n{:#?}\n!=\n{:#?}", output, expected);
        let mangled: Vec<_> = read.iter().map(mangle).collect();
        let output = metrics::from_batches(&mangled).expect("from_batches after mangling");
        prop_assert_eq!(metrics_bytes(output), metrics_bytes(expected));
    }
}

#[test]
fn empty_input_gives_empty_batch_with_schema() {
    for signal in Signal::ALL {
        let batch = match signal {
            Signal::Traces => traces::to_batch(&[]),
            Signal::Logs => logs::to_batch(&[]),
            Signal::Metrics => metrics::to_batch(&[]),
        }
        .expect("empty batch");
        assert_eq!(batch.num_rows(), 0);
        assert_eq!(batch.schema(), signal.schema());
    }
    assert!(traces::from_batches(&[]).expect("no batches").is_empty());
}
