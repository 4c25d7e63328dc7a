//! The Strata query service: DataFusion over the collectors' Parquet files, behind HTTP.
//!
//! [`engine`] builds a read-only, tenant-scoped DataFusion session per request over the
//! storage layout; [`api`] serves SQL, PromQL and the Tempo and Jaeger APIs over [`traces`], and [`ui`] the web UI; errors map to HTTP in [`error`].

pub mod api;
pub mod bounded;
pub mod budget;
pub mod config;
pub mod engine;
pub mod error;
pub mod json;
mod live_store;
pub mod logs;
pub mod metrics;
pub mod promql;
pub mod traces;
pub mod ui;

use std::sync::Arc;

use strata_server::{admin_router, serve_http};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::QueryConfig;

// The query crate's tests count allocations as the binary does.
#[cfg(test)]
#[global_allocator]
static ALLOC: budget::CountingAlloc = budget::CountingAlloc;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid query configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Query(#[from] error::QueryError),
    #[error(transparent)]
    Server(#[from] strata_server::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The query service's HTTP app with no auth, the built-in limits and a registry of its own
/// (tests, tools).
pub fn app(config: QueryConfig) -> Result<axum::Router> {
    let security = strata_server::Security::open(&config.default_tenant);
    app_with(config, strata_server::new_registry(), &security)
}

/// The complete HTTP app of the query service (API and UI behind the gate, under the
/// tenants' limits, plus `/metrics` and `/ready`), with its metrics on `registry`.
pub fn app_with(
    config: QueryConfig,
    registry: strata_server::SharedRegistry,
    security: &strata_server::Security,
) -> Result<axum::Router> {
    let gate = security.gate();
    config.validate().map_err(Error::Config)?;
    let metrics = Arc::new(metrics::QueryMetrics::register(
        &mut registry.lock_registry(),
    ));
    let engine = Arc::new(engine::Engine::new(config)?);
    engine.trace_index().register(&mut registry.lock_registry());
    let state = api::AppState {
        engine,
        metrics,
        limits: security.limits(),
    };
    let api = strata_server::auth::http::require(
        api::router(state),
        gate.clone(),
        strata_server::auth::Scope::Read,
        strata_server::auth::http::render_json,
    );
    Ok(api.merge(admin_router(registry, Arc::new(|| true), &gate)))
}

/// Serves the query API until `shutdown` is cancelled.
pub async fn run(config: QueryConfig, shutdown: CancellationToken) -> Result<()> {
    let registry = strata_server::new_registry();
    let security = strata_server::Security::start(
        "strata_query",
        strata_server::security::Settings {
            tls: &config.tls,
            auth: &config.auth,
            limits: &config.limits,
            default_tenant: &config.default_tenant,
        },
        &registry,
        &shutdown,
    )?;
    let listener = security.bind("query HTTP", &config.http).await?;
    info!(
        http = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        tls = listener.is_tls(),
        storage = %config.storage,
        "query service listening"
    );
    let app = app_with(config, registry, &security)?;
    serve_http("query HTTP", listener, app, shutdown).await?;
    info!("query service stopped");
    Ok(())
}
