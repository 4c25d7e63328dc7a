//! Seed inputs made with the project's own encoders, so every binary harness starts from bytes
//! its decoder accepts (the text harnesses' seeds are hand-written files in the corpus).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span};
use prost::Message;
use strata_schema::Signal;
use strata_schema::any_value::string_kv;
use strata_schema::envelope::Envelope;

fn resource() -> Option<Resource> {
    Some(Resource {
        attributes: vec![
            string_kv("service.name", "checkout"),
            string_kv("host.name", "node-1"),
        ],
        ..Default::default()
    })
}

pub fn traces() -> ExportTraceServiceRequest {
    let span = |i: u8, parent: Vec<u8>| Span {
        trace_id: vec![7; 16],
        span_id: vec![i; 8],
        parent_span_id: parent,
        name: format!("GET /item/{i}"),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_100_000_000,
        attributes: vec![
            string_kv("http.method", "GET"),
            string_kv("http.route", "/item/{id}"),
        ],
        events: vec![span::Event {
            time_unix_nano: 1_700_000_000_050_000_000,
            name: "exception".into(),
            attributes: vec![string_kv("exception.message", "boom")],
            ..Default::default()
        }],
        links: vec![span::Link {
            trace_id: vec![8; 16],
            span_id: vec![9; 8],
            ..Default::default()
        }],
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(),
            scope_spans: vec![ScopeSpans {
                spans: vec![span(1, vec![]), span(2, vec![1; 8])],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub fn logs() -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource(),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 1_700_000_000_000_000_000,
                    severity_number: 17,
                    severity_text: "ERROR".into(),
                    body: Some(AnyValue {
                        value: Some(Value::StringValue("payment failed".into())),
                    }),
                    attributes: vec![string_kv("order", "42")],
                    trace_id: vec![7; 16],
                    span_id: vec![1; 8],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

pub fn metrics() -> ExportMetricsServiceRequest {
    let gauge = Metric {
        name: "queue_depth".into(),
        data: Some(Data::Gauge(Gauge {
            data_points: vec![NumberDataPoint {
                attributes: vec![string_kv("queue", "a")],
                time_unix_nano: 1_700_000_000_000_000_000,
                value: Some(number_data_point::Value::AsDouble(3.5)),
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    let histogram = Metric {
        name: "latency_seconds".into(),
        data: Some(Data::Histogram(Histogram {
            aggregation_temporality: 2,
            data_points: vec![HistogramDataPoint {
                time_unix_nano: 1_700_000_000_000_000_000,
                count: 3,
                sum: Some(0.6),
                bucket_counts: vec![1, 1, 1],
                explicit_bounds: vec![0.1, 0.5],
                ..Default::default()
            }],
        })),
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: resource(),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![gauge, histogram],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn with_first(first: u8, rest: Vec<u8>) -> Vec<u8> {
    let mut out = vec![first];
    out.extend(rest);
    out
}

fn remote_write_request() -> strata_schema::remote_write::WriteRequest {
    use strata_schema::remote_write::{Label, Sample, TimeSeries, WriteRequest};
    let label = |n: &str, v: &str| Label {
        name: n.into(),
        value: v.into(),
    };
    WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![
                label("__name__", "http_requests_total"),
                label("job", "api"),
            ],
            samples: vec![Sample {
                value: 1.0,
                timestamp: 1_700_000_000_000,
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn span_batch() -> arrow::record_batch::RecordBatch {
    strata_schema::traces::to_batch(&traces().resource_spans).expect("seed spans")
}

/// Generated seeds of `target` (none for the text harnesses).
pub fn generated(target: &str) -> Vec<Vec<u8>> {
    match target {
        "otlp_protobuf" => vec![
            with_first(0, traces().encode_to_vec()),
            with_first(1, logs().encode_to_vec()),
            with_first(2, metrics().encode_to_vec()),
        ],
        "otlp_json" => vec![
            with_first(0, serde_json::to_vec(&traces()).unwrap_or_default()),
            with_first(1, serde_json::to_vec(&logs()).unwrap_or_default()),
            with_first(2, serde_json::to_vec(&metrics()).unwrap_or_default()),
        ],
        "remote_write" => vec![
            with_first(
                0,
                strata_schema::remote_write::encode(&remote_write_request()),
            ),
            with_first(1, remote_write_request().encode_to_vec()),
        ],
        "flight_put" => {
            let envelope = Envelope::new("agent-1", 5, Signal::Traces, "acme");
            let stream = strata_ingest::flight::ipc_stream(&span_batch(), None).expect("ipc");
            let messages =
                strata_ingest::flight::encode_streams(&envelope, vec![(5, stream.into())])
                    .expect("flight");
            let env = envelope.encode_to_vec();
            let mut parts: Vec<&[u8]> = vec![&env];
            for m in &messages {
                parts.extend([&m.data_header[..], &m.data_body[..], &m.app_metadata[..]]);
            }
            vec![crate::join(&parts)]
        }
        "wal_segment" => {
            let envelope = Envelope::new("agent-1", 5, Signal::Traces, "acme");
            let entry = strata_wal::entry::encode(&envelope, &[span_batch()]).expect("entry");
            let mut segment = strata_wal::format::header().to_vec();
            strata_wal::format::encode_record(&entry, &mut segment);
            vec![segment]
        }
        "buffer_record" => {
            use strata_agent::buffer::record::{DataHeader, encode_ack, encode_data, encode_route};
            let stream = strata_ingest::flight::ipc_stream(&span_batch(), None).expect("ipc");
            let header = DataHeader {
                target: "collector-0".into(),
                key_hash: 42,
                rows: 2,
            };
            vec![
                encode_data(&header, Signal::Traces, "acme", &stream),
                encode_route(3, "collector-1"),
                encode_ack(&[1, 2, 3]),
            ]
        }
        "commit_record" => {
            use strata_storage::commit::{Commit, CommitKind, encode};
            vec![encode(&Commit {
                seq: 1,
                kind: CommitKind::Compaction,
                created_ms: 1_700_000_000_000,
                compactor: "compactor-0".into(),
                inputs: vec!["a.parquet".into(), "b.parquet".into()],
                outputs: vec!["c.parquet".into()],
                rows_in: 10,
                rows_out: 10,
            })]
        }
        _ => Vec::new(),
    }
}

/// Writes every seed of every target into `root/<target>/seed-<n>`.
pub fn write_all(root: &std::path::Path) -> std::io::Result<()> {
    for t in crate::TARGETS {
        let dir = root.join(t.name);
        std::fs::create_dir_all(&dir)?;
        for (i, seed) in all(t.name).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed)?;
        }
    }
    Ok(())
}

/// Every seed of `target`: the generated ones and the corpus files.
pub fn all(target: &str) -> Vec<Vec<u8>> {
    let mut out = generated(target);
    if let Ok(dir) = std::fs::read_dir(crate::corpus_dir(target)) {
        let mut files: Vec<_> = dir.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        out.extend(files.iter().filter_map(|f| std::fs::read(f).ok()));
    }
    out
}
