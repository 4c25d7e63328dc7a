//! Strata's shared schema crate: the Arrow schemas of the three signal tables, their column
//! names, the OTLP -> Arrow builders and their inverses, and the envelope that travels with a
//! batch from agent to collector. Spans go from an export request's protobuf bytes straight into
//! the builders ([`traces::decode`], over the wire reader in [`wire`]); logs and metrics go
//! through prost's structs.
//!
//! Invariants:
//! - One row per span / log record / metric data point; the resource and the instrumentation
//!   scope are denormalized onto every row.
//! - `traces::to_batch`, `logs::to_batch` and `metrics::to_batch` produce batches whose schema is
//!   exactly (`Arc`-equal contents of) [`Signal::schema`].
//! - `from_batches` is the inverse of `to_batch` up to regrouping: rows are grouped by identical
//!   resource (and resource schema URL), then by identical scope (and scope schema URL), in
//!   first-seen order; containers without rows disappear (see each module's docs).
//! - Derived columns (promoted `service_name`, `http_method`, ..., `duration_nanos`,
//!   `series_id`) are copies computed from the data and are ignored when converting back.
//! - Common columns (every table): a missing `Resource` is null `resource_attributes`,
//!   `resource_dropped_attributes_count` and `resource_entity_refs`; a missing
//!   `InstrumentationScope` is null `scope_name`, `scope_version`, `scope_attributes` and
//!   `scope_dropped_attributes_count`; empty schema URLs are null. Promoted columns
//!   (`service_name`, ..., `k8s_deployment_name`) copy the first matching resource attribute.
//! - Attribute maps use the layout of [`attribute_map_type`] (see [`any_value`]).
//! - This crate does no I/O and has no async runtime.

pub mod any_value;
pub mod columns;
pub mod envelope;
pub mod hex_id;
pub mod ipc;
pub mod logs;
pub mod memory;
pub mod metrics;
pub mod remote_write;
pub mod signal;
pub mod text;
pub mod traces;
pub mod value_length;
pub mod wire;

mod datatypes;
mod error;
mod read;
mod resource;

pub use any_value::{any_value_to_string, attribute_map_type};
pub use envelope::{DEFAULT_TENANT, ENVELOPE_FORMAT_VERSION, Envelope, validate_tenant};
pub use error::{Error, Result};
pub use signal::Signal;
