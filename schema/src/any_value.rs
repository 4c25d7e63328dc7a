//! Typed attribute maps: OTLP `KeyValue` lists stored as Arrow
//! `Map<Utf8 key, Struct{str, int, double, bool, bytes, any}>`, plus a human rendering of
//! `AnyValue`.
//!
//! Layout and invariants:
//! - The map's entries struct is named `entries` with fields `key` (non-null Utf8) and `value`
//!   (a struct whose six fields are all nullable), so DataFusion SQL such as
//!   `attributes['http.method']['str']` works. Keys are not sorted; entry order and duplicate
//!   keys are preserved.
//! - At most one value field is set per entry: scalar values go to `str`/`int`/`double`/`bool`/
//!   `bytes`; anything else (arrays, kvlists, string-table indices, and an `AnyValue` with no
//!   value set) is prost-encoded into `any`. A `KeyValue` whose `value` is `None` has all six
//!   fields null and decodes back to `value: None`.
//! - `KeyValue::key_strindex` (profiles only) is not stored.

use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};

use arrow::array::builder::NullBufferBuilder;
use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder, Float64Array,
    Float64Builder, Int64Array, Int64Builder, MapArray, StringArray, StringBuilder, StructArray,
};
use arrow::buffer::{OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{DataType, Field, FieldRef, Fields};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use prost::Message;

use crate::columns::{
    ATTR_ANY, ATTR_BOOL, ATTR_BYTES, ATTR_DOUBLE, ATTR_INT, ATTR_STR, MAP_ENTRIES, MAP_KEY,
    MAP_VALUE,
};
use crate::error::{Error, Result};

static VALUE_FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    crate::datatypes::nullable_fields(&[
        (ATTR_STR, DataType::Utf8),
        (ATTR_INT, DataType::Int64),
        (ATTR_DOUBLE, DataType::Float64),
        (ATTR_BOOL, DataType::Boolean),
        (ATTR_BYTES, DataType::Binary),
        (ATTR_ANY, DataType::Binary),
    ])
});

static ENTRY_FIELDS: LazyLock<Fields> = LazyLock::new(|| {
    Fields::from(vec![
        Field::new(MAP_KEY, DataType::Utf8, false),
        Field::new(MAP_VALUE, DataType::Struct(VALUE_FIELDS.clone()), true),
    ])
});

static ENTRIES_FIELD: LazyLock<FieldRef> = LazyLock::new(|| {
    Arc::new(Field::new(
        MAP_ENTRIES,
        DataType::Struct(ENTRY_FIELDS.clone()),
        false,
    ))
});

/// A `KeyValue` of a string value: how labels of other protocols become OTLP attributes, and
/// the usual attribute in tests and generated inputs.
pub fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// A `KeyValue` of any value.
pub fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// A JSON value as an attribute value, the way receivers of JSON protocols keep fields:
/// strings, booleans and numbers as themselves (integers as ints), arrays as arrays of their
/// values, objects as their JSON text; `null` is no value.
pub fn from_json(v: &serde_json::Value) -> Option<AnyValue> {
    let value = match v {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(b) => Value::BoolValue(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::IntValue(i),
            None => Value::DoubleValue(n.as_f64()?),
        },
        serde_json::Value::String(s) => Value::StringValue(s.clone()),
        serde_json::Value::Array(items) => {
            Value::ArrayValue(opentelemetry_proto::tonic::common::v1::ArrayValue {
                values: items.iter().filter_map(from_json).collect(),
            })
        }
        serde_json::Value::Object(_) => Value::StringValue(v.to_string()),
    };
    Some(AnyValue { value: Some(value) })
}

/// The Arrow type of every attribute map column:
/// `Map<entries: Struct<key: Utf8, value: Struct<str, int, double, bool, bytes, any>>>`, unsorted.
pub fn attribute_map_type() -> DataType {
    DataType::Map(ENTRIES_FIELD.clone(), false)
}

