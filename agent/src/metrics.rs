//! The agent's own metrics, registered on an explicit registry and served at `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
pub use strata_server::{Labels, SharedRegistry, new_registry};

/// Shipping-side metrics of the agent.
pub struct AgentMetrics {
    /// Batches sent to collectors, by collector and outcome (`ok`, `error`).
    pub shipped_batches: Family<Labels, Counter>,
    /// Rows acknowledged by collectors, by signal.
    pub shipped_rows: Family<Labels, Counter>,
    /// Rows given up on (memory buffer only, at shutdown after the grace period), by signal.
    pub dropped_rows: Family<Labels, Counter>,
    /// Bytes of Arrow memory held in accepted, unacknowledged batches.
    pub buffered_bytes: Gauge,
    /// Collectors currently in the ring.
    pub collectors: Gauge,
    /// Bytes of disk buffer segments on disk.
    pub buffer_disk_bytes: Gauge,
    /// Batches in the buffer waiting for an acknowledgement.
    pub buffer_entries: Gauge,
    /// Bytes of disk buffer set aside as torn or corrupt at start.
    pub buffer_corrupt_bytes: Counter,
    /// Disk buffer segments found with a torn or corrupt part at start.
    pub buffer_corrupt_segments: Counter,
    /// Disk buffer records that could not be decoded at start.
    pub buffer_corrupt_records: Counter,
    /// Buffered rows that could not be read back from disk.
    pub buffer_lost_rows: Counter,
    /// Rows found unacknowledged in the disk buffer at start.
    pub buffer_replayed_rows: Counter,
    /// Disk buffer segments deleted after every batch in them was acknowledged.
    pub buffer_segments_removed: Counter,
    /// Appends refused by the buffer, by reason (full, share, nospace, io, closed).
    pub buffer_refusals: Family<Labels, Counter>,
    /// Buffered batches moved to another collector, by reason (failover, removed).
    pub rerouted_batches: Family<Labels, Counter>,
    /// Circuit breaker per collector: 0 closed, 1 half-open, 2 open.
    pub breaker_state: Family<Labels, Gauge>,
    /// Times a collector's circuit breaker opened.
    pub breaker_opened: Family<Labels, Counter>,
}

impl AgentMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            shipped_batches: Family::default(),
            shipped_rows: Family::default(),
            dropped_rows: Family::default(),
            buffered_bytes: Gauge::default(),
            collectors: Gauge::default(),
            buffer_disk_bytes: Default::default(),
            buffer_entries: Default::default(),
            buffer_corrupt_bytes: Default::default(),
            buffer_corrupt_segments: Default::default(),
            buffer_corrupt_records: Default::default(),
            buffer_lost_rows: Default::default(),
            buffer_replayed_rows: Default::default(),
            buffer_segments_removed: Default::default(),
            buffer_refusals: Default::default(),
            rerouted_batches: Default::default(),
            breaker_state: Default::default(),
            breaker_opened: Default::default(),
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
        r.register(
            "buffer_disk_bytes",
            "Bytes of disk buffer segments on disk",
            m.buffer_disk_bytes.clone(),
        );
        r.register(
            "buffer_entries",
            "Batches in the buffer waiting for an acknowledgement",
            m.buffer_entries.clone(),
        );
        r.register(
            "buffer_corrupt_bytes",
            "Bytes of disk buffer set aside as torn or corrupt at start",
            m.buffer_corrupt_bytes.clone(),
        );
        r.register(
            "buffer_corrupt_segments",
            "Disk buffer segments found with a torn or corrupt part at start",
            m.buffer_corrupt_segments.clone(),
        );
        r.register(
            "buffer_corrupt_records",
            "Disk buffer records that could not be decoded at start",
            m.buffer_corrupt_records.clone(),
        );
        r.register(
            "buffer_lost_rows",
            "Buffered rows that could not be read back from disk",
            m.buffer_lost_rows.clone(),
        );
        r.register(
            "buffer_replayed_rows",
            "Rows found unacknowledged in the disk buffer at start",
            m.buffer_replayed_rows.clone(),
        );
        r.register(
            "buffer_segments_removed",
            "Disk buffer segments deleted after every batch in them was acknowledged",
            m.buffer_segments_removed.clone(),
        );
        r.register(
            "buffer_refusals",
            "Appends refused by the buffer, by reason (full, share, nospace, io, closed)",
            m.buffer_refusals.clone(),
        );
        r.register(
            "rerouted_batches",
            "Buffered batches moved to another collector, by reason (failover, removed)",
            m.rerouted_batches.clone(),
        );
        r.register(
            "breaker_state",
            "Circuit breaker per collector: 0 closed, 1 half-open, 2 open",
            m.breaker_state.clone(),
        );
        r.register(
            "breaker_opened",
            "Times a collector's circuit breaker opened",
            m.breaker_opened.clone(),
        );
        m
    }
}
