//! Span-derived metrics: RED figures per service and operation ([`red`]) and service-graph
//! edges ([`graph`]), computed by each collector from the spans it accepts and stored as
//! ordinary metrics, so PromQL, SQL and Grafana read them like any other series.
//!
//! Names and labels are those of Tempo's metrics-generator, so Grafana's RED and service
//! graph views work unchanged:
//! - `traces_spanmetrics_calls_total{service, span_name, span_kind, status_code}` and the
//!   histogram `traces_spanmetrics_latency{...}` (seconds; `_bucket`, `_sum`, `_count`);
//! - `traces_service_graph_request_total{client, server}`,
//!   `traces_service_graph_request_failed_total{client, server}` and the histograms
//!   `traces_service_graph_request_server_seconds` / `..._client_seconds`.
//!
//! Invariants: only spans stored for the first time are counted (a retried batch is a
//! duplicate and is not), so counts match what is stored; values are cumulative since the
//! collector started (a restart is a counter reset, which `rate()` handles); every interval
//! each series is written as one point through the collector's own accept path (WAL, then
//! buffer); memory is bounded per tenant by `max_series` and `max_edges` (overflow series)
//! and `max_pending_edges`.

pub mod graph;
pub mod red;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::array::{Array, Int32Array, Int64Array, RecordBatch, StringArray};
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, InstrumentationScope, KeyValue, any_value::Value,
};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics, Sum, metric::Data, number_data_point,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use serde::{Deserialize, Serialize};
use strata_schema::envelope::Envelope;
use strata_schema::{Signal, columns};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use self::graph::{EdgeStats, Graph, Limits, Observed, Side};
use self::red::{Histogram, Red, RedKey};
use crate::metrics::CollectorMetrics;
use crate::store::Store;

/// Scope name of the derived metrics.
pub const SCOPE: &str = "strata.spanmetrics";

/// `[collector.span_metrics]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpanMetricsConfig {
    pub enabled: bool,
    /// How often the current values are written, in milliseconds.
    pub interval_ms: u64,
    /// Most RED series per tenant; spans of further keys count in the overflow series.
    pub max_series: usize,
    /// Most service-graph edges per tenant; further calls count in the overflow edge.
    pub max_edges: usize,
    /// Most client or server spans waiting for their other side, over all tenants.
    pub max_pending_edges: usize,
    /// How long a side waits for its partner, in milliseconds.
    pub edge_wait_ms: u64,
    /// Upper bounds of the latency histogram buckets, in seconds, increasing.
    pub buckets_seconds: Vec<f64>,
}

impl Default for SpanMetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            interval_ms: 15_000,
            max_series: 10_000,
            max_edges: 2_000,
            max_pending_edges: 100_000,
            edge_wait_ms: 10_000,
            // Tempo's default buckets.
            buckets_seconds: vec![
                0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096,
                8.192, 16.384,
            ],
        }
    }
}

impl SpanMetricsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if self.interval_ms == 0 || self.max_series == 0 || self.max_edges == 0 {
            return Err(
                "span_metrics: interval_ms, max_series and max_edges must be positive".into(),
            );
        }
        if self.buckets_seconds.is_empty()
            || self.buckets_seconds.windows(2).any(|w| w[0] >= w[1])
            || self.buckets_seconds.iter().any(|b| !b.is_finite())
        {
            return Err("span_metrics.buckets_seconds must be finite and increasing".into());
        }
        Ok(())
    }
}

#[derive(Default)]
struct TenantState {
    red: Red,
    graph: Graph,
    /// When counting started (the cumulative points' start time), Unix nanoseconds.
    start_ns: u64,
}

pub struct SpanMetrics {
    config: SpanMetricsConfig,
    tenants: Mutex<HashMap<String, TenantState>>,
    metrics: Arc<CollectorMetrics>,
}

const CLIENT: i32 = 3;
const SERVER: i32 = 2;
const PRODUCER: i32 = 4;
const CONSUMER: i32 = 5;
const ERROR: i32 = 2;

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or_default()
}

