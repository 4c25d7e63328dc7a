//! Aggregation operators: `sum`, `avg`, `count`, `min`, `max`, `group`, `stddev`, `stdvar`,
//! `quantile`, `topk`, `bottomk`, `limitk` and `count_values`, with `by` and `without`.
//!
//! Group keys are computed once per series; values are then folded step by step. `without`
//! also drops the metric name. `topk`/`bottomk`/`limitk` keep each chosen series' labels and,
//! in an instant query, return each group ordered by value (`topk` descending) as Prometheus
//! does; NaN is never preferred over a number.

use std::collections::HashMap;
use std::sync::Arc;

use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMIT_RATIO, T_LIMITK, T_MAX, T_MIN,
    T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::eval::{Evaluator, Result, exec_err};
use super::functions::{Mean, kahan_inc, quantile, variance};
use super::value::{ABSENT, Labels, Series, Steps, Value, format_float, present};
use crate::error::QueryError;

fn group_key(modifier: &Option<LabelModifier>, labels: &Labels) -> Labels {
    match modifier {
        None => Labels::default(),
        Some(LabelModifier::Include(ls)) => labels.keep(&ls.labels),
        Some(LabelModifier::Exclude(ls)) => labels.without(&ls.labels, true),
    }
}

/// Series indexes per group, groups in order of first appearance.
fn groups(modifier: &Option<LabelModifier>, input: &[Series]) -> Vec<(Labels, Vec<usize>)> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<(Labels, Vec<usize>)> = Vec::new();
    for (i, s) in input.iter().enumerate() {
        let key = group_key(modifier, &s.labels);
        match index.get(&key) {
            Some(&g) => out[g].1.push(i),
            None => {
                index.insert(key.clone(), out.len());
                out.push((key, vec![i]));
            }
        }
    }
    out
}

pub fn eval(ev: &Evaluator, a: &AggregateExpr, steps: Steps) -> Result<Value> {
    let op = a.op.id();
    let n = steps.len();
    let param_scalar = |ev: &Evaluator| -> Result<Vec<f64>> {
        let p = a
            .param
            .as_ref()
            .ok_or_else(|| QueryError::BadRequest(format!("{} needs a parameter", a.op)))?;
        ev.eval_scalar(p, steps)
    };
    if op == T_COUNT_VALUES {
        let label = match a.param.as_deref().map(|p| ev.eval(p, steps)).transpose()? {
            Some(Value::String(s)) => s,
            _ => {
                return Err(QueryError::BadRequest(
                    "count_values needs a string parameter".into(),
                ));
            }
        };
        let input = ev.eval_vector(&a.expr, steps)?;
        return Ok(Value::Vector(count_values(ev, a, &label, &input, n)?));
    }
    let param = match op {
        T_TOPK | T_BOTTOMK | T_LIMITK | T_QUANTILE | T_LIMIT_RATIO => Some(param_scalar(ev)?),
        _ => None,
    };
    let input = ev.eval_vector(&a.expr, steps)?;
    let groups = groups(&a.modifier, &input);
    match op {
        T_TOPK | T_BOTTOMK | T_LIMITK => {
            let k = param.unwrap_or_default();
            if k.iter().any(|x| x.is_nan()) {
                return exec_err("Parameter value is NaN");
            }
            Ok(Value::Vector(select_k(op, &k, &input, &groups, n)))
        }
        T_LIMIT_RATIO => {
            let r = param.unwrap_or_default();
            if r.iter().any(|x| x.is_nan()) {
                return exec_err("Ratio value is NaN");
            }
            Ok(Value::Vector(limit_ratio(&r, input)))
        }
        _ => {
            let mut out = Vec::with_capacity(groups.len());
            let mut values_at = Vec::new();
            for (key, members) in groups {
                // A group keyed by the name keeps a pending name drop of its members.
                let drop_name =
                    !key.name().is_empty() && members.iter().any(|&m| input[m].drop_name);
                let mut values = vec![ABSENT; n];
                for (i, slot) in values.iter_mut().enumerate() {
                    values_at.clear();
                    values_at.extend(
                        members
                            .iter()
                            .map(|&m| input[m].values[i])
                            .filter(|v| present(*v)),
                    );
                    if values_at.is_empty() {
                        continue;
                    }
                    *slot = fold(op, &mut values_at, param.as_ref().map(|p| p[i]))?;
                }
                out.push(Series {
                    labels: Arc::new(key),
                    values,
                    drop_name,
                });
            }
            out.retain(Series::any_present);
            Ok(Value::Vector(out))
        }
    }
}

