//! The `Ingest` sink that sits behind every protocol decoder.
//!
//! A decoder turns its wire format into one Arrow batch per request and calls
//! [`Ingest::ingest`]. The sink answers once it took responsibility for the rows; its error says
//! how the protocol should answer (bad input, overloaded, unavailable, internal).

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use strata_schema::Signal;

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
