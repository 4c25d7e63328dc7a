//! OTLP metrics to Prometheus series, the way Prometheus's own OTLP receiver names them
//! (`UnderscoreEscapingWithSuffixes`), so the same data reads the same in both systems.
//!
//! - Metric names: split on every character other than letters, digits and `:`, joined with
//!   `_`; the unit's Prometheus word appended (`s` -> `seconds`, `By` -> `bytes`, `m/s` ->
//!   `meters_per_second`, `{...}` annotations dropped); `_total` for monotonic sums, `_ratio`
//!   for gauges of unit `1`.
//! - Label names: invalid characters become `_`, a leading digit gets a `key_` prefix.
//!   `job` is `service.namespace/service.name` (or `service.name`), `instance` is
//!   `service.instance.id`.
//! - Histograms become `_bucket{le}` (cumulative), `_sum` and `_count`; summaries become
//!   `{quantile}`, `_sum` and `_count`. Exponential histograms are native histograms in
//!   Prometheus, which this engine does not evaluate: they are not visible to PromQL.
//! - A point flagged "no recorded value" reads as a staleness marker.
//! - Points under the [`PROMETHEUS_SCOPE`] arrived in Prometheus's model and keep their names.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    ResourceMetrics, metric::Data, number_data_point::Value as NumberValue,
};
use strata_schema::any_value_to_string;
use strata_schema::metrics::PROMETHEUS_SCOPE;

use super::value::{Labels, NAME, STALE_NAN_BITS, format_float};

const NO_RECORDED_VALUE: u32 = 1;

/// The Prometheus name of an OTLP metric.
pub fn metric_name(name: &str, unit: &str, is_counter: bool, is_gauge: bool) -> String {
    let mut tokens: Vec<&str> = name
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == ':'))
        .filter(|t| !t.is_empty())
        .collect();
    let (main, per) = unit_words(unit);
    if let Some(main) = main
        && !tokens.contains(&main)
    {
        tokens.push(main);
    }
    if let Some(per) = per
        && !tokens.contains(&per)
    {
        tokens.push("per");
        tokens.push(per);
    }
    if is_counter {
        tokens.retain(|t| *t != "total");
        tokens.push("total");
    }
    if unit == "1" && is_gauge {
        tokens.retain(|t| *t != "ratio");
        tokens.push("ratio");
    }
    let mut out = tokens.join("_");
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// The Prometheus words of a UCUM unit: the main unit and the "per" unit.
fn unit_words(unit: &str) -> (Option<&'static str>, Option<&'static str>) {
    let unit = unit.trim();
    if unit.is_empty() || unit.starts_with('{') {
        return (None, None);
    }
    let (main, per) = match unit.split_once('/') {
        Some((m, p)) => (m.trim(), Some(p.trim())),
        None => (unit, None),
    };
    let main = match main {
        "d" => Some("days"),
        "h" => Some("hours"),
        "min" => Some("minutes"),
        "s" => Some("seconds"),
        "ms" => Some("milliseconds"),
        "us" => Some("microseconds"),
        "ns" => Some("nanoseconds"),
        "By" => Some("bytes"),
        "KiBy" => Some("kibibytes"),
        "MiBy" => Some("mebibytes"),
        "GiBy" => Some("gibibytes"),
        "TiBy" => Some("tibibytes"),
        "KBy" => Some("kilobytes"),
        "MBy" => Some("megabytes"),
        "GBy" => Some("gigabytes"),
        "TBy" => Some("terabytes"),
        "m" => Some("meters"),
        "V" => Some("volts"),
        "A" => Some("amperes"),
        "J" => Some("joules"),
        "W" => Some("watts"),
        "g" => Some("grams"),
        "Cel" => Some("celsius"),
        "Hz" => Some("hertz"),
        "%" => Some("percent"),
        _ => None,
    };
    let per = per.and_then(|p| match p {
        "s" => Some("second"),
        "m" => Some("minute"),
        "h" => Some("hour"),
        "d" => Some("day"),
        "w" => Some("week"),
        "mo" => Some("month"),
        "y" => Some("year"),
        _ => None,
    });
    (main, per)
}

/// A Prometheus label name for an OTLP attribute key.
pub fn label_name(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    out
}

fn attribute_labels(attrs: &[KeyValue], translate: bool, out: &mut Vec<(String, String)>) {
    for kv in attrs {
        let value = kv
            .value
            .as_ref()
            .map(any_value_to_string)
            .unwrap_or_default();
        let name = if translate {
            label_name(&kv.key)
        } else {
            kv.key.clone()
        };
        out.push((name, value));
    }
}

fn resource_labels(rm: &ResourceMetrics) -> Vec<(String, String)> {
    let Some(resource) = &rm.resource else {
        return Vec::new();
    };
    let get = |key: &str| {
        resource
            .attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .map(any_value_to_string)
            .unwrap_or_default()
    };
    let (service, namespace, instance) = (
        get("service.name"),
        get("service.namespace"),
        get("service.instance.id"),
    );
    let job = match (namespace.is_empty(), service.is_empty()) {
        (_, true) => String::new(),
        (true, false) => service,
        (false, false) => format!("{namespace}/{service}"),
    };
    vec![("job".into(), job), ("instance".into(), instance)]
}

