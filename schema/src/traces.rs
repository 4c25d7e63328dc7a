//! Spans <-> Arrow: one row per span, resource and scope denormalized (common columns as
//! described in the crate docs), table `spans`.
//!
//! Invariants:
//! - `trace_id` / `span_id` are lowercase hex of the raw bytes, any length (`""` when empty);
//!   `parent_span_id` is null when empty. Link ids are hex, `""` when empty.
//! - `status_code` / `status_message` are both null iff the span has no `Status`.
//! - Times are `u64` nanoseconds stored `as i64` (bit-exact round trip); `duration_nanos`
//!   (`end - start`, wrapping) and the promoted `http_*`, `rpc_method`, `db_system` columns are
//!   derived and ignored by [`from_batches`].
//! - [`from_batches`] regroups rows by identical resource then scope (first-seen order); a
//!   `ResourceSpans` / `ScopeSpans` without spans produces no rows and does not come back.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Int32Builder, Int64Builder, ListArray, RecordBatch, StringArray,
    StringBuilder, StructArray, TimestampNanosecondArray, UInt32Array, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Int32Type, UInt32Type};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use crate::any_value::{AttributeMapBuilder, AttributeMapReader, attribute_map_type};
use crate::columns::*;
use crate::datatypes::{
    ListOffsets, list_of, nullable_fields, struct_array, timestamp, timestamp_builder,
};
use crate::error::{Error, Result};
use crate::read::{
    BatchColumns, downcast, hex_or_empty, list_range, opt, or_default, str_or_empty, struct_field,
};
use crate::resource::{
    CommonBuilder, CommonReader, Grouper, ResourceInfo, promote, promoted_columns,
};
use crate::signal::Signal;

/// Promoted span-attribute columns and the attribute keys they copy, by priority.
const PROMOTED_SPAN: [(&str, &[&str]); 5] = [
    (HTTP_METHOD, &["http.request.method", "http.method"]),
    (
        HTTP_STATUS_CODE,
        &["http.response.status_code", "http.status_code"],
    ),
    (HTTP_ROUTE, &["http.route"]),
    (RPC_METHOD, &["rpc.method"]),
    (DB_SYSTEM, &["db.system", "db.system.name"]),
];

const EVENT_FIELDS: [&str; 4] = [TIME, NAME, ATTRIBUTES, DROPPED_ATTRIBUTES_COUNT];
const LINK_FIELDS: [&str; 6] = [
    TRACE_ID,
    SPAN_ID,
    TRACE_STATE,
    ATTRIBUTES,
    DROPPED_ATTRIBUTES_COUNT,
    FLAGS,
];

fn event_type() -> DataType {
    DataType::Struct(nullable_fields(&[
        (TIME, timestamp()),
        (NAME, DataType::Utf8),
        (ATTRIBUTES, attribute_map_type()),
        (DROPPED_ATTRIBUTES_COUNT, DataType::UInt32),
    ]))
}

fn link_type() -> DataType {
    DataType::Struct(nullable_fields(&[
        (TRACE_ID, DataType::Utf8),
        (SPAN_ID, DataType::Utf8),
        (TRACE_STATE, DataType::Utf8),
        (ATTRIBUTES, attribute_map_type()),
        (DROPPED_ATTRIBUTES_COUNT, DataType::UInt32),
        (FLAGS, DataType::UInt32),
    ]))
}

/// Fields of the `spans` table, in order.
pub(crate) fn fields() -> Vec<Field> {
    let mut fields = vec![
        Field::new(TRACE_ID, DataType::Utf8, false),
        Field::new(SPAN_ID, DataType::Utf8, false),
        Field::new(PARENT_SPAN_ID, DataType::Utf8, true),
        Field::new(TRACE_STATE, DataType::Utf8, false),
        Field::new(FLAGS, DataType::UInt32, false),
        Field::new(NAME, DataType::Utf8, false),
        Field::new(KIND, DataType::Int32, false),
        Field::new(START_TIME, timestamp(), false),
        Field::new(END_TIME, timestamp(), false),
        Field::new(DURATION_NANOS, DataType::Int64, false),
        Field::new(ATTRIBUTES, attribute_map_type(), false),
        Field::new(DROPPED_ATTRIBUTES_COUNT, DataType::UInt32, false),
        Field::new(EVENTS, list_of(event_type()), false),
        Field::new(DROPPED_EVENTS_COUNT, DataType::UInt32, false),
        Field::new(LINKS, list_of(link_type()), false),
        Field::new(DROPPED_LINKS_COUNT, DataType::UInt32, false),
        Field::new(STATUS_CODE, DataType::Int32, true),
        Field::new(STATUS_MESSAGE, DataType::Utf8, true),
    ];
    fields.extend(
        PROMOTED_SPAN
            .iter()
            .map(|(c, _)| Field::new(*c, DataType::Utf8, true)),
    );
    fields.extend(crate::resource::common_fields());
    fields
}

