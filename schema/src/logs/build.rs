//! The `logs` batch builders, with two front ends: an `ExportLogsServiceRequest`'s protobuf
//! bytes straight into the builders ([`decode`]: strings, ids and scalar values go from the
//! request's bytes into Arrow; resources, scopes and non-string bodies go through prost), and
//! prost log records ([`from_records`], what the file source builds, which would pay for an
//! encode if it went through the bytes).
//!
//! Invariant: both front ends give the same batch for the same records (rows in order, the same
//! refusals of malformed bytes); the damaged-bytes property test compares them.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
    UInt32Builder,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs};
use prost::Message;

use crate::any_value::{AttributeMapBuilder, ValueRef, any_value_to_string};
use crate::columns::*;
use crate::datatypes::timestamp_builder;
use crate::error::{Error, Result};
use crate::hex_id::append_hex;
use crate::resource::{CommonBuilder, ResourceInfo};
use crate::signal::Signal;
use crate::wire::common::{Containers, Place, any_value_of, for_each_item, key_value};
use crate::wire::{Occurrences, Reader};

const CONTAINERS: Containers = Containers {
    request: "ExportLogsServiceRequest",
    resource: "ResourceLogs",
    scope: "ScopeLogs",
};

/// Decodes `bytes`, an `ExportLogsServiceRequest`, into one `logs` batch.
pub fn decode(bytes: &[u8]) -> Result<RecordBatch> {
    // About 150 bytes per record on the wire for typical records.
    let mut builder = LogsBuilder::with_capacity(bytes.len() / 150 + 1);
    for_each_item(bytes, &CONTAINERS, |record, place| {
        builder.append_wire(record, place)
    })?;
    builder.finish()
}

/// Convert prost log records into one `logs` batch, through the same builders as [`decode`].
pub(super) fn from_records(resource_logs: &[ResourceLogs]) -> Result<RecordBatch> {
    let rows = super::row_count(resource_logs);
    let mut builder = LogsBuilder::with_capacity(rows);
    for rl in resource_logs {
        let resource = ResourceInfo::new(rl.resource.as_ref(), &rl.schema_url);
        for sl in &rl.scope_logs {
            let place = Place {
                resource: &resource,
                scope: sl.scope.as_ref(),
                scope_schema_url: &sl.schema_url,
            };
            for record in &sl.log_records {
                builder.append_record(record, &place)?;
            }
        }
    }
    builder.finish()
}

/// The scalar fields of one log record, as decoded.
#[derive(Default)]
struct Scalars<'a> {
    time: u64,
    observed: u64,
    severity: i32,
    severity_text: &'a str,
    dropped: u32,
    flags: u32,
    trace_id: &'a [u8],
    span_id: &'a [u8],
    event_name: &'a str,
}

struct LogsBuilder {
    time: TimestampNanosecondBuilder,
    observed_time: TimestampNanosecondBuilder,
    severity_number: Int32Builder,
    severity_text: StringBuilder,
    body: StringBuilder,
    body_any: BinaryBuilder,
    attributes: AttributeMapBuilder,
    dropped_attributes: UInt32Builder,
    flags: UInt32Builder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    event_name: StringBuilder,
    common: CommonBuilder,
}

impl LogsBuilder {
    fn with_capacity(rows: usize) -> Self {
        Self {
            time: timestamp_builder(),
            observed_time: timestamp_builder(),
            severity_number: Int32Builder::with_capacity(rows),
            severity_text: StringBuilder::new(),
            body: StringBuilder::new(),
            body_any: BinaryBuilder::new(),
            attributes: AttributeMapBuilder::new(ATTRIBUTES),
            dropped_attributes: UInt32Builder::with_capacity(rows),
            flags: UInt32Builder::with_capacity(rows),
            trace_id: StringBuilder::new(),
            span_id: StringBuilder::new(),
            event_name: StringBuilder::new(),
            common: CommonBuilder::new(),
        }
    }

