//! `spans` batches back to OTLP ([`from_batches`], the inverse of [`super::to_batch`] up to
//! regrouping by resource and scope).

use arrow::array::{
    Array, ListArray, RecordBatch, StringArray, StructArray, TimestampNanosecondArray, UInt32Array,
};
use arrow::datatypes::{Int32Type, UInt32Type};
use opentelemetry_proto::tonic::trace::v1::span::{Event, Link};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::PROMOTED_SPAN;
use crate::any_value::AttributeMapReader;
use crate::columns::*;
use crate::error::Result;
use crate::read::{
    BatchColumns, downcast, hex_or_empty, list_range, opt, or_default, str_or_empty, struct_field,
};
use crate::resource::{CommonReader, Grouper, promoted_columns};
use crate::signal::Signal;

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
