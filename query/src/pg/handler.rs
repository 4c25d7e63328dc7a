//! PostgreSQL's simple and extended query protocols over the tenant's tables.
//!
//! Each statement is parsed by the pg_catalog crate's PostgreSQL-compatibility parser (which
//! rewrites what psql, pgjdbc and SQLAlchemy send about the catalog into what DataFusion
//! plans), then:
//! - `SHOW` and `SET TimeZone` are answered by [`super::settings`]; other `SET`s and
//!   transaction statements by datafusion-postgres's hooks and [`super::savepoints`]
//!   (settings kept per connection; a transaction or savepoint is accepted and has no effect,
//!   the tables being read-only);
//! - every other statement is planned on a session of the connection's tenant
//!   ([`super::session`]: the connection's catalog, a runtime of the statement's own),
//!   refused unless it only reads (SQLSTATE 25006), and run as a
//!   [`Limited`](crate::stream::Limited) stream: the HTTP route's slots, time, memory and
//!   row bounds, refusals in PostgreSQL's terms, and a cancel request stops it.
//!
//! Rows go out as they are made, in text or binary per the client's choice per column.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::{Parser as SqlParser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use futures::future::{BoxFuture, Either};
use futures::{Sink, StreamExt, stream};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::types::format::FormatOptions;

use super::Shared;
use super::cancel::Registered;
use super::encode::{self, datafusion_error, error, query_error};
use super::names;
use super::startup::login;

/// A parsed and planned statement of the extended protocol.
#[derive(Clone, Debug)]
pub struct Prepared {
    statement: Statement,
    plan: LogicalPlan,
    /// The parameter types the client gave at `Parse` (`None`: left to the server).
    client_types: Vec<Option<Type>>,
}

pub struct Queries {
    shared: Arc<Shared>,
    parser: Arc<Parser>,
}

pub struct Parser {
    shared: Arc<Shared>,
    sql: PostgresCompatibilityParser,
    hooks: Vec<Arc<dyn QueryHook>>,
}

impl Queries {
    pub(super) fn new(shared: Arc<Shared>) -> Self {
        let hooks: Vec<Arc<dyn QueryHook>> = vec![
            Arc::new(super::settings::SettingsHook),
            Arc::new(SetShowHook),
            Arc::new(super::savepoints::SavepointHook),
            Arc::new(TransactionStatementHook),
        ];
        Self {
            parser: Arc::new(Parser {
                shared: shared.clone(),
                sql: PostgresCompatibilityParser::new(),
                hooks,
            }),
            shared,
        }
    }

