//! `GET /api/traces/{trace_id}`: the whole trace as OTLP JSON (`{"resourceSpans":[...]}`),
//! assembled from every file that holds part of it, whichever collector wrote it.
//!
//! The lookup is a filter on `trace_id`; the Parquet files are sorted by trace id and carry
//! a bloom filter on it, so DataFusion skips row groups by statistics and bloom filter. The
//! optional `start` / `end` parameters (Unix seconds, as in Tempo) narrow it by time.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use datafusion::prelude::{col, lit};
use datafusion::scalar::ScalarValue;
use opentelemetry_proto::tonic::trace::v1::TracesData;
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
    let resource_spans = strata_schema::traces::from_batches(&batches)
        .map_err(|e| QueryError::Internal(e.to_string()))?;
    if resource_spans.is_empty() {
        return Err(QueryError::NotFound(format!("trace {trace_id} not found")));
    }
    Ok(Json(TracesData { resource_spans }))
}
