//! Log records <-> Arrow: one row per log record, resource and scope denormalized, table `logs`.
//!
//! Invariants:
//! - `body` is the string itself for string bodies, the [`crate::any_value_to_string`]
//!   rendering for any other body, and null without a body; `body_any` holds the prost-encoded
//!   `AnyValue` exactly when the body is present and not a string. [`from_batches`] prefers
//!   `body_any`, then `body` (as a string value).
//! - `trace_id` / `span_id` are lowercase hex, null when empty.
//! - Times are `u64` nanoseconds stored `as i64` (bit-exact round trip).
//! - [`from_batches`] regroups rows by identical resource then scope (first-seen order); a
//!   container without log records produces no rows and does not come back.
//!
//! Request bytes (and prost records) become a batch in [`build`].

mod build;

use arrow::array::{BinaryArray, RecordBatch, StringArray, TimestampNanosecondArray};
use arrow::datatypes::{DataType, Field, Int32Type, UInt32Type};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;

use crate::any_value::attribute_map_type;
use crate::columns::*;
use crate::datatypes::timestamp;
use crate::error::{Error, Result};
use crate::read::{BatchColumns, hex_or_empty, opt_bin, opt_str, or_default, str_or_empty};
use crate::resource::{CommonReader, Grouper, promoted_columns};
use crate::signal::Signal;

pub use build::decode;

/// Fields of the `logs` table, in order.
pub(crate) fn fields() -> Vec<Field> {
    let mut fields = vec![
        Field::new(TIME, timestamp(), false),
        Field::new(OBSERVED_TIME, timestamp(), false),
        Field::new(SEVERITY_NUMBER, DataType::Int32, false),
        Field::new(SEVERITY_TEXT, DataType::Utf8, false),
        Field::new(BODY, DataType::Utf8, true),
        Field::new(BODY_ANY, DataType::Binary, true),
        Field::new(ATTRIBUTES, attribute_map_type(), false),
        Field::new(DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
        Field::new(FLAGS, DataType::UInt32, false),
        Field::new(TRACE_ID, DataType::Utf8, true),
        Field::new(SPAN_ID, DataType::Utf8, true),
        Field::new(EVENT_NAME, DataType::Utf8, false),
    ];
    fields.extend(crate::resource::common_fields());
    fields
}

/// Number of log records in the request.
pub fn row_count(resource_logs: &[ResourceLogs]) -> usize {
    resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

/// Convert OTLP log records into one `logs` record batch (schema [`Signal::Logs`]`.schema()`).
///
/// The same builders as [`decode`] fill the columns.
pub fn to_batch(resource_logs: &[ResourceLogs]) -> Result<RecordBatch> {
    build::from_records(resource_logs)
}

/// Convert `logs` record batches back to OTLP (inverse of [`to_batch`], regrouped).
pub fn from_batches(batches: &[RecordBatch]) -> Result<Vec<ResourceLogs>> {
    let schema = Signal::Logs.schema();
    let derived: Vec<&str> = promoted_columns().collect();
    let mut grouper: Grouper<Vec<LogRecord>> = Grouper::new();
    for batch in batches {
        let cols = BatchColumns::load(batch, &schema, &derived)?;
        read_batch(&cols, &mut grouper)?;
    }
    Ok(grouper
        .finish()
        .into_iter()
        .map(|r| ResourceLogs {
            resource: r.resource,
            schema_url: r.schema_url,
            scope_logs: r
                .scopes
                .into_iter()
                .map(|s| ScopeLogs {
                    scope: s.scope,
                    log_records: s.items,
                    schema_url: s.schema_url,
                })
                .collect(),
        })
        .collect())
}

fn read_batch(cols: &BatchColumns, grouper: &mut Grouper<Vec<LogRecord>>) -> Result<()> {
    let common = CommonReader::new(cols)?;
    let time: &TimestampNanosecondArray = cols.typed(TIME)?;
    let observed_time: &TimestampNanosecondArray = cols.typed(OBSERVED_TIME)?;
    let severity_number = cols.primitive::<Int32Type>(SEVERITY_NUMBER)?;
    let severity_text: &StringArray = cols.typed(SEVERITY_TEXT)?;
    let body: &StringArray = cols.typed(BODY)?;
    let body_any: &BinaryArray = cols.typed(BODY_ANY)?;
    let attributes = cols.map(ATTRIBUTES)?;
    let dropped_attributes = cols.primitive::<UInt32Type>(DROPPED_ATTRIBUTES_COUNT)?;
    let flags = cols.primitive::<UInt32Type>(FLAGS)?;
    let trace_id: &StringArray = cols.typed(TRACE_ID)?;
    let span_id: &StringArray = cols.typed(SPAN_ID)?;
    let event_name: &StringArray = cols.typed(EVENT_NAME)?;

    for row in 0..cols.num_rows() {
        let body = match (opt_bin(body_any, row), opt_str(body, row)) {
            (Some(bytes), _) => Some(AnyValue::decode(bytes).map_err(|source| Error::Decode {
                what: BODY_ANY.to_owned(),
                source,
            })?),
            (None, Some(s)) => Some(AnyValue {
                value: Some(Value::StringValue(s.to_owned())),
            }),
            (None, None) => None,
        };
        let record = LogRecord {
            time_unix_nano: or_default(time, row) as u64,
            observed_time_unix_nano: or_default(observed_time, row) as u64,
            severity_number: or_default(severity_number, row),
            severity_text: str_or_empty(severity_text, row).to_owned(),
            body,
            attributes: attributes.get(row)?,
            dropped_attributes_count: or_default(dropped_attributes, row),
            flags: or_default(flags, row),
            trace_id: hex_or_empty(trace_id, row)?,
            span_id: hex_or_empty(span_id, row)?,
            event_name: str_or_empty(event_name, row).to_owned(),
        };
        grouper.slot(&common, row)?.push(record);
    }
    Ok(())
}

/// The OTLP severity number of a level name (any case), if it is one.
pub fn severity_of(level: &str) -> Option<i32> {
    let n = match level.to_ascii_lowercase().as_str() {
        "trace" | "finest" => 1,
        "debug" | "fine" | "finer" | "dbg" => 5,
        "info" | "information" | "informational" => 9,
        "notice" => 10,
        "warn" | "warning" => 13,
        "error" | "err" | "severe" => 17,
        "crit" | "critical" => 18,
        "alert" => 19,
        "emerg" | "emergency" | "fatal" | "panic" => 21,
        _ => return None,
    };
    Some(n)
}
