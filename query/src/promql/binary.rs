//! Binary operators: arithmetic, comparisons (filtering, or `bool`), `atan2` and the set
//! operators `and`, `or`, `unless`, between scalars and vectors, with vector matching by
//! `on`/`ignoring` and `group_left`/`group_right`.
//!
//! Match signatures and result labels are computed once per series (pair); values are then
//! matched step by step, so the errors Prometheus raises per step (duplicate series on the
//! "one" side, an unmarked many-to-one match, non-unique grouping labels) are raised only at
//! steps where they occur. Arithmetic and `bool` drop the metric name; filters keep it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::eval::{Evaluator, Result, exec_err, merge_same_labels};
use super::value::{ABSENT, Labels, Series, Steps, Value, present};
use crate::error::QueryError;

fn is_comparison(op: u16) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

fn arith(op: u16, a: f64, b: f64) -> f64 {
    match op {
        T_ADD => a + b,
        T_SUB => a - b,
        T_MUL => a * b,
        T_DIV => a / b,
        T_MOD => a % b,
        T_POW => a.powf(b),
        T_ATAN2 => a.atan2(b),
        _ => f64::NAN,
    }
}

fn compare(op: u16, a: f64, b: f64) -> bool {
    match op {
        T_EQLC => a == b,
        T_NEQ => a != b,
        T_GTR => a > b,
        T_LSS => a < b,
        T_GTE => a >= b,
        T_LTE => a <= b,
        _ => false,
    }
}

/// The value of `l op r`, or `None` when a comparison filters the element out.
/// `keep` is the value a passing filter keeps.
fn element(op: u16, l: f64, r: f64, return_bool: bool, keep: f64) -> Option<f64> {
    if is_comparison(op) {
        let ok = compare(op, l, r);
        if return_bool {
            Some(if ok { 1.0 } else { 0.0 })
        } else {
            ok.then_some(keep)
        }
    } else {
        Some(arith(op, l, r))
    }
}

pub fn eval(ev: &Evaluator, b: &BinaryExpr, steps: Steps) -> Result<Value> {
    let op = b.op.id();
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ev.eval(&b.lhs, steps)?;
    let rhs = ev.eval(&b.rhs, steps)?;
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => Ok(Value::Scalar(
            l.into_iter()
                .zip(r)
                .map(|(a, c)| element(op, a, c, true, a).unwrap_or(f64::NAN))
                .collect(),
        )),
        (Value::Vector(v), Value::Scalar(s)) => {
            Ok(Value::Vector(vector_scalar(op, v, &s, false, return_bool)?))
        }
        (Value::Scalar(s), Value::Vector(v)) => {
            Ok(Value::Vector(vector_scalar(op, v, &s, true, return_bool)?))
        }
        (Value::Vector(l), Value::Vector(r)) => {
            if matches!(op, T_LAND | T_LOR | T_LUNLESS) {
                Ok(Value::Vector(set_op(op, b, l, r, steps.len())?))
            } else {
                Ok(Value::Vector(vector_vector(
                    op,
                    b,
                    l,
                    r,
                    return_bool,
                    steps.len(),
                )?))
            }
        }
        (l, r) => Err(QueryError::BadRequest(format!(
            "binary operator {} is not defined between {} and {}",
            b.op,
            l.type_name(),
            r.type_name()
        ))),
    }
}

fn vector_scalar(
    op: u16,
    v: Vec<Series>,
    s: &[f64],
    scalar_left: bool,
    return_bool: bool,
) -> Result<Vec<Series>> {
    let drop_name = !is_comparison(op) || return_bool;
    let out = v
        .into_iter()
        .map(|series| {
            let values = series
                .values
                .iter()
                .enumerate()
                .map(|(i, &x)| {
                    if !present(x) {
                        return ABSENT;
                    }
                    let (l, r) = if scalar_left { (s[i], x) } else { (x, s[i]) };
                    element(op, l, r, return_bool, x).unwrap_or(ABSENT)
                })
                .collect();
            Series {
                labels: series.labels,
                values,
                drop_name: drop_name || series.drop_name,
            }
        })
        .collect();
    merge_same_labels(out)
}

/// The matching signature function of a binary expression.
fn signature(b: &BinaryExpr) -> impl Fn(&Labels) -> Labels + '_ {
    move |l: &Labels| match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
        Some(LabelModifier::Include(on)) => l.keep(&on.labels),
        Some(LabelModifier::Exclude(ignoring)) => l.without(&ignoring.labels, true),
        None => l.without_name(),
    }
}

