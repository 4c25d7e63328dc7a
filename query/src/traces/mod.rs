//! Trace reading over the `spans` table, shared by the Tempo, Jaeger and Zipkin APIs and the
//! web UI: whole traces by id ([`fetch`] through the [`index`] of span files), TraceQL
//! ([`traceql`], [`filter`]) and search with true roots and durations ([`search`],
//! [`summary`]), tag names and values ([`tags`]), services, operations and the calls between
//! services ([`catalog`]).
//!
//! Invariants: every query is bounded by a time range on `start_time` that is also written on
//! the `date`/`hour` partition columns, so DataFusion lists only the partitions in range;
//! reading a whole trace is never bounded by time unless the caller gives a hint, because a
//! trace's spans may have started hours apart.

pub mod catalog;
pub mod fetch;
pub mod filter;
pub mod index;
pub mod search;
pub mod summary;
pub mod tags;
pub mod traceql;

use arrow::array::{Array, ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use chrono::{DateTime, Utc};
use datafusion::prelude::SessionContext;
use strata_schema::columns;

use crate::error::QueryError;

/// A time range in Unix nanoseconds, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub start_ns: i64,
    pub end_ns: i64,
}

impl TimeRange {
    /// The range from Unix seconds, `end` defaulting to now and `start` to `end - lookback`.
    pub fn from_secs(start: Option<i64>, end: Option<i64>, lookback_ns: i64) -> Self {
        let end_ns = end
            .map(|s| s.saturating_mul(1_000_000_000))
            .unwrap_or_else(now_ns);
        let start_ns = start
            .map(|s| s.saturating_mul(1_000_000_000))
            .unwrap_or(end_ns.saturating_sub(lookback_ns));
        Self { start_ns, end_ns }
    }

    /// SQL predicate on `start_time` and the partition columns.
    pub fn sql(&self) -> String {
        self.sql_on(columns::START_TIME)
    }

    /// SQL predicate on the time column `column` and the partition columns.
    pub fn sql_on(&self, column: &str) -> String {
        let hour = |ns: i64| {
            DateTime::<Utc>::from_timestamp_nanos(ns)
                .format("%Y-%m-%dT%H")
                .to_string()
        };
        format!(
            "concat(date, 'T', hour) BETWEEN '{}' AND '{}' AND {} BETWEEN {} AND {}",
            hour(self.start_ns),
            hour(self.end_ns),
            column,
            timestamp(self.start_ns),
            timestamp(self.end_ns),
        )
    }
}

pub fn now_ns() -> i64 {
    Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// A SQL timestamp literal of Unix nanoseconds.
pub fn timestamp(ns: i64) -> String {
    format!(
        "'{}'",
        DateTime::<Utc>::from_timestamp_nanos(ns)
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    )
}

/// Runs `sql` for `ctx`'s tenant under the query time limit.
pub async fn run(
    ctx: &SessionContext,
    sql: &str,
    timeout: std::time::Duration,
) -> Result<Vec<RecordBatch>, QueryError> {
    let work = async { ctx.sql(sql).await?.collect().await };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| QueryError::Timeout(timeout))?
        .map_err(QueryError::from)
}

/// Column `name` of `batch` as plain strings (Parquet strings come back as views).
pub fn strings(batch: &RecordBatch, name: &str) -> Result<StringArray, QueryError> {
    typed(batch, name, &DataType::Utf8)
}

/// Column `name` of `batch` as `i64` (timestamps as Unix nanoseconds).
pub fn ints(batch: &RecordBatch, name: &str) -> Result<Int64Array, QueryError> {
    typed(batch, name, &DataType::Int64)
}

/// Column `name` of `batch` as booleans.
pub fn bools(batch: &RecordBatch, name: &str) -> Result<BooleanArray, QueryError> {
    typed(batch, name, &DataType::Boolean)
}

/// Column `name` of `batch` as `to`, as the array type `T` of `to`.
pub fn typed<T: Array + Clone + 'static>(
    batch: &RecordBatch,
    name: &str,
    to: &DataType,
) -> Result<T, QueryError> {
    column(batch, name, to)?
        .as_any()
        .downcast_ref::<T>()
        .cloned()
        .ok_or_else(|| QueryError::Internal(format!("column {name} is not {to}")))
}

fn column(batch: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef, QueryError> {
    let a = batch
        .column_by_name(name)
        .ok_or_else(|| QueryError::Internal(format!("no column {name}")))?;
    let a = match a.data_type() {
        DataType::Timestamp(..) if *to == DataType::Int64 => cast(
            a,
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Nanosecond, None),
        )
        .and_then(|t| cast(&t, to)),
        _ => cast(a, to),
    };
    a.map_err(|e| QueryError::Internal(format!("column {name}: {e}")))
}

/// The text of row `i` of `a`, `""` when null.
pub fn text(a: &StringArray, i: usize) -> &str {
    if a.is_null(i) { "" } else { a.value(i) }
}
