//! Listener plumbing shared by the agent's servers and reused by the collector: binding,
//! serving an axum app until shutdown, and the `/metrics` + `/ready` admin routes.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::SharedRegistry;
use crate::{Error, Result};

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

/// Serves `app` on `listener` until `shutdown` is cancelled, then finishes in-flight requests.
pub async fn serve_http(
    what: &'static str,
    listener: TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
        .map_err(|e| Error::Serve {
            what,
            source: Box::new(e),
        })
}

/// A readiness probe: true once the role can take traffic.
pub type ReadyFn = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone)]
struct AdminState {
    registry: SharedRegistry,
    ready: ReadyFn,
}

/// `GET /metrics` (Prometheus text format) and `GET /ready` (200 or 503).
pub fn admin_router(registry: SharedRegistry, ready: ReadyFn) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/ready", get(ready_probe))
        .with_state(AdminState { registry, ready })
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
