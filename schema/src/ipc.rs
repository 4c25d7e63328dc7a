//! Reading Arrow IPC streams that came from outside the process (an agent's Flight messages,
//! a WAL or disk-buffer record on disk) without trusting them.
//!
//! arrow-rs's IPC reader panics on some malformed messages instead of returning an error (a
//! buffer slice past its end, an unwrap in schema conversion; both found by `strata-fuzz`).
//! Every read of outside IPC bytes goes through [`guard`], which turns such a panic into an
//! `ArrowError`, so bad bytes are a decode error for the caller to answer and count.
//!
//! arrow-rs's stream reader also allocates each message's body at the length the message's
//! header claims, before reading it: a record whose header claimed 468 GB aborted the
//! process (found by AFL++; on disk a WAL frame's checksum stops a random flip, not a record
//! written that way). [`read_stream`] first walks the stream's framing and refuses a message
//! that claims more bytes than the input holds.
//!
//! Invariant: nothing read here is shared with other work while it is decoded, so catching the
//! panic leaves no broken state behind; no allocation made here is larger than the input.

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
    check_framing(data)?;
    guard(|| StreamReader::try_new(std::io::Cursor::new(data), None)?.collect())
}

const CONTINUATION: [u8; 4] = [0xff; 4];

/// Walks the messages of an IPC stream held whole in `data` (each: an optional continuation
/// marker, a little-endian `i32` metadata length, the flatbuffer metadata, then the body of
/// the length the metadata gives), as the stream reader will, and checks that every
/// metadata and body lies inside `data`. It stops where the reader stops: at the end of the
/// input, or at an end-of-stream marker (a zero length).
fn check_framing(data: &[u8]) -> Result<(), ArrowError> {
    let short = |what: &str, at: usize, need: u64| {
        ArrowError::IpcError(format!(
            "malformed IPC stream: {what} at byte {at} claims {need} bytes, {} are left",
            data.len() - at
        ))
    };
    let mut at = 0;
    loop {
        let Some(mut word) = data.get(at..at + 4) else {
            return Ok(());
        };
        at += 4;
        if word == CONTINUATION {
            word = data
                .get(at..at + 4)
                .ok_or_else(|| short("a message length", at, 4))?;
            at += 4;
        }
        let meta_len = i32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        if meta_len == 0 {
            return Ok(());
        }
        let meta_len = usize::try_from(meta_len).map_err(|_| {
            ArrowError::IpcError(format!("malformed IPC stream: metadata length {meta_len}"))
        })?;
        let meta = data
            .get(at..at + meta_len)
            .ok_or_else(|| short("a message's metadata", at, meta_len as u64))?;
        let message = arrow::ipc::root_as_message(meta)
            .map_err(|e| ArrowError::IpcError(format!("malformed IPC message: {e}")))?;
        at += meta_len;
        let body = u64::try_from(message.bodyLength()).unwrap_or(u64::MAX);
        if body > (data.len() - at) as u64 {
            return Err(short("a message's body", at, body));
        }
        at += body as usize;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::ipc::writer::StreamWriter;

    use super::*;

    fn stream() -> Vec<u8> {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from(vec![1, 2, 3]))],
        )
        .unwrap();
        let mut w = StreamWriter::try_new(Vec::new(), &schema).unwrap();
        w.write(&batch).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        w.into_inner().unwrap()
    }

    #[test]
    fn reads_a_whole_stream_and_one_without_its_end_marker() {
        let bytes = stream();
        assert_eq!(read_stream(&bytes).unwrap().len(), 2);
        assert_eq!(read_stream(&bytes[..bytes.len() - 8]).unwrap().len(), 2);
    }

    #[test]
    fn a_body_longer_than_the_input_is_refused_before_allocating_it() {
        let bytes = stream();
        let len_at = |at: usize| i32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
        // The schema message (no body), then the first batch's header; cut 8 bytes into the
        // batch's 24-byte body, so its header claims more than is left.
        let batch_at = 8 + len_at(0) as usize;
        let body_at = batch_at + 8 + len_at(batch_at) as usize;
        let err = read_stream(&bytes[..body_at + 8]).unwrap_err().to_string();
        assert!(err.contains("a message's body"), "{err}");
    }

    #[test]
    fn every_truncation_is_an_error_or_a_prefix_of_the_batches() {
        let bytes = stream();
        for n in 0..bytes.len() {
            if let Ok(batches) = read_stream(&bytes[..n]) {
                assert!(batches.len() <= 2);
            }
        }
    }
}
