//! The `Ingest` sink that sits behind every protocol decoder, and the one mapping of its
//! errors to each protocol's terms.
//!
//! A decoder turns its wire format into one Arrow batch per request and calls
//! [`Ingest::ingest`]. The sink answers once it took responsibility for the rows; its error says
//! how the protocol should answer (bad input, overloaded, unavailable, internal):
//! [`IngestError::grpc_code`] / [`IngestError::to_status`] for gRPC (also in the body of an
//! OTLP/HTTP error), [`IngestError::http_status`] for HTTP, with `Retry-After`
//! ([`IngestError::retry_after`]) where a retry can succeed. An internal error's detail is
//! logged by whoever sees it, never sent.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use http::StatusCode;
use strata_schema::Signal;
use tonic::{Code, Status};

/// Seconds a client is told to wait before retrying an overloaded or unavailable sink.
pub const RETRY_AFTER_SECS: &str = "1";

/// Why a sink refused a batch, classified for the wire (gRPC status / HTTP code).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The request itself is wrong; retrying it will not help.
    #[error("{0}")]
    Invalid(String),
    /// Backpressure: the sink is full; the client should retry later.
    #[error("{0}")]
    Overloaded(String),
    /// The sink is shutting down or cannot reach its downstream.
    #[error("{0}")]
    Unavailable(String),
    /// A bug or an I/O failure; details are logged, not sent.
    #[error("{0}")]
    Internal(String),
}

impl IngestError {
    /// Label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            IngestError::Invalid(_) => "invalid",
            IngestError::Overloaded(_) => "overloaded",
            IngestError::Unavailable(_) => "unavailable",
            IngestError::Internal(_) => "internal",
        }
    }

    /// The gRPC status code.
    pub fn grpc_code(&self) -> Code {
        match self {
            IngestError::Invalid(_) => Code::InvalidArgument,
            IngestError::Overloaded(_) => Code::ResourceExhausted,
            IngestError::Unavailable(_) => Code::Unavailable,
            IngestError::Internal(_) => Code::Internal,
        }
    }

    /// The HTTP status code.
    pub fn http_status(&self) -> StatusCode {
        match self {
            IngestError::Invalid(_) => StatusCode::BAD_REQUEST,
            IngestError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `Retry-After` an HTTP answer carries: only where retrying later can succeed.
    pub fn retry_after(&self) -> Option<&'static str> {
        matches!(
            self,
            IngestError::Overloaded(_) | IngestError::Unavailable(_)
        )
        .then_some(RETRY_AFTER_SECS)
    }

    /// What the client is told: the message, except for internal errors.
    pub fn public_message(&self) -> String {
        match self {
            IngestError::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        }
    }

    /// The gRPC status.
    pub fn to_status(&self) -> Status {
        Status::new(self.grpc_code(), self.public_message())
    }
}

/// Where decoded batches go.
#[async_trait]
pub trait Ingest: Send + Sync + 'static {
    /// Takes responsibility for `batch` (rows of `signal` for `tenant`), or says why not.
    async fn ingest(
        &self,
        tenant: &str,
        signal: Signal,
        batch: RecordBatch,
    ) -> Result<(), IngestError>;
}
