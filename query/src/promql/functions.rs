//! PromQL functions: the math, time and label functions on instant vectors, the `*_over_time`
//! family, `rate` and its relatives on range vectors, and `histogram_quantile` over classic
//! buckets. Formulas follow Prometheus 3 (extrapolated rates, Kahan sums, incremental means).
//!
//! Every function but `last_over_time`, `first_over_time`, the sorts and the label functions
//! drops the metric name; a result with two equal label sets at one step is an error.

use std::sync::Arc;

use chrono::{DateTime, Datelike, Timelike};
use promql_parser::label::MatchOp;
use promql_parser::parser::{Call, Expr};

use super::eval::{Evaluator, RangeArg, Result, exec_err, merge_same_labels};
use super::value::{ABSENT, Labels, NAME, Series, Steps, Value, present};
use crate::error::QueryError;

fn arg(c: &Call, i: usize) -> Result<&Expr> {
    c.args.args.get(i).map(|b| b.as_ref()).ok_or_else(|| {
        QueryError::BadRequest(format!("{}: missing argument {}", c.func.name, i + 1))
    })
}

fn string_arg(ev: &Evaluator, c: &Call, i: usize, steps: Steps) -> Result<String> {
    match ev.eval(arg(c, i)?, steps)? {
        Value::String(s) => Ok(s),
        other => Err(QueryError::BadRequest(format!(
            "{}: expected a string, got {}",
            c.func.name,
            other.type_name()
        ))),
    }
}

/// Applies `f` to every present value, dropping the metric name.
pub fn map_values(series: Vec<Series>, f: impl Fn(f64) -> f64) -> Result<Vec<Series>> {
    let out = series
        .into_iter()
        .map(|s| Series {
            labels: s.labels,
            drop_name: true,
            values: s
                .values
                .into_iter()
                .map(|v| if present(v) { f(v) } else { v })
                .collect(),
        })
        .collect();
    merge_same_labels(out)
}

/// Like [`map_values`] with a per-step scalar parameter.
fn map_values_at(
    series: Vec<Series>,
    param: &[f64],
    f: impl Fn(f64, f64) -> f64,
) -> Result<Vec<Series>> {
    let out = series
        .into_iter()
        .map(|s| Series {
            labels: s.labels,
            drop_name: true,
            values: s
                .values
                .into_iter()
                .enumerate()
                .map(|(i, v)| if present(v) { f(v, param[i]) } else { v })
                .collect(),
        })
        .collect();
    merge_same_labels(out)
}

fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sgn" => |v: f64| {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                v
            }
        },
        "acos" => f64::acos,
        "asin" => f64::asin,
        "atan" => f64::atan,
        "acosh" => f64::acosh,
        "asinh" => f64::asinh,
        "atanh" => f64::atanh,
        "cos" => f64::cos,
        "sin" => f64::sin,
        "tan" => f64::tan,
        "cosh" => f64::cosh,
        "sinh" => f64::sinh,
        "tanh" => f64::tanh,
        "deg" => f64::to_degrees,
        "rad" => f64::to_radians,
        _ => return None,
    })
}

fn date_fn(name: &str) -> Option<fn(DateTime<chrono::Utc>) -> f64> {
    Some(match name {
        "minute" => |d: DateTime<chrono::Utc>| d.minute() as f64,
        "hour" => |d: DateTime<chrono::Utc>| d.hour() as f64,
        "day_of_month" => |d: DateTime<chrono::Utc>| d.day() as f64,
        "day_of_week" => |d: DateTime<chrono::Utc>| d.weekday().num_days_from_sunday() as f64,
        "day_of_year" => |d: DateTime<chrono::Utc>| d.ordinal() as f64,
        "days_in_month" => |d: DateTime<chrono::Utc>| {
            let (y, m) = (d.year(), d.month());
            let next = if m == 12 {
                chrono::NaiveDate::from_ymd_opt(y + 1, 1, 1)
            } else {
                chrono::NaiveDate::from_ymd_opt(y, m + 1, 1)
            };
            next.and_then(|n| n.pred_opt())
                .map_or(f64::NAN, |l| l.day() as f64)
        },
        "month" => |d: DateTime<chrono::Utc>| d.month() as f64,
        "year" => |d: DateTime<chrono::Utc>| d.year() as f64,
        _ => return None,
    })
}

