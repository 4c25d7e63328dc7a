//! Whole traces by id, assembled from every file that holds part of them, whichever
//! collector wrote it.
//!
//! The files, row groups and pages to read come from the [`TraceIndex`](super::index), which
//! decides from memory; an optional time hint narrows the partitions listed.

use std::collections::HashSet;

use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::filter_record_batch;
use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use strata_schema::{Signal, columns, hex_id};

use super::{TimeRange, strings};
use crate::engine::Engine;
use crate::error::QueryError;

/// A trace id as stored: 32 lowercase hex digits. Shorter hex ids (Jaeger's 64-bit ids) are
/// zero-padded on the left, as Jaeger does.
pub fn normalize_id(id: &str) -> Result<String, QueryError> {
    let id = id.trim().to_ascii_lowercase();
    let padded = if !id.is_empty() && id.len() < 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        format!("{id:0>32}")
    } else {
        id
    };
    if hex_id::is_trace_id(&padded) {
        Ok(padded)
    } else {
        Err(QueryError::BadRequest(format!(
            "{padded:?} is not a trace id (up to 32 hex characters)"
        )))
    }
}

/// The traces `ids` (normalized), each as OTLP resource spans, in the order of `ids`; a trace
/// with no stored spans is left out.
pub async fn traces(
    engine: &Engine,
    tenant: &str,
    ids: &[String],
    hint: Option<TimeRange>,
) -> Result<Vec<(String, Vec<ResourceSpans>)>, QueryError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let dir = engine.signal_path(tenant, Signal::Traces)?;
    let timeout = engine.config().timeout();
    let batches = tokio::time::timeout(timeout, engine.trace_index().spans(&dir, ids, hint))
        .await
        .map_err(|_| QueryError::Timeout(timeout))??;
    let mut out = Vec::new();
    for id in ids {
        let mut mine = Vec::new();
        for batch in &batches {
            let t = strings(batch, columns::TRACE_ID)?;
            let mask: BooleanArray = t.iter().map(|v| Some(v == Some(id.as_str()))).collect();
            let part = filter_record_batch(batch, &mask)
                .map_err(|e| QueryError::Internal(e.to_string()))?;
            if part.num_rows() > 0 {
                mine.push(part);
            }
        }
        let mut resource_spans = from_batches(&mine)?;
        dedup_spans(&mut resource_spans);
        if !resource_spans.is_empty() {
            out.push((id.clone(), resource_spans));
        }
    }
    Ok(out)
}

/// One trace by id; `NotFound` when no span of it is stored.
pub async fn trace(
    engine: &Engine,
    tenant: &str,
    id: &str,
    hint: Option<TimeRange>,
) -> Result<(String, Vec<ResourceSpans>), QueryError> {
    let id = normalize_id(id)?;
    traces(engine, tenant, std::slice::from_ref(&id), hint)
        .await?
        .pop()
        .ok_or_else(|| QueryError::NotFound(format!("trace {id} not found")))
}

fn from_batches(batches: &[RecordBatch]) -> Result<Vec<ResourceSpans>, QueryError> {
    strata_schema::traces::from_batches(batches).map_err(|e| QueryError::Internal(e.to_string()))
}

/// Keeps one copy of each span (id and kind): a batch retried after a lost acknowledgement
/// may have been stored twice, and a trace view must not show a span twice. The kind is part
/// of the key because Zipkin's shared spans are two: the client and the server half of one id.
pub fn dedup_spans(resource_spans: &mut Vec<ResourceSpans>) {
    let mut seen = HashSet::new();
    for rs in resource_spans.iter_mut() {
        for ss in &mut rs.scope_spans {
            ss.spans
                .retain(|s| seen.insert((s.span_id.clone(), s.kind)));
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
        // The server half of a Zipkin shared span is another span.
        let server = Span { kind: 2, ..span(1) };
        let mut v = vec![rs(vec![span(1), server])];
        dedup_spans(&mut v);
        assert_eq!(v[0].scope_spans[0].spans.len(), 2);
    }

    #[test]
    fn short_ids_are_padded_and_bad_ids_refused() {
        assert_eq!(normalize_id("ABC").unwrap(), format!("{:0>32}", "abc"));
        assert!(normalize_id("xyz").is_err());
        assert!(normalize_id("").is_err());
        assert!(normalize_id(&"1".repeat(33)).is_err());
    }
}
