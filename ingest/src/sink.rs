//! The `Ingest` sink that sits behind every protocol decoder, and the one mapping of its
//! errors to each protocol's terms.
//!
//! A decoder turns its wire format into one Arrow batch per request and calls
//! [`Ingest::ingest`]. The sink answers once it took responsibility for the rows; its error says
//! how the protocol should answer (bad input, overloaded, over a tenant's limit, unavailable,
//! internal): [`IngestError::grpc_code`] / [`IngestError::to_status`] for gRPC (also in the
//! body of an OTLP/HTTP error), [`IngestError::http_status`] for HTTP, with `Retry-After`
//! ([`IngestError::retry_after`]) where a retry can succeed, which gRPC carries as a
//! `google.rpc.RetryInfo` detail (OTLP clients retry `RESOURCE_EXHAUSTED` only with one). An
//! internal error's detail is logged by whoever sees it, never sent.

use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use http::StatusCode;
use strata_schema::Signal;
use tonic::{Code, Status};

/// Seconds a client is told to wait before retrying an overloaded or unavailable sink.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Why a sink refused a batch, classified for the wire (gRPC status / HTTP code).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The request itself is wrong; retrying it will not help.
    #[error("{0}")]
    Invalid(String),
    /// Backpressure: the sink is full; the client should retry later.
    #[error("{0}")]
    Overloaded(String),
    /// Over a per-tenant limit: retry after `retry_after` seconds, or never (a request larger
    /// than the tenant may send at once).
    #[error("{message}")]
    Limited {
        message: String,
        retry_after: Option<u64>,
    },
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
            IngestError::Limited { .. } => "limited",
            IngestError::Unavailable(_) => "unavailable",
            IngestError::Internal(_) => "internal",
        }
    }

    /// The gRPC status code.
    pub fn grpc_code(&self) -> Code {
        match self {
            IngestError::Invalid(_) => Code::InvalidArgument,
            IngestError::Overloaded(_) | IngestError::Limited { .. } => Code::ResourceExhausted,
            IngestError::Unavailable(_) => Code::Unavailable,
            IngestError::Internal(_) => Code::Internal,
        }
    }

    /// The HTTP status code.
    pub fn http_status(&self) -> StatusCode {
        match self {
            IngestError::Invalid(_) => StatusCode::BAD_REQUEST,
            IngestError::Overloaded(_) => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Limited {
                retry_after: Some(_),
                ..
            } => StatusCode::TOO_MANY_REQUESTS,
            IngestError::Limited {
                retry_after: None, ..
            } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Seconds to wait before a retry: only where retrying later can succeed.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            IngestError::Overloaded(_) | IngestError::Unavailable(_) => Some(RETRY_AFTER_SECS),
            IngestError::Limited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// What the client is told: the message, except for internal errors.
    pub fn public_message(&self) -> String {
        match self {
            IngestError::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        }
    }

    /// The gRPC status, with a `RetryInfo` detail where a retry can succeed.
    pub fn to_status(&self) -> Status {
        let (code, message) = (self.grpc_code(), self.public_message());
        match self.retry_after() {
            Some(secs) => {
                let details = retry_info(code, &message, secs);
                Status::with_details(code, message, details.into())
            }
            None => Status::new(code, message),
        }
    }
}

/// `google.rpc.Status` with one `google.rpc.RetryInfo` detail, encoded as gRPC's
/// `grpc-status-details-bin` carries it.
fn retry_info(code: Code, message: &str, secs: u64) -> Vec<u8> {
    use prost::Message;

    #[derive(Clone, PartialEq, prost::Message)]
    struct Duration {
        #[prost(int64, tag = "1")]
        seconds: i64,
        #[prost(int32, tag = "2")]
        nanos: i32,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct RetryInfo {
        #[prost(message, optional, tag = "1")]
        retry_delay: Option<Duration>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct Any {
        #[prost(string, tag = "1")]
        type_url: String,
        #[prost(bytes = "vec", tag = "2")]
        value: Vec<u8>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
        #[prost(message, repeated, tag = "3")]
        details: Vec<Any>,
    }
    let info = RetryInfo {
        retry_delay: Some(Duration {
            seconds: secs as i64,
            nanos: 0,
        }),
    };
    RpcStatus {
        code: code as i32,
        message: message.to_string(),
        details: vec![Any {
            type_url: "type.googleapis.com/google.rpc.RetryInfo".into(),
            value: info.encode_to_vec(),
        }],
    }
    .encode_to_vec()
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