/// Render an `AnyValue` for humans: strings as-is, numbers and bools via `Display`, bytes as
/// lowercase hex, arrays and kvlists as compact JSON-like text (`[1,"a"]`, `{"k":true}`), an
/// unset value as the empty string.
pub fn any_value_to_string(value: &AnyValue) -> String {
    match &value.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(_) => {
            let mut out = String::new();
            render(&mut out, value, false);
            out
        }
        None => String::new(),
    }
}

fn render(out: &mut String, value: &AnyValue, quote_strings: bool) {
    match &value.value {
        None => out.push_str("null"),
        Some(Value::StringValue(s)) if quote_strings => push_json_string(out, s),
        Some(Value::StringValue(s)) => out.push_str(s),
        Some(Value::BoolValue(b)) => {
            let _ = write!(out, "{b}");
        }
        Some(Value::IntValue(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::DoubleValue(d)) => {
            let _ = write!(out, "{d}");
        }
        Some(Value::BytesValue(b)) if quote_strings => push_json_string(out, &hex::encode(b)),
        Some(Value::BytesValue(b)) => out.push_str(&hex::encode(b)),
        Some(Value::StringValueStrindex(i)) => {
            let _ = write!(out, "strindex:{i}");
        }
        Some(Value::ArrayValue(array)) => {
            out.push('[');
            for (i, v) in array.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                render(out, v, true);
            }
            out.push(']');
        }
        Some(Value::KvlistValue(list)) => {
            out.push('{');
            for (i, kv) in list.values.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_json_string(out, &kv.key);
                out.push(':');
                match &kv.value {
                    Some(v) => render(out, v, true),
                    None => out.push_str("null"),
                }
            }
            out.push('}');
        }
    }
}

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// First value of `key` in `attributes`, rendered with [`any_value_to_string`]; `None` when the
/// key is absent or its value is unset.
pub(crate) fn find_rendered(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .map(any_value_to_string)
}

