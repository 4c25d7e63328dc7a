//! PromQL values as the evaluator holds them: label sets, raw series and step-aligned series.
//!
//! Invariants:
//! - A [`Labels`] is sorted by name, names are unique, and no value is empty (Prometheus treats
//!   an empty label as an absent one).
//! - A [`Series`] has one slot per evaluation step; an empty slot holds [`ABSENT`], a NaN
//!   payload no arithmetic produces, so a present NaN is still told from a missing point.
//! - A [`RawSeries`] holds stored samples in ascending time order, at most one per timestamp;
//!   stale markers are kept (instant selection needs them) and skipped by range windows.

use std::fmt;
use std::sync::Arc;

/// The metric name label.
pub const NAME: &str = "__name__";

/// Prometheus's staleness marker: a NaN with this exact bit pattern.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// Whether `v` is a staleness marker.
pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// The "no point at this step" slot value of a [`Series`].
pub const ABSENT: f64 = f64::from_bits(0x7ff4_0000_0000_a65e);

/// Whether a [`Series`] slot holds a point.
#[inline]
pub fn present(v: f64) -> bool {
    v.to_bits() != ABSENT.to_bits()
}

/// A sorted set of labels.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Builds a label set from pairs in any order; empty values are dropped and, for repeated
    /// names, the last pair wins.
    pub fn new(mut pairs: Vec<(String, String)>) -> Self {
        pairs.retain(|(_, v)| !v.is_empty());
        pairs.reverse();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        pairs.dedup_by(|a, b| a.0 == b.0);
        Self(pairs)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value of `name`, or "" when absent (Prometheus's convention).
    pub fn get(&self, name: &str) -> &str {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Ok(i) => &self.0[i].1,
            Err(_) => "",
        }
    }

    pub fn name(&self) -> &str {
        self.get(NAME)
    }

    /// Sets (or, with an empty value, removes) one label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name.to_string(), value.to_string())),
        }
    }

    /// A copy without the metric name.
    pub fn without_name(&self) -> Labels {
        Labels(self.0.iter().filter(|(k, _)| k != NAME).cloned().collect())
    }

    /// A copy with only the labels in `names`.
    pub fn keep(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(k, _)| names.iter().any(|n| n == k))
                .cloned()
                .collect(),
        )
    }

    /// A copy without the labels in `names` (and without the metric name when `drop_name`).
    pub fn without(&self, names: &[String], drop_name: bool) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(k, _)| !(names.iter().any(|n| n == k) || (drop_name && k == NAME)))
                .cloned()
                .collect(),
        )
    }
}

impl Labels {
    /// Prometheus's `labels.String()`: every label (the name too) in braces.
    pub fn braced(&self) -> String {
        let inner: Vec<String> = self.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
        format!("{{{}}}", inner.join(", "))
    }
}

impl fmt::Display for Labels {
    /// Prometheus's text form: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.name();
        f.write_str(name)?;
        f.write_str("{")?;
        let mut first = true;
        for (k, v) in self.iter().filter(|(k, _)| *k != NAME) {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{k}={v:?}")?;
        }
        f.write_str("}")
    }
}

impl fmt::Debug for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Stored samples of one series (milliseconds, value), ascending by time.
#[derive(Debug, Clone)]
pub struct RawSeries {
    pub labels: Arc<Labels>,
    pub times: Vec<i64>,
    pub values: Vec<f64>,
}

impl RawSeries {
    /// The indexes of the samples in the left-open window `(from, to]`.
    pub fn window(&self, from: i64, to: i64) -> std::ops::Range<usize> {
        let lo = self.times.partition_point(|&t| t <= from);
        let hi = self.times.partition_point(|&t| t <= to);
        lo..hi.max(lo)
    }

    /// The same series without stale markers (what range selectors see).
    pub fn without_stale(&self) -> RawSeries {
        let mut times = Vec::with_capacity(self.times.len());
        let mut values = Vec::with_capacity(self.values.len());
        for (&t, &v) in self.times.iter().zip(&self.values) {
            if !is_stale(v) {
                times.push(t);
                values.push(v);
            }
        }
        RawSeries {
            labels: self.labels.clone(),
            times,
            values,
        }
    }
}

