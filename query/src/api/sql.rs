//! `POST /api/v1/sql` with `{"query": "..."}`.
//!
//! The answer's format follows `Accept`: JSON (`{"columns":[..],"rows":[[..]]}`, the default),
//! Arrow IPC stream (`application/vnd.apache.arrow.stream`) or CSV (`text/csv`, with a header).
//! Only reading statements run: DDL, DML, `COPY` and `SET`-like statements are 400.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use crate::error::QueryError;
use crate::json;

pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    query: String,
}

#[derive(Clone, Copy)]
enum Format {
    Json,
    Arrow,
    Csv,
}

fn format(headers: &HeaderMap) -> Format {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains(ARROW_STREAM) {
        Format::Arrow
    } else if accept.contains("text/csv") {
        Format::Csv
    } else {
        Format::Json
    }
}

pub async fn handle(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, QueryError> {
    let request: SqlRequest = serde_json::from_slice(&body)
        .map_err(|e| QueryError::BadRequest(format!("body must be {{\"query\": \"...\"}}: {e}")))?;
    let tenant = state.tenant(&headers)?;
    let (schema, batches) = state.engine.sql(tenant, &request.query).await?;
    let encode_err = |e: arrow::error::ArrowError| QueryError::Internal(e.to_string());
    let (content_type, bytes) = match format(&headers) {
        Format::Json => (
            "application/json",
            json::to_json(&schema, &batches).map_err(encode_err)?,
        ),
        Format::Arrow => {
            let mut out = Vec::new();
            let mut w =
                arrow::ipc::writer::StreamWriter::try_new(&mut out, &schema).map_err(encode_err)?;
            for b in &batches {
                w.write(b).map_err(encode_err)?;
            }
            w.finish().map_err(encode_err)?;
            drop(w);
            (ARROW_STREAM, out)
        }
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut w = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut out);
                if batches.is_empty() {
                    w.write(&arrow::record_batch::RecordBatch::new_empty(schema.clone()))
                        .map_err(encode_err)?;
                }
                for b in &batches {
                    w.write(b).map_err(encode_err)?;
                }
            }
            ("text/csv", out)
        }
    };
    Ok(([(header::CONTENT_TYPE, content_type)], Body::from(bytes)).into_response())
}