/// Number of spans in the request.
pub fn row_count(resource_spans: &[ResourceSpans]) -> usize {
    resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum()
}

struct EventsBuilder {
    offsets: ListOffsets,
    time: arrow::array::TimestampNanosecondBuilder,
    name: StringBuilder,
    attributes: AttributeMapBuilder,
    dropped: UInt32Builder,
    len: usize,
}

struct LinksBuilder {
    offsets: ListOffsets,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    trace_state: StringBuilder,
    attributes: AttributeMapBuilder,
    dropped: UInt32Builder,
    flags: UInt32Builder,
    len: usize,
}

/// Convert OTLP spans into one `spans` record batch (schema [`Signal::Traces`]`.schema()`).
pub fn to_batch(resource_spans: &[ResourceSpans]) -> Result<RecordBatch> {
    let rows = row_count(resource_spans);
    let mut trace_id = StringBuilder::with_capacity(rows, rows * 32);
    let mut span_id = StringBuilder::with_capacity(rows, rows * 16);
    let mut parent_span_id = StringBuilder::with_capacity(rows, rows * 16);
    let mut trace_state = StringBuilder::new();
    let mut flags = UInt32Builder::with_capacity(rows);
    let mut name = StringBuilder::new();
    let mut kind = Int32Builder::with_capacity(rows);
    let mut start = timestamp_builder();
    let mut end = timestamp_builder();
    let mut duration = Int64Builder::with_capacity(rows);
    let mut attributes = AttributeMapBuilder::new(ATTRIBUTES);
    let mut dropped_attributes = UInt32Builder::with_capacity(rows);
    let mut events = EventsBuilder {
        offsets: ListOffsets::new(EVENTS),
        time: timestamp_builder(),
        name: StringBuilder::new(),
        attributes: AttributeMapBuilder::new(EVENTS),
        dropped: UInt32Builder::new(),
        len: 0,
    };
    let mut dropped_events = UInt32Builder::with_capacity(rows);
    let mut links = LinksBuilder {
        offsets: ListOffsets::new(LINKS),
        trace_id: StringBuilder::new(),
        span_id: StringBuilder::new(),
        trace_state: StringBuilder::new(),
        attributes: AttributeMapBuilder::new(LINKS),
        dropped: UInt32Builder::new(),
        flags: UInt32Builder::new(),
        len: 0,
    };
    let mut dropped_links = UInt32Builder::with_capacity(rows);
    let mut status_code = Int32Builder::with_capacity(rows);
    let mut status_message = StringBuilder::new();
    let mut promoted: Vec<StringBuilder> =
        PROMOTED_SPAN.iter().map(|_| StringBuilder::new()).collect();
    let mut common = CommonBuilder::new();

    for rs in resource_spans {
        let resource = ResourceInfo::new(rs.resource.as_ref(), &rs.schema_url);
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                trace_id.append_value(crate::hex_id::encode(&span.trace_id));
                span_id.append_value(crate::hex_id::encode(&span.span_id));
                if span.parent_span_id.is_empty() {
                    parent_span_id.append_null();
                } else {
                    parent_span_id.append_value(crate::hex_id::encode(&span.parent_span_id));
                }
                trace_state.append_value(&span.trace_state);
                flags.append_value(span.flags);
                name.append_value(&span.name);
                kind.append_value(span.kind);
                start.append_value(span.start_time_unix_nano as i64);
                end.append_value(span.end_time_unix_nano as i64);
                duration.append_value(
                    (span.end_time_unix_nano as i64).wrapping_sub(span.start_time_unix_nano as i64),
                );
                attributes.append(&span.attributes)?;
                dropped_attributes.append_value(span.dropped_attributes_count);
                for e in &span.events {
                    events.time.append_value(e.time_unix_nano as i64);
                    events.name.append_value(&e.name);
                    events.attributes.append(&e.attributes)?;
                    events.dropped.append_value(e.dropped_attributes_count);
                }
                events.len += span.events.len();
                events.offsets.push(events.len)?;
                dropped_events.append_value(span.dropped_events_count);
                for l in &span.links {
                    links
                        .trace_id
                        .append_value(crate::hex_id::encode(&l.trace_id));
                    links
                        .span_id
                        .append_value(crate::hex_id::encode(&l.span_id));
                    links.trace_state.append_value(&l.trace_state);
                    links.attributes.append(&l.attributes)?;
                    links.dropped.append_value(l.dropped_attributes_count);
                    links.flags.append_value(l.flags);
                }
                links.len += span.links.len();
                links.offsets.push(links.len)?;
                dropped_links.append_value(span.dropped_links_count);
                status_code.append_option(span.status.as_ref().map(|s| s.code));
                status_message.append_option(span.status.as_ref().map(|s| s.message.as_str()));
                for (builder, (_, keys)) in promoted.iter_mut().zip(PROMOTED_SPAN) {
                    builder.append_option(promote(&span.attributes, keys));
                }
                common.append(&resource, ss.scope.as_ref(), &ss.schema_url)?;
            }
        }
    }

    let events_values = struct_array(
        EVENTS,
        &EVENT_FIELDS,
        vec![
            Arc::new(events.time.finish()),
            Arc::new(events.name.finish()),
            Arc::new(events.attributes.finish()?),
            Arc::new(events.dropped.finish()),
        ],
    )?;
    let links_values = struct_array(
        LINKS,
        &LINK_FIELDS,
        vec![
            Arc::new(links.trace_id.finish()),
            Arc::new(links.span_id.finish()),
            Arc::new(links.trace_state.finish()),
            Arc::new(links.attributes.finish()?),
            Arc::new(links.dropped.finish()),
            Arc::new(links.flags.finish()),
        ],
    )?;
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(trace_id.finish()),
        Arc::new(span_id.finish()),
        Arc::new(parent_span_id.finish()),
        Arc::new(trace_state.finish()),
        Arc::new(flags.finish()),
        Arc::new(name.finish()),
        Arc::new(kind.finish()),
        Arc::new(start.finish()),
        Arc::new(end.finish()),
        Arc::new(duration.finish()),
        Arc::new(attributes.finish()?),
        Arc::new(dropped_attributes.finish()),
        Arc::new(events.offsets.finish(Arc::new(events_values))?),
        Arc::new(dropped_events.finish()),
        Arc::new(links.offsets.finish(Arc::new(links_values))?),
        Arc::new(dropped_links.finish()),
        Arc::new(status_code.finish()),
        Arc::new(status_message.finish()),
    ];
    columns.extend(
        promoted
            .iter_mut()
            .map(|b| Arc::new(b.finish()) as ArrayRef),
    );
    columns.extend(common.finish()?);
    RecordBatch::try_new(Signal::Traces.schema(), columns).map_err(|source| Error::Arrow {
        column: Signal::Traces.table_name().to_owned(),
        source,
    })
}

