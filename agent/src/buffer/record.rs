//! The records of the agent's disk buffer, framed and checksummed by `strata-wal`.
//!
//! ```text
//! record := kind:u8 body
//! Data  (1) := target_len:u16 target key_hash:u64 rows:u32 entry     (a batch for `target`)
//! Route (2) := entry_id:u64 target_len:u16 target                    (entry now goes there)
//! Ack   (3) := n:u32 entry_id:u64*n                                  (acknowledged entries)
//! ```
//!
//! `entry` is `strata_wal::entry` (envelope with signal and tenant, then the batch as the Arrow
//! IPC stream it is shipped as, compressed as `ship_compression` says; records of older agents
//! hold LZ4 streams, shipped as they are too). The envelope's agent id and sequence are left
//! empty: the sequence of a buffered batch is its entry id. All integers are little-endian.
//! Data carries its row count and routing hash so that replay needs only the header, not the
//! Arrow data, and shipping needs only [`data_stream`], not a decode.

use arrow::record_batch::RecordBatch;
use strata_schema::Signal;
use strata_schema::envelope::Envelope;
use strata_wal::entry;

const DATA: u8 = 1;
const ROUTE: u8 = 2;
const ACK: u8 = 3;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("truncated buffer record")]
    Short,
    #[error("unknown buffer record kind {0}")]
    Kind(u8),
    #[error("buffer record: {0}")]
    Entry(#[from] entry::EntryError),
    #[error("buffer record: {0}")]
    Signal(String),
    #[error("buffer record's batch does not have its signal's columns: {0}")]
    Schema(String),
}

/// The header of a data record (what replay needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataHeader {
    pub target: String,
    pub key_hash: u64,
    pub rows: u32,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// A data record; `rest` is the encoded entry, decoded by [`decode_data`].
    Data {
        header: DataHeader,
        rest: &'a [u8],
    },
    Route {
        entry: u64,
        target: String,
    },
    Ack(Vec<u64>),
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let b = &s.as_bytes()[..s.len().min(u16::MAX as usize)];
    out.extend_from_slice(&(b.len() as u16).to_le_bytes());
    out.extend_from_slice(b);
}

/// A data record of one batch, given as its encoded Arrow IPC `stream`.
pub fn encode_data(header: &DataHeader, signal: Signal, tenant: &str, stream: &[u8]) -> Vec<u8> {
    let env = Envelope::new("", 0, signal, tenant);
    let body = entry::encode_stream(&env, stream);
    let mut out = Vec::with_capacity(body.len() + header.target.len() + 16);
    out.push(DATA);
    put_str(&mut out, &header.target);
    out.extend_from_slice(&header.key_hash.to_le_bytes());
    out.extend_from_slice(&header.rows.to_le_bytes());
    out.extend_from_slice(&body);
    out
}

pub fn encode_route(entry: u64, target: &str) -> Vec<u8> {
    let mut out = vec![ROUTE];
    out.extend_from_slice(&entry.to_le_bytes());
    put_str(&mut out, target);
    out
}

pub fn encode_ack(entries: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + entries.len() * 8);
    out.push(ACK);
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.to_le_bytes());
    }
    out
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if self.0.len() < n {
            return Err(RecordError::Short);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, RecordError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().map_err(|_| RecordError::Short)?,
        ))
    }
    fn u32(&mut self) -> Result<u32, RecordError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().map_err(|_| RecordError::Short)?,
        ))
    }
    fn u64(&mut self) -> Result<u64, RecordError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().map_err(|_| RecordError::Short)?,
        ))
    }
    fn string(&mut self) -> Result<String, RecordError> {
        let n = self.u16()? as usize;
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

/// Decodes the kind and header of a record (not a data record's Arrow data).
pub fn decode(bytes: &[u8]) -> Result<Record<'_>, RecordError> {
    let mut r = Reader(bytes);
    match r.take(1)?[0] {
        DATA => {
            let target = r.string()?;
            let key_hash = r.u64()?;
            let rows = r.u32()?;
            Ok(Record::Data {
                header: DataHeader {
                    target,
                    key_hash,
                    rows,
                },
                rest: r.0,
            })
        }
        ROUTE => {
            let entry = r.u64()?;
            let target = r.string()?;
            Ok(Record::Route { entry, target })
        }
        ACK => {
            let n = r.u32()? as usize;
            if r.0.len() < n.saturating_mul(8) {
                return Err(RecordError::Short);
            }
            (0..n)
                .map(|_| r.u64())
                .collect::<Result<_, _>>()
                .map(Record::Ack)
        }
        k => Err(RecordError::Kind(k)),
    }
}

/// Where, in a data record's `rest`, its Arrow IPC stream starts.
pub fn data_stream(rest: &[u8]) -> Result<usize, RecordError> {
    Ok(entry::stream_offset(rest)?)
}

/// Decodes the signal, tenant and batch of a data record's `rest`.
pub fn decode_data(rest: &[u8]) -> Result<(Signal, String, RecordBatch), RecordError> {
    let (env, batches) = entry::decode(rest)?;
    let signal = env
        .signal()
        .map_err(|e| RecordError::Signal(e.to_string()))?;
    for b in &batches {
        signal.check_batch(b).map_err(RecordError::Schema)?;
    }
    let batch = arrow::compute::concat_batches(&signal.schema(), &batches)
        .map_err(|e| RecordError::Entry(e.into()))?;
    Ok((signal, env.tenant, batch))
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    use arrow::ipc::CompressionType;

    use super::*;

    fn batch() -> RecordBatch {
        strata_schema::logs::to_batch(&[ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord::default(), LogRecord::default()],
                ..Default::default()
            }],
            ..Default::default()
        }])
        .unwrap()
    }

    #[test]
    fn records_round_trip() {
        let header = DataHeader {
            target: "127.0.0.1:4320".into(),
            key_hash: 7,
            rows: 2,
        };
        let b = batch();
        let stream = strata_ingest::flight::ipc_stream(&b, Some(CompressionType::ZSTD)).unwrap();
        let bytes = encode_data(&header, Signal::Logs, "acme", &stream);
        let Record::Data { header: h, rest } = decode(&bytes).unwrap() else {
            panic!("not data")
        };
        assert_eq!(h, header);
        let (signal, tenant, got) = decode_data(rest).unwrap();
        assert_eq!((signal, tenant.as_str()), (Signal::Logs, "acme"));
        assert_eq!(got, b);
        assert_eq!(&rest[data_stream(rest).unwrap()..], &stream[..]);
        assert_eq!(
            decode(&encode_route(9, "b:1")).unwrap(),
            Record::Route {
                entry: 9,
                target: "b:1".into()
            }
        );
        assert_eq!(
            decode(&encode_ack(&[1, 2, 3])).unwrap(),
            Record::Ack(vec![1, 2, 3])
        );
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let bytes = encode_data(
            &DataHeader {
                target: "x:1".into(),
                key_hash: 1,
                rows: 2,
            },
            Signal::Logs,
            "t",
            &strata_ingest::flight::ipc_stream(&batch(), None).unwrap(),
        );
        // A cut record either fails or yields at most the rows it had (the WAL frame's
        // checksum is what rejects damaged records; this only shows nothing panics).
        for cut in 0..bytes.len() {
            if let Ok(Record::Data { rest, .. }) = decode(&bytes[..cut])
                && let Ok((_, _, b)) = decode_data(rest)
            {
                assert!(b.num_rows() <= 2);
            }
        }
        assert!(matches!(decode(&[9]), Err(RecordError::Kind(9))));
        assert!(decode(&[ACK, 255, 255, 255, 255]).is_err());
    }
}
