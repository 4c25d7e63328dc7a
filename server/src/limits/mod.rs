//! Per-tenant limits: what one tenant may send and ask, from an overrides file reloaded on
//! change, with every refusal counted by tenant and reason.
//!
//! - Ingest: a token bucket of rows and one of bytes per tenant ([`Overrides::admit_ingest`];
//!   refused as HTTP 429 / gRPC `RESOURCE_EXHAUSTED` with the wait in `Retry-After`), the
//!   longest attribute or label value, and the active metric series
//!   ([`Overrides::admit_series`]).
//! - Queries: how many run at once per tenant ([`Overrides::query_permit`]), and each one's
//!   time, memory and answer size ([`Limits::query`]), which can only lower the query
//!   service's own bounds.
//!
//! Invariants:
//! - Limits hold per process: a tenant writing through two agents gets twice the rate there,
//!   as with Mimir's "local" strategy.
//! - One tenant's state is its own: a tenant at its limit takes no lock another tenant waits
//!   on for longer than a map lookup, and its refusals cost only the decoding of its request.
//! - A file that does not parse is refused whole: at start the role does not start; on reload
//!   the limits in use stay (logged and counted).
//! - Zero means "no limit" for every field.

mod bucket;
pub mod file;
mod series;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::reload::Watched;
use crate::{Labels, SharedRegistry};
use bucket::Bucket;
pub use file::Table;
use series::ActiveSeries;

/// Where a role reads its limits (`[<role>.limits]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// The overrides file (see [`file`]); without one every tenant has the built-in defaults.
    pub file: Option<PathBuf>,
}

/// The limits of one tenant. Zero: no limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Spans, log records and data points per second.
    pub ingest_rows_per_second: f64,
    /// Rows that may come at once (the bucket's size); 0: one second of the rate.
    pub ingest_burst_rows: f64,
    /// Request bytes (decoded, before conversion) per second.
    pub ingest_bytes_per_second: f64,
    /// Bytes that may come at once; 0: one second of the rate.
    pub ingest_burst_bytes: f64,
    /// Metric series with a point in the last `active_series_window_seconds`.
    pub max_active_series: usize,
    pub active_series_window_seconds: u64,
    /// Longest attribute, resource attribute or label value (strings and bytes); an item
    /// carrying a longer one is refused.
    pub max_attribute_value_bytes: usize,
    /// Queries of the tenant running at once; more are refused with 429.
    pub max_concurrent_queries: usize,
    /// Time one query may take (at most the query service's `timeout_ms`).
    pub max_query_seconds: f64,
    /// Memory one query may allocate, everything included (at most the query service's
    /// `memory_limit_bytes`).
    pub max_query_memory_bytes: usize,
    /// Size of one answer's body (at most the query service's `max_answer_bytes`).
    pub max_answer_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            ingest_rows_per_second: 0.0,
            ingest_burst_rows: 0.0,
            ingest_bytes_per_second: 0.0,
            ingest_burst_bytes: 0.0,
            max_active_series: 0,
            active_series_window_seconds: 600,
            max_attribute_value_bytes: 64 * 1024,
            max_concurrent_queries: 16,
            max_query_seconds: 0.0,
            max_query_memory_bytes: 0,
            max_answer_bytes: 0,
        }
    }
}

impl Limits {
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("ingest_rows_per_second", self.ingest_rows_per_second),
            ("ingest_burst_rows", self.ingest_burst_rows),
            ("ingest_bytes_per_second", self.ingest_bytes_per_second),
            ("ingest_burst_bytes", self.ingest_burst_bytes),
            ("max_query_seconds", self.max_query_seconds),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} must be a number of at least 0, not {v}"));
            }
        }
        for (burst, rate, name) in [
            (
                self.ingest_burst_rows,
                self.ingest_rows_per_second,
                "ingest_burst_rows",
            ),
            (
                self.ingest_burst_bytes,
                self.ingest_bytes_per_second,
                "ingest_burst_bytes",
            ),
        ] {
            if burst > 0.0 && rate == 0.0 {
                return Err(format!("{name} needs its rate set too"));
            }
        }
        if self.active_series_window_seconds == 0 {
            return Err("active_series_window_seconds must be positive".into());
        }
        Ok(())
    }

    fn limits_ingest_rate(&self) -> bool {
        self.ingest_rows_per_second > 0.0 || self.ingest_bytes_per_second > 0.0
    }

    /// This tenant's bounds of one query, given the query service's own.
    pub fn query(&self, node: QueryBounds) -> QueryBounds {
        let lower = |tenant: usize, node: usize| match tenant {
            0 => node,
            t => t.min(node),
        };
        QueryBounds {
            time: match self.max_query_seconds {
                s if s > 0.0 => Duration::from_secs_f64(s).min(node.time),
                _ => node.time,
            },
            memory_bytes: lower(self.max_query_memory_bytes, node.memory_bytes),
            answer_bytes: lower(self.max_answer_bytes, node.answer_bytes),
        }
    }
}