pub fn time_ms(nanos: u64) -> i64 {
    (nanos / 1_000_000) as i64
}

pub fn flagged(flags: u32, v: f64) -> f64 {
    if flags & NO_RECORDED_VALUE != 0 {
        f64::from_bits(STALE_NAN_BITS)
    } else {
        v
    }
}

/// Calls `sink(labels, time_ms, value)` for every Prometheus sample in `resources`.
/// `wanted(name)` is asked once per metric and suffix name, so callers skip whole metrics
/// whose names no selector wants.
pub fn for_each_sample(
    resources: &[ResourceMetrics],
    wanted: &dyn Fn(&str) -> bool,
    sink: &mut dyn FnMut(Labels, i64, f64),
) {
    for rm in resources {
        let base_labels = resource_labels(rm);
        for sm in &rm.scope_metrics {
            let native = sm
                .scope
                .as_ref()
                .is_some_and(|s| s.name == PROMETHEUS_SCOPE);
            for metric in &sm.metrics {
                let Some(data) = &metric.data else { continue };
                let point_labels =
                    |name: &str, attrs: &[KeyValue], extra: Option<(&str, String)>| {
                        let mut pairs = if native {
                            Vec::new()
                        } else {
                            base_labels.clone()
                        };
                        attribute_labels(attrs, !native, &mut pairs);
                        if let Some((k, v)) = extra {
                            pairs.push((k.to_string(), v));
                        }
                        pairs.push((NAME.to_string(), name.to_string()));
                        Labels::new(pairs)
                    };
                let name_of = |is_counter: bool, is_gauge: bool| {
                    if native {
                        metric.name.clone()
                    } else {
                        metric_name(&metric.name, &metric.unit, is_counter, is_gauge)
                    }
                };
                match data {
                    Data::Gauge(_) | Data::Sum(_) => {
                        let (points, is_counter) = match data {
                            Data::Gauge(g) => (&g.data_points, false),
                            Data::Sum(s) => (&s.data_points, s.is_monotonic),
                            _ => continue,
                        };
                        let name = name_of(is_counter, matches!(data, Data::Gauge(_)));
                        if !wanted(&name) {
                            continue;
                        }
                        for p in points {
                            let v = match p.value {
                                Some(NumberValue::AsDouble(d)) => d,
                                Some(NumberValue::AsInt(i)) => i as f64,
                                None => continue,
                            };
                            sink(
                                point_labels(&name, &p.attributes, None),
                                time_ms(p.time_unix_nano),
                                flagged(p.flags, v),
                            );
                        }
                    }
                    Data::Histogram(h) => {
                        let base = name_of(false, false);
                        let (bucket, sum, count) = (
                            format!("{base}_bucket"),
                            format!("{base}_sum"),
                            format!("{base}_count"),
                        );
                        let (want_bucket, want_sum, want_count) =
                            (wanted(&bucket), wanted(&sum), wanted(&count));
                        for p in &h.data_points {
                            let t = time_ms(p.time_unix_nano);
                            if want_bucket {
                                let mut cumulative = 0u64;
                                for (i, c) in p.bucket_counts.iter().enumerate() {
                                    cumulative += c;
                                    let le = p
                                        .explicit_bounds
                                        .get(i)
                                        .map_or("+Inf".to_string(), |b| format_float(*b));
                                    sink(
                                        point_labels(&bucket, &p.attributes, Some(("le", le))),
                                        t,
                                        flagged(p.flags, cumulative as f64),
                                    );
                                }
                            }
                            if want_sum && let Some(s) = p.sum {
                                sink(
                                    point_labels(&sum, &p.attributes, None),
                                    t,
                                    flagged(p.flags, s),
                                );
                            }
                            if want_count {
                                sink(
                                    point_labels(&count, &p.attributes, None),
                                    t,
                                    flagged(p.flags, p.count as f64),
                                );
                            }
                        }
                    }
                    Data::Summary(s) => {
                        let base = name_of(false, false);
                        let (sum, count) = (format!("{base}_sum"), format!("{base}_count"));
                        let (want_q, want_sum, want_count) =
                            (wanted(&base), wanted(&sum), wanted(&count));
                        for p in &s.data_points {
                            let t = time_ms(p.time_unix_nano);
                            if want_q {
                                for q in &p.quantile_values {
                                    sink(
                                        point_labels(
                                            &base,
                                            &p.attributes,
                                            Some(("quantile", format_float(q.quantile))),
                                        ),
                                        t,
                                        flagged(p.flags, q.value),
                                    );
                                }
                            }
                            if want_sum {
                                sink(
                                    point_labels(&sum, &p.attributes, None),
                                    t,
                                    flagged(p.flags, p.sum),
                                );
                            }
                            if want_count {
                                sink(
                                    point_labels(&count, &p.attributes, None),
                                    t,
                                    flagged(p.flags, p.count as f64),
                                );
                            }
                        }
                    }
                    Data::ExponentialHistogram(_) => {}
                }
            }
        }
    }
}

