//! Reading a request body under the receiver's size limit, for every HTTP receiver.
//!
//! The limit applies to the body as the handler sees it: after the gzip layer of the routes
//! that have one, so a compressed bomb stops at the limit too.

use axum::body::Body;
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};

/// Why a body could not be read.
#[derive(Debug)]
pub enum BodyError {
    /// Past the limit (in bytes).
    TooLarge(usize),
    /// The connection or the decompression failed.
    Unreadable(String),
}

impl BodyError {
    /// The HTTP status of the refusal: 413 past the limit, else 400.
    pub fn status(&self) -> axum::http::StatusCode {
        match self {
            BodyError::TooLarge(_) => axum::http::StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Unreadable(_) => axum::http::StatusCode::BAD_REQUEST,
        }
    }

    /// The refusal reason counted in the receivers' metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BodyError::TooLarge(_) => "too_large",
            BodyError::Unreadable(_) => "bad_body",
        }
    }
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge(limit) => {
                write!(
                    f,
                    "request body exceeds {limit} bytes (after decompression)"
                )
            }
            BodyError::Unreadable(e) => write!(f, "cannot read request body: {e}"),
        }
    }
}

/// The whole body, or why not.
pub async fn read(body: Body, limit: usize) -> Result<Bytes, BodyError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => Err(BodyError::TooLarge(limit)),
        Err(e) => Err(BodyError::Unreadable(e.to_string())),
    }
}
