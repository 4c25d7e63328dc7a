//! `GET /api/traces/{trace_id}`: the whole trace as OTLP JSON (`{"resourceSpans":[...]}`),
//! assembled from every file that holds part of it, whichever collector wrote it.
//!
//! The lookup is a filter on `trace_id`; the Parquet files are sorted by trace id and carry
//! a bloom filter on it, so DataFusion skips row groups by statistics and bloom filter. The
//! optional `start` / `end` parameters (Unix seconds, as in Tempo) narrow it by time.

use std::collections::HashSet;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use datafusion::prelude::{col, lit};
use datafusion::scalar::ScalarValue;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, TracesData};
use serde::Deserialize;
use strata_schema::{Signal, columns, hex_id};

use super::AppState;
use crate::error::QueryError;

#[derive(Debug, Deserialize)]
pub struct TimeHint {
    start: Option<i64>,
    end: Option<i64>,
}

pub async fn handle(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
    Query(hint): Query<TimeHint>,
    headers: HeaderMap,
) -> Result<Json<TracesData>, QueryError> {
    if !hex_id::is_trace_id(&trace_id) {
        return Err(QueryError::BadRequest(format!(
            "{trace_id:?} is not a trace id (32 hex characters)"
        )));
    }
    let trace_id = trace_id.to_ascii_lowercase();
    let tenant = state.tenant(&headers)?;
    let ctx = state.engine.session(tenant)?;
    let mut df = ctx
        .table(Signal::Traces.table_name())
        .await?
        .filter(col(columns::TRACE_ID).eq(lit(trace_id.as_str())))?;
    let ts = |secs: i64| {
        lit(ScalarValue::TimestampNanosecond(
            Some(secs.saturating_mul(1_000_000_000)),
            Some("UTC".into()),
        ))
    };
    if let Some(start) = hint.start {
        df = df.filter(col(columns::START_TIME).gt_eq(ts(start)))?;
    }
    if let Some(end) = hint.end {
        df = df.filter(col(columns::START_TIME).lt_eq(ts(end)))?;
    }
    let batches = tokio::time::timeout(state.engine.config().timeout(), df.collect())
        .await
        .map_err(|_| QueryError::Timeout(state.engine.config().timeout()))??;
    let mut resource_spans = strata_schema::traces::from_batches(&batches)
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    dedup_spans(&mut resource_spans);
    if resource_spans.is_empty() {
        return Err(QueryError::NotFound(format!("trace {trace_id} not found")));
    }
    Ok(Json(TracesData { resource_spans }))
}

/// Keeps one copy of each span id: a batch retried after a lost acknowledgement may have been
/// stored twice, and a trace view must not show a span twice.
fn dedup_spans(resource_spans: &mut Vec<ResourceSpans>) {
    let mut seen = HashSet::new();
    for rs in resource_spans.iter_mut() {
        for ss in &mut rs.scope_spans {
            ss.spans.retain(|s| seen.insert(s.span_id.clone()));
        }
        rs.scope_spans.retain(|ss| !ss.spans.is_empty());
    }
    resource_spans.retain(|rs| !rs.scope_spans.is_empty());
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::trace::v1::{ScopeSpans, Span};

    use super::*;

    #[test]
    fn duplicate_spans_are_shown_once() {
        let span = |id: u8| Span {
            span_id: vec![id; 8],
            ..Default::default()
        };
        let rs = |spans| ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut v = vec![rs(vec![span(1), span(2), span(1)]), rs(vec![span(2)])];
        dedup_spans(&mut v);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].scope_spans[0].spans.len(), 2);
    }
}
