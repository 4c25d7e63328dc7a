//! The OTLP messages every signal shares, read off the wire: the resource / scope / item
//! containers of an export request ([`for_each_item`]), `KeyValue` / `AnyValue` as borrowed
//! [`ValueRef`]s, and `Resource` / `InstrumentationScope` as prost messages (they occur once per
//! container, not once per item, so decoding them with prost costs little).
//!
//! Invariants:
//! - A `KeyValue` reads as prost would decode it: the last `key` wins, occurrences of `value`
//!   merge, `key_strindex` is ignored, and an `AnyValue`'s last oneof field wins. Only scalar
//!   values (string, bool, int, double, bytes) are borrowed; anything else, and an `AnyValue`
//!   with no field set, is decoded with prost into [`ValueRef::Any`], so the stored bytes are
//!   those of the prost path.

use std::borrow::Cow;

use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::{Occurrences, Reader, WireError};
use crate::any_value::ValueRef;
use crate::resource::ResourceInfo;

/// A prost decode failure of a part decoded whole, in wire-error terms.
pub(crate) fn prost_error(what: &str, e: prost::DecodeError) -> WireError {
    WireError::new(format!("{what}: {e}"))
}

/// Decodes the merged occurrences of an embedded message with prost; `None` if it never
/// occurred.
pub(crate) fn decode_merged<M: Message + Default>(
    what: &str,
    occurrences: &Occurrences<'_>,
) -> Result<Option<M>, WireError> {
    occurrences
        .get()
        .map(|bytes| M::decode(bytes).map_err(|e| prost_error(what, e)))
        .transpose()
}

/// The key and value of one `KeyValue` message.
pub(crate) fn key_value<'a>(bytes: &'a [u8]) -> Result<(&'a str, ValueRef<'a>), WireError> {
    let mut key = "";
    let mut value: Occurrences<'a> = Occurrences::default();
    let mut r = Reader::new(bytes, "KeyValue");
    while let Some((field, v)) = r.next_field()? {
        match field {
            1 => key = v.str("KeyValue.key")?,
            2 => value.push(v.bytes("KeyValue.value")?),
            3 => {
                v.varint("KeyValue.key_strindex")?;
            }
            _ => {}
        }
    }
    Ok((key, any_value_of(&value)?))
}

/// The value of an `AnyValue` field from its occurrences: [`ValueRef::Absent`] when it never
/// occurred, borrowed when it occurred once, else decoded whole from the merged bytes.
pub(crate) fn any_value_of<'a>(value: &Occurrences<'a>) -> Result<ValueRef<'a>, WireError> {
    Ok(match (value.single(), value.get()) {
        (Some(one), _) => any_value(one)?,
        (None, None) => ValueRef::Absent,
        (None, Some(merged)) => ValueRef::Any(Cow::Owned(
            AnyValue::decode(merged).map_err(|e| prost_error("AnyValue", e))?,
        )),
    })
}

/// Message names of one signal's containers (`ResourceSpans`, `ScopeSpans`, ...), for errors.
pub(crate) struct Containers {
    pub request: &'static str,
    pub resource: &'static str,
    pub scope: &'static str,
}

/// Where an item sits: the resource and scope of its containers.
pub(crate) struct Place<'p> {
    pub resource: &'p ResourceInfo<'p>,
    pub scope: Option<&'p InstrumentationScope>,
    pub scope_schema_url: &'p str,
}

/// Calls `item` with the bytes of every item (span, log record, metric) of an export request,
/// in wire order, and where it sits. Every signal's request has the same three levels: field 1
/// of the request is a resource container, whose field 1 is the `Resource`, field 2 a scope
/// container and field 3 the schema URL; a scope container's field 1 is the
/// `InstrumentationScope`, field 2 an item and field 3 the schema URL. A container's own fields
/// may follow its children on the wire, so each is read whole before its children are visited.
pub(crate) fn for_each_item<'a, F>(
    bytes: &'a [u8],
    names: &Containers,
    mut item: F,
) -> crate::Result<()>
where
    F: FnMut(&'a [u8], &Place<'_>) -> crate::Result<()>,
{
    let mut r = Reader::new(bytes, names.request);
    while let Some((field, v)) = r.next_field()? {
        if field != 1 {
            continue;
        }
        let rc = Container::read(v.bytes(names.request)?, names.resource)?;
        let resource: Option<Resource> = decode_merged("Resource", &rc.own)?;
        let resource = ResourceInfo::new(resource.as_ref(), rc.schema_url);
        for scope_bytes in rc.children {
            let sc = Container::read(scope_bytes, names.scope)?;
            let scope: Option<InstrumentationScope> =
                decode_merged("InstrumentationScope", &sc.own)?;
            let place = Place {
                resource: &resource,
                scope: scope.as_ref(),
                scope_schema_url: sc.schema_url,
            };
            for bytes in sc.children {
                item(bytes, &place)?;
            }
        }
    }
    Ok(())
}

