//! The Strata collector: the partitioned storage tier.
//!
//! Agents ship Arrow batches over Flight `DoPut` ([`flight`]); SDKs and OpenTelemetry Collectors
//! can also send OTLP directly (the receivers of `strata-ingest`, over [`ingest::StoreIngest`]).
//! Every accepted batch goes through the [`store`]: it is deduplicated by its (agent, sequence)
//! key ([`dedup`]) and made durable in the write-ahead log ([`wal`], the `strata-wal` crate) before it is acknowledged.
//! Rows wait in the [`buffer`] per (tenant, signal, UTC hour) until a size or age threshold,
//! then [`persist`] writes each partition as one sorted, zstd-compressed Parquet file to
//! storage ([`strata_storage`]: its layout, object store and format).
//!
//! Shutdown is ordered: stop accepting (servers drain in-flight requests), then write every
//! buffered partition, then return.

pub mod buffer;
pub mod config;
pub mod dedup;
pub mod flight;
pub mod ingest;
pub mod metrics;
pub mod persist;
pub mod persisted;
pub mod spanmetrics;
pub mod store;
/// The write-ahead log, shared with the agent's disk buffer.
pub use strata_wal as wal;

use std::sync::Arc;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use strata_ingest::otlp::{OtlpMetrics, OtlpReceiver};
use strata_server::{admin_router, serve_http};
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::CollectorConfig;

/// Largest Flight message accepted from an agent.
const MAX_FLIGHT_MESSAGE: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid collector configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Storage(#[from] strata_storage::StorageError),
    #[error(transparent)]
    Server(#[from] strata_server::Error),
    #[error("task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs a collector until `shutdown` is cancelled, then persists everything it accepted.
pub async fn run(config: CollectorConfig, shutdown: CancellationToken) -> Result<()> {
    config.validate().map_err(Error::Config)?;
    // Listeners first: a port that cannot be bound stops the collector before it started
    // anything.
    let registry = strata_server::new_registry();
    let security = strata_server::Security::start(
        "strata_collector",
        strata_server::security::Settings {
            tls: &config.tls,
            auth: &config.auth,
            limits: &config.limits,
            default_tenant: &config.default_tenant,
        },
        &registry,
        &shutdown,
    )?;
    let flight_listener = match &config.flight_tls {
        Some(tls) => {
            let tls = security.other_tls(tls, &shutdown)?;
            security.bind_with("Flight", &config.flight, tls).await?
        }
        None => security.bind("Flight", &config.flight).await?,
    };
    let admin_listener = security.bind("collector HTTP", &config.http).await?;
    let otlp_grpc = match &config.otlp_grpc {
        Some(addr) => Some(security.bind("OTLP/gRPC", addr).await?),
        None => None,
    };
    let otlp_http = match &config.otlp_http {
        Some(addr) => Some(security.bind("OTLP/HTTP", addr).await?),
        None => None,
    };
    let storage = strata_storage::Storage::open(&config.storage, &config.s3)?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| Error::Config(format!("data_dir {}: {e}", config.data_dir.display())))?;
    let metrics = Arc::new(metrics::CollectorMetrics::register(
        &mut registry.lock_registry(),
    ));
    let buffer = Arc::new(buffer::Buffer::new(config.max_buffer_bytes));
    let mut store = store::Store::open(
        &config.data_dir,
        config.wal_segment_bytes,
        buffer.clone(),
        &storage,
        &config.id,
        metrics.clone(),
    )
    .await
    .map_err(|e| Error::Config(format!("WAL in {}: {e}", config.data_dir.display())))?;
    let span_metrics = config.span_metrics.enabled.then(|| {
        Arc::new(spanmetrics::SpanMetrics::new(
            config.span_metrics.clone(),
            metrics.clone(),
        ))
    });
    if let Some(sm) = &span_metrics {
        store = store.with_span_metrics(sm.clone());
    }
    let store = Arc::new(store);
    let span_metrics_stop = CancellationToken::new();
    let span_metrics_task =
        span_metrics.map(|sm| tokio::spawn(sm.run(store.clone(), span_metrics_stop.clone())));

    let persister = persist::Persister {
        collector_id: config.id.clone(),
        buffer: buffer.clone(),
        store: store.clone(),
        storage: storage.clone(),
        policy: persist::FlushPolicy {
            max_rows: config.flush_max_rows,
            max_bytes: config.flush_max_bytes,
            max_age: config.flush_max_age(),
        },
        options: strata_storage::format::ParquetOptions {
            row_group_rows: config.row_group_rows,
            zstd_level: config.zstd_level,
        },
        metrics: metrics.clone(),
    };
    let persist_stop = CancellationToken::new();
    let persist_task = tokio::spawn(persister.run(persist_stop.clone(), Duration::from_secs(30)));

    info!(
        id = %config.id,
        flight = %flight_listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        http = %admin_listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
        storage = %config.storage,
        "collector listening"
    );
    let mut servers = strata_server::Servers::new(shutdown.clone());
    let flight = FlightServiceServer::new(flight::CollectorFlight {
        store: store.clone(),
        metrics: metrics.clone(),
        gate: security.gate(),
    })
    .max_decoding_message_size(MAX_FLIGHT_MESSAGE);
    let stop = shutdown.clone();
    servers.spawn("Flight", async move {
        strata_server::grpc_server()
            .add_service(flight)
            .serve_with_incoming_shutdown(
                flight_listener.incoming(stop.clone()),
                stop.cancelled_owned(),
            )
            .await
            .map_err(|e| strata_server::Error::Serve {
                what: "Flight",
                source: Box::new(e),
            })
    });
    let otlp_metrics = Arc::new(OtlpMetrics::register(
        &mut registry.lock_registry(),
        "strata_collector",
    ));
    let receiver = Arc::new(
        OtlpReceiver::new(
            Arc::new(ingest::StoreIngest {
                store: store.clone(),
            }),
            otlp_metrics,
            config.max_request_bytes,
            security.gate(),
        )
        .with_limits(security.limits()),
    );
    let ready_flag = shutdown.clone();
    // Prometheus can remote-write straight into a collector, on its HTTP listener.
    let admin = admin_router(
        registry.clone(),
        Arc::new(move || !ready_flag.is_cancelled()),
        &security.gate(),
    )
    .merge(strata_ingest::remote_write::router(receiver.clone()));
    servers.spawn(
        "collector HTTP",
        serve_http("collector HTTP", admin_listener, admin, shutdown.clone()),
    );
    if let Some(listener) = otlp_grpc {
        info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "collector OTLP/gRPC listening");
        servers.spawn(
            "OTLP/gRPC",
            strata_ingest::otlp::grpc::serve(receiver.clone(), listener, shutdown.clone()),
        );
    }
    if let Some(listener) = otlp_http {
        info!(addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(), "collector OTLP/HTTP listening");
        let app = strata_ingest::http::router(receiver);
        servers.spawn(
            "OTLP/HTTP",
            serve_http("OTLP/HTTP", listener, app, shutdown.clone()),
        );
    }

    // One server failing stops the collector; the others drain.
    let served = servers.wait().await;
    // The last span-metric values go through the WAL before the final flush.
    span_metrics_stop.cancel();
    if let Some(task) = span_metrics_task {
        task.await?;
    }
    persist_stop.cancel();
    persist_task.await?;
    info!("collector stopped");
    served.map_err(Error::from)
}
