//! Agent configuration: serde structs with documented defaults, validated once before start.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_server::auth::AuthConfig;
use strata_server::tls::ServerTlsConfig;
use strata_server::tls::client::ClientTlsConfig;

use crate::{Error, Result};

/// Compression of the Arrow IPC stream between agent and collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShipCompression {
    None,
    Lz4,
    Zstd,
}

impl ShipCompression {
    pub fn ipc(self) -> Option<arrow::ipc::CompressionType> {
        match self {
            Self::None => None,
            Self::Lz4 => Some(arrow::ipc::CompressionType::LZ4_FRAME),
            Self::Zstd => Some(arrow::ipc::CompressionType::ZSTD),
        }
    }
}

/// Configuration of the agent role (`[agent]` in the config file, `STRATA_AGENT__*` in the
/// environment).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Identity of this agent, carried in every batch envelope. Empty: a stable id is generated
    /// on first start and kept in `data_dir/agent-id`.
    pub id: String,
    /// Local state of the agent: its id and its disk buffer (`buffer/`).
    pub data_dir: PathBuf,
    /// OTLP/gRPC listen address.
    pub otlp_grpc: String,
    /// OTLP/HTTP listen address (`/v1/traces`, `/v1/metrics`, `/v1/logs`, plus `/metrics` and
    /// `/ready`).
    pub otlp_http: String,
    /// Zipkin v2 listen address (`POST /api/v2/spans` at its root; 9411 by convention). Off
    /// unless set; the OTLP/HTTP port takes Zipkin spans at the same path either way.
    pub zipkin: Option<String>,
    /// Elasticsearch bulk ingest listen address (the API at its root, for shippers that
    /// cannot take a path prefix). Off unless set; the OTLP/HTTP port serves it under
    /// `/elastic` either way.
    pub elasticsearch: Option<String>,
    /// Collectors as `HOST:PORT`. A host name that resolves to several addresses contributes
    /// every address; names are re-resolved every `dns_refresh_secs`.
    pub collectors: Vec<String>,
    /// How often collector names are resolved again, in seconds.
    pub dns_refresh_secs: u64,
    /// Tenant of requests that carry no `X-Scope-OrgID` header.
    pub default_tenant: String,
    /// A batch to one collector is shipped once it holds this many rows.
    pub batch_max_rows: usize,
    /// ... or this many bytes of Arrow memory.
    pub batch_max_bytes: usize,
    /// ... or once its oldest row waited this long, in milliseconds.
    pub batch_max_age_ms: u64,
    /// Memory the agent may hold for requests being decoded, copies of buffered batches and
    /// batches being shipped. Past it, OTLP requests are refused with `RESOURCE_EXHAUSTED` /
    /// 429. With the memory buffer, this is also the buffer's size.
    pub memory_limit_bytes: usize,
    /// Where accepted batches wait for a collector's acknowledgement: `disk` (the default:
    /// a request is answered only once its data is fsynced in `data_dir/buffer`, and survives
    /// a crash of the agent) or `memory` (faster, lost if the agent dies).
    pub buffer: crate::buffer::BufferMode,
    /// Largest size of the disk buffer. When it is full, OTLP requests are refused with
    /// `RESOURCE_EXHAUSTED` / 429 until collectors acknowledge what it holds.
    pub buffer_max_bytes: u64,
    /// Size of one disk buffer segment file.
    pub buffer_segment_bytes: u64,
    /// Largest share of the disk buffer one (signal, tenant) may fill, in (0, 1]: a bulkhead,
    /// so that a flood of one signal or tenant cannot stall the others.
    pub buffer_key_share: f64,
    /// One shipment to a collector may take this long before it counts as failed, in ms.
    pub ship_timeout_ms: u64,
    /// Compression of each batch's Arrow IPC stream, applied once at accept: the disk buffer
    /// keeps, and ships to collectors, the very same bytes. `zstd` (the default), `lz4` or
    /// `none`. lz4 costs less CPU now that a batch is compressed once; zstd sends and keeps
    /// about 1.7x fewer bytes; without compression the 7x larger stream costs more in HTTP/2
    /// than zstd saves (benches/RESULTS.md).
    pub ship_compression: ShipCompression,
    /// Failures in a row after which a collector's circuit breaker opens and its keys move to
    /// the next collector on the ring.
    pub breaker_failures: u32,
    /// How long a breaker first stays open, in ms; it doubles each time a probe fails.
    pub breaker_open_ms: u64,
    /// Longest a breaker stays open before it probes again, in ms.
    pub breaker_max_open_ms: u64,
    /// Largest OTLP request body accepted, after decompression.
    pub max_request_bytes: usize,
    /// On shutdown, how long the agent keeps trying to ship what it holds, in seconds.
    pub shutdown_grace_secs: u64,
    /// Log files to tail (`[[agent.files]]`), each source with its own globs, format and
    /// parser. Their checkpoints live in `data_dir/files/`.
    pub files: Vec<crate::sources::file::FileSourceConfig>,
    /// Prometheus endpoints to scrape (`[[agent.scrape]]`): static targets per job.
    pub scrape: Vec<crate::sources::scrape::ScrapeConfig>,
    /// TLS of the OTLP listeners (`[agent.tls]`: cert, key, optional client_ca for mTLS).
    pub tls: ServerTlsConfig,
    /// Credentials the OTLP listeners require (`[agent.auth]`: file, open_metrics).
    pub auth: AuthConfig,
    /// Per-tenant ingest limits of the OTLP and remote-write listeners (`[agent.limits]`:
    /// file).
    pub limits: strata_server::limits::LimitsConfig,
    /// TLS to the collectors (`[agent.ship_tls]`: ca, optional client cert and key,
    /// server_name).
    pub ship_tls: ClientTlsConfig,
    /// Bearer token sent to collectors that require auth.
    pub ship_token: Option<String>,
    /// ... or read from this file (trimmed) at start.
    pub ship_token_file: Option<PathBuf>,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            id: String::new(),
            data_dir: PathBuf::from("data/agent"),
            otlp_grpc: "0.0.0.0:4317".into(),
            otlp_http: "0.0.0.0:4318".into(),
            zipkin: None,
            elasticsearch: None,
            collectors: vec!["127.0.0.1:4320".into()],
            dns_refresh_secs: 30,
            default_tenant: strata_schema::envelope::DEFAULT_TENANT.into(),
            batch_max_rows: 16 * 1024,
            batch_max_bytes: 8 * 1024 * 1024,
            batch_max_age_ms: 1000,
            memory_limit_bytes: 256 * 1024 * 1024,
            buffer: crate::buffer::BufferMode::Disk,
            buffer_max_bytes: 1 << 30,
            buffer_segment_bytes: 64 << 20,
            buffer_key_share: 0.5,
            ship_timeout_ms: 10_000,
            ship_compression: ShipCompression::Zstd,
            breaker_failures: 3,
            breaker_open_ms: 1_000,
            breaker_max_open_ms: 30_000,
            max_request_bytes: 16 * 1024 * 1024,
            shutdown_grace_secs: 10,
            files: Vec::new(),
            scrape: Vec::new(),
            tls: ServerTlsConfig::default(),
            auth: AuthConfig::default(),
            limits: Default::default(),
            ship_tls: ClientTlsConfig::default(),
            ship_token: None,
            ship_token_file: None,
        }
    }
}