/// An exemplar as the Prometheus API shows it.
#[derive(Debug, Clone)]
pub struct Exemplar {
    pub labels: Labels,
    pub value: f64,
    pub time_ms: i64,
}

fn exemplar_of(e: &opentelemetry_proto::tonic::metrics::v1::Exemplar) -> Exemplar {
    use opentelemetry_proto::tonic::metrics::v1::exemplar::Value as ExemplarValue;
    let mut pairs = Vec::new();
    attribute_labels(&e.filtered_attributes, true, &mut pairs);
    if !e.trace_id.is_empty() {
        pairs.push(("trace_id".into(), hex::encode(&e.trace_id)));
    }
    if !e.span_id.is_empty() {
        pairs.push(("span_id".into(), hex::encode(&e.span_id)));
    }
    Exemplar {
        labels: Labels::new(pairs),
        value: match e.value {
            Some(ExemplarValue::AsDouble(d)) => d,
            Some(ExemplarValue::AsInt(i)) => i as f64,
            None => f64::NAN,
        },
        time_ms: time_ms(e.time_unix_nano),
    }
}

/// Calls `sink(series_labels, exemplar)` for every exemplar in `resources`: those of number
/// points on their series, those of histogram points on the `_bucket` series whose bound
/// holds the exemplar's value.
pub fn for_each_exemplar(
    resources: &[ResourceMetrics],
    wanted: &dyn Fn(&str) -> bool,
    sink: &mut dyn FnMut(Labels, Exemplar),
) {
    for rm in resources {
        let base_labels = resource_labels(rm);
        for sm in &rm.scope_metrics {
            let native = sm
                .scope
                .as_ref()
                .is_some_and(|s| s.name == PROMETHEUS_SCOPE);
            for metric in &sm.metrics {
                let labels = |name: &str, attrs: &[KeyValue], extra: Option<(&str, String)>| {
                    let mut pairs = if native {
                        Vec::new()
                    } else {
                        base_labels.clone()
                    };
                    attribute_labels(attrs, !native, &mut pairs);
                    if let Some((k, v)) = extra {
                        pairs.push((k.to_string(), v));
                    }
                    pairs.push((NAME.to_string(), name.to_string()));
                    Labels::new(pairs)
                };
                match &metric.data {
                    Some(Data::Gauge(_)) | Some(Data::Sum(_)) => {
                        let (points, is_counter, is_gauge) = match &metric.data {
                            Some(Data::Gauge(g)) => (&g.data_points, false, true),
                            Some(Data::Sum(s)) => (&s.data_points, s.is_monotonic, false),
                            _ => continue,
                        };
                        let name = if native {
                            metric.name.clone()
                        } else {
                            metric_name(&metric.name, &metric.unit, is_counter, is_gauge)
                        };
                        if !wanted(&name) {
                            continue;
                        }
                        for p in points.iter().filter(|p| !p.exemplars.is_empty()) {
                            let series = labels(&name, &p.attributes, None);
                            for e in &p.exemplars {
                                sink(series.clone(), exemplar_of(e));
                            }
                        }
                    }
                    Some(Data::Histogram(h)) => {
                        let base = if native {
                            metric.name.clone()
                        } else {
                            metric_name(&metric.name, &metric.unit, false, false)
                        };
                        let bucket = format!("{base}_bucket");
                        if !wanted(&bucket) {
                            continue;
                        }
                        for p in h.data_points.iter().filter(|p| !p.exemplars.is_empty()) {
                            for e in &p.exemplars {
                                let ex = exemplar_of(e);
                                let le = p
                                    .explicit_bounds
                                    .iter()
                                    .find(|b| ex.value <= **b)
                                    .map_or("+Inf".to_string(), |b| format_float(*b));
                                sink(labels(&bucket, &p.attributes, Some(("le", le))), ex);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus_otlp_translation() {
        assert_eq!(
            metric_name("http.server.request.duration", "s", false, false),
            "http_server_request_duration_seconds"
        );
        assert_eq!(
            metric_name("http.server.requests", "{request}", true, false),
            "http_server_requests_total"
        );
        assert_eq!(
            metric_name("system.cpu.utilization", "1", false, true),
            "system_cpu_utilization_ratio"
        );
        assert_eq!(
            metric_name("network.io", "By/s", false, true),
            "network_io_bytes_per_second"
        );
        assert_eq!(
            metric_name("requests_total", "", true, false),
            "requests_total"
        );
        assert_eq!(metric_name("foo__bar", "", false, true), "foo_bar");
        assert_eq!(metric_name("2xx", "", false, true), "_2xx");
        assert_eq!(label_name("http.method"), "http_method");
        assert_eq!(label_name("1a"), "key_1a");
    }
}