fn set_op(
    op: u16,
    b: &BinaryExpr,
    l: Vec<Series>,
    r: Vec<Series>,
    n: usize,
) -> Result<Vec<Series>> {
    let sig = signature(b);
    let lsig: Vec<Labels> = l.iter().map(|s| sig(&s.labels)).collect();
    let rsig: Vec<Labels> = r.iter().map(|s| sig(&s.labels)).collect();
    let mut lout: Vec<Vec<f64>> = vec![vec![ABSENT; n]; l.len()];
    let mut rout: Vec<Vec<f64>> = vec![vec![ABSENT; n]; r.len()];
    let mut seen: HashSet<&Labels> = HashSet::new();
    for i in 0..n {
        let lp: Vec<usize> = (0..l.len()).filter(|&j| present(l[j].values[i])).collect();
        let rp: Vec<usize> = (0..r.len()).filter(|&j| present(r[j].values[i])).collect();
        seen.clear();
        match op {
            T_LAND => {
                if lp.is_empty() || rp.is_empty() {
                    continue;
                }
                seen.extend(rp.iter().map(|&j| &rsig[j]));
                for &j in &lp {
                    if seen.contains(&lsig[j]) {
                        lout[j][i] = l[j].values[i];
                    }
                }
            }
            T_LOR => {
                for &j in &lp {
                    lout[j][i] = l[j].values[i];
                    seen.insert(&lsig[j]);
                }
                for &j in &rp {
                    if !seen.contains(&rsig[j]) {
                        rout[j][i] = r[j].values[i];
                    }
                }
            }
            _ => {
                seen.extend(rp.iter().map(|&j| &rsig[j]));
                for &j in &lp {
                    if !seen.contains(&lsig[j]) {
                        lout[j][i] = l[j].values[i];
                    }
                }
            }
        }
    }
    let out = l
        .into_iter()
        .zip(lout)
        .chain(r.into_iter().zip(rout))
        .map(|(s, values)| Series {
            labels: s.labels,
            values,
            drop_name: s.drop_name,
        })
        .collect();
    merge_same_labels(out)
}

fn vector_vector(
    op: u16,
    b: &BinaryExpr,
    l: Vec<Series>,
    r: Vec<Series>,
    return_bool: bool,
    n: usize,
) -> Result<Vec<Series>> {
    let card = b
        .modifier
        .as_ref()
        .map(|m| m.card.clone())
        .unwrap_or(VectorMatchCardinality::OneToOne);
    let (on, names): (bool, Vec<String>) =
        match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(ls)) => (true, ls.labels.clone()),
            Some(LabelModifier::Exclude(ls)) => (false, ls.labels.clone()),
            None => (false, Vec::new()),
        };
    let include: Vec<String> = card
        .labels()
        .map(|ls| ls.labels.clone())
        .unwrap_or_default();
    let one_to_many = matches!(card, VectorMatchCardinality::OneToMany(_));
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    let (many, one) = if one_to_many { (r, l) } else { (l, r) };
    let sig = signature(b);
    let many_sig: Vec<Labels> = many.iter().map(|s| sig(&s.labels)).collect();
    let mut one_by_sig: HashMap<Labels, Vec<usize>> = HashMap::new();
    for (j, s) in one.iter().enumerate() {
        one_by_sig.entry(sig(&s.labels)).or_default().push(j);
    }
    let drop_name = !is_comparison(op) || return_bool;
    let result_labels = |m: &Labels, o: &Labels| {
        let mut labels = m.clone();
        if one_to_one {
            labels = if on {
                labels.keep(&names)
            } else {
                labels.without(&names, false)
            };
        }
        for name in &include {
            labels.set(name, o.get(name));
        }
        labels
    };
    let mut outputs: HashMap<(usize, usize), usize> = HashMap::new();
    let mut out: Vec<Series> = Vec::new();
    let mut matched: HashMap<&Labels, HashSet<Arc<Labels>>> = HashMap::new();
    for i in 0..n {
        if !many.iter().any(|s| present(s.values[i])) || !one.iter().any(|s| present(s.values[i])) {
            continue;
        }
        // The "one" side must be unique per signature at this step.
        let mut one_at: HashMap<&Labels, usize> = HashMap::new();
        for (key, members) in &one_by_sig {
            let mut present_members = members.iter().filter(|&&j| present(one[j].values[i]));
            if let Some(&first) = present_members.next() {
                if let Some(&second) = present_members.next() {
                    let side = if one_to_many { "left" } else { "right" };
                    return exec_err(format!(
                        "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                        key.braced(),
                        one[first].labels.braced(),
                        one[second].labels.braced()
                    ));
                }
                one_at.insert(key, first);
            }
        }
        matched.clear();
        for (m, ms) in many.iter().enumerate() {
            let mv = ms.values[i];
            if !present(mv) {
                continue;
            }
            let Some(&o) = one_at.get(&many_sig[m]) else {
                continue;
            };
            let ov = one[o].values[i];
            let (fl, fr) = if one_to_many { (ov, mv) } else { (mv, ov) };
            let value = element(op, fl, fr, return_bool, fl);
            // One-to-one matches are checked before a filter drops the element.
            if one_to_one {
                if matched.contains_key(&many_sig[m]) {
                    return exec_err(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
                    );
                }
                matched.insert(&many_sig[m], HashSet::new());
            }
            let Some(value) = value else {
                continue;
            };
            let idx = *outputs.entry((m, o)).or_insert_with(|| {
                out.push(Series {
                    labels: Arc::new(result_labels(&ms.labels, &one[o].labels)),
                    values: vec![ABSENT; n],
                    drop_name: drop_name || ms.drop_name,
                });
                out.len() - 1
            });
            let labels = out[idx].labels.clone();
            match matched.get_mut(&many_sig[m]) {
                Some(_) if one_to_one => {}
                Some(set) => {
                    if !set.insert(labels) {
                        return exec_err(
                            "multiple matches for labels: grouping labels must ensure unique matches",
                        );
                    }
                }
                None => {
                    matched.insert(&many_sig[m], HashSet::from([labels]));
                }
            }
            out[idx].values[i] = value;
        }
    }
    merge_same_labels(out)
}
