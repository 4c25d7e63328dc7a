//! The agent's own metrics, registered on an explicit registry and served at `/metrics`.

use std::sync::{Arc, Mutex, MutexGuard};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label set used by every family here: a short list of (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;

/// A registry shared between the components of one role and its `/metrics` handler.
#[derive(Clone, Default)]
pub struct SharedRegistry(Arc<Mutex<Registry>>);

impl SharedRegistry {
    pub fn lock_registry(&self) -> MutexGuard<'_, Registry> {
        // A poisoned registry only means a panic elsewhere; the data is still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.lock_registry());
        out
    }
}

pub fn new_registry() -> SharedRegistry {
    SharedRegistry::default()
}

/// Shipping-side metrics of the agent.
pub struct AgentMetrics {
    /// Batches sent to collectors, by collector and outcome (`ok`, `error`).
    pub shipped_batches: Family<Labels, Counter>,
    /// Rows acknowledged by collectors, by signal.
    pub shipped_rows: Family<Labels, Counter>,
    /// Rows given up on (only at shutdown after the grace period), by signal.
    pub dropped_rows: Family<Labels, Counter>,
    /// Bytes of Arrow memory held in accepted, unacknowledged batches.
    pub buffered_bytes: Gauge,
    /// Collectors currently in the ring.
    pub collectors: Gauge,
}

impl AgentMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            shipped_batches: Family::default(),
            shipped_rows: Family::default(),
            dropped_rows: Family::default(),
            buffered_bytes: Gauge::default(),
            collectors: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("strata_agent");
        r.register(
            "shipped_batches",
            "Batches sent to collectors",
            m.shipped_batches.clone(),
        );
        r.register(
            "shipped_rows",
            "Rows acknowledged by collectors",
            m.shipped_rows.clone(),
        );
        r.register(
            "dropped_rows",
            "Rows given up on at shutdown",
            m.dropped_rows.clone(),
        );
        r.register(
            "buffered_bytes",
            "Arrow bytes accepted and not yet acknowledged",
            m.buffered_bytes.clone(),
        );
        r.register(
            "collectors",
            "Collectors in the routing ring",
            m.collectors.clone(),
        );
        m
    }
}
