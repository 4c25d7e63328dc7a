//! SQL functions whose output can grow far past their input (`repeat(name, 100000000)`),
//! registered in every session in place of DataFusion's own: each works out what it would
//! produce and refuses (`ResourcesExhausted`, HTTP 422) when that is more than the query's
//! [`budget`](crate::budget) has left, before allocating any of it.
//!
//! Invariant: a bounded function answers exactly as the one it wraps whenever it answers;
//! everything but `invoke_with_args` is the wrapped function's own.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array};
use arrow::compute::kernels::length::length;
use arrow::compute::{cast, kernels::aggregate::sum};
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::Result;
use datafusion::error::DataFusionError;
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion::prelude::SessionContext;

/// How a function's output size follows from its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(s, n)`: `len(s) * n` bytes.
    Repeat,
    /// `lpad(s, n[, fill])`, `rpad`: `n` characters of up to 4 bytes.
    Pad,
    /// `replace(s, from, to)`: each `from` in `s` (at most `len(s) + 1` of them) becomes `to`.
    Replace,
    /// `regexp_replace(s, pattern, to[, flags])`: as `replace`, a match at every position.
    RegexpReplace,
    /// `array_repeat(x, n)`: `n` copies of `x`.
    ArrayRepeat,
    /// `array_resize(a, n[, x])`: `n` elements.
    ArrayResize,
    /// `range(start, stop[, step])`, `generate_series`: `(stop - start) / step` elements.
    Range,
}

const FUNCTIONS: &[(&str, Growth)] = &[
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("replace", Growth::Replace),
    ("regexp_replace", Growth::RegexpReplace),
    ("array_repeat", Growth::ArrayRepeat),
    ("array_resize", Growth::ArrayResize),
    ("range", Growth::Range),
    ("generate_series", Growth::Range),
];

/// Replaces the session's growing functions by bounded ones.
pub fn register(ctx: &SessionContext) {
    for (name, growth) in FUNCTIONS {
        if let Ok(inner) = ctx.udf(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner,
                growth: *growth,
            }));
        }
    }
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
}

/// An argument's values as `i64` per row (`None` if it is not a number).
fn ints(arg: &ColumnarValue, rows: usize) -> Option<Int64Array> {
    let array = arg.to_array(rows).ok()?;
    let ints = cast(&array, &DataType::Int64).ok()?;
    Some(ints.as_primitive::<Int64Type>().clone())
}

/// Byte length per row of a string or binary argument (0 for other types and nulls).
fn lengths(arg: &ColumnarValue, rows: usize) -> Int64Array {
    let per_row = arg
        .to_array(rows)
        .ok()
        .and_then(|a| length(&a).ok())
        .and_then(|l| cast(&l, &DataType::Int64).ok());
    match per_row {
        Some(l) => l.as_primitive::<Int64Type>().clone(),
        None => Int64Array::from(vec![0; rows]),
    }
}

/// Bytes of an argument per row, roughly (its memory over its rows).
fn bytes_per_row(arg: &ColumnarValue) -> f64 {
    match arg {
        ColumnarValue::Array(a) => a.get_array_memory_size() as f64 / a.len().max(1) as f64,
        ColumnarValue::Scalar(s) => s.size() as f64,
    }
}

fn at(a: &Int64Array, i: usize) -> f64 {
    if a.is_null(i) {
        0.0
    } else {
        a.value(i).max(0) as f64
    }
}

fn total(a: &Int64Array) -> f64 {
    sum(a).unwrap_or(0).max(0) as f64
}