/// Columns [`from_batches`] does not need (derived ones).
fn derived_columns() -> Vec<&'static str> {
    let mut derived = vec![DURATION_NANOS];
    derived.extend(PROMOTED_SPAN.iter().map(|(c, _)| *c));
    derived.extend(promoted_columns());
    derived
}

/// Convert `spans` record batches back to OTLP (inverse of [`to_batch`], regrouped).
pub fn from_batches(batches: &[RecordBatch]) -> Result<Vec<ResourceSpans>> {
    let schema = Signal::Traces.schema();
    let derived = derived_columns();
    let mut grouper: Grouper<Vec<Span>> = Grouper::new();
    for batch in batches {
        let cols = BatchColumns::load(batch, &schema, &derived)?;
        read_batch(&cols, &mut grouper)?;
    }
    Ok(grouper
        .finish()
        .into_iter()
        .map(|r| ResourceSpans {
            resource: r.resource,
            schema_url: r.schema_url,
            scope_spans: r
                .scopes
                .into_iter()
                .map(|s| ScopeSpans {
                    scope: s.scope,
                    spans: s.items,
                    schema_url: s.schema_url,
                })
                .collect(),
        })
        .collect())
}

fn read_batch(cols: &BatchColumns, grouper: &mut Grouper<Vec<Span>>) -> Result<()> {
    let common = CommonReader::new(cols)?;
    let trace_id: &StringArray = cols.typed(TRACE_ID)?;
    let span_id: &StringArray = cols.typed(SPAN_ID)?;
    let parent_span_id: &StringArray = cols.typed(PARENT_SPAN_ID)?;
    let trace_state: &StringArray = cols.typed(TRACE_STATE)?;
    let flags = cols.primitive::<UInt32Type>(FLAGS)?;
    let name: &StringArray = cols.typed(NAME)?;
    let kind = cols.primitive::<Int32Type>(KIND)?;
    let start: &TimestampNanosecondArray = cols.typed(START_TIME)?;
    let end: &TimestampNanosecondArray = cols.typed(END_TIME)?;
    let attributes = cols.map(ATTRIBUTES)?;
    let dropped_attributes = cols.primitive::<UInt32Type>(DROPPED_ATTRIBUTES_COUNT)?;
    let events_list: &ListArray = cols.typed(EVENTS)?;
    let events = EventsReader::new(events_list)?;
    let dropped_events = cols.primitive::<UInt32Type>(DROPPED_EVENTS_COUNT)?;
    let links_list: &ListArray = cols.typed(LINKS)?;
    let links = LinksReader::new(links_list)?;
    let dropped_links = cols.primitive::<UInt32Type>(DROPPED_LINKS_COUNT)?;
    let status_code = cols.primitive::<Int32Type>(STATUS_CODE)?;
    let status_message: &StringArray = cols.typed(STATUS_MESSAGE)?;

    for row in 0..cols.num_rows() {
        let status = (status_code.is_valid(row) || status_message.is_valid(row)).then(|| Status {
            code: or_default(status_code, row),
            message: str_or_empty(status_message, row).to_owned(),
        });
        let span = Span {
            trace_id: hex_or_empty(trace_id, row)?,
            span_id: hex_or_empty(span_id, row)?,
            trace_state: str_or_empty(trace_state, row).to_owned(),
            parent_span_id: hex_or_empty(parent_span_id, row)?,
            flags: or_default(flags, row),
            name: str_or_empty(name, row).to_owned(),
            kind: or_default(kind, row),
            start_time_unix_nano: or_default(start, row) as u64,
            end_time_unix_nano: or_default(end, row) as u64,
            attributes: attributes.get(row)?,
            dropped_attributes_count: or_default(dropped_attributes, row),
            events: list_range(events_list, row)
                .map(|j| events.get(j))
                .collect::<Result<_>>()?,
            dropped_events_count: or_default(dropped_events, row),
            links: list_range(links_list, row)
                .map(|j| links.get(j))
                .collect::<Result<_>>()?,
            dropped_links_count: or_default(dropped_links, row),
            status,
        };
        grouper.slot(&common, row)?.push(span);
    }
    Ok(())
}

