//! `ExportTraceServiceRequest` protobuf bytes straight into one `spans` batch, without prost
//! structs for the spans: every string, id and scalar attribute value goes from the request's
//! bytes into the Arrow builders. Resources and scopes, once per container, go through prost.
//!
//! Invariants:
//! - The batch equals what prost-decoding the request and converting its spans would give (the
//!   round-trip and OTLP-example tests check it through [`super::to_batch`], which encodes prost
//!   structs and calls this): same rows in wire order, same values, the same refusals of
//!   malformed bytes.
//! - With `check_ids`, a span whose trace id is not 16 bytes or whose span id is not 8 bytes, or
//!   either all zero, is left out and counted in [`Decoded::rejected`] (what the OTLP spec asks a
//!   receiver to drop); its other fields are not read.

use super::build::{Promoted, SpanScalars, SpansBuilder};
use crate::error::Result;
use crate::wire::Reader;
use crate::wire::common::{Containers, for_each_item, key_value};

const CONTAINERS: Containers = Containers {
    request: "ExportTraceServiceRequest",
    resource: "ResourceSpans",
    scope: "ScopeSpans",
};

/// A decoded export request.
pub struct Decoded {
    /// The accepted spans, one row each (possibly none).
    pub batch: arrow::array::RecordBatch,
    /// Spans left out for invalid ids.
    pub rejected: usize,
}

/// The repeated parts of the span being read; reused from one span to the next.
#[derive(Default)]
struct Scratch<'a> {
    attributes: Vec<&'a [u8]>,
    events: Vec<&'a [u8]>,
    links: Vec<&'a [u8]>,
}

/// Decodes `bytes`, an `ExportTraceServiceRequest`.
pub fn decode(bytes: &[u8], check_ids: bool) -> Result<Decoded> {
    // About 200 bytes per span on the wire for typical instrumented spans.
    let mut builder = SpansBuilder::with_capacity(bytes.len() / 200 + 1);
    let mut scratch = Scratch::default();
    let mut rejected = 0;
    for_each_item(bytes, &CONTAINERS, |span, place| {
        let scalars = span_fields(span, &mut scratch)?;
        if check_ids && !super::valid_ids(scalars.trace_id, scalars.span_id) {
            rejected += 1;
            return Ok(());
        }
        let promoted = append_parts(&scratch, &mut builder)?;
        builder.end_span(&scalars, &promoted, place)
    })?;
    Ok(Decoded {
        batch: builder.finish()?,
        rejected,
    })
}

/// Reads a span's scalar fields; its attributes, events and links are left in `scratch`.
fn span_fields<'a>(bytes: &'a [u8], scratch: &mut Scratch<'a>) -> Result<SpanScalars<'a>> {
    scratch.attributes.clear();
    scratch.events.clear();
    scratch.links.clear();
    let mut s = SpanScalars::default();
    let mut r = Reader::new(bytes, "Span");
    while let Some((field, v)) = r.next_field()? {
        match field {
            1 => s.trace_id = v.bytes("Span.trace_id")?,
            2 => s.span_id = v.bytes("Span.span_id")?,
            3 => s.trace_state = v.str("Span.trace_state")?,
            4 => s.parent_span_id = v.bytes("Span.parent_span_id")?,
            5 => s.name = v.str("Span.name")?,
            6 => s.kind = v.int32("Span.kind")?,
            7 => s.start = v.fixed64("Span.start_time_unix_nano")?,
            8 => s.end = v.fixed64("Span.end_time_unix_nano")?,
            9 => scratch.attributes.push(v.bytes("Span.attributes")?),
            10 => s.dropped_attributes = v.uint32("Span.dropped_attributes_count")?,
            11 => scratch.events.push(v.bytes("Span.events")?),
            12 => s.dropped_events = v.uint32("Span.dropped_events_count")?,
            13 => scratch.links.push(v.bytes("Span.links")?),
            14 => s.dropped_links = v.uint32("Span.dropped_links_count")?,
            15 => s.status = Some(status(v.bytes("Span.status")?, s.status)?),
            16 => s.flags = v.fixed32("Span.flags")?,
            _ => {}
        }
    }
    Ok(s)
}

/// A `Status` occurrence merged over the previous one (its fields overwrite).
fn status<'a>(bytes: &'a [u8], previous: Option<(i32, &'a str)>) -> Result<(i32, &'a str)> {
    let (mut code, mut message) = previous.unwrap_or((0, ""));
    let mut r = Reader::new(bytes, "Status");
    while let Some((field, v)) = r.next_field()? {
        match field {
            2 => message = v.str("Status.message")?,
            3 => code = v.int32("Status.code")?,
            _ => {}
        }
    }
    Ok((code, message))
}

/// Appends the attributes, events and links of the span whose parts are in `scratch`; returns
/// the values of its promoted columns.
fn append_parts<'a>(scratch: &Scratch<'a>, builder: &mut SpansBuilder) -> Result<Promoted<'a>> {
    let mut promoted = Promoted::default();
    for &kv in &scratch.attributes {
        let (key, value) = key_value(kv)?;
        builder.span_attribute(&mut promoted, key, value);
    }
    for event in &scratch.events {
        let (mut time, mut name, mut dropped) = (0, "", 0);
        let mut r = Reader::new(event, "Span.Event");
        while let Some((field, v)) = r.next_field()? {
            match field {
                1 => time = v.fixed64("Event.time_unix_nano")?,
                2 => name = v.str("Event.name")?,
                3 => {
                    let (key, value) = key_value(v.bytes("Event.attributes")?)?;
                    builder.event_attribute(key, &value);
                }
                4 => dropped = v.uint32("Event.dropped_attributes_count")?,
                _ => {}
            }
        }
        builder.end_event(time, name, dropped)?;
    }
    for link in &scratch.links {
        let (mut trace_id, mut span_id, mut trace_state): (&[u8], &[u8], &str) = (&[], &[], "");
        let (mut dropped, mut flags) = (0, 0);
        let mut r = Reader::new(link, "Span.Link");
        while let Some((field, v)) = r.next_field()? {
            match field {
                1 => trace_id = v.bytes("Link.trace_id")?,
                2 => span_id = v.bytes("Link.span_id")?,
                3 => trace_state = v.str("Link.trace_state")?,
                4 => {
                    let (key, value) = key_value(v.bytes("Link.attributes")?)?;
                    builder.link_attribute(key, &value);
                }
                5 => dropped = v.uint32("Link.dropped_attributes_count")?,
                6 => flags = v.fixed32("Link.flags")?,
                _ => {}
            }
        }
        builder.end_link(trace_id, span_id, trace_state, dropped, flags)?;
    }
    Ok(promoted)
}
