//! The Strata compactor: keeps storage small and fast to read as it ages.
//!
//! Collectors write a small sorted file per flush into each (tenant, signal, hour) partition.
//! Every `interval` the compactor runs a [`pass`]: closed hours are merged into a few large
//! files sorted the same way ([`merge`], a streaming k-way merge within a memory limit,
//! dropping duplicate spans and metric points), partitions past their [retention](config)
//! are made invisible, and what is no longer needed is deleted after `delete_delay`. The
//! switch from inputs to outputs is one create-only commit record in storage
//! ([`strata_storage::commit`]), so readers never see a row twice or miss one, two compactors
//! never both commit a partition, and a crash at any step leaves storage correct.
//!
//! [`run`] is the `strata compactor` role (also inside `strata standalone`); [`run_once`] is
//! `strata compact --once`.

pub mod config;
mod dedup;
pub mod duration;
pub mod merge;
pub mod metrics;
pub mod pass;

use std::sync::Arc;

use strata_storage::Storage;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};

pub use config::CompactorConfig;
pub use duration::HumanDuration;
pub use pass::Report;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid compactor configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] strata_storage::StorageError),
    #[error(transparent)]
    Server(#[from] strata_server::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs one full pass over `config.storage` and returns what it did.
pub async fn run_once(config: &CompactorConfig) -> Result<Report> {
    config.validate().map_err(Error::Config)?;
    let storage = Storage::open(&config.storage, &config.s3)?;
    let metrics = metrics::CompactorMetrics::default();
    Ok(pass::run(
        &storage,
        &config.into(),
        now_ms(),
        &metrics,
        &pass::Skipped::default(),
    )
    .await)
}

/// Runs the compactor role until `shutdown`: a pass every `interval` (the first at start),
/// `/metrics` and `/ready` on `http`. A pass under way when shutdown comes is finished.
pub async fn run(config: CompactorConfig, shutdown: CancellationToken) -> Result<()> {
    config.validate().map_err(Error::Config)?;
    let storage = Storage::open(&config.storage, &config.s3)?;
    let registry = strata_server::new_registry();
    let metrics = Arc::new(metrics::CompactorMetrics::register(
        &mut registry.lock_registry(),
    ));
    let security = strata_server::Security::start(
        "strata_compactor",
        strata_server::security::Settings {
            tls: &config.tls,
            auth: &config.auth,
            limits: &Default::default(),
            default_tenant: strata_schema::envelope::DEFAULT_TENANT,
        },
        &registry,
        &shutdown,
    )?;
    let listener = match config.http.as_str() {
        "" => None,
        addr => Some(security.bind("compactor HTTP", addr).await?),
    };
    info!(
        id = %config.id,
        http = %listener.as_ref().and_then(|l| l.local_addr().ok()).map(|a| a.to_string()).unwrap_or_default(),
        storage = %config.storage,
        interval = %config.interval,
        "compactor started"
    );
    let server_stop = CancellationToken::new();
    let server = listener.map(|listener| {
        let app = strata_server::admin_router(registry, Arc::new(|| true), &security.gate());
        tokio::spawn(strata_server::serve_http(
            "compactor HTTP",
            listener,
            app,
            server_stop.clone(),
        ))
    });
    let pass_config: pass::PassConfig = (&config).into();
    let skipped = pass::Skipped::default();
    let mut ticks = tokio::time::interval(config.interval.0);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let report = pass::run(&storage, &pass_config, now_ms(), &metrics, &skipped).await;
        if report.errors.is_empty() {
            info!(
                partitions = report.partitions,
                files_in = report.files_in,
                files_out = report.files_out,
                retention_files = report.retention_files,
                deleted = report.deleted_inputs + report.deleted_orphans,
                "pass done"
            );
        } else {
            error!(errors = ?report.errors, "pass done with errors");
        }
    }
    server_stop.cancel();
    if let Some(server) = server {
        match server.await {
            Ok(r) => r?,
            Err(e) => error!("compactor HTTP task: {e}"),
        }
    }
    info!("compactor stopped");
    Ok(())
}
