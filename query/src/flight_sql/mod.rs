//! Arrow Flight SQL on the query service (`--flight-sql`, `:3201` by default): ADBC, the
//! Grafana FlightSQL datasource and pandas through ADBC fetch answers as Arrow batches, with no
//! conversion on the way (the fastest way out of Strata).
//!
//! - `CommandStatementQuery` -> `GetFlightInfo` (the answer's schema and one endpoint whose
//!   ticket is the statement) -> `DoGet` (the batches as they are made);
//! - prepared statements: created by an action, parameters bound by `DoPut`, run by
//!   `GetFlightInfo` + `DoGet`; kept per tenant, at most [`MAX_PREPARED`] at once;
//! - the catalog commands ([`catalog`]): `GetSqlInfo`, `GetCatalogs`, `GetDbSchemas`,
//!   `GetTables` (with schemas), `GetTableTypes`.
//!
//! Every call is authorized by the role's gate from its `authorization` and `x-scope-orgid`
//! metadata, as the HTTP API's requests are (a handshake with Basic credentials answers with
//! the same header, which clients then send on each call). Statements run as
//! [`Limited`](crate::stream::Limited) streams, under the tenant's limits; a client that
//! drops its `DoGet` stops the query.
//!
//! Invariants: only reading statements plan; a ticket or handle names a statement, never a
//! tenant (each call's credentials decide it).

mod catalog;

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandPreparedStatementQuery, CommandStatementQuery,
    DoPutPreparedStatementResult, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use bytes::Bytes;
use datafusion::common::{ParamValues, ScalarValue};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use futures::{Stream, TryStreamExt};
use prost::Message;
use strata_server::auth::{Scope, TENANT_HEADER};
use tonic::{Request, Response, Status, Streaming};

use crate::error::QueryError;
use crate::stream::Wire;

/// Most prepared statements kept at once (the oldest go first).
pub const MAX_PREPARED: usize = 10_000;

type DoGetStream = Pin<Box<dyn Stream<Item = Result<arrow_flight::FlightData, Status>> + Send>>;

/// A prepared statement: its text, its tenant and its bound parameters.
#[derive(Clone)]
struct Prepared {
    sql: String,
    tenant: String,
    params: Option<ParamValues>,
}

#[derive(Default)]
struct PreparedStore {
    by_handle: HashMap<Bytes, Prepared>,
    order: VecDeque<Bytes>,
}

/// The Flight SQL service of the query role.
pub struct StrataFlightSql {
    wire: Wire,
    prepared: Mutex<PreparedStore>,
}

/// A query error as a gRPC status.
fn status(e: QueryError) -> Status {
    match e {
        QueryError::BadRequest(m) | QueryError::Execution(m) => Status::invalid_argument(m),
        QueryError::NotFound(m) => Status::not_found(m),
        QueryError::Timeout(_) => Status::deadline_exceeded(e.to_string()),
        QueryError::Cancelled => Status::cancelled(e.to_string()),
        QueryError::TooLarge(_) | QueryError::ResourcesExhausted(_) | QueryError::TooMany(_) => {
            Status::resource_exhausted(e.to_string())
        }
        QueryError::Internal(detail) => {
            tracing::error!(error = %detail, "Flight SQL query failed");
            Status::internal("internal error")
        }
    }
}

impl StrataFlightSql {
    /// The service over `wire` (whose protocol names it in the metrics).
    pub fn new(wire: Wire) -> Self {
        Self {
            wire,
            prepared: Mutex::new(PreparedStore::default()),
        }
    }

    /// The tenant of a call, from its credentials and `x-scope-orgid`.
    fn tenant<T>(&self, request: &Request<T>) -> Result<String, Status> {
        let meta = request.metadata();
        let text = |k: &str| meta.get(k).and_then(|v| v.to_str().ok());
        self.wire
            .gate
            .check(text("authorization"), text(TENANT_HEADER), Scope::Read)
            .map_err(|d| {
                self.wire.count("call", "denied");
                d.to_status()
            })
    }

    fn session(&self, tenant: &str) -> Result<SessionContext, Status> {
        self.wire.engine.session(tenant).map_err(status)
    }

