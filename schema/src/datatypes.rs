//! Small constructors for the Arrow data types shared by the three schemas.
//!
//! Invariant: every timestamp is `Timestamp(Nanosecond, "UTC")` and every list's item field is
//! the conventional nullable `item`, so schemas built here compare equal to what the builders
//! produce and to what Parquet hands back.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, Fields, TimeUnit};

/// Time zone of every timestamp column.
pub(crate) const UTC: &str = "UTC";

/// `Timestamp(Nanosecond, Some("UTC"))`.
pub(crate) fn timestamp() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some(UTC.into()))
}

/// The item field of a list of `item`.
pub(crate) fn list_item(item: DataType) -> FieldRef {
    Arc::new(Field::new("item", item, true))
}

/// `List<item>` with a nullable `item` field.
pub(crate) fn list_of(item: DataType) -> DataType {
    DataType::List(list_item(item))
}

/// Fields of a struct, all nullable.
pub(crate) fn nullable_fields(fields: &[(&str, DataType)]) -> Fields {
    fields
        .iter()
        .map(|(name, dt)| Field::new(*name, dt.clone(), true))
        .collect()
}

/// Offsets (and validity) of a list column being built alongside its flattened child values.
pub(crate) struct ListOffsets {
    column: &'static str,
    offsets: Vec<i32>,
    validity: arrow::array::builder::NullBufferBuilder,
}

impl ListOffsets {
    pub(crate) fn new(column: &'static str) -> Self {
        Self {
            column,
            offsets: vec![0],
            validity: arrow::array::builder::NullBufferBuilder::new(0),
        }
    }

    fn push_end(&mut self, child_len: usize) -> crate::Result<()> {
        let end = i32::try_from(child_len).map_err(|_| crate::Error::OffsetOverflow {
            column: self.column.to_owned(),
        })?;
        self.offsets.push(end);
        Ok(())
    }

    /// Close a non-null row whose children end at `child_len` (total children appended so far).
    pub(crate) fn push(&mut self, child_len: usize) -> crate::Result<()> {
        self.push_end(child_len)?;
        self.validity.append_non_null();
        Ok(())
    }

    /// Append a null row.
    pub(crate) fn push_null(&mut self) -> crate::Result<()> {
        let end = self.offsets.last().copied().unwrap_or_default();
        self.offsets.push(end);
        self.validity.append_null();
        Ok(())
    }

    /// The finished `List<item>` array over `values`.
    pub(crate) fn finish(
        mut self,
        values: arrow::array::ArrayRef,
    ) -> crate::Result<arrow::array::ListArray> {
        let offsets = arrow::buffer::OffsetBuffer::new(arrow::buffer::ScalarBuffer::from(
            std::mem::take(&mut self.offsets),
        ));
        arrow::array::ListArray::try_new(
            list_item(values.data_type().clone()),
            offsets,
            values,
            self.validity.finish(),
        )
        .map_err(|source| crate::Error::Arrow {
            column: self.column.to_owned(),
            source,
        })
    }
}

/// A struct array without nulls over `arrays`, with nullable fields named `names`.
pub(crate) fn struct_array(
    column: &'static str,
    names: &[&str],
    arrays: Vec<arrow::array::ArrayRef>,
) -> crate::Result<arrow::array::StructArray> {
    let fields: Fields = names
        .iter()
        .zip(&arrays)
        .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
        .collect();
    arrow::array::StructArray::try_new(fields, arrays, None).map_err(|source| crate::Error::Arrow {
        column: column.to_owned(),
        source,
    })
}

/// A timestamp builder producing `Timestamp(Nanosecond, "UTC")`.
pub(crate) fn timestamp_builder() -> arrow::array::TimestampNanosecondBuilder {
    arrow::array::TimestampNanosecondBuilder::new().with_timezone(UTC)
}