impl SpanMetrics {
    pub fn new(config: SpanMetricsConfig, metrics: Arc<CollectorMetrics>) -> Self {
        Self {
            config,
            tenants: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    fn dropped(&self, reason: &'static str, n: u64) {
        if n > 0 {
            self.metrics
                .span_metrics_dropped
                .get_or_create(&vec![("reason", reason.to_string())])
                .inc_by(n);
        }
    }

    /// Counts the spans of `batches` (rows of the `spans` table) for `tenant`.
    pub fn observe(&self, tenant: &str, batches: &[RecordBatch]) {
        let now = Instant::now();
        let (mut overflow, mut dropped) = (0, 0);
        let Ok(mut tenants) = self.tenants.lock() else {
            return;
        };
        let pending: usize = tenants.values().map(|t| t.graph.pending()).sum();
        let state = tenants
            .entry(tenant.to_string())
            .or_insert_with(|| TenantState {
                start_ns: now_ns(),
                ..Default::default()
            });
        // The waiting room is shared: this tenant may fill what the others leave.
        let others = pending.saturating_sub(state.graph.pending());
        let limits = Limits {
            bounds: &self.config.buckets_seconds,
            max_pending: self.config.max_pending_edges.saturating_sub(others),
            max_edges: self.config.max_edges,
        };
        for batch in batches {
            let Some(cols) = SpanColumns::of(batch) else {
                warn!("span metrics: a spans batch without the expected columns");
                continue;
            };
            for i in 0..batch.num_rows() {
                let service = text(cols.service, i);
                let kind = cols.kind.value(i);
                let status = if cols.status.is_null(i) {
                    0
                } else {
                    cols.status.value(i)
                };
                let seconds = cols.duration.value(i).max(0) as f64 / 1e9;
                let key = (service, text(cols.name, i), kind, status);
                if !state
                    .red
                    .observe(key, seconds, limits.bounds, self.config.max_series)
                {
                    overflow += 1;
                }
                let (is_client, pair_id) = match kind {
                    CLIENT | PRODUCER => (true, text(cols.span_id, i)),
                    SERVER | CONSUMER => (false, text(cols.parent, i)),
                    _ => continue,
                };
                if pair_id.is_empty() {
                    continue;
                }
                let side = Side {
                    service: service.to_string(),
                    seconds,
                    error: status == ERROR,
                };
                match state.graph.observe(
                    text(cols.trace, i),
                    pair_id,
                    is_client,
                    side,
                    now,
                    &limits,
                ) {
                    Observed::Overflow => overflow += 1,
                    Observed::Dropped => dropped += 1,
                    Observed::Waiting | Observed::Paired => {}
                }
            }
        }
        drop(tenants);
        self.dropped("overflow", overflow);
        self.dropped("pending_full", dropped);
    }

    /// The current values of every tenant as OTLP metrics stamped `now_ns`, after forgetting
    /// service-graph sides that waited too long.
    pub fn export(&self, now_ns: u64) -> Vec<(String, Vec<ResourceMetrics>)> {
        let wait = Duration::from_millis(self.config.edge_wait_ms);
        let now = Instant::now();
        let bounds = &self.config.buckets_seconds;
        let mut out = Vec::new();
        let mut unpaired = 0;
        if let Ok(mut tenants) = self.tenants.lock() {
            for (tenant, state) in tenants.iter_mut() {
                unpaired += state.graph.expire(now, wait);
                let metrics = to_otlp(state, bounds, now_ns);
                if !metrics.is_empty() {
                    out.push((
                        tenant.clone(),
                        vec![ResourceMetrics {
                            resource: Some(Resource::default()),
                            scope_metrics: vec![ScopeMetrics {
                                scope: Some(InstrumentationScope {
                                    name: SCOPE.into(),
                                    version: env!("CARGO_PKG_VERSION").into(),
                                    ..Default::default()
                                }),
                                metrics,
                                schema_url: String::new(),
                            }],
                            schema_url: String::new(),
                        }],
                    ));
                }
            }
        }
        self.dropped("unpaired", unpaired as u64);
        out
    }

    /// Writes the current values every interval, and once more when `stop` is cancelled.
    pub async fn run(self: Arc<Self>, store: Arc<Store>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(Duration::from_millis(self.config.interval_ms));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            let last = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.cancelled() => true,
            };
            self.write(&store).await;
            if last {
                return;
            }
        }
    }