/// A resource or scope container: its own message (field 1, merged), its children (field 2)
/// and its schema URL (field 3).
struct Container<'a> {
    own: Occurrences<'a>,
    children: Vec<&'a [u8]>,
    schema_url: &'a str,
}

impl<'a> Container<'a> {
    fn read(bytes: &'a [u8], name: &'static str) -> Result<Self, WireError> {
        let mut c = Container {
            own: Occurrences::default(),
            children: Vec::new(),
            schema_url: "",
        };
        let mut r = Reader::new(bytes, name);
        while let Some((field, v)) = r.next_field()? {
            match field {
                1 => c.own.push(v.bytes(name)?),
                2 => c.children.push(v.bytes(name)?),
                3 => c.schema_url = v.str(name)?,
                _ => {}
            }
        }
        Ok(c)
    }
}

/// One `AnyValue`: its last oneof field, borrowed when it is a scalar and no field of the value
/// needs prost (an array, kvlist or string-table index anywhere in it is decoded whole, so that
/// it is checked exactly as prost checks it).
fn any_value(bytes: &[u8]) -> Result<ValueRef<'_>, WireError> {
    let mut last: Option<ValueRef<'_>> = None;
    let mut whole = false;
    let mut r = Reader::new(bytes, "AnyValue");
    while let Some((field, v)) = r.next_field()? {
        last = Some(match field {
            1 => ValueRef::Str(v.str("AnyValue.string_value")?),
            2 => ValueRef::Bool(v.varint("AnyValue.bool_value")? != 0),
            3 => ValueRef::Int(v.varint("AnyValue.int_value")? as i64),
            4 => ValueRef::Double(f64::from_bits(v.fixed64("AnyValue.double_value")?)),
            7 => ValueRef::Bytes(v.bytes("AnyValue.bytes_value")?),
            5 | 6 | 8 => {
                whole = true;
                continue;
            }
            _ => continue,
        });
    }
    match last {
        Some(scalar) if !whole => Ok(scalar),
        _ => AnyValue::decode(bytes)
            .map(|v| ValueRef::Any(Cow::Owned(v)))
            .map_err(|e| prost_error("AnyValue", e)),
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValue, any_value::Value as V};

    use super::*;

    fn read(kv: &KeyValue) -> (String, String) {
        let bytes = kv.encode_to_vec();
        let (key, value) = key_value(&bytes).expect("key_value");
        (key.to_owned(), format!("{value:?}"))
    }

    #[test]
    fn scalars_are_borrowed_and_the_rest_decoded_whole() {
        let kv = |value: Option<V>| KeyValue {
            key: "k".into(),
            value: value.map(|v| AnyValue { value: Some(v) }),
            key_strindex: 0,
        };
        assert_eq!(read(&kv(Some(V::StringValue("x".into())))).1, r#"Str("x")"#);
        assert_eq!(read(&kv(Some(V::IntValue(-2)))).1, "Int(-2)");
        assert_eq!(read(&kv(Some(V::BoolValue(true)))).1, "Bool(true)");
        assert_eq!(read(&kv(Some(V::DoubleValue(0.5)))).1, "Double(0.5)");
        assert_eq!(read(&kv(Some(V::BytesValue(vec![1])))).1, "Bytes([1])");
        assert_eq!(read(&kv(None)).1, "Absent");
        let array = read(&kv(Some(V::ArrayValue(ArrayValue {
            values: vec![AnyValue {
                value: Some(V::IntValue(1)),
            }],
        }))));
        assert!(array.1.starts_with("Any("), "{array:?}");
        let unset = KeyValue {
            key: "k".into(),
            value: Some(AnyValue { value: None }),
            key_strindex: 0,
        };
        assert!(read(&unset).1.starts_with("Any("));
    }

    #[test]
    fn last_oneof_field_and_last_key_win() {
        // key "a", key "b", value { string "s", int 5 }
        let bytes = [
            0x0a, 1, b'a', 0x0a, 1, b'b', 0x12, 5, 0x0a, 1, b's', 0x18, 5,
        ];
        let (key, value) = key_value(&bytes).unwrap();
        assert_eq!((key, format!("{value:?}")), ("b", "Int(5)".to_string()));
        // Two occurrences of value merge: { string "s" } then { int 5 } -> int 5.
        let bytes = [0x0a, 1, b'a', 0x12, 3, 0x0a, 1, b's', 0x12, 2, 0x18, 5];
        let (_, value) = key_value(&bytes).unwrap();
        let ValueRef::Any(v) = value else {
            panic!("merged values are decoded whole")
        };
        assert_eq!(v.value, Some(V::IntValue(5)));
        // Not UTF-8 is refused.
        assert!(key_value(&[0x0a, 1, 0xff]).is_err());
    }
}