    /// Runs `plan` for the connection's tenant and streams its rows in `format`.
    async fn run<C>(
        &self,
        client: &C,
        ctx: &SessionContext,
        statement: &Statement,
        plan: LogicalPlan,
        format: &Format,
    ) -> PgWireResult<QueryResponse>
    where
        C: ClientInfo + ?Sized,
    {
        let tenant = login(client)?.tenant.clone();
        let wire = &self.shared.wire;
        let admitted = wire
            .admit(&tenant, statement_timeout(client))
            .map_err(query_error)?;
        let cancel: Option<BoxFuture<'static, ()>> = client
            .session_extensions()
            .get::<Registered>()
            .map(|r| Box::pin(r.current.start().cancelled_owned()) as BoxFuture<'static, ()>);
        let limited = admitted
            .execute(ctx, plan, cancel)
            .await
            .map_err(query_error)?;
        let wire_schema = names::rename(statement, &encode::wire_schema(limited.schema()));
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let fields = Arc::new(encode::fields(&wire_schema, format, options)?);
        let row_fields = fields.clone();
        let counted = wire.clone();
        let rows = limited
            .map(move |batch| {
                // The stream counted its own errors; a batch it made that cannot be sent is
                // counted here.
                let sendable =
                    batch.and_then(|b| encode::wire_batch(&b).map_err(|e| counted.failed(e)));
                match sendable {
                    Ok(b) => Either::Left(stream::iter(arrow_pg::datatypes::encode_recordbatch(
                        row_fields.clone(),
                        b,
                    ))),
                    Err(e) => Either::Right(stream::once(async move { Err(query_error(e)) })),
                }
            })
            .flatten();
        Ok(QueryResponse::new(fields, rows))
    }
}

/// The client's `statement_timeout`, as datafusion-postgres's `SET` hook keeps it.
fn statement_timeout<C: ClientInfo + ?Sized>(client: &C) -> Option<std::time::Duration> {
    client
        .metadata()
        .get("statement_timeout_ms")
        .and_then(|ms| ms.parse().ok())
        .map(std::time::Duration::from_millis)
}

/// Plans `statement`, refusing anything that does not only read.
async fn plan(ctx: &SessionContext, statement: &Statement) -> PgWireResult<LogicalPlan> {
    let plan = ctx
        .state()
        .statement_to_plan(DfStatement::Statement(Box::new(statement.clone())))
        .await
        .map_err(datafusion_error)?;
    crate::engine::read_only().verify_plan(&plan).map_err(|e| {
        error(
            "25006",
            format!(
                "cannot run this statement: Strata's tables are read-only ({})",
                e.strip_backtrace()
            ),
        )
    })?;
    Ok(plan)
}

/// Grafana's PostgreSQL datasource finds its tables by the schemas of `search_path` with a
/// subquery that DataFusion does not plan (an array as a `FROM` item, `user` without
/// parentheses); datafusion-pg-catalog's blacklist replaces it by `''`, so the editor lists no
/// table. Strata replaces it by the same question in DataFusion's terms.
const GRAFANA_SEARCH_PATH: (&str, &str) = (
    r#"SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s"#,
    r#"SELECT CASE WHEN trim(x) = '"$user"' THEN current_user ELSE trim(x) END
       FROM unnest(string_to_array(current_setting('search_path'), ',')) AS search_path(x)"#,
);

fn tokens(sql: &str) -> Result<Vec<Token>, ParserError> {
    Ok(Tokenizer::new(&PostgreSqlDialect {}, sql)
        .tokenize()
        .map_err(|e| ParserError::TokenizerError(e.to_string()))?
        .into_iter()
        .filter(|t| !matches!(t, Token::Whitespace(_)))
        .collect())
}

/// `sql`'s tokens with Grafana's search_path subquery replaced, if it has it.
fn replace_grafana_search_path(sql: &str) -> Result<Option<Vec<Token>>, ParserError> {
    if !sql.contains("current_setting('search_path')") {
        return Ok(None);
    }
    let (from, to) = (
        tokens(GRAFANA_SEARCH_PATH.0)?,
        tokens(GRAFANA_SEARCH_PATH.1)?,
    );
    let mut input = tokens(sql)?;
    let Some(at) = input.windows(from.len()).position(|w| w == from.as_slice()) else {
        return Ok(None);
    };
    input.splice(at..at + from.len(), to);
    Ok(Some(input))
}

impl Parser {
    fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        let syntax = |e: ParserError| error("42601", format!("syntax error: {e}"));
        if let Some(tokens) = replace_grafana_search_path(sql).map_err(syntax)? {
            let statements = SqlParser::new(&PostgreSqlDialect {})
                .with_tokens(tokens)
                .parse_statements()
                .map_err(syntax)?;
            return Ok(statements
                .into_iter()
                .map(|s| self.sql.rewrite(s))
                .collect());
        }
        self.sql.parse(sql).map_err(syntax)
    }
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = self.parser.parse(query)?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let ctx = super::session(&self.shared, client)?;
        let mut responses = Vec::with_capacity(statements.len());
        'statements: for statement in statements {
            for hook in &self.parser.hooks {
                if let Some(r) = hook.handle_simple_query(&statement, &ctx, client).await {
                    responses.push(r?);
                    continue 'statements;
                }
            }
            let plan = plan(&ctx, &statement).await.inspect_err(|_| {
                self.shared.wire.count("query", "bad_data");
            })?;
            let response = self
                .run(client, &ctx, &statement, plan, &Format::UnifiedText)
                .await?;
            responses.push(Response::Query(response));
        }
        Ok(responses)
    }
}