    /// Writes one point per series through the accept path.
    pub async fn write(&self, store: &Store) {
        for (tenant, resource_metrics) in self.export(now_ns()) {
            let result = match strata_schema::metrics::to_batch(&resource_metrics) {
                Ok(batch) => {
                    let envelope = Envelope::new(String::new(), 0, Signal::Metrics, &tenant);
                    store
                        .accept("spanmetrics", &envelope, &[batch], None)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = result {
                // The values are cumulative: the next interval writes them again.
                self.dropped("write_failed", 1);
                warn!(%tenant, error = %e, "span metrics not written this interval");
            }
        }
    }
}

struct SpanColumns<'a> {
    trace: &'a StringArray,
    span_id: &'a StringArray,
    parent: &'a StringArray,
    service: &'a StringArray,
    name: &'a StringArray,
    kind: &'a Int32Array,
    status: &'a Int32Array,
    duration: &'a Int64Array,
}

impl<'a> SpanColumns<'a> {
    fn of(batch: &'a RecordBatch) -> Option<Self> {
        fn col<'b, T: 'static>(batch: &'b RecordBatch, name: &str) -> Option<&'b T> {
            batch.column_by_name(name)?.as_any().downcast_ref::<T>()
        }
        Some(Self {
            trace: col(batch, columns::TRACE_ID)?,
            span_id: col(batch, columns::SPAN_ID)?,
            parent: col(batch, columns::PARENT_SPAN_ID)?,
            service: col(batch, columns::SERVICE_NAME)?,
            name: col(batch, columns::NAME)?,
            kind: col(batch, columns::KIND)?,
            status: col(batch, columns::STATUS_CODE)?,
            duration: col(batch, columns::DURATION_NANOS)?,
        })
    }
}

fn text(a: &StringArray, i: usize) -> &str {
    if a.is_null(i) { "" } else { a.value(i) }
}

fn attr(key: &str, value: impl Into<String>) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn overflow_attrs() -> Vec<KeyValue> {
    vec![KeyValue {
        key: "otel.metric.overflow".into(),
        value: Some(AnyValue {
            value: Some(Value::BoolValue(true)),
        }),
        ..Default::default()
    }]
}

const KIND_NAMES: [&str; 6] = [
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_NAMES: [&str; 3] = ["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];

fn red_attrs(k: &RedKey) -> Vec<KeyValue> {
    let name = |names: &[&str], i: i32| {
        usize::try_from(i)
            .ok()
            .and_then(|i| names.get(i))
            .map(|s| s.to_string())
            .unwrap_or_else(|| i.to_string())
    };
    vec![
        attr("service", k.service.clone()),
        attr("span_name", k.span_name.clone()),
        attr("span_kind", name(&KIND_NAMES, k.kind)),
        attr("status_code", name(&STATUS_NAMES, k.status)),
    ]
}

fn counter(name: &str, description: &str, points: Vec<NumberDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        data: Some(Data::Sum(Sum {
            data_points: points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn histogram(name: &str, description: &str, points: Vec<HistogramDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        data: Some(Data::Histogram(
            opentelemetry_proto::tonic::metrics::v1::Histogram {
                data_points: points,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            },
        )),
        ..Default::default()
    }
}

struct Stamp<'a> {
    start_ns: u64,
    now_ns: u64,
    bounds: &'a [f64],
}

impl Stamp<'_> {
    fn count(&self, attributes: Vec<KeyValue>, n: u64) -> NumberDataPoint {
        NumberDataPoint {
            attributes,
            start_time_unix_nano: self.start_ns,
            time_unix_nano: self.now_ns,
            value: Some(number_data_point::Value::AsInt(n as i64)),
            ..Default::default()
        }
    }

    fn histogram(&self, attributes: Vec<KeyValue>, h: &Histogram) -> HistogramDataPoint {
        HistogramDataPoint {
            attributes,
            start_time_unix_nano: self.start_ns,
            time_unix_nano: self.now_ns,
            count: h.count,
            sum: Some(h.sum),
            bucket_counts: h.counts.clone(),
            explicit_bounds: self.bounds.to_vec(),
            ..Default::default()
        }
    }
}

fn to_otlp(state: &TenantState, bounds: &[f64], now_ns: u64) -> Vec<Metric> {
    let stamp = Stamp {
        start_ns: state.start_ns,
        now_ns,
        bounds,
    };
    let mut red_points: Vec<(Vec<KeyValue>, &Histogram)> = state
        .red
        .series()
        .into_iter()
        .map(|(k, h)| (red_attrs(k), h))
        .collect();
    if let Some(h) = &state.red.overflow {
        red_points.push((overflow_attrs(), h));
    }
    let mut edges: Vec<(Vec<KeyValue>, &EdgeStats)> = state
        .graph
        .edges
        .iter()
        .map(|(k, s)| {
            (
                vec![
                    attr("client", k.client.clone()),
                    attr("server", k.server.clone()),
                ],
                s,
            )
        })
        .collect();
    edges.sort_by(|a, b| format!("{:?}", a.0).cmp(&format!("{:?}", b.0)));
    if let Some(s) = &state.graph.overflow {
        edges.push((overflow_attrs(), s));
    }
    let mut out = Vec::new();
    if !red_points.is_empty() {
        out.push(counter(
            "traces_spanmetrics_calls_total",
            "Spans, by service, span name, kind and status",
            red_points
                .iter()
                .map(|(a, h)| stamp.count(a.clone(), h.count))
                .collect(),
        ));
        out.push(histogram(
            "traces_spanmetrics_latency",
            "Span duration in seconds, by service, span name, kind and status",
            red_points
                .iter()
                .map(|(a, h)| stamp.histogram(a.clone(), h))
                .collect(),
        ));
    }
    if !edges.is_empty() {
        out.push(counter(
            "traces_service_graph_request_total",
            "Calls from the client service to the server service",
            edges
                .iter()
                .map(|(a, s)| stamp.count(a.clone(), s.total))
                .collect(),
        ));
        out.push(counter(
            "traces_service_graph_request_failed_total",
            "Calls where the client or the server span failed",
            edges
                .iter()
                .map(|(a, s)| stamp.count(a.clone(), s.failed))
                .collect(),
        ));
        out.push(histogram(
            "traces_service_graph_request_server_seconds",
            "Server span duration of calls, in seconds",
            edges
                .iter()
                .map(|(a, s)| stamp.histogram(a.clone(), &s.server_seconds))
                .collect(),
        ));
        out.push(histogram(
            "traces_service_graph_request_client_seconds",
            "Client span duration of calls, in seconds",
            edges
                .iter()
                .map(|(a, s)| stamp.histogram(a.clone(), &s.client_seconds))
                .collect(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use prometheus_client::registry::Registry;

    use super::*;

    fn spans(service: &str, spans: Vec<Span>) -> ResourceSpans {
        ResourceSpans {
            resource: Some(Resource {
                attributes: vec![attr("service.name", service)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn span(id: u8, parent: u8, kind: i32, name: &str, millis: u64, error: bool) -> Span {
        Span {
            trace_id: vec![7; 16],
            span_id: vec![id; 8],
            parent_span_id: if parent == 0 { vec![] } else { vec![parent; 8] },
            name: name.into(),
            kind,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 1_000 + millis * 1_000_000,
            status: error.then(|| Status {
                code: ERROR,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn points(metrics: &[Metric], name: &str) -> Vec<(Vec<String>, f64)> {
        let m = metrics.iter().find(|m| m.name == name).unwrap();
        let labels = |attrs: &[KeyValue]| {
            attrs
                .iter()
                .map(|kv| {
                    format!(
                        "{}={}",
                        kv.key,
                        strata_schema::any_value_to_string(kv.value.as_ref().unwrap())
                    )
                })
                .collect()
        };
        match m.data.as_ref().unwrap() {
            Data::Sum(s) => s
                .data_points
                .iter()
                .map(|p| match p.value {
                    Some(number_data_point::Value::AsInt(i)) => (labels(&p.attributes), i as f64),
                    _ => unreachable!(),
                })
                .collect(),
            Data::Histogram(h) => h
                .data_points
                .iter()
                .map(|p| (labels(&p.attributes), p.count as f64))
                .collect(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn red_and_edges_from_stored_spans() {
        let mut registry = Registry::default();
        let metrics = Arc::new(CollectorMetrics::register(&mut registry));
        let config = SpanMetricsConfig {
            max_series: 3,
            buckets_seconds: vec![0.1, 1.0],
            ..Default::default()
        };
        let sm = SpanMetrics::new(config, metrics.clone());
        let batch = strata_schema::traces::to_batch(&[
            spans(
                "frontend",
                vec![
                    span(1, 0, SERVER, "GET /", 300, false),
                    span(2, 1, CLIENT, "POST pay", 250, false),
                ],
            ),
            spans("payment", vec![span(3, 2, SERVER, "charge", 200, true)]),
        ])
        .unwrap();
        sm.observe("acme", std::slice::from_ref(&batch));
        // A fourth key has no room: it goes to the overflow series.
        let more = strata_schema::traces::to_batch(&[spans(
            "payment",
            vec![span(9, 0, 1, "internal", 1, false)],
        )])
        .unwrap();
        sm.observe("acme", &[more]);
        let out = sm.export(5_000);
        assert_eq!(out.len(), 1);
        let (tenant, rm) = &out[0];
        assert_eq!(tenant, "acme");
        let m = &rm[0].scope_metrics[0].metrics;
        let calls = points(m, "traces_spanmetrics_calls_total");
        assert_eq!(calls.len(), 4);
        assert!(calls.contains(&(
            vec![
                "service=payment".into(),
                "span_name=charge".into(),
                "span_kind=SPAN_KIND_SERVER".into(),
                "status_code=STATUS_CODE_ERROR".into()
            ],
            1.0
        )));
        assert!(calls.contains(&(vec!["otel.metric.overflow=true".into()], 1.0)));
        assert_eq!(
            points(m, "traces_service_graph_request_total"),
            vec![(vec!["client=frontend".into(), "server=payment".into()], 1.0)]
        );
        assert_eq!(
            points(m, "traces_service_graph_request_failed_total")[0].1,
            1.0
        );
        assert_eq!(
            points(m, "traces_service_graph_request_server_seconds")[0].1,
            1.0
        );
        let dropped = metrics
            .span_metrics_dropped
            .get_or_create(&vec![("reason", "overflow".to_string())])
            .get();
        assert_eq!(dropped, 1);
        // Cumulative: a second export repeats the totals, with the same start time.
        let again = sm.export(6_000);
        let m2 = &again[0].1[0].scope_metrics[0].metrics;
        assert_eq!(points(m2, "traces_spanmetrics_calls_total"), calls);
    }
}