/// One attribute value as the map builder takes it: a scalar borrowed from where it was decoded
/// (the fast path of the protobuf decoder), or a whole `AnyValue` (prost's types, or a value the
/// decoder could not take apart, such as an array or a kvlist).
#[derive(Debug, Clone)]
pub(crate) enum ValueRef<'a> {
    /// The `KeyValue` had no value.
    Absent,
    Str(&'a str),
    Int(i64),
    Double(f64),
    Bool(bool),
    Bytes(&'a [u8]),
    Any(std::borrow::Cow<'a, AnyValue>),
}

impl<'a> ValueRef<'a> {
    /// The value of a prost `KeyValue`.
    pub(crate) fn of(value: Option<&'a AnyValue>) -> Self {
        value.map_or(ValueRef::Absent, |v| {
            ValueRef::Any(std::borrow::Cow::Borrowed(v))
        })
    }

    /// The value as a prost `AnyValue` (an absent one as an `AnyValue` without a value).
    pub(crate) fn into_any_value(self) -> AnyValue {
        let value = match self {
            ValueRef::Absent => None,
            ValueRef::Str(s) => Some(Value::StringValue(s.to_owned())),
            ValueRef::Int(i) => Some(Value::IntValue(i)),
            ValueRef::Double(d) => Some(Value::DoubleValue(d)),
            ValueRef::Bool(b) => Some(Value::BoolValue(b)),
            ValueRef::Bytes(b) => Some(Value::BytesValue(b.to_vec())),
            ValueRef::Any(v) => return v.into_owned(),
        };
        AnyValue { value }
    }

    /// Appends the value rendered as [`any_value_to_string`] does, as one row of `out`; appends
    /// nothing and returns false when the value is absent.
    pub(crate) fn append_rendered(&self, out: &mut StringBuilder) -> bool {
        match self {
            ValueRef::Absent => return false,
            ValueRef::Str(s) => out.append_value(s),
            ValueRef::Int(i) => {
                let _ = write!(out, "{i}");
                out.append_value("");
            }
            ValueRef::Double(d) => {
                let _ = write!(out, "{d}");
                out.append_value("");
            }
            ValueRef::Bool(b) => out.append_value(if *b { "true" } else { "false" }),
            ValueRef::Bytes(b) => out.append_value(hex::encode(b)),
            ValueRef::Any(v) => out.append_value(any_value_to_string(v)),
        }
        true
    }
}

/// Appends `KeyValue` lists as rows of an attribute map column.
pub(crate) struct AttributeMapBuilder {
    column: &'static str,
    offsets: Vec<i32>,
    validity: NullBufferBuilder,
    keys: StringBuilder,
    str_: StringBuilder,
    int: Int64Builder,
    double: Float64Builder,
    boolean: BooleanBuilder,
    bytes: BinaryBuilder,
    any: BinaryBuilder,
}

impl AttributeMapBuilder {
    pub(crate) fn new(column: &'static str) -> Self {
        Self {
            column,
            offsets: vec![0],
            validity: NullBufferBuilder::new(0),
            keys: StringBuilder::new(),
            str_: StringBuilder::new(),
            int: Int64Builder::new(),
            double: Float64Builder::new(),
            boolean: BooleanBuilder::new(),
            bytes: BinaryBuilder::new(),
            any: BinaryBuilder::new(),
        }
    }

    /// Append one row holding `attributes` in order.
    pub(crate) fn append(&mut self, attributes: &[KeyValue]) -> Result<()> {
        for kv in attributes {
            self.append_entry(&kv.key, &ValueRef::of(kv.value.as_ref()));
        }
        self.close_row()
    }

    /// Append one entry to the row being built; [`Self::close_row`] ends the row.
    pub(crate) fn append_entry(&mut self, key: &str, value: &ValueRef<'_>) {
        self.keys.append_value(key);
        self.append_value(value);
    }

    /// End a non-null row holding the entries appended since the last row.
    pub(crate) fn close_row(&mut self) -> Result<()> {
        self.push_offset()?;
        self.validity.append_non_null();
        Ok(())
    }

    /// Append one null row.
    pub(crate) fn append_null(&mut self) -> Result<()> {
        self.push_offset()?;
        self.validity.append_null();
        Ok(())
    }

    fn push_offset(&mut self) -> Result<()> {
        let end = i32::try_from(arrow::array::ArrayBuilder::len(&self.keys)).map_err(|_| {
            Error::OffsetOverflow {
                column: self.column.to_owned(),
            }
        })?;
        self.offsets.push(end);
        Ok(())
    }

    fn append_value(&mut self, value: &ValueRef<'_>) {
        let (mut s, mut i, mut d, mut b, mut by, mut any) = (None, None, None, None, None, None);
        match value {
            ValueRef::Absent => {}
            ValueRef::Str(v) => s = Some(*v),
            ValueRef::Int(v) => i = Some(*v),
            ValueRef::Double(v) => d = Some(*v),
            ValueRef::Bool(v) => b = Some(*v),
            ValueRef::Bytes(v) => by = Some(*v),
            ValueRef::Any(whole) => match &whole.value {
                Some(Value::StringValue(v)) => s = Some(v.as_str()),
                Some(Value::IntValue(v)) => i = Some(*v),
                Some(Value::DoubleValue(v)) => d = Some(*v),
                Some(Value::BoolValue(v)) => b = Some(*v),
                Some(Value::BytesValue(v)) => by = Some(v.as_slice()),
                _ => any = Some(whole.encode_to_vec()),
            },
        }
        self.str_.append_option(s);
        self.int.append_option(i);
        self.double.append_option(d);
        self.boolean.append_option(b);
        self.bytes.append_option(by);
        self.any.append_option(any);
    }

    pub(crate) fn finish(mut self) -> Result<MapArray> {
        let arrow_err = |source| Error::Arrow {
            column: self.column.to_owned(),
            source,
        };
        let values: Vec<ArrayRef> = vec![
            Arc::new(self.str_.finish()),
            Arc::new(self.int.finish()),
            Arc::new(self.double.finish()),
            Arc::new(self.boolean.finish()),
            Arc::new(self.bytes.finish()),
            Arc::new(self.any.finish()),
        ];
        let values = StructArray::try_new(VALUE_FIELDS.clone(), values, None).map_err(arrow_err)?;
        let entries = StructArray::try_new(
            ENTRY_FIELDS.clone(),
            vec![Arc::new(self.keys.finish()), Arc::new(values)],
            None,
        )
        .map_err(arrow_err)?;
        let offsets = OffsetBuffer::new(ScalarBuffer::from(std::mem::take(&mut self.offsets)));
        MapArray::try_new(
            ENTRIES_FIELD.clone(),
            offsets,
            entries,
            self.validity.finish(),
            false,
        )
        .map_err(arrow_err)
    }
}

/// Reads rows of an attribute map column (already cast to [`attribute_map_type`]) back into
/// `KeyValue` lists.
pub(crate) struct AttributeMapReader<'a> {
    column: &'a str,
    map: &'a MapArray,
    keys: &'a StringArray,
    str_: &'a StringArray,
    int: &'a Int64Array,
    double: &'a Float64Array,
    boolean: &'a BooleanArray,
    bytes: &'a BinaryArray,
    any: &'a BinaryArray,
}

impl<'a> AttributeMapReader<'a> {
    pub(crate) fn new(column: &'a str, array: &'a dyn Array) -> Result<Self> {
        let map: &MapArray = crate::read::downcast(column, array)?;
        let entries = map.entries();
        let keys = crate::read::downcast(column, entries.column(0).as_ref())?;
        let values: &StructArray = crate::read::downcast(column, entries.column(1).as_ref())?;
        let field = |name: &str| -> Result<&'a dyn Array> {
            values
                .column_by_name(name)
                .map(|a| a.as_ref())
                .ok_or_else(|| Error::MissingColumn {
                    column: format!("{column}.{MAP_VALUE}.{name}"),
                })
        };
        Ok(Self {
            column,
            map,
            keys,
            str_: crate::read::downcast(column, field(ATTR_STR)?)?,
            int: crate::read::downcast(column, field(ATTR_INT)?)?,
            double: crate::read::downcast(column, field(ATTR_DOUBLE)?)?,
            boolean: crate::read::downcast(column, field(ATTR_BOOL)?)?,
            bytes: crate::read::downcast(column, field(ATTR_BYTES)?)?,
            any: crate::read::downcast(column, field(ATTR_ANY)?)?,
        })
    }

    /// Whether row `row` is null (as opposed to an empty map).
    pub(crate) fn is_null(&self, row: usize) -> bool {
        self.map.is_null(row)
    }

    /// The attributes of row `row`; a null row reads as an empty list.
    pub(crate) fn get(&self, row: usize) -> Result<Vec<KeyValue>> {
        if self.map.is_null(row) {
            return Ok(Vec::new());
        }
        let offsets = self.map.value_offsets();
        let (start, end) = (offsets[row] as usize, offsets[row + 1] as usize);
        (start..end)
            .map(|j| {
                let key = if self.keys.is_valid(j) {
                    self.keys.value(j).to_owned()
                } else {
                    String::new()
                };
                Ok(KeyValue {
                    key,
                    value: self.value(j)?,
                    key_strindex: 0,
                })
            })
            .collect()
    }

    fn value(&self, j: usize) -> Result<Option<AnyValue>> {
        let value = if self.any.is_valid(j) {
            return AnyValue::decode(self.any.value(j))
                .map(Some)
                .map_err(|source| Error::Decode {
                    what: format!("{}.{MAP_VALUE}.{ATTR_ANY}", self.column),
                    source,
                });
        } else if self.str_.is_valid(j) {
            Value::StringValue(self.str_.value(j).to_owned())
        } else if self.int.is_valid(j) {
            Value::IntValue(self.int.value(j))
        } else if self.double.is_valid(j) {
            Value::DoubleValue(self.double.value(j))
        } else if self.boolean.is_valid(j) {
            Value::BoolValue(self.boolean.value(j))
        } else if self.bytes.is_valid(j) {
            Value::BytesValue(self.bytes.value(j).to_vec())
        } else {
            return Ok(None);
        };
        Ok(Some(AnyValue { value: Some(value) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};

    fn kv(key: &str, value: Option<Value>) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.map(|v| AnyValue { value: Some(v) }),
            key_strindex: 0,
        }
    }

    #[test]
    fn map_type_is_map_of_utf8_keys() {
        let DataType::Map(entries, sorted) = attribute_map_type() else {
            panic!("not a map: {:?}", attribute_map_type());
        };
        assert!(!sorted);
        assert_eq!(entries.name(), "entries");
        let DataType::Struct(fields) = entries.data_type() else {
            panic!("entries not a struct");
        };
        assert_eq!(fields[0].name(), "key");
        assert_eq!(fields[0].data_type(), &DataType::Utf8);
        assert!(!fields[0].is_nullable());
        assert_eq!(fields[1].name(), "value");
        let DataType::Struct(values) = fields[1].data_type() else {
            panic!("value not a struct");
        };
        let names: Vec<_> = values.iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["str", "int", "double", "bool", "bytes", "any"]);
    }

    #[test]
    fn builder_and_reader_round_trip() {
        let nested = Value::KvlistValue(KeyValueList {
            values: vec![kv(
                "a",
                Some(Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::DoubleValue(f64::NAN)),
                    }],
                })),
            )],
        });
        let rows = vec![
            vec![
                kv("s", Some(Value::StringValue("x".into()))),
                kv("s", Some(Value::StringValue("dup".into()))),
                kv("i", Some(Value::IntValue(-3))),
                kv("d", Some(Value::DoubleValue(f64::NEG_INFINITY))),
                kv("b", Some(Value::BoolValue(false))),
                kv("y", Some(Value::BytesValue(vec![]))),
                kv("n", None),
                KeyValue {
                    key: "empty".into(),
                    value: Some(AnyValue { value: None }),
                    key_strindex: 0,
                },
                kv("k", Some(nested)),
                kv("idx", Some(Value::StringValueStrindex(7))),
            ],
            vec![],
        ];
        let mut builder = AttributeMapBuilder::new("attributes");
        for row in &rows {
            builder.append(row).expect("append");
        }
        builder.append_null().expect("append null");
        let array = builder.finish().expect("finish");
        assert_eq!(array.data_type(), &attribute_map_type());
        let reader = AttributeMapReader::new("attributes", &array).expect("reader");
        for (i, row) in rows.iter().enumerate() {
            let got = reader.get(i).expect("get");
            assert_eq!(
                KeyValueList { values: got }.encode_to_vec(),
                KeyValueList {
                    values: row.clone()
                }
                .encode_to_vec()
            );
        }
        assert!(reader.is_null(2));
        assert!(!reader.is_null(1));
    }

    #[test]
    fn renders_values() {
        let v = |v| AnyValue { value: Some(v) };
        assert_eq!(
            any_value_to_string(&v(Value::StringValue("a\"b".into()))),
            "a\"b"
        );
        assert_eq!(any_value_to_string(&v(Value::IntValue(42))), "42");
        assert_eq!(any_value_to_string(&v(Value::DoubleValue(1.5))), "1.5");
        assert_eq!(any_value_to_string(&v(Value::BoolValue(true))), "true");
        assert_eq!(
            any_value_to_string(&v(Value::BytesValue(vec![1, 255]))),
            "01ff"
        );
        assert_eq!(any_value_to_string(&AnyValue { value: None }), "");
        let list = v(Value::KvlistValue(KeyValueList {
            values: vec![
                kv("k\n", Some(Value::StringValue("q\"".into()))),
                kv(
                    "arr",
                    Some(Value::ArrayValue(ArrayValue {
                        values: vec![v(Value::IntValue(1)), v(Value::BoolValue(false))],
                    })),
                ),
                kv("none", None),
            ],
        }));
        assert_eq!(
            any_value_to_string(&list),
            r#"{"k\n":"q\"","arr":[1,false],"none":null}"#
        );
    }
}