/// The parameters' types in order (`$1`, `$2`, ...), as DataFusion infers them.
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<arrow::datatypes::DataType>>> {
    crate::engine::parameter_types(plan).map_err(query_error)
}

#[async_trait]
impl QueryParser for Parser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.parse(sql)?;
        if statements.is_empty() {
            return Ok(None);
        }
        if statements.len() > 1 {
            return Err(error(
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let statement = statements.remove(0);
        let ctx = super::session(&self.shared, client)?;
        let mut planned = None;
        for hook in &self.hooks {
            if let Some(plan) = hook
                .handle_extended_parse_query(&statement, &ctx, client)
                .await
            {
                planned = Some(plan?);
                break;
            }
        }
        let plan = match planned {
            Some(p) => p,
            None => plan(&ctx, &statement).await.inspect_err(|_| {
                self.shared.wire.count("query", "bad_data");
            })?,
        };
        Ok(Some(Prepared {
            statement,
            plan,
            client_types: types.to_vec(),
        }))
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        let inferred = parameter_types(&stmt.plan)?;
        inferred
            .iter()
            .enumerate()
            .map(
                |(i, t)| match (stmt.client_types.get(i).cloned().flatten(), t) {
                    (Some(given), _) if given != Type::UNKNOWN => Ok(given),
                    (_, Some(t)) => arrow_pg::datatypes::into_pg_type(t),
                    (_, None) => Ok(Type::UNKNOWN),
                },
            )
            .collect()
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        if matches!(stmt.plan, LogicalPlan::Statement(_)) {
            return Ok(vec![]);
        }
        let wire = names::rename(
            &stmt.statement,
            &encode::wire_schema(stmt.plan.schema().as_arrow()),
        );
        encode::fields(
            &wire,
            column_format.unwrap_or(&Format::UnifiedText),
            Arc::new(FormatOptions::default()),
        )
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Prepared;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: std::fmt::Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let prepared = &portal.statement.statement;
        let inferred = parameter_types(&prepared.plan)?;
        let refs: Vec<Option<&arrow::datatypes::DataType>> =
            inferred.iter().map(Option::as_ref).collect();
        let params: ParamValues = arrow_pg::datatypes::df::deserialize_parameters(portal, &refs)?;
        let ctx = super::session(&self.shared, client)?;
        for hook in &self.parser.hooks {
            if let Some(r) = hook
                .handle_extended_query(&prepared.statement, &prepared.plan, &params, &ctx, client)
                .await
            {
                return r;
            }
        }
        let plan = prepared
            .plan
            .clone()
            .replace_params_with_values(&params)
            .map_err(datafusion_error)?;
        let response = self
            .run(
                client,
                &ctx,
                &prepared.statement,
                plan,
                &portal.result_column_format,
            )
            .await?;
        Ok(Response::Query(response))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grafanas_search_path_subquery_is_replaced_and_other_sql_kept() {
        let sql = format!(
            "select quote_ident(table_name) as \"table\" from information_schema.tables where quote_ident(table_schema) IN ({})",
            GRAFANA_SEARCH_PATH.0
        );
        let tokens = replace_grafana_search_path(&sql).unwrap().unwrap();
        let text: String = tokens
            .iter()
            .map(|t| t.to_string())
            .collect::<Vec<_>>()
            .join(" ");
        assert!(text.contains("unnest"), "{text}");
        assert!(!text.contains("generate_series"), "{text}");
        assert!(replace_grafana_search_path("SELECT 1").unwrap().is_none());
    }
}
