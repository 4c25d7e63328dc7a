//! Collector configuration: serde structs with documented defaults, validated once before start.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Configuration of the collector role (`[collector]` in the config file,
/// `STRATA_COLLECTOR__*` in the environment).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorConfig {
    /// Name of this collector; it prefixes every file it writes, so it must be unique in the
    /// tier.
    pub id: String,
    /// Local state of the collector: its write-ahead log (`wal/`) and idempotency checkpoint.
    pub data_dir: PathBuf,
    /// Where Parquet files go: a path, `file://` or `s3://bucket/prefix` URL, shared by all
    /// collectors and the query service.
    pub storage: String,
    /// Endpoint, region, credentials and addressing style of an `s3://` storage.
    pub s3: strata_storage::S3Options,
    /// Arrow Flight listen address, for agents.
    pub flight: String,
    /// HTTP listen address for `/metrics` and `/ready`.
    pub http: String,
    /// OTLP/gRPC listen address, so SDKs can send here directly. Off when unset.
    pub otlp_grpc: Option<String>,
    /// OTLP/HTTP listen address. Off when unset.
    pub otlp_http: Option<String>,
    /// Tenant of OTLP requests without an `X-Scope-OrgID` header.
    pub default_tenant: String,
    /// A partition is written once it holds this many rows...
    pub flush_max_rows: usize,
    /// ... or this many bytes of Arrow memory ...
    pub flush_max_bytes: usize,
    /// ... or once its oldest row waited this long, in milliseconds.
    pub flush_max_age_ms: u64,
    /// Arrow memory held in all partitions before new batches are refused
    /// (`RESOURCE_EXHAUSTED`, the agent retries).
    pub max_buffer_bytes: usize,
    /// Largest OTLP request accepted on the collector's own receivers, after decompression.
    pub max_request_bytes: usize,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    /// Zstd level of Parquet pages.
    pub zstd_level: i32,
    /// A WAL segment is closed and a new one started past this size.
    pub wal_segment_bytes: u64,
    /// RED metrics and service-graph edges derived from the spans this collector stores.
    pub span_metrics: crate::spanmetrics::SpanMetricsConfig,
    /// TLS of every listener: Flight, HTTP and the OTLP ones (`[collector.tls]`).
    pub tls: strata_server::tls::ServerTlsConfig,
    /// TLS of the Flight listener when it differs from `tls` (agents holding other client
    /// certificates than OTLP clients; `strata standalone`'s own agent, which has none).
    pub flight_tls: Option<strata_server::tls::ServerTlsConfig>,
    /// Credentials the listeners require (`[collector.auth]`); agents ship with a token of
    /// the `write` scope for the tenants they send.
    pub auth: strata_server::auth::AuthConfig,
    /// Per-tenant ingest limits of the OTLP listeners (`[collector.limits]`: file); what
    /// agents ship over Flight was admitted by them.
    pub limits: strata_server::limits::LimitsConfig,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            id: "collector-0".into(),
            data_dir: PathBuf::from("data/collector"),
            storage: "data/storage".into(),
            s3: Default::default(),
            flight: "0.0.0.0:4320".into(),
            http: "0.0.0.0:4321".into(),
            otlp_grpc: None,
            otlp_http: None,
            default_tenant: strata_schema::envelope::DEFAULT_TENANT.into(),
            flush_max_rows: 1_000_000,
            // Counted by allocation (`strata_schema::memory::retained_bytes`): real memory.
            // Measured (benches/RESULTS.md) against 256 MiB and 1 GiB: less CPU per item and
            // a lower peak RSS on spans and on remote-written metrics alike.
            flush_max_bytes: 64 * 1024 * 1024,
            flush_max_age_ms: 10_000,
            max_buffer_bytes: 256 * 1024 * 1024,
            max_request_bytes: 16 * 1024 * 1024,
            row_group_rows: 128 * 1024,
            zstd_level: 3,
            wal_segment_bytes: 64 * 1024 * 1024,
            span_metrics: Default::default(),
            tls: Default::default(),
            flight_tls: None,
            auth: Default::default(),
            limits: Default::default(),
        }
    }
}

impl CollectorConfig {
    pub fn validate(&self) -> Result<(), String> {
        strata_storage::layout::validate_writer_id("collector", &self.id)?;
        strata_schema::envelope::validate_tenant(&self.default_tenant)
            .map_err(|e| format!("default_tenant: {e}"))?;
        if self.flush_max_rows == 0 || self.row_group_rows == 0 {
            return Err("flush_max_rows and row_group_rows must be positive".into());
        }
        if !(1..=22).contains(&self.zstd_level) {
            return Err("zstd_level must be 1..=22".into());
        }
        self.span_metrics.validate()?;
        self.tls.validate()?;
        if let Some(t) = &self.flight_tls {
            t.validate()?;
        }
        Ok(())
    }

    pub fn flush_max_age(&self) -> Duration {
        Duration::from_millis(self.flush_max_age_ms.max(1))
    }
}
