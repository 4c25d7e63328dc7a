//! A query's answer as a stream of Arrow batches under its tenant's limits, for the wire
//! protocols that send rows as they are made (PostgreSQL, Flight SQL) instead of one
//! finished body (HTTP, whose limits layer is [`crate::api`]'s).
//!
//! [`Wire`] is what every wire protocol's listener shares. [`Wire::admit`] takes one of the
//! tenant's query slots; [`Admitted::execute`] plans and starts the query and returns a
//! [`Limited`] stream, which holds the slot until it is dropped. Every poll of the stream
//! allocates for the query's [`Account`]. Each query's outcome (`ok` or its error's type) is
//! counted once, by protocol, in `strata_query_wire_requests_total`.
//!
//! Invariants, the same as the HTTP routes': a query runs within the tenant's time and memory
//! bounds and returns at most `max_result_rows` rows; past any of them the stream yields one
//! error and then ends; a cancel (the protocol's own, or the client going away, which drops
//! the stream) stops the query's work; every refusal is counted by tenant and reason.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::Stream;
use futures::future::BoxFuture;
use strata_server::limits::{Overrides, QueryBounds};
use tokio::sync::OwnedSemaphorePermit;

use crate::budget::{self, Account, Accounted};
use crate::engine::Engine;
use crate::error::QueryError;
use crate::metrics::QueryMetrics;

/// What the listener of one wire protocol shares with the rest of the query service.
#[derive(Clone)]
pub struct Wire {
    /// For the metrics: `postgres`, `flight_sql`.
    pub protocol: &'static str,
    pub engine: Arc<Engine>,
    pub limits: Arc<Overrides>,
    pub gate: Arc<strata_server::auth::Gate>,
    pub metrics: Arc<QueryMetrics>,
}

impl Wire {
    /// Counts one `request` (`login`, `query`, `cancel`) that ended with `outcome`.
    pub fn count(&self, request: &str, outcome: &str) {
        self.metrics.wire(self.protocol, request, outcome);
    }

    /// Counts a query that failed before it was admitted (planning), and hands `e` on.
    pub fn failed(&self, e: QueryError) -> QueryError {
        self.count("query", e.error_type());
        e
    }

    /// Takes a slot among `tenant`'s concurrent queries (refused and counted when none is
    /// free). `time` narrows the tenant's time bound (a client's `statement_timeout`).
    pub fn admit(&self, tenant: &str, time: Option<Duration>) -> Result<Admitted, QueryError> {
        let slot = self.limits.query_permit(tenant).map_err(|r| {
            self.limits.refused(tenant, r.reason, 0);
            self.failed(QueryError::TooMany(r.message))
        })?;
        let config = self.engine.config();
        let mut bounds = self.limits.limits(tenant).query(config.bounds());
        if let Some(t) = time {
            bounds.time = bounds.time.min(t);
        }
        Ok(Admitted {
            tenant: tenant.to_string(),
            wire: self.clone(),
            account: Account::new(bounds.memory_bytes),
            bounds,
            max_rows: config.max_result_rows,
            slot,
        })
    }
}

/// A query of one tenant that got a slot and its bounds.
pub struct Admitted {
    tenant: String,
    wire: Wire,
    bounds: QueryBounds,
    max_rows: usize,
    account: Arc<Account>,
    slot: Option<OwnedSemaphorePermit>,
}

impl Admitted {
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// Counts the query's failure (and a refusal by one of its limits: time, memory).
    fn refused(&self, e: QueryError) -> QueryError {
        if let Some(reason) = e.limit_reason() {
            self.wire.limits.refused(&self.tenant, reason, 0);
        }
        self.wire.failed(e)
    }

    /// Plans `plan` physically on `ctx` and starts it, under the query's bounds; `cancel`
    /// resolves when the client asks to stop.
    pub async fn execute(
        self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        cancel: Option<BoxFuture<'static, ()>>,
    ) -> Result<Limited, QueryError> {
        let deadline = tokio::time::Instant::now() + self.bounds.time;
        let start = async {
            let df = ctx.execute_logical_plan(plan).await?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let stream = df.execute_stream().await?;
            Ok::<_, datafusion::error::DataFusionError>((schema, stream))
        };
        let started =
            tokio::time::timeout_at(deadline, Accounted::new(self.account.clone(), start));
        let (schema, inner) = match started.await {
            Err(_) => return Err(self.refused(QueryError::Timeout(self.bounds.time))),
            Ok(r) => r.map_err(|e| self.refused(QueryError::from(e)))?,
        };
        Ok(Limited {
            schema,
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
            cancel,
            rows: 0,
            done: false,
            query: self,
        })
    }
}

/// The answer of an [`Admitted`] query, batch by batch.
pub struct Limited {
    schema: SchemaRef,
    inner: SendableRecordBatchStream,
    deadline: Pin<Box<tokio::time::Sleep>>,
    cancel: Option<BoxFuture<'static, ()>>,
    rows: usize,
    done: bool,
    query: Admitted,
}

impl Limited {
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn fail(&mut self, e: QueryError) -> Poll<Option<Result<RecordBatch, QueryError>>> {
        self.done = true;
        // Stop DataFusion's work now, not when the stream is dropped.
        self.inner = Box::pin(
            datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
                self.schema.clone(),
                futures::stream::empty::<datafusion::error::Result<RecordBatch>>(),
            ),
        );
        let e = self.query.refused(e);
        self.query.slot = None;
        Poll::Ready(Some(Err(e)))
    }
}

