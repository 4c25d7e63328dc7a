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
//!
//! Request bytes become a batch in [`wire`] (the protobuf walk) and [`build`] (the column
//! builders); [`read`] turns batches back into OTLP.

mod build;
mod read;
mod wire;

use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field};
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;

use crate::any_value::attribute_map_type;
use crate::columns::*;
use crate::datatypes::{list_of, nullable_fields, timestamp};
use crate::error::Result;

pub use read::from_batches;
pub use wire::Decoded;

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

/// Convert OTLP spans into one `spans` record batch (schema [`Signal::Traces`]`.schema()`).
///
/// The spans are encoded as an export request and decoded by [`decode`], the one conversion of
/// spans to Arrow; ids of any length are kept.
pub fn to_batch(resource_spans: &[ResourceSpans]) -> Result<RecordBatch> {
    let mut bytes = Vec::new();
    for rs in resource_spans {
        prost::encoding::message::encode(1, rs, &mut bytes);
    }
    Ok(wire::decode(&bytes, false)?.batch)
}

/// Whether a span's ids are what the OTLP spec asks of them: a 16-byte trace id and an 8-byte
/// span id, neither all zero. Receivers drop spans without them.
pub fn valid_ids(trace_id: &[u8], span_id: &[u8]) -> bool {
    let valid = |id: &[u8], len| id.len() == len && id.iter().any(|&b| b != 0);
    valid(trace_id, 16) && valid(span_id, 8)
}

/// Decode an `ExportTraceServiceRequest`'s protobuf bytes into one `spans` batch, leaving out
/// (and counting) spans with invalid ids as the OTLP spec asks a receiver to.
pub fn decode(bytes: &[u8]) -> Result<Decoded> {
    wire::decode(bytes, true)
}