/// What one query may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryBounds {
    pub time: Duration,
    pub memory_bytes: usize,
    pub answer_bytes: usize,
}

/// Why a limit refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// For metrics: `rate_rows`, `rate_bytes`, `burst`, `series`, `value_length`,
    /// `concurrent_queries`, `query_time`, `query_memory`, `answer_size`.
    pub reason: &'static str,
    pub message: String,
    /// When retrying can succeed: after this long.
    pub retry_after: Option<Duration>,
}

impl Refusal {
    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
            .map(|d| (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1))
    }
}

/// Refusals and reloads, under `<prefix>_limits_*`.
#[derive(Default)]
pub struct LimitMetrics {
    refused_requests: Family<Labels, Counter>,
    refused_items: Family<Labels, Counter>,
    active_series: Family<Labels, Gauge>,
    reloads: Family<Labels, Counter>,
}

impl LimitMetrics {
    pub fn register(registry: &SharedRegistry, prefix: &str) -> Arc<Self> {
        let m = Self::default();
        let mut registry = registry.lock_registry();
        let r = registry.sub_registry_with_prefix(format!("{prefix}_limits"));
        r.register(
            "refused_requests",
            "Requests refused by a per-tenant limit, by tenant and reason",
            m.refused_requests.clone(),
        );
        r.register(
            "refused_items",
            "Spans, log records and data points refused by a per-tenant limit, by tenant and reason",
            m.refused_items.clone(),
        );
        r.register(
            "active_series",
            "Active metric series of tenants with a series limit",
            m.active_series.clone(),
        );
        r.register(
            "reloads",
            "Overrides file reloads by outcome",
            m.reloads.clone(),
        );
        Arc::new(m)
    }
}

/// A tenant's running state: its buckets, series and query slots, for the limits they were
/// made with.
struct TenantState {
    limits: Arc<Limits>,
    rate: Mutex<Option<(Bucket, Bucket)>>,
    series: Mutex<ActiveSeries>,
    queries: Option<Arc<Semaphore>>,
}

impl TenantState {
    fn new(limits: Arc<Limits>, now: Instant) -> Self {
        let rate = limits.limits_ingest_rate().then(|| {
            (
                Bucket::new(limits.ingest_rows_per_second, limits.ingest_burst_rows, now),
                Bucket::new(
                    limits.ingest_bytes_per_second,
                    limits.ingest_burst_bytes,
                    now,
                ),
            )
        });
        let queries = (limits.max_concurrent_queries > 0)
            .then(|| Arc::new(Semaphore::new(limits.max_concurrent_queries)));
        Self {
            limits,
            rate: Mutex::new(rate),
            series: Mutex::new(ActiveSeries::new(now)),
            queries,
        }
    }
}

struct OverridesFile {
    path: PathBuf,
    watched: Watched,
}

/// Every tenant's limits and running state in one role.
pub struct Overrides {
    file: Option<OverridesFile>,
    table: RwLock<Arc<Table>>,
    tenants: Mutex<HashMap<String, Arc<TenantState>>>,
    metrics: Arc<LimitMetrics>,
}

fn unpoisoned<T>(r: std::sync::LockResult<T>) -> T {
    r.unwrap_or_else(|p| p.into_inner())
}

impl Overrides {
    /// The built-in defaults for every tenant.
    pub fn defaults() -> Self {
        Self::with_table(Table::default(), None, Arc::default())
    }

