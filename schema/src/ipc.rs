//! Reading Arrow IPC streams that came from outside the process (an agent's Flight messages,
//! a WAL or disk-buffer record on disk) without trusting them.
//!
//! arrow-rs's IPC reader panics on some malformed messages instead of returning an error (a
//! buffer slice past its end, an unwrap in schema conversion; both found by `strata-fuzz`).
//! Every read of outside IPC bytes goes through [`guard`], which turns such a panic into an
//! `ArrowError`, so bad bytes are a decode error for the caller to answer and count.
//!
//! Invariant: nothing read here is shared with other work while it is decoded, so catching the
//! panic leaves no broken state behind.

use std::panic::{AssertUnwindSafe, catch_unwind};

use arrow::error::ArrowError;
use arrow::ipc::reader::StreamReader;
use arrow::record_batch::RecordBatch;

/// Runs `decode`, answering a panic inside it as a malformed-IPC error.
pub fn guard<T>(decode: impl FnOnce() -> Result<T, ArrowError>) -> Result<T, ArrowError> {
    catch_unwind(AssertUnwindSafe(decode)).unwrap_or_else(|panic| Err(malformed(&*panic)))
}

/// The error for a panic caught while decoding.
pub fn malformed(panic: &(dyn std::any::Any + Send)) -> ArrowError {
    let why = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("the IPC reader failed");
    ArrowError::IpcError(format!("malformed IPC stream: {why}"))
}

/// Every batch of one IPC stream.
pub fn read_stream(data: &[u8]) -> Result<Vec<RecordBatch>, ArrowError> {
    guard(|| StreamReader::try_new(std::io::Cursor::new(data), None)?.collect())
}
