//! Compactor configuration (`[compactor]` in the config file, `STRATA_COMPACTOR__*` in the
//! environment): serde structs with documented defaults, validated once before start.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_schema::Signal;

use crate::duration::HumanDuration;

/// Configuration of the compactor role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactorConfig {
    /// Name of this compactor, written in its commit records.
    pub id: String,
    /// Local state of the compactor.
    pub data_dir: PathBuf,
    /// The storage the collectors write: a path, `file://` or `s3://bucket/prefix` URL.
    pub storage: String,
    /// Endpoint, region, credentials and addressing style of an `s3://` storage.
    pub s3: strata_storage::S3Options,
    /// HTTP listen address for `/metrics` and `/ready`; empty: none (inside `standalone`,
    /// unless `--compactor-http` is given).
    pub http: String,
    /// Time between two passes.
    pub interval: HumanDuration,
    /// An hour is compacted once it closed this long ago (rows still in agents' and
    /// collectors' buffers arrive late; a later file is compacted by a later pass).
    pub grace: HumanDuration,
    /// Outputs are closed at about this size (bytes) and the next one started.
    pub target_file_bytes: u64,
    /// Rows per row group of outputs.
    pub row_group_rows: usize,
    /// Zstd level of output pages (1-22).
    pub zstd_level: i32,
    /// Memory for the inputs of one merge (rows, decoders, read buffers); a partition whose
    /// files do not fit is merged in rounds ([`crate::merge::take_group`]).
    pub memory_limit_bytes: usize,
    /// Inputs of a commit are deleted this long after it. Must exceed the longest query plus
    /// the query service's `live_files_max_staleness_ms`.
    pub delete_delay: HumanDuration,
    /// An output no commit names (its pass crashed or lost a conflict) is deleted once it is
    /// this old. Must exceed the longest pass.
    pub orphan_grace: HumanDuration,
    /// Retention of each signal, with per-tenant overrides.
    pub retention: RetentionConfig,
    /// TLS of the HTTP listener (`[compactor.tls]`).
    pub tls: strata_server::tls::ServerTlsConfig,
    /// Credentials `/metrics` requires (`[compactor.auth]`; admin scope unless open_metrics).
    pub auth: strata_server::auth::AuthConfig,
}

impl Default for CompactorConfig {
    fn default() -> Self {
        Self {
            id: "compactor-0".into(),
            data_dir: PathBuf::from("data/compactor"),
            storage: "data/storage".into(),
            s3: Default::default(),
            http: "0.0.0.0:4322".into(),
            interval: HumanDuration(Duration::from_secs(300)),
            grace: HumanDuration(Duration::from_secs(600)),
            target_file_bytes: 256 * 1024 * 1024,
            row_group_rows: 128 * 1024,
            zstd_level: 3,
            memory_limit_bytes: 256 * 1024 * 1024,
            delete_delay: HumanDuration(Duration::from_secs(900)),
            orphan_grace: HumanDuration(Duration::from_secs(6 * 3600)),
            retention: RetentionConfig::default(),
            tls: Default::default(),
            auth: Default::default(),
        }
    }
}

/// How long data is kept. Unset means forever; a tenant's setting wins over the default,
/// a signal's over `all`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Every signal of every tenant.
    pub all: Option<HumanDuration>,
    pub traces: Option<HumanDuration>,
    pub logs: Option<HumanDuration>,
    pub metrics: Option<HumanDuration>,
    /// Per-tenant overrides: `[compactor.retention.tenants.acme] logs = "90d"`.
    pub tenants: BTreeMap<String, SignalRetention>,
}

/// One tenant's retention.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalRetention {
    pub all: Option<HumanDuration>,
    pub traces: Option<HumanDuration>,
    pub logs: Option<HumanDuration>,
    pub metrics: Option<HumanDuration>,
}

impl SignalRetention {
    fn of(&self, signal: Signal) -> Option<HumanDuration> {
        match signal {
            Signal::Traces => self.traces,
            Signal::Logs => self.logs,
            Signal::Metrics => self.metrics,
        }
        .or(self.all)
    }
}

impl RetentionConfig {
    /// The retention of `tenant`'s `signal`, if it has one.
    pub fn of(&self, tenant: &str, signal: Signal) -> Option<Duration> {
        let global = SignalRetention {
            all: self.all,
            traces: self.traces,
            logs: self.logs,
            metrics: self.metrics,
        };
        self.tenants
            .get(tenant)
            .and_then(|t| t.of(signal))
            .or_else(|| global.of(signal))
            .map(|d| d.0)
    }

    /// Every signal of every tenant kept for `d` (the one-shot pass's `--retention`).
    pub fn everything(d: Duration) -> Self {
        Self {
            all: Some(HumanDuration(d)),
            ..Default::default()
        }
    }
}

impl CompactorConfig {
    pub fn validate(&self) -> Result<(), String> {
        strata_storage::layout::validate_writer_id("compactor", &self.id)?;
        self.tls.validate()?;
        if self.row_group_rows == 0 || self.target_file_bytes == 0 {
            return Err("row_group_rows and target_file_bytes must be positive".into());
        }
        if !(1..=22).contains(&self.zstd_level) {
            return Err("zstd_level must be 1..=22".into());
        }
        if self.interval.0.is_zero() {
            return Err("interval must be positive".into());
        }
        for tenant in self.retention.tenants.keys() {
            strata_schema::envelope::validate_tenant(tenant)
                .map_err(|e| format!("retention.tenants: {e}"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_override_signals_override_all() {
        let d = |s: &str| Some(s.parse::<HumanDuration>().unwrap());
        let mut r = RetentionConfig {
            all: d("30d"),
            logs: d("7d"),
            ..Default::default()
        };
        r.tenants.insert(
            "acme".into(),
            SignalRetention {
                all: d("90d"),
                metrics: d("1d"),
                ..Default::default()
            },
        );
        let days = |n: u64| Some(Duration::from_secs(n * 86_400));
        assert_eq!(r.of("x", Signal::Traces), days(30));
        assert_eq!(r.of("x", Signal::Logs), days(7));
        assert_eq!(r.of("acme", Signal::Logs), days(90));
        assert_eq!(r.of("acme", Signal::Metrics), days(1));
        assert_eq!(RetentionConfig::default().of("x", Signal::Logs), None);
    }
}
