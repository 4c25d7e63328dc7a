//! RED aggregation: calls and a latency histogram per (service, span name, kind, status),
//! cumulative since the collector started, with a bounded number of series per tenant.
//!
//! Invariant: once a tenant has `max_series` series, spans of new keys are counted in one
//! overflow series (attribute `otel.metric.overflow = true`, as the OpenTelemetry SDKs do)
//! instead of growing memory; existing series keep counting.

use std::collections::HashMap;

/// Labels of one RED series (Tempo's metrics-generator labels).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RedKey {
    pub service: String,
    pub span_name: String,
    pub kind: i32,
    pub status: i32,
}

/// A cumulative explicit-bucket histogram of seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Per-bucket counts (not cumulative), one more than the bounds.
    pub counts: Vec<u64>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds: &[f64]) -> Self {
        Self {
            counts: vec![0; bounds.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    pub fn observe(&mut self, bounds: &[f64], seconds: f64) {
        let i = bounds.partition_point(|b| *b < seconds);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// The series of one tenant. Spans look their series up by a hash of the borrowed labels, so
/// counting a span allocates nothing unless it starts a new series.
#[derive(Debug, Default)]
pub struct Red {
    series: HashMap<u64, Vec<(RedKey, Histogram)>>,
    len: usize,
    /// Spans of keys that found no room.
    pub overflow: Option<Histogram>,
}

fn hash(service: &str, span_name: &str, kind: i32, status: i32) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(service.as_bytes());
    h.update(&[0xff]);
    h.update(span_name.as_bytes());
    h.update(&kind.to_le_bytes());
    h.update(&status.to_le_bytes());
    h.digest()
}

impl Red {
    /// Counts one span; returns false when it went to the overflow series.
    pub fn observe(
        &mut self,
        (service, span_name, kind, status): (&str, &str, i32, i32),
        seconds: f64,
        bounds: &[f64],
        max_series: usize,
    ) -> bool {
        let room = self.len < max_series;
        let bucket = self
            .series
            .entry(hash(service, span_name, kind, status))
            .or_default();
        let found = bucket.iter_mut().find(|(k, _)| {
            k.service == service && k.span_name == span_name && k.kind == kind && k.status == status
        });
        match found {
            Some((_, h)) => {
                h.observe(bounds, seconds);
                true
            }
            None if room => {
                let mut h = Histogram::new(bounds);
                h.observe(bounds, seconds);
                let key = RedKey {
                    service: service.to_string(),
                    span_name: span_name.to_string(),
                    kind,
                    status,
                };
                bucket.push((key, h));
                self.len += 1;
                true
            }
            None => {
                self.overflow
                    .get_or_insert_with(|| Histogram::new(bounds))
                    .observe(bounds, seconds);
                false
            }
        }
    }

    /// Every series, in label order.
    pub fn series(&self) -> Vec<(&RedKey, &Histogram)> {
        let mut out: Vec<_> = self
            .series
            .values()
            .flatten()
            .map(|(k, h)| (k, h))
            .collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_upper_inclusive_and_series_bounded() {
        let bounds = [0.1, 1.0];
        let mut h = Histogram::new(&bounds);
        for s in [0.05, 0.1, 0.5, 1.0, 3.0] {
            h.observe(&bounds, s);
        }
        assert_eq!(h.counts, vec![2, 2, 1]);
        assert_eq!(h.count, 5);
        let mut red = Red::default();
        let key = |s| (s, "op", 2, 0);
        assert!(red.observe(key("a"), 0.2, &bounds, 1));
        assert!(red.observe(key("a"), 0.2, &bounds, 1));
        assert!(!red.observe(key("b"), 0.2, &bounds, 1));
        let series = red.series();
        assert_eq!(series.len(), 1);
        assert_eq!((series[0].0.service.as_str(), series[0].1.count), ("a", 2));
        assert_eq!(red.overflow.as_ref().unwrap().count, 1);
    }
}
