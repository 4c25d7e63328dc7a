//! A WAL entry: one accepted batch with its envelope.
//!
//! ```text
//! entry := envelope_len:u32-LE envelope(prost) arrow_ipc_stream(lz4 buffers)
//! ```
//!
//! [`encode`] uses LZ4 rather than zstd: the WAL is written on the ack path and read only on
//! recovery, so speed matters more than size here. [`encode_stream`] takes a stream already
//! encoded (the agent's buffer keeps the very bytes it ships); readers accept any compression.

use arrow::ipc::CompressionType;
use arrow::ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow::record_batch::RecordBatch;
use strata_schema::envelope::Envelope;

#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("WAL entry too short")]
    Short,
    #[error("WAL entry envelope: {0}")]
    Envelope(String),
    #[error("WAL entry data: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

/// Encodes `batches` (one schema, at least one batch) with their envelope.
pub fn encode(envelope: &Envelope, batches: &[RecordBatch]) -> Result<Vec<u8>, EntryError> {
    let env = envelope.encode_to_vec();
    let mut out = Vec::with_capacity(
        4 + env.len()
            + batches
                .iter()
                .map(RecordBatch::get_array_memory_size)
                .sum::<usize>()
                / 2,
    );
    out.extend_from_slice(&(env.len() as u32).to_le_bytes());
    out.extend_from_slice(&env);
    let Some(first) = batches.first() else {
        return Ok(out);
    };
    let options =
        IpcWriteOptions::default().try_with_compression(Some(CompressionType::LZ4_FRAME))?;
    let mut w = StreamWriter::try_new_with_options(&mut out, &first.schema(), options)?;
    for b in batches {
        w.write(b)?;
    }
    w.finish()?;
    drop(w);
    Ok(out)
}

/// An entry of `envelope` and an Arrow IPC stream that is already encoded (any compression):
/// the same layout as [`encode`] makes, without encoding anything.
pub fn encode_stream(envelope: &Envelope, stream: &[u8]) -> Vec<u8> {
    let env = envelope.encode_to_vec();
    let mut out = Vec::with_capacity(4 + env.len() + stream.len());
    out.extend_from_slice(&(env.len() as u32).to_le_bytes());
    out.extend_from_slice(&env);
    out.extend_from_slice(stream);
    out
}

/// Where the Arrow IPC stream of an entry starts (after its envelope).
pub fn stream_offset(bytes: &[u8]) -> Result<usize, EntryError> {
    let len = bytes
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or(EntryError::Short)?;
    let end = 4 + len;
    if end > bytes.len() {
        return Err(EntryError::Short);
    }
    Ok(end)
}

/// Decodes only the envelope of an entry written by [`encode`] (no Arrow data).
pub fn decode_envelope(bytes: &[u8]) -> Result<Envelope, EntryError> {
    if bytes.len() < 4 {
        return Err(EntryError::Short);
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let env_bytes = bytes.get(4..4 + len).ok_or(EntryError::Short)?;
    Envelope::decode_bytes(env_bytes).map_err(|e| EntryError::Envelope(e.to_string()))
}

/// Decodes an entry written by [`encode`].
pub fn decode(bytes: &[u8]) -> Result<(Envelope, Vec<RecordBatch>), EntryError> {
    if bytes.len() < 4 {
        return Err(EntryError::Short);
    }
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let env_bytes = bytes.get(4..4 + len).ok_or(EntryError::Short)?;
    let envelope =
        Envelope::decode_bytes(env_bytes).map_err(|e| EntryError::Envelope(e.to_string()))?;
    let data = &bytes[4 + len..];
    if data.is_empty() {
        return Ok((envelope, Vec::new()));
    }
    Ok((envelope, strata_schema::ipc::read_stream(data)?))
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use strata_schema::Signal;

    use super::*;

    #[test]
    fn round_trips() {
        let batch = strata_schema::logs::to_batch(&[ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    time_unix_nano: 5,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }])
        .unwrap();
        let env = Envelope::new("a1", 42, Signal::Logs, "acme");
        let bytes = encode(&env, &[batch.clone(), batch.clone()]).unwrap();
        let (e, b) = decode(&bytes).unwrap();
        assert_eq!(e, env);
        assert_eq!(decode_envelope(&bytes).unwrap(), env);
        assert_eq!(b, vec![batch.clone(), batch]);
        assert!(decode(&bytes[..3]).is_err());
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
        // A stream encoded elsewhere, in zstd, makes the same kind of entry.
        let at = stream_offset(&bytes).unwrap();
        let mut stream = Vec::new();
        let options = IpcWriteOptions::default()
            .try_with_compression(Some(CompressionType::ZSTD))
            .unwrap();
        let mut w =
            StreamWriter::try_new_with_options(&mut stream, &b[0].schema(), options).unwrap();
        w.write(&b[0]).unwrap();
        w.finish().unwrap();
        drop(w);
        let entry = encode_stream(&env, &stream);
        assert_eq!(&entry[..at], &bytes[..at]);
        assert_eq!(&entry[at..], &stream[..]);
        let (e2, b2) = decode(&entry).unwrap();
        assert_eq!((e2, b2), (env, vec![b[0].clone()]));
        assert!(stream_offset(&entry[..2]).is_err());
        assert!(stream_offset(&entry[..at - 1]).is_err());
    }
}
