//! Trace search: which traces have spans matching a compiled TraceQL query in a time range,
//! newest first, each summarized from all of its spans.
//!
//! Two queries: the first groups matching spans in the range by trace and keeps the traces
//! whose spansets combine to true (newest `limit`, or up to [`CANDIDATES`] when trace-level
//! conditions still have to be checked); the second reads the summary columns of every span
//! of those traces, in any time range, so roots and durations are the true ones.

use std::time::Duration;

use datafusion::prelude::SessionContext;
use strata_schema::columns;

use super::filter::{Compiled, quote};
use super::summary::{SUMMARY_COLUMNS, TraceSummary, assemble};
use super::{TimeRange, run, strings, text};
use crate::error::QueryError;

/// Most candidate traces read when trace-level conditions (root, trace duration) are checked
/// after assembly.
pub const CANDIDATES: usize = 2_000;

#[derive(Debug)]
pub struct SearchRequest {
    pub compiled: Compiled,
    /// Span predicates every spanset must also satisfy (Tempo's `tags`, Jaeger's fields).
    pub extra: Vec<String>,
    pub range: TimeRange,
    pub limit: usize,
    /// Bounds on the whole trace's duration, in nanoseconds.
    pub min_trace_nanos: Option<i64>,
    pub max_trace_nanos: Option<i64>,
}

#[derive(Debug)]
pub struct SearchResult {
    /// Newest first.
    pub traces: Vec<TraceSummary>,
    /// Traces that had matching spans in the range.
    pub inspected_traces: usize,
}

pub async fn search(
    ctx: &SessionContext,
    req: &SearchRequest,
    timeout: Duration,
) -> Result<SearchResult, QueryError> {
    let predicates: Vec<String> = req
        .compiled
        .spansets
        .iter()
        .map(|p| {
            std::iter::once(p.as_str())
                .chain(req.extra.iter().map(String::as_str))
                .map(|p| format!("({p})"))
                .collect::<Vec<_>>()
                .join(" AND ")
        })
        .collect();
    let post_filter = !req.compiled.trace_checks.is_empty()
        || req.min_trace_nanos.is_some()
        || req.max_trace_nanos.is_some();
    let candidates = if post_filter {
        CANDIDATES.max(req.limit)
    } else {
        req.limit
    };
    let flags: Vec<String> = predicates
        .iter()
        .enumerate()
        .map(|(i, p)| format!("bool_or({p}) AS m{i}"))
        .collect();
    let any: Vec<String> = predicates.iter().map(|p| format!("({p})")).collect();
    let first = format!(
        "SELECT trace_id, last FROM (\
           SELECT {tid}, max({start}) AS last, {flags} FROM spans \
           WHERE {range} AND ({any}) GROUP BY {tid}) \
         WHERE {combine} ORDER BY last DESC LIMIT {candidates}",
        tid = columns::TRACE_ID,
        start = columns::START_TIME,
        flags = flags.join(", "),
        range = req.range.sql(),
        any = any.join(" OR "),
        combine = req
            .compiled
            .combine
            .sql(&|i| format!("coalesce(m{i}, FALSE)")),
    );
    let batches = run(ctx, &first, timeout).await?;
    let mut ids = Vec::new();
    for batch in &batches {
        let t = strings(batch, columns::TRACE_ID)?;
        ids.extend((0..batch.num_rows()).map(|i| text(&t, i).to_string()));
    }
    let inspected_traces = ids.len();
    let mut traces = summaries(ctx, &ids, &predicates, timeout).await?;
    traces.retain(|t| {
        req.compiled.trace_checks.iter().all(|c| c.holds(t))
            && req.min_trace_nanos.is_none_or(|m| t.duration_nanos >= m)
            && req.max_trace_nanos.is_none_or(|m| t.duration_nanos <= m)
    });
    traces.sort_by(|a, b| {
        b.start_ns
            .cmp(&a.start_ns)
            .then(a.trace_id.cmp(&b.trace_id))
    });
    traces.truncate(req.limit);
    Ok(SearchResult {
        traces,
        inspected_traces,
    })
}

/// Summaries of the traces `ids` from all of their spans, flagging the spans that match each
/// of `predicates` (columns `m0`, `m1`, ...).
pub async fn summaries(
    ctx: &SessionContext,
    ids: &[String],
    predicates: &[String],
    timeout: Duration,
) -> Result<Vec<TraceSummary>, QueryError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let flags: String = predicates
        .iter()
        .enumerate()
        .map(|(i, p)| format!(", ({p}) AS m{i}"))
        .collect();
    let list: Vec<String> = ids.iter().map(|id| quote(id)).collect();
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}{flags} FROM spans WHERE {} IN ({})",
        columns::TRACE_ID,
        list.join(", ")
    );
    let batches = run(ctx, &sql, timeout).await?;
    let mut by_id = assemble(&batches, predicates.len())?;
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}
