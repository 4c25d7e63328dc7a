//! The OTLP/JSON examples from the OpenTelemetry proto repository (kept in
//! `../shared/data/otlp-examples/` next to the workspace) round-trip through Arrow and Parquet.
//! Skipped, with a message, when that directory is not present (e.g. in a user's clone).

mod common;

use std::path::PathBuf;

use arrow::array::{Array, AsArray, RecordBatch, StringArray};
use common::*;
use opentelemetry_proto::tonic::logs::v1::LogsData;
use opentelemetry_proto::tonic::metrics::v1::MetricsData;
use opentelemetry_proto::tonic::trace::v1::TracesData;
use prost::Message;
use strata_schema::{columns, logs, metrics, traces};

fn examples_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/otlp-examples/"
    ));
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: ../shared/data/otlp-examples not present");
        None
    }
}

fn read_json<T: serde::de::DeserializeOwned>(dir: &std::path::Path, file: &str) -> T {
    let text = std::fs::read_to_string(dir.join(file)).expect("read example");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {file}: {e}"))
}

fn string_column<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
    batch
        .column_by_name(name)
        .expect("column")
        .as_string::<i32>()
}

#[test]
fn trace_example_round_trips() {
    let Some(dir) = examples_dir() else { return };
    let data: TracesData = read_json(&dir, "trace.json");
    let batch = traces::to_batch(&data.resource_spans).expect("to_batch");
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(
        string_column(&batch, columns::TRACE_ID).value(0),
        "5b8efff798038103d269b633813fc60c"
    );
    assert_eq!(
        string_column(&batch, columns::PARENT_SPAN_ID).value(0),
        "eee19b7ec3c1b173"
    );
    assert_eq!(
        string_column(&batch, columns::SERVICE_NAME).value(0),
        "my.service"
    );
    assert_eq!(
        string_column(&batch, columns::SCOPE_NAME).value(0),
        "my.library"
    );
    let duration = batch
        .column_by_name(columns::DURATION_NANOS)
        .expect("duration");
    assert_eq!(
        duration
            .as_primitive::<arrow::datatypes::Int64Type>()
            .value(0),
        1_000_000_000
    );

    let output = traces::from_batches(&parquet_round_trip(&batch)).expect("from_batches");
    let expected = normalize_traces(&data.resource_spans);
    assert_eq!(output, expected);
    assert_eq!(
        TracesData {
            resource_spans: output
        }
        .encode_to_vec(),
        TracesData {
            resource_spans: expected
        }
        .encode_to_vec()
    );
}

#[test]
fn logs_example_round_trips() {
    let Some(dir) = examples_dir() else { return };
    let data: LogsData = read_json(&dir, "logs.json");
    let batch = logs::to_batch(&data.resource_logs).expect("to_batch");
    assert_eq!(batch.num_rows(), logs::row_count(&data.resource_logs));
    assert!(batch.num_rows() > 0);
    let output = logs::from_batches(&parquet_round_trip(&batch)).expect("from_batches");
    let expected = normalize_logs(&data.resource_logs);
    assert_eq!(
        LogsData {
            resource_logs: output
        }
        .encode_to_vec(),
        LogsData {
            resource_logs: expected
        }
        .encode_to_vec()
    );
}

#[test]
fn events_example_is_logs_with_event_name_and_round_trips() {
    let Some(dir) = examples_dir() else { return };
    let data: LogsData = read_json(&dir, "events.json");
    let batch = logs::to_batch(&data.resource_logs).expect("to_batch");
    assert_eq!(batch.num_rows(), 1);
    assert_eq!(
        string_column(&batch, columns::EVENT_NAME).value(0),
        "browser.page_view"
    );
    // A kvlist body: rendered text for search, exact bytes in body_any.
    let body = string_column(&batch, columns::BODY).value(0);
    assert!(
        body.starts_with(r#"{"type":0,"url":"https://www.guidgenerator.com"#),
        "{body}"
    );
    assert!(
        !batch
            .column_by_name(columns::BODY_ANY)
            .expect("body_any")
            .is_null(0)
    );

    let output = logs::from_batches(&parquet_round_trip(&batch)).expect("from_batches");
    let expected = normalize_logs(&data.resource_logs);
    assert_eq!(
        LogsData {
            resource_logs: output
        }
        .encode_to_vec(),
        LogsData {
            resource_logs: expected
        }
        .encode_to_vec()
    );
}

#[test]
fn metrics_example_round_trips() {
    let Some(dir) = examples_dir() else { return };
    let data: MetricsData = read_json(&dir, "metrics.json");
    let batch = metrics::to_batch(&data.resource_metrics).expect("to_batch");
    assert_eq!(batch.num_rows(), metrics::row_count(&data.resource_metrics));
    let types = string_column(&batch, columns::METRIC_TYPE);
    let mut seen: Vec<&str> = (0..types.len()).map(|i| types.value(i)).collect();
    seen.dedup();
    assert!(
        seen.contains(&"sum") && seen.contains(&"gauge") && seen.contains(&"histogram"),
        "{seen:?}"
    );

    let output = metrics::from_batches(&parquet_round_trip(&batch)).expect("from_batches");
    let expected = normalize_metrics(&data.resource_metrics);
    assert_eq!(
        MetricsData {
            resource_metrics: output
        }
        .encode_to_vec(),
        MetricsData {
            resource_metrics: expected
        }
        .encode_to_vec()
    );
}
