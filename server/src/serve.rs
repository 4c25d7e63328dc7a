//! Serving a role's protocols on a [`Listener`]: HTTP/1.1 and HTTP/2 apps (axum routers)
//! through hyper, and the settings every gRPC server of a role shares.
//!
//! Invariants:
//! - A client gets [`HEADER_TIMEOUT`] to send a request's headers and at most
//!   [`MAX_HEADER_BYTES`] of them; past either, its connection is closed (HTTP/1 answers
//!   `431` for too many header bytes). A slow or oversized client holds one connection, never
//!   the server.
//! - On shutdown the listener stops accepting and in-flight requests finish.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use futures::StreamExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::debug;

use crate::listener::{ConnInfo, Listener};
use crate::{Error, Result};

/// Time a client has to send the headers of a request (HTTP/1).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes of request headers a client may send (HTTP/1 read buffer, HTTP/2 header list).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// Serves `app` on `listener` until `shutdown` is cancelled, then finishes in-flight
/// requests.
pub async fn serve_http(
    what: &'static str,
    listener: Listener,
    app: Router,
    shutdown: CancellationToken,
) -> Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32);
    let graceful = GracefulShutdown::new();
    let mut incoming = listener.incoming(shutdown.clone());
    loop {
        let conn = tokio::select! {
            c = incoming.next() => c,
            _ = shutdown.cancelled() => break,
        };
        let Some(conn) = conn else { break };
        let conn = match conn {
            Ok(c) => c,
            Err(e) => {
                return Err(Error::Serve {
                    what,
                    source: Box::new(e),
                });
            }
        };
        let info = ConnInfo {
            remote: conn.remote(),
        };
        let app = app.clone();
        let service = TowerToHyperService::new(tower::service_fn(
            move |mut request: http::Request<Incoming>| {
                request.extensions_mut().insert(info);
                let request = request.map(Body::new);
                let app = app.clone();
                async move { app.oneshot(request).await }
            },
        ));
        let served = builder
            .serve_connection_with_upgrades(TokioIo::new(conn), service)
            .into_owned();
        let served = graceful.watch(served);
        tokio::spawn(async move {
            if let Err(e) = served.await {
                debug!(listener = what, "connection ended: {e}");
            }
        });
    }
    graceful.shutdown().await;
    Ok(())
}

/// A tonic server with the limits of every gRPC listener of a role.
pub fn grpc_server() -> tonic::transport::Server {
    tonic::transport::Server::builder()
        .http2_max_header_list_size(Some(MAX_HEADER_BYTES as u32))
        .tcp_nodelay(true)
}