impl Stream for Limited {
    type Item = Result<RecordBatch, QueryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(cancel) = &mut this.cancel
            && cancel.as_mut().poll(cx).is_ready()
        {
            this.cancel = None;
            return this.fail(QueryError::Cancelled);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return this.fail(QueryError::Timeout(this.query.bounds.time));
        }
        let account = this.query.account.clone();
        let polled = budget::counted(&account, || this.inner.as_mut().poll_next(cx));
        if account.exceeded() {
            return this.fail(QueryError::ResourcesExhausted(format!(
                "it allocated more than the {} bytes it may; narrow it down (a shorter time range, fewer columns, a LIMIT)",
                account.limit()
            )));
        }
        match polled {
            Poll::Ready(Some(Ok(batch))) => {
                this.rows += batch.num_rows();
                if this.rows > this.query.max_rows {
                    return this.fail(QueryError::TooLarge(format!(
                        "the result has more than {} rows; add a LIMIT or aggregate",
                        this.query.max_rows
                    )));
                }
                Poll::Ready(Some(Ok(batch)))
            }
            Poll::Ready(Some(Err(e))) => this.fail(QueryError::from(e)),
            Poll::Ready(None) => {
                this.done = true;
                this.query.slot = None;
                this.query.wire.count("query", "ok");
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use strata_server::limits::{Limits, Table};

    use super::*;
    use crate::config::QueryConfig;

    fn wire(
        dir: &std::path::Path,
        limits: &Arc<Overrides>,
        tweak: impl FnOnce(&mut QueryConfig),
    ) -> Wire {
        let mut config = QueryConfig {
            storage: dir.display().to_string(),
            ..Default::default()
        };
        tweak(&mut config);
        Wire {
            protocol: "test",
            engine: Arc::new(Engine::new(config).unwrap()),
            limits: limits.clone(),
            gate: Arc::new(strata_server::auth::Gate::open("default")),
            metrics: Arc::new(QueryMetrics::register(&mut Default::default())),
        }
    }

    /// Runs `sql` as a limited stream; the error it ends with, if any, and the rows before.
    async fn run(
        wire: &Wire,
        sql: &str,
        cancel: Option<BoxFuture<'static, ()>>,
    ) -> (usize, Option<QueryError>) {
        let ctx = wire.engine.session("default").unwrap();
        let plan = ctx.state().create_logical_plan(sql).await.unwrap();
        let admitted = wire.admit("default", None).unwrap();
        let mut stream = match admitted.execute(&ctx, plan, cancel).await {
            Ok(s) => s,
            Err(e) => return (0, Some(e)),
        };
        let mut rows = 0;
        while let Some(b) = stream.next().await {
            match b {
                Ok(b) => rows += b.num_rows(),
                Err(e) => {
                    assert!(stream.next().await.is_none(), "one error, then the end");
                    return (rows, Some(e));
                }
            }
        }
        (rows, None)
    }

    #[tokio::test]
    async fn rows_time_and_cancel_end_the_stream_with_their_error() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Arc::new(Overrides::defaults());
        let e = wire(dir.path(), &limits, |c| c.max_result_rows = 10);
        let (rows, err) = run(&e, "SELECT * FROM generate_series(1, 10)", None).await;
        assert_eq!((rows, err.is_none()), (10, true));
        let (_, err) = run(&e, "SELECT * FROM generate_series(1, 11)", None).await;
        assert!(matches!(err, Some(QueryError::TooLarge(_))), "{err:?}");

        let e = wire(dir.path(), &limits, |c| c.timeout_ms = 50);
        let (_, err) = run(
            &e,
            "SELECT count(*) FROM generate_series(1, 100000000000)",
            None,
        )
        .await;
        assert!(matches!(err, Some(QueryError::Timeout(_))), "{err:?}");

        let e = wire(dir.path(), &limits, |_| {});
        let (_, err) = run(
            &e,
            "SELECT count(*) FROM generate_series(1, 100000000000)",
            Some(Box::pin(tokio::time::sleep(Duration::from_millis(50)))),
        )
        .await;
        assert!(matches!(err, Some(QueryError::Cancelled)), "{err:?}");
    }

    #[tokio::test]
    async fn the_slot_is_held_until_the_stream_ends() {
        let dir = tempfile::tempdir().unwrap();
        let one = Limits {
            max_concurrent_queries: 1,
            ..Limits::default()
        };
        let table = Table {
            defaults: Arc::new(one),
            tenants: Default::default(),
        };
        let limits = Arc::new(Overrides::with_table(table, None, Arc::default()));
        let e = wire(dir.path(), &limits, |_| {});
        let ctx = e.engine.session("default").unwrap();
        let plan = ctx
            .state()
            .create_logical_plan("SELECT * FROM generate_series(1, 3)")
            .await
            .unwrap();
        let first = e.admit("default", None).unwrap();
        assert!(matches!(
            e.admit("default", None),
            Err(QueryError::TooMany(_))
        ));
        let mut stream = first.execute(&ctx, plan, None).await.unwrap();
        assert!(e.admit("default", None).is_err());
        while stream.next().await.is_some() {}
        assert!(e.admit("default", None).is_ok());
    }
}
