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

use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
use opentelemetry_proto::tonic::resource::v1::Resource;

use super::build::{Promoted, SpanScalars, SpansBuilder};
use crate::error::Result;
use crate::resource::ResourceInfo;
use crate::wire::common::{decode_merged, key_value};
use crate::wire::{Occurrences, Reader};

/// A decoded export request.
pub struct Decoded {
    /// The accepted spans, one row each (possibly none).
    pub batch: arrow::array::RecordBatch,
    /// Spans left out for invalid ids.
    pub rejected: usize,
}

/// Containers of the request being walked; reused from one container to the next.
#[derive(Default)]
struct Scratch<'a> {
    scope_spans: Vec<&'a [u8]>,
    spans: Vec<&'a [u8]>,
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
    let mut r = Reader::new(bytes, "ExportTraceServiceRequest");
    while let Some((field, v)) = r.next_field()? {
        if field == 1 {
            let rs = v.bytes("ExportTraceServiceRequest.resource_spans")?;
            rejected += resource_spans(rs, check_ids, &mut builder, &mut scratch)?;
        }
    }
    Ok(Decoded {
        batch: builder.finish()?,
        rejected,
    })
}

fn resource_spans<'a>(
    bytes: &'a [u8],
    check_ids: bool,
    builder: &mut SpansBuilder,
    scratch: &mut Scratch<'a>,
) -> Result<usize> {
    let mut resource = Occurrences::default();
    let mut schema_url = "";
    let mut scope_spans = std::mem::take(&mut scratch.scope_spans);
    scope_spans.clear();
    let mut r = Reader::new(bytes, "ResourceSpans");
    while let Some((field, v)) = r.next_field()? {
        match field {
            1 => resource.push(v.bytes("ResourceSpans.resource")?),
            2 => scope_spans.push(v.bytes("ResourceSpans.scope_spans")?),
            3 => schema_url = v.str("ResourceSpans.schema_url")?,
            _ => {}
        }
    }
    let resource: Option<Resource> = decode_merged("Resource", &resource)?;
    let info = ResourceInfo::new(resource.as_ref(), schema_url);
    let mut rejected = 0;
    for ss in &scope_spans {
        rejected += scope_spans_of(ss, check_ids, &info, builder, scratch)?;
    }
    scratch.scope_spans = scope_spans;
    Ok(rejected)
}

fn scope_spans_of<'a>(
    bytes: &'a [u8],
    check_ids: bool,
    resource: &ResourceInfo<'_>,
    builder: &mut SpansBuilder,
    scratch: &mut Scratch<'a>,
) -> Result<usize> {
    let mut scope = Occurrences::default();
    let mut schema_url = "";
    let mut spans = std::mem::take(&mut scratch.spans);
    spans.clear();
    let mut r = Reader::new(bytes, "ScopeSpans");
    while let Some((field, v)) = r.next_field()? {
        match field {
            1 => scope.push(v.bytes("ScopeSpans.scope")?),
            2 => spans.push(v.bytes("ScopeSpans.spans")?),
            3 => schema_url = v.str("ScopeSpans.schema_url")?,
            _ => {}
        }
    }
    let scope: Option<InstrumentationScope> = decode_merged("InstrumentationScope", &scope)?;
    let mut rejected = 0;
    for &span in &spans {
        let scalars = span_fields(span, scratch)?;
        if check_ids && !(valid_id(scalars.trace_id, 16) && valid_id(scalars.span_id, 8)) {
            rejected += 1;
            continue;
        }
        let promoted = append_parts(scratch, builder)?;
        builder.end_span(&scalars, &promoted, resource, scope.as_ref(), schema_url)?;
    }
    scratch.spans = spans;
    Ok(rejected)
}

fn valid_id(id: &[u8], len: usize) -> bool {
    id.len() == len && id.iter().any(|&b| b != 0)
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
