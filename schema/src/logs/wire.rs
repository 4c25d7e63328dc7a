//! `ExportLogsServiceRequest` protobuf bytes straight into one `logs` batch: strings, ids and
//! scalar values go from the request's bytes into the Arrow builders; resources, scopes and
//! non-string bodies go through prost.
//!
//! Invariant: the batch equals what prost-decoding the request and converting its records
//! would give (rows in wire order, the same refusals of malformed bytes); the round-trip and
//! OTLP-example tests check it through [`super::to_batch`], which encodes and calls [`decode`].

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, Int32Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
    UInt32Builder,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value::Value};
use prost::Message;

use crate::any_value::{AttributeMapBuilder, ValueRef, any_value_to_string};
use crate::columns::*;
use crate::datatypes::timestamp_builder;
use crate::error::{Error, Result};
use crate::hex_id::append_hex;
use crate::resource::CommonBuilder;
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
        builder.append(record, place)
    })?;
    builder.finish()
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
    fn append(&mut self, bytes: &[u8], place: &Place<'_>) -> Result<()> {
        let (mut time, mut observed, mut severity, mut severity_text) = (0u64, 0u64, 0, "");
        let (mut dropped, mut flags, mut event_name) = (0, 0, "");
        let (mut trace_id, mut span_id): (&[u8], &[u8]) = (&[], &[]);
        let mut body = Occurrences::default();
        let mut r = Reader::new(bytes, "LogRecord");
        while let Some((field, v)) = r.next_field()? {
            match field {
                1 => time = v.fixed64("LogRecord.time_unix_nano")?,
                2 => severity = v.int32("LogRecord.severity_number")?,
                3 => severity_text = v.str("LogRecord.severity_text")?,
                5 => body.push(v.bytes("LogRecord.body")?),
                6 => {
                    let (key, value) = key_value(v.bytes("LogRecord.attributes")?)?;
                    self.attributes.append_entry(key, &value);
                }
                7 => dropped = v.uint32("LogRecord.dropped_attributes_count")?,
                8 => flags = v.fixed32("LogRecord.flags")?,
                9 => trace_id = v.bytes("LogRecord.trace_id")?,
                10 => span_id = v.bytes("LogRecord.span_id")?,
                11 => observed = v.fixed64("LogRecord.observed_time_unix_nano")?,
                12 => event_name = v.str("LogRecord.event_name")?,
                _ => {}
            }
        }
        self.time.append_value(time as i64);
        self.observed_time.append_value(observed as i64);
        self.severity_number.append_value(severity);
        self.severity_text.append_value(severity_text);
        match any_value_of(&body)? {
            ValueRef::Absent => {
                self.body.append_null();
                self.body_any.append_null();
            }
            ValueRef::Str(s) => {
                self.body.append_value(s);
                self.body_any.append_null();
            }
            other => match other.into_any_value() {
                AnyValue {
                    value: Some(Value::StringValue(s)),
                } => {
                    self.body.append_value(s);
                    self.body_any.append_null();
                }
                whole => {
                    self.body.append_value(any_value_to_string(&whole));
                    self.body_any.append_value(whole.encode_to_vec());
                }
            },
        }
        self.attributes.close_row()?;
        self.dropped_attributes.append_value(dropped);
        self.flags.append_value(flags);
        append_hex_or_null(&mut self.trace_id, trace_id);
        append_hex_or_null(&mut self.span_id, span_id);
        self.event_name.append_value(event_name);
        self.common
            .append(place.resource, place.scope, place.scope_schema_url)
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