    /// Appends one `LogRecord` message: its attributes as they come, everything else once the
    /// record is read (the last occurrence of a field wins, occurrences of `body` merge).
    fn append_wire(&mut self, bytes: &[u8], place: &Place<'_>) -> Result<()> {
        let mut record = Scalars::default();
        let mut body = Occurrences::default();
        let mut r = Reader::new(bytes, "LogRecord");
        while let Some((field, v)) = r.next_field()? {
            match field {
                1 => record.time = v.fixed64("LogRecord.time_unix_nano")?,
                2 => record.severity = v.int32("LogRecord.severity_number")?,
                3 => record.severity_text = v.str("LogRecord.severity_text")?,
                5 => body.push(v.bytes("LogRecord.body")?),
                6 => {
                    let (key, value) = key_value(v.bytes("LogRecord.attributes")?)?;
                    self.attributes.append_entry(key, &value);
                }
                7 => record.dropped = v.uint32("LogRecord.dropped_attributes_count")?,
                8 => record.flags = v.fixed32("LogRecord.flags")?,
                9 => record.trace_id = v.bytes("LogRecord.trace_id")?,
                10 => record.span_id = v.bytes("LogRecord.span_id")?,
                11 => record.observed = v.fixed64("LogRecord.observed_time_unix_nano")?,
                12 => record.event_name = v.str("LogRecord.event_name")?,
                _ => {}
            }
        }
        self.end_record(&record, any_value_of(&body)?, place)
    }

    /// Appends one prost `LogRecord` (what the file source builds).
    fn append_record(&mut self, record: &LogRecord, place: &Place<'_>) -> Result<()> {
        for kv in &record.attributes {
            self.attributes
                .append_entry(&kv.key, &ValueRef::of(kv.value.as_ref()));
        }
        let scalars = Scalars {
            time: record.time_unix_nano,
            observed: record.observed_time_unix_nano,
            severity: record.severity_number,
            severity_text: &record.severity_text,
            dropped: record.dropped_attributes_count,
            flags: record.flags,
            trace_id: &record.trace_id,
            span_id: &record.span_id,
            event_name: &record.event_name,
        };
        self.end_record(&scalars, ValueRef::of(record.body.as_ref()), place)
    }

    /// Ends the record whose attribute entries were appended: one value in every column.
    fn end_record(&mut self, r: &Scalars<'_>, body: ValueRef<'_>, place: &Place<'_>) -> Result<()> {
        self.time.append_value(r.time as i64);
        self.observed_time.append_value(r.observed as i64);
        self.severity_number.append_value(r.severity);
        self.severity_text.append_value(r.severity_text);
        self.append_body(body);
        self.attributes.close_row()?;
        self.dropped_attributes.append_value(r.dropped);
        self.flags.append_value(r.flags);
        append_hex_or_null(&mut self.trace_id, r.trace_id);
        append_hex_or_null(&mut self.span_id, r.span_id);
        self.event_name.append_value(r.event_name);
        self.common
            .append(place.resource, place.scope, place.scope_schema_url)
    }

    /// `body` and `body_any`: a string body as itself, any other as its rendering and its
    /// prost encoding, no body as nulls.
    fn append_body(&mut self, body: ValueRef<'_>) {
        let scalar;
        let whole: &AnyValue = match &body {
            ValueRef::Absent => {
                self.body.append_null();
                self.body_any.append_null();
                return;
            }
            ValueRef::Str(s) => {
                self.body.append_value(s);
                self.body_any.append_null();
                return;
            }
            ValueRef::Any(whole) => whole,
            other => {
                scalar = other.clone().into_any_value();
                &scalar
            }
        };
        if let Some(Value::StringValue(s)) = &whole.value {
            self.body.append_value(s);
            self.body_any.append_null();
        } else {
            self.body.append_value(any_value_to_string(whole));
            self.body_any.append_value(whole.encode_to_vec());
        }
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.time.finish()),
            Arc::new(self.observed_time.finish()),
            Arc::new(self.severity_number.finish()),
            Arc::new(self.severity_text.finish()),
            Arc::new(self.body.finish()),
            Arc::new(self.body_any.finish()),
            Arc::new(self.attributes.finish()?),
            Arc::new(self.dropped_attributes.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.event_name.finish()),
        ];
        columns.extend(self.common.finish()?);
        RecordBatch::try_new(Signal::Logs.schema(), columns).map_err(|source| Error::Arrow {
            column: Signal::Logs.table_name().to_owned(),
            source,
        })
    }
}

/// Lowercase hex of an id, null when it is empty.
fn append_hex_or_null(out: &mut StringBuilder, id: &[u8]) {
    if id.is_empty() {
        out.append_null();
    } else {
        append_hex(out, id);
    }
}
