//! Query errors and their one mapping to HTTP: a status code plus a JSON body
//! `{"status":"error","errorType":...,"error":...}` (the Prometheus API's shape, which Grafana
//! understands). Internal details are logged, not sent.

use std::time::Duration;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use datafusion::error::DataFusionError;
use tracing::error;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// A well-formed query that cannot be evaluated (PromQL's `execution` errors, e.g. a
    /// many-to-many match).
    #[error("{0}")]
    Execution(String),
    #[error("query exceeded its time limit of {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    TooLarge(String),
    #[error("query exceeded its memory limit: {0}")]
    ResourcesExhausted(String),
    /// The client asked the query to stop (a wire protocol's cancel request).
    #[error("canceling statement due to user request")]
    Cancelled,
    /// The tenant runs as many queries as it may (429, `Retry-After`).
    #[error("{0}")]
    TooMany(String),
    #[error("{0}")]
    Internal(String),
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        match e.find_root() {
            DataFusionError::ResourcesExhausted(m) => QueryError::ResourcesExhausted(m.clone()),
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_)
            | DataFusionError::Configuration(_) => QueryError::BadRequest(e.to_string()),
            DataFusionError::Execution(m) => QueryError::BadRequest(m.clone()),
            DataFusionError::ArrowError(a, _) => match a.as_ref() {
                arrow::error::ArrowError::DivideByZero
                | arrow::error::ArrowError::CastError(_)
                | arrow::error::ArrowError::ComputeError(_)
                | arrow::error::ArrowError::ArithmeticOverflow(_)
                | arrow::error::ArrowError::InvalidArgumentError(_) => {
                    QueryError::BadRequest(e.to_string())
                }
                _ => QueryError::Internal(e.to_string()),
            },
            _ => QueryError::Internal(e.to_string()),
        }
    }
}

impl QueryError {
    pub fn status(&self) -> StatusCode {
        match self {
            QueryError::BadRequest(_) => StatusCode::BAD_REQUEST,
            QueryError::NotFound(_) => StatusCode::NOT_FOUND,
            QueryError::Execution(_) => StatusCode::UNPROCESSABLE_ENTITY,
            QueryError::Timeout(_) => StatusCode::SERVICE_UNAVAILABLE,
            QueryError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            QueryError::ResourcesExhausted(_) => StatusCode::UNPROCESSABLE_ENTITY,
            QueryError::TooMany(_) => StatusCode::TOO_MANY_REQUESTS,
            // nginx's "client closed request": no one is left to read it.
            QueryError::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
            QueryError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            QueryError::BadRequest(_) => "bad_data",
            QueryError::NotFound(_) => "not_found",
            QueryError::Execution(_) => "execution",
            QueryError::Timeout(_) => "timeout",
            QueryError::TooLarge(_) => "too_large",
            QueryError::ResourcesExhausted(_) => "execution",
            QueryError::TooMany(_) => "too_many_requests",
            QueryError::Cancelled => "cancelled",
            QueryError::Internal(_) => "internal",
        }
    }

    /// The per-tenant limit this error is a refusal by, for the limits' metrics.
    pub fn limit_reason(&self) -> Option<&'static str> {
        match self {
            QueryError::Timeout(_) => Some("query_time"),
            QueryError::ResourcesExhausted(_) => Some("query_memory"),
            QueryError::TooMany(_) => Some("concurrent_queries"),
            _ => None,
        }
    }
}

impl QueryError {
    /// The message a client is sent: an internal error's detail is logged, not sent.
    pub fn public_message(&self) -> String {
        match self {
            QueryError::Internal(detail) => {
                error!(error = %detail, "query failed");
                "internal error".to_string()
            }
            other => other.to_string(),
        }
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let message = self.public_message();
        let body = serde_json::json!({
            "status": "error",
            "errorType": self.error_type(),
            "error": message,
        });
        let mut response = (self.status(), Json(body)).into_response();
        if let Some(reason) = self.limit_reason() {
            response.extensions_mut().insert(RefusedBy(reason));
        }
        if matches!(self, QueryError::TooMany(_)) {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, 1.into());
        }
        response
    }
}

/// Marks an answer that a query limit refused (read by the limits layer, which counts it).
#[derive(Debug, Clone, Copy)]
pub struct RefusedBy(pub &'static str);
