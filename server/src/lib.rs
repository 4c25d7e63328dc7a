//! What every role's servers share:
//! - [`listener`]: bound sockets, plain or [`tls`], as streams of ready connections;
//! - [`serve`]: HTTP apps and gRPC servers on them, with bounded headers and graceful stops;
//! - [`auth`]: the gate that decides each request's tenant and whether it may go on;
//! - [`limits`]: per-tenant limits of ingest and queries, from an overrides file;
//! - [`security`]: a role's TLS, gate, limits and their metrics as one value;
//! - the `/metrics` + `/ready` admin routes, the metrics registry that a role's components
//!   register on, and the [`shutdown`] of a role's servers as one.

pub mod auth;
pub mod limits;
pub mod listener;
pub mod reload;
pub mod security;
pub mod serve;
pub mod shutdown;
pub mod tls;

pub use listener::Listener;
pub use security::Security;
pub use serve::{grpc_server, serve_http};
pub use shutdown::Servers;

use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use prometheus_client::registry::Registry;

/// Errors of a role's listeners.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind {what} on {addr}: {source}")]
    Bind {
        what: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Security(String),
    #[error("{what} server failed: {source}")]
    Serve {
        what: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Label set used by metric families: a short list of (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;

/// A registry shared between the components of one role and its `/metrics` handler.
#[derive(Clone, Default)]
pub struct SharedRegistry(Arc<Mutex<Registry>>);

impl SharedRegistry {
    pub fn lock_registry(&self) -> MutexGuard<'_, Registry> {
        // A poisoned registry only means a panic elsewhere; the data is still usable.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.lock_registry());
        out
    }
}

pub fn new_registry() -> SharedRegistry {
    SharedRegistry::default()
}

/// Binds `addr` (`HOST:PORT`; `:PORT` means all interfaces).
pub async fn bind(what: &'static str, addr: &str) -> Result<TcpListener> {
    let addr = if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_string()
    };
    TcpListener::bind(&addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

/// A readiness probe: true once the role can take traffic.
pub type ReadyFn = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    registry: SharedRegistry,
    ready: ReadyFn,
}

/// `GET /metrics` (Prometheus text format; behind the `admin` scope unless the gate serves
/// metrics openly) and `GET /ready` (200 or 503, always open).
pub fn admin_router(registry: SharedRegistry, ready: ReadyFn, gate: &Arc<auth::Gate>) -> Router {
    let state = AdminState { registry, ready };
    let mut metrics_route = Router::new()
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    if !gate.metrics_open() {
        metrics_route = auth::http::require(
            metrics_route,
            gate.clone(),
            auth::Scope::Admin,
            auth::http::render_json,
        );
    }
    Router::new()
        .route("/ready", get(ready_probe))
        .with_state(state)
        .merge(metrics_route)
}

async fn metrics(State(s): State<AdminState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.registry.encode(),
    )
}

async fn ready_probe(State(s): State<AdminState>) -> impl IntoResponse {
    if (s.ready)() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}