    /// Plans `sql` for `tenant` with `params` bound; refuses what does not only read.
    async fn plan(
        &self,
        ctx: &SessionContext,
        sql: &str,
        params: Option<&ParamValues>,
    ) -> Result<LogicalPlan, Status> {
        let plan = ctx
            .state()
            .create_logical_plan(sql)
            .await
            .map_err(|e| status(QueryError::from(e)))?;
        crate::engine::read_only().verify_plan(&plan).map_err(|e| {
            Status::invalid_argument(format!(
                "Strata's tables are read-only: {}",
                e.strip_backtrace()
            ))
        })?;
        match params {
            Some(p) => plan
                .replace_params_with_values(p)
                .map_err(|e| status(QueryError::from(e))),
            None => Ok(plan),
        }
    }

    /// A `FlightInfo` of one endpoint that `DoGet`s `ticket`, for an answer of `schema`.
    fn info(
        schema: &Schema,
        ticket: Vec<u8>,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(FlightEndpoint::new().with_ticket(Ticket {
                ticket: ticket.into(),
            }))
            .with_descriptor(descriptor);
        Ok(Response::new(info))
    }

    /// The `FlightInfo` of a catalog command, whose ticket is the command itself.
    fn command_info(
        &self,
        request: Request<FlightDescriptor>,
        schema: &Schema,
        ticket: Vec<u8>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.tenant(&request)?;
        Self::info(schema, ticket, request.into_inner())
    }

    /// Runs `sql` for the caller's tenant and streams the batches.
    async fn run(
        &self,
        tenant: &str,
        sql: &str,
        params: Option<&ParamValues>,
    ) -> Result<Response<DoGetStream>, Status> {
        let ctx = self.session(tenant)?;
        let plan = self.plan(&ctx, sql, params).await.inspect_err(|_| {
            self.wire.count("query", "bad_data");
        })?;
        let admitted = self.wire.admit(tenant, None).map_err(status)?;
        let limited = admitted.execute(&ctx, plan, None).await.map_err(status)?;
        let schema = limited.schema().clone();
        let batches = limited.map_err(|e| FlightError::Tonic(Box::new(status(e))));
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(stream)))
    }

    fn prepared(&self, handle: &Bytes, tenant: &str) -> Result<Prepared, Status> {
        let store = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        match store.by_handle.get(handle) {
            Some(p) if p.tenant == tenant => Ok(p.clone()),
            _ => Err(Status::not_found("no such prepared statement")),
        }
    }
}

