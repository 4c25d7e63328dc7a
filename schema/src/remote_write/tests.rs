//! Remote write against the OTLP path: [`to_batch`] must store exactly the rows that
//! converting the request to OTLP metrics and then to Arrow stores, rejections included.

use arrow::array::Array;
use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point,
};
use proptest::prelude::*;

use super::*;
use crate::metrics::PROMETHEUS_SCOPE;

/// A request as OTLP, with what had to be rejected.
#[derive(Debug, Default)]
struct OtlpConverted {
    resource_metrics: Vec<ResourceMetrics>,
    /// Samples accepted.
    samples: usize,
    /// Samples (and native histogram samples) rejected.
    rejected: usize,
    /// Why, for the first rejected series.
    message: String,
}

/// The conversion of a request to OTLP metrics that remote write once took before
/// `metrics::to_batch`: the reference [`to_batch`] is held against.
fn to_otlp(request: &WriteRequest, known: &MetadataCache) -> OtlpConverted {
    let mut out = OtlpConverted::default();
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
            .map(|l| string_kv(&l.name, &l.value))
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

fn label(n: &str, v: &str) -> Label {
    Label {
        name: n.into(),
        value: v.into(),
    }
}

fn ipc(batch: &arrow::record_batch::RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = arrow::ipc::writer::StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
    drop(w);
    out
}

/// Converts both ways and checks that rows (bit for bit, NaNs included), counts and messages
/// agree; returns the direct conversion.
fn same_as_otlp(request: &WriteRequest, known: &MetadataCache) -> Converted {
    let direct = to_batch(request, known).unwrap();
    let reference = to_otlp(request, known);
    assert_eq!(
        (direct.samples, direct.rejected, direct.message.as_str()),
        (
            reference.samples,
            reference.rejected,
            reference.message.as_str()
        )
    );
    let through_otlp = crate::metrics::to_batch(&reference.resource_metrics).unwrap();
    match &direct.batch {
        Some(batch) => assert_eq!(ipc(batch), ipc(&through_otlp)),
        None => assert_eq!(through_otlp.num_rows(), 0),
    }
    direct
}

fn column<'a, T: 'static>(batch: &'a arrow::record_batch::RecordBatch, name: &str) -> &'a T {
    batch
        .column_by_name(name)
        .unwrap()
        .as_any()
        .downcast_ref::<T>()
        .unwrap()
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
    let c = same_as_otlp(&decoded, &MetadataCache::default());
    assert_eq!((c.samples, c.rejected), (2, 1));
    assert!(c.message.contains("__name__"), "{}", c.message);
    let batch = c.batch.unwrap();
    let values = column::<arrow::array::Float64Array>(&batch, crate::columns::VALUE_DOUBLE);
    assert_eq!(values.value(1).to_bits(), 0x7ff0_0000_0000_0002);
    let types = column::<arrow::array::StringArray>(&batch, crate::columns::METRIC_TYPE);
    assert_eq!(types.value(0), crate::metrics::GAUGE);
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
    let c = same_as_otlp(&request, &cache);
    assert_eq!((c.samples, c.rejected), (2, 0));
    let batch = c.batch.unwrap();
    let types = column::<arrow::array::StringArray>(&batch, crate::columns::METRIC_TYPE);
    let help = column::<arrow::array::StringArray>(&batch, crate::columns::METRIC_DESCRIPTION);
    assert_eq!(
        (types.value(0), types.value(1), types.value(2)),
        (
            crate::metrics::SUM,
            crate::metrics::GAUGE,
            crate::metrics::GAUGE
        )
    );
    assert_eq!(help.value(0), "Requests served.");
    // The exemplar alone: a row without a value at the exemplar's time.
    let values = column::<arrow::array::Float64Array>(&batch, crate::columns::VALUE_DOUBLE);
    assert!(values.is_null(2));
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

fn labels() -> impl Strategy<Value = Vec<Label>> {
    // Few names, so series repeat labels, miss `__name__`, or carry one twice.
    let name = prop_oneof![
        4 => Just("__name__".to_string()),
        1 => Just(String::new()),
        2 => "[a-c]{1,2}",
        1 => Just("le".to_string()),
    ];
    let value = prop_oneof![
        "[a-z_]{0,6}",
        Just("m_total".to_string()),
        Just("h_bucket".to_string()),
        Just("0123456789abcdef".to_string()),
    ];
    prop::collection::vec((name, value).prop_map(|(n, v)| label(&n, &v)), 0..5)
}

fn timestamp() -> impl Strategy<Value = i64> {
    prop_oneof![8 => 0i64..10_000, 1 => Just(-1i64), 1 => Just(i64::MAX / 2)]
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::from_bits(0x7ff0_0000_0000_0002)),
        Just(f64::INFINITY),
    ]
}

fn series() -> impl Strategy<Value = TimeSeries> {
    let sample = (value(), timestamp()).prop_map(|(value, timestamp)| Sample { value, timestamp });
    let exemplar_label = prop_oneof![
        Just(label("trace_id", "0123456789abcdef0123456789abcdef")),
        Just(label("span_id", "0123456789abcdef")),
        Just(label("span_id", "not hex")),
        Just(label("user", "a")),
    ];
    let exemplar = (
        prop::collection::vec(exemplar_label, 0..3),
        value(),
        timestamp(),
    )
        .prop_map(|(labels, value, timestamp)| Exemplar {
            labels,
            value,
            timestamp,
        });
    (
        labels(),
        prop::collection::vec(sample, 0..4),
        prop::collection::vec(exemplar, 0..3),
        0usize..2,
    )
        .prop_map(|(labels, samples, exemplars, histograms)| TimeSeries {
            labels,
            samples,
            exemplars,
            histograms: vec![vec![1]; histograms],
        })
}

fn metadata() -> impl Strategy<Value = MetricMetadata> {
    (
        0i32..8,
        prop_oneof![Just("m"), Just("h"), Just("a"), Just("m_total")],
        "[a-z ]{0,5}",
        "[a-z]{0,2}",
    )
        .prop_map(|(r#type, family, help, unit)| MetricMetadata {
            r#type,
            metric_family_name: family.into(),
            help,
            unit,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the request, the direct conversion stores what the OTLP path stores.
    #[test]
    fn direct_rows_are_the_otlp_paths_rows(
        timeseries in prop::collection::vec(series(), 0..6),
        own in prop::collection::vec(metadata(), 0..3),
        remembered in prop::collection::vec(metadata(), 0..3),
    ) {
        let mut known = MetadataCache::default();
        known.remember(&remembered, 10);
        same_as_otlp(&WriteRequest { timeseries, metadata: own }, &known);
    }
}