struct EventsReader<'a> {
    time: &'a TimestampNanosecondArray,
    name: &'a StringArray,
    attributes: AttributeMapReader<'a>,
    dropped: &'a UInt32Array,
}

impl<'a> EventsReader<'a> {
    fn new(list: &'a ListArray) -> Result<Self> {
        let values: &StructArray = downcast(EVENTS, list.values().as_ref())?;
        Ok(Self {
            time: downcast(EVENTS, struct_field(EVENTS, values, TIME)?)?,
            name: downcast(EVENTS, struct_field(EVENTS, values, NAME)?)?,
            attributes: AttributeMapReader::new(EVENTS, struct_field(EVENTS, values, ATTRIBUTES)?)?,
            dropped: downcast(
                EVENTS,
                struct_field(EVENTS, values, DROPPED_ATTRIBUTES_COUNT)?,
            )?,
        })
    }

    fn get(&self, j: usize) -> Result<Event> {
        Ok(Event {
            time_unix_nano: opt(self.time, j).unwrap_or_default() as u64,
            name: str_or_empty(self.name, j).to_owned(),
            attributes: self.attributes.get(j)?,
            dropped_attributes_count: or_default(self.dropped, j),
        })
    }
}

struct LinksReader<'a> {
    trace_id: &'a StringArray,
    span_id: &'a StringArray,
    trace_state: &'a StringArray,
    attributes: AttributeMapReader<'a>,
    dropped: &'a UInt32Array,
    flags: &'a UInt32Array,
}

impl<'a> LinksReader<'a> {
    fn new(list: &'a ListArray) -> Result<Self> {
        let values: &StructArray = downcast(LINKS, list.values().as_ref())?;
        Ok(Self {
            trace_id: downcast(LINKS, struct_field(LINKS, values, TRACE_ID)?)?,
            span_id: downcast(LINKS, struct_field(LINKS, values, SPAN_ID)?)?,
            trace_state: downcast(LINKS, struct_field(LINKS, values, TRACE_STATE)?)?,
            attributes: AttributeMapReader::new(LINKS, struct_field(LINKS, values, ATTRIBUTES)?)?,
            dropped: downcast(
                LINKS,
                struct_field(LINKS, values, DROPPED_ATTRIBUTES_COUNT)?,
            )?,
            flags: downcast(LINKS, struct_field(LINKS, values, FLAGS)?)?,
        })
    }

    fn get(&self, j: usize) -> Result<Link> {
        Ok(Link {
            trace_id: hex_or_empty(self.trace_id, j)?,
            span_id: hex_or_empty(self.span_id, j)?,
            trace_state: str_or_empty(self.trace_state, j).to_owned(),
            attributes: self.attributes.get(j)?,
            dropped_attributes_count: or_default(self.dropped, j),
            flags: or_default(self.flags, j),
        })
    }
}
