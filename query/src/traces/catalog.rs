//! What the trace query APIs list besides traces: the services, their operations (span
//! names and kinds), and the calls between services. One implementation for the Jaeger and
//! Zipkin APIs and the web UI's service graph.
//!
//! Services and operations are listed from [`CATALOG_LOOKBACK_NS`] of recent time unless the
//! caller gives a range; dependencies look up parents up to an hour before the range, since
//! a parent starts before its children.

use arrow::array::Array;
use datafusion::prelude::SessionContext;
use strata_schema::columns;

use super::filter::quote;
use super::{TimeRange, ints, now_ns, run, strings, text};
use crate::error::QueryError;

/// Services and operations are listed from this much recent time.
pub const CATALOG_LOOKBACK_NS: i64 = 7 * 24 * 3_600 * 1_000_000_000;
/// How long before a child's range its parent may have started.
const PARENT_LEAD_NS: i64 = 3_600 * 1_000_000_000;

/// The range of the listings: the last [`CATALOG_LOOKBACK_NS`].
pub fn recent() -> TimeRange {
    let end_ns = now_ns();
    TimeRange {
        start_ns: end_ns.saturating_sub(CATALOG_LOOKBACK_NS),
        end_ns,
    }
}

/// Service names with spans in `range`, sorted.
pub async fn services(
    ctx: &SessionContext,
    range: TimeRange,
    timeout: std::time::Duration,
) -> Result<Vec<String>, QueryError> {
    let sql = format!(
        "SELECT DISTINCT {s} AS s FROM spans WHERE {} AND {s} IS NOT NULL ORDER BY s",
        range.sql(),
        s = columns::SERVICE_NAME
    );
    let mut out = Vec::new();
    for batch in run(ctx, &sql, timeout).await? {
        let c = strings(&batch, "s")?;
        out.extend((0..batch.num_rows()).map(|i| text(&c, i).to_string()));
    }
    Ok(out)
}

/// (span name, kind) of `service`'s spans in `range`, of one kind if given, sorted.
pub async fn operations(
    ctx: &SessionContext,
    range: TimeRange,
    service: &str,
    kind: Option<i32>,
    timeout: std::time::Duration,
) -> Result<Vec<(String, i32)>, QueryError> {
    let kind_filter = kind
        .map(|k| format!(" AND {} = {k}", columns::KIND))
        .unwrap_or_default();
    let sql = format!(
        "SELECT DISTINCT {n} AS n, {k} AS k FROM spans WHERE {} AND {} = {}{kind_filter} ORDER BY n, k",
        range.sql(),
        columns::SERVICE_NAME,
        quote(service),
        n = columns::NAME,
        k = columns::KIND,
    );
    let mut out = Vec::new();
    for batch in run(ctx, &sql, timeout).await? {
        let n = strings(&batch, "n")?;
        let k = ints(&batch, "k")?;
        out.extend((0..batch.num_rows()).map(|i| (text(&n, i).to_string(), k.value(i) as i32)));
    }
    Ok(out)
}

/// Calls from one service to another.
#[derive(Debug, Clone, PartialEq)]
pub struct Dependency {
    pub parent: String,
    pub child: String,
    pub calls: i64,
    /// Calls whose child span has an error status.
    pub errors: i64,
}

/// Calls between services in `range`: spans whose parent span belongs to another service,
/// each span once.
pub async fn dependencies(
    ctx: &SessionContext,
    range: TimeRange,
    timeout: std::time::Duration,
) -> Result<Vec<Dependency>, QueryError> {
    let parent_range = TimeRange {
        start_ns: range.start_ns.saturating_sub(PARENT_LEAD_NS),
        end_ns: range.end_ns,
    };
    // A stored duplicate counts once on either side; on the parent side a Zipkin shared span
    // (client and server halves of one id) is its server half, the one its children call from.
    let sql = format!(
        "SELECT p.service_name AS parent, c.service_name AS child, count(*) AS calls, \
                sum(CASE WHEN c.status_code = 2 THEN 1 ELSE 0 END) AS errors \
         FROM (SELECT DISTINCT trace_id, span_id, {kind} AS kind, parent_span_id, service_name, \
                      {status} AS status_code FROM spans \
               WHERE {} AND parent_span_id IS NOT NULL) c \
         JOIN (SELECT trace_id, span_id, service_name FROM \
                 (SELECT trace_id, span_id, service_name, row_number() OVER \
                    (PARTITION BY trace_id, span_id ORDER BY CASE WHEN {kind} = 2 THEN 0 ELSE 1 END) AS rn \
                  FROM spans WHERE {}) WHERE rn = 1) p \
           ON c.trace_id = p.trace_id AND c.parent_span_id = p.span_id \
         WHERE p.service_name <> c.service_name \
         GROUP BY p.service_name, c.service_name ORDER BY parent, child",
        range.sql(),
        parent_range.sql(),
        status = columns::STATUS_CODE,
        kind = columns::KIND,
    );
    let mut out = Vec::new();
    for batch in run(ctx, &sql, timeout).await? {
        let parent = strings(&batch, "parent")?;
        let child = strings(&batch, "child")?;
        let calls = ints(&batch, "calls")?;
        let errors = ints(&batch, "errors")?;
        for i in 0..batch.num_rows() {
            out.push(Dependency {
                parent: text(&parent, i).to_string(),
                child: text(&child, i).to_string(),
                calls: calls.value(i),
                errors: if errors.is_null(i) {
                    0
                } else {
                    errors.value(i)
                },
            });
        }
    }
    Ok(out)
}
