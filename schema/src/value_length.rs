//! The longest attribute value of each row: what a per-tenant limit on attribute and label
//! value length is checked against.
//!
//! Every attribute map of a batch counts (resource, scope and record attributes, metric
//! labels, and the maps nested in lists of structs such as span events and links); a value's
//! length is the bytes of its `str`, `bytes` or `any` field. Log bodies are not attributes.
//!
//! Invariant: a batch whose attribute values hold no more bytes in all than the limit is
//! answered without a walk over its rows (no value can be longer than all of them).

use arrow::array::{Array, AsArray, RecordBatch, StructArray};
use arrow::datatypes::DataType;

use crate::columns::{ATTR_ANY, ATTR_BYTES, ATTR_STR};

/// Which rows of `batch` carry no attribute value longer than `max` bytes; `None` when all of
/// them fit.
pub fn rows_within(batch: &RecordBatch, max: usize) -> Option<Vec<bool>> {
    if batch
        .columns()
        .iter()
        .all(|c| value_bytes(c.as_ref()) <= max)
    {
        return None;
    }
    let mut longest = vec![0usize; batch.num_rows()];
    for column in batch.columns() {
        if let Some(per_row) = longest_per_row(column.as_ref()) {
            for (l, r) in longest.iter_mut().zip(per_row) {
                *l = (*l).max(r);
            }
        }
    }
    let keep: Vec<bool> = longest.iter().map(|l| *l <= max).collect();
    (!keep.iter().all(|k| *k)).then_some(keep)
}

/// The bytes of every attribute value `array` holds (an upper bound of the longest one).
fn value_bytes(array: &dyn Array) -> usize {
    match array.data_type() {
        DataType::Map(..) => {
            let values = array.as_map().values();
            map_value_fields(values.as_struct())
                .map(|a| a.to_data().buffers().last().map_or(0, |b| b.len()))
                .sum()
        }
        DataType::List(_) => value_bytes(array.as_list::<i32>().values().as_ref()),
        DataType::Struct(_) => array
            .as_struct()
            .columns()
            .iter()
            .map(|c| value_bytes(c.as_ref()))
            .sum(),
        _ => 0,
    }
}

/// The `str`, `bytes` and `any` fields of an attribute map's value struct.
fn map_value_fields(values: &StructArray) -> impl Iterator<Item = &dyn Array> {
    [ATTR_STR, ATTR_BYTES, ATTR_ANY]
        .into_iter()
        .filter_map(|f| values.column_by_name(f).map(|a| a.as_ref()))
}

/// Byte length of each element of a string or binary array (0 for other types).
fn lengths(array: &dyn Array) -> Vec<usize> {
    let diff = |o: &[i32]| o.windows(2).map(|w| (w[1] - w[0]) as usize).collect();
    match array.data_type() {
        DataType::Utf8 => diff(array.as_string::<i32>().value_offsets()),
        DataType::Binary => diff(array.as_binary::<i32>().value_offsets()),
        _ => vec![0; array.len()],
    }
}

/// The longest attribute value in each row of `array`, or `None` if it holds no attribute map.
fn longest_per_row(array: &dyn Array) -> Option<Vec<usize>> {
    let per_child = |offsets: &[i32], child: Vec<usize>| {
        offsets
            .windows(2)
            .map(|w| {
                child[w[0] as usize..w[1] as usize]
                    .iter()
                    .copied()
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    };
    match array.data_type() {
        DataType::Map(..) => {
            let map = array.as_map();
            let values = map.values().as_struct();
            let mut entries = vec![0usize; values.len()];
            for field in map_value_fields(values) {
                for (e, l) in entries.iter_mut().zip(lengths(field)) {
                    *e = (*e).max(l);
                }
            }
            Some(per_child(map.value_offsets(), entries))
        }
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            let child = longest_per_row(list.values().as_ref())?;
            Some(per_child(list.value_offsets(), child))
        }
        DataType::Struct(_) => {
            let mut out: Option<Vec<usize>> = None;
            for c in array.as_struct().columns() {
                if let Some(child) = longest_per_row(c.as_ref()) {
                    match &mut out {
                        None => out = Some(child),
                        Some(o) => o.iter_mut().zip(child).for_each(|(a, b)| *a = (*a).max(b)),
                    }
                }
            }
            out
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::KeyValue;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::Event};

    use super::*;
    use crate::any_value::string_kv;

    fn span(i: u8, attrs: Vec<KeyValue>, event_attrs: Vec<KeyValue>) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![i; 8],
            name: "op".into(),
            attributes: attrs,
            events: vec![Event {
                name: "e".into(),
                attributes: event_attrs,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn finds_long_values_in_attributes_and_in_nested_events() {
        let long = "x".repeat(100);
        let batch = crate::traces::to_batch(&[ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![
                    span(1, vec![string_kv("a", "short")], vec![]),
                    span(2, vec![string_kv("a", &long)], vec![]),
                    span(3, vec![], vec![string_kv("e", &long)]),
                    span(
                        4,
                        vec![string_kv("b", "fine")],
                        vec![string_kv("e", "fine")],
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }])
        .unwrap();
        assert_eq!(rows_within(&batch, 1000), None);
        assert_eq!(rows_within(&batch, 100), None);
        assert_eq!(
            rows_within(&batch, 99),
            Some(vec![true, false, false, true])
        );
        // Sliced batches keep their own rows.
        assert_eq!(rows_within(&batch.slice(2, 2), 99), Some(vec![false, true]));
    }
}
