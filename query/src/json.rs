//! Arrow batches to the SQL API's JSON shape:
//! `{"columns":[{"name":..,"type":..}],"rows":[[v, v, ...], ...]}`.
//!
//! Values are written straight from the arrays with arrow-json's encoders (no intermediate
//! `serde_json::Value` per cell): nulls as `null`, maps and structs as objects, lists as arrays,
//! timestamps as RFC 3339 strings.

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::json::writer::{EncoderOptions, make_encoder};

pub fn to_json(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"columns\":[");
    for (i, f) in schema.fields().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let col = serde_json::json!({"name": f.name(), "type": f.data_type().to_string()});
        out.extend_from_slice(col.to_string().as_bytes());
    }
    out.extend_from_slice(b"],\"rows\":[");
    let options = EncoderOptions::default().with_explicit_nulls(true);
    let mut first_row = true;
    for batch in batches {
        let fields = batch.schema().fields().clone();
        let mut encoders = fields
            .iter()
            .zip(batch.columns())
            .map(|(f, a)| make_encoder(f, a.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            if !first_row {
                out.push(b',');
            }
            first_row = false;
            out.push(b'[');
            for (i, enc) in encoders.iter_mut().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                if enc.is_null(row) {
                    out.extend_from_slice(b"null");
                } else {
                    enc.encode(row, &mut out);
                }
            }
            out.push(b']');
        }
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn rows_are_arrays_in_column_order() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("b", DataType::Utf8, true),
            Field::new("a", DataType::Int64, true),
            Field::new("f", DataType::Float64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("x\"y"), None])),
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(Float64Array::from(vec![1.5, 2.0])),
            ],
        )
        .unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&to_json(&schema, &[batch.clone(), batch]).unwrap()).unwrap();
        assert_eq!(v["columns"][0]["name"], "b");
        assert_eq!(v["columns"][1]["type"], "Int64");
        assert_eq!(v["rows"].as_array().unwrap().len(), 4);
        assert_eq!(v["rows"][0], serde_json::json!(["x\"y", 1, 1.5]));
        assert_eq!(v["rows"][1], serde_json::json!([null, 2, 2.0]));
    }

    #[test]
    fn empty_result_has_columns_and_no_rows() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let v: serde_json::Value = serde_json::from_slice(&to_json(&schema, &[]).unwrap()).unwrap();
        assert_eq!(v["rows"], serde_json::json!([]));
    }
}