impl Growth {
    /// Bytes the call would produce, or `None` when that cannot be told from the arguments.
    fn output_bytes(self, args: &[ColumnarValue], rows: usize) -> Option<f64> {
        let arg = |i: usize| args.get(i);
        match self {
            Growth::Repeat => {
                let (s, n) = (lengths(arg(0)?, rows), ints(arg(1)?, rows)?);
                Some((0..rows).map(|i| at(&s, i) * at(&n, i)).sum())
            }
            Growth::Pad => Some(total(&ints(arg(1)?, rows)?) * 4.0),
            Growth::Replace | Growth::RegexpReplace => {
                let s = lengths(arg(0)?, rows);
                let to = lengths(arg(2)?, rows);
                let from = match self {
                    Growth::Replace => Some(lengths(arg(1)?, rows)),
                    _ => None,
                };
                Some(
                    (0..rows)
                        .map(|i| {
                            let len = at(&s, i);
                            let per = from.as_ref().map_or(1.0, |f| at(f, i).max(1.0));
                            len + (len / per + 1.0) * at(&to, i)
                        })
                        .sum(),
                )
            }
            Growth::ArrayRepeat => {
                Some(total(&ints(arg(1)?, rows)?) * bytes_per_row(arg(0)?).max(8.0))
            }
            Growth::ArrayResize => Some(total(&ints(arg(1)?, rows)?) * 8.0),
            Growth::Range => {
                let (start, stop) = match args.len() {
                    1 => (None, ints(arg(0)?, rows)?),
                    _ => (Some(ints(arg(0)?, rows)?), ints(arg(1)?, rows)?),
                };
                let step = match args.get(2) {
                    Some(s) => Some(ints(s, rows)?),
                    None => None,
                };
                Some(
                    (0..rows)
                        .map(|i| {
                            let lo = start.as_ref().map_or(0, |s| s.value(i)) as f64;
                            let hi = stop.value(i) as f64;
                            let st = step
                                .as_ref()
                                .map_or(1.0, |s| (s.value(i) as f64).abs().max(1.0));
                            ((hi - lo).abs() / st + 1.0) * 8.0
                        })
                        .sum(),
                )
            }
        }
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.inner().schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.inner().return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.inner().return_field_from_args(args)
    }

    fn is_strict(&self) -> bool {
        self.inner.inner().is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let Some(account) = crate::budget::current() {
            let left = account.left();
            if let Some(bytes) = self.growth.output_bytes(&args.args, args.number_rows)
                && bytes > left as f64
            {
                return Err(DataFusionError::ResourcesExhausted(format!(
                    "{}() would produce {:.0} bytes, more than the {left} bytes this query may still allocate",
                    self.name(),
                    bytes
                )));
            }
        }
        self.inner.invoke_with_args(args)
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.inner().simplify(args, info)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.inner().output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.inner().preserves_lex_ordering(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.inner().coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }
}

/// For tests: the array form of an argument.
#[cfg(test)]
pub(crate) fn array(values: Vec<i64>) -> ColumnarValue {
    ColumnarValue::Array(Arc::new(Int64Array::from(values)) as arrow::array::ArrayRef)
}

#[cfg(test)]
mod tests {
    use datafusion::common::ScalarValue;

    use super::*;

    #[test]
    fn estimates_follow_the_arguments() {
        let s = ColumnarValue::Scalar(ScalarValue::Utf8(Some("abcd".into())));
        let repeat = Growth::Repeat.output_bytes(&[s.clone(), array(vec![10, 0, -1])], 3);
        assert_eq!(repeat, Some(40.0));
        let range = Growth::Range.output_bytes(&[array(vec![0]), array(vec![99])], 1);
        assert_eq!(range, Some(800.0));
        let pad = Growth::Pad.output_bytes(&[s.clone(), array(vec![5, 5])], 2);
        assert_eq!(pad, Some(40.0));
        let to = ColumnarValue::Scalar(ScalarValue::Utf8(Some("xx".into())));
        let from = ColumnarValue::Scalar(ScalarValue::Utf8(Some("a".into())));
        assert_eq!(
            Growth::Replace.output_bytes(&[s, from, to], 1),
            Some(4.0 + 5.0 * 2.0)
        );
    }
}