/// One series evaluated at every step.
///
/// `drop_name` is Prometheus 3's delayed name removal: a function or operator that drops the
/// metric name only marks the series, so `label_replace` and `by (__name__)` can still read
/// the name; marked names are removed when the query's result is complete.
#[derive(Debug, Clone)]
pub struct Series {
    pub labels: Arc<Labels>,
    pub values: Vec<f64>,
    pub drop_name: bool,
}

impl Series {
    pub fn new(labels: Arc<Labels>, values: Vec<f64>) -> Self {
        Self {
            labels,
            values,
            drop_name: false,
        }
    }

    pub fn any_present(&self) -> bool {
        self.values.iter().any(|&v| present(v))
    }
}

/// The evaluation steps: `start`, `start + step`, ..., up to `end` (milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    pub start: i64,
    pub end: i64,
    pub step: i64,
}

impl Steps {
    pub fn instant(t: i64) -> Self {
        Self {
            start: t,
            end: t,
            step: 1,
        }
    }

    pub fn len(&self) -> usize {
        ((self.end - self.start) / self.step.max(1) + 1).max(0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn at(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }

    pub fn times(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.at(i))
    }
}

/// The value of an expression over all steps.
#[derive(Debug, Clone)]
pub enum Value {
    /// One value per step.
    Scalar(Vec<f64>),
    Vector(Vec<Series>),
    /// Raw samples in the window of an instant query (`x[5m]` at the top level).
    Matrix(Vec<RawSeries>),
    String(String),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
            Value::String(_) => "string",
        }
    }
}

/// Formats a float the way Prometheus does in label values and JSON (Go's
/// `strconv.FormatFloat(f, 'f', -1, 64)` for `le`/`count_values`, and `+Inf`, `-Inf`, `NaN`).
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Rust's shortest round-trip Display never uses an exponent, like Go's 'f' with -1.
        format!("{v}")
    }
}

/// Formats a sample value for the JSON API (Go's `strconv.FormatFloat(f, 'f', -1, 64)`
/// except for very large or small magnitudes, which Prometheus writes with an exponent).
pub fn format_value(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return format_float(v);
    }
    let a = v.abs();
    if !(1e-6..1e21).contains(&a) {
        // Go's 'g'-like exponent form, e.g. 1e+100.
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((m, e)) if !e.starts_with('-') => format!("{m}e+{e}"),
            Some((m, e)) => format!("{m}e-{:0>2}", &e[1..]),
            None => s,
        }
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_sort_dedup_and_drop_empty() {
        let l = Labels::new(vec![
            ("b".into(), "1".into()),
            ("a".into(), "x".into()),
            ("b".into(), "2".into()),
            ("c".into(), String::new()),
        ]);
        assert_eq!(l.to_string(), "{a=\"x\", b=\"2\"}");
        assert_eq!(l.get("c"), "");
    }

    #[test]
    fn absent_is_not_nan_arithmetic() {
        assert!(!present(ABSENT));
        assert!(present(f64::NAN));
        assert!(present(f64::NAN + 1.0));
        assert!(is_stale(f64::from_bits(STALE_NAN_BITS)));
    }

    #[test]
    fn windows_are_left_open() {
        let s = RawSeries {
            labels: Arc::new(Labels::default()),
            times: vec![0, 10, 20, 30],
            values: vec![0.0; 4],
        };
        assert_eq!(s.window(10, 30), 2..4);
        assert_eq!(s.window(-5, 0), 0..1);
        assert_eq!(s.window(30, 40), 4..4);
    }

    #[test]
    fn floats_format_like_prometheus() {
        assert_eq!(format_float(0.5), "0.5");
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_value(1e100), "1e+100");
        assert_eq!(format_value(1.5e-7), "1.5e-07");
        assert_eq!(format_value(12.0), "12");
    }
}
