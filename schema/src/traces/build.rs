//! The builders of a `spans` batch: one [`SpansBuilder`] per batch, fed one span at a time by
//! the protobuf decoder ([`super::wire`]), and finished into the table's columns in schema order.
//!
//! Invariants:
//! - Every `begin_*` / `append_*` sequence of a span ends in [`SpansBuilder::end_span`], which
//!   appends exactly one value to every span-level column; a span's attribute entries, events
//!   and links are appended before it, in order.
//! - Ids are written as lowercase hex of exactly their bytes (empty -> `""`), without an
//!   intermediate `String` for ids of up to 32 bytes.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int32Builder, Int64Builder, RecordBatch, StringBuilder, TimestampNanosecondBuilder,
    UInt32Builder,
};

use super::{EVENT_FIELDS, LINK_FIELDS, PROMOTED_SPAN};
use crate::any_value::{AttributeMapBuilder, ValueRef};
use crate::columns::*;
use crate::datatypes::{ListOffsets, struct_array, timestamp_builder};
use crate::error::{Error, Result};
use crate::hex_id::append_hex;
use crate::resource::CommonBuilder;
use crate::signal::Signal;
use crate::wire::common::Place;

/// The scalar fields of one span, as decoded.
#[derive(Default)]
pub(super) struct SpanScalars<'a> {
    pub trace_id: &'a [u8],
    pub span_id: &'a [u8],
    pub parent_span_id: &'a [u8],
    pub trace_state: &'a str,
    pub flags: u32,
    pub name: &'a str,
    pub kind: i32,
    pub start: u64,
    pub end: u64,
    pub dropped_attributes: u32,
    pub dropped_events: u32,
    pub dropped_links: u32,
    /// `(code, message)` when the span has a `Status`.
    pub status: Option<(i32, &'a str)>,
}

