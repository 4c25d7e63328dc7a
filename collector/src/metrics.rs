//! The collector's own metrics, on an explicit registry served at `/metrics`.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use strata_server::Labels;

pub struct CollectorMetrics {
    /// Flight `DoPut` batches by outcome (`ok`, `invalid`, `overloaded`).
    pub received_batches: Family<Labels, Counter>,
    /// Rows accepted, by signal and source (`flight`, `otlp`).
    pub received_rows: Family<Labels, Counter>,
    /// Parquet files written, by signal.
    pub files_written: Family<Labels, Counter>,
    /// Bytes of Parquet written, by signal.
    pub bytes_written: Family<Labels, Counter>,
    /// Rows written to Parquet, by signal.
    pub rows_written: Family<Labels, Counter>,
    /// Failed file writes (retried), by signal.
    pub write_errors: Family<Labels, Counter>,
    /// Arrow bytes buffered and not yet in storage.
    pub buffered_bytes: Gauge,
    /// WAL appends that failed (disk full, I/O error), answered with backpressure.
    pub wal_errors: Counter,
    /// WAL segments deleted after their rows reached storage.
    pub wal_segments_removed: Counter,
    /// Bytes of torn or corrupt WAL set aside at start.
    pub wal_corrupt_bytes: Counter,
    /// Damaged state found at start, by what (`wal`, `wal_entry`, `dedup`).
    pub recovery_errors: Family<Labels, Counter>,
    /// Spans or calls not counted in their own span-metrics series, by why (`overflow`,
    /// `pending_full`, `unpaired`, `write_failed`).
    pub span_metrics_dropped: Family<Labels, Counter>,
}

impl CollectorMetrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self {
            received_batches: Family::default(),
            received_rows: Family::default(),
            files_written: Family::default(),
            bytes_written: Family::default(),
            rows_written: Family::default(),
            write_errors: Family::default(),
            buffered_bytes: Gauge::default(),
            wal_errors: Counter::default(),
            wal_segments_removed: Counter::default(),
            wal_corrupt_bytes: Counter::default(),
            recovery_errors: Family::default(),
            span_metrics_dropped: Family::default(),
        };
        let r = registry.sub_registry_with_prefix("strata_collector");
        r.register(
            "received_batches",
            "Flight DoPut batches",
            m.received_batches.clone(),
        );
        r.register("received_rows", "Rows accepted", m.received_rows.clone());
        r.register(
            "files_written",
            "Parquet files written",
            m.files_written.clone(),
        );
        r.register(
            "written_bytes",
            "Parquet bytes written",
            m.bytes_written.clone(),
        );
        r.register(
            "written_rows",
            "Rows written to Parquet",
            m.rows_written.clone(),
        );
        r.register(
            "write_errors",
            "Failed Parquet writes (retried)",
            m.write_errors.clone(),
        );
        r.register(
            "buffered_bytes",
            "Arrow bytes not yet in storage",
            m.buffered_bytes.clone(),
        );
        r.register("wal_errors", "Failed WAL appends", m.wal_errors.clone());
        r.register(
            "wal_segments_removed",
            "WAL segments deleted after their rows reached storage",
            m.wal_segments_removed.clone(),
        );
        r.register(
            "wal_corrupt_bytes",
            "Torn or corrupt WAL bytes set aside at start",
            m.wal_corrupt_bytes.clone(),
        );
        r.register(
            "recovery_errors",
            "Damaged state found at start",
            m.recovery_errors.clone(),
        );
        r.register(
            "span_metrics_dropped",
            "Spans or calls not counted in their own span-metrics series, by reason",
            m.span_metrics_dropped.clone(),
        );
        m
    }
}
