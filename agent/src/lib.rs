//! The Strata agent: the edge tier.
//!
//! It receives OTLP over gRPC and HTTP (`strata_ingest::otlp`; Prometheus remote write,
//! Zipkin and Elasticsearch bulk requests on the same HTTP port, and the last two on ports of
//! their own if asked), turns every request into an Arrow record batch (through
//! `strata-schema`, straight from the prost types), and hands it to the
//! [`shipper`], which routes rows to collectors by consistent hashing ([`ring`]), makes them
//! durable in the [`buffer`] (on disk by default) before the request is answered, then batches
//! them by size and age and ships them over Arrow Flight `DoPut`.
//!
//! Invariants:
//! - An acknowledged request is in the buffer; a buffered batch leaves it only once a
//!   collector acknowledged it, and carries the same idempotency key on every retry, also
//!   after a restart of the agent.
//! - Memory and disk are bounded; when either is full the receivers answer
//!   `RESOURCE_EXHAUSTED` / 429 with `Retry-After`.
//! - All spans of one trace go to one collector while the collector set is stable and healthy.
//!
//! Tailed log files ([`sources::file`]) go through the same shipper, but not into the disk
//! buffer: the file is their buffer, and each file's checkpoint moves only once a collector
//! acknowledged the lines before it.
//!
//! The OTLP receivers (`strata-ingest`) are written against its small `Ingest` trait: the
//! agent's is the [`shipper`], the collector mounts the very same receivers in front of its own
//! store.

pub mod buffer;
pub mod config;
pub mod discovery;
pub mod metrics;
pub mod ring;
pub mod shipper;
pub mod sources;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::AgentConfig;

/// Errors that stop the agent from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid agent configuration: {0}")]
    Config(String),
    #[error("cannot open the agent buffer: {0}")]
    Buffer(String),
    #[error(transparent)]
    Server(#[from] strata_server::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs the agent until `shutdown` is cancelled, then drains what it accepted (bounded by
/// `shutdown_grace`) and returns.
pub async fn run(mut config: AgentConfig, shutdown: CancellationToken) -> Result<()> {
    config.validate()?;
    config.resolve_id()?;
    let registry = metrics::new_registry();
    let security = strata_server::Security::start(
        "strata_agent",
        strata_server::security::Settings {
            tls: &config.tls,
            auth: &config.auth,
            limits: &config.limits,
            default_tenant: &config.default_tenant,
        },
        &registry,
        &shutdown,
    )?;
    // Listeners first: a port that cannot be bound stops the agent before it started anything.
    let grpc = security.bind("OTLP/gRPC", &config.otlp_grpc).await?;
    let http = security.bind("OTLP/HTTP", &config.otlp_http).await?;
    let zipkin = match config.zipkin.as_deref().filter(|a| !a.is_empty()) {
        Some(addr) => Some(security.bind("Zipkin", addr).await?),
        None => None,
    };
    let elasticsearch = match config.elasticsearch.as_deref().filter(|a| !a.is_empty()) {
        Some(addr) => Some(security.bind("Elasticsearch", addr).await?),
        None => None,
    };
    let agent_metrics = Arc::new(metrics::AgentMetrics::register(
        &mut registry.lock_registry(),
    ));
    let otlp_metrics = Arc::new(strata_ingest::otlp::OtlpMetrics::register(
        &mut registry.lock_registry(),
        "strata_agent",
    ));

    let collectors = discovery::Discovery::new(config.collectors.clone(), config.dns_refresh());
    let shipper = shipper::Shipper::start(
        shipper::ShipperConfig::from_agent(&config).map_err(Error::Config)?,
        collectors,
        agent_metrics.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(|e| Error::Buffer(e.to_string()))?;

    let file_metrics = sources::file::metrics::FileMetrics::register(&mut registry.lock_registry());
    let files_drained = CancellationToken::new();
    let file_tasks = tokio_util::task::TaskTracker::new();
    for source in &config.files {
        if let Err(e) = sources::file::spawn(
            source.clone(),
            &config.data_dir,
            shipper.clone(),
            &file_metrics,
            shutdown.clone(),
            files_drained.clone(),
            &file_tasks,
        ) {
            shutdown.cancel();
            return Err(Error::Config(e));
        }
    }
    file_tasks.close();

    let receiver = Arc::new(
        strata_ingest::otlp::OtlpReceiver::new(
            Arc::new(shipper.clone()),
            otlp_metrics,
            config.max_request_bytes,
            security.gate(),
        )
        .with_limits(security.limits()),
    );
    let scrape_metrics = sources::scrape::ScrapeMetrics::register(&mut registry.lock_registry());
    let scrape_tasks = tokio_util::task::TaskTracker::new();
    for job in &config.scrape {
        sources::scrape::spawn(
            job,
            receiver.clone(),
            &scrape_metrics,
            shutdown.clone(),
            &scrape_tasks,
        );
    }
    scrape_tasks.close();
    info!(
        agent_id = %config.id,
        otlp_grpc = %grpc.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        otlp_http = %http.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        tls = http.is_tls(),
        "agent listening"
    );
    let ready = shipper.clone();
    let http_app =
        strata_ingest::http::router(receiver.clone()).merge(strata_server::admin_router(
            registry.clone(),
            Arc::new(move || ready.is_ready()),
            &security.gate(),
        ));

    // Stop accepting first (a server that fails stops the others, and the agent with them);
    // then the shipper drains what was accepted.
    let mut servers = strata_server::Servers::new(shutdown.clone());
    let stop = shutdown.clone();
    if let Some(listener) = zipkin {
        info!(zipkin = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "Zipkin listening");
        let app = strata_ingest::zipkin::router(receiver.clone());
        servers.spawn(
            "Zipkin",
            strata_server::serve_http("Zipkin", listener, app, shutdown.clone()),
        );
    }
    if let Some(listener) = elasticsearch {
        info!(elasticsearch = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "Elasticsearch bulk ingest listening");
        let app = strata_ingest::elastic::router(receiver.clone());
        servers.spawn(
            "Elasticsearch",
            strata_server::serve_http("Elasticsearch", listener, app, shutdown.clone()),
        );
    }
    servers.spawn(
        "OTLP/gRPC",
        strata_ingest::otlp::grpc::serve(receiver, grpc, stop),
    );
    servers.spawn(
        "OTLP/HTTP",
        strata_server::serve_http("OTLP/HTTP", http, http_app, shutdown.clone()),
    );
    let served = servers.wait().await;
    scrape_tasks.wait().await;
    shipper.drain().await;
    // Acknowledgements that came during the drain are in; the file sources write their
    // checkpoints a last time.
    files_drained.cancel();
    file_tasks.wait().await;
    served?;
    info!("agent stopped");
    Ok(())
}
