//! Query service configuration.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Where the PostgreSQL listener is when no address is given.
pub const DEFAULT_PG: &str = "0.0.0.0:5432";

/// Where the Flight SQL listener is when no address is given.
pub const DEFAULT_FLIGHT_SQL: &str = "0.0.0.0:3201";

/// Configuration of the query role (`[query]` in the config file, `STRATA_QUERY__*` in the
/// environment).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// HTTP listen address of the query API.
    pub http: String,
    /// PostgreSQL wire protocol listen address; unset: [`DEFAULT_PG`], skipped with a warning
    /// when that port is taken; `""`: off. Given, it must bind.
    pub pg: Option<String>,
    /// Arrow Flight SQL listen address; unset: [`DEFAULT_FLIGHT_SQL`], skipped with a warning
    /// when that port is taken; `""`: off. Given, it must bind.
    pub flight_sql: Option<String>,
    /// Where the collectors write Parquet: a path, `file://` or `s3://` URL.
    pub storage: String,
    /// Endpoint, region, credentials and addressing style of an `s3://` storage.
    pub s3: strata_storage::S3Options,
    /// A query may use a list of a signal's live files this old (milliseconds) instead of
    /// listing storage again; new files become visible within this bound. Keep it well below
    /// the compactor's `delete_delay`.
    pub live_files_max_staleness_ms: u64,
    /// Local state of the query service (spill files).
    pub data_dir: std::path::PathBuf,
    /// Tenant of requests without an `X-Scope-OrgID` header.
    pub default_tenant: String,
    /// A query taking longer is cancelled, in milliseconds.
    pub timeout_ms: u64,
    /// Memory one query may allocate, everything included (its joins, sorts and
    /// aggregations spill to disk past three quarters of it).
    pub memory_limit_bytes: usize,
    /// Most rows a SQL answer may carry; add a `LIMIT` for more.
    pub max_result_rows: usize,
    /// Largest answer body of any API route (413 past it).
    pub max_answer_bytes: usize,
    /// Largest SQL request body.
    pub max_request_bytes: usize,
    /// How far back a PromQL instant selector looks for a sample (Prometheus's
    /// `--query.lookback-delta`).
    pub promql_lookback_ms: u64,
    /// Most samples one PromQL query may load (Prometheus's `--query.max-samples`).
    pub promql_max_samples: usize,
    /// Memory for Parquet footers kept between SQL queries (least recently used go first).
    pub metadata_cache_bytes: usize,
    /// Memory for the trace index: each span file's footer, `trace_id` ranges and bloom
    /// filters, kept so a trace lookup opens only the files that hold the trace.
    pub trace_index_bytes: usize,
    /// TLS of the HTTP listener (`[query.tls]`).
    pub tls: strata_server::tls::ServerTlsConfig,
    /// Credentials every API route and the web UI require (`[query.auth]`; the `read`
    /// scope, for the credential's tenants).
    pub auth: strata_server::auth::AuthConfig,
    /// Per-tenant query limits (`[query.limits]`: file): concurrent queries, and time,
    /// memory and answer size under this service's own bounds.
    pub limits: strata_server::limits::LimitsConfig,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            http: "0.0.0.0:3200".into(),
            pg: None,
            flight_sql: None,
            storage: "data/storage".into(),
            s3: Default::default(),
            live_files_max_staleness_ms: 1000,
            data_dir: "data/query".into(),
            default_tenant: strata_schema::envelope::DEFAULT_TENANT.into(),
            timeout_ms: 30_000,
            memory_limit_bytes: 1024 * 1024 * 1024,
            max_result_rows: 100_000,
            max_answer_bytes: 64 * 1024 * 1024,
            max_request_bytes: 1024 * 1024,
            promql_lookback_ms: 5 * 60 * 1000,
            promql_max_samples: 50_000_000,
            metadata_cache_bytes: 64 * 1024 * 1024,
            trace_index_bytes: 256 * 1024 * 1024,
            tls: Default::default(),
            auth: Default::default(),
            limits: Default::default(),
        }
    }
}

impl QueryConfig {
    pub fn validate(&self) -> Result<(), String> {
        strata_schema::envelope::validate_tenant(&self.default_tenant)
            .map_err(|e| format!("default_tenant: {e}"))?;
        self.tls.validate()?;
        if self.timeout_ms == 0
            || self.memory_limit_bytes == 0
            || self.max_result_rows == 0
            || self.max_answer_bytes == 0
            || self.promql_lookback_ms == 0
            || self.promql_max_samples == 0
        {
            return Err(
                "timeout_ms, memory_limit_bytes, max_result_rows, max_answer_bytes, promql_lookback_ms and promql_max_samples must be positive".into(),
            );
        }
        Ok(())
    }

    pub fn live_files_max_staleness(&self) -> Duration {
        Duration::from_millis(self.live_files_max_staleness_ms)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// What one query may take on this service; a tenant's limits may lower it.
    pub fn bounds(&self) -> strata_server::limits::QueryBounds {
        strata_server::limits::QueryBounds {
            time: self.timeout(),
            memory_bytes: self.memory_limit_bytes,
            answer_bytes: self.max_answer_bytes,
        }
    }
}