    /// `table` for every tenant (tests, tools).
    pub fn with_table(
        table: Table,
        file: Option<(PathBuf, Watched)>,
        metrics: Arc<LimitMetrics>,
    ) -> Self {
        Self {
            file: file.map(|(path, watched)| OverridesFile { path, watched }),
            table: RwLock::new(Arc::new(table)),
            tenants: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Reads the overrides file, if any.
    pub fn load(config: &LimitsConfig, metrics: Arc<LimitMetrics>) -> Result<Self, String> {
        match &config.file {
            None => Ok(Self::with_table(Table::default(), None, metrics)),
            Some(path) => {
                let watched = Watched::new(vec![path.clone()]);
                let table = Table::read(path)?;
                info!(file = %path.display(), tenants = table.tenants.len(), "limits loaded");
                Ok(Self::with_table(
                    table,
                    Some((path.clone(), watched)),
                    metrics,
                ))
            }
        }
    }

    /// Reads the file again if it changed (or if `force`); keeps the limits in use when the
    /// new file does not parse. Tenants whose limits changed start with full buckets.
    pub fn reload(&self, force: bool) {
        let Some(f) = &self.file else { return };
        if !f.watched.changed() && !force {
            return;
        }
        match Table::read(&f.path) {
            Ok(t) => {
                info!(file = %f.path.display(), tenants = t.tenants.len(), "limits reloaded");
                *unpoisoned(self.table.write()) = Arc::new(t);
                self.metrics
                    .reloads
                    .get_or_create(&vec![("outcome", "ok".into())])
                    .inc();
            }
            Err(e) => {
                warn!("limits reload failed, keeping the limits in use: {e}");
                self.metrics
                    .reloads
                    .get_or_create(&vec![("outcome", "failed".into())])
                    .inc();
            }
        }
    }

    /// Reloads on change and on SIGHUP until `shutdown`.
    pub fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        if self.file.is_some() {
            crate::reload::spawn(shutdown, move |forced| self.reload(forced));
        }
    }

    /// The limits of `tenant` now.
    pub fn limits(&self, tenant: &str) -> Arc<Limits> {
        unpoisoned(self.table.read()).of(tenant).clone()
    }

    /// `tenant`'s running state, made again when its limits changed.
    fn state(&self, tenant: &str, limits: &Arc<Limits>) -> Arc<TenantState> {
        let mut tenants = unpoisoned(self.tenants.lock());
        match tenants.get(tenant) {
            Some(s) if s.limits == *limits => s.clone(),
            _ => {
                let s = Arc::new(TenantState::new(limits.clone(), Instant::now()));
                tenants.insert(tenant.to_string(), s.clone());
                s
            }
        }
    }

    /// Counts a refusal of `items` items (0 for a query) for `tenant`.
    pub fn refused(&self, tenant: &str, reason: &'static str, items: u64) {
        let labels = vec![("tenant", tenant.to_string()), ("reason", reason.into())];
        self.metrics.refused_requests.get_or_create(&labels).inc();
        if items > 0 {
            self.metrics
                .refused_items
                .get_or_create(&labels)
                .inc_by(items);
        }
    }

    /// Takes `rows` and `bytes` from `tenant`'s buckets, or refuses the request whole.
    pub fn admit_ingest(&self, tenant: &str, rows: u64, bytes: u64) -> Result<(), Refusal> {
        let limits = self.limits(tenant);
        if !limits.limits_ingest_rate() {
            return Ok(());
        }
        let state = self.state(tenant, &limits);
        let mut rate = unpoisoned(state.rate.lock());
        let Some((row_bucket, byte_bucket)) = rate.as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        let mut longest: Option<(Duration, &'static str)> = None;
        for (bucket, n, reason, what) in [
            (&mut *row_bucket, rows, "rate_rows", "rows"),
            (&mut *byte_bucket, bytes, "rate_bytes", "bytes"),
        ] {
            if bucket.burst() <= 0.0 {
                continue;
            }
            if n as f64 > bucket.burst() {
                return Err(Refusal {
                    reason: "burst",
                    message: format!(
                        "tenant {tenant}: a request of {n} {what} is larger than the {} {what} it may send at once; send smaller requests",
                        bucket.burst()
                    ),
                    retry_after: None,
                });
            }
            let wait = bucket.wait(n as f64, now);
            if wait > longest.map_or(Duration::ZERO, |(w, _)| w) {
                longest = Some((wait, reason));
            }
        }
        if let Some((wait, reason)) = longest {
            let (rate, what) = match reason {
                "rate_rows" => (limits.ingest_rows_per_second, "rows"),
                _ => (limits.ingest_bytes_per_second, "bytes"),
            };
            return Err(Refusal {
                reason,
                message: format!(
                    "tenant {tenant} is over its ingest rate of {rate} {what} per second"
                ),
                retry_after: Some(wait),
            });
        }
        for (bucket, n) in [(row_bucket, rows), (byte_bucket, bytes)] {
            if bucket.burst() > 0.0 {
                bucket.take(n as f64);
            }
        }
        Ok(())
    }

    /// Which points of `series_ids` (one per row) may be written under `tenant`'s series
    /// limit; `None` when all may.
    pub fn admit_series(&self, tenant: &str, series_ids: &[u64]) -> Option<Vec<bool>> {
        let limits = self.limits(tenant);
        if limits.max_active_series == 0 {
            return None;
        }
        let state = self.state(tenant, &limits);
        let mut series = unpoisoned(state.series.lock());
        let keep = series.admit(
            series_ids,
            limits.max_active_series,
            Duration::from_secs(limits.active_series_window_seconds),
            Instant::now(),
        );
        self.metrics
            .active_series
            .get_or_create(&vec![("tenant", tenant.to_string())])
            .set(series.len() as i64);
        (!keep.iter().all(|k| *k)).then_some(keep)
    }

    /// A slot for one query of `tenant`, held until the answer is sent.
    pub fn query_permit(&self, tenant: &str) -> Result<Option<OwnedSemaphorePermit>, Refusal> {
        let limits = self.limits(tenant);
        let state = self.state(tenant, &limits);
        let Some(queries) = &state.queries else {
            return Ok(None);
        };
        queries.clone().try_acquire_owned().map(Some).map_err(|_| Refusal {
            reason: "concurrent_queries",
            message: format!(
                "tenant {tenant} already runs {} queries, its limit; retry when one has finished",
                limits.max_concurrent_queries
            ),
            retry_after: Some(Duration::from_secs(1)),
        })
    }
}
