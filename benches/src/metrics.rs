//! Deterministic OTLP metric generation over a fixed number of series.
//!
//! Series `j` is metric `METRICS[j % METRICS.len()]` with labels derived from `j` (service,
//! instance, method, status code), the way a fleet of exporters scraped every 15 s looks. The
//! run is one global sequence of points: point `k` is series `k % series` at step
//! `k / series`, so a request holds a contiguous slice of it. Counters grow monotonically per
//! series; gauges wander. Samples are number points (gauges and cumulative sums): the unit the
//! bytes-per-sample goal speaks of.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::rng::Rng;
use crate::traces::{SERVICES, kv, s};

/// The shape of generated metrics.
#[derive(Debug, Clone)]
pub struct MetricShape {
    pub seed: u64,
    pub series: u64,
    pub points_per_request: u64,
    /// Timestamp of step 0, Unix nanoseconds.
    pub start_nanos: u64,
    /// Time between two points of a series.
    pub interval_nanos: u64,
}

/// One generated export request.
pub struct MetricRequest {
    pub request: ExportMetricsServiceRequest,
    pub points: u64,
}

/// (name, unit, is a counter).
const METRICS: [(&str, &str, bool); 10] = [
    ("http.server.requests", "{request}", true),
    ("http.server.errors", "{request}", true),
    ("process.cpu.time", "s", true),
    ("network.io.received", "By", true),
    ("network.io.transmitted", "By", true),
    ("process.memory.usage", "By", false),
    ("process.open_file_descriptors", "{fd}", false),
    ("jvm.threads.count", "{thread}", false),
    ("queue.depth", "{message}", false),
    ("system.cpu.utilization", "1", false),
];
const METHODS: [&str; 4] = ["GET", "POST", "PUT", "DELETE"];
const CODES: [i64; 4] = [200, 201, 404, 500];

/// Labels of series `j`: (service, instance, data point attributes).
fn labels(j: u64) -> (usize, String, Vec<KeyValue>) {
    let rest = j / METRICS.len() as u64;
    let service = (rest % SERVICES.len() as u64) as usize;
    let rest = rest / SERVICES.len() as u64;
    let instance = format!("10.1.{}.{}:9464", rest / 16 % 256, rest % 16);
    let rest = rest / 16;
    let attributes = vec![
        kv(
            "http.request.method",
            s(METHODS[(rest % METHODS.len() as u64) as usize]),
        ),
        kv(
            "http.response.status_code",
            any_value::Value::IntValue(CODES[(rest / 4 % CODES.len() as u64) as usize]),
        ),
        kv("shard", any_value::Value::IntValue((rest / 16) as i64)),
    ];
    (service, instance, attributes)
}

/// Request number `i`: points `i * points_per_request ..` of the run's sequence.
pub fn request(shape: &MetricShape, i: u64) -> MetricRequest {
    let series = shape.series.max(1);
    // resource (service, instance) -> metric index -> points
    let mut grouped: BTreeMap<(usize, String), BTreeMap<usize, Vec<NumberDataPoint>>> =
        BTreeMap::new();
    for k in i * shape.points_per_request..(i + 1) * shape.points_per_request {
        let (j, step) = (k % series, k / series);
        let metric = (j % METRICS.len() as u64) as usize;
        let (service, instance, attributes) = labels(j);
        let mut rng = Rng::for_request(shape.seed ^ j, step);
        let value = if METRICS[metric].2 {
            // A per-series rate (1..100 per interval) plus jitter, accumulated.
            let rate = 1 + (j * 7919 + shape.seed) % 100;
            (step * rate + rng.below(rate)) as f64
        } else {
            let base = ((j * 104_729) % 1000) as f64;
            base + (step as f64 / 8.0).sin() * base / 4.0 + rng.below(10) as f64
        };
        grouped
            .entry((service, instance))
            .or_default()
            .entry(metric)
            .or_default()
            .push(NumberDataPoint {
                attributes,
                start_time_unix_nano: shape.start_nanos,
                time_unix_nano: shape.start_nanos + step * shape.interval_nanos,
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            });
    }
    let resource_metrics = grouped
        .into_iter()
        .map(|((service, instance), metrics)| ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", s(SERVICES[service])),
                    kv("service.instance.id", s(instance)),
                    kv("k8s.namespace.name", s("shop")),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: "strata-loadgen".into(),
                    ..Default::default()
                }),
                metrics: metrics
                    .into_iter()
                    .map(|(m, data_points)| {
                        let (name, unit, counter) = METRICS[m];
                        Metric {
                            name: name.into(),
                            unit: unit.into(),
                            data: Some(if counter {
                                Data::Sum(Sum {
                                    data_points,
                                    aggregation_temporality: AggregationTemporality::Cumulative
                                        as i32,
                                    is_monotonic: true,
                                })
                            } else {
                                Data::Gauge(Gauge { data_points })
                            }),
                            ..Default::default()
                        }
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    MetricRequest {
        request: ExportMetricsServiceRequest { resource_metrics },
        points: shape.points_per_request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_are_distinct_and_counters_grow() {
        let shape = MetricShape {
            seed: 1,
            series: 1000,
            points_per_request: 1000,
            start_nanos: 1_000_000_000,
            interval_nanos: 15_000_000_000,
        };
        let mut keys = std::collections::HashSet::new();
        for j in 0..1000 {
            let (svc, inst, attrs) = labels(j);
            keys.insert(format!("{}{svc}{inst}{attrs:?}", j % 10));
        }
        assert_eq!(keys.len(), 1000);
        let first_value = |r: &MetricRequest| match &r.request.resource_metrics[0].scope_metrics[0]
            .metrics[0]
            .data
        {
            Some(Data::Sum(sum)) => match sum.data_points[0].value {
                Some(number_data_point::Value::AsDouble(v)) => v,
                _ => f64::NAN,
            },
            _ => f64::NAN,
        };
        let (a, b) = (request(&shape, 0), request(&shape, 1));
        assert!(first_value(&b) > first_value(&a));
        let points: usize = a.request.resource_metrics[..]
            .iter()
            .flat_map(|r| &r.scope_metrics[0].metrics)
            .map(|m| match &m.data {
                Some(Data::Sum(s)) => s.data_points.len(),
                Some(Data::Gauge(g)) => g.data_points.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(points, 1000);
    }
}