/// The first occurrence of each promoted span attribute's keys, gathered while a span's
/// attributes are appended: `keys[c][k]` is the value of the first entry named
/// `PROMOTED_SPAN[c].1[k]`.
#[derive(Default)]
pub(super) struct Promoted<'a> {
    // At most two keys per promoted column (checked below).
    keys: [[Option<ValueRef<'a>>; 2]; PROMOTED_SPAN.len()],
}

const _: () = {
    let mut c = 0;
    while c < PROMOTED_SPAN.len() {
        assert!(PROMOTED_SPAN[c].1.len() <= 2);
        c += 1;
    }
};

impl<'a> Promoted<'a> {
    fn see(&mut self, key: &str, value: &ValueRef<'a>) {
        for (c, (_, keys)) in PROMOTED_SPAN.iter().enumerate() {
            for (k, name) in keys.iter().enumerate() {
                if *name == key && self.keys[c][k].is_none() {
                    self.keys[c][k] = Some(value.clone());
                }
            }
        }
    }
}

/// Column builders of one `spans` batch.
pub(super) struct SpansBuilder {
    trace_id: StringBuilder,
    span_id: StringBuilder,
    parent_span_id: StringBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    name: StringBuilder,
    kind: Int32Builder,
    start: TimestampNanosecondBuilder,
    end: TimestampNanosecondBuilder,
    duration: Int64Builder,
    attributes: AttributeMapBuilder,
    dropped_attributes: UInt32Builder,
    events: EventsBuilder,
    dropped_events: UInt32Builder,
    links: LinksBuilder,
    dropped_links: UInt32Builder,
    status_code: Int32Builder,
    status_message: StringBuilder,
    promoted: Vec<StringBuilder>,
    common: CommonBuilder,
}

struct EventsBuilder {
    offsets: ListOffsets,
    time: TimestampNanosecondBuilder,
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

impl SpansBuilder {
    /// Builders sized for about `rows` spans.
    pub(super) fn with_capacity(rows: usize) -> Self {
        Self {
            trace_id: StringBuilder::with_capacity(rows, rows * 32),
            span_id: StringBuilder::with_capacity(rows, rows * 16),
            parent_span_id: StringBuilder::with_capacity(rows, rows * 16),
            trace_state: StringBuilder::new(),
            flags: UInt32Builder::with_capacity(rows),
            name: StringBuilder::new(),
            kind: Int32Builder::with_capacity(rows),
            start: timestamp_builder(),
            end: timestamp_builder(),
            duration: Int64Builder::with_capacity(rows),
            attributes: AttributeMapBuilder::new(ATTRIBUTES),
            dropped_attributes: UInt32Builder::with_capacity(rows),
            events: EventsBuilder {
                offsets: ListOffsets::new(EVENTS),
                time: timestamp_builder(),
                name: StringBuilder::new(),
                attributes: AttributeMapBuilder::new(EVENTS),
                dropped: UInt32Builder::new(),
                len: 0,
            },
            dropped_events: UInt32Builder::with_capacity(rows),
            links: LinksBuilder {
                offsets: ListOffsets::new(LINKS),
                trace_id: StringBuilder::new(),
                span_id: StringBuilder::new(),
                trace_state: StringBuilder::new(),
                attributes: AttributeMapBuilder::new(LINKS),
                dropped: UInt32Builder::new(),
                flags: UInt32Builder::new(),
                len: 0,
            },
            dropped_links: UInt32Builder::with_capacity(rows),
            status_code: Int32Builder::with_capacity(rows),
            status_message: StringBuilder::new(),
            promoted: PROMOTED_SPAN.iter().map(|_| StringBuilder::new()).collect(),
            common: CommonBuilder::new(),
        }
    }

    /// One entry of the current span's attributes.
    pub(super) fn span_attribute<'a>(
        &mut self,
        promoted: &mut Promoted<'a>,
        key: &str,
        value: ValueRef<'a>,
    ) {
        promoted.see(key, &value);
        self.attributes.append_entry(key, &value);
    }

    /// One entry of the current event's attributes.
    pub(super) fn event_attribute(&mut self, key: &str, value: &ValueRef<'_>) {
        self.events.attributes.append_entry(key, value);
    }

    /// Ends one event of the current span (its attributes were appended before).
    pub(super) fn end_event(&mut self, time: u64, name: &str, dropped: u32) -> Result<()> {
        let e = &mut self.events;
        e.time.append_value(time as i64);
        e.name.append_value(name);
        e.dropped.append_value(dropped);
        e.attributes.close_row()?;
        e.len += 1;
        Ok(())
    }

    /// One entry of the current link's attributes.
    pub(super) fn link_attribute(&mut self, key: &str, value: &ValueRef<'_>) {
        self.links.attributes.append_entry(key, value);
    }

    /// Ends one link of the current span (its attributes were appended before).
    pub(super) fn end_link(
        &mut self,
        trace_id: &[u8],
        span_id: &[u8],
        trace_state: &str,
        dropped: u32,
        flags: u32,
    ) -> Result<()> {
        let l = &mut self.links;
        append_hex(&mut l.trace_id, trace_id);
        append_hex(&mut l.span_id, span_id);
        l.trace_state.append_value(trace_state);
        l.dropped.append_value(dropped);
        l.flags.append_value(flags);
        l.attributes.close_row()?;
        l.len += 1;
        Ok(())
    }

    /// Ends the current span: its scalars, the promoted columns, its resource and scope.
    pub(super) fn end_span(
        &mut self,
        span: &SpanScalars<'_>,
        promoted: &Promoted<'_>,
        place: &Place<'_>,
    ) -> Result<()> {
        append_hex(&mut self.trace_id, span.trace_id);
        append_hex(&mut self.span_id, span.span_id);
        if span.parent_span_id.is_empty() {
            self.parent_span_id.append_null();
        } else {
            append_hex(&mut self.parent_span_id, span.parent_span_id);
        }
        self.trace_state.append_value(span.trace_state);
        self.flags.append_value(span.flags);
        self.name.append_value(span.name);
        self.kind.append_value(span.kind);
        self.start.append_value(span.start as i64);
        self.end.append_value(span.end as i64);
        self.duration
            .append_value((span.end as i64).wrapping_sub(span.start as i64));
        self.attributes.close_row()?;
        self.dropped_attributes
            .append_value(span.dropped_attributes);
        self.events.offsets.push(self.events.len)?;
        self.dropped_events.append_value(span.dropped_events);
        self.links.offsets.push(self.links.len)?;
        self.dropped_links.append_value(span.dropped_links);
        self.status_code.append_option(span.status.map(|s| s.0));
        self.status_message.append_option(span.status.map(|s| s.1));
        for (builder, keys) in self.promoted.iter_mut().zip(&promoted.keys) {
            // The first key present wins, as `promote` decides for resources.
            let rendered = keys
                .iter()
                .flatten()
                .any(|value| value.append_rendered(builder));
            if !rendered {
                builder.append_null();
            }
        }
        self.common
            .append(place.resource, place.scope, place.scope_schema_url)?;
        Ok(())
    }

    /// The batch, in the schema's column order.
    pub(super) fn finish(self) -> Result<RecordBatch> {
        let SpansBuilder {
            mut trace_id,
            mut span_id,
            mut parent_span_id,
            mut trace_state,
            mut flags,
            mut name,
            mut kind,
            mut start,
            mut end,
            mut duration,
            attributes,
            mut dropped_attributes,
            events: mut e,
            mut dropped_events,
            links: mut l,
            mut dropped_links,
            mut status_code,
            mut status_message,
            mut promoted,
            common,
        } = self;
        let events_values = struct_array(
            EVENTS,
            &EVENT_FIELDS,
            vec![
                Arc::new(e.time.finish()),
                Arc::new(e.name.finish()),
                Arc::new(e.attributes.finish()?),
                Arc::new(e.dropped.finish()),
            ],
        )?;
        let links_values = struct_array(
            LINKS,
            &LINK_FIELDS,
            vec![
                Arc::new(l.trace_id.finish()),
                Arc::new(l.span_id.finish()),
                Arc::new(l.trace_state.finish()),
                Arc::new(l.attributes.finish()?),
                Arc::new(l.dropped.finish()),
                Arc::new(l.flags.finish()),
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
            Arc::new(e.offsets.finish(Arc::new(events_values))?),
            Arc::new(dropped_events.finish()),
            Arc::new(l.offsets.finish(Arc::new(links_values))?),
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
}