/// Kahan-Babuska summation step, as Prometheus's `kahanSumInc`.
pub fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Kahan sum of values.
pub fn kahan_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let (mut sum, mut c) = (0.0, 0.0);
    for v in values {
        (sum, c) = kahan_inc(v, sum, c);
    }
    if sum.is_infinite() { sum } else { sum + c }
}

/// Prometheus's mean: a Kahan sum that switches to an incremental mean on overflow.
#[derive(Default)]
pub struct Mean {
    sum: f64,
    c: f64,
    mean: f64,
    count: f64,
    incremental: bool,
}

impl Mean {
    pub fn add(&mut self, f: f64) {
        self.count += 1.0;
        if !self.incremental {
            let (s, c) = kahan_inc(f, self.sum, self.c);
            if self.count == 1.0 || !s.is_infinite() {
                (self.sum, self.c) = (s, c);
                return;
            }
            self.incremental = true;
            self.mean = self.sum / (self.count - 1.0);
            self.c /= self.count - 1.0;
        }
        if self.mean.is_infinite() {
            if f.is_infinite() && (self.mean > 0.0) == (f > 0.0) {
                return;
            }
            if !f.is_infinite() && !f.is_nan() {
                return;
            }
        }
        let corrected = self.mean + self.c;
        (self.mean, self.c) = kahan_inc(f / self.count - corrected / self.count, self.mean, self.c);
    }

    pub fn value(&self) -> f64 {
        if self.incremental {
            self.mean + self.c
        } else {
            self.sum / self.count + self.c / self.count
        }
    }
}

/// Population variance with Kahan-compensated Welford updates.
pub fn variance(values: &[f64]) -> f64 {
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &f in values {
        count += 1.0;
        let delta = f - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (f - (mean + c_mean)), aux, c_aux);
    }
    (aux + c_aux) / count
}

/// Prometheus's `quantile` over a set of values (linear interpolation between ranks).
pub fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    // Go's sort.Float64s: NaN first.
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

