//! Access to the columns of a record batch being converted back to OTLP.
//!
//! Invariants: columns are looked up by name (order and extra columns do not matter); a column
//! whose type differs from the signal schema (dictionary / view / large strings, view binaries,
//! differently named map fields, ...) is cast with `arrow::compute::cast` to the schema's type
//! first, so readers only ever see the exact schema types. Derived columns are never read (and
//! may be absent); every other schema column is required.

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, AsArray, GenericListArray, PrimitiveArray, RecordBatch};
use arrow::datatypes::{ArrowPrimitiveType, Schema};

use crate::any_value::AttributeMapReader;
use crate::error::{Error, Result};

/// Downcast `array` to `T`, reporting `column` on mismatch.
pub(crate) fn downcast<'a, T: Array + 'static>(
    column: &str,
    array: &'a dyn Array,
) -> Result<&'a T> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| Error::UnexpectedArray {
            column: column.to_owned(),
            expected: std::any::type_name::<T>(),
            actual: array.data_type().clone(),
        })
}

/// The columns of one batch, cast to the signal schema's types.
pub(crate) struct BatchColumns {
    columns: HashMap<String, ArrayRef>,
    num_rows: usize,
}

impl BatchColumns {
    /// Load every column of `schema` from `batch`, except the `skip` (derived) ones.
    pub(crate) fn load(batch: &RecordBatch, schema: &Schema, skip: &[&str]) -> Result<Self> {
        let mut columns = HashMap::with_capacity(schema.fields().len());
        for field in schema.fields() {
            if skip.contains(&field.name().as_str()) {
                continue;
            }
            let Some(array) = batch.column_by_name(field.name()) else {
                return Err(Error::MissingColumn {
                    column: field.name().clone(),
                });
            };
            let array = if array.data_type() == field.data_type() {
                array.clone()
            } else {
                arrow::compute::cast(array, field.data_type()).map_err(|source| {
                    Error::ColumnType {
                        column: field.name().clone(),
                        expected: field.data_type().clone(),
                        actual: array.data_type().clone(),
                        source: Some(source),
                    }
                })?
            };
            columns.insert(field.name().clone(), array);
        }
        Ok(Self {
            columns,
            num_rows: batch.num_rows(),
        })
    }

    pub(crate) fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// A loaded column (as cast to the schema type).
    pub(crate) fn array(&self, name: &str) -> Result<&dyn Array> {
        self.columns
            .get(name)
            .map(|a| a.as_ref())
            .ok_or_else(|| Error::MissingColumn {
                column: name.to_owned(),
            })
    }

    pub(crate) fn typed<T: Array + 'static>(&self, name: &str) -> Result<&T> {
        downcast(name, self.array(name)?)
    }

    pub(crate) fn primitive<T: ArrowPrimitiveType>(
        &self,
        name: &str,
    ) -> Result<&PrimitiveArray<T>> {
        self.typed(name)
    }

    pub(crate) fn map<'a>(&'a self, name: &'a str) -> Result<AttributeMapReader<'a>> {
        AttributeMapReader::new(name, self.array(name)?)
    }
}

/// `Some(value)` unless the slot is null.
pub(crate) fn opt<T: ArrowPrimitiveType>(array: &PrimitiveArray<T>, i: usize) -> Option<T::Native> {
    array.is_valid(i).then(|| array.value(i))
}

/// The value, or the type's default when null.
pub(crate) fn or_default<T: ArrowPrimitiveType>(array: &PrimitiveArray<T>, i: usize) -> T::Native {
    if array.is_valid(i) {
        array.value(i)
    } else {
        T::Native::default()
    }
}

/// A nullable string slot.
pub(crate) fn opt_str(array: &arrow::array::StringArray, i: usize) -> Option<&str> {
    array.is_valid(i).then(|| array.value(i))
}

/// A string slot, `""` when null.
pub(crate) fn str_or_empty(array: &arrow::array::StringArray, i: usize) -> &str {
    opt_str(array, i).unwrap_or_default()
}

/// A nullable binary slot.
pub(crate) fn opt_bin(array: &arrow::array::BinaryArray, i: usize) -> Option<&[u8]> {
    array.is_valid(i).then(|| array.value(i))
}

/// Hex id from a nullable string slot; null and `""` both give no bytes.
pub(crate) fn hex_or_empty(array: &arrow::array::StringArray, i: usize) -> Result<Vec<u8>> {
    crate::hex_id::decode(str_or_empty(array, i))
}

/// Index range of the children of list row `i` (empty for a null row).
pub(crate) fn list_range(list: &GenericListArray<i32>, i: usize) -> std::ops::Range<usize> {
    if list.is_null(i) {
        return 0..0;
    }
    let offsets = list.value_offsets();
    offsets[i] as usize..offsets[i + 1] as usize
}

/// The values of a `List<primitive>` row (empty for a null row; null items read as default).
pub(crate) fn primitive_list<T: ArrowPrimitiveType>(
    column: &str,
    list: &GenericListArray<i32>,
    i: usize,
) -> Result<Vec<T::Native>> {
    let values = list
        .values()
        .as_primitive_opt::<T>()
        .ok_or_else(|| Error::ColumnType {
            column: column.to_owned(),
            expected: T::DATA_TYPE,
            actual: list.values().data_type().clone(),
            source: None,
        })?;
    Ok(list_range(list, i).map(|j| or_default(values, j)).collect())
}

/// A child field of a struct array.
pub(crate) fn struct_field<'a>(
    parent: &str,
    array: &'a arrow::array::StructArray,
    name: &str,
) -> Result<&'a dyn Array> {
    array
        .column_by_name(name)
        .map(|a| a.as_ref())
        .ok_or_else(|| Error::MissingColumn {
            column: format!("{parent}.{name}"),
        })
}