/// One group's value at one step.
fn fold(op: u16, values: &mut [f64], param: Option<f64>) -> Result<f64> {
    Ok(match op {
        T_SUM => {
            let (mut sum, mut c) = (0.0, 0.0);
            for &v in values.iter() {
                (sum, c) = kahan_inc(v, sum, c);
            }
            if sum.is_infinite() { sum } else { sum + c }
        }
        T_AVG => {
            let mut m = Mean::default();
            values.iter().for_each(|v| m.add(*v));
            m.value()
        }
        T_COUNT => values.len() as f64,
        T_GROUP => 1.0,
        T_MIN | T_MAX => {
            let max = op == T_MAX;
            let mut acc = values[0];
            for &v in &values[1..] {
                if (max && v > acc) || (!max && v < acc) || acc.is_nan() {
                    acc = v;
                }
            }
            acc
        }
        T_STDVAR => variance(values),
        T_STDDEV => variance(values).sqrt(),
        T_QUANTILE => quantile(param.unwrap_or(f64::NAN), values),
        _ => {
            return Err(QueryError::BadRequest(
                "unsupported aggregation operator".into(),
            ));
        }
    })
}

/// `topk`, `bottomk` and `limitk`: per group and step, the chosen series keep their value.
fn select_k(
    op: u16,
    k: &[f64],
    input: &[Series],
    groups: &[(Labels, Vec<usize>)],
    n: usize,
) -> Vec<Series> {
    let mut chosen: Vec<Vec<f64>> = vec![Vec::new(); input.len()];
    let mut candidates: Vec<usize> = Vec::new();
    for (_, members) in groups {
        for i in 0..n {
            let want = if k[i] >= 1.0 {
                k[i].min(1e9) as usize
            } else {
                0
            };
            if want == 0 {
                continue;
            }
            candidates.clear();
            candidates.extend(
                members
                    .iter()
                    .copied()
                    .filter(|&m| present(input[m].values[i])),
            );
            if op != T_LIMITK {
                let top = op == T_TOPK;
                candidates.sort_by(|&x, &y| {
                    let (a, b) = (input[x].values[i], input[y].values[i]);
                    match (a.is_nan(), b.is_nan()) {
                        (true, true) => std::cmp::Ordering::Equal,
                        (true, false) => std::cmp::Ordering::Greater,
                        (false, true) => std::cmp::Ordering::Less,
                        _ if top => b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal),
                        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
                    }
                });
            }
            for &m in candidates.iter().take(want) {
                if chosen[m].is_empty() {
                    chosen[m] = vec![ABSENT; n];
                }
                chosen[m][i] = input[m].values[i];
            }
        }
    }
    let mut out = Vec::new();
    for (_, members) in groups {
        let mut group: Vec<Series> = Vec::new();
        for &m in members {
            if !chosen[m].is_empty() {
                group.push(Series {
                    labels: input[m].labels.clone(),
                    values: std::mem::take(&mut chosen[m]),
                    drop_name: input[m].drop_name,
                });
            }
        }
        if n == 1 && op != T_LIMITK {
            let top = op == T_TOPK;
            group.sort_by(|a, b| {
                let (x, y) = (a.values[0], b.values[0]);
                match (x.is_nan(), y.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if top => y.partial_cmp(&x).unwrap_or(std::cmp::Ordering::Equal),
                    _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                }
            });
        }
        out.extend(group);
    }
    out
}

/// `limit_ratio(r, v)`: a series is kept when its label hash, as a fraction of the hash
/// space, is below `r` (or, for negative `r`, at least `1 + r`). The hash is Prometheus's
/// `labels.Hash()` (xxHash64 of `name 0xff value 0xff ...`), so both systems keep the same
/// series.
fn limit_ratio(ratio: &[f64], input: Vec<Series>) -> Vec<Series> {
    let mut out = Vec::new();
    for mut s in input {
        let mut bytes = Vec::new();
        for (k, v) in s.labels.iter() {
            bytes.extend_from_slice(k.as_bytes());
            bytes.push(0xff);
            bytes.extend_from_slice(v.as_bytes());
            bytes.push(0xff);
        }
        let offset = xxhash_rust::xxh64::xxh64(&bytes, 0) as f64 / u64::MAX as f64;
        for (i, v) in s.values.iter_mut().enumerate() {
            let r = ratio[i].clamp(-1.0, 1.0);
            let keep = (r >= 0.0 && offset < r) || (r < 0.0 && offset >= 1.0 + r);
            if !keep {
                *v = ABSENT;
            }
        }
        if s.any_present() {
            out.push(s);
        }
    }
    out
}

fn count_values(
    ev: &Evaluator,
    a: &AggregateExpr,
    label: &str,
    input: &[Series],
    n: usize,
) -> Result<Vec<Series>> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::new();
    for s in input {
        let key = group_key(&a.modifier, &s.labels);
        for i in 0..n {
            let v = s.values[i];
            if !present(v) {
                continue;
            }
            let mut labels = key.clone();
            labels.set(label, &format_float(v));
            let slot = match index.get(&labels) {
                Some(&slot) => slot,
                None => {
                    // Every distinct value is a whole output series: bound them like
                    // selected series.
                    ev.check_cells(n, "count_values")?;
                    out.push(Series::new(Arc::new(labels.clone()), vec![ABSENT; n]));
                    index.insert(labels, out.len() - 1);
                    out.len() - 1
                }
            };
            let cell = &mut out[slot].values[i];
            *cell = if present(*cell) { *cell + 1.0 } else { 1.0 };
        }
    }
    Ok(out)
}
