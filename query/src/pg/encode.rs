//! Strata's Arrow answers in PostgreSQL's terms: column types, rows, and errors with their
//! SQLSTATE codes.
//!
//! Scalar columns map as `arrow-pg` maps them (timestamps with a time zone to `timestamptz`,
//! integers, floats, booleans, text, `bytea` for ids). Nested columns (the attribute maps,
//! events, links) have no PostgreSQL type a client would read, so they are
//! sent as `json`, written by arrow-json as the HTTP API writes them.

use std::sync::Arc;

use arrow::array::{ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::writer::{EncoderOptions, make_encoder};
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::FieldInfo;
use pgwire::error::{ErrorInfo, PgWireError};
use pgwire::types::format::FormatOptions;

use crate::error::QueryError;

/// Field metadata marking a column sent as `json`.
const JSON_KEY: &str = "strata.pg.json";

/// Whether a column is sent as JSON text.
fn is_nested(data_type: &DataType) -> bool {
    match data_type {
        DataType::Map(..) | DataType::Struct(_) => true,
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            matches!(
                item.data_type(),
                DataType::Map(..)
                    | DataType::Struct(_)
                    | DataType::List(_)
                    | DataType::LargeList(_)
                    | DataType::FixedSizeList(..)
            )
        }
        _ => false,
    }
}

/// The schema of the rows as sent: nested columns become text marked as JSON.
pub fn wire_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if is_nested(f.data_type()) {
                Field::new(f.name(), DataType::Utf8, true).with_metadata(
                    [(JSON_KEY.to_string(), "true".to_string())]
                        .into_iter()
                        .collect(),
                )
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// `batch` with its nested columns written as JSON text.
pub fn wire_batch(batch: &RecordBatch) -> Result<RecordBatch, QueryError> {
    if !batch
        .schema()
        .fields()
        .iter()
        .any(|f| is_nested(f.data_type()))
    {
        return Ok(batch.clone());
    }
    let options = EncoderOptions::default();
    let columns = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| {
            if !is_nested(field.data_type()) {
                return Ok(column.clone());
            }
            let mut encoder = make_encoder(field, column.as_ref(), &options)?;
            let mut out = StringBuilder::with_capacity(column.len(), column.len() * 32);
            let mut buf = Vec::with_capacity(256);
            for row in 0..column.len() {
                if encoder.is_null(row) {
                    out.append_null();
                } else {
                    buf.clear();
                    encoder.encode(row, &mut buf);
                    out.append_value(String::from_utf8_lossy(&buf));
                }
            }
            Ok(Arc::new(out.finish()) as ArrayRef)
        })
        .collect::<Result<Vec<_>, arrow::error::ArrowError>>()
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    RecordBatch::try_new(wire_schema(&batch.schema()), columns)
        .map_err(|e| QueryError::Internal(e.to_string()))
}

/// The `RowDescription` of rows in `wire`'s schema, in `format` (text or binary per column).
pub fn fields(
    wire: &Schema,
    format: &Format,
    options: Arc<FormatOptions>,
) -> Result<Vec<FieldInfo>, PgWireError> {
    let mut fields =
        arrow_pg::datatypes::arrow_schema_to_pg_fields(wire, format, Some(options.clone()))?;
    for (i, f) in wire.fields().iter().enumerate() {
        if f.metadata().contains_key(JSON_KEY) {
            // `json`'s text and binary forms are both the text itself.
            fields[i] = FieldInfo::new(
                f.name().clone(),
                None,
                None,
                Type::JSON,
                format.format_for(i),
            )
            .with_format_options(options.clone());
        }
    }
    Ok(fields)
}

/// A PostgreSQL error (severity `ERROR`) with `code` as its SQLSTATE.
pub fn error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        code.to_string(),
        message.into(),
    )))
}

/// The SQLSTATE of a planning or execution error.
pub fn datafusion_error(e: DataFusionError) -> PgWireError {
    let code = match e.find_root() {
        DataFusionError::SQL(..) => "42601",
        DataFusionError::SchemaError(err, _) => match err.as_ref() {
            datafusion::common::SchemaError::FieldNotFound { .. } => "42703",
            datafusion::common::SchemaError::AmbiguousReference { .. } => "42702",
            _ => "42P10",
        },
        DataFusionError::Plan(m) if m.contains("not found") || m.contains("doesn't exist") => {
            if m.to_ascii_lowercase().contains("table") {
                "42P01"
            } else {
                "42883"
            }
        }
        DataFusionError::Plan(_) => "42000",
        DataFusionError::NotImplemented(_) => "0A000",
        _ => return query_error(QueryError::from(e)),
    };
    error(code, e.strip_backtrace())
}

/// A query error in PostgreSQL's terms.
pub fn query_error(e: QueryError) -> PgWireError {
    let code = match &e {
        QueryError::BadRequest(_) => "42000",
        QueryError::NotFound(_) => "42P01",
        QueryError::Execution(_) => "22000",
        QueryError::Timeout(_) | QueryError::Cancelled => "57014",
        QueryError::TooLarge(_) => "54000",
        QueryError::ResourcesExhausted(_) => "53200",
        QueryError::TooMany(_) => "53000",
        QueryError::Internal(detail) => {
            tracing::error!(error = %detail, "query failed");
            return error("XX000", "internal error");
        }
    };
    error(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_schema::Signal;

    #[test]
    fn attribute_maps_and_events_are_json_and_scalars_keep_their_types() {
        let schema = Signal::Traces.schema();
        let wire = wire_schema(&schema);
        let fields = fields(
            &wire,
            &Format::UnifiedBinary,
            Arc::new(FormatOptions::default()),
        )
        .unwrap();
        let find = |name: &str| fields.iter().find(|f| f.name() == name).unwrap();
        assert_eq!(find("attributes").datatype(), &Type::JSON);
        assert_eq!(find("events").datatype(), &Type::JSON);
        assert_eq!(find("start_time").datatype(), &Type::TIMESTAMPTZ);
        assert_eq!(find("resource_attributes").datatype(), &Type::JSON);
        assert_eq!(find("trace_id").datatype(), &Type::TEXT);
        assert_eq!(find("name").datatype(), &Type::TEXT);
    }

    #[test]
    fn errors_carry_sqlstates() {
        let e = datafusion_error(DataFusionError::SQL(
            Box::new(datafusion::sql::sqlparser::parser::ParserError::ParserError("x".into())),
            None,
        ));
        let PgWireError::UserError(info) = e else {
            panic!()
        };
        assert_eq!(info.code, "42601");
        let PgWireError::UserError(info) = query_error(QueryError::Cancelled) else {
            panic!()
        };
        assert_eq!(info.code, "57014");
    }
}