impl AgentConfig {
    /// Checks the configuration and fills in the agent id; call once before [`crate::run`].
    pub fn validate(&self) -> Result<()> {
        if self.collectors.is_empty() {
            return Err(Error::Config("at least one collector is required".into()));
        }
        for c in &self.collectors {
            if c.rsplit_once(':')
                .is_none_or(|(_, p)| p.parse::<u16>().is_err())
            {
                return Err(Error::Config(format!("collector {c:?} is not HOST:PORT")));
            }
        }
        strata_schema::envelope::validate_tenant(&self.default_tenant)
            .map_err(|e| Error::Config(format!("default_tenant: {e}")))?;
        if self.batch_max_rows == 0 || self.batch_max_bytes == 0 {
            return Err(Error::Config("batch limits must be positive".into()));
        }
        if !(self.buffer_key_share > 0.0 && self.buffer_key_share <= 1.0) {
            return Err(Error::Config("buffer_key_share must be in (0, 1]".into()));
        }
        if self.buffer_max_bytes < 2 * self.max_request_bytes as u64 {
            return Err(Error::Config(
                "buffer_max_bytes must be at least twice max_request_bytes".into(),
            ));
        }
        if self.memory_limit_bytes < self.max_request_bytes {
            return Err(Error::Config(
                "memory_limit_bytes must be at least max_request_bytes".into(),
            ));
        }
        for s in &self.scrape {
            s.validate().map_err(Error::Config)?;
        }
        self.tls
            .validate()
            .and_then(|()| self.ship_tls.validate())
            .map_err(Error::Config)?;
        let mut names = std::collections::HashSet::new();
        for f in &self.files {
            f.validate().map_err(Error::Config)?;
            if !names.insert(f.resolved_name()) {
                return Err(Error::Config(format!(
                    "two file sources are named {:?}; give them distinct names",
                    f.resolved_name()
                )));
            }
        }
        Ok(())
    }

    /// The agent id: the configured one, else the one kept in `data_dir`, else a new one
    /// (written there for the next start).
    pub fn resolve_id(&mut self) -> Result<()> {
        if !self.id.is_empty() {
            return Ok(());
        }
        let path = self.data_dir.join("agent-id");
        if let Ok(id) = std::fs::read_to_string(&path) {
            let id = id.trim();
            if !id.is_empty() {
                self.id = id.to_string();
                return Ok(());
            }
        }
        let id = format!("agent-{}", ulid::Ulid::new().to_string().to_lowercase());
        std::fs::create_dir_all(&self.data_dir)
            .and_then(|()| write_atomically(&path, id.as_bytes()))
            .map_err(|e| {
                Error::Config(format!("cannot keep agent id in {}: {e}", path.display()))
            })?;
        self.id = id;
        Ok(())
    }

    pub fn dns_refresh(&self) -> Duration {
        Duration::from_secs(self.dns_refresh_secs.max(1))
    }
}

/// tmp -> fsync -> rename, so a crash leaves either the old or the new file.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ship_compression_names() {
        use arrow::ipc::CompressionType;
        assert_eq!(
            AgentConfig::default().ship_compression.ipc(),
            Some(CompressionType::ZSTD)
        );
        for (name, ipc) in [
            ("none", None),
            ("lz4", Some(CompressionType::LZ4_FRAME)),
            ("zstd", Some(CompressionType::ZSTD)),
        ] {
            let parsed: AgentConfig =
                serde_json::from_str(&format!(r#"{{"ship_compression":"{name}"}}"#))
                    .expect("config with ship_compression");
            assert_eq!(parsed.ship_compression.ipc(), ipc);
        }
    }
}
