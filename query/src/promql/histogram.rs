//! `histogram_quantile` over classic histograms: the `_bucket` series of one histogram are
//! those equal but for `le` (and the metric name); per step their cumulative counts give the
//! quantile by linear interpolation inside the bucket the rank falls in, as Prometheus does
//! (buckets sorted and coalesced by bound, counts forced monotonic, tiny float deltas
//! ignored, NaN without a `+Inf` bucket).

use std::collections::HashMap;
use std::sync::Arc;

use super::eval::{Result, merge_same_labels};
use super::value::{ABSENT, Labels, Series, present};

const SMALL_DELTA_TOLERANCE: f64 = 1e-12;

fn almost_equal(a: f64, b: f64, epsilon: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < epsilon * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < epsilon
}

/// The `q`-quantile of buckets given as (upper bound, cumulative count).
pub fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    if buckets.last().is_none_or(|b| b.0 != f64::INFINITY) {
        return f64::NAN;
    }
    // Coalesce equal bounds.
    buckets.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 += next.1;
            true
        } else {
            false
        }
    });
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, SMALL_DELTA_TOLERANCE) || curr < prev {
            b.1 = prev;
            continue;
        }
        prev = curr;
    }
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = buckets[..buckets.len() - 1].partition_point(|x| x.1 < rank);
    if b == buckets.len() - 1 {
        return buckets[buckets.len() - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let end = buckets[b].0;
    let mut count = buckets[b].1;
    let mut start = 0.0;
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// `histogram_quantile(q, buckets)` for every histogram in `series`.
pub fn quantile(q: &[f64], series: Vec<Series>) -> Result<Vec<Series>> {
    let steps = q.len();
    let mut groups: HashMap<Labels, Vec<(f64, Series)>> = HashMap::new();
    let mut order = Vec::new();
    for s in series {
        let le = s.labels.get("le");
        if le.is_empty() {
            continue;
        }
        let Ok(bound) = parse_bound(le) else { continue };
        let key = s.labels.without(&["le".to_string()], true);
        let group = groups.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            Vec::new()
        });
        group.push((bound, s));
    }
    let mut out = Vec::with_capacity(order.len());
    let mut buckets = Vec::new();
    for key in order {
        let members = &groups[&key];
        let mut values = vec![ABSENT; steps];
        for (i, slot) in values.iter_mut().enumerate() {
            buckets.clear();
            buckets.extend(
                members
                    .iter()
                    .filter(|(_, s)| present(s.values[i]))
                    .map(|(b, s)| (*b, s.values[i])),
            );
            if !buckets.is_empty() {
                *slot = bucket_quantile(q[i], &mut buckets);
            }
        }
        out.push(Series::new(Arc::new(key), values));
    }
    merge_same_labels(out)
}

fn parse_bound(s: &str) -> Result<f64, ()> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Ok(f64::INFINITY),
        "-Inf" | "-inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse().map_err(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_inside_the_bucket() {
        let mut b = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(bucket_quantile(0.5, &mut b), 1.0);
        let mut b = vec![(1.0, 10.0), (2.0, 20.0), (f64::INFINITY, 20.0)];
        assert_eq!(bucket_quantile(0.75, &mut b), 1.5);
        let mut b = vec![(1.0, 10.0)];
        assert!(bucket_quantile(0.5, &mut b).is_nan());
    }
}
