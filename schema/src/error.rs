//! The crate's single error type.
//!
//! Invariant: every fallible function of this crate returns [`Result`]; nothing derived from
//! input (batches, bytes, strings) panics. Variants carry the column / value concerned rather
//! than a pre-formatted message.

use arrow::datatypes::DataType;
use arrow::error::ArrowError;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in `strata-schema`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A batch handed to `from_batches` lacks a required column.
    #[error("missing column `{column}`")]
    MissingColumn {
        /// The missing column's name.
        column: String,
    },
    /// A column exists but has a type that cannot be cast to the expected one.
    #[error("column `{column}` has type {actual}, which cannot be read as {expected}")]
    ColumnType {
        /// Column (or nested field) name.
        column: String,
        /// Type the schema expects.
        expected: DataType,
        /// Type found in the batch.
        actual: DataType,
        /// The cast failure, when a cast was attempted.
        #[source]
        source: Option<ArrowError>,
    },
    /// A (possibly nested) column's array is not of the Arrow array type the reader needs.
    #[error("column `{column}` holds {actual}, expected an array of {expected}")]
    UnexpectedArray {
        /// Column (or nested field) name.
        column: String,
        /// Rust array type the reader expected.
        expected: &'static str,
        /// Arrow type found.
        actual: DataType,
    },
    /// A value in a column is not acceptable (e.g. an unknown `metric_type`).
    #[error("invalid value {value:?} in column `{column}` at row {row}")]
    InvalidValue {
        /// Column name.
        column: String,
        /// Row index within its batch.
        row: usize,
        /// The offending value, rendered.
        value: String,
    },
    /// A hex id string could not be decoded.
    #[error("invalid hex id {value:?}")]
    InvalidHexId {
        /// The offending string.
        value: String,
        /// Why it is invalid.
        #[source]
        source: hex::FromHexError,
    },
    /// Protobuf bytes stored in a column (or an envelope) failed to decode.
    #[error("cannot decode protobuf `{what}`")]
    Decode {
        /// What was being decoded (a column name or message name).
        what: String,
        /// The decoder's error.
        #[source]
        source: prost::DecodeError,
    },
    /// Protobuf request bytes are malformed (see [`crate::wire`]).
    #[error("failed to decode Protobuf message: {0}")]
    Wire(#[from] crate::wire::WireError),
    /// Building an Arrow array failed.
    #[error("cannot build arrow column `{column}`")]
    Arrow {
        /// Column being built.
        column: String,
        /// Arrow's error.
        #[source]
        source: ArrowError,
    },
    /// A column would need more than `i32::MAX` child values.
    #[error("column `{column}` exceeds the 32-bit offset limit")]
    OffsetOverflow {
        /// Column name.
        column: String,
    },
    /// A signal name other than `traces`, `logs`, `metrics`.
    #[error("unknown signal {value:?} (expected traces, logs or metrics)")]
    UnknownSignal {
        /// The string that failed to parse.
        value: String,
    },
    /// A tenant id that is not 1..=64 characters of `[A-Za-z0-9_-]`.
    #[error("invalid tenant {tenant:?}: must be 1..=64 characters of [A-Za-z0-9_-]")]
    InvalidTenant {
        /// The rejected tenant id.
        tenant: String,
    },
    /// An envelope written by a format version this build does not read.
    #[error("unsupported envelope format version {version} (this build reads {supported})")]
    UnsupportedFormatVersion {
        /// Version found in the envelope.
        version: u32,
        /// The version this build supports.
        supported: u32,
    },
}
