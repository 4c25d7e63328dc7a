//! Flight SQL's catalog commands over Strata's fixed tables: one catalog (`strata`), one
//! schema (`public`), the signal tables (of type `BASE TABLE`; a filter on `TABLE` finds them
//! too) with their Arrow schemas, and what the server is.

use std::sync::LazyLock;

use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetSqlInfo, CommandGetTableTypes,
    CommandGetTables, SqlInfo, SqlSupportedTransaction,
};
use futures::TryStreamExt;
use strata_schema::Signal;
use tonic::{Response, Status};

use super::DoGetStream;

pub const CATALOG: &str = "strata";
pub const SCHEMA: &str = "public";
/// The type of every table, as `information_schema.tables` names it (and Grafana's Flight SQL
/// datasource asks for it).
pub const TABLE_TYPE: &str = "BASE TABLE";

static SQL_INFO: LazyLock<Result<SqlInfoData, String>> = LazyLock::new(|| {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "Strata");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(
        SqlInfo::FlightSqlServerTransaction,
        SqlSupportedTransaction::None as i32,
    );
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.append(SqlInfo::SqlDdlCatalog, false);
    b.append(SqlInfo::SqlDdlSchema, false);
    b.append(SqlInfo::SqlDdlTable, false);
    b.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    b.build().map_err(|e| e.to_string())
});

pub fn sql_info() -> Result<&'static SqlInfoData, Status> {
    SQL_INFO
        .as_ref()
        .map_err(|e| Status::internal(format!("the server's SqlInfo: {e}")))
}

/// One batch as a `DoGet` answer.
fn answer(
    batch: Result<RecordBatch, arrow_flight::error::FlightError>,
) -> Result<Response<DoGetStream>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    let stream = FlightDataEncoderBuilder::new()
        .with_schema(batch.schema())
        .build(futures::stream::iter([Ok(batch)]))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(stream)))
}

pub fn sql_info_batch(query: CommandGetSqlInfo) -> Result<Response<DoGetStream>, Status> {
    answer(query.into_builder(sql_info()?).build())
}

pub fn catalogs(query: CommandGetCatalogs) -> Result<Response<DoGetStream>, Status> {
    let mut b = query.into_builder();
    b.append(CATALOG);
    answer(b.build())
}

pub fn schemas(query: CommandGetDbSchemas) -> Result<Response<DoGetStream>, Status> {
    let mut b = query.into_builder();
    b.append(CATALOG, SCHEMA);
    answer(b.build())
}

pub fn tables(mut query: CommandGetTables) -> Result<Response<DoGetStream>, Status> {
    // `TABLE`, JDBC's word for it, asks for the same tables.
    if query
        .table_types
        .iter()
        .any(|t| t.eq_ignore_ascii_case("TABLE"))
    {
        query.table_types.push(TABLE_TYPE.into());
    }
    let mut b = query.into_builder();
    for signal in Signal::ALL {
        b.append(
            CATALOG,
            SCHEMA,
            signal.table_name(),
            TABLE_TYPE,
            &signal.schema(),
        )
        .map_err(|e| Status::internal(e.to_string()))?;
    }
    answer(b.build())
}

pub fn table_types(query: CommandGetTableTypes) -> Result<Response<DoGetStream>, Status> {
    let mut b = query.into_builder();
    b.append(TABLE_TYPE);
    answer(b.build())
}