/// An Arrow schema as the IPC message Flight SQL carries.
fn schema_bytes(schema: &Schema) -> Result<Bytes, Status> {
    let options = arrow::ipc::writer::IpcWriteOptions::default();
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &options)
        .try_into()
        .map_err(|e: arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

/// The parameters of `plan` as a schema (`$1`, `$2`, ...); untyped ones as text.
fn parameter_schema(plan: &LogicalPlan) -> Result<SchemaRef, Status> {
    let types = crate::engine::parameter_types(plan).map_err(status)?;
    Ok(Arc::new(Schema::new(
        types
            .into_iter()
            .enumerate()
            .map(|(i, t)| Field::new(format!("${}", i + 1), t.unwrap_or(DataType::Utf8), true))
            .collect::<Vec<_>>(),
    )))
}

#[tonic::async_trait]
impl FlightSqlService for StrataFlightSql {
    type FlightService = StrataFlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<
        Response<Pin<Box<dyn Stream<Item = Result<HandshakeResponse, Status>> + Send>>>,
        Status,
    > {
        self.tenant(&request)?;
        let authorization = request.metadata().get("authorization").cloned();
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: Bytes::new(),
        };
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
        if let Some(a) = authorization {
            // The client sends this header on its next calls.
            response.metadata_mut().insert("authorization", a);
        }
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let tenant = self.tenant(&request)?;
        let ctx = self.session(&tenant)?;
        let plan = self.plan(&ctx, &query.query, None).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.into_bytes().into(),
        }
        .as_any()
        .encode_to_vec();
        Self::info(plan.schema().as_arrow(), ticket, request.into_inner())
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let tenant = self.tenant(&request)?;
        let sql = std::str::from_utf8(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("the ticket is not a statement"))?;
        self.run(&tenant, sql, None).await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let tenant = self.tenant(&request)?;
        let ctx = self.session(&tenant)?;
        let plan = self.plan(&ctx, &query.query, None).await?;
        let handle = Bytes::from(ulid::Ulid::new().to_bytes().to_vec());
        let result = ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.clone(),
            dataset_schema: schema_bytes(plan.schema().as_arrow())?,
            parameter_schema: schema_bytes(parameter_schema(&plan)?.as_ref())?,
        };
        let mut store = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        while store.order.len() >= MAX_PREPARED {
            if let Some(old) = store.order.pop_front() {
                store.by_handle.remove(&old);
            }
        }
        store.order.push_back(handle.clone());
        store.by_handle.insert(
            handle,
            Prepared {
                sql: query.query,
                tenant,
                params: None,
            },
        );
        Ok(result)
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let tenant = self.tenant(&request)?;
        let handle = query.prepared_statement_handle;
        self.prepared(&handle, &tenant)?;
        let batches: Vec<_> = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        )
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?;
        let params = match batches.iter().find(|b| b.num_rows() > 0) {
            None => None,
            Some(b) => Some(ParamValues::List(
                b.columns()
                    .iter()
                    .map(|c| ScalarValue::try_from_array(c, 0).map(Into::into))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Status::invalid_argument(format!("parameters: {e}")))?,
            )),
        };
        let mut store = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = store.by_handle.get_mut(&handle) {
            p.params = params;
        }
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let tenant = self.tenant(&request)?;
        let prepared = self.prepared(&cmd.prepared_statement_handle, &tenant)?;
        let ctx = self.session(&tenant)?;
        let plan = self
            .plan(&ctx, &prepared.sql, prepared.params.as_ref())
            .await?;
        let ticket = cmd.as_any().encode_to_vec();
        Self::info(plan.schema().as_arrow(), ticket, request.into_inner())
    }

    async fn do_get_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let tenant = self.tenant(&request)?;
        let prepared = self.prepared(&cmd.prepared_statement_handle, &tenant)?;
        self.run(&tenant, &prepared.sql, prepared.params.as_ref())
            .await
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        let tenant = self.tenant(&request)?;
        let handle = query.prepared_statement_handle;
        let mut store = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if store
            .by_handle
            .get(&handle)
            .is_some_and(|p| p.tenant == tenant)
        {
            store.by_handle.remove(&handle);
            store.order.retain(|h| h != &handle);
        }
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: arrow_flight::sql::CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.command_info(request, &schema, query.as_any().encode_to_vec())
    }

    async fn do_get_catalogs(
        &self,
        query: arrow_flight::sql::CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.tenant(&request)?;
        catalog::catalogs(query)
    }

    async fn get_flight_info_schemas(
        &self,
        query: arrow_flight::sql::CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.command_info(request, &schema, query.as_any().encode_to_vec())
    }

    async fn do_get_schemas(
        &self,
        query: arrow_flight::sql::CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.tenant(&request)?;
        catalog::schemas(query)
    }

    async fn get_flight_info_tables(
        &self,
        query: arrow_flight::sql::CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.command_info(request, &schema, query.as_any().encode_to_vec())
    }

    async fn do_get_tables(
        &self,
        query: arrow_flight::sql::CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.tenant(&request)?;
        catalog::tables(query)
    }

    async fn get_flight_info_table_types(
        &self,
        query: arrow_flight::sql::CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.command_info(request, &schema, query.as_any().encode_to_vec())
    }

    async fn do_get_table_types(
        &self,
        query: arrow_flight::sql::CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.tenant(&request)?;
        catalog::table_types(query)
    }

    async fn get_flight_info_sql_info(
        &self,
        query: arrow_flight::sql::CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(catalog::sql_info()?).schema();
        self.command_info(request, &schema, query.as_any().encode_to_vec())
    }

    async fn do_get_sql_info(
        &self,
        query: arrow_flight::sql::CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.tenant(&request)?;
        catalog::sql_info_batch(query)
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
