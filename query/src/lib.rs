//! The Strata query service: DataFusion over the collectors' Parquet files, behind HTTP.
//!
//! [`engine`] builds a read-only, tenant-scoped DataFusion session per request over the
//! storage layout; [`api`] serves SQL, PromQL and the Tempo and Jaeger APIs over [`traces`], and [`ui`] the web UI; errors map to HTTP in [`error`].
//! [`pg`] and [`flight_sql`] serve SQL over the PostgreSQL wire protocol and Arrow Flight SQL,
//! running each statement as a [`stream`] under the same limits.

pub mod api;
pub mod bounded;
pub mod budget;
pub mod config;
pub mod engine;
pub mod error;
pub mod flight_sql;
pub mod json;
mod live_store;
pub mod logs;
pub mod metrics;
pub mod pg;
pub mod promql;
pub mod stream;
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
    Ok(Service::new(config, &registry)?.router(registry, security))
}

/// The query service's engine and metrics, shared by its HTTP and PostgreSQL listeners.
struct Service {
    engine: Arc<engine::Engine>,
    metrics: Arc<metrics::QueryMetrics>,
}

impl Service {
    fn new(config: QueryConfig, registry: &strata_server::SharedRegistry) -> Result<Self> {
        config.validate().map_err(Error::Config)?;
        let metrics = Arc::new(metrics::QueryMetrics::register(
            &mut registry.lock_registry(),
        ));
        let engine = Arc::new(engine::Engine::new(config)?);
        engine.trace_index().register(&mut registry.lock_registry());
        Ok(Self { engine, metrics })
    }

    fn router(
        &self,
        registry: strata_server::SharedRegistry,
        security: &strata_server::Security,
    ) -> axum::Router {
        let gate = security.gate();
        let state = api::AppState {
            engine: self.engine.clone(),
            metrics: self.metrics.clone(),
            limits: security.limits(),
        };
        let api = strata_server::auth::http::require(
            api::router(state),
            gate.clone(),
            strata_server::auth::Scope::Read,
            strata_server::auth::http::render_json,
        );
        api.merge(admin_router(registry, Arc::new(|| true), &gate))
    }

    /// What the listener of the wire protocol `protocol` shares with the HTTP API.
    fn wire(&self, protocol: &'static str, security: &strata_server::Security) -> stream::Wire {
        stream::Wire {
            protocol,
            engine: self.engine.clone(),
            limits: security.limits(),
            gate: security.gate(),
            metrics: self.metrics.clone(),
        }
    }
}

/// Binds an optional listener: `None` is `default`, skipped with a warning when its port is
/// taken; `Some("")` is off; any other address must bind.
async fn bind_optional(
    what: &'static str,
    addr: Option<&str>,
    default: &str,
) -> Result<Option<tokio::net::TcpListener>> {
    match addr {
        Some("") => Ok(None),
        Some(a) => Ok(Some(strata_server::bind(what, a).await?)),
        None => match strata_server::bind(what, default).await {
            Ok(l) => Ok(Some(l)),
            Err(e) => {
                tracing::warn!(error = %e, "{what} not started: its default port is taken (give an address to require it)");
                Ok(None)
            }
        },
    }
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
    let pg_listener =
        bind_optional("query PostgreSQL", config.pg.as_deref(), config::DEFAULT_PG).await?;
    let flight_listener = bind_optional(
        "query Flight SQL",
        config.flight_sql.as_deref(),
        config::DEFAULT_FLIGHT_SQL,
    )
    .await?;
    let local = |l: Option<std::io::Result<std::net::SocketAddr>>| {
        l.and_then(|a| a.ok())
            .map(|a| a.to_string())
            .unwrap_or_default()
    };
    info!(
        http = %local(Some(listener.local_addr())),
        pg = %local(pg_listener.as_ref().map(|l| l.local_addr())),
        flight_sql = %local(flight_listener.as_ref().map(|l| l.local_addr())),
        tls = listener.is_tls(),
        storage = %config.storage,
        "query service listening"
    );
    let service = Service::new(config, &registry)?;
    let pg_task = pg_listener.map(|l| {
        tokio::spawn(pg::serve(
            l,
            pg::Shared::new(
                service.wire("postgres", &security),
                security.tls().is_some(),
            ),
            security.tls(),
            shutdown.clone(),
        ))
    });
    let flight_task = flight_listener.map(|l| {
        let listener = security.listener("query Flight SQL", l);
        let svc = arrow_flight::flight_service_server::FlightServiceServer::new(
            flight_sql::StrataFlightSql::new(service.wire("flight_sql", &security)),
        );
        let stop = shutdown.clone();
        tokio::spawn(async move {
            strata_server::grpc_server()
                .add_service(svc)
                .serve_with_incoming_shutdown(
                    listener.incoming(stop.clone()),
                    stop.cancelled_owned(),
                )
                .await
        })
    });
    let app = service.router(registry, &security);
    serve_http("query HTTP", listener, app, shutdown).await?;
    if let Some(t) = pg_task {
        let _ = t.await;
    }
    if let Some(t) = flight_task
        && let Ok(Err(e)) = t.await
    {
        tracing::error!(error = %e, "Flight SQL server failed");
    }
    info!("query service stopped");
    Ok(())
}
