//! The PostgreSQL wire protocol on the query service (`--pg`, `:5432` by default), so psql,
//! Grafana's PostgreSQL datasource, psycopg, SQLAlchemy and JDBC tools query the same tables,
//! under the same tenants, credentials and limits as `POST /api/v1/sql`.
//!
//! The protocol is `pgwire`'s; the `pg_catalog` schema, the catalog functions and the
//! PostgreSQL-compatibility SQL rewrites are datafusion-pg-catalog's; `SET` and transaction
//! statements are datafusion-postgres's hooks. What is Strata's own, and why:
//! - [`startup`]: logins are checked by the role's auth gate (its hashed secrets), which
//!   pgwire's password handlers cannot use; the tenant is fixed per connection;
//! - [`handler`]: every statement runs with a runtime (memory pool) of its own over the
//!   connection's catalog of the tenant's tables, under the tenant's limits, which
//!   datafusion-postgres's handler, bound to one shared session, does not apply; Grafana's
//!   table-list query is rewritten into SQL DataFusion plans;
//! - [`savepoints`]: savepoints accepted as transactions are;
//! - [`settings`]: one table of settings for `SHOW` and `current_setting()`, agreeing with
//!   the login's `ParameterStatus` (datafusion-postgres's `SHOW` does not);
//! - [`encode`]: nested columns as `json`, errors as SQLSTATEs;
//! - [`names`]: unaliased expressions named as PostgreSQL names them (`count`, `?column?`);
//! - [`functions`]: `version()`, `current_setting()` and `to_regtype()` as drivers expect them;
//! - [`cancel`]: cancel requests reach the statement's row stream, not only its planning.
//!
//! Invariants: nothing a client sends changes storage or another connection's state; a
//! connection's tenant is decided once, at login; shutting down closes every connection.

mod cancel;
mod encode;
mod functions;
mod handler;
mod names;
mod savepoints;
mod settings;
mod startup;

use std::sync::Arc;

use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::SessionContext;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use pgwire::api::{ClientInfo, ErrorHandler, PgWireServerHandlers};
use pgwire::error::{PgWireError, PgWireResult};
use strata_server::tls::ServerTls;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::stream::Wire;
use encode::{datafusion_error, query_error};
use handler::Queries;
use startup::Startup;

/// The catalog (database) name every session has; clients may ask for any database.
pub const CATALOG: &str = "strata";

/// What every connection of the PostgreSQL listener shares.
pub struct Shared {
    pub wire: Wire,
    /// Whether plain-text connections are refused (the role has TLS).
    pub tls_required: bool,
    cancels: Arc<cancel::Cancels>,
}

impl Shared {
    pub fn new(wire: Wire, tls_required: bool) -> Self {
        Self {
            wire,
            tls_required,
            cancels: Arc::new(cancel::Cancels::default()),
        }
    }
}

/// The connection's catalog: one session per connection holds the `pg_catalog` schema, so
/// that the object ids a client reads in one statement (psql's `\d` reads a table's oid, then
/// its columns by that oid) mean the same in the next.
struct ConnectionSession(SessionContext);

/// A session for one statement of the connection's tenant: the connection's catalog (tables,
/// `pg_catalog`, functions) with a runtime of its own (memory pool), and the connection's
/// time zone.
fn session<C: ClientInfo + ?Sized>(shared: &Shared, client: &C) -> PgWireResult<SessionContext> {
    let extensions = client.session_extensions();
    let base = match extensions.get::<ConnectionSession>() {
        Some(s) => s,
        None => {
            let login = startup::login(client)?;
            let ctx = shared
                .wire
                .engine
                .session(&login.tenant)
                .map_err(query_error)?;
            datafusion_pg_catalog::pg_catalog::setup_pg_catalog(
                &ctx,
                CATALOG,
                EmptyContextProvider,
            )
            .map_err(|e| datafusion_error(*e))?;
            extensions.insert(ConnectionSession(ctx));
            extensions
                .get::<ConnectionSession>()
                .ok_or_else(|| encode::error("XX000", "connection session lost"))?
        }
    };
    let mut state = SessionStateBuilder::new_from_existing(base.0.state())
        .with_runtime_env(shared.wire.engine.runtime().map_err(query_error)?)
        .build();
    if let Some(tz) = client.metadata().get("timezone") {
        state.config_mut().options_mut().execution.time_zone = Some(tz.clone());
    }
    let ctx = SessionContext::new_with_state(state);
    functions::register(&ctx, client.metadata());
    Ok(ctx)
}

struct Handlers {
    startup: Arc<Startup>,
    queries: Arc<Queries>,
    cancel: Arc<cancel::OnCancel>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl pgwire::api::query::SimpleQueryHandler> {
        self.queries.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl pgwire::api::query::ExtendedQueryHandler> {
        self.queries.clone()
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        self.startup.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.cancel.clone()
    }

    fn error_handler(&self) -> Arc<impl ErrorHandler> {
        Arc::new(LogErrors)
    }
}

struct LogErrors;

impl ErrorHandler for LogErrors {
    fn on_error<C: ClientInfo>(&self, client: &C, error: &mut PgWireError) {
        debug!(client = %client.socket_addr(), %error, "PostgreSQL error sent");
    }
}

/// Serves PostgreSQL connections on `listener` until `shutdown`; `tls` is the role's
/// certificate, offered through `SSLRequest` (and then required).
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    tls: Option<Arc<ServerTls>>,
    shutdown: CancellationToken,
) {
    let shared = Arc::new(shared);
    let handlers = Arc::new(Handlers {
        startup: Arc::new(Startup::new(shared.clone())),
        queries: Arc::new(Queries::new(shared.clone())),
        cancel: Arc::new(cancel::OnCancel {
            cancels: shared.cancels.clone(),
            wire: shared.wire.clone(),
        }),
    });
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let acceptor = tls.as_ref().map(|t| {
                        // Certificates reload: take the current one for each connection.
                        let mut config = (*t.current()).clone();
                        config.alpn_protocols = vec![b"postgresql".to_vec()];
                        tokio_rustls::TlsAcceptor::from(Arc::new(config))
                    });
                    let handlers = handlers.clone();
                    connections.spawn(async move {
                        if let Err(e) = pgwire::tokio::process_socket(socket, acceptor, handlers).await {
                            debug!(%peer, error = %e, "PostgreSQL connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    warn!(error = %e, "PostgreSQL listener: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
    connections.shutdown().await;
}