/// Slope and intercept (at `intercept_ms`) of the least-squares line through the samples.
fn linear_regression(times: &[i64], values: &[f64], intercept_ms: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init = values[0];
    let mut constant = true;
    for (i, (&t, &v)) in times.iter().zip(values).enumerate() {
        if constant && i > 0 && v != init {
            constant = false;
        }
        n += 1.0;
        let x = (t - intercept_ms) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if constant {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    let (sx, sy, sxy, sx2) = (sx + cx, sy + cy, sxy + cxy, sx2 + cx2);
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// `rate`, `increase` and `delta`: the change over the window, extrapolated to its edges.
fn extrapolated_rate(
    times: &[i64],
    values: &[f64],
    end: i64,
    range: i64,
    counter: bool,
    per_second: bool,
) -> Option<f64> {
    if times.len() < 2 {
        return None;
    }
    let (first_t, last_t) = (times[0], times[times.len() - 1]);
    let (first_v, last_v) = (values[0], values[values.len() - 1]);
    let mut result = last_v - first_v;
    if counter {
        let mut prev = first_v;
        for &v in &values[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let range_start = end - range;
    let mut to_start = (first_t - range_start) as f64 / 1e3;
    let mut to_end = (end - last_t) as f64 / 1e3;
    let sampled = (last_t - first_t) as f64 / 1e3;
    let average = sampled / (times.len() - 1) as f64;
    let threshold = average * 1.1;
    if to_start >= threshold {
        to_start = average / 2.0;
    }
    if counter && result > 0.0 && first_v >= 0.0 {
        let to_zero = sampled * (first_v / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = average / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if per_second {
        factor /= range as f64 / 1e3;
    }
    Some(result * factor)
}

fn instant_delta(times: &[i64], values: &[f64], rate: bool) -> Option<f64> {
    let n = times.len();
    if n < 2 {
        return None;
    }
    let (last, prev) = (values[n - 1], values[n - 2]);
    let mut diff = last - prev;
    if rate {
        if last < prev {
            diff = last;
        }
        let dt = (times[n - 1] - times[n - 2]) as f64 / 1e3;
        if dt == 0.0 {
            return None;
        }
        diff /= dt;
    }
    Some(diff)
}

fn double_exponential_smoothing(values: &[f64], sf: f64, tf: f64) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let (mut s0, mut s1, mut b) = (0.0, values[0], values[1] - values[0]);
    for (i, &v) in values.iter().enumerate().skip(1) {
        let x = sf * v;
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        (s0, s1) = (s1, x + y);
    }
    Some(s1)
}

/// Evaluates a function of a range vector: `f(step, times, values, window_end, range)`
/// for every series and step with at least one sample in the window.
fn over_time(
    arg: RangeArg,
    keep_name: bool,
    f: impl Fn(usize, &[i64], &[f64], i64, i64) -> Option<f64>,
) -> Result<Vec<Series>> {
    over_time_at(arg, keep_name, |i, t, v, end, _, range| {
        f(i, t, v, end, range)
    })
}

/// [`over_time`] whose function also gets the step's evaluation time (`predict_linear`
/// predicts from it, not from the window's end).
fn over_time_at(
    arg: RangeArg,
    keep_name: bool,
    f: impl Fn(usize, &[i64], &[f64], i64, i64, i64) -> Option<f64>,
) -> Result<Vec<Series>> {
    let steps = arg.ends.len();
    let mut out = Vec::with_capacity(arg.series.len());
    for (s, raw) in arg.series.iter().enumerate() {
        let mut values = vec![ABSENT; steps];
        let mut any = false;
        for (i, slot) in values.iter_mut().enumerate() {
            let w = arg.window(s, i);
            if w.is_empty() {
                continue;
            }
            let (times, vals) = (&raw.times[w.clone()], &raw.values[w]);
            if let Some(v) = f(i, times, vals, arg.ends[i], arg.step_times[i], arg.range) {
                *slot = v;
                any = true;
            }
        }
        if any {
            out.push(Series {
                labels: raw.labels.clone(),
                values,
                drop_name: !keep_name,
            });
        }
    }
    merge_same_labels(out)
}

/// The labels `absent` gives its result: the selector's equality matchers.
fn absent_labels(expr: &Expr) -> Labels {
    let vs = match expr {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        Expr::Paren(p) => return absent_labels(&p.expr),
        _ => return Labels::default(),
    };
    // As Prometheus: the first equality on a label sets it; a label with any other matcher
    // (or a second equality) is left out.
    let mut labels = Labels::default();
    let mut has = std::collections::HashSet::new();
    let mut left_out = Vec::new();
    for m in vs.matchers.matchers.iter().filter(|m| m.name != NAME) {
        if matches!(m.op, MatchOp::Equal) && has.insert(m.name.as_str()) {
            labels.set(&m.name, &m.value);
        } else {
            left_out.push(m.name.as_str());
        }
    }
    for name in left_out {
        labels.set(name, "");
    }
    labels
}

/// The result of `absent`/`absent_over_time`: one series with the selector's labels, present
/// at the steps where the argument had nothing.
fn absent_series(arg: &Expr, values: Vec<f64>) -> Vec<Series> {
    let s = Series::new(Arc::new(absent_labels(arg)), values);
    if s.any_present() { vec![s] } else { vec![] }
}

fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty()
}

/// Natural order of label values: digit runs compare as numbers ("2" < "10").
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(&cb) {
        let ord = if x.0 && y.0 {
            let (tx, ty) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
            tx.len().cmp(&ty.len()).then_with(|| tx.cmp(ty))
        } else {
            x.1.cmp(y.1)
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

fn sort_by_value(mut series: Vec<Series>, desc: bool) -> Vec<Series> {
    let key = |s: &Series| s.values.first().copied().unwrap_or(f64::NAN);
    series.sort_by(|a, b| {
        let (x, y) = (key(a), key(b));
        // NaN goes last either way.
        match (x.is_nan(), y.is_nan()) {
            (true, true) => std::cmp::Ordering::Equal,
            (true, false) => std::cmp::Ordering::Greater,
            (false, true) => std::cmp::Ordering::Less,
            _ if desc => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
            _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        }
    });
    series
}

/// Evaluates a function call.
pub fn call(ev: &Evaluator, c: &Call, steps: Steps) -> Result<Value> {
    let name = c.func.name;
    let n = steps.len();
    if let Some(f) = math_fn(name) {
        return Ok(Value::Vector(map_values(
            ev.eval_vector(arg(c, 0)?, steps)?,
            f,
        )?));
    }
    if let Some(f) = date_fn(name) {
        let input = match c.args.args.first() {
            Some(a) => ev.eval_vector(a, steps)?,
            None => vec![Series::new(
                Arc::new(Labels::default()),
                steps.times().map(|t| t as f64 / 1e3).collect(),
            )],
        };
        return Ok(Value::Vector(map_values(input, |v| {
            if !v.is_finite() {
                return f64::NAN;
            }
            DateTime::from_timestamp(v as i64, 0).map_or(f64::NAN, f)
        })?));
    }
    let vector = |v: Vec<Series>| Ok(Value::Vector(v));
    match name {
        "time" => Ok(Value::Scalar(
            steps.times().map(|t| t as f64 / 1e3).collect(),
        )),
        "min_of" | "max_of" => {
            let a = ev.eval_scalar(arg(c, 0)?, steps)?;
            let b = ev.eval_scalar(arg(c, 1)?, steps)?;
            let min = name == "min_of";
            Ok(Value::Scalar(
                a.iter()
                    .zip(&b)
                    .map(|(&x, &y)| {
                        if x.is_nan() || y.is_nan() {
                            f64::NAN
                        } else if min {
                            x.min(y)
                        } else {
                            x.max(y)
                        }
                    })
                    .collect(),
            ))
        }
        "pi" => Ok(Value::Scalar(vec![std::f64::consts::PI; n])),
        "start" | "end" | "step" | "range" => {
            let b = ev.bounds;
            let ms = match name {
                "start" => b.start,
                "end" => b.end,
                "step" if b.start == b.end => 0,
                "step" => b.step,
                _ => b.end - b.start,
            };
            Ok(Value::Scalar(vec![ms as f64 / 1e3; n]))
        }
        "vector" => {
            let s = ev.eval_scalar(arg(c, 0)?, steps)?;
            vector(vec![Series::new(Arc::new(Labels::default()), s)])
        }
        "scalar" => {
            let v = ev.eval_vector(arg(c, 0)?, steps)?;
            let out = (0..n)
                .map(|i| {
                    let mut it = v.iter().map(|s| s.values[i]).filter(|x| present(*x));
                    match (it.next(), it.next()) {
                        (Some(x), None) => x,
                        _ => f64::NAN,
                    }
                })
                .collect();
            Ok(Value::Scalar(out))
        }
        "round" => {
            let v = ev.eval_vector(arg(c, 0)?, steps)?;
            let to = match c.args.args.get(1) {
                Some(a) => ev.eval_scalar(a, steps)?,
                None => vec![1.0; n],
            };
            vector(map_values_at(v, &to, |x, to| {
                let inv = 1.0 / to;
                (x * inv + 0.5).floor() / inv
            })?)
        }
        "clamp" => {
            let v = ev.eval_vector(arg(c, 0)?, steps)?;
            let lo = ev.eval_scalar(arg(c, 1)?, steps)?;
            let hi = ev.eval_scalar(arg(c, 2)?, steps)?;
            let mut out = map_values_at(v, &lo, f64::max)?;
            for s in &mut out {
                for (i, x) in s.values.iter_mut().enumerate() {
                    if !present(*x) {
                        continue;
                    }
                    *x = if hi[i] < lo[i] {
                        ABSENT
                    } else if x.is_nan() {
                        f64::NAN
                    } else {
                        x.min(hi[i])
                    };
                }
            }
            out.retain(Series::any_present);
            vector(out)
        }
        "clamp_min" | "clamp_max" => {
            let v = ev.eval_vector(arg(c, 0)?, steps)?;
            let p = ev.eval_scalar(arg(c, 1)?, steps)?;
            let min = name == "clamp_min";
            vector(map_values_at(v, &p, |x, p| {
                if x.is_nan() || p.is_nan() {
                    f64::NAN
                } else if min {
                    x.max(p)
                } else {
                    x.min(p)
                }
            })?)
        }
        "timestamp" => {
            let mut inner = arg(c, 0)?;
            while let Expr::Paren(p) = inner {
                inner = &p.expr;
            }
            if let Expr::VectorSelector(vs) = inner {
                let (series, times) = ev.select_with_times(vs, steps)?;
                let out = series
                    .into_iter()
                    .zip(times)
                    .map(|(s, ts)| Series {
                        labels: s.labels,
                        drop_name: true,
                        values: s
                            .values
                            .iter()
                            .zip(ts)
                            .map(|(v, t)| if present(*v) { t as f64 / 1e3 } else { ABSENT })
                            .collect(),
                    })
                    .collect();
                return vector(merge_same_labels(out)?);
            }
            let v = ev.eval_vector(inner, steps)?;
            let times: Vec<f64> = steps.times().map(|t| t as f64 / 1e3).collect();
            vector(map_values_at(v, &times, |_, t| t)?)
        }
        "sort" | "sort_desc" => {
            let v = ev.eval_vector(arg(c, 0)?, steps)?;
            vector(sort_by_value(v, name == "sort_desc"))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut v = ev.eval_vector(arg(c, 0)?, steps)?;
            let mut names = Vec::new();
            for i in 1..c.args.args.len() {
                names.push(string_arg(ev, c, i, steps)?);
            }
            v.sort_by(|a, b| {
                let ord = names
                    .iter()
                    .map(|l| natural_cmp(a.labels.get(l), b.labels.get(l)))
                    .find(|o| o.is_ne())
                    .unwrap_or_else(|| a.labels.cmp(&b.labels));
                if name == "sort_by_label_desc" {
                    ord.reverse()
                } else {
                    ord
                }
            });
            vector(v)
        }
        "label_replace" => {
            let v = ev.eval_vector(arg(c, 0)?, steps)?;
            let dst = string_arg(ev, c, 1, steps)?;
            let repl = string_arg(ev, c, 2, steps)?;
            let src = string_arg(ev, c, 3, steps)?;
            let re = string_arg(ev, c, 4, steps)?;
            let regex = regex::Regex::new(&format!("^(?s:{re})$")).map_err(|e| {
                QueryError::BadRequest(format!(
                    "invalid regular expression in label_replace(): {re}: {e}"
                ))
            })?;
            if !is_valid_label_name(&dst) {
                return exec_err(format!(
                    "invalid destination label name in label_replace(): {dst}"
                ));
            }
            let out = v
                .into_iter()
                .map(|s| {
                    let Some(caps) = regex.captures(s.labels.get(&src)) else {
                        return s;
                    };
                    let mut value = String::new();
                    caps.expand(&repl, &mut value);
                    let mut labels = (*s.labels).clone();
                    labels.set(&dst, &value);
                    Series {
                        labels: Arc::new(labels),
                        values: s.values,
                        drop_name: s.drop_name && dst != NAME,
                    }
                })
                .collect();
            vector(merge_same_labels(out)?)
        }
        "label_join" => {
            let v = ev.eval_vector(arg(c, 0)?, steps)?;
            let dst = string_arg(ev, c, 1, steps)?;
            let sep = string_arg(ev, c, 2, steps)?;
            let mut srcs = Vec::new();
            for i in 3..c.args.args.len() {
                srcs.push(string_arg(ev, c, i, steps)?);
            }
            if !is_valid_label_name(&dst) {
                return exec_err(format!(
                    "invalid destination label name in label_join(): {dst}"
                ));
            }
            let out = v
                .into_iter()
                .map(|s| {
                    let joined = srcs
                        .iter()
                        .map(|l| s.labels.get(l))
                        .collect::<Vec<_>>()
                        .join(&sep);
                    let mut labels = (*s.labels).clone();
                    labels.set(&dst, &joined);
                    Series {
                        labels: Arc::new(labels),
                        values: s.values,
                        drop_name: s.drop_name && dst != NAME,
                    }
                })
                .collect();
            vector(merge_same_labels(out)?)
        }
        "absent" => {
            let a = arg(c, 0)?;
            let v = ev.eval_vector(a, steps)?;
            let values: Vec<f64> = (0..n)
                .map(|i| {
                    if v.iter().any(|s| present(s.values[i])) {
                        ABSENT
                    } else {
                        1.0
                    }
                })
                .collect();
            vector(absent_series(a, values))
        }
        "absent_over_time" => {
            let a = arg(c, 0)?;
            let r = ev.range_arg(a, steps)?;
            let values: Vec<f64> = (0..n)
                .map(|i| {
                    if (0..r.series.len()).any(|s| !r.window(s, i).is_empty()) {
                        ABSENT
                    } else {
                        1.0
                    }
                })
                .collect();
            vector(absent_series(a, values))
        }
        "histogram_quantile" => {
            let q = ev.eval_scalar(arg(c, 0)?, steps)?;
            let v = ev.eval_vector(arg(c, 1)?, steps)?;
            vector(super::histogram::quantile(&q, v)?)
        }
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_fraction"
        | "histogram_stddev" | "histogram_stdvar" => {
            // These read native histograms only; float samples are ignored.
            let last = c.args.args.len() - 1;
            ev.eval_vector(arg(c, last)?, steps)?;
            vector(Vec::new())
        }
        _ => range_function(ev, c, steps),
    }
}

fn range_function(ev: &Evaluator, c: &Call, steps: Steps) -> Result<Value> {
    let name = c.func.name;
    let n = steps.len();
    // Scalar parameters come before the range argument in quantile_over_time and after it
    // in predict_linear and double_exponential_smoothing.
    let (range_index, params): (usize, Vec<usize>) = match name {
        "quantile_over_time" => (1, vec![0]),
        "predict_linear" => (0, vec![1]),
        "double_exponential_smoothing" | "holt_winters" => (0, vec![1, 2]),
        _ => (0, vec![]),
    };
    let scalars = params
        .iter()
        .map(|&i| ev.eval_scalar(arg(c, i)?, steps))
        .collect::<Result<Vec<_>>>()?;
    let r = ev.range_arg(arg(c, range_index)?, steps)?;
    let series = match name {
        "rate" | "increase" | "delta" => {
            let counter = name != "delta";
            let per_second = name == "rate";
            over_time(r, false, |_, t, v, end, range| {
                extrapolated_rate(t, v, end, range, counter, per_second)
            })?
        }
        "irate" => over_time(r, false, |_, t, v, _, _| instant_delta(t, v, true))?,
        "idelta" => over_time(r, false, |_, t, v, _, _| instant_delta(t, v, false))?,
        "deriv" => over_time(r, false, |_, t, v, _, _| {
            (t.len() >= 2).then(|| linear_regression(t, v, t[0]).0)
        })?,
        "predict_linear" => {
            let dur = &scalars[0];
            over_time_at(r, false, |i, t, v, _, at, _| {
                (t.len() >= 2).then(|| {
                    let (slope, intercept) = linear_regression(t, v, at);
                    slope * dur[i] + intercept
                })
            })?
        }
        "resets" => over_time(r, false, |_, _, v, _, _| {
            Some(v.windows(2).filter(|w| w[1] < w[0]).count() as f64)
        })?,
        "changes" => over_time(r, false, |_, _, v, _, _| {
            Some(
                v.windows(2)
                    .filter(|w| !(w[1] == w[0] || (w[1].is_nan() && w[0].is_nan())))
                    .count() as f64,
            )
        })?,
        "avg_over_time" => over_time(r, false, |_, _, v, _, _| {
            let mut m = Mean::default();
            v.iter().for_each(|x| m.add(*x));
            Some(m.value())
        })?,
        "sum_over_time" => over_time(r, false, |_, _, v, _, _| Some(kahan_sum(v.iter().copied())))?,
        "count_over_time" => over_time(r, false, |_, _, v, _, _| Some(v.len() as f64))?,
        "present_over_time" => over_time(r, false, |_, _, _, _, _| Some(1.0))?,
        "min_over_time" | "max_over_time" => {
            let max = name == "max_over_time";
            over_time(r, false, |_, _, v, _, _| {
                let mut acc = v[0];
                for &x in &v[1..] {
                    if (max && x > acc) || (!max && x < acc) || acc.is_nan() {
                        acc = x;
                    }
                }
                Some(acc)
            })?
        }
        "last_over_time" => over_time(r, true, |_, _, v, _, _| v.last().copied())?,
        "first_over_time" => over_time(r, true, |_, _, v, _, _| v.first().copied())?,
        "ts_of_last_over_time" => {
            over_time(r, false, |_, t, _, _, _| t.last().map(|x| *x as f64 / 1e3))?
        }
        "ts_of_first_over_time" => {
            over_time(r, false, |_, t, _, _, _| t.first().map(|x| *x as f64 / 1e3))?
        }
        "ts_of_max_over_time" | "ts_of_min_over_time" => {
            let max = name == "ts_of_max_over_time";
            over_time(r, false, |_, t, v, _, _| {
                let mut best = 0;
                for i in 1..v.len() {
                    if (max && v[i] >= v[best]) || (!max && v[i] <= v[best]) || v[best].is_nan() {
                        best = i;
                    }
                }
                Some(t[best] as f64 / 1e3)
            })?
        }
        "stddev_over_time" => over_time(r, false, |_, _, v, _, _| Some(variance(v).sqrt()))?,
        "stdvar_over_time" => over_time(r, false, |_, _, v, _, _| Some(variance(v)))?,
        "quantile_over_time" => {
            let q = &scalars[0];
            over_time(r, false, |i, _, v, _, _| {
                Some(quantile(q[i], &mut v.to_vec()))
            })?
        }
        "mad_over_time" => over_time(r, false, |_, _, v, _, _| {
            if v.iter().any(|x| x.is_nan()) {
                return Some(f64::NAN);
            }
            let mut values = v.to_vec();
            let median = quantile(0.5, &mut values);
            let mut dev: Vec<f64> = v.iter().map(|x| (x - median).abs()).collect();
            Some(quantile(0.5, &mut dev))
        })?,
        "double_exponential_smoothing" | "holt_winters" => {
            let (sf, tf) = (&scalars[0], &scalars[1]);
            for i in 0..n {
                if !(sf[i] > 0.0 && sf[i] < 1.0) {
                    return exec_err(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {}",
                        sf[i]
                    ));
                }
                if !(tf[i] > 0.0 && tf[i] < 1.0) {
                    return exec_err(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {}",
                        tf[i]
                    ));
                }
            }
            over_time(r, false, |i, _, v, _, _| {
                double_exponential_smoothing(v, sf[i], tf[i])
            })?
        }
        other => {
            return Err(QueryError::BadRequest(format!(
                "function {other}() is not supported"
            )));
        }
    };
    Ok(Value::Vector(series))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_prometheus() {
        assert_eq!(quantile(0.5, &mut [1.0, 2.0, 3.0, 4.0]), 2.5);
        assert_eq!(quantile(0.0, &mut [3.0, 1.0]), 1.0);
        assert_eq!(quantile(2.0, &mut [3.0, 1.0]), f64::INFINITY);
    }

    #[test]
    fn rate_extrapolates_to_the_window_edges() {
        // Samples every 10s from 10s to 60s, counting 1/s, window (0, 60s].
        let t: Vec<i64> = (1..=6).map(|i| i * 10_000).collect();
        let v: Vec<f64> = (1..=6).map(|i| (i * 10) as f64).collect();
        let r = extrapolated_rate(&t, &v, 60_000, 60_000, true, true).unwrap();
        assert!((r - 1.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn mean_survives_overflow() {
        let mut m = Mean::default();
        m.add(f64::MAX);
        m.add(f64::MAX);
        assert_eq!(m.value(), f64::MAX);
    }
}
